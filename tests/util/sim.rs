//! A deterministic network simulator for gossip peers.
//!
//! N production peer cores — [`GossipPeer`]`<`[`Cluster`]`>`: a SWIM core plus Alertmanager's
//! peer upkeep (re-joining failed members every 10 s, re-resolving the configured peers every
//! 15 s, settle, maintenance) — run on one thread against a virtual network and virtual clocks.
//! A single seeded RNG decides loss, duplication, delay (and so reordering), and every core is
//! seeded from it, so a seed replays a run exactly.
//!
//! The simulator plays the part of the node's drivers and nothing more: it moves datagrams,
//! delimits stream frames with the core's own codec and reports stream outcomes (the mio
//! driver); it pumps the cluster layer after every input, answers `Resolve` with the
//! configured peer addresses (the resolver thread, with a DNS that always answers), runs GC of
//! every state on `Maintain` and records `Ready` (the event loop and its worker). Every
//! protocol decision — when to probe, re-join, refresh, settle, maintain — is the core's.
//!
//! Each node has its own clock: a random offset and a drift of up to ±0.1 %, so no two cores
//! agree on what time it is, as on real machines; wall clocks are skewed by up to ±100 ms.
//!
//! Every core carries Alertmanager's cluster layer with a silences state (no storage: GC does
//! not depend on snapshots), so replicated state converges — and expires — under the same
//! faults. Every datagram and stream frame a core produces must decode at its receiver.

/// The core under simulation: the production gossip peer around a SWIM core.
pub type Peer = GossipPeer<Cluster>;

/// Wall-clock time at simulation start (2026-11-23), in Unix ms.
const WALL_ORIGIN_MS: i64 = 1_795_400_000_000;

/// The key the silences are registered under (Alertmanager's).
const SILENCES: &str = "sil";

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::cluster::{self, Cluster};
use hearsay::core::config::SwimConfig;
use hearsay::core::peer::gossip::{GossipEvent, GossipPeer, Upkeep};
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Silence, Silences, SilencesConfig,
};
use hearsay::core::swim::{MemberState, StreamFailure, StreamId, Swim};
use hearsay::core::wire::{SecretKey, StreamFrame};
use hearsay::core::{Millis, NodeName};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// A silence as one node holds it: ID, last update and end (seconds, nanos): two nodes agree
/// on a silence when these are equal.
pub type SilenceVersion = (String, (i64, i32), (i64, i32));

/// Network faults, applied to every datagram independently.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// One-way delay range in ms (uniform): packets overtake each other when it is wide.
    pub delay_ms: (u64, u64),
}

/// What the nodes run with besides the network.
#[derive(Clone, Debug)]
pub struct Options {
    /// The silences' settings (retention, chiefly).
    pub silences: SilencesConfig,
    /// How often the peer core asks for maintenance (Alertmanager's 15 min is longer than
    /// most scenarios; they pick their own so GC runs).
    pub maintenance: Duration,
    /// Keys every node encrypts with (memberlist's keyring); empty for none.
    pub secret_keys: Vec<SecretKey>,
}

impl Default for Options {
    /// Alertmanager's silences; maintenance every 30 s, so the path runs in every scenario
    /// (with the default 120 h retention it collects nothing). No encryption.
    fn default() -> Self {
        Self {
            silences: SilencesConfig::default(),
            maintenance: Duration::from_secs(30),
            secret_keys: Vec::new(),
        }
    }
}

/// Global simulation time step in ms.
const STEP_MS: u64 = 5;

struct Node {
    name: NodeName,
    addr: SocketAddr,
    peer: Option<Peer>,
    epoch: u64,
    clock_offset_ms: u64,
    drift_ppm: i64,
    wall_skew_ms: i64,
    /// The configured `--cluster.peer` addresses: what our "DNS" resolves them to.
    peers: Vec<SocketAddr>,
    deadline: u64,
    group: u8,
    /// Global time of the core's `Ready`, since the last (re)start.
    ready_at: Option<u64>,
    /// Elements GC collected since the last (re)start.
    collected: usize,
}

enum Delivery {
    Packet { from: SocketAddr, bytes: Vec<u8> },
    Stream { from_node: usize, from_epoch: u64, id: StreamId, bytes: Vec<u8>, expect_reply: bool },
    Reply { epoch: u64, id: StreamId, result: Result<Vec<u8>, StreamFailure> },
}

/// The simulated cluster.
pub struct Sim {
    /// The seed this run replays from.
    pub seed: u64,
    rng: SmallRng,
    /// Global virtual time in ms.
    pub now: u64,
    nodes: Vec<Node>,
    by_addr: BTreeMap<SocketAddr, usize>,
    queue: super::timeline::Timeline<(usize, Delivery)>,
    faults: Faults,
    options: Options,
    /// Datagrams sent, for reporting.
    pub packets: u64,
}

impl Sim {
    /// `n` nodes, not yet started, with the default [`Options`]. Every node is configured
    /// with nodes 0 and 1 as its `--cluster.peer`s (minus itself).
    pub fn new(seed: u64, n: usize, faults: Faults) -> Self {
        Self::with_options(seed, n, faults, Options::default())
    }

    /// `n` nodes, not yet started, running with `options`.
    pub fn with_options(seed: u64, n: usize, faults: Faults, options: Options) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let seeds: Vec<SocketAddr> = (0..n.min(2)).map(addr_of).collect();
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                name: NodeName::from(format!("node-{i:02}")),
                addr: addr_of(i),
                peer: None,
                epoch: 0,
                clock_offset_ms: rng.random_range(0..1_000_000),
                drift_ppm: rng.random_range(-1000..=1000),
                wall_skew_ms: rng.random_range(-100..=100),
                peers: seeds.iter().copied().filter(|a| *a != addr_of(i)).collect(),
                deadline: 0,
                group: 0,
                ready_at: None,
                collected: 0,
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Self {
            seed,
            rng,
            now: 0,
            nodes,
            by_addr,
            queue: super::timeline::Timeline::new(),
            faults,
            options,
            packets: 0,
        }
    }

    /// Number of nodes (live or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// A node's name.
    pub fn name(&self, i: usize) -> &NodeName {
        &self.nodes[i].name
    }

    /// Start (or restart, empty) node `i`: the peer core joins its configured peers itself.
    pub fn start(&mut self, i: usize) {
        let now = self.local_now(i);
        let seed = self.rng.random();
        let node = &mut self.nodes[i];
        // An encrypting node draws its own nonce seed from the simulation's RNG, apart from the
        // member's seed, as the node draws one from the OS: replayable, never shared. Without
        // keys nothing is drawn, so unencrypted scenarios replay as before.
        let nonce_seed: [u8; 32] =
            if self.options.secret_keys.is_empty() { [0; 32] } else { self.rng.random() };
        let config = SwimConfig {
            secret_keys: self.options.secret_keys.clone(),
            ..SwimConfig::alertmanager(node.name.clone(), node.addr, node.peers.len())
        };
        let mut states = Cluster::new();
        states.register(SILENCES, Silences::new(self.options.silences.clone(), seed));
        let swim =
            Swim::with_nonce_seed(config, states, seed, nonce_seed, now).expect("valid config");
        let upkeep = Upkeep {
            maintenance_interval: self.options.maintenance,
            ..Upkeep::alertmanager(!node.peers.is_empty())
        };
        node.peer = Some(GossipPeer::new(swim, upkeep, now, &node.peers));
        node.epoch += 1;
        node.ready_at = None;
        node.collected = 0;
        self.drain(i);
    }

    /// Kill node `i` without a word: its state is lost, packets to it vanish.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].peer = None;
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].peer.is_some()
    }

    /// Indices of running nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.is_up(i)).collect()
    }

    /// Put each node in a group; nothing crosses between groups until [`Self::heal`].
    pub fn partition(&mut self, groups: &[u8]) {
        for (node, g) in self.nodes.iter_mut().zip(groups) {
            node.group = *g;
        }
    }

    /// Remove every partition.
    pub fn heal(&mut self) {
        for node in &mut self.nodes {
            node.group = 0;
        }
    }

    /// Whether `a` and `b` can talk.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.nodes[a].group == self.nodes[b].group
    }

    /// Node `i`'s view: every member it knows and its state.
    pub fn view(&self, i: usize) -> BTreeMap<NodeName, MemberState> {
        let swim = self.peer(i).expect("view of a live node").swim();
        swim.members().map(|m| (m.name.clone(), m.state)).collect()
    }

    /// Node `i`'s peer core.
    pub fn peer(&self, i: usize) -> Option<&Peer> {
        self.nodes[i].peer.as_ref()
    }

    /// When node `i`'s core reported `Ready` (global time), since its last (re)start.
    pub fn ready_at(&self, i: usize) -> Option<u64> {
        self.nodes[i].ready_at
    }

    /// Elements node `i`'s maintenance collected since its last (re)start.
    pub fn collected(&self, i: usize) -> usize {
        self.nodes[i].collected
    }

    /// Run until global time `end`, calling `check` after every step.
    pub fn run_until(&mut self, end: u64, check: &mut dyn FnMut(&Sim)) {
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

    /// The driver's timer: call the core when its deadline has passed.
    fn tick(&mut self, i: usize) {
        if self.nodes[i].peer.is_none() {
            return;
        }
        let now = self.local_now(i);
        if now.0 >= self.nodes[i].deadline {
            self.peer_mut(i).handle_timeout(now);
            self.drain(i);
        }
    }

    fn peer_mut(&mut self, i: usize) -> &mut Peer {
        self.nodes[i].peer.as_mut().expect("node is live")
    }

    fn states_mut(&mut self, i: usize) -> &mut Cluster {
        self.peer_mut(i).swim_mut().delegate_mut()
    }

    fn silences_of(&self, i: usize) -> &Silences {
        let peer = self.peer(i).expect("live node");
        peer.swim().delegate().state::<Silences>(SILENCES).expect("registered")
    }

    /// Node `i`'s wall clock.
    fn wall(&self, i: usize) -> UnixMillis {
        UnixMillis(
            WALL_ORIGIN_MS + i64::try_from(self.now).expect("fits") + self.nodes[i].wall_skew_ms,
        )
    }

    /// Create a silence on node `i` (`name="value"`, one hour) and publish it; its ID.
    pub fn set_silence(&mut self, i: usize, value: &str) -> String {
        self.set_silence_for(i, value, Duration::from_secs(3600))
    }

    /// Create a silence on node `i` (`name="value"`) that ends `lasts` from now by node `i`'s
    /// wall clock, and publish it; its ID.
    pub fn set_silence_for(&mut self, i: usize, value: &str, lasts: Duration) -> String {
        let wall = self.wall(i);
        let lasts_ms = i64::try_from(lasts.as_millis()).expect("fits");
        let silence = Silence {
            starts_at: wall.into(),
            ends_at: UnixMillis(wall.0 + lasts_ms).into(),
            created_by: "sim".into(),
            matcher_sets: vec![MatcherSet {
                matchers: vec![Matcher::new(MatcherType::Equal, "name", value)],
            }],
            ..Silence::default()
        };
        let states = self.states_mut(i);
        let out = states
            .state_mut::<Silences>(SILENCES)
            .expect("registered")
            .set(silence, wall)
            .expect("valid silence");
        for bytes in [out.expired_previous, out.broadcast].into_iter().flatten() {
            states.publish(SILENCES, bytes);
        }
        self.drain(i);
        out.id.as_str().to_owned()
    }

    /// Expire a silence on node `i`.
    pub fn expire_silence(&mut self, i: usize, id: &str) {
        let wall = self.wall(i);
        let states = self.states_mut(i);
        if let Ok(Some(bytes)) =
            states.state_mut::<Silences>(SILENCES).expect("registered").expire(id, wall)
        {
            states.publish(SILENCES, bytes);
        }
        self.drain(i);
    }

    /// Node `i`'s silences, sorted.
    pub fn silences(&self, i: usize) -> Vec<SilenceVersion> {
        let mut out: Vec<_> = self
            .silences_of(i)
            .query(&Default::default(), self.wall(i))
            .into_iter()
            .map(|x| {
                (
                    x.id.clone(),
                    (x.updated_at.seconds, x.updated_at.nanos),
                    (x.ends_at.seconds, x.ends_at.nanos),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Whether node `i` holds silence `id` in any state (expired ones until GC drops them).
    pub fn holds_silence(&self, i: usize, id: &str) -> bool {
        self.silences_of(i).get(id).is_some()
    }

    /// Silences node `i` holds, expired ones included.
    pub fn silence_count(&self, i: usize) -> usize {
        self.silences_of(i).len()
    }

    /// Collect everything node `i` wants done, as the node's drivers do after every input:
    /// pump the cluster layer, send what the core produced, act on its events — until the
    /// events stop (answering one may produce more).
    fn drain(&mut self, i: usize) {
        let now = self.local_now(i);
        let wall = self.wall(i);
        loop {
            self.pump(i, now, wall);
            self.send_outputs(i);
            let events: Vec<GossipEvent> =
                std::iter::from_fn(|| self.peer_mut(i).poll_event()).collect();
            if events.is_empty() {
                break;
            }
            for event in events {
                self.on_event(i, now, wall, event);
            }
        }
        // Round trips are metrics; the node observes them and so forgets them.
        while self.peer_mut(i).poll_rtt().is_some() {}
        let deadline = self.peer_mut(i).poll_timeout().expect("a core always has a next timer");
        self.nodes[i].deadline = deadline.0;
    }

    /// The wall clock, then the cluster layer's outgoing messages into the core.
    fn pump(&mut self, i: usize, now: Millis, wall: UnixMillis) {
        let swim = self.peer_mut(i).swim_mut();
        let mut states = std::mem::take(swim.delegate_mut());
        states.set_wall_clock(now, wall);
        cluster::pump(swim, &mut states, now);
        *swim.delegate_mut() = states;
    }

    /// The datagrams and streams the core wants sent.
    fn send_outputs(&mut self, i: usize) {
        let from = self.nodes[i].addr;
        let epoch = self.nodes[i].epoch;
        while let Some(t) = self.peer_mut(i).poll_transmit() {
            self.packets += 1;
            self.send_packet(from, t.to, t.bytes);
        }
        while let Some(req) = self.peer_mut(i).poll_stream() {
            let delay = self.delay();
            if let Some(&to) = self.by_addr.get(&req.to) {
                let delivery = Delivery::Stream {
                    from_node: i,
                    from_epoch: epoch,
                    id: req.id,
                    bytes: req.bytes,
                    expect_reply: req.expect_reply,
                };
                self.enqueue(delay, to, delivery);
            }
        }
    }

    /// What the event loop and its worker do with the core's events.
    fn on_event(&mut self, i: usize, now: Millis, wall: UnixMillis, event: GossipEvent) {
        match event {
            GossipEvent::Reliable { id, result } => {
                self.states_mut(i).on_reliable(id, &result, now);
            }
            GossipEvent::Ready => self.nodes[i].ready_at = Some(self.now),
            GossipEvent::Maintain => {
                let states = self.states_mut(i);
                let keys: Vec<String> = states.keys().map(str::to_owned).collect();
                let mut collected = 0;
                for key in keys {
                    if let Some(Ok(n)) = states.gc(&key, wall) {
                        collected += n;
                    }
                }
                self.nodes[i].collected += collected;
            }
            GossipEvent::Resolve => {
                // The resolver: the configured peers always resolve to their addresses.
                let peers = self.nodes[i].peers.clone();
                self.peer_mut(i).handle_resolved(now, &peers);
            }
            // Membership news, conflicts, joins and leaves are for the host's log and
            // callers; the core has already acted on them.
            _ => {}
        }
    }

    fn send_packet(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let Some(&j) = self.by_addr.get(&to) else {
            return;
        };
        if self.rng.random_bool(self.faults.loss) {
            return;
        }
        if self.rng.random_bool(self.faults.duplicate) {
            let delay = self.delay();
            self.enqueue(delay, j, Delivery::Packet { from, bytes: bytes.clone() });
        }
        let delay = self.delay();
        self.enqueue(delay, j, Delivery::Packet { from, bytes });
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.faults.delay_ms;
        self.rng.random_range(lo..=hi)
    }

    fn enqueue(&mut self, delay: u64, to: usize, delivery: Delivery) {
        self.queue.push(self.now + delay, (to, delivery));
    }

    fn deliver_due(&mut self) {
        while let Some((to, delivery)) = self.queue.pop_due(self.now) {
            self.deliver(to, delivery);
        }
    }

    fn deliver(&mut self, to: usize, delivery: Delivery) {
        match delivery {
            Delivery::Packet { from, bytes } => {
                let from_node = self.by_addr[&from];
                if self.nodes[to].peer.is_none() || !self.connected(from_node, to) {
                    return;
                }
                let now = self.local_now(to);
                let before = garbage(self.peer_mut(to).swim());
                self.peer_mut(to).handle_packet(now, from, &bytes);
                // The core counts peer garbage; our own cores' packets must always decode.
                assert_eq!(garbage(self.peer_mut(to).swim()), before, "a core's packet decodes");
                self.drain(to);
            }
            Delivery::Stream { from_node, from_epoch, id, bytes, expect_reply } => {
                // Every outcome is reported; a stream without a reply reports an empty frame.
                let result = match self.serve_stream(from_node, to, &bytes) {
                    Ok(reply) if expect_reply => reply.ok_or(StreamFailure::Closed),
                    Ok(_) => Ok(Vec::new()),
                    Err(e) => Err(e),
                };
                let delay = self.delay();
                self.enqueue(delay, from_node, Delivery::Reply { epoch: from_epoch, id, result });
            }
            Delivery::Reply { epoch, id, result } => {
                if self.nodes[to].peer.is_none() || self.nodes[to].epoch != epoch {
                    return;
                }
                let now = self.local_now(to);
                let frame = result.map(|bytes| {
                    if bytes.is_empty() {
                        return bytes;
                    }
                    let swim = self.peer(to).expect("checked above").swim();
                    let len = frame_len(swim, &bytes, false);
                    bytes[..len].to_vec()
                });
                self.peer_mut(to).handle_stream_reply(
                    now,
                    id,
                    frame.as_deref().map_err(Clone::clone),
                );
                self.drain(to);
            }
        }
    }

    /// What the responding driver does with an inbound stream: delimit one frame, hand it to
    /// the core, return its reply, if any.
    fn serve_stream(
        &mut self,
        from_node: usize,
        to: usize,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, StreamFailure> {
        if self.nodes[to].peer.is_none() || !self.connected(from_node, to) {
            return Err(StreamFailure::Connect);
        }
        let from = self.nodes[from_node].addr;
        let now = self.local_now(to);
        let len = frame_len(self.peer(to).expect("checked above").swim(), bytes, true);
        let reply = self
            .peer_mut(to)
            .handle_stream(now, from, &bytes[..len])
            .expect("a core's stream decodes");
        self.drain(to);
        Ok(reply)
    }
}

/// Datagrams and messages a core rejected as undecodable.
fn garbage(swim: &Swim<Cluster>) -> (u64, u64) {
    let stats = swim.stats();
    (stats.packets_rejected, stats.messages_malformed)
}

/// The codec must delimit exactly one frame, and it must be the whole write.
fn frame_len(swim: &Swim<Cluster>, bytes: &[u8], inbound: bool) -> usize {
    for cut in [1, bytes.len() / 2] {
        if cut > 0 && cut < bytes.len() {
            match swim.codec().stream_frame(&bytes[..cut], inbound) {
                Ok(StreamFrame::Incomplete { .. }) => {}
                other => {
                    panic!("a {cut}-byte prefix of a {}-byte frame gave {other:?}", bytes.len())
                }
            }
        }
    }
    match swim.codec().stream_frame(bytes, inbound) {
        Ok(StreamFrame::Complete { len }) if len == bytes.len() => len,
        other => panic!("a whole {}-byte frame gave {other:?}", bytes.len()),
    }
}

/// Node `i`'s virtual address: 10.0.0.1, 10.0.0.2, … (never dialled: nothing leaves the process).
fn addr_of(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("fewer than 2^24 nodes");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 9094)
}
