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
//! `SIM_SEEDS=N` runs seeds 0..N (default 200); `SIM_SEED=s` replays one seed; `SIM_VERBOSE`
//! prints per-seed timings. A failure prints its seed and the command that replays it.

mod util;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use hearsay::core::state::silences::SilencesConfig;
use hearsay::core::swim::MemberState;
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
    check_seeds("silences_converge", "silence scenario", |seed| state_scenario(seed, 5));
}

/// Silences written on random nodes — while connected, on both sides of a partition, and while
/// a node is down — end up identical on every live node, including the restarted one.
fn state_scenario(seed: u64, n: usize) -> Result<(), String> {
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};

    let mut sim = Sim::new(seed, n, FAULTS);
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
/// A silence ending `e` after its write is gone from every live node by `e + GC_RETENTION +
/// GC_MAINTENANCE + GC_SLACK_MS`: each node collects at its first maintenance after
/// `expires_at = ends_at + retention` by its own wall clock, and nothing brings it back — a
/// merge drops elements already expired on arrival, and a node that had not collected yet
/// only sends it before its `expires_at`.
fn gc_bound_ms(lasts: Duration) -> u64 {
    ms(lasts + GC_RETENTION + GC_MAINTENANCE) + GC_SLACK_MS
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

/// A short silence expiring while another lives on: where it went, and when it must be gone.
struct Expiring {
    id: String,
    written: u64,
    lasts: Duration,
}

impl Expiring {
    fn gone_by(&self) -> u64 {
        self.written + gc_bound_ms(self.lasts)
    }
}

/// 3–5 nodes, no storage anywhere, retention 10 s, maintenance every 3 s. Short silences
/// written on random nodes (one node crashes before and restarts during their retention) must
/// first reach every live node, then be collected on every live node within [`gc_bound_ms`]
/// and never come back; a one-hour silence is never collected; every node reports `Ready`
/// within [`GOSSIP_READY_MS`] of its start.
fn gossip_gc_scenario(seed: u64) -> Result<(), String> {
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};

    let n = 3 + (seed % 3) as usize;
    let silences = SilencesConfig { retention: GC_RETENTION, ..SilencesConfig::default() };
    let options = Options { silences, maintenance: GC_MAINTENANCE };
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
        expiring.push(Expiring { id, written: sim.now, lasts });
        gc_spread(&mut sim, &expiring[k])?;
    }
    // Back during the retention of the first: it learns the ended silences by push/pull.
    sim.run_until(expiring[0].written + ms(expiring[0].lasts) + 1_000, &mut |_| {});
    starts[victim] = sim.now;
    sim.start(victim);
    let end = expiring.iter().map(Expiring::gone_by).max().expect("three") + 70_000;
    while sim.now < end {
        sim.run_until(sim.now + 100, &mut |_| {});
        for e in expiring.iter().filter(|e| sim.now >= e.gone_by()) {
            if let Some(&i) = sim.live().iter().find(|&&i| sim.holds_silence(i, &e.id)) {
                return Err(format!(
                    "at {} ms {} still holds silence {} (written at {} ms, lasting {:?}): \
                     it should be gone by {} ms",
                    sim.now,
                    sim.name(i),
                    e.id,
                    e.written,
                    e.lasts,
                    e.gone_by()
                ));
            }
        }
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
