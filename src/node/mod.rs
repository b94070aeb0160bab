//! A running peer: a [`Node`] owns an event-loop thread around a SWIM core.
//!
//! Other threads talk to it through a handle: commands go in over crossbeam channels and wake
//! the loop through a mio `Waker` (only when it sleeps, so a burst of broadcasts costs one
//! wake-up, not one per message); events come out through a bounded channel; the member list
//! is published as a snapshot after every change. The loop also runs Alertmanager's peer
//! upkeep: re-joining failed members and re-resolving the configured peers.

#![forbid(unsafe_code)]

mod maintenance;
mod metrics;
mod peers;
pub mod redis;
pub mod snapshot;
mod state_metrics;
pub(crate) mod states;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError, bounded};
use mio::Waker;
use parking_lot::{Condvar, Mutex, RwLock};
use prometheus_client::registry::Registry;

use crate::core::cluster::{self, Cluster, Position, Settle};
use crate::core::config::{ConfigError, SwimConfig};
use crate::core::swim::{BroadcastError, Delegate, Event, Member, MemberChange, Swim};
use crate::core::{Millis, NodeName, UnixMillis};
use crate::net::{Clock, Driver, DriverError, DriverStats};
use metrics::Metrics;
use peers::FailedPeers;
use state_metrics::StateMetrics;
pub use states::{
    ALERTMANAGER_STATES, NFLOG_KEY, SILENCES_KEY, StateError, States, alertmanager_states,
};

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Protocol settings. `swim.advertise` is replaced at start by the address chosen from
    /// `bind` and `advertise` (see [`Node::start`]).
    pub swim: SwimConfig,
    /// Address to bind UDP and TCP on. Alertmanager `--cluster.listen-address` (default
    /// `0.0.0.0:9094`). Port 0 picks a free port.
    pub bind: SocketAddr,
    /// Address to advertise. Alertmanager `--cluster.advertise-address`. Default: the bind
    /// address, or when bound to a wildcard, the first private IP of this host with the bound
    /// port.
    pub advertise: Option<SocketAddr>,
    /// Allow advertising a public IP when no private one exists. Alertmanager
    /// `--cluster.allow-insecure-public-advertise-address-discovery` (false).
    pub allow_public_advertise: bool,
    /// Peers to join: `host:port`, DNS names allowed (every A/AAAA record is a peer).
    /// Alertmanager `--cluster.peer`, repeatable.
    pub peers: Vec<String>,
    /// How often members that failed or left are re-joined; zero disables. Alertmanager
    /// `--cluster.reconnect-interval` (10 s).
    pub reconnect_interval: Duration,
    /// How long a failed member stays on the re-join list; zero keeps it forever. Alertmanager
    /// `--cluster.reconnect-timeout` (6 h).
    pub reconnect_timeout: Duration,
    /// How often `peers` are re-resolved and missing ones joined. Alertmanager's fixed 15 s.
    pub refresh_interval: Duration,
    /// Undelivered events kept for the host (default 4,096); past it events are dropped and
    /// counted in [`NodeStats::events_dropped`].
    pub event_queue_len: usize,
    /// Seed of the core's random choices; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// The longest a node takes to settle ([`Node::is_ready`]): it is ready once the member
    /// count held still for three polls every 10 × gossip interval, or after this long.
    /// Alertmanager `--cluster.settle-timeout` (60 s).
    pub settle_timeout: Duration,
}

impl NodeConfig {
    /// Alertmanager's settings: a random ULID name (unless `name` is given), the memberlist
    /// values `cluster.Create` uses, and Alertmanager's peer upkeep intervals.
    pub fn alertmanager(name: Option<&str>, bind: SocketAddr, peers: Vec<String>) -> Self {
        let name =
            name.map_or_else(|| NodeName::from(ulid::Ulid::generate().to_string()), NodeName::from);
        Self {
            swim: SwimConfig::alertmanager(name, bind, peers.len()),
            bind,
            advertise: None,
            allow_public_advertise: false,
            peers,
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            refresh_interval: Duration::from_secs(15),
            event_queue_len: 4096,
            seed: None,
            settle_timeout: Duration::from_secs(60),
        }
    }
}

/// Where and how often a cluster node writes its states to disk.
#[derive(Clone, Debug)]
pub struct Snapshots {
    /// Directory of the files. Alertmanager `--storage.path`.
    pub dir: std::path::PathBuf,
    /// `(state key, file name)` pairs, e.g. `("nfl", "nflog")`, `("sil", "silences")`.
    pub files: Vec<(String, String)>,
    /// GC + snapshot period. Alertmanager `--data.maintenance-interval` (15 min).
    pub interval: Duration,
}

/// What one maintenance run did for one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maintenance {
    /// State key.
    pub key: String,
    /// Elements garbage-collected.
    pub collected: usize,
    /// Snapshot size written, or why none was.
    pub snapshot: Result<u64, String>,
    /// How long GC, marshalling and writing took.
    pub took: Duration,
}

/// What the host hears from a node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A member joined, changed its metadata, left, or was declared dead.
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
    /// A user message arrived (gossip or reliable stream).
    Message(Vec<u8>),
    /// A maintenance run (GC and snapshot) finished for a state.
    Maintained(Maintenance),
    /// A peer's user state arrived in a push/pull (`join` when part of a join).
    RemoteState {
        /// Whether the exchange was a join.
        join: bool,
        /// The peer's state bytes.
        data: Vec<u8>,
    },
}

/// Why a node call failed. Each variant says whether anything changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration was refused; nothing started.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Binding, polling or resolving failed; nothing started.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No advertise address could be chosen; nothing started.
    #[error("no advertise address: {0}")]
    Advertise(String),
    /// The broadcast queue (or command channel) is full; the message was not queued.
    #[error("queue full")]
    QueueFull,
    /// The message is larger than a gossip packet; it was not queued.
    #[error("message of {len} bytes exceeds the {max}-byte gossip limit")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Largest gossipable message.
        max: usize,
    },
    /// No member by that name.
    #[error("unknown member {0}")]
    UnknownMember(String),
    /// No peer could be joined; membership is unchanged.
    #[error("could not join any of {0} peers")]
    JoinFailed(usize),
    /// The operation did not finish in time (it may still finish later).
    #[error("timed out")]
    Timeout,
    /// The node has shut down.
    #[error("node is shut down")]
    Closed,
}

/// Counters of the node's own plumbing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Events dropped because the host did not drain [`Node::events`].
    pub events_dropped: u64,
    /// Socket-level counters.
    pub driver: DriverStats,
}

enum Command {
    Join { addrs: Vec<SocketAddr>, reply: Sender<usize> },
    Resolved(Vec<SocketAddr>),
    SendReliable { to: SocketAddr, msg: Vec<u8> },
    SendBestEffort { to: SocketAddr, msg: Vec<u8> },
    Leave { reply: Sender<()> },
    Shutdown,
}

/// State shared by the handle and the loop thread.
struct Shared {
    commands: Sender<Command>,
    broadcasts: Sender<Vec<u8>>,
    waker: Arc<Waker>,
    /// Set by the loop just before it sleeps; a sender that clears it wakes the loop.
    asleep: AtomicBool,
    members: RwLock<Arc<Vec<Member>>>,
    /// The host's user state for push/pulls; the loop's delegate reads the same value.
    local_state: Arc<Mutex<Vec<u8>>>,
    registry: Mutex<Registry>,
    stats: Mutex<NodeStats>,
    /// The replicated states, in cluster mode. Host threads read and write them under this
    /// lock; the loop pumps what they queue after every turn.
    cluster: Option<Arc<Mutex<Cluster>>>,
    /// Whether another member was ever seen (for the "blind" position signal).
    seen_peers: AtomicBool,
    /// Maintenance reports dropped because the host did not drain events.
    maintenance_events_dropped: Arc<std::sync::atomic::AtomicU64>,
    /// The node's metrics, for what host threads time (state queries).
    metrics: Metrics,
    /// Settled (one-shot), with its condition variable for [`Node::wait_ready`].
    ready: Mutex<bool>,
    ready_changed: Condvar,
    /// [`Cluster::opaque_arrivals`] as last seen by the loop, for [`Node::wait_states`].
    arrivals: Arrivals,
}

/// Payloads routed to host-owned states so far, as a signal hosts can wait on.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Arrivals {
    /// The states' count is now `n` ([`Cluster::opaque_arrivals`]).
    pub(crate) fn set(&self, n: u64) {
        let mut count = self.count.lock();
        if *count != n {
            *count = n;
            self.changed.notify_all();
        }
    }

    /// Wait up to `timeout` for the count to move past `seen`; advance `seen`; whether it moved.
    pub(crate) fn wait(&self, seen: &mut u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.lock();
        while *count == *seen {
            if self.changed.wait_until(&mut count, deadline).timed_out() {
                break;
            }
        }
        let moved = *count != *seen;
        *seen = *count;
        moved
    }
}

impl Shared {
    fn wake(&self) {
        if self.asleep.swap(false, Ordering::SeqCst) {
            // A failed wake leaves the loop to its next deadline; nothing to recover.
            let _ = self.waker.wake();
        }
    }

    fn send(&self, cmd: Command) -> Result<(), NodeError> {
        self.commands.send(cmd).map_err(|_| NodeError::Closed)?;
        self.wake();
        Ok(())
    }
}

/// A running peer. Every method may be called from any thread. Dropping it shuts it down
/// (without leaving: call [`Node::leave`] first for a graceful exit).
pub struct Node {
    shared: Arc<Shared>,
    events: Receiver<NodeEvent>,
    name: NodeName,
    local: SocketAddr,
    advertise: SocketAddr,
    max_broadcast: usize,
    peers_configured: Vec<String>,
    thread: Option<JoinHandle<()>>,
    maintainer: Option<(Sender<()>, JoinHandle<()>)>,
    resolver: Option<(Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Bind, start the loop thread, and start joining `config.peers` (in the background: use
    /// [`Node::join`] to wait for a join).
    pub fn start(config: NodeConfig) -> Result<Self, NodeError> {
        Self::launch(config, None, None)
    }

    /// Start a node that replicates `cluster`'s states (register them first, so the first
    /// push/pull carries them), and with `snapshots`, GCs and writes them to disk every
    /// interval and once more at [`Node::shutdown`].
    pub fn start_cluster(
        config: NodeConfig,
        cluster: Cluster,
        snapshots: Option<Snapshots>,
    ) -> Result<Self, NodeError> {
        Self::launch(config, Some(Arc::new(Mutex::new(cluster))), snapshots)
    }

    fn launch(
        config: NodeConfig,
        cluster: Option<Arc<Mutex<Cluster>>>,
        snapshots: Option<Snapshots>,
    ) -> Result<Self, NodeError> {
        config.swim.validate()?;
        let (cmd_tx, cmd_rx) = bounded(1024);
        let (bcast_tx, bcast_rx) = bounded(config.swim.user_queue_len);
        let (event_tx, event_rx) = bounded(config.event_queue_len.max(1));
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry, config.swim.name.as_str());
        let maintenance = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        if let Some(cluster) = &cluster {
            let collector = StateMetrics {
                cluster: Arc::clone(cluster),
                maintenance: Arc::clone(&maintenance),
            };
            registry.register_collector(Box::new(collector));
        }
        let local_state = Arc::new(Mutex::new(Vec::new()));
        let maintenance_events = event_tx.clone();
        let maintenance_metrics = metrics.clone();
        let delegate = NodeDelegate {
            events: event_tx,
            local_state: Arc::clone(&local_state),
            metrics: metrics.clone(),
            dropped: 0,
            cluster: cluster.clone(),
            pending: VecDeque::new(),
            last_local_state: Vec::new(),
        };
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut advertise = None;
        let driver = Driver::bind(config.bind, Clock::new(), |bound, now| {
            let adv = choose_advertise(&config, bound)?;
            advertise = Some(adv);
            let swim = SwimConfig { advertise: adv, ..config.swim.clone() };
            Swim::new(swim, delegate, seed, now).map_err(NodeError::Config)
        })
        .map_err(|e| match e {
            DriverError::Io(e) => NodeError::Io(e),
            DriverError::Core(e) => e,
        })?;
        let advertise = advertise.expect("BUG: set when the core was built");
        let local = driver.local_addr();
        let initial = peers::resolve(&config.peers, advertise)?;
        warn_unroutable(advertise, &initial);
        let max_broadcast = driver.swim().config().packet_budget.saturating_sub(5);
        let shared = Arc::new(Shared {
            commands: cmd_tx,
            broadcasts: bcast_tx,
            waker: driver.waker(),
            asleep: AtomicBool::new(false),
            members: RwLock::new(Arc::new(driver.swim().members().cloned().collect())),
            local_state,
            registry: Mutex::new(registry),
            stats: Mutex::new(NodeStats::default()),
            cluster,
            seen_peers: AtomicBool::new(false),
            maintenance_events_dropped: Arc::default(),
            metrics: metrics.clone(),
            ready: Mutex::new(false),
            ready_changed: Condvar::new(),
            arrivals: Arrivals::default(),
        });
        let loop_state = LoopState {
            driver,
            shared: Arc::clone(&shared),
            commands: cmd_rx,
            broadcasts: bcast_rx,
            metrics,
            failed: FailedPeers::default(),
            joins: Vec::new(),
            config: config.clone(),
            members_version: u64::MAX,
            next_reconnect: Instant::now() + config.reconnect_interval,
            next_expire: Instant::now() + EXPIRE_INTERVAL,
            reconnecting: Vec::new(),
            refreshing: Vec::new(),
            leave_replies: Vec::new(),
            initial,
            cluster_busy: false,
            settle: Settle::new(
                Millis::ZERO,
                config.swim.gossip_interval.saturating_mul(10),
                config.settle_timeout,
            ),
        };
        let name = config.swim.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("hearsay-{name}"))
            .spawn(move || loop_state.run())?;
        let maintainer = match (&shared.cluster, snapshots) {
            (Some(cluster), Some(snapshots)) => {
                Some(maintenance::spawn(maintenance::Maintainer {
                    cluster: Arc::clone(cluster),
                    snapshots,
                    metrics: maintenance_metrics,
                    records: maintenance,
                    events: maintenance_events,
                    events_dropped: Arc::clone(&shared.maintenance_events_dropped),
                })?)
            }
            _ => None,
        };
        let resolver = (!config.peers.is_empty() && !config.refresh_interval.is_zero())
            .then(|| spawn_resolver(&config, advertise, &shared))
            .transpose()?;
        Ok(Self {
            shared,
            events: event_rx,
            name,
            local,
            advertise,
            max_broadcast,
            peers_configured: config.peers.clone(),
            thread: Some(thread),
            maintainer,
            resolver,
        })
    }

    /// Push/pull with each peer (`host:port`, DNS names expand to every address) and wait up to
    /// `timeout` for the outcome. Returns how many answered; an error if none did.
    pub fn join(&self, peers: &[String], timeout: Duration) -> Result<usize, NodeError> {
        let addrs = peers::resolve(peers, self.advertise)?;
        if addrs.is_empty() {
            return Err(NodeError::JoinFailed(0));
        }
        let (reply, wait) = bounded(1);
        let n = addrs.len();
        self.shared.send(Command::Join { addrs, reply })?;
        match wait.recv_timeout(timeout) {
            Ok(0) => Err(NodeError::JoinFailed(n)),
            Ok(ok) => Ok(ok),
            Err(RecvTimeoutError::Timeout) => Err(NodeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(NodeError::Closed),
        }
    }

    /// Gossip `msg` to every member. Never blocks: a full queue is an error, and the caller
    /// decides whether to retry, drop, or slow down.
    pub fn broadcast(&self, msg: Vec<u8>) -> Result<(), NodeError> {
        if msg.len() > self.max_broadcast {
            return Err(NodeError::TooLarge { len: msg.len(), max: self.max_broadcast });
        }
        match self.shared.broadcasts.try_send(msg) {
            Ok(()) => {
                self.shared.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(NodeError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(NodeError::Closed),
        }
    }

    /// Send `msg` to one member over TCP (memberlist `SendReliable`).
    pub fn send_reliable(&self, member: &str, msg: Vec<u8>) -> Result<(), NodeError> {
        let to = self.member_addr(member)?;
        self.shared.send(Command::SendReliable { to, msg })
    }

    /// Send `msg` to one member in a single UDP packet (memberlist `SendBestEffort`).
    pub fn send_best_effort(&self, member: &str, msg: Vec<u8>) -> Result<(), NodeError> {
        let to = self.member_addr(member)?;
        self.shared.send(Command::SendBestEffort { to, msg })
    }

    /// Set the user state this node sends in push/pulls (memberlist `Delegate.LocalState`).
    pub fn set_local_state(&self, state: Vec<u8>) {
        *self.shared.local_state.lock() = state;
    }

    /// Run `f` on the replicated states (cluster mode), then let the loop send what `f` queued
    /// with [`Cluster::broadcast`]. `None` for a node started without a cluster.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> Option<R> {
        let cluster = self.shared.cluster.as_ref()?;
        let result = f(&mut cluster.lock());
        self.shared.wake();
        Some(result)
    }

    /// Every member we know, ourselves and dead/left ones not yet reaped included.
    pub fn members(&self) -> Arc<Vec<Member>> {
        Arc::clone(&self.shared.members.read())
    }

    /// Our position among alive and suspect members sorted by name (Alertmanager
    /// `Position()`): index 0 notifies first. `blind` tells "first" from "alone although peers
    /// are configured or were seen".
    pub fn position(&self) -> Position {
        let members = self.members();
        let expect_peers =
            !self.peers_configured.is_empty() || self.shared.seen_peers.load(Ordering::Relaxed);
        cluster::position(members.iter(), self.name.as_str(), expect_peers)
    }

    /// Whether the node has settled: the member count held still for three polls (every
    /// 10 × gossip interval) after start, or the settle timeout passed. Alertmanager waits for
    /// this before its first notification (`WaitReady`). One-shot: once ready, always ready.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.lock()
    }

    /// Wait up to `timeout` for [`Node::is_ready`].
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + timeout;
        let mut ready = self.shared.ready.lock();
        while !*ready {
            if self.shared.ready_changed.wait_until(&mut ready, deadline).timed_out() {
                return if *ready { Ok(()) } else { Err(NodeError::Timeout) };
            }
        }
        Ok(())
    }

    /// Gossip that we leave and wait up to `timeout` until the message has gone out.
    pub fn leave(&self, timeout: Duration) -> Result<(), NodeError> {
        let (reply, wait) = bounded(1);
        self.shared.send(Command::Leave { reply })?;
        match wait.recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(NodeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(NodeError::Closed),
        }
    }

    /// Events, in order. Drain them: past `event_queue_len` undelivered events, new ones are
    /// dropped and counted.
    pub fn events(&self) -> &Receiver<NodeEvent> {
        &self.events
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address advertised to peers.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise
    }

    /// Counters of the node's plumbing.
    pub fn stats(&self) -> NodeStats {
        let mut stats = *self.shared.stats.lock();
        stats.events_dropped += self.shared.maintenance_events_dropped.load(Ordering::Relaxed);
        stats
    }

    /// Metrics in the OpenMetrics text format, under Alertmanager's names.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.shared.registry.lock())
    }

    /// Stop the loop and wait for it. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some((stop, handle)) = self.resolver.take() {
            drop(stop);
            let _ = handle.join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = self.shared.send(Command::Shutdown);
            let _ = thread.join();
        }
        // The loop has stopped: a last GC and snapshot, as Alertmanager does on shutdown.
        if let Some((stop, handle)) = self.maintainer.take() {
            drop(stop);
            let _ = handle.join();
        }
    }

    fn member_addr(&self, name: &str) -> Result<SocketAddr, NodeError> {
        self.members()
            .iter()
            .find(|m| m.name.as_str() == name && !m.state.is_gone())
            .map(|m| m.addr)
            .ok_or_else(|| NodeError::UnknownMember(name.to_owned()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How often failed peers past the reconnect timeout are forgotten (Alertmanager: 5 min).
const EXPIRE_INTERVAL: Duration = Duration::from_secs(300);
/// Broadcasts moved from the channel into the core per turn, so a flood cannot starve timers.
const BROADCAST_BATCH: usize = 4096;

/// The delegate the node's core runs with: user messages and remote state become events; our
/// user state is whatever the host last set.
struct NodeDelegate {
    events: Sender<NodeEvent>,
    local_state: Arc<Mutex<Vec<u8>>>,
    metrics: Metrics,
    dropped: u64,
    /// In cluster mode, user messages and push/pull state belong to the cluster layer.
    cluster: Option<Arc<Mutex<Cluster>>>,
    /// What arrived while a host thread or maintenance held the states' lock: the event loop
    /// never waits for it (a slow GC must not stop us answering probes).
    pending: VecDeque<Pending>,
    /// The full state last sent, answered when the states are busy (anti-entropy tolerates a
    /// slightly stale copy; a stalled loop it does not).
    last_local_state: Vec<u8>,
}

/// A payload waiting for the states' lock.
enum Pending {
    Update(Vec<u8>),
    FullState(Vec<u8>, bool),
}

/// Most payloads kept while the states are busy; beyond it they are dropped (and counted as
/// events dropped) — push/pull repairs what is lost.
const PENDING_LEN: usize = 65_536;
/// How soon the loop retries when the states were busy.
const CLUSTER_RETRY: Duration = Duration::from_millis(2);

impl NodeDelegate {
    /// Apply what waited for the lock, in arrival order.
    fn apply_pending(&mut self, cluster: &mut Cluster, now: Millis) {
        for p in self.pending.drain(..) {
            match p {
                Pending::Update(msg) => cluster.notify_msg(now, &msg),
                Pending::FullState(state, join) => cluster.merge_remote_state(now, &state, join),
            }
        }
    }

    fn defer(&mut self, p: Pending) {
        if self.pending.len() >= PENDING_LEN {
            self.dropped += 1;
        } else {
            self.pending.push_back(p);
        }
    }

    fn emit(&mut self, event: NodeEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(event) {
            self.dropped += 1;
        }
    }
}

impl Delegate for NodeDelegate {
    fn local_state(&mut self, now: Millis, join: bool) -> Vec<u8> {
        let state = match &self.cluster {
            Some(c) => match c.try_lock() {
                Some(mut c) => {
                    let state = c.local_state(now, join);
                    self.last_local_state.clone_from(&state);
                    state
                }
                None => self.last_local_state.clone(),
            },
            None => self.local_state.lock().clone(),
        };
        self.metrics.messages_sent.get_or_create(&metrics::full_state()).inc();
        self.metrics
            .messages_sent_size
            .get_or_create(&metrics::full_state())
            .inc_by(state.len() as u64);
        state
    }

    fn merge_remote_state(&mut self, now: Millis, state: &[u8], join: bool) {
        self.metrics.messages_received.get_or_create(&metrics::full_state()).inc();
        self.metrics
            .messages_received_size
            .get_or_create(&metrics::full_state())
            .inc_by(state.len() as u64);
        let cluster = self.cluster.clone();
        let locked = cluster.as_ref().map(|c| c.try_lock());
        match locked {
            Some(Some(mut c)) => {
                c.merge_remote_state(now, state, join);
            }
            Some(None) => self.defer(Pending::FullState(state.to_vec(), join)),
            None => self.emit(NodeEvent::RemoteState { join, data: state.to_vec() }),
        }
    }

    fn notify_msg(&mut self, now: Millis, msg: &[u8]) {
        self.metrics.messages_received.get_or_create(&metrics::update()).inc();
        self.metrics
            .messages_received_size
            .get_or_create(&metrics::update())
            .inc_by(msg.len() as u64);
        let cluster = self.cluster.clone();
        let locked = cluster.as_ref().map(|c| c.try_lock());
        match locked {
            Some(Some(mut c)) => c.notify_msg(now, msg),
            Some(None) => self.defer(Pending::Update(msg.to_vec())),
            None => self.emit(NodeEvent::Message(msg.to_vec())),
        }
    }
}

struct PendingJoin {
    waiting: Vec<SocketAddr>,
    ok: usize,
    reply: Sender<usize>,
}

/// Everything the loop thread owns.
struct LoopState {
    driver: Driver<NodeDelegate>,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    broadcasts: Receiver<Vec<u8>>,
    metrics: Metrics,
    failed: FailedPeers,
    joins: Vec<PendingJoin>,
    config: NodeConfig,
    members_version: u64,
    next_reconnect: Instant,
    next_expire: Instant,
    /// Addresses with a reconnect / refresh join in flight (for the metrics).
    reconnecting: Vec<SocketAddr>,
    refreshing: Vec<SocketAddr>,
    leave_replies: Vec<Sender<()>>,
    initial: Vec<SocketAddr>,
    /// The states' lock was taken when the loop last wanted it.
    cluster_busy: bool,
    /// Alertmanager's settle, polled by the loop's clock.
    settle: Settle,
}

impl LoopState {
    fn run(mut self) {
        let initial = std::mem::take(&mut self.initial);
        if !initial.is_empty() {
            // Alertmanager pre-marks resolved peers as failed so the reconnect loop retries
            // them until they join; the first attempt is right now.
            let now = Instant::now();
            for addr in &initial {
                self.failed.add(*addr, now);
            }
            let t = self.driver.now();
            self.driver.swim_mut().join(t, &initial);
        }
        loop {
            self.publish();
            let wake_at = self.next_timer();
            self.shared.asleep.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let busy = !self.commands.is_empty() || !self.broadcasts.is_empty();
            let wake_at = if busy { Some(Millis::ZERO) } else { wake_at };
            let turned = self.driver.turn(wake_at);
            self.shared.asleep.store(false, Ordering::SeqCst);
            if turned.is_err() || !self.drain_commands() {
                break;
            }
            self.take_broadcasts();
            self.upkeep();
            self.pump_cluster();
            self.driver.flush();
            self.handle_events();
        }
        self.publish();
    }

    /// Cluster mode: keep the wall clock current, apply what arrived while the states were
    /// busy, and move queued state updates into the core. Never waits for the lock: a host
    /// thread (or maintenance) holding it only delays this to a later turn.
    fn pump_cluster(&mut self) {
        let Some(cluster) = self.shared.cluster.clone() else { return };
        let now = self.driver.now();
        let Some(mut cluster) = cluster.try_lock() else {
            self.cluster_busy = true;
            return;
        };
        self.cluster_busy = false;
        cluster.set_wall_clock(now, wall_clock());
        self.driver.swim_mut().delegate_mut().apply_pending(&mut cluster, now);
        cluster::pump(self.driver.swim_mut(), &mut cluster, now);
        let arrivals = cluster.opaque_arrivals();
        drop(cluster);
        self.shared.arrivals.set(arrivals);
    }

    /// Returns false on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            };
            let now = self.driver.now();
            match cmd {
                Command::Join { addrs, reply } => {
                    self.driver.swim_mut().join(now, &addrs);
                    self.joins.push(PendingJoin { waiting: addrs, ok: 0, reply });
                }
                Command::Resolved(addrs) => self.refresh(&addrs),
                Command::SendReliable { to, msg } => {
                    self.driver.swim_mut().send_reliable(now, to, &msg);
                }
                Command::SendBestEffort { to, msg } => {
                    self.driver.swim_mut().send_best_effort(now, to, &msg)
                }
                Command::Leave { reply } => {
                    self.driver.swim_mut().leave(now);
                    self.leave_replies.push(reply);
                }
                Command::Shutdown => return false,
            }
        }
    }

    fn take_broadcasts(&mut self) {
        for msg in self.broadcasts.try_iter().take(BROADCAST_BATCH) {
            match self.driver.swim_mut().broadcast(msg) {
                Ok(()) => {}
                Err(BroadcastError::QueueFull) => self.publish_failure("buffer_overflow"),
                Err(BroadcastError::TooLarge { .. }) => self.publish_failure("too_large"),
            }
        }
    }

    fn publish_failure(&self, reason: &'static str) {
        self.metrics
            .publish_failures
            .get_or_create(&vec![("msg_type", "update"), ("reason", reason)])
            .inc();
    }

    /// Re-join failed members every reconnect interval; forget them after the timeout. Poll
    /// the settle.
    fn upkeep(&mut self) {
        if !self.settle.is_ready() {
            let swim = self.driver.swim();
            let visible = swim.members().filter(|m| !m.state.is_gone()).count();
            if self.settle.poll(self.driver.now(), visible) {
                *self.shared.ready.lock() = true;
                self.shared.ready_changed.notify_all();
            }
        }
        let now = Instant::now();
        if !self.config.reconnect_interval.is_zero() && now >= self.next_reconnect {
            self.next_reconnect = now + self.config.reconnect_interval;
            let addrs = self.failed.addrs();
            if !addrs.is_empty() {
                let t = self.driver.now();
                self.driver.swim_mut().join(t, &addrs);
                self.reconnecting.extend(addrs);
            }
        }
        if now >= self.next_expire {
            self.next_expire = now + EXPIRE_INTERVAL;
            self.failed.expire(now, self.config.reconnect_timeout);
        }
    }

    /// Freshly resolved configured peers: join those that are not members.
    fn refresh(&mut self, addrs: &[SocketAddr]) {
        let known: Vec<SocketAddr> =
            self.driver.swim().members().filter(|m| !m.state.is_gone()).map(|m| m.addr).collect();
        let missing: Vec<SocketAddr> =
            addrs.iter().copied().filter(|a| !known.contains(a)).collect();
        if !missing.is_empty() {
            let t = self.driver.now();
            self.driver.swim_mut().join(t, &missing);
            self.refreshing.extend(missing);
        }
    }

    fn next_timer(&self) -> Option<Millis> {
        if self.cluster_busy {
            // The states were locked: come back soon for what is waiting.
            return Some(self.driver.now() + CLUSTER_RETRY);
        }
        let now = self.driver.now();
        let reconnect = (!self.config.reconnect_interval.is_zero())
            .then(|| now + self.next_reconnect.saturating_duration_since(Instant::now()));
        match (reconnect, self.settle.next_poll()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_events(&mut self) {
        while let Some(event) = self.driver.swim_mut().poll_event() {
            match event {
                Event::Member { change, member } => self.on_member(change, member),
                Event::Conflict { existing, other } => {
                    self.metrics.name_conflicts.inc();
                    self.emit(NodeEvent::Conflict { existing, other });
                }
                Event::PushPull { peer, join, result } => {
                    self.on_push_pull(peer, join, result.is_ok())
                }
                Event::Reliable { id, result, .. } => {
                    if let Some(c) = &self.shared.cluster {
                        let mut c = c.lock();
                        c.on_reliable(id, &result, self.driver.now());
                        for (key, took) in c.drain_oversize_durations() {
                            self.metrics.observe_oversize(&key, took);
                        }
                    }
                }
                Event::LeaveComplete => {
                    for reply in self.leave_replies.drain(..) {
                        let _ = reply.try_send(());
                    }
                }
            }
        }
        while let Some((peer, rtt)) = self.driver.swim_mut().poll_rtt() {
            self.metrics
                .pings
                .get_or_create(&vec![("peer", peer.to_string())])
                .observe(rtt.as_secs_f64());
        }
    }

    fn on_member(&mut self, change: MemberChange, member: Member) {
        match change {
            MemberChange::Joined => {
                self.failed.remove(member.addr);
                self.metrics.peers_joined.inc();
            }
            MemberChange::Left | MemberChange::Failed => {
                if member.name != self.config.swim.name {
                    self.failed.add(member.addr, Instant::now());
                }
                self.metrics.peers_left.inc();
            }
            MemberChange::Updated => {
                self.metrics.peers_update.inc();
            }
        }
        self.emit(NodeEvent::Member { change, member });
    }

    fn on_push_pull(&mut self, peer: SocketAddr, join: bool, ok: bool) {
        if !join {
            return;
        }
        for (list, done, failed) in [
            (
                &mut self.reconnecting,
                &self.metrics.reconnections,
                &self.metrics.reconnections_failed,
            ),
            (&mut self.refreshing, &self.metrics.refresh_join, &self.metrics.refresh_join_failed),
        ] {
            if let Some(i) = list.iter().position(|a| *a == peer) {
                list.swap_remove(i);
                if ok {
                    done.inc()
                } else {
                    failed.inc()
                };
            }
        }
        if let Some(i) = self.joins.iter().position(|j| j.waiting.contains(&peer)) {
            let pending = &mut self.joins[i];
            pending.waiting.retain(|a| *a != peer);
            pending.ok += usize::from(ok);
            if pending.waiting.is_empty() {
                let done = self.joins.swap_remove(i);
                let _ = done.reply.try_send(done.ok);
            }
        }
    }

    fn emit(&mut self, event: NodeEvent) {
        self.driver.swim_mut().delegate_mut().emit(event);
    }

    /// Republish the member snapshot and gauges when the table changed.
    fn publish(&mut self) {
        let swim = self.driver.swim();
        let m = &self.metrics;
        m.health_score.set(i64::from(swim.health_score()));
        m.messages_queued.set(i64::try_from(swim.user_queue_len()).unwrap_or(i64::MAX));
        m.failed_peers.set(i64::try_from(self.failed.len()).unwrap_or(i64::MAX));
        let (_, user) = swim.queue_stats();
        sync_counter(&m.messages_pruned, user.pruned);
        sync_counter(&m.messages_sent.get_or_create(&metrics::update()), user.transmitted);
        sync_counter(
            &m.messages_sent_size.get_or_create(&metrics::update()),
            user.transmitted_bytes,
        );
        sync_counter(&m.pings_failures, swim.stats().probes_failed);
        {
            let mut stats = self.shared.stats.lock();
            stats.driver = self.driver.stats();
            stats.events_dropped = swim.delegate().dropped + swim.stats().events_dropped;
        }
        if swim.members_version() == self.members_version {
            return;
        }
        self.members_version = swim.members_version();
        let members: Vec<Member> = swim.members().cloned().collect();
        if swim.num_alive() > 1 {
            self.shared.seen_peers.store(true, Ordering::Relaxed);
        }
        m.members.set(i64::try_from(swim.num_alive()).unwrap_or(i64::MAX));
        m.position.set(
            i64::try_from(cluster::position(&members, self.config.swim.name.as_str(), false).index)
                .unwrap_or(i64::MAX),
        );
        *self.shared.members.write() = Arc::new(members);
    }
}

/// The wall clock, for expiry of replicated state.
pub(crate) fn wall_clock() -> UnixMillis {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// Bring a counter up to a running total kept elsewhere.
fn sync_counter(counter: &prometheus_client::metrics::counter::Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// The advertise address (Alertmanager `advertise.go`, memberlist `FinalAdvertiseAddr`):
/// explicit if given; else the bind address; else, bound to a wildcard, the first private IP
/// of this host (a public one only when allowed), with the bound port.
fn choose_advertise(config: &NodeConfig, bound: SocketAddr) -> Result<SocketAddr, NodeError> {
    if let Some(adv) = config.advertise {
        let port = if adv.port() == 0 { bound.port() } else { adv.port() };
        return Ok(SocketAddr::new(adv.ip(), port));
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map_err(NodeError::Io)?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback())
        .collect();
    let pick = addrs
        .iter()
        .find(|ip| is_private(ip))
        .or_else(|| addrs.iter().find(|_| config.allow_public_advertise));
    match pick {
        Some(ip) => Ok(SocketAddr::new(*ip, bound.port())),
        None => Err(NodeError::Advertise(
            "no private IP found, explicit advertise addr not provided".into(),
        )),
    }
}

/// RFC 1918, RFC 6598 (carrier-grade NAT) and RFC 4193 (unique local IPv6), as go-sockaddr's
/// `GetPrivateIP` counts them.
fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Alertmanager warns when it advertises an unroutable address but has routable peers.
fn warn_unroutable(advertise: SocketAddr, peers: &[SocketAddr]) {
    let unroutable = advertise.ip().is_unspecified() || advertise.ip().is_loopback();
    if unroutable && peers.iter().any(|p| !p.ip().is_loopback()) {
        log::warn!(
            "this node advertises itself on an unroutable address {advertise}; it will be unreachable \
             in the cluster; provide --cluster.advertise-address as a routable IP address or hostname"
        );
    }
}

/// Re-resolve the configured peers every refresh interval and hand the result to the loop.
fn spawn_resolver(
    config: &NodeConfig,
    own: SocketAddr,
    shared: &Arc<Shared>,
) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let peers = config.peers.clone();
    let interval = config.refresh_interval;
    let shared = Arc::clone(shared);
    let handle = std::thread::Builder::new().name("hearsay-resolve".into()).spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval) {
            let Ok(addrs) = peers::resolve(&peers, own) else { continue };
            if shared.send(Command::Resolved(addrs)).is_err() {
                return;
            }
        }
    })?;
    Ok((stop_tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_match_go_sockaddr() {
        for (ip, private) in [
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("8.8.8.8", false),
            ("fd00::1", true),
            ("2001:db8::1", false),
        ] {
            assert_eq!(is_private(&ip.parse().expect("literal")), private, "{ip}");
        }
    }
}
