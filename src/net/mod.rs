//! The mio event loop: moves bytes between the gossip port and a [`GossipPeer`] core.
//!
//! One thread, one `Poll`: a UDP socket and a TCP listener on the same address, a connection
//! per stream, and a [`Waker`] for other threads. With Alertmanager's TLS transport
//! ([`TlsTransport`]) there is no UDP socket: packets and streams both travel over TLS
//! sessions on the TCP listener's port (see the `tls` module). Each turn sleeps until a socket is ready, the
//! core's next deadline, or a caller's deadline; drains every ready socket until `WouldBlock`
//! (mio is edge-triggered); runs due timers; and sends what the core produced. It makes no
//! protocol decisions: every byte in goes to the core, every byte out comes from it.

#![forbid(unsafe_code)]

mod conn;
mod pipe;
mod socket;
mod tls;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::core::peer::gossip::GossipPeer;
use crate::core::swim::{Delegate, StreamFailure, Transmit};
use crate::core::wire::Codec;
use crate::core::{Millis, UnixMillis};
use conn::{Conn, Progress, Role};
use pipe::Pipe;
pub use tls::TlsTransport;

const WAKER: Token = Token(0);
const UDP: Token = Token(1);
const LISTENER: Token = Token(2);
const FIRST_CONN: usize = 3;

/// Largest datagram we accept (memberlist reads into a 65,536-byte buffer).
const UDP_READ_BYTES: usize = 65_536;
/// Datagrams handled per turn before timers and commands get a look-in.
const UDP_BATCH: usize = 1024;
/// Datagrams kept while the socket's send buffer is full; beyond this they are dropped
/// (and counted): UDP may lose packets, and gossip retransmits.
const MAX_PENDING_UDP: usize = 8192;
/// Concurrent inbound streams (memberlist allows 127 push/pulls at once).
const MAX_INBOUND: usize = 128;
/// Bytes a stream may carry beyond the codec's message limit: label and encryption headers.
const STREAM_HEADER_ALLOWANCE: usize = 512;

/// Monotonic time for the core, in milliseconds since the driver started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }

    /// Milliseconds since the origin.
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The wall clock, for expiry of replicated state and Redis heartbeats.
    pub fn unix(&self) -> UnixMillis {
        let since =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// How long until `at`, rounded up to whole milliseconds so we never wake early and spin.
    pub fn until(&self, at: Millis) -> Duration {
        let target = self.origin + Duration::from_millis(at.0);
        let left = target.saturating_duration_since(Instant::now());
        Duration::from_millis(u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What the driver counted (the core counts protocol matters itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Datagrams received.
    pub udp_received: u64,
    /// Bytes received in datagrams.
    pub udp_bytes_received: u64,
    /// Datagrams sent.
    pub udp_sent: u64,
    /// Bytes sent in datagrams.
    pub udp_bytes_sent: u64,
    /// Datagrams dropped: send buffer full past the pending bound, or a send error.
    pub udp_dropped: u64,
    /// Streams opened (both directions).
    pub streams_opened: u64,
    /// Bytes written to streams.
    pub stream_bytes_sent: u64,
    /// Inbound streams refused at the concurrency bound.
    pub streams_refused: u64,
    /// Streams that failed or timed out.
    pub streams_failed: u64,
    /// TLS transport: packet bytes handed to sessions, frames excluded (Alertmanager's
    /// `alertmanager_tls_transport_packet_bytes_sent_total`).
    pub tls_packet_bytes_sent: u64,
    /// TLS transport: packet bytes received, frames excluded.
    pub tls_packet_bytes_received: u64,
    /// TLS transport: stream connections opened.
    pub tls_streams_sent: u64,
    /// TLS transport: stream connections accepted (a STREAM frame read).
    pub tls_streams_received: u64,
    /// TLS transport: inbound connections given up on an error (handshake, bad frame, I/O).
    pub tls_read_errors: u64,
    /// TLS transport: outbound packet connections that failed (dial, handshake, write).
    pub tls_write_errors_packet: u64,
    /// TLS transport: outbound stream connections that failed.
    pub tls_write_errors_stream: u64,
    /// TLS handshakes that failed on connections we accepted (a refused client certificate).
    pub tls_handshake_failures_inbound: u64,
    /// TLS handshakes that failed on connections we dialled (a refused server certificate).
    pub tls_handshake_failures_outbound: u64,
    /// TLS transport: packets dropped because their connection's queue was full.
    pub tls_packets_dropped: u64,
}

/// The event loop around one core.
#[derive(Debug)]
pub struct Driver<D: Delegate> {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    /// Absent with the TLS transport.
    udp: Option<UdpSocket>,
    listener: TcpListener,
    local: SocketAddr,
    peer: GossipPeer<D>,
    codec: Codec,
    clock: Clock,
    conns: BTreeMap<usize, Conn>,
    next_token: usize,
    inbound: usize,
    pending_udp: VecDeque<Transmit>,
    udp_write_interest: bool,
    udp_backlog: bool,
    recv_buf: Vec<u8>,
    stats: DriverStats,
    tls: Option<tls::TlsState>,
}

impl<D: Delegate> Driver<D> {
    /// Bind `bind` (UDP and TCP; port 0 picks one) and build the core with the address
    /// actually bound, at the clock's origin.
    pub fn bind<E>(
        bind: SocketAddr,
        clock: Clock,
        make_core: impl FnOnce(SocketAddr, Millis) -> Result<GossipPeer<D>, E>,
    ) -> Result<Self, DriverError<E>> {
        Self::bind_with(bind, clock, None, make_core)
    }

    /// Like [`Self::bind`], with Alertmanager's TLS transport instead of UDP and plain TCP:
    /// only the TCP port is bound.
    pub fn bind_tls<E>(
        bind: SocketAddr,
        clock: Clock,
        tls: TlsTransport,
        make_core: impl FnOnce(SocketAddr, Millis) -> Result<GossipPeer<D>, E>,
    ) -> Result<Self, DriverError<E>> {
        Self::bind_with(bind, clock, Some(tls), make_core)
    }

    fn bind_with<E>(
        bind: SocketAddr,
        clock: Clock,
        tls: Option<TlsTransport>,
        make_core: impl FnOnce(SocketAddr, Millis) -> Result<GossipPeer<D>, E>,
    ) -> Result<Self, DriverError<E>> {
        let (mut udp, mut listener) = match tls {
            None => {
                let (udp, tcp) = socket::bind_pair(bind).map_err(DriverError::Io)?;
                (Some(udp), tcp)
            }
            Some(_) => (None, socket::bind_tcp(bind).map_err(DriverError::Io)?),
        };
        let local = listener.local_addr().map_err(DriverError::Io)?;
        let poll = Poll::new().map_err(DriverError::Io)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(DriverError::Io)?);
        if let Some(udp) = &mut udp {
            poll.registry().register(udp, UDP, Interest::READABLE).map_err(DriverError::Io)?;
        }
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(DriverError::Io)?;
        let peer = make_core(local, clock.now()).map_err(DriverError::Core)?;
        let codec = peer.swim().codec().clone();
        let udp_needed = udp.is_some();
        Ok(Self {
            poll,
            events: Events::with_capacity(1024),
            waker,
            udp,
            listener,
            local,
            peer,
            codec,
            clock,
            conns: BTreeMap::new(),
            next_token: FIRST_CONN,
            inbound: 0,
            pending_udp: VecDeque::new(),
            udp_write_interest: false,
            udp_backlog: false,
            recv_buf: vec![0; if udp_needed { UDP_READ_BYTES } else { 0 }],
            stats: DriverStats::default(),
            tls: tls.map(tls::TlsState::new),
        })
    }

    /// Wakes [`Self::turn`] from another thread.
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// The address bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The driver's clock reading.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The core.
    pub fn peer(&self) -> &GossipPeer<D> {
        &self.peer
    }

    /// The core, for commands. Call [`Self::flush`] afterwards.
    pub fn peer_mut(&mut self) -> &mut GossipPeer<D> {
        &mut self.peer
    }

    /// Counters.
    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// One turn of the loop: sleep until something is ready, the core's next deadline or
    /// `wake_at` (whichever is first), then handle everything that is ready.
    pub fn turn(&mut self, wake_at: Option<Millis>) -> io::Result<()> {
        let tls_backlog = self.tls.as_ref().is_some_and(tls::TlsState::has_backlog);
        let timeout = if self.udp_backlog || tls_backlog {
            Some(Duration::ZERO)
        } else {
            self.next_wake(wake_at).map(|at| self.clock.until(at))
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let ready: Vec<(Token, bool, bool)> = self
            .events
            .iter()
            .map(|e| (e.token(), e.is_readable() || e.is_read_closed(), e.is_writable()))
            .collect();
        let mut udp_readable = std::mem::take(&mut self.udp_backlog);
        for (token, readable, writable) in ready {
            match token {
                WAKER => {}
                UDP => {
                    udp_readable |= readable;
                    if writable {
                        self.send_pending_udp();
                    }
                }
                LISTENER => self.accept(),
                Token(t) if self.conns.contains_key(&t) => self.drive_conn(t),
                Token(t) => self.drive_tls(t),
            }
        }
        if udp_readable {
            self.receive_udp();
        }
        if tls_backlog {
            self.drive_tls_backlog();
        }
        self.run_timers();
        self.flush();
        Ok(())
    }

    /// Send everything the core has queued: datagrams and new streams.
    pub fn flush(&mut self) {
        while let Some(t) = self.peer.poll_transmit() {
            self.send_packet(t);
        }
        while let Some(req) = self.peer.poll_stream() {
            self.stats.streams_opened += 1;
            match self.stream_pipe(req.to) {
                Ok(pipe) => {
                    self.stats.stream_bytes_sent += req.bytes.len() as u64;
                    self.register(Conn::outbound(
                        pipe,
                        req.id,
                        req.bytes,
                        req.expect_reply,
                        req.deadline,
                    ));
                }
                Err(_) => {
                    self.stats.streams_failed += 1;
                    if self.tls.is_some() {
                        self.stats.tls_write_errors_stream += 1;
                    }
                    let now = self.clock.now();
                    self.peer.handle_stream_reply(now, req.id, Err(StreamFailure::Connect));
                }
            }
        }
    }

    fn next_wake(&self, wake_at: Option<Millis>) -> Option<Millis> {
        let conn_deadline = self.conns.values().map(|c| c.deadline).min();
        let tls_deadline = self.tls.as_ref().and_then(tls::TlsState::next_deadline);
        [self.peer.poll_timeout(), conn_deadline, tls_deadline, wake_at].into_iter().flatten().min()
    }

    /// A new stream's connection: plain TCP, or a TLS session that opens with a STREAM frame.
    fn stream_pipe(&mut self, to: SocketAddr) -> io::Result<Pipe> {
        let sock = socket::connect(to)?;
        match &self.tls {
            None => Ok(Pipe::Plain(sock)),
            Some(tls) => {
                self.stats.tls_streams_sent += 1;
                tls::stream_pipe(sock, tls.transport.dial(to)?)
            }
        }
    }

    /// Send a packet the core produced: a datagram, or a frame on a pooled TLS connection.
    fn send_packet(&mut self, t: Transmit) {
        if self.tls.is_some() {
            self.send_tls_packet(t);
        } else {
            self.send_udp(t);
        }
    }

    fn run_timers(&mut self) {
        let now = self.clock.now();
        if self.peer.poll_timeout().is_some_and(|at| at <= now) {
            self.peer.handle_timeout(now);
        }
        let expired: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(t, _)| *t).collect();
        for token in expired {
            if let Some(conn) = self.conns.remove(&token) {
                self.finish(conn, Progress::Failed(StreamFailure::Timeout));
            }
        }
        self.expire_tls(now);
    }

    fn receive_udp(&mut self) {
        for _ in 0..UDP_BATCH {
            let Some(udp) = &self.udp else { return };
            match udp.recv_from(&mut self.recv_buf) {
                Ok((n, from)) => {
                    self.stats.udp_received += 1;
                    self.stats.udp_bytes_received += n as u64;
                    let now = self.clock.now();
                    self.peer.handle_packet(now, from, &self.recv_buf[..n]);
                    while let Some(t) = self.peer.poll_transmit() {
                        self.send_udp(t);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors surface here on some systems; they concern an earlier send.
                Err(_) => {}
            }
        }
        self.udp_backlog = true;
    }

    fn send_udp(&mut self, t: Transmit) {
        if !self.pending_udp.is_empty() {
            self.queue_udp(t);
            return;
        }
        let Some(udp) = &self.udp else { return };
        match udp.send_to(&t.bytes, t.to) {
            Ok(n) => {
                self.stats.udp_sent += 1;
                self.stats.udp_bytes_sent += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.queue_udp(t),
            Err(_) => self.stats.udp_dropped += 1,
        }
    }

    fn queue_udp(&mut self, t: Transmit) {
        let Some(udp) = &mut self.udp else { return };
        if self.pending_udp.len() >= MAX_PENDING_UDP {
            self.stats.udp_dropped += 1;
            return;
        }
        self.pending_udp.push_back(t);
        if !self.udp_write_interest {
            self.udp_write_interest = self
                .poll
                .registry()
                .reregister(udp, UDP, Interest::READABLE | Interest::WRITABLE)
                .is_ok();
        }
    }

    fn send_pending_udp(&mut self) {
        let Some(udp) = &mut self.udp else { return };
        while let Some(t) = self.pending_udp.pop_front() {
            match udp.send_to(&t.bytes, t.to) {
                Ok(n) => {
                    self.stats.udp_sent += 1;
                    self.stats.udp_bytes_sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.pending_udp.push_front(t);
                    return;
                }
                Err(_) => self.stats.udp_dropped += 1,
            }
        }
        if self.udp_write_interest {
            self.udp_write_interest = false;
            let _ = self.poll.registry().reregister(udp, UDP, Interest::READABLE);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, from)) if self.tls.is_some() => self.accept_tls(sock, from),
                Ok((sock, from)) => {
                    if self.inbound >= MAX_INBOUND {
                        self.stats.streams_refused += 1;
                        continue; // dropping `sock` closes it
                    }
                    let _ = sock.set_nodelay(true);
                    self.inbound += 1;
                    self.stats.streams_opened += 1;
                    let deadline = self.clock.now() + self.peer.swim().config().tcp_timeout;
                    let token = self.register(Conn::inbound(Pipe::Plain(sock), from, deadline));
                    // Data may already be waiting; edge-triggered readiness will not repeat it.
                    if let Some(t) = token {
                        self.drive_conn(t);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return, // e.g. EMFILE: retried at the next readiness event
            }
        }
    }

    fn register(&mut self, mut conn: Conn) -> Option<usize> {
        let token = self.free_token();
        let interest = conn.interest();
        if self.poll.registry().register(conn.pipe.sock(), Token(token), interest).is_err() {
            self.finish(conn, Progress::Failed(StreamFailure::Connect));
            return None;
        }
        self.conns.insert(token, conn);
        Some(token)
    }

    fn free_token(&mut self) -> usize {
        loop {
            let t = self.next_token;
            self.next_token = if t == usize::MAX { FIRST_CONN } else { t + 1 };
            let tls_taken = self.tls.as_ref().is_some_and(|tls| tls.holds(t));
            if !self.conns.contains_key(&t) && !tls_taken {
                return t;
            }
        }
    }

    fn drive_conn(&mut self, token: usize) {
        let Some(mut conn) = self.conns.remove(&token) else { return };
        let max_len = self.codec.max_stream_len + STREAM_HEADER_ALLOWANCE;
        let mut progress = conn.drive(&self.codec, max_len);
        if let (Progress::Frame(len), Role::Inbound { from }) = (&progress, conn.role) {
            let now = self.clock.now();
            match self.peer.handle_stream(now, from, conn.frame(*len)) {
                Ok(Some(reply)) => {
                    self.stats.stream_bytes_sent += reply.len() as u64;
                    conn.reply(reply);
                    let interest = conn.interest();
                    let _ =
                        self.poll.registry().reregister(conn.pipe.sock(), Token(token), interest);
                    progress = conn.drive(&self.codec, max_len);
                }
                Ok(None) | Err(_) => progress = Progress::Done,
            }
        }
        match progress {
            Progress::Pending => {
                self.conns.insert(token, conn);
            }
            done => self.finish(conn, done),
        }
    }

    /// Close a connection and tell the core how its exchange ended.
    fn finish(&mut self, mut conn: Conn, progress: Progress) {
        conn.pipe.close();
        let _ = self.poll.registry().deregister(conn.pipe.sock());
        self.note_handshake(&conn.pipe, matches!(conn.role, Role::Inbound { .. }));
        let now = self.clock.now();
        match (conn.role, progress) {
            (Role::Inbound { from }, progress) => {
                self.inbound = self.inbound.saturating_sub(1);
                if let Progress::Failed(failure) = &progress {
                    self.stats.streams_failed += 1;
                    // Bytes that are no stream at all (garbage, another label, too large)
                    // never reached the core: count them with the streams it refused.
                    if let StreamFailure::Wire(e) = failure {
                        self.peer.swim_mut().count_rejected_stream(Some(from), e);
                    }
                }
            }
            (Role::Outbound { id, .. }, Progress::Frame(len)) => {
                self.peer.handle_stream_reply(now, id, Ok(conn.frame(len)));
            }
            (Role::Outbound { id, .. }, Progress::Failed(failure)) => {
                self.stats.streams_failed += 1;
                if self.tls.is_some() {
                    self.stats.tls_write_errors_stream += 1;
                }
                self.peer.handle_stream_reply(now, id, Err(failure));
            }
            // Written in full, no reply expected: delivered as far as TCP can tell.
            (Role::Outbound { id, .. }, Progress::Done) => {
                self.peer.handle_stream_reply(now, id, Ok(&[]))
            }
            (Role::Outbound { .. }, Progress::Pending) => {}
        }
    }
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError<E> {
    /// Binding or polling failed.
    #[error("gossip socket: {0}")]
    Io(#[source] io::Error),
    /// The core refused its configuration.
    #[error("{0}")]
    Core(E),
}
