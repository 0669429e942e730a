//! One delivery (org API key): `GET /notifications/logs/{deliveryId}` — the delivery with every
//! attempt (status code, error class, response body, what made it), its next attempt time and
//! engagement — and `POST /notifications/logs/{deliveryId}/resend`, one manual attempt of the
//! same delivery through the dispatch queue.
//!
//! A resend keeps the delivery id, so a generic webhook carries the same `webhook-id` (Standard
//! Webhooks: the id stays the same however often a message is retried; a receiver that recorded
//! it drops the resend — that is the contract). It renders from the stored event, the rule's
//! *current* template and the channel's *current* config, so resending after fixing a URL or a
//! template is the point. The attempt is logged `trigger: manual` and is never retried.
//! Refused: a delivery still queued or deferred (an attempt is pending: a second message could
//! send it twice at once), a suppressed one (an opt-out or a frequency cap is never bypassed), a
//! test-button one, a deleted or disabled channel, an event past its retention.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use herald_core::domain::delivery::{AttemptTrigger, Delivery, DeliveryStatus, Trigger};
use herald_core::domain::event::Recipient;
use herald_core::domain::{DeliveryId, OrgId};
use herald_shared::pipeline::{DispatchTask, ManualResend};
use herald_shared::queue::Outgoing;
use herald_shared::repo::deliveries::{self, Versioned};
use herald_shared::repo::{Channels, Rules, events, resend};
use herald_shared::store::StoreError;
use serde::Serialize;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::{self, Idempotent};

const ONE: &str = "/api/v1/orgs/{orgId}/notifications/logs/{deliveryId}";
const RESEND: &str = "/api/v1/orgs/{orgId}/notifications/logs/{deliveryId}/resend";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ONE, get(get_delivery))
        .route(RESEND, post(resend_delivery))
}

/// `202` answer of a resend.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResendAccepted {
    pub delivery_id: DeliveryId,
    /// The number the manual attempt will have in the delivery's `attempts`.
    pub attempt: u32,
    /// `queued`: the attempt waits in the dispatch queue; read the delivery for its outcome.
    pub status: DeliveryStatus,
    /// Always `manual`.
    pub trigger: AttemptTrigger,
    /// Which template renders it: `rule` (the rule's current one), `default`, or
    /// `default (rule deleted)`.
    pub template: String,
}

/// One delivery with every attempt.
///
/// `attempts[].trigger` says what made each attempt (`scheduled`: the pipeline; `manual`: a
/// resend); `nextAttemptAt` is the absolute time a waiting retry is due; `engagement` lists
/// opens, clicks and reads.
#[utoipa::path(
    get, path = ONE, tag = "logs",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("deliveryId" = String, Path, description = "Delivery id (UUID), as in the log and the `webhook-id` header"),
    ),
    responses(
        (status = 200, description = "The delivery", body = Delivery),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such delivery in this org (or past its retention)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_delivery(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    let found = load(&state, auth.org_id, &id).await?;
    Ok(Json(found.delivery))
}

async fn load(state: &AppState, org: OrgId, id: &str) -> ApiResult<Versioned> {
    let id: DeliveryId = id.parse().map_err(|_| ApiError::not_found("delivery"))?;
    deliveries::get(state.store.as_ref(), org, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("delivery"))
}

/// Resends one delivery: one manual attempt, through the dispatch queue.
///
/// Same delivery id (so the same `webhook-id`), rendered from the stored event with the rule's
/// current template and the channel's current config; logged as attempt n+1 with
/// `trigger: manual`, never retried. The body is empty (`{}`). With an `Idempotency-Key`
/// header, a repeat within 24 h answers the first answer again (`Idempotent-Replayed: true`).
#[utoipa::path(
    post, path = RESEND, tag = "logs",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("deliveryId" = String, Path, description = "Delivery id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 printable characters: a repeat of the same request within 24 h answers the stored answer"),
    ),
    request_body(content = Object, description = "Empty, or `{}`"),
    responses(
        (status = 202, description = "The manual attempt is queued", body = ResendAccepted,
            headers(("Idempotent-Replayed" = bool, description = "`true` when this is the stored answer of an earlier request with the same `Idempotency-Key`"))),
        (status = 400, description = "A body other than `{}`, or a bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such delivery in this org", body = ErrorBody),
        (status = 409, description = "Not resendable now: `in_progress` (an attempt is pending, or another resend just started), `not_resendable` (suppressed: an opt-out or a frequency cap is never bypassed; or a test-button delivery), `channel_deleted`, `channel_disabled`, `event_expired`; or `idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`: this key came with another request within 24 h", body = ErrorBody),
        (status = 503, description = "`dispatch_unavailable`: the dispatch queue did not take the attempt; nothing changed, retry", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn resend_delivery(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(EmptyBody {}): JsonBody<EmptyBody>,
) -> ApiResult<Idempotent<ResendAccepted>> {
    let request = idempotency::Request::new(&headers, "POST", &format!("resend/{id}"), b"{}")?;
    idempotency::run(&state, auth.org_id, request, StatusCode::ACCEPTED, || {
        resend_once(&state, auth.org_id, &id)
    })
    .await
}

/// The body of a resend: nothing.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

fn refused(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

#[tracing::instrument(skip(state), fields(org_id = %org))]
async fn resend_once(state: &AppState, org: OrgId, id: &str) -> ApiResult<ResendAccepted> {
    let store = state.store.as_ref();
    let Versioned { delivery, version } = load(state, org, id).await?;
    let rule_key = match (delivery.trigger, &delivery.rule_key) {
        (Trigger::Event, Some(key)) => key.clone(),
        (Trigger::Group, _) => {
            // Its dispatch message carried the group as it stood; the group's next tick
            // reports it as it stands now.
            return Err(refused(
                ErrorCode::NotResendable,
                "a group message is not resent: the group's next message reports it as it stands",
            ));
        }
        (Trigger::Digest, _) => {
            // Its dispatch message carried the items as the batch held them at its flush.
            return Err(refused(
                ErrorCode::NotResendable,
                "a digest is not resent: its events are listed on it (eventIds)",
            ));
        }
        _ => {
            return Err(refused(
                ErrorCode::NotResendable,
                "a test-button delivery is not resent: test the channel again",
            ));
        }
    };
    match delivery.status {
        DeliveryStatus::Queued | DeliveryStatus::Deferred => {
            return Err(refused(
                ErrorCode::InProgress,
                format!(
                    "the delivery is {} and its next attempt is pending{}; resend it once it has ended",
                    delivery.status.as_str(),
                    delivery
                        .next_attempt_at
                        .map(|t| format!(
                            " (due {})",
                            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ))
                        .unwrap_or_default()
                ),
            ));
        }
        DeliveryStatus::Suppressed => {
            return Err(refused(
                ErrorCode::NotResendable,
                format!(
                    "the delivery was suppressed ({}): consent and frequency caps are never bypassed",
                    delivery.reason.as_deref().unwrap_or("no reason recorded")
                ),
            ));
        }
        DeliveryStatus::Sent | DeliveryStatus::Delivered | DeliveryStatus::Failed => {}
    }
    let channel = Channels::new(store)
        .get(&org, &delivery.channel_id)
        .await?
        .ok_or_else(|| {
            refused(
                ErrorCode::ChannelDeleted,
                format!("channel {} was deleted", delivery.channel_id),
            )
        })?;
    if !channel.enabled {
        return Err(refused(
            ErrorCode::ChannelDisabled,
            format!(
                "channel {} is disabled: enable it to resend",
                delivery.channel_id
            ),
        ));
    }
    let record = events::get(store, org, &delivery.event_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            refused(
                ErrorCode::EventExpired,
                format!(
                    "event {} is past its retention: there is nothing to render",
                    delivery.event_id
                ),
            )
        })?;
    let queue = state.dispatch.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DispatchUnavailable,
            "this deployment has no dispatch queue for resends",
        )
    })?;
    let rule = Rules::new(store).get(&org, &rule_key).await?;
    let template_note = match &rule {
        Some(r) if r.template.is_some() => "rule",
        Some(_) => "default",
        None => "default (rule deleted)",
    };
    let recipient = delivery.recipient.as_ref().map(|user| {
        record
            .event
            .recipients
            .iter()
            .find(|r| &r.user_id == user)
            .cloned()
            .unwrap_or_else(|| Recipient {
                user_id: user.clone(),
                email: None,
                phone: None,
                push_tokens: Vec::new(),
            })
    });
    let attempt = u32::try_from(delivery.attempts.len() + 1).unwrap_or(u32::MAX);
    let now = Utc::now();
    let previous = delivery.status;
    let mut reopened = delivery.clone();
    reopened.status = DeliveryStatus::Queued;
    reopened.reason = Some(format!(
        "resend requested: attempt {attempt} (manual) is queued"
    ));
    reopened.next_attempt_at = None;
    reopened.updated_at = now;
    let saved = match resend::save_keeping_ttl(store, &reopened, version).await {
        Ok(v) => v,
        Err(StoreError::Conflict) => {
            return Err(refused(
                ErrorCode::InProgress,
                "the delivery changed meanwhile (another resend, or its dispatcher): read it again",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let task = DispatchTask {
        delivery_id: delivery.id,
        org_id: org,
        rule_key,
        channel_id: delivery.channel_id,
        recipient,
        attempt,
        not_before: None,
        event: record.event,
        critical: rule.as_ref().is_some_and(|r| r.critical),
        template: rule.and_then(|r| r.template),
        manual: Some(ManualResend { previous }),
        recovered: None,
        digest: None,
        group: None,
    };
    let body = serde_json::to_string(&task).map_err(ApiError::internal)?;
    if let Err(e) = queue
        .send_batch(vec![Outgoing::now(body).in_group(task.lane())])
        .await
    {
        // Nothing is queued: put the delivery back as it was, so it can be resent again.
        tracing::warn!(error = %e, delivery_id = %delivery.id, "dispatch queue refused a resend");
        let mut restored = delivery;
        restored.updated_at = now;
        if let Err(e) = resend::save_keeping_ttl(store, &restored, saved).await {
            tracing::error!(error = %e, "a refused resend could not be undone; the delivery stays queued");
        }
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DispatchUnavailable,
            "the dispatch queue did not take the attempt; nothing changed, retry",
        ));
    }
    tracing::info!(delivery_id = %task.delivery_id, attempt, "resend queued");
    Ok(ResendAccepted {
        delivery_id: task.delivery_id,
        attempt,
        status: DeliveryStatus::Queued,
        trigger: AttemptTrigger::Manual,
        template: template_note.to_owned(),
    })
}
