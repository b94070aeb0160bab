//! Alertmanager's replicated states through a node: the Dedup and SetNotifies stages, silence
//! writes, the mute check, and the alert hashes both need; Grafana's flush log.
//!
//! Each state call exists twice: `hs_node_<verb>` on Alertmanager's `nfl`/`sil`, and
//! `hs_node_<verb>_in` with the state's key first, for Grafana's per-organisation states
//! (`notificationlog:<org>`, `silences:<org>`). The flush-log calls always take the key.

use std::collections::BTreeMap;
use std::ffi::c_char;

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
    /// The route's `repeat_interval` in milliseconds, at most `HS_MAX_DURATION_MS`.
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

pub(super) fn label_set(labels: *const hs_label, len: usize) -> FfiResult<LabelSet> {
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
        repeat_interval: super::duration_ms(f.repeat_interval_ms, "repeat_interval_ms")?,
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
/// never waits on the network. Uses Alertmanager's `nfl`; `hs_node_should_notify_in` names
/// the state.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_should_notify(
    node: *const hs_node,
    flush: *const hs_flush,
    decision_out: *mut hs_decision,
) -> hs_result {
    boundary(|| should_notify(node, NFLOG_KEY, flush, decision_out))
}

/// `hs_node_should_notify` against the notification log under `key`: Grafana's
/// `notificationlog:<org>` for organisation `<org>` (`hs_config_add_org`), or `nfl`.
/// `HS_RESULT_NO_SUCH_STATE` when no notification log is registered under `key`. Each
/// organisation's log is its own: an entry logged in one never suppresses another's flush.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_should_notify_in(
    node: *const hs_node,
    key: hs_str,
    flush: *const hs_flush,
    decision_out: *mut hs_decision,
) -> hs_result {
    boundary(|| should_notify(node, text(key, "key")?, flush, decision_out))
}

fn should_notify(
    node: *const hs_node,
    key: &str,
    flush: *const hs_flush,
    decision_out: *mut hs_decision,
) -> FfiResult {
    let n = self::node(node)?;
    let (receiver, group_key, f) = self::flush(flush)?;
    let out = out_ptr(decision_out, "decision_out")?;
    let d = n.should_notify(key, receiver, group_key, &f)?;
    write(out, hs_decision { notify: d.notify, row: d.row.into() });
    Ok(())
}

/// Alertmanager's SetNotifies stage: record that `flush` was delivered and send the entry to
/// every peer. The entry lives twice the repeat interval (or the retention if shorter).
/// Writes `false` to `*written_out`, changing nothing, when the stored entry is newer than
/// `now_ms` (this node's clock is behind a peer's). `HS_RESULT_QUEUE_FULL`, changing nothing,
/// when the transport's outbound queue has no room (Redis down or slow, gossip saturated).
/// Uses Alertmanager's `nfl`; `hs_node_log_notification_in` names the state.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_log_notification(
    node: *const hs_node,
    flush: *const hs_flush,
    written_out: *mut bool,
) -> hs_result {
    boundary(|| log_notification(node, NFLOG_KEY, flush, written_out))
}

/// `hs_node_log_notification` into the notification log under `key` (Grafana's
/// `notificationlog:<org>`, or `nfl`); `HS_RESULT_NO_SUCH_STATE` when there is none.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_log_notification_in(
    node: *const hs_node,
    key: hs_str,
    flush: *const hs_flush,
    written_out: *mut bool,
) -> hs_result {
    boundary(|| log_notification(node, text(key, "key")?, flush, written_out))
}

fn log_notification(
    node: *const hs_node,
    key: &str,
    flush: *const hs_flush,
    written_out: *mut bool,
) -> FfiResult {
    let n = self::node(node)?;
    let (receiver, group_key, f) = self::flush(flush)?;
    let out = out_ptr(written_out, "written_out")?;
    let receiver = Receiver::new(receiver.group_name, receiver.integration, receiver.idx);
    let written = n.log_notification(key, &receiver, group_key, &f, &BTreeMap::new())?;
    write(out, written);
    Ok(())
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
/// with the reason in `hs_last_error_message`; one whose encoding exceeds the 4 MiB message
/// limit (which no peer would accept) `HS_RESULT_MESSAGE_TOO_LARGE`; a full outbound queue
/// `HS_RESULT_QUEUE_FULL`; each changes nothing. Uses Alertmanager's `sil`;
/// `hs_node_set_silence_in` names the state.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_set_silence(
    node: *const hs_node,
    silence: *const hs_silence,
    now_ms: i64,
    id_buf: *mut c_char,
    id_cap: usize,
    id_len_out: *mut usize,
) -> hs_result {
    boundary(|| set_silence(node, SILENCES_KEY, silence, now_ms, (id_buf, id_cap, id_len_out)))
}

/// `hs_node_set_silence` in the silences under `key`: Grafana's `silences:<org>`, or `sil`.
/// `HS_RESULT_NO_SUCH_STATE` when none are registered under `key`. An organisation's
/// silences mute only its own alerts (`hs_node_mutes_in` with its key).
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_set_silence_in(
    node: *const hs_node,
    key: hs_str,
    silence: *const hs_silence,
    now_ms: i64,
    id_buf: *mut c_char,
    id_cap: usize,
    id_len_out: *mut usize,
) -> hs_result {
    boundary(|| set_silence(node, text(key, "key")?, silence, now_ms, (id_buf, id_cap, id_len_out)))
}

fn set_silence(
    node: *const hs_node,
    key: &str,
    silence: *const hs_silence,
    now_ms: i64,
    (id_buf, id_cap, id_len_out): (*mut c_char, usize, *mut usize),
) -> FfiResult {
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
    let id = n.set_silence(key, silence, UnixMillis(now_ms))?;
    copy_out(id.as_str().as_bytes(), id_buf, id_cap, id_len_out)
}

/// Expire the silence `id` at `now_ms` and send the change to every peer. Expiring an expired
/// silence succeeds and changes nothing; an unknown ID is `HS_RESULT_SILENCE_NOT_FOUND`; a full
/// outbound queue `HS_RESULT_QUEUE_FULL`, changing nothing. Uses Alertmanager's `sil`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_expire_silence(
    node: *const hs_node,
    id: hs_str,
    now_ms: i64,
) -> hs_result {
    boundary(|| expire_silence(node, SILENCES_KEY, id, now_ms))
}

/// `hs_node_expire_silence` in the silences under `key` (Grafana's `silences:<org>`, or
/// `sil`); `HS_RESULT_NO_SUCH_STATE` when there are none.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_expire_silence_in(
    node: *const hs_node,
    key: hs_str,
    id: hs_str,
    now_ms: i64,
) -> hs_result {
    boundary(|| expire_silence(node, text(key, "key")?, id, now_ms))
}

fn expire_silence(node: *const hs_node, key: &str, id: hs_str, now_ms: i64) -> FfiResult {
    let n = self::node(node)?;
    Ok(n.expire_silence(key, text(id, "id")?, UnixMillis(now_ms))?)
}

/// How many active silences mute the alert with these labels at `now_ms` (0: not muted),
/// written to `*silences_out`. Results are cached per label set until the silences change.
/// Uses Alertmanager's `sil`; `hs_node_mutes_in` names the state.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_mutes(
    node: *const hs_node,
    labels: *const hs_label,
    len: usize,
    now_ms: i64,
    silences_out: *mut usize,
) -> hs_result {
    boundary(|| mutes(node, SILENCES_KEY, (labels, len), now_ms, silences_out))
}

/// `hs_node_mutes` against the silences under `key` (Grafana's `silences:<org>`, or `sil`);
/// `HS_RESULT_NO_SUCH_STATE` when there are none.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_mutes_in(
    node: *const hs_node,
    key: hs_str,
    labels: *const hs_label,
    len: usize,
    now_ms: i64,
    silences_out: *mut usize,
) -> hs_result {
    boundary(|| mutes(node, text(key, "key")?, (labels, len), now_ms, silences_out))
}

fn mutes(
    node: *const hs_node,
    key: &str,
    (labels, len): (*const hs_label, usize),
    now_ms: i64,
    silences_out: *mut usize,
) -> FfiResult {
    let n = self::node(node)?;
    let set = label_set(labels, len)?;
    let out = out_ptr(silences_out, "silences_out")?;
    let result = n.mutes(key, labels::fingerprint(&set), &set, UnixMillis(now_ms))?;
    write(out, result.active.len());
    Ok(())
}

/// One group's entry in a flush log.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_flush_entry {
    /// When the group was first flushed, Unix milliseconds (truncated from the stored
    /// nanoseconds).
    pub flush_time_ms: i64,
    /// When the entry expires, Unix milliseconds.
    pub expires_at_ms: i64,
}

/// Grafana's sync dispatch timer, on the instance at position 0: record that the aggregation
/// group `group_fingerprint` was first flushed at `flush_time_ms`, in the flush log under
/// `key` (`flushlog:<org>`; `hs_config_set_flush_log`), and send the entry to every peer. It
/// expires `expiry_ms` after `now_ms` (Grafana passes `max(2 × group_interval, 24 h)`), or
/// after the log's retention (120 h) if that is shorter; 0 means the retention; above
/// `HS_MAX_DURATION_MS` is `HS_RESULT_INVALID_ARGUMENT`. Writes
/// `false` to `*written_out`, changing nothing, when the stored flush time is later.
/// `HS_RESULT_FLUSH_LOG_REFUSED` for fingerprint 0 or a time outside Go's range,
/// `HS_RESULT_NO_SUCH_STATE` without a flush log under `key`, `HS_RESULT_QUEUE_FULL` when
/// the transport has no room; each changes nothing. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_log_flush(
    node: *const hs_node,
    key: hs_str,
    group_fingerprint: u64,
    flush_time_ms: i64,
    expiry_ms: u64,
    now_ms: i64,
    written_out: *mut bool,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let key = text(key, "key")?;
        let out = out_ptr(written_out, "written_out")?;
        let expiry = match expiry_ms {
            0 => None,
            ms => Some(super::duration_ms(ms, "expiry_ms")?),
        };
        let flushed = Timestamp::from(UnixMillis(flush_time_ms));
        let written = n.log_flush(key, group_fingerprint, flushed, expiry, UnixMillis(now_ms))?;
        write(out, written);
        Ok(())
    })
}

/// The flush log's entry for `group_fingerprint` under `key`: the replicated first-flush
/// time every instance aligns its group-interval ticks to. Writes whether there is one to
/// `*found_out`, and the entry to `*entry_out` only when there is. Reads only. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_flush_time(
    node: *const hs_node,
    key: hs_str,
    group_fingerprint: u64,
    found_out: *mut bool,
    entry_out: *mut hs_flush_entry,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let key = text(key, "key")?;
        let found_ptr = out_ptr(found_out, "found_out")?;
        let entry_ptr = out_ptr(entry_out, "entry_out")?;
        let found = n.flush_time(key, group_fingerprint)?;
        if let Some(e) = found {
            let entry = hs_flush_entry {
                flush_time_ms: e.timestamp.unix_millis().0,
                expires_at_ms: e.expires_at.unix_millis().0,
            };
            write(entry_ptr, entry);
        }
        write(found_ptr, found.is_some());
        Ok(())
    })
}

/// Forget the group `group_fingerprint` (it ended) in the flush log under `key` and send the
/// deletion to every peer. Writes whether there was an entry to `*deleted_out` (`false`:
/// nothing changed, nothing sent). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_delete_flush(
    node: *const hs_node,
    key: hs_str,
    group_fingerprint: u64,
    deleted_out: *mut bool,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let key = text(key, "key")?;
        let out = out_ptr(deleted_out, "deleted_out")?;
        write(out, n.delete_flush(key, group_fingerprint)?);
        Ok(())
    })
}
