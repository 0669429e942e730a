//! Email through Amazon SES (v2 API): one `SendEmail` per attempt, with a simple content
//! (subject, text and HTML bodies) from the channel's `from` to the message's recipients, in the
//! configuration set and region the channel names.

use std::time::Instant;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::Region;
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use tracing::{debug, warn};

use super::aws::{ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, RegionalClients, failed_outcome};
use crate::delivery::format::{OutboundMessage, Target, UserMessage};
use crate::delivery::sender::{AttemptOutcome, Sender};
use crate::domain::DeliveryId;
use crate::domain::channel::{Channel, ChannelConfig, ChannelKind, EmailConfig};
use crate::domain::delivery::ErrorClass;

const CHARSET: &str = "UTF-8";

/// Sends the email channels whose provider is `ses`.
#[derive(Debug)]
pub struct SesSender {
    clients: RegionalClients<Client>,
}

impl SesSender {
    /// `endpoint`: an SES-compatible emulator instead of AWS (tests); `None` uses the default
    /// AWS provider chain for credentials and the default region.
    pub fn new(endpoint: Option<String>) -> Self {
        Self {
            clients: RegionalClients::new(endpoint, build_client),
        }
    }
}

fn build_client(sdk: &SdkConfig, region: Option<&str>) -> Client {
    let mut config = aws_sdk_sesv2::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(region) = region {
        config = config.region(Region::new(region.to_owned()));
    }
    Client::from_conf(config.build())
}

/// What one email says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The email for a message.
// The one place the email body is decided: the tracked format (open pixel, click links) plugs in
// here.
pub fn render(message: &UserMessage, _delivery_id: DeliveryId) -> Rendered {
    let mut text = String::new();
    let mut html = format!("<h1>{}</h1>\n", escape_html(&message.title));
    if let Some(body) = message.body.as_deref().filter(|b| !b.trim().is_empty()) {
        text.push_str(body);
        html.push_str(&format!(
            "<p>{}</p>\n",
            escape_html(body).replace('\n', "<br>\n")
        ));
    }
    if let Some(link) = &message.link {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(link);
        html.push_str(&format!(
            "<p><a href=\"{0}\">{0}</a></p>\n",
            escape_html(link)
        ));
    }
    if text.is_empty() {
        text.push_str(&message.title);
    }
    Rendered {
        subject: message.title.clone(),
        text,
        html,
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `SendEmail` content of an email.
pub fn email_content(email: &Rendered) -> Result<EmailContent, String> {
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
        .build();
    Ok(EmailContent::builder().simple(message).build())
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
    if message.target != Target::Recipient(ChannelKind::Email) {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            "the message was not formatted for an email channel",
        ));
    }
    let user: UserMessage = serde_json::from_slice(&message.body).map_err(|e| {
        AttemptOutcome::not_sent(ErrorClass::BadPayload, format!("unreadable message: {e}"))
    })?;
    if user.to.is_empty() {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::BadPayload,
            "the message names no email address",
        ));
    }
    Ok(Parts {
        from,
        configuration_set: configuration_set.as_deref(),
        region: region.as_deref(),
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
        let content = match email_content(&render(&user, message.delivery_id)) {
            Ok(c) => c,
            Err(e) => return AttemptOutcome::not_sent(ErrorClass::BadPayload, e),
        };
        let client = self.clients.get(region).await;
        let started = Instant::now();
        let result = client
            .send_email()
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
    use crate::domain::{EventId, OrgId};

    fn user(body: Option<&str>, link: Option<&str>) -> UserMessage {
        UserMessage {
            org_id: OrgId::new(),
            channel_kind: ChannelKind::Email,
            to: vec!["ana@example.com".into()],
            title: "Disk <full> on db-1".into(),
            body: body.map(str::to_owned),
            link: link.map(str::to_owned),
            event_type: "ops.disk".into(),
            event_id: EventId::parse("evt-1").expect("id"),
            rule_key: None,
        }
    }

    #[test]
    fn the_email_has_the_title_as_subject_and_escapes_its_html() {
        let email = render(
            &user(
                Some("95% used & rising"),
                Some("https://status.example.com/?a=1&b=2"),
            ),
            DeliveryId::new(),
        );
        assert_eq!(email.subject, "Disk <full> on db-1");
        assert_eq!(
            email.text,
            "95% used & rising\n\nhttps://status.example.com/?a=1&b=2"
        );
        assert!(email.html.contains("<h1>Disk &lt;full&gt; on db-1</h1>"));
        assert!(email.html.contains("95% used &amp; rising"));
        assert!(
            email
                .html
                .contains("href=\"https://status.example.com/?a=1&amp;b=2\"")
        );
    }

    #[test]
    fn the_send_email_content_carries_subject_text_and_html_in_utf8() {
        let email = render(&user(None, None), DeliveryId::new());
        let content = email_content(&email).expect("content");
        let simple = content.simple().expect("simple");
        assert_eq!(
            simple.subject().map(|s| (s.data(), s.charset())),
            Some(("Disk <full> on db-1", Some("UTF-8")))
        );
        let body = simple.body().expect("body");
        assert_eq!(body.text().map(Content::data), Some("Disk <full> on db-1"));
        assert!(
            body.html()
                .map(Content::data)
                .is_some_and(|h| h.contains("<h1>"))
        );
    }
}
