//! End-to-end test helpers.
//!
//! - `herald serve` in-process: a [`TestServer`] on its own temporary data directory and an
//!   [`Api`] client for its REST API, with the receivers of `herald_testing::receiver` (test
//!   binary `it`).
//! - [`aws`]: the same pipeline through the AWS adapters against the emulator, provisioned from
//!   `template.yaml`, with every AWS call counted (test binary `aws`).
//!
//! Every test starts its own server, receivers and AWS resources, so tests run in parallel; every
//! wait is bounded by a deadline.

pub mod api;
pub mod aws;
pub mod server;

pub use api::{Api, Response};
pub use server::TestServer;
