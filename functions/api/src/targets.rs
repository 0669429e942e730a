//! Save-time checks of outbound targets (Slack and webhook URLs, FCM's `tokenUri`, SMTP relays),
//! with the delivery module's rules ([`check_target`], [`check_host`]): `https` only, no
//! credentials in the URL, at most [`MAX_URL_CHARS`] characters, and no private, loopback,
//! link-local or otherwise reserved IP-literal hosts unless the deployment allows that range
//! (`http`, or SMTP without TLS, is then accepted too). Host names are not resolved here: the
//! senders check the address they actually connect to, on every attempt.

use std::net::IpAddr;

use herald_core::delivery::outbound::{AllowList, Blocked, check_host, check_target};
use ipnet::IpNet;
use url::{Host, Url};

use crate::error::ApiError;

/// The longest outbound URL accepted (the de-facto limit of browsers and many servers).
pub(crate) const MAX_URL_CHARS: usize = 2048;
/// The longest SMTP relay host name (DNS's limit).
const MAX_HOST_CHARS: usize = 253;

/// Parses and checks an outbound URL named `field` in the request.
pub(crate) fn check_url(raw: &str, field: &str, allowed: &[IpNet]) -> Result<Url, ApiError> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(ApiError::invalid_field(
            field,
            format!("at most {MAX_URL_CHARS} characters"),
        ));
    }
    let url = Url::parse(raw.trim())
        .map_err(|e| ApiError::invalid_field(field, format!("not a valid URL: {e}")))?;
    check_target(&url, &AllowList::new(allowed.to_vec()))
        .map_err(|blocked| ApiError::invalid_field(field, blocked.to_string()))?;
    Ok(url)
}

/// Checks an SMTP relay's host named `field`, as the SMTP sender will when it connects: no
/// reserved IP literal (or `localhost`) outside the allow-list, and plain text (`plain`) only to
/// relays that can be inside it.
pub(crate) fn check_relay(
    raw: &str,
    plain: bool,
    field: &str,
    allowed: &[IpNet],
) -> Result<(), ApiError> {
    let name = raw.trim().trim_end_matches('.');
    let host = match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Host::Ipv4(v4),
        Ok(IpAddr::V6(v6)) => Host::Ipv6(v6),
        Err(_) if name.is_empty() || name.chars().count() > MAX_HOST_CHARS => {
            return Err(ApiError::invalid_field(
                field,
                format!("must be a host name or IP address of at most {MAX_HOST_CHARS} characters"),
            ));
        }
        Err(_) => Host::parse(name)
            .map_err(|e| ApiError::invalid_field(field, format!("not a valid host name: {e}")))?,
    };
    check_host(&host, &AllowList::new(allowed.to_vec()), plain).map_err(|blocked| {
        let message = match blocked {
            Blocked::InsecureScheme => "plain-text SMTP (starttls: false) may reach only relays \
                inside --allow-private-targets; set starttls: true (or use port 465)"
                .to_owned(),
            other => other.to_string(),
        };
        ApiError::invalid_field(field, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, allowed: &[IpNet]) -> bool {
        check_url(raw, "config.url", allowed).is_ok()
    }

    #[test]
    fn only_https_reaches_public_hosts() {
        assert!(ok("https://hooks.slack.com/services/T/B/x", &[]));
        assert!(!ok("http://example.com/hook", &[]));
        assert!(!ok("ftp://example.com/hook", &[]));
        assert!(!ok("not a url", &[]));
    }

    #[test]
    fn private_and_metadata_addresses_are_refused_unless_allowed() {
        assert!(!ok("https://169.254.169.254/latest/meta-data", &[]));
        assert!(!ok("https://10.0.0.1/x", &[]));
        assert!(!ok("https://[::1]/x", &[]));
        assert!(!ok("https://[::ffff:127.0.0.1]/x", &[]));
        assert!(!ok("https://localhost:8080/x", &[]));
        let loopback: IpNet = "127.0.0.0/8".parse().expect("cidr");
        assert!(ok("http://127.0.0.1:9000/hook", &[loopback]));
        assert!(ok("http://localhost:9000/hook", &[loopback]));
        assert!(!ok("http://10.0.0.1/x", &[loopback]));
        assert!(!ok("https://user:pass@example.com/x", &[]));
    }
}
