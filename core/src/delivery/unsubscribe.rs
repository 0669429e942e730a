//! RFC 8058 one-click unsubscribe: the signed link every non-critical email carries in its
//! `List-Unsubscribe` header, served by the API at `/u/{token}`.
//!
//! The token names the org, the user, the channel the email came through and the rule that sent
//! it, and when it expires ([`TOKEN_LIFETIME`] after the email was rendered). Following it opts
//! the user out of that channel. It is signed, so the endpoint needs no API key yet cannot be
//! pointed at another user, channel or org.
//!
//! Token format: base64url(JSON `{"o":org,"u":user,"c":channel,"r"?:rule,"e":expiry}`, `e` in
//! Unix seconds) + `.` + base64url(the first 16 bytes of HMAC-SHA256 over everything before the
//! dot), without padding — the tracking token's shape. The key is derived from the deployment's
//! token secret with a label of its own, so neither a tracking token nor a feed token can pass
//! as an unsubscribe token, or the other way round.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use url::Url;

use crate::domain::{ChannelId, OrgId, RuleKey, UserId};

/// Bytes of the MAC kept in a token: 128 bits.
const TAG_LEN: usize = 16;
/// Domain separation from every other use of the deployment's secret.
const KEY_LABEL: &[u8] = b"herald/unsubscribe/v1";
/// How long an unsubscribe link works after its email was rendered: 60 days. Mailbox providers
/// show the unsubscribe button for recent mail; an older email still has the preferences a
/// customer's own UI offers.
pub const TOKEN_LIFETIME: Duration = Duration::days(60);

/// Whom an unsubscribe link opts out, and of what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    #[serde(rename = "o")]
    pub org: OrgId,
    #[serde(rename = "u")]
    pub user: UserId,
    #[serde(rename = "c")]
    pub channel: ChannelId,
    /// The rule that sent the email (informational: the scope is the channel).
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleKey>,
}

/// What a message to a person carries when its email may offer an unsubscribe link: whom it
/// opts out, and the instant the link's lifetime counts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListUnsubscribe {
    pub target: Unsubscribe,
    pub at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(flatten)]
    target: Unsubscribe,
    /// Expiry, Unix seconds.
    e: i64,
}

/// Why an unsubscribe token was refused: the endpoint answers 404 for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsubscribeError {
    #[error("not an unsubscribe token")]
    Malformed,
    #[error("bad unsubscribe token signature")]
    BadSignature,
    #[error("unsubscribe token expired")]
    Expired,
}

/// The key unsubscribe tokens are signed with. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct UnsubscribeKey([u8; 32]);

impl UnsubscribeKey {
    /// Derives the key from the deployment's secret (`HERALD_FEED_TOKEN_SECRET`).
    pub fn derive(secret: &[u8]) -> Self {
        Self(hmac(secret, KEY_LABEL))
    }

    /// A token for `target`, valid until `now + TOKEN_LIFETIME`.
    pub fn sign(&self, target: &Unsubscribe, now: DateTime<Utc>) -> String {
        self.sign_until(target, now + TOKEN_LIFETIME)
    }

    fn sign_until(&self, target: &Unsubscribe, expires: DateTime<Utc>) -> String {
        let claims = Claims {
            target: target.clone(),
            e: expires.timestamp(),
        };
        // A struct of ids and a number always serialises.
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let tag = hmac(&self.0, payload.as_bytes());
        format!("{payload}.{}", B64.encode(&tag[..TAG_LEN]))
    }

    /// Checks a token taken from `/u/{token}` at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Unsubscribe, UnsubscribeError> {
        let (payload, tag) = token.split_once('.').ok_or(UnsubscribeError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| UnsubscribeError::Malformed)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(payload.as_bytes());
        if tag.len() != TAG_LEN || mac.verify_truncated_left(&tag).is_err() {
            return Err(UnsubscribeError::BadSignature);
        }
        let json = B64
            .decode(payload)
            .map_err(|_| UnsubscribeError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&json).map_err(|_| UnsubscribeError::Malformed)?;
        if now.timestamp() >= claims.e {
            return Err(UnsubscribeError::Expired);
        }
        Ok(claims.target)
    }
}

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(…)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The deployment's unsubscribe link maker from its configuration: the API's public URL
/// (`HERALD_PUBLIC_URL`) and the token secret (`HERALD_FEED_TOKEN_SECRET`). Without either,
/// emails carry no `List-Unsubscribe` (`None`), as they go untracked.
pub fn configured(
    public_url: Option<&str>,
    secret: Option<&[u8]>,
) -> Result<Option<Unsubscriber>, url::ParseError> {
    match (public_url, secret) {
        (Some(url), Some(secret)) => Ok(Some(Unsubscriber::new(
            Url::parse(url)?,
            UnsubscribeKey::derive(secret),
        ))),
        _ => Ok(None),
    }
}

/// Makes unsubscribe links under one public base URL (the API's).
#[derive(Debug, Clone)]
pub struct Unsubscriber {
    base: Url,
    key: UnsubscribeKey,
    mailto: Option<String>,
}

impl Unsubscriber {
    /// `base`: where the API is reached from the internet, e.g. `https://herald.example.com`.
    pub fn new(base: Url, key: UnsubscribeKey) -> Self {
        Self {
            base,
            key,
            mailto: None,
        }
    }

    /// Also offers `<mailto:{address}?subject=unsubscribe>` (RFC 2369), for clients that do
    /// not POST. What reaches that mailbox is the deployment's to handle.
    pub fn with_mailto(mut self, address: Option<String>) -> Self {
        self.mailto = address;
        self
    }

    /// The one-click URL for `target`, rendered at `now`.
    pub fn url(&self, target: &Unsubscribe, now: DateTime<Utc>) -> Url {
        let token = self.key.sign(target, now);
        let mut link = self.base.clone();
        link.set_path(&format!(
            "{}/u/{token}",
            self.base.path().trim_end_matches('/')
        ));
        link.set_query(None);
        link
    }

    /// The `List-Unsubscribe` header value for `target`.
    pub fn header(&self, target: &Unsubscribe, now: DateTime<Utc>) -> String {
        let mut value = format!("<{}>", self.url(target, now));
        if let Some(mailto) = &self.mailto {
            value.push_str(&format!(", <mailto:{mailto}?subject=unsubscribe>"));
        }
        value
    }

    /// The key the links are signed with (what the endpoint verifies with).
    pub fn key(&self) -> &UnsubscribeKey {
        &self.key
    }
}

/// The `List-Unsubscribe-Post` value RFC 8058 requires next to an https `List-Unsubscribe`.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::delivery::tracking::TrackingKey;

    fn target() -> Unsubscribe {
        Unsubscribe {
            org: OrgId::new(),
            user: UserId::parse("user-1").unwrap(),
            channel: ChannelId::new(),
            rule: Some(RuleKey::parse("welcome").unwrap()),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-06T22:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_what_it_names() {
        let key = UnsubscribeKey::derive(b"secret");
        let t = target();
        let token = key.sign(&t, now());
        assert_eq!(key.verify(&token, now()).unwrap(), t);
        assert_eq!(key.verify(&token, now() + Duration::days(59)).unwrap(), t);
    }

    #[test]
    fn a_token_expires_after_sixty_days() {
        let key = UnsubscribeKey::derive(b"secret");
        let token = key.sign(&target(), now());
        assert_eq!(
            key.verify(&token, now() + TOKEN_LIFETIME),
            Err(UnsubscribeError::Expired)
        );
    }

    #[test]
    fn another_secret_or_a_changed_payload_is_refused() {
        let key = UnsubscribeKey::derive(b"secret");
        let token = key.sign(&target(), now());
        assert_eq!(
            UnsubscribeKey::derive(b"other").verify(&token, now()),
            Err(UnsubscribeError::BadSignature)
        );
        let (_, tag) = token.split_once('.').unwrap();
        let mut other = target();
        other.user = UserId::parse("someone-else").unwrap();
        let forged_payload = key.sign(&other, now());
        let (payload, _) = forged_payload.split_once('.').unwrap();
        assert_eq!(
            key.verify(&format!("{payload}.{tag}"), now()),
            Err(UnsubscribeError::BadSignature)
        );
        assert_eq!(
            key.verify("no-dot", now()),
            Err(UnsubscribeError::Malformed)
        );
    }

    #[test]
    fn the_label_separates_unsubscribe_from_tracking_tokens() {
        // The same secret, the same payload: a tracking-key MAC does not pass.
        let secret = b"secret";
        let key = UnsubscribeKey::derive(secret);
        let token = key.sign(&target(), now());
        let (payload, _) = token.split_once('.').unwrap();
        let tracking = hmac(
            &hmac(secret, b"herald/email-tracking/v1"),
            payload.as_bytes(),
        );
        let with_tracking_tag = format!("{payload}.{}", B64.encode(&tracking[..TAG_LEN]));
        assert_eq!(
            key.verify(&with_tracking_tag, now()),
            Err(UnsubscribeError::BadSignature)
        );
        // And an unsubscribe token is no tracking token.
        assert!(TrackingKey::derive(secret).verify(&token, false).is_err());
    }

    #[test]
    fn the_header_names_the_https_link_and_the_mailto() {
        let u = Unsubscriber::new(
            "https://herald.example.com/api/".parse().unwrap(),
            UnsubscribeKey::derive(b"secret"),
        )
        .with_mailto(Some("unsubscribe@example.com".into()));
        let t = target();
        let h = u.header(&t, now());
        assert!(h.starts_with("<https://herald.example.com/api/u/"), "{h}");
        assert!(
            h.ends_with(", <mailto:unsubscribe@example.com?subject=unsubscribe>"),
            "{h}"
        );
        let url = u.url(&t, now());
        let token = url.path().rsplit('/').next().unwrap();
        assert_eq!(u.key().verify(token, now()).unwrap(), t);
    }
}
