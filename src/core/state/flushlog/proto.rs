//! The `flushlogpb` messages of Grafana's Alertmanager fork, written by hand for prost.
//!
//! Field numbers and types as the fork pinned by grafana/alerting defines them (gogoproto,
//! proto3, both timestamps `stdtime` and non-nullable, so Go always writes them and reads an
//! absent one as its zero time). Field order in each struct is tag order, the order Go writes.

use crate::core::state::Timestamp;

/// When an aggregation group was first flushed: what the sync dispatch timer aligns to.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct FlushLog {
    /// The group's fingerprint (the dispatcher's aggregation-group fingerprint). Zero is
    /// invalid: Go refuses a blob holding one.
    #[prost(uint64, tag = "1")]
    pub group_fingerprint: u64,
    /// The flush time. Required: Go refuses a blob where it is missing or its zero time.
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<Timestamp>,
}

/// A [`FlushLog`] with its eviction time: the element of gossip, full state and snapshot.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct MeshFlushLog {
    /// The entry (field name `flushLog` in the fork). Required.
    #[prost(message, optional, tag = "1")]
    pub flush_log: Option<FlushLog>,
    /// When GC removes the entry. Go's zero time (or an absent field) marks a deletion: the
    /// receiver drops its entry for the fingerprint.
    #[prost(message, optional, tag = "2")]
    pub expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::GO_ZERO_SECONDS;
    use prost::Message;

    #[test]
    fn encoding_is_gogoprotos() {
        let e = MeshFlushLog {
            flush_log: Some(FlushLog {
                group_fingerprint: 300,
                timestamp: Some(Timestamp { seconds: 1, nanos: 2 }),
            }),
            expires_at: Some(Timestamp { seconds: GO_ZERO_SECONDS, nanos: 0 }),
        };
        let b = e.encode_to_vec();
        // flushLog: fingerprint varint 300, timestamp {1, 2}.
        assert_eq!(&b[..11], b"\x0a\x09\x08\xac\x02\x12\x04\x08\x01\x10\x02");
        // expires_at: Go's zero time, as gogoproto writes a non-nullable zero time.
        assert_eq!(&b[11..], b"\x12\x0b\x08\x80\x92\xb8\xc3\x98\xfe\xff\xff\xff\x01");
        assert_eq!(MeshFlushLog::decode(&b[..]).expect("round trip"), e);
    }
}
