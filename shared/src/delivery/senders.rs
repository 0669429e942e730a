//! [`Senders`]: one [`Sender`] that routes each message by its channel's kind and provider —
//! Slack and webhooks to the HTTP sender, `outbox` providers to the local outbox, SMTP email and
//! FCM push to their senders when attached ([`Senders::with_smtp`], [`Senders::with_fcm`]) — and
//! answers a clear configuration error for providers this build cannot reach (SES, SNS, or SMTP
//! and FCM without a sender).

use std::sync::Arc;

use async_trait::async_trait;

use super::format::OutboundMessage;
use super::sender::{AttemptOutcome, Sender};
use crate::domain::channel::{Channel, ChannelConfig, EmailConfig, PushConfig, SmsConfig};
use crate::domain::delivery::ErrorClass;

/// Routes by channel kind and provider.
#[derive(Debug, Clone)]
pub struct Senders {
    http: Arc<dyn Sender>,
    outbox: Option<Arc<dyn Sender>>,
    /// SMTP email channels (`providers::smtp::SmtpSender`, feature `email-smtp`).
    smtp: Option<Arc<dyn Sender>>,
    /// FCM HTTP v1 push (`providers::fcm::FcmSender`, feature `push-fcm`).
    fcm: Option<Arc<dyn Sender>>,
}

impl Senders {
    /// `outbox`: where `outbox` providers deliver (`herald serve`); `None` in AWS, where such a
    /// channel cannot exist (the API requires a provider) and a message to one fails clearly.
    pub fn new(http: Arc<dyn Sender>, outbox: Option<Arc<dyn Sender>>) -> Self {
        Self {
            http,
            outbox,
            smtp: None,
            fcm: None,
        }
    }

    /// Sends email channels whose provider is `smtp` through `sender` (an `SmtpSender`,
    /// feature `email-smtp`, in production).
    pub fn with_smtp(mut self, sender: Arc<dyn Sender>) -> Self {
        self.smtp = Some(sender);
        self
    }

    /// Routes push channels configured for FCM to `fcm` (an
    /// [`FcmSender`](crate::delivery::providers::fcm::FcmSender) in production).
    pub fn with_fcm(mut self, fcm: Arc<dyn Sender>) -> Self {
        self.fcm = Some(fcm);
        self
    }
}

fn not_built(provider: &str, kind: &str) -> AttemptOutcome {
    AttemptOutcome::not_sent(
        ErrorClass::Configuration,
        format!(
            "the {provider} {kind} provider is not available in this version of Herald: nothing was sent; use the local outbox (herald serve) until it is"
        ),
    )
}

#[async_trait]
impl Sender for Senders {
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        match &channel.config {
            ChannelConfig::Slack(_) | ChannelConfig::Webhook(_) | ChannelConfig::InApp => {
                self.http.send(channel, message).await
            }
            ChannelConfig::Email(EmailConfig::Outbox { .. })
            | ChannelConfig::Sms(SmsConfig::Outbox)
            | ChannelConfig::Push(PushConfig::Outbox) => match &self.outbox {
                Some(outbox) => outbox.send(channel, message).await,
                None => AttemptOutcome::not_sent(
                    ErrorClass::Configuration,
                    format!(
                        "this deployment has no local outbox: configure a {} provider for the channel",
                        channel.kind().as_str()
                    ),
                ),
            },
            ChannelConfig::Email(EmailConfig::Ses { .. }) => not_built("SES", "email"),
            ChannelConfig::Email(EmailConfig::Smtp { .. }) => match &self.smtp {
                Some(smtp) => smtp.send(channel, message).await,
                None => not_built("SMTP", "email"),
            },
            ChannelConfig::Sms(SmsConfig::Sns { .. }) => not_built("SNS", "SMS"),
            ChannelConfig::Push(PushConfig::Fcm { .. }) => match &self.fcm {
                Some(fcm) => fcm.send(channel, message).await,
                None => not_built("FCM", "push"),
            },
        }
    }
}
