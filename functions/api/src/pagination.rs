//! `?limit=&cursor=` on every list, and the `{"items", "nextCursor"}` shape of its answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herald_shared::repo::{DEFAULT_PAGE, MAX_PAGE};
use herald_shared::store::Cursor;
use serde::Deserialize;

use crate::error::ApiError;

/// A list request's page: `limit` (1–100, default 50) and the `cursor` a previous page returned.
#[derive(Debug, Clone)]
pub struct ListParams {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw: Raw = crate::query::parse(parts)?;
        let limit = match raw.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_query(
                        "limit",
                        format!("limit must be an integer from 1 to {MAX_PAGE}"),
                    ));
                }
            },
        };
        let cursor = match raw.cursor.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(Cursor::parse(s).map_err(|_| {
                ApiError::invalid_query(
                    "cursor",
                    "invalid pagination cursor: pass `nextCursor` from the previous page unchanged",
                )
            })?),
        };
        Ok(Self { limit, cursor })
    }
}
