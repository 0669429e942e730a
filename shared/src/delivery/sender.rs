//! The `Sender` port: one attempt to deliver one formatted message to one channel, reported as an
//! [`AttemptOutcome`] (never an `Err`: every failure is something to log and classify).
//!
//! [`HttpSender`] (feature `http-senders`) is the implementation for Slack and webhook channels
//! (generic signed, Discord, Teams). It never logs a URL: Slack, Discord and Teams URLs carry
//! their tokens.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::channel::{Channel, ChannelKind};
use crate::domain::delivery::{Attempt, ErrorClass};

use super::format::{OutboundMessage, Target, UserMessage};

/// Longest response body (or error description) kept on an attempt, in bytes.
pub const MAX_LOGGED_BODY: usize = 2048;

/// What one attempt did.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// `None` when no response came back.
    pub status_code: Option<u16>,
    /// `None`: delivered.
    pub error_class: Option<ErrorClass>,
    /// The response body or the transport error, at most [`MAX_LOGGED_BODY`] bytes, secrets
    /// scrubbed.
    pub message: Option<String>,
    pub latency: Duration,
    /// The least wait before retrying that the provider asked for.
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    pub fn is_delivered(&self) -> bool {
        self.error_class.is_none()
    }

    /// A failure that happened before any request (e.g. a channel kind this sender cannot
    /// reach).
    pub fn not_sent(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            status_code: None,
            error_class: Some(class),
            message: Some(truncate_bytes(&message.into(), MAX_LOGGED_BODY)),
            latency: Duration::ZERO,
            retry_after: None,
        }
    }

    /// The log row for attempt `n`, made at `at`.
    pub fn to_attempt(&self, n: u32, at: DateTime<Utc>) -> Attempt {
        Attempt {
            n,
            at,
            status_code: self.status_code,
            error_class: self.error_class,
            error: self.message.clone().filter(|_| self.error_class.is_some()),
            latency_ms: u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The message for a person that an email, SMS or push sender was handed, or the failed attempt
/// saying why it cannot be sent: formatted for another kind of channel (a configuration error),
/// or not a readable [`UserMessage`] (a bad payload).
pub fn user_message(
    message: &OutboundMessage,
    kind: ChannelKind,
) -> Result<UserMessage, AttemptOutcome> {
    if message.target != Target::Recipient(kind) {
        return Err(AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            format!(
                "the message was not formatted for {} channels",
                kind.as_str()
            ),
        ));
    }
    serde_json::from_slice(&message.body).map_err(|e| {
        AttemptOutcome::not_sent(
            ErrorClass::BadPayload,
            format!("the message for a person does not parse: {e}"),
        )
    })
}

/// Delivers one message to one channel, once.
#[async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome;
}

/// At most `max` bytes of `s`, cut on a character boundary, `…` marking a cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(feature = "http-senders")]
pub use http_sender::HttpSender;

#[cfg(feature = "http-senders")]
mod http_sender {
    use std::time::Instant;

    use async_trait::async_trait;
    use chrono::Utc;
    use tracing::{debug, warn};
    use url::Url;

    use super::{AttemptOutcome, MAX_LOGGED_BODY, Sender, truncate_bytes};
    use crate::delivery::classify::{self, Outcome, Provider};
    use crate::delivery::format::{OutboundMessage, Target};
    use crate::delivery::http::{BuildError, OutboundClient, OutboundConfig};
    use crate::delivery::signing;
    use crate::domain::channel::{Channel, ChannelConfig, WebhookFormat};
    use crate::domain::delivery::ErrorClass;

    /// Sends Slack and webhook (generic, Discord, Teams) messages through the outbound-safe
    /// client. Generic webhooks are signed per Standard Webhooks at send time (fresh timestamp,
    /// same `webhook-id` on every retry); the channel's custom headers go on every webhook
    /// request, but cannot replace `content-type` or the signature headers.
    #[derive(Debug, Clone)]
    pub struct HttpSender {
        client: OutboundClient,
    }

    impl HttpSender {
        pub fn new(config: OutboundConfig) -> Result<Self, BuildError> {
            Ok(Self {
                client: OutboundClient::new(config)?,
            })
        }

        pub fn from_client(client: OutboundClient) -> Self {
            Self { client }
        }

        pub fn client(&self) -> &OutboundClient {
            &self.client
        }
    }

    /// Where to send, how, and which strings must never be shown back.
    struct Request {
        url: Url,
        provider: Provider,
        headers: Vec<(String, String)>,
        secrets: Vec<String>,
    }

    fn prepare(channel: &Channel, message: &OutboundMessage) -> Result<Request, AttemptOutcome> {
        let target = Target::of(&channel.config).ok_or_else(|| {
            AttemptOutcome::not_sent(
                ErrorClass::Configuration,
                format!(
                    "{} channels are not delivered over HTTP",
                    channel.kind().as_str()
                ),
            )
        })?;
        if target != message.target {
            return Err(AttemptOutcome::not_sent(
                ErrorClass::Configuration,
                "the channel's format changed since the message was formatted",
            ));
        }
        match &channel.config {
            ChannelConfig::Slack(c) => Ok(Request {
                url: c.webhook_url.clone(),
                provider: Provider::Slack,
                headers: vec![],
                secrets: url_secrets(&c.webhook_url),
            }),
            ChannelConfig::Webhook(c) => {
                let mut url = c.url.clone();
                let reserved = |name: &str| {
                    name.eq_ignore_ascii_case("content-type")
                        || name.eq_ignore_ascii_case("content-length")
                        || name.eq_ignore_ascii_case("host")
                        || name.to_ascii_lowercase().starts_with("webhook-")
                };
                let mut headers: Vec<(String, String)> = c
                    .headers
                    .iter()
                    .filter(|(k, _)| !reserved(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut secrets: Vec<String> = c
                    .headers
                    .values()
                    .filter(|v| v.len() >= 8)
                    .cloned()
                    .collect();
                let provider = match c.format {
                    WebhookFormat::Generic => {
                        let ts = Utc::now().timestamp();
                        let key = c.signing_secret.key_bytes();
                        let id = message.delivery_id.to_string();
                        headers.extend(
                            signing::headers(&key, &id, ts, &message.body)
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v)),
                        );
                        let exposed = c.signing_secret.expose();
                        secrets.push(exposed.to_owned());
                        secrets.push(exposed.trim_start_matches("whsec_").to_owned());
                        Provider::Webhook
                    }
                    WebhookFormat::Discord => {
                        // Without `wait=true` Discord answers 204 before validating the message.
                        let others: Vec<(String, String)> = url
                            .query_pairs()
                            .filter(|(k, _)| k != "wait")
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                        url.query_pairs_mut()
                            .clear()
                            .extend_pairs(others)
                            .append_pair("wait", "true");
                        secrets.extend(url_secrets(&c.url));
                        Provider::Discord
                    }
                    WebhookFormat::Teams => {
                        secrets.extend(url_secrets(&c.url));
                        Provider::Teams
                    }
                };
                Ok(Request {
                    url,
                    provider,
                    headers,
                    secrets,
                })
            }
            _ => Err(AttemptOutcome::not_sent(
                ErrorClass::Configuration,
                "not an HTTP channel",
            )),
        }
    }

    /// The parts of a token-bearing URL that must not be echoed: its path, its long path
    /// segments (the tokens) and its query (Teams puts its signature there).
    fn url_secrets(url: &Url) -> Vec<String> {
        let mut out = vec![url.path().to_owned()];
        out.extend(
            url.path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 16)
                .map(str::to_owned),
        );
        out.extend(url.query().map(str::to_owned));
        out
    }

    /// Replaces every secret (longer than a few characters) by `****`.
    fn scrub(text: &str, secrets: &[String]) -> String {
        let mut out = text.to_owned();
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            out = out.replace(s.as_str(), "****");
        }
        out
    }

    #[async_trait]
    impl Sender for HttpSender {
        #[tracing::instrument(
            name = "http_send",
            skip_all,
            fields(delivery_id = %message.delivery_id, channel_id = %channel.id, kind = channel.kind().as_str())
        )]
        async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
            let req = match prepare(channel, message) {
                Ok(r) => r,
                Err(outcome) => return outcome,
            };
            let started = Instant::now();
            let result = self
                .client
                .post(&req.url, &req.headers, message.body.clone())
                .await;
            let latency = started.elapsed();
            let outcome = match result {
                Ok(resp) => {
                    let body = String::from_utf8_lossy(&resp.body);
                    let c = classify::classify(
                        req.provider,
                        Outcome::Response {
                            status: resp.status,
                            retry_after: resp.retry_after.as_deref(),
                            body: &body,
                        },
                        Utc::now(),
                    );
                    let mut shown = scrub(body.trim(), &req.secrets);
                    if (300..400).contains(&resp.status) {
                        // Redirects usually answer with no body: say what happened.
                        let to = resp
                            .redirect_host
                            .as_deref()
                            .unwrap_or("an unnamed location");
                        let note = format!(
                            "redirect to {to} not followed: point the channel at the final URL"
                        );
                        shown = if shown.is_empty() {
                            note
                        } else {
                            format!("{note}; response: {shown}")
                        };
                    }
                    AttemptOutcome {
                        status_code: Some(resp.status),
                        error_class: c.class,
                        message: (!shown.is_empty())
                            .then(|| truncate_bytes(&shown, MAX_LOGGED_BODY)),
                        latency,
                        retry_after: c.retry_after,
                    }
                }
                Err(e) => {
                    let c =
                        classify::classify(req.provider, Outcome::Transport(e.kind), Utc::now());
                    AttemptOutcome {
                        status_code: None,
                        error_class: c.class,
                        message: Some(truncate_bytes(
                            &scrub(&e.message, &req.secrets),
                            MAX_LOGGED_BODY,
                        )),
                        latency,
                        retry_after: None,
                    }
                }
            };
            match outcome.error_class {
                None => debug!(
                    status = outcome.status_code,
                    latency_ms = latency.as_millis() as u64,
                    "delivered"
                ),
                Some(class) => warn!(
                    status = outcome.status_code,
                    error_class = ?class,
                    latency_ms = latency.as_millis() as u64,
                    "attempt failed"
                ),
            }
            outcome
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_at_most_the_byte_limit_on_a_char_boundary() {
        let s = "é".repeat(2000);
        let t = truncate_bytes(&s, MAX_LOGGED_BODY);
        assert!(t.len() <= MAX_LOGGED_BODY);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_bytes("ok", MAX_LOGGED_BODY), "ok");
    }

    #[test]
    fn a_delivered_attempt_logs_no_error_text() {
        let o = AttemptOutcome {
            status_code: Some(200),
            error_class: None,
            message: Some("ok".into()),
            latency: Duration::from_millis(12),
            retry_after: None,
        };
        let a = o.to_attempt(1, Utc::now());
        assert_eq!(
            (a.status_code, a.error_class, a.error, a.latency_ms),
            (Some(200), None, None, 12)
        );
    }
}
