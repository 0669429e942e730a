//! Every single-table key Herald writes is built here, and documented in `docs/dynamodb.md`.
//! Entity × PK × SK × GSI1.

// ---- Pipeline: events and deliveries -------------------------------------------------------

use chrono::{DateTime, Utc};

use crate::domain::{ChannelId, DeliveryId, EventId, OrgId};

use super::Key;

/// Event record (ingest idempotency, "did this event arrive?"): one item per event.
pub fn event(org: OrgId, event: &EventId) -> Key {
    Key::new(format!("ORG#{org}#EVT#{event}"), "EVT")
}

/// The UTC day a delivery belongs to: the timestamp of its UUIDv7.
pub fn delivery_day(id: DeliveryId) -> String {
    let millis = id
        .as_uuid()
        .get_timestamp()
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            i64::try_from(secs).unwrap_or(0) * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or(0);
    DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// Partition of one org's deliveries on one UTC day (`yyyy-mm-dd`): logs are read by time
/// range, a day partition at a time, newest first, and no partition grows without bound.
pub fn deliveries_of_day(org: OrgId, day: &str) -> String {
    format!("ORG#{org}#DLV#{day}")
}

/// A delivery, with its attempts.
pub fn delivery(org: OrgId, id: DeliveryId) -> Key {
    Key::new(deliveries_of_day(org, &delivery_day(id)), format!("DLV#{id}"))
}

/// GSI1 partition of one channel's deliveries: the per-channel dispatch log.
pub fn channel_deliveries(org: OrgId, channel: ChannelId) -> String {
    format!("ORG#{org}#CH#{channel}#DLV")
}

/// GSI1 key of a delivery in its channel's log.
pub fn delivery_in_channel(org: OrgId, channel: ChannelId, id: DeliveryId) -> Key {
    Key::new(channel_deliveries(org, channel), format!("DLV#{id}"))
}
