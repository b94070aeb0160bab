//! Host-owned states: the host marshals and merges its own state (Grafana's and
//! Alertmanager's Go states); the node gossips the bytes and queues what peers send.

use std::ffi::c_char;
use std::time::Duration;

use super::node::node;
use super::{Failure, boundary, bytes, copy_out, hs_node, hs_result, hs_str, out_ptr, text, write};
use crate::node::{HostRegistration, States as _, TransportKind};

/// What [`hs_node_next_state_payload`] found.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_payload_kind {
    /// Nothing is queued; nothing was copied.
    None = 0,
    /// An update a peer broadcast (the host's `Merge` takes it).
    Update = 1,
    /// A peer's full state from a push/pull (the host's `Merge` takes it too).
    FullState = 2,
}

/// What `hs_node_add_state` did with the key.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_state_added {
    /// The key was free.
    New = 0,
    /// A native state held the key (Alertmanager's `nfl`/`sil`, an organisation's
    /// `silences:<org>`, ...): it is switched off, its calls return `HS_RESULT_NO_SUCH_STATE`,
    /// and `hearsay_native_state_switched_off{key}` is 1.
    TookNative = 1,
    /// The host had registered the key already: its state object is replaced; payloads queued
    /// for the key stay queued for the new one.
    Replaced = 2,
}

/// Register a host-owned state under `key`; what happened goes to `*added_out`. The host's
/// keys win: Alertmanager and Grafana register their states under the keys they always use,
/// so a native state there is switched off (`HS_STATE_ADDED_TOOK_NATIVE`; keep it with
/// `hs_config_set_state_key`). Register before joining so the first push/pull carries it.
/// Peers' payloads for it queue, up to 4,096, until taken.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_add_state(
    node: *const hs_node,
    key: hs_str,
    added_out: *mut hs_state_added,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let out = out_ptr(added_out, "added_out")?;
        let added = match n.add_state(text(key, "key")?)? {
            HostRegistration::New => hs_state_added::New,
            HostRegistration::TookNative => hs_state_added::TookNative,
            HostRegistration::Again => hs_state_added::Replaced,
        };
        write(out, added);
        Ok(())
    })
}

/// How a node carries states' updates.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_transport {
    /// memberlist gossip: small updates are gossiped (and sent to each member over TCP by
    /// their writer), larger ones sent over TCP.
    Gossip = 0,
    /// Redis pub/sub in Grafana's layout: one publish reaches every member.
    Redis = 1,
}

/// The node's transport, to `*transport_out`: what a host's `ReliableDelivery` answer rests
/// on (Grafana's `ClusterChannel`: on Redis every update reached every member).
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_transport(
    node: *const hs_node,
    transport_out: *mut hs_transport,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let out = out_ptr(transport_out, "transport_out")?;
        write(
            out,
            match n.transport() {
                TransportKind::Gossip => hs_transport::Gossip,
                TransportKind::Redis => hs_transport::Redis,
            },
        );
        Ok(())
    })
}

/// Set the full state of `key` that push/pulls send to peers (the host's `MarshalBinary`);
/// `len` bytes at `data` are copied.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_set_state(
    node: *const hs_node,
    key: hs_str,
    data: *const u8,
    len: usize,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let data = bytes(data, len, "data")?.to_vec();
        Ok(n.set_state(text(key, "key")?, data)?)
    })
}

/// Send an update of `key` to every member: gossip (plus a direct copy to each member) when
/// small, reliably over TCP when over 700 bytes (on Redis: one publish). `HS_RESULT_QUEUE_FULL`
/// when the outbound queue has no room: nothing was sent or noted.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_broadcast_state(
    node: *const hs_node,
    key: hs_str,
    data: *const u8,
    len: usize,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let data = bytes(data, len, "data")?.to_vec();
        Ok(n.broadcast_state(text(key, "key")?, data)?)
    })
}

/// Take the oldest payload peers sent for `key`: copy it into `buf`, its length into
/// `*len_out` and its kind into `*kind_out` (`HS_PAYLOAD_KIND_NONE`, with length 0, when
/// nothing is queued). When `cap` is too small the payload stays queued and the call returns
/// `HS_RESULT_BUFFER_TOO_SMALL` with the size needed in `*len_out`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_next_state_payload(
    node: *const hs_node,
    key: hs_str,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
    kind_out: *mut hs_payload_kind,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let len_ptr = out_ptr(len_out, "len_out")?;
        let kind_ptr = out_ptr(kind_out, "kind_out")?;
        let mut needed = 0;
        let taken = n.next_state_payload(text(key, "key")?, |next| {
            needed = next.data.len();
            needed <= cap
        })?;
        match taken {
            Some(p) => {
                copy_out(&p.data, buf, cap, len_ptr)?;
                let kind =
                    if p.full_state { hs_payload_kind::FullState } else { hs_payload_kind::Update };
                write(kind_ptr, kind);
                Ok(())
            }
            None if needed > cap => {
                write(len_ptr, needed);
                Err(Failure::new(
                    hs_result::BufferTooSmall,
                    format!("payload of {needed} bytes, buffer holds {cap}"),
                ))
            }
            None => {
                write(len_ptr, 0);
                write(kind_ptr, hs_payload_kind::None);
                Ok(())
            }
        }
    })
}

/// Wait up to `timeout_ms` for payloads for any host-owned state. `*seen` is the caller's
/// cursor (start it at 0 and pass the same variable each time): the call returns as soon as
/// payloads arrived after the cursor, advances it, and writes whether any did to
/// `*arrived_out`. One waiter per cursor; any number of cursors.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_wait_states(
    node: *const hs_node,
    seen: *mut u64,
    timeout_ms: u32,
    arrived_out: *mut bool,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let seen = super::borrow_mut(seen, "seen")?;
        let out = out_ptr(arrived_out, "arrived_out")?;
        let mut cursor = *seen;
        let arrived = n.wait_states(&mut cursor, Duration::from_millis(u64::from(timeout_ms)));
        *seen = cursor;
        write(out, arrived);
        Ok(())
    })
}
