//! `POST /events`: what the API refuses before answering 202, so that an accepted event is one
//! the pipeline can process.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

fn nested(levels: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

#[tokio::test]
async fn properties_nested_125_deep_are_refused_naming_properties() {
    let app = TestApp::local().await;
    let body = json!({"type": "email.bounced", "module": "email", "properties": nested(125)});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("properties"), "{}", a.text);
    assert!(a.message().contains("32 levels"), "{}", a.text);
}

#[tokio::test]
async fn properties_at_the_depth_limit_are_accepted() {
    let app = TestApp::local().await;
    // `properties` itself is level 1: 31 more objects and a string leaf.
    let body = json!({"type": "email.bounced", "module": "email", "properties": nested(32)});
    app.post("/events", &body.to_string())
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_too_deep_entry_of_a_batch_is_refused_alone_naming_its_index() {
    let app = TestApp::local().await;
    let ok = json!({"type": "email.bounced", "module": "email", "properties": {"to": "a@b.c"}});
    let deep = json!({"type": "email.bounced", "module": "email", "properties": nested(60)});
    let body = json!([ok, ok, ok, deep, ok]);
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        (a.json["accepted"].clone(), a.json["rejected"].clone()),
        (json!(4), json!(1))
    );
    let refused = &a.json["items"][3];
    assert!(refused["id"].is_null(), "{}", a.text);
    assert_eq!(refused["error"]["code"], "invalid_body", "{}", a.text);
    assert_eq!(refused["error"]["field"], "[3].properties", "{}", a.text);
}

#[tokio::test]
async fn properties_over_64_kb_are_refused_naming_properties() {
    let app = TestApp::local().await;
    let body = json!({"type": "t", "module": "m", "properties": {"blob": "x".repeat(70 * 1024)}});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("properties"), "{}", a.text);
}

#[tokio::test]
async fn an_unknown_field_of_an_event_is_refused_by_name() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/events",
            r#"{"type":"email.bounced","module":"email","propertes":{"to":"x"}}"#,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), Some("invalid_body"));
    assert_eq!(a.field(), Some("propertes"), "{}", a.text);
}

#[tokio::test]
async fn an_unknown_field_in_a_batch_is_that_entrys_error() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/events",
            r#"[{"type":"a","module":"m"},{"type":"b","module":"m","userid":"u1"}]"#,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert!(a.json["items"][0]["id"].is_string(), "{}", a.text);
    assert_eq!(
        a.json["items"][1]["error"]["code"], "invalid_body",
        "{}",
        a.text
    );
    assert_eq!(
        a.json["items"][1]["error"]["field"], "[1].userid",
        "{}",
        a.text
    );
}

#[tokio::test]
async fn an_unknown_field_of_a_recipient_is_refused() {
    let app = TestApp::local().await;
    let a = app
        .post(
            "/events",
            r#"{"type":"t","module":"m","recipients":["bob",{"userId":"alice","emial":"a@x.io"}]}"#,
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("recipients[1]"), "{}", a.text);
    assert!(a.message().contains("emial"), "{}", a.text);
}

#[tokio::test]
async fn the_recipient_cap_is_checked_before_any_recipient_is_read() {
    let app = TestApp::local().await;
    // 1,001 entries whose last is not a valid user id: the cap answers, not entry 1000.
    let mut recipients: Vec<Value> = (0..1000).map(|i| json!(format!("user-{i}"))).collect();
    recipients.push(json!(""));
    let body = json!({"type": "t", "module": "m", "recipients": recipients});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("recipients"), "{}", a.text);
    assert!(a.message().contains("at most 1000"), "{}", a.text);
}

#[tokio::test]
async fn thirty_thousand_duplicate_recipients_are_refused_by_the_cap() {
    let app = TestApp::local().await;
    let recipients: Vec<Value> = (0..30_000).map(|i| json!(format!("u{}", i % 7))).collect();
    let body = json!({"type": "t", "module": "m", "recipients": recipients});
    let a = app
        .post("/events", &body.to_string())
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.field(), Some("recipients"), "{}", a.text);
}

#[tokio::test]
async fn duplicate_recipients_under_the_cap_are_kept_once() {
    let app = TestApp::local().await;
    let body = json!({"type": "t", "module": "m", "userId": "alice",
        "recipients": ["bob", "alice", {"userId": "bob", "email": "b@x.io"}, "carol"]});
    app.post("/events", &body.to_string())
        .await
        .expect(StatusCode::ACCEPTED);
}

mod admission {
    //! Admission control: beyond the org's ingest limit or backlog bound, `POST /events`
    //! answers 429 with `Retry-After`, and nothing of the refused request is accepted.

    use std::sync::Arc;

    use herald_core::admission::IngestLimit;
    use herald_core::domain::OrgId;
    use herald_shared::admission::{
        Admission, AdmissionError, Backlog, BacklogBound, MemoryLimiter, StoreLimiter,
    };
    use http::StatusCode;
    use serde_json::{Value, json};

    use crate::support::TestApp;

    fn event(n: usize) -> Value {
        json!({"type": "disk.full", "module": "ops", "properties": {"n": n}})
    }

    fn batch(n: usize) -> String {
        Value::Array((0..n).map(event).collect()).to_string()
    }

    /// An ingest limit so slow that no test waits it out: 1 event per 1000 s.
    fn limited(burst: u32) -> Admission {
        Admission {
            ingest: Some(Arc::new(MemoryLimiter::new(
                IngestLimit::new(0.001, burst).expect("limit"),
            ))),
            backlog: None,
        }
    }

    fn retry_after(a: &crate::support::Answer) -> u64 {
        a.headers
            .get(http::header::RETRY_AFTER)
            .unwrap_or_else(|| panic!("no Retry-After: {}", a.text))
            .to_str()
            .expect("ascii")
            .parse()
            .expect("whole seconds")
    }

    #[tokio::test]
    async fn over_the_ingest_limit_a_batch_gets_429_with_retry_after_naming_the_limit() {
        let (app, bus) = TestApp::with_admission(limited(150)).await;
        app.post("/events", &batch(100))
            .await
            .expect(StatusCode::ACCEPTED);
        let a = app
            .post("/events", &batch(100))
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.code(), Some("rate_limited"), "{}", a.text);
        assert!(
            a.message()
                .contains("ingest limit (0.001 events per second, bursts of 150)"),
            "{}",
            a.text
        );
        assert!(
            a.message()
                .contains("none of the 100 events of this batch were accepted"),
            "{}",
            a.text
        );
        // 50 events of room are missing at 1 per 1000 s.
        assert_eq!(retry_after(&a), 50_000);
        assert_eq!(bus.orgs().len(), 100, "the refused batch published nothing");
        // What still fits goes.
        app.post("/events", &batch(50))
            .await
            .expect(StatusCode::ACCEPTED);
        assert_eq!(bus.orgs().len(), 150);
    }

    #[tokio::test]
    async fn a_single_event_over_the_limit_gets_429_too() {
        let (app, bus) = TestApp::with_admission(limited(1)).await;
        app.post("/events", &event(0).to_string())
            .await
            .expect(StatusCode::ACCEPTED);
        let a = app
            .post("/events", &event(1).to_string())
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.code(), Some("rate_limited"));
        assert!(
            a.message().contains("the event was not accepted"),
            "{}",
            a.text
        );
        assert!(retry_after(&a) >= 1);
        assert_eq!(bus.orgs().len(), 1);
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_burst_is_refused_with_a_message_saying_to_split_it() {
        let (app, bus) = TestApp::with_admission(limited(10)).await;
        let a = app
            .post("/events", &batch(11))
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.code(), Some("rate_limited"));
        assert!(
            a.message()
                .contains("a batch of 11 events never fits this org's ingest limit"),
            "{}",
            a.text
        );
        assert!(
            a.message().contains("send at most 10 events per request"),
            "{}",
            a.text
        );
        assert!(bus.orgs().is_empty());
        // The refusal took nothing: the whole burst is still there.
        app.post("/events", &batch(10))
            .await
            .expect(StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn invalid_entries_of_a_batch_take_no_room() {
        let (app, bus) = TestApp::with_admission(limited(2)).await;
        let body = json!([event(0), {"type": "t"}, event(1)]).to_string();
        let a = app
            .post("/events", &body)
            .await
            .expect(StatusCode::ACCEPTED);
        assert_eq!(a.json["accepted"], 2, "{}", a.text);
        assert_eq!(bus.orgs().len(), 2);
    }

    #[tokio::test]
    async fn another_org_is_unaffected_by_an_org_over_its_limit() {
        let (app, bus) = TestApp::with_admission(limited(100)).await;
        app.post("/events", &batch(100))
            .await
            .expect(StatusCode::ACCEPTED);
        app.post("/events", &batch(1))
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS);
        let (other_org, other_key) = app.new_org("Globex").await;
        let other = TestApp {
            org_id: other_org.clone(),
            api_key: other_key,
            ..app.clone()
        };
        other
            .post("/events", &batch(100))
            .await
            .expect(StatusCode::ACCEPTED);
        let orgs = bus.orgs();
        assert_eq!(orgs.iter().filter(|o| **o == other_org).count(), 100);
        assert_eq!(orgs.iter().filter(|o| **o == app.org_id).count(), 100);
    }

    #[tokio::test]
    async fn the_store_backed_limit_is_shared_by_api_instances_over_one_store() {
        // Two routers over one store, as two Lambda instances over one table.
        let limit = IngestLimit::new(0.001, 100).expect("limit");
        let (probe, _) = TestApp::with_admission(Admission::default()).await;
        let limiter = Arc::new(StoreLimiter::new(probe.store.clone(), limit));
        let instance = || {
            TestApp::over_store_with_admission(
                probe.store.clone(),
                Admission {
                    ingest: Some(limiter.clone()),
                    backlog: None,
                },
            )
        };
        let (a, bus_a) = instance().await;
        let (b, bus_b) = instance().await;
        let b = TestApp {
            org_id: a.org_id.clone(),
            api_key: a.api_key.clone(),
            ..b
        };
        a.post("/events", &batch(60))
            .await
            .expect(StatusCode::ACCEPTED);
        let refused = b
            .post("/events", &batch(60))
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), Some("rate_limited"));
        b.post("/events", &batch(40))
            .await
            .expect(StatusCode::ACCEPTED);
        assert_eq!((bus_a.orgs().len(), bus_b.orgs().len()), (60, 40));
    }

    /// A backlog of a fixed depth for one org.
    #[derive(Debug)]
    struct Deep {
        org: OrgId,
        depth: u64,
    }

    #[async_trait::async_trait]
    impl Backlog for Deep {
        async fn depth(&self, org: OrgId) -> Result<u64, AdmissionError> {
            Ok(if org == self.org { self.depth } else { 0 })
        }
    }

    #[tokio::test]
    async fn an_org_at_its_backlog_bound_gets_429_backlog_full_and_others_do_not() {
        let (probe, _) = TestApp::with_admission(Admission::default()).await;
        let (app, bus) = TestApp::over_store_with_admission(
            probe.store.clone(),
            Admission {
                ingest: None,
                backlog: Some(BacklogBound {
                    backlog: Arc::new(Deep {
                        org: probe.org_id.parse().expect("org id"),
                        depth: 1_000,
                    }),
                    max: 1_000,
                }),
            },
        )
        .await;
        let full = TestApp {
            org_id: probe.org_id.clone(),
            api_key: probe.api_key.clone(),
            ..app.clone()
        };
        let a = full
            .post("/events", &batch(3))
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.code(), Some("backlog_full"), "{}", a.text);
        assert!(
            a.message()
                .contains("1000 messages waiting for delivery, at its backlog bound of 1000"),
            "{}",
            a.text
        );
        assert_eq!(retry_after(&a), 5);
        assert!(bus.orgs().is_empty());
        app.post("/events", &batch(3))
            .await
            .expect(StatusCode::ACCEPTED);
        assert_eq!(bus.orgs().len(), 3);
    }
}
