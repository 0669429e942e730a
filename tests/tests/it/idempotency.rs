//! Event ids: a repeated id is one event (one delivery); events without ids are distinct.

use std::time::Duration;

use herald_e2e::TestServer;
use herald_testing::{Kind, Receiver};
use serde_json::json;

use crate::{WAIT, id};

async fn setup(server: &TestServer) -> (Receiver, String) {
    let receiver = Receiver::start(Kind::Slack).await;
    let api = server.api();
    let channel = api
        .slack_channel("ops", &format!("{}/services/T/B/idem", receiver.url))
        .await;
    let channel_id = id(&channel);
    api.rule("disk.full", &[&channel_id]).await;
    (receiver, channel_id)
}

#[tokio::test]
async fn the_same_event_id_posted_twice_is_delivered_once() {
    let server = TestServer::start().await;
    let (receiver, channel_id) = setup(&server).await;
    let api = server.api();
    let event = json!({ "id": "evt-1", "type": "disk.full", "module": "ops", "properties": {"host": "db1"} });
    assert_eq!(api.events(&event).await, ["evt-1"]);
    assert_eq!(api.events(&event).await, ["evt-1"]);
    // And once more inside a batch, next to a distinct event that marks the end of processing.
    let marker = json!({ "id": "evt-2", "type": "disk.full", "module": "ops" });
    assert_eq!(
        api.events(&json!([event, marker])).await,
        ["evt-1", "evt-2"]
    );

    let deliveries = api.wait_final(&channel_id, 2, WAIT).await;
    let mut events: Vec<&str> = deliveries
        .iter()
        .map(|d| d["eventId"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["evt-1", "evt-2"], "{deliveries:#?}");
    // Let the pipeline settle: a late duplicate would show up within this time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.channel_logs(&channel_id).await.len(), 2);
    assert_eq!(receiver.arrivals().len(), 2);
}

#[tokio::test]
async fn identical_events_without_ids_are_two_deliveries() {
    let server = TestServer::start().await;
    let (receiver, channel_id) = setup(&server).await;
    let api = server.api();
    let event = json!({ "type": "disk.full", "module": "ops", "properties": {"host": "db1"} });
    let first = api.events(&event).await;
    let second = api.events(&event).await;
    assert_ne!(first, second, "each gets its own id");

    let deliveries = api.wait_final(&channel_id, 2, WAIT).await;
    assert_eq!(deliveries.len(), 2, "{deliveries:#?}");
    assert!(deliveries.iter().all(|d| d["status"] == "delivered"));
    let mut events: Vec<String> = deliveries
        .iter()
        .map(|d| d["eventId"].as_str().unwrap().to_owned())
        .collect();
    events.sort_unstable();
    let mut expected = vec![first[0].clone(), second[0].clone()];
    expected.sort_unstable();
    assert_eq!(events, expected);
    assert_eq!(receiver.arrivals().len(), 2);
}
