//! The node's worker thread: the jobs that hold the states' lock for long — maintenance (GC
//! of every state, and snapshots when a storage directory is configured) and building a full
//! state for Redis. The event loop decides *when* (its peer core schedules them) and hands the
//! job over here, so a GC or marshal of a million entries never delays a probe answer or a
//! pub/sub read; the loop never waits for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use parking_lot::Mutex;

use super::metrics::{Metrics, StateKind};
use super::state_metrics::MaintenanceRecord;
use super::{Command, Maintenance, NodeEvent, Shared, Snapshots, snapshot, wall_clock};
use crate::core::cluster::Cluster;

/// What the loop asks of the worker.
#[derive(Debug)]
pub(super) enum Job {
    /// Collect expired elements of every state; write the snapshots that have a file.
    Maintain,
    /// Build the full state in chunks of at most this many bytes and send it to the loop.
    FullState(usize),
}

/// Jobs waiting; the loop asks at most once per schedule, so this bound is never reached in
/// practice (a full queue skips the job: the next schedule brings it back).
const JOBS: usize = 16;

/// What the worker needs.
pub(super) struct Worker {
    pub(super) cluster: Arc<Mutex<Cluster>>,
    pub(super) snapshots: Option<Snapshots>,
    pub(super) metrics: Metrics,
    pub(super) records: Arc<Mutex<BTreeMap<String, MaintenanceRecord>>>,
    pub(super) events: Sender<NodeEvent>,
    /// Reports the host did not drain in time (added to `NodeStats::events_dropped`).
    pub(super) events_dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// The running worker; dropping the sender makes it run a last maintenance and exit.
pub(super) struct WorkerHandle {
    pub(super) jobs: Sender<Job>,
    pub(super) thread: JoinHandle<()>,
}

impl Worker {
    /// Start the thread. Results for the loop go through `shared`'s command channel.
    pub(super) fn spawn(self, shared: Arc<Shared>) -> std::io::Result<WorkerHandle> {
        let (jobs, inbox) = bounded::<Job>(JOBS);
        let thread = std::thread::Builder::new()
            .name("hearsay-worker".into())
            .spawn(move || self.run(&inbox, &shared))?;
        Ok(WorkerHandle { jobs, thread })
    }

    fn run(&self, inbox: &Receiver<Job>, shared: &Shared) {
        for job in inbox {
            match job {
                Job::Maintain => self.maintain(shared),
                Job::FullState(max_bytes) => {
                    let chunks = self.cluster.lock().full_state_chunks(max_bytes);
                    if shared.send(Command::FullState(chunks)).is_err() {
                        break;
                    }
                }
            }
        }
        // The node is stopping: a last GC and snapshot, as Alertmanager does on shutdown.
        self.maintain(shared);
    }

    /// One maintenance run over every state: GC and marshal under the lock, write outside it.
    /// The state's journal is rotated where it is marshalled, and what the snapshot covers is
    /// deleted once the snapshot is on disk.
    fn maintain(&self, shared: &Shared) {
        let unix = wall_clock();
        let keys: Vec<String> = self.cluster.lock().keys().map(str::to_owned).collect();
        for key in keys {
            let started = Instant::now();
            let (gc, kind) = {
                let mut c = self.cluster.lock();
                let kind = StateKind::of(&c, &key);
                let Some(gc) = c.gc(&key, unix) else { continue };
                (gc, kind)
            };
            let gc_took = started.elapsed();
            let file = self
                .snapshots
                .as_ref()
                .and_then(|s| s.files.iter().find(|(k, _)| *k == key).map(|(_, f)| (&s.dir, f)));
            let written = match (&gc, file) {
                (Ok(_), Some((dir, file))) => {
                    let write_started = Instant::now();
                    let (bytes, covered) = {
                        let c = self.cluster.lock();
                        let bytes = c.marshal(&key).unwrap_or_default();
                        (bytes, shared.journal.as_ref().and_then(|j| j.lock().rotate(&key)))
                    };
                    let written =
                        snapshot::write(dir, file, &bytes).map_err(|e| format!("{file}: {e}"));
                    if let (Ok(_), Some(seq), Some(journal)) = (&written, covered, &shared.journal)
                        && let Err(e) = journal.lock().discard_through(&key, seq)
                    {
                        // Harmless but for the disk it takes: the next start merges them again.
                        log::warn!("{file}: the journal the snapshot covers was not deleted: {e}");
                    }
                    Some((written, write_started.elapsed()))
                }
                (Err(e), Some(_)) => Some((Err(format!("gc: {e}")), Duration::ZERO)),
                (Err(e), None) => {
                    log::warn!("maintenance of {key} failed: gc: {e}");
                    None
                }
                (Ok(_), None) => None,
            };
            self.report(&key, kind, gc, gc_took, written);
        }
    }

    /// Metrics, records and the host's event for one state's run.
    fn report(
        &self,
        key: &str,
        kind: StateKind,
        gc: Result<usize, String>,
        gc_took: Duration,
        written: Option<(Result<u64, String>, Duration)>,
    ) {
        if let Some((Err(e), _)) = &written {
            log::warn!("maintenance of {key} failed: {e}");
        }
        let snapshot_took = written.as_ref().and_then(|(w, took)| w.is_ok().then_some(*took));
        self.metrics.observe_maintenance(kind, key, gc_took, snapshot_took);
        {
            let mut records = self.records.lock();
            let record = records.entry(key.to_owned()).or_default();
            record.runs += 1;
            match (&gc, &written) {
                (_, Some((Ok(size), _))) => record.snapshot_size = *size,
                (Err(_), _) | (_, Some((Err(_), _))) => record.errors += 1,
                (Ok(_), None) => {}
            }
        }
        let report = Maintenance {
            key: key.to_owned(),
            collected: *gc.as_ref().unwrap_or(&0),
            snapshot: match written {
                Some((w, _)) => w,
                None => Err("no snapshot file for this state".into()),
            },
            took: gc_took + snapshot_took.unwrap_or_default(),
        };
        if let Err(TrySendError::Full(_)) = self.events.try_send(NodeEvent::Maintained(report)) {
            self.events_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
