//! In-app feeds, end-user side (SPEC §2 "Feeds"), under `/api/v1/orgs/{orgId}`:
//!
//! - `POST /feeds/tokens {userId, ttlSeconds?}` (org API key; the customer's backend) →
//!   `{token, expiresAt}`: a signed token for one user, 1 h by default, at most 24 h;
//! - with `Authorization: Bearer <token>` (browsers and apps; CORS for the configured origins):
//!   `GET /feed`, `POST /feed/items/{itemId}/read|unread|seen|archive`, `POST /feed/read-all`,
//!   `POST /feed/seen-all`;
//! - `GET /feed/socket?token=` — the live WebSocket where the notifier holds connections in
//!   process (`herald serve`); on AWS the WebSocket API and its feed-socket function serve it.
//!
//! Plus the web widget (`GET /widget/herald-feed.js`) and its demo page (`GET /demo/feed`).
//! Every change is pushed through the [`FeedNotifier`] so the user's other tabs and devices
//! follow. Tokens never reach a log line: the router's request spans carry the path only.

use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::FeedItemId;
use herald_core::domain::delivery::{Engagement, EngagementKind};
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::{self, Badge, ClientMessage, FeedItem, FeedMessage, FeedToken, TokenError};
use herald_shared::feed::{FeedNotifier, FeedSubscription};
use herald_shared::repo::deliveries;
use herald_shared::repo::feeds::{FeedPage, ListFilter, Mark, ReadFilter};
use herald_shared::repo::{DEFAULT_PAGE, Feeds, MAX_PAGE};
use herald_shared::store::Cursor;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};

/// The widget script, served as is.
pub const WIDGET_JS: &str = include_str!("../assets/herald-feed.js");
/// The demo page: loads the widget with `?orgId=&token=` from its own address.
pub const DEMO_HTML: &str = include_str!("../assets/demo-feed.html");

/// How often the server pings an idle socket, and how long it waits for any frame back before
/// it closes the connection as dead.
const PING_EVERY: Duration = Duration::from_secs(25);
const DEAD_AFTER: Duration = Duration::from_secs(70);
/// How long answering a client's close frame may take before the connection is dropped.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
/// Close code sent when the socket's token expires: the client reconnects with a fresh token.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4401;

/// The feed routes, the widget and the demo page. CORS applies to the token-authenticated feed
/// paths only: the token endpoint is for servers (it takes the org API key), and the socket
/// checks `Origin` itself.
pub fn router(state: &AppState) -> Router<AppState> {
    let origins: Vec<HeaderValue> = state
        .config
        .feed_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    let browser = Router::new()
        // `OPTIONS` must match the route for the CORS layer to answer preflights (the API's
        // method-not-allowed fallback would answer them first); the layer never lets it through.
        .route(
            "/api/v1/orgs/{orgId}/feed",
            get(list_feed).options(preflight),
        )
        .route(
            "/api/v1/orgs/{orgId}/feed/items/{itemId}/{action}",
            post(mark_item).options(preflight),
        )
        .route(
            "/api/v1/orgs/{orgId}/feed/read-all",
            post(read_all).options(preflight),
        )
        .route(
            "/api/v1/orgs/{orgId}/feed/seen-all",
            post(seen_all).options(preflight),
        )
        .layer(cors);
    Router::new()
        .route("/api/v1/orgs/{orgId}/feeds/tokens", post(create_token))
        .route("/api/v1/orgs/{orgId}/feed/socket", get(socket))
        .route("/widget/herald-feed.js", get(widget))
        .route("/demo/feed", get(demo))
        .merge(browser)
}

/// A preflight from an origin that is not allowed: answered without CORS headers.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

// ---- types ------------------------------------------------------------------------------------

/// `POST .../feeds/tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFeedToken {
    /// The customer's id of the user (1–128 printable characters).
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Lifetime in seconds, 1–86400 (default 3600).
    pub ttl_seconds: Option<i64>,
}

/// A new feed token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedTokenView {
    /// `hft_...`: send as `Authorization: Bearer <token>`, or `?token=` on the socket.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// A page of the feed with the user's badge and sequence number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedList {
    /// Newest first; with `sinceSeq`, oldest change first.
    pub items: Vec<FeedItem>,
    pub badge: Badge,
    pub next_cursor: Option<String>,
    /// The user's sequence number when the page was read.
    pub seq: u64,
}

impl From<FeedPage> for FeedList {
    fn from(p: FeedPage) -> Self {
        Self {
            items: p.items,
            badge: p.badge,
            next_cursor: p.next.map(|c| c.as_str().to_owned()),
            seq: p.seq,
        }
    }
}

/// The answer to a mark: the item as it is now, the badge and the seq.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarkResult {
    pub item: FeedItem,
    pub badge: Badge,
    pub seq: u64,
    /// `false` when the item already was in that state (nothing written, nothing pushed).
    pub changed: bool,
}

/// The answer to read-all / seen-all.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    pub badge: Badge,
    pub seq: u64,
    /// How many transactions (each one seq) the change took; 0 when nothing needed it.
    pub changes: usize,
}

// ---- auth -------------------------------------------------------------------------------------

fn secret(state: &AppState) -> ApiResult<&feed::FeedTokenSecret> {
    state.config.feed_token_secret.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::FeedsDisabled,
            "feeds are not configured on this deployment (no feed token secret)",
        )
    })
}

fn token_error(e: TokenError) -> ApiError {
    let message = match e {
        TokenError::Expired => "the feed token has expired: get a new one from your backend",
        TokenError::WrongOrg => "the feed token is for another org",
        _ => "invalid feed token",
    };
    ApiError::unauthorized(message).field("authorization")
}

/// A request authenticated with a feed token of the path's org: one user's feed.
#[derive(Debug, Clone)]
pub struct FeedUser {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
}

fn path_org(parts: &Parts) -> ApiResult<OrgId> {
    // `/api/v1/orgs/{orgId}/...`: the fifth segment.
    parts
        .uri
        .path()
        .split('/')
        .nth(4)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::not_found("org"))
}

fn verify(state: &AppState, token: &str, org: &OrgId) -> ApiResult<FeedUser> {
    let t =
        FeedToken::verify_for_org(token, secret(state)?, org, Utc::now()).map_err(token_error)?;
    Ok(FeedUser {
        org_id: t.org_id,
        user_id: t.user_id,
        expires_at: t.expires_at,
    })
}

impl FromRequestParts<AppState> for FeedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let org = path_org(parts)?;
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("missing feed token: send `Authorization: Bearer <token>`")
                    .field("authorization")
            })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                    .field("authorization")
            })?;
        verify(state, token, &org)
    }
}

// ---- handlers ---------------------------------------------------------------------------------

/// Mints a feed token for one user (call it from your backend, never from a browser).
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/feeds/tokens", tag = "feeds",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = CreateFeedToken,
    responses(
        (status = 200, description = "The token", body = FeedTokenView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "Another org's path", body = ErrorBody),
        (status = 422, description = "ttlSeconds out of range", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<CreateFeedToken>,
) -> ApiResult<Json<FeedTokenView>> {
    let secret = secret(&state)?;
    let ttl = match body.ttl_seconds {
        None => feed::token::DEFAULT_TTL,
        Some(s) if (1..=feed::token::MAX_TTL.num_seconds()).contains(&s) => {
            chrono::Duration::seconds(s)
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "ttlSeconds",
                "must be from 1 to 86400 seconds",
            ));
        }
    };
    let token = FeedToken::new(auth.org_id, body.user_id, Utc::now(), ttl)
        .map_err(|_| ApiError::invalid_field("ttlSeconds", "must be from 1 to 86400 seconds"))?;
    Ok(Json(FeedTokenView {
        token: token.sign(secret),
        expires_at: token.expires_at,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
    archived: Option<String>,
    since_seq: Option<String>,
}

/// The user's feed: newest first, filtered; or, with `sinceSeq`, what changed after that seq.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/feed", tag = "feeds",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("status" = Option<String>, Query, description = "`unread`, `read` or `all` (default)"),
        ("archived" = Option<bool>, Query, description = "`true`: archived items only; default `false`: the others"),
        ("sinceSeq" = Option<u64>, Query, description = "Items changed after this seq (any state, archived included), oldest change first"),
    ),
    responses(
        (status = 200, description = "A page of the feed", body = FeedList),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired feed token", body = ErrorBody),
    ),
    security(("feedToken" = []))
)]
pub async fn list_feed(
    State(state): State<AppState>,
    user: FeedUser,
    parts: Parts,
) -> ApiResult<Json<FeedList>> {
    let raw: RawListQuery = crate::query::parse(&parts)?;
    let limit = match raw.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_PAGE,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_query(
                    "limit",
                    format!("limit must be an integer from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let cursor = match raw.cursor.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Cursor::parse(s).map_err(|_| {
            ApiError::invalid_query(
                "cursor",
                "invalid pagination cursor: pass `nextCursor` from the previous page unchanged",
            )
        })?),
    };
    let feeds = Feeds::new(state.store.as_ref());
    let repo_err = |e| ApiError::from_repo(e, "feed item");
    if let Some(s) = raw.since_seq.as_deref().filter(|s| !s.is_empty()) {
        let seq = s.parse::<u64>().map_err(|_| {
            ApiError::invalid_query("sinceSeq", "sinceSeq must be a non-negative integer")
        })?;
        let page = feeds
            .since_seq(&user.org_id, &user.user_id, seq, limit, cursor)
            .await
            .map_err(repo_err)?;
        return Ok(Json(page.into()));
    }
    let status = match raw.status.as_deref().unwrap_or("all") {
        "all" | "" => ReadFilter::All,
        "unread" => ReadFilter::Unread,
        "read" => ReadFilter::Read,
        _ => {
            return Err(ApiError::invalid_query(
                "status",
                "status must be unread, read or all",
            ));
        }
    };
    let archived = match raw.archived.as_deref().unwrap_or("false") {
        "false" | "" => false,
        "true" => true,
        _ => {
            return Err(ApiError::invalid_query(
                "archived",
                "archived must be true or false",
            ));
        }
    };
    let page = feeds
        .list(
            &user.org_id,
            &user.user_id,
            ListFilter {
                status,
                archived,
                limit,
                cursor,
            },
        )
        .await
        .map_err(repo_err)?;
    Ok(Json(page.into()))
}

/// Pushes `message` to the user's connections; a failed push is logged, never the caller's
/// problem (clients catch up by seq).
async fn publish(notifier: &dyn FeedNotifier, user: &FeedUser, message: &FeedMessage) {
    if let Err(e) = notifier.notify(&user.org_id, &user.user_id, message).await {
        tracing::warn!(org_id = %user.org_id, error = %e, "feed push failed");
    }
}

/// Records the read on the delivery behind an item (the `read` engagement of the delivery log
/// and stats). The mark stands whatever happens here: a failure is logged.
async fn record_read(state: &AppState, user: &FeedUser, item: &FeedItem) {
    let engagement = Engagement {
        kind: EngagementKind::Read,
        at: item.read_at.unwrap_or_else(Utc::now),
        url: None,
    };
    let delivery = item.id.delivery_id();
    if let Err(e) =
        deliveries::record_engagement(state.store.as_ref(), user.org_id, delivery, engagement).await
    {
        tracing::warn!(org_id = %user.org_id, delivery_id = %delivery, error = %e, "read not recorded on the delivery");
    }
}

/// Marks one item `read`, `unread`, `seen` or `archive`(d).
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/feed/items/{itemId}/{action}", tag = "feeds",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("itemId" = String, Path, description = "Feed item id (UUID)"),
        ("action" = String, Path, description = "`read`, `unread`, `seen` or `archive`"),
    ),
    responses(
        (status = 200, description = "The item after the mark, with the badge", body = MarkResult),
        (status = 401, description = "Missing, invalid or expired feed token", body = ErrorBody),
        (status = 404, description = "No such item in this user's feed, or no such action", body = ErrorBody),
        (status = 409, description = "Too many concurrent changes; retry", body = ErrorBody),
    ),
    security(("feedToken" = []))
)]
pub async fn mark_item(
    State(state): State<AppState>,
    user: FeedUser,
    Path((_, item_id, action)): Path<(String, String, String)>,
) -> ApiResult<Json<MarkResult>> {
    let mark = match action.as_str() {
        "read" => Mark::Read,
        "unread" => Mark::Unread,
        "seen" => Mark::Seen,
        "archive" => Mark::Archive,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such path: the action is read, unread, seen or archive",
            ));
        }
    };
    let id: FeedItemId = item_id
        .parse()
        .map_err(|_| ApiError::not_found("feed item"))?;
    let feeds = Feeds::new(state.store.as_ref());
    let repo_err = |e| ApiError::from_repo(e, "feed item");
    match feeds
        .mark(&user.org_id, &user.user_id, &id, mark, Utc::now())
        .await
        .map_err(repo_err)?
    {
        Some(change) => {
            let item = change
                .item
                .ok_or_else(|| ApiError::not_found("feed item"))?;
            if mark == Mark::Read {
                record_read(&state, &user, &item).await;
            }
            publish(
                state.feeds.as_ref(),
                &user,
                &FeedMessage::item_updated(item.clone(), change.badge, change.seq),
            )
            .await;
            Ok(Json(MarkResult {
                item,
                badge: change.badge,
                seq: change.seq,
                changed: true,
            }))
        }
        None => {
            let item = feeds
                .get(&user.org_id, &user.user_id, &id)
                .await
                .map_err(repo_err)?
                .ok_or_else(|| ApiError::not_found("feed item"))?;
            let (badge, seq) = feeds
                .badge(&user.org_id, &user.user_id)
                .await
                .map_err(repo_err)?;
            Ok(Json(MarkResult {
                item,
                badge,
                seq,
                changed: false,
            }))
        }
    }
}

async fn mark_all(state: &AppState, user: &FeedUser, mark: Mark) -> ApiResult<Json<BulkResult>> {
    let feeds = Feeds::new(state.store.as_ref());
    let repo_err = |e| ApiError::from_repo(e, "feed");
    let changes = feeds
        .mark_all(&user.org_id, &user.user_id, mark, Utc::now())
        .await
        .map_err(repo_err)?;
    for change in &changes {
        publish(
            state.feeds.as_ref(),
            user,
            &FeedMessage::badge(change.badge, change.seq),
        )
        .await;
        if let (Mark::Read, Some(item)) = (mark, &change.item) {
            record_read(state, user, item).await;
        }
    }
    let (badge, seq) = match changes.last() {
        Some(c) => (c.badge, c.seq),
        None => feeds
            .badge(&user.org_id, &user.user_id)
            .await
            .map_err(repo_err)?,
    };
    Ok(Json(BulkResult {
        badge,
        seq,
        changes: changes.len(),
    }))
}

/// Marks every item read (in batches of 25 items, one seq each).
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/feed/read-all", tag = "feeds",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    responses(
        (status = 200, description = "The badge after", body = BulkResult),
        (status = 401, description = "Missing, invalid or expired feed token", body = ErrorBody),
    ),
    security(("feedToken" = []))
)]
pub async fn read_all(
    State(state): State<AppState>,
    user: FeedUser,
) -> ApiResult<Json<BulkResult>> {
    mark_all(&state, &user, Mark::Read).await
}

/// Marks every item seen (the list was opened): the unseen count drops to zero.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/feed/seen-all", tag = "feeds",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    responses(
        (status = 200, description = "The badge after", body = BulkResult),
        (status = 401, description = "Missing, invalid or expired feed token", body = ErrorBody),
    ),
    security(("feedToken" = []))
)]
pub async fn seen_all(
    State(state): State<AppState>,
    user: FeedUser,
) -> ApiResult<Json<BulkResult>> {
    mark_all(&state, &user, Mark::Seen).await
}

// ---- socket -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct SocketQuery {
    token: Option<String>,
}

/// Whether the request's `Origin` may open the socket: a configured origin, or the API's own
/// (the demo page). Native apps send no `Origin`; their token is the credential.
fn socket_origin_allowed(parts: &Parts, allowed: &[String]) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if feed::origin_allowed(origin, allowed) {
        return true;
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    !host.is_empty()
        && (origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}")))
}

/// The live feed: `GET .../feed/socket?token=<feed token>` (WebSocket). On open: a `badge`
/// message with the current seq; then every change as it happens. Answers a [`ClientMessage`]
/// as the AWS socket does (`ping` → `pong`, `hello` → the badge); pings idle clients; closes
/// with 4401 when the token expires.
pub async fn socket(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    parts: Parts,
) -> Response {
    match open_socket(state, parts, upgrade).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open_socket(
    state: AppState,
    parts: Parts,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let org = path_org(&parts)?;
    if !socket_origin_allowed(&parts, &state.config.feed_allowed_origins) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OriginNotAllowed,
            "this Origin may not open the feed socket",
        ));
    }
    let Query(q) = Query::<SocketQuery>::try_from_uri(&parts.uri)
        .map_err(|_| ApiError::invalid_query("token", "invalid query string"))?;
    let token = q.token.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::unauthorized("missing feed token: `?token=<token>`").field("token")
    })?;
    let user = verify(&state, &token, &org)?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            e.status(),
            ErrorCode::WebsocketRequired,
            "this path takes a WebSocket upgrade",
        )
    })?;
    // Subscribe before reading the state: a change between the two arrives as a message and
    // is never lost between snapshot and stream.
    let subscription = state
        .feeds
        .subscribe(&user.org_id, &user.user_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "the live feed is served by the WebSocket API on this deployment",
            )
        })?;
    let (badge, seq) = Feeds::new(state.store.as_ref())
        .badge(&user.org_id, &user.user_id)
        .await
        .map_err(|e| ApiError::from_repo(e, "feed"))?;
    tracing::info!(org_id = %user.org_id, "feed socket opened");
    // Clients send only `ping` and `hello`; small buffers keep thousands of idle sockets cheap.
    let upgrade = upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(16 * 1024)
        .max_frame_size(16 * 1024);
    Ok(upgrade.on_upgrade(move |ws| {
        run_socket(
            ws,
            state,
            user,
            subscription,
            FeedMessage::badge(badge, seq),
        )
    }))
}

async fn run_socket(
    mut ws: WebSocket,
    state: AppState,
    user: FeedUser,
    mut sub: FeedSubscription,
    hello: FeedMessage,
) {
    if ws
        .send(Message::Text(hello.to_json().into()))
        .await
        .is_err()
    {
        return;
    }
    let expires_in = (user.expires_at - Utc::now()).to_std().unwrap_or_default();
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            message = sub.recv() => {
                let message = match message {
                    Ok(m) => m.to_json(),
                    // Too slow: messages were dropped. Send the current state; its seq jumps,
                    // and the client catches up with `sinceSeq`.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        match Feeds::new(state.store.as_ref()).badge(&user.org_id, &user.user_id).await {
                            Ok((badge, seq)) => FeedMessage::badge(badge, seq).to_json(),
                            Err(_) => break,
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if ws.send(Message::Text(message.into())).await.is_err() {
                    break;
                }
            }
            incoming = ws.recv() => {
                last_heard = tokio::time::Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let Some(message) = ClientMessage::parse(text.as_str()) else {
                            continue;
                        };
                        let current = match message {
                            ClientMessage::Hello => match Feeds::new(state.store.as_ref()).badge(&user.org_id, &user.user_id).await {
                                Ok(current) => Some(current),
                                Err(_) => break,
                            },
                            ClientMessage::Ping => None,
                        };
                        let Some(reply) = message.answer(current) else {
                            continue;
                        };
                        if ws.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                    // The client closes: tungstenite queues the answering close frame (the
                    // client's code echoed) but writes it only on the next read or flush.
                    // Dropping the socket now would leave the browser with 1006 (no close
                    // frame); reading once more sends the answer and ends the stream, so the
                    // closing handshake completes with the client's own code.
                    Some(Ok(Message::Close(_))) => {
                        let _ = tokio::time::timeout(CLOSE_WITHIN, ws.recv()).await;
                        break;
                    }
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER || ws.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            () = &mut expiry => {
                let frame = CloseFrame { code: CLOSE_TOKEN_EXPIRED, reason: "token expired".into() };
                let _ = ws.send(Message::Close(Some(frame))).await;
                break;
            }
        }
    }
    tracing::info!(org_id = %user.org_id, "feed socket closed");
}

// ---- widget -----------------------------------------------------------------------------------

async fn widget() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        WIDGET_JS,
    )
}

/// The demo page is static: it reads `orgId` and `token` from its own address in the browser,
/// so nothing from the query string is ever written into the HTML.
async fn demo() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(DEMO_HTML),
    )
}
