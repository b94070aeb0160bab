//! Alertmanager's `clusterpb` envelopes (`cluster/clusterpb/cluster.proto`).

/// One state's update or full state: `key` routes it, `data` is the state's own payload.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Part {
    /// State key: `nfl`, `sil`, or Grafana's `notificationlog:<org>`, `silences:<org>`, …
    #[prost(string, tag = "1")]
    pub key: String,
    /// The state's payload (uvarint-delimited elements for nflog and silences).
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// Every state at once: the user state of a push/pull.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct FullState {
    /// One part per registered state.
    #[prost(message, repeated, tag = "1")]
    pub parts: Vec<Part>,
}
