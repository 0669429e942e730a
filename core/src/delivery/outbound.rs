//! Outbound safety: which addresses Herald may send to. Pure; the HTTP client
//! (`herald_shared::delivery::http`) applies [`check_ip`] to every address its resolver returns, so the address checked is the address connected to.
//!
//! Refused unless inside the allow-list (`herald serve --allow-private-targets 127.0.0.0/8`, env
//! `HERALD_ALLOW_PRIVATE_TARGETS`, comma-separated CIDRs):
//! - IPv4: `0.0.0.0/8` (this network, unspecified), `10/8`, `172.16/12`, `192.168/16` (private),
//!   `100.64/10` (CGNAT), `127/8` (loopback), `169.254/16` (link-local, cloud metadata),
//!   `192.0.0/24` (IETF assignments), `192.0.2/24`, `198.51.100/24`, `203.0.113/24`
//!   (documentation), `192.88.99/24` (6to4 relay), `198.18/15` (benchmarking), `224/4`
//!   (multicast), `240/4` (reserved, incl. broadcast `255.255.255.255`);
//! - IPv6: anything outside global unicast `2000::/3` (so `::`, `::1`, `fc00::/7` ULA,
//!   `fe80::/10` link-local, `ff00::/8` multicast), plus `2001:db8::/32` and `3fff::/20`
//!   (documentation), `2001::/23` (IETF assignments incl. Teredo), and the IPv4 inside
//!   `::ffff:a.b.c.d` (mapped), `::a.b.c.d` (compatible), `64:ff9b::/96` (NAT64) and `2002::/16`
//!   (6to4), checked as IPv4.
//!
//! `http://` is accepted only for targets inside the allow-list; everything else must be `https`.
//!
//! Senders that open their own connections (SMTP) resolve with `herald_shared::delivery::resolve::resolve_checked` and connect to
//! one of the addresses it returns, so they apply the same policy at the same moment as the HTTP
//! client's resolver (which uses [`filter_addrs`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

use crate::domain::Invalid;

/// Networks private targets may be in (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// No private target allowed.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (or the IPv4 address an IPv6 form embeds) is in an allowed network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let canonical = canonical(ip);
        self.0
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
    }
}

impl FromStr for AllowList {
    type Err = ipnet::AddrParseError;

    /// Comma- or whitespace-separated CIDRs; a bare address means just that address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|e| p.parse::<IpAddr>().map(IpNet::from).map_err(|_| e))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("{ip} is a {range} address; allow it with --allow-private-targets")]
    Address { ip: IpAddr, range: &'static str },
    #[error("`{0}` URLs are not allowed (use https)")]
    Scheme(String),
    #[error("plain http is allowed only for targets inside --allow-private-targets; use https")]
    InsecureScheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("URLs with a user name or password are not allowed")]
    Credentials,
}

/// The IPv4 address an IPv6 address stands for, if it embeds one; else the address itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // ::a.b.c.d (compatible; `::` and `::1` are judged as IPv6)
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // 64:ff9b::/96 (NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:a.b.c.d::/48 (6to4)
        [0x2002, _, _, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// The reserved range `ip` falls in, or `None` for a public address.
pub fn reserved_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => reserved_v4(v4),
        IpAddr::V6(v6) => reserved_v6(v6),
    }
}

fn reserved_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "this-network",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (100, 64..=127, _) => "carrier-grade NAT",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local (cloud metadata)",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved (or broadcast)",
        _ => return None,
    })
}

fn reserved_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return reserved_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0xfe80..=0xfebf => "link-local",
        0xfc00..=0xfdff => "unique local (private)",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x2001 if s[1] < 0x0200 => "IETF protocol assignment",
        0x3fff if s[1] < 0x1000 => "documentation",
        0x2000..=0x3fff => return None,
        _ => "reserved (not global unicast)",
    })
}

/// Refuses an address outside the allow-list that is not public.
pub fn check_ip(ip: IpAddr, allow: &AllowList) -> Result<(), Blocked> {
    if allow.contains(ip) {
        return Ok(());
    }
    match reserved_range(ip) {
        Some(range) => Err(Blocked::Address { ip, range }),
        None => Ok(()),
    }
}

/// Resolution failures, kept typed so a sender can tell a blocked address from a DNS failure.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Blocked(#[from] Blocked),
    #[error("DNS lookup failed: {0}")]
    Lookup(#[source] std::io::Error),
    #[error("the name resolved to no address")]
    NoAddress,
}

/// The addresses outbound safety allows, in their order; the first refusal when none is left.
/// `allow_listed_only`: for unencrypted connections (plain http, SMTP without TLS), which may
/// reach only allow-listed addresses.
pub fn filter_addrs(
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow: &AllowList,
    allow_listed_only: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let mut kept = Vec::new();
    let mut first_refusal = None;
    for addr in addrs {
        let verdict = if allow_listed_only && !allow.contains(addr.ip()) {
            Err(Blocked::InsecureScheme)
        } else {
            check_ip(addr.ip(), allow)
        };
        match verdict {
            Ok(()) => kept.push(addr),
            Err(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    match (kept.is_empty(), first_refusal) {
        (false, _) => Ok(kept),
        (true, Some(e)) => Err(ResolveError::Blocked(e)),
        (true, None) => Err(ResolveError::NoAddress),
    }
}

/// The longest outbound URL accepted (the de-facto limit of browsers and many servers).
pub const MAX_URL_CHARS: usize = 2048;
/// The longest SMTP relay host name (DNS's limit).
pub const MAX_HOST_CHARS: usize = 253;

/// Parses and checks an outbound URL (Slack, webhooks, FCM's `tokenUri`) named `field` in a
/// request, with [`check_target`]'s rules and at most [`MAX_URL_CHARS`] characters. Host names
/// are not resolved here: the senders check the address they actually connect to, on every
/// attempt.
pub fn check_url(raw: &str, field: &str, allow: &AllowList) -> Result<Url, Invalid> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(Invalid::new(
            field,
            format!("at most {MAX_URL_CHARS} characters"),
        ));
    }
    let url =
        Url::parse(raw.trim()).map_err(|e| Invalid::new(field, format!("not a valid URL: {e}")))?;
    check_target(&url, allow).map_err(|blocked| Invalid::new(field, blocked.to_string()))?;
    Ok(url)
}

/// Checks an SMTP relay's host named `field`, as the SMTP sender will when it connects: no
/// reserved IP literal (or `localhost`) outside the allow-list, and plain text (`plain`) only to
/// relays that can be inside it.
pub fn check_relay(raw: &str, plain: bool, field: &str, allow: &AllowList) -> Result<(), Invalid> {
    let name = raw.trim().trim_end_matches('.');
    let host = match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Host::Ipv4(v4),
        Ok(IpAddr::V6(v6)) => Host::Ipv6(v6),
        Err(_) if name.is_empty() || name.chars().count() > MAX_HOST_CHARS => {
            return Err(Invalid::new(
                field,
                format!("must be a host name or IP address of at most {MAX_HOST_CHARS} characters"),
            ));
        }
        Err(_) => Host::parse(name)
            .map_err(|e| Invalid::new(field, format!("not a valid host name: {e}")))?,
    };
    check_host(&host, allow, plain).map_err(|blocked| {
        let message = match blocked {
            Blocked::InsecureScheme => "plain-text SMTP (starttls: false) may reach only relays \
                inside --allow-private-targets; set starttls: true (or use port 465)"
                .to_owned(),
            other => other.to_string(),
        };
        Invalid::new(field, message)
    })
}

/// The check at channel save (and test) time: scheme, credentials, and the host when it is an IP
/// literal or `localhost`. A hostname's addresses are checked when it is resolved for sending.
pub fn check_target(url: &Url, allow: &AllowList) -> Result<(), Blocked> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Blocked::Credentials);
    }
    let host = url.host().ok_or(Blocked::NoHost)?;
    check_host(&host, allow, url.scheme() == "http")?;
    match url.scheme() {
        "https" | "http" => Ok(()),
        other => Err(Blocked::Scheme(other.to_owned())),
    }
}

/// The save-time check of a host a sender will connect to (a URL's, or an SMTP relay's): the
/// host when it is an IP literal or `localhost`; and for an unencrypted connection (`plain`:
/// `http`, SMTP without TLS), whether it can be allow-listed at all — a hostname's resolved
/// addresses must all be allow-listed at send time, here we can only say whether any could be.
pub fn check_host<S: AsRef<str>>(
    host: &Host<S>,
    allow: &AllowList,
    plain: bool,
) -> Result<(), Blocked> {
    let ip = match host {
        Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        Host::Domain(d) => {
            let d = d.as_ref().trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost"))
                .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
    };
    if let Some(ip) = ip {
        check_ip(ip, allow)?;
    }
    if !plain {
        return Ok(());
    }
    match ip {
        Some(ip) if allow.contains(ip) => Ok(()),
        None if !allow.is_empty() => Ok(()),
        _ => Err(Blocked::InsecureScheme),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_ok(raw: &str, allowed: &[IpNet]) -> bool {
        check_url(raw, "config.url", &AllowList::new(allowed.to_vec())).is_ok()
    }

    #[test]
    fn only_https_reaches_public_hosts() {
        assert!(url_ok("https://hooks.slack.com/services/T/B/x", &[]));
        assert!(!url_ok("http://example.com/hook", &[]));
        assert!(!url_ok("ftp://example.com/hook", &[]));
        assert!(!url_ok("not a url", &[]));
    }

    #[test]
    fn private_and_metadata_addresses_are_refused_unless_allowed() {
        assert!(!url_ok("https://169.254.169.254/latest/meta-data", &[]));
        assert!(!url_ok("https://10.0.0.1/x", &[]));
        assert!(!url_ok("https://[::1]/x", &[]));
        assert!(!url_ok("https://[::ffff:127.0.0.1]/x", &[]));
        assert!(!url_ok("https://localhost:8080/x", &[]));
        let loopback: IpNet = "127.0.0.0/8".parse().expect("cidr");
        assert!(url_ok("http://127.0.0.1:9000/hook", &[loopback]));
        assert!(url_ok("http://localhost:9000/hook", &[loopback]));
        assert!(!url_ok("http://10.0.0.1/x", &[loopback]));
        assert!(!url_ok("https://user:pass@example.com/x", &[]));
        let e = check_url(" not a url", "config.webhookUrl", &AllowList::none()).expect_err("bad");
        assert_eq!(e.field, "config.webhookUrl");
        assert!(e.message.starts_with("not a valid URL: "), "{}", e.message);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn reserved_ipv4_ranges_are_refused() {
        for a in [
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(
                check_ip(ip(a), &AllowList::none()).is_err(),
                "{a} must be blocked"
            );
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::1",
        ] {
            assert_eq!(check_ip(ip(a), &AllowList::none()), Ok(()), "{a} must pass");
        }
    }

    #[test]
    fn reserved_ipv6_ranges_and_embedded_ipv4_are_refused() {
        for a in [
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "100::1",
        ] {
            assert!(
                check_ip(ip(a), &AllowList::none()).is_err(),
                "{a} must be blocked"
            );
        }
        assert_eq!(check_ip(ip("::ffff:8.8.8.8"), &AllowList::none()), Ok(()));
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let allow: AllowList = "127.0.0.0/8, 10.0.0.5".parse().expect("cidrs");
        assert_eq!(check_ip(ip("127.0.0.1"), &allow), Ok(()));
        assert_eq!(check_ip(ip("::ffff:127.0.0.1"), &allow), Ok(()));
        assert_eq!(check_ip(ip("10.0.0.5"), &allow), Ok(()));
        assert!(check_ip(ip("10.0.0.6"), &allow).is_err());
        assert!(check_ip(ip("169.254.169.254"), &allow).is_err());
        assert!("127.0.0.0/33".parse::<AllowList>().is_err());
    }

    #[test]
    fn filtering_keeps_allowed_addresses_and_reports_the_first_refusal() {
        let sa = |s: &str| s.parse::<SocketAddr>().expect("socket address");
        let local: AllowList = "127.0.0.0/8".parse().expect("cidr");
        let kept = filter_addrs(
            [sa("127.0.0.1:25"), sa("8.8.8.8:25")],
            &AllowList::none(),
            false,
        )
        .expect("one public address");
        assert_eq!(kept, vec![sa("8.8.8.8:25")]);
        assert!(matches!(
            filter_addrs([sa("10.0.0.1:25")], &AllowList::none(), false),
            Err(ResolveError::Blocked(Blocked::Address { .. }))
        ));
        assert!(matches!(
            filter_addrs([sa("8.8.8.8:25")], &local, true),
            Err(ResolveError::Blocked(Blocked::InsecureScheme))
        ));
        assert_eq!(
            filter_addrs([sa("127.0.0.1:25")], &local, true).expect("allow-listed"),
            vec![sa("127.0.0.1:25")]
        );
        assert!(matches!(
            filter_addrs([], &local, false),
            Err(ResolveError::NoAddress)
        ));
    }

    #[test]
    fn blocked_addresses_say_why() {
        let err = check_ip(ip("169.254.169.254"), &AllowList::none()).expect_err("blocked");
        assert_eq!(
            err.to_string(),
            "169.254.169.254 is a link-local (cloud metadata) address; allow it with --allow-private-targets"
        );
    }

    #[test]
    fn targets_must_be_https_unless_allow_listed() {
        let none = AllowList::none();
        let local: AllowList = "127.0.0.0/8".parse().expect("cidr");
        assert_eq!(
            check_target(&url("https://hooks.slack.com/services/x"), &none),
            Ok(())
        );
        assert_eq!(
            check_target(&url("http://example.com/hook"), &none),
            Err(Blocked::InsecureScheme)
        );
        assert!(check_target(&url("http://127.0.0.1:8080/hook"), &none).is_err());
        assert_eq!(
            check_target(&url("http://127.0.0.1:8080/hook"), &local),
            Ok(())
        );
        assert!(check_target(&url("https://localhost/hook"), &none).is_err());
        assert_eq!(
            check_target(&url("http://localhost:9000/hook"), &local),
            Ok(())
        );
        assert!(check_target(&url("https://[::ffff:127.0.0.1]/hook"), &none).is_err());
        assert!(check_target(&url("https://169.254.169.254/latest/meta-data"), &local).is_err());
        assert_eq!(
            check_target(&url("ftp://example.com/x"), &none),
            Err(Blocked::Scheme("ftp".into()))
        );
        assert_eq!(
            check_target(&url("https://u:p@example.com/x"), &none),
            Err(Blocked::Credentials)
        );
    }
}
