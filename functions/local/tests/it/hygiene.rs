//! Recipient hygiene against the real `herald serve`: SES bounce and complaint notifications
//! (SES's documented examples, tagged as Herald's SES sender tags its emails) fed through
//! `POST /admin/feedback/ses` suppress the address, and the next email to it is `suppressed`;
//! an unreadable notification ends in `feedback-dlq` with its reason.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::Herald;

const BOUNCE: &str =
    include_str!("../../../../core/src/hygiene/fixtures/ses-bounce-eventbridge.json");
const COMPLAINT: &str =
    include_str!("../../../../core/src/hygiene/fixtures/ses-complaint-record.json");

async fn feedback(herald: &Herald, body: String) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/admin/feedback/ses", herald.started.url))
        .header("x-admin-key", &herald.started.admin_key)
        .body(body)
        .send()
        .await
        .expect("herald answers")
        .status()
        .as_u16()
}

/// Polls `path` until `done` holds of its answer (10 s at most).
async fn until(herald: &Herald, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (status, body) = herald.get(path).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there: {:?}", herald.get(path).await.1)
}

#[tokio::test]
async fn an_ses_bounce_suppresses_the_address_and_the_next_email_to_it_is_suppressed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let herald = Herald::start(&data_dir, &[("HERALD_RULES_CACHE_SECONDS", "0")]);
    let org = herald.started.org_id.clone();

    let status = feedback(&herald, BOUNCE.replace("<org>", &org)).await;
    assert_eq!(status, 202);
    let list = until(&herald, "/notifications/suppressions", |b| {
        b["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let entry = &list["items"][0];
    assert_eq!(entry["address"], "recipient@example.com", "{list}");
    assert_eq!(entry["reason"], "hard_bounce");
    assert_eq!(entry["source"], "ses");
    assert_eq!(
        entry["details"]["diagnosticCode"],
        "smtp; 550 5.1.1 user unknown"
    );

    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "email", "name": "mail"}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "user.welcome", "channelIds": [channel["id"]]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let (status, accepted) = herald
        .post(
            "/events",
            json!({"type": "user.welcome", "module": "auth", "properties": {},
                   "recipients": [{"userId": "bob", "email": "Recipient@Example.com"},
                                  {"userId": "carol", "email": "carol@example.com"}]}),
        )
        .await;
    assert!(status == 202 || status == 200, "{status} {accepted}");
    let logs = until(&herald, "/notifications/logs", |b| {
        b["items"]
            .as_array()
            .is_some_and(|i| i.len() == 2 && i.iter().all(|d| d["status"] != "queued"))
    })
    .await;
    let items = logs["items"].as_array().expect("items");
    let suppressed: Vec<_> = items
        .iter()
        .filter(|d| d["status"] == "suppressed")
        .collect();
    assert_eq!(suppressed.len(), 1, "{logs}");
    let reason = suppressed[0]["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("recipient@example.com is on the suppression list (hard bounce "),
        "{reason}"
    );
    assert!(
        items.iter().any(|d| d["status"] == "sent"),
        "carol still gets hers: {logs}"
    );

    // A complaint, sent as the bare SES event record, suppresses too.
    let complaint = COMPLAINT
        .replace("<org>", &org)
        .replace("recipient@example.com", "complainer@example.com");
    assert_eq!(feedback(&herald, complaint).await, 202);
    let list = until(&herald, "/notifications/suppressions?kind=email", |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    assert_eq!(list["items"][0]["address"], "complainer@example.com");
    assert_eq!(list["items"][0]["reason"], "complaint");

    // A transient bounce suppresses nothing; it is counted.
    let transient = BOUNCE
        .replace("<org>", &org)
        .replace("\"Permanent\"", "\"Transient\"")
        .replace("recipient@example.com", "busy@example.com");
    assert_eq!(feedback(&herald, transient).await, 202);
    // The stats show both feedback counters.
    let stats = until(&herald, "/notifications/logs/stats", |b| {
        b["totals"]["counts"]["softBounced"] == 1
    })
    .await;
    assert_eq!(
        stats["totals"]["counts"]["suppressedByFeedback"], 2,
        "{stats}"
    );

    // A profile's suppressed addresses are on `GET /users`, whatever the profile says.
    let r = reqwest::Client::new()
        .put(herald.org_url("/users/bob"))
        .header("x-api-key", &herald.started.api_key)
        .json(&json!({"email": "Recipient@Example.com", "phone": "+14155550123"}))
        .send()
        .await
        .expect("herald answers");
    assert_eq!(r.status().as_u16(), 200);
    let (status, bob) = herald.get("/users/bob").await;
    assert_eq!(status, 200, "{bob}");
    assert_eq!(bob["email"], "Recipient@Example.com");
    let suppressed = bob["suppressed"].as_array().expect("suppressed");
    assert_eq!(suppressed.len(), 1, "{bob}");
    assert_eq!(suppressed[0]["address"], "recipient@example.com");
    assert_eq!(suppressed[0]["reason"], "hard_bounce");
    assert_eq!(bob["unsubscribed"], json!([]));
    herald.kill();
}

#[tokio::test]
async fn an_unreadable_ses_notification_is_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let herald = Herald::start(&data_dir, &[]);
    let broken = BOUNCE
        .replace("<org>", &herald.started.org_id)
        .replace("\"Permanent\"", "\"Sideways\"");
    assert_eq!(feedback(&herald, broken).await, 202);
    let http = reqwest::Client::new();
    let mut count = Value::Null;
    for _ in 0..100 {
        let counts: Value = http
            .get(format!("{}/admin/dlq", herald.started.url))
            .header("x-admin-key", &herald.started.admin_key)
            .send()
            .await
            .expect("herald answers")
            .json()
            .await
            .expect("JSON");
        count = counts["queues"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["queue"] == "feedback"))
            .map(|q| q["messages"].clone())
            .unwrap_or(Value::Null);
        if count == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count, 1);
    let (_, list) = herald.get("/notifications/suppressions").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    // Redriven, it is read again (the handler unwraps its own dead letter) and, still
    // unreadable, comes back once: not lost in a lane no worker reads, not wrapped twice.
    let moved: Value = http
        .post(format!("{}/admin/dlq/feedback/redrive", herald.started.url))
        .header("x-admin-key", &herald.started.admin_key)
        .send()
        .await
        .expect("herald answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(moved["moved"], 1, "{moved}");
    let mut back = false;
    for _ in 0..100 {
        let counts: Value = http
            .get(format!("{}/admin/dlq", herald.started.url))
            .header("x-admin-key", &herald.started.admin_key)
            .send()
            .await
            .expect("herald answers")
            .json()
            .await
            .expect("JSON");
        if counts["queues"][3]["queue"] == "feedback" && counts["queues"][3]["messages"] == 1 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the redriven notification is dead-lettered again");
    herald.kill();

    let mut show = Command::new(env!("CARGO_BIN_EXE_herald"));
    show.args(["dlq", "show", "feedback", "--data-dir"])
        .arg(&data_dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("HERALD_") {
            show.env_remove(name);
        }
    }
    let out = show.output().expect("herald dlq runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let shown: Value =
        serde_json::from_str(line.lines().next().expect("one message")).expect("JSON");
    let letter: Value =
        serde_json::from_str(shown["body"].as_str().expect("a body")).expect("JSON");
    assert_eq!(
        letter["reason"],
        "malformed SES notification: unknown bounceType `Sideways`"
    );
    assert!(
        letter["body"]
            .as_str()
            .expect("the notification")
            .contains("Sideways")
    );
}
