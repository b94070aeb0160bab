//! Redis connections on the node's mio loop: RESP over non-blocking sockets, no thread per
//! connection, no async runtime.
//!
//! [`driver::RedisDriver`] is a Redis-mode node's event loop around the sans-IO
//! [`RedisPeer`](crate::core::peer::redis::RedisPeer); `conn` moves one connection's bytes
//! (the `redis` crate's incremental parser reads the replies), `pack` encodes the core's
//! commands with the `redis` crate's encoder. Nothing here decides anything.

#![forbid(unsafe_code)]

mod conn;
pub(crate) mod driver;
mod pack;

use crate::core::peer::redis::RedisSettings;
use driver::Target;

/// Where and how to reach Redis, from Grafana's `ha_redis_address` as a URL
/// (`redis://[user:password@]host:port[/db]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) target: Target,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

impl Endpoint {
    /// Parse `url` with the `redis` crate's URL rules. TLS (`rediss://`) and Unix sockets are
    /// refused with a message saying so.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        use ::redis::{ConnectionAddr, IntoConnectionInfo};
        let info = url.into_connection_info().map_err(|e| format!("redis url {url:?}: {e}"))?;
        let target = match info.addr() {
            ConnectionAddr::Tcp(host, port) => match host.parse::<std::net::IpAddr>() {
                Ok(ip) => Target::Addr((ip, *port).into()),
                Err(_) => Target::Host(format!("{host}:{port}")),
            },
            ConnectionAddr::TcpTls { .. } => {
                return Err(format!("redis url {url:?}: TLS (rediss://) is not supported yet"));
            }
            _ => return Err(format!("redis url {url:?}: only redis://host:port is supported")),
        };
        let settings = info.redis_settings();
        Ok(Self {
            target,
            db: settings.db(),
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
        })
    }

    /// Put the credentials and database into the core's settings.
    pub(crate) fn apply(&self, settings: &mut RedisSettings) {
        settings.db = self.db;
        settings.username.clone_from(&self.username);
        settings.password.clone_from(&self.password);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_address_credentials_and_database() {
        let e = Endpoint::parse("redis://u:p%40ss@127.0.0.1:6380/3").expect("valid");
        assert_eq!(e.target, Target::Addr("127.0.0.1:6380".parse().expect("literal")));
        assert_eq!(
            (e.db, e.username.as_deref(), e.password.as_deref()),
            (3, Some("u"), Some("p@ss"))
        );
        let named = Endpoint::parse("redis://redis.example:6379").expect("valid");
        assert_eq!(named.target, Target::Host("redis.example:6379".into()));
        assert_eq!(named.db, 0);
        assert!(Endpoint::parse("rediss://127.0.0.1:6379").unwrap_err().contains("TLS"));
        assert!(Endpoint::parse("http://x").is_err());
    }
}
