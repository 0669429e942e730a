//! A message ingest cannot process lands in the ingest DLQ after `MaxReceiveCount` receives;
//! the redrive brings it back and it is delivered.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use herald_core::domain::delivery::DeliveryStatus;
use herald_e2e::aws::stack::Overrides;
use herald_e2e::aws::{Function, Herald};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_every_receive_is_dead_lettered_and_redriven() {
    // A one-second visibility timeout instead of the template's 190 s, so it comes back quickly.
    let overrides = Overrides {
        visibility_timeout: HashMap::from([("IngestQueue".to_owned(), 1)]),
        ..Overrides::default()
    };
    let herald = Herald::deploy(&overrides, super::fast_retry())
        .await
        .expect("deploy");
    let max_receives: u64 = herald.stack.resolver.parameters["MaxReceiveCount"]
        .parse()
        .expect("MaxReceiveCount");
    let (ops, receiver) = super::slack(&herald, "ops").await;
    herald
        .rule(json!({"key": "invoice.paid", "channelIds": [ops.to_string()]}))
        .await
        .expect("rule");

    // Ingest cannot forward anything: every receive of the event fails.
    herald.match_queue_down.store(true, Ordering::SeqCst);
    let event_id = super::post_event(&herald, "invoice.paid", json!({"amount": 1})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while herald
        .queue_depth("IngestDeadLetterQueue")
        .await
        .expect("depth")
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "never dead-lettered: {:?}",
            herald.invocations(Function::Ingest)
        );
        herald.poll(Function::Ingest).await.expect("poll");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ingest = herald.invocations(Function::Ingest);
    assert_eq!(
        ingest.messages, max_receives,
        "handled MaxReceiveCount times, then dead-lettered"
    );
    assert_eq!(herald.queue_depth("IngestQueue").await.expect("depth"), 0);
    assert!(receiver.arrivals().is_empty());

    // The cause is fixed; the documented redrive moves the message back.
    herald.match_queue_down.store(false, Ordering::SeqCst);
    let moved = herald_shared::queue::sqs::redrive(
        &herald.test_clients.sqs,
        &herald.stack.queue("IngestDeadLetterQueue").url,
        &herald.stack.queue("IngestQueue").url,
        100,
    )
    .await
    .expect("redrive");
    assert_eq!(moved, 1);
    assert_eq!(
        herald
            .queue_depth("IngestDeadLetterQueue")
            .await
            .expect("depth"),
        0
    );

    super::until_final(&herald, &[ops], 1, Duration::from_secs(30)).await;
    assert_eq!(receiver.arrivals().len(), 1);
    let ds = herald.deliveries(ops).await.expect("deliveries");
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0].status, DeliveryStatus::Delivered);
    assert_eq!(
        ds[0].event_id.as_str(),
        event_id,
        "the redriven event is the one posted"
    );
}

/// An event another producer put on the bus that ingest refuses (here a misspelt `detail`
/// field) is not dropped: it is failed on every receive and lands whole in the ingest DLQ, where
/// an operator reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_from_another_producer_is_dead_lettered_not_dropped() {
    let overrides = Overrides {
        visibility_timeout: HashMap::from([("IngestQueue".to_owned(), 1)]),
        ..Overrides::default()
    };
    let herald = Herald::deploy(&overrides, super::fast_retry())
        .await
        .expect("deploy");
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(&herald.stack.bus_name)
        .source("sendora.billing")
        .detail_type("invoice.paid")
        .detail(
            json!({"orgId": herald.org_id.to_string(), "module": "billing", "propertes": {"amount": 1}})
                .to_string(),
        )
        .build();
    let out = herald
        .test_clients
        .events
        .put_events()
        .entries(entry)
        .send()
        .await
        .expect("put events");
    assert_eq!(out.failed_entry_count(), 0, "{:?}", out.entries());

    let deadline = Instant::now() + Duration::from_secs(60);
    while herald
        .queue_depth("IngestDeadLetterQueue")
        .await
        .expect("depth")
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "never dead-lettered: {:?}",
            herald.invocations(Function::Ingest)
        );
        herald.poll(Function::Ingest).await.expect("poll");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(herald.queue_depth("MatchQueue").await.expect("depth"), 0);
    let dead = herald
        .test_clients
        .sqs
        .receive_message()
        .queue_url(&herald.stack.queue("IngestDeadLetterQueue").url)
        .send()
        .await
        .expect("receive from the DLQ");
    let bodies: Vec<&str> = dead.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].contains("propertes"),
        "the event as published: {}",
        bodies[0]
    );
}
