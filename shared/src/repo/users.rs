//! User profiles: the contact points, time zone and opt-outs of one of a customer's users, which
//! user-facing channels use when an event does not carry them. `ORG#<org>` / `USER#<userId>`.
//!
//! Every write gives the profile a new `version` (a random revision, so `PUT /users` needs no
//! read first): the dispatcher's push-token prune is conditioned on the version it read, so a
//! profile the customer replaced meanwhile is never overwritten.

use super::{RepoError, decode, encode};
use crate::store::{Condition, Item, Store, StoreError, keys};
use herald_core::domain::user::UserProfile;
use herald_core::domain::{OrgId, UserId};

/// The profile's item, with a new revision as its `version`.
fn item(profile: &UserProfile) -> Result<Item, RepoError> {
    let mut item = Item::new(
        keys::user(&profile.org_id, &profile.user_id),
        keys::entity::USER,
        encode(profile, keys::entity::USER)?,
    );
    item.nums
        .insert(keys::USER_VERSION_ATTR.to_owned(), rand::random::<i64>());
    Ok(item)
}

/// Stores (replaces) a profile.
pub async fn put(store: &dyn Store, profile: &UserProfile) -> Result<(), RepoError> {
    Ok(store.put(item(profile)?, Condition::None).await?)
}

/// The version of a profile item as read (`None`: written before profiles had one).
pub fn version_of(item: &Item) -> Option<i64> {
    item.nums.get(keys::USER_VERSION_ATTR).copied()
}

/// What [`prune_push_tokens`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pruned {
    /// These tokens were removed from the profile.
    Removed(Vec<String>),
    /// The profile changed since it was read (the customer replaced it): left alone.
    Replaced,
    /// None of the tokens is in the profile any more.
    NotInProfile,
    /// There is no profile.
    NoProfile,
}

/// Removes `dead` push tokens from the profile, if it is still the one read at `read_version`
/// (a conditional write: a profile replaced meanwhile is never overwritten).
pub async fn prune_push_tokens(
    store: &dyn Store,
    org: &OrgId,
    user: &UserId,
    read_version: Option<i64>,
    dead: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Pruned, RepoError> {
    let Some(current) = store.get(&keys::user(org, user)).await? else {
        return Ok(Pruned::NoProfile);
    };
    let version = version_of(&current);
    if version != read_version {
        return Ok(Pruned::Replaced);
    }
    let mut profile = from_item(current)?;
    let removed: Vec<String> = profile
        .push_tokens
        .iter()
        .filter(|t| dead.contains(t))
        .cloned()
        .collect();
    if removed.is_empty() {
        return Ok(Pruned::NotInProfile);
    }
    profile.push_tokens.retain(|t| !dead.contains(t));
    profile.updated_at = now;
    let condition = match version {
        Some(value) => Condition::NumEquals {
            attr: keys::USER_VERSION_ATTR.to_owned(),
            value,
        },
        // Written before profiles had a version: only its existence can be checked.
        None => Condition::Exists,
    };
    match store.put(item(&profile)?, condition).await {
        Err(StoreError::Conflict) => Ok(Pruned::Replaced),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(Pruned::Removed(removed)),
    }
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
