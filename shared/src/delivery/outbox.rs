//! The local outbox: where `herald serve` delivers email, SMS and push messages of channels whose
//! provider is `outbox` (the default without a configured provider). Nothing leaves the machine;
//! the messages are listed by `GET /api/v1/orgs/{orgId}/outbox`. A message stored here counts as
//! `sent` — accepted by a provider (the outbox) — and the delivery log says where it went.
//!
//! Items: `ORG#<org>#OUTBOX` / `MSG#<uuidv7>`, newest last, expiring after the log retention.

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::format::OutboundMessage;
use super::format::email::{EmailContent, EmailRenderer};
use super::sender::{AttemptOutcome, Sender};
use crate::delivery::sender::user_message;
use crate::store::{Condition, Cursor, Item, Key, Query, SortKeyRange, Store, StoreError};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, EmailConfig};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::{ChannelId, DeliveryId, OrgId};

const ENTITY: &str = "outboxMessage";
/// The sender address shown when an outbox email channel names none.
pub const DEFAULT_FROM: &str = "herald@localhost";

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

/// `ORG#<org>#OUTBOX`.
pub fn partition(org: OrgId) -> String {
    format!("ORG#{org}#OUTBOX")
}

/// Delivers user-facing messages into the store's outbox.
#[derive(Debug, Clone)]
pub struct OutboxSender {
    store: std::sync::Arc<dyn Store>,
    retention: chrono::Duration,
    email: EmailRenderer,
}

impl OutboxSender {
    pub fn new(store: std::sync::Arc<dyn Store>, retention: chrono::Duration) -> Self {
        Self {
            store,
            retention,
            email: EmailRenderer::default(),
        }
    }

    /// Renders emails with `email` (e.g. with tracking links) instead of plain ones.
    pub fn with_email_renderer(mut self, email: EmailRenderer) -> Self {
        self.email = email;
        self
    }
}

/// The log's words for a message stored in the outbox.
pub fn stored_note(kind: ChannelKind) -> String {
    format!(
        "stored in the local outbox: herald serve has no {} provider configured for this channel; see GET /api/v1/orgs/{{orgId}}/outbox",
        kind.as_str()
    )
}

#[async_trait]
impl Sender for OutboxSender {
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        let started = Instant::now();
        let user = match user_message(message, channel.kind()) {
            Ok(user) => user,
            Err(outcome) => return outcome,
        };
        let now = Utc::now();
        let from = match &channel.config {
            ChannelConfig::Email(EmailConfig::Outbox { from }) => {
                Some(from.clone().unwrap_or_else(|| DEFAULT_FROM.to_owned()))
            }
            _ => None,
        };
        let email = (channel.kind() == ChannelKind::Email)
            .then(|| self.email.render(&user, message.delivery_id));
        let entry = OutboxMessage {
            id: Uuid::now_v7(),
            delivery_id: message.delivery_id,
            channel_id: channel.id,
            channel_kind: channel.kind(),
            from,
            to: user.to,
            title: user.title,
            body: user.body,
            link: user.link,
            event_type: user.event_type,
            email,
            created_at: now,
        };
        let doc = match serde_json::to_value(&entry) {
            Ok(doc) => doc,
            Err(e) => {
                return AttemptOutcome::not_sent(ErrorClass::BadPayload, e.to_string());
            }
        };
        let item = Item::new(
            Key::new(partition(user.org_id), format!("MSG#{}", entry.id)),
            ENTITY,
            doc,
        )
        .with_ttl((now + self.retention).timestamp());
        match self.store.put(item, Condition::None).await {
            Ok(()) => AttemptOutcome {
                status_code: None,
                error_class: None,
                message: Some(stored_note(channel.kind())),
                latency: started.elapsed(),
                retry_after: None,
            },
            // The store being down is worth another try.
            Err(e) => AttemptOutcome {
                status_code: None,
                error_class: Some(ErrorClass::ServerError),
                message: Some(format!("the local outbox could not store the message: {e}")),
                latency: started.elapsed(),
                retry_after: None,
            },
        }
    }
}

/// One page of an org's outbox, newest first.
pub async fn list(
    store: &dyn Store,
    org: OrgId,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<OutboxMessage>, Option<Cursor>), StoreError> {
    let partition = partition(org);
    if let Some(c) = &cursor
        && c.decode()?.0.pk != partition
    {
        return Err(StoreError::BadCursor);
    }
    let page = store
        .query(Query {
            partition,
            range: SortKeyRange::BeginsWith("MSG#".to_owned()),
            descending: true,
            limit: limit.clamp(1, 100),
            cursor,
            ..Query::default()
        })
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|i| serde_json::from_value(i.doc).map_err(StoreError::engine))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, page.next))
}
