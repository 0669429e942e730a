//! Alert groups of grouped rules (docs/alerts.md, "Grouping"): one item per group holding its
//! notification log and pending tick (`ORG#<org>#GRP#<rule>#<sha256(values)>` / `GRP`), and
//! beside it one item per member alert (`A#<sha256(dedupKey)>`), in no index.
//!
//! Group writes are conditional on the item's `version`, and every write bumps it: a member
//! joining or resolving bumps it too, so a tick that read the group before that change fails its
//! write and reads again instead of losing the change.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Query, SortKeyRange, Store, StoreError};
use herald_core::domain::group::{GroupAlert, GroupLog, GroupStatus};
use herald_core::domain::{AlertInstanceId, OrgId, RuleKey};

use super::{RepoError, decode, encode};

/// The hash naming a group: SHA-256 of its `groupBy` values (canonical JSON), in hex.
pub fn group_hash(values: &BTreeMap<String, String>) -> String {
    let canonical = serde_json::to_string(values).unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The id of a member: the first 128 bits of SHA-256 of its dedup key, in hex.
pub fn member_id(dedup_key: &str) -> String {
    hex::encode(&Sha256::digest(dedup_key.as_bytes())[..16])
}

/// One group's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub rule_key: RuleKey,
    /// [`group_hash`] of `values`.
    pub group: String,
    pub values: BTreeMap<String, String>,
    /// The number of the next message: part of its deliveries' ids.
    pub seq: u64,
    /// The pending tick: a tick message naming another id is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_at: Option<DateTime<Utc>>,
    /// The tick before it: a message of that tick received again re-sends the pending one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tick_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_at: Option<DateTime<Utc>>,
    /// Member ids firing, and resolved, in the last message: at most [`MAX_LOGGED_MEMBERS`]
    /// each, the first in order, with `*_truncated` set when there were more.
    #[serde(default)]
    pub sent_firing: BTreeSet<String>,
    #[serde(default)]
    pub sent_resolved: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_firing_truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_resolved_truncated: bool,
}

/// Most member ids the group item logs per set (firing, resolved). An id is 32 hex characters,
/// about 35 bytes stored: two full sets take about 280 KB, inside DynamoDB's 400 KB item limit
/// with room for the rest of the group. A bigger group logs the first ids in order and is
/// compared exactly up to the last one logged (`herald_core::domain::group::needs_update`).
pub const MAX_LOGGED_MEMBERS: usize = 4_000;

impl Group {
    /// A new, idle group.
    pub fn new(rule_key: RuleKey, values: BTreeMap<String, String>) -> Self {
        Self {
            rule_key,
            group: group_hash(&values),
            values,
            seq: 0,
            tick_id: None,
            tick_at: None,
            previous_tick_id: None,
            first_at: None,
            last_sent_at: None,
            sent_firing: BTreeSet::new(),
            sent_resolved: BTreeSet::new(),
            sent_firing_truncated: false,
            sent_resolved_truncated: false,
        }
    }

    /// Logs the members firing and resolved in the message just sent, each set capped at
    /// [`MAX_LOGGED_MEMBERS`].
    pub fn log_sent(&mut self, firing: &BTreeSet<String>, resolved: &BTreeSet<String>) {
        let cap = |set: &BTreeSet<String>| -> (BTreeSet<String>, bool) {
            (
                set.iter().take(MAX_LOGGED_MEMBERS).cloned().collect(),
                set.len() > MAX_LOGGED_MEMBERS,
            )
        };
        (self.sent_firing, self.sent_firing_truncated) = cap(firing);
        (self.sent_resolved, self.sent_resolved_truncated) = cap(resolved);
    }

    /// Forgets what was sent (the group went idle).
    pub fn clear_sent(&mut self) {
        self.log_sent(&BTreeSet::new(), &BTreeSet::new());
    }

    /// What the pure scheduling functions read.
    pub fn log(&self) -> GroupLog {
        GroupLog {
            first_at: self.first_at,
            last_sent_at: self.last_sent_at,
            sent_firing: self.sent_firing.clone(),
            sent_resolved: self.sent_resolved.clone(),
            sent_firing_truncated: self.sent_firing_truncated,
            sent_resolved_truncated: self.sent_resolved_truncated,
            tick_at: self.tick_at,
        }
    }
}

/// A group as read, with the version its next write is conditioned on.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub group: Group,
    pub version: i64,
}

/// One member alert of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub dedup_key: String,
    pub instance_id: AlertInstanceId,
    pub status: GroupStatus,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// The line a chat notification of the opening event shows.
    pub summary: String,
    /// The opening event, without its recipients: what silences are matched against when the
    /// group's tick decides what to send. Members stored before it was kept have none (no
    /// silence applies to them in the group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Box<herald_core::domain::event::Event>>,
}

impl Member {
    pub fn id(&self) -> String {
        member_id(&self.dedup_key)
    }

    pub fn to_alert(&self) -> GroupAlert {
        GroupAlert {
            dedup_key: self.dedup_key.clone(),
            status: self.status,
            summary: self.summary.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
        }
    }
}

/// The group `group` of `rule`.
pub async fn get(
    store: &dyn Store,
    org: OrgId,
    rule: &RuleKey,
    group: &str,
) -> Result<Option<GroupRecord>, RepoError> {
    let Some(item) = store.get(&keys::group(org, rule, group)).await? else {
        return Ok(None);
    };
    let version = item
        .nums
        .get(keys::GROUP_VERSION_ATTR)
        .copied()
        .unwrap_or(0);
    Ok(Some(GroupRecord {
        group: decode(item, entity::ALERT_GROUP)?,
        version,
    }))
}

/// Writes `group` if it is still at the version read (`read`, `None`: if absent), as version
/// `read + 1`; [`StoreError::Conflict`] otherwise. Expires at `ttl`.
pub async fn put(
    store: &dyn Store,
    org: OrgId,
    group: &Group,
    read: Option<i64>,
    ttl: i64,
) -> Result<i64, RepoError> {
    let version = read.map_or(1, |v| v + 1);
    let mut item = Item::new(
        keys::group(org, &group.rule_key, &group.group),
        entity::ALERT_GROUP,
        encode(group, entity::ALERT_GROUP)?,
    )
    .with_ttl(ttl);
    item.nums
        .insert(keys::GROUP_VERSION_ATTR.to_owned(), version);
    let condition = match read {
        None => Condition::NotExists,
        Some(v) => Condition::NumEquals {
            attr: keys::GROUP_VERSION_ATTR.to_owned(),
            value: v,
        },
    };
    store.put(item, condition).await?;
    Ok(version)
}

/// Bumps the version of an existing group without any other change (atomic `ADD`, never a
/// conflict unless the group is gone): what a member change that needs no new tick writes, so
/// a storm of joins does not contend on the group, while a tick that read the group before the
/// change still fails its conditional write.
pub async fn touch(
    store: &dyn Store,
    org: OrgId,
    rule: &RuleKey,
    group: &str,
) -> Result<(), RepoError> {
    let deltas = BTreeMap::from([(keys::GROUP_VERSION_ATTR.to_owned(), 1)]);
    store
        .add(
            &keys::group(org, rule, group),
            entity::ALERT_GROUP,
            &deltas,
            Condition::Exists,
        )
        .await?;
    Ok(())
}

/// Writes a member (joining, or re-firing as a new instance), expiring at `ttl`.
pub async fn put_member(
    store: &dyn Store,
    org: OrgId,
    rule: &RuleKey,
    group: &str,
    member: &Member,
    ttl: i64,
) -> Result<(), RepoError> {
    let item = Item::new(
        keys::group_member(org, rule, group, &member.id()),
        entity::ALERT_GROUP_MEMBER,
        encode(member, entity::ALERT_GROUP_MEMBER)?,
    )
    .with_ttl(ttl);
    store.put(item, Condition::None).await?;
    Ok(())
}

/// Marks the member of `dedup_key` resolved at `at` if it is still `instance`, firing; whether
/// it changed.
#[allow(clippy::too_many_arguments)]
pub async fn resolve_member(
    store: &dyn Store,
    org: OrgId,
    rule: &RuleKey,
    group: &str,
    dedup_key: &str,
    instance: AlertInstanceId,
    at: DateTime<Utc>,
    ttl: i64,
) -> Result<bool, RepoError> {
    let key = keys::group_member(org, rule, group, &member_id(dedup_key));
    let Some(item) = store.get(&key).await? else {
        return Ok(false);
    };
    let mut member: Member = decode(item, entity::ALERT_GROUP_MEMBER)?;
    if member.instance_id != instance || member.status != GroupStatus::Firing {
        return Ok(false);
    }
    member.status = GroupStatus::Resolved;
    member.ends_at = Some(at);
    put_member(store, org, rule, group, &member, ttl).await?;
    Ok(true)
}

/// Every member of a group.
pub async fn members(
    store: &dyn Store,
    org: OrgId,
    rule: &RuleKey,
    group: &str,
) -> Result<Vec<Member>, RepoError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(Query {
                partition: keys::group_pk(org, rule, group),
                range: SortKeyRange::BeginsWith(keys::GROUP_MEMBER_PREFIX.to_owned()),
                limit: crate::store::MAX_QUERY_LIMIT,
                cursor,
                ..Query::default()
            })
            .await?;
        for item in page.items {
            out.push(decode(item, entity::ALERT_GROUP_MEMBER)?);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Drops members that were resolved and notified (still resolved: one that fired again since
/// stays).
pub async fn drop_resolved(
    store: &dyn Store,
    org: OrgId,
    rule: &RuleKey,
    group: &str,
    members: &[Member],
) -> Result<(), RepoError> {
    for m in members.iter().filter(|m| m.status == GroupStatus::Resolved) {
        let key = keys::group_member(org, rule, group, &m.id());
        // Only if it is still this resolved instance.
        if let Some(item) = store.get(&key).await? {
            let now: Member = decode(item, entity::ALERT_GROUP_MEMBER)?;
            if now.instance_id == m.instance_id && now.status == GroupStatus::Resolved {
                match store.delete(&key, Condition::None).await {
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}
