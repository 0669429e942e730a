//! FCM HTTP v1 push against a local peer on 127.0.0.1 that plays both Google endpoints: an OAuth
//! token endpoint that verifies the RS256 service-account assertion with the test key's public
//! key (`tests/fixtures/fcm-test-key.pub.pem`, test-only, generated once with openssl) and issues
//! short-lived tokens, and an FCM `messages:send` endpoint that checks the bearer token and the
//! message shape.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use herald_core::delivery::format::{self, MessageContext, OutboundMessage};
use herald_core::delivery::outbound::AllowList;
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelKind, ChannelName, PushConfig,
};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::event::Event;
use herald_core::domain::rule::Template;
use herald_core::domain::{ChannelId, DeliveryId, OrgId, RuleKey};
use herald_shared::delivery::http::OutboundClient;
use herald_shared::delivery::providers::fcm::{FcmSender, GRANT_TYPE, SCOPE, check_private_key};
use herald_shared::delivery::{AttemptOutcome, HttpSender, OutboundConfig, Sender, Senders};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};
use url::Url;

const TEST_KEY: &str = include_str!("../fixtures/fcm-test-key.pem");
const TEST_KEY_PKCS1: &str = include_str!("../fixtures/fcm-test-key.pkcs1.pem");
const TEST_PUBLIC_KEY: &str = include_str!("../fixtures/fcm-test-key.pub.pem");
const CLIENT_EMAIL: &str = "herald-push@herald-test.iam.gserviceaccount.com";
const PROJECT: &str = "herald-test";

// ---------------------------------------------------------------- the Google peer

#[derive(Debug, Clone)]
struct SeenSend {
    project: String,
    authorization: String,
    body: Value,
}

#[derive(Default)]
struct Google {
    /// The URL the assertion's `aud` must name.
    token_url: Mutex<String>,
    public_key_der: Vec<u8>,
    expires_in: AtomicU64,
    token_requests: AtomicUsize,
    /// Why assertions were refused, for failing tests to show.
    refusals: Mutex<Vec<String>>,
    /// Live access tokens and when each expires (unix seconds).
    tokens: Mutex<HashMap<String, u64>>,
    sends: Mutex<Vec<SeenSend>>,
    /// Answer the token endpoint with 503.
    token_endpoint_down: AtomicBool,
    /// The device token `tok-revoke` revokes every access token once, as a key rotation would.
    revoked_once: AtomicBool,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(b64).expect("pem base64")
}

impl Google {
    /// Verifies an RS256 service-account assertion the way Google does: signature, then claims.
    fn verify(&self, jwt: &str) -> Result<(), String> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, c, s] = parts[..] else {
            return Err("not a JWS compact serialization".into());
        };
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        if header["alg"] != "RS256" || header["typ"] != "JWT" {
            return Err(format!("header {header}"));
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key_der)
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "Invalid JWT Signature.".to_owned())?;
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let aud = self.token_url.lock().unwrap().clone();
        if claims["iss"] != CLIENT_EMAIL {
            return Err(format!("Invalid issuer: {}", claims["iss"]));
        }
        if claims["aud"] != aud.as_str() {
            return Err(format!("Invalid audience: {}", claims["aud"]));
        }
        if claims["scope"] != SCOPE {
            return Err(format!("Invalid scope: {}", claims["scope"]));
        }
        let (iat, exp) = (
            claims["iat"].as_u64().ok_or("no iat")?,
            claims["exp"].as_u64().ok_or("no exp")?,
        );
        let now = now_unix();
        if iat > now + 60 || iat + 60 < now || exp != iat + 3600 {
            return Err(format!("Invalid JWT: iat {iat}, exp {exp}, now {now}"));
        }
        Ok(())
    }
}

async fn token_endpoint(State(g): State<Arc<Google>>, h: HeaderMap, body: Bytes) -> Response {
    g.token_requests.fetch_add(1, Ordering::SeqCst);
    if g.token_endpoint_down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "4")],
            "backend unavailable",
        )
            .into_response();
    }
    let refuse = |why: String| {
        g.refusals.lock().unwrap().push(why.clone());
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return refuse("not a form".into());
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return refuse(format!("grant_type {:?}", form.get("grant_type")));
    }
    let Some(jwt) = form.get("assertion") else {
        return refuse("no assertion".into());
    };
    if let Err(why) = g.verify(jwt) {
        return refuse(why);
    }
    let expires_in = g.expires_in.load(Ordering::SeqCst);
    let token = format!("ya29.test-{}", uuid::Uuid::new_v4().simple());
    g.tokens
        .lock()
        .unwrap()
        .insert(token.clone(), now_unix() + expires_in);
    axum::Json(json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}))
        .into_response()
}

fn fcm_error(status: StatusCode, rpc_status: &str, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {
            "code": status.as_u16(), "message": message, "status": rpc_status,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
        }})),
    )
        .into_response()
}

/// A well-formed v1 message: a token, a notification with a title, data of strings only.
fn shape_ok(body: &Value) -> bool {
    let m = &body["message"];
    m["token"].is_string()
        && m["notification"]["title"].is_string()
        && m["notification"]
            .get("body")
            .is_none_or(serde_json::Value::is_string)
        && m["data"]
            .as_object()
            .is_some_and(|d| d.values().all(Value::is_string))
}

async fn send_endpoint(
    State(g): State<Arc<Google>>,
    Path((project, action)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    g.sends.lock().unwrap().push(SeenSend {
        project: project.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let unauthenticated = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
                "message": "Request had invalid authentication credentials."}})),
        )
            .into_response()
    };
    let live = authorization
        .strip_prefix("Bearer ")
        .and_then(|t| g.tokens.lock().unwrap().get(t).copied())
        .is_some_and(|exp| exp > now_unix());
    if !live {
        return unauthenticated();
    }
    if action != "messages:send" || project != PROJECT {
        return (StatusCode::NOT_FOUND, "no such method").into_response();
    }
    if !shape_ok(&body) {
        return fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
        );
    }
    match body["message"]["token"].as_str().unwrap_or("") {
        "tok-revoke" if !g.revoked_once.swap(true, Ordering::SeqCst) => {
            g.tokens.lock().unwrap().clear();
            unauthenticated()
        }
        "tok-always-401" => unauthenticated(),
        "tok-apns" => fcm_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
            "Auth error from APNS or Web Push Service",
        ),
        t if t.contains("unregistered") => fcm_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        ),
        t if t.contains("quota") => {
            let mut r = fcm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "QUOTA_EXCEEDED",
                "Quota exceeded for quota metric 'Send requests'.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, "7".parse().expect("header"));
            r
        }
        _ => axum::Json(
            json!({"name": format!("projects/{PROJECT}/messages/0:{}", uuid::Uuid::new_v4())}),
        )
        .into_response(),
    }
}

struct Peer {
    base: String,
    google: Arc<Google>,
}

impl Peer {
    fn token_requests(&self) -> usize {
        self.google.token_requests.load(Ordering::SeqCst)
    }

    fn sends(&self) -> Vec<SeenSend> {
        self.google.sends.lock().unwrap().clone()
    }

    fn refusals(&self) -> Vec<String> {
        self.google.refusals.lock().unwrap().clone()
    }
}

async fn start(expires_in: u64) -> Peer {
    let google = Arc::new(Google {
        public_key_der: pem_der(TEST_PUBLIC_KEY),
        expires_in: AtomicU64::new(expires_in),
        ..Google::default()
    });
    let app = Router::new()
        .route("/token", post(token_endpoint))
        .route("/v1/projects/{project}/{action}", post(send_endpoint))
        .with_state(google.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let base = format!("http://{addr}");
    *google.token_url.lock().unwrap() = format!("{base}/token");
    Peer { base, google }
}

// ---------------------------------------------------------------- fixtures

fn client() -> OutboundClient {
    OutboundClient::new(OutboundConfig {
        allow: AllowList::from_str("127.0.0.0/8").expect("cidr"),
        timeout: Duration::from_secs(5),
        ..OutboundConfig::default()
    })
    .expect("client")
}

fn fcm(peer: &Peer) -> FcmSender {
    FcmSender::with_endpoint(client(), Url::parse(&peer.base).expect("url"))
}

fn channel_with(peer: &Peer, client_email: &str, private_key: &str) -> Channel {
    let at = Utc::now();
    Channel {
        id: ChannelId::new(),
        org_id: OrgId::new(),
        name: ChannelName::parse("app push").expect("name"),
        config: ChannelConfig::Push(PushConfig::Fcm {
            project_id: PROJECT.into(),
            client_email: client_email.into(),
            private_key: private_key.into(),
            token_uri: Some(format!("{}/token", peer.base)),
        }),
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: at,
        updated_at: at,
    }
}

fn channel(peer: &Peer) -> Channel {
    channel_with(peer, CLIENT_EMAIL, TEST_KEY)
}

fn event() -> Event {
    herald_testing::events::event(
        "push",
        "order.shipped",
        json!({"order": 1234, "title": "Your order shipped"}),
    )
}

fn message(to: &[&str], delivery_id: DeliveryId) -> OutboundMessage {
    let ev = event();
    let key = RuleKey::parse("shipping").expect("key");
    let template: Template = serde_json::from_value(json!({
        "title": "Order {{properties.order}} shipped",
        "body": "It is on its way.",
        "link": "https://shop.example.com/orders/1234",
    }))
    .expect("template");
    let ctx = MessageContext {
        event: &ev,
        rule_key: Some(&key),
        template: Some(&template),
        delivery_id,
        group: None,
        digest: None,
    };
    format::render_user(
        ChannelKind::Push,
        &ctx,
        to.iter().map(|t| (*t).to_owned()).collect(),
    )
}

async fn send(s: &dyn Sender, ch: &Channel, to: &[&str]) -> AttemptOutcome {
    s.send(ch, &message(to, DeliveryId::new())).await
}

// ---------------------------------------------------------------- cases

#[tokio::test]
async fn a_push_is_delivered_through_senders_with_the_exact_v1_shape() {
    let peer = start(3600).await;
    let senders = Senders::new(Arc::new(HttpSender::from_client(client())), None)
        .with_fcm(Arc::new(fcm(&peer)));
    let delivery_id = DeliveryId::new();
    let ch = channel(&peer);
    let out = senders
        .send(&ch, &message(&["device-token-aaaa1111"], delivery_id))
        .await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(200), None),
        "{out:?} refusals: {:?}",
        peer.refusals()
    );
    assert_eq!(peer.token_requests(), 1);
    let sends = peer.sends();
    assert_eq!(sends.len(), 1);
    let s = &sends[0];
    assert_eq!(s.project, PROJECT);
    assert!(
        s.authorization.starts_with("Bearer ya29.test-"),
        "{}",
        s.authorization
    );
    assert_eq!(
        s.body,
        json!({"message": {
            "token": "device-token-aaaa1111",
            "notification": {"title": "Order 1234 shipped", "body": "It is on its way."},
            "data": {
                "deliveryId": delivery_id.to_string(),
                "eventId": "evt-42",
                "eventType": "order.shipped",
                "link": "https://shop.example.com/orders/1234",
                "ruleKey": "shipping",
            },
            "webpush": {"fcm_options": {"link": "https://shop.example.com/orders/1234"}},
        }})
    );
}

#[tokio::test]
async fn sends_reuse_one_access_token_even_when_concurrent() {
    let peer = start(3600).await;
    let sender = fcm(&peer);
    let ch = channel(&peer);
    assert!(send(&sender, &ch, &["tok-a"]).await.is_delivered());
    assert!(send(&sender, &ch, &["tok-b"]).await.is_delivered());
    assert_eq!(peer.token_requests(), 1);

    // A fresh sender (cold cache), ten sends at once: one token request, not ten.
    let cold = fcm(&peer);
    let outs = futures::future::join_all((0..10).map(|_| send(&cold, &ch, &["tok-c"]))).await;
    assert!(outs.iter().all(AttemptOutcome::is_delivered), "{outs:?}");
    assert_eq!(peer.token_requests(), 2);
    let tokens: HashSet<String> = peer.sends().into_iter().map(|s| s.authorization).collect();
    assert_eq!(tokens.len(), 2, "one bearer token per sender");
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_before_it_lapses() {
    // `expires_in: 2`: the sender refreshes at half the lifetime, so after 1.2 s it asks again
    // rather than presenting a token about to expire.
    let peer = start(2).await;
    let sender = fcm(&peer);
    let ch = channel(&peer);
    assert!(send(&sender, &ch, &["tok-a"]).await.is_delivered());
    assert!(send(&sender, &ch, &["tok-a"]).await.is_delivered());
    assert_eq!(peer.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let out = send(&sender, &ch, &["tok-a"]).await;
    assert!(out.is_delivered(), "{out:?}");
    assert_eq!(peer.token_requests(), 2);
    let sends = peer.sends();
    assert_ne!(sends[0].authorization, sends[2].authorization);
}

#[tokio::test]
async fn a_401_drops_the_token_fetches_another_and_succeeds_in_the_same_attempt() {
    let peer = start(3600).await;
    let sender = fcm(&peer);
    let ch = channel(&peer);
    let out = send(&sender, &ch, &["tok-revoke"]).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(200), None),
        "{out:?}"
    );
    assert_eq!(peer.token_requests(), 2);
    let sends = peer.sends();
    assert_eq!(sends.len(), 2);
    assert_ne!(sends[0].authorization, sends[1].authorization);
    // The new token stays cached.
    assert!(send(&sender, &ch, &["tok-a"]).await.is_delivered());
    assert_eq!(peer.token_requests(), 2);
}

#[tokio::test]
async fn an_unregistered_token_is_not_retried_and_is_named() {
    let peer = start(3600).await;
    let out = send(&fcm(&peer), &channel(&peer), &["tok-unregistered-zz998877"]).await;
    assert_eq!(
        (out.status_code, out.error_class, out.retry_after),
        (Some(404), Some(ErrorClass::Rejected), None),
        "{out:?}"
    );
    assert!(!ErrorClass::Rejected.is_retryable() && !ErrorClass::Rejected.breaks_channel());
    let m = out.message.expect("message");
    assert!(m.contains("UNREGISTERED") && m.contains("…zz998877"), "{m}");
    assert!(
        !m.contains("tok-unregistered"),
        "the full token is not echoed: {m}"
    );
    assert_eq!(
        peer.sends().len(),
        1,
        "one request, no retry inside the attempt"
    );
}

#[tokio::test]
async fn one_good_device_among_gone_ones_is_a_delivery() {
    let peer = start(3600).await;
    let out = send(
        &fcm(&peer),
        &channel(&peer),
        &["tok-unregistered-1", "tok-good", "tok-good"],
    )
    .await;
    assert_eq!(out.error_class, None, "{out:?}");
    let m = out.message.expect("message");
    assert!(
        m.contains("delivered to 1 of 2 push tokens") && m.contains("UNREGISTERED"),
        "{m}"
    );
    assert_eq!(peer.sends().len(), 2, "duplicate tokens are sent once");
}

#[tokio::test]
async fn quota_exceeded_is_rate_limited_with_retry_after() {
    let peer = start(3600).await;
    let out = send(&fcm(&peer), &channel(&peer), &["tok-quota"]).await;
    assert_eq!(
        (out.status_code, out.error_class, out.retry_after),
        (
            Some(429),
            Some(ErrorClass::RateLimited),
            Some(Duration::from_secs(7))
        ),
        "{out:?}"
    );
    assert!(out.message.expect("message").contains("QUOTA_EXCEEDED"));
}

#[tokio::test]
async fn a_bad_private_key_is_a_configuration_error_before_any_request() {
    let peer = start(3600).await;
    let garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    for key in [garbage, "paste the key here"] {
        let out = send(
            &fcm(&peer),
            &channel_with(&peer, CLIENT_EMAIL, key),
            &["tok-a"],
        )
        .await;
        assert_eq!(out.error_class, Some(ErrorClass::Configuration), "{out:?}");
        assert!(!ErrorClass::Configuration.is_retryable());
        let m = out.message.expect("message");
        assert!(m.contains("privateKey"), "{m}");
        assert!(!m.contains("bm90IGEga2V5"), "the key is not echoed: {m}");
    }
    assert_eq!(peer.token_requests(), 0);
}

#[tokio::test]
async fn a_refused_grant_is_a_configuration_error() {
    let peer = start(3600).await;
    let ch = channel_with(
        &peer,
        "someone-else@other.iam.gserviceaccount.com",
        TEST_KEY,
    );
    let out = send(&fcm(&peer), &ch, &["tok-a"]).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(400), Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    assert!(out.message.expect("message").contains("invalid_grant"));
    assert!(peer.sends().is_empty());
}

#[tokio::test]
async fn a_key_with_escaped_newlines_as_in_the_json_file_works() {
    let peer = start(3600).await;
    assert_eq!(check_private_key(TEST_KEY), Ok(()));
    assert_eq!(check_private_key(TEST_KEY_PKCS1), Ok(()));
    let escaped = TEST_KEY.replace('\n', "\\n");
    let out = send(
        &fcm(&peer),
        &channel_with(&peer, CLIENT_EMAIL, &escaped),
        &["tok-a"],
    )
    .await;
    assert!(out.is_delivered(), "{out:?} {:?}", peer.refusals());
}

#[tokio::test]
async fn a_pkcs1_key_signs_assertions_google_accepts() {
    let peer = start(3600).await;
    let ch = channel_with(&peer, CLIENT_EMAIL, TEST_KEY_PKCS1);
    let out = send(&fcm(&peer), &ch, &["tok-a"]).await;
    assert!(out.is_delivered(), "{out:?} {:?}", peer.refusals());
}

#[tokio::test]
async fn a_token_endpoint_outage_is_a_retried_server_error() {
    let peer = start(3600).await;
    peer.google
        .token_endpoint_down
        .store(true, Ordering::SeqCst);
    let out = send(&fcm(&peer), &channel(&peer), &["tok-a"]).await;
    assert_eq!(
        (out.status_code, out.error_class, out.retry_after),
        (
            Some(503),
            Some(ErrorClass::ServerError),
            Some(Duration::from_secs(4))
        ),
        "{out:?}"
    );
    assert!(peer.sends().is_empty());
}

#[tokio::test]
async fn without_the_allow_list_the_loopback_peer_is_refused() {
    let peer = start(3600).await;
    let sender = FcmSender::with_endpoint(
        OutboundClient::new(OutboundConfig::default()).expect("client"),
        Url::parse(&peer.base).expect("url"),
    );
    let out = send(&sender, &channel(&peer), &["tok-a"]).await;
    assert_eq!(out.error_class, Some(ErrorClass::Configuration), "{out:?}");
    assert_eq!(peer.token_requests(), 0);
}

#[tokio::test]
async fn a_second_401_after_a_fresh_token_is_a_configuration_error() {
    let peer = start(3600).await;
    let out = send(&fcm(&peer), &channel(&peer), &["tok-always-401"]).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(401), Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    assert_eq!(peer.token_requests(), 2, "one refresh, not a loop");
    assert_eq!(peer.sends().len(), 2);
}

#[tokio::test]
async fn a_third_party_auth_error_is_configuration_without_a_token_refresh() {
    let peer = start(3600).await;
    let out = send(&fcm(&peer), &channel(&peer), &["tok-apns"]).await;
    assert_eq!(
        (out.status_code, out.error_class),
        (Some(401), Some(ErrorClass::Configuration)),
        "{out:?}"
    );
    assert!(
        out.message
            .expect("message")
            .contains("THIRD_PARTY_AUTH_ERROR")
    );
    assert_eq!(peer.token_requests(), 1);
    assert_eq!(peer.sends().len(), 1);
}
