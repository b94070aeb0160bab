//! The hearsay binary's Alertmanager-compatible API, driven with Debian's amtool 0.25 and raw
//! HTTP: silences, status, readiness, metrics, and what bad input gets back.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use util::alertmanager::{Hearsay, add_silence, amtool, expire_silence, get, scratch};

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    // A guard against a hung server, not a timing check.
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
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

/// A regex matcher longer than the bound (a 900 KB one cost about 95 MB of memory once
/// compiled) is refused with 400 naming the bound, without its text echoed back; the API
/// serves on.
#[test]
fn a_regex_over_the_bound_is_refused() {
    let h = Hearsay::hearsay(&scratch("api-huge-regex"), &[]);
    let pattern: String = (0..75_000).map(|i| format!("host-{i:06}|")).collect();
    assert!(pattern.len() > 800_000);
    let body = format!(
        r#"{{"matchers":[{{"name":"instance","value":"{pattern}x","isRegex":true}}],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-02T00:00:00Z","createdBy":"x","comment":"y"}}"#
    );
    let (code, reply) = request(h.web, "POST", "/api/v2/silences", &body);
    assert_eq!(code, 400, "{}", &reply[..reply.len().min(500)]);
    let limit =
        format!("limit of {} bytes", hearsay::core::state::silences::matcher::MAX_PATTERN_BYTES);
    assert!(reply.contains("invalid silence") && reply.contains(&limit), "{reply}");
    assert!(reply.len() < 1000, "the pattern is not echoed back: {} bytes", reply.len());
    let (code, list) = get(h.web, "/api/v2/silences").expect("answers");
    assert_eq!((code, list.as_str()), (200, "[]"));
    add_silence(h.web, "instance=~\"host-00000[12]\"", "after");
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

/// A client that sent part of a request and stalls: a body shorter than its Content-Length, or
/// a head without its end.
fn stall(web: SocketAddr, upload: bool) -> TcpStream {
    let mut s = TcpStream::connect(web).expect("connect");
    if upload {
        write!(s, "POST /api/v2/silences HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{\"matchers\":")
    } else {
        write!(s, "GET /api/v2/silences HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    }
    .expect("write");
    s
}

fn refused(h: &Hearsay, reason: &str) -> f64 {
    h.metric(&format!("hearsay_http_requests_rejected_total{{reason=\"{reason}\"}}"))
        .expect("the API answers /metrics with its rejection counters")
}

/// Dozens of stalled uploads, half-sent heads and idle connections hold up nothing: health,
/// metrics, reads and writes answer while they hang; when a stalled request's time is up it is
/// answered 408 and counted.
#[test]
fn slow_and_idle_clients_hold_up_nothing() {
    let h = Hearsay::hearsay(&scratch("api-slow"), &[]);
    util::wait_for("ready", Duration::from_secs(30), || {
        get(h.web, "/-/ready").is_some_and(|(code, _)| code == 200)
    });
    assert_eq!(refused(&h, "timeout"), 0.0);
    let stalled: Vec<TcpStream> = (0..40).map(|i| stall(h.web, i % 2 == 0)).collect();
    let idle: Vec<TcpStream> =
        (0..40).map(|_| TcpStream::connect(h.web).expect("connect")).collect();
    for path in ["/-/ready", "/-/healthy", "/metrics", "/api/v2/silences", "/api/v2/status"] {
        let (code, _) = request(h.web, "GET", path, "");
        assert_eq!(code, 200, "{path} while 80 clients stall or idle");
    }
    let id = add_silence(h.web, "alertname=WhileStalled", "slow-clients");
    let (code, body) = request(h.web, "GET", &format!("/api/v2/silence/{id}"), "");
    assert_eq!(code, 200, "{body}");

    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        assert!(raw.starts_with("HTTP/1.1 408 "), "a stalled request's answer: {raw:?}");
    }
    assert_eq!(refused(&h, "timeout"), 40.0);
    // Idle keep-alive connections are no request: nothing refused them.
    assert_eq!(refused(&h, "too_many_connections"), 0.0);
    drop(idle);
}

/// The connection bound: idle connections make room for newcomers; when every slot holds a
/// request in progress, the next connection is answered 503 and counted, and the API serves
/// again once the stalled requests are gone.
#[test]
fn connections_are_bounded_and_idle_ones_make_room() {
    const MAX_CONNECTIONS: usize = 8;
    let h = Hearsay::hearsay_with(
        &scratch("api-conns"),
        &[],
        &[format!("--web.max-connections={MAX_CONNECTIONS}")],
    );
    let idle: Vec<TcpStream> =
        (0..MAX_CONNECTIONS).map(|_| TcpStream::connect(h.web).expect("connect")).collect();
    let (code, _) = request(h.web, "GET", "/-/healthy", "");
    assert_eq!(code, 200, "an idle connection made room");
    drop(idle);

    let mut stalled: Vec<TcpStream> = Vec::new();
    let refused_before = refused(&h, "too_many_connections");
    for _ in 0..MAX_CONNECTIONS {
        stalled.push(stall(h.web, true));
        // Each stalled upload is read before the next one comes, so none is mistaken for idle.
        let _ = get(h.web, "/-/healthy");
    }
    let mut extra = TcpStream::connect(h.web).expect("connect");
    extra.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(extra, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut raw = String::new();
    let _ = extra.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 503 "), "a connection past the bound: {raw:?}");
    drop(stalled);
    util::wait_for("the API answers again", Duration::from_secs(30), || {
        get(h.web, "/-/healthy").is_some_and(|(code, _)| code == 200)
    });
    assert!(refused(&h, "too_many_connections") > refused_before);
}

/// Bytes that are not this cluster's gossip — garbage datagrams, another cluster's label,
/// garbage streams — are refused whole, counted by transport and reason, and logged (at a
/// bounded rate); the node stays up and keeps answering. A join at start that reaches no
/// configured peer is logged too.
#[test]
fn refused_gossip_is_counted_by_reason_and_logged() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody_addr = nobody.local_addr().expect("addr");
    drop(nobody); // a peer address where nothing listens
    let h = Hearsay::hearsay(&scratch("api-garbage"), &[nobody_addr]);
    util::wait_for("the failed startup join is logged", Duration::from_secs(30), || {
        h.log_text().contains("joining the cluster at start failed")
    });
    let rejected = |transport: &str, reason: &str| {
        h.metric(&format!(
            "hearsay_cluster_rejected_total{{transport=\"{transport}\",reason=\"{reason}\"}}"
        ))
        .expect("the rejection counters are exposed")
    };
    assert_eq!(rejected("packet", "malformed"), 0.0);

    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..500u32 {
        // 0xff is no memberlist message type; the rest varies.
        let junk = [&[0xffu8][..], &i.to_be_bytes()[..], &[0xab; 40][..]].concat();
        udp.send_to(&junk, h.cluster).expect("send");
    }
    // memberlist's label header (type 244, length, label) for a cluster that is not ours.
    let labelled = [&[244u8, 5][..], b"other", &[0u8, 0x80][..]].concat();
    for _ in 0..5 {
        udp.send_to(&labelled, h.cluster).expect("send");
    }
    for _ in 0..10 {
        let mut s = TcpStream::connect(h.cluster).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: not-gossip\r\n\r\n").expect("write");
    }
    util::wait_for("every refusal counted", Duration::from_secs(30), || {
        rejected("packet", "malformed") >= 100.0
            && rejected("packet", "label_mismatch") >= 1.0
            && rejected("stream", "malformed") >= 1.0
    });
    util::wait_for("a refusal logged", Duration::from_secs(30), || {
        h.log_text().contains("refused a packet from 127.0.0.1:")
    });
    let lines = h.log_text().lines().filter(|l| l.contains("refused a ")).count();
    assert!(lines <= 2, "refusals are logged at a bounded rate, not per packet: {lines} lines");
    assert_eq!(get(h.web, "/-/healthy").map(|(code, _)| code), Some(200));
}
