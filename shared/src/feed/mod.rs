//! In-app feeds, the end-user side: what a feed item and a badge are, the signed user tokens
//! browsers and apps authenticate with ([`token`]), the message protocol of the live socket
//! ([`FeedMessage`]), and the [`FeedNotifier`] port that pushes messages to a user's open
//! connections ([`local`] for `herald serve`; the API Gateway engine lives in the feed-socket
//! function). Storage is [`crate::repo::feeds`].

#[cfg(feature = "apigateway")]
pub mod apigateway;
pub mod connections;
pub mod local;
pub mod token;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{DeliveryId, OrgId, UserId};

pub use connections::{Connection, Connections};
pub use local::{FeedSubscription, LocalFeedHub};
pub use token::{FeedToken, FeedTokenSecret, TokenError};

/// A feed item's id: the id of the delivery that put it in the feed (a time-ordered UUIDv7, so
/// appending the same delivery twice is a no-op), or a fresh UUIDv7.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct FeedItemId(Uuid);

impl FeedItemId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The delivery that put the item in the feed, for items the dispatcher appended (their id
    /// is the delivery's); for other items, an id no delivery has.
    pub fn delivery_id(&self) -> DeliveryId {
        DeliveryId::from(self.0)
    }
}

impl Default for FeedItemId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<DeliveryId> for FeedItemId {
    fn from(id: DeliveryId) -> Self {
        Self(*id.as_uuid())
    }
}

impl FromStr for FeedItemId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for FeedItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// What the dispatcher puts in a user's feed (an `in_app` delivery).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewFeedItem {
    /// The delivery this item comes from; it becomes the item's id, which makes appends
    /// idempotent under at-least-once delivery. `None` for a fresh id.
    pub delivery_id: Option<DeliveryId>,
    pub title: String,
    pub body: Option<String>,
    /// Where clicking the item leads.
    pub url: Option<String>,
    /// The event type that caused it (`invoice.paid`).
    pub event_type: Option<String>,
    /// Anything else the client renders (the event's properties).
    pub data: Option<serde_json::Value>,
}

/// One item of a user's feed, as the API and the socket show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedItem {
    pub id: FeedItemId,
    pub title: String,
    pub body: Option<String>,
    pub url: Option<String>,
    pub event_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// Set while the item is read.
    pub read_at: Option<DateTime<Utc>>,
    /// Set once the item was seen (the list was opened). Reading an item also sees it.
    pub seen_at: Option<DateTime<Utc>>,
    /// Set once archived: hidden from the default list and from the counts.
    pub archived_at: Option<DateTime<Utc>>,
    /// The user's sequence number of the item's last change.
    pub seq: u64,
}

impl FeedItem {
    pub fn is_read(&self) -> bool {
        self.read_at.is_some()
    }

    pub fn is_seen(&self) -> bool {
        self.seen_at.is_some()
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// What this item adds to the badge: `(unread, unseen)`, each 0 or 1. Archived items count
    /// for nothing.
    pub fn badge_contribution(&self) -> (i64, i64) {
        if self.is_archived() {
            return (0, 0);
        }
        (i64::from(!self.is_read()), i64::from(!self.is_seen()))
    }
}

/// The counts a bell shows. Exact: kept by atomic counters changed in the same transaction as
/// the items they count (non-archived items only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Badge {
    pub unread: u64,
    pub unseen: u64,
}

/// What a live message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum FeedMessageType {
    /// A new item arrived (`item` is set).
    #[serde(rename = "item.new")]
    ItemNew,
    /// An item changed: read, unread, seen or archived (`item` is set).
    #[serde(rename = "item.updated")]
    ItemUpdated,
    /// The badge changed without one item to show (read-all, seen-all), or the socket just
    /// opened. A client whose last seq is below `seq - 1` catches up with `GET /feed?sinceSeq=`.
    #[serde(rename = "badge")]
    Badge,
}

/// One message of the live feed socket:
/// `{"type":"item.new"|"item.updated"|"badge","seq":N,"item":{...}?,"badge":{"unread","unseen"}}`.
///
/// `seq` is the user's sequence number after the change; each change adds exactly one, so a
/// client that sees a `seq` more than one above its last knows it missed messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedMessage {
    #[serde(rename = "type")]
    pub kind: FeedMessageType,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<FeedItem>,
    pub badge: Badge,
}

impl FeedMessage {
    pub fn item_new(item: FeedItem, badge: Badge, seq: u64) -> Self {
        Self {
            kind: FeedMessageType::ItemNew,
            seq,
            item: Some(item),
            badge,
        }
    }

    pub fn item_updated(item: FeedItem, badge: Badge, seq: u64) -> Self {
        Self {
            kind: FeedMessageType::ItemUpdated,
            seq,
            item: Some(item),
            badge,
        }
    }

    pub fn badge(badge: Badge, seq: u64) -> Self {
        Self {
            kind: FeedMessageType::Badge,
            seq,
            item: None,
            badge,
        }
    }

    /// The message as the socket sends it.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Pushing a message to a user's connections failed as a whole (per-connection failures, such
/// as a client gone, are handled inside the engine).
#[derive(Debug, thiserror::Error)]
#[error("feed push failed: {0}")]
pub struct NotifyError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The capability to push feed messages to a user's open connections (tabs, devices).
///
/// Best effort by design: a client that misses a message sees a gap in `seq` and catches up
/// from the store. Callers log an error and carry on.
#[async_trait]
pub trait FeedNotifier: Send + Sync + fmt::Debug {
    /// Sends `message` to every open connection of `user` in `org`.
    async fn notify(
        &self,
        org: &OrgId,
        user: &UserId,
        message: &FeedMessage,
    ) -> Result<(), NotifyError>;

    /// A subscription to `user`'s messages, where this engine holds connections in process
    /// (the local hub of `herald serve`); `None` elsewhere (API Gateway holds the sockets).
    fn subscribe(&self, _org: &OrgId, _user: &UserId) -> Option<FeedSubscription> {
        None
    }
}

/// A notifier that pushes nothing: for deployments and tests without live connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopFeedNotifier;

#[async_trait]
impl FeedNotifier for NoopFeedNotifier {
    async fn notify(&self, _: &OrgId, _: &UserId, _: &FeedMessage) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// The browser origins a comma-separated setting allows (`HERALD_FEED_ALLOWED_ORIGINS`):
/// trimmed, without a trailing `/`, empty entries dropped.
pub fn parse_allowed_origins(list: &str) -> Vec<String> {
    list.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

/// Whether a request's `Origin` is one of `allowed` (exact, ASCII case-insensitive).
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_after_normalising() {
        let allowed = parse_allowed_origins(" https://app.example.com/, http://localhost:3000 ,,");
        assert_eq!(
            allowed,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(origin_allowed("https://APP.example.com", &allowed));
        assert!(!origin_allowed(
            "https://app.example.com.evil.test",
            &allowed
        ));
        assert!(!origin_allowed("null", &allowed));
    }

    #[test]
    fn messages_serialise_to_the_documented_protocol() {
        let m = FeedMessage::badge(
            Badge {
                unread: 2,
                unseen: 5,
            },
            7,
        );
        assert_eq!(
            m.to_json(),
            r#"{"type":"badge","seq":7,"badge":{"unread":2,"unseen":5}}"#
        );
        let item = FeedItem {
            id: FeedItemId::new(),
            title: "Invoice paid".into(),
            body: None,
            url: None,
            event_type: Some("invoice.paid".into()),
            data: None,
            created_at: Utc::now(),
            read_at: None,
            seen_at: None,
            archived_at: None,
            seq: 8,
        };
        let json: serde_json::Value = serde_json::from_str(
            &FeedMessage::item_new(
                item,
                Badge {
                    unread: 3,
                    unseen: 6,
                },
                8,
            )
            .to_json(),
        )
        .expect("json");
        assert_eq!(json["type"], "item.new");
        assert_eq!(json["item"]["title"], "Invoice paid");
        assert_eq!(json["item"]["eventType"], "invoice.paid");
        assert_eq!(json["badge"]["unread"], 3);
    }

    #[test]
    fn archived_items_count_for_nothing() {
        let mut item = FeedItem {
            id: FeedItemId::new(),
            title: "x".into(),
            body: None,
            url: None,
            event_type: None,
            data: None,
            created_at: Utc::now(),
            read_at: None,
            seen_at: None,
            archived_at: None,
            seq: 1,
        };
        assert_eq!(item.badge_contribution(), (1, 1));
        item.seen_at = Some(Utc::now());
        assert_eq!(item.badge_contribution(), (1, 0));
        item.archived_at = Some(Utc::now());
        assert_eq!(item.badge_contribution(), (0, 0));
    }
}
