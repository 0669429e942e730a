//! The test button (org API key): `POST /notifications/channels/{id}/test {to?}` — one
//! synchronous delivery of a synthetic event through the real sender path, no retries, logged
//! with trigger `test`. Always `200` once the attempt was made, `ok: false` for a refused,
//! blocked or failed one: the answer to "will a 3am page reach us?".

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use herald_core::delivery::{format, format::MessageContext};
use herald_core::domain::channel::ChannelKind;
use herald_core::domain::delivery::{
    Delivery, DeliveryStatus, Destination, ErrorClass, Trigger, contact_point, on_success,
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
use crate::idempotency::{self, Idempotent};

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
    /// The test recipient: an email address (email), an E.164 phone number (SMS), a push token
    /// (push), or a user id whose stored profile has one; the user id whose feed receives it
    /// (in-app). Slack and webhooks ignore it. Anything else is answered `ok: false` with a
    /// message saying what was expected.
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
    params(("orgId" = String, Path, description = "Org id"), ("id" = String, Path, description = "Channel id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 printable characters: a repeat of the same test within 24 h answers the stored answer (`Idempotent-Replayed: true`) and sends nothing")),
    request_body = TestRequest,
    responses(
        (status = 200, description = "The attempt was made; `ok` says whether it reached the channel", body = TestResult),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 409, description = "`idempotency_in_progress`: a test with this `Idempotency-Key` is still running", body = ErrorBody),
        (status = 422, description = "An in-app test without `to`, or `to` not a user id; `idempotency_key_reused`", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn test_channel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TestRequest>,
) -> ApiResult<Idempotent<TestResult>> {
    // The request as the key remembers it: the channel and the recipient.
    let content = serde_json::json!({ "to": request.to }).to_string();
    let key = idempotency::Request::new(
        &headers,
        "POST",
        &format!("channels/{id}/test"),
        content.as_bytes(),
    )?;
    let org = auth.org_id;
    idempotency::run(&state, org, key, StatusCode::OK, || {
        test_once(&state, auth, id, request)
    })
    .await
}

async fn test_once(
    state: &AppState,
    auth: OrgAuth,
    id: String,
    request: TestRequest,
) -> ApiResult<TestResult> {
    let id: ChannelId = id.parse().map_err(|_| ApiError::not_found("channel"))?;
    let channels = Channels::new(state.store.as_ref());
    let channel = channels
        .get(&auth.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let to = request.to.filter(|t| !t.is_empty());
    let kind = channel.kind();
    let (recipient, destination) = test_destination(state, &auth, kind, to.as_deref()).await?;

    let now = Utc::now();
    let event = format::test_event(auth.org_id, now);
    let delivery_id = DeliveryId::new();
    let ctx = MessageContext {
        event: &event,
        rule_key: None,
        template: None,
        delivery_id,
        group: None,
        digest: None,
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
        Err(refusal) => AttemptOutcome::not_sent(ErrorClass::Configuration, refusal),
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
        recovered: None,
        event_ids: Vec::new(),
        event_count: None,
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

    Ok(TestResult {
        ok: outcome.is_delivered(),
        status_code: outcome.status_code,
        error_class: outcome.error_class,
        message: outcome.message,
        latency_ms: u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX),
        log_id: delivery_id,
    })
}

/// The test's recipient and where it goes, or why `to` cannot be used (the answer's message).
/// `to` is, in this order: a contact point of the channel's kind (an email address, an E.164
/// number); a user id with a stored profile (its contact points; the user's feed for in-app,
/// profile or not); for push, a push token. Slack and webhooks ignore `to`. Opt-outs do not
/// apply: the org is testing its own channel.
async fn test_destination(
    state: &AppState,
    auth: &OrgAuth,
    kind: ChannelKind,
    to: Option<&str>,
) -> ApiResult<(Option<UserId>, Result<Destination, String>)> {
    let (Some(to), Some(what)) = (to, contact_point(kind)) else {
        return match (to, kind) {
            (Some(to), ChannelKind::InApp) => {
                let user = UserId::parse(to).map_err(|e| {
                    ApiError::invalid_field("to", format!("{}; {}", e.message, expected(kind)))
                })?;
                Ok((Some(user.clone()), Ok(Destination::Feed(user))))
            }
            (None, ChannelKind::InApp) => Err(ApiError::invalid_field(
                "to",
                "an in_app test needs `to`: the user id whose feed receives it",
            )),
            (_, _) => Ok((
                None,
                match contact_point(kind) {
                    Some(what) => Err(format!(
                        "no {what} to send the test to; pass `to`: {}",
                        expected(kind)
                    )),
                    None => Ok(Destination::Channel),
                },
            )),
        };
    };
    let shape = Shape::of(to);
    let is_point = match (kind, shape) {
        (ChannelKind::Email, Shape::Email) => EmailAddress::parse(to).is_ok(),
        (ChannelKind::Sms, Shape::Phone) => user::validate_phone(to).is_ok(),
        _ => false,
    };
    if is_point {
        return Ok((None, Ok(Destination::ContactPoints(vec![to.to_owned()]))));
    }
    if let Ok(user) = UserId::parse(to) {
        let profile = users::get(state.store.as_ref(), &auth.org_id, &user)
            .await
            .map_err(|e| ApiError::from_repo(e, "user"))?;
        if let Some(profile) = profile {
            let bare = Recipient {
                user_id: user.clone(),
                email: None,
                phone: None,
                push_tokens: Vec::new(),
            };
            let recipient = user::contact(&bare, Some(&profile));
            let destination = Destination::resolve(kind, Some(&recipient))
                .map_err(|_| format!("user `{to}` has no stored {what}; {}", expected(kind)));
            return Ok((Some(user), destination));
        }
    }
    let refusal = match (kind, shape) {
        (ChannelKind::Push, Shape::Other) if is_push_token(to) => {
            return Ok((None, Ok(Destination::ContactPoints(vec![to.to_owned()]))));
        }
        (ChannelKind::Email, Shape::Email) => format!("`{to}` is not a valid email address"),
        (ChannelKind::Sms, Shape::Phone) => {
            format!("`{to}` is not an E.164 phone number (e.g. +14155550123)")
        }
        (_, Shape::Email) => format!("`{to}` looks like an email address"),
        (_, Shape::Phone) => format!("`{to}` looks like a phone number"),
        (ChannelKind::Push, Shape::Other) => format!(
            "`{to}` is neither a user with a stored profile nor a push token (tokens are {MIN_PUSH_TOKEN} characters or more)"
        ),
        (_, Shape::Other) => format!("`{to}` is not a user with a stored profile"),
    };
    Ok((None, Err(format!("{refusal}; {}", expected(kind)))))
}

/// The shortest push token taken as one: APNs tokens are 64 hex digits, FCM's about 150
/// characters, Expo's `ExponentPushToken[...]` over 40. Shorter text is more likely a user id
/// without a profile than a token, and a test sent to it would only be refused by the provider.
const MIN_PUSH_TOKEN: usize = 32;

fn is_push_token(to: &str) -> bool {
    to.len() >= MIN_PUSH_TOKEN && !to.chars().any(char::is_whitespace)
}

/// What `to` looks like, to say what was expected instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Email,
    /// `+` or digits with the usual separators, at least 6 digits.
    Phone,
    Other,
}

impl Shape {
    fn of(to: &str) -> Self {
        let digits = to.chars().filter(char::is_ascii_digit).count();
        let phone_chars = to
            .trim_start_matches('+')
            .chars()
            .all(|c| c.is_ascii_digit() || " -().".contains(c));
        if to.contains('@') {
            Self::Email
        } else if phone_chars && digits >= 6 {
            Self::Phone
        } else {
            Self::Other
        }
    }
}

/// What `to` should be for `kind`.
fn expected(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Email => {
            "an email channel's `to` is an email address or a user id with a stored email address"
        }
        ChannelKind::Sms => {
            "an SMS channel's `to` is an E.164 phone number (e.g. +14155550123) or a user id with a stored phone number"
        }
        ChannelKind::Push => {
            "a push channel's `to` is a push token or a user id with a stored push token"
        }
        ChannelKind::InApp => "an in_app channel's `to` is the user id whose feed receives it",
        ChannelKind::Slack | ChannelKind::Webhook => "this channel ignores `to`",
    }
}
