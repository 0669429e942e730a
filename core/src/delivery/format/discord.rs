//! Discord webhook payloads: one embed with an integer colour. Mentions are switched off
//! (`allowed_mentions: {parse: []}`) so an event property cannot ping `@everyone`. The sender adds
//! `?wait=true` so Discord answers with the created message (200) or a real error instead of a
//! bare 204.

use serde_json::{Value, json};

use super::template::{Escape, escape_text};
use super::{MessageContext, module_colour, truncate_chars};

/// Discord's limits on embed parts, in characters.
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_NAME_MAX: usize = 256;
const FIELD_VALUE_MAX: usize = 1024;

/// The JSON body for a Discord webhook.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    let fields: Vec<Value> = ctx
        .fields()
        .into_iter()
        .map(|(k, v)| {
            json!({
                "name": truncate_chars(&escape_text(&k, Escape::Discord), FIELD_NAME_MAX),
                "value": truncate_chars(&escape_text(&v, Escape::Discord), FIELD_VALUE_MAX),
                "inline": true,
            })
        })
        .collect();
    let mut embed = json!({
        // Embed titles are not markdown: no escaping.
        "title": truncate_chars(&ctx.title(Escape::Plain), TITLE_MAX),
        "color": module_colour(ctx.event.module.as_str()),
        "fields": fields,
        "footer": { "text": ctx.footer() },
        "timestamp": ctx.event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(link) = ctx.link() {
        embed["url"] = Value::String(link.into());
    }
    if let Some(text) = ctx.text(Escape::Discord) {
        embed["description"] = Value::String(truncate_chars(&text, DESCRIPTION_MAX));
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
        };
        let p = payload(&ctx);
        assert_eq!(p["allowed_mentions"], json!({"parse": []}));
        let e = &p["embeds"][0];
        assert_eq!(e["color"], 0x1D9BD1);
        assert_eq!(e["title"], "email.bounced");
        assert_eq!(e["description"], "@everyone \\*bounced\\*");
        assert_eq!(e["timestamp"], "2026-05-01T12:00:00Z");
        assert_eq!(e["footer"]["text"], "Herald · email · email.bounced");
        assert_eq!(
            e["fields"][1],
            json!({"name": "to", "value": "a@example.com", "inline": true})
        );
    }
}
