//! TCP streams: label (dialer only) → [encryption slot] → compress → one message (spec §7).
//!
//! Each connection carries one request and at most one reply. Go peers never half-close, so a
//! reader cannot wait for EOF: [`Codec::stream_frame`] says how many bytes the first message
//! needs, from the bytes seen so far, cheaply enough to call after every read. Every length it
//! learns is held against [`Codec::max_stream_len`] before waiting for the bytes, and the
//! node count of a push/pull against [`Codec::max_push_nodes`].

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
                UserMsgHeader {
                    user_msg_len: payload.len(),
                }
                .encode_body(ints, out);
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
        Ok(Self {
            join: header.join,
            nodes,
            user_state,
        })
    }
}

fn check_node_count(nodes: usize, limit: usize) -> Result<(), WireError> {
    if nodes > limit {
        return Err(WireError::TooLarge {
            what: "push/pull node count",
            limit,
        });
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
            // Encryption slot: `0A` + u32 BE length frames an encrypted message. Not
            // implemented yet, so such a stream cannot be read.
            Some(MessageType::Encrypt) => Err(WireError::EncryptionNotConfigured),
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
        WireError::TooLarge {
            what: "stream message",
            limit: self.max_stream_len,
        }
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
            Some(MessageType::Compress) => {
                let body = body.get(1..).unwrap_or_default();
                let plain = decompress_message(body, self.max_stream_len)?;
                Ok(f(self.parse_plain(&plain)?))
            }
            // Encryption slot: decrypt here (AAD = the 5 frame header bytes + the label).
            Some(MessageType::Encrypt) => Err(WireError::EncryptionNotConfigured),
            _ => Ok(f(self.parse_plain(body)?)),
        }
    }

    /// A plain (uncompressed, unencrypted) stream message. Go accepts one layer of each
    /// wrapper only, so a nested compress or encrypt is an unexpected type here.
    fn parse_plain<'b>(&self, body: &'b [u8]) -> Result<StreamMessage<'b>, WireError> {
        let (&ty, rest) = body
            .split_first()
            .ok_or(WireError::Truncated("stream message type"))?;
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
    /// enabled (always, for streams, as Go does), then the label when `dialer` is true (only the
    /// side that opened the connection writes one, once, first).
    ///
    /// # Panics
    /// When the label is longer than [`super::LABEL_MAX_LEN`] (255) bytes.
    pub fn seal_stream(&self, plain: &[u8], dialer: bool, out: &mut Vec<u8>) {
        if dialer {
            self.write_label(out);
        }
        // Encryption slot: `0A` + u32 BE length + the encrypted (compressed) message.
        if self.compress {
            Compress {
                algo: 0,
                buf: &lzw::compress(plain),
            }
            .encode(out);
        } else {
            out.extend_from_slice(plain);
        }
    }
}
