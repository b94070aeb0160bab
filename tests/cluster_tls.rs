//! Alertmanager's TLS transport (`--cluster.tls-config`): hearsay nodes with each other and
//! with stock Alertmanagers (the latest release and Debian's 0.25), mutual TLS, and a node whose certificate comes from
//! another CA, which both kinds refuse. Certificates are made by each test.

mod util;

use std::path::Path;
use std::time::Duration;

use hearsay::node::{Node, NodeConfig};
use hearsay::tls::ClusterTls;

use util::alertmanager::{
    Alertmanager, Hearsay, Server, add_silence, debian, latest, scratch, summary,
};
use util::certs::{Leaf, TestCa};
use util::wait_for;

const SPREAD: Duration = Duration::from_secs(30);

/// The mutual-TLS `--cluster.tls-config` file docs/security.md shows, for `leaf` (server and
/// client certificate alike) trusting `ca`: the files it names are copied into `dir` beside it,
/// as operators lay them out.
fn tls_flag(dir: &Path, ca: &TestCa, leaf: &Leaf) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("dir");
    for (from, name) in
        [(&ca.file, "ca.pem"), (&leaf.cert, "node.pem"), (&leaf.key, "node-key.pem")]
    {
        std::fs::copy(from, dir.join(name)).expect("copy");
    }
    let yaml = documented_tls_config();
    let file = dir.join("cluster-tls.yml");
    std::fs::write(&file, yaml).expect("write");
    vec![format!("--cluster.tls-config={}", file.display())]
}

/// The YAML block of docs/security.md: what operators copy is what these tests run.
fn documented_tls_config() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
        .expect("docs/security.md");
    let block = doc.split("```yaml\n").nth(1).and_then(|rest| rest.split("```").next());
    block.expect("docs/security.md shows a ```yaml block").to_owned()
}

fn members(s: &Server) -> f64 {
    s.metric("alertmanager_cluster_members").unwrap_or(-1.0)
}

fn has_silence(s: &Server, id: &str) -> bool {
    summary(&s.silences()).iter().any(|(_, sid, state)| sid == id && state == "active")
}

fn hearsay(name: &str, ca: &TestCa, peers: &[std::net::SocketAddr]) -> Hearsay {
    let dir = scratch(name);
    let leaf = ca.server(name, &[]);
    Hearsay::hearsay_with(&dir, peers, &tls_flag(&dir.join("tls"), ca, &leaf))
}

#[test]
fn two_hearsay_nodes_gossip_over_tls() {
    let certs = scratch("tls-certs");
    let ca = TestCa::new(&certs, "cluster");
    let a = hearsay("hs-tls-a", &ca, &[]);
    let b = hearsay("hs-tls-b", &ca, &[a.cluster]);
    wait_for("both members on both nodes", SPREAD, || members(&a) == 2.0 && members(&b) == 2.0);
    let id = add_silence(a.web, "alertname=OverTls", "tls-user");
    wait_for("the silence reaches the other node", SPREAD, || has_silence(&b, &id));
    let id = add_silence(b.web, "alertname=BackOverTls", "tls-user");
    wait_for("and back", SPREAD, || has_silence(&a, &id));
    // Everything went over TLS: packets (probes, gossip) and streams (join, push/pull).
    for node in [&a, &b] {
        let sent = node.metric("alertmanager_tls_transport_packet_bytes_sent_total");
        assert!(sent.unwrap_or(0.0) > 0.0, "no packet bytes sent over TLS");
        let streams = node.metric("alertmanager_tls_transport_stream_connections_received_total");
        let dialled = node.metric("alertmanager_tls_transport_stream_connections_sent_total");
        assert!(streams.unwrap_or(0.0) + dialled.unwrap_or(0.0) > 0.0, "no TLS streams");
    }
}

#[test]
fn hearsay_and_alertmanager_gossip_over_mutual_tls() {
    mutual_tls_with(&latest());
}

/// Alertmanager 0.25 has the same transport (it only crashes without `tls_client_config`,
/// which mutual TLS sets anyway).
#[test]
fn hearsay_and_debian_alertmanager_gossip_over_mutual_tls() {
    mutual_tls_with(&debian());
}

fn mutual_tls_with(bin: &Path) {
    let certs = scratch("tls-am-certs");
    let ca = TestCa::new(&certs, "cluster");
    let am_dir = scratch("am-tls");
    let am_leaf = ca.server("am", &[]);
    let am = Alertmanager::alertmanager_with(
        bin,
        &am_dir,
        &[],
        &tls_flag(&am_dir.join("tls"), &ca, &am_leaf),
    );
    let h = hearsay("hs-tls-am", &ca, &[am.cluster]);
    wait_for("hearsay and Alertmanager see each other", SPREAD, || {
        members(&am) == 2.0 && members(&h) == 2.0
    });
    let from_am = add_silence(am.web, "alertname=FromAlertmanager", "am-user");
    wait_for("the Alertmanager silence reaches hearsay", SPREAD, || has_silence(&h, &from_am));
    let from_hs = add_silence(h.web, "alertname=FromHearsay", "hs-user");
    wait_for("the hearsay silence reaches Alertmanager", SPREAD, || has_silence(&am, &from_hs));
    let received = am.metric("alertmanager_tls_transport_packet_bytes_received_total");
    assert!(received.unwrap_or(0.0) > 0.0, "Alertmanager received no TLS packets");
    assert_eq!(
        am.metric("alertmanager_tls_transport_read_errors_total"),
        Some(0.0),
        "Alertmanager could not read a frame of ours; log:\n{}",
        am.log_tail()
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused_by_both() {
    let certs = scratch("tls-refuse-certs");
    let ca = TestCa::new(&certs, "cluster");
    let am_dir = scratch("am-tls-refuse");
    let am_leaf = ca.server("am", &[]);
    let am = Alertmanager::alertmanager_with(
        &latest(),
        &am_dir,
        &[],
        &tls_flag(&am_dir.join("tls"), &ca, &am_leaf),
    );
    let h = hearsay("hs-tls-good", &ca, &[am.cluster]);
    wait_for("the good pair forms", SPREAD, || members(&am) == 2.0 && members(&h) == 2.0);

    let rogue_ca = TestCa::new(&certs.join("rogue"), "rogue");
    let rogue = hearsay("hs-tls-rogue", &rogue_ca, &[h.cluster, am.cluster]);
    let refused = |s: &Server, direction: &str| {
        s.metric(&format!("hearsay_tls_handshake_failures_total{{direction=\"{direction}\"}}"))
            .unwrap_or(0.0)
    };
    wait_for("hearsay refuses the rogue's certificate", SPREAD, || refused(&h, "inbound") > 0.0);
    wait_for("the rogue refuses both servers' certificates", SPREAD, || {
        refused(&rogue, "outbound") >= 2.0
    });
    // The rogue keeps trying (it re-joins its peers); it never becomes a member anywhere.
    let before = refused(&h, "inbound");
    wait_for("the rogue tries again", SPREAD, || refused(&h, "inbound") > before);
    assert_eq!(members(&h), 2.0);
    assert_eq!(members(&am), 2.0);
    assert_eq!(members(&rogue), 1.0);
}

/// Every join is a push/pull stream over its own TLS session, and the answering side closes
/// it right after its reply: the joiner must take the reply even when the close arrives in
/// the same read (it once read that as a cut stream, so about half of all joins failed).
#[test]
fn every_join_over_tls_gets_its_push_pull_answer() {
    let dir = scratch("tls-join");
    let ca = TestCa::new(&dir.join("certs"), "cluster");
    let leaf = ca.server("node", &[]);
    let flag = tls_flag(&dir.join("tls"), &ca, &leaf);
    let file = flag[0].trim_start_matches("--cluster.tls-config=");
    let tls = ClusterTls::load(Path::new(file)).expect("the TLS config loads");
    let node = |name: &str| {
        let bind = "127.0.0.1:0".parse().expect("literal");
        let mut config = NodeConfig::alertmanager(Some(name), bind, vec![]);
        config.tls = Some(tls.clone());
        Node::start(config).expect("a TLS node starts")
    };
    let (a, b) = (node("join-a"), node("join-b"));
    let seed = [a.local_addr().to_string()];
    for round in 0..20 {
        let joined = b.join(&seed, Duration::from_secs(10));
        assert_eq!(joined.ok(), Some(1), "join {round} over TLS failed");
    }
    let stats = b.stats().driver;
    assert!(stats.tls_streams_sent >= 20, "{stats:?}");
    assert_eq!(stats.streams_failed, 0, "{stats:?}");
}
