//! Events: what producers emit and rules match on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventId, Invalid, OrgId, UserId};

/// An accepted event, as the matcher sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: EventId,
    pub org_id: OrgId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub module: Module,
    /// Always a JSON object.
    pub properties: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Recipient>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// A user an event is for, with contact points that override the stored profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push_tokens: Vec<String>,
}

macro_rules! name {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, Invalid> {
                if s.is_empty() || s.len() > $max || s.chars().any(|c| c.is_control()) {
                    return Err(Invalid::new($field, concat!("must be 1–", $max, " printable characters")));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(s: String) -> Result<Self, Invalid> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name!(
    /// An event type, e.g. `email.bounced`.
    EventType, "type", 256
);
name!(
    /// The platform module that emitted the event, e.g. `email`, `auth`, `ops`.
    Module, "module", 128
);

/// The body of an event as producers write it: the `detail` of an EventBridge event (whose
/// `detail-type` is the type), or one entry of `POST /events` (which carries `type` itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub properties: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
}

/// Most recipients one event may name.
pub const MAX_RECIPIENTS: usize = 1000;

impl EventInput {
    /// Validates the input into an event. `fallback_id` is used when the input has no `id`
    /// (the EventBridge event id, or a fresh one); `fallback_time` when it has no `occurredAt`.
    pub fn into_event(
        self,
        org_id: OrgId,
        fallback_id: impl FnOnce() -> EventId,
        fallback_time: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> Result<Event, Invalid> {
        let id = match self.id {
            Some(id) => EventId::parse(id).map_err(|e| Invalid::new("id", e.message))?,
            None => fallback_id(),
        };
        let event_type = EventType::parse(
            self.event_type
                .as_deref()
                .ok_or_else(|| Invalid::new("type", "is required"))?,
        )?;
        let module = Module::parse(
            self.module
                .as_deref()
                .ok_or_else(|| Invalid::new("module", "is required"))?,
        )?;
        let properties = match self.properties {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) => map,
            Some(_) => return Err(Invalid::new("properties", "must be a JSON object")),
        };
        let mut recipients = Vec::new();
        if let Some(user) = self.user_id {
            let user_id = UserId::parse(user).map_err(|e| Invalid::new("userId", e.message))?;
            recipients.push(Recipient {
                user_id,
                email: None,
                phone: None,
                push_tokens: Vec::new(),
            });
        }
        for (i, value) in self.recipients.into_iter().flatten().enumerate() {
            let field = format!("recipients[{i}]");
            let recipient = match value {
                serde_json::Value::String(s) => {
                    let user_id =
                        UserId::parse(s).map_err(|e| Invalid::new(field.as_str(), e.message))?;
                    Recipient {
                        user_id,
                        email: None,
                        phone: None,
                        push_tokens: Vec::new(),
                    }
                }
                other => serde_json::from_value::<Recipient>(other).map_err(|e| {
                    Invalid::new(
                        field.as_str(),
                        format!(
                            "must be a user id or {{userId, email?, phone?, pushTokens?}}: {e}"
                        ),
                    )
                })?,
            };
            if !recipients.iter().any(|r| r.user_id == recipient.user_id) {
                recipients.push(recipient);
            }
        }
        if recipients.len() > MAX_RECIPIENTS {
            return Err(Invalid::new(
                "recipients",
                format!("at most {MAX_RECIPIENTS} recipients per event"),
            ));
        }
        let occurred_at = match self.occurred_at {
            None => fallback_time,
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map_err(|_| {
                    Invalid::new("occurredAt", format!("`{s}` is not an RFC 3339 timestamp"))
                })?
                .with_timezone(&Utc),
        };
        Ok(Event {
            id,
            org_id,
            event_type,
            module,
            properties,
            recipients,
            occurred_at,
            received_at,
        })
    }
}
