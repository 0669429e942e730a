//! One event (org API key): `GET /events/{eventId}` — the stored event and, per rule, what
//! routing did with it: matched, with the deliveries it made (queued, deferred for quiet hours,
//! capped, suppressed, failed) and each one's status now; or not matched.
//!
//! Reads the event record (one `GetItem`), the deliveries it lists (one batched read) and the
//! org's rules (one query) — never a scan. The matcher writes each matched rule's deliveries on
//! the record when it marks it matched (`repo::events::RuleRoute`), in the write it already made.
//! A rule that did not match is any of the org's rules not on the record; one created or changed
//! after the event was matched says so (`changedSince`): its outcome is the rule's as it was.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_core::domain::delivery::{Delivery, DeliveryStatus};
use herald_core::domain::{ChannelId, DeliveryId, EventId, UserId};
use herald_shared::repo::events::{self, EventRecord, RoutedDelivery, Stage};
use herald_shared::repo::rules;
use herald_shared::store::keys;
use serde::Serialize;

use crate::AppState;
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};

const ONE: &str = "/api/v1/orgs/{orgId}/events/{eventId}";

pub fn router() -> Router<AppState> {
    Router::new().route(ONE, get(get_event))
}

/// An event and what each rule did with it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    /// The event as stored (normalised: `recipients` objects, `receivedAt`).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// `accepted`: waiting for the matcher; `matched`: every delivery it causes is on record.
    pub stage: EventStage,
    /// When the matcher recorded its deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_at: Option<DateTime<Utc>>,
    /// Deliveries the event caused.
    pub deliveries: u32,
    /// Every rule of the org, matched ones first (in routing order), then the others by key;
    /// and matched rules deleted since.
    pub rules: Vec<RuleOutcome>,
    /// The event caused more deliveries than the record lists (250): the log has them all
    /// (`GET /notifications/logs?ruleKey=`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deliveries_truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStage {
    Accepted,
    Matched,
}

/// What one rule did with the event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleOutcome {
    pub rule_key: String,
    pub outcome: RuleOutcomeKind,
    /// The deliveries a matched rule made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<EventDelivery>,
    /// The rule was created or changed after the event was matched: its outcome is the old
    /// rule's (`not_matched` may not hold for the rule as it is; try explain).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub changed_since: bool,
    /// The rule matched but has been deleted since.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleOutcomeKind {
    /// The rule fired: see `deliveries`.
    Matched,
    NotMatched,
    /// The event is not matched yet.
    Pending,
}

/// One delivery a matched rule made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDelivery {
    pub delivery_id: DeliveryId,
    pub channel_id: ChannelId,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub recipient: Option<UserId>,
    /// What the matcher did: `queued` (for sending), `deferred` (quiet hours), `capped`
    /// (frequency cap reached), `suppressed` (disabled channel), `failed` (no recipient),
    /// `batched` (joined a digest: `deliveryId` is the digest's, `reason` says when it is sent).
    pub routed: Routed,
    /// Why, for all but `queued`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The delivery's status now (absent when it is past its retention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Routed {
    Queued,
    Deferred,
    Capped,
    Suppressed,
    Failed,
    Batched,
}

impl Routed {
    fn of(d: &RoutedDelivery) -> Self {
        match d.status {
            DeliveryStatus::Deferred => Self::Deferred,
            DeliveryStatus::Suppressed
                if d.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("frequency cap")) =>
            {
                Self::Capped
            }
            DeliveryStatus::Suppressed => Self::Suppressed,
            DeliveryStatus::Failed => Self::Failed,
            DeliveryStatus::Queued
                if d.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(herald_core::domain::digest::BATCHED_INTO)) =>
            {
                Self::Batched
            }
            DeliveryStatus::Queued | DeliveryStatus::Sent | DeliveryStatus::Delivered => {
                Self::Queued
            }
        }
    }
}

/// One event and what each rule did with it.
#[utoipa::path(
    get, path = ONE, tag = "events",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("eventId" = String, Path, description = "The event's id (yours, or the one `POST /events` answered)"),
    ),
    responses(
        (status = 200, description = "The event, and per rule: matched (with its deliveries) or not", body = EventDetail),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such event in this org (or past its retention)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_event(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<EventDetail>> {
    let store = state.store.as_ref();
    let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
    let record = events::get(store, auth.org_id, &id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let live = rules::list_all(store, auth.org_id)
        .await
        .map_err(ApiError::internal)?;
    let ids: Vec<DeliveryId> = record
        .routes
        .iter()
        .flat_map(|r| r.deliveries.iter().map(|d| d.delivery_id))
        .collect();
    let keys: Vec<_> = ids
        .iter()
        .map(|d| keys::delivery(auth.org_id, *d))
        .collect();
    let now: std::collections::HashMap<DeliveryId, DeliveryStatus> = store
        .get_many(&keys)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .flatten()
        .filter_map(|item| serde_json::from_value::<Delivery>(item.doc).ok())
        .map(|d| (d.id, d.status))
        .collect();
    Ok(Json(detail(record, &live, &now)?))
}

fn detail(
    record: EventRecord,
    live: &[herald_core::domain::rule::Rule],
    now: &std::collections::HashMap<DeliveryId, DeliveryStatus>,
) -> ApiResult<EventDetail> {
    let matched = record.stage == Stage::Matched;
    let matched_at = matched.then_some(record.updated_at);
    let changed = |key: &str| {
        live.iter()
            .find(|r| r.key.as_str() == key)
            .is_some_and(|r| matched && r.updated_at > record.updated_at)
    };
    let mut out: Vec<RuleOutcome> = Vec::new();
    // Records matched before routes were kept name their rules only.
    let routes: Vec<(String, Vec<RoutedDelivery>)> = if record.routes.is_empty() {
        record
            .matched_rules
            .iter()
            .map(|k| (k.clone(), Vec::new()))
            .collect()
    } else {
        record
            .routes
            .into_iter()
            .map(|r| (r.rule_key, r.deliveries))
            .collect()
    };
    for (key, deliveries) in routes {
        out.push(RuleOutcome {
            outcome: RuleOutcomeKind::Matched,
            deliveries: deliveries
                .iter()
                .map(|d| EventDelivery {
                    delivery_id: d.delivery_id,
                    channel_id: d.channel_id,
                    recipient: d.recipient.clone(),
                    routed: Routed::of(d),
                    reason: d.reason.clone(),
                    status: now.get(&d.delivery_id).copied(),
                })
                .collect(),
            changed_since: changed(&key),
            deleted: !live.iter().any(|r| r.key.as_str() == key),
            rule_key: key,
        });
    }
    for rule in live {
        if out.iter().any(|o| o.rule_key == rule.key.as_str()) {
            continue;
        }
        out.push(RuleOutcome {
            rule_key: rule.key.to_string(),
            outcome: if matched {
                RuleOutcomeKind::NotMatched
            } else {
                RuleOutcomeKind::Pending
            },
            deliveries: Vec::new(),
            changed_since: changed(rule.key.as_str()),
            deleted: false,
        });
    }
    Ok(EventDetail {
        event: serde_json::to_value(&record.event).map_err(ApiError::internal)?,
        stage: if matched {
            EventStage::Matched
        } else {
            EventStage::Accepted
        },
        matched_at,
        deliveries: record.deliveries,
        rules: out,
        deliveries_truncated: record.routes_truncated,
    })
}
