//! The node's event loop thread: one loop for both transports.
//!
//! Each turn: publish the view (members, position, gauges), sleep in the transport's driver
//! until a socket is ready or a deadline is due, take the host's commands and writes, give the
//! states what arrived (never waiting for their lock), write what the core produced, and act
//! on the core's events — ready, maintain, resolve, full state wanted — by handing the jobs to
//! the worker and resolver threads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::Waker;

use super::inbox::Inbox;
use super::metrics::{self, Metrics};
use super::resolver::{Lookup, Resolver};
use super::worker::Job;
use super::{Command, KeyOp, NodeEvent, Shared, View, Visible, sync_counter};
use crate::core::Millis;
use crate::core::cluster::PubSubUpdate;
use crate::core::peer::gossip::{GossipEvent, JoinId};
use crate::core::peer::redis::{LinkFailure, MsgKind, RedisEvent, RedisStats};
use crate::core::swim::{BroadcastError, Member, MemberState};
use crate::core::wire::{KeyringError, RejectReason, SecretKey};
use crate::net::Driver;
use crate::redis::driver::RedisDriver;

/// Broadcasts and outbound updates moved into the core per turn, so a flood cannot starve
/// timers and reads.
const BATCH: usize = 4096;
/// How soon the loop comes back when the states were busy.
const STATES_RETRY: Duration = Duration::from_millis(1);
/// How long the loop stays awake for the next host write after a turn that moved some.
const LINGER: Duration = Duration::from_micros(50);
/// The longest the loop waits for the states' lock in one turn: far below any protocol
/// timer (a probe waits 500 ms), and long enough for any host call to finish.
const STATES_PATIENCE: Duration = Duration::from_micros(100);
/// The same kind of trouble is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The transport a loop drives.
#[allow(clippy::large_enum_variant, reason = "one per node, for its whole life")]
pub(super) enum Transport {
    /// memberlist gossip: the inbox is the gossip core's delegate.
    Gossip(Driver<Inbox>),
    /// Redis pub/sub.
    Redis { driver: RedisDriver, inbox: Inbox },
}

impl Transport {
    pub(super) fn waker(&self) -> Arc<Waker> {
        match self {
            Transport::Gossip(d) => d.waker(),
            Transport::Redis { driver, .. } => driver.waker(),
        }
    }

    fn now(&self) -> Millis {
        match self {
            Transport::Gossip(d) => d.now(),
            Transport::Redis { driver, .. } => driver.now(),
        }
    }

    fn inbox(&mut self) -> &mut Inbox {
        match self {
            Transport::Gossip(d) => d.peer_mut().swim_mut().delegate_mut(),
            Transport::Redis { inbox, .. } => inbox,
        }
    }
}

/// The channels the loop drains.
pub(super) struct Channels {
    pub(super) commands: Receiver<Command>,
    pub(super) broadcasts: Receiver<Vec<u8>>,
    pub(super) outbound: Receiver<PubSubUpdate>,
}

/// What the loop needs to know of the configuration.
pub(super) struct Settings {
    /// Configured gossip peers, re-resolved when the core asks.
    pub(super) peers: Vec<String>,
    /// Our gossip address (left out of resolved peers).
    pub(super) own: Option<SocketAddr>,
    /// Largest Redis full-state message.
    pub(super) chunk_bytes: usize,
}

/// Rate-limits log lines by kind.
#[derive(Default)]
struct Throttle {
    last: BTreeMap<&'static str, Instant>,
}

impl Throttle {
    fn allow(&mut self, kind: &'static str) -> bool {
        let now = Instant::now();
        match self.last.get(kind) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                self.last.insert(kind, now);
                true
            }
        }
    }
}

/// Everything the loop thread owns.
pub(super) struct EventLoop {
    transport: Transport,
    shared: Arc<Shared>,
    channels: Channels,
    metrics: Metrics,
    worker: Option<Sender<Job>>,
    resolver: Resolver,
    settings: Settings,
    joins: BTreeMap<JoinId, Sender<usize>>,
    leave_replies: Vec<Sender<()>>,
    members_version: u64,
    /// The states' lock was taken when the loop last wanted it.
    states_busy: bool,
    /// State keys the Redis core subscribes to (host-owned states arrive after start).
    keys_known: usize,
    /// Decode and merge failures already logged.
    failures_logged: u64,
    /// Packets and streams that did not decrypt, already logged.
    decrypt_failures_logged: u64,
    throttle: Throttle,
    stopping: bool,
    stopped: bool,
    turns: u64,
    /// A Redis update the core's outbox had no room for yet.
    held: Option<PubSubUpdate>,
    /// Host writes moved into the core in the last turn.
    moved: usize,
    /// A full-state job the worker's queue had no room for.
    job_backlog: Option<Job>,
}

impl EventLoop {
    pub(super) fn new(
        transport: Transport,
        shared: Arc<Shared>,
        channels: Channels,
        metrics: Metrics,
        worker: Option<Sender<Job>>,
        resolver: Resolver,
        settings: Settings,
    ) -> Self {
        Self {
            transport,
            shared,
            channels,
            metrics,
            worker,
            resolver,
            settings,
            joins: BTreeMap::new(),
            leave_replies: Vec::new(),
            members_version: u64::MAX,
            states_busy: false,
            keys_known: 0,
            failures_logged: 0,
            decrypt_failures_logged: 0,
            throttle: Throttle::default(),
            stopping: false,
            stopped: false,
            turns: 0,
            held: None,
            moved: 0,
            job_backlog: None,
        }
    }

    pub(super) fn run(mut self) {
        while !self.stopped {
            self.publish();
            let retry = self.states_busy || self.job_backlog.is_some();
            let wake_at = retry.then(|| self.transport.now() + STATES_RETRY);
            if self.moved > 1 && matches!(self.transport, Transport::Redis { .. }) {
                // In a burst of host writes (more than one arrived during the last turn): the
                // next one is microseconds away. Waiting for it here, awake, saves the writer
                // a wake-up syscall and this thread a sleep and a context switch per write.
                // A paced writer (one write a turn) is not worth a spinning core.
                self.linger();
            }
            self.shared.asleep.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let busy = !self.channels.commands.is_empty()
                || (!self.channels.broadcasts.is_empty() && self.broadcast_room())
                || ((self.held.is_some() || !self.channels.outbound.is_empty())
                    && self.publish_room() > 0);
            let wake_at = if busy { Some(Millis::ZERO) } else { wake_at };
            let turned = match &mut self.transport {
                Transport::Gossip(d) => d.turn(wake_at),
                Transport::Redis { driver, .. } => driver.turn(wake_at),
            };
            self.shared.asleep.store(false, Ordering::SeqCst);
            self.turns += 1;
            if let Err(e) = turned {
                log::error!("event loop: poll failed, stopping: {e}");
                break;
            }
            self.drain_commands();
            self.take_writes();
            self.retry_worker();
            self.handle_events();
            self.pump_states();
            self.flush();
            self.handle_events();
            // What arrived after the pump waits for the next one: come back soon for it.
            self.states_busy |= self.transport.inbox().has_pending();
            if self.stopping && matches!(self.transport, Transport::Gossip(_)) {
                break;
            }
        }
        self.publish();
    }

    /// Spin up to [`LINGER`] for more host writes (Redis: gossip sends eagerly on its own
    /// 1 ms linger, and three gossip nodes on two cores have no core to spare for spinning).
    fn linger(&self) {
        let until = Instant::now() + LINGER;
        while Instant::now() < until {
            if !self.channels.outbound.is_empty() {
                return;
            }
            std::hint::spin_loop();
        }
    }

    fn flush(&mut self) {
        match &mut self.transport {
            Transport::Gossip(d) => d.flush(),
            Transport::Redis { driver, .. } => {
                driver.flush();
                // A lookup the resolver has no room for is asked again when its link's
                // connect times out and is retried.
                while let Some(host) = driver.take_lookup() {
                    self.resolver.ask(Lookup::Redis(host));
                }
            }
        }
    }

    fn broadcast_room(&self) -> bool {
        match &self.transport {
            Transport::Gossip(d) => d.peer().swim().can_broadcast(),
            Transport::Redis { .. } => false,
        }
    }

    fn publish_room(&self) -> usize {
        match &self.transport {
            Transport::Redis { driver, .. } => driver.peer().publish_room(),
            Transport::Gossip(_) => 0,
        }
    }

    fn drain_commands(&mut self) {
        loop {
            let cmd = match self.channels.commands.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.shutdown();
                    return;
                }
            };
            let now = self.transport.now();
            match (cmd, &mut self.transport) {
                (Command::Join { addrs, reply }, Transport::Gossip(d)) => {
                    match d.peer_mut().join(now, &addrs) {
                        Some(id) => {
                            self.joins.insert(id, reply);
                        }
                        None => {
                            let _ = reply.try_send(0);
                        }
                    }
                }
                (Command::Resolved(addrs), Transport::Gossip(d)) => {
                    d.peer_mut().handle_resolved(now, &addrs)
                }
                (Command::SendReliable { to, msg }, Transport::Gossip(d)) => {
                    // A refusal (too many streams) is the core's to count.
                    let _ = d.peer_mut().send_reliable(now, to, &msg);
                }
                (Command::SendBestEffort { to, msg }, Transport::Gossip(d)) => {
                    d.peer_mut().send_best_effort(now, to, &msg)
                }
                (Command::Leave { reply }, Transport::Gossip(d)) => {
                    d.peer_mut().leave(now);
                    self.leave_replies.push(reply);
                }
                (Command::RedisResolved(host, addrs), Transport::Redis { driver, .. }) => {
                    driver.resolved(&host, addrs)
                }
                (Command::FullState(chunks), Transport::Redis { driver, .. }) => {
                    driver.peer_mut().publish_full_state(chunks)
                }
                (Command::Keyring { op, reply }, Transport::Gossip(d)) => {
                    let _ = reply.try_send(keyring_op(d.peer().swim().keyring(), op));
                }
                (Command::Shutdown, _) => self.shutdown(),
                // A command for the other transport cannot be sent (the handle checks).
                _ => {}
            }
        }
    }

    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.stopping, true) {
            return;
        }
        if let Transport::Redis { driver, .. } = &mut self.transport {
            let (now, unix) = (driver.now(), crate::node::wall_clock());
            driver.peer_mut().shutdown(now, unix);
        }
    }

    /// Move the host's writes into the core: raw broadcasts on gossip, updates on Redis (as
    /// many as the core has room for; the rest wait in the bounded channel).
    fn take_writes(&mut self) {
        self.moved = 0;
        match &mut self.transport {
            Transport::Gossip(d) => {
                // Only what the core has room for: the rest waits in the bounded channel,
                // whose refusals the host sees (`Node::broadcast`).
                for _ in 0..BATCH {
                    if !d.peer().swim().can_broadcast() {
                        break;
                    }
                    let Ok(msg) = self.channels.broadcasts.try_recv() else { break };
                    self.moved += 1;
                    match d.peer_mut().broadcast(msg) {
                        Ok(()) => {}
                        Err(BroadcastError::QueueFull) => {
                            publish_failure(&self.metrics, "buffer_overflow")
                        }
                        Err(_) => publish_failure(&self.metrics, "too_large"),
                    }
                }
            }
            Transport::Redis { driver, .. } => {
                let peer = driver.peer_mut();
                for _ in 0..BATCH {
                    let Some(update) =
                        self.held.take().or_else(|| self.channels.outbound.try_recv().ok())
                    else {
                        break;
                    };
                    if peer.publish(&update.key, &update.data, update.delimited).is_err() {
                        // The outbox is full (Redis slow or down): this one waits here, the
                        // rest in the bounded channel, and the host's writes are refused
                        // once that is full.
                        self.held = Some(update);
                        break;
                    }
                    self.moved += 1;
                }
            }
        }
    }

    /// Give the states what waited for them and take what they queued, if their lock is free.
    fn pump_states(&mut self) {
        let now = self.transport.now();
        let inbox = self.transport.inbox();
        if !inbox.has_states() {
            return;
        }
        let Some(cluster) = self.shared.cluster.clone() else { return };
        // Host calls hold the lock for microseconds; a GC or a full state for up to seconds.
        // A bounded wait rides out the first without a retry turn, and never the second.
        let Some(mut c) = cluster.try_lock_for(STATES_PATIENCE) else {
            self.states_busy = true;
            return;
        };
        self.states_busy = false;
        c.set_wall_clock(now, crate::node::wall_clock());
        inbox.apply_pending(&mut c, now);
        match &mut self.transport {
            Transport::Gossip(d) => {
                crate::core::cluster::pump(d.peer_mut().swim_mut(), &mut c, now);
            }
            Transport::Redis { driver, .. } => {
                let keys = c.keys().count();
                if keys != self.keys_known {
                    self.keys_known = keys;
                    for key in c.keys() {
                        driver.peer_mut().add_key(key);
                    }
                }
            }
        }
        let arrivals = c.opaque_arrivals();
        let failures = failures(&c);
        drop(c);
        self.shared.arrivals.set(arrivals);
        if failures > self.failures_logged && self.throttle.allow("payloads") {
            log::warn!(
                "{} payloads from peers could not be decoded or merged (total {failures}; \
                 hearsay_cluster_*_errors_total count them)",
                failures - self.failures_logged
            );
            self.failures_logged = failures;
        }
    }

    fn handle_events(&mut self) {
        match &mut self.transport {
            Transport::Gossip(_) => self.gossip_events(),
            Transport::Redis { .. } => self.redis_events(),
        }
    }

    fn gossip_events(&mut self) {
        let Transport::Gossip(d) = &mut self.transport else { return };
        let now = d.now();
        let events: Vec<GossipEvent> = std::iter::from_fn(|| d.peer_mut().poll_event()).collect();
        let rtts: Vec<_> = std::iter::from_fn(|| d.peer_mut().poll_rtt()).collect();
        for event in events {
            match event {
                GossipEvent::Member { change, member } => {
                    self.transport.inbox().emit(NodeEvent::Member { change, member });
                }
                GossipEvent::Conflict { existing, other } => {
                    self.metrics.name_conflicts.inc();
                    self.transport.inbox().emit(NodeEvent::Conflict { existing, other });
                }
                GossipEvent::Reliable { id, result } => {
                    self.transport.inbox().reliable(now, id, result)
                }
                GossipEvent::Joined { id, ok, .. } => {
                    if let Some(reply) = self.joins.remove(&id) {
                        let _ = reply.try_send(ok);
                    }
                }
                GossipEvent::StartupJoinFailed { of } => log::warn!(
                    "joining the cluster at start failed: none of the {of} configured peer \
                     addresses answered a push/pull; this node stays alone until one does \
                     (re-joined every reconnect interval)"
                ),
                GossipEvent::LeaveComplete => {
                    for reply in self.leave_replies.drain(..) {
                        let _ = reply.try_send(());
                    }
                }
                GossipEvent::Ready => self.shared.set_ready(),
                GossipEvent::Maintain => self.ask_worker(Job::Maintain),
                GossipEvent::Resolve => {
                    if let Some(own) = self.settings.own {
                        let peers = self.settings.peers.clone();
                        self.resolver.ask(Lookup::Peers { peers, own });
                    }
                }
            }
        }
        for (peer, rtt) in rtts {
            self.metrics
                .pings
                .get_or_create(&vec![("peer", peer.to_string())])
                .observe(rtt.as_secs_f64());
        }
    }

    fn redis_events(&mut self) {
        loop {
            let Transport::Redis { driver, inbox } = &mut self.transport else { return };
            let Some(event) = driver.peer_mut().poll_event() else { return };
            let now = driver.now();
            match event {
                RedisEvent::Update(part) => inbox.update(now, &part),
                RedisEvent::FullState(state) => inbox.full_state(now, &state, false),
                RedisEvent::Ready => self.shared.set_ready(),
                RedisEvent::Maintain => self.ask_worker(Job::Maintain),
                RedisEvent::FullStateWanted => {
                    let chunk_bytes = self.settings.chunk_bytes;
                    self.ask_worker(Job::FullState(chunk_bytes));
                }
                RedisEvent::Heartbeat(Some(rtt)) => {
                    let peer = vec![("peer", "redis-server".to_owned())];
                    self.metrics.pings.get_or_create(&peer).observe(rtt.as_secs_f64());
                }
                RedisEvent::Heartbeat(None) => {
                    self.metrics.pings_failures.inc();
                }
                RedisEvent::Failure { link, what } => {
                    let kind = match link {
                        crate::core::peer::redis::Link::Command => "redis-command",
                        crate::core::peer::redis::Link::Subscriber => "redis-subscriber",
                        crate::core::peer::redis::Link::Sentinel => "redis-sentinel",
                        crate::core::peer::redis::Link::Master(_) => "redis-master",
                    };
                    if !self.throttle.allow(kind) {
                    } else if link == crate::core::peer::redis::Link::Sentinel {
                        // `what` names the Sentinel: the target moved on to the next already.
                        log::error!("redis sentinel connection: {what}");
                    } else {
                        let target = driver.describe_target(link);
                        log::error!("redis {target} ({} connection): {what}", link.as_str());
                    }
                }
                RedisEvent::Stopped => self.stopped = true,
            }
        }
    }

    fn ask_worker(&mut self, job: Job) {
        let Some(worker) = &self.worker else {
            if let (Job::FullState(_), Transport::Redis { driver, .. }) =
                (&job, &mut self.transport)
            {
                driver.peer_mut().publish_full_state(Vec::new());
            }
            return;
        };
        match worker.try_send(job) {
            Ok(()) => {}
            // The core asks for a full state once and waits for it: keep the job until the
            // worker takes it. A skipped maintenance comes back at the next interval.
            Err(TrySendError::Full(Job::FullState(n))) => {
                self.job_backlog = Some(Job::FullState(n))
            }
            Err(_) => {}
        }
    }

    /// Hand the worker a full-state job it had no room for.
    fn retry_worker(&mut self) {
        if let Some(job) = self.job_backlog.take() {
            self.ask_worker(job);
        }
    }

    /// Republish the view and the gauges and counters.
    fn publish(&mut self) {
        {
            let mut stats = self.shared.stats.lock();
            stats.turns = self.turns;
            stats.events_dropped = self.transport.inbox().dropped;
        }
        match &self.transport {
            Transport::Gossip(_) => self.publish_gossip(),
            Transport::Redis { .. } => self.publish_redis(),
        }
        if let Transport::Gossip(d) = &mut self.transport
            && let Some(r) = d.peer_mut().swim_mut().take_last_rejection()
            && self.throttle.allow("rejected")
        {
            let from = r.from.map_or_else(|| "a peer".to_owned(), |a| a.to_string());
            // Counted in hearsay_cluster_rejected_total; logged once a minute at most.
            log::warn!(
                "refused a {} from {from}: {} (hearsay_cluster_rejected_total counts every \
                 refusal by reason; this line appears at most once a minute)",
                r.what,
                r.error
            );
        }
        if let Transport::Gossip(d) = &mut self.transport
            && let Some(line) = d.take_tls_failure()
            && self.throttle.allow("tls_handshake")
        {
            // Counted in hearsay_tls_handshake_failures_total; logged once a minute at most.
            log::warn!("{line}");
        }
    }

    fn publish_gossip(&mut self) {
        let Transport::Gossip(d) = &self.transport else { return };
        let peer = d.peer();
        let swim = peer.swim();
        let m = &self.metrics;
        m.health_score.set(i64::from(swim.health_score()));
        m.messages_queued.set(gauge(swim.user_queue_len()));
        m.failed_peers.set(gauge(peer.failed_peers()));
        let (_, user) = swim.queue_stats();
        sync_counter(&m.messages_pruned, user.pruned);
        sync_counter(&m.messages_sent.get_or_create(&metrics::update()), user.transmitted);
        sync_counter(
            &m.messages_sent_size.get_or_create(&metrics::update()),
            user.transmitted_bytes,
        );
        sync_counter(&m.pings_failures, swim.stats().probes_failed);
        let stats = swim.stats();
        for reason in RejectReason::ALL {
            for (transport, by) in
                [("packet", &stats.packets_rejected_by), ("stream", &stats.streams_rejected_by)]
            {
                let counter = m.rejected.get_or_create(&metrics::rejected(transport, reason));
                sync_counter(&counter, by[reason.index()]);
            }
        }
        let undecryptable = stats.packets_undecryptable + stats.streams_undecryptable;
        for (transport, total) in
            [("packet", stats.packets_undecryptable), ("stream", stats.streams_undecryptable)]
        {
            sync_counter(&m.decrypt_failures.get_or_create(&vec![("transport", transport)]), total);
        }
        // Once a minute at most: a peer with the wrong key sends several packets a second.
        if undecryptable > self.decrypt_failures_logged && self.throttle.allow("decrypt") {
            log::warn!(
                "{} packets or streams from peers did not decrypt with any installed key \
                 (total {undecryptable}; hearsay_cluster_decrypt_failures_total counts them)",
                undecryptable - self.decrypt_failures_logged
            );
            self.decrypt_failures_logged = undecryptable;
        }
        let up = peer.stats();
        for (counter, total) in [
            (&m.reconnections, up.reconnections),
            (&m.reconnections_failed, up.reconnections_failed),
            (&m.refresh_join, up.refresh_joins),
            (&m.refresh_join_failed, up.refresh_joins_failed),
            (&m.peers_joined, up.peers_joined),
            (&m.peers_left, up.peers_left),
            (&m.peers_update, up.peers_updated),
        ] {
            sync_counter(counter, total);
        }
        {
            let mut stats = self.shared.stats.lock();
            stats.driver = d.stats();
            if let Some(tls) = &m.tls {
                tls.sync(&stats.driver);
            }
            stats.events_dropped += swim.stats().events_dropped;
        }
        if swim.members_version() == self.members_version {
            return;
        }
        self.members_version = swim.members_version();
        let members: Vec<Member> = swim.members().cloned().collect();
        let mut visible: Vec<Visible> = members
            .iter()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|m| Visible { name: m.name.as_str().to_owned(), addr: Some(m.addr) })
            .collect();
        visible.sort();
        let position = peer.position();
        m.members.set(gauge(swim.num_alive()));
        m.position.set(gauge(position.index));
        *self.shared.view.write() =
            View { members: Arc::new(members), visible: Arc::new(visible), position };
    }

    fn publish_redis(&mut self) {
        let Transport::Redis { driver, .. } = &self.transport else { return };
        {
            let mut stats = self.shared.stats.lock();
            (stats.redis_bytes_sent, stats.redis_bytes_received) = driver.bytes();
        }
        let peer = driver.peer();
        let m = &self.metrics;
        let s = peer.stats();
        for kind in [MsgKind::Update, MsgKind::FullState] {
            let label = vec![("msg_type", kind.as_str())];
            sync_counter(&m.messages_sent.get_or_create(&label), RedisStats::of(&s.sent, kind));
            sync_counter(
                &m.messages_sent_size.get_or_create(&label),
                RedisStats::of(&s.sent_bytes, kind),
            );
            sync_counter(
                &m.messages_received.get_or_create(&label),
                RedisStats::of(&s.received, kind),
            );
            sync_counter(
                &m.messages_received_size.get_or_create(&label),
                RedisStats::of(&s.received_bytes, kind),
            );
        }
        for kind in [MsgKind::Update, MsgKind::FullState, MsgKind::Request] {
            let label = vec![("msg_type", kind.as_str()), ("reason", "redis_issue")];
            sync_counter(
                &m.publish_failures.get_or_create(&label),
                RedisStats::of(&s.publish_failed, kind),
            );
        }
        for reason in LinkFailure::ALL {
            let label = vec![("reason", reason.as_str())];
            sync_counter(
                &m.redis_connection_errors.get_or_create(&label),
                s.link_failures[reason.index()],
            );
        }
        sync_counter(&m.redis_redirects, s.redirects);
        m.messages_queued.set(gauge(peer.outbox_len() + self.channels.outbound.len()));
        // Grafana's meanings: members = every key under the prefix, health = keys that are
        // no live member.
        let (scanned, live) = (gauge(peer.scanned()), gauge(peer.members().len()));
        m.members.set(scanned);
        m.health_score.set((scanned - live).max(0));
        let position = peer.position();
        m.position.set(gauge(position.index));
        let view = self.shared.view.read();
        let changed = view.position != position
            || view.visible.len() != peer.members().len()
            || view.visible.iter().zip(peer.members()).any(|(v, k)| v.name != *k);
        drop(view);
        if changed {
            let visible =
                peer.members().iter().map(|k| Visible { name: k.clone(), addr: None }).collect();
            *self.shared.view.write() =
                View { members: Arc::new(Vec::new()), visible: Arc::new(visible), position };
        }
    }
}

fn publish_failure(metrics: &Metrics, reason: &'static str) {
    metrics.publish_failures.get_or_create(&vec![("msg_type", "update"), ("reason", reason)]).inc();
}

/// Every payload the states could not decode or merge so far.
fn failures(c: &crate::core::cluster::Cluster) -> u64 {
    let global = c.global_stats();
    global.decode_errors + c.stats().values().map(|s| s.merge_errors).sum::<u64>()
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Apply one keyring command (memberlist `Keyring.AddKey`/`UseKey`/`RemoveKey`/`GetKeys`) and
/// answer with the keys installed afterwards, primary first.
fn keyring_op(
    keyring: Option<&crate::core::wire::Keyring>,
    op: KeyOp,
) -> Result<Vec<SecretKey>, KeyringError> {
    let keyring = keyring.ok_or(KeyringError::NotConfigured)?;
    match op {
        KeyOp::Add(key) => keyring.add_key(key)?,
        KeyOp::Use(key) => keyring.use_key(&key)?,
        KeyOp::Remove(key) => keyring.remove_key(&key)?,
        KeyOp::List => {}
    }
    Ok(keyring.keys())
}
