//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json` and checked into the repo as
//! `docs/openapi.json` (a test fails when they differ; `HERALD_UPDATE_OPENAPI=1 cargo test -p
//! herald-api openapi` rewrites the file).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use crate::AppState;
use crate::{
    api_keys, channel_test, channels, error, events, feeds, logs, orgs, outbox, rules, stats,
    tracking, users,
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
        channel_test::test_channel,
        rules::create_rule,
        rules::list_rules,
        rules::get_rule,
        rules::update_rule,
        rules::delete_rule,
        events::post_events,
        logs::list_logs,
        logs::list_channel_logs,
        feeds::create_token,
        feeds::list_feed,
        feeds::mark_item,
        feeds::read_all,
        feeds::seen_all,
        stats::get_stats,
        users::put_user,
        users::get_user,
        users::delete_user,
        outbox::list_outbox,
        tracking::open,
        tracking::click,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "orgs", description = "Organisations (admin key)"),
        (name = "api-keys", description = "API keys of an org (admin key)"),
        (name = "channels", description = "Where notifications go"),
        (name = "rules", description = "Which events go to which channels"),
        (name = "events", description = "Publishing events"),
        (name = "logs", description = "Delivery logs: every delivery and attempt; stats"),
        (name = "users", description = "Recipients: contact points, time zone, opt-outs"),
        (name = "outbox", description = "The local outbox of herald serve"),
        (name = "tracking", description = "Email open and click tracking (signed links, no API key)"),
        (name = "feeds", description = "In-app feeds for end users (feed token). Live updates: the WebSocket \
                                        `GET /api/v1/orgs/{orgId}/feed/socket?token=...`, see docs/feeds.md"),
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

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
