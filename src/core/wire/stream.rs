//! TCP streams: label (dialer only) → [encryption slot] → compress → one message (spec §7).
//!
//! Each connection carries one request and at most one reply. Go peers never half-close, so a
//! reader cannot wait for EOF: [`Codec::stream_frame`] says how many bytes the first message
//! needs, from the bytes seen so far, cheaply enough to call after every read.

use super::packet::Codec;
use super::{Ack, ErrResp, IntEncoding, Ping, PushNodeState, PushPullHeader, WireError};

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
        todo!("{ints:?} {}", out.len())
    }
}

impl Codec {
    /// Find the end of the first message in `buf`, the bytes read so far from a stream.
    /// `inbound` is true for a stream a peer opened to us: it may start with the dialer's
    /// label header, which is checked here. Replies never carry a label.
    pub fn stream_frame(&self, buf: &[u8], inbound: bool) -> Result<StreamFrame, WireError> {
        todo!("{} {inbound}", buf.len())
    }

    /// Decode one complete stream message (`buf` = the `len` bytes [`Self::stream_frame`]
    /// reported) and hand it to `f`. Decompressed data lives only for the call.
    pub fn decode_stream<R>(
        &self,
        buf: &[u8],
        inbound: bool,
        f: impl FnOnce(StreamMessage<'_>) -> R,
    ) -> Result<R, WireError> {
        todo!("{} {inbound} {}", buf.len(), std::mem::size_of_val(&f))
    }

    /// Wrap a plain stream message for the wire, appending to `out`: LZW when compression is
    /// enabled (always, for streams, as Go does), then the label when `dialer` is true (only the
    /// side that opened the connection writes one, once, first).
    pub fn seal_stream(&self, plain: &[u8], dialer: bool, out: &mut Vec<u8>) {
        todo!("{} {dialer} {}", plain.len(), out.len())
    }
}

#[allow(dead_code)]
fn _uses(_: PushPullHeader) {}
