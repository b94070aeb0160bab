use redis::Value;

use super::*;

const T0: UnixMillis = UnixMillis(1_800_000_000_000);

fn settings() -> RedisSettings {
    RedisSettings {
        push_pull_interval: Duration::from_secs(60),
        ..RedisSettings::grafana("p1", "g")
    }
}

fn peer_with(settings: RedisSettings) -> RedisPeer {
    RedisPeer::new(settings, &["silences:1"], Millis(0), T0, 7)
}

fn unix(now: Millis) -> UnixMillis {
    UnixMillis(T0.0 + now.0 as i64)
}

fn bulk(b: &[u8]) -> Value {
    Value::BulkString(b.to_vec())
}

fn message(channel: &str, payload: &[u8]) -> Value {
    Value::Array(vec![bulk(b"message"), bulk(channel.as_bytes()), bulk(payload)])
}

fn commands(p: &mut RedisPeer, link: Link) -> Vec<Command> {
    std::iter::from_fn(|| p.poll_command(link)).collect()
}

fn events(p: &mut RedisPeer) -> Vec<RedisEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

fn server_error(text: &str) -> Value {
    // The parser is the only public way to build a server error.
    redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).expect("an error reply")
}

/// Both links up at `now`, their handshake drained and answered (an empty Redis).
fn connected(p: &mut RedisPeer, now: Millis) {
    connected_with(p, now, &[]);
}

/// Both links up at `now`, their handshake drained and answered by a Redis holding `keys`.
fn connected_with(p: &mut RedisPeer, now: Millis, keys: &[&str]) {
    assert_eq!(p.poll_link(), Some(LinkAction::Open(Link::Command)));
    assert_eq!(p.poll_link(), Some(LinkAction::Open(Link::Subscriber)));
    p.handle_connected(now, unix(now), Link::Command);
    p.handle_connected(now, unix(now), Link::Subscriber);
    settle_commands(p, now, keys);
    for _ in commands(p, Link::Subscriber) {
        let confirm = Value::Array(vec![bulk(b"subscribe"), bulk(b"ch"), Value::Int(1)]);
        p.handle_value(now, unix(now), Link::Subscriber, confirm);
    }
}

/// Answer one command as an empty Redis holding `keys` (all with fresh heartbeats) would.
fn answer(p: &mut RedisPeer, now: Millis, cmd: &Command, keys: &[&str]) {
    let secs = unix(now).0 / 1000;
    let reply = match cmd {
        Command::Scan { .. } => Value::Array(vec![
            bulk(b"0"),
            Value::Array(keys.iter().map(|k| bulk(k.as_bytes())).collect()),
        ]),
        Command::Mget(ks) => {
            Value::Array(ks.iter().map(|_| bulk(secs.to_string().as_bytes())).collect())
        }
        Command::Publish { .. } | Command::Del(_) => Value::Int(1),
        _ => Value::Okay,
    };
    p.handle_value(now, unix(now), Link::Command, reply);
}

/// Answer every command on the command link until none is left.
fn settle_commands(p: &mut RedisPeer, now: Millis, keys: &[&str]) -> Vec<Command> {
    let mut all = Vec::new();
    loop {
        let batch = commands(p, Link::Command);
        if batch.is_empty() {
            return all;
        }
        for cmd in &batch {
            answer(p, now, cmd, keys);
        }
        all.extend(batch);
    }
}

#[test]
fn a_connect_authenticates_selects_then_beats_and_scans() {
    let mut s = settings();
    s.password = Some("pw".into());
    s.username = Some("hearsay".into());
    s.db = 3;
    let mut p = peer_with(s);
    assert_eq!(p.poll_link(), Some(LinkAction::Open(Link::Command)));
    p.handle_connected(Millis(0), T0, Link::Command);
    let sent = commands(&mut p, Link::Command);
    assert_eq!(
        sent,
        [
            Command::Auth { username: Some("hearsay".into()), password: "pw".into() },
            Command::Select(3),
            Command::Set { key: "g:p1".into(), value: "1800000000".into(), ttl_secs: 300 },
            Command::Scan { cursor: 0, pattern: "g:*".into(), count: 100 },
        ]
    );
    p.handle_connected(Millis(0), T0, Link::Subscriber);
    assert_eq!(
        commands(&mut p, Link::Subscriber),
        [
            Command::Auth { username: Some("hearsay".into()), password: "pw".into() },
            Command::Subscribe(vec![
                "g:full_state".into(),
                "g:full_state:request".into(),
                "g:silences:1".into()
            ]),
        ],
        "no SELECT on the subscriber: pub/sub ignores databases"
    );
}

#[test]
fn membership_is_read_page_by_page_and_positions_follow_byte_order() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    p.handle_timeout(Millis(5_000), unix(Millis(5_000)));
    let scan = commands(&mut p, Link::Command);
    assert!(matches!(scan.last(), Some(Command::Scan { cursor: 0, .. })), "{scan:?}");
    for cmd in &scan[..scan.len() - 1] {
        answer(&mut p, Millis(5_000), cmd, &[]);
    }
    let now = Millis(5_010);
    let page = |cursor: &[u8], keys: &[&str]| {
        Value::Array(vec![
            bulk(cursor),
            Value::Array(keys.iter().map(|k| bulk(k.as_bytes())).collect()),
        ])
    };
    p.handle_value(now, unix(now), Link::Command, page(b"17", &["g:p1", "g:notes"]));
    assert_eq!(
        commands(&mut p, Link::Command),
        [Command::Scan { cursor: 17, pattern: "g:*".into(), count: 100 }]
    );
    p.handle_value(now, unix(now), Link::Command, page(b"0", &["g:P0", "g:old"]));
    let mget = commands(&mut p, Link::Command);
    assert_eq!(
        mget,
        [Command::Mget(vec!["g:p1".into(), "g:notes".into(), "g:P0".into(), "g:old".into()])]
    );
    let fresh = (unix(now).0 / 1000).to_string();
    let stale = (unix(now).0 / 1000 - 61).to_string();
    let values = Value::Array(vec![
        bulk(fresh.as_bytes()),
        bulk(b"not a number"),
        bulk(fresh.as_bytes()),
        bulk(stale.as_bytes()),
    ]);
    p.handle_value(now, unix(now), Link::Command, values);
    assert_eq!(p.members(), ["g:P0", "g:p1"]);
    assert_eq!(p.scanned(), 4, "Grafana's cluster size counts every key");
    assert_eq!(p.position(), Position { index: 1, visible: 2, blind: false });
}

#[test]
fn a_member_list_nobody_could_refresh_for_a_minute_is_dropped() {
    let mut p = peer_with(settings());
    connected_with(&mut p, Millis(0), &["g:p1", "g:p2"]);
    assert_eq!(p.members().len(), 2);
    // Redis goes away: nothing refreshes the list.
    p.handle_disconnected(Millis(100), unix(Millis(100)), Link::Command, LinkFailure::Io, "reset");
    let mut now = Millis(100);
    while now.0 < 61_000 {
        now = p.poll_timeout().expect("timers").max(Millis(now.0 + 1));
        p.handle_timeout(now, unix(now));
        while p.poll_link().is_some() {}
        events(&mut p);
    }
    assert!(p.members().is_empty());
    assert!(p.position().blind, "position 0 and blind: availability over deduplication");
}

#[test]
fn updates_of_a_delimited_state_are_coalesced_in_order_and_others_are_not() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    p.publish("silences:1", b"\x01a", true).expect("room");
    p.publish("silences:1", b"\x01b", true).expect("room");
    p.publish("alerts:broadcast", b"{}", false).expect("room");
    p.publish("alerts:broadcast", b"[]", false).expect("room");
    p.publish("silences:1", b"\x01c", true).expect("room");
    let sent = commands(&mut p, Link::Command);
    let publishes: Vec<(String, Part)> = sent
        .into_iter()
        .map(|c| match c {
            Command::Publish { channel, payload } => {
                (channel, Part::decode(payload.as_slice()).expect("a Part"))
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let got: Vec<(&str, &[u8])> =
        publishes.iter().map(|(c, p)| (c.as_str(), p.data.as_slice())).collect();
    assert_eq!(
        got,
        [
            ("g:silences:1", &b"\x01a\x01b"[..]),
            ("g:alerts:broadcast", b"{}"),
            ("g:alerts:broadcast", b"[]"),
            ("g:silences:1", b"\x01c"),
        ]
    );
}

#[test]
fn a_full_outbox_refuses() {
    let mut p = peer_with(settings());
    for i in 0..OUTBOX_LEN {
        p.publish(&format!("k{i}"), b"x", false).expect("room");
    }
    assert_eq!(p.publish_room(), 0);
    assert_eq!(p.publish("k", b"x", false), Err(OutboxFull));
}

#[test]
fn nothing_is_published_while_the_command_link_is_down_and_lost_publishes_are_counted() {
    let mut p = peer_with(settings());
    p.publish("silences:1", b"\x01a", true).expect("room");
    assert!(commands(&mut p, Link::Command).is_empty(), "not connected yet");
    while p.poll_link().is_some() {}
    p.handle_connected(Millis(0), T0, Link::Command);
    let sent = commands(&mut p, Link::Command);
    assert!(sent.iter().any(|c| matches!(c, Command::Publish { .. })), "{sent:?}");
    p.handle_disconnected(Millis(10), unix(Millis(10)), Link::Command, LinkFailure::Io, "reset");
    assert_eq!(RedisStats::of(&p.stats().publish_failed, MsgKind::Update), 1);
}

#[test]
fn our_own_publishes_are_not_merged_again_and_others_are() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    p.publish("silences:1", b"\x01a", true).expect("room");
    let Some(Command::Publish { payload, .. }) = p.poll_command(Link::Command) else {
        panic!("a publish")
    };
    events(&mut p);
    let now = Millis(1);
    p.handle_value(now, unix(now), Link::Subscriber, message("g:silences:1", b"from p2"));
    p.handle_value(now, unix(now), Link::Subscriber, message("g:silences:1", &payload));
    p.handle_value(now, unix(now), Link::Subscriber, message("g:full_state", b"p2's state"));
    assert_eq!(
        events(&mut p),
        [RedisEvent::Update(b"from p2".to_vec()), RedisEvent::FullState(b"p2's state".to_vec())]
    );
    assert_eq!(p.stats().echoes_skipped, 1);
    assert_eq!(RedisStats::of(&p.stats().received, MsgKind::Update), 1);
}

#[test]
fn requests_are_answered_at_most_once_a_second_and_ours_are_ignored() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    events(&mut p);
    let mut wanted = 0;
    let mut now = Millis(0);
    while now.0 < 3_000 {
        p.handle_value(now, unix(now), Link::Subscriber, message("g:full_state:request", b"p2"));
        p.handle_value(now, unix(now), Link::Subscriber, message("g:full_state:request", b"p1"));
        p.handle_timeout(now, unix(now));
        for e in events(&mut p) {
            if e == RedisEvent::FullStateWanted {
                wanted += 1;
                p.publish_full_state(vec![b"state".to_vec()]);
            }
        }
        settle_commands(&mut p, now, &["g:p1"]);
        now = Millis(now.0 + 10);
    }
    assert_eq!(wanted, 3, "answers at 0, 1 and 2 s for 300 requests");
}

#[test]
fn settling_ends_with_a_request_for_full_states() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &["g:p1"]);
    let mut now = Millis(0);
    let mut ready_at = None;
    let mut request = false;
    while now.0 < 40_000 && !request {
        now = p.poll_timeout().expect("timers").max(Millis(now.0 + 1));
        p.handle_timeout(now, unix(now));
        if events(&mut p).contains(&RedisEvent::Ready) {
            ready_at = Some(now);
        }
        for cmd in settle_commands(&mut p, now, &["g:p1"]) {
            if let Command::Publish { channel, payload } = cmd
                && channel == "g:full_state:request"
            {
                assert_eq!(payload, b"p1", "the bare name");
                request = true;
            }
        }
    }
    assert!(p.is_ready());
    assert!(request, "ready at {ready_at:?} but no request");
    assert!(ready_at.is_some_and(|t| t.0 >= 8_000), "three equal polls 2 s apart: {ready_at:?}");
}

#[test]
fn full_states_travel_in_chunks_with_few_bytes_in_flight() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    let chunk = vec![0u8; 1 << 20];
    p.publish_full_state(vec![chunk; 10]);
    let sent = commands(&mut p, Link::Command);
    assert_eq!(sent.len(), 4, "4 MiB in flight at most");
    for _ in 0..2 {
        p.handle_value(Millis(1), unix(Millis(1)), Link::Command, Value::Int(2));
    }
    assert_eq!(commands(&mut p, Link::Command).len(), 2, "two more once two are answered");
    assert_eq!(RedisStats::of(&p.stats().sent, MsgKind::FullState), 2);
}

#[test]
fn a_lost_link_is_retried_with_backoff_and_a_reconnect_exchanges_full_states() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    events(&mut p);
    p.handle_disconnected(
        Millis(1_000),
        unix(Millis(1_000)),
        Link::Subscriber,
        LinkFailure::Io,
        "reset by peer",
    );
    let failure = events(&mut p);
    assert!(
        matches!(&failure[..], [RedisEvent::Failure { link: Link::Subscriber, what }] if what == "reset by peer"),
        "{failure:?}"
    );
    let retry = p.poll_timeout().expect("a retry");
    assert!((1_050..=1_100).contains(&retry.0), "first retry after 50–100 ms: {retry}");
    p.handle_timeout(retry, unix(retry));
    assert_eq!(p.poll_link(), Some(LinkAction::Open(Link::Subscriber)));
    p.handle_connected(retry, unix(retry), Link::Subscriber);
    assert!(
        matches!(&commands(&mut p, Link::Subscriber)[..], [Command::Subscribe(ch)] if ch.len() == 3)
    );
    assert!(events(&mut p).contains(&RedisEvent::FullStateWanted), "push ours");
    let sent = settle_commands(&mut p, retry, &[]);
    assert!(
        sent.iter().any(
            |c| matches!(c, Command::Publish { channel, .. } if channel == "g:full_state:request")
        ),
        "ask for theirs: {sent:?}"
    );
}

#[test]
fn backoff_doubles_to_ten_seconds() {
    let mut p = peer_with(settings());
    let mut now = Millis(0);
    let mut waits = Vec::new();
    for _ in 0..10 {
        while let Some(LinkAction::Open(_)) = p.poll_link() {}
        p.handle_disconnected(now, unix(now), Link::Command, LinkFailure::Connect, "refused");
        let State::Down { retry_at } = p.link(Link::Command).state else { panic!("down") };
        waits.push(retry_at.0 - now.0);
        now = retry_at;
        p.handle_timeout(now, unix(now));
    }
    assert!(waits[0] <= 100 && waits[1] <= 200 && waits[2] <= 400, "{waits:?}");
    assert!(waits.iter().all(|w| *w <= 10_000), "{waits:?}");
    assert!(waits[9] >= 5_000, "capped at 10 s with jitter down to half: {waits:?}");
}

#[test]
fn a_silent_redis_closes_the_link() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    p.publish("silences:1", b"\x01a", true).expect("room");
    assert!(!commands(&mut p, Link::Command).is_empty());
    // No reply comes.
    let at = p.poll_timeout().expect("a deadline");
    assert!(at.0 <= REPLY_TIMEOUT.as_millis() as u64);
    p.handle_timeout(Millis(10_000), unix(Millis(10_000)));
    let actions: Vec<_> = std::iter::from_fn(|| p.poll_link()).collect();
    assert!(actions.contains(&LinkAction::Close(Link::Command)), "{actions:?}");
    assert!(!p.is_up(Link::Command));
}

#[test]
fn a_refused_password_drops_the_link_and_says_why() {
    let mut s = settings();
    s.password = Some("wrong".into());
    let mut p = peer_with(s);
    while p.poll_link().is_some() {}
    p.handle_connected(Millis(0), T0, Link::Command);
    let _ = commands(&mut p, Link::Command);
    p.handle_value(
        Millis(1),
        T0,
        Link::Command,
        server_error("WRONGPASS invalid username-password pair"),
    );
    let evs = events(&mut p);
    assert!(
        evs.iter()
            .any(|e| matches!(e, RedisEvent::Failure { what, .. } if what.contains("WRONGPASS"))),
        "{evs:?}"
    );
    assert_eq!(p.poll_link(), Some(LinkAction::Close(Link::Command)));
    assert!(!p.is_up(Link::Command));
}

#[test]
fn shutdown_sends_a_last_full_state_then_deletes_the_heartbeat() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    events(&mut p);
    p.shutdown(Millis(10), unix(Millis(10)));
    assert_eq!(events(&mut p), [RedisEvent::FullStateWanted]);
    p.publish_full_state(vec![b"last".to_vec()]);
    let sent = settle_commands(&mut p, Millis(11), &[]);
    assert!(
        matches!(&sent[..], [Command::Publish { channel, .. }, Command::Del(key)]
        if channel == "g:full_state" && key == "g:p1"),
        "{sent:?}"
    );
    assert_eq!(events(&mut p), [RedisEvent::Stopped]);
}

#[test]
fn shutdown_gives_up_after_its_timeout() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    p.shutdown(Millis(10), unix(Millis(10)));
    // The host never hands over the full state.
    let t = Millis(10 + SHUTDOWN_TIMEOUT.as_millis() as u64);
    p.handle_timeout(t, unix(t));
    assert!(events(&mut p).contains(&RedisEvent::Stopped));
}

#[test]
fn a_peer_registered_later_subscribes_its_channel() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    p.add_key("notificationlog:1");
    p.add_key("notificationlog:1");
    assert_eq!(
        commands(&mut p, Link::Subscriber),
        [Command::Subscribe(vec!["g:notificationlog:1".into()])]
    );
}

#[test]
fn unknown_values_are_counted_not_fatal() {
    let mut p = peer_with(settings());
    connected(&mut p, Millis(0));
    settle_commands(&mut p, Millis(0), &[]);
    p.handle_value(Millis(1), T0, Link::Command, Value::Int(1));
    p.handle_value(Millis(1), T0, Link::Subscriber, message("other:x", b"?"));
    p.handle_value(Millis(1), T0, Link::Subscriber, Value::Array(vec![Value::Int(3)]));
    assert_eq!(p.stats().unexpected, 3);
    assert!(p.is_up(Link::Command) && p.is_up(Link::Subscriber));
}

// ---- Redis Sentinel ----

const SENTINELS: [&str; 2] = ["10.0.0.1:26379", "10.0.0.2:26379"];

fn sentinel_settings() -> RedisSettings {
    RedisSettings {
        sentinel: Some(SentinelSettings {
            master_name: "mymaster".into(),
            addrs: SENTINELS.iter().map(|s| (*s).to_owned()).collect(),
            username: None,
            password: Some("spw".into()),
        }),
        ..settings()
    }
}

fn links(p: &mut RedisPeer) -> Vec<LinkAction> {
    std::iter::from_fn(|| p.poll_link()).collect()
}

fn master_reply(host: &str, port: &str) -> Value {
    Value::Array(vec![bulk(host.as_bytes()), bulk(port.as_bytes())])
}

fn subscribed(channel: &str) -> Value {
    Value::Array(vec![bulk(b"subscribe"), bulk(channel.as_bytes()), Value::Int(1)])
}

/// The Sentinel link up at `now`, its handshake answered with `reply` to the question.
fn sentinel_answers(p: &mut RedisPeer, now: Millis, reply: Value) {
    p.handle_connected(now, unix(now), Link::Sentinel);
    let sent = commands(p, Link::Sentinel);
    assert_eq!(
        sent,
        [
            Command::Auth { username: None, password: "spw".into() },
            Command::SentinelMaster("mymaster".into()),
            Command::Subscribe(vec!["+switch-master".into()]),
        ]
    );
    p.handle_value(now, unix(now), Link::Sentinel, Value::Okay);
    p.handle_value(now, unix(now), Link::Sentinel, reply);
}

/// A Sentinel-mode peer whose Sentinel named 10.0.0.9:6379, both data links up there.
fn on_master(now: Millis) -> RedisPeer {
    let mut p = peer_with(sentinel_settings());
    assert_eq!(links(&mut p), [LinkAction::Open(Link::Sentinel)], "the Sentinel first");
    assert_eq!(p.target(Link::Sentinel), Some(SENTINELS[0]));
    assert_eq!(p.target(Link::Command), None, "no master known yet");
    sentinel_answers(&mut p, now, master_reply("10.0.0.9", "6379"));
    p.handle_value(now, unix(now), Link::Sentinel, subscribed("+switch-master"));
    assert_eq!(
        links(&mut p),
        [LinkAction::Open(Link::Command), LinkAction::Open(Link::Subscriber)]
    );
    assert_eq!(p.target(Link::Command), Some("10.0.0.9:6379"));
    assert_eq!(p.target(Link::Subscriber), Some("10.0.0.9:6379"));
    for link in Link::DATA {
        p.handle_connected(now, unix(now), link);
    }
    settle_commands(&mut p, now, &[]);
    for _ in commands(&mut p, Link::Subscriber) {
        p.handle_value(now, unix(now), Link::Subscriber, subscribed("ch"));
    }
    events(&mut p);
    p
}

#[test]
fn sentinel_mode_asks_a_sentinel_then_opens_the_links_at_the_master() {
    let p = on_master(Millis(0));
    assert_eq!(p.master(), Some("10.0.0.9:6379"));
    assert!(p.is_up(Link::Command) && p.is_up(Link::Subscriber) && p.is_up(Link::Sentinel));
    assert_eq!(p.stats().disconnects, 0);
}

#[test]
fn an_ipv6_master_is_bracketed() {
    let mut p = peer_with(sentinel_settings());
    links(&mut p);
    sentinel_answers(&mut p, Millis(0), master_reply("::1", "6380"));
    assert_eq!(p.master(), Some("[::1]:6380"));
}

#[test]
fn an_unknown_master_name_is_an_error_and_the_next_sentinel_is_asked() {
    let mut p = peer_with(sentinel_settings());
    links(&mut p);
    sentinel_answers(&mut p, Millis(0), Value::Nil);
    let failed = events(&mut p);
    assert!(
        matches!(&failed[..], [RedisEvent::Failure { link: Link::Sentinel, what }]
            if what.contains("Sentinel 10.0.0.1:26379") && what.contains("\"mymaster\"")),
        "{failed:?}"
    );
    assert_eq!(p.stats().link_failures[LinkFailure::UnknownMaster.index()], 1);
    assert_eq!(links(&mut p), [LinkAction::Close(Link::Sentinel)]);
    assert_eq!(p.target(Link::Sentinel), Some(SENTINELS[1]), "the next Sentinel");
    assert!(!p.is_up(Link::Command), "no data link without a master");

    // The second one is not reachable either: every Sentinel failed, and the log says so.
    let retry = p.poll_timeout().expect("a retry");
    p.handle_timeout(retry, unix(retry));
    assert_eq!(links(&mut p), [LinkAction::Open(Link::Sentinel)]);
    p.handle_disconnected(retry, unix(retry), Link::Sentinel, LinkFailure::Connect, "refused");
    let failed = events(&mut p);
    assert!(
        matches!(&failed[..], [RedisEvent::Failure { link: Link::Sentinel, what }]
            if what.contains("10.0.0.2:26379") && what.contains("none of the 2 Sentinels")),
        "{failed:?}"
    );
    assert_eq!(p.target(Link::Sentinel), Some(SENTINELS[0]), "round again");
    // With backoff: the next try waits longer than the first.
    let again = p.poll_timeout().expect("a retry");
    assert!(again.since(retry) > retry.since(Millis(0)) / 2, "{again} after {retry}");
}

#[test]
fn a_switch_master_notice_moves_the_links_and_the_peer_resyncs_there() {
    let mut p = on_master(Millis(0));
    let now = Millis(1_000);
    let notice = |payload: &str| {
        Value::Array(vec![bulk(b"message"), bulk(b"+switch-master"), bulk(payload.as_bytes())])
    };
    // Another master's failover changes nothing.
    p.handle_value(now, unix(now), Link::Sentinel, notice("other 1.1.1.1 1 2.2.2.2 2"));
    assert_eq!(links(&mut p), []);
    p.handle_value(now, unix(now), Link::Sentinel, notice("mymaster 10.0.0.9 6379 10.0.0.8 6380"));
    assert_eq!(
        links(&mut p),
        [
            LinkAction::Close(Link::Command),
            LinkAction::Open(Link::Command),
            LinkAction::Close(Link::Subscriber),
            LinkAction::Open(Link::Subscriber),
        ],
        "no backoff before the new master, and no second question to the Sentinels"
    );
    assert_eq!(p.target(Link::Command), Some("10.0.0.8:6380"));
    assert_eq!(p.stats().link_failures[LinkFailure::Failover.index()], 2);
    events(&mut p);

    for link in Link::DATA {
        p.handle_connected(now, unix(now), link);
    }
    settle_commands(&mut p, now, &[]);
    assert!(events(&mut p).contains(&RedisEvent::FullStateWanted), "the reconnect's push");
    p.publish_full_state(Vec::new());
    // Resubscribed: only now are full states asked for and pushed again, so that the
    // answers reach us.
    assert!(matches!(&commands(&mut p, Link::Subscriber)[..], [Command::Subscribe(_)]));
    p.handle_value(now, unix(now), Link::Subscriber, subscribed("ch"));
    assert!(events(&mut p).contains(&RedisEvent::FullStateWanted), "push ours again");
    let sent = settle_commands(&mut p, now, &[]);
    assert!(
        sent.iter().any(
            |c| matches!(c, Command::Publish { channel, .. } if channel == "g:full_state:request")
        ),
        "ask for theirs again: {sent:?}"
    );
}

#[test]
fn readonly_on_the_heartbeat_drops_the_link_and_asks_the_sentinels_again() {
    let mut p = on_master(Millis(0));
    let beat = Millis(5_000);
    p.handle_timeout(beat, unix(beat));
    let sent = commands(&mut p, Link::Command);
    assert!(matches!(sent.first(), Some(Command::Set { .. })), "{sent:?}");
    let readonly = server_error("READONLY You can't write against a read only replica.");
    p.handle_value(beat, unix(beat), Link::Command, readonly);
    assert_eq!(
        links(&mut p),
        [
            LinkAction::Close(Link::Command),
            LinkAction::Close(Link::Sentinel),
            LinkAction::Open(Link::Sentinel),
        ]
    );
    assert_eq!(p.stats().link_failures[LinkFailure::Failover.index()], 1);
    // The Sentinel names a new master: the subscriber moves, the command link (down, waiting
    // for its backoff) is opened there at once.
    sentinel_answers(&mut p, beat, master_reply("10.0.0.8", "6380"));
    assert_eq!(
        links(&mut p),
        [
            LinkAction::Open(Link::Command),
            LinkAction::Close(Link::Subscriber),
            LinkAction::Open(Link::Subscriber),
        ]
    );
}

#[test]
fn a_lost_data_link_asks_the_sentinels_again_and_the_same_answer_changes_nothing() {
    let mut p = on_master(Millis(0));
    let now = Millis(2_000);
    p.handle_disconnected(now, unix(now), Link::Command, LinkFailure::Closed, "closed");
    assert_eq!(
        links(&mut p),
        [LinkAction::Close(Link::Sentinel), LinkAction::Open(Link::Sentinel)]
    );
    // The other link failing meanwhile asks nothing more: a question is under way.
    p.handle_disconnected(now, unix(now), Link::Subscriber, LinkFailure::Closed, "closed");
    assert_eq!(links(&mut p), []);
    sentinel_answers(&mut p, now, master_reply("10.0.0.9", "6379"));
    assert_eq!(links(&mut p), [], "same master: the links retry with their backoff");
    // Past both first retries (100 ms at most).
    let retry = Millis(now.0 + 200);
    p.handle_timeout(retry, unix(retry));
    let reopened = links(&mut p);
    assert!(reopened.contains(&LinkAction::Open(Link::Command)), "{reopened:?}");
    assert!(reopened.contains(&LinkAction::Open(Link::Subscriber)), "{reopened:?}");
    assert_eq!(p.target(Link::Command), Some("10.0.0.9:6379"));
}

#[test]
fn outside_sentinel_mode_there_is_no_sentinel_link() {
    let mut p = peer_with(settings());
    assert_eq!(
        links(&mut p),
        [LinkAction::Open(Link::Command), LinkAction::Open(Link::Subscriber)]
    );
    assert_eq!(p.target(Link::Command), None);
    assert_eq!(p.poll_command(Link::Sentinel), None);
    p.handle_timeout(Millis(60_000), unix(Millis(60_000)));
    assert!(!links(&mut p).contains(&LinkAction::Open(Link::Sentinel)));
}

// ---- Redis Cluster ----

const SEED: &str = "10.0.1.1:7000";
const M0: &str = "10.0.1.1:7000";
const M1: &str = "10.0.1.2:7000";

fn cluster_settings() -> RedisSettings {
    RedisSettings { cluster: Some(ClusterSettings { seeds: vec![SEED.into()] }), ..settings() }
}

/// A `CLUSTER SLOTS` reply: slots below `split` on M0, the rest on M1 (or all on M0).
fn slot_map(split: Option<u16>) -> Value {
    let node = |addr: &str| {
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        Value::Array(vec![
            bulk(host.as_bytes()),
            Value::Int(port.parse().expect("port")),
            bulk(b"id"),
        ])
    };
    let range = |first: u16, last: u16, addr: &str| {
        Value::Array(vec![Value::Int(first.into()), Value::Int(last.into()), node(addr)])
    };
    Value::Array(match split {
        Some(s) => vec![range(0, s - 1, M0), range(s, 16383, M1)],
        None => vec![range(0, 16383, M0)],
    })
}

/// A peer on a two-master cluster: the map read, both masters up, the heartbeat written
/// and the first membership read answered with our own key.
fn on_cluster(split: u16) -> RedisPeer {
    let now = Millis(0);
    let mut p = peer_with(cluster_settings());
    assert_eq!(
        links(&mut p),
        [LinkAction::Open(Link::Command), LinkAction::Open(Link::Subscriber)]
    );
    assert_eq!(p.target(Link::Command), Some(SEED));
    p.handle_connected(now, unix(now), Link::Command);
    p.handle_connected(now, unix(now), Link::Subscriber);
    assert_eq!(commands(&mut p, Link::Command), [Command::ClusterSlots]);
    p.handle_value(now, unix(now), Link::Command, slot_map(Some(split)));
    assert_eq!(
        links(&mut p),
        [LinkAction::Open(Link::Master(0)), LinkAction::Open(Link::Master(1))]
    );
    assert_eq!((p.target(Link::Master(0)), p.target(Link::Master(1))), (Some(M0), Some(M1)));
    for _ in commands(&mut p, Link::Subscriber) {
        p.handle_value(now, unix(now), Link::Subscriber, subscribed("ch"));
    }
    p.handle_connected(now, unix(now), Link::Master(0));
    p.handle_connected(now, unix(now), Link::Master(1));
    drive_masters(&mut p, now);
    events(&mut p);
    p
}

/// Answer every command on the master links as a cluster holding our heartbeat would.
fn drive_masters(p: &mut RedisPeer, now: Millis) -> Vec<(Link, Command)> {
    let own = "g:p1".to_owned();
    let mut all = Vec::new();
    loop {
        let mut any = false;
        for link in [Link::Master(0), Link::Master(1)] {
            for cmd in commands(p, link) {
                any = true;
                let holds = p.key_link(&own) == Some(link);
                let reply = match &cmd {
                    Command::Scan { .. } => {
                        let keys = if holds { vec![bulk(own.as_bytes())] } else { vec![] };
                        Value::Array(vec![bulk(b"0"), Value::Array(keys)])
                    }
                    Command::Mget(ks) => Value::Array(
                        ks.iter()
                            .map(|_| bulk((unix(now).0 / 1000).to_string().as_bytes()))
                            .collect(),
                    ),
                    Command::Del(_) => Value::Int(1),
                    _ => Value::Okay,
                };
                p.handle_value(now, unix(now), link, reply);
                all.push((link, cmd));
            }
        }
        if !any {
            return all;
        }
    }
}

/// The commands that are not the membership read's `SCAN`s.
fn keyed(cmds: Vec<Command>) -> Vec<Command> {
    cmds.into_iter().filter(|c| !matches!(c, Command::Scan { .. })).collect()
}

fn split_for_own_key_on(master: u8) -> u16 {
    let s = slot("g:p1");
    // Slots below the split are M0's.
    if master == 0 { s + 1 } else { s.max(1) }
}

#[test]
fn cluster_mode_reads_the_map_and_routes_the_heartbeat_by_slot() {
    for master in [0, 1] {
        let mut p = on_cluster(split_for_own_key_on(master));
        assert_eq!(p.key_link("g:p1"), Some(Link::Master(master)));
        assert_eq!(p.members(), ["g:p1"], "every master scanned, the key read where it lives");
        assert!(!p.position().blind);
        // The next tick: the heartbeat on its owner, a SCAN on each master, the map again.
        let now = Millis(0) + HEARTBEAT_INTERVAL;
        p.handle_timeout(now, unix(now));
        let sent = drive_masters(&mut p, now);
        let beats: Vec<Link> = sent
            .iter()
            .filter(|(_, c)| matches!(c, Command::Set { .. }))
            .map(|(l, _)| *l)
            .collect();
        assert_eq!(beats, [Link::Master(master)]);
        let scans = sent.iter().filter(|(_, c)| matches!(c, Command::Scan { .. })).count();
        assert_eq!(scans, 2);
        assert_eq!(commands(&mut p, Link::Command), [Command::ClusterSlots]);
    }
}

#[test]
fn publishes_go_on_the_command_link_in_cluster_mode() {
    let mut p = on_cluster(split_for_own_key_on(0));
    p.publish("silences:1", b"x", false).expect("room");
    let cmds = commands(&mut p, Link::Command);
    assert!(
        matches!(&cmds[..], [Command::Publish { channel, .. }] if channel == "g:silences:1"),
        "{cmds:?}"
    );
    assert!(commands(&mut p, Link::Master(0)).is_empty());
}

#[test]
fn moved_points_the_slot_at_the_new_master_and_sends_again() {
    let mut p = on_cluster(split_for_own_key_on(0));
    let now = Millis(0) + HEARTBEAT_INTERVAL;
    p.handle_timeout(now, unix(now));
    let cmds = commands(&mut p, Link::Master(0));
    assert!(matches!(cmds[0], Command::Set { .. }), "{cmds:?}");
    let s = slot("g:p1");
    p.handle_value(now, unix(now), Link::Master(0), server_error(&format!("MOVED {s} {M1}")));
    assert_eq!(p.key_link("g:p1"), Some(Link::Master(1)), "the slot now lives on M1");
    let again = keyed(commands(&mut p, Link::Master(1)));
    assert!(matches!(&again[..], [Command::Set { key, .. }] if key == "g:p1"), "{again:?}");
    assert_eq!(p.stats().redirects, 1);
    // The map is asked again, and what it says wins.
    assert!(commands(&mut p, Link::Command).contains(&Command::ClusterSlots));
}

#[test]
fn ask_sends_asking_then_the_command_there_and_leaves_the_map() {
    let mut p = on_cluster(split_for_own_key_on(0));
    let now = Millis(0) + HEARTBEAT_INTERVAL;
    p.handle_timeout(now, unix(now));
    commands(&mut p, Link::Master(0));
    let s = slot("g:p1");
    p.handle_value(now, unix(now), Link::Master(0), server_error(&format!("ASK {s} {M1}")));
    let again = keyed(commands(&mut p, Link::Master(1)));
    assert!(
        matches!(&again[..], [Command::Asking, Command::Set { key, .. }] if key == "g:p1"),
        "{again:?}"
    );
    assert_eq!(p.key_link("g:p1"), Some(Link::Master(0)), "ASK moves one command, not the slot");
}

#[test]
fn a_lost_master_is_retried_and_dropped_when_the_map_no_longer_names_it() {
    let mut p = on_cluster(split_for_own_key_on(0));
    let now = Millis(100);
    p.handle_disconnected(now, unix(now), Link::Master(1), LinkFailure::Closed, "reset");
    assert!(matches!(&events(&mut p)[..], [RedisEvent::Failure { link: Link::Master(1), .. }]));
    assert_eq!(p.stats().link_failures[LinkFailure::Closed.index()], 1);
    // The map is asked at once; the surviving master took every slot.
    assert_eq!(commands(&mut p, Link::Command), [Command::ClusterSlots]);
    p.handle_value(now, unix(now), Link::Command, slot_map(None));
    assert_eq!(p.target(Link::Master(1)), None, "M1 left the map");
    assert_eq!(p.key_link("g:p3"), Some(Link::Master(0)));
    // Membership reads resume on the masters left.
    let later = Millis(0) + HEARTBEAT_INTERVAL;
    p.handle_timeout(later, unix(later));
    let sent = drive_masters(&mut p, later);
    assert!(sent.iter().all(|(l, _)| *l == Link::Master(0)), "{sent:?}");
    assert_eq!(p.members(), ["g:p1"]);
    assert!(links(&mut p).is_empty(), "no reconnect to a master that is gone");
}

#[test]
fn a_master_link_down_keeps_membership_reads_from_starting_half_blind() {
    let mut p = on_cluster(split_for_own_key_on(1));
    let now = Millis(100);
    p.handle_disconnected(now, unix(now), Link::Master(0), LinkFailure::Closed, "reset");
    events(&mut p);
    let later = Millis(0) + HEARTBEAT_INTERVAL;
    p.handle_timeout(later, unix(later));
    let sent = drive_masters(&mut p, later);
    assert!(
        !sent.iter().any(|(_, c)| matches!(c, Command::Scan { .. })),
        "a read of one master of two would drop members: {sent:?}"
    );
    // The master comes back after its backoff.
    let retry = p.poll_timeout().expect("a retry is due");
    p.handle_timeout(retry, unix(retry));
    assert!(links(&mut p).contains(&LinkAction::Open(Link::Master(0))));
}
