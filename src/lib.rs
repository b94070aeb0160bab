//! hearsay: the high-availability core of alerting systems.
//!
//! Grafana Alerting and Prometheus Alertmanager run HA the same way: every instance evaluates
//! every rule, and the instances de-duplicate notifications and replicate silences among
//! themselves over hashicorp/memberlist gossip (or, in Grafana, Redis pub/sub). hearsay is that
//! HA core as a library that speaks the real protocols, so a hearsay node can join a cluster of
//! stock Alertmanagers.
//!
//! The layering (more in `docs/design.md`):
//!
//! ```text
//!   src/core   sans-IO: never reads a clock, an RNG or a socket
//!     wire/       memberlist codec
//!     swim/       membership (SWIM + Lifeguard, as memberlist implements it)
//!     broadcast   transmit-limited queue
//! ```
//!
//! Everything in [`core`] is driven by `handle_*` calls that carry the current time and by
//! `poll_*` calls that drain what to send and when to wake up next.

#![deny(unsafe_code)]

pub mod core;
pub mod ffi;
pub mod grafana;
pub mod net;
pub mod node;
pub(crate) mod redis;
pub mod tls;
