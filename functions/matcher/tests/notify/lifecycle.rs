//! The alert lifecycle through the real matcher handler (its batches, conditional writes,
//! silences, follow-ups, redelivered messages and auto-resolve checks):
//!
//! - a property test over arbitrary sequences of triggers (alone or several copies in one
//!   batch), acknowledges, resolves, auto-resolves, redelivered batches, silences and their
//!   ends, on three keys, two rules and three channels (Slack, a second Slack, PagerDuty), on the
//!   embedded store: at most one trigger delivery per (instance, rule, channel), never a
//!   follow-up (resolve or acknowledge) without that trigger delivery before it, at most one of
//!   each per (instance, rule, channel) — and, so that "send nothing" cannot pass, every channel
//!   not silenced has its trigger once a trigger leaves the alert firing;
//! - a fixed sequence covering deduplication and silences on the embedded store and on
//!   DynamoDB (the emulator at `HERALD_TEST_AWS_ENDPOINT`), with the outcomes the event records
//!   and the stats counters show.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::domain::alert::{AlertAction, AlertSignal, AlertState, Alerting, DedupKey};
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelKind, ChannelName, ChannelPolicy,
};
use herald_core::domain::delivery::{Delivery, Trigger};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::rule::Rule;
use herald_core::domain::silence::{NewSilence, Silence};
use herald_core::domain::{
    AlertInstanceId, ChannelId, DeliveryId, EventId, OrgId, RuleKey, SilenceId,
};
use herald_matcher::{Matcher, RulesCache, silenced_by};
use herald_shared::pipeline::{MatchTask, QueueMessage};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::deliveries::{self, LogFilter};
use herald_shared::repo::{Channels, Rules, alerts, events, silences, stats};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use proptest::prelude::*;

const HOSTS: [&str; 3] = ["web-1", "web-2", "db-1"];
/// Rule `b`'s `autoResolveSeconds`.
const AUTO_RESOLVE: i64 = 5;

/// One thing that happens to the alerts.
#[derive(Debug, Clone)]
enum Step {
    /// `copies` identical triggers of a host in one batch (matched concurrently); the key
    /// from the event (`explicit`) or from the rules' template.
    Trigger {
        host: usize,
        copies: usize,
        explicit: bool,
    },
    Acknowledge {
        host: usize,
    },
    Resolve {
        host: usize,
    },
    /// The clock moves past `autoResolveSeconds` and the host's pending checks come due.
    AutoResolve {
        host: usize,
    },
    /// The previous batch received again (a crash before it was acknowledged).
    Redeliver,
    Silence {
        host: usize,
    },
    EndSilence {
        host: usize,
    },
    Wait {
        seconds: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let host = 0..HOSTS.len();
    prop_oneof![
        4 => (host.clone(), 1..4usize, any::<bool>())
            .prop_map(|(host, copies, explicit)| Step::Trigger { host, copies, explicit }),
        1 => host.clone().prop_map(|host| Step::Acknowledge { host }),
        2 => host.clone().prop_map(|host| Step::Resolve { host }),
        1 => host.clone().prop_map(|host| Step::AutoResolve { host }),
        1 => Just(Step::Redeliver),
        1 => host.clone().prop_map(|host| Step::Silence { host }),
        1 => host.clone().prop_map(|host| Step::EndSilence { host }),
        1 => (1..8i64).prop_map(|seconds| Step::Wait { seconds }),
    ]
}

/// An org with two alerting rules on `disk.full` (keyed per host): `a` to Slack and
/// PagerDuty, `b` to both Slack channels with auto-resolve.
struct World {
    store: Arc<dyn Store>,
    queues: EmbeddedQueues,
    dispatch: Arc<dyn Queue>,
    matches: Arc<dyn Queue>,
    rules: Arc<RulesCache>,
    org: OrgId,
    pagerduty: ChannelId,
    now: DateTime<Utc>,
    /// The host of each event handled.
    hosts: BTreeMap<String, usize>,
    /// The last batch handled.
    last: Vec<QueueMessage>,
    silences: BTreeMap<usize, SilenceId>,
    /// Every delivery seen, with the instance it was made for and the step that made it.
    seen: BTreeMap<DeliveryId, (Delivery, AlertInstanceId, usize)>,
    steps: usize,
}

async fn channel(store: &dyn Store, org: OrgId, name: &str, kind: ChannelKind) -> ChannelId {
    let config = match kind {
        ChannelKind::Slack => {
            serde_json::json!({"webhookUrl": "https://hooks.slack.com/services/T/B/x"})
        }
        _ => {
            serde_json::json!({"format": "pagerduty", "routingKey": "R0UT1NGKEY0123456789abcdefABCDEF"})
        }
    };
    let policy = ChannelPolicy {
        allowed_private_targets: Default::default(),
        default_outbox: false,
        check_private_key: |_| Ok(()),
    };
    let config = ChannelConfig::parse(kind, Some(config), None, &policy).unwrap();
    let channel = Channel {
        name: ChannelName::parse(name).unwrap(),
        ..herald_testing::channels::channel(org, config)
    };
    Channels::new(store).create(&channel).await.unwrap();
    channel.id
}

async fn rule(
    store: &dyn Store,
    org: OrgId,
    key: &str,
    channels: Vec<ChannelId>,
    alerting: serde_json::Value,
) {
    let now = Utc::now();
    let alerting: Alerting = serde_json::from_value(alerting).unwrap();
    let matcher = Rule::parse_matcher(Some(
        serde_json::json!({"field": "type", "op": "eq", "value": "disk.full"}),
    ))
    .unwrap()
    .unwrap();
    let rule = Rule {
        key: RuleKey::parse(key).unwrap(),
        org_id: org,
        matcher: Some(matcher),
        channel_ids: channels,
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
    Rules::new(store).create(&rule).await.unwrap();
}

impl World {
    async fn new(store: Arc<dyn Store>) -> Self {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let dispatch: Arc<dyn Queue> = Arc::new(queues.queue("dispatch", QueueSettings::default()));
        let matches: Arc<dyn Queue> = Arc::new(queues.queue("match", QueueSettings::default()));
        let org = OrgId::new();
        let s = store.as_ref();
        let slack = channel(s, org, "ops", ChannelKind::Slack).await;
        let chat = channel(s, org, "ops-2", ChannelKind::Slack).await;
        let pagerduty = channel(s, org, "pd", ChannelKind::Webhook).await;
        let template = "{{type}}:{{properties.host}}";
        rule(
            s,
            org,
            "a",
            vec![slack, pagerduty],
            serde_json::json!({"dedupKey": template}),
        )
        .await;
        rule(
            s,
            org,
            "b",
            vec![slack, chat],
            serde_json::json!({"dedupKey": template, "autoResolveSeconds": AUTO_RESOLVE}),
        )
        .await;
        Self {
            store,
            queues,
            dispatch,
            matches,
            // Read afresh at every batch: a silence counts from the next event.
            rules: Arc::new(RulesCache::new(Duration::ZERO)),
            org,
            pagerduty,
            // Real time: the rules cache loads the silences that have not ended by the clock.
            now: Utc::now(),
            hosts: BTreeMap::new(),
            last: Vec::new(),
            silences: BTreeMap::new(),
            seen: BTreeMap::new(),
            steps: 0,
        }
    }

    fn event(&mut self, host: usize, action: AlertAction, explicit: bool) -> Event {
        let mut e = herald_testing::events::event(
            "ops",
            "disk.full",
            serde_json::json!({"host": HOSTS[host]}),
        );
        e.id = EventId::generate();
        e.org_id = self.org;
        e.event_type = EventType::parse("disk.full").unwrap();
        e.module = Module::parse("ops").unwrap();
        e.received_at = self.now;
        e.occurred_at = self.now;
        e.alert = Some(AlertSignal {
            dedup_key: explicit.then(|| key(host)),
            action,
            firing_since: None,
        });
        self.hosts.insert(e.id.to_string(), host);
        e
    }

    async fn handle(&mut self, messages: Vec<QueueMessage>) {
        let outcome = Matcher {
            store: self.store.as_ref(),
            dispatch_queue: self.dispatch.as_ref(),
            match_queue: Some(self.matches.as_ref()),
            rules: &self.rules,
            retention: chrono::Duration::days(3650),
        }
        .handle(messages.clone(), self.now)
        .await;
        assert!(outcome.failed.is_empty(), "matching failed");
        self.last = messages;
    }

    async fn run(&mut self, step: &Step) {
        self.steps += 1;
        self.now += chrono::Duration::seconds(1);
        match *step {
            Step::Trigger {
                host,
                copies,
                explicit,
            } => {
                let messages = (0..copies)
                    .map(|_| message(&self.event(host, AlertAction::Trigger, explicit), 1))
                    .collect();
                self.handle(messages).await;
            }
            Step::Acknowledge { host } => {
                let m = message(&self.event(host, AlertAction::Acknowledge, true), 1);
                self.handle(vec![m]).await;
            }
            Step::Resolve { host } => {
                let m = message(&self.event(host, AlertAction::Resolve, true), 1);
                self.handle(vec![m]).await;
            }
            Step::AutoResolve { host } => {
                self.now += chrono::Duration::seconds(AUTO_RESOLVE + 1);
                let due: Vec<QueueMessage> = self
                    .queues
                    .peek("match", 10_000)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|p| {
                        let task: MatchTask = serde_json::from_str(&p.body).ok()?;
                        let ours = task.auto_resolve.is_some()
                            && task.event.properties.get("host")
                                == Some(&serde_json::Value::from(HOSTS[host]));
                        ours.then_some(QueueMessage {
                            id: p.message_id,
                            body: p.body,
                            receive_count: 1,
                        })
                    })
                    .collect();
                for m in &due {
                    let task: MatchTask = serde_json::from_str(&m.body).unwrap();
                    self.hosts.insert(task.event.id.to_string(), host);
                }
                if !due.is_empty() {
                    self.handle(due).await;
                }
            }
            Step::Redeliver => {
                let again = self
                    .last
                    .iter()
                    .cloned()
                    .map(|mut m| {
                        m.receive_count += 1;
                        m
                    })
                    .collect::<Vec<_>>();
                if !again.is_empty() {
                    self.handle(again).await;
                }
            }
            Step::Silence { host } => {
                if self.silences.contains_key(&host) {
                    return;
                }
                let silence = Silence::new(
                    self.org,
                    NewSilence {
                        matcher: Some(serde_json::json!({"field": "properties.host", "op": "eq", "value": HOSTS[host]})),
                        rule_keys: vec![],
                        channel_ids: vec![],
                        starts_at: Some(self.now),
                        ends_at: Some(self.now + chrono::Duration::days(1)),
                        comment: Some("maintenance".into()),
                        created_by: Some("proptest".into()),
                    },
                    self.now,
                )
                .unwrap();
                silences::create(self.store.as_ref(), &silence, self.now)
                    .await
                    .unwrap();
                self.silences.insert(host, silence.id);
            }
            Step::EndSilence { host } => {
                if let Some(id) = self.silences.remove(&host) {
                    let now = self.now;
                    silences::update(self.store.as_ref(), self.org, id, now, |s| {
                        s.expire(now);
                        Ok(())
                    })
                    .await
                    .unwrap();
                }
            }
            Step::Wait { seconds } => self.now += chrono::Duration::seconds(seconds),
        }
        self.attribute().await;
    }

    /// Gives every new delivery the instance it was made for: the current instance of its
    /// event's host (a step touches one host).
    async fn attribute(&mut self) {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = deliveries::list(
                self.store.as_ref(),
                self.org,
                &LogFilter::default(),
                200,
                cursor,
                self.now + chrono::Duration::days(1),
            )
            .await
            .unwrap();
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for d in all {
            if self.seen.contains_key(&d.id) {
                continue;
            }
            let host = self.hosts[d.event_id.as_str()];
            let alert = alerts::get(self.store.as_ref(), self.org, &key(host))
                .await
                .unwrap()
                .expect("a delivery of an alert that exists");
            self.seen
                .insert(d.id, (d, alert.alert.instance_id, self.steps));
        }
    }

    /// The properties, checked over every delivery made so far.
    fn check(&self) {
        type Slot = (AlertInstanceId, RuleKey, ChannelId);
        let slot = |d: &Delivery, i: AlertInstanceId| -> Slot {
            (i, d.rule_key.clone().expect("a rule"), d.channel_id)
        };
        let mut triggers: BTreeMap<Slot, (usize, usize)> = BTreeMap::new();
        for (d, instance, step) in self.seen.values() {
            if d.trigger == Trigger::Event && silenced_by(d).is_none() {
                let e = triggers.entry(slot(d, *instance)).or_insert((0, *step));
                e.0 += 1;
                e.1 = e.1.min(*step);
            }
        }
        for (slot, (n, _)) in &triggers {
            assert_eq!(
                *n, 1,
                "one trigger delivery per (instance, rule, channel): {slot:?}"
            );
        }
        // (slot, is a resolve) → follow-ups.
        let mut follow_ups: BTreeMap<(Slot, bool), usize> = BTreeMap::new();
        for (d, instance, step) in self.seen.values() {
            if !matches!(d.trigger, Trigger::Resolve | Trigger::Acknowledge) {
                continue;
            }
            let s = slot(d, *instance);
            let Some((_, first)) = triggers.get(&s) else {
                panic!(
                    "a {:?} follow-up without a trigger delivery: {s:?}",
                    d.trigger
                );
            };
            assert!(
                first <= step,
                "the follow-up came before the trigger: {s:?}"
            );
            if d.trigger == Trigger::Acknowledge {
                assert_eq!(
                    d.channel_id, self.pagerduty,
                    "chat channels get no acknowledge"
                );
            }
            *follow_ups
                .entry((s, d.trigger == Trigger::Resolve))
                .or_default() += 1;
        }
        for (slot, n) in &follow_ups {
            assert_eq!(*n, 1, "one follow-up of each kind: {slot:?}");
        }
    }

    /// After a trigger: a firing alert whose host is not silenced has, on every channel of
    /// every rule, its trigger delivery.
    async fn check_notified(&self, host: usize) {
        let Some(alert) = alerts::get(self.store.as_ref(), self.org, &key(host))
            .await
            .unwrap()
        else {
            panic!("a trigger opens an alert");
        };
        if alert.alert.state != AlertState::Firing || self.silences.contains_key(&host) {
            return;
        }
        let have: BTreeSet<(RuleKey, ChannelId)> = self
            .seen
            .values()
            .filter(|(d, i, _)| {
                *i == alert.alert.instance_id
                    && d.trigger == Trigger::Event
                    && silenced_by(d).is_none()
            })
            .map(|(d, ..)| (d.rule_key.clone().unwrap(), d.channel_id))
            .collect();
        assert_eq!(
            have.len(),
            4,
            "every (rule, channel) notified once firing: {have:?}"
        );
    }
}

fn key(host: usize) -> DedupKey {
    DedupKey::parse(&format!("disk.full:{}", HOSTS[host])).unwrap()
}

fn message(event: &Event, receive_count: u32) -> QueueMessage {
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
        receive_count,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_sequence_of_actions_notifies_each_instance_once_and_resolves_only_what_was_notified(
        steps in prop::collection::vec(step(), 1..30)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("store"));
            let mut world = World::new(store).await;
            for step in &steps {
                world.run(step).await;
                world.check();
                if let Step::Trigger { host, .. } = step {
                    world.check_notified(*host).await;
                }
            }
        });
    }
}

/// Duplicates, a silence and resolves, with what the event records and the stats say.
async fn dedup_and_silences(store: Arc<dyn Store>) {
    let mut w = World::new(store).await;
    let (web1, web2) = (0, 1);
    w.run(&Step::Trigger {
        host: web1,
        copies: 1,
        explicit: true,
    })
    .await;
    // Three duplicates in one batch and one more alone: counted, not sent.
    w.run(&Step::Trigger {
        host: web1,
        copies: 3,
        explicit: false,
    })
    .await;
    w.run(&Step::Trigger {
        host: web1,
        copies: 1,
        explicit: true,
    })
    .await;
    w.check();
    w.check_notified(web1).await;
    let alert = alerts::get(w.store.as_ref(), w.org, &key(web1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alert.event_count, 5);
    let day = stats::read_day(w.store.as_ref(), w.org, w.now.date_naive())
        .await
        .unwrap();
    assert_eq!(
        day["ALL"].get("deduplicated"),
        Some(&16),
        "4 duplicates × 4 (rule, channel)"
    );
    // Received again, a batch is not counted twice.
    w.run(&Step::Redeliver).await;
    let day = stats::read_day(w.store.as_ref(), w.org, w.now.date_naive())
        .await
        .unwrap();
    assert_eq!(day["ALL"].get("deduplicated"), Some(&16));
    assert_eq!(day["RULE#a"].get("deduplicated"), Some(&8), "{day:?}");
    let triggers = |w: &World, host: usize| {
        w.seen
            .values()
            .filter(|(d, ..)| d.trigger == Trigger::Event && w.hosts[d.event_id.as_str()] == host)
            .count()
    };
    assert_eq!(triggers(&w, web1), 4, "two rules × two channels, once");

    // What the last duplicate's record says: deduplicated into the instance, per channel.
    let last = w.last[0].id.clone();
    let record = events::get(w.store.as_ref(), w.org, &EventId::parse(&last).unwrap())
        .await
        .unwrap()
        .expect("the record");
    let outcomes: Vec<_> = record
        .routes
        .iter()
        .flat_map(|r| r.outcomes.iter())
        .collect();
    assert_eq!(outcomes.len(), 4, "{record:#?}");
    assert!(
        outcomes
            .iter()
            .all(|o| o.outcome == events::AlertOutcomeKind::Deduplicated
                && o.instance_id == Some(alert.alert.instance_id)
                && o.delivery_id.is_some()),
        "{outcomes:#?}"
    );
    assert!(
        record.routes.iter().all(|r| r.deliveries.is_empty()),
        "a duplicate makes no delivery"
    );

    // web-2 fires while silenced: recorded suppressed, once per (rule, channel), and its
    // duplicates are silenced, not deduplicated.
    w.run(&Step::Silence { host: web2 }).await;
    w.run(&Step::Trigger {
        host: web2,
        copies: 2,
        explicit: true,
    })
    .await;
    w.run(&Step::Trigger {
        host: web2,
        copies: 1,
        explicit: false,
    })
    .await;
    w.check();
    let silenced: Vec<_> = w
        .seen
        .values()
        .filter(|(d, ..)| silenced_by(d).is_some())
        .collect();
    assert_eq!(silenced.len(), 4, "{silenced:#?}");
    let record = events::get(
        w.store.as_ref(),
        w.org,
        &EventId::parse(&w.last[0].id).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let outcomes: Vec<_> = record
        .routes
        .iter()
        .flat_map(|r| r.outcomes.iter())
        .collect();
    assert!(
        !outcomes.is_empty()
            && outcomes
                .iter()
                .all(|o| o.outcome == events::AlertOutcomeKind::Silenced
                    && o.silence_id == Some(w.silences[&web2])),
        "{outcomes:#?}"
    );

    // Resolves: web-1's follow-ups (its triggers went out), none for web-2.
    w.run(&Step::Resolve { host: web1 }).await;
    w.run(&Step::Resolve { host: web2 }).await;
    w.check();
    let resolves = w
        .seen
        .values()
        .filter(|(d, ..)| d.trigger == Trigger::Resolve)
        .count();
    assert_eq!(resolves, 4, "one per channel the trigger reached");

    // The silence ends: the next trigger of web-2 (a new instance) is sent.
    w.run(&Step::EndSilence { host: web2 }).await;
    w.run(&Step::Trigger {
        host: web2,
        copies: 1,
        explicit: true,
    })
    .await;
    w.check();
    w.check_notified(web2).await;

    // The stats: web-2's 4 silenced trigger deliveries and its 2 silenced duplicates × 4.
    let day = stats::read_day(w.store.as_ref(), w.org, w.now.date_naive())
        .await
        .unwrap();
    let all = &day["ALL"];
    assert_eq!(all.get("deduplicated"), Some(&16), "{all:?}");
    assert_eq!(all.get("silenced"), Some(&12), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_silences_are_recorded_and_counted_on_the_embedded_store() {
    dedup_and_silences(Arc::new(Embedded::in_memory().expect("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_silences_are_recorded_and_counted_on_dynamodb() {
    use herald_shared::store::dynamodb::{DynamoStore, create_table};
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique("matcher-alerts");
    create_table(&client, &table)
        .await
        .expect("a table on the emulator");
    dedup_and_silences(Arc::new(DynamoStore::new(client, &table))).await;
}
