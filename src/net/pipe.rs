//! The byte pipe under a connection: a plain `TcpStream`, or a rustls session over one.
//!
//! Both are non-blocking and speak `WouldBlock`; callers read and write plaintext and never
//! see records. rustls' `Connection` is sans-IO: [`Pipe::read`] and [`Pipe::progress`] move
//! TLS records between it and the socket, [`Pipe::write`] hands it plaintext.
//!
//! Record boundaries (why one `write` per frame is enough for Alertmanager's receiver, which
//! loses bytes when one TLS record holds the end of a frame and the start of the next): in
//! rustls 0.23, plaintext written during the handshake is kept as one chunk per `write` call
//! and each chunk is encrypted on its own once the handshake ends (`flush_plaintext` pops them
//! one by one); after the handshake, each `write` call is fragmented into records of its own.
//! So a record never holds bytes of two `write` calls, and a frame handed over in one or more
//! calls, none shared with another frame, starts and ends on record boundaries. The test
//! `net::tls::tests::each_write_is_its_own_record` checks this on the bytes rustls emits.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// TLS bytes (and, during the handshake, plaintext) a session buffers for sending before
/// `write` accepts no more: a little more than the largest frame, so a frame never waits for a
/// whole buffer to drain. Received plaintext is bounded by rustls itself (16 KiB, drained by
/// every `read`).
pub(crate) const TLS_BUFFER_BYTES: usize = 128 * 1024;

/// A socket, or a TLS session over one.
#[derive(Debug)]
pub(crate) enum Pipe {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsPipe>),
}

/// A rustls session and its socket.
#[derive(Debug)]
pub(crate) struct TlsPipe {
    sock: TcpStream,
    session: rustls::Connection,
    /// Set when the handshake itself failed (a refused certificate, a protocol mismatch),
    /// as opposed to a session that broke later.
    handshake_failed: Option<String>,
}

impl Pipe {
    /// A TLS session over `sock`, with its send buffer bounded.
    pub(crate) fn tls(sock: TcpStream, session: impl Into<rustls::Connection>) -> Self {
        let mut session = session.into();
        session.set_buffer_limit(Some(TLS_BUFFER_BYTES));
        Self::Tls(Box::new(TlsPipe { sock, session, handshake_failed: None }))
    }

    /// The socket, for registration and connect checks.
    pub(crate) fn sock(&mut self) -> &mut TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(t) => &mut t.sock,
        }
    }

    /// The connected peer, if known.
    pub(crate) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Plain(s) => s.peer_addr().ok(),
            Self::Tls(t) => t.sock.peer_addr().ok(),
        }
    }

    /// Why the TLS handshake failed, if it did.
    pub(crate) fn handshake_failure(&self) -> Option<&str> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(t) => t.handshake_failed.as_deref(),
        }
    }

    /// True while a TLS handshake is under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Tls(t) => t.session.is_handshaking(),
        }
    }

    /// True when nothing accepted by [`Self::write`] is still waiting in a TLS session.
    pub(crate) fn flushed(&self) -> bool {
        match self {
            Self::Plain(_) => true,
            // Plaintext written during the handshake waits in the session until it ends.
            Self::Tls(t) => !t.session.is_handshaking() && !t.session.wants_write(),
        }
    }

    /// Move pending records both ways without taking plaintext: drives a handshake, sends
    /// what is buffered, and notices a close. Plaintext that arrives stays in the session for
    /// [`Self::read`]. Returns `Ok(true)` when the peer has closed.
    pub(crate) fn progress(&mut self) -> io::Result<bool> {
        match self {
            Self::Plain(_) => Ok(false),
            Self::Tls(t) => t.progress(),
        }
    }

    /// Say goodbye before the socket is dropped: a TLS session sends close_notify (best
    /// effort), so the peer reads a clean end of stream rather than a truncation.
    pub(crate) fn close(&mut self) {
        if let Self::Tls(t) = self {
            t.session.send_close_notify();
            let _ = t.send();
        }
    }

    /// Write plaintext: `WouldBlock` when nothing could be taken now.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(t) => t.write(buf),
        }
    }

    /// Read plaintext: `Ok(0)` at the end of the stream, `WouldBlock` when nothing is there.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(t) => t.read(buf),
        }
    }
}

impl TlsPipe {
    fn progress(&mut self) -> io::Result<bool> {
        let closed = self.receive()?;
        self.send()?;
        Ok(closed)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Records the handshake still owes (or a buffer that drained) go out first, so the
        // buffer limit frees room for this write.
        self.send()?;
        let n = self.session.writer().write(buf)?;
        self.send()?;
        if n == 0 && !buf.is_empty() {
            // Buffer full: the socket is not writable now, or the handshake has not finished.
            let _ = self.progress()?;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Nothing decrypted is waiting: take records from the socket.
            match self.session.read_tls(&mut self.sock) {
                Ok(0) => {
                    // The peer closed. The session now answers reads with the end of the
                    // stream (after close_notify) or UnexpectedEof (without).
                    self.process()?;
                    return match self.session.reader().read(buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            Err(io::ErrorKind::UnexpectedEof.into())
                        }
                        other => other,
                    };
                }
                Ok(_) => {
                    self.process()?;
                    self.send()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Take every record the socket holds; true if the peer has closed. A full received
    /// plaintext buffer stops the loop: [`Self::read`] drains it and comes back.
    fn receive(&mut self) -> io::Result<bool> {
        loop {
            if !self.session.wants_read() {
                return Ok(false);
            }
            match self.session.read_tls(&mut self.sock) {
                Ok(0) => {
                    self.process()?;
                    return Ok(true);
                }
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn process(&mut self) -> io::Result<()> {
        let handshaking = self.session.is_handshaking();
        match self.session.process_new_packets() {
            Ok(_) => Ok(()),
            Err(e) => {
                // Tell the peer why (a fatal alert), best effort, before the socket closes.
                let _ = self.session.write_tls(&mut self.sock);
                if handshaking {
                    self.handshake_failed = Some(e.to_string());
                }
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    fn send(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
