//! Real processes under fault: what users meet when a hostile or broken sender aims at the
//! cluster port.

mod util;

use std::io::Write;
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::Duration;

use util::alertmanager::{Hearsay, add_silence, scratch, summary};

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
