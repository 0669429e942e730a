//! The ingest handler over the embedded store and queues, driven like a queue consumer: what an
//! operator finds after ingest met an event it cannot process.
#![allow(clippy::unwrap_used)]

mod feedback;

use std::time::Duration;

use chrono::Utc;
use herald_core::domain::OrgId;
use herald_ingest::Ingest;
use herald_shared::pipeline::QueueMessage;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::queue::{Outgoing, Queue};
use herald_shared::store::embedded::Embedded;
use serde_json::{Value, json};

const MAX_RECEIVES: u32 = 3;

fn envelope(detail: Value) -> String {
    json!({
        "version": "0", "id": uuid_like(), "detail-type": "email.bounced", "source": "sendora.email",
        "account": "1", "time": "2026-05-01T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": detail,
    })
    .to_string()
}

fn uuid_like() -> String {
    format!("eb-{}", OrgId::new())
}

fn nested(levels: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

/// Sends `body` to a fresh ingest queue and consumes it as the Lambda event source mapping (or
/// `herald serve`'s worker) does — handle, delete what did not fail — until the queue is empty.
/// Returns what then sits in the ingest DLQ and how many events reached the match queue.
async fn ingest(body: String) -> (Vec<String>, usize) {
    let store = Embedded::in_memory().unwrap();
    let queues = EmbeddedQueues::in_memory().unwrap();
    let ingest_queue = queues.queue(
        "ingest",
        QueueSettings {
            visibility_timeout: Duration::ZERO,
            max_receives: MAX_RECEIVES,
            dead_letter: Some("ingest-dlq".into()),
        },
    );
    let match_queue = queues.queue("match", QueueSettings::default());
    ingest_queue
        .send_batch(vec![Outgoing::now(body)])
        .await
        .unwrap();
    let handler = Ingest {
        store: &store,
        match_queue: &match_queue,
        retention: chrono::Duration::days(1),
    };
    for _ in 0..=MAX_RECEIVES + 1 {
        let received = ingest_queue
            .receive(10, Duration::from_millis(50))
            .await
            .unwrap();
        if received.is_empty() {
            continue;
        }
        let messages = received
            .iter()
            .map(|r| QueueMessage {
                id: r.message_id.clone(),
                body: r.body.clone(),
                receive_count: r.receive_count,
            })
            .collect();
        let outcome = handler.handle(messages, Utc::now()).await;
        let done: Vec<_> = received
            .iter()
            .filter(|r| !outcome.failed.contains(&r.message_id))
            .map(|r| r.receipt.clone())
            .collect();
        ingest_queue.delete_batch(&done).await.unwrap();
    }
    let dead = queues
        .peek("ingest-dlq", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.body)
        .collect();
    (dead, queues.approximate_count("match").await.unwrap())
}

#[tokio::test]
async fn a_valid_event_is_forwarded_and_nothing_is_dead_lettered() {
    let org = OrgId::new().to_string();
    let (dead, matched) = ingest(envelope(
        json!({"orgId": org, "module": "email", "properties": {"to": "x"}}),
    ))
    .await;
    assert_eq!((dead.len(), matched), (0, 1));
}

#[tokio::test]
async fn an_event_nested_too_deep_for_the_envelope_ends_in_the_dlq_whole() {
    let org = OrgId::new().to_string();
    let body = envelope(json!({"orgId": org, "module": "email", "properties": nested(125)}));
    let (dead, matched) = ingest(body.clone()).await;
    assert_eq!(matched, 0);
    assert_eq!(
        dead,
        vec![body],
        "the refused event must be dead-lettered as received"
    );
}

#[tokio::test]
async fn properties_over_the_event_limit_end_in_the_dlq() {
    let org = OrgId::new().to_string();
    let body = envelope(json!({"orgId": org, "module": "email", "properties": nested(40)}));
    let (dead, matched) = ingest(body.clone()).await;
    assert_eq!((dead, matched), (vec![body], 0));
}

#[tokio::test]
async fn an_unknown_detail_field_is_not_dropped_but_dead_lettered() {
    let org = OrgId::new().to_string();
    let body = envelope(json!({"orgId": org, "module": "email", "propertes": {"to": "x"}}));
    let (dead, matched) = ingest(body.clone()).await;
    assert_eq!((dead, matched), (vec![body], 0));
}

#[tokio::test]
async fn a_malformed_envelope_is_dead_lettered() {
    let (dead, matched) = ingest("{\"not\": \"an envelope\"}".to_owned()).await;
    assert_eq!((dead.len(), matched), (1, 0));
}

/// What replay reads: an accepted event is in its org's by-time index, with the record's
/// expiry, and a redelivery of the same message adds nothing.
#[tokio::test]
async fn an_accepted_event_is_indexed_by_time_once_with_its_records_expiry() {
    use herald_shared::repo::events;
    let store = Embedded::in_memory().unwrap();
    let queues = EmbeddedQueues::in_memory().unwrap();
    let match_queue = queues.queue("match", QueueSettings::default());
    let handler = Ingest {
        store: &store,
        match_queue: &match_queue,
        retention: chrono::Duration::days(1),
    };
    let org = OrgId::new();
    let body = envelope(json!({"orgId": org.to_string(), "id": "evt-1", "module": "email"}));
    let now = Utc::now();
    for n in 1..=2 {
        let outcome = handler
            .handle(
                vec![QueueMessage {
                    id: format!("m-{n}"),
                    body: body.clone(),
                    receive_count: 1,
                }],
                now,
            )
            .await;
        assert!(outcome.failed.is_empty());
    }
    let window = events::in_window(
        &store,
        org,
        now - chrono::Duration::minutes(1),
        now + chrono::Duration::minutes(1),
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(window.events.len(), 1, "{window:?}");
    let event = &window.events[0].event;
    assert_eq!(event.id.as_str(), "evt-1");
    let record = herald_shared::store::Store::get(
        &store,
        &herald_shared::store::keys::event(org, &event.id),
    )
    .await
    .unwrap()
    .unwrap();
    let indexed = herald_shared::store::Store::get(
        &store,
        &herald_shared::store::keys::event_in_index(org, event.received_at, &event.id),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(indexed.ttl, record.ttl);
    assert_eq!(
        indexed.ttl,
        Some((now + chrono::Duration::days(1)).timestamp())
    );
}
