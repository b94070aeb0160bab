use super::*;
use proptest::prelude::*;

const HOUR: Duration = Duration::from_secs(3600);
const T0: UnixMillis = UnixMillis(1_800_000_000_000);

fn at(offset_ms: i64) -> UnixMillis {
    UnixMillis(T0.0 + offset_ms)
}

fn ts(offset_ms: i64) -> Timestamp {
    Timestamp::from(at(offset_ms))
}

/// One delimited element, as a peer would send it.
fn element(fp: u64, flushed: Option<Timestamp>, expires: Option<Timestamp>) -> Vec<u8> {
    let mesh = MeshFlushLog {
        flush_log: Some(proto::FlushLog { group_fingerprint: fp, timestamp: flushed }),
        expires_at: expires,
    };
    let mut out = Vec::new();
    delimited::push(&mut out, &mesh.encode_to_vec());
    out
}

fn log_with(entries: &[(u64, i64, i64)]) -> FlushLog {
    let mut blob = Vec::new();
    for &(fp, flushed, expires) in entries {
        blob.extend(element(fp, Some(ts(flushed)), Some(ts(expires))));
    }
    FlushLog::load(&blob, DEFAULT_RETENTION).expect("valid")
}

fn flushed(log: &FlushLog, fp: u64) -> Option<Timestamp> {
    log.entries.get(&fp).map(|e| e.timestamp)
}

#[test]
fn a_new_fingerprint_is_added() {
    let mut log = FlushLog::new(DEFAULT_RETENTION);
    assert_eq!(log.merge(&element(4, Some(ts(0)), Some(ts(60_000))), T0), Ok(1));
    assert_eq!(flushed(&log, 4), Some(ts(0)));
}

#[test]
fn a_newer_flush_time_replaces_and_an_older_or_equal_one_does_not() {
    let mut log = log_with(&[(2, 0, 60_000), (3, 0, 60_000)]);
    assert_eq!(log.merge(&element(2, Some(ts(-60_000)), Some(ts(60_000))), T0), Ok(0));
    assert_eq!(log.merge(&element(2, Some(ts(0)), Some(ts(90_000))), T0), Ok(0), "a tie");
    assert_eq!(log.entries[&2].expires_at, ts(60_000), "a tie keeps the local entry");
    assert_eq!(log.merge(&element(3, Some(ts(60_000)), Some(ts(60_000))), T0), Ok(1));
    assert_eq!(flushed(&log, 3), Some(ts(60_000)));
}

#[test]
fn an_expired_element_is_ignored() {
    let mut log = FlushLog::new(DEFAULT_RETENTION);
    assert_eq!(log.merge(&element(5, Some(ts(-60_000)), Some(ts(-1))), T0), Ok(0));
    assert!(log.is_empty());
    // Expiring exactly now is not "before now": kept, as Go's `Before`.
    assert_eq!(log.merge(&element(5, Some(ts(-60_000)), Some(ts(0))), T0), Ok(1));
}

#[test]
fn a_zero_expiry_deletes() {
    let mut log = log_with(&[(6, 0, 60_000)]);
    let deletion = element(6, Some(ts(0)), Some(GO_ZERO));
    assert_eq!(log.merge(&deletion, T0), Ok(1));
    assert!(log.is_empty());
    assert_eq!(log.merge(&deletion, T0), Ok(0), "nothing to delete: no change, no re-gossip");
    // An absent expiry is Go's zero time too.
    let mut log = log_with(&[(6, 0, 60_000)]);
    assert_eq!(log.merge(&element(6, Some(ts(0)), None), T0), Ok(1));
    assert!(log.is_empty());
    // The Unix epoch is a time in 1970, not zero: an expired element, not a deletion.
    let mut log = log_with(&[(6, 0, 60_000)]);
    let epoch = Timestamp { seconds: 0, nanos: 0 };
    assert_eq!(log.merge(&element(6, Some(ts(0)), Some(epoch)), T0), Ok(0));
    assert_eq!(log.len(), 1);
}

#[test]
fn the_forks_merge_case_table() {
    // a: 1, 2, 3, 6; b: 2 older, 3 newer, 4 new, 5 new but expired, 6 deleted.
    let mut a = log_with(&[(1, 0, 60_000), (2, 0, 60_000), (3, 0, 60_000), (6, 0, 60_000)]);
    let mut b = Vec::new();
    b.extend(element(2, Some(ts(-60_000)), Some(ts(60_000))));
    b.extend(element(3, Some(ts(60_000)), Some(ts(60_000))));
    b.extend(element(4, Some(ts(0)), Some(ts(60_000))));
    b.extend(element(5, Some(ts(-60_000)), Some(ts(-1))));
    b.extend(element(6, Some(ts(0)), Some(GO_ZERO)));
    assert_eq!(a.merge(&b, T0), Ok(3));
    let got: Vec<_> = a.entries.iter().map(|(fp, e)| (*fp, e.timestamp)).collect();
    assert_eq!(got, [(1, ts(0)), (2, ts(0)), (3, ts(60_000)), (4, ts(0))]);
}

#[test]
fn invalid_elements_fail_the_whole_blob_and_change_nothing() {
    let mut log = log_with(&[(1, 0, 60_000)]);
    let good = element(9, Some(ts(0)), Some(ts(60_000)));
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            {
                let mut b = Vec::new();
                delimited::push(&mut b, &[]);
                b
            },
            DecodeError::MissingField { offset: 0, field: "flushLog" },
        ),
        (
            element(0, Some(ts(0)), Some(ts(60_000))),
            DecodeError::MissingField { offset: 0, field: "flushLog.group_fingerprint" },
        ),
        (
            element(8, None, Some(ts(60_000))),
            DecodeError::MissingField { offset: 0, field: "flushLog.timestamp" },
        ),
        (
            element(8, Some(GO_ZERO), Some(ts(60_000))),
            DecodeError::MissingField { offset: 0, field: "flushLog.timestamp" },
        ),
    ];
    for (bad, want) in cases {
        let mut blob = good.clone();
        let offset = blob.len();
        blob.extend(&bad);
        let err = log.merge(&blob, T0).expect_err("refused");
        let want = match want {
            DecodeError::MissingField { field, .. } => DecodeError::MissingField { offset, field },
            other => other,
        };
        assert_eq!(err, want);
        assert_eq!(log.len(), 1, "the good element before the bad one was not applied");
    }
    let out_of_range = element(8, Some(Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    assert!(matches!(log.merge(&out_of_range, T0), Err(DecodeError::Protobuf { .. })));
    assert!(matches!(log.merge(&[0x05, 1, 2], T0), Err(DecodeError::Truncated { offset: 0 })));
}

#[test]
fn a_fingerprint_twice_in_one_blob_keeps_the_later_element() {
    let mut blob = element(7, Some(ts(5_000)), Some(ts(60_000)));
    blob.extend(element(7, Some(ts(1_000)), Some(ts(60_000))));
    let log = FlushLog::load(&blob, DEFAULT_RETENTION).expect("valid");
    assert_eq!(flushed(&log, 7), Some(ts(1_000)));
}

#[test]
fn log_writes_broadcasts_and_respects_a_later_flush() {
    let mut log = FlushLog::new(DEFAULT_RETENTION);
    let sent = log.log(11, ts(0), Some(HOUR), T0).expect("valid").expect("written");
    assert_eq!(sent, element(11, Some(ts(0)), Some(ts(3_600_000))));
    assert_eq!(log.query(11), Some(FlushEntry { timestamp: ts(0), expires_at: ts(3_600_000) }));
    // An earlier flush time than the stored one: nothing written, nothing to send.
    assert_eq!(log.log(11, ts(-1), None, at(10)), Ok(None));
    // The same time again is written and sent (Go broadcasts it), expiry refreshed.
    assert!(log.log(11, ts(0), None, at(10)).expect("valid").is_some());
    // Expiry: the retention bounds it; zero means the retention.
    let short = FlushLog::new(HOUR);
    let mut short = short;
    short.log(12, ts(0), Some(10 * HOUR), T0).expect("valid");
    assert_eq!(short.query(12).map(|e| e.expires_at), Some(ts(3_600_000)));
    short.log(13, ts(0), Some(Duration::ZERO), T0).expect("valid");
    assert_eq!(short.query(13).map(|e| e.expires_at), Some(ts(3_600_000)));
}

#[test]
fn log_refuses_what_peers_would_refuse() {
    let mut log = FlushLog::new(DEFAULT_RETENTION);
    assert_eq!(log.log(0, ts(0), None, T0), Err(FlushLogError::ZeroFingerprint));
    assert!(matches!(log.log(1, GO_ZERO, None, T0), Err(FlushLogError::TimeOutOfRange { .. })));
    let far = Timestamp { seconds: 300_000_000_000, nanos: 0 };
    assert!(matches!(log.log(1, far, None, T0), Err(FlushLogError::TimeOutOfRange { .. })));
    assert!(log.is_empty());
}

#[test]
fn delete_sends_a_zero_expiry_that_deletes_on_peers() {
    let mut a = FlushLog::new(DEFAULT_RETENTION);
    let mut b = FlushLog::new(DEFAULT_RETENTION);
    let sent = a.log(21, ts(0), None, T0).expect("valid").expect("written");
    assert_eq!(b.merge(&sent, T0), Ok(1));
    let deletion = a.delete(21).expect("there was an entry");
    assert_eq!(deletion, element(21, Some(ts(0)), Some(GO_ZERO)));
    assert_eq!(a.delete(21), None, "not found");
    assert_eq!(b.merge(&deletion, T0), Ok(1));
    assert!(a.is_empty() && b.is_empty());
}

#[test]
fn gc_removes_zero_and_past_expiries() {
    let mut blob = Vec::new();
    blob.extend(element(1, Some(ts(0)), Some(ts(0))));
    blob.extend(element(2, Some(ts(0)), Some(ts(1_000))));
    blob.extend(element(3, Some(ts(0)), Some(ts(-1_000))));
    blob.extend(element(4, Some(ts(0)), Some(GO_ZERO)));
    let mut log = FlushLog::load(&blob, DEFAULT_RETENTION).expect("a snapshot may hold deletions");
    assert_eq!(log.len(), 4);
    assert_eq!(log.gc(T0), 3);
    assert_eq!(log.entries.keys().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn queries_are_counted_as_the_fork_counts_them() {
    let log = log_with(&[(1, 0, 60_000)]);
    assert!(log.query(1).is_some());
    assert!(log.query(2).is_none());
    assert!(log.query(0).is_none());
    assert_eq!((log.queries_total(), log.query_errors_total()), (3, 2));
}

#[test]
fn marshal_is_sorted_and_loads_back() {
    let log = log_with(&[(30, 0, 60_000), (10, 5, 60_000), (20, 7, 90_000)]);
    let bytes = log.marshal();
    let mut want = Vec::new();
    want.extend(element(10, Some(ts(5)), Some(ts(60_000))));
    want.extend(element(20, Some(ts(7)), Some(ts(90_000))));
    want.extend(element(30, Some(ts(0)), Some(ts(60_000))));
    assert_eq!(bytes, want);
    assert_eq!(FlushLog::load(&bytes, DEFAULT_RETENTION).expect("valid").entries, log.entries);
}

/// An element: fingerprint (small, so that blobs collide), flush and expiry offsets, and
/// whether it is a deletion.
fn arb_element() -> impl Strategy<Value = (u64, i64, i64, bool)> {
    (1u64..6, -5i64..5, -5i64..5, prop::bool::weighted(0.2))
}

fn blob_of(elements: &[(u64, i64, i64, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(fp, flushed, expires, deletion) in elements {
        let expires = if deletion { GO_ZERO } else { ts(expires * 1000) };
        out.extend(element(fp, Some(ts(flushed * 1000)), Some(expires)));
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut log = FlushLog::new(DEFAULT_RETENTION);
        let _ = log.merge(&data, T0);
        let _ = FlushLog::load(&data, DEFAULT_RETENTION);
    }

    #[test]
    fn merging_is_idempotent(a in prop::collection::vec(arb_element(), 0..8),
                             b in prop::collection::vec(arb_element(), 0..8)) {
        let mut log = FlushLog::new(DEFAULT_RETENTION);
        log.merge(&blob_of(&a), T0).expect("valid");
        log.merge(&blob_of(&b), T0).expect("valid");
        let once = log.entries.clone();
        prop_assert_eq!(log.merge(&blob_of(&b), T0), Ok(0));
        prop_assert_eq!(&log.entries, &once);
    }

    #[test]
    fn live_updates_commute(a in prop::collection::vec(arb_element(), 0..8),
                            b in prop::collection::vec(arb_element(), 0..8)) {
        // Without deletions, merge is a per-key maximum of flush times (ties keep the first
        // arrival's expiry, so compare flush times): order does not matter.
        let live = |v: &[(u64, i64, i64, bool)]| -> Vec<(u64, i64, i64, bool)> {
            v.iter().map(|&(fp, f, _, _)| (fp, f, 10, false)).collect()
        };
        let (a, b) = (blob_of(&live(&a)), blob_of(&live(&b)));
        let mut ab = FlushLog::new(DEFAULT_RETENTION);
        ab.merge(&a, T0).expect("valid");
        ab.merge(&b, T0).expect("valid");
        let mut ba = FlushLog::new(DEFAULT_RETENTION);
        ba.merge(&b, T0).expect("valid");
        ba.merge(&a, T0).expect("valid");
        prop_assert_eq!(ab.entries, ba.entries);
    }

    #[test]
    fn marshal_round_trips(a in prop::collection::vec(arb_element(), 0..12)) {
        let live: Vec<_> = a.iter().map(|&(fp, f, e, _)| (fp, f, e, false)).collect();
        let log = FlushLog::load(&blob_of(&live), DEFAULT_RETENTION).expect("valid");
        let again = FlushLog::load(&log.marshal(), DEFAULT_RETENTION).expect("valid");
        prop_assert_eq!(again.entries, log.entries);
    }
}
