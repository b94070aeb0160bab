//! The `broadcast` and `idle` scenarios: a real cluster of hearsay nodes on loopback, and the
//! same measurement on Go memberlist for comparison.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hearsay::core::swim::MemberState;
use hearsay::core::wire::SecretKey;
use hearsay::node::{Node, NodeConfig, NodeError, NodeEvent};
use hearsay::tls::ClusterTls;

use crate::Args;
use crate::certs::TestCa;
use crate::report::Figure;

/// The paced rate at which the latency target is checked.
const PACED_RATE: f64 = 10_000.0;
/// Time after the broadcast phase for messages in flight to land.
const DRAIN: Duration = Duration::from_secs(2);
/// How long a full queue makes the producer wait (the Go harness waits the same).
const BACKOFF: Duration = Duration::from_micros(100);

/// The process-wide clock that send stamps and receive times share.
fn clock() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn mono_nanos() -> u64 {
    u64::try_from(clock().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A bench message, byte for byte what the Go harness sends: big-endian sequence number and
/// send time (ns), then filler that compresses about as well as Alertmanager's protobufs.
pub(crate) fn payload(seq: u64, sent: u64, size: usize) -> Vec<u8> {
    const PATTERN: &[u8; 12] = b"nflog-entry-";
    let mut b = vec![0; size.max(16)];
    b[..8].copy_from_slice(&seq.to_be_bytes());
    b[8..16].copy_from_slice(&sent.to_be_bytes());
    for (j, byte) in b.iter_mut().enumerate().skip(16) {
        *byte = if j % 7 == 0 { seq.to_le_bytes()[0] } else { PATTERN[j % 12] };
    }
    b
}

/// What one run measured.
#[derive(Debug, Default)]
struct Outcome {
    delivered_all: u64,
    seconds: f64,
    latencies_ns: Vec<u64>,
    wire_bytes: u64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.delivered_all as f64 / self.seconds
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        self.latencies_ns.sort_unstable();
        let i = ((self.latencies_ns.len() - 1) as f64 * p).round() as usize;
        self.latencies_ns[i] as f64 / 1e6
    }

    fn bytes_per_message(&self) -> f64 {
        self.wire_bytes as f64 / self.delivered_all.max(1) as f64
    }
}

/// How the nodes of a bench cluster protect their traffic.
#[derive(Clone, Copy, Debug)]
enum Wire<'a> {
    Plain,
    /// memberlist's keyring: every packet and stream sealed with this key.
    Key(&'a SecretKey),
    /// Alertmanager's TLS transport (`--cluster.tls-config`).
    Tls(&'a ClusterTls),
}

/// Start `n` Alertmanager-configured nodes on loopback and wait until each sees all.
fn cluster(n: usize, wire: Wire<'_>) -> Result<Vec<Node>, String> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let bind = "127.0.0.1:0".parse().expect("literal");
        let mut config = NodeConfig::alertmanager(Some(&format!("bench-{i}")), bind, vec![]);
        config.event_queue_len = 1 << 20;
        match wire {
            Wire::Plain => {}
            Wire::Key(key) => config.swim.secret_keys = vec![key.clone()],
            Wire::Tls(tls) => config.tls = Some(tls.clone()),
        }
        let node = Node::start(config).map_err(|e| format!("node {i}: {e}"))?;
        if let Some(seed) = nodes.first() {
            node.join(&[seed.local_addr().to_string()], Duration::from_secs(10))
                .map_err(|e| format!("join: {e}"))?;
        }
        nodes.push(node);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|node| node.members().iter().filter(|m| m.state == MemberState::Alive).count() == n)
    {
        if Instant::now() > deadline {
            return Err("cluster did not converge in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(nodes)
}

/// Collect deliveries at one receiving node until `stop`.
fn receive(node: &Node, stop: &AtomicBool) -> (Vec<bool>, Vec<u64>) {
    let mut seen: Vec<bool> = Vec::new();
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(event) = node.events().recv_timeout(Duration::from_millis(20)) else { continue };
        let NodeEvent::Message(msg) = event else { continue };
        let now = mono_nanos();
        let (Ok(seq), Ok(sent)) = (
            msg[..8].try_into().map(u64::from_be_bytes),
            msg[8..16].try_into().map(u64::from_be_bytes),
        ) else {
            continue;
        };
        let Ok(i) = usize::try_from(seq) else { continue };
        if i >= seen.len() {
            seen.resize(i + 1, false);
        }
        if !seen[i] {
            seen[i] = true;
            latencies.push(now.saturating_sub(sent));
        }
    }
    (seen, latencies)
}

/// Broadcast from node 0 for `seconds`, as fast as the queue accepts or at `rate`.
fn produce(node: &Node, seconds: f64, rate: Option<f64>, size: usize) -> u64 {
    let begin = Instant::now();
    let end = begin + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            return sent;
        }
        if let Some(rate) = rate {
            let due = begin + Duration::from_secs_f64((sent + 1) as f64 / rate);
            if due > now {
                std::thread::sleep((due - now).min(end - now));
                continue;
            }
        }
        match node.broadcast(payload(sent, mono_nanos(), size)) {
            Ok(()) => sent += 1,
            Err(NodeError::QueueFull) => std::thread::sleep(BACKOFF),
            Err(_) => return sent,
        }
    }
}

/// Bytes every node wrote: datagrams and streams, or over TLS the packets' bytes as
/// `alertmanager_tls_transport_packet_bytes_sent_total` counts them (before framing and TLS
/// records).
fn wire_bytes(nodes: &[Node]) -> u64 {
    let driver = |n: &Node| n.stats().driver;
    nodes
        .iter()
        .map(|n| {
            let d = driver(n);
            d.udp_bytes_sent + d.stream_bytes_sent + d.tls_packet_bytes_sent
        })
        .sum()
}

fn measure(args: &Args, rate: Option<f64>, wire: Wire<'_>) -> Result<Outcome, String> {
    let nodes = cluster(args.nodes, wire)?;
    let stop = AtomicBool::new(false);
    let before = wire_bytes(&nodes);
    let (sent, received) = std::thread::scope(|s| {
        let receivers: Vec<_> =
            nodes[1..].iter().map(|node| s.spawn(|| receive(node, &stop))).collect();
        let sent = produce(&nodes[0], args.seconds, rate, args.size);
        std::thread::sleep(DRAIN);
        stop.store(true, Ordering::Relaxed);
        let received: Vec<_> =
            receivers.into_iter().map(|r| r.join().expect("receiver thread")).collect();
        (sent, received)
    });
    let delivered_all = (0..usize::try_from(sent).unwrap_or(0))
        .filter(|&i| received.iter().all(|(seen, _)| seen.get(i).copied().unwrap_or(false)))
        .count() as u64;
    let wire = wire_bytes(&nodes) - before;
    let latencies_ns = received.into_iter().flat_map(|(_, l)| l).collect();
    Ok(Outcome { delivered_all, seconds: args.seconds, latencies_ns, wire_bytes: wire })
}

/// Run the broadcast scenario (and, with `--compare`, the Go side).
pub(crate) fn run(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    eprintln!(
        "[bench] hearsay: {} nodes, {}-byte messages, {} s as fast as the queue accepts",
        args.nodes, args.size, args.seconds
    );
    let mut max = measure(args, None, Wire::Plain)?;
    eprintln!("[bench] hearsay: paced at {PACED_RATE} messages/s");
    let mut paced = measure(args, Some(PACED_RATE), Wire::Plain)?;
    if args.key {
        encrypted(args, &mut max, out)?;
    }
    if args.tls {
        over_tls(args, &mut max, out)?;
    }
    let ours = [
        ("delivered_rate", max.rate(), "messages/s"),
        ("p50_latency", max.percentile_ms(0.5), "ms"),
        ("p99_latency", max.percentile_ms(0.99), "ms"),
        ("bytes_per_message", max.bytes_per_message(), "bytes"),
        ("delivered_rate_at_10k", paced.rate(), "messages/s"),
        ("p50_latency_at_10k", paced.percentile_ms(0.5), "ms"),
        ("p99_latency_at_10k", paced.percentile_ms(0.99), "ms"),
    ];
    let ceiling = udp_ceiling(args.seconds.min(3.0), args.size)?;
    out.push(Figure::new("broadcast", "udp_ceiling", ceiling, "messages/s"));
    out.push(Figure {
        anchor: Some(("one-thread loopback UDP ceiling, same run".to_owned(), ceiling)),
        ..Figure::new("broadcast", "delivered_rate_vs_udp_ceiling", max.rate(), "messages/s")
    });
    let go = if args.compare { Some(go_figures(args)?) } else { None };
    for (metric, value, unit) in ours {
        let anchor = go.as_ref().and_then(|(name, f)| f.get(metric).map(|v| (name.clone(), *v)));
        out.push(Figure { anchor, ..Figure::new("broadcast", metric, value, unit) });
    }
    if let Some((name, f)) = &go {
        // Go's own best: past its ceiling it delivers nothing to every peer, so the fair
        // comparison for throughput is the most it sustains.
        let best = f.get("best_delivered_rate").copied().unwrap_or(0.0);
        let anchor = Some((format!("{name} best paced rate of {GO_SWEEP:?}"), best));
        out.push(Figure {
            anchor,
            ..Figure::new("broadcast", "delivered_rate_vs_go_best", max.rate(), "messages/s")
        });
        let shown = ["delivered_rate", "p99_latency", "bytes_per_message"];
        for (metric, value) in f.iter().filter(|(m, _)| shown.iter().any(|s| m.starts_with(s))) {
            out.push(Figure::new("broadcast", format!("go_{metric}"), *value, go_unit(metric)));
        }
    }
    Ok(())
}

/// Largest gossip packet (memberlist's `UDPBufferSize`, Alertmanager's
/// `MaxGossipPacketSize`).
const PACKET_BYTES: usize = 1400;

/// How many `size`-byte user messages one full gossip packet carries: a compound of
/// user-message parts (each its type byte and payload) no larger than [`PACKET_BYTES`].
fn messages_per_packet(size: usize) -> usize {
    let part = [&[8u8][..], &vec![0; size][..]].concat();
    let mut fits = 0;
    for n in 1..=255 {
        let parts = vec![part.as_slice(); n];
        let mut packet = Vec::new();
        if hearsay::core::wire::encode_compound(&parts, &mut packet).is_err()
            || packet.len() > PACKET_BYTES
        {
            break;
        }
        fits = n;
    }
    fits
}

/// What the network path itself allows: one sender thread to one receiver thread over plain
/// loopback UDP for `seconds`, full-size datagrams as fast as `send_to` returns; datagrams
/// received per second × the `size`-byte messages a full packet carries.
fn udp_ceiling(seconds: f64, size: usize) -> Result<f64, String> {
    use std::net::UdpSocket;
    let bind = || UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp ceiling: {e}"));
    let (rx, tx) = (bind()?, bind()?);
    let to = rx.local_addr().map_err(|e| e.to_string())?;
    rx.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let received = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut buf = [0u8; PACKET_BYTES];
            let mut n = 0u64;
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            while Instant::now() < end {
                if rx.recv(&mut buf).is_ok() {
                    n += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
            n
        });
        let datagram = [0x5au8; PACKET_BYTES];
        while !stop.load(Ordering::Relaxed) {
            let _ = tx.send_to(&datagram, to);
        }
        receiver.join().expect("receiver thread")
    });
    let rate = received as f64 / seconds;
    eprintln!(
        "[bench] loopback UDP: {rate:.0} datagrams/s of {PACKET_BYTES} bytes, {} messages of {size} bytes each",
        messages_per_packet(size)
    );
    Ok(rate * messages_per_packet(size) as f64)
}

/// `--key`: the same as-fast-as-accepted run with an AES-256-GCM keyring on every node,
/// anchored on the plaintext run `plain` of this process.
fn encrypted(args: &Args, plain: &mut Outcome, out: &mut Vec<Figure>) -> Result<(), String> {
    eprintln!("[bench] hearsay: as fast as the queue accepts, encrypted (AES-256-GCM)");
    let key = SecretKey::new([0x5a; 32]).map_err(|e| e.to_string())?;
    let mut sealed = measure(args, None, Wire::Key(&key))?;
    let anchor = |v: f64| Some(("hearsay plaintext, same run".to_owned(), v));
    let rows = [
        ("encrypted_delivered_rate", sealed.rate(), plain.rate(), "messages/s"),
        ("encrypted_p99_latency", sealed.percentile_ms(0.99), plain.percentile_ms(0.99), "ms"),
        (
            "encrypted_bytes_per_message",
            sealed.bytes_per_message(),
            plain.bytes_per_message(),
            "bytes",
        ),
    ];
    for (metric, value, base, unit) in rows {
        out.push(Figure { anchor: anchor(base), ..Figure::new("broadcast", metric, value, unit) });
    }
    Ok(())
}

/// `--tls`: the same as-fast-as-accepted run with every node on Alertmanager's TLS transport
/// (mutual TLS, certificates made for this run), anchored on the plaintext run `plain`; with
/// `--compare`, also next to the most Alertmanager's own TLS transport delivers.
fn over_tls(args: &Args, plain: &mut Outcome, out: &mut Vec<Figure>) -> Result<(), String> {
    eprintln!("[bench] hearsay: as fast as the queue accepts, over TLS (mutual, TLS 1.3)");
    let dir = std::env::temp_dir().join(format!("hearsay-bench-tls-{}", std::process::id()));
    let result = tls_figures(args, &dir, plain, out);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tls_figures(
    args: &Args,
    dir: &std::path::Path,
    plain: &mut Outcome,
    out: &mut Vec<Figure>,
) -> Result<(), String> {
    let file = tls_config_file(dir)?;
    let tls = ClusterTls::load(&file).map_err(|e| e.to_string())?;
    let mut secured = measure(args, None, Wire::Tls(&tls))?;
    let anchor = |v: f64| Some(("hearsay plaintext, same run".to_owned(), v));
    let rows = [
        ("tls_delivered_rate", secured.rate(), plain.rate(), "messages/s"),
        ("tls_p99_latency", secured.percentile_ms(0.99), plain.percentile_ms(0.99), "ms"),
        ("tls_bytes_per_message", secured.bytes_per_message(), plain.bytes_per_message(), "bytes"),
    ];
    for (metric, value, base, unit) in rows {
        out.push(Figure { anchor: anchor(base), ..Figure::new("broadcast", metric, value, unit) });
    }
    if args.compare {
        let (name, best) = alertmanager_tls_best(args, &file)?;
        let anchor = Some((format!("{name} best paced rate of {GO_SWEEP:?}"), best));
        out.push(Figure {
            anchor,
            ..Figure::new(
                "broadcast",
                "tls_delivered_rate_vs_am_tls_best",
                secured.rate(),
                "messages/s",
            )
        });
    }
    Ok(())
}

/// A CA, one certificate every node presents as server and client (loopback names), and a
/// mutual-TLS `--cluster.tls-config` file naming them, as an operator writes it.
fn tls_config_file(dir: &std::path::Path) -> Result<PathBuf, String> {
    let ca = TestCa::new(dir, "bench");
    let leaf = ca.server("bench-node", &[]);
    let yaml = format!(
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n\
         tls_client_config:\n  ca_file: {ca}\n  cert_file: {cert}\n  key_file: {key}\n",
        cert = leaf.cert.display(),
        key = leaf.key.display(),
        ca = ca.file.display(),
    );
    let file = dir.join("cluster-tls.yml");
    std::fs::write(&file, yaml).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}

/// Alertmanager's TLS transport (`mlpeer-amtls`, Go memberlist on `cluster.NewTLSTransport`)
/// with the same certificates, over the paced sweep: the most it delivers to every peer.
fn alertmanager_tls_best(args: &Args, file: &std::path::Path) -> Result<(String, f64), String> {
    let bin = mlpeer()?.with_file_name("mlpeer-amtls");
    let mut name = String::from("alertmanager-tls-transport");
    let mut best: f64 = 0.0;
    for rate in GO_SWEEP {
        eprintln!("[bench] Alertmanager TLS transport: paced at {rate} messages/s");
        let output = Command::new(&bin)
            .args(["bench", "-nodes", &args.nodes.to_string(), "-size", &args.size.to_string()])
            .args(["-seconds", &args.seconds.to_string(), "-queue-retransmit-mult", "3"])
            .args(["-rate", &rate.to_string(), "-tls-config"])
            .arg(file)
            .output()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        if !output.status.success() {
            return Err(format!(
                "Go TLS bench failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((metric, value, impl_name)) = parse_figure(line) else { continue };
            if metric == "delivered_rate" {
                name = impl_name;
                best = best.max(value);
            }
        }
    }
    Ok((name, best))
}

fn go_unit(metric: &str) -> &'static str {
    if metric.contains("latency") {
        "ms"
    } else if metric.starts_with("delivered_rate") {
        "messages/s"
    } else {
        "bytes"
    }
}

/// Paced rates tried on Go memberlist to find the most it delivers to every peer: it sends
/// user broadcasts only on its gossip tick, and past its ceiling (about 33 messages/s with
/// Alertmanager's settings) a full queue delivers nothing to every peer at all, because each
/// round sends the newest messages first.
const GO_SWEEP: [f64; 4] = [10.0, 20.0, 40.0, 80.0];

/// Run the Go harness with the same settings: as fast as its queue accepts, paced at 10,000
/// messages/s, and the sweep. Figures by metric; `best_delivered_rate` is the sweep's best.
fn go_figures(args: &Args) -> Result<(String, BTreeMap<String, f64>), String> {
    let bin = mlpeer()?;
    let mut figures = BTreeMap::new();
    let mut name = String::from("go-memberlist");
    let mut best: f64 = 0.0;
    let runs = [(String::new(), None), ("_at_10k".to_owned(), Some(PACED_RATE))]
        .into_iter()
        .chain(GO_SWEEP.iter().map(|r| (format!("_at_{r}"), Some(*r))));
    for (suffix, rate) in runs {
        eprintln!(
            "[bench] go memberlist: {}",
            rate.map_or("as fast as the queue accepts".into(), |r| format!(
                "paced at {r} messages/s"
            ))
        );
        let mut cmd = Command::new(&bin);
        cmd.args(["bench", "-nodes", &args.nodes.to_string(), "-size", &args.size.to_string()])
            .args(["-seconds", &args.seconds.to_string(), "-queue-retransmit-mult", "3"]);
        if let Some(r) = rate {
            cmd.args(["-rate", &r.to_string()]);
        }
        let output = cmd.output().map_err(|e| format!("running {}: {e}", bin.display()))?;
        if !output.status.success() {
            return Err(format!("Go bench failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((metric, value, impl_name)) = parse_figure(line) else { continue };
            name = impl_name;
            if metric == "delivered_rate" && GO_SWEEP.iter().any(|r| Some(*r) == rate) {
                best = best.max(value);
            }
            figures.insert(format!("{metric}{suffix}"), value);
        }
    }
    figures.insert("best_delivered_rate".into(), best);
    Ok((name, figures))
}

/// `{"scenario":…,"impl":…,"metric":…,"value":…}` → (metric, value, impl).
fn parse_figure(line: &str) -> Option<(String, f64, String)> {
    let field = |key: &str| -> Option<&str> {
        let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = line[start..].trim_start();
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',', '}'])?;
        Some(&rest[..end])
    };
    Some((field("metric")?.to_owned(), field("value")?.parse().ok()?, field("impl")?.to_owned()))
}

/// The Go harness, built from tests/interop/mlpeer with the local Go toolchain if needed.
fn mlpeer() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/interop");
    let bin = out.join("mlpeer-v0.7.0");
    if !bin.exists() || !out.join("mlpeer-amtls").exists() {
        eprintln!("[bench] building the Go memberlist harness (needs Go)…");
        let status = Command::new("bash")
            .arg(root.join("tests/interop/mlpeer/build.sh"))
            .arg(&out)
            .status()
            .map_err(|e| format!("bash: {e}"))?;
        if !status.success() {
            return Err("building the Go harness failed; --compare needs Go (see README)".into());
        }
    }
    Ok(bin)
}

/// CPU time this process has used, from /proc/self/stat (utime + stime).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux we run on.
    Some(Duration::from_millis(ticks * 10))
}

/// The `idle` scenario: CPU a settled cluster uses for probes and gossip alone.
pub(crate) fn idle(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let nodes = cluster(args.nodes, Wire::Plain)?;
    std::thread::sleep(Duration::from_secs(1));
    let (t0, c0) = (Instant::now(), cpu_time().ok_or("no /proc/self/stat")?);
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let (t1, c1) = (Instant::now(), cpu_time().ok_or("no /proc/self/stat")?);
    let share = (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64() * 100.0;
    let packets: u64 = nodes.iter().map(|n| n.stats().driver.udp_sent).sum();
    out.push(Figure::new("idle", format!("cpu_{}_nodes", args.nodes), share, "% of a core"));
    out.push(Figure::new("idle", "packets_sent_total", packets as f64, "packets"));
    Ok(())
}
