//! SMS through Amazon SNS: one `Publish` to the E.164 phone number per attempt, transactional
//! (SNS's higher-reliability route), with the channel's sender id when it has one.
//!
//! The text is the title, the body and the link, one per line, plain, at most [`MAX_SMS_BYTES`]:
//! the title and body are cut before the link is.
//!
//! SMS STOP: before publishing to a number, `CheckIfPhoneNumberIsOptedOut` (answers cached in
//! the process, [`OPT_OUT_CACHE_ENTRIES`] at most, for [`OPT_OUT_CACHE_TTL`]). SNS refuses to
//! text an opted-out number anyway; asking first lets the dispatcher end the delivery
//! `suppressed` and add the number to the org's suppression list instead of logging a failure.
//! A check that fails (throttled: SNS allows 50 a second) does not stop the send.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use tracing::{debug, warn};

use super::aws::{RegionalClients, checked_region, failed_outcome};
use crate::delivery::sender::user_message;
use crate::delivery::sender::{AttemptOutcome, ContactFeedback, Sender, truncate_bytes};
use herald_core::delivery::format::{OutboundMessage, UserMessage};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, SmsConfig};
use herald_core::domain::delivery::ErrorClass;

/// The longest SMS SNS accepts, in bytes (it is split into segments on the way).
pub const MAX_SMS_BYTES: usize = 1600;
/// The message attribute naming the sender id.
pub const SENDER_ID_ATTRIBUTE: &str = "AWS.SNS.SMS.SenderID";
/// The message attribute choosing the route.
pub const SMS_TYPE_ATTRIBUTE: &str = "AWS.SNS.SMS.SMSType";

/// Most opt-out answers kept in the process.
pub const OPT_OUT_CACHE_ENTRIES: usize = 10_000;
/// How long an opt-out answer is trusted.
pub const OPT_OUT_CACHE_TTL: Duration = Duration::from_secs(600);

/// A cached answer's key: region (`None`: the default) and number.
type NumberKey = (Option<String>, String);

/// `CheckIfPhoneNumberIsOptedOut` answers by region and number, bounded in size and age.
#[derive(Debug)]
pub struct OptOutCache {
    /// The answer and when it came.
    entries: Mutex<HashMap<NumberKey, (bool, Instant)>>,
    max: usize,
    ttl: Duration,
}

impl OptOutCache {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max: max.max(1),
            ttl,
        }
    }

    /// The answer for `number`, when one younger than the TTL is kept.
    pub fn get(&self, region: Option<&str>, number: &str, now: Instant) -> Option<bool> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(&(region.map(str::to_owned), number.to_owned()))
            .filter(|(_, at)| now.duration_since(*at) < self.ttl)
            .map(|(opted_out, _)| *opted_out)
    }

    /// Keeps an answer; when full, drops the expired answers, then the oldest.
    pub fn put(&self, region: Option<&str>, number: &str, opted_out: bool, now: Instant) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            while entries.len() >= self.max {
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&oldest);
            }
        }
        entries.insert(
            (region.map(str::to_owned), number.to_owned()),
            (opted_out, now),
        );
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sends the SMS channels whose provider is `sns`.
#[derive(Debug)]
pub struct SnsSender {
    clients: RegionalClients<Client>,
    opt_outs: OptOutCache,
}

impl SnsSender {
    /// `endpoint`: an SNS-compatible emulator instead of AWS (tests); `None` uses the default
    /// AWS provider chain for credentials and the default region.
    pub fn new(endpoint: Option<String>) -> Self {
        Self {
            clients: RegionalClients::new(endpoint, Client::new),
            opt_outs: OptOutCache::new(OPT_OUT_CACHE_ENTRIES, OPT_OUT_CACHE_TTL),
        }
    }

    /// Whether SNS says `number` opted out; `None` when it could not say (the send goes on).
    async fn opted_out(&self, client: &Client, region: Option<&str>, number: &str) -> Option<bool> {
        if let Some(known) = self.opt_outs.get(region, number, Instant::now()) {
            return Some(known);
        }
        match client
            .check_if_phone_number_is_opted_out()
            .phone_number(number)
            .send()
            .await
        {
            Ok(out) => {
                let opted_out = out.is_opted_out();
                self.opt_outs.put(region, number, opted_out, Instant::now());
                Some(opted_out)
            }
            Err(e) => {
                warn!(error = %aws_sdk_sns::error::DisplayErrorContext(&e), "SMS opt-out check failed; sending anyway");
                None
            }
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
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        self.send_to_person(channel, message).await.0
    }

    /// Publishes to every number of the message that has not opted out (the dispatcher gives
    /// one), stopping at the first failure. Opted-out numbers come back in the feedback; when
    /// every number opted out nothing is published and the attempt is `rejected`.
    #[tracing::instrument(
        name = "sns_send",
        skip_all,
        fields(delivery_id = %message.delivery_id, channel_id = %channel.id)
    )]
    async fn send_to_person(
        &self,
        channel: &Channel,
        message: &OutboundMessage,
    ) -> (AttemptOutcome, ContactFeedback) {
        let mut feedback = ContactFeedback::default();
        let (sender_id, region, user) = match read(channel, message) {
            Ok(parts) => parts,
            Err(outcome) => return (outcome, feedback),
        };
        let attributes = match attributes(sender_id) {
            Ok(a) => a,
            Err(e) => {
                return (
                    AttemptOutcome::not_sent(ErrorClass::Configuration, e),
                    feedback,
                );
            }
        };
        let body = text(&user);
        let client = self.clients.get(region).await;
        let started = Instant::now();
        let mut to = Vec::with_capacity(user.to.len());
        for number in &user.to {
            if self.opted_out(&client, region, number).await == Some(true) {
                feedback.opted_out.push(number.clone());
            } else {
                to.push(number.clone());
            }
        }
        if to.is_empty() {
            let numbers = feedback.opted_out.join(", ");
            debug!("every number opted out of SMS; nothing published");
            return (
                AttemptOutcome::not_sent(
                    ErrorClass::Rejected,
                    format!("{numbers} opted out of SMS (STOP): nothing was published"),
                ),
                feedback,
            );
        }
        let mut ids = Vec::with_capacity(to.len());
        for number in &to {
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
                    return (outcome, feedback);
                }
            }
        }
        let latency = started.elapsed();
        debug!(latency_ms = latency.as_millis() as u64, "delivered");
        (
            AttemptOutcome {
                status_code: Some(200),
                error_class: None,
                message: Some(format!("accepted by SNS: message id {}", ids.join(", "))),
                latency,
                retry_after: None,
            },
            feedback,
        )
    }

    /// Pages through `ListPhoneNumbersOptedOut` in the channel's region.
    async fn sms_opt_outs(&self, channel: &Channel) -> Option<Result<Vec<String>, String>> {
        let ChannelConfig::Sms(SmsConfig::Sns { region, .. }) = &channel.config else {
            return None;
        };
        let region = match checked_region(region.as_deref()) {
            Ok(r) => r,
            Err(outcome) => return Some(Err(outcome.message.unwrap_or_default())),
        };
        let client = self.clients.get(region).await;
        let mut numbers = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .list_phone_numbers_opted_out()
                .set_next_token(next.take())
                .send()
                .await;
            match page {
                Ok(page) => {
                    numbers.extend(page.phone_numbers().iter().cloned());
                    match page.next_token() {
                        Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                        _ => return Some(Ok(numbers)),
                    }
                }
                Err(e) => {
                    return Some(Err(aws_sdk_sns::error::DisplayErrorContext(&e).to_string()));
                }
            }
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
            unsubscribe: None,
        }
    }

    #[test]
    fn the_opt_out_cache_is_bounded_in_size_and_age() {
        let cache = OptOutCache::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.put(None, "+1", true, t0);
        cache.put(None, "+2", false, t0 + Duration::from_secs(1));
        assert_eq!(cache.get(None, "+1", t0), Some(true));
        assert_eq!(cache.get(Some("eu-west-1"), "+1", t0), None, "per region");
        // Full: the oldest answer makes room.
        cache.put(None, "+3", false, t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(None, "+1", t0), None);
        assert_eq!(
            cache.get(None, "+3", t0 + Duration::from_secs(2)),
            Some(false)
        );
        // Past the TTL an answer is asked again.
        assert_eq!(cache.get(None, "+3", t0 + Duration::from_secs(63)), None);
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
