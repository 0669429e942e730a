//! End-to-end test helpers.

pub mod aws;
