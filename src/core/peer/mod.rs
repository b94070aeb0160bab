//! What a running peer decides, for both transports, sans-IO.
//!
//! A hearsay node runs on memberlist gossip ([`gossip::GossipPeer`]) or on Grafana's Redis
//! pub/sub layout ([`redis::RedisPeer`]). Both answer the same questions the same way, in one
//! place, [`Lifecycle`]: *when is the peer ready to notify* (Alertmanager's settle) and *when
//! are its states maintained* (expired elements collected every maintenance interval, whether or
//! not the host keeps snapshots). Each transport adds its own upkeep: re-joining failed members
//! and re-resolving configured peers for gossip; heartbeats, membership scans, full-state
//! requests and pushes, and reconnects for Redis.
//!
//! Like [`Swim`](super::swim::Swim), the peers are driven by `handle_*` calls that carry the
//! time and drained by `poll_*` calls: the node's event loop and the simulator run exactly this
//! code, and neither decides anything else.

pub mod gossip;
pub mod redis;
mod settle;

use std::time::Duration;

pub use settle::{Position, Settle, position};

use super::Millis;

/// When a peer becomes ready and when its states are maintained.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    settle: Settle,
    maintenance_interval: Duration,
    next_maintenance: Option<Millis>,
    ready_reported: bool,
}

/// What [`Lifecycle::handle_timeout`] found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The peer settled just now (reported once).
    pub ready: bool,
    /// Collect expired elements (and write snapshots, when the host keeps them) now.
    pub maintain: bool,
}

impl Lifecycle {
    /// Start settling at `now`: the member count is polled every `settle_interval` and the
    /// peer is ready once it held still for three polls, or after `settle_timeout`. States are
    /// maintained every `maintenance_interval` from `now` (zero: never, for hosts that collect
    /// themselves).
    pub fn new(
        now: Millis,
        settle_interval: Duration,
        settle_timeout: Duration,
        maintenance_interval: Duration,
    ) -> Self {
        Self {
            settle: Settle::new(now, settle_interval, settle_timeout),
            maintenance_interval,
            next_maintenance: (!maintenance_interval.is_zero()).then(|| now + maintenance_interval),
            ready_reported: false,
        }
    }

    /// Feed the clock and the members the peer sees now (itself included).
    pub fn handle_timeout(&mut self, now: Millis, visible: usize) -> Due {
        let ready = self.settle.poll(now, visible) && !self.ready_reported;
        self.ready_reported |= ready;
        let maintain = self.next_maintenance.is_some_and(|at| now >= at);
        if maintain {
            self.next_maintenance = Some(now + self.maintenance_interval);
        }
        Due { ready, maintain }
    }

    /// Whether the peer has settled. One-shot: once ready, always ready.
    pub fn is_ready(&self) -> bool {
        self.settle.is_ready()
    }

    /// When [`Self::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        earliest([self.settle.next_poll(), self.next_maintenance])
    }
}

/// The earliest of some optional deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Millis>>) -> Option<Millis> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn ready_is_reported_once_and_maintenance_repeats_without_storage() {
        let mut l = Lifecycle::new(Millis(0), 2 * SEC, 60 * SEC, 7 * SEC);
        let mut ready_at = Vec::new();
        let mut maintained_at = Vec::new();
        let mut now = Millis(0);
        while now.0 <= 30_000 {
            let due = l.handle_timeout(now, 3);
            if due.ready {
                ready_at.push(now.0);
            }
            if due.maintain {
                maintained_at.push(now.0);
            }
            now = l.poll_timeout().expect("maintenance always comes back");
        }
        assert_eq!(ready_at, [10_000], "settles on the fifth poll, once");
        assert_eq!(maintained_at, [7_000, 14_000, 21_000, 28_000]);
        assert!(l.is_ready());
    }

    #[test]
    fn a_zero_interval_never_maintains() {
        let mut l = Lifecycle::new(Millis(0), SEC, 2 * SEC, Duration::ZERO);
        assert!(!l.handle_timeout(Millis(1_000_000), 1).maintain);
        assert_eq!(l.poll_timeout(), None, "ready, and nothing scheduled");
    }
}
