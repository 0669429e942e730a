//! Save-time checks of outbound URLs (Slack, webhooks), with the delivery module's rules
//! ([`check_target`]): `https` only, no credentials in the URL, and no private, loopback,
//! link-local or otherwise reserved IP-literal hosts unless the deployment allows that range
//! (`http` is then accepted too). Host names are not resolved here: the delivery client checks
//! the address it actually connects to, on every request.

use herald_core::delivery::outbound::{AllowList, check_target};
use ipnet::IpNet;
use url::Url;

use crate::error::ApiError;

/// Parses and checks an outbound URL named `field` in the request.
pub(crate) fn check_url(raw: &str, field: &str, allowed: &[IpNet]) -> Result<Url, ApiError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ApiError::invalid_field(field, format!("not a valid URL: {e}")))?;
    check_target(&url, &AllowList::new(allowed.to_vec()))
        .map_err(|blocked| ApiError::invalid_field(field, blocked.to_string()))?;
    Ok(url)
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
