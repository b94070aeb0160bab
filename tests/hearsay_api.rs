//! The hearsay binary's Alertmanager-compatible API, driven with Debian's amtool 0.25 and raw
//! HTTP: silences, status, readiness, metrics, and what bad input gets back.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use util::alertmanager::{Hearsay, add_silence, amtool, expire_silence, get, scratch};

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    (head.split_whitespace().nth(1).expect("status").parse().expect("code"), body.to_owned())
}

#[test]
fn amtool_manages_silences_on_hearsay() {
    let h = Hearsay::hearsay(&scratch("api-amtool"), &[]);
    let id = add_silence(h.web, "alertname=~\"Disk.*\"", "amtool-user");
    let out = amtool(h.web, &["silence", "query", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("amtool prints JSON");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["matchers"][0]["isRegex"], true);
    assert_eq!(listed[0]["createdBy"], "amtool-user");

    let (code, one) = get(h.web, &format!("/api/v2/silence/{id}")).expect("answers");
    assert_eq!(code, 200, "{one}");
    assert!(one.contains("\"state\":\"active\""), "{one}");

    expire_silence(h.web, &id);
    let out = amtool(h.web, &["silence", "query", "--expired", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(listed[0]["status"]["state"], "expired");

    let out = amtool(h.web, &["cluster", "show"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ready"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let h = Hearsay::hearsay(&scratch("api-bad"), &[]);
    let (code, body) = request(h.web, "POST", "/api/v2/silences", "{not json");
    assert_eq!(code, 400, "{body}");
    let past = r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2020-01-02T00:00:00Z","createdBy":"x","comment":"y"}"#;
    let (code, body) = request(h.web, "POST", "/api/v2/silences", past);
    assert_eq!((code, body.as_str()), (400, "end time can't be in the past"));
    let bad_regex = r#"{"matchers":[{"name":"a","value":"(","isRegex":true}],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-02T00:00:00Z","createdBy":"x","comment":"y"}"#;
    let (code, body) = request(h.web, "POST", "/api/v2/silences", bad_regex);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid silence"), "{body}");
    let (code, _) =
        request(h.web, "DELETE", "/api/v2/silence/00000000-0000-4000-8000-000000000000", "");
    assert_eq!(code, 404);
    let (code, _) = get(h.web, "/api/v2/silence/nope").expect("answers");
    assert_eq!(code, 404);
}

#[test]
fn metrics_use_alertmanagers_names() {
    let h = Hearsay::hearsay(&scratch("api-metrics"), &[]);
    add_silence(h.web, "alertname=Metrics", "m");
    assert_eq!(get(h.web, "/api/v2/silences").expect("answers").0, 200);
    // Maintenance runs every second in tests: its durations show up once it has run.
    util::wait_for("a maintenance run", std::time::Duration::from_secs(10), || {
        get(h.web, "/metrics").is_some_and(|(_, t)| {
            t.contains("alertmanager_silences_snapshot_duration_seconds_count ")
        })
    });
    let (code, text) = get(h.web, "/metrics").expect("answers");
    assert_eq!(code, 200);
    for series in [
        "alertmanager_nflog_gc_duration_seconds_count",
        "alertmanager_nflog_snapshot_size_bytes",
        "alertmanager_silences{state=\"active\"} 1",
        "alertmanager_cluster_members 1",
        "alertmanager_peer_position 0",
        "alertmanager_nflog_queries_total",
        "alertmanager_silences_queries_total",
        "alertmanager_cluster_messages_received_total{msg_type=\"update\"}",
        "alertmanager_oversized_gossip_message_dropped_total{key=\"sil\"} 0",
        // The one listing above; nothing asked the notification log.
        "alertmanager_silences_query_duration_seconds_count 1\n",
        "alertmanager_nflog_query_duration_seconds_count 0\n",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
}
