//! Herald in one process: the library behind the `herald` binary, so end-to-end tests can start
//! the same server in-process ([`serve::start`]).

pub mod admin;
pub mod admission;
pub mod conn;
pub mod dev;
mod inline_ingest;
mod inline_match;
mod scheduler;
pub mod serve;
mod worker;
