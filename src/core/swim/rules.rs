//! How `alive`, `suspect` and `dead` news changes the member table (memberlist 0.5
//! `aliveNode`, `suspectNode`, `deadNode`, `refute`; spec §8.5–§8.6).
//!
//! The comparisons are deliberately asymmetric — an alive needs a strictly greater
//! incarnation, a suspect or dead an equal one — and must stay exactly so: every node of a
//! mixed Go/hearsay cluster has to reach the same verdict from the same messages.

use std::net::SocketAddr;

use super::member::{Member, MemberState, ip_from_bytes};
use super::suspicion::{Suspicion, suspicion_min};
use super::{Delegate, Event, MemberChange, Swim, Timer};
use crate::core::wire::{Alive, Dead, Message, Suspect};
use crate::core::{Incarnation, NodeName};

impl<D: Delegate> Swim<D> {
    /// An `alive` claim, from gossip, a push/pull entry, or ourselves (`bootstrap`).
    pub(super) fn apply_alive(&mut self, a: &Alive<'_>, bootstrap: bool) {
        let is_self = a.node == self.config.name.as_str();
        if self.leaving && is_self {
            return;
        }
        // Alertmanager registers an Alive delegate, which makes memberlist ignore alives without
        // a full six-byte Vsn; we do the same, plus memberlist's own sanity check of the range.
        let Some(vsn) = a.vsn.filter(|v| {
            v.protocol_min() != 0 && v.protocol_max() != 0 && v.protocol_min() <= v.protocol_max()
        }) else {
            self.stats.messages_ignored += 1;
            return;
        };
        let Some(ip) = a.addr.and_then(ip_from_bytes).filter(|_| !a.node.is_empty()) else {
            self.stats.messages_ignored += 1;
            return;
        };
        let addr = SocketAddr::new(ip, a.port);
        let Some(updates_addr) = self.admit(a, addr) else {
            return;
        };
        let inc = Incarnation(a.incarnation);
        let known = self.members.get(a.node).expect("BUG: admitted above");
        if (inc <= known.incarnation && !is_self && !updates_addr)
            || (inc < known.incarnation && is_self)
        {
            return;
        }
        self.suspicions.remove(a.node);
        if is_self && !bootstrap {
            let same = inc == known.incarnation
                && a.meta.unwrap_or_default() == known.meta
                && vsn == self.config.vsn();
            if !same {
                self.refute(inc);
            }
            return;
        }
        self.broadcast_membership(a.node, &Message::Alive(*a), None);
        let now = self.now;
        let member = self.members.get_mut(a.node).expect("BUG: admitted above");
        let old_state = member.state;
        let meta = a.meta.unwrap_or_default();
        let meta_changed = member.meta != meta;
        member.vsn = vsn;
        member.incarnation = inc;
        if meta_changed {
            member.meta = meta.to_vec();
        }
        member.set_addr(addr);
        if member.state != MemberState::Alive {
            member.state = MemberState::Alive;
            member.state_change = now;
        }
        self.members_version += 1;
        let member = self.members.get(a.node).expect("BUG: admitted above");
        let change = if old_state.is_gone() {
            Some(MemberChange::Joined)
        } else if meta_changed {
            Some(MemberChange::Updated)
        } else {
            None
        };
        if let Some(change) = change {
            let member = member.clone();
            self.push_event(Event::Member { change, member });
        }
    }

    /// Make sure the named member exists and may take `addr`. Returns whether the claim moves a
    /// left (or reclaimable dead) member to a new address, or `None` to ignore the claim.
    fn admit(&mut self, a: &Alive<'_>, addr: SocketAddr) -> Option<bool> {
        let Some(known) = self.members.get(a.node) else {
            // Go would first create a dead entry with incarnation 0 and then drop an
            // incarnation-0 alive against it, leaving a phantom; we simply do not create it.
            if a.incarnation == 0 {
                self.stats.messages_ignored += 1;
                return None;
            }
            if self.members.len() >= self.config.max_members {
                self.stats.members_refused += 1;
                return None;
            }
            let member = Member::new(NodeName::from(a.node), addr, self.now);
            self.members.insert(member, &mut self.rng);
            return Some(false);
        };
        if known.addr == addr {
            return Some(false);
        }
        let reclaim = self.config.dead_node_reclaim;
        let reclaimable = !reclaim.is_zero() && self.now.since(known.state_change) > reclaim;
        if known.state == MemberState::Left || (known.state == MemberState::Dead && reclaimable) {
            return Some(true);
        }
        self.stats.conflicts += 1;
        let existing = known.clone();
        self.push_event(Event::Conflict { existing, other: addr });
        None
    }

    /// A `suspect` claim: `from` could not reach `node` at incarnation `inc`.
    pub(super) fn apply_suspect(&mut self, node: &str, inc: Incarnation, from: &str) {
        let Some(known) = self.members.get(node) else {
            return;
        };
        if inc < known.incarnation {
            return;
        }
        let msg = Suspect { from, incarnation: inc.0, node };
        // A running suspicion turns further accusations into confirmations; new ones are
        // re-gossiped so that independent confirmations reach everyone.
        if let Some(s) = self.suspicions.get_mut(node) {
            if s.confirm(&NodeName::from(from)) {
                let (deadline, generation) = (s.deadline, s.generation);
                self.schedule(deadline, Timer::Suspicion(NodeName::from(node), generation));
                self.broadcast_membership(node, &Message::Suspect(msg), None);
            }
            return;
        }
        if known.state != MemberState::Alive {
            return;
        }
        if node == self.config.name.as_str() {
            self.refute(inc);
            return;
        }
        self.broadcast_membership(node, &Message::Suspect(msg), None);
        let now = self.now;
        let n = self.members.len();
        let member = self.members.get_mut(node).expect("BUG: looked up above");
        member.incarnation = inc;
        member.state = MemberState::Suspect;
        member.state_change = now;
        let name = member.name.clone();
        self.members_changed();
        // Expect k confirmations, so that the nominal timeout is hit two probe intervals short
        // of the multiplier; with too few other nodes to confirm, expect none.
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if n.saturating_sub(2) < k as usize {
            k = 0;
        }
        let min = suspicion_min(self.config.suspicion_mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        let generation = self.next_generation();
        let s = Suspicion::new(NodeName::from(from), k, min, max, now, generation);
        self.schedule(s.deadline, Timer::Suspicion(name.clone(), generation));
        self.suspicions.insert(name, s);
    }

    /// A `dead` claim; `from == node` means the node left.
    pub(super) fn apply_dead(
        &mut self,
        node: &str,
        inc: Incarnation,
        from: &str,
        token: Option<u64>,
    ) {
        let Some(known) = self.members.get(node) else {
            return;
        };
        if inc < known.incarnation {
            return;
        }
        self.suspicions.remove(node);
        if known.state.is_gone() {
            return;
        }
        if node == self.config.name.as_str() && !self.leaving {
            self.refute(inc);
            return;
        }
        self.broadcast_membership(
            node,
            &Message::Dead(Dead { from, incarnation: inc.0, node }),
            token,
        );
        let now = self.now;
        let member = self.members.get_mut(node).expect("BUG: looked up above");
        member.incarnation = inc;
        let (state, change) = if node == from {
            (MemberState::Left, MemberChange::Left)
        } else {
            (MemberState::Dead, MemberChange::Failed)
        };
        member.state = state;
        member.state_change = now;
        let member = member.clone();
        self.members_changed();
        self.push_event(Event::Member { change, member });
    }

    /// A suspicion ran out: declare the member dead, unless it recovered meanwhile.
    pub(super) fn on_suspicion_expire(&mut self, node: &NodeName, generation: u64) {
        let due = self
            .suspicions
            .get(node.as_str())
            .is_some_and(|s| s.generation == generation && s.deadline <= self.now);
        if !due {
            return;
        }
        let Some(member) = self.members.get(node.as_str()) else {
            return;
        };
        if member.state != MemberState::Suspect {
            return;
        }
        let inc = member.incarnation;
        let me = self.config.name.clone();
        self.apply_dead(node.as_str(), inc, me.as_str(), None);
    }

    /// Someone says we are suspect, dead, or alive with other data: outbid them.
    pub(super) fn refute(&mut self, accused: Incarnation) {
        let me = self.config.name.clone();
        let local =
            self.members.get_mut(me.as_str()).expect("BUG: the local member is never removed");
        let mut inc = local.incarnation.0.saturating_add(1);
        if accused.0 >= inc {
            inc = accused.0.saturating_add(1);
        }
        local.incarnation = Incarnation(inc);
        self.members_version += 1;
        let alive = Alive {
            addr: Some(local.ip_wire.as_slice()),
            incarnation: inc,
            meta: Some(&local.meta),
            node: me.as_str(),
            port: local.addr.port(),
            vsn: Some(local.vsn),
        };
        let mut bytes = Vec::with_capacity(96);
        Message::Alive(alive).encode(self.codec.ints, &mut bytes);
        self.awareness.apply(1);
        self.stats.refutations += 1;
        self.queue_membership(me, bytes, None);
    }

    /// Queue news about `node` for gossip, replacing older news about it.
    pub(super) fn broadcast_membership(
        &mut self,
        node: &str,
        msg: &Message<'_>,
        token: Option<u64>,
    ) {
        let mut bytes = Vec::with_capacity(96);
        msg.encode(self.codec.ints, &mut bytes);
        self.queue_membership(NodeName::from(node), bytes, token);
    }

    fn queue_membership(&mut self, name: NodeName, bytes: Vec<u8>, token: Option<u64>) {
        // At the bound the queue refuses only when all of it is unsent news; push/pull repairs
        // whatever is lost, and the refusal is counted in the queue's stats.
        let _ = self.membership_queue.push(bytes, Some(name), token);
        self.check_leave_finished();
    }

    /// Report [`Event::LeaveComplete`] once our leave message has left the queue.
    pub(super) fn check_leave_finished(&mut self) {
        let Some(token) = self.leave_token else {
            return;
        };
        if self.membership_queue.drain_finished().any(|t| t == token) {
            self.leave_token = None;
            self.push_event(Event::LeaveComplete);
        }
    }
}
