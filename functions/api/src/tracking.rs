//! Email open and click tracking (no API key: the signed token is the credential).
//!
//! - `GET /t/o/{token}`: the 1×1 pixel in every tracked email; records `opened` on the delivery.
//! - `GET /t/c/{token}`: a tracked link; records `clicked` and redirects (302) to the link the
//!   token carries — only that link, so the endpoint is no open redirect.
//!
//! The reader is never made to wait on, or see, a recording failure: the pixel and the redirect
//! are answered whatever the store says (the failure is logged). A token that does not verify is
//! a 404, and so is any token when the deployment has no tracking configured.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use herald_core::delivery::tracking::Tracked;
use herald_core::domain::delivery::{Engagement, EngagementKind};
use herald_core::domain::{DeliveryId, OrgId};
use herald_shared::repo::deliveries;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

const OPEN: &str = "/t/o/{token}";
const CLICK: &str = "/t/c/{token}";

/// The smallest transparent GIF (1×1, 43 bytes).
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(OPEN, get(open))
        .route(CLICK, get(click))
}

/// Verifies a token from the open (`click: false`) or click path.
fn verify(state: &AppState, token: &str, click: bool) -> Result<Tracked, ApiError> {
    let key = state
        .config
        .tracking_key
        .as_ref()
        .ok_or_else(|| ApiError::not_found("tracking link"))?;
    key.verify(token, click).map_err(|e| {
        tracing::info!(error = %e, "tracking token refused");
        ApiError::not_found("tracking link")
    })
}

async fn record(state: &AppState, org: OrgId, delivery: DeliveryId, engagement: Engagement) {
    let kind = engagement.kind;
    match deliveries::record_engagement(state.store.as_ref(), org, delivery, engagement).await {
        Ok(Some(first)) => {
            tracing::info!(org_id = %org, delivery_id = %delivery, kind = kind.as_str(), first, "engagement recorded");
        }
        Ok(None) => {
            tracing::info!(org_id = %org, delivery_id = %delivery, kind = kind.as_str(), "engagement for a delivery no longer on record");
        }
        Err(e) => {
            tracing::warn!(org_id = %org, delivery_id = %delivery, kind = kind.as_str(), error = %e, "engagement not recorded");
        }
    }
}

/// The open pixel of a tracked email.
#[utoipa::path(
    get, path = OPEN, tag = "tracking",
    params(("token" = String, Path, description = "Signed tracking token")),
    responses(
        (status = 200, description = "A 1×1 transparent GIF; the delivery's first open is counted", content_type = "image/gif"),
        (status = 404, description = "Unknown or tampered token", body = ErrorBody),
    )
)]
pub async fn open(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Tracked::Open { org, delivery } = (match verify(&state, &token, false) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    }) else {
        return ApiError::not_found("tracking link").into_response();
    };
    let engagement = Engagement {
        kind: EngagementKind::Opened,
        at: Utc::now(),
        url: None,
    };
    record(&state, org, delivery, engagement).await;
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, max-age=0"),
            ),
        ],
        PIXEL,
    )
        .into_response()
}

/// A tracked link of an email: counts the click and redirects to the link.
#[utoipa::path(
    get, path = CLICK, tag = "tracking",
    params(("token" = String, Path, description = "Signed tracking token")),
    responses(
        (status = 302, description = "Redirect to the link the token carries; the click is recorded"),
        (status = 404, description = "Unknown or tampered token", body = ErrorBody),
    )
)]
pub async fn click(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Tracked::Click { org, delivery, url } = (match verify(&state, &token, true) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    }) else {
        return ApiError::not_found("tracking link").into_response();
    };
    let engagement = Engagement {
        kind: EngagementKind::Clicked,
        at: Utc::now(),
        url: Some(url.to_string()),
    };
    record(&state, org, delivery, engagement).await;
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        // A parsed URL is ASCII; this cannot happen, but a reader still gets an answer.
        Err(_) => ApiError::not_found("tracking link").into_response(),
    }
}
