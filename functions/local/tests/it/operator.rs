//! Operator tools against the real `herald serve` and a loopback webhook receiver that verifies
//! Standard Webhooks signatures: a delivery that failed is resent, arrives again with the same
//! `webhook-id`, and its log shows the manual attempt; the event page and explain agree with
//! what routing did. Recover after an outage delivers every failed delivery exactly once, and a
//! recovery interrupted by `kill -9` resumes after a restart. A replayed draft lists exactly the
//! events that change.

use std::time::Duration;

use herald_testing::{Kind, Receiver, Reply};
use serde_json::{Value, json};

use super::Herald;

/// `POST` with an `Idempotency-Key`: status, the `Idempotent-Replayed` header, body.
async fn post_with_key(herald: &Herald, path: &str, key: &str) -> (u16, bool, Value) {
    let r = reqwest::Client::new()
        .post(herald.org_url(path))
        .header("x-api-key", &herald.started.api_key)
        .header("idempotency-key", key)
        .body("{}")
        .send()
        .await
        .expect("herald answers");
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (
        r.status().as_u16(),
        replayed,
        r.json().await.expect("a JSON answer"),
    )
}

/// Reads the delivery until `done` holds for it.
async fn delivery_until(herald: &Herald, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, d) = herald.get(&format!("/notifications/logs/{id}")).await;
        assert_eq!(status, 200, "{d}");
        if done(&d) {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery never got there: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failed_webhook_delivery_resent_arrives_with_the_same_webhook_id_and_logs_a_manual_attempt()
 {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_RULES_CACHE_SECONDS", "0")],
        &["--allow-private-targets", "127.0.0.0/8"],
    );
    let receiver = Receiver::start(Kind::Webhook).await;
    // The endpoint is gone at first (404: not retried), then fixed.
    receiver.script([Reply::ChannelNotFound]);
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "incidents",
                   "config": {"url": format!("{}/hooks/ops", receiver.url), "format": "generic"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    receiver.set_signing_secret(channel["signingSecret"].as_str().expect("a secret"));
    let channel_id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [channel_id]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let (status, accepted) = herald
        .post(
            "/events",
            json!({"id": "evt-disk-1", "type": "disk.full", "module": "ops", "properties": {"host": "web-1"}}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");

    let first = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert!(first[0].problems.is_empty(), "{:?}", first[0].problems);
    let delivery_id = first[0].webhook_id.clone().expect("a webhook-id");
    let failed = delivery_until(&herald, &delivery_id, |d| d["status"] == "failed").await;
    assert_eq!(failed["attempts"][0]["statusCode"], 404);
    assert_eq!(failed["attempts"][0]["trigger"], "scheduled");

    // The event page says which rule made which delivery; explain agrees.
    let (status, event) = herald.get("/events/evt-disk-1").await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["stage"], "matched");
    assert_eq!(event["rules"][0]["ruleKey"], "disk.full");
    assert_eq!(
        event["rules"][0]["deliveries"][0]["deliveryId"],
        delivery_id
    );
    assert_eq!(event["rules"][0]["deliveries"][0]["status"], "failed");
    let (status, explained) = herald
        .post(
            "/notifications/rules/explain",
            json!({"eventId": "evt-disk-1"}),
        )
        .await;
    assert_eq!(status, 200, "{explained}");
    let would = &explained["rules"][0]["deliveries"][0];
    assert_eq!(would["deliveryId"], delivery_id);
    assert_eq!(would["outcome"], "would_send");
    assert!(
        would["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("marked broken"),
        "{would}"
    );

    let resend = format!("/notifications/logs/{delivery_id}/resend");
    let (status, replayed, answer) = post_with_key(&herald, &resend, "oncall-1").await;
    assert_eq!(status, 202, "{answer}");
    assert!(!replayed);
    assert_eq!(answer["attempt"], 2);
    assert_eq!(answer["trigger"], "manual");

    let both = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        both[1].webhook_id.as_deref(),
        Some(delivery_id.as_str()),
        "the same webhook-id"
    );
    assert!(
        both[1].problems.is_empty(),
        "signed: {:?}",
        both[1].problems
    );
    assert_eq!(both[1].status, 200);
    assert_eq!(both[1].body, both[0].body, "the same event payload");

    let delivered = delivery_until(&herald, &delivery_id, |d| d["status"] == "delivered").await;
    let attempts = delivered["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{delivered}");
    assert_eq!(attempts[1]["n"], 2);
    assert_eq!(attempts[1]["statusCode"], 200);
    assert_eq!(attempts[1]["trigger"], "manual");
    let (_, channel) = herald
        .get(&format!("/notifications/channels/{channel_id}"))
        .await;
    assert_eq!(channel["health"]["status"], "ok", "a success clears broken");

    // The same key again: the stored answer, and nothing sent.
    let (status, replayed, again) = post_with_key(&herald, &resend, "oncall-1").await;
    assert_eq!(status, 202, "{again}");
    assert!(replayed);
    assert_eq!(again, answer);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.arrivals().len(), 2, "the replay sent nothing");

    // The stats count the delivery once, under its new status.
    let (status, stats) = herald
        .get("/notifications/logs/stats?groupBy=channel")
        .await;
    assert_eq!(status, 200, "{stats}");
    let counts = &stats["groups"][0]["counts"];
    assert_eq!(counts["delivered"], 1, "{stats}");
    assert_eq!(counts["failed"], 0, "{stats}");
    assert_eq!(counts["attempts"], 2, "{stats}");
}

/// Replay against the real `herald serve`: events posted through `POST /events` go through
/// ingest into the by-time index; a draft narrowing one rule lists exactly the events that
/// change; applying it against the replayed version leaves no diff, and a stale version is a
/// 409 that writes nothing.
#[tokio::test]
async fn a_replayed_draft_lists_exactly_the_changed_events_and_applies_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_RULES_CACHE_SECONDS", "0")],
        &["--allow-private-targets", "127.0.0.0/8"],
    );
    let receiver = Receiver::start(Kind::Webhook).await;
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "incidents",
                   "config": {"url": format!("{}/hooks/ops", receiver.url), "format": "generic"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [channel_id]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let batch: Vec<Value> = (0..40)
        .map(|i| {
            let host = if i % 4 == 0 { "db" } else { "web" };
            json!({"id": format!("evt-{i:02}"), "type": "disk.full", "module": "ops",
                   "properties": {"host": format!("{host}-{i}")}})
        })
        .collect();
    let (status, accepted) = herald.post("/events", Value::Array(batch)).await;
    assert_eq!(status, 202, "{accepted}");
    let changed: Vec<String> = (0..40)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("evt-{i:02}"))
        .collect();

    let draft = json!([{"key": "disk.full", "channelIds": [channel_id],
                        "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                                          {"field": "properties.host", "op": "prefix", "value": "db-"}]}}]);
    let body = json!({"rules": draft, "since": since.to_rfc3339(), "examples": 100});
    // Ingest is asynchronous: wait until the 40 events are indexed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let replayed = loop {
        let (status, a) = herald
            .post("/notifications/rules/replay", body.clone())
            .await;
        assert_eq!(status, 200, "{a}");
        if a["eventsScanned"] == 40 {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "never indexed: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut removed: Vec<String> = replayed["examples"]["removed"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| e["eventId"].as_str().expect("an id").to_owned())
        .collect();
    removed.sort();
    assert_eq!(removed, changed, "{replayed}");
    assert_eq!(replayed["totals"]["removed"], 30);
    assert_eq!(replayed["totals"]["unchanged"], 10);
    assert_eq!(replayed["totals"]["added"], 0);
    let version = replayed["rulesVersion"].as_i64().expect("a version");

    let (status, refused) = herald
        .post(
            "/notifications/rules/batch",
            json!({"rules": draft, "expectedRulesVersion": version - 1}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "rules_changed");
    let (status, applied) = herald
        .post(
            "/notifications/rules/batch",
            json!({"rules": draft, "expectedRulesVersion": version}),
        )
        .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["rulesVersion"], version + 1);
    let (status, after) = herald.post("/notifications/rules/replay", body).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["rulesVersion"], version + 1);
    assert_eq!(after["totals"]["removed"], 0);
    assert_eq!(after["totals"]["eventsChanged"], 0);
}

/// `POST` of `body` with an `Idempotency-Key`: status, the `Idempotent-Replayed` header, body.
async fn post_json_with_key(
    herald: &Herald,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, bool, Value) {
    let r = reqwest::Client::new()
        .post(herald.org_url(path))
        .header("x-api-key", &herald.started.api_key)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("herald answers");
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (
        r.status().as_u16(),
        replayed,
        r.json().await.expect("a JSON answer"),
    )
}

/// Reads `path` until `done` holds for the answer.
async fn until(herald: &Herald, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    until_within(herald, path, Duration::from_secs(60), done).await
}

/// [`until`], waiting at most `wait`.
async fn until_within(
    herald: &Herald,
    path: &str,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let (status, v) = herald.get(path).await;
        assert_eq!(status, 200, "{v}");
        if done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_the_receiver_is_fixed_a_recovery_delivers_each_of_200_failed_deliveries_exactly_once()
 {
    let dir = tempfile::tempdir().expect("a temp dir");
    // One attempt per delivery, so the outage ends every delivery `failed` at once.
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[
            ("HERALD_RULES_CACHE_SECONDS", "0"),
            ("HERALD_RETRY_MAX_ATTEMPTS", "1"),
        ],
        &["--allow-private-targets", "127.0.0.0/8"],
    );
    let receiver = Receiver::start(Kind::Webhook).await;
    // The receiver is broken until fixed. Its 404s are not retried and do not open the
    // channel's circuit (5xx would: the circuit breaker would then hold the outage's
    // deliveries for minutes instead of failing them).
    receiver.always(Reply::ChannelNotFound);
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "incidents",
                   "config": {"url": format!("{}/hooks/ops", receiver.url), "format": "generic"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    receiver.set_signing_secret(channel["signingSecret"].as_str().expect("a secret"));
    let channel_id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [channel_id]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    for batch in 0..2 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                json!({"id": format!("evt-{batch}-{i}"), "type": "disk.full", "module": "ops",
                            "properties": {"host": format!("web-{i}")}})
            })
            .collect();
        let (status, accepted) = herald.post("/events", Value::Array(events)).await;
        assert_eq!(status, 202, "{accepted}");
    }
    let stats_path = "/notifications/logs/stats?groupBy=channel";
    until(&herald, stats_path, |s| {
        s["groups"][0]["counts"]["failed"] == 200
    })
    .await;
    let outage = receiver.arrivals();
    assert_eq!(outage.len(), 200);

    // Fixed: recover the channel.
    receiver.always(Reply::Ok);
    let recover = format!("/notifications/channels/{channel_id}/recover");
    let body = json!({"since": since.to_rfc3339()});
    let (status, replayed, started) =
        post_json_with_key(&herald, &recover, "recover-1", &body).await;
    assert_eq!(status, 202, "{started}");
    assert!(!replayed);
    assert_eq!(started["channelId"], channel_id.as_str());
    let id = started["id"].as_str().expect("a recovery id").to_owned();

    let done = until(&herald, &format!("{recover}/{id}"), |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["scanned"], 200, "{done}");
    assert_eq!(done["requeued"], 200, "{done}");
    assert_eq!(done["truncated"], false, "{done}");
    assert!(done["finishedAt"].is_string(), "{done}");

    let all = receiver.wait_for(400, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<_> = receiver.arrivals().into_iter().skip(200).collect();
    assert_eq!(after.len(), 200, "nothing delivered twice");
    let failed_ids: std::collections::BTreeSet<String> = outage
        .iter()
        .map(|a| a.webhook_id.clone().expect("a webhook-id"))
        .collect();
    let recovered_ids: std::collections::BTreeSet<String> = after
        .iter()
        .map(|a| a.webhook_id.clone().expect("a webhook-id"))
        .collect();
    assert_eq!(recovered_ids.len(), 200, "each webhook-id once");
    assert_eq!(
        recovered_ids, failed_ids,
        "the same deliveries, the same webhook-ids"
    );
    for a in &after {
        assert_eq!(a.status, 200);
        assert!(a.problems.is_empty(), "signed: {:?}", a.problems);
    }
    assert_eq!(all.len(), 400);
    let one = after[0].webhook_id.clone().expect("an id");
    let (_, d) = herald.get(&format!("/notifications/logs/{one}")).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(2), "{d}");
    assert_eq!(d["attempts"][1]["trigger"], "scheduled", "{d}");
    assert_eq!(d["recovered"]["recoveryId"], id.as_str(), "{d}");
    assert_eq!(d["recovered"]["afterAttempts"], 1, "{d}");

    // The same call with the same key: the stored answer, and nothing more recovered.
    let (status, replayed, again) = post_json_with_key(&herald, &recover, "recover-1", &body).await;
    assert_eq!(status, 202, "{again}");
    assert!(replayed);
    assert_eq!(again, started);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.arrivals().len(), 400, "the replay sent nothing");

    // The stats count each delivery once, under its new status.
    let stats = until(&herald, stats_path, |s| {
        s["groups"][0]["counts"]["delivered"] == 200
    })
    .await;
    let counts = &stats["groups"][0]["counts"];
    assert_eq!(counts["failed"], 0, "{stats}");
    assert_eq!(counts["attempts"], 400, "{stats}");

    // A window that ends before it starts, or reaches back too far: 422 naming the field.
    let (status, _, bad) = post_json_with_key(
        &herald,
        &recover,
        "recover-2",
        &json!({"since": since.to_rfc3339(), "until": (since - chrono::Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["field"], "until", "{bad}");
}

#[tokio::test]
async fn a_recovery_interrupted_by_kill_9_resumes_after_a_restart_and_its_counts_add_up() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let env = [
        ("HERALD_RULES_CACHE_SECONDS", "0"),
        ("HERALD_RETRY_MAX_ATTEMPTS", "1"),
    ];
    let args = ["--allow-private-targets", "127.0.0.0/8"];
    let herald = Herald::start_with(&data_dir, &env, &args);
    let receiver = Receiver::start(Kind::Webhook).await;
    receiver.always(Reply::ChannelNotFound);
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "incidents",
                   "config": {"url": format!("{}/hooks/ops", receiver.url), "format": "generic"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    receiver.set_signing_secret(channel["signingSecret"].as_str().expect("a secret"));
    let channel_id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [channel_id]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let total = 500;
    for batch in 0..total / 100 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                json!({"id": format!("evt-{batch}-{i}"), "type": "disk.full", "module": "ops",
                            "properties": {"host": format!("web-{i}")}})
            })
            .collect();
        let (status, accepted) = herald.post("/events", Value::Array(events)).await;
        assert_eq!(status, 202, "{accepted}");
    }
    let stats_path = "/notifications/logs/stats?groupBy=channel";
    until(&herald, stats_path, |s| {
        s["groups"][0]["counts"]["failed"] == total
    })
    .await;
    let failed_ids: std::collections::BTreeSet<String> = receiver
        .arrivals()
        .iter()
        .map(|a| a.webhook_id.clone().expect("a webhook-id"))
        .collect();
    assert_eq!(failed_ids.len(), total);

    receiver.always(Reply::Ok);
    let recover = format!("/notifications/channels/{channel_id}/recover");
    let (status, started) = herald
        .post(&recover, json!({"since": since.to_rfc3339()}))
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().expect("an id").to_owned();
    // Killed while the recovery runs (its pages, or the attempts they queued).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, midway) = herald.get(&format!("{recover}/{id}")).await;
    herald.kill();
    let before = receiver.arrivals().len() - total;

    // Restarted on the same data: what was in flight comes back after its visibility timeout.
    let herald = Herald::start_with(&data_dir, &env, &args);
    let done = until_within(
        &herald,
        &format!("{recover}/{id}"),
        Duration::from_secs(150),
        |r| r["state"] != "running",
    )
    .await;
    assert_eq!(done["state"], "done", "{done} (midway: {midway})");
    assert_eq!(done["scanned"], total, "{done}");
    assert_eq!(done["requeued"], total, "{done}");
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let recovered: std::collections::BTreeSet<String> = receiver
            .arrivals()
            .iter()
            .skip(total)
            .filter(|a| a.status == 200)
            .filter_map(|a| a.webhook_id.clone())
            .collect();
        if recovered == failed_ids {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {total} delivered after the restart ({before} before the kill; midway: {midway})",
            recovered.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    herald.kill();
}
