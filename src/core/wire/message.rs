//! One struct per memberlist message, with bodies encoded exactly as go-msgpack writes them.
//!
//! Structs borrow from the input buffer (`'a`), so decoding a packet allocates nothing for
//! names, addresses or user payloads. Keys are listed here in the order Go emits them
//! (byte-sorted field names); see spec §4.

use super::msgpack::{
    Reader, write_bool, write_go_int, write_map_len, write_nil, write_opt_raw, write_raw,
    write_uint,
};
use super::{IntEncoding, WireError};

/// memberlist `messageType` (a `uint8`, append-only upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// `pingMsg`
    Ping = 0,
    /// `indirectPingMsg`
    IndirectPing = 1,
    /// `ackRespMsg`
    Ack = 2,
    /// `suspectMsg`
    Suspect = 3,
    /// `aliveMsg`
    Alive = 4,
    /// `deadMsg`
    Dead = 5,
    /// `pushPullMsg` (TCP only)
    PushPull = 6,
    /// `compoundMsg`
    Compound = 7,
    /// `userMsg`
    User = 8,
    /// `compressMsg`
    Compress = 9,
    /// `encryptMsg` (TCP only; encrypted UDP packets carry no type byte)
    Encrypt = 10,
    /// `nackRespMsg`
    Nack = 11,
    /// `hasCrcMsg` (top level of a UDP packet only)
    HasCrc = 12,
    /// `errMsg` (TCP, responder to initiator)
    Err = 13,
}

impl MessageType {
    /// The type for a type byte, if it is one of 0–13.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Ping,
            1 => Self::IndirectPing,
            2 => Self::Ack,
            3 => Self::Suspect,
            4 => Self::Alive,
            5 => Self::Dead,
            6 => Self::PushPull,
            7 => Self::Compound,
            8 => Self::User,
            9 => Self::Compress,
            10 => Self::Encrypt,
            11 => Self::Nack,
            12 => Self::HasCrc,
            13 => Self::Err,
            _ => return None,
        })
    }
}

/// The six protocol/delegate version bytes every `alive` and push/pull node carries:
/// `[PMin, PMax, PCur, DMin, DMax, DCur]`. Always exactly six on the wire (a 1–5 byte `Vsn`
/// crashes every released Go version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vsn(pub [u8; 6]);

impl Vsn {
    /// What Alertmanager and Grafana advertise: protocol 1..=5, current 2; delegate 0/0/0.
    pub const ALERTMANAGER: Vsn = Vsn([1, 5, 2, 0, 0, 0]);

    /// Lowest protocol version the node speaks.
    pub fn protocol_min(self) -> u8 {
        self.0[0]
    }
    /// Highest protocol version the node speaks (capability gates: ≥3 TCP ping, ≥4 nack, ≥5 CRC).
    pub fn protocol_max(self) -> u8 {
        self.0[1]
    }
    /// Protocol version the node currently uses.
    pub fn protocol_cur(self) -> u8 {
        self.0[2]
    }
    /// Lowest delegate version.
    pub fn delegate_min(self) -> u8 {
        self.0[3]
    }
    /// Highest delegate version.
    pub fn delegate_max(self) -> u8 {
        self.0[4]
    }
    /// Current delegate version.
    pub fn delegate_cur(self) -> u8 {
        self.0[5]
    }
}

/// A `[]byte` field as Go holds it: `None` is a nil slice (`c0` on the wire), `Some(&[])` an
/// empty one (`a0`). Go treats both alike on receipt; we keep the difference so that what we
/// originate is byte-identical to Go's.
pub type Raw<'a> = Option<&'a [u8]>;

/// `ping` (type 0): direct probe, also the TCP fallback ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ping<'a> {
    /// Name of the intended target; a receiver with another name drops the ping.
    pub node: &'a str,
    /// Sender's sequence number.
    pub seq_no: u32,
    /// Sender's advertise IP (4 or 16 bytes); omitted when empty.
    pub source_addr: &'a [u8],
    /// Sender's name; omitted when empty.
    pub source_node: &'a str,
    /// Sender's advertise port; omitted when 0.
    pub source_port: u16,
}

/// `indirectPingReq` (type 1): ask a peer to probe `node` for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IndirectPing<'a> {
    /// Whether the requester wants a nack when the target does not answer in time.
    pub nack: bool,
    /// Target name, put into the forwarded ping.
    pub node: &'a str,
    /// Target port.
    pub port: u16,
    /// The requester's sequence number; relayed acks and nacks carry it.
    pub seq_no: u32,
    /// Requester's address; omitted when empty.
    pub source_addr: &'a [u8],
    /// Requester's name; omitted when empty.
    pub source_node: &'a str,
    /// Requester's port; omitted when 0.
    pub source_port: u16,
    /// Target IP, 4 or 16 bytes.
    pub target: &'a [u8],
}

/// `ackResp` (type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ack<'a> {
    /// Ping-delegate payload. Alertmanager sends empty (`a0`); TCP ping acks send nil (`c0`).
    pub payload: Raw<'a>,
    /// Echo of the ping's sequence number.
    pub seq_no: u32,
}

/// `nackResp` (type 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Nack {
    /// The requester's sequence number.
    pub seq_no: u32,
}

/// `errResp` (type 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ErrResp<'a> {
    /// Human-readable error.
    pub error: &'a str,
}

/// `suspect` (type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Suspect<'a> {
    /// Who suspects.
    pub from: &'a str,
    /// Incarnation of the accused as known by the sender.
    pub incarnation: u32,
    /// The accused.
    pub node: &'a str,
}

/// `dead` (type 5). `from == node` means a voluntary leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dead<'a> {
    /// Who declares the node dead.
    pub from: &'a str,
    /// Incarnation of the dead node as known by the sender.
    pub incarnation: u32,
    /// The dead node.
    pub node: &'a str,
}

/// `alive` (type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Alive<'a> {
    /// Node IP, 4 or 16 bytes.
    pub addr: Raw<'a>,
    /// The node's incarnation.
    pub incarnation: u32,
    /// Delegate metadata (≤ 512 bytes, enforced by the originator only).
    pub meta: Raw<'a>,
    /// Node name.
    pub node: &'a str,
    /// Gossip port.
    pub port: u16,
    /// Versions; `None` when absent or shorter than six bytes (such alives are ignored, as
    /// Alertmanager's Alive delegate does). Encoded as nil when `None`.
    pub vsn: Option<Vsn>,
}

/// `pushPullHeader`: starts a push/pull exchange (type 6, TCP only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PushPullHeader {
    /// True when sent by a join, false for periodic anti-entropy.
    pub join: bool,
    /// Number of `pushNodeState` maps that follow.
    pub nodes: usize,
    /// Number of raw user-state bytes after the node states.
    pub user_state_len: usize,
}

/// memberlist `NodeStateType` (a Go `int`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStateKind {
    /// `StateAlive` = 0
    Alive,
    /// `StateSuspect` = 1
    Suspect,
    /// `StateDead` = 2
    Dead,
    /// `StateLeft` = 3
    Left,
    /// Any other value: Go ignores such entries in a merge, and so do we.
    Other(i64),
}

/// `pushNodeState`: one entry of a push/pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushNodeState<'a> {
    /// Node IP.
    pub addr: Raw<'a>,
    /// Incarnation.
    pub incarnation: u32,
    /// Metadata.
    pub meta: Raw<'a>,
    /// Node name (the key is `Name` here, not `Node`).
    pub name: &'a str,
    /// Port; 0 means "same as mine" to the receiver.
    pub port: u16,
    /// State.
    pub state: NodeStateKind,
    /// Versions; `None` when absent or shorter than six bytes (fails protocol verification).
    pub vsn: Option<Vsn>,
}

/// `userMsgHeader` (stream only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UserMsgHeader {
    /// Raw bytes that follow.
    pub user_msg_len: usize,
}

/// A message that can appear inside a UDP packet (after the compound/compress/CRC layers have
/// been peeled off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Direct probe.
    Ping(Ping<'a>),
    /// Indirect probe request.
    IndirectPing(IndirectPing<'a>),
    /// Probe acknowledgement.
    Ack(Ack<'a>),
    /// Negative acknowledgement from an indirect prober.
    Nack(Nack),
    /// Suspicion.
    Suspect(Suspect<'a>),
    /// Alive announcement.
    Alive(Alive<'a>),
    /// Death or leave.
    Dead(Dead<'a>),
    /// User message over UDP: the raw bytes after the type byte.
    User(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The type byte this message is sent with.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Ping(_) => MessageType::Ping,
            Message::IndirectPing(_) => MessageType::IndirectPing,
            Message::Ack(_) => MessageType::Ack,
            Message::Nack(_) => MessageType::Nack,
            Message::Suspect(_) => MessageType::Suspect,
            Message::Alive(_) => MessageType::Alive,
            Message::Dead(_) => MessageType::Dead,
            Message::User(_) => MessageType::User,
        }
    }

    /// Append `type byte + msgpack body` (or `08 + raw bytes` for a user message) to `out`.
    ///
    /// No packet message has a Go `int` field (they are all `uint*`), so `_ints` changes
    /// nothing today; it keeps every encoder's signature alike.
    pub fn encode(&self, _ints: IntEncoding, out: &mut Vec<u8>) {
        out.push(self.kind() as u8);
        match self {
            Message::Ping(m) => m.encode_body(out),
            Message::IndirectPing(m) => m.encode_body(out),
            Message::Ack(m) => m.encode_body(out),
            Message::Nack(m) => m.encode_body(out),
            Message::Suspect(m) => encode_accusation(out, m.from, m.incarnation, m.node),
            Message::Alive(m) => m.encode_body(out),
            Message::Dead(m) => encode_accusation(out, m.from, m.incarnation, m.node),
            Message::User(payload) => out.extend_from_slice(payload),
        }
    }

    /// Decode one complete message (type byte first). Compound, compress, CRC, label and
    /// stream-only types are not messages: they yield [`WireError::UnexpectedType`].
    ///
    /// Bytes after the msgpack body are ignored, as Go's decoder does.
    pub fn decode(buf: &'a [u8]) -> Result<Message<'a>, WireError> {
        let (&ty, body) = buf
            .split_first()
            .ok_or(WireError::Truncated("message type"))?;
        let r = &mut Reader::new(body);
        Ok(match MessageType::from_u8(ty) {
            Some(MessageType::Ping) => Message::Ping(Ping::decode_body(r)?),
            Some(MessageType::IndirectPing) => Message::IndirectPing(IndirectPing::decode_body(r)?),
            Some(MessageType::Ack) => Message::Ack(Ack::decode_body(r)?),
            Some(MessageType::Nack) => Message::Nack(Nack::decode_body(r)?),
            Some(MessageType::Suspect) => {
                let (from, incarnation, node) = decode_accusation(r, "suspect")?;
                Message::Suspect(Suspect {
                    from,
                    incarnation,
                    node,
                })
            }
            Some(MessageType::Alive) => Message::Alive(Alive::decode_body(r)?),
            Some(MessageType::Dead) => {
                let (from, incarnation, node) = decode_accusation(r, "dead")?;
                Message::Dead(Dead {
                    from,
                    incarnation,
                    node,
                })
            }
            Some(MessageType::User) => Message::User(body),
            _ => return Err(WireError::UnexpectedType(ty)),
        })
    }
}

impl<'a> Ping<'a> {
    /// The five keys; the three source fields are `omitempty` upstream, so an empty one is left
    /// out and the map shrinks (`82` instead of `85`, spec §12.5).
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        let present = [
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        ];
        write_map_len(out, 2 + present.iter().map(|&p| u16::from(p)).sum::<u16>());
        write_raw(out, b"Node");
        write_raw(out, self.node.as_bytes());
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
        encode_source(out, self.source_addr, self.source_node, self.source_port);
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("ping")? {
            match r.key()? {
                b"Node" => m.node = r.str("Node")?,
                b"SeqNo" => m.seq_no = r.int("SeqNo")?,
                b"SourceAddr" => m.source_addr = r.bytes("SourceAddr")?,
                b"SourceNode" => m.source_node = r.str("SourceNode")?,
                b"SourcePort" => m.source_port = r.int("SourcePort")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

/// The `omitempty` source fields shared by ping and indirect ping, in key order.
fn encode_source(out: &mut Vec<u8>, addr: &[u8], node: &str, port: u16) {
    if !addr.is_empty() {
        write_raw(out, b"SourceAddr");
        write_raw(out, addr);
    }
    if !node.is_empty() {
        write_raw(out, b"SourceNode");
        write_raw(out, node.as_bytes());
    }
    if port != 0 {
        write_raw(out, b"SourcePort");
        write_uint(out, port.into());
    }
}

impl<'a> IndirectPing<'a> {
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        let present = [
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        ];
        write_map_len(out, 5 + present.iter().map(|&p| u16::from(p)).sum::<u16>());
        write_raw(out, b"Nack");
        write_bool(out, self.nack);
        write_raw(out, b"Node");
        write_raw(out, self.node.as_bytes());
        write_raw(out, b"Port");
        write_uint(out, self.port.into());
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
        encode_source(out, self.source_addr, self.source_node, self.source_port);
        write_raw(out, b"Target");
        write_raw(out, self.target);
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("indirect ping")? {
            match r.key()? {
                b"Nack" => m.nack = r.bool("Nack")?,
                b"Node" => m.node = r.str("Node")?,
                b"Port" => m.port = r.int("Port")?,
                b"SeqNo" => m.seq_no = r.int("SeqNo")?,
                b"SourceAddr" => m.source_addr = r.bytes("SourceAddr")?,
                b"SourceNode" => m.source_node = r.str("SourceNode")?,
                b"SourcePort" => m.source_port = r.int("SourcePort")?,
                b"Target" => m.target = r.bytes("Target")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

impl<'a> Ack<'a> {
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 2);
        write_raw(out, b"Payload");
        write_opt_raw(out, self.payload);
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("ack")? {
            match r.key()? {
                b"Payload" => m.payload = r.raw("Payload")?,
                b"SeqNo" => m.seq_no = r.int("SeqNo")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

impl Nack {
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_raw(out, b"SeqNo");
        write_uint(out, self.seq_no.into());
    }

    pub(super) fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("nack")? {
            match r.key()? {
                b"SeqNo" => m.seq_no = r.int("SeqNo")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

impl<'a> ErrResp<'a> {
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_raw(out, b"Error");
        write_raw(out, self.error.as_bytes());
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("error")? {
            match r.key()? {
                b"Error" => m.error = r.str("Error")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

/// `suspect` and `dead` share their keys: `From`, `Incarnation`, `Node`.
fn encode_accusation(out: &mut Vec<u8>, from: &str, incarnation: u32, node: &str) {
    write_map_len(out, 3);
    write_raw(out, b"From");
    write_raw(out, from.as_bytes());
    write_raw(out, b"Incarnation");
    write_uint(out, incarnation.into());
    write_raw(out, b"Node");
    write_raw(out, node.as_bytes());
}

fn decode_accusation<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<(&'a str, u32, &'a str), WireError> {
    let (mut from, mut incarnation, mut node) = ("", 0, "");
    for _ in 0..r.map_len(what)? {
        match r.key()? {
            b"From" => from = r.str("From")?,
            b"Incarnation" => incarnation = r.int("Incarnation")?,
            b"Node" => node = r.str("Node")?,
            _ => r.skip_value()?,
        }
    }
    Ok((from, incarnation, node))
}

/// `Vsn` as Go writes a `[]uint8`: six raw bytes, or nil when we have none.
fn write_vsn(out: &mut Vec<u8>, vsn: Option<Vsn>) {
    match vsn {
        Some(Vsn(bytes)) => write_raw(out, &bytes),
        None => write_nil(out),
    }
}

impl<'a> Alive<'a> {
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        write_map_len(out, 6);
        write_raw(out, b"Addr");
        write_opt_raw(out, self.addr);
        write_raw(out, b"Incarnation");
        write_uint(out, self.incarnation.into());
        write_raw(out, b"Meta");
        write_opt_raw(out, self.meta);
        write_raw(out, b"Node");
        write_raw(out, self.node.as_bytes());
        write_raw(out, b"Port");
        write_uint(out, self.port.into());
        write_raw(out, b"Vsn");
        write_vsn(out, self.vsn);
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("alive")? {
            match r.key()? {
                b"Addr" => m.addr = r.raw("Addr")?,
                b"Incarnation" => m.incarnation = r.int("Incarnation")?,
                b"Meta" => m.meta = r.raw("Meta")?,
                b"Node" => m.node = r.str("Node")?,
                b"Port" => m.port = r.int("Port")?,
                b"Vsn" => m.vsn = r.version("Vsn")?.map(Vsn),
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

/// A length as a Go `int`. Slice lengths never exceed `isize::MAX`, so this never saturates.
fn go_len(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

impl PushPullHeader {
    pub(super) fn encode_body(&self, ints: IntEncoding, out: &mut Vec<u8>) {
        write_map_len(out, 3);
        write_raw(out, b"Join");
        write_bool(out, self.join);
        write_raw(out, b"Nodes");
        write_go_int(out, go_len(self.nodes), ints);
        write_raw(out, b"UserStateLen");
        write_go_int(out, go_len(self.user_state_len), ints);
    }

    /// Negative counts (legal for a Go `int`) are out of range here, as memberlist ≥ 0.6.0
    /// rejects them too.
    pub(super) fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("push/pull header")? {
            match r.key()? {
                b"Join" => m.join = r.bool("Join")?,
                b"Nodes" => m.nodes = r.int("Nodes")?,
                b"UserStateLen" => m.user_state_len = r.int("UserStateLen")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

impl NodeStateKind {
    fn from_go_int(value: i64) -> Self {
        match value {
            0 => Self::Alive,
            1 => Self::Suspect,
            2 => Self::Dead,
            3 => Self::Left,
            other => Self::Other(other),
        }
    }

    fn to_go_int(self) -> i64 {
        match self {
            Self::Alive => 0,
            Self::Suspect => 1,
            Self::Dead => 2,
            Self::Left => 3,
            Self::Other(value) => value,
        }
    }
}

impl<'a> PushNodeState<'a> {
    pub(super) fn encode_body(&self, ints: IntEncoding, out: &mut Vec<u8>) {
        write_map_len(out, 7);
        write_raw(out, b"Addr");
        write_opt_raw(out, self.addr);
        write_raw(out, b"Incarnation");
        write_uint(out, self.incarnation.into());
        write_raw(out, b"Meta");
        write_opt_raw(out, self.meta);
        write_raw(out, b"Name");
        write_raw(out, self.name.as_bytes());
        write_raw(out, b"Port");
        write_uint(out, self.port.into());
        write_raw(out, b"State");
        write_go_int(out, self.state.to_go_int(), ints);
        write_raw(out, b"Vsn");
        write_vsn(out, self.vsn);
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        // Missing keys keep Go's zero values; state 0 is alive.
        let mut m = Self {
            addr: None,
            incarnation: 0,
            meta: None,
            name: "",
            port: 0,
            state: NodeStateKind::Alive,
            vsn: None,
        };
        for _ in 0..r.map_len("push node state")? {
            match r.key()? {
                b"Addr" => m.addr = r.raw("Addr")?,
                b"Incarnation" => m.incarnation = r.int("Incarnation")?,
                b"Meta" => m.meta = r.raw("Meta")?,
                b"Name" => m.name = r.str("Name")?,
                b"Port" => m.port = r.int("Port")?,
                b"State" => m.state = NodeStateKind::from_go_int(r.int("State")?),
                b"Vsn" => m.vsn = r.version("Vsn")?.map(Vsn),
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

impl UserMsgHeader {
    pub(super) fn encode_body(&self, ints: IntEncoding, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_raw(out, b"UserMsgLen");
        write_go_int(out, go_len(self.user_msg_len), ints);
    }

    pub(super) fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("user message header")? {
            match r.key()? {
                b"UserMsgLen" => m.user_msg_len = r.int("UserMsgLen")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}

/// `compress` (type 9): `{Algo, Buf}`, the wrapper around an LZW-compressed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Compress<'a> {
    /// `compressionType`; only 0 (LZW) exists.
    pub(super) algo: u8,
    /// The LZW stream.
    pub(super) buf: &'a [u8],
}

impl<'a> Compress<'a> {
    /// Append the whole message: type byte and body.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.push(MessageType::Compress as u8);
        write_map_len(out, 2);
        write_raw(out, b"Algo");
        write_uint(out, self.algo.into());
        write_raw(out, b"Buf");
        write_raw(out, self.buf);
    }

    pub(super) fn decode_body(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let mut m = Self::default();
        for _ in 0..r.map_len("compress")? {
            match r.key()? {
                b"Algo" => m.algo = r.int("Algo")?,
                b"Buf" => m.buf = r.bytes("Buf")?,
                _ => r.skip_value()?,
            }
        }
        Ok(m)
    }
}
