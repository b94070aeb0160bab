//! A peer on Redis, as Grafana's Redis HA mode runs one (spec `grafana-ha.md` §4), carrying
//! the same replicated states as a gossip [`Node`](super::Node): a hearsay peer and stock
//! Grafana instances on one Redis see the same members, positions and states.
//!
//! Two threads, each with its own blocking connection (the `redis` crate's synchronous API; no
//! async runtime): a subscriber that applies what arrives on the full-state, request and
//! state channels, and a worker that writes the heartbeat, reads the members, settles,
//! answers full-state requests, pushes the full state every push/pull interval and publishes
//! what the states queued. Each reconnects on its own after an error. Improvements over
//! Grafana that stock peers cannot tell apart: the first heartbeat is written at start, one
//! connection carries every subscription, and the full-state request is sent even when
//! settling timed out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use parking_lot::{Condvar, Mutex, RwLock};

use prometheus_client::registry::Registry;

use super::metrics::{Metrics, StateKind};
use super::wall_clock;
use crate::core::Millis;
use crate::core::cluster::{self, Cluster, Position, Settle};
use crate::core::redis::{
    HEARTBEAT_INTERVAL, HEARTBEAT_TTL_SECS, MEMBERS_VALID_FOR, RedisInbound, RedisLayout,
    SETTLE_INTERVAL, live_members,
};
use crate::core::swim::Delegate;

/// How a Redis peer starts. Field names follow Grafana's `[unified_alerting]` keys.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` (`ha_redis_address`, `ha_redis_db`).
    pub url: String,
    /// `ha_redis_prefix`; a `:` is appended unless empty.
    pub prefix: String,
    /// `ha_redis_peer_name`; default `peer-<UUIDv4>`, new on every start.
    pub name: Option<String>,
    /// How often the full state is published (`ha_push_pull_interval`, 60 s).
    pub push_pull_interval: Duration,
    /// Settle timeout (Grafana's fixed 30 s).
    pub settle_timeout: Duration,
    /// How often expired elements are collected from every state (Alertmanager's
    /// maintenance interval, 15 min).
    pub gc_interval: Duration,
    /// Where to write the states' snapshots after each collection and at shutdown (the
    /// files; `gc_interval`, not `Snapshots::interval`, sets the pace).
    pub snapshots: Option<super::Snapshots>,
}

impl RedisConfig {
    /// Grafana's defaults for a Redis at `url` under `prefix`.
    pub fn grafana(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            name: None,
            push_pull_interval: Duration::from_secs(60),
            settle_timeout: crate::core::redis::SETTLE_TIMEOUT,
            gc_interval: Duration::from_secs(15 * 60),
            snapshots: None,
        }
    }
}

/// Why a Redis peer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisPeerError {
    /// The URL was refused; nothing started.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A thread could not be started.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

enum Signal {
    /// The states queued something to publish.
    Publish,
    /// A peer asked for full states.
    Request(Vec<u8>),
}

struct Shared {
    layout: RedisLayout,
    name: String,
    own_key: String,
    cluster: Arc<Mutex<Cluster>>,
    /// Live member keys and when they were read.
    members: RwLock<(Vec<String>, Option<Instant>)>,
    ready: Mutex<bool>,
    ready_changed: Condvar,
    stop: AtomicBool,
    origin: Instant,
    arrivals: super::Arrivals,
    /// Alertmanager's cluster metrics, with the meanings Grafana's Redis peer gives them.
    metrics: Metrics,
    registry: Mutex<Registry>,
}

impl Shared {
    fn now(&self) -> Millis {
        Millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Run `f` on the states with their wall clock current.
    fn states<R>(&self, f: impl FnOnce(&mut Cluster, Millis) -> R) -> R {
        let mut c = self.cluster.lock();
        let now = self.now();
        c.set_wall_clock(now, wall_clock());
        f(&mut c, now)
    }
}

/// A running Redis peer. Dropping it shuts it down (publishing a last full state and deleting
/// its heartbeat key, as Grafana does).
pub struct RedisPeer {
    shared: Arc<Shared>,
    signals: Sender<Signal>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPeer").field("name", &self.shared.name).finish_non_exhaustive()
    }
}

impl RedisPeer {
    /// Start a peer replicating `cluster`'s states over the Redis at `config.url`. A Redis that
    /// is down is not an error (Grafana keeps running too): the peer reconnects, and until it
    /// sees the members it reports position 0 and `blind`.
    pub fn start(config: RedisConfig, cluster: Cluster) -> Result<Self, RedisPeerError> {
        let client = redis::Client::open(config.url.as_str())?;
        let layout = RedisLayout::new(&config.prefix);
        let name = config.name.clone().unwrap_or_else(|| {
            format!("peer-{}", uuid::Uuid::from_u128(rand::random()).hyphenated())
        });
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry, &name);
        let shared = Arc::new(Shared {
            metrics,
            registry: Mutex::new(registry),
            own_key: layout.heartbeat_key(&name),
            layout,
            name,
            cluster: Arc::new(Mutex::new(cluster)),
            members: RwLock::new((Vec::new(), None)),
            ready: Mutex::new(false),
            ready_changed: Condvar::new(),
            stop: AtomicBool::new(false),
            origin: Instant::now(),
            arrivals: super::Arrivals::default(),
        });
        let (signals, inbox) = bounded(1024);
        let mut threads = Vec::new();
        let worker = Worker {
            shared: Arc::clone(&shared),
            client: client.clone(),
            conn: None,
            inbox,
            settle: Settle::new(Millis::ZERO, SETTLE_INTERVAL, config.settle_timeout),
            push_pull_interval: config.push_pull_interval,
            gc_interval: config.gc_interval,
            snapshots: config.snapshots.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("hearsay-redis-{}", shared.name))
                .spawn(move || worker.run())?,
        );
        let (sub_shared, sub_signals) = (Arc::clone(&shared), signals.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("hearsay-redis-sub-{}", shared.name))
                .spawn(move || subscribe(&sub_shared, &client, &sub_signals))?,
        );
        Ok(Self { shared, signals, threads })
    }

    /// This peer's name (its heartbeat key without the prefix).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The live members' heartbeat keys, sorted byte-wise (every peer computes the same list).
    pub fn members(&self) -> Vec<String> {
        self.shared.members.read().0.clone()
    }

    /// Our index among the members (Grafana's `Position()`); `blind` when our own heartbeat
    /// is not in the list (not read yet, or Redis unreachable for a minute): index 0 then.
    pub fn position(&self) -> Position {
        let members = self.shared.members.read();
        let index = members.0.iter().position(|k| *k == self.shared.own_key);
        Position { index: index.unwrap_or(0), visible: members.0.len(), blind: index.is_none() }
    }

    /// Whether the member count has settled (three equal polls 2 s apart, or the timeout).
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.lock()
    }

    /// Wait up to `timeout` for [`RedisPeer::is_ready`]; returns whether it became ready.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ready = self.shared.ready.lock();
        while !*ready {
            if self.shared.ready_changed.wait_until(&mut ready, deadline).timed_out() {
                break;
            }
        }
        *ready
    }

    /// Run `f` on the replicated states, then publish what it queued (as
    /// [`Node::with_cluster`](super::Node::with_cluster) does for gossip).
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        let r = self.read_cluster(f);
        // A full inbox means a publish is already pending.
        let _ = self.signals.try_send(Signal::Publish);
        r
    }

    /// Run `f` on the replicated states; nothing is published.
    pub(crate) fn read_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        self.shared.states(|c, _| f(c))
    }

    /// Wait up to `timeout` for payloads for any host-owned state past the cursor `seen`
    /// (as [`Node::wait_states`](super::Node::wait_states)).
    pub fn wait_states(&self, seen: &mut u64, timeout: Duration) -> bool {
        self.shared.arrivals.wait(seen, timeout)
    }

    /// The metrics in the Prometheus text format, under Alertmanager's names as Grafana's
    /// Redis peer exports them: `alertmanager_cluster_members` counts every key under the
    /// prefix, the health score the keys that are no live member, the pings are heartbeats.
    pub fn metrics_text(&self) -> String {
        super::metrics::render(&self.shared.registry.lock())
    }

    /// Time one query of a state into Alertmanager's query-duration histograms.
    pub(crate) fn record_query(&self, nflog: bool, key: &str, took: Duration) {
        let kind = if nflog { StateKind::Nflog } else { StateKind::Silences };
        self.shared.metrics.observe_query(kind, key, took);
    }

    /// Stop: publish a last full state, delete the heartbeat key, end the threads.
    pub fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.signals.try_send(Signal::Publish);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RedisPeer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Open a connection with the timeouts every call relies on.
fn connect(client: &redis::Client) -> Option<redis::Connection> {
    let conn = client.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(conn)
}

/// Least time between two answers to full-state requests.
const ANSWER_SPACING: Duration = Duration::from_secs(1);

struct Worker {
    shared: Arc<Shared>,
    client: redis::Client,
    conn: Option<redis::Connection>,
    inbox: Receiver<Signal>,
    settle: Settle,
    push_pull_interval: Duration,
    gc_interval: Duration,
    snapshots: Option<super::Snapshots>,
}

impl Worker {
    fn run(mut self) {
        let mut next_beat = Instant::now();
        let mut next_push = Instant::now() + self.push_pull_interval;
        let mut next_gc = Instant::now() + self.gc_interval;
        let (mut answer_due, mut last_answer): (Option<Instant>, Option<Instant>) = (None, None);
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                self.maintain();
                self.publish_parts();
                self.publish_full_state();
                let key = self.shared.own_key.clone();
                self.command(|c| redis::cmd("DEL").arg(&key).query::<()>(c));
                return;
            }
            let now = Instant::now();
            if now >= next_beat {
                next_beat = now + HEARTBEAT_INTERVAL;
                self.heartbeat();
                self.read_members();
            }
            if !self.settle.is_ready() {
                let visible = self.shared.members.read().0.len();
                if self.settle.poll(self.shared.now(), visible) {
                    *self.shared.ready.lock() = true;
                    self.shared.ready_changed.notify_all();
                    let (channel, name) =
                        (self.shared.layout.request_channel(), self.shared.name.clone());
                    self.publish(&channel, name.as_bytes(), None);
                }
            }
            if now >= next_push {
                next_push = now + self.push_pull_interval;
                self.publish_full_state();
            }
            if now >= next_gc {
                next_gc = now + self.gc_interval;
                self.maintain();
            }
            self.publish_parts();
            // Requests are answered at most once a second: a burst of starting peers (or a
            // client spamming the request channel) costs one full state per second, not one
            // per request; every requester receives that broadcast anyway.
            if answer_due.is_some_and(|due| now >= due) {
                answer_due = None;
                last_answer = Some(now);
                self.publish_full_state();
            }
            let mut wake = next_beat.min(next_push).min(next_gc);
            if let Some(due) = answer_due {
                wake = wake.min(due);
            }
            if let Some(poll) = self.settle.next_poll() {
                let after = Duration::from_millis(poll.0.saturating_sub(self.shared.now().0));
                wake = wake.min(now + after);
            }
            match self.inbox.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Signal::Request(name)) if name != self.shared.name.as_bytes() => {
                    let earliest = last_answer.map_or(Instant::now(), |t| t + ANSWER_SPACING);
                    answer_due = Some(answer_due.map_or(earliest, |due| due.min(earliest)));
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Collect what expired from every state; write the snapshots of those that have a file.
    /// A state whose GC fails keeps its last snapshot (Alertmanager's rule).
    fn maintain(&mut self) {
        let unix = wall_clock();
        let keys: Vec<String> = self.shared.states(|c, _| c.keys().map(str::to_owned).collect());
        for key in keys {
            let (gc, bytes) = self.shared.states(|c, _| {
                let gc = c.gc(&key, unix);
                let bytes = matches!(gc, Some(Ok(_))).then(|| c.marshal(&key)).flatten();
                (gc, bytes)
            });
            if let Some(Err(e)) = gc {
                log::warn!("gc of {key}: {e}");
            }
            let Some(snapshots) = &self.snapshots else { continue };
            let file = snapshots.files.iter().find(|(k, _)| *k == key).map(|(_, f)| f);
            if let (Some(file), Some(bytes)) = (file, bytes)
                && let Err(e) = super::snapshot::write(&snapshots.dir, file, &bytes)
            {
                log::warn!("snapshot of {key}: {e}");
            }
        }
    }

    /// Run one command on the command connection, reconnecting first if needed; an error
    /// drops the connection so that the next command reconnects.
    fn command<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        if self.conn.is_none() {
            self.conn = connect(&self.client);
        }
        let conn = self.conn.as_mut()?;
        match f(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                log::warn!("redis: {e}");
                self.conn = None;
                None
            }
        }
    }

    fn heartbeat(&mut self) {
        let key = self.shared.own_key.clone();
        let secs = wall_clock().0.div_euclid(1000);
        let started = Instant::now();
        let ok = self.command(|c| {
            redis::cmd("SET").arg(&key).arg(secs).arg("EX").arg(HEARTBEAT_TTL_SECS).query::<()>(c)
        });
        let m = &self.shared.metrics;
        if ok.is_none() {
            m.pings_failures.inc();
        } else {
            let peer = vec![("peer", "redis-server".to_owned())];
            m.pings.get_or_create(&peer).observe(started.elapsed().as_secs_f64());
        }
    }

    /// `SCAN` every key under the prefix, `MGET` their values, keep the fresh heartbeats.
    fn read_members(&mut self) {
        let pattern = self.shared.layout.member_pattern();
        let read = self.command(|c| {
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(100)
                    .query(c)?;
                keys.extend(page);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let values: Vec<Option<Vec<u8>>> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::cmd("MGET").arg(&keys).query(c)?
            };
            Ok((keys, values))
        });
        let mut members = self.shared.members.write();
        match read {
            Some((keys, values)) => {
                let pairs = keys
                    .iter()
                    .zip(values.iter())
                    .filter_map(|(k, v)| Some((std::str::from_utf8(k).ok()?, v.as_deref())));
                *members =
                    (live_members(pairs, wall_clock().0.div_euclid(1000)), Some(Instant::now()));
                let (scanned, live) = (gauge(keys.len()), gauge(members.0.len()));
                self.shared.metrics.members.set(scanned);
                self.shared.metrics.health_score.set((scanned - live).max(0));
            }
            None => {
                if members.1.is_none_or(|at| at.elapsed() > MEMBERS_VALID_FOR) {
                    *members = (Vec::new(), None);
                }
            }
        }
        let own = members.0.iter().position(|k| *k == self.shared.own_key).unwrap_or(0);
        self.shared.metrics.position.set(gauge(own));
    }

    /// Publish `payload`, counted as a message of `kind` (`update`, `full_state`); a request
    /// has no kind.
    fn publish(&mut self, channel: &str, payload: &[u8], kind: Option<&'static str>) {
        let sent =
            self.command(|c| redis::cmd("PUBLISH").arg(channel).arg(payload).query::<i64>(c));
        let m = &self.shared.metrics;
        if sent.is_some() {
            if let Some(kind) = kind {
                let label = vec![("msg_type", kind)];
                m.messages_sent.get_or_create(&label).inc();
                m.messages_sent_size.get_or_create(&label).inc_by(payload.len() as u64);
            }
        } else {
            let label = vec![("msg_type", kind.unwrap_or("request")), ("reason", "redis_issue")];
            m.publish_failures.get_or_create(&label).inc();
        }
    }

    fn publish_full_state(&mut self) {
        let state = self.shared.states(|c, now| c.local_state(now, false));
        let channel = self.shared.layout.full_state_channel();
        self.publish(&channel, &state, Some("full_state"));
    }

    /// Publish every update the states queued, each on its state's channel.
    fn publish_parts(&mut self) {
        let parts = self.shared.states(|c, _| cluster::take_parts(c));
        for (key, part) in parts {
            let channel = self.shared.layout.state_channel(&key);
            self.publish(&channel, &part, Some("update"));
        }
    }
}

/// The subscriber thread: one connection subscribed to the full-state and request channels
/// and to every state's channel; reconnects after errors until the peer stops.
fn subscribe(shared: &Shared, client: &redis::Client, signals: &Sender<Signal>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(mut conn) = connect(client) else {
            // Redis is down: try again in a second (or stop).
            for _ in 0..10 {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        };
        let mut pubsub = conn.as_pubsub();
        let fixed = [shared.layout.full_state_channel(), shared.layout.request_channel()];
        if pubsub.subscribe(&fixed).is_err()
            || pubsub.set_read_timeout(Some(Duration::from_millis(100))).is_err()
        {
            continue;
        }
        let mut subscribed: Vec<String> = Vec::new();
        while !shared.stop.load(Ordering::SeqCst) {
            // States registered since (a host's AddState) get their channel here, within a
            // read timeout.
            let keys: Vec<String> = shared.states(|c, _| {
                c.keys().filter(|k| !subscribed.iter().any(|s| s == k)).map(str::to_owned).collect()
            });
            if !keys.is_empty() {
                let channels: Vec<String> =
                    keys.iter().map(|k| shared.layout.state_channel(k)).collect();
                if pubsub.subscribe(&channels).is_err() {
                    break;
                }
                subscribed.extend(keys);
            }
            let msg = match pubsub.get_message() {
                Ok(msg) => msg,
                Err(e) if e.is_timeout() => continue,
                Err(e) => {
                    log::warn!("redis subscription: {e}");
                    break;
                }
            };
            let channel = msg.get_channel_name().to_owned();
            let payload = msg.get_payload_bytes();
            let inbound = shared.layout.classify(&channel, payload);
            let kind = match inbound {
                Some(RedisInbound::Update(_)) => Some("update"),
                Some(RedisInbound::FullState(_)) => Some("full_state"),
                _ => None,
            };
            if let Some(kind) = kind {
                let (m, label) = (&shared.metrics, vec![("msg_type", kind)]);
                m.messages_received.get_or_create(&label).inc();
                m.messages_received_size.get_or_create(&label).inc_by(payload.len() as u64);
            }
            match inbound {
                Some(RedisInbound::Update(part)) => {
                    let arrivals = shared.states(|c, now| {
                        c.notify_msg(now, part);
                        c.opaque_arrivals()
                    });
                    shared.arrivals.set(arrivals);
                    // Merged elements are re-published, as Alertmanager's states do.
                    let _ = signals.try_send(Signal::Publish);
                }
                Some(RedisInbound::FullState(state)) => {
                    let arrivals = shared.states(|c, now| {
                        c.merge_remote_state(now, state, false);
                        c.opaque_arrivals()
                    });
                    shared.arrivals.set(arrivals);
                }
                Some(RedisInbound::Request(name)) => {
                    let _ = signals.try_send(Signal::Request(name.to_vec()));
                }
                None => {}
            }
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
