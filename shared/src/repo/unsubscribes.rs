//! One-click unsubscribes (RFC 8058, docs/hygiene.md): one item per (user, channel)
//! (`ORG#<org>` / `UNSUB#<user>#<channel>`), apart from the user's profile, so a whole-profile
//! `PUT /users` does not undo one. The dispatcher reads the item of a delivery's (user,
//! channel) in the same batch read as the profile.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Query, SortKeyRange, Store, StoreError};
use herald_core::domain::{ChannelId, OrgId, RuleKey, UserId};

use super::{RepoError, decode, encode};

/// A user unsubscribed from a channel with one click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscribed {
    #[schema(value_type = String)]
    pub user_id: UserId,
    pub channel_id: ChannelId,
    /// The rule of the email whose link was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rule_key: Option<RuleKey>,
    pub at: DateTime<Utc>,
}

/// Records `entry`; `false` when the user was already unsubscribed from the channel (the
/// first record stays).
pub async fn add(store: &dyn Store, org: &OrgId, entry: &Unsubscribed) -> Result<bool, RepoError> {
    let item = Item::new(
        keys::unsubscribe(org, &entry.user_id, entry.channel_id),
        entity::UNSUBSCRIBE,
        encode(entry, entity::UNSUBSCRIBE)?,
    );
    match store.put(item, Condition::NotExists).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Decodes an item read by [`keys::unsubscribe`] (the dispatcher's batch read).
pub fn from_item(item: Item) -> Result<Unsubscribed, RepoError> {
    decode(item, entity::UNSUBSCRIBE)
}

/// The user's unsubscribes, in channel order.
pub async fn list(
    store: &dyn Store,
    org: &OrgId,
    user: &UserId,
) -> Result<Vec<Unsubscribed>, RepoError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(Query {
                partition: keys::org_pk(org),
                range: SortKeyRange::BeginsWith(keys::unsubscribe_prefix(user)),
                limit: crate::store::MAX_QUERY_LIMIT,
                cursor,
                ..Query::default()
            })
            .await?;
        for item in page.items {
            let entry = from_item(item)?;
            // `UNSUB#a#` also begins `UNSUB#a#b#…`, user `a#b`'s.
            if entry.user_id == *user {
                out.push(entry);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Removes the user's unsubscribe from `channel`; [`RepoError::NotFound`] when there is none.
pub async fn remove(
    store: &dyn Store,
    org: &OrgId,
    user: &UserId,
    channel: ChannelId,
) -> Result<(), RepoError> {
    match store
        .delete(&keys::unsubscribe(org, user, channel), Condition::Exists)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(RepoError::NotFound),
        Err(e) => Err(e.into()),
    }
}
