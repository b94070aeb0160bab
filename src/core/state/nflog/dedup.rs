//! The Dedup stage's decision (spec §5.4): given the last logged notification of a group to
//! an integration, does the current flush notify?
//!
//! [`needs_update`] is the table of §5.4, row by row, in its order; it is pure and knows
//! nothing of storage. [`Nflog::should_notify`](super::Nflog::should_notify) does the lookup
//! and feeds it.

use std::time::Duration;

use crate::core::UnixMillis;
use crate::core::state::Timestamp;

/// Why a flush notifies (Alertmanager ≥ 0.32 records this and sends it to webhooks as
/// `notification_reason`); [`Reason::DoNotNotify`] when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `"none"`.
    DoNotNotify,
    /// `"first notification"`.
    FirstNotification,
    /// `"new alerts added"`.
    NewAlertsAdded,
    /// `"some alerts resolved"`.
    SomeAlertsResolved,
    /// `"all alerts resolved"`.
    AllAlertsResolved,
    /// `"repeat interval elapsed"`.
    RepeatIntervalElapsed,
}

impl Reason {
    /// The string Alertmanager ≥ 0.32 puts in webhook payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoNotNotify => "none",
            Self::FirstNotification => "first notification",
            Self::NewAlertsAdded => "new alerts added",
            Self::SomeAlertsResolved => "some alerts resolved",
            Self::AllAlertsResolved => "all alerts resolved",
            Self::RepeatIntervalElapsed => "repeat interval elapsed",
        }
    }
}

/// Which row of the §5.4 table decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Row {
    /// Row 1: no entry, something firing → notify.
    NoEntryFiring,
    /// Row 1b: no entry, only resolved alerts → skip.
    NoEntryResolvedOnly,
    /// Row 2: a firing alert the entry does not list → notify.
    NewFiring,
    /// Row 3: nothing firing now, the entry had firing alerts → notify, whatever
    /// `send_resolved` says (it clears the firing set from the log).
    AllResolved,
    /// Row 3b: nothing firing now, nothing firing then → skip.
    NothingFiring,
    /// Row 4: `send_resolved` and a resolved alert the entry does not list → notify.
    NewResolved,
    /// Row 5: the entry is older than the repeat interval (strictly) → notify.
    RepeatElapsed,
    /// Row 6: nothing changed → skip.
    Unchanged,
    /// The query itself failed (an empty group key: Go's "no query parameters specified").
    /// Go fails the stage, so nothing is sent and the next flush tries again.
    QueryFailed,
}

/// The Dedup stage's verdict for one flush of one group to one integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether to pass the alerts on to the integration.
    pub notify: bool,
    /// Why (HEAD's reason; [`Reason::DoNotNotify`] when `notify` is false).
    pub reason: Reason,
    /// Which table row decided.
    pub row: Row,
}

impl Decision {
    fn notify(reason: Reason, row: Row) -> Self {
        Self { notify: true, reason, row }
    }

    pub(super) fn skip(row: Row) -> Self {
        Self { notify: false, reason: Reason::DoNotNotify, row }
    }
}

/// What the Dedup stage reads of the previous entry.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// `entry.firing_alerts`.
    pub firing: &'a [u64],
    /// `entry.resolved_alerts`.
    pub resolved: &'a [u64],
    /// `entry.timestamp`.
    pub timestamp: Timestamp,
}

/// The current flush, as the Dedup stage sees it.
#[derive(Debug, Clone, Copy)]
pub struct Flush<'a> {
    /// Hashes of the group's firing alerts.
    pub firing: &'a [u64],
    /// Hashes of the group's resolved alerts.
    pub resolved: &'a [u64],
    /// The integration's `send_resolved`.
    pub send_resolved: bool,
    /// The route's `repeat_interval`.
    pub repeat_interval: Duration,
    /// The wall clock when Dedup runs (0.25) or the flush tick time (≥ 0.32).
    pub now: UnixMillis,
}

/// §5.4's table, in order. Membership is set membership: duplicates and order do not matter,
/// and alerts that left the group (neither firing nor resolved now) change nothing.
pub fn needs_update(prev: Option<&Previous<'_>>, flush: &Flush<'_>) -> Decision {
    let Some(prev) = prev else {
        return if flush.firing.is_empty() {
            Decision::skip(Row::NoEntryResolvedOnly)
        } else {
            Decision::notify(Reason::FirstNotification, Row::NoEntryFiring)
        };
    };
    if !is_subset(flush.firing, prev.firing) {
        // After a resolution the entry lists nothing firing: this is a new start.
        let reason =
            if prev.firing.is_empty() { Reason::FirstNotification } else { Reason::NewAlertsAdded };
        return Decision::notify(reason, Row::NewFiring);
    }
    if flush.firing.is_empty() {
        return if prev.firing.is_empty() {
            Decision::skip(Row::NothingFiring)
        } else {
            Decision::notify(Reason::AllAlertsResolved, Row::AllResolved)
        };
    }
    if flush.send_resolved && !is_subset(flush.resolved, prev.resolved) {
        return Decision::notify(Reason::SomeAlertsResolved, Row::NewResolved);
    }
    repeat_or_unchanged(nanos(prev.timestamp), flush)
}

/// The table's last rows, for an entry logged at `logged` (nanoseconds since the epoch)
/// whose alerts the flush changes nothing of.
#[inline]
pub(super) fn repeat_or_unchanged(logged: i128, flush: &Flush<'_>) -> Decision {
    // Go: entry.Timestamp.Before(now.Add(-repeat)), strictly before. In nanoseconds, which
    // needs no 128-bit division (this is the hot path of every flush).
    let now = i128::from(flush.now.0) * 1_000_000;
    let repeat = i128::try_from(flush.repeat_interval.as_nanos()).unwrap_or(i128::MAX / 2);
    if logged < now - repeat {
        return Decision::notify(Reason::RepeatIntervalElapsed, Row::RepeatElapsed);
    }
    Decision::skip(Row::Unchanged)
}

/// Nanoseconds since the epoch (exact for any `Timestamp`).
fn nanos(t: Timestamp) -> i128 {
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

/// Above this many comparisons, sort a copy of `set` instead of scanning it for each element.
const LINEAR_LIMIT: usize = 512;

/// Whether every element of `items` is in `set`.
pub(super) fn is_subset(items: &[u64], set: &[u64]) -> bool {
    if items.len().saturating_mul(set.len()) <= LINEAR_LIMIT {
        return items.iter().all(|h| set.contains(h));
    }
    let mut sorted = set.to_vec();
    sorted.sort_unstable();
    items.iter().all(|h| sorted.binary_search(h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn prev<'a>(firing: &'a [u64], resolved: &'a [u64], age: Duration) -> Previous<'a> {
        Previous { firing, resolved, timestamp: Timestamp::from(NOW) - age }
    }

    fn flush<'a>(firing: &'a [u64], resolved: &'a [u64], send_resolved: bool) -> Flush<'a> {
        Flush { firing, resolved, send_resolved, repeat_interval: 4 * HOUR, now: NOW }
    }

    fn decide(p: Option<Previous<'_>>, f: Flush<'_>) -> (bool, Reason, Row) {
        let d = needs_update(p.as_ref(), &f);
        assert_eq!(d.notify, d.reason != Reason::DoNotNotify, "reason agrees with verdict");
        (d.notify, d.reason, d.row)
    }

    #[test]
    fn row_1_no_entry_and_firing_notifies() {
        let d = decide(None, flush(&[1], &[2], false));
        assert_eq!(d, (true, Reason::FirstNotification, Row::NoEntryFiring));
    }

    #[test]
    fn row_1b_no_entry_and_only_resolved_skips() {
        let d = decide(None, flush(&[], &[2], true));
        assert_eq!(d, (false, Reason::DoNotNotify, Row::NoEntryResolvedOnly));
        let d = decide(None, flush(&[], &[], true));
        assert_eq!(d.2, Row::NoEntryResolvedOnly);
    }

    #[test]
    fn row_2_new_firing_alert_after_firing_entry() {
        let d = decide(Some(prev(&[1], &[], HOUR)), flush(&[1, 2], &[], false));
        assert_eq!(d, (true, Reason::NewAlertsAdded, Row::NewFiring));
    }

    #[test]
    fn row_2_new_firing_alert_after_resolution_is_a_first_notification() {
        let d = decide(Some(prev(&[], &[1], HOUR)), flush(&[1], &[], false));
        assert_eq!(d, (true, Reason::FirstNotification, Row::NewFiring));
    }

    #[test]
    fn row_3_all_resolved_notifies_even_without_send_resolved() {
        for send_resolved in [false, true] {
            let d = decide(Some(prev(&[1, 2], &[], HOUR)), flush(&[], &[1, 2], send_resolved));
            assert_eq!(d, (true, Reason::AllAlertsResolved, Row::AllResolved));
        }
    }

    #[test]
    fn row_3b_nothing_firing_then_or_now_skips() {
        let d = decide(Some(prev(&[], &[1], 10 * HOUR)), flush(&[], &[1, 2], true));
        assert_eq!(d, (false, Reason::DoNotNotify, Row::NothingFiring));
    }

    #[test]
    fn row_4_new_resolved_with_send_resolved_notifies() {
        let d = decide(Some(prev(&[1, 2], &[], HOUR)), flush(&[1], &[2], true));
        assert_eq!(d, (true, Reason::SomeAlertsResolved, Row::NewResolved));
    }

    #[test]
    fn new_resolved_without_send_resolved_falls_through() {
        let d = decide(Some(prev(&[1, 2], &[], HOUR)), flush(&[1], &[2], false));
        assert_eq!(d, (false, Reason::DoNotNotify, Row::Unchanged));
        // ... to the repeat check when the entry is old enough.
        let d = decide(Some(prev(&[1, 2], &[], 5 * HOUR)), flush(&[1], &[2], false));
        assert_eq!(d.2, Row::RepeatElapsed);
    }

    #[test]
    fn row_5_repeat_interval_elapsed_notifies() {
        let d = decide(
            Some(prev(&[1], &[], 4 * HOUR + Duration::from_millis(1))),
            flush(&[1], &[], true),
        );
        assert_eq!(d, (true, Reason::RepeatIntervalElapsed, Row::RepeatElapsed));
    }

    #[test]
    fn row_5_boundary_is_strictly_before() {
        // Exactly repeat_interval old: not before now − repeat, so no repeat yet.
        let d = decide(Some(prev(&[1], &[], 4 * HOUR)), flush(&[1], &[], true));
        assert_eq!(d, (false, Reason::DoNotNotify, Row::Unchanged));
        // One nanosecond older is enough.
        let p = Previous {
            firing: &[1],
            resolved: &[],
            timestamp: Timestamp::from(NOW) - 4 * HOUR - Duration::from_nanos(1),
        };
        assert_eq!(decide(Some(p), flush(&[1], &[], true)).2, Row::RepeatElapsed);
    }

    #[test]
    fn row_6_unchanged_skips() {
        // Fewer firing alerts than before, known resolved ones, recent entry.
        let d = decide(Some(prev(&[1, 2, 3], &[4], HOUR)), flush(&[2, 1], &[4], true));
        assert_eq!(d, (false, Reason::DoNotNotify, Row::Unchanged));
    }

    #[test]
    fn rows_are_checked_in_order() {
        // New firing beats new resolved and the repeat interval.
        let d = decide(Some(prev(&[1], &[], 9 * HOUR)), flush(&[1, 2], &[3], true));
        assert_eq!(d.2, Row::NewFiring);
        // New resolved beats the repeat interval.
        let d = decide(Some(prev(&[1, 2], &[], 9 * HOUR)), flush(&[1], &[2], true));
        assert_eq!(d.2, Row::NewResolved);
    }

    #[test]
    fn subset_checks_agree_on_large_inputs() {
        let set: Vec<u64> = (0..1000).map(|i| i * 7).collect();
        let items: Vec<u64> = (0..500).map(|i| i * 14).collect();
        assert!(is_subset(&items, &set));
        assert!(!is_subset(&[3], &set));
        let mut bad = items.clone();
        bad.push(1);
        assert!(!is_subset(&bad, &set));
        assert!(is_subset(&[], &[]));
    }
}
