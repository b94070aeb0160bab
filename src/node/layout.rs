//! Which native states a node registers, under which keys, and in which snapshot files:
//! Alertmanager's two (`nfl`, `sil`), or Grafana's per organisation (`notificationlog:<org>`,
//! `silences:<org>` and, with its sync dispatch timer, `flushlog:<org>`), as many
//! organisations as the host serves, all on one peer as Grafana's multi-org Alertmanager
//! shares one.
//!
//! Snapshot files live side by side in the storage directory: Alertmanager's `nflog` and
//! `silences`, Grafana's `nflog:<org>`, `silences:<org>` and `flushlog:<org>`. A name with a
//! colon can never be one of Alertmanager's, nor one of another organisation's, nor a
//! temporary file of a write in progress (those end in `.<16 hex digits>`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::snapshot::{self, SnapshotError};
use super::states::{NFLOG_KEY, SILENCES_KEY};
use super::{Snapshots, journal};
use crate::core::cluster::{Cluster, Replicated};
use crate::core::state::flushlog::{self, FlushLog};
use crate::core::state::nflog::Nflog;
use crate::core::state::silences::{Silences, SilencesConfig};

/// A Grafana organisation: its ID as Grafana's database numbers it (an `int64`), written in
/// decimal in state keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId(pub i64);

impl OrgId {
    /// Grafana's key of the organisation's notification log: `notificationlog:<org>`.
    pub fn nflog_key(self) -> String {
        format!("notificationlog:{}", self.0)
    }

    /// Grafana's key of the organisation's silences: `silences:<org>`.
    pub fn silences_key(self) -> String {
        format!("silences:{}", self.0)
    }

    /// Grafana's key of the organisation's flush log: `flushlog:<org>`.
    pub fn flush_log_key(self) -> String {
        format!("flushlog:{}", self.0)
    }
}

/// The kinds of native state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NativeKind {
    /// A notification log ([`Nflog`]).
    Nflog,
    /// Silences ([`Silences`]).
    Silences,
    /// A flush log ([`FlushLog`]).
    FlushLog,
}

/// One native state of a layout: its key, its snapshot file, its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeState {
    /// The state key its updates travel under.
    pub key: String,
    /// Its snapshot file in the storage directory.
    pub file: String,
    /// What it holds.
    pub kind: NativeKind,
}

/// Which native states a node registers and how they are configured.
#[derive(Clone, Debug)]
pub struct StatesConfig {
    /// Grafana organisations to serve. Empty (the default): Alertmanager's two states under
    /// `nfl` and `sil`, files `nflog` and `silences`. Otherwise, for each organisation,
    /// `notificationlog:<org>` and `silences:<org>` (files `nflog:<org>`, `silences:<org>`).
    /// Grafana lists its organisations in its database, not in `grafana.ini`, so the host
    /// names them. Each at most once.
    pub orgs: Vec<OrgId>,
    /// Also register `flushlog:<org>` for each organisation (file `flushlog:<org>`), as
    /// Grafana does with its `alertingSyncDispatchTimer` feature toggle. Default false: a
    /// Grafana without the toggle would log every push/pull part for an unknown key. Unused
    /// without organisations.
    pub flush_log: bool,
    /// How long notification-log entries live: Alertmanager `--data.retention`, Grafana
    /// `notification_log_retention` (both 120 h).
    pub nflog_retention: Duration,
    /// The silences' retention and limits (every organisation alike: Grafana's
    /// `alertmanager_max_silences_count` and `_size_bytes` are per organisation too).
    pub silences: SilencesConfig,
    /// How long flush-log entries live at most: Grafana's 5 days
    /// ([`flushlog::DEFAULT_RETENTION`]).
    pub flush_log_retention: Duration,
    /// Native states moved off the layout's keys: the layout's key (`nfl`, `sil`,
    /// `silences:<org>`, ...) → the key to register the state under instead, or `None` to
    /// leave it out. Default empty: every state under its layout key. A host that registers
    /// its own state under a native key takes it at run time anyway
    /// ([`States::add_state`](super::States::add_state)); moving the native state keeps both.
    /// A moved state keeps its snapshot file. An unknown layout key, or two states on one
    /// key, is refused at start.
    pub native_keys: BTreeMap<String, Option<String>>,
}

impl StatesConfig {
    /// Alertmanager's two states, entries and expired silences kept `retention`.
    pub fn alertmanager(retention: Duration) -> Self {
        Self {
            orgs: Vec::new(),
            flush_log: false,
            nflog_retention: retention,
            silences: SilencesConfig { retention, ..SilencesConfig::default() },
            flush_log_retention: flushlog::DEFAULT_RETENTION,
            native_keys: BTreeMap::new(),
        }
    }

    /// Grafana's states for `orgs`, with Grafana's retentions (120 h each).
    pub fn grafana(orgs: &[i64], flush_log: bool) -> Self {
        let mut config = Self::alertmanager(crate::core::state::nflog::DEFAULT_RETENTION);
        config.orgs = orgs.iter().copied().map(OrgId).collect();
        config.flush_log = flush_log;
        config
    }

    /// Every state of the layout, in registration order, under the keys
    /// [`native_keys`](Self::native_keys) gives them (those it switches off left out).
    pub fn states(&self) -> Vec<NativeState> {
        self.layout_states()
            .into_iter()
            .filter_map(|mut s| match self.native_keys.get(&s.key) {
                None => Some(s),
                Some(None) => None,
                Some(Some(key)) => {
                    s.key.clone_from(key);
                    Some(s)
                }
            })
            .collect()
    }

    /// The states under the layout's own keys.
    fn layout_states(&self) -> Vec<NativeState> {
        let state = |key: String, file: String, kind| NativeState { key, file, kind };
        if self.orgs.is_empty() {
            return vec![
                state(NFLOG_KEY.into(), "nflog".into(), NativeKind::Nflog),
                state(SILENCES_KEY.into(), "silences".into(), NativeKind::Silences),
            ];
        }
        let mut out = Vec::new();
        for org in &self.orgs {
            let id = org.0;
            out.push(state(org.nflog_key(), format!("nflog:{id}"), NativeKind::Nflog));
            out.push(state(org.silences_key(), format!("silences:{id}"), NativeKind::Silences));
            if self.flush_log {
                out.push(state(
                    org.flush_log_key(),
                    format!("flushlog:{id}"),
                    NativeKind::FlushLog,
                ));
            }
        }
        out
    }

    /// The states, each holding what its snapshot in `dir` holds (empty on a first start,
    /// or without `dir`). A corrupt file stops the start with an error naming the file and
    /// byte; the file is left as it was. So does a `dir` that cannot be created or written. An organisation listed twice is refused.
    pub fn load(&self, dir: Option<&Path>) -> Result<Cluster, LayoutError> {
        let mut seen = BTreeSet::new();
        if let Some(org) = self.orgs.iter().find(|o| !seen.insert(**o)) {
            return Err(LayoutError::DuplicateOrg(org.0));
        }
        self.check_native_keys()?;
        Ok(self.load_checked(dir)?)
    }

    /// Every key [`native_keys`](Self::native_keys) moves is the layout's, and no two
    /// states end up under one key.
    pub fn check_native_keys(&self) -> Result<(), LayoutError> {
        let layout = self.layout_states();
        if let Some(key) = self.native_keys.keys().find(|k| !layout.iter().any(|s| &s.key == *k)) {
            return Err(LayoutError::UnknownNativeKey(key.clone()));
        }
        let mut keys = BTreeSet::new();
        match self.states().into_iter().find(|s| !keys.insert(s.key.clone())) {
            Some(s) => Err(LayoutError::KeyTwice(s.key)),
            None => Ok(()),
        }
    }

    /// [`load`](Self::load) once the organisations are known to be distinct.
    pub(crate) fn load_checked(&self, dir: Option<&Path>) -> Result<Cluster, SnapshotError> {
        if let Some(dir) = dir {
            snapshot::check_writable(dir)?;
        }
        let mut cluster = Cluster::new();
        for s in self.states() {
            match s.kind {
                NativeKind::Nflog => {
                    let retention = self.nflog_retention;
                    let log = match dir {
                        Some(d) => snapshot::load(d, &s.file, |b| Nflog::load(b, retention))?,
                        None => None,
                    };
                    let log = log.unwrap_or_else(|| Nflog::new(retention));
                    cluster.register(&s.key, replayed(dir, &s.file, log)?);
                }
                NativeKind::Silences => {
                    let seed = rand::random();
                    let config = self.silences.clone();
                    let silences = match dir {
                        Some(d) => {
                            snapshot::load(d, &s.file, |b| Silences::load(b, config.clone(), seed))?
                        }
                        None => None,
                    };
                    let silences = silences.unwrap_or_else(|| Silences::new(config, seed));
                    cluster.register(&s.key, replayed(dir, &s.file, silences)?);
                }
                NativeKind::FlushLog => {
                    let retention = self.flush_log_retention;
                    let log = match dir {
                        Some(d) => snapshot::load(d, &s.file, |b| FlushLog::load(b, retention))?,
                        None => None,
                    };
                    let log = log.unwrap_or_else(|| FlushLog::new(retention));
                    cluster.register(&s.key, replayed(dir, &s.file, log)?);
                }
            }
        }
        Ok(cluster)
    }

    /// Where the states' snapshots go in `dir`; the states' journals live beside them.
    pub fn snapshots(&self, dir: PathBuf) -> Snapshots {
        Snapshots { dir, files: self.states().into_iter().map(|s| (s.key, s.file)).collect() }
    }
}

/// Why the native states could not be set up; nothing started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A snapshot file could not be read back.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// An organisation was listed twice.
    #[error("organisation {0} is listed twice")]
    DuplicateOrg(i64),
    /// A native state to move or switch off is not in the layout.
    #[error("no native state is under {0:?} in this layout (nfl and sil, or an organisation's)")]
    UnknownNativeKey(String),
    /// Two native states would be under one key.
    #[error("two native states would be under {0:?}")]
    KeyTwice(String),
}

/// `state` with the journal of its snapshot `file` merged on top: the writes acknowledged
/// after that snapshot was taken, by a process that did not live to write the next one.
fn replayed<S: Replicated>(
    dir: Option<&Path>,
    file: &str,
    mut state: S,
) -> Result<S, SnapshotError> {
    let Some(dir) = dir else { return Ok(state) };
    let now = super::wall_clock();
    let merged = journal::replay(dir, file, |data| {
        state.merge(data, now).map(drop).map_err(|e| e.to_string())
    })
    .map_err(|source| SnapshotError::Io { path: dir.join(file), source })?;
    if merged > 0 {
        log::info!("{file}: merged {merged} journaled writes made after its last snapshot");
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &StatesConfig) -> Vec<(String, String)> {
        c.states().into_iter().map(|s| (s.key, s.file)).collect()
    }

    #[test]
    fn native_states_move_or_switch_off_and_keep_their_files() {
        let mut c = StatesConfig::alertmanager(Duration::from_secs(1));
        c.native_keys.insert("sil".into(), Some("hearsay:sil".into()));
        c.native_keys.insert("nfl".into(), None);
        assert_eq!(keys(&c), [("hearsay:sil".to_owned(), "silences".to_owned())]);
        assert!(c.check_native_keys().is_ok());
    }

    #[test]
    fn unknown_keys_and_collisions_are_refused() {
        let mut c = StatesConfig::grafana(&[1], false);
        c.native_keys.insert("sil".into(), None);
        assert!(
            matches!(c.check_native_keys(), Err(LayoutError::UnknownNativeKey(k)) if k == "sil")
        );
        let mut c = StatesConfig::grafana(&[1], false);
        c.native_keys.insert("silences:1".into(), Some("notificationlog:1".into()));
        assert!(
            matches!(c.check_native_keys(), Err(LayoutError::KeyTwice(k)) if k == "notificationlog:1")
        );
        assert!(c.load(None).is_err());
    }
}
