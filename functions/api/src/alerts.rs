//! Alerts (org API key): `GET /notifications/alerts?state=`, `GET /notifications/alerts/{dedupKey}`
//! and `POST /notifications/alerts/{dedupKey}/acknowledge|resolve` under `/api/v1/orgs/{orgId}`.
//!
//! An alert is the current (or last) instance of a dedup key (docs/alerts.md). Acknowledging
//! and resolving change its state here, with the same conditional write the matcher uses; a
//! resolve then publishes the instance's resolution event, from which the matcher sends the
//! resolved follow-ups — through the pipeline like every other message.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::alert::{
    AlertAction, AlertSignal, AlertState, AlertTarget, DedupKey, acknowledgement_event_id,
    parse_by, resolution_event_id,
};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::{AlertInstanceId, EventId, OrgId, RuleKey};
use herald_shared::repo::alerts::{self, Action, AlertRecord, Applied};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;
use crate::query::QueryParams;

const COLLECTION: &str = "/api/v1/orgs/{orgId}/notifications/alerts";
const ITEM: &str = "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}";
const ACKNOWLEDGE: &str = "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}/acknowledge";
const RESOLVE: &str = "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}/resolve";

/// How long a resolved instance stays readable: the log retention's default.
const RESOLVED_KEPT_DAYS: i64 = 30;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list_alerts))
        .route(ITEM, get(get_alert))
        .route(ACKNOWLEDGE, post(acknowledge_alert))
        .route(RESOLVE, post(resolve_alert))
}

/// An alert instance as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    #[schema(value_type = String)]
    pub dedup_key: DedupKey,
    pub instance_id: AlertInstanceId,
    pub state: AlertState,
    /// Triggers of this instance, the first included.
    pub event_count: i64,
    pub first_event_at: DateTime<Utc>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    /// Type and module of the event that opened the instance.
    #[serde(rename = "type")]
    pub event_type: String,
    pub module: String,
    pub auto_resolve_seconds: Option<u32>,
    /// Rules that notified this instance.
    #[schema(value_type = Vec<String>)]
    pub rule_keys: Vec<RuleKey>,
    /// Where its trigger went: where a resolve sends its follow-ups.
    pub targets: Vec<AlertTarget>,
}

impl From<AlertRecord> for AlertView {
    fn from(r: AlertRecord) -> Self {
        let a = r.alert;
        Self {
            dedup_key: a.dedup_key,
            instance_id: a.instance_id,
            state: a.state,
            event_count: r.event_count,
            first_event_at: a.first_event_at,
            last_event_at: r.last_event_at,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by,
            resolved_at: a.resolved_at,
            resolved_by: a.resolved_by,
            event_type: a.event_type,
            module: a.module,
            auto_resolve_seconds: a.auto_resolve_seconds,
            rule_keys: a.rule_keys,
            targets: a.targets,
        }
    }
}

/// `{"items", "nextCursor"}` of alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    pub items: Vec<AlertView>,
    pub next_cursor: Option<String>,
}

/// `POST .../acknowledge|resolve` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertActionBody {
    /// Who did it (1–256 characters), shown on the alert.
    pub by: Option<String>,
}

/// `?state=`.
#[derive(Debug, Deserialize)]
pub struct StateParam {
    pub state: Option<String>,
}

fn dedup_key(raw: &str) -> ApiResult<DedupKey> {
    DedupKey::parse(raw).map_err(|_| ApiError::not_found("alert"))
}

/// Lists the org's alerts in one state, most recently opened first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/alerts", tag = "alerts",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("state" = Option<String>, Query, description = "`firing` (default), `acknowledged` or `resolved`"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of alerts", body = AlertList),
        (status = 400, description = "Bad state, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    auth: OrgAuth,
    page: ListParams,
    QueryParams(param): QueryParams<StateParam>,
) -> ApiResult<Json<AlertList>> {
    let wanted = match param.state.as_deref().filter(|s| !s.is_empty()) {
        None => AlertState::Firing,
        Some(s) => AlertState::parse(s).ok_or_else(|| {
            ApiError::invalid_query(
                "state",
                format!("`{s}` is not one of firing, acknowledged, resolved"),
            )
        })?,
    };
    let page = alerts::list(
        state.store.as_ref(),
        auth.org_id,
        wanted,
        page.limit,
        page.cursor,
    )
    .await
    .map_err(|e| ApiError::from_repo(e, "alert"))?;
    Ok(Json(AlertList {
        items: page.items.into_iter().map(AlertView::from).collect(),
        next_cursor: page.next.map(|c| c.as_str().to_owned()),
    }))
}

/// Reads the alert of a dedup key (URL-encoded): its current or last instance.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}", tag = "alerts",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("dedupKey" = String, Path, description = "The dedup key, URL-encoded")),
    responses(
        (status = 200, description = "The alert", body = AlertView),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or alert", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_alert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, key)): Path<(String, String)>,
) -> ApiResult<Json<AlertView>> {
    let key = dedup_key(&key)?;
    alerts::get(state.store.as_ref(), auth.org_id, &key)
        .await
        .map_err(|e| ApiError::from_repo(e, "alert"))?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found("alert"))
}

/// Acknowledges an open alert: no further notifications for this instance; PagerDuty
/// channels its trigger reached get an `acknowledge` for their incident. Acknowledging an
/// acknowledged alert changes nothing.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}/acknowledge", tag = "alerts",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("dedupKey" = String, Path, description = "The dedup key, URL-encoded")),
    request_body(content = AlertActionBody, description = "Optional (an empty body is `{}`): who acknowledged it"),
    responses(
        (status = 200, description = "The alert, acknowledged", body = AlertView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or alert", body = ErrorBody),
        (status = 409, description = "The alert is resolved", body = ErrorBody),
        (status = 422, description = "Invalid `by`", body = ErrorBody),
        (status = 503, description = "The acknowledgements to PagerDuty could not be published; retry", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<AlertActionBody>,
) -> ApiResult<Json<AlertView>> {
    let key = dedup_key(&key)?;
    let by = body.by;
    let record = act(
        &state,
        auth.org_id,
        &key,
        AlertAction::Acknowledge,
        by.as_deref(),
    )
    .await?;
    publish_follow_ups(&state, auth.org_id, &record, AlertAction::Acknowledge).await?;
    Ok(Json(record.into()))
}

/// Resolves an open alert: the resolved follow-ups go to every channel its trigger reached.
/// Resolving a resolved instance again changes nothing.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/alerts/{dedupKey}/resolve", tag = "alerts",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("dedupKey" = String, Path, description = "The dedup key, URL-encoded")),
    request_body(content = AlertActionBody, description = "Optional (an empty body is `{}`): who resolved it"),
    responses(
        (status = 200, description = "The alert, resolved", body = AlertView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or alert", body = ErrorBody),
        (status = 422, description = "Invalid `by`", body = ErrorBody),
        (status = 503, description = "The follow-ups could not be published; retry", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn resolve_alert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<AlertActionBody>,
) -> ApiResult<Json<AlertView>> {
    let key = dedup_key(&key)?;
    let by = body.by;
    let record = act(
        &state,
        auth.org_id,
        &key,
        AlertAction::Resolve,
        by.as_deref(),
    )
    .await?;
    publish_follow_ups(&state, auth.org_id, &record, AlertAction::Resolve).await?;
    Ok(Json(record.into()))
}

/// Publishes the event that carries the follow-ups of an acknowledge or resolve made here
/// through the pipeline: resolved messages, acknowledgements to PagerDuty channels. Its id is
/// the instance's (`resolved:<instance>`, `acknowledged:<instance>`), so a retried call
/// publishes an event ingest already has, and nothing is sent twice.
async fn publish_follow_ups(
    state: &AppState,
    org: OrgId,
    record: &AlertRecord,
    action: AlertAction,
) -> ApiResult<()> {
    let event = stand_in_event(org, record, action, Utc::now())?;
    state
        .bus
        .put_events(vec![crate::events::bus_entry(&event)])
        .await
        .map_err(|e| {
            tracing::error!(error = %e, action = action.as_str(), "follow-up event not published");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                crate::error::ErrorCode::NotPublished,
                format!(
                    "the alert is {} but its follow-ups could not be published; retry",
                    match action {
                        AlertAction::Acknowledge => "acknowledged",
                        _ => "resolved",
                    }
                ),
            )
        })?;
    Ok(())
}

/// Applies an acknowledge or resolve with who did it.
async fn act(
    state: &AppState,
    org: OrgId,
    key: &DedupKey,
    action: AlertAction,
    by: Option<&str>,
) -> ApiResult<AlertRecord> {
    let by = parse_by(by)?;
    let store = state.store.as_ref();
    let Some(current) = alerts::get(store, org, key)
        .await
        .map_err(|e| ApiError::from_repo(e, "alert"))?
    else {
        return Err(ApiError::not_found("alert"));
    };
    let now = Utc::now();
    // The instance's own type and module: what an event with this action would carry.
    let event = stand_in_event(org, &current, action, now)?;
    let ttl = (now + chrono::Duration::days(RESOLVED_KEPT_DAYS)).timestamp();
    let applied = alerts::apply(
        store,
        org,
        key,
        Action {
            action,
            event: &event,
            by: by.as_deref(),
            auto_resolve_seconds: None,
        },
        ttl,
        now,
    )
    .await
    .map_err(|e| ApiError::from_repo(e, "alert"))?;
    match applied {
        Applied::Acknowledged(r) | Applied::Resolved(r) => Ok(r),
        Applied::Ignored(_, Some(r))
            if r.alert.state == AlertState::Resolved && action == AlertAction::Resolve =>
        {
            Ok(*r)
        }
        Applied::Ignored(_, Some(r))
            if r.alert.state == AlertState::Acknowledged && action == AlertAction::Acknowledge =>
        {
            Ok(*r)
        }
        Applied::Ignored(_, Some(_)) => Err(ApiError::conflict(
            "this alert is resolved; a new trigger opens a new instance",
        )),
        Applied::Ignored(_, None) => Err(ApiError::not_found("alert")),
        Applied::Opened(_) | Applied::Counted(_) => Err(ApiError::internal(
            herald_shared::repo::RepoError::Contended,
        )),
    }
}

fn stand_in_event(
    org: OrgId,
    record: &AlertRecord,
    action: AlertAction,
    now: DateTime<Utc>,
) -> ApiResult<Event> {
    let a = &record.alert;
    let corrupt = |_| ApiError::internal(herald_shared::repo::RepoError::Contended);
    let id = match action {
        AlertAction::Acknowledge => acknowledgement_event_id(a.instance_id),
        _ => resolution_event_id(a.instance_id),
    };
    Ok(Event {
        id: EventId::parse(id).map_err(corrupt)?,
        org_id: org,
        event_type: EventType::parse(&a.event_type).map_err(corrupt)?,
        module: Module::parse(&a.module).map_err(corrupt)?,
        properties: serde_json::Map::new(),
        recipients: Vec::new(),
        occurred_at: now,
        received_at: now,
        alert: Some(AlertSignal {
            dedup_key: Some(a.dedup_key.clone()),
            action,
            firing_since: None,
        }),
    })
}

/// The message of an acknowledge or resolve that has no dedup key.
pub const NEEDS_KEY: &str = "acknowledge and resolve need a dedupKey (on the event, or from a matching rule's alerting.dedupKey)";

/// Which of `events` are an acknowledge or resolve with no dedup key: none on the event and none
/// from a matching rule's `alerting.dedupKey` template. The org's rules are read only when
/// such an event is present.
pub(crate) async fn keyless_actions(
    state: &AppState,
    org: OrgId,
    events: &[(usize, Event)],
) -> ApiResult<Vec<usize>> {
    let candidates: Vec<&(usize, Event)> = events
        .iter()
        .filter(|(_, e)| e.action() != AlertAction::Trigger && e.dedup_key().is_none())
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let rules = herald_shared::repo::rules::list_all(state.store.as_ref(), org)
        .await
        .map_err(ApiError::internal)?;
    let set = herald_core::rules::RuleSet::compile(&rules);
    Ok(candidates
        .into_iter()
        .filter(|(_, e)| {
            !set.matching(e).iter().any(|r| {
                r.alerting
                    .as_ref()
                    .is_some_and(|a| a.key_for(e, &r.key).is_some())
            })
        })
        .map(|(i, _)| *i)
        .collect())
}
