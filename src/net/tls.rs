//! Alertmanager's TLS transport on the mio loop: what replaces UDP and plain TCP when a node
//! runs with `--cluster.tls-config`.
//!
//! * Inbound, every accepted connection is a [`FrameConn`]: a rustls server session whose
//!   plaintext is a sequence of frames ([`tls_frame`]). PACKET frames go to the core as
//!   datagrams would; a STREAM frame turns the rest of the connection into an ordinary inbound
//!   stream ([`super::conn::Conn`] over the same session).
//! * Outbound packets go to a pooled, long-lived [`PacketConn`] per destination, one frame per
//!   plaintext write so every frame starts and ends on a TLS record boundary (see
//!   [`super::pipe`] for why that holds with rustls).
//! * Outbound streams dial a new session and write the STREAM frame as its own write before
//!   the stream's bytes.
//!
//! Connections are one-directional, as in Alertmanager: the acceptor only reads frames, and
//! replies travel on the replier's own pooled connection.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Token};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use super::Driver;
use super::conn::Conn;
use super::pipe::Pipe;
use crate::core::Millis;
use crate::core::swim::{Delegate, Transmit};
use crate::core::wire::tls_frame::{self, Decoded, TlsFrame, TlsFrameError};
use crate::tls::{ClusterTls, TlsClient, TlsError};

/// Outbound packet connections kept, one per destination (Alertmanager keeps an LRU of
/// 1,024). Past it the least recently used one is closed.
pub(crate) const MAX_PACKET_CONNS: usize = 1024;
/// Inbound TLS connections at once, packet and stream ones together: every peer keeps one
/// packet connection to us, plus its streams in flight. Past it new ones are closed at accept
/// and counted.
pub(crate) const MAX_TLS_INBOUND: usize = 1024;
/// Frame bytes queued on one outbound packet connection (dialling, or a peer that reads
/// slowly) beyond what its session buffers. Past it packets to that peer are dropped and
/// counted, as a full UDP send queue drops datagrams: gossip retransmits.
pub(crate) const MAX_QUEUED_FRAME_BYTES: usize = 256 * 1024;

/// The TLS transport's settings, built once when the node starts.
#[derive(Clone, Debug)]
pub struct TlsTransport {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    settings: TlsClient,
}

impl TlsTransport {
    /// Read the certificates and keys `tls` names and build both rustls configurations.
    pub fn new(tls: &ClusterTls) -> Result<Self, TlsError> {
        Ok(Self {
            server: tls.server.build()?,
            client: tls.client.build()?,
            settings: tls.client.clone(),
        })
    }

    /// A server session for an accepted connection.
    pub(crate) fn accept(&self) -> io::Result<ServerConnection> {
        ServerConnection::new(Arc::clone(&self.server)).map_err(io::Error::other)
    }

    /// A client session to `to`, verifying the configured server name or else its IP (as Go
    /// does when dialling an address).
    pub(crate) fn dial(&self, to: SocketAddr) -> io::Result<ClientConnection> {
        let name = self.settings.server_name(&to.ip().to_string()).map_err(io::Error::other)?;
        ClientConnection::new(Arc::clone(&self.client), name).map_err(io::Error::other)
    }
}

/// What reading an inbound TLS connection produced.
#[derive(Debug)]
pub(crate) enum FrameEvent {
    /// Nothing more for now.
    Pending,
    /// A packet from the peer listening on `from`.
    Packet { from: SocketAddr, msg: Vec<u8> },
    /// The rest of the connection is a stream; these bytes of it were already read.
    Stream(Vec<u8>),
    /// The connection ended or broke: close it.
    Closed { error: Option<FrameFailure> },
}

/// Why an inbound connection was given up (for the debug log).
#[derive(Debug)]
#[allow(dead_code, reason = "read through Debug, in the log")]
pub(crate) enum FrameFailure {
    /// Reading failed, or the handshake did (see [`Pipe::handshake_failure`]).
    Io(io::Error),
    /// A frame was refused.
    Frame(TlsFrameError),
}

/// An inbound TLS connection until it turns out to be a stream: a sequence of frames.
#[derive(Debug)]
pub(crate) struct FrameConn {
    pub(crate) pipe: Pipe,
    /// The TCP peer.
    pub(crate) peer: SocketAddr,
    /// The handshake and first frame must arrive by then; a packet connection then lives as
    /// long as its peer keeps it (Alertmanager never closes an idle one).
    pub(crate) deadline: Option<Millis>,
    buf: Vec<u8>,
}

impl FrameConn {
    pub(crate) fn new(pipe: Pipe, peer: SocketAddr, deadline: Millis) -> Self {
        Self { pipe, peer, deadline: Some(deadline), buf: Vec::new() }
    }

    /// The next frame, reading as needed; call until [`FrameEvent::Pending`] or
    /// [`FrameEvent::Closed`] (readiness is edge-triggered).
    pub(crate) fn next(&mut self) -> FrameEvent {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tls_frame::decode(&self.buf) {
                Ok(Decoded::Frame { frame, len }) => {
                    self.deadline = None;
                    let rest = self.buf.split_off(len);
                    self.buf = rest;
                    return match frame {
                        TlsFrame::Packet { from, msg } => FrameEvent::Packet { from, msg },
                        TlsFrame::Stream => FrameEvent::Stream(std::mem::take(&mut self.buf)),
                    };
                }
                // At most one frame (bounded by the decoder) plus one chunk is ever held.
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => return FrameEvent::Closed { error: Some(FrameFailure::Frame(e)) },
            }
            match self.pipe.read(&mut chunk) {
                Ok(0) => return FrameEvent::Closed { error: None },
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A handshake in progress may owe the peer records.
                    return match self.pipe.progress() {
                        Ok(false) => FrameEvent::Pending,
                        Ok(true) => FrameEvent::Closed { error: None },
                        Err(e) => FrameEvent::Closed { error: Some(FrameFailure::Io(e)) },
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.buf.is_empty() => {
                    // A peer closing its packet connection between frames: not an error.
                    if self.pipe.handshake_failure().is_none() && !self.pipe.is_handshaking() {
                        return FrameEvent::Closed { error: None };
                    }
                    return FrameEvent::Closed { error: Some(FrameFailure::Io(e)) };
                }
                Err(e) => return FrameEvent::Closed { error: Some(FrameFailure::Io(e)) },
            }
        }
    }
}

/// An outbound, long-lived connection carrying PACKET frames to one peer.
#[derive(Debug)]
pub(crate) struct PacketConn {
    pub(crate) pipe: Pipe,
    pub(crate) to: SocketAddr,
    /// Connect and handshake must finish by then; afterwards, while anything waits to be
    /// sent, the next byte must leave by then (a peer that stops reading must not hold a
    /// pooled connection and its queue for ever). `None` while idle.
    pub(crate) deadline: Option<Millis>,
    /// How long queued bytes may wait without any leaving.
    write_timeout: Duration,
    /// When a packet was last queued, for the pool's LRU eviction.
    pub(crate) last_used: Millis,
    connected: bool,
    /// The handshake has finished (the deadline now watches writes).
    established: bool,
    /// Frames not yet handed to the session, each with its packet's length.
    queue: VecDeque<(Vec<u8>, usize)>,
    queued_bytes: usize,
    /// Bytes of the front frame already handed over.
    front_written: usize,
}

/// Why an outbound packet connection was given up.
#[derive(Debug)]
pub(crate) enum PacketConnEnd {
    /// The peer closed it (an idle connection Alertmanager dropped, a restart).
    Closed,
    /// Connecting, the handshake or a write failed.
    Failed(io::Error),
}

impl PacketConn {
    /// A connection being opened: connect and handshake by `now + timeout`; afterwards,
    /// queued bytes may wait `timeout` without progress.
    pub(crate) fn new(pipe: Pipe, to: SocketAddr, now: Millis, timeout: Duration) -> Self {
        Self {
            pipe,
            to,
            deadline: Some(now + timeout),
            write_timeout: timeout,
            last_used: now,
            connected: false,
            established: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            front_written: 0,
        }
    }

    /// Queue one frame (carrying a packet of `packet_len` bytes); false if the queue is full
    /// and it was dropped.
    pub(crate) fn push(&mut self, frame: Vec<u8>, packet_len: usize, now: Millis) -> bool {
        self.last_used = now;
        if self.queued_bytes + frame.len() > MAX_QUEUED_FRAME_BYTES {
            return false;
        }
        self.queued_bytes += frame.len();
        self.queue.push_back((frame, packet_len));
        true
    }

    /// Frames still queued.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Move bytes after a readiness event or a push; the packet bytes of every frame fully
    /// handed to the session.
    pub(crate) fn drive(&mut self, now: Millis) -> Result<u64, PacketConnEnd> {
        if !self.connected {
            match connected(self.pipe.sock()) {
                Ok(true) => self.connected = true,
                Ok(false) => return Ok(0),
                Err(e) => return Err(PacketConnEnd::Failed(e)),
            }
        }
        // Records the session owes the peer (the ClientHello, handshake replies) go out even
        // when no frame is queued.
        match self.pipe.progress() {
            Ok(false) => {}
            Ok(true) => return Err(PacketConnEnd::Closed),
            Err(e) => return Err(PacketConnEnd::Failed(e)),
        }
        // The peer sends nothing on a packet connection but handshake records, tickets,
        // alerts and its close: read them all, keep no plaintext.
        let mut scratch = [0u8; 4096];
        loop {
            match self.pipe.read(&mut scratch) {
                Ok(0) => return Err(PacketConnEnd::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(PacketConnEnd::Closed);
                }
                Err(e) => return Err(PacketConnEnd::Failed(e)),
            }
        }
        let mut progressed = false;
        if !self.established && !self.pipe.is_handshaking() {
            self.established = true;
            progressed = true;
        }
        let mut sent = 0;
        while let Some((frame, packet_len)) = self.queue.front() {
            // One frame per write (or per several, for its remainder), never two in one.
            match self.pipe.write(&frame[self.front_written..]) {
                Ok(n) => {
                    progressed |= n > 0;
                    self.front_written += n;
                    if self.front_written == frame.len() {
                        sent += *packet_len as u64;
                        self.queued_bytes -= frame.len();
                        self.front_written = 0;
                        self.queue.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PacketConnEnd::Failed(e)),
            }
        }
        if self.established {
            let waiting = !self.queue.is_empty() || !self.pipe.flushed();
            self.deadline = match (waiting, progressed) {
                (false, _) => None,
                (true, true) => Some(now + self.write_timeout),
                (true, false) => self.deadline.or(Some(now + self.write_timeout)),
            };
        }
        Ok(sent)
    }
}

/// A non-blocking connect has finished when the socket has a peer; an error means it failed.
pub(crate) fn connected(sock: &mut mio::net::TcpStream) -> io::Result<bool> {
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Write `frame` into a client session before anything else, so it forms records of its own.
pub(crate) fn stream_pipe(
    sock: mio::net::TcpStream,
    session: ClientConnection,
) -> io::Result<Pipe> {
    let mut frame = Vec::new();
    tls_frame::encode_stream(&mut frame);
    let mut session = session;
    // During the handshake rustls keeps each write as its own chunk, encrypted on its own
    // once the handshake ends (see `pipe`): this frame can never share a record with the
    // stream bytes written after it.
    io::Write::write_all(&mut session.writer(), &frame)?;
    Ok(Pipe::tls(sock, session))
}

/// The TLS transport's connections, beside the driver's streams (which share its tokens).
#[derive(Debug)]
pub(crate) struct TlsState {
    pub(crate) transport: TlsTransport,
    /// Accepted connections still reading frames (packet connections, and streams until
    /// their STREAM frame).
    frames: BTreeMap<usize, FrameConn>,
    /// Pooled outbound packet connections, by token.
    packets: BTreeMap<usize, PacketConn>,
    /// The pool's index: destination → token in `packets`.
    pool: BTreeMap<SocketAddr, usize>,
    /// Frame connections that stopped at the per-turn batch with bytes left to read.
    backlog: Vec<usize>,
    /// The latest handshake failure, until the host takes it for its log.
    last_failure: Option<String>,
}

impl TlsState {
    pub(crate) fn new(transport: TlsTransport) -> Self {
        Self {
            transport,
            frames: BTreeMap::new(),
            packets: BTreeMap::new(),
            pool: BTreeMap::new(),
            backlog: Vec::new(),
            last_failure: None,
        }
    }

    /// True if `token` is one of ours.
    pub(crate) fn holds(&self, token: usize) -> bool {
        self.frames.contains_key(&token) || self.packets.contains_key(&token)
    }

    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        let frames = self.frames.values().filter_map(|c| c.deadline);
        frames.chain(self.packets.values().filter_map(|c| c.deadline)).min()
    }

    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }
}

impl<D: Delegate> Driver<D> {
    /// Why the latest TLS handshake failed, once (for a rate-limited log line).
    pub fn take_tls_failure(&mut self) -> Option<String> {
        self.tls.as_mut().and_then(|t| t.last_failure.take())
    }

    /// An accepted connection on the TLS transport: a server session reading frames.
    pub(super) fn accept_tls(&mut self, sock: TcpStream, from: SocketAddr) {
        let Some(tls) = &mut self.tls else { return };
        if tls.frames.len() + self.inbound >= MAX_TLS_INBOUND {
            self.stats.streams_refused += 1;
            return; // dropping `sock` closes it
        }
        let _ = sock.set_nodelay(true);
        let Ok(session) = tls.transport.accept() else {
            self.stats.tls_read_errors += 1;
            return;
        };
        let deadline = self.clock.now() + self.peer.swim().config().tcp_timeout;
        let conn = FrameConn::new(Pipe::tls(sock, session), from, deadline);
        let token = self.free_token();
        let Some(tls) = &mut self.tls else { return };
        let mut conn = conn;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self.poll.registry().register(conn.pipe.sock(), Token(token), interest).is_err() {
            self.stats.tls_read_errors += 1;
            return;
        }
        tls.frames.insert(token, conn);
        // The ClientHello may already be waiting; edge-triggered readiness will not repeat it.
        self.drive_frames(token);
    }

    /// A readiness event on one of the TLS transport's connections.
    pub(super) fn drive_tls(&mut self, token: usize) {
        let Some(tls) = &self.tls else { return };
        if tls.frames.contains_key(&token) {
            self.drive_frames(token);
        } else if tls.packets.contains_key(&token) {
            self.drive_packets(token);
        }
    }

    /// Frame connections left with bytes to read by the per-turn batch.
    pub(super) fn drive_tls_backlog(&mut self) {
        let Some(tls) = &mut self.tls else { return };
        for token in std::mem::take(&mut tls.backlog) {
            self.drive_frames(token);
        }
    }

    fn drive_frames(&mut self, token: usize) {
        let Some(mut conn) = self.tls.as_mut().and_then(|t| t.frames.remove(&token)) else {
            return;
        };
        for _ in 0..super::UDP_BATCH {
            match conn.next() {
                FrameEvent::Pending => {
                    if let Some(tls) = &mut self.tls {
                        tls.frames.insert(token, conn);
                    }
                    return;
                }
                FrameEvent::Packet { from, msg } => {
                    self.stats.tls_packet_bytes_received += msg.len() as u64;
                    // A peer bound to a wildcard names it as its address; its TCP source
                    // has the IP replies can reach.
                    let from = if from.ip().is_unspecified() {
                        SocketAddr::new(conn.peer.ip(), from.port())
                    } else {
                        from
                    };
                    let now = self.clock.now();
                    self.peer.handle_packet(now, from, &msg);
                    while let Some(t) = self.peer.poll_transmit() {
                        self.send_tls_packet(t);
                    }
                }
                FrameEvent::Stream(read) => return self.start_tls_stream(token, conn, read),
                FrameEvent::Closed { error } => {
                    let _ = self.poll.registry().deregister(conn.pipe.sock());
                    if let Some(e) = error {
                        self.stats.tls_read_errors += 1;
                        log::debug!(
                            "TLS transport: giving up the connection from {}: {e:?}",
                            conn.peer
                        );
                    }
                    self.note_handshake(&conn.pipe, true);
                    return;
                }
            }
        }
        // Batch spent with frames perhaps still buffered: come back next turn.
        if let Some(tls) = &mut self.tls {
            tls.frames.insert(token, conn);
            tls.backlog.push(token);
        }
    }

    /// A STREAM frame arrived: the connection (same token) becomes an inbound stream.
    fn start_tls_stream(&mut self, token: usize, conn: FrameConn, read: Vec<u8>) {
        let FrameConn { mut pipe, peer, .. } = conn;
        if self.inbound >= super::MAX_INBOUND {
            self.stats.streams_refused += 1;
            let _ = self.poll.registry().deregister(pipe.sock());
            return;
        }
        self.inbound += 1;
        self.stats.streams_opened += 1;
        self.stats.tls_streams_received += 1;
        let deadline = self.clock.now() + self.peer.swim().config().tcp_timeout;
        let stream = Conn::inbound_after(pipe, peer, deadline, read);
        self.conns.insert(token, stream);
        self.drive_conn(token);
    }

    /// Queue a packet on the pooled connection to its destination, dialling one if needed.
    pub(super) fn send_tls_packet(&mut self, t: Transmit) {
        let now = self.clock.now();
        let mut frame = Vec::new();
        tls_frame::encode_packet(self.peer.swim().config().advertise, &t.bytes, &mut frame);
        let known = self.tls.as_ref().and_then(|tls| tls.pool.get(&t.to).copied());
        let Some(token) = known.or_else(|| self.dial_packets(t.to, now)) else {
            self.stats.tls_write_errors_packet += 1;
            self.stats.tls_packets_dropped += 1;
            return;
        };
        let Some(conn) = self.tls.as_mut().and_then(|tls| tls.packets.get_mut(&token)) else {
            return;
        };
        if !conn.push(frame, t.bytes.len(), now) {
            self.stats.tls_packets_dropped += 1;
            return;
        }
        self.drive_packets(token);
    }

    /// Open a pooled packet connection to `to` (closing the least recently used one when the
    /// pool is full); its token.
    fn dial_packets(&mut self, to: SocketAddr, now: Millis) -> Option<usize> {
        let tls = self.tls.as_ref()?;
        if tls.pool.len() >= MAX_PACKET_CONNS {
            let oldest = tls.packets.iter().min_by_key(|(_, c)| c.last_used).map(|(t, _)| *t);
            if let Some(token) = oldest {
                self.close_packets(token, None);
            }
        }
        let tls = self.tls.as_ref()?;
        let session = tls.transport.dial(to).ok()?;
        let sock = super::socket::connect(to).ok()?;
        let timeout = self.peer.swim().config().tcp_timeout;
        let mut conn = PacketConn::new(Pipe::tls(sock, session), to, now, timeout);
        let token = self.free_token();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll.registry().register(conn.pipe.sock(), Token(token), interest).ok()?;
        let tls = self.tls.as_mut()?;
        tls.packets.insert(token, conn);
        tls.pool.insert(to, token);
        Some(token)
    }

    fn drive_packets(&mut self, token: usize) {
        let Some(conn) = self.tls.as_mut().and_then(|t| t.packets.get_mut(&token)) else {
            return;
        };
        match conn.drive(self.clock.now()) {
            Ok(sent) => self.stats.tls_packet_bytes_sent += sent,
            Err(end) => self.close_packets(token, Some(end)),
        }
    }

    /// Close a pooled packet connection; what was queued on it is lost (and counted).
    fn close_packets(&mut self, token: usize, end: Option<PacketConnEnd>) {
        let Some(tls) = &mut self.tls else { return };
        let Some(mut conn) = tls.packets.remove(&token) else { return };
        if tls.pool.get(&conn.to) == Some(&token) {
            tls.pool.remove(&conn.to);
        }
        conn.pipe.close();
        let _ = self.poll.registry().deregister(conn.pipe.sock());
        self.stats.tls_packets_dropped += conn.queued() as u64;
        if let Some(PacketConnEnd::Failed(e)) = &end {
            self.stats.tls_write_errors_packet += 1;
            log::debug!("TLS transport: packet connection to {} failed: {e}", conn.to);
        }
        self.note_handshake(&conn.pipe, false);
    }

    /// Give up connections whose handshake (and first frame) did not arrive in time.
    pub(super) fn expire_tls(&mut self, now: Millis) {
        let Some(tls) = &mut self.tls else { return };
        let due = |d: Option<Millis>| d.is_some_and(|d| d <= now);
        let frames: Vec<usize> =
            tls.frames.iter().filter(|(_, c)| due(c.deadline)).map(|(t, _)| *t).collect();
        for token in frames {
            if let Some(mut conn) = tls.frames.remove(&token) {
                let _ = self.poll.registry().deregister(conn.pipe.sock());
                self.stats.tls_read_errors += 1;
            }
        }
        let packets: Vec<usize> =
            tls.packets.iter().filter(|(_, c)| due(c.deadline)).map(|(t, _)| *t).collect();
        for token in packets {
            let timeout = io::Error::from(io::ErrorKind::TimedOut);
            self.close_packets(token, Some(PacketConnEnd::Failed(timeout)));
        }
    }

    /// Count (and keep for the log) a handshake that failed on `pipe`.
    pub(super) fn note_handshake(&mut self, pipe: &Pipe, inbound: bool) {
        let Some(why) = pipe.handshake_failure() else { return };
        let peer = pipe.peer_addr().map_or_else(|| "?".to_owned(), |a| a.to_string());
        let line = if inbound {
            self.stats.tls_handshake_failures_inbound += 1;
            format!("TLS handshake with {peer} (connecting to us) failed: {why}")
        } else {
            self.stats.tls_handshake_failures_outbound += 1;
            format!("TLS handshake with {peer} (dialled by us) failed: {why}")
        };
        if let Some(tls) = &mut self.tls {
            tls.last_failure = Some(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::tls::{TlsClient, TlsServer};

    use crate::tls::tests::certs;

    fn configs(tls12: bool) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
        let dir =
            std::env::temp_dir().join(format!("hearsay-net-tls-{}-{tls12}", std::process::id()));
        let ca = certs::TestCa::new(&dir, "records");
        let leaf = ca.server("node", &[]);
        let version = tls12.then_some(crate::tls::TlsVersion::Tls12);
        let server = TlsServer {
            cert_file: leaf.cert.clone(),
            key_file: leaf.key.clone(),
            max_version: version,
            ..TlsServer::default()
        };
        let client = TlsClient {
            ca_file: Some(ca.file.clone()),
            max_version: version,
            ..TlsClient::default()
        };
        (client.build().expect("client"), server.build().expect("server"))
    }

    /// A packet connection queues at most `MAX_QUEUED_FRAME_BYTES` of frames while it cannot
    /// send (here: connecting to a listener that never answers the handshake); past it,
    /// pushes are refused (the driver counts them as dropped), and nothing was half-queued.
    #[test]
    fn a_packet_connection_queues_a_bounded_number_of_bytes() {
        let (client_config, _) = configs(false);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let to = listener.local_addr().expect("addr");
        let sock = mio::net::TcpStream::connect(to).expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let session = ClientConnection::new(client_config, name).expect("client");
        let timeout = Duration::from_secs(10);
        let mut conn = PacketConn::new(Pipe::tls(sock, session), to, Millis(0), timeout);
        let frame = vec![0u8; 1000];
        let mut accepted = 0;
        while conn.push(frame.clone(), 990, Millis(1)) {
            accepted += 1;
            assert!(accepted <= MAX_QUEUED_FRAME_BYTES / 1000, "unbounded queue");
        }
        assert_eq!(accepted, MAX_QUEUED_FRAME_BYTES / 1000);
        assert_eq!(conn.queued(), accepted);
        // Driving it hands frames to the session only as its bounded buffer allows.
        let _ = conn.drive(Millis(2));
        assert!(conn.queued() > 0, "the handshake has not happened: frames wait");
    }

    /// Application-data records in `bytes` (TLS 1.2: only application data has type 23), with
    /// their payload lengths.
    fn app_records(bytes: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 5 <= bytes.len() {
            let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
            if bytes[at] == 23 {
                out.push(len);
            }
            at += 5 + len;
        }
        out
    }

    /// Handshake `client` with `server` in memory; what the client wrote after the handshake.
    fn exchange(client: &mut ClientConnection, server: &mut ServerConnection) -> Vec<u8> {
        let mut after = Vec::new();
        for _ in 0..10 {
            let mut c2s = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut c2s).expect("client writes");
            }
            if !client.is_handshaking() {
                after.extend_from_slice(&c2s);
            }
            let mut rd = &c2s[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("server reads");
                server.process_new_packets().expect("server accepts");
            }
            let mut s2c = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut s2c).expect("server writes");
            }
            let mut rd = &s2c[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("client reads");
                client.process_new_packets().expect("client accepts");
            }
        }
        after
    }

    /// The property the TLS transport's framing relies on: bytes of two `write` calls never
    /// share a record, whether written during the handshake or after it. Checked on TLS 1.2,
    /// where records' content types are visible.
    #[test]
    fn each_write_is_its_own_record() {
        let (client_config, server_config) = configs(true);
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut client = ClientConnection::new(client_config, name).expect("client");
        let mut server = ServerConnection::new(server_config).expect("server");
        // Two frames written before the handshake, then two after: four records.
        client.writer().write_all(&[1; 10]).expect("buffered");
        client.writer().write_all(&[2; 20]).expect("buffered");
        let during = exchange(&mut client, &mut server);
        client.writer().write_all(&[3; 30]).expect("write");
        client.writer().write_all(&[4; 40]).expect("write");
        let mut after = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut after).expect("client writes");
        }
        let mut records = app_records(&during);
        records.extend(app_records(&after));
        assert_eq!(records.len(), 4, "{records:?}");
        // Same overhead for each: the lengths differ exactly as the plaintexts do.
        let overhead = records[0] - 10;
        assert_eq!(records, vec![10 + overhead, 20 + overhead, 30 + overhead, 40 + overhead]);
        let mut rd = &after[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).expect("server reads");
            server.process_new_packets().expect("server accepts");
        }
        let mut plain = Vec::new();
        let _ = server.reader().read_to_end(&mut plain);
        assert_eq!(plain.len(), 100);
    }

    /// A peer that finishes the handshake and then stops reading: once the socket and the
    /// session are full, no byte leaves, and the write deadline (set when bytes began to wait
    /// or last moved) is not pushed out by further drives, so the pool gives the connection up.
    #[test]
    fn a_packet_connection_whose_peer_stops_reading_runs_out_of_time() {
        let (client_config, server_config) = configs(false);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let to = listener.local_addr().expect("addr");
        let (done, hold) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().expect("accept");
            let mut session = ServerConnection::new(server_config).expect("server");
            while session.is_handshaking() {
                session.complete_io(&mut sock).expect("handshake");
            }
            let _ = session.complete_io(&mut sock); // the tickets; then it reads nothing more
            let _ = hold.recv(); // keep the socket open, unread, until the test is done
        });
        let sock = mio::net::TcpStream::connect(to).expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let session = ClientConnection::new(client_config, name).expect("client");
        let timeout = Duration::from_secs(10);
        let mut conn = PacketConn::new(Pipe::tls(sock, session), to, Millis(0), timeout);
        for _ in 0..5_000 {
            conn.drive(Millis(1)).expect("handshake goes on");
            if conn.established {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(conn.established, "the handshake finished");
        conn.drive(Millis(1)).expect("idle");
        assert_eq!(conn.deadline, None, "an idle connection has no deadline");

        // Fill the socket buffers, the session and the queue; every push that moves bytes
        // renews the deadline.
        let frame = vec![7u8; 16 * 1024];
        let mut at = Millis(2);
        let mut stuck = 0;
        while stuck < 50 {
            at = at + Duration::from_millis(1);
            let queued = conn.push(frame.clone(), frame.len(), at);
            let sent = conn.drive(at).expect("the peer is still there");
            stuck = if queued || sent > 0 { 0 } else { stuck + 1 };
            std::thread::sleep(Duration::from_millis(1));
        }
        let deadline = conn.deadline.expect("bytes wait: a deadline");
        assert!(deadline <= at + timeout, "{deadline:?} after {at:?}");
        // No byte leaves any more: later drives keep the deadline, which passes.
        conn.drive(at + Duration::from_secs(5)).expect("still open");
        assert_eq!(conn.deadline, Some(deadline), "a stalled connection's deadline stays");
        done.send(()).expect("server waits");
        server.join().expect("server thread");
    }
}
