//! Alerts: one item per (org, dedup key) holding the current — or last — instance
//! (`ORG#<org>#ALERT#<sha256(key)>` / `ALERT`, in GSI1 under its state), and beside it one
//! occurrence counter per instance (`COUNT#<instance>`, integer attributes `eventCount` and
//! `lastEventMs`, in no index).
//!
//! Every state change is a conditional write on the item's `version` (or a conditional create):
//! two matchers that see the same key at once agree on one instance, and only one of them opens
//! it. Duplicate triggers write only the counter, never the indexed item.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Index, Item, Query, Store, StoreError, WriteOp};
use herald_core::domain::alert::{
    Alert, AlertAction, AlertState, DedupKey, Transition, transition,
};
use herald_core::domain::event::Event;
use herald_core::domain::{AlertInstanceId, ChannelId, OrgId, RuleKey};

use super::{MAX_PAGE, Page, RepoError, decode, encode};

/// How many times a write that lost a race reads again before giving up
/// ([`RepoError::Contended`]; the message is retried by its queue).
const RETRIES: usize = 16;

/// An alert instance with its occurrence count.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub alert: Alert,
    /// The stored item's version: what the next write is conditioned on.
    pub version: i64,
    pub event_count: i64,
    pub last_event_at: Option<DateTime<Utc>>,
    /// When the stored item expires (a resolved instance).
    pub ttl: Option<i64>,
}

/// What an action did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// A new instance opened (this call opened it).
    Opened(AlertRecord),
    /// Another occurrence of the open instance, counted.
    Counted(AlertRecord),
    Acknowledged(AlertRecord),
    /// The instance resolved (this call resolved it).
    Resolved(AlertRecord),
    /// Nothing changed, for this reason; the alert as it stands, if any.
    Ignored(&'static str, Option<Box<AlertRecord>>),
}

/// The alert of `key`: its current or last instance.
pub async fn get(
    store: &dyn Store,
    org: OrgId,
    key: &DedupKey,
) -> Result<Option<AlertRecord>, RepoError> {
    let Some(item) = store.get(&keys::alert(org, key.as_str())).await? else {
        return Ok(None);
    };
    let version = item
        .nums
        .get(keys::ALERT_VERSION_ATTR)
        .copied()
        .unwrap_or(0);
    let ttl = item.ttl;
    let alert: Alert = decode(item, entity::ALERT)?;
    let count = store
        .get(&keys::alert_count(org, key.as_str(), &alert.instance_id))
        .await?;
    let (event_count, last_ms) = count.map_or((0, None), |c| {
        (
            c.nums
                .get(keys::ALERT_EVENT_COUNT_ATTR)
                .copied()
                .unwrap_or(0),
            c.nums.get(keys::ALERT_LAST_EVENT_ATTR).copied(),
        )
    });
    Ok(Some(AlertRecord {
        alert,
        version,
        event_count,
        last_event_at: last_ms.and_then(DateTime::from_timestamp_millis),
        ttl,
    }))
}

fn item(org: OrgId, alert: &Alert, version: i64, ttl: Option<i64>) -> Result<Item, RepoError> {
    let key = alert.dedup_key.as_str();
    let mut item = Item::new(
        keys::alert(org, key),
        entity::ALERT,
        encode(alert, entity::ALERT)?,
    )
    .with_gsi1(keys::alert_in_state(
        org,
        alert.state.as_str(),
        alert.first_event_at,
        key,
    ));
    item.nums
        .insert(keys::ALERT_VERSION_ATTR.to_owned(), version);
    item.ttl = ttl;
    Ok(item)
}

fn version_condition(current: Option<&AlertRecord>) -> Condition {
    match current {
        None => Condition::NotExists,
        Some(r) => Condition::NumEquals {
            attr: keys::ALERT_VERSION_ATTR.to_owned(),
            value: r.version,
        },
    }
}

/// What an incoming action names besides its key.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub action: AlertAction,
    /// The event carrying it: opens an instance with its type and module.
    pub event: &'a Event,
    /// Who acknowledged or resolved it (API calls).
    pub by: Option<&'a str>,
    /// The shortest `autoResolveSeconds` of the rules involved, recorded on a new instance.
    pub auto_resolve_seconds: Option<u32>,
}

/// Applies one action to the alert of `key` at `now`, following the transition table. A
/// resolved instance's items expire at `resolved_ttl`.
pub async fn apply(
    store: &dyn Store,
    org: OrgId,
    key: &DedupKey,
    action: Action<'_>,
    resolved_ttl: i64,
    now: DateTime<Utc>,
) -> Result<Applied, RepoError> {
    for _ in 0..RETRIES {
        let current = get(store, org, key).await?;
        let state = current.as_ref().map(|r| r.alert.state);
        let result = match transition(state, action.action) {
            Transition::Ignore(reason) => {
                return Ok(Applied::Ignored(reason, current.map(Box::new)));
            }
            Transition::Count => {
                let Some(mut record) = current else {
                    continue;
                };
                let (count, last) = count(store, org, &record.alert, 1, now).await?;
                record.event_count = count;
                record.last_event_at = Some(last);
                return Ok(Applied::Counted(record));
            }
            Transition::Open => {
                let mut alert = Alert::open(key.clone(), action.event, now);
                alert.auto_resolve_seconds = action.auto_resolve_seconds;
                let version = current.as_ref().map_or(1, |r| r.version + 1);
                let put = store
                    .put(
                        item(org, &alert, version, None)?,
                        version_condition(current.as_ref()),
                    )
                    .await;
                put.map(|()| {
                    Applied::Opened(AlertRecord {
                        alert,
                        version,
                        event_count: 0,
                        last_event_at: None,
                        ttl: None,
                    })
                })
            }
            Transition::Acknowledge => {
                let Some(mut record) = current else {
                    continue;
                };
                let condition = version_condition(Some(&record));
                record.alert.acknowledge(action.by.map(str::to_owned), now);
                record.version += 1;
                store
                    .put(item(org, &record.alert, record.version, None)?, condition)
                    .await
                    .map(|()| Applied::Acknowledged(record))
            }
            Transition::Resolve => {
                let Some(mut record) = current else {
                    continue;
                };
                let condition = version_condition(Some(&record));
                record.alert.resolve(action.by.map(str::to_owned), now);
                record.version += 1;
                // The counter gets the resolved instance's expiry in the same write, with the
                // count as read: a trigger counted in between makes the write fail and retry.
                let count_key = keys::alert_count(org, key.as_str(), &record.alert.instance_id);
                let mut counter = Item::new(count_key, entity::ALERT_COUNT, serde_json::json!({}))
                    .with_ttl(resolved_ttl);
                counter
                    .nums
                    .insert(keys::ALERT_EVENT_COUNT_ATTR.to_owned(), record.event_count);
                if let Some(last) = record.last_event_at {
                    counter.nums.insert(
                        keys::ALERT_LAST_EVENT_ATTR.to_owned(),
                        last.timestamp_millis(),
                    );
                }
                let counter_condition = if record.event_count == 0 {
                    Condition::NumLessThan {
                        attr: keys::ALERT_EVENT_COUNT_ATTR.to_owned(),
                        bound: 1,
                    }
                } else {
                    Condition::NumEquals {
                        attr: keys::ALERT_EVENT_COUNT_ATTR.to_owned(),
                        value: record.event_count,
                    }
                };
                store
                    .transact(vec![
                        WriteOp::Put {
                            item: item(org, &record.alert, record.version, Some(resolved_ttl))?,
                            condition,
                        },
                        WriteOp::Put {
                            item: counter,
                            condition: counter_condition,
                        },
                    ])
                    .await
                    .map(|()| {
                        record.ttl = Some(resolved_ttl);
                        Applied::Resolved(record)
                    })
            }
        };
        match result {
            Ok(applied) => return Ok(applied),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepoError::Contended)
}

/// Counts `n` occurrences of `alert`'s instance at `at`: `eventCount += n` and `lastEventAt`
/// moved forward (never back). Returns the count and last occurrence after the write.
pub async fn count(
    store: &dyn Store,
    org: OrgId,
    alert: &Alert,
    n: i64,
    at: DateTime<Utc>,
) -> Result<(i64, DateTime<Utc>), RepoError> {
    let key = keys::alert_count(org, alert.dedup_key.as_str(), &alert.instance_id);
    let at_ms = at.timestamp_millis();
    let last_attr = keys::ALERT_LAST_EVENT_ATTR.to_owned();
    let mut last = store
        .get(&key)
        .await?
        .and_then(|i| i.nums.get(keys::ALERT_LAST_EVENT_ATTR).copied());
    for _ in 0..RETRIES {
        let mut deltas = BTreeMap::from([(keys::ALERT_EVENT_COUNT_ATTR.to_owned(), n)]);
        // `lastEventMs` only moves forward: set it (as a delta from what was read) on condition
        // that it is still what was read; an older occurrence only counts.
        let condition = match last {
            None => {
                deltas.insert(last_attr.clone(), at_ms);
                Condition::NotExists
            }
            Some(l) if l < at_ms => {
                deltas.insert(last_attr.clone(), at_ms - l);
                Condition::NumEquals {
                    attr: last_attr.clone(),
                    value: l,
                }
            }
            Some(_) => Condition::None,
        };
        match store
            .add(&key, entity::ALERT_COUNT, &deltas, condition)
            .await
        {
            Ok(nums) => {
                let count = nums.get(keys::ALERT_EVENT_COUNT_ATTR).copied().unwrap_or(n);
                let last = nums
                    .get(keys::ALERT_LAST_EVENT_ATTR)
                    .copied()
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(at);
                return Ok((count, last));
            }
            Err(StoreError::Conflict) => {
                last = store
                    .get(&key)
                    .await?
                    .and_then(|i| i.nums.get(keys::ALERT_LAST_EVENT_ATTR).copied());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepoError::Contended)
}

/// Records that `rule` notified `channel` for `instance`: where its resolved follow-up goes.
/// A no-op when the key has moved on to another instance, or the target is recorded already.
pub async fn add_target(
    store: &dyn Store,
    org: OrgId,
    key: &DedupKey,
    instance: AlertInstanceId,
    rule: &RuleKey,
    channel: ChannelId,
) -> Result<(), RepoError> {
    for _ in 0..RETRIES {
        let Some(mut record) = get(store, org, key).await? else {
            return Ok(());
        };
        if record.alert.instance_id != instance || !record.alert.add_target(rule, channel) {
            return Ok(());
        }
        let condition = version_condition(Some(&record));
        record.version += 1;
        match store
            .put(
                item(org, &record.alert, record.version, record.ttl)?,
                condition,
            )
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepoError::Contended)
}

/// Records that `instance` joined `group` of the grouped `rule`: where its resolve is reported.
/// A no-op when the key has moved on to another instance, or the group is recorded already.
pub async fn add_group(
    store: &dyn Store,
    org: OrgId,
    key: &DedupKey,
    instance: AlertInstanceId,
    rule: &RuleKey,
    group: &str,
) -> Result<(), RepoError> {
    for _ in 0..RETRIES {
        let Some(mut record) = get(store, org, key).await? else {
            return Ok(());
        };
        if record.alert.instance_id != instance || !record.alert.add_group(rule, group) {
            return Ok(());
        }
        let condition = version_condition(Some(&record));
        record.version += 1;
        match store
            .put(
                item(org, &record.alert, record.version, record.ttl)?,
                condition,
            )
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepoError::Contended)
}

/// One page of the org's alerts in `state`, most recently opened first.
pub async fn list(
    store: &dyn Store,
    org: OrgId,
    state: AlertState,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<Page<AlertRecord>, RepoError> {
    let page = store
        .query(Query {
            index: Index::Gsi1,
            partition: keys::alerts_in_state(org, state.as_str()),
            descending: true,
            limit: limit.clamp(1, MAX_PAGE),
            cursor,
            ..Query::default()
        })
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for item in page.items {
        let alert: Alert = decode(item, entity::ALERT)?;
        // The counter and the version are read with the alert; an alert that changed state
        // since the index answered is shown as it is now.
        if let Some(record) = get(store, org, &alert.dedup_key).await?
            && record.alert.state == state
        {
            items.push(record);
        }
    }
    Ok(Page {
        items,
        next: page.next,
    })
}
