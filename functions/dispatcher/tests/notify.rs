//! The dispatcher's user-facing path over the embedded store and queue: contact resolution
//! (event over profile), opt-outs, the local outbox, deferred deliveries, providers the process
//! was not given, SES and SNS against the emulator (`HERALD_TEST_AWS_ENDPOINT`) and the stats
//! counters.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use herald_core::delivery::format::OutboundMessage;
use herald_core::delivery::pacing::RateLimit;
use herald_core::delivery::retry::RetryPolicy;
use herald_core::domain::channel::{Channel, ChannelConfig, EmailConfig, PushConfig, SmsConfig};
use herald_core::domain::delivery::{CapSlot, Delivery, DeliveryStatus, ErrorClass, Trigger};
use herald_core::domain::event::{Event, EventType, Module, Recipient};
use herald_core::domain::rule::Template;
use herald_core::domain::suppression::{
    SuppressedAddress, Suppression, SuppressionDetails, SuppressionKind, SuppressionReason,
    SuppressionSource,
};
use herald_core::domain::user::UserProfile;
use herald_core::domain::{DeliveryId, EventId, OrgId, RuleKey, UserId};
use herald_dispatcher::Dispatcher;
use herald_shared::delivery::{AttemptOutcome, OutboxSender, Sender, Senders};
use herald_shared::pipeline::{BatchOutcome, DispatchTask, QueueMessage};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::outbox;
use herald_shared::repo::suppressions;
use herald_shared::repo::users;
use herald_shared::repo::{Channels, deliveries, lanes, stats};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use herald_testing::store::{Call, Watch, Watched};

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
    world_over(Arc::new(Embedded::in_memory().unwrap()), http)
}

/// The world over `store`.
fn world_over(store: Arc<dyn Store>, http: Arc<dyn Sender>) -> World {
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
        let channel = herald_testing::channels::channel(self.org, config);
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
        let task = self.record(channel, recipient, status, cap_slot).await;
        let outcome = self
            .run(vec![task.clone()], now, RetryPolicy::default())
            .await;
        assert!(outcome.failed.is_empty());
        self.delivery(task.delivery_id).await
    }

    /// Records a delivery in `status`; returns its first attempt's task.
    async fn record(
        &self,
        channel: &Channel,
        recipient: Recipient,
        status: DeliveryStatus,
        cap_slot: Option<CapSlot>,
    ) -> DispatchTask {
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
            alert: None,
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
            recovered: None,
            event_ids: Vec::new(),
            event_count: None,
            created_at: now,
            updated_at: now,
        };
        let ttl = (now + chrono::Duration::days(1)).timestamp();
        deliveries::create(self.store.as_ref(), &delivery, ttl)
            .await
            .unwrap();
        DispatchTask {
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
            critical: false,
            manual: None,
            recovered: None,
            digest: None,
            group: None,
        }
    }

    /// Hands `tasks` to the dispatcher as one batch (message ids `m0`, `m1`, ...) at `now`.
    /// A queued delivery to Alice's email for each of `channels`, recorded in that order.
    async fn queued_to(&self, channels: &[&Channel]) -> Vec<DispatchTask> {
        let mut tasks = Vec::with_capacity(channels.len());
        for channel in channels {
            let alice = alice(Some("alice@example.com"));
            tasks.push(
                self.record(channel, alice, DeliveryStatus::Queued, None)
                    .await,
            );
        }
        tasks
    }

    /// Runs `tasks` as one batch, now, and checks that every one of them was sent.
    async fn run_all_sent(&self, tasks: Vec<DispatchTask>) {
        let outcome = self
            .run(tasks.clone(), Utc::now(), RetryPolicy::default())
            .await;
        assert!(outcome.failed.is_empty(), "{outcome:?}");
        for task in &tasks {
            assert_eq!(
                self.delivery(task.delivery_id).await.status,
                DeliveryStatus::Sent
            );
        }
    }

    async fn run(
        &self,
        tasks: Vec<DispatchTask>,
        now: chrono::DateTime<Utc>,
        retry: RetryPolicy,
    ) -> BatchOutcome {
        Dispatcher {
            store: self.store.as_ref(),
            dispatch_queue: self.queue.as_ref(),
            sender: &self.sender,
            feeds: &herald_shared::feed::NoopFeedNotifier,
            retry,
            retention: chrono::Duration::days(1),
        }
        .handle(messages(&tasks), now)
        .await
    }

    async fn delivery(&self, id: DeliveryId) -> Delivery {
        deliveries::get(self.store.as_ref(), self.org, id)
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

fn messages(tasks: &[DispatchTask]) -> Vec<QueueMessage> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, task)| QueueMessage {
            id: format!("m{i}"),
            body: serde_json::to_string(task).unwrap(),
            receive_count: 1,
        })
        .collect()
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
    // Not ending in 99: moto answers those as opted out.
    let number = format!("+1415{:05}01", random_digits() % 100_000);
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

// ---- Lanes: pacing, 429 pauses, the circuit breaker (docs/pipeline.md) ----------------------

/// A Slack endpoint answering every request with `answer`, counting them.
#[derive(Debug)]
struct Scripted {
    answer: AttemptOutcome,
    calls: std::sync::atomic::AtomicUsize,
}

impl Scripted {
    fn new(answer: AttemptOutcome) -> Arc<Self> {
        Arc::new(Self {
            answer,
            calls: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn ok() -> Arc<Self> {
        Self::new(AttemptOutcome {
            status_code: Some(200),
            error_class: None,
            message: Some("ok".into()),
            latency: std::time::Duration::ZERO,
            retry_after: None,
        })
    }

    fn too_many(retry_after_s: u64) -> Arc<Self> {
        Self::new(AttemptOutcome {
            status_code: Some(429),
            error_class: Some(ErrorClass::RateLimited),
            message: Some("rate_limited".into()),
            latency: std::time::Duration::ZERO,
            retry_after: Some(std::time::Duration::from_secs(retry_after_s)),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Sender for Scripted {
    async fn send(&self, _: &Channel, _: &OutboundMessage) -> AttemptOutcome {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.answer.clone()
    }
}

async fn slack(w: &World, rate_limit: Option<RateLimit>) -> Channel {
    let channel = w
        .channel(herald_testing::channels::slack(w.org).config)
        .await;
    let Ok((channel, ())) = Channels::new(w.store.as_ref())
        .modify(&channel.org_id, &channel.id, |c| {
            c.rate_limit = rate_limit;
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
    channel
}

async fn version(w: &World, id: DeliveryId) -> i64 {
    deliveries::get(w.store.as_ref(), w.org, id)
        .await
        .unwrap()
        .unwrap()
        .version
}

#[tokio::test]
async fn a_paced_channel_holds_deliveries_past_its_burst_without_attempting_them() {
    let http = Scripted::ok();
    let w = world_with_http(http.clone()).await;
    let ch = slack(&w, Some(RateLimit::new(1.0, 2).unwrap())).await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        tasks.push(
            w.record(&ch, alice(None), DeliveryStatus::Queued, None)
                .await,
        );
    }
    let now = Utc::now();
    let outcome = w.run(tasks.clone(), now, RetryPolicy::default()).await;
    assert!(outcome.failed.is_empty());
    assert_eq!(http.calls(), 2, "the burst goes, the others wait");
    assert_eq!(outcome.deferred.len(), 3, "{outcome:?}");
    // The batch's deliveries to the channel were admitted together: one lane write.
    let lane = lanes::get(w.store.as_ref(), &w.org, &ch.id).await.unwrap();
    assert_eq!(lane.version, Some(1), "{lane:?}");
    // Held in one batch, they come back one slot apart, not all at the next slot.
    let mut slots: Vec<_> = outcome.deferred.iter().map(|d| d.until).collect();
    slots.sort();
    for pair in slots.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::seconds(1),
            "{slots:?}"
        );
    }
    let held = outcome
        .deferred
        .iter()
        .min_by_key(|d| d.until)
        .expect("held");
    let wait = held.until - now;
    assert!(
        wait >= chrono::Duration::milliseconds(900) && wait <= chrono::Duration::milliseconds(1300),
        "held until the next slot: {wait}"
    );
    let index: usize = held.message_id[1..].parse().unwrap();
    let d = w.delivery(tasks[index].delivery_id).await;
    assert_eq!(d.status, DeliveryStatus::Queued);
    assert!(d.attempts.is_empty(), "a held delivery is not attempted");
    assert_eq!(
        d.reason.as_deref(),
        Some("paced: channel limit 1 per second, bursts of 2")
    );
    assert_eq!(d.next_attempt_at, Some(held.until));

    // Held again for the same reason: no delivery write.
    let before = version(&w, d.id).await;
    let again = w
        .run(
            vec![tasks[index].clone()],
            Utc::now(),
            RetryPolicy::default(),
        )
        .await;
    assert_eq!(again.deferred.len(), 1);
    assert_eq!(version(&w, d.id).await, before);
    assert_eq!(http.calls(), 2);

    // Its slot comes: it goes.
    let later = w
        .run(
            vec![tasks[index].clone()],
            held.until,
            RetryPolicy::default(),
        )
        .await;
    assert!(
        later.deferred.is_empty() && later.failed.is_empty(),
        "{later:?}"
    );
    assert_eq!(http.calls(), 3);
    let d = w.delivery(d.id).await;
    assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
    assert_eq!(d.attempts.len(), 1);
}

#[tokio::test]
async fn a_429_pauses_the_whole_channel_and_does_not_count_toward_max_attempts() {
    let http = Scripted::too_many(2);
    let w = world_with_http(http.clone()).await;
    let ch = slack(&w, None).await;
    let retry = RetryPolicy {
        max_attempts: 2,
        base: std::time::Duration::from_millis(1),
        max_wait: std::time::Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let first = w
        .record(&ch, alice(None), DeliveryStatus::Queued, None)
        .await;
    let other = w
        .record(&ch, alice(None), DeliveryStatus::Queued, None)
        .await;
    let t0 = Utc::now();
    assert!(
        w.run(vec![first.clone()], t0, retry)
            .await
            .deferred
            .is_empty()
    );
    let d = w.delivery(first.delivery_id).await;
    assert_eq!(d.attempts.len(), 1, "a 429 is logged as an attempt");
    assert_eq!(d.attempts[0].error_class, Some(ErrorClass::RateLimited));
    assert_eq!(d.status, DeliveryStatus::Queued);
    let next = d.next_attempt_at.unwrap();
    assert!(
        next >= t0 + chrono::Duration::seconds(2),
        "not before the pause ends: {next}"
    );

    // Another delivery to the channel during the pause: held, not attempted.
    let outcome = w
        .run(
            vec![other.clone()],
            t0 + chrono::Duration::seconds(1),
            retry,
        )
        .await;
    assert_eq!(outcome.deferred.len(), 1);
    let until = outcome.deferred[0].until;
    assert!(
        until >= t0 + chrono::Duration::seconds(2)
            && until < t0 + chrono::Duration::milliseconds(2500),
        "held until the pause ends: {until}"
    );
    assert_eq!(http.calls(), 1);
    let held = w.delivery(other.delivery_id).await;
    assert!(held.attempts.is_empty());
    assert!(
        held.reason.as_deref().unwrap().starts_with("paused until ")
            && held
                .reason
                .as_deref()
                .unwrap()
                .ends_with(": the provider answered 429"),
        "{held:?}"
    );

    // More 429s than max attempts: still queued, never failed for being rate limited.
    let mut task = first.clone();
    let mut at = t0;
    for n in 2..=4 {
        at += chrono::Duration::seconds(3);
        task.attempt = n;
        let outcome = w.run(vec![task.clone()], at, retry).await;
        assert!(outcome.deferred.is_empty(), "attempt {n}: {outcome:?}");
    }
    let d = w.delivery(first.delivery_id).await;
    assert_eq!(d.attempts.len(), 4);
    assert_eq!(d.status, DeliveryStatus::Queued, "{d:?}");
}

#[tokio::test]
async fn five_failures_in_a_row_open_the_circuit_and_hold_the_channel() {
    let http = Scripted::new(AttemptOutcome::not_sent(
        ErrorClass::ServerError,
        "503: upstream unavailable",
    ));
    let w = world_with_http(http.clone()).await;
    let ch = slack(&w, Some(RateLimit::new(100.0, 100).unwrap())).await;
    let now = Utc::now();
    for _ in 0..5 {
        let task = w
            .record(&ch, alice(None), DeliveryStatus::Queued, None)
            .await;
        assert!(
            w.run(vec![task], now, RetryPolicy::default())
                .await
                .deferred
                .is_empty()
        );
    }
    let sixth = w
        .record(&ch, alice(None), DeliveryStatus::Queued, None)
        .await;
    let outcome = w
        .run(vec![sixth.clone()], now, RetryPolicy::default())
        .await;
    assert_eq!(outcome.deferred.len(), 1, "{outcome:?}");
    assert_eq!(http.calls(), 5);
    let d = w.delivery(sixth.delivery_id).await;
    assert!(d.attempts.is_empty());
    let reason = d.reason.unwrap();
    assert!(
        reason.starts_with("circuit open until ")
            && reason.contains(" after 5 failures in a row: ")
            && reason.ends_with("503: upstream unavailable"),
        "{reason}"
    );
    // Held again while the same opening lasts: no delivery write.
    let before = version(&w, sixth.delivery_id).await;
    let again = w
        .run(vec![sixth.clone()], now, RetryPolicy::default())
        .await;
    assert_eq!(again.deferred.len(), 1);
    assert_eq!(version(&w, sixth.delivery_id).await, before);
    assert_eq!(http.calls(), 5);
}

#[tokio::test]
async fn deferred_messages_go_back_in_their_lane_with_their_delay() {
    use herald_shared::pipeline::{Deferred, resend_deferred};
    let w = world().await;
    let ch = slack(&w, None).await;
    let soon = w
        .record(&ch, alice(None), DeliveryStatus::Queued, None)
        .await;
    let late = w
        .record(&ch, alice(None), DeliveryStatus::Queued, None)
        .await;
    let batch = messages(&[soon.clone(), late.clone()]);
    let now = Utc::now();
    let deferred = [
        Deferred {
            message_id: "m0".into(),
            until: now + chrono::Duration::milliseconds(300),
        },
        Deferred {
            message_id: "m1".into(),
            until: now + chrono::Duration::minutes(40),
        },
    ];
    let failed = resend_deferred(w.queue.as_ref(), &batch, &deferred, now).await;
    assert!(failed.is_empty());
    let none = w
        .queue
        .receive(10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(none.is_empty(), "nothing before its time");
    let back = w
        .queue
        .receive(10, std::time::Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    let task: DispatchTask = serde_json::from_str(&back[0].body).unwrap();
    assert_eq!(task.delivery_id, soon.delivery_id);
    assert_eq!(task.attempt, 1, "the same attempt: it was never made");
    assert_eq!(back[0].receive_count, 1, "a deferral is not a receive");
    // Beyond the queue's 15-minute delay, the task carries the rest as notBefore.
    let sent = Capture::default();
    assert!(
        resend_deferred(&sent, &batch, &deferred[1..], now)
            .await
            .is_empty()
    );
    let sent = sent.0.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].delay, herald_shared::queue::MAX_DELAY);
    assert_eq!(sent[0].group.as_deref(), Some(late.lane().as_str()));
    let task: DispatchTask = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(task.delivery_id, late.delivery_id);
    assert_eq!(task.not_before, Some(deferred[1].until));
}

/// A queue that keeps what is sent to it.
#[derive(Debug, Default)]
struct Capture(std::sync::Mutex<Vec<herald_shared::queue::Outgoing>>);

#[async_trait]
impl Queue for Capture {
    async fn send_batch(
        &self,
        messages: Vec<herald_shared::queue::Outgoing>,
    ) -> Result<(), herald_shared::queue::QueueError> {
        self.0.lock().unwrap().extend(messages);
        Ok(())
    }
    async fn receive(
        &self,
        _: usize,
        _: std::time::Duration,
    ) -> Result<Vec<herald_shared::queue::Received>, herald_shared::queue::QueueError> {
        Ok(Vec::new())
    }
    async fn delete(
        &self,
        _: &herald_shared::queue::Receipt,
    ) -> Result<(), herald_shared::queue::QueueError> {
        Ok(())
    }
    async fn change_visibility(
        &self,
        _: &herald_shared::queue::Receipt,
        _: std::time::Duration,
    ) -> Result<(), herald_shared::queue::QueueError> {
        Ok(())
    }
}

/// Counts the counter `ADD`s (entity type `stats`) and the reads made through it.
#[derive(Debug, Default)]
struct Counting {
    stats_adds: std::sync::Mutex<Vec<herald_shared::store::Key>>,
    gets: std::sync::Mutex<Vec<herald_shared::store::Key>>,
}

impl Counting {
    fn over(inner: &Arc<dyn Store>) -> Arc<Watched<Self>> {
        Watched::new(Arc::clone(inner), Self::default())
    }

    /// How many times `key` was read.
    fn reads_of(&self, key: &herald_shared::store::Key) -> usize {
        self.gets
            .lock()
            .unwrap()
            .iter()
            .filter(|k| *k == key)
            .count()
    }
}

#[async_trait]
impl Watch for Counting {
    async fn before(&self, call: Call<'_>) -> Result<(), herald_shared::store::StoreError> {
        self.gets
            .lock()
            .unwrap()
            .extend_from_slice(call.keys_read());
        if let Call::Add {
            key,
            entity_type: "stats",
            ..
        } = call
        {
            self.stats_adds.lock().unwrap().push(key.clone());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_adds_to_each_stats_counter_once_whatever_the_number_of_deliveries() {
    let mut w = world().await;
    let counting = Counting::over(&w.store);
    w.store = counting.clone();
    let ch = w.channel(email_outbox()).await;
    let tasks = w.queued_to(&[&ch, &ch, &ch, &ch]).await;
    w.run_all_sent(tasks.clone()).await;
    let stats = w.today().await;
    assert_eq!(stats["ALL"]["sent"], 4);
    assert_eq!(stats["ALL"]["attempts"], 4);
    assert_eq!(stats[&format!("CH#{}", ch.id)]["sent"], 4);
    assert_eq!(stats["RULE#user.welcome"]["sent"], 4);
    // Day, channel and rule: one `ADD` each for the batch, not one per delivery.
    let adds = counting.watch.stats_adds.lock().unwrap().clone();
    assert_eq!(adds.len(), 3, "{adds:?}");

    // The same deliveries handed out again (a duplicate batch) count nothing more.
    let again = w.run(tasks, Utc::now(), RetryPolicy::default()).await;
    assert!(again.failed.is_empty(), "{again:?}");
    assert_eq!(w.today().await["ALL"]["sent"], 4);
    assert_eq!(counting.watch.stats_adds.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_batch_reads_each_of_its_channels_once_however_many_deliveries_go_there() {
    let mut w = world().await;
    let counting = Counting::over(&w.store);
    w.store = counting.clone();
    let (first, second) = (
        w.channel(email_outbox()).await,
        w.channel(email_outbox()).await,
    );
    let tasks = w
        .queued_to(&[&first, &second, &first, &second, &first])
        .await;
    w.run_all_sent(tasks).await;
    for ch in [&first, &second] {
        assert_eq!(
            counting
                .watch
                .reads_of(&herald_shared::store::keys::channel(&w.org, &ch.id)),
            1
        );
    }

    // The next batch reads them again: a change to a channel is seen by the batch after it.
    w.run_all_sent(w.queued_to(&[&first]).await).await;
    assert_eq!(
        counting
            .watch
            .reads_of(&herald_shared::store::keys::channel(&w.org, &first.id)),
        2
    );
}

#[tokio::test]
async fn a_manual_attempt_that_fails_is_not_retried_keeps_its_cap_slot_and_moves_no_count() {
    use herald_core::domain::delivery::AttemptTrigger;
    use herald_shared::pipeline::ManualResend;
    let w = world_with_http(Arc::new(Unavailable)).await;
    let config: ChannelConfig = serde_json::from_value(serde_json::json!({
        "kind": "slack", "webhookUrl": "https://hooks.slack.test/services/T/B/x"
    }))
    .unwrap();
    let ch = w.channel(config).await;
    let (slot, key) = counted_once(&w, &ch).await;
    let mut task = w
        .record(&ch, alice(None), DeliveryStatus::Queued, Some(slot))
        .await;
    // What resend queues for a delivery that had ended `failed`.
    task.manual = Some(ManualResend {
        previous: DeliveryStatus::Failed,
    });
    let outcome = w
        .run(vec![task.clone()], Utc::now(), RetryPolicy::default())
        .await;
    assert!(outcome.failed.is_empty());
    let d = w.delivery(task.delivery_id).await;
    assert_eq!(d.status, DeliveryStatus::Failed, "a 503 is not retried");
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .starts_with("resend (attempt 1) failed: "),
        "{d:?}"
    );
    assert_eq!(d.attempts[0].trigger, AttemptTrigger::Manual);
    assert!(d.next_attempt_at.is_none());
    let queued = w
        .queue
        .receive(10, std::time::Duration::from_millis(50))
        .await
        .unwrap();
    assert!(queued.is_empty(), "no retry scheduled");
    assert_eq!(
        cap_count(&w, &key).await,
        1,
        "the slot is not given back twice"
    );
    let all = &w.today().await["ALL"];
    assert_eq!(all.get("failed").copied().unwrap_or(0), 0, "{all:?}");
    assert_eq!(all.get("attempts").copied(), Some(1), "{all:?}");
}

// ---- Recover: pages of a recovery, and the retry path of a recovered delivery ---------------

/// Refuses the next save of a running recovery: a crash between a page's re-queue and its save.
#[derive(Debug)]
struct RecoverySaveFails {
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Watch for RecoverySaveFails {
    async fn before(&self, call: Call<'_>) -> Result<(), herald_shared::store::StoreError> {
        let saves_recovery = call
            .items_put()
            .iter()
            .any(|item| item.key.sk.starts_with("RECOVERY#"));
        if saves_recovery && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(herald_shared::store::StoreError::Engine(Box::new(
                std::io::Error::other("injected: the process died before the save"),
            )));
        }
        Ok(())
    }
}

/// Records `n` deliveries to `channel`, every `delivered_every`-th delivered and the others
/// failed after one 500, each with its event on record; answers the failed ones' ids.
async fn outage(w: &World, channel: &Channel, n: usize, delivered_every: usize) -> Vec<DeliveryId> {
    use herald_core::domain::delivery::{Attempt, AttemptTrigger};
    let mut failed = Vec::new();
    for i in 0..n {
        let mut task = w
            .record(channel, alice(None), DeliveryStatus::Queued, None)
            .await;
        task.event.id = EventId::parse(format!("evt-{i}")).unwrap();
        let ttl = (Utc::now() + chrono::Duration::days(1)).timestamp();
        herald_shared::repo::events::record(w.store.as_ref(), &task.event, ttl, Utc::now())
            .await
            .unwrap();
        let stored = deliveries::get(w.store.as_ref(), w.org, task.delivery_id)
            .await
            .unwrap()
            .unwrap();
        let mut d = stored.delivery;
        d.event_id = task.event.id.clone();
        let ok = delivered_every > 0 && i % delivered_every == 0;
        d.status = if ok {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Failed
        };
        d.attempts = vec![Attempt {
            n: 1,
            at: Utc::now(),
            status_code: Some(if ok { 200 } else { 500 }),
            error_class: (!ok).then_some(ErrorClass::ServerError),
            error: None,
            latency_ms: 5,
            trigger: AttemptTrigger::Scheduled,
            pruned_tokens: Vec::new(),
        }];
        deliveries::save(w.store.as_ref(), &d, stored.version, ttl)
            .await
            .unwrap();
        if !ok {
            failed.push(d.id);
        }
    }
    failed
}

fn dispatcher<'a>(w: &'a World, store: &'a dyn Store) -> Dispatcher<'a> {
    Dispatcher {
        store,
        dispatch_queue: w.queue.as_ref(),
        sender: &w.sender,
        feeds: &herald_shared::feed::NoopFeedNotifier,
        retry: RetryPolicy::default(),
        retention: chrono::Duration::days(1),
    }
}

fn page_message(
    recovery: &herald_core::domain::recovery::Recovery,
    page: u32,
    receive_count: u32,
) -> QueueMessage {
    let page = herald_shared::pipeline::RecoverPage {
        org_id: recovery.org_id,
        channel_id: recovery.channel_id,
        recovery_id: recovery.id,
        page,
    };
    QueueMessage {
        id: format!("page-{}", page.page),
        body: page.message().unwrap().body,
        receive_count,
    }
}

/// Everything on the dispatch queue now: dispatch tasks and recovery pages.
async fn drain(w: &World) -> (Vec<DispatchTask>, Vec<u32>) {
    let (mut tasks, mut pages) = (Vec::new(), Vec::new());
    loop {
        let got = w
            .queue
            .receive(10, std::time::Duration::from_millis(20))
            .await
            .unwrap();
        if got.is_empty() {
            return (tasks, pages);
        }
        for m in got {
            if let Some(p) = herald_shared::pipeline::RecoverPageTask::parse(&m.body) {
                pages.push(p.page);
            } else {
                tasks.push(serde_json::from_str(&m.body).unwrap());
            }
            w.queue.delete(&m.receipt).await.unwrap();
        }
    }
}

async fn started_recovery(w: &World, channel: &Channel) -> herald_core::domain::recovery::Recovery {
    limited_recovery(w, channel, herald_core::domain::recovery::MAX_REQUEUED).await
}

async fn limited_recovery(
    w: &World,
    channel: &Channel,
    limit: u32,
) -> herald_core::domain::recovery::Recovery {
    use herald_core::domain::recovery::{Recovery, RecoveryWindow};
    let now = Utc::now() + chrono::Duration::milliseconds(5);
    let window = RecoveryWindow::new(now - chrono::Duration::hours(1), None, now).unwrap();
    let recovery = Recovery::start(w.org, channel.id, window, now);
    let started = herald_shared::repo::recoveries::start(w.store.as_ref(), &recovery, limit, now)
        .await
        .unwrap();
    assert_eq!(started, herald_shared::repo::recoveries::Started::Started);
    recovery
}

async fn recovery_now(
    w: &World,
    id: herald_core::domain::RecoveryId,
) -> herald_shared::repo::recoveries::Versioned {
    herald_shared::repo::recoveries::get(w.store.as_ref(), w.org, id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_recovery_page_handled_twice_requeues_nothing_twice_and_the_next_continues_from_its_cursor()
 {
    recovery_pages_continue_from_their_cursor_and_requeue_nothing_twice(world().await).await;
}

/// The pages over DynamoDB on the emulator (`HERALD_TEST_AWS_ENDPOINT`): the channel log on
/// GSI1 oldest first, its cursor, and the save that ends a recovery and frees its channel.
#[cfg(feature = "lambda")]
#[tokio::test]
async fn over_dynamodb_a_recovery_page_handled_twice_requeues_nothing_twice_and_the_next_continues_from_its_cursor()
 {
    use herald_shared::store::dynamodb::{DynamoStore, create_table};
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique("herald-recover");
    create_table(&client, &table).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, &table));
    recovery_pages_continue_from_their_cursor_and_requeue_nothing_twice(world_over(
        store,
        Arc::new(NoHttp),
    ))
    .await;
}

async fn recovery_pages_continue_from_their_cursor_and_requeue_nothing_twice(w: World) {
    use herald_core::domain::recovery::RecoveryState;
    let ch = slack(&w, None).await;
    // 250 rows: every fifth delivered, 200 failed.
    let failed = outage(&w, &ch, 250, 5).await;
    assert_eq!(failed.len(), 200);
    let recovery = started_recovery(&w, &ch).await;
    let d = dispatcher(&w, w.store.as_ref());

    let outcome = d
        .handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let after_first = recovery_now(&w, recovery.id).await;
    assert_eq!(after_first.pages, 1);
    assert_eq!(after_first.recovery.scanned, 100);
    assert_eq!(after_first.recovery.requeued, 80);
    assert_eq!(after_first.recovery.skipped.not_failed, 20);
    assert_eq!(after_first.recovery.state, RecoveryState::Running);
    let (tasks, pages) = drain(&w).await;
    assert_eq!(tasks.len(), 80);
    assert_eq!(pages, vec![1], "the next page is queued");
    // Oldest first: the first page holds the oldest failures, in order.
    let ids: Vec<DeliveryId> = tasks.iter().map(|t| t.delivery_id).collect();
    assert_eq!(ids, failed[..80].to_vec());
    for t in &tasks {
        assert_eq!(t.attempt, 2);
        assert_eq!(t.recovered.unwrap().after_attempts, 1);
        assert_eq!(t.recovered.unwrap().recovery_id, recovery.id);
    }

    // The same page again (a duplicate message): nothing re-queued, nothing counted, nothing sent.
    let outcome = d
        .handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let again = recovery_now(&w, recovery.id).await;
    assert_eq!(again.version, after_first.version, "not saved again");
    let (tasks, pages) = drain(&w).await;
    assert!(tasks.is_empty() && pages.is_empty(), "{tasks:?} {pages:?}");

    // The next pages continue from the saved cursor, to the end of the window.
    d.handle(vec![page_message(&recovery, 1, 1)], Utc::now())
        .await;
    let (tasks, pages) = drain(&w).await;
    assert_eq!(
        tasks.iter().map(|t| t.delivery_id).collect::<Vec<_>>(),
        failed[80..160].to_vec()
    );
    assert_eq!(pages, vec![2]);
    d.handle(vec![page_message(&recovery, 2, 1)], Utc::now())
        .await;
    let (tasks, pages) = drain(&w).await;
    assert_eq!(
        tasks.iter().map(|t| t.delivery_id).collect::<Vec<_>>(),
        failed[160..].to_vec()
    );
    assert!(pages.is_empty(), "the last page queues no other");
    let done = recovery_now(&w, recovery.id).await.recovery;
    assert_eq!(done.state, RecoveryState::Done);
    assert_eq!((done.scanned, done.requeued), (250, 200));
    assert_eq!(done.skipped.not_failed, 50);
    assert!(!done.truncated && done.finished_at.is_some());
    assert_eq!(
        herald_shared::repo::recoveries::running_on(w.store.as_ref(), w.org, ch.id)
            .await
            .unwrap(),
        None,
        "the channel is free for another recovery"
    );
    for id in &failed {
        let d = w.delivery(*id).await;
        assert_eq!(d.status, DeliveryStatus::Queued, "{d:?}");
    }
}

#[tokio::test]
async fn a_recovery_page_that_crashed_before_its_save_runs_again_and_its_counts_add_up() {
    use herald_core::domain::recovery::RecoveryState;
    let w = world().await;
    let ch = slack(&w, None).await;
    let failed = outage(&w, &ch, 30, 0).await;
    let recovery = started_recovery(&w, &ch).await;
    let failing = Watched::new(
        Arc::clone(&w.store),
        RecoverySaveFails {
            armed: std::sync::atomic::AtomicBool::new(true),
        },
    );
    let d = dispatcher(&w, failing.as_ref());
    let outcome = d
        .handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    assert_eq!(
        outcome.failed,
        vec!["page-0".to_owned()],
        "the page is retried"
    );
    let (tasks, _) = drain(&w).await;
    assert_eq!(tasks.len(), 30, "re-queued before the crash");
    assert_eq!(recovery_now(&w, recovery.id).await.pages, 0, "not saved");
    let marked = w.delivery(failed[0]).await;
    assert_eq!(marked.recovered.unwrap().recovery_id, recovery.id);
    assert_eq!(marked.recovered.unwrap().after_attempts, 1);
    // Another dispatcher (Lambda) attempts the first ten meanwhile; they end (failed again:
    // this world's HTTP sender refuses).
    // (Slack's default pacing lets three through at once; the others are held, not attempted.)
    let out = d.handle(messages(&tasks[..10]), Utc::now()).await;
    assert!(out.failed.is_empty(), "{out:?}");
    assert_eq!(w.delivery(failed[0]).await.attempts.len(), 2);
    let mut waiting = Vec::new();
    for id in &failed {
        if w.delivery(*id).await.attempts.len() == 1 {
            waiting.push(*id);
        }
    }
    assert!(
        waiting.len() < 30 && waiting.len() >= 20,
        "{}",
        waiting.len()
    );

    // The page comes back: the deliveries it re-queued are recognised by their mark and
    // counted, attempted or not; those not attempted yet get their message again (the
    // dispatcher drops an attempt already on record).
    let outcome = d
        .handle(vec![page_message(&recovery, 0, 2)], Utc::now())
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let (tasks, pages) = drain(&w).await;
    assert_eq!(
        tasks.iter().map(|t| t.delivery_id).collect::<Vec<_>>(),
        waiting
    );
    assert!(pages.is_empty());
    let done = recovery_now(&w, recovery.id).await.recovery;
    assert_eq!(done.state, RecoveryState::Done);
    assert_eq!((done.scanned, done.requeued), (30, 30), "{done:?}");
    assert_eq!(done.skipped.not_failed, 0);
}

#[tokio::test]
async fn a_recovered_delivery_retries_with_a_budget_counted_from_its_recovery_and_moves_its_count()
{
    let w = world_with_http(Arc::new(Unavailable)).await;
    let ch = slack(&w, None).await;
    let failed = outage(&w, &ch, 1, 0).await;
    let recovery = started_recovery(&w, &ch).await;
    let d = dispatcher(&w, w.store.as_ref());
    d.handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    let (tasks, _) = drain(&w).await;
    assert_eq!(tasks.len(), 1);
    // One attempt allowed in all: the delivery used it before the recovery, yet the recovered
    // attempt is retried — its budget starts at the recovery.
    let retry = RetryPolicy {
        max_attempts: 2,
        base: std::time::Duration::from_millis(1),
        max_wait: std::time::Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let mut one = d;
    one.retry = retry;
    let outcome = one.handle(messages(&tasks), Utc::now()).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let after = w.delivery(failed[0]).await;
    assert_eq!(after.status, DeliveryStatus::Queued, "{after:?}");
    assert_eq!(after.attempts.len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (next, _) = drain(&w).await;
    assert_eq!(next.len(), 1, "a retry is scheduled");
    assert_eq!(next[0].attempt, 3);
    assert_eq!(
        next[0].recovered, tasks[0].recovered,
        "the retry is still the recovery's"
    );
    // Its second attempt since the recovery exhausts the budget of two.
    one.handle(messages(&next), Utc::now()).await;
    let after = w.delivery(failed[0]).await;
    assert_eq!(after.status, DeliveryStatus::Failed, "{after:?}");
    assert_eq!(after.attempts.len(), 3);
    let all = &w.today().await["ALL"];
    // Failed before and after: the count stays, the two new attempts are added.
    assert_eq!(all.get("failed").copied().unwrap_or(0), 0, "{all:?}");
    assert_eq!(all.get("attempts").copied(), Some(2), "{all:?}");

    // Recovered again, the receiver back: it ends delivered, and its count moves.
    let w2 = world_with_http(Scripted::ok()).await;
    let ch2 = slack(&w2, None).await;
    let failed2 = outage(&w2, &ch2, 1, 0).await;
    let recovery2 = started_recovery(&w2, &ch2).await;
    let d2 = dispatcher(&w2, w2.store.as_ref());
    d2.handle(vec![page_message(&recovery2, 0, 1)], Utc::now())
        .await;
    let (tasks2, _) = drain(&w2).await;
    d2.handle(messages(&tasks2), Utc::now()).await;
    let delivered = w2.delivery(failed2[0]).await;
    assert_eq!(delivered.status, DeliveryStatus::Delivered, "{delivered:?}");
    let all = &w2.today().await["ALL"];
    assert_eq!(all.get("failed").copied(), Some(-1), "{all:?}");
    assert_eq!(all.get("delivered").copied(), Some(1), "{all:?}");
    assert_eq!(all.get("attempts").copied(), Some(1), "{all:?}");
}

/// The creation time of a delivery: its UUIDv7's milliseconds.
fn created(id: DeliveryId) -> chrono::DateTime<Utc> {
    let (secs, nanos) = id.as_uuid().get_timestamp().unwrap().to_unix();
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap(), nanos).unwrap()
}

#[tokio::test]
async fn a_recovery_stops_at_its_limit_truncated_with_the_time_to_resume_from() {
    use herald_core::domain::recovery::RecoveryState;
    let w = world().await;
    // The limit reached within a page.
    let ch = slack(&w, None).await;
    let failed = outage(&w, &ch, 30, 0).await;
    let recovery = limited_recovery(&w, &ch, 12).await;
    let d = dispatcher(&w, w.store.as_ref());
    d.handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    let (tasks, pages) = drain(&w).await;
    assert_eq!(
        tasks.iter().map(|t| t.delivery_id).collect::<Vec<_>>(),
        failed[..12].to_vec()
    );
    assert!(pages.is_empty());
    let done = recovery_now(&w, recovery.id).await.recovery;
    assert_eq!(done.state, RecoveryState::Done);
    assert_eq!((done.scanned, done.requeued), (12, 12));
    assert!(done.truncated);
    assert_eq!(done.resume_since, Some(created(failed[12])));
    assert_eq!(w.delivery(failed[12]).await.status, DeliveryStatus::Failed);

    // The limit reached on a page's last row, more rows after it.
    let ch = slack(&w, None).await;
    let failed = outage(&w, &ch, 105, 0).await;
    let recovery = limited_recovery(&w, &ch, 100).await;
    d.handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    let (tasks, pages) = drain(&w).await;
    assert_eq!(tasks.len(), 100);
    assert!(pages.is_empty(), "no page after the limit");
    let done = recovery_now(&w, recovery.id).await.recovery;
    assert_eq!(done.state, RecoveryState::Done);
    assert!(done.truncated);
    assert_eq!(done.resume_since, Some(created(failed[100])));

    // Exactly the limit and nothing after: done, not truncated.
    let ch = slack(&w, None).await;
    outage(&w, &ch, 5, 0).await;
    let recovery = limited_recovery(&w, &ch, 5).await;
    d.handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    let done = recovery_now(&w, recovery.id).await.recovery;
    assert_eq!(
        (done.state, done.requeued, done.truncated),
        (RecoveryState::Done, 5, false)
    );
    assert_eq!(done.resume_since, None);
}

#[tokio::test]
async fn a_recovery_whose_channel_was_disabled_meanwhile_fails_and_frees_the_channel() {
    use herald_core::domain::recovery::RecoveryState;
    let w = world().await;
    let ch = slack(&w, None).await;
    outage(&w, &ch, 3, 0).await;
    let recovery = started_recovery(&w, &ch).await;
    let Ok((ch, ())) = Channels::new(w.store.as_ref())
        .modify(&ch.org_id, &ch.id, |c| {
            c.enabled = false;
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
    let d = dispatcher(&w, w.store.as_ref());
    let outcome = d
        .handle(vec![page_message(&recovery, 0, 1)], Utc::now())
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    let (tasks, pages) = drain(&w).await;
    assert!(tasks.is_empty() && pages.is_empty());
    let failed = recovery_now(&w, recovery.id).await.recovery;
    assert_eq!(failed.state, RecoveryState::Failed);
    assert_eq!(failed.requeued, 0);
    assert!(
        failed.error.as_deref().unwrap().contains("disabled"),
        "{failed:?}"
    );
    assert_eq!(
        herald_shared::repo::recoveries::running_on(w.store.as_ref(), w.org, ch.id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn one_recovery_runs_per_channel_and_one_without_progress_for_15_minutes_is_replaced() {
    use herald_core::domain::recovery::{Recovery, RecoveryState, RecoveryWindow};
    use herald_shared::repo::recoveries::{self, Started};
    let w = world().await;
    let ch = slack(&w, None).await;
    let first = started_recovery(&w, &ch).await;
    let now = Utc::now();
    let window = RecoveryWindow::new(now - chrono::Duration::hours(1), None, now).unwrap();
    let second = Recovery::start(w.org, ch.id, window, now);
    let refused = recoveries::start(w.store.as_ref(), &second, 10, now)
        .await
        .unwrap();
    match refused {
        Started::Running(running) => assert_eq!(running.id, first.id),
        other => panic!("{other:?}"),
    }
    // Another channel is not held.
    let other = slack(&w, None).await;
    let elsewhere = Recovery::start(w.org, other.id, window, now);
    assert_eq!(
        recoveries::start(w.store.as_ref(), &elsewhere, 10, now)
            .await
            .unwrap(),
        Started::Started
    );
    // 15 minutes without progress (its page was dead-lettered): the next recovery replaces it.
    let later = now + chrono::Duration::minutes(16);
    let third = Recovery::start(w.org, ch.id, window, later);
    assert_eq!(
        recoveries::start(w.store.as_ref(), &third, 10, later)
            .await
            .unwrap(),
        Started::Started
    );
    let replaced = recovery_now(&w, first.id).await.recovery;
    assert_eq!(replaced.state, RecoveryState::Failed);
    assert!(
        replaced
            .error
            .as_deref()
            .unwrap()
            .contains(&third.id.to_string()),
        "{replaced:?}"
    );
    assert_eq!(
        recoveries::running_on(w.store.as_ref(), w.org, ch.id)
            .await
            .unwrap(),
        Some(third.id)
    );
}

async fn suppress(w: &World, address: &str, reason: SuppressionReason) {
    let address = SuppressedAddress::parse(SuppressionKind::Email, address).unwrap();
    suppressions::add(
        w.store.as_ref(),
        &w.org,
        &Suppression::new(
            &address,
            reason,
            SuppressionSource::Ses,
            SuppressionDetails {
                diagnostic_code: Some("smtp; 550 5.1.1 user unknown".into()),
                ..Default::default()
            },
            "2026-05-01T10:00:00Z".parse().unwrap(),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_email_to_a_suppressed_address_from_the_event_is_suppressed_with_the_reason() {
    let w = world().await;
    suppress(&w, "a@x.com", SuppressionReason::HardBounce).await;
    let ch = w.channel(email_outbox()).await;
    let d = w
        .dispatch(&ch, alice(Some("A@X.com")), DeliveryStatus::Queued)
        .await;
    assert_eq!(d.status, DeliveryStatus::Suppressed);
    assert_eq!(
        d.reason.as_deref(),
        Some(
            "a@x.com is on the suppression list (hard bounce 2026-05-01, smtp; 550 5.1.1 user unknown)"
        )
    );
    assert!(d.attempts.is_empty());
    assert!(w.outbox().await.is_empty());
}

#[tokio::test]
async fn a_profile_replaced_after_a_complaint_does_not_clear_the_suppression() {
    let w = world().await;
    profile(&w, Some("alice@example.com"), &[]).await;
    suppress(&w, "alice@example.com", SuppressionReason::Complaint).await;
    // The customer replaces the whole profile (PUT /users): the entry is keyed by address.
    profile(&w, Some("Alice@Example.com"), &[]).await;
    let ch = w.channel(email_outbox()).await;
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Suppressed);
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .starts_with("alice@example.com is on the suppression list (complaint 2026-05-01"),
        "{:?}",
        d.reason
    );
    assert!(w.outbox().await.is_empty());
    // Another address of the same org still gets its email.
    let d = w
        .dispatch(
            &ch,
            alice(Some("other@example.com")),
            DeliveryStatus::Queued,
        )
        .await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{:?}", d.reason);
}

#[tokio::test]
async fn an_sms_to_a_number_opted_out_at_sns_is_suppressed_and_the_number_listed() {
    let w = aws_world().await;
    let ch = w
        .channel(ChannelConfig::Sms(SmsConfig::Sns {
            sender_id: None,
            region: None,
        }))
        .await;
    // moto's CheckIfPhoneNumberIsOptedOut answers true for numbers ending in 99.
    let number = format!("+1415{:05}99", random_digits() % 100_000);
    let recipient = Recipient {
        phone: Some(number.clone()),
        ..alice(None)
    };
    let d = w
        .dispatch(&ch, recipient.clone(), DeliveryStatus::Queued)
        .await;
    assert_eq!(d.status, DeliveryStatus::Suppressed, "{d:?}");
    assert_eq!(
        d.reason.as_deref(),
        Some(format!("{number} opted out of SMS (STOP); added to the suppression list").as_str())
    );
    assert!(d.attempts.is_empty(), "nothing published: {d:?}");
    let entry = suppressions::get(
        w.store.as_ref(),
        &w.org,
        &SuppressedAddress::parse(SuppressionKind::Sms, &number).unwrap(),
    )
    .await
    .unwrap()
    .expect("the number is on the suppression list");
    assert_eq!(entry.reason, SuppressionReason::SmsOptOut);
    assert_eq!(entry.source, SuppressionSource::Sns);
    // The next delivery stops at the list.
    let d = w.dispatch(&ch, recipient, DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Suppressed);
    assert!(
        d.reason.as_deref().unwrap().starts_with(&format!(
            "{number} is on the suppression list (opted out of SMS (STOP) "
        )),
        "{d:?}"
    );
    assert_eq!(w.today().await["ALL"]["suppressed"], 2);
}

// ---------------------------------------------------------------- dead push tokens

const FCM_TEST_KEY: &str = include_str!("../../../shared/tests/fixtures/fcm-test-key.pem");

/// FCM on loopback: a token endpoint that issues any caller a token, and `messages:send`
/// answering `UNREGISTERED` (404, `FcmError`) for device tokens containing `dead`. With a
/// `replacement`, the customer replaces the user's profile while FCM is answering.
#[derive(Clone)]
struct FcmPeer {
    store: Arc<dyn Store>,
    replacement: Replacement,
}

async fn fcm_token() -> axum::Json<serde_json::Value> {
    axum::Json(
        serde_json::json!({"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"}),
    )
}

async fn fcm_send(
    axum::extract::State(peer): axum::extract::State<FcmPeer>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let token = body["message"]["token"].as_str().unwrap_or_default();
    if !token.contains("dead") {
        return axum::Json(serde_json::json!({"name": "projects/p/messages/0:1"})).into_response();
    }
    let replacement = peer.replacement.lock().unwrap().take();
    if let Some(profile) = replacement {
        users::put(peer.store.as_ref(), &profile).await.unwrap();
    }
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND",
            "message": "Requested entity was not found.",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
    )
        .into_response()
}

/// A profile the customer puts while FCM answers (see [`FcmPeer`]).
type Replacement = Arc<std::sync::Mutex<Option<UserProfile>>>;

/// The world with FCM pointed at a loopback peer; returns the push channel and the handle to
/// replace the profile while FCM answers.
async fn fcm_world() -> (World, Channel, Replacement) {
    use herald_shared::delivery::providers::fcm::FcmSender;
    use herald_shared::delivery::{OutboundClient, OutboundConfig};
    let mut w = world().await;
    let replacement: Replacement = Arc::default();
    let peer = FcmPeer {
        store: Arc::clone(&w.store),
        replacement: Arc::clone(&replacement),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::post(fcm_token))
        .route(
            "/v1/projects/{project}/{action}",
            axum::routing::post(fcm_send),
        )
        .with_state(peer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = OutboundClient::new(OutboundConfig {
        allow: "127.0.0.0/8".parse().unwrap(),
        ..OutboundConfig::default()
    })
    .unwrap();
    let fcm = FcmSender::with_endpoint(client, url::Url::parse(&base).unwrap());
    w.sender = w.sender.clone().with_fcm(Arc::new(fcm));
    let ch = w
        .channel(ChannelConfig::Push(PushConfig::Fcm {
            project_id: "herald-test".into(),
            client_email: "herald-push@herald-test.iam.gserviceaccount.com".into(),
            private_key: FCM_TEST_KEY.into(),
            token_uri: Some(format!("{base}/token")),
        }))
        .await;
    (w, ch, replacement)
}

fn with_tokens(w: &World, tokens: &[&str]) -> UserProfile {
    UserProfile {
        user_id: UserId::parse("alice").unwrap(),
        org_id: w.org,
        email: None,
        phone: None,
        push_tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
        timezone: None,
        opt_outs: vec![],
        updated_at: Utc::now(),
    }
}

async fn stored_tokens(w: &World) -> Vec<String> {
    users::get(w.store.as_ref(), &w.org, &UserId::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap()
        .push_tokens
}

#[tokio::test]
async fn a_token_fcm_calls_unregistered_leaves_the_profile_and_the_attempt_says_so() {
    let (w, ch, _) = fcm_world().await;
    let profile = with_tokens(
        &w,
        &[
            "phone-aaaa11111111",
            "tablet-dead-22222222",
            "laptop-cccc33333333",
        ],
    );
    users::put(w.store.as_ref(), &profile).await.unwrap();
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{d:?}");
    assert_eq!(
        stored_tokens(&w).await,
        ["phone-aaaa11111111", "laptop-cccc33333333"]
    );
    assert_eq!(d.attempts[0].pruned_tokens, ["…22222222"]);
    // The next delivery does not try it again.
    let d = w.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Sent);
    assert_eq!(d.reason.as_deref(), Some("delivered to 2 push token(s)"));
    assert!(d.attempts[0].pruned_tokens.is_empty());
}

#[tokio::test]
async fn a_profile_replaced_while_fcm_answers_wins_over_the_prune() {
    let (w2, ch, replacement) = fcm_world().await;
    *replacement.lock().unwrap() = Some(with_tokens(
        &w2,
        &["tablet-dead-22222222", "watch-dddd44444444"],
    ));
    let profile = with_tokens(
        &w2,
        &[
            "phone-aaaa11111111",
            "tablet-dead-22222222",
            "laptop-cccc33333333",
        ],
    );
    users::put(w2.store.as_ref(), &profile).await.unwrap();
    let d = w2.dispatch(&ch, alice(None), DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{d:?}");
    assert_eq!(
        stored_tokens(&w2).await,
        ["tablet-dead-22222222", "watch-dddd44444444"],
        "the customer's PUT is kept whole"
    );
    assert!(d.attempts[0].pruned_tokens.is_empty());
}

#[tokio::test]
async fn dead_tokens_the_event_carries_are_not_pruned_from_the_profile() {
    let (w, ch, _) = fcm_world().await;
    users::put(
        w.store.as_ref(),
        &with_tokens(&w, &["tablet-dead-22222222"]),
    )
    .await
    .unwrap();
    let recipient = Recipient {
        push_tokens: vec!["tablet-dead-22222222".into(), "phone-aaaa11111111".into()],
        ..alice(None)
    };
    let d = w.dispatch(&ch, recipient, DeliveryStatus::Queued).await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{d:?}");
    assert_eq!(stored_tokens(&w).await, ["tablet-dead-22222222"]);
    assert!(d.attempts[0].pruned_tokens.is_empty());
}

/// Holds every write of a delivery record until the test opens it, and slows every write of a
/// lane by 50 ms: a slow store, as the writes of a busy database look from the dispatcher (a
/// next attempt that did not wait for its lane's write would not see it).
#[derive(Debug)]
struct HeldRecords {
    open: tokio::sync::watch::Sender<bool>,
}

impl HeldRecords {
    fn over(inner: &Arc<dyn Store>) -> Arc<Watched<Self>> {
        let (open, _) = tokio::sync::watch::channel(false);
        Watched::new(Arc::clone(inner), Self { open })
    }

    fn release(&self) {
        self.open.send_replace(true);
    }
}

#[async_trait]
impl Watch for HeldRecords {
    async fn before(&self, call: Call<'_>) -> Result<(), herald_shared::store::StoreError> {
        let puts = call.items_put();
        let of = |entity: &str| puts.iter().any(|item| item.entity_type == entity);
        if of(herald_shared::store::keys::entity::LANE) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if of(herald_shared::store::keys::entity::DELIVERY) {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|open| *open).await;
        }
        Ok(())
    }
}

/// Waits (up to 10 s) until `http` has been called `n` times; whether it was.
async fn called(http: &Scripted, n: usize) -> bool {
    for _ in 0..1000 {
        if http.calls() >= n {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Three deliveries of one lane in order, their records' writes held.
async fn in_order_with_records_held(
    http: Arc<Scripted>,
) -> (World, Arc<Watched<HeldRecords>>, Vec<DispatchTask>) {
    let w = world_with_http(http).await;
    // A generic webhook: unpaced, so its admission writes nothing either.
    let ch = w
        .channel(ChannelConfig::Webhook(
            herald_core::domain::channel::WebhookConfig {
                url: "https://hooks.example.test/in-order".parse().unwrap(),
                format: herald_core::domain::channel::WebhookFormat::Generic,
                headers: std::collections::BTreeMap::new(),
                signing_secret: herald_core::domain::channel::SigningSecret::generate(),
                previous_secrets: Vec::new(),
                signing_secret_created_at: None,
                routing_key: None,
            },
        ))
        .await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(
            w.record(&ch, alice(None), DeliveryStatus::Queued, None)
                .await,
        );
    }
    let held = HeldRecords::over(&w.store);
    (w, held, tasks)
}

/// Runs `tasks` as one in-order run over `held`, its delivery records held until `http` was
/// called `calls` times (the run must not end before), then released; the run's outcome.
async fn run_in_order_held_until(
    w: &World,
    held: &Arc<Watched<HeldRecords>>,
    tasks: &[DispatchTask],
    http: &Scripted,
    calls: usize,
) -> BatchOutcome {
    let store: Arc<dyn Store> = held.clone();
    let d = dispatcher(w, store.as_ref());
    let run = d.handle_in_order(messages(tasks));
    tokio::pin!(run);
    tokio::select! {
        outcome = &mut run => panic!("the run ended with its records held: {outcome:?}"),
        reached = called(http, calls) => assert!(
            reached,
            "attempts waited for the records: {} of {calls} sent",
            http.calls()
        ),
    }
    held.watch.release();
    run.await
}

#[tokio::test]
async fn in_order_the_next_attempt_does_not_wait_for_the_previous_delivery_record() {
    let http = Scripted::ok();
    let (w, held, tasks) = in_order_with_records_held(http.clone()).await;
    let outcome = run_in_order_held_until(&w, &held, &tasks, &http, 3).await;
    assert!(
        outcome.failed.is_empty() && outcome.deferred.is_empty(),
        "{outcome:?}"
    );
    for task in &tasks {
        let d = w.delivery(task.delivery_id).await;
        assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
        assert_eq!(d.attempts.len(), 1, "{d:?}");
    }
}

#[tokio::test]
async fn in_order_a_429_pauses_the_lane_before_the_next_attempt_even_with_its_record_held() {
    let http = Scripted::too_many(30);
    let (w, held, tasks) = in_order_with_records_held(http.clone()).await;
    // Whatever the next delivery is told, it is told with the pause on record.
    let outcome = run_in_order_held_until(&w, &held, &tasks, &http, 1).await;
    assert_eq!(http.calls(), 1, "nothing was attempted during the pause");
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        outcome.deferred.len(),
        2,
        "the rest of the run waits: {outcome:?}"
    );
    let first = w.delivery(tasks[0].delivery_id).await;
    assert_eq!(first.attempts.len(), 1, "the 429 is on record: {first:?}");
}
