//! One connection carrying one memberlist exchange: a request and at most one reply, over
//! plain TCP or a TLS session ([`Pipe`]); the exchange is the same over both.
//!
//! Go peers never half-close, so a frame is complete when the codec says so, not at EOF
//! ([`Codec::stream_frame`]). Readiness is edge-triggered: every call drains reads and writes
//! until `WouldBlock`.

use std::io;
use std::net::SocketAddr;

use mio::Interest;

use super::pipe::Pipe;
use crate::core::Millis;
use crate::core::swim::{StreamFailure, StreamId};
use crate::core::wire::{Codec, StreamFrame, WireError};

/// Who opened the connection, and why.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// A peer's request to us.
    Inbound { from: SocketAddr },
    /// Our request, for the core's stream `id`.
    Outbound { id: StreamId, expect_reply: bool },
}

/// What a readiness event led to.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Nothing finished yet.
    Pending,
    /// The first `len` bytes read form a complete frame (a request, or the reply we wait for).
    Frame(usize),
    /// Everything we had to write is written and nothing more is expected: close.
    Done,
    /// The exchange failed: close.
    Failed(StreamFailure),
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) pipe: Pipe,
    pub(crate) role: Role,
    pub(crate) deadline: Millis,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    /// Don't ask the codec again before this many bytes are in.
    need: usize,
    connected: bool,
    /// An inbound connection whose reply is being written.
    replying: bool,
}

impl Conn {
    pub(crate) fn outbound(
        pipe: Pipe,
        id: StreamId,
        bytes: Vec<u8>,
        expect_reply: bool,
        deadline: Millis,
    ) -> Self {
        let role = Role::Outbound { id, expect_reply };
        Self::new(pipe, role, bytes, deadline, false)
    }

    pub(crate) fn inbound(pipe: Pipe, from: SocketAddr, deadline: Millis) -> Self {
        Self::new(pipe, Role::Inbound { from }, Vec::new(), deadline, true)
    }

    /// An inbound stream whose first `read` bytes (what followed the TLS transport's STREAM
    /// frame) were already taken from the pipe.
    pub(crate) fn inbound_after(
        pipe: Pipe,
        from: SocketAddr,
        deadline: Millis,
        read: Vec<u8>,
    ) -> Self {
        let mut conn = Self::inbound(pipe, from, deadline);
        conn.inbuf = read;
        conn
    }

    fn new(pipe: Pipe, role: Role, out: Vec<u8>, deadline: Millis, connected: bool) -> Self {
        Self {
            pipe,
            role,
            deadline,
            out,
            written: 0,
            inbuf: Vec::new(),
            need: 1,
            connected,
            replying: false,
        }
    }

    /// Interest to register: outbound connections wait for connect (writable) and the reply;
    /// inbound ones read until the request is in, then write the reply.
    pub(crate) fn interest(&self) -> Interest {
        if matches!(self.pipe, Pipe::Tls(_)) {
            // A TLS session reads and writes records in both directions whatever the
            // exchange is doing (handshake, alerts, tickets).
            return Interest::READABLE | Interest::WRITABLE;
        }
        match self.role {
            Role::Outbound { .. } => Interest::READABLE | Interest::WRITABLE,
            Role::Inbound { .. } if self.replying => Interest::WRITABLE,
            Role::Inbound { .. } => Interest::READABLE,
        }
    }

    /// The frame reported by [`Progress::Frame`].
    pub(crate) fn frame(&self, len: usize) -> &[u8] {
        &self.inbuf[..len.min(self.inbuf.len())]
    }

    /// Start writing the reply to an inbound request.
    pub(crate) fn reply(&mut self, bytes: Vec<u8>) {
        self.out = bytes;
        self.written = 0;
        self.replying = true;
    }

    /// Drive the connection after a readiness event (or right after a reply was queued).
    pub(crate) fn drive(&mut self, codec: &Codec, max_len: usize) -> Progress {
        if !self.connected {
            match self.check_connected() {
                Ok(true) => self.connected = true,
                Ok(false) => return Progress::Pending,
                Err(_) => return Progress::Failed(StreamFailure::Connect),
            }
        }
        if let Err(e) = self.pipe.progress() {
            return Progress::Failed(io_failure(&e));
        }
        if let Err(e) = self.flush() {
            return Progress::Failed(io_failure(&e));
        }
        if self.written < self.out.len() || !self.pipe.flushed() {
            return Progress::Pending;
        }
        match self.role {
            Role::Outbound { expect_reply: false, .. } => Progress::Done,
            Role::Inbound { .. } if self.replying => Progress::Done,
            Role::Outbound { .. } => self.read_frame(codec, false, max_len),
            Role::Inbound { .. } => self.read_frame(codec, true, max_len),
        }
    }

    /// A non-blocking connect has finished when the socket has a peer; an error means it failed.
    fn check_connected(&mut self) -> io::Result<bool> {
        if let Some(e) = self.pipe.sock().take_error()? {
            return Err(e);
        }
        match self.pipe.sock().peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.pipe.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_frame(&mut self, codec: &Codec, inbound: bool, max_len: usize) -> Progress {
        let mut chunk = [0u8; 16 * 1024];
        let mut eof = false;
        loop {
            match self.pipe.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    if self.inbuf.len() + n > max_len {
                        return Progress::Failed(StreamFailure::Wire(WireError::TooLarge {
                            what: "stream",
                            limit: max_len,
                        }));
                    }
                    self.inbuf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A TLS peer that closed without close_notify (as a peer that answered and
                // hung up may): the bytes read so far still count, and the frame decoder
                // below tells a whole reply from a cut one.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    eof = true;
                    break;
                }
                Err(e) => return Progress::Failed(io_failure(&e)),
            }
        }
        if self.inbuf.len() >= self.need {
            match codec.stream_frame(&self.inbuf, inbound) {
                Ok(StreamFrame::Complete { len }) => return Progress::Frame(len),
                Ok(StreamFrame::Incomplete { at_least }) => {
                    self.need = at_least.max(self.inbuf.len() + 1)
                }
                Err(e) => return Progress::Failed(StreamFailure::Wire(e)),
            }
        }
        if eof { Progress::Failed(StreamFailure::Closed) } else { Progress::Pending }
    }
}

fn io_failure(e: &io::Error) -> StreamFailure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => StreamFailure::Connect,
        _ => StreamFailure::Closed,
    }
}
