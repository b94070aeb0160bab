//! A C host's input structs through the C ABI's functions and the Rust behind them: labels
//! (`hs_label`), flushes (`hs_flush`, with its receiver and alert-hash arrays), silences
//! (`hs_silence`, `hs_matcher` with any `match_type`), ids, times, buffer capacities, and the
//! configuration setters (`hs_str` addresses, names, labels, keys, Redis URLs and TLS options).
//!
//! Text fields are the fuzzer's bytes, valid UTF-8 or not; lengths always describe the buffers
//! they come with (the ABI's contract). One node on loopback serves the node calls; it is
//! replaced every few thousand inputs so the states it accumulates stay small. libFuzzer's
//! panic hook aborts on any panic, so a panic the ABI's boundary would have turned into
//! `HS_RESULT_PANIC` is still found. Run with `cargo fuzz run ffi` from this directory.

#![no_main]

use std::ffi::c_char;
use std::sync::Mutex;

use hearsay::ffi::*;
use libfuzzer_sys::fuzz_target;

/// Inputs a node serves before it is replaced.
const NODE_USES: u32 = 5000;

/// The fuzzer's bytes, taken from the front.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&[self.bytes(8), &[0u8; 8]].concat()[..8]);
        i64::from_le_bytes(b)
    }

    /// Text of up to 31 bytes, its length first.
    fn str(&mut self) -> hs_str {
        let len = usize::from(self.byte() & 31);
        let b = self.bytes(len);
        hs_str { data: b.as_ptr().cast::<c_char>(), len: b.len() }
    }
}

struct Shared {
    node: usize,
    uses: u32,
}

static NODE: Mutex<Shared> = Mutex::new(Shared { node: 0, uses: 0 });

fn lit(s: &str) -> hs_str {
    hs_str { data: s.as_ptr().cast::<c_char>(), len: s.len() }
}

fn start_node() -> *mut hs_node {
    let mut cfg: *mut hs_config = std::ptr::null_mut();
    assert_eq!(hs_config_new(&mut cfg), hs_result::Ok);
    assert_eq!(hs_config_set_bind_address(cfg, lit("127.0.0.1:0")), hs_result::Ok);
    assert_eq!(hs_config_set_name(cfg, lit("fuzz")), hs_result::Ok);
    let mut node: *mut hs_node = std::ptr::null_mut();
    assert_eq!(hs_node_start(cfg, &mut node), hs_result::Ok, "a loopback node starts");
    hs_config_free(cfg);
    node
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut shared = NODE.lock().expect("not poisoned: a panic aborts");
    if shared.node == 0 || shared.uses >= NODE_USES {
        hs_node_free(shared.node as *mut hs_node);
        shared.node = start_node() as usize;
        shared.uses = 0;
    }
    shared.uses += 1;
    let node = shared.node as *const hs_node;

    while !input.0.is_empty() {
        match input.byte() % 5 {
            0 => labels_calls(node, &mut input),
            1 => flush_calls(node, &mut input),
            2 => silence_calls(node, &mut input),
            3 => config_calls(&mut input),
            _ => {
                let id = input.str();
                let _ = hs_node_expire_silence(node, id, input.i64());
            }
        }
    }
});

fn label_list(input: &mut Input<'_>) -> Vec<hs_label> {
    (0..input.byte() % 6).map(|_| hs_label { name: input.str(), value: input.str() }).collect()
}

fn labels_calls(node: *const hs_node, input: &mut Input<'_>) {
    let labels = label_list(input);
    let (mut hash, mut fp, mut muted) = (0u64, 0u64, 0usize);
    let ok = hs_alert_hash(labels.as_ptr(), labels.len(), &mut hash) == hs_result::Ok;
    assert_eq!(ok, hs_alert_fingerprint(labels.as_ptr(), labels.len(), &mut fp) == hs_result::Ok);
    let _ = hs_node_mutes(node, labels.as_ptr(), labels.len(), input.i64(), &mut muted);
}

fn flush_calls(node: *const hs_node, input: &mut Input<'_>) {
    let receiver =
        hs_receiver { name: input.str(), integration: input.str(), index: input.byte().into() };
    let group_key = input.str();
    let firing: Vec<u64> = (0..input.byte() % 8).map(|_| input.i64() as u64).collect();
    let resolved: Vec<u64> = (0..input.byte() % 8).map(|_| input.i64() as u64).collect();
    let flush = hs_flush {
        receiver,
        group_key,
        firing: firing.as_ptr(),
        firing_len: firing.len(),
        resolved: resolved.as_ptr(),
        resolved_len: resolved.len(),
        send_resolved: input.byte() & 1 == 1,
        repeat_interval_ms: input.i64() as u64,
        now_ms: input.i64(),
    };
    let mut decision = hs_decision { notify: false, row: hs_dedup_row::Unchanged };
    let _ = hs_node_should_notify(node, &flush, &mut decision);
    let mut written = false;
    let _ = hs_node_log_notification(node, &flush, &mut written);
}

fn silence_calls(node: *const hs_node, input: &mut Input<'_>) {
    let matchers: Vec<hs_matcher> = (0..input.byte() % 4)
        .map(|_| hs_matcher {
            name: input.str(),
            value: input.str(),
            match_type: u32::from(input.byte() % 6),
        })
        .collect();
    let silence = hs_silence {
        id: input.str(),
        matchers: matchers.as_ptr(),
        matchers_len: matchers.len(),
        starts_at_ms: input.i64(),
        ends_at_ms: input.i64(),
        created_by: input.str(),
        comment: input.str(),
    };
    let now = input.i64();
    let mut id = [0 as c_char; 64];
    let cap = usize::from(input.byte() % 65);
    let mut id_len = 0usize;
    if hs_node_set_silence(node, &silence, now, id.as_mut_ptr(), cap, &mut id_len) == hs_result::Ok
    {
        assert!(id_len <= cap, "id of {id_len} bytes in a {cap}-byte buffer");
        let written = hs_str { data: id.as_ptr(), len: id_len };
        let _ = hs_node_expire_silence(node, written, now);
    }
}

fn config_calls(input: &mut Input<'_>) {
    let mut cfg: *mut hs_config = std::ptr::null_mut();
    assert_eq!(hs_config_new(&mut cfg), hs_result::Ok);
    for _ in 0..input.byte() % 8 {
        let _ = match input.byte() % 10 {
            0 => hs_config_set_name(cfg, input.str()),
            1 => hs_config_set_bind_address(cfg, input.str()),
            2 => hs_config_set_advertise_address(cfg, input.str()),
            3 => hs_config_add_peer(cfg, input.str()),
            4 => hs_config_set_label(cfg, input.str()),
            5 => {
                let len = usize::from(input.byte() % 40);
                let key = input.bytes(len);
                hs_config_add_key(cfg, key.as_ptr(), key.len())
            }
            6 => {
                let (url, prefix) = (input.str(), input.str());
                hs_config_set_redis(cfg, url, prefix)
            }
            7 => {
                let (user, password) = (input.str(), input.str());
                hs_config_set_redis_auth(cfg, user, password)
            }
            8 => {
                let (min, suites) = (input.str(), input.str());
                hs_config_set_redis_tls_options(cfg, min, suites)
            }
            _ => hs_config_set_redis_db(cfg, input.i64()),
        };
    }
    hs_config_free(cfg);
}
