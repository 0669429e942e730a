//! Lanes on the AWS path (DynamoDB lane items, SQS re-sends of held messages): a paced channel
//! is paced, and a 429 pauses the whole channel.

use std::time::Duration;

use herald_core::domain::delivery::{DeliveryStatus, ErrorClass};
use herald_e2e::aws::Herald;
use herald_e2e::aws::stack::Overrides;
use herald_testing::{Kind, Receiver, Reply};
use serde_json::json;

async fn deploy() -> Herald {
    Herald::deploy(&Overrides::default(), super::fast_retry())
        .await
        .expect("deploy")
}

/// A Slack channel with `rate_limit` to a fresh receiver, and a rule sending `key` to it.
async fn paced_slack(
    herald: &Herald,
    key: &str,
    rate_limit: serde_json::Value,
) -> (herald_core::domain::ChannelId, Receiver) {
    let receiver = Receiver::start(Kind::Slack).await;
    let id = herald
        .channel(json!({"kind": "slack", "name": key, "rateLimit": rate_limit, "config": {"webhookUrl": format!("{}/services/{key}", receiver.url)}}))
        .await
        .expect("slack channel");
    herald
        .rule(json!({"key": key, "channelIds": [id.to_string()]}))
        .await
        .expect("rule");
    (id, receiver)
}

async fn all_delivered(herald: &Herald, channel: herald_core::domain::ChannelId, n: usize) -> bool {
    let deliveries = herald.deliveries(channel).await.expect("deliveries");
    deliveries.len() == n
        && deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_channel_is_paced_across_dispatcher_invocations() {
    let herald = deploy().await;
    let (channel, receiver) =
        paced_slack(&herald, "disk.full", json!({"perSecond": 2, "burst": 2})).await;
    receiver.enforce_rate(2.0, 2);
    for i in 0..6 {
        super::post_event(&herald, "disk.full", json!({"disk": format!("sd{i}")})).await;
    }
    herald
        .run_until(Duration::from_secs(90), || {
            all_delivered(&herald, channel, 6)
        })
        .await
        .expect("every delivery ends delivered");
    assert_eq!(receiver.rate_limited(), 0, "no request over the limit");
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 6);
    let span = arrivals.last().expect("arrivals").at - arrivals[0].at;
    assert!(
        span >= chrono::Duration::milliseconds(1900),
        "2 at once, then two a second: {span}"
    );
    let deliveries = herald.deliveries(channel).await.expect("deliveries");
    assert!(
        deliveries.iter().all(|d| d.attempts.len() == 1),
        "a held delivery is not attempted: {deliveries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_channel_on_dynamodb() {
    let herald = deploy().await;
    let (channel, receiver) = paced_slack(
        &herald,
        "queue.stalled",
        json!({"perSecond": 5, "burst": 1}),
    )
    .await;
    receiver.script([Reply::RateLimited {
        retry_after_secs: 2,
    }]);
    for i in 0..4 {
        super::post_event(&herald, "queue.stalled", json!({"queue": format!("q{i}")})).await;
    }
    herald
        .run_until(Duration::from_secs(90), || {
            all_delivered(&herald, channel, 4)
        })
        .await
        .expect("every delivery ends delivered");
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 5, "four deliveries and the one refused");
    let paused = arrivals
        .iter()
        .find(|a| a.status == 429)
        .expect("the injected 429")
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
    let deliveries = herald.deliveries(channel).await.expect("deliveries");
    let limited: Vec<_> = deliveries
        .iter()
        .flat_map(|d| &d.attempts)
        .filter(|a| a.error_class == Some(ErrorClass::RateLimited))
        .collect();
    assert_eq!(limited.len(), 1, "the 429 is logged as an attempt");
}
