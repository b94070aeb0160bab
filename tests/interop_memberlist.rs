//! hearsay in clusters with real Go hashicorp/memberlist nodes, for memberlist v0.5.0 (what
//! Alertmanager 0.25–0.27 embed) and the latest release. Every scenario runs against both.

mod util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hearsay::core::swim::{MemberChange, MemberState};
use hearsay::core::wire::SecretKey;
use hearsay::node::{Node, NodeEvent};
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
