//! Helpers shared by the integration tests.

#![allow(unreachable_pub, dead_code)] // each test binary is its own crate and uses a subset

pub mod alertmanager;
pub mod certs;
pub mod golang;
pub mod grafana;
pub mod logs;
pub mod redis;
pub mod redis_sim;
pub mod sim;
pub mod timeline;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hearsay::core::swim::MemberState;
use hearsay::node::{Node, NodeConfig, NodeEvent};

/// Probe every 200 ms (timeout 100 ms), gossip every 50 ms: failures show in about a second.
/// The same values are passed to Go peers by [`GO_FAST`].
pub fn fast_config(name: &str, peers: Vec<String>) -> NodeConfig {
    let mut config =
        NodeConfig::alertmanager(Some(name), "127.0.0.1:0".parse().expect("literal"), peers);
    config.swim.probe_interval = Duration::from_millis(200);
    config.swim.probe_timeout = Duration::from_millis(100);
    config.swim.gossip_interval = Duration::from_millis(50);
    config
}

/// [`fast_config`]'s timings as `mlpeer` flags.
pub const GO_FAST: [&str; 6] =
    ["-probe-interval", "200ms", "-probe-timeout", "100ms", "-gossip-interval", "50ms"];

/// A started node with [`fast_config`].
pub fn fast_node(name: &str, peers: Vec<String>) -> Node {
    Node::start(fast_config(name, peers)).expect("node starts")
}

/// Wait until `f` holds, checking every 5 ms; fail with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Names of the node's alive members, sorted.
pub fn alive(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = node
        .members()
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .map(|m| m.name.to_string())
        .collect();
    names.sort();
    names
}

/// A member's state as the node sees it.
pub fn state_of(node: &Node, name: &str) -> Option<MemberState> {
    node.members().iter().find(|m| m.name.as_str() == name).map(|m| m.state)
}

/// The next event matching `f`, skipping others; fails after `timeout`.
pub fn next_event(
    node: &Node,
    timeout: Duration,
    mut f: impl FnMut(&NodeEvent) -> bool,
) -> NodeEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = node
            .events()
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no matching event within {timeout:?}"));
        if f(&event) {
            return event;
        }
    }
}

/// A node's address as a peer string.
pub fn peer(addr: SocketAddr) -> String {
    addr.to_string()
}
