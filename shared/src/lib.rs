//! Herald's common crate.
//!
//! Everything the Lambda functions and the local server share lives here:
//! - [`domain`]: the types Herald talks about (orgs, keys, channels, rules, events, deliveries),
//!   built so they cannot hold invalid values;
//! - [`rules`]: the rule engine, pure and compiled once per rule set;
//! - [`store`], [`queue`], [`bus`]: the ports to storage, queues and the event bus, with their
//!   engines (embedded for `herald serve`, AWS for Lambda) behind cargo features;
//! - [`embedded`]: the one redb database (and its writer) the embedded store and queues share;
//! - [`repo`]: typed repositories that turn domain values into single-table items;
//! - [`admission`]: the ports `POST /events` asks before it accepts events (ingest limit, backlog);
//! - [`delivery`]: formatters, senders, retry policy and outbound safety.

pub mod admission;
#[cfg(feature = "aws")]
pub mod aws;
pub mod bus;
pub mod delivery;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod env;
pub mod feed;
pub mod pipeline;
pub mod queue;
pub mod repo;
pub mod routing;
pub mod store;
pub mod telemetry;
