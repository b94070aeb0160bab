use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::*;
use crate::core::config::SwimConfig;
use crate::core::state::delimited;
use crate::core::wire::{Alive, Codec, Message, Vsn};

/// A toy replicated state: a set of numbers, one delimited element each.
#[derive(Debug, Default)]
struct Numbers(BTreeSet<u64>);

impl Replicated for Numbers {
    fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in &self.0 {
            delimited::push(&mut out, &n.to_be_bytes());
        }
        out
    }

    fn merge(&mut self, data: &[u8], _now: UnixMillis) -> Result<usize, DecodeError> {
        let parts = delimited::split(data)?;
        let mut values = Vec::new();
        for (offset, bytes) in parts {
            let arr: [u8; 8] = bytes
                .try_into()
                .map_err(|_| DecodeError::Protobuf { offset, reason: "not 8 bytes".into() })?;
            values.push(u64::from_be_bytes(arr));
        }
        Ok(values.into_iter().filter(|v| self.0.insert(*v)).count())
    }
}

fn numbers(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in values {
        delimited::push(&mut out, &n.to_be_bytes());
    }
    out
}

fn part(key: &str, data: Vec<u8>) -> Vec<u8> {
    Part { key: key.into(), data }.encode_to_vec()
}

fn cluster() -> Cluster {
    let mut c = Cluster::new();
    c.register("nfl", Numbers::default());
    c.register("sil", Numbers::default());
    c
}

#[test]
fn updates_route_by_key_and_unknown_keys_are_counted() {
    let mut c = cluster();
    c.notify_msg(Millis(0), &part("sil", numbers(&[7])));
    c.notify_msg(Millis(0), &part("other", numbers(&[1])));
    c.notify_msg(Millis(0), b"\xff\xff not a part");
    assert_eq!(c.state::<Numbers>("sil").map(|s| s.0.len()), Some(1));
    assert_eq!(c.state::<Numbers>("nfl").map(|s| s.0.len()), Some(0));
    assert_eq!(c.global_stats().unknown_keys, 1);
    assert_eq!(c.global_stats().decode_errors, 1);
    assert_eq!(c.stats()["sil"].updates_received, 1);
}

#[test]
fn one_bad_part_does_not_block_the_others() {
    let mut c = cluster();
    let full = FullState {
        parts: vec![
            Part { key: "nfl".into(), data: vec![5, 1, 2] },
            Part { key: "sil".into(), data: numbers(&[1, 2]) },
        ],
    };
    c.merge_remote_state(Millis(0), &full.encode_to_vec(), true);
    assert_eq!(c.stats()["nfl"].merge_errors, 1);
    assert_eq!(c.state::<Numbers>("sil").map(|s| s.0.len()), Some(2));
    assert_eq!(c.stats()["sil"].full_states_received, 1);
}

#[test]
fn local_state_carries_every_registered_state() {
    let mut c = cluster();
    c.notify_msg(Millis(0), &part("nfl", numbers(&[3])));
    c.register_opaque("grafana");
    c.opaque_mut("grafana").expect("registered").set_local(b"go-owned".to_vec());
    let full = FullState::decode(c.local_state(Millis(0), false).as_slice()).expect("decodes");
    let keys: Vec<&str> = full.parts.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["grafana", "nfl", "sil"]);
    assert_eq!(full.parts[0].data, b"go-owned");
    assert_eq!(full.parts[1].data, numbers(&[3]));
}

#[test]
fn changed_elements_are_regossiped_once_each_unless_oversized() {
    let mut c = cluster();
    c.notify_msg(Millis(0), &part("nfl", numbers(&[1, 2, 3])));
    assert_eq!(c.outgoing.len(), 3, "three new elements: three re-broadcasts");
    assert_eq!(c.stats()["nfl"].propagated, 3);
    c.outgoing.clear();
    c.notify_msg(Millis(0), &part("nfl", numbers(&[1, 2, 3])));
    assert!(c.outgoing.is_empty(), "nothing new, nothing re-gossiped");
    let big: Vec<u64> = (100..200).collect();
    c.notify_msg(Millis(0), &part("nfl", numbers(&big)));
    assert!(
        c.outgoing.is_empty() && c.oversize.is_empty(),
        "arrived oversized: the origin sent it to everyone"
    );
}

#[test]
fn oversized_parts_queue_for_tcp_with_a_bound() {
    let mut c = cluster();
    assert!(c.broadcast("nfl", vec![0; 100]));
    assert_eq!(c.outgoing.len(), 1);
    for _ in 0..OVERSIZE_QUEUE_LEN {
        assert!(c.broadcast("nfl", vec![0; 800]));
    }
    assert!(!c.broadcast("nfl", vec![0; 800]));
    assert_eq!(c.stats()["nfl"].oversize_dropped, 1);
    assert_eq!(c.oversize_queued(), OVERSIZE_QUEUE_LEN);
}

#[test]
fn opaque_states_hand_payloads_to_the_host() {
    let mut c = Cluster::new();
    c.register_opaque("flushlog:1");
    c.notify_msg(Millis(0), &part("flushlog:1", b"update".to_vec()));
    let opaque = c.opaque_mut("flushlog:1").expect("registered");
    assert_eq!(
        opaque.poll_inbound(),
        Some(Inbound { full_state: false, data: b"update".to_vec() })
    );
    assert_eq!(opaque.poll_inbound(), None);
}

#[test]
fn an_opaque_full_state_carries_what_changed_since_the_hosts_copy() {
    let mut c = Cluster::new();
    c.register_opaque("silences:1");
    c.opaque_mut("silences:1").expect("registered").set_local(b"copy".to_vec());
    // A peer's update and a local write arrive before the host refreshes its copy.
    c.notify_msg(Millis(0), &part("silences:1", b"theirs".to_vec()));
    c.opaque_mut("silences:1").expect("registered").note_change(b"mine");
    let data = |c: &mut Cluster| -> Vec<Vec<u8>> {
        let full = FullState::decode(c.local_state(Millis(0), true).as_slice()).expect("decodes");
        full.parts.into_iter().map(|p| p.data).collect()
    };
    assert_eq!(data(&mut c), [b"copy".to_vec(), b"theirs".to_vec(), b"mine".to_vec()]);
    // The next copy holds them: they are not sent twice.
    c.opaque_mut("silences:1").expect("registered").set_local(b"copy 2".to_vec());
    assert_eq!(data(&mut c), [b"copy 2".to_vec()]);
    // Bounded: past the limit changes are counted, not kept.
    let opaque = c.opaque_mut("silences:1").expect("registered");
    opaque.note_change(&vec![0; OPAQUE_SINCE_BYTES]);
    opaque.note_change(b"one more");
    assert_eq!(opaque.since_overflows(), 1);
    assert_eq!(data(&mut c).len(), 2);
}

#[test]
fn merges_see_wall_clock_time() {
    let mut c = Cluster::new();
    c.set_wall_clock(Millis(1_000), UnixMillis(1_700_000_000_000));
    assert_eq!(c.unix(Millis(1_500)), UnixMillis(1_700_000_000_500));
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 9094))
}

fn swim_with_peers() -> Swim<Cluster> {
    let config = SwimConfig::alertmanager("a".into(), addr(1), 2);
    let mut s = Swim::new(config, cluster(), 1, Millis(0)).expect("valid");
    for i in 2..=3u8 {
        let ip = [10, 0, 0, i];
        let name = format!("n{i}");
        let alive = Alive {
            addr: Some(&ip),
            incarnation: 1,
            meta: None,
            node: &name,
            port: 9094,
            vsn: Some(Vsn::ALERTMANAGER),
        };
        let mut msg = Vec::new();
        Message::Alive(alive).encode(Default::default(), &mut msg);
        let mut packet = Vec::new();
        Codec::default().seal_packet(&msg, false, &mut packet);
        s.handle_packet(Millis(0), addr(i), &packet).expect("decodes");
    }
    while s.poll_stream().is_some() {}
    s
}

#[test]
fn pump_gossips_small_parts_and_streams_big_ones_to_every_member() {
    let mut s = swim_with_peers();
    s.delegate_mut().broadcast("sil", vec![1; 50]);
    s.delegate_mut().broadcast("sil", vec![2; 900]);
    let queued_before = s.user_queue_len();
    let mut c = std::mem::take(s.delegate_mut());
    pump(&mut s, &mut c, Millis(10));
    *s.delegate_mut() = c;
    assert_eq!(s.user_queue_len(), queued_before + 1);
    let streams: Vec<_> = std::iter::from_fn(|| s.poll_stream()).collect();
    let mut to: Vec<SocketAddr> = streams.iter().map(|r| r.to).collect();
    to.sort();
    assert_eq!(to, vec![addr(2), addr(3)]);
    assert!(streams.iter().all(|r| !r.expect_reply));
    assert_eq!(s.delegate().stats()["sil"].oversize_sent, 2);
    // One delivery succeeds, one fails.
    s.handle_stream_reply(Millis(30), streams[0].id, Ok(&[]));
    s.handle_stream_reply(Millis(30), streams[1].id, Err(StreamFailure::Connect));
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    for e in &events {
        if let super::super::swim::Event::Reliable { id, result, .. } = e {
            s.delegate_mut().on_reliable(*id, result, Millis(30));
        }
    }
    assert_eq!(s.delegate().stats()["sil"].oversize_failed, 1);
    let durations: Vec<_> = s.delegate_mut().drain_oversize_durations().collect();
    assert_eq!(durations, vec![("sil".to_owned(), Duration::from_millis(20))]);
}

#[test]
fn local_writes_are_gossiped_and_sent_directly_to_every_member() {
    let mut s = swim_with_peers();
    let mut c = std::mem::take(s.delegate_mut());
    assert!(c.publish("sil", vec![3; 40]));
    let queued_before = s.user_queue_len();
    pump(&mut s, &mut c, Millis(5));
    assert_eq!(s.user_queue_len(), queued_before + 1, "gossiped as usual");
    let streams: Vec<_> = std::iter::from_fn(|| s.poll_stream()).collect();
    assert_eq!(streams.len(), 2, "and straight to both members");
    assert_eq!(c.stats()["sil"].direct_sent, 2);
    c.on_reliable(streams[0].id, &Err(StreamFailure::Timeout), Millis(9));
    assert_eq!(c.stats()["sil"].direct_failed, 1);
    assert_eq!(c.stats()["sil"].oversize_failed, 0, "direct sends are not oversize sends");
    // A big write takes the oversize path only.
    assert!(c.publish("sil", vec![4; 900]));
    pump(&mut s, &mut c, Millis(10));
    assert_eq!(c.stats()["sil"].oversize_sent, 2);
    assert_eq!(c.stats()["sil"].direct_sent, 2);
}

#[test]
fn the_host_takes_a_native_key_and_may_register_it_again() {
    let mut c = cluster();
    c.notify_msg(Millis(0), &part("sil", numbers(&[7])));
    assert_eq!(c.register_host("sil"), HostRegistration::TookNative);
    assert!(c.switched_off("sil") && !c.switched_off("nfl"));
    assert!(c.state::<Numbers>("sil").is_none(), "the native state is gone");
    assert_eq!(c.marshal("sil"), None, "nor is it snapshotted");
    // Peers' payloads now go to the host, and its copy is what push/pulls send.
    c.notify_msg(Millis(0), &part("sil", b"host bytes".to_vec()));
    c.opaque_mut("sil").expect("host-owned").set_local(b"host copy".to_vec());
    assert_eq!(c.register_host("sil"), HostRegistration::Again);
    let opaque = c.opaque_mut("sil").expect("still host-owned");
    assert_eq!(opaque.poll_inbound().map(|i| i.data), Some(b"host bytes".to_vec()));
    let full = FullState::decode(c.local_state(Millis(0), false).as_slice()).expect("decodes");
    let sil: Vec<&[u8]> =
        full.parts.iter().filter(|p| p.key == "sil").map(|p| p.data.as_slice()).collect();
    assert_eq!(sil, [b"host copy".as_slice()], "the copy survives a second registration");
    assert_eq!(c.register_host("grafana"), HostRegistration::New);
    assert_eq!(c.switched_off_keys().collect::<Vec<_>>(), ["sil"]);
}
