//! The router's responses in the form `lambda_http` hands to API Gateway.
//!
//! `lambda_http` converts a response whose body is any `http_body::Body` by its headers: binary
//! (base64) when it has a `Content-Encoding` or a non-textual `Content-Type`, else text decoded
//! from the `charset` the `Content-Type` names — through `encoding_rs`, every WHATWG encoding
//! with its tables (about 0.19 MiB of the bootstrap). Herald's responses are UTF-8 (JSON, HTML,
//! JavaScript) or binary (the tracking pixel), so [`buffer`] decides text or binary by the same
//! rules and takes text as UTF-8 whatever the `charset` says; what reaches API Gateway is the
//! same. `lambda_http` passes a [`Buffered`] response on as it is.

use std::future::{Future, ready};
use std::pin::Pin;

use axum::body::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use lambda_http::{Body, IntoResponse};

/// `Content-Type` prefixes and `+suffixes` `lambda_http` sends as text (its
/// `TEXT_ENCODING_PREFIXES` and `TEXT_ENCODING_SUFFIXES`).
const TEXT_PREFIXES: [&str; 5] = [
    "text",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
];
const TEXT_SUFFIXES: [&str; 3] = ["+xml", "+yaml", "+json"];

/// `lambda_http`'s header marking any content type as text.
const TEXT_MARKER: &str = "x-lambda-http-content-encoding";

/// A response with its body read: text or binary.
#[derive(Debug)]
pub struct Buffered(pub http::Response<Body>);

impl IntoResponse for Buffered {
    fn into_response(self) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>> {
        Box::pin(ready(self.0))
    }
}

/// Reads the router's response body; text (UTF-8, invalid sequences replaced) or binary as
/// `lambda_http` would send it.
pub async fn buffer(response: axum::response::Response) -> Result<Buffered, lambda_http::Error> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    let body = if is_text(&parts.headers) {
        Body::Text(utf8(bytes))
    } else {
        Body::Binary(Vec::from(bytes))
    };
    Ok(Buffered(http::Response::from_parts(parts, body)))
}

fn utf8(bytes: Bytes) -> String {
    match String::from_utf8(Vec::from(bytes)) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn is_text(headers: &HeaderMap) -> bool {
    if headers.contains_key(CONTENT_ENCODING) {
        return false;
    }
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let content_type = content_type.to_str().unwrap_or_default();
    let mime = content_type.trim().split(';').next().unwrap_or_default();
    TEXT_PREFIXES.iter().any(|p| content_type.starts_with(p))
        || TEXT_SUFFIXES.iter().any(|s| mime.ends_with(s))
        || headers.get(TEXT_MARKER).is_some_and(|v| v == "text")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn buffered(headers: &[(&str, &str)], body: &'static [u8]) -> Body {
        let mut response = http::Response::builder();
        for (k, v) in headers {
            response = response.header(*k, *v);
        }
        let response = response.body(axum::body::Body::from(body)).unwrap();
        buffer(response).await.unwrap().0.into_body()
    }

    #[tokio::test]
    async fn json_html_javascript_and_untyped_bodies_are_text() {
        for content_type in [
            "application/json",
            "application/problem+json",
            "text/html; charset=utf-8",
            "text/javascript; charset=utf-8",
        ] {
            assert_eq!(
                buffered(&[("content-type", content_type)], b"{\"a\":\"\xc3\xa9\"}").await,
                Body::Text("{\"a\":\"é\"}".into()),
                "{content_type}"
            );
        }
        assert_eq!(buffered(&[], b"ok").await, Body::Text("ok".into()));
        assert_eq!(buffered(&[], b"").await, Body::Text(String::new()));
    }

    #[tokio::test]
    async fn images_encoded_and_untextual_bodies_are_binary() {
        let gif: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\xff\x00";
        assert_eq!(
            buffered(&[("content-type", "image/gif")], gif).await,
            Body::Binary(gif.to_vec())
        );
        assert_eq!(
            buffered(
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip")
                ],
                b"\x1f\x8b"
            )
            .await,
            Body::Binary(b"\x1f\x8b".to_vec())
        );
        assert_eq!(
            buffered(&[("content-type", "application/octet-stream")], b"x").await,
            Body::Binary(b"x".to_vec())
        );
    }

    #[tokio::test]
    async fn the_text_marker_makes_any_type_text() {
        assert_eq!(
            buffered(
                &[
                    ("content-type", "application/octet-stream"),
                    (TEXT_MARKER, "text")
                ],
                b"x"
            )
            .await,
            Body::Text("x".into())
        );
    }

    #[tokio::test]
    async fn invalid_utf8_in_text_is_replaced_not_refused() {
        assert_eq!(
            buffered(&[("content-type", "text/plain")], b"a\xffb").await,
            Body::Text("a\u{fffd}b".into())
        );
    }
}
