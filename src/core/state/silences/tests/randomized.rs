//! The mutes cache against recomputation from scratch over random operation sequences, and
//! property tests of the codec and the merge rule.

use std::time::Duration;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::*;

// ---------------------------------------------------------------------------------------
// Mutes cache.

#[test]
fn mutes_reports_pending_and_follows_time_without_invalidation() {
    let mut s = store();
    let id = s.set(silence(vec![eq("a", "1")], HOUR, 2 * HOUR), at(0)).expect("valid").id;
    let l = labels(&[("a", "1")]);
    let fp = fingerprint(&l);
    let r = s.mutes(fp, &l, at(0));
    assert!(!r.is_muted());
    assert_eq!(r.pending, std::slice::from_ref(&id));
    assert_eq!(s.mutes(fp, &l, at(HOUR)).active, std::slice::from_ref(&id));
    assert!(s.mutes(fp, &l, at(2 * HOUR + 1)) == MuteResult::default());
    let queries = s.metrics().queries_total;
    let mut out = MuteResult::default();
    assert!(!s.mutes_into(fp, &l, at(3 * HOUR), &mut out));
    assert_eq!(s.metrics().queries_total, queries, "served from the cache");
    assert!(s.forget(fp));
    assert!(!s.forget(fp));
}

#[test]
fn mutes_cache_is_bounded() {
    let config = SilencesConfig { mutes_cache_capacity: 4, ..Default::default() };
    let mut s = Silences::new(config, 3);
    s.set(silence(vec![re("n", "[0-4]")], 0, HOUR), at(0)).expect("valid");
    for round in 0..3 {
        for n in 0..10 {
            let l = labels(&[("n", &n.to_string())]);
            assert_eq!(s.mutes(fingerprint(&l), &l, at(1)).is_muted(), n < 5, "round {round}");
        }
    }
    let m = s.metrics();
    assert_eq!(m.mutes_cache_size, 4);
    assert!(m.mutes_cache_evictions_total >= 6);
}

/// Label name, compiled positive form, negated.
type NaiveMatcher<'a> = (&'a str, Pattern, bool);

/// Every matcher of a set compiled on its own, no index, no cache.
fn naive_mutes(s: &Silences, l: &LabelSet, now: UnixMillis) -> (Vec<String>, Vec<String>) {
    let mut active = vec![];
    let mut pending = vec![];
    for sil in s.query(&Query::default(), now) {
        let compiled: Option<Vec<Vec<NaiveMatcher<'_>>>> = sil
            .matcher_sets
            .iter()
            .map(|set| {
                set.matchers
                    .iter()
                    .map(|m| {
                        let (regex, negate) = match m.kind()? {
                            MatcherType::Equal => (false, false),
                            MatcherType::NotEqual => (false, true),
                            MatcherType::Regexp => (true, false),
                            MatcherType::NotRegexp => (true, true),
                        };
                        Some((m.name.as_str(), Pattern::compile(regex, &m.pattern).ok()?, negate))
                    })
                    .collect()
            })
            .collect();
        let Some(sets) = compiled else { continue };
        let hit = sets.iter().any(|set| {
            set.iter()
                .all(|(name, p, neg)| p.matches(l.get(*name).map_or("", String::as_str)) != *neg)
        });
        if hit {
            match state_of(sil, now) {
                SilenceState::Active => active.push(sil.id.clone()),
                SilenceState::Pending => pending.push(sil.id.clone()),
                SilenceState::Expired => {}
            }
        }
    }
    (active, pending)
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const VALUES: [&str; 4] = ["1", "2", "x", ""];
const PATTERNS: [&str; 6] = ["1|2", ".*", "x+", "[12]", "(bad", "2?"];

fn random_matcher(rng: &mut SmallRng) -> Matcher {
    let name = NAMES[rng.random_range(0..NAMES.len())];
    match rng.random_range(0..4) {
        0 => eq(name, VALUES[rng.random_range(0..3)]),
        1 => ne(name, VALUES[rng.random_range(0..4)]),
        2 => re(name, PATTERNS[rng.random_range(0..PATTERNS.len())]),
        _ => nre(name, PATTERNS[rng.random_range(0..PATTERNS.len())]),
    }
}

fn random_labels(rng: &mut SmallRng) -> LabelSet {
    let mut l = LabelSet::new();
    for name in NAMES {
        let v = VALUES[rng.random_range(0..VALUES.len())];
        if !v.is_empty() {
            l.insert(name.to_owned(), v.to_owned());
        }
    }
    l
}

#[test]
fn mutes_cache_agrees_with_recomputation() {
    for seed in 0..40 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let config = SilencesConfig {
            mutes_cache_capacity: 8,
            retention: Duration::from_millis(20 * MIN as u64),
            ..Default::default()
        };
        let mut s = Silences::new(config, seed);
        let alerts: Vec<LabelSet> = (0..12).map(|_| random_labels(&mut rng)).collect();
        let mut now = 0;
        let mut peer_n = 0;
        for step in 0..250 {
            now += rng.random_range(0..3 * MIN);
            match rng.random_range(0..10) {
                0 | 1 => {
                    let n = rng.random_range(1..3);
                    let ms = (0..n).map(|_| random_matcher(&mut rng)).collect();
                    let start = now + rng.random_range(-MIN..10 * MIN);
                    let _ =
                        s.set(silence(ms, start, start + rng.random_range(0..20 * MIN)), at(now));
                }
                2 => {
                    let all = s.query(&Query::default(), at(now));
                    if !all.is_empty() {
                        let id = all[rng.random_range(0..all.len())].id.clone();
                        s.expire(&id, at(now)).expect("known");
                    }
                }
                3 => {
                    // A peer's silence, with no validation (possibly a bad regex), new or
                    // updated with other matchers.
                    peer_n += usize::from(rng.random_bool(0.6));
                    let ms = vec![random_matcher(&mut rng), random_matcher(&mut rng)];
                    let p = peer_silence(
                        &format!("peer-{peer_n}"),
                        ms,
                        now - MIN,
                        now + 10 * MIN,
                        now + step,
                    );
                    s.merge(&peer(&p, ts(now + 30 * MIN)), at(now)).expect("valid bytes");
                }
                4 => {
                    let _ = s.gc(at(now));
                }
                5 => {
                    s.forget(fingerprint(&alerts[rng.random_range(0..alerts.len())]));
                }
                _ => {
                    for l in &alerts {
                        let got = s.mutes(fingerprint(l), l, at(now));
                        let ids =
                            |v: &[SilenceId]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
                        let want = naive_mutes(&s, l, at(now));
                        assert_eq!(
                            (ids(&got.active), ids(&got.pending)),
                            want,
                            "seed {seed} step {step} {l:?}"
                        );
                        // The uncached query path agrees too.
                        let q = Query {
                            matches: Some(l),
                            states: vec![SilenceState::Active],
                            ..Default::default()
                        };
                        let via_query: Vec<String> =
                            s.query(&q, at(now)).iter().map(|x| x.id.clone()).collect();
                        assert_eq!(via_query, want.0, "seed {seed} step {step}");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property tests.

fn arb_matcher() -> impl Strategy<Value = Matcher> {
    (0..4i32, prop::sample::select(&NAMES[..]), prop::sample::select(&PATTERNS[..]))
        .prop_map(|(t, n, p)| Matcher { r#type: t, name: n.to_owned(), pattern: p.to_owned() })
}

prop_compose! {
    fn arb_silence()(
        id in 0..6u8,
        sets in prop::collection::vec(prop::collection::vec(arb_matcher(), 1..3), 1..3),
        start in 0..100i64,
        len in 0..100i64,
        updated in 0..20i64,
        comment in "[a-z]{0,4}",
        expires in 0..300i64,
        annotations in prop::collection::btree_map("[a-z]{1,3}", "[a-z]{0,3}", 0..2),
    ) -> (Silence, Timestamp) {
        let mut s = peer_silence(&format!("id-{id}"), vec![], start * MIN, (start + len) * MIN, updated);
        s.matcher_sets = sets.into_iter().map(|matchers| MatcherSet { matchers }).collect();
        s.comment = comment;
        s.annotations = annotations;
        (s, ts(expires * MIN))
    }
}

/// State content, independent of slot order.
fn content(s: &Silences) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> =
        decode(&s.marshal()).expect("own").iter().map(|d| d.raw.to_vec()).collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn marshal_load_round_trip(items in prop::collection::vec(arb_silence(), 0..12)) {
        let mut s = store();
        for (sil, exp) in &items {
            s.merge(&peer(sil, *exp), at(0)).expect("valid");
        }
        let bytes = s.marshal();
        let back = Silences::load(&bytes, SilencesConfig::default(), 0).expect("own bytes");
        prop_assert_eq!(back.marshal(), bytes);
        prop_assert_eq!(back.len(), s.len());
        for sil in s.query(&Query::default(), at(0)) {
            prop_assert_eq!(back.get(&sil.id), Some(sil));
        }
    }

    #[test]
    fn merge_is_commutative_and_idempotent(
        a in prop::collection::vec(arb_silence(), 0..8),
        b in prop::collection::vec(arb_silence(), 0..8),
    ) {
        let blob = |items: &[(Silence, Timestamp)]| {
            let mut out = Vec::new();
            for (s, e) in items {
                out.extend(peer(s, *e));
            }
            out
        };
        // Equal updated_at with different content is a conflict the rule resolves by arrival
        // order (as in Alertmanager); keep one copy per (id, updated_at).
        let mut seen = std::collections::BTreeSet::new();
        let mut keep = |items: Vec<(Silence, Timestamp)>| -> Vec<(Silence, Timestamp)> {
            items.into_iter().filter(|(s, _)| seen.insert((s.id.clone(), s.updated_at))).collect()
        };
        let (a, b) = (keep(a), keep(b));
        let (ba, bb) = (blob(&a), blob(&b));
        let mut x = store();
        let mut y = store();
        x.merge(&ba, at(0)).expect("ok");
        x.merge(&bb, at(0)).expect("ok");
        y.merge(&bb, at(0)).expect("ok");
        y.merge(&ba, at(0)).expect("ok");
        prop_assert_eq!(content(&x), content(&y));
        let before = content(&x);
        prop_assert_eq!(x.merge(&ba, at(0)), Ok(0));
        prop_assert_eq!(x.merge(&x.marshal(), at(0)), Ok(0));
        prop_assert_eq!(content(&x), before);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut s = store();
        let _ = s.merge(&data, at(0));
        let _ = Silences::load(&data, SilencesConfig::default(), 0);
        let l = labels(&[("a", "1")]);
        let _ = s.mutes(1, &l, at(0));
        let _ = s.gc(at(0));
    }

    #[test]
    fn mutated_golden_bytes_never_panic(flips in prop::collection::vec((0..GOLDEN.len(), any::<u8>()), 1..6)) {
        let mut data = GOLDEN.to_vec();
        for (i, b) in flips {
            data[i] = b;
        }
        if let Ok(mut s) = Silences::load(&data, SilencesConfig::default(), 0) {
            let l = labels(&[("alertname", "DiskFull")]);
            let _ = s.mutes(1, &l, GOLDEN_NOW);
            let _ = s.marshal();
        }
        let mut s = store();
        let _ = s.merge(&data, GOLDEN_NOW);
    }
}
