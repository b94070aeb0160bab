//! Host-owned states: the host marshals and merges its own state (Grafana's and
//! Alertmanager's Go states); the node gossips the bytes and queues what peers send.

use std::ffi::c_char;
use std::time::Duration;

use super::node::node;
use super::{Failure, boundary, bytes, copy_out, hs_node, hs_result, hs_str, out_ptr, text, write};
use crate::node::States as _;

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

/// Register a host-owned state under `key` (`HS_RESULT_INVALID_ARGUMENT` if the key is taken;
/// `nfl` and `sil` are the node's own). Register before joining so the first push/pull
/// carries it. Peers' payloads for it queue, up to 4,096, until taken.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_add_state(node: *const hs_node, key: hs_str) -> hs_result {
    boundary(|| Ok(self::node(node)?.add_state(text(key, "key")?)?))
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
