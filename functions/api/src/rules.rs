//! Notification rules (org API key): `POST|GET /notifications/rules`,
//! `GET|PATCH|DELETE /notifications/rules/{key}` under `/api/v1/orgs/{orgId}`. A rule is
//! addressed by its `key`; without `match` it fires on events whose `type` equals the key.
//! Everything a rule names is checked at write time: its matcher (with the path of a bad node),
//! its channels (they must exist in the org), its time zone.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::alert::Alerting;
use herald_core::domain::channel::{Channel, FrequencyCap};
use herald_core::domain::digest::{self, Digest};
use herald_core::domain::rule::{NewRule, QuietHours, Rule, Template};
use herald_core::domain::{ChannelId, OrgId, RuleKey, UserId};
use herald_shared::repo::{Channels, RepoError, Rules};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::{JsonBody, double_option};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::pagination::ListParams;

const COLLECTION: &str = "/api/v1/orgs/{orgId}/notifications/rules";
const ITEM: &str = "/api/v1/orgs/{orgId}/notifications/rules/{key}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list_rules).post(create_rule))
        .route(ITEM, get(get_rule).patch(update_rule).delete(delete_rule))
}

/// A quiet-hours window, local time `HH:MM`; wraps midnight when `start > end`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietWindow {
    /// e.g. `22:00`
    pub start: String,
    /// e.g. `08:00`
    pub end: String,
}

/// `POST .../notifications/rules` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRule {
    /// 1–128 characters of `[A-Za-z0-9._:-]`; the event type the rule fires on when it has no `match`.
    pub key: String,
    /// A matcher tree: `{"all":[...]}`, `{"any":[...]}`, `{"not":...}` or a leaf
    /// `{"field":"type"|"module"|"properties.a.b", "op":..., "value":...}`.
    #[serde(rename = "match")]
    #[schema(value_type = Option<Object>)]
    pub matcher: Option<Value>,
    /// Channels the rule sends to (1–20 ids of the org's channels).
    pub channel_ids: Vec<String>,
    /// Overrides the channels' caps.
    pub frequency_cap: Option<FrequencyCap>,
    /// IANA time zone of the quiet hours (e.g. `America/New_York`); setting it turns them on.
    pub quiet_hours_tz: Option<String>,
    /// Default 22:00–08:00.
    pub quiet_hours: Option<QuietWindow>,
    /// Fixed recipients (user ids), added to those each event names.
    #[serde(default)]
    pub recipients: Vec<String>,
    pub template: Option<Template>,
    /// Alert lifecycle (docs/alerts.md): a dedup key template, resolved follow-ups,
    /// auto-resolve.
    pub alerting: Option<Alerting>,
    /// Digest (docs/digests.md): a user's events collected into one email, push or in-app
    /// message per window (`windowSeconds`) or per day (`at`). Not with `alerting`.
    pub digest: Option<Digest>,
    /// Password resets, security alerts: emails carry no `List-Unsubscribe` header and the
    /// user's opt-outs are ignored (bounces and complaints still suppress). Default `false`.
    #[serde(default)]
    pub critical: bool,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// `PATCH .../notifications/rules/{key}` body: the fields to change; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRule {
    /// Cannot change; accepted when equal to the path's key.
    pub key: Option<String>,
    #[serde(rename = "match", default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub matcher: Option<Option<Value>>,
    pub channel_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<FrequencyCap>)]
    pub frequency_cap: Option<Option<FrequencyCap>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub quiet_hours_tz: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<QuietWindow>)]
    pub quiet_hours: Option<Option<QuietWindow>>,
    pub recipients: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Template>)]
    pub template: Option<Option<Template>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Alerting>)]
    pub alerting: Option<Option<Alerting>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Digest>)]
    pub digest: Option<Option<Digest>>,
    pub critical: Option<bool>,
    pub enabled: Option<bool>,
}

/// A rule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    pub key: RuleKey,
    pub org_id: OrgId,
    #[serde(rename = "match")]
    #[schema(value_type = Option<Object>)]
    pub matcher: Option<Value>,
    pub channel_ids: Vec<ChannelId>,
    pub frequency_cap: Option<FrequencyCap>,
    pub quiet_hours_tz: Option<String>,
    pub quiet_hours: Option<QuietWindow>,
    pub recipients: Vec<UserId>,
    pub template: Option<Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerting: Option<Alerting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// No unsubscribe header, opt-outs ignored (see `CreateRule.critical`).
    pub critical: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Rule> for RuleView {
    fn from(r: Rule) -> Self {
        let quiet = r.quiet_hours.as_ref().map(|q| {
            (
                q.tz.name().to_owned(),
                QuietWindow {
                    start: q.start.format("%H:%M").to_string(),
                    end: q.end.format("%H:%M").to_string(),
                },
            )
        });
        let (quiet_hours_tz, quiet_hours) =
            quiet.map_or((None, None), |(tz, w)| (Some(tz), Some(w)));
        Self {
            key: r.key,
            org_id: r.org_id,
            matcher: r.matcher.and_then(|m| serde_json::to_value(m).ok()),
            channel_ids: r.channel_ids,
            frequency_cap: r.frequency_cap,
            quiet_hours_tz,
            quiet_hours,
            recipients: r.recipients,
            template: r.template,
            alerting: r.alerting,
            digest: r.digest,
            critical: r.critical,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `{"items", "nextCursor"}` of rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleList {
    pub items: Vec<RuleView>,
    pub next_cursor: Option<String>,
}

fn rule_key(raw: &str) -> ApiResult<RuleKey> {
    RuleKey::parse(raw).map_err(|_| ApiError::not_found("rule"))
}

/// Checks that each of the rule's channels is a channel of the org.
async fn check_channels_exist(
    state: &AppState,
    org: &OrgId,
    ids: &[ChannelId],
    raw: &[String],
) -> ApiResult<()> {
    let exist = Channels::new(state.store.as_ref())
        .exist(org, ids)
        .await
        .map_err(|e| ApiError::from_repo(e, "channel"))?;
    if let Some(i) = exist.iter().position(|e| !e) {
        return Err(ApiError::invalid_field(
            format!("channelIds[{i}]"),
            format!("unknown channel `{}`", raw[i]),
        ));
    }
    Ok(())
}

/// `channelIds` checked ([`Rule::parse_channel_ids`]), then each must name a channel of the org.
async fn parse_channels(
    state: &AppState,
    org: &OrgId,
    raw: &[String],
) -> ApiResult<Vec<ChannelId>> {
    let ids = Rule::parse_channel_ids(raw)?;
    check_channels_exist(state, org, &ids, raw).await?;
    Ok(ids)
}

/// A grouped rule (`alerting.groupBy`) needs a channel that takes group messages (Slack, or a
/// webhook other than PagerDuty): elsewhere its grouping would do nothing.
async fn check_grouped_rule_has_a_chat_channel(state: &AppState, rule: &Rule) -> ApiResult<()> {
    if rule.alerting.as_ref().is_none_or(|a| a.group_by.is_none())
        || any_channel(state, rule, |c| {
            herald_core::domain::group::takes_groups(&c.config)
        })
        .await?
    {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        "alerting.groupBy",
        "a grouped rule needs a Slack or webhook channel (not PagerDuty) to send its group messages to",
    ))
}

/// A digest rule needs an email, push or in-app channel: its other channels stay real-time,
/// so elsewhere the digest would do nothing.
async fn check_digest_has_a_person_channel(state: &AppState, rule: &Rule) -> ApiResult<()> {
    if rule.digest.is_none()
        || any_channel(state, rule, |c| digest::takes_digests(c.kind())).await?
    {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        "digest",
        "a digest needs an email, push or in-app channel (chat and webhook channels group with `alerting.groupBy`)",
    ))
}

/// Whether one of the rule's channels (those that exist) is one `takes`.
async fn any_channel(
    state: &AppState,
    rule: &Rule,
    takes: impl Fn(&Channel) -> bool,
) -> ApiResult<bool> {
    let channels = Channels::new(state.store.as_ref());
    for id in &rule.channel_ids {
        let channel = channels
            .get(&rule.org_id, id)
            .await
            .map_err(|e| ApiError::from_repo(e, "channel"))?;
        if channel.is_some_and(|c| takes(&c)) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn window(w: Option<&QuietWindow>) -> Option<(&str, &str)> {
    w.map(|w| (w.start.as_str(), w.end.as_str()))
}

/// A rule write refused by the repository, named for the client.
fn write_error(e: RepoError, rule: &Rule) -> ApiError {
    match e {
        RepoError::AlreadyExists => {
            ApiError::conflict(format!("a rule with key `{}` already exists", rule.key))
                .field("key")
        }
        RepoError::UnknownChannel(c) => {
            let i = rule
                .channel_ids
                .iter()
                .position(|x| *x == c)
                .unwrap_or_default();
            ApiError::invalid_field(format!("channelIds[{i}]"), format!("unknown channel `{c}`"))
        }
        e => ApiError::from_repo(e, "rule"),
    }
}

/// Creates a rule.
#[utoipa::path(
    post, path = "/api/v1/orgs/{orgId}/notifications/rules", tag = "rules",
    params(("orgId" = String, Path, description = "Org id (UUID)")),
    request_body = CreateRule,
    responses(
        (status = 201, description = "The new rule", body = RuleView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 409, description = "A rule with this key exists", body = ErrorBody),
        (status = 413, description = "Body over 256 KB", body = ErrorBody),
        (status = 422, description = "Invalid matcher (with the path of the bad node), unknown channel, bad time zone, digest out of bounds (`digest.windowSeconds` …)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn create_rule(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<CreateRule>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let input = NewRule {
        key: body.key,
        matcher: body.matcher,
        channel_ids: body.channel_ids,
        frequency_cap: body.frequency_cap,
        quiet_hours_tz: body.quiet_hours_tz,
        quiet_hours: body.quiet_hours.map(|w| (w.start, w.end)),
        recipients: body.recipients,
        template: body.template,
        alerting: body.alerting,
        digest: body.digest,
        critical: body.critical,
        enabled: body.enabled.unwrap_or(true),
    };
    let raw_channels = input.channel_ids.clone();
    let rule = Rule::new(auth.org_id, input, Utc::now())?;
    check_channels_exist(&state, &auth.org_id, &rule.channel_ids, &raw_channels).await?;
    check_grouped_rule_has_a_chat_channel(&state, &rule).await?;
    check_digest_has_a_person_channel(&state, &rule).await?;
    Rules::new(state.store.as_ref())
        .create(&rule)
        .await
        .map_err(|e| write_error(e, &rule))?;
    state.routing.changed(rule.org_id);
    tracing::info!(org_id = %rule.org_id, rule_key = %rule.key, "rule created");
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// Lists the org's rules in key order.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/rules", tag = "rules",
    params(
        ("orgId" = String, Path, description = "Org id (UUID)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of rules", body = RuleList),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn list_rules(
    State(state): State<AppState>,
    auth: OrgAuth,
    page: ListParams,
) -> ApiResult<Json<RuleList>> {
    let page = Rules::new(state.store.as_ref())
        .list(&auth.org_id, page.limit, page.cursor)
        .await
        .map_err(|e| ApiError::from_repo(e, "rule"))?;
    Ok(Json(RuleList {
        items: page.items.into_iter().map(RuleView::from).collect(),
        next_cursor: page.next.map(|c| c.as_str().to_owned()),
    }))
}

/// Reads a rule.
#[utoipa::path(
    get, path = "/api/v1/orgs/{orgId}/notifications/rules/{key}", tag = "rules",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("key" = String, Path, description = "Rule key")),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or rule", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_rule(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, key)): Path<(String, String)>,
) -> ApiResult<Json<RuleView>> {
    let key = rule_key(&key)?;
    let rule = Rules::new(state.store.as_ref())
        .get(&auth.org_id, &key)
        .await
        .map_err(|e| ApiError::from_repo(e, "rule"))?;
    rule.map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found("rule"))
}

/// Changes a rule.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{orgId}/notifications/rules/{key}", tag = "rules",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("key" = String, Path, description = "Rule key")),
    request_body = UpdateRule,
    responses(
        (status = 200, description = "The updated rule", body = RuleView),
        (status = 400, description = "Malformed JSON or wrong shape", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or rule", body = ErrorBody),
        (status = 422, description = "Invalid matcher, unknown channel, bad time zone, digest out of bounds (`digest.windowSeconds` …)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn update_rule(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateRule>,
) -> ApiResult<Json<RuleView>> {
    let key = rule_key(&key)?;
    let repo = Rules::new(state.store.as_ref());
    let mut rule = repo
        .get(&auth.org_id, &key)
        .await
        .map_err(|e| ApiError::from_repo(e, "rule"))?
        .ok_or_else(|| ApiError::not_found("rule"))?;
    if body.key.as_deref().is_some_and(|k| k != key.as_str()) {
        return Err(ApiError::invalid_field(
            "key",
            "a rule's key cannot change; create a new rule",
        ));
    }
    if let Some(m) = body.matcher {
        rule.matcher = Rule::parse_matcher(m)?;
    }
    if let Some(c) = body.frequency_cap {
        rule.frequency_cap = c.map(FrequencyCap::validate).transpose()?;
    }
    if body.quiet_hours_tz.is_some() || body.quiet_hours.is_some() {
        let current_tz = rule.quiet_hours.as_ref().map(|q| q.tz.name().to_owned());
        let current_window = rule.quiet_hours.as_ref().map(|q| QuietWindow {
            start: q.start.format("%H:%M").to_string(),
            end: q.end.format("%H:%M").to_string(),
        });
        let tz = body.quiet_hours_tz.unwrap_or(current_tz);
        let window_value = match body.quiet_hours {
            Some(w) => w,
            None if tz.is_some() => current_window,
            None => None,
        };
        rule.quiet_hours = QuietHours::from_parts(tz.as_deref(), window(window_value.as_ref()))?;
    }
    if let Some(r) = &body.recipients {
        rule.recipients = Rule::parse_recipients(r)?;
    }
    if let Some(a) = body.alerting {
        rule.alerting = a.map(Alerting::check).transpose()?;
    }
    if let Some(t) = body.template {
        rule.template = t.map(Template::check).transpose()?;
    }
    if let Some(d) = body.digest {
        rule.digest = d.map(Digest::check).transpose()?;
    }
    Rule::check_digest_alone(rule.alerting.as_ref(), rule.digest.as_ref())?;
    if let Some(critical) = body.critical {
        rule.critical = critical;
    }
    if let Some(enabled) = body.enabled {
        rule.enabled = enabled;
    }
    if let Some(ids) = &body.channel_ids {
        rule.channel_ids = parse_channels(&state, &auth.org_id, ids).await?;
    }
    check_grouped_rule_has_a_chat_channel(&state, &rule).await?;
    check_digest_has_a_person_channel(&state, &rule).await?;
    rule.updated_at = Utc::now();
    repo.update(&rule)
        .await
        .map_err(|e| write_error(e, &rule))?;
    state.routing.changed(rule.org_id);
    tracing::info!(org_id = %rule.org_id, rule_key = %rule.key, "rule updated");
    Ok(Json(rule.into()))
}

/// Deletes a rule.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{orgId}/notifications/rules/{key}", tag = "rules",
    params(("orgId" = String, Path, description = "Org id (UUID)"), ("key" = String, Path, description = "Rule key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such org or rule", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn delete_rule(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let key = rule_key(&key)?;
    Rules::new(state.store.as_ref())
        .delete(&auth.org_id, &key)
        .await
        .map_err(|e| ApiError::from_repo(e, "rule"))?;
    state.routing.changed(auth.org_id);
    tracing::info!(org_id = %auth.org_id, rule_key = %key, "rule deleted");
    Ok(StatusCode::NO_CONTENT)
}
