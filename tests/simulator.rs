//! Deterministic simulation of SWIM clusters under loss, delay, reordering, duplication,
//! a partition that heals, a crash and a restart, with per-node clock skew.
//!
//! Each seed runs one scenario and checks these invariants:
//!
//! 1. **Convergence.** After the cold start, after the partition heals, and after the crashed
//!    node restarts, every live node's member list (alive + suspect) is exactly the set of live
//!    nodes, within the bounds below.
//! 2. **Detection.** A crashed node is declared dead (or already reaped) by every live node
//!    within Lifeguard's bound: one probe round (`n × probe_interval`) to be probed, the
//!    longest suspicion timeout for `n` nodes, and `DISSEMINATION_MS` to gossip the verdict.
//! 3. **Accuracy.** Outside partitions, a live node is never held dead by a majority of the
//!    other live nodes.
//! 4. No panic, and every packet and stream frame a core produces is decodable by the others.
//!
//! `SIM_SEEDS=N` runs seeds 0..N (default 200); `SIM_SEED=s` replays one seed. A failure
//! prints its seed and the command that replays it.

mod util;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use hearsay::core::swim::MemberState;
use util::sim::{Faults, Sim};

const FAULTS: Faults = Faults { loss: 0.10, duplicate: 0.01, delay_ms: (1, 25) };

/// Cold start. Usually a second (joins are push/pulls, then gossip), but when all nodes start
/// within 200 ms an `alive` can exhaust its retransmits before some nodes are even known to
/// its senders — gossip only reaches members one already knows. Then it takes anti-entropy:
/// the first push/pull comes after a random stagger of up to one interval (60 s, the
/// Alertmanager setting), the next one interval later, plus slack for a lost exchange.
const CONVERGE_MS: u64 = 125_000;
/// After a heal: up to 15 s until Alertmanager's refresh loop re-joins a missing configured
/// peer, then refutations of the partition-time verdicts spread (a few gossip rounds), plus
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
    run_seeds(5);
}

#[test]
fn twenty_nodes() {
    run_seeds(20);
}

fn run_seeds(n: usize) {
    let started = std::time::Instant::now();
    let seeds = seeds();
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| scenario(seed, n)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(msg)) => msg,
            Err(panic) => format!("panic: {}", panic_message(&panic)),
        };
        panic!(
            "{n}-node scenario failed with seed {seed}: {failure}\n\
             replay: SIM_SEED={seed} cargo test --release --test simulator {}",
            if n == 5 { "five_nodes" } else { "twenty_nodes" }
        );
    }
    eprintln!("{n}-node scenario: {} seeds passed in {:.1?}", seeds.len(), started.elapsed());
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
    let started = std::time::Instant::now();
    let seeds = seeds();
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| state_scenario(seed, 5)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(msg)) => msg,
            Err(panic) => format!("panic: {}", panic_message(&panic)),
        };
        panic!(
            "silence scenario failed with seed {seed}: {failure}\n\
             replay: SIM_SEED={seed} cargo test --release --test simulator silences_converge"
        );
    }
    eprintln!("silence scenario: {} seeds passed in {:.1?}", seeds.len(), started.elapsed());
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
