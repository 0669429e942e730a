//! The schemas the derives cannot say: the event body (one event or a batch), channel configs as
//! a `oneOf` by `kind` (and by `provider` inside email, SMS and push), the recursive matcher tree
//! of a rule's `match`, and the feed socket's messages. Each mirrors a parser in `herald-core`
//! (`EventInput`, `ChannelConfig::parse`, `Matcher::parse`, `feed::ClientMessage`); the API's
//! tests post the document's examples through those parsers, so the two cannot drift apart
//! unnoticed.

use serde_json::{Map, Value, json};

use herald_core::domain::event::{MAX_PROPERTIES_BYTES, MAX_PROPERTIES_DEPTH, MAX_RECIPIENTS};
use herald_core::domain::matcher::{MAX_DEPTH, MAX_IN_ITEMS, MAX_NODES, MAX_STRING_CHARS};

use crate::events::MAX_BATCH;

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable_ref(name: &str) -> Value {
    json!({ "oneOf": [{ "type": "null" }, schema_ref(name)] })
}

/// Every schema this module adds, by name.
pub fn components() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    out.extend(events());
    out.extend(channel_configs());
    out.extend(create_channels());
    out.extend(matcher());
    out.extend(feed_socket());
    out.extend(alert_group());
    out
}

/// What a generic webhook of a grouped rule receives (docs/alerts.md, "Grouping").
fn alert_group() -> Vec<(&'static str, Value)> {
    vec![(
        "AlertGroupWebhook",
        json!({
            "type": "object",
            "description": "The body a generic webhook receives for a grouped rule's group message (`alerting.groupBy`): one request per group message, signed like every generic webhook; `webhook-id` is the delivery id. Discord, Teams and Slack get the same content in their own formats; PagerDuty keeps per-alert events.",
            "required": ["type", "status", "groupKey", "alerts", "truncatedAlerts", "counts", "deliveryId", "ruleKey"],
            "properties": {
                "type": { "type": "string", "const": "herald.alert_group" },
                "status": { "type": "string", "enum": ["firing", "resolved"], "description": "`firing` while any member fires; `resolved` for the all-clear." },
                "groupKey": { "type": "object", "additionalProperties": { "type": "string" }, "description": "The group's `groupBy` values by field path (`{\"type\": \"disk.full\", \"properties.cluster\": \"eu-1\"}`); a field the events lack is `\"\"`." },
                "alerts": {
                    "type": "array", "maxItems": 100,
                    "description": "The first `maxAlertsPerMessage` members: firing ones first (oldest first), then resolved ones (only when the rule sends resolved).",
                    "items": {
                        "type": "object",
                        "required": ["dedupKey", "status", "summary", "startsAt"],
                        "properties": {
                            "dedupKey": { "type": "string" },
                            "status": { "type": "string", "enum": ["firing", "resolved"] },
                            "summary": { "type": "string", "description": "The line a chat notification of the alert's opening event shows." },
                            "startsAt": { "type": "string", "format": "date-time" },
                            "endsAt": { "type": "string", "format": "date-time", "description": "When it resolved." }
                        }
                    }
                },
                "truncatedAlerts": { "type": "integer", "minimum": 0, "description": "Members not listed." },
                "counts": {
                    "type": "object", "required": ["firing", "resolved"],
                    "properties": {
                        "firing": { "type": "integer", "minimum": 0 },
                        "resolved": { "type": "integer", "minimum": 0 }
                    }
                },
                "deliveryId": { "type": "string", "format": "uuid", "description": "Equal to the `webhook-id` header." },
                "ruleKey": { "type": "string" }
            }
        }),
    )]
}

fn events() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Event",
            json!({
                "type": "object",
                "description": "One event as producers write it. Unknown fields are refused (`propertes` is a typo whose properties would otherwise never match).",
                "additionalProperties": false,
                "required": ["type", "module"],
                "properties": {
                    "type": { "type": "string", "minLength": 1, "maxLength": 256, "description": "The event type, e.g. `email.bounced`; rules without `match` fire on the type equal to their key." },
                    "module": { "type": "string", "minLength": 1, "maxLength": 128, "description": "The platform module that emitted it, e.g. `email`, `auth`, `ops`." },
                    "properties": {
                        "type": "object",
                        "additionalProperties": true,
                        "description": format!("Anything the rules match on (`properties.a.b`) and the messages show; at most {MAX_PROPERTIES_DEPTH} levels deep and {} KiB as compact JSON. `title`, `message`, `url` and `severity` are shown specially.", MAX_PROPERTIES_BYTES / 1024)
                    },
                    "id": { "type": "string", "minLength": 1, "maxLength": 256, "description": "Your id for the event (1–256 printable characters), kept in the logs; without one, a fresh UUIDv7: identical events are distinct events." },
                    "userId": { "type": "string", "minLength": 1, "maxLength": 128, "description": "The user the event is for (user-facing channels: email, SMS, push, in-app)." },
                    "recipients": {
                        "type": "array",
                        "maxItems": MAX_RECIPIENTS,
                        "description": format!("More users the event is for: user ids, or objects whose contact points override the stored profile. At most {MAX_RECIPIENTS} with `userId`."),
                        "items": { "oneOf": [
                            { "type": "string", "minLength": 1, "maxLength": 128, "description": "A user id" },
                            schema_ref("Recipient")
                        ] }
                    },
                    "occurredAt": { "type": "string", "format": "date-time", "description": "When it happened (RFC 3339); default: when Herald received it." },
                    "dedupKey": { "type": "string", "minLength": 1, "maxLength": 255, "description": "The alert this event belongs to (1–255 printable characters, case-sensitive): one open instance per key; duplicate triggers are counted, not sent again (docs/alerts.md). A rule's `alerting.dedupKey` template can derive it instead." },
                    "action": { "type": "string", "enum": ["trigger", "acknowledge", "resolve"], "default": "trigger", "description": "What the event does to its alert: `trigger` opens it (or counts a duplicate), `acknowledge` stops further notifications, `resolve` sends a resolved follow-up to every channel the trigger reached. `acknowledge` and `resolve` need a dedup key." }
                }
            }),
        ),
        (
            "Recipient",
            json!({
                "type": "object",
                "description": "A user an event is for, with contact points that win over the stored profile, field by field.",
                "additionalProperties": false,
                "required": ["userId"],
                "properties": {
                    "userId": { "type": "string", "minLength": 1, "maxLength": 128 },
                    "email": { "type": "string" },
                    "phone": { "type": "string", "description": "E.164, e.g. `+15551234567`" },
                    "pushTokens": { "type": "array", "items": { "type": "string" } }
                }
            }),
        ),
        (
            "EventBatch",
            json!({
                "type": "array",
                "description": format!("Up to {MAX_BATCH} events; each gets its own result, in order."),
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": schema_ref("Event")
            }),
        ),
        (
            "EventsBody",
            json!({
                "description": "One event, or an array of them (a batch).",
                "oneOf": [schema_ref("Event"), schema_ref("EventBatch")]
            }),
        ),
    ]
}

fn provider(name: &str) -> Value {
    json!({ "type": "string", "enum": [name] })
}

fn channel_configs() -> Vec<(&'static str, Value)> {
    let maybe_string = json!({ "type": ["string", "null"] });
    vec![
        (
            "SlackConfig",
            json!({
                "type": "object",
                "description": "A Slack incoming webhook. The URL carries the token: answers show it cut to host and last characters (`https://hooks.slack.com/…Ab12`).",
                "additionalProperties": false,
                "required": ["webhookUrl"],
                "properties": {
                    "webhookUrl": { "type": "string", "maxLength": 2048, "description": "`https://hooks.slack.com/services/...` (https only; no private or loopback host unless the deployment allows it)" }
                }
            }),
        ),
        (
            "WebhookFormat",
            json!({
                "type": "string",
                "enum": ["generic", "discord", "teams", "pagerduty"],
                "description": "`generic`: the event as JSON, signed with Standard Webhooks headers; `discord`: an embed for a Discord webhook URL; `teams`: an Adaptive Card for a Teams workflow URL; `pagerduty`: PagerDuty Events API v2 (trigger, acknowledge and resolve keyed by the alert's dedup key; docs/alerts.md)."
            }),
        ),
        (
            "WebhookConfig",
            json!({
                "type": "object",
                "description": "A generic HTTPS webhook, or a Discord, Teams or PagerDuty adapter. Answers show the URL cut to host and last characters, header values and the routing key as `****`. `url` is required but for `pagerduty`, which requires `routingKey` instead.",
                "additionalProperties": false,
                "if": { "required": ["format"], "properties": { "format": { "const": "pagerduty" } } },
                "then": { "required": ["routingKey"] },
                "else": { "required": ["url"] },
                "properties": {
                    "url": { "type": "string", "maxLength": 2048, "description": "https only (http for the deployment's allowed private ranges). PagerDuty: default `https://events.pagerduty.com/v2/enqueue` (EU accounts: `https://events.eu.pagerduty.com/v2/enqueue`)." },
                    "routingKey": { "type": "string", "description": "`pagerduty` only: the 32 letters and digits of the service's Events API v2 integration key (another value is a 422). A secret: answers show `****`." },
                    "format": { "allOf": [schema_ref("WebhookFormat")], "default": "generic" },
                    "headers": {
                        "type": "object",
                        "maxProperties": 20,
                        "additionalProperties": { "type": "string", "maxLength": 4096 },
                        "description": "Sent on every request (e.g. `authorization`); values are secrets, shown as `****`. Herald's own headers (`content-type`, `webhook-*`, ...) are refused."
                    },
                    "signingSecret": { "type": "string", "readOnly": true, "description": "Always `whsec_****`: the secret is shown once, as the channel's `signingSecret` in the creation answer." }
                }
            }),
        ),
        (
            "EmailSesConfig",
            json!({
                "type": "object",
                "description": "Amazon SES (v2), with the deployment's AWS credentials.",
                "additionalProperties": false,
                "required": ["provider", "from"],
                "properties": {
                    "provider": provider("ses"),
                    "from": { "type": "string", "description": "`alerts@example.com` or `Herald <alerts@example.com>`" },
                    "configurationSet": maybe_string,
                    "region": maybe_string
                }
            }),
        ),
        (
            "EmailSmtpConfig",
            json!({
                "type": "object",
                "description": "An SMTP relay. Port 465 is implicit TLS; otherwise `starttls: false` is plain text (accepted for the deployment's allowed private ranges only).",
                "additionalProperties": false,
                "required": ["provider", "from", "host", "port", "starttls"],
                "properties": {
                    "provider": provider("smtp"),
                    "from": { "type": "string" },
                    "host": { "type": "string", "minLength": 1 },
                    "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                    "username": maybe_string,
                    "password": { "type": ["string", "null"], "writeOnly": true, "description": "Never echoed (answers show `****`: EmailSmtpConfigView)." },
                    "starttls": { "type": "boolean" }
                }
            }),
        ),
        (
            "EmailOutboxConfig",
            json!({
                "type": "object",
                "description": "The local outbox of `herald serve` (its default): nothing leaves the machine; read it with `GET .../outbox`. Refused where the deployment has no outbox.",
                "additionalProperties": false,
                "required": ["provider"],
                "properties": {
                    "provider": provider("outbox"),
                    "from": maybe_string
                }
            }),
        ),
        (
            "EmailConfig",
            json!({
                "description": "An email channel's provider.",
                "oneOf": [schema_ref("EmailSesConfig"), schema_ref("EmailSmtpConfig"), schema_ref("EmailOutboxConfig")],
                "discriminator": { "propertyName": "provider", "mapping": {
                    "ses": "#/components/schemas/EmailSesConfig",
                    "smtp": "#/components/schemas/EmailSmtpConfig",
                    "outbox": "#/components/schemas/EmailOutboxConfig"
                } }
            }),
        ),
        (
            "SmsSnsConfig",
            json!({
                "type": "object",
                "description": "Amazon SNS `Publish` to a phone number, with the deployment's AWS credentials.",
                "additionalProperties": false,
                "required": ["provider"],
                "properties": {
                    "provider": provider("sns"),
                    "senderId": maybe_string,
                    "region": maybe_string
                }
            }),
        ),
        (
            "OutboxConfig",
            json!({
                "type": "object",
                "description": "The local outbox of `herald serve` (its default for SMS and push). Refused where the deployment has no outbox.",
                "additionalProperties": false,
                "required": ["provider"],
                "properties": { "provider": provider("outbox") }
            }),
        ),
        (
            "SmsConfig",
            json!({
                "description": "An SMS channel's provider.",
                "oneOf": [schema_ref("SmsSnsConfig"), schema_ref("OutboxConfig")],
                "discriminator": { "propertyName": "provider", "mapping": {
                    "sns": "#/components/schemas/SmsSnsConfig",
                    "outbox": "#/components/schemas/OutboxConfig"
                } }
            }),
        ),
        (
            "FcmConfig",
            json!({
                "type": "object",
                "description": "Firebase Cloud Messaging HTTP v1 with a service account.",
                "additionalProperties": false,
                "required": ["provider", "projectId", "clientEmail", "privateKey"],
                "properties": {
                    "provider": provider("fcm"),
                    "projectId": { "type": "string", "minLength": 1 },
                    "clientEmail": { "type": "string", "minLength": 1 },
                    "privateKey": { "type": "string", "minLength": 1, "writeOnly": true, "description": "The service account's RSA key (PEM). Never echoed (answers show `****`: FcmConfigView)." },
                    "tokenUri": maybe_string
                }
            }),
        ),
        (
            "PushConfig",
            json!({
                "description": "A push channel's provider.",
                "oneOf": [schema_ref("FcmConfig"), schema_ref("OutboxConfig")],
                "discriminator": { "propertyName": "provider", "mapping": {
                    "fcm": "#/components/schemas/FcmConfig",
                    "outbox": "#/components/schemas/OutboxConfig"
                } }
            }),
        ),
        (
            "InAppConfig",
            json!({
                "type": "object",
                "description": "In-app channels take no config: `{}`.",
                "additionalProperties": false,
                "maxProperties": 0
            }),
        ),
        (
            "ChannelConfig",
            json!({
                "description": "A channel's provider configuration: the shape is the channel's `kind` (`slack`: SlackConfig, `webhook`: WebhookConfig, `email`: EmailConfig, `sms`: SmsConfig, `push`: PushConfig, `in_app`: `{}`).",
                "anyOf": [
                    schema_ref("SlackConfig"), schema_ref("WebhookConfig"), schema_ref("EmailConfig"),
                    schema_ref("SmsConfig"), schema_ref("PushConfig"), schema_ref("InAppConfig")
                ]
            }),
        ),
        // Answers: the same shapes, but the write-only secrets come back as a `****` mask.
        (
            "EmailSmtpConfigView",
            json!({
                "type": "object",
                "description": "An SMTP relay as answers show it: the password masked.",
                "additionalProperties": false,
                "required": ["provider", "from", "host", "port", "starttls"],
                "properties": {
                    "provider": provider("smtp"),
                    "from": { "type": "string" },
                    "host": { "type": "string" },
                    "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                    "username": maybe_string,
                    "password": { "type": "string", "enum": ["****"], "readOnly": true, "description": "Always `****`, whether a password is set or not." },
                    "starttls": { "type": "boolean" }
                }
            }),
        ),
        (
            "FcmConfigView",
            json!({
                "type": "object",
                "description": "FCM as answers show it: the private key masked.",
                "additionalProperties": false,
                "required": ["provider", "projectId", "clientEmail"],
                "properties": {
                    "provider": provider("fcm"),
                    "projectId": { "type": "string" },
                    "clientEmail": { "type": "string" },
                    "privateKey": { "type": "string", "enum": ["****"], "readOnly": true },
                    "tokenUri": maybe_string
                }
            }),
        ),
        (
            "EmailConfigView",
            json!({
                "description": "An email channel's provider, as answers show it.",
                "oneOf": [schema_ref("EmailSesConfig"), schema_ref("EmailSmtpConfigView"), schema_ref("EmailOutboxConfig")],
                "discriminator": { "propertyName": "provider", "mapping": {
                    "ses": "#/components/schemas/EmailSesConfig",
                    "smtp": "#/components/schemas/EmailSmtpConfigView",
                    "outbox": "#/components/schemas/EmailOutboxConfig"
                } }
            }),
        ),
        (
            "PushConfigView",
            json!({
                "description": "A push channel's provider, as answers show it.",
                "oneOf": [schema_ref("FcmConfigView"), schema_ref("OutboxConfig")],
                "discriminator": { "propertyName": "provider", "mapping": {
                    "fcm": "#/components/schemas/FcmConfigView",
                    "outbox": "#/components/schemas/OutboxConfig"
                } }
            }),
        ),
        (
            "ChannelConfigView",
            json!({
                "description": "A channel's provider configuration as answers show it, by the channel's `kind`: URLs cut to host and last characters, header values, the SMTP password and the FCM private key as `****`, the webhook signing secret as `whsec_****`.",
                "anyOf": [
                    schema_ref("SlackConfig"), schema_ref("WebhookConfig"), schema_ref("EmailConfigView"),
                    schema_ref("SmsConfig"), schema_ref("PushConfigView"), schema_ref("InAppConfig")
                ]
            }),
        ),
    ]
}

/// `POST .../channels` bodies, one per kind, discriminated by `kind`.
fn create_channels() -> Vec<(&'static str, Value)> {
    let variant = |kind: &str, config: &str, required: bool, about: &str| {
        let mut required_fields = vec!["kind", "name"];
        let config_schema = if required {
            required_fields.push("config");
            schema_ref(config)
        } else {
            nullable_ref(config)
        };
        json!({
            "type": "object",
            "description": about,
            "additionalProperties": false,
            "required": required_fields,
            "properties": {
                "kind": { "type": "string", "enum": [kind] },
                "name": { "type": "string", "minLength": 1, "maxLength": 128, "description": "1–128 printable characters." },
                "config": config_schema,
                "frequencyCap": nullable_ref("FrequencyCap"),
                "enabled": { "type": ["boolean", "null"], "description": "Default `true`." }
            }
        })
    };
    let mut mapping = Map::new();
    let variants = [
        (
            "slack",
            "CreateSlackChannel",
            "SlackConfig",
            true,
            "A Slack channel.",
        ),
        (
            "webhook",
            "CreateWebhookChannel",
            "WebhookConfig",
            true,
            "A webhook (generic, Discord or Teams); the answer holds its signing secret, once.",
        ),
        (
            "email",
            "CreateEmailChannel",
            "EmailConfig",
            false,
            "An email channel; without `config`, the deployment's default provider (the outbox of `herald serve`; none on AWS).",
        ),
        (
            "sms",
            "CreateSmsChannel",
            "SmsConfig",
            false,
            "An SMS channel; without `config`, the deployment's default provider.",
        ),
        (
            "push",
            "CreatePushChannel",
            "PushConfig",
            false,
            "A push channel; without `config`, the deployment's default provider.",
        ),
        (
            "in_app",
            "CreateInAppChannel",
            "InAppConfig",
            false,
            "An in-app feed channel.",
        ),
    ];
    let mut out = Vec::new();
    for (kind, name, config, required, about) in variants {
        mapping.insert(
            kind.to_owned(),
            Value::String(format!("#/components/schemas/{name}")),
        );
        out.push((name, variant(kind, config, required, about)));
    }
    out.push((
        "CreateChannel",
        json!({
            "description": "`POST .../notifications/channels` body: its shape is its `kind`.",
            "oneOf": variants.iter().map(|v| schema_ref(v.1)).collect::<Vec<_>>(),
            "discriminator": { "propertyName": "kind", "mapping": mapping }
        }),
    ));
    out
}

fn matcher() -> Vec<(&'static str, Value)> {
    let field = json!({
        "type": "string",
        "pattern": "^(type|module|properties\\..+)$",
        "maxLength": MAX_STRING_CHARS,
        "description": "`type`, `module` or `properties.<path>` (dots between keys, e.g. `properties.user.plan`)"
    });
    let scalar = json!({ "type": ["string", "number", "boolean"] });
    let leaf = |about: &str, ops: &[&str], value: Option<Value>| {
        let mut required = vec!["field", "op"];
        let mut properties = json!({ "field": field, "op": { "type": "string", "enum": ops } });
        if let Some(v) = value {
            properties["value"] = v;
            if ops != ["exists"] {
                required.push("value");
            }
        }
        json!({
            "type": "object",
            "description": about,
            "additionalProperties": false,
            "required": required,
            "properties": properties
        })
    };
    let children = json!({
        "type": "array",
        "items": schema_ref("Matcher")
    });
    vec![
        (
            "Matcher",
            json!({
                "description": format!("A rule's matcher tree: `all`, `any`, `not` over leaves that compare one event field. At most {MAX_DEPTH} levels deep and {MAX_NODES} nodes; an invalid tree is a 422 naming the path of its bad node (`match.all[1].op`)."),
                "oneOf": [
                    schema_ref("MatchAll"), schema_ref("MatchAny"), schema_ref("MatchNot"),
                    schema_ref("MatchEquals"), schema_ref("MatchIn"), schema_ref("MatchText"),
                    schema_ref("MatchCompare"), schema_ref("MatchExists")
                ]
            }),
        ),
        (
            "MatchAll",
            json!({ "type": "object", "description": "Every child matches (an empty list matches every event).", "additionalProperties": false, "required": ["all"], "properties": { "all": children } }),
        ),
        (
            "MatchAny",
            json!({ "type": "object", "description": "At least one child matches (an empty list matches none).", "additionalProperties": false, "required": ["any"], "properties": { "any": children } }),
        ),
        (
            "MatchNot",
            json!({ "type": "object", "description": "The child does not match.", "additionalProperties": false, "required": ["not"], "properties": { "not": schema_ref("Matcher") } }),
        ),
        (
            "MatchEquals",
            leaf(
                "`eq`/`ne`: the field equals (or not) a string, number or boolean; `type` and `module` compare with strings only.",
                &["eq", "ne"],
                Some(scalar.clone()),
            ),
        ),
        (
            "MatchIn",
            leaf(
                "`in`/`nin`: the field is (or is not) one of the values.",
                &["in", "nin"],
                Some(json!({ "type": "array", "maxItems": MAX_IN_ITEMS, "items": scalar })),
            ),
        ),
        (
            "MatchText",
            leaf(
                "`prefix`/`suffix`/`contains` (a substring, or an element of an array property)/`regex` (Rust regex syntax as in the `regex-lite` crate, unanchored: `\\d`, `\\w`, `\\s`, `\\b` and `(?i)` are ASCII-only, Unicode classes such as `\\p{L}` are refused).",
                &["prefix", "suffix", "contains", "regex"],
                Some(json!({ "type": "string", "maxLength": MAX_STRING_CHARS })),
            ),
        ),
        (
            "MatchCompare",
            leaf(
                "`gt`/`gte`/`lt`/`lte`: a numeric property compared with a number (not `type` or `module`).",
                &["gt", "gte", "lt", "lte"],
                Some(json!({ "type": "number" })),
            ),
        ),
        (
            "MatchExists",
            leaf(
                "`exists`: the field is present (`value` `true`, the default) or absent (`false`).",
                &["exists"],
                Some(json!({ "type": "boolean", "default": true })),
            ),
        ),
    ]
}

/// The live feed socket's messages (docs/feeds.md, section 3); referenced by the document's
/// `x-feed-socket`.
fn feed_socket() -> Vec<(&'static str, Value)> {
    vec![
        (
            "FeedSocketServerMessage",
            json!({
                "description": "Server → client, a JSON text frame. `seq` is the user's sequence number after the change; a gap means a missed change: catch up with `GET .../feed?sinceSeq=`.",
                "oneOf": [
                    {
                        "type": "object", "title": "FeedSocketItemMessage",
                        "description": "An item was added (`item.new`) or changed (`item.updated`: read, unread, seen, archived).",
                        "required": ["type", "seq", "item", "badge"],
                        "properties": {
                            "type": { "type": "string", "enum": ["item.new", "item.updated"] },
                            "seq": { "type": "integer", "format": "int64", "minimum": 0 },
                            "item": schema_ref("FeedItem"),
                            "badge": schema_ref("Badge")
                        }
                    },
                    {
                        "type": "object", "title": "FeedSocketBadgeMessage",
                        "description": "The badge alone: on open (herald serve), in answer to `hello`, and after bulk changes.",
                        "required": ["type", "seq", "badge"],
                        "properties": {
                            "type": { "type": "string", "enum": ["badge"] },
                            "seq": { "type": "integer", "format": "int64", "minimum": 0 },
                            "badge": schema_ref("Badge")
                        }
                    },
                    {
                        "type": "object", "title": "FeedSocketPongMessage",
                        "description": "The answer to `ping`.",
                        "required": ["type"],
                        "properties": { "type": { "type": "string", "enum": ["pong"] } }
                    }
                ]
            }),
        ),
        (
            "FeedSocketClientMessage",
            json!({
                "description": "Client → server, a text frame: `{\"type\":\"hello\"}` (answered with a `badge` message) or `{\"type\":\"ping\"}` (answered with `pong`); the bare words `hello` and `ping` mean the same. Anything else is ignored, and the socket stays open.",
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": { "type": { "type": "string", "enum": ["hello", "ping"] } }
                    },
                    { "type": "string", "enum": ["hello", "ping"] }
                ]
            }),
        ),
    ]
}
