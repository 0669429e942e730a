//! Silences: mute what matches — a matcher tree over events, and/or rules and channels — for a
//! bounded time, with an audit trail (`createdBy`, `comment`). A silenced delivery is still
//! recorded (`suppressed`, naming the silence); a resolved follow-up for an alert whose trigger
//! was already delivered is never silenced.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::event::Event;
use super::matcher::Matcher;
use super::{ChannelId, Invalid, OrgId, RuleKey, SilenceId};
use crate::rules::CompiledMatcher;

/// Longest a silence may last; longer ones are extended with a PATCH.
pub const MAX_DURATION_DAYS: i64 = 30;
/// Longest `comment`, in characters.
pub const MAX_COMMENT_CHARS: usize = 1024;
/// Longest `createdBy`, in characters.
pub const MAX_CREATED_BY_CHARS: usize = 256;
/// Most rule keys or channel ids one silence names.
pub const MAX_SCOPE_ITEMS: usize = 50;
/// Most silences not yet expired per org.
pub const MAX_LIVE_SILENCES: usize = 1000;

/// A silence as a client writes it, unchecked: [`Silence::new`] checks it.
#[derive(Debug, Clone, Default)]
pub struct NewSilence {
    pub matcher: Option<serde_json::Value>,
    pub rule_keys: Vec<String>,
    pub channel_ids: Vec<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: SilenceId,
    pub org_id: OrgId,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Matcher>,
    #[serde(default)]
    pub rule_keys: Vec<RuleKey>,
    #[serde(default)]
    pub channel_ids: Vec<ChannelId>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a silence stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    /// `now < startsAt`.
    Pending,
    /// `startsAt ≤ now < endsAt`.
    Active,
    /// `endsAt ≤ now`.
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Active, Self::Expired]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl Silence {
    /// A new silence from what a client wrote. `startsAt` defaults to `now`; `endsAt` is
    /// required, after both `startsAt` and `now`, and at most [`MAX_DURATION_DAYS`] after
    /// `startsAt`. Without a matcher it must name rules or channels: a silence of everything
    /// is refused.
    pub fn new(org_id: OrgId, input: NewSilence, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let matcher = match input.matcher.filter(|v| !v.is_null()) {
            None => None,
            Some(v) => Some(Matcher::parse(&v)?),
        };
        let rule_keys = parse_list(&input.rule_keys, "ruleKeys", |s| {
            RuleKey::parse(s).map_err(|e| e.message)
        })?;
        let channel_ids = parse_list(&input.channel_ids, "channelIds", |s| {
            s.parse::<ChannelId>()
                .map_err(|_| format!("`{s}` is not a channel id"))
        })?;
        if matcher.is_none() && rule_keys.is_empty() && channel_ids.is_empty() {
            return Err(Invalid::new(
                "match",
                "a silence needs a `match`, `ruleKeys` or `channelIds`: this one would silence everything",
            ));
        }
        let starts_at = input.starts_at.unwrap_or(now);
        let ends_at = input
            .ends_at
            .ok_or_else(|| Invalid::new("endsAt", "is required"))?;
        check_window(starts_at, ends_at, now)?;
        let comment = text(input.comment, "comment", MAX_COMMENT_CHARS)?;
        let created_by = text(input.created_by, "createdBy", MAX_CREATED_BY_CHARS)?;
        Ok(Self {
            id: SilenceId::new(),
            org_id,
            matcher,
            rule_keys,
            channel_ids,
            starts_at,
            ends_at,
            comment,
            created_by,
            created_at: now,
            updated_at: now,
        })
    }

    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Changes `endsAt` and/or `comment`. An expired silence cannot change (the caller answers
    /// 409); the new `endsAt` obeys the creation bounds.
    pub fn update(
        &mut self,
        ends_at: Option<DateTime<Utc>>,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Invalid> {
        if let Some(end) = ends_at {
            // An extension's 30 days run from the later of start and now.
            check_window(self.starts_at.max(now), end, now)?;
            self.ends_at = end;
        }
        if comment.is_some() {
            self.comment = text(comment, "comment", MAX_COMMENT_CHARS)?;
        }
        self.updated_at = now;
        Ok(())
    }

    /// Ends the silence now (a delete): it stays listed, as expired.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        if self.ends_at > now {
            self.ends_at = now;
        }
        if self.starts_at > now {
            self.starts_at = now;
        }
        self.updated_at = now;
    }

    /// The matcher compiled, when it has one. A stored matcher was valid when written.
    pub fn compile(&self) -> Result<Option<CompiledMatcher>, Invalid> {
        self.matcher.as_ref().map(Matcher::compile).transpose()
    }

    /// Whether this silence, with its matcher compiled as `compiled`, silences the delivery of
    /// `event` by `rule` to `channel` at `now`.
    pub fn silences(
        &self,
        compiled: Option<&CompiledMatcher>,
        event: &Event,
        rule: &RuleKey,
        channel: ChannelId,
        now: DateTime<Utc>,
    ) -> bool {
        self.state(now) == SilenceState::Active
            && (self.rule_keys.is_empty() || self.rule_keys.contains(rule))
            && (self.channel_ids.is_empty() || self.channel_ids.contains(&channel))
            && compiled.is_none_or(|m| m.matches(event))
    }
}

fn check_window(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    if ends_at <= starts_at {
        return Err(Invalid::new("endsAt", "must be after startsAt"));
    }
    if ends_at <= now {
        return Err(Invalid::new("endsAt", "must be in the future"));
    }
    if ends_at - starts_at > Duration::days(MAX_DURATION_DAYS) {
        return Err(Invalid::new(
            "endsAt",
            format!("a silence lasts at most {MAX_DURATION_DAYS} days; extend it later with PATCH"),
        ));
    }
    Ok(())
}

fn text(value: Option<String>, field: &str, max: usize) -> Result<String, Invalid> {
    let s = value.ok_or_else(|| Invalid::new(field, "is required"))?;
    if s.trim().is_empty() || s.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be 1–{max} characters, not blank"),
        ));
    }
    Ok(s)
}

fn parse_list<T: PartialEq>(
    raw: &[String],
    field: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Invalid> {
    if raw.len() > MAX_SCOPE_ITEMS {
        return Err(Invalid::new(
            field,
            format!("at most {MAX_SCOPE_ITEMS} entries"),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let v = parse(s).map_err(|m| Invalid::new(format!("{field}[{i}]"), m))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::format::tests_support::disk_full;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, 0, 0)
            .single()
            .expect("date")
    }

    fn input() -> NewSilence {
        NewSilence {
            matcher: Some(serde_json::json!({"field":"properties.host","op":"eq","value":"web-1"})),
            starts_at: Some(at(10)),
            ends_at: Some(at(12)),
            comment: Some("drill CHG-1".into()),
            created_by: Some("alice@example.com".into()),
            ..NewSilence::default()
        }
    }

    #[test]
    fn a_silence_is_active_from_its_start_until_just_before_its_end() {
        let s = Silence::new(OrgId::new(), input(), at(9)).expect("valid");
        let rule = RuleKey::parse("disk").expect("key");
        let channel = ChannelId::new();
        let m = s.compile().expect("compiles");
        let second = Duration::seconds(1);
        assert_eq!(s.state(at(10) - second), SilenceState::Pending);
        assert_eq!(s.state(at(10)), SilenceState::Active);
        assert_eq!(s.state(at(12) - second), SilenceState::Active);
        assert_eq!(s.state(at(12)), SilenceState::Expired);
        assert!(s.silences(m.as_ref(), &disk_full(), &rule, channel, at(11)));
        assert!(!s.silences(m.as_ref(), &disk_full(), &rule, channel, at(12)));
    }

    #[test]
    fn a_silence_needs_its_matcher_rules_and_channels_to_agree() {
        let rule = RuleKey::parse("disk").expect("key");
        let other = RuleKey::parse("other").expect("key");
        let channel = ChannelId::new();
        let mut i = input();
        i.rule_keys = vec!["disk".into()];
        i.channel_ids = vec![channel.to_string()];
        let s = Silence::new(OrgId::new(), i, at(9)).expect("valid");
        let m = s.compile().expect("compiles");
        assert!(s.silences(m.as_ref(), &disk_full(), &rule, channel, at(11)));
        assert!(!s.silences(m.as_ref(), &disk_full(), &other, channel, at(11)));
        assert!(!s.silences(m.as_ref(), &disk_full(), &rule, ChannelId::new(), at(11)));
        let mut web2 = disk_full();
        web2.properties
            .insert("host".into(), serde_json::json!("web-2"));
        assert!(!s.silences(m.as_ref(), &web2, &rule, channel, at(11)));
    }

    #[test]
    fn bad_silences_name_the_field() {
        let bad = |f: fn(&mut NewSilence)| {
            let mut i = input();
            f(&mut i);
            Silence::new(OrgId::new(), i, at(9))
                .expect_err("invalid")
                .field
        };
        assert_eq!(bad(|i| i.ends_at = None), "endsAt");
        assert_eq!(bad(|i| i.ends_at = Some(at(10))), "endsAt");
        assert_eq!(
            bad(|i| i.ends_at = Some(at(10) + Duration::days(31))),
            "endsAt"
        );
        assert_eq!(bad(|i| i.comment = None), "comment");
        assert_eq!(bad(|i| i.created_by = Some(" ".into())), "createdBy");
        assert_eq!(bad(|i| i.matcher = None), "match");
        assert_eq!(
            bad(|i| i.matcher =
                Some(serde_json::json!({"all":[{"field":"type","op":"nope","value":1}]}))),
            "match.all[0].op"
        );
        assert_eq!(bad(|i| i.channel_ids = vec!["x".into()]), "channelIds[0]");
    }

    #[test]
    fn exactly_thirty_days_is_allowed() {
        let mut i = input();
        i.ends_at = Some(at(10) + Duration::days(30));
        assert!(Silence::new(OrgId::new(), i, at(9)).is_ok());
    }

    #[test]
    fn expiring_keeps_the_record_and_ends_it_now() {
        let mut s = Silence::new(OrgId::new(), input(), at(9)).expect("valid");
        s.expire(at(11));
        assert_eq!(s.state(at(11)), SilenceState::Expired);
        assert_eq!(s.ends_at, at(11));
    }
}
