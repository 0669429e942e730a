//! Notification rules: which events go to which channels, how often, and when.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::channel::FrequencyCap;
use super::matcher::Matcher;
use super::{ChannelId, Invalid, OrgId, RuleKey, UserId};

/// A rule. Without a matcher it fires on events whose type equals its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub key: RuleKey,
    pub org_id: OrgId,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Matcher>,
    pub channel_ids: Vec<ChannelId>,
    pub frequency_cap: Option<FrequencyCap>,
    pub quiet_hours: Option<QuietHours>,
    /// Fixed recipients, added to those the event names.
    #[serde(default)]
    pub recipients: Vec<UserId>,
    pub template: Option<Template>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Quiet hours in one IANA time zone: `[start, end)` local time, wrapping midnight when
/// `start > end` (the default 22:00–08:00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuietHours {
    pub tz: chrono_tz::Tz,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub const DEFAULT_START: NaiveTime = NaiveTime::from_hms_opt(22, 0, 0).expect("valid time");
    pub const DEFAULT_END: NaiveTime = NaiveTime::from_hms_opt(8, 0, 0).expect("valid time");

    /// Parses `quietHoursTz` and an optional `{start, end}` window (`"HH:MM"`).
    pub fn parse(tz: &str, window: Option<(&str, &str)>) -> Result<Self, Invalid> {
        let tz: chrono_tz::Tz = tz.parse().map_err(|_| {
            Invalid::new(
                "quietHoursTz",
                format!("`{tz}` is not an IANA time zone (e.g. America/New_York)"),
            )
        })?;
        let (start, end) = match window {
            None => (Self::DEFAULT_START, Self::DEFAULT_END),
            Some((s, e)) => (
                parse_hhmm(s, "quietHours.start")?,
                parse_hhmm(e, "quietHours.end")?,
            ),
        };
        if start == end {
            return Err(Invalid::new("quietHours", "start and end must differ"));
        }
        Ok(Self { tz, start, end })
    }
}

fn parse_hhmm(s: &str, field: &str) -> Result<NaiveTime, Invalid> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| Invalid::new(field, format!("`{s}` is not a time of day as HH:MM")))
}

/// A message template: plain text with `{{properties.x}}`, `{{type}}`, `{{module}}` placeholders,
/// escaped per channel when rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    pub title: Option<String>,
    pub body: Option<String>,
    pub link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_default_to_ten_pm_until_eight_am() {
        let q = QuietHours::parse("America/New_York", None).expect("valid");
        assert_eq!(
            (q.start, q.end),
            (QuietHours::DEFAULT_START, QuietHours::DEFAULT_END)
        );
    }

    #[test]
    fn unknown_time_zones_name_the_field() {
        let err = QuietHours::parse("Mars/Olympus", None).expect_err("invalid");
        assert_eq!(err.field, "quietHoursTz");
    }
}
