//! Redis Cluster: keys live on the master that owns their slot, and slots move.
//!
//! The command link goes to any node (a seed first, then any master the map named, in
//! turn when one fails): it asks `CLUSTER SLOTS` at connect and on every heartbeat tick, and
//! carries every `PUBLISH` (classic pub/sub reaches every node's subscribers, so the
//! subscriber link, also to any node, hears all of them). Each master in the map gets a
//! [`Link::Master`]: the heartbeat `SET` and the shutdown `DEL` go to the owner of the
//! heartbeat key's slot ([`slot`]: CRC16/XMODEM of the key, or of its `{hash tag}`), the
//! membership read `SCAN`s every master (each holds only its own keys) and reads the keys
//! found with one `MGET` per slot (a multi-slot `MGET` is refused by a cluster).
//!
//! Slots move: a `MOVED <slot> <addr>` reply points the slot at that node at once and asks
//! for the map again; the command is sent again there. An `ASK <slot> <addr>` (the slot is
//! being migrated and this key went already) sends `ASKING` and the command to that node
//! only, leaving the map as it is. A master link that fails is retried with backoff and the
//! map asked again, so a master that went away (its slots taken over) is dropped from the
//! map, and its link closed.

use redis::Value;

use super::link::{MAX_MASTERS, Sent, State};
use super::{Command, Link, LinkAction, LinkFailure, RedisPeer, Stopping};

/// Most seed addresses a cluster configuration may list.
pub const MAX_SEEDS: usize = 32;
/// Slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// Where the cluster is (Grafana's `ha_redis_cluster_mode_enabled`, with `ha_redis_address`
/// as the list of nodes to ask for the slot map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `host:port` of nodes to start from (1 to [`MAX_SEEDS`]).
    pub seeds: Vec<String>,
}

/// The slot of `key`: CRC16/XMODEM of the key, or of the text between its first `{` and the
/// next `}` when that is not empty (Redis Cluster's hash tags), modulo 16384.
pub fn slot(key: &str) -> u16 {
    let key = key.as_bytes();
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|b| *b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// What the peer knows of the cluster.
#[derive(Debug)]
pub(super) struct Topology {
    seeds: Vec<String>,
    /// The masters, by [`Link::Master`] index; `None` is a free entry.
    pub(super) masters: [Option<String>; MAX_MASTERS],
    /// Slot ranges (first, last, master index), sorted by first slot.
    ranges: Vec<(u16, u16, u8)>,
    /// Where the command and subscriber links go: an index into [`Self::candidates`],
    /// moved on when the link fails.
    home: [usize; 2],
}

impl Topology {
    pub(super) fn new(settings: ClusterSettings) -> Self {
        debug_assert!(!settings.seeds.is_empty(), "Cluster mode needs a seed address");
        Self {
            seeds: settings.seeds,
            masters: Default::default(),
            ranges: Vec::new(),
            home: [0, 0],
        }
    }

    /// Nodes the command and subscriber links may use: the masters known, then the seeds.
    fn candidates(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.masters.iter().flatten().map(String::as_str).collect();
        for s in &self.seeds {
            if !all.contains(&s.as_str()) {
                all.push(s);
            }
        }
        all
    }

    /// Where `link` connects now.
    pub(super) fn target(&self, link: Link) -> Option<&str> {
        match link {
            Link::Command | Link::Subscriber => {
                let c = self.candidates();
                let i = self.home[link.index()] % c.len().max(1);
                c.get(i).copied()
            }
            Link::Master(i) => self.masters.get(usize::from(i))?.as_deref(),
            Link::Sentinel => None,
        }
    }

    /// The command or subscriber link failed: it tries the next node next time.
    pub(super) fn next_home(&mut self, link: Link) {
        if let Some(h) = self.home.get_mut(link.index()) {
            *h = h.wrapping_add(1);
        }
    }

    /// The master that owns `slot`, if the map names one.
    pub(super) fn owner(&self, slot: u16) -> Option<u8> {
        let i = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (first, last, master) = *self.ranges.get(i.checked_sub(1)?)?;
        (first..=last).contains(&slot).then_some(master)
    }

    /// The index of the master at `addr`, given a free entry if new (`None`: no room).
    fn index_of(&mut self, addr: &str) -> Option<u8> {
        let known = self.masters.iter().position(|m| m.as_deref() == Some(addr));
        let i = known.or_else(|| self.masters.iter().position(Option::is_none))?;
        self.masters[i] = Some(addr.to_owned());
        u8::try_from(i).ok()
    }

    /// `slot` now lives on master `master` (a `MOVED` said so), until the next map.
    fn point(&mut self, slot: u16, master: u8) {
        let mut ranges = Vec::with_capacity(self.ranges.len() + 2);
        for &(first, last, m) in &self.ranges {
            if (first..=last).contains(&slot) {
                if first < slot {
                    ranges.push((first, slot - 1, m));
                }
                ranges.push((slot, slot, master));
                if slot < last {
                    ranges.push((slot + 1, last, m));
                }
            } else {
                ranges.push((first, last, m));
            }
        }
        if self.owner(slot).is_none() {
            ranges.push((slot, slot, master));
            ranges.sort_unstable();
        }
        self.ranges = ranges;
    }
}

/// The ranges of a `CLUSTER SLOTS` reply as (first, last, master `host:port`); an empty host
/// is the node asked (`asked_host`). `Err` when the reply has another shape.
pub(super) fn slots_reply(value: &Value, asked_host: &str) -> Result<Vec<(u16, u16, String)>, ()> {
    let Value::Array(items) = value else { return Err(()) };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(fields) = item else { return Err(()) };
        let [Value::Int(first), Value::Int(last), Value::Array(master), ..] = fields.as_slice()
        else {
            return Err(());
        };
        let (first, last) =
            (u16::try_from(*first).map_err(|_| ())?, u16::try_from(*last).map_err(|_| ())?);
        if first > last || last >= SLOTS {
            return Err(());
        }
        let [Value::BulkString(host), Value::Int(port), ..] = master.as_slice() else {
            return Err(());
        };
        let host = std::str::from_utf8(host).map_err(|_| ())?;
        let host = if host.is_empty() || host == "?" { asked_host } else { host };
        let port = u16::try_from(*port).map_err(|_| ())?;
        out.push((first, last, join_addr(host, port)));
    }
    Ok(out)
}

/// `host:port`, with an IPv6 host in brackets.
fn join_addr(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The host of `host:port` (brackets of an IPv6 host kept off).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A redirection: `MOVED`/`ASK` with the slot and the node's `host:port`.
pub(super) fn redirect(code: &str, details: Option<&str>) -> Option<(bool, u16, String)> {
    let ask = match code {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let (slot, addr) = details?.trim().split_once(' ')?;
    let slot = slot.parse::<u16>().ok().filter(|s| *s < SLOTS)?;
    // Redis 7 may leave the host out (`:6380`) when it is the asked node's own endpoint; the
    // peer then cannot tell the host and refreshes the map instead.
    if addr.starts_with(':') {
        return None;
    }
    Some((ask, slot, addr.to_owned()))
}

impl RedisPeer {
    /// Whether the peer runs on a Redis Cluster.
    pub(super) fn in_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The link a command on `key` goes to: the owner of its slot (Cluster mode; `None` while
    /// the map names no owner), else the command link.
    pub(super) fn key_link(&self, key: &str) -> Option<Link> {
        match &self.cluster {
            None => Some(Link::Command),
            Some(t) => t.owner(slot(key)).map(Link::Master),
        }
    }

    /// The masters' links (Cluster mode), in index order.
    pub(super) fn master_links(&self) -> Vec<Link> {
        let Some(t) = &self.cluster else { return Vec::new() };
        t.masters
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_some())
            .filter_map(|(i, _)| u8::try_from(i).ok().map(Link::Master))
            .collect()
    }

    /// Ask the command link's node for the slot map, unless asked already.
    pub(super) fn refresh_map(&mut self) {
        if !self.in_cluster() || self.stopping != Stopping::Running {
            return;
        }
        let l = self.link(Link::Command);
        if !l.is_up()
            || l.in_flight.iter().any(|(s, _)| *s == Sent::Slots)
            || l.control.contains(&Command::ClusterSlots)
        {
            return;
        }
        self.link_mut(Link::Command).control.push_back(Command::ClusterSlots);
    }

    /// The reply to `CLUSTER SLOTS`: adopt the map, open links to new masters, close the
    /// links of masters no longer in it.
    pub(super) fn on_slots(&mut self, value: &Value) {
        let asked = self.target(Link::Command).map(|a| host_of(a).to_owned()).unwrap_or_default();
        let Ok(ranges) = slots_reply(value, &asked) else {
            self.stats.unexpected += 1;
            return;
        };
        if ranges.is_empty() {
            // A node not in a cluster yet (or one that lost it): keep the map we have.
            return;
        }
        let Some(t) = self.cluster.as_mut() else { return };
        let mut wanted: Vec<String> = ranges.iter().map(|(_, _, a)| a.clone()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut removed = Vec::new();
        for (i, m) in t.masters.iter_mut().enumerate() {
            if m.as_ref().is_some_and(|a| !wanted.contains(a)) {
                *m = None;
                removed.extend(u8::try_from(i).ok().map(Link::Master));
            }
        }
        let mut map = Vec::with_capacity(ranges.len());
        for (first, last, addr) in ranges {
            match t.index_of(&addr) {
                Some(i) => map.push((first, last, i)),
                None => self.stats.unexpected += 1,
            }
        }
        map.sort_unstable();
        t.ranges = map;
        for link in removed {
            if matches!(self.link(link).state, State::Up | State::Connecting { .. }) {
                self.actions.push_back(LinkAction::Close(link));
                self.fail_link(link, LinkFailure::Removed, "left the slot map".into());
            }
            self.links[link.index()] = super::link::LinkState::idle();
        }
        self.open_masters();
    }

    /// Open the links of masters that have none yet (no backoff: they were just named).
    fn open_masters(&mut self) {
        let now = self.now;
        for link in self.master_links() {
            if self.link(link).state == State::Idle {
                self.link_mut(link).open(now);
                self.actions.push_back(LinkAction::Open(link));
            }
        }
    }

    /// A master link is up: authenticate; write the heartbeat if its slot lives here, and
    /// read membership once every master is up.
    pub(super) fn master_connected(&mut self, link: Link) {
        let s = &self.settings;
        let auth = s
            .password
            .clone()
            .map(|password| Command::Auth { username: s.username.clone(), password });
        let l = self.link_mut(link);
        l.state = State::Up;
        l.ever_up = true;
        // The handshake goes before whatever was queued for the link while it connected.
        if let Some(auth) = auth {
            l.control.push_front(auth);
        }
        if self.key_link(&self.own_key.clone()) == Some(link) {
            self.heartbeat();
        }
        self.start_scan();
    }

    /// An error reply that redirects (`MOVED`, `ASK`): send `sent` again where it says, and
    /// return true; false for any other error.
    pub(super) fn redirected(&mut self, sent: &Sent, code: &str, details: Option<&str>) -> bool {
        if !self.in_cluster() {
            return false;
        }
        let Some((ask, slot, addr)) = redirect(code, details) else {
            if code == "MOVED" || code == "ASK" {
                self.refresh_map();
            }
            return false;
        };
        let Some(cmd) = self.again(sent) else { return false };
        let Some(t) = self.cluster.as_mut() else { return false };
        let Some(master) = t.index_of(&addr) else {
            self.stats.unexpected += 1;
            return false;
        };
        if !ask {
            t.point(slot, master);
            self.refresh_map();
        }
        self.stats.redirects += 1;
        self.open_masters();
        let link = Link::Master(master);
        let control = &mut self.link_mut(link).control;
        if ask {
            control.push_back(Command::Asking);
        }
        control.push_back(cmd);
        true
    }

    /// The command `sent` stands for, to send again after a redirection (`None`: not keyed).
    fn again(&self, sent: &Sent) -> Option<Command> {
        match sent {
            Sent::Heartbeat => Some(self.heartbeat_command()),
            Sent::Mget(_, keys) => Some(Command::Mget(keys.clone())),
            Sent::Del => Some(Command::Del(self.own_key.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_crc16_and_hash_tags() {
        // Values from the Redis Cluster specification's examples and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        // An empty tag hashes the whole key.
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_ne!(slot("foo{}{bar}"), slot(""));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    #[test]
    fn a_moved_slot_is_split_out_of_its_range() {
        let mut t = Topology::new(ClusterSettings { seeds: vec!["a:1".into()] });
        t.ranges = vec![(0, 99, 0), (100, 16383, 1)];
        t.point(50, 1);
        assert_eq!(t.ranges, [(0, 49, 0), (50, 50, 1), (51, 99, 0), (100, 16383, 1)]);
        assert_eq!((t.owner(49), t.owner(50), t.owner(51)), (Some(0), Some(1), Some(0)));
        t.ranges = vec![(100, 200, 0)];
        t.point(5, 1);
        assert_eq!((t.owner(5), t.owner(6), t.owner(150)), (Some(1), None, Some(0)));
    }

    #[test]
    fn redirections_parse_and_odd_ones_are_refused() {
        assert_eq!(
            redirect("MOVED", Some("3999 127.0.0.1:6381")),
            Some((false, 3999, "127.0.0.1:6381".into()))
        );
        assert_eq!(redirect("ASK", Some("3999 h:1")), Some((true, 3999, "h:1".into())));
        assert_eq!(redirect("MOVED", Some("3999 :6381")), None);
        assert_eq!(redirect("MOVED", Some("99999 h:1")), None);
        assert_eq!(redirect("ERR", Some("3999 h:1")), None);
    }
}
