//! DNS off the event loop: `getaddrinfo` blocks (for seconds when a resolver is down), so the
//! loop hands names to this thread and gets the addresses back as commands. The loop's peer
//! core decides when to resolve; this thread only asks the system.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError, bounded};

use super::{Command, Shared, peers};

/// A name to resolve.
#[derive(Debug)]
pub(super) enum Lookup {
    /// The configured gossip peers (our own address left out).
    Peers { peers: Vec<String>, own: SocketAddr },
    /// A Redis server's or Sentinel's `host:port`.
    Redis(String),
}

/// The running resolver. Dropping it ends the thread once its lookup in progress, if any,
/// returns: shutdown never waits for DNS.
pub(super) struct Resolver {
    lookups: Sender<Lookup>,
}

/// Lookups waiting; the loop asks once per schedule, so a full queue means one is running
/// already and the next schedule brings it back.
const LOOKUPS: usize = 4;

impl Resolver {
    pub(super) fn spawn(shared: Arc<Shared>) -> std::io::Result<Self> {
        let (lookups, inbox) = bounded::<Lookup>(LOOKUPS);
        std::thread::Builder::new().name("hearsay-resolve".into()).spawn(move || {
            for lookup in inbox {
                let reply = match lookup {
                    // A malformed entry was refused at start; names that fail are skipped
                    // and retried at the next refresh.
                    Lookup::Peers { peers, own } => {
                        Command::Resolved(peers::resolve(&peers, own).unwrap_or_default())
                    }
                    Lookup::Redis(host) => {
                        let addrs = host
                            .to_socket_addrs()
                            .map(|a| a.collect::<Vec<_>>())
                            .map_err(|e| format!("resolving {host}: {e}"));
                        Command::RedisResolved(host, addrs)
                    }
                };
                if shared.send(reply).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { lookups })
    }

    /// Ask for a lookup; false when one is queued already.
    pub(super) fn ask(&self, lookup: Lookup) -> bool {
        !matches!(self.lookups.try_send(lookup), Err(TrySendError::Full(_)))
    }
}
