//! Sending: the [`Sender`] port and its engines — the outbound-safe HTTP client and sender for
//! Slack, webhooks, Discord and Teams ([`http`], [`sender`], feature `http-senders`), the email,
//! SMS and push providers ([`providers`]), the local outbox ([`outbox`]) and the in-app feed
//! ([`in_app`]) — routed by [`Senders`]. What is sent, and what an answer means, is decided by
//! the pure half in `herald_core::delivery`.
//!
//! [`deliver`] is the one way to make an attempt, used by the dispatcher and the channel test
//! button alike: to the channel ([`attempt`]), to a person's contact points ([`attempt_user`]) or
//! to their feed ([`in_app`]), as the pure `Destination` says.

#[cfg(feature = "http-senders")]
pub mod http;
pub mod in_app;
pub mod outbox;
pub mod providers;
pub mod resolve;
pub mod sender;
pub mod senders;

#[cfg(feature = "http-senders")]
pub use http::{OutboundClient, OutboundConfig};
pub use outbox::OutboxSender;
#[cfg(feature = "http-senders")]
pub use sender::HttpSender;
pub use sender::{AttemptOutcome, ContactFeedback, Sender};
pub use senders::Senders;

use chrono::{DateTime, Utc};
use herald_core::delivery::format::{self, MessageContext};
use herald_core::delivery::unsubscribe::ListUnsubscribe;
use herald_core::domain::channel::Channel;
use herald_core::domain::delivery::{Destination, ErrorClass};

use crate::feed::FeedNotifier;
use crate::store::Store;

/// What an attempt may need: the sender for channels and contact points, the store and the
/// notifier for the in-app feed.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub sender: &'a dyn Sender,
    pub store: &'a dyn Store,
    pub feeds: &'a dyn FeedNotifier,
}

impl std::fmt::Debug for Ports<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// One attempt to deliver `ctx` through `channel` to `destination` (see
/// `herald_core::domain::delivery::Destination::resolve`). The dispatcher and the channel test
/// button both go through this, so a test proves the path a page will take.
pub async fn deliver(
    ports: Ports<'_>,
    channel: &Channel,
    destination: Destination,
    ctx: &MessageContext<'_>,
    now: DateTime<Utc>,
) -> AttemptOutcome {
    deliver_with_feedback(ports, channel, destination, ctx, now, None)
        .await
        .0
}

/// [`deliver`], with what the provider learned about a person's contact points (numbers opted
/// out of SMS, dead push tokens): the dispatcher acts on it. `unsubscribe`: the target of an
/// email's one-click unsubscribe link (`None`: no link, as for a critical rule).
pub async fn deliver_with_feedback(
    ports: Ports<'_>,
    channel: &Channel,
    destination: Destination,
    ctx: &MessageContext<'_>,
    now: DateTime<Utc>,
    unsubscribe: Option<ListUnsubscribe>,
) -> (AttemptOutcome, ContactFeedback) {
    match destination {
        Destination::Channel => (
            attempt(ports.sender, channel, ctx).await,
            ContactFeedback::default(),
        ),
        Destination::Feed(user) => (
            in_app::deliver(ports.store, ports.feeds, &channel.org_id, &user, ctx, now).await,
            ContactFeedback::default(),
        ),
        Destination::ContactPoints(to) => {
            attempt_person(ports.sender, channel, ctx, to, unsubscribe).await
        }
    }
}

/// One attempt to deliver `ctx` to `channel`: format for its kind, then send. Kinds with no
/// sender here come back as a configuration error rather than vanishing.
pub async fn attempt(
    sender: &dyn Sender,
    channel: &Channel,
    ctx: &MessageContext<'_>,
) -> AttemptOutcome {
    match format::render(&channel.config, ctx) {
        Ok(message) => sender.send(channel, &message).await,
        Err(not_http) => AttemptOutcome::not_sent(ErrorClass::Configuration, not_http.to_string()),
    }
}

/// One attempt to deliver `ctx` to a person through a user-facing channel (email, SMS, push):
/// `to` are the resolved contact points. A template variable the event lacks fails the attempt
/// (not retried) rather than sending a visible placeholder to a person. Which provider sends it is the sender's business
/// ([`Senders`] routes by the channel's provider).
pub async fn attempt_user(
    sender: &dyn Sender,
    channel: &Channel,
    ctx: &MessageContext<'_>,
    to: Vec<String>,
) -> AttemptOutcome {
    attempt_person(sender, channel, ctx, to, None).await.0
}

/// [`attempt_user`], with what the provider learned about the contact points.
pub async fn attempt_person(
    sender: &dyn Sender,
    channel: &Channel,
    ctx: &MessageContext<'_>,
    to: Vec<String>,
    unsubscribe: Option<ListUnsubscribe>,
) -> (AttemptOutcome, ContactFeedback) {
    if let Some(failed) = unfilled_template(ctx) {
        return (failed, ContactFeedback::default());
    }
    let message = format::render_user_with(channel.kind(), ctx, to, unsubscribe);
    sender.send_to_person(channel, &message).await
}

/// The failed attempt for a message to a person whose template the event cannot fill (not
/// retried: a retry brings no new properties); `None` when it can be filled.
pub(crate) fn unfilled_template(ctx: &MessageContext<'_>) -> Option<AttemptOutcome> {
    ctx.check_template().err().map(|e| {
        AttemptOutcome::not_sent(
            ErrorClass::BadPayload,
            format!("the rule's template cannot be filled: {e}; nothing was sent"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Utc;

    use super::*;
    use herald_core::delivery::format::OutboundMessage;
    use herald_core::domain::channel::{ChannelConfig, ChannelName, EmailConfig};
    use herald_core::domain::rule::Template;
    use herald_core::domain::{ChannelId, DeliveryId};

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl Sender for Counting {
        async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
            self.0.fetch_add(1, Ordering::SeqCst);
            AttemptOutcome::not_sent(ErrorClass::Network, "unused")
        }
    }

    #[tokio::test]
    async fn a_person_never_gets_a_template_the_event_cannot_fill() {
        let event = format::test_event(herald_core::domain::OrgId::new(), Utc::now());
        let template = Template {
            title: Some("Welcome {{properties.name}}".into()),
            body: None,
            link: None,
        };
        let ctx = MessageContext {
            event: &event,
            rule_key: None,
            template: Some(&template),
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let now = Utc::now();
        let channel = Channel {
            id: ChannelId::new(),
            org_id: event.org_id,
            name: ChannelName::parse("mail").expect("name"),
            config: ChannelConfig::Email(EmailConfig::Outbox { from: None }),
            frequency_cap: None,
            rate_limit: None,
            enabled: true,
            health: Default::default(),
            created_at: now,
            updated_at: now,
        };
        let sender = Counting::default();
        let outcome = attempt_user(&sender, &channel, &ctx, vec!["a@example.com".into()]).await;
        assert_eq!(sender.0.load(Ordering::SeqCst), 0, "nothing was sent");
        assert_eq!(outcome.error_class, Some(ErrorClass::BadPayload));
        assert!(!ErrorClass::BadPayload.is_retryable());
        assert_eq!(
            outcome.message.as_deref(),
            Some(
                "the rule's template cannot be filled: the event has no `properties.name`; nothing was sent"
            )
        );
    }
}
