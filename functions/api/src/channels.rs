//! Notification channels (org API key): `POST|GET /notifications/channels`,
//! `GET|PATCH|DELETE /notifications/channels/{id}` under `/api/v1/orgs/{orgId}`.
//!
//! Secrets (Slack/Discord/Teams URLs, signing secrets, custom headers, SMTP passwords, FCM keys)
//! are stored whole and shown redacted in every answer; a webhook's signing secret is generated
//! here and shown once, as `signingSecret` in the creation answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::delivery::outbound::AllowList;
use herald_core::delivery::pacing::{Hold, LaneState, RateLimit};
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelKind, ChannelName, ChannelPolicy, ConfigError,
    FrequencyCap, HealthStatus, WebhookFormat, check_rate_limit,
};
use herald_core::domain::{ChannelId, OrgId};
use herald_shared::delivery::providers::fcm;
use herald_shared::repo::{Channels, RepoError, lanes};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::OrgAuth;
use crate::body::{JsonBody, double_option};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;
use crate::{ApiConfig, AppState};

const COLLECTION: &str = "/api/v1/orgs/{orgId}/notifications/channels";
const ITEM: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list_channels).post(create_channel))
        .route(
            ITEM,
            get(get_channel)
                .patch(update_channel)
                .delete(delete_channel),
        )
}

/// `POST .../notifications/channels` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChannel {
    pub kind: ChannelKind,
    /// 1–128 printable characters.
    pub name: String,
    /// Per kind: `slack` `{webhookUrl}`; `webhook` `{url, format?: generic|discord|teams,
    /// headers?}`; `email` `{provider: ses|smtp, from, ...}`; `sms` `{provider: sns, ...}`;
    /// `push` `{provider: fcm, ...}`; `in_app` `{}`. Optional for email, SMS and push where the
    /// deployment has a default provider (the outbox of `herald serve`).
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    pub frequency_cap: Option<FrequencyCap>,
    /// Slack and webhook channels only: at most `perSecond` sends per second, `burst` back to
    /// back. Absent: the kind's default (Slack 1/s burst 3, Discord 0.5/s burst 5, Teams 4/s
    /// burst 4, generic webhooks none).
    pub rate_limit: Option<RateLimitInput>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// A channel's `rateLimit` as sent: `perSecond` more than 0 and at most 100, `burst` a whole
/// number from 1 to 1000.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitInput {
    #[schema(example = 1.0)]
    pub per_second: f64,
    #[schema(value_type = u32, example = 3)]
    pub burst: f64,
}

/// `PATCH .../notifications/channels/{id}` body: the fields to change. `config` replaces the
/// whole config (a webhook keeps its signing secret); `null` resets it to the default provider
/// where there is one; `frequencyCap: null` removes the cap. Any update clears `health`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateChannel {
    /// Cannot change; accepted when equal to the channel's kind.
    pub kind: Option<ChannelKind>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Option<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<FrequencyCap>)]
    pub frequency_cap: Option<Option<FrequencyCap>>,
    /// `null` goes back to the kind's default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<RateLimitInput>)]
    pub rate_limit: Option<Option<RateLimitInput>>,
    pub enabled: Option<bool>,
}

/// A channel as the API shows it: secrets redacted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub kind: ChannelKind,
    pub name: String,
    /// The provider configuration, secrets redacted (`****`, URLs cut to host and last characters).
    #[schema(value_type = Object)]
    pub config: Value,
    pub frequency_cap: Option<FrequencyCap>,
    /// The rate limit in force (`null`: not paced): the channel's own, else its kind's default.
    pub rate_limit: Option<RateLimit>,
    /// Whether `rateLimit` is the kind's default (the channel sets none).
    pub rate_limit_default: bool,
    pub enabled: bool,
    pub health: HealthView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Webhook channels, in the creation answer and a rotation's answer only: the Standard
    /// Webhooks signing secret (`whsec_<base64>`). It cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// Generic webhooks: which secrets sign requests now, by prefix (never the secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningView>,
}

/// The secrets a generic webhook's requests are signed with, by prefix: the current one and,
/// after a rotation, the previous ones still in their grace period (newest first). Each request
/// carries one `v1,` signature per secret listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningView {
    pub current: CurrentSecretView,
    pub previous: Vec<PreviousSecretView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentSecretView {
    /// The secret's first characters, e.g. `whsec_MfKQ`.
    pub prefix: String,
    /// When it was made: at the channel's creation or by the last rotation.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecretView {
    pub prefix: String,
    /// When it stops signing.
    pub expires_at: DateTime<Utc>,
}

impl SigningView {
    /// The view of a generic webhook's secrets at `now`; `None` for other channels.
    pub fn of(c: &Channel, now: DateTime<Utc>) -> Option<Self> {
        let ChannelConfig::Webhook(w) = &c.config else {
            return None;
        };
        (w.format == WebhookFormat::Generic).then(|| Self {
            current: CurrentSecretView {
                prefix: w.signing_secret.prefix().to_owned(),
                created_at: w.signing_secret_created_at.unwrap_or(c.created_at),
            },
            previous: w
                .previous_secrets
                .iter()
                .filter(|p| p.expires_at > now)
                .map(|p| PreviousSecretView {
                    prefix: p.secret.prefix().to_owned(),
                    expires_at: p.expires_at,
                })
                .collect(),
        })
    }
}

/// A channel's health: broken by a permanent refusal (`status`), and its lane.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    pub status: HealthStatus,
    /// The permanent error that broke it (e.g. `404 channel_not_found`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The channel's lane, when it is held (a 429's pause, an open circuit) or its last
    /// attempts failed; absent when all is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<LaneHealth>,
}

/// What holds a channel's deliveries back, from its lane (`docs/pipeline.md`, "Lanes").
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaneHealth {
    /// `paused` (the provider answered 429) or `circuit_open` (failures in a row); absent
    /// when nothing holds the lane now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Until when the hold lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Retryable failures in a row (429s excluded); 5 open the circuit.
    pub failures_in_a_row: u32,
    /// The last failure or 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl LaneHealth {
    fn of(lane: &LaneState, now: DateTime<Utc>) -> Option<Self> {
        let hold = lane.hold_at(now);
        (hold.is_some() || lane.failures > 0).then(|| Self {
            hold: hold.map(|(why, _)| why),
            until: hold.map(|(_, until)| until),
            failures_in_a_row: lane.failures,
            last_error: lane.last_error.clone(),
        })
    }
}

impl ChannelView {
    /// The view with the lane's health as it stands at `now`.
    pub(crate) fn with_lane(c: &Channel, lane: &LaneState, now: DateTime<Utc>) -> Self {
        let mut view = Self::from(c);
        view.health.lane = LaneHealth::of(lane, now);
        view
    }
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        Self {
            id: c.id,
            org_id: c.org_id,
            kind: c.kind(),
            name: c.name.as_str().to_owned(),
            config: c.config.redacted(),
            frequency_cap: c.frequency_cap,
            rate_limit: c.rate_limit_in_force(),
            rate_limit_default: c.rate_limit.is_none(),
            enabled: c.enabled,
            health: HealthView {
                status: c.health.status,
                last_error: c.health.last_error.clone(),
                since: c.health.since,
                lane: None,
            },
            created_at: c.created_at,
            updated_at: c.updated_at,
            signing_secret: None,
            signing: SigningView::of(c, Utc::now()),
        }
    }
}

/// `{"items", "nextCursor"}` of channels.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
    pub next_cursor: Option<String>,
}

pub(crate) fn channel_id(raw: &str) -> ApiResult<ChannelId> {
    raw.parse().map_err(|_| ApiError::not_found("channel"))
}

pub(crate) fn repo_error(e: RepoError) -> ApiError {
    match e {
        RepoError::ChannelInUse(rules) => {
            let keys: Vec<&str> = rules.iter().map(|k| k.as_str()).collect();
            ApiError::conflict(format!(
                "the channel is used by rules {}: remove it from them (or delete them) first",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        e => ApiError::from_repo(e, "channel"),
    }
}

fn cap(cap: Option<FrequencyCap>) -> ApiResult<Option<FrequencyCap>> {
    Ok(cap.map(FrequencyCap::validate).transpose()?)
}

fn rate_limit(kind: ChannelKind, limit: Option<RateLimitInput>) -> ApiResult<Option<RateLimit>> {
    Ok(limit
        .map(|l| check_rate_limit(kind, l.per_second, l.burst))
        .transpose()?)
}

/// Builds a channel's config from the request's `config` (already `None` for `null`) with
/// [`ChannelConfig::parse`]: a wrong shape is a 400 `invalid_body`, a refused value a 422.
/// `previous` is the config being replaced on update: a webhook keeps its signing secret.
fn parse_config(
    kind: ChannelKind,
    config: Option<Value>,
    previous: Option<&ChannelConfig>,
    settings: &ApiConfig,
) -> ApiResult<ChannelConfig> {
    let policy = ChannelPolicy {
        allowed_private_targets: AllowList::new(settings.allowed_private_targets.clone()),
        default_outbox: settings.default_outbox,
        check_private_key: fcm::check_private_key,
    };
    ChannelConfig::parse(kind, config, previous, &policy).map_err(|e| match e {
        ConfigError::Shape(e) => ApiError::invalid_body(e.field, e.message),
        ConfigError::Invalid(e) => e.into(),
    })
}

/// Creates a channel.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/channels", tag = "channels",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = CreateChannel,
    responses(
        (status = 201, description = "The new channel; webhooks include `signingSecret`, shown once", body = ChannelView),
        (status = 400, description = "Malformed JSON or wrong shape (unknown kind, wrong type)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 413, description = "Body over 256 KB", body = ErrorBody),
        (status = 422, description = "Invalid value: name, URL (https only, at most 2048 characters, no private or loopback host), SMTP relay host, FCM tokenUri, headers (at most 20, name 128 and value 4096 bytes), missing config, rateLimit (`rateLimit.perSecond`, `rateLimit.burst`; `rateLimit` on email, SMS, push and in-app channels)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<CreateChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let name = ChannelName::parse(&body.name)?;
    let config = parse_config(
        body.kind,
        body.config.filter(|v| !v.is_null()),
        None,
        &state.config,
    )?;
    let now = Utc::now();
    let channel = Channel {
        id: ChannelId::new(),
        org_id: auth.org_id,
        name,
        config,
        frequency_cap: cap(body.frequency_cap)?,
        rate_limit: rate_limit(body.kind, body.rate_limit)?,
        enabled: body.enabled.unwrap_or(true),
        health: ChannelHealth::default(),
        created_at: now,
        updated_at: now,
    };
    Channels::new(state.store.as_ref())
        .create(&channel)
        .await
        .map_err(repo_error)?;
    state.routing.changed(channel.org_id);
    tracing::info!(org_id = %channel.org_id, channel_id = %channel.id, kind = channel.kind().as_str(), "channel created");
    let mut view = ChannelView::from(&channel);
    if let ChannelConfig::Webhook(w) = &channel.config {
        view.signing_secret = Some(w.signing_secret.expose().to_owned());
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Lists the org's channels, oldest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/channels", tag = "channels",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of channels", body = ChannelList),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_channels(
    State(state): State<AppState>,
    auth: OrgAuth,
    page: ListParams,
) -> ApiResult<Json<ChannelList>> {
    let page = Channels::new(state.store.as_ref())
        .list(&auth.org_id, page.limit, page.cursor)
        .await
        .map_err(repo_error)?;
    let ids: Vec<ChannelId> = page.items.iter().map(|c| c.id).collect();
    let lanes = lanes::get_many(state.store.as_ref(), &auth.org_id, &ids)
        .await
        .map_err(repo_error)?;
    let now = Utc::now();
    Ok(Json(ChannelList {
        items: page
            .items
            .iter()
            .zip(&lanes)
            .map(|(c, lane)| ChannelView::with_lane(c, &lane.state, now))
            .collect(),
        next_cursor: page.next.map(|c| c.as_str().to_owned()),
    }))
}

/// Reads a channel.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/channels/{id}", tag = "channels",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("id" = String, Path, description = "Channel id (UUID)")),
    responses(
        (status = 200, description = "The channel", body = ChannelView),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or channel", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ChannelView>> {
    let id = channel_id(&id)?;
    let channel = Channels::new(state.store.as_ref())
        .get(&auth.org_id, &id)
        .await
        .map_err(repo_error)?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let lane = lanes::get(state.store.as_ref(), &auth.org_id, &id)
        .await
        .map_err(repo_error)?;
    Ok(Json(ChannelView::with_lane(
        &channel,
        &lane.state,
        Utc::now(),
    )))
}

/// Changes a channel.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{orgId}/notifications/channels/{id}", tag = "channels",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("id" = String, Path, description = "Channel id (UUID)")),
    request_body = UpdateChannel,
    responses(
        (status = 200, description = "The updated channel", body = ChannelView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or channel", body = ErrorBody),
        (status = 422, description = "Invalid value", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn update_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateChannel>,
) -> ApiResult<Json<ChannelView>> {
    let id = channel_id(&id)?;
    let now = Utc::now();
    let (channel, ()) = Channels::new(state.store.as_ref())
        .modify(&auth.org_id, &id, |channel| {
            apply_update(channel, &body, &state.config, now)
        })
        .await
        .map_err(repo_error)??;
    state.routing.changed(channel.org_id);
    tracing::info!(org_id = %channel.org_id, channel_id = %channel.id, "channel updated");
    let lane = lanes::get(state.store.as_ref(), &auth.org_id, &id)
        .await
        .map_err(repo_error)?;
    Ok(Json(ChannelView::with_lane(
        &channel,
        &lane.state,
        Utc::now(),
    )))
}

/// Applies a PATCH body to the channel as stored. Any update clears `health`.
fn apply_update(
    channel: &mut Channel,
    body: &UpdateChannel,
    settings: &ApiConfig,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if body.kind.is_some_and(|kind| kind != channel.kind()) {
        return Err(ApiError::invalid_field(
            "kind",
            "a channel's kind cannot change; create a new channel",
        ));
    }
    if let Some(name) = &body.name {
        channel.name = ChannelName::parse(name)?;
    }
    if let Some(config) = &body.config {
        channel.config = parse_config(
            channel.kind(),
            config.clone().filter(|v| !v.is_null()),
            Some(&channel.config),
            settings,
        )?;
    }
    if let Some(c) = body.frequency_cap {
        channel.frequency_cap = cap(c)?;
    }
    if let Some(limit) = body.rate_limit {
        channel.rate_limit = rate_limit(channel.kind(), limit)?;
    }
    if let Some(enabled) = body.enabled {
        channel.enabled = enabled;
    }
    channel.health = ChannelHealth::default();
    channel.updated_at = now;
    Ok(())
}

/// Deletes a channel. Refused (409, naming them) while rules reference it.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{orgId}/notifications/channels/{id}", tag = "channels",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("id" = String, Path, description = "Channel id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or channel", body = ErrorBody),
        (status = 409, description = "Rules still send to this channel; the message names them", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn delete_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = channel_id(&id)?;
    Channels::new(state.store.as_ref())
        .delete(&auth.org_id, &id)
        .await
        .map_err(repo_error)?;
    state.routing.changed(auth.org_id);
    tracing::info!(org_id = %auth.org_id, channel_id = %id, "channel deleted");
    Ok(StatusCode::NO_CONTENT)
}
