//! A bus without EventBridge: publishing writes the envelope EventBridge would deliver straight
//! to the ingest queue, and the ingest function cannot tell the difference. [`QueueBus`] sends the
//! envelopes for an ingest worker to take; `herald serve` stores the same messages
//! ([`QueueBus::messages`]) already received and ingests them in the request
//! (`functions/local/src/inline_ingest.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::{BusEntry, BusEnvelope, BusError, EventBus};
use crate::queue::{Outgoing, Queue, send_all};

/// `account` of locally published envelopes (EventBridge's placeholder account id shape).
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// `region` of locally published envelopes.
pub const LOCAL_REGION: &str = "local";

/// Publishes to a queue (the ingest queue) in EventBridge's envelope.
#[derive(Debug, Clone)]
pub struct QueueBus {
    queue: Arc<dyn Queue>,
}

impl QueueBus {
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        Self { queue }
    }

    /// The envelope EventBridge would deliver for `entry`: fresh id, time now.
    pub fn envelope(entry: BusEntry) -> BusEnvelope {
        BusEnvelope {
            version: "0".into(),
            id: Uuid::new_v4().to_string(),
            detail_type: entry.detail_type,
            source: entry.source,
            account: LOCAL_ACCOUNT.into(),
            time: Utc::now(),
            region: LOCAL_REGION.into(),
            resources: Vec::new(),
            detail: entry.detail,
        }
    }

    /// The ingest queue's messages for `entries`: each envelope in its org's lane, so that one
    /// org's flood does not hold up another's events.
    pub fn messages(entries: Vec<BusEntry>) -> Result<Vec<Outgoing>, BusError> {
        entries
            .into_iter()
            .map(|entry| {
                let lane = entry
                    .detail
                    .get("orgId")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                serde_json::to_string(&Self::envelope(entry))
                    .map(|body| Outgoing {
                        group: lane,
                        ..Outgoing::now(body)
                    })
                    .map_err(|e| BusError::Engine(Box::new(e)))
            })
            .collect()
    }
}

#[async_trait]
impl EventBus for QueueBus {
    async fn put_events(&self, entries: Vec<BusEntry>) -> Result<(), BusError> {
        send_all(self.queue.as_ref(), Self::messages(entries)?)
            .await
            .map_err(|e| BusError::Engine(Box::new(e)))
    }

    /// As many as the queue takes in one send.
    fn max_batch(&self) -> usize {
        self.queue.max_batch()
    }
}
