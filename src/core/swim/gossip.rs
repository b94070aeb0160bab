//! Dissemination: piggybacking on probes, gossip rounds, and push/pull anti-entropy
//! (memberlist `sendMsg`, `getBroadcasts`, `gossip`, `pushPull`, `mergeState`,
//! `verifyProtocol`; spec §6.1, §8.7, §8.8, §8.11).

use std::net::SocketAddr;

use super::member::MemberState;
use super::probe::partial_shuffle;
use super::{Delegate, PendingStream, StreamFailure, Swim};
use crate::core::Incarnation;
use crate::core::wire::{
    Alive, COMPOUND_HEADER_OVERHEAD, COMPOUND_MAX_PARTS, COMPOUND_PART_OVERHEAD, Message,
    MessageType, NodeStateKind, PushNodeState, PushPull, StreamMessage, encode_compound,
};

/// Broadcasts gathered for one packet: concatenated messages and their lengths.
#[derive(Debug, Default)]
struct Parts {
    bytes: Vec<u8>,
    lens: Vec<usize>,
}

impl Parts {
    fn slices(&self) -> Vec<&[u8]> {
        let mut at = 0;
        self.lens
            .iter()
            .map(|&len| {
                let part = &self.bytes[at..at + len];
                at += len;
                part
            })
            .collect()
    }
}

impl<D: Delegate> Swim<D> {
    /// Send `msg` to `to`, filling the rest of the packet with queued broadcasts.
    pub(super) fn send_with_piggyback(&mut self, to: SocketAddr, crc: bool, msg: &Message<'_>) {
        let mut primary = Vec::with_capacity(128);
        msg.encode(self.codec.ints, &mut primary);
        let budget = self
            .config
            .packet_budget
            .saturating_sub(primary.len() + COMPOUND_HEADER_OVERHEAD + self.codec.label_overhead());
        let parts = self.collect_broadcasts(budget, COMPOUND_MAX_PARTS - 1);
        if parts.lens.is_empty() {
            self.seal_and_send(to, crc, &primary);
            return;
        }
        let mut slices = Vec::with_capacity(parts.lens.len() + 1);
        slices.push(primary.as_slice());
        slices.extend(parts.slices());
        let mut compound = Vec::with_capacity(self.config.packet_budget);
        encode_compound(&slices, &mut compound)
            .expect("BUG: parts are capped at 255 and packet-sized");
        self.seal_and_send(to, crc, &compound);
    }

    /// Wrap a payload (compression, CRC, label) and queue it.
    pub(super) fn seal_and_send(&mut self, to: SocketAddr, crc: bool, payload: &[u8]) {
        let mut packet = Vec::with_capacity(payload.len() + 16);
        self.codec.seal_packet(payload, crc, &mut packet);
        self.push_transmit(to, packet);
    }

    /// memberlist `getBroadcasts`: membership news first, then user messages in what is left,
    /// each user message costing one more byte for its `userMsg` type.
    fn collect_broadcasts(&mut self, budget: usize, max_parts: usize) -> Parts {
        let mut parts = Parts::default();
        let members = self.members.len();
        let alive = self.num_alive();
        let used = self.membership_queue.take(
            COMPOUND_PART_OVERHEAD,
            budget,
            max_parts,
            members,
            &mut |m| {
                parts.bytes.extend_from_slice(m);
                parts.lens.push(m.len());
            },
        );
        self.check_leave_finished();
        let avail = budget.saturating_sub(used);
        let room = max_parts.saturating_sub(parts.lens.len());
        if avail > COMPOUND_PART_OVERHEAD + 1 && room > 0 {
            self.user_queue
                .take(COMPOUND_PART_OVERHEAD + 1, avail, room, alive, &mut |m| {
                    parts.bytes.push(MessageType::User as u8);
                    parts.bytes.extend_from_slice(m);
                    parts.lens.push(m.len() + 1);
                });
        }
        parts
    }

    /// One gossip round: up to `gossip_nodes` random live (or recently dead) members each get a
    /// packet of queued broadcasts.
    pub(super) fn gossip(&mut self) {
        let now = self.now;
        let to_the_dead = self.config.gossip_to_the_dead;
        let mut targets: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                self.members.at(i).is_some_and(|m| {
                    m.name != self.config.name
                        && match m.state {
                            MemberState::Alive | MemberState::Suspect => true,
                            MemberState::Dead => now.since(m.state_change) <= to_the_dead,
                            MemberState::Left => false,
                        }
                })
            })
            .collect();
        let k = self.config.gossip_nodes.min(targets.len());
        partial_shuffle(&mut targets, k, &mut self.rng);
        let budget = self
            .config
            .packet_budget
            .saturating_sub(COMPOUND_HEADER_OVERHEAD + self.codec.label_overhead());
        for &i in &targets[..k] {
            let Some(target) = self.members.at(i) else {
                continue;
            };
            let (addr, crc) = (target.addr, target.vsn.protocol_max() >= 5);
            let parts = self.collect_broadcasts(budget, COMPOUND_MAX_PARTS);
            match parts.lens.len() {
                0 => return,
                1 => self.seal_and_send(addr, crc, &parts.bytes),
                _ => {
                    let mut compound = Vec::with_capacity(budget + 8);
                    encode_compound(&parts.slices(), &mut compound)
                        .expect("BUG: parts are capped at 255");
                    self.seal_and_send(addr, crc, &compound);
                }
            }
        }
    }

    /// Periodic anti-entropy with one random live member.
    pub(super) fn periodic_push_pull(&mut self) {
        let mut candidates: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|m| m.name != self.config.name && m.state == MemberState::Alive)
            .map(|m| m.addr)
            .collect();
        partial_shuffle(&mut candidates, 1, &mut self.rng);
        if let Some(&peer) = candidates.first() {
            self.start_push_pull(peer, false);
        }
    }

    /// Ask the driver to open a push/pull stream to `peer`.
    pub(super) fn start_push_pull(&mut self, peer: SocketAddr, join: bool) -> bool {
        let bytes = self.encode_push_pull(join, true);
        let deadline = self.now + self.config.tcp_timeout;
        self.push_stream(
            peer,
            bytes,
            Some(PendingStream::PushPull {
                peer,
                join,
                deadline,
            }),
            deadline,
        )
    }

    /// Our full state as a sealed stream message.
    pub(super) fn encode_push_pull(&mut self, join: bool, dialer: bool) -> Vec<u8> {
        let user_state = self.delegate.local_state(join);
        let nodes: Vec<PushNodeState<'_>> = self.members.iter().map(|m| m.push_state()).collect();
        let msg = StreamMessage::PushPull(PushPull {
            join,
            nodes,
            user_state: &user_state,
        });
        let mut plain = Vec::with_capacity(256 + user_state.len());
        msg.encode(self.codec.ints, &mut plain);
        let mut sealed = Vec::with_capacity(plain.len() / 2 + 64);
        self.codec.seal_stream(&plain, dialer, &mut sealed);
        sealed
    }

    /// A stream a peer opened to us.
    pub(super) fn on_stream(
        &mut self,
        _from: SocketAddr,
        msg: StreamMessage<'_>,
    ) -> Option<Vec<u8>> {
        match msg {
            StreamMessage::Ping(ping) => {
                if !ping.node.is_empty() && ping.node != self.config.name.as_str() {
                    self.stats.messages_ignored += 1;
                    return None;
                }
                // Go's TCP ping ack carries a nil payload.
                let ack = crate::core::wire::Ack {
                    payload: None,
                    seq_no: ping.seq_no,
                };
                let mut plain = Vec::with_capacity(32);
                StreamMessage::Ack(ack).encode(self.codec.ints, &mut plain);
                let mut sealed = Vec::with_capacity(64);
                self.codec.seal_stream(&plain, false, &mut sealed);
                Some(sealed)
            }
            StreamMessage::User(bytes) => {
                self.delegate.notify_msg(bytes);
                None
            }
            StreamMessage::PushPull(remote) => {
                // Answer with our state first, then merge theirs (memberlist order), echoing
                // the initiator's join flag.
                let reply = self.encode_push_pull(remote.join, false);
                if self.merge_push_pull(&remote, remote.join).is_err() {
                    self.stats.push_pull_incompatible += 1;
                }
                Some(reply)
            }
            StreamMessage::Ack(_) | StreamMessage::Err(_) => {
                self.stats.streams_rejected += 1;
                None
            }
        }
    }

    /// The reply to a stream we opened.
    pub(super) fn on_stream_reply(
        &mut self,
        pending: &PendingStream,
        msg: StreamMessage<'_>,
    ) -> Result<(), StreamFailure> {
        match (pending, msg) {
            (PendingStream::PushPull { join, .. }, StreamMessage::PushPull(remote)) => {
                self.merge_push_pull(&remote, *join).map_err(|()| {
                    self.stats.push_pull_incompatible += 1;
                    StreamFailure::Peer("incompatible protocol versions".into())
                })
            }
            (PendingStream::Ping { seq, .. }, StreamMessage::Ack(ack)) if ack.seq_no == *seq => {
                self.on_tcp_ack(*seq);
                Ok(())
            }
            (_, StreamMessage::Err(e)) => Err(StreamFailure::Peer(e.error.to_owned())),
            _ => Err(StreamFailure::Unexpected),
        }
    }

    /// Merge a peer's full state (memberlist `mergeRemoteState` + `mergeState`). A peer's dead
    /// verdict only makes us *suspect* the node: we check for ourselves.
    fn merge_push_pull(&mut self, remote: &PushPull<'_>, join: bool) -> Result<(), ()> {
        if !self.verify_protocol(&remote.nodes) {
            return Err(());
        }
        let me = self.config.name.clone();
        for node in &remote.nodes {
            let inc = Incarnation(node.incarnation);
            match node.state {
                NodeStateKind::Alive => {
                    let port = if node.port == 0 {
                        self.config.advertise.port()
                    } else {
                        node.port
                    };
                    let alive = Alive {
                        addr: node.addr,
                        incarnation: node.incarnation,
                        meta: node.meta,
                        node: node.name,
                        port,
                        vsn: node.vsn,
                    };
                    self.apply_alive(&alive, false);
                }
                NodeStateKind::Left => self.apply_dead(node.name, inc, node.name, None),
                NodeStateKind::Dead | NodeStateKind::Suspect => {
                    self.apply_suspect(node.name, inc, me.as_str())
                }
                NodeStateKind::Other(_) => self.stats.messages_ignored += 1,
            }
        }
        if !remote.user_state.is_empty() {
            self.delegate.merge_remote_state(remote.user_state, join);
        }
        Ok(())
    }

    /// memberlist `verifyProtocol`: every node of both views must be able to speak a protocol
    /// and delegate version that every alive node understands. A node without a full `Vsn`
    /// counts as version 0 and fails.
    fn verify_protocol(&self, remote: &[PushNodeState<'_>]) -> bool {
        let (mut pmin, mut pmax, mut dmin, mut dmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        let local_alive = self
            .members
            .iter()
            .filter(|m| m.state == MemberState::Alive)
            .map(|m| m.vsn);
        let remote_alive = remote
            .iter()
            .filter(|n| n.state == NodeStateKind::Alive)
            .filter_map(|n| n.vsn);
        for v in remote_alive.chain(local_alive) {
            pmin = pmin.max(v.protocol_min());
            pmax = pmax.min(v.protocol_max());
            dmin = dmin.max(v.delegate_min());
            dmax = dmax.min(v.delegate_max());
        }
        let ok =
            |pcur: u8, dcur: u8| (pmin..=pmax).contains(&pcur) && (dmin..=dmax).contains(&dcur);
        let remote_ok = remote.iter().all(|n| {
            n.vsn
                .is_some_and(|v| ok(v.protocol_cur(), v.delegate_cur()))
        });
        remote_ok
            && self
                .members
                .iter()
                .all(|m| ok(m.vsn.protocol_cur(), m.vsn.delegate_cur()))
    }
}
