//! End-to-end tests of `herald serve`: events in through the REST API, messages out to real HTTP
//! receivers on loopback, and the delivery log read back through the API.

#![allow(clippy::unwrap_used)]

mod fault;
mod idempotency;
mod seed;
mod slack;
mod smtp;
mod test_button;
mod webhooks;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `at` instants of a delivery's attempts, in order.
pub fn attempt_times(delivery: &Value) -> Vec<DateTime<Utc>> {
    attempts(delivery)
        .iter()
        .map(|a| {
            a["at"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| panic!("attempt without an RFC 3339 `at`: {a}"))
        })
        .collect()
}

/// A delivery's attempts.
pub fn attempts(delivery: &Value) -> &Vec<Value> {
    delivery["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("a delivery without attempts: {delivery:#}"))
}

/// The id of a created channel.
pub fn id(created: &Value) -> String {
    created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {created}"))
        .to_owned()
}
