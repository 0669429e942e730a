//! Per-channel lanes against the real `herald serve` and receivers that enforce a provider's
//! rate limit like Slack does (429 + `Retry-After` beyond it): a paced channel never meets a
//! 429, and one 429 pauses the whole channel for its `Retry-After`.

use std::time::Duration;

use herald_testing::{Kind, Receiver, Reply};
use serde_json::{Value, json};

use super::Herald;

use super::start_for_receivers as start;

/// A Slack channel to `receiver` (with `rate_limit`, if any) and a rule sending `event_type`
/// to it; returns the channel id.
async fn route(
    herald: &Herald,
    receiver: &Receiver,
    event_type: &str,
    rate_limit: Value,
) -> String {
    let mut body = json!({"kind": "slack", "name": event_type, "config": {"webhookUrl": format!("{}/services/T/B/{event_type}", receiver.url)}});
    if !rate_limit.is_null() {
        body["rateLimit"] = rate_limit;
    }
    let (status, channel) = herald.post("/notifications/channels", body).await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": event_type, "channelIds": [id]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    id
}

/// Posts `n` events of `event_type`, 100 per request.
async fn post_events(herald: &Herald, event_type: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": event_type, "module": "ops", "properties": {"disk": format!("sd{i}")}}))
        .collect();
    for chunk in events.chunks(100) {
        let (status, accepted) = herald.post("/events", Value::from(chunk.to_vec())).await;
        assert_eq!(status, 202, "{accepted}");
    }
}

/// The `disk` property a Slack message shows in its fields.
fn disk(arrival: &herald_testing::receiver::Arrival) -> String {
    arrival.body["attachments"][0]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["value"].as_str())
        .find(|v| v.starts_with("sd"))
        .unwrap_or_default()
        .to_owned()
}

/// Waits until every delivery to `channel` is final; returns its counts (`delivered`,
/// `failed`, `attempts`, ...) from the stats.
async fn settled(herald: &Herald, channel: &str, n: i64, timeout: Duration) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (status, stats) = herald
            .get("/notifications/logs/stats?groupBy=channel")
            .await;
        assert_eq!(status, 200, "{stats}");
        let counts = stats["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["key"] == channel))
            .map(|g| g["counts"].clone())
            .unwrap_or(Value::Null);
        let finished = ["delivered", "failed", "suppressed"]
            .iter()
            .map(|k| counts[k].as_i64().unwrap_or(0))
            .sum::<i64>();
        if finished >= n {
            return counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after {timeout:?} only {finished} of {n} deliveries finished: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_channel_paced_to_its_receivers_limit_meets_no_429_and_delivers_every_event() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    slack.enforce_rate(20.0, 3);
    // The receiver's rate with a smaller burst: the headroom docs/pipeline.md ("Headroom")
    // advises, since a request held up on a loaded host lets the channel's bucket refill while
    // the receiver's counts it late.
    let channel = route(
        &herald,
        &slack,
        "disk.full",
        json!({"perSecond": 20, "burst": 1}),
    )
    .await;
    let started = std::time::Instant::now();
    post_events(&herald, "disk.full", 300).await;
    let counts = settled(&herald, &channel, 300, Duration::from_secs(90)).await;
    let took = started.elapsed();
    assert_eq!(counts["delivered"], 300, "{counts}");
    assert!(counts["failed"].as_i64().unwrap_or(0) == 0, "{counts}");
    assert_eq!(slack.rate_limited(), 0, "no request went over the limit");
    assert_eq!(slack.arrivals().len(), 300, "one request per event");
    let order: Vec<String> = slack.arrivals().iter().map(disk).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("sd{i}")).collect();
    assert_eq!(order, expected, "in event order");
    // 300 at 20/s, one at a time, cannot take less than ~14.9 s.
    assert!(
        took >= Duration::from_secs(14),
        "paced, not sent at once: {took:?}"
    );
}

#[tokio::test]
async fn the_slack_default_paces_a_channel_that_sets_no_limit() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    slack.enforce_rate(1.0, 3);
    let channel = route(&herald, &slack, "deploy.failed", Value::Null).await;
    let (_, shown) = herald
        .get(&format!("/notifications/channels/{channel}"))
        .await;
    assert_eq!(
        shown["rateLimit"],
        json!({"perSecond": 1.0, "burst": 3}),
        "{shown}"
    );
    assert_eq!(shown["rateLimitDefault"], true);
    post_events(&herald, "deploy.failed", 8).await;
    let counts = settled(&herald, &channel, 8, Duration::from_secs(40)).await;
    assert_eq!(counts["delivered"], 8, "{counts}");
    assert_eq!(slack.rate_limited(), 0);
    let arrivals = slack.arrivals();
    assert_eq!(arrivals.len(), 8);
    let span = arrivals.last().expect("arrivals").at - arrivals[0].at;
    assert!(
        span >= chrono::Duration::milliseconds(4900),
        "3 at once, then one a second: {span}"
    );
}

#[tokio::test]
async fn a_429_pauses_the_whole_channel_for_its_retry_after() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    slack.script([Reply::RateLimited {
        retry_after_secs: 2,
    }]);
    let channel = route(
        &herald,
        &slack,
        "queue.stalled",
        json!({"perSecond": 5, "burst": 1}),
    )
    .await;
    post_events(&herald, "queue.stalled", 10).await;
    let counts = settled(&herald, &channel, 10, Duration::from_secs(40)).await;
    assert_eq!(
        counts["delivered"], 10,
        "every delivery ends delivered: {counts}"
    );
    let arrivals = slack.arrivals();
    let paused = arrivals
        .iter()
        .find(|a| a.status == 429)
        .expect("the injected 429 arrived")
        .at;
    // Paced to one request at a time (burst 1), so nothing is in flight beside the refused one
    // when its 429 comes back: any request in the next two seconds went out during the pause.
    let during: Vec<_> = arrivals
        .iter()
        .filter(|a| a.at > paused && a.at < paused + chrono::Duration::seconds(2))
        .map(|a| a.at)
        .collect();
    assert!(
        during.is_empty(),
        "requests during the pause after {paused}: {during:?}"
    );
    assert_eq!(arrivals.len(), 11, "ten deliveries and the one refused");
    let (_, logs) = herald
        .get(&format!(
            "/notifications/logs?channelId={channel}&limit=100"
        ))
        .await;
    let attempts: usize = logs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["attempts"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        attempts, 11,
        "the 429 is logged as an attempt, held deliveries are not"
    );
}
