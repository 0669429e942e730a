//! Microsoft Teams payloads for a Workflows ("Post to a channel when a webhook request is
//! received") webhook: a `message` whose single attachment is an Adaptive Card 1.4. Teams answers
//! `202 Accepted`.

use serde_json::{Value, json};

use super::MessageContext;
use super::template::Escape;

/// The JSON body for a Teams Workflows webhook.
pub fn payload(ctx: &MessageContext<'_>) -> Value {
    // Adaptive Cards have no colour bar: the heading sits in a container styled by severity
    // (`emphasis`, a neutral grey, when the event states none).
    let head = vec![json!({
        "type": "TextBlock",
        "text": ctx.heading(Escape::Teams),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "style": "heading",
    })];
    let mut body = vec![json!({
        "type": "Container",
        "style": if ctx.event.is_resolve() {
            "good"
        } else {
            ctx.severity().map_or("emphasis", |s| s.card_style())
        },
        "bleed": true,
        "items": head,
    })];
    if let Some(text) = ctx.text(Escape::Teams) {
        body.push(json!({ "type": "TextBlock", "text": text, "wrap": true }));
    }
    let facts: Vec<Value> = ctx
        .fields()
        .into_iter()
        .map(|(k, v)| json!({ "title": k, "value": v }))
        .collect();
    if !facts.is_empty() {
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    body.push(json!({
        "type": "TextBlock",
        "text": ctx.footer(),
        "isSubtle": true,
        "size": "Small",
        "wrap": true,
    }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": { "width": "Full" },
    });
    if let Some(link) = ctx.link() {
        card["actions"] =
            json!([{ "type": "Action.OpenUrl", "title": "Open", "url": link.as_str() }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::format::tests_support::event;
    use crate::domain::DeliveryId;

    #[test]
    fn a_teams_message_carries_an_adaptive_card_1_4() {
        let ev = event(
            "billing",
            "invoice.failed",
            json!({"amount": 12.5, "link": "https://b.example.com/i/1"}),
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
        assert_eq!(p["type"], "message");
        let a = &p["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &a["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["body"][0]["type"], "Container");
        assert_eq!(card["body"][0]["style"], "emphasis", "no severity");
        assert_eq!(card["body"][0]["items"][0]["text"], "Invoice failed");
        assert_eq!(
            card["body"][1]["facts"],
            json!([{"title": "amount", "value": "12.5"}]),
            "the link is the action, not also a fact"
        );
        assert_eq!(card["actions"][0]["url"], "https://b.example.com/i/1");
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
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {
                                "type": "Container",
                                "style": "attention",
                                "bleed": true,
                                "items": [{
                                    "type": "TextBlock",
                                    "text": "Disk full",
                                    "weight": "Bolder",
                                    "size": "Medium",
                                    "wrap": true,
                                    "style": "heading",
                                }],
                            },
                            {"type": "TextBlock", "text": "/var is 97.5% full; oldest logs can go", "wrap": true},
                            {"type": "FactSet", "facts": [
                                {"title": "severity", "value": "critical"},
                                {"title": "host", "value": "web-1"},
                                {"title": "region", "value": "eu-west-1"},
                                {"title": "mount", "value": "/var"},
                                {"title": "usedPercent", "value": "97.5"},
                            ]},
                            {
                                "type": "TextBlock",
                                "text": "Herald · ops · disk.full",
                                "isSubtle": true,
                                "size": "Small",
                                "wrap": true,
                            },
                        ],
                        "msteams": {"width": "Full"},
                        "actions": [{
                            "type": "Action.OpenUrl",
                            "title": "Open",
                            "url": "https://grafana.example.com/d/disk?var-host=web-1",
                        }],
                    },
                }],
            })
        );
    }
}
