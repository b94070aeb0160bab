//! Binding the gossip port: one UDP socket and one TCP listener on the same address, as
//! memberlist's `NetTransport` does (peers reply to the UDP source port, so it must be the
//! advertised gossip port).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// UDP buffer sizes we ask for. memberlist asks for 2 MiB and halves until accepted; the
/// kernel clamps silently to `net.core.rmem_max`, so one request is enough.
const UDP_BUFFER_BYTES: usize = 4 << 20;
/// Pending connections the kernel queues for us.
const LISTEN_BACKLOG: i32 = 1024;

/// Bind UDP and TCP on `addr`. Port 0 picks a port free for both.
pub(crate) fn bind_pair(
    addr: SocketAddr,
) -> io::Result<(mio::net::UdpSocket, mio::net::TcpListener)> {
    if addr.port() != 0 {
        return Ok((bind_udp(addr)?, bind_tcp(addr)?));
    }
    // The TCP port may be taken for UDP by someone else: retry a few times, like memberlist.
    let mut last = None;
    for _ in 0..10 {
        let tcp = bind_tcp(addr)?;
        let chosen = tcp.local_addr()?;
        match bind_udp(chosen) {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

fn domain(addr: SocketAddr) -> Domain {
    if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 }
}

fn bind_udp(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let socket = Socket::new(domain(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    // Best effort: a smaller buffer only means more drops under bursts.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// Bind only TCP on `addr` (the TLS transport has no UDP).
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(domain(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Start a non-blocking connect. Low latency matters more than coalescing for our small,
/// one-exchange streams.
pub(crate) fn connect(to: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let stream = mio::net::TcpStream::connect(to)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
