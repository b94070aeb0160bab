//! One connection to Redis as the peer sees it: idle (not wanted now), down (and when to
//! retry), connecting, or up; what was sent on it and not answered yet; the reconnect backoff.

use std::collections::VecDeque;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use crate::core::Millis;

/// The peer's connections. Grafana opens one per subscription and a pool for commands;
/// one subscriber connection carries every channel here, and one command connection carries
/// every command, pipelined. With Redis Sentinel a third one talks to a Sentinel: it asks for
/// the master and listens for its changes. With Redis Cluster the command link talks to any
/// node (the slot map, publishes: pub/sub is cluster-wide), and one [`Link::Master`] per
/// master carries the keyed commands of its slots and its share of the membership scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Link {
    /// Heartbeats, membership scans, publishes (in Cluster mode: the slot map, publishes).
    Command,
    /// `SUBSCRIBE`d to the full-state, request and state channels.
    Subscriber,
    /// To one Sentinel (Sentinel mode only): `SENTINEL GET-MASTER-ADDR-BY-NAME`, then
    /// `SUBSCRIBE +switch-master`.
    Sentinel,
    /// To one master of a Redis Cluster (Cluster mode only), by its index in the peer's
    /// table of masters (below [`MAX_MASTERS`]).
    Master(u8),
}

/// Most masters of a Redis Cluster the peer keeps links to; a slot map naming more is
/// refused (counted as unexpected) beyond them. Clusters of that size are far larger than
/// HA peers need, and the bound keeps the driver's connection table fixed.
pub const MAX_MASTERS: usize = 16;

impl Link {
    /// How many links there are: the three of every mode and [`MAX_MASTERS`].
    pub const COUNT: usize = 3 + MAX_MASTERS;
    /// Every link, in a fixed order ([`Self::index`]).
    pub const ALL: [Link; Link::COUNT] = Link::all();
    /// The links to the data server (the master, in Sentinel mode).
    pub const DATA: [Link; 2] = [Link::Command, Link::Subscriber];

    const fn all() -> [Link; Link::COUNT] {
        let mut all = [Link::Command; Link::COUNT];
        all[1] = Link::Subscriber;
        all[2] = Link::Sentinel;
        let mut i = 0;
        while i < MAX_MASTERS {
            // MAX_MASTERS fits a u8.
            all[3 + i] = Link::Master(i as u8);
            i += 1;
        }
        all
    }

    /// Its position in [`Self::ALL`] (and in per-link tables).
    pub fn index(self) -> usize {
        match self {
            Link::Command => 0,
            Link::Subscriber => 1,
            Link::Sentinel => 2,
            Link::Master(i) => 3 + usize::from(i),
        }
    }

    /// A name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Command => "command",
            Link::Subscriber => "subscriber",
            Link::Sentinel => "sentinel",
            Link::Master(_) => "master",
        }
    }
}

/// Why a link went down, for the `reason` label of the connection-error counter. The driver
/// names the transport's failures; the peer names the ones it decides (timeouts, refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LinkFailure {
    /// The TCP connect failed (refused, unreachable).
    Connect,
    /// The host name did not resolve.
    Resolve,
    /// The TLS handshake or session failed (certificate, name, alert from the server).
    Tls,
    /// Redis refused `AUTH` (wrong password, unknown user).
    Auth,
    /// Redis refused another handshake command (`SELECT` of a missing database, ...).
    Refused,
    /// Redis closed the connection.
    Closed,
    /// Reading or writing the socket failed.
    Io,
    /// Redis sent bytes that are not RESP, or a reply too large.
    Protocol,
    /// The connect or a reply took too long.
    Timeout,
    /// A Sentinel does not know the configured master name.
    UnknownMaster,
    /// The master moved (a Sentinel said so), or the server refused to act as one
    /// (`READONLY`, `LOADING`, `MASTERDOWN`): the links go to the master the Sentinels name.
    Failover,
    /// A Redis Cluster master left the slot map: its link is closed.
    Removed,
}

impl LinkFailure {
    /// Every reason, in a fixed order.
    pub const ALL: [LinkFailure; 12] = [
        LinkFailure::Connect,
        LinkFailure::Resolve,
        LinkFailure::Tls,
        LinkFailure::Auth,
        LinkFailure::Refused,
        LinkFailure::Closed,
        LinkFailure::Io,
        LinkFailure::Protocol,
        LinkFailure::Timeout,
        LinkFailure::UnknownMaster,
        LinkFailure::Failover,
        LinkFailure::Removed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkFailure::Connect => "connect",
            LinkFailure::Resolve => "resolve",
            LinkFailure::Tls => "tls",
            LinkFailure::Auth => "auth",
            LinkFailure::Refused => "refused",
            LinkFailure::Closed => "closed",
            LinkFailure::Io => "io",
            LinkFailure::Protocol => "protocol",
            LinkFailure::Timeout => "timeout",
            LinkFailure::UnknownMaster => "unknown_master",
            LinkFailure::Failover => "failover",
            LinkFailure::Removed => "removed",
        }
    }

    /// Its index in [`Self::ALL`] and in the counters by reason.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// First retry delay after a failure (Grafana's unused `networkRetryIntervalMin`).
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay (Grafana's `networkRetryIntervalMax`).
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connect that has not completed by then is abandoned and retried.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Not wanted now: the Sentinel link outside Sentinel mode, the data links before a
    /// Sentinel has named the master.
    Idle,
    /// Not connected; open again at `retry_at`.
    Down { retry_at: Millis },
    /// The driver is connecting; give up at `deadline`.
    Connecting { deadline: Millis },
    /// Connected.
    Up,
}

/// What a sent command was, to interpret its reply (replies come back in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    Auth,
    Select,
    Heartbeat,
    /// A `SCAN` page of the membership read with this number.
    Scan(u64),
    /// An `MGET` of the membership read with this number.
    Mget(u64, Vec<String>),
    /// `CLUSTER SLOTS`.
    Slots,
    /// `ASKING` (before a command redirected by `ASK`).
    Asking,
    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`.
    Master,
    /// A `PUBLISH` of an update, a full-state chunk or a request, and its payload size.
    Publish(super::MsgKind, usize),
    Del,
    Subscribe,
    Ping,
}

#[derive(Debug)]
pub(super) struct LinkState {
    pub(super) state: State,
    backoff: Duration,
    /// Connected at least once (a reconnect asks for the full states missed meanwhile).
    pub(super) ever_up: bool,
    /// Sent and not yet answered, oldest first, with when each was sent.
    pub(super) in_flight: VecDeque<(Sent, Millis)>,
    /// Handshake and protocol commands waiting to be sent (before any publish).
    pub(super) control: VecDeque<super::Command>,
}

impl LinkState {
    /// Being opened at `now` (the peer asks for both links at start).
    pub(super) fn new(now: Millis) -> Self {
        Self {
            state: State::Connecting { deadline: now + CONNECT_TIMEOUT },
            backoff: BACKOFF_MIN,
            ever_up: false,
            in_flight: VecDeque::new(),
            control: VecDeque::new(),
        }
    }

    /// Not wanted until [`Self::open`].
    pub(super) fn idle() -> Self {
        Self { state: State::Idle, ..Self::new(Millis(0)) }
    }

    /// Being opened at `now`, outside the backoff (a first open, or a move to a new master).
    pub(super) fn open(&mut self, now: Millis) {
        self.state = State::Connecting { deadline: now + CONNECT_TIMEOUT };
        self.in_flight.clear();
        self.control.clear();
    }

    pub(super) fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// The link failed: retry after the current backoff, with jitter so that peers that lost
    /// Redis together do not come back in lockstep; the next failure waits twice as long.
    pub(super) fn down(&mut self, now: Millis, rng: &mut SmallRng) {
        let max = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX).max(2);
        let wait = Duration::from_millis(rng.random_range(max / 2..=max));
        self.state = State::Down { retry_at: now + wait };
        self.backoff = self.backoff.saturating_mul(2).min(BACKOFF_MAX);
        self.in_flight.clear();
        self.control.clear();
    }

    /// A reply that is no error came back: the link works, the next failure retries fast.
    pub(super) fn healthy(&mut self) {
        self.backoff = BACKOFF_MIN;
    }

    /// When this link needs attention: its retry, connect deadline or oldest reply.
    pub(super) fn deadline(&self, reply_timeout: Duration) -> Option<Millis> {
        match self.state {
            State::Idle => None,
            State::Down { retry_at } => Some(retry_at),
            State::Connecting { deadline } => Some(deadline),
            State::Up => self.in_flight.front().map(|(_, at)| *at + reply_timeout),
        }
    }
}
