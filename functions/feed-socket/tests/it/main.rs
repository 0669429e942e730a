//! The feed socket function driven with API Gateway-shaped events over the embedded store, and
//! its notifier through the real SDK: against a loopback peer that behaves like API Gateway's
//! management API (records posts, answers 410 Gone for closed connections), and against the
//! AWS emulator.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::{
    Badge, CLIENT_MESSAGE_EXAMPLES, ClientMessage, FeedMessage, FeedToken, FeedTokenSecret,
    NewFeedItem,
};
use herald_feed_socket::{ApiGatewayNotifier, FeedSocket, PostOutcome};
use herald_shared::feed::FeedNotifier;
use herald_shared::repo::Feeds;
use herald_shared::repo::connections::Connections;
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use serde_json::{Value, json};

const SECRET: &[u8] = b"feed-socket-test-secret-0123456";
const ORIGIN: &str = "https://app.example.com";

/// What the management API peer received, and which connections it calls gone.
#[derive(Debug, Default)]
struct Peer {
    posts: Mutex<Vec<(String, String)>>,
    gone: Mutex<HashSet<String>>,
}

impl Peer {
    fn posts_to(&self, id: &str) -> Vec<Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    }
}

async fn post_to_connection(
    State(peer): State<Arc<Peer>>,
    Path(id): Path<String>,
    body: String,
) -> axum::response::Response {
    if peer.gone.lock().unwrap().contains(&id) {
        return (
            StatusCode::GONE,
            [("x-amzn-errortype", "GoneException")],
            r#"{"message":null}"#,
        )
            .into_response();
    }
    peer.posts.lock().unwrap().push((id, body));
    StatusCode::OK.into_response()
}

/// A loopback management API (`POST /live/@connections/{id}`) and a client pointed at it.
async fn peer() -> (Arc<Peer>, aws_sdk_apigatewaymanagement::Client) {
    let peer = Arc::new(Peer::default());
    let app = axum::Router::new()
        .route(
            "/live/@connections/{id}",
            axum::routing::post(post_to_connection),
        )
        .with_state(peer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (peer, client(&format!("http://{addr}/live")))
}

fn client(endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(herald_shared::aws::http_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

struct Fixture {
    socket: FeedSocket,
    peer: Arc<Peer>,
    store: Arc<dyn Store>,
    org: OrgId,
    alice: UserId,
}

async fn fixture() -> Fixture {
    let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().unwrap());
    let (peer, client) = peer().await;
    let socket = FeedSocket {
        store: store.clone(),
        notifier: ApiGatewayNotifier::new(client, store.clone()),
        secret: FeedTokenSecret::new(SECRET.to_vec()).unwrap(),
        allowed_origins: vec![ORIGIN.to_owned()],
    };
    Fixture {
        socket,
        peer,
        store,
        org: OrgId::new(),
        alice: UserId::parse("alice").unwrap(),
    }
}

impl Fixture {
    fn token(&self, user: &UserId) -> String {
        FeedToken::new(self.org, user.clone(), Utc::now(), Duration::hours(1))
            .unwrap()
            .sign(&FeedTokenSecret::new(SECRET.to_vec()).unwrap())
    }

    async fn send(&self, event: Value) -> ApiGatewayProxyResponse {
        let request: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event).unwrap();
        self.socket.handle(request, Utc::now()).await
    }

    /// `$connect` as API Gateway sends it.
    async fn connect(&self, id: &str, token: Option<&str>, origin: Option<&str>) -> i64 {
        let mut headers = json!({"Host": "abc123.execute-api.us-east-1.amazonaws.com"});
        if let Some(o) = origin {
            headers["Origin"] = json!(o);
        }
        let query = token.map(|t| json!({"token": t}));
        self.send(json!({
            "headers": headers,
            "multiValueHeaders": {},
            "queryStringParameters": query,
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "connectionId": id,
                "stage": "live", "apiId": "abc123", "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64,
                "identity": {"sourceIp": "203.0.113.9"}
            },
            "isBase64Encoded": false
        }))
        .await
        .status_code
    }

    async fn route(&self, route: &str, id: &str, body: Option<&str>) -> i64 {
        self.send(json!({
            "requestContext": {
                "routeKey": route, "eventType": if route == "$disconnect" { "DISCONNECT" } else { "MESSAGE" },
                "connectionId": id, "stage": "live", "apiId": "abc123",
                "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64,
                "identity": {"sourceIp": "203.0.113.9"}
            },
            "body": body,
            "isBase64Encoded": false
        }))
        .await
        .status_code
    }

    async fn connections(&self) -> Vec<String> {
        Connections::new(self.store.as_ref())
            .of_user(&self.org, &self.alice)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.connection_id)
            .collect()
    }
}

#[tokio::test]
async fn a_connected_user_receives_pushed_feed_messages() {
    let f = fixture().await;
    assert_eq!(
        f.connect("conn-1", Some(&f.token(&f.alice)), Some(ORIGIN))
            .await,
        200
    );
    assert_eq!(
        f.connect("conn-2", Some(&f.token(&f.alice)), None).await,
        200,
        "native apps send no Origin"
    );
    let bob = UserId::parse("bob").unwrap();
    assert_eq!(f.connect("conn-bob", Some(&f.token(&bob)), None).await, 200);

    let appended = Feeds::new(f.store.as_ref())
        .append(
            &f.org,
            &f.alice,
            NewFeedItem {
                title: "Invoice paid".into(),
                ..NewFeedItem::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    f.socket
        .notifier
        .notify(
            &f.org,
            &f.alice,
            &FeedMessage::item_new(appended.item, appended.badge, appended.seq),
        )
        .await
        .unwrap();

    for conn in ["conn-1", "conn-2"] {
        let got = f.peer.posts_to(conn);
        assert_eq!(got.len(), 1, "{conn}");
        assert_eq!(got[0]["type"], "item.new");
        assert_eq!(got[0]["seq"], 1);
        assert_eq!(got[0]["item"]["title"], "Invoice paid");
        assert_eq!(got[0]["badge"], json!({"unread": 1, "unseen": 1}));
    }
    assert!(
        f.peer.posts_to("conn-bob").is_empty(),
        "another user's connection gets nothing"
    );
}

#[tokio::test]
async fn connects_with_bad_tokens_or_foreign_origins_are_refused_and_not_recorded() {
    let f = fixture().await;
    let expired = FeedToken::new(
        f.org,
        f.alice.clone(),
        Utc::now() - Duration::hours(2),
        Duration::hours(1),
    )
    .unwrap()
    .sign(&FeedTokenSecret::new(SECRET.to_vec()).unwrap());
    let good = f.token(&f.alice);
    let (payload, _) = good.rsplit_once('.').unwrap();
    let tampered = format!("{payload}.AAAA");
    assert_eq!(f.connect("c1", Some(&expired), Some(ORIGIN)).await, 401);
    assert_eq!(f.connect("c2", Some(&tampered), Some(ORIGIN)).await, 401);
    assert_eq!(f.connect("c3", None, Some(ORIGIN)).await, 401);
    assert_eq!(
        f.connect("c4", Some(&good), Some("https://evil.example"))
            .await,
        403
    );
    assert!(f.connections().await.is_empty());
}

#[tokio::test]
async fn pings_get_pongs_and_hello_gets_the_badge_and_seq() {
    let f = fixture().await;
    Feeds::new(f.store.as_ref())
        .append(
            &f.org,
            &f.alice,
            NewFeedItem {
                title: "x".into(),
                ..NewFeedItem::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        f.connect("c1", Some(&f.token(&f.alice)), Some(ORIGIN))
            .await,
        200
    );
    assert_eq!(
        f.route("$default", "c1", Some(r#"{"type":"ping"}"#)).await,
        200
    );
    assert_eq!(
        f.route("$default", "c1", Some(r#"{"type":"hello"}"#)).await,
        200
    );
    assert_eq!(f.route("$default", "c1", Some("something else")).await, 200);
    let got = f.peer.posts_to("c1");
    assert_eq!(
        got,
        [
            json!({"type": "pong"}),
            json!({"type": "badge", "seq": 1, "badge": {"unread": 1, "unseen": 1}})
        ]
    );
}

/// The same table as `herald serve`'s socket test (`functions/api/tests/it/feeds.rs`): both
/// sockets answer the same messages the same way.
#[tokio::test]
async fn every_protocol_example_is_answered_as_the_shared_parser_says() {
    let f = fixture().await;
    assert_eq!(
        f.connect("c1", Some(&f.token(&f.alice)), Some(ORIGIN))
            .await,
        200
    );
    let mut expected = Vec::new();
    for (text, meaning) in CLIENT_MESSAGE_EXAMPLES {
        assert_eq!(f.route("$default", "c1", Some(text)).await, 200, "{text:?}");
        match meaning {
            Some(ClientMessage::Ping) => expected.push(json!({"type": "pong"})),
            Some(ClientMessage::Hello) => expected
                .push(json!({"type": "badge", "seq": 0, "badge": {"unread": 0, "unseen": 0}})),
            None => {}
        }
        assert_eq!(f.peer.posts_to("c1"), expected, "after {text:?}");
    }
}

#[tokio::test]
async fn disconnect_forgets_the_connection() {
    let f = fixture().await;
    assert_eq!(f.connect("c1", Some(&f.token(&f.alice)), None).await, 200);
    assert_eq!(f.connections().await, ["c1"]);
    assert_eq!(f.route("$disconnect", "c1", None).await, 200);
    assert!(f.connections().await.is_empty());
    f.socket
        .notifier
        .notify(&f.org, &f.alice, &FeedMessage::badge(Badge::default(), 1))
        .await
        .unwrap();
    assert!(f.peer.posts_to("c1").is_empty());
}

#[tokio::test]
async fn a_gone_connection_is_deleted_and_the_others_still_get_the_message() {
    let f = fixture().await;
    for c in ["alive", "gone"] {
        assert_eq!(f.connect(c, Some(&f.token(&f.alice)), None).await, 200);
    }
    f.peer.gone.lock().unwrap().insert("gone".into());
    assert_eq!(
        f.socket.notifier.post("gone", "{}").await.unwrap(),
        PostOutcome::Gone
    );
    assert_eq!(f.connections().await, ["alive"]);
    f.connect("gone", Some(&f.token(&f.alice)), None).await;
    f.socket
        .notifier
        .notify(
            &f.org,
            &f.alice,
            &FeedMessage::badge(
                Badge {
                    unread: 3,
                    unseen: 3,
                },
                9,
            ),
        )
        .await
        .unwrap();
    assert_eq!(f.peer.posts_to("alive").len(), 1);
    assert_eq!(
        f.connections().await,
        ["alive"],
        "410 on push removes the record"
    );
}

#[tokio::test]
async fn the_notifier_posts_through_the_sdk_to_the_aws_emulator() {
    let endpoint = std::env::var("HERALD_TEST_AWS_ENDPOINT")
        .expect("HERALD_TEST_AWS_ENDPOINT is not set: start the emulator with infra/emulator.sh start and export it");
    let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().unwrap());
    // moto serves the management API at the root (`/@connections/{id}`), without a stage.
    let notifier = ApiGatewayNotifier::new(client(&endpoint), store);
    let id = format!("conn-{}", uuid_suffix());
    assert_eq!(
        notifier.post(&id, r#"{"type":"pong"}"#).await.unwrap(),
        PostOutcome::Sent
    );
}

fn uuid_suffix() -> String {
    format!("{:x}", Utc::now().timestamp_nanos_opt().unwrap_or_default())
}
