//! Delivery records: one per (event, rule, channel[, recipient]), holding every attempt. Written
//! by the matcher (`queued`) and updated by the dispatcher after each attempt, with optimistic
//! concurrency on a `version` attribute so two dispatchers never overwrite each other's attempts.

use chrono::{DateTime, NaiveDate, Utc};

use super::events::{from_doc, to_doc};
use super::stats;

use crate::store::{
    Condition, Cursor, Index, Item, Key, Query, SortKeyRange, Store, StoreError, WriteOp, keys,
};
use herald_core::domain::delivery::{
    Delivery, DeliveryStatus, Engagement, MAX_ENGAGEMENT, Trigger,
};
use herald_core::domain::{ChannelId, DeliveryId, OrgId};

const VERSION: &str = "version";

/// A delivery as read, with the version a later save must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub delivery: Delivery,
    pub version: i64,
}

fn item(delivery: &Delivery, version: i64, ttl: i64) -> Result<Item, StoreError> {
    let mut item = Item::new(
        keys::delivery(delivery.org_id, delivery.id),
        keys::entity::DELIVERY,
        to_doc(delivery)?,
    )
    .with_gsi1(keys::delivery_in_channel(
        delivery.org_id,
        delivery.channel_id,
        delivery.id,
    ))
    .with_ttl(ttl);
    item.nums.insert(VERSION.to_owned(), version);
    Ok(item)
}

/// Creates the delivery unless it exists; returns the existing one when it does.
pub async fn create(
    store: &dyn Store,
    delivery: &Delivery,
    ttl: i64,
) -> Result<Option<Versioned>, StoreError> {
    match store
        .put(item(delivery, 0, ttl)?, Condition::NotExists)
        .await
    {
        Ok(()) => Ok(None),
        Err(StoreError::Conflict) => get(store, delivery.org_id, delivery.id).await,
        Err(e) => Err(e),
    }
}

/// The write [`create`] makes, for bulk loaders (benchmarks, imports) that batch many in one
/// transaction.
pub fn create_op(delivery: &Delivery, ttl: i64) -> Result<WriteOp, StoreError> {
    Ok(WriteOp::Put {
        item: item(delivery, 0, ttl)?,
        condition: Condition::NotExists,
    })
}

/// What [`create_within_cap`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CappedCreate {
    /// Created, and counted against the cap.
    Created,
    /// Not created: the cap's counter is at its bound.
    Capped,
    /// Already on record (a match message handled twice): neither created nor counted again.
    Exists(Box<Versioned>),
}

/// Creates the delivery and counts it against a frequency cap in one transaction: the create
/// (if absent) and the counter's `ADD n 1` (if `n < per_user`) both happen or neither does, so
/// concurrent matchers never pass more than `per_user`, and a retried match message never counts
/// a delivery twice.
///
/// The counter item is first put (if absent) with its window's end as TTL, so the `ADD` never
/// creates a counter that would outlive its window.
pub async fn create_within_cap(
    store: &dyn Store,
    delivery: &Delivery,
    ttl: i64,
    counter: &Key,
    per_user: u32,
    counter_ttl: i64,
) -> Result<CappedCreate, StoreError> {
    let fresh = Item::new(
        counter.clone(),
        keys::entity::CAP_COUNTER,
        serde_json::json!({}),
    )
    .with_ttl(counter_ttl);
    match store.put(fresh, Condition::NotExists).await {
        Ok(()) | Err(StoreError::Conflict) => {}
        Err(e) => return Err(e),
    }
    let ops = vec![
        WriteOp::Put {
            item: item(delivery, 0, ttl)?,
            condition: Condition::NotExists,
        },
        WriteOp::Add {
            key: counter.clone(),
            entity_type: keys::entity::CAP_COUNTER.to_owned(),
            deltas: [(keys::CAP_COUNT_ATTR.to_owned(), 1)].into(),
            condition: Condition::NumLessThan {
                attr: keys::CAP_COUNT_ATTR.to_owned(),
                bound: i64::from(per_user),
            },
        },
    ];
    match store.transact(ops).await {
        Ok(()) => Ok(CappedCreate::Created),
        // Either the delivery exists or the cap is reached; the delivery's presence tells which.
        Err(StoreError::Conflict) => Ok(match get(store, delivery.org_id, delivery.id).await? {
            Some(existing) => CappedCreate::Exists(Box::new(existing)),
            None => CappedCreate::Capped,
        }),
        Err(e) => Err(e),
    }
}

pub async fn get(
    store: &dyn Store,
    org: OrgId,
    id: DeliveryId,
) -> Result<Option<Versioned>, StoreError> {
    let Some(item) = store.get(&keys::delivery(org, id)).await? else {
        return Ok(None);
    };
    from_item(item).map(Some)
}

/// A delivery item as read (from its day partition or its channel's log on GSI1) with its
/// version.
pub fn from_item(item: Item) -> Result<Versioned, StoreError> {
    let version = item.nums.get(VERSION).copied().unwrap_or(0);
    Ok(Versioned {
        delivery: from_doc(item.doc)?,
        version,
    })
}

/// Saves `delivery` if its stored version is still `expected`; `Conflict` otherwise.
pub async fn save(
    store: &dyn Store,
    delivery: &Delivery,
    expected: i64,
    ttl: i64,
) -> Result<i64, StoreError> {
    let next = expected + 1;
    store
        .put(
            item(delivery, next, ttl)?,
            Condition::NumEquals {
                attr: VERSION.to_owned(),
                value: expected,
            },
        )
        .await?;
    Ok(next)
}

/// Gives back the frequency-cap slot of a delivery that ended `failed` without any attempt
/// accepted: it never reached the user, so it does not use up their cap. `ADD n -1` on the
/// counter it was counted in, only while that counter exists (within its window; an expired
/// window has nothing to give back). Call once, by the writer whose save recorded the failure.
/// Answers whether a slot was given back.
pub async fn release_cap_slot(
    store: &dyn Store,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (Some(slot), Some(user)) = (delivery.cap_slot, delivery.recipient.as_ref()) else {
        return Ok(false);
    };
    let never_reached = delivery.status == DeliveryStatus::Failed
        && delivery.attempts.iter().all(|a| a.error_class.is_some());
    if !never_reached || now >= slot.ends_at {
        return Ok(false);
    }
    let counter =
        keys::cap_slot_counter(delivery.org_id, delivery.channel_id, user.as_str(), &slot);
    let deltas = [(keys::CAP_COUNT_ATTR.to_owned(), -1)].into();
    match store
        .add(
            &counter,
            keys::entity::CAP_COUNTER,
            &deltas,
            Condition::Exists,
        )
        .await
    {
        Ok(_) => Ok(true),
        // The window ended (the counter expired) meanwhile: nothing to give back.
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How often [`record_engagement`] re-reads a delivery another writer changed meanwhile.
const ENGAGEMENT_TRIES: usize = 5;

/// Records what the recipient did (an email open or click, an in-app read) on the delivery and,
/// for the delivery's first of that kind (of a rule's delivery), counts it in the stats of the delivery's day — both in
/// one transaction. Answers whether it was the first of its kind; `None` when the delivery is not
/// on record (unknown, or past its retention). A repeat (the same kind and link) changes nothing.
pub async fn record_engagement(
    store: &dyn Store,
    org: OrgId,
    id: DeliveryId,
    engagement: Engagement,
) -> Result<Option<bool>, StoreError> {
    for _ in 0..ENGAGEMENT_TRIES {
        let Some(stored) = store.get(&keys::delivery(org, id)).await? else {
            return Ok(None);
        };
        let version = stored.nums.get(VERSION).copied().unwrap_or(0);
        let mut delivery: Delivery = from_doc(stored.doc)?;
        let first = !delivery
            .engagement
            .iter()
            .any(|e| e.kind == engagement.kind);
        let repeat = delivery
            .engagement
            .iter()
            .any(|e| e.kind == engagement.kind && e.url == engagement.url);
        if repeat || (!first && delivery.engagement.len() >= MAX_ENGAGEMENT) {
            return Ok(Some(false));
        }
        delivery.engagement.push(engagement.clone());
        let mut next = item(&delivery, version + 1, 0)?;
        next.ttl = stored.ttl;
        let mut ops = vec![WriteOp::Put {
            item: next,
            condition: Condition::NumEquals {
                attr: VERSION.to_owned(),
                value: version,
            },
        }];
        // Test-button deliveries stay out of the stats, as their sends do.
        if first && delivery.trigger == Trigger::Event {
            let deltas = [(engagement.kind.as_str().to_owned(), 1)].into();
            ops.extend(stats::add_ops(
                org,
                delivery.created_at.date_naive(),
                delivery.channel_id,
                delivery.rule_key.as_ref(),
                &deltas,
            ));
        }
        match store.transact(ops).await {
            Ok(()) => return Ok(Some(first)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub rule_key: Option<String>,
    pub channel_id: Option<ChannelId>,
    pub recipient: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl LogFilter {
    fn accepts(&self, d: &Delivery) -> bool {
        self.rule_key
            .as_deref()
            .is_none_or(|k| d.rule_key.as_ref().is_some_and(|r| r.as_str() == k))
            && self.channel_id.is_none_or(|c| d.channel_id == c)
            && self
                .recipient
                .as_deref()
                .is_none_or(|u| d.recipient.as_ref().is_some_and(|r| r.as_str() == u))
            && self.status.is_none_or(|s| d.status == s)
            && self.from.is_none_or(|f| d.created_at >= f)
            && self.to.is_none_or(|t| d.created_at < t)
    }
}

/// One page of the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogPage {
    pub items: Vec<Delivery>,
    pub next: Option<Cursor>,
}

/// Most items a page reads before answering, matching or not: a filter that matches rarely
/// answers a short page with a cursor instead of scanning without bound.
const MAX_SCANNED: usize = 1000;
/// Oldest a log query reaches back without an explicit `from`.
pub const DEFAULT_LOOKBACK_DAYS: i64 = 30;
/// Most day partitions a page visits before answering, matching or not: a span of empty days
/// costs a short page with a cursor, never a walk over every day of the span.
pub const MAX_DAYS_PER_PAGE: usize = 31;

/// The delivery log, newest first. With a channel filter it reads that channel's index;
/// otherwise the org's day partitions from `to` back to `from`, at most [`MAX_DAYS_PER_PAGE`]
/// of them per page. Yields to the runtime between store reads, so a long page neither starves
/// other requests nor outlives a client that went away (its future is dropped at a yield).
///
/// A `to` without `from` reaches back [`DEFAULT_LOOKBACK_DAYS`], or to the earliest date there
/// is; the caller bounds the span.
pub async fn list(
    store: &dyn Store,
    org: OrgId,
    filter: &LogFilter,
    limit: usize,
    cursor: Option<Cursor>,
    now: DateTime<Utc>,
) -> Result<LogPage, StoreError> {
    let limit = limit.clamp(1, 200);
    let upper = filter.to.unwrap_or(now);
    let lower = filter.from.unwrap_or_else(|| {
        upper
            .checked_sub_signed(chrono::Duration::days(DEFAULT_LOOKBACK_DAYS))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    });
    let range = SortKeyRange::Between(
        keys::delivery_sk(id_floor(lower)),
        keys::delivery_sk(id_ceiling(upper)),
    );

    if let Some(channel) = filter.channel_id {
        let query = |cursor| Query {
            index: Index::Gsi1,
            partition: keys::channel_deliveries(org, channel),
            range: range.clone(),
            descending: true,
            limit: limit.min(100),
            cursor,
        };
        return scan(store, filter, limit, cursor, query).await;
    }

    // Day partitions, newest first; the cursor's primary key names the day it stopped in, which
    // must lie in the span asked for.
    let first_day = lower.date_naive();
    let mut day = match &cursor {
        Some(c) => day_of_partition(&c.decode()?.0)
            .filter(|d| (first_day..=upper.date_naive()).contains(d))
            .ok_or(StoreError::BadCursor)?,
        None => upper.date_naive(),
    };
    let mut out = LogPage::default();
    let mut cursor = cursor;
    let mut scanned = 0;
    let mut days = 0;
    while day >= first_day {
        if days == MAX_DAYS_PER_PAGE {
            // `day` is not read yet: the next page starts at its top.
            out.next = Some(day_cursor(org, day));
            return Ok(out);
        }
        days += 1;
        let partition = keys::deliveries_of_day(org, &day.format("%Y-%m-%d").to_string());
        loop {
            tokio::task::yield_now().await;
            let page = store
                .query(Query {
                    index: Index::Primary,
                    partition: partition.clone(),
                    range: range.clone(),
                    descending: true,
                    limit: (limit - out.items.len()).clamp(1, 100),
                    cursor: cursor.take(),
                })
                .await?;
            scanned += page.items.len();
            let last = page.items.last().map(|i| Cursor::after(i, Index::Primary));
            for item in page.items {
                let d: Delivery = from_doc(item.doc)?;
                if filter.accepts(&d) {
                    out.items.push(d);
                }
            }
            if out.items.len() >= limit || scanned >= MAX_SCANNED {
                out.next = page
                    .next
                    .or(last)
                    .or_else(|| next_day_cursor(org, day, first_day));
                return Ok(out);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        day = match day.pred_opt() {
            Some(d) => d,
            None => break,
        };
    }
    Ok(out)
}

/// A cursor that starts the next (older) day partition from its top.
fn next_day_cursor(org: OrgId, day: NaiveDate, first_day: NaiveDate) -> Option<Cursor> {
    let prev = day.pred_opt().filter(|d| *d >= first_day)?;
    Some(day_cursor(org, prev))
}

/// A cursor that starts `day`'s partition from its top.
fn day_cursor(org: OrgId, day: NaiveDate) -> Cursor {
    let top = Item::new(
        Key::new(
            keys::deliveries_of_day(org, &day.format("%Y-%m-%d").to_string()),
            keys::DELIVERIES_TOP,
        ),
        keys::entity::DELIVERY,
        serde_json::Value::Null,
    );
    Cursor::after(&top, Index::Primary)
}

/// Reads one index partition page by page until `limit` matches, the end, or the scan bound.
async fn scan(
    store: &dyn Store,
    filter: &LogFilter,
    limit: usize,
    mut cursor: Option<Cursor>,
    query: impl Fn(Option<Cursor>) -> Query,
) -> Result<LogPage, StoreError> {
    let mut out = LogPage::default();
    let mut scanned = 0;
    loop {
        tokio::task::yield_now().await;
        let page = store.query(query(cursor.take())).await?;
        scanned += page.items.len();
        let last = page.items.last().map(|i| Cursor::after(i, Index::Gsi1));
        for item in page.items {
            let d: Delivery = from_doc(item.doc)?;
            if filter.accepts(&d) {
                out.items.push(d);
            }
        }
        match page.next {
            Some(next) if out.items.len() < limit && scanned < MAX_SCANNED => cursor = Some(next),
            next => {
                out.next = next.or(if out.items.len() >= limit { last } else { None });
                return Ok(out);
            }
        }
    }
}

fn day_of_partition(key: &Key) -> Option<NaiveDate> {
    let day = key.pk.rsplit('#').next()?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// The smallest UUIDv7 text at `t` (its 48-bit millisecond prefix, then zeros).
pub fn id_floor(t: DateTime<Utc>) -> String {
    uuid_prefix(t, "0000-0000-000000000000")
}

/// The largest UUIDv7 text at `t`.
pub fn id_ceiling(t: DateTime<Utc>) -> String {
    uuid_prefix(t, "ffff-ffff-ffffffffffff")
}

fn uuid_prefix(t: DateTime<Utc>, rest: &str) -> String {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    let hex = format!("{ms:012x}");
    format!("{}-{}-{rest}", &hex[..8], &hex[8..])
}
