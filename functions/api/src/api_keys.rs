//! API keys (admin key): `POST|GET /api/v1/orgs/{orgId}/api-keys`,
//! `DELETE /api/v1/orgs/{orgId}/api-keys/{keyId}`. A new key's secret is in the creation
//! answer only; Herald stores its SHA-256.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::api_key::{ApiKey, ApiKeySecret};
use herald_core::domain::{ApiKeyId, OrgId};
use herald_shared::repo::ApiKeys;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/orgs/{orgId}/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route(
            "/api/v1/orgs/{orgId}/api-keys/{keyId}",
            delete(revoke_api_key),
        )
}

/// `POST .../api-keys` body (may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label to tell keys apart (1–128 characters).
    pub name: Option<String>,
}

/// An API key as listed: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: Option<String>,
    /// The first characters of the key, e.g. `pk_live_ab12`.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            org_id: k.org_id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
        }
    }
}

/// A new API key: the only time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key itself, `pk_<env>_...`. Store it now: it cannot be shown again.
    pub key: String,
}

/// `{"items", "nextCursor"}` of API keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

fn org_of(admin: &Admin) -> ApiResult<OrgId> {
    admin.org_id.ok_or_else(|| ApiError::not_found("org"))
}

/// Creates an API key for the org.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/api-keys", tag = "api-keys",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The new key, with its secret (shown once)", body = CreatedApiKey),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "`name` is empty, over 128 characters or not printable", body = ErrorBody),
    ),
    security(("adminKey" = []))
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let org_id = org_of(&admin)?;
    let name = match body.name.map(|n| n.trim().to_owned()) {
        Some(n) if n.is_empty() || n.chars().count() > 128 || n.chars().any(char::is_control) => {
            return Err(ApiError::invalid_field(
                "name",
                "must be 1–128 printable characters",
            ));
        }
        n => n,
    };
    let secret = ApiKeySecret::generate(&state.config.key_env);
    let key = ApiKey {
        id: ApiKeyId::new(),
        org_id,
        name,
        prefix: secret.prefix(),
        hash: secret.hash(),
        created_at: Utc::now(),
    };
    ApiKeys::new(state.store.as_ref())
        .create(&key)
        .await
        .map_err(|e| ApiError::from_repo(e, "API key"))?;
    tracing::info!(org_id = %org_id, key_id = %key.id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            view: key.into(),
            key: secret.expose().to_owned(),
        }),
    ))
}

/// Lists the org's API keys (without secrets).
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/api-keys", tag = "api-keys",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of keys", body = ApiKeyList),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("adminKey" = []))
)]
pub async fn list_api_keys(
    State(state): State<AppState>,
    admin: Admin,
    page: ListParams,
) -> ApiResult<Json<ApiKeyList>> {
    let org_id = org_of(&admin)?;
    let page = ApiKeys::new(state.store.as_ref())
        .list(&org_id, page.limit, page.cursor)
        .await
        .map_err(|e| ApiError::from_repo(e, "API key"))?;
    Ok(Json(ApiKeyList {
        items: page.items.into_iter().map(ApiKeyView::from).collect(),
        next_cursor: page.next.map(|c| c.as_str().to_owned()),
    }))
}

/// Revokes an API key: requests with it get 401 from now on.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{orgId}/api-keys/{keyId}", tag = "api-keys",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("keyId" = String, Path, description = "API key id (UUID)"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such org or key", body = ErrorBody),
    ),
    security(("adminKey" = []))
)]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    admin: Admin,
    Path((_, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org_id = org_of(&admin)?;
    let key_id: ApiKeyId = key_id.parse().map_err(|_| ApiError::not_found("API key"))?;
    ApiKeys::new(state.store.as_ref())
        .revoke(&org_id, &key_id)
        .await
        .map_err(|e| ApiError::from_repo(e, "API key"))?;
    tracing::info!(org_id = %org_id, key_id = %key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
