//! Real nodes on loopback sockets: join, gossip, reliable messages, push/pull state, leave,
//! failure detection, metrics.

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use hearsay::core::swim::{MemberChange, MemberState};
use hearsay::node::{Node, NodeConfig, NodeError, NodeEvent, States as _};
use util::{alive, fast_config, next_event, state_of, wait_for};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal")
}

fn start(name: &str, peers: Vec<String>) -> Node {
    let mut config = fast_config(name, peers);
    config.swim.suspicion_mult = 2;
    Node::start(config).expect("node starts")
}

#[test]
fn two_nodes_join_gossip_and_leave() {
    let a = start("a", vec![]);
    let b = start("b", vec![]);
    let n = b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).expect("join");
    assert_eq!(n, 1);
    wait_for("both see two members", Duration::from_secs(5), || {
        alive(&a).len() == 2 && alive(&b).len() == 2
    });
    assert_eq!(a.position().index + b.position().index, 1, "positions are 0 and 1");
    assert!(!a.position().blind && !b.position().blind);

    a.broadcast(b"hello from a".to_vec()).expect("queued");
    let got = next_event(&b, Duration::from_secs(5), |e| matches!(e, NodeEvent::Message(_)));
    assert_eq!(got, NodeEvent::Message(b"hello from a".to_vec()));

    b.send_reliable("a", b"reliably".to_vec()).expect("sent");
    let got = next_event(&a, Duration::from_secs(5), |e| matches!(e, NodeEvent::Message(_)));
    assert_eq!(got, NodeEvent::Message(b"reliably".to_vec()));

    b.leave(Duration::from_secs(5)).expect("leave completes");
    let got = next_event(
        &a,
        Duration::from_secs(5),
        |e| matches!(e, NodeEvent::Member { member, .. } if member.name.as_str() == "b"),
    );
    assert!(matches!(got, NodeEvent::Member { change: MemberChange::Left, .. }), "{got:?}");
}

#[test]
fn push_pull_carries_user_state_both_ways() {
    let a = start("a", vec![]);
    let b = start("b", vec![]);
    a.set_local_state(b"state of a".to_vec());
    b.set_local_state(b"state of b".to_vec());
    b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).expect("join");
    let at_b =
        next_event(&b, Duration::from_secs(5), |e| matches!(e, NodeEvent::RemoteState { .. }));
    assert_eq!(at_b, NodeEvent::RemoteState { join: true, data: b"state of a".to_vec() });
    let at_a =
        next_event(&a, Duration::from_secs(5), |e| matches!(e, NodeEvent::RemoteState { .. }));
    assert_eq!(at_a, NodeEvent::RemoteState { join: true, data: b"state of b".to_vec() });
}

#[test]
fn a_killed_node_is_declared_dead_and_metrics_say_so() {
    let a = start("a", vec![]);
    let mut b = start("b", vec![]);
    let c = start("c", vec![a.local_addr().to_string()]);
    b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).expect("join");
    wait_for("three members everywhere", Duration::from_secs(10), || {
        [&a, &b, &c].iter().all(|n| alive(n).len() == 3)
    });
    b.shutdown();
    let got = next_event(
        &a,
        Duration::from_secs(20),
        |e| matches!(e, NodeEvent::Member { change: MemberChange::Failed, member } if member.name.as_str() == "b"),
    );
    assert!(matches!(got, NodeEvent::Member { .. }));
    wait_for("c sees b dead too", Duration::from_secs(20), || {
        c.members().iter().any(|m| m.name.as_str() == "b" && m.state == MemberState::Dead)
    });
    // The loop republishes its gauges after the turn that emitted the event.
    let gauges = ["alertmanager_cluster_members 2", "alertmanager_cluster_failed_peers 1"];
    let mut text = String::new();
    wait_for("a's gauges count b out", Duration::from_secs(5), || {
        text = a.metrics_text();
        gauges.iter().all(|g| text.contains(g))
    });
    assert!(text.contains("alertmanager_cluster_peers_left_total 1"), "{text}");
    assert!(text.contains("alertmanager_cluster_pings_seconds_bucket"), "{text}");
}

#[test]
fn configured_peers_are_joined_in_the_background() {
    let a = start("a", vec![]);
    let b = start("b", vec![a.local_addr().to_string()]);
    wait_for("b joined a by itself", Duration::from_secs(5), || {
        alive(&a).len() == 2 && alive(&b).len() == 2
    });
}

#[test]
fn a_different_label_keeps_nodes_apart() {
    let mut config = NodeConfig::alertmanager(Some("a"), loopback(), vec![]);
    config.swim.label = b"prod".to_vec();
    let a = Node::start(config).expect("starts");
    let b = start("b", vec![]);
    let err = b.join(&[a.local_addr().to_string()], Duration::from_secs(5));
    assert!(err.is_err(), "an unlabelled node cannot join a labelled one: {err:?}");
    assert_eq!(alive(&a), vec!["a"]);
}

#[test]
fn oversized_and_excess_broadcasts_are_refused_without_blocking() {
    let a = start("a", vec![]);
    assert!(matches!(a.broadcast(vec![0; 2000]), Err(hearsay::node::NodeError::TooLarge { .. })));
    // Alone, nothing drains the queue: it fills, then refuses.
    let mut refused = false;
    for _ in 0..20_000 {
        if a.broadcast(vec![1; 100]).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "a bounded queue refuses eventually");
}

#[test]
fn ipv6_loopback_works() {
    let bind: SocketAddr = "[::1]:0".parse().expect("literal");
    let a = Node::start(NodeConfig { bind, ..fast_config("a6", vec![]) }).expect("binds [::1]");
    let b = Node::start(NodeConfig { bind, ..fast_config("b6", vec![]) }).expect("binds [::1]");
    b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).expect("join over IPv6");
    wait_for("both see two members", Duration::from_secs(5), || {
        alive(&a).len() == 2 && alive(&b).len() == 2
    });
    let seen =
        b.members().iter().find(|m| m.name.as_str() == "a6").map(|m| m.addr).expect("a6 known");
    assert!(seen.is_ipv6(), "{seen}");
}

#[test]
fn a_wildcard_bind_advertises_the_given_address_with_the_bound_port() {
    let mut config = fast_config("wild", vec![]);
    config.bind = "0.0.0.0:0".parse().expect("literal");
    config.advertise = Some("127.0.0.1:0".parse().expect("literal"));
    let a = Node::start(config).expect("starts");
    assert_eq!(
        a.advertise_addr(),
        SocketAddr::new("127.0.0.1".parse().expect("literal"), a.local_addr().port())
    );
    let b = start("b", vec![]);
    b.join(&[a.advertise_addr().to_string()], Duration::from_secs(5))
        .expect("join via the advertised address");
    wait_for("both see two members", Duration::from_secs(5), || {
        alive(&a).len() == 2 && alive(&b).len() == 2
    });
    assert_eq!(
        b.members().iter().find(|m| m.name.as_str() == "wild").map(|m| m.addr),
        Some(a.advertise_addr())
    );
}

#[test]
fn alone_with_configured_peers_is_blind_not_first() {
    let nobody = format!("127.0.0.1:{}", util::alertmanager::free_port());
    let cut_off = start("cut-off", vec![nobody]);
    let solo = start("solo", vec![]);
    let p = cut_off.position();
    assert_eq!((p.index, p.visible, p.blind), (0, 1, true));
    assert!(!solo.position().blind, "a single-node setup is simply first");
}

fn cluster_node(name: &str, peers: Vec<String>) -> Node {
    use hearsay::core::cluster::Cluster;
    use hearsay::core::state::silences::{Silences, SilencesConfig};
    let mut cluster = Cluster::new();
    cluster.register("sil", Silences::new(SilencesConfig::default(), 7));
    let mut config = fast_config(name, peers);
    config.swim.suspicion_mult = 2;
    Node::start_cluster(config, cluster, None).expect("starts")
}

#[test]
fn a_long_hold_on_the_states_never_stalls_failure_detection() {
    use hearsay::core::state::silences::{Matcher, MatcherSet, MatcherType, Silence, Silences};
    let a = cluster_node("a", vec![]);
    let b = cluster_node("b", vec![a.local_addr().to_string()]);
    wait_for("both see two members", Duration::from_secs(5), || {
        alive(&a).len() == 2 && alive(&b).len() == 2
    });
    std::thread::scope(|s| {
        // A host thread on `a` holds the states for 3 s (think: a GC of a million entries).
        let (held, hold_started) = std::sync::mpsc::channel();
        let a_ref = &a;
        let holder = s.spawn(move || {
            a_ref.with_cluster(|_| {
                held.send(()).expect("main waits");
                std::thread::sleep(Duration::from_secs(3));
            })
        });
        hold_started.recv().expect("the hold started");
        let now = hearsay::core::UnixMillis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64,
        );
        let silence = Silence {
            ends_at: hearsay::core::state::Timestamp::from(hearsay::core::UnixMillis(
                now.0 + 3_600_000,
            )),
            matcher_sets: vec![MatcherSet {
                matchers: vec![Matcher::new(MatcherType::Equal, "x", "y")],
            }],
            ..Silence::default()
        };
        let id = b.set_silence("sil", silence, now).expect("valid");
        // `a` sends over TCP while its states are held: each completion is an outcome for
        // the states' counters, which must wait for the lock without the loop waiting.
        for i in 0..20u8 {
            a.send_reliable("b", vec![i]).expect("b is a member");
        }
        let turns = a.stats().turns;
        // Suspicion here lasts 2 × 200 ms: a stalled loop on `a` would be declared dead.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            assert_eq!(
                state_of(&b, "a"),
                Some(MemberState::Alive),
                "a stopped answering while its states were held"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(a.stats().turns > turns, "a's loop kept turning while its states were held");
        holder.join().expect("holder");
        wait_for("the silence that arrived during the hold", Duration::from_secs(5), || {
            a.with_cluster(|c| {
                c.state::<Silences>("sil").and_then(|s| s.get(id.as_str())).is_some()
            }) == Some(true)
        });
    });
}

#[test]
fn nodes_settle_as_alertmanager_does() {
    // Polls every 10 × 1 s: five polls, 50 s, before the member count can count as settled.
    let slow = NodeConfig {
        swim: hearsay::core::config::SwimConfig {
            gossip_interval: Duration::from_secs(1),
            ..fast_config("slow", vec![]).swim
        },
        ..fast_config("slow", vec![])
    };
    let a = Node::start(slow.clone()).expect("starts");
    assert!(!a.is_ready());
    assert!(matches!(a.wait_ready(Duration::from_millis(50)), Err(NodeError::Timeout)));
    // The settle timeout cuts the wait short.
    let b = Node::start(NodeConfig { settle_timeout: Duration::from_millis(200), ..slow })
        .expect("starts");
    b.wait_ready(Duration::from_secs(10)).expect("ready at the settle timeout");
    // Polls every 500 ms: ready after five of them, long before the one-hour timeout.
    let c = Node::start(NodeConfig {
        settle_timeout: Duration::from_secs(3600),
        ..fast_config("c", vec![])
    })
    .expect("starts");
    c.wait_ready(Duration::from_secs(20)).expect("ready once the member count held still");
    assert!(c.is_ready() && !a.is_ready());
}
