//! In-app feeds, the pure part: what a feed item and a badge are, the message protocol of the
//! live socket ([`FeedMessage`]), which browser origins may open it, and the signed user tokens
//! browsers and apps authenticate with ([`token`]). Storage is `herald_shared::repo::feeds`; the
//! push port and its engines are `herald_shared::feed`.

pub mod token;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{DeliveryId, FeedItemId};

pub use token::{FeedToken, FeedTokenSecret, TokenError};

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
