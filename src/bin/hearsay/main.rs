//! `hearsay`: one HA peer for an Alertmanager cluster — the notification log and silences,
//! gossiped with stock Alertmanagers, snapshotted in their file format, and served through the
//! slice of Alertmanager's API that `amtool` uses for silences and cluster status.
//!
//! Flags are Alertmanager's (`hearsay --help`); `--config.file=grafana.ini` reads Grafana's
//! `[unified_alerting]` section instead, gossip or Redis, and flags given beside it override
//! the file. SIGTERM or SIGINT leaves the cluster and writes the snapshots, as Alertmanager
//! does on shutdown.

mod api;
mod flags;
mod http;
mod silence_json;

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use hearsay::core::NodeName;
use hearsay::core::state::silences::SilencesConfig;
use hearsay::node::{
    ALERTMANAGER_STATES, Node, NodeConfig, SILENCES_KEY, Snapshots, alertmanager_states_with,
};
use signal_hook::consts::{SIGINT, SIGTERM};
use time::OffsetDateTime;

fn main() -> ExitCode {
    log::set_logger(&StderrLogger).map(|()| log::set_max_level(log::LevelFilter::Info)).ok();
    let flags = match flags::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: &flags::Flags) -> Result<(), String> {
    let silences = SilencesConfig {
        retention: flags.silence_retention.unwrap_or(flags.retention),
        max_silences: flags.max_silences,
        max_silence_size_bytes: flags.max_silence_size_bytes,
        ..SilencesConfig::default()
    };
    let cluster = alertmanager_states_with(Some(&flags.storage), flags.retention, silences)
        .map_err(|e| e.to_string())?;
    let mut config = node_config(flags);
    config.advertise = flags.advertise;
    config.reconnect_interval = flags.reconnect_interval;
    config.reconnect_timeout = flags.reconnect_timeout;
    if let Some(settle) = flags.settle_timeout {
        config.settle_timeout = settle;
    }
    config.maintenance_interval = flags.maintenance_interval;
    let swim = &mut config.swim;
    swim.gossip_interval = flags.gossip_interval;
    swim.push_pull_interval = flags.pushpull_interval;
    swim.probe_interval = flags.probe_interval;
    swim.probe_timeout = flags.probe_timeout;
    swim.tcp_timeout = flags.tcp_timeout;
    swim.label = flags.label.clone().into_bytes();
    if let Some(path) = &flags.secret_key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--cluster.secret-key-file {}: {e}", path.display()))?;
        swim.secret_keys = flags::secret_keys(&text)
            .map_err(|e| format!("--cluster.secret-key-file {}: {e}", path.display()))?;
    }
    if let Some(file) = &flags.tls_config {
        let tls = hearsay::tls::ClusterTls::load(file).map_err(|e| format!("cluster: {e}"))?;
        config.tls = Some(tls);
    }
    let snapshots = Snapshots {
        dir: flags.storage.clone(),
        files: ALERTMANAGER_STATES
            .iter()
            .map(|(k, f)| ((*k).to_owned(), (*f).to_owned()))
            .collect(),
    };
    let mut node = Node::start_cluster(config, cluster, Some(snapshots))
        .map_err(|e| format!("cluster: {e}"))?;
    match &config_redis(flags) {
        Some(url) => log::info!("hearsay {} on Redis at {url}", node.name()),
        None => log::info!(
            "hearsay {} listening on {} (advertising {})",
            node.name(),
            node.local_addr(),
            node.advertise_addr()
        ),
    }

    let rejected = http::RejectCounters::default();
    for why in http::Rejection::ALL {
        let _ = rejected.get_or_create(&vec![("reason", why.label())]);
    }
    let mut web_metrics = prometheus_client::registry::Registry::default();
    web_metrics.register(
        "hearsay_http_requests_rejected",
        "HTTP requests and connections the API server refused, by reason",
        rejected.clone(),
    );
    let mut server = http::Server::bind(flags.web_listen, flags.web_max_connections, rejected)
        .map_err(|e| format!("web: {}: {e}", flags.web_listen))?;
    let stop = server.stopper();
    let started = OffsetDateTime::now_utc();
    thread::scope(|s| {
        let node = &node;
        s.spawn(move || {
            let ready = || node.is_ready();
            let metrics = || with_web_metrics(node.metrics_text(), &web_metrics);
            let api = api::Api {
                node,
                silences_key: SILENCES_KEY,
                started,
                ready: &ready,
                metrics: &metrics,
            };
            server.run(&|request| api.handle(request));
        });
        wait_for_signal();
        log::info!("shutting down: leaving the cluster and writing snapshots");
        if let Err(e) = node.leave(Duration::from_secs(10)) {
            log::warn!("leave: {e}");
        }
        stop.stop();
    });
    node.shutdown();
    Ok(())
}

/// The node's metrics with the API server's appended (one OpenMetrics exposition, one EOF).
fn with_web_metrics(node: String, web: &prometheus_client::registry::Registry) -> String {
    let mut out = node.strip_suffix("# EOF\n").map(str::to_owned).unwrap_or(node);
    if prometheus_client::encoding::text::encode(&mut out, web).is_err() {
        out.push_str("# EOF\n");
    }
    out
}

/// On Redis when the Grafana file says so (`ha_redis_address`), else on gossip. Grafana's
/// memberlist peer may advertise a public address it found; Alertmanager's may not.
fn node_config(flags: &flags::Flags) -> NodeConfig {
    let grafana = flags.grafana.as_ref();
    match grafana.filter(|g| g.redis.is_some()) {
        Some(g) => {
            let mut config = g.node_config();
            if let Some(name) = &flags.peer_name {
                config.swim.name = NodeName::from(name.as_str());
            }
            config
        }
        None => {
            let mut config = NodeConfig::alertmanager(
                flags.peer_name.as_deref(),
                flags.listen,
                flags.peers.clone(),
            );
            config.allow_public_advertise = grafana.is_some();
            config
        }
    }
}

/// The Redis address, in Redis mode.
fn config_redis(flags: &flags::Flags) -> Option<String> {
    Some(flags.grafana.as_ref()?.redis.as_ref()?.address.clone())
}

fn wait_for_signal() {
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            let _ = signals.forever().next();
        }
        Err(e) => {
            log::error!("cannot watch signals ({e}); running until killed");
            loop {
                thread::park();
            }
        }
    }
}

/// Log lines on stderr, in Alertmanager's key=value spirit.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "level={} msg={:?}",
                record.level().as_str().to_lowercase(),
                record.args().to_string()
            );
        }
    }

    fn flush(&self) {}
}
