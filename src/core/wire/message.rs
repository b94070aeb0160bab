//! One struct per memberlist message, with bodies encoded exactly as go-msgpack writes them.
//!
//! Structs borrow from the input buffer (`'a`), so decoding a packet allocates nothing for
//! names, addresses or user payloads. Keys are listed here in the order Go emits them
//! (byte-sorted field names); see spec §4.

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
        todo!("{b}")
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
    /// Append `type byte + msgpack body` (or `08 + raw bytes` for a user message) to `out`.
    pub fn encode(&self, ints: IntEncoding, out: &mut Vec<u8>) {
        todo!("{ints:?} {}", out.len())
    }

    /// Decode one complete message (type byte first). Compound, compress, CRC, label and
    /// stream-only types are not messages: they yield [`WireError::UnexpectedType`].
    pub fn decode(buf: &[u8]) -> Result<Message<'_>, WireError> {
        todo!("{}", buf.len())
    }
}
