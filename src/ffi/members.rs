//! The members a node sees: a snapshot list of structs, and the membership and position
//! changes since the host last asked, drained with a poll call.

use std::sync::Arc;

use super::node::node;
use super::{boundary, hs_node, hs_position, hs_result, hs_str, out_ptr, write};
use crate::node::Visible;

/// A member this node sees, in an [`hs_members`] list: views into the list, valid until it
/// is freed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_member {
    /// Its name; on Redis its heartbeat key (prefix included), as positions use it.
    pub name: hs_str,
    /// Its gossip address, `ip:port`; empty on Redis.
    pub address: hs_str,
}

/// A snapshot of the members a node sees, from `hs_node_members`; free it with
/// `hs_members_free`. Immutable: any thread may read it, and it does not change as the
/// cluster does.
#[derive(Debug)]
pub struct hs_members {
    /// The structs C reads; their views point into `visible` and `addresses`.
    array: Vec<hs_member>,
    /// Owns the names (the node's published list, shared, never mutated).
    _visible: Arc<Vec<Visible>>,
    /// Owns the addresses' text; a `String`'s heap buffer does not move with the `Vec`.
    _addresses: Vec<String>,
}

fn view(s: &str) -> hs_str {
    hs_str { data: s.as_ptr().cast(), len: s.len() }
}

/// The members this node sees alive or suspect, itself included, sorted by name: writes a
/// new list to `*members_out` (read it with `hs_members_array`, free it with
/// `hs_members_free`). A Redis peer lists the live heartbeat keys, with no address.
/// Thread-safe; never waits on the network.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_members(
    node: *const hs_node,
    members_out: *mut *mut hs_members,
) -> hs_result {
    boundary(|| {
        let visible = self::node(node)?.visible_members();
        let out = out_ptr(members_out, "members_out")?;
        let addresses: Vec<String> =
            visible.iter().map(|m| m.addr.map(|a| a.to_string()).unwrap_or_default()).collect();
        let array = visible
            .iter()
            .zip(&addresses)
            .map(|(m, a)| hs_member { name: view(&m.name), address: view(a) })
            .collect();
        let list = hs_members { array, _visible: visible, _addresses: addresses };
        write(out, Box::into_raw(Box::new(list)));
        Ok(())
    })
}

/// The members in `members`: writes a pointer to the first of `*len_out` contiguous
/// `hs_member` structs to `*array_out` (NULL when there are none). Valid until
/// `hs_members_free(members)`. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_members_array(
    members: *const hs_members,
    array_out: *mut *const hs_member,
    len_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let m = super::borrow(members, "members")?;
        let array_out = out_ptr(array_out, "array_out")?;
        let len_out = out_ptr(len_out, "len_out")?;
        let ptr = if m.array.is_empty() { std::ptr::null() } else { m.array.as_ptr() };
        write(array_out, ptr);
        write(len_out, m.array.len());
        Ok(())
    })
}

/// Free a member list. NULL is a no-op; the list and its views must not be used afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn hs_members_free(members: *mut hs_members) {
    boundary(|| {
        if !members.is_null() {
            // SAFETY: a non-NULL list came from `hs_node_members` and is freed once (the
            // documented contract).
            drop(unsafe { Box::from_raw(members) });
        }
        Ok(())
    });
}

/// What changed, in an [`hs_event`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_event_kind {
    /// `member` became visible (alive or suspect), or changed address.
    MemberJoined = 1,
    /// `member` is no longer visible (dead, left, or gone from Redis), or changed address.
    MemberLeft = 2,
    /// This node's position changed to `position`.
    PositionChanged = 3,
}

/// One change since the previous `hs_node_poll_events`. Its views are valid until the next
/// `hs_node_poll_events` on the same node (from any thread) or `hs_node_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_event {
    /// What changed.
    pub kind: hs_event_kind,
    /// The member, for member events; empty views for a position event.
    pub member: hs_member,
    /// The node's position after the change, for a position event; zero otherwise.
    pub position: hs_position,
}

/// One change, owning its text (what an `hs_event` views).
#[derive(Debug)]
struct Change {
    kind: hs_event_kind,
    name: String,
    address: String,
    position: hs_position,
}

impl Change {
    fn member(kind: hs_event_kind, m: &Visible) -> Self {
        let address = m.addr.map(|a| a.to_string()).unwrap_or_default();
        Self { kind, name: m.name.clone(), address, position: hs_position::default() }
    }

    fn event(&self) -> hs_event {
        hs_event {
            kind: self.kind,
            member: hs_member { name: view(&self.name), address: view(&self.address) },
            position: self.position,
        }
    }
}

/// The host's cursor over a node's membership: what it was last told, and what is left to
/// tell. Changes are the difference between two published views, so they are bounded by
/// twice the member count plus one, and a member that left and came back between two polls
/// shows as nothing (as it never missed a poll).
#[derive(Debug, Default)]
pub(crate) struct Events {
    told_members: Arc<Vec<Visible>>,
    told_position: Option<hs_position>,
    pending: std::collections::VecDeque<Change>,
    /// What the last poll handed out; kept alive until the next one.
    delivered: Vec<Change>,
}

impl Events {
    /// Queue the differences between what the host was told and `members`/`position`.
    fn refresh(&mut self, members: Arc<Vec<Visible>>, position: hs_position) {
        let old = &self.told_members;
        for m in old.iter().filter(|m| !members.contains(m)) {
            self.pending.push_back(Change::member(hs_event_kind::MemberLeft, m));
        }
        for m in members.iter().filter(|m| !old.contains(m)) {
            self.pending.push_back(Change::member(hs_event_kind::MemberJoined, m));
        }
        if self.told_position != Some(position) {
            self.pending.push_back(Change {
                kind: hs_event_kind::PositionChanged,
                name: String::new(),
                address: String::new(),
                position,
            });
        }
        self.told_members = members;
        self.told_position = Some(position);
    }
}

/// Drain the membership and position changes since the previous call: up to `cap` events
/// into `out`, their count into `*len_out` (0: nothing changed). The first call reports
/// every visible member (this node included) as joined, and the position. Changes that did
/// not fit stay for the next call, which reports them before anything newer. Events are the
/// net change between two calls, never a backlog: poll as often as the host cares to know.
/// Thread-safe, but one consumer per node: each call invalidates the views of the previous
/// call's events. Never waits on the network.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_poll_events(
    node: *const hs_node,
    out: *mut hs_event,
    cap: usize,
    len_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let handle = super::borrow(node, "node")?;
        let len_out = out_ptr(len_out, "len_out")?;
        let out = if cap > 0 { out_ptr(out, "out")? } else { std::ptr::null_mut() };
        let mut events = handle.events.lock();
        if events.pending.is_empty() {
            let n = &handle.node;
            events.refresh(n.visible_members(), n.position().into());
        }
        let take = cap.min(events.pending.len());
        let delivered: Vec<Change> = events.pending.drain(..take).collect();
        for (i, change) in delivered.iter().enumerate() {
            // SAFETY: `out` holds `cap > i` writable `hs_event`s (the documented contract).
            write(unsafe { out.add(i) }, change.event());
        }
        events.delivered = delivered;
        write(len_out, take);
        Ok(())
    })
}
