//! The pipeline through the AWS adapters against the emulator (`HERALD_TEST_AWS_ENDPOINT`):
//! resources from `template.yaml`, `POST /events` → EventBridge → rule → ingest queue → ingest →
//! match queue → matcher → dispatch queue → dispatcher → receivers on loopback; the DLQ and its
//! redrive; a resend through the api's dispatch queue; and the AWS calls per routed event
//! (`docs/cost.md`). See the table with
//! `cargo test -p herald-e2e --test aws -- --nocapture`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use herald_core::delivery::retry::RetryPolicy;
use herald_core::domain::ChannelId;
use herald_core::domain::delivery::{DeliveryStatus, ErrorClass};
use herald_e2e::aws::stack::Overrides;
use herald_e2e::aws::{Function, Herald};
use herald_testing::{Kind, Receiver, Reply};
use serde_json::{Value, json};

mod costs;
mod dlq;
mod lanes;
mod provisioning;

/// The test retry policy: base 1 s, so a retry comes back within the test's time.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_secs(1),
        multiplier: 2,
        max_wait: Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

/// A Slack channel `name` and the Slack-like receiver behind it.
async fn slack(herald: &Herald, name: &str) -> (ChannelId, Receiver) {
    let receiver = Receiver::start(Kind::Slack).await;
    let id = herald
        .channel(json!({"kind": "slack", "name": name, "config": {"webhookUrl": format!("{}/services/{name}", receiver.url)}}))
        .await
        .expect("slack channel");
    (id, receiver)
}

/// A generic webhook channel `name` and the receiver behind it, which verifies the channel's
/// signatures (an unverifiable request is answered 400 and fails the test's expectations).
async fn webhook(herald: &Herald, name: &str) -> (ChannelId, Receiver) {
    let receiver = Receiver::start(Kind::Webhook).await;
    let created = herald
        .create_channel(json!({"kind": "webhook", "name": name, "config": {"url": format!("{}/hooks/{name}", receiver.url)}}))
        .await
        .expect("webhook channel");
    receiver.set_signing_secret(
        created["signingSecret"]
            .as_str()
            .expect("signing secret shown once"),
    );
    let id = created["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("channel id");
    (id, receiver)
}

/// `POST /events` with one event of `type`; the accepted event's id.
async fn post_event(herald: &Herald, event_type: &str, properties: Value) -> String {
    let (status, body) = herald
        .api(
            "POST",
            "/events",
            Some(&json!({"type": event_type, "module": "billing", "properties": properties})),
        )
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    body["items"][0]["id"]
        .as_str()
        .expect("event id")
        .to_owned()
}

/// Runs the pipeline until `n` deliveries to `channel` are final.
async fn until_final(herald: &Herald, channels: &[ChannelId], n: usize, timeout: Duration) {
    herald
        .run_until(timeout, || async {
            let mut finals = 0;
            for c in channels {
                finals += herald
                    .deliveries(*c)
                    .await
                    .expect("deliveries")
                    .iter()
                    .filter(|d| d.status.is_final())
                    .count();
            }
            finals >= n
        })
        .await
        .expect("pipeline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_to_the_api_reach_slack_and_a_webhook_through_aws() {
    let herald = Herald::deploy(&Overrides::default(), fast_retry())
        .await
        .expect("deploy");
    let (ops, slack_rx) = slack(&herald, "ops").await;
    let hook_rx = Receiver::start(Kind::Webhook).await;
    let created = herald
        .create_channel(json!({"kind": "webhook", "name": "billing", "config": {"url": format!("{}/hooks/billing", hook_rx.url)}}))
        .await
        .expect("webhook channel");
    let hook: ChannelId = created["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("channel id");
    let secret = created["signingSecret"]
        .as_str()
        .expect("signing secret shown once");
    hook_rx.set_signing_secret(secret);
    herald
        .rule(json!({"key": "paid", "channelIds": [ops.to_string(), hook.to_string()], "match": {"field": "type", "op": "eq", "value": "invoice.paid"}}))
        .await
        .expect("rule");

    let paid = post_event(
        &herald,
        "invoice.paid",
        json!({"amount": 1200, "currency": "EUR"}),
    )
    .await;
    let _other = post_event(&herald, "invoice.created", json!({"amount": 5})).await;
    until_final(&herald, &[ops, hook], 2, Duration::from_secs(30)).await;

    let slack_in = slack_rx.arrivals();
    assert_eq!(slack_in.len(), 1, "one Slack message: {slack_in:?}");
    let attachment = &slack_in[0].body["attachments"][0];
    assert!(
        attachment["fallback"]
            .as_str()
            .is_some_and(|f| f.contains("Invoice paid")),
        "{attachment}"
    );
    let hook_in = hook_rx.arrivals();
    assert!(hook_in.iter().all(|a| a.problems.is_empty()), "{hook_in:?}");
    assert_eq!(hook_in.len(), 1, "one webhook call: {hook_in:?}");
    assert_eq!(
        hook_in[0].body["id"], paid,
        "the webhook carries the event: {}",
        hook_in[0].body
    );
    let header = |name: &str| {
        hook_in[0].headers[name]
            .to_str()
            .expect("header")
            .to_owned()
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 secret");
    herald_core::delivery::signing::verify(
        &key,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &header("webhook-signature"),
        &hook_in[0].raw,
        chrono::Utc::now().timestamp(),
        300,
    )
    .expect("the webhook signature verifies with the channel's secret");

    for channel in [ops, hook] {
        let ds = herald.deliveries(channel).await.expect("deliveries");
        assert_eq!(ds.len(), 1, "{ds:?}");
        assert_eq!(ds[0].status, DeliveryStatus::Delivered, "{ds:?}");
        assert_eq!(ds[0].event_id.as_str(), paid);
        assert_eq!(ds[0].attempts.len(), 1);
        assert_eq!(ds[0].attempts[0].status_code, Some(200));
    }
    let webhook_id = hook_in[0].headers["webhook-id"].to_str().expect("header");
    let ds = herald.deliveries(hook).await.expect("deliveries");
    assert_eq!(
        webhook_id,
        ds[0].id.to_string(),
        "webhook-id is the delivery id"
    );
    for dlq in [
        "IngestDeadLetterQueue",
        "MatchDeadLetterQueue",
        "DispatchDeadLetterQueue",
    ] {
        assert_eq!(herald.queue_depth(dlq).await.expect("depth"), 0, "{dlq}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_after_a_delay_and_then_delivered() {
    let herald = Herald::deploy(&Overrides::default(), fast_retry())
        .await
        .expect("deploy");
    let (ops, receiver) = slack(&herald, "ops").await;
    herald
        .rule(json!({"key": "deploy.finished", "channelIds": [ops.to_string()]}))
        .await
        .expect("rule");
    receiver.script([Reply::ServerError]);

    post_event(&herald, "deploy.finished", json!({"service": "api"})).await;
    until_final(&herald, &[ops], 1, Duration::from_secs(30)).await;

    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!((arrivals[0].status, arrivals[1].status), (500, 200));
    let gap = arrivals[1].at - arrivals[0].at;
    assert!(
        gap >= chrono::Duration::milliseconds(900),
        "the retry waited for its delay: {gap:?}"
    );
    let d = &herald.deliveries(ops).await.expect("deliveries")[0];
    assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d.attempts.len(), 2, "{d:?}");
    assert_eq!(d.attempts[0].status_code, Some(500));
    assert_eq!(d.attempts[0].error_class, Some(ErrorClass::ServerError));
    assert_eq!(d.attempts[1].status_code, Some(200));
    assert_eq!(d.attempts[1].n, 2);
    assert_eq!(
        herald.invocations(Function::Dispatcher).messages,
        2,
        "one message per attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_resent_through_sqs_arrives_again_with_the_same_webhook_id() {
    use herald_core::domain::delivery::AttemptTrigger;
    let herald = Herald::deploy(&Overrides::default(), fast_retry())
        .await
        .expect("deploy");
    let (hook, receiver) = webhook(&herald, "incidents").await;
    herald
        .rule(json!({"key": "invoice.failed", "channelIds": [hook.to_string()]}))
        .await
        .expect("rule");
    receiver.script([Reply::ChannelNotFound]);
    post_event(&herald, "invoice.failed", json!({"invoice": 1042})).await;
    until_final(&herald, &[hook], 1, Duration::from_secs(30)).await;
    let d = herald.deliveries(hook).await.expect("deliveries")[0].clone();
    assert_eq!(d.status, DeliveryStatus::Failed, "{d:?}");

    let (status, body) = herald
        .api(
            "POST",
            &format!("/notifications/logs/{}/resend", d.id),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{body}");
    herald
        .run_until(Duration::from_secs(30), || async {
            herald.deliveries(hook).await.expect("deliveries")[0].status
                == DeliveryStatus::Delivered
        })
        .await
        .expect("pipeline");

    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!(arrivals[1].webhook_id, arrivals[0].webhook_id);
    assert_eq!(arrivals[1].webhook_id, Some(d.id.to_string()));
    assert!(
        arrivals[1].problems.is_empty(),
        "{:?}",
        arrivals[1].problems
    );
    let d = &herald.deliveries(hook).await.expect("deliveries")[0];
    assert_eq!(d.attempts.len(), 2, "{d:?}");
    assert_eq!(d.attempts[1].trigger, AttemptTrigger::Manual);
    assert_eq!(d.attempts[1].status_code, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_beside_the_old_one_through_dynamodb_until_expired() {
    let herald = Herald::deploy(&Overrides::default(), fast_retry())
        .await
        .expect("deploy");
    let receiver = Receiver::start(Kind::Webhook).await;
    let created = herald
        .create_channel(json!({"kind": "webhook", "name": "billing", "config": {"url": format!("{}/hooks/billing", receiver.url)}}))
        .await
        .expect("webhook channel");
    let old = created["signingSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let hook: ChannelId = created["id"].as_str().expect("id").parse().expect("id");
    receiver.set_signing_secret(&old);
    herald
        .rule(json!({"key": "invoice.paid", "channelIds": [hook.to_string()]}))
        .await
        .expect("rule");

    let (status, rotated) = herald
        .api(
            "POST",
            &format!("/notifications/channels/{hook}/secret/rotate"),
            Some(&json!({"graceHours": 1})),
        )
        .await;
    assert_eq!(status, http::StatusCode::OK, "{rotated}");
    let new = rotated["signingSecret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    post_event(&herald, "invoice.paid", json!({"n": 1})).await;
    until_final(&herald, &[hook], 1, Duration::from_secs(30)).await;

    let (status, expired) = herald
        .api(
            "POST",
            &format!("/notifications/channels/{hook}/secret/expire-previous"),
            None,
        )
        .await;
    assert_eq!(status, http::StatusCode::OK, "{expired}");
    assert_eq!(expired["signing"]["previous"], json!([]), "{expired}");
    receiver.set_signing_secret(&new);
    post_event(&herald, "invoice.paid", json!({"n": 2})).await;
    until_final(&herald, &[hook], 2, Duration::from_secs(30)).await;

    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!(arrivals[0].signatures().len(), 2);
    assert!(arrivals[0].verifies_with(&new) && arrivals[0].verifies_with(&old));
    assert_eq!(arrivals[1].signatures().len(), 1);
    assert!(arrivals[1].verifies_with(&new) && !arrivals[1].verifies_with(&old));
}
