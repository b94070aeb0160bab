//! The sans-IO core: protocol decisions only.
//!
//! Nothing in this module reads a clock, draws OS randomness, sleeps, spawns a thread or touches
//! a socket or file. Time arrives as [`Millis`] (monotonic, for timers) and [`UnixMillis`]
//! (wall clock, for expiry); randomness comes from a seed given at construction. The lints
//! below turn a violation into a build error (the list is in `clippy.toml`), which is what lets
//! the simulator, the fuzzers and the mio driver run the very same code.

#![forbid(unsafe_code)]
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod broadcast;
pub mod cluster;
pub mod config;
pub mod peer;
pub mod state;
pub mod swim;
mod time;
mod types;
pub mod wire;

pub use time::{Millis, UnixMillis};
pub use types::{Incarnation, NodeName};
