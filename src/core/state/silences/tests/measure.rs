//! Release-build measurements (printed, not asserted) of the Alertmanager silence
//! benchmarks' workloads.

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
