//! TCP streams: label (dialer only) → encryption (`0A` + u32 length) → compress → one message,
//! as memberlist's `rawSendMsgStream` and `readStream`.
//!
//! Each connection carries one request and at most one reply. Go peers never half-close, so a
//! reader cannot wait for EOF: [`Codec::stream_frame`] says how many bytes the first message
//! needs, from the bytes seen so far, cheaply enough to call after every read. Every length it
//! learns is held against [`Codec::max_stream_len`] before waiting for the bytes, and the
//! node count of a push/pull against [`Codec::max_push_nodes`].

use super::keyring::HEADER_LEN;
use super::message::{Compress, MessageType, UserMsgHeader};
use super::msgpack::Reader;
use super::packet::{Codec, decompress_message};
use super::{
    Ack, ErrResp, IntEncoding, LABEL_MSG, Message, Ping, PushNodeState, PushPullHeader, WireError,
    lzw,
};

/// Where a stream's first message ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrame {
    /// Not enough bytes yet; at least this many (in total) are needed before it is worth asking
    /// again.
    Incomplete {
        /// Total bytes needed, at least.
        at_least: usize,
    },
    /// The first `len` bytes (label header included) hold one complete message.
    Complete {
        /// Length of the message in bytes.
        len: usize,
    },
}

/// A push/pull exchange: our or a peer's whole view of the cluster plus the delegate's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushPull<'a> {
    /// True when sent by a join.
    pub join: bool,
    /// Every known node, including self and dead/left nodes not yet reaped.
    pub nodes: Vec<PushNodeState<'a>>,
    /// The delegate's opaque state (Alertmanager: a `clusterpb.FullState`).
    pub user_state: &'a [u8],
}

/// A message that can open a stream or answer one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamMessage<'a> {
    /// TCP fallback ping (request).
    Ping(Ping<'a>),
    /// Reply to a TCP ping.
    Ack(Ack<'a>),
    /// Push/pull request or reply.
    PushPull(PushPull<'a>),
    /// Reliable user message (request, no reply).
    User(&'a [u8]),
    /// Error reply (`errMsg`).
    Err(ErrResp<'a>),
}

impl StreamMessage<'_> {
    /// Append the plain message (type byte, msgpack, trailing raw bytes) to `out`. The header
    /// counts of a push/pull (`Nodes`, `UserStateLen`) are taken from the slices.
    pub fn encode(&self, ints: IntEncoding, out: &mut Vec<u8>) {
        match self {
            StreamMessage::Ping(ping) => Message::Ping(*ping).encode(ints, out),
            StreamMessage::Ack(ack) => Message::Ack(*ack).encode(ints, out),
            StreamMessage::PushPull(push_pull) => push_pull.encode(ints, out),
            StreamMessage::User(payload) => {
                out.push(MessageType::User as u8);
                UserMsgHeader { user_msg_len: payload.len() }.encode_body(ints, out);
                out.extend_from_slice(payload);
            }
            StreamMessage::Err(err) => {
                out.push(MessageType::Err as u8);
                err.encode_body(out);
            }
        }
    }
}

impl<'a> PushPull<'a> {
    /// `06`, the header, one map per node, then the raw user state (spec §7.4).
    fn encode(&self, ints: IntEncoding, out: &mut Vec<u8>) {
        out.push(MessageType::PushPull as u8);
        let header = PushPullHeader {
            join: self.join,
            nodes: self.nodes.len(),
            user_state_len: self.user_state.len(),
        };
        header.encode_body(ints, out);
        for node in &self.nodes {
            node.encode_body(ints, out);
        }
        out.extend_from_slice(self.user_state);
    }

    /// Everything after the type byte.
    fn decode_body(r: &mut Reader<'a>, max_nodes: usize) -> Result<Self, WireError> {
        let header = PushPullHeader::decode_body(r)?;
        check_node_count(header.nodes, max_nodes)?;
        // Each node takes at least one byte: never reserve more than the input could hold.
        let mut nodes = Vec::with_capacity(header.nodes.min(r.rest().len()));
        for _ in 0..header.nodes {
            nodes.push(PushNodeState::decode_body(r)?);
        }
        let user_state = r.take(header.user_state_len, "push/pull user state")?;
        Ok(Self { join: header.join, nodes, user_state })
    }
}

/// The length after an `0A` type byte: a big-endian u32.
const ENCRYPT_LEN_BYTES: usize = 4;

/// Read the big-endian u32 length of an encrypted frame; `bytes` holds
/// [`ENCRYPT_LEN_BYTES`] bytes.
fn encrypt_len(bytes: &[u8]) -> usize {
    let mut be = [0u8; ENCRYPT_LEN_BYTES];
    be.copy_from_slice(bytes);
    // u32 → usize is lossless on every target we build for (32- and 64-bit).
    u32::from_be_bytes(be) as usize
}

fn check_node_count(nodes: usize, limit: usize) -> Result<(), WireError> {
    if nodes > limit {
        return Err(WireError::TooLarge { what: "push/pull node count", limit });
    }
    Ok(())
}

/// What scanning a prefix of a stream found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// The piece is incomplete; the buffer must hold at least this many bytes.
    Need(usize),
    /// The piece is complete and this long.
    Done(usize),
}

impl Codec {
    /// Find the end of the first message in `buf`, the bytes read so far from a stream.
    /// `inbound` is true for a stream a peer opened to us: it may start with the dialer's
    /// label header, which is checked here. Replies never carry a label.
    ///
    /// `Incomplete { at_least }` never exceeds the real length, so waiting for that many bytes
    /// cannot wait for bytes a peer will never send.
    pub fn stream_frame(&self, buf: &[u8], inbound: bool) -> Result<StreamFrame, WireError> {
        let scan = match self.stream_label_len(buf, inbound)? {
            Scan::Need(at_least) => Scan::Need(at_least),
            Scan::Done(start) => match self.body_len(buf.get(start..).unwrap_or_default())? {
                Scan::Need(n) => Scan::Need(start.saturating_add(n)),
                Scan::Done(n) => Scan::Done(start.saturating_add(n)),
            },
        };
        let (Scan::Need(len) | Scan::Done(len)) = scan;
        if len > self.max_stream_len {
            return Err(self.stream_too_large());
        }
        Ok(match scan {
            Scan::Need(at_least) => StreamFrame::Incomplete { at_least },
            Scan::Done(len) => StreamFrame::Complete { len },
        })
    }

    /// Length of the label header at the start of `buf`, checked against ours (spec §7.1: only
    /// the dialer writes one, so it can only start an inbound stream).
    fn stream_label_len(&self, buf: &[u8], inbound: bool) -> Result<Scan, WireError> {
        match buf.split_first() {
            None => Ok(Scan::Need(1)),
            Some((&LABEL_MSG, rest)) if inbound => {
                let Some(&len) = rest.first() else {
                    return Ok(Scan::Need(2));
                };
                if len == 0 {
                    return Err(WireError::InvalidLabel);
                }
                // A length other than ours is a mismatch before the label itself arrives.
                if usize::from(len) != self.label.len() {
                    return Err(WireError::LabelMismatch);
                }
                let end = 2 + usize::from(len);
                match buf.get(2..end) {
                    None => Ok(Scan::Need(end)),
                    Some(label) if label == self.label.as_slice() => Ok(Scan::Done(end)),
                    Some(_) => Err(WireError::LabelMismatch),
                }
            }
            Some(_) if inbound && !self.label.is_empty() => Err(WireError::LabelMismatch),
            Some(_) => Ok(Scan::Done(0)),
        }
    }

    /// Length of the message at the start of `body` (after any label).
    fn body_len(&self, body: &[u8]) -> Result<Scan, WireError> {
        let mut r = Reader::new(body);
        match self.walk_message(&mut r) {
            Ok(len) if len <= body.len() => Ok(Scan::Done(len)),
            Ok(len) => Ok(Scan::Need(len)),
            Err(WireError::Truncated(_)) => Ok(Scan::Need(r.wanted())),
            Err(err) => Err(err),
        }
    }

    /// Walk the self-delimiting parts of one message and return its total length, which may
    /// lie beyond the bytes present (raw user bytes are counted, not read).
    fn walk_message(&self, r: &mut Reader<'_>) -> Result<usize, WireError> {
        let ty = r.byte("stream message type")?;
        match MessageType::from_u8(ty) {
            // A compressed message ends with its `{Algo, Buf}` map.
            Some(
                MessageType::Ping | MessageType::Ack | MessageType::Err | MessageType::Compress,
            ) => {
                r.skip_value()?;
                Ok(r.position())
            }
            Some(MessageType::User) => {
                let header = UserMsgHeader::decode_body(r)?;
                self.stream_add(r.position(), header.user_msg_len)
            }
            Some(MessageType::PushPull) => self.walk_push_pull(r),
            // `0A` + u32 BE length frames an encrypted message. Without a keyring memberlist
            // refuses it ("remote state is encrypted and encryption is not configured"); we do
            // so before buffering the body.
            Some(MessageType::Encrypt) => {
                if self.keyring.is_none() {
                    return Err(WireError::EncryptionNotConfigured);
                }
                let len = encrypt_len(r.take(ENCRYPT_LEN_BYTES, "encrypt length")?);
                self.stream_add(r.position(), len)
            }
            _ => Err(WireError::UnexpectedType(ty)),
        }
    }

    /// Header, `Nodes` maps, `UserStateLen` raw bytes.
    fn walk_push_pull(&self, r: &mut Reader<'_>) -> Result<usize, WireError> {
        let header = PushPullHeader::decode_body(r)?;
        check_node_count(header.nodes, self.max_push_nodes)?;
        // Every node map takes at least one byte. Until that many bytes are here, report the
        // bound without walking the maps, so calls on a growing buffer stay cheap.
        let least = self.stream_add(r.position(), header.nodes)?;
        let least = self.stream_add(least, header.user_state_len)?;
        if least > r.position() + r.rest().len() {
            return Ok(least);
        }
        for _ in 0..header.nodes {
            r.skip_value()?;
        }
        self.stream_add(r.position(), header.user_state_len)
    }

    fn stream_add(&self, a: usize, b: usize) -> Result<usize, WireError> {
        a.checked_add(b).ok_or_else(|| self.stream_too_large())
    }

    fn stream_too_large(&self) -> WireError {
        WireError::TooLarge { what: "stream message", limit: self.max_stream_len }
    }

    /// Decode one complete stream message (`buf` = the `len` bytes [`Self::stream_frame`]
    /// reported) and hand it to `f`. Decompressed data lives only for the call.
    pub fn decode_stream<R>(
        &self,
        buf: &[u8],
        inbound: bool,
        f: impl FnOnce(StreamMessage<'_>) -> R,
    ) -> Result<R, WireError> {
        if buf.len() > self.max_stream_len {
            return Err(self.stream_too_large());
        }
        let Scan::Done(start) = self.stream_label_len(buf, inbound)? else {
            return Err(WireError::Truncated("label"));
        };
        let body = buf.get(start..).unwrap_or_default();
        match body.first().copied().and_then(MessageType::from_u8) {
            Some(MessageType::Encrypt) => {
                let keyring = self.keyring.as_ref().ok_or(WireError::EncryptionNotConfigured)?;
                let (header, sealed) = body
                    .split_at_checked(1 + ENCRYPT_LEN_BYTES)
                    .ok_or(WireError::Truncated("encrypt length"))?;
                let len = encrypt_len(&header[1..]);
                let sealed = sealed.get(..len).ok_or(WireError::Truncated("encrypted stream"))?;
                // AAD = the 5 header bytes, then the stream's label (memberlist
                // `decryptRemoteState`). Our label is the stream's: a different one was refused.
                let aad = [header, self.label.as_slice()].concat();
                let plain = keyring.open(sealed, &aad)?;
                self.decode_unsealed(&plain, f)
            }
            // memberlist's `readStream`: "Encryption is configured but remote state is not
            // encrypted". Go then writes an error reply, sealed with its key, which a peer
            // without that key cannot read; we close the stream instead.
            _ if self.keyring.is_some() && self.gossip_verify_incoming => {
                Err(WireError::Decrypt("remote state is not encrypted"))
            }
            _ => self.decode_unsealed(body, f),
        }
    }

    /// A stream message inside any encryption: compressed or plain.
    fn decode_unsealed<R>(
        &self,
        body: &[u8],
        f: impl FnOnce(StreamMessage<'_>) -> R,
    ) -> Result<R, WireError> {
        if body.first() == Some(&(MessageType::Compress as u8)) {
            let plain = decompress_message(&body[1..], self.max_stream_len)?;
            return Ok(f(self.parse_plain(&plain)?));
        }
        Ok(f(self.parse_plain(body)?))
    }

    /// A plain (uncompressed, unencrypted) stream message. Go accepts one layer of each
    /// wrapper only, so a nested compress or encrypt is an unexpected type here.
    fn parse_plain<'b>(&self, body: &'b [u8]) -> Result<StreamMessage<'b>, WireError> {
        let (&ty, rest) = body.split_first().ok_or(WireError::Truncated("stream message type"))?;
        let r = &mut Reader::new(rest);
        Ok(match MessageType::from_u8(ty) {
            Some(MessageType::Ping) => StreamMessage::Ping(Ping::decode_body(r)?),
            Some(MessageType::Ack) => StreamMessage::Ack(Ack::decode_body(r)?),
            Some(MessageType::Err) => StreamMessage::Err(ErrResp::decode_body(r)?),
            Some(MessageType::User) => {
                let header = UserMsgHeader::decode_body(r)?;
                StreamMessage::User(r.take(header.user_msg_len, "user message")?)
            }
            Some(MessageType::PushPull) => {
                StreamMessage::PushPull(PushPull::decode_body(r, self.max_push_nodes)?)
            }
            _ => return Err(WireError::UnexpectedType(ty)),
        })
    }

    /// Wrap a plain stream message for the wire, appending to `out`: LZW when compression is
    /// enabled (always, for streams, as Go does), then encryption with the primary key when
    /// there is a keyring and `gossip_verify_outgoing` (`0A`, u32 BE sealed length, the sealed
    /// blob; AAD = those 5 bytes and our label), then the label when `dialer` is true (only the
    /// side that opened the connection writes one, once, first).
    ///
    /// # Panics
    /// When the label is longer than [`super::LABEL_MAX_LEN`] (255) bytes.
    pub fn seal_stream(&self, plain: &[u8], dialer: bool, out: &mut Vec<u8>) {
        if dialer {
            self.write_label(out);
        }
        let Some(keyring) = self.sealing_keyring() else {
            return self.write_stream_body(plain, out);
        };
        // memberlist's `encryptLocalState`: the length goes into the AAD, so it is written
        // first, computed from the plaintext's length once that is known.
        let header_at = out.len();
        out.push(MessageType::Encrypt as u8);
        out.extend_from_slice(&[0; ENCRYPT_LEN_BYTES]);
        let sealed_at = out.len();
        out.resize(sealed_at + HEADER_LEN, 0);
        self.write_stream_body(plain, out);
        let sealed_len = self.encryption_version.sealed_len(out.len() - sealed_at - HEADER_LEN);
        // A message past 4 GiB cannot be framed; the saturated length makes the receiver refuse
        // it (its limit is 20 MiB) instead of us panicking. Our messages are far smaller.
        let sealed_len = u32::try_from(sealed_len).unwrap_or(u32::MAX);
        out[header_at + 1..sealed_at].copy_from_slice(&sealed_len.to_be_bytes());
        let aad = [&out[header_at..sealed_at], self.label.as_slice()].concat();
        keyring.seal_tail(self.encryption_version, out, sealed_at, &aad);
    }

    /// The message, compressed when enabled.
    fn write_stream_body(&self, plain: &[u8], out: &mut Vec<u8>) {
        if self.compress {
            Compress { algo: 0, buf: &lzw::compress(plain) }.encode(out);
        } else {
            out.extend_from_slice(plain);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::core::wire::message::tests::{
        ACK_NIL, PING, arb_ack, arb_node, arb_ping, bytes, ints, ping, text,
    };
    use crate::core::wire::packet::tests::COMPRESSED_PING;
    use crate::core::wire::{NodeStateKind, Vsn};

    const PUSHPULL_V05: &str = "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656ecd012c";
    const PUSHPULL_V2: &str = "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656ed1012c";
    const PUSHNODE: &str = "87a441646472a40a000001ab496e6361726e6174696f6e01a44d657461a0a44e616d65a66e6f64652d61a4506f7274cd2386a5537461746500a356736ea6010502000000";
    const PUSHPULL_HDR_BIG_V05: &str =
        "83a44a6f696ec2a54e6f646573ccc8ac5573657253746174654c656ece00011170";
    const PUSHPULL_HDR_BIG_V2: &str =
        "83a44a6f696ec2a54e6f646573d100c8ac5573657253746174654c656ed200011170";
    const PUSHNODE_LEFT_NILMETA: &str = "87a441646472a40a000001ab496e6361726e6174696f6e03a44d657461c0a44e616d65a66e6f64652d62a4506f7274cd2386a5537461746503a356736ea6010502000000";
    const USERMSG_HDR_V05: &str = "0881aa557365724d73674c656ecd03e8";
    const USERMSG_HDR_V2: &str = "0881aa557365724d73674c656ed103e8";
    const ERR: &str = "0d81a54572726f72a4626f6f6d";

    const IP: &[u8] = &[10, 0, 0, 1];

    fn unhex(hex_bytes: &str) -> Vec<u8> {
        hex::decode(hex_bytes).unwrap()
    }

    fn plain(ints: IntEncoding) -> Codec {
        Codec { ints, compress: false, ..Codec::default() }
    }

    fn labelled(label: &str) -> Codec {
        Codec { label: label.as_bytes().to_vec(), ..Codec::default() }
    }

    fn encoded(message: &StreamMessage<'_>, ints: IntEncoding) -> Vec<u8> {
        let mut out = Vec::new();
        message.encode(ints, &mut out);
        out
    }

    /// Frame `buf` (with trailing garbage, which must not matter), then decode the frame and
    /// check the message.
    fn assert_stream(codec: &Codec, buf: &[u8], inbound: bool, expected: &StreamMessage<'_>) {
        let mut with_garbage = buf.to_vec();
        with_garbage.extend([0xc1, 0xff, 0x00]);
        let len = buf.len();
        assert_eq!(codec.stream_frame(buf, inbound), Ok(StreamFrame::Complete { len }));
        assert_eq!(codec.stream_frame(&with_garbage, inbound), Ok(StreamFrame::Complete { len }));
        let same = codec.decode_stream(buf, inbound, |m| m == *expected);
        assert_eq!(same, Ok(true), "{expected:?}");
    }

    fn node_a() -> PushNodeState<'static> {
        PushNodeState {
            addr: Some(IP),
            incarnation: 1,
            meta: Some(&[]),
            name: "node-a",
            port: 9094,
            state: NodeStateKind::Alive,
            vsn: Some(Vsn::ALERTMANAGER),
        }
    }

    #[test]
    fn golden_push_pull() {
        let user_state: Vec<u8> = (0..300).map(|i| (i % 251) as u8).collect();
        let message = StreamMessage::PushPull(PushPull {
            join: true,
            nodes: vec![node_a()],
            user_state: &user_state,
        });
        for (ints, header) in
            [(IntEncoding::Unsigned, PUSHPULL_V05), (IntEncoding::Signed, PUSHPULL_V2)]
        {
            let mut bytes = unhex(&format!("{header}{PUSHNODE}"));
            bytes.extend(&user_state);
            assert_eq!(encoded(&message, ints), bytes);
            assert_stream(&plain(ints), &bytes, true, &message);
            // Compressed or not is the sender's choice; any codec reads both.
            assert_stream(&Codec::default(), &bytes, false, &message);
        }
    }

    #[test]
    fn golden_push_pull_header_and_nodes() {
        let big = PushPullHeader { join: false, nodes: 200, user_state_len: 70_000 };
        for (ints, hex_bytes) in [
            (IntEncoding::Unsigned, PUSHPULL_HDR_BIG_V05),
            (IntEncoding::Signed, PUSHPULL_HDR_BIG_V2),
        ] {
            let bytes = unhex(hex_bytes);
            assert_eq!(PushPullHeader::decode_body(&mut Reader::new(&bytes)), Ok(big));
            let mut out = Vec::new();
            big.encode_body(ints, &mut out);
            assert_eq!(out, bytes);
        }
        let left = PushNodeState {
            meta: None,
            name: "node-b",
            state: NodeStateKind::Left,
            incarnation: 3,
            ..node_a()
        };
        for (node, hex_bytes) in [(node_a(), PUSHNODE), (left, PUSHNODE_LEFT_NILMETA)] {
            let bytes = unhex(hex_bytes);
            assert_eq!(PushNodeState::decode_body(&mut Reader::new(&bytes)), Ok(node));
            let mut out = Vec::new();
            node.encode_body(IntEncoding::Signed, &mut out);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn golden_user_message() {
        let payload = vec![0x5a; 1000];
        let message = StreamMessage::User(&payload);
        for (ints, header) in
            [(IntEncoding::Unsigned, USERMSG_HDR_V05), (IntEncoding::Signed, USERMSG_HDR_V2)]
        {
            let mut bytes = unhex(header);
            bytes.extend(&payload);
            assert_eq!(encoded(&message, ints), bytes);
            assert_stream(&plain(ints), &bytes, true, &message);
        }
    }

    #[test]
    fn golden_ping_ack_and_error() {
        let cases = [
            (PING, StreamMessage::Ping(ping()), true),
            (ACK_NIL, StreamMessage::Ack(Ack { payload: None, seq_no: 1 }), false),
            (ERR, StreamMessage::Err(ErrResp { error: "boom" }), false),
        ];
        for (hex_bytes, message, inbound) in cases {
            let bytes = unhex(hex_bytes);
            assert_eq!(encoded(&message, IntEncoding::Signed), bytes);
            assert_stream(&Codec::default(), &bytes, inbound, &message);
        }
    }

    #[test]
    fn golden_compressed_stream() {
        // Streams are compressed even when that makes them larger (80 bytes against 69).
        let mut out = Vec::new();
        Codec::default().seal_stream(&unhex(PING), false, &mut out);
        assert_eq!(hex::encode(&out), COMPRESSED_PING);
        assert_stream(&Codec::default(), &out, false, &StreamMessage::Ping(ping()));
        // Every prefix is incomplete, with a bound that never overshoots.
        for cut in 0..out.len() {
            match Codec::default().stream_frame(&out[..cut], false) {
                Ok(StreamFrame::Incomplete { at_least }) => {
                    assert!(cut < at_least && at_least <= out.len())
                }
                other => panic!("{cut}: {other:?}"),
            }
        }
        // The Buf header alone says exactly how long the stream is.
        assert_eq!(
            Codec::default().stream_frame(&out[..15], false),
            Ok(StreamFrame::Incomplete { at_least: 80 })
        );
    }

    #[test]
    fn labels_on_streams() {
        let prod = labelled("prod");
        let ping_msg = StreamMessage::Ping(ping());
        let mut dialed = Vec::new();
        prod.seal_stream(&unhex(PING), true, &mut dialed);
        assert_eq!(hex::encode(&dialed[..8]), "f40470726f640982");
        assert_stream(&prod, &dialed, true, &ping_msg);

        let mismatch = WireError::LabelMismatch;
        assert_eq!(Codec::default().stream_frame(&dialed[..2], true).unwrap_err(), mismatch);
        assert_eq!(labelled("prof").stream_frame(&dialed, true).unwrap_err(), mismatch);
        assert_eq!(labelled("prof").decode_stream(&dialed, true, |_| ()).unwrap_err(), mismatch);
        assert_eq!(prod.stream_frame(&unhex(PING), true).unwrap_err(), mismatch);
        assert_eq!(prod.decode_stream(&unhex(PING), true, |_| ()).unwrap_err(), mismatch);
        // A reply never carries a label; an unlabelled reply is fine with a label configured.
        assert_eq!(prod.stream_frame(&dialed, false), Err(WireError::UnexpectedType(LABEL_MSG)));
        assert_stream(&prod, &unhex(PING), false, &ping_msg);
        // Partial label headers.
        assert_eq!(prod.stream_frame(&[], true), Ok(StreamFrame::Incomplete { at_least: 1 }));
        assert_eq!(
            prod.stream_frame(&dialed[..1], true),
            Ok(StreamFrame::Incomplete { at_least: 2 })
        );
        assert_eq!(
            prod.stream_frame(&dialed[..3], true),
            Ok(StreamFrame::Incomplete { at_least: 6 })
        );
        assert_eq!(
            prod.stream_frame(&dialed[..6], true),
            Ok(StreamFrame::Incomplete { at_least: 7 })
        );
        assert_eq!(prod.stream_frame(&[LABEL_MSG, 0], true), Err(WireError::InvalidLabel));
    }

    #[test]
    fn encryption_and_unknown_types() {
        let encrypted = [10, 0, 0, 0, 40, 1];
        let codec = Codec::default();
        assert_eq!(codec.stream_frame(&encrypted, true), Err(WireError::EncryptionNotConfigured));
        assert_eq!(
            codec.decode_stream(&encrypted, true, |_| ()),
            Err(WireError::EncryptionNotConfigured)
        );
        for ty in [1u8, 3, 4, 5, 7, 11, 12, 14, 255] {
            assert_eq!(codec.stream_frame(&[ty, 0x80], true), Err(WireError::UnexpectedType(ty)));
            assert_eq!(
                codec.decode_stream(&[ty, 0x80], true, |_| ()),
                Err(WireError::UnexpectedType(ty))
            );
        }
        // One compress layer only, and it must hold something.
        let mut nested = Vec::new();
        codec.seal_stream(&encoded(&StreamMessage::User(b"x"), codec.ints), false, &mut nested);
        let mut twice = Vec::new();
        codec.seal_stream(&nested, false, &mut twice);
        assert_eq!(codec.decode_stream(&twice, false, |_| ()), Err(WireError::UnexpectedType(9)));
        let mut empty = Vec::new();
        codec.seal_stream(&[], false, &mut empty);
        assert_eq!(
            codec.decode_stream(&empty, false, |_| ()),
            Err(WireError::Truncated("stream message type"))
        );
    }

    /// `06` + `{Join: false, Nodes: <nodes>, UserStateLen: 0}` + `rest`.
    fn push_pull_claiming(nodes: &str, rest: &[u8]) -> Vec<u8> {
        let mut bytes =
            unhex(&format!("0683a44a6f696ec2a54e6f646573{nodes}ac5573657253746174654c656e00"));
        bytes.extend(rest);
        bytes
    }

    #[test]
    fn push_pull_counts_are_checked_against_the_bytes() {
        let codec = Codec::default();
        // One million nodes announced, three present.
        let bytes = push_pull_claiming("ce000f4240", &[0x80; 3]);
        let Ok(StreamFrame::Incomplete { at_least }) = codec.stream_frame(&bytes, true) else {
            panic!()
        };
        assert!((1_000_000..1_000_100).contains(&at_least), "{at_least}");
        assert_eq!(
            codec.decode_stream(&bytes, true, |_| ()),
            Err(WireError::Truncated("push node state"))
        );
        // More than max_push_nodes.
        let too_many = push_pull_claiming("ce00200000", &[]);
        let err = WireError::TooLarge { what: "push/pull node count", limit: 1 << 20 };
        assert_eq!(codec.stream_frame(&too_many, true).unwrap_err(), err);
        assert_eq!(codec.decode_stream(&too_many, true, |_| ()).unwrap_err(), err);
        // Negative counts.
        let negative = push_pull_claiming("ff", &[]);
        assert_eq!(codec.stream_frame(&negative, true), Err(WireError::IntOutOfRange("Nodes")));
        // Empty node maps are nodes with zero values.
        let zeros = push_pull_claiming("02", &[0x80, 0x80]);
        let nodes = codec.decode_stream(&zeros, true, |m| match m {
            StreamMessage::PushPull(p) => p.nodes.iter().map(|n| n.state).collect::<Vec<_>>(),
            _ => Vec::new(),
        });
        assert_eq!(nodes, Ok(vec![NodeStateKind::Alive; 2]));
    }

    #[test]
    fn stream_length_is_capped() {
        let codec = Codec { max_stream_len: 1000, ..plain(IntEncoding::Signed) };
        let too_large = WireError::TooLarge { what: "stream message", limit: 1000 };
        // The header announces 5000 bytes: refused before they arrive.
        let header = unhex("0881aa557365724d73674c656ed11388");
        assert_eq!(codec.stream_frame(&header, true).unwrap_err(), too_large);
        let long = encoded(&StreamMessage::User(&[1; 2000]), codec.ints);
        assert_eq!(codec.decode_stream(&long, true, |_| ()).unwrap_err(), too_large);
        // A small compressed frame that inflates past the cap.
        let bomb_codec = Codec { max_stream_len: 1 << 20, ..Codec::default() };
        let mut bomb = Vec::new();
        bomb_codec.seal_stream(
            &encoded(&StreamMessage::User(&vec![0; 2 << 20]), codec.ints),
            false,
            &mut bomb,
        );
        assert!(bomb.len() < 10_000);
        assert!(matches!(bomb_codec.stream_frame(&bomb, false), Ok(StreamFrame::Complete { .. })));
        let err = bomb_codec.decode_stream(&bomb, false, |_| ());
        assert_eq!(err, Err(WireError::TooLarge { what: "decompressed data", limit: 1 << 20 }));
    }

    fn arb_stream() -> impl Strategy<Value = StreamMessage<'static>> {
        prop_oneof![
            arb_ping().prop_map(StreamMessage::Ping),
            arb_ack().prop_map(StreamMessage::Ack),
            (any::<bool>(), vec(arb_node(), 0..6), bytes()).prop_map(
                |(join, nodes, user_state)| StreamMessage::PushPull(PushPull {
                    join,
                    nodes,
                    user_state
                })
            ),
            bytes().prop_map(StreamMessage::User),
            text().prop_map(|error| StreamMessage::Err(ErrResp { error })),
        ]
    }

    /// A codec (compression on or off, label or none), a direction, and the sealed stream.
    fn sealed() -> impl Strategy<Value = (Codec, bool, StreamMessage<'static>, Vec<u8>)> {
        (arb_stream(), ints(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(message, ints, compress, label, dialer)| {
                let codec = Codec { ints, compress, ..labelled(if label { "prod" } else { "" }) };
                let mut out = Vec::new();
                codec.seal_stream(&encoded(&message, ints), dialer, &mut out);
                (codec, dialer, message, out)
            },
        )
    }

    proptest! {
        #[test]
        fn streams_round_trip((codec, dialer, message, sealed) in sealed()) {
            let mut with_garbage = sealed.clone();
            with_garbage.extend([0xc1, 0x00]);
            let len = sealed.len();
            let framed = codec.stream_frame(&with_garbage, dialer);
            prop_assert_eq!(framed, Ok(StreamFrame::Complete { len }));
            prop_assert_eq!(codec.decode_stream(&sealed, dialer, |m| m == message), Ok(true));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_prefix_is_incomplete_with_a_true_lower_bound(
            (codec, dialer, _m, sealed) in sealed(),
        ) {
            for cut in 0..sealed.len() {
                match codec.stream_frame(&sealed[..cut], dialer) {
                    Ok(StreamFrame::Incomplete { at_least }) => {
                        let bounded = cut < at_least && at_least <= sealed.len();
                        prop_assert!(bounded, "prefix {}: at least {}", cut, at_least);
                    }
                    other => prop_assert!(false, "prefix {}: {:?}", cut, other),
                }
            }
            let complete = Ok(StreamFrame::Complete { len: sealed.len() });
            prop_assert_eq!(codec.stream_frame(&sealed, dialer), complete.clone());
            let mut with_garbage = sealed.clone();
            with_garbage.extend_from_slice(&sealed);
            prop_assert_eq!(codec.stream_frame(&with_garbage, dialer), complete);
        }

        #[test]
        fn mutated_streams_never_panic(
            (codec, dialer, _m, mut sealed) in sealed(),
            edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            for (at, byte) in edits {
                let at = at.index(sealed.len());
                sealed[at] = byte;
            }
            for inbound in [dialer, !dialer] {
                if let Ok(StreamFrame::Complete { len }) = codec.stream_frame(&sealed, inbound) {
                    let _ = codec.decode_stream(&sealed[..len], inbound, |_| ());
                }
                let _ = codec.decode_stream(&sealed, inbound, |_| ());
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_streams_never_panic(
            bytes in vec(any::<u8>(), 0..600),
            first in prop_oneof![0u8..=13, Just(LABEL_MSG)],
        ) {
            let mut typed = bytes.clone();
            typed.insert(0, first);
            for codec in [Codec::default(), labelled("prod")] {
                for buf in [&bytes, &typed] {
                    for inbound in [true, false] {
                        let _ = codec.stream_frame(buf, inbound);
                        let _ = codec.decode_stream(buf, inbound, |_| ());
                    }
                }
            }
        }
    }
}
