use super::*;
use crate::core::state::GO_ZERO_SECONDS;
use crate::core::state::labels::{LabelSet, alert_hash};
use proptest::prelude::*;
use view::{FIELD_FIRING, FIELD_RESOLVED};

/// The real Alertmanager 0.25 snapshot (see the README beside it).
const GOLDEN: &[u8] = include_bytes!("../../../../tests/golden/alertmanager-0.25/nflog");
const DISK_FULL_KEY: &str = "{}:{alertname=\"DiskFull\", instance=\"db1:9100\"}";
const HIGH_LATENCY_KEY: &str = "{}:{alertname=\"HighLatency\", instance=\"api:8080\"}";

const HOUR: Duration = Duration::from_secs(3600);
const T0: UnixMillis = UnixMillis(1_800_000_000_000);

fn at(offset: Duration) -> UnixMillis {
    UnixMillis(T0.0 + i64::try_from(offset.as_millis()).expect("small"))
}

fn hook() -> Receiver {
    Receiver::new("hook", "webhook", 0)
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn no_data() -> BTreeMap<String, ReceiverDataValue> {
    BTreeMap::new()
}

/// A `MeshEntry` for `receiver`/`group_key` with timestamp `ts` and expiry `exp`.
fn mesh(group_key: &str, receiver: &Receiver, ts: UnixMillis, exp: UnixMillis) -> MeshEntry {
    MeshEntry {
        entry: Some(Entry {
            group_key: group_key.as_bytes().to_vec(),
            receiver: Some(receiver.clone()),
            timestamp: Some(ts.into()),
            firing_alerts: vec![1, 2],
            ..Entry::default()
        }),
        expires_at: Some(exp.into()),
    }
}

fn blob<'a>(msgs: impl IntoIterator<Item = &'a MeshEntry>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        delimited::push(&mut out, &m.encode_to_vec());
    }
    out
}

fn stored(log: &Nflog, group_key: &str) -> MeshEntry {
    let view = log.query(&hook(), group_key).expect("entry present");
    view.decode()
}

// ---- golden -------------------------------------------------------------------------------

#[test]
fn golden_snapshot_loads_with_its_entries() {
    let log = Nflog::load(GOLDEN, DEFAULT_RETENTION).expect("golden decodes");
    assert_eq!(log.len(), 2);

    let disk = log.query(&hook(), DISK_FULL_KEY).expect("DiskFull entry");
    assert_eq!(disk.group_key(), DISK_FULL_KEY.as_bytes());
    assert_eq!(disk.receiver(), hook());
    assert_eq!(disk.timestamp(), Timestamp { seconds: 1_795_461_010, nanos: 943_257_105 });
    assert_eq!(disk.expires_at(), disk.timestamp() + 8 * HOUR);
    assert!(disk.resolved_alerts().is_empty());
    let mut firing = disk.firing_alerts();
    firing.sort_unstable();
    let mut want = vec![
        alert_hash(&labels(&[
            ("alertname", "DiskFull"),
            ("instance", "db1:9100"),
            ("severity", "page"),
        ])),
        alert_hash(&labels(&[
            ("alertname", "DiskFull"),
            ("instance", "db1:9100"),
            ("severity", "ticket"),
            ("mount", "/var"),
        ])),
    ];
    want.sort_unstable();
    assert_eq!(firing, want);

    let high = log.query(&hook(), HIGH_LATENCY_KEY).expect("HighLatency entry");
    assert_eq!(high.timestamp(), Timestamp { seconds: 1_795_461_014, nanos: 943_693_823 });
    assert_eq!(high.expires_at(), high.timestamp() + 8 * HOUR);
    assert!(high.firing_alerts().is_empty());
    let latency =
        labels(&[("alertname", "HighLatency"), ("instance", "api:8080"), ("team", "web")]);
    assert_eq!(high.resolved_alerts(), [alert_hash(&latency)]);
}

#[test]
fn golden_snapshot_marshals_byte_for_byte() {
    let log = Nflog::load(GOLDEN, DEFAULT_RETENTION).expect("golden decodes");
    assert_eq!(log.marshal(), GOLDEN);
    // Our encoder writes what Go wrote for the same values, too.
    for (_, msg) in delimited::split(GOLDEN).expect("delimited") {
        let decoded = MeshEntry::decode(msg).expect("protobuf");
        assert_eq!(decoded.encode_to_vec(), msg);
    }
}

#[test]
fn golden_snapshot_merges_into_an_empty_log_until_it_expires() {
    let ts = Timestamp { seconds: 1_795_461_010, nanos: 0 }.unix_millis();
    let mut log = Nflog::new(DEFAULT_RETENTION);
    assert_eq!(log.merge(GOLDEN, ts), Ok(2));
    assert_eq!(log.merge(GOLDEN, ts), Ok(0));
    let mut late = Nflog::new(DEFAULT_RETENTION);
    assert_eq!(late.merge(GOLDEN, UnixMillis(ts.0 + 9 * 3_600_000)), Ok(0));
}

// ---- log (§4.3) ---------------------------------------------------------------------------

#[test]
fn log_writes_entry_with_timestamp_now_and_returns_one_delimited_message() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let out = log.log(&hook(), "g", &[1, 2], &[3], &no_data(), None, T0).expect("ok");
    let out = out.expect("written");
    let parts = delimited::split(&out).expect("delimited");
    assert_eq!(parts.len(), 1);
    let sent = MeshEntry::decode(parts[0].1).expect("protobuf");
    let entry = sent.entry.clone().expect("entry");
    assert_eq!(entry.group_key, b"g");
    assert_eq!(entry.receiver, Some(hook()));
    assert_eq!(entry.timestamp, Some(T0.into()));
    assert_eq!(entry.firing_alerts, [1, 2]);
    assert_eq!(entry.resolved_alerts, [3]);
    // Both timestamps are always written.
    assert_eq!(sent.expires_at, Some(Timestamp::from(T0) + DEFAULT_RETENTION));
    assert_eq!(stored(&log, "g"), sent);
    assert_eq!(log.marshal(), out);
}

#[test]
fn log_skips_when_the_existing_entry_is_from_the_future() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    log.log(&hook(), "g", &[1], &[], &no_data(), None, at(HOUR)).expect("ok");
    let before = log.marshal();
    assert_eq!(log.log(&hook(), "g", &[2], &[], &no_data(), None, T0), Ok(None));
    assert_eq!(log.marshal(), before);
}

#[test]
fn log_expiry_is_the_smaller_of_retention_and_expiry() {
    let mut log = Nflog::new(10 * HOUR);
    let cases = [
        ("shorter", Some(8 * HOUR), 8 * HOUR),
        ("longer", Some(20 * HOUR), 10 * HOUR),
        ("zero", Some(Duration::ZERO), 10 * HOUR),
        ("none", None, 10 * HOUR),
    ];
    for (gk, expiry, lives) in cases {
        log.log(&hook(), gk, &[1], &[], &no_data(), expiry, T0).expect("ok");
        assert_eq!(stored(&log, gk).expires_at, Some(Timestamp::from(T0) + lives), "{gk}");
    }
}

#[test]
fn log_broadcasts_even_when_its_merge_is_a_no_op() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    log.log(&hook(), "g", &[1], &[], &no_data(), None, T0).expect("ok");
    // Same timestamp: the merge keeps the local entry (tie), but the bytes still go out.
    let out = log.log(&hook(), "g", &[1, 2], &[], &no_data(), None, T0).expect("ok");
    assert!(out.is_some());
    assert_eq!(stored(&log, "g").entry.expect("entry").firing_alerts, [1]);
    // A later write replaces it.
    log.log(&hook(), "g", &[1, 2], &[], &no_data(), None, at(HOUR)).expect("ok");
    assert_eq!(stored(&log, "g").entry.expect("entry").firing_alerts, [1, 2]);
    assert_eq!(log.len(), 1);
}

#[test]
fn log_keeps_receiver_data_and_separates_receivers() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let data: BTreeMap<_, _> = [(
        "ts".to_owned(),
        ReceiverDataValue { value: Some(receiver_data_value::Value::StrVal("1.2".into())) },
    )]
    .into_iter()
    .collect();
    log.log(&hook(), "g", &[1], &[], &data, None, T0).expect("ok");
    let other = Receiver::new("hook", "webhook", 1);
    log.log(&other, "g", &[9], &[], &no_data(), None, T0).expect("ok");
    assert_eq!(log.len(), 2);
    assert_eq!(stored(&log, "g").entry.expect("entry").receiver_data, data);
    let view = log.query(&other, "g").expect("second receiver");
    assert_eq!(view.firing_alerts(), [9]);
}

#[test]
fn log_refuses_entries_over_the_message_limit() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let firing: Vec<u64> = (0..MAX_MESSAGE_LEN as u64 / 8).map(|i| u64::MAX - i).collect();
    let err = log.log(&hook(), "g", &firing, &[], &no_data(), None, T0).expect_err("too big");
    assert!(matches!(err, NflogError::EntryTooLarge { limit: MAX_MESSAGE_LEN, .. }));
    assert!(log.is_empty());
}

#[test]
fn log_refuses_times_go_cannot_represent() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let year_10000 = UnixMillis(253_402_300_800_000);
    let err = log.log(&hook(), "g", &[1], &[], &no_data(), None, year_10000);
    assert_eq!(err, Err(NflogError::TimeOutOfRange { seconds: 253_402_300_800 }));
    // Now is fine but now + retention is not.
    let late = UnixMillis(year_10000.0 - 1000);
    assert!(matches!(
        log.log(&hook(), "g", &[1], &[], &no_data(), None, late),
        Err(NflogError::TimeOutOfRange { .. })
    ));
    assert!(log.is_empty());
}

// ---- query (§4.4) and should_notify (§5.4) ------------------------------------------------

#[test]
fn queries_count_and_not_found_counts_as_an_error() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    assert!(log.query(&hook(), "g").is_none());
    log.log(&hook(), "g", &[1], &[], &no_data(), None, T0).expect("ok");
    assert!(log.query(&hook(), "g").is_some());
    assert!(log.query(&hook(), "").is_none());
    let d = log.should_notify(&hook(), "", &[1], &[], true, HOUR, T0);
    assert_eq!(d, Decision { notify: false, reason: Reason::DoNotNotify, row: Row::QueryFailed });
    let d = log.should_notify(&hook(), "other", &[1], &[], true, HOUR, T0);
    assert_eq!(d.row, Row::NoEntryFiring);
    assert_eq!((log.queries_total(), log.query_errors_total()), (5, 4));
}

#[test]
fn should_notify_reads_the_stored_entry() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let (firing, resolved) = ([10, 11], [12]);
    log.log(&hook(), "g", &firing, &resolved, &no_data(), Some(8 * HOUR), T0).expect("ok");
    fn ask(log: &Nflog, f: &[u64], r: &[u64], send_resolved: bool, now: UnixMillis) -> Row {
        log.should_notify(&hook(), "g", f, r, send_resolved, 4 * HOUR, now).row
    }
    assert_eq!(ask(&log, &[11, 10], &[12], true, at(HOUR)), Row::Unchanged);
    assert_eq!(ask(&log, &[10, 13], &[], true, at(HOUR)), Row::NewFiring);
    assert_eq!(ask(&log, &[], &[10, 11], false, at(HOUR)), Row::AllResolved);
    assert_eq!(ask(&log, &[10], &[11], true, at(HOUR)), Row::NewResolved);
    assert_eq!(ask(&log, &[10], &[11], false, at(HOUR)), Row::Unchanged);
    assert_eq!(ask(&log, &[10], &[12], true, at(4 * HOUR)), Row::Unchanged);
    assert_eq!(
        ask(&log, &[10], &[12], true, at(4 * HOUR + Duration::from_millis(1))),
        Row::RepeatElapsed
    );
    assert_eq!(ask(&log, &[], &[], true, T0), Row::AllResolved);
    log.log(&hook(), "g", &[], &[10, 11], &no_data(), None, at(HOUR)).expect("ok");
    assert_eq!(ask(&log, &[], &[10, 11], true, at(HOUR)), Row::NothingFiring);
    let d = log.should_notify(&hook(), "g", &[10], &[], true, 4 * HOUR, at(HOUR));
    assert_eq!((d.row, d.reason), (Row::NewFiring, Reason::FirstNotification));
}

#[test]
fn should_notify_handles_large_groups() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let firing: Vec<u64> = (0..1000).map(|i| i * 3).collect();
    log.log(&hook(), "g", &firing, &[], &no_data(), None, T0).expect("ok");
    let subset: Vec<u64> = firing.iter().rev().step_by(2).copied().collect();
    assert_eq!(log.should_notify(&hook(), "g", &subset, &[], true, HOUR, T0).row, Row::Unchanged);
    let mut more = subset.clone();
    more.push(1);
    assert_eq!(log.should_notify(&hook(), "g", &more, &[], true, HOUR, T0).row, Row::NewFiring);
}

// ---- merge (§4.5) -------------------------------------------------------------------------

#[test]
fn merge_adds_an_unknown_key() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let m = mesh("g", &hook(), T0, at(HOUR));
    assert_eq!(log.merge(&blob([&m]), T0), Ok(1));
    assert_eq!(stored(&log, "g"), m);
}

#[test]
fn merge_ignores_what_expired_strictly_before_now() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let expired = mesh("g", &hook(), T0, UnixMillis(T0.0 - 1));
    assert_eq!(log.merge(&blob(&[expired]), T0), Ok(0));
    assert!(log.is_empty());
    // Expiring exactly now is not before now.
    let now = mesh("g", &hook(), T0, T0);
    assert_eq!(log.merge(&blob(&[now]), T0), Ok(1));
}

#[test]
fn merge_replaces_an_older_entry_whole() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    log.merge(&blob(&[mesh("g", &hook(), T0, at(10 * HOUR))]), T0).expect("ok");
    let mut newer = mesh("g", &hook(), at(HOUR), at(2 * HOUR));
    newer.entry.as_mut().expect("entry").firing_alerts = vec![7];
    assert_eq!(log.merge(&blob(&[newer.clone()]), T0), Ok(1));
    // expires_at comes along, even though it is earlier than the old one.
    assert_eq!(stored(&log, "g"), newer);
}

#[test]
fn merge_keeps_a_newer_local_entry() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let local = mesh("g", &hook(), at(HOUR), at(10 * HOUR));
    log.merge(&blob([&local]), T0).expect("ok");
    assert_eq!(log.merge(&blob(&[mesh("g", &hook(), T0, at(20 * HOUR))]), T0), Ok(0));
    assert_eq!(stored(&log, "g"), local);
}

#[test]
fn merge_keeps_the_local_entry_on_a_tie() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let local = mesh("g", &hook(), T0, at(10 * HOUR));
    log.merge(&blob([&local]), T0).expect("ok");
    let mut other = mesh("g", &hook(), T0, at(20 * HOUR));
    other.entry.as_mut().expect("entry").firing_alerts = vec![9];
    assert_eq!(log.merge(&blob(&[other]), T0), Ok(0));
    assert_eq!(stored(&log, "g"), local);
}

#[test]
fn merge_counts_each_changed_element() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    log.merge(&blob(&[mesh("a", &hook(), at(HOUR), at(10 * HOUR))]), T0).expect("ok");
    let data = blob(&[
        mesh("a", &hook(), T0, at(10 * HOUR)), // older: no change
        mesh("b", &hook(), T0, at(10 * HOUR)), // new
        mesh("c", &hook(), T0, UnixMillis(0)), // expired
        mesh("d", &hook(), T0, at(10 * HOUR)), // new
    ]);
    assert_eq!(log.merge(&data, T0), Ok(2));
    assert_eq!(log.len(), 3);
}

#[test]
fn merge_of_a_blob_with_a_key_twice_uses_its_later_element() {
    // Alertmanager decodes a blob into a map first: the later element wins, newer or not.
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let newer = mesh("g", &hook(), at(HOUR), at(10 * HOUR));
    let older = mesh("g", &hook(), T0, at(10 * HOUR));
    assert_eq!(log.merge(&blob(&[newer, older.clone()]), T0), Ok(1));
    assert_eq!(stored(&log, "g"), older);
    let loaded =
        Nflog::load(&blob(&[mesh("g", &hook(), at(HOUR), at(9 * HOUR)), older.clone()]), HOUR);
    assert_eq!(stored(&loaded.expect("valid"), "g"), older);
}

#[test]
fn merge_is_all_or_nothing() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let mut data = blob(&[mesh("a", &hook(), T0, at(HOUR))]);
    let bad_at = data.len();
    data.extend_from_slice(&blob(&[MeshEntry { entry: None, expires_at: Some(at(HOUR).into()) }]));
    assert_eq!(
        log.merge(&data, T0),
        Err(DecodeError::MissingField { offset: bad_at, field: "entry" })
    );
    assert!(log.is_empty());
}

#[test]
fn missing_receiver_poisons_a_full_state() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let mut no_receiver = mesh("b", &hook(), T0, at(HOUR));
    no_receiver.entry.as_mut().expect("entry").receiver = None;
    let good = blob(&[mesh("a", &hook(), T0, at(HOUR))]);
    let mut data = good.clone();
    data.extend_from_slice(&blob(&[no_receiver]));
    data.extend_from_slice(&good);
    let err = DecodeError::MissingField { offset: good.len(), field: "entry.receiver" };
    assert_eq!(log.merge(&data, T0), Err(err.clone()));
    assert!(log.is_empty());
    assert_eq!(Nflog::load(&data, HOUR).map(|l| l.len()), Err(err));
}

#[test]
fn truncated_and_garbled_blobs_report_offsets() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    // The golden file's second element starts at byte 117.
    let cut = &GOLDEN[..GOLDEN.len() - 1];
    assert_eq!(log.merge(cut, T0), Err(DecodeError::Truncated { offset: 117 }));
    assert_eq!(
        Nflog::load(cut, HOUR).map(|l| l.len()),
        Err(DecodeError::Truncated { offset: 117 })
    );
    assert_eq!(
        Nflog::load(&GOLDEN[..1], HOUR).map(|l| l.len()),
        Err(DecodeError::Truncated { offset: 0 })
    );
    // A well-framed element that is not protobuf.
    let mut data = GOLDEN[..117].to_vec();
    delimited::push(&mut data, &[0x0a, 0x05, 0x01]);
    assert!(matches!(log.merge(&data, T0), Err(DecodeError::Protobuf { offset: 117, .. })));
    // An element with a timestamp Go 0.25 rejects.
    let mut bad = mesh("g", &hook(), T0, at(HOUR));
    bad.expires_at = Some(Timestamp { seconds: 1, nanos: -1 });
    assert!(matches!(log.merge(&blob(&[bad]), T0), Err(DecodeError::Protobuf { offset: 0, .. })));
    assert!(log.is_empty());
}

#[test]
fn unknown_fields_survive_merge_and_marshal() {
    // An Entry with an unknown field 99 (varint) and a MeshEntry with an unknown field 15
    // (string), as a newer Alertmanager might write them.
    let entry = mesh("g", &hook(), T0, at(HOUR)).entry.expect("entry").encode_to_vec();
    let mut entry_plus = entry.clone();
    entry_plus.extend_from_slice(&[0x98, 0x06, 0x2a]); // field 99, varint 42
    let mut msg = Vec::new();
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut msg);
    prost::encoding::encode_varint(entry_plus.len() as u64, &mut msg);
    msg.extend_from_slice(&entry_plus);
    msg.extend_from_slice(&[0x7a, 0x03, b'n', b'e', b'w']); // field 15, "new"
    msg.extend_from_slice(&[0x12, 0x00]); // expires_at written last, empty: 1970
    let mut with_expiry = msg.clone();
    with_expiry.truncate(msg.len() - 2);
    let exp = Timestamp::from(at(HOUR)).encode_to_vec();
    with_expiry.push(0x12);
    with_expiry.push(exp.len() as u8);
    with_expiry.extend_from_slice(&exp);
    let mut data = Vec::new();
    delimited::push(&mut data, &with_expiry);

    let mut log = Nflog::new(DEFAULT_RETENTION);
    assert_eq!(log.merge(&data, T0), Ok(1));
    assert_eq!(log.marshal(), data);
    let view = log.query(&hook(), "g").expect("entry");
    assert_eq!(view.raw(), &with_expiry[..]);
    assert_eq!(view.firing_alerts(), [1, 2]);
    assert_eq!(view.expires_at(), Timestamp::from(at(HOUR)));
    // And through a snapshot.
    assert_eq!(Nflog::load(&log.marshal(), HOUR).expect("valid").marshal(), data);
}

// ---- GC (§4.6) ----------------------------------------------------------------------------

#[test]
fn gc_removes_what_is_not_after_now() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    let data = blob(&[
        mesh("past", &hook(), T0, at(HOUR)),
        mesh("now", &hook(), T0, at(2 * HOUR)),
        mesh("later", &hook(), T0, UnixMillis(at(2 * HOUR).0 + 1)),
    ]);
    log.merge(&data, T0).expect("ok");
    assert_eq!(log.gc(at(2 * HOUR)), Ok(2));
    assert_eq!(log.len(), 1);
    assert!(log.query(&hook(), "later").is_some());
    assert_eq!(log.gc(at(2 * HOUR)), Ok(0));
}

#[test]
fn gc_reports_zero_expiry_after_removing_the_expired() {
    let mut zero = mesh("zero", &hook(), T0, T0);
    zero.expires_at = Some(view::GO_ZERO);
    let mut missing = mesh("missing", &hook(), T0, T0);
    missing.expires_at = None;
    let data = blob(&[
        zero,
        missing,
        mesh("old", &hook(), T0, UnixMillis(T0.0 - 1)),
        mesh("new", &hook(), T0, at(HOUR)),
    ]);
    // Merge refuses them (expired on arrival); only a snapshot can hold them.
    assert_eq!(Nflog::new(HOUR).merge(&data, T0), Ok(1));
    let mut log = Nflog::load(&data, HOUR).expect("snapshot loads unfiltered");
    assert_eq!(log.len(), 4);
    assert_eq!(log.gc(T0), Err(NflogError::ZeroExpiry { removed: 1, zero: 2 }));
    assert_eq!(log.len(), 3);
    assert!(log.query(&hook(), "new").is_some());
}

#[test]
fn gc_gives_memory_back() {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    for i in 0..1000 {
        log.log(&hook(), &format!("g{i}"), &[i], &[], &no_data(), Some(HOUR), T0).expect("ok");
    }
    log.log(&hook(), "keep", &[1], &[], &no_data(), None, T0).expect("ok");
    let before = log.heap_bytes();
    assert_eq!(log.gc(at(HOUR)), Ok(1000));
    assert!(log.heap_bytes() < before / 10, "{} vs {before}", log.heap_bytes());
    assert!(log.query(&hook(), "keep").is_some());
}

// ---- properties ---------------------------------------------------------------------------

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (GO_ZERO_SECONDS..253_402_300_800i64, 0..1_000_000_000i32)
        .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos })
}

fn receiver() -> impl Strategy<Value = Receiver> {
    (
        prop::sample::select(vec!["hook", "pager", "a/b"]),
        prop::sample::select(vec!["webhook", "email"]),
        0..3u32,
    )
        .prop_map(|(n, i, idx)| Receiver::new(n, i, idx))
}

fn data_value() -> impl Strategy<Value = ReceiverDataValue> {
    use receiver_data_value::Value;
    prop_oneof![
        ".{0,4}".prop_map(|s| Some(Value::StrVal(s))),
        any::<i64>().prop_map(|n| Some(Value::IntVal(n))),
        (-1e6..1e6f64).prop_map(|d| Some(Value::DoubleVal(d))),
        Just(None),
    ]
    .prop_map(|value| ReceiverDataValue { value })
}

fn entry() -> impl Strategy<Value = MeshEntry> {
    (
        prop::collection::vec(any::<u8>(), 0..12),
        receiver(),
        prop::collection::vec(any::<u8>(), 0..3),
        any::<bool>(),
        prop::option::of(timestamp()),
        prop::collection::vec(any::<u64>(), 0..6),
        prop::collection::vec(any::<u64>(), 0..6),
        prop::collection::btree_map("[a-z]{1,3}", data_value(), 0..3),
        prop::option::of(timestamp()),
    )
        .prop_map(|(group_key, r, group_hash, resolved, ts, firing, res, data, exp)| {
            MeshEntry {
                entry: Some(Entry {
                    group_key,
                    receiver: Some(r),
                    group_hash,
                    resolved,
                    timestamp: ts,
                    firing_alerts: firing,
                    resolved_alerts: res,
                    receiver_data: data,
                }),
                expires_at: exp,
            }
        })
}

/// Entries over few keys and few timestamps, whose content is a function of (key, timestamp):
/// the merge rule keeps the local entry on a tie, so two different entries with the same key
/// and timestamp would make merge order-dependent, in Alertmanager as here.
fn gossip_entry() -> impl Strategy<Value = MeshEntry> {
    (prop::sample::select(vec!["a", "b", "c", "d"]), 0..3u32, 0..6i64).prop_map(|(gk, idx, t)| {
        let r = Receiver::new("hook", "webhook", idx);
        let ts = UnixMillis(T0.0 + t * 1000);
        let mut m = mesh(gk, &r, ts, UnixMillis(T0.0 + (t - 2) * 600_000));
        m.entry.as_mut().expect("entry").firing_alerts = vec![t as u64, u64::from(idx)];
        m
    })
}

fn apply_all(blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut log = Nflog::new(DEFAULT_RETENTION);
    for b in blobs {
        log.merge(b, T0).expect("valid");
    }
    log.marshal()
}

proptest! {
    #[test]
    fn encode_load_marshal_round_trip(m in entry()) {
        let data = blob([&m]);
        let log = Nflog::load(&data, HOUR).expect("valid");
        prop_assert_eq!(log.marshal(), data);
        let r = m.entry.as_ref().and_then(|e| e.receiver.clone()).expect("receiver");
        let view = log.table.iter().next().map(|raw| EntryView { raw }).expect("one entry");
        prop_assert_eq!(view.decode(), m.clone());
        let entry = m.entry.expect("entry");
        prop_assert_eq!(view.group_key(), &entry.group_key[..]);
        prop_assert_eq!(view.receiver(), r);
        prop_assert_eq!(view.timestamp(), entry.timestamp.unwrap_or(view::GO_ZERO));
        prop_assert_eq!(view.expires_at(), m.expires_at.unwrap_or(view::GO_ZERO));
        prop_assert_eq!(view.firing_alerts(), entry.firing_alerts);
        prop_assert_eq!(view.resolved_alerts(), entry.resolved_alerts);
    }

    /// Two encodings concatenated are one message with protobuf merge semantics; the in-place
    /// reader must see what prost sees.
    #[test]
    fn reader_agrees_with_prost_on_merged_messages(a in entry(), b in entry(), unpacked in any::<bool>()) {
        let mut raw = a.encode_to_vec();
        raw.extend_from_slice(&b.encode_to_vec());
        if unpacked {
            // An unpacked firing alert inside a third entry occurrence.
            raw.extend_from_slice(&[0x0a, 0x02, 0x30, 0x07]);
        }
        let merged = MeshEntry::decode(&raw[..]).expect("valid");
        let mut data = Vec::new();
        delimited::push(&mut data, &raw);
        let log = Nflog::load(&data, HOUR).expect("valid");
        let view = log.table.iter().next().map(|raw| EntryView { raw }).expect("one entry");
        let entry = merged.entry.clone().expect("entry");
        prop_assert_eq!(view.group_key(), &entry.group_key[..]);
        prop_assert_eq!(Some(view.receiver()), entry.receiver.clone());
        prop_assert_eq!(view.timestamp(), entry.timestamp.unwrap_or(view::GO_ZERO));
        prop_assert_eq!(view.expires_at(), merged.expires_at.unwrap_or(view::GO_ZERO));
        prop_assert_eq!(view.firing_alerts(), entry.firing_alerts);
        prop_assert_eq!(view.resolved_alerts(), entry.resolved_alerts);
        let r = entry.receiver.expect("receiver");
        let gk = String::from_utf8_lossy(&entry.group_key).into_owned();
        if gk.as_bytes() == entry.group_key && !gk.is_empty() {
            prop_assert!(log.query(&r, &gk).is_some());
        }
    }

    /// The fast reader and the general one agree wherever the fast one accepts.
    #[test]
    fn canonical_reader_agrees_with_the_general_one(a in entry(), b in entry(), join in any::<bool>()) {
        let mut raw = a.encode_to_vec();
        if join {
            raw.extend_from_slice(&b.encode_to_vec());
        }
        let any = Parsed::read_any(&raw);
        let alerts = |p: &Parsed<'_>, field| {
            let mut v = Vec::new();
            p.for_each_alert(field, |h| v.push(h));
            v
        };
        if let Some(fast) = Parsed::read_canonical(&raw) {
            prop_assert!(fast.key.same(&any.key));
            prop_assert_eq!(fast.key.group_key, any.key.group_key);
            prop_assert_eq!(fast.timestamp, any.timestamp);
            prop_assert_eq!(fast.expires_at, any.expires_at);
            prop_assert_eq!(alerts(&fast, FIELD_FIRING), alerts(&any, FIELD_FIRING));
            prop_assert_eq!(alerts(&fast, FIELD_RESOLVED), alerts(&any, FIELD_RESOLVED));
        } else {
            // Every single encoding we produce is canonical.
            prop_assert!(join);
        }
    }

    #[test]
    fn merge_is_commutative(a in prop::collection::vec(gossip_entry(), 0..8),
                            b in prop::collection::vec(gossip_entry(), 0..8)) {
        let (a, b) = (blob(&a), blob(&b));
        prop_assert_eq!(apply_all(&[a.clone(), b.clone()]), apply_all(&[b, a]));
    }

    #[test]
    fn merge_is_idempotent(a in prop::collection::vec(gossip_entry(), 0..8),
                           b in prop::collection::vec(gossip_entry(), 0..8)) {
        let (a, b) = (blob(&a), blob(&b));
        let once = apply_all(&[a.clone(), b.clone()]);
        prop_assert_eq!(apply_all(&[a.clone(), b.clone(), a.clone(), b.clone()]), once.clone());
        // Merging the result back changes nothing.
        let mut log = Nflog::load(&once, HOUR).expect("valid");
        prop_assert_eq!(log.merge(&once, T0), Ok(0));
        prop_assert_eq!(log.marshal(), once);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut log = Nflog::new(HOUR);
        let _ = log.merge(&data, T0);
        let _ = log.gc(T0);
        let _ = log.marshal();
        let _ = Nflog::load(&data, HOUR);
    }

    #[test]
    fn mutated_valid_blobs_never_panic(at in 0..227usize, byte in any::<u8>()) {
        let mut data = GOLDEN.to_vec();
        data[at] = byte;
        let mut log = Nflog::new(HOUR);
        if log.merge(&data, UnixMillis(0)).is_ok() {
            let _ = log.marshal();
            let _ = log.should_notify(&hook(), DISK_FULL_KEY, &[1], &[2], true, HOUR, T0);
            let _ = log.gc(T0);
        }
    }
}

// ---- the summary index decides as the table does -------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Log { key: u8, firing: Vec<u64>, resolved: Vec<u64>, secs: i64 },
    Merge(Vec<MeshEntry>),
    Gc { secs: i64 },
    Reload,
}

fn key_space(k: u8) -> (Receiver, String) {
    (Receiver::new("hook", "webhook", u32::from(k % 4)), format!("group-{}", k / 4))
}

fn op() -> impl Strategy<Value = Op> {
    let hashes = || prop::collection::vec(0..6u64, 0..4);
    prop_oneof![
        6 => (0..48u8, hashes(), hashes(), 0..20_000i64)
            .prop_map(|(key, firing, resolved, secs)| Op::Log { key, firing, resolved, secs }),
        2 => prop::collection::vec(
                (0..48u8, hashes(), 0..20_000i64, 1..40_000i64).prop_map(|(key, firing, t, life)| {
                    let (r, gk) = key_space(key);
                    let mut m = mesh(&gk, &r, at(Duration::from_secs(t as u64)),
                                     at(Duration::from_secs((t + life) as u64)));
                    m.entry.as_mut().expect("entry").firing_alerts = firing;
                    m
                }),
                1..30,
            ).prop_map(Op::Merge),
        1 => (0..40_000i64).prop_map(|secs| Op::Gc { secs }),
        1 => Just(Op::Reload),
    ]
}

proptest! {
    #[test]
    fn the_index_decides_as_the_table_does(ops in prop::collection::vec(op(), 1..60),
                                           flushes in prop::collection::vec(
                                               (0..48u8, prop::collection::vec(0..6u64, 0..4),
                                                prop::collection::vec(0..6u64, 0..3),
                                                any::<bool>(), 0..30_000i64, 1..20_000u64), 20)) {
        let mut log = Nflog::new(DEFAULT_RETENTION);
        for op in ops {
            match op {
                Op::Log { key, firing, resolved, secs } => {
                    let (r, gk) = key_space(key);
                    let now = at(Duration::from_secs(secs as u64));
                    let _ = log.log(&r, &gk, &firing, &resolved, &no_data(), Some(2 * HOUR), now);
                }
                Op::Merge(entries) => { let _ = log.merge(&blob(&entries), T0); }
                Op::Gc { secs } => { let _ = log.gc(at(Duration::from_secs(secs as u64))); }
                Op::Reload => log = Nflog::load(&log.marshal(), DEFAULT_RETENTION).expect("valid"),
            }
            for (key, firing, resolved, send_resolved, secs, repeat) in &flushes {
                let (r, gk) = key_space(*key);
                let flush = Flush {
                    firing, resolved, send_resolved: *send_resolved,
                    repeat_interval: Duration::from_secs(*repeat),
                    now: at(Duration::from_secs(*secs as u64)),
                };
                let fast = log.should_notify(&r, &gk, firing, resolved, flush.send_resolved,
                                             flush.repeat_interval, flush.now);
                prop_assert_eq!(fast, log.decide_from_table((&r).into(), &gk, &flush), "{} {:?}", gk, r);
            }
        }
    }
}
