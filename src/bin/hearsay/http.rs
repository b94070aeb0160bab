//! The HTTP/1.1 server under the API: one thread, one mio loop, every limit explicit.
//!
//! Why not a thread pool (tiny_http, which this replaced): it read request bodies on its
//! workers with no deadline and gave every connection a thread, so four stalled uploads held
//! every worker and `/-/ready` and `/metrics` stopped answering for as long as the clients
//! stalled. Here bytes are read as they arrive and a request is handled only once it is
//! whole, inline on the loop (the handlers read and write in-memory state: microseconds to a
//! few milliseconds). A slow client costs a bounded buffer and a slot until its deadline, never
//! a worker, and a health check never waits behind an upload.
//!
//! HTTP/1.1 with keep-alive and pipelining (answered in order, one at a time), requests with a
//! `Content-Length` body (what amtool, curl and Go's client send; `Transfer-Encoding` is refused
//! with 411), `Expect: 100-continue`. Parsing is httparse's.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Largest request head (request line and headers).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (a silence is a few hundred bytes).
pub(crate) const MAX_BODY: usize = 1 << 20;
const MAX_HEADERS: usize = 64;
/// A request must arrive whole within this of its first byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection with nothing to say is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A response must be taken by the client within this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Refusals are logged at most this often (each is counted).
const LOG_EVERY: Duration = Duration::from_secs(60);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// A whole request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// Path and query, as sent.
    pub(crate) target: String,
    pub(crate) body: Vec<u8>,
}

/// What a handler answers.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

/// Why a request or connection was refused: the `reason` label of
/// `hearsay_http_requests_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Every connection slot held a request in progress.
    TooManyConnections,
    /// The request did not arrive whole in time (a stalled upload, a slow header).
    Timeout,
    /// The request head exceeded [`MAX_HEAD`].
    HeadTooLarge,
    /// The body would exceed [`MAX_BODY`].
    BodyTooLarge,
    /// Not HTTP/1.x, or a bad `Content-Length`.
    Malformed,
    /// A body without `Content-Length` (chunked).
    LengthRequired,
}

impl Rejection {
    pub(crate) const ALL: [Rejection; 6] = [
        Self::TooManyConnections,
        Self::Timeout,
        Self::HeadTooLarge,
        Self::BodyTooLarge,
        Self::Malformed,
        Self::LengthRequired,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::TooManyConnections => "too_many_connections",
            Self::Timeout => "timeout",
            Self::HeadTooLarge => "head_too_large",
            Self::BodyTooLarge => "body_too_large",
            Self::Malformed => "malformed",
            Self::LengthRequired => "length_required",
        }
    }

    fn response(self) -> Response {
        let (status, why) = match self {
            Self::TooManyConnections => (503, "too many connections"),
            Self::Timeout => (408, "the request did not arrive in time"),
            Self::HeadTooLarge => (431, "request head too large"),
            Self::BodyTooLarge => (413, "request body too large"),
            Self::Malformed => (400, "malformed request"),
            Self::LengthRequired => (411, "a body needs Content-Length"),
        };
        Response { status, content_type: "text/plain", body: why.as_bytes().to_vec() }
    }
}

/// `hearsay_http_requests_rejected_total{reason}`.
pub(crate) type RejectCounters = Family<Vec<(&'static str, &'static str)>, Counter>;

/// Stops [`Server::run`] from another thread.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stop {
    pub(crate) fn stop(&self) {
        self.flag.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
    }
}

/// The listening server.
pub(crate) struct Server {
    poll: Poll,
    /// Connections held at once (`--web.max-connections`). Past it an idle keep-alive
    /// connection makes room; when none is idle the newcomer gets 503.
    max_connections: usize,
    listener: TcpListener,
    stop: Stop,
    conns: BTreeMap<usize, Conn>,
    next_token: usize,
    rejected: RejectCounters,
    refused_since_log: u64,
    last_log: Option<Instant>,
}

#[derive(PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request.
    Reading,
    /// Writing a response; then reading again, or closing.
    Writing,
}

struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// When the connection is given up unless something happens first.
    deadline: Instant,
    /// The current request has begun to arrive (its deadline runs).
    in_request: bool,
    continue_sent: bool,
    close_after: bool,
}

/// What the bytes in a connection's buffer amount to.
enum Parsed {
    Incomplete { expect_continue: bool },
    Whole { request: Request, consumed: usize, close: bool },
    Refused(Rejection),
}

impl Server {
    pub(crate) fn bind(
        addr: SocketAddr,
        max_connections: usize,
        rejected: RejectCounters,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Stop { flag: Arc::new(AtomicBool::new(false)), waker };
        Ok(Self {
            poll,
            max_connections,
            listener,
            stop,
            conns: BTreeMap::new(),
            next_token: FIRST_CONN,
            rejected,
            refused_since_log: 0,
            last_log: None,
        })
    }

    pub(crate) fn stopper(&self) -> Stop {
        self.stop.clone()
    }

    /// Serve until [`Stop::stop`].
    pub(crate) fn run(&mut self, handler: &dyn Fn(&Request) -> Response) {
        let mut events = Events::with_capacity(256);
        while !self.stop.flag.load(Ordering::Relaxed) {
            let timeout = self
                .conns
                .values()
                .map(|c| c.deadline)
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("web: poll failed: {e}");
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => self.drive(t, handler),
                }
            }
            self.expire();
        }
    }

    fn accept(&mut self) {
        loop {
            let (sock, peer) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, most likely: the listener stays, clients retry.
                    log::warn!("web: accept failed: {e}");
                    return;
                }
            };
            if self.conns.len() >= self.max_connections && !self.evict_idle() {
                self.refuse(Rejection::TooManyConnections, peer);
                let mut sock = sock;
                let _ = sock.write_all(&encode(&Rejection::TooManyConnections.response(), true));
                continue; // dropping it closes it
            }
            let token = self.free_token();
            let mut conn = Conn {
                sock,
                peer,
                phase: Phase::Reading,
                inbuf: Vec::new(),
                out: Vec::new(),
                written: 0,
                deadline: Instant::now() + IDLE_TIMEOUT,
                in_request: false,
                continue_sent: false,
                close_after: false,
            };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self.poll.registry().register(&mut conn.sock, Token(token), interest).is_ok() {
                self.conns.insert(token, conn);
            }
        }
    }

    /// Close the keep-alive connection idle the longest; false if every one is busy.
    fn evict_idle(&mut self) -> bool {
        let idle = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Reading && c.inbuf.is_empty())
            .min_by_key(|(_, c)| c.deadline)
            .map(|(t, _)| *t);
        match idle {
            Some(token) => {
                self.close(token);
                true
            }
            None => false,
        }
    }

    fn free_token(&mut self) -> usize {
        loop {
            let t = self.next_token;
            self.next_token = if t == usize::MAX { FIRST_CONN } else { t + 1 };
            if !self.conns.contains_key(&t) {
                return t;
            }
        }
    }

    fn drive(&mut self, token: usize, handler: &dyn Fn(&Request) -> Response) {
        let Some(mut conn) = self.conns.remove(&token) else { return };
        let open = self.step(&mut conn, handler);
        if open {
            self.conns.insert(token, conn);
        } else {
            let _ = self.poll.registry().deregister(&mut conn.sock);
        }
    }

    /// Move what can move; false when the connection is done.
    fn step(&mut self, conn: &mut Conn, handler: &dyn Fn(&Request) -> Response) -> bool {
        loop {
            if conn.phase == Phase::Writing {
                match flush(conn) {
                    Ok(false) => return true,
                    Ok(true) if conn.close_after => return false,
                    Ok(true) => {
                        conn.phase = Phase::Reading;
                        conn.out.clear();
                        conn.written = 0;
                        conn.in_request = false;
                        conn.continue_sent = false;
                        conn.deadline = Instant::now() + IDLE_TIMEOUT;
                    }
                    Err(_) => return false,
                }
            }
            // Reading: take what arrived (bounded), then see whether a request is whole.
            let eof = match fill(conn) {
                Ok(eof) => eof,
                Err(_) => return false,
            };
            if !conn.inbuf.is_empty() && !conn.in_request {
                conn.in_request = true;
                conn.deadline = Instant::now() + REQUEST_TIMEOUT;
            }
            match parse(&conn.inbuf) {
                Parsed::Incomplete { .. } if eof => return false,
                Parsed::Incomplete { expect_continue } => {
                    if expect_continue && !conn.continue_sent {
                        conn.continue_sent = true;
                        let _ = conn.sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    return true;
                }
                Parsed::Refused(why) => {
                    self.refuse(why, conn.peer);
                    respond(conn, &why.response(), true);
                }
                Parsed::Whole { request, consumed, close } => {
                    conn.inbuf.drain(..consumed);
                    let response = handler(&request);
                    respond(conn, &response, close || eof);
                }
            }
        }
    }

    /// Answer 408 to requests that stalled, close idle connections past their time and
    /// responses the client does not take.
    fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(t, _)| *t).collect();
        for token in due {
            let Some(mut conn) = self.conns.remove(&token) else { continue };
            if conn.phase == Phase::Reading && conn.in_request {
                self.refuse(Rejection::Timeout, conn.peer);
                respond(&mut conn, &Rejection::Timeout.response(), true);
                let _ = flush(&mut conn); // best effort: the client is not reading either
            }
            let _ = self.poll.registry().deregister(&mut conn.sock);
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.sock);
        }
    }

    fn refuse(&mut self, why: Rejection, peer: SocketAddr) {
        self.rejected.get_or_create(&vec![("reason", why.label())]).inc();
        self.refused_since_log += 1;
        let now = Instant::now();
        if self.last_log.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            log::warn!(
                "web: refused a request from {peer}: {} ({} refused since the last such line; \
                 hearsay_http_requests_rejected_total counts them by reason)",
                why.label(),
                self.refused_since_log
            );
            self.refused_since_log = 0;
            self.last_log = Some(now);
        }
    }
}

/// Read what the socket holds into the buffer, never past one whole request's worth; true at
/// the end of the stream.
fn fill(conn: &mut Conn) -> io::Result<bool> {
    let cap = MAX_HEAD + MAX_BODY + 1;
    let mut chunk = [0u8; 16 * 1024];
    while conn.inbuf.len() < cap {
        let room = (cap - conn.inbuf.len()).min(chunk.len());
        match conn.sock.read(&mut chunk[..room]) {
            Ok(0) => return Ok(true),
            Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Write what is pending; true when all of it is out.
fn flush(conn: &mut Conn) -> io::Result<bool> {
    while conn.written < conn.out.len() {
        match conn.sock.write(&conn.out[conn.written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn respond(conn: &mut Conn, response: &Response, close: bool) {
    conn.out = encode(response, close);
    conn.written = 0;
    conn.phase = Phase::Writing;
    conn.close_after = close;
    conn.deadline = Instant::now() + WRITE_TIMEOUT;
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Parsed::Refused(Rejection::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Parsed::Incomplete { expect_continue: false },
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(Rejection::HeadTooLarge),
        Err(_) => return Parsed::Refused(Rejection::Malformed),
    };
    if head_len > MAX_HEAD {
        return Parsed::Refused(Rejection::HeadTooLarge);
    }
    let header = |name: &str| {
        req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    };
    if header("transfer-encoding").is_some() {
        return Parsed::Refused(Rejection::LengthRequired);
    }
    let length = match header("content-length") {
        None => 0,
        Some(v) => match std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => n,
            None => return Parsed::Refused(Rejection::Malformed),
        },
    };
    if length > MAX_BODY as u64 {
        return Parsed::Refused(Rejection::BodyTooLarge);
    }
    let length = length as usize;
    if buf.len() < head_len + length {
        let expect_continue =
            header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        return Parsed::Incomplete { expect_continue };
    }
    let connection = header("connection").unwrap_or_default();
    let close = match req.version {
        Some(1) => connection.eq_ignore_ascii_case(b"close"),
        _ => !connection.eq_ignore_ascii_case(b"keep-alive"),
    };
    Parsed::Whole {
        request: Request {
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            body: buf[head_len..head_len + length].to_vec(),
        },
        consumed: head_len + length,
        close,
    }
}

fn encode(r: &Response, close: bool) -> Vec<u8> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        r.status,
        r.content_type,
        r.body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(&r.body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(raw: &str) -> (Request, usize, bool) {
        match parse(raw.as_bytes()) {
            Parsed::Whole { request, consumed, close } => (request, consumed, close),
            Parsed::Incomplete { .. } => panic!("incomplete: {raw:?}"),
            Parsed::Refused(why) => panic!("refused {why:?}: {raw:?}"),
        }
    }

    fn refused(raw: &[u8]) -> Rejection {
        match parse(raw) {
            Parsed::Refused(why) => why,
            _ => panic!("accepted: {:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn a_request_is_whole_once_its_body_is() {
        let raw = "POST /api/v2/silences HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdGET /";
        let (req, consumed, close) = whole(raw);
        assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", "/api/v2/silences"));
        assert_eq!(req.body, b"abcd");
        assert_eq!(&raw[consumed..], "GET /", "the pipelined rest stays");
        assert!(!close, "HTTP/1.1 keeps the connection");
        let cut = "POST / HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nab";
        assert!(matches!(parse(cut.as_bytes()), Parsed::Incomplete { expect_continue: true }));
    }

    #[test]
    fn connection_reuse_follows_the_version_and_header() {
        assert!(whole("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").2);
        assert!(whole("GET / HTTP/1.0\r\n\r\n").2);
        assert!(!whole("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").2);
    }

    #[test]
    fn what_cannot_be_carried_is_refused_by_reason() {
        let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert_eq!(refused(big.as_bytes()), Rejection::BodyTooLarge);
        assert_eq!(refused(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Rejection::Malformed);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(refused(chunked), Rejection::LengthRequired);
        assert_eq!(refused(b"\x16\x03\x01 not http\r\n\r\n"), Rejection::Malformed);
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(refused(&long), Rejection::HeadTooLarge);
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(refused(many.as_bytes()), Rejection::HeadTooLarge);
    }
}
