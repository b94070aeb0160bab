//! Silences (Alertmanager `silence`), behaving as Alertmanager HEAD's store and exchanging
//! bytes with both HEAD and 0.25 peers (spec §6, §7).
//!
//! * [`Silences::set`] / [`Silences::expire`] are local writes: validated (§6.3), updated in
//!   place or replaced by a new silence (§6.4, §6.5), limited, and returned as the gossip
//!   payload to broadcast.
//! * [`Silences::merge`] applies a peer's payload or push/pull state with the merge rule
//!   (§6.7, no validation); [`Silences::marshal`] / [`Silences::load`] are the full state and
//!   the snapshot file, the same bytes (§7).
//! * [`Silences::query`] and [`Silences::mutes`] answer "which silences match these labels",
//!   through an index (`index.rs`) and a per-alert cache (`cache.rs`).
//!
//! Where 0.25 and HEAD differ, HEAD is followed: matcher sets (OR of ANDs, field 11, with the
//! field-2 copy for 0.25 peers), validation *before* the previous silence is expired, a
//! silence with no sets matching nothing (0.25: everything), `version()` counting added
//! silences (0.25: every change), and no broadcast of a write that changed nothing (0.25
//! always broadcasts).
//!
//! Deliberate departures from HEAD, each for robustness:
//! * A silence whose regex does not compile (only gossip or a snapshot can deliver one) is
//!   kept, stored, gossiped and counted, and never matches; it does not turn every query with
//!   label matching into an error as it does in Go (§6.6).
//! * A local write's `updated_at` is `max(now, previous updated_at + 1 ns)`, so an update or
//!   expiry in the same millisecond as the write before it is not silently lost to the tie
//!   rule (Go's clock has nanoseconds; ours is given in milliseconds).
//! * A silence whose matchers change through gossip (no Alertmanager does this; a buggy or
//!   hostile peer could) is treated as newly added, so mutes caches see the new matchers.
//! * Silences that fail to compile on snapshot load stay visible to GC, `count_state` and
//!   queries by ID (HEAD leaks them out of its indexes).
//!
//! Each stored silence keeps the encoded `MeshSilence` it arrived in and re-emits it unchanged
//! until it changes locally, so fields a newer Alertmanager added survive a pass through us.

mod cache;
mod index;
pub mod matcher;
mod proto;
mod re2;
mod rules;
#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use xxhash_rust::xxh3::Xxh3Builder;

use self::cache::MutesCache;
use self::index::{Index, Memo};
pub use self::proto::{Comment, Matcher, MatcherSet, MatcherType, MeshSilence, Silence};
use self::rules::{MergeDecision, merge_decision, state_at};
pub use self::rules::{NameValidation, SilenceState};
use super::labels::LabelSet;
use super::{DecodeError, Timestamp, delimited};
use crate::core::UnixMillis;

/// Part data at most this long is re-gossiped by a receiver that learned something from it
/// (Alertmanager's `OversizedMessage`: half of memberlist's 1400-byte gossip packet, §2.4).
pub const REGOSSIP_MAX_BYTES: usize = 700;

/// Below this many candidate slots a query evaluates them directly instead of through the
/// index (the index's per-query overhead is a few label lookups).
const DIRECT_SCAN_MAX: usize = 32;

/// A silence ID (UUIDv4 text); cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SilenceId(Arc<str>);

impl SilenceId {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SilenceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SilenceId {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

/// Configuration of the silence store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilencesConfig {
    /// How long an ended silence is kept (and gossiped) before GC deletes it: `expires_at =
    /// ends_at + retention`. Default 120 h (`--data.retention`). No limit.
    pub retention: Duration,
    /// Most silences in state, expired ones included, checked when a local write creates an
    /// ID; 0 = unlimited (the default). Not applied to gossip. (`--silences.max-silences`,
    /// Alertmanager ≥ 0.28.)
    pub max_silences: usize,
    /// Largest encoded `MeshSilence` a local write may produce, in bytes; 0 = unlimited (the
    /// default). Not applied to gossip. (`--silences.max-silence-size-bytes`, ≥ 0.28.)
    pub max_silence_size_bytes: usize,
    /// Label-name rule for local writes. Default [`NameValidation::Utf8`] (HEAD's default;
    /// `--enable-feature=classic-mode` selects `Classic`, which 0.25 always used).
    pub name_validation: NameValidation,
    /// Most alerts whose mutes result is cached; at the bound a new alert evicts another
    /// (counted). Default 131,072 (about 7 MiB); minimum 1. No Alertmanager key (its cache is
    /// unbounded and shrinks only when alerts are garbage-collected).
    pub mutes_cache_capacity: usize,
}

impl Default for SilencesConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(120 * 3600),
            max_silences: 0,
            max_silence_size_bytes: 0,
            name_validation: NameValidation::Utf8,
            mutes_cache_capacity: 1 << 17,
        }
    }
}

/// Why a local write was refused. Every variant leaves the state unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SilenceError {
    /// Validation failed (§6.3). State unchanged.
    #[error("invalid silence: {reason}")]
    Invalid {
        /// Alertmanager's message.
        reason: String,
    },
    /// The ID to update or expire is unknown. State unchanged.
    #[error("silence not found")]
    NotFound,
    /// Creating a silence would exceed `max_silences`. State unchanged.
    #[error("exceeded maximum number of silences: {count} (limit: {limit})")]
    TooMany {
        /// Silences in state.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The encoded silence exceeds `max_silence_size_bytes`. State unchanged.
    #[error("silence exceeded maximum size: {size} bytes (limit: {limit} bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The encoded silence exceeds the per-message limit every peer and snapshot reader
    /// enforces ([`delimited::MAX_MESSAGE_LEN`], 4 MiB as Alertmanager ≥ 0.32): accepted, it
    /// would never replicate nor load back. Checked whatever `max_silence_size_bytes` says.
    /// State unchanged.
    #[error("silence of {size} bytes exceeds the {limit}-byte message limit")]
    ExceedsMessageLimit {
        /// Its encoded size, as gossip and snapshots carry it.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why GC reports a problem. The state *has* changed: everything due was removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// Some silences had no (zero) `expires_at`; they were removed anyway, like the expired
    /// ones. HEAD counts these in `alertmanager_silences_gc_errors_total` and skips that
    /// maintenance run's snapshot.
    #[error("{invalid} silences had a zero expiration timestamp ({removed} removed in total)")]
    ZeroExpiry {
        /// All silences removed, these included.
        removed: usize,
        /// Those with a zero `expires_at`.
        invalid: usize,
    },
}

/// The result of [`Silences::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    /// The silence's ID: the caller's on an in-place update, a new one otherwise.
    pub id: SilenceId,
    /// Part data to broadcast for the written silence (one delimited `MeshSilence`); `None`
    /// when the write changed nothing.
    pub broadcast: Option<Vec<u8>>,
    /// When the write replaced a silence that was still active or pending, that silence was
    /// expired first; this is the Part data announcing it, to broadcast before `broadcast`.
    pub expired_previous: Option<Vec<u8>>,
}

/// Filters of [`Silences::query`], ANDed; an empty field does not filter. (HEAD refuses
/// `QIDs` together with `QSince` and an empty `QIDs`; here they simply combine.)
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// Only these IDs (HEAD `QIDs`).
    pub ids: Vec<String>,
    /// Only silences added after this [`Silences::version`] (HEAD `QSince`).
    pub since: Option<u64>,
    /// Only silences in one of these states at `now` (`QState`).
    pub states: Vec<SilenceState>,
    /// Only silences matching these labels (`QMatches`).
    pub matches: Option<&'a LabelSet>,
}

/// Which silences mute an alert, by state at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuteResult {
    /// Active silences matching the alert, in insertion order; the alert is muted iff any.
    pub active: Vec<SilenceId>,
    /// Pending silences matching the alert.
    pub pending: Vec<SilenceId>,
}

impl MuteResult {
    /// Whether any active silence matches.
    pub fn is_muted(&self) -> bool {
        !self.active.is_empty()
    }
}

/// The state-owned metrics of spec §3.6 (the caller exports them; durations are the
/// caller's to measure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SilenceMetrics {
    /// `alertmanager_silences_queries_total` (queries and mutes evaluations that queried).
    pub queries_total: u64,
    /// `alertmanager_silences_query_errors_total`: always 0 here, since a bad regex makes its
    /// own silence never match instead of failing the query.
    pub query_errors_total: u64,
    /// `alertmanager_silences_query_silences_scanned_total`.
    pub query_silences_scanned_total: u64,
    /// `alertmanager_silences_query_silences_skipped_total` (skipped by `since`).
    pub query_silences_skipped_total: u64,
    /// `alertmanager_silences_matcher_compile_errors_total{stage="index"}`.
    pub matcher_compile_errors_index_total: u64,
    /// `alertmanager_silences_matcher_compile_errors_total{stage="load_snapshot"}`.
    pub matcher_compile_errors_load_snapshot_total: u64,
    /// `alertmanager_silences_gossip_messages_propagated_total`.
    pub gossip_messages_propagated_total: u64,
    /// `alertmanager_silences_gc_errors_total`.
    pub gc_errors_total: u64,
    /// `alertmanager_silences_state_size`.
    pub state_size: u64,
    /// `alertmanager_silences_matcher_index_size` (distinct compiled matchers).
    pub matcher_index_size: u64,
    /// `alertmanager_silences_version_index_size` (slots, including removed ones not yet
    /// compacted away by GC).
    pub version_index_size: u64,
    /// Entries in the mutes cache (no Alertmanager metric).
    pub mutes_cache_size: u64,
    /// Mutes cache entries evicted at the bound (no Alertmanager metric).
    pub mutes_cache_evictions_total: u64,
}

/// One stored silence.
#[derive(Debug)]
struct Stored {
    silence: Silence,
    expires_at: Timestamp,
    /// The encoded `MeshSilence` (undelimited) as received, loaded or last written.
    bytes: Vec<u8>,
    id: SilenceId,
}

/// The per-slot fields every scan reads, kept contiguous (the silence itself is boxed), so
/// state filters, `count_state`, `since` and GC walk a dense array and compaction moves
/// little memory.
#[derive(Debug, Clone, Copy)]
struct Meta {
    /// Unique, increasing in slot order: what `by_id` points at, so compaction does not
    /// have to touch `by_id`.
    seq: u64,
    /// State version when the slot was added (non-decreasing in slot order: `since` is a
    /// binary search, HEAD's version index).
    added: u64,
    starts_at: Timestamp,
    ends_at: Timestamp,
    expires_at: Timestamp,
}

impl Meta {
    fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now > self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

/// Where a compile error is counted.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Index,
    LoadSnapshot,
}

#[derive(Debug, Default)]
struct Counters {
    queries: AtomicU64,
    scanned: AtomicU64,
    skipped: AtomicU64,
    compile_errors_index: u64,
    compile_errors_load: u64,
    propagated: u64,
    gc_errors: u64,
}

/// The silence store. Deterministic: IDs come from a `SmallRng` seeded by the caller, time is
/// an argument, and every output is in slot (insertion) order.
pub struct Silences {
    config: SilencesConfig,
    rng: SmallRng,
    /// Insertion order; `None` for a removed silence until GC compacts.
    slots: Vec<Option<Box<Stored>>>,
    /// Parallel to `slots`.
    meta: Vec<Meta>,
    next_seq: u64,
    live: usize,
    /// ID → `Meta::seq` of its slot. Hashed with a key drawn from the seed (deterministic,
    /// but not predictable by a peer choosing IDs); never iterated.
    by_id: HashMap<SilenceId, u64, Xxh3Builder>,
    index: Index,
    version: u64,
    /// Bumped when GC renumbers slots; mutes cache entries of another layout are recomputed.
    layout: u64,
    cache: MutesCache,
    memo: Memo,
    /// Scratch of `query`, which takes `&self` (so readers can share a lock): reused when
    /// free, a fresh one when another query holds it.
    query_memo: parking_lot::Mutex<(Memo, Vec<u32>)>,
    counters: Counters,
}

impl fmt::Debug for Silences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Silences")
            .field("live", &self.live)
            .field("slots", &self.slots.len())
            .field("version", &self.version)
            .field("layout", &self.layout)
            .field("cached_alerts", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// A silence's state at `now` (§6.2).
pub fn state_of(silence: &Silence, now: UnixMillis) -> SilenceState {
    state_at(silence, Timestamp::from(now))
}

/// One decoded element of a payload.
struct Decoded<'a> {
    raw: &'a [u8],
    silence: Silence,
    expires_at: Timestamp,
}

/// Decode a whole payload or fail (all-or-nothing, as Alertmanager).
fn decode(data: &[u8]) -> Result<Vec<Decoded<'_>>, DecodeError> {
    let parts = delimited::split(data)?;
    let mut out = Vec::with_capacity(parts.len());
    for (offset, raw) in parts {
        let mesh = MeshSilence::decode(raw)
            .map_err(|e| DecodeError::Protobuf { offset, reason: e.to_string() })?;
        let Some(mut silence) = mesh.silence else {
            return Err(DecodeError::MissingField { offset, field: "silence" });
        };
        proto::normalize(&mut silence);
        out.push(Decoded { raw, silence, expires_at: mesh.expires_at });
    }
    Ok(out)
}

fn delimit(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 5);
    delimited::push(&mut out, bytes);
    out
}

impl Silences {
    /// An empty store. `seed` drives the IDs of silences this store creates.
    pub fn new(config: SilencesConfig, seed: u64) -> Self {
        let cache = MutesCache::new(config.mutes_cache_capacity);
        let mut rng = SmallRng::seed_from_u64(seed);
        let id_hash_key: u64 = rng.random();
        let index = Index::new(rng.random());
        Self {
            config,
            rng,
            slots: Vec::new(),
            meta: Vec::new(),
            next_seq: 0,
            live: 0,
            by_id: HashMap::with_hasher(Xxh3Builder::new().with_seed(id_hash_key)),
            index,
            version: 0,
            layout: 0,
            cache,
            memo: Memo::default(),
            query_memo: parking_lot::Mutex::new((Memo::default(), Vec::new())),
            counters: Counters::default(),
        }
    }

    /// A store holding a snapshot file's (or full state's) silences, all of them: expired
    /// ones stay until GC, and ones whose matchers do not compile are kept and counted.
    /// A duplicated ID keeps its last copy. Version is 1 afterwards, as after HEAD's load.
    pub fn load(data: &[u8], config: SilencesConfig, seed: u64) -> Result<Self, DecodeError> {
        let elements = decode(data)?;
        let mut s = Self::new(config, seed);
        s.version = 1;
        for mut d in elements {
            let migrated = proto::migrate_comments(&mut d.silence);
            let bytes = if migrated {
                proto::encode_mesh(&d.silence, d.expires_at)
            } else {
                d.raw.to_vec()
            };
            s.store(d.silence, d.expires_at, bytes, Stage::LoadSnapshot, false);
        }
        Ok(s)
    }

    /// The whole state as delimited `MeshSilence`s in slot order: push/pull Part data and the
    /// snapshot file.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.live_iter().map(|(_, s)| s.bytes.len() + 3).sum());
        for (_, s) in self.live_iter() {
            delimited::push(&mut out, &s.bytes);
        }
        out
    }

    /// State version: bumped when a silence is added (and once by `load`). Mutes caches and
    /// `Query::since` are keyed on it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Silences in state, expired ones included.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The silence with this ID (HEAD `QueryOne(QIDs(id))`).
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.slot_of(id).map(|slot| &self.stored(slot).silence)
    }

    /// How many silences are in one of `states` at `now` (the `alertmanager_silences` gauge).
    pub fn count_state(&self, states: &[SilenceState], now: UnixMillis) -> usize {
        let now = Timestamp::from(now);
        self.live_meta().filter(|(_, m)| states.contains(&m.state(now))).count()
    }

    /// The metrics of spec §3.6 owned by the store.
    pub fn metrics(&self) -> SilenceMetrics {
        let c = &self.counters;
        SilenceMetrics {
            queries_total: c.queries.load(Ordering::Relaxed),
            query_errors_total: 0,
            query_silences_scanned_total: c.scanned.load(Ordering::Relaxed),
            query_silences_skipped_total: c.skipped.load(Ordering::Relaxed),
            matcher_compile_errors_index_total: c.compile_errors_index,
            matcher_compile_errors_load_snapshot_total: c.compile_errors_load,
            gossip_messages_propagated_total: c.propagated,
            gc_errors_total: c.gc_errors,
            state_size: self.live as u64,
            matcher_index_size: self.index.term_count() as u64,
            version_index_size: self.slots.len() as u64,
            mutes_cache_size: self.cache.len() as u64,
            mutes_cache_evictions_total: self.cache.evictions(),
        }
    }

    fn live_iter(&self) -> impl Iterator<Item = (u32, &Stored)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| Some((i as u32, &**s.as_ref()?)))
    }

    fn live_meta(&self) -> impl Iterator<Item = (u32, &Meta)> {
        self.meta
            .iter()
            .zip(&self.slots)
            .enumerate()
            .filter_map(|(i, (m, s))| s.is_some().then_some((i as u32, m)))
    }

    /// The slot holding `id`.
    fn slot_of(&self, id: &str) -> Option<u32> {
        let seq = *self.by_id.get(id)?;
        self.meta.binary_search_by_key(&seq, |m| m.seq).ok().map(|i| i as u32)
    }

    /// Create or update a silence (HEAD `Set`, §6.4). An update keeps the ID when the change
    /// does not rewrite history (HEAD `canUpdate`: same matchers, and a start
    /// that does not move into the past); otherwise a new silence is created and
    /// the old one, if still active or pending, is expired.
    pub fn set(
        &mut self,
        mut silence: Silence,
        now: UnixMillis,
    ) -> Result<SetOutcome, SilenceError> {
        let now_ts = Timestamp::from(now);
        proto::normalize(&mut silence);
        if silence.starts_at.is_zero() {
            silence.starts_at = now_ts;
        }
        rules::validate(&silence, self.config.name_validation)
            .map_err(|reason| SilenceError::Invalid { reason })?;
        let prev = match silence.id.as_str() {
            "" => None,
            id => Some(self.slot_of(id).ok_or(SilenceError::NotFound)?),
        };
        if let Some(slot) = prev {
            let old = &self.stored(slot).silence;
            if rules::can_update(old, &silence, now_ts) {
                silence.updated_at = self.next_updated_at(Some(slot), now_ts);
                let expires_at = silence.ends_at + self.config.retention;
                self.check_size(&silence, expires_at)?;
                let id = self.stored(slot).id.clone();
                let broadcast = self.write(silence, expires_at, now_ts);
                return Ok(SetOutcome { id, broadcast, expired_previous: None });
            }
        }
        if self.config.max_silences > 0 && self.live + 1 > self.config.max_silences {
            return Err(SilenceError::TooMany {
                count: self.live,
                limit: self.config.max_silences,
            });
        }
        silence.id = self.new_id();
        if silence.starts_at < now_ts {
            silence.starts_at = now_ts;
        }
        silence.updated_at = now_ts;
        let expires_at = silence.ends_at + self.config.retention;
        self.check_size(&silence, expires_at)?;
        let expired_previous = match prev {
            Some(slot) if state_at(&self.stored(slot).silence, now_ts) != SilenceState::Expired => {
                self.expire_slot(slot, now_ts)
            }
            _ => None,
        };
        let id = SilenceId::from(silence.id.as_str());
        let broadcast = self.write(silence, expires_at, now_ts);
        Ok(SetOutcome { id, broadcast, expired_previous })
    }

    /// Expire a silence now (HEAD `Expire`, §6.5): an active one ends now, a pending one starts
    /// and ends now, an expired one is left alone (`Ok(None)`). Returns the Part data to
    /// broadcast. The silence stays visible, expired, until GC (`retention` later).
    pub fn expire(&mut self, id: &str, now: UnixMillis) -> Result<Option<Vec<u8>>, SilenceError> {
        let slot = self.slot_of(id).ok_or(SilenceError::NotFound)?;
        Ok(self.expire_slot(slot, Timestamp::from(now)))
    }

    fn expire_slot(&mut self, slot: u32, now: Timestamp) -> Option<Vec<u8>> {
        let mut silence = self.stored(slot).silence.clone();
        match state_at(&silence, now) {
            SilenceState::Expired => return None,
            SilenceState::Active => silence.ends_at = now,
            SilenceState::Pending => {
                silence.starts_at = now;
                silence.ends_at = now;
            }
        }
        silence.updated_at = self.next_updated_at(Some(slot), now);
        let expires_at = silence.ends_at + self.config.retention;
        self.write(silence, expires_at, now)
    }

    /// Apply a peer's Part data or full state (§6.7): each element whose `expires_at` is not
    /// in the past replaces ours when its `updated_at` is strictly newer (ties keep ours);
    /// legacy comments are migrated; nothing is validated. The payload is decoded whole
    /// before anything is applied. Returns how many elements changed the state; Alertmanager
    /// re-broadcasts `data` that many times when `data.len() <= REGOSSIP_MAX_BYTES` (§2.4),
    /// which the caller does (the propagated counter is bumped here).
    pub fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError> {
        let elements = decode(data)?;
        let now = Timestamp::from(now);
        // Alertmanager decodes into a map first: a duplicated ID keeps its last copy.
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, d) in elements.iter().enumerate() {
            last.insert(d.silence.id.as_str(), i);
        }
        let keep: Vec<bool> =
            elements.iter().enumerate().map(|(i, d)| last[d.silence.id.as_str()] == i).collect();
        let mut changed = 0;
        for (mut d, keep) in elements.into_iter().zip(keep) {
            if !keep {
                continue;
            }
            let local = self.slot_of(&d.silence.id).map(|s| self.stored(s).silence.updated_at);
            match merge_decision(local, &d.silence, d.expires_at, now) {
                MergeDecision::Insert | MergeDecision::Replace => {}
                MergeDecision::ExpiredOnArrival | MergeDecision::KeepLocal => continue,
            }
            let migrated = proto::migrate_comments(&mut d.silence);
            let bytes = if migrated {
                proto::encode_mesh(&d.silence, d.expires_at)
            } else {
                d.raw.to_vec()
            };
            self.store(d.silence, d.expires_at, bytes, Stage::Index, true);
            changed += 1;
        }
        if changed > 0 && data.len() <= REGOSSIP_MAX_BYTES {
            self.counters.propagated += changed as u64;
        }
        Ok(changed)
    }

    /// Delete silences whose `expires_at` is not after `now` (§6.8), and renumber slots.
    /// Returns how many were removed. Silences with a zero `expires_at` are removed too and
    /// reported as [`GcError::ZeroExpiry`] (HEAD's behaviour; 0.25 stopped at the first).
    pub fn gc(&mut self, now: UnixMillis) -> Result<usize, GcError> {
        let now = Timestamp::from(now);
        let mut removed = 0;
        let mut invalid = 0;
        for slot in 0..self.slots.len() {
            let expires_at = self.meta[slot].expires_at;
            let zero = expires_at.is_zero();
            if self.slots[slot].is_some() && (zero || expires_at <= now) {
                invalid += usize::from(zero);
                self.remove_slot(slot as u32);
                removed += 1;
            }
        }
        if self.slots.len() > self.live {
            self.compact();
        }
        if invalid > 0 {
            self.counters.gc_errors += invalid as u64;
            return Err(GcError::ZeroExpiry { removed, invalid });
        }
        Ok(removed)
    }

    /// Silences passing every filter of `q`, in slot order (or in the order of `q.ids`).
    pub fn query(&self, q: &Query<'_>, now: UnixMillis) -> Vec<&Silence> {
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let now = Timestamp::from(now);
        let since = q.since.unwrap_or(0);
        let wanted = |slot: u32| {
            let m = &self.meta[slot as usize];
            m.added > since && (q.states.is_empty() || q.states.contains(&m.state(now)))
        };
        let mut pooled = self.query_memo.try_lock();
        let mut fresh = (Memo::default(), Vec::new());
        let (memo, out) = match pooled.as_deref_mut() {
            Some(m) => (&mut m.0, &mut m.1),
            None => (&mut fresh.0, &mut fresh.1),
        };
        out.clear();
        self.index.begin(memo);
        if !q.ids.is_empty() {
            for id in &q.ids {
                let Some(slot) = self.slot_of(id) else { continue };
                if out.contains(&slot) {
                    continue;
                }
                self.counters.scanned.fetch_add(1, Ordering::Relaxed);
                if wanted(slot) && q.matches.is_none_or(|l| self.index.slot_matches(slot, l, memo))
                {
                    out.push(slot);
                }
            }
        } else {
            let start = self.meta.partition_point(|m| m.added <= since);
            self.counters.skipped.fetch_add(start as u64, Ordering::Relaxed);
            let scanned = match q.matches {
                Some(labels) => collect_matching(
                    &self.index,
                    &self.slots,
                    start,
                    labels,
                    memo,
                    &mut |slot| wanted(slot),
                    out,
                ),
                None => {
                    for slot in start..self.slots.len() {
                        if self.slots[slot].is_some() && wanted(slot as u32) {
                            out.push(slot as u32);
                        }
                    }
                    self.slots.len() - start
                }
            };
            self.counters.scanned.fetch_add(scanned as u64, Ordering::Relaxed);
        }
        out.iter().map(|&slot| &self.stored(slot).silence).collect()
    }

    /// Which silences mute the alert with these labels and `fingerprint` (its
    /// [`labels::fingerprint`](super::labels::fingerprint), computed once by the caller):
    /// HEAD's `Silencer.Mutes` with its per-fingerprint cache (`cache.rs`). The cache trusts
    /// the fingerprint: two label sets passed with one fingerprint share an entry (as in
    /// Alertmanager). Allocates only when the alert is muted or pending; see
    /// [`Silences::mutes_into`] to reuse buffers.
    pub fn mutes(&mut self, fingerprint: u64, labels: &LabelSet, now: UnixMillis) -> MuteResult {
        let mut out = MuteResult::default();
        self.mutes_into(fingerprint, labels, now, &mut out);
        out
    }

    /// [`Silences::mutes`] into a caller-owned result (cleared first); returns whether the
    /// alert is muted. With warm buffers the cached path does not allocate.
    pub fn mutes_into(
        &mut self,
        fingerprint: u64,
        labels: &LabelSet,
        now: UnixMillis,
        out: &mut MuteResult,
    ) -> bool {
        out.active.clear();
        out.pending.clear();
        let (version, layout) = (self.version, self.layout);
        let entry = self.cache.entry(fingerprint);
        if entry.version != version || entry.layout != layout {
            let start = if entry.layout == layout && entry.version != u64::MAX {
                // Only slots added since; the remembered ones are still exact.
                entry.slots.retain(|&s| self.slots[s as usize].is_some());
                self.meta.partition_point(|m| m.added <= entry.version)
            } else {
                entry.slots.clear();
                0
            };
            self.counters.queries.fetch_add(1, Ordering::Relaxed);
            self.counters.skipped.fetch_add(start as u64, Ordering::Relaxed);
            self.index.begin(&mut self.memo);
            let scanned = collect_matching(
                &self.index,
                &self.slots,
                start,
                labels,
                &mut self.memo,
                &mut |_| true,
                &mut entry.slots,
            );
            self.counters.scanned.fetch_add(scanned as u64, Ordering::Relaxed);
            entry.version = version;
            entry.layout = layout;
        }
        let now = Timestamp::from(now);
        for &slot in &entry.slots {
            let Some(s) = &self.slots[slot as usize] else { continue };
            match self.meta[slot as usize].state(now) {
                SilenceState::Active => out.active.push(s.id.clone()),
                SilenceState::Pending => out.pending.push(s.id.clone()),
                SilenceState::Expired => {}
            }
        }
        !out.active.is_empty()
    }

    /// Drop the cached mutes result of an alert that is gone (HEAD's `PostGC` hook).
    pub fn forget(&mut self, fingerprint: u64) -> bool {
        self.cache.forget(fingerprint)
    }

    fn stored(&self, slot: u32) -> &Stored {
        // Invariant: slots reached through `by_id` or a live scan are occupied.
        self.slots[slot as usize].as_ref().expect("live slot")
    }

    /// A local write's `updated_at`: now, or just after the previous write if that is not
    /// earlier (so the merge rule's strict comparison accepts it).
    fn next_updated_at(&self, slot: Option<u32>, now: Timestamp) -> Timestamp {
        match slot.map(|s| self.stored(s).silence.updated_at) {
            Some(prev) if prev >= now => prev + Duration::from_nanos(1),
            _ => now,
        }
    }

    fn check_size(&self, silence: &Silence, expires_at: Timestamp) -> Result<(), SilenceError> {
        let limit = self.config.max_silence_size_bytes;
        let size = proto::mesh_size(silence, expires_at);
        if limit > 0 && size > limit {
            return Err(SilenceError::TooLarge { size, limit });
        }
        // The wire form repeats the first matcher set, so it is larger than `size`; encoding
        // it is the exact measure, and a write is rare next to the reads.
        let wire = proto::encode_mesh(silence, expires_at).len();
        if wire > delimited::MAX_MESSAGE_LEN {
            return Err(SilenceError::ExceedsMessageLimit {
                size: wire,
                limit: delimited::MAX_MESSAGE_LEN,
            });
        }
        Ok(())
    }

    fn new_id(&mut self) -> String {
        loop {
            let bytes: [u8; 16] = self.rng.random();
            let id = uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string();
            if !self.by_id.contains_key(id.as_str()) {
                return id;
            }
        }
    }

    /// A local write through the merge rule; returns the Part data if it changed the state.
    fn write(
        &mut self,
        silence: Silence,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Option<Vec<u8>> {
        let local = self.slot_of(&silence.id).map(|s| self.stored(s).silence.updated_at);
        match merge_decision(local, &silence, expires_at, now) {
            MergeDecision::Insert | MergeDecision::Replace => {}
            MergeDecision::ExpiredOnArrival | MergeDecision::KeepLocal => return None,
        }
        let bytes = proto::encode_mesh(&silence, expires_at);
        let broadcast = delimit(&bytes);
        self.store(silence, expires_at, bytes, Stage::Index, true);
        Some(broadcast)
    }

    /// Put a silence into state: in place when its ID exists with the same matchers, in a
    /// new slot otherwise (a new ID, or changed matchers, which count as an addition).
    fn store(
        &mut self,
        silence: Silence,
        expires_at: Timestamp,
        bytes: Vec<u8>,
        stage: Stage,
        bump: bool,
    ) {
        if let Some(slot) = self.slot_of(&silence.id) {
            let s = self.slots[slot as usize].as_mut().expect("indexed slot is live");
            if s.silence.matcher_sets == silence.matcher_sets {
                let m = &mut self.meta[slot as usize];
                m.starts_at = silence.starts_at;
                m.ends_at = silence.ends_at;
                m.expires_at = expires_at;
                s.silence = silence;
                s.expires_at = expires_at;
                s.bytes = bytes;
                return;
            }
            self.remove_slot(slot);
        }
        if bump {
            self.version += 1;
        }
        let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 silences");
        if self.index.insert(slot, &silence).is_err() {
            match stage {
                Stage::Index => self.counters.compile_errors_index += 1,
                Stage::LoadSnapshot => self.counters.compile_errors_load += 1,
            }
        }
        let id = SilenceId::from(silence.id.as_str());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(id.clone(), seq);
        self.meta.push(Meta {
            seq,
            added: self.version,
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            expires_at,
        });
        self.slots.push(Some(Box::new(Stored { silence, expires_at, bytes, id })));
        self.live += 1;
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(s) = self.slots[slot as usize].take() {
            self.index.remove(slot);
            self.by_id.remove(s.id.as_str());
            self.live -= 1;
        }
    }

    /// Renumber slots densely, keeping order (so `added` and `seq` stay sorted; `by_id`
    /// points at sequence numbers and needs no change).
    fn compact(&mut self) {
        let mut keep = Vec::with_capacity(self.slots.len());
        let mut next = 0u32;
        for s in &self.slots {
            keep.push(s.as_ref().map(|_| {
                next += 1;
                next - 1
            }));
        }
        let mut i = 0;
        self.meta.retain(|_| {
            i += 1;
            keep[i - 1].is_some()
        });
        self.slots.retain(Option::is_some);
        self.index.compact(&keep);
        self.layout += 1;
    }
}

/// Slots from `start` on that are live, pass `accept` and match `labels`, appended ascending
/// to `out`: directly when few, else through the index. Returns how many were examined.
fn collect_matching(
    index: &Index,
    slots: &[Option<Box<Stored>>],
    start: usize,
    labels: &LabelSet,
    memo: &mut Memo,
    accept: &mut dyn FnMut(u32) -> bool,
    out: &mut Vec<u32>,
) -> usize {
    if slots.len().saturating_sub(start) <= DIRECT_SCAN_MAX {
        let mut examined = 0;
        for (i, s) in slots.iter().enumerate().skip(start) {
            let slot = i as u32;
            if s.is_some() && accept(slot) {
                examined += 1;
                if index.slot_matches(slot, labels, memo) {
                    out.push(slot);
                }
            }
        }
        return examined;
    }
    index.matching(
        labels,
        memo,
        &mut |slot| slot as usize >= start && slots[slot as usize].is_some() && accept(slot),
        out,
    )
}
