//! hearsay in clusters with real Go hashicorp/memberlist nodes, for memberlist v0.5.0 (what
//! Alertmanager 0.25–0.27 embed) and the latest release. Every scenario runs against both;
//! and, on the latest, hearsay's native states under Grafana's keys for organisation 1 in one
//! cluster with Go nodes carrying Alertmanager's own Go notification log and silences under
//! `notificationlog:1` and `silences:1`, as a Grafana instance on memberlist does.

mod util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use hearsay::core::UnixMillis;
use hearsay::core::state::Timestamp;
use hearsay::core::state::labels::{LabelSet, alert_hash};
use hearsay::core::state::nflog::{Flush, Receiver};
use hearsay::core::state::silences::{Matcher, MatcherSet, MatcherType, Query, Silence};
use hearsay::core::swim::{MemberChange, MemberState};
use hearsay::core::wire::SecretKey;
use hearsay::node::{Node, NodeEvent, OrgId, States as _, StatesConfig};
use serde_json::json;
use util::golang::{GoPeer, b64, unb64};
use util::{GO_FAST, alive, fast_config, fast_node, next_event, peer, state_of, wait_for};

const SETTLE: Duration = Duration::from_secs(15);

fn go(version: &str, name: &str) -> GoPeer {
    GoPeer::start(version, name, &GO_FAST)
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

fn converge(hearsay: &[&Node], gos: &mut [&mut GoPeer], names: &[&str]) {
    let want = sorted(names);
    wait_for("every node to see every other alive", SETTLE, || {
        hearsay.iter().all(|h| alive(h) == want) && gos.iter_mut().all(|g| g.alive() == want)
    });
}

macro_rules! both_versions {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn memberlist_v0_5_0() {
                super::$scenario("v0.5.0");
            }
            #[test]
            fn memberlist_v0_7_0() {
                super::$scenario("v0.7.0");
            }
        }
    )*};
}

both_versions!(
    go_seeds_and_hearsay_joins,
    hearsay_seeds_and_go_joins,
    two_go_and_two_hearsay_converge,
    user_messages_flow_both_ways,
    push_pull_carries_state_both_ways,
    a_killed_go_node_is_suspected_then_declared_dead,
    a_killed_hearsay_node_is_declared_dead_by_go,
    a_hearsay_node_that_leaves_is_left_not_failed,
    a_different_label_is_ignored_by_both,
    a_shared_key_carries_everything_both_ways,
    a_key_rotation_loses_no_broadcast,
    a_node_with_another_key_is_isolated_and_counted,
);

fn go_seeds_and_hearsay_joins(v: &str) {
    let mut g = go(v, "go-a");
    let h = fast_node("hs-b", vec![]);
    assert_eq!(h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join a Go seed"), 1);
    converge(&[&h], &mut [&mut g], &["go-a", "hs-b"]);
}

fn hearsay_seeds_and_go_joins(v: &str) {
    let h = fast_node("hs-a", vec![]);
    let mut g = go(v, "go-b");
    let reply = g.join(&[h.local_addr()]);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["n"], 1, "{reply}");
    converge(&[&h], &mut [&mut g], &["hs-a", "go-b"]);
}

fn two_go_and_two_hearsay_converge(v: &str) {
    let mut g1 = go(v, "go-1");
    let mut g2 = go(v, "go-2");
    let h1 = fast_node("hs-1", vec![]);
    let h2 = fast_node("hs-2", vec![]);
    h1.join(&[peer(g1.addr)], Duration::from_secs(10)).expect("hs-1 joins go-1");
    assert_eq!(g2.join(&[h1.local_addr()])["ok"], true);
    h2.join(&[peer(g2.addr)], Duration::from_secs(10)).expect("hs-2 joins go-2");
    converge(&[&h1, &h2], &mut [&mut g1, &mut g2], &["go-1", "go-2", "hs-1", "hs-2"]);
    // Same view means the same positions: exactly one node of the four is position 0.
    assert_eq!(
        (h1.position().index, h2.position().index),
        (2, 3),
        "names sort go-1 < go-2 < hs-1 < hs-2"
    );
}

fn user_messages_flow_both_ways(v: &str) {
    let mut g = go(v, "go-a");
    let h = fast_node("hs-b", vec![]);
    h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join");
    converge(&[&h], &mut [&mut g], &["go-a", "hs-b"]);
    let is_msg = |data: &'static [u8]| move |e: &NodeEvent| *e == NodeEvent::Message(data.to_vec());
    let go_got = |g: &mut GoPeer, data: &[u8]| {
        let want = b64(data);
        g.event(Duration::from_secs(10), |e| e["event"] == "msg" && e["data"] == want.as_str());
    };

    // Gossip (UDP packets).
    assert_eq!(g.cmd(json!({"cmd": "broadcast", "data": b64(b"go gossip")}))["ok"], true);
    next_event(&h, Duration::from_secs(10), is_msg(b"go gossip"));
    h.broadcast(b"hearsay gossip".to_vec()).expect("queued");
    go_got(&mut g, b"hearsay gossip");

    // Reliable (TCP streams).
    assert_eq!(
        g.cmd(json!({"cmd": "send_reliable", "name": "hs-b", "data": b64(b"go stream")}))["ok"],
        true
    );
    next_event(&h, Duration::from_secs(10), is_msg(b"go stream"));
    h.send_reliable("go-a", b"hearsay stream".to_vec()).expect("sent");
    go_got(&mut g, b"hearsay stream");

    // Best effort (one UDP packet).
    assert_eq!(
        g.cmd(json!({"cmd": "send_best_effort", "name": "hs-b", "data": b64(b"go packet")}))["ok"],
        true
    );
    next_event(&h, Duration::from_secs(10), is_msg(b"go packet"));
    h.send_best_effort("go-a", b"hearsay packet".to_vec()).expect("sent");
    go_got(&mut g, b"hearsay packet");

    // A large reliable message, compressed on the wire by both sides.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    h.send_reliable("go-a", big.clone()).expect("sent");
    let got = g.event(Duration::from_secs(10), |e| {
        e["event"] == "msg" && e["data"].as_str().is_some_and(|d| d.len() > 1000)
    });
    assert_eq!(unb64(got["data"].as_str().expect("data")), big);
}

fn push_pull_carries_state_both_ways(v: &str) {
    let mut g = go(v, "go-a");
    assert_eq!(g.cmd(json!({"cmd": "set_state", "data": b64(b"state of go")}))["ok"], true);
    let h = fast_node("hs-b", vec![]);
    h.set_local_state(b"state of hearsay".to_vec());
    h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join");
    let got =
        next_event(&h, Duration::from_secs(10), |e| matches!(e, NodeEvent::RemoteState { .. }));
    assert_eq!(got, NodeEvent::RemoteState { join: true, data: b"state of go".to_vec() });
    let merged = g.event(Duration::from_secs(10), |e| e["event"] == "merge");
    assert_eq!(merged["join"], true);
    assert_eq!(unb64(merged["data"].as_str().expect("data")), b"state of hearsay");
}

/// memberlist's bound for a 3-node cluster with suspicion multiplier 4, probe interval 200 ms:
/// one probe round (3 × 200 ms) until someone probes it, the longest suspicion
/// (6 × 4 × 200 ms), and a second for the verdict to spread.
const DEATH_BOUND: Duration = Duration::from_millis(600 + 4800 + 1000);

fn a_killed_go_node_is_suspected_then_declared_dead(v: &str) {
    let mut victim = go(v, "go-victim");
    let mut other = go(v, "go-other");
    let h = fast_node("hs-watcher", vec![]);
    h.join(&[peer(victim.addr)], Duration::from_secs(10)).expect("join");
    assert_eq!(other.join(&[h.local_addr()])["ok"], true);
    converge(&[&h], &mut [&mut victim, &mut other], &["go-victim", "go-other", "hs-watcher"]);
    victim.kill();
    let killed = Instant::now();
    wait_for("hearsay to suspect the killed node", DEATH_BOUND, || {
        state_of(&h, "go-victim") == Some(MemberState::Suspect)
    });
    let suspected = killed.elapsed();
    wait_for("hearsay to declare it dead", DEATH_BOUND, || {
        state_of(&h, "go-victim") == Some(MemberState::Dead)
    });
    assert!(
        killed.elapsed() <= DEATH_BOUND,
        "dead after {:?} (suspected after {suspected:?})",
        killed.elapsed()
    );
    next_event(
        &h,
        Duration::from_secs(1),
        |e| matches!(e, NodeEvent::Member { change: MemberChange::Failed, member } if member.name.as_str() == "go-victim"),
    );
}

fn a_killed_hearsay_node_is_declared_dead_by_go(v: &str) {
    let mut g = go(v, "go-watcher");
    let mut g2 = go(v, "go-other");
    let mut h = fast_node("hs-victim", vec![]);
    h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join");
    assert_eq!(g2.join(&[g.addr])["ok"], true);
    converge(&[&h], &mut [&mut g, &mut g2], &["go-watcher", "go-other", "hs-victim"]);
    h.shutdown();
    let dead = g.event(DEATH_BOUND, |e| e["event"] == "leave" && e["name"] == "hs-victim");
    assert_eq!(dead["state"], "dead", "{dead}");
}

fn a_hearsay_node_that_leaves_is_left_not_failed(v: &str) {
    let mut g = go(v, "go-watcher");
    let h = fast_node("hs-leaver", vec![]);
    h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join");
    converge(&[&h], &mut [&mut g], &["go-watcher", "hs-leaver"]);
    h.leave(Duration::from_secs(10)).expect("leave is gossiped");
    let left =
        g.event(Duration::from_secs(5), |e| e["event"] == "leave" && e["name"] == "hs-leaver");
    assert_eq!(left["state"], "left", "{left}");
}

fn a_different_label_is_ignored_by_both(v: &str) {
    let mut labelled = GoPeer::start(v, "go-prod", &[&GO_FAST[..], &["-label", "prod"]].concat());
    let mut plain = go(v, "go-plain");
    let h_plain = fast_node("hs-plain", vec![]);
    let mut config = fast_config("hs-prod", vec![]);
    config.swim.label = b"prod".to_vec();
    let h_prod = Node::start(config).expect("starts");

    // Mismatched labels: nobody gets in, either way.
    assert!(h_plain.join(&[peer(labelled.addr)], Duration::from_secs(5)).is_err());
    assert!(h_prod.join(&[peer(plain.addr)], Duration::from_secs(5)).is_err());
    assert_eq!(labelled.join(&[h_plain.local_addr()])["ok"], false);
    assert_eq!(plain.join(&[h_prod.local_addr()])["ok"], false);
    // Matching labels: in.
    h_prod.join(&[peer(labelled.addr)], Duration::from_secs(10)).expect("same label joins");
    h_plain.join(&[peer(plain.addr)], Duration::from_secs(10)).expect("no label joins");
    converge(&[&h_prod], &mut [&mut labelled], &["go-prod", "hs-prod"]);
    converge(&[&h_plain], &mut [&mut plain], &["go-plain", "hs-plain"]);
}

// ---- encryption (memberlist's keyring) ----

/// A key of `len` bytes (16, 24, 32: AES-128, -192, -256).
fn key(len: usize, fill: u8) -> SecretKey {
    SecretKey::new((0..len).map(|i| fill.wrapping_add(i as u8)).collect::<Vec<u8>>())
        .expect("valid length")
}

/// A Go peer holding `keys` (the first is the primary).
fn go_with_keys(version: &str, name: &str, keys: &[&SecretKey]) -> GoPeer {
    let mut args: Vec<String> = GO_FAST.iter().map(|s| (*s).to_owned()).collect();
    for k in keys {
        args.extend(["-secret-key".to_owned(), b64(k.as_bytes())]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    GoPeer::start(version, name, &args)
}

fn hearsay_with_keys(name: &str, keys: &[&SecretKey]) -> Node {
    let mut config = fast_config(name, vec![]);
    config.swim.secret_keys = keys.iter().map(|k| (*k).clone()).collect();
    Node::start(config).expect("starts")
}

/// `hearsay_cluster_decrypt_failures_total{transport=...}` from the node's metrics text.
fn decrypt_failures(node: &Node, transport: &str) -> u64 {
    let series = format!("hearsay_cluster_decrypt_failures_total{{transport=\"{transport}\"}} ");
    let text = node.metrics_text();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("no {series} in the metrics:\n{text}"));
    line.trim().parse().expect("a counter value")
}

fn go_keys(g: &mut GoPeer, cmd: &str, k: &SecretKey) -> Vec<String> {
    let reply = g.cmd(json!({"cmd": cmd, "data": b64(k.as_bytes())}));
    assert_eq!(reply["ok"], true, "{cmd}: {reply}");
    reply["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("b64").into())
        .collect()
}

/// Wait until hearsay received every payload in `want` (in any order), and Go every one in
/// `go_want`; fails naming what is missing.
fn deliver_all(h: &Node, g: &mut GoPeer, mut want: BTreeSet<Vec<u8>>, go_want: &[Vec<u8>]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !want.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.events().recv_timeout(left) {
            Ok(NodeEvent::Message(data)) => {
                want.remove(&data);
            }
            Ok(_) => {}
            Err(_) => panic!("hearsay never received {} broadcasts: {want:?}", want.len()),
        }
    }
    for data in go_want {
        let data = b64(data);
        g.event(Duration::from_secs(15), |e| e["event"] == "msg" && e["data"] == data.as_str());
    }
}

fn a_shared_key_carries_everything_both_ways(v: &str) {
    // AES-192: the key size ring has no implementation of, and memberlist accepts.
    let k = key(24, 1);
    let mut g = go_with_keys(v, "go-a", &[&k]);
    assert_eq!(g.cmd(json!({"cmd": "set_state", "data": b64(b"state of go")}))["ok"], true);
    let h = hearsay_with_keys("hs-b", &[&k]);
    h.set_local_state(b"state of hearsay".to_vec());
    h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join with the shared key");
    let got =
        next_event(&h, Duration::from_secs(10), |e| matches!(e, NodeEvent::RemoteState { .. }));
    assert_eq!(got, NodeEvent::RemoteState { join: true, data: b"state of go".to_vec() });
    let merged = g.event(Duration::from_secs(10), |e| e["event"] == "merge");
    assert_eq!(unb64(merged["data"].as_str().expect("data")), b"state of hearsay");
    converge(&[&h], &mut [&mut g], &["go-a", "hs-b"]);

    let is_msg = |data: &'static [u8]| move |e: &NodeEvent| *e == NodeEvent::Message(data.to_vec());
    let go_got = |g: &mut GoPeer, data: &[u8]| {
        let want = b64(data);
        g.event(Duration::from_secs(10), |e| e["event"] == "msg" && e["data"] == want.as_str());
    };
    assert_eq!(g.cmd(json!({"cmd": "broadcast", "data": b64(b"go gossip")}))["ok"], true);
    next_event(&h, Duration::from_secs(10), is_msg(b"go gossip"));
    h.broadcast(b"hearsay gossip".to_vec()).expect("queued");
    go_got(&mut g, b"hearsay gossip");
    let reliable = json!({"cmd": "send_reliable", "name": "hs-b", "data": b64(b"go stream")});
    assert_eq!(g.cmd(reliable)["ok"], true);
    next_event(&h, Duration::from_secs(10), is_msg(b"go stream"));
    h.send_reliable("go-a", b"hearsay stream".to_vec()).expect("sent");
    go_got(&mut g, b"hearsay stream");
    // Nothing went undecrypted: hearsay sealed and opened everything.
    assert_eq!((decrypt_failures(&h, "packet"), decrypt_failures(&h, "stream")), (0, 0));
}

fn a_key_rotation_loses_no_broadcast(v: &str) {
    let (old, new) = (key(16, 10), key(32, 20));
    let mut g = go_with_keys(v, "go-a", &[&old]);
    let h = hearsay_with_keys("hs-b", &[&old]);
    h.join(&[peer(g.addr)], Duration::from_secs(10)).expect("join");
    converge(&[&h], &mut [&mut g], &["go-a", "hs-b"]);

    // Each step is applied on Go first, then on hearsay, with broadcasts from both sides sent
    // after each half, so the mixed states in between (one side switched, the other not yet)
    // carry traffic too. memberlist's procedure: install everywhere, switch everywhere,
    // remove the old key everywhere.
    let mut n = 0;
    let mut send_both =
        |g: &mut GoPeer, h: &Node, to_h: &mut BTreeSet<Vec<u8>>, to_g: &mut Vec<Vec<u8>>| {
            for _ in 0..3 {
                n += 1;
                let from_go = format!("go broadcast {n}").into_bytes();
                assert_eq!(g.cmd(json!({"cmd": "broadcast", "data": b64(&from_go)}))["ok"], true);
                to_h.insert(from_go);
                let from_h = format!("hearsay broadcast {n}").into_bytes();
                h.broadcast(from_h.clone()).expect("queued");
                to_g.push(from_h);
            }
        };
    let (mut to_h, mut to_g) = (BTreeSet::new(), Vec::new());
    send_both(&mut g, &h, &mut to_h, &mut to_g);
    deliver_all(&h, &mut g, std::mem::take(&mut to_h), &std::mem::take(&mut to_g));

    let steps: [(&str, &SecretKey); 3] =
        [("add_key", &new), ("use_key", &new), ("remove_key", &old)];
    for (step, k) in steps {
        go_keys(&mut g, step, k);
        send_both(&mut g, &h, &mut to_h, &mut to_g);
        let keys = match step {
            "add_key" => h.add_key(k.clone()),
            "use_key" => h.use_key(k.clone()),
            _ => h.remove_key(k.clone()),
        }
        .expect(step);
        assert_eq!(keys.len(), if step == "remove_key" { 1 } else { 2 }, "{step}: {keys:?}");
        send_both(&mut g, &h, &mut to_h, &mut to_g);
        deliver_all(&h, &mut g, std::mem::take(&mut to_h), &std::mem::take(&mut to_g));
    }
    assert_eq!(h.keys().expect("keys"), std::slice::from_ref(&new));
    assert_eq!(go_keys(&mut g, "add_key", &new), [b64(new.as_bytes())]);
    // The primary cannot be removed, on either side.
    assert!(h.remove_key(new.clone()).is_err());
    let reply = g.cmd(json!({"cmd": "remove_key", "data": b64(new.as_bytes())}));
    assert_eq!(reply["ok"], false, "{reply}");
    // Still one cluster, and now on the new key alone: a node holding only the old key is out.
    converge(&[&h], &mut [&mut g], &["go-a", "hs-b"]);
    let stale = hearsay_with_keys("hs-stale", &[&old]);
    assert!(stale.join(&[peer(g.addr)], Duration::from_secs(5)).is_err());
}

fn a_node_with_another_key_is_isolated_and_counted(v: &str) {
    let (go_key, hs_key) = (key(32, 1), key(32, 2));
    let mut g = go_with_keys(v, "go-a", &[&go_key]);
    let h = hearsay_with_keys("hs-b", &[&hs_key]);
    // Both directions of a join fail: each side's push/pull does not decrypt at the other.
    assert!(h.join(&[peer(g.addr)], Duration::from_secs(5)).is_err());
    assert_eq!(g.join(&[h.local_addr()])["ok"], false);
    // Go's push/pull stream reached hearsay and was counted as undecryptable.
    wait_for("hearsay to count Go's stream", Duration::from_secs(5), || {
        decrypt_failures(&h, "stream") >= 1
    });
    // And the wrong key never became a member anywhere.
    assert_eq!(alive(&h), ["hs-b"]);
    assert_eq!(g.alive(), ["go-a"]);
    assert!(h.members().iter().all(|m| m.name.as_str() == "hs-b"), "{:?}", h.members());

    // A plain (keyless) hearsay node is refused by the encrypted Go node too.
    let plain = fast_node("hs-plain", vec![]);
    assert!(plain.join(&[peer(g.addr)], Duration::from_secs(5)).is_err());
    assert_eq!(g.alive(), ["go-a"]);

    // Packets are counted too. A Go node that holds hearsay's key but seals with its own
    // primary opens hearsay's push/pull, so it learns of hearsay and probes it over UDP; its
    // reply and its probes do not decrypt at hearsay, which stays alone.
    let g2 = go_with_keys(v, "go-c", &[&go_key, &hs_key]);
    assert!(h.join(&[peer(g2.addr)], Duration::from_secs(5)).is_err(), "the reply is sealed");
    wait_for("hearsay to count Go's packets", Duration::from_secs(10), || {
        decrypt_failures(&h, "packet") >= 1
    });
    assert_eq!(alive(&h), ["hs-b"]);
    assert_eq!(g.alive(), ["go-a"]);
    drop(g2);
}

/// A hearsay node carrying Grafana organisation 1's native states.
fn grafana_node(name: &str) -> Node {
    let states = StatesConfig::grafana(&[1], false);
    let cluster = states.load(None).expect("empty states");
    Node::start_cluster(fast_config(name, vec![]), cluster, None).expect("starts")
}

/// A Go node with Alertmanager's Go states under Grafana's keys for organisation 1.
fn grafana_go(name: &str) -> GoPeer {
    let keys = ["-nflog-key", "notificationlog:1", "-silences-key", "silences:1"];
    GoPeer::start("v0.7.0", name, &[&GO_FAST[..], &keys[..]].concat())
}

fn wall_now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.expect("clock after 1970").as_millis() as i64)
}

fn go_silence_ids(g: &mut GoPeer) -> BTreeSet<String> {
    let reply = g.cmd(json!({"cmd": "silences"}));
    assert_eq!(reply["ok"], true, "{reply}");
    let list = reply["silences"].as_array().expect("a list").clone();
    list.iter().map(|s| s["id"].as_str().expect("id").to_owned()).collect()
}

fn hearsay_silence_ids(h: &Node) -> BTreeSet<String> {
    let found = h.query_silences(&OrgId(1).silences_key(), &Query::default(), wall_now());
    found.expect("registered").into_iter().map(|(_, s)| s.id).collect()
}

#[test]
fn grafana_org_states_gossip_with_go_alertmanager_states() {
    let org = OrgId(1);
    let mut g1 = grafana_go("go-1");
    let mut g2 = grafana_go("go-2");
    let h1 = grafana_node("hs-1");
    let h2 = grafana_node("hs-2");
    h1.join(&[peer(g1.addr)], Duration::from_secs(10)).expect("hs-1 joins go-1");
    assert_eq!(g2.join(&[h1.local_addr()])["ok"], true);
    h2.join(&[peer(g2.addr)], Duration::from_secs(10)).expect("hs-2 joins go-2");
    converge(&[&h1, &h2], &mut [&mut g1, &mut g2], &["go-1", "go-2", "hs-1", "hs-2"]);

    // Silences, both ways, by gossip.
    let reply = g1.cmd(json!({"cmd": "set_silence", "label": "alertname", "value": "DiskFull",
                              "comment": "from Go"}));
    assert_eq!(reply["ok"], true, "{reply}");
    let go_id = reply["id"].as_str().expect("id").to_owned();
    wait_for("Go's silence on both hearsay nodes", SETTLE, || {
        hearsay_silence_ids(&h1).contains(&go_id) && hearsay_silence_ids(&h2).contains(&go_id)
    });
    let t = wall_now();
    let silence = Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "alertname", "HighLatency")],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "interop".into(),
        comment: "from hearsay".into(),
        ..Silence::default()
    };
    let hs_id = h2.set_silence(&org.silences_key(), silence, t).expect("valid").as_str().to_owned();
    wait_for("hearsay's silence on both Go nodes", SETTLE, || {
        go_silence_ids(&mut g1).contains(&hs_id) && go_silence_ids(&mut g2).contains(&hs_id)
    });

    // Notification-log entries, both ways.
    let labels: LabelSet = [("alertname".to_owned(), "DiskFull".to_owned())].into_iter().collect();
    let hash = alert_hash(&labels);
    let receiver = Receiver::new("team-db", "webhook", 0);
    let go_group = "{}:{alertname=\"DiskFull\"}";
    let reply = g2.cmd(json!({"cmd": "log_notification", "receiver": "team-db",
                              "integration": "webhook", "idx": 0, "group_key": go_group,
                              "firing": [hash]}));
    assert_eq!(reply["ok"], true, "{reply}");
    let flush = |now| Flush {
        firing: std::slice::from_ref(&hash),
        resolved: &[],
        send_resolved: false,
        repeat_interval: Duration::from_secs(4 * 3600),
        now,
    };
    wait_for("Go's entry suppresses hs-1's notification", SETTLE, || {
        let d = h1.should_notify(&org.nflog_key(), &receiver, go_group, &flush(wall_now()));
        !d.expect("registered").notify
    });
    let hs_group = "{}:{alertname=\"HighLatency\"}";
    let logged = h1.log_notification(
        &org.nflog_key(),
        &receiver,
        hs_group,
        &flush(wall_now()),
        &BTreeMap::new(),
    );
    assert!(logged.expect("logged"));
    wait_for("hearsay's entry on both Go nodes", SETTLE, || {
        [&mut g1, &mut g2].into_iter().all(|g| {
            let reply = g.cmd(json!({"cmd": "entry", "receiver": "team-db",
                                     "integration": "webhook", "idx": 0, "group_key": hs_group}));
            assert_eq!(reply["ok"], true, "{reply}");
            reply["entry"]["firing"] == json!([hash])
        })
    });

    // Late joiners get everything in the join's push/pull (a FullState of both parts).
    let mut g3 = grafana_go("go-3");
    assert_eq!(g3.join(&[h1.local_addr()])["ok"], true);
    wait_for("go-3 holds both silences", SETTLE, || {
        let ids = go_silence_ids(&mut g3);
        ids.contains(&go_id) && ids.contains(&hs_id)
    });
    let h3 = grafana_node("hs-3");
    h3.join(&[peer(g3.addr)], Duration::from_secs(10)).expect("hs-3 joins go-3");
    wait_for("hs-3 holds both silences and Go's entry", SETTLE, || {
        let ids = hearsay_silence_ids(&h3);
        let d = h3.should_notify(&org.nflog_key(), &receiver, go_group, &flush(wall_now()));
        ids.contains(&go_id) && ids.contains(&hs_id) && !d.expect("registered").notify
    });

    // Nothing either side received failed to merge.
    for h in [&h1, &h2, &h3] {
        let text = h.metrics_text();
        for key in ["notificationlog:1", "silences:1"] {
            let line = format!("hearsay_cluster_merge_errors_total{{key=\"{key}\"}} 0");
            assert!(text.contains(&line), "{line} on {}:\n{text}", h.name());
        }
        assert!(text.contains("hearsay_cluster_unknown_keys_total 0"), "{text}");
    }
    for g in [&mut g1, &mut g2, &mut g3] {
        let _ = g.cmd(json!({"cmd": "members"}));
        assert!(
            g.events_matching(|e| e["event"] == "state_error").is_empty(),
            "{} reported state errors",
            g.name
        );
    }
}
