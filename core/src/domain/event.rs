//! Events: what producers emit and rules match on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{AlertAction, AlertSignal, DedupKey};
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
    /// Its dedup key and action, when it names either (docs/alerts.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSignal>,
}

/// A user an event is for, with contact points that override the stored profile. Unknown
/// fields are refused (`emial` would otherwise fall back to the profile silently).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
/// An unknown field is refused, not dropped: `propertes` is a typo whose properties would
/// otherwise silently never match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// A JSON object, at most [`MAX_PROPERTIES_DEPTH`] levels deep and [`MAX_PROPERTIES_BYTES`]
    /// long; checked as it is read, so the error names `properties`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounded_properties"
    )]
    #[schema(value_type = Object)]
    pub properties: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    /// The alert this event belongs to: 1–255 printable characters, case-sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// `trigger` (the default), `acknowledge` or `resolve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AlertAction>)]
    pub action: Option<String>,
}

/// Most recipients one event may name.
pub const MAX_RECIPIENTS: usize = 1000;

/// Deepest nesting of an event's `properties` (the object itself is level 1). Far below
/// serde_json's recursion limit (128), which the EventBridge envelope around the properties
/// would otherwise reach first — after the API had answered 202.
pub const MAX_PROPERTIES_DEPTH: usize = 32;

/// Longest an event's `properties` may be, as compact JSON: the event travels whole in every
/// queue message (SQS and EventBridge entries are at most 256 KB) and in its stored record.
pub const MAX_PROPERTIES_BYTES: usize = 64 * 1024;

/// The one bound on an event's `properties`: within [`MAX_PROPERTIES_DEPTH`] and
/// [`MAX_PROPERTIES_BYTES`]. The message names no field; callers put it under `properties`.
pub fn check_properties(value: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    // Iterative, so that checking a deep value cannot itself overflow the stack.
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(m) => Box::new(m.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        if depth > MAX_PROPERTIES_DEPTH {
            return Err(format!("nests deeper than {MAX_PROPERTIES_DEPTH} levels"));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    let mut size = ByteCount(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut size, value);
    if size.0 > MAX_PROPERTIES_BYTES {
        return Err(format!(
            "is {} bytes of JSON; at most {MAX_PROPERTIES_BYTES}",
            size.0
        ));
    }
    Ok(())
}

/// Counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bounded_properties<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    if let Some(v) = &value {
        check_properties(v).map_err(serde::de::Error::custom)?;
    }
    Ok(value)
}

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
        if let Some(p) = &self.properties {
            check_properties(p).map_err(|m| Invalid::new("properties", m))?;
        }
        let properties = match self.properties {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) => map,
            Some(_) => return Err(Invalid::new("properties", "must be a JSON object")),
        };
        // The cap first, on what was sent: de-duplicating a 30,000-entry list costs more than
        // refusing it.
        let listed =
            self.recipients.as_ref().map_or(0, Vec::len) + usize::from(self.user_id.is_some());
        if listed > MAX_RECIPIENTS {
            return Err(Invalid::new(
                "recipients",
                format!("at most {MAX_RECIPIENTS} recipients per event, got {listed}"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(listed);
        let mut recipients = Vec::with_capacity(listed);
        if let Some(user) = self.user_id {
            let user_id = UserId::parse(user).map_err(|e| Invalid::new("userId", e.message))?;
            seen.insert(user_id.clone());
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
            if seen.insert(recipient.user_id.clone()) {
                recipients.push(recipient);
            }
        }
        let occurred_at = match self.occurred_at {
            None => fallback_time,
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map_err(|_| {
                    Invalid::new("occurredAt", format!("`{s}` is not an RFC 3339 timestamp"))
                })?
                .with_timezone(&Utc),
        };
        let dedup_key = self.dedup_key.as_deref().map(DedupKey::parse).transpose()?;
        let action = self
            .action
            .as_deref()
            .map(AlertAction::parse)
            .transpose()?
            .unwrap_or_default();
        let alert =
            (dedup_key.is_some() || action != AlertAction::Trigger).then_some(AlertSignal {
                dedup_key,
                action,
                firing_since: None,
            });
        Ok(Event {
            id,
            org_id,
            event_type,
            module,
            properties,
            recipients,
            occurred_at,
            received_at,
            alert,
        })
    }
}
