//! End-to-end test helpers: a [`TestServer`] running `herald serve` in-process on its own
//! temporary data directory, an [`Api`] client for its REST API, and [`Receiver`]s — Slack-like,
//! generic-webhook, Discord and Teams HTTP endpoints on 127.0.0.1 that check what they receive,
//! answer as scripted and record every arrival.
//!
//! Every test starts its own server and receivers, so tests run in parallel; every wait is
//! bounded by a deadline.

pub mod api;
pub mod receiver;
pub mod server;

pub use api::{Api, Response};
pub use receiver::{Arrival, Kind, Receiver, Reply};
pub use server::TestServer;
