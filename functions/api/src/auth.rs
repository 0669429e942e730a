//! Who is calling. Admin paths (orgs, API keys) take the `x-admin-key` header, compared in
//! constant time; org paths take an `x-api-key`, found by its SHA-256. A missing or unknown key
//! is a 401; a valid key of another org gets 404 on every path of this one, as if it did not
//! exist, so keys cannot probe for other orgs.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use herald_core::domain::api_key::KeyHash;
use herald_core::domain::{ApiKeyId, OrgId};
use herald_shared::repo::{ApiKeys, Orgs};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// The header carrying an org's API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The header carrying the admin credential.
pub const ADMIN_KEY_HEADER: &str = "x-admin-key";

/// The admin credential, kept only as its SHA-256 so comparisons take the same time whatever
/// the input, and its `Debug` shows nothing.
#[derive(Clone)]
pub struct AdminKey([u8; 32]);

impl AdminKey {
    pub fn new(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `given` is the admin key, in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.0
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(…)")
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            ApiError::unauthorized(format!("the {name} header is not valid text")).field(name)
        }),
    }
}

async fn path_params(parts: &mut Parts, state: &AppState) -> HashMap<String, String> {
    Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|Path(p)| p)
        .unwrap_or_default()
}

/// The request's `{orgId}`, or 404 when it is not an org id.
fn path_org(params: &HashMap<String, String>) -> Result<Option<OrgId>, ApiError> {
    match params.get("orgId") {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| ApiError::not_found("org")),
    }
}

/// A request authenticated with the admin key. On paths with an `{orgId}`, the org exists.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The path's org, when it has one.
    pub org_id: Option<OrgId>,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let given = header(parts, ADMIN_KEY_HEADER)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("this path needs the admin key in the x-admin-key header")
                    .field(ADMIN_KEY_HEADER)
            })?;
        let admin = state.config.admin_key.as_ref().ok_or_else(|| {
            ApiError::unauthorized("the admin API is disabled: no admin key is configured")
                .field(ADMIN_KEY_HEADER)
        })?;
        if !admin.matches(given) {
            return Err(ApiError::unauthorized("invalid admin key").field(ADMIN_KEY_HEADER));
        }
        let org_id = path_org(&path_params(parts, state).await)?;
        if let Some(org) = &org_id
            && Orgs::new(state.store.as_ref())
                .get(org)
                .await
                .map_err(|e| ApiError::from_repo(e, "org"))?
                .is_none()
        {
            return Err(ApiError::not_found("org"));
        }
        Ok(Self { org_id })
    }
}

/// A request authenticated with an API key of the path's org.
#[derive(Debug, Clone, Copy)]
pub struct OrgAuth {
    pub org_id: OrgId,
    /// The key that authenticated the request (for logs and audit, never the secret).
    pub key_id: ApiKeyId,
}

impl FromRequestParts<AppState> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = header(parts, API_KEY_HEADER)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("missing API key: send it in the x-api-key header")
                    .field(API_KEY_HEADER)
            })?;
        let key = ApiKeys::new(state.store.as_ref())
            .find_by_hash(&KeyHash::of(secret))
            .await
            .map_err(|e| ApiError::from_repo(e, "API key"))?
            .ok_or_else(|| {
                ApiError::unauthorized("unknown or revoked API key").field(API_KEY_HEADER)
            })?;
        match path_org(&path_params(parts, state).await)? {
            Some(org) if org == key.org_id => Ok(Self {
                org_id: org,
                key_id: key.id,
            }),
            _ => Err(ApiError::not_found("org")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_keys_match_only_themselves_and_never_print() {
        let k = AdminKey::new("s3cret-admin");
        assert!(k.matches("s3cret-admin"));
        assert!(!k.matches("s3cret-admim"));
        assert!(!k.matches(""));
        assert!(!format!("{k:?}").contains("s3cret"));
    }
}
