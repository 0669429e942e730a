//! Rule explain (org API key): `POST /notifications/rules/explain {event | eventId, at?, rules?,
//! include?}` — for every rule of the org (or a draft rule set), whether it matches the event
//! and, when not, why (`herald_core::rules::explain`); for a match, each channel and recipient
//! and what would become of the delivery (`herald_core::delivery::plan`): send, defer until the
//! end of quiet hours, suppress (channel disabled, frequency cap reached, opted out) or fail (no
//! recipient, no contact point).
//!
//! It reads — rules, channels, user profiles, frequency-cap counters (a `GetItem`, never an
//! `ADD`) — and writes nothing, queues nothing, sends nothing. The live matcher caches rules for
//! a few seconds, so a rule changed in the last 5 s may not route yet as explain says.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::delivery::caps;
use herald_core::delivery::plan::{self, Facts, Outcome};
use herald_core::domain::channel::{Channel, ChannelKind};
use herald_core::domain::event::EventInput;
use herald_core::domain::rule::{NewRule, Rule};
use herald_core::domain::user::UserProfile;
use herald_core::domain::{ChannelId, DeliveryId, EventId, OrgId, UserId};
use herald_core::rules::explain::{Failure, explain};
use herald_shared::pipeline::delivery_id;
use herald_shared::repo::{channels, events, rules, users};
use herald_shared::store::keys;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::{JsonBody, from_value};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::rules::CreateRule;

const EXPLAIN: &str = "/api/v1/orgs/{orgId}/notifications/rules/explain";
/// Most rules of a draft.
pub const MAX_DRAFT_RULES: usize = 1000;
/// Most deliveries one explain details; beyond, `truncated`.
pub const MAX_DELIVERIES: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route(EXPLAIN, post(explain_rules))
}

/// `POST .../notifications/rules/explain` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplainRequest {
    /// An event as `POST /events` takes it (one, not a batch). Either this or `eventId`.
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// A stored event's id: explain what routing would do with it now.
    pub event_id: Option<String>,
    /// The instant to evaluate quiet hours and frequency-cap windows at (RFC 3339); default now.
    pub at: Option<String>,
    /// A draft rule set, each rule as `POST /notifications/rules` takes it, explained instead of
    /// the org's rules (checked exactly as rule creation does; nothing is saved).
    #[schema(value_type = Option<Vec<CreateRule>>)]
    pub rules: Option<Vec<Value>>,
    /// `all` (default) or `matched`: only the rules that match.
    pub include: Option<ExplainInclude>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExplainInclude {
    #[default]
    All,
    Matched,
}

/// The explanation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The instant quiet hours and caps were evaluated at.
    pub evaluated_at: DateTime<Utc>,
    /// `live` (the org's rules) or `draft` (the request's `rules`).
    pub rules_source: String,
    /// The event as routing sees it (normalised).
    #[schema(value_type = Object)]
    pub event: Value,
    pub rules: Vec<RuleExplanation>,
    pub summary: ExplainSummary,
    /// More deliveries would be made than are detailed (1,000).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    pub note: String,
}

/// One rule, explained.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleExplanation {
    pub key: String,
    pub enabled: bool,
    pub matched: bool,
    /// Why not, when not matched: under `all` its first failing child, under `any` each child,
    /// under `not` that the inner matcher matched, at a leaf the field, op, expected and actual
    /// values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<Failure>,
    /// What a match would deliver.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<WouldDeliver>,
}

/// What would become of one delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WouldDeliver {
    pub channel_id: ChannelId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChannelKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub recipient: Option<UserId>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The end of the quiet hours it would wait for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The delivery's id, for a stored event (`eventId`): the log row routing made or would make.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<DeliveryId>,
}

/// Counts over the rules explained.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainSummary {
    pub evaluated: usize,
    pub matched: usize,
    pub would_send: usize,
    pub would_defer: usize,
    pub would_suppress: usize,
    pub would_fail: usize,
}

/// Explains which rules an event matches and what each would deliver — without writing or
/// sending anything.
///
/// Give `event` (as `POST /events` takes one) or `eventId` (a stored event); `at` evaluates
/// quiet hours and frequency caps at another instant; `rules` explains a draft rule set instead
/// of the org's rules (each rule checked as creation checks it; a bad one is a 422 naming
/// `rules[i].<field>`).
#[utoipa::path(
    post, path = EXPLAIN, tag = "rules",
    params(("orgId" = String, Path, description = "Org id")),
    request_body = ExplainRequest,
    responses(
        (status = 200, description = "Every rule: matched or why not; for matches, what each delivery would do", body = Explanation),
        (status = 400, description = "Both or neither of `event` and `eventId`, an invalid event (its field under `event.`), a bad `at`, an unknown field", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "`eventId`: no such event in this org (or past its retention)", body = ErrorBody),
        (status = 422, description = "A draft rule refused as rule creation refuses it (`rules[i].match.all[0].op`, `rules[i].channelIds[0]`), or a duplicate key in the draft; an event refused (its field under `event.`)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn explain_rules(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<ExplainRequest>,
) -> ApiResult<Json<Explanation>> {
    let store = state.store.as_ref();
    let org = auth.org_id;
    let now = Utc::now();
    let at = match &body.at {
        None => now,
        Some(at) => DateTime::parse_from_rfc3339(at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid_body("at", format!("`{at}` is not an RFC 3339 timestamp"))
            })?,
    };
    let (event, stored) = match (body.event, body.event_id) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid_body(
                "event",
                "give either `event` or `eventId`",
            ));
        }
        (Some(event), None) => {
            let input: EventInput = from_value(event, "event")?;
            let event = input
                .into_event(org, EventId::generate, now, now)
                .map_err(|e| ApiError::from(e.under("event")))?;
            (event, false)
        }
        (None, Some(id)) => {
            let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
            let record = events::get(store, org, &id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found("event"))?;
            (record.event, true)
        }
    };
    let channels: HashMap<ChannelId, Channel> = channels::list_all(store, org)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let (rules, source) = match body.rules {
        Some(draft) => (draft_rules(org, draft, &channels, now)?, "draft"),
        None => (
            rules::list_all(store, org)
                .await
                .map_err(ApiError::internal)?,
            "live",
        ),
    };
    let include = body.include.unwrap_or_default();
    let mut out = Explanation {
        evaluated_at: at,
        rules_source: source.to_owned(),
        event: serde_json::to_value(&event).map_err(ApiError::internal)?,
        rules: Vec::new(),
        summary: ExplainSummary::default(),
        truncated: false,
        note: "nothing was written or sent; the live matcher caches rules and channels for up to 5 s, so a change made in the last seconds may not route yet as explained".to_owned(),
    };
    let mut profiles: HashMap<UserId, Option<UserProfile>> = HashMap::new();
    let mut detailed = 0;
    for rule in &rules {
        out.summary.evaluated += 1;
        let trace = explain(rule, &event);
        let mut explained = RuleExplanation {
            key: rule.key.to_string(),
            enabled: rule.enabled,
            matched: trace.matched,
            because: trace.because,
            deliveries: Vec::new(),
        };
        if trace.matched {
            out.summary.matched += 1;
            for channel_id in &rule.channel_ids {
                let Some(channel) = channels.get(channel_id) else {
                    // Live rules only: a deleted channel's deliveries are skipped by the matcher.
                    explained.deliveries.push(WouldDeliver {
                        channel_id: *channel_id,
                        kind: None,
                        recipient: None,
                        outcome: Outcome::WouldFail,
                        reason: Some("the channel no longer exists: no delivery is made".into()),
                        until: None,
                        delivery_id: None,
                    });
                    out.summary.would_fail += 1;
                    continue;
                };
                for recipient in plan::recipients(&event, rule, channel) {
                    if detailed == MAX_DELIVERIES {
                        out.truncated = true;
                        break;
                    }
                    detailed += 1;
                    let user = recipient.as_ref().map(|r| r.user_id.clone());
                    let profile = match &user {
                        Some(u) if channel.kind().is_user_facing() => {
                            if !profiles.contains_key(u) {
                                let p = users::get(store, &org, u).await?;
                                profiles.insert(u.clone(), p);
                            }
                            profiles.get(u).and_then(Option::as_ref)
                        }
                        _ => None,
                    };
                    let cap_used = cap_used(&state, org, rule, channel, user.as_ref(), at).await?;
                    let decision = plan::decide(
                        rule,
                        channel,
                        Facts {
                            recipient: recipient.as_ref(),
                            profile,
                            cap_used,
                        },
                        at,
                    );
                    match decision.outcome {
                        Outcome::WouldSend => out.summary.would_send += 1,
                        Outcome::WouldDefer => out.summary.would_defer += 1,
                        Outcome::WouldSuppress => out.summary.would_suppress += 1,
                        Outcome::WouldFail => out.summary.would_fail += 1,
                    }
                    explained.deliveries.push(WouldDeliver {
                        channel_id: channel.id,
                        kind: Some(channel.kind()),
                        delivery_id: stored
                            .then(|| delivery_id(&event, &rule.key, channel.id, user.as_ref())),
                        recipient: user,
                        outcome: decision.outcome,
                        reason: decision.reason,
                        until: decision.until,
                    });
                }
            }
        }
        if include == ExplainInclude::All || explained.matched {
            out.rules.push(explained);
        }
    }
    Ok(Json(out))
}

/// The draft rules, each checked as `POST /notifications/rules` checks it: errors name
/// `rules[i].<field>`; a channel must be one of the org's; keys are unique within the draft.
pub(crate) fn draft_rules(
    org: OrgId,
    draft: Vec<Value>,
    channels: &HashMap<ChannelId, Channel>,
    now: DateTime<Utc>,
) -> ApiResult<Vec<Rule>> {
    if draft.len() > MAX_DRAFT_RULES {
        return Err(ApiError::invalid_body(
            "rules",
            format!("at most {MAX_DRAFT_RULES} draft rules"),
        ));
    }
    let mut out: Vec<Rule> = Vec::with_capacity(draft.len());
    for (i, value) in draft.into_iter().enumerate() {
        let at = format!("rules[{i}]");
        let body: CreateRule = from_value(value, &at)?;
        let raw_channels = body.channel_ids.clone();
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
        let rule = Rule::new(org, input, now).map_err(|e| ApiError::from(e.under(&at)))?;
        for (j, id) in rule.channel_ids.iter().enumerate() {
            if !channels.contains_key(id) {
                return Err(ApiError::invalid_field(
                    format!("{at}.channelIds[{j}]"),
                    format!(
                        "no channel `{}` in this org",
                        raw_channels.get(j).map_or("", String::as_str)
                    ),
                ));
            }
        }
        if out.iter().any(|r| r.key == rule.key) {
            return Err(ApiError::invalid_field(
                format!("{at}.key"),
                format!("the draft has two rules with key `{}`", rule.key),
            ));
        }
        out.push(rule);
    }
    Ok(out)
}

/// Deliveries already counted against `rule`'s frequency cap on `channel` for `user` in the
/// window at `at`: the counter, read, never added to.
async fn cap_used(
    state: &AppState,
    org: OrgId,
    rule: &Rule,
    channel: &Channel,
    user: Option<&UserId>,
    at: DateTime<Utc>,
) -> ApiResult<u32> {
    let (Some(cap), Some(user)) = (caps::effective(rule, channel.frequency_cap), user) else {
        return Ok(0);
    };
    let window = caps::window(cap, at);
    let key = keys::cap_counter(org, channel.id, user.as_str(), cap, &window);
    let used = state
        .store
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .and_then(|item| item.nums.get(keys::CAP_COUNT_ATTR).copied())
        .unwrap_or(0);
    Ok(u32::try_from(used.max(0)).unwrap_or(u32::MAX))
}
