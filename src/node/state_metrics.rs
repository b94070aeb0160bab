//! Metrics of the replicated states under Alertmanager's names (its `nflog` and `silence`
//! packages), read from the states at scrape time.
//!
//! Alertmanager's `nfl` and `sil` states export unlabelled series, as upstream; any other key
//! (Grafana's per-organisation states) gets a `key` label. The flush log exports the fork's
//! `alertmanager_flushlog_*` names. Durations are not read here (the
//! core keeps no clock): the maintenance thread and the node's state calls time themselves
//! into the histograms of `metrics.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::metrics::state_labels;
use super::wall_clock;
use crate::core::cluster::Cluster;
use crate::core::state::flushlog::FlushLog;
use crate::core::state::nflog::Nflog;
use crate::core::state::silences::{SilenceState, Silences};

/// Outcome of the last maintenance runs of one state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MaintenanceRecord {
    pub(crate) runs: u64,
    pub(crate) errors: u64,
    pub(crate) snapshot_size: u64,
}

/// Reads the states on every scrape.
#[derive(Debug)]
pub(crate) struct StateMetrics {
    pub(crate) cluster: Arc<Mutex<Cluster>>,
    pub(crate) maintenance: Arc<Mutex<BTreeMap<String, MaintenanceRecord>>>,
}

type Labels = Vec<(&'static str, String)>;
/// A metric family: help text and its series.
type Family = (&'static str, Vec<(Labels, Value)>);

/// One series to write.
enum Value {
    Counter(u64),
    Gauge(i64),
}

impl StateMetrics {
    fn series(&self) -> Vec<(String, &'static str, Labels, Value)> {
        let now = wall_clock();
        let cluster = self.cluster.lock();
        let maintenance = self.maintenance.lock();
        let mut out = Vec::new();
        for key in cluster.keys() {
            let labels: Labels = state_labels(key);
            let stats = cluster.stats().get(key).copied().unwrap_or_default();
            let record = maintenance.get(key).copied().unwrap_or_default();
            let prefix = if let Some(nflog) = cluster.state::<Nflog>(key) {
                out.push((
                    "alertmanager_nflog_queries".into(),
                    "Number of notification log queries were received",
                    labels.clone(),
                    Value::Counter(nflog.queries_total()),
                ));
                out.push((
                    "alertmanager_nflog_query_errors".into(),
                    "Number notification log received queries that failed",
                    labels.clone(),
                    Value::Counter(nflog.query_errors_total()),
                ));
                out.push((
                    "alertmanager_nflog_gossip_messages_propagated".into(),
                    "Number of received gossip messages that have been further gossiped",
                    labels.clone(),
                    Value::Counter(stats.propagated),
                ));
                "alertmanager_nflog"
            } else if let Some(silences) = cluster.state::<Silences>(key) {
                let m = silences.metrics();
                for state in [SilenceState::Active, SilenceState::Pending, SilenceState::Expired] {
                    let mut l = labels.clone();
                    l.push(("state", state.as_str().to_owned()));
                    let n = silences.count_state(&[state], now);
                    out.push((
                        "alertmanager_silences".into(),
                        "How many silences by state",
                        l,
                        Value::Gauge(n as i64),
                    ));
                }
                let counters = [
                    ("queries", "How many silence queries were received", m.queries_total),
                    (
                        "query_errors",
                        "How many silence received queries did not succeed",
                        m.query_errors_total,
                    ),
                    (
                        "gossip_messages_propagated",
                        "Number of received gossip messages that have been further gossiped",
                        m.gossip_messages_propagated_total,
                    ),
                    ("gc_errors", "How many silence GC errors were encountered", m.gc_errors_total),
                    (
                        "query_silences_scanned",
                        "How many silences were scanned during query evaluation",
                        m.query_silences_scanned_total,
                    ),
                    (
                        "query_silences_skipped",
                        "How many silences were skipped during query evaluation using the version index",
                        m.query_silences_skipped_total,
                    ),
                ];
                for (name, help, v) in counters {
                    out.push((
                        format!("alertmanager_silences_{name}"),
                        help,
                        labels.clone(),
                        Value::Counter(v),
                    ));
                }
                for (stage, v) in [
                    ("index", m.matcher_compile_errors_index_total),
                    ("load_snapshot", m.matcher_compile_errors_load_snapshot_total),
                ] {
                    let mut l = labels.clone();
                    l.push(("stage", stage.to_owned()));
                    out.push((
                        "alertmanager_silences_matcher_compile_errors".into(),
                        "How many silence matcher compilations failed",
                        l,
                        Value::Counter(v),
                    ));
                }
                let gauges = [
                    ("state_size", "The number of silences in the state map", m.state_size),
                    (
                        "matcher_index_size",
                        "The number of entries in the matcher cache index",
                        m.matcher_index_size,
                    ),
                    (
                        "version_index_size",
                        "The number of entries in the version index",
                        m.version_index_size,
                    ),
                ];
                for (name, help, v) in gauges {
                    out.push((
                        format!("alertmanager_silences_{name}"),
                        help,
                        labels.clone(),
                        Value::Gauge(v as i64),
                    ));
                }
                "alertmanager_silences"
            } else if let Some(log) = cluster.state::<FlushLog>(key) {
                let counters = [
                    ("queries", "Number of flush log queries were received", log.queries_total()),
                    (
                        "query_errors",
                        "Number flush log received queries that failed",
                        log.query_errors_total(),
                    ),
                    (
                        "gossip_messages_propagated",
                        "Number of received gossip messages that have been further gossiped",
                        stats.propagated,
                    ),
                ];
                for (name, help, v) in counters {
                    out.push((
                        format!("alertmanager_flushlog_{name}"),
                        help,
                        labels.clone(),
                        Value::Counter(v),
                    ));
                }
                "alertmanager_flushlog"
            } else {
                continue;
            };
            out.push((
                format!("{prefix}_maintenance"),
                "How many maintenances were executed",
                labels.clone(),
                Value::Counter(record.runs),
            ));
            out.push((
                format!("{prefix}_maintenance_errors"),
                "How many maintenances were executed that failed",
                labels.clone(),
                Value::Counter(record.errors),
            ));
            out.push((
                format!("{prefix}_snapshot_size_bytes"),
                "Size of the last snapshot in bytes",
                labels.clone(),
                Value::Gauge(record.snapshot_size as i64),
            ));
            // Alertmanager labels these by key even for nfl and sil.
            let with_key = vec![("key", key.to_owned())];
            let oversize = [
                (
                    "failure",
                    "Number of oversized gossip message sends that failed",
                    stats.oversize_failed,
                ),
                ("sent", "Number of oversized gossip message sent", stats.oversize_sent),
                (
                    "dropped",
                    "Number of oversized gossip messages that were dropped due to a full message queue",
                    stats.oversize_dropped,
                ),
            ];
            for (what, help, v) in oversize {
                out.push((
                    format!("alertmanager_oversized_gossip_message_{what}"),
                    help,
                    with_key.clone(),
                    Value::Counter(v),
                ));
            }
            let direct = [
                ("sent", "Local writes also sent straight to a member over TCP", stats.direct_sent),
                ("failed", "Direct sends of local writes that failed", stats.direct_failed),
                (
                    "dropped",
                    "Local writes not sent directly because the queue was full",
                    stats.direct_dropped,
                ),
            ];
            for (what, help, v) in direct {
                out.push((
                    format!("hearsay_direct_messages_{what}"),
                    help,
                    with_key.clone(),
                    Value::Counter(v),
                ));
            }
            out.push((
                "hearsay_cluster_merge_errors".into(),
                "Payloads from peers for this state that failed to decode or merge",
                vec![("key", key.to_owned())],
                Value::Counter(stats.merge_errors),
            ));
        }
        for key in cluster.switched_off_keys() {
            out.push((
                "hearsay_native_state_switched_off".into(),
                "1 for each key whose native state was switched off because the host registered \
                 its own state under it",
                vec![("key", key.to_owned())],
                Value::Gauge(1),
            ));
        }
        let global = cluster.global_stats();
        out.push((
            "hearsay_cluster_decode_errors".into(),
            "Messages from peers that were no Part or FullState",
            Vec::new(),
            Value::Counter(global.decode_errors),
        ));
        out.push((
            "hearsay_cluster_unknown_keys".into(),
            "Parts from peers for a state key nobody registered here",
            Vec::new(),
            Value::Counter(global.unknown_keys),
        ));
        out
    }
}

impl Collector for StateMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Group series by name: each metric family is described once.
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for (name, help, labels, value) in self.series() {
            families.entry(name).or_insert((help, Vec::new())).1.push((labels, value));
        }
        for (name, (help, series)) in families {
            let metric_type = match series.first().map(|s| &s.1) {
                Some(Value::Counter(_)) => ConstCounter::new(0u64).metric_type(),
                _ => ConstGauge::new(0i64).metric_type(),
            };
            let mut family = encoder.encode_descriptor(&name, help, None, metric_type)?;
            if let [(labels, value)] = series.as_slice()
                && labels.is_empty()
            {
                // One unlabelled series: `name 3`, as Alertmanager writes it, not `name{} 3`.
                encode_value(value, family)?;
                continue;
            }
            for (labels, value) in series {
                encode_value(&value, family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn encode_value(
    value: &Value,
    metric: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match value {
        Value::Counter(v) => ConstCounter::new(*v).encode(metric),
        Value::Gauge(v) => ConstGauge::new(*v).encode(metric),
    }
}
