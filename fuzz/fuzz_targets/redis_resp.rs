//! Server bytes into the Redis loop's RESP decoding and the Redis peer core behind it.
//!
//! The driver (`src/redis/conn.rs`) feeds socket reads to the redis crate's incremental
//! `Parser`, which must keep a half-read value across a `WouldBlock` and resume; every value
//! it yields goes to `RedisPeer::handle_value` on the link it arrived on, and the peer's
//! `Update`/`FullState` events are merged into the cluster layer, as the node does.
//!
//! Asserts: the values decoded whole are decoded however the bytes are cut into reads, and
//! bytes accepted whole are not refused when cut; nothing panics in the parser, the peer core (replies to its own commands, pub/sub
//! messages on every channel of its layout, garbage) or the merge. Run with
//! `cargo fuzz run redis_resp` from this directory.

#![no_main]

use std::io::{self, Read};
use std::time::Duration;

use hearsay::core::cluster::Cluster;
use hearsay::core::peer::redis::{Link, RedisEvent, RedisPeer, RedisSettings};
use hearsay::core::state::nflog::Nflog;
use hearsay::core::state::silences::{Silences, SilencesConfig};
use hearsay::core::swim::Delegate;
use hearsay::core::{Millis, UnixMillis};
use libfuzzer_sys::fuzz_target;
use redis::{Parser, PushKind, Value};

const NOW: UnixMillis = UnixMillis(1_795_400_000_000);

/// A socket that has `data[..window]` for now and `WouldBlock`s past it.
struct Socket<'a> {
    data: &'a [u8],
    pos: usize,
    window: usize,
    blocked: bool,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.window - self.pos);
        if n == 0 {
            self.blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Every value in `data` when it arrives `read_len` bytes per readiness event, and whether
/// decoding stopped on bytes that are not RESP (rather than waiting for more).
fn values(data: &[u8], read_len: usize) -> (Vec<Value>, bool) {
    let mut parser = Parser::new();
    let mut socket = Socket { data, pos: 0, window: 0, blocked: false };
    let mut out = Vec::new();
    loop {
        socket.window = (socket.window + read_len).min(data.len());
        socket.blocked = false;
        loop {
            match parser.parse_value(&mut socket) {
                Ok(v) => out.push(v),
                Err(_) if socket.blocked => break,
                Err(_) => return (out, true),
            }
        }
        if socket.window == data.len() {
            return (out, false);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&config, data)) = input.split_first() else {
        return;
    };
    let whole = values(data, data.len().max(1));
    let chunked = values(data, usize::from(config) + 1);
    // What is decoded whole is decoded however the bytes are cut. Not asserted (found by this
    // target, open): the converse. Bytes that are not RESP are refused when read whole, but
    // read a byte at a time the parser may wait for more (`late-refusal` in the seeds) or
    // even skip them and decode a value behind them (`resync-after-garbage`).
    assert!(chunked.0.starts_with(&whole.0), "decoded values depend on how the bytes arrived");
    assert!(whole.1 || !chunked.1, "refused when cut into reads, accepted whole");

    let mut peer = RedisPeer::new(
        RedisSettings::grafana("fuzz", "pre"),
        &["nfl", "sil"],
        Millis(0),
        NOW,
        u64::from(config),
    );
    let mut cluster = Cluster::new();
    cluster.register("nfl", Nflog::new(Duration::from_secs(3600)));
    cluster.register("sil", Silences::new(SilencesConfig::default(), 1));
    cluster.set_wall_clock(Millis(0), NOW);
    let mut now = Millis(0);
    for link in Link::ALL {
        peer.handle_connected(now, NOW, link);
    }
    drain(&mut peer, &mut cluster, now);

    // Server values as replies to the peer's commands and as subscriber traffic.
    for (i, v) in whole.0.into_iter().enumerate() {
        now = Millis(now.0 + 7);
        let link = if (usize::from(config) >> (i % 8)) & 1 == 1 {
            Link::Command
        } else {
            Link::Subscriber
        };
        peer.handle_value(now, NOW, link, v);
        drain(&mut peer, &mut cluster, now);
    }
    // The input as a message on each channel of the layout, in both RESP versions' shapes.
    for channel in ["pre:full_state", "pre:full_state:request", "pre:sil", "pre:nfl", "pre:x"] {
        let parts = vec![Value::BulkString(channel.into()), Value::BulkString(data.to_vec())];
        let resp2 = [vec![Value::BulkString(b"message".to_vec())], parts.clone()].concat();
        peer.handle_value(now, NOW, Link::Subscriber, Value::Array(resp2));
        peer.handle_value(
            now,
            NOW,
            Link::Subscriber,
            Value::Push { kind: PushKind::Message, data: parts },
        );
        drain(&mut peer, &mut cluster, now);
    }
    peer.handle_timeout(Millis(now.0 + 60_000), NOW);
    drain(&mut peer, &mut cluster, now);
});

/// Take everything the peer has for the driver and the host; merge what peers sent.
fn drain(peer: &mut RedisPeer, cluster: &mut Cluster, now: Millis) {
    while peer.poll_link().is_some() {}
    for link in Link::ALL {
        while peer.poll_command(link).is_some() {}
    }
    while let Some(event) = peer.poll_event() {
        match event {
            RedisEvent::Update(part) => cluster.notify_msg(now, &part),
            RedisEvent::FullState(state) => cluster.merge_remote_state(now, &state, false),
            _ => {}
        }
    }
}
