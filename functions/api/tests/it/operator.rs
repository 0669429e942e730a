//! Operator tools, as on-call uses them: one delivery with its attempts, one event and what each
//! rule did with it, resend (through the dispatch queue, refused where unsafe or where consent
//! would be bypassed, idempotent with a key), recover (checked, one per channel, idempotent;
//! its pages run in the dispatcher's tests), and rule explain (no writes). The pipeline's
//! records are written through the repositories exactly as the matcher and dispatcher write
//! them; the real pipeline runs in `functions/local/tests/it/operator.rs`.
//!
//! Resend and the event page also run over DynamoDB and SQS on the emulator (`over_dynamodb`),
//! the engines of the api Lambda.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use herald_core::domain::delivery::{
    Attempt, AttemptTrigger, Delivery, DeliveryStatus, ErrorClass, Trigger,
};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey, UserId};
use herald_shared::pipeline::{DispatchTask, delivery_id};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::events::{AlertOutcome, AlertOutcomeKind, RoutedDelivery, RuleRoute};
use herald_shared::repo::{deliveries, events};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use herald_testing::store::{Call, Watch, Watched};
use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

/// An org with a webhook channel and a rule `disk.full` to it, a dispatch queue, and helpers
/// to record what the pipeline records.
struct Ops {
    app: TestApp,
    queue: Arc<dyn Queue>,
    org: OrgId,
    channel: ChannelId,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn ttl() -> i64 {
    (now() + chrono::Duration::days(30)).timestamp()
}

async fn ops(store: Arc<dyn Store>) -> Ops {
    ops_over(store, embedded_queue()).await
}

fn embedded_queue() -> Arc<dyn Queue> {
    let queues = EmbeddedQueues::in_memory().expect("an in-memory queue");
    Arc::new(queues.queue("dispatch", QueueSettings::default()))
}

async fn ops_over(store: Arc<dyn Store>, queue: Arc<dyn Queue>) -> Ops {
    let app = TestApp::local_with_dispatch(store, Arc::clone(&queue)).await;
    let channel = app
        .channel(r#"{"kind":"webhook","name":"incidents","config":{"url":"http://127.0.0.1:9/hook","format":"generic"}}"#)
        .await;
    app.post(
        "/notifications/rules",
        &json!({"key": "disk.full", "channelIds": [channel]}).to_string(),
    )
    .await
    .expect(StatusCode::CREATED);
    Ops {
        org: app.org_id.parse().expect("an org id"),
        channel: channel.parse().expect("a channel id"),
        app,
        queue,
    }
}

impl Ops {
    fn event(&self, id: &str) -> Event {
        let at = now();
        Event {
            id: EventId::parse(id).expect("id"),
            org_id: self.org,
            event_type: EventType::parse("disk.full").expect("type"),
            module: Module::parse("ops").expect("module"),
            properties: json!({"host": "web-1", "severity": "warning"})
                .as_object()
                .cloned()
                .expect("object"),
            recipients: Vec::new(),
            occurred_at: at,
            received_at: at,
            alert: None,
        }
    }

    /// Records `event` as ingest does and its delivery to the webhook as the matcher and the
    /// dispatcher do, ending `status` after one attempt answered `code`.
    async fn delivered(&self, event: &Event, status: DeliveryStatus, code: u16) -> Delivery {
        let store = self.app.store.as_ref();
        events::record(store, event, ttl(), now())
            .await
            .expect("recorded");
        let rule = RuleKey::parse("disk.full").expect("key");
        let at = now();
        let failed = code >= 400;
        let delivery = Delivery {
            id: delivery_id(event, &rule, self.channel, None),
            org_id: self.org,
            event_id: event.id.clone(),
            event_type: event.event_type.to_string(),
            rule_key: Some(rule.clone()),
            channel_id: self.channel,
            channel_kind: herald_core::domain::channel::ChannelKind::Webhook,
            recipient: None,
            trigger: Trigger::Event,
            status,
            reason: failed.then(|| format!("{code}: receiver says no")),
            attempts: if status == DeliveryStatus::Suppressed {
                Vec::new()
            } else {
                vec![Attempt {
                    n: 1,
                    at,
                    status_code: Some(code),
                    error_class: failed.then_some(ErrorClass::ChannelGone),
                    error: failed.then(|| "receiver says no".to_owned()),
                    latency_ms: 12,
                    trigger: AttemptTrigger::Scheduled,
                    pruned_tokens: Vec::new(),
                }]
            },
            engagement: Vec::new(),
            next_attempt_at: (status == DeliveryStatus::Queued)
                .then(|| at + chrono::Duration::seconds(226)),
            cap_slot: None,
            recovered: None,
            event_ids: Vec::new(),
            event_count: None,
            created_at: at,
            updated_at: at,
        };
        deliveries::create(store, &delivery, ttl())
            .await
            .expect("created");
        events::mark_matched(
            store,
            event,
            vec![RuleRoute {
                rule_key: rule.to_string(),
                deliveries: vec![RoutedDelivery {
                    delivery_id: delivery.id,
                    channel_id: self.channel,
                    recipient: None,
                    status: if status == DeliveryStatus::Suppressed {
                        status
                    } else {
                        DeliveryStatus::Queued
                    },
                    reason: None,
                }],
                outcomes: vec![],
            }],
            1,
            ttl(),
            now(),
        )
        .await
        .expect("marked");
        delivery
    }

    /// Every dispatch task waiting in the queue (received and left invisible).
    async fn queued(&self) -> Vec<DispatchTask> {
        let got = self
            .queue
            .receive(10, Duration::from_millis(50))
            .await
            .expect("receive");
        got.iter()
            .map(|m| serde_json::from_str(&m.body).expect("a dispatch task"))
            .collect()
    }
}

async fn a_failed_delivery_is_read_then_resent_once_as_a_manual_attempt(
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
) {
    let ops = ops_over(store, queue).await;
    let event = ops.event("evt-resend");
    let d = ops.delivered(&event, DeliveryStatus::Failed, 404).await;

    let got = ops
        .app
        .get(&format!("/notifications/logs/{}", d.id))
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.json["status"], "failed");
    assert_eq!(got.json["attempts"][0]["statusCode"], 404);
    assert_eq!(got.json["attempts"][0]["error"], "receiver says no");
    assert_eq!(got.json["attempts"][0]["trigger"], "scheduled");

    let a = ops
        .app
        .post(&format!("/notifications/logs/{}/resend", d.id), "")
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(a.json["deliveryId"], d.id.to_string());
    assert_eq!(a.json["attempt"], 2);
    assert_eq!(a.json["status"], "queued");
    assert_eq!(a.json["trigger"], "manual");
    assert_eq!(a.json["template"], "default");

    let tasks = ops.queued().await;
    assert_eq!(tasks.len(), 1, "one dispatch message");
    let task = &tasks[0];
    assert_eq!(
        task.delivery_id, d.id,
        "the same delivery, so the same webhook-id"
    );
    assert_eq!(task.attempt, 2);
    assert_eq!(
        task.manual.map(|m| m.previous),
        Some(DeliveryStatus::Failed)
    );
    assert_eq!(task.event, event, "rendered from the stored event");
    assert_eq!(task.lane(), format!("{}/{}", ops.org, ops.channel));

    let now_ = ops
        .app
        .get(&format!("/notifications/logs/{}", d.id))
        .await
        .expect(StatusCode::OK);
    assert_eq!(now_.json["status"], "queued");
    assert!(
        now_.json["reason"]
            .as_str()
            .unwrap()
            .contains("attempt 2 (manual)")
    );

    // While that attempt is pending, a second resend would race it.
    let again = ops
        .app
        .post(&format!("/notifications/logs/{}/resend", d.id), "{}")
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(again.code(), Some("in_progress"));
    assert!(ops.queued().await.is_empty(), "nothing more was queued");
}

#[tokio::test]
async fn a_failed_delivery_is_read_then_resent_once_as_a_manual_attempt_embedded() {
    a_failed_delivery_is_read_then_resent_once_as_a_manual_attempt(embedded(), embedded_queue())
        .await;
}

fn embedded() -> Arc<dyn Store> {
    Arc::new(Embedded::in_memory().expect("in-memory store"))
}

#[tokio::test]
async fn unknown_bad_or_other_orgs_delivery_and_event_ids_are_404_with_the_standard_body() {
    let ops = ops(embedded()).await;
    let event = ops.event("evt-mine");
    let d = ops.delivered(&event, DeliveryStatus::Delivered, 200).await;
    let (other_org, other_key) = ops.app.new_org("Other").await;
    for path in [
        format!("/notifications/logs/{}", d.id),
        format!("/notifications/logs/{}/resend", d.id),
        "/events/evt-mine".to_owned(),
    ] {
        let method = if path.ends_with("resend") {
            "POST"
        } else {
            "GET"
        };
        let a = ops
            .app
            .send(
                method,
                &format!("/api/v1/orgs/{other_org}{path}"),
                &[("x-api-key", other_key.as_str())],
                None,
            )
            .await
            .expect_error(StatusCode::NOT_FOUND);
        assert_eq!(a.code(), Some("not_found"), "{path}");
    }
    for path in [
        "/notifications/logs/not-a-uuid",
        "/notifications/logs/0190aaaa-0000-7000-8000-000000000000",
        "/events/no-such-event",
    ] {
        let a = ops.app.get(path).await.expect_error(StatusCode::NOT_FOUND);
        assert_eq!(a.code(), Some("not_found"), "{path}");
    }
    let a = ops
        .app
        .post(
            "/notifications/logs/0190aaaa-0000-7000-8000-000000000000/resend",
            "{}",
        )
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert_eq!(a.code(), Some("not_found"));
    // A body is refused with its field, not ignored.
    let a = ops
        .app
        .post(
            &format!("/notifications/logs/{}/resend", d.id),
            r#"{"force":true}"#,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("force"));
}

#[tokio::test]
async fn resend_is_refused_with_a_reason_where_it_is_unsafe_or_would_bypass_consent() {
    let ops = ops(embedded()).await;
    let pending = ops.event("evt-pending");
    let pending = ops.delivered(&pending, DeliveryStatus::Queued, 503).await;
    let suppressed = ops.event("evt-suppressed");
    let suppressed = ops
        .delivered(&suppressed, DeliveryStatus::Suppressed, 0)
        .await;
    let expired = ops.event("evt-expired");
    let expired = ops.delivered(&expired, DeliveryStatus::Failed, 404).await;
    ops.app
        .store
        .delete(
            &herald_shared::store::keys::event(ops.org, &EventId::parse("evt-expired").unwrap()),
            herald_shared::store::Condition::None,
        )
        .await
        .unwrap();

    for (d, code) in [
        (&pending, "in_progress"),
        (&suppressed, "not_resendable"),
        (&expired, "event_expired"),
    ] {
        let a = ops
            .app
            .post(&format!("/notifications/logs/{}/resend", d.id), "")
            .await
            .expect_error(StatusCode::CONFLICT);
        assert_eq!(a.code(), Some(code), "{}", a.text);
    }

    let failed = ops.event("evt-failed");
    let failed = ops.delivered(&failed, DeliveryStatus::Failed, 404).await;
    ops.app
        .patch(
            &format!("/notifications/channels/{}", ops.channel),
            r#"{"enabled":false}"#,
        )
        .await
        .expect(StatusCode::OK);
    let a = ops
        .app
        .post(&format!("/notifications/logs/{}/resend", failed.id), "")
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(a.code(), Some("channel_disabled"));
    ops.app
        .delete("/notifications/rules/disk.full")
        .await
        .expect(StatusCode::NO_CONTENT);
    ops.app
        .delete(&format!("/notifications/channels/{}", ops.channel))
        .await
        .expect(StatusCode::NO_CONTENT);
    let a = ops
        .app
        .post(&format!("/notifications/logs/{}/resend", failed.id), "")
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(a.code(), Some("channel_deleted"));
    assert!(ops.queued().await.is_empty(), "no refused resend queued");
    let still = ops
        .app
        .get(&format!("/notifications/logs/{}", failed.id))
        .await
        .expect(StatusCode::OK);
    assert_eq!(still.json["status"], "failed", "a refusal changes nothing");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_answer_and_is_refused_for_another_request() {
    let ops = ops(embedded()).await;
    let one = ops.event("evt-one");
    let one = ops.delivered(&one, DeliveryStatus::Failed, 404).await;
    let two = ops.event("evt-two");
    let two = ops.delivered(&two, DeliveryStatus::Delivered, 200).await;
    let send = |id: String, key: &'static str| {
        let app = ops.app.clone();
        async move {
            app.send(
                "POST",
                &app.path(&format!("/notifications/logs/{id}/resend")),
                &[
                    ("x-api-key", app.api_key.as_str()),
                    ("idempotency-key", key),
                ],
                Some("{}"),
            )
            .await
        }
    };
    let first = send(one.id.to_string(), "resend-1")
        .await
        .expect(StatusCode::ACCEPTED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let replay = send(one.id.to_string(), "resend-1")
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replay.json, first.json, "the stored answer");
    assert_eq!(ops.queued().await.len(), 1, "one attempt queued, not two");

    let reused = send(two.id.to_string(), "resend-1")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), Some("idempotency_key_reused"));
    assert_eq!(reused.field(), Some("Idempotency-Key"));

    // An error is not stored: it frees the key for the next request.
    let pending = send(one.id.to_string(), "resend-2")
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(pending.code(), Some("in_progress"));
    send(two.id.to_string(), "resend-2")
        .await
        .expect(StatusCode::ACCEPTED);

    let bad = send(one.id.to_string(), "")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(bad.field(), Some("Idempotency-Key"));
}

#[tokio::test]
async fn a_request_running_with_a_key_makes_a_concurrent_repeat_a_409() {
    use herald_shared::repo::idempotency::{self, Answer, Claim};
    let store = embedded();
    let org = OrgId::new();
    let at = now();
    assert_eq!(
        idempotency::claim(store.as_ref(), org, "scope", "body-a", at)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        idempotency::claim(store.as_ref(), org, "scope", "body-a", at)
            .await
            .unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        idempotency::claim(store.as_ref(), org, "scope", "body-b", at)
            .await
            .unwrap(),
        Claim::Reused
    );
    let answer = Answer {
        status: 202,
        body: json!({"ok": true}),
    };
    idempotency::complete(store.as_ref(), org, "scope", "body-a", answer.clone(), at)
        .await
        .unwrap();
    assert_eq!(
        idempotency::claim(store.as_ref(), org, "scope", "body-a", at)
            .await
            .unwrap(),
        Claim::Done(answer)
    );
    assert_eq!(
        idempotency::claim(store.as_ref(), OrgId::new(), "scope", "body-a", at)
            .await
            .unwrap(),
        Claim::Claimed,
        "keys are per org"
    );
}

async fn an_event_shows_per_rule_what_routing_did(store: Arc<dyn Store>) {
    let ops = ops(store).await;
    let event = ops.event("evt-detail");
    let d = ops.delivered(&event, DeliveryStatus::Delivered, 200).await;
    ops.app
        .post(
            "/notifications/rules",
            &json!({"key": "critical-only", "channelIds": [ops.channel.to_string()],
                    "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                                      {"field": "properties.severity", "op": "in", "value": ["critical"]}]}})
            .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    let a = ops
        .app
        .get("/events/evt-detail")
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["event"]["id"], "evt-detail");
    assert_eq!(a.json["event"]["properties"]["host"], "web-1");
    assert_eq!(a.json["stage"], "matched");
    assert_eq!(a.json["deliveries"], 1);
    let rules = a.json["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{}", a.text);
    assert_eq!(rules[0]["ruleKey"], "disk.full");
    assert_eq!(rules[0]["outcome"], "matched");
    assert_eq!(rules[0]["deliveries"][0]["deliveryId"], d.id.to_string());
    assert_eq!(rules[0]["deliveries"][0]["routed"], "queued");
    assert_eq!(
        rules[0]["deliveries"][0]["status"], "delivered",
        "as it is now"
    );
    assert_eq!(rules[1]["ruleKey"], "critical-only");
    assert_eq!(rules[1]["outcome"], "not_matched");
    assert_eq!(
        rules[1]["changedSince"], true,
        "created after the event was matched"
    );
}

#[tokio::test]
async fn an_event_shows_per_rule_what_routing_did_embedded() {
    an_event_shows_per_rule_what_routing_did(embedded()).await;
}

#[tokio::test]
async fn an_event_lists_capped_and_deferred_deliveries_as_the_matcher_recorded_them() {
    let ops = ops(embedded()).await;
    let store = ops.app.store.as_ref();
    let event = ops.event("evt-capped");
    events::record(store, &event, ttl(), now()).await.unwrap();
    let mk = |status, reason: &str| RoutedDelivery {
        delivery_id: herald_core::domain::DeliveryId::new(),
        channel_id: ops.channel,
        recipient: Some(UserId::parse("alice").unwrap()),
        status,
        reason: Some(reason.to_owned()),
    };
    events::mark_matched(
        store,
        &event,
        vec![RuleRoute {
            rule_key: "disk.full".into(),
            deliveries: vec![
                mk(
                    DeliveryStatus::Suppressed,
                    "frequency cap: 5 per 24h reached for user alice",
                ),
                mk(
                    DeliveryStatus::Deferred,
                    "quiet hours until 2026-06-02T06:00:00Z",
                ),
                mk(DeliveryStatus::Suppressed, "channel is disabled"),
                mk(
                    DeliveryStatus::Suppressed,
                    "silenced by 0190a000-0000-7000-8000-000000000001",
                ),
            ],
            outcomes: vec![{
                let mut o = AlertOutcome::new(AlertOutcomeKind::Deduplicated, "disk.full:web-1");
                o.channel_id = Some(ops.channel);
                o.reason = Some("acknowledged: no repeat".to_owned());
                o
            }],
        }],
        4,
        ttl(),
        now(),
    )
    .await
    .unwrap();
    let a = ops
        .app
        .get("/events/evt-capped")
        .await
        .expect(StatusCode::OK);
    let routed: Vec<&str> = a.json["rules"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["routed"].as_str().unwrap())
        .collect();
    assert_eq!(routed, ["capped", "deferred", "suppressed", "silenced"]);
    let outcomes: Vec<&str> = a.json["rules"][0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "capped",
            "deferred",
            "suppressed",
            "silenced",
            "deduplicated"
        ],
        "one outcome per delivery, then the alert outcomes: {}",
        a.json
    );
    assert_eq!(
        a.json["rules"][0]["outcomes"][3]["silenceId"],
        "0190a000-0000-7000-8000-000000000001"
    );
    assert_eq!(
        a.json["rules"][0]["outcomes"][4]["dedupKey"],
        "disk.full:web-1"
    );
    assert!(
        a.json["rules"][0]["deliveries"][0]["status"].is_null(),
        "no such delivery on record any more: no current status"
    );
}

/// Counts the writes made through the store it watches.
#[derive(Debug, Default)]
struct Writes(std::sync::atomic::AtomicUsize);

impl Writes {
    fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Watch for Writes {
    async fn before(&self, call: Call<'_>) -> Result<(), herald_shared::store::StoreError> {
        self.0
            .fetch_add(call.writes(), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn explain_names_the_first_failing_predicate_and_what_each_delivery_would_do_writing_nothing()
{
    let spy = Watched::new(embedded(), Writes::default());
    let ops = ops(spy.clone() as Arc<dyn Store>).await;
    let email = ops
        .app
        .channel(r#"{"kind":"email","name":"mail","frequencyCap":{"perUser":2,"windowHours":24}}"#)
        .await;
    ops.app
        .post(
            "/notifications/rules",
            &json!({"key": "critical", "channelIds": [ops.channel.to_string()],
                    "match": {"all": [{"field": "module", "op": "eq", "value": "ops"},
                                      {"field": "properties.severity", "op": "in", "value": ["critical"]}]}})
            .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    ops.app
        .post(
            "/notifications/rules",
            &json!({"key": "mail-oncall", "channelIds": [email], "quietHoursTz": "Europe/Paris",
                    "recipients": ["alice", "bob", "carol"],
                    "match": {"field": "module", "op": "eq", "value": "ops"}})
            .to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    ops.app
        .call(
            "PUT",
            "/users/alice",
            Some(r#"{"email":"alice@example.com"}"#),
        )
        .await
        .expect(StatusCode::OK);
    ops.app
        .call(
            "PUT",
            "/users/bob",
            Some(r#"{"email":"bob@example.com","optOuts":["email"]}"#),
        )
        .await
        .expect(StatusCode::OK);
    let before = spy.watch.count();

    let event =
        json!({"type": "disk.full", "module": "ops", "properties": {"severity": "warning"}});
    let a = ops
        .app
        .post(
            "/notifications/rules/explain",
            &json!({"event": event, "at": "2026-06-01T23:30:00Z"}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(spy.watch.count(), before, "explain wrote nothing");
    assert!(ops.queued().await.is_empty(), "and queued nothing");
    assert_eq!(a.json["rulesSource"], "live");
    assert_eq!(a.json["evaluatedAt"], "2026-06-01T23:30:00Z");
    let rules = a.json["rules"].as_array().unwrap();
    let by_key = |k: &str| rules.iter().find(|r| r["key"] == k).unwrap().clone();

    let critical = by_key("critical");
    assert_eq!(critical["matched"], false);
    assert_eq!(critical["because"][0]["path"], "match.all[1]");
    assert_eq!(critical["because"][0]["field"], "properties.severity");
    assert_eq!(critical["because"][0]["actual"], "warning");
    assert_eq!(critical["because"][0]["expected"], json!(["critical"]));
    assert_eq!(
        critical["because"][0]["message"],
        r#"`properties.severity` is "warning", expected `in ["critical"]`"#
    );

    let disk = by_key("disk.full");
    assert_eq!(disk["matched"], true);
    assert_eq!(disk["deliveries"][0]["outcome"], "would_send");
    assert_eq!(disk["deliveries"][0]["kind"], "webhook");

    let mail = by_key("mail-oncall");
    let outcomes: Vec<(String, String)> = mail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["recipient"].as_str().unwrap().to_owned(),
                d["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("alice".to_owned(), "would_defer".to_owned()),
            ("bob".to_owned(), "would_suppress".to_owned()),
            ("carol".to_owned(), "would_fail".to_owned()),
        ]
    );
    assert_eq!(mail["deliveries"][0]["until"], "2026-06-02T06:00:00Z");
    assert!(
        mail["deliveries"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("opted out of email")
    );
    assert_eq!(
        mail["deliveries"][2]["reason"],
        "no email address for user carol"
    );
    assert_eq!(
        a.json["summary"],
        json!({"evaluated": 3, "matched": 2, "wouldSend": 1, "wouldDefer": 1, "wouldSuppress": 1, "wouldFail": 1})
    );

    // Cap counters are read, not counted: two already used in alice's window suppress.
    let cap = herald_core::domain::channel::FrequencyCap {
        per_user: 2,
        window_hours: 24,
    };
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap();
    let counter = herald_shared::store::keys::cap_counter(
        ops.org,
        email.parse().unwrap(),
        "alice",
        cap,
        &herald_core::delivery::caps::window(cap, at),
    );
    let deltas = [(herald_shared::store::keys::CAP_COUNT_ATTR.to_owned(), 2)].into();
    spy.add(
        &counter,
        "capCounter",
        &deltas,
        herald_shared::store::Condition::None,
    )
    .await
    .unwrap();
    let before = spy.watch.count();
    let a = ops
        .app
        .post(
            "/notifications/rules/explain",
            &json!({"event": event, "at": "2026-06-01T10:00:00Z", "include": "matched"})
                .to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(spy.watch.count(), before);
    let rules = a.json["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "only the matched ones");
    let mail = rules.iter().find(|r| r["key"] == "mail-oncall").unwrap();
    assert_eq!(mail["deliveries"][0]["outcome"], "would_suppress");
    assert!(
        mail["deliveries"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("frequency cap: 2 per 24h reached for user alice (2 used"),
        "{}",
        mail["deliveries"][0]
    );
}

#[tokio::test]
async fn explain_takes_a_stored_event_or_a_draft_and_refuses_bad_input_with_its_field() {
    let ops = ops(embedded()).await;
    let event = ops.event("evt-stored");
    let d = ops.delivered(&event, DeliveryStatus::Delivered, 200).await;

    let a = ops
        .app
        .post(
            "/notifications/rules/explain",
            r#"{"eventId":"evt-stored"}"#,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        a.json["rules"][0]["deliveries"][0]["deliveryId"],
        d.id.to_string(),
        "the delivery routing made"
    );

    let draft = json!({"eventId": "evt-stored", "rules": [
        {"key": "narrow", "channelIds": [ops.channel.to_string()],
         "match": {"field": "properties.host", "op": "prefix", "value": "db-"}}
    ]});
    let a = ops
        .app
        .post("/notifications/rules/explain", &draft.to_string())
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["rulesSource"], "draft");
    assert_eq!(a.json["rules"].as_array().unwrap().len(), 1);
    assert_eq!(a.json["rules"][0]["matched"], false);
    assert_eq!(a.json["rules"][0]["because"][0]["path"], "match");
    let after = ops
        .app
        .get("/notifications/rules/narrow")
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert_eq!(after.code(), Some("not_found"), "a draft is never saved");

    for (body, status, field) in [
        (json!({}), StatusCode::BAD_REQUEST, "event"),
        (
            json!({"eventId": "evt-stored", "event": {"type": "a", "module": "b"}}),
            StatusCode::BAD_REQUEST,
            "event",
        ),
        (
            json!({"event": {"type": "a", "module": "b", "propertes": {}}}),
            StatusCode::BAD_REQUEST,
            "event.propertes",
        ),
        (
            json!({"eventId": "evt-stored", "at": "tomorrow"}),
            StatusCode::BAD_REQUEST,
            "at",
        ),
        (
            json!({"eventId": "evt-stored", "rules": [
                {"key": "ok", "channelIds": [ops.channel.to_string()]},
                {"key": "bad", "channelIds": [ops.channel.to_string()],
                 "match": {"all": [{"field": "type", "op": "equals", "value": "x"}]}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[1].match.all[0].op",
        ),
        (
            json!({"eventId": "evt-stored", "rules": [
                {"key": "x", "channelIds": ["0190aaaa-0000-7000-8000-000000000000"]}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[0].channelIds[0]",
        ),
        (
            json!({"eventId": "evt-stored", "rules": [
                {"key": "x", "channelIds": [ops.channel.to_string()]},
                {"key": "x", "channelIds": [ops.channel.to_string()]}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[1].key",
        ),
    ] {
        let a = ops
            .app
            .post("/notifications/rules/explain", &body.to_string())
            .await
            .expect_error(status);
        assert_eq!(a.field(), Some(field), "{body}: {}", a.text);
    }
    let (other, other_key) = ops.app.new_org("Other").await;
    let a = ops
        .app
        .send(
            "POST",
            &format!("/api/v1/orgs/{other}/notifications/rules/explain"),
            &[("x-api-key", other_key.as_str())],
            Some(r#"{"eventId":"evt-stored"}"#),
        )
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert_eq!(a.code(), Some("not_found"), "another org's event");
}

/// Every recovery page waiting in the queue (received and left invisible).
async fn queued_pages(queue: &dyn Queue) -> Vec<herald_shared::pipeline::RecoverPage> {
    let got = queue
        .receive(10, Duration::from_millis(50))
        .await
        .expect("receive");
    got.iter()
        .map(|m| herald_shared::pipeline::RecoverPageTask::parse(&m.body).expect("a recovery page"))
        .collect()
}

async fn a_recovery_is_checked_started_once_per_channel_and_idempotent(
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
) {
    let ops = ops_over(store, queue).await;
    let recover = format!("/notifications/channels/{}/recover", ops.channel);
    let since = now() - chrono::Duration::hours(2);
    let post = |path: String, key: Option<&'static str>, body: serde_json::Value| {
        let app = ops.app.clone();
        async move {
            let mut headers = vec![("x-api-key", app.api_key.clone())];
            if let Some(k) = key {
                headers.push(("idempotency-key", k.to_owned()));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.send("POST", &app.path(&path), &headers, Some(&body.to_string()))
                .await
        }
    };

    // Bad windows and bodies: 422 (or 400 for the wrong shape) naming the field, nothing started.
    let bad = [
        (
            json!({"since": (now() - chrono::Duration::days(15)).to_rfc3339()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "since",
        ),
        (
            json!({"since": (now() + chrono::Duration::hours(1)).to_rfc3339()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "since",
        ),
        (
            json!({"since": since.to_rfc3339(), "until": (since - chrono::Duration::seconds(1)).to_rfc3339()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "until",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "since"),
        (
            json!({"since": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "since",
        ),
        (
            json!({"since": since.to_rfc3339(), "status": "failed"}),
            StatusCode::BAD_REQUEST,
            "status",
        ),
    ];
    for (body, status, field) in bad {
        let a = post(recover.clone(), None, body.clone())
            .await
            .expect_error(status);
        assert_eq!(a.field(), Some(field), "{body}: {}", a.text);
    }
    // Unknown, malformed or another org's channel: 404.
    for path in [
        format!("/notifications/channels/{}/recover", ChannelId::new()),
        "/notifications/channels/not-a-uuid/recover".to_owned(),
    ] {
        let a = post(path, None, json!({"since": since.to_rfc3339()}))
            .await
            .expect_error(StatusCode::NOT_FOUND);
        assert_eq!(a.code(), Some("not_found"));
    }
    let (other, other_key) = ops.app.new_org("Other").await;
    ops.app
        .send(
            "POST",
            &format!(
                "/api/v1/orgs/{other}/notifications/channels/{}/recover",
                ops.channel
            ),
            &[("x-api-key", other_key.as_str())],
            Some(&json!({"since": since.to_rfc3339()}).to_string()),
        )
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert!(
        queued_pages(ops.queue.as_ref()).await.is_empty(),
        "nothing started"
    );

    // A disabled channel is refused.
    ops.app
        .patch(
            &format!("/notifications/channels/{}", ops.channel),
            r#"{"enabled":false}"#,
        )
        .await
        .expect(StatusCode::OK);
    let a = post(recover.clone(), None, json!({"since": since.to_rfc3339()}))
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(a.code(), Some("channel_disabled"));
    ops.app
        .patch(
            &format!("/notifications/channels/{}", ops.channel),
            r#"{"enabled":true}"#,
        )
        .await
        .expect(StatusCode::OK);

    // Started: 202 with the recovery, and its first page on the dispatch queue.
    let body = json!({"since": since.to_rfc3339()});
    let first = post(recover.clone(), Some("rec-1"), body.clone())
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(first.json["state"], "running", "{}", first.text);
    assert_eq!(first.json["channelId"], ops.channel.to_string());
    assert_eq!(first.json["requeued"], 0);
    let id = first.json["id"].as_str().expect("an id").to_owned();
    let pages = queued_pages(ops.queue.as_ref()).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].recovery_id.to_string(), id);
    assert_eq!(pages[0].page, 0);

    // The same key and body: the stored answer, nothing started again.
    let replay = post(recover.clone(), Some("rec-1"), body.clone())
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replay.json, first.json);
    // The same key with another window: refused.
    let reused = post(
        recover.clone(),
        Some("rec-1"),
        json!({"since": (since + chrono::Duration::minutes(1)).to_rfc3339()}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), Some("idempotency_key_reused"));

    // A second recovery while the first runs: 409 naming it.
    let second = post(recover.clone(), Some("rec-2"), body.clone())
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(second.code(), Some("recovery_running"));
    assert!(second.message().contains(&id), "{}", second.text);
    assert!(
        queued_pages(ops.queue.as_ref()).await.is_empty(),
        "nothing more queued"
    );

    // Its progress; under another channel it does not exist.
    let got = ops
        .app
        .get(&format!("{recover}/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.json["state"], "running");
    assert_eq!(got.json["since"], first.json["since"]);
    let other_channel = ops
        .app
        .channel(r#"{"kind":"webhook","name":"other","config":{"url":"http://127.0.0.1:9/other","format":"generic"}}"#)
        .await;
    for path in [
        format!("/notifications/channels/{other_channel}/recover/{id}"),
        format!("{recover}/{}", ChannelId::new()),
        format!("{recover}/nope"),
    ] {
        let a = ops.app.get(&path).await.expect_error(StatusCode::NOT_FOUND);
        assert_eq!(a.code(), Some("not_found"), "{path}");
    }
}

#[tokio::test]
async fn a_recovery_is_checked_started_once_per_channel_and_idempotent_embedded() {
    a_recovery_is_checked_started_once_per_channel_and_idempotent(embedded(), embedded_queue())
        .await;
}

#[cfg(feature = "lambda")]
mod over_dynamodb {
    use super::*;

    async fn dynamodb() -> Arc<dyn Store> {
        use herald_shared::store::dynamodb::{DynamoStore, create_table};
        let config = herald_testing::emulator::sdk_config().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let table = format!("herald-ops-{}", uuid::Uuid::new_v4().simple());
        create_table(&client, &table)
            .await
            .expect("create table on the emulator");
        Arc::new(DynamoStore::new(client, &table))
    }

    /// The dispatch queue as the api Lambda has it: SQS, on the emulator.
    async fn sqs() -> Arc<dyn Queue> {
        use herald_shared::queue::sqs::{SqsQueue, create_queue_with_dlq};
        let config = herald_testing::emulator::sdk_config().await;
        let client = aws_sdk_sqs::Client::new(&config);
        let name = format!("herald-ops-{}", uuid::Uuid::new_v4().simple());
        let urls = create_queue_with_dlq(&client, &name, Duration::from_secs(30), 5)
            .await
            .expect("create queue on the emulator");
        Arc::new(SqsQueue::new(client, urls.main))
    }

    #[tokio::test]
    async fn over_dynamodb_and_sqs_a_failed_delivery_is_read_then_resent_once_as_a_manual_attempt()
    {
        a_failed_delivery_is_read_then_resent_once_as_a_manual_attempt(
            dynamodb().await,
            sqs().await,
        )
        .await;
    }

    #[tokio::test]
    async fn over_dynamodb_and_sqs_a_recovery_is_checked_started_once_per_channel_and_idempotent() {
        a_recovery_is_checked_started_once_per_channel_and_idempotent(
            dynamodb().await,
            sqs().await,
        )
        .await;
    }

    #[tokio::test]
    async fn over_dynamodb_an_event_shows_per_rule_what_routing_did() {
        an_event_shows_per_rule_what_routing_did(dynamodb().await).await;
    }
}

#[tokio::test]
async fn the_test_button_with_an_idempotency_key_sends_once() {
    let app = TestApp::local().await;
    let feed = app.in_app_channel("feed").await;
    let test = |to: &'static str| {
        let app = app.clone();
        let feed = feed.clone();
        async move {
            app.send(
                "POST",
                &app.path(&format!("/notifications/channels/{feed}/test")),
                &[
                    ("x-api-key", app.api_key.as_str()),
                    ("idempotency-key", "test-1"),
                ],
                Some(&format!(r#"{{"to":"{to}"}}"#)),
            )
            .await
        }
    };
    let first = test("alice").await.expect(StatusCode::OK);
    assert_eq!(first.json["ok"], true, "{}", first.text);
    let again = test("alice").await.expect(StatusCode::OK);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(again.json["logId"], first.json["logId"]);
    let logs = app
        .get(&format!("/notifications/channels/{feed}/logs"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        logs.json["items"].as_array().unwrap().len(),
        1,
        "one test delivery, not two"
    );
    let other = test("bob")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), Some("idempotency_key_reused"));
}
