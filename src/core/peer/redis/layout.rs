//! Grafana's Redis HA layout: the names of its keys and channels, who counts as a member, and
//! what an incoming message is (Grafana's `redis_peer.go`, stable since Grafana 10.0).

use std::time::Duration;

/// How often a peer writes its heartbeat and re-reads the members (Grafana's 5 s).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Lifetime of a heartbeat key (`SET … EX 300`).
pub const HEARTBEAT_TTL_SECS: u64 = 300;
/// A heartbeat older than this marks its peer dead, by the reader's clock.
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 60;
/// How long a member list stays usable when Redis cannot be read; then it is cleared and
/// every peer notifies as position 0 (Grafana's choice: availability over deduplication).
pub const MEMBERS_VALID_FOR: Duration = Duration::from_secs(60);
/// Settle poll period of Grafana's Redis peer.
pub const SETTLE_INTERVAL: Duration = Duration::from_secs(2);
/// Grafana's fixed settle timeout for its Redis peer.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The key and channel names of one cluster: everything is `prefix + suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLayout {
    prefix: String,
}

/// What arrived on a subscribed channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisInbound<'a> {
    /// A peer's whole state: a `FullState` protobuf.
    FullState(&'a [u8]),
    /// A peer asks everyone for their full state; the payload is its bare name.
    Request(&'a [u8]),
    /// One state's update: a `Part` protobuf.
    Update(&'a [u8]),
}

impl RedisLayout {
    /// Grafana's `ha_redis_prefix`: a `:` is appended unless it is empty or ends with one.
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with(':') {
            prefix.push(':');
        }
        Self { prefix }
    }

    /// The normalised prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A peer's heartbeat key; its position is computed over these names.
    pub fn heartbeat_key(&self, peer: &str) -> String {
        format!("{}{peer}", self.prefix)
    }

    /// `SCAN MATCH` pattern of the member keys (every key under the prefix, as Grafana).
    pub fn member_pattern(&self) -> String {
        format!("{}*", self.prefix)
    }

    /// Channel of full states.
    pub fn full_state_channel(&self) -> String {
        format!("{}full_state", self.prefix)
    }

    /// Channel of full-state requests.
    pub fn request_channel(&self) -> String {
        format!("{}full_state:request", self.prefix)
    }

    /// Channel of one state's updates.
    pub fn state_channel(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// What a message on `channel` is; `None` for a channel of this layout it does not know.
    pub fn classify<'a>(&self, channel: &str, payload: &'a [u8]) -> Option<RedisInbound<'a>> {
        let suffix = channel.strip_prefix(self.prefix.as_str())?;
        Some(match suffix {
            "full_state" => RedisInbound::FullState(payload),
            "full_state:request" => RedisInbound::Request(payload),
            _ => RedisInbound::Update(payload),
        })
    }
}

/// The live members from a `SCAN` + `MGET` round: keys whose value parses as Unix seconds no
/// older than [`HEARTBEAT_TIMEOUT_SECS`] before `now_secs`, sorted byte-wise, without
/// duplicates (SCAN may repeat keys). Other values (other data under the prefix, missing
/// values) are skipped, as Grafana skips them.
pub fn live_members<'a>(
    keys: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    now_secs: i64,
) -> Vec<String> {
    let mut live: Vec<String> = keys
        .into_iter()
        .filter(|(_, value)| {
            value
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|beat| beat >= now_secs - HEARTBEAT_TIMEOUT_SECS)
        })
        .map(|(key, _)| key.to_owned())
        .collect();
    live.sort_unstable();
    live.dedup();
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_gains_a_colon_unless_empty_or_present() {
        assert_eq!(RedisLayout::new("grafana").prefix(), "grafana:");
        assert_eq!(RedisLayout::new("grafana:").prefix(), "grafana:");
        assert_eq!(RedisLayout::new("").prefix(), "");
    }

    #[test]
    fn names_follow_grafanas_layout() {
        let l = RedisLayout::new("grafana");
        assert_eq!(l.heartbeat_key("peer-1"), "grafana:peer-1");
        assert_eq!(l.member_pattern(), "grafana:*");
        assert_eq!(l.full_state_channel(), "grafana:full_state");
        assert_eq!(l.request_channel(), "grafana:full_state:request");
        assert_eq!(l.state_channel("silences:1"), "grafana:silences:1");
    }

    #[test]
    fn messages_are_told_apart_by_channel() {
        let l = RedisLayout::new("g");
        assert_eq!(l.classify("g:full_state", b"x"), Some(RedisInbound::FullState(b"x")));
        assert_eq!(l.classify("g:full_state:request", b"p"), Some(RedisInbound::Request(b"p")));
        assert_eq!(l.classify("g:silences:1", b"u"), Some(RedisInbound::Update(b"u")));
        assert_eq!(l.classify("other:full_state", b"x"), None);
    }

    #[test]
    fn members_are_fresh_numeric_heartbeats_sorted_bytewise() {
        let now = 1_800_000_000;
        let fresh = now.to_string();
        let edge = (now - HEARTBEAT_TIMEOUT_SECS).to_string();
        let stale = (now - HEARTBEAT_TIMEOUT_SECS - 1).to_string();
        let keys = [
            ("g:peer-b", Some(fresh.as_bytes())),
            ("g:peer-a", Some(edge.as_bytes())),
            ("g:peer-c", Some(stale.as_bytes())),
            ("g:notes", Some(&b"not a number"[..])),
            ("g:gone", None),
            ("g:peer-b", Some(fresh.as_bytes())),
            ("g:Peer-z", Some(fresh.as_bytes())),
        ];
        assert_eq!(live_members(keys, now), ["g:Peer-z", "g:peer-a", "g:peer-b"]);
    }
}
