//! The event bus port. In AWS, `PutEvents` on the Herald bus, whose rule targets the ingest
//! queue; in `herald serve`, the same EventBridge-shaped envelope written straight to the
//! embedded ingest queue. Either way the ingest function reads the same messages.

#[cfg(feature = "eventbridge")]
pub mod eventbridge;
pub mod local;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// EventBridge's `PutEvents` batch limit.
pub const MAX_PUT_BATCH: usize = 10;

/// `source` of events Herald's own API publishes.
pub const API_SOURCE: &str = "herald.api";

/// One entry to publish: `detail-type` is the event type, `detail` the event body
/// (`{orgId, module, properties, id?, userId?, recipients?, occurredAt?}`).
#[derive(Debug, Clone, PartialEq)]
pub struct BusEntry {
    pub source: String,
    pub detail_type: String,
    pub detail: serde_json::Value,
}

/// The envelope EventBridge delivers to an SQS target, and what the ingest queue carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEnvelope {
    #[serde(default)]
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: String,
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Some entries were refused; their indexes and reasons.
    #[error("{} entries refused by the bus", .0.len())]
    Refused(Vec<(usize, String)>),
    #[error("event bus error: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Publishes up to [`max_batch`](Self::max_batch) entries.
    async fn put_events(&self, entries: Vec<BusEntry>) -> Result<(), BusError>;

    /// The most entries one [`put_events`](Self::put_events) takes: EventBridge's
    /// [`MAX_PUT_BATCH`] unless the bus takes more.
    fn max_batch(&self) -> usize {
        MAX_PUT_BATCH
    }
}
