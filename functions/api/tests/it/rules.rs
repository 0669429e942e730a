use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

/// The product documentation's rule, verbatim but for the channel id.
fn seed_rule(channel_id: &str) -> String {
    format!(
        r#"{{
"key": "welcome",
"channelIds": ["{channel_id}"],
"frequencyCap": {{ "perUser": 1, "windowHours": 24 }},
"quietHoursTz": "America/New_York"
}}"#
    )
}

#[tokio::test]
async fn the_documented_rule_create_succeeds_with_a_form_content_type() {
    let app = TestApp::local().await;
    let channel = app
        .channel(r#"{ "kind": "push", "name": "transactional-push" }"#)
        .await;
    let a = app
        .post("/notifications/rules", &seed_rule(&channel))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(a.json["key"], "welcome");
    assert_eq!(a.json["channelIds"], json!([channel]));
    assert_eq!(
        a.json["frequencyCap"],
        json!({"perUser": 1, "windowHours": 24})
    );
    assert_eq!(a.json["quietHoursTz"], "America/New_York");
    assert_eq!(
        a.json["quietHours"],
        json!({"start": "22:00", "end": "08:00"})
    );
    assert_eq!(a.json["enabled"], true);
    assert!(a.json["match"].is_null());

    let got = app
        .get("/notifications/rules/welcome")
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.json, a.json);
    let list = app.get("/notifications/rules").await.expect(StatusCode::OK);
    assert_eq!(list.json["items"], json!([a.json]));
}

#[tokio::test]
async fn a_duplicate_rule_key_is_a_conflict() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    app.post("/notifications/rules", &seed_rule(&channel))
        .await
        .expect(StatusCode::CREATED);
    let a = app
        .post("/notifications/rules", &seed_rule(&channel))
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(a.field(), Some("key"));
    assert!(a.message().contains("welcome"), "{}", a.message());
}

#[tokio::test]
async fn an_unknown_channel_id_is_named_by_its_position() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let body =
        json!({"key": "welcome", "channelIds": [channel, "0190aaaa-0000-7000-8000-000000000000"]})
            .to_string();
    let a = app
        .post("/notifications/rules", &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("channelIds[1]"));
    let body = json!({"key": "welcome", "channelIds": ["nope"]}).to_string();
    let a = app
        .post("/notifications/rules", &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("channelIds[0]"));
}

#[tokio::test]
async fn another_orgs_channel_is_an_unknown_channel() {
    let app = TestApp::local().await;
    let (other_org, other_key) = app.new_org("Other").await;
    let other = TestApp {
        org_id: other_org,
        api_key: other_key,
        ..app.clone()
    };
    let theirs = other.in_app_channel("theirs").await;
    let a = app
        .post(
            "/notifications/rules",
            &json!({"key": "k", "channelIds": [theirs]}).to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("channelIds[0]"));
}

#[tokio::test]
async fn a_bad_time_zone_names_quiet_hours_tz() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let body =
        json!({"key": "welcome", "channelIds": [channel], "quietHoursTz": "Mars/Olympus_Mons"})
            .to_string();
    let a = app
        .post("/notifications/rules", &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("quietHoursTz"));
    let body = json!({"key": "welcome", "channelIds": [channel], "quietHoursTz": "UTC", "quietHours": {"start": "25:00", "end": "08:00"}}).to_string();
    let a = app
        .post("/notifications/rules", &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("quietHours.start"));
}

#[tokio::test]
async fn an_invalid_matcher_is_refused_with_its_path() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let body = json!({
        "key": "bounces",
        "channelIds": [channel],
        "match": {"all": [{"field": "type", "op": "eq", "value": "email.bounced"}, {"field": "module", "op": "sounds_like", "value": "x"}]}
    })
    .to_string();
    let a = app
        .post("/notifications/rules", &body)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("match.all[1].op"), "{}", a.text);
    app.get("/notifications/rules/bounces")
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_valid_matcher_is_stored_and_shown() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let matcher = json!({"all": [{"field": "module", "op": "eq", "value": "email"}, {"field": "type", "op": "prefix", "value": "email."}]});
    let body = json!({"key": "email-all", "channelIds": [channel], "match": matcher}).to_string();
    let a = app
        .post("/notifications/rules", &body)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(a.json["match"], matcher);
}

#[tokio::test]
async fn rules_can_be_updated_and_deleted() {
    let app = TestApp::local().await;
    let a = app.in_app_channel("a").await;
    let b = app.in_app_channel("b").await;
    app.post("/notifications/rules", &seed_rule(&a))
        .await
        .expect(StatusCode::CREATED);
    let p = app
        .patch(
            "/notifications/rules/welcome",
            &json!({"channelIds": [a, b], "quietHoursTz": null, "enabled": false}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(p.json["channelIds"], json!([a, b]));
    assert!(
        p.json["quietHoursTz"].is_null() && p.json["quietHours"].is_null(),
        "{}",
        p.text
    );
    assert_eq!(p.json["enabled"], false);
    assert_eq!(
        p.json["frequencyCap"],
        json!({"perUser": 1, "windowHours": 24}),
        "untouched fields stay"
    );

    let bad = app
        .patch(
            "/notifications/rules/welcome",
            &json!({"channelIds": [a, "0190aaaa-0000-7000-8000-000000000000"]}).to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field(), Some("channelIds[1]"));
    app.patch("/notifications/rules/welcome", r#"{"key":"other"}"#)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);

    app.delete("/notifications/rules/welcome")
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get("/notifications/rules/welcome")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    app.delete("/notifications/rules/welcome")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    app.patch("/notifications/rules/welcome", "{}")
        .await
        .expect_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_rule_change_moves_the_rules_version() {
    let app = TestApp::local().await;
    let org: herald_core::domain::OrgId = app.org_id.parse().expect("org id");
    let rules = herald_shared::repo::Rules::new(app.store.as_ref());
    assert_eq!(rules.version(&org).await.expect("version"), 0);
    let channel = app.in_app_channel("feed").await;
    app.post("/notifications/rules", &seed_rule(&channel))
        .await
        .expect(StatusCode::CREATED);
    let v1 = rules.version(&org).await.expect("version");
    app.patch("/notifications/rules/welcome", r#"{"enabled":false}"#)
        .await
        .expect(StatusCode::OK);
    let v2 = rules.version(&org).await.expect("version");
    app.delete("/notifications/rules/welcome")
        .await
        .expect(StatusCode::NO_CONTENT);
    let v3 = rules.version(&org).await.expect("version");
    assert!(0 < v1 && v1 < v2 && v2 < v3, "{v1} {v2} {v3}");
    // A refused write does not move it.
    app.post(
        "/notifications/rules",
        r#"{"key":"x","channelIds":["0190aaaa-0000-7000-8000-000000000000"]}"#,
    )
    .await;
    assert_eq!(rules.version(&org).await.expect("version"), v3);
}

#[tokio::test]
async fn a_template_with_an_unknown_variable_or_broken_placeholder_is_refused_at_write() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let rule = |template: serde_json::Value| {
        json!({"key": "welcome", "channelIds": [channel], "template": template}).to_string()
    };
    let a = app
        .post(
            "/notifications/rules",
            &rule(json!({"title": "Hi {{ user.name }}"})),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("template.title"));
    assert!(a.message().contains("user.name"), "{}", a.message());

    let a = app
        .post(
            "/notifications/rules",
            &rule(json!({"title": "Hi", "body": "Your {{properties.plan"})),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("template.body"));
    assert!(a.message().contains("unclosed"), "{}", a.message());

    let ok = app
        .post(
            "/notifications/rules",
            &rule(json!({"title": "Welcome {{ properties.name }}", "link": "https://app.example.com/{{id}}"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        ok.json["template"]["title"],
        "Welcome {{ properties.name }}"
    );
}

#[tokio::test]
async fn grouping_fields_out_of_bounds_are_refused_with_their_field() {
    let app = TestApp::local().await;
    let feed = app.in_app_channel("feed").await;
    let channel = app
        .channel(r#"{"kind":"webhook","name":"ops","config":{"url":"https://example.com/hook"}}"#)
        .await;
    let nine: Vec<String> = (0..9).map(|i| format!("properties.p{i}")).collect();
    for (alerting, field) in [
        (
            json!({"groupBy": ["type", "module", "host"]}),
            "alerting.groupBy[2]",
        ),
        (
            json!({"groupBy": ["properties.a..b"]}),
            "alerting.groupBy[0]",
        ),
        (json!({"groupBy": ["type", "type"]}), "alerting.groupBy[1]"),
        (json!({"groupBy": nine}), "alerting.groupBy[8]"),
        (
            json!({"groupBy": [], "groupWaitSeconds": 3601}),
            "alerting.groupWaitSeconds",
        ),
        (
            json!({"groupBy": [], "groupIntervalSeconds": 9}),
            "alerting.groupIntervalSeconds",
        ),
        (
            json!({"groupBy": [], "groupIntervalSeconds": 86401}),
            "alerting.groupIntervalSeconds",
        ),
        (
            json!({"groupBy": [], "repeatIntervalSeconds": 59}),
            "alerting.repeatIntervalSeconds",
        ),
        (
            json!({"groupBy": [], "repeatIntervalSeconds": 604801}),
            "alerting.repeatIntervalSeconds",
        ),
        (
            json!({"groupBy": [], "groupIntervalSeconds": 600, "repeatIntervalSeconds": 300}),
            "alerting.repeatIntervalSeconds",
        ),
        (
            json!({"groupBy": [], "maxAlertsPerMessage": 0}),
            "alerting.maxAlertsPerMessage",
        ),
        (
            json!({"groupBy": [], "maxAlertsPerMessage": 101}),
            "alerting.maxAlertsPerMessage",
        ),
        (json!({"groupWaitSeconds": 10}), "alerting.groupWaitSeconds"),
    ] {
        let a = app
            .post(
                "/notifications/rules",
                &json!({"key": "disk.full", "channelIds": [channel], "alerting": alerting})
                    .to_string(),
            )
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{alerting}: {}", a.text);
    }
    // A grouped rule needs a channel that takes group messages.
    let a = app
        .post(
            "/notifications/rules",
            &json!({"key": "disk.full", "channelIds": [feed], "alerting": {"groupBy": []}})
                .to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("alerting.groupBy"), "{}", a.text);
    // A grouped rule is stored with its windows' defaults filled in.
    let a = app
        .post(
            "/notifications/rules",
            &json!({"key": "disk.full", "channelIds": [channel],
                    "alerting": {"groupBy": ["type", "properties.cluster"], "groupWaitSeconds": 0}})
            .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    let alerting = &a.json["alerting"];
    assert_eq!(alerting["groupBy"], json!(["type", "properties.cluster"]));
    assert_eq!(alerting["groupWaitSeconds"], 0);
    assert_eq!(alerting["groupIntervalSeconds"], 300);
    assert_eq!(alerting["repeatIntervalSeconds"], 14400);
    assert_eq!(alerting["maxAlertsPerMessage"], 20);
}

#[tokio::test]
async fn a_digest_block_is_stored_and_its_bounds_are_422_with_the_field() {
    let app = TestApp::local().await;
    let feed = app.in_app_channel("feed").await;
    let created = app
        .post(
            "/notifications/rules",
            &json!({"key": "comment.created", "channelIds": [feed],
                    "digest": {"windowSeconds": 600, "key": "{{properties.postId}}", "maxEvents": 50}})
                .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        created.json["digest"],
        json!({"windowSeconds": 600, "key": "{{properties.postId}}", "maxEvents": 50})
    );
    for (digest, field) in [
        (json!({"windowSeconds": 59}), "digest.windowSeconds"),
        (json!({"windowSeconds": 604_801}), "digest.windowSeconds"),
        (json!({}), "digest.windowSeconds"),
        (json!({"windowSeconds": 60, "at": "09:00"}), "digest"),
        (json!({"at": "25:00"}), "digest.at"),
        (
            json!({"windowSeconds": 60, "maxEvents": 0}),
            "digest.maxEvents",
        ),
        (
            json!({"windowSeconds": 60, "maxEvents": 1001}),
            "digest.maxEvents",
        ),
        (json!({"windowSeconds": 60, "items": 101}), "digest.items"),
        (
            json!({"windowSeconds": 60, "key": "{{nope}}"}),
            "digest.key",
        ),
    ] {
        let a = app
            .post(
                "/notifications/rules",
                &json!({"key": "other", "channelIds": [feed], "digest": digest}).to_string(),
            )
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "{digest}: {}", a.message());
        let a = app
            .patch(
                "/notifications/rules/comment.created",
                &json!({"digest": digest}).to_string(),
            )
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(a.field(), Some(field), "PATCH {digest}: {}", a.message());
    }
    // A digest with alerting, or on a rule with no email, push or in-app channel.
    let a = app
        .post(
            "/notifications/rules",
            &json!({"key": "other", "channelIds": [feed], "digest": {"windowSeconds": 60},
                    "alerting": {"dedupKey": "{{type}}"}})
            .to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("digest"));
    let slack = app
        .channel(r#"{"kind": "slack", "name": "ops", "config": {"webhookUrl": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"}}"#)
        .await;
    let a = app
        .post(
            "/notifications/rules",
            &json!({"key": "other", "channelIds": [slack], "digest": {"windowSeconds": 60}})
                .to_string(),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("digest"));
    // `null` removes it.
    let patched = app
        .patch(
            "/notifications/rules/comment.created",
            &json!({"digest": null}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert!(patched.json.get("digest").is_none(), "{}", patched.json);
}
