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
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelKind, ChannelName, ChannelPolicy, ConfigError,
    FrequencyCap,
};
use herald_core::domain::{ChannelId, OrgId};
use herald_shared::delivery::providers::fcm;
use herald_shared::repo::{Channels, RepoError};
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
    /// Default `true`.
    pub enabled: Option<bool>,
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
    pub enabled: bool,
    pub health: ChannelHealth,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Webhook channels, in the creation answer only: the Standard Webhooks signing secret
    /// (`whsec_<base64>`). It cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
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
            enabled: c.enabled,
            health: c.health.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            signing_secret: None,
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

fn channel_id(raw: &str) -> ApiResult<ChannelId> {
    raw.parse().map_err(|_| ApiError::not_found("channel"))
}

fn repo_error(e: RepoError) -> ApiError {
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
        (status = 422, description = "Invalid value: name, URL (https only, at most 2048 characters, no private or loopback host), SMTP relay host, FCM tokenUri, headers (at most 20, name 128 and value 4096 bytes), missing config", body = ErrorBody),
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
        enabled: body.enabled.unwrap_or(true),
        health: ChannelHealth::default(),
        created_at: now,
        updated_at: now,
    };
    Channels::new(state.store.as_ref())
        .create(&channel)
        .await
        .map_err(repo_error)?;
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
    Ok(Json(ChannelList {
        items: page.items.iter().map(ChannelView::from).collect(),
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
        .map_err(repo_error)?;
    channel
        .as_ref()
        .map(|c| Json(ChannelView::from(c)))
        .ok_or_else(|| ApiError::not_found("channel"))
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
    let repo = Channels::new(state.store.as_ref());
    let mut channel = repo
        .get(&auth.org_id, &id)
        .await
        .map_err(repo_error)?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    if body.kind.is_some_and(|kind| kind != channel.kind()) {
        return Err(ApiError::invalid_field(
            "kind",
            "a channel's kind cannot change; create a new channel",
        ));
    }
    if let Some(name) = &body.name {
        channel.name = ChannelName::parse(name)?;
    }
    if let Some(config) = body.config {
        channel.config = parse_config(
            channel.kind(),
            config.filter(|v| !v.is_null()),
            Some(&channel.config),
            &state.config,
        )?;
    }
    if let Some(c) = body.frequency_cap {
        channel.frequency_cap = cap(c)?;
    }
    if let Some(enabled) = body.enabled {
        channel.enabled = enabled;
    }
    channel.health = ChannelHealth::default();
    channel.updated_at = Utc::now();
    repo.update(&channel).await.map_err(repo_error)?;
    tracing::info!(org_id = %channel.org_id, channel_id = %channel.id, "channel updated");
    Ok(Json(ChannelView::from(&channel)))
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
    tracing::info!(org_id = %auth.org_id, channel_id = %id, "channel deleted");
    Ok(StatusCode::NO_CONTENT)
}
