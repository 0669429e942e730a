//! The outbound-safe HTTP client every delivery goes through.
//!
//! - A custom resolver ([`SafeResolver`]) resolves each host and refuses reserved addresses
//!   ([`outbound::check_ip`]) before hyper connects, so the address checked is the address
//!   connected to: a DNS answer that changes between a check and the connect (rebinding) cannot
//!   slip through.
//! - Hyper skips resolvers for IP-literal hosts, so [`OutboundClient::post`] checks literals (and
//!   the scheme) itself with [`outbound::check_target`] before sending.
//! - `http://` goes through a second client whose resolver accepts only allow-listed addresses.
//! - Redirects are never followed (a 3xx comes back as a response: a configuration error), system
//!   proxies are ignored (a proxy would connect for us, unchecked), and connect and total
//!   timeouts are bounded.
//!
//! Errors never carry the URL: Slack, Discord and Teams URLs are credentials.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use herald_core::delivery::classify::TransportError;
use herald_core::delivery::outbound::{self, AllowList};

/// Client settings.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Private networks that may be reached (and over plain http).
    pub allow: AllowList,
    /// Bound on establishing the connection (DNS, TCP, TLS).
    pub connect_timeout: Duration,
    /// Bound on the whole request, response body included.
    pub timeout: Duration,
    /// Most response-body bytes read (the rest is dropped).
    pub max_response_bytes: usize,
    pub user_agent: String,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow: AllowList::none(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024,
            user_agent: format!("Herald/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

pub use herald_core::delivery::outbound::ResolveError;

/// A resolver that drops every address outbound safety forbids, and fails when none is left.
#[derive(Debug, Clone)]
pub struct SafeResolver {
    allow: Arc<AllowList>,
    /// Accept only allow-listed addresses (the plain-http client).
    allow_listed_only: bool,
}

impl SafeResolver {
    /// A resolver for https targets: public addresses, and those in `allow`.
    pub fn new(allow: AllowList) -> Self {
        Self {
            allow: Arc::new(allow),
            allow_listed_only: false,
        }
    }

    /// A resolver for plain-http targets: only addresses in `allow`.
    pub fn allow_listed_only(allow: AllowList) -> Self {
        Self {
            allow: Arc::new(allow),
            allow_listed_only: true,
        }
    }
}

impl Resolve for SafeResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let kept = crate::delivery::resolve::resolve_checked(
                &host,
                0,
                &this.allow,
                this.allow_listed_only,
            )
            .await?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// A failed request: what kind of failure, and a description safe to log and show (no URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub kind: TransportError,
    pub message: String,
}

/// A response, body capped at `max_response_bytes`.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The host a redirect (3xx) pointed at, from its `Location` (never followed).
    pub redirect_host: Option<String>,
    pub body: Bytes,
}

/// The outbound-safe client.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    https: reqwest::Client,
    http: reqwest::Client,
    config: Arc<OutboundConfig>,
}

/// The client could not be built (TLS backend initialisation).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct BuildError(#[source] reqwest::Error);

impl OutboundClient {
    pub fn new(config: OutboundConfig) -> Result<Self, BuildError> {
        let allow = Arc::new(config.allow.clone());
        let build = |https_only: bool| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(SafeResolver {
                    allow: allow.clone(),
                    allow_listed_only: !https_only,
                }))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .https_only(https_only)
                .connect_timeout(config.connect_timeout)
                .timeout(config.timeout)
                .user_agent(config.user_agent.clone())
                .build()
                .map_err(BuildError)
        };
        Ok(Self {
            https: build(true)?,
            http: build(false)?,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// POSTs a JSON body. Refuses a target outbound safety forbids before any connection.
    pub async fn post(
        &self,
        url: &Url,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<RawResponse, SendError> {
        self.post_as(url, "application/json", headers, body).await
    }

    /// POSTs a body of `content_type` (e.g. an OAuth token request's form), with the same
    /// safety as [`post`](Self::post).
    pub async fn post_as(
        &self,
        url: &Url,
        content_type: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<RawResponse, SendError> {
        outbound::check_target(url, &self.config.allow).map_err(|e| SendError {
            kind: TransportError::Blocked,
            message: e.to_string(),
        })?;
        let client = if url.scheme() == "http" {
            &self.http
        } else {
            &self.https
        };
        let mut req = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.body(body).send().await.map_err(describe)?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after = header(reqwest::header::RETRY_AFTER.as_str())
            .map(str::to_owned)
            .or_else(|| {
                // Discord may answer a 429 with only its bucket's reset
                // (`X-RateLimit-Reset-After`); every Discord answer carries one, so it is a
                // wait only on a 429.
                (status == 429)
                    .then(|| header("x-ratelimit-reset-after"))
                    .flatten()
                    .and_then(reset_after_seconds)
            });
        // Only the host: a Location's path and query can carry tokens.
        let redirect_host = resp
            .status()
            .is_redirection()
            .then(|| resp.headers().get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| resp.url().join(v).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        let mut buf = Vec::new();
        // A body that breaks off after the status arrived still tells us the status.
        while buf.len() < self.config.max_response_bytes {
            match resp.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        buf.truncate(self.config.max_response_bytes);
        Ok(RawResponse {
            status,
            retry_after,
            redirect_host,
            body: Bytes::from(buf),
        })
    }
}

/// Phrases of rustls' error messages (rustls is not a direct dependency, so its error type cannot
/// be downcast to): a peer that does not speak TLS, or whose certificate we refuse.
const TLS_MARKERS: [&str; 8] = [
    "certificate",
    "tls",
    "handshake",
    "received corrupt message",
    "peer is incompatible",
    "peer misbehaved",
    "received fatal alert",
    "invalid dns name",
];

/// Classifies a reqwest error and describes it without the URL.
fn describe(err: reqwest::Error) -> SendError {
    let err = err.without_url();
    let mut chain = Vec::new();
    let mut resolve_error = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if resolve_error.is_none()
            && let Some(r) = e.downcast_ref::<ResolveError>()
        {
            resolve_error = Some(match r {
                ResolveError::Blocked(_) => TransportError::Blocked,
                ResolveError::Lookup(_) | ResolveError::NoAddress => TransportError::Dns,
            });
        }
        let text = e.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        source = e.source();
    }
    let message = chain.join(": ");
    let lower = message.to_ascii_lowercase();
    let kind = if let Some(kind) = resolve_error {
        kind
    } else if err.is_timeout() {
        TransportError::Timeout
    } else if err.is_builder() {
        TransportError::InvalidRequest
    } else if err.is_redirect() {
        TransportError::Redirect
    } else if TLS_MARKERS.iter().any(|m| lower.contains(m)) {
        TransportError::Tls
    } else {
        TransportError::Connect
    };
    SendError { kind, message }
}

/// `X-RateLimit-Reset-After` (fractional seconds, `1.234`) as a `Retry-After` value: whole
/// seconds, rounded up.
fn reset_after_seconds(value: &str) -> Option<String> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| format!("{}", secs.ceil() as u64))
}

#[cfg(test)]
mod tests {
    #[test]
    fn discords_reset_after_becomes_whole_seconds_rounded_up() {
        use super::reset_after_seconds as r;
        assert_eq!(r("1.234").as_deref(), Some("2"));
        assert_eq!(r("2").as_deref(), Some("2"));
        assert_eq!(r("0").as_deref(), Some("0"));
        assert_eq!(r("-1"), None);
        assert_eq!(r("soon"), None);
        assert_eq!(r("NaN"), None);
    }

    use super::*;

    #[tokio::test]
    async fn a_name_resolving_to_loopback_fails_as_blocked_inside_the_client() {
        // Past `check_target` (which already refuses `localhost` by name): the resolver is what
        // hyper asks, and its refusal must come back typed as `Blocked`, not as a DNS failure.
        let client = OutboundClient::new(OutboundConfig::default()).expect("client");
        let err = client
            .https
            .post("https://localhost:9/hook")
            .send()
            .await
            .expect_err("blocked");
        let e = describe(err);
        assert_eq!(e.kind, TransportError::Blocked, "{}", e.message);
        assert!(e.message.contains("loopback"), "{}", e.message);
        assert!(!e.message.contains("/hook"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_unknown_name_is_a_dns_failure() {
        let client = OutboundClient::new(OutboundConfig::default()).expect("client");
        let err = client
            .https
            .post("https://no-such-host.invalid/hook")
            .send()
            .await
            .expect_err("no such host");
        assert_eq!(describe(err).kind, TransportError::Dns);
    }
}
