//! Delivery stats (org API key): `GET /api/v1/orgs/{orgId}/notifications/logs/stats`.
//!
//! Read from the counters the pipeline maintains as deliveries happen
//! (`herald_shared::repo::stats`), one partition per day: the cost grows with the days asked
//! for, never with the number of deliveries logged.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Days, NaiveDate, Utc};
use herald_core::domain::{ChannelId, OrgId};
use herald_shared::repo::Channels;
use herald_shared::repo::stats::{self, Summary};
use herald_shared::store::keys;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::dates::day;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::query::QueryParams;

const STATS: &str = "/api/v1/orgs/{orgId}/notifications/logs/stats";
/// The longest range one query reads.
pub const MAX_DAYS: i64 = 366;

pub fn router() -> Router<AppState> {
    Router::new().route(STATS, get(get_stats))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
/// The query string, checked by the handler.
pub struct RawParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
}

/// How groups are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Channel,
    Rule,
    Day,
}

/// One group's counters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The channel id, rule key or day (`YYYY-MM-DD`).
    pub key: String,
    /// `groupBy=channel`: the channel's name as it is now; `null` for a deleted channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = true)]
    pub channel_name: Option<Option<String>>,
    /// `groupBy=rule`: the rule's key (the name rules are addressed by).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_key: Option<String>,
    #[serde(flatten)]
    pub summary: Summary,
}

/// The stats answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsAnswer {
    /// First day counted (UTC).
    pub from: NaiveDate,
    /// Last day counted (UTC, inclusive).
    pub to: NaiveDate,
    pub group_by: GroupBy,
    pub groups: Vec<Group>,
    pub totals: Summary,
}

/// Delivery stats: counts by status and by engagement event, success rate, latency p50/p95.
///
/// Counters are kept per UTC day (the day a delivery was created), so `from` and `to` select
/// whole days: every day they touch, both included. Default: the last 7 days. `groupBy`:
/// `channel` (default), `rule` or `day`. `latencyMs` is the time from the event's receipt to the
/// delivery's final attempt, estimated from a histogram (the upper bound of the bucket holding
/// the percentile). `deferred` counts deliveries held by quiet hours, which are later counted
/// again under the status they end with. `deduplicated`, `grouped` and `silenced` count what
/// rules did with alert events instead of sending them — per (event, rule, channel), on the day
/// the event was matched: a trigger counted into an alert already notified, left to a group
/// message, held back by a silence (a silenced delivery on record is also `suppressed`).
#[utoipa::path(
    get, path = STATS, tag = "logs",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD; default 6 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (its day included); default today"),
        ("groupBy" = Option<String>, Query, description = "channel (default), rule or day"),
    ),
    responses(
        (status = 200, description = "Counters by group, and totals", body = StatsAnswer),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_stats(
    State(state): State<AppState>,
    auth: OrgAuth,
    QueryParams(raw): QueryParams<RawParams>,
) -> ApiResult<Json<StatsAnswer>> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let to = match non_empty(raw.to) {
        Some(v) => day(&v, "to")?,
        None => Utc::now().date_naive(),
    };
    let from = match non_empty(raw.from) {
        Some(v) => day(&v, "from")?,
        None => to
            .checked_sub_days(Days::new(6))
            .unwrap_or(crate::dates::EARLIEST),
    };
    if from > to {
        return Err(ApiError::invalid_query("from", "`from` is after `to`"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::invalid_query(
            "from",
            format!("at most {MAX_DAYS} days per query"),
        ));
    }
    let group_by = match non_empty(raw.group_by).as_deref() {
        None | Some("channel") => GroupBy::Channel,
        Some("rule") => GroupBy::Rule,
        Some("day") => GroupBy::Day,
        Some(other) => {
            return Err(ApiError::invalid_query(
                "groupBy",
                format!("`{other}` is not a grouping: one of channel, rule, day"),
            ));
        }
    };
    let mut answer = read(state.store.as_ref(), auth.org_id, from, to, group_by)
        .await
        .map_err(ApiError::internal)?;
    if group_by == GroupBy::Channel {
        name_channels(state.store.as_ref(), auth.org_id, &mut answer.groups).await?;
    }
    Ok(Json(answer))
}

/// Gives each channel group its channel's current name, in one batched read: `null` for a
/// channel no longer on record.
async fn name_channels(
    store: &dyn herald_shared::store::Store,
    org: OrgId,
    groups: &mut [Group],
) -> ApiResult<()> {
    let ids: Vec<Option<ChannelId>> = groups.iter().map(|g| g.key.parse().ok()).collect();
    let known: Vec<ChannelId> = ids.iter().flatten().copied().collect();
    let mut channels = Channels::new(store)
        .get_many(&org, &known)
        .await?
        .into_iter();
    for (group, id) in groups.iter_mut().zip(ids) {
        let channel = match id {
            Some(_) => channels.next().flatten(),
            None => None,
        };
        group.channel_name = Some(channel.map(|c| c.name.as_str().to_owned()));
    }
    Ok(())
}

/// Reads and aggregates the counters of `from..=to`.
pub async fn read(
    store: &dyn herald_shared::store::Store,
    org: herald_core::domain::OrgId,
    from: NaiveDate,
    to: NaiveDate,
    group_by: GroupBy,
) -> Result<StatsAnswer, herald_shared::store::StoreError> {
    let mut groups: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut totals = BTreeMap::new();
    let mut d = from;
    while d <= to {
        tokio::task::yield_now().await;
        let items = stats::read_day(store, org, d).await?;
        for (sk, nums) in &items {
            let key = match (group_by, sk.as_str()) {
                (_, "ALL") => {
                    stats::merge(&mut totals, nums);
                    if group_by == GroupBy::Day {
                        Some(d.format("%Y-%m-%d").to_string())
                    } else {
                        None
                    }
                }
                (GroupBy::Channel, sk) => sk
                    .strip_prefix(keys::STATS_CHANNEL_PREFIX)
                    .map(str::to_owned),
                (GroupBy::Rule, sk) => sk.strip_prefix(keys::STATS_RULE_PREFIX).map(str::to_owned),
                (GroupBy::Day, _) => None,
            };
            if let Some(key) = key {
                stats::merge(groups.entry(key).or_default(), nums);
            }
        }
        d = match d.succ_opt() {
            Some(next) => next,
            None => break,
        };
    }
    Ok(StatsAnswer {
        from,
        to,
        group_by,
        groups: groups
            .into_iter()
            .map(|(key, nums)| Group {
                rule_key: (group_by == GroupBy::Rule).then(|| key.clone()),
                channel_name: None,
                key,
                summary: stats::summarise(&nums),
            })
            .collect(),
        totals: stats::summarise(&totals),
    })
}
