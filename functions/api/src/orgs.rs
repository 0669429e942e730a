//! Organisations (admin key): `POST /api/v1/orgs`, `GET /api/v1/orgs/{orgId}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use herald_core::domain::OrgId;
use herald_core::domain::org::{Org, OrgName};
use herald_shared::repo::Orgs;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Admin;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs", post(create_org))
        .route("/api/v1/orgs/{orgId}", get(get_org))
}

/// `POST /api/v1/orgs` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrg {
    /// 1–128 printable characters.
    pub name: String,
}

/// Creates an org.
#[utoipa::path(
    post, path = "/api/v1/orgs", tag = "orgs",
    request_body = CreateOrg,
    responses(
        (status = 201, description = "The new org", body = Org),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    ),
    security(("adminKey" = []))
)]
pub async fn create_org(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    let org = Org {
        id: OrgId::new(),
        name: OrgName::parse(&body.name)?,
        created_at: Utc::now(),
    };
    Orgs::new(state.store.as_ref())
        .create(&org)
        .await
        .map_err(|e| ApiError::from_repo(e, "org"))?;
    tracing::info!(org_id = %org.id, "org created");
    Ok((StatusCode::CREATED, Json(org)))
}

/// Reads an org.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}", tag = "orgs",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    responses(
        (status = 200, description = "The org", body = Org),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("adminKey" = []))
)]
pub async fn get_org(State(state): State<AppState>, admin: Admin) -> ApiResult<Json<Org>> {
    let id = admin.org_id.ok_or_else(|| ApiError::not_found("org"))?;
    let org = Orgs::new(state.store.as_ref())
        .get(&id)
        .await
        .map_err(|e| ApiError::from_repo(e, "org"))?;
    org.map(Json).ok_or_else(|| ApiError::not_found("org"))
}
