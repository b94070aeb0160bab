//! Alertmanager's replicated states through a node: the Dedup and SetNotifies stages, silence
//! writes, the mute check, and the alert hashes both need.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::time::Duration;

use super::node::node;
use super::{
    Failure, FfiResult, boundary, bytes, copy_out, hs_node, hs_result, hs_str, out_ptr, text, write,
};
use crate::core::UnixMillis;
use crate::core::state::Timestamp;
use crate::core::state::labels::{self, LabelSet};
use crate::core::state::nflog::{Flush, Receiver, ReceiverRef, Row};
use crate::core::state::silences::{Matcher, MatcherSet, MatcherType, Silence};
use crate::node::States as _;
use crate::node::{NFLOG_KEY, SILENCES_KEY};

/// One label of an alert.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_label {
    /// Label name.
    pub name: hs_str,
    /// Label value.
    pub value: hs_str,
}

/// Who a notification goes to: Alertmanager's `nflogpb.Receiver`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_receiver {
    /// The receiver's name in the routing configuration.
    pub name: hs_str,
    /// The integration type: `webhook`, `email`, `slack`, ...
    pub integration: hs_str,
    /// Index within the receiver's list of that type (`webhook_configs[1]` is 1).
    pub index: u32,
}

/// One flush of an aggregation group to one integration: the Dedup stage's inputs.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_flush {
    /// The integration notified.
    pub receiver: hs_receiver,
    /// The group key (Alertmanager's `GroupKey`).
    pub group_key: hs_str,
    /// `hs_alert_hash` of each firing alert (`firing_len` of them).
    pub firing: *const u64,
    /// How many firing alerts.
    pub firing_len: usize,
    /// `hs_alert_hash` of each resolved alert.
    pub resolved: *const u64,
    /// How many resolved alerts.
    pub resolved_len: usize,
    /// The integration's `send_resolved`.
    pub send_resolved: bool,
    /// The route's `repeat_interval` in milliseconds.
    pub repeat_interval_ms: u64,
    /// Unix time in milliseconds: the wall clock when Dedup runs (0.25) or the flush tick
    /// time (≥ 0.32).
    pub now_ms: i64,
}

/// Which row of Alertmanager's dedup table decided (`needsUpdate`, in order).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_dedup_row {
    /// No entry, something firing: notify.
    NoEntryFiring = 1,
    /// No entry, only resolved alerts: skip.
    NoEntryResolvedOnly = 2,
    /// A firing alert the entry does not list: notify.
    NewFiring = 3,
    /// Nothing firing now, the entry had firing alerts: notify.
    AllResolved = 4,
    /// Nothing firing now, nothing firing then: skip.
    NothingFiring = 5,
    /// `send_resolved` and a resolved alert the entry does not list: notify.
    NewResolved = 6,
    /// The entry is older than the repeat interval: notify.
    RepeatElapsed = 7,
    /// Nothing changed: skip.
    Unchanged = 8,
    /// The group key is empty: skip (Alertmanager fails the stage; the next flush retries).
    QueryFailed = 9,
}

impl From<Row> for hs_dedup_row {
    fn from(row: Row) -> Self {
        match row {
            Row::NoEntryFiring => Self::NoEntryFiring,
            Row::NoEntryResolvedOnly => Self::NoEntryResolvedOnly,
            Row::NewFiring => Self::NewFiring,
            Row::AllResolved => Self::AllResolved,
            Row::NothingFiring => Self::NothingFiring,
            Row::NewResolved => Self::NewResolved,
            Row::RepeatElapsed => Self::RepeatElapsed,
            Row::Unchanged => Self::Unchanged,
            Row::QueryFailed => Self::QueryFailed,
        }
    }
}

/// The Dedup stage's verdict.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_decision {
    /// Whether to send the notification.
    pub notify: bool,
    /// Why.
    pub row: hs_dedup_row,
}

/// A matcher operator, as Alertmanager numbers them.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_match_type {
    /// `name="value"`.
    Equal = 0,
    /// `name=~"regex"` (anchored, Go RE2 syntax).
    Regexp = 1,
    /// `name!="value"`.
    NotEqual = 2,
    /// `name!~"regex"`.
    NotRegexp = 3,
}

/// One label matcher of a silence.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_matcher {
    /// Label name.
    pub name: hs_str,
    /// Value, or the regex as written (unanchored).
    pub value: hs_str,
    /// An `hs_match_type` number; any other is `HS_RESULT_INVALID_ARGUMENT`.
    pub match_type: u32,
}

/// A silence to create or update.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_silence {
    /// The silence to update, or empty to create one.
    pub id: hs_str,
    /// The matchers, all of which must match (`matchers_len` of them, at least one).
    pub matchers: *const hs_matcher,
    /// How many matchers.
    pub matchers_len: usize,
    /// Start of the muting window, Unix milliseconds.
    pub starts_at_ms: i64,
    /// End of the muting window, Unix milliseconds.
    pub ends_at_ms: i64,
    /// Author.
    pub created_by: hs_str,
    /// Free text.
    pub comment: hs_str,
}

/// The longest silence ID a node creates (a UUID's text). IDs of silences created by other
/// Alertmanagers can differ in length.
pub const HS_SILENCE_ID_LEN: usize = 36;

fn label_set(labels: *const hs_label, len: usize) -> FfiResult<LabelSet> {
    let mut set = LabelSet::new();
    for l in bytes(labels, len, "labels")? {
        set.insert(
            text(l.name, "label name")?.to_owned(),
            text(l.value, "label value")?.to_owned(),
        );
    }
    Ok(set)
}

fn receiver<'a>(r: &hs_receiver) -> FfiResult<ReceiverRef<'a>> {
    Ok(ReceiverRef {
        group_name: text(r.name, "receiver name")?,
        integration: text(r.integration, "integration")?,
        idx: r.index,
    })
}

/// Borrow a flush's parts: its receiver, group key, and the Rust view of the rest.
fn flush<'a>(f: *const hs_flush) -> FfiResult<(ReceiverRef<'a>, &'a str, Flush<'a>)> {
    let f = super::borrow(f, "flush")?;
    let flush = Flush {
        firing: bytes(f.firing, f.firing_len, "firing")?,
        resolved: bytes(f.resolved, f.resolved_len, "resolved")?,
        send_resolved: f.send_resolved,
        repeat_interval: Duration::from_millis(f.repeat_interval_ms),
        now: UnixMillis(f.now_ms),
    };
    Ok((receiver(&f.receiver)?, text(f.group_key, "group_key")?, flush))
}

/// Alertmanager's alert hash (XXH64 over the sorted labels), as the notification log stores
/// it: what `hs_flush` lists. Labels may come in any order; a repeated name keeps the last
/// value. Writes it to `*hash_out`. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_alert_hash(
    labels: *const hs_label,
    len: usize,
    hash_out: *mut u64,
) -> hs_result {
    boundary(|| {
        let set = label_set(labels, len)?;
        write(out_ptr(hash_out, "hash_out")?, labels::alert_hash(&set));
        Ok(())
    })
}

/// Prometheus' label-set fingerprint (FNV-1a), as Alertmanager keys alerts by. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_alert_fingerprint(
    labels: *const hs_label,
    len: usize,
    fingerprint_out: *mut u64,
) -> hs_result {
    boundary(|| {
        let set = label_set(labels, len)?;
        write(out_ptr(fingerprint_out, "fingerprint_out")?, labels::fingerprint(&set));
        Ok(())
    })
}

/// Alertmanager's Dedup stage: whether this flush must be sent, given what the replicated
/// notification log says was sent already. Writes the verdict to `*decision_out`. Reads only;
/// never waits on the network.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_should_notify(
    node: *const hs_node,
    flush: *const hs_flush,
    decision_out: *mut hs_decision,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let (receiver, group_key, f) = self::flush(flush)?;
        let out = out_ptr(decision_out, "decision_out")?;
        let d = n.should_notify(NFLOG_KEY, receiver, group_key, &f)?;
        write(out, hs_decision { notify: d.notify, row: d.row.into() });
        Ok(())
    })
}

/// Alertmanager's SetNotifies stage: record that `flush` was delivered and send the entry to
/// every peer. The entry lives twice the repeat interval (or the retention if shorter).
/// Writes `false` to `*written_out`, changing nothing, when the stored entry is newer than
/// `now_ms` (this node's clock is behind a peer's). `HS_RESULT_QUEUE_FULL`, changing nothing,
/// when the transport's outbound queue has no room (Redis down or slow, gossip saturated).
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_log_notification(
    node: *const hs_node,
    flush: *const hs_flush,
    written_out: *mut bool,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let (receiver, group_key, f) = self::flush(flush)?;
        let out = out_ptr(written_out, "written_out")?;
        let receiver = Receiver::new(receiver.group_name, receiver.integration, receiver.idx);
        let written = n.log_notification(NFLOG_KEY, &receiver, group_key, &f, &BTreeMap::new())?;
        write(out, written);
        Ok(())
    })
}

fn matcher(m: &hs_matcher) -> FfiResult<Matcher> {
    let kind = match m.match_type {
        0 => MatcherType::Equal,
        1 => MatcherType::Regexp,
        2 => MatcherType::NotEqual,
        3 => MatcherType::NotRegexp,
        other => {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                format!("matcher type {other} is not an hs_match_type"),
            ));
        }
    };
    Ok(Matcher::new(kind, text(m.name, "matcher name")?, text(m.value, "matcher value")?))
}

/// Create or update a silence by Alertmanager's rules (validation, limits, update-or-replace)
/// and send it to every peer. Copies the silence's ID into `id_buf` (at least
/// `HS_SILENCE_ID_LEN` bytes for a new one): a new ID when the update had to replace the
/// silence. A refused silence gives `HS_RESULT_INVALID_SILENCE` or `HS_RESULT_SILENCE_LIMIT`
/// with the reason in `hs_last_error_message`; a full outbound queue `HS_RESULT_QUEUE_FULL`,
/// changing nothing.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_set_silence(
    node: *const hs_node,
    silence: *const hs_silence,
    now_ms: i64,
    id_buf: *mut c_char,
    id_cap: usize,
    id_len_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let s = super::borrow(silence, "silence")?;
        out_ptr(id_len_out, "id_len_out")?;
        let matchers = bytes(s.matchers, s.matchers_len, "matchers")?
            .iter()
            .map(matcher)
            .collect::<FfiResult<Vec<_>>>()?;
        let silence = Silence {
            id: text(s.id, "id")?.to_owned(),
            matcher_sets: vec![MatcherSet { matchers }],
            starts_at: Timestamp::from(UnixMillis(s.starts_at_ms)),
            ends_at: Timestamp::from(UnixMillis(s.ends_at_ms)),
            created_by: text(s.created_by, "created_by")?.to_owned(),
            comment: text(s.comment, "comment")?.to_owned(),
            ..Silence::default()
        };
        // Check the buffer before writing, so a too-small buffer changes nothing.
        let longest = silence.id.len().max(HS_SILENCE_ID_LEN);
        if id_cap < longest {
            write(id_len_out, longest);
            return Err(Failure::new(
                hs_result::BufferTooSmall,
                format!("id_buf holds {id_cap} bytes; {longest} needed"),
            ));
        }
        let id = n.set_silence(SILENCES_KEY, silence, UnixMillis(now_ms))?;
        copy_out(id.as_str().as_bytes(), id_buf, id_cap, id_len_out)
    })
}

/// Expire the silence `id` at `now_ms` and send the change to every peer. Expiring an expired
/// silence succeeds and changes nothing; an unknown ID is `HS_RESULT_SILENCE_NOT_FOUND`; a full
/// outbound queue `HS_RESULT_QUEUE_FULL`, changing nothing.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_expire_silence(
    node: *const hs_node,
    id: hs_str,
    now_ms: i64,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        Ok(n.expire_silence(SILENCES_KEY, text(id, "id")?, UnixMillis(now_ms))?)
    })
}

/// How many active silences mute the alert with these labels at `now_ms` (0: not muted),
/// written to `*silences_out`. Results are cached per label set until the silences change.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_mutes(
    node: *const hs_node,
    labels: *const hs_label,
    len: usize,
    now_ms: i64,
    silences_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let set = label_set(labels, len)?;
        let out = out_ptr(silences_out, "silences_out")?;
        let result = n.mutes(SILENCES_KEY, labels::fingerprint(&set), &set, UnixMillis(now_ms))?;
        write(out, result.active.len());
        Ok(())
    })
}
