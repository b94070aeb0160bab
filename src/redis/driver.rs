//! The mio loop of a Redis-mode node: moves bytes between its Redis connections and a
//! [`RedisPeer`] core.
//!
//! One thread, one `Poll`: the command and subscriber connections (and, with Redis Sentinel,
//! one to a Sentinel; with Redis Cluster, one per master) and a [`Waker`]. Each link connects where the core says
//! ([`RedisPeer::target`]: a Sentinel, the master it named) or else to the configured server. Each turn
//! sleeps until a connection is ready, the core's deadline or the caller's; drives every ready
//! connection (reads until `WouldBlock` or a fairness budget, parses every reply); and writes
//! everything the core queued — all of it packed into one buffer per connection, so a burst of
//! publishes leaves in one write. It makes no protocol decisions: links open and close when
//! the core says, every reply goes to the core, and every failure (with why: TLS, I/O, ...)
//! is handed to the core, which retries with backoff and counts it.
//!
//! With TLS configured every connection is a rustls session on this same loop (see `conn`);
//! its configuration is built once, when the node starts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Token, Waker};

use super::conn::{ConnError, Limits, RespConn, TlsSetup};
use super::pack::pack;
use crate::core::Millis;
use crate::core::peer::redis::{Link, LinkAction, LinkFailure, RedisPeer};
use crate::net::Clock;

const WAKER: Token = Token(0);

/// Bytes packed for a connection and not yet written; past it the core's commands wait (in
/// the core, which bounds them) until the socket drains.
const WRITE_BUFFER_BYTES: usize = 4 << 20;
/// Host names whose addresses are kept (the configured server, the Sentinels, a master
/// named by name); past it the oldest is forgotten and resolved again when next needed.
const MAX_NAMES: usize = 16;

fn token(link: Link) -> Token {
    Token(1 + link.index())
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address literal.
    Addr(SocketAddr),
    /// `host:port` with a name to resolve (off the loop: see [`RedisDriver::take_lookup`]).
    Host(String),
}

impl Target {
    /// `host:port` as the core names it: an address literal, or a name to resolve.
    fn parse(addr: &str) -> Self {
        addr.parse().map_or_else(|_| Self::Host(addr.to_owned()), Self::Addr)
    }
}

/// The event loop around one Redis peer core.
#[derive(Debug)]
pub(crate) struct RedisDriver {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    clock: Clock,
    target: Target,
    /// TLS over every connection, when configured.
    tls: Option<TlsSetup>,
    /// Per host name, its addresses still to try (the first is in use); a failed connect
    /// moves to the next, and past the last the name is resolved again. At most
    /// [`MAX_NAMES`] names.
    resolved: Vec<(String, Vec<SocketAddr>)>,
    /// Links waiting for their name's resolution.
    unresolved: Vec<(Link, String)>,
    /// Names to hand to the resolver (see [`Self::take_lookup`]).
    lookups: Vec<String>,
    conns: [Option<RespConn>; Link::COUNT],
    /// The name each connection was opened to, if it was one.
    conn_names: [Option<String>; Link::COUNT],
    /// A connection stopped reading at its budget: drive it again without waiting.
    more: [bool; Link::COUNT],
    peer: RedisPeer,
    values: Vec<::redis::Value>,
    scratch: Vec<u8>,
    /// Bytes written and read on connections already closed.
    closed_bytes: (u64, u64),
}

impl RedisDriver {
    /// A loop for `peer`, connecting to `target` (over TLS with `tls`) when the core asks.
    pub(crate) fn new(
        peer: RedisPeer,
        target: Target,
        tls: Option<TlsSetup>,
        clock: Clock,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Self {
            poll,
            events: Events::with_capacity(64),
            waker,
            clock,
            target,
            tls,
            resolved: Vec::new(),
            unresolved: Vec::new(),
            lookups: Vec::new(),
            conns: std::array::from_fn(|_| None),
            conn_names: std::array::from_fn(|_| None),
            more: [false; Link::COUNT],
            peer,
            values: Vec::new(),
            scratch: Vec::new(),
            closed_bytes: (0, 0),
        })
    }

    /// Wakes [`Self::turn`] from another thread.
    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// The driver's clock reading.
    pub(crate) fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The core.
    pub(crate) fn peer(&self) -> &RedisPeer {
        &self.peer
    }

    /// The core, for host inputs. Call [`Self::flush`] afterwards.
    pub(crate) fn peer_mut(&mut self) -> &mut RedisPeer {
        &mut self.peer
    }

    /// One turn: sleep until a connection is ready, the core's deadline or `wake_at`, then
    /// handle everything that is ready and write what the core queued.
    pub(crate) fn turn(&mut self, wake_at: Option<Millis>) -> io::Result<()> {
        let timeout = if self.more.iter().any(|m| *m) {
            Some(Duration::ZERO)
        } else {
            [self.peer.poll_timeout(), wake_at]
                .into_iter()
                .flatten()
                .min()
                .map(|at| self.clock.until(at))
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let ready: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        for link in Link::ALL {
            if ready.contains(&token(link)) || self.more[link.index()] {
                self.drive(link);
            }
        }
        let now = self.clock.now();
        if self.peer.poll_timeout().is_some_and(|at| at <= now) {
            self.peer.handle_timeout(now, self.clock.unix());
        }
        self.flush();
        Ok(())
    }

    /// Carry out what the core asked: open and close links, write its commands.
    pub(crate) fn flush(&mut self) {
        while let Some(action) = self.peer.poll_link() {
            match action {
                LinkAction::Open(link) => self.open(link),
                LinkAction::Close(link) => self.close(link),
            }
        }
        for link in Link::ALL {
            let Some(conn) = self.conns[link.index()].as_mut() else { continue };
            let mut queued = false;
            while conn.unwritten() < WRITE_BUFFER_BYTES {
                let Some(cmd) = self.peer.poll_command(link) else { break };
                self.scratch.clear();
                pack(&cmd, &mut self.scratch);
                conn.queue(&self.scratch);
                queued = true;
            }
            if queued {
                self.drive(link);
            }
        }
    }

    /// A name that needs resolving (once per request): the caller resolves it off the
    /// loop and hands the outcome to [`Self::resolved`].
    pub(crate) fn take_lookup(&mut self) -> Option<String> {
        self.lookups.pop()
    }

    /// The outcome of a lookup of `host` asked for by [`Self::take_lookup`].
    pub(crate) fn resolved(&mut self, host: &str, addrs: Result<Vec<SocketAddr>, String>) {
        let (waiting, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.unresolved).into_iter().partition(|(_, h)| h == host);
        self.unresolved = others;
        let waiting: Vec<Link> = waiting.into_iter().map(|(l, _)| l).collect();
        match addrs {
            Ok(addrs) if !addrs.is_empty() => {
                self.resolved.retain(|(h, _)| h != host);
                if self.resolved.len() >= MAX_NAMES {
                    self.resolved.remove(0);
                }
                self.resolved.push((host.to_owned(), addrs));
                for link in waiting {
                    self.open(link);
                }
            }
            Ok(_) => self.refused(&waiting, "the name resolves to no address"),
            Err(e) => self.refused(&waiting, &e),
        }
        self.flush();
    }

    fn refused(&mut self, links: &[Link], why: &str) {
        let now = self.clock.now();
        for link in links {
            let unix = self.clock.unix();
            self.peer.handle_disconnected(now, unix, *link, LinkFailure::Resolve, why);
        }
    }

    /// Where `link` connects now: where the core says, else the configured server.
    fn target_of(&self, link: Link) -> Target {
        self.peer.target(link).map_or_else(|| self.target.clone(), Target::parse)
    }

    fn open(&mut self, link: Link) {
        self.close(link);
        let i = link.index();
        let addr = match self.target_of(link) {
            Target::Addr(addr) => {
                self.conn_names[i] = None;
                addr
            }
            Target::Host(host) => {
                let known = self.resolved.iter().find(|(h, _)| *h == host);
                match known.and_then(|(_, addrs)| addrs.first()) {
                    Some(addr) => {
                        let addr = *addr;
                        self.conn_names[i] = Some(host);
                        addr
                    }
                    None => {
                        self.unresolved.retain(|(l, _)| *l != link);
                        if !self.unresolved.iter().any(|(_, h)| *h == host) {
                            self.lookups.retain(|h| *h != host);
                            self.lookups.push(host.clone());
                        }
                        self.unresolved.push((link, host));
                        return;
                    }
                }
            }
        };
        let registered = RespConn::connect_with(addr, Limits::default(), self.tls.as_ref())
            .and_then(|mut conn| {
                let interest = conn.interest();
                let registry = self.poll.registry();
                registry.register(conn.source(), token(link), interest).map_err(ConnError::Io)?;
                Ok(conn)
            });
        match registered {
            Ok(conn) => self.conns[link.index()] = Some(conn),
            Err(e) => self.failed(link, reason(&e), &e.to_string()),
        }
    }

    fn close(&mut self, link: Link) {
        self.more[link.index()] = false;
        if let Some(mut conn) = self.conns[link.index()].take() {
            let _ = self.poll.registry().deregister(conn.source());
            let s = conn.stats();
            self.closed_bytes.0 += s.bytes_written;
            self.closed_bytes.1 += s.bytes_read;
        }
    }

    /// Bytes written to and read from Redis so far, every connection counted.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        self.conns.iter().flatten().fold(self.closed_bytes, |(w, r), c| {
            let s = c.stats();
            (w + s.bytes_written, r + s.bytes_read)
        })
    }

    /// The link broke: drop it; a named target's next address is tried next time (the name
    /// is resolved again once every address failed).
    fn failed(&mut self, link: Link, reason: LinkFailure, why: &str) {
        self.close(link);
        if let Some(host) = self.conn_names[link.index()].take()
            && let Some(i) = self.resolved.iter().position(|(h, _)| *h == host)
        {
            let addrs = &mut self.resolved[i].1;
            addrs.remove(0);
            if addrs.is_empty() {
                self.resolved.remove(i);
            }
        }
        let now = self.clock.now();
        self.peer.handle_disconnected(now, self.clock.unix(), link, reason, why);
    }

    /// Drive one connection: finish its connect, write, read, and hand every value to the core.
    fn drive(&mut self, link: Link) {
        let Some(conn) = self.conns[link.index()].as_mut() else { return };
        self.values.clear();
        let driven = conn.drive(&mut self.values);
        let interest = conn.interest();
        let now = self.clock.now();
        let unix = self.clock.unix();
        match driven {
            Ok(d) => {
                if d.connected_now {
                    self.peer.handle_connected(now, unix, link);
                }
                for value in self.values.drain(..) {
                    self.peer.handle_value(now, unix, link, value);
                }
                self.more[link.index()] = d.more;
                if let Some(conn) = self.conns[link.index()].as_mut() {
                    // Interest follows what is left to write.
                    let _ = self.poll.registry().reregister(conn.source(), token(link), interest);
                }
            }
            Err(e) => {
                // Values parsed before the error still count.
                for value in self.values.drain(..) {
                    self.peer.handle_value(now, unix, link, value);
                }
                self.failed(link, reason(&e), &e.to_string());
            }
        }
    }

    /// Where `link` connects, for log lines.
    pub(crate) fn describe_target(&self, link: Link) -> String {
        match self.target_of(link) {
            Target::Addr(a) => a.to_string(),
            Target::Host(h) => h,
        }
    }
}

/// The counter a connection error goes to.
fn reason(e: &ConnError) -> LinkFailure {
    match e {
        ConnError::Connect(_) => LinkFailure::Connect,
        ConnError::Tls { .. } => LinkFailure::Tls,
        ConnError::Closed => LinkFailure::Closed,
        ConnError::Protocol(_) | ConnError::TooLarge { .. } => LinkFailure::Protocol,
        ConnError::Io(_) => LinkFailure::Io,
    }
}
