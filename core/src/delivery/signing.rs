//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), as sent with every generic
//! webhook.
//!
//! Headers:
//! - `webhook-id`: the delivery id — the same on every retry, so receivers de-duplicate on it;
//! - `webhook-timestamp`: seconds since the Unix epoch when the attempt was signed;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256>` of `"{id}.{timestamp}.{body}"`, keyed by the
//!   base64-decoded part of the channel's `whsec_…` secret.
//!
//! Receivers: any Standard Webhooks library verifies these (`new Webhook("whsec_…").verify(body,
//! headers)`); by hand, recompute the HMAC over the raw body bytes, compare in constant time with
//! each space-separated `v1,` entry of `webhook-signature`, and refuse timestamps more than a few
//! minutes from your clock. [`verify`] does exactly that.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the delivery id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the signing time (epoch seconds).
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the signature(s).
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Default tolerance between the signing time and the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(key, id, timestamp, body).finalize().into_bytes())
    )
}

/// The three Standard Webhooks headers for one attempt, as `(name, value)`, signed with every
/// key of `keys` in order (the current secret first, then those a rotation keeps in their grace
/// period): `webhook-signature: v1,<current> v1,<previous>`. A receiver holding any of the
/// secrets verifies the request.
pub fn headers<K: AsRef<[u8]>>(
    keys: &[K],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = keys
        .iter()
        .map(|key| sign(key.as_ref(), id, timestamp, body))
        .collect();
    [
        (HEADER_ID, id.to_owned()),
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (HEADER_SIGNATURE, signatures.join(" ")),
    ]
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a number")]
    BadTimestamp,
    #[error("webhook-timestamp is {0} s away from now, more than the tolerance")]
    Stale(i64),
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Checks a received webhook: `signature_header` may hold several space-separated signatures
/// (during a secret rotation); one matching `v1` entry is enough. `now` and `tolerance_secs`
/// bound replay.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = (now - ts).abs();
    if skew > tolerance_secs {
        return Err(VerifyError::Stale(skew));
    }
    let expected = mac(key, id, ts, body);
    let matched = signature_header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| {
            STANDARD
                .decode(sig)
                .map(|bytes| expected.clone().verify_slice(&bytes).is_ok())
                .unwrap_or(false)
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channel::SigningSecret;

    fn vector_key() -> Vec<u8> {
        serde_json::from_value::<SigningSecret>(serde_json::json!(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        ))
        .expect("secret")
        .key_bytes()
    }

    #[test]
    fn signatures_reproduce_the_published_standard_webhooks_vector() {
        // The vector shipped with the Standard Webhooks / Svix reference libraries' tests.
        let sig = sign(
            &vector_key(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verify_accepts_one_matching_signature_among_several() {
        let header = "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            verify(
                &vector_key(),
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                header,
                body,
                1_614_265_400,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn verify_refuses_a_changed_body_a_wrong_key_and_a_stale_timestamp() {
        let key = vector_key();
        let sig = sign(&key, "id1", 1000, b"{}");
        assert_eq!(
            verify(&key, "id1", "1000", &sig, b"{ }", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(b"other", "id1", "1000", &sig, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key, "id2", "1000", &sig, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key, "id1", "1000", &sig, b"{}", 1301, 300),
            Err(VerifyError::Stale(301))
        );
        assert_eq!(
            verify(&key, "id1", "soon", &sig, b"{}", 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn headers_name_the_delivery_and_the_time() {
        let [id, ts, sig] = headers(&[b"k"], "d-1", 42, b"{}");
        assert_eq!(id, (HEADER_ID, "d-1".to_owned()));
        assert_eq!(ts, (HEADER_TIMESTAMP, "42".to_owned()));
        assert_eq!(sig.1, sign(b"k", "d-1", 42, b"{}"));
    }

    #[test]
    fn during_a_rotation_the_signature_header_lists_every_key_in_order_and_each_verifies() {
        let [_, _, (_, sig)] = headers(&[b"new".as_slice(), b"old"], "d-1", 42, b"{}");
        assert_eq!(
            sig,
            format!(
                "{} {}",
                sign(b"new", "d-1", 42, b"{}"),
                sign(b"old", "d-1", 42, b"{}")
            ),
            "the exact `v1,<new> v1,<old>` form"
        );
        for key in [b"new".as_slice(), b"old"] {
            assert_eq!(verify(key, "d-1", "42", &sig, b"{}", 42, 300), Ok(()));
        }
        assert_eq!(
            verify(b"other", "d-1", "42", &sig, b"{}", 42, 300),
            Err(VerifyError::NoMatch)
        );
    }
}
