//! The same API over the DynamoDB engine (the emulator at `HERALD_TEST_AWS_ENDPOINT`, a table per
//! test): the repositories' transactions, condition checks and cursors behave as on the embedded
//! engine.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_shared::store::dynamodb::{DynamoStore, create_table};
use herald_shared::store::{Store, keys};
use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

async fn app() -> TestApp {
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("herald-api-{}", uuid::Uuid::new_v4().simple());
    create_table(&client, &table)
        .await
        .expect("create table on the emulator");
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, &table));
    TestApp::local_over(store).await
}

#[tokio::test]
async fn over_dynamodb_channels_and_rules_keep_their_references_consistent() {
    let app = app().await;
    let channel = app
        .channel(r#"{ "kind": "push", "name": "transactional-push", "frequencyCap": { "perUser": 5, "windowHours": 24 } }"#)
        .await;
    let rule =
        json!({"key": "welcome", "channelIds": [channel], "quietHoursTz": "America/New_York"})
            .to_string();
    app.post("/notifications/rules", &rule)
        .await
        .expect(StatusCode::CREATED);
    let dup = app
        .post("/notifications/rules", &rule)
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(dup.field(), Some("key"));
    let unknown =
        json!({"key": "other", "channelIds": ["0190aaaa-0000-7000-8000-000000000000"]}).to_string();
    let a = app
        .post("/notifications/rules", &unknown)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("channelIds[0]"));

    let a = app
        .delete(&format!("/notifications/channels/{channel}"))
        .await
        .expect_error(StatusCode::CONFLICT);
    assert!(a.message().contains("welcome"), "{}", a.message());
    app.delete("/notifications/rules/welcome")
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete(&format!("/notifications/channels/{channel}"))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&format!("/notifications/channels/{channel}"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn over_dynamodb_pagination_and_keys_work() {
    let app = app().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.in_app_channel(&format!("feed-{i}")).await);
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let q = next
            .as_ref()
            .map_or("/notifications/channels?limit=2".to_owned(), |c| {
                format!("/notifications/channels?limit=2&cursor={c}")
            });
        let page = app.get(&q).await.expect(StatusCode::OK);
        seen.extend(
            page.json["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_owned()),
        );
        next = page.json["nextCursor"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 5);

    let (_, other_key) = app.new_org("Other").await;
    app.send(
        "GET",
        &app.path("/notifications/channels"),
        &[("x-api-key", &other_key)],
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND);
}

/// A rule's email delivery to `user` of `org`, created now.
fn delivery(
    org: herald_core::domain::OrgId,
    channel: &str,
    user: &str,
) -> herald_core::domain::delivery::Delivery {
    use herald_core::domain::delivery::{Delivery, DeliveryStatus, Trigger};
    use herald_core::domain::{DeliveryId, EventId, RuleKey, UserId};
    let now = chrono::Utc::now();
    Delivery {
        id: DeliveryId::new(),
        org_id: org,
        event_id: EventId::generate(),
        event_type: "digest.ready".into(),
        rule_key: Some(RuleKey::parse("digest").expect("key")),
        channel_id: channel.parse().expect("channel id"),
        channel_kind: herald_core::domain::channel::ChannelKind::Email,
        recipient: Some(UserId::parse(user).expect("user")),
        trigger: Trigger::Event,
        status: DeliveryStatus::Queued,
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
    }
}

#[tokio::test]
async fn over_dynamodb_caps_hold_and_stats_and_engagement_are_counted() {
    use herald_core::delivery::caps;
    use herald_core::domain::channel::FrequencyCap;
    use herald_core::domain::delivery::{DeliveryStatus, Engagement, EngagementKind};
    use herald_shared::repo::deliveries::{self, CappedCreate};
    use herald_shared::repo::stats;

    let app = app().await;
    let org: herald_core::domain::OrgId = app.org_id.parse().expect("org id");
    let channel = app.channel(r#"{"kind":"email","name":"digests"}"#).await;
    let store = app.store.as_ref();
    let now = chrono::Utc::now();
    let ttl = now.timestamp() + 3600;

    // A cap of 3 per day for one user: the fourth delivery is refused, another user is not.
    let cap = FrequencyCap {
        per_user: 3,
        window_hours: 24,
    };
    let window = caps::window(cap, now);
    let counter =
        |user: &str| keys::cap_counter(org, channel.parse().expect("id"), user, cap, &window);
    let mut created = Vec::new();
    for _ in 0..4 {
        let d = delivery(org, &channel, "alice");
        let outcome = deliveries::create_within_cap(
            store,
            &d,
            ttl,
            &counter("alice"),
            cap.per_user,
            window.end.timestamp(),
        )
        .await
        .expect("create within cap");
        if outcome == CappedCreate::Created {
            created.push(d);
        }
    }
    assert_eq!(created.len(), 3, "exactly perUser pass");
    let bob = delivery(org, &channel, "bob");
    assert_eq!(
        deliveries::create_within_cap(store, &bob, ttl, &counter("bob"), 3, window.end.timestamp())
            .await
            .expect("bob"),
        CappedCreate::Created
    );
    // The same delivery again (a redelivered match message) is neither created nor counted.
    assert!(matches!(
        deliveries::create_within_cap(store, &bob, ttl, &counter("bob"), 3, window.end.timestamp())
            .await
            .expect("bob again"),
        CappedCreate::Exists(_)
    ));

    // Finished deliveries count in the stats; an open counts once per delivery.
    for d in &created {
        let mut sent = d.clone();
        sent.status = DeliveryStatus::Sent;
        stats::record(store, &sent).await.expect("count");
    }
    for _ in 0..2 {
        let open = Engagement {
            kind: EngagementKind::Opened,
            at: now,
            url: None,
        };
        deliveries::record_engagement(store, org, created[0].id, open)
            .await
            .expect("engagement");
    }
    let a = app
        .get("/notifications/logs/stats?groupBy=rule")
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["totals"]["counts"]["sent"], 3, "{}", a.text);
    assert_eq!(a.json["totals"]["counts"]["opened"], 1, "{}", a.text);
    assert_eq!(a.json["groups"][0]["key"], "digest");
}

#[tokio::test]
async fn over_dynamodb_the_suppression_list_pages_refuses_and_removes() {
    let app = app().await;
    for body in [
        r#"{"kind":"email","address":"B@example.com"}"#,
        r#"{"kind":"email","address":"a@example.com"}"#,
        r#"{"kind":"sms","address":"+14155550123"}"#,
    ] {
        app.post("/notifications/suppressions", body)
            .await
            .expect(StatusCode::CREATED);
    }
    app.post(
        "/notifications/suppressions",
        r#"{"kind":"email","address":"b@EXAMPLE.com"}"#,
    )
    .await
    .expect(StatusCode::OK);
    let mut seen = Vec::new();
    let mut path = "/notifications/suppressions?limit=2".to_owned();
    loop {
        let page = app.get(&path).await.expect(StatusCode::OK);
        for item in page.json["items"].as_array().unwrap() {
            seen.push(item["address"].as_str().unwrap().to_owned());
        }
        match page.json["nextCursor"].as_str() {
            Some(c) => path = format!("/notifications/suppressions?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a@example.com", "b@example.com", "+14155550123"]);
    let emails = app
        .get("/notifications/suppressions?kind=email")
        .await
        .expect(StatusCode::OK);
    assert_eq!(emails.json["items"].as_array().unwrap().len(), 2);
    app.delete("/notifications/suppressions/email/A@example.com")
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete("/notifications/suppressions/email/a@example.com")
        .await
        .expect_error(StatusCode::NOT_FOUND);
}
