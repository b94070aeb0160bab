//! Maintenance on its own thread: every interval, GC each snapshotted state and write it to
//! disk; once more when the node shuts down (Alertmanager's maintenance loop). Off the event
//! loop, so a GC or marshal of a million entries never delays a probe answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, Sender, TrySendError, bounded};
use parking_lot::Mutex;

use super::metrics::{Metrics, StateKind};
use super::state_metrics::MaintenanceRecord;
use super::{Maintenance, NodeEvent, Snapshots, snapshot, wall_clock};
use crate::core::cluster::Cluster;

/// What the maintenance thread needs.
pub(super) struct Maintainer {
    pub(super) cluster: Arc<Mutex<Cluster>>,
    pub(super) snapshots: Snapshots,
    pub(super) metrics: Metrics,
    pub(super) records: Arc<Mutex<BTreeMap<String, MaintenanceRecord>>>,
    pub(super) events: Sender<NodeEvent>,
    /// Reports the host did not drain in time (added to `NodeStats::events_dropped`).
    pub(super) events_dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// Start the thread. Dropping the returned sender makes it run a last time and exit.
pub(super) fn spawn(m: Maintainer) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let handle =
        std::thread::Builder::new().name("hearsay-maintenance".into()).spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(m.snapshots.interval) {
                m.run();
            }
            m.run();
        })?;
    Ok((stop_tx, handle))
}

impl Maintainer {
    /// One maintenance run over every snapshotted state: GC and marshal under the lock, write
    /// outside it.
    fn run(&self) {
        let unix = wall_clock();
        for (key, file) in &self.snapshots.files {
            let started = Instant::now();
            let (gc, kind) = {
                let mut c = self.cluster.lock();
                let kind = StateKind::of(&c, key);
                let Some(gc) = c.gc(key, unix) else { continue };
                (gc, kind)
            };
            let gc_took = started.elapsed();
            let write_started = Instant::now();
            let (collected, written) = match gc {
                Ok(n) => {
                    let bytes = self.cluster.lock().marshal(key).unwrap_or_default();
                    (
                        n,
                        snapshot::write(&self.snapshots.dir, file, &bytes)
                            .map_err(|e| format!("{file}: {e}")),
                    )
                }
                Err(e) => (0, Err(format!("gc: {e}"))),
            };
            if let Err(e) = &written {
                log::warn!("maintenance of {key} failed: {e}");
            }
            let snapshot_took = written.is_ok().then(|| write_started.elapsed());
            self.metrics.observe_maintenance(kind, key, gc_took, snapshot_took);
            {
                let mut records = self.records.lock();
                let record = records.entry(key.clone()).or_default();
                record.runs += 1;
                match &written {
                    Ok(size) => record.snapshot_size = *size,
                    Err(_) => record.errors += 1,
                }
            }
            let report = Maintenance {
                key: key.clone(),
                collected,
                snapshot: written,
                took: started.elapsed(),
            };
            if let Err(TrySendError::Full(_)) = self.events.try_send(NodeEvent::Maintained(report))
            {
                self.events_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}
