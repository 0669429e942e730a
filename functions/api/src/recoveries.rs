//! Recover (org API key): `POST /notifications/channels/{id}/recover {since, until?}` re-queues
//! the channel's `failed` deliveries created in `[since, until)`, oldest first, through the
//! normal retry path; `GET /notifications/channels/{id}/recover/{recoveryId}` shows its progress.
//!
//! The call checks the window and the channel, records the recovery (at most one running per
//! channel) and sends its first `recoverPage` message to the dispatch queue; the dispatcher
//! handles the pages (100 rows of the channel log each, see `docs/operator-tools.md`), so a
//! recovery survives a restart of `herald serve` or of a Lambda.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::recovery::{MAX_REQUEUED, Recovery, RecoveryState, RecoveryWindow};
use herald_core::domain::{ChannelId, OrgId, RecoveryId};
use herald_shared::pipeline::RecoverPage;
use herald_shared::repo::Channels;
use herald_shared::repo::recoveries::{self, Started};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::{self, Idempotent};

const RECOVER: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}/recover";
const ONE: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}/recover/{recoveryId}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(RECOVER, post(recover_channel))
        .route(ONE, get(get_recovery))
}

/// What to recover.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoverRequest {
    /// Deliveries created at or after this instant (RFC 3339), at most 14 days (+5 minutes) ago.
    pub since: DateTime<Utc>,
    /// ... and before this one (RFC 3339; default: up to now). Not before `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

fn channel_id(raw: &str) -> ApiResult<ChannelId> {
    raw.parse().map_err(|_| ApiError::not_found("channel"))
}

/// Recovers a channel: re-queues its `failed` deliveries of a window.
///
/// Oldest first, through the normal retry path: each recovered delivery keeps its id (the same
/// `webhook-id`) and gets a fresh attempt budget counted from the recovery; its attempts are
/// logged `trigger: scheduled`. At most 10,000 deliveries per call: beyond, the recovery ends
/// `truncated` with `resumeSince`, the `since` of the next call. One recovery per channel at a
/// time. With an `Idempotency-Key` header, a repeat within 24 h answers the first answer again
/// (`Idempotent-Replayed: true`) and recovers nothing more.
#[utoipa::path(
    post, path = RECOVER, tag = "channels",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("id" = String, Path, description = "Channel id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 printable characters: a repeat of the same request within 24 h answers the stored answer"),
    ),
    request_body = RecoverRequest,
    responses(
        (status = 202, description = "The recovery has started; read it for its progress", body = Recovery,
            headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored answer of an earlier request with the same `Idempotency-Key`"))),
        (status = 400, description = "Malformed JSON, a body of the wrong shape (`since` missing or not RFC 3339, an unknown field), or a bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such channel in this org (or it was deleted)", body = ErrorBody),
        (status = 409, description = "`recovery_running` (another recovery of this channel is running; the message names it), `channel_disabled`, or `idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `since` more than 14 days ago or in the future, `until` before `since`; or `idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`dispatch_unavailable`: the dispatch queue did not take the recovery; nothing was re-queued, retry", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn recover_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RecoverRequest>,
) -> ApiResult<Idempotent<Recovery>> {
    // The request as parsed, so the same window written differently is the same request.
    let canonical = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let request =
        idempotency::Request::new(&headers, "POST", &format!("recover/{id}"), &canonical)?;
    idempotency::run(&state, auth.org_id, request, StatusCode::ACCEPTED, || {
        recover_once(&state, auth.org_id, &id, body)
    })
    .await
}

#[tracing::instrument(skip(state), fields(org_id = %org))]
async fn recover_once(
    state: &AppState,
    org: OrgId,
    id: &str,
    body: RecoverRequest,
) -> ApiResult<Recovery> {
    let store = state.store.as_ref();
    let channel_id = channel_id(id)?;
    let channel = Channels::new(store)
        .get(&org, &channel_id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let now = Utc::now();
    let window = RecoveryWindow::new(body.since, body.until, now)?;
    if !channel.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ChannelDisabled,
            format!("channel {channel_id} is disabled: enable it to recover its deliveries"),
        ));
    }
    let queue = state.dispatch.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DispatchUnavailable,
            "this deployment has no dispatch queue for recoveries",
        )
    })?;
    let mut recovery = Recovery::start(org, channel_id, window, now);
    match recoveries::start(store, &recovery, MAX_REQUEUED, now)
        .await
        .map_err(ApiError::internal)?
    {
        Started::Started => {}
        Started::Running(running) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::RecoveryRunning,
                format!(
                    "recovery {} of this channel is running ({} re-queued so far); wait for it to end",
                    running.id, running.requeued
                ),
            ));
        }
    }
    let first = RecoverPage {
        org_id: org,
        channel_id,
        recovery_id: recovery.id,
        page: 0,
    };
    let message = first.message().map_err(ApiError::internal)?;
    if let Err(e) = queue.send_batch(vec![message]).await {
        // Nothing is re-queued: end the recovery, freeing the channel for the retry.
        tracing::warn!(error = %e, recovery_id = %recovery.id, "dispatch queue refused a recovery");
        if let Ok(Some(mut v)) = recoveries::get(store, org, recovery.id).await {
            v.recovery.error = Some("the dispatch queue did not take the recovery".to_owned());
            v.recovery.finish(RecoveryState::Failed, Utc::now());
            if let Err(e) = recoveries::save(store, &v).await {
                tracing::error!(error = %e, "a refused recovery could not be ended; it frees its channel after 15 minutes");
            }
        }
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DispatchUnavailable,
            "the dispatch queue did not take the recovery; nothing was re-queued, retry",
        ));
    }
    tracing::info!(recovery_id = %recovery.id, channel_id = %channel_id, "recovery started");
    recovery.updated_at = now;
    Ok(recovery)
}

/// One recovery of the channel: its state and counts.
#[utoipa::path(
    get, path = ONE, tag = "channels",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("id" = String, Path, description = "Channel id (UUID)"),
        ("recoveryId" = String, Path, description = "Recovery id (UUID), as the recover call answered"),
    ),
    responses(
        (status = 200, description = "The recovery", body = Recovery),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such recovery of this channel (or past its 30 days)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_recovery(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id, recovery_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Recovery>> {
    let channel_id = channel_id(&id)?;
    let recovery_id: RecoveryId = recovery_id
        .parse()
        .map_err(|_| ApiError::not_found("recovery"))?;
    let found = recoveries::get(state.store.as_ref(), auth.org_id, recovery_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|v| v.recovery.channel_id == channel_id)
        .ok_or_else(|| ApiError::not_found("recovery"))?;
    Ok(Json(found.recovery))
}
