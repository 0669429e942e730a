//! The channel test button: `POST .../notifications/channels/{id}/test` sends one synthetic
//! message through the real sender, synchronously and without retries, and logs it.

use herald_e2e::{Api, TestServer};
use herald_testing::{Kind, Receiver, Reply};
use serde_json::{Value, json};

use crate::{attempts, id};

async fn press(api: &Api, channel_id: &str) -> Value {
    let answer = api
        .post(
            &format!("/notifications/channels/{channel_id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// The log row the test wrote, found through the channel's dispatch log.
async fn log_row(api: &Api, channel_id: &str, log_id: &str) -> Value {
    api.channel_logs(channel_id)
        .await
        .into_iter()
        .find(|d| d["id"] == log_id)
        .unwrap_or_else(|| panic!("the test's log row {log_id} is not in the channel's log"))
}

#[tokio::test]
async fn testing_a_live_slack_channel_says_ok_and_logs_a_test_delivery() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Slack).await;
    let channel = api
        .slack_channel("ops", &format!("{}/services/T/B/live", receiver.url))
        .await;
    let channel_id = id(&channel);

    let result = press(&api, &channel_id).await;
    assert_eq!(result["ok"], true, "{result:#}");
    assert_eq!(result["statusCode"], 200);
    assert!(result["errorClass"].is_null(), "{result:#}");
    assert!(result["latencyMs"].is_u64(), "{result:#}");
    // Synchronous: the message is there when the answer is.
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 1);
    assert!(
        arrivals[0].problems.is_empty(),
        "{:?}",
        arrivals[0].problems
    );

    let log_id = result["logId"].as_str().expect("a logId");
    let row = log_row(&api, &channel_id, log_id).await;
    assert_eq!(row["trigger"], "test");
    assert_eq!(row["status"], "delivered");
    assert_eq!(attempts(&row).len(), 1);
}

#[tokio::test]
async fn testing_a_deleted_slack_channel_says_why_and_does_not_retry() {
    let server = TestServer::start().await;
    let api = server.api();
    let receiver = Receiver::start(Kind::Slack).await;
    receiver.always(Reply::ChannelNotFound);
    let channel = api
        .slack_channel("ops", &format!("{}/services/T/B/gone", receiver.url))
        .await;
    let channel_id = id(&channel);

    let result = press(&api, &channel_id).await;
    assert_eq!(result["ok"], false, "{result:#}");
    assert_eq!(result["statusCode"], 404);
    assert_eq!(result["errorClass"], "channel_gone");
    assert!(
        result["message"]
            .as_str()
            .is_some_and(|m| m.contains("channel_not_found")),
        "{result:#}"
    );
    let row = log_row(&api, &channel_id, result["logId"].as_str().unwrap()).await;
    assert_eq!(row["trigger"], "test");
    assert_eq!(row["status"], "failed");
    assert_eq!(attempts(&row).len(), 1);
    assert_eq!(receiver.arrivals().len(), 1, "no retry");

    // A 500 is not retried either: the button answers with the one attempt.
    receiver.always(Reply::ServerError);
    let result = press(&api, &channel_id).await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["statusCode"], 500);
    assert_eq!(result["errorClass"], "server_error");
    assert_eq!(receiver.arrivals().len(), 2, "no retry");
}

#[tokio::test]
async fn a_cloud_metadata_address_is_refused_when_the_channel_is_saved() {
    let server = TestServer::start().await;
    let api = server.api();
    for url in [
        "http://169.254.169.254/",
        "https://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        // The same address written as one decimal number.
        "http://2852039166/",
    ] {
        for (body, field) in [
            (
                json!({"kind": "slack", "name": "meta", "config": {"webhookUrl": url}}),
                "config.webhookUrl",
            ),
            (
                json!({"kind": "webhook", "name": "meta", "config": {"url": url, "format": "generic"}}),
                "config.url",
            ),
        ] {
            let answer = api.post("/notifications/channels", &body).await;
            assert_eq!(answer.status, 422, "{url}: {}", answer.body);
            assert_eq!(
                answer.body["error"]["field"], field,
                "{url}: {}",
                answer.body
            );
            assert!(answer.body["error"]["message"].is_string());
        }
    }
    let list = api.get("/notifications/channels", &[]).await;
    assert_eq!(list.body["items"], json!([]), "nothing was saved");
}

#[tokio::test]
async fn a_target_no_longer_allowed_is_blocked_at_send_time() {
    // Saved while loopback was allowed; after a restart that no longer allows it, the test
    // button reports a configuration error without a request leaving.
    let server = TestServer::start().await;
    let receiver = Receiver::start(Kind::Slack).await;
    let channel = server
        .api()
        .slack_channel("ops", &format!("{}/services/T/B/blocked", receiver.url))
        .await;
    let channel_id = id(&channel);
    let server = server
        .restart_with(&["--allow-private-targets", "10.255.255.0/24"])
        .await;
    let api = server.api();

    let result = press(&api, &channel_id).await;
    assert_eq!(result["ok"], false, "{result:#}");
    assert_eq!(result["errorClass"], "configuration", "{result:#}");
    assert!(result["statusCode"].is_null(), "{result:#}");
    assert!(
        receiver.arrivals().is_empty(),
        "nothing reached a blocked address"
    );
}
