//! Feed user tokens: what a customer's backend mints (with its org API key) and hands to a
//! browser or app, scoped to one user of one org and short-lived.
//!
//! Format: `hft_` + base64url(JSON `{"org","user","exp"}`) + `.` + base64url(HMAC-SHA256 over
//! everything before the dot), base64url without padding. The MAC is checked in constant time
//! before the payload is parsed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::{OrgId, UserId};

/// Every feed token starts with this.
pub const TOKEN_PREFIX: &str = "hft_";
/// Lifetime of a token when the caller names none.
pub const DEFAULT_TTL: Duration = Duration::hours(1);
/// The longest lifetime a token may have.
pub const MAX_TTL: Duration = Duration::hours(24);
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The key tokens are signed with (`HERALD_FEED_TOKEN_SECRET`). Its `Debug` shows nothing.
#[derive(Clone)]
pub struct FeedTokenSecret(Vec<u8>);

impl FeedTokenSecret {
    /// A secret from configuration; refused when shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        Ok(Self(secret))
    }

    /// 32 random bytes: for a local server that keeps tokens valid only while it runs.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac
    }
}

impl std::fmt::Debug for FeedTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedTokenSecret(…)")
    }
}

/// Why a token was refused. Every variant is a 401 to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a feed token")]
    Malformed,
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token is for another org")]
    WrongOrg,
    #[error("feed token secrets must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    #[error("ttl must be between 1 second and 24 hours")]
    BadTtl,
}

/// What a valid token grants: one user of one org, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedToken {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    org: OrgId,
    user: UserId,
    exp: i64,
}

impl FeedToken {
    /// A token for `user` of `org`, valid for `ttl` from `now` (1 s to 24 h).
    pub fn new(
        org_id: OrgId,
        user_id: UserId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Self, TokenError> {
        if ttl < Duration::seconds(1) || ttl > MAX_TTL {
            return Err(TokenError::BadTtl);
        }
        // Whole seconds: what the token carries.
        let expires_at =
            DateTime::from_timestamp((now + ttl).timestamp(), 0).ok_or(TokenError::BadTtl)?;
        Ok(Self {
            org_id,
            user_id,
            expires_at,
        })
    }

    /// The signed token string.
    pub fn sign(&self, secret: &FeedTokenSecret) -> String {
        let claims = Claims {
            org: self.org_id,
            user: self.user_id.clone(),
            exp: self.expires_at.timestamp(),
        };
        // Serialising a struct of strings and an integer cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let signed = format!("{TOKEN_PREFIX}{}", B64.encode(json));
        let tag = secret.mac(signed.as_bytes()).finalize().into_bytes();
        format!("{signed}.{}", B64.encode(tag))
    }

    /// Checks a token's signature (constant time) and expiry at `now`.
    pub fn verify(
        token: &str,
        secret: &FeedTokenSecret,
        now: DateTime<Utc>,
    ) -> Result<Self, TokenError> {
        let token = token.trim();
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        secret
            .mac(signed.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = B64
            .decode(&signed[TOKEN_PREFIX.len()..])
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(TokenError::Malformed)?;
        Ok(Self {
            org_id: claims.org,
            user_id: claims.user,
            expires_at,
        })
    }

    /// [`verify`](Self::verify), and the token must be for `org`.
    pub fn verify_for_org(
        token: &str,
        secret: &FeedTokenSecret,
        org: &OrgId,
        now: DateTime<Utc>,
    ) -> Result<Self, TokenError> {
        let t = Self::verify(token, secret, now)?;
        if t.org_id != *org {
            return Err(TokenError::WrongOrg);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secret() -> FeedTokenSecret {
        FeedTokenSecret::new(b"0123456789abcdef-test-secret".to_vec()).unwrap()
    }

    fn token(now: DateTime<Utc>) -> FeedToken {
        FeedToken::new(
            OrgId::new(),
            UserId::parse("alice@example.com").unwrap(),
            now,
            DEFAULT_TTL,
        )
        .unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_its_user_until_it_expires() {
        let now = Utc::now();
        let t = token(now);
        let s = t.sign(&secret());
        assert!(s.starts_with("hft_"));
        let back = FeedToken::verify(&s, &secret(), now).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            FeedToken::verify(&s, &secret(), now + Duration::minutes(61)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_tokens_and_other_secrets_are_refused() {
        let now = Utc::now();
        let t = token(now);
        let s = t.sign(&secret());
        // Swap the user in the payload, keep the signature.
        let other = FeedToken {
            user_id: UserId::parse("mallory").unwrap(),
            ..t.clone()
        }
        .sign(&secret());
        let forged = format!(
            "{}.{}",
            other.rsplit_once('.').unwrap().0,
            s.rsplit_once('.').unwrap().1
        );
        assert_eq!(
            FeedToken::verify(&forged, &secret(), now),
            Err(TokenError::BadSignature)
        );
        let wrong = FeedTokenSecret::new(b"another-secret-of-16+".to_vec()).unwrap();
        assert_eq!(
            FeedToken::verify(&s, &wrong, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            FeedToken::verify("hft_nope", &secret(), now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            FeedToken::verify("Bearer x", &secret(), now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            FeedToken::verify_for_org(&s, &secret(), &OrgId::new(), now),
            Err(TokenError::WrongOrg)
        );
    }

    #[test]
    fn ttl_is_bounded_and_secrets_must_be_long_enough() {
        let now = Utc::now();
        let user = UserId::parse("u").unwrap();
        assert_eq!(
            FeedToken::new(OrgId::new(), user.clone(), now, Duration::hours(25)),
            Err(TokenError::BadTtl)
        );
        assert_eq!(
            FeedToken::new(OrgId::new(), user, now, Duration::zero()),
            Err(TokenError::BadTtl)
        );
        assert_eq!(
            FeedTokenSecret::new(b"short".to_vec()).err(),
            Some(TokenError::WeakSecret)
        );
        assert!(!format!("{:?}", secret()).contains("0123"));
    }
}
