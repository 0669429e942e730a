//! An example for every request body and every JSON answer of the document, by operation id.
//! Request examples are the README's and the product description's calls, body for body (their
//! `<CHANNEL_ID>` placeholders replaced by an id); answers are what `herald serve` answered them.
//! Error answers get an example built from their status ([`error_example`]).

use serde_json::{Value, json};

const ORG: &str = "0193a0de-0000-7000-8000-000000000001";
const CHANNEL: &str = "01a249ce-eae7-7779-bc16-45b39dcdb4bf";
/// An email channel, where an example needs one (a digest rule).
const EMAIL_CHANNEL: &str = "01a249ce-eae8-7a11-8c5e-0d2b6f1e9a11";
const EVENT: &str = "01a249ce-ebbe-7796-9775-3fbf0899f9f1";
const DELIVERY: &str = "01a249ce-ebc1-785c-ad6d-cdd515b21f91";
const ITEM: &str = "01a249cf-0cac-7e84-9ae3-ceae063b1d2e";
const AT: &str = "2026-12-06T05:23:47.047106719Z";
const RECOVERY: &str = "01a249d0-1f00-7a3e-9c51-6f0e2b8d4c21";

/// The named request examples of an operation: `(name, summary, value)`.
pub fn requests(operation: &str) -> Vec<(&'static str, &'static str, Value)> {
    match operation {
        "create_org" => vec![("acme", "README: your first org", json!({"name": "Acme"}))],
        "create_api_key" => vec![("ci", "README: an API key", json!({"name": "ci"}))],
        "create_channel" => vec![
            (
                "slack",
                "README: a Slack channel",
                json!({"kind": "slack", "name": "sendora-email", "config": {"webhookUrl": "https://hooks.slack.com/services/..."}}),
            ),
            (
                "push",
                "Product description: a push channel with a frequency cap",
                json!({"kind": "push", "name": "transactional-push", "frequencyCap": {"perUser": 5, "windowHours": 24}}),
            ),
            (
                "webhook",
                "A webhook to an incident system, with a header",
                json!({"kind": "webhook", "name": "incidents", "config": {"url": "https://oncall.example.com/hooks/herald", "format": "generic", "headers": {"authorization": "Bearer 3f9c..."}}}),
            ),
            (
                "discord",
                "A Discord channel (a webhook with the discord format)",
                json!({"kind": "webhook", "name": "ops-discord", "config": {"url": "https://discord.com/api/webhooks/123/abc", "format": "discord"}}),
            ),
            (
                "pagerduty",
                "PagerDuty (Events API v2): incidents follow alerts by dedup key",
                json!({"kind": "webhook", "name": "pagerduty-ops", "config": {"format": "pagerduty", "routingKey": "R0UT1NGKEY0123456789abcdefABCDEF"}}),
            ),
            (
                "email_smtp",
                "Email through an SMTP relay",
                json!({"kind": "email", "name": "mail", "config": {"provider": "smtp", "from": "Herald <alerts@example.com>", "host": "smtp.example.com", "port": 587, "username": "herald", "password": "s3cret", "starttls": true}}),
            ),
            (
                "email_ses",
                "Email through Amazon SES",
                json!({"kind": "email", "name": "mail-ses", "config": {"provider": "ses", "from": "alerts@example.com"}}),
            ),
            (
                "sms_sns",
                "SMS through Amazon SNS",
                json!({"kind": "sms", "name": "sms", "config": {"provider": "sns", "senderId": "Acme"}}),
            ),
            (
                "in_app",
                "docs/feeds.md: an in-app feed",
                json!({"kind": "in_app", "name": "Feed"}),
            ),
        ],
        "update_channel" => vec![
            ("rename", "A new name", json!({"name": "incidents-2"})),
            ("disable", "Pause a channel", json!({"enabled": false})),
        ],
        "resend_delivery" => vec![("empty", "Resend a failed delivery", json!({}))],
        "rotate_secret" => vec![
            (
                "grace",
                "Rotate; the old secret keeps signing for 24 hours",
                json!({"graceHours": 24}),
            ),
            (
                "leaked",
                "The secret leaked: rotate, the old one stops at once",
                json!({"graceHours": 0}),
            ),
        ],
        "expire_previous" => vec![(
            "empty",
            "Every receiver has the new secret: stop signing with the old ones",
            json!({}),
        )],
        "recover_channel" => vec![
            (
                "since",
                "Recover everything that failed since the receiver went down",
                json!({"since": "2026-12-06T01:00:00Z"}),
            ),
            (
                "window",
                "Recover one outage's failures",
                json!({"since": "2026-12-06T01:00:00Z", "until": "2026-12-06T04:30:00Z"}),
            ),
        ],
        "explain_rules" => vec![
            (
                "event",
                "Why would this event page, or not, at 23:30 UTC?",
                json!({"event": {"type": "disk.full", "module": "ops", "properties": {"host": "web-1", "severity": "warning"}, "userId": "alice"},
                       "at": "2026-06-01T23:30:00Z"}),
            ),
            (
                "draft",
                "An event against a draft rule, before saving it",
                json!({"event": {"type": "disk.full", "module": "ops", "properties": {"host": "db-1", "severity": "critical"}},
                       "rules": [{"key": "db-disks", "channelIds": [CHANNEL],
                                  "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                                                    {"field": "properties.host", "op": "prefix", "value": "db-"}]}}],
                       "include": "matched"}),
            ),
        ],
        "replay_rules" => vec![
            (
                "narrow",
                "Narrow `disk.full` to database hosts: what would that have changed over a day?",
                json!({"rules": json!([{"key": "disk.full", "channelIds": [CHANNEL],
                   "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                                     {"field": "properties.host", "op": "prefix", "value": "db-"}]}}]),
                       "since": "2026-12-05T00:00:00Z", "until": "2026-12-06T00:00:00Z", "examples": 2}),
            ),
            (
                "resume",
                "Go on after a truncated replay",
                json!({"rules": json!([{"key": "disk.full", "channelIds": [CHANNEL],
                   "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                                     {"field": "properties.host", "op": "prefix", "value": "db-"}]}}]),
                       "since": "2026-12-05T00:00:00Z", "until": "2026-12-06T00:00:00Z",
                       "resumeFrom": "1796515200123#evt-disk-8841"}),
            ),
        ],
        "apply_rules" => vec![(
            "narrow",
            "Apply the replayed draft, unless the rules changed since version 42",
            json!({"rules": json!([{"key": "disk.full", "channelIds": [CHANNEL],
                   "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                                     {"field": "properties.host", "op": "prefix", "value": "db-"}]}}]), "expectedRulesVersion": 42}),
        )],
        "test_channel" => vec![
            ("empty", "README: test a Slack channel", json!({})),
            (
                "to",
                "Product description: a test recipient",
                json!({"to": "alice@example.com"}),
            ),
        ],
        "create_rule" => vec![
            (
                "by_type",
                "README: fire on `email.bounced`",
                json!({"key": "email.bounced", "channelIds": [CHANNEL]}),
            ),
            (
                "welcome",
                "Product description: caps and quiet hours",
                json!({"key": "welcome", "channelIds": [CHANNEL], "frequencyCap": {"perUser": 1, "windowHours": 24}, "quietHoursTz": "America/New_York"}),
            ),
            (
                "matcher",
                "A matcher tree: ops events that are critical or not from a dev host",
                json!({"key": "disk.full", "match": {"all": [
                    {"field": "module", "op": "eq", "value": "ops"},
                    {"any": [
                        {"field": "properties.severity", "op": "in", "value": ["critical", "high"]},
                        {"not": {"field": "properties.host", "op": "prefix", "value": "dev-"}}
                    ]}
                ]}, "channelIds": [CHANNEL]}),
            ),
            (
                "storm_safe",
                "docs/alerts.md: one Slack message per host until it resolves",
                json!({"key": "disk-full-slack", "match": {"field": "type", "op": "eq", "value": "disk.full"}, "channelIds": [CHANNEL],
                       "alerting": {"dedupKey": "{{type}}:{{properties.host}}", "autoResolveSeconds": 900}}),
            ),
            (
                "grouped",
                "docs/alerts.md: one Slack message per cluster, 20 hosts listed",
                json!({"key": "disk-full-grouped", "match": {"field": "type", "op": "eq", "value": "disk.full"}, "channelIds": [CHANNEL],
                       "alerting": {"dedupKey": "{{type}}:{{properties.host}}", "groupBy": ["type", "properties.cluster"],
                                    "groupWaitSeconds": 30, "groupIntervalSeconds": 300, "repeatIntervalSeconds": 14400,
                                    "maxAlertsPerMessage": 20}}),
            ),
            (
                "digest",
                "docs/digests.md: one email per user and post every 10 minutes, at most 50 comments",
                json!({"key": "comment.created", "channelIds": [EMAIL_CHANNEL],
                       "template": {"title": "New comment from {{properties.author}}", "body": "{{properties.text}}"},
                       "digest": {"windowSeconds": 600, "key": "{{properties.postId}}", "maxEvents": 50, "items": 20}}),
            ),
            (
                "daily_digest",
                "docs/digests.md: a daily digest at 09:00 in each recipient's time zone",
                json!({"key": "task.assigned", "channelIds": [EMAIL_CHANNEL], "digest": {"at": "09:00"}}),
            ),
        ],
        "update_rule" => vec![
            ("disable", "Pause a rule", json!({"enabled": false})),
            (
                "digest",
                "docs/digests.md: send the rule to an email channel as an hourly digest (`\"digest\": null` removes it)",
                json!({"channelIds": [EMAIL_CHANNEL], "digest": {"windowSeconds": 3600}}),
            ),
            (
                "match",
                "Narrow a rule to one module",
                json!({"match": {"field": "module", "op": "eq", "value": "email"}}),
            ),
        ],
        "post_events" => vec![
            (
                "one",
                "README: one event",
                json!({"type": "email.bounced", "module": "email", "properties": {"to": "a@example.com", "reason": "mailbox full"}}),
            ),
            (
                "user",
                "docs/feeds.md: an event for a user",
                json!({"type": "invoice.paid", "module": "billing", "properties": {"amount": 120}, "userId": "alice"}),
            ),
            (
                "alert",
                "docs/alerts.md: a trigger with a dedup key; the same key with `resolve` ends it",
                json!({"type": "disk.full", "module": "ops", "properties": {"host": "web-1", "pct": 97},
                       "dedupKey": "disk.full:web-1", "action": "trigger"}),
            ),
            (
                "batch",
                "A batch, with every field",
                json!([
                    {"type": "disk.full", "module": "ops", "properties": {"host": "db-1", "severity": "critical", "used": 0.97}},
                    {"id": "order-1042-shipped", "type": "order.shipped", "module": "shop", "properties": {"order": 1042},
                     "recipients": ["bob", {"userId": "carol", "email": "carol@example.com"}], "occurredAt": "2026-12-06T05:20:00Z"}
                ]),
            ),
        ],
        "acknowledge_alert" => vec![("by", "Who is on it", json!({"by": "alice@example.com"}))],
        "resolve_alert" => vec![("by", "Who resolved it", json!({"by": "alice@example.com"}))],
        "create_silence" => vec![(
            "drill",
            "docs/alerts.md: mute a cluster's db alerts during a drill",
            json!({"match": {"all": [{"field": "module", "op": "eq", "value": "db"},
                                     {"field": "properties.cluster", "op": "eq", "value": "eu-1"}]},
                   "startsAt": "2030-06-01T22:00:00Z", "endsAt": "2030-06-02T02:00:00Z",
                   "comment": "failover drill CHG-1234", "createdBy": "alice@example.com"}),
        )],
        "update_silence" => vec![(
            "extend",
            "Extend a silence",
            json!({"endsAt": "2030-06-02T04:00:00Z", "comment": "drill overran"}),
        )],
        "create_token" => vec![(
            "token",
            "docs/feeds.md: a token for the signed-in user",
            json!({"userId": "alice@example.com", "ttlSeconds": 3600}),
        )],
        "put_user" => vec![(
            "profile",
            "Contact points, time zone and opt-outs",
            json!({"email": "alice@example.com", "phone": "+15551234567", "pushTokens": ["fcm-token-1"], "timezone": "Europe/Paris", "optOuts": ["sms"]}),
        )],
        "sync_sms_opt_outs" => vec![(
            "channel",
            "docs/hygiene.md: through an SNS SMS channel",
            json!({"channelId": CHANNEL}),
        )],
        "create_suppression" => vec![
            (
                "email",
                "docs/hygiene.md: stop emailing an address",
                json!({"kind": "email", "address": "Bob@Example.com", "comment": "asked by phone, ticket 4411"}),
            ),
            (
                "sms",
                "Stop texting a number",
                json!({"kind": "sms", "address": "+14155550123", "reason": "manual"}),
            ),
        ],
        _ => Vec::new(),
    }
}

fn channel(kind: &str, name: &str, config: Value) -> Value {
    // Slack is paced by default (1 a second, bursts of 3); a generic webhook is not.
    let rate_limit = (kind == "slack").then(|| json!({"perSecond": 1.0, "burst": 3}));
    json!({"id": CHANNEL, "orgId": ORG, "kind": kind, "name": name, "config": config,
           "frequencyCap": null, "rateLimit": rate_limit, "rateLimitDefault": true,
           "enabled": true, "health": {"status": "ok"},
           "createdAt": AT, "updatedAt": AT})
}

/// A generic webhook as answers show it, with the secrets signing now (`previous`).
fn webhook(name: &str, previous: Value) -> Value {
    let mut c = channel(
        "webhook",
        name,
        json!({"url": "https://oncall.example.com/…rald", "format": "generic",
               "headers": {"authorization": "****"}, "signingSecret": "whsec_****"}),
    );
    c["signing"] =
        json!({"current": {"prefix": "whsec_MfKQ", "createdAt": AT}, "previous": previous});
    c
}

fn rule(key: &str, matcher: Value) -> Value {
    json!({"key": key, "orgId": ORG, "match": matcher, "channelIds": [CHANNEL], "frequencyCap": null,
           "quietHoursTz": null, "quietHours": null, "recipients": [], "template": null,
           "critical": false, "enabled": true, "createdAt": AT, "updatedAt": AT})
}

fn alert() -> Value {
    json!({"dedupKey": "disk.full:web-1", "instanceId": "01a249ce-f000-7a10-8c5e-0d2b6f1e9a01",
           "state": "firing", "eventCount": 297, "firstEventAt": "2026-12-06T05:23:47Z",
           "lastEventAt": "2026-12-06T05:38:12Z", "acknowledgedAt": null, "acknowledgedBy": null,
           "resolvedAt": null, "resolvedBy": null, "type": "disk.full", "module": "ops",
           "autoResolveSeconds": 900, "ruleKeys": ["disk.full"],
           "targets": [{"ruleKey": "disk.full", "channelId": CHANNEL}]})
}

fn silence(state: &str) -> Value {
    json!({"id": "01a249ce-f100-7b20-9d6f-1e3c7a2f0b02", "orgId": ORG,
           "match": {"all": [{"field": "module", "op": "eq", "value": "db"},
                             {"field": "properties.cluster", "op": "eq", "value": "eu-1"}]},
           "ruleKeys": ["disk.full"], "channelIds": [],
           "startsAt": "2026-12-06T05:30:00Z", "endsAt": "2026-12-06T09:30:00Z",
           "comment": "failover drill CHG-1234", "createdBy": "alice@example.com",
           "state": state, "createdAt": "2026-12-06T05:30:00Z", "updatedAt": "2026-12-06T05:30:00Z"})
}

fn delivery() -> Value {
    json!({"id": "01a249ce-ebc1-785c-ad6d-cdd515b21f91", "orgId": ORG, "eventId": EVENT,
           "eventType": "email.bounced", "ruleKey": "email.bounced", "channelId": CHANNEL,
           "channelKind": "webhook", "recipient": null, "trigger": "event", "status": "delivered",
           "reason": null,
           "attempts": [{"n": 1, "at": "2026-12-06T05:23:47.280391930Z", "statusCode": 200,
                         "errorClass": null, "error": null, "latencyMs": 1, "trigger": "scheduled"}],
           "createdAt": "2026-12-06T05:23:47.272683632Z", "updatedAt": "2026-12-06T05:23:47.280391930Z"})
}

/// A webhook delivery that failed (404), then was resent by hand and delivered.
fn resent_delivery() -> Value {
    json!({"id": DELIVERY, "orgId": ORG, "eventId": "evt-disk-1",
           "eventType": "disk.full", "ruleKey": "disk.full", "channelId": CHANNEL,
           "channelKind": "webhook", "recipient": null, "trigger": "event", "status": "delivered",
           "reason": null,
           "attempts": [
               {"n": 1, "at": "2026-12-06T05:23:47.280391930Z", "statusCode": 404,
                "errorClass": "channel_gone", "error": "no such hook", "latencyMs": 3, "trigger": "scheduled"},
               {"n": 2, "at": "2026-12-06T05:41:02.118207411Z", "statusCode": 200,
                "errorClass": null, "error": null, "latencyMs": 2, "trigger": "manual"}],
           "createdAt": "2026-12-06T05:23:47.272683632Z", "updatedAt": "2026-12-06T05:41:02.118207411Z"})
}

fn feed_item(read: bool) -> Value {
    let at = read.then_some("2026-12-06T05:23:57.939021119Z");
    json!({"id": ITEM, "title": "Invoice paid", "body": "Invoice #1042 was paid.",
           "url": "https://app.example.com/invoices/1042", "eventType": "invoice.paid",
           "data": {"amount": 120, "message": "Invoice #1042 was paid.", "url": "https://app.example.com/invoices/1042"},
           "createdAt": "2026-12-06T05:23:55.707211899Z", "readAt": at, "seenAt": at,
           "archivedAt": null, "seq": if read { 2 } else { 1 }})
}

/// The example of an operation's successful JSON answer.
pub fn response(operation: &str) -> Option<Value> {
    let counts = json!({"attempts": 2, "clicked": 0, "deduplicated": 9999, "deferred": 0, "delivered": 2,
                        "failed": 0, "grouped": 0, "opened": 0, "read": 0, "sent": 0, "silenced": 0,
                        "suppressed": 0});
    let slack = channel(
        "slack",
        "sendora-email",
        json!({"webhookUrl": "https://hooks.slack.com/…/..."}),
    );
    let matcher = json!({"all": [
        {"field": "module", "op": "eq", "value": "ops"},
        {"any": [
            {"field": "properties.severity", "op": "in", "value": ["critical", "high"]},
            {"not": {"field": "properties.host", "op": "prefix", "value": "dev-"}}
        ]}
    ]});
    let user = json!({"userId": "alice", "orgId": ORG, "email": "alice@example.com",
                      "phone": "+15551234567", "pushTokens": ["fcm-token-1"], "timezone": "Europe/Paris",
                      "optOuts": ["sms"], "updatedAt": AT});
    Some(match operation {
        "create_org" => {
            json!({"id": "01a249ce-eaab-7685-bdb7-ce10f261fe78", "name": "Acme", "createdAt": AT})
        }
        "get_org" => json!({"id": ORG, "name": "Development", "createdAt": AT}),
        "create_api_key" => json!({
            "id": "01a249ce-eabf-7570-b8ac-7feb649cbf14", "orgId": ORG, "name": "ci",
            "prefix": "pk_test_a32c", "createdAt": AT,
            "key": "pk_test_a32cc6a8883248f205841fbbc3479ea07d20c59baeee919c"}),
        "list_api_keys" => json!({"items": [{
            "id": "01a249ce-eabf-7570-b8ac-7feb649cbf14", "orgId": ORG, "name": "ci",
            "prefix": "pk_test_a32c", "createdAt": AT}], "nextCursor": null}),
        "create_channel" | "get_channel" => slack,
        "list_channels" => json!({"items": [slack], "nextCursor": null}),
        "update_channel" => {
            let mut c = webhook("incidents-2", json!([]));
            c["updatedAt"] = json!("2026-12-06T05:23:47.199834932Z");
            c
        }
        "rotate_secret" => {
            let mut c = webhook(
                "incidents",
                json!([{"prefix": "whsec_MfKQ", "expiresAt": "2026-12-07T05:23:47.199834932Z"}]),
            );
            c["signing"]["current"] = json!({"prefix": "whsec_Rk3y",
                                             "createdAt": "2026-12-06T05:23:47.199834932Z"});
            c["signingSecret"] = json!("whsec_Rk3yqL0v9dT2nC8bW5mZpA1sGfH4jK7xQeUiOr6tYw0=");
            c["updatedAt"] = json!("2026-12-06T05:23:47.199834932Z");
            c
        }
        "expire_previous" => {
            let mut c = webhook("incidents", json!([]));
            c["updatedAt"] = json!("2026-12-06T05:23:47.199834932Z");
            c
        }
        "test_channel" => {
            json!({"ok": true, "statusCode": 200, "errorClass": null, "message": "ok",
                                 "latencyMs": 1, "logId": "01a249ce-eb8d-7569-a365-a4368dd16569"})
        }
        "create_rule" | "get_rule" => rule("email.bounced", Value::Null),
        "list_rules" => {
            json!({"items": [rule("email.bounced", Value::Null), rule("disk.full", matcher)],
                               "nextCursor": null})
        }
        "update_rule" => {
            let mut r = rule("disk.full", matcher);
            r["enabled"] = json!(false);
            r
        }
        "post_events" => {
            json!({"items": [{"index": 0, "id": EVENT}], "accepted": 1, "rejected": 0})
        }
        "get_alert" | "acknowledge_alert" | "resolve_alert" => {
            let mut a = alert();
            match operation {
                "acknowledge_alert" => {
                    a["state"] = json!("acknowledged");
                    a["acknowledgedAt"] = json!("2026-12-06T05:40:00Z");
                    a["acknowledgedBy"] = json!("alice@example.com");
                }
                "resolve_alert" => {
                    a["state"] = json!("resolved");
                    a["resolvedAt"] = json!("2026-12-06T05:52:00Z");
                    a["resolvedBy"] = json!("alice@example.com");
                }
                _ => {}
            }
            a
        }
        "list_alerts" => json!({"items": [alert()], "nextCursor": null}),
        "create_silence" | "get_silence" | "update_silence" => silence("active"),
        "delete_silence" => {
            let mut s = silence("expired");
            s["endsAt"] = json!("2026-12-06T05:50:00Z");
            s
        }
        "list_silences" => json!({"items": [silence("active")], "nextCursor": null}),
        "list_logs" | "list_channel_logs" => json!({"items": [delivery()], "nextCursor": null}),
        "get_delivery" => resent_delivery(),
        "resend_delivery" => json!({"deliveryId": DELIVERY, "attempt": 2, "status": "queued",
                                    "trigger": "manual", "template": "default"}),
        "recover_channel" => json!({
            "id": RECOVERY, "orgId": ORG, "channelId": CHANNEL, "state": "running",
            "since": "2026-12-06T01:00:00Z", "scanned": 0, "requeued": 0,
            "skipped": {"notFailed": 0, "eventExpired": 0, "notRecoverable": 0, "changed": 0},
            "truncated": false, "startedAt": AT, "updatedAt": AT}),
        "get_recovery" => json!({
            "id": RECOVERY, "orgId": ORG, "channelId": CHANNEL, "state": "done",
            "since": "2026-12-06T01:00:00Z", "scanned": 1450, "requeued": 212,
            "skipped": {"notFailed": 1236, "eventExpired": 2, "notRecoverable": 0, "changed": 0},
            "truncated": false, "startedAt": AT, "finishedAt": "2026-12-06T05:23:49.318264102Z",
            "updatedAt": "2026-12-06T05:23:49.318264102Z"}),
        "get_event" => json!({
            "event": {"id": "evt-disk-1", "orgId": ORG, "type": "disk.full", "module": "ops",
                      "properties": {"host": "web-1", "severity": "warning"},
                      "occurredAt": "2026-12-06T05:23:47.047106719Z", "receivedAt": AT},
            "stage": "matched", "matchedAt": "2026-12-06T05:23:47.272683632Z", "deliveries": 1,
            "rules": [
                {"ruleKey": "disk.full", "outcome": "matched",
                 "deliveries": [{"deliveryId": DELIVERY, "channelId": CHANNEL, "routed": "queued", "status": "delivered"}],
                 "outcomes": [{"outcome": "delivered", "channelId": CHANNEL, "deliveryId": DELIVERY}]},
                {"ruleKey": "disk.storm", "outcome": "matched",
                 "outcomes": [{"outcome": "deduplicated", "channelId": CHANNEL, "deliveryId": DELIVERY,
                               "dedupKey": "disk.full:web-1", "instanceId": "0197f0c2-5a10-7b7e-9d43-2b1f0e6c7a12"}]},
                {"ruleKey": "disk.critical", "outcome": "not_matched"}]}),
        "explain_rules" => json!({
            "evaluatedAt": "2026-06-01T23:30:00Z", "rulesSource": "live",
            "event": {"id": "0197f0c2-5a10-7b7e-9d43-2b1f0e6c7a11", "orgId": ORG, "type": "disk.full", "module": "ops",
                      "properties": {"host": "web-1", "severity": "warning"},
                      "recipients": [{"userId": "alice"}],
                      "occurredAt": "2026-12-06T05:23:47Z", "receivedAt": "2026-12-06T05:23:47Z"},
            "rules": [
                {"key": "disk.critical", "enabled": true, "matched": false,
                 "because": [{"path": "match.all[1]", "field": "properties.severity", "op": "in",
                              "expected": ["critical"], "actual": "warning",
                              "message": "`properties.severity` is \"warning\", expected `in [\"critical\"]`"}]},
                {"key": "disk.full", "enabled": true, "matched": true,
                 "deliveries": [
                     {"channelId": CHANNEL, "kind": "slack", "outcome": "would_send"},
                     {"channelId": "01a249ce-eae7-7779-bc16-45b39dcdb4c0", "kind": "email", "recipient": "alice",
                      "outcome": "would_defer", "reason": "quiet hours until 2026-06-02T06:00:00Z",
                      "until": "2026-06-02T06:00:00Z"}]}],
            "summary": {"evaluated": 2, "matched": 1, "wouldSend": 1, "wouldDefer": 1, "wouldSuppress": 0, "wouldFail": 0},
            "note": "nothing was written or sent; the live matcher caches rules and channels for up to 5 s, so a change made in the last seconds may not route yet as explained"}),
        "replay_rules" => json!({
            "rulesVersion": 42, "since": "2026-12-05T00:00:00Z", "until": "2026-12-06T00:00:00Z",
            "eventsScanned": 8421, "truncated": false, "resumeFrom": null,
            "totals": {"eventsChanged": 1203, "live": 1203, "draft": 0, "added": 0, "removed": 1203,
                       "unchanged": 0, "reattributed": 0},
            "byRule": [{"key": "disk.full", "live": 1203, "draft": 0, "newlyMatched": 0, "noLongerMatched": 1203,
                        "routesAdded": 0, "routesRemoved": 1203, "channelsAdded": [], "channelsRemoved": [CHANNEL],
                        "newlyMatchedSample": [], "noLongerMatchedSample": ["evt-disk-1", "evt-disk-2"]}],
            "byChannel": [{"channelId": CHANNEL, "live": 1203, "draft": 0, "added": 0, "removed": 1203}],
            "examples": {"added": [],
                         "removed": [{"eventId": "evt-disk-1", "type": "disk.full",
                                      "routes": [{"ruleKey": "disk.full", "channelId": CHANNEL}]},
                                     {"eventId": "evt-disk-2", "type": "disk.full",
                                      "routes": [{"ruleKey": "disk.full", "channelId": CHANNEL}]}]},
            "notSimulated": ["frequencyCap", "quietHours", "silences", "alertDedup", "optOuts",
                             "disabledChannels", "channelHealth"],
            "note": "nothing was written or sent; both sides routed now from the stored events; events stored before the by-time index existed are not replayed"}),
        "apply_rules" => {
            json!({"rulesVersion": 43, "upserted": ["disk.full"], "deleted": [], "unchanged": 0})
        }
        "get_stats" => json!({"from": "2026-11-30", "to": "2026-12-06", "groupBy": "channel",
            "groups": [{"key": CHANNEL, "channelName": "incidents", "counts": counts,
                        "successRate": 1.0, "latencyMs": {"p50": 50, "p95": 50}}],
            "totals": {"counts": counts, "successRate": 1.0, "latencyMs": {"p50": 50, "p95": 50}}}),
        "put_user" => user,
        "get_user" => {
            let mut view = user;
            view["unsubscribed"] = json!([{"userId": "alice", "channelId": CHANNEL,
                                           "ruleKey": "digest.weekly", "at": AT}]);
            view["suppressed"] = json!([]);
            view
        }
        "sync_sms_opt_outs" => json!({"listed": 8, "added": 3}),
        "create_suppression" => {
            json!({"kind": "email", "address": "bob@example.com", "reason": "manual",
            "source": "api", "details": {"comment": "asked by phone, ticket 4411"}, "createdAt": AT})
        }
        "list_suppressions" => json!({"items": [
            {"kind": "email", "address": "a@example.com", "reason": "hard_bounce", "source": "ses",
             "details": {"bounceSubType": "General", "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                         "deliveryId": DELIVERY}, "createdAt": AT},
            {"kind": "sms", "address": "+14155550123", "reason": "sms_opt_out", "source": "sns",
             "details": {}, "createdAt": AT}], "nextCursor": null}),
        "create_token" => json!({
            "token": "hft_eyJvcmciOiIwMTkzYTBkZS0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJ1c2VyIjoiYWxpY2UiLCJleHAiOjE3OTY1MzgyMjl9.83glGGGZR8lEQ6SwnjSz8k5GtDAP4Y2L6mgyxoaQpeA",
            "expiresAt": "2026-12-06T06:23:49Z"}),
        "list_feed" => json!({"items": [feed_item(false)], "badge": {"unread": 1, "unseen": 1},
                              "nextCursor": null, "seq": 1}),
        "mark_item" => json!({"item": feed_item(true), "badge": {"unread": 0, "unseen": 0},
                              "seq": 2, "changed": true}),
        "read_all" | "seen_all" => {
            json!({"badge": {"unread": 0, "unseen": 0}, "seq": 3, "changes": 1})
        }
        "list_outbox" => json!({"items": [{
            "id": "01a249cf-0cbc-727c-8f92-e76aaca96f7b", "deliveryId": "01a249cf-0cac-7ebc-b344-e81970a2447a",
            "channelId": CHANNEL, "channelKind": "sms", "from": null, "to": ["+15551234567"],
            "title": "Invoice paid", "body": "Invoice #1042 was paid.",
            "link": "https://app.example.com/invoices/1042", "eventType": "invoice.paid",
            "email": null, "createdAt": "2026-12-06T05:23:55.708168567Z"}], "nextCursor": null}),
        _ => return None,
    })
}

/// The example of an error answer: what this operation answers with this status.
pub fn error_example(status: &str, has_body: bool, operation: &str) -> Value {
    let feed_token = matches!(
        operation,
        "list_feed" | "mark_item" | "read_all" | "seen_all"
    );
    let (code, message, field) = match (status, operation) {
        ("400", _) if has_body => (
            "malformed_json",
            "the body is not valid JSON: expected `,` or `}` (line 1, column 13)",
            Value::Null,
        ),
        ("400", _) => (
            "invalid_query",
            "limit must be an integer from 1 to 100",
            json!("limit"),
        ),
        ("401", _) if feed_token => (
            "unauthorized",
            "the feed token has expired: get a new one from your backend",
            json!("authorization"),
        ),
        (
            "401",
            "create_org" | "get_org" | "create_api_key" | "list_api_keys" | "revoke_api_key",
        ) => (
            "unauthorized",
            "this path needs the admin key in the x-admin-key header",
            json!("x-admin-key"),
        ),
        ("401", _) => (
            "unauthorized",
            "missing API key: send it in the x-api-key header",
            json!("x-api-key"),
        ),
        ("403", _) => (
            "origin_not_allowed",
            "this origin may not call the feed",
            Value::Null,
        ),
        ("404", _) => return not_found(operation),
        ("409", "test_channel") => (
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being handled; retry in a moment",
            json!("Idempotency-Key"),
        ),
        ("409", "resend_delivery") => (
            "in_progress",
            "the delivery is queued and its next attempt is pending (due 2026-12-06T05:27:33Z); resend it once it has ended",
            Value::Null,
        ),
        ("409", "recover_channel") => (
            "recovery_running",
            "recovery 01a249d0-1f00-7a3e-9c51-6f0e2b8d4c21 of this channel is running (212 re-queued so far); wait for it to end",
            Value::Null,
        ),
        ("422", "recover_channel") => (
            "invalid_field",
            "until (2026-12-05T00:00:00Z) is before since (2026-12-06T01:00:00Z)",
            json!("until"),
        ),
        ("503", "recover_channel") => (
            "dispatch_unavailable",
            "the dispatch queue did not take the recovery; nothing was re-queued, retry",
            Value::Null,
        ),
        ("422", "resend_delivery") => (
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request within 24 hours: use a new key",
            json!("Idempotency-Key"),
        ),
        ("503", "resend_delivery") => (
            "dispatch_unavailable",
            "the dispatch queue did not take the attempt; nothing changed, retry",
            Value::Null,
        ),
        ("409", "rotate_secret") => (
            "limit_reached",
            "5 previous secrets are still in their grace period; expire them first (POST .../secret/expire-previous)",
            Value::Null,
        ),
        ("409", "expire_previous") => (
            "conflict",
            "concurrent changes to this channel; retry the request",
            Value::Null,
        ),
        ("422", "rotate_secret") => (
            "invalid_field",
            "must be a whole number of hours from 0 to 168 (7 days)",
            json!("graceHours"),
        ),
        ("422", "expire_previous") => (
            "invalid_field",
            "only generic webhooks are signed; a discord webhook carries its token in its URL: change the URL instead",
            json!("config.format"),
        ),
        ("409", "apply_rules") => (
            "rules_changed",
            "the rules changed: version 43, expected 42 (`expectedRulesVersion`): nothing was written; replay the draft against the current rules and apply again",
            json!("expectedRulesVersion"),
        ),
        ("422", "replay_rules") => (
            "invalid_field",
            "a replay window is at most 7 days: replay a longer period in several calls",
            json!("until"),
        ),
        ("422", "explain_rules" | "apply_rules") => (
            "invalid_field",
            "unknown op `equals`: one of eq, ne, in, nin, prefix, suffix, contains, exists, gt, gte, lt, lte, regex",
            json!("rules[1].match.all[0].op"),
        ),
        ("409", "mark_item") => (
            "conflict",
            "too many concurrent changes to this feed; retry",
            Value::Null,
        ),
        ("409", "delete_suppression") => (
            "conflict",
            "this address complained (marked an email as spam); remove it with ?force=true only if the person asked to receive email again",
            Value::Null,
        ),
        ("422", "sync_sms_opt_outs") => (
            "invalid_field",
            "must be an SMS channel sending through SNS",
            json!("channelId"),
        ),
        ("502", "sync_sms_opt_outs") => (
            "internal",
            "SNS did not list the opted-out numbers: AuthorizationError: not authorized to perform SNS:ListPhoneNumbersOptedOut",
            Value::Null,
        ),
        ("422", "create_suppression" | "delete_suppression") => (
            "invalid_field",
            "`bob@` is not an email address",
            json!("address"),
        ),
        ("409", "create_rule") => (
            "conflict",
            "a rule with key `email.bounced` already exists",
            json!("key"),
        ),
        ("409", _) => (
            "conflict",
            "the channel is used by rules `email.bounced`: remove it from them (or delete them) first",
            Value::Null,
        ),
        ("413", _) => (
            "payload_too_large",
            "request bodies are limited to 256 KB",
            Value::Null,
        ),
        ("422", "create_rule" | "update_rule") => (
            "invalid_field",
            "unknown op `equals`: one of eq, ne, in, nin, prefix, suffix, contains, exists, gt, gte, lt, lte, regex",
            json!("match.all[0].op"),
        ),
        ("422", "create_channel" | "update_channel") => (
            "invalid_field",
            "must be an https URL",
            json!("config.webhookUrl"),
        ),
        ("422", "test_channel") => (
            "invalid_field",
            "an in-app test needs `to`: the user id whose feed receives it",
            json!("to"),
        ),
        ("422", "post_events") => ("invalid_field", "is required", json!("module")),
        ("422", "create_token") => (
            "invalid_field",
            "must be between 1 and 86400",
            json!("ttlSeconds"),
        ),
        ("422", "put_user") => ("invalid_field", "not an IANA time zone", json!("timezone")),
        ("422", "get_user" | "delete_user" | "resubscribe") => {
            ("invalid_field", "not a user id", json!("userId"))
        }
        ("422", _) => (
            "invalid_field",
            "must be 1–128 printable characters",
            json!("name"),
        ),
        ("503", "acknowledge_alert") => (
            "not_published",
            "the alert is acknowledged but its follow-ups could not be published; retry",
            Value::Null,
        ),
        ("503", "resolve_alert") => (
            "not_published",
            "the alert is resolved but its follow-ups could not be published; retry",
            Value::Null,
        ),
        ("503", "post_events") => (
            "not_published",
            "the event bus is unavailable; retry",
            Value::Null,
        ),
        ("503", _) => (
            "feeds_disabled",
            "feeds are not enabled on this deployment",
            Value::Null,
        ),
        _ => ("internal", "internal error", Value::Null),
    };
    json!({"error": {"code": code, "message": message, "field": field}})
}

/// A 404 naming what the operation looks for.
fn not_found(operation: &str) -> Value {
    let what = [
        ("explain", "event"),
        ("get_event", "event"),
        ("delivery", "delivery"),
        ("get_recovery", "recovery"),
        ("channel", "channel"),
        ("secret", "channel"),
        ("expire_previous", "channel"),
        ("rule", "rule"),
        ("resubscribe", "unsubscribe"),
        ("user", "user"),
        ("api_key", "API key"),
        ("mark_item", "feed item"),
        ("alert", "alert"),
        ("silence", "silence"),
        ("suppression", "suppression"),
    ]
    .into_iter()
    .find(|(part, _)| operation.contains(part))
    .map_or("org", |(_, what)| what);
    json!({"error": {"code": "not_found", "message": format!("{what} not found"), "field": null}})
}
