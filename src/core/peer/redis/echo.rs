//! Our own publishes, as they come back to us.
//!
//! Redis delivers a `PUBLISH` to every subscriber, the publisher included (Grafana merges its
//! own updates again; merges are idempotent, so it costs only time — a decode and a lookup per
//! update, which at high rates is most of a receiver's work). We remember a hash of every
//! payload we publish; Redis delivers one connection's publishes to a subscriber in the order
//! they were sent, so our echo is at or near the front of that list. A payload that matches is
//! ours and skipped; an echo that never comes (published before the subscription, or lost
//! across a reconnect) is passed over when a later one arrives.

use std::collections::VecDeque;

use xxhash_rust::xxh3::xxh3_64;

/// Publishes remembered; beyond it the oldest are forgotten (their echo is then merged, which
/// is harmless).
const REMEMBERED: usize = 65_536;
/// How far past the front an arriving echo is looked for.
const WINDOW: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Echoes {
    sent: VecDeque<u64>,
}

impl Echoes {
    /// We are publishing `payload`.
    pub(super) fn sent(&mut self, payload: &[u8]) {
        if self.sent.len() >= REMEMBERED {
            self.sent.pop_front();
        }
        self.sent.push_back(xxh3_64(payload));
    }

    /// Whether `payload`, just received, is one of ours (then it and every older one we
    /// published are forgotten: their echoes have come or never will).
    pub(super) fn is_own(&mut self, payload: &[u8]) -> bool {
        if self.sent.is_empty() {
            return false;
        }
        let hash = xxh3_64(payload);
        match self.sent.iter().take(WINDOW).position(|h| *h == hash) {
            Some(i) => {
                self.sent.drain(..=i);
                true
            }
            None => false,
        }
    }

    /// The subscription was lost: no echo of what was sent so far will come.
    pub(super) fn clear(&mut self) {
        self.sent.clear();
    }
}

// A payload another peer published can only hash like one of ours if it is byte-identical
// (then we hold its content already) or by a 64-bit collision within the window.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_payloads_are_recognised_in_order_and_lost_ones_passed_over() {
        let mut e = Echoes::default();
        for p in [&b"a"[..], b"b", b"c"] {
            e.sent(p);
        }
        assert!(!e.is_own(b"someone else's"));
        assert!(e.is_own(b"b"), "a's echo was lost; b's arrives");
        assert!(!e.is_own(b"a"), "forgotten with b's arrival");
        assert!(e.is_own(b"c"));
        assert!(!e.is_own(b"c"), "an echo is consumed once");
    }
}
