//! The local outbox's messages (`herald serve`'s stand-in for email, SMS and push providers):
//! `ORG#<org>#OUTBOX` / `MSG#<uuidv7>`, expiring after the log retention. The sender that writes
//! them is [`crate::delivery::outbox::OutboxSender`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::{from_doc, to_doc};
use crate::store::{Condition, Cursor, Item, Query, SortKeyRange, Store, StoreError, keys};
use herald_core::delivery::format::email::EmailContent;
use herald_core::domain::channel::ChannelKind;
use herald_core::domain::{ChannelId, DeliveryId, OrgId};

/// One message in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub delivery_id: DeliveryId,
    pub channel_id: ChannelId,
    pub channel_kind: ChannelKind,
    /// Email only: the channel's `from`.
    pub from: Option<String>,
    pub to: Vec<String>,
    pub title: String,
    pub body: Option<String>,
    pub link: Option<String>,
    pub event_type: String,
    /// Email only: the email as a provider would have sent it (tracking links included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailContent>,
    pub created_at: DateTime<Utc>,
}

/// Stores `message` in `org`'s outbox until `expires` (epoch seconds).
pub async fn append(
    store: &dyn Store,
    org: OrgId,
    message: &OutboxMessage,
    expires: i64,
) -> Result<(), StoreError> {
    let item = Item::new(
        keys::outbox_message(org, message.id),
        keys::entity::OUTBOX_MESSAGE,
        to_doc(message)?,
    )
    .with_ttl(expires);
    store.put(item, Condition::None).await
}

/// One page of an org's outbox, newest first.
pub async fn list(
    store: &dyn Store,
    org: OrgId,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<OutboxMessage>, Option<Cursor>), StoreError> {
    let partition = keys::outbox(org);
    if let Some(c) = &cursor
        && c.decode()?.0.pk != partition
    {
        return Err(StoreError::BadCursor);
    }
    let page = store
        .query(Query {
            partition,
            range: SortKeyRange::BeginsWith(keys::OUTBOX_MESSAGE_PREFIX.to_owned()),
            descending: true,
            limit: limit.clamp(1, 100),
            cursor,
            ..Query::default()
        })
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|i| from_doc(i.doc))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, page.next))
}
