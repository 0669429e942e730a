//! The fault test (issue 3): receivers failing a random 30% of requests. Every event × channel
//! ends `delivered` or `failed` with its attempts logged, nothing is missing, and no receiver sees
//! a delivery id more often than the log shows attempts for it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use herald_e2e::TestServer;
use herald_testing::{Kind, Receiver};
use serde_json::{Value, json};

use crate::{attempts, id};

const EVENTS: usize = 200;
const MAX_ATTEMPTS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_30_percent_of_requests_failing_every_delivery_ends_final_and_logged() {
    let server = TestServer::start_with(&["--retry-max-attempts", "3"]).await;
    let api = server.api();

    let mut channels: Vec<(String, Receiver)> = Vec::new();
    for (name, seed) in [("primary", 0x5EED_0001_u64), ("secondary", 0x5EED_0002)] {
        let receiver = Receiver::start(Kind::Webhook).await;
        receiver.fail_randomly(seed, 0.3);
        let channel = api
            .webhook_channel(name, &format!("{}/{name}", receiver.url), "generic")
            .await;
        receiver.set_signing_secret(channel["signingSecret"].as_str().unwrap());
        channels.push((id(&channel), receiver));
    }
    let channel_ids: Vec<&str> = channels.iter().map(|(c, _)| c.as_str()).collect();
    api.rule("order.created", &channel_ids).await;

    let mut event_ids = Vec::with_capacity(EVENTS);
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|n| json!({"type": "order.created", "module": "billing", "properties": {"n": n}}))
            .collect();
        event_ids.extend(api.events(&Value::Array(batch)).await);
    }
    assert_eq!(event_ids.len(), EVENTS);

    let mut retried = 0;
    let mut failed = 0;
    for (channel_id, receiver) in &channels {
        let deliveries = api
            .wait_final(channel_id, EVENTS, Duration::from_secs(60))
            .await;

        // Exactly one delivery per event on this channel.
        let mut by_event: HashMap<&str, &Value> = HashMap::new();
        for d in &deliveries {
            let event = d["eventId"].as_str().unwrap();
            assert!(
                by_event.insert(event, d).is_none(),
                "two deliveries of event {event} to channel {channel_id}"
            );
        }
        for event in &event_ids {
            assert!(
                by_event.contains_key(event.as_str()),
                "event {event} has no delivery to channel {channel_id}"
            );
        }
        assert_eq!(deliveries.len(), EVENTS);

        // What each receiver saw, per delivery id (= webhook-id), in arrival order.
        let arrivals = receiver.arrivals();
        let mut seen: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for a in &arrivals {
            assert!(a.problems.is_empty(), "{:?}", a.problems);
            let webhook_id = a.webhook_id.clone().expect("a webhook-id on every request");
            seen.entry(webhook_id).or_default().push(a.status);
        }

        for d in &deliveries {
            let delivery_id = d["id"].as_str().unwrap();
            let tries = attempts(d);
            let numbers: Vec<usize> = tries
                .iter()
                .map(|t| t["n"].as_u64().unwrap() as usize)
                .collect();
            assert_eq!(numbers, (1..=tries.len()).collect::<Vec<_>>(), "{d:#}");
            let codes: Vec<u16> = tries
                .iter()
                .map(|t| {
                    t["statusCode"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("an attempt without a status code: {d:#}"))
                        as u16
                })
                .collect();
            match d["status"].as_str().unwrap() {
                "delivered" => {
                    assert_eq!(codes.last(), Some(&200), "{d:#}");
                    assert!(codes[..codes.len() - 1].iter().all(|c| *c == 500), "{d:#}");
                }
                "failed" => {
                    failed += 1;
                    assert_eq!(codes, vec![500; MAX_ATTEMPTS], "{d:#}");
                    assert!(tries.iter().all(|t| t["errorClass"] == "server_error"));
                }
                other => panic!("delivery ended {other}: {d:#}"),
            }
            if tries.len() > 1 {
                retried += 1;
            }
            // No arrival under this delivery id beyond the attempts on record — and, on
            // loopback, every logged answer did arrive: the receiver's answers are the log's.
            let arrived = seen.remove(delivery_id).unwrap_or_default();
            assert!(
                arrived.len() <= tries.len(),
                "delivery {delivery_id} arrived {} times with {} attempts logged",
                arrived.len(),
                tries.len()
            );
            assert_eq!(arrived, codes, "delivery {delivery_id}: answers vs log");
        }
        assert!(
            seen.is_empty(),
            "requests under unknown delivery ids: {:?}",
            seen.keys().collect::<Vec<_>>()
        );
    }
    assert!(retried > 0, "30% failures caused no retry");
    // P(3 failures in a row) = 2.7%: some of the 400 deliveries should have run out.
    assert!(failed > 0, "no delivery ran out of attempts");
}
