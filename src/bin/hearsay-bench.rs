//! `hearsay-bench`: hearsay measures itself.
//!
//! ```text
//! hearsay-bench [SCENARIO...] [--json] [--seconds S]
//! ```
//!
//! With no scenario it runs every default scenario. Progress goes to stderr; a table (or, with
//! `--json`, one JSON object per figure) goes to stdout. Figures that have an anchor measured
//! in the same run carry `anchor`, `anchor_value` and `ratio`.
//!
//! Scenarios:
//! * `codec` — the memberlist codec on a gossip packet as Alertmanager fills it: a compound of
//!   six 200-byte user messages (1,231 bytes), sealed (LZW when smaller, CRC) and decoded.
//!   No anchor yet: the Go codec comparison comes with the loopback scenarios.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hearsay::core::wire::{Codec, Message, encode_compound};

struct Figure {
    scenario: &'static str,
    metric: &'static str,
    value: f64,
    unit: &'static str,
    anchor: Option<(&'static str, f64)>,
}

struct Args {
    scenarios: Vec<String>,
    json: bool,
    seconds: f64,
}

const SCENARIOS: &[&str] = &["codec"];

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!(
                "hearsay-bench: {msg}\nusage: hearsay-bench [{}] [--json] [--seconds S]",
                SCENARIOS.join("|")
            );
            return ExitCode::from(2);
        }
    };
    let mut figures = Vec::new();
    for scenario in &args.scenarios {
        eprintln!("running {scenario} ({} s per measurement)…", args.seconds);
        match scenario.as_str() {
            "codec" => codec(&args, &mut figures),
            other => unreachable!("validated scenario {other}"),
        }
    }
    report(&figures, args.json);
    ExitCode::SUCCESS
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args { scenarios: Vec::new(), json: false, seconds: 1.0 };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => args.json = true,
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                args.seconds = v.parse().map_err(|_| format!("bad --seconds {v}"))?;
                if !(args.seconds > 0.0 && args.seconds <= 600.0) {
                    return Err("--seconds must be in (0, 600]".into());
                }
            }
            s if SCENARIOS.contains(&s) => args.scenarios.push(arg),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.scenarios.is_empty() {
        args.scenarios = SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    }
    Ok(args)
}

/// Run `op` repeatedly for about `seconds`; return operations per second.
fn rate(seconds: f64, mut op: impl FnMut()) -> f64 {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..64 {
            op();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn codec(args: &Args, out: &mut Vec<Figure>) {
    let codec = Codec::default();
    // Alertmanager-like payloads: protobuf-ish bytes with some repetition.
    let payloads: Vec<Vec<u8>> = (0..6u8)
        .map(|i| {
            (0..200u8)
                .map(|j| if j % 7 == 0 { i } else { b"nflog-entry-"[usize::from(j) % 12] })
                .collect()
        })
        .collect();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for p in &payloads {
        let mut m = Vec::new();
        Message::User(p).encode(codec.ints, &mut m);
        parts.push(m);
    }
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let mut compound = Vec::new();
    encode_compound(&slices, &mut compound).expect("six parts fit");
    let mut sealed = Vec::new();
    codec.seal_packet(&compound, true, &mut sealed);

    let mut buf = Vec::with_capacity(2048);
    let encode = rate(args.seconds, || {
        buf.clear();
        codec.seal_packet(black_box(&compound), true, &mut buf);
        black_box(&buf);
    });
    let decode = rate(args.seconds, || {
        let mut n = 0;
        codec.decode_packet(black_box(&sealed), &mut |_| n += 1).expect("our packet decodes");
        black_box(n);
    });
    out.push(Figure {
        scenario: "codec",
        metric: "packet_seal_rate",
        value: encode,
        unit: "packets/s",
        anchor: None,
    });
    out.push(Figure {
        scenario: "codec",
        metric: "packet_decode_rate",
        value: decode,
        unit: "packets/s",
        anchor: None,
    });
    out.push(Figure {
        scenario: "codec",
        metric: "message_decode_rate",
        value: decode * 6.0,
        unit: "messages/s",
        anchor: None,
    });
    out.push(Figure {
        scenario: "codec",
        metric: "sealed_bytes_per_message",
        value: sealed.len() as f64 / 6.0,
        unit: "bytes",
        anchor: None,
    });
}

fn report(figures: &[Figure], json: bool) {
    if json {
        for f in figures {
            let mut line = format!(
                "{{\"scenario\":\"{}\",\"metric\":\"{}\",\"value\":{:.3},\"unit\":\"{}\"",
                f.scenario, f.metric, f.value, f.unit
            );
            if let Some((name, v)) = f.anchor {
                line += &format!(
                    ",\"anchor\":\"{name}\",\"anchor_value\":{v:.3},\"ratio\":{:.4}",
                    f.value / v
                );
            }
            println!("{line}}}");
        }
        return;
    }
    println!("{:<10} {:<26} {:>16} {:<12} vs anchor", "scenario", "metric", "value", "unit");
    for f in figures {
        let vs = f
            .anchor
            .map_or(String::new(), |(name, v)| format!("{:.3}× {name} ({v:.0})", f.value / v));
        println!("{:<10} {:<26} {:>16.1} {:<12} {}", f.scenario, f.metric, f.value, f.unit, vs);
    }
}
