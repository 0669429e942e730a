//! API keys. Two items per key, written and deleted together in one transaction:
//! `APIKEY#<sha256>` / `APIKEY` finds a request's key by its hash, and `ORG#<org>` /
//! `APIKEY#<id>` lists an org's keys. Both hold the whole [`ApiKey`] (hash and metadata, never the
//! secret), so authenticating a request is one read.

use chrono::{DateTime, Utc};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Item, Store, StoreError, WriteOp};
use herald_core::domain::api_key::{ApiKey, ApiKeySecret, KeyHash};
use herald_core::domain::{ApiKeyId, OrgId};

use super::{Page, RepoError, decode, encode, list_prefix};

/// The API key repository.
#[derive(Debug, Clone, Copy)]
pub struct ApiKeys<'a> {
    store: &'a dyn Store,
}

impl<'a> ApiKeys<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Stores a new key; [`RepoError::AlreadyExists`] when its id or hash is taken.
    pub async fn create(&self, key: &ApiKey) -> Result<(), RepoError> {
        let doc = encode(key, entity::API_KEY)?;
        let ops = vec![
            WriteOp::Put {
                item: Item::new(
                    keys::api_key(&key.org_id, &key.id),
                    entity::API_KEY,
                    doc.clone(),
                ),
                condition: Condition::NotExists,
            },
            WriteOp::Put {
                item: Item::new(
                    keys::api_key_by_hash(&key.hash),
                    entity::API_KEY_BY_HASH,
                    doc,
                ),
                condition: Condition::NotExists,
            },
        ];
        match self.store.transact(ops).await {
            Err(StoreError::Conflict) => Err(RepoError::AlreadyExists),
            r => Ok(r?),
        }
    }

    /// The key with this secret, created for `org` if it does not exist yet: how `herald serve`
    /// installs a fixed `HERALD_DEV_API_KEY`, so that a restart with the same values changes
    /// nothing. [`RepoError::AlreadyExists`] when the secret belongs to another org.
    pub async fn ensure(
        &self,
        org: &OrgId,
        secret: &ApiKeySecret,
        name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, RepoError> {
        if let Some(existing) = self.find_by_hash(&secret.hash()).await? {
            return if existing.org_id == *org {
                Ok(existing)
            } else {
                Err(RepoError::AlreadyExists)
            };
        }
        let key = ApiKey {
            id: ApiKeyId::new(),
            org_id: *org,
            name,
            prefix: secret.prefix(),
            hash: secret.hash(),
            created_at: now,
        };
        match self.create(&key).await {
            // A concurrent start created it first.
            Err(RepoError::AlreadyExists) => self
                .find_by_hash(&secret.hash())
                .await?
                .filter(|k| k.org_id == *org)
                .ok_or(RepoError::AlreadyExists),
            r => r.map(|()| key),
        }
    }

    /// The key whose secret hashes to `hash`, if it exists and is not revoked.
    pub async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, RepoError> {
        match self.store.get(&keys::api_key_by_hash(hash)).await? {
            Some(item) => Ok(Some(decode(item, entity::API_KEY)?)),
            None => Ok(None),
        }
    }

    pub async fn get(&self, org: &OrgId, id: &ApiKeyId) -> Result<Option<ApiKey>, RepoError> {
        match self.store.get(&keys::api_key(org, id)).await? {
            Some(item) => Ok(Some(decode(item, entity::API_KEY)?)),
            None => Ok(None),
        }
    }

    /// The org's keys, oldest first.
    pub async fn list(
        &self,
        org: &OrgId,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Page<ApiKey>, RepoError> {
        list_prefix(
            self.store,
            keys::org_pk(org),
            keys::API_KEY_PREFIX,
            limit,
            cursor,
            entity::API_KEY,
        )
        .await
    }

    /// Revokes a key: both items go, atomically. [`RepoError::NotFound`] when it does not exist.
    pub async fn revoke(&self, org: &OrgId, id: &ApiKeyId) -> Result<(), RepoError> {
        let key = self.get(org, id).await?.ok_or(RepoError::NotFound)?;
        let ops = vec![
            WriteOp::Delete {
                key: keys::api_key(org, id),
                condition: Condition::Exists,
            },
            WriteOp::Delete {
                key: keys::api_key_by_hash(&key.hash),
                condition: Condition::None,
            },
        ];
        match self.store.transact(ops).await {
            Err(StoreError::Conflict) => Err(RepoError::NotFound),
            r => Ok(r?),
        }
    }
}
