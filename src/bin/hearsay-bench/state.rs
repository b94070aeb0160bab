//! The state scenarios: silence queries (side by side with Alertmanager's own Go benchmark),
//! the dedup decision and the cached mutes path, resident memory next to Alertmanager's for
//! the same state, and how fast a silence reaches every node of a loopback cluster.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hearsay::core::UnixMillis;
use hearsay::core::cluster::Cluster;
use hearsay::core::state::labels::{LabelSet, fingerprint};
use hearsay::core::state::nflog::{MeshEntry, Nflog, Receiver};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, MeshSilence, Query, Silence, SilenceState, Silences,
    SilencesConfig,
};
use hearsay::core::state::{Timestamp, delimited};
use hearsay::node::{Node, NodeConfig};
use prost::Message as _;

use crate::Args;
use crate::report::Figure;

const HOUR_MS: i64 = 3_600_000;

fn now() -> UnixMillis {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from(UnixMillis(ms))
}

fn re(name: &str, pattern: &str) -> Matcher {
    Matcher::new(MatcherType::Regexp, name, pattern)
}

/// A silence as a peer would gossip it (any ID, no validation), delimited.
fn mesh(id: &str, matchers: Vec<Matcher>, now: i64, out: &mut Vec<u8>) {
    let silence = Silence {
        id: id.to_owned(),
        starts_at: ts(now - 60_000),
        ends_at: ts(now + HOUR_MS),
        updated_at: ts(now - HOUR_MS),
        matcher_sets: vec![MatcherSet { matchers }],
        ..Silence::default()
    };
    let m = MeshSilence { silence: Some(silence), expires_at: ts(now + 2 * HOUR_MS) };
    delimited::push(out, &m.encode_to_vec());
}

/// Alertmanager 0.25's `Benchmark<N>SilencesQuery` state: IDs `ID<i>`, `aaaa=~"A{4}|<id>"`
/// and `bbbb=~"<id>"`, every 10th `bbbb=~"B(B|C)B.|<id>"`, so the query matches N/10.
fn query_state(n: usize, now: i64) -> Silences {
    let mut data = Vec::new();
    for i in 0..n {
        let id = format!("ID{i}");
        let bbbb = if i % 10 == 0 { format!("B(B|C)B.|{id}") } else { id.clone() };
        mesh(&id, vec![re("aaaa", &format!("A{{4}}|{id}")), re("bbbb", &bbbb)], now, &mut data);
    }
    let mut s = Silences::new(SilencesConfig::default(), 1);
    let _ = s.merge(&data, UnixMillis(now));
    s
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Mean ns per call of `f`, over about `seconds`.
fn time_ns(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// `silences`: Alertmanager's query workload at 100, 1,000 and 10,000 silences.
pub(crate) fn silences(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let go = if args.compare { Some(go_silence_bench()?) } else { None };
    let now = now().0;
    let query_labels = labels(&[("aaaa", "AAAA"), ("bbbb", "BBBB"), ("cccc", "CCCC")]);
    for n in [100usize, 1_000, 10_000] {
        let s = query_state(n, now);
        let q = Query {
            states: vec![SilenceState::Active],
            matches: Some(&query_labels),
            ..Query::default()
        };
        let found = s.query(&q, UnixMillis(now)).len();
        if found != n / 10 {
            return Err(format!("query found {found} of {n} silences, expected {}", n / 10));
        }
        let ns = time_ns(args.seconds.min(2.0), || {
            black_box(s.query(black_box(&q), UnixMillis(now)));
        });
        let anchor = go.as_ref().and_then(|g| {
            g.get(&n).map(|v| {
                ("alertmanager-0.25 Benchmark".to_owned() + &n.to_string() + "SilencesQuery", *v)
            })
        });
        out.push(Figure {
            anchor,
            ..Figure::new("silences", format!("query_{n}"), ns, "ns/query")
        });
    }
    Ok(())
}

/// Alertmanager 0.25's own silence benchmarks, run here through the module proxy.
fn go_silence_bench() -> Result<BTreeMap<usize, f64>, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop/alertmanager/bench-silences.sh");
    eprintln!(
        "[bench] running Alertmanager 0.25's Go silence benchmarks (needs Go and the module proxy)…"
    );
    let output = Command::new("bash")
        .arg(script)
        .args(["v0.25.0", "1s"])
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    if !output.status.success() {
        return Err(format!("Go benchmark failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let mut figures = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut it = line.split_whitespace();
        if let (Some(n), Some(ns)) =
            (it.next().and_then(|v| v.parse().ok()), it.next().and_then(|v| v.parse().ok()))
        {
            figures.insert(n, ns);
        }
    }
    if figures.len() < 3 {
        return Err(format!(
            "unexpected Go benchmark output: {}",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(figures)
}

/// A group's key into the log and the alerts it last notified.
type Group = (Receiver, String, [u64; 2]);

/// One million entries: 500,000 group keys × 2 receivers, 2 firing alert hashes each.
fn big_nflog(now: i64) -> (Nflog, Vec<Group>) {
    let receivers = [
        Receiver { group_name: "team-a".into(), integration: "webhook".into(), idx: 0 },
        Receiver { group_name: "team-b".into(), integration: "email".into(), idx: 0 },
    ];
    let mut data = Vec::new();
    let mut keys = Vec::new();
    for g in 0..500_000u64 {
        let group_key =
            format!("{{}}/{{team=\"db\"}}:{{alertname=\"DiskFull\", instance=\"db{g}:9100\"}}");
        let firing = [g.wrapping_mul(0x9e37_79b9_7f4a_7c15), g ^ 0xdead_beef];
        for r in &receivers {
            let entry = hearsay::core::state::nflog::Entry {
                group_key: group_key.clone().into_bytes(),
                receiver: Some(r.clone()),
                timestamp: Some(ts(now - 60_000)),
                firing_alerts: firing.to_vec(),
                ..Default::default()
            };
            let m = MeshEntry { entry: Some(entry), expires_at: Some(ts(now + 8 * HOUR_MS)) };
            delimited::push(&mut data, &m.encode_to_vec());
            if keys.len() < 1_000_000 {
                keys.push((r.clone(), group_key.clone(), firing));
            }
        }
    }
    (Nflog::load(&data, Duration::from_secs(120 * 3600)).expect("valid state"), keys)
}

fn median_ns(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median time of one read at a random position in a `bytes`-sized buffer, each read timed
/// on its own with the buffer cold, as `dedup` times a lookup.
fn random_read_median_ns(bytes: usize, samples: usize) -> f64 {
    let words: Vec<u64> = (0..(bytes / 8).max(1) as u64).collect();
    let mut lcg = 0x9e37_79b9_u64;
    median_ns(
        (0..samples)
            .map(|_| {
                lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let i = black_box((lcg >> 33) as usize % words.len());
                let t = Instant::now();
                black_box(words[i]);
                t.elapsed().as_nanos() as f64
            })
            .collect(),
    )
}

/// `dedup`: the dedup decision with 1,000,000 entries, and the cached mutes path.
pub(crate) fn dedup(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let now = now().0;
    eprintln!("[bench] building 1,000,000 notification-log entries…");
    let (log, keys) = big_nflog(now);
    let samples = 200_000;
    let mut lcg = 0x1234_5678_u64;
    let mut per_call = Vec::with_capacity(samples);
    // A flush of a group that is unchanged since its last notification: the usual case.
    let decide = |r: &Receiver, k: &str, firing: &[u64; 2]| {
        log.should_notify(r, k, firing, &[], true, Duration::from_secs(4 * 3600), UnixMillis(now))
    };
    for _ in 0..samples {
        lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let (r, k, firing) = &keys[(lcg >> 33) as usize % keys.len()];
        // The caller's own inputs are hot in a real flush (it just built them); here they sit
        // in a million-entry list, so touch them before the clock starts.
        black_box(
            k.bytes()
                .chain(r.group_name.bytes())
                .chain(r.integration.bytes())
                .map(u64::from)
                .sum::<u64>()
                + firing[0],
        );
        let t = Instant::now();
        black_box(decide(r, k, firing));
        per_call.push(t.elapsed().as_nanos() as f64);
    }
    // Instant's own cost, measured the same way, is subtracted.
    let overhead = median_ns(
        (0..10_000)
            .map(|_| {
                let t = Instant::now();
                black_box(());
                t.elapsed().as_nanos() as f64
            })
            .collect(),
    );
    let median = (median_ns(per_call) - overhead).max(0.0);
    // The anchor: one random read from memory as large as the log, timed the same way. A
    // lookup among a million entries cannot cost less than that on this machine.
    let read = (random_read_median_ns(log.heap_bytes(), samples) - overhead).max(1.0);
    out.push(Figure {
        anchor: Some((format!("one random read in {} MB", log.heap_bytes() >> 20), read)),
        ..Figure::new("dedup", "should_notify_latency_median_1m_random", median, "ns")
    });
    // Go-benchmark style: ns/op over a loop of random keys (inputs laid out in loop order, as
    // a flush's are), median of five runs. Independent lookups overlap their cache misses
    // here, as they do when a dispatcher flushes many groups at once.
    let queries: Vec<Group> = (0..200_000)
        .map(|_| {
            lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            keys[(lcg >> 33) as usize % keys.len()].clone()
        })
        .collect();
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for (r, k, firing) in &queries {
                black_box(decide(r, k, firing));
            }
            t.elapsed().as_nanos() as f64 / queries.len() as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    out.push(Figure::new("dedup", "should_notify_ns_per_op_1m_random", runs[2], "ns"));
    let hot: Vec<_> = keys.iter().take(1000).collect();
    let mut i = 0;
    let hot_ns = time_ns(args.seconds.min(1.0), || {
        let (r, k, firing) = hot[i % hot.len()];
        i += 1;
        black_box(decide(r, k, firing));
    });
    out.push(Figure::new("dedup", "should_notify_mean_1m_hot_keys", hot_ns, "ns"));

    // HEAD's BenchmarkMutes "10000 total, 10 matching": silences `job="job<i>"`, every
    // thousandth `foo="bar"`; the alert {foo="bar"} is muted by 10, {foo="baz"} by none.
    let mut data = Vec::new();
    for i in 0..10_000 {
        let m = if i % 1000 == 0 {
            Matcher::new(MatcherType::Equal, "foo", "bar")
        } else {
            Matcher::new(MatcherType::Equal, "job", format!("job{i}"))
        };
        mesh(&format!("s{i}"), vec![m], now, &mut data);
    }
    let mut silences = Silences::new(SilencesConfig::default(), 1);
    silences.merge(&data, UnixMillis(now)).map_err(|e| e.to_string())?;
    for (value, metric) in [("bar", "mutes_cached_muted_by_10"), ("baz", "mutes_cached_not_muted")]
    {
        let alert = labels(&[("foo", value)]);
        let fp = fingerprint(&alert);
        let mut result = Default::default();
        silences.mutes_into(fp, &alert, UnixMillis(now), &mut result);
        let ns = time_ns(args.seconds.min(1.0), || {
            black_box(silences.mutes_into(fp, &alert, UnixMillis(now), &mut result));
        });
        out.push(Figure::new("dedup", metric, ns, "ns"));
    }
    Ok(())
}

/// Resident set size of a process, from /proc.
fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// `memory`: 1,000,000 nflog entries plus 10,000 silences in this process, and in Debian's
/// Alertmanager 0.25 loading the very same snapshot files.
pub(crate) fn memory(_args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let now = now().0;
    let before = rss_bytes("self").ok_or("no /proc")?;
    let (log, keys) = big_nflog(now);
    drop(keys);
    let silences = query_state(10_000, now);
    let after = rss_bytes("self").ok_or("no /proc")?;
    let ours = after.saturating_sub(before);
    let dir = std::env::temp_dir().join(format!("hearsay-bench-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("nflog"), log.marshal()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("silences"), silences.marshal()).map_err(|e| e.to_string())?;
    drop((log, silences));
    let am = "/usr/bin/prometheus-alertmanager";
    let anchor = if std::path::Path::new(am).exists() {
        let empty = alertmanager_rss(
            am,
            &std::env::temp_dir().join(format!("hearsay-bench-empty-{}", std::process::id())),
        )?;
        let loaded = alertmanager_rss(am, &dir)?;
        Some((
            "alertmanager-0.25 with the same files, minus its empty RSS".to_owned(),
            loaded.saturating_sub(empty) as f64,
        ))
    } else {
        eprintln!(
            "[bench] memory: {am} is missing; no Alertmanager figure (make deps installs it)"
        );
        None
    };
    let _ = std::fs::remove_dir_all(&dir);
    out.push(Figure {
        anchor,
        ..Figure::new("memory", "rss_1m_nflog_10k_silences", ours as f64, "bytes")
    });
    Ok(())
}

/// Start Alertmanager on `dir` (clustering off), wait until it serves, read its RSS.
fn alertmanager_rss(bin: &str, dir: &std::path::Path) -> Result<u64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("am.yml"), "route:\n  receiver: x\nreceivers:\n  - name: x\n")
        .map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = Command::new(bin)
        .arg(format!("--config.file={}", dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("Alertmanager did not come up".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the runtime settle after loading, as a scrape would see it.
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_bytes(&child.id().to_string()).ok_or("no /proc entry for Alertmanager")?;
    let _ = child.kill();
    let _ = child.wait();
    Ok(rss)
}

/// `converge`: a silence created on one node of a 10-node loopback cluster, until every node
/// has it; p50 and p99 over repeated silences.
pub(crate) fn converge(_args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    const NODES: usize = 10;
    const ROUNDS: usize = 50;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let mut cluster = Cluster::new();
        cluster.register("nfl", Nflog::new(Duration::from_secs(3600)));
        cluster.register("sil", Silences::new(SilencesConfig::default(), i as u64));
        let peers = nodes.first().map(|n| vec![n.local_addr().to_string()]).unwrap_or_default();
        let config = NodeConfig::alertmanager(
            Some(&format!("conv-{i:02}")),
            "127.0.0.1:0".parse().expect("literal"),
            peers,
        );
        nodes.push(Node::start_cluster(config, cluster, None).map_err(|e| e.to_string())?);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !nodes.iter().all(|n| n.position().visible == NODES) {
        if Instant::now() > deadline {
            return Err("10-node cluster did not converge".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let origin = &nodes[round % NODES];
        let silence = Silence {
            starts_at: ts(now().0),
            ends_at: ts(now().0 + HOUR_MS),
            created_by: "bench".into(),
            matcher_sets: vec![MatcherSet {
                matchers: vec![Matcher::new(MatcherType::Equal, "round", round.to_string())],
            }],
            ..Silence::default()
        };
        let started = Instant::now();
        let id = origin
            .with_cluster(|c| {
                let o = c.state_mut::<Silences>("sil")?.set(silence, now()).ok()?;
                for b in [o.expired_previous, o.broadcast].into_iter().flatten() {
                    c.publish("sil", b);
                }
                Some(o.id)
            })
            .flatten()
            .ok_or("set failed")?;
        let everywhere = || {
            nodes.iter().all(|n| {
                n.with_cluster(|c| {
                    c.state::<Silences>("sil").and_then(|s| s.get(id.as_str())).is_some()
                }) == Some(true)
            })
        };
        while !everywhere() {
            if started.elapsed() > Duration::from_secs(30) {
                let missing: Vec<String> = nodes
                    .iter()
                    .filter(|n| {
                        n.with_cluster(|c| {
                            c.state::<Silences>("sil").and_then(|s| s.get(id.as_str())).is_some()
                        }) != Some(true)
                    })
                    .map(|n| {
                        format!(
                            "{} (stats {:?})",
                            n.name(),
                            n.with_cluster(|c| c.stats().get("sil").copied())
                        )
                    })
                    .collect();
                return Err(format!(
                    "silence {round} did not reach every node in 30 s: missing on {missing:?}"
                ));
            }
            std::hint::spin_loop();
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    out.push(Figure::new(
        "converge",
        "silence_everywhere_p50_10_nodes",
        times[times.len() / 2],
        "ms",
    ));
    out.push(Figure::new(
        "converge",
        "silence_everywhere_p99_10_nodes",
        times[times.len() * 99 / 100],
        "ms",
    ));
    Ok(())
}
