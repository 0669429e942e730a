//! Notification channels (org API key): `POST|GET /notifications/channels`,
//! `GET|PATCH|DELETE /notifications/channels/{id}` under `/api/v1/orgs/{orgId}`.
//!
//! Secrets (Slack/Discord/Teams URLs, signing secrets, custom headers, SMTP passwords, FCM keys)
//! are stored whole and shown redacted in every answer; a webhook's signing secret is generated
//! here and shown once, as `signingSecret` in the creation answer.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelKind, ChannelName, EmailConfig, FrequencyCap,
    PushConfig, SigningSecret, SlackConfig, SmsConfig, WebhookConfig, WebhookFormat,
};
use herald_core::domain::{ChannelId, OrgId};
use herald_shared::delivery::providers::fcm;
use herald_shared::repo::{Channels, RepoError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::OrgAuth;
use crate::body::{JsonBody, double_option, from_value};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;
use crate::targets::{check_relay, check_url};
use crate::{ApiConfig, AppState};

const COLLECTION: &str = "/api/v1/orgs/{orgId}/notifications/channels";
const ITEM: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}";

/// At most this many custom headers on a webhook.
const MAX_HEADERS: usize = 20;
/// Longest custom header name, in bytes.
const MAX_HEADER_NAME: usize = 128;
/// Longest custom header value, in bytes (many servers refuse headers over 8 KB in total).
const MAX_HEADER_VALUE: usize = 4096;
/// Headers Herald sets itself on webhook requests.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

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

/// Builds a channel's config from the request's `config` (already `None` for `null`).
/// `previous` is the config being replaced on update: a webhook keeps its signing secret.
fn parse_config(
    kind: ChannelKind,
    config: Option<Value>,
    previous: Option<&ChannelConfig>,
    settings: &ApiConfig,
) -> ApiResult<ChannelConfig> {
    let allowed = &settings.allowed_private_targets;
    // `{}` names no provider: the same as leaving `config` out.
    let config = config.filter(|v| v.as_object().is_none_or(|m| !m.is_empty()));
    let missing = |what: &str| {
        ApiError::invalid_field(
            "config",
            format!("{} channels need a `config`: {what}", kind.as_str()),
        )
    };
    match kind {
        ChannelKind::Slack => {
            let config = config.ok_or_else(|| {
                missing("{\"webhookUrl\": \"https://hooks.slack.com/services/...\"}")
            })?;
            let input: SlackInput = from_value(config, "config")?;
            Ok(ChannelConfig::Slack(SlackConfig {
                webhook_url: check_url(&input.webhook_url, "config.webhookUrl", allowed)?,
            }))
        }
        ChannelKind::Webhook => {
            let config = config.ok_or_else(|| missing("{\"url\": \"https://...\", \"format\": \"generic|discord|teams\", \"headers\": {}}"))?;
            let input: WebhookInput = from_value(config, "config")?;
            let url = check_url(&input.url, "config.url", allowed)?;
            let headers = check_headers(input.headers)?;
            let signing_secret = match previous {
                Some(ChannelConfig::Webhook(w)) => w.signing_secret.clone(),
                _ => SigningSecret::generate(),
            };
            Ok(ChannelConfig::Webhook(WebhookConfig {
                url,
                format: input.format,
                headers,
                signing_secret,
            }))
        }
        ChannelKind::Email => match config {
            None if settings.default_outbox => {
                Ok(ChannelConfig::Email(EmailConfig::Outbox { from: None }))
            }
            None => Err(missing(
                "{\"provider\": \"ses\" | \"smtp\", \"from\": \"...\"}; this deployment has no default email provider",
            )),
            Some(v) => {
                let email: EmailConfig = from_tagged(v)?;
                match &email {
                    EmailConfig::Outbox { .. } if !settings.default_outbox => Err(no_outbox()),
                    EmailConfig::Ses { from, .. }
                    | EmailConfig::Smtp { from, .. }
                    | EmailConfig::Outbox { from: Some(from) }
                        if !looks_like_address(from) =>
                    {
                        Err(ApiError::invalid_field(
                            "config.from",
                            "must be an email address, optionally with a display name",
                        ))
                    }
                    EmailConfig::Smtp { host, port, .. }
                        if host.trim().is_empty() || *port == 0 =>
                    {
                        Err(ApiError::invalid_field(
                            "config.host",
                            "SMTP needs a host and a non-zero port",
                        ))
                    }
                    EmailConfig::Smtp {
                        host,
                        port,
                        starttls,
                        ..
                    } => {
                        // As the SMTP sender's `Security::of`: port 465 is implicit TLS,
                        // otherwise `starttls: false` is plain text.
                        let plain = !*starttls && *port != 465;
                        check_relay(host, plain, "config.host", allowed)?;
                        Ok(ChannelConfig::Email(email))
                    }
                    _ => Ok(ChannelConfig::Email(email)),
                }
            }
        },
        ChannelKind::Sms => match config {
            None if settings.default_outbox => Ok(ChannelConfig::Sms(SmsConfig::Outbox)),
            None => Err(missing(
                "{\"provider\": \"sns\"}; this deployment has no default SMS provider",
            )),
            Some(v) => match from_tagged(v)? {
                SmsConfig::Outbox if !settings.default_outbox => Err(no_outbox()),
                sms => Ok(ChannelConfig::Sms(sms)),
            },
        },
        ChannelKind::Push => match config {
            None if settings.default_outbox => Ok(ChannelConfig::Push(PushConfig::Outbox)),
            None => Err(missing(
                "{\"provider\": \"fcm\", \"projectId\", \"clientEmail\", \"privateKey\"}; this deployment has no default push provider",
            )),
            Some(v) => {
                let push: PushConfig = from_tagged(v)?;
                match &push {
                    PushConfig::Outbox if !settings.default_outbox => Err(no_outbox()),
                    PushConfig::Fcm {
                        project_id,
                        client_email,
                        private_key,
                        token_uri,
                    } => {
                        if project_id.trim().is_empty()
                            || client_email.trim().is_empty()
                            || private_key.trim().is_empty()
                        {
                            return Err(ApiError::invalid_field(
                                "config",
                                "FCM needs projectId, clientEmail and privateKey",
                            ));
                        }
                        // Refused now rather than at the first 3am push.
                        fcm::check_private_key(private_key)
                            .map_err(|m| ApiError::invalid_field("config.privateKey", m))?;
                        // The token endpoint gets the signed assertion: the same outbound
                        // policy as any other target.
                        if let Some(uri) = token_uri {
                            check_url(uri, "config.tokenUri", allowed)?;
                        }
                        Ok(ChannelConfig::Push(push))
                    }
                    PushConfig::Outbox => Ok(ChannelConfig::Push(push)),
                }
            }
        },
        ChannelKind::InApp => match config {
            None => Ok(ChannelConfig::InApp),
            Some(Value::Object(m)) => {
                let first = m.keys().next().map(String::as_str).unwrap_or_default();
                Err(ApiError::invalid_body(
                    format!("config.{first}"),
                    "in_app channels take no config",
                ))
            }
            Some(_) => Err(ApiError::invalid_body(
                "config",
                "in_app channels take no config (use {} or leave it out)",
            )),
        },
    }
}

fn no_outbox() -> ApiError {
    ApiError::invalid_field(
        "config.provider",
        "this deployment has no outbox; name a real provider",
    )
}

/// `provider`-tagged configs: serde reports an unknown or missing tag at the config itself.
fn from_tagged<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    from_value(v, "config").map_err(|e| {
        let m = e.message();
        if m.contains("variant") || m.contains("`provider`") {
            ApiError::invalid_body("config.provider", m.to_owned())
        } else {
            e
        }
    })
}

fn looks_like_address(from: &str) -> bool {
    let addr = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from,
    };
    let mut parts = addr.trim().splitn(2, '@');
    matches!((parts.next(), parts.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.') && !d.contains(char::is_whitespace))
}

fn check_headers(headers: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid_field(
            "config.headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        if name.len() > MAX_HEADER_NAME {
            return Err(ApiError::invalid_field(
                "config.headers",
                format!("a header name is at most {MAX_HEADER_NAME} bytes"),
            ));
        }
        let field = format!("config.headers.{name}");
        if value.len() > MAX_HEADER_VALUE {
            return Err(ApiError::invalid_field(
                field,
                format!("at most {MAX_HEADER_VALUE} bytes"),
            ));
        }
        let parsed = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::invalid_field(field.clone(), "not a valid HTTP header name"))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(ApiError::invalid_field(
                field,
                "Herald sets this header itself",
            ));
        }
        http::HeaderValue::from_str(&value)
            .map_err(|_| ApiError::invalid_field(field, "not a valid HTTP header value"))?;
        out.insert(parsed.as_str().to_owned(), value);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SlackInput {
    webhook_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookInput {
    url: String,
    #[serde(default)]
    format: WebhookFormat,
    #[serde(default)]
    headers: BTreeMap<String, String>,
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
