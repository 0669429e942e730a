//! The bus of `herald serve`: no EventBridge, so publishing writes the envelope EventBridge would
//! deliver straight to the ingest queue. The ingest function cannot tell the difference.

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
}

#[async_trait]
impl EventBus for QueueBus {
    async fn put_events(&self, entries: Vec<BusEntry>) -> Result<(), BusError> {
        let messages = entries
            .into_iter()
            .map(|entry| {
                serde_json::to_string(&Self::envelope(entry))
                    .map(Outgoing::now)
                    .map_err(|e| BusError::Engine(Box::new(e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        send_all(self.queue.as_ref(), messages)
            .await
            .map_err(|e| BusError::Engine(Box::new(e)))
    }
}
