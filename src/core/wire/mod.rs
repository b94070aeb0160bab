//! The memberlist codec: every byte hashicorp/memberlist puts on UDP and TCP port 9094.
//!
//! Reference: memberlist's `net.go`, `util.go` and `security.go`; the golden vectors in the
//! tests were produced by the real Go code. The layers, outermost first:
//!
//! ```text
//! UDP packet:  label (F4) → [encryption, no type byte] → CRC (0C) → compress (09) → compound (07) → messages
//! TCP stream:  label (F4, dialer only) → [encryption: 0A + u32 len] → compress (09) → message
//! ```
//!
//! * [`message`]: one struct per message type, msgpack bodies exactly as go-msgpack writes them
//!   (maps with PascalCase keys in byte-sorted order, the old raw-string family for strings and
//!   bytes, `nil` vs empty preserved), and a decoder that accepts every integer marker, str8,
//!   bin and array-encoded `Vsn`, as Go does.
//! * [`packet`]: the UDP layers. Decoding visits every message in a packet; a bad part of a
//!   compound is counted and skipped, as Go does, so one bad part never hides the others.
//! * [`tls_frame`]: the frames of Alertmanager's TLS transport, which carry packets and open
//!   streams over TLS instead of UDP and TCP.
//! * [`stream`]: the TCP layers, push/pull, reliable user messages, TCP pings and error replies,
//!   with incremental framing (Go peers never half-close a stream).
//!
//! * [`keyring`]: memberlist's AES-GCM keyring (keys of 16/24/32 bytes, encryption versions 0
//!   and 1, rotation), applied by [`Codec`] when it has one.
//!
//! Decoding never panics on any input, and never allocates more than the input justifies
//! (counts in headers are checked against the bytes actually present; decompression is capped).

pub mod keyring;
mod lzw;
pub mod message;
mod msgpack;
pub mod packet;
pub mod stream;
pub mod tls_frame;

pub use keyring::{EncryptionVersion, Keyring, KeyringError, SecretKey};
pub use message::{
    Ack, Alive, Dead, ErrResp, IndirectPing, Message, MessageType, Nack, NodeStateKind, Ping,
    PushNodeState, PushPullHeader, Suspect, UserMsgHeader, Vsn,
};
pub use packet::{Codec, PacketSummary, encode_compound};
pub use stream::{PushPull, StreamFrame, StreamMessage};

/// The first byte of a label header (`hasLabelMsg`). Chosen upstream so that it cannot collide
/// with a message type or an encryption version byte.
pub const LABEL_MSG: u8 = 244;

/// Largest label: the length is one byte.
pub const LABEL_MAX_LEN: usize = 255;

/// Largest node metadata a node may advertise (memberlist `MetaMaxSize`).
pub const META_MAX_LEN: usize = 512;

/// Largest number of messages in one compound: the count is one byte.
pub const COMPOUND_MAX_PARTS: usize = 255;

/// Bytes a compound adds to each part it carries: a 2-byte length (memberlist `compoundOverhead`).
pub const COMPOUND_PART_OVERHEAD: usize = 2;

/// Bytes a compound adds once: type byte and count (memberlist `compoundHeaderOverhead`).
pub const COMPOUND_HEADER_OVERHEAD: usize = 2;

/// How Go `int` fields above 127 are written (`pushPullHeader.Nodes`, `.UserStateLen`,
/// `userMsgHeader.UserMsgLen`). The only byte difference between memberlist versions; both Go
/// decoders accept both forms, and so does ours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntEncoding {
    /// go-msgpack v0.5.3: memberlist ≤ 0.5.0, Alertmanager 0.20–0.27. `200` → `cc c8`.
    Unsigned,
    /// go-msgpack/v2: memberlist ≥ 0.5.1, Alertmanager ≥ 0.28, Grafana. `200` → `d1 00 c8`.
    #[default]
    Signed,
}

/// A [`WireError`]'s class, for counters (`hearsay_cluster_rejected_total{reason}`): few enough
/// to label a metric, fine enough to tell a foreign cluster from a broken peer or an attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not memberlist at all, or a broken message (bad msgpack, unknown type, cut short).
    Malformed,
    /// Another cluster's label, or none where we want one.
    Label,
    /// The checksum did not match.
    Crc,
    /// Compressed with something other than LZW, or corrupt LZW.
    Compression,
    /// Past a size, count or nesting bound.
    TooLarge,
    /// Encrypted where we have no key, not opened by any key, or plain where encryption is
    /// required.
    Encryption,
}

impl RejectReason {
    /// Every reason, in index order (see [`RejectReason::index`]).
    pub const ALL: [RejectReason; 6] = [
        Self::Malformed,
        Self::Label,
        Self::Crc,
        Self::Compression,
        Self::TooLarge,
        Self::Encryption,
    ];

    /// Position in [`RejectReason::ALL`] (and in the per-reason counter arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Label => "label_mismatch",
            Self::Crc => "crc_mismatch",
            Self::Compression => "compression",
            Self::TooLarge => "too_large",
            Self::Encryption => "encryption",
        }
    }
}

impl WireError {
    /// The class this error is counted under.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::Truncated(_)
            | Self::UnexpectedMarker { .. }
            | Self::IntOutOfRange(_)
            | Self::InvalidUtf8(_)
            | Self::UnexpectedType(_) => RejectReason::Malformed,
            Self::LabelMismatch | Self::InvalidLabel => RejectReason::Label,
            Self::CrcMismatch => RejectReason::Crc,
            Self::UnknownCompression(_) | Self::Lzw => RejectReason::Compression,
            Self::TooLarge { .. } | Self::TooDeep => RejectReason::TooLarge,
            Self::EncryptionNotConfigured | Self::Decrypt(_) => RejectReason::Encryption,
        }
    }
}

/// Why bytes from a peer were rejected. Nothing is ever partially applied: the caller's state
/// is unchanged by a decode error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before the structure it announced.
    #[error("truncated input: {0}")]
    Truncated(&'static str),
    /// A msgpack value had a type the field cannot hold.
    #[error("unexpected msgpack marker 0x{marker:02x} for {field}")]
    UnexpectedMarker {
        /// The offending first byte.
        marker: u8,
        /// The field or structure being decoded.
        field: &'static str,
    },
    /// An integer did not fit its field.
    #[error("integer out of range for {0}")]
    IntOutOfRange(&'static str),
    /// A string field was not UTF-8.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    /// The message type byte is unknown or not valid in this position.
    #[error("unexpected message type {0}")]
    UnexpectedType(u8),
    /// The packet or stream carried a different label than ours (or one of us has none).
    #[error("label mismatch")]
    LabelMismatch,
    /// A label header with length 0.
    #[error("invalid label header")]
    InvalidLabel,
    /// CRC32 check failed.
    #[error("CRC mismatch")]
    CrcMismatch,
    /// Compression algorithm other than LZW (0).
    #[error("unknown compression algorithm {0}")]
    UnknownCompression(u8),
    /// The LZW stream was corrupt.
    #[error("corrupt LZW data")]
    Lzw,
    /// A size limit was exceeded (decompressed size, stream size, node count, user state).
    #[error("{what} exceeds limit of {limit} bytes or items")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit that applied.
        limit: usize,
    },
    /// Nesting (compound in compress in compound…) deeper than we accept.
    #[error("messages nested too deeply")]
    TooDeep,
    /// The bytes are encrypted (or look like it) and no keyring is configured.
    #[error("encrypted data but encryption is not configured")]
    EncryptionNotConfigured,
    /// Encrypted data that no installed key opens, or that is malformed (unknown version, too
    /// short, bad padding), or plain data where encryption is required (a keyring and
    /// `gossip_verify_incoming`). The reason is static text, like memberlist's error strings.
    #[error("decrypt failed: {0}")]
    Decrypt(&'static str),
}
