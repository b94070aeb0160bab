//! `hs_config`: how a node is started, built up field by field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Failure, FfiResult, borrow_mut, boundary, hs_result, hs_str, out_ptr, text, write};

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
    /// Alertmanager's TLS transport, from a `--cluster.tls-config` file.
    pub(crate) cluster_tls: Option<crate::tls::ClusterTls>,
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
            cluster_tls: None,
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

fn millis(ms: u64, what: &str) -> FfiResult<Duration> {
    if ms == 0 {
        return Err(Failure::new(hs_result::InvalidArgument, format!("{what} must be positive")));
    }
    Ok(Duration::from_millis(ms))
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
/// is freed. Without it nothing is written.
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
