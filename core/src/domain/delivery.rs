//! Deliveries and their attempts: the record on-call reads to answer "did we get paged for X?".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::channel::ChannelKind;
use super::{ChannelId, DeliveryId, EventId, OrgId, RuleKey, UserId};

/// One (event, rule, channel) — and recipient, for user-facing kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub event_id: EventId,
    pub event_type: String,
    pub rule_key: Option<RuleKey>,
    pub channel_id: ChannelId,
    pub channel_kind: ChannelKind,
    pub recipient: Option<UserId>,
    pub trigger: Trigger,
    pub status: DeliveryStatus,
    /// Why it was suppressed, deferred or failed.
    pub reason: Option<String>,
    pub attempts: Vec<Attempt>,
    /// What the recipient did with it, where the channel reports it: email opens and clicks
    /// (tracking links), in-app reads. The first of each kind, and each distinct link clicked,
    /// at most [`MAX_ENGAGEMENT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engagement: Vec<Engagement>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Most engagement entries kept on one delivery.
pub const MAX_ENGAGEMENT: usize = 20;

/// One thing the recipient did with a delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Engagement {
    pub kind: EngagementKind,
    pub at: DateTime<Utc>,
    /// The link followed, for a click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngagementKind {
    /// The email's tracking pixel was loaded.
    Opened,
    /// A tracked link in the email was followed.
    Clicked,
    /// The in-app feed item was marked read.
    Read,
}

impl EngagementKind {
    /// The stats counter this kind adds to.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Read => "read",
        }
    }
}

/// What started a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A rule matched an event.
    Event,
    /// The channel's test button.
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Deferred,
    Suppressed,
    /// Accepted by a provider that confirms later.
    Sent,
    /// 2xx from Slack or a webhook; in the feed.
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Suppressed | Self::Sent | Self::Delivered | Self::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Deferred => "deferred",
            Self::Suppressed => "suppressed",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub n: u32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub error_class: Option<ErrorClass>,
    /// The response body or transport error, truncated.
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// How an attempt failed, which decides whether it is retried (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Timeout, connection refused/reset, DNS failure. Retried.
    Network,
    /// 408, 425, 5xx, Slack `rollup_error`. Retried.
    ServerError,
    /// 429. Retried, no sooner than `Retry-After`.
    RateLimited,
    /// 3xx, invalid TLS, blocked address: a configuration error. Not retried.
    Configuration,
    /// 400, 413, 422: our payload was refused. Not retried.
    BadPayload,
    /// 401, 403, 404, 410: the target is gone or refuses us; the channel is marked broken.
    ChannelGone,
    /// Anything else the provider refused. Not retried.
    Rejected,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Network | Self::ServerError | Self::RateLimited)
    }

    pub fn breaks_channel(self) -> bool {
        matches!(self, Self::ChannelGone)
    }
}
