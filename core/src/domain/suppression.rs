//! The suppression list: per org, the email addresses and phone numbers Herald must not send to
//! (a hard bounce, a complaint, an SMS opt-out, an operator's entry). Keyed by the normalised
//! address, not by user: a profile update or a user's erasure never clears an entry
//! (`docs/hygiene.md`). Stored by `herald_shared::repo::suppressions`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Invalid;
use super::email::EmailAddress;
use super::user::validate_phone;

/// What kind of contact point an entry suppresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionKind {
    Email,
    Sms,
}

impl SuppressionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    /// `email` or `sms`; anything else is refused, about the field `kind`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "email" => Ok(Self::Email),
            "sms" => Ok(Self::Sms),
            other => Err(Invalid::new(
                "kind",
                format!("`{other}` is not a suppressible kind (email or sms)"),
            )),
        }
    }
}

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// A permanent SES bounce (or `OnAccountSuppressionList`).
    HardBounce,
    /// The recipient marked a message as spam (SES complaint). Removing it needs `force`.
    Complaint,
    /// The number replied STOP: SNS will not deliver to it.
    SmsOptOut,
    /// Added through the API.
    Manual,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::SmsOptOut => "sms_opt_out",
            Self::Manual => "manual",
        }
    }

    /// How a delivery's reason names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::HardBounce => "hard bounce",
            Self::Complaint => "complaint",
            Self::SmsOptOut => "opted out of SMS (STOP)",
            Self::Manual => "added manually",
        }
    }
}

/// Who reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionSource {
    Ses,
    Sns,
    Api,
}

/// A normalised contact point: an email address lower-cased, a phone number in E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SuppressedAddress {
    kind: SuppressionKind,
    address: String,
}

impl SuppressedAddress {
    /// Refuses a malformed address (about the field `address`).
    pub fn parse(kind: SuppressionKind, raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let address = match kind {
            SuppressionKind::Email => EmailAddress::parse(raw)
                .map_err(|_| Invalid::new("address", format!("`{raw}` is not an email address")))?
                .as_str()
                .to_lowercase(),
            SuppressionKind::Sms => {
                validate_phone(raw).map_err(|e| Invalid::new("address", e.message))?;
                raw.to_owned()
            }
        };
        Ok(Self { kind, address })
    }

    pub fn kind(&self) -> SuppressionKind {
        self.kind
    }

    pub fn address(&self) -> &str {
        &self.address
    }
}

/// Provider details kept with an entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_sub_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    /// The delivery whose email bounced or was complained about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// An operator's note (API entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One entry of an org's suppression list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suppression {
    pub kind: SuppressionKind,
    /// Normalised: lower-cased email, E.164 phone number.
    pub address: String,
    pub reason: SuppressionReason,
    pub source: SuppressionSource,
    #[serde(default)]
    pub details: SuppressionDetails,
    pub created_at: DateTime<Utc>,
}

impl Suppression {
    pub fn new(
        address: &SuppressedAddress,
        reason: SuppressionReason,
        source: SuppressionSource,
        details: SuppressionDetails,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            kind: address.kind,
            address: address.address.clone(),
            reason,
            source,
            details,
            created_at: now,
        }
    }

    /// A delivery's reason: `a@x.com is on the suppression list (hard bounce 2026-05-01, 550 5.1.1 …)`.
    pub fn describe(&self) -> String {
        let mut what = format!(
            "{} {}",
            self.reason.describe(),
            self.created_at.format("%Y-%m-%d")
        );
        if let Some(code) = self.details.diagnostic_code.as_deref() {
            what.push_str(", ");
            what.extend(code.chars().take(120));
        }
        format!("{} is on the suppression list ({what})", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_phones_must_be_e164() {
        let a = SuppressedAddress::parse(SuppressionKind::Email, " Bob@Example.COM ").expect("ok");
        assert_eq!(a.address(), "bob@example.com");
        assert_eq!(
            SuppressedAddress::parse(SuppressionKind::Email, "nope")
                .expect_err("bad")
                .field,
            "address"
        );
        assert!(SuppressedAddress::parse(SuppressionKind::Sms, "+14155550123").is_ok());
        assert_eq!(
            SuppressedAddress::parse(SuppressionKind::Sms, "4155550123")
                .expect_err("bad")
                .field,
            "address"
        );
        assert_eq!(
            SuppressionKind::parse("slack").expect_err("bad").field,
            "kind"
        );
    }

    #[test]
    fn the_reason_names_the_address_the_cause_and_the_day() {
        let a = SuppressedAddress::parse(SuppressionKind::Email, "a@x.com").expect("ok");
        let s = Suppression::new(
            &a,
            SuppressionReason::HardBounce,
            SuppressionSource::Ses,
            SuppressionDetails {
                diagnostic_code: Some("smtp; 550 5.1.1 user unknown".into()),
                ..Default::default()
            },
            "2026-05-01T10:00:00Z".parse().expect("time"),
        );
        assert_eq!(
            s.describe(),
            "a@x.com is on the suppression list (hard bounce 2026-05-01, smtp; 550 5.1.1 user unknown)"
        );
    }
}
