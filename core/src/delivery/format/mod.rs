//! Payload formatters: pure functions from an event (plus rule key, optional template and the
//! delivery id) to the JSON body one channel expects. Rendered examples: `docs/messages.md`.
//!
//! | target | body |
//! |---|---|
//! | Slack incoming webhook | top-level `text` (the notification line) and one attachment with fallback, colour bar, title, title_link, text, fields, footer, ts ([`slack`]) |
//! | Discord webhook | `embeds` with an integer colour, `allowed_mentions: {parse: []}` ([`discord`]) |
//! | Teams Workflows webhook | a `message` carrying an Adaptive Card 1.4 ([`teams`]) |
//! | generic webhook | the event JSON plus `deliveryId` and `ruleKey` ([`generic`]) |
//! | PagerDuty Events API v2 | `event_action` and `dedup_key` from the alert, `payload` on a trigger ([`pagerduty`]) |
//!
//! What every chat format (Slack, Discord, Teams) shows:
//! - heading: the template's `title`, else a string property `title`, else the event type made
//!   readable (`disk.full` → "Disk full", [`readable_type`]); the raw type stays in the footer
//!   `Herald · <module> · <type>`;
//! - summary (Slack's top-level `text` and `fallback`, what a phone notification shows):
//!   `[<module>] <heading> — <key> <value>, …` with up to [`SUMMARY_KEYS`] of the
//!   [`WELL_KNOWN_KEYS`] the event carries, e.g. `[ops] Disk full — severity critical, host web-1`;
//! - text: the template's `body`, else a string property `message`, else nothing;
//! - link: the template's `link`, else a string property `url` or `link` — only if it is an
//!   `http(s)` URL;
//! - fields: the event's properties, the [`WELL_KNOWN_KEYS`] first in that order, then the others
//!   alphabetically (the workspace does not enable serde_json's `preserve_order`, so the order the
//!   event was sent in is not kept; enabling it would change every `Map` in the workspace). A
//!   property already shown as the heading (`title`), the text (`message`) or the link (`url`,
//!   `link`) is not repeated as a field. At most [`MAX_FIELDS`], names cut to [`MAX_FIELD_NAME`] and
//!   values to [`MAX_FIELD_VALUE`] characters, nested values JSON-encoded;
//! - colour: by [`Severity`] when the event says one (property `severity`, else `level`, else
//!   `priority`), else by module.
//!
//! | severity | property values (case-insensitive) | colour | Teams container style |
//! |---|---|---|---|
//! | critical | `critical`, `crit`, `fatal`, `emergency`, `emerg`, `alert`, `p1`, `sev1` | `#D0021B` red | `attention` |
//! | error | `error`, `err`, `high`, `major`, `p2`, `sev2` | `#F2711C` orange | `attention` |
//! | warning | `warning`, `warn`, `medium`, `minor`, `p3`, `sev3` | `#ECB22E` amber | `warning` |
//! | info | `info`, `informational`, `notice`, `low`, `debug`, `p4`, `p5`, `sev4`, `sev5` | `#1D9BD1` blue | `accent` |
//!
//! Colours by module, the fallback (the palette is fixed so a channel's colours mean the same thing
//! every day):
//!
//! | module | colour |
//! |---|---|
//! | `ops` | `#E01E5A` red |
//! | `security` | `#ECB22E` amber |
//! | `auth` | `#6F42C1` purple |
//! | `email` | `#1D9BD1` blue |
//! | `sms` | `#36C5F0` light blue |
//! | `push` | `#F2994A` orange |
//! | `billing` | `#2EB67D` green |
//! | `users` | `#4A5568` slate |
//! | anything else | one of [`FALLBACK_PALETTE`], picked by the FNV-1a hash of the module name |

pub mod discord;
pub mod email;
pub mod generic;
pub mod group;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod template;

use bytes::Bytes;
use url::Url;

use crate::domain::DeliveryId;
use crate::domain::RuleKey;
use crate::domain::channel::{ChannelConfig, ChannelKind, WebhookFormat};
use crate::domain::event::{Event, EventType, Module};
use crate::domain::rule::Template;
use crate::domain::{EventId, OrgId};
use chrono::{DateTime, Utc};

use template::{Escape, Scope};

/// Most fields a chat message shows (Slack renders more, but a page must stay readable).
pub const MAX_FIELDS: usize = 10;
/// Longest field name, in characters.
pub const MAX_FIELD_NAME: usize = 64;
/// Longest field value, in characters.
pub const MAX_FIELD_VALUE: usize = 300;

/// Properties shown first, in this order, and the only ones the summary line quotes.
pub const WELL_KNOWN_KEYS: [&str; 12] = [
    "severity",
    "level",
    "priority",
    "status",
    "host",
    "hostname",
    "instance",
    "service",
    "environment",
    "env",
    "region",
    "team",
];
/// Most well-known properties quoted in the summary line.
pub const SUMMARY_KEYS: usize = 3;
/// Longest value quoted in the summary line, in characters.
const SUMMARY_VALUE_MAX: usize = 60;
/// Properties that carry a severity, in order of preference.
const SEVERITY_KEYS: [&str; 3] = ["severity", "level", "priority"];

/// How urgent an event says it is (see the module docs for the accepted values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    /// The severity a property value names, if any.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "fatal" | "emergency" | "emerg" | "alert" | "p1" | "sev1" => {
                Some(Self::Critical)
            }
            "error" | "err" | "high" | "major" | "p2" | "sev2" => Some(Self::Error),
            "warning" | "warn" | "medium" | "minor" | "p3" | "sev3" => Some(Self::Warning),
            "info" | "informational" | "notice" | "low" | "debug" | "p4" | "p5" | "sev4"
            | "sev5" => Some(Self::Info),
            _ => None,
        }
    }

    /// The colour of a message of this severity, as `0xRRGGBB`.
    pub fn colour(self) -> u32 {
        match self {
            Self::Critical => 0xD0021B,
            Self::Error => 0xF2711C,
            Self::Warning => 0xECB22E,
            Self::Info => 0x1D9BD1,
        }
    }

    /// The Adaptive Card container style of this severity.
    pub fn card_style(self) -> &'static str {
        match self {
            Self::Critical | Self::Error => "attention",
            Self::Warning => "warning",
            Self::Info => "accent",
        }
    }
}

/// An event type as a title a person can read: separators and camelCase boundaries become
/// spaces, words are lower-cased but for the first letter, words in capitals stay
/// (`disk.full` → "Disk full", `user.signedUp` → "User signed up", `API.key_rotated` → "API key
/// rotated"). Chat messages and in-app items use it when nothing else titles the event; the raw
/// type stays visible (the footer, the item's `eventType`).
pub fn readable_type(event_type: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for part in event_type.split(|c: char| c.is_whitespace() || ".:_-/".contains(c)) {
        let mut word = String::new();
        let mut prev_lower = false;
        for c in part.chars() {
            // A camelCase boundary starts a new word.
            if c.is_uppercase() && prev_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            word.push(c);
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    let mut out = String::with_capacity(event_type.len());
    for (n, word) in words.iter().enumerate() {
        let acronym = word.chars().count() > 1 && !word.chars().any(char::is_lowercase);
        let word = if acronym {
            word.clone()
        } else {
            word.to_lowercase()
        };
        if n == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(&word);
        }
    }
    if out.is_empty() {
        event_type.to_owned()
    } else {
        out
    }
}

/// Colours for modules outside the fixed palette.
pub const FALLBACK_PALETTE: [u32; 8] = [
    0x3B82F6, 0x10B981, 0xF59E0B, 0xEF4444, 0x8B5CF6, 0xEC4899, 0x14B8A6, 0x84CC16,
];

/// The colour of a module's messages, as `0xRRGGBB`.
pub fn module_colour(module: &str) -> u32 {
    match module {
        "ops" => 0xE01E5A,
        "security" => 0xECB22E,
        "auth" => 0x6F42C1,
        "email" => 0x1D9BD1,
        "sms" => 0x36C5F0,
        "push" => 0xF2994A,
        "billing" => 0x2EB67D,
        "users" => 0x4A5568,
        other => {
            // FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
            let hash = other.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            FALLBACK_PALETTE[(hash % FALLBACK_PALETTE.len() as u64) as usize]
        }
    }
}

/// Where a message goes, which decides its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Slack,
    Webhook(WebhookFormat),
    /// A person reached through an email, SMS or push provider: the body is a
    /// [`UserMessage`] as JSON.
    Recipient(ChannelKind),
}

impl Target {
    /// The target of an HTTP channel; `None` for email, SMS, push and in-app channels.
    pub fn of(config: &ChannelConfig) -> Option<Self> {
        match config {
            ChannelConfig::Slack(_) => Some(Self::Slack),
            ChannelConfig::Webhook(w) => Some(Self::Webhook(w.format)),
            _ => None,
        }
    }
}

/// The colour of a resolved follow-up: green.
pub const RESOLVED_COLOUR: u32 = 0x2E_B6_7D;

/// How long an alert fired, as on-call reads it: `45s`, `14m`, `3h 5m`, `2d 4h`.
pub fn firing_for(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// Everything a formatter needs.
#[derive(Debug, Clone, Copy)]
pub struct MessageContext<'a> {
    pub event: &'a Event,
    /// `None` for a channel test.
    pub rule_key: Option<&'a RuleKey>,
    pub template: Option<&'a Template>,
    pub delivery_id: DeliveryId,
    /// Set on a grouped rule's group message: rendered instead of the event.
    pub group: Option<&'a crate::domain::group::GroupMessage>,
    /// Set on a rule's digest: its summary line, items and link rendered instead of the
    /// event's title, text and link (email, push, in-app).
    pub digest: Option<&'a crate::domain::digest::DigestMessage>,
}

/// A formatted message, ready for a sender (`herald_shared::delivery::Sender`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// Sent to webhook receivers as `webhook-id`: stable across retries.
    pub delivery_id: DeliveryId,
    /// The format the body was built for; the sender refuses a channel of another format.
    pub target: Target,
    /// The JSON body.
    pub body: Bytes,
}

/// A channel that has no HTTP format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} channels are not delivered over HTTP")]
pub struct NotHttp(pub &'static str);

/// Formats the message for a channel.
pub fn render(
    config: &ChannelConfig,
    ctx: &MessageContext<'_>,
) -> Result<OutboundMessage, NotHttp> {
    let target = Target::of(config).ok_or(NotHttp(config.kind().as_str()))?;
    Ok(render_for(target, ctx))
}

/// Formats the message for a target.
pub fn render_for(target: Target, ctx: &MessageContext<'_>) -> OutboundMessage {
    let value = match (target, ctx.group) {
        (Target::Recipient(kind), _) => return render_user(kind, ctx, Vec::new()),
        (Target::Slack, Some(g)) => group::slack(ctx, g),
        (Target::Webhook(WebhookFormat::Discord), Some(g)) => group::discord(ctx, g),
        (Target::Webhook(WebhookFormat::Teams), Some(g)) => group::teams(ctx, g),
        (Target::Webhook(WebhookFormat::Generic), Some(g)) => group::generic(ctx, g),
        (Target::Slack, None) => slack::payload(ctx),
        (Target::Webhook(WebhookFormat::Discord), None) => discord::payload(ctx),
        (Target::Webhook(WebhookFormat::Teams), None) => teams::payload(ctx),
        (Target::Webhook(WebhookFormat::Generic), None) => generic::payload(ctx),
        // Grouped rules keep per-alert messages for PagerDuty: it never gets a group.
        (Target::Webhook(WebhookFormat::PagerDuty), _) => pagerduty::payload(ctx),
    };
    OutboundMessage {
        delivery_id: ctx.delivery_id,
        target,
        body: Bytes::from(value.to_string()),
    }
}

/// A message for one person (email, SMS, push): what every user-facing provider renders from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserMessage {
    pub org_id: OrgId,
    pub channel_kind: ChannelKind,
    /// Contact points: one email address or phone number, or the user's push tokens.
    pub to: Vec<String>,
    /// The rule's template title, else the event's `title` property, else its type.
    pub title: String,
    /// The rule's template body, else the event's `message` property.
    pub body: Option<String>,
    pub link: Option<String>,
    pub event_type: String,
    #[schema(value_type = String)]
    pub event_id: EventId,
    #[schema(value_type = Option<String>)]
    pub rule_key: Option<RuleKey>,
    /// Set on an email of a non-critical rule to a known user: its `List-Unsubscribe` target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub unsubscribe: Option<crate::delivery::unsubscribe::ListUnsubscribe>,
}

/// Formats a message for a person reached through a provider (plain text: providers escape for
/// their own markup).
pub fn render_user(
    kind: ChannelKind,
    ctx: &MessageContext<'_>,
    to: Vec<String>,
) -> OutboundMessage {
    render_user_with(kind, ctx, to, None)
}

/// [`render_user`], with the unsubscribe target an email offers (`None`: no
/// `List-Unsubscribe`).
pub fn render_user_with(
    kind: ChannelKind,
    ctx: &MessageContext<'_>,
    to: Vec<String>,
    unsubscribe: Option<crate::delivery::unsubscribe::ListUnsubscribe>,
) -> OutboundMessage {
    let message = UserMessage {
        org_id: ctx.event.org_id,
        channel_kind: kind,
        to,
        title: ctx.title(Escape::Plain),
        body: ctx.text(Escape::Plain),
        link: ctx.link().map(|u| u.to_string()),
        event_type: ctx.event.event_type.to_string(),
        event_id: ctx.event.id.clone(),
        rule_key: ctx.rule_key.cloned(),
        unsubscribe,
    };
    OutboundMessage {
        delivery_id: ctx.delivery_id,
        target: Target::Recipient(kind),
        body: Bytes::from(serde_json::to_vec(&message).unwrap_or_default()),
    }
}

impl MessageContext<'_> {
    fn scope(&self) -> Scope<'_> {
        Scope {
            event: self.event,
            rule_key: self.rule_key.map(RuleKey::as_str),
        }
    }

    /// Whether every variable the rule's template uses is in the event: a strict render of
    /// title, body and link. Chat formats render leniently instead (a page with a visible
    /// placeholder beats no page); people-facing channels call this first, so a customer never
    /// reads `{{properties.name}}`.
    pub fn check_template(&self) -> Result<(), template::TemplateError> {
        // A digest's items were rendered when they joined it.
        if self.digest.is_some() {
            return Ok(());
        }
        let Some(t) = self.template else {
            return Ok(());
        };
        for part in [&t.title, &t.body, &t.link].into_iter().flatten() {
            template::render(part, &self.scope(), Escape::Plain)?;
        }
        Ok(())
    }

    /// The message title, escaped: `RESOLVED: <title>` for a resolved follow-up.
    pub fn title(&self, escape: Escape) -> String {
        let title = self.plain_title(escape);
        if self.event.is_resolve() {
            return format!("RESOLVED: {title}");
        }
        title
    }

    fn plain_title(&self, escape: Escape) -> String {
        if let Some(d) = self.digest {
            return template::escape_text(&d.title(), escape);
        }
        if let Some(t) = self.template.and_then(|t| t.title.as_deref()) {
            return template::render_lenient(t, &self.scope(), escape);
        }
        match self.event.properties.get("title") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                template::escape_text(s, escape)
            }
            _ => template::escape_text(self.event.event_type.as_str(), escape),
        }
    }

    /// The message text, escaped; `None` when there is nothing beyond the title and fields.
    pub fn text(&self, escape: Escape) -> Option<String> {
        if let Some(d) = self.digest {
            return Some(template::escape_text(&d.text(), escape));
        }
        if let Some(b) = self.template.and_then(|t| t.body.as_deref()) {
            return Some(template::render_lenient(b, &self.scope(), escape));
        }
        match self.event.properties.get("message") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                Some(template::escape_text(s, escape))
            }
            _ => None,
        }
    }

    /// The link the title points at: an `http(s)` URL or nothing.
    pub fn link(&self) -> Option<Url> {
        let raw = match (self.digest, self.template.and_then(|t| t.link.as_deref())) {
            (Some(d), _) => d.link()?.to_owned(),
            (None, Some(l)) => template::render_lenient(l, &self.scope(), Escape::Plain),
            (None, None) => ["url", "link"].iter().find_map(|k| {
                self.event
                    .properties
                    .get(*k)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })?,
        };
        Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
    }

    /// The heading of a chat message, escaped: the template's title, else the `title` property,
    /// else the readable event type.
    pub fn heading(&self, escape: Escape) -> String {
        if self.template.and_then(|t| t.title.as_deref()).is_some()
            || self.title_property().is_some()
        {
            return self.title(escape);
        }
        let heading = template::escape_text(&readable_type(self.event.event_type.as_str()), escape);
        if self.event.is_resolve() {
            return format!("RESOLVED: {heading}");
        }
        heading
    }

    /// The severity the event states, if any.
    pub fn severity(&self) -> Option<Severity> {
        SEVERITY_KEYS.iter().find_map(|k| {
            self.event
                .properties
                .get(*k)
                .and_then(|v| v.as_str())
                .and_then(Severity::parse)
        })
    }

    /// The message colour, as `0xRRGGBB`: by severity, else by module.
    pub fn colour(&self) -> u32 {
        if self.event.is_resolve() {
            return RESOLVED_COLOUR;
        }
        self.severity().map_or_else(
            || module_colour(self.event.module.as_str()),
            Severity::colour,
        )
    }

    /// The well-known properties quoted after the heading, unescaped:
    /// `severity critical, host web-1`; `None` when the event carries none.
    pub fn key_facts(&self) -> Option<String> {
        let facts: Vec<String> = WELL_KNOWN_KEYS
            .iter()
            .filter_map(|k| {
                let v = self.event.properties.get(*k)?;
                if v.is_null() || v.is_object() || v.is_array() {
                    return None;
                }
                Some(format!(
                    "{k} {}",
                    truncate_chars(&template::value_text(v), SUMMARY_VALUE_MAX)
                ))
            })
            .take(SUMMARY_KEYS)
            .collect();
        let mut facts = facts;
        if let Some(since) = self.event.alert.as_ref().and_then(|a| a.firing_since)
            && self.event.is_resolve()
        {
            facts.insert(
                0,
                format!("firing for {}", firing_for(self.event.received_at - since)),
            );
        }
        (!facts.is_empty()).then(|| facts.join(", "))
    }

    /// `[<module>] <heading> — <key facts>`, escaped: the line a notification shows.
    pub fn summary(&self, escape: Escape) -> String {
        let mut out = format!(
            "[{}] {}",
            template::escape_text(self.event.module.as_str(), escape),
            self.heading(escape)
        );
        if let Some(facts) = self.key_facts() {
            out.push_str(" — ");
            out.push_str(&template::escape_text(&facts, escape));
        }
        out
    }

    /// The fields shown under the message: `(name, value)`, unescaped, bounded; well-known keys
    /// first, then alphabetical, without the properties already shown as heading, text or link.
    pub fn fields(&self) -> Vec<(String, String)> {
        let shown = self.shown_properties();
        let props = &self.event.properties;
        let known = WELL_KNOWN_KEYS
            .iter()
            .filter_map(|k| props.get_key_value(*k));
        let rest = props
            .iter()
            .filter(|(k, _)| !WELL_KNOWN_KEYS.contains(&k.as_str()));
        known
            .chain(rest)
            .filter(|(k, _)| !shown.contains(&k.as_str()))
            .take(MAX_FIELDS)
            .map(|(k, v)| {
                (
                    truncate_chars(k, MAX_FIELD_NAME),
                    truncate_chars(&template::value_text(v), MAX_FIELD_VALUE),
                )
            })
            .collect()
    }

    /// The `title` property when it is the heading's source.
    fn title_property(&self) -> Option<&str> {
        match self.event.properties.get("title") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s),
            _ => None,
        }
    }

    /// Properties a chat message already shows outside its fields.
    fn shown_properties(&self) -> Vec<&'static str> {
        let mut shown = Vec::new();
        let tpl = self.template;
        if tpl.and_then(|t| t.title.as_deref()).is_none() && self.title_property().is_some() {
            shown.push("title");
        }
        if tpl.and_then(|t| t.body.as_deref()).is_none()
            && matches!(self.event.properties.get("message"), Some(serde_json::Value::String(s)) if !s.trim().is_empty())
        {
            shown.push("message");
        }
        // `link()` takes the first string of `url`, `link`, and shows it only if it parsed.
        if tpl.and_then(|t| t.link.as_deref()).is_none()
            && self.link().is_some()
            && let Some(key) = ["url", "link"]
                .into_iter()
                .find(|k| self.event.properties.get(*k).is_some_and(|v| v.is_string()))
        {
            shown.push(key);
        }
        shown
    }

    /// `Herald · <module> · <type>`.
    pub fn footer(&self) -> String {
        format!("Herald · {} · {}", self.event.module, self.event.event_type)
    }
}

/// The synthetic event a channel test sends (`POST /notifications/channels/{id}/test`):
/// type `herald.test`, module `herald`, occurring `now`.
pub fn test_event(org_id: OrgId, now: DateTime<Utc>) -> Event {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "message".into(),
        serde_json::Value::String(
            "This is a test notification from Herald: this channel is reachable.".into(),
        ),
    );
    Event {
        id: EventId::generate(),
        org_id,
        event_type: EventType::parse("herald.test")
            .unwrap_or_else(|_| unreachable!("a valid literal")),
        module: Module::parse("herald").unwrap_or_else(|_| unreachable!("a valid literal")),
        properties,
        recipients: Vec::new(),
        occurred_at: now,
        received_at: now,
        alert: None,
    }
}

/// At most `max` characters, the last replaced by `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
pub(crate) mod tests_support {
    use chrono::{TimeZone, Utc};

    use crate::domain::event::{Event, EventType, Module};
    use crate::domain::{EventId, OrgId};

    /// An event at 2026-05-01T12:00:00Z.
    pub fn event(module: &str, ty: &str, props: serde_json::Value) -> Event {
        let at = Utc
            .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .expect("valid date");
        Event {
            id: EventId::parse("evt-1").expect("id"),
            org_id: OrgId::new(),
            event_type: EventType::parse(ty).expect("type"),
            module: Module::parse(module).expect("module"),
            properties: props.as_object().cloned().expect("object"),
            recipients: vec![],
            occurred_at: at,
            received_at: at,
            alert: None,
        }
    }

    /// The event behind the payload snapshots and `docs/messages.md`.
    pub fn disk_full() -> Event {
        event(
            "ops",
            "disk.full",
            serde_json::json!({
                "mount": "/var",
                "usedPercent": 97.5,
                "message": "/var is 97.5% full; oldest logs can go",
                "host": "web-1",
                "severity": "critical",
                "url": "https://grafana.example.com/d/disk?var-host=web-1",
                "region": "eu-west-1",
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_follow_up_says_resolved_in_green_with_how_long_it_fired() {
        use crate::domain::alert::{AlertAction, AlertSignal, DedupKey};
        let mut event = tests_support::disk_full();
        event.alert = Some(AlertSignal {
            dedup_key: Some(DedupKey::parse("disk.full:web-1").expect("key")),
            action: AlertAction::Resolve,
            firing_since: Some(event.received_at - chrono::Duration::minutes(14)),
        });
        let key = RuleKey::parse("disk").expect("key");
        let ctx = MessageContext {
            event: &event,
            rule_key: Some(&key),
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        assert_eq!(ctx.colour(), RESOLVED_COLOUR);
        assert!(ctx.heading(Escape::Plain).starts_with("RESOLVED: "));
        let slack: serde_json::Value =
            serde_json::from_slice(&render_for(Target::Slack, &ctx).body).expect("json");
        let attachment = &slack["attachments"][0];
        assert_eq!(attachment["color"], "#2EB67D");
        assert!(
            attachment["title"]
                .as_str()
                .expect("title")
                .starts_with("RESOLVED: "),
            "{attachment}"
        );
        assert!(ctx.summary(Escape::Plain).contains("firing for 14m"));
        let discord: serde_json::Value =
            serde_json::from_slice(&render_for(Target::Webhook(WebhookFormat::Discord), &ctx).body)
                .expect("json");
        assert_eq!(discord["embeds"][0]["color"], RESOLVED_COLOUR);
        let generic: serde_json::Value =
            serde_json::from_slice(&render_for(Target::Webhook(WebhookFormat::Generic), &ctx).body)
                .expect("json");
        assert_eq!(generic["alert"]["action"], "resolve");
        assert_eq!(generic["alert"]["dedupKey"], "disk.full:web-1");
    }

    #[test]
    fn firing_durations_read_in_the_largest_units() {
        use chrono::Duration;
        assert_eq!(firing_for(Duration::seconds(45)), "45s");
        assert_eq!(firing_for(Duration::minutes(14)), "14m");
        assert_eq!(firing_for(Duration::minutes(185)), "3h 5m");
        assert_eq!(firing_for(Duration::hours(52)), "2d 4h");
    }

    #[test]
    fn an_event_type_reads_as_a_sentence_case_title() {
        for (raw, title) in [
            ("invoice.overdue", "Invoice overdue"),
            ("invoice.paid", "Invoice paid"),
            ("user.signedUp", "User signed up"),
            ("sms_delivery-failed", "Sms delivery failed"),
            ("API.key_rotated", "API key rotated"),
            ("ops:disk.full", "Ops disk full"),
            ("Deploy", "Deploy"),
            ("...", "..."),
        ] {
            assert_eq!(readable_type(raw), title, "{raw}");
        }
    }

    #[test]
    fn known_modules_have_fixed_colours_and_others_a_stable_one() {
        assert_eq!(module_colour("ops"), 0xE01E5A);
        assert_eq!(module_colour("email"), 0x1D9BD1);
        let c = module_colour("inventory");
        assert!(FALLBACK_PALETTE.contains(&c));
        assert_eq!(c, module_colour("inventory"));
    }

    #[test]
    fn event_types_read_as_headings() {
        assert_eq!(readable_type("disk.full"), "Disk full");
        assert_eq!(
            readable_type("invoice_payment.failed"),
            "Invoice payment failed"
        );
        assert_eq!(readable_type("api.5xx-rate"), "Api 5xx rate");
        assert_eq!(readable_type("SSL.expiring"), "SSL expiring");
    }

    #[test]
    fn severity_comes_from_severity_level_or_priority_and_picks_the_colour() {
        let colour = |props: serde_json::Value| {
            let ev = tests_support::event("billing", "x", props);
            let ctx = MessageContext {
                event: &ev,
                rule_key: None,
                template: None,
                delivery_id: DeliveryId::new(),
                group: None,
                digest: None,
            };
            (ctx.severity(), ctx.colour())
        };
        assert_eq!(
            colour(serde_json::json!({"severity": "CRITICAL"})),
            (Some(Severity::Critical), 0xD0021B)
        );
        assert_eq!(
            colour(serde_json::json!({"level": "warn"})),
            (Some(Severity::Warning), 0xECB22E)
        );
        assert_eq!(
            colour(serde_json::json!({"priority": "P2"})),
            (Some(Severity::Error), 0xF2711C)
        );
        assert_eq!(
            colour(serde_json::json!({"severity": "whatever", "level": "info"})),
            (Some(Severity::Info), 0x1D9BD1)
        );
        assert_eq!(
            colour(serde_json::json!({"severity": 3})),
            (None, module_colour("billing")),
            "no severity: the module's colour"
        );
    }

    #[test]
    fn well_known_fields_come_first_and_shown_properties_are_not_repeated() {
        let ev = tests_support::event(
            "ops",
            "x",
            serde_json::json!({
                "b": 1, "a": 2, "host": "h", "severity": "info",
                "title": "T", "message": "M", "url": "https://x.example.com", "link": "https://y.example.com",
            }),
        );
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let names: Vec<String> = ctx.fields().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["severity", "host", "a", "b", "link"]);
        assert_eq!(ctx.heading(Escape::Plain), "T");
        assert_eq!(
            ctx.summary(Escape::Plain),
            "[ops] T — severity info, host h"
        );

        let tpl = Template {
            title: Some("Custom".into()),
            body: None,
            link: Some("https://z.example.com".into()),
        };
        let ctx = MessageContext {
            template: Some(&tpl),
            ..ctx
        };
        let names: Vec<String> = ctx.fields().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            ["severity", "host", "a", "b", "link", "title", "url"],
            "a template's title and link replace the properties, which stay as fields"
        );
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("héllo wörld", 5), "héll…");
    }

    #[test]
    fn a_channel_test_event_says_what_it_is() {
        let now = chrono::Utc::now();
        let ev = test_event(OrgId::new(), now);
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let slack =
            serde_json::from_slice::<serde_json::Value>(&render_for(Target::Slack, &ctx).body)
                .expect("json");
        assert_eq!(slack["attachments"][0]["title"], "Herald test");
        assert_eq!(slack["text"], "[herald] Herald test");
        assert!(
            slack["attachments"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("test notification"))
        );
        assert_eq!(slack["attachments"][0]["ts"], now.timestamp());
    }

    #[test]
    fn email_channels_have_no_http_format() {
        use crate::domain::channel::EmailConfig;
        let ev = tests_support::event("ops", "x", serde_json::json!({}));
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let err = render(
            &ChannelConfig::Email(EmailConfig::Outbox { from: None }),
            &ctx,
        )
        .expect_err("not http");
        assert_eq!(
            err.to_string(),
            "email channels are not delivered over HTTP"
        );
    }
}
