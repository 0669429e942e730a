//! HTTP receivers on 127.0.0.1 standing in for Slack, a generic webhook endpoint, Discord and
//! Teams. Each checks the shape of what arrives (a malformed message is recorded with its
//! problems and answered `400`), answers as scripted, and records every arrival.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use herald_core::delivery::signing;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;

/// What the receiver imitates, which decides the checks and the shape of its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Slack incoming webhook: `attachments`; answers `200 ok`.
    Slack,
    /// A generic webhook endpoint verifying Standard Webhooks signatures; answers `200`.
    Webhook,
    /// A Discord webhook called with `?wait=true`: `embeds`; answers `200` with the message.
    Discord,
    /// A Teams Workflows webhook: an Adaptive Card; answers `202`.
    Teams,
}

/// How to answer one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success, as the real service says it.
    Ok,
    /// `429` with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// `500`.
    ServerError,
    /// `404 channel_not_found` (Slack's answer for a deleted channel).
    ChannelNotFound,
}

/// One request as it arrived, and how it was answered.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: DateTime<Utc>,
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` if it was not JSON: then `problems` says so).
    pub body: Value,
    pub raw: Bytes,
    /// The `webhook-id` header, when there was one.
    pub webhook_id: Option<String>,
    /// What was wrong with the request; empty for a well-formed one.
    pub problems: Vec<String>,
    /// The status answered.
    pub status: u16,
}

impl Arrival {
    /// Whether the Standard Webhooks reference verifier (the `standardwebhooks` crate) accepts
    /// this request with the `whsec_…` secret `secret`: a signature in `webhook-signature`
    /// matches, and `webhook-timestamp` is within its tolerance of now.
    pub fn verifies_with(&self, secret: &str) -> bool {
        let Ok(webhook) = standardwebhooks::Webhook::new(secret) else {
            return false;
        };
        webhook.verify(&self.raw, &self.headers).is_ok()
    }

    /// The `v1,` signatures of `webhook-signature`, in order.
    pub fn signatures(&self) -> Vec<String> {
        self.headers
            .get(signing::HEADER_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(' ').map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
enum Fallback {
    Always(Reply),
    /// `ServerError` with probability `rate`, else `Ok`, drawn from a seeded generator.
    Random {
        rng: Box<StdRng>,
        rate: f64,
    },
}

/// A provider's rate limit: GCRA (a token bucket of `burst` refilled at `per_second`), per
/// path, with some tolerance for the jitter between a sender's clock and the arrival.
#[derive(Debug)]
struct RateLimit {
    interval: Duration,
    burst: u32,
    tolerance: Duration,
    /// Theoretical arrival time per path.
    tat: std::collections::HashMap<String, Instant>,
}

impl RateLimit {
    /// `None` when the request is within the limit (and takes its share), else how long until
    /// it would have been.
    fn check(&mut self, path: &str, now: Instant) -> Option<Duration> {
        let tat = self.tat.get(path).copied().unwrap_or(now).max(now);
        let allowance = self.interval * self.burst.saturating_sub(1) + self.tolerance;
        let allowed_at = tat.checked_sub(allowance).unwrap_or(now);
        if allowed_at <= now {
            self.tat.insert(path.to_owned(), tat + self.interval);
            None
        } else {
            Some(allowed_at - now)
        }
    }
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    script: VecDeque<Reply>,
    fallback: Fallback,
    rate_limit: Option<RateLimit>,
    signing_key: Option<Vec<u8>>,
    arrivals: Vec<Arrival>,
}

/// A receiver listening on `127.0.0.1:<free port>`; it stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`; any path is accepted.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver of `kind` answering `Reply::Ok` until told otherwise.
    pub async fn start(kind: Kind) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            kind,
            script: VecDeque::new(),
            fallback: Fallback::Always(Reply::Ok),
            rate_limit: None,
            signing_key: None,
            arrivals: Vec::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the receiver");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the receiver's address")
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner, task }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers the next requests with `replies`, in order, then as before.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Answers every unscripted request with `reply`.
    pub fn always(&self, reply: Reply) {
        self.lock().fallback = Fallback::Always(reply);
    }

    /// Fails unscripted requests with `500` at random with probability `rate` (reproducibly:
    /// the draws come from a generator seeded with `seed`).
    pub fn fail_randomly(&self, seed: u64, rate: f64) {
        self.lock().fallback = Fallback::Random {
            rng: Box::new(StdRng::seed_from_u64(seed)),
            rate,
        };
    }

    /// Enforces a provider's rate limit, per path: `per_second` on average, `burst` back to
    /// back, with 25 ms of tolerance; a request beyond it is answered `429` with `Retry-After`
    /// (whole seconds, at least 1), as Slack does. Scripted replies come first.
    pub fn enforce_rate(&self, per_second: f64, burst: u32) {
        self.lock().rate_limit = Some(RateLimit {
            interval: Duration::from_secs_f64(1.0 / per_second),
            burst,
            tolerance: Duration::from_millis(25),
            tat: std::collections::HashMap::new(),
        });
    }

    /// How many requests were answered `429`.
    pub fn rate_limited(&self) -> usize {
        self.lock()
            .arrivals
            .iter()
            .filter(|a| a.status == 429)
            .count()
    }

    /// The channel's `whsec_…` signing secret, which a webhook receiver verifies every request
    /// with. Until it is set, every signed request is refused as unverifiable.
    pub fn set_signing_secret(&self, secret: &str) {
        let encoded = secret
            .strip_prefix("whsec_")
            .unwrap_or_else(|| panic!("a signing secret starts with whsec_: {secret}"));
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the signing secret is base64 after whsec_");
        self.lock().signing_key = Some(key);
    }

    /// Everything that arrived so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.lock().arrivals.clone()
    }

    /// Waits until at least `n` requests arrived; panics with what did after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Arrival> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrivals = self.arrivals();
            if arrivals.len() >= n {
                return arrivals;
            }
            assert!(
                Instant::now() < deadline,
                "after {timeout:?} only {} of {n} requests arrived at {}: {arrivals:#?}",
                arrivals.len(),
                self.url
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let at = Utc::now();
    let arrived = Instant::now();
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let webhook_id = header(&headers, signing::HEADER_ID).map(str::to_owned);
    let mut problems = Vec::new();
    if method != Method::POST {
        problems.push(format!("method {method}, not POST"));
    }
    if !header(&headers, "content-type").is_some_and(|ct| ct.starts_with("application/json")) {
        problems.push(format!(
            "content-type {:?}, not application/json",
            header(&headers, "content-type")
        ));
    }
    if body.is_null() {
        problems.push("the body is not JSON".to_owned());
    } else {
        match inner.kind {
            Kind::Slack => check_slack(&body, &mut problems),
            Kind::Webhook => check_webhook(
                &headers,
                &raw,
                &body,
                inner.signing_key.as_deref(),
                &mut problems,
            ),
            Kind::Discord => check_discord(uri.query(), &body, &mut problems),
            Kind::Teams => check_teams(&body, &mut problems),
        }
    }

    let path = uri.path().to_owned();
    let over_limit = |inner: &mut Inner| {
        inner
            .rate_limit
            .as_mut()
            .and_then(|limit| limit.check(&path, arrived))
            .map(|wait| Reply::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            })
    };
    let reply = match inner.script.pop_front() {
        Some(reply) => reply,
        None => match over_limit(&mut inner) {
            Some(too_many) => too_many,
            None => match &mut inner.fallback {
                Fallback::Always(reply) => reply.clone(),
                Fallback::Random { rng, rate } => {
                    if rng.random_bool(*rate) {
                        Reply::ServerError
                    } else {
                        Reply::Ok
                    }
                }
            },
        },
    };
    let response = if problems.is_empty() {
        render(inner.kind, &reply)
    } else {
        (StatusCode::BAD_REQUEST, problems.join("; ")).into_response()
    };
    inner.arrivals.push(Arrival {
        at,
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        raw,
        webhook_id,
        problems,
        status: response.status().as_u16(),
    });
    response
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn render(kind: Kind, reply: &Reply) -> Response {
    match reply {
        Reply::Ok => match kind {
            Kind::Slack => (StatusCode::OK, "ok").into_response(),
            Kind::Webhook => StatusCode::OK.into_response(),
            Kind::Discord => (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"id":"1200000000000000000","type":0,"channel_id":"1100000000000000000"}"#,
            )
                .into_response(),
            Kind::Teams => StatusCode::ACCEPTED.into_response(),
        },
        Reply::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_secs.to_string())],
            "rate_limited",
        )
            .into_response(),
        Reply::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into_response(),
        Reply::ChannelNotFound => (StatusCode::NOT_FOUND, "channel_not_found").into_response(),
    }
}

fn check_slack(body: &Value, problems: &mut Vec<String>) {
    let Some(attachments) = body["attachments"].as_array().filter(|a| !a.is_empty()) else {
        problems.push(format!("no attachments in {body}"));
        return;
    };
    for (i, a) in attachments.iter().enumerate() {
        if a["fallback"].as_str().is_none_or(str::is_empty) {
            problems.push(format!(
                "attachments[{i}].fallback is not a non-empty string"
            ));
        }
        let colour_ok = a["color"].as_str().is_some_and(|c| {
            c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
        });
        if !colour_ok {
            problems.push(format!(
                "attachments[{i}].color is not #RRGGBB: {}",
                a["color"]
            ));
        }
        if a["title"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("attachments[{i}].title is not a non-empty string"));
        }
        match a["fields"].as_array() {
            Some(fields) => {
                for (j, f) in fields.iter().enumerate() {
                    if !(f["title"].is_string()
                        && f["value"].is_string()
                        && f["short"].is_boolean())
                    {
                        problems.push(format!(
                            "attachments[{i}].fields[{j}] is not {{title, value, short}}: {f}"
                        ));
                    }
                }
            }
            None => problems.push(format!("attachments[{i}].fields is not an array")),
        }
        if !a["footer"].is_string() {
            problems.push(format!("attachments[{i}].footer is not a string"));
        }
        if !a["ts"].is_i64() {
            problems.push(format!(
                "attachments[{i}].ts is not an integer: {}",
                a["ts"]
            ));
        }
        // Slack ignores a name it does not know, so a stray one is a formatter bug, not an error.
        if let Some(names) = a.get("mrkdwn_in") {
            let known = names.as_array().is_some_and(|names| {
                names
                    .iter()
                    .all(|n| n.as_str().is_some_and(|n| a.get(n).is_some()))
            });
            if !known {
                problems.push(format!(
                    "attachments[{i}].mrkdwn_in names a part the attachment lacks: {names}"
                ));
            }
        }
        if let Some(link) = a.get("title_link")
            && !link
                .as_str()
                .is_some_and(|l| l.starts_with("https://") || l.starts_with("http://"))
        {
            problems.push(format!("attachments[{i}].title_link is not a URL: {link}"));
        }
    }
}

fn check_webhook(
    headers: &HeaderMap,
    raw: &[u8],
    body: &Value,
    key: Option<&[u8]>,
    problems: &mut Vec<String>,
) {
    let (Some(id), Some(ts), Some(sig)) = (
        header(headers, signing::HEADER_ID),
        header(headers, signing::HEADER_TIMESTAMP),
        header(headers, signing::HEADER_SIGNATURE),
    ) else {
        problems.push("a Standard Webhooks header is missing".to_owned());
        return;
    };
    match key {
        None => problems.push("no signing secret to verify with".to_owned()),
        Some(key) => {
            if let Err(e) = signing::verify(
                key,
                id,
                ts,
                sig,
                raw,
                Utc::now().timestamp(),
                signing::DEFAULT_TOLERANCE_SECS,
            ) {
                problems.push(format!("bad signature: {e}"));
            }
        }
    }
    if body["deliveryId"].as_str() != Some(id) {
        problems.push(format!(
            "deliveryId {} differs from webhook-id {id}",
            body["deliveryId"]
        ));
    }
    for field in ["id", "type", "module", "orgId"] {
        if !body[field].is_string() {
            problems.push(format!("the event has no string `{field}`"));
        }
    }
}

fn check_discord(query: Option<&str>, body: &Value, problems: &mut Vec<String>) {
    if !query.is_some_and(|q| q.split('&').any(|p| p == "wait=true")) {
        problems.push(format!("not called with ?wait=true (query {query:?})"));
    }
    let Some(embeds) = body["embeds"].as_array().filter(|e| !e.is_empty()) else {
        problems.push(format!("no embeds in {body}"));
        return;
    };
    for (i, e) in embeds.iter().enumerate() {
        if !e["color"].is_u64() {
            problems.push(format!(
                "embeds[{i}].color is not an integer: {}",
                e["color"]
            ));
        }
        if !e["title"].is_string() {
            problems.push(format!("embeds[{i}].title is not a string"));
        }
    }
    if body["allowed_mentions"]["parse"] != serde_json::json!([]) {
        problems.push(format!(
            "mentions are not switched off: allowed_mentions = {}",
            body["allowed_mentions"]
        ));
    }
}

fn check_teams(body: &Value, problems: &mut Vec<String>) {
    if body["type"] != "message" {
        problems.push(format!("type is {}, not message", body["type"]));
    }
    let attachment = &body["attachments"][0];
    if attachment["contentType"] != "application/vnd.microsoft.card.adaptive" {
        problems.push(format!(
            "attachments[0].contentType is {}",
            attachment["contentType"]
        ));
    }
    let card = &attachment["content"];
    if card["type"] != "AdaptiveCard" || card["version"] != "1.4" {
        problems.push(format!(
            "not an Adaptive Card 1.4: type {} version {}",
            card["type"], card["version"]
        ));
    }
    if card["body"].as_array().is_none_or(Vec::is_empty) {
        problems.push("the card has no body".to_owned());
    }
}
