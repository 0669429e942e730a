//! Slack incoming-webhook payloads: one legacy attachment, which is what gives the message its
//! colour bar (Block Kit has none).
//!
//! Slack treats `&`, `<` and `>` as control characters in every text field, so event values are
//! escaped; `title_link` is a URL and is not.

use serde_json::{Value, json};

use super::template::{Escape, escape_text};
use super::{MessageContext, module_colour};

/// The JSON body for a Slack incoming webhook.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    let title = ctx.title(Escape::Slack);
    let module = escape_text(ctx.event.module.as_str(), Escape::Slack);
    let fields: Vec<Value> = ctx
        .fields()
        .into_iter()
        .map(|(k, v)| json!({ "title": escape_text(&k, Escape::Slack), "value": escape_text(&v, Escape::Slack), "short": true }))
        .collect();
    let mut attachment = json!({
        "fallback": format!("[{module}] {title}"),
        "color": format!("#{:06X}", module_colour(ctx.event.module.as_str())),
        "title": title,
        "fields": fields,
        "footer": escape_text(&ctx.footer(), Escape::Slack),
        "ts": ctx.event.occurred_at.timestamp(),
        "mrkdwn_in": ["text"],
    });
    if let Some(link) = ctx.link() {
        attachment["title_link"] = Value::String(link.into());
    }
    if let Some(text) = ctx.text(Escape::Slack) {
        attachment["text"] = Value::String(text);
    }
    json!({ "attachments": [attachment] })
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
        };
        let p = payload(&ctx);
        let a = &p["attachments"][0];
        assert_eq!(a["color"], "#E01E5A");
        assert_eq!(a["title"], "deploy.failed");
        assert_eq!(a["fallback"], "[ops] deploy.failed");
        assert_eq!(a["title_link"], "https://ci.example.com/run/1");
        assert_eq!(a["footer"], "Herald · ops · deploy.failed");
        assert_eq!(a["ts"], 1_777_636_800);
        assert_eq!(
            a["fields"][0],
            json!({"title": "meta", "value": "{\"a\":1}", "short": true})
        );
        assert_eq!(
            a["fields"][1],
            json!({"title": "service", "value": "api &lt;prod&gt;", "short": true})
        );
        assert!(a.get("text").is_none());
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
        };
        let a = &payload(&ctx)["attachments"][0];
        assert_eq!(a["title"], "Login failed for a&amp;b");
        assert_eq!(a["text"], "*a&amp;b* failed (login.failed)");
        assert_eq!(a["title_link"], "https://admin.example.com/users/7");
        assert_eq!(a["color"], "#6F42C1");
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
        };
        assert!(payload(&ctx)["attachments"][0].get("title_link").is_none());
    }
}
