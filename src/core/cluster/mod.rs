//! Alertmanager's cluster layer above memberlist: named states, their envelopes, and how their
//! updates travel (Alertmanager's `cluster/channel.go`, `cluster/delegate.go`).
//!
//! States are registered under keys before joining (Alertmanager: `nfl`, `sil`; Grafana:
//! `notificationlog:<org>`, `silences:<org>`, …). An update travels as `Part{key, data}`; a
//! push/pull carries `FullState{parts}` with one part per state. Routing is by key: an unknown
//! key is counted and ignored, and one state's bad payload never blocks the others.
//!
//! Sending follows Alertmanager's channel: a Part of at most 700 bytes (half a gossip packet)
//! is gossiped; a larger one goes reliably over TCP to every other member, through a bounded
//! queue (200), and is never re-gossiped. A received update that changed `k` elements of a
//! state is re-gossiped `k` times when its data is at most 700 bytes — the epidemic above
//! memberlist that Go nodes expect.
//!
//! [`Cluster`] is a [`Delegate`] (or sits behind one): it needs no I/O. [`pump`] moves its
//! outgoing messages into the SWIM core; drivers call it after every input.

mod pb;
mod states;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use prost::Message as _;

pub use pb::{FullState, Part};

use super::state::DecodeError;
use super::swim::{BroadcastError, Delegate, MemberState, StreamFailure, StreamId, Swim};
use super::{Millis, UnixMillis};

/// Parts larger than this go by TCP to every member (Alertmanager `MaxGossipPacketSize / 2`).
pub const OVERSIZE_BYTES: usize = 700;
/// Oversized messages waiting to be sent (Alertmanager's channel capacity).
pub const OVERSIZE_QUEUE_LEN: usize = 200;
/// Gossip messages waiting for [`pump`]; it runs after every input, so this only bites if a
/// driver forgets to pump. Beyond it messages are dropped and counted.
const OUTGOING_LEN: usize = 65_536;
/// Undelivered inbound payloads kept for a host-owned state.
pub const OPAQUE_INBOX_LEN: usize = 4096;

/// A replicated state the cluster layer can carry: it marshals its whole state and merges a
/// peer's payload, reporting how many of its elements changed.
pub trait Replicated {
    /// The whole state: a push/pull part and a snapshot file.
    fn marshal(&self) -> Vec<u8>;
    /// Merge a payload (an update or a full state). All or nothing.
    fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError>;
    /// Drop what expired by `now`; how many elements went. An error means the state holds
    /// something it cannot judge (Alertmanager then skips that maintenance's snapshot).
    fn gc(&mut self, _now: UnixMillis) -> Result<usize, String> {
        Ok(0)
    }
    /// Whether every payload is a sequence of length-delimited entries (Alertmanager's
    /// notification log and silences): then two payloads concatenated are one payload holding
    /// both, and a payload cut at entry boundaries is several payloads. Pub/sub uses this to
    /// carry many updates in one message and a large full state in several.
    fn delimited(&self) -> bool {
        false
    }
}

/// How a transport fans a state's updates out to the other peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fanout {
    /// memberlist: gossip (with direct and oversized copies over TCP), and a receiver
    /// re-gossips what changed its state, as Alertmanager's states do.
    #[default]
    Gossip,
    /// Redis pub/sub: one publish reaches every subscriber, so a receiver never re-publishes;
    /// updates wait whole in one queue ([`Cluster::take_pubsub`]).
    PubSub,
}

/// An update waiting for a pub/sub transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubUpdate {
    /// The state's key.
    pub key: String,
    /// The state's payload (not yet wrapped in a `Part`).
    pub data: Vec<u8>,
    /// The state's payloads are delimited entries ([`Replicated::delimited`]).
    pub delimited: bool,
}

/// Bytes of payloads kept after the host's last full copy (see [`OpaqueState`]).
pub const OPAQUE_SINCE_BYTES: usize = 4 << 20;

/// A state the host owns (Grafana's Go states riding on hearsay): the host hands us its full
/// state to send in push/pulls and its updates to broadcast, and receives what peers send.
///
/// The host refreshes its full copy now and then, so between two refreshes the copy lacks
/// what changed the state since: the updates it broadcast and the payloads peers sent. Those
/// are kept (up to [`OPAQUE_SINCE_BYTES`]) and sent after the copy, as further parts under
/// the same key — Alertmanager merges every part of a full state in turn, and merging is
/// idempotent — so a peer that joins between two refreshes still gets every write.
#[derive(Debug, Default)]
pub struct OpaqueState {
    local: Vec<u8>,
    since: Vec<Vec<u8>>,
    since_bytes: usize,
    inbox: VecDeque<Inbound>,
    dropped: u64,
    since_overflows: u64,
}

/// A payload a peer sent for a host-owned state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// True for a push/pull full state, false for an update.
    pub full_state: bool,
    /// The payload.
    pub data: Vec<u8>,
}

impl OpaqueState {
    /// Set the full state sent in push/pulls. It must include every update the host
    /// broadcast and every payload it took before this call: those are forgotten here.
    pub fn set_local(&mut self, state: Vec<u8>) {
        self.local = state;
        self.since.clear();
        self.since_bytes = 0;
    }

    /// Remember a change the host's full copy does not hold yet.
    pub fn note_change(&mut self, data: &[u8]) {
        if self.since_bytes + data.len() > OPAQUE_SINCE_BYTES {
            self.since_overflows += 1;
            return;
        }
        self.since_bytes += data.len();
        self.since.push(data.to_vec());
    }

    /// Changes not kept because [`OPAQUE_SINCE_BYTES`] was reached before the host
    /// refreshed its copy (a joiner then gets them at a later push/pull).
    pub fn since_overflows(&self) -> u64 {
        self.since_overflows
    }

    /// The next payload peers sent.
    pub fn poll_inbound(&mut self) -> Option<Inbound> {
        self.inbox.pop_front()
    }

    /// The next payload peers sent, left in place.
    pub fn peek_inbound(&self) -> Option<&Inbound> {
        self.inbox.front()
    }

    /// Payloads dropped because the host did not drain them.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn push(&mut self, inbound: Inbound) {
        if self.inbox.len() >= OPAQUE_INBOX_LEN {
            self.dropped += 1;
        } else {
            self.inbox.push_back(inbound);
        }
    }
}

/// Counters for one state key (Alertmanager's per-channel and per-state metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStats {
    /// Updates received (`messages_received_total{msg_type="update"}`).
    pub updates_received: u64,
    /// Bytes of those updates.
    pub update_bytes_received: u64,
    /// Full states received in push/pulls.
    pub full_states_received: u64,
    /// Payloads that failed to decode or merge.
    pub merge_errors: u64,
    /// Received updates re-gossiped (`<state>_gossip_messages_propagated_total`).
    pub propagated: u64,
    /// Oversized sends attempted, one per member (`oversized_gossip_message_sent_total`).
    pub oversize_sent: u64,
    /// Oversized sends that failed (`oversized_gossip_message_failure_total`).
    pub oversize_failed: u64,
    /// Oversized messages dropped at the queue bound (`oversized_gossip_message_dropped_total`).
    pub oversize_dropped: u64,
    /// Local writes also sent straight to a member over TCP (see [`Cluster::publish`]).
    pub direct_sent: u64,
    /// Of those, sends that failed (gossip and push/pull still carry the write).
    pub direct_failed: u64,
    /// Local writes not sent directly because the queue was full (gossip still carries them).
    pub direct_dropped: u64,
    /// Updates refused by the gossip queue (full).
    pub gossip_refused: u64,
}

/// Counters not tied to a registered key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Messages that were not a `Part` / `FullState`.
    pub decode_errors: u64,
    /// Parts for keys nobody registered.
    pub unknown_keys: u64,
    /// Outgoing gossip dropped because nobody pumped.
    pub outgoing_dropped: u64,
}

/// A state under a key.
#[derive(Debug)]
enum Slot {
    Replicated(Box<dyn ReplicatedSlot>),
    Opaque(OpaqueState),
}

/// Object-safe view of a registered state, so typed access is possible through `Any`.
trait ReplicatedSlot: Replicated + std::fmt::Debug + Send + std::any::Any {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: Replicated + std::fmt::Debug + Send + 'static> ReplicatedSlot for T {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Reliable sends in flight, for their outcome metrics and duration.
#[derive(Debug)]
struct InFlight {
    key: String,
    started: Millis,
    direct: bool,
}

/// The registered states and the traffic between them and the SWIM core.
#[derive(Debug, Default)]
pub struct Cluster {
    slots: BTreeMap<String, Slot>,
    stats: BTreeMap<String, KeyStats>,
    global: ClusterStats,
    outgoing: VecDeque<(String, Vec<u8>)>,
    oversize: VecDeque<(String, Vec<u8>)>,
    direct: VecDeque<(String, Vec<u8>)>,
    in_flight: BTreeMap<StreamId, InFlight>,
    oversize_durations: VecDeque<(String, Duration)>,
    /// Wall-clock offset: unix ms = core ms + offset.
    wall_offset_ms: i64,
    /// Payloads routed to host-owned states so far (the host's wake-up signal).
    opaque_arrivals: u64,
    fanout: Fanout,
    pubsub: VecDeque<PubSubUpdate>,
    /// Local writes for the host's journal, oldest first, while it keeps one
    /// ([`Cluster::keep_journal`]).
    journal: Option<Vec<(String, Vec<u8>)>>,
    /// Keys whose native state the host's took over ([`Cluster::register_host`]).
    switched_off: std::collections::BTreeSet<String>,
}

/// What [`Cluster::register_host`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRegistration {
    /// The key was free.
    New,
    /// A native state held the key; it is switched off.
    TookNative,
    /// The host held the key already: its state object is replaced, the queue kept.
    Again,
}

impl Cluster {
    /// No states yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// No states yet, fanning out by `fanout`.
    pub fn with_fanout(fanout: Fanout) -> Self {
        Self { fanout, ..Self::default() }
    }

    /// How updates travel ([`Fanout`]). Set by the peer before it starts.
    pub fn set_fanout(&mut self, fanout: Fanout) {
        self.fanout = fanout;
    }

    /// The fan-out in use.
    pub fn fanout(&self) -> Fanout {
        self.fanout
    }

    /// Room in the outgoing queue: a write that would publish more than this many updates is
    /// refused by the host calls before it changes anything.
    pub fn outgoing_room(&self) -> usize {
        match self.fanout {
            // A write's size is known only once made: both gossip queues must have room.
            Fanout::Gossip => (OUTGOING_LEN.saturating_sub(self.outgoing.len()))
                .min(OVERSIZE_QUEUE_LEN.saturating_sub(self.oversize.len())),
            Fanout::PubSub => OUTGOING_LEN.saturating_sub(self.pubsub.len()),
        }
    }

    /// Also hand every local write ([`Cluster::publish`]) to [`Cluster::take_journal`], for a
    /// driver that persists them before it acknowledges the write.
    pub fn keep_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The local writes of native states since the last call, oldest first: `(key, the
    /// state's payload)`, what a peer merges. Empty unless [`Cluster::keep_journal`] was called.
    pub fn take_journal(&mut self) -> Vec<(String, Vec<u8>)> {
        self.journal.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Updates waiting for a pub/sub transport, oldest first.
    pub fn take_pubsub(&mut self) -> std::collections::vec_deque::Drain<'_, PubSubUpdate> {
        self.pubsub.drain(..)
    }

    /// Our whole state as `FullState` messages of at most `max_bytes` each (one part alone
    /// may be larger when its state cannot be cut), which merge on their own and in any order:
    /// a delimited state is cut at entry boundaries, other states travel whole. Always at
    /// least one message.
    pub fn full_state_chunks(&self, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        let mut current = FullState { parts: Vec::new() };
        let mut size = 0;
        for part in self.parts_for_chunks(max_bytes) {
            let len = part.encoded_len() + 8;
            if size + len > max_bytes && !current.parts.is_empty() {
                messages.push(std::mem::take(&mut current.parts));
                size = 0;
            }
            size += len;
            current.parts.push(part);
        }
        messages.push(current.parts);
        messages.into_iter().map(|parts| FullState { parts }.encode_to_vec()).collect()
    }

    /// Every state's full payload as parts, delimited ones cut to fit `max_bytes`.
    fn parts_for_chunks(&self, max_bytes: usize) -> Vec<Part> {
        let mut parts = Vec::new();
        for (key, slot) in &self.slots {
            let part = |data| Part { key: key.clone(), data };
            match slot {
                Slot::Replicated(s) if s.delimited() => {
                    let whole = s.marshal();
                    let budget = max_bytes.saturating_sub(key.len() + 16).max(1);
                    let pieces = split_delimited(&whole, budget);
                    if pieces.is_empty() {
                        parts.push(part(Vec::new()));
                    }
                    parts.extend(pieces.into_iter().map(|r| part(whole[r].to_vec())));
                }
                Slot::Replicated(s) => parts.push(part(s.marshal())),
                Slot::Opaque(s) => {
                    parts.push(part(s.local.clone()));
                    parts.extend(s.since.iter().cloned().map(part));
                }
            }
        }
        parts
    }

    /// Register a replicated state under `key` (before joining, so the first push/pull already
    /// carries it). Replaces any state under that key.
    pub fn register<S: Replicated + std::fmt::Debug + Send + 'static>(
        &mut self,
        key: &str,
        state: S,
    ) {
        self.slots.insert(key.to_owned(), Slot::Replicated(Box::new(state)));
        self.stats.entry(key.to_owned()).or_default();
    }

    /// Register a host-owned state under `key`.
    pub fn register_opaque(&mut self, key: &str) {
        self.slots.insert(key.to_owned(), Slot::Opaque(OpaqueState::default()));
        self.stats.entry(key.to_owned()).or_default();
    }

    /// Hand `key` to the host: the host's keys win, since Alertmanager and Grafana register
    /// their own states under the keys they always use (`nfl`, `sil`, `silences:<org>`, ...).
    /// A native state under the key is switched off (its data dropped, never sent again; see
    /// [`Self::switched_off`]). A key the host holds already keeps its queue and full copy:
    /// the host replaced its state object (Grafana recreating an organisation's
    /// Alertmanager), and what peers sent meanwhile is for the new object.
    pub fn register_host(&mut self, key: &str) -> HostRegistration {
        match self.slots.get(key) {
            Some(Slot::Opaque(_)) => HostRegistration::Again,
            Some(Slot::Replicated(_)) => {
                self.switched_off.insert(key.to_owned());
                self.register_opaque(key);
                HostRegistration::TookNative
            }
            None => {
                self.register_opaque(key);
                HostRegistration::New
            }
        }
    }

    /// Whether the native state under `key` was switched off because the host took the key.
    pub fn switched_off(&self, key: &str) -> bool {
        self.switched_off.contains(key)
    }

    /// Keys whose native state was switched off for the host's, sorted.
    pub fn switched_off_keys(&self) -> impl Iterator<Item = &str> {
        self.switched_off.iter().map(String::as_str)
    }

    /// How many payloads were routed to host-owned states so far: a host waiting for them
    /// polls when this moves.
    pub fn opaque_arrivals(&self) -> u64 {
        self.opaque_arrivals
    }

    /// The state under `key`, if it has type `S`.
    pub fn state<S: 'static>(&self, key: &str) -> Option<&S> {
        match self.slots.get(key)? {
            Slot::Replicated(s) => s.as_any().downcast_ref(),
            Slot::Opaque(_) => None,
        }
    }

    /// The state under `key`, mutably, if it has type `S`.
    pub fn state_mut<S: 'static>(&mut self, key: &str) -> Option<&mut S> {
        match self.slots.get_mut(key)? {
            Slot::Replicated(s) => s.as_any_mut().downcast_mut(),
            Slot::Opaque(_) => None,
        }
    }

    /// The host-owned state under `key`.
    pub fn opaque_mut(&mut self, key: &str) -> Option<&mut OpaqueState> {
        match self.slots.get_mut(key)? {
            Slot::Opaque(s) => Some(s),
            Slot::Replicated(_) => None,
        }
    }

    /// Registered keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// GC of the state under `key`: how many elements went, or why GC failed (Alertmanager then
    /// skips that maintenance's snapshot). `None` for unknown or host-owned keys.
    pub fn gc(&mut self, key: &str, now: UnixMillis) -> Option<Result<usize, String>> {
        match self.slots.get_mut(key)? {
            Slot::Replicated(s) => Some(s.gc(now)),
            Slot::Opaque(_) => None,
        }
    }

    /// The whole state under `key`, marshalled (a snapshot). `None` for unknown or host-owned
    /// keys.
    pub fn marshal(&self, key: &str) -> Option<Vec<u8>> {
        match self.slots.get(key)? {
            Slot::Replicated(s) => Some(s.marshal()),
            Slot::Opaque(_) => None,
        }
    }

    /// Tell the layer how the core's clock maps to wall-clock time (merges compare expiry
    /// times in wall-clock time). Call at start and whenever the wall clock may have moved.
    pub fn set_wall_clock(&mut self, core: Millis, unix: UnixMillis) {
        self.wall_offset_ms = unix.0.saturating_sub(i64::try_from(core.0).unwrap_or(i64::MAX));
    }

    /// Wall-clock time for a core clock reading.
    pub fn unix(&self, core: Millis) -> UnixMillis {
        UnixMillis(i64::try_from(core.0).unwrap_or(i64::MAX).saturating_add(self.wall_offset_ms))
    }

    /// Send `data` (the state's own payload) to every member under `key`: gossip when the Part
    /// is at most 700 bytes, else reliably to each member. Returns false when dropped at a bound.
    pub fn broadcast(&mut self, key: &str, data: Vec<u8>) -> bool {
        if self.fanout == Fanout::PubSub {
            return self.queue_pubsub(key, data);
        }
        let part = Part { key: key.to_owned(), data }.encode_to_vec();
        if part.len() > OVERSIZE_BYTES {
            self.queue_oversize(key, part)
        } else {
            self.queue_gossip(key, part)
        }
    }

    /// Send a *local* write under `key`: as [`Self::broadcast`] does, and — when it is small
    /// enough to gossip — also straight to every member over TCP.
    ///
    /// Gossip alone reaches each member only with high probability: a message is sent a fixed
    /// number of times to random members, and a member every copy missed waits for the next
    /// push/pull (up to a minute in Alertmanager; its issues #1269, #1312, #2158). A silence or
    /// a notification record is rare and matters, so the writer delivers it directly too. Go
    /// peers handle the extra copy as any user message; the merge makes it a no-op.
    pub fn publish(&mut self, key: &str, data: Vec<u8>) -> bool {
        // Only native states: a host-owned one (a key the host took included) is the host's
        // to persist, and a start could not merge it into anything.
        if let Some(journal) = &mut self.journal
            && matches!(self.slots.get(key), Some(Slot::Replicated(_)))
        {
            journal.push((key.to_owned(), data.clone()));
        }
        if self.fanout == Fanout::PubSub {
            return self.queue_pubsub(key, data);
        }
        let part = Part { key: key.to_owned(), data }.encode_to_vec();
        if part.len() > OVERSIZE_BYTES {
            return self.queue_oversize(key, part);
        }
        if self.direct.len() >= OVERSIZE_QUEUE_LEN {
            self.key_stats(key).direct_dropped += 1;
        } else {
            self.direct.push_back((key.to_owned(), part.clone()));
        }
        self.queue_gossip(key, part)
    }

    fn queue_pubsub(&mut self, key: &str, data: Vec<u8>) -> bool {
        if self.pubsub.len() >= OUTGOING_LEN {
            self.global.outgoing_dropped += 1;
            return false;
        }
        let delimited = matches!(self.slots.get(key), Some(Slot::Replicated(s)) if s.delimited());
        self.pubsub.push_back(PubSubUpdate { key: key.to_owned(), data, delimited });
        true
    }

    fn queue_oversize(&mut self, key: &str, part: Vec<u8>) -> bool {
        if self.oversize.len() >= OVERSIZE_QUEUE_LEN {
            self.key_stats(key).oversize_dropped += 1;
            return false;
        }
        self.oversize.push_back((key.to_owned(), part));
        true
    }

    fn queue_gossip(&mut self, key: &str, part: Vec<u8>) -> bool {
        if self.outgoing.len() >= OUTGOING_LEN {
            self.global.outgoing_dropped += 1;
            return false;
        }
        self.outgoing.push_back((key.to_owned(), part));
        true
    }

    /// Counters for `key`.
    pub fn key_stats(&mut self, key: &str) -> &mut KeyStats {
        self.stats.entry(key.to_owned()).or_default()
    }

    /// Counters per key.
    pub fn stats(&self) -> &BTreeMap<String, KeyStats> {
        &self.stats
    }

    /// Counters not tied to a key.
    pub fn global_stats(&self) -> ClusterStats {
        self.global
    }

    /// Queued oversized messages.
    pub fn oversize_queued(&self) -> usize {
        self.oversize.len()
    }

    /// Durations of completed oversized sends, by key, since the last call.
    pub fn drain_oversize_durations(
        &mut self,
    ) -> std::collections::vec_deque::Drain<'_, (String, Duration)> {
        self.oversize_durations.drain(..)
    }

    /// The outcome of a reliable send (an [`super::swim::Event::Reliable`]).
    pub fn on_reliable(&mut self, id: StreamId, result: &Result<(), StreamFailure>, now: Millis) {
        let Some(flight) = self.in_flight.remove(&id) else { return };
        if result.is_err() {
            let stats = self.key_stats(&flight.key);
            if flight.direct {
                stats.direct_failed += 1;
            } else {
                stats.oversize_failed += 1;
            }
        } else if !flight.direct {
            if self.oversize_durations.len() >= 1024 {
                self.oversize_durations.pop_front();
            }
            self.oversize_durations.push_back((flight.key, now.since(flight.started)));
        }
    }

    /// Route one Part to its state.
    fn apply_part(&mut self, part: Part, now: UnixMillis, full_state: bool) {
        let Some(slot) = self.slots.get_mut(&part.key) else {
            self.global.unknown_keys += 1;
            return;
        };
        let merged = match slot {
            Slot::Opaque(state) => {
                state.note_change(&part.data);
                state.push(Inbound { full_state, data: part.data.clone() });
                self.opaque_arrivals += 1;
                Ok(0)
            }
            Slot::Replicated(state) => state.merge(&part.data, now),
        };
        let stats = self.stats.entry(part.key.clone()).or_default();
        if full_state {
            stats.full_states_received += 1;
        } else {
            stats.updates_received += 1;
            stats.update_bytes_received += part.data.len() as u64;
        }
        match merged {
            Err(_) => stats.merge_errors += 1,
            // Re-gossip once per changed element, as the Go states do; not what arrived
            // oversized (the origin sent that to everyone by TCP already), and never on
            // pub/sub (every subscriber got it from the origin).
            Ok(changed)
                if changed > 0
                    && part.data.len() <= OVERSIZE_BYTES
                    && self.fanout == Fanout::Gossip =>
            {
                stats.propagated += changed as u64;
                for _ in 0..changed {
                    self.broadcast(&part.key, part.data.clone());
                }
            }
            Ok(_) => {}
        }
    }
}

impl Delegate for Cluster {
    fn local_state(&mut self, _now: Millis, _join: bool) -> Vec<u8> {
        let mut parts = Vec::with_capacity(self.slots.len());
        for (key, slot) in &self.slots {
            let part = |data| Part { key: key.clone(), data };
            match slot {
                Slot::Replicated(s) => parts.push(part(s.marshal())),
                Slot::Opaque(s) => {
                    parts.push(part(s.local.clone()));
                    parts.extend(s.since.iter().cloned().map(part));
                }
            }
        }
        FullState { parts }.encode_to_vec()
    }

    fn merge_remote_state(&mut self, now: Millis, state: &[u8], _join: bool) {
        let Ok(full) = FullState::decode(state) else {
            self.global.decode_errors += 1;
            return;
        };
        let unix = self.unix(now);
        for part in full.parts {
            self.apply_part(part, unix, true);
        }
    }

    fn notify_msg(&mut self, now: Millis, msg: &[u8]) {
        let Ok(part) = Part::decode(msg) else {
            self.global.decode_errors += 1;
            return;
        };
        let unix = self.unix(now);
        self.apply_part(part, unix, false);
    }
}

/// Ranges of `data` (a delimited stream) of at most `budget` bytes each, cut at entry
/// boundaries (an entry larger than `budget` is a range alone). Malformed data is one range:
/// the receiver judges it, as it would the whole.
fn split_delimited(data: &[u8], budget: usize) -> Vec<std::ops::Range<usize>> {
    let Ok(entries) = super::state::delimited::split(data) else {
        return std::iter::once(0..data.len()).collect();
    };
    let ends = entries.iter().skip(1).map(|(offset, _)| *offset).chain([data.len()]);
    let (mut ranges, mut start, mut end) = (Vec::new(), 0, 0);
    for entry_end in ends {
        if entry_end - start > budget && end > start {
            ranges.push(start..end);
            start = end;
        }
        end = entry_end;
    }
    if end > start {
        ranges.push(start..end);
    }
    ranges
}

/// Move the cluster layer's outgoing messages into the SWIM core: gossip into its broadcast
/// queue, oversized messages as reliable streams to every other live member. Call after every
/// input to the core and after every host write. (The cluster is passed beside the core, not
/// as its delegate, so a host may keep it behind its own lock.)
///
/// When the core's gossip queue is full the rest wait here — the host's writes are refused
/// once this queue is full too ([`Cluster::outgoing_room`]), so nothing is dropped unseen. With
/// no other member there is nobody to send to: updates are discarded (the push/pull of whoever
/// joins carries the whole state).
pub fn pump<D: Delegate>(swim: &mut Swim<D>, cluster: &mut Cluster, now: Millis) {
    let me = swim.config().name.clone();
    let peers: Vec<_> = swim
        .members()
        .filter(|m| m.name != me && matches!(m.state, MemberState::Alive | MemberState::Suspect))
        .map(|m| m.addr)
        .collect();
    if peers.is_empty() {
        cluster.outgoing.clear();
        cluster.oversize.clear();
        cluster.direct.clear();
        return;
    }
    while swim.can_broadcast() {
        let Some((key, part)) = cluster.outgoing.pop_front() else { break };
        if let Err(BroadcastError::QueueFull | BroadcastError::TooLarge { .. }) =
            swim.broadcast(part)
        {
            cluster.key_stats(&key).gossip_refused += 1;
        }
    }
    if cluster.oversize.is_empty() && cluster.direct.is_empty() {
        return;
    }
    for direct in [false, true] {
        loop {
            let queue = if direct { &mut cluster.direct } else { &mut cluster.oversize };
            let Some((key, part)) = queue.pop_front() else { break };
            for &peer in &peers {
                let sent = swim.send_reliable(now, peer, &part);
                let stats = cluster.key_stats(&key);
                match (sent, direct) {
                    // Out of stream capacity: this peer misses it; push/pull will repair.
                    (None, false) => stats.oversize_failed += 1,
                    (None, true) => stats.direct_failed += 1,
                    (Some(id), _) => {
                        if direct {
                            stats.direct_sent += 1;
                        } else {
                            stats.oversize_sent += 1;
                        }
                        cluster
                            .in_flight
                            .insert(id, InFlight { key: key.clone(), started: now, direct });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
