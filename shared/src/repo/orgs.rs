//! Organisations: `ORG#<org>` / `ORG`.

use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Store, StoreError};
use herald_core::domain::OrgId;
use herald_core::domain::org::Org;

use super::{RepoError, decode, encode};

/// The org repository.
#[derive(Debug, Clone, Copy)]
pub struct Orgs<'a> {
    store: &'a dyn Store,
}

impl<'a> Orgs<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Stores a new org; [`RepoError::AlreadyExists`] when its id is taken.
    pub async fn create(&self, org: &Org) -> Result<(), RepoError> {
        let item = Item::new(keys::org(&org.id), entity::ORG, encode(org, entity::ORG)?);
        match self.store.put(item, Condition::NotExists).await {
            Err(StoreError::Conflict) => Err(RepoError::AlreadyExists),
            r => Ok(r?),
        }
    }

    /// Stores an org whether or not it exists (the dev org of `herald serve`, fixed by env).
    pub async fn upsert(&self, org: &Org) -> Result<(), RepoError> {
        let item = Item::new(keys::org(&org.id), entity::ORG, encode(org, entity::ORG)?);
        Ok(self.store.put(item, Condition::None).await?)
    }

    pub async fn get(&self, id: &OrgId) -> Result<Option<Org>, RepoError> {
        match self.store.get(&keys::org(id)).await? {
            Some(item) => Ok(Some(decode(item, entity::ORG)?)),
            None => Ok(None),
        }
    }
}
