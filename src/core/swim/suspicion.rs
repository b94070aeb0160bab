//! Lifeguard suspicion ("dogpile") timers and awareness (Lifeguard §IV, as memberlist 0.5
//! implements them in `suspicion.go` and `awareness.go`).
//!
//! A suspicion starts at a long timeout and shrinks toward a short one as independent members
//! confirm it: a node that many peers cannot reach is declared dead quickly, a node that only
//! one (possibly unhealthy) peer suspects gets time to refute.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::core::{Millis, NodeName};

/// The shortest suspicion timeout for a cluster of `n` nodes (memberlist `suspicionTimeout`):
/// `mult × max(1, log10(max(1, n))) × probe_interval`, with the node scale truncated to
/// thousandths as Go does. (memberlist's config comment says `log(N+1)`; the code, which we
/// match, uses `log10(n)` floored at 1.)
pub(crate) fn suspicion_min(mult: u32, n: usize, probe_interval: Duration) -> Duration {
    #[allow(clippy::cast_precision_loss)] // n ≤ max_members, far below 2^52
    let scale = (n.max(1) as f64).log10().max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // scale ∈ [1, 16]
    let scale_milli = (scale * 1000.0) as u128;
    let nanos = u128::from(mult) * scale_milli * probe_interval.as_nanos() / 1000;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Timeout after `confirmations` of `k` expected ones (memberlist `remainingSuspicionTime`
/// before subtracting elapsed time): `max − ln(c+1)/ln(k+1) × (max − min)`, floored to whole
/// milliseconds and never below `min`.
pub(crate) fn suspicion_timeout(
    confirmations: u32,
    k: u32,
    min: Duration,
    max: Duration,
) -> Duration {
    if k == 0 {
        return min;
    }
    let frac = (f64::from(confirmations) + 1.0).ln() / (f64::from(k) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped below
    let ms = (1000.0 * raw).floor().max(0.0) as u64;
    Duration::from_millis(ms).max(min)
}

/// One running suspicion of one member.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    /// Confirmations expected before the timeout reaches `min` (0: start at `min`).
    k: u32,
    min: Duration,
    max: Duration,
    start: Millis,
    /// Who has accused so far; the first accuser does not count as a confirmation.
    accusers: BTreeSet<NodeName>,
    confirmations: u32,
    /// When the member is declared dead, unless refuted first.
    pub(crate) deadline: Millis,
    /// Distinguishes this suspicion's timer from stale ones of earlier suspicions.
    pub(crate) generation: u64,
}

impl Suspicion {
    pub(crate) fn new(
        from: NodeName,
        k: u32,
        min: Duration,
        max: Duration,
        now: Millis,
        generation: u64,
    ) -> Self {
        let first = if k < 1 { min } else { max };
        Self {
            k,
            min,
            max,
            start: now,
            accusers: BTreeSet::from([from]),
            confirmations: 0,
            deadline: now + first,
            generation,
        }
    }

    /// Count an accusation from `from`. Returns true when it is a new, independent
    /// confirmation (which the caller re-gossips); the deadline then moves closer.
    pub(crate) fn confirm(&mut self, from: &NodeName) -> bool {
        if self.confirmations >= self.k || self.accusers.contains(from) {
            return false;
        }
        self.accusers.insert(from.clone());
        self.confirmations += 1;
        let timeout = suspicion_timeout(self.confirmations, self.k, self.min, self.max);
        self.deadline = self.start + timeout;
        true
    }

    /// Confirmations so far.
    #[cfg(test)]
    pub(crate) fn confirmations(&self) -> u32 {
        self.confirmations
    }
}

/// Lifeguard local health: 0 is healthy, `max − 1` is the worst. Each failed probe without
/// the expected nacks, and each refutation we had to send, suggests that *we* are the slow
/// one, so we stretch our probe interval and give peers more time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Awareness {
    score: u32,
    max: u32,
}

impl Awareness {
    pub(crate) fn new(max: u32) -> Self {
        Self { score: 0, max: max.max(1) }
    }

    pub(crate) fn apply(&mut self, delta: i64) {
        let next = i64::from(self.score).saturating_add(delta);
        let top = i64::from(self.max - 1);
        self.score = u32::try_from(next.clamp(0, top)).unwrap_or(0);
    }

    pub(crate) fn score(self) -> u32 {
        self.score
    }

    /// `timeout × (score + 1)`.
    pub(crate) fn scale(self, timeout: Duration) -> Duration {
        timeout * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn min_timeout_matches_spec_table() {
        // Spec §8.4 / Appendix B with SuspicionMult 4, ProbeInterval 1 s.
        assert_eq!(suspicion_min(4, 1, SEC), Duration::from_secs(4));
        assert_eq!(suspicion_min(4, 9, SEC), Duration::from_secs(4));
        assert_eq!(suspicion_min(4, 20, SEC), Duration::from_millis(5204));
        assert_eq!(suspicion_min(4, 50, SEC), Duration::from_millis(6792));
        assert_eq!(suspicion_min(4, 100, SEC), Duration::from_secs(8));
        assert_eq!(suspicion_min(4, 0, SEC), Duration::from_secs(4));
    }

    #[test]
    fn confirmations_shrink_the_timeout() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        assert_eq!(suspicion_timeout(0, 2, min, max), max);
        // One of two: 24 − 0.6309 × 20 = 11.381 s (floored to ms).
        assert_eq!(suspicion_timeout(1, 2, min, max), Duration::from_millis(11381));
        assert_eq!(suspicion_timeout(2, 2, min, max), min);
        assert_eq!(suspicion_timeout(5, 2, min, max), min);
        assert_eq!(suspicion_timeout(0, 0, min, max), min);
    }

    #[test]
    fn suspicion_counts_each_accuser_once_and_excludes_the_first() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        let mut s = Suspicion::new("a".into(), 2, min, max, Millis(1000), 1);
        assert_eq!(s.deadline, Millis(25_000));
        assert!(!s.confirm(&"a".into()), "the original accuser is not a confirmation");
        assert!(s.confirm(&"b".into()));
        assert!(!s.confirm(&"b".into()), "one confirmation per peer");
        assert_eq!(s.deadline, Millis(1000 + 11_381));
        assert!(s.confirm(&"c".into()));
        assert_eq!(s.deadline, Millis(5000));
        assert!(!s.confirm(&"d".into()), "no more than k confirmations");
        assert_eq!(s.confirmations(), 2);
    }

    #[test]
    fn no_expected_confirmations_starts_at_min() {
        let s = Suspicion::new("a".into(), 0, 4 * SEC, 24 * SEC, Millis(0), 1);
        assert_eq!(s.deadline, Millis(4000));
    }

    #[test]
    fn awareness_is_clamped_and_scales() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        a.apply(3);
        assert_eq!(a.scale(SEC), 4 * SEC);
        a.apply(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(SEC), 8 * SEC);
    }
}
