//! Request bodies: JSON whatever the `Content-Type` says (`curl -d` sends
//! `application/x-www-form-urlencoded`), at most [`BODY_LIMIT`] bytes, and errors that point at
//! the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use herald_core::domain::{Invalid, shape};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest request body accepted; larger ones get 413.
pub const BODY_LIMIT: usize = 256 * 1024;

/// A JSON request body, read whatever the `Content-Type`. An empty body reads as `{}`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(ApiError::payload_too_large(BODY_LIMIT));
        }
        // `Bytes` honours the router's `DefaultBodyLimit` (set to `BODY_LIMIT`) for bodies
        // without a length, e.g. chunked ones.
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(BODY_LIMIT)
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::UnreadableBody,
                    "the request body could not be read",
                )
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON document into `T`: malformed JSON is a 400 `malformed_json` with line and column;
/// a well-formed document of the wrong shape is a 400 `invalid_body` naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| shape_error(e, None))?;
    de.end().map_err(|e| syntax_error(&e))?;
    Ok(value)
}

/// Deserialises a JSON value nested at `prefix` (e.g. a channel's `config`) into `T`, with the
/// same errors as [`parse`], their fields under `prefix`.
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| shape_error(e, Some(prefix)))
}

fn syntax_error(e: &serde_json::Error) -> ApiError {
    ApiError::malformed_json(format!(
        "the body is not valid JSON: {} (line {}, column {})",
        shape::strip_position(&e.to_string()),
        e.line(),
        e.column()
    ))
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: Option<&str>) -> ApiError {
    let inner = e.inner();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return syntax_error(inner);
    }
    let Invalid { field, message } = shape::describe(&e, prefix);
    ApiError::invalid_body(field, message)
}

/// For `PATCH` bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        frequency_cap: Option<Cap>,
        ids: Option<Vec<u32>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Cap {
        per_user: u32,
    }

    fn field(e: ApiError) -> Option<String> {
        e.field_name().map(str::to_owned)
    }

    #[test]
    fn wrong_types_name_the_nested_field() {
        let e = parse::<Body>(br#"{"name":"x","frequencyCap":{"perUser":"five"}}"#)
            .expect_err("wrong type");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(field(e).as_deref(), Some("frequencyCap.perUser"));
        let e = parse::<Body>(br#"{"name":"x","ids":[1,"2"]}"#).expect_err("wrong type");
        assert_eq!(field(e).as_deref(), Some("ids[1]"));
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(
            field(parse::<Body>(b"{}").expect_err("missing")).as_deref(),
            Some("name")
        );
        let e = parse::<Body>(br#"{"name":"x","frequencycap":{}}"#).expect_err("unknown");
        assert_eq!(field(e).as_deref(), Some("frequencycap"));
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let e = parse::<Body>(b"{\n \"name\": \"x\",,}").expect_err("malformed");
        assert_eq!(e.code(), ErrorCode::MalformedJson);
        assert!(e.message().contains("line 2"), "{}", e.message());
    }

    #[test]
    fn nested_values_are_reported_under_their_prefix() {
        let e =
            from_value::<Cap>(serde_json::json!({"perUser": -1}), "config").expect_err("negative");
        assert_eq!(field(e).as_deref(), Some("config.perUser"));
    }
}
