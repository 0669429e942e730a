//! Grouped rules against the real `herald serve` and a loopback Slack receiver: a storm of
//! distinct alerts within the group wait is one message listing 20 and "+N more", new alerts
//! make one update after the group interval and nothing more until the repeat, the all-clear is
//! one `[RESOLVED]`, and a restart in the middle of a wait sends the group exactly once.

use std::time::{Duration, Instant};

use herald_testing::{Kind, Receiver};
use serde_json::{Value, json};

use super::Herald;

use super::start_for_receivers as start;

/// A Slack channel to `receiver` and a rule grouping `disk.full` alerts by type and cluster.
async fn grouped_route(herald: &Herald, receiver: &Receiver, windows: Value) -> String {
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": format!("{}/services/T/B/ops", receiver.url)}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().expect("an id").to_owned();
    let mut alerting = json!({"groupBy": ["type", "properties.cluster"]});
    if let (Value::Object(a), Value::Object(w)) = (&mut alerting, windows) {
        a.extend(w);
    }
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [id], "alerting": alerting}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["alerting"]["maxAlertsPerMessage"], 20, "{rule}");
    id
}

fn disk_full(host: usize, action: &str) -> Value {
    json!({"type": "disk.full", "module": "ops",
           "properties": {"host": format!("web-{host:03}"), "cluster": "eu-1"},
           "dedupKey": format!("disk.full:web-{host:03}"), "action": action})
}

/// Posts the events of `hosts` in batches of 100.
async fn post_all(herald: &Herald, hosts: std::ops::Range<usize>, action: &str) {
    let events: Vec<Value> = hosts.map(|h| disk_full(h, action)).collect();
    for chunk in events.chunks(100) {
        let (status, accepted) = herald.post("/events", Value::from(chunk.to_vec())).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["accepted"], chunk.len(), "{accepted}");
    }
}

/// The alerts of `key` once `done` holds.
async fn alert_when(herald: &Herald, key: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, alert) = herald
            .get(&format!(
                "/notifications/alerts/{}",
                key.replace(':', "%3A")
            ))
            .await;
        if status == 200 && done(&alert) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "alert {key} never reached the expected state: {status} {alert}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn attachment(arrival: &herald_testing::receiver::Arrival) -> (String, Vec<String>) {
    let a = &arrival.body["attachments"][0];
    (
        a["title"].as_str().unwrap_or_default().to_owned(),
        a["text"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[tokio::test]
async fn a_storm_in_one_group_is_one_message_then_one_update_then_one_all_clear() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    grouped_route(
        &herald,
        &slack,
        json!({"groupWaitSeconds": 5, "groupIntervalSeconds": 10, "repeatIntervalSeconds": 3600}),
    )
    .await;

    // 500 distinct hosts within the wait: one message, 20 listed, "+480 more".
    let t0 = Instant::now();
    post_all(&herald, 0..500, "trigger").await;
    let first = slack.wait_for(1, Duration::from_secs(30)).await;
    let (title, lines) = attachment(&first[0]);
    assert_eq!(title, "[FIRING:500] disk.full cluster=eu-1");
    assert_eq!(lines.len(), 21, "{lines:?}");
    assert!(lines[0].contains("web-000"), "{lines:?}");
    assert_eq!(lines[20], "+480 more");
    assert!(
        t0.elapsed() >= Duration::from_secs(5),
        "not before the group wait"
    );
    let sent_at = Instant::now();

    // 10 new hosts: exactly one update, a group interval after the first message.
    post_all(&herald, 500..510, "trigger").await;
    let update = slack.wait_for(2, Duration::from_secs(30)).await;
    let waited = sent_at.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "the update came {waited:?} after the first message, before the interval"
    );
    let (title, lines) = attachment(&update[1]);
    assert_eq!(title, "[FIRING:510] disk.full cluster=eu-1");
    assert_eq!(lines[20], "+490 more");
    // Nothing more until the repeat (an hour away): more than an interval of quiet.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(slack.arrivals().len(), 2, "no message between updates");

    // Everything resolves (the resolves land between two interval boundaries of the group, which
    // are 10 s apart from its last message): one [RESOLVED], then silence.
    post_all(&herald, 0..510, "resolve").await;
    alert_when(&herald, "disk.full:web-509", |a| a["state"] == "resolved").await;
    let all = slack.wait_for(3, Duration::from_secs(30)).await;
    let (title, _) = attachment(&all[2]);
    assert_eq!(title, "[RESOLVED] disk.full cluster=eu-1");
    assert_eq!(all[2].body["attachments"][0]["color"], "#2EB67D");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(slack.arrivals().len(), 3, "one all-clear");

    // The logs show the group deliveries.
    let (status, logs) = herald.get("/notifications/logs?limit=100").await;
    assert_eq!(status, 200, "{logs}");
    let items = logs["items"].as_array().expect("items");
    let group: Vec<_> = items.iter().filter(|d| d["trigger"] == "group").collect();
    assert_eq!(group.len(), 3, "{logs}");
    assert!(
        items.iter().all(|d| d["trigger"] == "group"),
        "no per-alert Slack delivery: {logs}"
    );
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_group_wait_sends_the_group_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    grouped_route(
        &herald,
        &slack,
        json!({"groupWaitSeconds": 5, "groupIntervalSeconds": 10, "repeatIntervalSeconds": 3600}),
    )
    .await;
    let t0 = Instant::now();
    post_all(&herald, 0..30, "trigger").await;
    // Every alert is open (and joins its group right after opening); the wait is not over.
    for h in 0..30 {
        alert_when(&herald, &format!("disk.full:web-{h:03}"), |a| {
            a["state"] == "firing"
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "too slow to restart within the wait"
    );
    assert!(slack.arrivals().is_empty());
    herald.kill();

    let herald = start(&dir);
    let arrivals = slack.wait_for(1, Duration::from_secs(30)).await;
    let (title, lines) = attachment(&arrivals[0]);
    assert_eq!(title, "[FIRING:30] disk.full cluster=eu-1");
    assert_eq!(lines.last().map(String::as_str), Some("+10 more"));
    // Past another interval: still once.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(slack.arrivals().len(), 1, "the group was sent once");
    herald.kill();
}

#[tokio::test]
async fn a_firing_group_repeats_after_the_repeat_interval_only() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    grouped_route(
        &herald,
        &slack,
        json!({"groupWaitSeconds": 1, "groupIntervalSeconds": 10, "repeatIntervalSeconds": 60}),
    )
    .await;
    post_all(&herald, 0..3, "trigger").await;
    let first = slack.wait_for(1, Duration::from_secs(30)).await;
    let sent_at = Instant::now();
    assert_eq!(attachment(&first[0]).0, "[FIRING:3] disk.full cluster=eu-1");
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(slack.arrivals().len(), 1, "nothing before the repeat");
    let repeat = slack.wait_for(2, Duration::from_secs(30)).await;
    assert!(sent_at.elapsed() >= Duration::from_secs(59));
    assert_eq!(
        attachment(&repeat[1]).0,
        "[FIRING:3] disk.full cluster=eu-1"
    );
    herald.kill();
}
