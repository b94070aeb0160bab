//! Real processes under fault: what users meet when a hostile or broken sender aims at the
//! cluster port.

mod util;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use util::alertmanager::{Hearsay, add_silence, amtool, scratch, summary};
use util::redis::RedisServer;

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .expect("VmRSS")
}

/// The sum of `hearsay_cluster_rejected_total` over every reason, for `transport`.
fn rejected(h: &Hearsay, transport: &str) -> u64 {
    let (_, body) = util::alertmanager::get(h.web, "/metrics").expect("/metrics answers");
    let prefix = format!("hearsay_cluster_rejected_total{{transport=\"{transport}\",");
    body.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

const DATAGRAMS: u64 = 1_000_000;
/// Sent, then waited for until counted: a batch fits the node's receive buffer, so the kernel
/// drops none and the count can be checked exactly.
const BATCH: u64 = 200;
const STREAMS: u64 = 10_000;
/// Garbage connections open at once.
const STREAM_BATCH: u64 = 100;
/// What the floods may add to the flooded node's resident memory.
const RSS_GROWTH_KIB: u64 = 32 << 10;

/// A million garbage datagrams and ten thousand garbage connections at one node's cluster
/// port: every one is refused and counted, resident memory stays bounded, and the node stays
/// a member that replicates silences both ways.
#[test]
fn a_flood_of_garbage_leaves_the_node_a_member_bounded_and_counting() {
    let a = Hearsay::hearsay(&scratch("faults-flood-a"), &[]);
    let b = Hearsay::hearsay(&scratch("faults-flood-b"), &[a.cluster]);
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        util::wait_for(what, Duration::from_secs(60), f);
    };
    let members_are_two = |h: &Hearsay| h.metric("alertmanager_cluster_members") == Some(2.0);
    wait("two members on both", &mut || members_are_two(&a) && members_are_two(&b));
    let before = rss_kib(a.pid());

    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let base = rejected(&a, "packet");
    let mut sent = 0u64;
    while sent < DATAGRAMS {
        for _ in 0..BATCH {
            // 0xff is no memberlist message type; the rest varies so nothing can cache it.
            let junk = [&[0xffu8][..], &sent.to_be_bytes()[..], &[0x5a; 32][..]].concat();
            udp.send_to(&junk, a.cluster).expect("send");
            sent += 1;
        }
        wait("the batch counted", &mut || rejected(&a, "packet") - base >= sent);
    }
    assert_eq!(rejected(&a, "packet") - base, DATAGRAMS, "every garbage datagram is counted once");

    let base = rejected(&a, "stream");
    let mut opened = 0u64;
    while opened < STREAMS {
        let streams: Vec<TcpStream> = (0..STREAM_BATCH)
            .map(|i| {
                let mut s = TcpStream::connect(a.cluster).expect("connect");
                // Not a memberlist frame: an HTTP request, then a half-close.
                let junk = format!("GET /{i} HTTP/1.1\r\nHost: flood\r\n\r\n");
                s.write_all(junk.as_bytes()).expect("write");
                let _ = s.shutdown(Shutdown::Write);
                s
            })
            .collect();
        opened += STREAM_BATCH;
        wait("the connections counted", &mut || rejected(&a, "stream") - base >= opened);
        drop(streams);
    }
    assert_eq!(rejected(&a, "stream") - base, STREAMS, "every garbage connection is counted once");

    let after = rss_kib(a.pid());
    eprintln!("flooded node's RSS: {before} KiB before, {after} KiB after");
    assert!(
        after <= before + RSS_GROWTH_KIB,
        "resident memory grew from {before} KiB to {after} KiB under the flood"
    );
    assert!(members_are_two(&a) && members_are_two(&b), "the flooded node left the cluster");
    let from_a = add_silence(a.web, "alertname=AfterFlood", "flooded");
    let from_b = add_silence(b.web, "alertname=AfterFlood", "witness");
    wait("both silences on both", &mut || {
        [&a, &b].iter().all(|h| {
            let ids: Vec<String> =
                summary(&h.silences()).into_iter().map(|(_, id, _)| id).collect();
            ids.contains(&from_a) && ids.contains(&from_b)
        })
    });
    let lines = a.log_text().lines().filter(|l| l.contains("refused a ")).count();
    assert!(lines <= 10, "refusals are logged at a bounded rate, not per packet: {lines} lines");
}

/// The IDs of the silences `h` holds.
fn silence_ids(h: &Hearsay) -> BTreeSet<String> {
    summary(&h.silences()).into_iter().map(|(_, id, _)| id).collect()
}

/// A `hearsay` binary in Redis mode on `redis`, from a Grafana ini file.
fn redis_node(redis: &RedisServer, dir: &Path, name: &str) -> Hearsay {
    std::fs::create_dir_all(dir).expect("dir");
    let ini = dir.join("grafana.ini");
    let text = format!(
        "[unified_alerting]\nha_redis_address = 127.0.0.1:{}\nha_redis_peer_name = {name}\n\
         ha_push_pull_interval = 2s\n",
        redis.port
    );
    std::fs::write(&ini, text).expect("ini");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearsay"));
    cmd.arg(format!("--config.file={}", ini.display())).arg("--cluster.settle-timeout=3s");
    let unused: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Hearsay::spawn_plain(cmd, dir, unused, "hearsay")
}

/// Silences added through `web` one after another until `stop`; the IDs of those the API
/// acknowledged. A refused write (the node could not carry it) is not acknowledged.
fn write_until(web: SocketAddr, who: &str, stop: &AtomicBool) -> Vec<String> {
    let mut acked = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let matcher = format!("alertname=Load{who}{n}");
        let out = amtool(web, &["silence", "add", &matcher, "-c", "under fault", "-a", who]);
        if out.status.success() {
            acked.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
    }
    acked
}

/// Redis killed (SIGKILL, back empty on the same port) and then made slow (every client
/// paused) while both Redis-mode peers take writes: every write either API acknowledged is on
/// both peers afterwards.
#[test]
fn redis_killed_and_slowed_under_load_loses_no_acknowledged_write() {
    let mut redis = RedisServer::start();
    let a = redis_node(&redis, &scratch("faults-redis-a"), "fault-a");
    let b = redis_node(&redis, &scratch("faults-redis-b"), "fault-b");
    let members_are_two = |h: &Hearsay| h.metric("alertmanager_cluster_members") == Some(2.0);
    util::wait_for("two members on both", Duration::from_secs(60), || {
        members_are_two(&a) && members_are_two(&b)
    });
    let stop = AtomicBool::new(false);
    let (acked_a, acked_b) = thread::scope(|s| {
        let on_a = s.spawn(|| write_until(a.web, "a", &stop));
        let on_b = s.spawn(|| write_until(b.web, "b", &stop));
        let phase = Duration::from_secs(3);
        thread::sleep(phase);
        redis.kill();
        thread::sleep(phase);
        redis.restart();
        thread::sleep(phase);
        let paused: String = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(3000)
            .arg("ALL")
            .query(&mut redis.client())
            .expect("CLIENT PAUSE");
        assert_eq!(paused, "OK");
        thread::sleep(phase + phase);
        stop.store(true, Ordering::Relaxed);
        (on_a.join().expect("writer a"), on_b.join().expect("writer b"))
    });
    assert!(!acked_a.is_empty() && !acked_b.is_empty(), "both peers took writes");
    let acked: BTreeSet<String> = acked_a.iter().chain(&acked_b).cloned().collect();
    util::wait_for("every acknowledged write on both peers", Duration::from_secs(60), || {
        let (on_a, on_b) = (silence_ids(&a), silence_ids(&b));
        acked.iter().all(|id| on_a.contains(id) && on_b.contains(id))
    });
    eprintln!("acknowledged under fault: {} on a, {} on b", acked_a.len(), acked_b.len());
}
