//! Notification channels: where deliveries go. A channel's kind is the variant of its
//! [`ChannelConfig`]; its secrets (Slack/Discord/Teams URLs carry tokens, webhook signing
//! secrets, SMTP passwords, FCM keys) are stored whole and shown redacted after creation.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use url::Url;

use super::email::EmailAddress;
use super::{ChannelId, Invalid, OrgId, shape};
use crate::delivery::outbound::{AllowList, check_relay, check_url};
use crate::delivery::pacing::RateLimit;

/// A notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub name: ChannelName,
    pub config: ChannelConfig,
    pub frequency_cap: Option<FrequencyCap>,
    /// The channel's own pacing, set through the API; `None`: the kind's default
    /// ([`RateLimit::default_for`]). Channels stored before pacing existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    pub enabled: bool,
    pub health: ChannelHealth,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        self.config.kind()
    }

    /// The rate limit in force: the channel's own, else its kind's default, else none.
    pub fn rate_limit_in_force(&self) -> Option<RateLimit> {
        self.rate_limit
            .or_else(|| RateLimit::default_for(&self.config))
    }
}

/// Checks a client's `rateLimit` for a channel of `kind`: only Slack and webhook channels are
/// paced (email, SMS, push and in-app providers limit per account, not per channel), and the
/// values must be within [`RateLimit::new`]'s bounds. `burst` is taken as a plain number so a
/// negative or fractional one is a 422 naming `rateLimit.burst`, not a shape error.
pub fn check_rate_limit(
    kind: ChannelKind,
    per_second: f64,
    burst: f64,
) -> Result<RateLimit, Invalid> {
    if !matches!(kind, ChannelKind::Slack | ChannelKind::Webhook) {
        return Err(Invalid::new(
            "rateLimit",
            format!(
                "{} channels are not paced; only slack and webhook channels take a rateLimit",
                kind.as_str()
            ),
        ));
    }
    let whole = burst.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&burst);
    if !whole {
        return Err(Invalid::new(
            "rateLimit.burst",
            format!("must be a whole number from 1 to 1000 (got {burst})"),
        ));
    }
    RateLimit::new(per_second, burst as u32)
        .map_err(|e| Invalid::new(format!("rateLimit.{}", e.field), e.message))
}

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Slack,
    Webhook,
    Email,
    Sms,
    Push,
    InApp,
}

impl ChannelKind {
    /// User-facing kinds deliver once per recipient; ops kinds (Slack, webhooks) once per channel.
    pub fn is_user_facing(self) -> bool {
        matches!(self, Self::Email | Self::Sms | Self::Push | Self::InApp)
    }

    /// Quiet hours hold only email, SMS and push.
    pub fn honours_quiet_hours(self) -> bool {
        matches!(self, Self::Email | Self::Sms | Self::Push)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Webhook => "webhook",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::InApp => "in_app",
        }
    }
}

/// A channel's display name: 1–128 printable characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
            return Err(Invalid::new("name", "must be 1–128 printable characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChannelName {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<ChannelName> for String {
    fn from(n: ChannelName) -> String {
        n.0
    }
}

/// At most `per_user` deliveries to one user in a window of `window_hours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrequencyCap {
    pub per_user: u32,
    pub window_hours: u32,
}

impl FrequencyCap {
    pub fn validate(self) -> Result<Self, Invalid> {
        if self.per_user == 0 || self.per_user > 1_000_000 {
            return Err(Invalid::new(
                "frequencyCap.perUser",
                "must be between 1 and 1000000",
            ));
        }
        if self.window_hours == 0 || self.window_hours > 24 * 366 {
            return Err(Invalid::new(
                "frequencyCap.windowHours",
                "must be between 1 and 8784 (one year)",
            ));
        }
        Ok(self)
    }
}

/// Whether the channel's last delivery reached it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelHealth {
    pub status: HealthStatus,
    /// The permanent error that broke it (e.g. `404 channel_not_found`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    #[default]
    Ok,
    Broken,
}

/// A channel's kind and its provider configuration, stored whole (secrets included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    Slack(SlackConfig),
    Webhook(WebhookConfig),
    Email(EmailConfig),
    Sms(SmsConfig),
    Push(PushConfig),
    InApp,
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Self::Slack(_) => ChannelKind::Slack,
            Self::Webhook(_) => ChannelKind::Webhook,
            Self::Email(_) => ChannelKind::Email,
            Self::Sms(_) => ChannelKind::Sms,
            Self::Push(_) => ChannelKind::Push,
            Self::InApp => ChannelKind::InApp,
        }
    }

    /// The config as the API shows it after creation: every secret redacted.
    pub fn redacted(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Slack(c) => json!({ "webhookUrl": redact_url(&c.webhook_url) }),
            Self::Webhook(c) => {
                // Generic URLs carry tokens too (`?token=`, Azure's `?code=`, a path secret).
                let url = redact_url(&c.url);
                let headers: BTreeMap<&str, &str> =
                    c.headers.keys().map(|k| (k.as_str(), "****")).collect();
                json!({ "url": url, "format": c.format, "headers": headers, "signingSecret": "whsec_****" })
            }
            Self::Email(EmailConfig::Ses {
                from,
                configuration_set,
                region,
            }) => {
                json!({ "provider": "ses", "from": from, "configurationSet": configuration_set, "region": region })
            }
            Self::Email(EmailConfig::Smtp {
                from,
                host,
                port,
                username,
                starttls,
                ..
            }) => json!({
                "provider": "smtp", "from": from, "host": host, "port": port,
                "username": username, "password": "****", "starttls": starttls,
            }),
            Self::Email(EmailConfig::Outbox { from }) => {
                json!({ "provider": "outbox", "from": from })
            }
            Self::Sms(SmsConfig::Sns { sender_id, region }) => {
                json!({ "provider": "sns", "senderId": sender_id, "region": region })
            }
            Self::Sms(SmsConfig::Outbox) => json!({ "provider": "outbox" }),
            Self::Push(PushConfig::Fcm {
                project_id,
                client_email,
                token_uri,
                ..
            }) => json!({
                "provider": "fcm", "projectId": project_id, "clientEmail": client_email,
                "tokenUri": token_uri, "privateKey": "****",
            }),
            Self::Push(PushConfig::Outbox) => json!({ "provider": "outbox" }),
            Self::InApp => json!({}),
        }
    }
}

/// What [`ChannelConfig::parse`] needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct ChannelPolicy {
    /// Private ranges Slack and webhook URLs may target (`--allow-private-targets`); `http` is
    /// accepted for those ranges only.
    pub allowed_private_targets: AllowList,
    /// Whether the deployment has a local outbox (`herald serve`): email, SMS and push channels
    /// without a config use it, and `provider: outbox` is accepted.
    pub default_outbox: bool,
    /// Checks an FCM service account's private key (PEM, RSA): the key parsing lives with the
    /// FCM sender (`herald_shared::delivery::providers::fcm::check_private_key`).
    pub check_private_key: fn(&str) -> Result<(), String>,
}

/// Why a channel's config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The config has the wrong shape: a type, a missing or unknown field, an unknown provider,
    /// a config where the kind takes none (the API's 400 `invalid_body`).
    #[error("{0}")]
    Shape(Invalid),
    /// Well-formed but refused: a missing config, a blocked URL, a bad address or key (the
    /// API's 422 `invalid_field`).
    #[error("{0}")]
    Invalid(#[from] Invalid),
}

/// At most this many custom headers on a webhook.
pub const MAX_HEADERS: usize = 20;
/// Longest custom header name, in bytes.
pub const MAX_HEADER_NAME: usize = 128;
/// Longest custom header value, in bytes (many servers refuse headers over 8 KB in total).
pub const MAX_HEADER_VALUE: usize = 4096;
/// Headers Herald sets itself on webhook requests.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl ChannelConfig {
    /// Builds a channel's config of `kind` from a client's `config` (`None` for absent or
    /// `null`; `{}` counts as absent). `previous` is the config being replaced on update: a
    /// webhook keeps its signing secret; a new webhook gets a fresh one. Errors name the field
    /// under `config`.
    pub fn parse(
        kind: ChannelKind,
        config: Option<serde_json::Value>,
        previous: Option<&ChannelConfig>,
        policy: &ChannelPolicy,
    ) -> Result<Self, ConfigError> {
        use serde_json::Value;
        let allowed = &policy.allowed_private_targets;
        let config = config.filter(|v| v.as_object().is_none_or(|m| !m.is_empty()));
        let missing = |what: &str| {
            ConfigError::Invalid(Invalid::new(
                "config",
                format!("{} channels need a `config`: {what}", kind.as_str()),
            ))
        };
        let no_outbox = || {
            ConfigError::Invalid(Invalid::new(
                "config.provider",
                "this deployment has no outbox; name a real provider",
            ))
        };
        match kind {
            ChannelKind::Slack => {
                let config = config.ok_or_else(|| {
                    missing("{\"webhookUrl\": \"https://hooks.slack.com/services/...\"}")
                })?;
                let input: SlackInput =
                    shape::from_value(config, "config").map_err(ConfigError::Shape)?;
                Ok(Self::Slack(SlackConfig {
                    webhook_url: check_url(&input.webhook_url, "config.webhookUrl", allowed)?,
                }))
            }
            ChannelKind::Webhook => {
                let config = config.ok_or_else(|| missing("{\"url\": \"https://...\", \"format\": \"generic|discord|teams\", \"headers\": {}}"))?;
                let input: WebhookInput =
                    shape::from_value(config, "config").map_err(ConfigError::Shape)?;
                let url = check_url(&input.url, "config.url", allowed)?;
                let headers = check_headers(input.headers)?;
                // An update keeps the secret and any rotated-out secrets in their grace period.
                let (signing_secret, previous_secrets, signing_secret_created_at) = match previous {
                    Some(Self::Webhook(w)) => (
                        w.signing_secret.clone(),
                        w.previous_secrets.clone(),
                        w.signing_secret_created_at,
                    ),
                    _ => (SigningSecret::generate(), Vec::new(), None),
                };
                Ok(Self::Webhook(WebhookConfig {
                    url,
                    format: input.format,
                    headers,
                    signing_secret,
                    previous_secrets,
                    signing_secret_created_at,
                }))
            }
            ChannelKind::Email => match config {
                None if policy.default_outbox => {
                    Ok(Self::Email(EmailConfig::Outbox { from: None }))
                }
                None => Err(missing(
                    "{\"provider\": \"ses\" | \"smtp\", \"from\": \"...\"}; this deployment has no default email provider",
                )),
                Some(v) => {
                    let email: EmailConfig = from_tagged(v)?;
                    if matches!(email, EmailConfig::Outbox { .. }) && !policy.default_outbox {
                        return Err(no_outbox());
                    }
                    if let EmailConfig::Ses { from, .. }
                    | EmailConfig::Smtp { from, .. }
                    | EmailConfig::Outbox { from: Some(from) } = &email
                    {
                        EmailAddress::parse_named(from).map_err(|e| e.under("config"))?;
                    }
                    if let EmailConfig::Smtp {
                        host,
                        port,
                        starttls,
                        ..
                    } = &email
                    {
                        if host.trim().is_empty() || *port == 0 {
                            return Err(Invalid::new(
                                "config.host",
                                "SMTP needs a host and a non-zero port",
                            )
                            .into());
                        }
                        // As the SMTP sender's `Security::of`: port 465 is implicit TLS,
                        // otherwise `starttls: false` is plain text.
                        let plain = !*starttls && *port != 465;
                        check_relay(host, plain, "config.host", allowed)?;
                    }
                    Ok(Self::Email(email))
                }
            },
            ChannelKind::Sms => match config {
                None if policy.default_outbox => Ok(Self::Sms(SmsConfig::Outbox)),
                None => Err(missing(
                    "{\"provider\": \"sns\"}; this deployment has no default SMS provider",
                )),
                Some(v) => match from_tagged(v)? {
                    SmsConfig::Outbox if !policy.default_outbox => Err(no_outbox()),
                    sms => Ok(Self::Sms(sms)),
                },
            },
            ChannelKind::Push => match config {
                None if policy.default_outbox => Ok(Self::Push(PushConfig::Outbox)),
                None => Err(missing(
                    "{\"provider\": \"fcm\", \"projectId\", \"clientEmail\", \"privateKey\"}; this deployment has no default push provider",
                )),
                Some(v) => {
                    let push: PushConfig = from_tagged(v)?;
                    match &push {
                        PushConfig::Outbox if !policy.default_outbox => Err(no_outbox()),
                        PushConfig::Fcm {
                            project_id,
                            client_email,
                            private_key,
                            token_uri,
                        } => {
                            if project_id.trim().is_empty()
                                || client_email.trim().is_empty()
                                || private_key.trim().is_empty()
                            {
                                return Err(Invalid::new(
                                    "config",
                                    "FCM needs projectId, clientEmail and privateKey",
                                )
                                .into());
                            }
                            // Refused now rather than at the first 3am push.
                            (policy.check_private_key)(private_key)
                                .map_err(|m| Invalid::new("config.privateKey", m))?;
                            // The token endpoint gets the signed assertion: the same outbound
                            // policy as any other target.
                            if let Some(uri) = token_uri {
                                check_url(uri, "config.tokenUri", allowed)?;
                            }
                            Ok(Self::Push(push))
                        }
                        PushConfig::Outbox => Ok(Self::Push(push)),
                    }
                }
            },
            ChannelKind::InApp => match config {
                None => Ok(Self::InApp),
                Some(Value::Object(m)) => {
                    let first = m.keys().next().map(String::as_str).unwrap_or_default();
                    Err(ConfigError::Shape(Invalid::new(
                        format!("config.{first}"),
                        "in_app channels take no config",
                    )))
                }
                Some(_) => Err(ConfigError::Shape(Invalid::new(
                    "config",
                    "in_app channels take no config (use {} or leave it out)",
                ))),
            },
        }
    }
}

/// `provider`-tagged configs: serde reports an unknown or missing tag at the config itself.
fn from_tagged<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ConfigError> {
    shape::from_value(v, "config").map_err(|e| {
        if e.message.contains("variant") || e.message.contains("`provider`") {
            ConfigError::Shape(Invalid::new("config.provider", e.message))
        } else {
            ConfigError::Shape(e)
        }
    })
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Invalid> {
    if headers.len() > MAX_HEADERS {
        return Err(Invalid::new(
            "config.headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        if name.len() > MAX_HEADER_NAME {
            return Err(Invalid::new(
                "config.headers",
                format!("a header name is at most {MAX_HEADER_NAME} bytes"),
            ));
        }
        let field = format!("config.headers.{name}");
        if value.len() > MAX_HEADER_VALUE {
            return Err(Invalid::new(
                field,
                format!("at most {MAX_HEADER_VALUE} bytes"),
            ));
        }
        let parsed = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Invalid::new(field.clone(), "not a valid HTTP header name"))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(Invalid::new(field, "Herald sets this header itself"));
        }
        http::HeaderValue::from_str(&value)
            .map_err(|_| Invalid::new(field, "not a valid HTTP header value"))?;
        out.insert(parsed.as_str().to_owned(), value);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SlackInput {
    webhook_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookInput {
    url: String,
    #[serde(default)]
    format: WebhookFormat,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Slack incoming webhook. The URL carries the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackConfig {
    pub webhook_url: Url,
}

/// Generic HTTPS webhook, or a Discord/Teams adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    pub url: Url,
    pub format: WebhookFormat,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub signing_secret: SigningSecret,
    /// Secrets a rotation replaced that still sign every request until they expire, newest
    /// first; at most [`MAX_PREVIOUS_SECRETS`]. Expired ones are ignored and pruned on the next
    /// rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<PreviousSecret>,
    /// When `signing_secret` was made by a rotation; absent: at the channel's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_created_at: Option<DateTime<Utc>>,
}

/// How many rotated-out secrets may be in their grace period at once (as Svix).
pub const MAX_PREVIOUS_SECRETS: usize = 5;
/// The longest grace period a rotation may give the secret it replaces: 7 days.
pub const MAX_SECRET_GRACE_HOURS: u32 = 7 * 24;

/// A signing secret replaced by a rotation, still signing until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecret {
    pub secret: SigningSecret,
    pub expires_at: DateTime<Utc>,
}

/// Why a rotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotateError {
    /// Only generic webhooks are signed (Slack, Discord and Teams carry their token in the URL).
    #[error(
        "only generic webhooks are signed; a {0} webhook carries its token in its URL: change the URL instead"
    )]
    NotSigned(&'static str),
    #[error(
        "{MAX_PREVIOUS_SECRETS} previous secrets are still in their grace period; expire them first (POST .../secret/expire-previous)"
    )]
    LimitReached,
}

impl WebhookConfig {
    /// The HMAC keys every request is signed with at `now`: the current secret, then each
    /// previous secret still in its grace period, newest first.
    pub fn signing_keys(&self, now: DateTime<Utc>) -> Vec<Vec<u8>> {
        std::iter::once(self.signing_secret.key_bytes())
            .chain(
                self.previous_secrets
                    .iter()
                    .filter(|p| p.expires_at > now)
                    .map(|p| p.secret.key_bytes()),
            )
            .collect()
    }

    /// Replaces the signing secret with `new`; the replaced one keeps signing for `grace`
    /// (none: it stops at once, as for a leaked secret). Expired previous secrets are pruned.
    pub fn rotate(
        &mut self,
        new: SigningSecret,
        grace: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<(), RotateError> {
        if self.format != WebhookFormat::Generic {
            return Err(RotateError::NotSigned(self.format.as_str()));
        }
        self.previous_secrets.retain(|p| p.expires_at > now);
        if grace > chrono::Duration::zero() {
            if self.previous_secrets.len() >= MAX_PREVIOUS_SECRETS {
                return Err(RotateError::LimitReached);
            }
            let replaced = std::mem::replace(&mut self.signing_secret, new);
            self.previous_secrets.insert(
                0,
                PreviousSecret {
                    secret: replaced,
                    expires_at: now + grace,
                },
            );
        } else {
            self.signing_secret = new;
        }
        self.signing_secret_created_at = Some(now);
        Ok(())
    }

    /// Ends every previous secret's grace period now: only the current secret signs.
    pub fn expire_previous(&mut self) -> Result<(), RotateError> {
        if self.format != WebhookFormat::Generic {
            return Err(RotateError::NotSigned(self.format.as_str()));
        }
        self.previous_secrets.clear();
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Generic,
    Discord,
    Teams,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Discord => "discord",
            Self::Teams => "teams",
        }
    }
}

/// A Standard Webhooks signing secret: `whsec_` + standard base64 of 32 random bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SigningSecret(String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(whsec_****)")
    }
}

impl SigningSecret {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ))
    }

    /// A secret a client chose for a rotation: `whsec_` + standard base64 of 24 to 64 bytes,
    /// as Standard Webhooks requires. Errors name `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, Invalid> {
        let invalid = || {
            Invalid::new(
                field,
                "a signing secret is `whsec_` followed by the standard base64 of 24 to 64 random bytes",
            )
        };
        let b64 = raw.strip_prefix("whsec_").ok_or_else(invalid)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| invalid())?;
        if !(24..=64).contains(&key.len()) {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret as shown once, at creation or rotation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first characters (`whsec_MfKQ`): enough to tell secrets apart, never enough to use one.
    pub fn prefix(&self) -> &str {
        self.0.get(..10).unwrap_or("whsec_")
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    pub fn key_bytes(&self) -> Vec<u8> {
        let b64 = self.0.strip_prefix("whsec_").unwrap_or(&self.0);
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default()
    }
}

/// Email provider configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum EmailConfig {
    /// Amazon SES (v2 API).
    #[serde(rename_all = "camelCase")]
    Ses {
        from: String,
        configuration_set: Option<String>,
        region: Option<String>,
    },
    /// An SMTP relay (STARTTLS, optional auth).
    #[serde(rename_all = "camelCase")]
    Smtp {
        from: String,
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<String>,
        starttls: bool,
    },
    /// The local outbox of `herald serve`: nothing leaves the machine.
    #[serde(rename_all = "camelCase")]
    Outbox { from: Option<String> },
}

/// SMS provider configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum SmsConfig {
    /// Amazon SNS `Publish` to a phone number.
    #[serde(rename_all = "camelCase")]
    Sns {
        sender_id: Option<String>,
        region: Option<String>,
    },
    Outbox,
}

/// Push provider configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum PushConfig {
    /// Firebase Cloud Messaging HTTP v1 with a service account.
    #[serde(rename_all = "camelCase")]
    Fcm {
        project_id: String,
        client_email: String,
        private_key: String,
        token_uri: Option<String>,
    },
    Outbox,
}

/// `https://hooks.slack.com/…Xy12`: scheme and host kept, the token-bearing path cut to its
/// last four characters, the query (which may hold a token) left out. Every channel URL is shown
/// this way.
pub fn redact_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let tail: String = {
        let path = url.path();
        let n = path.chars().count();
        path.chars().skip(n.saturating_sub(4)).collect()
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}/…{tail}", url.scheme())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_checked_per_kind_and_name_their_field() {
        let ok = check_rate_limit(ChannelKind::Slack, 20.0, 3.0).expect("valid");
        assert_eq!((ok.per_second, ok.burst), (20.0, 3));
        let field = |kind, per_second, burst| {
            check_rate_limit(kind, per_second, burst)
                .expect_err("refused")
                .field
        };
        assert_eq!(field(ChannelKind::Webhook, 0.0, 1.0), "rateLimit.perSecond");
        assert_eq!(
            field(ChannelKind::Webhook, 101.0, 1.0),
            "rateLimit.perSecond"
        );
        assert_eq!(field(ChannelKind::Slack, 1.0, 0.0), "rateLimit.burst");
        assert_eq!(field(ChannelKind::Slack, 1.0, -1.0), "rateLimit.burst");
        assert_eq!(field(ChannelKind::Slack, 1.0, 1.5), "rateLimit.burst");
        assert_eq!(field(ChannelKind::Slack, 1.0, 1001.0), "rateLimit.burst");
        for kind in [
            ChannelKind::Email,
            ChannelKind::Sms,
            ChannelKind::Push,
            ChannelKind::InApp,
        ] {
            assert_eq!(field(kind, 1.0, 1.0), "rateLimit");
        }
    }

    #[test]
    fn slack_urls_are_redacted_to_host_and_tail() {
        let url =
            Url::parse("https://hooks.slack.com/services/T000/B000/XXXXsecretAb12").expect("url");
        let shown = redact_url(&url);
        assert_eq!(shown, "https://hooks.slack.com/…Ab12");
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn generic_webhook_urls_are_redacted_without_their_query() {
        let config = ChannelConfig::Webhook(WebhookConfig {
            url: Url::parse("https://fn.azurewebsites.net/api/hook?code=AzureS3cret&sig=abc")
                .expect("url"),
            format: WebhookFormat::Generic,
            headers: BTreeMap::new(),
            signing_secret: SigningSecret::generate(),
            previous_secrets: Vec::new(),
            signing_secret_created_at: None,
        });
        let shown = config.redacted().to_string();
        assert!(!shown.contains("AzureS3cret"), "{shown}");
        assert!(!shown.contains("code="), "{shown}");
        assert!(
            shown.contains("https://fn.azurewebsites.net/…hook"),
            "{shown}"
        );
    }

    fn generic_webhook() -> WebhookConfig {
        WebhookConfig {
            url: Url::parse("https://hooks.example.com/h").expect("url"),
            format: WebhookFormat::Generic,
            headers: BTreeMap::new(),
            signing_secret: SigningSecret::generate(),
            previous_secrets: Vec::new(),
            signing_secret_created_at: None,
        }
    }

    #[test]
    fn a_rotated_out_secret_signs_until_its_grace_ends_then_only_the_new_one_does() {
        let t0 = Utc::now();
        let mut w = generic_webhook();
        let old = w.signing_secret.clone();
        let new = SigningSecret::generate();
        w.rotate(new.clone(), chrono::Duration::hours(24), t0)
            .expect("rotate");
        assert_eq!(w.signing_secret, new);
        assert_eq!(w.signing_secret_created_at, Some(t0));
        assert_eq!(
            w.signing_keys(t0 + chrono::Duration::hours(23)),
            [new.key_bytes(), old.key_bytes()],
            "during grace: the new key first, then the old"
        );
        assert_eq!(
            w.signing_keys(t0 + chrono::Duration::hours(24)),
            [new.key_bytes()],
            "after grace: only the new key"
        );
    }

    #[test]
    fn a_rotation_without_grace_or_an_expiry_stops_the_old_secrets_at_once() {
        let t0 = Utc::now();
        let mut w = generic_webhook();
        w.rotate(SigningSecret::generate(), chrono::Duration::hours(1), t0)
            .expect("rotate");
        w.rotate(SigningSecret::generate(), chrono::Duration::zero(), t0)
            .expect("rotate without grace");
        assert_eq!(w.previous_secrets.len(), 1, "the leaked secret is not kept");
        w.expire_previous().expect("expire");
        assert_eq!(w.signing_keys(t0), [w.signing_secret.key_bytes()]);
    }

    #[test]
    fn at_most_five_previous_secrets_are_in_grace_and_expired_ones_are_pruned() {
        let t0 = Utc::now();
        let mut w = generic_webhook();
        for _ in 0..MAX_PREVIOUS_SECRETS {
            w.rotate(SigningSecret::generate(), chrono::Duration::hours(1), t0)
                .expect("rotate");
        }
        assert_eq!(
            w.rotate(SigningSecret::generate(), chrono::Duration::hours(1), t0),
            Err(RotateError::LimitReached)
        );
        let later = t0 + chrono::Duration::hours(2);
        w.rotate(SigningSecret::generate(), chrono::Duration::hours(1), later)
            .expect("the expired five are pruned first");
        assert_eq!(w.previous_secrets.len(), 1);
    }

    #[test]
    fn only_generic_webhooks_rotate_and_chosen_secrets_must_be_standard() {
        let mut w = generic_webhook();
        w.format = WebhookFormat::Discord;
        assert_eq!(
            w.rotate(
                SigningSecret::generate(),
                chrono::Duration::hours(1),
                Utc::now()
            ),
            Err(RotateError::NotSigned("discord"))
        );
        assert!(SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "key").is_ok());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            "whsec_",
        ] {
            let e = SigningSecret::parse(bad, "key").expect_err(bad);
            assert_eq!(e.field, "key");
            assert!(
                bad.len() < 8 || !e.message.contains(bad),
                "the error never echoes a secret"
            );
        }
    }

    #[test]
    fn signing_secrets_decode_to_32_byte_keys() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key_bytes().len(), 32);
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }

    fn policy(default_outbox: bool) -> ChannelPolicy {
        ChannelPolicy {
            allowed_private_targets: AllowList::none(),
            default_outbox,
            check_private_key: |pem| {
                if pem.contains("BEGIN PRIVATE KEY") {
                    Ok(())
                } else {
                    Err("privateKey is not a PEM private key".into())
                }
            },
        }
    }

    fn parse(kind: ChannelKind, config: serde_json::Value) -> Result<ChannelConfig, ConfigError> {
        ChannelConfig::parse(kind, Some(config), None, &policy(false))
    }

    fn refused(r: Result<ChannelConfig, ConfigError>) -> (bool, String, String) {
        match r.expect_err("refused") {
            ConfigError::Shape(e) => (true, e.field, e.message),
            ConfigError::Invalid(e) => (false, e.field, e.message),
        }
    }

    #[test]
    fn slack_and_webhook_urls_are_checked_and_secrets_kept_on_update() {
        let slack = parse(
            ChannelKind::Slack,
            serde_json::json!({"webhookUrl": "https://hooks.slack.com/services/T/B/x"}),
        )
        .expect("slack");
        assert_eq!(slack.kind(), ChannelKind::Slack);
        let (shape, field, _) = refused(parse(
            ChannelKind::Slack,
            serde_json::json!({"webhookUrl": "http://10.0.0.1/x"}),
        ));
        assert_eq!((shape, field.as_str()), (false, "config.webhookUrl"));
        let (shape, field, _) = refused(parse(
            ChannelKind::Slack,
            serde_json::json!({"webhookUrl": 1}),
        ));
        assert_eq!((shape, field.as_str()), (true, "config.webhookUrl"));
        let (shape, field, message) = refused(ChannelConfig::parse(
            ChannelKind::Webhook,
            Some(serde_json::json!({})),
            None,
            &policy(true),
        ));
        assert_eq!((shape, field.as_str()), (false, "config"));
        assert!(
            message.starts_with("webhook channels need a `config`"),
            "{message}"
        );

        let hook =
            serde_json::json!({"url": "https://example.com/h", "headers": {"X-Team": "ops"}});
        let first = parse(ChannelKind::Webhook, hook.clone()).expect("webhook");
        let again = ChannelConfig::parse(
            ChannelKind::Webhook,
            Some(hook),
            Some(&first),
            &policy(false),
        )
        .expect("update");
        let (ChannelConfig::Webhook(a), ChannelConfig::Webhook(b)) = (&first, &again) else {
            panic!("webhooks");
        };
        assert_eq!(a.signing_secret, b.signing_secret);
        assert_eq!(a.headers.get("x-team").map(String::as_str), Some("ops"));
    }

    #[test]
    fn webhook_headers_are_bounded_and_herald_s_own_are_refused() {
        let (_, field, message) = refused(parse(
            ChannelKind::Webhook,
            serde_json::json!({"url": "https://example.com/h", "headers": {"Webhook-Id": "x"}}),
        ));
        assert_eq!(
            (field.as_str(), message.as_str()),
            (
                "config.headers.Webhook-Id",
                "Herald sets this header itself"
            )
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-{i}"), serde_json::json!("v")))
            .collect();
        let (_, field, _) = refused(parse(
            ChannelKind::Webhook,
            serde_json::json!({"url": "https://example.com/h", "headers": many}),
        ));
        assert_eq!(field, "config.headers");
    }

    #[test]
    fn email_senders_are_addresses_and_smtp_needs_a_host() {
        let ok = parse(
            ChannelKind::Email,
            serde_json::json!({"provider": "ses", "from": "Alerts <alerts@example.com>"}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let (shape, field, message) = refused(parse(
            ChannelKind::Email,
            serde_json::json!({"provider": "ses", "from": "alerts"}),
        ));
        assert_eq!(
            (shape, field.as_str(), message.as_str()),
            (
                false,
                "config.from",
                "must be an email address, optionally with a display name"
            )
        );
        let (_, field, _) = refused(parse(
            ChannelKind::Email,
            serde_json::json!({"provider": "smtp", "from": "a@example.com", "host": " ", "port": 587, "username": null, "password": null, "starttls": true}),
        ));
        assert_eq!(field, "config.host");
        let (shape, field, _) = refused(parse(
            ChannelKind::Email,
            serde_json::json!({"provider": "pigeon", "from": "a@example.com"}),
        ));
        assert_eq!((shape, field.as_str()), (true, "config.provider"));
    }

    #[test]
    fn the_outbox_is_the_default_only_where_the_deployment_has_one() {
        for kind in [ChannelKind::Email, ChannelKind::Sms, ChannelKind::Push] {
            let local = ChannelConfig::parse(kind, None, None, &policy(true)).expect("outbox");
            assert_eq!(local.kind(), kind);
            let (_, field, _) = refused(ChannelConfig::parse(kind, None, None, &policy(false)));
            assert_eq!(field, "config");
            let (_, field, _) = refused(parse(kind, serde_json::json!({"provider": "outbox"})));
            assert_eq!(field, "config.provider");
        }
    }

    #[test]
    fn fcm_keys_are_checked_at_save() {
        let fcm = |key: &str| serde_json::json!({"provider": "fcm", "projectId": "p", "clientEmail": "c@p.iam", "privateKey": key});
        assert!(parse(ChannelKind::Push, fcm("-----BEGIN PRIVATE KEY-----")).is_ok());
        let (_, field, _) = refused(parse(ChannelKind::Push, fcm("nope")));
        assert_eq!(field, "config.privateKey");
        let (_, field, _) = refused(parse(ChannelKind::Push, fcm(" ")));
        assert_eq!(field, "config");
    }

    #[test]
    fn in_app_channels_take_no_config() {
        assert_eq!(
            ChannelConfig::parse(
                ChannelKind::InApp,
                Some(serde_json::json!({})),
                None,
                &policy(false)
            ),
            Ok(ChannelConfig::InApp)
        );
        let (shape, field, _) = refused(parse(ChannelKind::InApp, serde_json::json!({"x": 1})));
        assert_eq!((shape, field.as_str()), (true, "config.x"));
        let (shape, field, _) = refused(parse(ChannelKind::InApp, serde_json::json!([])));
        assert_eq!((shape, field.as_str()), (true, "config"));
    }

    #[test]
    fn frequency_caps_refuse_zero() {
        assert!(
            FrequencyCap {
                per_user: 0,
                window_hours: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            FrequencyCap {
                per_user: 5,
                window_hours: 24
            }
            .validate()
            .is_ok()
        );
    }
}
