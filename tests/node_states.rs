//! A notification pipeline's calls on two real nodes over loopback: Dedup on one node sees
//! what SetNotifies logged on the other, silences written on one mute on the other, bad calls
//! are refused with the state unchanged, and every query lands in Alertmanager's
//! query-duration histograms.

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::cluster::Cluster;
use hearsay::core::state::Timestamp;
use hearsay::core::state::labels::{LabelSet, fingerprint};
use hearsay::core::state::nflog::{Flush, Nflog, Reason, Receiver, Row};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Query, Silence, SilenceError, SilenceState, Silences,
    SilencesConfig,
};
use hearsay::node::{Node, NodeEvent, StateError, States as _};
use util::{alive, fast_config, wait_for};

const SPREAD: Duration = Duration::from_secs(10);

fn node(name: &str, peers: Vec<String>) -> Node {
    let mut cluster = Cluster::new();
    cluster.register("nfl", Nflog::new(Duration::from_secs(120 * 3600)));
    cluster.register("sil", Silences::new(SilencesConfig::default(), 3));
    let mut config = fast_config(name, peers);
    // Push/pull would copy everything eventually; pushed an hour out (its first run is
    // staggered at random within the interval), only a write's own sends reach the peer.
    config.swim.push_pull_interval = Duration::from_secs(3600);
    Node::start_cluster(config, cluster, None).expect("starts")
}

fn pair() -> (Node, Node) {
    let a = node("a", vec![]);
    let b = node("b", vec![a.local_addr().to_string()]);
    wait_for("both see two members", SPREAD, || alive(&a).len() == 2 && alive(&b).len() == 2);
    (a, b)
}

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

/// The `_count` of a histogram in a node's metrics text.
fn histogram_count(node: &Node, name: &str) -> u64 {
    let text = node.metrics_text();
    let prefix = format!("{name}_count ");
    let line = text.lines().find(|l| l.starts_with(&prefix));
    let line = line.unwrap_or_else(|| panic!("{name} not exported:\n{text}"));
    line[prefix.len()..].trim().parse().expect("a count")
}

fn receiver() -> Receiver {
    Receiver { group_name: "team".into(), integration: "webhook".into(), idx: 0 }
}

#[test]
fn dedup_on_one_node_sees_what_another_logged() {
    let (a, b) = pair();
    let group = "{}:{alertname=\"DiskFull\"}";
    let t = now();
    let firing = Flush {
        firing: &[11, 22],
        resolved: &[],
        send_resolved: true,
        repeat_interval: Duration::from_secs(4 * 3600),
        now: t,
    };
    let mut queries_on_b = 0;
    let first = b.should_notify("nfl", &receiver(), group, &firing).expect("registered");
    queries_on_b += 1;
    assert_eq!((first.notify, first.row), (true, Row::NoEntryFiring));

    // `a` is first in line: it notifies and logs; `b`, waiting its turn, must then skip.
    assert!(a.log_notification("nfl", &receiver(), group, &firing, &BTreeMap::new()).unwrap());
    wait_for("b skips what a sent", SPREAD, || {
        queries_on_b += 1;
        !b.should_notify("nfl", &receiver(), group, &firing).expect("registered").notify
    });
    let later = Flush { now: UnixMillis(t.0 + 60_000), ..firing };
    let d = b.should_notify("nfl", &receiver(), group, &later).expect("registered");
    queries_on_b += 1;
    assert_eq!((d.notify, d.row), (false, Row::Unchanged));

    // One alert resolved: with send_resolved, b must notify; a new alert likewise.
    let resolved = Flush { firing: &[11], resolved: &[22], ..later };
    let d = b.should_notify("nfl", &receiver(), group, &resolved).expect("registered");
    queries_on_b += 1;
    assert_eq!((d.notify, d.reason, d.row), (true, Reason::SomeAlertsResolved, Row::NewResolved));
    let grown = Flush { firing: &[11, 22, 33], ..later };
    let d = b.should_notify("nfl", &receiver(), group, &grown).expect("registered");
    queries_on_b += 1;
    assert_eq!((d.notify, d.row), (true, Row::NewFiring));

    // The entry lives 2 × repeat_interval, as Alertmanager's SetNotifies writes it.
    let expires = b
        .with_cluster(|c| {
            let log = c.state::<Nflog>("nfl").expect("registered");
            log.query(&receiver(), group).map(|e| e.expires_at())
        })
        .flatten()
        .expect("the entry reached b");
    assert_eq!(expires, Timestamp::from(t) + Duration::from_secs(8 * 3600));

    // A clock behind the stored entry writes nothing.
    let behind = Flush { now: UnixMillis(t.0 - 1_000), ..firing };
    assert!(!b.log_notification("nfl", &receiver(), group, &behind, &BTreeMap::new()).unwrap());

    assert_eq!(histogram_count(&b, "alertmanager_nflog_query_duration_seconds"), queries_on_b);
    assert_eq!(histogram_count(&a, "alertmanager_nflog_query_duration_seconds"), 0);
}

fn silence(name: &str, value: &str, t: UnixMillis) -> Silence {
    Silence {
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "test".into(),
        comment: "node_states".into(),
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, name, value)],
        }],
        ..Silence::default()
    }
}

#[test]
fn silences_written_on_one_node_mute_on_the_other() {
    let (a, b) = pair();
    let alert: LabelSet =
        [("alertname", "DiskFull"), ("instance", "db1")].map(|(k, v)| (k.into(), v.into())).into();
    let fp = fingerprint(&alert);
    let mut queries_on_b = 0;
    let id = a.set_silence("sil", silence("alertname", "DiskFull", now()), now()).expect("valid");
    wait_for("b mutes the alert", SPREAD, || {
        queries_on_b += 1;
        b.mutes("sil", fp, &alert, now()).expect("registered").is_muted()
    });
    let listed = b.query_silences("sil", &Query::default(), now()).expect("registered");
    queries_on_b += 1;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].0, listed[0].1.id.as_str()), (SilenceState::Active, id.as_str()));

    b.expire_silence("sil", id.as_str(), now()).expect("exists");
    wait_for("a no longer mutes it", SPREAD, || {
        !a.mutes("sil", fp, &alert, now()).expect("registered").is_muted()
    });
    let on_a = a.query_silences(
        "sil",
        &Query { ids: vec![id.as_str().into()], ..Query::default() },
        now(),
    );
    assert_eq!(on_a.expect("registered")[0].0, SilenceState::Expired);
    assert_eq!(histogram_count(&b, "alertmanager_silences_query_duration_seconds"), queries_on_b);
}

#[test]
fn bad_calls_are_refused_and_change_nothing() {
    let (a, b) = pair();
    let t = now();
    let flush = Flush {
        firing: &[1],
        resolved: &[],
        send_resolved: false,
        repeat_interval: Duration::from_secs(3600),
        now: t,
    };
    let err = a.should_notify("notificationlog:1", &receiver(), "g", &flush).unwrap_err();
    assert!(matches!(err, StateError::NoState { kind: "nflog", .. }), "{err}");
    // A silences key is not a notification log.
    let err = a.log_notification("sil", &receiver(), "g", &flush, &BTreeMap::new()).unwrap_err();
    assert!(matches!(err, StateError::NoState { .. }), "{err}");

    let mut no_matchers = silence("x", "y", t);
    no_matchers.matcher_sets.clear();
    let err = a.set_silence("sil", no_matchers, t).unwrap_err();
    assert!(matches!(err, StateError::Silence(SilenceError::Invalid { .. })), "{err}");
    let err = a.expire_silence("sil", "no-such-id", t).unwrap_err();
    assert!(matches!(err, StateError::Silence(SilenceError::NotFound)), "{err}");

    // A write that follows the refused ones arrives alone: nothing else was published.
    let id = a.set_silence("sil", silence("x", "y", t), t).expect("valid");
    wait_for("the valid silence reaches b", SPREAD, || {
        b.query_silences("sil", &Query::default(), now()).expect("registered").len() == 1
    });
    let on_b = b.query_silences("sil", &Query::default(), now()).expect("registered");
    assert_eq!(on_b[0].1.id.as_str(), id.as_str());
    assert_eq!(a.query_silences("sil", &Query::default(), now()).expect("registered").len(), 1);

    let mut plain = Node::start(fast_config("plain", vec![])).expect("starts");
    let err = plain.should_notify("nfl", &receiver(), "g", &flush).unwrap_err();
    assert!(matches!(err, StateError::NoCluster), "{err}");
    plain.shutdown();
}

#[test]
fn expired_entries_are_collected_without_a_storage_directory() {
    // No snapshots anywhere: maintenance (GC) must run anyway, every maintenance interval.
    let mut cluster = Cluster::new();
    let short = Duration::from_millis(200);
    cluster.register("nfl", Nflog::new(short));
    let config = SilencesConfig { retention: short, ..SilencesConfig::default() };
    cluster.register("sil", Silences::new(config, 3));
    let mut config = fast_config("gc", vec![]);
    config.maintenance_interval = Duration::from_millis(100);
    let n = Node::start_cluster(config, cluster, None).expect("starts");
    let t = now();
    let mut s = silence("alertname", "Gone", t);
    s.ends_at = Timestamp::from(UnixMillis(t.0 + 100));
    n.set_silence("sil", s, t).expect("valid");
    let flush = Flush {
        firing: &[1],
        resolved: &[],
        send_resolved: false,
        repeat_interval: Duration::from_millis(50),
        now: t,
    };
    assert!(
        n.log_notification("nfl", &receiver(), "{}:{a=\"b\"}", &flush, &BTreeMap::new())
            .expect("logged")
    );
    let sizes = || {
        n.with_cluster(|c| {
            let nflog = c.state::<Nflog>("nfl").expect("registered").len();
            let silences = c.state::<Silences>("sil").expect("registered").len();
            (nflog, silences)
        })
        .expect("states")
    };
    assert_eq!(sizes(), (1, 1));
    wait_for("both collected", SPREAD, || sizes() == (0, 0));
    let maintained =
        n.events().try_iter().filter(|e| matches!(e, NodeEvent::Maintained(_))).count();
    assert!(maintained > 0, "maintenance reported");
}

#[test]
fn a_full_outbound_queue_refuses_writes_and_counts_them() {
    // A node whose gossip leaves only every 10 s (no eager sends, a small core queue): its
    // queue of 65,536 updates fills, and then every write is refused before it changes
    // anything.
    let b = node("b", vec![]);
    let mut cluster = Cluster::new();
    cluster.register("nfl", Nflog::new(Duration::from_secs(120 * 3600)));
    let mut config = fast_config("full", vec![b.local_addr().to_string()]);
    config.swim.gossip_interval = Duration::from_secs(10);
    config.swim.broadcast_linger = None;
    config.swim.user_queue_len = 64;
    let a = Node::start_cluster(config, cluster, None).expect("starts");
    wait_for("a sees b", SPREAD, || alive(&a).len() == 2);
    let t = now();
    let mut refused = 0;
    let mut accepted = 0usize;
    // The loop moves gossip into the core as fast as the core accepts; the core's own user
    // queue is bounded too. Write until refusals come.
    for i in 0..1_000_000u64 {
        let flush = Flush {
            firing: &[i],
            resolved: &[],
            send_resolved: false,
            repeat_interval: Duration::from_secs(3600),
            now: t,
        };
        match a.log_notification("nfl", &receiver(), &format!("g{i}"), &flush, &BTreeMap::new()) {
            Ok(_) => accepted += 1,
            Err(StateError::QueueFull) => {
                refused += 1;
                if refused > 100 {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 100, "no refusal after {accepted} writes");
    let logged = a.with_cluster(|c| c.state::<Nflog>("nfl").expect("nflog").len()).expect("states");
    assert_eq!(logged, accepted, "a refused write changed nothing");
    let text = a.metrics_text();
    assert!(
        text.lines().any(|l| l.starts_with(
            "alertmanager_cluster_messages_publish_failures_total{msg_type=\"update\",reason=\"buffer_overflow\"}"
        ) && !l.ends_with(" 0")),
        "{text}"
    );
}
