//! Events (org API key): `POST /api/v1/orgs/{orgId}/events` — one event or a batch (up to 100
//! events, 256 KB). Each entry is validated and published to the event bus, the path every other
//! producer takes; the answer (`202`) holds one result per entry, in order: its `id`, or an
//! error for that entry alone. An entry without `id` gets a fresh one: identical events are
//! distinct events.
//!
//! Admission control comes first: beyond the org's ingest limit or its backlog bound the whole
//! request is refused (429, `Retry-After`), so nothing of a refused batch is accepted
//! (`docs/pipeline.md`, "Admission control").

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use herald_core::admission::{BACKLOG_RETRY_AFTER, IngestRefusal, retry_after_seconds};
use herald_core::domain::event::{Event, EventInput};
use herald_core::domain::{EventId, OrgId};
use herald_shared::bus::{API_SOURCE, BusEntry};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::{JsonBody, from_value};
use crate::error::{ApiError, ErrorCode, ErrorDetail};

const COLLECTION: &str = "/api/v1/orgs/{orgId}/events";

/// Most events in one request.
pub const MAX_BATCH: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new().route(COLLECTION, post(post_events))
}

/// The result for one entry of the request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResult {
    /// Position of the entry in the request.
    pub index: usize,
    /// The event's id, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `202` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsAccepted {
    pub items: Vec<EventResult>,
    pub accepted: usize,
    pub rejected: usize,
}

/// Publishes events.
///
/// The body is one event `{id?, type, module, properties?, userId? | recipients?, occurredAt?}`
/// or an array of them. Unknown fields are refused; `properties` is at most 32 levels deep and
/// 64 KiB of JSON; at most 1,000 recipients.
#[utoipa::path(
    post, path = COLLECTION, tag = "events",
    params(("orgId" = String, Path, description = "Org id")),
    request_body(content = Object, description = "One event, or an array of up to 100"),
    responses(
        (status = 202, description = "One result per event", body = EventsAccepted),
        (status = 400, description = "Malformed body, an unknown field, or `properties` deeper than 32 levels or over 64 KiB of JSON (for a batch, such an entry gets its own error in the 202)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 256 KB", body = crate::error::ErrorBody),
        (status = 429, description = "Over the org's ingest limit (`rate_limited`) or its backlog bound (`backlog_full`): nothing of the request was accepted; retry after `Retry-After` seconds. A batch larger than the ingest burst never fits (`rate_limited`, the message says so): split it", body = crate::error::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying (at least 1)"))),
        (status = 422, description = "A single event that is well-formed but refused (its field is named); in a batch, that entry's `error`", body = crate::error::ErrorBody),
        (status = 503, description = "A single event the event bus did not take; retry", body = crate::error::ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn post_events(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<EventsAccepted>), ApiError> {
    let (entries, single) = match body {
        Value::Array(entries) => (entries, false),
        entry @ Value::Object(_) => (vec![entry], true),
        _ => {
            return Err(ApiError::invalid_body(
                "",
                "the body must be an event object or an array of events",
            ));
        }
    };
    if entries.is_empty() {
        return Err(ApiError::invalid_body("", "the batch is empty"));
    }
    if entries.len() > MAX_BATCH {
        return Err(ApiError::invalid_body(
            "",
            format!(
                "at most {MAX_BATCH} events per request, got {}",
                entries.len()
            ),
        ));
    }

    let now = Utc::now();
    let mut items = Vec::with_capacity(entries.len());
    let mut valid: Vec<(usize, Event)> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let prefix = if single {
            String::new()
        } else {
            format!("[{index}]")
        };
        let parsed = from_value::<EventInput>(entry, &prefix).and_then(|input| {
            input
                .into_event(auth.org_id, EventId::generate, now, now)
                .map_err(|e| {
                    let e = if single { e } else { e.under(&prefix) };
                    ApiError::from(e)
                })
        });
        match parsed {
            // A single invalid event is the request's error; in a batch, that entry's.
            Err(e) if single => return Err(e),
            Err(e) => items.push(EventResult {
                index,
                id: None,
                error: Some(e.detail()),
            }),
            Ok(event) => valid.push((index, event)),
        }
    }

    let keyless = crate::alerts::keyless_actions(&state, auth.org_id, &valid).await?;
    if !keyless.is_empty() {
        let error = |index: usize| {
            let field = if single {
                "dedupKey".to_owned()
            } else {
                format!("[{index}].dedupKey")
            };
            ApiError::invalid_field(field, crate::alerts::NEEDS_KEY)
        };
        if single {
            return Err(error(0));
        }
        valid.retain(|(index, _)| !keyless.contains(index));
        items.extend(keyless.into_iter().map(|index| EventResult {
            index,
            id: None,
            error: Some(error(index).detail()),
        }));
    }
    if !valid.is_empty() {
        admit(&state, auth.org_id, valid.len(), single).await?;
    }

    for chunk in valid.chunks(state.bus.max_batch().max(1)) {
        let entries = chunk.iter().map(|(_, event)| bus_entry(event)).collect();
        let refused = match state.bus.put_events(entries).await {
            Ok(()) => Vec::new(),
            Err(herald_shared::bus::BusError::Refused(refused)) => refused,
            Err(e) => {
                tracing::error!(error = %e, "event bus unavailable");
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, _)| (i, "the event bus is unavailable; retry".to_owned()))
                    .collect()
            }
        };
        for (i, (index, event)) in chunk.iter().enumerate() {
            match refused.iter().find(|(r, _)| *r == i) {
                Some((_, reason)) => items.push(EventResult {
                    index: *index,
                    id: None,
                    error: Some(
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::NotPublished,
                            reason.clone(),
                        )
                        .detail(),
                    ),
                }),
                None => items.push(EventResult {
                    index: *index,
                    id: Some(event.id.to_string()),
                    error: None,
                }),
            }
        }
    }
    items.sort_by_key(|r| r.index);
    let accepted = items.iter().filter(|r| r.id.is_some()).count();
    if single && accepted == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotPublished,
            "the event bus is unavailable; retry",
        ));
    }
    let rejected = items.len() - accepted;
    Ok((
        StatusCode::ACCEPTED,
        Json(EventsAccepted {
            items,
            accepted,
            rejected,
        }),
    ))
}

/// Admission control: refuses the whole request (429) when the org's backlog is at its bound
/// or its ingest bucket lacks `events` tokens; otherwise takes them.
async fn admit(state: &AppState, org: OrgId, events: usize, single: bool) -> Result<(), ApiError> {
    let what = if single {
        "the event was not accepted".to_owned()
    } else {
        format!("none of the {events} events of this batch were accepted")
    };
    if let Some(bound) = &state.admission.backlog {
        let depth = bound.backlog.depth(org).await.map_err(ApiError::internal)?;
        if depth >= bound.max {
            return Err(ApiError::too_many(
                ErrorCode::BacklogFull,
                format!(
                    "this org has {depth} messages waiting for delivery, at its backlog bound of {}: {what}; retry after the Retry-After seconds",
                    bound.max
                ),
                retry_after_seconds(BACKLOG_RETRY_AFTER),
            ));
        }
    }
    let Some(limiter) = &state.admission.ingest else {
        return Ok(());
    };
    let limit = limiter.limit();
    let cost = u32::try_from(events).unwrap_or(u32::MAX);
    match limiter.take(org, cost, Utc::now()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(IngestRefusal::Later { retry_after })) => Err(ApiError::too_many(
            ErrorCode::RateLimited,
            format!(
                "over this org's ingest limit ({}): {what}; retry after the Retry-After seconds",
                limit.describe()
            ),
            retry_after_seconds(retry_after),
        )),
        Ok(Err(IngestRefusal::OverBurst)) => Err(ApiError::too_many(
            ErrorCode::RateLimited,
            format!(
                "a batch of {events} events never fits this org's ingest limit ({}): send at most {} events per request; {what}",
                limit.describe(),
                limit.burst()
            ),
            retry_after_seconds(limit.refill_time()),
        )),
        Err(herald_shared::admission::AdmissionError::Repo(
            herald_shared::repo::RepoError::Contended,
        )) => Err(ApiError::too_many(
            ErrorCode::RateLimited,
            format!(
                "too many concurrent requests for this org: {what}; retry after the Retry-After seconds"
            ),
            1,
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The bus entry of an event: `detail-type` is its type, `detail` the rest, with its id.
pub(crate) fn bus_entry(event: &Event) -> BusEntry {
    let mut detail = serde_json::json!({
        "orgId": event.org_id,
        "id": event.id,
        "module": event.module,
        "properties": event.properties,
        "occurredAt": event.occurred_at,
    });
    if !event.recipients.is_empty() {
        detail["recipients"] = serde_json::to_value(&event.recipients).unwrap_or(Value::Null);
    }
    if let Some(alert) = &event.alert {
        if let Some(key) = &alert.dedup_key {
            detail["dedupKey"] = Value::String(key.to_string());
        }
        detail["action"] = Value::String(alert.action.as_str().to_owned());
    }
    BusEntry {
        source: API_SOURCE.to_owned(),
        detail_type: event.event_type.to_string(),
        detail,
    }
}
