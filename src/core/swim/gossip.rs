//! Dissemination: piggybacking on probes, gossip rounds, and push/pull anti-entropy
//! (memberlist `sendMsg`, `getBroadcasts`, `gossip`, `pushPull`, `mergeState`,
//! `verifyProtocol`; spec §6.1, §8.7, §8.8, §8.11).

use std::net::SocketAddr;

use super::member::MemberState;
use super::probe::partial_shuffle;
use super::{Delegate, PendingStream, StreamFailure, Swim};
use crate::core::broadcast::Fill;
use crate::core::{Incarnation, Millis};

/// What a user message costs in a compound: its 2-byte length and the `userMsg` type byte
/// (memberlist `compoundOverhead + userMsgOverhead`).
const USER_OVERHEAD: usize = COMPOUND_PART_OVERHEAD + 1;
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
            .saturating_sub(primary.len() + COMPOUND_HEADER_OVERHEAD + self.codec.label_overhead())
            // memberlist's `sendMsg` reserves the encryption overhead only when it seals.
            .saturating_sub(self.codec.sealing_overhead());
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
        let fill = Fill {
            overhead: COMPOUND_PART_OVERHEAD,
            budget,
            max_parts,
            nodes: self.members.len(),
            copies: 1,
            fresh_only: false,
        };
        let used = self.membership_queue.take(&fill, &mut |m| {
            parts.bytes.extend_from_slice(m);
            parts.lens.push(m.len());
        });
        self.check_leave_finished();
        let avail = budget.saturating_sub(used);
        let room = max_parts.saturating_sub(parts.lens.len());
        if avail > USER_OVERHEAD && room > 0 {
            let fill = Fill {
                overhead: USER_OVERHEAD,
                budget: avail,
                max_parts: room,
                nodes: self.num_alive(),
                ..fill
            };
            self.take_user(&fill, &mut parts);
        }
        parts
    }

    fn take_user(&mut self, fill: &Fill, parts: &mut Parts) {
        self.user_queue.take(fill, &mut |m| {
            parts.bytes.push(MessageType::User as u8);
            parts.bytes.extend_from_slice(m);
            parts.lens.push(m.len() + 1);
        });
    }

    /// Bytes one gossip packet can carry after the compound header, label and encryption.
    /// memberlist's `gossip` reserves the encryption overhead whenever a keyring is set, even
    /// when it does not seal (`GossipVerifyOutgoing` false); we reserve what it does.
    pub(super) fn gossip_budget(&self) -> usize {
        self.config.packet_budget.saturating_sub(
            COMPOUND_HEADER_OVERHEAD
                + self.codec.label_overhead()
                + self.codec.encryption_overhead(),
        )
    }

    /// Up to `gossip_nodes` random members worth gossiping to: alive or suspect, or dead for less
    /// than `gossip_to_the_dead` (so they can still hear of it and refute); never left.
    fn gossip_targets(&mut self) -> Vec<(SocketAddr, bool)> {
        let now = self.now;
        let to_the_dead = self.config.gossip_to_the_dead;
        let mut targets: Vec<(SocketAddr, bool)> = self
            .members
            .iter()
            .filter(|m| {
                m.name != self.config.name
                    && match m.state {
                        MemberState::Alive | MemberState::Suspect => true,
                        MemberState::Dead => now.since(m.state_change) <= to_the_dead,
                        MemberState::Left => false,
                    }
            })
            .map(|m| (m.addr, m.vsn.protocol_max() >= 5))
            .collect();
        let k = self.config.gossip_nodes.min(targets.len());
        partial_shuffle(&mut targets, k, &mut self.rng);
        targets.truncate(k);
        targets
    }

    /// One gossip round: each target gets its own packet of queued broadcasts, filled
    /// fewest-transmits-first (memberlist `gossip`).
    pub(super) fn gossip(&mut self) {
        let budget = self.gossip_budget();
        for (addr, crc) in self.gossip_targets() {
            let parts = self.collect_broadcasts(budget, COMPOUND_MAX_PARTS);
            if parts.lens.is_empty() {
                return;
            }
            self.send_parts(&[(addr, crc)], &parts);
        }
    }

    /// Send never-sent user messages now instead of at the next gossip round: every full
    /// packet at once, and a partial one once its oldest message has waited `broadcast_linger`.
    /// Each packet goes to `gossip_nodes` random members and counts as that many transmissions,
    /// so retransmit limits are exactly memberlist's; only the schedule is faster.
    pub(super) fn flush_fresh(&mut self) {
        let Some(linger) = self.config.broadcast_linger else { return };
        let budget = self.gossip_budget();
        let mut sent = false;
        loop {
            let fresh = self.user_queue.fresh_bytes(USER_OVERHEAD);
            let full = fresh >= budget;
            let lingered = self.fresh_since.is_some_and(|t| t + linger <= self.now);
            if fresh == 0 || !(full || lingered) {
                break;
            }
            let targets = self.gossip_targets();
            let copies = u32::try_from(targets.len()).unwrap_or(u32::MAX);
            if copies == 0 {
                break;
            }
            let mut parts = Parts::default();
            let fill = Fill {
                overhead: USER_OVERHEAD,
                budget,
                max_parts: COMPOUND_MAX_PARTS,
                nodes: self.num_alive(),
                copies,
                fresh_only: true,
            };
            self.take_user(&fill, &mut parts);
            if parts.lens.is_empty() {
                break;
            }
            self.send_parts(&targets, &parts);
            sent = true;
        }
        if self.user_queue.fresh_bytes(USER_OVERHEAD) == 0 {
            self.fresh_since = None;
        } else if sent || self.fresh_since.is_none() {
            self.fresh_since = Some(self.now);
        }
    }

    /// When [`Self::flush_fresh`] has work, if eager flushing is on.
    pub(super) fn flush_deadline(&self) -> Option<Millis> {
        let linger = self.config.broadcast_linger?;
        let since = self.fresh_since?;
        if self.user_queue.fresh_bytes(USER_OVERHEAD) >= self.gossip_budget() {
            Some(self.now)
        } else {
            Some(since + linger)
        }
    }

    /// One packet of `parts` to each target (sealed once per CRC setting).
    fn send_parts(&mut self, targets: &[(SocketAddr, bool)], parts: &Parts) {
        let payload;
        let payload_bytes = if parts.lens.len() == 1 {
            &parts.bytes
        } else {
            let mut compound = Vec::with_capacity(parts.bytes.len() + 2 * parts.lens.len() + 2);
            encode_compound(&parts.slices(), &mut compound).expect("BUG: parts are capped at 255");
            payload = compound;
            &payload
        };
        let mut sealed: [Option<Vec<u8>>; 2] = [None, None];
        for &(addr, crc) in targets {
            let packet = sealed[usize::from(crc)].get_or_insert_with(|| {
                let mut p = Vec::with_capacity(payload_bytes.len() + 16);
                self.codec.seal_packet(payload_bytes, crc, &mut p);
                p
            });
            let bytes = packet.clone();
            self.push_transmit(addr, bytes);
        }
    }

    /// A user message for one member, over UDP (memberlist `SendBestEffort`).
    pub(super) fn send_user_packet(&mut self, to: SocketAddr, msg: &[u8]) {
        let mut plain = Vec::with_capacity(msg.len() + 1);
        Message::User(msg).encode(self.codec.ints, &mut plain);
        let crc = self.members.iter().any(|m| m.addr == to && m.vsn.protocol_max() >= 5);
        self.seal_and_send(to, crc, &plain);
    }

    /// A user message for one member, over a TCP stream (memberlist `SendReliable`).
    pub(super) fn send_user_stream(
        &mut self,
        to: SocketAddr,
        msg: &[u8],
    ) -> Option<super::StreamId> {
        let mut plain = Vec::with_capacity(msg.len() + 16);
        StreamMessage::User(msg).encode(self.codec.ints, &mut plain);
        let mut sealed = Vec::with_capacity(plain.len() / 2 + 64);
        self.codec.seal_stream(&plain, true, &mut sealed);
        let deadline = self.now + self.config.tcp_timeout;
        self.push_stream(to, sealed, PendingStream::Reliable { peer: to, deadline }, deadline)
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
        self.push_stream(peer, bytes, PendingStream::PushPull { peer, join, deadline }, deadline)
            .is_some()
    }

    /// Our full state as a sealed stream message.
    pub(super) fn encode_push_pull(&mut self, join: bool, dialer: bool) -> Vec<u8> {
        let user_state = self.delegate.local_state(self.now, join);
        let nodes: Vec<PushNodeState<'_>> = self.members.iter().map(|m| m.push_state()).collect();
        let msg = StreamMessage::PushPull(PushPull { join, nodes, user_state: &user_state });
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
                let ack = crate::core::wire::Ack { payload: None, seq_no: ping.seq_no };
                let mut plain = Vec::with_capacity(32);
                StreamMessage::Ack(ack).encode(self.codec.ints, &mut plain);
                let mut sealed = Vec::with_capacity(64);
                self.codec.seal_stream(&plain, false, &mut sealed);
                Some(sealed)
            }
            StreamMessage::User(bytes) => {
                self.delegate.notify_msg(self.now, bytes);
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
                    let port =
                        if node.port == 0 { self.config.advertise.port() } else { node.port };
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
            self.delegate.merge_remote_state(self.now, remote.user_state, join);
        }
        Ok(())
    }

    /// memberlist `verifyProtocol`: every node of both views must be able to speak a protocol
    /// and delegate version that every alive node understands. A node without a full `Vsn`
    /// counts as version 0 and fails.
    fn verify_protocol(&self, remote: &[PushNodeState<'_>]) -> bool {
        let (mut pmin, mut pmax, mut dmin, mut dmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        let local_alive =
            self.members.iter().filter(|m| m.state == MemberState::Alive).map(|m| m.vsn);
        let remote_alive =
            remote.iter().filter(|n| n.state == NodeStateKind::Alive).filter_map(|n| n.vsn);
        for v in remote_alive.chain(local_alive) {
            pmin = pmin.max(v.protocol_min());
            pmax = pmax.min(v.protocol_max());
            dmin = dmin.max(v.delegate_min());
            dmax = dmax.min(v.delegate_max());
        }
        let ok =
            |pcur: u8, dcur: u8| (pmin..=pmax).contains(&pcur) && (dmin..=dmax).contains(&dcur);
        let remote_ok =
            remote.iter().all(|n| n.vsn.is_some_and(|v| ok(v.protocol_cur(), v.delegate_cur())));
        remote_ok && self.members.iter().all(|m| ok(m.vsn.protocol_cur(), m.vsn.delegate_cur()))
    }
}
