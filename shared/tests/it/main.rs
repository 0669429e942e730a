//! Integration tests of `herald-shared`: one binary, one module per concern. The engines run
//! against real peers on loopback: the AWS emulator (`HERALD_TEST_AWS_ENDPOINT`), the SMTP test
//! server (`HERALD_TEST_SMTP`), HTTP receivers and an FCM peer started by the tests themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admission;
mod alerts;
mod aws_http_client;
mod aws_notify;
mod bus;
mod delivery;
mod digests;
mod fcm;
mod queue_contract;
mod queue_lanes;
mod smtp;
mod store_contract;
mod store_durability;
