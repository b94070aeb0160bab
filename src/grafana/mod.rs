//! Grafana's configuration file: the `[unified_alerting]` section of `grafana.ini` or
//! `custom.ini`, read as Grafana reads it, and turned into a [`NodeConfig`].
//!
//! An operator who followed Grafana's "Configure high availability" page has written `ha_*`
//! keys; [`UnifiedAlerting::load`] reads exactly those (every key of the spec's §6, plus
//! `notification_log_retention`, `alertmanager_max_silences_count` and
//! `alertmanager_max_silence_size_bytes`) with Grafana's rules:
//!
//! - the file is go-ini's format ([`ini`](self) explains how `rust-ini` is held to it): `;` and
//!   `#` comments, inline comments, `"…"`, `"""…"""` and backtick quotes, continuation lines;
//!   every other section and key loads and is left alone;
//! - `GF_UNIFIED_ALERTING_<KEY>` environment variables override the file (a non-empty one
//!   wins, as in Grafana), then `${VAR}`, `$__env{VAR}` and `$__file{path}` are expanded, then
//!   go-ini's `%(key)s` interpolation (same section, else the unnamed one);
//! - an empty value means the default, as in Grafana;
//! - durations in Grafana's syntax ([`duration`]).
//!
//! Where Grafana is lenient, hearsay is not: Grafana's `MustInt`/`MustBool` turn a typo into
//! the default silently; here a bad value is an error naming the key and its line (or its
//! environment variable), and so is an unknown `ha_*` key. A key that asks for what hearsay
//! cannot do yet (single-node evaluation) is an error naming it when it would change
//! behaviour; `false` or empty is fine. Nothing is ever half-loaded. Redis Sentinel is
//! `ha_redis_sentinel_mode_enabled` (or a master name alone, as go-redis decides) with
//! `ha_redis_address` the comma list of Sentinels. Redis Cluster is
//! `ha_redis_cluster_mode_enabled` (or several addresses without Sentinel, as go-redis's
//! universal client decides) with `ha_redis_address` the comma list of cluster nodes.

#![forbid(unsafe_code)]

pub mod duration;
mod expand;
mod ini;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::state::silences::SilencesConfig;
use crate::node::{NodeConfig, RedisCluster, RedisConfig, RedisSentinel};
use crate::tls::{TlsClient, TlsVersion};
pub use ini::MAX_FILE_BYTES;

/// Longest value after expansion and interpolation (a `$__file{…}` included).
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// The section hearsay reads.
pub const SECTION: &str = "unified_alerting";

/// How long Grafana keeps an expired silence: a fixed 5 days (spec §7), not a key.
pub const SILENCE_RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);

/// The `[unified_alerting]` keys hearsay reads. Any other `ha_*` key is refused as unknown.
pub const KEYS: [&str; 33] = [
    "ha_listen_address",
    "ha_advertise_address",
    "ha_peers",
    "ha_peer_timeout",
    "ha_label",
    "ha_gossip_interval",
    "ha_push_pull_interval",
    "ha_reconnect_timeout",
    "ha_redis_address",
    "ha_redis_username",
    "ha_redis_password",
    "ha_redis_db",
    "ha_redis_prefix",
    "ha_redis_peer_name",
    "ha_redis_max_conns",
    "ha_redis_cluster_mode_enabled",
    "ha_redis_sentinel_mode_enabled",
    "ha_redis_sentinel_master_name",
    "ha_redis_sentinel_username",
    "ha_redis_sentinel_password",
    "ha_redis_tls_enabled",
    "ha_redis_tls_cert_path",
    "ha_redis_tls_key_path",
    "ha_redis_tls_ca_path",
    "ha_redis_tls_server_name",
    "ha_redis_tls_insecure_skip_verify",
    "ha_redis_tls_cipher_suites",
    "ha_redis_tls_min_version",
    "ha_single_node_evaluation",
    "ha_single_evaluation_alert_broadcast_queue_size",
    "notification_log_retention",
    "alertmanager_max_silences_count",
    "alertmanager_max_silence_size_bytes",
];

/// Grafana's HA settings, typed. Built by [`UnifiedAlerting::load`]; [`Default`] is
/// Grafana's defaults (a file with an empty `[unified_alerting]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnifiedAlerting {
    /// Gossip bind address, `ip:port`, TCP and UDP (`ha_listen_address`, default
    /// `0.0.0.0:9094`). `:port` binds every interface.
    pub listen_address: SocketAddr,
    /// Address advertised to peers, `ip:port` (`ha_advertise_address`, default none: chosen
    /// from the bind address). Unused on Redis, as in Grafana.
    pub advertise_address: Option<SocketAddr>,
    /// Peers to join and keep re-resolving, `host:port` each (`ha_peers`, comma-separated,
    /// spaces trimmed, empty entries skipped; default none). Grafana clusters only when this
    /// or `ha_redis_address` is set; a hearsay node without either runs alone on its port.
    pub peers: Vec<String>,
    /// The per-position notification delay (`ha_peer_timeout`, default 15 s): the host waits
    /// `position × peer_timeout` before notifying. Read for the host; the node does not wait.
    pub peer_timeout: Duration,
    /// Cluster label on every packet and stream (`ha_label`, default none).
    pub label: String,
    /// Gossip interval (`ha_gossip_interval`, default 200 ms).
    pub gossip_interval: Duration,
    /// Push/pull interval, also the Redis full-state period (`ha_push_pull_interval`,
    /// default 60 s).
    pub push_pull_interval: Duration,
    /// How long a lost peer is retried (`ha_reconnect_timeout`, default 6 h).
    pub reconnect_timeout: Duration,
    /// Redis mode, when `ha_redis_address` is set (it wins over `ha_peers`, as in Grafana).
    pub redis: Option<GrafanaRedis>,
    /// Notification-log retention (`notification_log_retention`, default 5 days).
    pub notification_log_retention: Duration,
    /// Most silences a local write may leave (`alertmanager_max_silences_count`, default 0 =
    /// unlimited).
    pub max_silences_count: usize,
    /// Largest silence a local write may make, in bytes
    /// (`alertmanager_max_silence_size_bytes`, default 0 = unlimited).
    pub max_silence_size_bytes: usize,
    /// `ha_single_evaluation_alert_broadcast_queue_size` (default 200): checked and kept;
    /// it only matters with `ha_single_node_evaluation`, which hearsay refuses for now.
    pub alert_broadcast_queue_size: usize,
}

impl Default for UnifiedAlerting {
    fn default() -> Self {
        Self {
            listen_address: SocketAddr::from(([0, 0, 0, 0], 9094)),
            advertise_address: None,
            peers: Vec::new(),
            peer_timeout: Duration::from_secs(15),
            label: String::new(),
            gossip_interval: Duration::from_millis(200),
            push_pull_interval: Duration::from_secs(60),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            redis: None,
            notification_log_retention: Duration::from_secs(5 * 24 * 3600),
            max_silences_count: 0,
            max_silence_size_bytes: 0,
            alert_broadcast_queue_size: 200,
        }
    }
}

/// Grafana's `ha_redis_*` keys for a standalone Redis. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct GrafanaRedis {
    /// `host:port` of the server (`ha_redis_address`); a name is resolved at every connect.
    pub address: String,
    /// ACL user to `AUTH` as (`ha_redis_username`, default none: Redis' `default` user).
    pub username: String,
    /// Password to `AUTH` with (`ha_redis_password`, default none: no `AUTH`).
    pub password: String,
    /// Database to `SELECT` (`ha_redis_db`, default 0; not negative).
    pub db: i64,
    /// Prefix of every key and channel (`ha_redis_prefix`; a `:` is appended unless empty).
    pub prefix: String,
    /// This instance's name (`ha_redis_peer_name`, default `peer-<UUID>`, new every start).
    pub peer_name: Option<String>,
    /// `ha_redis_max_conns` (default 5): Grafana's command pool size. Checked and kept;
    /// hearsay pipelines every command on one connection, so no pool is needed.
    pub max_conns: i64,
    /// TLS (`ha_redis_tls_enabled` and the `ha_redis_tls_*` keys); `None` is plain TCP.
    /// In Sentinel mode it applies to the Sentinels and the master alike.
    pub tls: Option<TlsClient>,
    /// Redis Sentinel (`ha_redis_sentinel_mode_enabled`, or a master name alone, as in
    /// go-redis): `address` is then a comma list of Sentinels. `None`: one server.
    pub sentinel: Option<GrafanaSentinel>,
    /// Redis Cluster (`ha_redis_cluster_mode_enabled`, or several addresses without a
    /// Sentinel master name, as go-redis's universal client decides): `address` is then a
    /// comma list of cluster nodes, and `ha_redis_db` is ignored as cluster clients do.
    pub cluster: bool,
}

/// Grafana's `ha_redis_sentinel_*` keys. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct GrafanaSentinel {
    /// The master's name (`ha_redis_sentinel_master_name`; required in Sentinel mode).
    pub master_name: String,
    /// ACL user for the Sentinels (`ha_redis_sentinel_username`, default none).
    pub username: String,
    /// Password for the Sentinels (`ha_redis_sentinel_password`, default none: no `AUTH`).
    pub password: String,
}

impl std::fmt::Debug for GrafanaSentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrafanaSentinel")
            .field("master_name", &self.master_name)
            .field("username", &self.username)
            .field("password", &(!self.password.is_empty()).then_some("<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for GrafanaRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrafanaRedis")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &(!self.password.is_empty()).then_some("<redacted>"))
            .field("db", &self.db)
            .field("prefix", &self.prefix)
            .field("peer_name", &self.peer_name)
            .field("max_conns", &self.max_conns)
            .field("tls", &self.tls)
            .field("sentinel", &self.sentinel)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A line of the file (1-based).
    Line(usize),
    /// An environment variable (`GF_UNIFIED_ALERTING_…`).
    Env(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// Why a configuration was not loaded. Nothing was loaded in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrafanaConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`] or is not UTF-8.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not an ini file Grafana would load.
    #[error("{source_name}: line {line}: {message}")]
    Syntax {
        /// The file (or `<text>`).
        source_name: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A key's value is invalid, unknown, or asks for what hearsay cannot do yet.
    #[error("{source_name}: {origin}: [unified_alerting] {key}: {message}")]
    Key {
        /// The file (or `<text>`).
        source_name: String,
        /// The key.
        key: String,
        /// Where its value came from.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
}

/// The process environment, as [`UnifiedAlerting::load`] reads it (non-UTF-8 is unset).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl UnifiedAlerting {
    /// Read `[unified_alerting]` from the file at `path`, with the process environment.
    pub fn load(path: &Path) -> Result<Self, GrafanaConfigError> {
        Self::load_with_env(path, &process_env)
    }

    /// [`Self::load`] with `env` standing for the environment (`GF_…` overrides, `${VAR}`).
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, GrafanaConfigError> {
        let text = read_bounded(path)?;
        Self::parse(&text, &path.display().to_string(), env)
    }

    /// Read `[unified_alerting]` from `text`; `source_name` names it in errors.
    pub fn parse(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, GrafanaConfigError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(GrafanaConfigError::Syntax {
                source_name: source_name.to_owned(),
                line: 1,
                message: format!("larger than the {MAX_FILE_BYTES}-byte limit"),
            });
        }
        let file = ini::IniFile::parse(text).map_err(|(line, message)| {
            GrafanaConfigError::Syntax { source_name: source_name.to_owned(), line, message }
        })?;
        let keys = Keys { file: &file, env, source_name };
        keys.refuse_unknown()?;
        let mut s = Self::default();
        keys.memberlist(&mut s)?;
        keys.limits(&mut s)?;
        keys.refuse_unsupported()?;
        s.redis = keys.redis()?;
        Ok(s)
    }

    /// The node these settings describe: on Redis when `ha_redis_address` is set, else on
    /// gossip with Grafana's memberlist settings (`NodeConfig::alertmanager` plus the keys;
    /// advertising a public address allowed, as Grafana does).
    pub fn node_config(&self) -> NodeConfig {
        let mut config = match &self.redis {
            Some(r) => {
                let addrs: Vec<String> = split_addresses(&r.address).map(str::to_owned).collect();
                // In Sentinel mode the URL carries the scheme and database; its host (the
                // first Sentinel) is unused.
                let url = format!("redis://{}", addrs.first().map_or("", String::as_str));
                let sentinel = r.sentinel.as_ref().map(|s| RedisSentinel {
                    master_name: s.master_name.clone(),
                    addrs: addrs.clone(),
                    username: Some(s.username.clone()).filter(|u| !u.is_empty()),
                    password: Some(s.password.clone()).filter(|p| !p.is_empty()),
                });
                let cluster = r.cluster.then(|| RedisCluster { addrs: addrs.clone() });
                let redis = RedisConfig {
                    username: Some(r.username.clone()).filter(|u| !u.is_empty()),
                    password: Some(r.password.clone()).filter(|p| !p.is_empty()),
                    db: Some(if r.cluster { 0 } else { r.db }),
                    tls: r.tls.clone(),
                    sentinel,
                    cluster,
                    ..RedisConfig::grafana(&url, &r.prefix)
                };
                NodeConfig::grafana_redis(r.peer_name.as_deref(), redis)
            }
            None => {
                let mut c = NodeConfig::alertmanager(None, self.listen_address, self.peers.clone());
                c.advertise = self.advertise_address;
                c.allow_public_advertise = true;
                c.reconnect_timeout = self.reconnect_timeout;
                c.swim.label = self.label.clone().into_bytes();
                c
            }
        };
        config.swim.gossip_interval = self.gossip_interval;
        config.swim.push_pull_interval = self.push_pull_interval;
        config
    }

    /// The silence store's settings: the two limits, and Grafana's fixed 5-day retention.
    pub fn silences_config(&self) -> SilencesConfig {
        SilencesConfig {
            retention: SILENCE_RETENTION,
            max_silences: self.max_silences_count,
            max_silence_size_bytes: self.max_silence_size_bytes,
            ..SilencesConfig::default()
        }
    }
}

fn read_bounded(path: &Path) -> Result<String, GrafanaConfigError> {
    use std::io::Read;
    let io = |source| GrafanaConfigError::Io { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    let unreadable =
        |reason: String| GrafanaConfigError::Unreadable { path: path.to_owned(), reason };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(unreadable(format!("larger than the {MAX_FILE_BYTES}-byte limit")));
    }
    String::from_utf8(bytes).map_err(|e| unreadable(format!("not UTF-8: {e}")))
}

/// A value with its origin.
struct Value {
    text: String,
    origin: Origin,
}

/// The keys of one file and environment.
struct Keys<'a> {
    file: &'a ini::IniFile,
    env: &'a dyn Fn(&str) -> Option<String>,
    source_name: &'a str,
}

impl Keys<'_> {
    fn error(&self, key: &str, origin: Origin, message: String) -> GrafanaConfigError {
        GrafanaConfigError::Key {
            source_name: self.source_name.to_owned(),
            key: key.to_owned(),
            origin,
            message,
        }
    }

    /// The value of `key` after overrides, expansion and interpolation; `None` when unset or
    /// empty (Grafana's default applies).
    fn get(&self, key: &str) -> Result<Option<Value>, GrafanaConfigError> {
        let Some((text, origin)) = self.raw(Some(SECTION), key) else { return Ok(None) };
        let err = |m| self.error(key, origin.clone(), m);
        let text = expand::expand(&text, self.env).map_err(err)?;
        let text = expand::interpolate(&text, &|name| {
            // go-ini looks in the same section first, then the unnamed one.
            let found = self.raw(Some(SECTION), name).or_else(|| self.raw(None, name))?;
            expand::expand(&found.0, self.env).ok()
        })
        .map_err(err)?;
        Ok(Some(text).filter(|t| !t.is_empty()).map(|text| Value { text, origin }))
    }

    /// A key's text before expansion: a non-empty `GF_<SECTION>_<KEY>` variable, else the
    /// file's (unless empty).
    fn raw(&self, section: Option<&str>, key: &str) -> Option<(String, Origin)> {
        let var = env_name(section, key);
        if let Some(v) = (self.env)(&var).filter(|v| !v.is_empty()) {
            return Some((v, Origin::Env(var)));
        }
        let (text, line) = self.file.get(section, key)?;
        Some((text, Origin::Line(line))).filter(|(t, _)| !t.is_empty())
    }

    fn parsed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, GrafanaConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => parse(&v.text).map(Some).map_err(|m| self.error(key, v.origin, m)),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, GrafanaConfigError> {
        Ok(self.get(key)?.map(|v| v.text))
    }

    fn duration(&self, key: &str, into: &mut Duration) -> Result<(), GrafanaConfigError> {
        if let Some(d) = self.parsed(key, duration::parse)? {
            *into = d;
        }
        Ok(())
    }

    fn count(&self, key: &str, into: &mut usize) -> Result<(), GrafanaConfigError> {
        if let Some(n) = self.parsed(key, |s| parse_int(s, 0, i64::MAX))? {
            *into = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(())
    }

    fn bool(&self, key: &str) -> Result<Option<(bool, Origin)>, GrafanaConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => match parse_bool(&v.text) {
                Some(b) => Ok(Some((b, v.origin))),
                None => Err(self.error(
                    key,
                    v.origin,
                    format!("{:?} is not a boolean (want true or false)", v.text),
                )),
            },
        }
    }

    /// An `ha_*` key in the file that hearsay does not know is most likely a typo (the HA
    /// page itself writes `[ha_peer]` once): refused, with the nearest known key.
    fn refuse_unknown(&self) -> Result<(), GrafanaConfigError> {
        let mut unknown: Vec<(&str, usize)> = self
            .file
            .keys(SECTION)
            .into_iter()
            .filter(|(k, _)| k.starts_with("ha_") && !KEYS.contains(k))
            .collect();
        unknown.sort_by_key(|&(_, line)| line);
        match unknown.first() {
            None => Ok(()),
            Some(&(key, line)) => Err(self.error(
                key,
                Origin::Line(line),
                format!("unknown key (did you mean {}?)", nearest(key)),
            )),
        }
    }

    fn memberlist(&self, s: &mut UnifiedAlerting) -> Result<(), GrafanaConfigError> {
        if let Some(a) = self.parsed("ha_listen_address", ip_port)? {
            s.listen_address = a;
        }
        s.advertise_address = self.parsed("ha_advertise_address", ip_port)?;
        if let Some(peers) = self.parsed("ha_peers", parse_peers)? {
            s.peers = peers;
        }
        self.duration("ha_peer_timeout", &mut s.peer_timeout)?;
        s.label = self.string("ha_label")?.unwrap_or_default();
        if s.label.len() > 255 {
            let origin = self.get("ha_label")?.map_or(Origin::Line(0), |v| v.origin);
            return Err(self.error("ha_label", origin, "longer than 255 bytes".into()));
        }
        self.duration("ha_gossip_interval", &mut s.gossip_interval)?;
        self.duration("ha_push_pull_interval", &mut s.push_pull_interval)?;
        self.duration("ha_reconnect_timeout", &mut s.reconnect_timeout)?;
        Ok(())
    }

    fn limits(&self, s: &mut UnifiedAlerting) -> Result<(), GrafanaConfigError> {
        self.duration("notification_log_retention", &mut s.notification_log_retention)?;
        self.count("alertmanager_max_silences_count", &mut s.max_silences_count)?;
        self.count("alertmanager_max_silence_size_bytes", &mut s.max_silence_size_bytes)?;
        self.count(
            "ha_single_evaluation_alert_broadcast_queue_size",
            &mut s.alert_broadcast_queue_size,
        )
    }

    /// What would change behaviour in Grafana but is not built yet: refused by name.
    fn refuse_unsupported(&self) -> Result<(), GrafanaConfigError> {
        let cluster = self.bool("ha_redis_cluster_mode_enabled")?;
        if let (Some((true, origin)), Some((true, _))) =
            (&cluster, self.bool("ha_redis_sentinel_mode_enabled")?)
        {
            let why = "Redis Cluster and Redis Sentinel are mutually exclusive: turn one off \
                       (ha_redis_sentinel_mode_enabled is on too)";
            return Err(self.error("ha_redis_cluster_mode_enabled", origin.clone(), why.into()));
        }
        // Without addresses Grafana would fall back to memberlist on 0.0.0.0:9094: an
        // operator who asked for Redis Cluster should hear that nothing names the cluster.
        if let Some((true, origin)) = cluster
            && self.string("ha_redis_address")?.is_none()
        {
            let why = "needs ha_redis_address, the comma list of the cluster's nodes";
            return Err(self.error("ha_redis_cluster_mode_enabled", origin, why.into()));
        }
        let flags = [(
            "ha_single_node_evaluation",
            "single-node evaluation (alerts broadcast from position 0) is not supported yet",
        )];
        for (key, why) in flags {
            if let Some((true, origin)) = self.bool(key)? {
                return Err(self.error(
                    key,
                    origin,
                    format!("{why}; set it to false or remove it"),
                ));
            }
        }
        Ok(())
    }

    /// The Sentinel keys: `Some` in Sentinel mode, which the flag turns on, and so does a
    /// master name alone (go-redis picks its Sentinel client whenever one is set).
    fn sentinel(&self) -> Result<Option<GrafanaSentinel>, GrafanaConfigError> {
        let enabled = self.bool("ha_redis_sentinel_mode_enabled")?;
        let master_name = self.string("ha_redis_sentinel_master_name")?;
        let username = self.string("ha_redis_sentinel_username")?.unwrap_or_default();
        let password = self.string("ha_redis_sentinel_password")?.unwrap_or_default();
        match (enabled, master_name) {
            (Some((true, origin)), None) => Err(self.error(
                "ha_redis_sentinel_mode_enabled",
                origin,
                "needs ha_redis_sentinel_master_name, the master's name as the Sentinels know it"
                    .into(),
            )),
            (_, Some(master_name)) => Ok(Some(GrafanaSentinel { master_name, username, password })),
            _ => Ok(None),
        }
    }

    /// Every Redis key is checked, also without `ha_redis_address` (then they are unused).
    fn redis(&self) -> Result<Option<GrafanaRedis>, GrafanaConfigError> {
        let address = self.get("ha_redis_address")?;
        let sentinel = self.sentinel()?;
        let cluster = sentinel.is_none()
            && (matches!(self.bool("ha_redis_cluster_mode_enabled")?, Some((true, _)))
                || address.as_ref().is_some_and(|a| split_addresses(&a.text).count() > 1));
        if let Some(a) = &address {
            for one in split_addresses(&a.text) {
                redis_address(one)
                    .map_err(|m| self.error("ha_redis_address", a.origin.clone(), m))?;
            }
        }
        let db = self.parsed("ha_redis_db", |v| parse_int(v, 0, i64::MAX))?.unwrap_or(0);
        let max_conns = self.parsed("ha_redis_max_conns", |v| parse_int(v, i64::MIN, i64::MAX))?;
        let username = self.string("ha_redis_username")?.unwrap_or_default();
        let password = self.string("ha_redis_password")?.unwrap_or_default();
        let prefix = self.string("ha_redis_prefix")?.unwrap_or_default();
        let peer_name = self.string("ha_redis_peer_name")?;
        let tls = self.redis_tls()?;
        Ok(address.map(|a| GrafanaRedis {
            address: a.text,
            username,
            password,
            db,
            prefix,
            peer_name,
            max_conns: max_conns.unwrap_or(5),
            tls,
            sentinel,
            cluster,
        }))
    }

    fn redis_tls(&self) -> Result<Option<TlsClient>, GrafanaConfigError> {
        let path = |key: &str| Ok::<_, GrafanaConfigError>(self.string(key)?.map(PathBuf::from));
        let enabled = matches!(self.bool("ha_redis_tls_enabled")?, Some((true, _)));
        let cert = path("ha_redis_tls_cert_path")?;
        let key = path("ha_redis_tls_key_path")?;
        if enabled && cert.is_some() != key.is_some() {
            let (name, other) = if cert.is_some() {
                ("ha_redis_tls_cert_path", "ha_redis_tls_key_path")
            } else {
                ("ha_redis_tls_key_path", "ha_redis_tls_cert_path")
            };
            let origin = self.get(name)?.map_or(Origin::Line(0), |v| v.origin);
            return Err(self.error(name, origin, format!("needs {other} too (mutual TLS)")));
        }
        let min_version = self.parsed("ha_redis_tls_min_version", |v| {
            TlsVersion::parse(v).map_err(|e| e.to_string())
        })?;
        let cipher_suites: Vec<String> = self
            .string("ha_redis_tls_cipher_suites")?
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let insecure = matches!(self.bool("ha_redis_tls_insecure_skip_verify")?, Some((true, _)));
        let tls = TlsClient {
            ca_file: path("ha_redis_tls_ca_path")?,
            cert_file: cert,
            key_file: key,
            server_name: self.string("ha_redis_tls_server_name")?,
            insecure_skip_verify: insecure,
            min_version,
            max_version: None,
            cipher_suites: cipher_suites.clone(),
        };
        // Unknown suite names are refused now, naming the key, rather than at start.
        let probe = TlsClient { cipher_suites, insecure_skip_verify: true, ..TlsClient::default() };
        if let Err(e) = probe.build() {
            let origin =
                self.get("ha_redis_tls_cipher_suites")?.map_or(Origin::Line(0), |v| v.origin);
            return Err(self.error("ha_redis_tls_cipher_suites", origin, e.to_string()));
        }
        Ok(enabled.then_some(tls))
    }
}

/// `GF_<SECTION>_<KEY>`: upper case, `.` and `-` as `_`; the unnamed section is `DEFAULT`.
pub fn env_name(section: Option<&str>, key: &str) -> String {
    let norm = |s: &str| s.to_ascii_uppercase().replace(['.', '-'], "_");
    format!("GF_{}_{}", norm(section.unwrap_or("DEFAULT")), norm(key))
}

/// go-ini's `Key.Bool`: Go's `strconv.ParseBool` words plus yes/no, y/n, on/off.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "YES" | "yes" | "Yes" | "y" | "ON" | "on"
        | "On" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "NO" | "no" | "No" | "n" | "OFF"
        | "off" | "Off" => Some(false),
        _ => None,
    }
}

fn parse_int(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let n: i64 = s.parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range ({min}..={max})"));
    }
    Ok(n)
}

/// `ip:port`, or `:port` for every interface, as Go's memberlist bind and advertise take.
fn ip_port(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().map_err(|_| format!("{s:?} is not ip:port (an IP address, not a name)"))
}

/// `ha_peers`: comma-separated `host:port`, as Grafana splits and trims them.
fn parse_peers(s: &str) -> Result<Vec<String>, String> {
    let mut peers = Vec::new();
    for peer in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match peer.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                peers.push(peer.to_owned());
            }
            _ => return Err(format!("peer {peer:?} is not host:port")),
        }
    }
    Ok(peers)
}

/// One `host:port`, as go-redis' `Addr` takes it (no URL).
/// The addresses of a comma list (spaces around each are dropped, unlike go-redis, which
/// would fail to dial them).
fn split_addresses(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim)
}

fn redis_address(s: &str) -> Result<(), String> {
    if s.contains("://") {
        return Err(format!("{s:?} is a URL; Grafana's key takes host:port"));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{s:?} is not host:port")),
    }
}

/// The known key closest to `key` (edit distance), for "did you mean".
fn nearest(key: &str) -> &'static str {
    KEYS.iter().copied().min_by_key(|k| edit_distance(key, k)).unwrap_or(KEYS[0])
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
