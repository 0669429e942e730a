//! The alert lifecycle and silences against the real `herald serve` and a loopback Slack
//! receiver: duplicates of an open alert make one message, a resolve one resolved message, a
//! resolve with nothing open nothing; silenced deliveries are recorded `suppressed` with the
//! silence id, and an alert notified before the silence still gets its resolved message; a
//! storm of 10,000 identical triggers is one message, counted on the alert, on the event
//! records and in the stats.

use std::time::Duration;

use herald_testing::{Kind, Receiver};
use serde_json::{Value, json};

use super::Herald;

use super::start_for_receivers as start;

/// A Slack channel to `receiver` and a rule sending `disk.full` to it, keyed per host.
async fn storm_safe_route(herald: &Herald, receiver: &Receiver, alerting: Value) -> String {
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": format!("{}/services/T/B/ops", receiver.url)}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [id], "alerting": alerting}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    id
}

fn disk_full(host: &str, action: &str) -> Value {
    json!({"type": "disk.full", "module": "ops", "properties": {"host": host, "pct": 97},
           "dedupKey": format!("disk.full:{host}"), "action": action})
}

/// The alert of `key`, once `done` holds for it.
async fn alert_when(herald: &Herald, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, alert) = herald
            .get(&format!(
                "/notifications/alerts/{}",
                key.replace(':', "%3A")
            ))
            .await;
        if status == 200 && done(&alert) {
            return alert;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alert {key} never reached the expected state: {status} {alert}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn title(arrival: &herald_testing::receiver::Arrival) -> String {
    arrival.body["attachments"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Lets the pipeline finish whatever it would still send, then returns what arrived.
async fn quiet(receiver: &Receiver) -> Vec<herald_testing::receiver::Arrival> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    receiver.arrivals()
}

#[tokio::test]
async fn ten_duplicate_triggers_make_one_message_and_a_resolve_one_resolved_message() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    storm_safe_route(
        &herald,
        &slack,
        json!({"dedupKey": "{{type}}:{{properties.host}}"}),
    )
    .await;

    // A resolve with no open alert sends nothing.
    let (status, accepted) = herald.post("/events", disk_full("web-9", "resolve")).await;
    assert_eq!(status, 202, "{accepted}");

    // Ten identical triggers in one batch: matched concurrently, one message.
    let (status, accepted) = herald
        .post(
            "/events",
            Value::from(vec![disk_full("web-1", "trigger"); 10]),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["accepted"], 10, "{accepted}");
    let firing = alert_when(&herald, "disk.full:web-1", |a| a["eventCount"] == 10).await;
    assert_eq!(firing["state"], "firing", "{firing}");
    let arrivals = quiet(&slack).await;
    assert_eq!(arrivals.len(), 1, "one message for ten duplicates");
    assert!(
        title(&arrivals[0]).starts_with("Disk full"),
        "{}",
        title(&arrivals[0])
    );

    // The alert is listed as firing.
    let (status, list) = herald.get("/notifications/alerts?state=firing").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["dedupKey"], "disk.full:web-1", "{list}");

    // A resolve: exactly one resolved message, in green.
    let (status, _) = herald.post("/events", disk_full("web-1", "resolve")).await;
    assert_eq!(status, 202);
    let arrivals = slack.wait_for(2, Duration::from_secs(20)).await;
    assert!(
        title(&arrivals[1]).starts_with("RESOLVED: "),
        "{}",
        title(&arrivals[1])
    );
    assert_eq!(arrivals[1].body["attachments"][0]["color"], "#2EB67D");
    let resolved = alert_when(&herald, "disk.full:web-1", |a| a["state"] == "resolved").await;
    assert_eq!(resolved["eventCount"], 10, "{resolved}");
    // A second resolve finds nothing open.
    let (status, _) = herald.post("/events", disk_full("web-1", "resolve")).await;
    assert_eq!(status, 202);
    assert_eq!(quiet(&slack).await.len(), 2, "resolve, then nothing more");

    // A trigger after the resolve opens a new instance and notifies again.
    let (status, _) = herald.post("/events", disk_full("web-1", "trigger")).await;
    assert_eq!(status, 202);
    let reopened = alert_when(&herald, "disk.full:web-1", |a| a["state"] == "firing").await;
    assert_ne!(reopened["instanceId"], resolved["instanceId"]);
    let arrivals = slack.wait_for(3, Duration::from_secs(20)).await;
    assert!(!title(&arrivals[2]).starts_with("RESOLVED"));

    // Acknowledge, then resolve through the API: the follow-up still goes out.
    let (status, acked) = herald
        .post(
            "/notifications/alerts/disk.full%3Aweb-1/acknowledge",
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledgedBy"], "alice");
    let (status, _) = herald.post("/events", disk_full("web-1", "trigger")).await;
    assert_eq!(status, 202);
    // Counted on the acknowledged instance, not sent.
    alert_when(&herald, "disk.full:web-1", |a| {
        a["eventCount"] == 2 && a["state"] == "acknowledged"
    })
    .await;
    let (status, resolved) = herald
        .post("/notifications/alerts/disk.full%3Aweb-1/resolve", json!({}))
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["state"], "resolved");
    let arrivals = slack.wait_for(4, Duration::from_secs(20)).await;
    assert!(title(&arrivals[3]).starts_with("RESOLVED: "));
    assert_eq!(
        quiet(&slack).await.len(),
        4,
        "no repeat after acknowledge, one follow-up"
    );
    // Unknown alerts are 404s.
    let (status, _) = herald
        .post("/notifications/alerts/nope/resolve", json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_silence_suppresses_and_records_but_lets_an_already_notified_resolve_through() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    storm_safe_route(&herald, &slack, json!({})).await;

    // web-1 fires before the silence: notified.
    let (status, _) = herald.post("/events", disk_full("web-1", "trigger")).await;
    assert_eq!(status, 202);
    slack.wait_for(1, Duration::from_secs(20)).await;

    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, silence) = herald
        .post(
            "/notifications/silences",
            json!({"match": {"field": "module", "op": "eq", "value": "ops"},
                   "endsAt": ends, "comment": "maintenance", "createdBy": "alice"}),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["state"], "active");
    let silence_id = silence["id"].as_str().expect("id").to_owned();

    // web-2 fires during the silence: recorded suppressed, naming the silence; nothing sent.
    let (status, _) = herald.post("/events", disk_full("web-2", "trigger")).await;
    assert_eq!(status, 202);
    alert_when(&herald, "disk.full:web-2", |a| a["state"] == "firing").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let suppressed = loop {
        let (status, logs) = herald.get("/notifications/logs?status=suppressed").await;
        assert_eq!(status, 200, "{logs}");
        if let Some(row) = logs["items"].as_array().and_then(|i| i.first()) {
            break row.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no suppressed delivery: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        suppressed["reason"],
        format!("silenced by {silence_id}"),
        "{suppressed}"
    );

    // web-1's resolve still goes out (its trigger was delivered); web-2's does not (never sent).
    let (status, _) = herald.post("/events", disk_full("web-1", "resolve")).await;
    assert_eq!(status, 202);
    let (status, _) = herald.post("/events", disk_full("web-2", "resolve")).await;
    assert_eq!(status, 202);
    let arrivals = slack.wait_for(2, Duration::from_secs(20)).await;
    assert!(title(&arrivals[1]).starts_with("RESOLVED: "));
    assert!(
        arrivals[1].body.to_string().contains("web-1"),
        "the resolved message is web-1's"
    );
    alert_when(&herald, "disk.full:web-2", |a| a["state"] == "resolved").await;
    assert_eq!(quiet(&slack).await.len(), 2);

    // Ending the silence keeps it listed, as expired; the next trigger goes through.
    let r = reqwest::Client::new()
        .delete(herald.org_url(&format!("/notifications/silences/{silence_id}")))
        .header("x-api-key", &herald.started.api_key)
        .send()
        .await
        .expect("herald answers");
    assert_eq!(r.status().as_u16(), 200);
    let (status, list) = herald.get("/notifications/silences?state=expired").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["id"], silence_id.as_str(), "{list}");
    let (status, _) = herald.post("/events", disk_full("web-2", "trigger")).await;
    assert_eq!(status, 202);
    slack.wait_for(3, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn an_alert_that_stops_firing_resolves_itself() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    storm_safe_route(
        &herald,
        &slack,
        json!({"dedupKey": "{{type}}:{{properties.host}}", "autoResolveSeconds": 2}),
    )
    .await;
    let trigger = json!({"type": "disk.full", "module": "ops", "properties": {"host": "web-3"}});
    let (status, _) = herald.post("/events", trigger.clone()).await;
    assert_eq!(status, 202);
    slack.wait_for(1, Duration::from_secs(20)).await;
    // Still firing a second later: the check is pushed back.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (status, _) = herald.post("/events", trigger).await;
    assert_eq!(status, 202);
    let resolved = alert_when(&herald, "disk.full:web-3", |a| a["state"] == "resolved").await;
    let arrivals = slack.wait_for(2, Duration::from_secs(20)).await;
    assert!(title(&arrivals[1]).starts_with("RESOLVED: "));
    let last: chrono::DateTime<chrono::Utc> = resolved["lastEventAt"]
        .as_str()
        .expect("lastEventAt")
        .parse()
        .expect("time");
    let at: chrono::DateTime<chrono::Utc> = resolved["resolvedAt"]
        .as_str()
        .expect("resolvedAt")
        .parse()
        .expect("time");
    assert!(
        at - last >= chrono::Duration::seconds(2),
        "resolved {at}, {last} was the last event"
    );
    assert_eq!(resolved["eventCount"], 2);
}

#[tokio::test]
async fn pagerduty_gets_trigger_acknowledge_and_resolve_keyed_by_the_dedup_key() {
    // A rule sending disk.full to Slack and PagerDuty: PagerDuty's incident follows the alert
    // (one trigger for duplicates, the acknowledge, the resolve, all on one dedup_key); Slack
    // is not told of the acknowledge.
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    let pagerduty = Receiver::start(Kind::PagerDuty).await;
    let routing_key = "R0UT1NGKEY0123456789abcdefABCDEF";
    let (status, pd) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "pd", "config": {"format": "pagerduty", "routingKey": routing_key, "url": format!("{}/v2/enqueue", pagerduty.url)}}),
        )
        .await;
    assert_eq!(status, 201, "{pd}");
    assert_eq!(
        pd["config"]["routingKey"], "****",
        "the routing key is a secret: {pd}"
    );
    assert!(!pd.to_string().contains(routing_key));
    assert_eq!(
        pd["rateLimit"],
        json!({"perSecond": 2.0, "burst": 4}),
        "{pd}"
    );
    let (status, chat) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": format!("{}/services/T/B/ops", slack.url)}}),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [chat["id"], pd["id"]],
                   "alerting": {"dedupKey": "{{type}}:{{properties.host}}"}}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");

    // Three duplicate triggers (the key comes from the rule's template): one PagerDuty trigger.
    let trigger = json!({"type": "disk.full", "module": "ops",
                         "properties": {"host": "web-1", "severity": "critical", "title": "Disk 97% full on web-1"}});
    let (status, _) = herald.post("/events", Value::from(vec![trigger; 3])).await;
    assert_eq!(status, 202);
    alert_when(&herald, "disk.full:web-1", |a| a["eventCount"] == 3).await;
    let events = pagerduty.wait_for(1, Duration::from_secs(20)).await;
    let first = &events[0];
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    assert_eq!(first.status, 202);
    assert_eq!(first.body["routing_key"], routing_key);
    assert_eq!(first.body["event_action"], "trigger");
    assert_eq!(first.body["dedup_key"], "disk.full:web-1");
    assert_eq!(
        first.body["payload"]["summary"],
        "[ops] Disk 97% full on web-1 — severity critical, host web-1"
    );
    assert_eq!(first.body["payload"]["severity"], "critical");
    assert_eq!(first.body["payload"]["source"], "web-1");

    // Acknowledged by an event: PagerDuty is told, Slack is not.
    let (status, _) = herald
        .post("/events", disk_full("web-1", "acknowledge"))
        .await;
    assert_eq!(status, 202);
    let events = pagerduty.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        events[1].body,
        json!({"routing_key": routing_key, "event_action": "acknowledge", "dedup_key": "disk.full:web-1", "client": "Herald"})
    );

    // Resolved through the API: both get the follow-up.
    let (status, resolved) = herald
        .post(
            "/notifications/alerts/disk.full%3Aweb-1/resolve",
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    let events = pagerduty.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(events[2].body["event_action"], "resolve");
    assert_eq!(events[2].body["dedup_key"], "disk.full:web-1");
    let chat = slack.wait_for(2, Duration::from_secs(20)).await;
    assert!(
        title(&chat[1]).starts_with("RESOLVED: "),
        "{}",
        title(&chat[1])
    );
    assert_eq!(quiet(&pagerduty).await.len(), 3, "nothing sent twice");
    assert_eq!(
        quiet(&slack).await.len(),
        2,
        "trigger and resolved, no acknowledge"
    );

    // A new instance acknowledged through the API: PagerDuty gets that acknowledge too.
    let (status, _) = herald.post("/events", disk_full("web-1", "trigger")).await;
    assert_eq!(status, 202);
    pagerduty.wait_for(4, Duration::from_secs(20)).await;
    let (status, acked) = herald
        .post(
            "/notifications/alerts/disk.full%3Aweb-1/acknowledge",
            json!({"by": "bob"}),
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    let events = pagerduty.wait_for(5, Duration::from_secs(20)).await;
    assert_eq!(events[4].body["event_action"], "acknowledge");
    assert!(events.iter().all(|e| e.problems.is_empty()), "{events:?}");
}

/// `herald serve` for receivers, its org admitting a 10,000-event storm at once (the default
/// ingest limit is 1,000 events a second).
fn start_for_storms(dir: &tempfile::TempDir) -> Herald {
    Herald::start_with(
        &dir.path().join("data"),
        &[
            ("HERALD_RULES_CACHE_SECONDS", "0"),
            ("HERALD_ORG_EVENTS_PER_SECOND", "100000"),
            ("HERALD_ORG_EVENTS_BURST", "100000"),
            ("HERALD_ORG_MAX_BACKLOG", "1000000"),
        ],
        &["--allow-private-targets", "127.0.0.0/8"],
    )
}

#[tokio::test]
async fn ten_thousand_identical_triggers_in_ten_seconds_are_one_slack_message_counted_everywhere() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start_for_storms(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    storm_safe_route(
        &herald,
        &slack,
        json!({"dedupKey": "{{type}}:{{properties.host}}"}),
    )
    .await;

    // 100 batches of 100, one every 100 ms: 10,000 triggers in 10 s.
    let batch = Value::from(vec![disk_full("web-1", "trigger"); 100]);
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    let mut ids = Vec::new();
    for _ in 0..100 {
        pace.tick().await;
        let (status, accepted) = herald.post("/events", batch.clone()).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["accepted"], 100, "{accepted}");
        ids.push(
            accepted["items"][99]["id"]
                .as_str()
                .expect("an id")
                .to_owned(),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let alert = loop {
        let (status, alert) = herald.get("/notifications/alerts/disk.full%3Aweb-1").await;
        if status == 200 && alert["eventCount"] == 10_000 {
            break alert;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the storm was never all counted: {status} {alert}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(alert["state"], "firing", "{alert}");
    let arrivals = quiet(&slack).await;
    assert_eq!(arrivals.len(), 1, "one Slack message for 10,000 triggers");

    // The last event's record says what the rule did: counted into the open alert.
    let last = ids.last().expect("ids");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let detail = loop {
        let (status, detail) = herald.get(&format!("/events/{last}")).await;
        assert_eq!(status, 200, "{detail}");
        if detail["stage"] == "matched" {
            break detail;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never matched: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let outcome = &detail["rules"][0]["outcomes"][0];
    assert_eq!(outcome["outcome"], "deduplicated", "{detail}");
    assert_eq!(outcome["dedupKey"], "disk.full:web-1", "{detail}");
    assert_eq!(outcome["instanceId"], alert["instanceId"], "{detail}");

    // And the stats count them: 9,999 deduplicated, one delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, stats) = herald.get("/notifications/logs/stats?groupBy=rule").await;
        assert_eq!(status, 200, "{stats}");
        let counts = &stats["totals"]["counts"];
        if counts["deduplicated"] == 9_999 && counts["delivered"] == 1 {
            assert_eq!(
                stats["groups"][0]["counts"]["deduplicated"], 9_999,
                "{stats}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never added up: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_silence_that_runs_out_lets_the_next_trigger_through() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    let slack = Receiver::start(Kind::Slack).await;
    storm_safe_route(&herald, &slack, json!({})).await;
    let ends = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (status, silence) = herald
        .post(
            "/notifications/silences",
            json!({"match": {"field": "properties.host", "op": "eq", "value": "web-7"},
                   "endsAt": ends.to_rfc3339(), "comment": "reboot", "createdBy": "alice"}),
        )
        .await;
    assert_eq!(status, 201, "{silence}");

    // During the silence: recorded, not sent.
    let (status, accepted) = herald.post("/events", disk_full("web-7", "trigger")).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["items"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let (_, detail) = herald.get(&format!("/events/{id}")).await;
        if detail["stage"] == "matched" {
            break detail;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never matched: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        detail["rules"][0]["outcomes"][0]["outcome"], "silenced",
        "{detail}"
    );
    assert_eq!(
        detail["rules"][0]["outcomes"][0]["silenceId"], silence["id"],
        "{detail}"
    );
    assert!(quiet(&slack).await.is_empty());

    // Once it has run out (listed as expired), the next trigger of the still-open alert is sent.
    let wait = (ends - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let (status, list) = herald.get("/notifications/silences?state=expired").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["id"], silence["id"], "{list}");
    let (status, _) = herald.post("/events", disk_full("web-7", "trigger")).await;
    assert_eq!(status, 202);
    let arrivals = slack.wait_for(1, Duration::from_secs(20)).await;
    assert!(arrivals[0].body.to_string().contains("web-7"));
    let alert = alert_when(&herald, "disk.full:web-7", |a| a["eventCount"] == 2).await;
    assert_eq!(alert["state"], "firing");
}
