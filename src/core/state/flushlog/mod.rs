//! The flush log of Grafana's Alertmanager fork (`flushlog:<org>`): when each aggregation
//! group was first flushed, so that every instance's sync dispatch timer ticks in step.
//!
//! One entry per group fingerprint: the flush time and when the entry expires. Only the
//! instance at position 0 writes (Grafana's `alertingSyncDispatchTimer`); the others read the
//! replicated time and align their group-interval ticks to it.
//!
//! The rules are the fork's (grafana/prometheus-alertmanager `flushlog`, read at the version
//! grafana/alerting pins), each a small function below with its test:
//! - decode: a blob is uvarint-delimited `MeshFlushLog` messages; one without `flushLog`, with
//!   fingerprint 0 or without a flush time fails the whole blob (Go's `ErrInvalidState`); a
//!   fingerprint seen twice keeps its later element;
//! - merge, per element: an `expires_at` of Go's zero time is a deletion (the entry goes, and
//!   that counts as a change when there was one); one that expired before `now` is ignored;
//!   otherwise it replaces the local entry when there is none or the local flush time is
//!   strictly older (ties keep the local entry);
//! - log: an existing entry with a later flush time wins (nothing written); the entry expires
//!   after `min(retention, expiry)`, `expiry` zero meaning the retention;
//! - GC: entries whose `expires_at` is zero or not after `now` go.
//!
//! Marshalling writes the entries sorted by fingerprint: deterministic, and at once the
//! push/pull `Part.data` and the snapshot file.

pub mod proto;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message;

use super::delimited;
use super::{DecodeError, GO_ZERO_SECONDS, Timestamp};
use crate::core::UnixMillis;
use proto::MeshFlushLog;

/// Grafana's retention of flush-log entries (its fixed 5 days, as for its snapshots). The
/// fork's own default when given none is 2 h; entries normally expire sooner, at the expiry
/// the dispatcher passes.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

/// Why a flush-log operation failed. The log is unchanged and nothing is to be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushLogError {
    /// Fingerprint 0 is refused: every Go peer would reject the blob carrying it (and with it
    /// the whole full state's part).
    #[error("group fingerprint 0 is invalid; state unchanged")]
    ZeroFingerprint,
    /// The flush time, `now` or the expiry from it is outside Go's timestamp range (years 1
    /// to 9999), or the flush time is Go's zero time.
    #[error("time {seconds} s since the epoch is outside Go's timestamp range; state unchanged")]
    TimeOutOfRange {
        /// The offending time, in seconds since the epoch.
        seconds: i64,
    },
}

/// One group's entry: its flush time and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushEntry {
    /// When the group was flushed.
    pub timestamp: Timestamp,
    /// When GC removes the entry.
    pub expires_at: Timestamp,
}

/// The flush log of one organisation on one node. Not internally synchronised except for its
/// counters; the caller serialises writers.
#[derive(Debug)]
pub struct FlushLog {
    retention: Duration,
    /// By fingerprint; ordered so that marshalling is deterministic.
    entries: BTreeMap<u64, FlushEntry>,
    queries_total: AtomicU64,
    query_errors_total: AtomicU64,
}

impl FlushLog {
    /// An empty log whose entries live at most `retention` ([`DEFAULT_RETENTION`] in Grafana).
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            entries: BTreeMap::new(),
            queries_total: AtomicU64::new(0),
            query_errors_total: AtomicU64::new(0),
        }
    }

    /// A log holding the state in `data` (a snapshot file or a full-state `Part.data`), with
    /// no expiry filtering (the next [`gc`](Self::gc) removes what is stale), as the fork
    /// loads its snapshot.
    pub fn load(data: &[u8], retention: Duration) -> Result<Self, DecodeError> {
        let mut log = Self::new(retention);
        log.entries = decode(data)?.into_iter().map(|(fp, e)| (fp, e.entry)).collect();
        Ok(log)
    }

    /// How many entries the log holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `alertmanager_flushlog_queries_total`: [`query`](Self::query) calls.
    pub fn queries_total(&self) -> u64 {
        self.queries_total.load(Ordering::Relaxed)
    }

    /// `alertmanager_flushlog_query_errors_total`: queries that found nothing or asked for
    /// fingerprint 0, as the fork counts them.
    pub fn query_errors_total(&self) -> u64 {
        self.query_errors_total.load(Ordering::Relaxed)
    }

    /// The entry for `fingerprint`, or `None`. Counts toward the query metrics either way.
    pub fn query(&self, fingerprint: u64) -> Option<FlushEntry> {
        self.queries_total.fetch_add(1, Ordering::Relaxed);
        let found = self.entries.get(&fingerprint).copied().filter(|_| fingerprint != 0);
        if found.is_none() {
            self.query_errors_total.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Record that the group `fingerprint` was flushed at `flush_time` and return the one
    /// delimited `MeshFlushLog` the caller must broadcast, or `None` when the stored flush
    /// time is later (nothing written, nothing to send). The entry expires after
    /// `min(retention, expiry)` from `now` (`expiry` zero or `None`: the retention).
    pub fn log(
        &mut self,
        fingerprint: u64,
        flush_time: Timestamp,
        expiry: Option<Duration>,
        now: UnixMillis,
    ) -> Result<Option<Vec<u8>>, FlushLogError> {
        if fingerprint == 0 {
            return Err(FlushLogError::ZeroFingerprint);
        }
        let now_ts = Timestamp::from(now);
        let expires_at = now_ts + lifetime(self.retention, expiry);
        for t in [flush_time, now_ts, expires_at] {
            if !t.in_go_range() || t.is_go_zero() {
                return Err(FlushLogError::TimeOutOfRange { seconds: t.seconds });
            }
        }
        if self.entries.get(&fingerprint).is_some_and(|e| e.timestamp > flush_time) {
            return Ok(None);
        }
        let entry = FlushEntry { timestamp: flush_time, expires_at };
        apply(&mut self.entries, fingerprint, Incoming::Entry(entry), now_ts);
        Ok(Some(encode_one(fingerprint, entry.timestamp, entry.expires_at)))
    }

    /// Remove the entry of `fingerprint` (a group that ended) and return the deletion to
    /// broadcast: the entry with Go's zero time as its expiry, as the fork sends it. `None`
    /// when there is no entry (the fork's `ErrNotFound`): nothing changed.
    pub fn delete(&mut self, fingerprint: u64) -> Option<Vec<u8>> {
        let entry = self.entries.remove(&fingerprint)?;
        Some(encode_one(fingerprint, entry.timestamp, GO_ZERO))
    }

    /// Merge a gossip message or a full state and return how many elements changed the state
    /// (the caller re-gossips `data` that many times when it is at most 700 bytes, as the
    /// fork does). All or nothing: one bad element rejects the blob, the state unchanged.
    pub fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError> {
        let now_ts = Timestamp::from(now);
        let incoming = decode(data)?;
        let mut changed = 0;
        for (fingerprint, element) in incoming {
            let what =
                if element.deletion { Incoming::Deletion } else { Incoming::Entry(element.entry) };
            changed += usize::from(apply(&mut self.entries, fingerprint, what, now_ts));
        }
        Ok(changed)
    }

    /// The whole state as delimited `MeshFlushLog` messages, sorted by fingerprint.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 32);
        for (fp, e) in &self.entries {
            out.extend_from_slice(&encode_one(*fp, e.timestamp, e.expires_at));
        }
        out
    }

    /// Remove every entry whose `expires_at` is zero or not after `now`; how many went.
    pub fn gc(&mut self, now: UnixMillis) -> usize {
        let now_ts = Timestamp::from(now);
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.expires_at.is_zero() && e.expires_at > now_ts);
        before - self.entries.len()
    }
}

/// Go's zero time: a deletion's `expires_at`.
const GO_ZERO: Timestamp = Timestamp { seconds: GO_ZERO_SECONDS, nanos: 0 };

/// `min(retention, expiry)`, as the fork's `Log` (an `expiry` of zero means none).
fn lifetime(retention: Duration, expiry: Option<Duration>) -> Duration {
    match expiry {
        Some(e) if !e.is_zero() && e < retention => e,
        _ => retention,
    }
}

/// One element of a blob, as merge sees it.
enum Incoming {
    Entry(FlushEntry),
    Deletion,
}

/// The merge rule for one element: whether it changed the state.
fn apply(
    entries: &mut BTreeMap<u64, FlushEntry>,
    fingerprint: u64,
    incoming: Incoming,
    now: Timestamp,
) -> bool {
    match incoming {
        Incoming::Deletion => entries.remove(&fingerprint).is_some(),
        Incoming::Entry(e) if e.expires_at < now => false,
        Incoming::Entry(e) => match entries.get_mut(&fingerprint) {
            Some(local) if local.timestamp >= e.timestamp => false,
            Some(local) => {
                *local = e;
                true
            }
            None => {
                entries.insert(fingerprint, e);
                true
            }
        },
    }
}

/// A decoded element: the entry, and whether its expiry marks a deletion.
struct Decoded {
    entry: FlushEntry,
    deletion: bool,
}

/// Split and check every element of `data`; a fingerprint seen twice keeps its later
/// element. Any bad element fails the whole blob. Never panics, whatever the bytes.
fn decode(data: &[u8]) -> Result<BTreeMap<u64, Decoded>, DecodeError> {
    let mut out = BTreeMap::new();
    for (offset, msg) in delimited::split(data)? {
        let mesh = MeshFlushLog::decode(msg)
            .map_err(|e| DecodeError::Protobuf { offset, reason: e.to_string() })?;
        let flush =
            mesh.flush_log.ok_or(DecodeError::MissingField { offset, field: "flushLog" })?;
        if flush.group_fingerprint == 0 {
            return Err(DecodeError::MissingField { offset, field: "flushLog.group_fingerprint" });
        }
        // gogoproto reads an absent non-nullable time as Go's zero time.
        let timestamp = flush.timestamp.unwrap_or(GO_ZERO);
        let expires_at = mesh.expires_at.unwrap_or(GO_ZERO);
        for (field, t) in [("flushLog.timestamp", timestamp), ("expires_at", expires_at)] {
            if !t.in_go_range() {
                return Err(DecodeError::Protobuf {
                    offset,
                    reason: format!("{field} outside Go's time range (years 1 to 9999)"),
                });
            }
        }
        if timestamp.is_go_zero() {
            return Err(DecodeError::MissingField { offset, field: "flushLog.timestamp" });
        }
        let deletion = expires_at.is_go_zero();
        out.insert(
            flush.group_fingerprint,
            Decoded { entry: FlushEntry { timestamp, expires_at }, deletion },
        );
    }
    Ok(out)
}

/// One delimited `MeshFlushLog`.
fn encode_one(fingerprint: u64, timestamp: Timestamp, expires_at: Timestamp) -> Vec<u8> {
    let mesh = MeshFlushLog {
        flush_log: Some(proto::FlushLog {
            group_fingerprint: fingerprint,
            timestamp: Some(timestamp),
        }),
        expires_at: Some(expires_at),
    };
    let mut out = Vec::with_capacity(40);
    delimited::push(&mut out, &mesh.encode_to_vec());
    out
}

#[cfg(test)]
mod tests;
