//! Where the event loop meets the replicated states: what peers send is merged, what the
//! states queued is moved to the transport — and the loop never waits for the states' lock.
//!
//! Host threads (and the worker) hold that lock for their calls. When the loop finds it taken,
//! what arrived is deferred (bounded) and applied on a later turn, and a push/pull is answered
//! with the last full state sent (anti-entropy tolerates a slightly stale copy; a stalled loop
//! it does not). The same inbox serves both transports: it is the gossip core's delegate, and
//! the Redis loop calls it the same way.

use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;

use super::NodeEvent;
use super::metrics::{self, Metrics};
use crate::core::Millis;
use crate::core::cluster::Cluster;
use crate::core::swim::{Delegate, StreamFailure, StreamId};

/// Most payloads kept while the states are busy; beyond it they are dropped (and counted as
/// events dropped) — the next full-state exchange repairs what is lost.
const PENDING_LEN: usize = 65_536;

/// Something waiting for the states' lock.
enum Pending {
    Update(Vec<u8>),
    FullState(Vec<u8>, bool),
    Reliable(StreamId, Result<(), StreamFailure>),
}

/// The states as the loop sees them.
pub(super) struct Inbox {
    events: Sender<NodeEvent>,
    /// The host's user state for push/pulls when the node carries no cluster.
    local_state: Arc<Mutex<Vec<u8>>>,
    metrics: Metrics,
    /// Events (and deferred payloads) dropped at their bounds.
    pub(super) dropped: u64,
    cluster: Option<Arc<Mutex<Cluster>>>,
    pending: VecDeque<Pending>,
    last_local_state: Vec<u8>,
}

impl Inbox {
    pub(super) fn new(
        events: Sender<NodeEvent>,
        local_state: Arc<Mutex<Vec<u8>>>,
        metrics: Metrics,
        cluster: Option<Arc<Mutex<Cluster>>>,
    ) -> Self {
        Self {
            events,
            local_state,
            metrics,
            dropped: 0,
            cluster,
            pending: VecDeque::new(),
            last_local_state: Vec::new(),
        }
    }

    /// Whether something waits for the states' lock.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the node carries replicated states.
    pub(super) fn has_states(&self) -> bool {
        self.cluster.is_some()
    }

    /// Apply what waited for the lock, in arrival order; the oversized-send durations that
    /// completed are observed.
    pub(super) fn apply_pending(&mut self, cluster: &mut Cluster, now: Millis) {
        for p in self.pending.drain(..) {
            match p {
                Pending::Update(msg) => cluster.notify_msg(now, &msg),
                Pending::FullState(state, join) => cluster.merge_remote_state(now, &state, join),
                Pending::Reliable(id, result) => cluster.on_reliable(id, &result, now),
            }
        }
        for (key, took) in cluster.drain_oversize_durations() {
            self.metrics.observe_oversize(&key, took);
        }
    }

    /// A reliable send finished: its outcome goes to the states' counters (deferred when
    /// they are busy, like everything else).
    pub(super) fn reliable(
        &mut self,
        now: Millis,
        id: StreamId,
        result: Result<(), StreamFailure>,
    ) {
        let cluster = self.cluster.clone();
        match cluster.as_ref().map(|c| c.try_lock()) {
            Some(Some(mut c)) => {
                c.on_reliable(id, &result, now);
                for (key, took) in c.drain_oversize_durations() {
                    self.metrics.observe_oversize(&key, took);
                }
            }
            Some(None) => self.defer(Pending::Reliable(id, result)),
            None => {}
        }
    }

    fn defer(&mut self, p: Pending) {
        if self.pending.len() >= PENDING_LEN {
            self.dropped += 1;
        } else {
            self.pending.push_back(p);
        }
    }

    /// Hand an event to the host; counted when the host is not draining them.
    pub(super) fn emit(&mut self, event: NodeEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(event) {
            self.dropped += 1;
        }
    }
}

impl Delegate for Inbox {
    fn local_state(&mut self, now: Millis, join: bool) -> Vec<u8> {
        let state = match &self.cluster {
            Some(c) => match c.try_lock() {
                Some(mut c) => {
                    let state = c.local_state(now, join);
                    self.last_local_state.clone_from(&state);
                    state
                }
                None => self.last_local_state.clone(),
            },
            None => self.local_state.lock().clone(),
        };
        let m = &self.metrics;
        m.messages_sent.get_or_create(&metrics::full_state()).inc();
        m.messages_sent_size.get_or_create(&metrics::full_state()).inc_by(state.len() as u64);
        state
    }

    fn merge_remote_state(&mut self, now: Millis, state: &[u8], join: bool) {
        let m = &self.metrics;
        m.messages_received.get_or_create(&metrics::full_state()).inc();
        m.messages_received_size.get_or_create(&metrics::full_state()).inc_by(state.len() as u64);
        self.full_state(now, state, join);
    }

    fn notify_msg(&mut self, now: Millis, msg: &[u8]) {
        let m = &self.metrics;
        m.messages_received.get_or_create(&metrics::update()).inc();
        m.messages_received_size.get_or_create(&metrics::update()).inc_by(msg.len() as u64);
        self.update(now, msg);
    }
}

impl Inbox {
    /// A peer's full state (the transport counted it).
    pub(super) fn full_state(&mut self, now: Millis, state: &[u8], join: bool) {
        let cluster = self.cluster.clone();
        match cluster.as_ref().map(|c| c.try_lock()) {
            Some(Some(mut c)) => c.merge_remote_state(now, state, join),
            Some(None) => self.defer(Pending::FullState(state.to_vec(), join)),
            None => self.emit(NodeEvent::RemoteState { join, data: state.to_vec() }),
        }
    }

    /// A peer's update (the transport counted it).
    pub(super) fn update(&mut self, now: Millis, msg: &[u8]) {
        let cluster = self.cluster.clone();
        match cluster.as_ref().map(|c| c.try_lock()) {
            Some(Some(mut c)) => c.notify_msg(now, msg),
            Some(None) => self.defer(Pending::Update(msg.to_vec())),
            None => self.emit(NodeEvent::Message(msg.to_vec())),
        }
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("pending", &self.pending.len()).finish_non_exhaustive()
    }
}
