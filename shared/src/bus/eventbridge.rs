//! The EventBridge bus engine: `PutEvents` on the Herald bus, whose rule targets the ingest queue.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{BusEntry, BusError, EventBus, MAX_PUT_BATCH};

/// One EventBridge event bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    /// `bus_name` is the bus's name or ARN.
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    /// Publishes the entries, [`MAX_PUT_BATCH`] per call. Entries the bus refused come back as
    /// [`BusError::Refused`] with their index in `entries`; the others were published.
    async fn put_events(&self, entries: Vec<BusEntry>) -> Result<(), BusError> {
        let mut refused = Vec::new();
        for (chunk_no, chunk) in entries.chunks(MAX_PUT_BATCH).enumerate() {
            let offset = chunk_no * MAX_PUT_BATCH;
            let request: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(&e.source)
                        .detail_type(&e.detail_type)
                        .detail(e.detail.to_string())
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(request))
                .send()
                .await
                .map_err(|e| BusError::Engine(Box::new(e)))?;
            if out.failed_entry_count() == 0 {
                continue;
            }
            // Result entries are in request order; a failed one carries an error code.
            for (i, result) in out.entries().iter().enumerate() {
                if let Some(code) = result.error_code() {
                    let reason = match result.error_message() {
                        Some(message) => format!("{code}: {message}"),
                        None => code.to_owned(),
                    };
                    refused.push((offset + i, reason));
                }
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(BusError::Refused(refused))
        }
    }
}
