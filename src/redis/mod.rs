//! Redis connections on the node's mio loop: RESP over non-blocking sockets, no thread per
//! connection, no async runtime.
//!
//! [`driver::RedisDriver`] is a Redis-mode node's event loop around the sans-IO
//! [`RedisPeer`](crate::core::peer::redis::RedisPeer); `conn` moves one connection's bytes
//! (the `redis` crate's incremental parser reads the replies), plain or through a rustls
//! session on the same loop, `pack` encodes the core's commands with the `redis` crate's
//! encoder. Nothing here decides anything.

#![forbid(unsafe_code)]

mod conn;
pub(crate) mod driver;
mod pack;

pub(crate) use conn::TlsSetup;

use crate::core::peer::redis::RedisSettings;
use driver::Target;

/// Where and how to reach Redis, from Grafana's `ha_redis_address` as a URL
/// (`redis[s]://[user:password@]host:port[/db]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) target: Target,
    /// The host as written (a name or an IP), the default TLS server name.
    pub(crate) host: String,
    /// The URL asked for TLS (`rediss://`).
    pub(crate) tls: bool,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

impl Endpoint {
    /// Parse `url` with the `redis` crate's URL rules; `rediss://` (and `valkeys://`) mean
    /// TLS. Unix sockets are refused with a message saying so.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        use ::redis::{ConnectionAddr, IntoConnectionInfo};
        // The crate parses `rediss://` only with one of its TLS features, which would bring
        // its own TLS stack; the rest of the URL reads the same, and our loop does the TLS.
        let (plain, tls) = match url.split_once("://") {
            Some(("rediss", rest)) => (format!("redis://{rest}"), true),
            Some(("valkeys", rest)) => (format!("valkey://{rest}"), true),
            _ => (url.to_owned(), false),
        };
        let info = plain.into_connection_info().map_err(|e| format!("redis url {url:?}: {e}"))?;
        let (target, host) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => match host.parse::<std::net::IpAddr>() {
                Ok(ip) => (Target::Addr((ip, *port).into()), host.clone()),
                Err(_) => (Target::Host(format!("{host}:{port}")), host.clone()),
            },
            _ => return Err(format!("redis url {url:?}: only redis[s]://host:port is supported")),
        };
        let settings = info.redis_settings();
        Ok(Self {
            target,
            host,
            tls,
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
        assert!(!e.tls && !named.tls);
        assert_eq!((e.host.as_str(), named.host.as_str()), ("127.0.0.1", "redis.example"));
        assert!(Endpoint::parse("http://x").is_err());
        assert!(Endpoint::parse("redis+unix:///tmp/redis.sock").is_err());
    }

    #[test]
    fn rediss_means_tls_and_reads_the_rest_alike() {
        let e = Endpoint::parse("rediss://u:pw@[::1]:6390/2").expect("valid");
        assert!(e.tls);
        assert_eq!(e.target, Target::Addr("[::1]:6390".parse().expect("literal")));
        assert_eq!(e.host, "::1");
        assert_eq!(
            (e.db, e.username.as_deref(), e.password.as_deref()),
            (2, Some("u"), Some("pw"))
        );
        let named = Endpoint::parse("rediss://redis.example").expect("valid");
        assert_eq!((named.tls, named.target), (true, Target::Host("redis.example:6379".into())));
    }
}
