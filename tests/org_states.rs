//! Grafana's per-organisation native states on real nodes over loopback: two organisations on
//! one pair of nodes stay apart (an entry, a silence or a flush time of one never shows in the
//! other), each organisation's snapshots are written to and loaded from their own files, and
//! the per-key metrics count each organisation on its own.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::state::Timestamp;
use hearsay::core::state::labels::{LabelSet, fingerprint};
use hearsay::core::state::nflog::{Flush, Receiver, Row};
use hearsay::core::state::silences::{Matcher, MatcherSet, MatcherType, Query, Silence};
use hearsay::node::{LayoutError, Node, OrgId, StateError, States as _, StatesConfig};
use util::{alive, fast_config, wait_for};

const SPREAD: Duration = Duration::from_secs(10);
const ORG1: OrgId = OrgId(1);
const ORG2: OrgId = OrgId(2);

fn states() -> StatesConfig {
    StatesConfig::grafana(&[1, 2], true)
}

fn node(name: &str, peers: Vec<String>, dir: Option<&Path>) -> Node {
    let states = states();
    let cluster = states.load(dir).expect("snapshots load");
    let mut config = fast_config(name, peers);
    // Only a write's own sends reach the peer (push/pull an hour out).
    config.swim.push_pull_interval = Duration::from_secs(3600);
    let snapshots = dir.map(|d| states.snapshots(d.to_path_buf()));
    Node::start_cluster(config, cluster, snapshots).expect("starts")
}

fn pair() -> (Node, Node) {
    let a = node("a", vec![], None);
    let b = node("b", vec![a.local_addr().to_string()], None);
    wait_for("both see two members", SPREAD, || alive(&a).len() == 2 && alive(&b).len() == 2);
    (a, b)
}

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

fn receiver() -> Receiver {
    Receiver::new("team", "webhook", 0)
}

fn flush(t: UnixMillis) -> Flush<'static> {
    Flush {
        firing: &[11],
        resolved: &[],
        send_resolved: false,
        repeat_interval: Duration::from_secs(4 * 3600),
        now: t,
    }
}

fn silence(t: UnixMillis) -> Silence {
    Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "alertname", "DiskFull")],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "org-test".into(),
        comment: "org 2 only".into(),
        ..Silence::default()
    }
}

fn alert() -> LabelSet {
    [("alertname".to_owned(), "DiskFull".to_owned())].into_iter().collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearsay-orgs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn two_organisations_on_one_pair_of_nodes_stay_apart() {
    let (a, b) = pair();
    let group = "{}:{alertname=\"DiskFull\"}";
    let t = now();
    let (nfl1, nfl2) = (ORG1.nflog_key(), ORG2.nflog_key());
    assert!(a.log_notification(&nfl1, &receiver(), group, &flush(t), &BTreeMap::new()).unwrap());
    wait_for("org 1's entry on b", SPREAD, || {
        !b.should_notify(&nfl1, &receiver(), group, &flush(t)).expect("registered").notify
    });
    let d = b.should_notify(&nfl2, &receiver(), group, &flush(t)).expect("registered");
    assert_eq!(d.row, Row::NoEntryFiring, "org 2 never notified this group");

    let (sil1, sil2) = (ORG1.silences_key(), ORG2.silences_key());
    let fp = fingerprint(&alert());
    a.set_silence(&sil2, silence(t), t).expect("valid");
    wait_for("org 2's silence mutes on b", SPREAD, || {
        b.mutes(&sil2, fp, &alert(), now()).expect("registered").is_muted()
    });
    assert!(!b.mutes(&sil1, fp, &alert(), now()).expect("registered").is_muted());
    assert!(b.query_silences(&sil1, &Query::default(), now()).expect("registered").is_empty());

    let (fl1, fl2) = (ORG1.flush_log_key(), ORG2.flush_log_key());
    let first_flush = Timestamp::from(UnixMillis(t.0 - 30_000));
    let day = Some(Duration::from_secs(24 * 3600));
    assert!(a.log_flush(&fl1, 42, first_flush, day, t).expect("valid"));
    wait_for("org 1's flush time on b", SPREAD, || {
        b.flush_time(&fl1, 42).expect("registered").is_some()
    });
    let entry = b.flush_time(&fl1, 42).expect("registered").expect("replicated");
    assert_eq!(entry.timestamp, first_flush);
    assert_eq!(entry.expires_at, Timestamp::from(UnixMillis(t.0 + 24 * 3_600_000)));
    assert_eq!(b.flush_time(&fl2, 42).expect("registered"), None);
    // An earlier flush time than the stored one is not written.
    assert!(!a.log_flush(&fl1, 42, Timestamp::from(UnixMillis(t.0 - 60_000)), day, t).unwrap());
    // A group that ended is forgotten everywhere.
    assert!(a.delete_flush(&fl1, 42).expect("registered"));
    wait_for("the deletion on b", SPREAD, || b.flush_time(&fl1, 42).expect("ok").is_none());
    assert!(!a.delete_flush(&fl1, 42).expect("registered"), "nothing left to delete");

    // Per-key series: b queried org 1's log until the entry arrived, and org 2's once.
    let text = b.metrics_text();
    for key in [&nfl1, &nfl2, &sil1, &sil2, &fl1, &fl2] {
        let metric = if key.starts_with("notif") {
            "alertmanager_nflog_query_duration_seconds_count"
        } else if key.starts_with("sil") {
            "alertmanager_silences_query_duration_seconds_count"
        } else {
            "alertmanager_flushlog_query_duration_seconds_count"
        };
        let prefix = format!("{metric}{{key=\"{key}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| {
            panic!("{prefix} missing:\n{text}");
        });
        let count: u64 = line[prefix.len()..].trim().parse().expect("a count");
        assert!(count >= 1, "{line}");
    }
    assert!(text.contains("alertmanager_flushlog_queries_total{key=\"flushlog:1\"}"), "{text}");
    assert!(!text.contains("alertmanager_nflog_queries_total "), "no unlabelled nfl series");
}

#[test]
fn alertmanagers_keys_are_absent_on_a_grafana_node() {
    let n = node("grafana-only", vec![], None);
    let t = now();
    let err = n.should_notify("nfl", &receiver(), "g", &flush(t)).unwrap_err();
    assert!(matches!(err, StateError::NoState { ref key, .. } if key == "nfl"), "{err}");
    // A flush-log call on a silences key names what it wanted.
    let err = n.log_flush(&ORG1.silences_key(), 1, Timestamp::from(t), None, t).unwrap_err();
    assert!(matches!(err, StateError::NoState { kind: "flush log", .. }), "{err}");
    let err = n.log_flush(&ORG1.flush_log_key(), 0, Timestamp::from(t), None, t).unwrap_err();
    assert!(matches!(err, StateError::FlushLog(_)), "fingerprint 0: {err}");
    let twice = StatesConfig::grafana(&[3, 3], false);
    assert!(matches!(twice.load(None), Err(LayoutError::DuplicateOrg(3))));
    let without_flush_log = StatesConfig::grafana(&[3], false).states();
    let keys: Vec<_> = without_flush_log.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["notificationlog:3", "silences:3"]);
}

/// A node that dies without its last snapshot (never shut down: as a crash leaves it) comes
/// back with the notification-log entries, silences and flush-log entries it acknowledged, from
/// the journal beside the snapshots; a clean shutdown then folds the journal into them.
#[test]
fn writes_since_the_last_snapshot_come_back_from_the_journal() {
    let dir = scratch("journal");
    let n = node("journal", vec![], Some(&dir));
    let t = now();
    let group = "{}:{alertname=\"DiskFull\"}";
    n.log_notification(&ORG1.nflog_key(), &receiver(), group, &flush(t), &BTreeMap::new())
        .expect("logged");
    let id = n.set_silence(&ORG2.silences_key(), silence(t), t).expect("valid");
    n.log_flush(&ORG2.flush_log_key(), 7, Timestamp::from(t), None, t).expect("logged");
    // No shutdown, so no snapshot: only the journal holds the writes.
    std::mem::forget(n);
    let names = || -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("storage dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    };
    assert_eq!(names(), ["flushlog:2.journal.1", "nflog:1.journal.1", "silences:2.journal.1"]);

    let mut again = node("journal-again", vec![], Some(&dir));
    let d = again.should_notify(&ORG1.nflog_key(), &receiver(), group, &flush(t)).expect("ok");
    assert!(!d.notify, "org 1's entry came back from its journal");
    let listed = again.query_silences(&ORG2.silences_key(), &Query::default(), t).expect("ok");
    assert_eq!(listed.iter().map(|(_, s)| s.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(again.flush_time(&ORG2.flush_log_key(), 7).expect("ok").is_some());
    again.shutdown();
    assert_eq!(
        names(),
        ["flushlog:1", "flushlog:2", "nflog:1", "nflog:2", "silences:1", "silences:2"],
        "the last snapshot covers the journal, which is gone"
    );
}

#[test]
fn each_organisation_has_its_own_snapshot_files() {
    let dir = scratch("snap");
    let mut n = node("snap", vec![], Some(&dir));
    let t = now();
    let group = "{}:{alertname=\"DiskFull\"}";
    n.log_notification(&ORG1.nflog_key(), &receiver(), group, &flush(t), &BTreeMap::new())
        .expect("logged");
    let id = n.set_silence(&ORG2.silences_key(), silence(t), t).expect("valid");
    n.log_flush(&ORG2.flush_log_key(), 7, Timestamp::from(t), None, t).expect("logged");
    n.shutdown();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("storage dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["flushlog:1", "flushlog:2", "nflog:1", "nflog:2", "silences:1", "silences:2"],
        "one set per organisation, nothing else"
    );

    let mut again = node("snap-again", vec![], Some(&dir));
    let d = again.should_notify(&ORG1.nflog_key(), &receiver(), group, &flush(t)).expect("ok");
    assert!(!d.notify, "org 1's entry came back from nflog:1");
    let d = again.should_notify(&ORG2.nflog_key(), &receiver(), group, &flush(t)).expect("ok");
    assert!(d.notify, "org 2's log was empty");
    let listed = again.query_silences(&ORG2.silences_key(), &Query::default(), t).expect("ok");
    assert_eq!(listed.iter().map(|(_, s)| s.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(again.query_silences(&ORG1.silences_key(), &Query::default(), t).unwrap().is_empty());
    assert!(again.flush_time(&ORG2.flush_log_key(), 7).expect("ok").is_some());
    assert!(again.flush_time(&ORG1.flush_log_key(), 7).expect("ok").is_none());
    again.shutdown();

    // A corrupt file of one organisation stops the start, naming that file.
    std::fs::write(dir.join("flushlog:2"), [0x05, 1]).expect("write");
    let err = states().load(Some(&dir)).expect_err("corrupt");
    assert!(err.to_string().contains("flushlog:2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
