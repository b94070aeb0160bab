//! `soak`: ten gossip nodes on loopback under a steady load for minutes (hours by flag), one of
//! them restarted from its storage directory every period, with a divergence check at the end
//! of every period.
//!
//! The load: 1,000 notifications a second, each a Dedup decision and a SetNotifies write on one
//! node in turn (2,000 groups, so entries are overwritten and replicated all the time); two
//! silences a second created on one node and, twenty seconds later, expired on another.
//! Snapshots every 30 s, so the journal rotates throughout; push/pull every 15 s.
//!
//! At each period's end the load pauses and every node's states are digested (each entry's
//! bytes hashed, summed: the order states keep entries in does not matter); a quiet point
//! where the ten digests do not agree within 30 s counts as diverged. Then one node leaves,
//! shuts down and starts again from its directory under a new name, as Alertmanager restarts.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hearsay::core::UnixMillis;
use hearsay::core::state::Timestamp;
use hearsay::core::state::delimited;
use hearsay::core::state::nflog::{Flush, Receiver};
use hearsay::core::state::silences::{Matcher, MatcherSet, MatcherType, Silence};
use hearsay::node::{Node, NodeConfig, States as _, StatesConfig};
use parking_lot::RwLock;

use crate::Args;
use crate::report::Figure;

const NODES: usize = 10;
const NOTIFICATIONS_PER_SECOND: u64 = 1_000;
const GROUPS: u64 = 2_000;
const SILENCES_EVERY: Duration = Duration::from_millis(500);
const SILENCE_LIFETIME: Duration = Duration::from_secs(20);
/// Push/pull repairs what gossip missed; a quiet point allows two of them (a quarter of
/// Alertmanager's minute, so a run of minutes has quiet points that mean something).
const PUSH_PULL: Duration = Duration::from_secs(15);
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);

fn now() -> UnixMillis {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    UnixMillis(since.map_or(0, |d| d.as_millis() as i64))
}

/// Resident memory of this process, in bytes.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// CPU time of the threads whose name starts with `prefix`, and of the whole process.
fn cpu(prefix: &str) -> Option<(Duration, Duration)> {
    let ticks = |stat: &str| -> Option<u64> {
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    let mut threads = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            threads +=
                ticks(&std::fs::read_to_string(path.join("stat")).unwrap_or_default()).unwrap_or(0);
        }
    }
    let process = ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    // USER_HZ is 100 on every Linux we run on.
    Some((Duration::from_millis(threads * 10), Duration::from_millis(process * 10)))
}

struct Member {
    /// `None` only while it restarts, under the write lock.
    node: Option<Node>,
    dir: PathBuf,
    lives: usize,
}

impl Member {
    fn node(&self) -> &Node {
        self.node.as_ref().expect("a member is up whenever the lock is free")
    }
}

fn start(index: usize, lives: usize, dir: &Path, peers: Vec<String>) -> Result<Node, String> {
    let states = StatesConfig::alertmanager(Duration::from_secs(120 * 3600));
    let cluster = states.load(Some(dir)).map_err(|e| e.to_string())?;
    // Thread names are cut at 15 bytes: `hearsay-soak-07` is each node's loop, every life.
    let name = format!("soak-{index:02}-{lives}");
    let mut config =
        NodeConfig::alertmanager(Some(&name), "127.0.0.1:0".parse().expect("literal"), peers);
    config.maintenance_interval = Duration::from_secs(30);
    config.swim.push_pull_interval = PUSH_PULL;
    Node::start_cluster(config, cluster, Some(states.snapshots(dir.to_path_buf())))
        .map_err(|e| format!("{name}: {e}"))
}

/// Each entry's bytes hashed and summed, per state: equal on two nodes holding the same
/// entries, whatever order they keep them in.
fn digest(node: &Node) -> Option<(u64, u64)> {
    node.with_cluster(|c| {
        let sum = |key: &str| {
            let bytes = c.marshal(key).unwrap_or_default();
            delimited::split(&bytes).map_or(u64::MAX, |entries| {
                entries
                    .iter()
                    .fold(0u64, |acc, (_, e)| acc.wrapping_add(xxhash_rust::xxh3::xxh3_64(e)))
            })
        };
        (sum("nfl"), sum("sil"))
    })
}

fn silence(n: u64) -> Silence {
    let t = now();
    Silence {
        matcher_sets: vec![MatcherSet {
            matchers: vec![Matcher::new(MatcherType::Equal, "soak", n.to_string())],
        }],
        starts_at: Timestamp::from(t),
        ends_at: Timestamp::from(UnixMillis(t.0 + 3_600_000)),
        created_by: "hearsay-bench soak".into(),
        comment: "soak".into(),
        ..Silence::default()
    }
}

/// What the load did, summed over its threads.
#[derive(Default)]
struct Counts {
    notifications: AtomicU64,
    refused: AtomicU64,
    silences: AtomicU64,
    expired: AtomicU64,
    /// Time the load ran, pauses excluded.
    active_ms: AtomicU64,
}

/// The load on whichever members are up; pauses while `paused`, ends with `stop`.
fn load(members: &RwLock<Vec<Member>>, paused: &AtomicBool, stop: &AtomicBool, counts: &Counts) {
    let receiver = Receiver::new("soak", "webhook", 0);
    let mut started = Instant::now();
    let mut sent = 0u64;
    let mut next_silence = Instant::now();
    let mut live: VecDeque<(Instant, String)> = VecDeque::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Relaxed) {
            // A pause does not make up for itself: the pace starts again after it.
            counts.active_ms.fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            while paused.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            (started, sent) = (Instant::now(), 0);
            continue;
        }
        // Paced: as many as the elapsed time allows.
        let due = (started.elapsed().as_secs_f64() * NOTIFICATIONS_PER_SECOND as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        sent += 1;
        n += 1;
        let members = members.read();
        let node = members[(n % NODES as u64) as usize].node();
        let group = format!("{{}}:{{alertname=\"Soak{}\"}}", n.wrapping_mul(7919) % GROUPS);
        let firing = [n];
        let flush = Flush {
            firing: &firing,
            resolved: &[],
            send_resolved: false,
            repeat_interval: Duration::from_secs(4 * 3600),
            now: now(),
        };
        let decided = node.should_notify("nfl", &receiver, &group, &flush).is_ok();
        match node.log_notification("nfl", &receiver, &group, &flush, &Default::default()) {
            Ok(_) if decided => counts.notifications.fetch_add(1, Ordering::Relaxed),
            _ => counts.refused.fetch_add(1, Ordering::Relaxed),
        };
        if Instant::now() >= next_silence {
            next_silence += SILENCES_EVERY;
            match node.set_silence("sil", silence(n), now()) {
                Ok(id) => {
                    counts.silences.fetch_add(1, Ordering::Relaxed);
                    live.push_back((Instant::now(), id.to_string()));
                }
                Err(_) => drop(counts.refused.fetch_add(1, Ordering::Relaxed)),
            }
            while live.front().is_some_and(|(at, _)| at.elapsed() >= SILENCE_LIFETIME) {
                let (_, id) = live.pop_front().expect("checked");
                // Expired on another node than the one that made it, most of the time.
                let other = members[((n + 3) % NODES as u64) as usize].node();
                match other.expire_silence("sil", &id, now()) {
                    Ok(()) => drop(counts.expired.fetch_add(1, Ordering::Relaxed)),
                    Err(_) => drop(counts.refused.fetch_add(1, Ordering::Relaxed)),
                }
            }
        }
    }
    counts.active_ms.fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
}

/// Messages the nodes dropped at a bound, summed: host events not drained, gossip the queue
/// had no room for, direct and oversized copies not queued.
fn dropped(members: &[Member]) -> [u64; 4] {
    let mut sum = [0; 4];
    for m in members {
        let node = m.node();
        sum[0] += node.stats().events_dropped;
        node.with_cluster(|c| {
            sum[1] += c.global_stats().outgoing_dropped;
            for s in c.stats().values() {
                sum[2] += s.direct_dropped;
                sum[3] += s.oversize_dropped;
            }
        });
    }
    sum
}

/// Slope of `samples` (seconds, bytes) by least squares, in bytes per hour.
fn slope_per_hour(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = samples.iter().fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
    let (num, den) = samples
        .iter()
        .fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx).powi(2)));
    if den == 0.0 { 0.0 } else { num / den * 3600.0 }
}

pub(crate) fn run(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    // At least three periods, so there are restarts; at most five minutes each.
    let period = (total / 3).min(Duration::from_secs(300));
    let root = std::env::temp_dir().join(format!("hearsay-bench-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut members = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let dir = root.join(format!("node-{i:02}"));
        let peers = members.first().map(|m: &Member| vec![m.node().local_addr().to_string()]);
        let node = start(i, 0, &dir, peers.unwrap_or_default())?;
        members.push(Member { node: Some(node), dir, lives: 0 });
    }
    let all_visible =
        |members: &[Member]| members.iter().all(|m| m.node().position().visible == NODES);
    wait(|| all_visible(&members), Duration::from_secs(60), "the ten nodes did not converge")?;

    let members = RwLock::new(members);
    let (paused, stop, counts) =
        (AtomicBool::new(false), AtomicBool::new(false), Counts::default());
    let mut quiet_points = 0u32;
    let mut diverged = 0u32;
    let mut worst_agree = Duration::ZERO;
    let mut worst_rejoin = Duration::ZERO;
    let mut rss_samples = Vec::new();
    let run_started = Instant::now();
    let (loops0, process0) = cpu("hearsay-soak").ok_or("no /proc/self/task")?;
    let dropped0 = dropped(&members.read());
    std::thread::scope(|s| -> Result<(), String> {
        let driver = s.spawn(|| load(&members, &paused, &stop, &counts));
        let mut restarted = 0usize;
        while run_started.elapsed() < total {
            let period_end = (run_started.elapsed() + period).min(total);
            while run_started.elapsed() < period_end {
                std::thread::sleep(Duration::from_secs(1));
                // After the first period: what a fresh process grows into is not a leak.
                if let Some(r) = rss().filter(|_| run_started.elapsed() >= period) {
                    rss_samples.push((run_started.elapsed().as_secs_f64(), r as f64));
                }
            }
            // A quiet point: no writes, then every node must hold the same states.
            paused.store(true, Ordering::Relaxed);
            let quiet = Instant::now();
            let agree = || {
                let m = members.read();
                let first = digest(m[0].node());
                m.iter().all(|x| digest(x.node()) == first)
            };
            quiet_points += 1;
            if wait(agree, QUIET_TIMEOUT, "").is_err() {
                diverged += 1;
                eprintln!("[bench] soak: quiet point {quiet_points}: the digests disagree");
            }
            worst_agree = worst_agree.max(quiet.elapsed());
            if run_started.elapsed() >= total {
                break;
            }
            // One node leaves and comes back from its directory, the others carrying on.
            restarted = restarted % (NODES - 1) + 1;
            let rejoin = Instant::now();
            {
                let mut m = members.write();
                let seed = m[0].node().local_addr().to_string();
                let victim = &mut m[restarted];
                let mut old = victim.node.take().expect("up");
                let _ = old.leave(Duration::from_secs(5));
                // Its last snapshot is written before the next life reads the directory.
                old.shutdown();
                drop(old);
                victim.lives += 1;
                victim.node = Some(start(restarted, victim.lives, &victim.dir, vec![seed])?);
            }
            paused.store(false, Ordering::Relaxed);
            let visible = || {
                let m = members.read();
                m.iter().all(|x| x.node().position().visible == NODES)
            };
            wait(visible, Duration::from_secs(60), "a restarted node did not rejoin")?;
            worst_rejoin = worst_rejoin.max(rejoin.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        driver.join().map_err(|_| "the load thread panicked".to_owned())
    })?;
    let wall = run_started.elapsed().as_secs_f64();
    let (loops1, process1) = cpu("hearsay-soak").ok_or("no /proc/self/task")?;
    let members = members.into_inner();
    let dropped: Vec<u64> =
        dropped(&members).iter().zip(dropped0).map(|(a, b)| a.saturating_sub(b)).collect();
    eprintln!(
        "[bench] soak: dropped: {} events, {} gossip, {} direct copies, {} oversized",
        dropped[0], dropped[1], dropped[2], dropped[3]
    );
    let dropped: u64 = dropped.iter().sum();
    drop(members);
    let _ = std::fs::remove_dir_all(&root);

    let active = counts.active_ms.load(Ordering::Relaxed).max(1) as f64 / 1e3;
    let rate = counts.notifications.load(Ordering::Relaxed) as f64 / active;
    out.push(Figure {
        anchor: Some(("the load asked for".into(), NOTIFICATIONS_PER_SECOND as f64)),
        ..Figure::new("soak", "notifications_per_second", rate, "1/s")
    });
    out.push(Figure::new(
        "soak",
        "silences_set_expired",
        (counts.silences.load(Ordering::Relaxed) + counts.expired.load(Ordering::Relaxed)) as f64,
        "writes",
    ));
    out.push(Figure::new(
        "soak",
        "writes_refused",
        counts.refused.load(Ordering::Relaxed) as f64,
        "writes",
    ));
    out.push(Figure {
        anchor: Some(("quiet points".into(), f64::from(quiet_points))),
        ..Figure::new("soak", "quiet_points_diverged", f64::from(diverged), "points")
    });
    out.push(Figure::new("soak", "worst_quiet_agreement", worst_agree.as_secs_f64() * 1e3, "ms"));
    out.push(Figure::new("soak", "worst_rejoin", worst_rejoin.as_secs_f64() * 1e3, "ms"));
    let warm_rss = rss_samples.first().map_or(0.0, |s| s.1);
    out.push(Figure {
        anchor: Some(("resident after the first period".into(), warm_rss / 1e6)),
        ..Figure::new("soak", "rss_slope", slope_per_hour(&rss_samples) / 1e6, "MB/hour")
    });
    let loops = (loops1 - loops0).as_secs_f64() / wall * 100.0 / NODES as f64;
    let process = (process1 - process0).as_secs_f64() / wall * 100.0;
    out.push(Figure {
        anchor: Some(("the whole process, load included".into(), process)),
        ..Figure::new("soak", "cpu_per_node_loop", loops, "% of a core")
    });
    out.push(Figure::new("soak", "messages_dropped", dropped as f64, "messages"));
    Ok(())
}

/// Poll `f` every 20 ms until it holds or `timeout` passes.
fn wait(mut f: impl FnMut() -> bool, timeout: Duration, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return Err(what.to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
