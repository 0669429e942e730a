//! Signing-secret rotation for generic webhooks (org API key), under
//! `/api/v1/orgs/{orgId}/notifications/channels/{id}/secret`:
//!
//! - `POST .../rotate {graceHours?, key?}` makes a new secret (or takes the client's) and shows
//!   it once; the replaced secret keeps signing for the grace period (default 24 h, at most 7
//!   days, `0`: not at all — for a leaked secret), so every request carries both signatures
//!   (`webhook-signature: v1,<new> v1,<old>`) and receivers move to the new one without a
//!   failed delivery. At most 5 previous secrets are in their grace period at once.
//! - `POST .../expire-previous` ends every previous secret's grace now.
//!
//! Both are read-modify-writes of the channel conditioned on its version, so a concurrent
//! PATCH, rotation or health change never loses a secret. Rotation takes no `Idempotency-Key`:
//! replaying its answer would mean storing the secret a second time. After a lost answer, read
//! the channel's `signing.current.prefix`, or rotate again (both secrets keep signing).

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use herald_core::domain::channel::{
    Channel, ChannelConfig, MAX_SECRET_GRACE_HOURS, RotateError, SigningSecret,
};
use herald_shared::repo::{Channels, lanes};
use serde::Deserialize;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::channels::{ChannelView, channel_id, repo_error};
use crate::deliveries::EmptyBody;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};

const ROTATE: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}/secret/rotate";
const EXPIRE_PREVIOUS: &str =
    "/api/v1/orgs/{orgId}/notifications/channels/{id}/secret/expire-previous";

/// The grace period of a rotation without `graceHours`, as Svix.
const DEFAULT_GRACE_HOURS: u32 = 24;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ROTATE, post(rotate_secret))
        .route(EXPIRE_PREVIOUS, post(expire_previous))
}

/// `POST .../secret/rotate` body; every field optional (`{}` rotates with a 24 h grace).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecret {
    /// Hours the replaced secret keeps signing, 0–168 (default 24). `0` stops it at once: for
    /// a leaked secret.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 168, example = 24)]
    pub grace_hours: Option<f64>,
    /// The new secret, when the receiver's side generated it: `whsec_` + standard base64 of 24
    /// to 64 bytes. Default: 32 random bytes.
    pub key: Option<String>,
}

/// Rotates a generic webhook's signing secret.
///
/// Answers the channel with the new secret as `signingSecret`, shown this once, and
/// `signing` listing the secrets that sign requests now. Until the grace period ends every
/// request carries a signature per secret (`v1,<new> v1,<old>`); Standard Webhooks
/// verifiers accept a request when any signature matches their secret.
#[utoipa::path(
    post, path = ROTATE, tag = "channels",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("id" = String, Path, description = "Channel id (UUID)"),
    ),
    request_body(content = RotateSecret, description = "Empty, `{}`, or the grace period and/or the new secret"),
    responses(
        (status = 200, description = "Rotated: the new secret, shown once, and the secrets signing now", body = ChannelView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or channel", body = ErrorBody),
        (status = 409, description = "`limit_reached`: 5 previous secrets are still in their grace period (expire them first); or the channel kept changing (`conflict`, retry)", body = ErrorBody),
        (status = 422, description = "Not a generic webhook (`kind`, `config.format`: Slack, Discord and Teams carry their token in the URL), `graceHours` out of 0–168, `key` not `whsec_` + base64 of 24–64 bytes", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RotateSecret>,
) -> ApiResult<Json<ChannelView>> {
    let id = channel_id(&id)?;
    let grace = grace(body.grace_hours)?;
    let new = match &body.key {
        Some(key) => SigningSecret::parse(key, "key")?,
        None => SigningSecret::generate(),
    };
    let now = Utc::now();
    let (channel, ()) = Channels::new(state.store.as_ref())
        .modify(&auth.org_id, &id, |channel| {
            let webhook = signed_webhook(channel)?;
            webhook.rotate(new.clone(), grace, now).map_err(refused)?;
            channel.updated_at = now;
            Ok::<_, ApiError>(())
        })
        .await
        .map_err(repo_error)??;
    state.routing.changed(auth.org_id);
    tracing::info!(org_id = %auth.org_id, channel_id = %id, grace_hours = grace.num_hours(), "signing secret rotated");
    let mut view = view(&state, &channel).await?;
    view.signing_secret = Some(new.expose().to_owned());
    Ok(Json(view))
}

/// Ends the grace period of every previous signing secret now.
///
/// From the next attempt on, requests carry the current secret's signature only. For when
/// every receiver has moved to the new secret, or a previous one leaked.
#[utoipa::path(
    post, path = EXPIRE_PREVIOUS, tag = "channels",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("id" = String, Path, description = "Channel id (UUID)"),
    ),
    request_body(content = Object, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "The channel; `signing.previous` is empty", body = ChannelView),
        (status = 400, description = "A body other than `{}`", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or channel", body = ErrorBody),
        (status = 409, description = "The channel kept changing (`conflict`, retry)", body = ErrorBody),
        (status = 422, description = "Not a generic webhook (`kind`, `config.format`)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn expire_previous(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    JsonBody(EmptyBody {}): JsonBody<EmptyBody>,
) -> ApiResult<Json<ChannelView>> {
    let id = channel_id(&id)?;
    let now = Utc::now();
    let (channel, ()) = Channels::new(state.store.as_ref())
        .modify(&auth.org_id, &id, |channel| {
            signed_webhook(channel)?
                .expire_previous()
                .map_err(refused)?;
            channel.updated_at = now;
            Ok::<_, ApiError>(())
        })
        .await
        .map_err(repo_error)??;
    state.routing.changed(auth.org_id);
    tracing::info!(org_id = %auth.org_id, channel_id = %id, "previous signing secrets expired");
    Ok(Json(view(&state, &channel).await?))
}

/// `graceHours` as a duration: a whole number of hours from 0 to 168.
fn grace(hours: Option<f64>) -> ApiResult<chrono::Duration> {
    let hours = hours.unwrap_or(f64::from(DEFAULT_GRACE_HOURS));
    if hours.fract() != 0.0 || !(0.0..=f64::from(MAX_SECRET_GRACE_HOURS)).contains(&hours) {
        return Err(ApiError::invalid_field(
            "graceHours",
            format!("must be a whole number of hours from 0 to {MAX_SECRET_GRACE_HOURS} (7 days)"),
        ));
    }
    // A whole number in 0..=168: the cast is exact.
    Ok(chrono::Duration::hours(hours as i64))
}

/// The channel's webhook config, when the channel is a webhook (the format is checked by the
/// rotation itself).
fn signed_webhook(
    channel: &mut Channel,
) -> ApiResult<&mut herald_core::domain::channel::WebhookConfig> {
    let kind = channel.kind();
    match &mut channel.config {
        ChannelConfig::Webhook(w) => Ok(w),
        _ => Err(ApiError::invalid_field(
            "kind",
            format!(
                "only generic webhook channels are signed; this is a {} channel",
                kind.as_str()
            ),
        )),
    }
}

fn refused(e: RotateError) -> ApiError {
    match e {
        RotateError::NotSigned(_) => ApiError::invalid_field("config.format", e.to_string()),
        RotateError::LimitReached => ApiError::new(
            axum::http::StatusCode::CONFLICT,
            ErrorCode::LimitReached,
            e.to_string(),
        ),
    }
}

async fn view(state: &AppState, channel: &Channel) -> ApiResult<ChannelView> {
    let lane = lanes::get(state.store.as_ref(), &channel.org_id, &channel.id)
        .await
        .map_err(repo_error)?;
    Ok(ChannelView::with_lane(channel, &lane.state, Utc::now()))
}
