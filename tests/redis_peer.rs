//! hearsay peers on a real `redis-server`, in Grafana's Redis HA layout: heartbeat keys and
//! positions, updates on each state's channel, the full-state request a starting peer sends,
//! and the heartbeat deleted at shutdown; TLS (server-verified and mutual), and ACL users.

mod util;

use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::cluster::{Cluster, Part};
use hearsay::core::state::Timestamp;
use hearsay::core::state::delimited;
use hearsay::core::state::nflog::{Flush, Nflog, Receiver, Row};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, MeshSilence, Query, Silence, Silences, SilencesConfig,
};
use hearsay::node::{Node, NodeConfig, RedisConfig, Snapshots, States as _};
use hearsay::tls::TlsClient;
use prost::Message;
use util::certs::TestCa;
use util::redis::{RedisServer, ServerTls};
use util::wait_for;

/// Grafana's keys for org 1's silences and notification log.
const SILENCES: &str = "silences:1";
const NFLOG: &str = "notificationlog:1";
const SPREAD: Duration = Duration::from_secs(15);

fn config(server: &RedisServer, name: &str) -> NodeConfig {
    let mut config =
        NodeConfig::grafana_redis(Some(name), RedisConfig::grafana(&server.url(), "grafana"));
    // Only a write's own publish, or the full-state request of a starting peer, can carry
    // state: the periodic push is an hour out.
    config.swim.push_pull_interval = Duration::from_secs(3600);
    config.settle_timeout = Duration::from_secs(1);
    config
}

fn peer(server: &RedisServer, name: &str) -> Node {
    start(config(server, name))
}

fn start(config: NodeConfig) -> Node {
    let mut cluster = Cluster::new();
    cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
    cluster.register(NFLOG, Nflog::new(Duration::from_secs(120 * 3600)));
    Node::start_cluster(config, cluster, None).expect("starts")
}

/// `config` with the Redis settings changed by `f`.
fn with_redis(mut config: NodeConfig, f: impl FnOnce(&mut RedisConfig)) -> NodeConfig {
    f(config.redis.as_mut().expect("a Redis config"));
    config
}

/// The value of the counter line starting with `series`, 0 when absent.
fn counter(node: &Node, series: &str) -> u64 {
    let text = node.metrics_text();
    let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
    line.and_then(|l| l.rsplit(' ').next()).map_or(0, |v| v.parse().expect("a count"))
}

fn connection_errors(node: &Node, reason: &str) -> u64 {
    counter(node, &format!("hearsay_redis_connection_errors_total{{reason=\"{reason}\"}}"))
}

/// A TLS-only Redis (no plain port) with a CA of its own, which also signs client
/// certificates; `auth_clients` is its `--tls-auth-clients`.
fn tls_server(name: &str, auth_clients: &'static str) -> (RedisServer, TestCa) {
    let dir = util::alertmanager::scratch(name);
    let ca = TestCa::new(&dir, name);
    let leaf = ca.server("redis", &[]);
    let tls = ServerTls { leaf, ca: ca.file.clone(), auth_clients };
    (RedisServer::start_tls(tls, &[]), ca)
}

/// Trust `ca` only.
fn trusting(ca: &TestCa) -> TlsClient {
    TlsClient { ca_file: Some(ca.file.clone()), ..TlsClient::default() }
}

/// The live members' heartbeat keys, sorted.
fn members(peer: &Node) -> Vec<String> {
    peer.visible_members().iter().map(|m| m.name.clone()).collect()
}

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

/// Set a silence on `peer` as a host would, returning its ID.
fn set_silence(peer: &Node, comment: &str) -> String {
    let t = now();
    let silence = Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "alertname", "DiskFull")],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "redis-test".into(),
        comment: comment.into(),
        ..Silence::default()
    };
    let id = peer.set_silence(SILENCES, silence, t).expect("valid silence");
    id.as_str().to_owned()
}

fn has(peer: &Node, id: &str) -> bool {
    let query = Query { ids: vec![id.to_owned()], ..Query::default() };
    peer.query_silences(SILENCES, &query, now()).is_ok_and(|found| found.len() == 1)
}

#[test]
fn peers_agree_on_members_and_positions() {
    let server = RedisServer::start();
    // Other data under the prefix is scanned too, and must not count as a member.
    let mut redis = server.client();
    let _: () = redis::cmd("SET").arg("grafana:notes").arg("hello").query(&mut redis).expect("SET");
    let peers: Vec<Node> =
        ["peer-b", "peer-c", "peer-a"].iter().map(|n| peer(&server, n)).collect();
    let want = ["grafana:peer-a", "grafana:peer-b", "grafana:peer-c"];
    wait_for("every peer sees all three", SPREAD, || peers.iter().all(|p| members(p) == want));
    let positions: Vec<usize> = peers.iter().map(|p| p.position().index).collect();
    assert_eq!(positions, [1, 2, 0], "byte-wise order of the heartbeat keys");
    // Grafana's meanings: members = every key under the prefix, health = keys that are no
    // live member, pings = heartbeats.
    let text = peers[0].metrics_text();
    for line in [
        "alertmanager_cluster_members 4",
        "alertmanager_cluster_health_score 1",
        "alertmanager_peer_position 1",
        "alertmanager_cluster_pings_seconds_count{peer=\"redis-server\"}",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(peers.iter().all(|p| !p.position().blind && p.position().visible == 3));

    // The heartbeat is Grafana's: decimal Unix seconds, five-minute TTL.
    let beat: String = redis::cmd("GET").arg("grafana:peer-a").query(&mut redis).expect("GET");
    let secs: i64 = beat.parse().expect("decimal seconds");
    assert!((secs - now().0 / 1000).abs() <= 10, "{secs}");
    let ttl: i64 = redis::cmd("TTL").arg("grafana:peer-a").query(&mut redis).expect("TTL");
    assert!((1..=300).contains(&ttl), "{ttl}");
}

#[test]
fn silences_replicate_and_a_starting_peer_asks_for_the_full_state() {
    let server = RedisServer::start();
    let a = peer(&server, "peer-a");
    let b = peer(&server, "peer-b");
    wait_for("a and b ready", SPREAD, || a.is_ready() && b.is_ready());
    let id = set_silence(&a, "over redis");
    wait_for("b holds a's silence", SPREAD, || has(&b, &id));
    assert!(
        a.metrics_text().contains("alertmanager_cluster_messages_sent_total{msg_type=\"update\"}")
    );
    assert!(
        b.metrics_text()
            .contains("alertmanager_cluster_messages_received_total{msg_type=\"update\"}")
    );

    // c starts after the write: only the full state a and b publish on its request brings it.
    let c = peer(&server, "peer-c");
    c.wait_ready(SPREAD).expect("c settles");
    wait_for("c holds the silence", SPREAD, || has(&c, &id));
}

#[test]
fn the_wire_layout_is_grafanas() {
    let server = RedisServer::start();
    let mut listener = server.client();
    let mut sub = listener.as_pubsub();
    sub.subscribe(&["grafana:full_state:request", "grafana:silences:1"]).expect("subscribe");
    sub.set_read_timeout(Some(SPREAD)).expect("timeout");

    let a = peer(&server, "peer-a");
    // A starting peer asks with its bare name.
    let msg = sub.get_message().expect("a request");
    assert_eq!(msg.get_channel_name(), "grafana:full_state:request");
    assert_eq!(msg.get_payload_bytes(), b"peer-a");

    // An update is a raw Part on the state's channel, holding one delimited MeshSilence.
    let id = set_silence(&a, "on the wire");
    let msg = sub.get_message().expect("an update");
    assert_eq!(msg.get_channel_name(), "grafana:silences:1");
    let part = Part::decode(msg.get_payload_bytes()).expect("a Part");
    assert_eq!(part.key, SILENCES);
    let elements = delimited::split(&part.data).expect("delimited");
    assert_eq!(elements.len(), 1);
    let mesh = MeshSilence::decode(elements[0].1).expect("a MeshSilence");
    assert_eq!(mesh.silence.expect("silence").id, id);
}

#[test]
fn shutdown_deletes_the_heartbeat() {
    let server = RedisServer::start();
    let mut a = peer(&server, "peer-a");
    let mut redis = server.client();
    let exists = |redis: &mut redis::Connection| -> i64 {
        redis::cmd("EXISTS").arg("grafana:peer-a").query(redis).expect("EXISTS")
    };
    wait_for("a's heartbeat", SPREAD, || exists(&mut redis) == 1);
    a.shutdown();
    assert_eq!(exists(&mut redis), 0);
}

#[test]
fn dedup_on_one_peer_sees_what_another_logged() {
    let server = RedisServer::start();
    let a = peer(&server, "peer-a");
    let b = peer(&server, "peer-b");
    wait_for("both see both", SPREAD, || members(&a).len() == 2 && members(&b).len() == 2);
    let receiver = Receiver::new("team-db", "webhook", 0);
    let group = "{}:{alertname=\"DiskFull\"}";
    let flush = |now| Flush {
        firing: &[7, 8],
        resolved: &[],
        send_resolved: true,
        repeat_interval: Duration::from_secs(4 * 3600),
        now,
    };
    let first = b.should_notify(NFLOG, &receiver, group, &flush(now())).expect("nflog");
    assert!(first.notify && first.row == Row::NoEntryFiring);
    assert!(
        a.log_notification(NFLOG, &receiver, group, &flush(now()), &Default::default())
            .expect("logged")
    );
    wait_for("b skips what a sent", SPREAD, || {
        b.should_notify(NFLOG, &receiver, group, &flush(now())).expect("nflog").row
            == Row::Unchanged
    });
}

#[test]
fn shutdown_writes_the_snapshots() {
    let server = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("hearsay-redis-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mut cluster = Cluster::new();
    cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
    let snapshots =
        Snapshots { dir: dir.clone(), files: vec![(SILENCES.to_owned(), "silences".to_owned())] };
    let mut a =
        Node::start_cluster(config(&server, "peer-a"), cluster, Some(snapshots)).expect("starts");
    let id = set_silence(&a, "kept on disk");
    a.shutdown();
    let bytes = std::fs::read(dir.join("silences")).expect("snapshot written");
    let _ = std::fs::remove_dir_all(&dir);
    let loaded =
        Silences::load(&bytes, SilencesConfig::default(), 1).expect("Alertmanager's format");
    assert!(loaded.get(&id).is_some());
}

#[test]
fn a_burst_of_requests_is_answered_once_a_second() {
    let server = RedisServer::start();
    let _a = peer(&server, "peer-a");
    let mut listener = server.client();
    let mut sub = listener.as_pubsub();
    sub.subscribe("grafana:full_state").expect("subscribe");
    sub.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut client = server.client();
    // Requests sent before a subscribes reach nobody: wait until it listens.
    wait_for("a subscribed to requests", SPREAD, || {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("grafana:full_state:request")
            .query(&mut client)
            .expect("PUBSUB NUMSUB");
        n >= 1
    });
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("grafana:full_state:request")
            .arg("spammer")
            .query(&mut client)
            .expect("PUBLISH");
    }
    let mut answers = 0u64;
    while started.elapsed() < Duration::from_millis(2500) {
        if sub.get_message().is_ok() {
            answers += 1;
        }
    }
    let bound = started.elapsed().as_secs() + 2;
    assert!(answers >= 1, "no answer to 100 requests");
    assert!(answers <= bound, "{answers} full states for 100 requests in {:?}", started.elapsed());
}

#[test]
fn writes_made_while_redis_was_down_arrive_when_it_returns() {
    let mut server = RedisServer::start();
    let a = peer(&server, "peer-a");
    let b = peer(&server, "peer-b");
    wait_for("both see both", SPREAD, || members(&a).len() == 2 && members(&b).len() == 2);
    server.kill();
    // Acknowledged while Redis is down: queued, and exchanged in full states at the
    // reconnect — the periodic push is an hour out, so nothing else can carry it.
    let id = set_silence(&a, "written during the outage");
    server.restart();
    wait_for("b holds the silence written during the outage", Duration::from_secs(30), || {
        has(&b, &id)
    });
    wait_for("heartbeats back in the empty Redis", Duration::from_secs(30), || {
        members(&a).len() == 2 && members(&b).len() == 2
    });
}

#[test]
fn with_redis_gone_writes_are_refused_once_the_queue_is_full() {
    let mut server = RedisServer::start();
    let a = peer(&server, "peer-a");
    wait_for("a sees itself", SPREAD, || members(&a).len() == 1);
    server.kill();
    let receiver = Receiver::new("team", "webhook", 0);
    let (mut accepted, mut refused) = (0u64, 0u64);
    for i in 0..2_000_000u64 {
        let flush = Flush {
            firing: &[i],
            resolved: &[],
            send_resolved: false,
            repeat_interval: Duration::from_secs(3600),
            now: now(),
        };
        match a.log_notification(NFLOG, &receiver, &format!("g{i}"), &flush, &Default::default()) {
            Ok(_) => accepted += 1,
            Err(hearsay::node::StateError::QueueFull) => {
                refused += 1;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 1, "no refusal after {accepted} writes: {}", a.metrics_text());
    let text = a.metrics_text();
    assert!(
        text.lines().any(|l| l.starts_with(
            "alertmanager_cluster_messages_publish_failures_total{msg_type=\"update\",reason=\"buffer_overflow\"}"
        ) && !l.ends_with(" 0")),
        "{text}"
    );
}

#[test]
fn a_wrong_password_is_an_error_line_naming_the_address() {
    util::logs::capture();
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    let url = format!("redis://:wrong@127.0.0.1:{}/0", server.port);
    let mut cluster = Cluster::new();
    cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
    let config = NodeConfig::grafana_redis(Some("peer-w"), RedisConfig::grafana(&url, "grafana"));
    let a = Node::start_cluster(config, cluster, None).expect("a wrong password is no start error");
    let address = format!("127.0.0.1:{}", server.port);
    wait_for("an error line naming the address", SPREAD, || {
        util::logs::matching(&address)
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("WRONGPASS"))
    });
    assert!(a.position().blind, "it sees no members");
    // Retries go on with backoff, but the line is not repeated within the minute.
    std::thread::sleep(Duration::from_secs(2));
    let lines = util::logs::matching(&address);
    assert_eq!(lines.iter().filter(|l| l.contains("command connection")).count(), 1, "{lines:?}");
}

#[test]
fn undecodable_payloads_are_counted_and_logged() {
    util::logs::capture();
    let server = RedisServer::start();
    let a = peer(&server, "peer-a");
    let mut client = server.client();
    wait_for("a subscribed", SPREAD, || {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("grafana:silences:1")
            .query(&mut client)
            .expect("PUBSUB NUMSUB");
        n >= 1
    });
    // Not a Part at all, then a Part whose silence data is garbage.
    let bad_part = Part { key: SILENCES.into(), data: vec![0xff; 8] }.encode_to_vec();
    for payload in [vec![0xff, 0xff, 0xff], bad_part] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("grafana:silences:1")
            .arg(payload)
            .query(&mut client)
            .expect("PUBLISH");
    }
    wait_for("both counted", SPREAD, || {
        let text = a.metrics_text();
        text.contains("hearsay_cluster_decode_errors_total 1\n")
            && text.contains("hearsay_cluster_merge_errors_total{key=\"silences:1\"} 1")
    });
    wait_for("a log line", SPREAD, || {
        !util::logs::matching("could not be decoded or merged").is_empty()
    });
}

#[test]
fn a_full_state_larger_than_the_pubsub_buffer_limit_arrives_whole() {
    // 520,000 entries marshal to about 36 MB, past Redis' default 32 MB hard limit on a
    // subscriber's output buffer: sent as one message, it would cut every subscriber off.
    const ENTRIES: u64 = 520_000;
    let server = RedisServer::start();
    let a = peer(&server, "peer-a");
    let receiver = Receiver::new("team", "webhook", 0);
    let t = now();
    let size = a
        .with_cluster(|c| {
            let log = c.state_mut::<Nflog>(NFLOG).expect("nflog");
            for i in 0..ENTRIES {
                log.log(
                    &receiver,
                    &format!("{{}}:{{g=\"{i}\"}}"),
                    &[i],
                    &[],
                    &Default::default(),
                    None,
                    t,
                )
                .expect("logged");
            }
            // Written straight into the state: nothing is queued for publishing.
            c.marshal(NFLOG).map_or(0, |b| b.len())
        })
        .expect("states");
    assert!(size > 32 << 20, "{size} bytes");
    // b starts, settles, asks for full states; a answers in chunks of at most 1 MiB.
    let b = peer(&server, "peer-b");
    let held = |n: &Node| {
        n.with_cluster(|c| c.state::<Nflog>(NFLOG).map_or(0, Nflog::len)).expect("states")
    };
    wait_for("b holds every entry", Duration::from_secs(120), || held(&b) as u64 == ENTRIES);
    let sent = a
        .metrics_text()
        .lines()
        .find_map(|l| {
            l.strip_prefix("alertmanager_cluster_messages_sent_total{msg_type=\"full_state\"} ")
        })
        .and_then(|v| v.parse::<u64>().ok())
        .expect("full states counted");
    assert!(sent >= 32, "{sent} full-state messages for {size} bytes");
    let mut client = server.client();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut client).expect("CLIENT LIST");
    assert!(
        clients.lines().filter(|l| l.contains("cmd=subscribe") || l.contains("sub=")).count() >= 2,
        "{clients}"
    );
}

#[test]
fn a_redis_host_name_is_resolved_off_the_loop() {
    let server = RedisServer::start();
    let url = format!("redis://localhost:{}/0", server.port);
    let mut cluster = Cluster::new();
    cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
    let config = NodeConfig::grafana_redis(Some("peer-n"), RedisConfig::grafana(&url, "grafana"));
    let a = Node::start_cluster(config, cluster, None).expect("starts");
    wait_for("a sees its own heartbeat through a named Redis", SPREAD, || {
        members(&a) == ["grafana:peer-n"]
    });
    assert!(!a.position().blind);
}

#[test]
fn peers_replicate_over_tls() {
    let (server, ca) = tls_server("redis-tls", "no");
    // A `rediss://` URL: TLS because of the scheme, trusting the test's CA.
    assert!(server.url().starts_with("rediss://"));
    let tls = |c: &mut RedisConfig| c.tls = Some(trusting(&ca));
    let a = start(with_redis(config(&server, "peer-a"), tls));
    let b = start(with_redis(config(&server, "peer-b"), tls));
    let want = ["grafana:peer-a", "grafana:peer-b"];
    wait_for("a and b see each other over TLS", SPREAD, || {
        members(&a) == want && members(&b) == want
    });
    let id = set_silence(&a, "over tls");
    wait_for("b holds a's silence", SPREAD, || has(&b, &id));
    let id = set_silence(&b, "and back");
    wait_for("a holds b's silence", SPREAD, || has(&a, &id));
    assert_eq!(connection_errors(&a, "tls") + connection_errors(&b, "tls"), 0);
    // The server has no plain port: every connection it lists is a TLS one, ours among them.
    let tls = server.tls().expect("a TLS server");
    let clients = server.cli_tls(tls, &tls.leaf, &["CLIENT", "LIST"]).expect("CLIENT LIST");
    // Both peers' subscriber connections (`flags=P`), besides their command connections.
    assert!(clients.lines().filter(|l| l.contains(" flags=P ")).count() >= 2, "{clients}");
}

#[test]
fn peers_replicate_over_mutual_tls() {
    let (server, ca) = tls_server("redis-mtls", "yes");
    // A `redis://` URL with TLS turned on by the settings (Grafana's `ha_redis_tls_enabled`).
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let mutual = |name: &str, server_name: Option<&str>| {
        let leaf = ca.client(name);
        let tls = TlsClient {
            cert_file: Some(leaf.cert),
            key_file: Some(leaf.key),
            server_name: server_name.map(str::to_owned),
            ..trusting(&ca)
        };
        let config = with_redis(config(&server, name), |c| {
            c.url.clone_from(&url);
            c.tls = Some(tls);
        });
        start(config)
    };
    // a verifies the URL's IP address, b the name `localhost`: both are in the certificate.
    let a = mutual("peer-a", None);
    let b = mutual("peer-b", Some("localhost"));
    let want = ["grafana:peer-a", "grafana:peer-b"];
    wait_for("a and b see each other over mutual TLS", SPREAD, || {
        members(&a) == want && members(&b) == want
    });
    let id = set_silence(&b, "over mutual tls");
    wait_for("a holds b's silence", SPREAD, || has(&a, &id));
    assert_eq!(connection_errors(&a, "tls") + connection_errors(&b, "tls"), 0);
}

#[test]
fn refused_tls_handshakes_are_logged_counted_and_retried() {
    util::logs::capture();
    let (server, ca) = tls_server("redis-tls-refused", "yes");
    let other = TestCa::new(&util::alertmanager::scratch("redis-tls-other"), "other");
    let leaf = ca.client("peer-ok");
    let own_cert = TlsClient {
        cert_file: Some(leaf.cert.clone()),
        key_file: Some(leaf.key.clone()),
        ..trusting(&ca)
    };
    let cases = [
        // Redis wants a client certificate and gets none.
        ("peer-nocert", trusting(&ca), "CertificateRequired"),
        // We do not trust the server's CA.
        (
            "peer-otherca",
            TlsClient { ca_file: Some(other.file.clone()), ..own_cert.clone() },
            "UnknownIssuer",
        ),
        // The server's certificate is not for this name.
        (
            "peer-badname",
            TlsClient { server_name: Some("wrong.example".into()), ..own_cert },
            "not valid for name",
        ),
    ];
    let nodes: Vec<(Node, &str)> = cases
        .into_iter()
        .map(|(name, tls, why)| {
            (start(with_redis(config(&server, name), |c| c.tls = Some(tls))), why)
        })
        .collect();
    let address = format!("127.0.0.1:{}", server.port);
    for (node, why) in &nodes {
        wait_for(&format!("a TLS error line saying {why}"), SPREAD, || {
            util::logs::matching(&address)
                .iter()
                .any(|l| l.starts_with("ERROR") && l.contains("TLS") && l.contains(why))
        });
        // Retried with backoff, each failure counted: the count keeps growing.
        wait_for(&format!("retries after {why}"), SPREAD, || connection_errors(node, "tls") >= 6);
        assert!(node.position().blind, "{why}: it sees no members");
    }
    // Still running and still retrying, with backoff: two links, each waiting up to 10 s
    // between tries, fail a handful of times where a hot loop would fail thousands of times.
    for (node, why) in &nodes {
        let before = connection_errors(node, "tls");
        wait_for(&format!("{why}: more retries"), SPREAD, || {
            connection_errors(node, "tls") > before
        });
        assert!(connection_errors(node, "tls") < 200, "{why}: {}", node.metrics_text());
        assert_eq!(connection_errors(node, "io") + connection_errors(node, "closed"), 0, "{why}");
    }
}

#[test]
fn an_acl_user_with_its_password_works_and_a_wrong_one_is_retried() {
    util::logs::capture();
    // The default user's password is another: only alice's credentials get in.
    let acl = ["--user", "alice", "on", ">alice-pw", "~*", "&*", "+@all"];
    let server = RedisServer::start_with(&[&["--requirepass", "admin-pw"][..], &acl[..]].concat());
    let url = format!("redis://127.0.0.1:{}", server.port);
    let alice = |name: &str, password: &str| {
        with_redis(config(&server, name), |c| {
            c.url.clone_from(&url);
            c.username = Some("alice".into());
            c.password = Some(password.into());
            c.db = Some(3);
        })
    };
    let a = start(alice("peer-a", "alice-pw"));
    let b = start(alice("peer-b", "alice-pw"));
    let want = ["grafana:peer-a", "grafana:peer-b"];
    wait_for("a and b see each other as alice", SPREAD, || {
        members(&a) == want && members(&b) == want
    });
    let id = set_silence(&a, "as alice");
    wait_for("b holds a's silence", SPREAD, || has(&b, &id));
    // The heartbeats are in database 3, the one configured.
    let client = redis::Client::open(format!("redis://alice:alice-pw@127.0.0.1:{}/3", server.port));
    let mut redis = client.and_then(|c| c.get_connection()).expect("alice connects");
    let keys: Vec<String> = redis::cmd("KEYS").arg("grafana:*").query(&mut redis).expect("KEYS");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(connection_errors(&a, "auth"), 0);

    let x = start(alice("peer-x", "not-alice-pw"));
    let address = format!("127.0.0.1:{}", server.port);
    wait_for("an error line saying WRONGPASS", SPREAD, || {
        util::logs::matching(&address)
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("WRONGPASS"))
    });
    wait_for("the wrong password is retried", SPREAD, || connection_errors(&x, "auth") >= 4);
    assert!(x.position().blind);
    assert_eq!(members(&a), want, "x never got in");
}

#[test]
fn unusable_tls_or_database_settings_fail_the_start() {
    let missing = std::path::PathBuf::from("/nonexistent/hearsay-ca.pem");
    let url = "rediss://127.0.0.1:1/0";
    let tls = RedisConfig {
        tls: Some(TlsClient { ca_file: Some(missing), ..TlsClient::default() }),
        ..RedisConfig::grafana(url, "grafana")
    };
    let db = RedisConfig { db: Some(-1), ..RedisConfig::grafana(url, "grafana") };
    for (redis, want) in [(tls, "/nonexistent/hearsay-ca.pem"), (db, "negative")] {
        let mut cluster = Cluster::new();
        cluster.register(SILENCES, Silences::new(SilencesConfig::default(), 7));
        let config = NodeConfig::grafana_redis(Some("peer-bad"), redis);
        match Node::start_cluster(config, cluster, None) {
            Err(e) => assert!(e.to_string().contains(want), "{e}"),
            Ok(_) => panic!("started with an unusable setting ({want})"),
        }
    }
}
