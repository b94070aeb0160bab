//! Membership metrics under Alertmanager's names, labels and help texts (spec
//! `alertmanager-ha.md` §3.1–3.2), so existing dashboards and alerts keep working.
//!
//! `alertmanager_cluster_messages_publish_failures_total` and
//! `alertmanager_cluster_pings_failures_total` exist upstream only in Grafana's Redis mode; in
//! gossip mode they count broadcasts we refused and probes that got no answer.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
    /// Create the metrics and register them, with `alertmanager_cluster_peer_info{peer=name}`.
    pub(crate) fn new(registry: &mut Registry, name: &str) -> Self {
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
        let r = registry;
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
            "alertmanager_cluster_messages_pruned",
            "Total number of cluster messages pruned",
            m.messages_pruned.clone(),
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
        r.register(
            "alertmanager_cluster_peer_name_conflicts",
            "Total number of times memberlist has noticed conflicting peer names",
            m.name_conflicts.clone(),
        );
        m
    }
}

/// Render a registry in the OpenMetrics text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}
