//! Rule replay and apply: a draft rule set over stored events, its routing diff, and the draft
//! applied atomically unless the rules changed since.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::{EventId, OrgId};
use herald_shared::repo::events;
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

const EVENTS: i64 = 300;

/// An org with two webhook channels and two live rules, `disk.full` and `cpu.high`, both to
/// `incidents`; 300 events of its own recorded as ingest records them, one a second from
/// `base` (every third `cpu.high`, the others `disk.full`; every fifth on a `db-` host), and
/// as many of another org's with the same ids.
struct Replay {
    app: TestApp,
    incidents: String,
    base: DateTime<Utc>,
}

fn event(org: OrgId, i: i64, base: DateTime<Utc>) -> Event {
    let at = base + Duration::seconds(i);
    let kind = if i % 3 == 0 { "cpu.high" } else { "disk.full" };
    let host = if i % 5 == 0 {
        format!("db-{i}")
    } else {
        format!("web-{i}")
    };
    Event {
        id: EventId::parse(format!("evt-{i:03}")).unwrap(),
        org_id: org,
        event_type: EventType::parse(kind).unwrap(),
        module: Module::parse("ops").unwrap(),
        properties: json!({ "host": host }).as_object().cloned().unwrap(),
        recipients: Vec::new(),
        occurred_at: at,
        received_at: at,
        alert: None,
    }
}

fn id(i: i64) -> String {
    format!("evt-{i:03}")
}

fn is_disk(i: i64) -> bool {
    i % 3 != 0
}

fn is_db(i: i64) -> bool {
    i % 5 == 0
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn replay_world(store: Arc<dyn Store>) -> Replay {
    let app = TestApp::local_over(store).await;
    let incidents = app
        .channel(r#"{"kind":"webhook","name":"incidents","config":{"url":"http://127.0.0.1:9/hook","format":"generic"}}"#)
        .await;
    for key in ["disk.full", "cpu.high"] {
        app.post(
            "/notifications/rules",
            &json!({"key": key, "channelIds": [incidents]}).to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let base = (Utc::now() - Duration::hours(1))
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let org: OrgId = app.org_id.parse().unwrap();
    let (other, _) = app.new_org("Other").await;
    let other: OrgId = other.parse().unwrap();
    let ttl = (Utc::now() + Duration::days(30)).timestamp();
    for i in 0..EVENTS {
        for o in [org, other] {
            events::record(app.store.as_ref(), &event(o, i, base), ttl, Utc::now())
                .await
                .unwrap();
        }
    }
    Replay {
        app,
        incidents,
        base,
    }
}

impl Replay {
    /// The draft: `disk.full` narrowed to `db-` hosts, `cpu.high` as it is.
    fn narrowed(&self) -> Value {
        json!([
            {"key": "disk.full", "channelIds": [self.incidents],
             "match": {"all": [{"field": "type", "op": "eq", "value": "disk.full"},
                               {"field": "properties.host", "op": "prefix", "value": "db-"}]}},
            {"key": "cpu.high", "channelIds": [self.incidents]}
        ])
    }

    fn at(&self, second: i64) -> String {
        rfc(self.base + Duration::seconds(second))
    }

    async fn replay(&self, body: Value) -> Value {
        self.app
            .post("/notifications/rules/replay", &body.to_string())
            .await
            .expect(StatusCode::OK)
            .json
    }
}

fn rule<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["byRule"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no rule {key} in {answer}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

async fn a_draft_that_narrows_one_rule_lists_exactly_the_events_that_change(store: Arc<dyn Store>) {
    let w = replay_world(store).await;
    // [10 s, 250 s): event 10 is in, event 250 is not.
    let window: Vec<i64> = (10..250).collect();
    let changed: Vec<String> = window
        .iter()
        .filter(|&&i| is_disk(i) && !is_db(i))
        .map(|&i| id(i))
        .collect();
    let disk = window.iter().filter(|&&i| is_disk(i)).count();
    let cpu = window.len() - disk;

    let a = w
        .replay(
            json!({"rules": w.narrowed(), "since": w.at(10), "until": w.at(250), "examples": 100}),
        )
        .await;
    assert_eq!(a["eventsScanned"], 240, "{a}");
    assert_eq!(a["truncated"], false);
    assert_eq!(a["resumeFrom"], Value::Null);
    assert_eq!(a["rulesVersion"], 2, "two rule creates");
    assert_eq!(
        a["totals"],
        json!({"eventsChanged": changed.len(), "live": 240, "draft": 240 - changed.len(),
               "added": 0, "removed": changed.len(), "unchanged": 240 - changed.len(),
               "reattributed": 0})
    );
    let d = rule(&a, "disk.full");
    assert_eq!(d["live"], disk);
    assert_eq!(d["draft"], disk - changed.len());
    assert_eq!(d["noLongerMatched"], changed.len());
    assert_eq!(d["newlyMatched"], 0);
    assert_eq!(d["routesRemoved"], changed.len());
    assert_eq!(d["channelsRemoved"], json!([w.incidents]));
    assert_eq!(
        strings(&d["noLongerMatchedSample"]),
        changed[..100],
        "the first 100, oldest first"
    );
    let c = rule(&a, "cpu.high");
    assert_eq!(
        (c["live"].clone(), c["draft"].clone()),
        (json!(cpu), json!(cpu))
    );
    assert_eq!(c["noLongerMatched"], 0);
    assert_eq!(
        a["byChannel"],
        json!([{"channelId": w.incidents, "live": 240, "draft": 240 - changed.len(),
                "added": 0, "removed": changed.len()}])
    );
    assert!(a["examples"]["added"].as_array().unwrap().is_empty());
    let removed: Vec<String> = a["examples"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(removed, changed[..100]);
    assert_eq!(
        a["examples"]["removed"][0]["routes"],
        json!([{"ruleKey": "disk.full", "channelId": w.incidents}])
    );
    assert!(
        strings(&a["notSimulated"]).contains(&"frequencyCap".to_owned()),
        "{a}"
    );

    // The same window in pages of 50: every changed event exactly once, across resumes; the
    // other org's events (same ids, same times) never counted.
    let mut seen: Vec<String> = Vec::new();
    let mut scanned = 0;
    let mut resume: Option<String> = None;
    let mut calls = 0;
    loop {
        let mut body = json!({"rules": w.narrowed(), "since": w.at(10), "until": w.at(250),
                              "limit": 50, "examples": 100});
        if let Some(r) = &resume {
            body["resumeFrom"] = json!(r);
        }
        let page = w.replay(body).await;
        calls += 1;
        scanned += page["eventsScanned"].as_u64().unwrap();
        seen.extend(
            page["examples"]["removed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["eventId"].as_str().unwrap().to_owned()),
        );
        if page["truncated"] == false {
            assert_eq!(page["resumeFrom"], Value::Null);
            break;
        }
        resume = Some(page["resumeFrom"].as_str().unwrap().to_owned());
        assert!(calls < 10, "resumes end");
    }
    assert_eq!(calls, 5, "240 events in pages of 50");
    assert_eq!(scanned, 240);
    assert_eq!(seen, changed, "exactly the events that change, each once");

    // Bounds: `since` is inclusive, `until` exclusive.
    let a = w
        .replay(json!({"rules": w.narrowed(), "since": w.at(1), "until": w.at(2)}))
        .await;
    assert_eq!(a["eventsScanned"], 1);
    assert_eq!(a["examples"]["removed"][0]["eventId"], id(1));
    let a = w
        .replay(json!({"rules": w.narrowed(), "since": w.at(5), "until": w.at(5)}))
        .await;
    assert_eq!(a["eventsScanned"], 0, "an empty window");

    // The whole log, `until` defaulting to now: the org's 300 events, not the other org's.
    let a = w
        .replay(json!({"rules": w.narrowed(), "since": w.at(0)}))
        .await;
    assert_eq!(a["eventsScanned"], EVENTS);
}

#[tokio::test]
async fn a_draft_that_narrows_one_rule_lists_exactly_the_events_that_change_embedded() {
    a_draft_that_narrows_one_rule_lists_exactly_the_events_that_change(embedded()).await;
}

fn embedded() -> Arc<dyn Store> {
    Arc::new(Embedded::in_memory().unwrap())
}

async fn applying_the_replayed_draft_is_refused_once_the_rules_moved_then_leaves_no_diff(
    store: Arc<dyn Store>,
) {
    let w = replay_world(store).await;
    let window = json!({"since": w.at(0), "until": w.at(EVENTS)});
    let mut body = window.clone();
    body["rules"] = w.narrowed();
    let replayed = w.replay(body.clone()).await;
    let version = replayed["rulesVersion"].as_i64().unwrap();
    assert_ne!(replayed["totals"]["removed"], 0);

    // A rule changes after the replay: the apply is refused and writes nothing.
    w.app
        .patch("/notifications/rules/cpu.high", r#"{"enabled":true}"#)
        .await
        .expect(StatusCode::OK);
    let refused = w
        .app
        .post(
            "/notifications/rules/batch",
            &json!({"rules": w.narrowed(), "expectedRulesVersion": version}).to_string(),
        )
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(refused.code(), Some("rules_changed"), "{}", refused.text);
    assert_eq!(refused.field(), Some("expectedRulesVersion"));
    let live = w
        .app
        .get("/notifications/rules/disk.full")
        .await
        .expect(StatusCode::OK);
    assert_eq!(live.json["match"], Value::Null, "nothing was written");
    let again = w.replay(body.clone()).await;
    assert_eq!(
        again["rulesVersion"],
        version + 1,
        "only the patch moved it"
    );
    assert_eq!(again["totals"], replayed["totals"]);

    // Against the version replayed now: applied, atomically, with what changed.
    let applied = w
        .app
        .post(
            "/notifications/rules/batch",
            &json!({"rules": w.narrowed(), "expectedRulesVersion": version + 1}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        applied.json,
        json!({"rulesVersion": version + 2, "upserted": ["disk.full"], "deleted": [], "unchanged": 1})
    );
    let live = w
        .app
        .get("/notifications/rules/disk.full")
        .await
        .expect(StatusCode::OK);
    assert_eq!(live.json["match"]["all"][1]["value"], "db-");

    // The same draft replayed again: no diff.
    let after = w.replay(body).await;
    assert_eq!(after["rulesVersion"], version + 2);
    assert_eq!(after["totals"]["added"], 0);
    assert_eq!(after["totals"]["removed"], 0);
    assert_eq!(after["totals"]["eventsChanged"], 0);
    assert_eq!(after["totals"]["reattributed"], 0);
    assert_eq!(after["totals"]["live"], after["totals"]["draft"]);
    assert!(after["examples"]["removed"].as_array().unwrap().is_empty());

    // A draft leaving `cpu.high` out deletes it; the rule set is exactly the draft.
    let only_disk = json!([w.narrowed()[0].clone()]);
    let mut body = window.clone();
    body["rules"] = only_disk.clone();
    let dropped = w.replay(body).await;
    assert_eq!(rule(&dropped, "cpu.high")["draft"], 0);
    assert_eq!(
        rule(&dropped, "cpu.high")["noLongerMatched"],
        (0..EVENTS).filter(|&i| !is_disk(i)).count()
    );
    let applied = w
        .app
        .post(
            "/notifications/rules/batch",
            &json!({"rules": only_disk, "expectedRulesVersion": dropped["rulesVersion"]})
                .to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(applied.json["deleted"], json!(["cpu.high"]));
    let keys: BTreeSet<String> = w
        .app
        .get("/notifications/rules")
        .await
        .expect(StatusCode::OK)
        .json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, BTreeSet::from(["disk.full".to_owned()]));
}

#[tokio::test]
async fn applying_the_replayed_draft_is_refused_once_the_rules_moved_then_leaves_no_diff_embedded()
{
    applying_the_replayed_draft_is_refused_once_the_rules_moved_then_leaves_no_diff(embedded())
        .await;
}

#[tokio::test]
async fn replay_and_apply_refuse_bad_windows_and_drafts_with_their_field() {
    let w = replay_world(embedded()).await;
    let ok = w.narrowed();
    let ch = w.incidents.clone();
    let now = Utc::now();
    let cases = [
        (
            json!({"rules": ok, "since": w.at(10), "until": w.at(9)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "until",
        ),
        (
            json!({"rules": ok, "since": rfc(now - Duration::days(8)), "until": rfc(now)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "until",
        ),
        (
            json!({"rules": ok, "since": rfc(now - Duration::days(31)), "until": rfc(now - Duration::days(30))}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "since",
        ),
        (
            json!({"rules": ok, "since": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "since",
        ),
        (
            json!({"rules": ok, "since": w.at(0), "until": "2026-13-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "until",
        ),
        (json!({"rules": ok}), StatusCode::BAD_REQUEST, "since"),
        (
            json!({"rules": ok, "since": w.at(0), "from": w.at(0)}),
            StatusCode::BAD_REQUEST,
            "from",
        ),
        (
            json!({"rules": ok, "since": w.at(0), "limit": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            json!({"rules": ok, "since": w.at(0), "limit": 10001}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            json!({"rules": ok, "since": w.at(0), "examples": 101}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "examples",
        ),
        (
            json!({"rules": ok, "since": w.at(0), "resumeFrom": "nonsense"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resumeFrom",
        ),
        (
            json!({"rules": ok, "since": w.at(100), "until": w.at(200), "resumeFrom": "0000000000001#evt-000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resumeFrom",
        ),
        (
            json!({"since": w.at(0), "rules": [
                {"key": "ok", "channelIds": [ch]},
                {"key": "bad", "channelIds": [ch],
                 "match": {"all": [{"field": "type", "op": "equals", "value": "x"}]}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[1].match.all[0].op",
        ),
        (
            json!({"since": w.at(0), "rules": [
                {"key": "x", "channelIds": ["0190aaaa-0000-7000-8000-000000000000"]}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[0].channelIds[0]",
        ),
        (
            json!({"since": w.at(0), "rules": [
                {"key": "x", "channelIds": [ch]}, {"key": "x", "channelIds": [ch]}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[1].key",
        ),
        (
            json!({"since": w.at(0), "rules": [{"key": "x", "channelIds": [ch], "colour": 1}]}),
            StatusCode::BAD_REQUEST,
            "rules[0].colour",
        ),
    ];
    for (body, status, field) in cases {
        let a = w
            .app
            .post("/notifications/rules/replay", &body.to_string())
            .await
            .expect_error(status);
        assert_eq!(a.field(), Some(field), "{body}: {}", a.text);
    }

    let too_many: Vec<Value> = (0..100)
        .map(|i| json!({"key": format!("r{i}"), "channelIds": [ch]}))
        .collect();
    let batch_cases = [
        (
            json!({"rules": ok}),
            StatusCode::BAD_REQUEST,
            "expectedRulesVersion",
        ),
        (
            json!({"rules": [{"key": "x", "channelIds": [ch], "match": {"not": 1}}], "expectedRulesVersion": 2}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[0].match.not",
        ),
        (
            json!({"rules": too_many, "expectedRulesVersion": 2}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules",
        ),
    ];
    for (body, status, field) in batch_cases {
        let a = w
            .app
            .post("/notifications/rules/batch", &body.to_string())
            .await
            .expect_error(status);
        assert_eq!(a.field(), Some(field), "{body}: {}", a.text);
    }
    let rules = w
        .app
        .get("/notifications/rules")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        rules.json["items"].as_array().unwrap().len(),
        2,
        "nothing written"
    );
}

/// Before any rule write the version is 0 (no version item): the first apply creates it.
async fn a_first_rule_set_is_applied_against_version_zero_once(store: Arc<dyn Store>) {
    let app = TestApp::local_over(store).await;
    let ch = app
        .channel(r#"{"kind":"webhook","name":"incidents","config":{"url":"http://127.0.0.1:9/hook","format":"generic"}}"#)
        .await;
    let since = rfc(Utc::now() - Duration::hours(1));
    let draft = json!([{"key": "disk.full", "channelIds": [ch]}]);
    let a = app
        .post(
            "/notifications/rules/replay",
            &json!({"rules": draft, "since": since}).to_string(),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(a.json["rulesVersion"], 0);
    assert_eq!(a.json["eventsScanned"], 0);
    let apply = json!({"rules": draft, "expectedRulesVersion": 0}).to_string();
    let applied = app
        .post("/notifications/rules/batch", &apply)
        .await
        .expect(StatusCode::OK);
    assert_eq!(applied.json["rulesVersion"], 1);
    let other =
        json!({"rules": [{"key": "cpu.high", "channelIds": [ch]}], "expectedRulesVersion": 0});
    let again = app
        .post("/notifications/rules/batch", &other.to_string())
        .await
        .expect_error(StatusCode::CONFLICT);
    assert_eq!(again.code(), Some("rules_changed"));
    let rules = app.get("/notifications/rules").await.expect(StatusCode::OK);
    assert_eq!(rules.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(rules.json["items"][0]["key"], "disk.full");
}

#[tokio::test]
async fn a_first_rule_set_is_applied_against_version_zero_once_embedded() {
    a_first_rule_set_is_applied_against_version_zero_once(embedded()).await;
}

#[cfg(feature = "lambda")]
mod over_dynamodb {
    use super::*;

    async fn dynamodb() -> Arc<dyn Store> {
        use herald_shared::store::dynamodb::{DynamoStore, create_table};
        let config = herald_testing::emulator::sdk_config().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let table = format!("herald-replay-{}", uuid::Uuid::new_v4().simple());
        create_table(&client, &table)
            .await
            .expect("create table on the emulator");
        Arc::new(DynamoStore::new(client, &table))
    }

    #[tokio::test]
    async fn over_dynamodb_a_draft_that_narrows_one_rule_lists_exactly_the_events_that_change() {
        a_draft_that_narrows_one_rule_lists_exactly_the_events_that_change(dynamodb().await).await;
    }

    #[tokio::test]
    async fn over_dynamodb_a_first_rule_set_is_applied_against_version_zero_once() {
        a_first_rule_set_is_applied_against_version_zero_once(dynamodb().await).await;
    }

    #[tokio::test]
    async fn over_dynamodb_applying_the_replayed_draft_is_refused_once_the_rules_moved_then_leaves_no_diff()
     {
        applying_the_replayed_draft_is_refused_once_the_rules_moved_then_leaves_no_diff(
            dynamodb().await,
        )
        .await;
    }
}
