//! How long the native states' GC, snapshots and queries took, per state key, under
//! Alertmanager's names (`alertmanager_{nflog,silences}_*_duration_seconds`) and the fork's
//! for the flush log (`alertmanager_flushlog_*`).
//!
//! Labels follow the state metrics' rule (`state_metrics.rs`): Alertmanager's `nfl` and `sil`
//! unlabelled, as upstream, every other key (Grafana's per-organisation states) with a `key`
//! label, so one dashboard query sums or splits organisations.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;

use super::metrics::{StateKind, default_histogram, state_labels};

/// What was timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Gc,
    Snapshot,
    Query,
}

/// Every duration metric: (kind, phase, name, help). Alertmanager exports GC and snapshot
/// durations as summaries without quantiles (`_sum`, `_count`); the Rust client has no
/// summary type, so they are histograms with the same `_sum`/`_count`.
const TABLE: [(StateKind, Phase, &str, &str); 9] = [
    (
        StateKind::Nflog,
        Phase::Gc,
        "alertmanager_nflog_gc_duration_seconds",
        "Duration of the last notification log garbage collection cycle",
    ),
    (
        StateKind::Nflog,
        Phase::Snapshot,
        "alertmanager_nflog_snapshot_duration_seconds",
        "Duration of the last notification log snapshot",
    ),
    (
        StateKind::Nflog,
        Phase::Query,
        "alertmanager_nflog_query_duration_seconds",
        "Duration of notification log query evaluation",
    ),
    (
        StateKind::Silences,
        Phase::Gc,
        "alertmanager_silences_gc_duration_seconds",
        "Duration of the last silence garbage collection cycle",
    ),
    (
        StateKind::Silences,
        Phase::Snapshot,
        "alertmanager_silences_snapshot_duration_seconds",
        "Duration of the last silence snapshot",
    ),
    (
        StateKind::Silences,
        Phase::Query,
        "alertmanager_silences_query_duration_seconds",
        "Duration of silence query evaluation",
    ),
    (
        StateKind::FlushLog,
        Phase::Gc,
        "alertmanager_flushlog_gc_duration_seconds",
        "Duration of the last flush log garbage collection cycle",
    ),
    (
        StateKind::FlushLog,
        Phase::Snapshot,
        "alertmanager_flushlog_snapshot_duration_seconds",
        "Duration of the last flush log snapshot",
    ),
    (
        StateKind::FlushLog,
        Phase::Query,
        "alertmanager_flushlog_query_duration_seconds",
        "Duration of flush log query evaluation",
    ),
];

fn row(kind: StateKind, phase: Phase) -> Option<usize> {
    TABLE.iter().position(|(k, p, _, _)| *k == kind && *p == phase)
}

/// The histograms, by (row of [`TABLE`], state key). Clones share them. The number of
/// series is bounded by the registered native states (three per key).
#[derive(Clone, Debug, Default)]
pub(crate) struct StateDurations {
    series: Arc<RwLock<BTreeMap<(usize, String), Histogram>>>,
}

impl StateDurations {
    /// Create the series of a state of `kind` under `key` at zero, so they are exported
    /// before the first observation (dashboards see 0, not nothing).
    pub(crate) fn init(&self, kind: StateKind, key: &str) {
        for phase in [Phase::Gc, Phase::Snapshot, Phase::Query] {
            if let Some(row) = row(kind, phase) {
                self.series.write().entry((row, key.to_owned())).or_insert_with(default_histogram);
            }
        }
    }

    /// One observation; nothing for a kind without durations (host-owned states).
    pub(crate) fn observe(&self, kind: StateKind, phase: Phase, key: &str, seconds: f64) {
        let Some(row) = row(kind, phase) else { return };
        // The read lock serves every call after a key's first (which `init` usually made).
        if let Some(h) = self.series.read().get(&(row, key.to_owned())) {
            h.observe(seconds);
            return;
        }
        self.series
            .write()
            .entry((row, key.to_owned()))
            .or_insert_with(default_histogram)
            .observe(seconds);
    }
}

impl Collector for StateDurations {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = self.series.read();
        for (row, (_, _, name, help)) in TABLE.iter().enumerate() {
            let mine: Vec<(&str, &Histogram)> = series
                .range((row, String::new())..(row + 1, String::new()))
                .map(|((_, k), h)| (k.as_str(), h))
                .collect();
            let Some((_, first)) = mine.first() else { continue };
            let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
            if let [(key, h)] = mine.as_slice()
                && state_labels(key).is_empty()
            {
                // One unlabelled series, as Alertmanager writes it.
                h.encode(family)?;
                continue;
            }
            for (key, h) in mine {
                h.encode(family.encode_family(&state_labels(key))?)?;
            }
        }
        Ok(())
    }
}
