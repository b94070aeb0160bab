//! The `codec` scenario: the memberlist codec alone, on a gossip packet as Alertmanager fills
//! it — a compound of six 200-byte user messages — sealed (LZW when smaller, CRC) and decoded.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hearsay::core::wire::{Codec, Message, encode_compound};

use crate::Args;
use crate::broadcast::payload;
use crate::report::Figure;

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

pub(crate) fn run(args: &Args, out: &mut Vec<Figure>) -> Result<(), String> {
    let codec = Codec::default();
    let parts: Vec<Vec<u8>> = (0..6u64)
        .map(|seq| {
            let mut m = Vec::new();
            Message::User(&payload(seq, 0, 200)).encode(codec.ints, &mut m);
            m
        })
        .collect();
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let mut compound = Vec::new();
    encode_compound(&slices, &mut compound).map_err(|e| e.to_string())?;
    let mut sealed = Vec::new();
    codec.seal_packet(&compound, true, &mut sealed);
    let seconds = args.seconds.min(2.0);

    let mut buf = Vec::with_capacity(2048);
    let seal = rate(seconds, || {
        buf.clear();
        codec.seal_packet(black_box(&compound), true, &mut buf);
        black_box(&buf);
    });
    let decode = rate(seconds, || {
        let mut n = 0;
        let _ = codec.decode_packet(black_box(&sealed), &mut |_| n += 1);
        black_box(n);
    });
    out.push(Figure::new("codec", "packet_seal_rate", seal, "packets/s"));
    out.push(Figure::new("codec", "packet_decode_rate", decode, "packets/s"));
    out.push(Figure::new("codec", "message_decode_rate", decode * 6.0, "messages/s"));
    out.push(Figure::new("codec", "sealed_bytes_per_message", sealed.len() as f64 / 6.0, "bytes"));
    Ok(())
}
