//! A peer on Redis, as Grafana's Redis HA peer behaves (`pkg/services/ngalert/notifier/redis_peer.go`), sans-IO:
//! the decisions only. The driver opens and closes the two [`Link`]s when told
//! ([`RedisPeer::poll_link`]), writes the [`Command`]s it polls, and feeds back every reply and
//! pub/sub message as a [`redis::Value`]; the host merges the payloads it is handed
//! ([`RedisEvent`]) and hands over its updates and full states.
//!
//! What it decides, on Grafana's layout ([`RedisLayout`]):
//! - the heartbeat every 5 s (`SET {prefix}{name} <unix secs> EX 300`), and membership every
//!   5 s by `SCAN MATCH {prefix}*` + `MGET`: fresh heartbeats, sorted byte-wise, which every
//!   peer computes alike, so positions agree with stock Grafana instances;
//! - a member list older than a minute is dropped (position 0, blind: Grafana's availability
//!   over deduplication);
//! - settling (Grafana's 2 s polls, 30 s timeout), then a full-state request; requests from
//!   others answered with our full state at most once a second; our full state pushed every
//!   push/pull interval;
//! - updates published once each, pipelined, and coalesced: consecutive updates of one
//!   replicated state travel as one `Part` whose data is their delimited entries in order —
//!   what Alertmanager's and Grafana's `Merge` read — up to [`MESSAGE_BYTES`];
//! - full states in chunks of at most `full_state_chunk_bytes` (each a `FullState` that merges
//!   on its own, in any order), with few bytes in flight, so no subscriber's output buffer
//!   nears Redis' 32 MB pub/sub limit;
//! - reconnects with jittered backoff; after one, every subscription again, a heartbeat, and a
//!   full-state request and push, so what either side missed meanwhile is exchanged at once;
//! - a command unanswered for [`REPLY_TIMEOUT`] (a ping on the subscriber, which otherwise only
//!   listens) closes its link;
//! - at shutdown a last full state, then `DEL` of the heartbeat.
//!
//! Improvements over Grafana that stock peers cannot tell apart: the first heartbeat at
//! connect, one subscriber connection for every channel, the request also after a settle
//! timeout, no re-merge of our own publishes (see `echo.rs`), coalesced updates.

mod cluster;
mod echo;
mod layout;
mod link;
mod sentinel;

use std::collections::VecDeque;
use std::time::Duration;

use prost::Message as _;
use rand::SeedableRng;
use rand::rngs::SmallRng;

pub use cluster::{ClusterSettings, MAX_SEEDS, slot};
pub use layout::{
    HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT_SECS, HEARTBEAT_TTL_SECS, MEMBERS_VALID_FOR,
    RedisInbound, RedisLayout, SETTLE_INTERVAL, SETTLE_TIMEOUT, live_members,
};
pub use link::{Link, LinkFailure, MAX_MASTERS};
pub use sentinel::{SWITCH_MASTER_CHANNEL, SentinelSettings};

use super::{Lifecycle, Position, earliest};
use crate::core::cluster::Part;
use crate::core::{Millis, UnixMillis};
use cluster::Topology;
use echo::Echoes;
use link::{CONNECT_TIMEOUT, LinkState, Sent, State};
use sentinel::Discovery;

/// Largest coalesced update message.
pub const MESSAGE_BYTES: usize = 64 << 10;
/// Update messages waiting to be sent; [`RedisPeer::publish`] refuses beyond it.
pub const OUTBOX_LEN: usize = 4096;
/// Bytes of updates waiting to be sent (Redis down for a while); refused beyond it.
pub const OUTBOX_BYTES: usize = 16 << 20;
/// Commands sent and not yet answered on the command link; beyond it nothing more is sent
/// until replies come (the driver's write buffer stays small, a dead Redis is noticed).
pub const MAX_IN_FLIGHT: usize = 8192;
/// Bytes of full-state chunks sent and not yet answered.
const FULL_STATE_IN_FLIGHT_BYTES: usize = 4 << 20;
/// A command unanswered this long closes its link.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two answers to full-state requests.
pub const ANSWER_SPACING: Duration = Duration::from_secs(1);
/// How long shutdown waits for the last full state and the `DEL` (Grafana: 5 s).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys read per `SCAN` page (Grafana's `COUNT 100`).
const SCAN_COUNT: usize = 100;
/// Most keys one membership read collects; past it the read stops there (counted).
pub const MAX_SCANNED_KEYS: usize = 100_000;

/// How a Redis peer runs. Field names follow Grafana's `[unified_alerting]` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// This peer's name (`ha_redis_peer_name`; Grafana's default is `peer-<UUIDv4>`).
    pub name: String,
    /// `ha_redis_prefix`; a `:` is appended unless empty.
    pub prefix: String,
    /// `ha_redis_db` (0).
    pub db: i64,
    /// `ha_redis_username` (none).
    pub username: Option<String>,
    /// `ha_redis_password` (none).
    pub password: Option<String>,
    /// How often the full state is published (`ha_push_pull_interval`, 60 s).
    pub push_pull_interval: Duration,
    /// Settle timeout (Grafana's fixed 30 s).
    pub settle_timeout: Duration,
    /// How often expired elements are collected (Alertmanager's maintenance interval, 15 min).
    pub maintenance_interval: Duration,
    /// Largest full-state message (1 MiB); larger full states travel as several.
    pub full_state_chunk_bytes: usize,
    /// Redis Sentinel (`ha_redis_sentinel_mode_enabled`): the master is the one the
    /// Sentinels name. `None` (the default): one server, the driver's configured one.
    pub sentinel: Option<SentinelSettings>,
    /// Redis Cluster (`ha_redis_cluster_mode_enabled`): keys go to the masters that own their
    /// slots. `None` (the default): one server. Exclusive with `sentinel`.
    pub cluster: Option<ClusterSettings>,
}

impl RedisSettings {
    /// Grafana's defaults for peer `name` under `prefix`.
    pub fn grafana(name: &str, prefix: &str) -> Self {
        Self {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            db: 0,
            username: None,
            password: None,
            push_pull_interval: Duration::from_secs(60),
            settle_timeout: SETTLE_TIMEOUT,
            maintenance_interval: Duration::from_secs(15 * 60),
            full_state_chunk_bytes: 1 << 20,
            sentinel: None,
            cluster: None,
        }
    }
}

/// A command for the driver to write on a link (it packs it as RESP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `AUTH [username] password`.
    Auth {
        /// ACL user, if any.
        username: Option<String>,
        /// Password.
        password: String,
    },
    /// `SELECT db`.
    Select(i64),
    /// `SET key value EX ttl`.
    Set {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Seconds to live.
        ttl_secs: u64,
    },
    /// `SCAN cursor MATCH pattern COUNT count`.
    Scan {
        /// Cursor (0 starts).
        cursor: u64,
        /// Glob.
        pattern: String,
        /// Page size hint.
        count: usize,
    },
    /// `MGET key…`.
    Mget(Vec<String>),
    /// `PUBLISH channel payload`.
    Publish {
        /// Channel.
        channel: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// `SUBSCRIBE channel…`.
    Subscribe(Vec<String>),
    /// `DEL key`.
    Del(String),
    /// `PING`.
    Ping,
    /// `SENTINEL GET-MASTER-ADDR-BY-NAME name` (on the Sentinel link).
    SentinelMaster(String),
    /// `CLUSTER SLOTS` (Cluster mode, on the command link).
    ClusterSlots,
    /// `ASKING` (Cluster mode: the next command follows an `ASK` redirection).
    Asking,
}

/// Open or close a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Connect it now, then call [`RedisPeer::handle_connected`] (or
    /// [`RedisPeer::handle_disconnected`] when that fails).
    Open(Link),
    /// Drop its connection; the peer considers it down already.
    Close(Link),
}

/// What the host should hear or do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisEvent {
    /// The peer settled.
    Ready,
    /// Maintain the states now.
    Maintain,
    /// A peer's update (a `Part`): merge it, without re-publishing (every subscriber got it).
    Update(Vec<u8>),
    /// A peer's full state (a `FullState`): merge it.
    FullState(Vec<u8>),
    /// Build our full state in chunks and hand them to [`RedisPeer::publish_full_state`].
    FullStateWanted,
    /// A heartbeat was written (its round trip) or failed (`None`).
    Heartbeat(Option<Duration>),
    /// Something went wrong on a link, for the log (the peer has acted on it already).
    Failure {
        /// Which link.
        link: Link,
        /// What happened.
        what: String,
    },
    /// Shutdown finished: the last full state and the `DEL` went out (or timed out).
    Stopped,
}

/// The three kinds of message a peer publishes (Grafana's `msg_type` labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MsgKind {
    /// A state update.
    Update,
    /// A full state (or one chunk of it).
    FullState,
    /// A full-state request.
    Request,
}

impl MsgKind {
    /// Grafana's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgKind::Update => "update",
            MsgKind::FullState => "full_state",
            MsgKind::Request => "request",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters, by [`MsgKind`] where Grafana labels them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Messages Redis accepted, by kind.
    pub sent: [u64; 3],
    /// Their payload bytes.
    pub sent_bytes: [u64; 3],
    /// Messages received from other peers (updates, full states).
    pub received: [u64; 3],
    /// Their payload bytes.
    pub received_bytes: [u64; 3],
    /// Publishes Redis refused or that were lost with their link (`reason="redis_issue"`).
    pub publish_failed: [u64; 3],
    /// Our own publishes that came back and were skipped.
    pub echoes_skipped: u64,
    /// Messages on no channel of ours, or of a shape Redis does not send.
    pub unexpected: u64,
    /// Times a link went down.
    pub disconnects: u64,
    /// The same, by why ([`LinkFailure::index`]).
    pub link_failures: [u64; LinkFailure::ALL.len()],
    /// Membership reads cut short at [`MAX_SCANNED_KEYS`].
    pub scans_truncated: u64,
    /// Commands sent again where a Redis Cluster's `MOVED` or `ASK` pointed.
    pub redirects: u64,
}

impl RedisStats {
    /// A counter by kind.
    pub fn of(counters: &[u64; 3], kind: MsgKind) -> u64 {
        counters[kind.index()]
    }
}

/// One coalescing update message waiting to be sent.
#[derive(Debug)]
struct Outgoing {
    key: String,
    data: Vec<u8>,
    delimited: bool,
}

/// A membership read in progress: `SCAN` pages on one link (every master's in Cluster
/// mode), then the `MGET`s of the keys found.
#[derive(Debug, Default)]
struct Scan {
    /// Its number, carried by its commands: replies of an abandoned read are ignored.
    id: u64,
    keys: Vec<String>,
    /// Links whose `SCAN` has not reached cursor 0 yet.
    scanning: usize,
    /// `MGET`s not answered yet.
    reading: usize,
    /// What they returned, by key.
    values: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Running,
    /// Waiting for the last full state, then the `DEL`'s reply, until `deadline`.
    Draining {
        deadline: Millis,
        del_sent: bool,
    },
    Stopped,
}

/// Grafana's Redis peer. See the module docs.
#[derive(Debug)]
pub struct RedisPeer {
    settings: RedisSettings,
    layout: RedisLayout,
    own_key: String,
    /// State keys whose channels we subscribe to.
    keys: Vec<String>,
    lifecycle: Lifecycle,
    rng: SmallRng,
    now: Millis,
    unix: UnixMillis,
    links: Vec<LinkState>,
    /// Sentinel mode: the Sentinels and the master they named.
    sentinel: Option<Discovery>,
    /// Cluster mode: the slot map and the masters.
    cluster: Option<Topology>,
    /// The subscriber link reconnected: once its subscriptions are confirmed, ask for every
    /// full state and push ours (what was published meanwhile is not replayed).
    resubscribing: bool,
    members: Vec<String>,
    members_read_at: Option<Millis>,
    scanned: usize,
    scan: Option<Scan>,
    scans_started: u64,
    next_beat: Millis,
    next_push: Millis,
    answer_due: Option<Millis>,
    last_answer: Option<Millis>,
    /// A full-state request to publish once the command link is up.
    request_due: bool,
    /// [`RedisEvent::FullStateWanted`] was emitted and not answered yet.
    full_state_wanted: bool,
    outbox: VecDeque<Outgoing>,
    outbox_bytes: usize,
    chunks: VecDeque<Vec<u8>>,
    full_state_in_flight: usize,
    echoes: Echoes,
    stopping: Stopping,
    events: VecDeque<RedisEvent>,
    actions: VecDeque<LinkAction>,
    stats: RedisStats,
}

impl RedisPeer {
    /// A peer starting at `now`, with the states under `keys`; both links open at once (in
    /// Sentinel mode the Sentinel link does, and the others once it has named the master).
    pub fn new(
        settings: RedisSettings,
        keys: &[&str],
        now: Millis,
        unix: UnixMillis,
        seed: u64,
    ) -> Self {
        let layout = RedisLayout::new(&settings.prefix);
        let sentinel = settings.sentinel.clone().map(Discovery::new);
        let cluster = settings.cluster.clone().map(Topology::new);
        let first: &[Link] = if sentinel.is_some() { &[Link::Sentinel] } else { &Link::DATA };
        let links = Link::ALL
            .iter()
            .map(|l| if first.contains(l) { LinkState::new(now) } else { LinkState::idle() })
            .collect();
        Self {
            own_key: layout.heartbeat_key(&settings.name),
            layout,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            lifecycle: Lifecycle::new(
                now,
                SETTLE_INTERVAL,
                settings.settle_timeout,
                settings.maintenance_interval,
            ),
            rng: SmallRng::seed_from_u64(seed),
            now,
            unix,
            links,
            sentinel,
            cluster,
            resubscribing: false,
            members: Vec::new(),
            members_read_at: None,
            scanned: 0,
            scan: None,
            scans_started: 0,
            next_beat: now + HEARTBEAT_INTERVAL,
            next_push: now + settings.push_pull_interval,
            answer_due: None,
            last_answer: None,
            request_due: false,
            full_state_wanted: false,
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            chunks: VecDeque::new(),
            full_state_in_flight: 0,
            echoes: Echoes::default(),
            stopping: Stopping::Running,
            events: VecDeque::new(),
            actions: first.iter().map(|l| LinkAction::Open(*l)).collect(),
            stats: RedisStats::default(),
            settings,
        }
    }

    // ---- driver inputs ----

    /// The link's connection is established.
    pub fn handle_connected(&mut self, now: Millis, unix: UnixMillis, link: Link) {
        self.advance(now, unix);
        if link == Link::Sentinel {
            self.sentinel_connected();
            return;
        }
        if let Link::Master(_) = link {
            self.master_connected(link);
            return;
        }
        let reconnect = self.link(link).ever_up;
        let s = &self.settings;
        let auth = s
            .password
            .clone()
            .map(|password| Command::Auth { username: s.username.clone(), password });
        // A cluster has database 0 only (Grafana's cluster client ignores `ha_redis_db`).
        let select = (link == Link::Command && s.db != 0 && s.cluster.is_none())
            .then_some(Command::Select(s.db));
        let l = self.link_mut(link);
        l.state = State::Up;
        l.ever_up = true;
        l.control.extend(auth.into_iter().chain(select));
        match link {
            Link::Command if self.in_cluster() => self.refresh_map(),
            Link::Command => {
                self.heartbeat();
                self.start_scan();
            }
            Link::Subscriber => {
                let mut channels =
                    vec![self.layout.full_state_channel(), self.layout.request_channel()];
                channels.extend(self.keys.iter().map(|k| self.layout.state_channel(k)));
                self.link_mut(link).control.push_back(Command::Subscribe(channels));
                self.resubscribing = reconnect;
            }
            Link::Sentinel | Link::Master(_) => {}
        }
        if reconnect {
            // Either side may have missed messages while the link was down.
            self.request_due = true;
            self.want_full_state();
        }
    }

    /// The link's connection failed or closed: `reason` for the counters, `why` for the log.
    pub fn handle_disconnected(
        &mut self,
        now: Millis,
        unix: UnixMillis,
        link: Link,
        reason: LinkFailure,
        why: &str,
    ) {
        self.advance(now, unix);
        if matches!(self.link(link).state, State::Down { .. }) {
            return;
        }
        self.fail_link(link, reason, why.to_owned());
    }

    /// A reply or a pub/sub message arrived on `link`.
    pub fn handle_value(&mut self, now: Millis, unix: UnixMillis, link: Link, value: redis::Value) {
        self.advance(now, unix);
        if !self.link(link).is_up() {
            return;
        }
        match link {
            Link::Command | Link::Master(_) => self.on_reply(link, value),
            Link::Subscriber => self.on_subscriber_value(value),
            Link::Sentinel => self.on_sentinel_value(value),
        }
    }

    /// [`Self::poll_timeout`] passed (early or repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Millis, unix: UnixMillis) {
        self.advance(now, unix);
        for link in Link::ALL {
            self.check_link(link);
        }
        if self.members_read_at.is_some_and(|at| now.since(at) >= MEMBERS_VALID_FOR) {
            self.members.clear();
            self.members_read_at = None;
        }
        if self.stopping != Stopping::Running {
            self.check_shutdown();
            return;
        }
        if now >= self.next_beat {
            self.next_beat = now + HEARTBEAT_INTERVAL;
            self.heartbeat();
            self.start_scan();
            self.refresh_map();
            self.ping(Link::Subscriber);
            self.ping(Link::Sentinel);
        }
        let due = self.lifecycle.handle_timeout(now, self.members.len());
        if due.ready {
            self.events.push_back(RedisEvent::Ready);
            self.request_due = true;
        }
        if due.maintain {
            self.events.push_back(RedisEvent::Maintain);
        }
        if now >= self.next_push {
            self.next_push = now + self.settings.push_pull_interval;
            self.want_full_state();
        }
        if self.answer_due.is_some_and(|at| now >= at) {
            self.answer_due = None;
            self.last_answer = Some(now);
            self.want_full_state();
        }
    }

    // ---- host inputs ----

    /// A state registered after start: subscribe to its channel too.
    pub fn add_key(&mut self, key: &str) {
        if self.keys.iter().any(|k| k == key) {
            return;
        }
        self.keys.push(key.to_owned());
        if self.link(Link::Subscriber).is_up() {
            let channel = self.layout.state_channel(key);
            self.link_mut(Link::Subscriber).control.push_back(Command::Subscribe(vec![channel]));
        }
    }

    /// Room for updates ([`Self::publish`] calls that will not be refused).
    pub fn publish_room(&self) -> usize {
        if self.outbox_bytes >= OUTBOX_BYTES { 0 } else { OUTBOX_LEN - self.outbox.len() }
    }

    /// Send an update of the state under `key`. `delimited` says its data is a sequence of
    /// length-delimited entries (the notification log, silences), so that consecutive updates
    /// may travel as one message. Refused when [`OUTBOX_LEN`] messages or [`OUTBOX_BYTES`]
    /// wait: the caller keeps the update until there is room.
    pub fn publish(&mut self, key: &str, data: &[u8], delimited: bool) -> Result<(), OutboxFull> {
        if self.outbox_bytes + data.len() > OUTBOX_BYTES && !self.outbox.is_empty() {
            // Not counted as an overflow: the caller keeps the update and retries when room
            // comes; a loss is counted where one happens.
            return Err(OutboxFull);
        }
        self.outbox_bytes += data.len();
        if let Some(last) = self.outbox.back_mut()
            && delimited
            && last.delimited
            && last.key == key
            && last.data.len() + data.len() <= MESSAGE_BYTES
        {
            last.data.extend_from_slice(data);
            return Ok(());
        }
        if self.outbox.len() >= OUTBOX_LEN {
            self.outbox_bytes -= data.len();
            return Err(OutboxFull);
        }
        self.outbox.push_back(Outgoing { key: key.to_owned(), data: data.to_vec(), delimited });
        Ok(())
    }

    /// Our full state, as chunks each encoding a `FullState` (after
    /// [`RedisEvent::FullStateWanted`]). A full state still waiting is replaced.
    pub fn publish_full_state(&mut self, chunks: Vec<Vec<u8>>) {
        self.full_state_wanted = false;
        self.chunks = chunks.into();
        if let Stopping::Draining { .. } = self.stopping {
            self.check_shutdown();
        }
    }

    /// Stop: a last full state, then `DEL` of our heartbeat; [`RedisEvent::Stopped`] follows.
    pub fn shutdown(&mut self, now: Millis, unix: UnixMillis) {
        self.advance(now, unix);
        if self.stopping != Stopping::Running {
            return;
        }
        if !self.link(Link::Command).is_up() {
            self.stop();
            return;
        }
        self.stopping = Stopping::Draining { deadline: now + SHUTDOWN_TIMEOUT, del_sent: false };
        self.full_state_wanted = false;
        self.want_full_state();
    }

    // ---- outputs ----

    /// A link to open or close.
    pub fn poll_link(&mut self) -> Option<LinkAction> {
        self.actions.pop_front()
    }

    /// The next command to write on `link` (nothing while it is not up, or while
    /// [`MAX_IN_FLIGHT`] commands wait for replies).
    pub fn poll_command(&mut self, link: Link) -> Option<Command> {
        let l = self.link(link);
        if !l.is_up() || l.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        if let Some(cmd) = self.link_mut(link).control.pop_front() {
            self.sent(link, &cmd);
            return Some(cmd);
        }
        if link != Link::Command || self.stopping == Stopping::Stopped {
            return None;
        }
        if let Stopping::Draining { del_sent: false, .. } = self.stopping {
            self.check_shutdown();
            if let Some(cmd) = self.link_mut(link).control.pop_front() {
                self.sent(link, &cmd);
                return Some(cmd);
            }
        }
        if self.request_due {
            self.request_due = false;
            let cmd = Command::Publish {
                channel: self.layout.request_channel(),
                payload: self.settings.name.clone().into_bytes(),
            };
            self.sent(link, &cmd);
            return Some(cmd);
        }
        let cmd = self.next_publish()?;
        self.sent(link, &cmd);
        Some(cmd)
    }

    /// What the host should hear or do.
    pub fn poll_event(&mut self) -> Option<RedisEvent> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let links = Link::ALL.map(|l| self.link(l).deadline(REPLY_TIMEOUT));
        let stop = match self.stopping {
            Stopping::Draining { deadline, .. } => Some(deadline),
            _ => None,
        };
        let members = self.members_read_at.map(|at| at + MEMBERS_VALID_FOR);
        earliest(
            [
                Some(self.next_beat),
                Some(self.next_push),
                self.answer_due,
                self.lifecycle.poll_timeout(),
                members,
                stop,
            ]
            .into_iter()
            .chain(links),
        )
    }

    // ---- accessors ----

    /// The live members' heartbeat keys, sorted byte-wise.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Keys under the prefix at the last read (Grafana's `ClusterSize()`).
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Our index among the members (Grafana's `Position()`); blind, index 0, when our own
    /// heartbeat is not among them (not read yet, or Redis unreadable for a minute).
    pub fn position(&self) -> Position {
        let index = self.members.iter().position(|k| *k == self.own_key);
        Position { index: index.unwrap_or(0), visible: self.members.len(), blind: index.is_none() }
    }

    /// Whether the peer settled.
    pub fn is_ready(&self) -> bool {
        self.lifecycle.is_ready()
    }

    /// Whether `link` is connected.
    pub fn is_up(&self, link: Link) -> bool {
        self.link(link).is_up()
    }

    /// Where `link` connects: a Sentinel, or the master a Sentinel named (Sentinel mode);
    /// `None` outside Sentinel mode for the data links, which go to the configured server.
    pub fn target(&self, link: Link) -> Option<&str> {
        if let Some(t) = &self.cluster {
            return t.target(link);
        }
        let d = self.sentinel.as_ref()?;
        match link {
            Link::Sentinel => Some(d.current()),
            Link::Command | Link::Subscriber => d.master.as_deref(),
            Link::Master(_) => None,
        }
    }

    /// The master the Sentinels named last (Sentinel mode).
    pub fn master(&self) -> Option<&str> {
        self.sentinel.as_ref().and_then(|d| d.master.as_deref())
    }

    /// Our name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The layout in use.
    pub fn layout(&self) -> &RedisLayout {
        &self.layout
    }

    /// Update messages waiting to be sent.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Counters.
    pub fn stats(&self) -> RedisStats {
        self.stats
    }

    // ---- internals ----

    fn advance(&mut self, now: Millis, unix: UnixMillis) {
        self.now = self.now.max(now);
        self.unix = unix;
    }

    fn link(&self, link: Link) -> &LinkState {
        &self.links[link.index()]
    }

    fn link_mut(&mut self, link: Link) -> &mut LinkState {
        &mut self.links[link.index()]
    }

    fn want_full_state(&mut self) {
        if !self.full_state_wanted {
            self.full_state_wanted = true;
            self.events.push_back(RedisEvent::FullStateWanted);
        }
    }

    fn heartbeat(&mut self) {
        let key = self.own_key.clone();
        let link = self.key_link(&key);
        let Some(link) = link.filter(|l| self.link(*l).is_up()) else {
            self.events.push_back(RedisEvent::Heartbeat(None));
            return;
        };
        let cmd = self.heartbeat_command();
        self.link_mut(link).control.push_back(cmd);
    }

    fn heartbeat_command(&self) -> Command {
        let value = self.unix.0.div_euclid(1000).to_string();
        Command::Set { key: self.own_key.clone(), value, ttl_secs: HEARTBEAT_TTL_SECS }
    }

    /// Start a membership read: `SCAN` on the command link, or on every master in Cluster
    /// mode (each holds its own keys only), once all of them are up: a read of some masters
    /// would leave members out and shift positions.
    fn start_scan(&mut self) {
        let links = if self.in_cluster() { self.master_links() } else { vec![Link::Command] };
        if self.scan.is_some() || links.is_empty() || !links.iter().all(|l| self.link(*l).is_up()) {
            return;
        }
        self.scans_started += 1;
        self.scan = Some(Scan { id: self.scans_started, scanning: links.len(), ..Scan::default() });
        for link in links {
            self.queue_scan_page(link, 0);
        }
    }

    fn queue_scan_page(&mut self, link: Link, cursor: u64) {
        let cmd =
            Command::Scan { cursor, pattern: self.layout.member_pattern(), count: SCAN_COUNT };
        self.link_mut(link).control.push_back(cmd);
    }

    /// A ping on a link that otherwise only listens, so a dead one is noticed.
    fn ping(&mut self, link: Link) {
        let l = self.link(link);
        if l.is_up() && !l.in_flight.iter().any(|(s, _)| *s == Sent::Ping) {
            self.link_mut(link).control.push_back(Command::Ping);
        }
    }

    /// Record what was sent, to read its reply.
    fn sent(&mut self, link: Link, cmd: &Command) {
        let sent = match cmd {
            Command::Auth { .. } => Sent::Auth,
            Command::Select(_) => Sent::Select,
            Command::Set { .. } => Sent::Heartbeat,
            Command::Scan { .. } => Sent::Scan(self.scan.as_ref().map_or(0, |s| s.id)),
            Command::Mget(keys) => Sent::Mget(self.scan.as_ref().map_or(0, |s| s.id), keys.clone()),
            Command::Publish { channel, payload } => {
                let kind = if *channel == self.layout.request_channel() {
                    MsgKind::Request
                } else if *channel == self.layout.full_state_channel() {
                    self.full_state_in_flight += payload.len();
                    MsgKind::FullState
                } else {
                    MsgKind::Update
                };
                if kind != MsgKind::Request {
                    self.echoes.sent(payload);
                }
                Sent::Publish(kind, payload.len())
            }
            Command::Subscribe(_) => Sent::Subscribe,
            Command::Del(_) => Sent::Del,
            Command::Ping => Sent::Ping,
            Command::SentinelMaster(_) => Sent::Master,
            Command::ClusterSlots => Sent::Slots,
            Command::Asking => Sent::Asking,
        };
        let now = self.now;
        self.link_mut(link).in_flight.push_back((sent, now));
    }

    /// The next full-state chunk (while few chunk bytes are in flight) or update message.
    fn next_publish(&mut self) -> Option<Command> {
        if self.full_state_in_flight < FULL_STATE_IN_FLIGHT_BYTES
            && let Some(chunk) = self.chunks.pop_front()
        {
            return Some(Command::Publish {
                channel: self.layout.full_state_channel(),
                payload: chunk,
            });
        }
        if let Stopping::Draining { .. } = self.stopping {
            // Updates queued at shutdown are in the last full state.
            return None;
        }
        let out = self.outbox.pop_front()?;
        self.outbox_bytes -= out.data.len();
        let channel = self.layout.state_channel(&out.key);
        let payload = Part { key: out.key, data: out.data }.encode_to_vec();
        Some(Command::Publish { channel, payload })
    }

    fn fail_link(&mut self, link: Link, reason: LinkFailure, what: String) {
        let what = if link == Link::Sentinel { self.sentinel_failed(what) } else { what };
        self.stats.disconnects += 1;
        self.stats.link_failures[reason.index()] += 1;
        // Publishes in flight are lost with the link; the full-state exchange after the
        // reconnect carries what they held.
        let lost: Vec<(MsgKind, usize)> = self
            .link(link)
            .in_flight
            .iter()
            .filter_map(|(s, _)| match s {
                Sent::Publish(kind, len) => Some((*kind, *len)),
                _ => None,
            })
            .collect();
        for (kind, len) in lost {
            self.stats.publish_failed[kind.index()] += 1;
            if kind == MsgKind::FullState {
                self.full_state_in_flight = self.full_state_in_flight.saturating_sub(len);
            }
        }
        let keyed =
            matches!(link, Link::Master(_)) || (link == Link::Command && !self.in_cluster());
        if keyed {
            self.abandon_scan();
            if self.link(link).in_flight.iter().any(|(s, _)| *s == Sent::Heartbeat) {
                self.events.push_back(RedisEvent::Heartbeat(None));
            }
        } else if link == Link::Subscriber {
            self.echoes.clear();
        }
        if let Some(t) = self.cluster.as_mut()
            && matches!(link, Link::Command | Link::Subscriber)
        {
            t.next_home(link);
        }
        self.links[link.index()].down(self.now, &mut self.rng);
        self.events.push_back(RedisEvent::Failure { link, what });
        if self.stopping != Stopping::Running && (link == Link::Command || keyed) {
            self.stop();
        }
        if matches!(link, Link::Master(_)) && reason != LinkFailure::Removed {
            // The master may have gone (its slots taken over): ask for the map again.
            self.refresh_map();
        }
        // The master may have moved and its notice been missed; a move already known needs
        // no question.
        if link != Link::Sentinel && reason != LinkFailure::Failover {
            self.rediscover();
        }
    }

    /// Give up on a link whose connect or oldest reply is overdue; reopen one due for retry.
    fn check_link(&mut self, link: Link) {
        let now = self.now;
        match self.link(link).state {
            State::Down { retry_at } if now >= retry_at && self.stopping == Stopping::Running => {
                self.actions.push_back(LinkAction::Open(link));
                self.link_mut(link).state = State::Connecting { deadline: now + CONNECT_TIMEOUT };
            }
            State::Connecting { deadline } if now >= deadline => {
                self.actions.push_back(LinkAction::Close(link));
                self.fail_link(link, LinkFailure::Timeout, "connect timed out".into());
            }
            State::Up if self.link(link).deadline(REPLY_TIMEOUT).is_some_and(|at| now >= at) => {
                self.actions.push_back(LinkAction::Close(link));
                self.fail_link(
                    link,
                    LinkFailure::Timeout,
                    format!("no reply in {REPLY_TIMEOUT:?}"),
                );
            }
            _ => {}
        }
    }

    /// A reply on the command link (or a master's): it answers the oldest command in flight.
    fn on_reply(&mut self, link: Link, value: redis::Value) {
        let Some((sent, at)) = self.link_mut(link).in_flight.pop_front() else {
            self.stats.unexpected += 1;
            return;
        };
        if let redis::Value::ServerError(e) = &value {
            if self.redirected(&sent, e.code(), e.details()) {
                return;
            }
            if !self.not_a_master(e.code(), &e.to_string()) {
                self.on_error_reply(link, sent, e.to_string());
            }
            return;
        }
        self.link_mut(link).healthy();
        match sent {
            Sent::Heartbeat => {
                let rtt = self.now.since(at);
                self.events.push_back(RedisEvent::Heartbeat(Some(rtt)));
            }
            Sent::Scan(id) => self.on_scan_page(link, id, value),
            Sent::Mget(id, keys) => self.on_mget(id, keys, value),
            Sent::Slots => self.on_slots(&value),
            Sent::Publish(kind, len) => {
                self.stats.sent[kind.index()] += 1;
                self.stats.sent_bytes[kind.index()] += len as u64;
                if kind == MsgKind::FullState {
                    self.full_state_in_flight = self.full_state_in_flight.saturating_sub(len);
                }
            }
            Sent::Del => self.stop(),
            Sent::Auth
            | Sent::Select
            | Sent::Subscribe
            | Sent::Ping
            | Sent::Master
            | Sent::Asking => {}
        }
    }

    fn on_error_reply(&mut self, link: Link, sent: Sent, what: String) {
        match sent {
            Sent::Publish(kind, len) => {
                self.stats.publish_failed[kind.index()] += 1;
                if kind == MsgKind::FullState {
                    self.full_state_in_flight = self.full_state_in_flight.saturating_sub(len);
                }
            }
            Sent::Heartbeat => self.events.push_back(RedisEvent::Heartbeat(None)),
            Sent::Scan(id) | Sent::Mget(id, _) => {
                if self.scan.as_ref().is_some_and(|s| s.id == id) {
                    self.abandon_scan();
                }
            }
            // `CLUSTER SLOTS` refused (cluster support off): the next tick asks again.
            Sent::Slots | Sent::Asking => {}
            Sent::Del => self.stop(),
            Sent::Auth | Sent::Select | Sent::Subscribe | Sent::Ping | Sent::Master => {
                // The connection is unusable (a wrong password, a missing database): drop it
                // and retry with backoff, saying why.
                let reason =
                    if sent == Sent::Auth { LinkFailure::Auth } else { LinkFailure::Refused };
                self.actions.push_back(LinkAction::Close(link));
                self.fail_link(link, reason, what);
                return;
            }
        }
        self.events.push_back(RedisEvent::Failure { link, what });
    }

    /// Drop the membership read in progress and whatever of it waits to be sent.
    fn abandon_scan(&mut self) {
        self.scan = None;
        for l in &mut self.links {
            l.control.retain(|c| !matches!(c, Command::Scan { .. } | Command::Mget(_)));
        }
    }

    fn on_scan_page(&mut self, link: Link, id: u64, value: redis::Value) {
        if self.scan.as_ref().is_none_or(|s| s.id != id) {
            return;
        }
        let Ok((cursor, page)) = redis::from_redis_value::<(u64, Vec<Vec<u8>>)>(value) else {
            self.stats.unexpected += 1;
            self.abandon_scan();
            return;
        };
        let Some(scan) = self.scan.as_mut() else { return };
        let room = MAX_SCANNED_KEYS.saturating_sub(scan.keys.len());
        let truncated = page.len() > room;
        scan.keys.extend(page.into_iter().take(room).filter_map(|k| String::from_utf8(k).ok()));
        if truncated {
            self.stats.scans_truncated += 1;
        }
        if cursor != 0 && !truncated {
            self.queue_scan_page(link, cursor);
            return;
        }
        scan.scanning = scan.scanning.saturating_sub(1);
        if scan.scanning == 0 {
            self.read_scanned();
        }
    }

    /// Every `SCAN` is done: read the keys found, with one `MGET` (one per slot in a
    /// cluster, where a multi-slot `MGET` is refused), on the link that holds them.
    fn read_scanned(&mut self) {
        let Some(scan) = self.scan.as_mut() else { return };
        // A key SCAN returns twice is read twice; `live_members` keeps it once.
        let keys = std::mem::take(&mut scan.keys);
        if keys.is_empty() {
            self.scan = None;
            self.set_members(&[], &[]);
            return;
        }
        let mut groups: Vec<(Option<Link>, u16, Vec<String>)> = Vec::new();
        for key in keys {
            let group = if self.in_cluster() { cluster::slot(&key) } else { 0 };
            match groups.iter_mut().find(|(_, s, _)| *s == group) {
                Some((_, _, g)) => g.push(key),
                None => groups.push((self.key_link(&key), group, vec![key])),
            }
        }
        let mut queued = Vec::with_capacity(groups.len());
        for (link, _, keys) in groups {
            match link.filter(|l| self.link(*l).is_up()) {
                Some(link) => queued.push((link, Command::Mget(keys))),
                None => {
                    // No master for that slot now: the next tick reads again.
                    self.abandon_scan();
                    return;
                }
            }
        }
        if let Some(scan) = self.scan.as_mut() {
            scan.reading = queued.len();
        }
        for (link, cmd) in queued {
            self.link_mut(link).control.push_back(cmd);
        }
    }

    fn on_mget(&mut self, id: u64, keys: Vec<String>, value: redis::Value) {
        let Some(scan) = self.scan.as_mut().filter(|s| s.id == id) else { return };
        match redis::from_redis_value::<Vec<Option<Vec<u8>>>>(value) {
            Ok(values) if values.len() == keys.len() => {
                scan.values.extend(keys.into_iter().zip(values));
                scan.reading = scan.reading.saturating_sub(1);
                if scan.reading == 0 {
                    let (keys, values): (Vec<String>, Vec<Option<Vec<u8>>>) =
                        std::mem::take(&mut scan.values).into_iter().unzip();
                    self.scan = None;
                    self.set_members(&keys, &values);
                }
            }
            _ => {
                self.stats.unexpected += 1;
                self.abandon_scan();
            }
        }
    }

    fn set_members(&mut self, keys: &[String], values: &[Option<Vec<u8>>]) {
        let pairs = keys.iter().map(String::as_str).zip(values.iter().map(Option::as_deref));
        self.members = live_members(pairs, self.unix.0.div_euclid(1000));
        self.members_read_at = Some(self.now);
        self.scanned = keys.len();
    }

    /// A value on the subscriber link: a message, a subscription confirmation, a pong, or the
    /// reply to `AUTH`.
    fn on_subscriber_value(&mut self, value: redis::Value) {
        let items = match value {
            redis::Value::Array(items) => items,
            redis::Value::Push { kind, mut data } => {
                data.insert(0, redis::Value::BulkString(kind.to_string().into_bytes()));
                data
            }
            redis::Value::ServerError(e) => {
                // Only handshake commands get replies here, AUTH first: its refusals have
                // codes of their own (`WRONGPASS`, and `NOAUTH`/`NOPERM` for what followed).
                let reason = match e.code() {
                    "WRONGPASS" | "NOAUTH" | "NOPERM" => LinkFailure::Auth,
                    _ => LinkFailure::Refused,
                };
                self.actions.push_back(LinkAction::Close(Link::Subscriber));
                self.fail_link(Link::Subscriber, reason, e.to_string());
                return;
            }
            _ => {
                // `+OK` to AUTH.
                self.answered(Link::Subscriber, Sent::Auth);
                return;
            }
        };
        let mut items = items.into_iter();
        let kind = match items.next() {
            Some(redis::Value::BulkString(k)) => k,
            _ => {
                self.stats.unexpected += 1;
                return;
            }
        };
        match (kind.as_slice(), items.next(), items.next()) {
            (
                b"message",
                Some(redis::Value::BulkString(channel)),
                Some(redis::Value::BulkString(payload)),
            ) => {
                self.link_mut(Link::Subscriber).healthy();
                self.on_message(&channel, payload);
            }
            (b"subscribe", _, _) => {
                self.answered(Link::Subscriber, Sent::Subscribe);
                if std::mem::take(&mut self.resubscribing) {
                    // Subscribed again: what others answer now reaches us, and what we push
                    // reaches everyone subscribed before us.
                    self.request_due = true;
                    self.want_full_state();
                }
            }
            (b"pong", _, _) => self.answered(Link::Subscriber, Sent::Ping),
            _ => self.stats.unexpected += 1,
        }
    }

    /// The oldest command of this kind on a listening link was answered.
    fn answered(&mut self, link: Link, kind: Sent) {
        let l = self.link_mut(link);
        if let Some(i) = l.in_flight.iter().position(|(s, _)| *s == kind) {
            l.in_flight.remove(i);
            l.healthy();
        }
    }

    fn on_message(&mut self, channel: &[u8], payload: Vec<u8>) {
        let Ok(channel) = std::str::from_utf8(channel) else {
            self.stats.unexpected += 1;
            return;
        };
        let kind = match self.layout.classify(channel, &payload) {
            Some(RedisInbound::Request(name)) => {
                if name != self.settings.name.as_bytes() && self.stopping == Stopping::Running {
                    // A burst of starting peers (or a client spamming the channel) costs one
                    // full state per second: every requester receives that broadcast anyway.
                    let earliest = self.last_answer.map_or(self.now, |t| t + ANSWER_SPACING);
                    self.answer_due = Some(self.answer_due.map_or(earliest, |d| d.min(earliest)));
                }
                return;
            }
            Some(RedisInbound::FullState(_)) => MsgKind::FullState,
            Some(RedisInbound::Update(_)) => MsgKind::Update,
            None => {
                self.stats.unexpected += 1;
                return;
            }
        };
        if self.echoes.is_own(&payload) {
            self.stats.echoes_skipped += 1;
            return;
        }
        self.stats.received[kind.index()] += 1;
        self.stats.received_bytes[kind.index()] += payload.len() as u64;
        self.events.push_back(match kind {
            MsgKind::FullState => RedisEvent::FullState(payload),
            _ => RedisEvent::Update(payload),
        });
    }

    fn check_shutdown(&mut self) {
        let Stopping::Draining { deadline, del_sent } = self.stopping else { return };
        if self.now >= deadline {
            self.stop();
            return;
        }
        if del_sent || self.full_state_wanted || !self.chunks.is_empty() {
            return;
        }
        let key = self.own_key.clone();
        let Some(link) = self.key_link(&key).filter(|l| self.link(*l).is_up()) else {
            // Nothing holds the heartbeat now: it expires on its own.
            self.stop();
            return;
        };
        self.link_mut(link).control.push_back(Command::Del(key));
        self.stopping = Stopping::Draining { deadline, del_sent: true };
    }

    fn stop(&mut self) {
        if self.stopping != Stopping::Stopped {
            self.stopping = Stopping::Stopped;
            self.events.push_back(RedisEvent::Stopped);
        }
    }
}

/// [`RedisPeer::publish`] refused an update: [`OUTBOX_LEN`] messages wait already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Redis outbox is full")]
pub struct OutboxFull;

#[cfg(test)]
mod tests;
