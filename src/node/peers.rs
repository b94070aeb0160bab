//! Configured peers, resolved as Alertmanager's `cluster.Peer` does it (`cluster/cluster.go`):
//! a DNS name can expand to many addresses, as a Kubernetes
//! headless service does. The gossip core decides when to re-resolve (its refresh schedule)
//! and who to re-join.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolve each `host:port` to every address it names, dropping our own address.
/// Names that fail to resolve are skipped (and retried at the next refresh); a malformed entry
/// is an error.
pub(crate) fn resolve(peers: &[String], own: SocketAddr) -> io::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for peer in peers {
        check_host_port(peer)?;
        if let Ok(addrs) = peer.to_socket_addrs() {
            for addr in addrs {
                if addr != own && !out.contains(&addr) {
                    out.push(addr);
                }
            }
        }
    }
    Ok(out)
}

/// `host:port` with a numeric port, `[v6]:port` for IPv6.
pub(crate) fn check_host_port(peer: &str) -> io::Result<()> {
    let bad =
        || io::Error::new(io::ErrorKind::InvalidInput, format!("peer {peer:?} is not host:port"));
    let (host, port) = peer.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_literals_and_names_and_skips_ourselves() {
        let own: SocketAddr = "127.0.0.1:9094".parse().expect("literal");
        let peers = vec!["127.0.0.1:9094".into(), "127.0.0.2:9094".into(), "localhost:9095".into()];
        let got = resolve(&peers, own).expect("well-formed");
        assert!(got.contains(&"127.0.0.2:9094".parse().expect("literal")));
        assert!(got.iter().any(|a| a.port() == 9095 && a.ip().is_loopback()), "{got:?}");
        assert!(!got.contains(&own));
    }

    #[test]
    fn malformed_peers_are_errors() {
        let own: SocketAddr = "127.0.0.1:9094".parse().expect("literal");
        for bad in ["127.0.0.1", ":9094", "host:http", "host:70000"] {
            assert!(resolve(&[bad.to_owned()], own).is_err(), "{bad}");
        }
        resolve(&["[::1]:9094".to_owned()], own).expect("bracketed IPv6");
    }
}
