//! The `silencepb` messages as hand-written prost types, and the compatibility shims between
//! the 0.25 shape (one AND-list in `matchers`) and the HEAD shape (`matcher_sets`, OR of ANDs).
//!
//! Every timestamp is a `required` field so it is always emitted: 0.25 (gogoproto,
//! `nullable=false`) always writes them and reads a missing one as Go's zero time, while HEAD
//! reads a missing one as 1970; writing them all keeps both readers agreeing (spec §2.6).

use std::collections::BTreeMap;

use crate::core::state::Timestamp;

/// How a [`Matcher`] compares a label value (`silencepb.Matcher.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatcherType {
    /// `name="value"`.
    Equal = 0,
    /// `name=~"regex"`, anchored.
    Regexp = 1,
    /// `name!="value"`.
    NotEqual = 2,
    /// `name!~"regex"`, anchored.
    NotRegexp = 3,
}

/// One label matcher (`silencepb.Matcher`).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Matcher {
    /// A [`MatcherType`] as its wire number; an unknown number never matches.
    #[prost(enumeration = "MatcherType", tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value, or regex as written (unanchored).
    #[prost(string, tag = "3")]
    pub pattern: String,
}

impl Matcher {
    /// A matcher of the given kind.
    pub fn new(kind: MatcherType, name: impl Into<String>, pattern: impl Into<String>) -> Self {
        Self { r#type: kind as i32, name: name.into(), pattern: pattern.into() }
    }

    /// The operator, or `None` for a number this version does not know.
    pub fn kind(&self) -> Option<MatcherType> {
        MatcherType::try_from(self.r#type).ok()
    }
}

/// A deprecated comment (`silencepb.Comment`); migrated into `comment`/`created_by` on
/// arrival.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Comment {
    /// Who wrote it.
    #[prost(string, tag = "1")]
    pub author: String,
    /// The text.
    #[prost(string, tag = "2")]
    pub comment: String,
    /// When.
    #[prost(message, required, tag = "3")]
    pub timestamp: Timestamp,
}

/// An AND-list of matchers (`silencepb.MatcherSet`, Alertmanager ≥ 0.32).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct MatcherSet {
    /// All must match.
    #[prost(message, repeated, tag = "1")]
    pub matchers: Vec<Matcher>,
}

/// A silence (`silencepb.Silence`). In memory it has the HEAD shape: `matchers` is empty and
/// `matcher_sets` holds the matchers; decoding and `Silences::set` convert a 0.25-shaped one.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Silence {
    /// UUIDv4 text; empty when asking [`Silences::set`](super::Silences::set) to create one.
    #[prost(string, tag = "1")]
    pub id: String,
    /// 0.25's matcher list; on the wire a copy of `matcher_sets[0]`, empty in memory.
    #[prost(message, repeated, tag = "2")]
    pub matchers: Vec<Matcher>,
    /// Start of the muting window (inclusive).
    #[prost(message, required, tag = "3")]
    pub starts_at: Timestamp,
    /// End of the muting window (inclusive).
    #[prost(message, required, tag = "4")]
    pub ends_at: Timestamp,
    /// Last write; the merge version (newest wins).
    #[prost(message, required, tag = "5")]
    pub updated_at: Timestamp,
    /// Deprecated comment list; migrated on arrival and then empty.
    #[prost(message, repeated, tag = "7")]
    pub comments: Vec<Comment>,
    /// Author.
    #[prost(string, tag = "8")]
    pub created_by: String,
    /// Free text.
    #[prost(string, tag = "9")]
    pub comment: String,
    /// Free key/value pairs (≥ 0.32); sorted, so encoding is deterministic.
    #[prost(btree_map = "string, string", tag = "10")]
    pub annotations: BTreeMap<String, String>,
    /// OR of AND-lists (≥ 0.32).
    #[prost(message, repeated, tag = "11")]
    pub matcher_sets: Vec<MatcherSet>,
    /// Defined by ≥ 0.34, read by no Alertmanager code; carried along untouched.
    #[prost(message, repeated, tag = "12")]
    pub receiver_matcher_sets: Vec<MatcherSet>,
}

/// A silence with its expiry (`silencepb.MeshSilence`): the element of every gossip payload
/// and snapshot file.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct MeshSilence {
    /// Required: an element without it fails the whole payload, as in Alertmanager.
    #[prost(message, optional, tag = "1")]
    pub silence: Option<Silence>,
    /// `ends_at + retention`; deleted by GC after this.
    #[prost(message, required, tag = "2")]
    pub expires_at: Timestamp,
}

/// Bring a decoded or caller-supplied silence into the in-memory shape: a 0.25-style
/// `matchers` list becomes set 0 when there are no sets, and `matchers` is cleared (HEAD's
/// decode shim, spec §6.1).
pub(super) fn normalize(s: &mut Silence) {
    if s.matcher_sets.is_empty() && !s.matchers.is_empty() {
        s.matcher_sets.push(MatcherSet { matchers: std::mem::take(&mut s.matchers) });
    }
    s.matchers.clear();
}

/// Move the first legacy comment into `comment`/`created_by` and drop the list, as both
/// Alertmanager versions do on merge and load. Returns whether anything changed.
pub(super) fn migrate_comments(s: &mut Silence) -> bool {
    let Some(first) = s.comments.first() else { return false };
    s.comment = first.comment.clone();
    s.created_by = first.author.clone();
    s.comments.clear();
    true
}

/// Encode for the wire and disk: `matchers` carries a copy of set 0 so 0.25 peers (which only
/// read field 2) still see the first set (HEAD's encode shim).
pub(super) fn encode_mesh(silence: &Silence, expires_at: Timestamp) -> Vec<u8> {
    use prost::Message;
    let mut wire = silence.clone();
    if let Some(first) = wire.matcher_sets.first() {
        wire.matchers = first.matchers.clone();
    }
    MeshSilence { silence: Some(wire), expires_at }.encode_to_vec()
}

/// The size limit is measured on the in-memory message (no `matchers` copy), as HEAD's
/// `proto.Size(msil)` does before the encode shim runs.
pub(super) fn mesh_size(silence: &Silence, expires_at: Timestamp) -> usize {
    prost::encoding::message::encoded_len(1, silence)
        + prost::encoding::message::encoded_len(2, &expires_at)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher::new(MatcherType::Equal, name, value)
    }

    #[test]
    fn normalize_moves_matchers_into_set_zero_only_when_there_are_no_sets() {
        let mut old = Silence { matchers: vec![eq("a", "1")], ..Default::default() };
        normalize(&mut old);
        assert!(old.matchers.is_empty());
        assert_eq!(old.matcher_sets, vec![MatcherSet { matchers: vec![eq("a", "1")] }]);

        let mut new = Silence {
            matchers: vec![eq("stale", "x")],
            matcher_sets: vec![MatcherSet { matchers: vec![eq("b", "2")] }],
            ..Default::default()
        };
        normalize(&mut new);
        assert!(new.matchers.is_empty());
        assert_eq!(new.matcher_sets[0].matchers, vec![eq("b", "2")]);
    }

    #[test]
    fn encode_writes_set_zero_into_matchers_and_every_timestamp() {
        let s = Silence {
            id: "x".into(),
            matcher_sets: vec![
                MatcherSet { matchers: vec![eq("a", "1")] },
                MatcherSet { matchers: vec![eq("b", "2")] },
            ],
            ..Default::default()
        };
        let bytes = encode_mesh(&s, Timestamp::default());
        let back = MeshSilence::decode(&bytes[..]).expect("own encoding");
        let wire = back.silence.expect("present");
        assert_eq!(wire.matchers, vec![eq("a", "1")]);
        assert_eq!(wire.matcher_sets.len(), 2);
        // Zero timestamps are still present: field 3, 4, 5 of the silence and 2 of the mesh.
        let inner = &bytes[2..];
        for tag in [0x1a_u8, 0x22, 0x2a] {
            assert!(inner.windows(2).any(|w| w == [tag, 0]), "tag {tag:#x} missing");
        }
        assert_eq!(&bytes[bytes.len() - 2..], &[0x12, 0]);
        // The limit is measured without the copy: one 8-byte `matchers` element less.
        assert_eq!(bytes.len() - mesh_size(&s, Timestamp::default()), 8);
    }

    #[test]
    fn legacy_comments_migrate_once() {
        let mut s = Silence {
            comments: vec![
                Comment { author: "ann".into(), comment: "first".into(), ..Default::default() },
                Comment { author: "bob".into(), comment: "second".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        assert!(migrate_comments(&mut s));
        assert_eq!((s.created_by.as_str(), s.comment.as_str()), ("ann", "first"));
        assert!(s.comments.is_empty());
        assert!(!migrate_comments(&mut s));
    }
}
