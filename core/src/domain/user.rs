//! User profiles: the contact points, time zone and opt-outs of one of a customer's users, which
//! user-facing channels use when an event does not carry them, and their validation. Stored by
//! `herald_shared::repo::users`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::channel::Channel;
use super::email::EmailAddress;
use super::event::Recipient;
use super::{Invalid, OrgId, UserId};

/// A stored user profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    #[schema(value_type = String)]
    pub user_id: UserId,
    pub org_id: OrgId,
    pub email: Option<String>,
    /// E.164, e.g. `+14155550123`.
    pub phone: Option<String>,
    #[serde(default)]
    pub push_tokens: Vec<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Channel ids or channel kinds (`email`, `sms`, `push`, `in_app`) the user opted out of.
    #[serde(default)]
    pub opt_outs: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

impl UserProfile {
    /// Whether the user opted out of this channel (by id or by kind).
    pub fn opted_out_of(&self, channel: &Channel) -> bool {
        let id = channel.id.to_string();
        self.opt_outs
            .iter()
            .any(|o| *o == id || o == channel.kind().as_str())
    }
}

/// `+` and 2–15 digits, the first not 0.
pub fn validate_phone(phone: &str) -> Result<(), Invalid> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "phone",
            format!("`{phone}` is not an E.164 phone number (e.g. +14155550123)"),
        ))
    }
}

/// A plausible address (see [`EmailAddress`]).
pub fn validate_email(email: &str) -> Result<(), Invalid> {
    EmailAddress::parse(email).map(|_| ())
}

/// An IANA time zone name.
pub fn validate_timezone(tz: &str) -> Result<(), Invalid> {
    tz.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| {
        Invalid::new(
            "timezone",
            format!("`{tz}` is not an IANA time zone (e.g. America/New_York)"),
        )
    })
}

/// The contact points a delivery uses: the event's, else the profile's, field by field.
pub fn contact(recipient: &Recipient, profile: Option<&UserProfile>) -> Recipient {
    let push_tokens = if recipient.push_tokens.is_empty() {
        profile.map(|p| p.push_tokens.clone()).unwrap_or_default()
    } else {
        recipient.push_tokens.clone()
    };
    Recipient {
        user_id: recipient.user_id.clone(),
        email: recipient
            .email
            .clone()
            .or_else(|| profile.and_then(|p| p.email.clone())),
        phone: recipient
            .phone
            .clone()
            .or_else(|| profile.and_then(|p| p.phone.clone())),
        push_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        assert!(validate_phone("+14155550123").is_ok());
        assert!(validate_phone("14155550123").is_err());
        assert!(validate_phone("+0123").is_err());
        assert!(validate_phone("+1 415 555").is_err());
        assert!(validate_phone("+1234567890123456").is_err());
    }

    #[test]
    fn event_contact_points_override_the_profile() {
        let profile = UserProfile {
            user_id: UserId::parse("alice").expect("id"),
            org_id: OrgId::new(),
            email: Some("old@example.com".into()),
            phone: Some("+14155550123".into()),
            push_tokens: vec!["tok".into()],
            timezone: None,
            opt_outs: vec![],
            updated_at: Utc::now(),
        };
        let event = Recipient {
            user_id: profile.user_id.clone(),
            email: Some("new@example.com".into()),
            phone: None,
            push_tokens: vec![],
        };
        let c = contact(&event, Some(&profile));
        assert_eq!(c.email.as_deref(), Some("new@example.com"));
        assert_eq!(c.phone.as_deref(), Some("+14155550123"));
        assert_eq!(c.push_tokens, vec!["tok".to_owned()]);
    }
}
