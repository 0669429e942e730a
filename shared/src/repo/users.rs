//! User profiles: the contact points, time zone and opt-outs of one of a customer's users, which
//! user-facing channels use when an event does not carry them. `ORG#<org>` / `USER#<userId>`.

use super::{RepoError, decode, encode};
use crate::store::{Condition, Item, Key, Store, StoreError};
use herald_core::domain::{OrgId, UserId};

pub use herald_core::domain::user::{
    UserProfile, contact, validate_email, validate_phone, validate_timezone,
};

const ENTITY: &str = "user";

fn key(org: &OrgId, user: &UserId) -> Key {
    Key::new(crate::store::keys::org_pk(org), format!("USER#{user}"))
}

/// Stores (replaces) a profile.
pub async fn put(store: &dyn Store, profile: &UserProfile) -> Result<(), RepoError> {
    let item = Item::new(
        key(&profile.org_id, &profile.user_id),
        ENTITY,
        encode(profile, ENTITY)?,
    );
    Ok(store.put(item, Condition::None).await?)
}

pub async fn get(
    store: &dyn Store,
    org: &OrgId,
    user: &UserId,
) -> Result<Option<UserProfile>, RepoError> {
    match store.get(&key(org, user)).await? {
        Some(item) => Ok(Some(decode(item, ENTITY)?)),
        None => Ok(None),
    }
}

/// Erases a profile; `NotFound` when there is none.
pub async fn delete(store: &dyn Store, org: &OrgId, user: &UserId) -> Result<(), RepoError> {
    match store.delete(&key(org, user), Condition::Exists).await {
        Err(StoreError::Conflict) => Err(RepoError::NotFound),
        r => Ok(r?),
    }
}
