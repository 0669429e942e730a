//! Save-time checks of outbound URLs (Slack, webhooks): `https` only, and no private, loopback,
//! link-local or otherwise reserved IP-literal hosts unless the deployment allows that range
//! (`http` is then accepted too). Host names are not resolved here: the delivery client checks
//! the address it actually connects to, on every request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

use crate::error::ApiError;

/// Parses and checks an outbound URL named `field` in the request.
pub(crate) fn check_url(raw: &str, field: &str, allowed: &[IpNet]) -> Result<Url, ApiError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ApiError::invalid_field(field, format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ApiError::invalid_field(field, "must be an https:// URL"));
    }
    let ip = match url.host() {
        None => return Err(ApiError::invalid_field(field, "the URL has no host")),
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(d))
            if d.eq_ignore_ascii_case("localhost")
                || d.to_ascii_lowercase().ends_with(".localhost") =>
        {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        Some(Host::Domain(_)) => None,
    };
    if let Some(ip) = ip {
        if allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(url);
        }
        if is_reserved(ip) {
            return Err(ApiError::invalid_field(
                field,
                format!(
                    "{ip} is a private or reserved address; Herald sends only to public addresses unless the range is allowed (--allow-private-targets)"
                ),
            ));
        }
    }
    if url.scheme() != "https" {
        return Err(ApiError::invalid_field(
            field,
            "must be an https:// URL (http is accepted only for allowed private targets)",
        ));
    }
    Ok(url)
}

/// Addresses no public endpoint has: private, loopback, link-local (cloud metadata), CGNAT,
/// multicast, documentation, benchmarking, unspecified and future-use ranges.
pub(crate) fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_reserved_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_reserved_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64, embeds IPv4
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn is_reserved_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved, broadcast
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
    }
}
