//! The member table: who we know, in which state, and in what probe order.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::RngExt;
use rand::rngs::SmallRng;

use crate::core::wire::{NodeStateKind, PushNodeState, Vsn};
use crate::core::{Incarnation, Millis, NodeName};

/// A member's state as SWIM sees it (memberlist `NodeStateType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Failed a probe; will be declared dead unless it refutes in time.
    Suspect,
    /// Declared dead after an unrefuted suspicion.
    Dead,
    /// Left voluntarily.
    Left,
}

impl MemberState {
    /// Dead or left: no longer a member, kept only until reaped.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Dead | Self::Left)
    }

    pub(crate) fn wire(self) -> NodeStateKind {
        match self {
            Self::Alive => NodeStateKind::Alive,
            Self::Suspect => NodeStateKind::Suspect,
            Self::Dead => NodeStateKind::Dead,
            Self::Left => NodeStateKind::Left,
        }
    }
}

/// What we know about one node (ourselves included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node's name, its identity.
    pub name: NodeName,
    /// Where it gossips.
    pub addr: SocketAddr,
    /// Its delegate metadata.
    pub meta: Vec<u8>,
    /// The latest incarnation we heard.
    pub incarnation: Incarnation,
    /// Its state.
    pub state: MemberState,
    /// Its protocol and delegate versions.
    pub vsn: Vsn,
    /// When `state` last changed, by our clock.
    pub state_change: Millis,
    pub(crate) ip_wire: IpWire,
}

impl Member {
    pub(crate) fn new(name: NodeName, addr: SocketAddr, now: Millis) -> Self {
        Self {
            name,
            addr,
            meta: Vec::new(),
            incarnation: Incarnation(0),
            state: MemberState::Dead,
            vsn: Vsn([0; 6]),
            state_change: now,
            ip_wire: IpWire::new(addr.ip()),
        }
    }

    pub(crate) fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = addr;
        self.ip_wire = IpWire::new(addr.ip());
    }

    /// The push/pull entry describing this member.
    pub(crate) fn push_state(&self) -> PushNodeState<'_> {
        PushNodeState {
            addr: Some(self.ip_wire.as_slice()),
            incarnation: self.incarnation.0,
            meta: Some(&self.meta),
            name: self.name.as_str(),
            port: self.addr.port(),
            state: self.state.wire(),
            vsn: Some(self.vsn),
        }
    }
}

/// An IP as it travels: 4 bytes for IPv4, 16 for IPv6 (including IPv4-mapped IPv6, which Go
/// emits when it picked the address itself). Kept beside the `SocketAddr` so that push/pull
/// entries can borrow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpWire {
    bytes: [u8; 16],
    len: u8,
}

impl IpWire {
    pub(crate) fn new(ip: IpAddr) -> Self {
        let mut bytes = [0; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                16
            }
        };
        Self { bytes, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Parse a wire address: exactly 4 or 16 bytes.
pub(crate) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes).ok().map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// Every member, in probe order, with a name index.
///
/// New members go to a random position (memberlist `aliveNode`): if all nodes appended, the
/// ones added last would be probed last everywhere and failure detection would be slow for
/// them.
#[derive(Debug, Default)]
pub(crate) struct Members {
    list: Vec<Member>,
    index: BTreeMap<NodeName, usize>,
}

impl Members {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Member> {
        self.index.get(name).map(|&i| &self.list[i])
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Member> {
        self.index.get(name).map(|&i| &mut self.list[i])
    }

    pub(crate) fn at(&self, i: usize) -> Option<&Member> {
        self.list.get(i)
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.list.iter()
    }

    /// Insert at a random position of the probe order.
    pub(crate) fn insert(&mut self, member: Member, rng: &mut SmallRng) {
        debug_assert!(!self.index.contains_key(&member.name), "BUG: duplicate member");
        let n = self.list.len();
        self.index.insert(member.name.clone(), n);
        self.list.push(member);
        let offset = if n == 0 { 0 } else { rng.random_range(0..n) };
        self.swap(offset, n);
    }

    /// Drop dead and left members whose state changed before `cutoff`, then shuffle the rest
    /// (memberlist `resetNodes`, run when the probe index wraps). Returns how many were reaped.
    pub(crate) fn reap_and_shuffle(&mut self, cutoff: Millis, rng: &mut SmallRng) -> usize {
        let before = self.list.len();
        self.list.retain(|m| !(m.state.is_gone() && m.state_change < cutoff));
        for i in (1..self.list.len()).rev() {
            let j = rng.random_range(0..=i);
            self.list.swap(i, j);
        }
        self.reindex();
        before - self.list.len()
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.list.swap(a, b);
        for i in [a, b] {
            let name = self.list[i].name.clone();
            self.index.insert(name, i);
        }
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (i, m) in self.list.iter().enumerate() {
            self.index.insert(m.name.clone(), i);
        }
    }
}
