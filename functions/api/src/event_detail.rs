//! One event (org API key): `GET /events/{eventId}` — the stored event and, per rule, what
//! routing did with it: matched, with the deliveries it made (queued, deferred for quiet hours,
//! capped, suppressed, silenced, failed) and each one's status now, and its outcomes per
//! channel — including, for alert events, what it did without a delivery of this event
//! (deduplicated into an open alert, left to a group message, silenced, ignored); or not
//! matched.
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
use herald_core::domain::{AlertInstanceId, ChannelId, DeliveryId, EventId, UserId};
use herald_shared::repo::events::{
    self, AlertOutcome, AlertOutcomeKind, EventRecord, RoutedDelivery, RuleRoute, Stage,
};
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
    /// What a matched rule did with the event on each channel (and recipient): one entry per
    /// delivery it made (`delivered`, `deferred`, `capped`, `suppressed`, `failed`,
    /// `silenced`), and, for alert events, where it made none of this event's own
    /// (`deduplicated`, `grouped`, `silenced`, `ignored`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<EventOutcome>,
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
    /// (frequency cap reached), `suppressed` (disabled channel), `silenced` (a silence),
    /// `failed` (no recipient), `batched` (joined a digest: `deliveryId` is the digest's,
    /// `reason` says when it is sent).
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
    /// Suppressed by a silence (`reason`: `silenced by <silence id>`).
    Silenced,
    Failed,
    Batched,
}

/// The start of the reason of a silenced delivery (the matcher's `SILENCED_BY`).
const SILENCED_BY: &str = "silenced by ";

impl Routed {
    fn of(d: &RoutedDelivery) -> Self {
        let reason = d.reason.as_deref().unwrap_or_default();
        match d.status {
            DeliveryStatus::Deferred => Self::Deferred,
            DeliveryStatus::Suppressed if reason.starts_with("frequency cap") => Self::Capped,
            DeliveryStatus::Suppressed if reason.starts_with(SILENCED_BY) => Self::Silenced,
            DeliveryStatus::Suppressed => Self::Suppressed,
            DeliveryStatus::Failed => Self::Failed,
            DeliveryStatus::Queued
                if reason.starts_with(herald_core::domain::digest::BATCHED_INTO) =>
            {
                Self::Batched
            }
            DeliveryStatus::Queued | DeliveryStatus::Sent | DeliveryStatus::Delivered => {
                Self::Queued
            }
        }
    }
}

/// What a matched rule did with the event on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// A delivery of this event was made for sending (`deliveryId`; its trigger for an alert).
    Delivered,
    /// A delivery held by quiet hours.
    Deferred,
    /// A delivery suppressed by the frequency cap.
    Capped,
    /// A delivery suppressed because the channel is disabled.
    Suppressed,
    /// A delivery that failed at once (no recipient).
    Failed,
    /// Held back by a silence (`silenceId`): a suppressed delivery of this event, a duplicate of
    /// a silenced alert, or a grouped alert whose group message the silence holds back.
    Silenced,
    /// A trigger of an alert already notified on the channel (or acknowledged): counted on the
    /// instance (`instanceId`), not sent again; `deliveryId` is the trigger delivery.
    Deduplicated,
    /// Left to the rule's group message (`group`).
    Grouped,
    /// An acknowledge or resolve that changed nothing (`reason`, e.g. `no open alert`).
    Ignored,
    /// Joined a digest: `deliveryId` is the digest's delivery, `reason` says when it is sent.
    Batched,
}

/// One outcome of a matched rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventOutcome {
    pub outcome: OutcomeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<ChannelId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub recipient: Option<UserId>,
    /// This event's delivery, or (deduplicated) the alert's trigger delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<DeliveryId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<AlertInstanceId>,
    /// The group (a hash of its `groupBy` values) whose message stands for the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub silence_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl EventOutcome {
    fn of_delivery(d: &RoutedDelivery) -> Self {
        let routed = Routed::of(d);
        let reason = d.reason.as_deref().unwrap_or_default();
        Self {
            outcome: match routed {
                Routed::Queued => OutcomeKind::Delivered,
                Routed::Deferred => OutcomeKind::Deferred,
                Routed::Capped => OutcomeKind::Capped,
                Routed::Suppressed => OutcomeKind::Suppressed,
                Routed::Silenced => OutcomeKind::Silenced,
                Routed::Failed => OutcomeKind::Failed,
                Routed::Batched => OutcomeKind::Batched,
            },
            channel_id: Some(d.channel_id),
            recipient: d.recipient.clone(),
            delivery_id: Some(d.delivery_id),
            dedup_key: None,
            instance_id: None,
            group: None,
            silence_id: reason.strip_prefix(SILENCED_BY).map(str::to_owned),
            reason: d.reason.clone(),
        }
    }

    fn of_alert(o: AlertOutcome) -> Self {
        Self {
            outcome: match o.outcome {
                AlertOutcomeKind::Deduplicated => OutcomeKind::Deduplicated,
                AlertOutcomeKind::Grouped => OutcomeKind::Grouped,
                AlertOutcomeKind::Silenced => OutcomeKind::Silenced,
                AlertOutcomeKind::Ignored => OutcomeKind::Ignored,
            },
            channel_id: o.channel_id,
            recipient: None,
            delivery_id: o.delivery_id,
            dedup_key: Some(o.dedup_key),
            instance_id: o.instance_id,
            group: o.group,
            silence_id: o.silence_id.map(|s| s.to_string()),
            reason: o.reason,
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
        .filter_map(|item| item.doc.decode::<Delivery>().ok())
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
    let routes: Vec<RuleRoute> = if record.routes.is_empty() {
        record
            .matched_rules
            .iter()
            .map(|k| RuleRoute::new(k.clone()))
            .collect()
    } else {
        record.routes
    };
    for RuleRoute {
        rule_key: key,
        deliveries,
        outcomes,
    } in routes
    {
        out.push(RuleOutcome {
            outcome: RuleOutcomeKind::Matched,
            outcomes: deliveries
                .iter()
                .map(EventOutcome::of_delivery)
                .chain(outcomes.into_iter().map(EventOutcome::of_alert))
                .collect(),
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
            outcomes: Vec::new(),
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
