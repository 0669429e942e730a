//! Channels: `ORG#<org>` / `CHANNEL#<id>`, the whole [`Channel`] (secrets included) as the item's
//! document. The API shows it redacted.
//!
//! Deleting a channel must not leave a rule pointing at nothing. Rule writes and channel deletes
//! are serialised through the org's rules version (`ORG#<org>` / `RULESVERSION`): every rule
//! write checks its channels exist and bumps the version in one transaction; a channel delete
//! reads the version, finds no rule referencing the channel, then deletes the channel in a
//! transaction that checks the version is unchanged. Whichever commits second fails its
//! condition, so neither order leaves a dangling reference.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Item, Store, StoreError, WriteOp};
use herald_core::domain::channel::{Channel, ChannelHealth, HealthStatus};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::{ChannelId, OrgId};

use super::{Page, RepoError, Rules, decode, encode, list_prefix};

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

    fn item(channel: &Channel) -> Result<Item, RepoError> {
        Ok(Item::new(
            keys::channel(&channel.org_id, &channel.id),
            entity::CHANNEL,
            encode(channel, entity::CHANNEL)?,
        ))
    }

    /// Stores a new channel.
    pub async fn create(&self, channel: &Channel) -> Result<(), RepoError> {
        match self
            .store
            .put(Self::item(channel)?, Condition::NotExists)
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

    /// Replaces a stored channel; [`RepoError::NotFound`] when it was deleted meanwhile.
    pub async fn update(&self, channel: &Channel) -> Result<(), RepoError> {
        match self
            .store
            .put(Self::item(channel)?, Condition::Exists)
            .await
        {
            Err(StoreError::Conflict) => Err(RepoError::NotFound),
            r => Ok(r?),
        }
    }

    /// Updates the channel's health after an attempt: a permanent 401/403/404/410 marks it
    /// broken, with the error; a delivered attempt mends a broken one. Anything else leaves it.
    /// A channel deleted meanwhile is left alone.
    pub async fn record_health(
        &self,
        channel: &Channel,
        error_class: Option<ErrorClass>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let health = match (error_class, channel.health.status) {
            (None, HealthStatus::Broken) => ChannelHealth::default(),
            (Some(class), HealthStatus::Ok) if class.breaks_channel() => ChannelHealth {
                status: HealthStatus::Broken,
                last_error: Some(error.to_owned()),
                since: Some(now),
            },
            _ => return Ok(()),
        };
        let changed = Channel {
            health,
            ..channel.clone()
        };
        match self.update(&changed).await {
            Err(RepoError::NotFound) => Ok(()),
            other => other,
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
