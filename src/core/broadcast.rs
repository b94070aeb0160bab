//! The transmit-limited broadcast queue (memberlist `TransmitLimitedQueue`).
//!
//! Gossip is epidemic: each queued message rides along on `limit` outgoing packets and is then
//! dropped, with `limit = retransmit_mult × ceil(log10(n + 1))` for a cluster of `n` nodes
//! (n = 0 gives 0: sent once). Packets are filled fewest-transmits-first; within a tier the
//! largest message that still fits goes first, newest first among equals — exactly memberlist's
//! order, so a message reaches the cluster in the number of rounds Go peers expect.
//!
//! Named messages (membership news about one node) replace any queued message with the same
//! name: only the latest word about a node is worth sending.
//!
//! The queue is bounded. At the bound the message that is least useful — most transmitted,
//! then smallest, then oldest (memberlist `Prune` order) — makes room, provided it has been
//! sent at least once; if every queued message is still unsent, the new one is refused with
//! [`QueueFull`] instead, so nothing is dropped before it was ever transmitted. Both cases are
//! counted in [`QueueStats`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::NodeName;

/// Ordering key: transmits ascending, then length descending, then id descending (newest
/// first). Matches memberlist's `limitedBroadcast.Less`.
type Key = (u32, Reverse<usize>, Reverse<u64>);

#[derive(Debug)]
struct Item {
    msg: Vec<u8>,
    transmits: u32,
    name: Option<NodeName>,
    token: Option<u64>,
}

impl Item {
    fn key(&self, id: u64) -> Key {
        (self.transmits, Reverse(self.msg.len()), Reverse(id))
    }
}

/// The message was not queued: the queue is at its bound and holds only never-sent messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("broadcast queue is full")]
pub struct QueueFull;

/// Counters of what the queue did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages accepted.
    pub queued: u64,
    /// Messages placed into outgoing packets (a message counts once per peer it went to).
    pub transmitted: u64,
    /// Bytes of those messages.
    pub transmitted_bytes: u64,
    /// Messages that reached their retransmit limit and left the queue.
    pub finished: u64,
    /// Messages replaced by a newer message with the same name.
    pub invalidated: u64,
    /// Already-sent messages dropped to make room at the bound.
    pub pruned: u64,
    /// Messages refused because the queue was full of unsent messages.
    pub rejected: u64,
}

/// How to fill one packet from the queue.
#[derive(Debug, Clone, Copy)]
pub struct Fill {
    /// Bytes each message costs on top of its length (compound length, type byte).
    pub overhead: usize,
    /// Bytes available.
    pub budget: usize,
    /// Most messages to take (a compound holds at most 255 parts).
    pub max_parts: usize,
    /// Cluster size `n` for the retransmit limit.
    pub nodes: usize,
    /// How many transmissions each taken message counts for: the number of peers the same
    /// packet goes to (memberlist builds one packet per peer; sending one to several is the
    /// same as far as the limit is concerned).
    pub copies: u32,
    /// Take only messages never sent before.
    pub fresh_only: bool,
}

/// A bounded transmit-limited queue.
#[derive(Debug)]
pub struct BroadcastQueue {
    retransmit_mult: u32,
    max_len: usize,
    next_id: u64,
    order: BTreeSet<Key>,
    items: BTreeMap<u64, Item>,
    by_name: BTreeMap<NodeName, u64>,
    finished_tokens: Vec<u64>,
    /// Never-sent messages and their total length.
    /// Never-sent messages by id (oldest first) and their total length.
    fresh: BTreeSet<u64>,
    fresh_bytes: usize,
    stats: QueueStats,
}

impl BroadcastQueue {
    /// An empty queue holding at most `max_len` messages (≥ 1).
    pub fn new(retransmit_mult: u32, max_len: usize) -> Self {
        Self {
            retransmit_mult,
            max_len: max_len.max(1),
            next_id: 0,
            order: BTreeSet::new(),
            items: BTreeMap::new(),
            by_name: BTreeMap::new(),
            finished_tokens: Vec::new(),
            fresh: BTreeSet::new(),
            fresh_bytes: 0,
            stats: QueueStats::default(),
        }
    }

    /// Queue `msg`. A `name` replaces the queued message of the same name. A `token` is
    /// reported by [`Self::drain_finished`] once the message leaves the queue for any reason
    /// (sent `limit` times, replaced, or pruned) — how `leave` learns its broadcast went out.
    pub fn push(
        &mut self,
        msg: Vec<u8>,
        name: Option<NodeName>,
        token: Option<u64>,
    ) -> Result<(), QueueFull> {
        let replaced = name.as_ref().and_then(|n| self.by_name.get(n).copied());
        if let Some(old) = replaced {
            self.remove(old);
            self.stats.invalidated += 1;
        } else if self.items.len() >= self.max_len && !self.prune_one() {
            self.stats.rejected += 1;
            return Err(QueueFull);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.fresh.insert(id);
        self.fresh_bytes += msg.len();
        let item = Item { msg, transmits: 0, name, token };
        self.order.insert(item.key(id));
        if let Some(n) = &item.name {
            self.by_name.insert(n.clone(), id);
        }
        self.items.insert(id, item);
        self.stats.queued += 1;
        Ok(())
    }

    /// Whether [`Self::push`] would accept a message without a name now: below the bound, or
    /// an already-sent message can be pruned.
    pub fn has_room(&self) -> bool {
        self.items.len() < self.max_len || self.order.last().is_some_and(|k| k.0 > 0)
    }

    /// Fill a packet: hand messages to `emit` while they fit, as `fill` says. Returns the bytes
    /// used (messages plus per-message overhead).
    pub fn take(&mut self, fill: &Fill, emit: &mut dyn FnMut(&[u8])) -> usize {
        if fill.fresh_only {
            return self.take_fresh(fill, emit);
        }
        let limit = retransmit_limit(self.retransmit_mult, fill.nodes);
        let mut used = 0;
        let mut parts = 0;
        let mut bumped = Vec::new();
        let mut tier = self.order.first().map(|k| k.0);
        while let Some(transmits) = tier {
            if parts >= fill.max_parts {
                break;
            }
            let Some(free) = fill.budget.checked_sub(used + fill.overhead).filter(|f| *f > 0)
            else {
                break;
            };
            let from = (transmits, Reverse(free), Reverse(u64::MAX));
            let to = (transmits.saturating_add(1), Reverse(usize::MAX), Reverse(u64::MAX));
            let Some(&key) = self.order.range(from..to).next() else {
                tier = self.order.range(to..).next().map(|k| k.0);
                continue;
            };
            self.order.remove(&key);
            used += fill.overhead + self.send_one(key.2.0, fill.copies, limit, emit, &mut bumped);
            parts += 1;
        }
        // Re-insert only after the walk: the bumped tier is ahead of us.
        self.order.extend(bumped);
        used
    }

    /// Never-sent messages, oldest first, while they fit. Eager flushing uses this: under
    /// sustained load, newest-first would leave the oldest messages behind indefinitely.
    fn take_fresh(&mut self, fill: &Fill, emit: &mut dyn FnMut(&[u8])) -> usize {
        let limit = retransmit_limit(self.retransmit_mult, fill.nodes);
        let mut used = 0;
        let mut bumped = Vec::new();
        let mut parts = 0;
        while parts < fill.max_parts {
            let Some(&id) = self.fresh.first() else { break };
            let len = self.items.get(&id).map_or(0, |item| item.msg.len());
            if used + fill.overhead + len > fill.budget {
                break;
            }
            self.order.remove(&(0, Reverse(len), Reverse(id)));
            used += fill.overhead + self.send_one(id, fill.copies, limit, emit, &mut bumped);
            parts += 1;
        }
        self.order.extend(bumped);
        used
    }

    /// Emit one message (already out of `order`) and count `copies` transmissions: it either
    /// finishes or moves to a later tier (its new key goes to `bumped`). Returns its length.
    fn send_one(
        &mut self,
        id: u64,
        copies: u32,
        limit: u32,
        emit: &mut dyn FnMut(&[u8]),
        bumped: &mut Vec<Key>,
    ) -> usize {
        let copies = copies.max(1);
        let item = self.items.get_mut(&id).expect("BUG: order and items agree");
        emit(&item.msg);
        let len = item.msg.len();
        self.stats.transmitted += u64::from(copies);
        self.stats.transmitted_bytes += u64::from(copies) * len as u64;
        if item.transmits == 0 {
            self.fresh.remove(&id);
            self.fresh_bytes -= len;
        }
        if item.transmits.saturating_add(copies) >= limit {
            self.remove_unordered(id);
            self.stats.finished += 1;
        } else {
            item.transmits += copies;
            bumped.push(item.key(id));
        }
        len
    }

    /// Bytes a packet needs to carry every never-sent message, at `overhead` bytes each.
    pub fn fresh_bytes(&self, overhead: usize) -> usize {
        self.fresh_bytes + self.fresh.len() * overhead
    }

    /// Drop messages until at most `max` remain, least useful first (memberlist `Prune`).
    pub fn prune(&mut self, max: usize) {
        while self.items.len() > max {
            let Some(&key) = self.order.last() else { break };
            self.remove(key.2.0);
            self.stats.pruned += 1;
        }
    }

    /// Tokens of messages that left the queue since the last call.
    pub fn drain_finished(&mut self) -> std::vec::Drain<'_, u64> {
        self.finished_tokens.drain(..)
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Set the retransmit multiplier (Alertmanager's user queue tracks its gossip fan-out).
    pub fn set_retransmit_mult(&mut self, mult: u32) {
        self.retransmit_mult = mult;
    }

    /// Make room by dropping the least useful message, if it has been sent at least once.
    fn prune_one(&mut self) -> bool {
        match self.order.last() {
            Some(&key) if key.0 > 0 => {
                self.remove(key.2.0);
                self.stats.pruned += 1;
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(item) = self.items.get(&id) {
            self.order.remove(&item.key(id));
            if item.transmits == 0 {
                self.fresh.remove(&id);
                self.fresh_bytes -= item.msg.len();
            }
            self.remove_unordered(id);
        }
    }

    /// Remove an item whose key is already out of `order`.
    fn remove_unordered(&mut self, id: u64) {
        let Some(item) = self.items.remove(&id) else {
            return;
        };
        if let Some(n) = &item.name
            && self.by_name.get(n) == Some(&id)
        {
            self.by_name.remove(n);
        }
        self.finished_tokens.extend(item.token);
    }
}

/// How many packets carry each message in a cluster of `nodes`: `mult × ceil(log10(n + 1))`
/// (memberlist `retransmitLimit`; 0 for an empty cluster means "send once").
pub fn retransmit_limit(mult: u32, nodes: usize) -> u32 {
    // ceil(log10(n + 1)) is the number of decimal digits of n (0 for n = 0).
    let mut digits = 0;
    let mut n = nodes;
    while n > 0 {
        digits += 1;
        n /= 10;
    }
    mult.saturating_mul(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(budget: usize, max_parts: usize, nodes: usize) -> Fill {
        Fill { overhead: 2, budget, max_parts, nodes, copies: 1, fresh_only: false }
    }

    fn take_all(q: &mut BroadcastQueue, budget: usize, nodes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        q.take(&fill(budget, 255, nodes), &mut |m| out.push(m.to_vec()));
        out
    }

    #[test]
    fn retransmit_limit_matches_memberlist() {
        // Spec Appendix B: n = 1–9 → 4, 10–99 → 8, 100–999 → 12; n = 0 → 0.
        assert_eq!(retransmit_limit(4, 0), 0);
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(3, 5), 3);
    }

    #[test]
    fn each_message_is_sent_limit_times_then_dropped() {
        let mut q = BroadcastQueue::new(2, 16);
        q.push(b"abc".to_vec(), None, Some(7)).expect("room");
        for _ in 0..2 {
            assert_eq!(take_all(&mut q, 100, 5), vec![b"abc".to_vec()]);
        }
        assert!(q.is_empty());
        assert!(take_all(&mut q, 100, 5).is_empty());
        assert_eq!(q.drain_finished().collect::<Vec<_>>(), vec![7]);
        assert_eq!(q.stats().finished, 1);
        assert_eq!(q.stats().transmitted, 2);
    }

    #[test]
    fn empty_cluster_sends_once() {
        let mut q = BroadcastQueue::new(4, 16);
        q.push(b"x".to_vec(), None, None).expect("room");
        assert_eq!(take_all(&mut q, 100, 0).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn fewest_transmits_first_then_largest_then_newest() {
        let mut q = BroadcastQueue::new(4, 16);
        q.push(b"old".to_vec(), None, None).expect("room");
        // Budget for one 3-byte message plus overhead: "old" goes out and moves to tier 1.
        assert_eq!(take_all(&mut q, 5, 3), vec![b"old".to_vec()]);
        q.push(b"a".to_vec(), None, None).expect("room");
        q.push(b"bb".to_vec(), None, None).expect("room");
        q.push(b"cc".to_vec(), None, None).expect("room");
        // Tier 0 first: largest first, newest among equals; then tier 1.
        let got = take_all(&mut q, 100, 3);
        assert_eq!(got, vec![b"cc".to_vec(), b"bb".to_vec(), b"a".to_vec(), b"old".to_vec()]);
    }

    #[test]
    fn a_message_is_taken_once_per_packet() {
        let mut q = BroadcastQueue::new(10, 16);
        q.push(b"m".to_vec(), None, None).expect("room");
        assert_eq!(take_all(&mut q, 1000, 3).len(), 1);
    }

    #[test]
    fn smaller_messages_fill_the_remaining_space() {
        let mut q = BroadcastQueue::new(4, 16);
        q.push(vec![1; 50], None, None).expect("room");
        q.push(vec![2; 10], None, None).expect("room");
        q.push(vec![3; 45], None, None).expect("room");
        // Budget 70: 50+2 fits, 45+2 does not, 10+2 does.
        let got = take_all(&mut q, 70, 3);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![50, 10]);
    }

    #[test]
    fn max_parts_caps_a_packet() {
        let mut q = BroadcastQueue::new(4, 1000);
        for i in 0..300u16 {
            q.push(i.to_be_bytes().to_vec(), None, None).expect("room");
        }
        let mut n = 0;
        q.take(&fill(65_000, 254, 3), &mut |_| n += 1);
        assert_eq!(n, 254);
    }

    #[test]
    fn named_messages_replace_each_other() {
        let mut q = BroadcastQueue::new(4, 16);
        q.push(b"alive-1".to_vec(), Some("n1".into()), Some(1)).expect("room");
        q.push(b"other".to_vec(), Some("n2".into()), None).expect("room");
        q.push(b"dead-1".to_vec(), Some("n1".into()), None).expect("room");
        assert_eq!(q.len(), 2);
        assert_eq!(q.stats().invalidated, 1);
        assert_eq!(q.drain_finished().collect::<Vec<_>>(), vec![1]);
        let got = take_all(&mut q, 100, 3);
        assert!(got.contains(&b"dead-1".to_vec()) && !got.contains(&b"alive-1".to_vec()));
    }

    #[test]
    fn bound_prunes_sent_messages_and_refuses_when_all_unsent() {
        let mut q = BroadcastQueue::new(4, 2);
        q.push(b"a".to_vec(), None, None).expect("room");
        q.push(b"b".to_vec(), None, None).expect("room");
        assert_eq!(q.push(b"c".to_vec(), None, None), Err(QueueFull));
        assert_eq!(q.stats().rejected, 1);
        assert_eq!(q.len(), 2);
        // Send one; now it can be pruned to make room.
        q.take(&fill(3, 255, 3), &mut |_| {});
        q.push(b"c".to_vec(), None, None).expect("room after prune");
        assert_eq!(q.len(), 2);
        assert_eq!(q.stats().pruned, 1);
    }

    #[test]
    fn prune_drops_most_transmitted_first() {
        let mut q = BroadcastQueue::new(10, 16);
        q.push(b"sent".to_vec(), None, None).expect("room");
        q.take(&fill(100, 255, 3), &mut |_| {});
        q.push(b"fresh".to_vec(), None, None).expect("room");
        q.prune(1);
        assert_eq!(take_all(&mut q, 100, 3), vec![b"fresh".to_vec()]);
    }

    #[test]
    fn copies_count_as_transmissions_and_fresh_bytes_are_tracked() {
        let mut q = BroadcastQueue::new(3, 16);
        q.push(vec![1; 10], None, None).expect("room");
        q.push(vec![2; 20], None, None).expect("room");
        assert_eq!(q.fresh_bytes(3), 36);
        let two_peers = Fill { copies: 2, ..fill(100, 255, 5) };
        assert_eq!(q.take(&two_peers, &mut |_| {}), 34);
        assert_eq!(q.fresh_bytes(3), 0);
        assert_eq!(q.stats().transmitted, 4);
        // Limit 3: one more copy finishes both.
        q.take(&fill(100, 255, 5), &mut |_| {});
        assert!(q.is_empty());
    }

    #[test]
    fn fresh_only_skips_messages_already_sent() {
        let mut q = BroadcastQueue::new(4, 16);
        q.push(b"old".to_vec(), None, None).expect("room");
        q.take(&fill(100, 255, 3), &mut |_| {});
        q.push(b"new".to_vec(), None, None).expect("room");
        let mut got = Vec::new();
        q.push(b"newer".to_vec(), None, None).expect("room");
        q.take(&Fill { fresh_only: true, ..fill(100, 255, 3) }, &mut |m| got.push(m.to_vec()));
        assert_eq!(
            got,
            vec![b"new".to_vec(), b"newer".to_vec()],
            "oldest first, sent ones skipped"
        );
        q.prune(0);
        assert_eq!(q.fresh_bytes(2), 0);
    }
}
