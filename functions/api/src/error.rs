//! The one error type of the API: a status, a stable machine-readable `code`, a message for
//! humans and, where one field is at fault, its path in the request body (`config.url`,
//! `channelIds[1]`, `match.all[0].op`). Internal causes are logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::domain::Invalid;
use herald_shared::repo::RepoError;
use serde::Serialize;

/// Every error code the API answers with: the stable, machine-readable `error.code`. The status
/// that goes with each is the usual one listed here; a client should branch on the code.
///
/// | code | status | meaning |
/// |---|---|---|
/// | `malformed_json` | 400 | the body is not JSON |
/// | `invalid_body` | 400 | the JSON has the wrong shape at `field` (type, missing or unknown field) |
/// | `invalid_query` | 400 | a query parameter (`field`) is invalid |
/// | `unreadable_body` | 400 | the body could not be read (the connection broke) |
/// | `unauthorized` | 401 | no valid `x-api-key`, `x-admin-key` or feed token |
/// | `origin_not_allowed` | 403 | this browser `Origin` may not open the feed socket |
/// | `not_found` | 404 | no such resource in this org, or no such path |
/// | `method_not_allowed` | 405 | the path does not take this method |
/// | `conflict` | 409 | the resource exists, is in use, or changed concurrently (retry) |
/// | `payload_too_large` | 413 | the body is over 256 KB |
/// | `websocket_required` | 426 | the feed socket path takes a WebSocket upgrade |
/// | `invalid_field` | 422 | well-formed but refused at `field` (an unknown channel, a bad time zone, an `http` URL, ...) |
/// | `rate_limited` | 429 | over the org's ingest limit (`POST /events`): nothing of the request was accepted; retry after `Retry-After` seconds |
/// | `backlog_full` | 429 | the org has too many messages waiting for delivery, at its backlog bound (`POST /events`, `herald serve`): nothing was accepted; retry after `Retry-After` seconds |
/// | `internal` | 500 | Herald's fault; the cause is logged, not shown |
/// | `not_published` | 503 | the event bus did not take the event; retry |
/// | `feeds_disabled` | 503 | feeds are not configured on this deployment |
/// | `in_progress` | 409 | resend: the delivery is still queued or deferred (an attempt is pending), or another resend of it just started |
/// | `not_resendable` | 409 | resend: the delivery was suppressed (consent and caps are never bypassed) or is a test-button delivery |
/// | `channel_deleted` | 409 | resend: the delivery's channel no longer exists |
/// | `channel_disabled` | 409 | resend or recover: the channel is disabled |
/// | `event_expired` | 409 | resend: the event record is past its retention; there is nothing to render |
/// | `idempotency_key_reused` | 422 | this `Idempotency-Key` was used with another request body within 24 h |
/// | `idempotency_in_progress` | 409 | a request with this `Idempotency-Key` is still being handled; retry later |
/// | `dispatch_unavailable` | 503 | this deployment has no dispatch queue for resends and recoveries, or it did not take the message; retry |
/// | `limit_reached` | 409 | signing-secret rotation: 5 previous secrets are still in their grace period; expire them first |
/// | `rules_changed` | 409 | rule set apply: the org's rules changed since the replay (`expectedRulesVersion` is stale); nothing was written — replay again |
/// | `recovery_running` | 409 | recover: a recovery of this channel is running (the message names it); wait for it to end |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    InvalidBody,
    InvalidQuery,
    UnreadableBody,
    Unauthorized,
    OriginNotAllowed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    WebsocketRequired,
    InvalidField,
    RateLimited,
    BacklogFull,
    Internal,
    NotPublished,
    FeedsDisabled,
    InProgress,
    NotResendable,
    ChannelDeleted,
    ChannelDisabled,
    EventExpired,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    DispatchUnavailable,
    LimitReached,
    RulesChanged,
    RecoveryRunning,
}

impl ErrorCode {
    /// Every code, in the order of the table above.
    pub const ALL: [ErrorCode; 28] = [
        Self::MalformedJson,
        Self::InvalidBody,
        Self::InvalidQuery,
        Self::UnreadableBody,
        Self::Unauthorized,
        Self::OriginNotAllowed,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::WebsocketRequired,
        Self::InvalidField,
        Self::RateLimited,
        Self::BacklogFull,
        Self::Internal,
        Self::NotPublished,
        Self::FeedsDisabled,
        Self::InProgress,
        Self::NotResendable,
        Self::ChannelDeleted,
        Self::ChannelDisabled,
        Self::EventExpired,
        Self::IdempotencyKeyReused,
        Self::IdempotencyInProgress,
        Self::DispatchUnavailable,
        Self::LimitReached,
        Self::RulesChanged,
        Self::RecoveryRunning,
    ];

    /// The code as it appears in `error.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidBody => "invalid_body",
            Self::InvalidQuery => "invalid_query",
            Self::UnreadableBody => "unreadable_body",
            Self::Unauthorized => "unauthorized",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::WebsocketRequired => "websocket_required",
            Self::InvalidField => "invalid_field",
            Self::RateLimited => "rate_limited",
            Self::BacklogFull => "backlog_full",
            Self::Internal => "internal",
            Self::NotPublished => "not_published",
            Self::FeedsDisabled => "feeds_disabled",
            Self::InProgress => "in_progress",
            Self::NotResendable => "not_resendable",
            Self::ChannelDeleted => "channel_deleted",
            Self::ChannelDisabled => "channel_disabled",
            Self::EventExpired => "event_expired",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::DispatchUnavailable => "dispatch_unavailable",
            Self::LimitReached => "limit_reached",
            Self::RulesChanged => "rules_changed",
            Self::RecoveryRunning => "recovery_running",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: `{"error":{"code","message","field"}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    field: Option<String>,
    /// `Retry-After`, whole seconds (429).
    retry_after: Option<u64>,
    /// What went wrong inside, for the log only.
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`, `field`) and for humans (`message`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Path of the offending field in the request (body, query or header), when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            cause: None,
        }
    }

    /// 429 with `Retry-After: seconds` (at least 1): come back later, nothing was taken.
    pub fn too_many(code: ErrorCode, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    /// The `Retry-After` this error answers with, in seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The same error, about one field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is not valid JSON at all.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, message)
    }

    /// 400: the JSON has the wrong shape (type, missing or unknown field) at `field`.
    pub fn invalid_body(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidBody, message).field(field)
    }

    /// 400: a query parameter is invalid.
    pub fn invalid_query(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, message).field(field)
    }

    /// 422: well-formed, but refused (an unknown channel, a bad time zone, an `http` URL...).
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            message,
        )
        .field(field)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("request bodies are limited to {} KB", limit / 1024),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this path does not accept this method",
        )
    }

    /// 500: our fault. `cause` is logged, the client sees a generic message.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            cause: Some(Box::new(cause)),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A [`RepoError`] about `what` (`"channel"`, `"rule"`...), where the repository's
    /// not-found and conflicts are the caller's to see.
    pub fn from_repo(e: RepoError, what: &str) -> Self {
        match e {
            RepoError::NotFound => Self::not_found(what),
            RepoError::AlreadyExists => Self::conflict(format!("this {what} already exists")),
            RepoError::BadCursor => Self::invalid_query(
                "cursor",
                "invalid pagination cursor: pass `nextCursor` from the previous page unchanged",
            ),
            RepoError::Contended => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!("concurrent changes to this {what}; retry the request"),
            ),
            e @ RepoError::RulesChanged { .. } => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::RulesChanged,
                format!("{e} (`expectedRulesVersion`): nothing was written; replay the draft against the current rules and apply again"),
            )
            .field("expectedRulesVersion"),
            e @ RepoError::TooLarge { .. } => Self::invalid_field(
                "rules",
                format!("batch too large: {e} (DynamoDB's limit; a put per changed rule, a check per channel they name, a delete per removed rule, and the version): apply it in smaller steps"),
            ),
            e @ (RepoError::ChannelInUse(_) | RepoError::UnknownChannel(_)) => {
                Self::conflict(e.to_string())
            }
            e @ (RepoError::Corrupt { .. } | RepoError::Store(_)) => Self::internal(e),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::invalid_field(e.field, e.message)
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        Self::from_repo(e, "resource")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let retry_after = self.retry_after;
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The error as it is shown: for one entry of a batch answer, or as a whole response body.
    /// Logs the internal cause, which is never shown.
    pub fn detail(self) -> ErrorDetail {
        if let Some(cause) = &self.cause {
            tracing::error!(error = %cause, source = ?cause.source().map(ToString::to_string), code = self.code.as_str(), "request failed");
        }
        ErrorDetail {
            code: self.code,
            message: self.message,
            field: self.field,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field at fault, if one is.
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document lists exactly the codes the API can answer with, each spelled as
    /// it is sent.
    #[test]
    fn every_error_code_is_in_the_openapi_schema_as_sent() {
        let schema = serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema())
            .expect("schema serialises");
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum schema")
            .iter()
            .map(|v| v.as_str().expect("a string"))
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all, "ErrorCode::ALL follows the enum's order");
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).expect("serialises"),
                code.as_str(),
                "{code:?}"
            );
        }
    }
}
