//! Query strings: parsed into a typed struct, and a malformed one (a repeated parameter, a value
//! of the wrong type) answered as a JSON 400 `invalid_query`, like every other bad input.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query string of a request, parsed into `T`.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse(parts).map(QueryParams)
    }
}

/// Parses the query string of `parts` into `T`.
pub fn parse<T: DeserializeOwned>(parts: &Parts) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(&parts.uri)
        .map(|Query(value)| value)
        .map_err(|e| {
            ApiError::invalid_query("", format!("invalid query string: {}", e.body_text()))
        })
}
