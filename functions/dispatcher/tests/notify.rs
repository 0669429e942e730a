//! The dispatcher's user-facing path over the embedded store and queue: contact resolution
//! (event over profile), opt-outs, the local outbox, deferred deliveries, providers the process
//! was not given, SES and SNS against the emulator (`HERALD_TEST_AWS_ENDPOINT`) and the stats
//! counters.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use herald_core::delivery::format::OutboundMessage;
use herald_core::delivery::retry::RetryPolicy;
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelName, EmailConfig, SmsConfig,
};
use herald_core::domain::delivery::{CapSlot, Delivery, DeliveryStatus, ErrorClass, Trigger};
use herald_core::domain::event::{Event, EventType, Module, Recipient};
use herald_core::domain::rule::Template;
use herald_core::domain::user::UserProfile;
use herald_core::domain::{ChannelId, DeliveryId, EventId, OrgId, RuleKey, UserId};
use herald_dispatcher::Dispatcher;
use herald_shared::delivery::{AttemptOutcome, OutboxSender, Sender, Senders};
use herald_shared::pipeline::{DispatchTask, QueueMessage};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::outbox;
use herald_shared::repo::users;
use herald_shared::repo::{Channels, deliveries, stats};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;

/// Stands in for the HTTP sender: user-facing messages must never reach it.
#[derive(Debug)]
struct NoHttp;

#[async_trait]
impl Sender for NoHttp {
    async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
        AttemptOutcome::not_sent(ErrorClass::Rejected, "http sender called")
    }
}

struct World {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    sender: Senders,
    org: OrgId,
    _queues: EmbeddedQueues,
}

async fn world() -> World {
    world_with_http(Arc::new(NoHttp)).await
}

/// The world with `http` answering Slack and webhooks.
async fn world_with_http(http: Arc<dyn Sender>) -> World {
    let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().unwrap());
    let queues = EmbeddedQueues::in_memory().unwrap();
    let queue: Arc<dyn Queue> = Arc::new(queues.queue("dispatch", QueueSettings::default()));
    let sender = Senders::new(
        http,
        Some(Arc::new(OutboxSender::new(
            Arc::clone(&store),
            chrono::Duration::days(1),
        ))),
    );
    World {
        store,
        queue,
        sender,
        org: OrgId::new(),
        _queues: queues,
    }
}

impl World {
    async fn channel(&self, config: ChannelConfig) -> Channel {
        let now = Utc::now();
        let channel = Channel {
            id: ChannelId::new(),
            org_id: self.org,
            name: ChannelName::parse("people").unwrap(),
            config,
            frequency_cap: None,
            rate_limit: None,
            enabled: true,
            health: ChannelHealth::default(),
            created_at: now,
            updated_at: now,
        };
        Channels::new(self.store.as_ref())
            .create(&channel)
            .await
            .unwrap();
        channel
    }

    /// Records a delivery in `status` and dispatches its first attempt; returns it as it ends.
    async fn dispatch(
        &self,
        channel: &Channel,
        recipient: Recipient,
        status: DeliveryStatus,
    ) -> Delivery {
        self.dispatch_capped(channel, recipient, status, None).await
    }

    /// [`Self::dispatch`] of a delivery the matcher counted in the cap window `cap_slot`.
    async fn dispatch_capped(
        &self,
        channel: &Channel,
        recipient: Recipient,
        status: DeliveryStatus,
        cap_slot: Option<CapSlot>,
    ) -> Delivery {
        let now = Utc::now();
        let mut properties = serde_json::Map::new();
        properties.insert("name".into(), "Alice".into());
        let event = Event {
            id: EventId::generate(),
            org_id: self.org,
            event_type: EventType::parse("user.welcome").unwrap(),
            module: Module::parse("users").unwrap(),
            properties,
            recipients: vec![recipient.clone()],
            occurred_at: now,
            received_at: now,
        };
        let rule = RuleKey::parse("user.welcome").unwrap();
        let delivery = Delivery {
            id: DeliveryId::new(),
            org_id: self.org,
            event_id: event.id.clone(),
            event_type: event.event_type.to_string(),
            rule_key: Some(rule.clone()),
            channel_id: channel.id,
            channel_kind: channel.kind(),
            recipient: Some(recipient.user_id.clone()),
            trigger: Trigger::Event,
            status,
            reason: None,
            attempts: vec![],
            engagement: Vec::new(),
            next_attempt_at: None,
            cap_slot,
            created_at: now,
            updated_at: now,
        };
        let ttl = (now + chrono::Duration::days(1)).timestamp();
        deliveries::create(self.store.as_ref(), &delivery, ttl)
            .await
            .unwrap();
        let task = DispatchTask {
            delivery_id: delivery.id,
            org_id: self.org,
            rule_key: rule,
            channel_id: channel.id,
            recipient: Some(recipient),
            attempt: 1,
            not_before: None,
            event,
            template: Some(Template {
                title: Some("Welcome, {{properties.name}}".into()),
                body: Some("Glad you are here.".into()),
                link: None,
            }),
        };
        let outcome = Dispatcher {
            store: self.store.as_ref(),
            dispatch_queue: self.queue.as_ref(),
            sender: &self.sender,
            feeds: &herald_shared::feed::NoopFeedNotifier,
            retry: RetryPolicy::default(),
            retention: chrono::Duration::days(1),
        }
        .handle(
            vec![QueueMessage {
                id: "m".into(),
                body: serde_json::to_string(&task).unwrap(),
                receive_count: 1,
            }],
            now,
        )
        .await;
        assert!(outcome.failed.is_empty());
        deliveries::get(self.store.as_ref(), self.org, delivery.id)
            .await
            .unwrap()
            .unwrap()
            .delivery
    }

    async fn outbox(&self) -> Vec<outbox::OutboxMessage> {
        outbox::list(self.store.as_ref(), self.org, 100, None)
            .await
            .unwrap()
            .0
    }

    async fn today(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>> {
        stats::read_day(self.store.as_ref(), self.org, Utc::now().date_naive())
            .await
            .unwrap()
    }
}

fn alice(email: Option<&str>) -> Recipient {
    Recipient {
        user_id: UserId::parse("alice").unwrap(),
        email: email.map(str::to_owned),
        phone: None,
        push_tokens: vec![],
    }
}

fn email_outbox() -> ChannelConfig {
    ChannelConfig::Email(EmailConfig::Outbox {
        from: Some("noreply@acme.test".into()),
    })
}

async fn profile(w: &World, email: Option<&str>, opt_outs: &[&str]) {
    users::put(
        w.store.as_ref(),
        &UserProfile {
            user_id: UserId::parse("alice").unwrap(),
            org_id: w.org,
            email: email.map(str::to_owned),
            phone: None,
            push_tokens: vec![],
            timezone: None,
            opt_outs: opt_outs.iter().map(|s| (*s).to_owned()).collect(),
            updated_at: Utc::now(),
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_outbox_email_is_stored_rendered_and_counts_as_sent() {
    let w = world().await;
    let ch = w.channel(email_outbox()).await;
    let d = w
        .dispatch(
            &ch,
            alice(Some("alice@example.com")),
            DeliveryStatus::Queued,
        )
        .await;
    assert_eq!(d.status, DeliveryStatus::Sent);
    assert!(
        d.reason.as_deref().unwrap().contains("local outbox"),
        "{d:?}"
    );
    assert_eq!(d.attempts.len(), 1);
    let out = w.outbox().await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, vec!["alice@example.com".to_owned()]);
    assert_eq!(out[0].from.as_deref(), Some("noreply@acme.test"));
    assert_eq!(out[0].title, "Welcome, Alice");
    assert_eq!(out[0].body.as_deref(), Some("Glad you are here."));
    assert_eq!(out[0].delivery_id, d.id);
    let stats = w.today().await;
    assert_eq!(stats["ALL"]["sent"], 1);
    assert_eq!(stats[&format!("CH#{}", ch.id)]["sent"], 1);
    assert_eq!(stats["RULE#user.welcome"]["attempts"], 1);
}

#[tokio::test]
async fn the_stored_profile_supplies_what_the_event_lacks() {
    let w = world().await;
    profile(&w, Some("profile@example.com"), &[]).await;
    let ch = w.channel(email_outbox()).await;
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Sent);
    assert_eq!(
        w.outbox().await[0].to,
        vec!["profile@example.com".to_owned()]
    );
    // The event's own contact point wins.
    let d = w
        .dispatch(
            &ch,
            alice(Some("event@example.com")),
            DeliveryStatus::Queued,
        )
        .await;
    assert_eq!(d.status, DeliveryStatus::Sent);
    let to: Vec<_> = w
        .outbox()
        .await
        .into_iter()
        .map(|m| m.to[0].clone())
        .collect();
    assert!(to.contains(&"event@example.com".to_owned()));
}

#[tokio::test]
async fn no_contact_point_fails_with_the_reason() {
    let w = world().await;
    let ch = w.channel(email_outbox()).await;
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.reason.as_deref(), Some("no email address for user alice"));
    let sms = w.channel(ChannelConfig::Sms(SmsConfig::Outbox)).await;
    let d = w
        .dispatch(&sms, alice(Some("a@example.com")), DeliveryStatus::Queued)
        .await;
    assert_eq!(d.reason.as_deref(), Some("no phone number for user alice"));
    assert!(w.outbox().await.is_empty());
    assert_eq!(w.today().await["ALL"]["failed"], 2);
}

#[tokio::test]
async fn an_opted_out_user_is_suppressed() {
    let w = world().await;
    profile(&w, Some("alice@example.com"), &["email"]).await;
    let ch = w.channel(email_outbox()).await;
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Suppressed);
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .starts_with("user alice opted out of email")
    );
    assert!(w.outbox().await.is_empty());
}

#[tokio::test]
async fn a_deferred_delivery_is_sent_when_its_time_comes() {
    let w = world().await;
    let ch = w.channel(email_outbox()).await;
    let d = w
        .dispatch(
            &ch,
            alice(Some("alice@example.com")),
            DeliveryStatus::Deferred,
        )
        .await;
    assert_eq!(d.status, DeliveryStatus::Sent);
    assert_eq!(w.outbox().await.len(), 1);
}

#[tokio::test]
async fn a_provider_the_process_was_not_given_fails_with_a_configuration_error() {
    let w = world().await;
    let ch = w
        .channel(ChannelConfig::Email(EmailConfig::Ses {
            from: "a@acme.test".into(),
            configuration_set: None,
            region: None,
        }))
        .await;
    let d = w
        .dispatch(
            &ch,
            alice(Some("alice@example.com")),
            DeliveryStatus::Queued,
        )
        .await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.attempts[0].error_class, Some(ErrorClass::Configuration));
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .contains("the SES email provider is not enabled in this Herald process"),
        "{d:?}"
    );
}

async fn aws_world() -> World {
    let mut w = world().await;
    w.sender = w.sender.clone().with_aws_notify(
        Some(herald_testing::emulator::endpoint()),
        herald_core::delivery::format::email::EmailRenderer::default(),
    );
    w
}

#[tokio::test]
async fn an_sms_through_sns_ends_sent_with_the_provider_receipt() {
    let w = aws_world().await;
    let ch = w
        .channel(ChannelConfig::Sms(SmsConfig::Sns {
            sender_id: None,
            region: None,
        }))
        .await;
    let number = format!("+1415{:07}", random_digits());
    let recipient = Recipient {
        phone: Some(number),
        ..alice(None)
    };
    let d = w.dispatch(&ch, recipient, DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{d:?}");
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].status_code, Some(200));
    assert!(
        d.reason.as_deref().unwrap().starts_with("accepted by SNS"),
        "{d:?}"
    );
}

#[tokio::test]
async fn an_unverified_ses_sender_fails_at_once_without_a_retry() {
    let w = aws_world().await;
    let ch = w
        .channel(ChannelConfig::Email(EmailConfig::Ses {
            from: format!("nobody-{}@unverified.example", random_digits()),
            configuration_set: None,
            region: None,
        }))
        .await;
    let d = w
        .dispatch(
            &ch,
            alice(Some("alice@example.com")),
            DeliveryStatus::Queued,
        )
        .await;
    // Final after one attempt: a retried error would leave it pending with a next attempt.
    assert_eq!(d.status, DeliveryStatus::Failed, "{d:?}");
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].error_class, Some(ErrorClass::Configuration));
    assert_eq!(d.attempts[0].status_code, Some(400));
    assert!(
        d.reason.as_deref().unwrap().contains("MessageRejected"),
        "{d:?}"
    );
}

/// Seven random digits.
fn random_digits() -> u32 {
    rand::random::<u32>() % 10_000_000
}

/// A Slack workspace having an outage: every attempt answers 503.
#[derive(Debug)]
struct Unavailable;

#[async_trait]
impl Sender for Unavailable {
    async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
        AttemptOutcome::not_sent(ErrorClass::ServerError, "503: upstream unavailable")
    }
}

#[tokio::test]
async fn a_retrying_delivery_says_when_its_next_attempt_is_due() {
    let w = world_with_http(Arc::new(Unavailable)).await;
    let config: ChannelConfig = serde_json::from_value(serde_json::json!({
        "kind": "slack", "webhookUrl": "https://hooks.slack.test/services/T/B/x"
    }))
    .unwrap();
    let ch = w.channel(config).await;
    let before = Utc::now();
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Queued);
    assert!(
        d.reason.as_deref().unwrap().contains("retrying in"),
        "{d:?}"
    );
    let next = d.next_attempt_at.expect("nextAttemptAt while retrying");
    assert!(
        next > before && next < before + chrono::Duration::hours(1),
        "{next}"
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["nextAttemptAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        next
    );
}

/// A 1-per-day cap's counter for alice on `channel`, already holding this delivery's count.
async fn counted_once(w: &World, channel: &Channel) -> (CapSlot, herald_shared::store::Key) {
    use herald_core::delivery::caps;
    use herald_core::domain::channel::FrequencyCap;
    use herald_shared::store::keys;
    let cap = FrequencyCap {
        per_user: 1,
        window_hours: 24,
    };
    let window = caps::window(cap, Utc::now());
    let key = keys::cap_counter(w.org, channel.id, "alice", cap, &window);
    w.store
        .add(
            &key,
            keys::entity::CAP_COUNTER,
            &[(keys::CAP_COUNT_ATTR.to_owned(), 1)].into(),
            herald_shared::store::Condition::None,
        )
        .await
        .unwrap();
    (window.slot(cap), key)
}

async fn cap_count(w: &World, key: &herald_shared::store::Key) -> i64 {
    let item = w.store.get(key).await.unwrap().unwrap();
    item.nums[herald_shared::store::keys::CAP_COUNT_ATTR]
}

#[tokio::test]
async fn a_capped_delivery_that_never_reached_the_user_gives_its_cap_slot_back() {
    let w = world().await;
    let ch = w.channel(email_outbox()).await;
    let (slot, key) = counted_once(&w, &ch).await;
    let d = w
        .dispatch_capped(&ch, alice(None), DeliveryStatus::Queued, Some(slot))
        .await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(
        cap_count(&w, &key).await,
        0,
        "the failed delivery's slot is free again"
    );
}

#[tokio::test]
async fn a_capped_delivery_that_was_sent_keeps_its_cap_slot() {
    let w = world().await;
    let ch = w.channel(email_outbox()).await;
    let (slot, key) = counted_once(&w, &ch).await;
    let d = w
        .dispatch_capped(
            &ch,
            alice(Some("a@example.com")),
            DeliveryStatus::Queued,
            Some(slot),
        )
        .await;
    assert_eq!(d.status, DeliveryStatus::Sent);
    assert_eq!(cap_count(&w, &key).await, 1);
}
