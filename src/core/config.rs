//! Membership configuration: memberlist's LAN defaults with the overrides Alertmanager and
//! Grafana apply.
//!
//! Every field says its default, its bound, and the memberlist field and Alertmanager flag (or
//! Grafana setting) it mirrors. [`SwimConfig::validate`] checks the bounds; the core refuses to
//! start with an invalid configuration rather than clamp it silently.

use std::net::SocketAddr;
use std::time::Duration;

use super::NodeName;
use super::wire::keyring::MAX_KEYS;
use super::wire::{Codec, EncryptionVersion, IntEncoding, META_MAX_LEN, SecretKey, Vsn};

/// Configuration of one SWIM member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwimConfig {
    /// This node's name, unique in the cluster. memberlist `Name`; Alertmanager: a random ULID
    /// (`--cluster.peer-name` from 0.30). Bound: 1..=255 bytes.
    pub name: NodeName,
    /// Address peers reach us at (IP + gossip port). memberlist `AdvertiseAddr/Port`;
    /// Alertmanager `--cluster.advertise-address` (default: a private IP, port 9094).
    pub advertise: SocketAddr,
    /// Delegate metadata advertised in `alive`. memberlist `Delegate.NodeMeta`; Alertmanager
    /// sends none. Default empty; bound 512 bytes (`MetaMaxSize`).
    pub meta: Vec<u8>,
    /// Cluster label on every packet and stream. memberlist `Label`; Alertmanager
    /// `--cluster.label` (0.26+). Default empty (no label); bound 255 bytes.
    pub label: Vec<u8>,
    /// Protocol version we speak. memberlist `ProtocolVersion`, default 2; bound 2..=5 (version
    /// 1, which distrusts ports, is not supported).
    pub protocol_version: u8,
    /// Delegate protocol versions `[min, max, cur]`. memberlist `DelegateProtocol*`. Default
    /// `[0, 0, 0]`, and in a cluster with Alertmanager or Grafana it **must** stay so: any other
    /// value makes every push/pull merge fail "delegate protocol version incompatible".
    pub delegate_versions: [u8; 3],
    /// How often we probe one member. memberlist `ProbeInterval` (LAN 1 s); Alertmanager
    /// `--cluster.probe-interval` (1 s). Bound: ≥ 1 ms and > `probe_timeout`.
    pub probe_interval: Duration,
    /// How long we wait for a direct ack before asking others. memberlist `ProbeTimeout` (LAN
    /// 500 ms); Alertmanager `--cluster.probe-timeout` (500 ms). Bound: ≥ 1 ms.
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly. memberlist `IndirectChecks` (3). Bound ≤ 16.
    pub indirect_checks: usize,
    /// Retransmit multiplier of membership messages: each is sent `mult × ceil(log10(n+1))`
    /// times. memberlist `RetransmitMult` (4). Bound 1..=64.
    pub retransmit_mult: u32,
    /// Suspicion multiplier. memberlist `SuspicionMult` (LAN 4). Bound 1..=64.
    pub suspicion_mult: u32,
    /// Upper bound of a suspicion timeout as a multiple of the lower. memberlist
    /// `SuspicionMaxTimeoutMult` (6). Bound 1..=64.
    pub suspicion_max_timeout_mult: u32,
    /// Lifeguard awareness ceiling: the probe interval stretches up to this many times.
    /// memberlist `AwarenessMaxMultiplier` (8). Bound 1..=64.
    pub awareness_max_multiplier: u32,
    /// Push/pull (full state anti-entropy) interval, scaled up past 32 members. memberlist
    /// `PushPullInterval` (LAN 30 s); Alertmanager `--cluster.pushpull-interval` (**60 s**).
    /// Zero disables periodic push/pull (joins still push/pull).
    pub push_pull_interval: Duration,
    /// Gossip round interval. memberlist `GossipInterval` (200 ms); Alertmanager
    /// `--cluster.gossip-interval` (200 ms). Bound ≥ 1 ms.
    pub gossip_interval: Duration,
    /// Members gossiped to per round. memberlist `GossipNodes` (3); Alertmanager
    /// `max(3, peers/2)` where peers = number of `--cluster.peer` flags. Bound 1..=64.
    pub gossip_nodes: usize,
    /// How long a dead member is still gossiped to (so it can refute), and the minimum time
    /// before it is reaped. memberlist `GossipToTheDeadTime` (LAN 30 s).
    pub gossip_to_the_dead: Duration,
    /// Whether a dead member's name may be taken by another address after this long; zero
    /// means never (only after it is reaped). memberlist `DeadNodeReclaimTime` (0).
    pub dead_node_reclaim: Duration,
    /// Deadline of a whole push/pull or reliable-message stream. memberlist `TCPTimeout` (LAN
    /// 10 s); Alertmanager `--cluster.tcp-timeout` (10 s). Bound ≥ 1 ms.
    pub tcp_timeout: Duration,
    /// Skip the TCP fallback ping. memberlist `DisableTcpPings` (false).
    pub disable_tcp_pings: bool,
    /// Budget of one gossip packet, before label and encryption overhead. memberlist
    /// `UDPBufferSize` (1400); Alertmanager `MaxGossipPacketSize` (1400). Bound 64..=65,000.
    pub packet_budget: usize,
    /// LZW-compress packets when smaller, and streams always. memberlist `EnableCompression`
    /// (true). Go peers always accept both.
    pub compress: bool,
    /// How Go `int`s above 127 are written: `Signed` as memberlist ≥ 0.5.1 (Alertmanager ≥ 0.28,
    /// Grafana), `Unsigned` as memberlist 0.5.0 (Alertmanager 0.25–0.27). Both interoperate.
    pub int_encoding: IntEncoding,
    /// Ack payload for direct pings. memberlist `Ping.AckPayload`; Alertmanager returns an
    /// empty, non-nil slice, so the default is `Some(vec![])`.
    pub ack_payload: Option<Vec<u8>>,
    /// Eager sending of user broadcasts. memberlist sends them only on its gossip tick (a few
    /// packets per 200 ms); with `Some(linger)` a full packet of never-sent messages goes out at
    /// once and a partial one after `linger`, to the same number of random members and within
    /// the same retransmit limits. `None` keeps memberlist's schedule exactly. Default 1 ms:
    /// at most 1 ms of added latency, and full packets under load. No Go equivalent.
    pub broadcast_linger: Option<Duration>,
    /// Retransmit multiplier of user broadcasts. Alertmanager's delegate uses its gossip fan-out
    /// (`max(3, peers/2)`) with n = alive members; `None` means "same as `gossip_nodes`".
    pub user_retransmit_mult: Option<u32>,
    /// Most queued membership broadcasts. memberlist has no hard bound; ours is default 4,096
    /// (named messages replace each other, so this only bites with thousands of members).
    pub membership_queue_len: usize,
    /// Most queued user broadcasts. Alertmanager prunes its queue to 4,096 every 15 minutes;
    /// ours never holds more than this (default 4,096; bound ≥ 1). See
    /// [`crate::core::broadcast`] for what happens at the bound.
    pub user_queue_len: usize,
    /// Most members (alive, suspect, dead, left) we track; alives for new names beyond it are
    /// dropped and counted. memberlist: unbounded (≥ 0.6.0 caps push/pull at 1,048,576).
    /// Default 4,096; bound ≥ 2.
    pub max_members: usize,
    /// Most undelivered events kept for the host; beyond it events are counted and dropped
    /// (membership stays readable through `members()`). Default 4,096; bound ≥ 1.
    pub event_queue_len: usize,
    /// AES-GCM keys (16, 24 or 32 bytes), the first being the primary that seals; every key
    /// opens. Empty (the default) is no encryption. memberlist `SecretKey` + `Keyring`;
    /// Alertmanager has no flag for it (the `hearsay` binary reads
    /// `--cluster.secret-key-file`). Bound: at most 32 keys. Keys can be rotated while running
    /// (`Keyring::add_key`, `use_key`, `remove_key`); a member started without keys cannot
    /// gain them later, as in memberlist.
    pub secret_keys: Vec<SecretKey>,
    /// With keys: drop packets that do not decrypt and refuse plain streams. memberlist
    /// `GossipVerifyIncoming` (default true). Turn it off while rolling encryption into a
    /// running cluster.
    pub gossip_verify_incoming: bool,
    /// With keys: encrypt everything we send. memberlist `GossipVerifyOutgoing` (default
    /// true). Turn it off for the first step of rolling encryption in.
    pub gossip_verify_outgoing: bool,
}

/// Why a configuration was refused. Nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is outside its documented bound.
    #[error("{field}: {reason}")]
    OutOfBounds {
        /// The field name.
        field: &'static str,
        /// The bound that was violated.
        reason: &'static str,
    },
}

impl SwimConfig {
    /// memberlist's `DefaultLANConfig`.
    pub fn lan(name: NodeName, advertise: SocketAddr) -> Self {
        Self {
            name,
            advertise,
            meta: Vec::new(),
            label: Vec::new(),
            protocol_version: 2,
            delegate_versions: [0, 0, 0],
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            awareness_max_multiplier: 8,
            push_pull_interval: Duration::from_secs(30),
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead: Duration::from_secs(30),
            dead_node_reclaim: Duration::ZERO,
            tcp_timeout: Duration::from_secs(10),
            disable_tcp_pings: false,
            packet_budget: 1400,
            compress: true,
            int_encoding: IntEncoding::Signed,
            ack_payload: Some(Vec::new()),
            user_retransmit_mult: None,
            broadcast_linger: Some(Duration::from_millis(1)),
            membership_queue_len: 4096,
            user_queue_len: 4096,
            max_members: 4096,
            event_queue_len: 4096,
            secret_keys: Vec::new(),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
        }
    }

    /// What Alertmanager's `cluster.Create` sets on top of the LAN defaults, for a node started
    /// with `peers` `--cluster.peer` flags: push/pull every 60 s and gossip fan-out
    /// `max(3, peers/2)` (gossip 200 ms, probe 1 s / 500 ms and 1400-byte packets are the LAN
    /// values already). Grafana's HA settings use the same values.
    pub fn alertmanager(name: NodeName, advertise: SocketAddr, peers: usize) -> Self {
        Self {
            push_pull_interval: Duration::from_secs(60),
            gossip_nodes: (peers / 2).max(3),
            ..Self::lan(name, advertise)
        }
    }

    /// memberlist's `DefaultLocalConfig`: for loopback clusters and tests.
    pub fn local(name: NodeName, advertise: SocketAddr) -> Self {
        Self {
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            tcp_timeout: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead: Duration::from_secs(15),
            ..Self::lan(name, advertise)
        }
    }

    /// The six version bytes we advertise: protocol 1..=5 at `protocol_version`, then the
    /// delegate versions.
    pub fn vsn(&self) -> Vsn {
        let [dmin, dmax, dcur] = self.delegate_versions;
        Vsn([PROTOCOL_MIN, PROTOCOL_MAX, self.protocol_version, dmin, dmax, dcur])
    }

    /// The wire codec these settings imply, without a keyring: the member attaches one built
    /// from [`Self::secret_keys`] and its own nonce seed.
    pub fn codec(&self) -> Codec {
        Codec {
            label: self.label.clone(),
            ints: self.int_encoding,
            compress: self.compress,
            encryption_version: EncryptionVersion::for_protocol(self.protocol_version),
            gossip_verify_incoming: self.gossip_verify_incoming,
            gossip_verify_outgoing: self.gossip_verify_outgoing,
            ..Codec::default()
        }
    }

    /// Check every bound; see each field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, reason| Err(ConfigError::OutOfBounds { field, reason });
        if self.name.as_str().is_empty() || self.name.as_str().len() > 255 {
            return fail("name", "must be 1..=255 bytes");
        }
        if self.meta.len() > META_MAX_LEN {
            return fail("meta", "must be at most 512 bytes");
        }
        if self.label.len() > 255 {
            return fail("label", "must be at most 255 bytes");
        }
        if !(2..=PROTOCOL_MAX).contains(&self.protocol_version) {
            return fail("protocol_version", "must be 2..=5");
        }
        let [dmin, dmax, dcur] = self.delegate_versions;
        if dmin > dmax || dcur < dmin || dcur > dmax {
            return fail("delegate_versions", "must satisfy min <= cur <= max");
        }
        if self.probe_timeout.is_zero() || self.probe_interval <= self.probe_timeout {
            return fail("probe_interval", "must be > probe_timeout > 0");
        }
        if self.gossip_interval.is_zero() {
            return fail("gossip_interval", "must be > 0");
        }
        if self.tcp_timeout.is_zero() {
            return fail("tcp_timeout", "must be > 0");
        }
        let mults = [
            ("retransmit_mult", self.retransmit_mult),
            ("suspicion_mult", self.suspicion_mult),
            ("suspicion_max_timeout_mult", self.suspicion_max_timeout_mult),
            ("awareness_max_multiplier", self.awareness_max_multiplier),
        ];
        for (field, v) in mults {
            if !(1..=64).contains(&v) {
                return fail(field, "must be 1..=64");
            }
        }
        if self.user_retransmit_mult.is_some_and(|m| !(1..=64).contains(&m)) {
            return fail("user_retransmit_mult", "must be 1..=64");
        }
        if !(1..=64).contains(&self.gossip_nodes) {
            return fail("gossip_nodes", "must be 1..=64");
        }
        if self.indirect_checks > 16 {
            return fail("indirect_checks", "must be at most 16");
        }
        if self.secret_keys.len() > MAX_KEYS {
            return fail("secret_keys", "must be at most 32 keys");
        }
        if !(64..=65_000).contains(&self.packet_budget) {
            return fail("packet_budget", "must be 64..=65000");
        }
        if self.membership_queue_len == 0 || self.user_queue_len == 0 || self.event_queue_len == 0 {
            return fail("queue lengths", "must be at least 1");
        }
        if self.max_members < 2 {
            return fail("max_members", "must be at least 2");
        }
        Ok(())
    }
}

/// Lowest memberlist protocol version we accept (memberlist `ProtocolVersionMin`).
pub const PROTOCOL_MIN: u8 = 1;
/// Highest memberlist protocol version we speak: 5 commits us to TCP pings, nacks and CRC,
/// which we implement.
pub const PROTOCOL_MAX: u8 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "10.0.0.1:9094".parse().expect("literal address")
    }

    #[test]
    fn alertmanager_preset_matches_cluster_create() {
        let c = SwimConfig::alertmanager("a".into(), addr(), 10);
        assert_eq!(c.push_pull_interval, Duration::from_secs(60));
        assert_eq!(c.gossip_interval, Duration::from_millis(200));
        assert_eq!(c.probe_interval, Duration::from_secs(1));
        assert_eq!(c.probe_timeout, Duration::from_millis(500));
        assert_eq!(c.packet_budget, 1400);
        assert_eq!(c.gossip_nodes, 5);
        assert_eq!(SwimConfig::alertmanager("a".into(), addr(), 2).gossip_nodes, 3);
        assert_eq!(c.vsn(), Vsn::ALERTMANAGER);
        c.validate().expect("preset is valid");
    }

    #[test]
    fn presets_validate() {
        SwimConfig::lan("a".into(), addr()).validate().expect("lan");
        SwimConfig::local("a".into(), addr()).validate().expect("local");
    }

    #[test]
    fn bounds_are_enforced() {
        let base = SwimConfig::lan("a".into(), addr());
        let bad = [
            SwimConfig { meta: vec![0; 513], ..base.clone() },
            SwimConfig { label: vec![b'x'; 256], ..base.clone() },
            SwimConfig { protocol_version: 1, ..base.clone() },
            SwimConfig { protocol_version: 6, ..base.clone() },
            SwimConfig { delegate_versions: [1, 0, 0], ..base.clone() },
            SwimConfig { probe_timeout: Duration::from_secs(2), ..base.clone() },
            SwimConfig { gossip_interval: Duration::ZERO, ..base.clone() },
            SwimConfig { retransmit_mult: 0, ..base.clone() },
            SwimConfig { gossip_nodes: 0, ..base.clone() },
            SwimConfig { packet_budget: 10, ..base.clone() },
            SwimConfig { user_queue_len: 0, ..base.clone() },
            SwimConfig { max_members: 1, ..base.clone() },
            SwimConfig { name: "".into(), ..base.clone() },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?} should be rejected");
        }
        SwimConfig { meta: vec![0; 512], ..base }.validate().expect("512-byte meta is allowed");
    }
}
