//! Discord webhook payloads: one embed with an integer colour. Mentions are switched off
//! (`allowed_mentions: {parse: []}`) so an event property cannot ping `@everyone`. The sender adds
//! `?wait=true` so Discord answers with the created message (200) or a real error instead of a
//! bare 204.

use serde_json::{Value, json};

use super::template::{Escape, escape_text};
use super::{MessageContext, truncate_chars};

/// Discord's limits on embed parts, in characters
/// (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELDS_MAX: usize = 25;
const FIELD_NAME_MAX: usize = 256;
const FIELD_VALUE_MAX: usize = 1024;
const FOOTER_MAX: usize = 2048;
/// Title, description, field names and values and footer together; Discord refuses the whole
/// message (400) beyond it.
const TOTAL_MAX: usize = 6000;

/// The JSON body for a Discord webhook.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    // Embed titles and footers are not markdown: no escaping.
    let title = truncate_chars(&ctx.heading(Escape::Plain), TITLE_MAX);
    let footer = truncate_chars(&ctx.footer(), FOOTER_MAX);
    let mut description = ctx
        .text(Escape::Discord)
        .map(|t| truncate_chars(&t, DESCRIPTION_MAX));
    let mut fields: Vec<(String, String)> = ctx
        .fields()
        .into_iter()
        .take(FIELDS_MAX)
        .map(|(k, v)| {
            (
                truncate_chars(&escape_text(&k, Escape::Discord), FIELD_NAME_MAX),
                truncate_chars(&escape_text(&v, Escape::Discord), FIELD_VALUE_MAX),
            )
        })
        .collect();
    let len = |s: &str| s.chars().count();
    let fixed = len(&title) + len(&footer);
    let fields_len = |f: &[(String, String)]| f.iter().map(|(k, v)| len(k) + len(v)).sum::<usize>();
    // Over the total: the last fields give way first (the description is the message a person
    // wrote), then the description.
    let desc_len = description.as_deref().map_or(0, len);
    while fixed + desc_len + fields_len(&fields) > TOTAL_MAX && fields.pop().is_some() {}
    if let Some(d) = &mut description {
        let room = TOTAL_MAX.saturating_sub(fixed + fields_len(&fields));
        if len(d) > room {
            *d = truncate_chars(d, room.max(1));
        }
    }
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value, "inline": true }))
        .collect();
    let mut embed = json!({
        "title": title,
        "color": ctx.colour(),
        "fields": fields,
        "footer": { "text": footer },
        "timestamp": ctx.event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(link) = ctx.link() {
        embed["url"] = Value::String(link.into());
    }
    if let Some(d) = description {
        embed["description"] = Value::String(d);
    }
    json!({ "embeds": [embed], "allowed_mentions": { "parse": [] } })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::format::tests_support::event;
    use crate::domain::DeliveryId;

    #[test]
    fn a_discord_message_is_an_embed_with_an_integer_colour_and_no_mentions() {
        let ev = event(
            "email",
            "email.bounced",
            json!({"to": "a@example.com", "message": "@everyone *bounced*"}),
        );
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let p = payload(&ctx);
        assert_eq!(p["allowed_mentions"], json!({"parse": []}));
        let e = &p["embeds"][0];
        assert_eq!(e["color"], 0x1D9BD1);
        assert_eq!(e["title"], "Email bounced");
        assert_eq!(e["description"], "@everyone \\*bounced\\*");
        assert_eq!(e["timestamp"], "2026-05-01T12:00:00Z");
        assert_eq!(e["footer"]["text"], "Herald · email · email.bounced");
        assert_eq!(
            e["fields"],
            json!([{"name": "to", "value": "a@example.com", "inline": true}]),
            "the message is the description, not also a field"
        );
    }

    /// The exact payload shown in `docs/messages.md`.
    #[test]
    fn the_disk_full_payload_snapshot() {
        let ev = crate::delivery::format::tests_support::disk_full();
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        assert_eq!(
            payload(&ctx),
            json!({
                "embeds": [{
                    "title": "Disk full",
                    "url": "https://grafana.example.com/d/disk?var-host=web-1",
                    "description": "/var is 97.5% full; oldest logs can go",
                    "color": 0xD0021B,
                    "fields": [
                        {"name": "severity", "value": "critical", "inline": true},
                        {"name": "host", "value": "web\\-1", "inline": true},
                        {"name": "region", "value": "eu\\-west\\-1", "inline": true},
                        {"name": "mount", "value": "/var", "inline": true},
                        {"name": "usedPercent", "value": "97.5", "inline": true},
                    ],
                    "footer": {"text": "Herald · ops · disk.full"},
                    "timestamp": "2026-05-01T12:00:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
    }

    #[test]
    fn an_embed_stays_within_discords_6000_character_total() {
        let mut props = serde_json::Map::new();
        props.insert("message".into(), json!("m".repeat(5000)));
        for i in 0..10 {
            props.insert(format!("k{i}"), json!("v".repeat(2000)));
        }
        let ev = event("ops", "big", Value::Object(props));
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let e = &payload(&ctx)["embeds"][0];
        let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
        let fields = e["fields"].as_array().expect("fields");
        let total = len(&e["title"])
            + len(&e["description"])
            + len(&e["footer"]["text"])
            + fields
                .iter()
                .map(|f| len(&f["name"]) + len(&f["value"]))
                .sum::<usize>();
        assert!(total <= TOTAL_MAX, "{total}");
        assert_eq!(
            len(&e["description"]),
            DESCRIPTION_MAX,
            "the message is kept"
        );
        assert_eq!(fields.len(), 6, "the last four fields give way");
        assert!(fields.iter().all(|f| len(&f["value"]) <= FIELD_VALUE_MAX));
    }
}
