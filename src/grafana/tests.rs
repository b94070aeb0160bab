use std::collections::HashMap;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<UnifiedAlerting, GrafanaConfigError> {
    UnifiedAlerting::parse(text, "custom.ini", &no_env)
}

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<UnifiedAlerting, GrafanaConfigError> {
    let vars: HashMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    UnifiedAlerting::parse(text, "custom.ini", &move |name| vars.get(name).cloned())
}

fn error(text: &str) -> String {
    parse(text).expect_err("refused").to_string()
}

/// The seed's Kubernetes block, verbatim.
const KUBERNETES: &str = r#"[unified_alerting]
enabled = true
ha_listen_address = "${POD_IP}:9094"
ha_peers = "grafana-alerting.grafana:9094"
ha_advertise_address = "${POD_IP}:9094"
ha_peer_timeout = 15s
"#;

#[test]
fn no_section_is_grafanas_defaults() {
    let s = parse("[server]\nhttp_port = 3000\n").expect("loads");
    assert_eq!(s, UnifiedAlerting::default());
    assert_eq!(s.listen_address.to_string(), "0.0.0.0:9094");
    assert_eq!(s.notification_log_retention, Duration::from_secs(5 * 86_400));
    let node = s.node_config();
    assert!(node.redis.is_none());
    assert_eq!(node.swim.push_pull_interval, Duration::from_secs(60));
}

#[test]
fn the_kubernetes_block_verbatim() {
    let s = parse_env(KUBERNETES, &[("POD_IP", "10.4.0.7")]).expect("loads");
    assert_eq!(s.listen_address.to_string(), "10.4.0.7:9094");
    assert_eq!(s.advertise_address.map(|a| a.to_string()).as_deref(), Some("10.4.0.7:9094"));
    assert_eq!(s.peers, vec!["grafana-alerting.grafana:9094"]);
    assert_eq!(s.peer_timeout, Duration::from_secs(15));
    let node = s.node_config();
    assert_eq!(node.bind.to_string(), "10.4.0.7:9094");
    assert_eq!(node.peers, vec!["grafana-alerting.grafana:9094"]);
    assert!(node.allow_public_advertise);
    // Without POD_IP the address is ":9094": every interface, as Go reads it.
    let unset = parse(KUBERNETES).expect("loads");
    assert_eq!(unset.listen_address.to_string(), "0.0.0.0:9094");
}

#[test]
fn memberlist_keys() {
    let s = parse(
        "[unified_alerting]\nha_listen_address = 127.0.0.1:9095\n\
         ha_peers = 10.0.0.5:9094, 10.0.0.6:9094 ,10.0.0.7:9094,\nha_label = prod\n\
         ha_gossip_interval = 100ms\nha_push_pull_interval = 2m\nha_reconnect_timeout = 2m\n\
         notification_log_retention = 2w\nalertmanager_max_silences_count = 10\n\
         alertmanager_max_silence_size_bytes = 4096\n",
    )
    .expect("loads");
    assert_eq!(s.peers, vec!["10.0.0.5:9094", "10.0.0.6:9094", "10.0.0.7:9094"]);
    let node = s.node_config();
    assert_eq!(node.bind.to_string(), "127.0.0.1:9095");
    assert_eq!(node.swim.label, b"prod");
    assert_eq!(node.swim.gossip_interval, Duration::from_millis(100));
    assert_eq!(node.swim.push_pull_interval, Duration::from_secs(120));
    assert_eq!(node.reconnect_timeout, Duration::from_secs(120));
    // Grafana's fan-out: max(3, peers/2).
    assert_eq!(node.swim.gossip_nodes, 3);
    assert_eq!(s.notification_log_retention, Duration::from_secs(14 * 86_400));
    let silences = s.silences_config();
    assert_eq!((silences.max_silences, silences.max_silence_size_bytes), (10, 4096));
    assert_eq!(silences.retention, SILENCE_RETENTION);
}

#[test]
fn redis_keys() {
    let s = parse(
        "[unified_alerting]\nha_peers = ignored:9094\nha_redis_address = redis.example:6380\n\
         ha_redis_username = grafana\nha_redis_password = \"\"\"p#ss;word\"\"\"\nha_redis_db = 2\n\
         ha_redis_prefix = prod\nha_redis_peer_name = grafana-0\nha_redis_max_conns = 0\n\
         ha_redis_tls_enabled = true\nha_redis_tls_ca_path = /etc/ca.pem\n\
         ha_redis_tls_server_name = redis.internal\nha_redis_tls_min_version = VersionTLS13\n\
         ha_redis_tls_insecure_skip_verify = false\nha_redis_cluster_mode_enabled = false\n\
         ha_redis_sentinel_mode_enabled = false\n",
    )
    .expect("loads");
    let r = s.redis.as_ref().expect("Redis mode");
    assert_eq!(r.password, "p#ss;word");
    assert!(!format!("{r:?}").contains("p#ss"), "Debug shows the password");
    let node = s.node_config();
    let redis = node.redis.expect("Redis mode wins over ha_peers");
    assert_eq!(redis.url, "redis://redis.example:6380");
    assert_eq!(redis.username.as_deref(), Some("grafana"));
    assert_eq!(redis.password.as_deref(), Some("p#ss;word"));
    assert_eq!(redis.db, Some(2));
    assert_eq!(redis.prefix, "prod");
    assert_eq!(node.swim.name.as_str(), "grafana-0");
    let tls = redis.tls.expect("TLS on");
    assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
    assert_eq!(tls.server_name.as_deref(), Some("redis.internal"));
    assert_eq!(tls.min_version, Some(TlsVersion::Tls13));
    // A Redis peer without a name is `peer-<uuid>`, as Grafana names it.
    let unnamed = parse("[unified_alerting]\nha_redis_address = localhost:6379\n").unwrap();
    assert!(unnamed.node_config().swim.name.as_str().starts_with("peer-"));
}

#[test]
fn bad_values_name_the_key_and_the_line() {
    let e = error("[server]\nhttp_port = 3000\n[unified_alerting]\n\nha_peer_timeout = 15x\n");
    assert!(e.contains("line 5") && e.contains("ha_peer_timeout"), "{e}");
    assert!(e.starts_with("custom.ini: "), "{e}");
    for (text, key) in [
        ("ha_listen_address = grafana:9094", "ha_listen_address"),
        ("ha_advertise_address = 10.0.0.1", "ha_advertise_address"),
        ("ha_peers = a:1,b", "ha_peers"),
        ("ha_gossip_interval = -1s", "ha_gossip_interval"),
        ("ha_redis_address = localhost:6379\nha_redis_db = two", "ha_redis_db"),
        ("ha_redis_address = localhost:6379\nha_redis_db = -1", "ha_redis_db"),
        ("ha_redis_address = redis://localhost:6379", "ha_redis_address"),
        ("ha_redis_tls_enabled = maybe", "ha_redis_tls_enabled"),
        ("alertmanager_max_silences_count = -1", "alertmanager_max_silences_count"),
        ("notification_log_retention = 5 days", "notification_log_retention"),
        (
            "ha_redis_address = h:1\nha_redis_tls_enabled = true\nha_redis_tls_cert_path = c.pem",
            "ha_redis_tls_cert_path",
        ),
        (
            "ha_redis_address = h:1\nha_redis_tls_enabled = true\nha_redis_tls_min_version = VersionTLS10",
            "ha_redis_tls_min_version",
        ),
        (
            "ha_redis_address = h:1\nha_redis_tls_enabled = true\nha_redis_tls_cipher_suites = NOPE",
            "ha_redis_tls_cipher_suites",
        ),
        ("ha_label = ${X}$__nope{y}", "ha_label"),
    ] {
        let e = error(&format!("[unified_alerting]\n{text}\n"));
        let line = text.lines().count() + 1;
        assert!(e.contains(key) && e.contains(&format!("line {line}")), "{text}: {e}");
    }
}

#[test]
fn unknown_ha_keys_are_refused_with_a_suggestion() {
    let e = error("[unified_alerting]\nenabled = true\nha_peer = 10.0.0.5:9094\n");
    assert!(e.contains("line 3") && e.contains("ha_peer:") && e.contains("ha_peers"), "{e}");
    // Other keys of the section are Grafana's own and load.
    parse("[unified_alerting]\nevaluation_timeout = 30s\nmax_attempts = 3\nmin_interval = 10s\n")
        .expect("loads");
}

#[test]
fn what_hearsay_cannot_do_yet_is_refused_by_name() {
    let (text, key) = ("ha_single_node_evaluation = true", "ha_single_node_evaluation");
    let e = error(&format!("[unified_alerting]\n{text}\n"));
    assert!(e.contains(key) && e.contains("not supported yet") && e.contains("line 2"), "{e}");
    // Off, or empty, changes nothing.
    parse(
        "[unified_alerting]\nha_redis_cluster_mode_enabled = false\n\
         ha_redis_sentinel_mode_enabled =\nha_single_node_evaluation = false\n\
         ha_redis_sentinel_master_name =\nha_single_evaluation_alert_broadcast_queue_size = 50\n",
    )
    .expect("loads");
}

#[test]
fn environment_overrides_the_file_and_is_expanded() {
    let text = "[unified_alerting]\nha_peers = from-file:9094\nha_peer_timeout = 15s\n";
    let s = parse_env(
        text,
        &[
            ("GF_UNIFIED_ALERTING_HA_PEERS", "from-env:9094,${OTHER}:9094"),
            ("OTHER", "other"),
            ("GF_UNIFIED_ALERTING_HA_PEER_TIMEOUT", ""),
            ("GF_UNIFIED_ALERTING_HA_GOSSIP_INTERVAL", "1s"),
        ],
    )
    .expect("loads");
    assert_eq!(s.peers, vec!["from-env:9094", "other:9094"]);
    // An empty variable does not override (Grafana: only a non-empty one does).
    assert_eq!(s.peer_timeout, Duration::from_secs(15));
    // A key absent from the file is overridden too: Grafana's defaults.ini holds them all.
    assert_eq!(s.gossip_interval, Duration::from_secs(1));
    let e = parse_env(text, &[("GF_UNIFIED_ALERTING_HA_PEER_TIMEOUT", "soon")]).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("environment variable GF_UNIFIED_ALERTING_HA_PEER_TIMEOUT"), "{e}");
}

#[test]
fn a_whole_grafana_file_loads() {
    let text = r##"##################### Grafana Configuration #####################
# comments with '#'
; and with ';'
app_mode = production
instance_name = ${HOSTNAME}

#################################### Paths ####################
[paths]
data = /var/lib/grafana
logs = $__env{LOGDIR}/grafana
;plugins = /var/lib/grafana/plugins

[server]
protocol = http
domain = grafana.example.com
http_port = 3000
root_url = %(protocol)s://%(domain)s:%(http_port)s/
serve_from_sub_path = false

[database]
type = sqlite3
password = """#password;"""
conn_max_lifetime = 14400

[security]
admin_user = admin
content_security_policy_template = """script-src 'self' 'unsafe-eval' $NONCE;object-src 'none';"""

[auth.generic_oauth]
enabled = false
scopes = user:email,read:org

[plugin.grafana-image-renderer]
rendering_ignore_https_errors = true

[date_formats]
full_date = YYYY-MM-DD HH:mm:ss

[unified_alerting]
enabled = true
execute_alerts = true
evaluation_timeout = 30s
ha_listen_address = "0.0.0.0:9094"
ha_advertise_address = "%(advertise_host)s:9094"
advertise_host = 10.0.0.9
ha_peers = 10.0.0.5:9094,10.0.0.6:9094
ha_peer_timeout = 15s ; each position waits this long
;ha_redis_address =
ha_label = %(instance_name)s

[unified_alerting.screenshots]
capture = false
"##;
    let s = parse_env(text, &[("HOSTNAME", "grafana-0")]).expect("loads");
    assert_eq!(s.peers, vec!["10.0.0.5:9094", "10.0.0.6:9094"]);
    assert_eq!(s.advertise_address.map(|a| a.to_string()).as_deref(), Some("10.0.0.9:9094"));
    assert_eq!(s.peer_timeout, Duration::from_secs(15));
    // %(key)s falls back to the unnamed section, after expansion.
    assert_eq!(s.label, "grafana-0");
}

#[test]
fn syntax_errors_name_the_line() {
    let e = error("[server]\nhttp_port = 3000\nnot a key value line\n");
    assert!(e.contains("line 3"), "{e}");
    let e = error("[unified_alerting\nha_peers = a:1\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn inputs_are_bounded() {
    let big = format!("[server]\nx = {}\n", "y".repeat(MAX_FILE_BYTES));
    assert!(error(&big).contains("limit"));
    let long = format!("[unified_alerting]\nha_label = {}\n", "l".repeat(300));
    assert!(error(&long).contains("255"));
    let huge = "x".repeat(MAX_VALUE_BYTES);
    let e = parse_env("[unified_alerting]\nha_label = ${A}${A}\n", &[("A", &huge)]).unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
}

#[test]
fn load_reads_a_file_and_refuses_an_oversized_one() {
    let dir = std::env::temp_dir().join(format!("hearsay-grafana-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("grafana.ini");
    std::fs::write(&path, "[unified_alerting]\nha_peer_timeout = 1m\n").unwrap();
    let s = UnifiedAlerting::load_with_env(&path, &no_env).expect("loads");
    assert_eq!(s.peer_timeout, Duration::from_secs(60));
    std::fs::write(&path, vec![b';'; MAX_FILE_BYTES + 1]).unwrap();
    let e = UnifiedAlerting::load_with_env(&path, &no_env).unwrap_err().to_string();
    assert!(e.contains("limit"), "{e}");
    let e = UnifiedAlerting::load_with_env(&dir.join("missing.ini"), &no_env).unwrap_err();
    assert!(matches!(e, GrafanaConfigError::Io { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn env_names_are_grafanas() {
    assert_eq!(env_name(Some(SECTION), "ha_peers"), "GF_UNIFIED_ALERTING_HA_PEERS");
    assert_eq!(
        env_name(Some("plugin.grafana-image-renderer"), "rendering_ignore_https_errors"),
        "GF_PLUGIN_GRAFANA_IMAGE_RENDERER_RENDERING_IGNORE_HTTPS_ERRORS"
    );
    assert_eq!(env_name(None, "instance_name"), "GF_DEFAULT_INSTANCE_NAME");
}

#[test]
fn arbitrary_text_never_panics() {
    use proptest::prelude::*;
    proptest!(|(text in "[\\[\\]=:;#\"'`%(){}$_a-z0-9 \\\\\n\r]{0,200}")| {
        let _ = UnifiedAlerting::parse(&text, "fuzz", &no_env);
        let _ = UnifiedAlerting::parse(&format!("[unified_alerting]\nha_peers = {text}"), "fuzz", &no_env);
    });
}

#[test]
fn sentinel_mode_reads_a_list_of_sentinels_and_their_credentials() {
    let s = parse(
        "[unified_alerting]\nha_redis_address = 10.0.0.1:26379, sentinel-b:26379\n\
         ha_redis_sentinel_mode_enabled = true\nha_redis_sentinel_master_name = mymaster\n\
         ha_redis_sentinel_username = watcher\nha_redis_sentinel_password = s3cret\n\
         ha_redis_password = data-pw\nha_redis_db = 2\n",
    )
    .expect("loads");
    let redis = s.node_config().redis.expect("Redis mode");
    let sentinel = redis.sentinel.clone().expect("Sentinel mode");
    assert_eq!(sentinel.master_name, "mymaster");
    assert_eq!(sentinel.addrs, ["10.0.0.1:26379", "sentinel-b:26379"]);
    assert_eq!(sentinel.username.as_deref(), Some("watcher"));
    assert_eq!(sentinel.password.as_deref(), Some("s3cret"));
    // The master's own credentials and database stay the data ones.
    assert_eq!((redis.password.as_deref(), redis.db), (Some("data-pw"), Some(2)));
    assert!(!format!("{redis:?}").contains("s3cret"), "Debug leaves the password out");

    // A master name alone selects Sentinel, as in go-redis.
    let s = parse(
        "[unified_alerting]\nha_redis_address = a:26379,b:26379\n\
         ha_redis_sentinel_master_name = m\n",
    )
    .expect("loads");
    assert!(s.node_config().redis.and_then(|r| r.sentinel).is_some());
}

#[test]
fn cluster_mode_reads_a_list_of_nodes_as_go_redis_does() {
    // The flag with a list; a list alone (go-redis's universal client picks its cluster
    // client for two or more addresses); the flag with one address (a configuration endpoint).
    for text in [
        "ha_redis_cluster_mode_enabled = true\nha_redis_address = 10.0.0.1:7000, node-b:7001\n",
        "ha_redis_address = 10.0.0.1:7000,node-b:7001\nha_redis_db = 3\n",
    ] {
        let s = parse(&format!("[unified_alerting]\n{text}")).expect("loads");
        let redis = s.node_config().redis.expect("Redis mode");
        let cluster = redis.cluster.expect("Cluster mode");
        assert_eq!(cluster.addrs, ["10.0.0.1:7000", "node-b:7001"]);
        assert_eq!(redis.db, Some(0), "cluster clients ignore ha_redis_db");
        assert!(redis.sentinel.is_none());
    }
    let s = parse(
        "[unified_alerting]\nha_redis_cluster_mode_enabled = true\nha_redis_address = c:7000\n",
    )
    .expect("loads");
    assert_eq!(s.node_config().redis.and_then(|r| r.cluster).expect("Cluster").addrs, ["c:7000"]);
    let s = parse("[unified_alerting]\nha_redis_address = c:6379\n").expect("loads");
    assert!(s.node_config().redis.and_then(|r| r.cluster).is_none(), "one address: one server");
}

#[test]
fn sentinel_mode_needs_a_master_name_and_excludes_cluster_mode() {
    let e = error(
        "[unified_alerting]\nha_redis_address = a:26379\nha_redis_sentinel_mode_enabled = true\n",
    );
    assert!(e.contains("ha_redis_sentinel_master_name") && e.contains("line 3"), "{e}");
    let e = error(
        "[unified_alerting]\nha_redis_cluster_mode_enabled = true\n\
         ha_redis_sentinel_mode_enabled = true\nha_redis_sentinel_master_name = m\n",
    );
    assert!(e.contains("mutually exclusive") && e.contains("line 2"), "{e}");
    let e = error(
        "[unified_alerting]\nha_redis_address = a:26379,nope\nha_redis_sentinel_master_name = m\n",
    );
    assert!(e.contains("ha_redis_address") && e.contains("\"nope\""), "{e}");
}
