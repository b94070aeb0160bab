//! The `nflogpb` messages (spec §4.1), written by hand for prost (no protoc in the build).
//!
//! Field numbers and types are those of Alertmanager 0.25 and HEAD; `receiver_data` (field 8)
//! exists only from 0.31 on and a 0.25 node carries it along as an unknown field. Field order
//! in each struct is tag order, which is the order Go writes and so the order prost encodes.

use std::collections::BTreeMap;

use crate::core::state::Timestamp;

/// Which integration of which receiver sent a notification.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Receiver {
    /// The receiver's name in the routing configuration.
    #[prost(string, tag = "1")]
    pub group_name: String,
    /// The integration type: `webhook`, `email`, `slack`, `pagerduty`, ...
    #[prost(string, tag = "2")]
    pub integration: String,
    /// Index within that receiver's list of that type (`webhook_configs[1]` is 1).
    #[prost(uint32, tag = "3")]
    pub idx: u32,
}

/// A receiver by reference: all a lookup needs, so a caller holding the parts as text
/// (the C ABI, a Go host) looks up without building a [`Receiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverRef<'a> {
    /// [`Receiver::group_name`].
    pub group_name: &'a str,
    /// [`Receiver::integration`].
    pub integration: &'a str,
    /// [`Receiver::idx`].
    pub idx: u32,
}

impl<'a> From<&'a Receiver> for ReceiverRef<'a> {
    fn from(r: &'a Receiver) -> Self {
        Self { group_name: &r.group_name, integration: &r.integration, idx: r.idx }
    }
}

impl Receiver {
    /// A receiver from its three parts.
    pub fn new(group_name: impl Into<String>, integration: impl Into<String>, idx: u32) -> Self {
        Self { group_name: group_name.into(), integration: integration.into(), idx }
    }

    /// Alertmanager's receiver key, `"<group_name>/<integration>/<idx>"`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.group_name, self.integration, self.idx)
    }
}

/// One value of an entry's `receiver_data` store (Alertmanager ≥ 0.31; used by Slack's
/// updatable messages).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReceiverDataValue {
    /// The value; `None` when a newer Alertmanager used a variant we do not know.
    #[prost(oneof = "receiver_data_value::Value", tags = "1, 2, 3")]
    pub value: Option<receiver_data_value::Value>,
}

/// The `oneof value` of [`ReceiverDataValue`].
pub mod receiver_data_value {
    /// A string, an integer or a double.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `str_val`, field 1.
        #[prost(string, tag = "1")]
        StrVal(String),
        /// `int_val`, field 2.
        #[prost(int64, tag = "2")]
        IntVal(i64),
        /// `double_val`, field 3.
        #[prost(double, tag = "3")]
        DoubleVal(f64),
    }
}

/// The most recent successful notification of one group to one integration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The group key (UTF-8 in practice, `bytes` on the wire).
    #[prost(bytes = "vec", tag = "1")]
    pub group_key: Vec<u8>,
    /// Who was notified. Required: an element without it poisons its whole blob.
    #[prost(message, optional, tag = "2")]
    pub receiver: Option<Receiver>,
    /// Deprecated, last written before Alertmanager 0.6; never set by us.
    #[prost(bytes = "vec", tag = "3")]
    pub group_hash: Vec<u8>,
    /// Deprecated; never set by us.
    #[prost(bool, tag = "4")]
    pub resolved: bool,
    /// When the notification finished successfully. Always written (0.25 reads a missing one as
    /// Go's zero time, HEAD as the Unix epoch).
    #[prost(message, optional, tag = "5")]
    pub timestamp: Option<Timestamp>,
    /// Alert hashes firing at that notification (packed).
    #[prost(uint64, repeated, tag = "6")]
    pub firing_alerts: Vec<u64>,
    /// Alert hashes resolved at that notification (packed).
    #[prost(uint64, repeated, tag = "7")]
    pub resolved_alerts: Vec<u64>,
    /// Per-entry key/value store (Alertmanager ≥ 0.31). A `BTreeMap` so that what we encode is
    /// sorted, hence deterministic.
    #[prost(btree_map = "string, message", tag = "8")]
    pub receiver_data: BTreeMap<String, ReceiverDataValue>,
}

/// An [`Entry`] with its eviction time: the element of gossip, full state and snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MeshEntry {
    /// The entry. Required: an element without it poisons its whole blob.
    #[prost(message, optional, tag = "1")]
    pub entry: Option<Entry>,
    /// When GC removes the entry. Always written.
    #[prost(message, optional, tag = "2")]
    pub expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn receiver_key_and_encoding() {
        let r = Receiver::new("hook", "webhook", 0);
        assert_eq!(r.key(), "hook/webhook/0");
        // idx 0 is the proto3 default and is not written, as in the golden file.
        assert_eq!(r.encode_to_vec(), b"\x0a\x04hook\x12\x07webhook");
        assert_eq!(Receiver::new("a", "b", 300).encode_to_vec(), b"\x0a\x01a\x12\x01b\x18\xac\x02");
    }

    #[test]
    fn alert_lists_are_packed_and_receiver_data_sorted() {
        let e = Entry {
            firing_alerts: vec![1, 300],
            receiver_data: [
                (
                    "z".to_owned(),
                    ReceiverDataValue { value: Some(receiver_data_value::Value::IntVal(1)) },
                ),
                (
                    "a".to_owned(),
                    ReceiverDataValue {
                        value: Some(receiver_data_value::Value::StrVal("x".into())),
                    },
                ),
            ]
            .into_iter()
            .collect(),
            ..Entry::default()
        };
        let b = e.encode_to_vec();
        assert_eq!(&b[..5], b"\x32\x03\x01\xac\x02");
        // Map entries follow in key order: "a" then "z".
        assert_eq!(&b[5..], b"\x42\x08\x0a\x01a\x12\x03\x0a\x01x\x42\x07\x0a\x01z\x12\x02\x10\x01");
        assert_eq!(Entry::decode(&b[..]).expect("round trip"), e);
    }
}
