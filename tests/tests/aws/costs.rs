//! AWS calls per routed event, for `docs/cost.md`: N events through the whole pipeline for two
//! shapes, every AWS request counted by the SDK interceptor, Lambda invocations counted as
//! handler batches. Printed with `println!`: run with `-- --nocapture` to see the tables.

use std::time::Duration;

use herald_core::domain::ChannelId;
use herald_core::domain::delivery::DeliveryStatus;
use herald_e2e::aws::stack::Overrides;
use herald_e2e::aws::{Function, Herald};
use serde_json::json;

const EVENTS: u64 = 50;

async fn measure(title: &str, slack_channels: &[&str], webhooks: &[&str]) {
    let herald = Herald::deploy(&Overrides::default(), super::fast_retry())
        .await
        .expect("deploy");
    let mut channels: Vec<ChannelId> = Vec::new();
    let mut receivers = Vec::new();
    for name in slack_channels {
        let (id, receiver) = super::slack(&herald, name).await;
        // Slack's default pacing (1/s) would hold most of the 50 events and measure the
        // re-sends of held messages, not a delivery; a limit the run never reaches keeps the
        // lane's cost per attempt (a read and a conditional write) in the table.
        let (status, patched) = herald
            .api(
                "PATCH",
                &format!("/notifications/channels/{id}"),
                Some(&json!({"rateLimit": {"perSecond": 100, "burst": 1000}})),
            )
            .await;
        assert_eq!(status, http::StatusCode::OK, "{patched}");
        channels.push(id);
        receivers.push(receiver);
    }
    for name in webhooks {
        let (id, receiver) = super::webhook(&herald, name).await;
        channels.push(id);
        receivers.push(receiver);
    }
    let ids: Vec<String> = channels.iter().map(ToString::to_string).collect();
    herald
        .rule(json!({"key": "invoice.paid", "channelIds": ids}))
        .await
        .expect("rule");
    herald.calls.reset();

    // One event per request: the API Gateway request and api invocation are per event.
    for i in 0..EVENTS {
        super::post_event(&herald, "invoice.paid", json!({"n": i})).await;
        herald
            .calls
            .record("apigw", "ApiGateway", "HTTP API request", 1);
        herald.calls.record("apigw", "Lambda", "Invoke api", 1);
    }
    let expected = usize::try_from(EVENTS).expect("small") * channels.len();
    super::until_final(&herald, &channels, expected, Duration::from_secs(120)).await;

    assert_eq!(
        receivers.iter().map(|r| r.arrivals().len()).sum::<usize>(),
        expected,
        "each delivery arrived once"
    );
    for c in &channels {
        let ds = herald.deliveries(*c).await.expect("deliveries");
        assert_eq!(ds.len(), usize::try_from(EVENTS).expect("small"));
        assert!(
            ds.iter()
                .all(|d| d.status == DeliveryStatus::Delivered && d.attempts.len() == 1)
        );
    }
    assert_eq!(herald.calls.total("EventBridge", "PutEvents"), EVENTS);
    println!("{}", herald.calls.table(title, EVENTS));
    println!(
        "{title}: table items (count, mean bytes): {:?}",
        herald.item_sizes().await.expect("item sizes")
    );
    println!(
        "{title}: handler batches {:?}\n",
        Function::ALL.map(|f| (f, herald.invocations(f)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_per_event_one_slack_channel() {
    measure("shape A: one Slack channel", &["ops"], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_per_event_three_channels() {
    measure(
        "shape B: three channels (Slack + 2 webhooks)",
        &["ops"],
        &["billing", "audit"],
    )
    .await;
}
