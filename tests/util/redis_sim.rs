//! A deterministic simulator of Redis-mode peers around one in-test Redis.
//!
//! N production [`RedisPeer`] cores, each with its own [`Cluster`] (fan-out by pub/sub) holding
//! Alertmanager's silences under `silences:1` and notification log under `notificationlog:1`
//! (Grafana's keys), run on one thread against a model of one Redis server, a virtual network
//! and virtual clocks. One seeded RNG decides every delay and fault, and seeds every core, so a
//! seed replays a run exactly.
//!
//! **The Redis model** ([`Server`]) keeps what Grafana's layout touches: keys with a TTL by
//! Redis' own clock (`SET … EX`), `SCAN cursor MATCH prefix* COUNT n` paged for real (the
//! cursor is a stable slot number, so a key present for the whole scan is returned; `COUNT` is
//! a hint and the page size is the model's; a page may repeat an earlier key, as a rehashing
//! Redis does), `MGET`, `DEL`, `PUBLISH` fanned out to every connection subscribed to the
//! channel — the publisher's own subscriber included —, `SUBSCRIBE` (one confirmation per
//! channel; afterwards only `SUBSCRIBE` and `PING` are allowed on that connection, as in RESP2),
//! `PING` (a pong array on a subscriber), `AUTH` (required: commands before it fail with
//! `NOAUTH`) and `SELECT` (databases are separate keyspaces; pub/sub ignores them).
//!
//! **The network** keeps one FIFO per connection and direction: a delivery is due at
//! `max(previous delivery on that connection and direction, now + delay)`, so replies and
//! pushes arrive in the order Redis produced them and commands execute in the order sent,
//! however random the delays. A connection closed by either side is gone: what was still in
//! flight towards the side that closed vanishes; the other side hears of it after what was sent
//! before the close.
//!
//! **Faults** ([`RedisSim`]'s methods, scheduled by the scenarios): Redis down — every
//! connection closed, connects refused — and back empty (a restart without persistence: the
//! heartbeat keys are gone) or with its data (a network blip); slow phases (large reply and
//! push delays; connects stay fast, they are the kernel's); a node's connection killed by
//! Redis, or silently black-holed (what is published meanwhile is lost to it, its commands go
//! unanswered); a node crash and a restart with empty states. Each node has its own clock
//! offset and drift (±0.1 %) and its wall clock is skewed by up to ±100 ms.
//!
//! The simulator plays the node's drivers only: it opens and closes connections when the core
//! says, writes its commands, hands back every value, and applies the core's events to the
//! states as the node's event loop and worker do (`Update` → `notify_msg`, `FullState` →
//! `merge_remote_state`, `FullStateWanted` → `full_state_chunks` into `publish_full_state`,
//! `Maintain` → GC of every state, no storage). Host writes go as the node's: write the state,
//! `cluster.publish`, then every `take_pubsub` update into `peer.publish` (a refusal is a host
//! error, counted). It decides nothing about the protocol.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hearsay::core::cluster::{Cluster, Fanout};
use hearsay::core::peer::redis::{
    Command, Link, LinkAction, LinkFailure, RedisEvent, RedisPeer, RedisSettings,
};
use hearsay::core::state::nflog::{Nflog, Receiver};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Silence, Silences, SilencesConfig,
};
use hearsay::core::swim::Delegate;
use hearsay::core::{Millis, UnixMillis};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use redis::Value;

/// Grafana's silences key for org 1.
pub const SILENCES: &str = "silences:1";
/// Grafana's notification log key for org 1.
pub const NFLOG: &str = "notificationlog:1";
/// `ha_redis_prefix`.
pub const PREFIX: &str = "grafana";
/// The password Redis requires (`requirepass`) and the peers send.
const PASSWORD: &str = "hunter2";
/// Wall-clock time at simulation start (2026-11-23), in Unix ms.
const WALL_ORIGIN_MS: i64 = 1_795_400_000_000;
/// Global simulation time step in ms.
const STEP_MS: u64 = 5;

/// One-way delays in ms (uniform), per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Client to Redis (commands, connects, closes).
    pub request_ms: (u64, u64),
    /// Redis to client (replies, pushes, closes).
    pub reply_ms: (u64, u64),
}

/// A LAN: a few milliseconds each way.
pub const LAN: Latency = Latency { request_ms: (1, 5), reply_ms: (1, 5) };

/// What the nodes run with.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `ha_push_pull_interval`: how often each peer publishes its full state.
    pub push_pull: Duration,
    /// How often each peer asks for maintenance (GC; no storage).
    pub maintenance: Duration,
    /// The silences' settings (retention, chiefly).
    pub silences: SilencesConfig,
    /// The notification log's retention.
    pub nflog_retention: Duration,
    /// Largest full-state message: small, so full states travel in several chunks.
    pub chunk_bytes: usize,
    /// `ha_redis_db`.
    pub db: i64,
}

type ConnId = u64;

/// What travels towards Redis on a connection.
#[derive(Debug)]
enum ToServer {
    Command(Command),
    /// The client closed the connection (FIN after everything it wrote).
    Close,
}

/// What travels towards a client on a connection.
#[derive(Debug)]
enum ToClient {
    Connected,
    Refused,
    Value(Value),
    /// Redis closed the connection (after everything it wrote).
    Closed,
}

#[derive(Debug)]
enum Hop {
    ToServer(ToServer),
    ToClient(ToClient),
}

/// A connection as the network knows it.
#[derive(Debug)]
struct Conn {
    node: usize,
    link: Link,
    /// When the last delivery towards Redis / towards the client is due (the FIFOs).
    to_server_at: u64,
    to_client_at: u64,
    /// Nothing gets through any more, and neither side is told.
    blackholed: bool,
}

// ---- the Redis model ----

/// One stored key.
#[derive(Debug)]
struct Stored {
    value: Vec<u8>,
    /// Redis' clock (global ms) at which it expires.
    expires_at: Option<u64>,
    slot: u64,
}

/// One database: keys, and their stable SCAN order.
#[derive(Debug, Default)]
struct Db {
    keys: BTreeMap<String, Stored>,
    by_slot: BTreeMap<u64, String>,
    next_slot: u64,
}

impl Db {
    fn set(&mut self, key: &str, value: Vec<u8>, expires_at: Option<u64>) {
        if let Some(s) = self.keys.get_mut(key) {
            s.value = value;
            s.expires_at = expires_at;
            return;
        }
        // Slots start at 1: cursor 0 starts a scan, and a returned 0 ends it.
        self.next_slot += 1;
        let slot = self.next_slot;
        self.by_slot.insert(slot, key.to_owned());
        self.keys.insert(key.to_owned(), Stored { value, expires_at, slot });
    }

    fn del(&mut self, key: &str) -> bool {
        match self.keys.remove(key) {
            Some(s) => {
                self.by_slot.remove(&s.slot);
                true
            }
            None => false,
        }
    }

    /// Active expiry: whatever is past its TTL is gone before the next command looks.
    fn expire(&mut self, now: u64) {
        let due: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, s)| s.expires_at.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.del(&k);
        }
    }
}

/// A client connection as Redis knows it.
#[derive(Debug, Default)]
struct Client {
    db: i64,
    authed: bool,
    channels: BTreeSet<String>,
}

/// One Redis server (see the module docs).
#[derive(Debug)]
pub struct Server {
    up: bool,
    dbs: BTreeMap<i64, Db>,
    clients: BTreeMap<ConnId, Client>,
    /// Slots examined per SCAN call (`COUNT` is a hint; this is the model's answer to it).
    scan_page: usize,
    /// Probability that a SCAN page also returns a key of an earlier page.
    scan_repeat: f64,
    /// Commands executed (for reports).
    pub commands: u64,
    /// Messages pushed to subscribers.
    pub pushed: u64,
}

fn bulk(b: &[u8]) -> Value {
    Value::BulkString(b.to_vec())
}

fn error(text: &str) -> Value {
    redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).expect("an error reply parses")
}

impl Server {
    fn new(scan_page: usize, scan_repeat: f64) -> Self {
        Self {
            up: true,
            dbs: BTreeMap::new(),
            clients: BTreeMap::new(),
            scan_page,
            scan_repeat,
            commands: 0,
            pushed: 0,
        }
    }

    /// Store `key` directly (other data under the prefix, as a real keyspace has).
    pub fn seed_key(&mut self, db: i64, key: &str, value: &[u8]) {
        self.dbs.entry(db).or_default().set(key, value.to_vec(), None);
    }

    /// Run one command from `conn`: what goes to which connection, in order.
    fn execute(
        &mut self,
        now: u64,
        conn: ConnId,
        cmd: Command,
        rng: &mut SmallRng,
    ) -> Vec<(ConnId, Value)> {
        self.commands += 1;
        let Some(client) = self.clients.get_mut(&conn) else { return Vec::new() };
        let reply = |v| vec![(conn, v)];
        if let Command::Auth { password, .. } = &cmd {
            client.authed = password == PASSWORD;
            return reply(if client.authed {
                Value::Okay
            } else {
                error("WRONGPASS invalid username-password pair")
            });
        }
        if !client.authed {
            return reply(error("NOAUTH Authentication required."));
        }
        let subscribed = !client.channels.is_empty();
        match cmd {
            Command::Subscribe(channels) => {
                let mut out = Vec::new();
                for ch in channels {
                    client.channels.insert(ch.clone());
                    let count = i64::try_from(client.channels.len()).expect("fits");
                    out.push((
                        conn,
                        Value::Array(vec![
                            bulk(b"subscribe"),
                            bulk(ch.as_bytes()),
                            Value::Int(count),
                        ]),
                    ));
                }
                out
            }
            Command::Ping if subscribed => reply(Value::Array(vec![bulk(b"pong"), bulk(b"")])),
            Command::Ping => reply(Value::SimpleString("PONG".into())),
            cmd if subscribed => reply(error(&format!(
                "ERR Can't execute '{cmd:?}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / \
                 QUIT / RESET are allowed in this context"
            ))),
            Command::Publish { channel, payload } => self.publish(conn, &channel, &payload),
            cmd => {
                let db = client.db;
                let value = self.keyspace(now, conn, db, cmd, rng);
                reply(value)
            }
        }
    }

    fn publish(&mut self, from: ConnId, channel: &str, payload: &[u8]) -> Vec<(ConnId, Value)> {
        let message = Value::Array(vec![bulk(b"message"), bulk(channel.as_bytes()), bulk(payload)]);
        let mut out: Vec<(ConnId, Value)> = self
            .clients
            .iter()
            .filter(|(_, c)| c.channels.contains(channel))
            .map(|(id, _)| (*id, message.clone()))
            .collect();
        self.pushed += out.len() as u64;
        let receivers = i64::try_from(out.len()).expect("fits");
        out.push((from, Value::Int(receivers)));
        out
    }

    /// A command on the keyspace of database `db`.
    fn keyspace(
        &mut self,
        now: u64,
        conn: ConnId,
        db: i64,
        cmd: Command,
        rng: &mut SmallRng,
    ) -> Value {
        let (page, repeat) = (self.scan_page, self.scan_repeat);
        let keys = self.dbs.entry(db).or_default();
        keys.expire(now);
        match cmd {
            Command::Select(db) => {
                self.clients.get_mut(&conn).expect("checked by execute").db = db;
                Value::Okay
            }
            Command::Set { key, value, ttl_secs } => {
                keys.set(&key, value.into_bytes(), Some(now + ttl_secs * 1000));
                Value::Okay
            }
            Command::Mget(names) => Value::Array(
                names
                    .iter()
                    .map(|k| keys.keys.get(k).map_or(Value::Nil, |s| bulk(&s.value)))
                    .collect(),
            ),
            Command::Del(key) => Value::Int(i64::from(keys.del(&key))),
            Command::Scan { cursor, pattern, .. } => {
                let repeat = rng.random_bool(repeat);
                scan(keys, cursor, &pattern, page, repeat)
            }
            other => error(&format!("ERR unknown command '{other:?}'")),
        }
    }
}

/// One SCAN page: `page` slots from `cursor`, the keys among them matching `pattern` (a
/// prefix and `*`), and — when `repeat` — the last key before `cursor` again.
fn scan(db: &Db, cursor: u64, pattern: &str, page: usize, repeat: bool) -> Value {
    let prefix = pattern.strip_suffix('*').expect("the peers match a prefix");
    assert!(!prefix.contains(['*', '?', '[']), "only prefix globs are modelled: {pattern}");
    let mut keys = Vec::new();
    let mut next = 0;
    for (i, (&slot, key)) in db.by_slot.range(cursor..).enumerate() {
        if i == page {
            next = slot;
            break;
        }
        if key.starts_with(prefix) {
            keys.push(bulk(key.as_bytes()));
        }
    }
    if repeat
        && let Some((_, key)) = db.by_slot.range(..cursor).next_back()
        && key.starts_with(prefix)
    {
        keys.push(bulk(key.as_bytes()));
    }
    Value::Array(vec![bulk(next.to_string().as_bytes()), Value::Array(keys)])
}

// ---- the nodes ----

/// A running node: the peer core and the states it carries.
struct Running {
    peer: RedisPeer,
    cluster: Cluster,
}

struct Node {
    name: String,
    run: Option<Running>,
    /// The connection each link is on, as the driver holds it.
    links: [Option<ConnId>; Link::ALL.len()],
    clock_offset_ms: u64,
    drift_ppm: i64,
    wall_skew_ms: i64,
    deadline: u64,
    started_at: u64,
    ready_at: Option<u64>,
    collected: usize,
}

/// What a host write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The silence ID or the notification log's group key.
    pub id: String,
    /// `peer.publish` accepted every update the write produced.
    pub acknowledged: bool,
}

/// The simulated nodes, network and Redis.
pub struct RedisSim {
    /// The seed this run replays from.
    pub seed: u64,
    rng: SmallRng,
    /// Global virtual time in ms (Redis' clock).
    pub now: u64,
    nodes: Vec<Node>,
    /// The Redis server.
    pub server: Server,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    queue: super::timeline::Timeline<(ConnId, Hop)>,
    latency: Latency,
    options: RedisOptions,
    /// Updates `peer.publish` refused: a host error (it must not happen here).
    pub host_errors: u64,
    /// Full-state chunks handed to the cores.
    pub chunks: u64,
    /// Full-state messages and updates merged, over all nodes.
    pub merged: (u64, u64),
    trace: Option<usize>,
}

impl RedisSim {
    /// `n` nodes, not yet started, against an empty, running Redis.
    pub fn new(seed: u64, n: usize, options: RedisOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("peer-{i:02}"),
                run: None,
                links: [None; Link::ALL.len()],
                clock_offset_ms: rng.random_range(0..1_000_000),
                drift_ppm: rng.random_range(-1000..=1000),
                wall_skew_ms: rng.random_range(-100..=100),
                deadline: 0,
                started_at: 0,
                ready_at: None,
                collected: 0,
            })
            .collect();
        let server = Server::new(rng.random_range(1..=4), 0.2);
        Self {
            seed,
            rng,
            now: 0,
            nodes,
            server,
            conns: BTreeMap::new(),
            next_conn: 0,
            queue: super::timeline::Timeline::new(),
            latency: LAN,
            options,
            host_errors: 0,
            chunks: 0,
            merged: (0, 0),
            trace: std::env::var("SIM_TRACE").ok().and_then(|v| v.parse().ok()),
        }
    }

    /// Number of nodes (live or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Start (or restart, with empty states) node `i`.
    pub fn start(&mut self, i: usize) {
        let (now, unix) = (self.local_now(i), self.wall(i));
        let seed = self.rng.random();
        let o = &self.options;
        let settings = RedisSettings {
            password: Some(PASSWORD.into()),
            db: o.db,
            push_pull_interval: o.push_pull,
            maintenance_interval: o.maintenance,
            full_state_chunk_bytes: o.chunk_bytes,
            ..RedisSettings::grafana(&self.nodes[i].name, PREFIX)
        };
        let mut cluster = Cluster::with_fanout(Fanout::PubSub);
        cluster.register(SILENCES, Silences::new(o.silences.clone(), seed));
        cluster.register(NFLOG, Nflog::new(o.nflog_retention));
        cluster.set_wall_clock(now, unix);
        let keys: Vec<&str> = cluster.keys().collect();
        let peer = RedisPeer::new(settings, &keys, now, unix, seed);
        let node = &mut self.nodes[i];
        node.run = Some(Running { peer, cluster });
        node.started_at = self.now;
        node.ready_at = None;
        node.collected = 0;
        self.drain(i);
    }

    /// Kill node `i`: its states are lost; the kernel closes its connections.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].run = None;
        for link in Link::ALL {
            self.close_link(i, link);
        }
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].run.is_some()
    }

    /// Indices of running nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.is_up(i)).collect()
    }

    // ---- faults ----

    /// Redis stops: every connection closes, connects are refused.
    pub fn redis_down(&mut self) {
        self.server.up = false;
        let clients: Vec<ConnId> = self.server.clients.keys().copied().collect();
        self.server.clients.clear();
        for c in clients {
            self.send_to_client(c, ToClient::Closed);
        }
    }

    /// Redis is back, restarted without persistence: empty.
    pub fn redis_up_empty(&mut self) {
        self.server.dbs.clear();
        self.server.up = true;
    }

    /// Redis is back with its data (the outage was the network's, or a restart that kept it).
    pub fn redis_up(&mut self) {
        self.server.up = true;
    }

    /// Whether Redis is running.
    pub fn redis_is_up(&self) -> bool {
        self.server.up
    }

    /// Delays from now on (what is in flight keeps its delivery time).
    pub fn set_latency(&mut self, latency: Latency) {
        self.latency = latency;
    }

    /// Node `i`'s connection for `link` is lost: killed by Redis (the node hears of it), or
    /// black-holed (nobody is told; the node's commands go unanswered).
    pub fn drop_link(&mut self, i: usize, link: Link, silently: bool) {
        let Some(c) = self.nodes[i].links[link.index()] else { return };
        if silently {
            if let Some(conn) = self.conns.get_mut(&c) {
                conn.blackholed = true;
            }
        } else if self.server.clients.remove(&c).is_some() {
            self.send_to_client(c, ToClient::Closed);
        }
    }

    // ---- time ----

    /// Run until global time `end`, calling `check` after every step.
    pub fn run_until(&mut self, end: u64, check: &mut dyn FnMut(&RedisSim)) {
        while self.now < end {
            self.now += STEP_MS;
            self.deliver_due();
            for i in 0..self.nodes.len() {
                self.tick(i);
            }
            check(self);
        }
    }

    fn local_now(&self, i: usize) -> Millis {
        let node = &self.nodes[i];
        let skewed = i128::from(self.now) * i128::from(1_000_000 + node.drift_ppm) / 1_000_000;
        Millis(node.clock_offset_ms + u64::try_from(skewed).expect("time is positive"))
    }

    /// Node `i`'s wall clock.
    fn wall(&self, i: usize) -> UnixMillis {
        UnixMillis(
            WALL_ORIGIN_MS + i64::try_from(self.now).expect("fits") + self.nodes[i].wall_skew_ms,
        )
    }

    /// The driver's timer: call the core when its deadline has passed.
    fn tick(&mut self, i: usize) {
        if self.nodes[i].run.is_none() {
            return;
        }
        let now = self.local_now(i);
        if now.0 >= self.nodes[i].deadline {
            let unix = self.wall(i);
            self.run_mut(i).peer.handle_timeout(now, unix);
            self.drain(i);
        }
    }

    fn run_mut(&mut self, i: usize) -> &mut Running {
        self.nodes[i].run.as_mut().expect("node is live")
    }

    fn run(&self, i: usize) -> &Running {
        self.nodes[i].run.as_ref().expect("node is live")
    }
}

// ---- the network ----

impl RedisSim {
    fn delay(&mut self, (lo, hi): (u64, u64)) -> u64 {
        self.rng.random_range(lo..=hi)
    }

    /// Send towards Redis on `c`, behind whatever `c` carried that way before.
    fn send_to_server(&mut self, c: ConnId, what: ToServer) {
        let delay = self.delay(self.latency.request_ms);
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&c) else { return };
        if conn.blackholed {
            return;
        }
        conn.to_server_at = conn.to_server_at.max(now + delay);
        let at = conn.to_server_at;
        self.enqueue(at, c, Hop::ToServer(what));
    }

    /// Send towards the client on `c`, behind whatever Redis wrote on `c` before. The outcome
    /// of a connect is the kernel's, not Redis' (a slow Redis accepts at LAN speed).
    fn send_to_client(&mut self, c: ConnId, what: ToClient) {
        let range = match what {
            ToClient::Connected | ToClient::Refused => LAN.reply_ms,
            _ => self.latency.reply_ms,
        };
        let delay = self.delay(range);
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&c) else { return };
        if conn.blackholed {
            return;
        }
        conn.to_client_at = conn.to_client_at.max(now + delay);
        let at = conn.to_client_at;
        self.enqueue(at, c, Hop::ToClient(what));
    }

    fn enqueue(&mut self, at: u64, conn: ConnId, hop: Hop) {
        self.queue.push(at, (conn, hop));
    }

    fn deliver_due(&mut self) {
        while let Some((conn, hop)) = self.queue.pop_due(self.now) {
            // A path that died meanwhile loses what was on it.
            if self.conns.get(&conn).is_none_or(|c| c.blackholed) {
                continue;
            }
            match hop {
                Hop::ToServer(what) => self.at_server(conn, what),
                Hop::ToClient(what) => self.at_client(conn, what),
            }
        }
    }

    fn at_server(&mut self, c: ConnId, what: ToServer) {
        match what {
            ToServer::Close => {
                self.server.clients.remove(&c);
                self.conns.remove(&c);
            }
            ToServer::Command(cmd) => {
                if !self.server.up {
                    return;
                }
                let out = self.server.execute(self.now, c, cmd, &mut self.rng);
                for (to, value) in out {
                    self.send_to_client(to, ToClient::Value(value));
                }
            }
        }
    }

    /// What the node's driver does with what arrived on `c`, if `c` is still its connection.
    fn at_client(&mut self, c: ConnId, what: ToClient) {
        let Conn { node: i, link, .. } = self.conns[&c];
        if self.nodes[i].run.is_none() || self.nodes[i].links[link.index()] != Some(c) {
            return;
        }
        let (now, unix) = (self.local_now(i), self.wall(i));
        self.trace(i, &format!("{link:?} <- {}", describe(&what)));
        let peer = &mut self.run_mut(i).peer;
        match what {
            ToClient::Connected => peer.handle_connected(now, unix, link),
            ToClient::Value(v) => peer.handle_value(now, unix, link, v),
            ToClient::Refused | ToClient::Closed => {
                let (reason, why) = if matches!(what, ToClient::Refused) {
                    (LinkFailure::Connect, "refused")
                } else {
                    (LinkFailure::Closed, "reset")
                };
                peer.handle_disconnected(now, unix, link, reason, why);
                self.nodes[i].links[link.index()] = None;
                // The driver dropped its socket; Redis' side is gone already.
                self.conns.remove(&c);
            }
        }
        self.drain(i);
    }

    /// The driver connects `link` of node `i` (dropping any connection it had).
    fn open_link(&mut self, i: usize, link: Link) {
        self.close_link(i, link);
        self.next_conn += 1;
        let c = self.next_conn;
        let conn = Conn { node: i, link, to_server_at: 0, to_client_at: 0, blackholed: false };
        self.conns.insert(c, conn);
        self.nodes[i].links[link.index()] = Some(c);
        if self.server.up {
            self.server.clients.insert(c, Client::default());
            self.send_to_client(c, ToClient::Connected);
        } else {
            self.send_to_client(c, ToClient::Refused);
        }
    }

    /// The driver drops `link`'s connection: Redis sees the close after what was written.
    fn close_link(&mut self, i: usize, link: Link) {
        if let Some(c) = self.nodes[i].links[link.index()].take() {
            self.send_to_server(c, ToServer::Close);
        }
    }
}

// ---- the node's event loop ----

impl RedisSim {
    /// Collect everything node `i` wants done, as the node's loop does after every input:
    /// open and close links, write commands, act on events — until nothing more comes.
    fn drain(&mut self, i: usize) {
        let (now, unix) = (self.local_now(i), self.wall(i));
        self.run_mut(i).cluster.set_wall_clock(now, unix);
        loop {
            let mut busy = false;
            while let Some(action) = self.run_mut(i).peer.poll_link() {
                busy = true;
                self.trace(i, &format!("{action:?}"));
                match action {
                    LinkAction::Open(link) => self.open_link(i, link),
                    LinkAction::Close(link) => self.close_link(i, link),
                }
            }
            for link in Link::ALL {
                let Some(c) = self.nodes[i].links[link.index()] else { continue };
                while let Some(cmd) = self.run_mut(i).peer.poll_command(link) {
                    busy = true;
                    self.trace(i, &format!("{link:?} -> {}", describe_command(&cmd)));
                    self.send_to_server(c, ToServer::Command(cmd));
                }
            }
            while let Some(event) = self.run_mut(i).peer.poll_event() {
                busy = true;
                self.trace(i, &format!("event {}", describe_event(&event)));
                self.on_event(i, now, unix, event);
            }
            if !busy {
                break;
            }
        }
        let deadline = self.run(i).peer.poll_timeout().expect("a core always has a next timer");
        self.nodes[i].deadline = deadline.0;
    }

    /// What the event loop and its worker do with the core's events.
    fn on_event(&mut self, i: usize, now: Millis, unix: UnixMillis, event: RedisEvent) {
        let chunk_bytes = self.options.chunk_bytes;
        let run = self.run_mut(i);
        match event {
            RedisEvent::Update(part) => {
                run.cluster.notify_msg(now, &part);
                self.merged.1 += 1;
            }
            RedisEvent::FullState(state) => {
                run.cluster.merge_remote_state(now, &state, false);
                self.merged.0 += 1;
            }
            RedisEvent::FullStateWanted => {
                let chunks = run.cluster.full_state_chunks(chunk_bytes);
                let n = chunks.len() as u64;
                run.peer.publish_full_state(chunks);
                self.chunks += n;
            }
            RedisEvent::Maintain => {
                let keys: Vec<String> = run.cluster.keys().map(str::to_owned).collect();
                let mut collected = 0;
                for key in keys {
                    if let Some(Ok(n)) = run.cluster.gc(&key, unix) {
                        collected += n;
                    }
                }
                self.nodes[i].collected += collected;
            }
            RedisEvent::Ready => self.nodes[i].ready_at = Some(self.now),
            // Round trips and failures are for metrics and the log; the core acted on them.
            _ => {}
        }
    }

    /// Hand what the states queued to the core, as the node's write path does; false when
    /// the core refused an update (a host error).
    fn hand_over(&mut self, i: usize) -> bool {
        let run = self.run_mut(i);
        let updates: Vec<_> = run.cluster.take_pubsub().collect();
        let mut accepted = true;
        for u in updates {
            accepted &= run.peer.publish(&u.key, &u.data, u.delimited).is_ok();
        }
        if !accepted {
            self.host_errors += 1;
        }
        self.drain(i);
        accepted
    }

    /// Create a silence on node `i` (`name="value"`) ending `lasts` from now by its wall clock.
    pub fn set_silence(&mut self, i: usize, value: &str, lasts: Duration) -> Written {
        let (now, unix) = (self.local_now(i), self.wall(i));
        let lasts_ms = i64::try_from(lasts.as_millis()).expect("fits");
        let silence = Silence {
            starts_at: unix.into(),
            ends_at: UnixMillis(unix.0 + lasts_ms).into(),
            created_by: "sim".into(),
            matcher_sets: vec![MatcherSet {
                matchers: vec![Matcher::new(MatcherType::Equal, "name", value)],
            }],
            ..Silence::default()
        };
        let cluster = &mut self.run_mut(i).cluster;
        cluster.set_wall_clock(now, unix);
        let silences = cluster.state_mut::<Silences>(SILENCES).expect("registered");
        let out = silences.set(silence, unix).expect("valid silence");
        for bytes in [out.expired_previous, out.broadcast].into_iter().flatten() {
            assert!(cluster.publish(SILENCES, bytes), "the pub/sub queue has room");
        }
        let acknowledged = self.hand_over(i);
        Written { id: out.id.as_str().to_owned(), acknowledged }
    }

    /// Log a notification of group `group_key` on node `i`, expiring after `expiry`.
    pub fn log_notification(&mut self, i: usize, group_key: &str, expiry: Duration) -> Written {
        let (now, unix) = (self.local_now(i), self.wall(i));
        let cluster = &mut self.run_mut(i).cluster;
        cluster.set_wall_clock(now, unix);
        let nflog = cluster.state_mut::<Nflog>(NFLOG).expect("registered");
        let out = nflog
            .log(&receiver(), group_key, &[1, 2, 3], &[], &BTreeMap::new(), Some(expiry), unix)
            .expect("a valid entry");
        if let Some(bytes) = out {
            assert!(cluster.publish(NFLOG, bytes), "the pub/sub queue has room");
        }
        let acknowledged = self.hand_over(i);
        Written { id: group_key.to_owned(), acknowledged }
    }
}

/// The one receiver notifications go to.
fn receiver() -> Receiver {
    Receiver { group_name: "team".into(), integration: "webhook".into(), idx: 0 }
}

// ---- what the invariants look at ----

impl RedisSim {
    /// Node `i`'s name.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s heartbeat key.
    pub fn heartbeat_key(&self, i: usize) -> String {
        format!("{PREFIX}:{}", self.nodes[i].name)
    }

    /// Node `i`'s peer core.
    pub fn peer(&self, i: usize) -> &RedisPeer {
        &self.run(i).peer
    }

    /// When node `i` was last (re)started (global time).
    pub fn started_at(&self, i: usize) -> u64 {
        self.nodes[i].started_at
    }

    /// When node `i`'s core reported `Ready` since its last (re)start (global time).
    pub fn ready_at(&self, i: usize) -> Option<u64> {
        self.nodes[i].ready_at
    }

    /// Elements node `i`'s maintenance collected since its last (re)start.
    pub fn collected(&self, i: usize) -> usize {
        self.nodes[i].collected
    }

    /// Whether node `i` holds silence `id` (in any state, until GC drops it).
    pub fn holds_silence(&self, i: usize, id: &str) -> bool {
        let c = &self.run(i).cluster;
        c.state::<Silences>(SILENCES).expect("registered").get(id).is_some()
    }

    /// Whether node `i` holds a notification log entry for `group_key`.
    pub fn holds_entry(&self, i: usize, group_key: &str) -> bool {
        let c = &self.run(i).cluster;
        c.state::<Nflog>(NFLOG).expect("registered").query(&receiver(), group_key).is_some()
    }

    /// Silences and notification log entries node `i` holds.
    pub fn counts(&self, i: usize) -> (usize, usize) {
        let c = &self.run(i).cluster;
        (
            c.state::<Silences>(SILENCES).expect("registered").len(),
            c.state::<Nflog>(NFLOG).expect("registered").len(),
        )
    }
}

// ---- tracing (`SIM_TRACE=<node index>` prints what that node's driver sees) ----

impl RedisSim {
    fn trace(&self, i: usize, what: &str) {
        if self.trace == Some(i) {
            eprintln!("{:>8} {} {what}", self.now, self.nodes[i].name);
        }
    }
}

fn describe(what: &ToClient) -> String {
    match what {
        ToClient::Value(v) => short(&format!("{v:?}")),
        other => format!("{other:?}"),
    }
}

fn describe_command(cmd: &Command) -> String {
    match cmd {
        Command::Publish { channel, payload } => {
            format!("PUBLISH {channel} ({} bytes)", payload.len())
        }
        other => short(&format!("{other:?}")),
    }
}

fn describe_event(event: &RedisEvent) -> String {
    match event {
        RedisEvent::Update(b) => format!("Update ({} bytes)", b.len()),
        RedisEvent::FullState(b) => format!("FullState ({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

fn short(s: &str) -> String {
    match s.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
