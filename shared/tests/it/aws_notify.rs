//! SES email and SNS SMS through the real AWS SDK against the emulator (moto): each test sends
//! through [`Senders`] for a channel with that provider, then reads what moto recorded
//! (`GET /moto-api/data.json`) to prove what went over the wire.
//!
//! Needs `HERALD_TEST_AWS_ENDPOINT` (e.g. `http://127.0.0.1:5055`, `infra/emulator.sh start`).
#![cfg(feature = "aws-notify")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::delivery::format::email::{self, EmailRenderer};
use herald_core::delivery::format::{MessageContext, OutboundMessage};
use herald_core::delivery::tracking::{Tracker, TrackingKey};
use herald_core::domain::channel::{Channel, ChannelConfig, EmailConfig, SmsConfig};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::event::Event;
use herald_core::domain::{DeliveryId, OrgId, RuleKey};
use herald_shared::delivery::{self, AttemptOutcome, Sender, Senders};
use serde_json::{Value, json};
use url::Url;

fn suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The HTTP sender is never reached by these channels; it says so if it is.
#[derive(Debug)]
struct NoHttp;

#[async_trait]
impl Sender for NoHttp {
    async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
        panic!("an email or SMS channel was routed to the HTTP sender")
    }
}

fn senders() -> Senders {
    Senders::new(Arc::new(NoHttp), None).with_aws_notify(
        Some(herald_testing::emulator::endpoint()),
        EmailRenderer::default(),
    )
}

fn tracker() -> Tracker {
    Tracker::new(
        Url::parse("https://herald.example.com").unwrap(),
        TrackingKey::derive(b"a test secret of enough bytes"),
    )
}

fn channel(config: ChannelConfig) -> Channel {
    herald_testing::channels::channel(OrgId::new(), config)
}

fn event(title: &str) -> Event {
    herald_testing::events::event(
        "ops",
        "deploy.failed",
        json!({
            "title": title,
            "message": "Build 42 failed <in> \"prod\" & rolled back",
            "url": "https://ci.example.com/builds/42?tab=log&x=1",
        }),
    )
}

/// One attempt through the same path the dispatcher takes.
async fn send(channel: &Channel, title: &str, to: &str) -> AttemptOutcome {
    let ev = event(title);
    let key = RuleKey::parse("deploys").unwrap();
    let ctx = MessageContext {
        event: &ev,
        rule_key: Some(&key),
        template: None,
        delivery_id: DeliveryId::new(),
        group: None,
        digest: None,
    };
    delivery::attempt_user(&senders(), channel, &ctx, vec![to.to_owned()]).await
}

/// The instances moto tracks for `service`'s `model` (every account and region).
async fn recorded(service: &str, model: &str) -> Vec<Value> {
    let url = format!(
        "{}/moto-api/data.json",
        herald_testing::emulator::endpoint()
    );
    let data: Value = reqwest::get(&url)
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("moto's data is JSON");
    data[service][model].as_array().cloned().unwrap_or_default()
}

async fn verify_sender(address: &str) {
    let sdk = herald_testing::emulator::sdk_config().await;
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
        .expect("moto verifies the identity");
}

fn ses(from: &str, region: Option<&str>) -> Channel {
    channel(ChannelConfig::Email(EmailConfig::Ses {
        from: from.to_owned(),
        configuration_set: None,
        region: region.map(str::to_owned),
    }))
}

fn sns(sender_id: Option<&str>) -> Channel {
    channel(ChannelConfig::Sms(SmsConfig::Sns {
        sender_id: sender_id.map(str::to_owned),
        region: Some("us-east-1".into()),
    }))
}

#[tokio::test]
async fn an_email_goes_out_through_ses_with_subject_from_to_and_a_tracked_html_body() {
    let id = suffix();
    let from = format!("alerts-{id}@herald.example");
    let to = format!("ana-{id}@example.com");
    let title = format!("Deploy failed {id}");
    verify_sender(&from).await;

    let senders = Senders::new(Arc::new(NoHttp), None).with_aws_notify(
        Some(herald_testing::emulator::endpoint()),
        EmailRenderer::new(Some(tracker())),
    );
    let ev = event(&title);
    let delivery_id = DeliveryId::new();
    let ctx = MessageContext {
        event: &ev,
        rule_key: None,
        template: None,
        delivery_id,
        group: None,
        digest: None,
    };
    let out = delivery::attempt_user(
        &senders,
        &ses(&from, Some("us-east-1")),
        &ctx,
        vec![to.clone()],
    )
    .await;

    assert!(out.is_delivered(), "{out:?}");
    assert_eq!(out.status_code, Some(200));
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.starts_with("accepted by SES")),
        "{out:?}"
    );
    let sent = recorded("ses", "Message").await;
    let mail = sent
        .iter()
        .find(|m| m["subject"] == title.as_str())
        .unwrap_or_else(|| panic!("moto recorded no email with subject {title}: {sent:?}"));
    assert_eq!(mail["source"], from.as_str());
    assert_eq!(mail["destinations"]["ToAddresses"], json!([to]));
    // moto keeps the HTML part when there is one: the rendered email, escaped and tracked.
    let html = mail["body"].as_str().unwrap();
    assert!(html.contains(&format!(">{title}</h1>")), "{html}");
    assert!(
        html.contains(">Build 42 failed &lt;in&gt; &quot;prod&quot; &amp; rolled back</p>"),
        "{html}"
    );
    let target = Url::parse("https://ci.example.com/builds/42?tab=log&x=1").unwrap();
    let click = tracker()
        .click_url(ev.org_id, delivery_id, &target)
        .unwrap();
    let pixel = tracker().open_url(ev.org_id, delivery_id);
    assert!(
        html.contains(&format!("href=\"{}\"", email::escape(click.as_str()))),
        "{html}"
    );
    assert!(
        html.contains(&format!("<img src=\"{}\"", email::escape(pixel.as_str()))),
        "{html}"
    );
}

#[tokio::test]
async fn an_email_with_one_click_unsubscribe_headers_is_accepted_by_ses() {
    use herald_core::delivery::unsubscribe::{
        ListUnsubscribe, Unsubscribe, UnsubscribeKey, Unsubscriber,
    };
    let id = suffix();
    let from = format!("news-{id}@herald.example");
    let to = format!("ben-{id}@example.com");
    let title = format!("Weekly digest {id}");
    verify_sender(&from).await;

    let senders = Senders::new(Arc::new(NoHttp), None).with_aws_notify(
        Some(herald_testing::emulator::endpoint()),
        EmailRenderer::new(None).with_unsubscribe(Some(Unsubscriber::new(
            Url::parse("https://herald.example.com").unwrap(),
            UnsubscribeKey::derive(b"ses unsubscribe tests"),
        ))),
    );
    let ev = event(&title);
    let ctx = MessageContext {
        event: &ev,
        rule_key: None,
        template: None,
        delivery_id: DeliveryId::new(),
        group: None,
        digest: None,
    };
    let channel = ses(&from, Some("us-east-1"));
    let unsubscribe = ListUnsubscribe {
        target: Unsubscribe {
            org: ev.org_id,
            user: herald_core::domain::UserId::parse("ben").unwrap(),
            channel: channel.id,
            rule: None,
        },
        at: chrono::Utc::now(),
    };
    let (out, _) = delivery::attempt_person(
        &senders,
        &channel,
        &ctx,
        vec![to.clone()],
        Some(unsubscribe),
    )
    .await;

    // SES v2 takes the headers on the simple message (`Message.Headers`); the emulator records
    // the email (it does not keep extra headers: the SES request itself is unit-tested).
    assert!(out.is_delivered(), "{out:?}");
    let sent = recorded("ses", "Message").await;
    assert!(
        sent.iter().any(|m| m["subject"] == title.as_str()),
        "moto recorded no email with subject {title}: {sent:?}"
    );
}

#[tokio::test]
async fn an_unverified_sender_is_a_configuration_error_and_not_retried() {
    let id = suffix();
    let from = format!("nobody-{id}@unverified-{id}.example");
    let title = format!("Unverified {id}");

    let out = send(&ses(&from, None), &title, "ana@example.com").await;

    assert_eq!(out.error_class, Some(ErrorClass::Configuration), "{out:?}");
    assert!(!out.error_class.unwrap().is_retryable());
    assert_eq!(out.status_code, Some(400));
    let message = out.message.unwrap();
    assert!(message.starts_with("MessageRejected: "), "{message}");
    assert!(message.contains(&from), "{message}");
    assert!(
        !recorded("ses", "Message")
            .await
            .iter()
            .any(|m| m["subject"] == title.as_str())
    );
}

#[tokio::test]
async fn the_channel_region_decides_where_the_email_is_sent() {
    let id = suffix();
    let from = format!("regional-{id}@herald.example");
    verify_sender(&from).await; // in us-east-1 only

    let out = send(
        &ses(&from, Some("eu-west-1")),
        &format!("Elsewhere {id}"),
        "ana@example.com",
    )
    .await;

    assert_eq!(out.error_class, Some(ErrorClass::Configuration), "{out:?}");
    assert!(out.message.unwrap().contains("not verified"));
}

#[tokio::test]
async fn an_sms_goes_out_through_sns_to_the_number_with_title_body_and_link() {
    // Not ending in 99: moto answers those as opted out of SMS.
    let number = format!("+1415{:05}01", rand::random::<u32>() % 100_000);
    let title = format!("Deploy failed {}", suffix());

    let out = send(&sns(Some("HERALD")), &title, &number).await;

    assert!(out.is_delivered(), "{out:?}");
    assert_eq!(out.status_code, Some(200));
    let sent = recorded("sns", "SMS").await;
    let sms = sent
        .iter()
        .find(|m| m["phone_number"] == number.as_str())
        .unwrap_or_else(|| panic!("moto recorded no SMS to {number}: {sent:?}"));
    assert_eq!(
        sms["message"],
        format!(
            "{title}\nBuild 42 failed <in> \"prod\" & rolled back\nhttps://ci.example.com/builds/42?tab=log&x=1"
        )
    );
}

#[tokio::test]
async fn a_number_opted_out_at_sns_is_reported_and_not_published_to() {
    // moto's CheckIfPhoneNumberIsOptedOut answers true for numbers ending in 99.
    let number = format!("+1415{:05}99", rand::random::<u32>() % 100_000);
    let ev = event("Opted out");
    let key = RuleKey::parse("deploys").unwrap();
    let ctx = MessageContext {
        event: &ev,
        rule_key: Some(&key),
        template: None,
        delivery_id: DeliveryId::new(),
        group: None,
        digest: None,
    };
    let (out, contacts) =
        delivery::attempt_person(&senders(), &sns(None), &ctx, vec![number.clone()], None).await;
    assert_eq!(contacts.opted_out, vec![number.clone()]);
    assert_eq!(out.error_class, Some(ErrorClass::Rejected), "{out:?}");
    assert_eq!(
        out.message.as_deref(),
        Some(format!("{number} opted out of SMS (STOP): nothing was published").as_str())
    );
    assert!(
        !recorded("sns", "SMS")
            .await
            .iter()
            .any(|m| m["phone_number"] == number.as_str()),
        "nothing published to {number}"
    );
}

#[tokio::test]
async fn an_invalid_phone_number_is_a_bad_payload_and_not_retried() {
    let out = send(&sns(None), &format!("Bad number {}", suffix()), "555-0100").await;

    assert_eq!(out.error_class, Some(ErrorClass::BadPayload), "{out:?}");
    assert!(!out.error_class.unwrap().is_retryable());
    assert_eq!(out.status_code, Some(400));
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.starts_with("InvalidParameter") && m.contains("E164")),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_network_error_and_retried() {
    // A port nothing listens on: the connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let senders = Senders::new(Arc::new(NoHttp), None).with_aws_notify(
        Some(format!("http://127.0.0.1:{port}")),
        EmailRenderer::default(),
    );
    let ev = event("Nowhere");
    let ctx = MessageContext {
        event: &ev,
        rule_key: None,
        template: None,
        delivery_id: DeliveryId::new(),
        group: None,
        digest: None,
    };
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        delivery::attempt_user(&senders, &sns(None), &ctx, vec!["+14155550100".into()]),
    )
    .await
    .expect("the attempt ends");

    assert_eq!(out.error_class, Some(ErrorClass::Network), "{out:?}");
    assert!(out.error_class.unwrap().is_retryable());
    assert_eq!(out.status_code, None);
}
