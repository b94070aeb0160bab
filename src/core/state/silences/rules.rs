//! The rules of Alertmanager HEAD's silence store as small pure functions: state at a time
//! (§6.2), validation of local writes (§6.3), update-in-place vs replace (§6.4), and the
//! merge rule for gossip and snapshots (§6.7).

use super::matcher::{Pattern, check_regex};
use super::proto::{Matcher, MatcherType, Silence};
use crate::core::state::Timestamp;

/// A silence's state at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SilenceState {
    /// Ended (`now > ends_at`).
    Expired,
    /// Muting (`starts_at <= now <= ends_at`).
    Active,
    /// Not started (`now < starts_at`).
    Pending,
}

impl SilenceState {
    /// The `state` label value of `alertmanager_silences{state}` and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Active => "active",
            Self::Pending => "pending",
        }
    }
}

/// Which label names a local write may use (HEAD's `--enable-feature` switch; 0.25 always
/// used `Classic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameValidation {
    /// Any non-empty UTF-8 name (HEAD's default and `utf8-strict-mode`).
    #[default]
    Utf8,
    /// `[a-zA-Z_][a-zA-Z0-9_]*` (`classic-mode`, and Alertmanager 0.25).
    Classic,
}

/// State at `now`; both boundaries belong to `Active`.
pub(super) fn state_at(s: &Silence, now: Timestamp) -> SilenceState {
    if now < s.starts_at {
        SilenceState::Pending
    } else if now > s.ends_at {
        SilenceState::Expired
    } else {
        SilenceState::Active
    }
}

/// HEAD's `validateSilence` on a normalized silence (`matcher_sets` filled). The messages
/// follow Alertmanager's.
pub(super) fn validate(s: &Silence, names: NameValidation) -> Result<(), String> {
    if s.matcher_sets.is_empty() {
        return Err("at least one matcher set required".into());
    }
    for (i, set) in s.matcher_sets.iter().enumerate() {
        if set.matchers.is_empty() {
            return Err(format!("matcher set {i} is empty"));
        }
        let mut all_match_empty = true;
        for (j, m) in set.matchers.iter().enumerate() {
            all_match_empty &= validate_matcher(m, names)
                .map_err(|e| format!("invalid label matcher {j} in set {i}: {e}"))?;
        }
        if all_match_empty {
            return Err(format!(
                "matcher set {i}: at least one matcher must not match the empty string"
            ));
        }
    }
    if s.starts_at.is_zero() {
        return Err("invalid zero start timestamp".into());
    }
    if s.ends_at.is_zero() {
        return Err("invalid zero end timestamp".into());
    }
    if s.ends_at < s.starts_at {
        return Err("end time must not be before start time".into());
    }
    Ok(())
}

fn valid_name(name: &str, names: NameValidation) -> bool {
    match names {
        // A Rust string is always valid UTF-8.
        NameValidation::Utf8 => !name.is_empty(),
        NameValidation::Classic => {
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
    }
}

/// Check one matcher; `Ok` says whether it accepts an absent label (negative matchers never
/// count, as in Go). A regex is compiled here, with the bounds the index compiles it with, so
/// a pattern the index could not hold ([`super::matcher::MAX_PATTERN_BYTES`], [`super::matcher::MAX_COMPILED_BYTES`]) is
/// refused to the writer rather than stored as a silence that never matches.
fn validate_matcher(m: &Matcher, names: NameValidation) -> Result<bool, String> {
    if !valid_name(&m.name, names) {
        return Err(format!("invalid label name {:?}", m.name));
    }
    let kind = m.kind().ok_or_else(|| format!("unknown matcher type {}", m.r#type))?;
    let regex = match kind {
        // Values are `String`s, so always valid UTF-8.
        MatcherType::Equal => return Ok(m.pattern.is_empty()),
        MatcherType::NotEqual => return Ok(false),
        MatcherType::Regexp | MatcherType::NotRegexp => check_regex(&m.pattern)
            .and_then(|()| Pattern::compile(true, &m.pattern))
            .map_err(|e| format!("invalid regular expression {}: {e}", excerpt(&m.pattern)))?,
    };
    Ok(kind == MatcherType::Regexp && regex.matches(""))
}

/// A pattern as quoted in an error: whole when short, else its start, so a refused 1 MB regex
/// is not echoed back in full.
fn excerpt(pattern: &str) -> String {
    const SHOWN: usize = 64;
    match pattern.char_indices().nth(SHOWN) {
        None => format!("{pattern:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &pattern[..cut], pattern.len()),
    }
}

/// HEAD's `canUpdate(old, new, now)`: same matcher sets (order-sensitive), and by the old
/// silence's state — active: same start second and an end not in the past; pending: a start
/// not in the past; expired: never.
pub(super) fn can_update(old: &Silence, new: &Silence, now: Timestamp) -> bool {
    if old.matcher_sets != new.matcher_sets {
        return false;
    }
    match state_at(old, now) {
        SilenceState::Active => {
            old.starts_at.seconds == new.starts_at.seconds && new.ends_at >= now
        }
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// What the merge rule does with one incoming element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MergeDecision {
    /// `expires_at` is before now: dropped without looking further.
    ExpiredOnArrival,
    /// Ours is as new or newer (ties keep ours).
    KeepLocal,
    /// A silence we did not have.
    Insert,
    /// Strictly newer `updated_at` than ours.
    Replace,
}

/// The merge rule (§6.7): no validation, newest `updated_at` wins, ties keep the local copy.
pub(super) fn merge_decision(
    local_updated_at: Option<Timestamp>,
    incoming: &Silence,
    incoming_expires_at: Timestamp,
    now: Timestamp,
) -> MergeDecision {
    if incoming_expires_at < now {
        return MergeDecision::ExpiredOnArrival;
    }
    match local_updated_at {
        None => MergeDecision::Insert,
        Some(local) if local < incoming.updated_at => MergeDecision::Replace,
        Some(_) => MergeDecision::KeepLocal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::silences::proto::MatcherSet;

    fn ts(s: i64) -> Timestamp {
        Timestamp { seconds: s, nanos: 0 }
    }

    fn sil(sets: Vec<Vec<Matcher>>, start: i64, end: i64) -> Silence {
        Silence {
            matcher_sets: sets.into_iter().map(|matchers| MatcherSet { matchers }).collect(),
            starts_at: ts(start),
            ends_at: ts(end),
            ..Default::default()
        }
    }

    fn eq(n: &str, v: &str) -> Matcher {
        Matcher::new(MatcherType::Equal, n, v)
    }

    fn m(kind: MatcherType, n: &str, v: &str) -> Matcher {
        Matcher::new(kind, n, v)
    }

    #[test]
    fn state_boundaries_are_inclusive_for_active() {
        let s = sil(vec![vec![eq("a", "1")]], 100, 200);
        assert_eq!(
            state_at(&s, Timestamp { seconds: 99, nanos: 999_999_999 }),
            SilenceState::Pending
        );
        assert_eq!(state_at(&s, ts(100)), SilenceState::Active);
        assert_eq!(state_at(&s, ts(200)), SilenceState::Active);
        assert_eq!(state_at(&s, Timestamp { seconds: 200, nanos: 1 }), SilenceState::Expired);
    }

    #[test]
    fn validation_rules() {
        let ok = |s: &Silence| validate(s, NameValidation::Utf8);
        assert_eq!(ok(&sil(vec![vec![eq("a", "1")]], 1, 2)), Ok(()));
        assert_eq!(ok(&sil(vec![], 1, 2)).unwrap_err(), "at least one matcher set required");
        assert_eq!(ok(&sil(vec![vec![]], 1, 2)).unwrap_err(), "matcher set 0 is empty");
        assert!(
            ok(&sil(vec![vec![eq("", "1")]], 1, 2)).unwrap_err().contains("invalid label name")
        );
        assert!(ok(&sil(vec![vec![eq("é.x", "1")]], 1, 2)).is_ok());
        assert!(
            validate(&sil(vec![vec![eq("é.x", "1")]], 1, 2), NameValidation::Classic)
                .unwrap_err()
                .contains("invalid label name")
        );
        assert!(validate(&sil(vec![vec![eq("_a9", "1")]], 1, 2), NameValidation::Classic).is_ok());
        assert!(validate(&sil(vec![vec![eq("9a", "1")]], 1, 2), NameValidation::Classic).is_err());
        assert!(
            ok(&sil(vec![vec![m(MatcherType::Regexp, "a", "(")]], 1, 2))
                .unwrap_err()
                .contains("invalid regular expression")
        );
        assert!(ok(&sil(vec![vec![m(MatcherType::NotRegexp, "a", "a**")]], 1, 2)).is_err());
        let unknown = Matcher { r#type: 9, name: "a".into(), pattern: "b".into() };
        assert!(ok(&sil(vec![vec![unknown]], 1, 2)).unwrap_err().contains("unknown matcher type"));
        // Every matcher of a set matching the empty string.
        for only_empty in
            [eq("a", ""), m(MatcherType::Regexp, "a", ".*"), m(MatcherType::Regexp, "a", "x|")]
        {
            let e = ok(&sil(vec![vec![only_empty.clone()]], 1, 2)).unwrap_err();
            assert!(e.contains("must not match the empty string"), "{e}");
            assert!(ok(&sil(vec![vec![only_empty, eq("b", "1")]], 1, 2)).is_ok());
        }
        // Negative matchers do not count as matching empty (Go's rule).
        assert!(ok(&sil(vec![vec![m(MatcherType::NotEqual, "a", "x")]], 1, 2)).is_ok());
        // The second set is checked too.
        assert!(
            ok(&sil(vec![vec![eq("a", "1")], vec![eq("b", "")]], 1, 2))
                .unwrap_err()
                .starts_with("matcher set 1")
        );
        assert_eq!(
            ok(&sil(vec![vec![eq("a", "1")]], 0, 2)).unwrap_err(),
            "invalid zero start timestamp"
        );
        let mut go_zero = sil(vec![vec![eq("a", "1")]], 1, 2);
        go_zero.ends_at = Timestamp { seconds: crate::core::state::GO_ZERO_SECONDS, nanos: 0 };
        assert_eq!(ok(&go_zero).unwrap_err(), "invalid zero end timestamp");
        assert_eq!(
            ok(&sil(vec![vec![eq("a", "1")]], 3, 2)).unwrap_err(),
            "end time must not be before start time"
        );
        assert!(ok(&sil(vec![vec![eq("a", "1")]], 2, 2)).is_ok());
    }

    #[test]
    fn can_update_rules() {
        let a = vec![vec![eq("a", "1")]];
        let b = vec![vec![eq("b", "1")]];
        let now = ts(1000);
        // Active old silence (900..1100).
        let old = sil(a.clone(), 900, 1100);
        assert!(can_update(&old, &sil(a.clone(), 900, 2000), now), "extend");
        assert!(can_update(&old, &sil(a.clone(), 900, 1000), now), "shorten to now");
        let mut same_second = sil(a.clone(), 900, 2000);
        same_second.starts_at.nanos = 5;
        assert!(can_update(&old, &same_second, now), "start compared in whole seconds");
        assert!(!can_update(&old, &sil(a.clone(), 901, 2000), now), "start moved");
        assert!(!can_update(&old, &sil(a.clone(), 900, 999), now), "end in the past");
        assert!(!can_update(&old, &sil(b.clone(), 900, 2000), now), "other matchers");
        // Pending old silence (1100..1200).
        let old = sil(a.clone(), 1100, 1200);
        assert!(can_update(&old, &sil(a.clone(), 1000, 1300), now), "start at now");
        assert!(can_update(&old, &sil(a.clone(), 1500, 1600), now), "start later");
        assert!(!can_update(&old, &sil(a.clone(), 999, 1300), now), "start in the past");
        assert!(!can_update(&old, &sil(b, 1500, 1600), now), "other matchers");
        // Expired: never.
        assert!(!can_update(&sil(a.clone(), 100, 200), &sil(a.clone(), 100, 2000), now));
        // Order of matchers matters.
        let ab = vec![vec![eq("a", "1"), eq("b", "1")]];
        let ba = vec![vec![eq("b", "1"), eq("a", "1")]];
        assert!(!can_update(&sil(ab, 900, 1100), &sil(ba, 900, 1100), now));
    }

    #[test]
    fn merge_rule_cases() {
        let now = ts(1000);
        let mut s = sil(vec![], 0, 0);
        s.updated_at = ts(500);
        assert_eq!(merge_decision(None, &s, ts(999), now), MergeDecision::ExpiredOnArrival);
        assert_eq!(merge_decision(Some(ts(1)), &s, ts(999), now), MergeDecision::ExpiredOnArrival);
        assert_eq!(
            merge_decision(None, &s, ts(1000), now),
            MergeDecision::Insert,
            "expiring now is kept"
        );
        assert_eq!(merge_decision(Some(ts(499)), &s, ts(2000), now), MergeDecision::Replace);
        assert_eq!(
            merge_decision(Some(ts(500)), &s, ts(2000), now),
            MergeDecision::KeepLocal,
            "tie"
        );
        assert_eq!(merge_decision(Some(ts(501)), &s, ts(2000), now), MergeDecision::KeepLocal);
    }
}
