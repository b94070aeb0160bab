//! Peer bookkeeping as Alertmanager's `cluster.Peer` does it (spec `alertmanager-ha.md` §1.4–1.5):
//! configured peers are resolved (a DNS name can expand to many addresses, as a Kubernetes
//! headless service does) and re-resolved periodically; members that fail or leave are
//! re-joined every reconnect interval until they come back or the reconnect timeout passes.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

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

/// Members that failed or left, to be re-joined.
#[derive(Debug, Default)]
pub(crate) struct FailedPeers {
    peers: BTreeMap<SocketAddr, Instant>,
}

impl FailedPeers {
    /// A member failed or left at `now`.
    pub(crate) fn add(&mut self, addr: SocketAddr, now: Instant) {
        self.peers.entry(addr).or_insert(now);
    }

    /// A member at `addr` joined: stop re-joining it. Returns whether it was on the list.
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> bool {
        self.peers.remove(&addr).is_some()
    }

    /// Forget peers that failed longer than `timeout` ago (zero: never forget).
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) {
        if !timeout.is_zero() {
            self.peers.retain(|_, since| now.duration_since(*since) < timeout);
        }
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.peers.keys().copied().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }
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

    #[test]
    fn failed_peers_expire_after_the_timeout() {
        let t0 = Instant::now();
        let mut f = FailedPeers::default();
        let a: SocketAddr = "10.0.0.1:9094".parse().expect("literal");
        f.add(a, t0);
        f.expire(t0 + Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(f.addrs(), vec![a]);
        f.expire(t0 + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(f.len(), 0);
        f.add(a, t0);
        f.expire(t0 + Duration::from_secs(1_000_000), Duration::ZERO);
        assert!(f.remove(a), "a zero timeout never forgets");
    }
}
