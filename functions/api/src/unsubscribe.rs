//! RFC 8058 one-click unsubscribe (no API key: the signed token is the credential).
//!
//! - `POST /u/{token}`: what a mailbox provider sends when the reader clicks "Unsubscribe"
//!   (body `List-Unsubscribe=One-Click`, form-encoded or multipart; any body is accepted and
//!   ignored). Records the user's unsubscribe from the token's channel — an item of its own, not
//!   the profile's `optOuts`, so a whole-profile `PUT /users` does not undo it (idempotent) —
//!   and answers 200 with a short HTML page — never a redirect, as RFC 8058 requires.
//! - `GET /u/{token}`: a confirm page whose button POSTs to the same URL. A GET changes nothing:
//!   link scanners prefetch GETs.
//!
//! A token that does not verify (forged, expired, malformed), or any token when the deployment
//! has no token secret, is a 404 page and changes nothing. See docs/hygiene.md.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use herald_core::delivery::format::email::escape;
use herald_core::delivery::unsubscribe::Unsubscribe;
use herald_shared::repo::unsubscribes::{self, Unsubscribed};

use crate::AppState;

const PATH: &str = "/u/{token}";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(confirm_page).post(unsubscribe))
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title></head>\n<body style=\"font-family:-apple-system,Segoe UI,\
         Helvetica,Arial,sans-serif;padding:24px\">\n<h1 style=\"font-size:20px\">{title}</h1>\n\
         {body}\n</body></html>\n"
    );
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "<p>This unsubscribe link is not valid or has expired.</p>",
    )
}

fn verify(state: &AppState, token: &str) -> Option<Unsubscribe> {
    let key = state.config.unsubscribe_key.as_ref()?;
    key.verify(token, Utc::now())
        .map_err(|e| tracing::info!(error = %e, "unsubscribe token refused"))
        .ok()
}

/// The confirm page of an unsubscribe link: changes nothing.
#[utoipa::path(
    get, path = PATH, tag = "unsubscribe",
    params(("token" = String, Path, description = "Signed unsubscribe token (from the email's `List-Unsubscribe` header)")),
    responses(
        (status = 200, description = "A small HTML page with a button that POSTs to the same URL; nothing is changed", content_type = "text/html"),
        (status = 404, description = "Forged, expired or malformed token: an HTML page, nothing changed", content_type = "text/html"),
    )
)]
pub async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if verify(&state, &token).is_none() {
        return not_found();
    }
    page(
        StatusCode::OK,
        "Unsubscribe",
        "<p>Stop receiving these emails?</p>\n<form method=\"post\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form>",
    )
}

/// One-click unsubscribe (RFC 8058): opts the user out of the channel the email came through.
#[utoipa::path(
    post, path = PATH, tag = "unsubscribe",
    params(("token" = String, Path, description = "Signed unsubscribe token (from the email's `List-Unsubscribe` header)")),
    request_body(content = String, description = "`List-Unsubscribe=One-Click` (form-encoded or multipart); ignored", content_type = "application/x-www-form-urlencoded", example = "List-Unsubscribe=One-Click"),
    responses(
        (status = 200, description = "The user is opted out of the channel (also when they already were); a small HTML page, never a redirect", content_type = "text/html"),
        (status = 404, description = "Forged, expired or malformed token: an HTML page, nothing changed", content_type = "text/html"),
        (status = 500, description = "The opt-out could not be stored", content_type = "text/html"),
    )
)]
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Some(target) = verify(&state, &token) else {
        return not_found();
    };
    let channel = target.channel.to_string();
    let entry = Unsubscribed {
        user_id: target.user.clone(),
        channel_id: target.channel,
        rule_key: target.rule.clone(),
        at: Utc::now(),
    };
    match unsubscribes::add(state.store.as_ref(), &target.org, &entry).await {
        Ok(done) => {
            tracing::info!(org_id = %target.org, channel_id = %channel, rule_key = ?target.rule.as_ref().map(|r| r.as_str()), already = !done, "user unsubscribed (one-click)");
            page(
                StatusCode::OK,
                "Unsubscribed",
                &format!(
                    "<p>You will no longer receive these emails (channel {}).</p>",
                    escape(&channel)
                ),
            )
        }
        Err(e) => {
            tracing::error!(org_id = %target.org, error = %e, "unsubscribe not stored");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Please try again",
                "<p>Your request could not be saved. Please try again later.</p>",
            )
        }
    }
}
