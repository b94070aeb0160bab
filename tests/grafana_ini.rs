//! The `hearsay` binary started from Grafana's configuration file (`--config.file`), as an
//! operator who followed Grafana's "Configure high availability" page wrote it: the
//! memberlist setup, the Redis setup on a real `redis-server`, and the Kubernetes block
//! verbatim, each as two processes that must form one cluster and replicate a silence; plus
//! what a bad key gets back, and the README's `custom.ini` example.
//!
//! The Kubernetes block names `grafana-alerting.grafana:9094` and `${POD_IP}:9094`: the two
//! nodes run with `POD_IP` 127.0.0.2 and 127.0.0.3, each in its own mount namespace
//! (`unshare`, util-linux) whose `/etc/hosts` makes that name resolve to both loopback
//! addresses, as a headless Service's DNS name resolves to every pod.

mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearsay::grafana::UnifiedAlerting;
use util::alertmanager::{Hearsay, add_silence, free_port, scratch, summary};
use util::redis::{ClusterNodes, RedisServer};

/// Settle fast; flags beside `--config.file` override the file (tested here too).
const FAST: [&str; 1] = ["--cluster.settle-timeout=3s"];

fn hearsay(ini: &Path, dir: &Path, cluster: SocketAddr, env: &[(&str, String)]) -> Hearsay {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearsay"));
    cmd.arg(format!("--config.file={}", ini.display())).args(FAST);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Hearsay::spawn_plain(cmd, dir, cluster, "hearsay")
}

/// Until `f` holds, or fail after `secs` with `what`.
fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A silence added on `a` reaches `b`, and both see two members.
fn replicates(a: &Hearsay, b: &Hearsay) {
    wait_until(30, "two members on both", || {
        a.metric("alertmanager_cluster_members") == Some(2.0)
            && b.metric("alertmanager_cluster_members") == Some(2.0)
    });
    let id = add_silence(a.web, "alertname=GrafanaIni", "ini-test");
    wait_until(30, "the silence on the other node", || {
        summary(&b.silences()).iter().any(|(_, sid, _)| *sid == id)
    });
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write ini");
    path
}

/// A grafana.ini as it looks in the field: other sections, comments of both kinds, quotes,
/// `%(…)s` interpolation in keys hearsay does not read, and then `[unified_alerting]`.
fn grafana_ini(unified_alerting: &str) -> String {
    format!(
        r##"##################### Grafana Configuration Example #####################
# Everything has defaults, so only what differs is here.
app_mode = production
instance_name = ${{HOSTNAME}}

#################################### Paths ####################################
[paths]
data = /var/lib/grafana
;temp_data_lifetime = 24h
logs = $__env{{LOGDIR}}/grafana

#################################### Server ####################################
[server]
protocol = http
domain = grafana.example.com
http_port = 3000
root_url = %(protocol)s://%(domain)s:%(http_port)s/grafana/
serve_from_sub_path = true

[database]
type = sqlite3
password = """#not;a;comment"""

[security]
admin_user = admin
cookie_samesite = lax

[auth.generic_oauth]
enabled = false
scopes = openid email profile

[plugin.grafana-image-renderer]
rendering_ignore_https_errors = true

[date_formats]
full_date = YYYY-MM-DD HH:mm:ss

#################################### Unified Alerting ####################
[unified_alerting]
enabled = true
execute_alerts = true
evaluation_timeout = 30s
{unified_alerting}
[unified_alerting.screenshots]
capture = false
"##
    )
}

/// The memberlist route: `ha_listen_address`, `ha_peers` with every instance, faster gossip;
/// node b's listen address comes from a `GF_UNIFIED_ALERTING_HA_LISTEN_ADDRESS` override and
/// its advertise address from `${…}` expansion.
#[test]
fn memberlist_nodes_from_ini_files() {
    let dir = scratch("ini-memberlist");
    let (pa, pb) = (free_port(), free_port());
    let peers = format!("127.0.0.1:{pa}, 127.0.0.1:{pb}");
    let a_ini = write(
        &dir,
        "a.ini",
        &grafana_ini(&format!(
            "ha_listen_address = \"127.0.0.1:{pa}\"\nha_advertise_address = 127.0.0.1:{pa}\n\
             ha_peers = {peers}\nha_gossip_interval = 50ms ; fast, for the test\n\
             ha_push_pull_interval = 2s\nha_peer_timeout = 15s\nha_label = ini-test\n"
        )),
    );
    let b_ini = write(
        &dir,
        "b.ini",
        &grafana_ini(&format!(
            "ha_listen_address = 127.0.0.1:1\nha_advertise_address = \"${{B_IP}}:{pb}\"\n\
             ha_peers = {peers}\nha_gossip_interval = 50ms\nha_push_pull_interval = 2s\n\
             ha_label = ini-test\n"
        )),
    );
    let a = hearsay(&a_ini, &dir.join("a"), format!("127.0.0.1:{pa}").parse().unwrap(), &[]);
    let b = hearsay(
        &b_ini,
        &dir.join("b"),
        format!("127.0.0.1:{pb}").parse().unwrap(),
        &[
            ("GF_UNIFIED_ALERTING_HA_LISTEN_ADDRESS", format!("127.0.0.1:{pb}")),
            ("B_IP", "127.0.0.1".into()),
        ],
    );
    replicates(&a, &b);
}

/// The Redis route: two nodes on one real `redis-server`, under a prefix, with names.
#[test]
fn redis_nodes_from_ini_files() {
    let redis = RedisServer::start();
    let dir = scratch("ini-redis");
    let ini = |name: &str| {
        grafana_ini(&format!(
            "ha_redis_address = 127.0.0.1:{}\nha_redis_prefix = ini-test\n\
             ha_redis_peer_name = {name}\nha_redis_db = 0\nha_redis_max_conns = 5\n\
             ha_push_pull_interval = 2s\nha_redis_cluster_mode_enabled = false\n",
            redis.port
        ))
    };
    let unused: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = hearsay(&write(&dir, "a.ini", &ini("grafana-a")), &dir.join("a"), unused, &[]);
    let b = hearsay(&write(&dir, "b.ini", &ini("grafana-b")), &dir.join("b"), unused, &[]);
    replicates(&a, &b);
    // Grafana's heartbeat keys: `{prefix}:{peer name}`.
    let mut keys: Vec<String> =
        redis::cmd("KEYS").arg("ini-test:*").query(&mut redis.client()).expect("KEYS");
    keys.sort();
    assert_eq!(keys, ["ini-test:grafana-a", "ini-test:grafana-b"]);
}

/// The Redis Cluster route: `ha_redis_cluster_mode_enabled` with the nodes as a comma list
/// (spaces after the commas, as people write them), two nodes on a real three-master cluster.
#[test]
fn redis_cluster_nodes_from_ini_files() {
    let nodes = ClusterNodes::start();
    let dir = scratch("ini-redis-cluster");
    let ini = |name: &str| {
        grafana_ini(&format!(
            "ha_redis_address = {}\nha_redis_cluster_mode_enabled = true\n\
             ha_redis_prefix = ini-cluster\nha_redis_peer_name = {name}\n\
             ha_push_pull_interval = 2s\n",
            nodes.addrs().join(", ")
        ))
    };
    let unused: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = hearsay(&write(&dir, "a.ini", &ini("grafana-a")), &dir.join("a"), unused, &[]);
    let b = hearsay(&write(&dir, "b.ini", &ini("grafana-b")), &dir.join("b"), unused, &[]);
    replicates(&a, &b);
    // Each heartbeat lives on the master owning its slot.
    let mut keys: Vec<String> = nodes
        .ports
        .iter()
        .flat_map(|p| {
            nodes
                .cli(*p, &["--scan", "--pattern", "ini-cluster:*"])
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["ini-cluster:grafana-a", "ini-cluster:grafana-b"]);
}

/// The metric families (`# TYPE` lines) of a `/metrics` exposition.
fn families(h: &Hearsay) -> Vec<String> {
    let (_, body) = util::alertmanager::get(h.web, "/metrics").expect("/metrics answers");
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned))
        .collect()
}

/// A Redis-backed node is run the way an Alertmanager is: amtool lists the cluster and
/// manages silences on it, and `/metrics` has the families Grafana's Redis peer registers —
/// and none of memberlist's, which would always read zero there.
#[test]
fn amtool_and_grafanas_redis_metrics_on_a_redis_node() {
    let redis = RedisServer::start();
    let dir = scratch("ini-redis-amtool");
    let ini = |name: &str| {
        grafana_ini(&format!(
            "ha_redis_address = 127.0.0.1:{}\nha_redis_peer_name = {name}\n\
             ha_push_pull_interval = 2s\n",
            redis.port
        ))
    };
    let unused: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = hearsay(&write(&dir, "a.ini", &ini("amtool-a")), &dir.join("a"), unused, &[]);
    let b = hearsay(&write(&dir, "b.ini", &ini("amtool-b")), &dir.join("b"), unused, &[]);
    replicates(&a, &b);

    let show = a.amtool(&["cluster", "show", "-o", "json"]);
    assert!(
        show.status.success(),
        "amtool cluster show: {}",
        String::from_utf8_lossy(&show.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&show.stdout).expect("JSON status");
    let mut peers: Vec<&str> = status["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("peers in {status}"))
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    peers.sort_unstable();
    assert_eq!(peers, ["amtool-a", "amtool-b"], "amtool cluster show on a Redis node");

    // A silence added through b, expired through a: both ends see each step.
    let id = add_silence(b.web, "severity=page", "amtool-redis");
    wait_until(30, "b's silence on a", || {
        summary(&a.silences()).iter().any(|(_, sid, state)| *sid == id && state == "active")
    });
    util::alertmanager::expire_silence(a.web, &id);
    wait_until(30, "the expiry on b", || {
        summary(&b.silences()).iter().any(|(_, sid, state)| *sid == id && state == "expired")
    });

    let have = families(&a);
    for grafana in [
        "alertmanager_cluster_messages_received",
        "alertmanager_cluster_messages_received_size",
        "alertmanager_cluster_messages_sent",
        "alertmanager_cluster_messages_sent_size",
        "alertmanager_cluster_messages_publish_failures",
        "alertmanager_cluster_members",
        "alertmanager_peer_position",
        "alertmanager_cluster_health_score",
        "alertmanager_cluster_pings_seconds",
        "alertmanager_cluster_pings_failures",
    ] {
        assert!(have.iter().any(|f| f == grafana), "{grafana} missing from {have:?}");
    }
    for memberlist in [
        "alertmanager_cluster_messages_queued",
        "alertmanager_cluster_messages_pruned",
        "alertmanager_cluster_failed_peers",
        "alertmanager_cluster_peers_joined",
        "alertmanager_cluster_reconnections",
        "alertmanager_oversize_gossip_message_duration_seconds",
    ] {
        assert!(!have.iter().any(|f| f == memberlist), "{memberlist} exported on Redis");
    }
    for reason in ["redis_issue", "buffer_overflow"] {
        let series = format!(
            "alertmanager_cluster_messages_publish_failures_total{{msg_type=\"update\",reason=\"{reason}\"}}"
        );
        assert_eq!(a.metric(&series), Some(0.0), "{series}");
    }
    assert!(
        a.metric("alertmanager_cluster_pings_seconds_count{peer=\"redis-server\"}")
            .is_some_and(|n| n > 0.0),
        "Redis pings are timed under peer=\"redis-server\""
    );
}

/// The seed's Kubernetes block, verbatim, on 127.0.0.2 and 127.0.0.3 port 9094.
#[test]
fn kubernetes_block_verbatim() {
    let block = r#"[unified_alerting]
enabled = true
ha_listen_address = "${POD_IP}:9094"
ha_peers = "grafana-alerting.grafana:9094"
ha_advertise_address = "${POD_IP}:9094"
ha_peer_timeout = 15s
"#;
    let dir = scratch("ini-kubernetes");
    let ini = write(&dir, "grafana.ini", block);
    let hosts = write(
        &dir,
        "hosts",
        "127.0.0.1 localhost\n127.0.0.2 grafana-alerting.grafana\n\
         127.0.0.3 grafana-alerting.grafana\n",
    );
    let pod = |ip: &str| {
        // `unshare` without `--fork` execs the shell, which execs hearsay: one process.
        let mut cmd = Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
            .arg(&hosts)
            .arg(env!("CARGO_BIN_EXE_hearsay"))
            .arg(format!("--config.file={}", ini.display()))
            .args(FAST)
            .env("POD_IP", ip);
        let cluster: SocketAddr = format!("{ip}:9094").parse().unwrap();
        Hearsay::spawn_plain(cmd, &dir.join(ip), cluster, "hearsay")
    };
    assert!(
        Command::new("unshare").arg("--version").output().is_ok_and(|o| o.status.success()),
        "unshare (util-linux) is required for the Kubernetes test"
    );
    let a = pod("127.0.0.2");
    let b = pod("127.0.0.3");
    replicates(&a, &b);
}

fn refused(ini_text: &str, env: &[(&str, &str)]) -> String {
    let dir = scratch("ini-bad");
    let ini = write(&dir, "custom.ini", ini_text);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearsay"));
    cmd.arg(format!("--config.file={}", ini.display()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("hearsay runs");
    assert_eq!(out.status.code(), Some(2), "a bad file is a usage error");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_key_is_a_clear_error() {
    let e =
        refused("[server]\nhttp_port = 3000\n\n[unified_alerting]\nha_peer_timeout = 15x\n", &[]);
    assert!(e.contains("line 5") && e.contains("ha_peer_timeout") && e.contains("15x"), "{e}");
    let e = refused("[unified_alerting]\nha_peer = 10.0.0.5:9094\n", &[]);
    assert!(e.contains("line 2") && e.contains("did you mean ha_peers"), "{e}");
    let e = refused("[unified_alerting]\nha_redis_cluster_mode_enabled = true\n", &[]);
    assert!(
        e.contains("ha_redis_cluster_mode_enabled") && e.contains("needs ha_redis_address"),
        "{e}"
    );
    let e = refused("[unified_alerting]\n", &[("GF_UNIFIED_ALERTING_HA_PEERS", "no-port")]);
    assert!(e.contains("environment variable GF_UNIFIED_ALERTING_HA_PEERS"), "{e}");
}

/// The README's `custom.ini` example, loaded exactly as the README shows it.
#[test]
fn the_readme_example_loads() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```ini\n").expect("README has an ini example") + "```ini\n".len();
    let block = &readme[start..start + readme[start..].find("```").expect("closed")];
    let env = |name: &str| (name == "POD_IP").then(|| "10.0.0.5".to_owned());
    let s = UnifiedAlerting::parse(block, "README.md", &env).expect("the README's example loads");
    assert_eq!(s.listen_address.to_string(), "10.0.0.5:9094");
    assert!(!s.peers.is_empty());
    assert!(s.node_config().redis.is_none());
}

/// The README's Sentinel example (its second ini block), loaded as the README shows it.
#[test]
fn the_readme_sentinel_example_loads() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("```ini\n")
        .nth(2)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a second ini example");
    let s = UnifiedAlerting::parse(block, "README.md", &|_: &str| None)
        .expect("the README's Sentinel example loads");
    let redis = s.node_config().redis.expect("Redis mode");
    let sentinel = redis.sentinel.expect("Sentinel mode");
    assert_eq!(sentinel.master_name, "mymaster");
    assert_eq!(sentinel.addrs, ["sentinel-0:26379", "sentinel-1:26379", "sentinel-2:26379"]);
    assert_eq!(redis.password.as_deref(), Some("data-secret"));
}
