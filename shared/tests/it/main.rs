//! Integration tests of `herald-shared`: one binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_contract;
mod store_durability;
