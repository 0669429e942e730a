//! The matcher's user-facing rules through the real code path (embedded store and queue):
//! frequency caps under concurrency, quiet-hours deferral, explain agreeing with routing, and
//! the alert lifecycle (`lifecycle`: a property test and the DynamoDB run of dedup and silences).
#![allow(clippy::unwrap_used)]

#[path = "notify/lifecycle.rs"]
mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::domain::channel::{Channel, ChannelConfig, EmailConfig, FrequencyCap};
use herald_core::domain::delivery::DeliveryStatus;
use herald_core::domain::event::{Event, EventType, Module, Recipient};
use herald_core::domain::rule::{QuietHours, Rule};
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey, UserId};
use herald_matcher::{Matcher, RulesCache};
use herald_shared::pipeline::{DispatchTask, MatchTask, QueueMessage};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::deliveries::{self, LogFilter};
use herald_shared::repo::{Channels, Rules};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;

struct World {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    rules: Arc<RulesCache>,
    org: OrgId,
    channel: ChannelId,
    _queues: EmbeddedQueues,
}

async fn world(cap: Option<FrequencyCap>, quiet: Option<QuietHours>) -> World {
    let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("store"));
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let queue: Arc<dyn Queue> = Arc::new(queues.queue("dispatch", QueueSettings::default()));
    let org = OrgId::new();
    let now = Utc::now();
    let channel = Channel {
        frequency_cap: cap,
        ..herald_testing::channels::channel(
            org,
            ChannelConfig::Email(EmailConfig::Outbox { from: None }),
        )
    };
    Channels::new(store.as_ref())
        .create(&channel)
        .await
        .unwrap();
    let rule = Rule {
        key: RuleKey::parse("digest").unwrap(),
        org_id: org,
        matcher: None,
        channel_ids: vec![channel.id],
        frequency_cap: None,
        quiet_hours: quiet,
        alerting: None,
        recipients: vec![],
        template: None,
        critical: false,
        digest: None,
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    Rules::new(store.as_ref()).create(&rule).await.unwrap();
    World {
        store,
        queue,
        rules: Arc::new(RulesCache::new(Duration::from_secs(60))),
        org,
        channel: channel.id,
        _queues: queues,
    }
}

fn event(org: OrgId, user: &str) -> Event {
    let now = Utc::now();
    Event {
        id: EventId::generate(),
        org_id: org,
        event_type: EventType::parse("digest").unwrap(),
        module: Module::parse("email").unwrap(),
        properties: serde_json::Map::new(),
        recipients: vec![Recipient {
            user_id: UserId::parse(user).unwrap(),
            email: Some(format!("{user}@example.com")),
            phone: None,
            push_tokens: vec![],
        }],
        occurred_at: now,
        received_at: now,
        alert: None,
    }
}

fn message(event: &Event) -> QueueMessage {
    QueueMessage {
        id: event.id.to_string(),
        body: serde_json::to_string(&MatchTask {
            event: event.clone(),
            auto_resolve: None,
            group_tick: None,
            digest_flush: None,
            forwarded_again: false,
        })
        .unwrap(),
        receive_count: 1,
    }
}

impl World {
    async fn handle(&self, event: &Event, now: DateTime<Utc>) {
        self.handle_message(message(event), now).await;
    }

    async fn handle_message(&self, message: QueueMessage, now: DateTime<Utc>) {
        let outcome = Matcher {
            store: self.store.as_ref(),
            dispatch_queue: self.queue.as_ref(),
            match_queue: None,
            rules: &self.rules,
            // Long enough that records made at fixed past instants are not yet expired.
            retention: chrono::Duration::days(3650),
        }
        .handle(vec![message], now)
        .await;
        assert!(outcome.failed.is_empty(), "matching failed");
    }

    async fn deliveries(&self) -> Vec<herald_core::domain::delivery::Delivery> {
        deliveries::list(
            self.store.as_ref(),
            self.org,
            &LogFilter::default(),
            200,
            None,
            Utc::now() + chrono::Duration::minutes(1),
        )
        .await
        .unwrap()
        .items
    }

    /// Dispatch tasks ready now (up to 100).
    async fn dispatched(&self) -> Vec<DispatchTask> {
        let mut out = Vec::new();
        loop {
            let got = self.queue.receive(10, Duration::ZERO).await.unwrap();
            if got.is_empty() {
                return out;
            }
            out.extend(got.iter().map(|r| serde_json::from_str(&r.body).unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cap_holds_under_concurrent_deliveries_to_one_user() {
    let cap = FrequencyCap {
        per_user: 5,
        window_hours: 24,
    };
    let w = Arc::new(world(Some(cap), None).await);
    let now = Utc::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let w = Arc::clone(&w);
        tasks.spawn(async move {
            let e = event(w.org, "alice");
            w.handle(&e, now).await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    // Another user has their own allowance.
    w.handle(&event(w.org, "bob"), now).await;

    let all = w.deliveries().await;
    let alice: Vec<_> = all
        .iter()
        .filter(|d| d.recipient.as_ref().unwrap().as_str() == "alice")
        .collect();
    assert_eq!(alice.len(), 40);
    let queued = alice
        .iter()
        .filter(|d| d.status == DeliveryStatus::Queued)
        .count();
    assert_eq!(queued, 5, "exactly perUser deliveries pass");
    let suppressed: Vec<_> = alice
        .iter()
        .filter(|d| d.status == DeliveryStatus::Suppressed)
        .collect();
    assert_eq!(suppressed.len(), 35);
    // What the dispatcher needs to give a slot back if the delivery fails before reaching alice.
    let window = herald_core::delivery::caps::window(cap, now);
    assert!(
        alice
            .iter()
            .filter(|d| d.status == DeliveryStatus::Queued)
            .all(|d| d.cap_slot == Some(window.slot(cap)))
    );
    assert!(suppressed.iter().all(|d| d.cap_slot.is_none()));
    assert_eq!(
        suppressed[0].reason.as_deref(),
        Some("frequency cap: 5 per 24h reached for user alice")
    );
    let sent = w.dispatched().await;
    assert_eq!(
        sent.len(),
        6,
        "5 for alice, 1 for bob; suppressed ones are never sent"
    );
    assert!(sent.iter().all(|t| t.channel_id == w.channel));
}

#[tokio::test]
async fn a_match_handled_twice_counts_once_against_the_cap() {
    let cap = FrequencyCap {
        per_user: 2,
        window_hours: 1,
    };
    let w = world(Some(cap), None).await;
    let now = Utc::now();
    let first = event(w.org, "alice");
    w.handle(&first, now).await;
    w.handle(&first, now).await;
    w.handle(&event(w.org, "alice"), now).await;
    let statuses: Vec<_> = w.deliveries().await.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        vec![DeliveryStatus::Queued, DeliveryStatus::Queued]
    );
}

/// `herald serve` matches in the ingest worker (no match message to receive again): when
/// matching fails, ingest forwards the event again, flagged, and the matcher must then enqueue
/// deliveries already on record — their first enqueue may be what failed.
#[tokio::test]
async fn an_event_forwarded_again_re_enqueues_its_delivery_on_record_and_a_plain_duplicate_does_not()
 {
    let w = world(None, None).await;
    let now = Utc::now();
    let first = event(w.org, "alice");
    w.handle(&first, now).await;
    assert_eq!(w.dispatched().await.len(), 1, "the first match enqueues");

    w.handle(&first, now).await;
    assert!(
        w.dispatched().await.is_empty(),
        "a first receive of a duplicate leaves the enqueueing to the first copy"
    );

    let body: MatchTask = serde_json::from_str(&message(&first).body).unwrap();
    let again = QueueMessage {
        body: serde_json::to_string(&MatchTask {
            forwarded_again: true,
            ..body
        })
        .unwrap(),
        ..message(&first)
    };
    w.handle_message(again, now).await;
    let enqueued = w.dispatched().await;
    let deliveries = w.deliveries().await;
    assert_eq!(deliveries.len(), 1, "no second delivery");
    assert_eq!(
        enqueued.iter().map(|t| t.delivery_id).collect::<Vec<_>>(),
        vec![deliveries[0].id],
        "forwarded again: the delivery on record is enqueued once more"
    );
}

#[tokio::test]
async fn a_new_window_resets_the_cap() {
    let cap = FrequencyCap {
        per_user: 1,
        window_hours: 1,
    };
    let w = world(Some(cap), None).await;
    let now: DateTime<Utc> = "2026-05-01T10:30:00Z".parse().unwrap();
    w.handle(&event(w.org, "alice"), now).await;
    w.handle(&event(w.org, "alice"), now + chrono::Duration::minutes(20))
        .await;
    w.handle(&event(w.org, "alice"), now + chrono::Duration::minutes(40))
        .await;
    let mut statuses: Vec<_> = w
        .deliveries()
        .await
        .iter()
        .map(|d| d.status.as_str())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec!["queued", "queued", "suppressed"]);
}

#[tokio::test]
async fn deliveries_inside_quiet_hours_are_deferred_to_the_window_end() {
    let quiet = QuietHours::parse("America/New_York", None).unwrap();
    let w = world(None, Some(quiet)).await;
    // 23:00 EDT on 31 October 2026; the night clocks fall back: 08:00 EST is 13:00 UTC.
    let now: DateTime<Utc> = "2026-11-01T03:00:00Z".parse().unwrap();
    w.handle(&event(w.org, "alice"), now).await;
    let d = &w.deliveries().await[0];
    assert_eq!(d.status, DeliveryStatus::Deferred);
    assert_eq!(
        d.reason.as_deref(),
        Some("quiet hours until 2026-11-01T13:00:00Z")
    );
    // Not dispatchable now: it waits in the queue with the maximum delay and `notBefore`.
    assert!(w.dispatched().await.is_empty());
}

fn alert_event(org: OrgId, action: herald_core::domain::alert::AlertAction) -> Event {
    use herald_core::domain::alert::{AlertSignal, DedupKey};
    let mut e = event(org, "alice");
    e.alert = Some(AlertSignal {
        dedup_key: Some(DedupKey::parse("digest:alice").unwrap()),
        action,
        firing_since: None,
    });
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn matchers_racing_on_duplicates_of_one_alert_create_one_delivery_and_one_follow_up() {
    use herald_core::domain::alert::AlertAction;
    use herald_core::domain::delivery::Trigger;
    let w = Arc::new(world(None, None).await);
    let now = Utc::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let w = Arc::clone(&w);
        tasks.spawn(async move {
            // Each call is a matcher of its own over the shared store, as Lambda runs them.
            w.handle(&alert_event(w.org, AlertAction::Trigger), now)
                .await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    let all = w.deliveries().await;
    assert_eq!(all.len(), 1, "one delivery for thirty duplicates: {all:#?}");
    assert_eq!(all[0].status, DeliveryStatus::Queued);
    assert_eq!(w.dispatched().await.len(), 1, "sent once");

    // Two resolves at once: one follow-up.
    let (first, second) = (
        alert_event(w.org, AlertAction::Resolve),
        alert_event(w.org, AlertAction::Resolve),
    );
    tokio::join!(w.handle(&first, now), w.handle(&second, now));
    let all = w.deliveries().await;
    let follow_ups: Vec<_> = all
        .iter()
        .filter(|d| d.trigger == Trigger::Resolve)
        .collect();
    assert_eq!(follow_ups.len(), 1, "{all:#?}");
    let tasks = w.dispatched().await;
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].event.is_resolve());
}

/// Explain (`herald_core::rules::explain` and `delivery::plan`) says, for 20 hand-written
/// events, exactly what the matcher then records: no delivery when the rule does not match;
/// `queued` for would-send, `deferred` for would-defer, `suppressed` when the cap is reached,
/// `failed` without a recipient — the cap counter read (never added to) before each event.
#[tokio::test]
async fn explain_says_what_routing_then_does_for_each_event() {
    use herald_core::delivery::caps;
    use herald_core::delivery::plan::{self, Facts, Outcome};
    use herald_core::rules::explain::explain;
    use herald_shared::pipeline::delivery_id;
    use herald_shared::store::keys;

    let cap = FrequencyCap {
        per_user: 2,
        window_hours: 24,
    };
    let quiet = QuietHours::parse("Europe/Paris", None).unwrap();
    let w = world(Some(cap), Some(quiet)).await;
    let rule = Rules::new(w.store.as_ref())
        .get(&w.org, &RuleKey::parse("digest").unwrap())
        .await
        .unwrap()
        .unwrap();
    let channel = Channels::new(w.store.as_ref())
        .get(&w.org, &w.channel)
        .await
        .unwrap()
        .unwrap();
    let noon: DateTime<Utc> = "2026-06-01T10:00:00Z".parse().unwrap();
    let night: DateTime<Utc> = "2026-06-01T23:30:00Z".parse().unwrap();
    // (type, recipient, instant)
    let cases: [(&str, Option<&str>, DateTime<Utc>); 20] = [
        ("digest", Some("alice"), noon),
        ("digest", Some("bob"), night),
        ("other", Some("alice"), noon),
        ("digest", Some("alice"), night),
        ("digest", Some("alice"), noon),
        ("digest", None, noon),
        ("digest", Some("bob"), noon),
        ("other", None, night),
        ("digest", Some("bob"), night),
        ("digest", Some("carol"), night),
        ("digest.weekly", Some("carol"), noon),
        ("digest", Some("carol"), noon),
        ("digest", Some("carol"), noon),
        ("digest", None, night),
        ("Digest", Some("dave"), noon),
        ("digest", Some("dave"), night),
        ("digest", Some("dave"), noon),
        ("other", Some("dave"), noon),
        ("digest", Some("erin"), noon),
        ("digest", Some("dave"), night),
    ];
    let mut seen = std::collections::BTreeMap::new();
    for (i, (event_type, user, at)) in cases.into_iter().enumerate() {
        let mut e = event(w.org, user.unwrap_or("x"));
        e.event_type = EventType::parse(event_type).unwrap();
        if user.is_none() {
            e.recipients.clear();
        }
        e.received_at = at;
        e.occurred_at = at;

        let trace = explain(&rule, &e);
        let mut expected = Vec::new();
        if trace.matched {
            for r in plan::recipients(&e, &rule, &channel) {
                let used = match &r {
                    Some(r) => {
                        let key = keys::cap_counter(
                            w.org,
                            w.channel,
                            r.user_id.as_str(),
                            cap,
                            &caps::window(cap, at),
                        );
                        w.store
                            .get(&key)
                            .await
                            .unwrap()
                            .and_then(|item| item.nums.get(keys::CAP_COUNT_ATTR).copied())
                            .unwrap_or(0)
                    }
                    None => 0,
                };
                let decision = plan::decide(
                    &rule,
                    &channel,
                    Facts {
                        recipient: r.as_ref(),
                        profile: None,
                        cap_used: u32::try_from(used).unwrap(),
                    },
                    at,
                );
                expected.push((r.map(|r| r.user_id), decision.outcome));
            }
        }

        w.handle(&e, at).await;

        let mut recorded = Vec::new();
        for (user, outcome) in &expected {
            let id = delivery_id(&e, &rule.key, w.channel, user.as_ref());
            let d = deliveries::get(w.store.as_ref(), w.org, id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("case {i}: explain said {outcome:?}, routing made none"))
                .delivery;
            let as_explained = match d.status {
                DeliveryStatus::Queued => Outcome::WouldSend,
                DeliveryStatus::Deferred => Outcome::WouldDefer,
                DeliveryStatus::Suppressed => Outcome::WouldSuppress,
                DeliveryStatus::Failed => Outcome::WouldFail,
                other => panic!("case {i}: the matcher recorded {other:?}"),
            };
            recorded.push((user.clone(), as_explained));
        }
        assert_eq!(
            recorded, expected,
            "case {i}: {event_type} {user:?} at {at}"
        );
        if !trace.matched {
            let none = delivery_id(
                &e,
                &rule.key,
                w.channel,
                user.map(|u| UserId::parse(u).unwrap()).as_ref(),
            );
            assert!(
                deliveries::get(w.store.as_ref(), w.org, none)
                    .await
                    .unwrap()
                    .is_none(),
                "case {i}: explain said no match, routing made a delivery"
            );
        }
        for (_, outcome) in expected {
            *seen.entry(format!("{outcome:?}")).or_insert(0) += 1;
        }
    }
    // The cases cover every outcome routing can record at match time.
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        ["WouldDefer", "WouldFail", "WouldSend", "WouldSuppress"],
        "{seen:?}"
    );
}

/// Grouping through the matcher with an injected clock: alerts join one group, its tick is a
/// delayed message on the match queue, a tick handled twice sends once, a superseded tick is
/// stale, and an update waits for the group interval.
mod grouping {
    use super::*;
    use herald_core::domain::alert::{AlertAction, AlertSignal, Alerting, DedupKey};
    use herald_core::domain::delivery::Trigger;

    struct Grouped {
        store: Arc<dyn Store>,
        dispatch: Arc<dyn Queue>,
        matches: Arc<dyn Queue>,
        queues: EmbeddedQueues,
        rules: Arc<RulesCache>,
        org: OrgId,
    }

    async fn grouped() -> Grouped {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("store"));
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let dispatch: Arc<dyn Queue> = Arc::new(queues.queue("dispatch", QueueSettings::default()));
        let matches: Arc<dyn Queue> = Arc::new(queues.queue("match", QueueSettings::default()));
        let org = OrgId::new();
        let now = Utc::now();
        let channel = herald_testing::channels::slack(org);
        Channels::new(store.as_ref())
            .create(&channel)
            .await
            .unwrap();
        let alerting: Alerting = serde_json::from_value(serde_json::json!({
            "groupBy": ["type"], "groupWaitSeconds": 30, "groupIntervalSeconds": 300,
            "repeatIntervalSeconds": 3600
        }))
        .unwrap();
        let rule = Rule {
            // No `match`: the rule matches events of its key's type.
            key: RuleKey::parse("disk.full").unwrap(),
            org_id: org,
            matcher: None,
            channel_ids: vec![channel.id],
            frequency_cap: None,
            quiet_hours: None,
            alerting: Some(alerting.check().unwrap()),
            recipients: vec![],
            template: None,
            critical: false,
            digest: None,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        Rules::new(store.as_ref()).create(&rule).await.unwrap();
        Grouped {
            store,
            dispatch,
            matches,
            queues,
            // Read afresh at every batch: a silence counts from the next event or tick.
            rules: Arc::new(RulesCache::new(Duration::ZERO)),
            org,
        }
    }

    fn alert(org: OrgId, host: &str) -> Event {
        let mut e = event(org, "u");
        e.event_type = EventType::parse("disk.full").unwrap();
        e.module = Module::parse("ops").unwrap();
        e.recipients.clear();
        e.properties
            .insert("host".into(), serde_json::Value::String(host.into()));
        e.alert = Some(AlertSignal {
            dedup_key: Some(DedupKey::parse(&format!("disk.full:{host}")).unwrap()),
            action: AlertAction::Trigger,
            firing_since: None,
        });
        e
    }

    impl Grouped {
        async fn handle(&self, messages: Vec<QueueMessage>, now: DateTime<Utc>) {
            let outcome = Matcher {
                store: self.store.as_ref(),
                dispatch_queue: self.dispatch.as_ref(),
                match_queue: Some(self.matches.as_ref()),
                rules: &self.rules,
                retention: chrono::Duration::days(3650),
            }
            .handle(messages, now)
            .await;
            assert!(outcome.failed.is_empty(), "matching failed");
        }

        /// The tick messages waiting on the match queue, oldest first.
        async fn ticks(&self) -> Vec<QueueMessage> {
            self.queues
                .peek("match", 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|p| p.body.contains("groupTick"))
                .map(|p| QueueMessage {
                    id: p.message_id,
                    body: p.body,
                    receive_count: 1,
                })
                .collect()
        }

        async fn group_deliveries(&self) -> Vec<herald_core::domain::delivery::Delivery> {
            deliveries::list(
                self.store.as_ref(),
                self.org,
                &LogFilter::default(),
                100,
                None,
                Utc::now() + chrono::Duration::minutes(1),
            )
            .await
            .unwrap()
            .items
            .into_iter()
            .collect()
        }
    }

    #[tokio::test]
    async fn a_group_is_sent_once_after_its_wait_and_updated_after_its_interval() {
        let g = grouped().await;
        let t0: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let batch: Vec<QueueMessage> = (0..5)
            .map(|i| message(&alert(g.org, &format!("web-{i}"))))
            .collect();
        g.handle(batch, at(0)).await;
        // Five alerts, one group, one tick; no per-alert Slack delivery.
        let ticks = g.ticks().await;
        assert_eq!(ticks.len(), 1, "one tick for the group");
        assert!(g.group_deliveries().await.is_empty());

        // Early (a clock that has not reached the tick): nothing sent, the tick waits again.
        g.handle(vec![ticks[0].clone()], at(10)).await;
        assert!(g.group_deliveries().await.is_empty());

        // Due, and handled twice (a redelivered twin): one delivery.
        g.handle(vec![ticks[0].clone()], at(30)).await;
        let mut twin = ticks[0].clone();
        twin.receive_count = 2;
        g.handle(vec![twin], at(31)).await;
        let sent = g.group_deliveries().await;
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].trigger, Trigger::Group);

        // A new alert at 40: the repeat tick (at 3630) is superseded by one at 330.
        let before = g.ticks().await.len();
        g.handle(vec![message(&alert(g.org, "web-9"))], at(40))
            .await;
        let ticks = g.ticks().await;
        assert!(ticks.len() > before, "a new tick was scheduled");
        // Before the interval every tick is stale (the first one's copies), or early (the
        // update's and the repeat's, which wait again): nothing is sent.
        for t in &ticks {
            g.handle(vec![t.clone()], at(100)).await;
        }
        assert_eq!(
            g.group_deliveries().await.len(),
            1,
            "no update before the interval"
        );
        // At the interval: exactly one update, however many copies of each tick arrive.
        for _ in 0..2 {
            for t in g.ticks().await {
                g.handle(vec![t], at(330)).await;
            }
        }
        let sent = g.group_deliveries().await;
        assert_eq!(sent.len(), 2, "one update: {sent:?}");
        assert!(sent.iter().all(|d| d.trigger == Trigger::Group));
    }

    /// A silence of module `ops` from `from` to `until`.
    async fn silence(g: &Grouped, from: DateTime<Utc>, until: DateTime<Utc>) -> String {
        use herald_core::domain::silence::{NewSilence, Silence};
        let silence = Silence::new(
            g.org,
            NewSilence {
                matcher: Some(serde_json::json!({"field": "module", "op": "eq", "value": "ops"})),
                rule_keys: vec![],
                channel_ids: vec![],
                starts_at: Some(from),
                ends_at: Some(until),
                comment: Some("maintenance".into()),
                created_by: Some("alice".into()),
            },
            from,
        )
        .unwrap();
        herald_shared::repo::silences::create(g.store.as_ref(), &silence, from)
            .await
            .unwrap();
        silence.id.to_string()
    }

    /// Handles every tick on the match queue at `now`.
    async fn tick_all(g: &Grouped, now: DateTime<Utc>) {
        for t in g.ticks().await {
            g.handle(vec![t], now).await;
        }
    }

    #[tokio::test]
    async fn a_silenced_group_sends_nothing_records_it_and_is_sent_once_the_silence_ends() {
        let g = grouped().await;
        // Real time: the rules cache loads the silences that have not ended by the clock.
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let id = silence(&g, t0, at(60)).await;
        let events: Vec<Event> = (0..5).map(|i| alert(g.org, &format!("web-{i}"))).collect();
        g.handle(events.iter().map(message).collect(), at(0)).await;
        // Each event records that a silence held its alert back from the group message.
        let record = herald_shared::repo::events::get(g.store.as_ref(), g.org, &events[0].id)
            .await
            .unwrap()
            .unwrap();
        let outcome = &record.routes[0].outcomes[0];
        assert_eq!(
            outcome.outcome,
            herald_shared::repo::events::AlertOutcomeKind::Silenced,
            "{record:?}"
        );
        assert_eq!(outcome.silence_id.map(|s| s.to_string()), Some(id.clone()));

        // After the wait, every alert is silenced: nothing sent, one suppressed group delivery
        // naming the silence, however many times the group is looked at.
        tick_all(&g, at(30)).await;
        tick_all(&g, at(31)).await;
        let recorded = g.group_deliveries().await;
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0].status, DeliveryStatus::Suppressed);
        assert_eq!(recorded[0].trigger, Trigger::Group);
        assert_eq!(recorded[0].reason, Some(format!("silenced by {id}")));
        assert!(
            g.dispatch
                .receive(10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty(),
            "nothing to send"
        );

        // The silence ends: the group's message goes out at the tick scheduled for its end.
        tick_all(&g, at(61)).await;
        let sent: Vec<_> = g
            .group_deliveries()
            .await
            .into_iter()
            .filter(|d| d.status == DeliveryStatus::Queued)
            .collect();
        assert_eq!(sent.len(), 1, "sent once the silence ended");
        let tasks = g.dispatch.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(tasks.len(), 1);
        let task: DispatchTask = serde_json::from_str(&tasks[0].body).unwrap();
        assert_eq!(task.group.expect("a group message").counts.firing, 5);
    }

    #[tokio::test]
    async fn a_group_notified_before_a_silence_still_sends_its_resolved_message() {
        let g = grouped().await;
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let hosts = ["web-1", "web-2"];
        g.handle(
            hosts.iter().map(|h| message(&alert(g.org, h))).collect(),
            at(0),
        )
        .await;
        tick_all(&g, at(30)).await;
        assert_eq!(
            g.dispatch.receive(10, Duration::ZERO).await.unwrap().len(),
            1
        );

        // Silenced from now on; both alerts resolve: the all-clear still goes out.
        silence(&g, at(35), at(3600)).await;
        let resolves = hosts
            .iter()
            .map(|h| {
                let mut e = alert(g.org, h);
                e.alert.as_mut().unwrap().action = AlertAction::Resolve;
                message(&e)
            })
            .collect();
        g.handle(resolves, at(40)).await;
        tick_all(&g, at(330)).await;
        let tasks = g.dispatch.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(tasks.len(), 1, "the resolved message");
        let task: DispatchTask = serde_json::from_str(&tasks[0].body).unwrap();
        let group = task.group.expect("a group message");
        assert_eq!((group.counts.firing, group.counts.resolved), (0, 2));
    }
}
