//! `redis` (on request): Redis mode on a private `redis-server` — how long a silence written
//! on one of five peers takes to be on all of them, next to one bare PUBLISH reaching a
//! subscriber through the same server, measured the same way in the same run.

use std::process::{Child, Command, Stdio};
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

pub(crate) fn redis(_args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let server = start_server()?;
    let url = format!("redis://127.0.0.1:{}/0", server.1);
    let mut peers = Vec::with_capacity(PEERS);
    for i in 0..PEERS {
        let mut cluster = Cluster::new();
        cluster.register(KEY, Silences::new(SilencesConfig::default(), i as u64));
        let name = format!("bench-{i}");
        let mut config =
            NodeConfig::grafana_redis(Some(&name), RedisConfig::grafana(&url, "bench"));
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
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
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
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (anchor_p50, anchor_p99) = percentiles(publish_round_trips(&url)?);
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
    drop(peers);
    drop(server);
    Ok(())
}
