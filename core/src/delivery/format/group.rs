//! Group messages of grouped rules (docs/alerts.md, "Grouping"): one message per group and
//! channel listing its first `maxAlertsPerMessage` alerts, then `+N more`.
//!
//! | target | body |
//! |---|---|
//! | Slack | one attachment titled `[FIRING:12] disk.full cluster=eu-1` (or `[RESOLVED] …`), a line per alert |
//! | Discord | one embed, its description within Discord's 4,096 characters |
//! | Teams | an Adaptive Card: heading, one line per alert |
//! | generic webhook | `herald.alert_group`: `{type, status, groupKey, alerts, truncatedAlerts, counts, ruleKey, deliveryId}` |

use serde_json::{Value, json};

use super::template::{Escape, escape_text};
use super::{MessageContext, RESOLVED_COLOUR, truncate_chars};
use crate::domain::group::{GroupMessage, GroupStatus};

/// The colour of a firing group: the alerting red.
const FIRING_COLOUR: u32 = 0xD0_02_1B;
/// Discord's embed description limit, in characters.
const DISCORD_DESCRIPTION_MAX: usize = 4096;

fn colour(group: &GroupMessage) -> u32 {
    match group.status {
        GroupStatus::Firing => FIRING_COLOUR,
        GroupStatus::Resolved => RESOLVED_COLOUR,
    }
}

fn title(ctx: &MessageContext<'_>, group: &GroupMessage) -> String {
    group.title(ctx.rule_key.map_or("alerts", |k| k.as_str()))
}

/// Slack: one attachment.
pub fn slack(ctx: &MessageContext<'_>, group: &GroupMessage) -> Value {
    let title = escape_text(&title(ctx, group), Escape::Slack);
    let text = group
        .lines()
        .iter()
        .map(|l| escape_text(l, Escape::Slack))
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "text": title,
        "attachments": [{
            "fallback": title,
            "color": format!("#{:06X}", colour(group)),
            "title": title,
            "text": text,
            "footer": "Herald · alert group",
            "ts": ctx.event.occurred_at.timestamp(),
        }],
    })
}

/// Discord: one embed; lines that do not fit the description are counted in its last line.
pub fn discord(ctx: &MessageContext<'_>, group: &GroupMessage) -> Value {
    let lines = group.lines();
    let listed = group.alerts.len();
    let mut description = String::new();
    for (i, line) in lines.iter().take(listed).enumerate() {
        let line = escape_text(line, Escape::Discord);
        let rest = group.truncated_alerts as usize + listed - i;
        // Room for this line and a closing "+N more".
        let tail = format!("\n+{rest} more");
        if description.chars().count() + line.chars().count() + 1 + tail.chars().count()
            > DISCORD_DESCRIPTION_MAX
        {
            description.push_str(tail.trim_start_matches(|c| description.is_empty() && c == '\n'));
            return discord_embed(ctx, group, description);
        }
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&line);
    }
    if group.truncated_alerts > 0 {
        description.push_str(&format!("\n+{} more", group.truncated_alerts));
    }
    discord_embed(
        ctx,
        group,
        truncate_chars(&description, DISCORD_DESCRIPTION_MAX),
    )
}

fn discord_embed(ctx: &MessageContext<'_>, group: &GroupMessage, description: String) -> Value {
    json!({
        "embeds": [{
            "title": truncate_chars(&title(ctx, group), 256),
            "description": description,
            "color": colour(group),
            "footer": {"text": "Herald · alert group"},
            "timestamp": ctx.event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }],
        "allowed_mentions": {"parse": []},
    })
}

/// Teams: an Adaptive Card.
pub fn teams(ctx: &MessageContext<'_>, group: &GroupMessage) -> Value {
    let mut body = vec![json!({
        "type": "Container",
        "style": match group.status {
            GroupStatus::Firing => "attention",
            GroupStatus::Resolved => "good",
        },
        "bleed": true,
        "items": [{
            "type": "TextBlock",
            "text": title(ctx, group),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true,
            "style": "heading",
        }],
    })];
    for line in group.lines() {
        body.push(json!({"type": "TextBlock", "text": line, "wrap": true, "spacing": "None"}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "msteams": { "width": "Full" },
            },
        }],
    })
}

/// Generic webhook: the documented `herald.alert_group` payload.
pub fn generic(ctx: &MessageContext<'_>, group: &GroupMessage) -> Value {
    let mut value = serde_json::to_value(group).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), json!("herald.alert_group"));
        map.insert("deliveryId".into(), json!(ctx.delivery_id.to_string()));
        map.insert(
            "ruleKey".into(),
            ctx.rule_key.map_or(Value::Null, |k| json!(k.as_str())),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::delivery::format::tests_support::disk_full;
    use crate::domain::group::GroupAlert;
    use crate::domain::{DeliveryId, RuleKey};

    fn group(n: usize, long: bool) -> GroupMessage {
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let members = (0..n)
            .map(|i| GroupAlert {
                dedup_key: format!("disk.full:web-{i}"),
                status: GroupStatus::Firing,
                summary: if long {
                    format!("[ops] Disk full — host web-{i} {}", "x".repeat(300))
                } else {
                    format!("[ops] Disk full — host web-{i}")
                },
                starts_at: at,
                ends_at: None,
            })
            .collect();
        GroupMessage::new(
            BTreeMap::from([("properties.cluster".to_owned(), "eu-1".to_owned())]),
            members,
            if long { 100 } else { 20 },
        )
    }

    fn ctx<'a>(
        ev: &'a crate::domain::event::Event,
        key: &'a RuleKey,
        g: &'a GroupMessage,
    ) -> MessageContext<'a> {
        MessageContext {
            event: ev,
            rule_key: Some(key),
            template: None,
            delivery_id: DeliveryId::new(),
            group: Some(g),
            digest: None,
        }
    }

    #[test]
    fn a_slack_group_message_is_one_attachment_with_twenty_lines_and_more() {
        let ev = disk_full();
        let key = RuleKey::parse("disk").expect("key");
        let g = group(500, false);
        let p = slack(&ctx(&ev, &key, &g), &g);
        let a = &p["attachments"][0];
        assert_eq!(a["title"], "[FIRING:500] disk cluster=eu-1");
        let text = a["text"].as_str().expect("text");
        assert_eq!(text.lines().count(), 21);
        assert!(text.ends_with("+480 more"), "{text}");
        assert_eq!(p["attachments"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_discord_group_message_stays_within_the_description_limit() {
        let ev = disk_full();
        let key = RuleKey::parse("disk").expect("key");
        let g = group(150, true);
        let p = discord(&ctx(&ev, &key, &g), &g);
        let d = p["embeds"][0]["description"].as_str().expect("description");
        assert!(d.chars().count() <= DISCORD_DESCRIPTION_MAX);
        assert!(d.lines().last().expect("a line").ends_with(" more"), "{d}");
        let shown = d.lines().count() - 1;
        assert!(d.ends_with(&format!("+{} more", 150 - shown)), "{d}");
    }

    #[test]
    fn a_generic_group_payload_is_herald_alert_group() {
        let ev = disk_full();
        let key = RuleKey::parse("disk").expect("key");
        let g = group(25, false);
        let p = generic(&ctx(&ev, &key, &g), &g);
        assert_eq!(p["type"], "herald.alert_group");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["groupKey"]["properties.cluster"], "eu-1");
        assert_eq!(p["alerts"].as_array().map(Vec::len), Some(20));
        assert_eq!(p["truncatedAlerts"], 5);
        assert_eq!(p["counts"]["firing"], 25);
        assert_eq!(p["counts"]["resolved"], 0);
        assert_eq!(p["alerts"][0]["status"], "firing");
    }
}
