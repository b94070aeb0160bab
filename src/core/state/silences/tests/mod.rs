//! Tests of the silence store: the Alertmanager 0.25 golden file and each rule of §6 here;
//! the mutes cache against recomputation and the property tests in [`randomized`];
//! release-build measurements in [`measure`].

mod randomized;

use std::time::Duration;

use prost::Message;

use super::matcher::Pattern;
use super::*;
use crate::core::state::labels::fingerprint;

const GOLDEN: &[u8] = include_bytes!("../../../../../tests/golden/alertmanager-0.25/silences");
const ALICE: &str = "791ba474-66cc-4316-b911-c4c1e65b18e6";
const BOB: &str = "9918e6bf-3230-4c3d-8004-7c29939e1078";
const CAROL: &str = "bddaca05-15f5-44a3-8c93-0d6e9a2e4038";
const DAVE: &str = "4477e916-cbda-493a-9070-d1731749e03f";
/// 2026-11-23T19:10:30Z, twelve seconds after the golden silences were created.
const GOLDEN_NOW: UnixMillis = UnixMillis(1_795_461_030_000);

/// A round base time for the other tests.
const T0: i64 = 1_800_000_000_000;

fn at(offset_ms: i64) -> UnixMillis {
    UnixMillis(T0 + offset_ms)
}

fn ts(offset_ms: i64) -> Timestamp {
    Timestamp::from(at(offset_ms))
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn eq(n: &str, v: &str) -> Matcher {
    Matcher::new(MatcherType::Equal, n, v)
}
fn ne(n: &str, v: &str) -> Matcher {
    Matcher::new(MatcherType::NotEqual, n, v)
}
fn re(n: &str, v: &str) -> Matcher {
    Matcher::new(MatcherType::Regexp, n, v)
}
fn nre(n: &str, v: &str) -> Matcher {
    Matcher::new(MatcherType::NotRegexp, n, v)
}

fn silence(matchers: Vec<Matcher>, start: i64, end: i64) -> Silence {
    Silence {
        matcher_sets: vec![MatcherSet { matchers }],
        starts_at: ts(start),
        ends_at: ts(end),
        created_by: "test".into(),
        comment: "c".into(),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn store() -> Silences {
    Silences::new(SilencesConfig::default(), 7)
}

/// Part data for a peer's silence, as a HEAD peer would encode it.
fn peer(s: &Silence, expires_at: Timestamp) -> Vec<u8> {
    delimit(&proto::encode_mesh(s, expires_at))
}

/// A peer silence with an explicit id and update time.
fn peer_silence(id: &str, matchers: Vec<Matcher>, start: i64, end: i64, updated: i64) -> Silence {
    let mut s = silence(matchers, start, end);
    s.id = id.into();
    s.updated_at = ts(updated);
    s
}

fn ids(v: &[&Silence]) -> Vec<String> {
    v.iter().map(|s| s.id.clone()).collect()
}

fn active_ids(r: &MuteResult) -> Vec<&str> {
    r.active.iter().map(SilenceId::as_str).collect()
}

#[test]
fn the_store_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Silences>();
    send_sync::<MuteResult>();
}

// ---------------------------------------------------------------------------------------
// Golden file written by Alertmanager 0.25.

#[test]
fn golden_file_loads_with_every_field() {
    let s = Silences::load(GOLDEN, SilencesConfig::default(), 1).expect("golden decodes");
    assert_eq!(s.len(), 4);
    assert_eq!(s.version(), 1);
    let all = s.query(&Query::default(), GOLDEN_NOW);
    assert_eq!(ids(&all), [ALICE, BOB, CAROL, DAVE], "file order is kept");
    let who: Vec<(&str, &str)> =
        all.iter().map(|s| (s.created_by.as_str(), s.comment.as_str())).collect();
    assert_eq!(
        who,
        [
            ("alice", "disk maintenance"),
            ("bob", "regex and not-equal"),
            ("carol", "not-regex"),
            ("dave", "expired soon")
        ]
    );
    let alice = s.get(ALICE).expect("present");
    assert!(alice.matchers.is_empty(), "0.25 matchers moved into set 0");
    assert_eq!(
        alice.matcher_sets,
        [MatcherSet { matchers: vec![eq("alertname", "DiskFull"), eq("instance", "db1:9100")] }]
    );
    assert_eq!(alice.starts_at, Timestamp { seconds: 1_795_461_018, nanos: 145_564_511 });
    assert_eq!(alice.ends_at, Timestamp { seconds: 1_795_468_218, nanos: 143_000_000 });
    assert_eq!(alice.updated_at, alice.starts_at);
    assert_eq!(
        s.get(BOB).expect("present").matcher_sets[0].matchers,
        [re("alertname", "High.*|Low.*"), ne("team", "db")]
    );
    assert_eq!(
        s.get(CAROL).expect("present").matcher_sets[0].matchers,
        [nre("job", "node|blackbox"), eq("severity", "page")]
    );
    let dave = s.get(DAVE).expect("present");
    assert_eq!(dave.ends_at, Timestamp { seconds: 1_795_461_018, nanos: 229_039_355 });
    assert_eq!(dave.updated_at, dave.ends_at);
    // expires_at = ends_at + 120 h, as 0.25 wrote it.
    let expires: Vec<Timestamp> =
        decode(GOLDEN).expect("ok").iter().map(|d| d.expires_at).collect();
    for (sil, exp) in all.iter().zip(expires) {
        assert_eq!(exp, sil.ends_at + Duration::from_secs(120 * 3600));
    }
    assert_eq!(s.metrics().matcher_compile_errors_load_snapshot_total, 0);
}

#[test]
fn golden_file_marshals_byte_for_byte() {
    let s = Silences::load(GOLDEN, SilencesConfig::default(), 1).expect("golden decodes");
    assert_eq!(s.marshal(), GOLDEN);
    // Our encoder itself is byte-compatible with 0.25's gogoproto for the 0.25 shape
    // (matchers in field 2, no field 11): every timestamp present, fields in order.
    for d in decode(GOLDEN).expect("ok") {
        let mut wire = d.silence.clone();
        wire.matchers = wire.matcher_sets[0].matchers.clone();
        wire.matcher_sets.clear();
        let fresh = MeshSilence { silence: Some(wire), expires_at: d.expires_at }.encode_to_vec();
        assert_eq!(fresh, d.raw);
    }
}

#[test]
fn golden_states_at_a_chosen_time() {
    let s = Silences::load(GOLDEN, SilencesConfig::default(), 1).expect("golden decodes");
    let state = |id: &str, now| state_of(s.get(id).expect("present"), now);
    for id in [ALICE, BOB, CAROL] {
        assert_eq!(state(id, GOLDEN_NOW), SilenceState::Active, "{id}");
    }
    assert_eq!(state(DAVE, GOLDEN_NOW), SilenceState::Expired);
    assert_eq!(state(ALICE, UnixMillis(1_795_461_018_000)), SilenceState::Pending);
    // bob ended at 19:40:18.164; carol and alice still run.
    let later = UnixMillis(1_795_462_818_165);
    assert_eq!(state(BOB, later), SilenceState::Expired);
    assert_eq!(state(CAROL, later), SilenceState::Active);
    assert_eq!(s.count_state(&[SilenceState::Active], GOLDEN_NOW), 3);
    assert_eq!(s.count_state(&[SilenceState::Expired], GOLDEN_NOW), 1);
    assert_eq!(s.count_state(&[SilenceState::Active, SilenceState::Expired], later), 4);
}

#[test]
fn golden_matchers_mute_the_readme_alerts() {
    let mut s = Silences::load(GOLDEN, SilencesConfig::default(), 1).expect("golden decodes");
    let page = labels(&[("alertname", "DiskFull"), ("instance", "db1:9100"), ("severity", "page")]);
    let ticket = labels(&[
        ("alertname", "DiskFull"),
        ("instance", "db1:9100"),
        ("severity", "ticket"),
        ("mount", "/var"),
    ]);
    let latency =
        labels(&[("alertname", "HighLatency"), ("instance", "api:8080"), ("team", "web")]);
    let watchdog = labels(&[("alertname", "Watchdog")]);
    // Fingerprints as Alertmanager's API reported them (alerts-api.json).
    assert_eq!(format!("{:016x}", fingerprint(&page)), "b4d6630a68cc0c1c");
    assert_eq!(format!("{:016x}", fingerprint(&ticket)), "3dfabfbeafb71918");
    for _ in 0..2 {
        // Second round is served from the cache.
        let r = s.mutes(fingerprint(&page), &page, GOLDEN_NOW);
        assert_eq!(active_ids(&r), [ALICE, CAROL], "silencedBy in alerts-api.json");
        let r = s.mutes(fingerprint(&ticket), &ticket, GOLDEN_NOW);
        assert_eq!(active_ids(&r), [ALICE]);
        let r = s.mutes(fingerprint(&latency), &latency, GOLDEN_NOW);
        assert_eq!(active_ids(&r), [BOB]);
        let r = s.mutes(fingerprint(&watchdog), &watchdog, GOLDEN_NOW);
        assert!(!r.is_muted() && r.pending.is_empty(), "dave is expired");
    }
    let matching = s.query(&Query { matches: Some(&watchdog), ..Default::default() }, GOLDEN_NOW);
    assert_eq!(ids(&matching), [DAVE]);
}

// ---------------------------------------------------------------------------------------
// Set: creation, validation, update or replace.

#[test]
fn set_creates_a_silence_with_a_fresh_v4_id() {
    let mut s = store();
    let out = s.set(silence(vec![eq("a", "1")], -MIN, HOUR), at(0)).expect("valid");
    let id = out.id.as_str();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "version 4");
    assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "RFC 4122 variant");
    let stored = s.get(id).expect("stored");
    assert_eq!(stored.starts_at, ts(0), "start clamped up to now");
    assert_eq!(stored.updated_at, ts(0));
    assert_eq!(s.version(), 1);
    // The broadcast is one delimited MeshSilence in HEAD's wire shape.
    let bytes = out.broadcast.expect("changed");
    let d = decode(&bytes).expect("own encoding");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].expires_at, ts(HOUR) + Duration::from_secs(120 * 3600));
    let wire = MeshSilence::decode(d[0].raw).expect("ok").silence.expect("present");
    assert_eq!(wire.matchers, [eq("a", "1")], "field 2 carries set 0 for 0.25 peers");
    assert_eq!(wire.matcher_sets.len(), 1);
    assert_eq!(s.marshal(), bytes);
    // Same seed, same IDs.
    let mut twin = store();
    let again = twin.set(silence(vec![eq("a", "1")], -MIN, HOUR), at(0)).expect("valid");
    assert_eq!(again.id, out.id);
    // A start in the future is kept; an unset start becomes now.
    let out = s.set(silence(vec![eq("a", "2")], HOUR, 2 * HOUR), at(0)).expect("valid");
    assert_eq!(s.get(out.id.as_str()).expect("stored").starts_at, ts(HOUR));
    let mut unset = silence(vec![eq("a", "3")], 0, HOUR);
    unset.starts_at = Timestamp::default();
    let out = s.set(unset, at(5)).expect("valid");
    assert_eq!(s.get(out.id.as_str()).expect("stored").starts_at, ts(5));
}

#[test]
fn set_accepts_the_025_matchers_field() {
    let mut s = store();
    let mut old_style = silence(vec![], 0, HOUR);
    old_style.matcher_sets.clear();
    old_style.matchers = vec![eq("a", "1")];
    let out = s.set(old_style, at(0)).expect("valid");
    let stored = s.get(out.id.as_str()).expect("stored");
    assert!(stored.matchers.is_empty());
    assert_eq!(stored.matcher_sets[0].matchers, [eq("a", "1")]);
}

#[test]
fn invalid_or_unknown_writes_change_nothing() {
    let mut s = store();
    let good = s.set(silence(vec![eq("a", "1")], 0, HOUR), at(0)).expect("valid");
    let before = s.marshal();
    let e = s.set(silence(vec![re("a", "(")], 0, HOUR), at(1)).unwrap_err();
    assert!(
        matches!(e, SilenceError::Invalid { ref reason } if reason.contains("invalid regular expression")),
        "{e}"
    );
    let e = s.set(silence(vec![eq("a", "")], 0, HOUR), at(1)).unwrap_err();
    assert!(matches!(e, SilenceError::Invalid { .. }));
    // HEAD validates before anything else: an invalid replacement does not expire the
    // original (0.25 expired it first).
    let mut bad_replacement = silence(vec![eq("b", "")], 0, HOUR);
    bad_replacement.id = good.id.to_string();
    assert!(matches!(s.set(bad_replacement, at(1)), Err(SilenceError::Invalid { .. })));
    let mut unknown = silence(vec![eq("a", "1")], 0, HOUR);
    unknown.id = "nope".into();
    assert_eq!(s.set(unknown, at(1)), Err(SilenceError::NotFound));
    assert_eq!(s.expire("nope", at(1)), Err(SilenceError::NotFound));
    assert_eq!(s.marshal(), before);
    assert_eq!(s.version(), 1);
}

/// Create a silence at `at(0)` and return the store and its id.
fn with_one(matchers: Vec<Matcher>, start: i64, end: i64) -> (Silences, String) {
    let mut s = store();
    let id = s.set(silence(matchers, start, end), at(0)).expect("valid").id.to_string();
    (s, id)
}

fn update(id: &str, matchers: Vec<Matcher>, start: i64, end: i64) -> Silence {
    let mut u = silence(matchers, start, end);
    u.id = id.into();
    u
}

#[test]
fn active_silence_updates_in_place_when_history_is_kept() {
    let (mut s, id) = with_one(vec![eq("a", "1")], 0, HOUR);
    let mut u = update(&id, vec![eq("a", "1")], 0, 2 * HOUR);
    u.comment = "longer".into();
    let out = s.set(u, at(MIN)).expect("valid");
    assert_eq!(out.id.as_str(), id, "same id");
    assert!(out.broadcast.is_some() && out.expired_previous.is_none());
    let got = s.get(&id).expect("present");
    assert_eq!(
        (got.ends_at, got.updated_at, got.comment.as_str()),
        (ts(2 * HOUR), ts(MIN), "longer")
    );
    assert_eq!(s.len(), 1);
    assert_eq!(s.version(), 1, "an update adds nothing");
    // Ending it now is also an update in place.
    let out = s.set(update(&id, vec![eq("a", "1")], 0, MIN + 1), at(MIN + 1)).expect("valid");
    assert_eq!(out.id.as_str(), id);
}

#[test]
fn active_silence_is_replaced_when_history_would_change() {
    for (why, matchers, start, end) in [
        ("other matchers", vec![eq("a", "2")], 0, HOUR),
        ("moved start", vec![eq("a", "1")], 5_000, HOUR),
    ] {
        let (mut s, id) = with_one(vec![eq("a", "1")], 0, HOUR);
        let out = s.set(update(&id, matchers, start, end), at(MIN)).expect(why);
        assert_ne!(out.id.as_str(), id, "{why}: new id");
        assert!(out.expired_previous.is_some(), "{why}: old one expired");
        assert_eq!(s.get(&id).expect("kept").ends_at, ts(MIN), "{why}");
        assert_eq!(state_of(s.get(&id).expect("kept"), at(MIN + 1)), SilenceState::Expired);
        let new = s.get(out.id.as_str()).expect("created");
        assert_eq!(new.starts_at, ts(MIN), "{why}: start clamped to now");
        assert_eq!(s.len(), 2);
        assert_eq!(s.version(), 2);
    }
    // An end in the past is not an update; validated against the given start it is fine, so
    // it becomes a new silence whose start is then clamped past its end (HEAD's behaviour).
    let (mut s, id) = with_one(vec![eq("a", "1")], 0, HOUR);
    let out = s.set(update(&id, vec![eq("a", "1")], 0, MIN - 1), at(MIN)).expect("valid");
    assert_ne!(out.id.as_str(), id);
}

#[test]
fn pending_silence_updates_or_is_replaced_by_start_time() {
    let (mut s, id) = with_one(vec![eq("a", "1")], HOUR, 2 * HOUR);
    let out = s.set(update(&id, vec![eq("a", "1")], 3 * HOUR, 4 * HOUR), at(MIN)).expect("valid");
    assert_eq!(out.id.as_str(), id, "start moved later: in place");
    let out = s.set(update(&id, vec![eq("a", "1")], MIN, 4 * HOUR), at(MIN)).expect("valid");
    assert_eq!(out.id.as_str(), id, "start at now: in place");
    let (mut s, id) = with_one(vec![eq("a", "1")], HOUR, 2 * HOUR);
    let out = s.set(update(&id, vec![eq("a", "1")], 0, 4 * HOUR), at(MIN)).expect("valid");
    assert_ne!(out.id.as_str(), id, "start in the past: replaced");
    let old = s.get(&id).expect("kept");
    assert_eq!((old.starts_at, old.ends_at), (ts(MIN), ts(MIN)), "pending expiry");
    let (mut s, id) = with_one(vec![eq("a", "1")], HOUR, 2 * HOUR);
    let out = s.set(update(&id, vec![eq("b", "1")], 3 * HOUR, 4 * HOUR), at(MIN)).expect("valid");
    assert_ne!(out.id.as_str(), id, "other matchers: replaced");
    assert!(out.expired_previous.is_some());
}

#[test]
fn expired_silence_is_always_replaced_and_not_expired_again() {
    let (mut s, id) = with_one(vec![eq("a", "1")], 0, HOUR);
    let before = s.get(&id).expect("present").clone();
    let out = s.set(update(&id, vec![eq("a", "1")], 0, 3 * HOUR), at(2 * HOUR)).expect("valid");
    assert_ne!(out.id.as_str(), id);
    assert!(out.expired_previous.is_none());
    assert_eq!(s.get(&id), Some(&before), "untouched");
}

#[test]
fn writes_in_the_same_millisecond_are_not_lost() {
    let (mut s, id) = with_one(vec![eq("a", "1")], 0, HOUR);
    let out = s.set(update(&id, vec![eq("a", "1")], 0, 2 * HOUR), at(0)).expect("valid");
    assert!(out.broadcast.is_some());
    assert_eq!(s.get(&id).expect("present").ends_at, ts(2 * HOUR));
    assert!(s.expire(&id, at(0)).expect("known").is_some());
    let got = s.get(&id).expect("present");
    assert_eq!(got.ends_at, ts(0));
    assert!(got.updated_at > ts(0));
}

#[test]
fn expire_in_each_state() {
    // Active: ends now.
    let (mut s, id) = with_one(vec![eq("a", "1")], 0, HOUR);
    let b = s.expire(&id, at(MIN)).expect("known").expect("changed");
    let got = s.get(&id).expect("kept until GC");
    assert_eq!((got.starts_at, got.ends_at, got.updated_at), (ts(0), ts(MIN), ts(MIN)));
    assert_eq!(state_of(got, at(MIN + 1)), SilenceState::Expired);
    assert_eq!(decode(&b).expect("ok")[0].expires_at, ts(MIN) + Duration::from_secs(120 * 3600));
    // Expired: no-op.
    let before = s.marshal();
    assert_eq!(s.expire(&id, at(2 * MIN)), Ok(None));
    assert_eq!(s.marshal(), before);
    // Pending: starts and ends now.
    let (mut s, id) = with_one(vec![eq("a", "1")], HOUR, 2 * HOUR);
    assert!(s.expire(&id, at(MIN)).expect("known").is_some());
    let got = s.get(&id).expect("kept");
    assert_eq!((got.starts_at, got.ends_at), (ts(MIN), ts(MIN)));
    assert_eq!(s.version(), 1, "expiry adds nothing");
}

#[test]
fn limits_apply_to_local_writes_only() {
    let config = SilencesConfig { max_silences: 2, ..Default::default() };
    let mut s = Silences::new(config, 1);
    let first = s.set(silence(vec![eq("a", "1")], 0, MIN), at(0)).expect("room");
    s.set(silence(vec![eq("a", "2")], 0, HOUR), at(0)).expect("room");
    // Expired silences count.
    assert_eq!(
        s.set(silence(vec![eq("a", "3")], 0, HOUR), at(2 * MIN)),
        Err(SilenceError::TooMany { count: 2, limit: 2 })
    );
    // Updates in place are fine at the limit; replacements are not.
    let mut u = update(first.id.as_str(), vec![eq("a", "1")], 0, HOUR);
    assert!(s.set(u.clone(), at(30_000)).is_ok());
    u.matcher_sets[0].matchers = vec![eq("a", "9")];
    assert!(matches!(s.set(u, at(30_001)), Err(SilenceError::TooMany { .. })));
    // Gossip is not limited.
    let p = peer_silence("peer-1", vec![eq("p", "1")], 0, HOUR, 0);
    assert_eq!(s.merge(&peer(&p, ts(HOUR)), at(0)), Ok(1));
    assert_eq!(s.len(), 3);

    let config = SilencesConfig { max_silence_size_bytes: 200, ..Default::default() };
    let mut s = Silences::new(config, 1);
    let mut big = silence(vec![eq("a", "1")], 0, HOUR);
    big.comment = "x".repeat(300);
    let e = s.set(big.clone(), at(0)).unwrap_err();
    assert!(matches!(e, SilenceError::TooLarge { limit: 200, size } if size > 300));
    let small = s.set(silence(vec![eq("a", "1")], 0, HOUR), at(0)).expect("fits");
    big.id = small.id.to_string();
    assert!(matches!(s.set(big.clone(), at(1)), Err(SilenceError::TooLarge { .. })), "update too");
    big.id = "peer-big".into();
    big.updated_at = ts(0);
    assert_eq!(s.merge(&peer(&big, ts(HOUR)), at(0)), Ok(1), "gossip is not limited");
}

#[test]
fn a_silence_over_the_message_limit_is_refused_without_a_size_limit() {
    let mut s = Silences::new(SilencesConfig::default(), 1);
    let mut big = silence(vec![eq("a", "1")], 0, HOUR);
    big.comment = "x".repeat(delimited::MAX_MESSAGE_LEN);
    let e = s.set(big.clone(), at(0)).unwrap_err();
    assert!(
        matches!(e, SilenceError::ExceedsMessageLimit { size, limit: delimited::MAX_MESSAGE_LEN }
            if size > delimited::MAX_MESSAGE_LEN),
        "{e:?}"
    );
    assert_eq!(s.len(), 0, "nothing stored");
    big.comment = "x".repeat(delimited::MAX_MESSAGE_LEN - 1024);
    assert!(s.set(big, at(0)).is_ok(), "just under the limit fits");
}

// ---------------------------------------------------------------------------------------
// Merge.

#[test]
fn merge_rules() {
    let mut s = store();
    let v1 = peer_silence("x", vec![eq("a", "1")], 0, HOUR, 10);
    assert_eq!(s.merge(&peer(&v1, ts(HOUR)), at(0)), Ok(1), "unknown id: inserted");
    assert_eq!(s.version(), 1);
    assert_eq!(s.merge(&peer(&v1, ts(HOUR)), at(0)), Ok(0), "same update time: kept ours");
    let mut older = v1.clone();
    older.updated_at = ts(5);
    older.comment = "older".into();
    assert_eq!(s.merge(&peer(&older, ts(HOUR)), at(0)), Ok(0), "older: ignored");
    let mut tie = v1.clone();
    tie.comment = "tie".into();
    assert_eq!(s.merge(&peer(&tie, ts(HOUR)), at(0)), Ok(0), "tie keeps local");
    assert_eq!(s.get("x").expect("present").comment, "c");
    let mut newer = v1.clone();
    newer.updated_at = ts(11);
    newer.ends_at = ts(2 * HOUR);
    assert_eq!(s.merge(&peer(&newer, ts(2 * HOUR)), at(0)), Ok(1), "newer wins");
    assert_eq!(s.get("x").expect("present").ends_at, ts(2 * HOUR));
    assert_eq!(s.version(), 1, "a replacement is not an addition");
    let gone = peer_silence("y", vec![eq("a", "1")], -3 * HOUR, -2 * HOUR, 0);
    assert_eq!(s.merge(&peer(&gone, ts(-1)), at(0)), Ok(0), "expired on arrival");
    assert_eq!(s.merge(&peer(&gone, ts(0)), at(0)), Ok(1), "expiring exactly now is kept");
    // No validation on merge.
    let invalid = peer_silence("z", vec![eq("a", "")], 5, 1, 0);
    assert_eq!(s.merge(&peer(&invalid, ts(HOUR)), at(0)), Ok(1));
    assert_eq!(s.metrics().gossip_messages_propagated_total, 4);
}

#[test]
fn merge_migrates_legacy_comments() {
    let mut s = store();
    let mut legacy = peer_silence("old", vec![eq("a", "1")], 0, HOUR, 1);
    legacy.created_by.clear();
    legacy.comment.clear();
    legacy.comments = vec![
        Comment { author: "ann".into(), comment: "why".into(), timestamp: ts(0) },
        Comment { author: "bob".into(), comment: "later".into(), timestamp: ts(1) },
    ];
    assert_eq!(s.merge(&peer(&legacy, ts(HOUR)), at(0)), Ok(1));
    let got = s.get("old").expect("present");
    assert_eq!((got.created_by.as_str(), got.comment.as_str()), ("ann", "why"));
    assert!(got.comments.is_empty());
    // Stored (and re-gossiped) in migrated form.
    let back = Silences::load(&s.marshal(), SilencesConfig::default(), 0).expect("ok");
    let snapshot = s.marshal();
    let raw = decode(&snapshot).expect("ok");
    assert!(MeshSilence::decode(raw[0].raw).expect("ok").silence.expect("set").comments.is_empty());
    assert_eq!(back.get("old"), Some(got));
}

#[test]
fn merge_is_all_or_nothing() {
    let mut s = store();
    let a = peer_silence("a", vec![eq("a", "1")], 0, HOUR, 0);
    let mut data = peer(&a, ts(HOUR));
    let good_len = data.len();
    data.extend_from_slice(&[10, 1, 2]);
    assert_eq!(s.merge(&data, at(0)), Err(DecodeError::Truncated { offset: good_len }));
    assert!(s.is_empty());
    // A MeshSilence without its silence.
    let mut data = peer(&a, ts(HOUR));
    delimited::push(
        &mut data,
        &MeshSilence { silence: None, expires_at: ts(HOUR) }.encode_to_vec(),
    );
    assert_eq!(
        s.merge(&data, at(0)),
        Err(DecodeError::MissingField { offset: good_len, field: "silence" })
    );
    let mut data = peer(&a, ts(HOUR));
    data.extend_from_slice(&[2, 0xff, 0xff]);
    assert!(
        matches!(s.merge(&data, at(0)), Err(DecodeError::Protobuf { offset, .. }) if offset == good_len)
    );
    assert!(s.is_empty());
    assert!(Silences::load(&data, SilencesConfig::default(), 0).is_err());
}

#[test]
fn merge_of_a_blob_with_duplicate_ids_keeps_the_last_copy() {
    let mut s = store();
    let mut a = peer_silence("a", vec![eq("a", "1")], 0, HOUR, 5);
    let mut data = peer(&a, ts(HOUR));
    a.updated_at = ts(1);
    a.comment = "last".into();
    data.extend(peer(&a, ts(HOUR)));
    assert_eq!(s.merge(&data, at(0)), Ok(1));
    assert_eq!(s.get("a").expect("present").comment, "last");
}

#[test]
fn unknown_fields_survive_until_a_local_change() {
    let mut s = store();
    let a = peer_silence("a", vec![eq("a", "1")], 0, HOUR, 0);
    let mut mesh = proto::encode_mesh(&a, ts(HOUR));
    // Field 15 (varint 42) as some future Alertmanager might add to MeshSilence.
    mesh.extend_from_slice(&[0x78, 42]);
    let data = delimit(&mesh);
    assert_eq!(s.merge(&data, at(0)), Ok(1));
    assert_eq!(s.marshal(), data, "re-emitted as received");
    let reloaded = Silences::load(&s.marshal(), SilencesConfig::default(), 0).expect("ok");
    assert_eq!(reloaded.marshal(), data);
    s.expire("a", at(MIN)).expect("known");
    assert!(!s.marshal().ends_with(&[0x78, 42]), "a local write encodes fresh");
}

#[test]
fn multi_set_silences_match_any_set_and_reach_025_peers_as_set_zero() {
    let mut s = store();
    let mut two = silence(vec![eq("a", "1")], 0, HOUR);
    two.matcher_sets.push(MatcherSet { matchers: vec![eq("b", "2")] });
    let out = s.set(two, at(0)).expect("valid");
    for (l, want) in [(&[("a", "1")][..], true), (&[("b", "2")], true), (&[("c", "3")], false)] {
        let l = labels(l);
        assert_eq!(s.mutes(fingerprint(&l), &l, at(1)).is_muted(), want, "{l:?}");
    }
    let wire = MeshSilence::decode(decode(&out.broadcast.expect("set")).expect("ok")[0].raw)
        .expect("ok")
        .silence
        .expect("set");
    assert_eq!(wire.matchers, [eq("a", "1")]);
    assert_eq!(wire.matcher_sets.len(), 2);
}

#[test]
fn gossiped_oddities_follow_head() {
    let mut s = store();
    // No matchers at all: matches nothing (0.25 matched everything).
    let mut none = peer_silence("none", vec![], 0, HOUR, 0);
    none.matcher_sets.clear();
    // An empty set: matches everything (an AND of nothing).
    let mut empty = peer_silence("empty", vec![], 0, HOUR, 0);
    empty.matcher_sets = vec![MatcherSet::default()];
    let mut data = peer(&none, ts(HOUR));
    data.extend(peer(&empty, ts(HOUR)));
    assert_eq!(s.merge(&data, at(0)), Ok(2));
    let l = labels(&[("x", "y")]);
    assert_eq!(active_ids(&s.mutes(1, &l, at(1))), ["empty"]);
}

// ---------------------------------------------------------------------------------------
// A bad regex (only gossip or a snapshot can deliver one).

#[test]
fn a_bad_regex_never_matches_and_breaks_nothing_else() {
    let mut s = store();
    s.set(silence(vec![eq("alertname", "A")], 0, HOUR), at(0)).expect("valid");
    let bad = peer_silence("bad", vec![eq("alertname", "A"), re("job", "(unclosed")], 0, HOUR, 0);
    let negated = peer_silence("bad-negated", vec![nre("job", "a**")], 0, HOUR, 0);
    let mut data = peer(&bad, ts(HOUR));
    data.extend(peer(&negated, ts(HOUR)));
    assert_eq!(s.merge(&data, at(0)), Ok(2), "kept in state");
    assert_eq!(s.metrics().matcher_compile_errors_index_total, 2);
    let l = labels(&[("alertname", "A"), ("job", "x")]);
    let q = Query { matches: Some(&l), ..Default::default() };
    assert_eq!(s.query(&q, at(1)).len(), 1, "the good silence still matches");
    let r = s.mutes(fingerprint(&l), &l, at(1));
    assert_eq!(r.active.len(), 1);
    assert_ne!(r.active[0].as_str(), "bad");
    // Still queryable by id, counted, marshalled and gossiped.
    assert!(s.get("bad").is_some());
    assert_eq!(s.count_state(&[SilenceState::Active], at(1)), 3);
    let snapshot = s.marshal();
    let loaded = Silences::load(&snapshot, SilencesConfig::default(), 0).expect("ok");
    assert_eq!(loaded.marshal(), snapshot);
    assert_eq!(loaded.metrics().matcher_compile_errors_load_snapshot_total, 2);
    assert_eq!(loaded.query(&q, at(1)).len(), 1);
    // And GC removes it like any other.
    assert_eq!(s.gc(at(HOUR + 121 * HOUR)), Ok(3));
}

#[test]
fn a_regex_over_the_bounds_is_refused_locally_and_never_matches_from_a_peer() {
    use super::matcher::{MAX_COMPILED_BYTES, MAX_PATTERN_BYTES};
    // `Huge|host-000000|host-000001|…`: what it would match, were it compiled.
    let names = |len: usize| {
        let mut p = String::from("Huge");
        let mut i = 0;
        while p.len() + 12 <= len {
            p.push_str(&format!("|host-{i:06}"));
            i += 1;
        }
        p.push_str(&"x".repeat(len - p.len()));
        p
    };
    let long = names(MAX_PATTERN_BYTES + 1);
    let heavy = r"Huge|\pL{1000}";
    let mut s = store();
    for (pattern, bound) in [(long.as_str(), MAX_PATTERN_BYTES), (heavy, MAX_COMPILED_BYTES)] {
        for m in [re("alertname", pattern), nre("job", pattern)] {
            let e = s.set(silence(vec![eq("team", "a"), m], 0, HOUR), at(0)).unwrap_err();
            let SilenceError::Invalid { reason } = &e else { panic!("{e:?}") };
            assert!(reason.contains(&format!("limit of {bound} bytes")), "{reason}");
            assert!(reason.len() < 400, "the pattern is not echoed whole: {}", reason.len());
        }
    }
    assert!(s.is_empty(), "refused writes change nothing");
    let huge = labels(&[("alertname", "Huge"), ("team", "a")]);
    let at_bound = names(MAX_PATTERN_BYTES);
    let ok = s.set(silence(vec![re("alertname", &at_bound)], 0, HOUR), at(0)).expect("fits");
    assert_eq!(active_ids(&s.mutes(fingerprint(&huge), &huge, at(1))), [ok.id.as_str()]);

    // From a peer (no bound in Go): kept, counted, gossiped on, never matching.
    let mut s = store();
    let p1 = peer_silence("long", vec![re("alertname", &long)], 0, HOUR, 0);
    let p2 = peer_silence("heavy", vec![re("alertname", heavy)], 0, HOUR, 0);
    let mut data = peer(&p1, ts(HOUR));
    data.extend(peer(&p2, ts(HOUR)));
    assert_eq!(s.merge(&data, at(0)), Ok(2), "kept in state");
    assert_eq!(s.metrics().matcher_compile_errors_index_total, 2);
    assert!(s.get("long").is_some() && s.get("heavy").is_some());
    assert!(!s.mutes(fingerprint(&huge), &huge, at(1)).is_muted());
    let q = Query { matches: Some(&huge), ..Default::default() };
    assert!(s.query(&q, at(1)).is_empty());
    assert_eq!(s.marshal(), data, "re-emitted unchanged");
    // And from a snapshot file.
    let loaded = Silences::load(&data, SilencesConfig::default(), 0).expect("loads");
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded.metrics().matcher_compile_errors_load_snapshot_total, 2);
    assert!(loaded.query(&q, at(1)).is_empty());
}

// ---------------------------------------------------------------------------------------
// GC, queries, version.

#[test]
fn gc_removes_what_has_expired_and_reports_zero_expiry() {
    let mut s = store();
    let a = s.set(silence(vec![eq("a", "1")], 0, MIN), at(0)).expect("valid").id;
    let b = s.set(silence(vec![eq("a", "1")], 0, HOUR), at(0)).expect("valid").id;
    let l = labels(&[("a", "1")]);
    assert_eq!(s.mutes(9, &l, at(1)).active.len(), 2);
    let retention = 120 * HOUR;
    assert_eq!(s.gc(at(MIN + retention - 1)), Ok(0));
    assert_eq!(s.gc(at(MIN + retention)), Ok(1), "expires_at not after now");
    assert!(s.get(a.as_str()).is_none());
    assert_eq!(active_ids(&s.mutes(9, &l, at(1))), [b.as_str()], "cache follows renumbering");
    assert_eq!(s.metrics().version_index_size, 1);
    // Zero expires_at: removed and reported.
    let mut z = peer_silence("zero", vec![eq("a", "1")], 0, HOUR, 0);
    z.updated_at = ts(0);
    let mesh = MeshSilence { silence: Some(z), expires_at: Timestamp::default() }.encode_to_vec();
    let data = delimit(&mesh);
    // Merge would drop it as expired on arrival; load keeps everything.
    let mut s = Silences::load(&data, SilencesConfig::default(), 0).expect("ok");
    assert_eq!(s.len(), 1);
    assert_eq!(s.gc(at(0)), Err(GcError::ZeroExpiry { removed: 1, invalid: 1 }));
    assert!(s.is_empty());
    assert_eq!(s.metrics().gc_errors_total, 1);
}

#[test]
fn query_filters_are_anded() {
    let mut s = store();
    let a = s.set(silence(vec![eq("a", "1")], 0, HOUR), at(0)).expect("valid").id;
    let b = s.set(silence(vec![re("a", "1|2")], HOUR, 2 * HOUR), at(0)).expect("valid").id;
    let c = s.set(silence(vec![eq("a", "2")], 0, MIN), at(0)).expect("valid").id;
    let now = at(2 * MIN);
    let l1 = labels(&[("a", "1")]);
    let l2 = labels(&[("a", "2")]);
    let q = |ids: &[&SilenceId], states: &[SilenceState], l: Option<&LabelSet>| {
        let q = Query {
            ids: ids.iter().map(|i| i.to_string()).collect(),
            states: states.to_vec(),
            matches: l,
            ..Default::default()
        };
        ids_of(&s.query(&q, now))
    };
    fn ids_of(v: &[&Silence]) -> Vec<String> {
        v.iter().map(|s| s.id.clone()).collect()
    }
    let (sa, sb, sc) = (a.as_str(), b.as_str(), c.as_str());
    assert_eq!(q(&[], &[], None), [sa, sb, sc]);
    assert_eq!(q(&[], &[SilenceState::Active], None), [sa]);
    assert_eq!(q(&[], &[SilenceState::Pending, SilenceState::Expired], None), [sb, sc]);
    assert_eq!(q(&[], &[], Some(&l1)), [sa, sb]);
    assert_eq!(q(&[], &[], Some(&l2)), [sb, sc]);
    assert_eq!(q(&[], &[SilenceState::Expired], Some(&l2)), [sc]);
    assert_eq!(q(&[&c, &a], &[], None), [sc, sa], "ids order");
    assert_eq!(q(&[&c, &a], &[SilenceState::Active], None), [sa]);
    assert_eq!(q(&[&c, &a, &b], &[], Some(&l1)), [sa, sb]);
    assert!(q(&[&c], &[], Some(&l1)).is_empty());
    let m = s.metrics();
    assert!(m.queries_total >= 10 && m.query_silences_scanned_total > 0);
}

#[test]
fn version_and_since_see_only_additions() {
    let mut s = store();
    assert_eq!(s.version(), 0);
    let a = s.set(silence(vec![eq("a", "1")], 0, HOUR), at(0)).expect("valid").id;
    assert_eq!(s.version(), 1);
    s.set(update(a.as_str(), vec![eq("a", "1")], 0, 2 * HOUR), at(1)).expect("valid");
    s.expire(a.as_str(), at(2)).expect("known");
    assert_eq!(s.version(), 1, "updates and expiry add nothing");
    let b = s.set(silence(vec![eq("a", "1")], 0, HOUR), at(3)).expect("valid").id;
    assert_eq!(s.version(), 2);
    let since = |v| {
        let got = s.query(&Query { since: Some(v), ..Default::default() }, at(4));
        got.iter().map(|x| x.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(since(0), [a.to_string(), b.to_string()]);
    assert_eq!(since(1), [b.to_string()]);
    assert!(since(2).is_empty());
    assert_eq!(s.metrics().query_silences_skipped_total, 1 + 2);
    // Many silences: `since` with label matching goes through the index.
    for i in 0..100 {
        s.set(silence(vec![eq("n", &i.to_string())], 0, HOUR), at(5)).expect("valid");
    }
    let l = labels(&[("n", "42")]);
    // n=42 was added at version 45.
    let q = Query { since: Some(44), matches: Some(&l), ..Default::default() };
    assert_eq!(s.query(&q, at(6)).len(), 1);
    let q = Query { since: Some(45), matches: Some(&l), ..Default::default() };
    assert!(s.query(&q, at(6)).is_empty());
}

#[test]
fn changed_matchers_from_a_peer_count_as_an_addition() {
    let mut s = store();
    let v1 = peer_silence("x", vec![eq("a", "1")], 0, HOUR, 1);
    s.merge(&peer(&v1, ts(HOUR)), at(0)).expect("ok");
    let l = labels(&[("a", "2")]);
    assert!(!s.mutes(5, &l, at(1)).is_muted());
    let v2 = peer_silence("x", vec![eq("a", "2")], 0, HOUR, 2);
    s.merge(&peer(&v2, ts(HOUR)), at(0)).expect("ok");
    assert_eq!(s.version(), 2);
    assert!(s.mutes(5, &l, at(1)).is_muted());
    assert!(!s.mutes(6, &labels(&[("a", "1")]), at(1)).is_muted());
    assert_eq!(s.len(), 1);
    assert_eq!(decode(&s.marshal()).expect("ok").len(), 1);
}
