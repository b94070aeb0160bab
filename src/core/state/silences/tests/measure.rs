//! Release-build measurements (printed, not asserted) of the Alertmanager silence
//! benchmarks' workloads.

use rand::SeedableRng;

use super::*;

// ---------------------------------------------------------------------------------------
// Measurements (not assertions): run with
// `cargo test --release --lib silences::tests::measure -- --ignored --nocapture`.

/// The state of Alertmanager 0.25's `Benchmark<N>SilencesQuery`: IDs `ID<i>`, two regex
/// matchers each, every 10th matching the query; inserted through merge (no validation,
/// like the Go benchmark's direct state insert).
fn alertmanager_query_state(n: usize, now: i64) -> Silences {
    let mut data = Vec::new();
    for i in 0..n {
        let id = format!("ID{i}");
        let bbbb = if i % 10 == 0 { format!("B(B|C)B.|{id}") } else { id.clone() };
        let s = peer_silence(
            &id,
            vec![re("aaaa", &format!("A{{4}}|{id}")), re("bbbb", &bbbb)],
            now - MIN,
            now + HOUR,
            now - HOUR,
        );
        data.extend(peer(&s, ts(now + HOUR)));
    }
    let mut s = store();
    assert_eq!(s.merge(&data, at(now)), Ok(n));
    s
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
// Wall-clock timing is what this measures; it is not part of the sans-IO logic.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
fn measure() {
    use std::hint::black_box;
    use std::time::Instant;

    let time = |iters: u64, f: &mut dyn FnMut()| -> f64 {
        f();
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        t.elapsed().as_nanos() as f64 / iters as f64
    };
    let l = labels(&[("aaaa", "AAAA"), ("bbbb", "BBBB"), ("cccc", "CCCC")]);
    for n in [100, 1_000, 10_000] {
        let s = alertmanager_query_state(n, 0);
        let q =
            Query { states: vec![SilenceState::Active], matches: Some(&l), ..Default::default() };
        assert_eq!(s.query(&q, at(0)).len(), n / 10);
        let iters = (2_000_000 / n as u64).max(200);
        let ns = time(iters, &mut || {
            black_box(s.query(black_box(&q), at(0)));
        });
        println!("query {n:>6} silences: {ns:>12.0} ns/query ({iters} iterations)");
    }
    // The mutes cached path, HEAD BenchmarkMutes-like: T silences, M of them `foo="bar"`,
    // the rest `job="job<i>"`; the alert is {foo="bar"} (muted) or {foo="baz"} (not muted).
    for (total, matching) in [(1, 1), (100, 10), (1_000, 1), (10_000, 10), (10_000, 0)] {
        let mut s = store();
        let mut data = Vec::new();
        for i in 0..total {
            let m = if matching > 0 && i % (total / matching) == 0 {
                eq("foo", "bar")
            } else {
                eq("job", &format!("job{i}"))
            };
            data.extend(peer(
                &peer_silence(&format!("s{i}"), vec![m], -MIN, 24 * HOUR, -MIN),
                ts(25 * HOUR),
            ));
        }
        s.merge(&data, at(0)).expect("ok");
        for alert in ["bar", "baz"] {
            let l = labels(&[("foo", alert)]);
            let fp = fingerprint(&l);
            let mut out = MuteResult::default();
            let ns = time(2_000_000, &mut || {
                black_box(s.mutes_into(black_box(fp), &l, at(1), &mut out));
            });
            println!(
                "mutes cached {total:>6} total {matching:>3} matching, alert foo={alert}: {ns:>8.1} ns/call ({} active)",
                out.active.len()
            );
        }
    }
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
fn measure_other_paths() {
    use std::hint::black_box;
    use std::time::Instant;

    // HEAD BenchmarkMutesIncremental-like: 10,000 `job="job<i>"` silences, a warm cache for
    // {service="test", instance="instance1"}, then one added silence before each call, so
    // every call takes the incremental path.
    let mut s = store();
    let mut data = Vec::new();
    for i in 0..10_000 {
        let s = peer_silence(
            &format!("base{i}"),
            vec![eq("job", &format!("job{i}"))],
            -MIN,
            HOUR,
            -MIN,
        );
        data.extend(peer(&s, ts(2 * HOUR)));
    }
    s.merge(&data, at(0)).expect("ok");
    let l = labels(&[("service", "test"), ("instance", "instance1")]);
    let fp = fingerprint(&l);
    s.mutes(fp, &l, at(0));
    let adds: Vec<Vec<u8>> = (0..2_000)
        .map(|i| {
            let m = if i % 20 == 0 { eq("service", "test") } else { eq("job", &format!("new{i}")) };
            peer(&peer_silence(&format!("add{i}"), vec![m], -MIN, HOUR, -MIN), ts(2 * HOUR))
        })
        .collect();
    let mut spent = 0u128;
    let mut out = MuteResult::default();
    for a in &adds {
        s.merge(a, at(0)).expect("ok");
        let t = Instant::now();
        black_box(s.mutes_into(fp, &l, at(1), &mut out));
        spent += t.elapsed().as_nanos();
    }
    println!(
        "mutes after one add (10,000 base): {:.0} ns/call, {} active at the end",
        spent as f64 / 2_000.0,
        out.active.len()
    );

    assert_eq!(s.count_state(&[SilenceState::Active], at(1)), 12_000);
    let t = Instant::now();
    for _ in 0..100 {
        black_box(s.count_state(black_box(&[SilenceState::Active]), at(1)));
    }
    println!(
        "count_state over {} silences: {:.0} ns",
        s.len(),
        t.elapsed().as_nanos() as f64 / 100.0
    );
    let snapshot = s.marshal();
    let t = Instant::now();
    let loaded = Silences::load(&snapshot, SilencesConfig::default(), 0).expect("ok");
    println!(
        "load of {} silences ({} bytes): {:.2} ms",
        loaded.len(),
        snapshot.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let alertmanager = alertmanager_query_state(10_000, 0);
    let snapshot = alertmanager.marshal();
    let t = Instant::now();
    let loaded = Silences::load(&snapshot, SilencesConfig::default(), 0).expect("ok");
    println!(
        "load of the 10,000-silence query workload: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut loaded = loaded;
    let t = Instant::now();
    let removed = loaded.gc(at(HOUR + 120 * HOUR)).expect("no zero expiry");
    println!("gc removing {removed}: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);

    // HEAD BenchmarkGC-like: N `foo="bar"` silences in random order, a fraction expired;
    // timed: two GC runs (the second removes nothing).
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    for (n, expired) in [(1_000, 0.3), (10_000, 0.1), (10_000, 0.8)] {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rand::RngExt::random_range(&mut rng, 0..=i));
        }
        let cut = (n as f64 * expired) as usize;
        let mut data = Vec::new();
        for j in order {
            let (id, exp) = if j < cut {
                (format!("expired-{j}"), -MIN)
            } else {
                (format!("active-{j}"), 2 * HOUR)
            };
            data.extend(peer(
                &peer_silence(&id, vec![eq("foo", "bar")], -2 * HOUR, -HOUR, -2 * HOUR),
                ts(exp),
            ));
        }
        let mut s = Silences::load(&data, SilencesConfig::default(), 0).expect("ok");
        let t = Instant::now();
        let first = s.gc(at(0)).expect("ok");
        let second = s.gc(at(0)).expect("ok");
        println!(
            "gc {n} silences, {:.0}% expired: {:.0} us (removed {first} then {second})",
            expired * 100.0,
            t.elapsed().as_secs_f64() * 1e6
        );
    }
}
