//! Delivery against real HTTP receivers on 127.0.0.1 that behave like Slack, Discord, Teams and a
//! Standard Webhooks consumer, plus the outbound-safety refusals.
#![cfg(feature = "http-senders")]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use herald_core::delivery::format::{self, MessageContext, OutboundMessage};
use herald_core::delivery::outbound::AllowList;
use herald_core::delivery::signing;
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelName, SigningSecret, SlackConfig, WebhookConfig,
    WebhookFormat,
};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::event::Event;
use herald_core::domain::{ChannelId, DeliveryId, OrgId, RuleKey};
use herald_shared::delivery::http::SafeResolver;
use herald_shared::delivery::{AttemptOutcome, HttpSender, OutboundConfig, Sender};
use reqwest::dns::{Name, Resolve};
use serde_json::{Value, json};
use url::Url;

// ---------------------------------------------------------------- receivers

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The key the webhook receiver verifies with.
    key: Arc<Vec<u8>>,
}

impl Receiver {
    fn record(
        &self,
        path: &str,
        query: BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &Bytes,
    ) {
        self.seen.lock().unwrap().push(Seen {
            path: path.into(),
            query,
            headers: headers.clone(),
            body: body.clone(),
        });
    }

    fn requests(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

/// A running receiver: its address and what it saw.
struct Peer {
    base: String,
    rx: Receiver,
}

fn slack_shape_ok(body: &Bytes) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let a = &v["attachments"][0];
    a["fallback"].is_string()
        && a["color"]
            .as_str()
            .is_some_and(|c| c.starts_with('#') && c.len() == 7)
        && a["title"].is_string()
        && a["footer"]
            .as_str()
            .is_some_and(|f| f.starts_with("Herald · "))
        && a["ts"].is_i64()
        && a["fields"].is_array()
}

async fn slack(
    State(rx): State<Receiver>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    rx.record("slack", q.clone(), &h, &body);
    if !slack_shape_ok(&body) {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    }
    // The "mode" query parameter picks how this Slack behaves (a real workspace's URL is fixed).
    match q.get("mode").map(String::as_str) {
        Some("ratelimited") => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "7")],
            "rate_limited",
        )
            .into_response(),
        Some("error") => (StatusCode::INTERNAL_SERVER_ERROR, "rollup_error").into_response(),
        Some("gone") => (StatusCode::NOT_FOUND, "channel_not_found").into_response(),
        Some("huge") => (StatusCode::SERVICE_UNAVAILABLE, "x".repeat(10_000)).into_response(),
        Some("slow") => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "ok").into_response()
        }
        Some("echo") => (
            StatusCode::BAD_REQUEST,
            "no such hook: /services/T000/B000/slacktoken",
        )
            .into_response(),
        Some("redirect") => (
            StatusCode::FOUND,
            [(header::LOCATION, "/services/T000/B000/slacktoken")],
            "",
        )
            .into_response(),
        _ => (StatusCode::OK, "ok").into_response(),
    }
}

async fn hook(State(rx): State<Receiver>, h: HeaderMap, body: Bytes) -> Response {
    rx.record("hook", BTreeMap::new(), &h, &body);
    let get = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let verdict = signing::verify(
        &rx.key,
        &get(signing::HEADER_ID),
        &get(signing::HEADER_TIMESTAMP),
        &get(signing::HEADER_SIGNATURE),
        &body,
        Utc::now().timestamp(),
        signing::DEFAULT_TOLERANCE_SECS,
    );
    match verdict {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    }
}

async fn discord(
    State(rx): State<Receiver>,
    Query(q): Query<BTreeMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    rx.record("discord", q.clone(), &h, &body);
    if q.get("wait").map(String::as_str) != Some("true") {
        return StatusCode::NO_CONTENT.into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    if !v["embeds"][0]["color"].is_u64() || v["allowed_mentions"] != json!({"parse": []}) {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"message":"Invalid Form Body","code":50035}"#,
        )
            .into_response();
    }
    if q.get("mode").map(String::as_str) == Some("ratelimited") {
        let body = r#"{"message":"You are being rate limited.","retry_after":2.5,"global":false}"#;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "3")],
            body,
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"id":"1234","type":0}"#,
    )
        .into_response()
}

async fn teams(State(rx): State<Receiver>, h: HeaderMap, body: Bytes) -> Response {
    rx.record("teams", BTreeMap::new(), &h, &body);
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let card = &v["attachments"][0];
    if v["type"] == "message"
        && card["contentType"] == "application/vnd.microsoft.card.adaptive"
        && card["content"]["version"] == "1.4"
    {
        StatusCode::ACCEPTED.into_response()
    } else {
        StatusCode::BAD_REQUEST.into_response()
    }
}

/// A receiver that refuses every request and echoes the URL it was called at, as careless
/// receivers do: its query raw and percent-decoded, its path JSON-escaped (`\/`), and the whole
/// query base64-encoded.
async fn echo(uri: axum::http::Uri) -> Response {
    use base64::Engine as _;
    let query = uri.query().unwrap_or_default().to_owned();
    let decoded: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let body = format!(
        r#"{{"error":"unknown hook","path":"{}","query":"{query}","decoded":{},"trace":"{}"}}"#,
        uri.path().replace('/', "\\/"),
        serde_json::to_string(&decoded.join("&")).unwrap(),
        base64::engine::general_purpose::STANDARD.encode(&query),
    );
    (StatusCode::BAD_REQUEST, body).into_response()
}

async fn start(key: Vec<u8>) -> Peer {
    let rx = Receiver {
        seen: Arc::default(),
        key: Arc::new(key),
    };
    let app = Router::new()
        .route("/services/T000/B000/slacktoken", post(slack))
        .route("/hook", post(hook))
        .route("/api/webhooks/1/discordtoken", post(discord))
        .route("/teams/workflows/teamstoken", post(teams))
        .route("/echo/{*rest}", post(echo))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Peer {
        base: format!("http://{addr}"),
        rx,
    }
}

// ---------------------------------------------------------------- fixtures

fn loopback_allowed() -> AllowList {
    AllowList::from_str("127.0.0.0/8").expect("cidr")
}

fn sender(allow: AllowList) -> HttpSender {
    HttpSender::new(OutboundConfig {
        allow,
        timeout: Duration::from_secs(2),
        ..OutboundConfig::default()
    })
    .expect("client")
}

fn channel(config: ChannelConfig) -> Channel {
    let at = Utc::now();
    Channel {
        id: ChannelId::new(),
        org_id: OrgId::new(),
        name: ChannelName::parse("alerts").expect("name"),
        config,
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: at,
        updated_at: at,
    }
}

fn slack_channel(url: &str) -> Channel {
    channel(ChannelConfig::Slack(SlackConfig {
        webhook_url: Url::parse(url).expect("url"),
    }))
}

fn webhook_channel(url: &str, format: WebhookFormat, secret: SigningSecret) -> Channel {
    let headers = BTreeMap::from([("x-team".to_owned(), "payments".to_owned())]);
    channel(ChannelConfig::Webhook(WebhookConfig {
        url: Url::parse(url).expect("url"),
        format,
        headers,
        signing_secret: secret,
        previous_secrets: Vec::new(),
        signing_secret_created_at: None,
        routing_key: None,
    }))
}

fn event() -> Event {
    herald_testing::events::event(
        "ops",
        "deploy.failed",
        json!({"service": "api", "url": "https://ci.example.com/1"}),
    )
}

fn message(ch: &Channel, delivery_id: DeliveryId) -> OutboundMessage {
    let ev = event();
    let key = RuleKey::parse("deploys").expect("key");
    let ctx = MessageContext {
        event: &ev,
        rule_key: Some(&key),
        template: None,
        delivery_id,
        group: None,
        digest: None,
    };
    format::render(&ch.config, &ctx).expect("http channel")
}

async fn send(s: &HttpSender, ch: &Channel) -> AttemptOutcome {
    s.send(ch, &message(ch, DeliveryId::new())).await
}

// ---------------------------------------------------------------- Slack

#[tokio::test]
async fn a_slack_ok_is_delivered() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!("{}/services/T000/B000/slacktoken", peer.base));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(200), None),
        "{out:?}"
    );
    assert_eq!(peer.rx.requests("slack").len(), 1);
    let seen = &peer.rx.requests("slack")[0];
    assert_eq!(seen.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn a_slack_rate_limit_is_retried_after_its_retry_after() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=ratelimited",
        peer.base
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(out.status_code, Some(429));
    assert_eq!(out.error_class, Some(ErrorClass::RateLimited));
    assert_eq!(out.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(out.message.as_deref(), Some("rate_limited"));
}

#[tokio::test]
async fn a_slack_server_error_is_retryable() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=error",
        peer.base
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(500), Some(ErrorClass::ServerError))
    );
    assert!(out.error_class.is_some_and(ErrorClass::is_retryable));
}

#[tokio::test]
async fn a_slack_channel_not_found_breaks_the_channel() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=gone",
        peer.base
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(404), Some(ErrorClass::ChannelGone))
    );
    assert_eq!(out.message.as_deref(), Some("channel_not_found"));
    let row = out.to_attempt(1, Utc::now());
    assert_eq!(row.error.as_deref(), Some("channel_not_found"));
}

#[tokio::test]
async fn a_long_error_body_is_logged_truncated_to_two_kilobytes() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=huge",
        peer.base
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(out.error_class, Some(ErrorClass::ServerError));
    let body = out.message.expect("body kept");
    assert!(body.len() <= 2048 && body.len() > 2000, "{}", body.len());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_a_configuration_error() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=redirect",
        peer.base
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(302), Some(ErrorClass::Configuration))
    );
    assert_eq!(
        peer.rx.requests("slack").len(),
        1,
        "the redirect target was requested"
    );
    // The log says what happened, naming the host only (a Location's path can hold a token).
    let message = out.message.expect("an error text for the redirect");
    assert!(
        message.contains("redirect to 127.0.0.1 not followed"),
        "{message}"
    );
    assert!(!message.contains("slacktoken"), "{message}");
}

#[tokio::test]
async fn a_slow_receiver_times_out_as_a_network_error() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=slow",
        peer.base
    ));
    let s = HttpSender::new(OutboundConfig {
        allow: loopback_allowed(),
        timeout: Duration::from_millis(300),
        ..OutboundConfig::default()
    })
    .expect("client");
    let out = send(&s, &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Network)),
        "{out:?}"
    );
    assert!(out.latency < Duration::from_secs(4));
    assert!(
        !out.message.unwrap_or_default().contains("slacktoken"),
        "the error text leaks the URL"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let ch = slack_channel(&format!("http://{addr}/services/T000/B000/slacktoken"));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Network)),
        "{out:?}"
    );
    assert!(!out.message.unwrap_or_default().contains("slacktoken"));
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_configuration_error() {
    let peer = start(vec![]).await;
    let url = format!(
        "{}/services/T000/B000/slacktoken",
        peer.base.replace("http://", "https://")
    );
    let out = send(&sender(loopback_allowed()), &slack_channel(&url)).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Configuration)),
        "{out:?}"
    );
}

// ---------------------------------------------------------------- generic webhooks

#[tokio::test]
async fn a_generic_webhook_is_signed_and_the_receiver_verifies_it() {
    let secret = SigningSecret::generate();
    let peer = start(secret.key_bytes()).await;
    let ch = webhook_channel(
        &format!("{}/hook", peer.base),
        WebhookFormat::Generic,
        secret,
    );
    let id = DeliveryId::new();
    let msg = message(&ch, id);
    let s = sender(loopback_allowed());
    let first = s.send(&ch, &msg).await;
    let retry = s.send(&ch, &msg).await;
    assert_eq!(
        (first.status_code, first.error_class),
        (Some(204), None),
        "{first:?}"
    );
    assert_eq!((retry.status_code, retry.error_class), (Some(204), None));
    let seen = peer.rx.requests("hook");
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            s.headers[signing::HEADER_ID],
            id.to_string(),
            "webhook-id is the delivery id on every attempt"
        );
        assert_eq!(s.headers["x-team"], "payments");
        let body: Value = serde_json::from_slice(&s.body).expect("json");
        assert_eq!(body["type"], "deploy.failed");
        assert_eq!(body["deliveryId"], id.to_string());
        assert_eq!(body["ruleKey"], "deploys");
    }
}

#[tokio::test]
async fn a_webhook_signed_with_another_secret_is_refused_by_the_receiver() {
    let peer = start(SigningSecret::generate().key_bytes()).await;
    let ch = webhook_channel(
        &format!("{}/hook", peer.base),
        WebhookFormat::Generic,
        SigningSecret::generate(),
    );
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(401), Some(ErrorClass::ChannelGone))
    );
    assert_eq!(out.message.as_deref(), Some("no v1 signature matches"));
}

// ---------------------------------------------------------------- Discord and Teams

#[tokio::test]
async fn discord_messages_ask_to_wait_for_the_created_message() {
    let peer = start(vec![]).await;
    let ch = webhook_channel(
        &format!("{}/api/webhooks/1/discordtoken", peer.base),
        WebhookFormat::Discord,
        SigningSecret::generate(),
    );
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(200), None),
        "{out:?}"
    );
    let seen = peer.rx.requests("discord");
    assert_eq!(seen[0].query.get("wait").map(String::as_str), Some("true"));
}

#[tokio::test]
async fn a_discord_rate_limit_waits_its_json_retry_after() {
    let peer = start(vec![]).await;
    let url = format!(
        "{}/api/webhooks/1/discordtoken?mode=ratelimited&wait=false",
        peer.base
    );
    let ch = webhook_channel(&url, WebhookFormat::Discord, SigningSecret::generate());
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(429), Some(ErrorClass::RateLimited)),
        "{out:?}"
    );
    assert_eq!(
        out.retry_after,
        Some(Duration::from_secs(3)),
        "the larger of the header and the body"
    );
    let seen = peer.rx.requests("discord");
    assert_eq!(seen[0].query.get("wait").map(String::as_str), Some("true"));
    assert_eq!(
        seen[0].query.get("mode").map(String::as_str),
        Some("ratelimited")
    );
}

#[tokio::test]
async fn teams_answers_202_and_that_is_delivered() {
    let peer = start(vec![]).await;
    let ch = webhook_channel(
        &format!("{}/teams/workflows/teamstoken", peer.base),
        WebhookFormat::Teams,
        SigningSecret::generate(),
    );
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(202), None),
        "{out:?}"
    );
}

// ---------------------------------------------------------------- outbound safety

#[tokio::test]
async fn loopback_is_blocked_without_an_allow_list() {
    let peer = start(vec![]).await;
    let https = peer.base.replace("http://", "https://");
    for url in [
        format!("{}/services/T000/B000/slacktoken", peer.base),
        format!("{https}/services/T000/B000/slacktoken"),
    ] {
        let out = send(&sender(AllowList::none()), &slack_channel(&url)).await;
        assert_eq!(
            (out.status_code, out.error_class),
            (None, Some(ErrorClass::Configuration)),
            "{out:?}"
        );
        assert!(
            out.message
                .as_deref()
                .is_some_and(|m| m.contains("loopback") || m.contains("https")),
            "{out:?}"
        );
    }
    assert!(
        peer.rx.requests("slack").is_empty(),
        "a blocked request reached the receiver"
    );
}

#[tokio::test]
async fn cloud_metadata_is_blocked_even_with_loopback_allowed() {
    let ch = slack_channel("https://169.254.169.254/latest/meta-data");
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(out.error_class, Some(ErrorClass::Configuration));
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("cloud metadata")),
        "{out:?}"
    );
    assert!(
        out.latency < Duration::from_millis(100),
        "no connection should be attempted"
    );
}

#[tokio::test]
async fn an_ipv4_mapped_loopback_literal_is_blocked() {
    let peer = start(vec![]).await;
    let port = peer.base.rsplit(':').next().expect("port");
    let ch = slack_channel(&format!(
        "https://[::ffff:127.0.0.1]:{port}/services/T000/B000/slacktoken"
    ));
    let out = send(&sender(AllowList::none()), &ch).await;
    assert_eq!(out.error_class, Some(ErrorClass::Configuration));
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("loopback")),
        "{out:?}"
    );
    assert!(peer.rx.requests("slack").is_empty());
}

#[tokio::test]
async fn a_hostname_resolving_to_loopback_is_blocked() {
    let peer = start(vec![]).await;
    let port = peer.base.rsplit(':').next().expect("port");
    let ch = slack_channel(&format!(
        "https://localhost:{port}/services/T000/B000/slacktoken"
    ));
    let out = send(&sender(AllowList::none()), &ch).await;
    assert_eq!(out.error_class, Some(ErrorClass::Configuration));
    assert!(peer.rx.requests("slack").is_empty());

    // The resolver itself refuses what `localhost` resolves to: no connect can reach it.
    let err = SafeResolver::new(AllowList::none())
        .resolve(Name::from_str("localhost").expect("name"))
        .await
        .err()
        .expect("blocked");
    assert!(err.to_string().contains("loopback"), "{err}");
    let ok = SafeResolver::new(loopback_allowed())
        .resolve(Name::from_str("localhost").expect("name"))
        .await;
    assert!(ok.is_ok_and(|mut addrs| addrs.all(|a| a.ip().is_loopback())));
}

#[tokio::test]
async fn plain_http_resolvers_accept_only_allow_listed_addresses() {
    let err = SafeResolver::allow_listed_only(AllowList::from_str("10.0.0.0/8").expect("cidr"))
        .resolve(Name::from_str("localhost").expect("name"))
        .await
        .err()
        .expect("blocked");
    assert!(
        err.to_string().contains("https") || err.to_string().contains("loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn with_loopback_allowed_a_hostname_target_works_over_http() {
    let peer = start(vec![]).await;
    let port = peer.base.rsplit(':').next().expect("port");
    let ch = slack_channel(&format!(
        "http://localhost:{port}/services/T000/B000/slacktoken"
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(200), None),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_non_http_channel_is_a_configuration_error_without_a_request() {
    use herald_core::domain::channel::EmailConfig;
    let peer = start(vec![]).await;
    let slack = slack_channel(&format!("{}/services/T000/B000/slacktoken", peer.base));
    let msg = message(&slack, DeliveryId::new());
    let email = channel(ChannelConfig::Email(EmailConfig::Outbox { from: None }));
    let out = sender(loopback_allowed()).send(&email, &msg).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Configuration))
    );
}

#[tokio::test]
async fn a_response_echoing_the_token_is_logged_without_it() {
    let peer = start(vec![]).await;
    let ch = slack_channel(&format!(
        "{}/services/T000/B000/slacktoken?mode=echo",
        peer.base
    ));
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(out.error_class, Some(ErrorClass::BadPayload));
    assert_eq!(out.message.as_deref(), Some("no such hook: ****"));
}

#[tokio::test]
async fn a_receiver_echoing_url_secrets_in_any_encoding_is_logged_without_them() {
    let peer = start(vec![]).await;
    let generic = webhook_channel(
        &format!(
            "{}/echo/hooks/GENERICPATHTOKEN0001?token=TOKENSECRET1&code=AzF%2Bsig%2F%3D%3D&team=ops",
            peer.base
        ),
        WebhookFormat::Generic,
        SigningSecret::generate(),
    );
    let teams = webhook_channel(
        &format!(
            "{}/echo/teams/workflows/TEAMSPATHTOKEN0002?api-version=1&sp=%2Ftriggers&sig=Xy%2Bz9%2FAbCdEfGh%3D",
            peer.base
        ),
        WebhookFormat::Teams,
        SigningSecret::generate(),
    );
    for (ch, secrets) in [
        (
            generic,
            &[
                "GENERICPATHTOKEN0001",
                "TOKENSECRET1",
                "AzF+sig/==",
                "AzF%2Bsig%2F%3D%3D",
            ][..],
        ),
        (
            teams,
            &[
                "TEAMSPATHTOKEN0002",
                "Xy+z9/AbCdEfGh=",
                "Xy%2Bz9%2FAbCdEfGh%3D",
            ][..],
        ),
    ] {
        let out = send(&sender(loopback_allowed()), &ch).await;
        assert_eq!(out.status_code, Some(400), "{out:?}");
        let shown = out.message.expect("the echo is logged");
        assert!(shown.contains("unknown hook"), "{shown}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        let trace = shown
            .split(r#""trace":""#)
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(['"', '}']);
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(trace)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        for secret in secrets {
            assert!(
                !decoded.contains(secret),
                "{secret} leaked in base64: {shown}"
            );
        }
    }
}

#[tokio::test]
async fn an_unsendable_custom_header_is_a_configuration_error_without_a_request() {
    let secret = SigningSecret::generate();
    let peer = start(secret.key_bytes()).await;
    let mut ch = webhook_channel(
        &format!("{}/hook", peer.base),
        WebhookFormat::Generic,
        secret,
    );
    if let ChannelConfig::Webhook(w) = &mut ch.config {
        w.headers.insert("x-bad".into(), "line\nbreak".into());
    }
    let out = send(&sender(loopback_allowed()), &ch).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (None, Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    assert!(peer.rx.requests("hook").is_empty());
}
