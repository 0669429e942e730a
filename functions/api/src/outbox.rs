//! The local outbox (org API key): `GET /api/v1/orgs/{orgId}/outbox` lists the email, SMS and
//! push messages `herald serve` delivered to its outbox instead of a provider, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use herald_shared::repo::outbox::{self, OutboxMessage};
use herald_shared::store::StoreError;
use serde::Serialize;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;

const COLLECTION: &str = "/api/v1/orgs/{orgId}/outbox";

pub fn router() -> Router<AppState> {
    Router::new().route(COLLECTION, get(list_outbox))
}

/// One page of the outbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxPage {
    pub items: Vec<OutboxMessage>,
    pub next_cursor: Option<String>,
}

/// Lists the messages delivered to the local outbox, newest first.
#[utoipa::path(
    get, path = COLLECTION, tag = "outbox",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("limit" = Option<usize>, Query, description = "1–100, default 50"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Outbox messages", body = OutboxPage),
        (status = 400, description = "Bad cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_outbox(
    State(state): State<AppState>,
    auth: OrgAuth,
    page: ListParams,
) -> ApiResult<Json<OutboxPage>> {
    let (items, next) = outbox::list(state.store.as_ref(), auth.org_id, page.limit, page.cursor)
        .await
        .map_err(|e| match e {
            StoreError::BadCursor => ApiError::invalid_query(
                "cursor",
                "invalid pagination cursor: pass `nextCursor` from the previous page unchanged",
            ),
            e => ApiError::internal(e),
        })?;
    Ok(Json(OutboxPage {
        items,
        next_cursor: next.map(|c| c.as_str().to_owned()),
    }))
}
