//! The test button (org API key): `POST /notifications/channels/{id}/test {to?}` — one
//! synchronous delivery of a synthetic event through the real sender path, no retries, logged
//! with trigger `test`. Always `200` once the attempt was made, `ok: false` for a refused,
//! blocked or failed one: the answer to "will a 3am page reach us?".

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use herald_core::delivery::{format, format::MessageContext};
use herald_core::domain::channel::ChannelKind;
use herald_core::domain::delivery::{
    Delivery, DeliveryStatus, Destination, ErrorClass, NoDestination, Trigger, contact_point,
    on_success,
};
use herald_core::domain::email::EmailAddress;
use herald_core::domain::event::Recipient;
use herald_core::domain::user;
use herald_core::domain::{ChannelId, DeliveryId, UserId};
use herald_shared::delivery::{self, AttemptOutcome};
use herald_shared::repo::users;
use herald_shared::repo::{Channels, deliveries};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};

const PATH: &str = "/api/v1/orgs/{orgId}/notifications/channels/{id}/test";

/// How long test deliveries stay in the log.
const TEST_LOG_DAYS: i64 = 30;

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(test_channel))
}

/// `POST .../test` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRequest {
    /// The test recipient: a user id or a contact point of the channel's kind. Slack and
    /// webhooks ignore it.
    pub to: Option<String>,
}

/// What the attempt did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub ok: bool,
    pub status_code: Option<u16>,
    pub error_class: Option<ErrorClass>,
    /// The response body or the error, truncated.
    pub message: Option<String>,
    pub latency_ms: u64,
    /// The delivery logged for this test (`GET .../notifications/logs`).
    pub log_id: DeliveryId,
}

/// Sends a test message through the channel, once.
#[utoipa::path(
    post, path = PATH, tag = "channels",
    params(("orgId" = String, Path, description = "Org id"), ("id" = String, Path, description = "Channel id")),
    request_body = TestRequest,
    responses(
        (status = 200, description = "The attempt was made; `ok` says whether it reached the channel", body = TestResult),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "`to` is not a recipient this channel can reach", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn test_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    JsonBody(request): JsonBody<TestRequest>,
) -> ApiResult<Json<TestResult>> {
    let id: ChannelId = id.parse().map_err(|_| ApiError::not_found("channel"))?;
    let channels = Channels::new(state.store.as_ref());
    let channel = channels
        .get(&auth.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let to = request.to.filter(|t| !t.is_empty());
    let kind = channel.kind();
    // Email, SMS and push need a contact point: `to` is one (an address, an E.164 number) or a
    // user id whose stored profile has one. The in-app feed needs a user id.
    let (recipient, destination) = test_destination(&state, &auth, kind, to.as_deref()).await?;

    let now = Utc::now();
    let event = format::test_event(auth.org_id, now);
    let delivery_id = DeliveryId::new();
    let ctx = MessageContext {
        event: &event,
        rule_key: None,
        template: None,
        delivery_id,
    };
    let outcome = match destination {
        Ok(destination) => {
            let ports = delivery::Ports {
                sender: state.sender.as_ref(),
                store: state.store.as_ref(),
                feeds: state.feeds.as_ref(),
            };
            delivery::deliver(ports, &channel, destination, &ctx, now).await
        }
        Err(NoDestination::NoContactPoint { what }) => AttemptOutcome::not_sent(
            ErrorClass::Configuration,
            format!(
                "no {what} to send the test to: pass `to` (a contact point, or a user id with a stored profile)"
            ),
        ),
        Err(NoDestination::NoRecipient) => {
            return Err(ApiError::invalid_field(
                "to",
                "an in_app test needs `to`: the user id whose feed receives it",
            ));
        }
    };
    let attempt = outcome.to_attempt(1, now);

    let (status, reason) = if outcome.is_delivered() {
        on_success(kind, outcome.message.clone())
    } else {
        (DeliveryStatus::Failed, outcome.message.clone())
    };
    let record = Delivery {
        id: delivery_id,
        org_id: auth.org_id,
        event_id: event.id.clone(),
        event_type: event.event_type.to_string(),
        rule_key: None,
        channel_id: channel.id,
        channel_kind: channel.kind(),
        recipient,
        trigger: Trigger::Test,
        status,
        reason,
        attempts: vec![attempt],
        engagement: Vec::new(),
        next_attempt_at: None,
        cap_slot: None,
        created_at: now,
        updated_at: now,
    };
    let ttl = (now + chrono::Duration::days(TEST_LOG_DAYS)).timestamp();
    deliveries::create(state.store.as_ref(), &record, ttl)
        .await
        .map_err(ApiError::internal)?;
    channels
        .record_health(
            &channel,
            outcome.error_class,
            outcome.message.as_deref().unwrap_or_default(),
            now,
        )
        .await?;
    tracing::info!(channel_id = %channel.id, ok = outcome.is_delivered(), status_code = ?outcome.status_code, "channel test");

    Ok(Json(TestResult {
        ok: outcome.is_delivered(),
        status_code: outcome.status_code,
        error_class: outcome.error_class,
        message: outcome.message,
        latency_ms: u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX),
        log_id: delivery_id,
    }))
}

/// The test's recipient and where it goes: `to` as a contact point of the channel's kind, else
/// as a user id (the stored profile's contact points; the user's feed for in-app). Slack and
/// webhooks ignore `to`. Opt-outs do not apply: the org is testing its own channel.
async fn test_destination(
    state: &AppState,
    auth: &OrgAuth,
    kind: ChannelKind,
    to: Option<&str>,
) -> ApiResult<(Option<UserId>, Result<Destination, NoDestination>)> {
    let Some(to) = to.filter(|_| kind.is_user_facing()) else {
        let destination = match contact_point(kind) {
            Some(what) => Err(NoDestination::NoContactPoint { what }),
            None => Destination::resolve(kind, None),
        };
        return Ok((None, destination));
    };
    let is_point = match kind {
        ChannelKind::Email => to.contains('@') && EmailAddress::parse(to).is_ok(),
        ChannelKind::Sms => user::validate_phone(to).is_ok(),
        _ => false,
    };
    if is_point {
        return Ok((None, Ok(Destination::ContactPoints(vec![to.to_owned()]))));
    }
    let user = UserId::parse(to).map_err(|e| ApiError::invalid_field("to", e.message))?;
    let mut recipient = Recipient {
        user_id: user.clone(),
        email: None,
        phone: None,
        push_tokens: Vec::new(),
    };
    if contact_point(kind).is_some() {
        let profile = users::get(state.store.as_ref(), &auth.org_id, &user)
            .await
            .map_err(|e| ApiError::from_repo(e, "user"))?;
        recipient = user::contact(&recipient, profile.as_ref());
    }
    Ok((Some(user), Destination::resolve(kind, Some(&recipient))))
}
