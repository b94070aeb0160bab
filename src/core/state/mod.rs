//! Replicated alerting state: the notification log and silences, as Alertmanager keeps them,
//! and the flush log of Grafana's Alertmanager fork.
//!
//! One codec per format, shared by gossip and disk: a state's gossip payload, its push/pull
//! full state and its snapshot file are all the same concatenation of uvarint-length-delimited
//! protobuf messages ([`delimited`]). Elements are parsed into typed values at the edge; each
//! keeps the bytes it arrived in, so fields a newer Alertmanager added survive a round trip
//! through us as they do through a 0.25 node.
//!
//! Upstream: Alertmanager's `nflog/nflog.go`, `silence/silence.go` and their protobufs.

pub mod delimited;
pub mod flushlog;
pub mod labels;
pub mod nflog;
pub mod silences;
mod timestamp;

pub use timestamp::{GO_ZERO_SECONDS, Timestamp};

/// Why a state payload (gossip, full state or snapshot file) was rejected. The state is
/// unchanged: a blob is applied whole or not at all, as Alertmanager does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A length prefix or message ran past the end of the input.
    #[error("truncated message at byte {offset}")]
    Truncated {
        /// Where the broken element starts.
        offset: usize,
    },
    /// One message is larger than the per-message limit (4 MiB, as Alertmanager ≥ 0.32).
    #[error("message of {len} bytes at byte {offset} exceeds the {limit}-byte limit")]
    TooLarge {
        /// Where it starts.
        offset: usize,
        /// Its announced length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// The protobuf bytes of one element did not decode.
    #[error("invalid protobuf at byte {offset}: {reason}")]
    Protobuf {
        /// Where the element starts.
        offset: usize,
        /// What prost reported.
        reason: String,
    },
    /// A required field (`entry`, `entry.receiver`, `silence`) is missing.
    #[error("element at byte {offset} lacks its required field {field}")]
    MissingField {
        /// Where the element starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
}
