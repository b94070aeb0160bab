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

impl Message<'_> {
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
    pub fn decode(buf: &[u8]) -> Result<Message<'_>, WireError> {
        let (&ty, body) = buf.split_first().ok_or(WireError::Truncated("message type"))?;
        let r = &mut Reader::new(body);
        Ok(match MessageType::from_u8(ty) {
            Some(MessageType::Ping) => Message::Ping(Ping::decode_body(r)?),
            Some(MessageType::IndirectPing) => Message::IndirectPing(IndirectPing::decode_body(r)?),
            Some(MessageType::Ack) => Message::Ack(Ack::decode_body(r)?),
            Some(MessageType::Nack) => Message::Nack(Nack::decode_body(r)?),
            Some(MessageType::Suspect) => {
                let (from, incarnation, node) = decode_accusation(r, "suspect")?;
                Message::Suspect(Suspect { from, incarnation, node })
            }
            Some(MessageType::Alive) => Message::Alive(Alive::decode_body(r)?),
            Some(MessageType::Dead) => {
                let (from, incarnation, node) = decode_accusation(r, "dead")?;
                Message::Dead(Dead { from, incarnation, node })
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
        let present =
            [!self.source_addr.is_empty(), !self.source_node.is_empty(), self.source_port != 0];
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
        let present =
            [!self.source_addr.is_empty(), !self.source_node.is_empty(), self.source_port != 0];
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

#[cfg(test)]
pub(super) mod tests {
    //! Golden vectors from spec Appendix A (produced by the real Go encoder), and strategies
    //! shared with the packet and stream tests.

    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    use super::*;

    pub(crate) const PING: &str = "0085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274cd2386";
    const PING_MIN: &str = "0082a44e6f6465a66e6f64652d62a55365714e6fcd012c";
    const INDIRECT: &str = "0188a44e61636bc3a44e6f6465a66e6f64652d63a4506f7274cd2386a55365714e6f07aa536f7572636541646472a40a000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274cd2386a6546172676574a40a000002";
    pub(crate) const ACK_NIL: &str = "0282a75061796c6f6164c0a55365714e6f01";
    const ACK_EMPTY: &str = "0282a75061796c6f6164a0a55365714e6f01";
    const NACK: &str = "0b81a55365714e6fce00011170";
    pub(crate) const SUSPECT: &str =
        "0383a446726f6da66e6f64652d61ab496e6361726e6174696f6e05a44e6f6465a66e6f64652d62";
    const DEAD: &str =
        "0583a446726f6da66e6f64652d62ab496e6361726e6174696f6e05a44e6f6465a66e6f64652d62";
    const ALIVE: &str = "0486a441646472a40a000001ab496e6361726e6174696f6e01a44d657461a0a44e6f6465a66e6f64652d61a4506f7274cd2386a356736ea6010502000000";
    const ALIVE_V6_NILMETA: &str = "0486a441646472b0fd000000000000000000000000000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465a66e6f64652d61a4506f7274cd2386a356736ea6010502000000";
    const SUSPECT_LONGNAME: &str = "0383a446726f6da178ab496e6361726e6174696f6eccc8a44e6f6465da0023303132333435363738396162636465663031323334353637383961626364656658595a";
    /// An `alive` body (no type byte) with `Addr` as bin8, `Node` as str8, `Vsn` as an array
    /// and `Meta` nil: Go's decoders accept all of it.
    const TOLERANCE_PROBE: &str = "86a441646472c4040a000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465d9066e6f64652d7aa4506f7274cd2386a356736e96010502000000";

    const IP: &[u8] = &[10, 0, 0, 1];

    /// The ping of spec §5.1, as decoded from [`PING`].
    pub(crate) fn ping() -> Ping<'static> {
        Ping {
            node: "node-b",
            seq_no: 1,
            source_addr: IP,
            source_node: "node-a",
            source_port: 9094,
        }
    }

    pub(crate) fn suspect() -> Suspect<'static> {
        Suspect { from: "node-a", incarnation: 5, node: "node-b" }
    }

    fn golden() -> Vec<(&'static str, Message<'static>)> {
        let alive = Alive {
            addr: Some(IP),
            incarnation: 1,
            meta: Some(&[]),
            node: "node-a",
            port: 9094,
            vsn: Some(Vsn::ALERTMANAGER),
        };
        const V6: &[u8] = &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let long = "0123456789abcdef0123456789abcdefXYZ";
        vec![
            (PING, Message::Ping(ping())),
            (PING_MIN, Message::Ping(Ping { node: "node-b", seq_no: 300, ..Ping::default() })),
            (
                INDIRECT,
                Message::IndirectPing(IndirectPing {
                    nack: true,
                    node: "node-c",
                    port: 9094,
                    seq_no: 7,
                    source_addr: IP,
                    source_node: "node-a",
                    source_port: 9094,
                    target: &[10, 0, 0, 2],
                }),
            ),
            (ACK_NIL, Message::Ack(Ack { payload: None, seq_no: 1 })),
            (ACK_EMPTY, Message::Ack(Ack { payload: Some(&[]), seq_no: 1 })),
            (NACK, Message::Nack(Nack { seq_no: 70_000 })),
            (SUSPECT, Message::Suspect(suspect())),
            (DEAD, Message::Dead(Dead { from: "node-b", incarnation: 5, node: "node-b" })),
            (ALIVE, Message::Alive(alive)),
            (ALIVE_V6_NILMETA, Message::Alive(Alive { addr: Some(V6), meta: None, ..alive })),
            (
                SUSPECT_LONGNAME,
                Message::Suspect(Suspect { from: "x", incarnation: 200, node: long }),
            ),
        ]
    }

    #[test]
    fn golden_vectors_decode_and_reencode_identically() {
        for (hex_bytes, expected) in golden() {
            let bytes = hex::decode(hex_bytes).unwrap();
            assert_eq!(Message::decode(&bytes), Ok(expected), "{hex_bytes}");
            for ints in [IntEncoding::Unsigned, IntEncoding::Signed] {
                let mut out = vec![0xee];
                expected.encode(ints, &mut out);
                assert_eq!(hex::encode(&out[1..]), hex_bytes, "appends to existing bytes");
            }
        }
    }

    #[test]
    fn decoder_tolerance_probe() {
        let mut bytes = vec![MessageType::Alive as u8];
        bytes.extend(hex::decode(TOLERANCE_PROBE).unwrap());
        let expected = Alive {
            addr: Some(IP),
            incarnation: 1,
            meta: None,
            node: "node-z",
            port: 9094,
            vsn: Some(Vsn::ALERTMANAGER),
        };
        assert_eq!(Message::decode(&bytes), Ok(Message::Alive(expected)));
    }

    /// Build a message body from msgpack hex (type byte first) and decode it.
    fn decode_hex(hex_bytes: &str) -> Result<Message<'static>, WireError> {
        Message::decode(hex::decode(hex_bytes).unwrap().leak())
    }

    #[test]
    fn keys_are_case_sensitive_and_unknown_keys_are_skipped() {
        // {"seqno": 5, "Extra": {"a": [1, {"b": nil}]}, "SeqNo": 9}
        let hex_bytes = "0b83a57365716e6f05a54578747261 81a16192 0181a162c0 a55365714e6f09";
        let decoded = decode_hex(&hex_bytes.replace(' ', ""));
        assert_eq!(decoded, Ok(Message::Nack(Nack { seq_no: 9 })));
        // Missing keys keep their zero values.
        assert_eq!(decode_hex("0b80"), Ok(Message::Nack(Nack { seq_no: 0 })));
    }

    #[test]
    fn vsn_length_rules() {
        let alive = |vsn_hex: &str| {
            let hex_bytes = format!("0481a356736e{vsn_hex}");
            match decode_hex(&hex_bytes) {
                Ok(Message::Alive(alive)) => Ok(alive.vsn),
                other => Err(other),
            }
        };
        assert_eq!(alive("a50105020000"), Ok(None), "five bytes are too short");
        assert_eq!(alive("a701050200000009"), Ok(Some(Vsn::ALERTMANAGER)), "first six of seven");
        assert_eq!(alive("c0"), Ok(None));
        assert_eq!(alive("9501050200cc00"), Ok(None), "array of five");
        assert_eq!(alive("9701050200000009"), Ok(Some(Vsn::ALERTMANAGER)));
        assert!(alive("96cd01000502000000").is_err(), "256 is not a byte");
    }

    #[test]
    fn integers_accept_every_marker_and_never_wrap() {
        for seq in ["2a", "cc2a", "cd002a", "ce0000002a", "cf000000000000002a", "d02a", "d1002a"] {
            let decoded = decode_hex(&format!("0b81a55365714e6f{seq}"));
            assert_eq!(decoded, Ok(Message::Nack(Nack { seq_no: 42 })), "{seq}");
        }
        for seq in ["ff", "d0ff", "cf0000000100000000", "d3ffffffffffffffff"] {
            let decoded = decode_hex(&format!("0b81a55365714e6f{seq}"));
            assert_eq!(decoded, Err(WireError::IntOutOfRange("SeqNo")), "{seq}");
        }
        // A port above 65535.
        let decoded = decode_hex("0081aa536f75726365506f7274ce00010000");
        assert_eq!(decoded, Err(WireError::IntOutOfRange("SourcePort")));
    }

    #[test]
    fn strings_must_be_utf8_and_types_must_match() {
        assert_eq!(decode_hex("0081a44e6f6465a2c328"), Err(WireError::InvalidUtf8("Node")));
        assert_eq!(
            decode_hex("0081a44e6f6465c3"),
            Err(WireError::UnexpectedMarker { marker: 0xc3, field: "Node" })
        );
        assert_eq!(decode_hex("0081a44e6f6465a9"), Err(WireError::Truncated("Node")));
        assert_eq!(decode_hex("00"), Err(WireError::Truncated("ping")));
        assert_eq!(decode_hex(""), Err(WireError::Truncated("message type")));
    }

    #[test]
    fn non_message_types_are_rejected() {
        for ty in [6u8, 7, 9, 10, 12, 13, 14, 244, 255] {
            assert_eq!(Message::decode(&[ty, 0x80]), Err(WireError::UnexpectedType(ty)));
        }
        assert_eq!(Message::decode(&[8]), Ok(Message::User(&[])));
    }

    #[test]
    fn message_type_bytes() {
        for b in 0..=u8::MAX {
            match MessageType::from_u8(b) {
                Some(ty) => assert_eq!(ty as u8, b),
                None => assert!(b > 13),
            }
        }
    }

    #[test]
    fn node_state_kinds() {
        for (value, kind) in [
            (0, NodeStateKind::Alive),
            (1, NodeStateKind::Suspect),
            (2, NodeStateKind::Dead),
            (3, NodeStateKind::Left),
            (4, NodeStateKind::Other(4)),
            (-1, NodeStateKind::Other(-1)),
        ] {
            assert_eq!(NodeStateKind::from_go_int(value), kind);
            assert_eq!(kind.to_go_int(), value);
        }
    }

    pub(crate) fn text() -> impl Strategy<Value = &'static str> {
        prop_oneof!["\\PC{0,40}", "[a-z]{30,300}"].prop_map(|s: String| &*s.leak())
    }

    pub(crate) fn bytes() -> impl Strategy<Value = &'static [u8]> {
        prop_oneof![vec(any::<u8>(), 0..40), vec(any::<u8>(), 0..400)].prop_map(|v| &*v.leak())
    }

    pub(crate) fn raw() -> impl Strategy<Value = Raw<'static>> {
        option::of(bytes())
    }

    fn vsn() -> impl Strategy<Value = Option<Vsn>> {
        option::of(any::<[u8; 6]>().prop_map(Vsn))
    }

    pub(crate) fn ints() -> impl Strategy<Value = IntEncoding> {
        prop_oneof![Just(IntEncoding::Unsigned), Just(IntEncoding::Signed)]
    }

    pub(crate) fn arb_ping() -> impl Strategy<Value = Ping<'static>> {
        (text(), any::<u32>(), bytes(), text(), any::<u16>()).prop_map(
            |(node, seq_no, source_addr, source_node, source_port)| Ping {
                node,
                seq_no,
                source_addr,
                source_node,
                source_port,
            },
        )
    }

    pub(crate) fn arb_ack() -> impl Strategy<Value = Ack<'static>> {
        (raw(), any::<u32>()).prop_map(|(payload, seq_no)| Ack { payload, seq_no })
    }

    fn arb_indirect() -> impl Strategy<Value = IndirectPing<'static>> {
        let fields = (any::<bool>(), text(), any::<u16>(), any::<u32>());
        (fields, bytes(), text(), any::<u16>(), bytes()).prop_map(
            |((nack, node, port, seq_no), source_addr, source_node, source_port, target)| {
                IndirectPing {
                    nack,
                    node,
                    port,
                    seq_no,
                    source_addr,
                    source_node,
                    source_port,
                    target,
                }
            },
        )
    }

    fn arb_alive() -> impl Strategy<Value = Alive<'static>> {
        (raw(), any::<u32>(), raw(), text(), any::<u16>(), vsn()).prop_map(
            |(addr, incarnation, meta, node, port, vsn)| Alive {
                addr,
                incarnation,
                meta,
                node,
                port,
                vsn,
            },
        )
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message<'static>> {
        let accusation = || (text(), any::<u32>(), text());
        prop_oneof![
            arb_ping().prop_map(Message::Ping),
            arb_indirect().prop_map(Message::IndirectPing),
            arb_ack().prop_map(Message::Ack),
            any::<u32>().prop_map(|seq_no| Message::Nack(Nack { seq_no })),
            accusation().prop_map(|(from, incarnation, node)| {
                Message::Suspect(Suspect { from, incarnation, node })
            }),
            arb_alive().prop_map(Message::Alive),
            accusation().prop_map(|(from, incarnation, node)| Message::Dead(Dead {
                from,
                incarnation,
                node
            })),
            bytes().prop_map(Message::User),
        ]
    }

    fn arb_state() -> impl Strategy<Value = NodeStateKind> {
        prop_oneof![
            Just(NodeStateKind::Alive),
            Just(NodeStateKind::Suspect),
            Just(NodeStateKind::Dead),
            Just(NodeStateKind::Left),
            any::<i64>()
                .prop_filter("not 0..=3", |v| !(0..=3).contains(v))
                .prop_map(NodeStateKind::Other),
        ]
    }

    pub(crate) fn arb_node() -> impl Strategy<Value = PushNodeState<'static>> {
        (raw(), any::<u32>(), raw(), text(), any::<u16>(), arb_state(), vsn()).prop_map(
            |(addr, incarnation, meta, name, port, state, vsn)| PushNodeState {
                addr,
                incarnation,
                meta,
                name,
                port,
                state,
                vsn,
            },
        )
    }

    proptest! {
        #[test]
        fn every_message_round_trips(message in arb_message(), ints in ints()) {
            let mut out = Vec::new();
            message.encode(ints, &mut out);
            prop_assert_eq!(Message::decode(&out), Ok(message));
        }

        #[test]
        fn push_node_state_round_trips(node in arb_node(), ints in ints()) {
            let mut out = Vec::new();
            node.encode_body(ints, &mut out);
            let mut r = Reader::new(&out);
            prop_assert_eq!(PushNodeState::decode_body(&mut r), Ok(node));
            prop_assert!(r.rest().is_empty());
        }

        #[test]
        fn decode_never_panics(bytes in vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes);
        }
    }
}
