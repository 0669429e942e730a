//! What every crate's tests share, written once:
//!
//! - [`emulator`]: the AWS emulator's endpoint (`HERALD_TEST_AWS_ENDPOINT`, set by the test
//!   command after `infra/emulator.sh start`), an SDK configuration for it, and unique names for
//!   the tables and queues each test creates so tests run in parallel;
//! - [`events`]: events as tests need them, at a fixed time; [`channels`]: channels likewise;
//! - [`store`]: a pass-through store that lets a test count, slow down or refuse its calls;
//! - [`receiver`]: HTTP receivers on 127.0.0.1 standing in for Slack, a generic webhook endpoint,
//!   Discord and Teams, which check what arrives, answer as scripted and record every arrival.
//!
//! A dev-dependency only: no function or binary links it.

pub mod channels;
pub mod emulator;
pub mod events;
pub mod receiver;
pub mod store;

pub use receiver::{Arrival, Kind, Receiver, Reply};
