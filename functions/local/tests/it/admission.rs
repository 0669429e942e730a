//! Admission control in the real `herald serve`: with a tiny configured ingest limit, posting
//! faster than it gets 429 with `Retry-After`, and every event that got 202 is delivered.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_testing::{Kind, Receiver, Reply};
use serde_json::{Value, json};

use super::Herald;

#[tokio::test]
async fn over_a_tiny_ingest_limit_events_get_429_and_every_accepted_event_is_delivered() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_ORG_EVENTS_BURST", "5")],
        &[
            "--allow-private-targets",
            "127.0.0.0/8",
            "--org-events-per-second",
            "2",
        ],
    );
    let receiver = Receiver::start(Kind::Webhook).await;
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "hooks", "config": {"url": format!("{}/hooks", receiver.url), "format": "generic"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    receiver.set_signing_secret(channel["signingSecret"].as_str().expect("a secret"));
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [channel["id"]]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");

    let client = reqwest::Client::new();
    let post = |body: Value| {
        client
            .post(herald.org_url("/events"))
            .header("x-api-key", &herald.started.api_key)
            .json(&body)
            .send()
    };
    let event =
        |id: String| json!({"id": id, "type": "disk.full", "module": "ops", "properties": {}});

    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    // Singles and batches of 3, back to back: far more than 5 + 2/s.
    for n in 0..12 {
        let ids: Vec<String> = if n % 2 == 0 {
            vec![format!("single-{n}")]
        } else {
            (0..3).map(|i| format!("batch-{n}-{i}")).collect()
        };
        let body = if ids.len() == 1 {
            event(ids[0].clone())
        } else {
            Value::Array(ids.iter().cloned().map(event).collect())
        };
        let answer = post(body).await.expect("herald answers");
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body: Value = answer.json().await.expect("a JSON answer");
        match status {
            202 => {
                assert_eq!(body["accepted"], ids.len(), "{body}");
                accepted.extend(ids);
            }
            429 => {
                refused += 1;
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                let message = body["error"]["message"].as_str().expect("a message");
                assert!(
                    message.contains("ingest limit (2 events per second, bursts of 5)"),
                    "{message}"
                );
                let seconds: u64 = retry_after
                    .expect("a Retry-After header")
                    .parse()
                    .expect("whole seconds");
                assert!((1..=3).contains(&seconds), "Retry-After: {seconds}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(refused > 0, "nothing was refused");
    assert!(
        (5..=12).contains(&accepted.len()),
        "the burst and little more was accepted: {accepted:?}"
    );

    let arrivals = receiver
        .wait_for(accepted.len(), Duration::from_secs(30))
        .await;
    // Nothing more than was accepted, and all of it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered: BTreeSet<String> = receiver
        .arrivals()
        .iter()
        .map(|a| a.body["id"].as_str().expect("an event id").to_owned())
        .collect();
    assert_eq!(delivered, accepted, "{arrivals:#?}");
    assert_eq!(
        receiver.arrivals().len(),
        accepted.len(),
        "one delivery each"
    );
}

#[tokio::test]
async fn an_org_at_its_backlog_bound_gets_429_backlog_full_and_its_accepted_events_still_arrive() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_ORG_MAX_BACKLOG", "3")],
        &[
            "--allow-private-targets",
            "127.0.0.0/8",
            "--retry-base-ms",
            "1000",
        ],
    );
    // A receiver that fails every attempt: deliveries wait for their retry in the queue.
    let receiver = Receiver::start(Kind::Webhook).await;
    receiver.always(Reply::ServerError);
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "webhook", "name": "hooks", "config": {"url": format!("{}/hooks", receiver.url), "format": "generic"}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    receiver.set_signing_secret(channel["signingSecret"].as_str().expect("a secret"));
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "disk.full", "channelIds": [channel["id"]]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");

    let client = reqwest::Client::new();
    let mut accepted = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no 429 after {} accepted events",
            accepted.len()
        );
        let id = format!("evt-{}", accepted.len());
        let answer = client
            .post(herald.org_url("/events"))
            .header("x-api-key", &herald.started.api_key)
            .json(&json!({"id": id, "type": "disk.full", "module": "ops", "properties": {}}))
            .send()
            .await
            .expect("herald answers");
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get("retry-after").cloned();
        let body: Value = answer.json().await.expect("a JSON answer");
        match status {
            202 => {
                accepted.insert(id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            429 => break (body, retry_after),
            other => panic!("{other}: {body}"),
        }
    };
    let (body, retry_after) = refusal;
    assert_eq!(body["error"]["code"], "backlog_full", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at its backlog bound of 3")),
        "{body}"
    );
    assert_eq!(
        retry_after.expect("Retry-After").to_str().expect("ascii"),
        "5"
    );
    assert!(accepted.len() >= 3, "{accepted:?}");

    // The receiver recovers: every accepted event arrives, none was dropped.
    receiver.always(Reply::Ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: BTreeSet<String> = receiver
            .arrivals()
            .iter()
            .filter(|a| a.status == 200)
            .filter_map(|a| a.body["id"].as_str().map(str::to_owned))
            .collect();
        if delivered == accepted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivered {delivered:?} of {accepted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
