//! Notification channels: where deliveries go. A channel's kind is the variant of its
//! [`ChannelConfig`]; its secrets (Slack/Discord/Teams URLs carry tokens, webhook signing
//! secrets, SMTP passwords, FCM keys) are stored whole and shown redacted after creation.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{ChannelId, Invalid, OrgId};

/// A notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub name: ChannelName,
    pub config: ChannelConfig,
    pub frequency_cap: Option<FrequencyCap>,
    pub enabled: bool,
    pub health: ChannelHealth,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        self.config.kind()
    }
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Generic,
    Discord,
    Teams,
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

    /// The secret as shown once at creation.
    pub fn expose(&self) -> &str {
        &self.0
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
        });
        let shown = config.redacted().to_string();
        assert!(!shown.contains("AzureS3cret"), "{shown}");
        assert!(!shown.contains("code="), "{shown}");
        assert!(
            shown.contains("https://fn.azurewebsites.net/…hook"),
            "{shown}"
        );
    }

    #[test]
    fn signing_secrets_decode_to_32_byte_keys() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key_bytes().len(), 32);
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
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
