//! Push through Firebase Cloud Messaging, HTTP v1 API, authenticated as a Google service account
//! (feature `push-fcm`).
//!
//! **Auth.** OAuth 2.0 JWT bearer grant (RFC 7523): an RS256 assertion signed with the channel's
//! `privateKey` (PEM; PKCS#8 `BEGIN PRIVATE KEY` as in a service-account JSON file, PKCS#1
//! `BEGIN RSA PRIVATE KEY` also accepted), claims `iss` = `clientEmail`, `scope` =
//! [`SCOPE`], `aud` = `tokenUri` (default [`DEFAULT_TOKEN_URI`]), `iat`, `exp` = `iat` + 1 h, is
//! exchanged at `tokenUri` for an access token. The token is cached per (`clientEmail`,
//! `tokenUri`, SHA-256 of `privateKey`) — the key is part of the cache key so a channel holding
//! someone else's client email but not their key never borrows their token — until 5 minutes
//! (at most half its lifetime) before `expires_in`. Concurrent sends for one service account
//! wait on a single refresh instead of each asking for a token.
//!
//! **Send.** One `POST {endpoint}/v1/projects/{projectId}/messages:send` per push token in the
//! message's `to` (at most [`CONCURRENCY`] at once), body
//! `{"message":{"token","notification":{"title","body"},"data":{…},"webpush":{"fcm_options":{"link"}}}}`:
//! `data` holds strings only (`deliveryId`, `eventId`, `eventType`, and `link`, `ruleKey` when
//! set); `webpush.fcm_options.link` is set only for an `https` link (web push opens it on click;
//! FCM refuses any other scheme there). The title is cut to [`MAX_TITLE_BYTES`] and the body to
//! [`MAX_BODY_BYTES`] so a message stays inside FCM's 4 KB payload limit.
//!
//! **Several tokens.** A user's tokens are their devices; a notification that reached one device
//! reached the person. So:
//! - every token accepted → delivered;
//! - at least one accepted → delivered (a retry would notify the accepted devices twice); the
//!   failures are logged at `warn` per token (last 8 characters only), `UNREGISTERED` tokens
//!   named as such; dead tokens (`UNREGISTERED`, or `INVALID_ARGUMENT` with an `FcmError`
//!   detail) are reported to the caller ([`Sender::send_to_person`]), which prunes those of the
//!   stored profile (docs/hygiene.md);
//! - none accepted → the attempt fails: retried if any token's failure is retryable (the largest
//!   `Retry-After` wins), else the most actionable permanent class (configuration, then bad
//!   payload, then rejected); the message lists every token's error.
//!
//! **Errors** (`error.details[].errorCode`, else `error.status`, else the HTTP status):
//!
//! | FCM answer | class | retried |
//! |---|---|---|
//! | `UNREGISTERED`, 404 | `rejected` (the token is gone; the channel is fine) | no |
//! | `INVALID_ARGUMENT`, 400 | `bad_payload` | no |
//! | `SENDER_ID_MISMATCH`, `THIRD_PARTY_AUTH_ERROR`, 403, 3xx | `configuration` | no |
//! | 401 (other than `THIRD_PARTY_AUTH_ERROR`) | the cached token is dropped, a new one fetched and the request sent once more; a second 401 is `configuration` | no |
//! | `QUOTA_EXCEEDED`, 429 | `rate_limited`, no sooner than `Retry-After` (or `RetryInfo`) | yes |
//! | `UNAVAILABLE`, `INTERNAL`, 5xx, 408 | `server_error`, `Retry-After` honoured | yes |
//! | timeout, refused connection, DNS | `network` | yes |
//! | blocked address, TLS failure | `configuration` | no |
//!
//! Token endpoint: 429 → `rate_limited`, 5xx/408 → `server_error` (both retried), any other
//! refusal (`invalid_grant`, `invalid_client`, 4xx) → `configuration`; a private key that does not
//! parse is a `configuration` error before any request. Every request goes through the
//! [`OutboundClient`] (outbound address safety, timeouts, no redirects). Neither the private key,
//! the assertion nor an access token is ever logged or put in an attempt's message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt as _;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use url::Url;

use crate::delivery::http::{BuildError, OutboundClient, OutboundConfig, RawResponse};
use crate::delivery::sender::user_message;
use crate::delivery::sender::{
    AttemptOutcome, ContactFeedback, MAX_LOGGED_BODY, Sender, truncate_bytes,
};
use herald_core::delivery::classify::{self, Outcome, Provider, TransportError};
use herald_core::delivery::format::{OutboundMessage, UserMessage};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelKind, PushConfig};
use herald_core::domain::delivery::ErrorClass;

/// Where FCM's HTTP v1 API lives.
pub const DEFAULT_ENDPOINT: &str = "https://fcm.googleapis.com";
/// Google's OAuth 2.0 token endpoint, used when the channel names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The OAuth scope that allows sending through FCM.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The JWT bearer grant type (RFC 7523 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Longest notification title sent, in bytes.
pub const MAX_TITLE_BYTES: usize = 256;
/// Longest notification body sent, in bytes.
pub const MAX_BODY_BYTES: usize = 2048;
/// Most requests in flight for one message (one per push token).
pub const CONCURRENCY: usize = 8;

/// Lifetime of a signed assertion (Google accepts at most one hour).
const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// How long before its expiry a cached access token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Used when the token endpoint omits `expires_in` (Google's tokens live an hour).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Characters of a push token shown in logs and messages (its tail).
const TOKEN_TAIL: usize = 8;

/// Sends push notifications through FCM HTTP v1. Cheap to clone: clones share the token cache.
#[derive(Clone)]
pub struct FcmSender {
    inner: Arc<Inner>,
}

struct Inner {
    client: OutboundClient,
    endpoint: Url,
    tokens: TokenCache,
}

impl std::fmt::Debug for FcmSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmSender")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("cached_accounts", &self.inner.tokens.len())
            .finish()
    }
}

impl FcmSender {
    /// A sender for Google's FCM endpoint, through `client`.
    pub fn new(client: OutboundClient) -> Self {
        let endpoint = Url::parse(DEFAULT_ENDPOINT).expect("DEFAULT_ENDPOINT is a valid URL");
        Self::with_endpoint(client, endpoint)
    }

    /// A sender for Google's FCM endpoint with its own outbound client.
    pub fn from_config(config: OutboundConfig) -> Result<Self, BuildError> {
        Ok(Self::new(OutboundClient::new(config)?))
    }

    /// A sender for another FCM-compatible endpoint (tests, a proxy): `endpoint` is the base the
    /// `/v1/projects/…` path is appended to.
    pub fn with_endpoint(client: OutboundClient, endpoint: Url) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                endpoint,
                tokens: TokenCache::default(),
            }),
        }
    }
}

/// A failed step, before it becomes an [`AttemptOutcome`].
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    class: ErrorClass,
    status: Option<u16>,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn config(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Configuration,
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }

    fn transport(what: &str, kind: TransportError, message: &str) -> Self {
        let class = classify::classify(Provider::Webhook, Outcome::Transport(kind), Utc::now())
            .class
            .unwrap_or(ErrorClass::Network);
        Self {
            class,
            status: None,
            message: format!("{what}: {message}"),
            retry_after: None,
        }
    }

    fn into_outcome(self, latency: Duration) -> AttemptOutcome {
        AttemptOutcome {
            status_code: self.status,
            error_class: Some(self.class),
            message: Some(truncate_bytes(&self.message, MAX_LOGGED_BODY)),
            latency,
            retry_after: self.retry_after,
        }
    }
}

// ---------------------------------------------------------------- service-account auth

/// What identifies a service account's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    client_email: String,
    token_uri: String,
    key_digest: [u8; 32],
}

#[derive(Clone)]
struct AccessToken {
    value: String,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<AccessToken>>>;

/// Access tokens by service account. Each account has its own async lock, held across a refresh,
/// so concurrent senders wait for one token request and then share its answer.
#[derive(Default)]
struct TokenCache {
    slots: Mutex<HashMap<CacheKey, Slot>>,
}

/// Past this many accounts, idle slots with no fresh token are dropped when a new one arrives.
const MAX_IDLE_SLOTS: usize = 1024;

impl TokenCache {
    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    fn slot(&self, key: &CacheKey) -> Slot {
        // A poisoned map only means another thread panicked mid-insert; the map is still valid.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = slots.get(key) {
            return Arc::clone(slot);
        }
        if slots.len() >= MAX_IDLE_SLOTS {
            let now = Instant::now();
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot
                        .try_lock()
                        .map_or(true, |t| t.as_ref().is_some_and(|t| t.refresh_at > now))
            });
        }
        Arc::clone(slots.entry(key.clone()).or_default())
    }
}

/// A channel's service account, as the token request needs it.
struct Account<'a> {
    client_email: &'a str,
    private_key: &'a str,
    token_uri: Url,
    key: CacheKey,
}

impl Inner {
    /// A valid access token for `account`: the cached one, unless it is near expiry or is
    /// `rejected` (the token a 401 came back for), in which case a new one is fetched. Callers
    /// that arrive during a refresh wait for it and reuse its token.
    async fn access_token(
        &self,
        account: &Account<'_>,
        rejected: Option<&str>,
    ) -> Result<String, Failure> {
        let slot = self.tokens.slot(&account.key);
        let mut cached = slot.lock().await;
        if let Some(t) = cached.as_ref()
            && t.refresh_at > Instant::now()
            && rejected != Some(t.value.as_str())
        {
            return Ok(t.value.clone());
        }
        *cached = None;
        let fresh = self.fetch_token(account).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch_token(&self, account: &Account<'_>) -> Result<AccessToken, Failure> {
        let key = signing_key(account.private_key)?;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let jwt = assertion(&key, account.client_email, account.token_uri.as_str(), iat)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_TYPE)
            .append_pair("assertion", &jwt)
            .finish();
        let asked = Instant::now();
        let resp = self
            .client
            .post_as(
                &account.token_uri,
                "application/x-www-form-urlencoded",
                &[],
                Bytes::from(form),
            )
            .await
            .map_err(|e| {
                Failure::transport("the OAuth token request failed", e.kind, &e.message)
            })?;
        let token = token_response(&resp)?;
        debug!(
            client_email = account.client_email,
            expires_in = token.1.as_secs(),
            "fetched an FCM access token"
        );
        let margin = REFRESH_MARGIN.min(token.1 / 2);
        Ok(AccessToken {
            value: token.0,
            refresh_at: asked + token.1.saturating_sub(margin),
        })
    }
}

/// Reads a token endpoint's answer: the access token and its lifetime, or why there is none.
fn token_response(resp: &RawResponse) -> Result<(String, Duration), Failure> {
    #[derive(Deserialize)]
    struct Granted {
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    #[derive(Deserialize, Default)]
    struct Refused {
        error: Option<String>,
        error_description: Option<String>,
    }
    let body = String::from_utf8_lossy(&resp.body);
    if (200..300).contains(&resp.status) {
        let granted: Option<Granted> = serde_json::from_str(&body).ok();
        return match granted {
            Some(Granted {
                access_token: Some(token),
                expires_in,
            }) if !token.is_empty() => Ok((
                token,
                expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs),
            )),
            _ => Err(Failure {
                class: ErrorClass::ServerError,
                status: Some(resp.status),
                message: "the OAuth token endpoint answered without an access token".into(),
                retry_after: None,
            }),
        };
    }
    let refused: Refused = serde_json::from_str(&body).unwrap_or_default();
    let class = match resp.status {
        429 => ErrorClass::RateLimited,
        408 | 500..=599 => ErrorClass::ServerError,
        _ => ErrorClass::Configuration,
    };
    let reason = match (refused.error, refused.error_description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e,
        (None, _) => body.trim().chars().take(300).collect(),
    };
    let message = if class == ErrorClass::Configuration {
        format!(
            "the OAuth token endpoint refused the service account ({} {reason}): check clientEmail, privateKey and tokenUri",
            resp.status
        )
    } else {
        format!("the OAuth token endpoint failed ({} {reason})", resp.status)
    };
    Err(Failure {
        class,
        status: Some(resp.status),
        message,
        retry_after: class
            .is_retryable()
            .then(|| {
                resp.retry_after
                    .as_deref()
                    .and_then(|h| classify::parse_retry_after(h, Utc::now()))
            })
            .flatten(),
    })
}

/// Checks that a channel's `privateKey` is an RSA private key FCM auth can sign with (for
/// validation at channel save time); the error says what is wrong, without the key.
pub fn check_private_key(pem: &str) -> Result<(), String> {
    signing_key(pem).map(|_| ()).map_err(|f| f.message)
}

/// Parses the channel's private key. Service-account JSON files carry PKCS#8; a key pasted with
/// literal `\n` escapes (as it appears inside the JSON string) is accepted too.
fn signing_key(pem: &str) -> Result<RsaKeyPair, Failure> {
    let pem = pem.replace("\\n", "\n");
    let not_pem = || {
        Failure::config(
            "privateKey is not a PEM private key (expected -----BEGIN PRIVATE KEY----- as in the service-account JSON)",
        )
    };
    let (label, der) = pem_decode(&pem).ok_or_else(not_pem)?;
    let parsed = match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => {
            return Err(Failure::config(format!(
                "privateKey is a PEM {other}, not an RSA private key"
            )));
        }
    };
    parsed.map_err(|e| {
        Failure::config(format!(
            "privateKey is not a usable RSA private key ({e}); use the private_key of the service-account JSON"
        ))
    })
}

/// The label and DER bytes of the first PEM block in `text`.
fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + "-----".len()..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(b64).ok()?;
    Some((label, der))
}

/// The signed JWT (RS256) exchanged for an access token.
fn assertion(key: &RsaKeyPair, iss: &str, aud: &str, iat: u64) -> Result<String, Failure> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = json!({
        "iss": iss,
        "scope": SCOPE,
        "aud": aud,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME_SECS,
    });
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| Failure::config("signing the OAuth assertion with privateKey failed"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

// ---------------------------------------------------------------- sending

/// The FCM v1 message for one device.
fn fcm_message(msg: &UserMessage, delivery_id: &str, device_token: &str) -> Value {
    let mut notification = json!({ "title": truncate_bytes(&msg.title, MAX_TITLE_BYTES) });
    if let Some(body) = msg.body.as_deref().filter(|b| !b.is_empty()) {
        notification["body"] = Value::from(truncate_bytes(body, MAX_BODY_BYTES));
    }
    let mut data = serde_json::Map::new();
    data.insert("deliveryId".into(), delivery_id.into());
    data.insert("eventId".into(), msg.event_id.to_string().into());
    data.insert("eventType".into(), msg.event_type.clone().into());
    if let Some(link) = &msg.link {
        data.insert("link".into(), link.clone().into());
    }
    if let Some(rule_key) = &msg.rule_key {
        data.insert("ruleKey".into(), rule_key.to_string().into());
    }
    let mut message = json!({
        "token": device_token,
        "notification": notification,
        "data": data,
    });
    if let Some(link) = msg.link.as_deref().filter(|l| l.starts_with("https://")) {
        message["webpush"] = json!({ "fcm_options": { "link": link } });
    }
    json!({ "message": message })
}

/// FCM's verdict on one send: `None` class is accepted.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    class: Option<ErrorClass>,
    retry_after: Option<Duration>,
    /// `errorCode` or `status` from the body, else empty.
    code: String,
    /// `error.message` from the body, else the body's start.
    detail: String,
    /// The token is dead: `UNREGISTERED`, or `INVALID_ARGUMENT` with an `FcmError` detail (with
    /// `google.rpc.BadRequest` it is our payload that is wrong, not the token).
    dead_token: bool,
}

/// Whether an error body says the token itself is dead.
fn token_is_dead(code: &str, error: &Value) -> bool {
    let types: Vec<&str> = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["@type"].as_str())
        .collect();
    match code {
        "UNREGISTERED" => true,
        "INVALID_ARGUMENT" => {
            types
                .iter()
                .any(|t| t.ends_with("google.firebase.fcm.v1.FcmError"))
                && !types.iter().any(|t| t.ends_with("google.rpc.BadRequest"))
        }
        _ => false,
    }
}

/// Classifies one `messages:send` response (401 is the caller's to handle first).
fn classify_fcm(status: u16, retry_after: Option<&str>, body: &str) -> Verdict {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = &v["error"];
    let error_code = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["errorCode"].as_str())
        .filter(|c| *c != "UNSPECIFIED_ERROR");
    let code = error_code
        .or_else(|| error["status"].as_str())
        .unwrap_or("")
        .to_owned();
    let detail = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.trim().chars().take(300).collect());
    let class = match (status, code.as_str()) {
        (200..=299, _) => None,
        (_, "UNREGISTERED") => Some(ErrorClass::Rejected),
        (_, "INVALID_ARGUMENT") => Some(ErrorClass::BadPayload),
        (_, "SENDER_ID_MISMATCH" | "THIRD_PARTY_AUTH_ERROR" | "PERMISSION_DENIED") => {
            Some(ErrorClass::Configuration)
        }
        (_, "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED") => Some(ErrorClass::RateLimited),
        (_, "UNAVAILABLE" | "INTERNAL") => Some(ErrorClass::ServerError),
        (404, _) => Some(ErrorClass::Rejected),
        (400, _) => Some(ErrorClass::BadPayload),
        (300..=399 | 401 | 403, _) => Some(ErrorClass::Configuration),
        (429, _) => Some(ErrorClass::RateLimited),
        (408 | 500..=599, _) => Some(ErrorClass::ServerError),
        _ => Some(ErrorClass::Rejected),
    };
    let retry_after = if class.is_some_and(ErrorClass::is_retryable) {
        let header = retry_after.and_then(|h| classify::parse_retry_after(h, Utc::now()));
        header.or_else(|| retry_info(error))
    } else {
        None
    };
    Verdict {
        dead_token: class.is_some() && token_is_dead(&code, error),
        class,
        retry_after,
        code,
        detail,
    }
}

/// `google.rpc.RetryInfo.retryDelay` (`"30s"`), when the error carries one.
fn retry_info(error: &Value) -> Option<Duration> {
    error["details"]
        .as_array()?
        .iter()
        .find_map(|d| d["retryDelay"].as_str())
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// What happened to one push token.
#[derive(Debug, Clone, PartialEq)]
struct TokenResult {
    /// `…` and the token's last characters.
    shown: String,
    status: Option<u16>,
    class: Option<ErrorClass>,
    code: String,
    detail: String,
    retry_after: Option<Duration>,
    /// The whole token, when FCM called it dead (never logged).
    dead_token: Option<String>,
}

impl TokenResult {
    fn failed(shown: String, f: Failure) -> Self {
        Self {
            shown,
            status: f.status,
            class: Some(f.class),
            code: String::new(),
            detail: f.message,
            retry_after: f.retry_after,
            dead_token: None,
        }
    }

    /// `token …abcd1234: 404 UNREGISTERED Requested entity was not found. (…)`
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(self.status.map(|s| s.to_string()));
        parts.extend((!self.code.is_empty()).then(|| self.code.clone()));
        parts.extend((!self.detail.is_empty()).then(|| self.detail.clone()));
        if self.code == "UNREGISTERED" {
            parts.push("(the token is no longer valid: remove it from the user)".into());
        }
        format!("token {}: {}", self.shown, parts.join(" "))
    }
}

/// A 401 that a new access token may cure: not FCM's `THIRD_PARTY_AUTH_ERROR` (also a 401, but
/// about the project's APNs or web push credentials, which no OAuth refresh changes).
fn access_token_refused(resp: &RawResponse) -> bool {
    resp.status == 401
        && classify_fcm(401, None, &String::from_utf8_lossy(&resp.body)).code
            != "THIRD_PARTY_AUTH_ERROR"
}

fn shown(device_token: &str) -> String {
    let n = device_token.chars().count();
    let tail: String = device_token
        .chars()
        .skip(n.saturating_sub(TOKEN_TAIL))
        .collect();
    format!("…{tail}")
}

impl Inner {
    /// Sends to one device, refreshing the access token once on a 401.
    async fn deliver_to(
        &self,
        account: &Account<'_>,
        url: &Url,
        access: &str,
        body: Bytes,
        device_token: &str,
    ) -> TokenResult {
        let shown = shown(device_token);
        let post = |token: String| {
            let body = body.clone();
            async move {
                let auth = vec![("authorization".to_owned(), format!("Bearer {token}"))];
                self.client.post(url, &auth, body).await
            }
        };
        let mut resp = post(access.to_owned()).await;
        if matches!(&resp, Ok(r) if access_token_refused(r)) {
            match self.access_token(account, Some(access)).await {
                Ok(fresh) => resp = post(fresh).await,
                Err(f) => return TokenResult::failed(shown, f),
            }
            if matches!(&resp, Ok(r) if access_token_refused(r)) {
                return TokenResult::failed(
                    shown,
                    Failure {
                        status: Some(401),
                        ..Failure::config(
                            "FCM refused a freshly issued access token (401): check that the service account may send with Firebase Cloud Messaging in this project",
                        )
                    },
                );
            }
        }
        match resp {
            Ok(r) => {
                let body = String::from_utf8_lossy(&r.body);
                let v = classify_fcm(r.status, r.retry_after.as_deref(), &body);
                TokenResult {
                    status: Some(r.status),
                    class: v.class,
                    detail: v.detail.replace(device_token, &shown),
                    code: v.code,
                    retry_after: v.retry_after,
                    dead_token: v.dead_token.then(|| device_token.to_owned()),
                    shown,
                }
            }
            Err(e) => TokenResult::failed(
                shown,
                Failure::transport("the FCM request failed", e.kind, &e.message),
            ),
        }
    }
}

/// Folds the per-token results into one outcome (policy in the module doc).
fn combine(results: &[TokenResult], latency: Duration) -> AttemptOutcome {
    let accepted = results.iter().filter(|r| r.class.is_none()).count();
    let failures: Vec<&TokenResult> = results.iter().filter(|r| r.class.is_some()).collect();
    let listed = failures
        .iter()
        .map(|r| r.describe())
        .collect::<Vec<_>>()
        .join("; ");
    if accepted > 0 {
        let ok_status = results
            .iter()
            .find(|r| r.class.is_none())
            .and_then(|r| r.status);
        let message = if failures.is_empty() {
            format!("delivered to {accepted} push token(s)")
        } else {
            format!(
                "delivered to {accepted} of {} push tokens; {listed}",
                results.len()
            )
        };
        return AttemptOutcome {
            status_code: ok_status,
            error_class: None,
            message: Some(truncate_bytes(&message, MAX_LOGGED_BODY)),
            latency,
            retry_after: None,
        };
    }
    let retryable: Vec<&&TokenResult> = failures
        .iter()
        .filter(|r| r.class.is_some_and(ErrorClass::is_retryable))
        .collect();
    let chosen = if retryable.is_empty() {
        let rank = |c: Option<ErrorClass>| match c {
            Some(ErrorClass::Configuration) => 0,
            Some(ErrorClass::BadPayload) => 1,
            _ => 2,
        };
        failures.iter().min_by_key(|r| rank(r.class)).copied()
    } else {
        retryable
            .iter()
            .find(|r| r.class == Some(ErrorClass::RateLimited))
            .or_else(|| retryable.first())
            .map(|r| **r)
    };
    let Some(chosen) = chosen else {
        return AttemptOutcome::not_sent(ErrorClass::BadPayload, "no push token to send to");
    };
    let retry_after = retryable.iter().filter_map(|r| r.retry_after).max();
    AttemptOutcome {
        status_code: chosen.status,
        error_class: chosen.class,
        message: Some(truncate_bytes(&listed, MAX_LOGGED_BODY)),
        latency,
        retry_after,
    }
}

/// The `messages:send` URL for a project.
fn send_url(endpoint: &Url, project_id: &str) -> Result<Url, Failure> {
    if project_id.trim().is_empty() {
        return Err(Failure::config("projectId is empty"));
    }
    let mut url = endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| Failure::config("the FCM endpoint cannot carry a path"))?
        .pop_if_empty()
        .extend(["v1", "projects", project_id, "messages:send"]);
    Ok(url)
}

#[async_trait]
impl Sender for FcmSender {
    async fn send(&self, channel: &Channel, message: &OutboundMessage) -> AttemptOutcome {
        self.send_to_person(channel, message).await.0
    }

    /// Sends to every token; the tokens FCM called dead come back in the feedback.
    #[tracing::instrument(
        name = "fcm_send",
        skip_all,
        fields(delivery_id = %message.delivery_id, channel_id = %channel.id)
    )]
    async fn send_to_person(
        &self,
        channel: &Channel,
        message: &OutboundMessage,
    ) -> (AttemptOutcome, ContactFeedback) {
        let outcome = self.send_all(channel, message).await;
        match outcome {
            Ok((outcome, dead_tokens)) => (
                outcome,
                ContactFeedback {
                    dead_tokens,
                    ..ContactFeedback::default()
                },
            ),
            Err(outcome) => (outcome, ContactFeedback::default()),
        }
    }
}

impl FcmSender {
    /// One attempt: the outcome and the dead tokens, or the outcome of an attempt that never
    /// reached a token.
    async fn send_all(
        &self,
        channel: &Channel,
        message: &OutboundMessage,
    ) -> Result<(AttemptOutcome, Vec<String>), AttemptOutcome> {
        let started = Instant::now();
        let ChannelConfig::Push(PushConfig::Fcm {
            project_id,
            client_email,
            private_key,
            token_uri,
        }) = &channel.config
        else {
            return Err(AttemptOutcome::not_sent(
                ErrorClass::Configuration,
                "not an FCM push channel",
            ));
        };
        let user = match user_message(message, ChannelKind::Push) {
            Ok(user) => user,
            Err(outcome) => return Err(outcome),
        };
        let mut devices: Vec<&str> = Vec::new();
        for t in user.to.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if !devices.contains(&t) {
                devices.push(t);
            }
        }
        if devices.is_empty() {
            return Err(AttemptOutcome::not_sent(
                ErrorClass::BadPayload,
                "no push token to send to",
            ));
        }
        let token_uri = match Url::parse(token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI)) {
            Ok(u) => u,
            Err(e) => {
                return Err(AttemptOutcome::not_sent(
                    ErrorClass::Configuration,
                    format!("tokenUri is not a URL: {e}"),
                ));
            }
        };
        let url = match send_url(&self.inner.endpoint, project_id) {
            Ok(u) => u,
            Err(f) => return Err(f.into_outcome(started.elapsed())),
        };
        let account = Account {
            client_email,
            private_key,
            key: CacheKey {
                client_email: client_email.clone(),
                token_uri: token_uri.to_string(),
                key_digest: Sha256::digest(private_key.as_bytes()).into(),
            },
            token_uri,
        };
        let access = match self.inner.access_token(&account, None).await {
            Ok(t) => t,
            Err(f) => {
                warn!(error_class = ?f.class, status = f.status, "FCM access token not obtained");
                return Err(f.into_outcome(started.elapsed()));
            }
        };
        let delivery_id = message.delivery_id.to_string();
        let mut sends = Vec::with_capacity(devices.len());
        for device in devices {
            let body = Bytes::from(fcm_message(&user, &delivery_id, device).to_string());
            sends.push(
                self.inner
                    .deliver_to(&account, &url, access.as_str(), body, device),
            );
        }
        let results: Vec<TokenResult> = futures::stream::iter(sends)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let latency = started.elapsed();
        for r in results.iter().filter(|r| r.class.is_some()) {
            warn!(
                token = %r.shown,
                status = r.status,
                error_class = ?r.class,
                code = %r.code,
                unregistered = r.code == "UNREGISTERED",
                "push token failed"
            );
        }
        let outcome = combine(&results, latency);
        debug!(
            tokens = results.len(),
            delivered = outcome.is_delivered(),
            latency_ms = latency.as_millis() as u64,
            "FCM attempt done"
        );
        let dead = results.into_iter().filter_map(|r| r.dead_token).collect();
        Ok((outcome, dead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcm_errors_map_to_the_documented_classes() {
        let body = |status: &str, code: &str| {
            json!({"error": {"code": 0, "message": "m", "status": status, "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
            ]}})
            .to_string()
        };
        let cases = [
            (404, body("NOT_FOUND", "UNREGISTERED"), ErrorClass::Rejected),
            (
                400,
                body("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
                ErrorClass::BadPayload,
            ),
            (
                403,
                body("PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
                ErrorClass::Configuration,
            ),
            (
                401,
                body("UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
                ErrorClass::Configuration,
            ),
            (
                429,
                body("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
                ErrorClass::RateLimited,
            ),
            (
                503,
                body("UNAVAILABLE", "UNAVAILABLE"),
                ErrorClass::ServerError,
            ),
            (500, body("INTERNAL", "INTERNAL"), ErrorClass::ServerError),
            (404, String::new(), ErrorClass::Rejected),
            (403, String::new(), ErrorClass::Configuration),
            (502, "<html>".into(), ErrorClass::ServerError),
            (409, String::new(), ErrorClass::Rejected),
        ];
        for (status, body, class) in cases {
            assert_eq!(
                classify_fcm(status, None, &body).class,
                Some(class),
                "{status} {body}"
            );
        }
        assert_eq!(classify_fcm(200, None, r#"{"name":"x"}"#).class, None);
    }

    #[test]
    fn retry_hints_come_from_the_header_or_retry_info() {
        let v = classify_fcm(429, Some("17"), "");
        assert_eq!(v.retry_after, Some(Duration::from_secs(17)));
        let body = json!({"error": {"status": "UNAVAILABLE", "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}
        ]}})
        .to_string();
        assert_eq!(
            classify_fcm(503, None, &body).retry_after,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(classify_fcm(404, Some("17"), "").retry_after, None);
    }

    fn result(class: Option<ErrorClass>, code: &str, retry: Option<u64>) -> TokenResult {
        TokenResult {
            shown: "…abcdefgh".into(),
            status: Some(if class.is_none() { 200 } else { 503 }),
            class,
            code: code.into(),
            detail: "d".into(),
            retry_after: retry.map(Duration::from_secs),
            dead_token: None,
        }
    }

    #[test]
    fn only_unregistered_and_fcm_error_invalid_arguments_mean_a_dead_token() {
        let body = |status: &str, detail_type: &str, code: &str| {
            serde_json::json!({"error": {"code": 400, "message": "m", "status": status,
                "details": [{"@type": detail_type, "errorCode": code}]}})
            .to_string()
        };
        let fcm = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
        let bad_request = "type.googleapis.com/google.rpc.BadRequest";
        assert!(classify_fcm(404, None, &body("NOT_FOUND", fcm, "UNREGISTERED")).dead_token);
        assert!(
            classify_fcm(
                400,
                None,
                &body("INVALID_ARGUMENT", fcm, "INVALID_ARGUMENT")
            )
            .dead_token
        );
        // Our payload is wrong, not the token.
        assert!(!classify_fcm(400, None, &body("INVALID_ARGUMENT", bad_request, "")).dead_token);
        assert!(
            !classify_fcm(
                403,
                None,
                &body("PERMISSION_DENIED", fcm, "SENDER_ID_MISMATCH")
            )
            .dead_token
        );
        assert!(!classify_fcm(503, None, &body("UNAVAILABLE", fcm, "UNAVAILABLE")).dead_token);
    }

    #[test]
    fn one_accepted_token_is_a_delivery_and_names_the_rest() {
        let out = combine(
            &[
                result(None, "", None),
                result(Some(ErrorClass::Rejected), "UNREGISTERED", None),
            ],
            Duration::ZERO,
        );
        assert_eq!(out.error_class, None);
        let m = out.message.expect("message");
        assert!(m.contains("delivered to 1 of 2"), "{m}");
        assert!(m.contains("UNREGISTERED"), "{m}");
    }

    #[test]
    fn with_nothing_accepted_a_retryable_failure_wins_with_the_longest_hint() {
        let out = combine(
            &[
                result(Some(ErrorClass::Rejected), "UNREGISTERED", None),
                result(Some(ErrorClass::ServerError), "UNAVAILABLE", Some(3)),
                result(Some(ErrorClass::RateLimited), "QUOTA_EXCEEDED", Some(9)),
            ],
            Duration::ZERO,
        );
        assert_eq!(out.error_class, Some(ErrorClass::RateLimited));
        assert_eq!(out.retry_after, Some(Duration::from_secs(9)));
        let out = combine(
            &[
                result(Some(ErrorClass::Rejected), "UNREGISTERED", None),
                result(Some(ErrorClass::Configuration), "SENDER_ID_MISMATCH", None),
            ],
            Duration::ZERO,
        );
        assert_eq!(out.error_class, Some(ErrorClass::Configuration));
    }

    #[test]
    fn pem_keys_with_escaped_newlines_parse_and_garbage_does_not() {
        assert!(signing_key("not a key").is_err());
        let bad = "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n";
        assert!(check_private_key(bad).is_err());
        let err = signing_key(bad).expect_err("rejected");
        assert_eq!(err.class, ErrorClass::Configuration);
        assert!(err.message.contains("privateKey"), "{}", err.message);
    }

    #[test]
    fn the_send_url_carries_the_project() {
        let base = Url::parse("http://127.0.0.1:9/").expect("url");
        assert_eq!(
            send_url(&base, "my-proj").expect("url").as_str(),
            "http://127.0.0.1:9/v1/projects/my-proj/messages:send"
        );
        assert_eq!(
            send_url(&base, "a/b").expect("url").as_str(),
            "http://127.0.0.1:9/v1/projects/a%2Fb/messages:send"
        );
    }
}
