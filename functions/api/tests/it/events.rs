//! `POST /events`: what the API refuses before answering 202, so that an accepted event is one
//! the pipeline can process.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

fn nested(levels: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

#[tokio::test]
async fn properties_nested_125_deep_are_refused_naming_properties() {
    let app = TestApp::local().await;
    let body = json!({"type": "email.bounced", "module": "email", "properties": nested(125)});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("properties"), "{}", a.text);
    assert!(a.message().contains("32 levels"), "{}", a.text);
}

#[tokio::test]
async fn properties_at_the_depth_limit_are_accepted() {
    let app = TestApp::local().await;
    // `properties` itself is level 1: 31 more objects and a string leaf.
    let body = json!({"type": "email.bounced", "module": "email", "properties": nested(32)});
    app.post("/events", &body.to_string())
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_too_deep_entry_of_a_batch_is_refused_alone_naming_its_index() {
    let app = TestApp::local().await;
    let ok = json!({"type": "email.bounced", "module": "email", "properties": {"to": "a@b.c"}});
    let deep = json!({"type": "email.bounced", "module": "email", "properties": nested(60)});
    let body = json!([ok, ok, ok, deep, ok]);
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        (a.json["accepted"].clone(), a.json["rejected"].clone()),
        (json!(4), json!(1))
    );
    let refused = &a.json["items"][3];
    assert!(refused["id"].is_null(), "{}", a.text);
    assert_eq!(refused["error"]["code"], "invalid_body", "{}", a.text);
    assert_eq!(refused["error"]["field"], "[3].properties", "{}", a.text);
}

#[tokio::test]
async fn properties_over_64_kb_are_refused_naming_properties() {
    let app = TestApp::local().await;
    let body = json!({"type": "t", "module": "m", "properties": {"blob": "x".repeat(70 * 1024)}});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("properties"), "{}", a.text);
}

#[tokio::test]
async fn an_unknown_field_of_an_event_is_refused_by_name() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/events",
            r#"{"type":"email.bounced","module":"email","propertes":{"to":"x"}}"#,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), Some("invalid_body"));
    assert_eq!(a.field(), Some("propertes"), "{}", a.text);
}

#[tokio::test]
async fn an_unknown_field_in_a_batch_is_that_entrys_error() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/events",
            r#"[{"type":"a","module":"m"},{"type":"b","module":"m","userid":"u1"}]"#,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert!(a.json["items"][0]["id"].is_string(), "{}", a.text);
    assert_eq!(
        a.json["items"][1]["error"]["code"], "invalid_body",
        "{}",
        a.text
    );
    assert_eq!(
        a.json["items"][1]["error"]["field"], "[1].userid",
        "{}",
        a.text
    );
}

#[tokio::test]
async fn an_unknown_field_of_a_recipient_is_refused() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/events",
            r#"{"type":"t","module":"m","recipients":["bob",{"userId":"alice","emial":"a@x.io"}]}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("recipients[1]"), "{}", a.text);
    assert!(a.message().contains("emial"), "{}", a.text);
}

#[tokio::test]
async fn the_recipient_cap_is_checked_before_any_recipient_is_read() {
    let app = TestApp::local().await;
    // 1,001 entries whose last is not a valid user id: the cap answers, not entry 1000.
    let mut recipients: Vec<Value> = (0..1000).map(|i| json!(format!("user-{i}"))).collect();
    recipients.push(json!(""));
    let body = json!({"type": "t", "module": "m", "recipients": recipients});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("recipients"), "{}", a.text);
    assert!(a.message().contains("at most 1000"), "{}", a.text);
}

#[tokio::test]
async fn thirty_thousand_duplicate_recipients_are_refused_by_the_cap() {
    let app = TestApp::local().await;
    let recipients: Vec<Value> = (0..30_000).map(|i| json!(format!("u{}", i % 7))).collect();
    let body = json!({"type": "t", "module": "m", "recipients": recipients});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("recipients"), "{}", a.text);
}

#[tokio::test]
async fn duplicate_recipients_under_the_cap_are_kept_once() {
    let app = TestApp::local().await;
    let body = json!({"type": "t", "module": "m", "userId": "alice",
        "recipients": ["bob", "alice", {"userId": "bob", "email": "b@x.io"}, "carol"]});
    app.post("/events", &body.to_string())
        .await
        .expect(StatusCode::ACCEPTED);
}
