//! Email open and click tracking: signed links served by the API.
//!
//! An email carries a 1×1 pixel at `{base}/t/o/{token}` and its link rewritten to
//! `{base}/t/c/{token}`. The token names the org, the delivery and (for a click) the destination,
//! and is signed, so the tracking endpoints need no API key yet cannot be pointed at another
//! delivery or turned into an open redirect.
//!
//! Token format: base64url(JSON `{"k":"o"|"c","o":org,"d":delivery,"u"?:url}`) + `.` +
//! base64url(the first 16 bytes of HMAC-SHA256 over everything before the dot), without padding.
//! Tokens do not expire: an email opened a year later is still an open. The key is derived from
//! the deployment's token secret with a label of its own, so a tracking token can never pass as
//! a feed token or the other way round.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use url::Url;

use crate::domain::{DeliveryId, OrgId};

/// Bytes of the MAC kept in a token: 128 bits.
const TAG_LEN: usize = 16;
/// Domain separation from every other use of the deployment's secret.
const KEY_LABEL: &[u8] = b"herald/email-tracking/v1";
/// Longest click destination accepted, in bytes (longer links go out untracked).
pub const MAX_TRACKED_URL: usize = 2048;

/// The key tracking tokens are signed with. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct TrackingKey([u8; 32]);

impl TrackingKey {
    /// Derives the tracking key from the deployment's secret (`HERALD_FEED_TOKEN_SECRET`).
    pub fn derive(secret: &[u8]) -> Self {
        Self(hmac(secret, KEY_LABEL))
    }

    fn tag(&self, data: &[u8]) -> [u8; 32] {
        hmac(&self.0, data)
    }

    /// Whether `tag` is the first [`TAG_LEN`] bytes of the MAC of `data` (constant time).
    fn verify_tag(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        tag.len() == TAG_LEN && mac.verify_truncated_left(tag).is_ok()
    }

    /// Checks a token taken from `/t/o/{token}` (`click: false`) or `/t/c/{token}`
    /// (`click: true`).
    pub fn verify(&self, token: &str, click: bool) -> Result<Tracked, TrackingError> {
        let (payload, tag) = token.split_once('.').ok_or(TrackingError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TrackingError::Malformed)?;
        if !self.verify_tag(payload.as_bytes(), &tag) {
            return Err(TrackingError::BadSignature);
        }
        let json = B64.decode(payload).map_err(|_| TrackingError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TrackingError::Malformed)?;
        match (claims.k.as_str(), click, claims.u) {
            ("o", false, None) => Ok(Tracked::Open {
                org: claims.o,
                delivery: claims.d,
            }),
            ("c", true, Some(url)) => Ok(Tracked::Click {
                org: claims.o,
                delivery: claims.d,
                url,
            }),
            _ => Err(TrackingError::Malformed),
        }
    }
}

impl std::fmt::Debug for TrackingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrackingKey(…)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// What a tracking link records when followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracked {
    /// The pixel was loaded: the email was opened.
    Open { org: OrgId, delivery: DeliveryId },
    /// The link was followed; the reader goes on to `url`.
    Click {
        org: OrgId,
        delivery: DeliveryId,
        url: Url,
    },
}

/// Why a tracking token was refused: the endpoints answer 404 for all of them, so a guess
/// learns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrackingError {
    #[error("not a tracking token")]
    Malformed,
    #[error("bad tracking token signature")]
    BadSignature,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    /// `o` (open) or `c` (click).
    k: String,
    o: OrgId,
    d: DeliveryId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<Url>,
}

/// The deployment's link maker from its configuration: the API's public URL
/// (`HERALD_PUBLIC_URL`) and the token secret. Without either, emails go untracked (`None`).
pub fn configured(
    public_url: Option<&str>,
    secret: Option<&[u8]>,
) -> Result<Option<Tracker>, url::ParseError> {
    match (public_url, secret) {
        (Some(url), Some(secret)) => Ok(Some(Tracker::new(
            Url::parse(url)?,
            TrackingKey::derive(secret),
        ))),
        _ => Ok(None),
    }
}

/// Makes tracking links under one public base URL (the API's); [`TrackingKey::verify`] checks
/// them.
#[derive(Debug, Clone)]
pub struct Tracker {
    base: Url,
    key: TrackingKey,
}

impl Tracker {
    /// `base`: where the API is reached from the internet, e.g. `https://herald.example.com`.
    pub fn new(base: Url, key: TrackingKey) -> Self {
        Self { base, key }
    }

    /// The open pixel's URL for a delivery.
    pub fn open_url(&self, org: OrgId, delivery: DeliveryId) -> Url {
        self.link("o", org, delivery, None)
    }

    /// The click-through URL for `target`; `None` for a destination too long to carry.
    pub fn click_url(&self, org: OrgId, delivery: DeliveryId, target: &Url) -> Option<Url> {
        (target.as_str().len() <= MAX_TRACKED_URL)
            .then(|| self.link("c", org, delivery, Some(target.clone())))
    }

    fn link(&self, kind: &str, org: OrgId, delivery: DeliveryId, url: Option<Url>) -> Url {
        let claims = Claims {
            k: kind.to_owned(),
            o: org,
            d: delivery,
            u: url,
        };
        let token = self.sign(&claims);
        let mut link = self.base.clone();
        let path = format!(
            "{}/t/{kind}/{token}",
            self.base.path().trim_end_matches('/')
        );
        link.set_path(&path);
        link.set_query(None);
        link
    }

    /// The key the links are signed with (what the tracking endpoints verify with).
    pub fn key(&self) -> &TrackingKey {
        &self.key
    }

    fn sign(&self, claims: &Claims) -> String {
        // A struct of strings and ids always serialises.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let payload = B64.encode(json);
        let tag = self.key.tag(payload.as_bytes());
        format!("{payload}.{}", B64.encode(&tag[..TAG_LEN]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tracker(secret: &[u8]) -> Tracker {
        Tracker::new(
            Url::parse("https://herald.example.com/base/").unwrap(),
            TrackingKey::derive(secret),
        )
    }

    fn token_of(url: &Url) -> String {
        url.path().rsplit('/').next().unwrap().to_owned()
    }

    #[test]
    fn an_open_link_verifies_as_that_open_only() {
        let t = tracker(b"0123456789abcdef0123");
        let (org, delivery) = (OrgId::new(), DeliveryId::new());
        let url = t.open_url(org, delivery);
        assert!(
            url.as_str()
                .starts_with("https://herald.example.com/base/t/o/")
        );
        let token = token_of(&url);
        assert_eq!(
            t.key().verify(&token, false),
            Ok(Tracked::Open { org, delivery })
        );
        // The same token on the click path is refused: it carries no destination.
        assert_eq!(t.key().verify(&token, true), Err(TrackingError::Malformed));
    }

    #[test]
    fn a_click_link_carries_its_destination() {
        let t = tracker(b"0123456789abcdef0123");
        let (org, delivery) = (OrgId::new(), DeliveryId::new());
        let target = Url::parse("https://app.example.com/invoices/42?tab=pay#top").unwrap();
        let url = t.click_url(org, delivery, &target).unwrap();
        assert_eq!(
            t.key().verify(&token_of(&url), true),
            Ok(Tracked::Click {
                org,
                delivery,
                url: target
            })
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let t = tracker(b"0123456789abcdef0123");
        let token = token_of(&t.open_url(OrgId::new(), DeliveryId::new()));
        let (payload, tag) = token.split_once('.').unwrap();
        let other = token_of(&t.open_url(OrgId::new(), DeliveryId::new()));
        let (other_payload, _) = other.split_once('.').unwrap();
        assert_eq!(
            t.key().verify(&format!("{other_payload}.{tag}"), false),
            Err(TrackingError::BadSignature)
        );
        assert_eq!(
            tracker(b"another secret of enough bytes")
                .key()
                .verify(&token, false),
            Err(TrackingError::BadSignature)
        );
        assert_eq!(
            t.key().verify(payload, false),
            Err(TrackingError::Malformed)
        );
        assert_eq!(t.key().verify("", false), Err(TrackingError::Malformed));
        assert_eq!(
            t.key().verify("a.b.c", false),
            Err(TrackingError::Malformed)
        );
    }

    #[test]
    fn overlong_destinations_go_untracked() {
        let t = tracker(b"0123456789abcdef0123");
        let long = Url::parse(&format!("https://x.example/{}", "a".repeat(3000))).unwrap();
        assert_eq!(t.click_url(OrgId::new(), DeliveryId::new(), &long), None);
    }
}
