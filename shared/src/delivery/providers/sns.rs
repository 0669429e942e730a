//! SMS through Amazon SNS: one `Publish` to the E.164 phone number per attempt, transactional
//! (SNS's higher-reliability route), with the channel's sender id when it has one.
//!
//! The text is the title, the body and the link, one per line, plain, at most [`MAX_SMS_BYTES`]:
//! the title and body are cut before the link is.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use tracing::{debug, warn};

use super::aws::{RegionalClients, checked_region, failed_outcome};
use crate::delivery::sender::user_message;
use crate::delivery::sender::{AttemptOutcome, Sender, truncate_bytes};
use herald_core::delivery::format::{OutboundMessage, UserMessage};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, SmsConfig};
use herald_core::domain::delivery::ErrorClass;

/// The longest SMS SNS accepts, in bytes (it is split into segments on the way).
pub const MAX_SMS_BYTES: usize = 1600;
/// The message attribute naming the sender id.
pub const SENDER_ID_ATTRIBUTE: &str = "AWS.SNS.SMS.SenderID";
/// The message attribute choosing the route.
pub const SMS_TYPE_ATTRIBUTE: &str = "AWS.SNS.SMS.SMSType";

/// Sends the SMS channels whose provider is `sns`.
#[derive(Debug)]
pub struct SnsSender {
    clients: RegionalClients<Client>,
}

impl SnsSender {
    /// `endpoint`: an SNS-compatible emulator instead of AWS (tests); `None` uses the default
    /// AWS provider chain for credentials and the default region.
    pub fn new(endpoint: Option<String>) -> Self {
        Self {
            clients: RegionalClients::new(endpoint, Client::new),
        }
    }
}

/// The SMS text of a message: title, body and link on their own lines, bounded.
pub fn text(message: &UserMessage) -> String {
    let link = message
        .link
        .as_deref()
        .filter(|l| l.len() < MAX_SMS_BYTES / 2);
    let mut words = message.title.trim().to_owned();
    if let Some(body) = message
        .body
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        words.push('\n');
        words.push_str(body);
    }
    match link {
        Some(link) => {
            let budget = MAX_SMS_BYTES - link.len() - 1;
            format!("{}\n{link}", truncate_bytes(&words, budget))
        }
        None => truncate_bytes(&words, MAX_SMS_BYTES),
    }
}

/// The `Publish` message attributes: transactional, with the sender id when there is one.
pub fn attributes(
    sender_id: Option<&str>,
) -> Result<HashMap<String, MessageAttributeValue>, String> {
    let string = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| e.to_string())
    };
    let mut out = HashMap::from([(SMS_TYPE_ATTRIBUTE.to_owned(), string("Transactional")?)]);
    if let Some(id) = sender_id.filter(|s| !s.trim().is_empty()) {
        out.insert(SENDER_ID_ATTRIBUTE.to_owned(), string(id)?);
    }
    Ok(out)
}

/// The message, or why it cannot be sent over SNS.
fn read<'a>(
    channel: &'a Channel,
    message: &OutboundMessage,
) -> Result<(Option<&'a str>, Option<&'a str>, UserMessage), AttemptOutcome> {
    let ChannelConfig::Sms(SmsConfig::Sns { sender_id, region }) = &channel.config else {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            format!(
                "{} channels are not sent through SNS",
                channel.kind().as_str()
            ),
        ));
    };
    let user = user_message(message, ChannelKind::Sms)?;
    if user.to.is_empty() {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::BadPayload,
            "the message names no phone number",
        ));
    }
    Ok((
        sender_id.as_deref(),
        checked_region(region.as_deref())?,
        user,
    ))
}

#[async_trait]
impl Sender for SnsSender {
    /// Publishes to every number of the message (the dispatcher gives one), stopping at the
    /// first failure.
    #[tracing::instrument(
        name = "sns_send",
        skip_all,
        fields(delivery_id = %message.delivery_id, channel_id = %channel.id)
    )]
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        let (sender_id, region, user) = match read(channel, message) {
            Ok(parts) => parts,
            Err(outcome) => return outcome,
        };
        let attributes = match attributes(sender_id) {
            Ok(a) => a,
            Err(e) => return AttemptOutcome::not_sent(ErrorClass::Configuration, e),
        };
        let body = text(&user);
        let client = self.clients.get(region).await;
        let started = Instant::now();
        let mut ids = Vec::with_capacity(user.to.len());
        for number in &user.to {
            let result = client
                .publish()
                .phone_number(number)
                .message(&body)
                .set_message_attributes(Some(attributes.clone()))
                .send()
                .await;
            match result {
                Ok(out) => ids.push(out.message_id().unwrap_or("").to_owned()),
                Err(e) => {
                    let outcome = failed_outcome(&e, started.elapsed());
                    warn!(
                        status = outcome.status_code,
                        error_class = ?outcome.error_class,
                        latency_ms = outcome.latency.as_millis() as u64,
                        "attempt failed"
                    );
                    return outcome;
                }
            }
        }
        let latency = started.elapsed();
        debug!(latency_ms = latency.as_millis() as u64, "delivered");
        AttemptOutcome {
            status_code: Some(200),
            error_class: None,
            message: Some(format!("accepted by SNS: message id {}", ids.join(", "))),
            latency,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::domain::{EventId, OrgId};

    fn user(title: &str, body: Option<&str>, link: Option<&str>) -> UserMessage {
        UserMessage {
            org_id: OrgId::new(),
            channel_kind: ChannelKind::Sms,
            to: vec!["+14155550100".into()],
            title: title.into(),
            body: body.map(str::to_owned),
            link: link.map(str::to_owned),
            event_type: "auth.login".into(),
            event_id: EventId::parse("evt-1").expect("id"),
            rule_key: None,
        }
    }

    #[test]
    fn the_text_is_title_body_and_link_on_their_own_lines() {
        assert_eq!(
            text(&user(
                "New sign-in",
                Some("From Lisbon, Chrome"),
                Some("https://x.example/s")
            )),
            "New sign-in\nFrom Lisbon, Chrome\nhttps://x.example/s"
        );
        assert_eq!(text(&user("New sign-in", Some("  "), None)), "New sign-in");
    }

    #[test]
    fn a_long_text_is_cut_but_keeps_its_link() {
        let long = "é".repeat(2000);
        let t = text(&user("Title", Some(&long), Some("https://x.example/s")));
        assert!(t.len() <= MAX_SMS_BYTES, "{}", t.len());
        assert!(t.ends_with("…\nhttps://x.example/s"));
    }

    #[test]
    fn messages_are_transactional_with_the_sender_id_when_set() {
        let a = attributes(Some("HERALD")).expect("attributes");
        assert_eq!(
            a.get(SMS_TYPE_ATTRIBUTE).and_then(|v| v.string_value()),
            Some("Transactional")
        );
        assert_eq!(
            a.get(SENDER_ID_ATTRIBUTE).and_then(|v| v.string_value()),
            Some("HERALD")
        );
        assert!(
            !attributes(None)
                .expect("attributes")
                .contains_key(SENDER_ID_ATTRIBUTE)
        );
    }
}
