//! Channels: `ORG#<org>` / `CHANNEL#<id>`, the whole [`Channel`] (secrets included) as the item's
//! document. The API shows it redacted.
//!
//! Deleting a channel must not leave a rule pointing at nothing. Rule writes and channel deletes
//! are serialised through the org's rules version (`ORG#<org>` / `RULESVERSION`): every rule
//! write checks its channels exist and bumps the version in one transaction; a channel delete
//! reads the version, finds no rule referencing the channel, then deletes the channel in a
//! transaction that checks the version is unchanged. Whichever commits second fails its
//! condition, so neither order leaves a dangling reference.
//!
//! Every other channel write is a read-modify-write ([`Channels::modify`]) conditioned on the
//! item's `version`: a PATCH, a secret rotation and the dispatcher marking a channel broken each
//! apply their change to the channel as stored, so none of them puts back what another just
//! replaced (a rotation's new secret, a PATCH's new URL).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Item, Store, StoreError, WriteOp};
use herald_core::domain::channel::{Channel, ChannelHealth, HealthStatus};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::{ChannelId, OrgId};

use super::{Page, RepoError, Rules, decode, encode, list_prefix};

/// How many times [`Channels::modify`] re-reads a channel another writer changed meanwhile.
const MODIFY_ATTEMPTS: usize = 5;

/// How many times a delete re-reads the rules when concurrent rule writes keep moving the version.
const DELETE_ATTEMPTS: usize = 4;

/// Every channel of the org, all pages: what the matcher resolves rules' channel ids against.
pub async fn list_all(store: &dyn Store, org: OrgId) -> Result<Vec<Channel>, StoreError> {
    super::list_all(
        store,
        keys::org_pk(&org),
        keys::CHANNEL_PREFIX,
        entity::CHANNEL,
    )
    .await
    .map_err(RepoError::into_store)
}

/// The channel repository.
#[derive(Debug, Clone, Copy)]
pub struct Channels<'a> {
    store: &'a dyn Store,
}

impl<'a> Channels<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    fn item(channel: &Channel, version: i64) -> Result<Item, RepoError> {
        let mut item = Item::new(
            keys::channel(&channel.org_id, &channel.id),
            entity::CHANNEL,
            encode(channel, entity::CHANNEL)?,
        );
        item.nums
            .insert(keys::CHANNEL_VERSION_ATTR.to_owned(), version);
        Ok(item)
    }

    /// Stores a new channel.
    pub async fn create(&self, channel: &Channel) -> Result<(), RepoError> {
        match self
            .store
            .put(Self::item(channel, 0)?, Condition::NotExists)
            .await
        {
            Err(StoreError::Conflict) => Err(RepoError::AlreadyExists),
            r => Ok(r?),
        }
    }

    pub async fn get(&self, org: &OrgId, id: &ChannelId) -> Result<Option<Channel>, RepoError> {
        match self.store.get(&keys::channel(org, id)).await? {
            Some(item) => Ok(Some(decode(item, entity::CHANNEL)?)),
            None => Ok(None),
        }
    }

    /// Which of `ids` are channels of the org, in the order of `ids`: one batched read.
    pub async fn exist(&self, org: &OrgId, ids: &[ChannelId]) -> Result<Vec<bool>, RepoError> {
        let keys: Vec<_> = ids.iter().map(|id| keys::channel(org, id)).collect();
        Ok(self
            .store
            .get_many(&keys)
            .await?
            .iter()
            .map(Option::is_some)
            .collect())
    }

    /// The channels of `ids` in the org, in the order of `ids` (`None`: not on record, e.g.
    /// deleted): one batched read.
    pub async fn get_many(
        &self,
        org: &OrgId,
        ids: &[ChannelId],
    ) -> Result<Vec<Option<Channel>>, RepoError> {
        let keys: Vec<_> = ids.iter().map(|id| keys::channel(org, id)).collect();
        self.store
            .get_many(&keys)
            .await?
            .into_iter()
            .map(|item| item.map(|i| decode(i, entity::CHANNEL)).transpose())
            .collect()
    }

    /// The org's channels, oldest first (ids are UUIDv7).
    pub async fn list(
        &self,
        org: &OrgId,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Page<Channel>, RepoError> {
        list_prefix(
            self.store,
            keys::org_pk(org),
            keys::CHANNEL_PREFIX,
            limit,
            cursor,
            entity::CHANNEL,
        )
        .await
    }

    /// Applies `change` to the channel as stored and saves it if no other write came between;
    /// otherwise reads it again and re-applies `change`, a few times, then gives up with
    /// [`RepoError::Contended`]. [`RepoError::NotFound`] when there is no such channel (or it
    /// was deleted meanwhile). A refusal from `change` is the inner `Err`, with nothing written;
    /// otherwise the inner `Ok` holds the channel as saved and what `change` answered.
    pub async fn modify<T, E>(
        &self,
        org: &OrgId,
        id: &ChannelId,
        mut change: impl FnMut(&mut Channel) -> Result<T, E>,
    ) -> Result<Result<(Channel, T), E>, RepoError> {
        let key = keys::channel(org, id);
        for _ in 0..MODIFY_ATTEMPTS {
            let item = self.store.get(&key).await?.ok_or(RepoError::NotFound)?;
            let version = item.nums.get(keys::CHANNEL_VERSION_ATTR).copied();
            let mut channel: Channel = decode(item, entity::CHANNEL)?;
            let answer = match change(&mut channel) {
                Ok(answer) => answer,
                Err(refused) => return Ok(Err(refused)),
            };
            // Channels stored before versions existed have none: their first versioned write
            // is conditioned on existence only, and gives them version 1.
            let (condition, next) = match version {
                Some(v) => (
                    Condition::NumEquals {
                        attr: keys::CHANNEL_VERSION_ATTR.to_owned(),
                        value: v,
                    },
                    v + 1,
                ),
                None => (Condition::Exists, 1),
            };
            match self.store.put(Self::item(&channel, next)?, condition).await {
                Ok(()) => return Ok(Ok((channel, answer))),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Contended)
    }

    /// Updates the channel's health after an attempt: a permanent 401/403/404/410 marks it
    /// broken, with the error; a delivered attempt mends a broken one. Anything else leaves it,
    /// without a write. `channel` is the channel as the attempt read it; the change is applied
    /// to the channel as stored ([`Self::modify`]), so a PATCH or a secret rotation made during
    /// the attempt is kept. A channel deleted meanwhile is left alone.
    pub async fn record_health(
        &self,
        channel: &Channel,
        error_class: Option<ErrorClass>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let next = |health: &ChannelHealth| match (error_class, health.status) {
            (None, HealthStatus::Broken) => Some(ChannelHealth::default()),
            (Some(class), HealthStatus::Ok) if class.breaks_channel() => Some(ChannelHealth {
                status: HealthStatus::Broken,
                last_error: Some(error.to_owned()),
                since: Some(now),
            }),
            _ => None,
        };
        if next(&channel.health).is_none() {
            return Ok(());
        }
        let changed = self
            .modify(&channel.org_id, &channel.id, |stored| {
                if let Some(health) = next(&stored.health) {
                    stored.health = health;
                }
                Ok::<_, std::convert::Infallible>(())
            })
            .await;
        match changed {
            Err(RepoError::NotFound) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Deletes a channel no rule references: [`RepoError::ChannelInUse`] names the rules that do,
    /// [`RepoError::NotFound`] when there is no such channel.
    pub async fn delete(&self, org: &OrgId, id: &ChannelId) -> Result<(), RepoError> {
        let rules = Rules::new(self.store);
        for _ in 0..DELETE_ATTEMPTS {
            if self.store.get(&keys::channel(org, id)).await?.is_none() {
                return Err(RepoError::NotFound);
            }
            // Materialises the version item (ADD 0) so the check below has something to compare.
            let version = self
                .store
                .add(
                    &keys::rules_version(org),
                    entity::RULES_VERSION,
                    &BTreeMap::from([(keys::RULES_VERSION_ATTR.to_owned(), 0)]),
                    Condition::None,
                )
                .await?
                .get(keys::RULES_VERSION_ATTR)
                .copied()
                .unwrap_or(0);
            let referencing = rules.referencing(org, id).await?;
            if !referencing.is_empty() {
                return Err(RepoError::ChannelInUse(referencing));
            }
            let ops = vec![
                WriteOp::Delete {
                    key: keys::channel(org, id),
                    condition: Condition::Exists,
                },
                // Its lane (pacing, pause, breaker) goes with it, if it has one.
                WriteOp::Delete {
                    key: keys::lane(org, id),
                    condition: Condition::None,
                },
                WriteOp::Check {
                    key: keys::rules_version(org),
                    condition: Condition::NumEquals {
                        attr: keys::RULES_VERSION_ATTR.to_owned(),
                        value: version,
                    },
                },
            ];
            match self.store.transact(ops).await {
                Ok(()) => return Ok(()),
                // The channel went, or a rule changed meanwhile: look again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Contended)
    }
}
