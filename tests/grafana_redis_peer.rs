//! hearsay peers and Go peers in Grafana's Redis HA layout (tests/interop/grafanapeer:
//! go-redis v9 with Alertmanager's Go notification log and silences) on one real
//! `redis-server`, with an empty prefix and with one: every peer lists all four, positions
//! agree, silences and notification-log entries written on either side reach the other under
//! Grafana's keys (`silences:1`, `notificationlog:1`), and a full-state request from either
//! side is answered. hearsay's side runs its native multi-organisation states (organisations
//! 1 and 2 with flush logs): organisation 2 and the flush logs travel between the hearsay
//! peers and stay out of organisation 1, and the Go peers' full states skip the keys they
//! do not carry without a merge error.

mod util;

use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::state::Timestamp;
use hearsay::core::state::nflog::{Flush, Receiver, Row};
use hearsay::core::state::silences::{Matcher, MatcherSet, MatcherType, Query, Silence};
use hearsay::node::{Node, NodeConfig, OrgId, RedisConfig, States as _, StatesConfig};
use util::grafana::GrafanaPeer;
use util::redis::RedisServer;
use util::wait_for;

/// Grafana's keys for org 1's silences and notification log.
const SILENCES: &str = "silences:1";
const NFLOG: &str = "notificationlog:1";
/// hearsay reads membership every 5 s (Grafana's interval): a few rounds.
const SPREAD: Duration = Duration::from_secs(20);
/// The Go peers beat and read membership twice a second and settle in about a second. No
/// periodic full-state push on either side: only a request's answer carries a full state, so
/// the test can tell who answered.
const GO_FAST: [&str; 8] = [
    "-heartbeat-interval",
    "500ms",
    "-members-interval",
    "500ms",
    "-settle-interval",
    "200ms",
    "-push-pull-interval",
    "1h",
];
/// The notification-log receiver both sides use: `team-db/webhook/0`.
const GROUP: &str = "team-db";
const INTEGRATION: &str = "webhook";

fn hearsay_peer(server: &RedisServer, name: &str, prefix: &str) -> Node {
    let mut config =
        NodeConfig::grafana_redis(Some(name), RedisConfig::grafana(&server.url(), prefix));
    config.swim.push_pull_interval = Duration::from_secs(3600);
    config.settle_timeout = Duration::from_secs(1);
    // The native multi-organisation states, as a Grafana process serving organisations 1 and
    // 2 with the sync dispatch timer registers them; the Go peers carry organisation 1 only.
    let cluster = StatesConfig::grafana(&[1, 2], true).load(None).expect("empty states");
    Node::start_cluster(config, cluster, None).expect("starts")
}

fn go_peer(server: &RedisServer, name: &str, prefix: &str) -> GrafanaPeer {
    GrafanaPeer::start(name, &format!("127.0.0.1:{}", server.port), prefix, &GO_FAST)
}

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

fn set_silence(peer: &Node, comment: &str) -> String {
    set_silence_in(peer, SILENCES, comment)
}

fn set_silence_in(peer: &Node, key: &str, comment: &str) -> String {
    let t = now();
    let silence = Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "alertname", "DiskFull")],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "grafana-redis-test".into(),
        comment: comment.into(),
        ..Silence::default()
    };
    peer.set_silence(key, silence, t).expect("valid silence").as_str().to_owned()
}

fn has(peer: &Node, id: &str) -> bool {
    has_in(peer, SILENCES, id)
}

fn has_in(peer: &Node, key: &str, id: &str) -> bool {
    let query = Query { ids: vec![id.to_owned()], ..Query::default() };
    peer.query_silences(key, &query, now()).is_ok_and(|found| found.len() == 1)
}

fn flush(firing: &[u64]) -> Flush<'_> {
    Flush {
        firing,
        resolved: &[],
        send_resolved: true,
        repeat_interval: Duration::from_secs(4 * 3600),
        now: now(),
    }
}

/// hearsay's dedup sees `group_key` as already sent with exactly `firing`.
fn already_sent(peer: &Node, group_key: &str, firing: &[u64]) -> bool {
    let receiver = Receiver::new(GROUP, INTEGRATION, 0);
    let decision = peer.should_notify(NFLOG, &receiver, group_key, &flush(firing));
    decision.expect("nflog").row == Row::Unchanged
}

/// A hearsay counter series' value, 0 when absent.
fn counter(node: &Node, series: &str) -> u64 {
    let text = node.metrics_text();
    let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
    line.and_then(|l| l.rsplit(' ').next()).map_or(0, |v| v.parse().expect("a count"))
}

fn full_states_sent(node: &Node) -> u64 {
    counter(node, "alertmanager_cluster_messages_sent_total{msg_type=\"full_state\"}")
}

fn hearsay_view(peer: &Node) -> (Vec<String>, usize) {
    let members = peer.visible_members().iter().map(|m| m.name.clone()).collect();
    (members, peer.position().index)
}

fn one_cluster(prefix: &str) {
    let server = RedisServer::start();
    let key = |name: &str| match prefix {
        "" => name.to_owned(),
        p if p.ends_with(':') => format!("{p}{name}"),
        p => format!("{p}:{name}"),
    };

    // The Go peers first, with a silence and an entry written before any hearsay peer exists.
    let mut g1 = go_peer(&server, "peer-g1", prefix);
    let mut g2 = go_peer(&server, "peer-g2", prefix);
    let early = g1.set_silence("alertname", "Early", "written before hearsay started");
    g1.log(GROUP, INTEGRATION, "early", &[1, 2]);
    wait_for("g2 merges g1's updates", SPREAD, || {
        g2.silence_ids().contains(&early) && g2.entry(GROUP, INTEGRATION, "early").is_some()
    });

    // hearsay's start-up request is answered by the Go peers: nothing else can bring h1 what
    // was written before it started (no periodic push on either side).
    let h1 = hearsay_peer(&server, "peer-h1", prefix);
    wait_for("h1 gets the Go peers' full states", SPREAD, || {
        has(&h1, &early) && already_sent(&h1, "early", &[1, 2])
    });
    assert!(g1.stat("full_states_sent") >= 1 && g2.stat("full_states_sent") >= 1);
    let h2 = hearsay_peer(&server, "peer-h2", prefix);

    // Membership and positions: every peer lists the same four heartbeat keys, sorted
    // byte-wise, and stands at its own key's index.
    let mut want: Vec<String> = ["peer-g1", "peer-g2", "peer-h1", "peer-h2"].map(key).to_vec();
    want.sort();
    let at = |name: &str| want.iter().position(|k| *k == key(name)).expect("a member");
    wait_for("all four list all four at agreeing positions", SPREAD, || {
        let views = [
            ("peer-h1", hearsay_view(&h1)),
            ("peer-h2", hearsay_view(&h2)),
            ("peer-g1", g1.members()),
            ("peer-g2", g2.members()),
        ];
        views.iter().all(|(name, (members, position))| *members == want && *position == at(name))
    });

    // Silences, both ways.
    let from_hearsay = set_silence(&h1, "written on hearsay");
    let from_go = g2.set_silence("alertname", "FromGo", "written on Go");
    wait_for("the Go peers hold hearsay's silence", SPREAD, || {
        g1.silence_ids().contains(&from_hearsay) && g2.silence_ids().contains(&from_hearsay)
    });
    wait_for("hearsay holds the Go peer's silence", SPREAD, || {
        has(&h1, &from_go) && has(&h2, &from_go)
    });

    // Organisation 2 (hearsay only) and the flush logs travel between the hearsay peers on
    // their own channels, and stay out of organisation 1.
    let org2 = OrgId(2).silences_key();
    let in_org2 = set_silence_in(&h1, &org2, "organisation 2");
    wait_for("h2 holds organisation 2's silence", SPREAD, || has_in(&h2, &org2, &in_org2));
    assert!(!has(&h2, &in_org2) && !g1.silence_ids().contains(&in_org2));
    let flushed = Timestamp::from(UnixMillis(now().0 - 30_000));
    let flush_log = OrgId(1).flush_log_key();
    assert!(h1.log_flush(&flush_log, 99, flushed, None, now()).expect("logged"));
    wait_for("h2 holds the flush time", SPREAD, || {
        h2.flush_time(&flush_log, 99).expect("registered").is_some_and(|e| e.timestamp == flushed)
    });
    assert_eq!(h2.flush_time(&OrgId(2).flush_log_key(), 99).expect("registered"), None);

    // Notification-log entries, both ways: what one side sent, the other's dedup skips.
    let receiver = Receiver::new(GROUP, INTEGRATION, 0);
    let logged = h2.log_notification(NFLOG, &receiver, "h", &flush(&[7, 8]), &Default::default());
    assert!(logged.expect("logged"));
    g1.log(GROUP, INTEGRATION, "g", &[3]);
    wait_for("the Go peers hold hearsay's entry", SPREAD, || {
        g1.entry(GROUP, INTEGRATION, "h") == Some(vec![7, 8])
            && g2.entry(GROUP, INTEGRATION, "h") == Some(vec![7, 8])
    });
    wait_for("hearsay skips what the Go peer sent", SPREAD, || {
        already_sent(&h1, "g", &[3]) && already_sent(&h2, "g", &[3])
    });

    // A late Go peer's request is answered by both hearsay peers as well as the Go ones: four
    // full states, and everything written so far.
    let answered = [full_states_sent(&h1), full_states_sent(&h2)];
    let mut g3 = go_peer(&server, "peer-g3", prefix);
    wait_for("g3 asked and got four answers", SPREAD, || {
        g3.stat("requests_sent") == 1 && g3.stat("full_states_received") >= 4
    });
    assert!(full_states_sent(&h1) > answered[0] && full_states_sent(&h2) > answered[1]);
    let ids = g3.silence_ids();
    for id in [&early, &from_hearsay, &from_go] {
        assert!(ids.contains(id), "g3 lacks {id}: {ids:?}");
    }
    assert_eq!(g3.entry(GROUP, INTEGRATION, "h"), Some(vec![7, 8]));
    assert_eq!(g3.entry(GROUP, INTEGRATION, "g"), Some(vec![3]));
    for g in [&mut g1, &mut g2, &mut g3] {
        assert_eq!(g.stat("merge_errors"), 0, "{} failed to merge", g.name);
    }
    g3.shutdown();
}

#[test]
fn a_go_peer_shares_the_cluster_without_a_prefix() {
    one_cluster("");
}

#[test]
fn a_go_peer_shares_the_cluster_under_a_prefix() {
    // Without the ':', which both sides append.
    one_cluster("grafana");
}
