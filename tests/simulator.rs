//! Deterministic simulation of the production peer cores under faults, with per-node clock
//! offset, drift and wall-clock skew. Every scenario runs for many seeds; a seed replays a run
//! exactly.
//!
//! **Gossip** ([`util::sim`]): `GossipPeer` cores (SWIM plus Alertmanager's upkeep) under
//! loss, delay, reordering, duplication, a partition that heals, a crash and a restart.
//!
//! 1. **Convergence.** After the cold start, after the partition heals, and after the crashed
//!    node restarts, every live node's member list (alive + suspect) is exactly the set of live
//!    nodes, within the bounds below.
//! 2. **Detection.** A crashed node is declared dead (or already reaped) by every live node
//!    within Lifeguard's bound: one probe round (`n × probe_interval`) to be probed, the
//!    longest suspicion timeout for `n` nodes, and `DISSEMINATION_MS` to gossip the verdict.
//! 3. **Accuracy.** Outside partitions, a live node is never held dead by a majority of the
//!    other live nodes.
//! 4. **Silences converge.** Silences written while connected, on both sides of a partition
//!    and while a node is down end up identical on every live node.
//! 5. **GC.** With no storage anywhere, a silence that ended is collected on every live node
//!    within expiry + retention + one maintenance interval, and never comes back; every node
//!    reports `Ready` within the settle timeout.
//! 6. No panic, every core always has a next timer, and every packet and stream frame a core
//!    produces is decodable by the others.
//!
//! **Redis** ([`util::redis_sim`]): five `RedisPeer` cores, each with its own states, around
//! one modelled Redis, through a subscriber connection dropped (killed or silently
//! black-holed, sometimes with another node's command connection black-holed too), Redis
//! going away (mostly restarting empty after 5–90 s, sometimes a blip that keeps the data;
//! sometimes with a node restarting meanwhile), a slow phase (replies and pushes up to 8 s
//! late), and a crash and restart with empty states; writes on random nodes in every phase.
//!
//! 7. **Positions.** By [`POSITIONS_MS`] after the start and the restart, and
//!    [`POSITIONS_AFTER_RETURN_MS`] after Redis returns, and from then on until the next
//!    fault, every live peer's members are exactly the sorted heartbeat keys of the live
//!    peers, and their positions are 0..n-1, distinct and not blind.
//! 8. **Acknowledged writes arrive.** Every silence and notification log entry that
//!    `peer.publish` accepted is on every live peer [`WRITE_ARRIVAL_MS`] (two full-state
//!    intervals) after the write, the peer's (re)start, or the end of a Redis outage that
//!    began before that, whichever is latest; no write is ever refused (a host error).
//! 9. **GC.** With no storage anywhere, short silences and notifications reach every peer,
//!    then are collected on every live peer within their expiry + one maintenance interval,
//!    also while Redis is away, and never come back through the full states exchanged after.
//! 10. Every peer reports `Ready` within Grafana's settle timeout; no panic; every core always
//!     has a next timer.
//!
//! `SIM_SEEDS=N` runs seeds 0..N (default 200); `SIM_SEED=s` replays one seed; `SIM_VERBOSE`
//! prints per-seed timings. A failure prints its seed and the command that replays it.

mod util;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use hearsay::core::peer::redis::{HEARTBEAT_INTERVAL, Link, SETTLE_INTERVAL, SETTLE_TIMEOUT};
use hearsay::core::state::silences::SilencesConfig;
use hearsay::core::swim::MemberState;
use hearsay::core::wire::SecretKey;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use util::redis_sim::{LAN, Latency, PREFIX, RedisOptions, RedisSim};
use util::sim::{Faults, Options, Sim};

const FAULTS: Faults = Faults { loss: 0.10, duplicate: 0.01, delay_ms: (1, 25) };

/// Cold start. Usually a second (joins are push/pulls, then gossip), but when all nodes start
/// within 200 ms an `alive` can exhaust its retransmits before some nodes are even known to
/// its senders — gossip only reaches members one already knows. Then it takes anti-entropy:
/// the first push/pull comes after a random stagger of up to one interval (60 s, the
/// Alertmanager setting), the next one interval later, plus slack for a lost exchange.
const CONVERGE_MS: u64 = 125_000;
/// After a heal: up to 15 s until the peer core's refresh (Alertmanager's loop, every 15 s from
/// the core's construction, so the first comes within one interval of the heal) re-joins a
/// missing configured peer — its reconnect of members it saw fail, every 10 s, usually comes
/// first — then refutations of the partition-time verdicts spread (a few gossip rounds), plus
/// slack for a lost join under 10 % loss (the next refresh, 15 s later).
const HEAL_MS: u64 = 45_000;
/// Restart of a crashed node: its join's push/pull tells it it was declared dead; it refutes.
const RESTART_MS: u64 = 20_000;
/// Time for a verdict to reach every node by gossip under 10 % loss.
const DISSEMINATION_MS: u64 = 5_000;
/// The partition lasts longer than the longest suspicion, so both sides declare the other dead.
const PARTITION_MS: u64 = 45_000;

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("SIM_SEED") {
        return vec![one.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS").map_or(200, |v| v.parse().expect("SIM_SEEDS is a number"));
    (0..n).collect()
}

#[test]
fn five_nodes() {
    check_seeds("five_nodes", "5-node scenario", |seed| scenario(seed, 5));
}

#[test]
fn twenty_nodes() {
    check_seeds("twenty_nodes", "20-node scenario", |seed| scenario(seed, 20));
}

/// Run `scenario` for every seed; on the first failure, panic with the seed and the command
/// that replays it (`test` is the test function's name).
fn check_seeds(test: &str, label: &str, scenario: impl Fn(u64) -> Result<(), String>) {
    let started = std::time::Instant::now();
    let seeds = seeds();
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| scenario(seed)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(msg)) => msg,
            Err(panic) => format!("panic: {}", panic_message(&panic)),
        };
        panic!(
            "{label} failed with seed {seed}: {failure}\n\
             replay: SIM_SEED={seed} cargo test --release --test simulator {test}"
        );
    }
    eprintln!("{label}: {} seeds passed in {:.1?}", seeds.len(), started.elapsed());
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// The longest Lifeguard suspicion for `n` nodes with Alertmanager's settings (suspicion
/// multiplier 4, max multiplier 6, probe interval 1 s): `6 × 4 × max(1, log10 n)` seconds.
fn suspicion_max_ms(n: usize) -> u64 {
    let scale = (n as f64).log10().max(1.0);
    (6.0 * 4.0 * scale * 1000.0).ceil() as u64
}

fn detect_bound_ms(n: usize) -> u64 {
    n as u64 * 1000 + suspicion_max_ms(n) + DISSEMINATION_MS
}

/// The continuous accuracy check, active while the network is whole and settled.
struct Accuracy {
    active_from: Option<u64>,
    violation: Option<String>,
}

impl Accuracy {
    /// Sampled every 100 ms of simulated time (a violation shorter than that is not a
    /// declaration anyone could act on).
    fn observe(&mut self, sim: &Sim) {
        if !sim.now.is_multiple_of(100)
            || self.violation.is_some()
            || self.active_from.is_none_or(|t| sim.now < t)
        {
            return;
        }
        let live = sim.live();
        let views: Vec<_> = live.iter().map(|&v| sim.view(v)).collect();
        for &x in &live {
            let name = sim.name(x);
            let holders = live
                .iter()
                .zip(&views)
                .filter(|&(&v, view)| v != x && view.get(name).is_some_and(|s| s.is_gone()))
                .count();
            if holders * 2 > live.len() - 1 {
                self.violation = Some(format!(
                    "at {} ms, {holders} of {} live peers hold live {name} dead",
                    sim.now,
                    live.len() - 1
                ));
            }
        }
    }
}

fn agreement(sim: &Sim) -> Result<(), String> {
    let live = sim.live();
    let expected: Vec<_> = live.iter().map(|&i| sim.name(i).clone()).collect();
    for &v in &live {
        let members: Vec<_> = sim
            .view(v)
            .into_iter()
            .filter(|(_, s)| matches!(s, MemberState::Alive | MemberState::Suspect))
            .map(|(n, _)| n)
            .collect();
        if members != expected {
            return Err(format!("{} sees {members:?}, expected {expected:?}", sim.name(v)));
        }
    }
    Ok(())
}

/// Run until `deadline`; succeed as soon as the cluster agrees.
fn converge(sim: &mut Sim, deadline: u64, acc: &mut Accuracy, what: &str) -> Result<u64, String> {
    let mut agreed_at = None;
    while sim.now < deadline && agreed_at.is_none() {
        sim.run_until(sim.now + 50, &mut |s| acc.observe(s));
        if agreement(sim).is_ok() {
            agreed_at = Some(sim.now);
        }
    }
    agreed_at.ok_or_else(|| {
        format!("{what}: no agreement by {deadline} ms: {}", agreement(sim).unwrap_err())
    })
}

fn scenario(seed: u64, n: usize) -> Result<(), String> {
    let mut sim = Sim::new(seed, n, FAULTS);
    let mut acc = Accuracy { active_from: None, violation: None };
    for i in 0..n {
        sim.start(i);
        sim.run_until(sim.now + 10, &mut |_| {});
    }
    let start = sim.now;
    let cold = converge(&mut sim, start + CONVERGE_MS, &mut acc, "cold start")? - start;
    acc.active_from = Some(sim.now);
    sim.run_until(sim.now + 10_000, &mut |s| acc.observe(s));

    // A partition longer than any suspicion: each side declares the other dead.
    let groups: Vec<u8> = (0..n).map(|i| if i < n / 2 { 1 } else { 2 }).collect();
    sim.partition(&groups);
    acc.active_from = None;
    sim.run_until(sim.now + PARTITION_MS, &mut |_| {});
    sim.heal();
    let healed = sim.now;
    let heal = converge(&mut sim, healed + HEAL_MS, &mut acc, "after heal")? - healed;
    acc.active_from = Some(healed + HEAL_MS);
    sim.run_until(healed + HEAL_MS, &mut |s| acc.observe(s));

    // Crash one node; everyone must declare it dead within Lifeguard's bound.
    let victim = (seed as usize) % n;
    sim.crash(victim);
    let crashed = sim.now;
    let bound = detect_bound_ms(n);
    let name = sim.name(victim).clone();
    let mut detected: Option<u64> = None;
    while sim.now < crashed + bound && detected.is_none() {
        sim.run_until(sim.now + 50, &mut |s| acc.observe(s));
        let all =
            sim.live().into_iter().all(|v| sim.view(v).get(&name).is_none_or(|s| s.is_gone()));
        if all {
            detected = Some(sim.now);
        }
    }
    let Some(detected) = detected else {
        return Err(format!("crashed {name} not declared dead by all within {bound} ms"));
    };
    sim.run_until(sim.now + 2_000, &mut |s| acc.observe(s));

    // Restart it under the same name and address: it must refute its death and rejoin.
    sim.start(victim);
    let restarted = sim.now;
    acc.active_from = Some(restarted + RESTART_MS);
    let rejoin = converge(&mut sim, restarted + RESTART_MS, &mut acc, "after restart")? - restarted;
    sim.run_until(sim.now + 10_000, &mut |s| acc.observe(s));
    if let Some(v) = acc.violation {
        return Err(v);
    }
    if std::env::var("SIM_VERBOSE").is_ok() {
        eprintln!(
            "seed {seed}: converged {cold} ms after start, {heal} ms after heal; crash detected after {} ms \
             (bound {bound}); rejoined {rejoin} ms after restart; {} packets, {:.1?} simulated",
            detected - crashed,
            sim.packets,
            Duration::from_millis(sim.now)
        );
    }
    Ok(())
}

/// After the last write, every live node must hold every silence in its latest version: direct
/// copies and gossip for connected nodes, then push/pull (60 s, after a random stagger) or the
/// re-join after a heal for the rest.
const STATE_CONVERGE_MS: u64 = 130_000;

#[test]
fn silences_converge() {
    check_seeds("silences_converge", "silence scenario", |seed| {
        state_scenario(seed, 5, Options::default())
    });
}

/// The same with every packet and stream AES-GCM encrypted (a quarter of the seeds: the
/// scenario is the same, only the codec differs).
#[test]
fn silences_converge_encrypted() {
    let key = SecretKey::new(vec![0x42; 32]).expect("32 bytes");
    check_seeds("silences_converge_encrypted", "encrypted silence scenario", |seed| {
        if seed % 4 != 0 {
            return Ok(());
        }
        state_scenario(seed, 5, Options { secret_keys: vec![key.clone()], ..Options::default() })
    });
}

/// Silences written on random nodes — while connected, on both sides of a partition, and while
/// a node is down — end up identical on every live node, including the restarted one.
fn state_scenario(seed: u64, n: usize, options: Options) -> Result<(), String> {
    let mut sim = Sim::with_options(seed, n, FAULTS, options);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    for i in 0..n {
        sim.start(i);
        sim.run_until(sim.now + 10, &mut |_| {});
    }
    let start = sim.now;
    converge(
        &mut sim,
        start + CONVERGE_MS,
        &mut Accuracy { active_from: None, violation: None },
        "cold start",
    )?;
    let mut ids = Vec::new();
    let write = |sim: &mut Sim, rng: &mut SmallRng, label: &str, ids: &mut Vec<(usize, String)>| {
        let live = sim.live();
        let i = live[rng.random_range(0..live.len())];
        let id = sim.set_silence(i, &format!("{label}-{}", ids.len()));
        ids.push((i, id));
        let pause = rng.random_range(0..300);
        sim.run_until(sim.now + pause, &mut |_| {});
    };
    for _ in 0..10 {
        write(&mut sim, &mut rng, "connected", &mut ids);
    }
    // Expire a few, on the node that created them.
    for k in [1, 4, 7] {
        let (i, id) = ids[k].clone();
        sim.expire_silence(i, &id);
    }
    sim.run_until(sim.now + 2_000, &mut |_| {});

    // Writes on both sides of a partition.
    let groups: Vec<u8> = (0..n).map(|i| if i < n / 2 { 1 } else { 2 }).collect();
    sim.partition(&groups);
    for _ in 0..6 {
        write(&mut sim, &mut rng, "partitioned", &mut ids);
    }
    sim.run_until(sim.now + 20_000, &mut |_| {});
    sim.heal();

    // A node goes down, writes happen without it, it comes back empty.
    let victim = (seed as usize) % n;
    sim.crash(victim);
    for _ in 0..4 {
        write(&mut sim, &mut rng, "while-down", &mut ids);
    }
    sim.run_until(sim.now + 5_000, &mut |_| {});
    sim.start(victim);

    let deadline = sim.now + STATE_CONVERGE_MS;
    loop {
        let live = sim.live();
        let views: Vec<_> = live.iter().map(|&i| sim.silences(i)).collect();
        let all_equal = views.windows(2).all(|w| w[0] == w[1]);
        let complete = views[0].len() == ids.len();
        if all_equal && complete {
            if std::env::var("SIM_VERBOSE").is_ok() {
                eprintln!(
                    "seed {seed}: {} silences identical on {} nodes {} ms after the restart",
                    ids.len(),
                    live.len(),
                    sim.now + STATE_CONVERGE_MS - deadline
                );
            }
            return Ok(());
        }
        if sim.now >= deadline {
            let counts: Vec<usize> = views.iter().map(Vec::len).collect();
            return Err(format!(
                "silences did not converge within {STATE_CONVERGE_MS} ms: {} written, per-node counts {counts:?}",
                ids.len()
            ));
        }
        sim.run_until(sim.now + 500, &mut |_| {});
    }
}

// ---- GC on gossip ----

/// Silence retention in the GC scenarios: an ended silence is kept (and gossiped) this long.
const GC_RETENTION: Duration = Duration::from_secs(10);
/// How often the peer cores ask for maintenance in the GC scenarios.
const GC_MAINTENANCE: Duration = Duration::from_secs(3);
/// Slack on the GC bound: wall clocks differ by up to 200 ms between the writer (who sets
/// `ends_at`) and a collector; a 0.1 % drift stretches one maintenance interval by 3 ms; the
/// simulator steps 5 ms.
const GC_SLACK_MS: u64 = 500;
/// An element whose `expires_at` is `x` after its write (a silence: its duration plus the
/// retention; a notification: its expiry) is gone from every live node by `x + GC_MAINTENANCE
/// + GC_SLACK_MS`: each node collects at its first maintenance after `expires_at` by its own
/// wall clock, and nothing brings it back — a merge drops elements already expired on
/// arrival, and a node that had not collected yet only sends it before its `expires_at`.
fn gc_bound_ms(expires_in: Duration) -> u64 {
    ms(expires_in + GC_MAINTENANCE) + GC_SLACK_MS
}
/// Gossip spread of a local write to every member: the writer sends it straight to each
/// member over TCP (one delay, 25 ms at most) besides gossiping it.
const GOSSIP_SPREAD_MS: u64 = 1_000;
/// How long after its start a gossip peer reports `Ready`: at Alertmanager's settle timeout
/// (60 s) at the latest, plus one settle poll (10 × 200 ms gossip interval) of lateness.
const GOSSIP_READY_MS: u64 = 62_000;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("fits")
}

#[test]
fn expired_entries_are_collected_gossip() {
    check_seeds("expired_entries_are_collected_gossip", "gossip GC scenario", gossip_gc_scenario);
}

/// A short-lived element (a silence or a notification log entry): when it must be gone.
#[derive(Debug)]
struct Expiring {
    silence: bool,
    id: String,
    written: u64,
    /// From the write to its `expires_at`.
    expires_in: Duration,
}

impl Expiring {
    fn gone_by(&self) -> u64 {
        self.written + gc_bound_ms(self.expires_in)
    }

    /// The first of `live` that still holds an element past its bound, as an error.
    fn check_gone<'a>(
        expiring: &[Expiring],
        now: u64,
        live: &[usize],
        holds: impl Fn(usize, &Expiring) -> bool,
        name: impl Fn(usize) -> &'a str,
    ) -> Result<(), String> {
        for e in expiring.iter().filter(|e| now >= e.gone_by()) {
            if let Some(&i) = live.iter().find(|&&i| holds(i, e)) {
                return Err(format!(
                    "at {now} ms {} still holds {e:?}: it should be gone by {} ms",
                    name(i),
                    e.gone_by()
                ));
            }
        }
        Ok(())
    }
}

/// 3–5 nodes, no storage anywhere, retention 10 s, maintenance every 3 s. Short silences
/// written on random nodes (one node crashes before and restarts during their retention) must
/// first reach every live node, then be collected on every live node within [`gc_bound_ms`]
/// and never come back; a one-hour silence is never collected; every node reports `Ready`
/// within [`GOSSIP_READY_MS`] of its start.
fn gossip_gc_scenario(seed: u64) -> Result<(), String> {
    let n = 3 + (seed % 3) as usize;
    let silences = SilencesConfig { retention: GC_RETENTION, ..SilencesConfig::default() };
    let options = Options { silences, maintenance: GC_MAINTENANCE, ..Options::default() };
    let mut sim = Sim::with_options(seed, n, FAULTS, options);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6c);
    let mut starts = vec![0; n];
    for (i, start) in starts.iter_mut().enumerate() {
        *start = sim.now;
        sim.start(i);
        sim.run_until(sim.now + 10, &mut |_| {});
    }
    let mut acc = Accuracy { active_from: None, violation: None };
    let deadline = sim.now + CONVERGE_MS;
    converge(&mut sim, deadline, &mut acc, "cold start")?;
    let keeper = sim.set_silence(rng.random_range(0..n), "keeper");
    let victim = rng.random_range(0..n);
    sim.crash(victim);
    let mut expiring = Vec::new();
    for k in 0..3 {
        let live = sim.live();
        let writer = live[rng.random_range(0..live.len())];
        let lasts = Duration::from_millis(rng.random_range(2_000..8_000));
        let id = sim.set_silence_for(writer, &format!("short-{k}"), lasts);
        let expires_in = lasts + GC_RETENTION;
        expiring.push(Expiring { silence: true, id, written: sim.now, expires_in });
        gc_spread(&mut sim, &expiring[k])?;
    }
    // Back during the retention of the first: it learns the ended silences by push/pull.
    let ended = expiring[0].written + ms(expiring[0].expires_in - GC_RETENTION);
    sim.run_until(ended + 1_000, &mut |_| {});
    starts[victim] = sim.now;
    sim.start(victim);
    let end = expiring.iter().map(Expiring::gone_by).max().expect("three") + 70_000;
    while sim.now < end {
        sim.run_until(sim.now + 100, &mut |_| {});
        let holds = |i, e: &Expiring| sim.holds_silence(i, &e.id);
        Expiring::check_gone(&expiring, sim.now, &sim.live(), holds, |i| sim.name(i).as_str())?;
    }
    for i in sim.live() {
        // GC did the removing (a node that was down collects what it learned meanwhile).
        if i != victim && sim.collected(i) < expiring.len() {
            return Err(format!("{} collected {} silences", sim.name(i), sim.collected(i)));
        }
        if sim.silence_count(i) != 1 || !sim.holds_silence(i, &keeper) {
            return Err(format!(
                "{} holds {} silences, not just the keeper",
                sim.name(i),
                sim.silence_count(i)
            ));
        }
        match sim.ready_at(i) {
            Some(t) if t <= starts[i] + GOSSIP_READY_MS => {}
            other => {
                return Err(format!(
                    "{} ready at {other:?}, started at {}",
                    sim.name(i),
                    starts[i]
                ));
            }
        }
    }
    Ok(())
}

/// A fresh write reaches every live node within [`GOSSIP_SPREAD_MS`] (else the GC check would
/// be vacuous).
fn gc_spread(sim: &mut Sim, e: &Expiring) -> Result<(), String> {
    sim.run_until(sim.now + GOSSIP_SPREAD_MS, &mut |_| {});
    match sim.live().into_iter().find(|&i| !sim.holds_silence(i, &e.id)) {
        Some(i) => Err(format!(
            "silence {} missing on {} {GOSSIP_SPREAD_MS} ms after its write",
            e.id,
            sim.name(i)
        )),
        None => Ok(()),
    }
}

// ---- Redis ----

/// Full states are pushed every 20 s in these scenarios (Grafana's default is 60 s).
const PUSH_PULL: Duration = Duration::from_secs(20);
/// Full-state chunks of at most 512 bytes: a handful of silences already take several.
const CHUNK_BYTES: usize = 512;
/// Redis peers in the convergence scenario.
const REDIS_PEERS: usize = 5;
/// Membership after a start: a peer writes its heartbeat first thing once connected (one LAN
/// round trip, ≤ 10 ms) and every peer re-reads the members every `HEARTBEAT_INTERVAL` (5 s);
/// a read that began before the last heartbeat landed misses it, the next one sees it. A read
/// is a SCAN page per few keys plus an MGET, some 100 ms here; starts are staggered by 50 ms.
const POSITIONS_MS: u64 = ms_of(HEARTBEAT_INTERVAL) + 1_000;
/// Membership after Redis returns: every link retries within `BACKOFF_MAX` (10 s: a retry
/// scheduled while Redis was down waits at most that), then as after a start.
const POSITIONS_AFTER_RETURN_MS: u64 = 10_000 + POSITIONS_MS;
/// An acknowledged write is on every live peer two full-state intervals after it was made, or
/// after Redis returned when it was made while Redis was down, or after the peer (re)started
/// when that was later. Its update reaches every subscriber at once; one that missed it (its
/// subscriber was down, or Redis was) asks for full states as soon as its subscriber is back
/// (within 10 s of backoff, or ping (5 s) + `REPLY_TIMEOUT` (10 s) for a silently dead
/// subscriber), a restarted one at `Ready` (10 s of settle polls); and every peer pushes its
/// full state every interval anyway: the first push may be lost with a link, the second is not.
const WRITE_ARRIVAL_MS: u64 = 2 * ms_of(PUSH_PULL);
/// A Redis peer reports `Ready` by Grafana's settle timeout (30 s) after its start, plus one
/// 2 s settle poll of slack.
const REDIS_READY_MS: u64 = ms_of(SETTLE_TIMEOUT) + ms_of(SETTLE_INTERVAL);
/// A write reaches every subscriber of a healthy Redis within a few LAN round trips.
const REDIS_SPREAD_MS: u64 = 1_000;
/// Slow phases delay replies and pushes by up to this much (and at least a quarter of the
/// drawn maximum): large, yet a command's round trip stays under `REPLY_TIMEOUT` (10 s), so
/// the links stay up.
const SLOW_REPLY_MAX_MS: u64 = 8_000;

const fn ms_of(d: Duration) -> u64 {
    d.as_secs() * 1000 + d.subsec_millis() as u64
}

fn redis_options(seed: u64, maintenance: Duration, retention: Duration) -> RedisOptions {
    RedisOptions {
        push_pull: PUSH_PULL,
        maintenance,
        silences: SilencesConfig { retention, ..SilencesConfig::default() },
        nflog_retention: hearsay::core::state::nflog::DEFAULT_RETENTION,
        chunk_bytes: CHUNK_BYTES,
        db: (seed % 3) as i64,
    }
}

/// A fresh Redis holding a little of what real ones hold besides heartbeats: a key under the
/// prefix that is no heartbeat, the heartbeat of a peer dead for an hour, and another app's key.
fn seed_keyspace(sim: &mut RedisSim, db: i64) {
    sim.server.seed_key(db, &format!("{PREFIX}:notes"), b"not a heartbeat");
    let stale = (1_795_400_000_000i64 / 1000 - 3600).to_string();
    sim.server.seed_key(db, &format!("{PREFIX}:peer-zz"), stale.as_bytes());
    sim.server.seed_key(db, "other:key", b"1795400000");
}

/// Every live peer sees exactly the live peers' heartbeat keys, sorted, and its positions are
/// 0..n-1, distinct and not blind.
fn redis_positions(sim: &RedisSim) -> Result<(), String> {
    let live = sim.live();
    let mut expected: Vec<String> = live.iter().map(|&i| sim.heartbeat_key(i)).collect();
    expected.sort();
    let mut indices = Vec::new();
    for &i in &live {
        let peer = sim.peer(i);
        if peer.members() != expected {
            return Err(format!(
                "{} sees {:?}, expected {expected:?}",
                sim.name(i),
                peer.members()
            ));
        }
        let pos = peer.position();
        if pos.blind || pos.visible != live.len() {
            return Err(format!("{} has position {pos:?}", sim.name(i)));
        }
        indices.push(pos.index);
    }
    indices.sort_unstable();
    if indices != (0..live.len()).collect::<Vec<_>>() {
        return Err(format!("positions {indices:?} are not 0..{}", live.len()));
    }
    Ok(())
}

/// What a Redis write was.
struct RedisWrite {
    silence: bool,
    id: String,
    node: usize,
    at: u64,
    phase: &'static str,
}

/// Checks, every 100 ms, that each acknowledged write is on every live peer by its due time
/// (see [`WRITE_ARRIVAL_MS`]), that no host error happened, and — while `positions_from` is
/// set and passed — that positions hold ([`redis_positions`]).
#[derive(Default)]
struct Arrivals {
    writes: Vec<RedisWrite>,
    positions_from: Option<u64>,
    /// Redis outages: when each began and ended.
    outages: Vec<(u64, Option<u64>)>,
    /// (write, peer, peer's start) already seen holding it.
    seen: BTreeSet<(usize, usize, u64)>,
    violation: Option<String>,
}

impl Arrivals {
    /// When peer `p` must hold write `w`, if that is known yet: [`WRITE_ARRIVAL_MS`] after the
    /// write or the peer's start, whichever is later; an outage of Redis that began before
    /// that moves it to [`WRITE_ARRIVAL_MS`] after Redis returned (the writer's update may
    /// have been lost with its link, and no full state travels while Redis is away).
    fn due(&self, sim: &RedisSim, w: &RedisWrite, p: usize) -> Option<u64> {
        let mut base = w.at.max(sim.started_at(p));
        for &(down, up) in &self.outages {
            if down < base + WRITE_ARRIVAL_MS && up.is_none_or(|u| u > base) {
                base = up?;
            }
        }
        Some(base + WRITE_ARRIVAL_MS)
    }

    fn observe(&mut self, sim: &RedisSim) {
        if !sim.now.is_multiple_of(100) || self.violation.is_some() {
            return;
        }
        if sim.host_errors > 0 {
            self.violation = Some(format!("{} updates refused by peer.publish", sim.host_errors));
            return;
        }
        if self.positions_from.is_some_and(|t| sim.now >= t)
            && let Err(e) = redis_positions(sim)
        {
            self.violation = Some(format!("at {} ms: {e}", sim.now));
            return;
        }
        for (k, w) in self.writes.iter().enumerate() {
            for p in sim.live() {
                let key = (k, p, sim.started_at(p));
                if self.seen.contains(&key) || self.due(sim, w, p).is_none_or(|t| sim.now < t) {
                    continue;
                }
                let holds =
                    if w.silence { sim.holds_silence(p, &w.id) } else { sim.holds_entry(p, &w.id) };
                if !holds {
                    self.violation = Some(format!(
                        "at {} ms {} lacks the {} {} written on {} at {} ms ({}), due at {:?} ms \
                         (Redis outages {:?})",
                        sim.now,
                        sim.name(p),
                        if w.silence { "silence" } else { "notification" },
                        w.id,
                        sim.name(w.node),
                        w.at,
                        w.phase,
                        self.due(sim, w, p),
                        self.outages
                    ));
                    return;
                }
                self.seen.insert(key);
            }
        }
    }

    /// When the last write is due on every live peer (Redis is up).
    fn last_due(&self, sim: &RedisSim) -> u64 {
        let live = sim.live();
        let dues = self.writes.iter().flat_map(|w| live.iter().map(|&p| self.due(sim, w, p)));
        dues.map(|d| d.expect("Redis is back")).max().unwrap_or(sim.now)
    }
}

/// Run until `deadline` while `arrivals` watches: positions must hold then, and go on holding
/// until the next fault. Returns since when they held.
fn redis_settle(
    sim: &mut RedisSim,
    deadline: u64,
    arrivals: &mut Arrivals,
    what: &str,
) -> Result<u64, String> {
    let mut held_since = None;
    while sim.now < deadline {
        sim.run_until(sim.now + 50, &mut |s| arrivals.observe(s));
        match redis_positions(sim) {
            Ok(()) => held_since = held_since.or(Some(sim.now)),
            Err(_) => held_since = None,
        }
    }
    redis_positions(sim).map_err(|e| format!("{what}: at {deadline} ms: {e}"))?;
    arrivals.positions_from = Some(sim.now);
    Ok(held_since.expect("positions hold"))
}

#[test]
fn redis_peers_converge() {
    check_seeds("redis_peers_converge", "Redis convergence scenario", redis_scenario);
}

/// One write on `node`: a one-hour silence, or a notification log entry.
fn redis_write(
    sim: &mut RedisSim,
    arrivals: &mut Arrivals,
    (node, silence): (usize, bool),
    phase: &'static str,
) -> Result<(), String> {
    let label = format!("{phase}-{}", arrivals.writes.len());
    let hour = Duration::from_secs(3600);
    let written = if silence {
        sim.set_silence(node, &label, hour)
    } else {
        sim.log_notification(node, &format!("{{}}:{{alertname=\"{label}\"}}"), hour)
    };
    if !written.acknowledged {
        return Err(format!("{phase}: {} refused a write: a host error", sim.name(node)));
    }
    arrivals.writes.push(RedisWrite { silence, id: written.id, node, at: sim.now, phase });
    Ok(())
}

/// `k` writes spread over `window_ms`, the first on `first` when given, the others on random
/// live nodes.
fn redis_writes(
    sim: &mut RedisSim,
    rng: &mut SmallRng,
    arrivals: &mut Arrivals,
    (k, window_ms): (usize, u64),
    first: Option<usize>,
    phase: &'static str,
) -> Result<(), String> {
    let end = sim.now + window_ms;
    let gap = window_ms / (k as u64 + 1);
    for n in 0..k {
        let pause = rng.random_range(gap / 2..=gap);
        sim.run_until(sim.now + pause, &mut |s| arrivals.observe(s));
        let live = sim.live();
        let node =
            first.filter(|_| n == 0).unwrap_or_else(|| live[rng.random_range(0..live.len())]);
        redis_write(sim, arrivals, (node, rng.random_bool(0.5)), phase)?;
    }
    sim.run_until(end, &mut |s| arrivals.observe(s));
    Ok(())
}

/// Five Redis peers through a subscriber drop, a Redis outage (back empty), a slow phase and
/// a crash and restart, with writes in every phase. Checked: positions after the start, after
/// Redis returns and after the restart; every acknowledged write on every live peer by its due
/// time; `Ready` within Grafana's settle timeout; no host error; no panic; always a timer.
fn redis_scenario(seed: u64) -> Result<(), String> {
    let options = redis_options(seed, Duration::from_secs(30), Duration::from_secs(120 * 3600));
    let db = options.db;
    let mut sim = RedisSim::new(seed, REDIS_PEERS, options);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x7ed15);
    let mut arr = Arrivals::default();
    seed_keyspace(&mut sim, db);
    for i in 0..REDIS_PEERS {
        sim.start(i);
        let stagger = rng.random_range(0..=10);
        sim.run_until(sim.now + stagger, &mut |_| {});
    }
    let started = sim.now;
    let start =
        redis_settle(&mut sim, started + POSITIONS_MS, &mut arr, "after the start")? - started;
    redis_writes(&mut sim, &mut rng, &mut arr, (4, 10_000), None, "healthy")?;

    let dropped = rng.random_range(0..REDIS_PEERS);
    sim.drop_link(dropped, Link::Subscriber, rng.random_bool(0.7));
    if rng.random_bool(0.5) {
        // And another node's command link dies silently: its publishes vanish unanswered.
        sim.drop_link(rng.random_range(0..REDIS_PEERS), Link::Command, true);
    }
    redis_writes(&mut sim, &mut rng, &mut arr, (4, 15_000), Some(dropped), "link-dropped")?;
    sim.run_until(sim.now + 5_000, &mut |s| arr.observe(s));
    let (outage, back, back_ok) = redis_outage(&mut sim, &mut rng, &mut arr)?;

    let slow = rng.random_range(2_000..=SLOW_REPLY_MAX_MS);
    sim.set_latency(Latency { reply_ms: (slow / 4, slow), ..LAN });
    redis_writes(&mut sim, &mut rng, &mut arr, (4, 30_000), None, "slow")?;
    sim.set_latency(LAN);
    sim.run_until(sim.now + 10_000, &mut |s| arr.observe(s));

    let victim = rng.random_range(0..REDIS_PEERS);
    // The dead peer's heartbeat stays fresh for a minute: Grafana's members then include it.
    arr.positions_from = None;
    sim.crash(victim);
    let down_for = rng.random_range(5_000..=70_000);
    redis_writes(&mut sim, &mut rng, &mut arr, (3, down_for), None, "node-down")?;
    sim.start(victim);
    let restarted = sim.now;
    redis_settle(&mut sim, restarted + POSITIONS_MS, &mut arr, "after the restart")?;
    redis_writes(&mut sim, &mut rng, &mut arr, (2, 5_000), None, "after-restart")?;
    let end = arr.last_due(&sim) + 1_000;
    sim.run_until(end, &mut |s| arr.observe(s));
    if let Some(v) = arr.violation.take() {
        return Err(v);
    }
    redis_ready(&sim)?;
    if std::env::var("SIM_VERBOSE").is_ok() {
        eprintln!(
            "seed {seed}: positions {start} ms after start, {} ms after Redis returned \
             ({outage}); {} writes; {} commands, {} pushes, {} chunks; merged {:?}",
            back_ok - back,
            arr.writes.len(),
            sim.server.commands,
            sim.server.pushed,
            sim.chunks,
            sim.merged
        );
    }
    Ok(())
}

/// Redis goes away with writes meanwhile: mostly a restart without persistence (5–90 s, so
/// that the members lists expire in some seeds), sometimes a network blip that keeps the data
/// (0.2–3 s); sometimes a node crashes before and restarts during the outage (its first
/// connect then comes after its settle). Returns what happened, when Redis came back and
/// since when positions held.
fn redis_outage(
    sim: &mut RedisSim,
    rng: &mut SmallRng,
    arr: &mut Arrivals,
) -> Result<(String, u64, u64), String> {
    let blip = rng.random_bool(0.25);
    let outage =
        if blip { rng.random_range(200..=3_000) } else { rng.random_range(5_000..=90_000) };
    let restarting = rng.random_bool(0.3).then(|| rng.random_range(0..REDIS_PEERS));
    arr.positions_from = None;
    if let Some(i) = restarting {
        sim.crash(i);
    }
    sim.redis_down();
    arr.outages.push((sim.now, None));
    let writes = if blip { 1 } else { 6 };
    redis_writes(sim, rng, arr, (writes, outage / 2), None, "redis-down")?;
    if let Some(i) = restarting {
        sim.start(i);
    }
    redis_writes(sim, rng, arr, (writes, outage - outage / 2), None, "redis-down")?;
    if blip {
        sim.redis_up()
    } else {
        sim.redis_up_empty()
    }
    arr.outages.last_mut().expect("pushed").1 = Some(sim.now);
    let back = sim.now;
    let held = redis_settle(sim, back + POSITIONS_AFTER_RETURN_MS, arr, "after Redis returned")?;
    let what = format!(
        "{} for {outage} ms{}",
        if blip { "a blip" } else { "a restart" },
        restarting.map_or(String::new(), |i| format!(", {} restarted meanwhile", sim.name(i)))
    );
    Ok((what, back, held))
}

/// Every live peer reported `Ready` within [`REDIS_READY_MS`] of its start.
fn redis_ready(sim: &RedisSim) -> Result<(), String> {
    for i in sim.live() {
        match sim.ready_at(i) {
            Some(t) if t <= sim.started_at(i) + REDIS_READY_MS => {}
            other => {
                return Err(format!(
                    "{} ready at {other:?}, started at {}",
                    sim.name(i),
                    sim.started_at(i)
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn expired_entries_are_collected_redis() {
    check_seeds("expired_entries_are_collected_redis", "Redis GC scenario", redis_gc_scenario);
}

/// 3–5 Redis peers, no storage anywhere, silence retention 10 s, maintenance every 3 s. Short
/// silences and notifications written on random peers must first reach every live peer
/// ([`REDIS_SPREAD_MS`]), then be collected on every live peer within [`gc_bound_ms`] and never
/// come back — also when Redis goes away before they expire (every other seed) and returns
/// empty, after which full states are exchanged; one-hour keepers are never collected and
/// arrive as any acknowledged write; every peer reports `Ready` in time.
fn redis_gc_scenario(seed: u64) -> Result<(), String> {
    let n = 3 + (seed % 3) as usize;
    let mut sim = RedisSim::new(seed, n, redis_options(seed, GC_MAINTENANCE, GC_RETENTION));
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x9c);
    let mut arr = Arrivals::default();
    for i in 0..n {
        sim.start(i);
    }
    redis_settle(&mut sim, POSITIONS_MS, &mut arr, "after the start")?;
    for silence in [true, false] {
        let node = rng.random_range(0..n);
        redis_write(&mut sim, &mut arr, (node, silence), "keeper")?;
    }
    let mut expiring = Vec::new();
    for k in 0..4 {
        let node = rng.random_range(0..n);
        let silence = rng.random_bool(0.5);
        let (written, expires_in) = if silence {
            let lasts = Duration::from_millis(rng.random_range(2_000..8_000));
            (sim.set_silence(node, &format!("short-{k}"), lasts), lasts + GC_RETENTION)
        } else {
            let expiry = Duration::from_millis(rng.random_range(5_000..15_000));
            (sim.log_notification(node, &format!("short-{k}"), expiry), expiry)
        };
        if !written.acknowledged {
            return Err(format!("{} refused a write: a host error", sim.name(node)));
        }
        let e = Expiring { silence, id: written.id, written: sim.now, expires_in };
        sim.run_until(sim.now + REDIS_SPREAD_MS, &mut |s| arr.observe(s));
        if let Some(i) = sim.live().into_iter().find(|&i| !redis_holds(&sim, i, &e)) {
            return Err(format!("{e:?} missing on {} {REDIS_SPREAD_MS} ms after", sim.name(i)));
        }
        expiring.push(e);
    }
    let last_gone = expiring.iter().map(Expiring::gone_by).max().expect("four");
    if seed % 2 == 1 {
        // GC is local: it goes on while Redis is away.
        arr.positions_from = None;
        sim.redis_down();
        arr.outages.push((sim.now, None));
        let back = last_gone + rng.random_range(0..10_000);
        sim.run_until(back, &mut |s| arr.observe(s));
        sim.redis_up_empty();
        arr.outages.last_mut().expect("pushed").1 = Some(sim.now);
        redis_settle(&mut sim, back + POSITIONS_AFTER_RETURN_MS, &mut arr, "after Redis returned")?;
    }
    // Two full-state rounds after the last bound: a resurrection would show.
    let end = last_gone.max(sim.now) + 2 * ms(PUSH_PULL) + 5_000;
    while sim.now < end {
        sim.run_until(sim.now + 100, &mut |s| arr.observe(s));
        let holds = |i, e: &Expiring| redis_holds(&sim, i, e);
        Expiring::check_gone(&expiring, sim.now, &sim.live(), holds, |i| sim.name(i))?;
    }
    if let Some(v) = arr.violation.take() {
        return Err(v);
    }
    for i in sim.live() {
        if sim.counts(i) != (1, 1) || sim.collected(i) < expiring.len() {
            return Err(format!(
                "{} holds {:?} (silences, entries) and collected {}: expected the two keepers \
                 after collecting {}",
                sim.name(i),
                sim.counts(i),
                sim.collected(i),
                expiring.len()
            ));
        }
    }
    redis_ready(&sim)
}

fn redis_holds(sim: &RedisSim, i: usize, e: &Expiring) -> bool {
    if e.silence { sim.holds_silence(i, &e.id) } else { sim.holds_entry(i, &e.id) }
}
