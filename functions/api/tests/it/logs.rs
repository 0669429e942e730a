//! The delivery log's bounds: a span of at most 366 days, a bounded number of day partitions per
//! page (a cursor goes on), and dates at chrono's edges refused with the parameter at fault.

use chrono::{Duration, Utc};
use http::StatusCode;

use crate::support::TestApp;

/// A test delivery to `alice` in an in-app channel, logged now.
async fn one_delivery(app: &TestApp) -> String {
    let id = app.in_app_channel("feed").await;
    let a = app
        .post(
            &format!("/notifications/channels/{id}/test"),
            r#"{"to":"alice"}"#,
        )
        .await
        .expect(StatusCode::OK);
    a.json["logId"].as_str().expect("a log id").to_owned()
}

#[tokio::test]
async fn a_log_or_stats_query_over_more_than_366_days_is_refused_naming_from() {
    let app = TestApp::local().await;
    for query in [
        "recipient=nobody&from=1970-01-01&to=9999-12-31",
        "from=1970-01-01&to=2026-12-31",
        "from=2025-01-01T00:00:00Z&to=2026-01-02T00:00:01Z",
        // No `to`: now.
        "from=2000-01-01",
    ] {
        for path in [
            "/notifications/logs".to_owned(),
            {
                let id = app.in_app_channel(&format!("c{}", query.len())).await;
                format!("/notifications/channels/{id}/logs")
            },
            "/notifications/logs/stats".to_owned(),
        ] {
            let a = app
                .get(&format!("{path}?{query}"))
                .await
                .expect_error(StatusCode::BAD_REQUEST);
            assert_eq!(a.field(), Some("from"), "{query}: {}", a.text);
            assert!(a.message().contains("366"), "{}", a.text);
        }
    }
    // 366 days exactly is one query.
    app.get("/notifications/logs?from=2025-01-01&to=2026-01-02")
        .await
        .expect(StatusCode::OK);
    app.get("/notifications/logs/stats?from=2025-01-01&to=2026-01-01")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_rare_filter_over_a_year_answers_short_pages_with_a_cursor_that_goes_on() {
    let app = TestApp::local().await;
    let log_id = one_delivery(&app).await;
    // The delivery (today) is the last day of the span the scan reaches, newest first.
    let to = (Utc::now() + Duration::days(330)).format("%Y-%m-%d");
    let from = (Utc::now() - Duration::days(30)).format("%Y-%m-%d");
    let first = format!("/notifications/logs?from={from}&to={to}");

    let mut path = first.clone();
    let mut pages = 0;
    let found = loop {
        pages += 1;
        assert!(pages <= 20, "more pages than the span has months");
        let a = app.get(&path).await.expect(StatusCode::OK);
        if let Some(item) = a.json["items"].as_array().and_then(|i| i.first()) {
            break item["id"].as_str().unwrap().to_owned();
        }
        let cursor = a.json["nextCursor"]
            .as_str()
            .unwrap_or_else(|| panic!("an empty page ends the scan early: {}", a.text));
        path = format!("{first}&cursor={cursor}");
    };
    assert_eq!(found, log_id);
    assert!(
        pages >= 10,
        "330 empty days need more than one page of at most a month each: {pages}"
    );

    // A filter nobody matches walks the whole span in bounded pages, then ends.
    let rare = format!("{first}&recipient=nobody");
    let mut path = rare.clone();
    for page in 1.. {
        assert!(page <= 20, "the scan of a year does not end");
        let a = app.get(&path).await.expect(StatusCode::OK);
        assert_eq!(a.json["items"], serde_json::json!([]), "{}", a.text);
        match a.json["nextCursor"].as_str() {
            Some(cursor) => path = format!("{rare}&cursor={cursor}"),
            None => {
                assert!(page >= 12, "one page per month or less: {page}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_cursor_outside_the_span_asked_for_is_refused() {
    let app = TestApp::local().await;
    let first = "/notifications/logs?recipient=nobody&from=2025-01-01&to=2026-01-01";
    let a = app.get(first).await.expect(StatusCode::OK);
    let cursor = a.json["nextCursor"].as_str().expect("a cursor").to_owned();
    // The same cursor with a span it does not belong to.
    let a = app
        .get(&format!(
            "/notifications/logs?recipient=nobody&from=2024-01-01&to=2024-06-01&cursor={cursor}"
        ))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("cursor"));
}

#[tokio::test]
async fn dates_at_the_edges_of_the_calendar_are_a_400_naming_the_parameter() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let extreme = [
        "-262143-01-01",
        "-262143-01-03",
        "+262142-12-31",
        "262142-12-31",
        "-100000-01-01",
        "0000-01-01",
        "1969-12-31",
        "-262143-01-01T00:00:00Z",
        "+262142-12-31T23:59:59Z",
    ];
    for path in [
        "/notifications/logs".to_owned(),
        format!("/notifications/channels/{channel}/logs"),
        "/notifications/logs/stats".to_owned(),
    ] {
        for value in extreme {
            for field in ["from", "to"] {
                let query = format!("{path}?{field}={}", value.replace('+', "%2B"));
                let a = app.get(&query).await.expect_error(StatusCode::BAD_REQUEST);
                assert_eq!(a.field(), Some(field), "{query}: {}", a.text);
            }
        }
    }
    // The edges themselves are dates like any other.
    app.get("/notifications/logs?from=9999-12-01&to=9999-12-31")
        .await
        .expect(StatusCode::OK);
    app.get("/notifications/logs?to=1970-01-02")
        .await
        .expect(StatusCode::OK);
    app.get("/notifications/logs/stats?to=1970-01-02")
        .await
        .expect(StatusCode::OK);
    app.get("/notifications/logs/stats?from=9999-12-30&to=9999-12-31")
        .await
        .expect(StatusCode::OK);
}
