//! The channel test button of SES email and SNS SMS channels, wired as the api Lambda wires it
//! (HTTP, SES and SNS, no outbox) with the AWS SDK pointed at the emulator
//! (`HERALD_TEST_AWS_ENDPOINT`).

use std::sync::Arc;

use herald_core::delivery::format::email::EmailRenderer;
use herald_shared::delivery::{HttpSender, Senders};
use http::StatusCode;
use serde_json::Value;

use crate::support::TestApp;

async fn lambda_like() -> TestApp {
    TestApp::with_sender(
        herald_api::ApiConfig {
            default_outbox: false,
            admin_key: Some(herald_api::AdminKey::new(crate::support::ADMIN_KEY)),
            ..herald_api::ApiConfig::default()
        },
        |_| {
            Arc::new(
                Senders::new(
                    Arc::new(HttpSender::new(Default::default()).expect("client")),
                    None,
                )
                .with_aws_notify(
                    Some(herald_testing::emulator::endpoint()),
                    EmailRenderer::default(),
                ),
            )
        },
    )
    .await
}

/// What moto recorded for `service`'s `model`.
async fn recorded(service: &str, model: &str) -> Vec<Value> {
    let data: Value = reqwest::get(format!(
        "{}/moto-api/data.json",
        herald_testing::emulator::endpoint()
    ))
    .await
    .expect("moto answers")
    .json()
    .await
    .expect("moto's data is JSON");
    data[service][model].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_test_button_of_an_sns_channel_sends_an_sms() {
    let app = lambda_like().await;
    let id = app
        .channel(
            r#"{"kind":"sms","name":"On call","config":{"provider":"sns","senderId":"HERALD"}}"#,
        )
        .await;
    // Not ending in 99: moto answers those as opted out of SMS.
    let number = format!("+1415{:05}01", rand_digits() % 100_000);
    let a = app
        .post(
            &format!("/notifications/channels/{id}/test"),
            &format!(r#"{{"to":"{number}"}}"#),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["ok"], true, "{}", a.text);
    assert!(
        a.json["message"]
            .as_str()
            .unwrap()
            .starts_with("accepted by SNS")
    );
    let sms = recorded("sns", "SMS").await;
    let sent = sms
        .iter()
        .find(|m| m["phone_number"] == number.as_str())
        .unwrap_or_else(|| panic!("no SMS to {number}: {sms:?}"));
    assert!(
        sent["message"]
            .as_str()
            .unwrap()
            .starts_with("herald.test\nThis is a test notification from Herald"),
        "{sent:?}"
    );
}

#[tokio::test]
async fn the_test_button_of_an_ses_channel_with_an_unverified_sender_says_why() {
    let app = lambda_like().await;
    let from = format!("nobody-{}@unverified.example", rand_digits());
    let id = app
        .channel(&format!(
            r#"{{"kind":"email","name":"Customers","config":{{"provider":"ses","from":"{from}"}}}}"#
        ))
        .await;
    let a = app
        .post(
            &format!("/notifications/channels/{id}/test"),
            r#"{"to":"alice@example.com"}"#,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["ok"], false, "{}", a.text);
    assert_eq!(a.json["errorClass"], "configuration", "{}", a.text);
    assert_eq!(a.json["statusCode"], 400);
    let message = a.json["message"].as_str().unwrap();
    assert!(message.starts_with("MessageRejected: "), "{message}");
    assert!(message.contains(&from), "{message}");
}

/// Seven random digits.
fn rand_digits() -> u128 {
    uuid::Uuid::new_v4().as_u128() % 10_000_000
}

#[tokio::test]
async fn sns_opted_out_numbers_sync_into_the_suppression_list_once() {
    let app = lambda_like().await;
    let channel = app
        .channel(r#"{"kind":"sms","name":"On call","config":{"provider":"sns"}}"#)
        .await;
    let body = format!(r#"{{"channelId":"{channel}"}}"#);
    let first = app
        .post("/notifications/suppressions/sync-sms", &body)
        .await
        .expect(StatusCode::OK);
    let listed = first.json["listed"].as_u64().unwrap();
    assert!(listed > 0, "moto lists opted-out numbers: {}", first.text);
    assert_eq!(first.json["added"].as_u64(), Some(listed));
    let again = app
        .post("/notifications/suppressions/sync-sms", &body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.json["added"], 0, "written once");
    let list = app
        .get("/notifications/suppressions?kind=sms&limit=100")
        .await
        .expect(StatusCode::OK);
    let items = list.json["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, listed);
    assert!(
        items
            .iter()
            .all(|i| i["reason"] == "sms_opt_out" && i["source"] == "sns"),
        "{}",
        list.text
    );

    let email = app.channel(r#"{"kind":"in_app","name":"feed"}"#).await;
    let refused = app
        .post(
            "/notifications/suppressions/sync-sms",
            &format!(r#"{{"channelId":"{email}"}}"#),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.field(), Some("channelId"));
}
