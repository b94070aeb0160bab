//! `redis`, the load half: notification-log updates between three Redis-mode peers on the
//! private server. Peer 0 writes; peers 1 and 2 are counted. How many updates a second reach
//! every other peer when peer 0 writes as fast as it can (next to the server's own pipelined
//! PUBLISH rate), how long one takes at 10,000 a second, and whether every accepted update
//! arrives at paced rates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver as Inbox, Sender, unbounded};
use hearsay::core::UnixMillis;
use hearsay::core::cluster::{Cluster, Part};
use hearsay::core::state::nflog::{Flush, Nflog, Receiver, ReceiverDataValue};
use hearsay::node::{Node, NodeConfig, RedisConfig, StateError, States as _};
use prost::Message as _;

use crate::Args;
use crate::report::Figure;

/// The peer under test: a Redis-mode node.
type Peer = Node;

/// Grafana's notification-log key for org 1.
const KEY: &str = "notificationlog:1";
/// Apart from the silence peers' prefix, so those peers' keys never count as members here.
const PREFIX: &str = "bench-nflog";
const PEERS: usize = 3;
/// A wait for deliveries ends this long after the last write in any case…
const WAIT_CAP: Duration = Duration::from_secs(30);
/// …and sooner once no receiver gained an entry for this long: a writer's backlog arrives
/// at thousands a second, and with the periodic full state an hour out nothing that has not
/// arrived by then is still on its way.
const STALL: Duration = Duration::from_millis(500);
/// One paced write in every 10 ms is a probe whose arrival is timed.
const PROBE_EVERY: Duration = Duration::from_millis(10);
const LATENCY_RATE: f64 = 10_000.0;
/// Paced rates checked for loss besides the latency phase's 10,000/s.
const LOSS_RATES: [f64; 2] = [50_000.0, 100_000.0];
const REPEAT: Duration = Duration::from_secs(4 * 3600);
static FIRING: [u64; 1] = [0x5eed_0001];

fn start_peer(url: &str, name: &str) -> Result<Peer, String> {
    let mut cluster = Cluster::new();
    cluster.register(KEY, Nflog::new(Duration::from_secs(120 * 3600)));
    let mut config = NodeConfig::grafana_redis(Some(name), RedisConfig::grafana(url, PREFIX));
    config.settle_timeout = Duration::from_secs(1);
    // Only updates carry entries: the periodic full state would deliver what the update
    // path lost.
    config.swim.push_pull_interval = Duration::from_secs(3600);
    Node::start_cluster(config, cluster, None).map_err(|e| e.to_string())
}

/// Entries in a peer's log.
fn held(peer: &Peer) -> usize {
    peer.with_cluster(|c| c.state::<Nflog>(KEY).map_or(0, Nflog::len)).unwrap_or(0)
}

/// Updates a peer's cluster layer dropped because its send queue was full (silently: the
/// write itself succeeded).
fn dropped_at_queue(peer: &Peer) -> u64 {
    peer.with_cluster(|c| c.global_stats().outgoing_dropped).unwrap_or(0)
}

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.map_or(0, |d| d.as_millis() as i64))
}

fn group_key(n: u64) -> String {
    format!("g-{n}")
}

fn receiver() -> Receiver {
    Receiver::new("bench", "webhook", 0)
}

fn flush(now: UnixMillis) -> Flush<'static> {
    Flush { firing: &FIRING, resolved: &[], send_resolved: true, repeat_interval: REPEAT, now }
}

/// Bytes of the `Part` one write publishes: the same entry logged in a scratch log and
/// wrapped as the cluster layer wraps it (a group key of seven digits, as most writes have).
pub(crate) fn update_len() -> Result<usize, String> {
    let mut log = Nflog::new(Duration::from_secs(120 * 3600));
    let f = flush(now());
    let data = log
        .log(
            &receiver(),
            &group_key(1_000_000),
            f.firing,
            f.resolved,
            &BTreeMap::new(),
            Some(2 * REPEAT),
            f.now,
        )
        .map_err(|e| e.to_string())?
        .ok_or("the scratch log refused its first entry")?;
    Ok(Part { key: KEY.to_owned(), data }.encode_to_vec().len())
}

/// The three load peers, started before the ceiling is measured so that their settling is
/// behind them when the load begins.
pub(crate) struct Load {
    peers: Vec<Peer>,
    started: Instant,
}

impl Load {
    /// Shut the peers down side by side: each collects and marshals its whole log first.
    pub(crate) fn shut_down(self) {
        std::thread::scope(|s| {
            for peer in self.peers {
                s.spawn(move || drop(peer));
            }
        });
    }
}

pub(crate) fn start_peers(url: &str) -> Result<Load, String> {
    let peers =
        (0..PEERS).map(|i| start_peer(url, &format!("nflog-{i}"))).collect::<Result<_, _>>()?;
    Ok(Load { peers, started: Instant::now() })
}

/// Wait until every load peer is subscribed to the state's channel and settled, with the full
/// states they send each other on settling behind them.
fn settled(url: &str, load: &Load) -> Result<(), String> {
    let mut conn = connect(url)?;
    let channel = format!("{PREFIX}:{KEY}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The server's own count: a write before every subscription is in would be lost.
        let (_, subscribed): (String, usize) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        if subscribed >= PEERS && load.peers.iter().all(|p| p.is_ready()) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{subscribed} of {PEERS} load peers subscribed and settled"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Settling times out after 1 s and a peer answers a second full-state request up to 1 s
    // after the first: a full state arriving mid-phase would deliver entries the updates did
    // not.
    let answered = load.started + Duration::from_secs(3);
    std::thread::sleep(answered.saturating_duration_since(Instant::now()));
    Ok(())
}

fn connect(url: &str) -> Result<redis::Connection, String> {
    redis::Client::open(url).and_then(|c| c.get_connection()).map_err(|e| e.to_string())
}

/// Wait until nothing was published on the load peers' channels for 250 ms (30 s at most):
/// the receivers re-publish what they merged, and a phase must not start while the last
/// one's traffic still flows.
fn quiet(url: &str) -> Result<(), String> {
    let mut conn = connect(url)?;
    let mut sub = conn.as_pubsub();
    let channels = [format!("{PREFIX}:{KEY}"), format!("{PREFIX}:full_state")];
    sub.subscribe(&channels).map_err(|e| e.to_string())?;
    sub.set_read_timeout(Some(Duration::from_millis(250))).map_err(|e| e.to_string())?;
    let (started, mut seen) = (Instant::now(), 0u64);
    while started.elapsed() < WAIT_CAP {
        match sub.get_message() {
            Ok(_) => seen += 1,
            Err(e) if e.is_timeout() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
    eprintln!("[bench] redis: the load channels were still busy after 30 s ({seen} messages)");
    Ok(())
}

/// Peer 0's writes: distinct group keys `g-<n>` for one receiver, counted.
struct Writer<'p> {
    peer: &'p Peer,
    receiver: Receiver,
    data: BTreeMap<String, ReceiverDataValue>,
    next: u64,
    accepted: u64,
    refused: u64,
}

impl Writer<'_> {
    /// Log the next group; a refusal (a full queue) is counted and retried after a yield.
    /// Returns the group key written.
    fn write(&mut self) -> Result<String, String> {
        let key = group_key(self.next);
        self.next += 1;
        loop {
            let logged =
                self.peer.log_notification(KEY, &self.receiver, &key, &flush(now()), &self.data);
            match logged {
                Ok(true) => {
                    self.accepted += 1;
                    return Ok(key);
                }
                Ok(false) => return Err(format!("{key} was logged before: keys must be new")),
                // Retrying cannot help these.
                Err(e @ (StateError::NoCluster | StateError::NoState { .. })) => {
                    return Err(e.to_string());
                }
                Err(e @ StateError::Nflog(_)) => return Err(e.to_string()),
                Err(_) => {
                    self.refused += 1;
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// How a phase's updates arrived on the receivers.
struct Delivery {
    /// Entries the receiver that got fewest gained in the phase.
    delivered: u64,
    /// From the phase's first write until the last receiver's count last grew.
    everywhere_after: Duration,
    complete: bool,
}

/// Poll the receivers' counts (entries beyond `baseline`) every millisecond from the phase's
/// start; once `done` is set (with `accepted` final), wait until each holds `accepted` new
/// entries, or nothing arrived for [`STALL`], or [`WAIT_CAP`] passed.
fn watch(
    receivers: &[Peer],
    baseline: &[usize],
    start: Instant,
    accepted: &AtomicU64,
    done: &AtomicBool,
) -> Delivery {
    let mut gained = vec![0u64; receivers.len()];
    let mut grew = vec![start; receivers.len()];
    let mut ended = None;
    loop {
        let t = Instant::now();
        for (i, p) in receivers.iter().enumerate() {
            let n = held(p).saturating_sub(baseline[i]) as u64;
            if n != gained[i] {
                (gained[i], grew[i]) = (n, t);
            }
        }
        if done.load(Ordering::Acquire) {
            let ended = *ended.get_or_insert(t);
            let target = accepted.load(Ordering::Acquire);
            let complete = gained.iter().all(|&n| n >= target);
            let quiet = grew.iter().chain([&ended]).all(|g| t.duration_since(*g) > STALL);
            if complete || quiet || t.duration_since(ended) > WAIT_CAP {
                let last = grew.iter().copied().max().unwrap_or(start);
                return Delivery {
                    delivered: gained.iter().copied().min().unwrap_or(0),
                    everywhere_after: last.duration_since(start),
                    complete,
                };
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A probe: the group key written and when the write began.
type Probe = (String, Instant);

/// Spin over the pending probes until `give_up`: a probe has arrived on a receiver once
/// that receiver's dedup decision for it is "already notified". Returns the time until each
/// probe was on every receiver (ms) and how many never got there.
fn time_probes(
    receivers: &[Peer],
    probes: &Inbox<Probe>,
    give_up: &AtomicBool,
) -> (Vec<f64>, usize) {
    let r = receiver();
    let mut pending: Vec<(Probe, Vec<bool>)> = Vec::new();
    let mut times = Vec::new();
    loop {
        let last_sweep = give_up.load(Ordering::Acquire);
        pending.extend(probes.try_iter().map(|p| (p, vec![false; receivers.len()])));
        pending.retain_mut(|((key, sent), seen)| {
            for (peer, seen) in receivers.iter().zip(seen.iter_mut()) {
                *seen = *seen
                    || peer.should_notify(KEY, &r, key, &flush(now())).is_ok_and(|d| !d.notify);
            }
            let everywhere = seen.iter().all(|s| *s);
            if everywhere {
                times.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            !everywhere
        });
        if last_sweep {
            return (times, pending.len());
        }
        // Not spinning: on two cores a spinning poller takes the CPU the peers' loops need,
        // and the figure would measure the poller. 20 µs is far below the latencies timed.
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// What one phase measured.
struct Outcome {
    accepted: u64,
    refused: u64,
    /// How long peer 0 wrote.
    wrote_for: Duration,
    dropped_at_queue: u64,
    delivery: Delivery,
    probe_ms: Vec<f64>,
    lost_probes: usize,
}

/// One phase: peer 0 writes for `seconds`, at `rate` a second or (`None`) as fast as it can,
/// every [`PROBE_EVERY`] with a timed probe when `probe`; then the wait for deliveries.
fn phase(
    peers: &[Peer],
    writer: &mut Writer<'_>,
    rate: Option<f64>,
    seconds: f64,
    probe: bool,
) -> Result<Outcome, String> {
    let receivers = &peers[1..];
    let (accepted0, refused0, dropped0) =
        (writer.accepted, writer.refused, dropped_at_queue(&peers[0]));
    let (accepted, done, give_up) =
        (AtomicU64::new(0), AtomicBool::new(false), AtomicBool::new(false));
    let (probe_tx, probe_rx) = unbounded::<Probe>();
    // Counted here, not in the watcher: its thread may start after the first write arrived.
    let baseline: Vec<usize> = receivers.iter().map(held).collect();
    let start = Instant::now();
    let (written, delivery, (probe_ms, lost_probes)) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(receivers, &baseline, start, &accepted, &done));
        let prober = probe.then(|| s.spawn(|| time_probes(receivers, &probe_rx, &give_up)));
        let written = write_for(writer, rate, seconds, probe.then_some(&probe_tx));
        accepted.store(writer.accepted - accepted0, Ordering::Release);
        done.store(true, Ordering::Release);
        let delivery = watcher.join().expect("watcher");
        give_up.store(true, Ordering::Release);
        let probes = prober.map_or((Vec::new(), 0), |p| p.join().expect("prober"));
        (written, delivery, probes)
    });
    Ok(Outcome {
        accepted: writer.accepted - accepted0,
        refused: writer.refused - refused0,
        wrote_for: written?,
        dropped_at_queue: dropped_at_queue(&peers[0]) - dropped0,
        delivery,
        probe_ms,
        lost_probes,
    })
}

/// Write for `seconds`: flat out, or paced (a write that fell behind its due time goes at
/// once, so the mean rate holds). Every [`PROBE_EVERY`] of writes is handed to `probes`.
fn write_for(
    writer: &mut Writer<'_>,
    rate: Option<f64>,
    seconds: f64,
    probes: Option<&Sender<Probe>>,
) -> Result<Duration, String> {
    let start = Instant::now();
    let budget = Duration::from_secs_f64(seconds);
    let Some(rate) = rate else {
        while start.elapsed() < budget {
            for _ in 0..64 {
                writer.write()?;
            }
        }
        return Ok(start.elapsed());
    };
    let probe_every = (rate * PROBE_EVERY.as_secs_f64()).max(1.0) as u64;
    for i in 0..(rate * seconds) as u64 {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        // Up to a millisecond early: one sleep per millisecond of writes, not per write (a
        // writer that sleeps per write on a busy machine waits for the CPU after each).
        let ahead = due.saturating_duration_since(Instant::now());
        if ahead > Duration::from_millis(1) {
            std::thread::sleep(ahead);
        }
        let sent = Instant::now();
        let key = writer.write()?;
        if let Some(tx) = probes.filter(|_| i % probe_every == 0) {
            let _ = tx.send((key, sent));
        }
    }
    Ok(start.elapsed())
}

/// Say on stderr what a phase did that its figures do not; `asked` is a paced phase's rate.
fn note(what: &str, asked: Option<f64>, o: &Outcome) {
    let rate = o.accepted as f64 / o.wrote_for.as_secs_f64();
    // A busy machine can hold the writer below its pace; the figure keeps the asked rate's
    // name, so say what it was.
    let short = match asked {
        Some(asked) if rate < 0.95 * asked => format!(", short of the {asked:.0}/s asked"),
        _ => String::new(),
    };
    eprintln!(
        "[bench] redis {what}: peer 0 wrote {} in {:.2} s ({rate:.0}/s{short}; {} refused, {} \
         dropped at its send queue); every receiver had {} after {:.2} s{}",
        o.accepted,
        o.wrote_for.as_secs_f64(),
        o.refused,
        o.dropped_at_queue,
        o.delivery.delivered,
        o.delivery.everywhere_after.as_secs_f64(),
        if o.delivery.complete { "" } else { " — the wait ended before all had arrived" },
    );
}

fn loss_figure(metric: String, o: &Outcome) -> Figure {
    let ratio =
        if o.accepted == 0 { f64::NAN } else { o.delivery.delivered as f64 / o.accepted as f64 };
    Figure {
        anchor: Some(("every accepted update".to_owned(), 1.0)),
        ..Figure::new("redis", metric, ratio, "ratio")
    }
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    if ms.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() * 99 / 100])
}

/// The ceiling: the server's pipelined PUBLISH rate to one subscriber, `size`-byte payloads.
#[derive(Debug, Clone)]
pub(crate) struct Ceiling {
    pub(crate) name: String,
    pub(crate) per_s: f64,
}

/// The load phases; `publish_ms` is one PUBLISH's (p50, p99) to a subscriber, measured in
/// this run.
pub(crate) fn run(
    args: &Args,
    url: &str,
    load: &Load,
    ceiling: &Ceiling,
    publish_ms: (f64, f64),
    out: &mut Vec<Figure>,
) -> Result<(), String> {
    settled(url, load)?;
    let peers = &load.peers;
    let phase = |writer: &mut Writer<'_>, rate, probe| {
        quiet(url)?;
        phase(peers, writer, rate, args.seconds, probe)
    };
    let mut writer = Writer {
        peer: &peers[0],
        receiver: receiver(),
        data: BTreeMap::new(),
        next: 0,
        accepted: 0,
        refused: 0,
    };
    let fast = phase(&mut writer, None, false)?;
    note("as fast as peer 0 can write", None, &fast);
    throughput_figures(&fast, ceiling, out);

    let paced = phase(&mut writer, Some(LATENCY_RATE), true)?;
    note("at 10000/s with probes", Some(LATENCY_RATE), &paced);
    if paced.lost_probes > 0 {
        eprintln!("[bench] redis: {} probes never reached every receiver", paced.lost_probes);
    }
    let (p50, p99) = percentiles(paced.probe_ms.clone());
    let anchor = |q: &str, v| Some((format!("one PUBLISH to a subscriber, {q}"), v));
    for (q, ms, anchor_ms) in [("p50", p50, publish_ms.0), ("p99", p99, publish_ms.1)] {
        let metric = format!("update_everywhere_{q}_at_10000_per_s");
        out.push(Figure { anchor: anchor(q, anchor_ms), ..Figure::new("redis", metric, ms, "ms") });
    }
    out.push(loss_figure("delivered_over_accepted_at_10000_per_s".into(), &paced));

    for rate in LOSS_RATES {
        let o = phase(&mut writer, Some(rate), false)?;
        note(&format!("at {rate:.0}/s"), Some(rate), &o);
        out.push(loss_figure(format!("delivered_over_accepted_at_{rate:.0}_per_s"), &o));
    }
    // Peer 0's own top rate (on stderr above) was checked by the flat-out phase itself; a
    // paced rerun of it would take as long again with today's peer. A paced run is needed
    // only if it outran the server: then at the server's rate, the most that can arrive.
    out.push(loss_figure("delivered_over_accepted_flat_out".into(), &fast));
    if fast.accepted as f64 / fast.wrote_for.as_secs_f64() > ceiling.per_s {
        let rate = ceiling.per_s.round();
        let o = phase(&mut writer, Some(rate), false)?;
        note(&format!("at the ceiling's {rate:.0}/s"), Some(rate), &o);
        out.push(loss_figure("delivered_over_accepted_at_ceiling_rate".into(), &o));
    }
    Ok(())
}

fn throughput_figures(o: &Outcome, ceiling: &Ceiling, out: &mut Vec<Figure>) {
    let per_s = o.delivery.delivered as f64 / o.delivery.everywhere_after.as_secs_f64();
    out.push(Figure {
        anchor: Some((ceiling.name.clone(), ceiling.per_s)),
        ..Figure::new("redis", "updates_to_every_peer_per_s_3_peers", per_s, "updates/s")
    });
    for (metric, n) in [
        ("updates_accepted_flat_out", o.accepted),
        ("updates_refused_flat_out", o.refused),
        ("updates_delivered_everywhere_flat_out", o.delivery.delivered),
    ] {
        out.push(Figure::new("redis", metric, n as f64, "updates"));
    }
}
