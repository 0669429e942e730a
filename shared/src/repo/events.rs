//! Event records: one per accepted event, written by ingest (its idempotency key) and marked
//! `matched` by the matcher once its deliveries are on record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Condition, Item, Store, StoreError, keys};
use herald_core::domain::event::Event;

/// How far an event has gone through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Accepted by ingest and handed to the match queue.
    Accepted,
    /// Matched: every delivery it causes is on record.
    Matched,
}

/// An event as recorded by ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub event: Event,
    pub stage: Stage,
    /// Rules that matched and deliveries created, once matched.
    #[serde(default)]
    pub matched_rules: Vec<String>,
    #[serde(default)]
    pub deliveries: u32,
    pub updated_at: DateTime<Utc>,
}

/// What recording an event found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// First time this event id is seen: the record is written.
    New,
    /// Seen before; the first record, whose event is the canonical one.
    Duplicate(Box<EventRecord>),
}

/// Records `event` unless an event with its id is already on record. Expires with `ttl`.
pub async fn record(
    store: &dyn Store,
    event: &Event,
    ttl: i64,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let record = EventRecord {
        event: event.clone(),
        stage: Stage::Accepted,
        matched_rules: Vec::new(),
        deliveries: 0,
        updated_at: now,
    };
    let key = keys::event(event.org_id, &event.id);
    let item = Item::new(key.clone(), keys::entity::EVENT, to_doc(&record)?).with_ttl(ttl);
    match store.put(item, Condition::NotExists).await {
        Ok(()) => Ok(Recorded::New),
        Err(StoreError::Conflict) => match store.get(&key).await? {
            Some(existing) => Ok(Recorded::Duplicate(Box::new(from_doc(existing.doc)?))),
            // Expired between the write and the read: nothing to de-duplicate against.
            None => Ok(Recorded::New),
        },
        Err(e) => Err(e),
    }
}

/// Marks the event matched, with what it matched.
pub async fn mark_matched(
    store: &dyn Store,
    event: &Event,
    matched_rules: Vec<String>,
    deliveries: u32,
    ttl: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let record = EventRecord {
        event: event.clone(),
        stage: Stage::Matched,
        matched_rules,
        deliveries,
        updated_at: now,
    };
    let item = Item::new(
        keys::event(event.org_id, &event.id),
        keys::entity::EVENT,
        to_doc(&record)?,
    )
    .with_ttl(ttl);
    store.put(item, Condition::None).await
}

pub(crate) fn to_doc<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(StoreError::engine)
}

pub(crate) fn from_doc<T: serde::de::DeserializeOwned>(
    doc: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(doc).map_err(StoreError::engine)
}
