//! What a host asks of Alertmanager's replicated states on a running node: the Dedup and
//! SetNotifies stages of a notification pipeline, silence writes and reads, and the mute check.
//!
//! Each call takes the states' lock once. Writes hand what they produced to
//! [`Cluster::publish`] before the lock is released, so a peer can never see a later write
//! first; reads do not wake the event loop. Queries are timed here, outside the core (which
//! keeps no clock), into Alertmanager's `*_query_duration_seconds` histograms.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Node;
use super::layout::{NativeKind, StatesConfig};
use super::metrics::StateKind;
use super::snapshot::SnapshotError;
use crate::core::UnixMillis;
use crate::core::cluster::{Cluster, HostRegistration, Inbound};
use crate::core::state::Timestamp;
use crate::core::state::flushlog::{FlushEntry, FlushLog, FlushLogError};
use crate::core::state::labels::LabelSet;
use crate::core::state::nflog::{
    Decision, Flush, Nflog, NflogError, Receiver, ReceiverDataValue, ReceiverRef,
};
use crate::core::state::silences::{
    self, MuteResult, Query, Silence, SilenceError, SilenceId, SilenceState, Silences,
    SilencesConfig,
};

/// Why a state operation on a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The node was started without replicated states ([`Node::start`], not
    /// [`Node::start_cluster`]).
    #[error("the node replicates no states")]
    NoCluster,
    /// No state of that kind is registered under the key.
    #[error("no {kind} state is registered under {key:?}")]
    NoState {
        /// The key asked for.
        key: String,
        /// `nflog`, `silences`, `flush log` or `host-owned`.
        kind: &'static str,
    },
    /// The native state under the key was switched off when the host registered its own
    /// state there ([`States::add_state`]): nothing changed. Host and native calls on one key
    /// would otherwise write a state nobody else replicates.
    #[error(
        "the native state under {0:?} is switched off: the host registered its own state \
         under that key (configure the native state under another key to use both)"
    )]
    SwitchedOff(String),
    /// The transport's outbound queue is full: the write was refused and nothing changed
    /// (counted in `alertmanager_cluster_messages_publish_failures_total{reason="buffer_overflow"}`).
    #[error("the outbound queue is full; nothing was written")]
    QueueFull,
    /// The notification log refused the write; it is unchanged.
    #[error(transparent)]
    Nflog(#[from] NflogError),
    /// The silences refused the operation; they are unchanged.
    #[error(transparent)]
    Silence(#[from] SilenceError),
    /// The flush log refused the write; it is unchanged.
    #[error(transparent)]
    FlushLog(#[from] FlushLogError),
}

/// Alertmanager's state keys and snapshot file names: the notification log and the silences.
pub const ALERTMANAGER_STATES: [(&str, &str); 2] =
    [(NFLOG_KEY, "nflog"), (SILENCES_KEY, "silences")];
/// Alertmanager's key for the notification log.
pub const NFLOG_KEY: &str = "nfl";
/// Alertmanager's key for the silences.
pub const SILENCES_KEY: &str = "sil";

/// Alertmanager's two states, with what the snapshots in `dir` hold (empty states on a first
/// start, or without `dir`). A corrupt file stops the start with an error naming the file and
/// byte; the file is left as it was.
pub fn alertmanager_states(
    dir: Option<&Path>,
    retention: Duration,
) -> Result<Cluster, SnapshotError> {
    let silences = SilencesConfig { retention, ..SilencesConfig::default() };
    alertmanager_states_with(dir, retention, silences)
}

/// [`alertmanager_states`] with the notification log kept for `nflog_retention` and the
/// silences configured apart (Grafana: its own retention and limits). For Grafana's
/// per-organisation keys see [`StatesConfig`].
pub fn alertmanager_states_with(
    dir: Option<&Path>,
    nflog_retention: Duration,
    silences: SilencesConfig,
) -> Result<Cluster, SnapshotError> {
    let config =
        StatesConfig { nflog_retention, silences, ..StatesConfig::alertmanager(nflog_retention) };
    // Alertmanager's layout names no organisation, so none is listed twice.
    config.load_checked(dir)
}

fn missing(key: &str, kind: &'static str) -> StateError {
    StateError::NoState { key: key.to_owned(), kind }
}

/// The native state of type `S` under `key`, or why there is none.
fn native<'c, S: 'static>(
    c: &'c mut Cluster,
    key: &str,
    kind: &'static str,
) -> Result<&'c mut S, StateError> {
    if c.switched_off(key) {
        return Err(StateError::SwitchedOff(key.to_owned()));
    }
    c.state_mut::<S>(key).ok_or_else(|| missing(key, kind))
}

fn nflog<'c>(c: &'c mut Cluster, key: &str) -> Result<&'c mut Nflog, StateError> {
    native(c, key, "nflog")
}

fn flush_log<'c>(c: &'c mut Cluster, key: &str) -> Result<&'c mut FlushLog, StateError> {
    native(c, key, "flush log")
}

fn silences<'c>(c: &'c mut Cluster, key: &str) -> Result<&'c mut Silences, StateError> {
    native(c, key, "silences")
}

pub(crate) mod access {
    use super::{Cluster, NativeKind, StateError};

    /// How a peer hands its states to the host calls. Sealed: implemented by the peers of
    /// this crate only.
    pub trait StateAccess {
        /// Run `f` on the states without waking the sender: for calls that queue nothing.
        fn read_states<R>(
            &self,
            f: impl FnOnce(&mut Cluster) -> Result<R, StateError>,
        ) -> Result<R, StateError>;

        /// Run `f` on the states, then have what it published sent.
        fn write_states<R>(
            &self,
            f: impl FnOnce(&mut Cluster) -> Result<R, StateError>,
        ) -> Result<R, StateError>;

        /// Record how long a query of the state of `kind` under `key` took.
        fn observe_query(&self, kind: NativeKind, key: &str, took: std::time::Duration);
    }
}

impl access::StateAccess for Node {
    fn read_states<R>(
        &self,
        f: impl FnOnce(&mut Cluster) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let cluster = self.shared.cluster.as_ref().ok_or(StateError::NoCluster)?;
        f(&mut cluster.lock())
    }

    fn write_states<R>(
        &self,
        f: impl FnOnce(&mut Cluster) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        self.write(f)?
    }

    fn observe_query(&self, kind: NativeKind, key: &str, took: std::time::Duration) {
        self.shared.metrics.observe_query(StateKind::from(kind), key, took);
    }
}

/// What a host asks of the replicated states of a running [`Node`], on gossip or Redis alike.
pub trait States: access::StateAccess {
    /// Alertmanager's Dedup stage for one flush of `group_key` to `receiver`, against the
    /// notification log under `key` (`nfl` for Alertmanager): whether to send, and which row of
    /// the decision table said so ([`Nflog::should_notify`]).
    fn should_notify<'r>(
        &self,
        key: &str,
        receiver: impl Into<ReceiverRef<'r>>,
        group_key: &str,
        flush: &Flush<'_>,
    ) -> Result<Decision, StateError> {
        self.read_states(|c| {
            let log = nflog(c, key)?;
            let started = Instant::now();
            let decision = log.should_notify(
                receiver,
                group_key,
                flush.firing,
                flush.resolved,
                flush.send_resolved,
                flush.repeat_interval,
                flush.now,
            );
            self.observe_query(NativeKind::Nflog, key, started.elapsed());
            Ok(decision)
        })
    }

    /// Alertmanager's SetNotifies stage: record that `flush` was delivered to `receiver` and
    /// send the entry to every peer. As in Alertmanager the entry lives twice the repeat
    /// interval, or the retention if that is shorter. Returns `false`, writing nothing, when
    /// the stored entry is newer than `flush.now` (this node's clock is behind a peer's).
    fn log_notification(
        &self,
        key: &str,
        receiver: &Receiver,
        group_key: &str,
        flush: &Flush<'_>,
        receiver_data: &BTreeMap<String, ReceiverDataValue>,
    ) -> Result<bool, StateError> {
        self.write_states(|c| {
            let written = nflog(c, key)?.log(
                receiver,
                group_key,
                flush.firing,
                flush.resolved,
                receiver_data,
                Some(flush.repeat_interval.saturating_mul(2)),
                flush.now,
            )?;
            let Some(bytes) = written else { return Ok(false) };
            c.publish(key, bytes);
            Ok(true)
        })
    }

    /// Create or update a silence in the state under `key` (`sil` for Alertmanager) by
    /// Alertmanager's rules ([`Silences::set`]) and send the change to every peer. Returns the
    /// silence's ID, which is new when the update had to replace it.
    fn set_silence(
        &self,
        key: &str,
        silence: Silence,
        now: UnixMillis,
    ) -> Result<SilenceId, StateError> {
        self.write_states(|c| {
            let outcome = silences(c, key)?.set(silence, now)?;
            // The expired predecessor first, so peers never hold two active versions.
            for bytes in [outcome.expired_previous, outcome.broadcast].into_iter().flatten() {
                c.publish(key, bytes);
            }
            Ok(outcome.id)
        })
    }

    /// Expire the silence `id` now and send the change to every peer. Expiring an expired
    /// silence changes nothing and succeeds.
    fn expire_silence(&self, key: &str, id: &str, now: UnixMillis) -> Result<(), StateError> {
        self.write_states(|c| {
            if let Some(bytes) = silences(c, key)?.expire(id, now)? {
                c.publish(key, bytes);
            }
            Ok(())
        })
    }

    /// The silences `query` selects, copied out with their state at `now`.
    fn query_silences(
        &self,
        key: &str,
        query: &Query<'_>,
        now: UnixMillis,
    ) -> Result<Vec<(SilenceState, Silence)>, StateError> {
        self.read_states(|c| {
            let s = silences(c, key)?;
            let started = Instant::now();
            let found: Vec<_> = s
                .query(query, now)
                .into_iter()
                .map(|sil| (silences::state_of(sil, now), sil.clone()))
                .collect();
            self.observe_query(NativeKind::Silences, key, started.elapsed());
            Ok(found)
        })
    }

    /// Which silences mute the alert with `labels` and `fingerprint` at `now`
    /// ([`Silences::mutes`]). Timed as a silence query, as Alertmanager's silencer queries.
    fn mutes(
        &self,
        key: &str,
        fingerprint: u64,
        labels: &LabelSet,
        now: UnixMillis,
    ) -> Result<MuteResult, StateError> {
        self.read_states(|c| {
            let s = silences(c, key)?;
            let started = Instant::now();
            let result = s.mutes(fingerprint, labels, now);
            self.observe_query(NativeKind::Silences, key, started.elapsed());
            Ok(result)
        })
    }

    /// Grafana's sync dispatch timer, at position 0: record that the aggregation group
    /// `fingerprint` was first flushed at `flush_time`, in the flush log under `key`
    /// (`flushlog:<org>`), and send the entry to every peer. It expires after `expiry` (the
    /// fork passes `max(2 × group_interval, 24 h)`) or the log's retention if that is
    /// shorter; `None` means the retention. Returns `false`, writing nothing, when the stored
    /// flush time is later.
    fn log_flush(
        &self,
        key: &str,
        fingerprint: u64,
        flush_time: Timestamp,
        expiry: Option<Duration>,
        now: UnixMillis,
    ) -> Result<bool, StateError> {
        self.write_states(|c| {
            let written = flush_log(c, key)?.log(fingerprint, flush_time, expiry, now)?;
            let Some(bytes) = written else { return Ok(false) };
            c.publish(key, bytes);
            Ok(true)
        })
    }

    /// The flush log's entry for `fingerprint` under `key`: the replicated first-flush time
    /// every instance aligns its ticks to, or `None`.
    fn flush_time(&self, key: &str, fingerprint: u64) -> Result<Option<FlushEntry>, StateError> {
        self.read_states(|c| {
            let log = flush_log(c, key)?;
            let started = Instant::now();
            let found = log.query(fingerprint);
            self.observe_query(NativeKind::FlushLog, key, started.elapsed());
            Ok(found)
        })
    }

    /// Forget the group `fingerprint` (it ended) in the flush log under `key` and send the
    /// deletion to every peer. Returns `false`, changing nothing, when there was no entry.
    fn delete_flush(&self, key: &str, fingerprint: u64) -> Result<bool, StateError> {
        self.write_states(|c| {
            let Some(bytes) = flush_log(c, key)?.delete(fingerprint) else { return Ok(false) };
            c.publish(key, bytes);
            Ok(true)
        })
    }

    // Host-owned states: the host marshals and merges (Grafana's and Alertmanager's Go
    // states riding on hearsay); the peer carries the bytes.

    /// Register a host-owned state under `key`. Peers' payloads for it queue (bounded,
    /// [`OPAQUE_INBOX_LEN`](crate::core::cluster::OPAQUE_INBOX_LEN)) until taken with
    /// [`States::next_state_payload`]. On Redis its channel is subscribed within a turn.
    ///
    /// The host's keys win ([`Cluster::register_host`]): a native state under `key` is
    /// switched off (logged here, once: the key is the host's from then on; counted in
    /// `hearsay_native_state_switched_off`), and its calls return
    /// [`StateError::SwitchedOff`]. Registering a key the host holds again replaces the
    /// host's state object and keeps what is queued for it.
    fn add_state(&self, key: &str) -> Result<HostRegistration, StateError> {
        let registered = self.write_states(|c| Ok(c.register_host(key)))?;
        if registered == HostRegistration::TookNative {
            log::warn!(
                "the host registered its own state under {key:?}: hearsay's native state \
                 there is switched off (configure it under another key to keep it)"
            );
        }
        Ok(registered)
    }

    /// Set the full state of `key` that push/pulls send (the host's `MarshalBinary`).
    fn set_state(&self, key: &str, full_state: Vec<u8>) -> Result<(), StateError> {
        self.read_states(|c| {
            c.opaque_mut(key).ok_or_else(|| missing(key, "host-owned"))?.set_local(full_state);
            Ok(())
        })
    }

    /// Send an update of `key` to every member, as a local write ([`Cluster::publish`]).
    /// A full outbound queue is [`StateError::QueueFull`] (nothing sent, nothing noted).
    fn broadcast_state(&self, key: &str, update: Vec<u8>) -> Result<(), StateError> {
        self.write_states(|c| {
            c.opaque_mut(key).ok_or_else(|| missing(key, "host-owned"))?.note_change(&update);
            if c.publish(key, update) { Ok(()) } else { Err(StateError::QueueFull) }
        })
    }

    /// Take the oldest payload peers sent for `key` if `take` accepts it (`take` sees it
    /// first, so a caller short of room can leave it queued).
    fn next_state_payload(
        &self,
        key: &str,
        take: impl FnOnce(&Inbound) -> bool,
    ) -> Result<Option<Inbound>, StateError> {
        self.read_states(|c| {
            let state = c.opaque_mut(key).ok_or_else(|| missing(key, "host-owned"))?;
            match state.peek_inbound() {
                Some(next) if take(next) => Ok(state.poll_inbound()),
                _ => Ok(None),
            }
        })
    }
}

impl<T: access::StateAccess> States for T {}

impl Node {
    /// Wait up to `timeout` for payloads to arrive for any host-owned state since the last
    /// call that returned true (or since start). Returns whether any did.
    pub fn wait_states(&self, seen: &mut u64, timeout: Duration) -> bool {
        self.shared.arrivals.wait(seen, timeout)
    }
}
