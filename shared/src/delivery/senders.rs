//! [`Senders`]: one [`Sender`] that routes each message by its channel's kind and provider —
//! Slack and webhooks to the HTTP sender, `outbox` providers to the local outbox, `ses` and `sns`
//! to the AWS providers, SMTP email and FCM push to their senders when they were given
//! ([`Senders::with_aws_notify`], [`Senders::with_smtp`], [`Senders::with_fcm`]) — and answers a
//! clear configuration error for a provider this process was not given.

use std::sync::Arc;

use async_trait::async_trait;

use super::format::OutboundMessage;
use super::sender::{AttemptOutcome, Sender};
use herald_core::domain::channel::{Channel, ChannelConfig, EmailConfig, PushConfig, SmsConfig};
use herald_core::domain::delivery::ErrorClass;

/// Routes by channel kind and provider.
#[derive(Debug, Clone)]
pub struct Senders {
    http: Arc<dyn Sender>,
    outbox: Option<Arc<dyn Sender>>,
    /// SMTP email channels (`providers::smtp::SmtpSender`, feature `email-smtp`).
    smtp: Option<Arc<dyn Sender>>,
    ses: Option<Arc<dyn Sender>>,
    sns: Option<Arc<dyn Sender>>,
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
            ses: None,
            sns: None,
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

    /// Email channels whose provider is `ses` go to `ses`.
    pub fn with_ses(mut self, ses: Arc<dyn Sender>) -> Self {
        self.ses = Some(ses);
        self
    }

    /// SMS channels whose provider is `sns` go to `sns`.
    pub fn with_sns(mut self, sns: Arc<dyn Sender>) -> Self {
        self.sns = Some(sns);
        self
    }

    /// SES email (rendered by `emails`) and SNS SMS through the AWS SDK. `endpoint`: an
    /// emulator instead of AWS (tests); `None`: the default provider chain, loaded on the first
    /// send.
    #[cfg(feature = "aws-notify")]
    pub fn with_aws_notify(
        self,
        endpoint: Option<String>,
        emails: super::format::email::EmailRenderer,
    ) -> Self {
        use super::providers::{ses::SesSender, sns::SnsSender};
        self.with_ses(Arc::new(SesSender::new(endpoint.clone(), emails)))
            .with_sns(Arc::new(SnsSender::new(endpoint)))
    }
}

/// The senders of the Lambda functions — the dispatcher, and the api's channel test button, which
/// must take the same path a page will: Slack, webhooks and FCM push over one outbound-safe HTTP
/// client (no private targets: every reserved range is refused), SMTP relays with the public roots
/// only, SES email and SNS SMS with the function's role. No outbox in AWS. `emails` renders every
/// email (with tracking links when the deployment has a public URL).
#[cfg(all(feature = "push-fcm", feature = "email-smtp", feature = "aws-notify"))]
pub fn for_lambda(
    emails: super::format::email::EmailRenderer,
) -> Result<Senders, Box<dyn std::error::Error + Send + Sync>> {
    use super::http::{OutboundClient, OutboundConfig};
    use super::providers::fcm::FcmSender;
    use super::providers::smtp::{SmtpConfig, SmtpSender};
    use super::sender::HttpSender;

    let outbound = OutboundClient::new(OutboundConfig::default())?;
    let smtp = SmtpSender::new(SmtpConfig::default(), emails.clone(), &[])?;
    Ok(
        Senders::new(Arc::new(HttpSender::from_client(outbound.clone())), None)
            .with_fcm(Arc::new(FcmSender::new(outbound)))
            .with_smtp(Arc::new(smtp))
            .with_aws_notify(None, emails),
    )
}

fn not_configured(provider: &str, kind: &str) -> AttemptOutcome {
    AttemptOutcome::not_sent(
        ErrorClass::Configuration,
        format!(
            "the {provider} {kind} provider is not enabled in this Herald process: nothing was sent"
        ),
    )
}

async fn send_with(
    sender: Option<&Arc<dyn Sender>>,
    (provider, kind): (&str, &str),
    channel: &Channel,
    message: &OutboundMessage,
) -> AttemptOutcome {
    match sender {
        Some(s) => s.send(channel, message).await,
        None => not_configured(provider, kind),
    }
}

/// The provider sender a channel goes to, for the person-facing calls only SNS and FCM answer.
fn provider<'a>(senders: &'a Senders, channel: &Channel) -> Option<&'a Arc<dyn Sender>> {
    match &channel.config {
        ChannelConfig::Sms(SmsConfig::Sns { .. }) => senders.sns.as_ref(),
        ChannelConfig::Push(PushConfig::Fcm { .. }) => senders.fcm.as_ref(),
        _ => None,
    }
}

#[async_trait]
impl Sender for Senders {
    async fn send_to_person(
        &self,
        channel: &Channel,
        message: &OutboundMessage,
    ) -> (AttemptOutcome, super::ContactFeedback) {
        match provider(self, channel) {
            Some(p) => p.send_to_person(channel, message).await,
            None => (self.send(channel, message).await, Default::default()),
        }
    }

    async fn sms_opt_outs(&self, channel: &Channel) -> Option<Result<Vec<String>, String>> {
        match &channel.config {
            ChannelConfig::Sms(SmsConfig::Sns { .. }) => {
                self.sns.as_ref()?.sms_opt_outs(channel).await
            }
            _ => None,
        }
    }

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
            ChannelConfig::Email(EmailConfig::Ses { .. }) => {
                send_with(self.ses.as_ref(), ("SES", "email"), channel, message).await
            }
            ChannelConfig::Email(EmailConfig::Smtp { .. }) => {
                send_with(self.smtp.as_ref(), ("SMTP", "email"), channel, message).await
            }
            ChannelConfig::Sms(SmsConfig::Sns { .. }) => {
                send_with(self.sns.as_ref(), ("SNS", "SMS"), channel, message).await
            }
            ChannelConfig::Push(PushConfig::Fcm { .. }) => {
                send_with(self.fcm.as_ref(), ("FCM", "push"), channel, message).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use herald_core::delivery::format::Target;
    use herald_core::domain::{DeliveryId, OrgId};

    /// Answers delivered, saying its name.
    #[derive(Debug)]
    struct Named(&'static str);

    #[async_trait]
    impl Sender for Named {
        async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
            AttemptOutcome {
                status_code: Some(200),
                error_class: None,
                message: Some(self.0.to_owned()),
                latency: Duration::ZERO,
                retry_after: None,
            }
        }
    }

    fn channel(config: ChannelConfig) -> Channel {
        herald_testing::channels::channel(OrgId::new(), config)
    }

    fn message(kind: herald_core::domain::channel::ChannelKind) -> OutboundMessage {
        OutboundMessage {
            delivery_id: DeliveryId::new(),
            target: Target::Recipient(kind),
            body: Bytes::from_static(b"{}"),
        }
    }

    fn ses() -> Channel {
        channel(ChannelConfig::Email(EmailConfig::Ses {
            from: "a@example.com".into(),
            configuration_set: None,
            region: None,
        }))
    }

    fn sns() -> Channel {
        channel(ChannelConfig::Sms(SmsConfig::Sns {
            sender_id: None,
            region: None,
        }))
    }

    #[tokio::test]
    async fn ses_and_sns_channels_go_to_their_providers() {
        let senders = Senders::new(Arc::new(Named("http")), None)
            .with_ses(Arc::new(Named("ses")))
            .with_sns(Arc::new(Named("sns")));
        let email = senders.send(&ses(), &message(ses().kind())).await;
        assert_eq!(email.message.as_deref(), Some("ses"));
        let sms = senders.send(&sns(), &message(sns().kind())).await;
        assert_eq!(sms.message.as_deref(), Some("sns"));
    }

    #[tokio::test]
    async fn without_a_provider_the_attempt_is_a_configuration_error() {
        let senders = Senders::new(Arc::new(Named("http")), None);
        for (c, provider) in [(ses(), "SES"), (sns(), "SNS")] {
            let out = senders.send(&c, &message(c.kind())).await;
            assert_eq!(out.error_class, Some(ErrorClass::Configuration));
            assert!(
                out.message.as_deref().is_some_and(|m| m.contains(provider)),
                "{:?}",
                out.message
            );
        }
    }
}
