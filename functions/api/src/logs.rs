//! Delivery logs (org API key): `GET /notifications/logs` and the per-channel dispatch log
//! `GET /notifications/channels/{id}/logs` under `/api/v1/orgs/{orgId}`. One row per delivery,
//! newest first, each with every attempt (status code, error class, truncated response body,
//! latency) — the answer to "did we get paged for X?".

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration, Utc};
use herald_core::domain::ChannelId;
use herald_core::domain::delivery::{Delivery, DeliveryStatus};
use herald_shared::repo::Channels;
use herald_shared::repo::deliveries::{self, LogFilter};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::dates::instant;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;

const ORG_LOGS: &str = "/api/v1/orgs/{orgId}/notifications/logs";
const CHANNEL_LOGS: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}/logs";
/// The longest span one query covers, as for stats.
pub const MAX_DAYS: i64 = crate::stats::MAX_DAYS;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ORG_LOGS, get(list_logs))
        .route(CHANNEL_LOGS, get(list_channel_logs))
}

/// One page of the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    rule_key: Option<String>,
    channel_id: Option<String>,
    recipient: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The log's filters from the query string, each checked.
#[derive(Debug, Clone)]
pub struct Filter(pub LogFilter);

impl<S: Send + Sync> FromRequestParts<S> for Filter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw: RawFilter = crate::query::parse(parts)?;
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let channel_id = match non_empty(raw.channel_id) {
            None => None,
            Some(id) => Some(id.parse::<ChannelId>().map_err(|_| {
                ApiError::invalid_query("channelId", format!("`{id}` is not a channel id (UUID)"))
            })?),
        };
        let status = match non_empty(raw.status) {
            None => None,
            Some(s) => Some(serde_json::from_value::<DeliveryStatus>(serde_json::Value::String(s.clone())).map_err(|_| {
                ApiError::invalid_query(
                    "status",
                    format!("`{s}` is not a status: one of queued, deferred, suppressed, sent, delivered, failed"),
                )
            })?),
        };
        let from = non_empty(raw.from)
            .map(|v| instant(&v, "from"))
            .transpose()?;
        let to = non_empty(raw.to).map(|v| instant(&v, "to")).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ApiError::invalid_query("from", "`from` is after `to`"));
        }
        if let Some(f) = from {
            let upper = to.unwrap_or_else(Utc::now);
            if upper.signed_duration_since(f) > Duration::days(MAX_DAYS) {
                return Err(ApiError::invalid_query(
                    "from",
                    format!("at most {MAX_DAYS} days per query: narrow `from`–`to`"),
                ));
            }
        }
        Ok(Self(LogFilter {
            rule_key: non_empty(raw.rule_key),
            channel_id,
            recipient: non_empty(raw.recipient),
            status,
            from,
            to,
        }))
    }
}

/// Lists deliveries, newest first.
///
/// Filters: `ruleKey`, `channelId`, `recipient` (user id), `status`, `from`/`to` (RFC 3339 or a
/// date from 1970 to 9999; default: the 30 days before `to`, which defaults to now). A query
/// spans at most 366 days (400 on `from` beyond, as stats). A page reads a bounded number of rows and day
/// partitions: a rare filter can answer a short (even empty) page with a `nextCursor` to go on.
#[utoipa::path(
    get, path = ORG_LOGS, tag = "logs",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("ruleKey" = Option<String>, Query, description = "Only this rule's deliveries"),
        ("channelId" = Option<String>, Query, description = "Only this channel's deliveries"),
        ("recipient" = Option<String>, Query, description = "Only deliveries to this user id"),
        ("status" = Option<String>, Query, description = "queued, deferred, suppressed, sent, delivered or failed"),
        ("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (its start, UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (exclusive)"),
        ("limit" = Option<usize>, Query, description = "1–100, default 50"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Deliveries with their attempts", body = LogPage),
        (status = 400, description = "Bad filter or cursor, or `from`–`to` over 366 days", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_logs(
    State(state): State<AppState>,
    auth: OrgAuth,
    Filter(filter): Filter,
    page: ListParams,
) -> ApiResult<Json<LogPage>> {
    read(&state, auth, &filter, page).await
}

/// The per-channel dispatch log: the same rows, for one channel.
#[utoipa::path(
    get, path = CHANNEL_LOGS, tag = "logs",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("id" = String, Path, description = "Channel id"),
        ("ruleKey" = Option<String>, Query, description = "Only this rule's deliveries"),
        ("status" = Option<String>, Query, description = "queued, deferred, suppressed, sent, delivered or failed"),
        ("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (exclusive)"),
        ("limit" = Option<usize>, Query, description = "1–100, default 50"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The channel's deliveries with their attempts", body = LogPage),
        (status = 400, description = "Bad filter or cursor, or `from`–`to` over 366 days", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_channel_logs(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    Filter(mut filter): Filter,
    page: ListParams,
) -> ApiResult<Json<LogPage>> {
    let id: ChannelId = id.parse().map_err(|_| ApiError::not_found("channel"))?;
    Channels::new(state.store.as_ref())
        .get(&auth.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    filter.channel_id = Some(id);
    read(&state, auth, &filter, page).await
}

async fn read(
    state: &AppState,
    auth: OrgAuth,
    filter: &LogFilter,
    page: ListParams,
) -> ApiResult<Json<LogPage>> {
    let found = deliveries::list(
        state.store.as_ref(),
        auth.org_id,
        filter,
        page.limit,
        page.cursor,
        Utc::now(),
    )
    .await
    .map_err(|e| match e {
        herald_shared::store::StoreError::BadCursor => ApiError::invalid_query(
            "cursor",
            "invalid pagination cursor: pass `nextCursor` from the previous page unchanged",
        ),
        e => ApiError::internal(e),
    })?;
    Ok(Json(LogPage {
        items: found.items,
        next_cursor: found.next.map(|c| c.as_str().to_owned()),
    }))
}
