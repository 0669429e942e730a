//! The suppression list (org API key): `GET|POST /notifications/suppressions`,
//! `DELETE /notifications/suppressions/{kind}/{address}` under `/api/v1/orgs/{orgId}`.
//!
//! Email addresses and phone numbers Herald will not send to: SES hard bounces and complaints,
//! SMS opt-outs (STOP) and manual entries. A delivery to one ends `suppressed` with the entry's
//! reason. Entries are keyed by the normalised address, not by user: `PUT /users` never clears
//! one, and `DELETE /users/{id}` keeps them (docs/hygiene.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use herald_core::domain::suppression::{
    SuppressedAddress, Suppression, SuppressionDetails, SuppressionKind, SuppressionReason,
    SuppressionSource,
};
use herald_shared::repo::suppressions::{self, Added};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;
use crate::query::QueryParams;

const COLLECTION: &str = "/api/v1/orgs/{orgId}/notifications/suppressions";
const ITEM: &str = "/api/v1/orgs/{orgId}/notifications/suppressions/{kind}/{address}";
const SYNC_SMS: &str = "/api/v1/orgs/{orgId}/notifications/suppressions/sync-sms";
/// Longest comment kept on a manual entry.
const MAX_COMMENT: usize = 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list_suppressions).post(create_suppression))
        .route(ITEM, delete(delete_suppression))
        .route(SYNC_SMS, post(sync_sms_opt_outs))
}

/// `POST .../notifications/suppressions` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSuppression {
    /// `email` or `sms`.
    pub kind: String,
    /// An email address (stored lower-cased) or an E.164 phone number.
    pub address: String,
    /// Only `manual` (the default): bounces, complaints and opt-outs come from the providers.
    pub reason: Option<String>,
    /// Why (at most 1,024 characters).
    pub comment: Option<String>,
}

/// `{"items", "nextCursor"}` of suppressions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionList {
    pub items: Vec<Suppression>,
    pub next_cursor: Option<String>,
}

/// `POST .../notifications/suppressions/sync-sms` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncSms {
    /// An SMS channel sending through SNS: its account and region are the ones read.
    pub channel_id: String,
}

/// What a sync did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSmsResult {
    /// Numbers SNS lists as opted out.
    pub listed: usize,
    /// Of those, newly suppressed (the rest already were).
    pub added: usize,
}

/// `?kind=`.
#[derive(Debug, Deserialize)]
pub struct KindParam {
    pub kind: Option<String>,
}

/// `?force=`.
#[derive(Debug, Deserialize)]
pub struct ForceParam {
    pub force: Option<bool>,
}

/// Suppresses an address (a manual entry).
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/suppressions", tag = "suppressions",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = CreateSuppression,
    responses(
        (status = 201, description = "The new entry", body = Suppression),
        (status = 200, description = "The address was already suppressed: the entry as it stands", body = Suppression),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "`kind` not email or sms, malformed `address`, `reason` other than manual, comment too long", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_suppression(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<CreateSuppression>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let kind = SuppressionKind::parse(&body.kind)?;
    let address = SuppressedAddress::parse(kind, &body.address)?;
    if let Some(reason) = body.reason.as_deref().filter(|r| *r != "manual") {
        return Err(ApiError::invalid_field(
            "reason",
            format!("`{reason}` cannot be set through the API (only manual)"),
        ));
    }
    if body.comment.as_ref().is_some_and(|c| c.len() > MAX_COMMENT) {
        return Err(ApiError::invalid_field(
            "comment",
            format!("at most {MAX_COMMENT} bytes"),
        ));
    }
    let entry = Suppression::new(
        &address,
        SuppressionReason::Manual,
        SuppressionSource::Api,
        SuppressionDetails {
            comment: body.comment,
            ..Default::default()
        },
        Utc::now(),
    );
    match suppressions::add(state.store.as_ref(), &auth.org_id, &entry)
        .await
        .map_err(|e| ApiError::from_repo(e, "suppression"))?
    {
        Added::Created(s) => {
            tracing::info!(org_id = %auth.org_id, kind = kind.as_str(), "address suppressed manually");
            Ok((StatusCode::CREATED, Json(s)))
        }
        Added::Existing(s) => Ok((StatusCode::OK, Json(s))),
    }
}

/// Lists the org's suppression list, in address order.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/suppressions", tag = "suppressions",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("kind" = Option<String>, Query, description = "Only `email` or only `sms` entries"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of entries", body = SuppressionList),
        (status = 400, description = "Bad kind, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_suppressions(
    State(state): State<AppState>,
    auth: OrgAuth,
    page: ListParams,
    QueryParams(param): QueryParams<KindParam>,
) -> ApiResult<Json<SuppressionList>> {
    let kind = param
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| SuppressionKind::parse(k).map_err(|e| ApiError::invalid_query("kind", e.message)))
        .transpose()?;
    let page = suppressions::list(
        state.store.as_ref(),
        &auth.org_id,
        kind,
        page.limit,
        page.cursor,
    )
    .await
    .map_err(|e| ApiError::from_repo(e, "suppression"))?;
    Ok(Json(SuppressionList {
        items: page.items,
        next_cursor: page.next.map(|c| c.as_str().to_owned()),
    }))
}

/// Copies SNS's list of opted-out numbers (`ListPhoneNumbersOptedOut`, account-wide) into the
/// org's suppression list (`sms_opt_out`, source `sns`). Deliveries also check each number
/// before sending; this catches up on numbers that opted out before Herald asked.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/suppressions/sync-sms", tag = "suppressions",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = SyncSms,
    responses(
        (status = 200, description = "How many numbers SNS lists and how many were added", body = SyncSmsResult),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "`channelId` is not an SMS channel sending through SNS (or this deployment has no SNS provider)", body = ErrorBody),
        (status = 502, description = "SNS refused or failed the listing", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn sync_sms_opt_outs(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<SyncSms>,
) -> ApiResult<Json<SyncSmsResult>> {
    let not_sns =
        || ApiError::invalid_field("channelId", "must be an SMS channel sending through SNS");
    let id = body
        .channel_id
        .parse::<herald_core::domain::ChannelId>()
        .map_err(|_| not_sns())?;
    let store = state.store.as_ref();
    let channel = herald_shared::repo::Channels::new(store)
        .get(&auth.org_id, &id)
        .await
        .map_err(|e| ApiError::from_repo(e, "channel"))?
        .ok_or_else(not_sns)?;
    let numbers = match state.sender.sms_opt_outs(&channel).await {
        None => return Err(not_sns()),
        Some(Err(e)) => {
            tracing::warn!(org_id = %auth.org_id, error = %e, "ListPhoneNumbersOptedOut failed");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                crate::error::ErrorCode::Internal,
                format!("SNS did not list the opted-out numbers: {e}"),
            ));
        }
        Some(Ok(numbers)) => numbers,
    };
    let now = Utc::now();
    let mut added = 0;
    for number in &numbers {
        let Ok(address) = SuppressedAddress::parse(SuppressionKind::Sms, number) else {
            continue;
        };
        let entry = Suppression::new(
            &address,
            SuppressionReason::SmsOptOut,
            SuppressionSource::Sns,
            SuppressionDetails::default(),
            now,
        );
        if let Added::Created(_) = suppressions::add(store, &auth.org_id, &entry)
            .await
            .map_err(|e| ApiError::from_repo(e, "suppression"))?
        {
            added += 1;
        }
    }
    tracing::info!(org_id = %auth.org_id, listed = numbers.len(), added, "SMS opt-outs synced");
    Ok(Json(SyncSmsResult {
        listed: numbers.len(),
        added,
    }))
}

/// Removes an address from the list. A complaint entry needs `?force=true`: the person said
/// they do not want these emails.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{orgId}/notifications/suppressions/{kind}/{address}", tag = "suppressions",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("kind" = String, Path, description = "`email` or `sms`"),
        ("address" = String, Path, description = "The address (any case) or E.164 number, percent-encoded"),
        ("force" = Option<bool>, Query, description = "Required (`true`) to remove a complaint"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Bad `force`", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or entry", body = ErrorBody),
        (status = 409, description = "A complaint entry, and no `force=true`", body = ErrorBody),
        (status = 422, description = "`kind` not email or sms, malformed `address`", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn delete_suppression(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, kind, address)): Path<(String, String, String)>,
    QueryParams(force): QueryParams<ForceParam>,
) -> ApiResult<StatusCode> {
    let kind = SuppressionKind::parse(&kind)?;
    let address = SuppressedAddress::parse(kind, &address)?;
    let store = state.store.as_ref();
    let entry = suppressions::get(store, &auth.org_id, &address)
        .await
        .map_err(|e| ApiError::from_repo(e, "suppression"))?
        .ok_or_else(|| ApiError::not_found("suppression"))?;
    if entry.reason == SuppressionReason::Complaint && force.force != Some(true) {
        return Err(ApiError::conflict(
            "this address complained (marked an email as spam); remove it with ?force=true only if the person asked to receive email again",
        ));
    }
    suppressions::delete(store, &auth.org_id, &address)
        .await
        .map_err(|e| ApiError::from_repo(e, "suppression"))?;
    tracing::info!(org_id = %auth.org_id, kind = kind.as_str(), reason = entry.reason.as_str(), "suppression removed");
    Ok(StatusCode::NO_CONTENT)
}
