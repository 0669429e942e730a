//! Slack incoming-webhook payloads: one legacy attachment, which is what gives the message its
//! colour bar (Block Kit has none).
//!
//! Slack treats `&`, `<` and `>` as control characters in every text field, so event values are
//! escaped; `title_link` is a URL and is not.

use serde_json::{Value, json};

use super::MessageContext;
use super::template::{Escape, escape_text};

/// The JSON body for a Slack incoming webhook.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    // The top-level `text` is what push notifications and the channel sidebar show; an
    // attachment alone notifies with its `fallback`, so both carry the summary.
    let summary = ctx.summary(Escape::Slack);
    let fields: Vec<Value> = ctx
        .fields()
        .into_iter()
        .map(|(k, v)| json!({ "title": escape_text(&k, Escape::Slack), "value": escape_text(&v, Escape::Slack), "short": true }))
        .collect();
    let mut attachment = json!({
        "fallback": summary,
        "color": format!("#{:06X}", ctx.colour()),
        "title": ctx.heading(Escape::Slack),
    });
    if let Some(link) = ctx.link() {
        attachment["title_link"] = Value::String(link.into());
    }
    let text = ctx.text(Escape::Slack);
    if let Some(text) = &text {
        attachment["text"] = Value::String(text.clone());
    }
    attachment["fields"] = Value::Array(fields);
    attachment["footer"] = Value::String(escape_text(&ctx.footer(), Escape::Slack));
    attachment["ts"] = json!(ctx.event.occurred_at.timestamp());
    if text.is_some() {
        // Field values are event data, shown verbatim; only the text is the rule writer's mrkdwn.
        attachment["mrkdwn_in"] = json!(["text"]);
    }
    json!({ "text": summary, "attachments": [attachment] })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::format::tests_support::event;
    use crate::delivery::format::{MAX_FIELD_VALUE, MAX_FIELDS};
    use crate::domain::rule::Template;
    use crate::domain::{DeliveryId, RuleKey};

    #[test]
    fn a_slack_message_has_the_attachment_slack_renders() {
        let ev = event(
            "ops",
            "deploy.failed",
            json!({"service": "api <prod>", "url": "https://ci.example.com/run/1", "meta": {"a": 1}}),
        );
        let key = RuleKey::parse("deploys").expect("key");
        let ctx = MessageContext {
            event: &ev,
            rule_key: Some(&key),
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let p = payload(&ctx);
        let a = &p["attachments"][0];
        assert_eq!(a["color"], "#E01E5A", "no severity: the module's colour");
        assert_eq!(a["title"], "Deploy failed");
        assert_eq!(
            a["fallback"],
            "[ops] Deploy failed — service api &lt;prod&gt;"
        );
        assert_eq!(p["text"], a["fallback"]);
        assert_eq!(a["title_link"], "https://ci.example.com/run/1");
        assert_eq!(a["footer"], "Herald · ops · deploy.failed");
        assert_eq!(a["ts"], 1_777_636_800);
        assert_eq!(
            a["fields"],
            json!([
                {"title": "service", "value": "api &lt;prod&gt;", "short": true},
                {"title": "meta", "value": "{\"a\":1}", "short": true},
            ]),
            "well-known keys first; the url is the title link, not a field"
        );
        assert!(a.get("text").is_none());
        assert!(
            a.get("mrkdwn_in").is_none(),
            "no text, so nothing to mark up"
        );
    }

    #[test]
    fn templates_drive_title_text_and_link() {
        let ev = event("auth", "login.failed", json!({"user": "a&b", "id": 7}));
        let tpl = Template {
            title: Some("Login failed for {{properties.user}}".into()),
            body: Some("*{{properties.user}}* failed ({{type}})".into()),
            link: Some("https://admin.example.com/users/{{properties.id}}".into()),
        };
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: Some(&tpl),
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        let a = &payload(&ctx)["attachments"][0];
        assert_eq!(a["title"], "Login failed for a&amp;b");
        assert_eq!(a["text"], "*a&amp;b* failed (login.failed)");
        assert_eq!(a["title_link"], "https://admin.example.com/users/7");
        assert_eq!(a["color"], "#6F42C1");
        assert_eq!(a["mrkdwn_in"], json!(["text"]));
        assert_eq!(
            a["fields"],
            json!([
                {"title": "id", "value": "7", "short": true},
                {"title": "user", "value": "a&amp;b", "short": true},
            ])
        );
    }

    #[test]
    fn fields_are_bounded_in_count_and_length() {
        let mut props = serde_json::Map::new();
        for i in 0..30 {
            props.insert(format!("k{i:02}"), json!("x".repeat(1000)));
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
        let fields = payload(&ctx)["attachments"][0]["fields"]
            .as_array()
            .cloned()
            .expect("fields");
        assert_eq!(fields.len(), MAX_FIELDS);
        assert_eq!(
            fields[0]["value"].as_str().expect("str").chars().count(),
            MAX_FIELD_VALUE
        );
    }

    #[test]
    fn a_link_that_is_not_http_is_dropped() {
        let ev = event("ops", "x", json!({"url": "javascript:alert(1)"}));
        let ctx = MessageContext {
            event: &ev,
            rule_key: None,
            template: None,
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        };
        assert!(payload(&ctx)["attachments"][0].get("title_link").is_none());
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
                "text": "[ops] Disk full — severity critical, host web-1, region eu-west-1",
                "attachments": [{
                    "fallback": "[ops] Disk full — severity critical, host web-1, region eu-west-1",
                    "color": "#D0021B",
                    "title": "Disk full",
                    "title_link": "https://grafana.example.com/d/disk?var-host=web-1",
                    "text": "/var is 97.5% full; oldest logs can go",
                    "fields": [
                        {"title": "severity", "value": "critical", "short": true},
                        {"title": "host", "value": "web-1", "short": true},
                        {"title": "region", "value": "eu-west-1", "short": true},
                        {"title": "mount", "value": "/var", "short": true},
                        {"title": "usedPercent", "value": "97.5", "short": true},
                    ],
                    "footer": "Herald · ops · disk.full",
                    "ts": 1_777_636_800,
                    "mrkdwn_in": ["text"],
                }],
            })
        );
    }
}
