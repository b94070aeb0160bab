//! Real processes under fault: a hostile or broken sender at the cluster port, Redis killed
//! and slowed, a process killed mid-write, a network partition.

mod util;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use util::alertmanager::{Alertmanager, Hearsay, add_silence, amtool, post, scratch, summary};
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

/// One silence through the v2 API at `web`; its ID when the API acknowledged it.
fn post_silence(web: SocketAddr, name: &str, author: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    let body = serde_json::json!({
        "matchers": [{"name": "alertname", "value": name, "isRegex": false, "isEqual": true}],
        "startsAt": now.format(&Rfc3339).ok()?,
        "endsAt": (now + time::Duration::hours(1)).format(&Rfc3339).ok()?,
        "createdBy": author,
        "comment": "written while a member is killed",
    });
    let (code, reply) = post(web, "/api/v2/silences", &body.to_string())?;
    let reply: serde_json::Value = serde_json::from_str(&reply).ok().filter(|_| code == 200)?;
    Some(reply["silenceID"].as_str()?.to_owned())
}

/// Silences posted one after another to whatever address `web` gives (none while that
/// process is down) until `stop`; the IDs of those acknowledged.
fn post_until(web: impl Fn() -> Option<SocketAddr>, who: &str, stop: &AtomicBool) -> Vec<String> {
    let mut acked = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match web() {
            Some(web) => acked.extend(post_silence(web, &format!("Kill{who}{n}"), who)),
            None => thread::sleep(Duration::from_millis(5)),
        }
    }
    acked
}

/// `kill -9` of a hearsay process while every member takes silences, and its restart from its
/// storage directory: every write any member acknowledged is on every member afterwards,
/// Alertmanager 0.25 included. The victim snapshots only hourly, so what it acknowledged since
/// its start survives only through its journal. It is killed twice: first while it runs alone
/// (nobody else holds its writes; a lost journal loses them for good), then as a member of the
/// cluster.
#[test]
fn a_process_killed_mid_write_comes_back_with_every_acknowledged_write() {
    let am = Alertmanager::alertmanager(&util::alertmanager::debian(), &scratch("kill-am"), &[]);
    let h2 = Hearsay::hearsay(&scratch("kill-h2"), &[am.cluster]);
    let h3 = Hearsay::hearsay(&scratch("kill-h3"), &[am.cluster]);
    util::wait_for("three members", Duration::from_secs(60), || {
        [&h2, &h3].iter().all(|h| h.metric("alertmanager_cluster_members") == Some(3.0))
    });
    let dir = scratch("kill-victim");
    let hourly = ["--data.maintenance-interval=1h".to_owned()];
    let victim = Mutex::new(Some(Hearsay::hearsay_with(&dir, &[], &hourly)));
    let victim_web = || victim.lock().expect("victim").as_ref().map(|v| v.web);
    // Dropping a Server is SIGKILL: no snapshot on the way out.
    let kill = || drop(victim.lock().expect("victim").take());
    let stop = AtomicBool::new(false);
    let phase = Duration::from_secs(2);
    let (acked, journals) = thread::scope(|s| {
        let stop = &stop;
        let writers: Vec<_> = [("am", am.web), ("h2", h2.web), ("h3", h3.web)]
            .into_iter()
            .map(|(who, web)| (who, s.spawn(move || post_until(|| Some(web), who, stop))))
            .collect();
        let on_victim = s.spawn(move || post_until(victim_web, "victim", stop));
        thread::sleep(phase);
        kill();
        let journals = std::fs::read_dir(&dir)
            .expect("victim dir")
            .filter(|e| {
                e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains(".journal."))
            })
            .count();
        *victim.lock().expect("victim") = Some(Hearsay::hearsay_with(&dir, &[h2.cluster], &hourly));
        thread::sleep(phase);
        kill();
        *victim.lock().expect("victim") = Some(Hearsay::hearsay_with(&dir, &[h2.cluster], &hourly));
        thread::sleep(phase);
        stop.store(true, Ordering::Relaxed);
        let mut acked = vec![("victim", on_victim.join().expect("victim writer"))];
        acked.extend(writers.into_iter().map(|(who, w)| (who, w.join().expect("writer"))));
        (acked, journals)
    });
    assert!(journals > 0, "the killed victim left its journal in its storage directory");
    for (who, ids) in &acked {
        assert!(!ids.is_empty(), "{who} acknowledged writes");
        eprintln!("{who}: {} acknowledged", ids.len());
    }
    let victim = victim.into_inner().expect("victim").expect("running");
    let all: BTreeSet<&String> = acked.iter().flat_map(|(_, ids)| ids).collect();
    util::wait_for("every acknowledged write on every member", Duration::from_secs(60), || {
        let held = [summary(&am.silences()), summary(&h2.silences()), summary(&h3.silences())];
        let victims = silence_ids(&victim);
        held.iter().all(|s| {
            let ids: BTreeSet<&String> = s.iter().map(|(_, id, _)| id).collect();
            all.iter().all(|id| ids.contains(id))
        }) && all.iter().all(|id| victims.contains(*id))
    });
}

/// A network namespace this test created, removed (with its links) on drop. The addresses
/// the test gives its links exist only inside these namespaces.
struct Netns(String);

/// `ip` with `args`; fails the test loudly when it cannot (no root, no `ip`).
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("`ip` (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {} (partition tests need root and iproute2 to create network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Netns {
    fn create(side: &str) -> Self {
        let name = format!("hearsay-{}-{side}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// `program args…` inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).arg(program);
        cmd
    }

    /// An HTTP GET from inside the namespace: the body, or `None` when nothing answered 2xx.
    fn get(&self, url: &str) -> Option<String> {
        let out = self.command(Path::new("curl")).args(["-sf", "-m", "5", url]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A hearsay or Alertmanager process inside a namespace.
struct NsServer<'n> {
    ns: &'n Netns,
    web: SocketAddr,
    cluster: SocketAddr,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl<'n> NsServer<'n> {
    /// Start `kind` (`hearsay`, or Debian's Alertmanager) in `ns` on `ip`, with its web API
    /// on port `port` and gossip on `port + 1`, joining `peers`.
    fn start(ns: &'n Netns, kind: &str, ip: &str, port: u16, peers: &[SocketAddr]) -> Self {
        let dir = scratch(&format!("partition-{kind}-{ip}-{port}"));
        let web: SocketAddr = format!("{ip}:{port}").parse().expect("addr");
        let cluster: SocketAddr = format!("{ip}:{}", port + 1).parse().expect("addr");
        let mut cmd = if kind == "hearsay" {
            ns.command(Path::new(env!("CARGO_BIN_EXE_hearsay")))
        } else {
            std::fs::write(dir.join("am.yml"), util::alertmanager::CONFIG).expect("config");
            let mut cmd = ns.command(&util::alertmanager::debian());
            cmd.arg(format!("--config.file={}", dir.join("am.yml").display()));
            cmd
        };
        let log = dir.join(format!("{kind}.log"));
        cmd.arg(format!("--storage.path={}", dir.display()))
            .arg(format!("--web.listen-address={web}"))
            .arg(format!("--cluster.listen-address={cluster}"))
            .arg(format!("--cluster.advertise-address={cluster}"))
            // Failed members are re-joined quickly once the partition heals.
            .arg("--cluster.reconnect-interval=2s")
            .args(util::alertmanager::FAST_CLUSTER)
            .args(peers.iter().map(|p| format!("--cluster.peer={p}")))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {kind} in {}: {e}", ns.0));
        let server = Self { ns, web, cluster, child, log };
        util::wait_for(&format!("{kind} on {web} ready"), Duration::from_secs(60), || {
            server.ns.get(&format!("http://{web}/-/ready")).is_some()
        });
        server
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let body = self.ns.get(&format!("http://{}/metrics", self.web))?;
        body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    fn silence_ids(&self) -> BTreeSet<String> {
        let body = self.ns.get(&format!("http://{}/api/v2/silences", self.web));
        let Some(silences) = body.and_then(|b| serde_json::from_str(&b).ok()) else {
            return BTreeSet::new();
        };
        summary(&silences).into_iter().map(|(_, id, _)| id).collect()
    }

    /// Add a silence with amtool, from inside the namespace; its ID.
    fn add_silence(&self, matcher: &str) -> String {
        let out = self
            .ns
            .command(Path::new(util::alertmanager::AMTOOL))
            .arg(format!("--alertmanager.url=http://{}", self.web))
            .args([
                "silence",
                "add",
                matcher,
                "-c",
                "partition test",
                "-a",
                "partition",
                "-d",
                "1h",
            ])
            .output()
            .expect("amtool runs");
        assert!(out.status.success(), "amtool add: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for NsServer<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two network namespaces joined by a veth pair, two hearsay nodes and one Alertmanager 0.25
/// on each side. The link goes down: each side carries on alone and takes silences. It comes
/// back up (and then runs through a `tbf` rate limit: this kernel has no `netem` for loss or
/// delay): every member converges on every silence, sees all six members again, and the six
/// positions are 0 to 5 once each.
#[test]
fn a_partition_between_real_processes_heals_into_one_cluster() {
    let (left, right) = (Netns::create("l"), Netns::create("r"));
    let (l_if, r_if) = (format!("hsl{}", std::process::id()), format!("hsr{}", std::process::id()));
    ip(&[
        "link", "add", &l_if, "netns", &left.0, "type", "veth", "peer", "name", &r_if, "netns",
        &right.0,
    ]);
    let (l_ip, r_ip) = ("10.231.0.1", "10.231.0.2");
    for (ns, dev, addr) in [(&left, &l_if, l_ip), (&right, &r_if, r_ip)] {
        ip(&["-n", &ns.0, "addr", "add", &format!("{addr}/24"), "dev", dev]);
        ip(&["-n", &ns.0, "link", "set", dev, "up"]);
    }
    let h1 = NsServer::start(&left, "hearsay", l_ip, 9100, &[]);
    let seed = [h1.cluster];
    let servers = [
        NsServer::start(&left, "hearsay", l_ip, 9110, &seed),
        NsServer::start(&left, "alertmanager", l_ip, 9120, &seed),
        NsServer::start(&right, "hearsay", r_ip, 9100, &seed),
        NsServer::start(&right, "hearsay", r_ip, 9110, &seed),
        NsServer::start(&right, "alertmanager", r_ip, 9120, &seed),
    ];
    let all: Vec<&NsServer> = std::iter::once(&h1).chain(&servers).collect();
    let sees = |n: f64| move |s: &&NsServer| s.metric("alertmanager_cluster_members") == Some(n);
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !f() {
            if std::time::Instant::now() > deadline {
                let logs: Vec<String> =
                    all.iter().map(|s| format!("== {}\n{}", s.web, s.log_tail())).collect();
                panic!("timed out waiting for {what}; the logs end:\n{}", logs.join("\n"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    };
    wait("six members on every process", &mut || all.iter().all(sees(6.0)));

    ip(&["-n", &left.0, "link", "set", &l_if, "down"]);
    wait("each side down to its own three", &mut || all.iter().all(sees(3.0)));
    let written: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, s)| s.add_silence(&format!("alertname=Split{i}")))
        .collect();

    ip(&["-n", &left.0, "link", "set", &l_if, "up"]);
    for (ns, dev) in [(&left, &l_if), (&right, &r_if)] {
        let tbf = [
            "qdisc", "add", "dev", dev, "root", "tbf", "rate", "2mbit", "burst", "32kbit",
            "latency", "50ms",
        ];
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.0, "tc"])
            .args(tbf)
            .output()
            .expect("tc runs");
        assert!(out.status.success(), "tc tbf: {}", String::from_utf8_lossy(&out.stderr));
    }
    wait("six members again on every process", &mut || all.iter().all(sees(6.0)));
    wait("every silence on every process", &mut || {
        all.iter().all(|s| {
            let ids = s.silence_ids();
            written.iter().all(|id| ids.contains(id))
        })
    });
    wait("positions 0 to 5 once each", &mut || {
        let mut positions: Vec<f64> =
            all.iter().filter_map(|s| s.metric("alertmanager_peer_position")).collect();
        positions.sort_by(f64::total_cmp);
        positions == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    });
}
