//! Helpers shared by the integration tests.

#![allow(unreachable_pub)] // each test binary is its own crate; `pub` here means "for the tests"

pub mod sim;
