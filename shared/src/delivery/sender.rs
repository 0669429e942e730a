//! The `Sender` port: one attempt to deliver one formatted message to one channel, reported as an
//! [`AttemptOutcome`] (never an `Err`: every failure is something to log and classify).
//!
//! [`HttpSender`] (feature `http-senders`) is the implementation for Slack and webhook channels
//! (generic signed, Discord, Teams). It never logs a URL: Slack, Discord and Teams URLs carry
//! their tokens.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use herald_core::domain::channel::{Channel, ChannelKind};
use herald_core::domain::delivery::{Attempt, AttemptTrigger, ErrorClass};

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
            trigger: AttemptTrigger::Scheduled,
            pruned_tokens: Vec::new(),
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

/// What a provider learned about the contact points of a message for a person, beyond the
/// attempt's outcome (docs/hygiene.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFeedback {
    /// Phone numbers the provider will not text (SNS: opted out with STOP). Nothing was
    /// published to them.
    pub opted_out: Vec<String>,
    /// Push tokens the provider says are dead (FCM `UNREGISTERED`, or `INVALID_ARGUMENT` with an
    /// `FcmError` detail). Whole tokens: never log them (see [`token_tail`]).
    pub dead_tokens: Vec<String>,
}

/// A push token as logs and records show it: `…` and its last 8 characters.
pub fn token_tail(token: &str) -> String {
    let n = token.chars().count();
    let tail: String = token.chars().skip(n.saturating_sub(8)).collect();
    format!("…{tail}")
}

/// Delivers one message to one channel, once.
#[async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome;

    /// [`send`](Self::send) for a message to a person, reporting what the provider learned about
    /// the contact points. Providers that learn nothing keep this default.
    async fn send_to_person(
        &self,
        channel: &Channel,
        message: &OutboundMessage,
    ) -> (AttemptOutcome, ContactFeedback) {
        (
            self.send(channel, message).await,
            ContactFeedback::default(),
        )
    }

    /// Every phone number the SMS provider of `channel` will not text (SNS
    /// `ListPhoneNumbersOptedOut`), for a sync into the suppression list; `None` when this
    /// sender has no such list for the channel.
    async fn sms_opt_outs(&self, _channel: &Channel) -> Option<Result<Vec<String>, String>> {
        None
    }
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

/// Query parameters whose value is a credential (Azure Functions' and Teams' `code`/`sig`,
/// Slack's and most webhooks' `token`, ...): their value is scrubbed wherever a receiver echoes
/// `name=value`, whatever the channel's configured URL holds.
pub const SECRET_QUERY_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "auth",
    "code",
    "sig",
    "signature",
    "key",
    "apikey",
    "api_key",
    "secret",
    "password",
];

/// Secrets (and encodings of them) shorter than this are not scrubbed: they would blank out
/// ordinary words.
const MIN_SCRUBBED: usize = 4;

/// What a receiver's echo may show of a secret, as `****`: every secret of `secrets` in each
/// encoding a receiver may echo it in — raw, percent-encoded (either case) and percent-decoded,
/// JSON-escaped (with `\/` too), base64 (standard and URL-safe, and at each of the three byte
/// alignments it can have inside a longer base64 text, as in an SMTP `AUTH PLAIN` echo of
/// `\0user\0password`) — and the value of any [`SECRET_QUERY_PARAMS`] parameter. The one
/// scrubber of the texts the HTTP (Slack, webhooks) and SMTP senders keep on an attempt.
pub fn scrub<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    if text.len() < MIN_SCRUBBED {
        // No form of a secret fits (most answers: empty, `ok`): skip working them out.
        return text.to_owned();
    }
    let mut variants: Vec<String> = secrets
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| s.len() >= MIN_SCRUBBED)
        .flat_map(encodings)
        .filter(|v| v.len() >= MIN_SCRUBBED)
        .collect();
    // Longest first, so that a secret's long form is not left half-replaced by a shorter one.
    variants.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    variants.dedup();
    let mut out = text.to_owned();
    for v in &variants {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "****");
        }
    }
    scrub_secret_params(&out)
}

/// The forms `secret` may take in a receiver's echo.
fn encodings(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut bases = vec![secret.to_owned()];
    for decoded in [percent_decode(secret, false), percent_decode(secret, true)] {
        if !bases.contains(&decoded) {
            bases.push(decoded);
        }
    }
    let mut out = Vec::new();
    for b in &bases {
        out.push(b.clone());
        out.push(percent_encode(b, true));
        out.push(percent_encode(b, false));
        let json = serde_json::to_string(b).unwrap_or_default();
        let json = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or_default()
            .to_owned();
        out.push(json.replace('/', "\\/"));
        out.push(json);
        let bytes = b.as_bytes();
        for engine in [&STANDARD, &URL_SAFE] {
            out.push(engine.encode(bytes));
        }
        // Inside a longer base64 text the secret starts at byte offset 0, 1 or 2 of a 3-byte
        // group: keep the characters its bytes alone determine at each offset.
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for k in 0..3usize {
                let mut padded = vec![0u8; k];
                padded.extend_from_slice(bytes);
                let enc = engine.encode(&padded);
                let start = (8 * k).div_ceil(6);
                let end = (8 * (k + bytes.len())) / 6;
                if start < end && end <= enc.len() {
                    out.push(enc[start..end].to_owned());
                }
            }
        }
    }
    out
}

/// `%XX` for every byte outside RFC 3986's unreserved set.
fn percent_encode(s: &str, upper: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// `%XX` decoded (and `+` as a space when `form`); invalid escapes left as they are.
fn percent_decode(s: &str, form: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if form => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces the value of every [`SECRET_QUERY_PARAMS`] parameter (`?token=…`, `&code=…`, also
/// percent- or JSON-escaped: `%26sig%3D…`, `\u0026sig=…`) by `****`.
fn scrub_secret_params(text: &str) -> String {
    // ASCII lowercase keeps byte offsets.
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for name in SECRET_QUERY_PARAMS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(name) {
            let start = from + pos;
            from = start + name.len();
            let before = &lower[..start];
            let delimited = before.is_empty()
                || before.ends_with(['?', '&', ';'])
                || before.ends_with("%3f")
                || before.ends_with("%26")
                || before.ends_with("\\u0026")
                || before.ends_with("\\u003f");
            if !delimited {
                continue;
            }
            let after = &lower[from..];
            let value_start = if after.starts_with('=') {
                from + 1
            } else if after.starts_with("%3d") {
                from + 3
            } else {
                continue;
            };
            let value_len = text[value_start..]
                .find(|c: char| {
                    c.is_whitespace()
                        || matches!(
                            c,
                            '&' | '"' | '\'' | '<' | '>' | '#' | ',' | ';' | ')' | '\\'
                        )
                })
                .unwrap_or(text.len() - value_start);
            let value_len = match text[value_start..value_start + value_len].find("%26") {
                Some(n) => n,
                None => value_len,
            };
            if value_len > 0 {
                cuts.push((value_start, value_start + value_len));
            }
        }
    }
    if cuts.is_empty() {
        return text.to_owned();
    }
    cuts.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in cuts {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str("****");
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod scrub_tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::scrub;

    #[test]
    fn a_secret_is_scrubbed_raw_and_percent_encoded_and_decoded() {
        let sig = "a1b2+c3d4/e5f6=";
        let shown = scrub(
            "raw a1b2+c3d4/e5f6= enc a1b2%2Bc3d4%2Fe5f6%3D low a1b2%2bc3d4%2fe5f6%3d",
            &[sig],
        );
        assert_eq!(shown, "raw **** enc **** low ****");
        // The secret stored encoded, echoed decoded.
        assert_eq!(
            scrub("got a1b2+c3d4/e5f6=", &["a1b2%2Bc3d4%2Fe5f6%3D"]),
            "got ****"
        );
    }

    #[test]
    fn a_json_escaped_slack_path_is_scrubbed() {
        let path = "/services/T000/B000/XXXXsecretAb12";
        let echoed = r#"{"error":"no hook \/services\/T000\/B000\/XXXXsecretAb12"}"#;
        let shown = scrub(echoed, &[path]);
        assert!(!shown.contains("XXXXsecret"), "{shown}");
    }

    #[test]
    fn a_base64_auth_plain_echo_of_the_password_is_scrubbed() {
        let password = "s3cret-pw!";
        for user in ["u", "us", "usr", "alice@example.com"] {
            let plain = STANDARD.encode(format!("\0{user}\0{password}"));
            let shown = scrub(&format!("535 5.7.8 bad AUTH PLAIN {plain}"), &[password]);
            assert!(!shown.contains(&plain), "{user}: {shown}");
            let rest = shown.rsplit(' ').next().unwrap_or_default();
            let decoded = STANDARD
                .decode(rest.replace("****", "").trim_end_matches('='))
                .unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&decoded).contains("cret"),
                "{user}: {shown}"
            );
        }
        let login = STANDARD.encode(password);
        assert_eq!(scrub(&format!("334 {login}"), &[password]), "334 ****");
    }

    #[test]
    fn known_secret_query_parameters_are_scrubbed_whatever_the_secret_list() {
        let shown = scrub(
            "POST https://x.azurewebsites.net/api/f?code=AbC123==&name=ok failed; \\u0026sig=zz%2Fyy token=t0k",
            &[] as &[&str],
        );
        assert_eq!(
            shown,
            "POST https://x.azurewebsites.net/api/f?code=****&name=ok failed; \\u0026sig=**** token=t0k"
        );
        assert_eq!(scrub("error code=500", &[] as &[&str]), "error code=500");
        assert_eq!(
            scrub("/hook%3Ftoken%3Dabc%26x%3D1", &[] as &[&str]),
            "/hook%3Ftoken%3D****%26x%3D1"
        );
    }

    #[test]
    fn short_secrets_are_left_alone() {
        assert_eq!(scrub("a b c", &["b"]), "a b c");
    }
}

#[cfg(feature = "http-senders")]
pub use http_sender::HttpSender;

#[cfg(feature = "http-senders")]
mod http_sender {
    use std::time::Instant;

    use async_trait::async_trait;
    use bytes::Bytes;
    use chrono::Utc;
    use tracing::{debug, warn};
    use url::Url;

    use super::{
        AttemptOutcome, MAX_LOGGED_BODY, SECRET_QUERY_PARAMS, Sender, scrub, truncate_bytes,
    };
    use crate::delivery::http::{BuildError, OutboundClient, OutboundConfig};
    use herald_core::delivery::classify::{self, Outcome, Provider};
    use herald_core::delivery::format::{OutboundMessage, Target};
    use herald_core::delivery::signing;
    use herald_core::domain::channel::{Channel, ChannelConfig, WebhookFormat};
    use herald_core::domain::delivery::ErrorClass;

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
        /// The body to send when it is not the message's own: PagerDuty's, with the channel's
        /// routing key added at attempt time.
        body: Option<Bytes>,
    }

    /// A PagerDuty body with `routing_key` first, as PagerDuty's own examples write it.
    fn with_routing_key(body: &[u8], key: &str) -> Result<Bytes, AttemptOutcome> {
        let rendered: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| {
                AttemptOutcome::not_sent(
                    ErrorClass::Configuration,
                    format!("the message is not a PagerDuty event: {e}"),
                )
            })?;
        let mut event = serde_json::Map::with_capacity(rendered.len() + 1);
        event.insert("routing_key".to_owned(), key.into());
        event.extend(rendered);
        Ok(Bytes::from(serde_json::Value::Object(event).to_string()))
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
                secrets: url_secrets(&c.webhook_url, true),
                body: None,
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
                let mut body = None;
                let provider = match c.format {
                    WebhookFormat::Generic => {
                        let now = Utc::now();
                        let keys = c.signing_keys(now);
                        let id = message.delivery_id.to_string();
                        headers.extend(
                            signing::headers(&keys, &id, now.timestamp(), &message.body)
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v)),
                        );
                        for secret in std::iter::once(&c.signing_secret)
                            .chain(c.previous_secrets.iter().map(|p| &p.secret))
                        {
                            let exposed = secret.expose();
                            secrets.push(exposed.to_owned());
                            secrets.push(exposed.trim_start_matches("whsec_").to_owned());
                        }
                        secrets.extend(url_secrets(&c.url, false));
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
                        secrets.extend(url_secrets(&c.url, true));
                        Provider::Discord
                    }
                    WebhookFormat::Teams => {
                        secrets.extend(url_secrets(&c.url, true));
                        Provider::Teams
                    }
                    WebhookFormat::PagerDuty => {
                        let key = c.routing_key.as_ref().ok_or_else(|| {
                            AttemptOutcome::not_sent(
                                ErrorClass::Configuration,
                                "the pagerduty channel has no routing key: set config.routingKey",
                            )
                        })?;
                        body = Some(with_routing_key(&message.body, key.expose())?);
                        secrets.push(key.expose().to_owned());
                        secrets.extend(url_secrets(&c.url, false));
                        Provider::Webhook
                    }
                };
                Ok(Request {
                    url,
                    provider,
                    headers,
                    secrets,
                    body,
                })
            }
            _ => Err(AttemptOutcome::not_sent(
                ErrorClass::Configuration,
                "not an HTTP channel",
            )),
        }
    }

    /// The parts of a URL that must not be echoed: its long path segments (tokens), its query
    /// (Teams puts its signature there), each value of a secret parameter or long enough to be
    /// a token, and — for Slack, Discord and Teams, whose path is the credential — the path.
    fn url_secrets(url: &Url, path_is_secret: bool) -> Vec<String> {
        let mut out = Vec::new();
        if path_is_secret && url.path().len() >= 8 {
            out.push(url.path().to_owned());
        }
        out.extend(
            url.path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 16)
                .map(str::to_owned),
        );
        if let Some(query) = url.query() {
            if query.len() >= 8 {
                out.push(query.to_owned());
            }
            for pair in query.split('&') {
                let (name, value) = pair.split_once('=').unwrap_or(("", pair));
                let secret_name = SECRET_QUERY_PARAMS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(name));
                if secret_name || value.len() >= 16 {
                    out.push(value.to_owned());
                }
            }
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
                .post(
                    &req.url,
                    &req.headers,
                    req.body.clone().unwrap_or_else(|| message.body.clone()),
                )
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
