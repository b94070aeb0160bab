//! Settling and position: when a node may start notifying, and in which order.

use std::time::Duration;

use crate::core::Millis;
use crate::core::swim::{Member, MemberState};

/// Alertmanager's settle (`Peer.Settle` in `cluster/cluster.go`): poll the member count every
/// `interval` (10 × gossip interval); ready once it was unchanged for 3 polls in a row, checked
/// at the start of the next poll — so 5 polls (10 s) at the earliest — or when `timeout` passes.
/// One-shot: once ready, always ready.
#[derive(Debug, Clone)]
pub struct Settle {
    interval: Duration,
    deadline: Millis,
    next_poll: Millis,
    last_count: usize,
    stable_polls: u32,
    ready: bool,
}

/// Unchanged polls needed (Alertmanager `NumOkayRequired`).
const STABLE_POLLS: u32 = 3;

impl Settle {
    /// Start settling at `now`.
    pub fn new(now: Millis, interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            deadline: now + timeout,
            next_poll: now + interval,
            last_count: 0,
            stable_polls: 0,
            ready: false,
        }
    }

    /// Feed the clock and the current member count (alive and suspect, self included). Returns
    /// whether the node is ready.
    pub fn poll(&mut self, now: Millis, members: usize) -> bool {
        if self.ready {
            return true;
        }
        if now >= self.deadline {
            self.ready = true;
            return true;
        }
        while now >= self.next_poll && !self.ready {
            self.next_poll = self.next_poll + self.interval;
            if self.stable_polls >= STABLE_POLLS {
                self.ready = true;
                break;
            }
            if members == self.last_count {
                self.stable_polls += 1;
            } else {
                self.stable_polls = 0;
            }
            self.last_count = members;
        }
        self.ready
    }

    /// Whether settled.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// When `poll` has something to do next.
    pub fn next_poll(&self) -> Option<Millis> {
        (!self.ready).then(|| self.next_poll.min(self.deadline))
    }
}

/// Where a node stands in the notification order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index of our name among alive and suspect members sorted by name bytes: position `k`
    /// waits `k × peer_timeout` before notifying (Alertmanager `Position()`).
    pub index: usize,
    /// Alive and suspect members, ourselves included.
    pub visible: usize,
    /// True when we see nobody but ourselves although we know the cluster has (or should have)
    /// other members: position 0 then means "cut off", not "first". Alertmanager cannot tell the
    /// two apart and notifies as if first.
    pub blind: bool,
}

/// Our position among `members`. `expect_peers` says other members should exist (peers are
/// configured, or we have seen one).
pub fn position<'a>(
    members: impl IntoIterator<Item = &'a Member>,
    name: &str,
    expect_peers: bool,
) -> Position {
    let mut names: Vec<&str> = members
        .into_iter()
        .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
        .map(|m| m.name.as_str())
        .collect();
    names.sort_unstable();
    let index = names.iter().position(|n| *n == name).unwrap_or(0);
    Position { index, visible: names.len(), blind: expect_peers && names.len() <= 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn settles_on_the_fifth_poll_at_the_earliest() {
        let mut s = Settle::new(Millis(0), 2 * SEC, 60 * SEC);
        for t in [2_000, 4_000, 6_000, 8_000] {
            assert!(!s.poll(Millis(t), 3), "not settled at {t}");
        }
        assert!(s.poll(Millis(10_000), 3));
        assert!(s.poll(Millis(10_001), 9), "one-shot");
    }

    #[test]
    fn a_changing_count_restarts_settling() {
        let mut s = Settle::new(Millis(0), 2 * SEC, 60 * SEC);
        for (t, n) in [(2_000, 1), (4_000, 1), (6_000, 2), (8_000, 2), (10_000, 2), (12_000, 2)] {
            assert!(!s.poll(Millis(t), n), "at {t}");
        }
        assert!(s.poll(Millis(14_000), 2));
    }

    #[test]
    fn the_timeout_ends_settling() {
        let mut s = Settle::new(Millis(0), 2 * SEC, 5 * SEC);
        assert!(!s.poll(Millis(4_000), 1));
        assert!(s.poll(Millis(5_000), 7));
        assert_eq!(s.next_poll(), None);
    }

    #[test]
    fn late_polls_catch_up() {
        let mut s = Settle::new(Millis(0), 2 * SEC, 60 * SEC);
        assert!(s.poll(Millis(20_000), 3), "ten intervals passed with the same count");
    }

    fn member(name: &str, state: MemberState) -> Member {
        let mut m = Member::new(name.into(), "10.0.0.1:9094".parse().expect("literal"), Millis(0));
        m.state = state;
        m
    }

    #[test]
    fn position_counts_alive_and_suspect_by_name_bytes() {
        let ms = [
            member("b", MemberState::Alive),
            member("a", MemberState::Dead),
            member("C", MemberState::Suspect),
            member("a2", MemberState::Alive),
        ];
        // Byte order: "C" < "a2" < "b".
        assert_eq!(position(&ms, "b", true), Position { index: 2, visible: 3, blind: false });
        assert_eq!(position(&ms, "C", true).index, 0);
    }

    #[test]
    fn alone_with_expected_peers_is_blind() {
        let ms = [member("a", MemberState::Alive), member("b", MemberState::Dead)];
        assert_eq!(position(&ms, "a", true), Position { index: 0, visible: 1, blind: true });
        assert!(!position(&ms, "a", false).blind, "a single-node setup is simply first");
    }
}
