//! Rule replay and apply (org API key).
//!
//! `POST /notifications/rules/replay {rules, since, until?, limit?, examples?, resumeFrom?}`
//! routes the org's stored events of a window (from the by-time index ingest writes) through
//! the live rules and through `rules`, a draft of the whole rule set, both with the compiled
//! matcher and the fan-out routing uses (`herald_core::rules::replay`), and answers the diff
//! with the rules version it was computed against. It reads and writes nothing else.
//!
//! `POST /notifications/rules/batch {rules, expectedRulesVersion}` then makes `rules` the org's
//! rule set in one transaction — changed and new rules put, rules not in it deleted, the version
//! bumped — only while the version is still `expectedRulesVersion` (409 `rules_changed`
//! otherwise, nothing written): what was replayed is what is applied.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use herald_core::domain::channel::Channel;
use herald_core::domain::rule::Rule;
use herald_core::domain::{ChannelId, RuleKey};
use herald_core::rules::RuleSet;
use herald_core::rules::replay::{
    self, ChannelDiff, Diff, Examples, NOT_SIMULATED, RuleDiff, Totals,
};
use herald_shared::repo::{Rules, channels, events, rules};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::explain::draft_rules;
use crate::rules::CreateRule;

const REPLAY: &str = "/api/v1/orgs/{orgId}/notifications/rules/replay";
const BATCH: &str = "/api/v1/orgs/{orgId}/notifications/rules/batch";
/// The longest window one replay reads.
pub const MAX_WINDOW_DAYS: i64 = 7;
/// Events one replay reads by default, and at most.
pub const DEFAULT_LIMIT: usize = 10_000;
/// Example events (and sample ids per rule) by default, and at most.
pub const DEFAULT_EXAMPLES: usize = 10;
pub const MAX_EXAMPLES: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(REPLAY, post(replay_rules))
        .route(BATCH, post(apply_rules))
}

/// `POST .../notifications/rules/replay` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// The draft: the whole rule set as it would be, each rule as `POST /notifications/rules`
    /// takes it (checked exactly as rule creation checks it). A live rule not in it is a
    /// deletion; `[]` deletes every rule.
    #[schema(value_type = Vec<CreateRule>)]
    pub rules: Vec<Value>,
    /// Start of the window (RFC 3339), inclusive: events received at or after it.
    pub since: String,
    /// End of the window (RFC 3339), exclusive; default now. At most 7 days after `since`.
    pub until: Option<String>,
    /// Most events to replay, 1–10,000 (default 10,000); beyond, `truncated` and `resumeFrom`.
    pub limit: Option<usize>,
    /// Example events of each kind and sample ids per rule, 0–100 (default 10).
    pub examples: Option<usize>,
    /// Go on after a truncated replay: its `resumeFrom`, with the same window.
    pub resume_from: Option<String>,
}

/// The routing diff of a draft against the live rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayAnswer {
    /// The live rules version the diff was computed against: pass it to
    /// `POST /notifications/rules/batch` as `expectedRulesVersion`.
    pub rules_version: i64,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Events of the window replayed (this call's part when resumed).
    pub events_scanned: usize,
    /// More events of the window follow: call again with `resumeFrom`.
    pub truncated: bool,
    pub resume_from: Option<String>,
    pub totals: Totals,
    /// Every rule of either side, by key.
    pub by_rule: Vec<RuleDiff>,
    /// Every channel with a delivery on either side.
    pub by_channel: Vec<ChannelDiff>,
    pub examples: Examples,
    /// Stages of the pipeline not simulated: a delivery counted here may still be capped,
    /// deferred, silenced, deduplicated into an alert or suppressed.
    pub not_simulated: Vec<String>,
    pub note: String,
}

/// Replays the org's stored events of a window through a draft rule set and the live rules,
/// and answers the routing diff — writing nothing, sending nothing.
///
/// Both sides are routed now, with the compiled matcher and the fan-out (channels × recipients)
/// routing uses; per event the (channel, recipient) pairs are compared. The window is
/// `[since, until)`, at most 7 days, inside the log retention; events stored before the
/// by-time index existed cannot be replayed. At most `limit` events per call, oldest first;
/// beyond, `truncated` and `resumeFrom`.
#[utoipa::path(
    post, path = REPLAY, tag = "rules",
    params(("orgId" = String, Path, description = "Org id")),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "The diff, against `rulesVersion`", body = ReplayAnswer),
        (status = 400, description = "Malformed JSON, a missing or unknown field, a timestamp that is not RFC 3339 (`since`, `until`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 422, description = "A draft rule refused as rule creation refuses it (`rules[i].match.all[0].op`, `rules[i].channelIds[0]`) or a duplicate key (`rules[i].key`); `until` before `since` or more than 7 days after it (`until`); `since` before the retention (`since`); `limit`, `examples` or `resumeFrom` out of range", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn replay_rules(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<ReplayRequest>,
) -> ApiResult<Json<ReplayAnswer>> {
    let store = state.store.as_ref();
    let org = auth.org_id;
    let now = Utc::now();
    let since = timestamp("since", &body.since)?;
    let until = match &body.until {
        Some(until) => timestamp("until", until)?,
        None => now,
    };
    if until < since {
        return Err(ApiError::invalid_field(
            "until",
            format!("`until` ({until}) is before `since` ({since})"),
        ));
    }
    if until - since > Duration::days(MAX_WINDOW_DAYS) {
        return Err(ApiError::invalid_field(
            "until",
            format!(
                "a replay window is at most {MAX_WINDOW_DAYS} days: replay a longer period in several calls"
            ),
        ));
    }
    let retained = now - state.config.event_retention;
    if since < retained {
        return Err(ApiError::invalid_field(
            "since",
            format!(
                "events are kept {} days: `since` must be after {}",
                state.config.event_retention.num_days(),
                retained.to_rfc3339()
            ),
        ));
    }
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=DEFAULT_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {DEFAULT_LIMIT}"),
        ));
    }
    let samples = body.examples.unwrap_or(DEFAULT_EXAMPLES);
    if samples > MAX_EXAMPLES {
        return Err(ApiError::invalid_field(
            "examples",
            format!("must be between 0 and {MAX_EXAMPLES}"),
        ));
    }
    if let Some(resume) = &body.resume_from {
        match events::position_time(resume) {
            Some(t) if t >= since && t < until => {}
            _ => {
                return Err(ApiError::invalid_field(
                    "resumeFrom",
                    "not a `resumeFrom` of a replay of this window: pass it back unchanged, with the same `since` and `until`",
                ));
            }
        }
    }

    let channels = org_channels(&state, org).await?;
    let draft = draft_rules(org, body.rules, &channels, now)?;
    // The version first: rules read after it are at least as new, so an apply against it can
    // only be refused, never apply over a change this diff did not see.
    let rules_version = Rules::new(store).version(&org).await?;
    let live = rules::list_all(store, org)
        .await
        .map_err(ApiError::internal)?;
    let (live_set, draft_set) = (RuleSet::compile(&live), RuleSet::compile(&draft));
    let window = events::in_window(store, org, since, until, body.resume_from.as_deref(), limit)
        .await
        .map_err(ApiError::internal)?;

    let find = |id: &ChannelId| channels.get(id);
    let mut diff = Diff::new(
        live.iter().map(|r| &r.key),
        draft.iter().map(|r| &r.key),
        samples,
    );
    for indexed in &window.events {
        let event = &indexed.event;
        let l = replay::route(&live_set, event, find);
        let d = replay::route(&draft_set, event, find);
        diff.add(event, &l, &d);
    }
    let resume_from = window
        .more
        .then(|| window.events.last().map(|e| e.position.clone()))
        .flatten();
    Ok(Json(ReplayAnswer {
        rules_version,
        since,
        until,
        events_scanned: window.events.len(),
        truncated: window.more,
        resume_from,
        totals: diff.totals.clone(),
        by_rule: diff.by_rule(),
        by_channel: diff.by_channel(),
        examples: diff.examples.clone(),
        not_simulated: NOT_SIMULATED.iter().map(|s| (*s).to_owned()).collect(),
        note: "nothing was written or sent; both sides routed now from the stored events; events stored before the by-time index existed are not replayed".to_owned(),
    }))
}

/// `POST .../notifications/rules/batch` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyRequest {
    /// The org's whole rule set as it is to be (the draft that was replayed), each rule as
    /// `POST /notifications/rules` takes it. A live rule not in it is deleted.
    #[schema(value_type = Vec<CreateRule>)]
    pub rules: Vec<Value>,
    /// The `rulesVersion` the replay answered: the apply is refused (409 `rules_changed`,
    /// nothing written) if the rules changed since.
    pub expected_rules_version: i64,
}

/// What the apply changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyAnswer {
    /// The rules version now (unchanged when nothing was to change).
    pub rules_version: i64,
    /// Rules created or replaced.
    pub upserted: Vec<RuleKey>,
    /// Rules deleted.
    pub deleted: Vec<RuleKey>,
    /// Rules already as the draft has them (not written).
    pub unchanged: usize,
}

/// Makes a draft the org's rule set, atomically, if the rules have not changed since it was
/// replayed.
///
/// New and changed rules are put, live rules the draft leaves out are deleted, and the rules
/// version is bumped, in one transaction guarded by `expectedRulesVersion`: a rules version
/// that moved is a 409 `rules_changed` and nothing is written. One transaction holds at most
/// 100 writes — a put per changed rule, a check per channel they name, a delete per removed
/// rule, and the version — beyond, 422.
#[utoipa::path(
    post, path = BATCH, tag = "rules",
    params(("orgId" = String, Path, description = "Org id")),
    request_body = ApplyRequest,
    responses(
        (status = 200, description = "Applied: the new rules version and what changed", body = ApplyAnswer),
        (status = 400, description = "Malformed JSON, a missing or unknown field (`expectedRulesVersion` is required)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 409, description = "`rules_changed`: the rules version is no longer `expectedRulesVersion`; nothing was written. `conflict`: a concurrent write kept the transaction from committing; retry", body = ErrorBody),
        (status = 422, description = "A rule refused as rule creation refuses it (`rules[i].match.all[0].op`, `rules[i].channelIds[0]`), a duplicate key (`rules[i].key`), or more writes than one transaction holds (`rules`)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn apply_rules(
    State(state): State<AppState>,
    auth: OrgAuth,
    JsonBody(body): JsonBody<ApplyRequest>,
) -> ApiResult<Json<ApplyAnswer>> {
    let store = state.store.as_ref();
    let org = auth.org_id;
    let now = Utc::now();
    let channels = org_channels(&state, org).await?;
    let draft = draft_rules(org, body.rules, &channels, now)?;
    let repo = Rules::new(store);
    let current = repo.version(&org).await?;
    if current != body.expected_rules_version {
        return Err(ApiError::from_repo(
            herald_shared::repo::RepoError::RulesChanged {
                expected: body.expected_rules_version,
                current,
            },
            "rule",
        ));
    }
    let live: HashMap<RuleKey, Rule> = rules::list_all(store, org)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    let mut upserts = Vec::new();
    let mut unchanged = 0;
    for mut rule in draft.iter().cloned() {
        if let Some(was) = live.get(&rule.key) {
            rule.created_at = was.created_at;
            let same = Rule {
                updated_at: was.updated_at,
                ..rule.clone()
            };
            if &same == was {
                unchanged += 1;
                continue;
            }
        }
        upserts.push(rule);
    }
    let mut deleted: Vec<RuleKey> = live
        .keys()
        .filter(|k| !draft.iter().any(|r| &r.key == *k))
        .cloned()
        .collect();
    deleted.sort();
    if upserts.is_empty() && deleted.is_empty() {
        return Ok(Json(ApplyAnswer {
            rules_version: current,
            upserted: Vec::new(),
            deleted,
            unchanged,
        }));
    }
    let rules_version = repo
        .apply(&org, &upserts, &deleted, body.expected_rules_version)
        .await
        .map_err(|e| match e {
            herald_shared::repo::RepoError::UnknownChannel(c) => unknown_channel(&draft, c),
            e => ApiError::from_repo(e, "rule"),
        })?;
    state.routing.changed(org);
    tracing::info!(org_id = %org, rules_version, upserted = upserts.len(), deleted = deleted.len(), "rule set applied");
    Ok(Json(ApplyAnswer {
        rules_version,
        upserted: upserts.into_iter().map(|r| r.key).collect(),
        deleted,
        unchanged,
    }))
}

/// A channel deleted between the draft's check and the transaction: its path in the draft.
fn unknown_channel(draft: &[Rule], channel: ChannelId) -> ApiError {
    for (i, rule) in draft.iter().enumerate() {
        if let Some(j) = rule.channel_ids.iter().position(|c| *c == channel) {
            return ApiError::invalid_field(
                format!("rules[{i}].channelIds[{j}]"),
                format!("no channel `{channel}` in this org"),
            );
        }
    }
    ApiError::invalid_field("rules", format!("no channel `{channel}` in this org"))
}

async fn org_channels(
    state: &AppState,
    org: herald_core::domain::OrgId,
) -> ApiResult<HashMap<ChannelId, Channel>> {
    Ok(channels::list_all(state.store.as_ref(), org)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|c| (c.id, c))
        .collect())
}

fn timestamp(field: &str, value: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_body(field, format!("`{value}` is not an RFC 3339 timestamp"))
        })
}
