//! The local outbox: where `herald serve` delivers email, SMS and push messages of channels whose
//! provider is `outbox` (the default without a configured provider). Nothing leaves the machine;
//! the messages are stored by [`crate::repo::outbox`] and listed by
//! `GET /api/v1/orgs/{orgId}/outbox`. A message stored here counts as `sent` — accepted by a
//! provider (the outbox) — and the delivery log says where it went.

use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::sender::{AttemptOutcome, Sender, user_message};
use crate::repo::outbox::{self, OutboxMessage};
use crate::store::Store;
use herald_core::delivery::format::OutboundMessage;
use herald_core::delivery::format::email::EmailRenderer;
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, EmailConfig};
use herald_core::domain::delivery::ErrorClass;

/// The sender address shown when an outbox email channel names none.
pub const DEFAULT_FROM: &str = "herald@localhost";

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
        let expires = (now + self.retention).timestamp();
        match outbox::append(self.store.as_ref(), user.org_id, &entry, expires).await {
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
