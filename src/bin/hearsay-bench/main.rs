//! `hearsay-bench`: hearsay measures itself, side by side with the Go implementations.
//!
//! ```text
//! hearsay-bench [SCENARIO...] [--json] [--compare] [--key] [--tls] [--seconds S] [--nodes N] [--size B] [--minutes M]
//! ```
//!
//! With no scenario it runs the default ones against an embedded loopback cluster (no setup).
//! Progress goes to stderr; a table (or, with `--json`, one JSON object per figure) goes to
//! stdout. Figures compared with an anchor measured in the same run carry `anchor`,
//! `anchor_value` and `ratio` (ours ÷ anchor, so > 1 means more of the thing measured).
//!
//! Scenarios:
//! * `broadcast` — N nodes (default 3) on 127.0.0.1; node 0 broadcasts `size`-byte messages
//!   (default 200) as fast as its queue accepts, then at a paced 10,000 messages/s. Figures:
//!   messages/s delivered to every peer, p50/p99 delivery latency, bytes on the wire per
//!   message; and the ceiling of the network path (one sender thread to one receiver thread
//!   over plain loopback UDP, datagrams/s × the messages a full 1,400-byte packet carries),
//!   with the fraction of it hearsay delivers. `--compare` runs Go hashicorp/memberlist (the `mlpeer bench` harness in
//!   tests/interop, built with the local Go toolchain) with the same settings and reports ratios.
//!   `--key` runs the as-fast-as-accepted part again with an AES-256-GCM keyring on every node
//!   and reports its rate, p99 and bytes per message against the plaintext run. `--tls` does
//!   the same with every node on Alertmanager's TLS transport (mutual TLS, certificates made
//!   for the run in a scratch directory; its bytes per message count packet bytes before
//!   framing and TLS records, as Alertmanager's TLS metrics do); with `--compare` it also runs Alertmanager's own TLS
//!   transport (`mlpeer-amtls`) over the paced sweep and reports the ratio to its best.
//! * `idle` — CPU used by a 3-node cluster doing nothing but failure detection.
//! * `codec` — the memberlist codec alone on a full gossip packet.
//! * `silences` — Alertmanager's silence-query benchmark workload (100, 1,000, 10,000
//!   silences); `--compare` runs Alertmanager 0.25's own Go benchmark here and reports ratios.
//! * `dedup` — the dedup decision with 1,000,000 notification-log entries, and the cached
//!   mutes path with 10,000 silences.
//! * `converge` — time until a silence created on one node is on every node of a 10-node
//!   loopback cluster (p50, p99).
//! * `memory` (on request) — resident memory for 1,000,000 nflog entries and 10,000 silences,
//!   next to Debian's Alertmanager 0.25 loading the same snapshot files. Always measured in a
//!   fresh child process (this binary re-executed with `HEARSAY_BENCH_CHILD=memory`), so
//!   what earlier scenarios freed cannot make it look smaller.
//! * `soak` (on request) — ten gossip nodes on loopback for `--minutes` (default 3; hours by
//!   flag): 1,000 notifications/s deduplicated and logged, two silences/s created and expired
//!   20 s later, snapshots every 30 s, push/pull every 15 s. Every period (a third of the run,
//!   at most 5 minutes) the load pauses for a divergence check (every node's state digest
//!   equal within 30 s), then one node leaves and restarts from its storage directory.
//!   Figures: the rate reached against the one asked for, diverged quiet points, worst
//!   agreement and rejoin times, the RSS slope per hour against the RSS after the first
//!   period, each node's loop CPU against the whole process, and the messages dropped at a
//!   bound (by kind on stderr).
//! * `redis` (on request; needs `redis-server`, and `redis-benchmark` from redis-tools) — on
//!   a private server: time until a silence written on one of five Redis-mode peers is on all
//!   five (p50, p99), next to one bare PUBLISH reaching a subscriber through the same server.
//!   Then three peers on Grafana's `notificationlog:1`, peer 0 logging notifications:
//!   updates/s reaching both others when it writes as fast as it can (with the accepted,
//!   refused and delivered counts), next to `redis-benchmark`'s pipelined PUBLISH rate with
//!   one client (`-c 1 -P 32`, an update's size) to one subscriber; p50/p99 time until an
//!   update is on both others at 10,000/s, next to the bare PUBLISH; delivered ÷ accepted at
//!   10,000, 50,000 and 100,000/s paced and flat out. Each load phase waits (30 s at most)
//!   for its updates; what had not arrived counts as lost, and stderr says so.

mod broadcast;
// The test suites' certificate generator: `broadcast --tls` makes its certificates with it.
#[path = "../../../tests/util/certs.rs"]
mod certs;
mod child;
mod codec;
mod redis;
mod redis_load;
mod report;
mod soak;
mod state;

use std::process::ExitCode;

use report::Figure;

/// Parsed command line.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    scenarios: Vec<String>,
    json: bool,
    pub(crate) compare: bool,
    /// `broadcast` also runs with an AES-256-GCM keyring on every node.
    pub(crate) key: bool,
    /// `broadcast` also runs with every node on Alertmanager's TLS transport.
    pub(crate) tls: bool,
    pub(crate) seconds: f64,
    pub(crate) nodes: usize,
    pub(crate) size: usize,
    /// How long `soak` runs.
    pub(crate) minutes: f64,
}

/// Scenarios run when none is named (each well under a minute in total).
const DEFAULT_SCENARIOS: &[&str] = &["broadcast", "idle", "codec", "silences", "dedup", "converge"];
/// Every scenario; `memory` starts Alertmanager on a million-entry state, so it runs on request.
const SCENARIOS: &[&str] =
    &["broadcast", "idle", "codec", "silences", "dedup", "converge", "memory", "redis", "soak"];

fn main() -> ExitCode {
    // The library's warnings (refused handshakes, dropped messages) explain odd figures.
    log::set_logger(&StderrLogger).map(|()| log::set_max_level(log::LevelFilter::Warn)).ok();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!(
                "hearsay-bench: {msg}\nusage: hearsay-bench [{}] [--json] [--compare] [--key] [--tls] [--seconds S] [--nodes N] [--size B] [--minutes M]",
                SCENARIOS.join("|")
            );
            return ExitCode::from(2);
        }
    };
    let mut figures: Vec<Figure> = Vec::new();
    for scenario in &args.scenarios {
        eprintln!("[bench] {scenario}…");
        let result = match scenario.as_str() {
            "broadcast" => broadcast::run(&args, &mut figures),
            "idle" => broadcast::idle(&args, &mut figures),
            "codec" => codec::run(&args, &mut figures),
            "silences" => state::silences(&args, &mut figures),
            "dedup" => state::dedup(&args, &mut figures),
            "converge" => state::converge(&args, &mut figures),
            // A fresh process: what earlier scenarios freed must not count in its RSS.
            "memory" if child::is_child("memory") => state::memory(&args, &mut figures),
            "memory" => child::run("memory", &mut figures),
            "redis" => redis::redis(&args, &mut figures),
            "soak" => soak::run(&args, &mut figures),
            other => Err(format!("unknown scenario {other}")),
        };
        if let Err(e) = result {
            eprintln!("hearsay-bench: {scenario}: {e}");
            report::print(&figures, args.json);
            return ExitCode::FAILURE;
        }
    }
    report::print(&figures, args.json);
    ExitCode::SUCCESS
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        scenarios: Vec::new(),
        json: false,
        compare: false,
        key: false,
        tls: false,
        seconds: 5.0,
        nodes: 3,
        size: 200,
        minutes: 3.0,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => args.json = true,
            "--compare" => args.compare = true,
            "--key" => args.key = true,
            "--tls" => args.tls = true,
            "--seconds" => args.seconds = parse_in("--seconds", &value("--seconds")?, 0.1, 600.0)?,
            "--nodes" => args.nodes = parse_in("--nodes", &value("--nodes")?, 2.0, 64.0)? as usize,
            "--minutes" => {
                args.minutes = parse_in("--minutes", &value("--minutes")?, 0.5, 7.0 * 24.0 * 60.0)?
            }
            "--size" => args.size = parse_in("--size", &value("--size")?, 16.0, 1395.0)? as usize,
            s if SCENARIOS.contains(&s) => args.scenarios.push(arg),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.scenarios.is_empty() {
        args.scenarios = DEFAULT_SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    }
    Ok(args)
}

fn parse_in(name: &str, v: &str, lo: f64, hi: f64) -> Result<f64, String> {
    let x: f64 = v.parse().map_err(|_| format!("bad {name} {v}"))?;
    if (lo..=hi).contains(&x) { Ok(x) } else { Err(format!("{name} must be in [{lo}, {hi}]")) }
}

/// Log lines from the library on stderr, beside the bench's progress.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "[bench] hearsay {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}
