//! A running peer: a [`Node`] owns one event-loop thread around a peer core, on memberlist
//! gossip or on Redis pub/sub in Grafana's layout — one type for both: readiness,
//! maintenance, metrics, host calls and shutdown exist once.
//!
//! Other threads talk to it through the handle: commands go in over crossbeam channels and
//! wake the loop through a mio `Waker` (only when it sleeps, so a burst of writes costs one
//! wake-up, not one per message); events come out through a bounded channel; the member list
//! and position are published as a snapshot after every change. What the peer decides —
//! settling, upkeep, the maintenance schedule, Grafana's Redis protocol — is the sans-IO core's
//! ([`crate::core::peer`]); the loop only moves bytes and hands jobs to two helper threads: the
//! worker (GC, snapshots, full states) and the resolver (DNS).

#![forbid(unsafe_code)]

mod event_loop;
mod inbox;
mod journal;
mod layout;
mod metrics;
mod peers;
mod resolver;
pub mod snapshot;
mod state_durations;
mod state_metrics;
pub(crate) mod states;
mod worker;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use mio::Waker;
use parking_lot::{Condvar, Mutex, RwLock};
use prometheus_client::registry::Registry;

pub use crate::core::cluster::HostRegistration;
use crate::core::cluster::{Cluster, Fanout, PubSubUpdate};
use crate::core::config::{ConfigError, SwimConfig};
use crate::core::peer::Position;
use crate::core::peer::gossip::{GossipPeer, Upkeep};
use crate::core::peer::redis::{RedisPeer, RedisSettings};
use crate::core::swim::{Member, MemberChange, Swim};
use crate::core::wire::{KeyringError, SecretKey};
use crate::core::{NodeName, UnixMillis};
use crate::net::{Clock, Driver, DriverError, DriverStats, TlsTransport};
use crate::redis::driver::RedisDriver;
use crate::redis::{Endpoint, TlsSetup};
use crate::tls::TlsClient;
use event_loop::{EventLoop, Transport};
use inbox::Inbox;
pub use layout::{LayoutError, NativeKind, NativeState, OrgId, StatesConfig};
use metrics::Metrics;
use state_metrics::StateMetrics;
pub use states::{
    ALERTMANAGER_STATES, NFLOG_KEY, SILENCES_KEY, StateError, States, alertmanager_states,
    alertmanager_states_with,
};

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Protocol settings. `swim.name` is the node's name on either transport;
    /// `swim.push_pull_interval` is also the Redis full-state push period (Grafana's
    /// `ha_push_pull_interval` serves both). `swim.advertise` is replaced at start by the
    /// address chosen from `bind` and `advertise` (see [`Node::start`]).
    pub swim: SwimConfig,
    /// Address to bind UDP and TCP on. Alertmanager `--cluster.listen-address` (default
    /// `0.0.0.0:9094`). Port 0 picks a free port. Unused on Redis.
    pub bind: SocketAddr,
    /// Address to advertise. Alertmanager `--cluster.advertise-address`. Default: the bind
    /// address, or when bound to a wildcard, the first private IP of this host with the bound
    /// port. Unused on Redis.
    pub advertise: Option<SocketAddr>,
    /// Allow advertising a public IP when no private one exists. Alertmanager
    /// `--cluster.allow-insecure-public-advertise-address-discovery` (false).
    pub allow_public_advertise: bool,
    /// Peers to join: `host:port`, DNS names allowed (every A/AAAA record is a peer).
    /// Alertmanager `--cluster.peer`, repeatable. Unused on Redis.
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
    /// count held still for three polls (every 10 × gossip interval; every 2 s on Redis), or
    /// after this long. Alertmanager `--cluster.settle-timeout` (60 s); Grafana's Redis peer
    /// uses a fixed 30 s.
    pub settle_timeout: Duration,
    /// How often expired notification-log entries and silences are collected — always, with
    /// or without snapshots — and the snapshots written when configured. Alertmanager
    /// `--data.maintenance-interval` (15 min); zero never (a host that collects itself).
    pub maintenance_interval: Duration,
    /// Run on Redis pub/sub in Grafana's layout instead of gossip; the gossip-only fields
    /// above are then unused.
    pub redis: Option<RedisConfig>,
    /// Gossip over Alertmanager's TLS transport instead of UDP and plain TCP: every packet and
    /// stream travels in TLS over TCP on the gossip port, no UDP socket is bound, and only
    /// peers configured the same way (and, with mutual TLS, holding a certificate from the
    /// client CA) can be members. Alertmanager `--cluster.tls-config` (see
    /// [`ClusterTls::load`](crate::tls::ClusterTls::load)); default `None`, plain memberlist.
    /// The certificate files are read when the node starts. Unused on Redis.
    pub tls: Option<crate::tls::ClusterTls>,
}

/// Redis mode: Grafana's `ha_redis_*` keys. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS
    /// (`ha_redis_address`). A host name is resolved off the loop, again at every reconnect.
    /// Credentials and database in the URL apply unless the fields below say otherwise.
    pub url: String,
    /// The ACL user to `AUTH` as (`ha_redis_username`). `None` (the default): the URL's, if
    /// any; `Some("")` clears it (then `AUTH` names no user, Redis' `default` one).
    pub username: Option<String>,
    /// The password to `AUTH` with (`ha_redis_password`). `None` (the default): the URL's, if
    /// any; `Some("")` clears it. Without a password no `AUTH` is sent.
    pub password: Option<String>,
    /// The logical database to `SELECT` on the command connection (`ha_redis_db`; pub/sub
    /// ignores databases). `None` (the default): the URL's path, else 0. Must not be
    /// negative; a database the server lacks is refused by Redis at connect, and retried.
    pub db: Option<i64>,
    /// TLS to Redis (`ha_redis_tls_enabled` and the `ha_redis_tls_*` keys): `Some` turns it
    /// on, also for a `redis://` URL; a `rediss://` URL without it uses the defaults (system
    /// roots, the URL's host as server name). Default `None`. The server name defaults to the
    /// URL's host, a name or an IP address, as Go's does.
    pub tls: Option<TlsClient>,
    /// `ha_redis_prefix`; a `:` is appended unless empty.
    pub prefix: String,
    /// Largest full-state message (default 1 MiB, at most 16 MiB): a larger full state travels
    /// as several, each merging on its own, so no subscriber's output buffer nears Redis'
    /// 32 MB pub/sub limit.
    pub full_state_chunk_bytes: usize,
    /// Redis Sentinel (`ha_redis_sentinel_mode_enabled`): `Some` learns the master from the
    /// Sentinels and follows it through failovers; the URL's scheme, credentials and database
    /// then apply to the master, and its host and port are unused. Default `None`: the
    /// URL's server.
    pub sentinel: Option<RedisSentinel>,
    /// Redis Cluster (`ha_redis_cluster_mode_enabled`): `Some` reads the slot map from the
    /// nodes listed and sends each key to the master owning its slot, following `MOVED` and
    /// `ASK` redirections; the URL's scheme and credentials then apply to every node, its
    /// host and port are unused and its database must be 0 (a cluster has no other).
    /// Default `None`: the URL's server. Exclusive with `sentinel`.
    pub cluster: Option<RedisCluster>,
}

/// Where a Redis Cluster is (Grafana's `ha_redis_cluster_mode_enabled` with
/// `ha_redis_address` as a comma list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCluster {
    /// `host:port` of cluster nodes to read the slot map from, tried in turn; 1 to
    /// [`MAX_CLUSTER_SEEDS`]. The masters the map names are connected to as it names them.
    pub addrs: Vec<String>,
}

/// Most seed addresses a [`RedisCluster`] may list.
pub const MAX_CLUSTER_SEEDS: usize = crate::core::peer::redis::MAX_SEEDS;

impl RedisCluster {
    /// The core's settings, or why these cannot be used.
    fn settings(&self) -> Result<crate::core::peer::redis::ClusterSettings, NodeError> {
        host_ports("cluster", &self.addrs, MAX_CLUSTER_SEEDS)?;
        Ok(crate::core::peer::redis::ClusterSettings { seeds: self.addrs.clone() })
    }
}

/// Refuse a list of `host:port` addresses that is empty, longer than `max`, or holds
/// anything else.
fn host_ports(what: &str, addrs: &[String], max: usize) -> Result<(), NodeError> {
    let refuse = |why: String| Err(NodeError::Redis(format!("{what}: {why}")));
    if !(1..=max).contains(&addrs.len()) {
        return refuse(format!("give 1 to {max} addresses"));
    }
    for addr in addrs {
        let port = addr.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p != 0) {
            return refuse(format!("{addr:?} is no host:port"));
        }
    }
    Ok(())
}

/// Where the Sentinels are (Grafana's `ha_redis_sentinel_*` keys). `Debug` leaves the password
/// out.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSentinel {
    /// The master's name as the Sentinels monitor it (`ha_redis_sentinel_master_name`;
    /// required, not empty).
    pub master_name: String,
    /// The Sentinels' `host:port` addresses (`ha_redis_address`, a comma list), tried in turn;
    /// 1 to [`MAX_SENTINELS`]. A host name is resolved off the loop.
    pub addrs: Vec<String>,
    /// ACL user for the Sentinels (`ha_redis_sentinel_username`; default none).
    pub username: Option<String>,
    /// Password for the Sentinels (`ha_redis_sentinel_password`; default none: no `AUTH`).
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("master_name", &self.master_name)
            .field("addrs", &self.addrs)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Most Sentinel addresses a [`RedisSentinel`] may list.
pub const MAX_SENTINELS: usize = 32;

impl RedisSentinel {
    /// The core's settings, or why these cannot be used.
    fn settings(&self) -> Result<crate::core::peer::redis::SentinelSettings, NodeError> {
        let refuse = |why: String| Err(NodeError::Redis(format!("sentinel: {why}")));
        if self.master_name.is_empty() {
            return refuse("the master name is empty (ha_redis_sentinel_master_name)".into());
        }
        host_ports("sentinel", &self.addrs, MAX_SENTINELS)?;
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        Ok(crate::core::peer::redis::SentinelSettings {
            master_name: self.master_name.clone(),
            addrs: self.addrs.clone(),
            username: given(&self.username),
            password: given(&self.password),
        })
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A password in the URL is its user-info: show the URL without it.
        let url = match self.url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => {
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!("{scheme}://<redacted>@{host}")
            }
            _ => self.url.clone(),
        };
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("prefix", &self.prefix)
            .field("full_state_chunk_bytes", &self.full_state_chunk_bytes)
            .field("sentinel", &self.sentinel)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Largest allowed [`RedisConfig::full_state_chunk_bytes`].
pub const MAX_FULL_STATE_CHUNK_BYTES: usize = 16 << 20;

impl RedisConfig {
    /// Grafana's layout on the Redis at `url`, under `prefix`.
    pub fn grafana(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            username: None,
            password: None,
            db: None,
            tls: None,
            prefix: prefix.to_owned(),
            full_state_chunk_bytes: 1 << 20,
            sentinel: None,
            cluster: None,
        }
    }
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
            maintenance_interval: Duration::from_secs(15 * 60),
            redis: None,
            tls: None,
        }
    }

    /// Grafana's Redis peer: named `name`, or `peer-<UUIDv4>` as Grafana names it (new on
    /// every start), on `redis`, with Grafana's 30 s settle timeout and 60 s full-state push.
    pub fn grafana_redis(name: Option<&str>, redis: RedisConfig) -> Self {
        let name = name.map_or_else(
            || format!("peer-{}", uuid::Uuid::from_u128(rand::random()).hyphenated()),
            str::to_owned,
        );
        let unused = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = Self::alertmanager(Some(&name), unused, Vec::new());
        config.settle_timeout = crate::core::peer::redis::SETTLE_TIMEOUT;
        config.redis = Some(redis);
        config
    }
}

/// Where the snapshots of a node's states are written: after every maintenance (see
/// [`NodeConfig::maintenance_interval`]) and once more at [`Node::shutdown`].
#[derive(Clone, Debug)]
pub struct Snapshots {
    /// Directory of the files. Alertmanager `--storage.path`.
    pub dir: std::path::PathBuf,
    /// `(state key, file name)` pairs, e.g. `("nfl", "nflog")`, `("sil", "silences")`.
    pub files: Vec<(String, String)>,
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
    /// A member joined, changed its metadata, left, or was declared dead (gossip).
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
    /// A user message arrived (gossip or reliable stream) on a node without states.
    Message(Vec<u8>),
    /// A maintenance run (GC and snapshot) finished for a state.
    Maintained(Maintenance),
    /// A peer's user state arrived in a push/pull (`join` when part of a join) on a node
    /// without states.
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
    /// The Redis settings were refused; nothing started.
    #[error("invalid Redis configuration: {0}")]
    Redis(String),
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
    /// The call does not exist on this node's transport; nothing changed.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The operation did not finish in time (it may still finish later).
    #[error("timed out")]
    Timeout,
    /// The node has shut down.
    #[error("node is shut down")]
    Closed,
    /// A keyring change was refused (bad key, unknown key, the primary, no encryption); the
    /// keyring is unchanged.
    #[error("keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// The cluster TLS settings or their files were refused; nothing started.
    #[error("cluster TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Counters of the node's own plumbing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Events dropped because the host did not drain [`Node::events`].
    pub events_dropped: u64,
    /// Socket-level counters (gossip).
    pub driver: DriverStats,
    /// Bytes written to Redis (Redis mode).
    pub redis_bytes_sent: u64,
    /// Bytes read from Redis (Redis mode).
    pub redis_bytes_received: u64,
    /// Turns of the event loop so far.
    pub turns: u64,
}

/// A visible member: its name (a Redis peer's heartbeat key) and, on gossip, its address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Visible {
    /// The member's name; on Redis its heartbeat key (prefix included), as positions use it.
    pub name: String,
    /// Its gossip address; `None` on Redis.
    pub addr: Option<SocketAddr>,
}

/// What the loop is asked to do.
enum Command {
    Join {
        addrs: Vec<SocketAddr>,
        reply: Sender<usize>,
    },
    Resolved(Vec<SocketAddr>),
    RedisResolved(String, Result<Vec<SocketAddr>, String>),
    SendReliable {
        to: SocketAddr,
        msg: Vec<u8>,
    },
    SendBestEffort {
        to: SocketAddr,
        msg: Vec<u8>,
    },
    Leave {
        reply: Sender<()>,
    },
    /// The worker built the full state the Redis core asked for.
    FullState(Vec<Vec<u8>>),
    /// Rotate or list the keyring; the reply holds the keys installed afterwards.
    Keyring {
        op: KeyOp,
        reply: Sender<Result<Vec<SecretKey>, KeyringError>>,
    },
    Shutdown,
}

/// A keyring change, as memberlist's `Keyring` methods.
enum KeyOp {
    Add(SecretKey),
    Use(SecretKey),
    Remove(SecretKey),
    List,
}

/// How long a keyring call waits for the loop, which answers on its next turn; only a loop
/// that is stuck or gone makes it wait this long.
const KEYRING_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the loop publishes for the handle after every change.
#[derive(Debug, Clone)]
struct View {
    members: Arc<Vec<Member>>,
    visible: Arc<Vec<Visible>>,
    position: Position,
}

/// State shared by the handle, the loop and the helper threads.
struct Shared {
    commands: Sender<Command>,
    /// Raw gossip broadcasts (nodes without states).
    broadcasts: Sender<Vec<u8>>,
    /// Redis mode: updates the host wrote, for the loop to publish; bounded, and a write that
    /// finds no room is refused before it changes anything.
    outbound: Sender<PubSubUpdate>,
    waker: Arc<Waker>,
    /// Set by the loop just before it sleeps; a sender that clears it wakes the loop.
    asleep: AtomicBool,
    view: RwLock<View>,
    /// The host's user state for push/pulls; the loop's inbox reads the same value.
    local_state: Arc<Mutex<Vec<u8>>>,
    registry: Mutex<Registry>,
    stats: Mutex<NodeStats>,
    /// The replicated states. Host threads read and write them under this lock; the loop
    /// only ever tries it.
    cluster: Option<Arc<Mutex<Cluster>>>,
    /// Maintenance reports dropped because the host did not drain events.
    maintenance_events_dropped: Arc<AtomicU64>,
    metrics: Metrics,
    /// Settled (one-shot), with its condition variable for [`Node::wait_ready`].
    ready: Mutex<bool>,
    ready_changed: Condvar,
    /// [`Cluster::opaque_arrivals`] as last seen by the loop, for [`Node::wait_states`].
    arrivals: Arrivals,
    /// With a storage directory: the local writes of the states that have snapshot files,
    /// appended before the write returns. Locked only with `cluster`'s lock held.
    journal: Option<Mutex<journal::Journal>>,
    /// When a journal failure was last logged (at most once a minute).
    journal_logged: Mutex<Option<Instant>>,
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

    fn set_ready(&self) {
        *self.ready.lock() = true;
        self.ready_changed.notify_all();
    }

    /// A write the transport cannot carry was refused (Grafana's `buffer_overflow`).
    fn count_overflow(&self) {
        self.metrics
            .publish_failures
            .get_or_create(&vec![("msg_type", "update"), ("reason", "buffer_overflow")])
            .inc();
    }
}

/// Redis mode: updates the host wrote and the loop has not taken yet.
const OUTBOUND_LEN: usize = 65_536;
/// Room a host write needs in the outbound queue: a silence update publishes the expired
/// predecessor and the new version.
const WRITE_RESERVE: usize = 2;

/// Which transport a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// memberlist gossip.
    Gossip,
    /// Redis pub/sub in Grafana's layout.
    Redis,
}

/// A running peer. Every method may be called from any thread. Dropping it shuts it down
/// (without leaving: call [`Node::leave`] first for a graceful exit on gossip).
pub struct Node {
    shared: Arc<Shared>,
    events: Receiver<NodeEvent>,
    name: NodeName,
    kind: TransportKind,
    local: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
    max_broadcast: usize,
    thread: Option<JoinHandle<()>>,
    worker: Option<worker::WorkerHandle>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("transport", &self.kind)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Bind, start the loop thread, and start joining `config.peers` (in the background: use
    /// [`Node::join`] to wait for a join). A node without states carries raw user messages
    /// ([`Node::broadcast`], [`NodeEvent::Message`]); gossip only.
    pub fn start(config: NodeConfig) -> Result<Self, NodeError> {
        Self::launch(config, None, None)
    }

    /// Start a node that replicates `cluster`'s states (register them first, so the first
    /// exchange carries them), on gossip or — with [`NodeConfig::redis`] — on Redis. Expired
    /// elements are collected every maintenance interval; with `snapshots`, the states are
    /// also written to disk then, and once more at [`Node::shutdown`].
    pub fn start_cluster(
        config: NodeConfig,
        cluster: Cluster,
        snapshots: Option<Snapshots>,
    ) -> Result<Self, NodeError> {
        Self::launch(config, Some(cluster), snapshots)
    }

    fn launch(
        config: NodeConfig,
        mut cluster: Option<Cluster>,
        snapshots: Option<Snapshots>,
    ) -> Result<Self, NodeError> {
        config.swim.validate()?;
        let kind =
            if config.redis.is_some() { TransportKind::Redis } else { TransportKind::Gossip };
        if kind == TransportKind::Redis && cluster.is_none() {
            return Err(NodeError::Unsupported("a Redis peer carries replicated states only"));
        }
        if let Some(c) = cluster.as_mut() {
            c.set_fanout(if kind == TransportKind::Redis {
                Fanout::PubSub
            } else {
                Fanout::Gossip
            });
        }
        let journal = match (&snapshots, cluster.as_mut()) {
            (Some(s), Some(c)) => {
                std::fs::create_dir_all(&s.dir)?;
                c.keep_journal();
                Some(Mutex::new(journal::Journal::open(&s.dir, &s.files)?))
            }
            _ => None,
        };
        let cluster = cluster.map(|c| Arc::new(Mutex::new(c)));
        let (cmd_tx, cmd_rx) = bounded(1024);
        let (bcast_tx, bcast_rx) = bounded(config.swim.user_queue_len);
        let (out_tx, out_rx) = bounded(OUTBOUND_LEN);
        let (event_tx, event_rx) = bounded(config.event_queue_len.max(1));
        let mut registry = Registry::default();
        let mut metrics = Metrics::new(&mut registry, config.swim.name.as_str(), kind);
        if config.tls.is_some() && kind == TransportKind::Gossip {
            metrics.tls = Some(metrics::TlsMetrics::new(&mut registry));
        }
        let records = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        if let Some(cluster) = &cluster {
            let c = cluster.lock();
            for key in c.keys() {
                metrics.durations.init(metrics::StateKind::of(&c, key), key);
            }
            drop(c);
            let collector =
                StateMetrics { cluster: Arc::clone(cluster), maintenance: Arc::clone(&records) };
            registry.register_collector(Box::new(collector));
        }
        let local_state = Arc::new(Mutex::new(Vec::new()));
        let inbox = Inbox::new(
            event_tx.clone(),
            Arc::clone(&local_state),
            metrics.clone(),
            cluster.clone(),
        );
        let seed = config.seed.unwrap_or_else(rand::random);
        let started = match &config.redis {
            None => start_gossip(&config, inbox, seed)?,
            Some(redis) => start_redis(&config, redis, inbox, cluster.as_ref(), seed)?,
        };
        let shared = Arc::new(Shared {
            commands: cmd_tx,
            broadcasts: bcast_tx,
            outbound: out_tx,
            waker: started.transport.waker(),
            asleep: AtomicBool::new(false),
            view: RwLock::new(started.view.clone()),
            local_state,
            registry: Mutex::new(registry),
            stats: Mutex::new(NodeStats::default()),
            cluster: cluster.clone(),
            maintenance_events_dropped: Arc::default(),
            metrics: metrics.clone(),
            ready: Mutex::new(false),
            ready_changed: Condvar::new(),
            arrivals: Arrivals::default(),
            journal,
            journal_logged: Mutex::new(None),
        });
        let worker = cluster
            .map(|cluster| {
                worker::Worker {
                    cluster,
                    snapshots,
                    metrics: metrics.clone(),
                    records,
                    events: event_tx,
                    events_dropped: Arc::clone(&shared.maintenance_events_dropped),
                }
                .spawn(Arc::clone(&shared))
            })
            .transpose()?;
        let resolver = resolver::Resolver::spawn(Arc::clone(&shared))?;
        let name = config.swim.name.clone();
        let event_loop = EventLoop::new(
            started.transport,
            Arc::clone(&shared),
            event_loop::Channels { commands: cmd_rx, broadcasts: bcast_rx, outbound: out_rx },
            metrics,
            worker.as_ref().map(|w| w.jobs.clone()),
            resolver,
            event_loop::Settings {
                peers: config.peers.clone(),
                own: started.advertise,
                chunk_bytes: config.redis.as_ref().map_or(0, |r| r.full_state_chunk_bytes),
            },
        );
        let thread = std::thread::Builder::new()
            .name(format!("hearsay-{name}"))
            .spawn(move || event_loop.run())?;
        Ok(Self {
            shared,
            events: event_rx,
            name,
            kind,
            local: started.local,
            advertise: started.advertise,
            max_broadcast: started.max_broadcast,
            thread: Some(thread),
            worker,
        })
    }

    /// Push/pull with each peer (`host:port`, DNS names expand to every address) and wait up to
    /// `timeout` for the outcome. Returns how many answered; an error if none did. Gossip only.
    pub fn join(&self, peers: &[String], timeout: Duration) -> Result<usize, NodeError> {
        let own = self
            .advertise
            .ok_or(NodeError::Unsupported("join: a Redis peer finds its members in Redis"))?;
        let addrs = peers::resolve(peers, own)?;
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

    /// Gossip `msg` to every member (a node without states). Never blocks: a full queue is an
    /// error, and the caller decides whether to retry, drop, or slow down. Gossip only.
    pub fn broadcast(&self, msg: Vec<u8>) -> Result<(), NodeError> {
        self.gossip("broadcast: Redis peers carry replicated states only")?;
        if msg.len() > self.max_broadcast {
            return Err(NodeError::TooLarge { len: msg.len(), max: self.max_broadcast });
        }
        match self.shared.broadcasts.try_send(msg) {
            Ok(()) => {
                self.shared.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.shared.count_overflow();
                Err(NodeError::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => Err(NodeError::Closed),
        }
    }

    /// Install `key` for decryption (memberlist `Keyring.AddKey`); it does not seal until
    /// [`Self::use_key`]. Adding an installed key changes nothing. Returns the installed keys,
    /// primary first. Gossip only; the node must have been started with secret keys.
    pub fn add_key(&self, key: SecretKey) -> Result<Vec<SecretKey>, NodeError> {
        self.keyring(KeyOp::Add(key))
    }

    /// Make an installed key the primary, the one everything is sealed with from now on
    /// (memberlist `Keyring.UseKey`). Returns the installed keys, primary first.
    pub fn use_key(&self, key: SecretKey) -> Result<Vec<SecretKey>, NodeError> {
        self.keyring(KeyOp::Use(key))
    }

    /// Uninstall a key (memberlist `Keyring.RemoveKey`); the primary is refused, a key not
    /// installed is no error. Returns the installed keys, primary first.
    pub fn remove_key(&self, key: SecretKey) -> Result<Vec<SecretKey>, NodeError> {
        self.keyring(KeyOp::Remove(key))
    }

    /// The installed keys, primary first (memberlist `Keyring.GetKeys`).
    pub fn keys(&self) -> Result<Vec<SecretKey>, NodeError> {
        self.keyring(KeyOp::List)
    }

    fn keyring(&self, op: KeyOp) -> Result<Vec<SecretKey>, NodeError> {
        self.gossip("keyring: Redis peers do not speak memberlist")?;
        let (reply, wait) = bounded(1);
        self.shared.send(Command::Keyring { op, reply })?;
        match wait.recv_timeout(KEYRING_REPLY_TIMEOUT) {
            Ok(result) => Ok(result?),
            Err(RecvTimeoutError::Timeout) => Err(NodeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(NodeError::Closed),
        }
    }

    /// Send `msg` to one member over TCP (memberlist `SendReliable`). Gossip only.
    pub fn send_reliable(&self, member: &str, msg: Vec<u8>) -> Result<(), NodeError> {
        let to = self.member_addr(member)?;
        self.shared.send(Command::SendReliable { to, msg })
    }

    /// Send `msg` to one member in a single UDP packet (memberlist `SendBestEffort`).
    pub fn send_best_effort(&self, member: &str, msg: Vec<u8>) -> Result<(), NodeError> {
        let to = self.member_addr(member)?;
        self.shared.send(Command::SendBestEffort { to, msg })
    }

    /// Set the user state this node sends in push/pulls (memberlist `Delegate.LocalState`;
    /// a node without states).
    pub fn set_local_state(&self, state: Vec<u8>) {
        *self.shared.local_state.lock() = state;
    }

    /// Run `f` on the replicated states, then let the loop send what `f` queued with
    /// [`Cluster::publish`] or [`Cluster::broadcast`]. `None` for a node started without
    /// states. What the transport has no room for is dropped and counted
    /// (`alertmanager_cluster_messages_publish_failures_total{reason="buffer_overflow"}`);
    /// the host calls of [`States`] refuse such a write before making it instead.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> Option<R> {
        let cluster = self.shared.cluster.as_ref()?;
        let mut c = cluster.lock();
        let result = f(&mut c);
        self.journal(&mut c);
        self.hand_over(&mut c);
        drop(c);
        self.shared.wake();
        Some(result)
    }

    /// Run `f` on the states if the transport has room for what a write publishes; else
    /// refuse, changing nothing.
    fn write<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> Result<R, StateError> {
        let cluster = self.shared.cluster.as_ref().ok_or(StateError::NoCluster)?;
        let mut c = cluster.lock();
        let room = match self.kind {
            TransportKind::Gossip => c.outgoing_room(),
            TransportKind::Redis => {
                OUTBOUND_LEN.saturating_sub(self.shared.outbound.len()).min(c.outgoing_room())
            }
        };
        if room < WRITE_RESERVE {
            drop(c);
            self.shared.count_overflow();
            return Err(StateError::QueueFull);
        }
        let result = f(&mut c);
        self.journal(&mut c);
        self.hand_over(&mut c);
        drop(c);
        self.shared.wake();
        Ok(result)
    }

    /// Append what a write published to the journal, under the states' lock so a maintenance
    /// rotating it sees every write either in its snapshot or in the next segment. A failed
    /// append does not undo the write — it is in memory and on its way to every peer — but
    /// is counted and logged: this process would lose it if it died before the next snapshot.
    fn journal(&self, c: &mut Cluster) {
        let Some(journal) = &self.shared.journal else { return };
        let writes = c.take_journal();
        if writes.is_empty() {
            return;
        }
        let mut journal = journal.lock();
        let mut full = false;
        for (key, data) in &writes {
            match journal.append(key, data) {
                Ok(journal::Appended::Written { full: f }) => {
                    self.shared.metrics.journal_appends.inc();
                    full |= f;
                }
                Ok(journal::Appended::NotJournaled) => {}
                Err(e) => {
                    self.shared.metrics.journal_failures.inc();
                    let mut logged = self.shared.journal_logged.lock();
                    if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        *logged = Some(Instant::now());
                        log::error!(
                            "the journal could not append a write of {key:?}: {e} (the write \
                             replicated, but is not durable here until the next snapshot; \
                             hearsay_journal_failures_total counts them; logged at most once \
                             a minute)"
                        );
                    }
                }
            }
        }
        // A segment past its bound: snapshot early so the journal can be let go. A full job
        // queue means a maintenance is coming anyway.
        if full && let Some(worker) = &self.worker {
            let _ = worker.jobs.try_send(worker::Job::Maintain);
        }
    }

    /// Redis mode: move what the states queued into the loop's outbound queue while the lock
    /// is held, so two writes to one key leave in the order they were made.
    fn hand_over(&self, c: &mut Cluster) {
        if self.kind != TransportKind::Redis {
            return;
        }
        for update in c.take_pubsub() {
            if self.shared.outbound.try_send(update).is_err() {
                self.shared.count_overflow();
            }
        }
    }

    /// Every member we know on gossip, ourselves and dead/left ones not yet reaped included;
    /// empty on Redis (see [`Node::visible_members`]).
    pub fn members(&self) -> Arc<Vec<Member>> {
        Arc::clone(&self.shared.view.read().members)
    }

    /// The members positions are computed over, sorted by name: alive and suspect gossip
    /// members, or the live Redis heartbeat keys.
    pub fn visible_members(&self) -> Arc<Vec<Visible>> {
        Arc::clone(&self.shared.view.read().visible)
    }

    /// Our position among the visible members sorted by name (Alertmanager and Grafana
    /// `Position()`): index 0 notifies first. `blind` tells "first" from "cut off": alone
    /// although peers are configured or were seen (gossip), or our heartbeat not seen (Redis).
    pub fn position(&self) -> Position {
        self.shared.view.read().position
    }

    /// Whether the node has settled: the member count held still for three polls after
    /// start, or the settle timeout passed. Alertmanager and Grafana wait for this before the
    /// first notification (`WaitReady`). One-shot: once ready, always ready.
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

    /// Gossip that we leave and wait up to `timeout` until the message has gone out. A Redis
    /// peer leaves at shutdown (it deletes its heartbeat key, as Grafana's does): nothing to do.
    pub fn leave(&self, timeout: Duration) -> Result<(), NodeError> {
        if self.kind == TransportKind::Redis {
            return Ok(());
        }
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

    /// The transport.
    pub fn transport(&self) -> TransportKind {
        self.kind
    }

    /// The gossip address bound (the unspecified address on Redis).
    pub fn local_addr(&self) -> SocketAddr {
        self.local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The gossip address advertised to peers (the unspecified address on Redis; see
    /// [`Node::address`]).
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The gossip address advertised to peers; an error on Redis.
    pub fn address(&self) -> Result<SocketAddr, NodeError> {
        self.advertise.ok_or(NodeError::Unsupported("a Redis peer has no gossip address"))
    }

    /// Counters of the node's plumbing.
    pub fn stats(&self) -> NodeStats {
        let mut stats = *self.shared.stats.lock();
        stats.events_dropped += self.shared.maintenance_events_dropped.load(Ordering::Relaxed);
        stats
    }

    /// Metrics in the OpenMetrics text format, under Alertmanager's names (on Redis with the
    /// meanings Grafana's Redis peer gives them).
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.shared.registry.lock())
    }

    /// Stop the loop and wait for it — on Redis after a last full state and the deletion of
    /// the heartbeat key (at most 5 s) — then run a last maintenance. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.shared.send(Command::Shutdown);
            let _ = thread.join();
        }
        if let Some(worker) = self.worker.take() {
            drop(worker.jobs);
            let _ = worker.thread.join();
        }
    }

    /// `Unsupported(what)` on Redis.
    fn gossip(&self, what: &'static str) -> Result<(), NodeError> {
        match self.kind {
            TransportKind::Gossip => Ok(()),
            TransportKind::Redis => Err(NodeError::Unsupported(what)),
        }
    }

    fn member_addr(&self, name: &str) -> Result<SocketAddr, NodeError> {
        self.gossip("a Redis peer sends to every member through Redis")?;
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

/// What starting a transport produced.
struct Started {
    transport: Transport,
    /// What the handle shows until the loop's first turn.
    view: View,
    local: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
    max_broadcast: usize,
}

/// 32 bytes of OS entropy for the keyring's nonce generator, drawn on every start and never
/// from the configured `seed`: nodes given the same seed (tests, replays) and the same key
/// must still never repeat a GCM nonce.
fn nonce_seed() -> Result<[u8; 32], NodeError> {
    use rand::TryRng;
    let mut seed = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut seed).map_err(|e| {
        NodeError::Io(std::io::Error::other(format!("no OS entropy for GCM nonces: {e}")))
    })?;
    Ok(seed)
}

/// Bind the gossip port and build the gossip core, joining the resolved configured peers.
fn start_gossip(config: &NodeConfig, inbox: Inbox, seed: u64) -> Result<Started, NodeError> {
    let upkeep = Upkeep {
        reconnect_interval: config.reconnect_interval,
        reconnect_timeout: config.reconnect_timeout,
        refresh_interval: config.refresh_interval,
        settle_timeout: config.settle_timeout,
        maintenance_interval: config.maintenance_interval,
        peers_configured: !config.peers.is_empty(),
    };
    let mut advertise = None;
    let tls = config.tls.as_ref().map(TlsTransport::new).transpose()?;
    let make_core = |bound, now| {
        let adv = choose_advertise(config, bound)?;
        advertise = Some(adv);
        let initial = peers::resolve(&config.peers, adv)?;
        warn_unroutable(adv, &initial);
        let swim = SwimConfig { advertise: adv, ..config.swim.clone() };
        let swim = Swim::with_nonce_seed(swim, inbox, seed, nonce_seed()?, now)?;
        Ok::<_, NodeError>(GossipPeer::new(swim, upkeep, now, &initial))
    };
    let driver = match tls {
        None => Driver::bind(config.bind, Clock::new(), make_core),
        Some(tls) => Driver::bind_tls(config.bind, Clock::new(), tls, make_core),
    }
    .map_err(|e| match e {
        DriverError::Io(e) => NodeError::Io(e),
        DriverError::Core(e) => e,
    })?;
    let max_broadcast = driver.peer().swim().config().packet_budget.saturating_sub(5);
    let members: Vec<Member> = driver.peer().swim().members().cloned().collect();
    let visible = members
        .iter()
        .map(|m| Visible { name: m.name.as_str().to_owned(), addr: Some(m.addr) })
        .collect();
    let view = View {
        members: Arc::new(members),
        visible: Arc::new(visible),
        position: driver.peer().position(),
    };
    Ok(Started {
        view,
        local: Some(driver.local_addr()),
        advertise,
        max_broadcast,
        transport: Transport::Gossip(driver),
    })
}

/// Build the Redis core; it connects from the loop.
fn start_redis(
    config: &NodeConfig,
    redis: &RedisConfig,
    inbox: Inbox,
    cluster: Option<&Arc<Mutex<Cluster>>>,
    seed: u64,
) -> Result<Started, NodeError> {
    if !(1..=MAX_FULL_STATE_CHUNK_BYTES).contains(&redis.full_state_chunk_bytes) {
        return Err(NodeError::Redis(format!(
            "full_state_chunk_bytes must be in 1..={MAX_FULL_STATE_CHUNK_BYTES}"
        )));
    }
    let mut endpoint = Endpoint::parse(&redis.url).map_err(NodeError::Redis)?;
    endpoint.overlay(redis)?;
    let tls = redis_tls(redis, &endpoint)?;
    let mut settings = RedisSettings {
        push_pull_interval: config.swim.push_pull_interval,
        settle_timeout: config.settle_timeout,
        maintenance_interval: config.maintenance_interval,
        full_state_chunk_bytes: redis.full_state_chunk_bytes,
        ..RedisSettings::grafana(config.swim.name.as_str(), &redis.prefix)
    };
    endpoint.apply(&mut settings);
    settings.sentinel = redis.sentinel.as_ref().map(RedisSentinel::settings).transpose()?;
    settings.cluster = redis.cluster.as_ref().map(RedisCluster::settings).transpose()?;
    if settings.cluster.is_some() {
        if settings.sentinel.is_some() {
            return Err(NodeError::Redis(
                "Redis Cluster and Redis Sentinel are mutually exclusive".into(),
            ));
        }
        if settings.db != 0 {
            return Err(NodeError::Redis(format!(
                "cluster: a Redis Cluster has database 0 only (db {} given)",
                settings.db
            )));
        }
    }
    let keys: Vec<String> =
        cluster.map(|c| c.lock().keys().map(str::to_owned).collect()).unwrap_or_default();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let clock = Clock::new();
    let peer = RedisPeer::new(settings, &keys, clock.now(), clock.unix(), seed);
    let driver = RedisDriver::new(peer, endpoint.target, tls, clock)?;
    // Blind until our own heartbeat is read back.
    let view = View {
        members: Arc::new(Vec::new()),
        visible: Arc::new(Vec::new()),
        position: driver.peer().position(),
    };
    Ok(Started {
        view,
        transport: Transport::Redis { driver, inbox },
        local: None,
        advertise: None,
        max_broadcast: 0,
    })
}

impl Endpoint {
    /// The explicit credentials and database over the URL's (Grafana's separate keys).
    fn overlay(&mut self, redis: &RedisConfig) -> Result<(), NodeError> {
        let given =
            |field: &Option<String>| field.clone().map(|v| Some(v).filter(|v| !v.is_empty()));
        if let Some(username) = given(&redis.username) {
            self.username = username;
        }
        if let Some(password) = given(&redis.password) {
            self.password = password;
        }
        if let Some(db) = redis.db {
            if db < 0 {
                return Err(NodeError::Redis(format!("db {db} is negative")));
            }
            self.db = db;
        }
        Ok(())
    }
}

/// The TLS configuration of a Redis node, read now (certificate files), or `None` for plain
/// TCP. A setting that cannot be used fails the start, as Grafana's peer does.
fn redis_tls(redis: &RedisConfig, endpoint: &Endpoint) -> Result<Option<TlsSetup>, NodeError> {
    let tls = match (&redis.tls, endpoint.tls) {
        (Some(tls), _) => tls.clone(),
        (None, true) => TlsClient::default(),
        (None, false) => return Ok(None),
    };
    let refused = |e: crate::tls::TlsError| NodeError::Redis(format!("TLS: {e}"));
    let config = tls.build().map_err(refused)?;
    let name = tls.server_name(&endpoint.host).map_err(refused)?;
    Ok(Some(TlsSetup { config, name }))
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

    #[test]
    fn redis_passwords_stay_out_of_debug_output() {
        let config = RedisConfig {
            password: Some("explicit-secret".into()),
            ..RedisConfig::grafana("redis://alice:url-secret@redis.example:6379/2", "grafana")
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("redis://<redacted>@redis.example:6379/2"), "{shown}");
        let plain = format!("{:?}", RedisConfig::grafana("redis://127.0.0.1:6379", ""));
        assert!(plain.contains("redis://127.0.0.1:6379") && plain.contains("password: None"));
    }

    #[test]
    fn explicit_credentials_and_database_override_the_urls() {
        let mut endpoint = Endpoint::parse("redis://u:p@127.0.0.1:6379/2").expect("valid");
        let keep = RedisConfig::grafana("", "");
        endpoint.overlay(&keep).expect("nothing to change");
        let url = (endpoint.username.clone(), endpoint.password.clone(), endpoint.db);
        assert_eq!(url, (Some("u".into()), Some("p".into()), 2));
        let clear = RedisConfig {
            username: Some(String::new()),
            password: Some("pw".into()),
            db: Some(0),
            ..keep.clone()
        };
        endpoint.overlay(&clear).expect("valid");
        assert_eq!(
            (endpoint.username.clone(), endpoint.password.clone(), endpoint.db),
            (None, Some("pw".into()), 0)
        );
        let negative = RedisConfig { db: Some(-1), ..keep };
        assert!(endpoint.overlay(&negative).is_err());
    }

    #[test]
    fn sentinel_settings_need_a_name_and_host_port_addresses() {
        let ok = RedisSentinel {
            master_name: "mymaster".into(),
            addrs: vec!["127.0.0.1:26379".into(), "sentinel-b:26379".into()],
            username: Some(String::new()),
            password: Some("spw".into()),
        };
        let settings = ok.settings().expect("valid");
        assert_eq!((settings.username, settings.password.as_deref()), (None, Some("spw")));
        assert!(!format!("{ok:?}").contains("spw"), "Debug leaves the password out");
        for bad in [
            RedisSentinel { master_name: String::new(), ..ok.clone() },
            RedisSentinel { addrs: Vec::new(), ..ok.clone() },
            RedisSentinel { addrs: vec!["no-port".into()], ..ok.clone() },
            RedisSentinel { addrs: vec![":26379".into()], ..ok.clone() },
        ] {
            let e = bad.settings().expect_err("refused");
            assert!(e.to_string().contains("sentinel"), "{e}");
        }
    }

    #[test]
    fn cluster_settings_need_host_port_seeds() {
        let ok = RedisCluster { addrs: vec!["127.0.0.1:7000".into(), "node-b:7001".into()] };
        assert_eq!(ok.settings().expect("valid").seeds, ok.addrs);
        for bad in [vec![], vec!["no-port".to_owned()], vec![":7000".to_owned()]] {
            let e = RedisCluster { addrs: bad }.settings().expect_err("refused");
            assert!(e.to_string().contains("cluster"), "{e}");
        }
    }
}
