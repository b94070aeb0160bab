//! The framing of Alertmanager's TLS transport (`--cluster.tls-config`), which replaces
//! memberlist's UDP and TCP with TLS over TCP on the gossip port.
//!
//! Every transport message is one frame:
//!
//! ```text
//! u32 little-endian N ‖ N bytes: protobuf clusterpb.MemberlistMessage
//!   1: version   string  always "v0.1.0" (a receiver refuses anything else)
//!   2: kind      enum    STREAM = 0 (the proto3 default, so omitted), PACKET = 1
//!   3: from_addr string  the sender's listener address, "host:port"
//!   4: msg       bytes   a PACKET's memberlist packet: the bytes a UDP datagram would carry
//! ```
//!
//! A connection either carries PACKET frames, one after another, for as long as it lives, or
//! starts with one STREAM frame, after which the rest of it is a plain memberlist stream.
//!
//! How the frames are written matters as much as their bytes: Alertmanager (up to at least
//! v0.35) reads each frame through a fresh 4 KiB `bufio.Reader` over the TLS connection and
//! throws that reader away afterwards. Go's TLS `Read` never returns bytes from more than one
//! record, so this loses nothing only while every frame (and the stream bytes after a STREAM
//! frame) starts in a record of its own. This module only makes bytes; the driver keeps that
//! promise.
//!
//! Decoding is incremental ([`decode`] says how many bytes it needs) and bounded
//! ([`MAX_FRAME_LEN`]); garbage is an `Err`, never a panic.

use std::net::SocketAddr;

use prost::Message as _;

/// The only version string Alertmanager sends and accepts.
pub const VERSION: &str = "v0.1.0";

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Largest protobuf message we accept in a frame (the length prefix excluded). A PACKET
/// carries one memberlist packet, and memberlist never builds one larger than a UDP datagram
/// (it reads into 65,536-byte buffers; Alertmanager sizes packets to 1,400 bytes); the rest
/// is room for the version, kind and a `from_addr` of up to a few hundred bytes. Go reads any
/// announced length (up to 4 GiB) into memory; we refuse a frame that cannot be a packet.
pub const MAX_FRAME_LEN: usize = 65_536 + 1024;

/// A frame's protobuf message (`clusterpb.MemberlistMessage`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberlistMessage {
    /// Always [`VERSION`].
    #[prost(string, tag = "1")]
    pub version: String,
    /// [`Kind`] as its wire number.
    #[prost(enumeration = "Kind", tag = "2")]
    pub kind: i32,
    /// The sender's listener address (`host:port`); empty in a STREAM frame.
    #[prost(string, tag = "3")]
    pub from_addr: String,
    /// The memberlist packet; empty in a STREAM frame.
    #[prost(bytes = "vec", tag = "4")]
    pub msg: Vec<u8>,
}

/// What a frame announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    /// The rest of the connection is a memberlist stream.
    Stream = 0,
    /// One memberlist packet.
    Packet = 1,
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFrame {
    /// The bytes after this frame are a memberlist stream.
    Stream,
    /// A memberlist packet from the peer listening on `from`.
    Packet {
        /// The sender's `from_addr`.
        from: SocketAddr,
        /// The packet, as a UDP datagram would carry it.
        msg: Vec<u8>,
    },
}

/// The result of [`decode`] on the bytes read so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole frame yet: come back with at least this many bytes in total.
    Incomplete {
        /// Bytes needed before decoding can progress.
        at_least: usize,
    },
    /// A whole frame: the first `len` bytes of the input.
    Frame {
        /// The frame.
        frame: TlsFrame,
        /// Bytes it took, length prefix included.
        len: usize,
    },
}

/// Why a frame was refused. Alertmanager stops reading a connection after any of these, and
/// so do we: nothing after a bad frame can be trusted to start on a frame boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFrameError {
    /// The length prefix announced more than [`MAX_FRAME_LEN`] bytes.
    #[error("TLS transport frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// [`MAX_FRAME_LEN`].
        limit: usize,
    },
    /// The message is not a `MemberlistMessage`.
    #[error("TLS transport frame: bad protobuf: {0}")]
    Protobuf(String),
    /// The version is not [`VERSION`].
    #[error("TLS transport frame version {0:?}, want \"v0.1.0\"")]
    Version(String),
    /// A kind other than STREAM and PACKET.
    #[error("TLS transport frame of unknown kind {0}")]
    Kind(i32),
    /// A PACKET's `from_addr` is not an `IP:port` address.
    #[error("TLS transport packet from {0:?}: not an IP:port address")]
    FromAddr(String),
}

/// Decode the frame at the start of `buf`, if it is all there.
///
/// `from_addr` must be an `IP:port` literal: the core takes socket addresses and never
/// resolves names. Go peers send their listener's address, always a literal; Go itself would
/// also resolve a host name there.
pub fn decode(buf: &[u8]) -> Result<Decoded, TlsFrameError> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(Decoded::Incomplete { at_least: LEN_PREFIX });
    };
    let n = usize::try_from(u32::from_le_bytes(*prefix)).unwrap_or(usize::MAX);
    if n > MAX_FRAME_LEN {
        return Err(TlsFrameError::TooLarge { len: n, limit: MAX_FRAME_LEN });
    }
    let len = LEN_PREFIX + n;
    let Some(body) = buf.get(LEN_PREFIX..len) else {
        return Ok(Decoded::Incomplete { at_least: len });
    };
    let message =
        MemberlistMessage::decode(body).map_err(|e| TlsFrameError::Protobuf(e.to_string()))?;
    if message.version != VERSION {
        return Err(TlsFrameError::Version(message.version));
    }
    let frame = match Kind::try_from(message.kind) {
        Ok(Kind::Stream) => TlsFrame::Stream,
        Ok(Kind::Packet) => {
            let from = message
                .from_addr
                .parse()
                .map_err(|_| TlsFrameError::FromAddr(message.from_addr.clone()))?;
            TlsFrame::Packet { from, msg: message.msg }
        }
        Err(_) => return Err(TlsFrameError::Kind(message.kind)),
    };
    Ok(Decoded::Frame { frame, len })
}

/// Append a PACKET frame carrying `packet` from our listener address `from` to `out`.
pub fn encode_packet(from: SocketAddr, packet: &[u8], out: &mut Vec<u8>) {
    let message = MemberlistMessage {
        version: VERSION.to_owned(),
        kind: Kind::Packet as i32,
        from_addr: from.to_string(),
        msg: packet.to_vec(),
    };
    append(&message, out);
}

/// Append the STREAM frame that opens a stream connection to `out`.
pub fn encode_stream(out: &mut Vec<u8>) {
    let message = MemberlistMessage { version: VERSION.to_owned(), ..Default::default() };
    append(&message, out);
}

fn append(message: &MemberlistMessage, out: &mut Vec<u8>) {
    let n = message.encoded_len();
    // Packets come from our own core, which never builds one near 4 GiB.
    let prefix = u32::try_from(n).unwrap_or(u32::MAX);
    out.reserve(LEN_PREFIX + n);
    out.extend_from_slice(&prefix.to_le_bytes());
    message.encode_raw(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The annotated ping (69 bytes): node-a (10.0.0.1:9094) pings node-b with SeqNo 1.
    fn ping() -> Vec<u8> {
        let mut p = vec![0x00, 0x85];
        p.extend_from_slice(b"\xa4Node\xa6node-b\xa5SeqNo\x01");
        p.extend_from_slice(b"\xaaSourceAddr\xa4\x0a\x00\x00\x01");
        p.extend_from_slice(b"\xaaSourceNode\xa6node-a");
        p.extend_from_slice(b"\xaaSourcePort\xcd\x23\x86");
        assert_eq!(p.len(), 69);
        p
    }

    fn packet_frame_bytes() -> Vec<u8> {
        let mut want = hex::decode("60000000").expect("hex");
        want.extend_from_slice(b"\x0a\x06v0.1.0\x10\x01\x1a\x0d10.0.0.1:9094\x22\x45");
        want.extend_from_slice(&ping());
        want
    }

    #[test]
    fn stream_frame_is_the_documented_bytes() {
        let mut out = Vec::new();
        encode_stream(&mut out);
        assert_eq!(hex::encode(&out), "080000000a0676302e312e30");
        assert_eq!(decode(&out), Ok(Decoded::Frame { frame: TlsFrame::Stream, len: 12 }));
    }

    #[test]
    fn packet_frame_is_the_documented_bytes() {
        let from: SocketAddr = "10.0.0.1:9094".parse().expect("addr");
        let mut out = Vec::new();
        encode_packet(from, &ping(), &mut out);
        assert_eq!(out, packet_frame_bytes());
        assert_eq!(out.len(), 4 + 96);
        let frame = TlsFrame::Packet { from, msg: ping() };
        assert_eq!(decode(&out), Ok(Decoded::Frame { frame, len: 100 }));
    }

    #[test]
    fn decoding_asks_for_what_is_missing() {
        let bytes = packet_frame_bytes();
        assert_eq!(decode(&[]), Ok(Decoded::Incomplete { at_least: 4 }));
        assert_eq!(decode(&bytes[..3]), Ok(Decoded::Incomplete { at_least: 4 }));
        for cut in 4..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(Decoded::Incomplete { at_least: 100 }));
        }
        // What follows the frame (the next frame, or stream bytes) is not consumed.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        assert!(matches!(decode(&two), Ok(Decoded::Frame { len: 100, .. })));
    }

    #[test]
    fn a_frame_announcing_more_than_a_packet_is_refused_before_it_arrives() {
        let prefix = u32::try_from(MAX_FRAME_LEN + 1).expect("small").to_le_bytes();
        assert!(matches!(decode(&prefix), Err(TlsFrameError::TooLarge { .. })));
        assert!(matches!(decode(&[0xff; 4]), Err(TlsFrameError::TooLarge { .. })));
        let prefix = u32::try_from(MAX_FRAME_LEN).expect("small").to_le_bytes();
        assert!(matches!(decode(&prefix), Ok(Decoded::Incomplete { .. })));
    }

    #[test]
    fn wrong_version_kind_or_sender_is_refused() {
        let frame = |m: MemberlistMessage| {
            let mut out = Vec::new();
            append(&m, &mut out);
            decode(&out)
        };
        let good = MemberlistMessage {
            version: VERSION.into(),
            kind: 1,
            from_addr: "[::1]:9094".into(),
            msg: vec![1],
        };
        assert!(matches!(frame(good.clone()), Ok(Decoded::Frame { .. })));
        let old = MemberlistMessage { version: "v1.0.0".into(), ..good.clone() };
        assert_eq!(frame(old), Err(TlsFrameError::Version("v1.0.0".into())));
        assert_eq!(
            frame(MemberlistMessage { kind: 7, ..good.clone() }),
            Err(TlsFrameError::Kind(7))
        );
        let named = MemberlistMessage { from_addr: "am-0:9094".into(), ..good };
        assert_eq!(frame(named), Err(TlsFrameError::FromAddr("am-0:9094".into())));
        // A truncated varint inside the declared body.
        assert!(matches!(decode(&[1, 0, 0, 0, 0x0a]), Err(TlsFrameError::Protobuf(_))));
    }

    proptest! {
        #[test]
        fn packets_round_trip(
            ip in any::<[u8; 4]>(),
            port in any::<u16>(),
            msg in proptest::collection::vec(any::<u8>(), 0..2048),
            split in any::<proptest::sample::Index>(),
        ) {
            let from = SocketAddr::from((ip, port));
            let mut out = Vec::new();
            encode_packet(from, &msg, &mut out);
            let len = out.len();
            let frame = TlsFrame::Packet { from, msg };
            prop_assert_eq!(decode(&out), Ok(Decoded::Frame { frame, len }));
            let cut = split.index(len);
            let partial = matches!(decode(&out[..cut]), Ok(Decoded::Incomplete { .. }));
            prop_assert!(partial, "a cut frame decodes as incomplete");
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }
}
