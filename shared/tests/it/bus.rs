//! The bus adapters: EventBridge (through the AWS SDK against the emulator at
//! `HERALD_TEST_AWS_ENDPOINT`, with a rule delivering to an SQS queue, as deployed) and the local
//! queue bus of `herald serve`. Both must hand the ingest queue the same `BusEnvelope`.

use std::sync::Arc;
use std::time::Duration;

use herald_shared::bus::eventbridge::EventBridgeBus;
use herald_shared::bus::local::QueueBus;
use herald_shared::bus::{BusEntry, BusEnvelope, BusError, EventBus};
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::queue::sqs::{self, SqsQueue};
use herald_shared::queue::{MAX_BATCH, Queue, Received};
use serde_json::json;

fn entry(source: &str, detail_type: &str, detail: serde_json::Value) -> BusEntry {
    BusEntry {
        source: source.into(),
        detail_type: detail_type.into(),
        detail,
    }
}

async fn receive_envelopes(queue: &dyn Queue, n: usize) -> Vec<BusEnvelope> {
    let mut got: Vec<Received> = Vec::new();
    for _ in 0..10 {
        if got.len() >= n {
            break;
        }
        got.extend(
            queue
                .receive(MAX_BATCH, Duration::from_secs(1))
                .await
                .expect("receive"),
        );
    }
    got.iter()
        .map(|m| serde_json::from_str(&m.body).unwrap_or_else(|e| panic!("{e}: {}", m.body)))
        .collect()
}

/// A bus whose rule (matching `source`) sends to a fresh queue, as the SAM template wires it.
async fn bus_to_queue(source: &str) -> (EventBridgeBus, SqsQueue) {
    let config = herald_testing::emulator::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs_client = aws_sdk_sqs::Client::new(&config);

    let bus_name = herald_testing::emulator::unique("herald-bus");
    events
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .expect("create bus");
    let urls = sqs::create_queue_with_dlq(
        &sqs_client,
        &herald_testing::emulator::unique("ingest"),
        Duration::from_secs(30),
        5,
    )
    .await
    .expect("create queue");
    let queue_arn = sqs::queue_arn(&sqs_client, &urls.main)
        .await
        .expect("queue arn");
    let rule = herald_testing::emulator::unique("to-ingest");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus_name)
        .event_pattern(json!({ "source": [source] }).to_string())
        .send()
        .await
        .expect("put rule");
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("ingest")
        .arn(queue_arn)
        .build()
        .expect("target");
    let out = events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus_name)
        .targets(target)
        .send()
        .await
        .expect("put targets");
    assert_eq!(out.failed_entry_count(), 0, "{out:?}");

    (
        EventBridgeBus::new(events, bus_name),
        SqsQueue::new(sqs_client, urls.main),
    )
}

#[tokio::test]
async fn events_put_on_eventbridge_reach_the_queue_as_envelopes() {
    let source = herald_testing::emulator::unique("herald.test");
    let (bus, queue) = bus_to_queue(&source).await;
    let detail = json!({ "orgId": "org_1", "module": "billing", "properties": { "amount": 12 } });

    bus.put_events(vec![
        entry(&source, "invoice.paid", detail.clone()),
        entry("someone.else", "ignored", json!({})),
    ])
    .await
    .expect("put_events");

    let got = receive_envelopes(&queue, 1).await;
    assert_eq!(
        got.len(),
        1,
        "only the entry matching the rule is delivered: {got:?}"
    );
    assert_eq!(got[0].source, source);
    assert_eq!(got[0].detail_type, "invoice.paid");
    assert_eq!(got[0].detail, detail);
    assert!(!got[0].id.is_empty());
    let late = queue
        .receive(MAX_BATCH, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(late.is_empty(), "the other source was not routed: {late:?}");
}

#[tokio::test]
async fn entries_eventbridge_refuses_are_reported_by_index() {
    let source = herald_testing::emulator::unique("herald.test");
    let (bus, queue) = bus_to_queue(&source).await;

    let result = bus
        .put_events(vec![
            entry(&source, "ok", json!({ "n": 1 })),
            entry("", "no-source", json!({ "n": 2 })),
        ])
        .await;

    match result {
        Err(BusError::Refused(refused)) => {
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].0, 1);
            assert!(refused[0].1.contains("InvalidArgument"), "{refused:?}");
        }
        other => panic!("expected the second entry refused, got {other:?}"),
    }
    let got = receive_envelopes(&queue, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].detail_type, "ok",
        "the accepted entry was still published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_bus_writes_eventbridge_envelopes_to_the_queue() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let queue = Arc::new(queues.queue("ingest", QueueSettings::default()));
    let bus = QueueBus::new(queue.clone());
    let entries: Vec<_> = (0..12)
        .map(|i| {
            entry(
                herald_shared::bus::API_SOURCE,
                "user.signed_up",
                json!({ "n": i }),
            )
        })
        .collect();

    bus.put_events(entries).await.expect("put_events");

    let got = receive_envelopes(queue.as_ref(), 12).await;
    assert_eq!(got.len(), 12, "more than one batch is split, not refused");
    let mut ns: Vec<_> = got
        .iter()
        .map(|e| e.detail["n"].as_i64().expect("n"))
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..12).collect::<Vec<_>>());
    assert!(
        got.iter()
            .all(|e| e.source == herald_shared::bus::API_SOURCE)
    );
    assert!(
        got.iter()
            .all(|e| e.detail_type == "user.signed_up" && e.version == "0")
    );
    let ids: std::collections::HashSet<_> = got.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 12, "each envelope has its own id");
}
