//! Digests (docs/digests.md): a rule's `digest` block collects a user's matching events into one
//! email, push or in-app message per window instead of one message per event.
//!
//! Pure: the rule block and its bounds, when a window closes, the digest key of an event, and
//! the [`DigestMessage`] the people formatters render. The matcher keeps the open batches in the
//! store (`herald_shared::repo::digests`) and flushes them with delayed match-queue messages.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::channel::ChannelKind;
use super::event::Event;
use super::rule::Template;
use super::{DeliveryId, EventId, Invalid, RuleKey};
use crate::delivery::format::template::{self, Escape, Scope};
use crate::delivery::format::{MessageContext, readable_type};
use crate::delivery::quiet;

/// The start of the reason an event's route shows for an event that joined a digest (its
/// delivery id is the digest's).
pub const BATCHED_INTO: &str = "batched into a digest sent at ";

/// `windowSeconds` bounds: a minute to a week (design notes §6).
pub const WINDOW_SECONDS: std::ops::RangeInclusive<u32> = 60..=604_800;
/// `maxEvents` bounds: a flush as soon as this many events joined.
pub const MAX_EVENTS: std::ops::RangeInclusive<u32> = 1..=1000;
/// `items` bounds and default: how many events the message lists (the rest are counted).
pub const ITEMS: std::ops::RangeInclusive<u32> = 1..=100;
pub const DEFAULT_ITEMS: u32 = 100;
/// Longest `key` template, in characters.
pub const MAX_KEY_TEMPLATE: usize = 1024;
/// Longest body of one listed item, in characters: a digest of 100 items stays far below a
/// queue message's 256 KB.
pub const MAX_ITEM_BODY: usize = 500;

/// A rule's `digest` block as a client writes it and the rule stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Digest {
    /// A window of this many seconds (60 – 604,800) from the first event of a batch. Exactly
    /// one of `windowSeconds` and `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
    /// A daily digest: the batch is sent at the next `HH:MM` in the recipient's time zone (the
    /// profile's `timezone`; UTC without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// A template splitting a user's events into several digests (`{{properties.postId}}`);
    /// a key that renders empty, or an event missing a variable, falls back to one digest per
    /// user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Send the batch as soon as this many events joined it (1 – 1,000), before its window
    /// closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u32>,
    /// How many events the message lists, oldest first (1 – 100, default 100); the rest are
    /// counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u32>,
}

/// When a batch closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// This long after the batch opened.
    Fixed(Duration),
    /// At the next occurrence of this local time in the recipient's zone.
    Daily(NaiveTime),
}

impl Digest {
    /// The block, if its bounds hold and its key template parses; errors are rooted at
    /// `digest`.
    pub fn check(self) -> Result<Self, Invalid> {
        match (&self.window_seconds, &self.at) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    "digest",
                    "set either `windowSeconds` or `at`, not both",
                ));
            }
            (None, None) => {
                return Err(Invalid::new(
                    "digest.windowSeconds",
                    "a digest needs `windowSeconds` (or a daily `at`)",
                ));
            }
            (Some(s), None) if !WINDOW_SECONDS.contains(s) => {
                return Err(bounds("digest.windowSeconds", &WINDOW_SECONDS, "seconds"));
            }
            (None, Some(at)) => {
                parse_at(at)?;
            }
            _ => {}
        }
        if let Some(t) = &self.key {
            let chars = t.chars().count();
            if chars == 0 || chars > MAX_KEY_TEMPLATE {
                return Err(Invalid::new(
                    "digest.key",
                    format!("a template of 1–{MAX_KEY_TEMPLATE} characters"),
                ));
            }
            template::parse(t).map_err(|e| Invalid::new("digest.key", e.to_string()))?;
        }
        if let Some(n) = self.max_events
            && !MAX_EVENTS.contains(&n)
        {
            return Err(bounds("digest.maxEvents", &MAX_EVENTS, "events"));
        }
        if let Some(n) = self.items
            && !ITEMS.contains(&n)
        {
            return Err(bounds("digest.items", &ITEMS, "items"));
        }
        Ok(self)
    }

    /// When a batch closes (a checked block has one of the two).
    pub fn window(&self) -> Window {
        match (&self.window_seconds, self.at.as_deref().map(parse_at)) {
            (_, Some(Ok(t))) => Window::Daily(t),
            (Some(s), _) => Window::Fixed(Duration::seconds(i64::from(*s))),
            _ => Window::Fixed(Duration::seconds(i64::from(*WINDOW_SECONDS.start()))),
        }
    }

    /// How many events a message lists.
    pub fn items(&self) -> usize {
        self.items.unwrap_or(DEFAULT_ITEMS) as usize
    }

    /// When a batch opened at `opened` closes; `tz`: the recipient's IANA zone (a daily
    /// digest; none, or one that does not parse: UTC).
    pub fn closes_at(&self, opened: DateTime<Utc>, tz: Option<&str>) -> DateTime<Utc> {
        match self.window() {
            Window::Fixed(d) => opened + d,
            Window::Daily(t) => {
                let zone = tz.and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC);
                next_daily(opened, t, zone)
            }
        }
    }

    /// The digest key of `event` under this rule: the `key` template rendered strictly; empty
    /// (one digest per user) without a template, for a variable the event lacks, or for a key
    /// that renders blank.
    pub fn key_for(&self, event: &Event, rule: &RuleKey) -> String {
        let Some(t) = self.key.as_deref() else {
            return String::new();
        };
        let scope = Scope {
            event,
            rule_key: Some(rule.as_str()),
        };
        template::render(t, &scope, Escape::Plain)
            .map(|k| k.trim().to_owned())
            .unwrap_or_default()
    }
}

/// Whether a rule's digest applies to a channel of `kind`: email, push and in-app. SMS, chat
/// and webhook channels of the rule stay real-time.
pub fn takes_digests(kind: ChannelKind) -> bool {
    matches!(
        kind,
        ChannelKind::Email | ChannelKind::Push | ChannelKind::InApp
    )
}

fn bounds(field: &str, range: &std::ops::RangeInclusive<u32>, unit: &str) -> Invalid {
    Invalid::new(
        field,
        format!("must be {} to {} {unit}", range.start(), range.end()),
    )
}

fn parse_at(at: &str) -> Result<NaiveTime, Invalid> {
    NaiveTime::parse_from_str(at, "%H:%M")
        .map_err(|_| Invalid::new("digest.at", format!("`{at}` is not a time of day as HH:MM")))
}

/// The first instant after `after` whose wall clock in `tz` shows `at` (a time skipped by a
/// spring-forward jump: the jump; one repeated by a fall-back: its first occurrence still
/// ahead), as quiet hours compute their end.
fn next_daily(after: DateTime<Utc>, at: NaiveTime, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let local = after.with_timezone(&tz).naive_local();
    let mut date = local.date();
    for _ in 0..3 {
        let t = quiet::first_instant_at(tz, date.and_time(at), after);
        if t > after {
            return t;
        }
        date = date.succ_opt().unwrap_or(date);
    }
    after + Duration::days(1)
}

/// One event listed in a digest, rendered when it joined the batch with the rule's template
/// (plain text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DigestItem {
    #[schema(value_type = String)]
    pub event_id: EventId,
    pub received_at: DateTime<Utc>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl DigestItem {
    /// `event` as a digest lists it: the rule's template rendered strictly (plain text); an
    /// event the template cannot fill is listed as it would read without one (its `title`
    /// property, else its readable type), never with a visible placeholder.
    pub fn of(event: &Event, rule: &RuleKey, template: Option<&Template>) -> Self {
        let mut ctx = MessageContext {
            event,
            rule_key: Some(rule),
            template,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        if ctx.check_template().is_err() {
            ctx.template = None;
        }
        let mut title = ctx.title(Escape::Plain);
        if title == event.event_type.as_str() {
            title = readable_type(&title);
        }
        Self {
            event_id: event.id.clone(),
            received_at: event.received_at,
            title,
            body: ctx.text(Escape::Plain),
            link: ctx.link().map(String::from),
        }
    }

    /// The item's line in the message: `• title — body (link)`, the body cut to
    /// [`MAX_ITEM_BODY`] characters.
    pub fn line(&self) -> String {
        let mut line = format!("• {}", self.title);
        if let Some(body) = self.body.as_deref().filter(|b| !b.trim().is_empty()) {
            line.push_str(" — ");
            let mut cut: String = body.chars().take(MAX_ITEM_BODY).collect();
            if cut.len() < body.len() {
                cut.push('…');
            }
            line.push_str(&cut.replace(['\r', '\n'], " "));
        }
        if let Some(link) = &self.link {
            line.push_str(&format!(" ({link})"));
        }
        line
    }
}

/// One digest message: what the email, push and in-app formats render instead of the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DigestMessage {
    /// Events in the batch.
    pub count: u32,
    /// The first `items` of them, oldest first.
    pub items: Vec<DigestItem>,
}

impl DigestMessage {
    /// Events not listed.
    pub fn more(&self) -> u32 {
        self.count
            .saturating_sub(u32::try_from(self.items.len()).unwrap_or(u32::MAX))
    }

    /// The summary line, the message's title: the item's own title for a batch of one, else
    /// `<count> notifications: <first title> and <count − 1> more`.
    pub fn title(&self) -> String {
        let first = self.items.first().map_or("", |i| i.title.as_str());
        match self.count {
            0 | 1 => first.to_owned(),
            n => format!("{n} notifications: {first} and {} more", n - 1),
        }
    }

    /// The message text: one line per listed item, then `+N more` for those not listed.
    pub fn text(&self) -> String {
        let mut lines: Vec<String> = self.items.iter().map(DigestItem::line).collect();
        let more = self.more();
        if more > 0 {
            lines.push(format!("+{more} more"));
        }
        lines.join("\n")
    }

    /// The link of the message: the first item's, when there is one item.
    pub fn link(&self) -> Option<&str> {
        match self.items.as_slice() {
            [only] if self.count == 1 => only.link.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(window: Option<u32>, at: Option<&str>) -> Digest {
        Digest {
            window_seconds: window,
            at: at.map(str::to_owned),
            key: None,
            max_events: None,
            items: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    #[test]
    fn out_of_bounds_blocks_name_their_field() {
        let field = |d: Digest| d.check().expect_err("refused").field;
        assert_eq!(field(digest(Some(59), None)), "digest.windowSeconds");
        assert_eq!(field(digest(Some(604_801), None)), "digest.windowSeconds");
        assert_eq!(field(digest(None, None)), "digest.windowSeconds");
        assert_eq!(field(digest(Some(60), Some("09:00"))), "digest");
        assert_eq!(field(digest(None, Some("9am"))), "digest.at");
        assert_eq!(
            field(Digest {
                max_events: Some(0),
                ..digest(Some(60), None)
            }),
            "digest.maxEvents"
        );
        assert_eq!(
            field(Digest {
                max_events: Some(1001),
                ..digest(Some(60), None)
            }),
            "digest.maxEvents"
        );
        assert_eq!(
            field(Digest {
                items: Some(101),
                ..digest(Some(60), None)
            }),
            "digest.items"
        );
        assert_eq!(
            field(Digest {
                key: Some("{{nope}}".into()),
                ..digest(Some(60), None)
            }),
            "digest.key"
        );
        assert!(digest(Some(60), None).check().is_ok());
        assert!(digest(Some(604_800), None).check().is_ok());
        assert!(digest(None, Some("09:00")).check().is_ok());
    }

    #[test]
    fn a_fixed_window_closes_its_length_after_the_first_event() {
        let d = digest(Some(3600), None);
        assert_eq!(
            d.closes_at(at("2026-06-01T10:15:00Z"), None),
            at("2026-06-01T11:15:00Z")
        );
    }

    #[test]
    fn a_daily_digest_goes_at_the_next_local_time_across_dst() {
        let d = digest(None, Some("09:00"));
        let paris = Some("Europe/Paris");
        // 08:00 CET on 28 March 2026 → 09:00 CET the same day.
        assert_eq!(
            d.closes_at(at("2026-03-28T07:00:00Z"), paris),
            at("2026-03-28T08:00:00Z")
        );
        // 10:00 CET on 28 March → 09:00 CEST on 29 March (clocks went forward that night).
        assert_eq!(
            d.closes_at(at("2026-03-28T09:00:00Z"), paris),
            at("2026-03-29T07:00:00Z")
        );
        // Exactly 09:00: the next day's.
        assert_eq!(
            d.closes_at(at("2026-03-29T07:00:00Z"), paris),
            at("2026-03-30T07:00:00Z")
        );
        // No zone: UTC.
        assert_eq!(
            d.closes_at(at("2026-06-01T10:00:00Z"), None),
            at("2026-06-02T09:00:00Z")
        );
    }

    #[test]
    fn a_missing_or_blank_key_falls_back_to_one_digest_per_user() {
        let rule = RuleKey::parse("comments").expect("key");
        let mut event = crate::delivery::format::test_event(super::super::OrgId::new(), Utc::now());
        event.properties.insert("postId".into(), "p1".into());
        event.properties.insert("blank".into(), " ".into());
        let keyed = |t: &str| {
            Digest {
                key: Some(t.into()),
                ..digest(Some(60), None)
            }
            .key_for(&event, &rule)
        };
        assert_eq!(keyed("post-{{properties.postId}}"), "post-p1");
        assert_eq!(keyed("{{properties.missing}}"), "");
        assert_eq!(keyed("{{properties.blank}}"), "");
        assert_eq!(digest(Some(60), None).key_for(&event, &rule), "");
    }

    fn item(n: u32) -> DigestItem {
        DigestItem {
            event_id: EventId::parse(format!("e{n}")).expect("id"),
            received_at: at("2026-06-01T10:00:00Z"),
            title: format!("Comment {n}"),
            body: (n == 1).then(|| "first\nline".to_owned()),
            link: None,
        }
    }

    #[test]
    fn a_digest_reads_as_a_summary_line_and_one_line_per_item() {
        let message = DigestMessage {
            count: 3,
            items: vec![item(1), item(2)],
        };
        assert_eq!(message.title(), "3 notifications: Comment 1 and 2 more");
        assert_eq!(
            message.text(),
            "• Comment 1 — first line\n• Comment 2\n+1 more"
        );
        let one = DigestMessage {
            count: 1,
            items: vec![item(2)],
        };
        assert_eq!(
            (one.title().as_str(), one.text().as_str()),
            ("Comment 2", "• Comment 2")
        );
    }
}
