//! The `Idempotency-Key` header of the POSTs that start work (resend): the same key with the
//! same request within 24 h answers the stored answer again, with `Idempotent-Replayed: true`;
//! the same key with another request is a 422 `idempotency_key_reused`; a repeat while the first
//! is still running is a 409 `idempotency_in_progress`. Keys are scoped to the org and the
//! method; the path is part of the request (the same key on another delivery's resend is a 422). Only successful answers are stored: an error frees the key, so the client can
//! fix the cause and retry with the same key (`herald_shared::repo::idempotency`).

use std::marker::PhantomData;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_core::domain::OrgId;
use herald_shared::repo::idempotency::{self, Answer, Claim};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The answer header on a replay.
pub const REPLAYED: &str = "idempotent-replayed";
/// The longest key.
pub const MAX_KEY_CHARS: usize = 255;

/// A request made with an `Idempotency-Key`: its scope (the method and the key; the org aside)
/// and its content's hash (the path and the body).
#[derive(Debug, Clone)]
pub struct Request {
    scope: String,
    hash: String,
}

impl Request {
    /// The key of `headers`, if any, for `method` on `path` with `body`: `None` without the
    /// header; 400 for a key that is empty, longer than 255 characters or not printable ASCII.
    pub fn new(
        headers: &HeaderMap,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> ApiResult<Option<Self>> {
        let Some(raw) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = raw
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= MAX_KEY_CHARS
                    && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .ok_or_else(|| {
                ApiError::invalid_body(
                    "Idempotency-Key",
                    format!("the Idempotency-Key header must be 1–{MAX_KEY_CHARS} printable ASCII characters"),
                )
            })?;
        let digest = |parts: &[&[u8]]| {
            let mut h = Sha256::new();
            for part in parts {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            hex(&h.finalize())
        };
        // The key is the org's, whatever the path: the same key on another path is another
        // request (422), as with the same key and another body.
        Ok(Some(Self {
            scope: digest(&[method.as_bytes(), key.as_bytes()]),
            hash: digest(&[path.as_bytes(), body]),
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An answer that may be a replay: its status, its JSON body and, on a replay,
/// `Idempotent-Replayed: true`.
#[derive(Debug)]
pub struct Idempotent<T> {
    status: StatusCode,
    body: serde_json::Value,
    replayed: bool,
    of: PhantomData<T>,
}

impl<T> IntoResponse for Idempotent<T> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

/// Runs `work` once per key: without a key, every time; with one, the first time, storing a
/// successful answer (`status`) for replays.
pub async fn run<T, F, Fut>(
    state: &AppState,
    org: OrgId,
    request: Option<Request>,
    status: StatusCode,
    work: F,
) -> ApiResult<Idempotent<T>>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let answer = |body: &T| serde_json::to_value(body).map_err(ApiError::internal);
    let Some(request) = request else {
        let body = work().await?;
        return Ok(Idempotent {
            status,
            body: answer(&body)?,
            replayed: false,
            of: PhantomData,
        });
    };
    let store = state.store.as_ref();
    match idempotency::claim(store, org, &request.scope, &request.hash, Utc::now())
        .await
        .map_err(ApiError::internal)?
    {
        Claim::Claimed => {}
        Claim::InProgress => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being handled; retry in a moment",
            )
            .field("Idempotency-Key"));
        }
        Claim::Reused => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with another request within 24 hours: use a new key",
            )
            .field("Idempotency-Key"));
        }
        Claim::Done(stored) => {
            return Ok(Idempotent {
                status: StatusCode::from_u16(stored.status).unwrap_or(status),
                body: stored.body,
                replayed: true,
                of: PhantomData,
            });
        }
    }
    match work().await {
        Ok(body) => {
            let body = answer(&body)?;
            let stored = Answer {
                status: status.as_u16(),
                body: body.clone(),
            };
            if let Err(e) = idempotency::complete(
                store,
                org,
                &request.scope,
                &request.hash,
                stored,
                Utc::now(),
            )
            .await
            {
                // The work is done; a lost record only means a retry is not recognised.
                tracing::warn!(error = %e, "the answer of an idempotent request was not stored");
            }
            Ok(Idempotent {
                status,
                body,
                replayed: false,
                of: PhantomData,
            })
        }
        Err(e) => {
            if let Err(release) = idempotency::release(store, org, &request.scope).await {
                tracing::warn!(error = %release, "an idempotency key was not freed; it frees itself in 5 minutes");
            }
            Err(e)
        }
    }
}
