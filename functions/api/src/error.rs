//! The one error type of the API: a status, a stable machine-readable `code`, a message for
//! humans and, where one field is at fault, its path in the request body (`config.url`,
//! `channelIds[1]`, `match.all[0].op`). Internal causes are logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::domain::Invalid;
use herald_shared::repo::RepoError;
use serde::Serialize;

/// An error answer: `{"error":{"code","message","field"}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
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
    /// Stable identifier: `malformed_json`, `invalid_body`, `invalid_field`, `unauthorized`,
    /// `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`, `internal`.
    pub code: &'static str,
    pub message: String,
    /// Path of the offending field in the request (body, query or header), when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            cause: None,
        }
    }

    /// The same error, about one field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is not valid JSON at all.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 400: the JSON has the wrong shape (type, missing or unknown field) at `field`.
    pub fn invalid_body(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message).field(field)
    }

    /// 400: a query parameter is invalid.
    pub fn invalid_query(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message).field(field)
    }

    /// 422: well-formed, but refused (an unknown channel, a bad time zone, an `http` URL...).
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {} KB", limit / 1024),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept this method",
        )
    }

    /// 500: our fault. `cause` is logged, the client sees a generic message.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            cause: Some(Box::new(cause)),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
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
                "conflict",
                "concurrent changes to this org's rules; retry the request",
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
        (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response()
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The error as it is shown: for one entry of a batch answer, or as a whole response body.
    /// Logs the internal cause, which is never shown.
    pub fn detail(self) -> ErrorDetail {
        if let Some(cause) = &self.cause {
            tracing::error!(error = %cause, source = ?cause.source().map(ToString::to_string), code = self.code, "request failed");
        }
        ErrorDetail {
            code: self.code,
            message: self.message,
            field: self.field,
        }
    }

    /// The stable error code (`not_found`, `invalid_field`...).
    pub fn code(&self) -> &'static str {
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
