//! Digests of digest rules (docs/digests.md): per (rule, channel, user, digest key) one head
//! item (`ORG#<org>#DIGEST#<rule>#<channel>#<digest>` / `HEAD`) naming the batch open now, and
//! beside it one item per event of each batch (`I#<seq>#<receivedAt>#<eventId>`), in no index.
//!
//! Items are rows of their own, not a list in the head: a batch of any size stays far from
//! DynamoDB's 400 KB item limit, and a join writes one small item instead of rewriting a
//! growing one.
//!
//! Exactly one message per batch:
//! - The head's `turn` says which batch is open: `2·seq + 1` while batch `seq` takes events,
//!   `2·seq + 2` once it is closed. Opening, joining and closing are all conditional on it.
//! - A join is one transaction: the item (created only if absent, so an event joins a batch
//!   once) and `ADD n 1` on the head, conditional on the batch still being open. A join either
//!   happened before the close, and the flush that closed the batch reads its item, or it fails
//!   and the event goes to the next batch: never in a sent digest, never lost.
//! - The flush closes the batch (conditional on its turn), then reads the items; the delivery's
//!   id hashes (org, rule, channel, digest, seq), so a flush handled twice makes one delivery.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Key, Query, SortKeyRange, Store, StoreError, WriteOp};
use herald_core::domain::digest::DigestItem;
use herald_core::domain::event::Recipient;
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey, UserId};

use super::{RepoError, decode, encode};

/// The name of one user's digest under one key: SHA-256 of (user, key), in hex.
pub fn digest_hash(user: &UserId, key: &str) -> String {
    let mut hash = Sha256::new();
    for part in [user.as_str(), key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// The `turn` of batch `seq` while it is open.
pub fn open_turn(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX / 2) * 2 + 1
}

/// The `turn` of batch `seq` once it is closed.
pub fn closed_turn(seq: u64) -> i64 {
    open_turn(seq) + 1
}

/// Which digest: the head's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRef<'a> {
    pub org: OrgId,
    pub rule: &'a RuleKey,
    pub channel: ChannelId,
    /// [`digest_hash`] of the user and key.
    pub digest: &'a str,
}

impl DigestRef<'_> {
    fn head(&self) -> Key {
        keys::digest_head(self.org, self.rule, self.channel, self.digest)
    }

    fn item(&self, seq: u64, item: &DigestItem) -> Key {
        keys::digest_item(
            self.org,
            self.rule,
            self.channel,
            self.digest,
            seq,
            item.received_at,
            item.event_id.as_str(),
        )
    }
}

/// A digest's head: the batch open now (or the last one closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub rule_key: RuleKey,
    pub channel_id: ChannelId,
    /// [`digest_hash`] of the user and `key`.
    pub digest: String,
    /// The rendered digest key (empty: one digest per user).
    pub key: String,
    /// The recipient as the batch's first event named them: the contact points it carried.
    pub recipient: Recipient,
    /// The batch's number: part of its delivery's id.
    pub seq: u64,
    /// Whether batch `seq` still takes events.
    pub open: bool,
    pub opened_at: DateTime<Utc>,
    /// When the batch is flushed (sooner at `maxEvents`).
    pub closes_at: DateTime<Utc>,
    /// The event that opened the batch (its delivery's `eventId`).
    pub first_event_id: EventId,
}

impl Head {
    /// The head's `turn` ([`open_turn`], [`closed_turn`]).
    pub fn turn(&self) -> i64 {
        if self.open {
            open_turn(self.seq)
        } else {
            closed_turn(self.seq)
        }
    }
}

/// A head as read, with the events its open batch counted so far (`ADD`s; the flush counts
/// the items themselves).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadRecord {
    pub head: Head,
    pub joined: i64,
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The event is in the batch.
    Joined,
    /// The event was already in this batch (a duplicate event or a message received again).
    AlreadyIn,
    /// The batch closed meanwhile: read the head again and join the next one.
    Closed,
}

/// The head of `digest`.
pub async fn get(store: &dyn Store, at: &DigestRef<'_>) -> Result<Option<HeadRecord>, RepoError> {
    let Some(item) = store.get(&at.head()).await? else {
        return Ok(None);
    };
    let joined = item.nums.get(keys::DIGEST_COUNT_ATTR).copied().unwrap_or(0);
    Ok(Some(HeadRecord {
        head: decode(item, entity::DIGEST)?,
        joined,
    }))
}

/// Writes `head` if the head is still as read (`read`: the turn read, `None`: if absent);
/// [`StoreError::Conflict`] otherwise. Opening a batch resets its count; the head expires at
/// `ttl`.
pub async fn put(
    store: &dyn Store,
    at: &DigestRef<'_>,
    head: &Head,
    read: Option<i64>,
    ttl: i64,
) -> Result<(), RepoError> {
    let mut item =
        Item::new(at.head(), entity::DIGEST, encode(head, entity::DIGEST)?).with_ttl(ttl);
    item.nums
        .insert(keys::DIGEST_TURN_ATTR.to_owned(), head.turn());
    let condition = match read {
        None => Condition::NotExists,
        Some(turn) => Condition::NumEquals {
            attr: keys::DIGEST_TURN_ATTR.to_owned(),
            value: turn,
        },
    };
    store.put(item, condition).await?;
    Ok(())
}

/// Puts `item` in batch `seq` if that batch is still open, counting it on the head, in one
/// transaction.
pub async fn join(
    store: &dyn Store,
    at: &DigestRef<'_>,
    seq: u64,
    item: &DigestItem,
    ttl: i64,
) -> Result<Joined, RepoError> {
    let item_key = at.item(seq, item);
    let stored = Item::new(
        item_key.clone(),
        entity::DIGEST_ITEM,
        encode(item, entity::DIGEST_ITEM)?,
    )
    .with_ttl(ttl);
    let ops = vec![
        WriteOp::Put {
            item: stored,
            condition: Condition::NotExists,
        },
        WriteOp::Add {
            key: at.head(),
            entity_type: entity::DIGEST.to_owned(),
            deltas: BTreeMap::from([(keys::DIGEST_COUNT_ATTR.to_owned(), 1)]),
            condition: Condition::NumEquals {
                attr: keys::DIGEST_TURN_ATTR.to_owned(),
                value: open_turn(seq),
            },
        },
    ];
    match store.transact(ops).await {
        Ok(()) => Ok(Joined::Joined),
        // Either the item exists (this event is in already) or the batch closed.
        Err(StoreError::Conflict) => {
            if store.get(&item_key).await?.is_some() {
                Ok(Joined::AlreadyIn)
            } else {
                Ok(Joined::Closed)
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Batch `seq`'s items as a flush reads them: how many there are, and the first `listed`
/// (oldest first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub count: u32,
    pub items: Vec<DigestItem>,
}

/// Reads batch `seq`: every item counted, the first `listed` kept.
pub async fn batch(
    store: &dyn Store,
    at: &DigestRef<'_>,
    seq: u64,
    listed: usize,
) -> Result<Batch, RepoError> {
    let mut out = Batch::default();
    let mut cursor = None;
    loop {
        let page = store
            .query(Query {
                partition: keys::digest_pk(at.org, at.rule, at.channel, at.digest),
                range: SortKeyRange::BeginsWith(keys::digest_items_prefix(seq)),
                limit: crate::store::MAX_QUERY_LIMIT,
                cursor,
                ..Query::default()
            })
            .await?;
        for item in page.items {
            out.count = out.count.saturating_add(1);
            if out.items.len() < listed {
                out.items.push(decode(item, entity::DIGEST_ITEM)?);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_tell_open_from_closed_batches() {
        assert_eq!((open_turn(0), closed_turn(0)), (1, 2));
        assert_eq!((open_turn(3), closed_turn(3)), (7, 8));
        assert_ne!(
            digest_hash(&UserId::parse("a").expect("id"), "b"),
            digest_hash(&UserId::parse("ab").expect("id"), "")
        );
    }
}
