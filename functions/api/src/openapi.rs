//! The OpenAPI 3.1 document of the API, derived here ([`document`]) and checked into the repo as
//! `docs/openapi.json` (a test fails when they differ; `HERALD_UPDATE_OPENAPI=1 cargo test -p
//! herald-api openapi` rewrites the file). `GET /openapi.json` serves the checked-in file
//! ([`served`], compiled in deflated): the derivation — utoipa's builders and the `json!` examples,
//! about 0.8 MiB of the api's Lambda bootstrap — then links only where it is checked (the test)
//! or printed (`herald openapi`). docs/benchmarks.md has the sizes.
//!
//! The derives give paths, parameters and most schemas; [`document`] then adds what they cannot
//! say ([`schemas`]: the event body, channel configs by kind, the matcher tree, the feed socket's
//! messages), closes the enums of path and query parameters, and gives every request body and
//! JSON answer an example ([`examples`]). A client generator runs over the result in the test
//! command (`infra/client-walkthrough.sh`).

mod examples;
mod schemas;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use std::sync::OnceLock;

use crate::AppState;
use crate::error::ApiError;
use crate::{
    alerts, api_keys, channel_test, channels, deliveries, error, event_detail, events, explain,
    feeds, logs, orgs, outbox, recoveries, replay, rules, secret_rotation, silences, stats,
    suppressions, tracking, unsubscribe, users,
};

/// The document's source: every path and schema of the API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Routes platform events to Slack, webhooks, email, SMS, push and in-app feeds.\n\n\
Request bodies are JSON whatever the Content-Type says (`curl -d` works), at most 256 KB (413 beyond). \
Answers are camelCase JSON; a created resource comes back as itself with 201; lists are \
`{\"items\", \"nextCursor\"}` (pass `nextCursor` back as `?cursor=`, `?limit=` 1-100).\n\n\
Errors are `{\"error\":{\"code\",\"message\",\"field\"}}`: 400 `malformed_json` (with line and column), \
400 `invalid_body` (wrong type, missing or unknown field; `field` is its path, e.g. `frequencyCap.perUser`), \
400 `invalid_query` (`limit`, `cursor`), 401 `unauthorized` (missing or unknown key), 404 `not_found` \
(unknown resource, or another org's), 405 `method_not_allowed`, 409 `conflict` (duplicate rule key, \
channel still used by rules), 413 `payload_too_large`, 422 `invalid_field` (well-formed but refused: \
an unknown channel, a bad time zone, an invalid matcher with the path of its bad node, an http URL).\n"
    ),
    servers(
        (url = "http://127.0.0.1:8080", description = "`herald serve` (its default port; `--port`)"),
        (url = "https://{apiId}.execute-api.{region}.amazonaws.com", description = "The AWS stack's API Gateway (its `ApiUrl` output)",
            variables(
                ("apiId" = (default = "abc123defg", description = "The HTTP API's id")),
                ("region" = (default = "eu-west-1", description = "The stack's region")),
            )
        ),
    ),
    paths(
        orgs::create_org,
        orgs::get_org,
        api_keys::create_api_key,
        api_keys::list_api_keys,
        api_keys::revoke_api_key,
        channels::create_channel,
        channels::list_channels,
        channels::get_channel,
        channels::update_channel,
        channels::delete_channel,
        secret_rotation::rotate_secret,
        secret_rotation::expire_previous,
        channel_test::test_channel,
        recoveries::recover_channel,
        recoveries::get_recovery,
        rules::create_rule,
        rules::list_rules,
        rules::get_rule,
        rules::update_rule,
        rules::delete_rule,
        explain::explain_rules,
        replay::replay_rules,
        replay::apply_rules,
        events::post_events,
        alerts::list_alerts,
        alerts::get_alert,
        alerts::acknowledge_alert,
        alerts::resolve_alert,
        silences::create_silence,
        silences::list_silences,
        silences::get_silence,
        silences::update_silence,
        silences::delete_silence,
        event_detail::get_event,
        logs::list_logs,
        logs::list_channel_logs,
        deliveries::get_delivery,
        deliveries::resend_delivery,
        feeds::create_token,
        feeds::list_feed,
        feeds::mark_item,
        feeds::read_all,
        feeds::seen_all,
        stats::get_stats,
        users::put_user,
        users::get_user,
        users::delete_user,
        users::resubscribe,
        suppressions::create_suppression,
        suppressions::list_suppressions,
        suppressions::delete_suppression,
        suppressions::sync_sms_opt_outs,
        outbox::list_outbox,
        tracking::open,
        tracking::click,
        unsubscribe::confirm_page,
        unsubscribe::unsubscribe,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "orgs", description = "Organisations (admin key)"),
        (name = "api-keys", description = "API keys of an org (admin key)"),
        (name = "channels", description = "Where notifications go"),
        (name = "rules", description = "Which events go to which channels"),
        (name = "events", description = "Publishing events"),
        (name = "alerts", description = "Alert instances: events with a dedup key, triggered, acknowledged and resolved (docs/alerts.md)"),
        (name = "silences", description = "Muting matching deliveries for a while, with an audit trail (docs/alerts.md)"),
        (name = "logs", description = "Delivery logs: every delivery and attempt; stats"),
        (name = "users", description = "Recipients: contact points, time zone, opt-outs"),
        (name = "suppressions", description = "Addresses and numbers Herald will not send to: hard bounces, complaints, SMS opt-outs, manual entries (docs/hygiene.md)"),
        (name = "outbox", description = "The local outbox of herald serve"),
        (name = "tracking", description = "Email open and click tracking (signed links, no API key)"),
        (name = "unsubscribe", description = "RFC 8058 one-click unsubscribe from an email's `List-Unsubscribe` link (signed, expiring links, no API key)"),
        (name = "feeds", description = "In-app feeds for end users (feed token). Live updates: the WebSocket \
                                        `GET /api/v1/orgs/{orgId}/feed/socket?token=...` (its messages: \
                                        `x-feed-socket`, `FeedSocketServerMessage`, `FeedSocketClientMessage`; \
                                        docs/feeds.md, section 3). The `<herald-feed>` web widget: `x-feed-widget`."),
    )
)]
pub struct ApiDoc;

#[derive(Debug)]
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                crate::auth::API_KEY_HEADER,
            ))),
        );
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                crate::auth::ADMIN_KEY_HEADER,
            ))),
        );
        // Feed tokens (`hft_...`), minted by `POST .../feeds/tokens`.
        components.add_security_scheme(
            "feedToken",
            SecurityScheme::Http(utoipa::openapi::security::Http::new(
                utoipa::openapi::security::HttpAuthScheme::Bearer,
            )),
        );
    }
}

/// The document as served: the derived one, refined.
pub fn document() -> Value {
    // Serializing the derived document cannot fail: it is maps, strings and numbers.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    refine(&mut doc);
    doc
}

/// Where the derives leave a schema untyped or a parameter open, the real shape; then examples
/// and the feed socket.
fn refine(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for (name, schema) in schemas::components() {
        schemas[name] = schema;
    }
    let nullable = |name: &str| json!({ "oneOf": [{ "type": "null" }, { "$ref": format!("#/components/schemas/{name}") }] });
    schemas["ChannelView"]["properties"]["config"] = json!({
        "$ref": "#/components/schemas/ChannelConfigView",
        "description": "The provider configuration, secrets redacted (`****`, URLs cut to host and last characters)."
    });
    schemas["UpdateChannel"]["properties"]["config"] = json!({
        "description": "Replaces the whole config, of the channel's kind (a webhook keeps its signing secret); `null` resets it to the default provider where there is one.",
        "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/ChannelConfig" }]
    });
    for rule in ["CreateRule", "UpdateRule", "RuleView"] {
        schemas[rule]["properties"]["match"] = nullable("Matcher");
    }
    for silence in ["CreateSilence", "SilenceView"] {
        schemas[silence]["properties"]["match"] = nullable("Matcher");
    }
    schemas["ExplainRequest"]["properties"]["event"] = json!({
        "description": "An event as `POST /events` takes it (one, not a batch). Either this or `eventId`.",
        "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/Event" }]
    });
    schemas["Failure"]["properties"]["expected"] =
        json!({ "description": "The leaf's value: any JSON value." });
    schemas["Failure"]["properties"]["actual"] = json!({
        "description": "The event's value of the field, any JSON value (absent when the field is missing)."
    });

    let events = "/api/v1/orgs/{orgId}/events";
    doc["paths"][events]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({ "$ref": "#/components/schemas/EventsBody" });
    let closed = [
        (
            "/api/v1/orgs/{orgId}/feed/items/{itemId}/{action}",
            "post",
            "action",
            json!({ "type": "string", "enum": ["read", "unread", "seen", "archive"] }),
        ),
        (
            "/api/v1/orgs/{orgId}/feed",
            "get",
            "status",
            json!({ "type": "string", "enum": ["unread", "read", "all"] }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/logs",
            "get",
            "status",
            json!({ "$ref": "#/components/schemas/DeliveryStatus" }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/channels/{id}/logs",
            "get",
            "status",
            json!({ "$ref": "#/components/schemas/DeliveryStatus" }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/logs/stats",
            "get",
            "groupBy",
            json!({ "$ref": "#/components/schemas/GroupBy" }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/alerts",
            "get",
            "state",
            json!({ "$ref": "#/components/schemas/AlertState" }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/silences",
            "get",
            "state",
            json!({ "$ref": "#/components/schemas/SilenceState" }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/suppressions",
            "get",
            "kind",
            json!({ "$ref": "#/components/schemas/SuppressionKind" }),
        ),
        (
            "/api/v1/orgs/{orgId}/notifications/suppressions/{kind}/{address}",
            "delete",
            "kind",
            json!({ "$ref": "#/components/schemas/SuppressionKind" }),
        ),
    ];
    for (path, method, name, schema) in closed {
        if let Some(params) = doc["paths"][path][method]["parameters"].as_array_mut() {
            for p in params.iter_mut().filter(|p| p["name"] == name) {
                p["schema"] = schema.clone();
            }
        }
    }

    add_examples(doc);
    doc["x-feed-socket"] = feed_socket();
    doc["x-feed-widget"] = feed_widget();
    doc["webhooks"]["herald.alert_group"] = json!({
        "post": {
            "summary": "A grouped rule's group message, to a generic webhook channel",
            "description": "Sent at the end of a group's wait, on changes at most once per group interval, and as a repeat while it fires; `[RESOLVED]` once when all its alerts resolve (docs/alerts.md, \"Grouping\").",
            "requestBody": {
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/AlertGroupWebhook" } } }
            },
            "responses": { "2XX": { "description": "Delivered" } }
        }
    });
}

/// An example on every request body and every JSON answer.
fn add_examples(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in operation.values_mut() {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            let has_body = op.get("requestBody").is_some();
            if let Some(media) = op
                .pointer_mut("/requestBody/content/application~1json")
                .and_then(Value::as_object_mut)
            {
                let named: serde_json::Map<String, Value> = examples::requests(&id)
                    .into_iter()
                    .map(|(name, summary, value)| {
                        (
                            name.to_owned(),
                            json!({ "summary": summary, "value": value }),
                        )
                    })
                    .collect();
                if !named.is_empty() {
                    media.insert("examples".to_owned(), Value::Object(named));
                }
            }
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let Some(media) = response
                    .pointer_mut("/content/application~1json")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                let example = if status.starts_with('2') {
                    examples::response(&id)
                } else {
                    Some(examples::error_example(status, has_body, &id))
                };
                if let Some(example) = example {
                    media.insert("example".to_owned(), example);
                }
            }
        }
    }
}

/// The live feed socket, which OpenAPI cannot describe as an operation (docs/feeds.md, section 3).
fn feed_socket() -> Value {
    json!({
        "description": "The live feed: a WebSocket per user. On `herald serve`: `ws://<host>/api/v1/orgs/{orgId}/feed/socket?token=<feed token>`; on AWS: the stack's `WebSocketUrl` output (`wss://<api>.execute-api.<region>.amazonaws.com/live`) + `?token=<feed token>`. Browsers connect from an allowed origin (`HERALD_FEED_ALLOWED_ORIGINS`; on herald serve also its own); a refused connect is a 401 (token) or 403 (origin) on the upgrade. Keep-alive: send `ping` every 25–60 s; without a `pong` within 10 s the socket is dead. Close code 4401: the token expired, mint a new one and reconnect. A client's close frame is answered with the same code. See docs/feeds.md for the client algorithm (seq, catch-up with `GET .../feed?sinceSeq=`).",
        "paths": {
            "herald serve": "/api/v1/orgs/{orgId}/feed/socket?token={token}",
            "aws": "{WebSocketUrl}?token={token}"
        },
        "serverMessages": { "$ref": "#/components/schemas/FeedSocketServerMessage" },
        "clientMessages": { "$ref": "#/components/schemas/FeedSocketClientMessage" },
        "closeCodes": { "1000": "normal close (echoing the client's code)", "4401": "the token expired or is invalid: get a new one and reconnect" },
        "examples": [
            { "direction": "client", "message": { "type": "hello" } },
            { "direction": "server", "message": { "type": "badge", "seq": 8, "badge": { "unread": 3, "unseen": 3 } } },
            { "direction": "server", "message": { "type": "item.new", "seq": 9, "item": { "id": "019ac5b2-7c1e-7d4a-9b0f-2f6f4f1e8a11", "title": "Invoice paid", "body": "Invoice #1042 was paid.", "url": "https://app.example.com/invoices/1042", "eventType": "invoice.paid", "data": { "amount": 120 }, "createdAt": "2026-11-27T13:30:00Z", "readAt": null, "seenAt": null, "archivedAt": null, "seq": 9 }, "badge": { "unread": 4, "unseen": 4 } } },
            { "direction": "client", "message": "ping" },
            { "direction": "server", "message": { "type": "pong" } }
        ]
    })
}

/// The `<herald-feed>` web widget served beside the API (docs/feeds.md).
fn feed_widget() -> Value {
    json!({
        "description": "A bell with the unread badge and a list, as a custom element without dependencies: `<script src=\"https://<api host>/widget/herald-feed.js\" defer></script>` and `<herald-feed api-base=\"https://<api host>\" org-id=\"<orgId>\" token=\"<feed token>\" socket-url=\"<WebSocketUrl, on AWS>\"></herald-feed>`. It lists the feed, keeps the badge live over the socket (reconnect and catch-up), marks items read, follows `prefers-color-scheme` (or `theme=\"light|dark\"`), takes CSS variables (`--herald-accent`, ...) and fits a 320 px screen. Events: `herald-feed:update`, `herald-feed:connection`, `herald-feed:token-expired`, `herald-feed:item-click`. `herald serve` also serves a demo page, `GET /demo/feed?orgId=<orgId>&token=<feed token>` (its banner prints a link for the user `demo-user`). See docs/feeds.md, section 5.",
        "script": "/widget/herald-feed.js",
        "demo": "/demo/feed"
    })
}

/// `docs/openapi.json`, which the test keeps equal to [`document`], without its indentation and
/// deflated (build.rs): 40 KB of the bootstrap instead of 220.
const DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.deflate"));

/// The document as served, inflated from [`DEFLATED`] on the first call (about 1 ms).
pub fn served() -> Result<&'static str, ApiError> {
    static INFLATED: OnceLock<String> = OnceLock::new();
    if let Some(document) = INFLATED.get() {
        return Ok(document);
    }
    let bytes = miniz_oxide::inflate::decompress_to_vec(DEFLATED).map_err(ApiError::internal)?;
    let text = String::from_utf8(bytes).map_err(ApiError::internal)?;
    Ok(INFLATED.get_or_init(|| text))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Result<impl IntoResponse, ApiError> {
    Ok(([(CONTENT_TYPE, "application/json")], served()?))
}
