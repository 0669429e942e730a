//! In-app feeds, the pure part: what a feed item and a badge are, the message protocol of the
//! live socket ([`FeedMessage`] from the server, [`ClientMessage`] from clients), which browser
//! origins may open it, and the signed user tokens
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

/// The answer to a client's `ping`.
pub const PONG: &str = r#"{"type":"pong"}"#;

/// What a client may send on the live socket, on AWS and on `herald serve` alike
/// (`docs/feeds.md`): `{"type":"ping"}` (keep-alive) and `{"type":"hello"}` (the current badge
/// and seq), or the bare words `ping` and `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    Ping,
    Hello,
}

impl ClientMessage {
    /// Reads one text frame: a JSON object whose `type` is `ping` or `hello`, or that word alone;
    /// surrounding whitespace is ignored, case is not. Anything else is `None`: the socket
    /// ignores it (no answer, the connection stays open), so newer clients can send more.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let value;
        let kind = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => {
                value = v;
                value.as_object()?.get("type")?.as_str()?
            }
            Err(_) => text,
        };
        match kind {
            "ping" => Some(Self::Ping),
            "hello" => Some(Self::Hello),
            _ => None,
        }
    }

    /// The answer, as the socket sends it: [`PONG`] to a ping; to a hello, a `badge` message
    /// with `current`, the user's badge and seq (which the socket reads only for a hello), or
    /// nothing when it could not be read.
    pub fn answer(self, current: Option<(Badge, u64)>) -> Option<String> {
        match self {
            Self::Ping => Some(PONG.to_owned()),
            Self::Hello => current.map(|(badge, seq)| FeedMessage::badge(badge, seq).to_json()),
        }
    }
}

/// What clients send and what it means (`None`: ignored): the table the parser's tests and each
/// socket's tests run, so both sockets answer the same messages the same way.
pub const CLIENT_MESSAGE_EXAMPLES: &[(&str, Option<ClientMessage>)] = &[
    (r#"{"type":"ping"}"#, Some(ClientMessage::Ping)),
    (r#" {"type": "ping", "at": 1} "#, Some(ClientMessage::Ping)),
    ("ping", Some(ClientMessage::Ping)),
    (" ping\n", Some(ClientMessage::Ping)),
    (r#"{"type":"hello"}"#, Some(ClientMessage::Hello)),
    ("hello", Some(ClientMessage::Hello)),
    (r#"{"type":"pong"}"#, None),
    (r#"{"type":"PING"}"#, None),
    ("Hello", None),
    (r#"{"type":1}"#, None),
    (r#""ping""#, None),
    (r#"["ping"]"#, None),
    ("{}", None),
    ("{", None),
    ("something else", None),
    ("", None),
];

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
    fn clients_ping_and_say_hello_in_json_or_as_bare_words_and_the_rest_is_ignored() {
        for (text, expected) in CLIENT_MESSAGE_EXAMPLES {
            assert_eq!(ClientMessage::parse(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn pings_are_answered_pong_and_hellos_with_the_badge() {
        let badge = Badge {
            unread: 1,
            unseen: 2,
        };
        assert_eq!(
            ClientMessage::Ping.answer(None).as_deref(),
            Some(r#"{"type":"pong"}"#)
        );
        assert_eq!(
            ClientMessage::Hello.answer(Some((badge, 4))).as_deref(),
            Some(r#"{"type":"badge","seq":4,"badge":{"unread":1,"unseen":2}}"#)
        );
        assert_eq!(ClientMessage::Hello.answer(None), None);
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
