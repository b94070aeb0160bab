//! `hs_config`: how a node is started, built up field by field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    Failure, FfiResult, borrow_mut, boundary, bytes, hs_result, hs_str, out_ptr, text, write,
};
use crate::core::wire::SecretKey;
use crate::core::wire::keyring::MAX_KEYS;
use crate::grafana::{GrafanaConfigError, UnifiedAlerting};
use crate::tls::{TlsClient, TlsVersion};

/// A node's settings, Alertmanager's defaults until changed. Not thread-safe: build it on one
/// thread (or lock around it). Created by `hs_config_new`, freed by `hs_config_free`;
/// `hs_node_start` copies what it needs, so it can be freed (or
/// reused) right after.
#[derive(Debug)]
pub struct hs_config {
    pub(crate) name: Option<String>,
    pub(crate) bind: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) peers: Vec<String>,
    pub(crate) label: String,
    pub(crate) gossip_interval: Duration,
    pub(crate) push_pull_interval: Duration,
    pub(crate) storage_dir: Option<PathBuf>,
    pub(crate) retention: Duration,
    pub(crate) maintenance_interval: Duration,
    pub(crate) settle_timeout: Duration,
    /// Redis mode: URL and prefix.
    pub(crate) redis: Option<(String, String)>,
    /// Redis credentials and database over the URL's (`None`: the URL's).
    pub(crate) redis_username: Option<String>,
    pub(crate) redis_password: Option<String>,
    pub(crate) redis_db: Option<i64>,
    /// Redis TLS settings, used once `redis_tls_enabled` (set by `hs_config_set_redis_tls`).
    pub(crate) redis_tls: TlsClient,
    pub(crate) redis_tls_enabled: bool,
    /// Redis Sentinel (set by `hs_config_set_redis_sentinel`, or Grafana's ini).
    pub(crate) redis_sentinel: Option<crate::node::RedisSentinel>,
    /// Redis Cluster (set by `hs_config_set_redis_cluster`, or Grafana's ini).
    pub(crate) redis_cluster: Option<crate::node::RedisCluster>,
    /// AES-GCM keys, the first the primary; empty is no encryption.
    pub(crate) secret_keys: Vec<SecretKey>,
    pub(crate) gossip_verify_incoming: bool,
    pub(crate) gossip_verify_outgoing: bool,
    /// Alertmanager's TLS transport, from a `--cluster.tls-config` file.
    pub(crate) cluster_tls: Option<crate::tls::ClusterTls>,
    /// How long a lost member is retried (`ha_reconnect_timeout`); `None`: 6 h.
    pub(crate) reconnect_timeout: Option<Duration>,
    /// Advertise a public address found at start (Grafana's memberlist peer does).
    pub(crate) allow_public_advertise: bool,
    /// Silences' own retention (Grafana's fixed 5 days); `None`: `retention`.
    pub(crate) silence_retention: Option<Duration>,
    /// `alertmanager_max_silences_count`, `alertmanager_max_silence_size_bytes` (0: no limit).
    pub(crate) max_silences: usize,
    pub(crate) max_silence_size_bytes: usize,
    /// Grafana organisations whose states the node carries; empty: Alertmanager's `nfl`/`sil`.
    pub(crate) orgs: Vec<i64>,
    /// Also a flush log per organisation (Grafana's `alertingSyncDispatchTimer`).
    pub(crate) flush_log: bool,
    /// Native states moved to other keys (`Some`) or switched off (`None`), by layout key.
    pub(crate) native_keys: std::collections::BTreeMap<String, Option<String>>,
}

impl Default for hs_config {
    fn default() -> Self {
        Self {
            name: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 9094)),
            advertise: None,
            peers: Vec::new(),
            label: String::new(),
            gossip_interval: Duration::from_millis(200),
            push_pull_interval: Duration::from_secs(60),
            storage_dir: None,
            retention: Duration::from_secs(120 * 3600),
            maintenance_interval: Duration::from_secs(15 * 60),
            settle_timeout: Duration::from_secs(60),
            redis: None,
            redis_username: None,
            redis_password: None,
            redis_db: None,
            redis_tls: TlsClient::default(),
            redis_tls_enabled: false,
            redis_sentinel: None,
            redis_cluster: None,
            secret_keys: Vec::new(),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
            cluster_tls: None,
            reconnect_timeout: None,
            allow_public_advertise: false,
            silence_retention: None,
            max_silences: 0,
            max_silence_size_bytes: 0,
            orgs: Vec::new(),
            flush_log: false,
            native_keys: std::collections::BTreeMap::new(),
        }
    }
}

/// Change one field of a config.
fn set(config: *mut hs_config, f: impl FnOnce(&mut hs_config) -> FfiResult) -> hs_result {
    boundary(|| f(borrow_mut(config, "config")?))
}

fn address(s: hs_str, what: &str) -> FfiResult<SocketAddr> {
    let s = text(s, what)?;
    s.parse().map_err(|e| {
        Failure::new(hs_result::InvalidArgument, format!("{what} {s:?}: {e} (want ip:port)"))
    })
}

/// A positive duration, at most `HS_MAX_DURATION_MS`.
fn millis(ms: u64, what: &str) -> FfiResult<Duration> {
    if ms == 0 {
        return Err(Failure::new(hs_result::InvalidArgument, format!("{what} must be positive")));
    }
    super::duration_ms(ms, what)
}

/// Create a config with Alertmanager's defaults: a random ULID name, bind `0.0.0.0:9094`,
/// no peers, gossip every 200 ms, push/pull every 60 s, no snapshots, retention 120 h,
/// maintenance every 15 min, settle timeout 60 s. Writes it to `*config_out`; free it with `hs_config_free`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_new(config_out: *mut *mut hs_config) -> hs_result {
    boundary(|| {
        let out = out_ptr(config_out, "config_out")?;
        write(out, Box::into_raw(Box::default()));
        Ok(())
    })
}

/// Free a config. NULL is a no-op; `config` must not be used afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_free(config: *mut hs_config) {
    boundary(|| {
        if !config.is_null() {
            // SAFETY: a non-NULL config came from `hs_config_new` and is freed once (the
            // documented contract).
            drop(unsafe { Box::from_raw(config) });
        }
        Ok(())
    });
}

/// The node's name, unique in the cluster (Alertmanager's `--cluster.peer-name`).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_name(config: *mut hs_config, name: hs_str) -> hs_result {
    set(config, |c| {
        let name = text(name, "name")?;
        if name.is_empty() {
            return Err(Failure::new(hs_result::InvalidArgument, "name is empty"));
        }
        c.name = Some(name.to_owned());
        Ok(())
    })
}

/// Where to listen for UDP and TCP, `ip:port`; port 0 picks a free one
/// (`--cluster.listen-address`).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_bind_address(config: *mut hs_config, addr: hs_str) -> hs_result {
    set(config, |c| {
        c.bind = address(addr, "bind address")?;
        Ok(())
    })
}

/// The address peers should use, `ip:port` (`--cluster.advertise-address`).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_advertise_address(
    config: *mut hs_config,
    addr: hs_str,
) -> hs_result {
    set(config, |c| {
        c.advertise = Some(address(addr, "advertise address")?);
        Ok(())
    })
}

/// Add a peer to join at start and keep re-resolving, `host:port` (`--cluster.peer`).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_add_peer(config: *mut hs_config, peer: hs_str) -> hs_result {
    set(config, |c| {
        let peer = text(peer, "peer")?;
        if !peer.contains(':') {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                format!("peer {peer:?} has no port (want host:port)"),
            ));
        }
        c.peers.push(peer.to_owned());
        Ok(())
    })
}

/// The cluster label every packet carries; peers with another label are ignored
/// (`--cluster.label`).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_label(config: *mut hs_config, label: hs_str) -> hs_result {
    set(config, |c| {
        c.label = text(label, "label")?.to_owned();
        Ok(())
    })
}

/// Gossip period in milliseconds (`--cluster.gossip-interval`, 200).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_gossip_interval_ms(config: *mut hs_config, ms: u64) -> hs_result {
    set(config, |c| {
        c.gossip_interval = millis(ms, "gossip interval")?;
        Ok(())
    })
}

/// Full-state exchange period in milliseconds (`--cluster.pushpull-interval`, 60,000).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_push_pull_interval_ms(
    config: *mut hs_config,
    ms: u64,
) -> hs_result {
    set(config, |c| {
        c.push_pull_interval = millis(ms, "push/pull interval")?;
        Ok(())
    })
}

/// Directory of the `nflog` and `silences` snapshot files, in Alertmanager's format
/// (`--storage.path`): loaded at start, written every maintenance interval and when the node
/// is freed. Without it nothing is written. `hs_node_start` creates it when missing and
/// refuses (`HS_RESULT_IO`) one it cannot write. With organisations (`hs_config_add_org`) the
/// files are `nflog:<org>`, `silences:<org>` and `flushlog:<org>`, one set per organisation.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_storage_dir(config: *mut hs_config, dir: hs_str) -> hs_result {
    set(config, |c| {
        c.storage_dir = Some(PathBuf::from(text(dir, "storage dir")?));
        Ok(())
    })
}

/// How long notification-log entries and expired silences are kept, in milliseconds
/// (`--data.retention`, 120 h).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_retention_ms(config: *mut hs_config, ms: u64) -> hs_result {
    set(config, |c| {
        c.retention = millis(ms, "retention")?;
        c.silence_retention = None;
        Ok(())
    })
}

/// Carry Grafana organisation `org_id`'s states: the notification log `notificationlog:<org>`
/// and the silences `silences:<org>` (and the flush log `flushlog:<org>` with
/// `hs_config_set_flush_log`), as Grafana's per-organisation Alertmanagers register them on
/// their shared peer. Call once per organisation, any number of them; an organisation given
/// twice is `HS_RESULT_INVALID_ARGUMENT`. Once any is added, the node carries no `nfl`/`sil`
/// states: the calls without a key (`hs_node_should_notify`, ...) then give
/// `HS_RESULT_NO_SUCH_STATE`; use their `_in` forms with the organisation's key.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_add_org(config: *mut hs_config, org_id: i64) -> hs_result {
    set(config, |c| {
        if c.orgs.contains(&org_id) {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                format!("organisation {org_id} is added already"),
            ));
        }
        c.orgs.push(org_id);
        Ok(())
    })
}

/// Whether every organisation also carries a flush log, `flushlog:<org>` (default false), as
/// Grafana registers one with its `alertingSyncDispatchTimer` feature toggle. Unused without
/// organisations.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_flush_log(config: *mut hs_config, enabled: bool) -> hs_result {
    set(config, |c| {
        c.flush_log = enabled;
        Ok(())
    })
}

/// Register the native state the layout puts under `native_key` (`nfl`, `sil`, or an
/// organisation's `notificationlog:<org>`, `silences:<org>`, `flushlog:<org>`) under `key`
/// instead, so that the host can register its own state under `native_key` and keep both. The
/// state keeps its snapshot file; the calls without a key (`hs_node_set_silence`, ...) still
/// act on `nfl`/`sil`, so use the `_in` forms with `key`. An empty `key` is
/// `HS_RESULT_INVALID_ARGUMENT`; a `native_key` not in the layout, or two states on one key,
/// is `HS_RESULT_INVALID_CONFIG` at `hs_node_start`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_state_key(
    config: *mut hs_config,
    native_key: hs_str,
    key: hs_str,
) -> hs_result {
    set(config, |c| {
        let native_key = text(native_key, "native key")?.to_owned();
        let key = text(key, "key")?;
        if key.is_empty() {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                "key is empty (hs_config_switch_off_state leaves a native state out)",
            ));
        }
        c.native_keys.insert(native_key, Some(key.to_owned()));
        Ok(())
    })
}

/// Leave out the native state the layout puts under `native_key`: the node neither carries
/// nor snapshots it. A `native_key` not in the layout is `HS_RESULT_INVALID_CONFIG` at
/// `hs_node_start`. (A host's `hs_node_add_state` of a native key switches that state off by
/// itself; this does it from the start.)
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_switch_off_state(
    config: *mut hs_config,
    native_key: hs_str,
) -> hs_result {
    set(config, |c| {
        c.native_keys.insert(text(native_key, "native key")?.to_owned(), None);
        Ok(())
    })
}

/// GC and snapshot period in milliseconds (`--data.maintenance-interval`, 15 min).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_maintenance_interval_ms(
    config: *mut hs_config,
    ms: u64,
) -> hs_result {
    set(config, |c| {
        c.maintenance_interval = millis(ms, "maintenance interval")?;
        Ok(())
    })
}

/// The longest the node takes to settle, in milliseconds (`--cluster.settle-timeout`, 60,000);
/// see `hs_node_wait_ready`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_settle_timeout_ms(config: *mut hs_config, ms: u64) -> hs_result {
    set(config, |c| {
        c.settle_timeout = millis(ms, "settle timeout")?;
        Ok(())
    })
}

/// Run the node on Redis instead of gossip, in Grafana's layout (`ha_redis_address`,
/// `ha_redis_prefix`): `url` is `redis://host:port/db`, `prefix` is normalised with a
/// trailing `:` unless empty. Bind, advertise, peers and label are then unused; the name,
/// push/pull interval, settle timeout, storage dir, retention and maintenance interval apply.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis(
    config: *mut hs_config,
    url: hs_str,
    prefix: hs_str,
) -> hs_result {
    set(config, |c| {
        let url = text(url, "url")?;
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                format!("redis url {url:?} must start with redis:// or rediss://"),
            ));
        }
        c.redis = Some((url.to_owned(), text(prefix, "prefix")?.to_owned()));
        Ok(())
    })
}

/// The Redis ACL user and password to `AUTH` with (`ha_redis_username`, `ha_redis_password`),
/// over any in the URL. An empty `username` sends `AUTH password` (Redis' `default` user); an
/// empty `password` sends no `AUTH` at all. Order-independent of `hs_config_set_redis`.
/// A wrong password is no start error: the node logs it, counts it
/// (`hearsay_redis_connection_errors_total{reason="auth"}`) and retries with backoff.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis_auth(
    config: *mut hs_config,
    username: hs_str,
    password: hs_str,
) -> hs_result {
    set(config, |c| {
        c.redis_username = Some(text(username, "username")?.to_owned());
        c.redis_password = Some(text(password, "password")?.to_owned());
        Ok(())
    })
}

/// Redis Sentinel (`ha_redis_sentinel_mode_enabled`): learn the master named `master_name`
/// (`ha_redis_sentinel_master_name`) from the Sentinels at `addrs`, a comma list of
/// `host:port` (`ha_redis_address` in Sentinel mode), and follow it through failovers.
/// `username` and `password` (`ha_redis_sentinel_username`, `_password`; empty: none) are
/// the Sentinels' own; the master takes those of `hs_config_set_redis_auth` or the URL, and
/// the URL of `hs_config_set_redis` (still required) gives the scheme and database, its host
/// unused. An empty master name or address list is `HS_RESULT_INVALID_ARGUMENT`; a master
/// no Sentinel knows is no start error: the node logs it, counts it
/// (`hearsay_redis_connection_errors_total{reason="unknown_master"}`) and retries.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis_sentinel(
    config: *mut hs_config,
    master_name: hs_str,
    addrs: hs_str,
    username: hs_str,
    password: hs_str,
) -> hs_result {
    set(config, |c| {
        let master_name = text(master_name, "master_name")?.to_owned();
        let addrs: Vec<String> = text(addrs, "addrs")?
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if master_name.is_empty() || addrs.is_empty() {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                "Redis Sentinel needs a master name and at least one Sentinel address",
            ));
        }
        let given = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
        c.redis_sentinel = Some(crate::node::RedisSentinel {
            master_name,
            addrs,
            username: given(text(username, "username")?),
            password: given(text(password, "password")?),
        });
        Ok(())
    })
}

/// Redis Cluster (`ha_redis_cluster_mode_enabled`): read the slot map from the nodes at
/// `addrs`, a comma list of `host:port` (`ha_redis_address` in Cluster mode), send each key
/// to the master owning its slot and follow `MOVED`/`ASK` redirections. The URL of
/// `hs_config_set_redis` (still required) gives the scheme and credentials, its host unused;
/// its database must be 0. An empty list is `HS_RESULT_INVALID_ARGUMENT`; with Sentinel also
/// set, `hs_node_new` fails (the two are exclusive). Not thread-safe, like every
/// `hs_config_*` call.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis_cluster(config: *mut hs_config, addrs: hs_str) -> hs_result {
    set(config, |c| {
        let addrs: Vec<String> = text(addrs, "addrs")?
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if addrs.is_empty() {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                "Redis Cluster needs at least one node address",
            ));
        }
        c.redis_cluster = Some(crate::node::RedisCluster { addrs });
        Ok(())
    })
}

/// The Redis logical database to `SELECT` (`ha_redis_db`, default 0), over the URL's path.
/// `HS_RESULT_INVALID_ARGUMENT` when negative.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis_db(config: *mut hs_config, db: i64) -> hs_result {
    set(config, |c| {
        if db < 0 {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                format!("redis db {db} is negative"),
            ));
        }
        c.redis_db = Some(db);
        Ok(())
    })
}

/// Turn TLS to Redis on (`ha_redis_tls_enabled`), also for a `redis://` URL, with these
/// settings; empty strings mean unset. `ca_file` (`ha_redis_tls_ca_path`): PEM bundle the
/// server's certificate must chain to, else the system roots. `cert_file` and `key_file`
/// (`ha_redis_tls_cert_path`, `ha_redis_tls_key_path`): our certificate for mutual TLS, both
/// or neither. `server_name` (`ha_redis_tls_server_name`): the name to verify and send as
/// SNI, else the URL's host. `insecure_skip_verify` (`ha_redis_tls_insecure_skip_verify`):
/// accept any server certificate. The files are read by `hs_node_start`, which fails with
/// `HS_RESULT_INVALID_CONFIG` naming the file when one is unusable; a server that refuses the
/// handshake is no start error (logged, counted as `reason="tls"`, retried).
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis_tls(
    config: *mut hs_config,
    ca_file: hs_str,
    cert_file: hs_str,
    key_file: hs_str,
    server_name: hs_str,
    insecure_skip_verify: bool,
) -> hs_result {
    set(config, |c| {
        let path = |s: hs_str, what: &str| -> FfiResult<Option<PathBuf>> {
            Ok(Some(text(s, what)?).filter(|p| !p.is_empty()).map(PathBuf::from))
        };
        let (ca, cert, key) =
            (path(ca_file, "ca_file")?, path(cert_file, "cert_file")?, path(key_file, "key_file")?);
        if cert.is_some() != key.is_some() {
            return Err(Failure::new(
                hs_result::InvalidArgument,
                "a client certificate needs both cert_file and key_file",
            ));
        }
        let name = text(server_name, "server_name")?;
        c.redis_tls.ca_file = ca;
        c.redis_tls.cert_file = cert;
        c.redis_tls.key_file = key;
        c.redis_tls.server_name = Some(name.to_owned()).filter(|n| !n.is_empty());
        c.redis_tls.insecure_skip_verify = insecure_skip_verify;
        c.redis_tls_enabled = true;
        Ok(())
    })
}

/// Add an AES-GCM key of 16, 24 or 32 bytes (`len` bytes at `key` are copied): the first key
/// added is the primary, which encrypts; every key decrypts (memberlist `SecretKey` /
/// `Keyring`). With no key (the default) nothing is encrypted. A key added twice counts once.
/// `HS_RESULT_INVALID_ARGUMENT` for another length or beyond 32 keys.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_add_key(
    config: *mut hs_config,
    key: *const u8,
    len: usize,
) -> hs_result {
    set(config, |c| {
        let key = SecretKey::new(bytes(key, len, "key")?.to_vec())
            .map_err(|e| Failure::new(hs_result::InvalidArgument, e.to_string()))?;
        if c.secret_keys.contains(&key) {
            return Ok(());
        }
        if c.secret_keys.len() >= MAX_KEYS {
            return Err(Failure::new(hs_result::InvalidArgument, "at most 32 keys"));
        }
        c.secret_keys.push(key);
        Ok(())
    })
}

/// The TLS versions and TLS 1.2 cipher suites offered to Redis, used once TLS is on
/// (`hs_config_set_redis_tls` or a `rediss://` URL). `min_version` (`ha_redis_tls_min_version`):
/// `VersionTLS12` or `VersionTLS13`, empty for TLS 1.2 (`VersionTLS10`/`11` are refused:
/// rustls implements neither). `cipher_suites` (`ha_redis_tls_cipher_suites`): comma-separated
/// IANA names, empty for the defaults. `HS_RESULT_INVALID_ARGUMENT` naming what is unknown.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_redis_tls_options(
    config: *mut hs_config,
    min_version: hs_str,
    cipher_suites: hs_str,
) -> hs_result {
    set(config, |c| {
        let invalid =
            |e: crate::tls::TlsError| Failure::new(hs_result::InvalidArgument, e.to_string());
        let min = text(min_version, "min_version")?.trim();
        let min =
            if min.is_empty() { None } else { Some(TlsVersion::parse(min).map_err(invalid)?) };
        let suites: Vec<String> = text(cipher_suites, "cipher_suites")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        // Unknown names are refused now rather than at start.
        let probe = TlsClient {
            cipher_suites: suites.clone(),
            insecure_skip_verify: true,
            ..TlsClient::default()
        };
        probe.build().map_err(invalid)?;
        c.redis_tls.min_version = min;
        c.redis_tls.cipher_suites = suites;
        Ok(())
    })
}

/// With keys: drop packets that do not decrypt and refuse plain streams (memberlist
/// `GossipVerifyIncoming`, default true). Set false while rolling encryption into a running
/// cluster.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_gossip_verify_incoming(
    config: *mut hs_config,
    verify: bool,
) -> hs_result {
    set(config, |c| {
        c.gossip_verify_incoming = verify;
        Ok(())
    })
}

/// With keys: encrypt everything sent (memberlist `GossipVerifyOutgoing`, default true). Set
/// false for the first step of rolling encryption in.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_gossip_verify_outgoing(
    config: *mut hs_config,
    verify: bool,
) -> hs_result {
    set(config, |c| {
        c.gossip_verify_outgoing = verify;
        Ok(())
    })
}

/// Gossip over Alertmanager's TLS transport (`--cluster.tls-config`): `path` names its YAML
/// file (`tls_server_config`, `tls_client_config`; relative paths in it are relative to the
/// file), which is read and checked now; the certificate files it names are read by
/// `hs_node_start`. An empty `path` turns the transport off again. No UDP socket is bound,
/// and only peers configured alike are reachable. On an unreadable or invalid file the config
/// is unchanged and `HS_RESULT_INVALID_CONFIG` is returned (`hs_last_error_message` says
/// why). Unused on Redis. Not thread-safe, like every `hs_config_*` call.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_set_cluster_tls_config_file(
    config: *mut hs_config,
    path: hs_str,
) -> hs_result {
    set(config, |c| {
        let path = text(path, "cluster TLS config file")?;
        if path.is_empty() {
            c.cluster_tls = None;
            return Ok(());
        }
        let tls = crate::tls::ClusterTls::load(std::path::Path::new(path))
            .map_err(|e| Failure::new(hs_result::InvalidConfig, e.to_string()))?;
        c.cluster_tls = Some(tls);
        Ok(())
    })
}

/// Read Grafana's configuration file at `path` (`grafana.ini`, `custom.ini`): its
/// `[unified_alerting]` section, with Grafana's rules (`GF_UNIFIED_ALERTING_<KEY>` variables of
/// this process override the file; `${VAR}`, `$__env{VAR}`, `$__file{path}` are expanded;
/// Grafana's durations). Every setting the keys mirror is set to what the file says, its
/// default where the file is silent: bind, advertise, peers, label, gossip and push/pull
/// intervals, reconnect timeout, retention (`notification_log_retention`; silences keep
/// Grafana's 5 days), the silence limits, and Redis mode when `ha_redis_address` is set
/// (address, credentials, database, prefix, peer name as the node's name, TLS). Setters called
/// afterwards override it, as flags beside `--config.file` do. On failure the config is
/// unchanged: `HS_RESULT_IO` when the file cannot be read, else `HS_RESULT_INVALID_CONFIG`, and
/// `hs_last_error_message` names the key and its line (or environment variable); an unknown
/// `ha_*` key, and Redis Cluster or single-node evaluation turned on, are refused by name;
/// Redis Sentinel is read (as `hs_config_set_redis_sentinel` sets it). Not thread-safe, like every `hs_config_*` call.
#[unsafe(no_mangle)]
pub extern "C" fn hs_config_load_grafana_ini(config: *mut hs_config, path: hs_str) -> hs_result {
    set(config, |c| {
        let path = text(path, "path")?;
        let g = UnifiedAlerting::load(std::path::Path::new(path)).map_err(|e| {
            let code = match e {
                GrafanaConfigError::Io { .. } => hs_result::Io,
                _ => hs_result::InvalidConfig,
            };
            Failure::new(code, e.to_string())
        })?;
        c.apply_grafana(&g);
        Ok(())
    })
}

impl hs_config {
    /// Every field Grafana's keys mirror, from `g`.
    fn apply_grafana(&mut self, g: &UnifiedAlerting) {
        self.bind = g.listen_address;
        self.advertise = g.advertise_address;
        self.peers.clone_from(&g.peers);
        self.label.clone_from(&g.label);
        self.gossip_interval = g.gossip_interval;
        self.push_pull_interval = g.push_pull_interval;
        self.reconnect_timeout = Some(g.reconnect_timeout);
        self.allow_public_advertise = true;
        self.retention = g.notification_log_retention;
        self.silence_retention = Some(crate::grafana::SILENCE_RETENTION);
        self.max_silences = g.max_silences_count;
        self.max_silence_size_bytes = g.max_silence_size_bytes;
        let node = g.node_config();
        let from_ini = node.redis.as_ref();
        self.redis = g.redis.as_ref().zip(from_ini).map(|(r, n)| (n.url.clone(), r.prefix.clone()));
        self.redis_sentinel = from_ini.and_then(|n| n.sentinel.clone());
        self.redis_cluster = from_ini.and_then(|n| n.cluster.clone());
        let redis = g.redis.as_ref();
        self.redis_username = redis.map(|r| r.username.clone()).filter(|u| !u.is_empty());
        self.redis_password = redis.map(|r| r.password.clone()).filter(|p| !p.is_empty());
        self.redis_db = redis.map(|r| r.db);
        self.redis_tls_enabled = redis.is_some_and(|r| r.tls.is_some());
        self.redis_tls = redis.and_then(|r| r.tls.clone()).unwrap_or_default();
        if let Some(name) = redis.and_then(|r| r.peer_name.clone()) {
            self.name = Some(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> hs_str {
        hs_str { data: text.as_ptr().cast(), len: text.len() }
    }

    #[test]
    fn a_grafana_file_sets_the_fields_it_mirrors() {
        let dir = std::env::temp_dir().join(format!("hearsay-ffi-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ini = dir.join("custom.ini");
        let mut config: *mut hs_config = std::ptr::null_mut();
        assert_eq!(hs_config_new(&mut config), hs_result::Ok);
        let path = ini.display().to_string();

        std::fs::write(
            &ini,
            "[unified_alerting]\nha_listen_address = 127.0.0.1:9199\n\
                              ha_peers = a:1,b:2\nha_redis_address = redis:6379\n\
                              ha_redis_peer_name = g0\nalertmanager_max_silences_count = 3\n",
        )
        .expect("write");
        assert_eq!(hs_config_load_grafana_ini(config, s(&path)), hs_result::Ok);
        // SAFETY: `config` came from hs_config_new and is freed below, once.
        let c = unsafe { &*config };
        assert_eq!(c.bind.to_string(), "127.0.0.1:9199");
        assert_eq!(c.peers, vec!["a:1", "b:2"]);
        assert_eq!(c.redis, Some(("redis://redis:6379".into(), String::new())));
        assert_eq!(c.name.as_deref(), Some("g0"));
        assert_eq!(c.max_silences, 3);

        std::fs::write(&ini, "[unified_alerting]\n\nha_peer_timeout = 15x\n").expect("write");
        assert_eq!(hs_config_load_grafana_ini(config, s(&path)), hs_result::InvalidConfig);
        let message = crate::ffi::LAST_ERROR.with(|m| m.borrow().clone());
        assert!(message.contains("line 3") && message.contains("ha_peer_timeout"), "{message}");
        // SAFETY: as above; unchanged by the failed call.
        assert_eq!(unsafe { &*config }.bind.to_string(), "127.0.0.1:9199");

        let missing = dir.join("missing.ini").display().to_string();
        assert_eq!(hs_config_load_grafana_ini(config, s(&missing)), hs_result::Io);
        assert_eq!(
            hs_config_load_grafana_ini(std::ptr::null_mut(), s(&path)),
            hs_result::NullParameter
        );
        hs_config_free(config);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
