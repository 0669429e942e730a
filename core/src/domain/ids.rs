//! Typed identifiers. Orgs, channels, API keys, deliveries and log rows are UUIDv7 (time-ordered,
//! so keys sort by creation); rules are addressed by their key; users by the customer's own id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Invalid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An organisation: the tenant every other resource belongs to.
    OrgId
);
uuid_id!(
    /// A notification channel.
    ChannelId
);
uuid_id!(
    /// An API key (its id, not the secret).
    ApiKeyId
);
uuid_id!(
    /// One delivery: (event, rule, channel[, recipient]). Stable across retries; sent to
    /// webhook receivers as `webhook-id` so they can de-duplicate.
    DeliveryId
);
uuid_id!(
    /// One attempt log row of a delivery.
    AttemptId
);
uuid_id!(
    /// One instance of an alert: what a dedup key names from its first trigger until it resolves.
    /// A trigger after a resolve opens a new instance.
    AlertInstanceId
);
uuid_id!(
    /// A silence.
    SilenceId
);
uuid_id!(
    /// A recovery: one bulk re-queue of a channel's failed deliveries.
    RecoveryId
);
uuid_id!(
    /// A feed item: the id of the delivery that put it in the feed (so appending the same
    /// delivery twice is a no-op), or a fresh UUIDv7.
    FeedItemId
);

impl FeedItemId {
    /// The delivery that put the item in the feed, for items the dispatcher appended (their id
    /// is the delivery's); for other items, an id no delivery has.
    pub fn delivery_id(&self) -> DeliveryId {
        DeliveryId::from(self.0)
    }
}

impl From<DeliveryId> for FeedItemId {
    fn from(id: DeliveryId) -> Self {
        Self(id.0)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, Invalid> {
                let s = s.into();
                let valid: fn(&str) -> Result<(), String> = $valid;
                valid(&s).map_err(|m| Invalid::new("", format!("{} {m}", $what)))?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}

fn printable(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must contain only printable characters".into());
    }
    Ok(())
}

string_id!(
    /// A rule's key: 1–128 characters of `[A-Za-z0-9._:-]`. A rule without a matcher fires on
    /// events whose type equals its key, so keys look like event types (`email.bounced`).
    RuleKey,
    "rule key",
    |s| {
        printable(s, 128)?;
        if s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
            Ok(())
        } else {
            Err("may contain only letters, digits, '.', '_', ':' and '-'".into())
        }
    }
);

string_id!(
    /// The customer's own id for one of their users: any 1–128 printable characters.
    UserId,
    "user id",
    |s| printable(s, 128)
);

string_id!(
    /// An event id: the producer's (1–256 printable characters) or one Herald generated.
    EventId,
    "event id",
    |s| printable(s, 256)
);

impl EventId {
    /// A fresh id for an event that came without one. Identical events are distinct events:
    /// nothing is derived from the content.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().hyphenated().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_keys_look_like_event_types() {
        assert!(RuleKey::parse("email.bounced").is_ok());
        assert!(RuleKey::parse("welcome").is_ok());
        assert!(RuleKey::parse("").is_err());
        assert!(RuleKey::parse("has space").is_err());
        assert!(RuleKey::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn user_ids_are_printable() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("a b").is_ok());
        assert!(UserId::parse("a\nb").is_err());
    }

    #[test]
    fn uuid_ids_round_trip_through_text() {
        let id = ChannelId::new();
        assert_eq!(id.to_string().parse::<ChannelId>().ok(), Some(id));
    }
}
