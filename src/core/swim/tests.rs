//! Rule-level tests: one core, messages injected as a peer would send them.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::core::wire::{
    Dead, IndirectPing, NodeStateKind, Ping, PushNodeState, PushPull, StreamFrame, StreamMessage,
    Suspect, Vsn,
};

const SEC: Duration = Duration::from_secs(1);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 9094)
}

fn ip(i: u8) -> [u8; 4] {
    [10, 0, 0, i]
}

fn config(name: &str, i: u8) -> SwimConfig {
    SwimConfig::lan(name.into(), addr(i))
}

/// Node "a" at 10.0.0.1, with periodic push/pull off so only the events under test happen.
fn node_a() -> Swim {
    let config = SwimConfig { push_pull_interval: Duration::ZERO, ..config("a", 1) };
    let mut s = Swim::new(config, (), 7, Millis(0)).expect("valid config");
    drain_events(&mut s);
    s
}

fn packet(msg: Message<'_>) -> Vec<u8> {
    let mut plain = Vec::new();
    msg.encode(IntEncoding::Signed, &mut plain);
    let mut out = Vec::new();
    Codec::default().seal_packet(&plain, false, &mut out);
    out
}

use crate::core::wire::IntEncoding;

fn alive(name: &str, i: u8, inc: u32, meta: &[u8]) -> Vec<u8> {
    let ip = ip(i);
    packet(Message::Alive(Alive {
        addr: Some(&ip),
        incarnation: inc,
        meta: Some(meta),
        node: name,
        port: 9094,
        vsn: Some(Vsn::ALERTMANAGER),
    }))
}

fn suspect(name: &str, inc: u32, from: &str) -> Vec<u8> {
    packet(Message::Suspect(Suspect { from, incarnation: inc, node: name }))
}

fn dead(name: &str, inc: u32, from: &str) -> Vec<u8> {
    packet(Message::Dead(Dead { from, incarnation: inc, node: name }))
}

fn feed(s: &mut Swim, now: u64, from: u8, bytes: &[u8]) {
    s.handle_packet(Millis(now), addr(from), bytes).expect("test packets decode");
}

/// Introduce members b, c, … at incarnation 1.
fn with_members(s: &mut Swim, names: &[(&str, u8)]) {
    for (name, i) in names {
        feed(s, 0, *i, &alive(name, *i, 1, b""));
    }
    drain_events(s);
    drain_transmits(s);
}

fn drain_events(s: &mut Swim) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn drain_transmits(s: &mut Swim) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

/// A one-line summary of each message in a datagram.
fn describe(t: &Transmit) -> Vec<String> {
    let mut out = Vec::new();
    Codec::default()
        .decode_packet(&t.bytes, &mut |m| {
            out.push(match m {
                Message::Ping(p) => format!("ping {} seq={}", p.node, p.seq_no),
                Message::IndirectPing(p) => {
                    format!("indirect {} seq={} nack={}", p.node, p.seq_no, p.nack)
                }
                Message::Ack(a) => format!("ack seq={} payload={:?}", a.seq_no, a.payload),
                Message::Nack(n) => format!("nack seq={}", n.seq_no),
                Message::Suspect(x) => {
                    format!("suspect {} {} from {}", x.node, x.incarnation, x.from)
                }
                Message::Alive(x) => format!("alive {} {}", x.node, x.incarnation),
                Message::Dead(x) => format!("dead {} {} from {}", x.node, x.incarnation, x.from),
                Message::User(u) => format!("user {}", String::from_utf8_lossy(u)),
            });
        })
        .expect("our packets decode");
    out
}

fn sent(s: &mut Swim) -> Vec<(SocketAddr, String)> {
    drain_transmits(s)
        .iter()
        .flat_map(|t| describe(t).into_iter().map(move |d| (t.to, d)))
        .collect()
}

/// Run timers up to `until`, one millisecond at a time where it matters.
fn run(s: &mut Swim, from: u64, until: u64) -> Vec<(SocketAddr, String)> {
    let mut out = Vec::new();
    let mut now = from;
    while now <= until {
        s.handle_timeout(Millis(now));
        out.extend(sent(s));
        let next = s.poll_timeout().expect("always a next timer").0;
        now = next.max(now + 1);
    }
    out
}

fn state(s: &Swim, name: &str) -> Option<MemberState> {
    s.member(name).map(|m| m.state)
}

#[test]
fn starts_alive_at_incarnation_one() {
    let mut s = Swim::new(config("a", 1), (), 1, Millis(0)).expect("valid");
    assert_eq!(s.local().incarnation, Incarnation(1));
    assert_eq!(s.local().state, MemberState::Alive);
    assert_eq!(s.local().vsn, Vsn::ALERTMANAGER);
    let events = drain_events(&mut s);
    assert!(
        matches!(&events[..], [Event::Member { change: MemberChange::Joined, member }] if member.name.as_str() == "a")
    );
}

#[test]
fn alive_adds_a_member_and_is_regossiped() {
    let mut s = node_a();
    feed(&mut s, 0, 2, &alive("b", 2, 1, b""));
    assert_eq!(state(&s, "b"), Some(MemberState::Alive));
    let events = drain_events(&mut s);
    assert!(
        matches!(&events[..], [Event::Member { change: MemberChange::Joined, member }] if member.addr == addr(2))
    );
    let gossip = run(&mut s, 0, 250);
    assert!(gossip.contains(&(addr(2), "alive b 1".into())), "{gossip:?}");
}

#[test]
fn alive_needs_a_strictly_greater_incarnation() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &alive("b", 2, 1, b"new"));
    assert_eq!(s.member("b").expect("known").meta, b"");
    feed(&mut s, 0, 2, &alive("b", 2, 2, b"new"));
    assert_eq!(s.member("b").expect("known").meta, b"new");
    let events = drain_events(&mut s);
    assert!(matches!(&events[..], [Event::Member { change: MemberChange::Updated, .. }]));
}

#[test]
fn alive_without_a_full_vsn_is_ignored() {
    let mut s = node_a();
    let ip = ip(2);
    let short = packet(Message::Alive(Alive {
        addr: Some(&ip),
        incarnation: 1,
        meta: None,
        node: "b",
        port: 9094,
        vsn: None,
    }));
    feed(&mut s, 0, 2, &short);
    assert_eq!(state(&s, "b"), None);
    assert_eq!(s.stats().messages_ignored, 1);
}

#[test]
fn alive_at_incarnation_zero_leaves_no_phantom() {
    let mut s = node_a();
    feed(&mut s, 0, 2, &alive("b", 2, 0, b""));
    assert_eq!(state(&s, "b"), None);
    assert_eq!(s.members().count(), 1);
}

#[test]
fn another_address_for_a_live_name_is_a_conflict() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 3, &alive("b", 3, 5, b""));
    assert_eq!(s.member("b").expect("known").addr, addr(2));
    assert_eq!(s.stats().conflicts, 1);
    let events = drain_events(&mut s);
    assert!(matches!(&events[..], [Event::Conflict { other, .. }] if *other == addr(3)));
}

#[test]
fn a_left_name_can_move_to_another_address() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &dead("b", 1, "b"));
    feed(&mut s, 0, 3, &alive("b", 3, 1, b""));
    let b = s.member("b").expect("known");
    assert_eq!((b.addr, b.state), (addr(3), MemberState::Alive));
}

#[test]
fn a_dead_name_is_reclaimable_only_when_configured() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &dead("b", 1, "c"));
    feed(&mut s, 5_000, 3, &alive("b", 3, 2, b""));
    assert_eq!(s.member("b").expect("known").addr, addr(2), "DeadNodeReclaimTime 0 means never");

    let config = SwimConfig { dead_node_reclaim: SEC, ..config("a", 1) };
    let mut s = Swim::new(config, (), 7, Millis(0)).expect("valid");
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &dead("b", 1, "c"));
    feed(&mut s, 5_000, 3, &alive("b", 3, 1, b""));
    assert_eq!(
        s.member("b").expect("known").addr,
        addr(3),
        "same incarnation is enough to reclaim"
    );
}

#[test]
fn an_unrefuted_suspicion_becomes_death() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 3, &suspect("b", 1, "c"));
    assert_eq!(state(&s, "b"), Some(MemberState::Suspect));
    // Two members: no confirmations are expected, so the timeout is the minimum, 4 s.
    let before = run(&mut s, 1, 3_999);
    assert_eq!(state(&s, "b"), Some(MemberState::Suspect));
    assert!(before.iter().any(|(_, d)| d == "suspect b 1 from c"), "suspicion is re-gossiped");
    run(&mut s, 4_000, 4_000);
    assert_eq!(state(&s, "b"), Some(MemberState::Dead));
    let events = drain_events(&mut s);
    assert!(events.iter().any(|e| matches!(e, Event::Member { change: MemberChange::Failed, .. })));
}

#[test]
fn a_refuting_alive_cancels_the_suspicion() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 3, &suspect("b", 1, "c"));
    feed(&mut s, 100, 2, &alive("b", 2, 2, b""));
    assert_eq!(state(&s, "b"), Some(MemberState::Alive));
    assert!(!s.suspicions.contains_key("b"));
    // The cancelled 4 s timer must not fire. (Our own probes of the silent "b" may start a new
    // suspicion meanwhile, but that one cannot expire before 5 s.)
    run(&mut s, 101, 4_500);
    assert_ne!(state(&s, "b"), Some(MemberState::Dead));
    assert!(
        !drain_events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::Member { change: MemberChange::Failed, .. }))
    );
}

#[test]
fn stale_suspicions_are_ignored() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &alive("b", 2, 3, b""));
    feed(&mut s, 0, 3, &suspect("b", 2, "c"));
    assert_eq!(state(&s, "b"), Some(MemberState::Alive));
    feed(&mut s, 0, 3, &suspect("b", 3, "c"));
    assert_eq!(state(&s, "b"), Some(MemberState::Suspect), "an equal incarnation is enough");
}

#[test]
fn confirmations_shorten_the_suspicion() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)]);
    // Six members: k = 2, min 4 s, max 24 s.
    feed(&mut s, 0, 3, &suspect("b", 1, "c"));
    assert_eq!(s.suspicions["b"].deadline, Millis(24_000));
    feed(&mut s, 10, 4, &suspect("b", 1, "c"));
    assert_eq!(s.suspicions["b"].deadline, Millis(24_000), "the first accuser does not confirm");
    feed(&mut s, 10, 4, &suspect("b", 1, "d"));
    assert_eq!(s.suspicions["b"].deadline, Millis(11_381));
    feed(&mut s, 20, 5, &suspect("b", 1, "e"));
    assert_eq!(s.suspicions["b"].deadline, Millis(4_000));
    run(&mut s, 21, 4_000);
    assert_eq!(state(&s, "b"), Some(MemberState::Dead));
}

#[test]
fn suspicion_about_ourselves_is_refuted_with_a_higher_incarnation() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &suspect("a", 5, "b"));
    assert_eq!(s.local().incarnation, Incarnation(6));
    assert_eq!(s.local().state, MemberState::Alive);
    assert_eq!(s.health_score(), 1);
    let out = run(&mut s, 1, 250);
    assert!(out.contains(&(addr(2), "alive a 6".into())), "{out:?}");
    feed(&mut s, 300, 2, &dead("a", 2, "b"));
    assert_eq!(s.local().incarnation, Incarnation(6), "an accusation older than us is ignored");
    feed(&mut s, 300, 2, &dead("a", 6, "b"));
    assert_eq!(s.local().incarnation, Incarnation(7), "own + 1 beats an equal accusation");
}

#[test]
fn a_dead_message_from_the_node_itself_means_it_left() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    feed(&mut s, 0, 2, &dead("b", 1, "b"));
    assert_eq!(state(&s, "b"), Some(MemberState::Left));
    let events = drain_events(&mut s);
    assert!(matches!(&events[..], [Event::Member { change: MemberChange::Left, .. }]));
    feed(&mut s, 0, 2, &alive("b", 2, 2, b""));
    let events = drain_events(&mut s);
    assert!(matches!(&events[..], [Event::Member { change: MemberChange::Joined, .. }]));
}

#[test]
fn leave_is_gossiped_then_reported_complete() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    s.leave(Millis(0));
    assert_eq!(s.local().state, MemberState::Left);
    assert!(
        drain_events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::Member { change: MemberChange::Left, .. }))
    );
    let out = run(&mut s, 0, 2_000);
    let sends = out.iter().filter(|(_, d)| d == "dead a 1 from a").count();
    // Two members: retransmit limit 4 × ceil(log10 3) = 4.
    assert_eq!(sends, 4, "{out:?}");
    assert!(drain_events(&mut s).contains(&Event::LeaveComplete));
    feed(&mut s, 2_000, 2, &suspect("a", 1, "b"));
    assert_eq!(s.local().state, MemberState::Left, "a node that left does not refute");
}

#[test]
fn leave_alone_completes_at_once() {
    let mut s = node_a();
    s.leave(Millis(0));
    assert!(drain_events(&mut s).contains(&Event::LeaveComplete));
}

#[test]
fn probe_escalates_to_indirect_and_tcp_then_suspects() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2), ("c", 3), ("d", 4)]);
    let probe_at = s.next_probe.0;
    let out = run(&mut s, 0, probe_at);
    let (target, ping) = out.iter().find(|(_, d)| d.starts_with("ping")).expect("a ping").clone();
    let seq: u32 = ping.rsplit('=').next().and_then(|n| n.parse().ok()).expect("seq");
    let out = run(&mut s, probe_at + 1, probe_at + 500);
    let indirect: Vec<_> = out.iter().filter(|(_, d)| d.starts_with("indirect")).collect();
    assert_eq!(indirect.len(), 2, "three indirect checks, but only two other members: {out:?}");
    assert!(indirect.iter().all(|(to, d)| *to != target && d.ends_with("nack=true")));
    let tcp = s.poll_stream().expect("a TCP fallback ping");
    assert_eq!((tcp.to, tcp.expect_reply, tcp.deadline), (target, true, Millis(probe_at + 1000)));
    // One of the two helpers nacks: one nack missing → awareness +1.
    let nack = packet(Message::Nack(crate::core::wire::Nack { seq_no: seq }));
    feed(&mut s, probe_at + 600, 3, &nack);
    run(&mut s, probe_at + 501, probe_at + 1000);
    let target_name = s.members().find(|m| m.addr == target).expect("target").name.clone();
    assert_eq!(state(&s, target_name.as_str()), Some(MemberState::Suspect));
    assert_eq!(s.health_score(), 1);
    assert_eq!(s.stats().probes_failed, 1);
}

#[test]
fn an_ack_ends_the_probe() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2)]);
    let probe_at = s.next_probe.0;
    let out = run(&mut s, 0, probe_at);
    let ping = out.iter().find(|(_, d)| d.starts_with("ping b")).expect("b is probed");
    let seq: u32 = ping.1.rsplit('=').next().and_then(|n| n.parse().ok()).expect("seq");
    let ack = packet(Message::Ack(crate::core::wire::Ack { payload: None, seq_no: seq }));
    feed(&mut s, probe_at + 700, 2, &ack);
    run(&mut s, probe_at + 701, probe_at + 999);
    assert_eq!(state(&s, "b"), Some(MemberState::Alive));
    assert_eq!(s.stats().probes_failed, 0);
}

#[test]
fn pings_for_someone_else_are_dropped_and_ours_answered_at_the_source() {
    let mut s = node_a();
    let src = ip(9);
    let mine = packet(Message::Ping(Ping {
        node: "a",
        seq_no: 42,
        source_addr: &src,
        source_node: "z",
        source_port: 7000,
    }));
    let other = packet(Message::Ping(Ping { node: "q", seq_no: 43, ..Ping::default() }));
    feed(&mut s, 0, 2, &other);
    assert!(sent(&mut s).is_empty());
    feed(&mut s, 0, 2, &mine);
    let out = sent(&mut s);
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 7000);
    // Alertmanager's ack payload is empty but not nil; queued gossip may ride along.
    assert_eq!(out[0], (to, "ack seq=42 payload=Some([])".to_string()));
    assert!(out.iter().all(|(dest, _)| *dest == to));
}

#[test]
fn indirect_probes_are_relayed_with_the_requesters_sequence() {
    let mut s = node_a();
    with_members(&mut s, &[("b", 2), ("c", 3)]);
    let (target, requester) = (ip(2), ip(3));
    let req = |seq| {
        packet(Message::IndirectPing(IndirectPing {
            nack: true,
            node: "b",
            port: 9094,
            seq_no: seq,
            source_addr: &requester,
            source_node: "c",
            source_port: 9094,
            target: &target,
        }))
    };
    feed(&mut s, 0, 3, &req(77));
    let out = sent(&mut s);
    let ping = out.iter().find(|(to, _)| *to == addr(2)).expect("ping to b");
    let seq: u32 = ping.1.rsplit('=').next().and_then(|n| n.parse().ok()).expect("seq");
    feed(
        &mut s,
        10,
        2,
        &packet(Message::Ack(crate::core::wire::Ack { payload: None, seq_no: seq })),
    );
    assert!(sent(&mut s).contains(&(addr(3), "ack seq=77 payload=None".into())));
    // No answer this time: a nack after the probe timeout.
    feed(&mut s, 100, 3, &req(78));
    sent(&mut s);
    let out = run(&mut s, 101, 600);
    assert!(out.contains(&(addr(3), "nack seq=78".into())), "{out:?}");
}

#[test]
fn relays_are_bounded() {
    let mut s = node_a();
    let target = ip(2);
    for seq in 0..300 {
        let req = packet(Message::IndirectPing(IndirectPing {
            node: "b",
            port: 9094,
            seq_no: seq,
            target: &target,
            ..IndirectPing::default()
        }));
        feed(&mut s, 0, 3, &req);
    }
    assert_eq!(s.stats().relays_refused, 300 - MAX_RELAYS as u64);
}

#[test]
fn members_are_bounded() {
    let config = SwimConfig { max_members: 3, ..config("a", 1) };
    let mut s = Swim::new(config, (), 7, Millis(0)).expect("valid");
    for (name, i) in [("b", 2), ("c", 3), ("d", 4)] {
        feed(&mut s, 0, i, &alive(name, i, 1, b""));
    }
    assert_eq!(s.members().count(), 3);
    assert_eq!(s.stats().members_refused, 1);
}

fn frame(codec: &Codec, bytes: &[u8], inbound: bool) -> usize {
    match codec.stream_frame(bytes, inbound).expect("valid stream") {
        StreamFrame::Complete { len } => len,
        StreamFrame::Incomplete { .. } => panic!("incomplete"),
    }
}

#[test]
fn a_tcp_ping_is_answered_with_a_nil_payload_ack() {
    let mut s = node_a();
    let codec = Codec::default();
    let mut plain = Vec::new();
    StreamMessage::Ping(Ping { node: "a", seq_no: 9, ..Ping::default() })
        .encode(IntEncoding::Signed, &mut plain);
    let mut req = Vec::new();
    codec.seal_stream(&plain, true, &mut req);
    let reply = s.handle_stream(Millis(0), addr(2), &req).expect("decodes").expect("a reply");
    let len = frame(&codec, &reply, false);
    let got = codec.decode_stream(&reply[..len], false, |m| format!("{m:?}")).expect("decodes");
    assert_eq!(
        got,
        format!("{:?}", StreamMessage::Ack(crate::core::wire::Ack { payload: None, seq_no: 9 }))
    );
}

fn push_node(
    name: &str,
    i: u8,
    inc: u32,
    state: NodeStateKind,
    vsn: Vsn,
) -> (String, [u8; 4], u32, NodeStateKind, Vsn) {
    (name.to_owned(), ip(i), inc, state, vsn)
}

fn push_pull_request(nodes: &[(String, [u8; 4], u32, NodeStateKind, Vsn)], join: bool) -> Vec<u8> {
    let entries = nodes
        .iter()
        .map(|(name, ip, inc, state, vsn)| PushNodeState {
            addr: Some(ip),
            incarnation: *inc,
            meta: None,
            name,
            port: 9094,
            state: *state,
            vsn: Some(*vsn),
        })
        .collect();
    let mut plain = Vec::new();
    StreamMessage::PushPull(PushPull { join, nodes: entries, user_state: b"" })
        .encode(IntEncoding::Signed, &mut plain);
    let mut out = Vec::new();
    Codec::default().seal_stream(&plain, true, &mut out);
    out
}

#[test]
fn push_pull_merges_and_answers_with_our_state() {
    let mut s = node_a();
    with_members(&mut s, &[("c", 3), ("d", 4)]);
    let am = Vsn::ALERTMANAGER;
    let req = push_pull_request(
        &[
            push_node("b", 2, 1, NodeStateKind::Alive, am),
            push_node("c", 3, 1, NodeStateKind::Dead, am),
            push_node("d", 4, 1, NodeStateKind::Left, am),
        ],
        true,
    );
    let reply = s.handle_stream(Millis(0), addr(2), &req).expect("decodes").expect("a reply");
    assert_eq!(state(&s, "b"), Some(MemberState::Alive));
    assert_eq!(state(&s, "c"), Some(MemberState::Suspect), "a remote death is only a suspicion");
    assert_eq!(state(&s, "d"), Some(MemberState::Left));
    let codec = Codec::default();
    let len = frame(&codec, &reply, false);
    let names = codec
        .decode_stream(&reply[..len], false, |m| match m {
            StreamMessage::PushPull(pp) => {
                assert!(pp.join, "the reply echoes the join flag");
                pp.nodes.iter().map(|n| n.name.to_owned()).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        })
        .expect("decodes");
    assert_eq!(names.len(), 3, "the reply was built before the merge: a, c, d");
}

#[test]
fn push_pull_with_incompatible_delegate_versions_is_refused() {
    let mut s = node_a();
    let req = push_pull_request(
        &[push_node("b", 2, 1, NodeStateKind::Alive, Vsn([1, 5, 2, 1, 1, 1]))],
        false,
    );
    s.handle_stream(Millis(0), addr(2), &req).expect("decodes");
    assert_eq!(state(&s, "b"), None);
    assert_eq!(s.stats().push_pull_incompatible, 1);
}

#[test]
fn join_reports_its_outcome() {
    let mut s = node_a();
    assert!(s.join(Millis(0), &[addr(2), addr(3)]).is_empty());
    let first = s.poll_stream().expect("push/pull to b");
    let second = s.poll_stream().expect("push/pull to c");
    assert!(first.expect_reply && first.deadline == Millis(10_000));
    let reply =
        push_pull_request(&[push_node("b", 2, 1, NodeStateKind::Alive, Vsn::ALERTMANAGER)], true);
    // A reply carries no label header; the request framing is the same otherwise.
    s.handle_stream_reply(Millis(5), first.id, Ok(&reply));
    s.handle_stream_reply(Millis(5), second.id, Err(StreamFailure::Connect));
    let events = drain_events(&mut s);
    assert!(events.contains(&Event::PushPull { peer: addr(2), join: true, result: Ok(()) }));
    assert!(events.contains(&Event::PushPull {
        peer: addr(3),
        join: true,
        result: Err(StreamFailure::Connect)
    }));
    assert_eq!(state(&s, "b"), Some(MemberState::Alive));
}

#[test]
fn abandoned_streams_are_reported_after_their_deadline() {
    let mut s = node_a();
    s.join(Millis(0), &[addr(2)]);
    s.poll_stream().expect("push/pull");
    run(&mut s, 0, 11_500);
    assert!(drain_events(&mut s).contains(&Event::PushPull {
        peer: addr(2),
        join: true,
        result: Err(StreamFailure::Timeout)
    }));
    assert_eq!(s.stats().streams_abandoned, 1);
}

#[derive(Default)]
struct Recorder(Vec<Vec<u8>>);

impl Delegate for Recorder {
    fn notify_msg(&mut self, _now: Millis, msg: &[u8]) {
        self.0.push(msg.to_vec());
    }
}

#[test]
fn user_broadcasts_ride_gossip_and_reach_the_delegate() {
    let mut a = node_a();
    with_members(&mut a, &[("b", 2)]);
    a.broadcast(b"hello".to_vec()).expect("room");
    let out: Vec<Transmit> = {
        run(&mut a, 0, 0);
        let mut out = Vec::new();
        for now in (0..400).step_by(10) {
            a.handle_timeout(Millis(now));
            out.extend(drain_transmits(&mut a));
        }
        out
    };
    let carrying =
        out.iter().find(|t| describe(t).contains(&"user hello".to_string())).expect("gossiped");
    let mut b = Swim::new(config("b", 2), Recorder::default(), 3, Millis(0)).expect("valid");
    b.handle_packet(Millis(0), addr(1), &carrying.bytes).expect("decodes");
    assert_eq!(b.delegate().0, vec![b"hello".to_vec()]);
}

#[test]
fn the_same_seed_and_inputs_give_the_same_outputs() {
    let run_once = || {
        let mut s = node_a();
        with_members(&mut s, &[("b", 2), ("c", 3), ("d", 4)]);
        run(&mut s, 0, 10_000)
    };
    assert_eq!(run_once(), run_once());
}

#[test]
fn full_packets_of_fresh_broadcasts_go_out_at_once_and_partial_ones_after_the_linger() {
    let mut a = node_a();
    with_members(&mut a, &[("b", 2), ("c", 3)]);
    run(&mut a, 0, 0);
    let t = a.next_gossip.0.saturating_sub(100).max(1);
    a.handle_timeout(Millis(t));
    drain_transmits(&mut a);
    for i in 0..7u8 {
        a.broadcast(vec![i; 200]).expect("room");
    }
    // Six 203-byte messages fill a 1,400-byte packet: due now, not at the next gossip round.
    assert_eq!(a.poll_timeout(), Some(Millis(t)));
    a.handle_timeout(Millis(t));
    let out = drain_transmits(&mut a);
    assert_eq!(out.len(), 2, "one packet to each of the two peers");
    assert!(out.iter().all(|p| describe(p).len() == 6));
    assert_eq!(out[0].bytes, out[1].bytes, "sealed once, sent to both");
    // The seventh waits for the 1 ms linger.
    assert_eq!(a.poll_timeout(), Some(Millis(t + 1)));
    a.handle_timeout(Millis(t + 1));
    let out = drain_transmits(&mut a);
    assert_eq!(out.len(), 2);
    // Fresh messages go oldest first: the seventh queued is the one left for the linger.
    assert!(
        out.iter()
            .all(|p| describe(p) == vec![format!("user {}", String::from_utf8_lossy(&[6; 200]))])
    );
}

#[test]
fn without_linger_broadcasts_wait_for_the_gossip_round() {
    let config =
        SwimConfig { broadcast_linger: None, push_pull_interval: Duration::ZERO, ..config("a", 1) };
    let mut a = Swim::new(config, (), 7, Millis(0)).expect("valid");
    with_members(&mut a, &[("b", 2)]);
    run(&mut a, 0, 0);
    let next_gossip = a.next_gossip;
    for i in 0..7u8 {
        a.broadcast(vec![i; 200]).expect("room");
    }
    assert!(a.poll_timeout().is_some_and(|t| t > Millis(0)));
    a.handle_timeout(Millis(1));
    assert!(drain_transmits(&mut a).is_empty());
    a.handle_timeout(next_gossip);
    assert!(!drain_transmits(&mut a).is_empty());
}

#[test]
fn broadcasts_that_cannot_fit_a_packet_are_refused() {
    let mut a = node_a();
    // 1,400-byte packets less the 2-byte compound header leave 1,398: a user message costs 3
    // more (compound length and type byte).
    assert_eq!(a.broadcast(vec![0; 1396]), Err(BroadcastError::TooLarge { len: 1396, max: 1395 }));
    a.broadcast(vec![0; 1395]).expect("fits exactly");
}

/// An encrypting member: `keys` in its ring, its own nonce seed.
fn encrypted_node(name: &str, i: u8, keys: &[SecretKey]) -> Swim {
    let config = SwimConfig {
        push_pull_interval: Duration::ZERO,
        secret_keys: keys.to_vec(),
        ..config(name, i)
    };
    let mut s = Swim::with_nonce_seed(config, (), 7, [i; 32], Millis(0)).expect("valid");
    drain_events(&mut s);
    s
}

use crate::core::wire::SecretKey;

#[test]
fn encrypted_members_talk_and_others_are_dropped_and_counted() {
    let k1 = SecretKey::new(vec![1; 16]).unwrap();
    let k2 = SecretKey::new(vec![2; 32]).unwrap();
    let config = SwimConfig { secret_keys: vec![k1.clone()], ..config("a", 1) };
    assert!(Swim::new(config, (), 7, Millis(0)).is_err(), "needs a nonce seed");

    let mut a = encrypted_node("a", 1, std::slice::from_ref(&k1));
    let b = encrypted_node("b", 2, std::slice::from_ref(&k1));
    let c = encrypted_node("c", 3, std::slice::from_ref(&k2));
    // Encryption is reserved in the gossip budget (memberlist `encryptOverhead`, version 1).
    assert_eq!(a.gossip_budget(), node_a().gossip_budget() - 29);

    // b's alive, sealed with k1, is understood by a; c's, sealed with k2, is dropped.
    let seal = |s: &Swim, name: &str, i: u8| {
        let ip = ip(i);
        let mut plain = Vec::new();
        let vsn = Some(Vsn::ALERTMANAGER);
        let alive =
            Alive { addr: Some(&ip), incarnation: 1, meta: None, node: name, port: 9094, vsn };
        Message::Alive(alive).encode(IntEncoding::Signed, &mut plain);
        let mut out = Vec::new();
        s.codec().seal_packet(&plain, true, &mut out);
        out
    };
    let from_b = seal(&b, "b", 2);
    let from_c = seal(&c, "c", 3);
    assert!(Codec::default().decode_packet(&from_b, &mut |_| {}).is_err(), "sealed");
    a.handle_packet(Millis(1_000), addr(2), &from_b).expect("same key opens");
    for _ in 0..3 {
        let got = a.handle_packet(Millis(1_000), addr(3), &from_c);
        assert!(matches!(got, Err(WireError::Decrypt(_))), "{got:?}");
    }
    assert_eq!(state(&a, "b"), Some(MemberState::Alive));
    assert_eq!(state(&a, "c"), None);
    let stats = a.stats();
    assert_eq!((stats.packets_undecryptable, stats.packets_rejected), (3, 3));
    assert_eq!(stats.packets_rejected_by[RejectReason::Encryption.index()], 3);
    assert_eq!(stats.packets_rejected_by.iter().sum::<u64>(), 3, "one reason each");
    // The latest refusal, once, for the host's log line.
    let last = a.take_last_rejection().expect("a refusal");
    assert_eq!((last.what, last.from), ("packet", Some(addr(3))));
    assert!(matches!(last.error, WireError::Decrypt(_)));
    assert_eq!(a.take_last_rejection(), None);

    // Rotation through the shared handle: after a adds k2, c's packets open.
    a.keyring().expect("encrypting").add_key(k2).unwrap();
    a.handle_packet(Millis(1_001), addr(3), &from_c).expect("k2 is installed now");
    assert_eq!(state(&a, "c"), Some(MemberState::Alive));
}
