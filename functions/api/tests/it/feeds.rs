//! In-app feeds as a browser or app sees them: tokens, the feed list and marks, CORS, the live
//! socket over a real TCP connection, the widget and demo page, and tokens kept out of logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use herald_api::{AdminKey, ApiConfig, AppState};
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::{
    CLIENT_MESSAGE_EXAMPLES, ClientMessage, FeedToken, FeedTokenSecret, NewFeedItem,
};
use herald_shared::feed::LocalFeedHub;
use herald_shared::repo::Feeds;
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use http::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ADMIN_KEY, Answer, NullBus, TestApp};

const SECRET: &[u8] = b"feed-token-secret-for-tests-0123";
const APP_ORIGIN: &str = "https://app.example.com";

struct FeedApp {
    app: TestApp,
    hub: LocalFeedHub,
    org: OrgId,
}

impl FeedApp {
    async fn new() -> Self {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("store"));
        let hub = LocalFeedHub::new();
        let config = ApiConfig {
            admin_key: Some(AdminKey::new(ADMIN_KEY)),
            feed_token_secret: Some(FeedTokenSecret::new(SECRET.to_vec()).expect("secret")),
            feed_allowed_origins: vec![APP_ORIGIN.to_owned()],
            ..ApiConfig::default()
        };
        let sender = herald_shared::delivery::HttpSender::new(Default::default())
            .expect("an HTTP client builds");
        let state = AppState::new(store, Arc::new(NullBus), Arc::new(sender), config)
            .with_feeds(Arc::new(hub.clone()));
        let app = TestApp::serving(state).await;
        let org = app.org_id.parse().expect("org id");
        Self { app, hub, org }
    }

    /// A token for `user`, minted through the API as a customer's backend would.
    async fn token(&self, user: &str) -> String {
        let a = self
            .app
            .post("/feeds/tokens", &format!(r#"{{"userId":"{user}"}}"#))
            .await
            .expect(StatusCode::OK);
        a.json["token"].as_str().expect("token").to_owned()
    }

    /// What the dispatcher does for an `in_app` delivery.
    async fn deliver(&self, user: &str, title: &str) -> String {
        let user = UserId::parse(user).expect("user");
        let item = NewFeedItem {
            title: title.to_owned(),
            body: Some(format!("{title} body")),
            ..NewFeedItem::default()
        };
        Feeds::new(self.app.store.as_ref())
            .append(&self.org, &user, item, Utc::now())
            .await
            .expect("append")
            .item
            .id
            .to_string()
    }

    async fn feed(&self, token: &str, method: &str, rest: &str) -> Answer {
        let auth = format!("Bearer {token}");
        self.app
            .send(
                method,
                &self.app.path(rest),
                &[("authorization", auth.as_str())],
                None,
            )
            .await
    }
}

fn titles(a: &Answer) -> Vec<String> {
    a.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_backend_mints_a_one_hour_token_for_a_user_with_its_api_key() {
    let f = FeedApp::new().await;
    let a = f
        .app
        .post("/feeds/tokens", r#"{"userId":"alice"}"#)
        .await
        .expect(StatusCode::OK);
    assert!(a.json["token"].as_str().expect("token").starts_with("hft_"));
    let expires: chrono::DateTime<Utc> = a.json["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("date");
    let ttl = expires - Utc::now();
    assert!(
        ttl > chrono::Duration::minutes(59) && ttl <= chrono::Duration::minutes(60),
        "{ttl}"
    );
    f.app
        .post("/feeds/tokens", r#"{"userId":"alice","ttlSeconds":90000}"#)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    f.app
        .post("/feeds/tokens", r#"{}"#)
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    let path = f.app.path("/feeds/tokens");
    f.app
        .send("POST", &path, &[], Some(r#"{"userId":"alice"}"#))
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_feed_lists_newest_first_with_an_exact_badge_and_marks_change_it() {
    let f = FeedApp::new().await;
    let first = f.deliver("alice", "first").await;
    f.deliver("alice", "second").await;
    f.deliver("bob", "not alice's").await;
    let token = f.token("alice").await;

    let a = f.feed(&token, "GET", "/feed").await.expect(StatusCode::OK);
    assert_eq!(titles(&a), ["second", "first"]);
    assert_eq!(
        a.json["badge"],
        serde_json::json!({"unread": 2, "unseen": 2})
    );
    assert_eq!(a.json["seq"], 2);

    let m = f
        .feed(&token, "POST", &format!("/feed/items/{first}/read"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        m.json["badge"],
        serde_json::json!({"unread": 1, "unseen": 1})
    );
    assert_eq!(m.json["changed"], true);
    assert!(m.json["item"]["readAt"].is_string());
    // Again: nothing changes.
    let again = f
        .feed(&token, "POST", &format!("/feed/items/{first}/read"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.json["changed"], false);
    assert_eq!(again.json["badge"]["unread"], 1);

    let unread = f
        .feed(&token, "GET", "/feed?status=unread")
        .await
        .expect(StatusCode::OK);
    assert_eq!(titles(&unread), ["second"]);
    let page = f
        .feed(&token, "GET", "/feed?limit=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(titles(&page), ["second"]);
    let cursor = page.json["nextCursor"].as_str().expect("cursor").to_owned();
    let rest = f
        .feed(&token, "GET", &format!("/feed?limit=1&cursor={cursor}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(titles(&rest), ["first"]);

    f.feed(&token, "POST", &format!("/feed/items/{first}/archive"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(titles(&f.feed(&token, "GET", "/feed").await), ["second"]);
    assert_eq!(
        titles(&f.feed(&token, "GET", "/feed?archived=true").await),
        ["first"]
    );

    let all = f
        .feed(&token, "POST", "/feed/read-all")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        all.json["badge"],
        serde_json::json!({"unread": 0, "unseen": 0})
    );
    let changes = f
        .feed(&token, "GET", "/feed?sinceSeq=2")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        titles(&changes),
        ["first", "second"],
        "what changed after seq 2, oldest change first"
    );
    assert_eq!(changes.json["seq"], all.json["seq"]);

    f.feed(&token, "GET", "/feed?status=bogus")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    f.feed(&token, "POST", &format!("/feed/items/{first}/explode"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_items_are_not_found_and_bad_tokens_are_401() {
    let f = FeedApp::new().await;
    let item = f.deliver("alice", "private").await;
    let bob = f.token("bob").await;
    f.feed(&bob, "POST", &format!("/feed/items/{item}/read"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert!(titles(&f.feed(&bob, "GET", "/feed").await.expect(StatusCode::OK)).is_empty());

    let secret = FeedTokenSecret::new(SECRET.to_vec()).expect("secret");
    let alice = UserId::parse("alice").expect("user");
    let expired = FeedToken::new(
        f.org,
        alice.clone(),
        Utc::now() - chrono::Duration::hours(2),
        chrono::Duration::hours(1),
    )
    .expect("token")
    .sign(&secret);
    let other_org = FeedToken::new(
        OrgId::new(),
        alice.clone(),
        Utc::now(),
        chrono::Duration::hours(1),
    )
    .expect("token")
    .sign(&secret);
    let forged = FeedToken::new(f.org, alice, Utc::now(), chrono::Duration::hours(1))
        .expect("token")
        .sign(&FeedTokenSecret::new(b"not-the-server-secret!".to_vec()).expect("secret"));
    let good = f.token("alice").await;
    let (body, sig) = good.rsplit_once('.').expect("dot");
    let tampered = format!("{body}x.{sig}");
    for token in [
        expired.as_str(),
        other_org.as_str(),
        forged.as_str(),
        tampered.as_str(),
        "hft_garbage",
        "",
    ] {
        let a = f
            .feed(token, "GET", "/feed")
            .await
            .expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(a.field(), Some("authorization"), "{token}");
    }
    let path = f.app.path("/feed");
    f.app
        .send("GET", &path, &[], None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
    // The org API key is not a feed credential.
    f.app
        .get("/feed")
        .await
        .expect_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn concurrent_marks_from_many_devices_keep_the_badge_exact() {
    let f = FeedApp::new().await;
    let mut items = Vec::new();
    for n in 0..12 {
        items.push(f.deliver("alice", &format!("n{n}")).await);
    }
    let token = f.token("alice").await;
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for device in 0..6usize {
        let (f, items, token) = (f.clone(), items.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..20usize {
                let item = &items[(device * 5 + n * 7) % items.len()];
                let action = ["read", "unread", "seen", "read", "archive"][(device + n) % 5];
                f.feed(&token, "POST", &format!("/feed/items/{item}/{action}"))
                    .await
                    .expect(StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.expect("device");
    }
    let all = f
        .feed(&token, "GET", "/feed?limit=100")
        .await
        .expect(StatusCode::OK);
    let unread = all.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["readAt"].is_null())
        .count();
    let unseen = all.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["seenAt"].is_null())
        .count();
    assert_eq!(
        all.json["badge"],
        serde_json::json!({"unread": unread, "unseen": unseen})
    );
}

#[tokio::test]
async fn feed_paths_answer_cors_for_allowed_origins_only() {
    let f = FeedApp::new().await;
    let path = f.app.path("/feed");
    let preflight = |origin: &'static str| {
        let path = path.clone();
        let router = f.app.router.clone();
        async move {
            let req = http::Request::builder()
                .method("OPTIONS")
                .uri(path)
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .body(axum::body::Body::empty())
                .expect("request");
            tower::ServiceExt::oneshot(router, req)
                .await
                .expect("infallible")
        }
    };
    let ok = preflight(APP_ORIGIN).await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(APP_ORIGIN)
    );
    let evil = preflight("https://evil.example").await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn marks_are_pushed_to_the_users_other_connections() {
    let f = FeedApp::new().await;
    let item = f.deliver("alice", "hello").await;
    let token = f.token("alice").await;
    let mut other_tab = f
        .hub
        .subscribe_user(&f.org, &UserId::parse("alice").expect("user"));
    f.feed(&token, "POST", &format!("/feed/items/{item}/read"))
        .await
        .expect(StatusCode::OK);
    let m = tokio::time::timeout(Duration::from_secs(2), other_tab.recv())
        .await
        .expect("pushed")
        .expect("message");
    let json: Value = serde_json::from_str(&m.to_json()).expect("json");
    assert_eq!(json["type"], "item.updated");
    assert_eq!(json["seq"], 2);
    assert_eq!(json["badge"]["unread"], 0);
    assert_eq!(json["item"]["id"], item.as_str());
}

#[tokio::test]
async fn the_widget_and_demo_page_are_served() {
    let f = FeedApp::new().await;
    let js = f
        .app
        .send("GET", "/widget/herald-feed.js", &[], None)
        .await
        .expect(StatusCode::OK);
    assert!(
        js.text.contains("customElements.define('herald-feed'"),
        "widget script"
    );
    let req = http::Request::builder()
        .uri("/widget/herald-feed.js")
        .body(axum::body::Body::empty())
        .expect("request");
    let res = tower::ServiceExt::oneshot(f.app.router.clone(), req)
        .await
        .expect("infallible");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    let demo = f
        .app
        .send("GET", "/demo/feed?orgId=x&token=y", &[], None)
        .await
        .expect(StatusCode::OK);
    assert!(demo.text.contains("<herald-feed"));
    assert!(!demo.text.contains("token=y"));
}

/// A `MakeWriter` into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_reach_a_log_line() {
    let f = FeedApp::new().await;
    let token = f.token("alice").await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let socket = f.app.path(&format!("/feed/socket?token={token}"));
    f.app.send("GET", &socket, &[], None).await;
    f.feed(&token, "GET", "/feed").await.expect(StatusCode::OK);
    f.app
        .send("GET", &f.app.path("/feed?token=hft_leaky"), &[], None)
        .await;
    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf8");
    assert!(text.contains("/feed/socket"), "requests are logged: {text}");
    let (_, signature) = token.rsplit_once('.').expect("dot");
    assert!(
        !text.contains(signature) && !text.contains("hft_"),
        "a token reached the log: {text}"
    );
}

// ---- the live socket, over a real connection --------------------------------------------------

/// A minimal WebSocket client: enough to open a socket, read text frames and send a masked one.
struct Ws {
    stream: TcpStream,
}

impl Ws {
    /// Opens `path` on `addr`; the HTTP status line of the answer, and the socket if 101.
    async fn open(
        addr: std::net::SocketAddr,
        path: &str,
        origin: Option<&str>,
    ) -> (u16, Option<Self>) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if stream.read(&mut b).await.expect("read") == 0 {
                break;
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, (status == 101).then_some(Self { stream }))
    }

    /// The next text frame as JSON (skipping pings).
    async fn next_json(&mut self) -> Value {
        loop {
            let (opcode, payload) = self.next_frame().await;
            match opcode {
                1 => return serde_json::from_slice(&payload).expect("json frame"),
                8 => panic!("socket closed: {payload:?}"),
                _ => {}
            }
        }
    }

    /// The next frame: its opcode and payload.
    async fn next_frame(&mut self) -> (u8, Vec<u8>) {
        {
            let mut h = [0u8; 2];
            tokio::time::timeout(Duration::from_secs(3), self.stream.read_exact(&mut h))
                .await
                .expect("a frame in time")
                .expect("read");
            let opcode = h[0] & 0x0f;
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).await.expect("len");
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).await.expect("len");
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; usize::try_from(len).expect("size")];
            self.stream.read_exact(&mut payload).await.expect("payload");
            (opcode, payload)
        }
    }

    /// Sends a masked close frame with `code`, as a browser's `ws.close(code)` does.
    async fn send_close(&mut self, code: u16) {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x88, 0x80 | 2];
        frame.extend_from_slice(&mask);
        frame.extend(
            code.to_be_bytes()
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4]),
        );
        self.stream.write_all(&frame).await.expect("send close");
    }

    async fn send_text(&mut self, text: &str) {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).expect("short")];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("send");
    }
}

async fn serve(f: &FeedApp) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = f.app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn the_socket_sends_the_badge_on_open_then_pushes_new_items_and_marks() {
    let f = FeedApp::new().await;
    let item = f.deliver("alice", "before").await;
    let token = f.token("alice").await;
    let addr = serve(&f).await;
    let (status, ws) = Ws::open(
        addr,
        &f.app.path(&format!("/feed/socket?token={token}")),
        Some(APP_ORIGIN),
    )
    .await;
    assert_eq!(status, 101);
    let mut ws = ws.expect("socket");
    let hello = ws.next_json().await;
    assert_eq!(
        hello,
        serde_json::json!({"type": "badge", "seq": 1, "badge": {"unread": 1, "unseen": 1}})
    );

    // Another device marks the item read through REST.
    f.feed(&token, "POST", &format!("/feed/items/{item}/read"))
        .await
        .expect(StatusCode::OK);
    let updated = ws.next_json().await;
    assert_eq!(
        (updated["type"].as_str(), updated["seq"].as_u64()),
        (Some("item.updated"), Some(2))
    );
    assert_eq!(updated["badge"]["unread"], 0);

    ws.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(ws.next_json().await, serde_json::json!({"type": "pong"}));

    // The dispatcher appends and pushes a new item.
    let user = UserId::parse("alice").expect("user");
    let new = NewFeedItem {
        title: "live".into(),
        ..NewFeedItem::default()
    };
    let a = Feeds::new(f.app.store.as_ref())
        .append(&f.org, &user, new, Utc::now())
        .await
        .expect("append");
    let message = herald_core::feed::FeedMessage::item_new(a.item, a.badge, a.seq);
    herald_shared::feed::FeedNotifier::notify(&f.hub, &f.org, &user, &message)
        .await
        .expect("notify");
    let pushed = ws.next_json().await;
    assert_eq!(
        (pushed["type"].as_str(), pushed["seq"].as_u64()),
        (Some("item.new"), Some(3))
    );
    assert_eq!(pushed["item"]["title"], "live");

    ws.send_text(r#"{"type":"hello"}"#).await;
    assert_eq!(
        ws.next_json().await,
        serde_json::json!({"type": "badge", "seq": 3, "badge": {"unread": 1, "unseen": 1}})
    );
}

/// The same table as the AWS feed socket's test (`functions/feed-socket/tests/it/main.rs`): both
/// sockets answer the same messages the same way.
#[tokio::test]
async fn every_protocol_example_is_answered_as_the_shared_parser_says() {
    let f = FeedApp::new().await;
    f.deliver("alice", "one").await;
    let token = f.token("alice").await;
    let addr = serve(&f).await;
    let (status, ws) = Ws::open(
        addr,
        &f.app.path(&format!("/feed/socket?token={token}")),
        Some(APP_ORIGIN),
    )
    .await;
    assert_eq!(status, 101);
    let mut ws = ws.expect("socket");
    let badge = serde_json::json!({"type": "badge", "seq": 1, "badge": {"unread": 1, "unseen": 1}});
    assert_eq!(ws.next_json().await, badge);
    let pong = serde_json::json!({"type": "pong"});
    for (text, meaning) in CLIENT_MESSAGE_EXAMPLES {
        ws.send_text(text).await;
        match meaning {
            Some(ClientMessage::Ping) => assert_eq!(ws.next_json().await, pong, "{text:?}"),
            Some(ClientMessage::Hello) => assert_eq!(ws.next_json().await, badge, "{text:?}"),
            None => {
                // Ignored: the next frame answers the ping sent after it.
                ws.send_text(r#"{"type":"ping"}"#).await;
                assert_eq!(ws.next_json().await, pong, "{text:?} was answered");
            }
        }
    }
}

#[tokio::test]
async fn the_socket_answers_the_clients_close_frame_with_its_code_and_hangs_up() {
    let f = FeedApp::new().await;
    let token = f.token("closer").await;
    let addr = serve(&f).await;
    let (_, ws) = Ws::open(
        addr,
        &f.app.path(&format!("/feed/socket?token={token}")),
        None,
    )
    .await;
    let mut ws = ws.expect("socket");
    assert_eq!(ws.next_json().await["type"], "badge");

    ws.send_close(1000).await;
    let (opcode, payload) = loop {
        let (opcode, payload) = ws.next_frame().await;
        // A server ping may cross the close frame; anything else is a fault.
        if opcode != 9 {
            break (opcode, payload);
        }
    };
    assert_eq!(opcode, 8, "a close frame answers the client's: {payload:?}");
    assert_eq!(
        payload.get(..2),
        Some(&1000u16.to_be_bytes()[..]),
        "the client's code is echoed, so the browser sees a clean 1000"
    );
    let mut rest = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), ws.stream.read(&mut rest))
        .await
        .expect("the server hangs up after answering");
    assert_eq!(read.expect("read"), 0, "nothing follows the close frame");
}

#[tokio::test]
async fn the_socket_refuses_bad_tokens_and_foreign_origins() {
    let f = FeedApp::new().await;
    let token = f.token("alice").await;
    let addr = serve(&f).await;
    let socket = f.app.path(&format!("/feed/socket?token={token}"));
    assert_eq!(
        Ws::open(addr, &socket, Some("https://evil.example"))
            .await
            .0,
        403
    );
    assert_eq!(
        Ws::open(addr, &f.app.path("/feed/socket?token=hft_bad.sig"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        Ws::open(addr, &f.app.path("/feed/socket"), None).await.0,
        401
    );
    // Native apps send no Origin; the page served by the API itself is same-origin.
    assert_eq!(Ws::open(addr, &socket, None).await.0, 101);
    assert_eq!(
        Ws::open(addr, &socket, Some(&format!("http://{addr}")))
            .await
            .0,
        101
    );
}

#[tokio::test]
async fn the_openapi_document_covers_the_feed_paths() {
    let f = FeedApp::new().await;
    let doc = f
        .app
        .send("GET", "/openapi.json", &[], None)
        .await
        .expect(StatusCode::OK)
        .json;
    for (path, method) in [
        ("/api/v1/orgs/{orgId}/feeds/tokens", "post"),
        ("/api/v1/orgs/{orgId}/feed", "get"),
        ("/api/v1/orgs/{orgId}/feed/items/{itemId}/{action}", "post"),
        ("/api/v1/orgs/{orgId}/feed/read-all", "post"),
        ("/api/v1/orgs/{orgId}/feed/seen-all", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["feedToken"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn deleting_a_user_erases_their_feed_and_only_theirs() {
    let f = FeedApp::new().await;
    f.app
        .call(
            "PUT",
            "/users/alice",
            Some(r#"{"email":"alice@example.com"}"#),
        )
        .await
        .expect(StatusCode::OK);
    f.deliver("alice", "one").await;
    f.deliver("alice", "two").await;
    f.deliver("bob", "for bob").await;
    // Carol has a feed but no profile: erasing her still erases the feed.
    f.deliver("carol", "for carol").await;

    f.app
        .delete("/users/alice")
        .await
        .expect(StatusCode::NO_CONTENT);
    f.app
        .delete("/users/carol")
        .await
        .expect(StatusCode::NO_CONTENT);
    f.app
        .delete("/users/carol")
        .await
        .expect_error(StatusCode::NOT_FOUND);

    for (user, left) in [("alice", 0), ("carol", 0), ("bob", 1)] {
        let token = f.token(user).await;
        let a = f.feed(&token, "GET", "/feed").await.expect(StatusCode::OK);
        assert_eq!(titles(&a).len(), left, "{user}: {:?}", titles(&a));
        assert_eq!(a.json["badge"]["unread"], left, "{user}");
    }
}

#[tokio::test]
async fn reading_an_in_app_item_is_recorded_on_its_delivery_and_counted() {
    use herald_core::domain::delivery::{Delivery, DeliveryStatus, Trigger};
    use herald_core::domain::{ChannelId, DeliveryId, EventId, RuleKey};
    use herald_shared::repo::deliveries;

    let f = FeedApp::new().await;
    let now = Utc::now();
    let delivery = Delivery {
        id: DeliveryId::new(),
        org_id: f.org,
        event_id: EventId::parse("evt-read").expect("id"),
        event_type: "comment.created".into(),
        rule_key: Some(RuleKey::parse("comments").expect("key")),
        channel_id: ChannelId::new(),
        channel_kind: herald_core::domain::channel::ChannelKind::InApp,
        recipient: Some(UserId::parse("alice").expect("user")),
        trigger: Trigger::Event,
        status: DeliveryStatus::Delivered,
        reason: None,
        attempts: Vec::new(),
        engagement: Vec::new(),
        next_attempt_at: None,
        cap_slot: None,
        recovered: None,
        event_ids: Vec::new(),
        event_count: None,
        created_at: now,
        updated_at: now,
    };
    deliveries::create(f.app.store.as_ref(), &delivery, now.timestamp() + 3600)
        .await
        .expect("create");
    // What the dispatcher appends for that delivery.
    let item = NewFeedItem {
        delivery_id: Some(delivery.id),
        title: "New comment".into(),
        ..NewFeedItem::default()
    };
    let user = UserId::parse("alice").expect("user");
    Feeds::new(f.app.store.as_ref())
        .append(&f.org, &user, item, now)
        .await
        .expect("append");

    let token = f.token("alice").await;
    f.feed(&token, "POST", &format!("/feed/items/{}/read", delivery.id))
        .await
        .expect(StatusCode::OK);
    // Unread and read again: still one read on record.
    f.feed(
        &token,
        "POST",
        &format!("/feed/items/{}/unread", delivery.id),
    )
    .await
    .expect(StatusCode::OK);
    f.feed(&token, "POST", "/feed/read-all")
        .await
        .expect(StatusCode::OK);

    let logs = f
        .app
        .get("/notifications/logs?ruleKey=comments")
        .await
        .expect(StatusCode::OK);
    let engagement = &logs.json["items"][0]["engagement"];
    assert_eq!(engagement.as_array().map(Vec::len), Some(1), "{engagement}");
    assert_eq!(engagement[0]["kind"], "read");
    let stats = f
        .app
        .get("/notifications/logs/stats")
        .await
        .expect(StatusCode::OK);
    assert_eq!(stats.json["totals"]["counts"]["read"], 1);
}
