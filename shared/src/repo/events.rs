//! Event records: one per accepted event, written by ingest (its idempotency key) and marked
//! `matched` by the matcher once its deliveries are on record — with, per matched rule, the
//! deliveries it made and what each was when recorded (`routes`), in the same write. That is
//! what `GET /events/{eventId}` reads: one `GetItem` for the record and one `BatchGetItem` for
//! the deliveries' current state, never a scan.
//!
//! Ingest also writes each event into the org's by-time index
//! (`ORG#<org>#EVTIDX#<day>#<shard>` / `<receivedAt ms>#<eventId>`, [`keys::event_in_index`]):
//! the event document and the record's TTL, a plain idempotent put after the record's
//! conditional create. Rule replay reads a window of it ([`in_window`]), the 8 shards of each
//! day merged in time order.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{
    Condition, Cursor, Doc, Item, MAX_QUERY_LIMIT, Query, SortKeyRange, Store, StoreError, keys,
};
use herald_core::domain::delivery::DeliveryStatus;
use herald_core::domain::event::Event;
use herald_core::domain::{AlertInstanceId, ChannelId, DeliveryId, OrgId, SilenceId, UserId};

/// Most deliveries (and alert outcomes) an event record lists under its rules; beyond, the
/// record says `truncated` (an event to 1,000 recipients through several channels would
/// outgrow a DynamoDB item).
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
    /// What the rule did with the event's alert where it made no delivery of this event:
    /// counted into an open alert, left to a group message, silenced in a group, ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<AlertOutcome>,
}

impl RuleRoute {
    /// The route of `rule_key`, with nothing done yet.
    pub fn new(rule_key: impl Into<String>) -> Self {
        Self {
            rule_key: rule_key.into(),
            deliveries: Vec::new(),
            outcomes: Vec::new(),
        }
    }
}

/// What a rule did with an alert event, beyond its own deliveries (docs/alerts.md,
/// "Recorded outcomes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcomeKind {
    /// A trigger of an alert already notified on the channel: counted on the instance, not
    /// sent (`deliveryId` is the instance's trigger delivery, when there is one).
    Deduplicated,
    /// Left to the group message of the rule's grouping (`group`).
    Grouped,
    /// Held back by a silence (`silenceId`) without a delivery of this event: a duplicate of a
    /// silenced trigger, or a grouped alert whose group message the silence holds back.
    Silenced,
    /// An acknowledge or resolve that changed nothing (`reason`: `no open alert`, …).
    Ignored,
}

impl AlertOutcomeKind {
    /// The stats counter it increments; `None` for what is not counted.
    pub fn counter(self) -> Option<&'static str> {
        match self {
            Self::Deduplicated => Some("deduplicated"),
            Self::Grouped => Some("grouped"),
            Self::Silenced => Some("silenced"),
            Self::Ignored => None,
        }
    }
}

/// One alert outcome of a rule for an event, per channel where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertOutcome {
    pub outcome: AlertOutcomeKind,
    pub dedup_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<ChannelId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<AlertInstanceId>,
    /// The delivery that stands for this event on the channel (the instance's trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<DeliveryId>,
    /// The group (`sha256` of its `groupBy` values) whose message stands for the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_id: Option<SilenceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AlertOutcome {
    /// `outcome` for the alert of `dedup_key`, nothing else said yet.
    pub fn new(outcome: AlertOutcomeKind, dedup_key: impl Into<String>) -> Self {
        Self {
            outcome,
            dedup_key: dedup_key.into(),
            channel_id: None,
            instance_id: None,
            delivery_id: None,
            group: None,
            silence_id: None,
            reason: None,
        }
    }
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
    // A record that expires between a conflicting write and the read that looks for it leaves
    // nothing to de-duplicate against: the write is tried again, as the first time.
    for _ in 0..RECORD_TRIES {
        // The record, then its index item, as one write where the engine can (`put_all`): the
        // index put is unconditional, so a conflict is the record's, and nothing was written.
        let item = Item::new(key.clone(), keys::entity::EVENT, to_doc(&record)?).with_ttl(ttl);
        match store
            .put_all(vec![
                (item, Condition::NotExists),
                (index_item(event, ttl)?, Condition::None),
            ])
            .await
        {
            Ok(()) => return Ok(Recorded::New),
            Err(StoreError::Conflict) => {
                let Some(existing) = store.get(&key).await? else {
                    continue;
                };
                let existing_ttl = existing.ttl.unwrap_or(ttl);
                let existing: EventRecord = from_doc(existing.doc)?;
                if existing.stage == Stage::Accepted {
                    // A retry: the first attempt may have stopped between the record and its
                    // index item. The put is idempotent (same key, same event).
                    index(store, &existing.event, existing_ttl).await?;
                }
                return Ok(Recorded::Duplicate(Box::new(existing)));
            }
            Err(e) => return Err(e),
        }
    }
    // Conflicting each time yet never there: the caller fails the event, which is retried.
    Err(StoreError::Conflict)
}

/// Writes of an event's record before [`record`] gives up on an id that keeps conflicting with
/// a record expiring under it.
const RECORD_TRIES: usize = 3;

/// Writes `event` into its org's by-time index, expiring with its record (`ttl`): one plain put
/// (1 WRU for an event up to 1 KB; docs/cost.md).
async fn index(store: &dyn Store, event: &Event, ttl: i64) -> Result<(), StoreError> {
    store.put(index_item(event, ttl)?, Condition::None).await
}

/// `event`'s item in its org's by-time index.
fn index_item(event: &Event, ttl: i64) -> Result<Item, StoreError> {
    Ok(Item::new(
        keys::event_in_index(event.org_id, event.received_at, &event.id),
        keys::entity::EVENT_INDEX,
        to_doc(event)?,
    )
    .with_ttl(ttl))
}

/// One event read from the by-time index.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexed {
    /// Its place in the index (`<receivedAt ms>#<eventId>`): what a resumed read starts after.
    pub position: String,
    pub event: Event,
}

/// A window of an org's events, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    pub events: Vec<Indexed>,
    /// More events of the window follow the last one returned (the read stopped at `limit`).
    pub more: bool,
}

/// Whether `position` has the shape of an index position (`<13 digits>#<id>`), and its instant.
pub fn position_time(position: &str) -> Option<DateTime<Utc>> {
    let (ms, id) = position.split_once('#')?;
    if ms.len() != 13 || !ms.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
        return None;
    }
    DateTime::from_timestamp_millis(ms.parse().ok()?)
}

/// One shard partition of a day being merged: its buffered page and where it goes on.
#[derive(Debug)]
struct ShardRead {
    partition: String,
    items: VecDeque<Item>,
    next: Option<Cursor>,
    done: bool,
}

/// The org's events received in `[since, until)` — after `after` (a [`Indexed::position`])
/// when resuming — oldest first, at most `limit`. Reads only this org's index partitions: the
/// days the window touches, their 8 shards each queried (in parallel) and merged by sort key.
pub async fn in_window(
    store: &dyn Store,
    org: herald_core::domain::OrgId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<&str>,
    limit: usize,
) -> Result<Window, StoreError> {
    let mut out = Window::default();
    if until <= since || limit == 0 {
        return Ok(out);
    }
    let mut low = keys::event_time_sk(since);
    let high = keys::event_time_sk(until);
    if let Some(after) = after
        && after > low.as_str()
    {
        low = after.to_owned();
    }
    if low >= high {
        return Ok(out);
    }
    let first_day = match after.and_then(position_time) {
        Some(t) if t > since => t.date_naive(),
        _ => since.date_naive(),
    };
    let last_day = until
        .checked_sub_signed(chrono::Duration::milliseconds(1))
        .unwrap_or(until)
        .date_naive();
    let mut day = first_day;
    while day <= last_day {
        let mut shards: Vec<ShardRead> = (0..keys::EVENT_INDEX_SHARDS)
            .map(|s| ShardRead {
                partition: keys::events_of_day(org, day, s),
                items: VecDeque::new(),
                next: None,
                done: false,
            })
            .collect();
        loop {
            let remaining = limit + 1 - out.events.len();
            let page = (remaining.div_ceil(usize::from(keys::EVENT_INDEX_SHARDS)) + 1)
                .min(MAX_QUERY_LIMIT);
            let reads = shards
                .iter_mut()
                .filter(|s| s.items.is_empty() && !s.done)
                .map(|s| fill(store, s, &low, &high, page));
            futures::future::try_join_all(reads).await?;
            let Some(at) = shards
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.items.front().map(|item| (i, &item.key.sk)))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i)
            else {
                break;
            };
            let Some(item) = shards[at].items.pop_front() else {
                break;
            };
            if after.is_some_and(|a| item.key.sk.as_str() <= a) {
                continue;
            }
            let event: Event = from_doc(item.doc)?;
            if event.org_id != org {
                continue;
            }
            if out.events.len() == limit {
                out.more = true;
                return Ok(out);
            }
            out.events.push(Indexed {
                position: item.key.sk,
                event,
            });
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    Ok(out)
}

/// Reads the next items of one shard of the window into its buffer: pages until one holds an
/// item or the shard is exhausted (a page may come back empty with a cursor, its items expired).
async fn fill(
    store: &dyn Store,
    shard: &mut ShardRead,
    low: &str,
    high: &str,
    limit: usize,
) -> Result<(), StoreError> {
    while shard.items.is_empty() && !shard.done {
        let page = store
            .query(Query {
                partition: shard.partition.clone(),
                range: SortKeyRange::Between(low.to_owned(), high.to_owned()),
                limit,
                cursor: shard.next.take(),
                ..Query::default()
            })
            .await?;
        shard.items.extend(page.items);
        shard.done = page.next.is_none();
        shard.next = page.next;
    }
    Ok(())
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
        if route.outcomes.len() > room {
            route.outcomes.truncate(room);
            routes_truncated = true;
        }
        room -= route.outcomes.len();
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

pub(crate) fn to_doc<T: Serialize>(value: &T) -> Result<Doc, StoreError> {
    Doc::encode(value).map_err(StoreError::engine)
}

pub(crate) fn from_doc<T: serde::de::DeserializeOwned>(doc: Doc) -> Result<T, StoreError> {
    doc.decode().map_err(StoreError::engine)
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::embedded::Embedded;
    use crate::store::{Key, Page, Query, WriteOp};
    use async_trait::async_trait;

    /// The embedded store, whose first `conflicts` `put_all`s answer a conflict without writing:
    /// a record there when written, expired (gone) when read back. (Not a
    /// `herald_testing::store::Watched`: that implements the `Store` of the library build of
    /// this crate, not of this test build.)
    #[derive(Debug)]
    struct ExpiresUnderTheWrite {
        inner: Embedded,
        conflicts: AtomicUsize,
    }

    #[async_trait]
    impl Store for ExpiresUnderTheWrite {
        async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
            self.inner.get(key).await
        }
        async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
            self.inner.put(item, condition).await
        }
        async fn put_all(&self, puts: Vec<(Item, Condition)>) -> Result<(), StoreError> {
            let left = self.conflicts.load(Ordering::SeqCst);
            if left > 0 {
                self.conflicts.store(left - 1, Ordering::SeqCst);
                return Err(StoreError::Conflict);
            }
            self.inner.put_all(puts).await
        }
        async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
            self.inner.delete(key, condition).await
        }
        async fn add(
            &self,
            key: &Key,
            entity_type: &str,
            deltas: &BTreeMap<String, i64>,
            condition: Condition,
        ) -> Result<BTreeMap<String, i64>, StoreError> {
            self.inner.add(key, entity_type, deltas, condition).await
        }
        async fn query(&self, query: Query) -> Result<Page, StoreError> {
            self.inner.query(query).await
        }
        async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
            self.inner.transact(ops).await
        }
    }

    fn store(conflicts: usize) -> ExpiresUnderTheWrite {
        ExpiresUnderTheWrite {
            inner: Embedded::in_memory().expect("store"),
            conflicts: AtomicUsize::new(conflicts),
        }
    }

    fn event() -> Event {
        herald_testing::events::event("email", "email.bounced", serde_json::json!({}))
    }

    #[tokio::test]
    async fn a_record_expiring_under_the_write_is_written_anew() {
        let store = store(1);
        let event = event();
        let now = event.received_at;
        let ttl = Utc::now().timestamp() + 3600;
        let recorded = record(&store, &event, ttl, now).await.expect("record");
        assert!(matches!(recorded, Recorded::New));
        let stored = get(&store, event.org_id, &event.id)
            .await
            .expect("get")
            .expect("the record is written, not only its index item");
        assert_eq!(stored.event, event);
        let window = in_window(
            &store,
            event.org_id,
            now - chrono::Duration::seconds(1),
            now + chrono::Duration::seconds(1),
            None,
            10,
        )
        .await
        .expect("window");
        assert_eq!(window.events.len(), 1);
    }

    #[tokio::test]
    async fn an_id_that_keeps_conflicting_fails_rather_than_loops() {
        let store = store(usize::MAX);
        let event = event();
        let ttl = Utc::now().timestamp() + 3600;
        let result = record(&store, &event, ttl, event.received_at).await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        assert_eq!(
            store.conflicts.load(Ordering::SeqCst),
            usize::MAX - RECORD_TRIES
        );
    }
}
