//! `redis` (on request): Redis mode on a private `redis-server`. How long a silence written
//! on one of five peers takes to be on all of them, next to one bare PUBLISH reaching a
//! subscriber through the same server, measured the same way in the same run; the server's
//! pipelined PUBLISH rate as the ceiling for the update load that [`crate::redis_load`]
//! drives through three more peers.

use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearsay::core::UnixMillis;
use hearsay::core::cluster::Cluster;
use hearsay::core::state::Timestamp;
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Query, Silence, Silences, SilencesConfig,
};
use hearsay::node::States as _;
use hearsay::node::{Node, NodeConfig, RedisConfig};

use crate::Args;
use crate::redis_load::{self, Ceiling};
use crate::report::Figure;

const PEERS: usize = 5;
const ROUNDS: usize = 50;
const KEY: &str = "silences:1";

/// A private redis-server, killed on drop.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> Result<Server, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server is needed for this scenario: {e}"))?;
    let server = Server(child, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.map_or(0, |d| d.as_millis() as i64))
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() * 99 / 100])
}

/// One PUBLISH to a subscriber thread through the server, `ROUNDS` times (ms each).
fn publish_round_trips(url: &str) -> Result<Vec<f64>, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut sub_conn = client.get_connection().map_err(|e| e.to_string())?;
    let mut pub_conn = client.get_connection().map_err(|e| e.to_string())?;
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let subscriber = std::thread::spawn(move || {
        let mut sub = sub_conn.as_pubsub();
        // `subscribe` returns once the server confirmed it.
        if sub.subscribe("bench-anchor").is_err() || tx.send(()).is_err() {
            return;
        }
        for _ in 0..ROUNDS {
            if sub.get_message().is_err() || tx.send(()).is_err() {
                return;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "anchor subscription failed")?;
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        redis::cmd("PUBLISH")
            .arg("bench-anchor")
            .arg(round)
            .query::<i64>(&mut pub_conn)
            .map_err(|e| e.to_string())?;
        rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "anchor message lost")?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = subscriber.join();
    Ok(times)
}

pub(crate) fn redis(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let server = start_server()?;
    let url = format!("redis://127.0.0.1:{}/0", server.1);
    let publish_ms = silence_latency(&url, out)?;
    // The load peers settle while the ceiling is measured (a dozen small messages on their
    // own channels next to its hundreds of thousands), not during the silence figures.
    let load = redis_load::start_peers(&url)?;
    let size = redis_load::update_len()?;
    // The better of two runs of about a second each: other work on the VM can take the core
    // redis-benchmark needs, and a ceiling is what the server can do.
    // A multiple of the pipeline depth: redis-benchmark sends whole pipelines, so it would
    // publish more than asked.
    let n = ((50_000.0 * args.seconds).max(10_000.0) as u64).div_ceil(32) * 32;
    let mut best: f64 = 0.0;
    for _ in 0..2 {
        best = best.max(publish_ceiling(&server, size, n)?);
    }
    let ceiling = Ceiling {
        name: format!("pipelined PUBLISH of {size} B to 1 subscriber, 1 client (-c 1 -P 32)"),
        per_s: best,
    };
    out.push(Figure::new("redis", "publish_ceiling_c1_p32", ceiling.per_s, "msg/s"));
    let result = redis_load::run(args, &url, &load, &ceiling, publish_ms, out);
    // The server goes first: a peer shutting down publishes its full state (millions of
    // entries by now) for the others to merge, seconds that nothing measures; with the server
    // gone that publish fails at once.
    drop(server);
    load.shut_down();
    result
}

/// The silence figures; returns the anchor's (p50, p99) in ms for the load phases.
fn silence_latency(url: &str, out: &mut Vec<Figure>) -> Result<(f64, f64), String> {
    let mut peers = Vec::with_capacity(PEERS);
    for i in 0..PEERS {
        let mut cluster = Cluster::new();
        cluster.register(KEY, Silences::new(SilencesConfig::default(), i as u64));
        let name = format!("bench-{i}");
        let mut config = NodeConfig::grafana_redis(Some(&name), RedisConfig::grafana(url, "bench"));
        config.settle_timeout = Duration::from_secs(1);
        config.swim.push_pull_interval = Duration::from_secs(3600);
        peers.push(Node::start_cluster(config, cluster, None).map_err(|e| e.to_string())?);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !peers.iter().all(|p| p.visible_members().len() == PEERS) {
        if Instant::now() > deadline {
            return Err("the Redis peers did not see each other".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let times = (0..ROUNDS).map(|round| silence_round(&peers, round)).collect::<Result<_, _>>()?;
    // The silence peers are idle from here; their threads would only compete with what
    // follows.
    drop(peers);
    let (anchor_p50, anchor_p99) = percentiles(publish_round_trips(url)?);
    let (p50, p99) = percentiles(times);
    let anchor = |q: &str, v| Some((format!("one PUBLISH to a subscriber, {q}"), v));
    out.push(Figure {
        anchor: anchor("p50", anchor_p50),
        ..Figure::new("redis", "silence_everywhere_p50_5_peers", p50, "ms")
    });
    out.push(Figure {
        anchor: anchor("p99", anchor_p99),
        ..Figure::new("redis", "silence_everywhere_p99_5_peers", p99, "ms")
    });
    Ok((anchor_p50, anchor_p99))
}

/// Set one silence on a peer; ms until every peer holds it.
fn silence_round(peers: &[Node], round: usize) -> Result<f64, String> {
    let origin = &peers[round % PEERS];
    let t = now();
    let silence = Silence {
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "bench".into(),
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "round", round.to_string())],
        }],
        ..Silence::default()
    };
    let started = Instant::now();
    let id = origin.set_silence(KEY, silence, t).map_err(|e| e.to_string())?;
    let query = Query { ids: vec![id.as_str().to_owned()], ..Query::default() };
    while !peers
        .iter()
        .all(|p| p.query_silences(KEY, &query, now()).is_ok_and(|found| found.len() == 1))
    {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("silence {round} did not reach every Redis peer in 30 s"));
        }
        std::hint::spin_loop();
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// A subscriber thread on `channel` that reads until `n` messages of `size` bytes arrived,
/// the connection closed, or nothing came for 5 s; returns the count once the server
/// confirmed the subscription. It speaks RESP on a bare socket and counts bytes (every
/// message on the private channel has the same length): the redis crate's parser, an
/// allocation per message, fell behind redis-benchmark on the busy 2-core VM, and the server
/// then cut it off at its 32 MB pubsub output limit — a ceiling of our reading, not the
/// server's.
fn count_messages(
    port: u16,
    channel: &str,
    size: usize,
    n: u64,
) -> Result<JoinHandle<u64>, String> {
    use std::io::{Read as _, Write as _};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let subscribe = format!("*2\r\n{}{}", bulk("SUBSCRIBE"), bulk(channel));
    sock.write_all(subscribe.as_bytes()).map_err(|e| e.to_string())?;
    let confirmed = format!("*3\r\n{}{}:1\r\n", bulk("subscribe"), bulk(channel));
    let mut reply = vec![0; confirmed.len()];
    sock.read_exact(&mut reply).map_err(|e| format!("the ceiling's subscription: {e}"))?;
    if reply != confirmed.as_bytes() {
        return Err(format!("unexpected subscription reply {:?}", String::from_utf8_lossy(&reply)));
    }
    let message_len =
        format!("*3\r\n{}{}${size}\r\n", bulk("message"), bulk(channel)).len() + size + 2;
    let want = n * message_len as u64;
    Ok(std::thread::spawn(move || {
        let (mut buf, mut got) = (vec![0u8; 1 << 16], 0u64);
        while got < want {
            match sock.read(&mut buf) {
                Ok(0) => {
                    eprintln!("[bench] redis: the server closed the ceiling's subscriber");
                    break;
                }
                Ok(k) => got += k as u64,
                Err(_) => break,
            }
        }
        got / message_len as u64
    }))
}

/// `redis-benchmark`'s pipelined PUBLISH rate (one client, 32 in flight) of `n` `size`-byte
/// messages to one subscriber on `server`, which must receive every one.
fn publish_ceiling(server: &Server, size: usize, n: u64) -> Result<f64, String> {
    let channel = "bench-ceiling";
    let counter = count_messages(server.1, channel, size, n)?;
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.1.to_string(), "-P", "32", "-c", "1"])
        .args(["-n", &n.to_string(), "-q", "PUBLISH", channel, &"x".repeat(size)])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "redis-benchmark is needed for the PUBLISH ceiling: apt-get install redis-tools"
                    .to_owned()
            }
            _ => format!("redis-benchmark: {e}"),
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(format!("redis-benchmark failed ({}): {err}{text}", output.status));
    }
    // Progress lines end in \r; the summary reads "PUBLISH …: 347947.09 requests per second, …".
    let rate = text
        .split(['\r', '\n'])
        .filter_map(|l| l.split_once(" requests per second")?.0.split_whitespace().next_back())
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back()
        .ok_or(format!("no \"requests per second\" in redis-benchmark's output: {text}"))?;
    let got = counter.join().map_err(|_| "the ceiling's subscriber panicked")?;
    if got != n {
        return Err(format!("the ceiling's subscriber received {got} of {n} messages"));
    }
    eprintln!("[bench] redis: redis-benchmark PUBLISH {rate:.0}/s, all {n} to the subscriber");
    Ok(rate)
}
