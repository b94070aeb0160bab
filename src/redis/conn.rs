//! One non-blocking TCP connection to Redis, plain or TLS, driven by the mio loop on
//! readiness.
//!
//! TLS is rustls' sans-IO `ClientConnection` over the same socket: on readiness, records are
//! read with `read_tls` until `WouldBlock`, decrypted by `process_new_packets`, and the
//! plaintext is drained from `reader()` into the RESP parser; commands go into `writer()` and
//! out with `write_tls` while the session wants to write. No thread, no blocking call: a
//! handshake that waits for the server just returns, and a failed one is [`ConnError::Tls`].
//!
//! The connection queues packed RESP commands ([`::redis::Cmd::get_packed_command`]) and writes
//! them; it reads replies and pub/sub messages and decodes them with [`::redis::Parser`], whose
//! combine decoder keeps its buffered bytes and partial state when the reader fails mid-value
//! and resumes on the next call. So a `WouldBlock` from the socket is just "no more for now".
//!
//! Readiness is edge-triggered, so [`RespConn::drive`] writes until the queue is empty or the
//! kernel refuses more, and reads until `WouldBlock`, or until the read budget is spent (then
//! [`Drive::more`] asks the loop to call again without waiting for a new edge).
//!
//! Every buffer is bounded: a single value larger than [`Limits::max_value`] is an error, the
//! read side stops at [`Limits::read_budget`] per call, and the caller bounds the out buffer
//! by checking [`RespConn::unwritten`] before it queues.
//!
//! Server error replies (`-ERR ...`, RESP3 `!...`) are values, not failures: the parser
//! returns them as [`::redis::Value::ServerError`], and they are passed up like any reply.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use ::redis::{Parser, Value};
use mio::Interest;
use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Largest single reply or message accepted by default: 64 MiB. Redis itself allows bulk
/// strings up to 512 MiB (`proto-max-bulk-len`), but our largest payload, a full state, is far
/// smaller; anything this big is a broken or hostile server. The parser buffers a whole bulk
/// string before yielding it, so this also bounds the parser's memory.
pub(crate) const MAX_VALUE_BYTES: usize = 64 << 20;
/// Bytes read per [`RespConn::drive`] call by default before yielding to the other sockets.
pub(crate) const READ_BUDGET: usize = 256 << 10;
/// Bytes a TLS session may hold unsent (plaintext before the handshake completes, records
/// after): rustls' own default, set explicitly so the bound is ours. Past it the session
/// refuses plaintext and the rest stays in the out buffer, which the caller bounds.
pub(crate) const TLS_BUFFER_BYTES: usize = 64 << 10;
/// Out-buffer capacity kept after a burst has been written; more is given back.
const OUT_KEEP_BYTES: usize = 64 << 10;
/// Out-buffer capacity beyond which an emptied buffer is shrunk to [`OUT_KEEP_BYTES`]: big
/// enough that ordinary traffic never reallocates, small enough that one burst is not kept.
const OUT_SHRINK_ABOVE: usize = 1 << 20;

/// The bounds of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// A value whose encoding needs more bytes than this is [`ConnError::TooLarge`]. Counted as
    /// bytes read since the last complete value, so a value up to this size is always accepted
    /// and one over it by more than a socket read (8 KiB, the parser's read size) never is.
    pub(crate) max_value: usize,
    /// Bytes read per [`RespConn::drive`] call; then [`Drive::more`] is set.
    pub(crate) read_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_value: MAX_VALUE_BYTES, read_budget: READ_BUDGET }
    }
}

/// What one [`RespConn::drive`] call did, besides the values it pushed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Drive {
    /// The non-blocking connect completed during this call (send the handshake now).
    pub(crate) connected_now: bool,
    /// The read budget ran out before the socket did: call again without waiting for
    /// readiness, which edge-triggered polling will not report again.
    pub(crate) more: bool,
}

/// What the connection counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnStats {
    /// RESP bytes written (to the socket, or into the TLS session).
    pub(crate) bytes_written: u64,
    /// RESP bytes read (from the socket, or out of the TLS session).
    pub(crate) bytes_read: u64,
    /// Complete values decoded.
    pub(crate) values: u64,
}

/// Why the connection is unusable. After any of these, drop it (and reconnect if wanted): the
/// values pushed before the error are complete and valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConnError {
    /// The non-blocking connect failed (refused, unreachable, ...).
    #[error("connecting to Redis: {0}")]
    Connect(#[source] io::Error),
    /// Reading or writing failed.
    #[error("Redis connection: {0}")]
    Io(#[source] io::Error),
    /// The server closed the connection.
    #[error("Redis closed the connection")]
    Closed,
    /// The TLS handshake or session failed: an untrusted or misnamed certificate, an alert
    /// from the server (it wanted a client certificate, or did not trust ours), bad records.
    #[error("TLS with {addr}: {reason}")]
    Tls {
        /// The server's address.
        addr: SocketAddr,
        /// What rustls or the server said.
        reason: String,
    },
    /// The server sent bytes that are not RESP.
    #[error("Redis protocol error: {0}")]
    Protocol(String),
    /// A single value was larger than [`Limits::max_value`].
    #[error("Redis reply larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// The byte stream under the RESP codec: the socket itself, or a rustls session over it
/// (plaintext in and out of the session, records on the socket), so that neither the RESP
/// side of [`RespConn`] nor the loop depends on which.
#[derive(Debug)]
enum Link {
    Plain(TcpStream),
    // Boxed: a session is far larger than a socket.
    Tls { sock: TcpStream, session: Box<ClientConnection> },
}

/// What a TLS link needs: the client configuration (built once per node from the TLS
/// settings) and the name the server's certificate must carry, also sent as SNI.
#[derive(Debug, Clone)]
pub(crate) struct TlsSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

/// A TLS failure carried through `io::Error` (the parser's reader can only return those), so
/// that it comes out as [`ConnError::Tls`] rather than as a socket error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TlsFailure(String);

fn tls_failure(reason: impl std::fmt::Display) -> io::Error {
    io::Error::other(TlsFailure(reason.to_string()))
}

impl Link {
    fn socket(&mut self) -> &mut TcpStream {
        match self {
            Self::Plain(sock) | Self::Tls { sock, .. } => sock,
        }
    }

    fn socket_ref(&self) -> &TcpStream {
        match self {
            Self::Plain(sock) | Self::Tls { sock, .. } => sock,
        }
    }

    /// Whether records wait to be written (TLS only: a plain link buffers nothing itself).
    fn wants_write(&self) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Tls { session, .. } => session.wants_write(),
        }
    }

    /// Advance the TLS handshake as far as the socket allows: `Ok(true)` once it is complete
    /// (at once for a plain link), `Ok(false)` when waiting for the server.
    fn handshake(&mut self) -> io::Result<bool> {
        let Self::Tls { sock, session } = self else { return Ok(true) };
        loop {
            send_records(sock, session)?;
            if !session.is_handshaking() {
                return Ok(true);
            }
            match session.read_tls(sock) {
                Ok(0) => {
                    return Err(tls_failure(
                        "the server closed the connection during the handshake",
                    ));
                }
                Ok(_) => process(sock, session)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Write pending records until done or the kernel would block (plain: nothing to do).
    fn send_pending(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(_) => Ok(()),
            Self::Tls { sock, session } => send_records(sock, session).map(|_| ()),
        }
    }
}

/// Decrypt what `read_tls` took in. A rustls error (a bad certificate, an alert from the
/// server) ends the link; the alert rustls queued in answer is sent if the socket takes it.
fn process(sock: &mut TcpStream, session: &mut ClientConnection) -> io::Result<()> {
    if let Err(e) = session.process_new_packets() {
        let _ = send_records(sock, session);
        return Err(tls_failure(e));
    }
    Ok(())
}

/// Write TLS records while rustls has some: `Ok(true)` when all went out, `Ok(false)` when
/// the kernel would block (writable readiness then resumes it).
fn send_records(sock: &mut TcpStream, session: &mut ClientConnection) -> io::Result<bool> {
    while session.wants_write() {
        match session.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (sock, session) = match self {
            Self::Plain(sock) => return sock.read(buf),
            Self::Tls { sock, session } => (sock, session),
        };
        loop {
            // Plaintext already decrypted comes first; rustls says `WouldBlock` when it has
            // none, and 0 only after the server's close_notify.
            match session.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            // Empty: take records from the socket. Draining the plaintext first keeps rustls
            // under its received-plaintext limit, so `read_tls` never refuses for that.
            match session.read_tls(sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    process(sock, session)?;
                    // Key updates and alerts want answers; a full socket waits for writable.
                    send_records(sock, session)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (sock, session) = match self {
            Self::Plain(sock) => return sock.write(buf),
            Self::Tls { sock, session } => (sock, session),
        };
        // The session takes plaintext up to its buffer limit (`TLS_BUFFER_BYTES` of records
        // not yet written); when full, write records out and try once more.
        let mut n = session.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            if !send_records(sock, session)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            n = session.writer().write(buf)?;
        }
        send_records(sock, session)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(sock) => sock.flush(),
            Self::Tls { .. } => self.send_pending(),
        }
    }
}

/// One TCP connection to Redis, moving packed commands out and decoded values in.
pub(crate) struct RespConn {
    link: Link,
    addr: SocketAddr,
    /// The TCP connect completed.
    tcp_up: bool,
    /// The TCP connect and the TLS handshake (if any) completed: RESP can flow.
    connected: bool,
    /// Queued bytes; `out[written..]` is still to be written.
    out: Vec<u8>,
    written: usize,
    parser: Parser,
    /// Bytes read since the parser last completed a value (see [`Limits::max_value`]).
    since_value: usize,
    limits: Limits,
    stats: ConnStats,
}

// `redis::Parser` has no `Debug`; show everything else.
impl std::fmt::Debug for RespConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespConn")
            .field("link", &self.link)
            .field("addr", &self.addr)
            .field("tcp_up", &self.tcp_up)
            .field("connected", &self.connected)
            .field("unwritten", &self.unwritten())
            .field("since_value", &self.since_value)
            .field("limits", &self.limits)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RespConn {
    /// Start a non-blocking plain connect to `addr` with the default [`Limits`].
    #[cfg(test)]
    pub(crate) fn connect(addr: SocketAddr) -> Result<Self, ConnError> {
        Self::connect_with(addr, Limits::default(), None)
    }

    /// Start a non-blocking connect to `addr`, with TLS over it when `tls` is given.
    /// TCP_NODELAY is on: commands are small and latency-bound (a heartbeat, a publish), and we
    /// already coalesce what is queued into one write. Limits of 0 are raised to 1, so the
    /// connection always makes progress.
    pub(crate) fn connect_with(
        addr: SocketAddr,
        limits: Limits,
        tls: Option<&TlsSetup>,
    ) -> Result<Self, ConnError> {
        let sock = TcpStream::connect(addr).map_err(ConnError::Connect)?;
        sock.set_nodelay(true).map_err(ConnError::Connect)?;
        let link = match tls {
            None => Link::Plain(sock),
            Some(tls) => {
                let mut session = ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
                    .map_err(|e| ConnError::Tls { addr, reason: e.to_string() })?;
                session.set_buffer_limit(Some(TLS_BUFFER_BYTES));
                Link::Tls { sock, session: Box::new(session) }
            }
        };
        let limits =
            Limits { max_value: limits.max_value.max(1), read_budget: limits.read_budget.max(1) };
        Ok(Self {
            link,
            addr,
            tcp_up: false,
            connected: false,
            out: Vec::new(),
            written: 0,
            parser: Parser::new(),
            since_value: 0,
            limits,
            stats: ConnStats::default(),
        })
    }

    /// The socket, to register, reregister and deregister with a mio `Registry`.
    pub(crate) fn source(&mut self) -> &mut TcpStream {
        self.link.socket()
    }

    /// The interest to register: always readable (replies, pushed messages, EOF, handshake
    /// records); writable while the connect is pending (that is how its completion is
    /// reported) or bytes wait for the socket — queued bytes on a plain link, records in the
    /// session on a TLS one (queued plaintext it refused waits for those to go first). Never
    /// writable just because the handshake is waiting for the server: edge-triggered polling
    /// reports a writable socket at every reregistration, which would spin the loop.
    /// Reregister when it changes after [`Self::queue`] or [`Self::drive`].
    pub(crate) fn interest(&self) -> Interest {
        let write = match &self.link {
            _ if !self.tcp_up => true,
            Link::Plain(_) => self.unwritten() > 0,
            Link::Tls { .. } => self.link.wants_write(),
        };
        if write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE }
    }

    /// Whether the connect (and the TLS handshake) has completed (as seen by the last
    /// [`Self::drive`]).
    #[cfg(test)]
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Append packed RESP command bytes. Nothing is written until [`Self::drive`]. The buffer
    /// has no bound of its own: callers bound what they queue with [`Self::unwritten`].
    pub(crate) fn queue(&mut self, packed: &[u8]) {
        self.out.extend_from_slice(packed);
    }

    /// Bytes queued and not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        self.out.len() - self.written
    }

    /// Counters.
    pub(crate) fn stats(&self) -> ConnStats {
        self.stats
    }

    /// Drive after a readiness event, after queueing, or again after [`Drive::more`]: finish a
    /// pending connect and TLS handshake, write everything queued (as few `write` calls as
    /// the kernel allows), then read until `WouldBlock` or the read budget, pushing every
    /// complete value to `values` in arrival order. On an error, the values pushed so far are
    /// still valid.
    pub(crate) fn drive(&mut self, values: &mut Vec<Value>) -> Result<Drive, ConnError> {
        let mut drive = Drive::default();
        if !self.connected {
            if !self.tcp_up {
                if !self.finish_connect().map_err(ConnError::Connect)? {
                    return Ok(drive);
                }
                self.tcp_up = true;
            }
            if !self.link.handshake().map_err(|e| self.io_error(e))? {
                return Ok(drive);
            }
            self.connected = true;
            drive.connected_now = true;
        }
        self.flush().map_err(|e| self.io_error(e))?;
        // Read even when writes are stuck: a server blocked writing to us stops reading from
        // us, and only our reading unblocks both sides.
        drive.more = self.read_values(values)?;
        if matches!(self.link, Link::Tls { .. }) {
            // Reading may have freed room in the session (records out) or queued answers.
            self.flush().map_err(|e| self.io_error(e))?;
        }
        Ok(drive)
    }

    /// A socket error, or a TLS failure carried in one (see [`TlsFailure`]).
    fn io_error(&self, e: io::Error) -> ConnError {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<TlsFailure>()) {
            Some(tls) => ConnError::Tls { addr: self.addr, reason: tls.0.clone() },
            None => ConnError::Io(e),
        }
    }

    /// A non-blocking connect has finished when the socket has a peer; a pending socket error
    /// means it failed. (mio's documented way: `take_error`, then `peer_addr`.)
    fn finish_connect(&self) -> io::Result<bool> {
        let sock = self.link.socket_ref();
        if let Some(e) = sock.take_error()? {
            return Err(e);
        }
        match sock.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Write the queue until it is empty or the kernel (or a full TLS session) would block,
    /// then the session's records, then reclaim the buffer.
    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.link.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.stats.bytes_written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.link.send_pending()?;
        // What lets `interest` ignore the out buffer on TLS: the session refuses plaintext
        // only while it holds records, and those keep writable interest on.
        debug_assert!(
            matches!(self.link, Link::Plain(_)) || self.unwritten() == 0 || self.link.wants_write()
        );
        self.compact();
        Ok(())
    }

    /// Keep the out buffer from growing forever: reuse it once written, give back a burst's
    /// capacity, and drop a long written prefix so appends don't keep extending the buffer.
    fn compact(&mut self) {
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > OUT_SHRINK_ABOVE {
                self.out.shrink_to(OUT_KEEP_BYTES);
            }
        } else if self.written >= OUT_KEEP_BYTES && self.written >= self.unwritten() {
            // At least as many dead bytes as live ones: moving the live tail down costs no
            // more than the writes that produced the dead prefix.
            self.out.drain(..self.written);
            self.written = 0;
        }
    }

    /// Decode every complete value; `Ok(true)` when the read budget cut reading short.
    fn read_values(&mut self, values: &mut Vec<Value>) -> Result<bool, ConnError> {
        let mut feed = Feed {
            link: &mut self.link,
            since_value: self.since_value,
            max_value: self.limits.max_value,
            budget_left: self.limits.read_budget,
            read: 0,
            stop: None,
        };
        let outcome = loop {
            // The parser reads only when its buffer holds no complete value, so every value
            // already buffered comes out before `feed` is asked for (and refuses) more bytes.
            match self.parser.parse_value(&mut feed) {
                Ok(value) => {
                    feed.since_value = 0;
                    // An EOF seen while completing this value is seen again on the next read.
                    feed.stop = None;
                    self.stats.values += 1;
                    values.push(value);
                }
                Err(err) => break classify(feed.stop.take(), &err, self.limits.max_value),
            }
        };
        self.since_value = feed.since_value;
        self.stats.bytes_read += feed.read as u64;
        outcome.map_err(|e| match e {
            ConnError::Io(e) => self.io_error(e),
            other => other,
        })
    }
}

/// Turn the parser's error into what happened, using what the reader recorded: the parser
/// wraps reader errors in a `RedisError`, and telling them apart by message would be fragile.
fn classify(
    stop: Option<Stop>,
    err: &::redis::RedisError,
    limit: usize,
) -> Result<bool, ConnError> {
    match stop {
        Some(Stop::WouldBlock) => Ok(false),
        Some(Stop::Budget) => Ok(true),
        Some(Stop::TooLarge) => Err(ConnError::TooLarge { limit }),
        // At EOF the parser reports the truncated value (or the empty stream) as an error.
        Some(Stop::Eof) => Err(ConnError::Closed),
        Some(Stop::Failed(e)) => Err(ConnError::Io(e)),
        // The reader did not fail, so the parser did: the bytes are not RESP.
        None => Err(ConnError::Protocol(err.to_string())),
    }
}

/// Why the reader stopped handing the parser bytes.
#[derive(Debug)]
enum Stop {
    /// The socket has nothing more for now.
    WouldBlock,
    /// This call's read budget is spent; the socket may have more.
    Budget,
    /// The value being decoded exceeds [`Limits::max_value`].
    TooLarge,
    /// The server closed its side.
    Eof,
    /// A real socket error.
    Failed(io::Error),
}

/// The reader given to the parser: reads the socket within this call's budget and the value
/// limit, and records why it stopped. Every stop but EOF is an error to the parser, which
/// then returns, keeping its partial state for the next call.
struct Feed<'a> {
    link: &'a mut Link,
    /// Bytes read since the last complete value. Bytes left in the parser's buffer after a
    /// value are not counted again, which is why the limit is exact only to one read.
    since_value: usize,
    max_value: usize,
    budget_left: usize,
    /// Bytes read in this call.
    read: usize,
    stop: Option<Stop>,
}

impl Feed<'_> {
    fn halt(&mut self, stop: Stop) -> io::Result<usize> {
        self.stop = Some(stop);
        // Any error makes the parser return; the kind is irrelevant, `stop` says what happened.
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The parser asks for more only with no complete value buffered, so everything counted
        // belongs to the value in progress: over the limit means that value is too large.
        if self.since_value > self.max_value {
            return self.halt(Stop::TooLarge);
        }
        if self.budget_left == 0 {
            return self.halt(Stop::Budget);
        }
        // Never read past limit + 1, so an oversized value is caught before it can complete.
        let room = self.max_value - self.since_value + 1;
        let len = buf.len().min(self.budget_left).min(room);
        loop {
            match self.link.read(&mut buf[..len]) {
                // An empty `buf` reads 0 too, but the parser never offers one (it reserves
                // before reading); so 0 here is the server's EOF.
                Ok(0) => {
                    self.stop = Some(Stop::Eof);
                    return Ok(0);
                }
                Ok(n) => {
                    self.since_value += n;
                    self.budget_left -= n;
                    self.read += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.halt(Stop::WouldBlock);
                }
                Err(e) => return self.halt(Stop::Failed(e)),
            }
        }
    }
}

/// The integration tests' certificate generator, for the TLS tests below. `src/tls`'s tests
/// include the same file: a private copy each keeps the two test modules independent.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "../../tests/util/certs.rs"]
mod test_certs;

#[cfg(test)]
mod tests {
    //! A `std` listener on loopback plays Redis, writing canned RESP; the client side is a real
    //! `RespConn` on a mio `Poll`. Everything runs on the test's thread: the fake server is
    //! blocking, the client never is, and the kernel moves the bytes between them.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::time::Duration;

    use ::redis::Value;
    use mio::{Events, Interest, Poll, Token};

    use super::{ConnError, Drive, Limits, RespConn};

    const TOKEN: Token = Token(0);
    /// How long one readiness wait may take before the test fails. Generous, so a loaded
    /// machine never fails a test; nothing asserts on how long anything took.
    const WAIT: Duration = Duration::from_secs(30);
    /// Drive calls a test may make before it gives up (a loop that stopped making progress).
    const MAX_STEPS: usize = 100_000;

    /// The client side: a connection registered with its own `Poll`.
    struct Client {
        poll: Poll,
        events: Events,
        conn: RespConn,
        interest: Interest,
        /// The last drive asked to be called again without waiting.
        more: bool,
        steps: usize,
    }

    impl Client {
        fn new(mut conn: RespConn) -> Self {
            let poll = Poll::new().expect("a test needs a Poll");
            let interest = conn.interest();
            poll.registry().register(conn.source(), TOKEN, interest).expect("register");
            Self { poll, events: Events::with_capacity(16), conn, interest, more: false, steps: 0 }
        }

        /// Wait for readiness (unless the last drive asked for more), drive once, and
        /// reregister if the interest changed: what the node's loop does per event.
        fn step(&mut self, values: &mut Vec<Value>) -> Result<Drive, ConnError> {
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "no progress after {MAX_STEPS} drive calls");
            if !self.more {
                self.wait();
            }
            let drive = self.conn.drive(values);
            self.more = drive.as_ref().is_ok_and(|d| d.more);
            self.update_interest();
            drive
        }

        fn wait(&mut self) {
            loop {
                match self.poll.poll(&mut self.events, Some(WAIT)) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("poll: {e}"),
                }
            }
            assert!(!self.events.is_empty(), "no readiness within {WAIT:?}");
        }

        fn queue(&mut self, packed: &[u8]) {
            self.conn.queue(packed);
            self.update_interest();
        }

        fn update_interest(&mut self) {
            let interest = self.conn.interest();
            if interest != self.interest {
                let sock = self.conn.source();
                self.poll.registry().reregister(sock, TOKEN, interest).expect("reregister");
                self.interest = interest;
            }
        }

        /// Step until `done(values)`; panics on a connection error.
        fn until(&mut self, values: &mut Vec<Value>, done: impl Fn(&[Value]) -> bool) {
            while !done(values) {
                if let Err(e) = self.step(values) {
                    panic!("connection failed: {e} (values so far: {values:?})");
                }
            }
        }

        /// Step until the connection fails, and return why.
        fn until_error(&mut self, values: &mut Vec<Value>) -> ConnError {
            loop {
                if let Err(e) = self.step(values) {
                    return e;
                }
            }
        }

        /// Step until the connect has completed.
        fn connected(&mut self, values: &mut Vec<Value>) {
            while !self.conn.is_connected() {
                if let Err(e) = self.step(values) {
                    panic!("connect failed: {e}");
                }
            }
        }
    }

    /// A fake Redis and a client connected to it.
    fn pair(limits: Limits) -> (Client, StdStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let client = Client::new(RespConn::connect_with(addr, limits, None).expect("connect"));
        // Blocks only until the kernel has completed the loopback handshake, which it does
        // without the client's help.
        let (server, _) = listener.accept().expect("accept");
        server.set_nodelay(true).expect("nodelay");
        server.set_read_timeout(Some(WAIT)).expect("read timeout");
        server.set_write_timeout(Some(WAIT)).expect("write timeout");
        (client, server)
    }

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    #[test]
    fn ping_is_written_whole_and_pong_is_parsed() {
        let (mut client, mut server) = pair(Limits::default());
        assert!(!client.conn.is_connected());
        let ping = ::redis::cmd("PING").get_packed_command();
        // Queued before the connect completes: written as soon as it does.
        client.queue(&ping);
        let mut values = Vec::new();
        let mut connected_now = 0;
        while !client.conn.is_connected() {
            connected_now += usize::from(client.step(&mut values).expect("connect").connected_now);
        }
        assert_eq!(connected_now, 1);
        assert_eq!(client.conn.unwritten(), 0);
        assert_eq!(client.conn.interest(), Interest::READABLE);

        let mut got = vec![0; ping.len()];
        server.read_exact(&mut got).expect("the packed PING");
        assert_eq!(got, ping);
        server.set_nonblocking(true).expect("nonblocking");
        let extra = server.read(&mut [0; 16]);
        assert!(extra.is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "only PING");

        server.write_all(b"+PONG\r\n").expect("write PONG");
        client.until(&mut values, |v| !v.is_empty());
        assert_eq!(values, [Value::SimpleString("PONG".into())]);
        let stats = client.conn.stats();
        assert_eq!(
            (stats.bytes_written, stats.bytes_read, stats.values),
            (ping.len() as u64, 7, 1)
        );
    }

    #[test]
    fn a_written_burst_arrives_intact_and_gives_its_buffer_back() {
        let (mut client, mut server) = pair(Limits::default());
        let mut values = Vec::new();
        client.connected(&mut values);
        let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let packed = ::redis::cmd("PUBLISH").arg("chan").arg(&payload).get_packed_command();
        client.queue(&packed);
        server.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::with_capacity(packed.len());
        let mut buf = vec![0; 64 << 10];
        while client.conn.unwritten() > 0 {
            // Drain the server first, so the client's wait for writable always ends.
            loop {
                match server.read(&mut buf) {
                    Ok(0) => panic!("client closed"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("server read: {e}"),
                }
            }
            client.step(&mut values).expect("drive");
        }
        assert!(client.conn.out.capacity() <= super::OUT_KEEP_BYTES);
        server.set_nonblocking(false).expect("blocking");
        let mut rest = vec![0; packed.len() - got.len()];
        server.read_exact(&mut rest).expect("the rest of the burst");
        got.extend_from_slice(&rest);
        assert!(got == packed, "the burst arrived altered");
        assert_eq!(client.conn.stats().bytes_written, packed.len() as u64);
    }

    #[test]
    fn values_arriving_one_byte_at_a_time_are_parsed_once_each_in_order() {
        let (mut client, mut server) = pair(Limits::default());
        let mut values = Vec::new();
        client.connected(&mut values);
        let message = b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n";
        let stream = [&message[..], b":1\r\n"].concat();
        // How many values were out after each byte. Each byte is written only once the
        // previous one has been read, so every byte is decoded by a call of its own.
        let mut after_byte = Vec::new();
        for &b in &stream {
            server.write_all(&[b]).expect("write a byte");
            server.flush().expect("flush");
            let before = client.conn.stats().bytes_read;
            while client.conn.stats().bytes_read == before {
                client.step(&mut values).expect("drive");
            }
            assert_eq!(client.conn.stats().bytes_read, before + 1);
            after_byte.push(values.len());
        }
        let mut expected = vec![0; message.len() - 1];
        expected.extend([1; 4]);
        expected.push(2);
        assert_eq!(after_byte, expected);
        let array = Value::Array(vec![bulk(b"message"), bulk(b"chan"), bulk(b"hello")]);
        assert_eq!(values, [array, Value::Int(1)]);
    }

    #[test]
    fn pipelined_values_parse_in_order_across_calls_within_the_read_budget() {
        const N: i64 = 10_000;
        let budget = 4096;
        let (mut client, mut server) = pair(Limits { read_budget: budget, ..Limits::default() });
        let mut values = Vec::new();
        client.connected(&mut values);
        let replies: Vec<u8> = (0..N).flat_map(|n| format!(":{n}\r\n").into_bytes()).collect();
        // Written without blocking, interleaved with the client's reads, so the test never
        // depends on the kernel buffering all of it.
        server.set_nonblocking(true).expect("nonblocking");
        let (mut sent, mut cut_short) = (0, 0);
        while values.len() < N as usize {
            while sent < replies.len() {
                match server.write(&replies[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("server write: {e}"),
                }
            }
            let before = client.conn.stats().bytes_read;
            let drive = client.step(&mut values).expect("drive");
            let read = client.conn.stats().bytes_read - before;
            assert!(read <= budget as u64, "read {read} bytes, budget {budget}");
            // `more` exactly when the budget, not the socket, ended reading.
            assert_eq!(drive.more, read == budget as u64);
            cut_short += usize::from(drive.more);
        }
        assert!(cut_short > 0, "the budget never cut reading short");
        assert_eq!(values, (0..N).map(Value::Int).collect::<Vec<_>>());
        assert_eq!(client.conn.stats().bytes_read, replies.len() as u64);
    }

    #[test]
    fn a_value_over_the_limit_is_too_large() {
        let limit = 1024;
        let (mut client, mut server) = pair(Limits { max_value: limit, ..Limits::default() });
        let mut values = Vec::new();
        client.connected(&mut values);
        // A value just under the limit passes; the next, four times over, does not.
        let small = [b'x'; 1000];
        let big = [b'y'; 4 * 1024];
        for payload in [&small[..], &big[..]] {
            server.write_all(format!("${}\r\n", payload.len()).as_bytes()).expect("header");
            server.write_all(payload).expect("payload");
            server.write_all(b"\r\n").expect("crlf");
        }
        let err = client.until_error(&mut values);
        assert!(matches!(err, ConnError::TooLarge { limit: 1024 }), "{err:?}");
        assert_eq!(values, [bulk(&small)]);
    }

    #[test]
    fn server_close_is_closed() {
        let (mut client, mut server) = pair(Limits::default());
        let mut values = Vec::new();
        client.connected(&mut values);
        server.write_all(b":1\r\n").expect("write");
        drop(server);
        let err = client.until_error(&mut values);
        assert!(matches!(err, ConnError::Closed), "{err:?}");
        assert_eq!(values, [Value::Int(1)]);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        // The server stays open: the error comes from the bytes, not from EOF.
        let (mut client, mut server) = pair(Limits::default());
        let mut values = Vec::new();
        client.connected(&mut values);
        server.write_all(b"?bogus\r\n").expect("write");
        let err = client.until_error(&mut values);
        assert!(matches!(&err, ConnError::Protocol(msg) if !msg.is_empty()), "{err:?}");
        assert!(values.is_empty());
    }

    #[test]
    fn a_server_error_reply_is_a_value() {
        let (mut client, mut server) = pair(Limits::default());
        let mut values = Vec::new();
        client.connected(&mut values);
        server.write_all(b"-ERR wrong password\r\n+OK\r\n").expect("write");
        client.until(&mut values, |v| v.len() == 2);
        match &values[0] {
            Value::ServerError(e) => {
                assert_eq!((e.code(), e.details()), ("ERR", Some("wrong password")))
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        assert_eq!(values[1], Value::Okay);
    }

    #[test]
    fn connect_to_a_closed_port_is_a_connect_error() {
        // Bind, note the port, close: nothing listens there now.
        let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind");
        let mut client = Client::new(RespConn::connect(addr).expect("connect starts"));
        let mut values = Vec::new();
        let err = client.until_error(&mut values);
        assert!(
            matches!(&err, ConnError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        assert!(!client.conn.is_connected());
    }

    mod tls {
        //! The same client over TLS against a rustls server on a thread of its own (a blocking
        //! handshake needs the client to make progress meanwhile).

        use std::io::{Read, Write};
        use std::net::TcpListener;
        use std::path::PathBuf;
        use std::thread::JoinHandle;

        use super::super::test_certs::TestCa;
        use super::super::{ConnError, Limits, RespConn, TlsSetup};
        use super::{Client, WAIT};
        use crate::tls::{TlsClient, TlsServer};
        use ::redis::Value;

        fn scratch(name: &str) -> PathBuf {
            let dir =
                std::env::temp_dir().join(format!("hearsay-conn-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        }

        /// A TLS server answering one `PING` with `+PONG` and staying open until the client
        /// closes; it returns what it read, or why the handshake failed.
        fn pong_server(ca: &TestCa) -> (std::net::SocketAddr, JoinHandle<Result<Vec<u8>, String>>) {
            let leaf = ca.server("redis", &[]);
            let config =
                TlsServer { cert_file: leaf.cert, key_file: leaf.key, ..TlsServer::default() }
                    .build()
                    .expect("server config");
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            let addr = listener.local_addr().expect("local addr");
            let server = std::thread::spawn(move || {
                let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
                sock.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
                let conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
                let mut stream = rustls::StreamOwned::new(conn, sock);
                let mut got = vec![0; 14];
                stream.read_exact(&mut got).map_err(|e| e.to_string())?;
                stream.write_all(b"+PONG\r\n").map_err(|e| e.to_string())?;
                stream.flush().map_err(|e| e.to_string())?;
                // Stay open until the client is done (its close ends this read).
                let _ = stream.read(&mut [0; 1]);
                Ok(got)
            });
            (addr, server)
        }

        fn client(addr: std::net::SocketAddr, tls: &TlsClient) -> Client {
            let setup = TlsSetup {
                config: tls.build().expect("client config"),
                name: tls.server_name("127.0.0.1").expect("a name"),
            };
            Client::new(
                RespConn::connect_with(addr, Limits::default(), Some(&setup)).expect("connect"),
            )
        }

        #[test]
        fn ping_and_pong_cross_a_tls_session() {
            let ca = TestCa::new(&scratch("tls-ok"), "ok");
            let (addr, server) = pong_server(&ca);
            let mut client =
                client(addr, &TlsClient { ca_file: Some(ca.file.clone()), ..TlsClient::default() });
            let ping = ::redis::cmd("PING").get_packed_command();
            // Queued before the handshake: held back until it completes, then written.
            client.queue(&ping);
            let mut values = Vec::new();
            client.until(&mut values, |v| !v.is_empty());
            assert_eq!(values, [Value::SimpleString("PONG".into())]);
            assert!(client.conn.is_connected());
            drop(client);
            assert_eq!(server.join().expect("server thread"), Ok(ping));
        }

        #[test]
        fn an_untrusted_server_is_a_tls_error_naming_the_address() {
            let ca = TestCa::new(&scratch("tls-bad"), "bad");
            let other = TestCa::new(&scratch("tls-other"), "other");
            let (addr, server) = pong_server(&ca);
            let mut client = client(
                addr,
                &TlsClient { ca_file: Some(other.file.clone()), ..TlsClient::default() },
            );
            let mut values = Vec::new();
            let err = client.until_error(&mut values);
            let ConnError::Tls { addr: at, reason } = &err else { panic!("{err:?}") };
            assert_eq!(*at, addr);
            assert!(reason.contains("UnknownIssuer"), "{reason}");
            assert!(err.to_string().contains(&addr.to_string()), "{err}");
            assert!(!client.conn.is_connected());
            // The server heard our alert (or the close): its handshake failed too.
            assert!(server.join().expect("server thread").is_err());
        }
    }
}
