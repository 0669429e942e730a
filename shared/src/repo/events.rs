//! Event records: one per accepted event, written by ingest (its idempotency key) and marked
//! `matched` by the matcher once its deliveries are on record — with, per matched rule, the
//! deliveries it made and what each was when recorded (`routes`), in the same write. That is
//! what `GET /events/{eventId}` reads: one `GetItem` for the record and one `BatchGetItem` for
//! the deliveries' current state, never a scan.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Condition, Item, Store, StoreError, keys};
use herald_core::domain::delivery::DeliveryStatus;
use herald_core::domain::event::Event;
use herald_core::domain::{ChannelId, DeliveryId, OrgId, UserId};

/// Most deliveries an event record lists under its rules; beyond, the record says `truncated`
/// (an event to 1,000 recipients through several channels would outgrow a DynamoDB item).
pub const MAX_ROUTED: usize = 250;

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
    /// Per matched rule, the deliveries it made as recorded at match time (at most
    /// [`MAX_ROUTED`] in all). Records matched before this field have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RuleRoute>,
    /// More deliveries were made than `routes` lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routes_truncated: bool,
    pub updated_at: DateTime<Utc>,
}

/// What one matched rule did with the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRoute {
    pub rule_key: String,
    pub deliveries: Vec<RoutedDelivery>,
}

/// One delivery a rule made, as the matcher recorded it: `queued`, `deferred` (quiet hours),
/// `suppressed` (frequency cap, disabled channel) or `failed` (no recipient).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutedDelivery {
    pub delivery_id: DeliveryId,
    pub channel_id: ChannelId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<UserId>,
    pub status: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The event record of `id`, if on record (and not expired).
pub async fn get(
    store: &dyn Store,
    org: OrgId,
    id: &herald_core::domain::EventId,
) -> Result<Option<EventRecord>, StoreError> {
    match store.get(&keys::event(org, id)).await? {
        Some(item) => Ok(Some(from_doc(item.doc)?)),
        None => Ok(None),
    }
}

/// The records of `ids`, in their order (`None` where absent or past retention): one
/// `BatchGetItem` per 100.
pub async fn get_many(
    store: &dyn Store,
    org: OrgId,
    ids: &[herald_core::domain::EventId],
) -> Result<Vec<Option<EventRecord>>, StoreError> {
    let keys: Vec<_> = ids.iter().map(|id| keys::event(org, id)).collect();
    store
        .get_many(&keys)
        .await?
        .into_iter()
        .map(|item| item.map(|i| from_doc(i.doc)).transpose())
        .collect()
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
        routes: Vec::new(),
        routes_truncated: false,
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

/// Marks the event matched, with what it matched and the deliveries each rule made (`routes`,
/// kept up to [`MAX_ROUTED`] deliveries).
pub async fn mark_matched(
    store: &dyn Store,
    event: &Event,
    mut routes: Vec<RuleRoute>,
    deliveries: u32,
    ttl: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let matched_rules = routes.iter().map(|r| r.rule_key.clone()).collect();
    let mut room = MAX_ROUTED;
    let mut routes_truncated = false;
    for route in &mut routes {
        if route.deliveries.len() > room {
            route.deliveries.truncate(room);
            routes_truncated = true;
        }
        room -= route.deliveries.len();
    }
    let record = EventRecord {
        event: event.clone(),
        stage: Stage::Matched,
        matched_rules,
        deliveries,
        routes,
        routes_truncated,
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
