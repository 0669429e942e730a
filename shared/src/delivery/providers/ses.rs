//! Email through Amazon SES (v2 API): one `SendEmail` per attempt, with a simple content
//! (subject, text and HTML bodies) from the channel's `from` to the message's recipients, in the
//! configuration set and region the channel names.
//!
//! Every email carries the message tags `herald_org` and `herald_delivery`: SES returns them in
//! `mail.tags` of its bounce and complaint events, which is how the feedback handler finds the
//! org whose suppression list they go to (docs/hygiene.md).

use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, EmailContent as SesContent, Message, MessageHeader, MessageTag,
};
use herald_core::hygiene::ses::{DELIVERY_TAG, ORG_TAG};
use tracing::{debug, warn};

use super::aws::{RegionalClients, checked_region, failed_outcome};
use crate::delivery::sender::user_message;
use crate::delivery::sender::{AttemptOutcome, Sender};
use herald_core::delivery::format::email::{EmailContent, EmailRenderer};
use herald_core::delivery::format::{OutboundMessage, UserMessage};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, EmailConfig};
use herald_core::domain::delivery::ErrorClass;

const CHARSET: &str = "UTF-8";

/// Sends the email channels whose provider is `ses`, rendered by an [`EmailRenderer`].
#[derive(Debug)]
pub struct SesSender {
    clients: RegionalClients<Client>,
    renderer: EmailRenderer,
}

impl SesSender {
    /// `endpoint`: an SES-compatible emulator instead of AWS (tests); `None` uses the default
    /// AWS provider chain for credentials and the default region. `renderer` decides the
    /// content (and its open/click tracking).
    pub fn new(endpoint: Option<String>, renderer: EmailRenderer) -> Self {
        Self {
            clients: RegionalClients::new(endpoint, Client::new),
            renderer,
        }
    }
}

/// The `SendEmail` content of an email.
pub fn ses_content(email: &EmailContent) -> Result<SesContent, String> {
    let content = |data: &str| {
        Content::builder()
            .data(data)
            .charset(CHARSET)
            .build()
            .map_err(|e| e.to_string())
    };
    let message = Message::builder()
        .subject(content(&email.subject)?)
        .body(
            Body::builder()
                .text(content(&email.text)?)
                .html(content(&email.html)?)
                .build(),
        )
        // SES v2 takes extra header fields on a simple message (`Message.headers`).
        .set_headers(Some(
            email
                .headers
                .iter()
                .map(|(name, value)| {
                    MessageHeader::builder()
                        .name(name)
                        .value(value)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?,
        ))
        .build();
    Ok(SesContent::builder().simple(message).build())
}

/// The message tags of an email: its org and delivery (UUIDs, within SES's tag alphabet).
pub fn tags(org: &str, delivery: &str) -> Result<Vec<MessageTag>, String> {
    [(ORG_TAG, org), (DELIVERY_TAG, delivery)]
        .into_iter()
        .map(|(name, value)| {
            MessageTag::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// What one `SendEmail` needs from the channel and the message.
struct Parts<'a> {
    from: &'a str,
    configuration_set: Option<&'a str>,
    region: Option<&'a str>,
    user: UserMessage,
}

/// The message, or why it cannot be sent over SES.
fn read<'a>(channel: &'a Channel, message: &OutboundMessage) -> Result<Parts<'a>, AttemptOutcome> {
    let ChannelConfig::Email(EmailConfig::Ses {
        from,
        configuration_set,
        region,
    }) = &channel.config
    else {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            format!(
                "{} channels are not sent through SES",
                channel.kind().as_str()
            ),
        ));
    };
    let user = user_message(message, ChannelKind::Email)?;
    if user.to.is_empty() {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::BadPayload,
            "the message names no email address",
        ));
    }
    Ok(Parts {
        from,
        configuration_set: configuration_set.as_deref(),
        region: checked_region(region.as_deref())?,
        user,
    })
}

#[async_trait]
impl Sender for SesSender {
    #[tracing::instrument(
        name = "ses_send",
        skip_all,
        fields(delivery_id = %message.delivery_id, channel_id = %channel.id)
    )]
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        let Parts {
            from,
            configuration_set,
            region,
            user,
        } = match read(channel, message) {
            Ok(parts) => parts,
            Err(outcome) => return outcome,
        };
        let content = match ses_content(&self.renderer.render(&user, message.delivery_id)) {
            Ok(c) => c,
            Err(e) => return AttemptOutcome::not_sent(ErrorClass::BadPayload, e),
        };
        let tags = match tags(&user.org_id.to_string(), &message.delivery_id.to_string()) {
            Ok(t) => t,
            Err(e) => return AttemptOutcome::not_sent(ErrorClass::BadPayload, e),
        };
        let client = self.clients.get(region).await;
        let started = Instant::now();
        let result = client
            .send_email()
            .set_email_tags(Some(tags))
            .from_email_address(from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(user.to))
                    .build(),
            )
            .content(content)
            .set_configuration_set_name(configuration_set.map(str::to_owned))
            .send()
            .await;
        let latency = started.elapsed();
        match result {
            Ok(out) => {
                let id = out.message_id().unwrap_or("");
                debug!(
                    ses_message_id = id,
                    latency_ms = latency.as_millis() as u64,
                    "delivered"
                );
                AttemptOutcome {
                    status_code: Some(200),
                    error_class: None,
                    message: Some(format!("accepted by SES: message id {id}")),
                    latency,
                    retry_after: None,
                }
            }
            Err(e) => {
                let outcome = failed_outcome(&e, latency);
                warn!(
                    status = outcome.status_code,
                    error_class = ?outcome.error_class,
                    latency_ms = latency.as_millis() as u64,
                    "attempt failed"
                );
                outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_tagged_with_their_org_and_delivery() {
        let tags = tags("01a24b39-aa00-7000-8000-0000000000aa", "d-1").expect("tags");
        let pairs: Vec<_> = tags.iter().map(|t| (t.name(), t.value())).collect();
        assert_eq!(
            pairs,
            [
                ("herald_org", "01a24b39-aa00-7000-8000-0000000000aa"),
                ("herald_delivery", "d-1")
            ]
        );
    }

    #[test]
    fn the_send_email_content_carries_subject_text_and_html_in_utf8() {
        let email = EmailContent {
            subject: "Disk full on db-1".into(),
            text: "95% used".into(),
            html: "<h1>Disk full on db-1</h1>".into(),
            headers: [
                (
                    "List-Unsubscribe".to_owned(),
                    "<https://h.example/u/t>".to_owned(),
                ),
                (
                    "List-Unsubscribe-Post".to_owned(),
                    "List-Unsubscribe=One-Click".to_owned(),
                ),
            ]
            .into(),
        };
        let content = ses_content(&email).expect("content");
        let simple = content.simple().expect("simple");
        let headers: Vec<(&str, &str)> = simple
            .headers()
            .iter()
            .map(|h| (h.name(), h.value()))
            .collect();
        assert_eq!(
            headers,
            [
                ("List-Unsubscribe", "<https://h.example/u/t>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            ]
        );
        assert_eq!(
            simple.subject().map(|s| (s.data(), s.charset())),
            Some(("Disk full on db-1", Some("UTF-8")))
        );
        let body = simple.body().expect("body");
        assert_eq!(
            body.text().map(|t| (t.data(), t.charset())),
            Some(("95% used", Some("UTF-8")))
        );
        assert_eq!(
            body.html().map(Content::data),
            Some("<h1>Disk full on db-1</h1>")
        );
    }
}
