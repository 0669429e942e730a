//! Users' in-app feeds: items, exact badge counters and the per-user sequence number.
//!
//! # Layout (see `docs/dynamodb.md`)
//! - items: `ORG#<org>#USER#<user>#FEED` / `ITEM#<uuidv7>`, read descending for newest first;
//!   GSI1 `ORG#<org>#USER#<user>#FEEDSEQ` / `SEQ#<seq>#<item>` orders them by last change, which
//!   is what `since_seq` (catch-up after a missed push) reads;
//! - state: `ORG#<org>#USER#<user>#FEED` / `STATE`, integer attributes `unread`, `unseen`, `seq`.
//!
//! # Exactness
//! Every change is one transaction: the item `Put` conditional on the item's `version` (what
//! we read), plus an `Add` to the state's counters conditional on the state's `seq` (what we
//! read). Either both commit or neither, and a concurrent change to the same user makes one of
//! them retry on fresh values, so the counters always equal a recount and each change adds
//! exactly one to `seq` — a client that sees a jump in `seq` knows it missed a message. A mark
//! that changes nothing writes nothing. Contention is per user (one person's tabs and devices),
//! so bounded retries with jitter are enough; past them the caller gets
//! [`RepoError::Contended`].
//!
//! Counters count non-archived items: `unread` those without `readAt`, `unseen` those without
//! `seenAt`. Reading an item also marks it seen.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::{RepoError, decode, encode};
use crate::store::keys::{self, entity};
use crate::store::{
    Condition, Cursor, Index, Item, Key, Query, SortKeyRange, Store, StoreError, WriteOp,
};
use herald_core::domain::FeedItemId;
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::{Badge, FeedItem, NewFeedItem};

/// Tries of one change before giving up with [`RepoError::Contended`].
const MAX_TRIES: u32 = 40;
/// Items changed per transaction by read-all and seen-all (plus the state: 26 writes of 100).
pub const BULK_BATCH: usize = 25;
/// Items a filtered list examines per request at most; the cursor resumes after them.
pub const MAX_SCAN: usize = 1000;
/// The page size `list` reads from the store while filtering.
const SCAN_PAGE: usize = 100;

const VERSION: &str = "version";
const UNREAD: &str = "unread";
const UNSEEN: &str = "unseen";
const SEQ: &str = "seq";

/// Which items a list shows, by read state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFilter {
    #[default]
    All,
    Unread,
    Read,
}

/// A list request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilter {
    pub status: ReadFilter,
    /// `false` (default): non-archived items only; `true`: archived items only.
    pub archived: bool,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// A page of a feed with the state it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    pub next: Option<Cursor>,
    pub badge: Badge,
    pub seq: u64,
}

/// One committed change: the item as it is now (none for bulk changes), and the user's badge
/// and seq right after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedChange {
    pub item: Option<FeedItem>,
    pub badge: Badge,
    pub seq: u64,
}

/// The result of [`Feeds::append`].
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub item: FeedItem,
    pub badge: Badge,
    pub seq: u64,
    /// `false` when an item with this id (the same delivery) was already in the feed: nothing
    /// changed and nothing should be pushed.
    pub created: bool,
}

/// A state change of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Read,
    Unread,
    Seen,
    Archive,
}

impl Mark {
    /// The item after the mark at `now`.
    fn apply(self, item: &FeedItem, now: DateTime<Utc>) -> FeedItem {
        let mut next = item.clone();
        match self {
            Self::Read => {
                next.read_at = next.read_at.or(Some(now));
                next.seen_at = next.seen_at.or(Some(now));
            }
            Self::Unread => next.read_at = None,
            Self::Seen => next.seen_at = next.seen_at.or(Some(now)),
            Self::Archive => next.archived_at = next.archived_at.or(Some(now)),
        }
        next
    }
}

/// The state as read: counters, seq, and whether the item exists yet.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    badge: Badge,
    seq: u64,
    exists: bool,
}

impl State {
    fn condition(&self) -> Condition {
        if self.exists {
            Condition::NumEquals {
                attr: SEQ.into(),
                value: to_i64(self.seq),
            }
        } else {
            Condition::NotExists
        }
    }

    /// The badge after adding `(unread, unseen)`.
    fn after(&self, (du, ds): (i64, i64)) -> Badge {
        Badge {
            unread: self.badge.unread.saturating_add_signed(du),
            unseen: self.badge.unseen.saturating_add_signed(ds),
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The feed repository.
#[derive(Debug, Clone, Copy)]
pub struct Feeds<'a> {
    store: &'a dyn Store,
}

impl<'a> Feeds<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    async fn state(&self, org: &OrgId, user: &UserId) -> Result<State, RepoError> {
        Ok(match self.store.get(&keys::feed_state(org, user)).await? {
            None => State::default(),
            Some(item) => State {
                badge: Badge {
                    unread: to_u64(item.nums.get(UNREAD).copied().unwrap_or(0)),
                    unseen: to_u64(item.nums.get(UNSEEN).copied().unwrap_or(0)),
                },
                seq: to_u64(item.nums.get(SEQ).copied().unwrap_or(0)),
                exists: true,
            },
        })
    }

    /// The user's badge and seq.
    pub async fn badge(&self, org: &OrgId, user: &UserId) -> Result<(Badge, u64), RepoError> {
        let s = self.state(org, user).await?;
        Ok((s.badge, s.seq))
    }

    /// The item and its version.
    async fn item(
        &self,
        org: &OrgId,
        user: &UserId,
        id: &FeedItemId,
    ) -> Result<Option<(FeedItem, i64)>, RepoError> {
        match self.store.get(&keys::feed_item(org, user, id)).await? {
            None => Ok(None),
            Some(item) => {
                let version = item.nums.get(VERSION).copied().unwrap_or(0);
                Ok(Some((decode(item, entity::FEED_ITEM)?, version)))
            }
        }
    }

    pub async fn get(
        &self,
        org: &OrgId,
        user: &UserId,
        id: &FeedItemId,
    ) -> Result<Option<FeedItem>, RepoError> {
        Ok(self.item(org, user, id).await?.map(|(i, _)| i))
    }

    fn item_put(
        org: &OrgId,
        user: &UserId,
        item: &FeedItem,
        version: i64,
        condition: Condition,
    ) -> Result<WriteOp, RepoError> {
        let mut stored = Item::new(
            keys::feed_item(org, user, &item.id),
            entity::FEED_ITEM,
            encode(item, entity::FEED_ITEM)?,
        )
        .with_gsi1(keys::feed_item_change(org, user, item.seq, &item.id));
        stored.nums.insert(VERSION.into(), version);
        Ok(WriteOp::Put {
            item: stored,
            condition,
        })
    }

    fn state_add(org: &OrgId, user: &UserId, state: &State, (du, ds): (i64, i64)) -> WriteOp {
        let mut deltas = BTreeMap::from([(SEQ.to_owned(), 1)]);
        if du != 0 {
            deltas.insert(UNREAD.into(), du);
        }
        if ds != 0 {
            deltas.insert(UNSEEN.into(), ds);
        }
        WriteOp::Add {
            key: keys::feed_state(org, user),
            entity_type: entity::FEED_STATE.into(),
            deltas,
            condition: state.condition(),
        }
    }

    /// Adds an item to the top of `user`'s feed (unread, unseen) — what the dispatcher calls
    /// for an `in_app` delivery, before pushing `FeedMessage::item_new(item, badge, seq)`.
    ///
    /// Idempotent on `new.delivery_id`: appending the same delivery again changes nothing and
    /// returns the stored item with `created: false`.
    pub async fn append(
        &self,
        org: &OrgId,
        user: &UserId,
        new: NewFeedItem,
        now: DateTime<Utc>,
    ) -> Result<Appended, RepoError> {
        let id = new.delivery_id.map(FeedItemId::from).unwrap_or_default();
        for attempt in 0..MAX_TRIES {
            let state = self.state(org, user).await?;
            let seq = state.seq + 1;
            let item = FeedItem {
                id,
                title: new.title.clone(),
                body: new.body.clone(),
                url: new.url.clone(),
                event_type: new.event_type.clone(),
                data: new.data.clone(),
                created_at: now,
                read_at: None,
                seen_at: None,
                archived_at: None,
                seq,
            };
            let delta = item.badge_contribution();
            let ops = vec![
                Self::item_put(org, user, &item, 1, Condition::NotExists)?,
                Self::state_add(org, user, &state, delta),
            ];
            match self.store.transact(ops).await {
                Ok(()) => {
                    return Ok(Appended {
                        item,
                        badge: state.after(delta),
                        seq,
                        created: true,
                    });
                }
                Err(StoreError::Conflict) => {
                    if let Some(existing) = self.get(org, user, &id).await? {
                        let state = self.state(org, user).await?;
                        return Ok(Appended {
                            item: existing,
                            badge: state.badge,
                            seq: state.seq,
                            created: false,
                        });
                    }
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Contended)
    }

    /// Applies `mark` to one item. `Ok(None)` when it changed nothing (already in that state):
    /// no write, no seq. [`RepoError::NotFound`] when the item is not in this user's feed.
    pub async fn mark(
        &self,
        org: &OrgId,
        user: &UserId,
        id: &FeedItemId,
        mark: Mark,
        now: DateTime<Utc>,
    ) -> Result<Option<FeedChange>, RepoError> {
        for attempt in 0..MAX_TRIES {
            // State first, then the item: a change committed in between moves `seq`, and our
            // transaction's condition on it fails instead of writing over it.
            let state = self.state(org, user).await?;
            let (item, version) = self.item(org, user, id).await?.ok_or(RepoError::NotFound)?;
            let mut next = mark.apply(&item, now);
            if next == item {
                return Ok(None);
            }
            next.seq = state.seq + 1;
            let (bu, bs) = item.badge_contribution();
            let (au, as_) = next.badge_contribution();
            let delta = (au - bu, as_ - bs);
            let ops = vec![
                Self::item_put(
                    org,
                    user,
                    &next,
                    version + 1,
                    Condition::NumEquals {
                        attr: VERSION.into(),
                        value: version,
                    },
                )?,
                Self::state_add(org, user, &state, delta),
            ];
            match self.store.transact(ops).await {
                Ok(()) => {
                    return Ok(Some(FeedChange {
                        badge: state.after(delta),
                        seq: next.seq,
                        item: Some(next),
                    }));
                }
                Err(StoreError::Conflict) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Contended)
    }

    /// Marks every non-archived item read (`Mark::Read`) or seen (`Mark::Seen`), in
    /// transactions of at most [`BULK_BATCH`] items, each its own change with its own seq. One
    /// [`FeedChange`] (without item) per committed batch, oldest first; empty when nothing
    /// needed marking. Scans newest first and stops as soon as the counter reaches zero, so
    /// the usual case (a few recent unread items) reads one page.
    pub async fn mark_all(
        &self,
        org: &OrgId,
        user: &UserId,
        mark: Mark,
        now: DateTime<Utc>,
    ) -> Result<Vec<FeedChange>, RepoError> {
        let counter = |b: &Badge| {
            if mark == Mark::Read {
                b.unread
            } else {
                b.unseen
            }
        };
        let mut changes = Vec::new();
        let mut tries = 0;
        'restart: loop {
            let mut state = self.state(org, user).await?;
            let mut cursor = None;
            while counter(&state.badge) > 0 {
                let page = self
                    .store
                    .query(self.items_query(org, user, SCAN_PAGE, cursor.take()))
                    .await?;
                let mut pending = Vec::new();
                for stored in page.items {
                    let version = stored.nums.get(VERSION).copied().unwrap_or(0);
                    let item: FeedItem = decode(stored, entity::FEED_ITEM)?;
                    let next = mark.apply(&item, now);
                    if !item.is_archived() && next != item {
                        pending.push((item, next, version));
                    }
                }
                for chunk in pending.chunks(BULK_BATCH) {
                    let seq = state.seq + 1;
                    let mut delta = (0, 0);
                    let mut ops = Vec::with_capacity(chunk.len() + 1);
                    for (item, next, version) in chunk {
                        let next = FeedItem {
                            seq,
                            ..next.clone()
                        };
                        let (bu, bs) = item.badge_contribution();
                        let (au, as_) = next.badge_contribution();
                        delta = (delta.0 + au - bu, delta.1 + as_ - bs);
                        ops.push(Self::item_put(
                            org,
                            user,
                            &next,
                            version + 1,
                            Condition::NumEquals {
                                attr: VERSION.into(),
                                value: *version,
                            },
                        )?);
                    }
                    ops.push(Self::state_add(org, user, &state, delta));
                    match self.store.transact(ops).await {
                        Ok(()) => {
                            state = State {
                                badge: state.after(delta),
                                seq,
                                exists: true,
                            };
                            changes.push(FeedChange {
                                item: None,
                                badge: state.badge,
                                seq,
                            });
                        }
                        Err(StoreError::Conflict) if tries < MAX_TRIES => {
                            // Something else changed this user's feed: start over from fresh
                            // state. What committed so far stays committed and is skipped.
                            backoff(tries).await;
                            tries += 1;
                            continue 'restart;
                        }
                        Err(StoreError::Conflict) => return Err(RepoError::Contended),
                        Err(e) => return Err(e.into()),
                    }
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            return Ok(changes);
        }
    }

    fn items_query(
        &self,
        org: &OrgId,
        user: &UserId,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Query {
        Query {
            partition: keys::feed_pk(org, user),
            range: SortKeyRange::BeginsWith(keys::FEED_ITEM_PREFIX.into()),
            descending: true,
            limit,
            cursor,
            ..Query::default()
        }
    }

    fn check_cursor(cursor: &Cursor, partition: &str, prefix: &str) -> Result<(), RepoError> {
        let (key, gsi) = cursor.decode()?;
        let ok = match gsi {
            None => key.pk == partition && key.sk.starts_with(prefix),
            Some(g) => g.pk == partition && g.sk.starts_with(prefix),
        };
        if ok {
            Ok(())
        } else {
            Err(RepoError::BadCursor)
        }
    }

    /// A page of the feed, newest first, filtered. Examines at most [`MAX_SCAN`] items per call:
    /// a page can hold fewer than `limit` items and still have a `next` cursor.
    pub async fn list(
        &self,
        org: &OrgId,
        user: &UserId,
        filter: ListFilter,
    ) -> Result<FeedPage, RepoError> {
        if let Some(c) = &filter.cursor {
            Self::check_cursor(c, &keys::feed_pk(org, user), keys::FEED_ITEM_PREFIX)?;
        }
        let state = self.state(org, user).await?;
        let limit = filter.limit.clamp(1, super::MAX_PAGE);
        let keep = |i: &FeedItem| {
            i.is_archived() == filter.archived
                && match filter.status {
                    ReadFilter::All => true,
                    ReadFilter::Unread => !i.is_read(),
                    ReadFilter::Read => i.is_read(),
                }
        };
        let mut items = Vec::new();
        let mut cursor = filter.cursor;
        let mut scanned = 0;
        loop {
            let page = self
                .store
                .query(self.items_query(
                    org,
                    user,
                    SCAN_PAGE.min(MAX_SCAN - scanned),
                    cursor.take(),
                ))
                .await?;
            let exhausted = page.next.is_none();
            let count = page.items.len();
            for (n, stored) in page.items.into_iter().enumerate() {
                scanned += 1;
                let last_key = Cursor::after(&stored, Index::Primary);
                let item: FeedItem = decode(stored, entity::FEED_ITEM)?;
                if keep(&item) {
                    items.push(item);
                }
                let more_in_page = n + 1 < count;
                if items.len() == limit || scanned == MAX_SCAN {
                    let next = if more_in_page || !exhausted {
                        Some(last_key)
                    } else {
                        None
                    };
                    return Ok(FeedPage {
                        items,
                        next,
                        badge: state.badge,
                        seq: state.seq,
                    });
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => {
                    return Ok(FeedPage {
                        items,
                        next: None,
                        badge: state.badge,
                        seq: state.seq,
                    });
                }
            }
        }
    }

    /// Items changed after `seq` (new, read, unread, seen, archived), oldest change first: what
    /// a client that missed pushes fetches. On DynamoDB this reads GSI1, which trails writes by a
    /// moment; the pushed messages carry the items themselves.
    pub async fn since_seq(
        &self,
        org: &OrgId,
        user: &UserId,
        seq: u64,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<FeedPage, RepoError> {
        let partition = keys::feed_changes(org, user);
        if let Some(c) = &cursor {
            Self::check_cursor(c, &partition, keys::FEED_SEQ_PREFIX)?;
        }
        let state = self.state(org, user).await?;
        let from = format!("{}{:020}", keys::FEED_SEQ_PREFIX, seq.saturating_add(1));
        // `~` sorts after every digit and `#`: the end of the range.
        let to = format!("{}~", keys::FEED_SEQ_PREFIX);
        let page = self
            .store
            .query(Query {
                index: Index::Gsi1,
                partition,
                range: SortKeyRange::Between(from, to),
                descending: false,
                limit: limit.clamp(1, super::MAX_PAGE),
                cursor,
            })
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|i| decode(i, entity::FEED_ITEM))
            .collect::<Result<Vec<FeedItem>, _>>()?;
        Ok(FeedPage {
            items,
            next: page.next,
            badge: state.badge,
            seq: state.seq,
        })
    }

    /// Erases the user's whole feed: items and state (when the user is deleted). Open
    /// connections are left to expire.
    pub async fn delete_user_feed(&self, org: &OrgId, user: &UserId) -> Result<u64, RepoError> {
        let mut deleted = 0;
        loop {
            let page = self
                .store
                .query(Query {
                    partition: keys::feed_pk(org, user),
                    limit: BULK_BATCH * 4,
                    ..Query::default()
                })
                .await?;
            if page.items.is_empty() {
                return Ok(deleted);
            }
            let keys: Vec<Key> = page.items.into_iter().map(|i| i.key).collect();
            for chunk in keys.chunks(BULK_BATCH) {
                let ops = chunk
                    .iter()
                    .map(|k| WriteOp::Delete {
                        key: k.clone(),
                        condition: Condition::None,
                    })
                    .collect();
                self.store.transact(ops).await?;
                deleted += chunk
                    .iter()
                    .filter(|k| k.sk.starts_with(keys::FEED_ITEM_PREFIX))
                    .count() as u64;
            }
        }
    }
}

/// Waits before retry `attempt`: 2–20 ms, growing, with jitter so contenders spread out.
async fn backoff(attempt: u32) {
    let cap = 2 + u64::from(attempt.min(9)) * 2;
    let ms = rand::rng().random_range(1..=cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::store::embedded::Embedded;

    fn new_item(title: &str) -> NewFeedItem {
        NewFeedItem {
            title: title.into(),
            ..NewFeedItem::default()
        }
    }

    fn ids() -> (OrgId, UserId) {
        (OrgId::new(), UserId::parse("alice@example.com").unwrap())
    }

    /// The badge by counting items, to compare with the counters.
    async fn recount(feeds: &Feeds<'_>, org: &OrgId, user: &UserId) -> Badge {
        let mut badge = Badge::default();
        let mut cursor = None;
        loop {
            let page = feeds
                .store
                .query(feeds.items_query(org, user, 100, cursor))
                .await
                .unwrap();
            for i in page.items {
                let item: FeedItem = decode(i, "feedItem").unwrap();
                let (u, s) = item.badge_contribution();
                badge.unread += to_u64(u);
                badge.unseen += to_u64(s);
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return badge,
            }
        }
    }

    #[tokio::test]
    async fn appended_items_list_newest_first_and_count_as_unread_and_unseen() {
        let store = Embedded::in_memory().unwrap();
        let feeds = Feeds::new(&store);
        let (org, user) = ids();
        for n in 1..=3 {
            let a = feeds
                .append(&org, &user, new_item(&format!("n{n}")), Utc::now())
                .await
                .unwrap();
            assert_eq!(a.seq, n);
            assert_eq!(
                a.badge,
                Badge {
                    unread: n,
                    unseen: n
                }
            );
        }
        let page = feeds
            .list(
                &org,
                &user,
                ListFilter {
                    limit: 2,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            page.items
                .iter()
                .map(|i| i.title.as_str())
                .collect::<Vec<_>>(),
            ["n3", "n2"]
        );
        assert_eq!(
            page.badge,
            Badge {
                unread: 3,
                unseen: 3
            }
        );
        let rest = feeds
            .list(
                &org,
                &user,
                ListFilter {
                    limit: 2,
                    cursor: page.next,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            rest.items
                .iter()
                .map(|i| i.title.as_str())
                .collect::<Vec<_>>(),
            ["n1"]
        );
        assert!(rest.next.is_none());
        // Another user's feed is empty.
        let bob = UserId::parse("bob").unwrap();
        assert!(
            feeds
                .list(
                    &org,
                    &bob,
                    ListFilter {
                        limit: 10,
                        ..ListFilter::default()
                    }
                )
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[tokio::test]
    async fn appending_the_same_delivery_twice_adds_one_item() {
        let store = Embedded::in_memory().unwrap();
        let feeds = Feeds::new(&store);
        let (org, user) = ids();
        let item = NewFeedItem {
            delivery_id: Some(herald_core::domain::DeliveryId::new()),
            ..new_item("once")
        };
        assert!(
            feeds
                .append(&org, &user, item.clone(), Utc::now())
                .await
                .unwrap()
                .created
        );
        let again = feeds.append(&org, &user, item, Utc::now()).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.badge.unread, 1);
        assert_eq!(again.seq, 1);
    }

    #[tokio::test]
    async fn marks_change_counters_once_and_a_mark_that_changes_nothing_writes_nothing() {
        let store = Embedded::in_memory().unwrap();
        let feeds = Feeds::new(&store);
        let (org, user) = ids();
        let a = feeds
            .append(&org, &user, new_item("a"), Utc::now())
            .await
            .unwrap()
            .item;
        let _b = feeds
            .append(&org, &user, new_item("b"), Utc::now())
            .await
            .unwrap()
            .item;
        let read = feeds
            .mark(&org, &user, &a.id, Mark::Read, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            read.badge,
            Badge {
                unread: 1,
                unseen: 1
            }
        );
        assert_eq!(read.seq, 3);
        assert!(read.item.as_ref().unwrap().is_seen(), "reading also sees");
        assert_eq!(
            feeds
                .mark(&org, &user, &a.id, Mark::Read, Utc::now())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            feeds
                .mark(&org, &user, &a.id, Mark::Seen, Utc::now())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            feeds.badge(&org, &user).await.unwrap(),
            (
                Badge {
                    unread: 1,
                    unseen: 1
                },
                3
            )
        );
        let unread = feeds
            .mark(&org, &user, &a.id, Mark::Unread, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            unread.badge,
            Badge {
                unread: 2,
                unseen: 1
            }
        );
        let archived = feeds
            .mark(&org, &user, &a.id, Mark::Archive, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            archived.badge,
            Badge {
                unread: 1,
                unseen: 1
            }
        );
        let missing = feeds
            .mark(&org, &user, &FeedItemId::new(), Mark::Read, Utc::now())
            .await;
        assert!(matches!(missing, Err(RepoError::NotFound)));
        // Archived items leave the default list and appear with `archived`.
        let list = feeds
            .list(
                &org,
                &user,
                ListFilter {
                    limit: 10,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            list.items
                .iter()
                .map(|i| i.title.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        let arch = feeds
            .list(
                &org,
                &user,
                ListFilter {
                    limit: 10,
                    archived: true,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            arch.items
                .iter()
                .map(|i| i.title.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(recount(&feeds, &org, &user).await, list.badge);
    }

    #[tokio::test]
    async fn read_all_marks_every_item_in_batches_with_one_seq_each() {
        let store = Embedded::in_memory().unwrap();
        let feeds = Feeds::new(&store);
        let (org, user) = ids();
        for n in 0..60 {
            feeds
                .append(&org, &user, new_item(&format!("n{n}")), Utc::now())
                .await
                .unwrap();
        }
        let changes = feeds
            .mark_all(&org, &user, Mark::Read, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [61, 62, 63]
        );
        assert_eq!(changes.last().unwrap().badge, Badge::default());
        assert_eq!(
            feeds.badge(&org, &user).await.unwrap(),
            (Badge::default(), 63)
        );
        assert!(
            feeds
                .mark_all(&org, &user, Mark::Read, Utc::now())
                .await
                .unwrap()
                .is_empty()
        );
        let unread = feeds
            .list(
                &org,
                &user,
                ListFilter {
                    limit: 100,
                    status: ReadFilter::Unread,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        assert!(unread.items.is_empty());
    }

    #[tokio::test]
    async fn since_seq_returns_what_changed_after_it_in_order() {
        let store = Embedded::in_memory().unwrap();
        let feeds = Feeds::new(&store);
        let (org, user) = ids();
        let a = feeds
            .append(&org, &user, new_item("a"), Utc::now())
            .await
            .unwrap()
            .item;
        feeds
            .append(&org, &user, new_item("b"), Utc::now())
            .await
            .unwrap();
        feeds
            .append(&org, &user, new_item("c"), Utc::now())
            .await
            .unwrap();
        feeds
            .mark(&org, &user, &a.id, Mark::Read, Utc::now())
            .await
            .unwrap();
        let page = feeds.since_seq(&org, &user, 2, 50, None).await.unwrap();
        assert_eq!(
            page.items
                .iter()
                .map(|i| (i.title.as_str(), i.seq))
                .collect::<Vec<_>>(),
            [("c", 3), ("a", 4)]
        );
        assert_eq!(page.seq, 4);
        assert!(
            feeds
                .since_seq(&org, &user, 4, 50, None)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[tokio::test]
    async fn concurrent_marks_from_many_devices_keep_the_counts_exact() {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().unwrap());
        let (org, user) = ids();
        let mut items = Vec::new();
        for n in 0..10 {
            items.push(
                Feeds::new(store.as_ref())
                    .append(&org, &user, new_item(&format!("n{n}")), Utc::now())
                    .await
                    .unwrap()
                    .item
                    .id,
            );
        }
        let mut tasks = Vec::new();
        for device in 0..8u32 {
            let (store, org, user, items) = (store.clone(), org, user.clone(), items.clone());
            tasks.push(tokio::spawn(async move {
                let feeds = Feeds::new(store.as_ref());
                let mut committed = 0u64;
                for n in 0..30u32 {
                    let id = &items[((device * 7 + n * 3) % 10) as usize];
                    let mark = [Mark::Read, Mark::Unread, Mark::Seen, Mark::Read]
                        [((device + n) % 4) as usize];
                    committed += u64::from(
                        feeds
                            .mark(&org, &user, id, mark, Utc::now())
                            .await
                            .unwrap()
                            .is_some(),
                    );
                }
                if device == 3 {
                    committed += feeds
                        .mark_all(&org, &user, Mark::Read, Utc::now())
                        .await
                        .unwrap()
                        .len() as u64;
                }
                if device == 5 {
                    feeds
                        .append(&org, &user, new_item("late"), Utc::now())
                        .await
                        .unwrap();
                    committed += 1;
                }
                committed
            }));
        }
        let mut committed = 10;
        for t in tasks {
            committed += t.await.unwrap();
        }
        let feeds = Feeds::new(store.as_ref());
        let (badge, seq) = feeds.badge(&org, &user).await.unwrap();
        assert_eq!(badge, recount(&feeds, &org, &user).await);
        // Every committed change is exactly one seq: no change lost, none counted twice.
        assert_eq!(seq, committed);
        assert!(committed > 30, "the hammer changed things: {committed}");
    }

    #[tokio::test]
    async fn deleting_a_users_feed_erases_items_and_counts() {
        let store = Embedded::in_memory().unwrap();
        let feeds = Feeds::new(&store);
        let (org, user) = ids();
        for n in 0..30 {
            feeds
                .append(&org, &user, new_item(&format!("n{n}")), Utc::now())
                .await
                .unwrap();
        }
        assert_eq!(feeds.delete_user_feed(&org, &user).await.unwrap(), 30);
        assert_eq!(
            feeds.badge(&org, &user).await.unwrap(),
            (Badge::default(), 0)
        );
        assert!(
            feeds
                .list(
                    &org,
                    &user,
                    ListFilter {
                        limit: 10,
                        ..ListFilter::default()
                    }
                )
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}
