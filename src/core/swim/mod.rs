//! SWIM membership with Lifeguard, as hashicorp/memberlist implements it, sans-IO.
//!
//! [`Swim`] is one member's protocol state. It never reads a clock, draws OS randomness or
//! touches a socket: the driver feeds it inputs and drains its outputs, in this order:
//!
//! ```text
//!   inputs    handle_packet(now, from, bytes)        a UDP datagram arrived
//!             handle_stream(now, from, bytes)        a peer opened a TCP stream (one frame)
//!             handle_stream_reply(now, id, result)   a stream we asked for finished
//!             handle_timeout(now)                    poll_timeout()'s deadline passed
//!             join / broadcast / leave / update_meta commands from the host
//!   outputs   poll_transmit()   datagrams to send
//!             poll_stream()     TCP streams to open (bytes to write, reply expected or not)
//!             poll_event()      membership changes and results for the host
//!             poll_timeout()    when to call handle_timeout next
//! ```
//!
//! After any input, drain every `poll_*` before sleeping. Early or repeated `handle_timeout`
//! calls are harmless. `now` must not go backwards (earlier readings are treated as the latest
//! one seen).
//!
//! The rules follow memberlist 0.5 (`state.go`) closely — incarnation comparisons, refutation,
//! suspicion confirmations, push/pull merge, reaping — because a hearsay node must reach the
//! same conclusions as the Go nodes it shares a cluster with.

mod gossip;
mod member;
mod probe;
mod rules;
mod suspicion;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

pub use member::{Member, MemberState};

use super::broadcast::{BroadcastQueue, QueueFull, QueueStats};
use super::config::{ConfigError, SwimConfig};
use super::wire::{Alive, Codec, Keyring, Message, PacketSummary, RejectReason, WireError};
use super::{Incarnation, Millis, NodeName};
use member::Members;
use probe::{Probe, Relay};
use suspicion::{Awareness, Suspicion};

/// The user-state hook of push/pull and the sink of user messages (memberlist `Delegate`).
/// The cluster layer implements it; `()` carries no state. `now` is the core's clock.
pub trait Delegate {
    /// Our state for a push/pull, sent to a peer (`join` when the exchange is a join).
    fn local_state(&mut self, _now: Millis, _join: bool) -> Vec<u8> {
        Vec::new()
    }
    /// A peer's state from a push/pull. Called after its membership part was merged.
    fn merge_remote_state(&mut self, _now: Millis, _state: &[u8], _join: bool) {}
    /// A user message arrived, by gossip or by a reliable stream.
    fn notify_msg(&mut self, _now: Millis, _msg: &[u8]) {}
}

impl Delegate for () {}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The complete packet, label and all.
    pub bytes: Vec<u8>,
}

/// Identifies a stream the core asked the driver to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

/// A TCP exchange for the driver to carry out: connect to `to`, write `bytes`, and — when
/// `expect_reply` — read one stream frame back. Report the outcome of every request through
/// [`Swim::handle_stream_reply`] by `deadline`: the reply frame (or an empty one when no reply
/// is expected and the bytes were written), or why it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    /// Handle to report the outcome with.
    pub id: StreamId,
    /// Destination.
    pub to: SocketAddr,
    /// What to write (label header first when configured).
    pub bytes: Vec<u8>,
    /// Whether a reply frame is expected.
    pub expect_reply: bool,
    /// When the whole exchange must be over.
    pub deadline: Millis,
}

/// Why a stream exchange failed, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamFailure {
    /// Could not connect.
    #[error("connect failed")]
    Connect,
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The connection broke or closed early.
    #[error("connection closed")]
    Closed,
    /// The reply could not be decoded.
    #[error("bad reply: {0}")]
    Wire(#[from] WireError),
    /// The peer answered with an error message.
    #[error("peer error: {0}")]
    Peer(String),
    /// The peer answered with a message that does not answer the request.
    #[error("unexpected reply")]
    Unexpected,
}

/// How a member changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Became alive (new, or back from dead/left). memberlist `NotifyJoin`.
    Joined,
    /// Its metadata changed. memberlist `NotifyUpdate`.
    Updated,
    /// Left voluntarily. memberlist `NotifyLeave` with state Left.
    Left,
    /// Declared dead. memberlist `NotifyLeave` with state Dead.
    Failed,
}

/// What the host hears from the core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A member changed; `member` is the new view.
    Member {
        /// What happened.
        change: MemberChange,
        /// The member after the change.
        member: Member,
    },
    /// Another address claimed the name of a live member; the claim was ignored.
    Conflict {
        /// The member as we know it.
        existing: Member,
        /// The address that claimed its name.
        other: SocketAddr,
    },
    /// A reliable user message ([`Swim::send_reliable`]) was delivered or failed.
    Reliable {
        /// The stream that carried it.
        id: StreamId,
        /// The destination.
        peer: SocketAddr,
        /// Outcome.
        result: Result<(), StreamFailure>,
    },
    /// A push/pull finished (`join` = it was part of a join).
    PushPull {
        /// The peer we exchanged with.
        peer: SocketAddr,
        /// Whether it was a join.
        join: bool,
        /// Outcome.
        result: Result<(), StreamFailure>,
    },
    /// Our leave message has been gossiped (or nobody was left to tell).
    LeaveComplete,
}

/// Why a broadcast was refused. The queue is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The queue is at its bound with messages not yet sent once.
    #[error("broadcast queue is full")]
    QueueFull,
    /// The message does not fit one gossip packet.
    #[error("message of {len} bytes exceeds the {max}-byte gossip limit")]
    TooLarge {
        /// The message length.
        len: usize,
        /// The largest message that fits.
        max: usize,
    },
}

/// Counters for metrics. Every bound that is hit and every peer error is counted here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SwimStats {
    /// Datagrams handed to `handle_packet`.
    pub packets_received: u64,
    /// Datagrams rejected whole (bad label, CRC, compression, garbage).
    pub packets_rejected: u64,
    /// Messages inside packets that were skipped as malformed or truncated.
    pub messages_malformed: u64,
    /// Messages carrying nonsense (bad address, short `Vsn`, unknown state) that were ignored.
    pub messages_ignored: u64,
    /// Datagrams queued for sending.
    pub packets_sent: u64,
    /// Datagrams dropped because the driver did not drain `poll_transmit`.
    pub transmits_dropped: u64,
    /// Events dropped because the host did not drain `poll_event`.
    pub events_dropped: u64,
    /// Alives for new names refused because `max_members` was reached.
    pub members_refused: u64,
    /// Name conflicts seen.
    pub conflicts: u64,
    /// Indirect-probe requests refused because too many were in flight.
    pub relays_refused: u64,
    /// Streams (inbound or replies) that failed to decode.
    pub streams_rejected: u64,
    /// Push/pull merges refused by protocol-version verification.
    pub push_pull_incompatible: u64,
    /// Probes started.
    pub probes: u64,
    /// Probes that ended without an ack.
    pub probes_failed: u64,
    /// Refutations we sent.
    pub refutations: u64,
    /// Members reaped from the table.
    pub reaped: u64,
    /// Streams that the driver never reported (cleaned up at their deadline).
    pub streams_abandoned: u64,
    /// Datagrams dropped because they did not decrypt (no installed key opens them, or they
    /// were plain while encryption is verified). Also counted in `packets_rejected`.
    pub packets_undecryptable: u64,
    /// Streams (inbound or replies) refused because they did not decrypt or were plain while
    /// encryption is verified. Also counted in `streams_rejected`.
    pub streams_undecryptable: u64,
    /// `packets_rejected` by reason, indexed by [`RejectReason::index`].
    pub packets_rejected_by: [u64; RejectReason::ALL.len()],
    /// `streams_rejected` by reason, indexed by [`RejectReason::index`] (streams the driver
    /// could not delimit included, see [`Swim::count_rejected_stream`]).
    pub streams_rejected_by: [u64; RejectReason::ALL.len()],
}

/// Most in-flight indirect probes we run for others. Each costs a ping we send: the bound stops
/// a hostile peer from turning us into an amplifier.
const MAX_RELAYS: usize = 256;
/// Most undrained datagrams; the driver drains after every call, so this only bites on a bug.
const MAX_TRANSMITS: usize = 65_536;
/// Most in-flight streams we asked for.
const MAX_STREAMS: usize = 1024;
/// Grace after a stream's deadline before the core forgets it.
const STREAM_GRACE: Duration = Duration::from_secs(1);

/// A timer in the heap. Each is validated when it fires: stale entries (a probe that already
/// ended, a suspicion that was refuted) are skipped, so nothing needs cancelling.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    ProbeTimeout(u32),
    ProbeEnd(u32),
    RelayExpire(u32),
    Suspicion(NodeName, u64),
    StreamExpire(StreamId),
}

/// A packet or stream a peer sent that was refused: what the host's log line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// `packet` or `stream`.
    pub what: &'static str,
    /// The sender, when known.
    pub from: Option<SocketAddr>,
    /// Why.
    pub error: WireError,
}

#[derive(Clone, Debug)]
enum PendingStream {
    PushPull { peer: SocketAddr, join: bool, deadline: Millis },
    Ping { seq: u32, deadline: Millis },
    Reliable { peer: SocketAddr, deadline: Millis },
}

/// One member's SWIM state machine. See the module docs for the calling protocol.
#[derive(Debug)]
pub struct Swim<D: Delegate = ()> {
    config: SwimConfig,
    codec: Arc<Codec>,
    delegate: D,
    rng: SmallRng,
    now: Millis,
    members: Members,
    suspicions: BTreeMap<NodeName, Suspicion>,
    awareness: Awareness,
    seq_no: u32,
    generation: u64,
    leaving: bool,
    leave_token: Option<u64>,
    /// The latest refused packet or stream, until the host takes it for its log.
    last_rejection: Option<Rejected>,
    /// When the oldest never-sent user message was queued (eager flushing).
    fresh_since: Option<Millis>,
    /// Bumped on every change to the member table, so drivers can republish it cheaply.
    members_version: u64,
    /// Probe round trips not yet collected: (member, rtt).
    rtts: VecDeque<(NodeName, Duration)>,
    probe_index: usize,
    probe: Option<Probe>,
    probe_due: bool,
    relays: BTreeMap<u32, Relay>,
    next_probe: Millis,
    next_gossip: Millis,
    next_push_pull: Option<Millis>,
    timers: BinaryHeap<Reverse<(Millis, Timer)>>,
    membership_queue: BroadcastQueue,
    user_queue: BroadcastQueue,
    streams: BTreeMap<StreamId, PendingStream>,
    next_stream: u64,
    transmits: VecDeque<Transmit>,
    stream_requests: VecDeque<StreamRequest>,
    events: VecDeque<Event>,
    stats: SwimStats,
}

impl<D: Delegate> Swim<D> {
    /// Start a member: it is alive (incarnation 1, never 0: an alive with incarnation 0 leaves
    /// a phantom dead entry on Go peers) and alone until [`Self::join`]. `seed` drives every
    /// random choice; the same seed and inputs give the same outputs.
    ///
    /// A member with [`SwimConfig::secret_keys`] must be started with
    /// [`Self::with_nonce_seed`]; this constructor refuses one.
    pub fn new(
        config: SwimConfig,
        delegate: D,
        seed: u64,
        now: Millis,
    ) -> Result<Self, ConfigError> {
        if !config.secret_keys.is_empty() {
            return Err(ConfigError::OutOfBounds {
                field: "secret_keys",
                reason: "an encrypting member needs a nonce seed (Swim::with_nonce_seed)",
            });
        }
        Self::start(config, delegate, seed, None, now)
    }

    /// [`Self::new`] for a member that may encrypt: `nonce_seed` seeds the keyring's nonce
    /// generator. It must be fresh OS entropy in a real node and never the replayable `seed`:
    /// nodes sharing a key and a seed would otherwise repeat GCM nonces (see
    /// [`crate::core::wire::keyring`]). Without secret keys it is unused.
    pub fn with_nonce_seed(
        config: SwimConfig,
        delegate: D,
        seed: u64,
        nonce_seed: [u8; 32],
        now: Millis,
    ) -> Result<Self, ConfigError> {
        Self::start(config, delegate, seed, Some(nonce_seed), now)
    }

    fn start(
        config: SwimConfig,
        delegate: D,
        seed: u64,
        nonce_seed: Option<[u8; 32]>,
        now: Millis,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut codec = config.codec();
        if let (false, Some(nonce_seed)) = (config.secret_keys.is_empty(), nonce_seed) {
            // Validated above: 1..=32 keys, each of a valid length by construction.
            codec.keyring = Keyring::new(&config.secret_keys, nonce_seed).ok();
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        // Random stagger, as memberlist's tickers, so a cluster started at once does not probe
        // and gossip in lockstep.
        let next_probe = now + stagger(&mut rng, config.probe_interval);
        let next_gossip = now + stagger(&mut rng, config.gossip_interval);
        let next_push_pull = (!config.push_pull_interval.is_zero())
            .then(|| now + stagger(&mut rng, config.push_pull_interval));
        let user_mult = config.user_retransmit_mult.unwrap_or(gossip_nodes_mult(&config));
        let mut swim = Self {
            codec: Arc::new(codec),
            membership_queue: BroadcastQueue::new(
                config.retransmit_mult,
                config.membership_queue_len,
            ),
            user_queue: BroadcastQueue::new(user_mult, config.user_queue_len),
            awareness: Awareness::new(config.awareness_max_multiplier),
            config,
            delegate,
            rng,
            now,
            members: Members::default(),
            suspicions: BTreeMap::new(),
            seq_no: 0,
            generation: 0,
            leaving: false,
            leave_token: None,
            last_rejection: None,
            fresh_since: None,
            members_version: 0,
            rtts: VecDeque::new(),
            probe_index: 0,
            probe: None,
            probe_due: false,
            relays: BTreeMap::new(),
            next_probe,
            next_gossip,
            next_push_pull,
            timers: BinaryHeap::new(),
            streams: BTreeMap::new(),
            next_stream: 0,
            transmits: VecDeque::new(),
            stream_requests: VecDeque::new(),
            events: VecDeque::new(),
            stats: SwimStats::default(),
        };
        swim.announce_self(Incarnation(1));
        Ok(swim)
    }

    // ---- commands ----

    /// Push/pull with each address (`join = true`); results arrive as [`Event::PushPull`].
    /// memberlist `Join`. Returns the addresses refused because too many streams are in flight:
    /// no event will come for those.
    pub fn join(&mut self, now: Millis, peers: &[SocketAddr]) -> Vec<SocketAddr> {
        self.advance(now);
        peers.iter().copied().filter(|p| !self.start_push_pull(*p, true)).collect()
    }

    /// Queue a user message for gossip to every member (memberlist `Delegate.GetBroadcasts`).
    /// It is piggybacked on probes and gossip, `retransmit × ceil(log10(n+1))` times, and sent
    /// eagerly when `broadcast_linger` is set. A message that cannot fit one gossip packet is
    /// refused: send it with [`Self::send_reliable`] to each member instead, as Alertmanager
    /// does above 700 bytes.
    pub fn broadcast(&mut self, msg: Vec<u8>) -> Result<(), BroadcastError> {
        if msg.len() + 3 > self.gossip_budget() {
            return Err(BroadcastError::TooLarge {
                len: msg.len(),
                max: self.gossip_budget().saturating_sub(3),
            });
        }
        self.user_queue.push(msg, None, None).map_err(|QueueFull| BroadcastError::QueueFull)?;
        self.fresh_since.get_or_insert(self.now);
        Ok(())
    }

    /// Whether [`Self::broadcast`] would queue a message that fits a packet now.
    pub fn can_broadcast(&self) -> bool {
        self.user_queue.has_room()
    }

    /// Send a user message to one address over UDP, once (memberlist `SendBestEffort`).
    pub fn send_best_effort(&mut self, now: Millis, to: SocketAddr, msg: &[u8]) {
        self.advance(now);
        self.send_user_packet(to, msg);
    }

    /// Send a user message to one address over a TCP stream (memberlist `SendReliable`).
    /// Its outcome arrives as [`Event::Reliable`]. `None` when too many streams are in flight.
    pub fn send_reliable(&mut self, now: Millis, to: SocketAddr, msg: &[u8]) -> Option<StreamId> {
        self.advance(now);
        self.send_user_stream(to, msg)
    }

    /// Leave the cluster: gossip that we left (a `dead` about ourselves from ourselves, which
    /// peers record as Left, not Failed). [`Event::LeaveComplete`] follows once the message has
    /// been sent its retransmit limit, or at once when nobody else is alive.
    pub fn leave(&mut self, now: Millis) {
        self.advance(now);
        if self.leaving {
            return;
        }
        self.leaving = true;
        let me = self.local().clone();
        let token = self.next_generation();
        self.leave_token = Some(token);
        self.apply_dead(me.name.as_str(), me.incarnation, me.name.as_str(), Some(token));
        let anyone_alive = self.members.iter().any(|m| m.name != me.name && !m.state.is_gone());
        if !anyone_alive {
            self.leave_token = None;
            self.push_event(Event::LeaveComplete);
        }
    }

    /// Change our metadata (≤ 512 bytes) and announce it with a new incarnation.
    pub fn update_meta(&mut self, now: Millis, meta: Vec<u8>) -> Result<(), ConfigError> {
        self.advance(now);
        if meta.len() > super::wire::META_MAX_LEN {
            return Err(ConfigError::OutOfBounds {
                field: "meta",
                reason: "must be at most 512 bytes",
            });
        }
        self.config.meta = meta;
        let inc = Incarnation(self.local().incarnation.0.saturating_add(1));
        self.announce_self(inc);
        Ok(())
    }

    // ---- inputs ----

    /// A datagram arrived from `from`. Every message in it is applied; malformed parts are
    /// counted and skipped. On `Err` nothing was applied.
    pub fn handle_packet(
        &mut self,
        now: Millis,
        from: SocketAddr,
        packet: &[u8],
    ) -> Result<PacketSummary, WireError> {
        self.advance(now);
        self.stats.packets_received += 1;
        let codec = Arc::clone(&self.codec);
        let result = codec.decode_packet(packet, &mut |msg| self.on_message(from, msg));
        match &result {
            Ok(s) => self.stats.messages_malformed += (s.malformed + s.truncated) as u64,
            Err(e) => {
                self.stats.packets_rejected += 1;
                self.stats.packets_rejected_by[e.reason().index()] += 1;
                self.stats.packets_undecryptable += u64::from(matches!(e, WireError::Decrypt(_)));
                self.last_rejection =
                    Some(Rejected { what: "packet", from: Some(from), error: e.clone() });
            }
        }
        result
    }

    /// A peer opened a stream to us and `frame` is its first complete frame (as
    /// [`Codec::stream_frame`] delimits it, label included). Returns the reply to write, if
    /// any; either way the driver closes the stream afterwards.
    pub fn handle_stream(
        &mut self,
        now: Millis,
        from: SocketAddr,
        frame: &[u8],
    ) -> Result<Option<Vec<u8>>, WireError> {
        self.advance(now);
        let codec = Arc::clone(&self.codec);
        let result = codec.decode_stream(frame, true, |msg| self.on_stream(from, msg));
        if let Err(e) = &result {
            self.count_rejected_stream(Some(from), e);
        }
        result
    }

    /// A stream we asked for ended: `Ok(frame)` is the reply frame, `Err` why there is none.
    pub fn handle_stream_reply(
        &mut self,
        now: Millis,
        id: StreamId,
        reply: Result<&[u8], StreamFailure>,
    ) {
        self.advance(now);
        let Some(pending) = self.streams.remove(&id) else {
            return;
        };
        if let PendingStream::Reliable { peer, .. } = pending {
            self.push_event(Event::Reliable { id, peer, result: reply.map(|_| ()) });
            return;
        }
        let codec = Arc::clone(&self.codec);
        let outcome = match reply {
            Ok(frame) => codec
                .decode_stream(frame, false, |msg| self.on_stream_reply(&pending, msg))
                .unwrap_or_else(|e| {
                    let peer = match &pending {
                        PendingStream::PushPull { peer, .. } => Some(*peer),
                        _ => None,
                    };
                    self.count_rejected_stream(peer, &e);
                    Err(StreamFailure::Wire(e))
                }),
            Err(failure) => Err(failure),
        };
        if let PendingStream::PushPull { peer, join, .. } = pending {
            self.push_event(Event::PushPull { peer, join, result: outcome });
        }
    }

    /// Run every timer due at `now`: probe, gossip and push/pull rounds, probe deadlines,
    /// suspicion expiry.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.advance(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > self.now {
                break;
            }
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            self.fire(timer);
        }
        if self.next_probe <= self.now {
            self.next_probe = self.now.max(self.next_probe + self.config.probe_interval);
            self.probe_due = true;
        }
        if self.probe_due && self.probe.is_none() {
            self.probe_due = false;
            self.start_probe();
        }
        if self.next_gossip <= self.now {
            self.next_gossip = self.now.max(self.next_gossip + self.config.gossip_interval);
            self.gossip();
        }
        if self.flush_deadline().is_some_and(|at| at <= self.now) {
            self.flush_fresh();
        }
        if let Some(at) = self.next_push_pull.filter(|at| *at <= self.now) {
            let interval = push_pull_scale(self.config.push_pull_interval, self.members.len());
            self.next_push_pull = Some(self.now.max(at + interval));
            self.periodic_push_pull();
        }
    }

    // ---- outputs ----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next stream to open.
    pub fn poll_stream(&mut self) -> Option<StreamRequest> {
        self.stream_requests.pop_front()
    }

    /// The next event for the host.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut next = self.next_gossip.min(self.next_probe);
        if let Some(p) = self.next_push_pull {
            next = next.min(p);
        }
        if let Some(Reverse((at, _))) = self.timers.peek() {
            next = next.min(*at);
        }
        if let Some(at) = self.flush_deadline() {
            next = next.min(at);
        }
        Some(next)
    }

    // ---- accessors ----

    /// Every member we know, ourselves and dead/left ones included, in probe order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// Ourselves.
    pub fn local(&self) -> &Member {
        self.members.get(self.config.name.as_str()).expect("BUG: the local member is never removed")
    }

    /// Members not dead or left, ourselves included (memberlist `NumMembers`).
    pub fn num_alive(&self) -> usize {
        self.members.iter().filter(|m| !m.state.is_gone()).count()
    }

    /// Lifeguard awareness score: 0 is healthy (memberlist `GetHealthScore`).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// The configuration in force.
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// The wire codec, for the driver to delimit stream frames.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The keyring, when this member encrypts: rotate keys through it (memberlist
    /// `Memberlist.Keyring`). Its handle is shared with every copy of the codec.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.codec.keyring.as_ref()
    }

    /// Count a stream from `from` (when known) that was refused with `e`: by the codec here,
    /// or by the driver, which delimits streams before they reach [`Self::handle_stream`].
    pub fn count_rejected_stream(&mut self, from: Option<SocketAddr>, e: &WireError) {
        self.stats.streams_rejected += 1;
        self.stats.streams_rejected_by[e.reason().index()] += 1;
        self.stats.streams_undecryptable += u64::from(matches!(e, WireError::Decrypt(_)));
        self.last_rejection = Some(Rejected { what: "stream", from, error: e.clone() });
    }

    /// The latest packet or stream refused, once (for the host's rate-limited log line; the
    /// counts are in [`SwimStats`]).
    pub fn take_last_rejection(&mut self) -> Option<Rejected> {
        self.last_rejection.take()
    }

    /// The delegate.
    pub fn delegate(&self) -> &D {
        &self.delegate
    }

    /// The delegate, mutably.
    pub fn delegate_mut(&mut self) -> &mut D {
        &mut self.delegate
    }

    /// Counters since start.
    pub fn stats(&self) -> SwimStats {
        self.stats
    }

    /// Counters of the membership and user broadcast queues.
    pub fn queue_stats(&self) -> (QueueStats, QueueStats) {
        (self.membership_queue.stats(), self.user_queue.stats())
    }

    /// Queued user broadcasts.
    pub fn user_queue_len(&self) -> usize {
        self.user_queue.len()
    }

    /// Whether we left.
    pub fn has_left(&self) -> bool {
        self.leaving
    }

    /// A number that changes whenever any member's state, incarnation, address or metadata
    /// does: republish [`Self::members`] when it moves.
    pub fn members_version(&self) -> u64 {
        self.members_version
    }

    /// The next probe round trip measured: which member answered, and how fast (Alertmanager's
    /// `alertmanager_cluster_pings_seconds`). At most 256 are kept; older ones are dropped.
    pub fn poll_rtt(&mut self) -> Option<(NodeName, Duration)> {
        self.rtts.pop_front()
    }

    // ---- internals shared by the submodules ----

    fn members_changed(&mut self) {
        self.members_version += 1;
    }

    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
    }

    /// One message from a datagram.
    fn on_message(&mut self, from: SocketAddr, msg: Message<'_>) {
        match msg {
            Message::Ping(ping) => self.on_ping(from, &ping),
            Message::IndirectPing(req) => self.on_indirect_ping(from, &req),
            Message::Ack(ack) => self.on_ack(ack.seq_no),
            Message::Nack(nack) => self.on_nack(nack.seq_no),
            Message::Suspect(s) => self.apply_suspect(s.node, Incarnation(s.incarnation), s.from),
            Message::Alive(a) => self.apply_alive(&a, false),
            Message::Dead(d) => self.apply_dead(d.node, Incarnation(d.incarnation), d.from, None),
            Message::User(bytes) => self.delegate.notify_msg(self.now, bytes),
        }
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::ProbeTimeout(seq) => self.on_probe_timeout(seq),
            Timer::ProbeEnd(seq) => self.on_probe_end(seq),
            Timer::RelayExpire(seq) => self.on_relay_expire(seq),
            Timer::Suspicion(name, generation) => self.on_suspicion_expire(&name, generation),
            Timer::StreamExpire(id) => {
                if self.streams.get(&id).is_some_and(|p| p.deadline() + STREAM_GRACE <= self.now) {
                    self.stats.streams_abandoned += 1;
                    self.handle_stream_reply(self.now, id, Err(StreamFailure::Timeout));
                }
            }
        }
    }

    fn schedule(&mut self, at: Millis, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn next_seq_no(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.event_queue_len {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(event);
        }
    }

    fn push_transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.transmits.len() >= MAX_TRANSMITS {
            self.stats.transmits_dropped += 1;
        } else {
            self.stats.packets_sent += 1;
            self.transmits.push_back(Transmit { to, bytes });
        }
    }

    /// Ask the driver for a stream; the core tracks its outcome until `deadline` + grace.
    fn push_stream(
        &mut self,
        to: SocketAddr,
        bytes: Vec<u8>,
        pending: PendingStream,
        deadline: Millis,
    ) -> Option<StreamId> {
        if self.streams.len() >= MAX_STREAMS {
            return None;
        }
        let id = StreamId(self.next_stream);
        self.next_stream += 1;
        let expect_reply = !matches!(pending, PendingStream::Reliable { .. });
        self.streams.insert(id, pending);
        self.schedule(deadline + STREAM_GRACE, Timer::StreamExpire(id));
        self.stream_requests.push_back(StreamRequest { id, to, bytes, expect_reply, deadline });
        Some(id)
    }

    /// Announce ourselves alive with `incarnation` (start-up and metadata changes).
    fn announce_self(&mut self, incarnation: Incarnation) {
        let vsn = self.config.vsn();
        let name = self.config.name.clone();
        let addr = self.config.advertise;
        let ip = member::IpWire::new(addr.ip());
        let meta = self.config.meta.clone();
        let alive = Alive {
            addr: Some(ip.as_slice()),
            incarnation: incarnation.0,
            meta: Some(&meta),
            node: name.as_str(),
            port: addr.port(),
            vsn: Some(vsn),
        };
        self.apply_alive(&alive, true);
    }
}

impl PendingStream {
    fn deadline(&self) -> Millis {
        match self {
            Self::PushPull { deadline, .. }
            | Self::Ping { deadline, .. }
            | Self::Reliable { deadline, .. } => *deadline,
        }
    }
}

/// A random delay in `[0, interval)`, as memberlist's `randStagger`.
fn stagger(rng: &mut SmallRng, interval: Duration) -> Duration {
    let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 { Duration::ZERO } else { Duration::from_millis(rng.random_range(0..ms)) }
}

/// Alertmanager's user queue retransmits `gossip_nodes` times per decade of members.
fn gossip_nodes_mult(config: &SwimConfig) -> u32 {
    u32::try_from(config.gossip_nodes).unwrap_or(u32::MAX)
}

/// Push/pull interval for `n` members (memberlist `pushPullScale`): unchanged up to 32, then
/// one more interval per doubling, so a big cluster does not drown in full-state exchanges.
pub(crate) fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval;
    }
    #[allow(clippy::cast_precision_loss)]
    let doublings = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mult = doublings as u32 + 1;
    interval * mult
}

#[cfg(test)]
mod tests;
