//! Redis Sentinel: the master is whichever server the Sentinels name, and it moves.
//!
//! The peer keeps one [`Link::Sentinel`] to one Sentinel at a time, rotating through the
//! configured addresses when one fails (refused, timed out, or not knowing the master name).
//! On every connect it `AUTH`s with the Sentinel credentials (if any), asks
//! `SENTINEL GET-MASTER-ADDR-BY-NAME <name>`, then `SUBSCRIBE +switch-master`, so a failover
//! is heard the moment the Sentinels agree on it. The command and subscriber links go to the
//! named master; when it changes they are closed and opened at the new address at once
//! (outside the backoff), and the reconnect exchanges full states as after any outage.
//!
//! A notice can be missed (the Sentinel link was down during the switch), so the master is
//! also asked again whenever a data link fails, or the server answers as no master would
//! (`READONLY` on the heartbeat `SET`, `LOADING`, `MASTERDOWN`): the Sentinel link is reopened,
//! which asks again. A data link failing with backoff bounds how often that happens.

use redis::Value;

use super::link::{Sent, State};
use super::{Command, Link, LinkAction, LinkFailure, RedisPeer, Stopping};

/// The channel Sentinels announce a new master on; the payload is
/// `<name> <old-ip> <old-port> <new-ip> <new-port>`.
pub const SWITCH_MASTER_CHANNEL: &str = "+switch-master";

/// Error codes of a server that is not (or not yet) a usable master.
const NOT_A_MASTER: [&str; 3] = ["READONLY", "LOADING", "MASTERDOWN"];

/// Where the Sentinels are and what to ask them (Grafana's `ha_redis_sentinel_*` keys, with
/// `ha_redis_address` as the list of Sentinels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// The master's name (`ha_redis_sentinel_master_name`).
    pub master_name: String,
    /// The Sentinels' `host:port` addresses, tried in turn (at least one).
    pub addrs: Vec<String>,
    /// ACL user for the Sentinels (`ha_redis_sentinel_username`, none by default).
    pub username: Option<String>,
    /// Password for the Sentinels (`ha_redis_sentinel_password`; none: no `AUTH`).
    pub password: Option<String>,
}

/// What the peer knows of the Sentinels.
#[derive(Debug)]
pub(super) struct Discovery {
    pub(super) settings: SentinelSettings,
    /// The Sentinel in use, an index into `settings.addrs`; a failure moves to the next.
    index: usize,
    /// Sentinels that failed in a row since one last named the master.
    failed_in_row: usize,
    /// The master as last named, `host:port`.
    pub(super) master: Option<String>,
}

impl Discovery {
    pub(super) fn new(settings: SentinelSettings) -> Self {
        debug_assert!(!settings.addrs.is_empty(), "Sentinel mode needs a Sentinel address");
        Self { settings, index: 0, failed_in_row: 0, master: None }
    }

    /// The Sentinel to connect to now.
    pub(super) fn current(&self) -> &str {
        self.settings.addrs.get(self.index).map_or("", String::as_str)
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn join_addr(host: &str, port: &str) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The reply to `SENTINEL GET-MASTER-ADDR-BY-NAME`: `Ok(None)` when the Sentinel does not
/// know the name (a null reply), `Err` when the reply has another shape.
pub(super) fn master_reply(value: &Value) -> Result<Option<String>, ()> {
    match value {
        Value::Nil => Ok(None),
        Value::Array(items) => match items.as_slice() {
            [Value::BulkString(host), Value::BulkString(port)] => {
                let host = std::str::from_utf8(host).map_err(|_| ())?;
                let port = std::str::from_utf8(port).map_err(|_| ())?;
                port.parse::<u16>().map_err(|_| ())?;
                Ok(Some(join_addr(host, port)))
            }
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// The new master in a `+switch-master` payload, when it is about `name`.
pub(super) fn switched_master(payload: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        [n, _, _, host, port] if *n == name && port.parse::<u16>().is_ok() => {
            Some(join_addr(host, port))
        }
        _ => None,
    }
}

impl RedisPeer {
    /// The Sentinel link is up: authenticate, ask for the master, listen for its changes.
    pub(super) fn sentinel_connected(&mut self) {
        let Some(d) = &self.sentinel else { return };
        let auth = d
            .settings
            .password
            .clone()
            .map(|password| Command::Auth { username: d.settings.username.clone(), password });
        let ask = Command::SentinelMaster(d.settings.master_name.clone());
        let subscribe = Command::Subscribe(vec![SWITCH_MASTER_CHANNEL.to_owned()]);
        let l = self.link_mut(Link::Sentinel);
        l.state = State::Up;
        l.ever_up = true;
        l.control.extend(auth.into_iter().chain([ask, subscribe]));
    }

    /// A value on the Sentinel link: the replies to `AUTH` and to the question, in order,
    /// then subscription confirmations, pongs and `+switch-master` notices.
    pub(super) fn on_sentinel_value(&mut self, value: Value) {
        if let Value::ServerError(e) = &value {
            let reason = match e.code() {
                "WRONGPASS" | "NOAUTH" | "NOPERM" => LinkFailure::Auth,
                _ => LinkFailure::Refused,
            };
            let what = e.to_string();
            self.actions.push_back(LinkAction::Close(Link::Sentinel));
            self.fail_link(Link::Sentinel, reason, what);
            return;
        }
        let front = self.link(Link::Sentinel).in_flight.front().map(|(s, _)| s.clone());
        match front {
            Some(Sent::Auth) => {
                self.link_mut(Link::Sentinel).in_flight.pop_front();
            }
            Some(Sent::Master) => {
                self.link_mut(Link::Sentinel).in_flight.pop_front();
                self.on_master_reply(&value);
            }
            _ => self.on_sentinel_push(value),
        }
    }

    fn on_master_reply(&mut self, value: &Value) {
        let Some(d) = self.sentinel.as_mut() else { return };
        match master_reply(value) {
            Ok(Some(addr)) => {
                d.failed_in_row = 0;
                self.link_mut(Link::Sentinel).healthy();
                self.set_master(addr);
            }
            Ok(None) => {
                let what = format!("does not know a master named {:?}", d.settings.master_name);
                self.actions.push_back(LinkAction::Close(Link::Sentinel));
                self.fail_link(Link::Sentinel, LinkFailure::UnknownMaster, what);
            }
            Err(()) => {
                self.stats.unexpected += 1;
                self.actions.push_back(LinkAction::Close(Link::Sentinel));
                let what =
                    format!("unexpected reply to SENTINEL GET-MASTER-ADDR-BY-NAME: {value:?}");
                self.fail_link(Link::Sentinel, LinkFailure::Protocol, what);
            }
        }
    }

    fn on_sentinel_push(&mut self, value: Value) {
        let Value::Array(items) = value else {
            self.stats.unexpected += 1;
            return;
        };
        match items.as_slice() {
            [Value::BulkString(kind), Value::BulkString(channel), Value::BulkString(payload)]
                if kind == b"message" && channel == SWITCH_MASTER_CHANNEL.as_bytes() =>
            {
                self.link_mut(Link::Sentinel).healthy();
                let name = self.sentinel.as_ref().map(|d| d.settings.master_name.as_str());
                if let Some(addr) = name.and_then(|n| switched_master(payload, n)) {
                    self.set_master(addr);
                }
            }
            [Value::BulkString(kind), ..] if kind == b"subscribe" => {
                self.answered(Link::Sentinel, Sent::Subscribe)
            }
            [Value::BulkString(kind), ..] if kind == b"pong" => {
                self.answered(Link::Sentinel, Sent::Ping)
            }
            _ => self.stats.unexpected += 1,
        }
    }

    /// The Sentinels named `addr` as the master: open the data links there, or move them.
    fn set_master(&mut self, addr: String) {
        let Some(d) = self.sentinel.as_mut() else { return };
        let moved = d.master.as_ref().is_some_and(|m| *m != addr);
        d.master = Some(addr.clone());
        if self.stopping != Stopping::Running {
            return;
        }
        let now = self.now;
        for link in Link::DATA {
            match self.link(link).state {
                State::Idle => {}
                State::Down { .. } if moved => {}
                State::Up | State::Connecting { .. } if moved => {
                    self.actions.push_back(LinkAction::Close(link));
                    let what = format!("the master moved to {addr}");
                    self.fail_link(link, LinkFailure::Failover, what);
                }
                _ => continue,
            }
            // The new master is likely up: no backoff before trying it.
            self.link_mut(link).open(now);
            self.actions.push_back(LinkAction::Open(link));
        }
    }

    /// Ask the Sentinels again (a data link failed, or the server is no master): reopen the
    /// Sentinel link, which asks on connect. Nothing when it is connecting or asking already.
    pub(super) fn rediscover(&mut self) {
        if self.sentinel.is_none() || self.stopping != Stopping::Running {
            return;
        }
        let l = self.link(Link::Sentinel);
        if !l.is_up() || l.in_flight.iter().any(|(s, _)| *s == Sent::Master) {
            return;
        }
        let now = self.now;
        self.actions.push_back(LinkAction::Close(Link::Sentinel));
        self.link_mut(Link::Sentinel).open(now);
        self.actions.push_back(LinkAction::Open(Link::Sentinel));
    }

    /// A server error on the command link that says the server is no master: in Sentinel
    /// mode, drop the link and ask the Sentinels (true); otherwise an ordinary error (false).
    pub(super) fn not_a_master(&mut self, code: &str, what: &str) -> bool {
        if self.sentinel.is_none() || !NOT_A_MASTER.contains(&code) {
            return false;
        }
        self.actions.push_back(LinkAction::Close(Link::Command));
        self.fail_link(Link::Command, LinkFailure::Failover, what.to_owned());
        self.rediscover();
        true
    }

    /// The Sentinel link failed: the next Sentinel is tried next; `what`, for the log, names
    /// this one, and says so when every Sentinel failed in turn.
    pub(super) fn sentinel_failed(&mut self, what: String) -> String {
        let Some(d) = self.sentinel.as_mut() else { return what };
        let addr = d.current().to_owned();
        let n = d.settings.addrs.len();
        d.index = (d.index + 1) % n;
        d.failed_in_row += 1;
        if d.failed_in_row.is_multiple_of(n) {
            format!(
                "Sentinel {addr}: {what}; none of the {n} Sentinels named master {:?} \
                 (retrying with backoff)",
                d.settings.master_name
            )
        } else {
            format!("Sentinel {addr}: {what}")
        }
    }
}
