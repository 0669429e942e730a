//! User profiles: the contact points, time zone and opt-outs of one of a customer's users, which
//! user-facing channels use when an event does not carry them. `ORG#<org>` / `USER#<userId>`.

use super::{RepoError, decode, encode};
use crate::store::{Condition, Item, Store, StoreError, keys};
use herald_core::domain::user::UserProfile;
use herald_core::domain::{OrgId, UserId};

/// Stores (replaces) a profile.
pub async fn put(store: &dyn Store, profile: &UserProfile) -> Result<(), RepoError> {
    let item = Item::new(
        keys::user(&profile.org_id, &profile.user_id),
        keys::entity::USER,
        encode(profile, keys::entity::USER)?,
    );
    Ok(store.put(item, Condition::None).await?)
}

pub async fn get(
    store: &dyn Store,
    org: &OrgId,
    user: &UserId,
) -> Result<Option<UserProfile>, RepoError> {
    match store.get(&keys::user(org, user)).await? {
        Some(item) => Ok(Some(decode(item, keys::entity::USER)?)),
        None => Ok(None),
    }
}

/// Decodes a profile item read by [`keys::user`] (the dispatcher reads it in one batch with the
/// suppression entry of the event's contact point).
pub fn from_item(item: Item) -> Result<UserProfile, RepoError> {
    decode(item, keys::entity::USER)
}

/// Erases a profile; `NotFound` when there is none.
pub async fn delete(store: &dyn Store, org: &OrgId, user: &UserId) -> Result<(), RepoError> {
    match store
        .delete(&keys::user(org, user), Condition::Exists)
        .await
    {
        Err(StoreError::Conflict) => Err(RepoError::NotFound),
        r => Ok(r?),
    }
}
