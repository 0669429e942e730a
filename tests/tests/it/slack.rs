//! Slack: the message shape, retries (500, 429 with Retry-After), a deleted channel, exhaustion.

use herald_e2e::TestServer;
use herald_testing::{Kind, Receiver, Reply};
use serde_json::json;

use crate::{WAIT, attempt_times, attempts, id};

/// A Slack channel behind a fresh receiver, and a rule sending `email.bounced` events to it.
async fn setup(server: &TestServer) -> (Receiver, String) {
    let receiver = Receiver::start(Kind::Slack).await;
    let api = server.api();
    let channel = api
        .slack_channel(
            "email alerts",
            &format!(
                "{}/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
                receiver.url
            ),
        )
        .await;
    let channel_id = id(&channel);
    api.rule("email.bounced", &[&channel_id]).await;
    (receiver, channel_id)
}

fn bounce() -> serde_json::Value {
    json!({
        "type": "email.bounced",
        "module": "email",
        "properties": { "to": "alice@example.com", "reason": "mailbox full", "url": "https://app.example.com/m/1" }
    })
}

#[tokio::test]
async fn a_slack_message_arrives_with_the_attachment_shape_and_the_module_colour() {
    let server = TestServer::start().await;
    let (receiver, channel_id) = setup(&server).await;
    let api = server.api();
    let event_ids = api.events(&bounce()).await;

    let arrivals = receiver.wait_for(1, crate::WAIT).await;
    let arrival = &arrivals[0];
    assert!(arrival.problems.is_empty(), "{:?}", arrival.problems);
    assert_eq!(arrival.path, "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX");
    let a = &arrival.body["attachments"][0];
    assert_eq!(a["color"], "#1D9BD1", "the email module is blue");
    assert_eq!(a["title"], "Email bounced");
    assert_eq!(a["fallback"], "[email] Email bounced");
    assert_eq!(
        arrival.body["text"], "[email] Email bounced",
        "the top-level text is what a notification shows"
    );
    assert_eq!(a["title_link"], "https://app.example.com/m/1");
    let fields = a["fields"].as_array().unwrap();
    assert!(
        fields.contains(&json!({"title": "reason", "value": "mailbox full", "short": true})),
        "{fields:#?}"
    );
    assert!(
        !fields.iter().any(|f| f["title"] == "url"),
        "the url is the title link, not also a field: {fields:#?}"
    );
    assert!(a["footer"].as_str().unwrap().contains("email.bounced"));

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["eventId"], event_ids[0].as_str());
    assert_eq!(d["eventType"], "email.bounced");
    assert_eq!(d["ruleKey"], "email.bounced");
    assert_eq!(d["channelKind"], "slack");
    assert_eq!(d["trigger"], "event");
    let tries = attempts(d);
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0]["n"], 1);
    assert_eq!(tries[0]["statusCode"], 200);
    assert!(tries[0]["errorClass"].is_null());
    // The channel's own log shows the same delivery.
    let by_channel = api.channel_logs(&channel_id).await;
    assert_eq!(by_channel.len(), 1);
    assert_eq!(by_channel[0]["id"], d["id"]);
    assert_eq!(receiver.arrivals().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_500_is_retried_and_the_second_attempt_delivers() {
    let server = TestServer::start().await;
    let (receiver, channel_id) = setup(&server).await;
    receiver.script([Reply::ServerError]);
    let api = server.api();
    api.events(&bounce()).await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered", "{d:#}");
    let tries = attempts(d);
    assert_eq!(tries.len(), 2, "{d:#}");
    assert_eq!(tries[0]["n"], 1);
    assert_eq!(tries[0]["statusCode"], 500);
    assert_eq!(tries[0]["errorClass"], "server_error");
    assert!(
        tries[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("internal_error")),
        "the response body is logged: {}",
        tries[0]
    );
    assert_eq!(tries[1]["n"], 2);
    assert_eq!(tries[1]["statusCode"], 200);
    let statuses: Vec<u16> = receiver.arrivals().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [500, 200]);
}

#[tokio::test]
async fn a_429_retry_waits_at_least_retry_after() {
    let server = TestServer::start().await;
    let (receiver, channel_id) = setup(&server).await;
    receiver.script([Reply::RateLimited {
        retry_after_secs: 1,
    }]);
    let api = server.api();
    api.events(&bounce()).await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered", "{d:#}");
    let tries = attempts(d);
    assert_eq!(tries.len(), 2, "{d:#}");
    assert_eq!(tries[0]["statusCode"], 429);
    assert_eq!(tries[0]["errorClass"], "rate_limited");
    let at = attempt_times(d);
    let waited = at[1] - at[0];
    assert!(
        waited >= chrono::Duration::seconds(1),
        "the retry came {waited} after the 429 asked for 1 s"
    );
    // The receiver saw it the same way.
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 2);
    assert!(arrivals[1].at - arrivals[0].at >= chrono::Duration::seconds(1));
}

#[tokio::test]
async fn channel_not_found_fails_at_once_and_marks_the_channel_broken() {
    let server = TestServer::start().await;
    let (receiver, channel_id) = setup(&server).await;
    receiver.always(Reply::ChannelNotFound);
    let api = server.api();
    assert_eq!(api.channel(&channel_id).await["health"]["status"], "ok");
    api.events(&bounce()).await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "failed", "{d:#}");
    let tries = attempts(d);
    assert_eq!(tries.len(), 1, "not retried: {d:#}");
    assert_eq!(tries[0]["statusCode"], 404);
    assert_eq!(tries[0]["errorClass"], "channel_gone");
    assert!(d["reason"].is_string(), "a failed delivery says why: {d:#}");

    let channel = api.channel(&channel_id).await;
    assert_eq!(channel["health"]["status"], "broken", "{channel:#}");
    assert!(
        channel["health"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("404") || e.contains("channel_not_found")),
        "{channel:#}"
    );
    assert_eq!(receiver.arrivals().len(), 1);
}

#[tokio::test]
async fn a_delivery_fails_after_the_maximum_attempts() {
    let server =
        TestServer::start_with(&["--retry-max-attempts", "3", "--retry-base-ms", "50"]).await;
    let (receiver, channel_id) = setup(&server).await;
    receiver.always(Reply::ServerError);
    let api = server.api();
    api.events(&bounce()).await;

    let deliveries = api.wait_final(&channel_id, 1, WAIT).await;
    let d = &deliveries[0];
    assert_eq!(d["status"], "failed", "{d:#}");
    let tries = attempts(d);
    let numbers: Vec<u64> = tries.iter().map(|t| t["n"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3], "{d:#}");
    assert!(
        tries
            .iter()
            .all(|t| t["statusCode"] == 500 && t["errorClass"] == "server_error")
    );
    let at = attempt_times(d);
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "attempts in order: {at:?}"
    );
    assert_eq!(receiver.arrivals().len(), 3, "no fourth attempt");
    // A 5xx does not break the channel.
    assert_eq!(api.channel(&channel_id).await["health"]["status"], "ok");
}
