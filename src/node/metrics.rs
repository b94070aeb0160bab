//! Membership metrics under Alertmanager's names, labels and help texts (its
//! `cluster/cluster.go` and `cluster/delegate.go`), so existing dashboards and alerts keep working.
//!
//! `alertmanager_cluster_messages_publish_failures_total` and
//! `alertmanager_cluster_pings_failures_total` exist upstream only in Grafana's Redis mode; in
//! gossip mode they count broadcasts we refused and probes that got no answer.
//!
//! A Redis-mode node registers exactly the families Grafana's Redis peer registers (messages
//! received and sent with their sizes, publish failures, members, position, health score,
//! pings and ping failures), plus hearsay's own Redis connection errors: the memberlist-only
//! families (queued and pruned messages, failed peers, joins, reconnections, ...) would always
//! read zero there and make a dashboard believe it watches gossip.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::TransportKind;
use super::state_durations::{Phase, StateDurations};
use super::states::{NFLOG_KEY, SILENCES_KEY};
use crate::core::wire::RejectReason;

/// A `msg_type` label: `update` (gossiped state changes) or `full_state` (push/pull).
pub(crate) type MsgType = Vec<(&'static str, &'static str)>;

/// A `peer` label.
pub(crate) type PeerLabel = Vec<(&'static str, String)>;
/// Per-peer ping histograms.
pub(crate) type PingFamily = Family<PeerLabel, Histogram, fn() -> Histogram>;

/// Ping buckets of `alertmanager_cluster_pings_seconds`.
const PING_BUCKETS: [f64; 7] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];

/// Every metric a node exports. Clones share the same series.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub(crate) members: Gauge,
    pub(crate) position: Gauge,
    pub(crate) health_score: Gauge,
    pub(crate) messages_queued: Gauge,
    pub(crate) failed_peers: Gauge,
    pub(crate) peers_joined: Counter,
    pub(crate) peers_left: Counter,
    pub(crate) peers_update: Counter,
    pub(crate) reconnections: Counter,
    pub(crate) reconnections_failed: Counter,
    pub(crate) refresh_join: Counter,
    pub(crate) refresh_join_failed: Counter,
    pub(crate) messages_received: Family<MsgType, Counter>,
    pub(crate) messages_received_size: Family<MsgType, Counter>,
    pub(crate) messages_sent: Family<MsgType, Counter>,
    pub(crate) messages_sent_size: Family<MsgType, Counter>,
    pub(crate) messages_pruned: Counter,
    pub(crate) publish_failures: Family<Vec<(&'static str, &'static str)>, Counter>,
    pub(crate) pings: PingFamily,
    pub(crate) pings_failures: Counter,
    pub(crate) name_conflicts: Counter,
    /// Redis mode: links that went down, by `reason` (`tls`, `auth`, `io`, ...; see
    /// `LinkFailure`). Ours: Grafana counts none of this.
    pub(crate) redis_connection_errors: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// Redis Cluster: commands sent again where `MOVED` or `ASK` pointed. Ours.
    pub(crate) redis_redirects: Counter,
    /// Packets and streams dropped because they did not decrypt, by `transport` (`packet`,
    /// `stream`). hearsay's own: Alertmanager only logs memberlist's "Decrypt packet failed".
    pub(crate) decrypt_failures: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// Packets and streams from peers refused whole, by `transport` and `reason` (see
    /// `RejectReason`). hearsay's own: memberlist only logs them.
    pub(crate) rejected: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// The TLS transport's counters, when it is on.
    pub(crate) tls: Option<TlsMetrics>,
    /// GC, snapshot and query durations of the native states, per key.
    pub(crate) durations: StateDurations,
    /// Local writes appended to the journal (with a storage directory), and appends that
    /// failed (the write took effect and went to the peers, but would not survive a restart
    /// of this process). hearsay's own: Alertmanager keeps no journal.
    pub(crate) journal_appends: Counter,
    pub(crate) journal_failures: Counter,
    oversize: PingFamily,
}

/// Which native state a key holds, for metric names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateKind {
    Nflog,
    Silences,
    FlushLog,
    Other,
}

impl From<super::NativeKind> for StateKind {
    fn from(kind: super::NativeKind) -> Self {
        match kind {
            super::NativeKind::Nflog => Self::Nflog,
            super::NativeKind::Silences => Self::Silences,
            super::NativeKind::FlushLog => Self::FlushLog,
        }
    }
}

impl StateKind {
    pub(crate) fn of(cluster: &crate::core::cluster::Cluster, key: &str) -> Self {
        if cluster.state::<crate::core::state::nflog::Nflog>(key).is_some() {
            Self::Nflog
        } else if cluster.state::<crate::core::state::silences::Silences>(key).is_some() {
            Self::Silences
        } else if cluster.state::<crate::core::state::flushlog::FlushLog>(key).is_some() {
            Self::FlushLog
        } else {
            Self::Other
        }
    }
}

pub(crate) fn update() -> MsgType {
    vec![("msg_type", "update")]
}

pub(crate) fn full_state() -> MsgType {
    vec![("msg_type", "full_state")]
}

fn ping_histogram() -> Histogram {
    Histogram::new(PING_BUCKETS)
}

impl Metrics {
    /// Create the metrics and register those `transport` exports, with
    /// `alertmanager_cluster_peer_info{peer=name}` on gossip.
    pub(crate) fn new(registry: &mut Registry, name: &str, transport: TransportKind) -> Self {
        let m = Self {
            members: Gauge::default(),
            position: Gauge::default(),
            health_score: Gauge::default(),
            messages_queued: Gauge::default(),
            failed_peers: Gauge::default(),
            peers_joined: Counter::default(),
            peers_left: Counter::default(),
            peers_update: Counter::default(),
            reconnections: Counter::default(),
            reconnections_failed: Counter::default(),
            refresh_join: Counter::default(),
            refresh_join_failed: Counter::default(),
            messages_received: Family::default(),
            messages_received_size: Family::default(),
            messages_sent: Family::default(),
            messages_sent_size: Family::default(),
            messages_pruned: Counter::default(),
            publish_failures: Family::default(),
            pings: Family::new_with_constructor(ping_histogram),
            pings_failures: Counter::default(),
            name_conflicts: Counter::default(),
            redis_connection_errors: Family::default(),
            redis_redirects: Counter::default(),
            decrypt_failures: Family::default(),
            rejected: Family::default(),
            durations: StateDurations::default(),
            journal_appends: Counter::default(),
            journal_failures: Counter::default(),
            oversize: Family::new_with_constructor(default_histogram),
            tls: None,
        };
        let info = Family::<Vec<(&'static str, String)>, Gauge>::default();
        info.get_or_create(&vec![("peer", name.to_owned())]).set(1);
        let enabled = Gauge::<i64>::default();
        enabled.set(1);
        // Alertmanager pre-initialises both message types.
        for t in [update(), full_state()] {
            for family in [
                &m.messages_received,
                &m.messages_received_size,
                &m.messages_sent,
                &m.messages_sent_size,
            ] {
                let _ = family.get_or_create(&t);
            }
        }
        for transport in ["packet", "stream"] {
            let _ = m.decrypt_failures.get_or_create(&vec![("transport", transport)]);
            for reason in RejectReason::ALL {
                let _ = m.rejected.get_or_create(&rejected(transport, reason));
            }
        }
        let r = registry;
        r.register(
            "alertmanager_cluster_members",
            "Number indicating current number of members in cluster",
            m.members.clone(),
        );
        r.register(
            "alertmanager_peer_position",
            "Position the Alertmanager instance believes it's in. The position determines a peer's behavior in the cluster",
            m.position.clone(),
        );
        r.register(
            "alertmanager_cluster_health_score",
            "Health score of the cluster. Lower values are better and zero means 'totally healthy'",
            m.health_score.clone(),
        );
        r.register(
            "alertmanager_cluster_messages_received",
            "Total number of cluster messages received",
            m.messages_received.clone(),
        );
        r.register(
            "alertmanager_cluster_messages_received_size",
            "Total size of cluster messages received",
            m.messages_received_size.clone(),
        );
        r.register(
            "alertmanager_cluster_messages_sent",
            "Total number of cluster messages sent",
            m.messages_sent.clone(),
        );
        r.register(
            "alertmanager_cluster_messages_sent_size",
            "Total size of cluster messages sent",
            m.messages_sent_size.clone(),
        );
        r.register(
            "alertmanager_cluster_messages_publish_failures",
            "Total number of messages that failed to be published",
            m.publish_failures.clone(),
        );
        r.register(
            "alertmanager_cluster_pings_seconds",
            "Histogram of latencies for ping messages",
            m.pings.clone(),
        );
        r.register(
            "alertmanager_cluster_pings_failures",
            "Total number of failed pings",
            m.pings_failures.clone(),
        );
        if transport == TransportKind::Gossip {
            r.register(
                "hearsay_cluster_rejected",
                "Packets and streams from peers refused whole (garbage, another cluster's label, bad \
                 checksum or compression, past a bound, not decryptable), by transport and reason",
                m.rejected.clone(),
            );
            r.register(
                "hearsay_cluster_decrypt_failures",
                "Packets and streams from peers dropped because no installed key decrypts them \
                 (or they are plain while encryption is verified)",
                m.decrypt_failures.clone(),
            );
            r.register(
                "alertmanager_cluster_enabled",
                "Indicates whether the clustering is enabled or not",
                enabled,
            );
            r.register(
                "alertmanager_cluster_peer_info",
                "A metric with a constant '1' value labeled by peer name",
                info,
            );
            r.register(
                "alertmanager_cluster_messages_queued",
                "Number of cluster messages which are queued",
                m.messages_queued.clone(),
            );
            r.register(
                "alertmanager_cluster_failed_peers",
                "Number indicating the current number of failed peers in the cluster",
                m.failed_peers.clone(),
            );
            r.register(
                "alertmanager_cluster_peers_joined",
                "A counter of the number of peers that have joined",
                m.peers_joined.clone(),
            );
            r.register(
                "alertmanager_cluster_peers_left",
                "A counter of the number of peers that have left",
                m.peers_left.clone(),
            );
            r.register(
                "alertmanager_cluster_peers_update",
                "A counter of the number of peers that have updated metadata",
                m.peers_update.clone(),
            );
            r.register(
                "alertmanager_cluster_reconnections",
                "A counter of the number of cluster peer reconnections",
                m.reconnections.clone(),
            );
            r.register(
                "alertmanager_cluster_reconnections_failed",
                "A counter of the number of failed cluster peer reconnection attempts",
                m.reconnections_failed.clone(),
            );
            r.register(
                "alertmanager_cluster_refresh_join",
                "A counter of the number of cluster peer joined via refresh",
                m.refresh_join.clone(),
            );
            r.register(
                "alertmanager_cluster_refresh_join_failed",
                "A counter of the number of failed cluster peer joined attempts via refresh",
                m.refresh_join_failed.clone(),
            );
            r.register(
                "alertmanager_cluster_messages_pruned",
                "Total number of cluster messages pruned",
                m.messages_pruned.clone(),
            );
        }
        r.register_collector(Box::new(m.durations.clone()));
        r.register(
            "hearsay_journal_appends",
            "Local state writes appended to the journal in the storage directory",
            m.journal_appends.clone(),
        );
        r.register(
            "hearsay_journal_failures",
            "Local state writes the journal could not append (they replicated, but a restart of \
             this process before the next snapshot loses them here)",
            m.journal_failures.clone(),
        );
        match transport {
            TransportKind::Gossip => {
                r.register(
                    "alertmanager_oversize_gossip_message_duration_seconds",
                    "Duration of oversized gossip message requests",
                    m.oversize.clone(),
                );
                r.register(
                    "alertmanager_cluster_peer_name_conflicts",
                    "Total number of times memberlist has noticed conflicting peer names",
                    m.name_conflicts.clone(),
                );
            }
            TransportKind::Redis => {
                r.register(
                    "hearsay_redis_connection_errors",
                    "Redis connections that failed or were dropped, by reason (each is retried)",
                    m.redis_connection_errors.clone(),
                );
                r.register(
                    "hearsay_redis_redirects",
                    "Commands sent again where a Redis Cluster's MOVED or ASK pointed",
                    m.redis_redirects.clone(),
                );
                // Grafana's Redis peer reports both reasons from the start.
                for msg_type in ["update", "full_state", "request"] {
                    for reason in ["redis_issue", "buffer_overflow"] {
                        let _ = m
                            .publish_failures
                            .get_or_create(&vec![("msg_type", msg_type), ("reason", reason)]);
                    }
                }
            }
        }
        m
    }
}

impl Metrics {
    /// One maintenance run of the state of `kind` under `key`: GC took `gc`, the snapshot
    /// `snapshot` (`None` when none was written).
    pub(crate) fn observe_maintenance(
        &self,
        kind: StateKind,
        key: &str,
        gc: std::time::Duration,
        snapshot: Option<std::time::Duration>,
    ) {
        self.durations.observe(kind, Phase::Gc, key, gc.as_secs_f64());
        if let Some(took) = snapshot {
            self.durations.observe(kind, Phase::Snapshot, key, took.as_secs_f64());
        }
    }

    /// One query of the state of `kind` under `key`, timed by the caller.
    pub(crate) fn observe_query(&self, kind: StateKind, key: &str, took: std::time::Duration) {
        self.durations.observe(kind, Phase::Query, key, took.as_secs_f64());
    }

    /// One completed oversized send.
    pub(crate) fn observe_oversize(&self, key: &str, took: std::time::Duration) {
        self.oversize.get_or_create(&vec![("key", key.to_owned())]).observe(took.as_secs_f64());
    }
}

/// The TLS transport's counters: Alertmanager's `alertmanager_tls_transport_*` (its
/// `cluster/tls_transport.go`), registered only when the transport is on, as there, plus
/// refused handshakes by direction, which Alertmanager only counts as read or write errors.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsMetrics {
    packet_bytes_sent: Counter,
    packet_bytes_received: Counter,
    streams_sent: Counter,
    streams_received: Counter,
    read_errors: Counter,
    write_errors: Family<Vec<(&'static str, &'static str)>, Counter>,
    handshake_failures: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl TlsMetrics {
    /// Create and register them.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        for kind in ["packet", "stream"] {
            let _ = m.write_errors.get_or_create(&vec![("connection_type", kind)]);
        }
        for direction in ["inbound", "outbound"] {
            let _ = m.handshake_failures.get_or_create(&vec![("direction", direction)]);
        }
        let counters = [
            (
                "alertmanager_tls_transport_packet_bytes_sent",
                "The number of packet bytes sent to outgoing connections (excluding internal metadata).",
                &m.packet_bytes_sent,
            ),
            (
                "alertmanager_tls_transport_packet_bytes_received",
                "The number of packet bytes received from incoming connections (excluding internal metadata).",
                &m.packet_bytes_received,
            ),
            (
                "alertmanager_tls_transport_stream_connections_sent",
                "The number of stream connections sent.",
                &m.streams_sent,
            ),
            (
                "alertmanager_tls_transport_stream_connections_received",
                "The number of stream connections received.",
                &m.streams_received,
            ),
            (
                "alertmanager_tls_transport_read_errors",
                "The number of errors encountered while reading from incoming connections.",
                &m.read_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "alertmanager_tls_transport_write_errors",
            "The number of errors encountered while writing to outgoing connections.",
            m.write_errors.clone(),
        );
        registry.register(
            "hearsay_tls_handshake_failures",
            "TLS handshakes on the gossip port that failed, by who opened the connection.",
            m.handshake_failures.clone(),
        );
        m
    }

    /// Bring the counters up to the driver's totals.
    pub(crate) fn sync(&self, s: &crate::net::DriverStats) {
        use crate::node::sync_counter;
        sync_counter(&self.packet_bytes_sent, s.tls_packet_bytes_sent);
        sync_counter(&self.packet_bytes_received, s.tls_packet_bytes_received);
        sync_counter(&self.streams_sent, s.tls_streams_sent);
        sync_counter(&self.streams_received, s.tls_streams_received);
        sync_counter(&self.read_errors, s.tls_read_errors);
        let labelled = [
            (&self.write_errors, ("connection_type", "packet"), s.tls_write_errors_packet),
            (&self.write_errors, ("connection_type", "stream"), s.tls_write_errors_stream),
            (&self.handshake_failures, ("direction", "inbound"), s.tls_handshake_failures_inbound),
            (
                &self.handshake_failures,
                ("direction", "outbound"),
                s.tls_handshake_failures_outbound,
            ),
        ];
        for (family, label, total) in labelled {
            sync_counter(&family.get_or_create(&vec![label]), total);
        }
    }
}

/// The labels of a state's series: none for Alertmanager's `nfl` and `sil` (upstream's
/// unlabelled series), `key` for any other key (Grafana's per-organisation states).
pub(crate) fn state_labels(key: &str) -> Vec<(&'static str, String)> {
    if matches!(key, NFLOG_KEY | SILENCES_KEY) { Vec::new() } else { vec![("key", key.to_owned())] }
}

/// Prometheus' default buckets (Go `prometheus.DefBuckets`).
pub(crate) fn default_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

/// Render a registry in the OpenMetrics text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// The labels of `hearsay_cluster_rejected_total`.
pub(crate) fn rejected(
    transport: &'static str,
    reason: RejectReason,
) -> Vec<(&'static str, &'static str)> {
    vec![("transport", transport), ("reason", reason.label())]
}
