//! End-to-end test helpers.
//!
//! - `herald serve` in-process: a [`TestServer`] on its own temporary data directory, an [`Api`]
//!   client for its REST API, and [`Receiver`]s — Slack-like, generic-webhook, Discord and Teams
//!   HTTP endpoints on 127.0.0.1 that check what they receive, answer as scripted and record
//!   every arrival (test binary `it`).
//! - [`aws`]: the same pipeline through the AWS adapters against the emulator, provisioned from
//!   `template.yaml`, with every AWS call counted (test binary `aws`).
//!
//! Every test starts its own server, receivers and AWS resources, so tests run in parallel; every
//! wait is bounded by a deadline.

pub mod api;
pub mod aws;
pub mod receiver;
pub mod server;

pub use api::{Api, Response};
pub use receiver::{Arrival, Kind, Receiver, Reply};
pub use server::TestServer;
