//! Digest rules against the real `herald serve` and its outbox: 50 events for one user in a
//! 60 s window are one email listing the 50, also when `herald serve` is killed (`kill -9`) and
//! restarted in the middle of the window; `maxEvents` sends a batch as soon as it is full, and
//! the events after it wait for the next one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Herald;
use super::start_for_receivers as start;

/// An outbox email channel and a digest rule on `comment.created` with `digest`.
async fn digest_route(herald: &Herald, digest: Value) -> String {
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "email", "name": "mail"}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().expect("an id").to_owned();
    let (status, rule) = herald
        .post(
            "/notifications/rules",
            json!({"key": "comment.created", "channelIds": [id],
                   "template": {"title": "New comment from {{properties.author}}",
                                "body": "{{properties.text}}"},
                   "digest": digest}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    id
}

/// Posts comments `range` for ada; returns their event ids.
async fn comment(herald: &Herald, range: std::ops::Range<usize>) -> Vec<String> {
    let events: Vec<Value> = range
        .map(|n| {
            json!({"type": "comment.created", "module": "social",
                   "properties": {"author": format!("user-{n:02}"), "text": format!("comment number {n}")},
                   "recipients": [{"userId": "ada", "email": "ada@example.com"}]})
        })
        .collect();
    let (status, accepted) = herald.post("/events", Value::from(events.clone())).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["accepted"], events.len(), "{accepted}");
    accepted["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Waits until each event's detail says it joined a digest; returns the digest delivery ids.
async fn batched(herald: &Herald, ids: &[String]) -> Vec<String> {
    let mut digests = Vec::new();
    for id in ids {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, detail) = herald.get(&format!("/events/{id}")).await;
            let delivery = &detail["rules"][0]["deliveries"][0];
            if status == 200 && delivery["routed"] == "batched" {
                digests.push(delivery["deliveryId"].as_str().expect("an id").to_owned());
                break;
            }
            assert!(Instant::now() < deadline, "{id} never batched: {detail}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    digests
}

/// The outbox's emails once there are `n` (at most `within`).
async fn emails(herald: &Herald, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let (status, outbox) = herald.get("/outbox").await;
        assert_eq!(status, 200, "{outbox}");
        let items = outbox["items"].as_array().expect("items").clone();
        if items.len() >= n {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{} emails, not {n}: {outbox}",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn listed(email: &Value) -> Vec<String> {
    email["email"]["text"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("• "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn fifty_events_in_a_digest_window_are_one_email_even_across_a_kill_9_mid_window() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    digest_route(&herald, json!({"windowSeconds": 60})).await;
    let t0 = Instant::now();

    // 25 comments join the batch; then `kill -9` in the middle of the window.
    let first = comment(&herald, 0..25).await;
    let digest = batched(&herald, &first).await;
    assert!(
        digest.iter().all(|d| *d == digest[0]),
        "one digest: {digest:?}"
    );
    let (_, outbox) = herald.get("/outbox").await;
    assert_eq!(outbox["items"], json!([]), "nothing before the window ends");
    herald.kill();

    // Restarted on the same data: 25 more join the same batch.
    let herald = start(&dir);
    let second = comment(&herald, 25..50).await;
    let more = batched(&herald, &second).await;
    assert!(
        more.iter().all(|d| *d == digest[0]),
        "the same digest: {more:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(50),
        "too slow to finish within the window"
    );

    // One email, at the window's end, listing the 50 in order.
    let sent = emails(&herald, 1, Duration::from_secs(90)).await;
    assert!(
        t0.elapsed() >= Duration::from_secs(59),
        "not before the window ends"
    );
    assert_eq!(sent.len(), 1, "{sent:?}");
    let email = &sent[0];
    assert_eq!(
        email["email"]["subject"], "50 notifications: New comment from user-00 and 49 more",
        "{email}"
    );
    let lines = listed(email);
    assert_eq!(lines.len(), 50, "{lines:#?}");
    assert_eq!(lines[0], "• New comment from user-00 — comment number 0");
    assert_eq!(lines[49], "• New comment from user-49 — comment number 49");

    // The delivery lists its events; nothing else went out, and nothing more comes.
    let (status, delivery) = herald
        .get(&format!("/notifications/logs/{}", digest[0]))
        .await;
    assert_eq!(status, 200, "{delivery}");
    assert_eq!(delivery["trigger"], "digest", "{delivery}");
    assert_eq!(delivery["status"], "sent", "{delivery}");
    assert_eq!(delivery["eventCount"], 50, "{delivery}");
    let ids: Vec<&str> = delivery["eventIds"]
        .as_array()
        .expect("eventIds")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let posted: Vec<&str> = first.iter().chain(&second).map(String::as_str).collect();
    assert_eq!(ids, posted);
    assert_eq!(delivery["eventId"], posted[0]);
    let (_, logs) = herald.get("/notifications/logs?limit=100").await;
    assert_eq!(logs["items"].as_array().map(Vec::len), Some(1), "{logs}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(emails(&herald, 1, Duration::ZERO).await.len(), 1);
    herald.kill();
}

#[tokio::test]
async fn max_events_sends_a_full_batch_at_once_and_the_rest_wait_for_the_next() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = start(&dir);
    digest_route(
        &herald,
        json!({"windowSeconds": 3600, "maxEvents": 5, "items": 3}),
    )
    .await;
    let ids = comment(&herald, 0..5).await;
    batched(&herald, &ids).await;
    let sent = emails(&herald, 1, Duration::from_secs(20)).await;
    assert_eq!(
        sent[0]["email"]["subject"],
        "5 notifications: New comment from user-00 and 4 more"
    );
    // `items: 3` lists three and counts the rest.
    assert_eq!(listed(&sent[0]).len(), 3, "{}", sent[0]);
    assert!(
        sent[0]["email"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("+2 more")),
        "{}",
        sent[0]
    );
    // Two more open the next batch, which waits for its window.
    let later = comment(&herald, 5..7).await;
    let next = batched(&herald, &later).await;
    let (_, first) = herald.get(&format!("/events/{}", ids[0])).await;
    assert_ne!(
        first["rules"][0]["deliveries"][0]["deliveryId"], next[0],
        "a new batch"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(emails(&herald, 1, Duration::ZERO).await.len(), 1);
    herald.kill();
}
