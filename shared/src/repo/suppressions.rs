//! An org's suppression list: `ORG#<org>#SUPP` / `<kind>#<normalised address>`, the whole
//! [`Suppression`] as the document. Entries are keyed by address, not by user, so neither
//! `PUT /users` nor `DELETE /users/{id}` touches them (`docs/hygiene.md`).

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Item, Key, Query, SortKeyRange, Store, StoreError};
use herald_core::domain::OrgId;
use herald_core::domain::suppression::{
    SuppressedAddress, Suppression, SuppressionKind, SuppressionReason,
};

use super::{MAX_PAGE, Page, RepoError, decode, encode, list_prefix};

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// A new entry.
    Created(Suppression),
    /// The address was already suppressed: the entry as it stands (a complaint replaces a
    /// weaker entry, since removing a complaint needs `force`).
    Existing(Suppression),
}

fn key_of(org: &OrgId, s: &Suppression) -> Result<Key, RepoError> {
    let address = SuppressedAddress::parse(s.kind, &s.address).map_err(|e| {
        RepoError::Store(StoreError::engine(std::io::Error::other(format!(
            "suppression address not normalised: {}",
            e.message
        ))))
    })?;
    Ok(keys::suppression(org, &address))
}

fn item(org: &OrgId, s: &Suppression) -> Result<Item, RepoError> {
    Ok(Item::new(
        key_of(org, s)?,
        entity::SUPPRESSION,
        encode(s, entity::SUPPRESSION)?,
    ))
}

/// Suppresses `entry.address` unless it already is. Written exactly once per address however
/// often the same bounce is delivered (SES and SQS are at-least-once).
pub async fn add(store: &dyn Store, org: &OrgId, entry: &Suppression) -> Result<Added, RepoError> {
    match store.put(item(org, entry)?, Condition::NotExists).await {
        Ok(()) => Ok(Added::Created(entry.clone())),
        Err(StoreError::Conflict) => {
            let key = key_of(org, entry)?;
            let Some(existing) = store.get(&key).await? else {
                // Deleted in between: try once more.
                store.put(item(org, entry)?, Condition::None).await?;
                return Ok(Added::Created(entry.clone()));
            };
            let existing: Suppression = decode(existing, entity::SUPPRESSION)?;
            if entry.reason == SuppressionReason::Complaint
                && existing.reason != SuppressionReason::Complaint
            {
                store.put(item(org, entry)?, Condition::Exists).await?;
                return Ok(Added::Existing(entry.clone()));
            }
            Ok(Added::Existing(existing))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn get(
    store: &dyn Store,
    org: &OrgId,
    address: &SuppressedAddress,
) -> Result<Option<Suppression>, RepoError> {
    store
        .get(&keys::suppression(org, address))
        .await?
        .map(|i| decode(i, entity::SUPPRESSION))
        .transpose()
}

/// Decodes an item read by [`keys::suppression`] (the dispatcher reads it with the profile).
pub fn from_item(item: Item) -> Result<Suppression, RepoError> {
    decode(item, entity::SUPPRESSION)
}

/// One page of the org's entries, in address order; of one kind when `kind` is set.
pub async fn list(
    store: &dyn Store,
    org: &OrgId,
    kind: Option<SuppressionKind>,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<Page<Suppression>, RepoError> {
    let partition = keys::suppressions(org);
    if let Some(kind) = kind {
        let prefix = format!("{}#", kind.as_str());
        return list_prefix(
            store,
            partition,
            &prefix,
            limit,
            cursor,
            entity::SUPPRESSION,
        )
        .await;
    }
    if let Some(c) = &cursor
        && c.decode()?.0.pk != partition
    {
        return Err(RepoError::BadCursor);
    }
    // Every sort key of the partition is an entry (an empty `begins_with` is not valid DynamoDB).
    let page = store
        .query(Query {
            partition,
            range: SortKeyRange::All,
            limit: limit.clamp(1, MAX_PAGE),
            cursor,
            ..Query::default()
        })
        .await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?,
        next: page.next,
    })
}

/// Removes an entry; `NotFound` when there is none.
pub async fn delete(
    store: &dyn Store,
    org: &OrgId,
    address: &SuppressedAddress,
) -> Result<(), RepoError> {
    match store
        .delete(&keys::suppression(org, address), Condition::Exists)
        .await
    {
        Err(StoreError::Conflict) => Err(RepoError::NotFound),
        r => Ok(r?),
    }
}
