//! What the C ABI costs on the hot calls: each call through its `hs_*` export (panic
//! boundary, pointer and UTF-8 checks, conversions) next to the same call on the Rust API,
//! measured in the same run. `cargo bench --bench ffi`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use hearsay::core::UnixMillis;
use hearsay::core::state::labels::{LabelSet, fingerprint};
use hearsay::core::state::nflog::{Flush, Receiver};
use hearsay::ffi::*;
use hearsay::node::{NFLOG_KEY, Node, NodeConfig, SILENCES_KEY, States as _, alertmanager_states};

fn s(text: &str) -> hs_str {
    hs_str { data: text.as_ptr().cast(), len: text.len() }
}

/// Mean nanoseconds per call of `f` over about `budget`.
fn time_ns(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let budget = Duration::from_millis(500);
    let mut config = std::ptr::null_mut();
    assert_eq!(hs_config_new(&mut config), hs_result::Ok);
    assert_eq!(hs_config_set_bind_address(config, s("127.0.0.1:0")), hs_result::Ok);
    let mut node = std::ptr::null_mut();
    assert_eq!(hs_node_start(config, &mut node), hs_result::Ok);
    hs_config_free(config);
    // The same kind of node on the Rust API.
    let config = NodeConfig::alertmanager(None, "127.0.0.1:0".parse().expect("literal"), vec![]);
    let states = alertmanager_states(None, Duration::from_secs(120 * 3600)).expect("empty");
    let rust = Node::start_cluster(config, states, None).expect("starts");
    let now = UnixMillis(1_800_000_000_000);

    let firing = [0x1234_u64, 0x5678];
    let group_key = "{}:{alertname=\"DiskFull\"}";
    let receiver = Receiver::new("team-db", "webhook", 0);
    let flush = Flush {
        firing: &firing,
        resolved: &[],
        send_resolved: true,
        repeat_interval: Duration::from_secs(4 * 3600),
        now,
    };
    rust.log_notification(NFLOG_KEY, &receiver, group_key, &flush, &BTreeMap::new())
        .expect("logged");
    let c_flush = hs_flush {
        receiver: hs_receiver { name: s("team-db"), integration: s("webhook"), index: 0 },
        group_key: s(group_key),
        firing: firing.as_ptr(),
        firing_len: firing.len(),
        resolved: std::ptr::null(),
        resolved_len: 0,
        send_resolved: true,
        repeat_interval_ms: 4 * 3600 * 1000,
        now_ms: now.0,
    };
    let mut written = false;
    assert_eq!(hs_node_log_notification(node, &c_flush, &mut written), hs_result::Ok);
    let mut decision = hs_decision { notify: true, row: hs_dedup_row::NoEntryFiring };
    let direct = time_ns(budget, || {
        black_box(rust.should_notify(NFLOG_KEY, &receiver, group_key, &flush).ok());
    });
    let abi = time_ns(budget, || {
        black_box(hs_node_should_notify(node, &c_flush, &mut decision));
    });
    assert!(!decision.notify);
    report("should_notify", abi, direct);

    let pairs = [("alertname", "DiskFull"), ("instance", "db1:9100"), ("job", "node")];
    let labels: LabelSet = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let c_labels: Vec<hs_label> =
        pairs.iter().map(|(k, v)| hs_label { name: s(k), value: s(v) }).collect();
    let fp = fingerprint(&labels);
    let mut muted = 0usize;
    let direct = time_ns(budget, || {
        black_box(rust.mutes(SILENCES_KEY, fp, &labels, now).ok());
    });
    let abi = time_ns(budget, || {
        black_box(hs_node_mutes(node, c_labels.as_ptr(), c_labels.len(), now.0, &mut muted));
    });
    report("mutes (labels converted per call)", abi, direct);
    hs_node_free(node);
}

fn report(call: &str, abi: f64, direct: f64) {
    println!(
        "{call:<36} C ABI {abi:>8.1} ns   Rust API {direct:>8.1} ns   ratio {:.2}",
        abi / direct
    );
}
