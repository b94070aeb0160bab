//! Failure detection: the probe cycle, indirect probes, the TCP fallback ping, and answering
//! other members' probes (memberlist `probe`, `probeNode`, `handlePing`, `handleIndirectPing`;
//! spec §8.2).
//!
//! One probe runs at a time. It sends a ping, waits `probe_timeout` for the ack, then asks
//! `indirect_checks` members to ping the target too and tries TCP, and gives up at the end of
//! the (awareness-scaled) probe interval, suspecting the target.

use std::net::SocketAddr;

use rand::RngExt;

use super::member::{IpWire, ip_from_bytes};
use super::{Delegate, MAX_RELAYS, PendingStream, Swim, Timer};
use crate::core::wire::{
    Ack, IndirectPing, Message, Nack, Ping, StreamMessage, Suspect, encode_compound,
};
use crate::core::{Incarnation, Millis, NodeName};

/// Our probe in flight.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    seq: u32,
    target: NodeName,
    target_incarnation: Incarnation,
    /// When the ping went out.
    sent: Millis,
    /// Indirect pings and the TCP ping have been sent.
    indirect: bool,
    expected_nacks: u32,
    nacks: u32,
    tcp_acked: bool,
}

/// An indirect probe we run on behalf of another member.
#[derive(Debug, Clone)]
pub(super) struct Relay {
    requester: SocketAddr,
    requester_seq: u32,
    nack: bool,
    expires: Millis,
}

impl<D: Delegate> Swim<D> {
    /// Probe the next member in round-robin order, reaping and reshuffling on each wrap.
    pub(super) fn start_probe(&mut self) {
        let mut checked = 0;
        while checked < self.members.len() {
            if self.probe_index >= self.members.len() {
                let cutoff = self.now - self.config.gossip_to_the_dead;
                let reaped = self.members.reap_and_shuffle(cutoff, &mut self.rng);
                if reaped > 0 {
                    self.stats.reaped += reaped as u64;
                    self.members_changed();
                }
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let member = self.members.at(self.probe_index).expect("BUG: index checked above");
            self.probe_index += 1;
            if member.name == self.config.name || member.state.is_gone() {
                checked += 1;
                continue;
            }
            let target = member.clone();
            self.probe_member(&target);
            return;
        }
    }

    fn probe_member(&mut self, target: &super::Member) {
        let seq = self.next_seq_no();
        let interval = self.awareness.scale(self.config.probe_interval);
        let ip = IpWire::new(self.config.advertise.ip());
        let me = self.config.name.clone();
        let ping = Ping {
            node: target.name.as_str(),
            seq_no: seq,
            source_addr: ip.as_slice(),
            source_node: me.as_str(),
            source_port: self.config.advertise.port(),
        };
        let crc = target.vsn.protocol_max() >= 5;
        if target.state == super::MemberState::Alive {
            self.send_with_piggyback(target.addr, crc, &Message::Ping(ping));
        } else {
            // A suspect target gets the accusation with the ping, so it can refute at once.
            let suspect = Suspect {
                from: me.as_str(),
                incarnation: target.incarnation.0,
                node: target.name.as_str(),
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            Message::Ping(ping).encode(self.codec.ints, &mut a);
            Message::Suspect(suspect).encode(self.codec.ints, &mut b);
            let mut compound = Vec::with_capacity(a.len() + b.len() + 6);
            encode_compound(&[&a, &b], &mut compound).expect("BUG: two small parts fit a compound");
            self.seal_and_send(target.addr, crc, &compound);
        }
        self.stats.probes += 1;
        self.probe = Some(Probe {
            seq,
            target: target.name.clone(),
            target_incarnation: target.incarnation,
            sent: self.now,
            indirect: false,
            expected_nacks: 0,
            nacks: 0,
            tcp_acked: false,
        });
        self.schedule(self.now + self.config.probe_timeout, Timer::ProbeTimeout(seq));
        self.schedule(self.now + interval, Timer::ProbeEnd(seq));
    }

    /// No direct ack within `probe_timeout`: ask others, and try TCP.
    pub(super) fn on_probe_timeout(&mut self, seq: u32) {
        let Some(probe) = self.probe.as_mut().filter(|p| p.seq == seq && !p.indirect) else {
            return;
        };
        probe.indirect = true;
        let target_name = probe.target.clone();
        let sent = probe.sent;
        let Some(target) = self.members.get(target_name.as_str()).cloned() else {
            return;
        };
        let mut helpers: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                self.members.at(i).is_some_and(|m| {
                    m.name != self.config.name
                        && m.name != target.name
                        && m.state == super::MemberState::Alive
                })
            })
            .collect();
        let k = self.config.indirect_checks.min(helpers.len());
        partial_shuffle(&mut helpers, k, &mut self.rng);
        let ip = IpWire::new(self.config.advertise.ip());
        let me = self.config.name.clone();
        let target_ip = IpWire::new(target.addr.ip());
        let mut expected_nacks = 0;
        for &i in &helpers[..k] {
            let helper = self.members.at(i).expect("BUG: index from the table").clone();
            // Nacks exist from protocol 4; asking an older peer for one would count its silence
            // against our own health.
            let nack = helper.vsn.protocol_max() >= 4;
            expected_nacks += u32::from(nack);
            let req = IndirectPing {
                nack,
                node: target.name.as_str(),
                port: target.addr.port(),
                seq_no: seq,
                source_addr: ip.as_slice(),
                source_node: me.as_str(),
                source_port: self.config.advertise.port(),
                target: target_ip.as_slice(),
            };
            self.send_with_piggyback(
                helper.addr,
                helper.vsn.protocol_max() >= 5,
                &Message::IndirectPing(req),
            );
        }
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = expected_nacks;
        }
        if !self.config.disable_tcp_pings && target.vsn.protocol_max() >= 3 {
            // The TCP ping must answer before the probe gives up.
            let deadline = sent + self.awareness.scale(self.config.probe_interval);
            self.send_tcp_ping(&target, seq, deadline);
        }
    }

    fn send_tcp_ping(&mut self, target: &super::Member, seq: u32, deadline: Millis) {
        let ip = IpWire::new(self.config.advertise.ip());
        let ping = Ping {
            node: target.name.as_str(),
            seq_no: seq,
            source_addr: ip.as_slice(),
            source_node: self.config.name.as_str(),
            source_port: self.config.advertise.port(),
        };
        let mut plain = Vec::with_capacity(96);
        StreamMessage::Ping(ping).encode(self.codec.ints, &mut plain);
        let mut bytes = Vec::with_capacity(plain.len() + 64);
        self.codec.seal_stream(&plain, true, &mut bytes);
        // At the stream bound the probe simply goes without its TCP fallback.
        let _ =
            self.push_stream(target.addr, bytes, PendingStream::Ping { seq, deadline }, deadline);
    }

    /// The probe interval is over.
    pub(super) fn on_probe_end(&mut self, seq: u32) {
        let Some(probe) = self.probe.take_if(|p| p.seq == seq) else {
            return;
        };
        if probe.tcp_acked {
            // UDP is broken but TCP works: the target is alive (memberlist logs a warning).
            self.awareness.apply(-1);
        } else {
            let missing = probe.expected_nacks.saturating_sub(probe.nacks);
            let delta = if probe.expected_nacks > 0 { missing } else { 1 };
            self.awareness.apply(i64::from(delta));
            self.stats.probes_failed += 1;
            let me = self.config.name.clone();
            self.apply_suspect(probe.target.as_str(), probe.target_incarnation, me.as_str());
        }
        self.start_due_probe();
    }

    fn start_due_probe(&mut self) {
        if self.probe_due && self.probe.is_none() {
            self.probe_due = false;
            self.start_probe();
        }
    }

    /// An ack: for our probe, or for one we relay.
    pub(super) fn on_ack(&mut self, seq: u32) {
        if let Some(probe) = self.probe.take_if(|p| p.seq == seq) {
            if self.rtts.len() >= 256 {
                self.rtts.pop_front();
            }
            self.rtts.push_back((probe.target, self.now.since(probe.sent)));
            self.awareness.apply(-1);
            self.start_due_probe();
        } else if let Some(relay) = self.relays.remove(&seq) {
            let ack = Ack { payload: None, seq_no: relay.requester_seq };
            self.send_with_piggyback(relay.requester, false, &Message::Ack(ack));
        }
    }

    /// A TCP ping was answered.
    pub(super) fn on_tcp_ack(&mut self, seq: u32) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.tcp_acked = true;
        }
    }

    /// A nack from a member we asked to probe indirectly: it is alive and working, so the
    /// silence is the target's, not ours.
    pub(super) fn on_nack(&mut self, seq: u32) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq && p.indirect) {
            p.nacks += 1;
        }
    }

    /// Answer a ping, if it is for us.
    pub(super) fn on_ping(&mut self, from: SocketAddr, ping: &Ping<'_>) {
        if !ping.node.is_empty() && ping.node != self.config.name.as_str() {
            self.stats.messages_ignored += 1;
            return;
        }
        let to = reply_addr(from, ping.source_addr, ping.source_port);
        let crc = self.members.get(ping.source_node).is_some_and(|m| m.vsn.protocol_max() >= 5);
        let payload = self.config.ack_payload.clone();
        let ack = Ack { payload: payload.as_deref(), seq_no: ping.seq_no };
        self.send_with_piggyback(to, crc, &Message::Ack(ack));
    }

    /// Probe `req.node` for the requester and relay the answer.
    pub(super) fn on_indirect_ping(&mut self, from: SocketAddr, req: &IndirectPing<'_>) {
        let Some(ip) = ip_from_bytes(req.target) else {
            self.stats.messages_ignored += 1;
            return;
        };
        if self.relays.len() >= MAX_RELAYS {
            self.stats.relays_refused += 1;
            return;
        }
        let port = if req.port == 0 { self.config.advertise.port() } else { req.port };
        let target = SocketAddr::new(ip, port);
        let seq = self.next_seq_no();
        let own_ip = IpWire::new(self.config.advertise.ip());
        let me = self.config.name.clone();
        let ping = Ping {
            node: req.node,
            seq_no: seq,
            source_addr: own_ip.as_slice(),
            source_node: me.as_str(),
            source_port: self.config.advertise.port(),
        };
        let crc = self.members.get(req.node).is_some_and(|m| m.vsn.protocol_max() >= 5);
        self.send_with_piggyback(target, crc, &Message::Ping(ping));
        let expires = self.now + self.config.probe_timeout;
        let requester = reply_addr(from, req.source_addr, req.source_port);
        self.relays
            .insert(seq, Relay { requester, requester_seq: req.seq_no, nack: req.nack, expires });
        self.schedule(expires, Timer::RelayExpire(seq));
    }

    /// A relayed probe got no ack in time: nack if asked to.
    pub(super) fn on_relay_expire(&mut self, seq: u32) {
        let Some(relay) = self.relays.remove(&seq) else {
            return;
        };
        if relay.expires > self.now {
            self.relays.insert(seq, relay);
            return;
        }
        if relay.nack {
            let nack = Nack { seq_no: relay.requester_seq };
            self.send_with_piggyback(relay.requester, false, &Message::Nack(nack));
        }
    }
}

/// Where to answer: the advertised source if the message carries one, else the packet's
/// source address.
fn reply_addr(from: SocketAddr, source_addr: &[u8], source_port: u16) -> SocketAddr {
    match ip_from_bytes(source_addr) {
        Some(ip) if source_port != 0 => SocketAddr::new(ip, source_port),
        _ => from,
    }
}

/// Move `k` uniformly chosen elements to the front of `items` (partial Fisher–Yates).
pub(super) fn partial_shuffle<T>(items: &mut [T], k: usize, rng: &mut rand::rngs::SmallRng) {
    for i in 0..k.min(items.len()) {
        let j = rng.random_range(i..items.len());
        items.swap(i, j);
    }
}
