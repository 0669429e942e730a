//! Delivering to ops channels: payload formatters (Slack, Discord, Teams, generic webhook),
//! Standard Webhooks signing, response classification, the retry policy, outbound safety and the
//! HTTP sender.
//!
//! The pieces and who uses them:
//! - [`format::render`] turns an event (plus rule key, template and delivery id) into an
//!   [`OutboundMessage`] for one channel; pure.
//! - [`Sender::send`] makes one attempt and reports an [`AttemptOutcome`]; [`HttpSender`] (feature
//!   `http-senders`) is the real one, built on the outbound-safe client of [`http`].
//! - [`classify::classify`] maps what came back to an [`ErrorClass`](crate::domain::delivery::ErrorClass)
//!   (SPEC §3); [`retry::RetryPolicy::next_attempt`] decides when, or whether, to try again.
//! - [`outbound`] says which addresses may be reached ([`check_target`] at channel save time; the
//!   HTTP client re-checks every resolved address it connects to).
//! - [`signing`] signs generic webhooks and verifies signatures (for tests and receivers).

pub mod caps;
pub mod classify;
pub mod format;
#[cfg(feature = "http-senders")]
pub mod http;
pub mod in_app;
pub mod outbound;
pub mod outbox;
pub mod providers;
pub mod quiet;
pub mod retry;
pub mod sender;
pub mod senders;
pub mod signing;
pub mod tracking;

pub use format::{MessageContext, OutboundMessage, Target, UserMessage};
#[cfg(feature = "http-senders")]
pub use http::{OutboundClient, OutboundConfig};
pub use outbound::{AllowList, Blocked, check_target};
pub use outbox::OutboxSender;
#[cfg(feature = "http-senders")]
pub use sender::HttpSender;
pub use sender::{AttemptOutcome, Sender};
pub use senders::Senders;

use crate::domain::channel::Channel;
use crate::domain::delivery::ErrorClass;

/// One attempt to deliver `ctx` to `channel`: format for its kind, then send. Kinds with no
/// sender here come back as a configuration error rather than vanishing. The dispatcher and the
/// channel test button both go through this, so a test proves the path a page will take.
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
/// `to` are the resolved contact points. Which provider sends it is the sender's business
/// ([`Senders`] routes by the channel's provider).
pub async fn attempt_user(
    sender: &dyn Sender,
    channel: &Channel,
    ctx: &MessageContext<'_>,
    to: Vec<String>,
) -> AttemptOutcome {
    let message = format::render_user(channel.kind(), ctx, to);
    sender.send(channel, &message).await
}
