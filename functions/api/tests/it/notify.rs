//! Users, the outbox and delivery stats, as a client sees them.

use chrono::Utc;
use herald_core::domain::delivery::DeliveryStatus;
use herald_core::domain::{ChannelId, OrgId, RuleKey};
use herald_shared::repo::stats;
use http::StatusCode;

use crate::support::TestApp;

#[tokio::test]
async fn a_user_profile_is_stored_read_and_erased() {
    let app = TestApp::local().await;
    app.get("/users/alice")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    let put = app
        .call(
            "PUT",
            "/users/alice",
            Some(r#"{"email":"alice@example.com","phone":"+14155550123","pushTokens":["t1"],"timezone":"Europe/Paris","optOuts":["sms"]}"#),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(put.json["email"], "alice@example.com");
    let got = app.get("/users/alice").await.expect(StatusCode::OK);
    assert_eq!(got.json["userId"], "alice");
    assert_eq!(got.json["phone"], "+14155550123");
    assert_eq!(got.json["pushTokens"][0], "t1");
    assert_eq!(got.json["timezone"], "Europe/Paris");
    assert_eq!(got.json["optOuts"][0], "sms");
    app.delete("/users/alice")
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get("/users/alice")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    app.delete("/users/alice")
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn opt_outs_must_be_channel_ids_or_user_facing_kinds() {
    let app = TestApp::local().await;
    for (bad, field) in [
        (r#"["email","anything"]"#, "optOuts[1]"),
        (r#"["slack"]"#, "optOuts[0]"),
        (r#"["EMAIL"]"#, "optOuts[0]"),
    ] {
        let a = app
            .call(
                "PUT",
                "/users/alice",
                Some(&format!(r#"{{"optOuts":{bad}}}"#)),
            )
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{bad}: {}", a.text);
    }
    let ok = app
        .call(
            "PUT",
            "/users/alice",
            Some(r#"{"optOuts":["in_app","0190AAAA-0000-7000-8000-000000000000"]}"#),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ok.json["optOuts"],
        serde_json::json!(["in_app", "0190aaaa-0000-7000-8000-000000000000"]),
        "a channel id is kept in the form deliveries are compared with"
    );
}

#[tokio::test]
async fn bad_contact_points_and_zones_are_refused_by_name() {
    let app = TestApp::local().await;
    let a = app
        .call("PUT", "/users/bob", Some(r#"{"phone":"555-0123"}"#))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("phone"));
    assert!(a.message().contains("E.164"));
    let a = app
        .call("PUT", "/users/bob", Some(r#"{"timezone":"Mars/Olympus"}"#))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("timezone"));
    let a = app
        .call("PUT", "/users/bob", Some(r#"{"email":"not an address"}"#))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("email"));
}

#[tokio::test]
async fn another_orgs_user_is_not_found() {
    let app = TestApp::local().await;
    app.call("PUT", "/users/alice", Some(r#"{"email":"a@example.com"}"#))
        .await
        .expect(StatusCode::OK);
    let (other_org, other_key) = app.new_org("Other").await;
    app.send(
        "GET",
        &format!("/api/v1/orgs/{other_org}/users/alice"),
        &[("x-api-key", other_key.as_str())],
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_empty_outbox_lists_nothing() {
    let app = TestApp::local().await;
    let a = app.get("/outbox").await.expect(StatusCode::OK);
    assert_eq!(a.json["items"].as_array().map(Vec::len), Some(0));
    app.get("/outbox?cursor=nonsense")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stats_group_the_counters_by_channel_rule_and_day() {
    let app = TestApp::local().await;
    let org: OrgId = app.org_id.parse().expect("org id");
    let ch = ChannelId::new();
    let rule = RuleKey::parse("deploy").expect("key");
    let today = Utc::now().date_naive();
    let store = app.store.as_ref();
    for (status, n, latency) in [
        (DeliveryStatus::Delivered, 9, Some(120)),
        (DeliveryStatus::Failed, 1, Some(40_000)),
        (DeliveryStatus::Suppressed, 2, None),
    ] {
        for _ in 0..n {
            let attempts = u32::from(latency.is_some());
            let d = stats::deltas(status, attempts, latency);
            stats::add(store, org, today, ch, Some(&rule), &d)
                .await
                .expect("add");
        }
    }
    // An older day outside the default 7 days.
    let old = today - chrono::Duration::days(30);
    stats::add(
        store,
        org,
        old,
        ch,
        Some(&rule),
        &stats::deltas(DeliveryStatus::Delivered, 1, Some(10)),
    )
    .await
    .expect("add");

    let a = app
        .get("/notifications/logs/stats")
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["groupBy"], "channel");
    assert_eq!(a.json["groups"][0]["key"], ch.to_string());
    let totals = &a.json["totals"];
    assert_eq!(totals["counts"]["delivered"], 9);
    assert_eq!(totals["counts"]["failed"], 1);
    assert_eq!(totals["counts"]["suppressed"], 2);
    assert_eq!(totals["successRate"], 0.9);
    assert_eq!(totals["latencyMs"]["p50"], 250);
    assert_eq!(totals["latencyMs"]["p95"], 60_000);

    let a = app
        .get("/notifications/logs/stats?groupBy=rule")
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["groups"][0]["key"], "deploy");
    assert_eq!(a.json["groups"][0]["ruleKey"], "deploy");
    assert!(a.json["groups"][0].get("channelName").is_none());
    let from = old.format("%Y-%m-%d").to_string();
    let a = app
        .get(&format!(
            "/notifications/logs/stats?groupBy=day&from={from}"
        ))
        .await
        .expect(StatusCode::OK);
    let groups = a.json["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["key"], from);
    assert!(groups[0].get("channelName").is_none() && groups[0].get("ruleKey").is_none());
    assert_eq!(a.json["totals"]["counts"]["delivered"], 10);
}

#[tokio::test]
async fn stats_by_channel_name_each_channel_and_show_a_deleted_one_as_its_id() {
    let app = TestApp::local().await;
    let org: OrgId = app.org_id.parse().expect("org id");
    let live: ChannelId = app
        .channel(r#"{"kind":"email","name":"Customers"}"#)
        .await
        .parse()
        .expect("channel id");
    let gone: ChannelId = app
        .channel(r#"{"kind":"email","name":"Old customers"}"#)
        .await
        .parse()
        .expect("channel id");
    let today = Utc::now().date_naive();
    for ch in [live, gone] {
        stats::add(
            app.store.as_ref(),
            org,
            today,
            ch,
            None,
            &stats::deltas(DeliveryStatus::Delivered, 1, Some(10)),
        )
        .await
        .expect("add");
    }
    app.delete(&format!("/notifications/channels/{gone}"))
        .await
        .expect(StatusCode::NO_CONTENT);

    let a = app
        .get("/notifications/logs/stats")
        .await
        .expect(StatusCode::OK);
    let groups = a.json["groups"].as_array().expect("groups");
    let group = |id: ChannelId| {
        groups
            .iter()
            .find(|g| g["key"] == id.to_string())
            .expect("a group per channel")
    };
    assert_eq!(group(live)["channelName"], "Customers");
    let deleted = group(gone);
    assert!(deleted["channelName"].is_null(), "{deleted}");
    assert!(
        deleted.get("channelName").is_some(),
        "named null, not left out"
    );
}

#[tokio::test]
async fn a_retrying_delivery_in_the_logs_says_when_its_next_attempt_is_due() {
    use herald_core::domain::channel::ChannelKind;
    use herald_core::domain::delivery::{Delivery, Trigger};
    use herald_core::domain::{DeliveryId, EventId};
    use herald_shared::repo::deliveries;

    let app = TestApp::local().await;
    let org: OrgId = app.org_id.parse().expect("org id");
    let channel = app
        .channel(r#"{"kind":"slack","name":"ops","config":{"webhookUrl":"https://hooks.slack.com/services/T/B/x"}}"#)
        .await;
    let now = Utc::now();
    let next: chrono::DateTime<Utc> = "2031-01-02T03:04:05Z".parse().expect("time");
    let delivery = Delivery {
        id: DeliveryId::new(),
        org_id: org,
        event_id: EventId::parse("evt-retrying").expect("id"),
        event_type: "disk.full".into(),
        rule_key: Some(RuleKey::parse("disk").expect("key")),
        channel_id: channel.parse().expect("channel id"),
        channel_kind: ChannelKind::Slack,
        recipient: None,
        trigger: Trigger::Event,
        status: DeliveryStatus::Queued,
        reason: Some("attempt 1 failed (503: unavailable); retrying in 226s".into()),
        attempts: Vec::new(),
        engagement: Vec::new(),
        next_attempt_at: Some(next),
        cap_slot: None,
        recovered: None,
        event_ids: Vec::new(),
        event_count: None,
        created_at: now,
        updated_at: now,
    };
    deliveries::create(
        app.store.as_ref(),
        &delivery,
        (now + chrono::Duration::days(1)).timestamp(),
    )
    .await
    .expect("create");
    for path in [
        "/notifications/logs".to_owned(),
        format!("/notifications/channels/{channel}/logs"),
    ] {
        let logs = app.get(&path).await.expect(StatusCode::OK);
        let row = &logs.json["items"][0];
        assert_eq!(row["status"], "queued", "{path}");
        assert_eq!(row["nextAttemptAt"], "2031-01-02T03:04:05Z", "{path}");
    }
}

#[tokio::test]
async fn stats_refuse_bad_parameters_and_leave_the_log_route_alone() {
    let app = TestApp::local().await;
    let a = app
        .get("/notifications/logs/stats?groupBy=month")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("groupBy"));
    app.get("/notifications/logs/stats?from=2026-05-02&to=2026-05-01")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    app.get("/notifications/logs/stats?from=2020-01-01&to=2026-01-01")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    let logs = app.get("/notifications/logs").await.expect(StatusCode::OK);
    assert!(logs.json["items"].is_array());
}

/// `herald serve`'s wiring: HTTP for Slack and webhooks, the outbox for the rest.
async fn serve_like() -> TestApp {
    use std::sync::Arc;

    use herald_shared::delivery::{HttpSender, OutboxSender, Senders};
    TestApp::with_sender(
        herald_api::ApiConfig {
            default_outbox: true,
            admin_key: Some(herald_api::AdminKey::new(crate::support::ADMIN_KEY)),
            ..herald_api::ApiConfig::default()
        },
        |store| {
            Arc::new(Senders::new(
                Arc::new(HttpSender::new(Default::default()).expect("client")),
                Some(Arc::new(OutboxSender::new(
                    store,
                    chrono::Duration::days(1),
                ))),
            ))
        },
    )
    .await
}

#[tokio::test]
async fn the_test_button_of_an_email_channel_fills_the_outbox() {
    let app = serve_like().await;
    let id = app.channel(r#"{"kind":"email","name":"Customers"}"#).await;
    let test = format!("/notifications/channels/{id}/test");
    let a = app
        .post(&test, r#"{"to":"alice@example.com"}"#)
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["ok"], true, "{}", a.text);
    assert!(a.json["message"].as_str().unwrap().contains("local outbox"));
    let out = app.get("/outbox").await.expect(StatusCode::OK);
    assert_eq!(out.json["items"][0]["to"][0], "alice@example.com");
    assert_eq!(out.json["items"][0]["title"], "herald.test");
    let logs = app.get("/notifications/logs").await.expect(StatusCode::OK);
    assert_eq!(logs.json["items"][0]["status"], "sent");
    assert!(
        logs.json["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("local outbox")
    );

    // A user id: the stored profile's address.
    app.call("PUT", "/users/bob", Some(r#"{"email":"bob@example.com"}"#))
        .await
        .expect(StatusCode::OK);
    app.post(&test, r#"{"to":"bob"}"#)
        .await
        .expect(StatusCode::OK);
    let out = app.get("/outbox").await.expect(StatusCode::OK);
    assert_eq!(out.json["items"][0]["to"][0], "bob@example.com");

    // Nobody to send to: a refused attempt that says why.
    let a = app.post(&test, "{}").await.expect(StatusCode::OK);
    assert_eq!(a.json["ok"], false);
    assert!(
        a.json["message"]
            .as_str()
            .unwrap()
            .contains("no email address")
    );
}

/// The answer's `ok` and `message` to a test of `channel` sent to `to`.
async fn test_to(app: &TestApp, channel: &str, to: &str) -> (bool, String) {
    let a = app
        .post(
            &format!("/notifications/channels/{channel}/test"),
            &serde_json::json!({ "to": to }).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    (
        a.json["ok"].as_bool().expect("ok"),
        a.json["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_test_button_of_a_push_channel_takes_a_token_or_a_user_and_explains_an_email() {
    let app = serve_like().await;
    let push = app.channel(r#"{"kind":"push","name":"app"}"#).await;
    assert_eq!(
        test_to(&app, &push, "alice@example.com").await,
        (
            false,
            "`alice@example.com` looks like an email address; a push channel's `to` is a push \
             token or a user id with a stored push token"
                .to_owned()
        )
    );
    let token = "a3f1c9e2b4d6a8f0a3f1c9e2b4d6a8f0a3f1c9e2b4d6a8f0a3f1c9e2b4d6a8f0";
    let (ok, message) = test_to(&app, &push, token).await;
    assert!(ok, "{message}");
    let out = app.get("/outbox").await.expect(StatusCode::OK);
    assert_eq!(out.json["items"][0]["to"][0], token);

    app.call(
        "PUT",
        "/users/carol",
        Some(r#"{"pushTokens":["tok-carol"]}"#),
    )
    .await
    .expect(StatusCode::OK);
    let (ok, message) = test_to(&app, &push, "carol").await;
    assert!(ok, "{message}");
    let out = app.get("/outbox").await.expect(StatusCode::OK);
    assert_eq!(out.json["items"][0]["to"][0], "tok-carol");

    let (ok, message) = test_to(&app, &push, "dave").await;
    assert!(!ok);
    assert_eq!(
        message,
        "`dave` is neither a user with a stored profile nor a push token (tokens are 32 \
         characters or more); a push channel's `to` is a push token or a user id with a stored \
         push token"
    );
    let (ok, message) = test_to(&app, &push, "+14155550123").await;
    assert!(!ok);
    assert!(message.starts_with("`+14155550123` looks like a phone number; a push channel's"));
}

#[tokio::test]
async fn the_test_button_of_sms_and_email_channels_says_what_to_was_expected() {
    let app = serve_like().await;
    let sms = app.channel(r#"{"kind":"sms","name":"texts"}"#).await;
    let (ok, message) = test_to(&app, &sms, "+14155550123").await;
    assert!(ok, "{message}");
    assert_eq!(
        test_to(&app, &sms, "alice@example.com").await,
        (
            false,
            "`alice@example.com` looks like an email address; an SMS channel's `to` is an E.164 \
             phone number (e.g. +14155550123) or a user id with a stored phone number"
                .to_owned()
        )
    );
    let (ok, message) = test_to(&app, &sms, "415 555 0123").await;
    assert!(!ok);
    assert!(
        message.starts_with("`415 555 0123` is not an E.164 phone number (e.g. +14155550123);"),
        "{message}"
    );

    let email = app.channel(r#"{"kind":"email","name":"Customers"}"#).await;
    let (ok, message) = test_to(&app, &email, "+14155550123").await;
    assert!(!ok);
    assert!(
        message.starts_with(
            "`+14155550123` looks like a phone number; an email channel's `to` is an email address"
        ),
        "{message}"
    );
    app.call("PUT", "/users/erin", Some(r#"{"phone":"+14155550123"}"#))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        test_to(&app, &email, "erin").await,
        (
            false,
            "user `erin` has no stored email address; an email channel's `to` is an email \
             address or a user id with a stored email address"
                .to_owned()
        )
    );
    // A user id shaped like an email address is still a user when a profile is on record.
    app.call(
        "PUT",
        "/users/frank@corp.test",
        Some(r#"{"phone":"+14155550199"}"#),
    )
    .await
    .expect(StatusCode::OK);
    let (ok, message) = test_to(&app, &sms, "frank@corp.test").await;
    assert!(ok, "{message}");
}

/// `herald serve`'s wiring with email tracking under `http://herald.test`.
async fn tracked_serve_like() -> (TestApp, herald_core::delivery::tracking::Tracker) {
    use std::sync::Arc;

    use herald_core::delivery::format::email::EmailRenderer;
    use herald_core::delivery::tracking::{Tracker, TrackingKey};
    use herald_shared::delivery::{HttpSender, OutboxSender, Senders};
    let tracker = Tracker::new(
        "http://herald.test".parse().expect("url"),
        TrackingKey::derive(b"tracking tests"),
    );
    let for_sender = tracker.clone();
    let app = TestApp::with_sender(
        herald_api::ApiConfig {
            default_outbox: true,
            admin_key: Some(herald_api::AdminKey::new(crate::support::ADMIN_KEY)),
            tracking_key: Some(tracker.key().clone()),
            ..herald_api::ApiConfig::default()
        },
        |store| {
            Arc::new(Senders::new(
                Arc::new(HttpSender::new(Default::default()).expect("client")),
                Some(Arc::new(
                    OutboxSender::new(store, chrono::Duration::days(1))
                        .with_email_renderer(EmailRenderer::new(Some(for_sender))),
                )),
            ))
        },
    )
    .await;
    (app, tracker)
}

#[tokio::test]
async fn email_opens_and_clicks_are_tracked_on_the_delivery_and_counted_once() {
    use herald_core::domain::DeliveryId;
    use herald_core::domain::EventId;
    use herald_core::domain::channel::ChannelKind;
    use herald_core::domain::delivery::{Delivery, Trigger};
    use herald_shared::repo::deliveries;

    let (app, tracker) = tracked_serve_like().await;
    let org: OrgId = app.org_id.parse().expect("org id");

    // The email a provider would send carries the open pixel.
    let channel = app.channel(r#"{"kind":"email","name":"Customers"}"#).await;
    app.post(
        &format!("/notifications/channels/{channel}/test"),
        r#"{"to":"alice@example.com"}"#,
    )
    .await
    .expect(StatusCode::OK);
    let out = app.get("/outbox").await.expect(StatusCode::OK);
    let html = out.json["items"][0]["email"]["html"]
        .as_str()
        .expect("html");
    let pixel = html
        .split("<img src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a tracking pixel");
    let pixel_path = pixel.strip_prefix("http://herald.test").expect("our URL");
    let a = app.send("GET", pixel_path, &[], None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "image/gif");
    let logs = app.get("/notifications/logs").await.expect(StatusCode::OK);
    assert_eq!(logs.json["items"][0]["engagement"][0]["kind"], "opened");

    // A rule's delivery: opens and clicks reach the stats, once per delivery.
    let now = Utc::now();
    let delivery = Delivery {
        id: DeliveryId::new(),
        org_id: org,
        event_id: EventId::parse("evt-tracked").expect("id"),
        event_type: "invoice.overdue".into(),
        rule_key: Some(RuleKey::parse("overdue").expect("key")),
        channel_id: channel.parse().expect("channel id"),
        channel_kind: ChannelKind::Email,
        recipient: None,
        trigger: Trigger::Event,
        status: DeliveryStatus::Sent,
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
    deliveries::create(app.store.as_ref(), &delivery, now.timestamp() + 3600)
        .await
        .expect("create");
    let open = tracker.open_url(org, delivery.id);
    let target = "https://app.example.com/invoices/42?tab=pay"
        .parse()
        .expect("url");
    let click = tracker
        .click_url(org, delivery.id, &target)
        .expect("click url");
    for _ in 0..3 {
        let a = app.send("GET", open.path(), &[], None).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    for _ in 0..2 {
        let a = app.send("GET", click.path(), &[], None).await;
        assert_eq!(a.status, StatusCode::FOUND);
        assert_eq!(a.headers["location"], target.as_str());
    }

    let logs = app
        .get(&format!(
            "/notifications/logs?channelId={channel}&ruleKey=overdue"
        ))
        .await
        .expect(StatusCode::OK);
    let engagement = &logs.json["items"][0]["engagement"];
    assert_eq!(
        engagement.as_array().expect("list").len(),
        2,
        "{engagement}"
    );
    assert_eq!(engagement[0]["kind"], "opened");
    assert_eq!(engagement[1]["kind"], "clicked");
    assert_eq!(engagement[1]["url"], target.as_str());
    let stats = app
        .get("/notifications/logs/stats?groupBy=rule")
        .await
        .expect(StatusCode::OK);
    assert_eq!(stats.json["totals"]["counts"]["opened"], 1);
    assert_eq!(stats.json["totals"]["counts"]["clicked"], 1);

    // A forged or altered token is an unknown link, and no redirect.
    let forged = format!("{}x", click.path());
    let a = app.send("GET", &forged, &[], None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = app.send("GET", "/t/c/nonsense", &[], None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}
