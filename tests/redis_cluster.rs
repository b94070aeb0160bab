//! hearsay peers on a real Redis Cluster: three `redis-server --cluster-enabled yes` masters
//! on loopback, created by `redis-cli --cluster create`. The peers read the slot map from a
//! seed, write each heartbeat on the master owning its slot, scan every master for members,
//! and publish on any node (pub/sub is cluster-wide). Members, positions and states agree;
//! and while the slot of one peer's heartbeat moves to another master (`CLUSTER SETSLOT`
//! `MIGRATING`/`IMPORTING`, `MIGRATE`, `SETSLOT NODE`), writes go on, the peers follow the
//! `ASK` and `MOVED` redirections, and nothing acknowledged is lost.

mod util;

use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::cluster::Cluster;
use hearsay::core::peer::redis::slot;
use hearsay::core::state::Timestamp;
use hearsay::core::state::nflog::{Flush, Nflog, Receiver, Row};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Query, Silence, Silences, SilencesConfig,
};
use hearsay::node::{Node, NodeConfig, RedisCluster, RedisConfig, States as _};
use util::redis::ClusterNodes;
use util::wait_for;

const SILENCES: &str = "silences:1";
const NFLOG: &str = "notificationlog:1";
const SPREAD: Duration = Duration::from_secs(30);

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

fn peer(seeds: &[String], name: &str) -> Node {
    let redis = RedisConfig {
        cluster: Some(RedisCluster { addrs: seeds.to_vec() }),
        ..RedisConfig::grafana(&format!("redis://{}", seeds[0]), "grafana")
    };
    let mut config = NodeConfig::grafana_redis(Some(name), redis);
    // Only a write's own publish or a full-state exchange can carry state: the periodic push
    // is an hour out.
    config.swim.push_pull_interval = Duration::from_secs(3600);
    config.settle_timeout = Duration::from_secs(1);
    let mut cluster = Cluster::new();
    cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
    cluster.register(NFLOG, Nflog::new(Duration::from_secs(120 * 3600)));
    Node::start_cluster(config, cluster, None).expect("starts")
}

fn set_silence(peer: &Node, comment: &str) -> String {
    let t = now();
    let silence = Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "alertname", "DiskFull")],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "cluster-test".into(),
        comment: comment.into(),
        ..Silence::default()
    };
    peer.set_silence(SILENCES, silence, t).expect("a valid silence is acknowledged").as_str().into()
}

fn has_silence(peer: &Node, id: &str) -> bool {
    let query = Query { ids: vec![id.to_owned()], ..Query::default() };
    peer.query_silences(SILENCES, &query, now()).is_ok_and(|found| found.len() == 1)
}

fn flush(now: UnixMillis) -> Flush<'static> {
    Flush {
        firing: &[7],
        resolved: &[],
        send_resolved: true,
        repeat_interval: Duration::from_secs(4 * 3600),
        now,
    }
}

fn log_notification(peer: &Node, group: &str) {
    let receiver = Receiver::new("team", "webhook", 0);
    let logged = peer.log_notification(NFLOG, &receiver, group, &flush(now()), &Default::default());
    assert!(logged.expect("nflog"), "the entry for {group} was written");
}

fn has_entry(peer: &Node, group: &str) -> bool {
    let receiver = Receiver::new("team", "webhook", 0);
    peer.should_notify(NFLOG, &receiver, group, &flush(now())).expect("nflog").row == Row::Unchanged
}

/// Every peer sees `n` members, and the positions are 0..n, each once.
fn agree(peers: &[&Node], n: usize) -> bool {
    let mut positions: Vec<usize> = peers
        .iter()
        .map(|p| p.position())
        .filter(|p| !p.blind && p.visible == n)
        .map(|p| p.index)
        .collect();
    positions.sort_unstable();
    positions == (0..n).collect::<Vec<_>>() && peers.iter().all(|p| p.visible_members().len() == n)
}

/// Every silence and entry in `silences` and `groups` is on every peer.
fn all_reach_all(peers: &[(&Node, &str)], silences: &[String], groups: &[String]) {
    for (peer, name) in peers {
        for id in silences {
            wait_for(&format!("{name} holds silence {id}"), SPREAD, || has_silence(peer, id));
        }
        for group in groups {
            wait_for(&format!("{name} holds the entry of {group}"), SPREAD, || {
                has_entry(peer, group)
            });
        }
    }
}

/// Heartbeat keys on the node at `port` (`SCAN` sees only its own).
fn heartbeats_on(nodes: &ClusterNodes, port: u16) -> Vec<String> {
    let out = nodes.cli(port, &["--scan", "--pattern", "grafana:*"]).unwrap_or_default();
    let mut keys: Vec<String> = out.lines().map(str::to_owned).collect();
    keys.sort();
    keys
}

#[test]
fn peers_on_three_masters_agree_and_replicate() {
    let nodes = ClusterNodes::start();
    // One seed only: the peers learn the other masters from the slot map.
    let seeds = vec![nodes.addrs()[0].clone()];
    // Names whose heartbeat slots lie on two different masters.
    let names = pick_names(&nodes, 2);
    let a = peer(&seeds, &names[0]);
    let b = peer(&nodes.addrs(), &names[1]);
    let peers = [&a, &b];
    wait_for("members and positions agree", SPREAD, || agree(&peers, 2));
    for (name, p) in names.iter().zip(peers) {
        let key = format!("grafana:{name}");
        let owner = nodes.owner(slot(&key));
        assert!(heartbeats_on(&nodes, owner).contains(&key), "{key} lives on its slot's master");
        assert!(!p.position().blind);
    }
    let silences = vec![set_silence(&a, "on a"), set_silence(&b, "on b")];
    let groups = vec!["group-a".to_owned(), "group-b".to_owned()];
    log_notification(&a, &groups[0]);
    log_notification(&b, &groups[1]);
    all_reach_all(&[(&a, "a"), (&b, "b")], &silences, &groups);
}

/// `n` peer names whose heartbeat keys hash to slots on `n` different masters.
fn pick_names(nodes: &ClusterNodes, n: usize) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut owners: Vec<u16> = Vec::new();
    for i in 0.. {
        let name = format!("peer-{i}");
        let owner = nodes.owner(slot(&format!("grafana:{name}")));
        if !owners.contains(&owner) {
            owners.push(owner);
            names.push(name);
            if names.len() == n {
                break;
            }
        }
    }
    names
}

/// `hearsay_redis_redirects_total` of `peer`.
fn redirects(peer: &Node) -> u64 {
    let text = peer.metrics_text();
    let line = text.lines().find(|l| l.starts_with("hearsay_redis_redirects_total"));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn a_heartbeat_slot_moves_while_writes_go_on_and_nothing_acknowledged_is_lost() {
    let nodes = ClusterNodes::start();
    let names = pick_names(&nodes, 2);
    let a = peer(&nodes.addrs(), &names[0]);
    let b = peer(&nodes.addrs(), &names[1]);
    let peers = [&a, &b];
    wait_for("members and positions agree", SPREAD, || agree(&peers, 2));

    let key = format!("grafana:{}", names[0]);
    let moving = slot(&key);
    let from = nodes.owner(moving);
    let to = *nodes.ports.iter().find(|p| **p != from).expect("three masters");
    let (from_id, to_id) = (nodes.id(from), nodes.id(to));
    let s = moving.to_string();
    let mut silences = Vec::new();
    let mut groups = Vec::new();
    let mut write = |round: &str| {
        silences.push(set_silence(&a, &format!("{round}, on a")));
        silences.push(set_silence(&b, &format!("{round}, on b")));
        for (p, who) in [(&a, "a"), (&b, "b")] {
            let group = format!("{round}-{who}");
            log_notification(p, &group);
            groups.push(group);
        }
    };
    write("before");
    // The slot is half-moved: the target imports, the source migrates, and the key goes
    // over with MIGRATE. A heartbeat SET now meets ASK at the source.
    nodes.cli(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]).expect("IMPORTING");
    nodes.cli(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]).expect("MIGRATING");
    let migrated = nodes
        .cli(from, &["MIGRATE", "127.0.0.1", &to.to_string(), &key, "0", "5000"])
        .expect("MIGRATE");
    assert!(migrated.contains("OK") || migrated.contains("NOKEY"), "MIGRATE: {migrated}");
    write("migrating");
    wait_for("the heartbeat is written where ASK sends it", SPREAD, || {
        heartbeats_on(&nodes, to).contains(&key) && redirects(&a) >= 1
    });
    // The move completes: every node learns the new owner, and MOVED sends the peers there.
    for port in &nodes.ports {
        nodes.cli(*port, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]).expect("SETSLOT NODE");
    }
    wait_for("every node names the new owner", SPREAD, || nodes.owner(moving) == to);
    write("after");
    wait_for("the peers keep agreeing", SPREAD, || agree(&peers, 2));
    all_reach_all(&[(&a, "a"), (&b, "b")], &silences, &groups);
    assert!(heartbeats_on(&nodes, to).contains(&key), "the heartbeat lives on the new owner");
    assert!(!heartbeats_on(&nodes, from).contains(&key), "and no longer on the old one");
}
