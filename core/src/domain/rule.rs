//! Notification rules: which events go to which channels, how often, and when.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert::Alerting;
use super::channel::FrequencyCap;
use super::digest::Digest;
use super::matcher::Matcher;
use super::{ChannelId, Invalid, OrgId, RuleKey, UserId};
use crate::delivery::format::template;

/// The most channels one rule may name: a rule write is one transaction of the rule, a check
/// per channel and the version bump, within DynamoDB's 100 items.
pub const MAX_CHANNELS_PER_RULE: usize = 20;
/// At most this many fixed recipients on one rule.
pub const MAX_RECIPIENTS: usize = 100;

/// A rule as a client writes it, unchecked: [`Rule::new`] checks it.
#[derive(Debug, Clone, Default)]
pub struct NewRule {
    pub key: String,
    /// The matcher tree as JSON (`null` or absent: none).
    pub matcher: Option<serde_json::Value>,
    pub channel_ids: Vec<String>,
    pub frequency_cap: Option<FrequencyCap>,
    pub quiet_hours_tz: Option<String>,
    /// `(start, end)` as `HH:MM`.
    pub quiet_hours: Option<(String, String)>,
    pub recipients: Vec<String>,
    pub template: Option<Template>,
    pub alerting: Option<Alerting>,
    /// Collect a user's events into one email, push or in-app message per window.
    pub digest: Option<Digest>,
    /// Password resets, security alerts: no unsubscribe header, the user's opt-outs ignored
    /// (the suppression list still applies).
    pub critical: bool,
    pub enabled: bool,
}

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
    /// Alert lifecycle: dedup key template, resolved follow-ups, auto-resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerting: Option<Alerting>,
    /// Digest: a user's events collected into one email, push or in-app message per window
    /// (docs/digests.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// A critical rule (password resets, security alerts): its emails carry no
    /// `List-Unsubscribe` header and the user's opt-outs are ignored; bounces and complaints on
    /// the suppression list still stop it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Rule {
    /// A new rule from what a client wrote, every field checked (in this order: `key`, `match`,
    /// `frequencyCap`, quiet hours, `recipients`, `template`, `alerting`, `digest`, `channelIds`); the first refused
    /// field is the error. Whether the channels exist is the caller's to check.
    pub fn new(org_id: OrgId, input: NewRule, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let key = RuleKey::parse(input.key.as_str()).map_err(|e| Invalid::new("key", e.message))?;
        let matcher = Self::parse_matcher(input.matcher)?;
        let frequency_cap = input
            .frequency_cap
            .map(FrequencyCap::validate)
            .transpose()?;
        let quiet_hours = QuietHours::from_parts(
            input.quiet_hours_tz.as_deref(),
            input
                .quiet_hours
                .as_ref()
                .map(|(s, e)| (s.as_str(), e.as_str())),
        )?;
        let recipients = Self::parse_recipients(&input.recipients)?;
        let template = input.template.map(Template::check).transpose()?;
        let alerting = input.alerting.map(Alerting::check).transpose()?;
        let digest = input.digest.map(Digest::check).transpose()?;
        Self::check_digest_alone(alerting.as_ref(), digest.as_ref())?;
        let channel_ids = Self::parse_channel_ids(&input.channel_ids)?;
        Ok(Self {
            key,
            org_id,
            matcher,
            channel_ids,
            frequency_cap,
            quiet_hours,
            recipients,
            template,
            alerting,
            digest,
            critical: input.critical,
            enabled: input.enabled,
            created_at: now,
            updated_at: now,
        })
    }

    /// A digest collects a user's events; an alerting rule deduplicates and groups them
    /// itself: a rule has one or the other.
    pub fn check_digest_alone(
        alerting: Option<&Alerting>,
        digest: Option<&Digest>,
    ) -> Result<(), Invalid> {
        if alerting.is_some() && digest.is_some() {
            return Err(Invalid::new(
                "digest",
                "a rule with `alerting` cannot also have a digest (alerts group with `alerting.groupBy`)",
            ));
        }
        Ok(())
    }

    /// A rule's `match`: `None` for absent or `null`; errors are rooted at `match`.
    pub fn parse_matcher(value: Option<serde_json::Value>) -> Result<Option<Matcher>, Invalid> {
        match value.filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => Matcher::parse(&v).map(Some),
        }
    }

    /// A rule's `channelIds`: 1 to [`MAX_CHANNELS_PER_RULE`] distinct channel ids.
    pub fn parse_channel_ids(raw: &[String]) -> Result<Vec<ChannelId>, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new(
                "channelIds",
                "a rule needs at least one channel",
            ));
        }
        if raw.len() > MAX_CHANNELS_PER_RULE {
            return Err(Invalid::new(
                "channelIds",
                format!("a rule may name at most {MAX_CHANNELS_PER_RULE} channels"),
            ));
        }
        let mut ids: Vec<ChannelId> = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            let field = format!("channelIds[{i}]");
            let id: ChannelId = s
                .parse()
                .map_err(|_| Invalid::new(field.clone(), format!("`{s}` is not a channel id")))?;
            if ids.contains(&id) {
                return Err(Invalid::new(field, "this channel is already listed"));
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// A rule's fixed `recipients`: at most [`MAX_RECIPIENTS`] user ids.
    pub fn parse_recipients(raw: &[String]) -> Result<Vec<UserId>, Invalid> {
        if raw.len() > MAX_RECIPIENTS {
            return Err(Invalid::new(
                "recipients",
                format!("at most {MAX_RECIPIENTS} fixed recipients"),
            ));
        }
        raw.iter()
            .enumerate()
            .map(|(i, s)| {
                UserId::parse(s.as_str())
                    .map_err(|e| Invalid::new(format!("recipients[{i}]"), e.message))
            })
            .collect()
    }
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

impl QuietHours {
    /// A rule's `quietHoursTz` and `quietHours` window together: none without either; a window
    /// needs a time zone; a time zone alone means the default window.
    pub fn from_parts(
        tz: Option<&str>,
        window: Option<(&str, &str)>,
    ) -> Result<Option<Self>, Invalid> {
        match (tz, window) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Invalid::new(
                "quietHours",
                "quiet hours need `quietHoursTz` (an IANA time zone)",
            )),
            (Some(tz), w) => Self::parse(tz, w).map(Some),
        }
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

impl Template {
    /// Longest title, body and link, in characters.
    pub const MAX_TITLE: usize = 256;
    pub const MAX_BODY: usize = 4096;
    pub const MAX_LINK: usize = 2048;

    /// The template, if each part is within its length and parses: unknown variables and
    /// broken placeholders are known now; a property an event lacks only at delivery.
    pub fn check(self) -> Result<Self, Invalid> {
        for (field, value, max) in [
            ("template.title", &self.title, Self::MAX_TITLE),
            ("template.body", &self.body, Self::MAX_BODY),
            ("template.link", &self.link, Self::MAX_LINK),
        ] {
            let Some(value) = value else { continue };
            if value.chars().count() > max {
                return Err(Invalid::new(field, format!("at most {max} characters")));
            }
            template::parse(value).map_err(|e| Invalid::new(field, e.to_string()))?;
        }
        Ok(self)
    }
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

    fn new_rule() -> NewRule {
        NewRule {
            key: "email.bounced".into(),
            channel_ids: vec![ChannelId::new().to_string()],
            enabled: true,
            ..NewRule::default()
        }
    }

    fn refused(input: NewRule) -> (String, String) {
        let e = Rule::new(OrgId::new(), input, Utc::now()).expect_err("refused");
        (e.field, e.message)
    }

    #[test]
    fn a_rule_needs_a_key_and_one_to_twenty_distinct_channels() {
        let rule = Rule::new(OrgId::new(), new_rule(), Utc::now()).expect("valid");
        assert_eq!(rule.key.as_str(), "email.bounced");
        assert!(rule.enabled && rule.matcher.is_none() && rule.quiet_hours.is_none());
        assert_eq!(
            refused(NewRule {
                key: "a b".into(),
                ..new_rule()
            })
            .0,
            "key"
        );
        assert_eq!(
            refused(NewRule {
                channel_ids: vec![],
                ..new_rule()
            }),
            (
                "channelIds".into(),
                "a rule needs at least one channel".into()
            )
        );
        let many = (0..=MAX_CHANNELS_PER_RULE)
            .map(|_| ChannelId::new().to_string())
            .collect();
        assert_eq!(
            refused(NewRule {
                channel_ids: many,
                ..new_rule()
            }),
            (
                "channelIds".into(),
                "a rule may name at most 20 channels".into()
            )
        );
        let id = ChannelId::new().to_string();
        assert_eq!(
            refused(NewRule {
                channel_ids: vec![id.clone(), id],
                ..new_rule()
            }),
            (
                "channelIds[1]".into(),
                "this channel is already listed".into()
            )
        );
        assert_eq!(
            refused(NewRule {
                channel_ids: vec!["nope".into()],
                ..new_rule()
            }),
            ("channelIds[0]".into(), "`nope` is not a channel id".into())
        );
    }

    #[test]
    fn recipients_are_bounded_user_ids() {
        let many = (0..=MAX_RECIPIENTS).map(|i| format!("u{i}")).collect();
        assert_eq!(
            refused(NewRule {
                recipients: many,
                ..new_rule()
            })
            .0,
            "recipients"
        );
        assert_eq!(
            refused(NewRule {
                recipients: vec!["ok".into(), String::new()],
                ..new_rule()
            })
            .0,
            "recipients[1]"
        );
    }

    #[test]
    fn quiet_hours_windows_need_a_time_zone() {
        let window = Some(("22:00".to_owned(), "07:00".to_owned()));
        assert_eq!(
            refused(NewRule {
                quiet_hours: window.clone(),
                ..new_rule()
            })
            .0,
            "quietHours"
        );
        let rule = Rule::new(
            OrgId::new(),
            NewRule {
                quiet_hours_tz: Some("Europe/Paris".into()),
                quiet_hours: window,
                ..new_rule()
            },
            Utc::now(),
        )
        .expect("valid");
        assert_eq!(
            rule.quiet_hours.map(|q| q.end),
            NaiveTime::from_hms_opt(7, 0, 0)
        );
    }

    #[test]
    fn templates_are_bounded_and_parsed_at_save() {
        let t = |title: String| Template {
            title: Some(title),
            body: None,
            link: None,
        };
        assert!(t("Bounced: {{properties.to}}".into()).check().is_ok());
        let e = t("x".repeat(Template::MAX_TITLE + 1))
            .check()
            .expect_err("long");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("template.title", "at most 256 characters")
        );
        assert_eq!(
            t("{{nope}}".into()).check().expect_err("unknown").field,
            "template.title"
        );
        let e = refused(NewRule {
            template: Some(t("{{properties.x".into())),
            ..new_rule()
        });
        assert_eq!(e.0, "template.title");
    }

    #[test]
    fn the_first_refused_field_is_reported() {
        let input = NewRule {
            key: "bad key".into(),
            channel_ids: vec![],
            matcher: Some(serde_json::json!({"op": "nope"})),
            ..new_rule()
        };
        assert_eq!(refused(input.clone()).0, "key");
        assert!(
            refused(NewRule {
                key: "ok".into(),
                ..input
            })
            .0
            .starts_with("match")
        );
    }
}
