//! `hs_node`: a running Alertmanager-style peer with its native states: Alertmanager's `nfl`
//! and `sil`, or Grafana's per organisation (`hs_config_add_org`).

use std::ffi::c_char;
use std::time::Duration;

use super::{
    Failure, FfiResult, borrow, boundary, copy_out, errors_metric, hs_config, hs_result, hs_str,
    out_ptr, text, write,
};
use crate::core::state::silences::SilencesConfig;
use crate::core::wire::SecretKey;
use crate::node::snapshot::SnapshotError;
use crate::node::{
    LayoutError, Node, NodeConfig, NodeError, OrgId, RedisConfig, StateError, StatesConfig,
};

/// A running peer — on gossip, or on Redis when the config says so — with its threads and
/// the replicated notification logs and silences (and flush logs) of its configuration. Every function taking a `const hs_node *`
/// may be called from any thread at the same time; `hs_node_free` must not race with them.
#[derive(Debug)]
pub struct hs_node {
    pub(crate) node: Node,
    /// `hs_node_poll_events`' cursor.
    pub(crate) events: parking_lot::Mutex<super::members::Events>,
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        let code = match &e {
            NodeError::Config(_)
            | NodeError::Advertise(_)
            | NodeError::Redis(_)
            | NodeError::Tls(_) => hs_result::InvalidConfig,
            NodeError::Unsupported(_) => hs_result::InvalidArgument,
            NodeError::Io(_) => hs_result::Io,
            NodeError::QueueFull => hs_result::QueueFull,
            NodeError::TooLarge { .. } => hs_result::MessageTooLarge,
            NodeError::UnknownMember(_) => hs_result::InvalidArgument,
            NodeError::JoinFailed(_) => hs_result::JoinFailed,
            NodeError::Timeout => hs_result::Timeout,
            NodeError::Closed => hs_result::Closed,
            NodeError::Keyring(_) => hs_result::InvalidArgument,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Self {
        let code = match &e {
            SnapshotError::Corrupt { .. } => hs_result::CorruptSnapshot,
            SnapshotError::Io { .. } => hs_result::Io,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<LayoutError> for Failure {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Snapshot(e) => e.into(),
            e => Failure::new(hs_result::InvalidConfig, e.to_string()),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        use crate::core::state::silences::SilenceError;
        let code = match &e {
            StateError::Nflog(_) => hs_result::NflogRefused,
            StateError::Silence(SilenceError::Invalid { .. }) => hs_result::InvalidSilence,
            StateError::Silence(SilenceError::NotFound) => hs_result::SilenceNotFound,
            StateError::Silence(SilenceError::ExceedsMessageLimit { .. }) => {
                hs_result::MessageTooLarge
            }
            StateError::Silence(_) => hs_result::SilenceLimit,
            StateError::QueueFull => hs_result::QueueFull,
            StateError::NoState { .. } | StateError::SwitchedOff(_) => hs_result::NoSuchState,
            StateError::FlushLog(_) => hs_result::FlushLogRefused,
            _ => hs_result::InvalidArgument,
        };
        Failure::new(code, e.to_string())
    }
}

pub(crate) fn node<'a>(node: *const hs_node) -> FfiResult<&'a Node> {
    Ok(&borrow(node, "node")?.node)
}

fn timeout(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

/// Load the snapshots (when a storage dir is set), bind, and start a node; it starts joining
/// the configured peers in the background. Writes the node to `*node_out`; free it with
/// `hs_node_free`. `config` is only read. A corrupt snapshot file gives
/// `HS_RESULT_CORRUPT_SNAPSHOT` (the message names the file and the byte) and is left as it
/// was; a storage dir that cannot be created or written gives `HS_RESULT_IO` naming it.
/// Either way nothing started.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_start(
    config: *const hs_config,
    node_out: *mut *mut hs_node,
) -> hs_result {
    boundary(|| {
        let c = borrow(config, "config")?;
        let out = out_ptr(node_out, "node_out")?;
        let silences = SilencesConfig {
            retention: c.silence_retention.unwrap_or(c.retention),
            max_silences: c.max_silences,
            max_silence_size_bytes: c.max_silence_size_bytes,
            ..SilencesConfig::default()
        };
        let states = StatesConfig {
            orgs: c.orgs.iter().copied().map(OrgId).collect(),
            flush_log: c.flush_log,
            nflog_retention: c.retention,
            silences,
            native_keys: c.native_keys.clone(),
            ..StatesConfig::alertmanager(c.retention)
        };
        let cluster = states.load(c.storage_dir.as_deref())?;
        let snapshots = c.storage_dir.as_ref().map(|dir| states.snapshots(dir.clone()));
        let mut nc = match &c.redis {
            Some((url, prefix)) => {
                let redis = RedisConfig {
                    username: c.redis_username.clone(),
                    password: c.redis_password.clone(),
                    db: c.redis_db,
                    // A `rediss://` URL turns TLS on too; the options set apply then as well.
                    tls: (c.redis_tls_enabled || url.starts_with("rediss://"))
                        .then(|| c.redis_tls.clone()),
                    sentinel: c.redis_sentinel.clone(),
                    cluster: c.redis_cluster.clone(),
                    ..RedisConfig::grafana(url, prefix)
                };
                NodeConfig::grafana_redis(c.name.as_deref(), redis)
            }
            None => NodeConfig::alertmanager(c.name.as_deref(), c.bind, c.peers.clone()),
        };
        nc.advertise = c.advertise;
        nc.allow_public_advertise = c.allow_public_advertise;
        if let Some(timeout) = c.reconnect_timeout {
            nc.reconnect_timeout = timeout;
        }
        nc.swim.gossip_interval = c.gossip_interval;
        nc.swim.push_pull_interval = c.push_pull_interval;
        nc.swim.label = c.label.clone().into_bytes();
        nc.swim.secret_keys.clone_from(&c.secret_keys);
        nc.swim.gossip_verify_incoming = c.gossip_verify_incoming;
        nc.swim.gossip_verify_outgoing = c.gossip_verify_outgoing;
        nc.settle_timeout = c.settle_timeout;
        nc.maintenance_interval = c.maintenance_interval;
        nc.tls = c.cluster_tls.clone();
        let node = Node::start_cluster(nc, cluster, snapshots)?;
        write(out, Box::into_raw(Box::new(hs_node { node, events: Default::default() })));
        Ok(())
    })
}

/// Stop the node: its threads end and, with a storage dir, the snapshots are written once
/// more. It does not leave the cluster first (call `hs_node_leave` for that). NULL is a
/// no-op; `node` must not be used afterwards, nor by another thread during the call.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_free(node: *mut hs_node) {
    boundary(|| {
        if !node.is_null() {
            // SAFETY: a non-NULL node came from `hs_node_start` and is freed once, with no
            // other call in flight (the documented contract).
            drop(unsafe { Box::from_raw(node) });
        }
        Ok(())
    });
}

/// Push/pull with `peer` (`host:port`; a DNS name stands for every address it resolves to)
/// and wait up to `timeout_ms`. Writes how many addresses answered to `*joined_out`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_join(
    node: *const hs_node,
    peer: hs_str,
    timeout_ms: u32,
    joined_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        let peer = text(peer, "peer")?.to_owned();
        let out = out_ptr(joined_out, "joined_out")?;
        write(out, n.join(&[peer], timeout(timeout_ms))?);
        Ok(())
    })
}

/// Wait up to `timeout_ms` until the node has settled: its member count held still for
/// three polls every 10 × gossip interval since start, or the settle timeout passed.
/// Alertmanager waits for this before its first notification (`WaitReady`). Returns
/// `HS_RESULT_TIMEOUT` if not settled in time.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_wait_ready(node: *const hs_node, timeout_ms: u32) -> hs_result {
    boundary(|| Ok(self::node(node)?.wait_ready(timeout(timeout_ms))?))
}

/// Whether the node has settled (see `hs_node_wait_ready`), written to `*ready_out`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_is_ready(node: *const hs_node, ready_out: *mut bool) -> hs_result {
    boundary(|| {
        let n = self::node(node)?;
        write(out_ptr(ready_out, "ready_out")?, n.is_ready());
        Ok(())
    })
}

/// Tell the cluster this node leaves and wait up to `timeout_ms` for the message to go out.
/// The node keeps running (and answering) until freed.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_leave(node: *const hs_node, timeout_ms: u32) -> hs_result {
    // A Redis peer leaves when freed (it deletes its heartbeat): Ok at once.
    boundary(|| Ok(self::node(node)?.leave(timeout(timeout_ms))?))
}

/// The node's name (a ULID unless configured), copied into `buf` as
/// `hs_result_message` does.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_name(
    node: *const hs_node,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> hs_result {
    boundary(|| copy_out(self::node(node)?.name().as_str().as_bytes(), buf, cap, len_out))
}

/// The address the node advertises (`ip:port`), copied into `buf`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_address(
    node: *const hs_node,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let addr = self::node(node)?.address()?.to_string();
        copy_out(addr.as_bytes(), buf, cap, len_out)
    })
}

/// Where this node stands among its peers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct hs_position {
    /// Index of our name among alive and suspect members sorted by name: this node waits
    /// `index × peer_timeout` before notifying (Alertmanager's `Position()`).
    pub index: u32,
    /// Alive and suspect members, this node included.
    pub visible: u32,
    /// True when the node sees nobody although peers are configured or were seen: index 0
    /// then means "cut off", not "first".
    pub blind: bool,
}

impl From<crate::core::peer::Position> for hs_position {
    fn from(p: crate::core::peer::Position) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self { index: clamp(p.index), visible: clamp(p.visible), blind: p.blind }
    }
}

/// The node's position, written to `*position_out`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_position(
    node: *const hs_node,
    position_out: *mut hs_position,
) -> hs_result {
    boundary(|| {
        let p = self::node(node)?.position();
        write(out_ptr(position_out, "position_out")?, p.into());
        Ok(())
    })
}

/// The node's metrics in the Prometheus text format (Alertmanager's names, plus
/// `hearsay_ffi_errors_total`), copied into `buf`. When `cap` is too small the call returns
/// `HS_RESULT_BUFFER_TOO_SMALL` with the size needed in `*len_out`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_metrics(
    node: *const hs_node,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> hs_result {
    boundary(|| {
        let mut text = self::node(node)?.metrics_text();
        // Keep the OpenMetrics terminator last.
        let eof = text.ends_with("# EOF\n");
        if eof {
            text.truncate(text.len() - "# EOF\n".len());
        }
        text.push_str(&errors_metric());
        if eof {
            text.push_str("# EOF\n");
        }
        copy_out(text.as_bytes(), buf, cap, len_out)
    })
}

fn secret_key(key: *const u8, len: usize) -> FfiResult<SecretKey> {
    SecretKey::new(super::bytes(key, len, "key")?.to_vec())
        .map_err(|e| Failure::new(hs_result::InvalidArgument, e.to_string()))
}

/// Install an AES-GCM key (`len` bytes at `key`, 16, 24 or 32) for decryption while running
/// (memberlist `Keyring.AddKey`); it encrypts only after `hs_node_use_key`. Installing a key
/// twice changes nothing. `HS_RESULT_INVALID_ARGUMENT` for a bad length, beyond 32 keys, or a
/// node started without keys (or on Redis). Thread-safe; waits for the node's loop.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_add_key(node: *const hs_node, key: *const u8, len: usize) -> hs_result {
    boundary(|| {
        self::node(node)?.add_key(secret_key(key, len)?)?;
        Ok(())
    })
}

/// Make an installed key the primary, which encrypts everything sent from now on (memberlist
/// `Keyring.UseKey`). `HS_RESULT_INVALID_ARGUMENT` when the key is not installed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_use_key(node: *const hs_node, key: *const u8, len: usize) -> hs_result {
    boundary(|| {
        self::node(node)?.use_key(secret_key(key, len)?)?;
        Ok(())
    })
}

/// Uninstall a key (memberlist `Keyring.RemoveKey`). The primary is refused with
/// `HS_RESULT_INVALID_ARGUMENT` (switch with `hs_node_use_key` first); a key that is not
/// installed is no error. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn hs_node_remove_key(
    node: *const hs_node,
    key: *const u8,
    len: usize,
) -> hs_result {
    boundary(|| {
        self::node(node)?.remove_key(secret_key(key, len)?)?;
        Ok(())
    })
}
