//! The notification log (Alertmanager `nflog`, spec §4, §5.4–§5.6, §7).
//!
//! One entry per (group key, receiver): the last successful notification of that group to that
//! integration, with the alert hashes it carried and when it expires. Nodes gossip entries to
//! each other and keep, per key, the one with the latest timestamp, so that a node at a later
//! cluster position sees that an earlier one has already notified.
//!
//! Storage: each entry is kept only as the `MeshEntry` bytes it arrived in (from a peer or a
//! snapshot) or that [`Nflog::log`] encoded, one boxed slice per entry in a hash table indexed
//! by the XXH3 of the key string. Nothing else is stored per entry: the key, timestamps and
//! alert hashes are read from those bytes when needed (`view.rs`), which costs a scan of ~100
//! bytes and keeps unknown fields written by newer Alertmanagers exactly as they came.
//!
//! Marshalling concatenates the stored bytes, sorted by group key then receiver key, so the
//! output is deterministic and is at once the push/pull `Part.data` and the snapshot file.

mod dedup;
mod proto;
mod summary;
mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;
use prost::Message;

pub use dedup::{Decision, Flush, Previous, Reason, Row, needs_update};
pub use proto::{Entry, MeshEntry, Receiver, ReceiverDataValue, ReceiverRef, receiver_data_value};

use super::delimited::{self, MAX_MESSAGE_LEN};
use super::{DecodeError, Timestamp};
use crate::core::UnixMillis;
use summary::{Lookup, Summary, SummaryIndex, set_digest};
use view::{FIELD_FIRING, FIELD_RESOLVED, HashBuf, Key, Parsed};

/// Alertmanager's `--data.retention` default: 120 h.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

/// Why a notification-log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NflogError {
    /// The entry to log would encode to more than the per-message limit (4 MiB, which
    /// Alertmanager ≥ 0.32 and our own snapshot loader enforce). The state is unchanged and
    /// nothing is to be broadcast.
    #[error("entry of {len} bytes exceeds the {limit}-byte message limit; state unchanged")]
    EntryTooLarge {
        /// The encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// `now` or the expiry computed from it falls outside the range Alertmanager 0.25 accepts
    /// for timestamps (years 1 to 9999): peers, and our own snapshot loader, would reject the
    /// entry. The state is unchanged and nothing is to be broadcast.
    #[error("time {seconds} s since the epoch is outside Go's timestamp range; state unchanged")]
    TimeOutOfRange {
        /// The offending time, in seconds since the epoch.
        seconds: i64,
    },
    /// GC found entries whose `expires_at` is Go's zero time (only a snapshot file can hold
    /// them: merge refuses them). The state changed: every other expired entry was removed;
    /// the zero-expiry entries are kept, as Alertmanager keeps them. Treat this as Alertmanager
    /// does: the maintenance run failed, so write no snapshot.
    #[error(
        "unexpected zero expiration timestamp on {zero} entries; {removed} expired entries removed"
    )]
    ZeroExpiry {
        /// How many expired entries were removed anyway.
        removed: usize,
        /// How many entries have a zero `expires_at`.
        zero: usize,
    },
}

/// The notification log of one node. Not internally synchronised except for its counters;
/// the caller serialises writers.
pub struct Nflog {
    /// How long an entry lives by default (`--data.retention`).
    retention: Duration,
    /// Each entry's `MeshEntry` bytes, hashed by [`Key::hash`] of the key read from them.
    table: HashTable<Box<[u8]>>,
    /// What the Dedup stage needs of each entry, one cache line per probe; mirrors `table`.
    index: SummaryIndex,
    /// `alertmanager_nflog_queries_total`.
    queries_total: AtomicU64,
    /// `alertmanager_nflog_query_errors_total` (not-found included, as in Alertmanager).
    query_errors_total: AtomicU64,
}

impl fmt::Debug for Nflog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nflog")
            .field("retention", &self.retention)
            .field("len", &self.table.len())
            .finish_non_exhaustive()
    }
}

/// The hash an entry is filed under: that of the key its bytes carry.
fn hash_of(raw: &[u8]) -> u64 {
    Parsed::read(raw).key.hash()
}

/// Where an entry goes: `min(retention, expiry)` from now, as Alertmanager's `Log` does with
/// the `2 × repeat_interval` the pipeline passes (a zero `expiry` means none).
fn lifetime(retention: Duration, expiry: Option<Duration>) -> Duration {
    match expiry {
        Some(e) if !e.is_zero() && retention > e => e,
        _ => retention,
    }
}

impl Nflog {
    /// An empty log whose entries live `retention` (Alertmanager `--data.retention`, default
    /// [`DEFAULT_RETENTION`]) unless `log` is given a shorter expiry.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            table: HashTable::new(),
            index: SummaryIndex::default(),
            queries_total: AtomicU64::new(0),
            query_errors_total: AtomicU64::new(0),
        }
    }

    /// A log holding the state in `data` (a snapshot file or a full-state `Part.data`),
    /// with no expiry filtering: the next [`gc`](Self::gc) removes what is stale. When `data`
    /// holds a key twice the later element wins, as in Alertmanager.
    pub fn load(data: &[u8], retention: Duration) -> Result<Self, DecodeError> {
        let mut log = Self::new(retention);
        log.table = decode(data)?;
        log.index = index_of(&log.table);
        Ok(log)
    }

    /// The retention this log was created with.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// How many entries the log holds.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Heap bytes held: the table's allocation plus every entry's bytes (allocator overhead
    /// per entry not included).
    pub fn heap_bytes(&self) -> usize {
        self.table.allocation_size()
            + self.index.heap_bytes()
            + self.table.iter().map(|raw| raw.len()).sum::<usize>()
    }

    /// `alertmanager_nflog_queries_total`: [`query`](Self::query) and
    /// [`should_notify`](Self::should_notify) calls.
    pub fn queries_total(&self) -> u64 {
        self.queries_total.load(Ordering::Relaxed)
    }

    /// `alertmanager_nflog_query_errors_total`: queries that found nothing (every first
    /// notification of a group counts, as in Alertmanager) or had an empty group key.
    pub fn query_errors_total(&self) -> u64 {
        self.query_errors_total.load(Ordering::Relaxed)
    }

    /// The stored entry for `key`, read once.
    fn find(&self, key: &Key<'_>) -> Option<Parsed<'_>> {
        // `iter_hash` rather than `find` so that the one read made to compare keys is the
        // one handed back (its borrow outlives the probe).
        for raw in self.table.iter_hash(key.hash()) {
            let entry = Parsed::read(raw);
            if entry.key.same(key) {
                return Some(entry);
            }
        }
        None
    }

    /// Look up and count, as Alertmanager's `Query(QGroupKey, QReceiver)`.
    fn lookup(&self, receiver: ReceiverRef<'_>, group_key: &str) -> Result<Option<Parsed<'_>>, ()> {
        self.queries_total.fetch_add(1, Ordering::Relaxed);
        // Go: "no query parameters specified".
        if group_key.is_empty() {
            self.query_errors_total.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        let found = self.find(&key_of(receiver, group_key));
        if found.is_none() {
            self.query_errors_total.fetch_add(1, Ordering::Relaxed);
        }
        Ok(found)
    }

    /// The last notification of `group_key` to `receiver` (§4.4), or `None` when there is
    /// none or `group_key` is empty. Counts toward the query metrics either way.
    pub fn query<'r>(
        &self,
        receiver: impl Into<ReceiverRef<'r>>,
        group_key: &str,
    ) -> Option<EntryView<'_>> {
        self.lookup(receiver.into(), group_key).ok().flatten().map(|p| EntryView { raw: p.mesh() })
    }

    /// The Dedup stage (§5.4): look up the entry and decide. `now` is the wall clock when the
    /// stage runs (0.25) or the flush tick time (≥ 0.32). Allocation-free for groups of up to
    /// 32 alerts per list.
    #[allow(clippy::too_many_arguments)] // Alertmanager's Dedup inputs, one to one.
    pub fn should_notify<'r>(
        &self,
        receiver: impl Into<ReceiverRef<'r>>,
        group_key: &str,
        firing: &[u64],
        resolved: &[u64],
        send_resolved: bool,
        repeat_interval: Duration,
        now: UnixMillis,
    ) -> Decision {
        let flush = Flush { firing, resolved, send_resolved, repeat_interval, now };
        let receiver = receiver.into();
        if let Some(decision) = self.decide_from_index(receiver, group_key, &flush) {
            return decision;
        }
        self.decide_from_table(receiver, group_key, &flush)
    }

    /// The usual flushes, decided from the summary index in one memory read: a group never
    /// notified, or one whose firing set is the logged one (then only the repeat interval
    /// matters). `None`: the table must decide.
    #[inline]
    fn decide_from_index(
        &self,
        receiver: ReceiverRef<'_>,
        group_key: &str,
        flush: &Flush<'_>,
    ) -> Option<Decision> {
        if group_key.is_empty() || (flush.send_resolved && !flush.resolved.is_empty()) {
            return None;
        }
        match self.index.lookup(key_of(receiver, group_key).hash()) {
            Lookup::Absent => {
                self.queries_total.fetch_add(1, Ordering::Relaxed);
                self.query_errors_total.fetch_add(1, Ordering::Relaxed);
                Some(needs_update(None, flush))
            }
            Lookup::Found { stamp, firing }
                if !flush.firing.is_empty() && firing == set_digest(flush.firing) =>
            {
                self.queries_total.fetch_add(1, Ordering::Relaxed);
                Some(dedup::repeat_or_unchanged(i128::from(stamp), flush))
            }
            _ => None,
        }
    }

    /// The Dedup stage from the stored entry.
    fn decide_from_table(
        &self,
        receiver: ReceiverRef<'_>,
        group_key: &str,
        flush: &Flush<'_>,
    ) -> Decision {
        let Ok(found) = self.lookup(receiver, group_key) else {
            return Decision::skip(Row::QueryFailed);
        };
        let Some(entry) = found else { return needs_update(None, flush) };
        let (mut prev_firing, mut prev_resolved) = (HashBuf::new(), HashBuf::new());
        entry.for_each_alert(FIELD_FIRING, |h| prev_firing.push(h));
        // The resolved list only matters to row 4, which needs send_resolved.
        if flush.send_resolved {
            entry.for_each_alert(FIELD_RESOLVED, |h| prev_resolved.push(h));
        }
        let prev = Previous {
            firing: prev_firing.as_slice(),
            resolved: prev_resolved.as_slice(),
            timestamp: entry.timestamp,
        };
        needs_update(Some(&prev), flush)
    }

    /// Record a successful notification (§4.3) and return the one delimited `MeshEntry` the
    /// caller must broadcast, or `None` when the existing entry's timestamp is after `now`
    /// (clock skew: nothing is written and nothing is to be sent). The entry expires after
    /// `min(retention, expiry)` (`expiry` zero or `None`: retention). It is merged by the rule
    /// of [`merge`](Self::merge); its bytes are returned even when that merge changed nothing
    /// (an equal timestamp), because Alertmanager broadcasts them regardless.
    #[allow(clippy::too_many_arguments)] // Alertmanager's Log inputs, one to one.
    pub fn log(
        &mut self,
        receiver: &Receiver,
        group_key: &str,
        firing: &[u64],
        resolved: &[u64],
        receiver_data: &BTreeMap<String, ReceiverDataValue>,
        expiry: Option<Duration>,
        now: UnixMillis,
    ) -> Result<Option<Vec<u8>>, NflogError> {
        let now_ts = Timestamp::from(now);
        let expires_at = now_ts + lifetime(self.retention, expiry);
        for t in [now_ts, expires_at] {
            if !t.in_go_range() {
                return Err(NflogError::TimeOutOfRange { seconds: t.seconds });
            }
        }
        if let Some(entry) = self.find(&key_of(receiver.into(), group_key))
            && entry.timestamp > now_ts
        {
            return Ok(None);
        }
        let mesh = MeshEntry {
            entry: Some(Entry {
                group_key: group_key.as_bytes().to_vec(),
                receiver: Some(receiver.clone()),
                timestamp: Some(now_ts),
                firing_alerts: firing.to_vec(),
                resolved_alerts: resolved.to_vec(),
                receiver_data: receiver_data.clone(),
                ..Entry::default()
            }),
            expires_at: Some(expires_at),
        };
        let raw = mesh.encode_to_vec();
        if raw.len() > MAX_MESSAGE_LEN {
            return Err(NflogError::EntryTooLarge { len: raw.len(), limit: MAX_MESSAGE_LEN });
        }
        let mut out = Vec::with_capacity(raw.len() + 5);
        delimited::push(&mut out, &raw);
        apply(&mut self.table, &mut self.index, raw.into_boxed_slice(), now_ts);
        Ok(Some(out))
    }

    /// Merge a gossip message or a full state (§4.5) and return how many elements changed
    /// the state (the caller re-gossips `data` that many times when it is ≤ 700 bytes).
    ///
    /// All or nothing: every element is decoded and checked first, and one bad element
    /// (truncated, not protobuf, lacking `entry` or `entry.receiver`, timestamp out of Go's
    /// range) rejects the blob with the state unchanged. Within the blob a key seen twice
    /// keeps only its later element, as Alertmanager's decoder does. Then, per element: one
    /// that expires strictly before `now` is ignored; otherwise it replaces the local entry
    /// when there is none or the local timestamp is strictly before its own; ties keep the
    /// local entry.
    pub fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError> {
        let now_ts = Timestamp::from(now);
        let mut incoming = decode(data)?;
        if self.table.is_empty() {
            // A fresh node's first full state: every live element is new, and adopting the
            // decoded table spares rehashing the log as it grows.
            incoming.retain(|raw| Parsed::read(raw).expires_at >= now_ts);
            self.table = incoming;
            self.index = index_of(&self.table);
            return Ok(self.table.len());
        }
        let mut changed = 0;
        for raw in incoming {
            changed += usize::from(apply(&mut self.table, &mut self.index, raw, now_ts));
        }
        Ok(changed)
    }

    /// The whole state as delimited `MeshEntry` messages, sorted by group key and then by
    /// receiver key. Each entry is emitted in exactly the bytes it is stored in.
    pub fn marshal(&self) -> Vec<u8> {
        let mut entries: Vec<(&[u8], &[u8])> =
            self.table.iter().map(|raw| (Parsed::read(raw).key.group_key, &raw[..])).collect();
        entries.sort_unstable_by(|(a_gk, a), (b_gk, b)| {
            a_gk.cmp(b_gk).then_with(|| Parsed::read(a).key.cmp_key(&Parsed::read(b).key))
        });
        let total = entries.iter().map(|(_, raw)| raw.len() + 5).sum();
        let mut out = Vec::with_capacity(total);
        for (_, raw) in entries {
            delimited::push(&mut out, raw);
        }
        out
    }

    /// Remove every entry whose `expires_at` is not after `now` (§4.6) and return how many.
    ///
    /// An entry whose `expires_at` is Go's zero time (missing, or year 1) makes Alertmanager
    /// abort GC at the first one it meets in map order, leaving a random part of the expired
    /// entries in place. We finish the sweep instead, keep the zero-expiry entries, and
    /// report them with [`NflogError::ZeroExpiry`] so that the caller skips the snapshot as
    /// Alertmanager does. The result does not depend on iteration order.
    pub fn gc(&mut self, now: UnixMillis) -> Result<usize, NflogError> {
        let now_ts = Timestamp::from(now);
        let (mut removed, mut zero) = (0, 0);
        let index = &mut self.index;
        self.table.retain(|raw| {
            let entry = Parsed::read(raw);
            if entry.expires_at == view::GO_ZERO {
                zero += 1;
                true
            } else if entry.expires_at <= now_ts {
                removed += 1;
                index.remove(entry.key.hash());
                false
            } else {
                true
            }
        });
        // Give memory back after a large sweep (a rehash reads every remaining key).
        if self.table.len() < self.table.capacity() / 4 {
            self.table.shrink_to_fit(|raw| hash_of(raw));
            self.index = index_of(&self.table);
        } else if self.index.needs_rebuild() {
            self.index = index_of(&self.table);
        }
        if zero > 0 { Err(NflogError::ZeroExpiry { removed, zero }) } else { Ok(removed) }
    }
}

fn key_of<'a>(receiver: ReceiverRef<'a>, group_key: &'a str) -> Key<'a> {
    Key {
        group_key: group_key.as_bytes(),
        group_name: receiver.group_name.as_bytes(),
        integration: receiver.integration.as_bytes(),
        idx: receiver.idx,
    }
}

/// The merge rule (§4.5) for one element already checked by [`decode`]: whether it changed
/// the state. Keeps `index` mirroring `table`.
fn apply(
    table: &mut HashTable<Box<[u8]>>,
    index: &mut SummaryIndex,
    raw: Box<[u8]>,
    now: Timestamp,
) -> bool {
    let incoming = Parsed::read(&raw);
    if incoming.expires_at < now {
        return false;
    }
    let hash = incoming.key.hash();
    let summary = Summary::of(&incoming);
    let slot = table.entry(
        hash,
        |stored| Parsed::read(stored).key.same(&incoming.key),
        |stored| hash_of(stored),
    );
    match slot {
        Slot::Occupied(mut local) => {
            if Parsed::read(local.get()).timestamp < incoming.timestamp {
                *local.get_mut() = raw;
                index.update(hash, summary);
                true
            } else {
                false
            }
        }
        Slot::Vacant(v) => {
            v.insert(raw);
            if index.needs_rebuild() {
                *index = index_of(table);
            } else {
                index.insert_new(hash, summary);
            }
            true
        }
    }
}

/// A summary index of every entry of `table`, with room to grow.
fn index_of(table: &HashTable<Box<[u8]>>) -> SummaryIndex {
    let mut index = SummaryIndex::with_entries(table.len() + table.len() / 8 + 64);
    for raw in table.iter() {
        let entry = Parsed::read(raw);
        index.insert_new(entry.key.hash(), Summary::of(&entry));
    }
    index
}

/// Split and check every element of `data`; a key seen twice keeps its later element. Any
/// bad element fails the whole blob.
fn decode(data: &[u8]) -> Result<HashTable<Box<[u8]>>, DecodeError> {
    let parts = delimited::split(data)?;
    let mut table: HashTable<Box<[u8]>> = HashTable::with_capacity(parts.len());
    for (offset, msg) in parts {
        check(offset, msg)?;
        let key = Parsed::read(msg).key;
        let slot = table.entry(
            key.hash(),
            |stored| Parsed::read(stored).key.same(&key),
            |stored| hash_of(stored),
        );
        match slot {
            Slot::Occupied(mut o) => *o.get_mut() = msg.into(),
            Slot::Vacant(v) => {
                v.insert(msg.into());
            }
        }
    }
    Ok(table)
}

/// Whether `msg` (starting at byte `offset` of its blob) is a `MeshEntry` Alertmanager would
/// accept: valid protobuf for the schema, `entry` and `entry.receiver` present, timestamps
/// within Go's range.
fn check(offset: usize, msg: &[u8]) -> Result<(), DecodeError> {
    let mesh = MeshEntry::decode(msg)
        .map_err(|e| DecodeError::Protobuf { offset, reason: e.to_string() })?;
    let entry = mesh.entry.ok_or(DecodeError::MissingField { offset, field: "entry" })?;
    if entry.receiver.is_none() {
        return Err(DecodeError::MissingField { offset, field: "entry.receiver" });
    }
    let out_of_range = |field: &str| DecodeError::Protobuf {
        offset,
        reason: format!("{field} outside Go's time range (years 1 to 9999, nanos in 0..1e9)"),
    };
    if entry.timestamp.is_some_and(|t| !t.in_go_range()) {
        return Err(out_of_range("entry.timestamp"));
    }
    if mesh.expires_at.is_some_and(|t| !t.in_go_range()) {
        return Err(out_of_range("expires_at"));
    }
    Ok(())
}

/// A stored entry, read in place. Missing timestamps read as Go's zero time (0.25's reading).
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    raw: &'a [u8],
}

impl<'a> EntryView<'a> {
    /// The `MeshEntry` bytes as stored (and as marshalled).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// `entry.group_key`.
    pub fn group_key(&self) -> &'a [u8] {
        Parsed::read(self.raw).key.group_key
    }

    /// `entry.receiver`.
    pub fn receiver(&self) -> Receiver {
        let key = Parsed::read(self.raw).key;
        Receiver {
            // Stored bytes passed prost's UTF-8 check, so these never lose anything.
            group_name: String::from_utf8_lossy(key.group_name).into_owned(),
            integration: String::from_utf8_lossy(key.integration).into_owned(),
            idx: key.idx,
        }
    }

    /// `entry.timestamp`.
    pub fn timestamp(&self) -> Timestamp {
        Parsed::read(self.raw).timestamp
    }

    /// `expires_at`.
    pub fn expires_at(&self) -> Timestamp {
        Parsed::read(self.raw).expires_at
    }

    /// `entry.firing_alerts`.
    pub fn firing_alerts(&self) -> Vec<u64> {
        HashBuf::collect(&Parsed::read(self.raw), FIELD_FIRING).as_slice().to_vec()
    }

    /// `entry.resolved_alerts`.
    pub fn resolved_alerts(&self) -> Vec<u64> {
        HashBuf::collect(&Parsed::read(self.raw), FIELD_RESOLVED).as_slice().to_vec()
    }

    /// The whole message decoded (for `receiver_data`, HEAD's store). Unknown fields are
    /// dropped from the copy, not from the log.
    pub fn decode(&self) -> MeshEntry {
        // Stored bytes were decoded by this very type when they entered the log.
        MeshEntry::decode(self.raw).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
