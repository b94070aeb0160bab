//! hearsay peers on Redis Sentinel: a real master, a replica and three Sentinels on loopback
//! (`redis-server --sentinel`). The peers learn the master from the Sentinels, the master is
//! killed with SIGKILL, the Sentinels promote the replica, the peers follow, and every write
//! any peer acknowledged — before, during and after the failover — ends up on every peer.

mod util;

use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::cluster::Cluster;
use hearsay::core::state::Timestamp;
use hearsay::core::state::nflog::{Flush, Nflog, Receiver, Row};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Query, Silence, Silences, SilencesConfig,
};
use hearsay::node::{Node, NodeConfig, RedisConfig, RedisSentinel, States as _};
use util::redis::{RedisServer, Sentinel};
use util::wait_for;

const SILENCES: &str = "silences:1";
const NFLOG: &str = "notificationlog:1";
const MASTER: &str = "mymaster";
/// Generous: a failover takes the Sentinels' 1 s down-after, an election and a promotion.
const FAILOVER: Duration = Duration::from_secs(60);
const SPREAD: Duration = Duration::from_secs(30);

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

fn peer(sentinels: &[&Sentinel], master_name: &str, name: &str) -> Node {
    let addrs: Vec<String> = sentinels.iter().map(|s| s.addr()).collect();
    let redis = RedisConfig {
        sentinel: Some(RedisSentinel {
            master_name: master_name.to_owned(),
            addrs: addrs.clone(),
            username: None,
            password: None,
        }),
        ..RedisConfig::grafana(&format!("redis://{}", addrs[0]), "grafana")
    };
    let mut config = NodeConfig::grafana_redis(Some(name), redis);
    // Only a write's own publish or the full-state exchange after a reconnect can carry
    // state: the periodic push is an hour out.
    config.swim.push_pull_interval = Duration::from_secs(3600);
    config.settle_timeout = Duration::from_secs(1);
    let mut cluster = Cluster::new();
    cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
    cluster.register(NFLOG, Nflog::new(Duration::from_secs(120 * 3600)));
    Node::start_cluster(config, cluster, None).expect("starts")
}

fn members(peer: &Node) -> usize {
    peer.visible_members().len()
}

fn set_silence(peer: &Node, comment: &str) -> String {
    let t = now();
    let silence = Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "alertname", "DiskFull")],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "sentinel-test".into(),
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

/// Log a notification for `group` on `peer`, acknowledged.
fn log_notification(peer: &Node, group: &str) {
    let receiver = Receiver::new("team", "webhook", 0);
    let logged = peer.log_notification(NFLOG, &receiver, group, &flush(now()), &Default::default());
    assert!(logged.expect("nflog"), "the entry for {group} was written");
}

fn has_entry(peer: &Node, group: &str) -> bool {
    let receiver = Receiver::new("team", "webhook", 0);
    peer.should_notify(NFLOG, &receiver, group, &flush(now())).expect("nflog").row == Row::Unchanged
}

/// How many clients are subscribed to our full-state channel on `server`.
fn subscribers(server: &RedisServer) -> i64 {
    let Ok(client) = redis::Client::open(server.url()) else { return 0 };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return 0;
    };
    let numsub: redis::RedisResult<(String, i64)> =
        redis::cmd("PUBSUB").arg("NUMSUB").arg("grafana:full_state").query(&mut conn);
    numsub.map_or(0, |(_, n)| n)
}

#[test]
fn peers_follow_a_failover_and_lose_no_acknowledged_write() {
    let mut master = RedisServer::start();
    let replica_of = master.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &replica_of]);
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(MASTER, master.port)).collect();
    wait_for("the Sentinels know each other and the replica", FAILOVER, || {
        sentinels.iter().all(|s| s.known(MASTER) == (2, 1))
    });
    let refs: Vec<&Sentinel> = sentinels.iter().collect();
    let a = peer(&refs, MASTER, "peer-a");
    let b = peer(&refs, MASTER, "peer-b");
    let peers = [&a, &b];
    wait_for("both peers see both on the master", SPREAD, || {
        peers.iter().all(|p| members(p) == 2) && subscribers(&master) == 2
    });

    // Acknowledged before the failover.
    let mut silences = vec![set_silence(&a, "before, on a"), set_silence(&b, "before, on b")];
    let mut groups = vec!["before-a".to_owned(), "before-b".to_owned()];
    log_notification(&a, &groups[0]);
    log_notification(&b, &groups[1]);
    wait_for("the first writes replicate", SPREAD, || {
        peers.iter().all(|p| silences.iter().all(|id| has_silence(p, id)))
    });

    master.kill();
    // Acknowledged while there is no master: the peers keep them, and the full-state
    // exchange after the reconnect carries them.
    silences.push(set_silence(&a, "during, on a"));
    silences.push(set_silence(&b, "during, on b"));
    groups.extend(["during-a".to_owned(), "during-b".to_owned()]);
    log_notification(&a, &groups[2]);
    log_notification(&b, &groups[3]);

    wait_for("the Sentinels promote the replica", FAILOVER, || {
        sentinels.iter().all(|s| s.master_port(MASTER) == Some(replica.port))
    });
    wait_for("both peers subscribe on the new master", FAILOVER, || subscribers(&replica) == 2);

    // Acknowledged after the failover.
    silences.push(set_silence(&a, "after, on a"));
    silences.push(set_silence(&b, "after, on b"));
    groups.extend(["after-a".to_owned(), "after-b".to_owned()]);
    log_notification(&a, &groups[4]);
    log_notification(&b, &groups[5]);

    for (peer, name) in [(&a, "a"), (&b, "b")] {
        for id in &silences {
            wait_for(&format!("{name} holds silence {id}"), SPREAD, || has_silence(peer, id));
        }
        for group in &groups {
            wait_for(&format!("{name} holds the entry of {group}"), SPREAD, || {
                has_entry(peer, group)
            });
        }
    }
    wait_for("heartbeats on the new master", SPREAD, || peers.iter().all(|p| members(p) == 2));
}

#[test]
fn a_master_name_no_sentinel_knows_is_a_counted_error() {
    let master = RedisServer::start();
    let sentinel = Sentinel::start(MASTER, master.port);
    let p = peer(&[&sentinel], "no-such-master", "peer-a");
    let series = "hearsay_redis_connection_errors_total{reason=\"unknown_master\"}";
    wait_for("unknown-master errors are counted, retried", SPREAD, || {
        let text = p.metrics_text();
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 2)
    });
    assert!(p.position().blind, "no master: no membership");
    assert_eq!(subscribers(&master), 0, "nothing connects to a master nobody named");
}
