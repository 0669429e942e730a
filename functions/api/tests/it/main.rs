//! Integration tests of the REST API: the router driven in-process, as a client sees it.
#![allow(clippy::unwrap_used)]

mod alerts;
mod auth;
#[cfg(feature = "lambda")]
mod aws_notify;
mod channels;
#[cfg(feature = "lambda")]
mod dynamodb;
mod errors;
mod events;
mod feeds;
mod logs;
mod notify;
mod openapi;
mod operator;
mod pagination;
mod replay;
mod repo;
mod routing;
mod rules;
mod support;
mod suppressions;
