//! The alerts and silences API on both store engines, and its answers to bad input: the
//! standard error body naming the field, never a 5xx.

use std::sync::Arc;

use chrono::{Duration, Utc};
use herald_core::domain::alert::{AlertAction, AlertSignal, DedupKey};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::{EventId, OrgId};
use herald_shared::repo::alerts::{self, Action};
use herald_shared::store::Store;
use herald_shared::store::dynamodb::{DynamoStore, create_table};
use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

async fn dynamodb_app() -> TestApp {
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("herald-api-alerts-{}", uuid::Uuid::new_v4().simple());
    create_table(&client, &table)
        .await
        .expect("create table on the emulator");
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, &table));
    TestApp::local_over(store).await
}

/// Opens the alert `key` in the app's org, as the matcher would.
async fn open(app: &TestApp, key: &str) {
    let org: OrgId = app.org_id.parse().expect("org id");
    let now = Utc::now();
    let event = Event {
        id: EventId::parse("evt-1").expect("id"),
        org_id: org,
        event_type: EventType::parse("disk.full").expect("type"),
        module: Module::parse("ops").expect("module"),
        properties: serde_json::Map::new(),
        recipients: Vec::new(),
        occurred_at: now,
        received_at: now,
        alert: Some(AlertSignal {
            dedup_key: Some(DedupKey::parse(key).expect("key")),
            action: AlertAction::Trigger,
            firing_since: None,
        }),
    };
    let key = DedupKey::parse(key).expect("key");
    let action = Action {
        action: AlertAction::Trigger,
        event: &event,
        by: None,
        auto_resolve_seconds: None,
    };
    let ttl = (now + Duration::days(1)).timestamp();
    let alerts::Applied::Opened(r) = alerts::apply(app.store.as_ref(), org, &key, action, ttl, now)
        .await
        .expect("apply")
    else {
        panic!("a first trigger opens the alert");
    };
    alerts::count(app.store.as_ref(), org, &r.alert, 1, now)
        .await
        .expect("count");
}

async fn alert_lifecycle(app: TestApp) {
    open(&app, "disk.full:web-1").await;
    let a = app
        .get("/notifications/alerts/disk.full%3Aweb-1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["state"], "firing");
    assert_eq!(a.json["eventCount"], 1, "{}", a.text);
    let list = app
        .get("/notifications/alerts?state=firing")
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.json["items"][0]["dedupKey"], "disk.full:web-1");

    let acked = app
        .post(
            "/notifications/alerts/disk.full%3Aweb-1/acknowledge",
            r#"{"by":"alice"}"#,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(acked.json["state"], "acknowledged");
    assert_eq!(acked.json["acknowledgedBy"], "alice");
    let empty = app
        .get("/notifications/alerts")
        .await
        .expect(StatusCode::OK);
    assert_eq!(empty.json["items"], json!([]), "no longer firing");

    // An empty body is fine; a resolve is idempotent.
    let resolved = app
        .post("/notifications/alerts/disk.full%3Aweb-1/resolve", "")
        .await
        .expect(StatusCode::OK);
    assert_eq!(resolved.json["state"], "resolved");
    app.post("/notifications/alerts/disk.full%3Aweb-1/resolve", "")
        .await
        .expect(StatusCode::OK);
    let list = app
        .get("/notifications/alerts?state=resolved")
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.json["items"].as_array().map(Vec::len), Some(1));
    // Acknowledging a resolved alert is a conflict; an unknown alert a 404.
    app.post("/notifications/alerts/disk.full%3Aweb-1/acknowledge", "")
        .await
        .expect_error(StatusCode::CONFLICT);
    app.get("/notifications/alerts/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn alerts_are_listed_acknowledged_and_resolved_on_the_embedded_store() {
    alert_lifecycle(TestApp::local().await).await;
}

#[tokio::test]
async fn alerts_are_listed_acknowledged_and_resolved_on_dynamodb() {
    alert_lifecycle(dynamodb_app().await).await;
}

async fn silence_lifecycle(app: TestApp) {
    let ends = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let created = app
        .post(
            "/notifications/silences",
            &json!({"match": {"field": "module", "op": "eq", "value": "db"},
                    "endsAt": ends, "comment": "drill", "createdBy": "alice"})
            .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created.json["state"], "active");
    let id = created.json["id"].as_str().expect("id").to_owned();
    let later = (Utc::now() + Duration::hours(3)).to_rfc3339();
    let patched = app
        .patch(
            &format!("/notifications/silences/{id}"),
            &json!({"endsAt": later, "comment": "drill overran"}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(patched.json["comment"], "drill overran");
    let deleted = app
        .delete(&format!("/notifications/silences/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(deleted.json["state"], "expired");
    let listed = app
        .get("/notifications/silences?state=expired")
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.json["items"][0]["id"], id.as_str());
    app.patch(
        &format!("/notifications/silences/{id}"),
        r#"{"comment":"too late"}"#,
    )
    .await
    .expect_error(StatusCode::CONFLICT);
    // Another org's silence is unknown.
    let (other_org, other_key) = app.new_org("Other").await;
    let a = app
        .send(
            "GET",
            &format!("/api/v1/orgs/{other_org}/notifications/silences/{id}"),
            &[("x-api-key", other_key.as_str())],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
}

#[tokio::test]
async fn silences_are_created_extended_and_expired_on_the_embedded_store() {
    silence_lifecycle(TestApp::local().await).await;
}

#[tokio::test]
async fn silences_are_created_extended_and_expired_on_dynamodb() {
    silence_lifecycle(dynamodb_app().await).await;
}

#[tokio::test]
async fn bad_silences_name_the_offending_field() {
    let app = TestApp::local().await;
    let ends = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let too_long = (Utc::now() + Duration::days(31)).to_rfc3339();
    let base = json!({"match": {"field": "module", "op": "eq", "value": "db"},
                      "endsAt": ends, "comment": "drill", "createdBy": "alice"});
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut b = base.clone();
        f(&mut b);
        b.to_string()
    };
    for (body, field) in [
        (
            with(&|b| {
                b.as_object_mut().expect("object").remove("endsAt");
            }),
            "endsAt",
        ),
        (with(&|b| b["endsAt"] = json!(too_long)), "endsAt"),
        (with(&|b| b["endsAt"] = json!("tomorrow")), "endsAt"),
        (
            with(&|b| b["match"] = json!({"all": [{"field": "type", "op": "nope", "value": 1}]})),
            "match.all[0].op",
        ),
        (
            with(&|b| {
                b.as_object_mut().expect("object").remove("match");
            }),
            "match",
        ),
        (
            with(&|b| b["ruleKeys"] = json!(["no-such-rule"])),
            "ruleKeys[0]",
        ),
        (
            with(&|b| b["channelIds"] = json!([uuid::Uuid::now_v7().to_string()])),
            "channelIds[0]",
        ),
        (
            with(&|b| {
                b.as_object_mut().expect("object").remove("createdBy");
            }),
            "createdBy",
        ),
    ] {
        let a = app
            .post("/notifications/silences", &body)
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{body}: {}", a.text);
    }
    app.get("/notifications/silences/not-a-uuid")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    let a = app
        .get("/notifications/silences?state=gone")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("state"));
}

#[tokio::test]
async fn bad_alert_input_names_the_offending_field() {
    let app = TestApp::local().await;
    // An action outside the three.
    let a = app
        .post(
            "/events",
            r#"{"type":"disk.full","module":"ops","dedupKey":"k","action":"close"}"#,
        )
        .await;
    assert!(a.status.is_client_error(), "{}", a.text);
    assert_eq!(a.field(), Some("action"), "{}", a.text);
    // In a batch, the bad entry's error and the rest accepted.
    let long = "k".repeat(256);
    let a = app
        .post(
            "/events",
            &json!([
                {"type": "disk.full", "module": "ops", "dedupKey": "disk.full:web-1"},
                {"type": "disk.full", "module": "ops", "dedupKey": long},
            ])
            .to_string(),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(a.json["accepted"], 1, "{}", a.text);
    assert_eq!(
        a.json["items"][1]["error"]["field"], "[1].dedupKey",
        "{}",
        a.text
    );
    // Acknowledge and resolve need a key: on the event, or from a matching rule's template.
    let a = app
        .post(
            "/events",
            r#"{"type":"disk.full","module":"ops","properties":{"host":"web-1"},"action":"resolve"}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("dedupKey"), "{}", a.text);
    let channel = app.in_app_channel("feed").await;
    app.post(
        "/notifications/rules",
        &json!({"key": "disk.full", "channelIds": [channel],
                "alerting": {"dedupKey": "{{type}}:{{properties.host}}"}})
        .to_string(),
    )
    .await
    .expect(StatusCode::CREATED);
    let a = app
        .post(
            "/events",
            &json!([
                {"type": "disk.full", "module": "ops", "properties": {"host": "web-1"}, "action": "resolve"},
                {"type": "disk.full", "module": "ops", "action": "acknowledge"},
            ])
            .to_string(),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        a.json["accepted"], 1,
        "the template gives the first a key: {}",
        a.text
    );
    assert_eq!(
        a.json["items"][1]["error"]["field"], "[1].dedupKey",
        "{}",
        a.text
    );
    // A rule's alerting block is checked at write time.
    for (alerting, field) in [
        (json!({"dedupKey": "{{properties.}}"}), "alerting.dedupKey"),
        (
            json!({"autoResolveSeconds": 0}),
            "alerting.autoResolveSeconds",
        ),
    ] {
        let a = app
            .post(
                "/notifications/rules",
                &json!({"key": "disk.full.2", "channelIds": [channel], "alerting": alerting})
                    .to_string(),
            )
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{}", a.text);
    }
    let a = app
        .get("/notifications/alerts?state=open")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("state"));
    let a = app
        .post("/notifications/alerts/nope/acknowledge", r#"{"by":""}"#)
        .await;
    assert!(a.status.is_client_error(), "{}", a.text);
}
