//! Payload formatters: pure functions from an event (plus rule key, optional template and the
//! delivery id) to the JSON body one channel expects.
//!
//! | target | body |
//! |---|---|
//! | Slack incoming webhook | `attachments` with fallback, colour bar, title, title_link, fields, footer, ts ([`slack`]) |
//! | Discord webhook | `embeds` with an integer colour, `allowed_mentions: {parse: []}` ([`discord`]) |
//! | Teams Workflows webhook | a `message` carrying an Adaptive Card 1.4 ([`teams`]) |
//! | generic webhook | the event JSON plus `deliveryId` and `ruleKey` ([`generic`]) |
//!
//! What every chat format shows:
//! - title: the template's `title`, else a string property `title`, else the event type;
//! - text: the template's `body`, else a string property `message`, else nothing;
//! - link: the template's `link`, else a string property `url` or `link` — only if it is an
//!   `http(s)` URL;
//! - fields: the event's properties in key order, at most [`MAX_FIELDS`], names cut to
//!   [`MAX_FIELD_NAME`] and values to [`MAX_FIELD_VALUE`] characters, nested values JSON-encoded;
//! - colour, by module (the palette is fixed so a channel's colours mean the same thing every day):
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

/// Everything a formatter needs.
#[derive(Debug, Clone, Copy)]
pub struct MessageContext<'a> {
    pub event: &'a Event,
    /// `None` for a channel test.
    pub rule_key: Option<&'a RuleKey>,
    pub template: Option<&'a Template>,
    pub delivery_id: DeliveryId,
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
    let value = match target {
        Target::Slack => slack::payload(ctx),
        Target::Webhook(WebhookFormat::Discord) => discord::payload(ctx),
        Target::Webhook(WebhookFormat::Teams) => teams::payload(ctx),
        Target::Webhook(WebhookFormat::Generic) => generic::payload(ctx),
        Target::Recipient(kind) => return render_user(kind, ctx, Vec::new()),
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
}

/// Formats a message for a person reached through a provider (plain text: providers escape for
/// their own markup).
pub fn render_user(
    kind: ChannelKind,
    ctx: &MessageContext<'_>,
    to: Vec<String>,
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
        let Some(t) = self.template else {
            return Ok(());
        };
        for part in [&t.title, &t.body, &t.link].into_iter().flatten() {
            template::render(part, &self.scope(), Escape::Plain)?;
        }
        Ok(())
    }

    /// The message title, escaped.
    pub fn title(&self, escape: Escape) -> String {
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
        let raw = match self.template.and_then(|t| t.link.as_deref()) {
            Some(l) => template::render_lenient(l, &self.scope(), Escape::Plain),
            None => ["url", "link"].iter().find_map(|k| {
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

    /// The fields shown under the message: `(name, value)`, unescaped, bounded.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.event
            .properties
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| {
                (
                    truncate_chars(k, MAX_FIELD_NAME),
                    truncate_chars(&template::value_text(v), MAX_FIELD_VALUE),
                )
            })
            .collect()
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_modules_have_fixed_colours_and_others_a_stable_one() {
        assert_eq!(module_colour("ops"), 0xE01E5A);
        assert_eq!(module_colour("email"), 0x1D9BD1);
        let c = module_colour("inventory");
        assert!(FALLBACK_PALETTE.contains(&c));
        assert_eq!(c, module_colour("inventory"));
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
        };
        let slack =
            serde_json::from_slice::<serde_json::Value>(&render_for(Target::Slack, &ctx).body)
                .expect("json");
        assert_eq!(slack["attachments"][0]["title"], "herald.test");
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
