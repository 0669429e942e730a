//! Herald's pure core: what Herald means, with no I/O.
//!
//! - [`domain`]: the types Herald talks about (orgs, keys, channels, rules and their matcher trees,
//!   events, deliveries, every id), built so they cannot hold invalid values;
//! - [`rules`]: the rule engine, strict parsing and compiled, indexed rule sets;
//! - [`delivery`]: what a delivery is made of before any socket opens — formatters and templates,
//!   response classification, the retry policy, quiet hours, frequency-cap arithmetic, Standard
//!   Webhooks signing, tracking tokens and the outbound address policy;
//! - [`admission`]: the per-org ingest limit of `POST /events` (a GCRA over events);
//! - [`feed`]: in-app feed items, the live socket's protocol and the user tokens.
//!
//! Nothing here reads the clock (callers pass `now`), touches the network or the disk, or needs
//! an async runtime: the dependency list keeps it that way (no tokio, no AWS SDK, no redb, no
//! reqwest). Ports, engines, repositories and senders are `herald-shared`'s.

pub mod admission;
pub mod delivery;
pub mod domain;
pub mod feed;
pub mod hygiene;
pub mod rules;
