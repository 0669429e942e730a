//! Silences (org API key): `POST|GET /notifications/silences`,
//! `GET|PATCH|DELETE /notifications/silences/{id}` under `/api/v1/orgs/{orgId}`.
//!
//! A silence mutes the deliveries it matches — a matcher tree over events (the rules' syntax),
//! and/or rule keys and channel ids — from `startsAt` until `endsAt` (at most 30 days). Muted
//! deliveries are still recorded, `suppressed` with the reason `silenced by <id>`; resolved
//! follow-ups of alerts already notified are never muted. A deleted silence ends now and stays
//! listed as `expired` (docs/alerts.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::silence::{NewSilence, Silence, SilenceState};
use herald_core::domain::{ChannelId, OrgId, RuleKey, SilenceId};
use herald_shared::repo::silences::{self, SilenceError};
use herald_shared::store::keys;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;
use crate::query::QueryParams;

const COLLECTION: &str = "/api/v1/orgs/{orgId}/notifications/silences";
const ITEM: &str = "/api/v1/orgs/{orgId}/notifications/silences/{id}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list_silences).post(create_silence))
        .route(
            ITEM,
            get(get_silence)
                .patch(update_silence)
                .delete(delete_silence),
        )
}

/// `POST .../notifications/silences` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSilence {
    /// A matcher tree over events, as in rules.
    #[serde(rename = "match")]
    #[schema(value_type = Option<Object>)]
    pub matcher: Option<Value>,
    /// Only deliveries of these rules (default: any rule).
    #[serde(default)]
    pub rule_keys: Vec<String>,
    /// Only deliveries to these channels (default: any channel).
    #[serde(default)]
    pub channel_ids: Vec<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<String>,
    /// RFC 3339, required: after `startsAt` and now, at most 30 days after `startsAt`.
    pub ends_at: Option<String>,
    /// Why (1–1024 characters), e.g. a change ticket.
    pub comment: Option<String>,
    /// Who (1–256 characters).
    pub created_by: Option<String>,
}

/// `PATCH .../notifications/silences/{id}` body. Changing what a silence matches means
/// creating a new one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSilence {
    /// RFC 3339: a new end (extend or shorten), at most 30 days after the later of start and now.
    pub ends_at: Option<String>,
    pub comment: Option<String>,
}

/// A silence as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceView {
    pub id: SilenceId,
    pub org_id: OrgId,
    #[serde(rename = "match")]
    #[schema(value_type = Option<Object>)]
    pub matcher: Option<Value>,
    #[schema(value_type = Vec<String>)]
    pub rule_keys: Vec<RuleKey>,
    pub channel_ids: Vec<ChannelId>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: String,
    /// `pending`, `active` or `expired`, as of the answer.
    pub state: SilenceState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SilenceView {
    fn of(s: Silence, now: DateTime<Utc>) -> Self {
        Self {
            state: s.state(now),
            id: s.id,
            org_id: s.org_id,
            matcher: s.matcher.and_then(|m| serde_json::to_value(m).ok()),
            rule_keys: s.rule_keys,
            channel_ids: s.channel_ids,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            comment: s.comment,
            created_by: s.created_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// `{"items", "nextCursor"}` of silences.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceList {
    pub items: Vec<SilenceView>,
    pub next_cursor: Option<String>,
}

/// `?state=`.
#[derive(Debug, Deserialize)]
pub struct StateParam {
    pub state: Option<String>,
}

fn timestamp(value: Option<&str>, field: &str) -> ApiResult<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_field(field, format!("`{v}` is not an RFC 3339 timestamp"))
                })
        })
        .transpose()
}

fn silence_id(raw: &str) -> ApiResult<SilenceId> {
    raw.parse().map_err(|_| ApiError::not_found("silence"))
}

fn write_error(e: SilenceError) -> ApiError {
    match e {
        e @ (SilenceError::TooMany | SilenceError::Expired) => ApiError::conflict(e.to_string()),
        SilenceError::Repo(e) => ApiError::from_repo(e, "silence"),
    }
}

/// Creates a silence.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/silences", tag = "silences",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = CreateSilence,
    responses(
        (status = 201, description = "The new silence", body = SilenceView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 409, description = "The org has 1,000 silences that have not ended", body = ErrorBody),
        (status = 413, description = "Body over 256 KB", body = ErrorBody),
        (status = 422, description = "Missing or out-of-bounds `endsAt`, invalid matcher (with the path of the bad node), unknown rule or channel, a silence of everything", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_silence(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<CreateSilence>,
) -> ApiResult<(StatusCode, Json<SilenceView>)> {
    let now = Utc::now();
    let input = NewSilence {
        matcher: body.matcher,
        rule_keys: body.rule_keys,
        channel_ids: body.channel_ids,
        starts_at: timestamp(body.starts_at.as_deref(), "startsAt")?,
        ends_at: timestamp(body.ends_at.as_deref(), "endsAt")?,
        comment: body.comment,
        created_by: body.created_by,
    };
    let silence = Silence::new(auth.org_id, input, now)?;
    let store = state.store.as_ref();
    for (i, key) in silence.rule_keys.iter().enumerate() {
        if store
            .get(&keys::rule(&auth.org_id, key))
            .await
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Err(ApiError::invalid_field(
                format!("ruleKeys[{i}]"),
                format!("unknown rule `{key}`"),
            ));
        }
    }
    for (i, id) in silence.channel_ids.iter().enumerate() {
        if store
            .get(&keys::channel(&auth.org_id, id))
            .await
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Err(ApiError::invalid_field(
                format!("channelIds[{i}]"),
                format!("unknown channel `{id}`"),
            ));
        }
    }
    silences::create(store, &silence, now)
        .await
        .map_err(write_error)?;
    state.routing.changed(auth.org_id);
    tracing::info!(org_id = %auth.org_id, silence_id = %silence.id, created_by = %silence.created_by, "silence created");
    Ok((StatusCode::CREATED, Json(SilenceView::of(silence, now))))
}

/// Lists the org's silences, oldest first; expired ones stay listed for 30 days after their
/// end.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/silences", tag = "silences",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("state" = Option<String>, Query, description = "Only `pending`, `active` or `expired` ones (a page may then hold fewer than `limit` and still have a next one)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of silences", body = SilenceList),
        (status = 400, description = "Bad state, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_silences(
    State(state): State<AppState>,
    auth: OrgAuth,
    page: ListParams,
    QueryParams(param): QueryParams<StateParam>,
) -> ApiResult<Json<SilenceList>> {
    let wanted = match param.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(SilenceState::parse(s).ok_or_else(|| {
            ApiError::invalid_query(
                "state",
                format!("`{s}` is not one of pending, active, expired"),
            )
        })?),
    };
    let now = Utc::now();
    let page = silences::list(
        state.store.as_ref(),
        auth.org_id,
        wanted,
        page.limit,
        page.cursor,
        now,
    )
    .await
    .map_err(|e| ApiError::from_repo(e, "silence"))?;
    Ok(Json(SilenceList {
        items: page
            .items
            .into_iter()
            .map(|s| SilenceView::of(s, now))
            .collect(),
        next_cursor: page.next.map(|c| c.as_str().to_owned()),
    }))
}

/// Reads a silence.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/silences/{id}", tag = "silences",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("id" = String, Path, description = "Silence id (UUID)")),
    responses(
        (status = 200, description = "The silence", body = SilenceView),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or silence", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_silence(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<SilenceView>> {
    let id = silence_id(&id)?;
    silences::get(state.store.as_ref(), auth.org_id, id)
        .await
        .map_err(|e| ApiError::from_repo(e, "silence"))?
        .map(|v| Json(SilenceView::of(v.silence, Utc::now())))
        .ok_or_else(|| ApiError::not_found("silence"))
}

/// Changes a silence's end or comment.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{orgId}/notifications/silences/{id}", tag = "silences",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("id" = String, Path, description = "Silence id (UUID)")),
    request_body = UpdateSilence,
    responses(
        (status = 200, description = "The silence, changed", body = SilenceView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or silence", body = ErrorBody),
        (status = 409, description = "The silence has ended", body = ErrorBody),
        (status = 422, description = "`endsAt` out of bounds, blank comment", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn update_silence(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateSilence>,
) -> ApiResult<Json<SilenceView>> {
    let id = silence_id(&id)?;
    let ends_at = timestamp(body.ends_at.as_deref(), "endsAt")?;
    let now = Utc::now();
    let mut invalid = None;
    let updated = silences::update(state.store.as_ref(), auth.org_id, id, now, |s| {
        s.update(ends_at, body.comment.clone(), now).map_err(|e| {
            invalid = Some(e);
            SilenceError::Repo(herald_shared::repo::RepoError::NotFound)
        })
    })
    .await;
    if let Some(e) = invalid {
        return Err(e.into());
    }
    let silence = updated
        .map_err(write_error)?
        .ok_or_else(|| ApiError::not_found("silence"))?;
    state.routing.changed(auth.org_id);
    Ok(Json(SilenceView::of(silence, now)))
}

/// Ends a silence now. It stays listed, as expired, for 30 days.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{orgId}/notifications/silences/{id}", tag = "silences",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("id" = String, Path, description = "Silence id (UUID)")),
    responses(
        (status = 200, description = "The silence, expired", body = SilenceView),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or silence", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn delete_silence(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<SilenceView>> {
    let id = silence_id(&id)?;
    let now = Utc::now();
    let store = state.store.as_ref();
    match silences::update(store, auth.org_id, id, now, |s| {
        s.expire(now);
        Ok(())
    })
    .await
    {
        Ok(Some(s)) => {
            state.routing.changed(auth.org_id);
            Ok(Json(SilenceView::of(s, now)))
        }
        Ok(None) => Err(ApiError::not_found("silence")),
        // Already ended: deleting it again answers as it stands.
        Err(SilenceError::Expired) => get_silence_now(store, auth.org_id, id, now).await,
        Err(e) => Err(write_error(e)),
    }
}

async fn get_silence_now(
    store: &dyn herald_shared::store::Store,
    org: OrgId,
    id: SilenceId,
    now: DateTime<Utc>,
) -> ApiResult<Json<SilenceView>> {
    silences::get(store, org, id)
        .await
        .map_err(|e| ApiError::from_repo(e, "silence"))?
        .map(|v| Json(SilenceView::of(v.silence, now)))
        .ok_or_else(|| ApiError::not_found("silence"))
}
