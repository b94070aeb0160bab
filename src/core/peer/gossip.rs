//! A peer on memberlist gossip: the SWIM core plus what Alertmanager's `cluster.Peer` decides
//! around it (Alertmanager's `cluster/cluster.go`).
//!
//! Around [`Swim`] it keeps the peer upkeep — members that failed or left are re-joined every
//! reconnect interval until they return or the reconnect timeout passes; the configured peers
//! are re-resolved every refresh interval and the missing ones joined — the join outcomes the
//! host waits for, the settle, the maintenance schedule and the "blind" signal. The driver feeds
//! it the same inputs as a bare `Swim` and drains the same outputs, plus [`GossipEvent`]s.
//!
//! Every join is accounted for: an exchange the core refuses (too many streams in flight)
//! counts as failed at once, and a join whose outcome never arrives is closed at its deadline,
//! so the books never hold an address nobody will resolve.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::{Lifecycle, Position, earliest, position};
use crate::core::Millis;
use crate::core::swim::{
    BroadcastError, Delegate, Event, Member, MemberChange, StreamFailure, StreamId, StreamRequest,
    Swim, Transmit,
};
use crate::core::wire::WireError;

/// Alertmanager's peer upkeep settings (`cluster.Create` and its flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upkeep {
    /// How often failed or departed members are re-joined; zero disables. Alertmanager
    /// `--cluster.reconnect-interval` (10 s).
    pub reconnect_interval: Duration,
    /// How long a failed member stays on the re-join list; zero keeps it forever. Alertmanager
    /// `--cluster.reconnect-timeout` (6 h).
    pub reconnect_timeout: Duration,
    /// How often the configured peers are re-resolved and the missing ones joined; zero
    /// disables. Alertmanager's fixed 15 s.
    pub refresh_interval: Duration,
    /// The longest settling takes. Alertmanager `--cluster.settle-timeout` (60 s).
    pub settle_timeout: Duration,
    /// How often the states are maintained (GC, snapshots). Alertmanager
    /// `--data.maintenance-interval` (15 min); zero never.
    pub maintenance_interval: Duration,
    /// Whether peers are configured: alone, the peer is then "blind", not "first".
    pub peers_configured: bool,
}

impl Upkeep {
    /// Alertmanager's values.
    pub fn alertmanager(peers_configured: bool) -> Self {
        Self {
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            refresh_interval: Duration::from_secs(15),
            settle_timeout: Duration::from_secs(60),
            maintenance_interval: Duration::from_secs(15 * 60),
            peers_configured,
        }
    }
}

/// A host's join, to match with its [`GossipEvent::Joined`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JoinId(pub u64);

/// What the host hears from a gossip peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GossipEvent {
    /// A member joined, changed, left or failed.
    Member {
        /// What happened.
        change: MemberChange,
        /// The member after the change.
        member: Member,
    },
    /// Another address claimed the name of a live member; the claim was ignored.
    Conflict {
        /// The member as we know it.
        existing: Member,
        /// The address that claimed its name.
        other: SocketAddr,
    },
    /// A reliable send finished.
    Reliable {
        /// The stream that carried it.
        id: StreamId,
        /// Outcome.
        result: Result<(), StreamFailure>,
    },
    /// A host's join finished: how many of its addresses answered.
    Joined {
        /// The join.
        id: JoinId,
        /// Addresses that completed a push/pull.
        ok: usize,
        /// Addresses tried.
        of: usize,
    },
    /// The join with the configured peers at start found none of them: this member is alone
    /// until a peer joins it or the re-join upkeep reaches one (for the host's log; the
    /// re-joins are counted in [`UpkeepStats`]).
    StartupJoinFailed {
        /// Addresses tried.
        of: usize,
    },
    /// Our leave message went out.
    LeaveComplete,
    /// The peer settled.
    Ready,
    /// Maintain the states now.
    Maintain,
    /// Re-resolve the configured peers and hand the addresses to
    /// [`GossipPeer::handle_resolved`].
    Resolve,
}

/// Counters of the upkeep, under Alertmanager's metric names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpkeepStats {
    /// `alertmanager_cluster_reconnections_total`.
    pub reconnections: u64,
    /// `alertmanager_cluster_reconnections_failed_total`.
    pub reconnections_failed: u64,
    /// `alertmanager_cluster_refresh_join_total`.
    pub refresh_joins: u64,
    /// `alertmanager_cluster_refresh_join_failed_total`.
    pub refresh_joins_failed: u64,
    /// `alertmanager_cluster_peers_joined_total`.
    pub peers_joined: u64,
    /// `alertmanager_cluster_peers_left_total`.
    pub peers_left: u64,
    /// `alertmanager_cluster_peers_update_total`.
    pub peers_updated: u64,
    /// Join exchanges refused before they started (too many streams in flight).
    pub joins_refused: u64,
}

/// Why a join was made: decides which counters its outcome moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Host(JoinId),
    Initial,
    Reconnect,
    Refresh,
}

#[derive(Debug)]
struct PendingJoin {
    why: Why,
    waiting: Vec<SocketAddr>,
    tried: usize,
    ok: usize,
    deadline: Millis,
}

/// Joins waiting for outcomes; past it a host's join is refused outright.
const MAX_PENDING_JOINS: usize = 1024;
/// How often failed peers past the reconnect timeout are forgotten (Alertmanager: 5 min).
const EXPIRE_INTERVAL: Duration = Duration::from_secs(300);
/// Slack after a push/pull's own deadline before its join is closed without an outcome.
const JOIN_SLACK: Duration = Duration::from_secs(2);

/// A running gossip peer. See the module docs.
#[derive(Debug)]
pub struct GossipPeer<D: Delegate> {
    swim: Swim<D>,
    upkeep: Upkeep,
    lifecycle: Lifecycle,
    /// Members that failed or left, and since when (to be re-joined).
    failed: BTreeMap<SocketAddr, Millis>,
    joins: Vec<PendingJoin>,
    next_join: u64,
    next_reconnect: Option<Millis>,
    next_refresh: Option<Millis>,
    next_expire: Millis,
    /// Another member was ever seen alive.
    seen_peers: bool,
    events: VecDeque<GossipEvent>,
    stats: UpkeepStats,
}

impl<D: Delegate> GossipPeer<D> {
    /// Wrap a core started at `now` and join `initial` (the resolved configured peers). As
    /// Alertmanager does, they start on the re-join list, so one that is down now is retried
    /// every reconnect interval until it answers.
    pub fn new(swim: Swim<D>, upkeep: Upkeep, now: Millis, initial: &[SocketAddr]) -> Self {
        let settle_interval = swim.config().gossip_interval.saturating_mul(10);
        let every = |d: Duration| (!d.is_zero()).then(|| now + d);
        let mut peer = Self {
            lifecycle: Lifecycle::new(
                now,
                settle_interval,
                upkeep.settle_timeout,
                upkeep.maintenance_interval,
            ),
            next_reconnect: every(upkeep.reconnect_interval),
            next_refresh: every(upkeep.refresh_interval),
            next_expire: now + EXPIRE_INTERVAL,
            upkeep,
            swim,
            failed: BTreeMap::new(),
            joins: Vec::new(),
            next_join: 0,
            seen_peers: false,
            events: VecDeque::new(),
            stats: UpkeepStats::default(),
        };
        for addr in initial {
            peer.failed.entry(*addr).or_insert(now);
        }
        if !initial.is_empty() {
            peer.start_join(now, initial, Why::Initial);
        }
        peer
    }

    // ---- inputs (each drains the core's events before returning) ----

    /// A datagram arrived.
    pub fn handle_packet(&mut self, now: Millis, from: SocketAddr, bytes: &[u8]) {
        // Peer garbage is counted by the core.
        let _ = self.swim.handle_packet(now, from, bytes);
        self.after_input(now);
    }

    /// A peer opened a stream with one frame; the reply to write back, if any.
    pub fn handle_stream(
        &mut self,
        now: Millis,
        from: SocketAddr,
        frame: &[u8],
    ) -> Result<Option<Vec<u8>>, WireError> {
        let reply = self.swim.handle_stream(now, from, frame);
        self.after_input(now);
        reply
    }

    /// A stream we asked for finished.
    pub fn handle_stream_reply(
        &mut self,
        now: Millis,
        id: StreamId,
        result: Result<&[u8], StreamFailure>,
    ) {
        self.swim.handle_stream_reply(now, id, result);
        self.after_input(now);
    }

    /// [`Self::poll_timeout`]'s deadline passed (early or repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.swim.poll_timeout().is_some_and(|at| at <= now) {
            self.swim.handle_timeout(now);
        }
        self.after_input(now);
        let due = self.lifecycle.handle_timeout(now, self.visible());
        if due.ready {
            self.events.push_back(GossipEvent::Ready);
        }
        if due.maintain {
            self.events.push_back(GossipEvent::Maintain);
        }
        if self.next_reconnect.is_some_and(|at| now >= at) {
            self.next_reconnect = Some(now + self.upkeep.reconnect_interval);
            let addrs: Vec<SocketAddr> = self.failed.keys().copied().collect();
            if !addrs.is_empty() {
                self.start_join(now, &addrs, Why::Reconnect);
            }
        }
        if self.next_refresh.is_some_and(|at| now >= at) {
            self.next_refresh = Some(now + self.upkeep.refresh_interval);
            if self.upkeep.peers_configured {
                self.events.push_back(GossipEvent::Resolve);
            }
        }
        if now >= self.next_expire {
            self.next_expire = now + EXPIRE_INTERVAL;
            let timeout = self.upkeep.reconnect_timeout;
            if !timeout.is_zero() {
                self.failed.retain(|_, since| now.since(*since) < timeout);
            }
        }
        self.close_overdue_joins(now);
    }

    /// The configured peers, freshly resolved (after [`GossipEvent::Resolve`]): join those
    /// that are not members.
    pub fn handle_resolved(&mut self, now: Millis, addrs: &[SocketAddr]) {
        let missing: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| !self.swim.members().any(|m| m.addr == *a && !m.state.is_gone()))
            .collect();
        if !missing.is_empty() {
            self.start_join(now, &missing, Why::Refresh);
        }
    }

    // ---- commands ----

    /// Push/pull with each address; [`GossipEvent::Joined`] reports the outcome. `None` when
    /// too many joins are waiting already (nothing started).
    pub fn join(&mut self, now: Millis, addrs: &[SocketAddr]) -> Option<JoinId> {
        if self.joins.len() >= MAX_PENDING_JOINS {
            return None;
        }
        let id = JoinId(self.next_join);
        self.next_join += 1;
        self.start_join(now, addrs, Why::Host(id));
        Some(id)
    }

    /// Gossip a user message ([`Swim::broadcast`]).
    pub fn broadcast(&mut self, msg: Vec<u8>) -> Result<(), BroadcastError> {
        self.swim.broadcast(msg)
    }

    /// Send a user message over TCP ([`Swim::send_reliable`]).
    pub fn send_reliable(&mut self, now: Millis, to: SocketAddr, msg: &[u8]) -> Option<StreamId> {
        let id = self.swim.send_reliable(now, to, msg);
        self.after_input(now);
        id
    }

    /// Send a user message in one datagram ([`Swim::send_best_effort`]).
    pub fn send_best_effort(&mut self, now: Millis, to: SocketAddr, msg: &[u8]) {
        self.swim.send_best_effort(now, to, msg);
        self.after_input(now);
    }

    /// Leave the cluster; [`GossipEvent::LeaveComplete`] follows.
    pub fn leave(&mut self, now: Millis) {
        self.swim.leave(now);
        self.after_input(now);
    }

    // ---- outputs ----

    /// A datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.swim.poll_transmit()
    }

    /// A stream to open.
    pub fn poll_stream(&mut self) -> Option<StreamRequest> {
        self.swim.poll_stream()
    }

    /// What the host should hear or do.
    pub fn poll_event(&mut self) -> Option<GossipEvent> {
        self.events.pop_front()
    }

    /// A probe round trip to record.
    pub fn poll_rtt(&mut self) -> Option<(crate::core::NodeName, Duration)> {
        self.swim.poll_rtt()
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let join = self.joins.iter().map(|j| j.deadline).min();
        earliest([
            self.swim.poll_timeout(),
            self.lifecycle.poll_timeout(),
            self.next_reconnect,
            self.next_refresh,
            Some(self.next_expire),
            join,
        ])
    }

    // ---- accessors ----

    /// The SWIM core.
    pub fn swim(&self) -> &Swim<D> {
        &self.swim
    }

    /// The SWIM core, mutably (its delegate, chiefly). Call the `poll_*` methods afterwards.
    pub fn swim_mut(&mut self) -> &mut Swim<D> {
        &mut self.swim
    }

    /// Whether the peer settled.
    pub fn is_ready(&self) -> bool {
        self.lifecycle.is_ready()
    }

    /// Our position (Alertmanager `Position()`), blind when alone although peers are
    /// configured or were seen.
    pub fn position(&self) -> Position {
        let expect_peers = self.upkeep.peers_configured || self.seen_peers;
        position(self.swim.members(), self.swim.config().name.as_str(), expect_peers)
    }

    /// Members that failed or left and are being re-joined.
    pub fn failed_peers(&self) -> usize {
        self.failed.len()
    }

    /// Joins waiting for their outcome.
    pub fn pending_joins(&self) -> usize {
        self.joins.len()
    }

    /// Counters.
    pub fn stats(&self) -> UpkeepStats {
        self.stats
    }

    // ---- internals ----

    fn visible(&self) -> usize {
        self.swim.members().filter(|m| !m.state.is_gone()).count()
    }

    fn start_join(&mut self, now: Millis, addrs: &[SocketAddr], why: Why) {
        let refused = self.swim.join(now, addrs);
        self.stats.joins_refused += refused.len() as u64;
        let waiting: Vec<SocketAddr> =
            addrs.iter().copied().filter(|a| !refused.contains(a)).collect();
        for _ in &refused {
            self.count_outcome(why, false);
        }
        let deadline = now + self.swim.config().tcp_timeout + JOIN_SLACK;
        let join = PendingJoin { why, waiting, tried: addrs.len(), ok: 0, deadline };
        if join.waiting.is_empty() {
            self.finish_join(join);
        } else {
            self.joins.push(join);
        }
        self.after_input(now);
    }

    /// Drain the core's events: upkeep books first, then what the host hears.
    fn after_input(&mut self, now: Millis) {
        while let Some(event) = self.swim.poll_event() {
            match event {
                Event::Member { change, member } => self.on_member(now, change, member),
                Event::Conflict { existing, other } => {
                    self.events.push_back(GossipEvent::Conflict { existing, other });
                }
                Event::PushPull { peer, join: true, result } => {
                    self.on_join_outcome(peer, result.is_ok())
                }
                Event::PushPull { .. } => {}
                Event::Reliable { id, result, .. } => {
                    self.events.push_back(GossipEvent::Reliable { id, result });
                }
                Event::LeaveComplete => self.events.push_back(GossipEvent::LeaveComplete),
            }
        }
    }

    fn on_member(&mut self, now: Millis, change: MemberChange, member: Member) {
        let me = &self.swim.config().name;
        match change {
            MemberChange::Joined => {
                self.failed.remove(&member.addr);
                self.stats.peers_joined += 1;
                self.seen_peers |= member.name != *me;
            }
            MemberChange::Left | MemberChange::Failed => {
                if member.name != *me {
                    self.failed.entry(member.addr).or_insert(now);
                }
                self.stats.peers_left += 1;
            }
            MemberChange::Updated => self.stats.peers_updated += 1,
        }
        self.events.push_back(GossipEvent::Member { change, member });
    }

    fn on_join_outcome(&mut self, peer: SocketAddr, ok: bool) {
        let Some(i) = self.joins.iter().position(|j| j.waiting.contains(&peer)) else { return };
        let join = &mut self.joins[i];
        if let Some(k) = join.waiting.iter().position(|a| *a == peer) {
            join.waiting.swap_remove(k);
        }
        join.ok += usize::from(ok);
        let why = join.why;
        self.count_outcome(why, ok);
        if self.joins[i].waiting.is_empty() {
            let done = self.joins.swap_remove(i);
            self.finish_join(done);
        }
    }

    /// Joins whose outcome never came (the event was lost): every address still waiting
    /// failed.
    fn close_overdue_joins(&mut self, now: Millis) {
        while let Some(i) = self.joins.iter().position(|j| j.deadline <= now) {
            let join = self.joins.swap_remove(i);
            for _ in &join.waiting {
                self.count_outcome(join.why, false);
            }
            self.finish_join(join);
        }
    }

    fn count_outcome(&mut self, why: Why, ok: bool) {
        let s = &mut self.stats;
        match (why, ok) {
            (Why::Reconnect, true) => s.reconnections += 1,
            (Why::Reconnect, false) => s.reconnections_failed += 1,
            (Why::Refresh, true) => s.refresh_joins += 1,
            (Why::Refresh, false) => s.refresh_joins_failed += 1,
            (Why::Host(_) | Why::Initial, _) => {}
        }
    }

    fn finish_join(&mut self, join: PendingJoin) {
        match join.why {
            Why::Host(id) => {
                self.events.push_back(GossipEvent::Joined { id, ok: join.ok, of: join.tried })
            }
            Why::Initial if join.ok == 0 => {
                self.events.push_back(GossipEvent::StartupJoinFailed { of: join.tried })
            }
            Why::Initial | Why::Refresh | Why::Reconnect => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeName;
    use crate::core::config::SwimConfig;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 9094))
    }

    fn peer(initial: &[SocketAddr]) -> GossipPeer<()> {
        let config = SwimConfig::alertmanager(NodeName::from("a"), addr(1), initial.len());
        let swim = Swim::new(config, (), 1, Millis(0)).expect("valid config");
        GossipPeer::new(swim, Upkeep::alertmanager(!initial.is_empty()), Millis(0), initial)
    }

    fn drain(p: &mut GossipPeer<()>) -> Vec<GossipEvent> {
        std::iter::from_fn(|| p.poll_event()).collect()
    }

    /// Fail every stream the core asked for.
    fn refuse_streams(p: &mut GossipPeer<()>, now: Millis) {
        while let Some(req) = p.poll_stream() {
            p.handle_stream_reply(now, req.id, Err(StreamFailure::Connect));
        }
    }

    #[test]
    fn a_host_join_reports_every_address() {
        let mut p = peer(&[]);
        let id = p.join(Millis(0), &[addr(2), addr(3)]).expect("room");
        refuse_streams(&mut p, Millis(5));
        assert!(drain(&mut p).contains(&GossipEvent::Joined { id, ok: 0, of: 2 }));
        assert_eq!(p.pending_joins(), 0);
    }

    #[test]
    fn refused_exchanges_leave_no_entries_behind() {
        let mut p = peer(&[]);
        // Fill the core's stream table: 1,024 reliable sends nobody answers.
        let mut filled = 0;
        while p.send_reliable(Millis(0), addr(9), b"x").is_some() {
            filled += 1;
        }
        assert!(filled > 0);
        let id = p.join(Millis(0), &[addr(2), addr(3)]).expect("room in the books");
        let events = drain(&mut p);
        assert!(events.contains(&GossipEvent::Joined { id, ok: 0, of: 2 }), "{events:?}");
        assert_eq!(p.pending_joins(), 0, "refused joins are closed at once");
        assert_eq!(p.stats().joins_refused, 2);
    }

    #[test]
    fn failed_initial_peers_are_retried_then_forgotten() {
        let mut p = peer(&[addr(2)]);
        refuse_streams(&mut p, Millis(5));
        assert_eq!(p.failed_peers(), 1, "a configured peer starts on the re-join list");
        // Every reconnect interval it is tried again.
        let mut now = Millis(5);
        let mut retries = 0;
        while now.0 < 6 * 3600 * 1000 + 600_000 {
            now = p.poll_timeout().expect("timers").max(now);
            p.handle_timeout(now);
            while let Some(req) = p.poll_stream() {
                if req.to == addr(2) {
                    retries += 1;
                }
                p.handle_stream_reply(now, req.id, Err(StreamFailure::Connect));
            }
            drain(&mut p);
            while p.poll_transmit().is_some() {}
        }
        assert!(retries > 2_000, "retried every 10 s for six hours: {retries}");
        assert_eq!(p.failed_peers(), 0, "forgotten after the reconnect timeout");
        assert!(p.stats().reconnections_failed >= retries);
        assert_eq!(p.pending_joins(), 0);
    }

    #[test]
    fn a_lost_outcome_closes_the_join_at_its_deadline() {
        let mut p = peer(&[]);
        let id = p.join(Millis(0), &[addr(2)]).expect("room");
        let _ignored = p.poll_stream().expect("the push/pull");
        // The driver never reports it; the core gives up after its own deadline and grace,
        // and the join closes then at the latest.
        let mut now = Millis(0);
        let mut joined = None;
        while joined.is_none() && now.0 < 60_000 {
            now = p.poll_timeout().expect("timers").max(Millis(now.0 + 1));
            p.handle_timeout(now);
            joined = drain(&mut p).into_iter().find(|e| matches!(e, GossipEvent::Joined { .. }));
        }
        assert_eq!(joined, Some(GossipEvent::Joined { id, ok: 0, of: 1 }));
        assert_eq!(p.pending_joins(), 0);
    }

    #[test]
    fn alone_with_configured_peers_is_blind() {
        let p = peer(&[addr(2)]);
        assert!(p.position().blind);
        assert!(!peer(&[]).position().blind, "a single-node setup is simply first");
    }

    #[test]
    fn resolve_is_asked_only_with_configured_peers() {
        for (initial, asks) in [(vec![addr(2)], true), (vec![], false)] {
            let mut p = peer(&initial);
            p.handle_timeout(Millis(15_000));
            refuse_streams(&mut p, Millis(15_000));
            assert_eq!(drain(&mut p).contains(&GossipEvent::Resolve), asks);
        }
    }
}
