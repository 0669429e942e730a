//! Recoveries (`POST /notifications/channels/{id}/recover`): `ORG#<org>` / `RECOVERY#<id>`, the
//! [`Recovery`] with where its next page starts (`cursor`, opaque) and how many pages are done
//! (`pages`), under a `version` every write is conditioned on. At most one runs per channel:
//! `ORG#<org>` / `RECOVERING#<channel>` names it, created with it in one transaction and
//! deleted in the write that ends it.
//!
//! The pages run in the dispatcher (`recoverPage` messages on the dispatch queue); see
//! `docs/operator-tools.md`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::events::{from_doc, to_doc};
use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Store, StoreError, WriteOp};
use herald_core::domain::recovery::{MAX_REQUEUED, Recovery, RecoveryState};
use herald_core::domain::{ChannelId, OrgId, RecoveryId};

/// How long a recovery is kept after it started.
pub const KEPT_DAYS: i64 = 30;
/// A running recovery without progress for this long is taken as lost (its page message was
/// dead-lettered): a new recovery of the channel marks it `failed` and takes its place.
pub const STALE_AFTER: Duration = Duration::minutes(15);

/// A recovery as stored: the recovery, its paging state and the version its next write must
/// match.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub recovery: Recovery,
    /// Where the next page starts in the channel log; `None` before the first page.
    pub cursor: Option<String>,
    /// Pages handled so far: the next page message carries this number.
    pub pages: u32,
    /// Most deliveries it re-queues ([`MAX_REQUEUED`] for every recovery the API starts).
    pub limit: u32,
    pub version: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(flatten)]
    recovery: Recovery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(default)]
    pages: u32,
    #[serde(default = "max_requeued")]
    limit: u32,
}

fn max_requeued() -> u32 {
    MAX_REQUEUED
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lock {
    recovery_id: RecoveryId,
}

fn item(v: &Versioned, version: i64) -> Result<Item, StoreError> {
    let r = &v.recovery;
    let doc = to_doc(&Doc {
        recovery: r.clone(),
        cursor: v.cursor.clone(),
        pages: v.pages,
        limit: v.limit,
    })?;
    let mut item = Item::new(keys::recovery(r.org_id, r.id), entity::RECOVERY, doc)
        .with_ttl((r.started_at + Duration::days(KEPT_DAYS)).timestamp());
    item.nums
        .insert(keys::RECOVERY_VERSION_ATTR.to_owned(), version);
    Ok(item)
}

/// What [`start`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// The recovery is on record and holds its channel.
    Started,
    /// Another recovery of the channel is running.
    Running(Box<Recovery>),
}

/// Records a new recovery that re-queues at most `limit` deliveries, unless another one of its
/// channel is running. A running one that made no progress for [`STALE_AFTER`] is ended
/// `failed` and replaced.
pub async fn start(
    store: &dyn Store,
    recovery: &Recovery,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<Started, StoreError> {
    let lock_key = keys::channel_recovery(recovery.org_id, recovery.channel_id);
    let fresh = Versioned {
        recovery: recovery.clone(),
        cursor: None,
        pages: 0,
        limit,
        version: 0,
    };
    for _ in 0..3 {
        let lock = Item::new(
            lock_key.clone(),
            entity::RECOVERY_LOCK,
            to_doc(&Lock {
                recovery_id: recovery.id,
            })?,
        );
        let ops = vec![
            WriteOp::Put {
                item: item(&fresh, 0)?,
                condition: Condition::NotExists,
            },
            WriteOp::Put {
                item: lock,
                condition: Condition::NotExists,
            },
        ];
        match store.transact(ops).await {
            Ok(()) => return Ok(Started::Started),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        // The channel is held: by a running recovery, or by one that ended without freeing it.
        let holder = match store.get(&lock_key).await? {
            Some(lock) => {
                let lock: Lock = from_doc(lock.doc)?;
                get(store, recovery.org_id, lock.recovery_id).await?
            }
            // Freed meanwhile: try again.
            None => continue,
        };
        match holder {
            Some(held)
                if held.recovery.state == RecoveryState::Running
                    && now - held.recovery.updated_at < STALE_AFTER =>
            {
                return Ok(Started::Running(Box::new(held.recovery)));
            }
            Some(mut held) if held.recovery.state == RecoveryState::Running => {
                held.recovery.error = Some(format!(
                    "no progress for {} minutes; replaced by recovery {}",
                    STALE_AFTER.num_minutes(),
                    recovery.id
                ));
                held.recovery.finish(RecoveryState::Failed, now);
                match save(store, &held).await {
                    Ok(_) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {
                store.delete(&lock_key, Condition::None).await?;
            }
        }
    }
    Err(StoreError::Conflict)
}

pub async fn get(
    store: &dyn Store,
    org: OrgId,
    id: RecoveryId,
) -> Result<Option<Versioned>, StoreError> {
    let Some(item) = store.get(&keys::recovery(org, id)).await? else {
        return Ok(None);
    };
    let version = item
        .nums
        .get(keys::RECOVERY_VERSION_ATTR)
        .copied()
        .unwrap_or(0);
    let doc: Doc = from_doc(item.doc)?;
    Ok(Some(Versioned {
        recovery: doc.recovery,
        cursor: doc.cursor,
        pages: doc.pages,
        limit: doc.limit,
        version,
    }))
}

/// Saves `v` if its stored version is still `v.version`; `Conflict` otherwise (another copy of
/// the page saved first). A recovery that ended frees its channel in the same transaction.
/// Answers the new version.
pub async fn save(store: &dyn Store, v: &Versioned) -> Result<i64, StoreError> {
    let next = v.version + 1;
    let item = item(v, next)?;
    let condition = Condition::NumEquals {
        attr: keys::RECOVERY_VERSION_ATTR.to_owned(),
        value: v.version,
    };
    if v.recovery.state == RecoveryState::Running {
        store.put(item, condition).await?;
    } else {
        store
            .transact(vec![
                WriteOp::Put { item, condition },
                WriteOp::Delete {
                    key: keys::channel_recovery(v.recovery.org_id, v.recovery.channel_id),
                    condition: Condition::None,
                },
            ])
            .await?;
    }
    Ok(next)
}

/// The id of the recovery running on `channel`, if one holds it.
pub async fn running_on(
    store: &dyn Store,
    org: OrgId,
    channel: ChannelId,
) -> Result<Option<RecoveryId>, StoreError> {
    match store.get(&keys::channel_recovery(org, channel)).await? {
        Some(lock) => Ok(Some(from_doc::<Lock>(lock.doc)?.recovery_id)),
        None => Ok(None),
    }
}
