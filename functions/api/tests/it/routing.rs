//! Every write of a rule, channel or silence tells the routing listener (the matcher's rules
//! cache in `herald serve`) of the org it changed, once stored; reads and refused writes tell
//! nothing.

use chrono::{Duration, Utc};
use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

/// Runs `write` and checks that it told of exactly one change, of the app's org.
async fn tells_one_change<F: std::future::Future>(app: &TestApp, what: &str, write: F) {
    let before = app.routing.orgs().len();
    write.await;
    let told = app.routing.orgs();
    assert_eq!(
        told[before..],
        *std::slice::from_ref(&app.org_id),
        "{what} tells of one change of its org"
    );
}

/// Runs `call` and checks that it told of no change.
async fn tells_nothing<F: std::future::Future>(app: &TestApp, what: &str, call: F) {
    let before = app.routing.orgs().len();
    call.await;
    assert_eq!(
        app.routing.orgs().len(),
        before,
        "{what} tells of no change"
    );
}

#[tokio::test]
async fn each_rule_channel_and_silence_write_tells_of_its_org_and_reads_do_not() {
    let app = TestApp::local().await;
    let webhook = json!({"kind": "webhook", "name": "hooks",
                         "config": {"url": "http://127.0.0.1:9/hook"}})
    .to_string();
    let mut channel = String::new();
    tells_one_change(&app, "creating a channel", async {
        channel = app.channel(&webhook).await;
    })
    .await;
    let channel_path = format!("/notifications/channels/{channel}");
    tells_one_change(&app, "updating a channel", async {
        app.patch(&channel_path, r#"{"enabled":false}"#)
            .await
            .expect(StatusCode::OK);
    })
    .await;
    tells_one_change(&app, "rotating a signing secret", async {
        app.post(&format!("{channel_path}/secret/rotate"), "{}")
            .await
            .expect(StatusCode::OK);
    })
    .await;
    tells_one_change(&app, "expiring previous signing secrets", async {
        app.post(&format!("{channel_path}/secret/expire-previous"), "{}")
            .await
            .expect(StatusCode::OK);
    })
    .await;

    let rule = json!({"key": "disk.full", "channelIds": [channel]}).to_string();
    tells_one_change(&app, "creating a rule", async {
        app.post("/notifications/rules", &rule)
            .await
            .expect(StatusCode::CREATED);
    })
    .await;
    tells_nothing(&app, "a refused rule", async {
        app.post("/notifications/rules", &rule)
            .await
            .expect_error(StatusCode::CONFLICT);
    })
    .await;
    tells_one_change(&app, "updating a rule", async {
        app.patch("/notifications/rules/disk.full", r#"{"enabled":false}"#)
            .await
            .expect(StatusCode::OK);
    })
    .await;
    let now = Utc::now();
    let replayed = app
        .post(
            "/notifications/rules/replay",
            &json!({"since": (now - Duration::hours(1)).to_rfc3339(),
                    "until": now.to_rfc3339(), "rules": []})
            .to_string(),
        )
        .await
        .expect(StatusCode::OK);
    let version = replayed.json["rulesVersion"].as_i64().expect("a version");
    let batch = |expected: i64| {
        json!({"rules": [{"key": "cpu.high", "channelIds": [channel]}],
               "expectedRulesVersion": expected})
        .to_string()
    };
    tells_nothing(&app, "a rule set against a moved version", async {
        app.post("/notifications/rules/batch", &batch(version - 1))
            .await
            .expect_error(StatusCode::CONFLICT);
    })
    .await;
    // The set replaces the org's rules: `disk.full` goes, `cpu.high` comes.
    tells_one_change(&app, "applying a rule set", async {
        app.post("/notifications/rules/batch", &batch(version))
            .await
            .expect(StatusCode::OK);
    })
    .await;
    tells_one_change(&app, "deleting a rule", async {
        app.delete("/notifications/rules/cpu.high")
            .await
            .expect(StatusCode::NO_CONTENT);
    })
    .await;

    let ends = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let silence = json!({"match": {"field": "module", "op": "eq", "value": "db"},
                         "endsAt": ends, "comment": "drill", "createdBy": "alice"})
    .to_string();
    let mut silence_path = String::new();
    tells_one_change(&app, "creating a silence", async {
        let created = app
            .post("/notifications/silences", &silence)
            .await
            .expect(StatusCode::CREATED);
        silence_path = format!(
            "/notifications/silences/{}",
            created.json["id"].as_str().expect("id")
        );
    })
    .await;
    tells_one_change(&app, "updating a silence", async {
        app.patch(&silence_path, r#"{"comment":"drill overran"}"#)
            .await
            .expect(StatusCode::OK);
    })
    .await;
    tells_one_change(&app, "ending a silence", async {
        app.delete(&silence_path).await.expect(StatusCode::OK);
    })
    .await;

    tells_nothing(&app, "reading", async {
        app.get("/notifications/rules").await.expect(StatusCode::OK);
        app.get(&channel_path).await.expect(StatusCode::OK);
        app.get("/notifications/silences")
            .await
            .expect(StatusCode::OK);
    })
    .await;
    tells_one_change(&app, "deleting a channel", async {
        app.delete(&channel_path)
            .await
            .expect(StatusCode::NO_CONTENT);
    })
    .await;
}
