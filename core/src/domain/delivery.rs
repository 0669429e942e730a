//! Deliveries and their attempts: the record on-call reads to answer "did we get paged for X?".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::channel::ChannelKind;
use super::event::Recipient;
use super::{ChannelId, DeliveryId, EventId, OrgId, RecoveryId, RuleKey, UserId};

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
    /// When the next attempt is due, while a failed attempt waits for its retry (`queued`):
    /// the absolute time behind the reason's "retrying in 226s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The frequency-cap window this delivery was counted in, when a cap applied: the slot is
    /// given back if the delivery ends `failed` without reaching the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_slot: Option<CapSlot>,
    /// Set when a recovery (`POST /notifications/channels/{id}/recover`) re-queued it: which,
    /// when, and how many attempts it had before (its retry budget counts those after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<RecoveredBy>,
    /// A digest's events (`trigger: digest`), oldest first: the first [`MAX_EVENT_IDS`].
    /// `eventId` is the first of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub event_ids: Vec<EventId>,
    /// How many events a digest holds (`eventIds` lists at most [`MAX_EVENT_IDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_count: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The recovery that last re-queued a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveredBy {
    pub recovery_id: RecoveryId,
    pub at: DateTime<Utc>,
    /// Attempts on record when it was re-queued: the recovered attempts are those after.
    pub after_attempts: u32,
}

/// The frequency-cap window a delivery was counted in (`herald_core::delivery::caps::window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapSlot {
    /// The cap's window length.
    pub window_hours: u32,
    /// The window's index, `floor(epoch_hours / windowHours)`.
    pub index: i64,
    /// The window's end (exclusive): past it, the counter is gone and nothing is given back.
    pub ends_at: DateTime<Utc>,
}

/// Most event ids listed on one digest delivery.
pub const MAX_EVENT_IDS: usize = 100;

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
    /// An alert resolved: the follow-up to a trigger delivered to this channel.
    Resolve,
    /// An alert acknowledged: passed on to a PagerDuty channel its trigger reached, so the
    /// incident there is acknowledged too (chat channels get nothing).
    Acknowledge,
    /// A grouped rule's group message (docs/alerts.md, "Grouping").
    Group,
    /// A rule's digest: a user's events of one window in one message (docs/digests.md).
    Digest,
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
    /// What made the attempt: the pipeline (`scheduled`: the first attempt and its retries) or
    /// an operator's resend (`manual`). Attempts recorded before this field are `scheduled`.
    #[serde(default)]
    pub trigger: AttemptTrigger,
    /// Push tokens of the stored profile the provider called dead (FCM `UNREGISTERED`), removed
    /// from the profile after this attempt: their last 8 characters (`…abcd1234`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned_tokens: Vec<String>,
}

/// What made one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptTrigger {
    /// The pipeline: a delivery's first attempt and its retries.
    #[default]
    Scheduled,
    /// `POST /notifications/logs/{deliveryId}/resend`: one attempt, never retried.
    Manual,
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

/// What a successful attempt makes of a delivery through `kind`, and the reason kept with it:
/// email, SMS and push providers accept a message and confirm later, so `sent` with the
/// provider's note (e.g. "stored in the local outbox ..."); Slack, webhooks and the in-app feed
/// are `delivered`, with no reason.
pub fn on_success(kind: ChannelKind, note: Option<String>) -> (DeliveryStatus, Option<String>) {
    if kind.honours_quiet_hours() {
        (DeliveryStatus::Sent, note)
    } else {
        (DeliveryStatus::Delivered, None)
    }
}

/// Where one attempt through a channel goes, by the channel's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Slack and webhooks: the channel itself.
    Channel,
    /// In-app: this user's feed.
    Feed(UserId),
    /// Email, SMS and push: these contact points (addresses, E.164 numbers, push tokens).
    ContactPoints(Vec<String>),
}

/// Why a user-facing delivery has nowhere to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDestination {
    /// The kind delivers to a person and none was named.
    NoRecipient,
    /// The recipient has no contact point of the kind's sort (`what`: "email address", ...).
    NoContactPoint { what: &'static str },
}

impl Destination {
    /// Where a delivery through `kind` goes for `recipient`, whose contact points are already
    /// merged with the stored profile's (`user::contact`): ops kinds ignore the recipient; the
    /// feed needs one; email, SMS and push need at least one contact point of their sort.
    pub fn resolve(
        kind: ChannelKind,
        recipient: Option<&Recipient>,
    ) -> Result<Self, NoDestination> {
        if !kind.is_user_facing() {
            return Ok(Self::Channel);
        }
        let recipient = recipient.ok_or(NoDestination::NoRecipient)?;
        let points = match kind {
            ChannelKind::Email => recipient.email.iter().cloned().collect(),
            ChannelKind::Sms => recipient.phone.iter().cloned().collect(),
            ChannelKind::Push => recipient.push_tokens.clone(),
            _ => return Ok(Self::Feed(recipient.user_id.clone())),
        };
        match contact_point(kind) {
            Some(what) if points.is_empty() => Err(NoDestination::NoContactPoint { what }),
            _ => Ok(Self::ContactPoints(points)),
        }
    }
}

/// What a contact point of `kind` is called in reasons ("no email address for user ..."):
/// `None` for kinds that take none.
pub fn contact_point(kind: ChannelKind) -> Option<&'static str> {
    match kind {
        ChannelKind::Email => Some("email address"),
        ChannelKind::Sms => Some("phone number"),
        ChannelKind::Push => Some("push token"),
        ChannelKind::Slack | ChannelKind::Webhook | ChannelKind::InApp => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Recipient {
        Recipient {
            user_id: UserId::parse("alice").expect("id"),
            email: Some("a@example.com".into()),
            phone: None,
            push_tokens: vec!["t1".into(), "t2".into()],
        }
    }

    #[test]
    fn ops_kinds_go_to_the_channel_whoever_the_recipient() {
        for kind in [ChannelKind::Slack, ChannelKind::Webhook] {
            assert_eq!(Destination::resolve(kind, None), Ok(Destination::Channel));
            assert_eq!(
                Destination::resolve(kind, Some(&alice())),
                Ok(Destination::Channel)
            );
        }
    }

    #[test]
    fn user_facing_kinds_go_to_the_recipients_contact_points_of_their_sort() {
        let a = alice();
        assert_eq!(
            Destination::resolve(ChannelKind::Email, Some(&a)),
            Ok(Destination::ContactPoints(vec!["a@example.com".into()]))
        );
        assert_eq!(
            Destination::resolve(ChannelKind::Push, Some(&a)),
            Ok(Destination::ContactPoints(vec!["t1".into(), "t2".into()]))
        );
        assert_eq!(
            Destination::resolve(ChannelKind::Sms, Some(&a)),
            Err(NoDestination::NoContactPoint {
                what: "phone number"
            })
        );
        assert_eq!(
            Destination::resolve(ChannelKind::InApp, Some(&a)),
            Ok(Destination::Feed(a.user_id.clone()))
        );
        for kind in [
            ChannelKind::Email,
            ChannelKind::Sms,
            ChannelKind::Push,
            ChannelKind::InApp,
        ] {
            assert_eq!(
                Destination::resolve(kind, None),
                Err(NoDestination::NoRecipient)
            );
        }
    }

    #[test]
    fn providers_that_confirm_later_make_success_sent_with_their_note() {
        let note = || Some("stored in the local outbox".to_owned());
        for kind in [ChannelKind::Email, ChannelKind::Sms, ChannelKind::Push] {
            assert_eq!(on_success(kind, note()), (DeliveryStatus::Sent, note()));
        }
        for kind in [ChannelKind::Slack, ChannelKind::Webhook, ChannelKind::InApp] {
            assert_eq!(on_success(kind, note()), (DeliveryStatus::Delivered, None));
        }
    }
}
