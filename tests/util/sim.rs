//! A deterministic network simulator for SWIM cores.
//!
//! N [`Swim`] cores run on one thread against a virtual network and virtual clocks. A single
//! seeded RNG decides loss, duplication, delay (and so reordering), and every core is seeded
//! from it, so a seed replays a run exactly. The simulator plays the part of the mio driver —
//! it only moves bytes, delimits stream frames with the core's own codec, and reports stream
//! outcomes — plus the part of Alertmanager's peer loop that re-joins failed and missing peers
//! (every 10 s and 15 s respectively), which is what heals a cluster after a long partition.
//!
//! Each node has its own clock: a random offset and a drift of up to ±0.1 %, so no two cores
//! agree on what time it is, as on real machines; wall clocks are skewed by up to ±100 ms.
//!
//! Every core carries Alertmanager's cluster layer with a silences state, pumped after every
//! input as the node driver does, so replicated state converges (or not) under the same faults.

/// The core under simulation.
pub type Swim = hearsay::core::swim::Swim<Cluster>;

/// Wall-clock time at simulation start (2026-11-23), in Unix ms.
const WALL_ORIGIN_MS: i64 = 1_795_400_000_000;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hearsay::core::UnixMillis;
use hearsay::core::cluster::{self, Cluster};
use hearsay::core::config::SwimConfig;
use hearsay::core::state::silences::{
    Matcher, MatcherSet, MatcherType, Silence, Silences, SilencesConfig,
};
use hearsay::core::swim::{Event, MemberChange, MemberState, StreamFailure, StreamId};
use hearsay::core::wire::StreamFrame;
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

/// Global simulation time step in ms.
const STEP_MS: u64 = 5;
/// Alertmanager re-joins peers it saw fail every 10 s (`reconnectInterval`).
const RECONNECT_MS: u64 = 10_000;
/// Alertmanager re-joins configured peers missing from the member list every 15 s.
const REFRESH_MS: u64 = 15_000;

struct Node {
    name: NodeName,
    addr: SocketAddr,
    swim: Option<Swim>,
    epoch: u64,
    clock_offset_ms: u64,
    drift_ppm: i64,
    wall_skew_ms: i64,
    peers: Vec<SocketAddr>,
    failed: BTreeMap<NodeName, SocketAddr>,
    next_reconnect: u64,
    next_refresh: u64,
    deadline: u64,
    group: u8,
}

enum Delivery {
    Packet { from: SocketAddr, bytes: Vec<u8> },
    Stream { from_node: usize, from_epoch: u64, id: StreamId, bytes: Vec<u8>, expect_reply: bool },
    Reply { epoch: u64, id: StreamId, result: Result<Vec<u8>, StreamFailure> },
}

struct InFlight {
    at: u64,
    seq: u64,
    to: usize,
    delivery: Delivery,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
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
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    faults: Faults,
    /// Datagrams sent, for reporting.
    pub packets: u64,
}

impl Sim {
    /// `n` nodes, not yet started. Every node is configured with nodes 0 and 1 as its
    /// `--cluster.peer`s (minus itself).
    pub fn new(seed: u64, n: usize, faults: Faults) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let seeds: Vec<SocketAddr> = (0..n.min(2)).map(addr_of).collect();
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                name: NodeName::from(format!("node-{i:02}")),
                addr: addr_of(i),
                swim: None,
                epoch: 0,
                clock_offset_ms: rng.random_range(0..1_000_000),
                drift_ppm: rng.random_range(-1000..=1000),
                wall_skew_ms: rng.random_range(-100..=100),
                peers: seeds.iter().copied().filter(|a| *a != addr_of(i)).collect(),
                failed: BTreeMap::new(),
                next_reconnect: 0,
                next_refresh: 0,
                deadline: 0,
                group: 0,
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Self {
            seed,
            rng,
            now: 0,
            nodes,
            by_addr,
            queue: BinaryHeap::new(),
            seq: 0,
            faults,
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

    /// Start (or restart) node `i` and join its configured peers.
    pub fn start(&mut self, i: usize) {
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let config = SwimConfig::alertmanager(node.name.clone(), node.addr, node.peers.len());
        let seed = self.rng.random();
        let mut states = Cluster::new();
        states.register("sil", Silences::new(SilencesConfig::default(), seed));
        let mut swim = Swim::new(config, states, seed, now).expect("valid config");
        swim.join(now, &node.peers);
        node.swim = Some(swim);
        node.epoch += 1;
        node.failed.clear();
        node.next_reconnect = self.now + RECONNECT_MS;
        node.next_refresh = self.now + REFRESH_MS;
        self.drain(i);
    }

    /// Kill node `i` without a word: its state is lost, packets to it vanish.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].swim = None;
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].swim.is_some()
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
        let swim = self.nodes[i].swim.as_ref().expect("view of a live node");
        swim.members().map(|m| (m.name.clone(), m.state)).collect()
    }

    /// Node `i`'s core.
    pub fn swim(&self, i: usize) -> Option<&Swim> {
        self.nodes[i].swim.as_ref()
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

    fn tick(&mut self, i: usize) {
        if self.nodes[i].swim.is_none() {
            return;
        }
        let now = self.local_now(i);
        if now.0 >= self.nodes[i].deadline {
            self.swim_mut(i).handle_timeout(now);
            self.drain(i);
        }
        self.peer_loops(i, now);
    }

    /// Alertmanager's reconnect and refresh loops (cluster.go `runPeriodicTask`).
    fn peer_loops(&mut self, i: usize, now: Millis) {
        let node = &mut self.nodes[i];
        let mut join = Vec::new();
        if self.now >= node.next_reconnect {
            node.next_reconnect = self.now + RECONNECT_MS;
            join.extend(node.failed.values().copied());
        }
        if self.now >= node.next_refresh {
            node.next_refresh = self.now + REFRESH_MS;
            let swim = node.swim.as_ref().expect("tick of a live node");
            let known: Vec<SocketAddr> =
                swim.members().filter(|m| !m.state.is_gone()).map(|m| m.addr).collect();
            join.extend(node.peers.iter().copied().filter(|p| !known.contains(p)));
        }
        if !join.is_empty() {
            self.swim_mut(i).join(now, &join);
            self.drain(i);
        }
    }

    fn swim_mut(&mut self, i: usize) -> &mut Swim {
        self.nodes[i].swim.as_mut().expect("node is live")
    }

    /// Node `i`'s wall clock.
    fn wall(&self, i: usize) -> UnixMillis {
        UnixMillis(
            WALL_ORIGIN_MS + i64::try_from(self.now).expect("fits") + self.nodes[i].wall_skew_ms,
        )
    }

    /// Create a silence on node `i` (`name="value"`, one hour) and publish it; its ID.
    pub fn set_silence(&mut self, i: usize, value: &str) -> String {
        let wall = self.wall(i);
        let silence = Silence {
            starts_at: wall.into(),
            ends_at: UnixMillis(wall.0 + 3_600_000).into(),
            created_by: "sim".into(),
            matcher_sets: vec![MatcherSet {
                matchers: vec![Matcher::new(MatcherType::Equal, "name", value)],
            }],
            ..Silence::default()
        };
        let states = self.swim_mut(i).delegate_mut();
        let out = states
            .state_mut::<Silences>("sil")
            .expect("registered")
            .set(silence, wall)
            .expect("valid silence");
        for bytes in [out.expired_previous, out.broadcast].into_iter().flatten() {
            states.publish("sil", bytes);
        }
        self.drain(i);
        out.id.as_str().to_owned()
    }

    /// Expire a silence on node `i`.
    pub fn expire_silence(&mut self, i: usize, id: &str) {
        let wall = self.wall(i);
        let states = self.swim_mut(i).delegate_mut();
        if let Ok(Some(bytes)) =
            states.state_mut::<Silences>("sil").expect("registered").expire(id, wall)
        {
            states.publish("sil", bytes);
        }
        self.drain(i);
    }

    /// Node `i`'s silences, sorted.
    pub fn silences(&self, i: usize) -> Vec<SilenceVersion> {
        let swim = self.nodes[i].swim.as_ref().expect("live node");
        let s = swim.delegate().state::<Silences>("sil").expect("registered");
        let wall = self.wall(i);
        let mut out: Vec<_> = s
            .query(&Default::default(), wall)
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

    /// Collect everything node `i` wants done.
    fn drain(&mut self, i: usize) {
        // What the node driver does after every input: wall clock, then the cluster layer's
        // outgoing messages into the core.
        let now = self.local_now(i);
        let wall = self.wall(i);
        let swim = self.swim_mut(i);
        let mut states = std::mem::take(swim.delegate_mut());
        states.set_wall_clock(now, wall);
        cluster::pump(swim, &mut states, now);
        *swim.delegate_mut() = states;
        let from = self.nodes[i].addr;
        let epoch = self.nodes[i].epoch;
        while let Some(t) = self.swim_mut(i).poll_transmit() {
            self.packets += 1;
            self.send_packet(from, t.to, t.bytes);
        }
        while let Some(req) = self.swim_mut(i).poll_stream() {
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
        while let Some(event) = self.swim_mut(i).poll_event() {
            let node = &mut self.nodes[i];
            if let Event::Member { change, member } = event {
                match change {
                    MemberChange::Failed => {
                        node.failed.insert(member.name, member.addr);
                    }
                    MemberChange::Joined | MemberChange::Left => {
                        node.failed.remove(&member.name);
                    }
                    MemberChange::Updated => {}
                }
            }
        }
        let deadline = self.swim_mut(i).poll_timeout().expect("a core always has a next timer");
        self.nodes[i].deadline = deadline.0;
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
        self.seq += 1;
        self.queue.push(Reverse(InFlight { at: self.now + delay, seq: self.seq, to, delivery }));
    }

    fn deliver_due(&mut self) {
        while self.queue.peek().is_some_and(|Reverse(f)| f.at <= self.now) {
            let Some(Reverse(f)) = self.queue.pop() else {
                break;
            };
            self.deliver(f.to, f.delivery);
        }
    }

    fn deliver(&mut self, to: usize, delivery: Delivery) {
        match delivery {
            Delivery::Packet { from, bytes } => {
                let from_node = self.by_addr[&from];
                if self.nodes[to].swim.is_none() || !self.connected(from_node, to) {
                    return;
                }
                let now = self.local_now(to);
                // Peer garbage is counted, not fatal; our own packets must always decode.
                self.swim_mut(to)
                    .handle_packet(now, from, &bytes)
                    .expect("a core's packet decodes");
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
                if self.nodes[to].swim.is_none() || self.nodes[to].epoch != epoch {
                    return;
                }
                let now = self.local_now(to);
                let frame = result.map(|bytes| {
                    if bytes.is_empty() {
                        return bytes;
                    }
                    let swim = self.nodes[to].swim.as_ref().expect("checked above");
                    let len = frame_len(swim, &bytes, false);
                    bytes[..len].to_vec()
                });
                self.swim_mut(to).handle_stream_reply(
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
        if self.nodes[to].swim.is_none() || !self.connected(from_node, to) {
            return Err(StreamFailure::Connect);
        }
        let from = self.nodes[from_node].addr;
        let now = self.local_now(to);
        let len = frame_len(self.nodes[to].swim.as_ref().expect("checked above"), bytes, true);
        let reply = self
            .swim_mut(to)
            .handle_stream(now, from, &bytes[..len])
            .expect("a core's stream decodes");
        self.drain(to);
        Ok(reply)
    }
}

/// The codec must delimit exactly one frame, and it must be the whole write.
fn frame_len(swim: &Swim, bytes: &[u8], inbound: bool) -> usize {
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
