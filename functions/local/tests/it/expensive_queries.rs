//! The most expensive log queries a client can ask the real `herald serve` for — the outside
//! run's stalling ones (a span back to year 1 or −100000) and the worst still allowed (a filter
//! nobody matches over the longest span, every page followed) — run many at once while another
//! request is answered in time: each request is a bounded amount of work.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Herald;

/// Worst-case queries running at once.
const HEAVY: usize = 8;
/// Far above a normal answer (milliseconds), far below the 82 s the outside run measured.
const ANSWERED_WITHIN: Duration = Duration::from_secs(10);

/// Follows `nextCursor` from `path` to the end; answers the pages read.
async fn walk(herald: &Herald, path: &str) -> usize {
    let mut cursor: Option<String> = None;
    for page in 1..=20 {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let (status, body) = herald.get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return page,
        }
    }
    panic!("{path}: more than 20 pages for a span of 366 days")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worst_case_log_queries_leave_other_requests_answered() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = std::sync::Arc::new(Herald::start(&dir.path().join("data"), &[]));

    // The outside run's stalling queries are refused at once, naming the parameter.
    for query in [
        "recipient=nobody&from=0001-01-01&to=9999-12-31",
        "from=-100000-01-01&to=2026-12-31",
        "to=-262143-01-01",
    ] {
        let (status, body) = herald.get(&format!("/notifications/logs?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            matches!(body["error"]["field"].as_str(), Some("from" | "to")),
            "{query}: {body}"
        );
    }

    let from = (chrono::Utc::now() - chrono::Duration::days(365)).format("%Y-%m-%d");
    let path = format!("/notifications/logs?recipient=nobody&from={from}");
    let heavy: Vec<_> = (0..HEAVY)
        .map(|_| {
            let herald = std::sync::Arc::clone(&herald);
            let path = path.clone();
            tokio::spawn(async move { walk(&herald, &path).await })
        })
        .collect();

    // Meanwhile, another request is answered in time, again and again.
    for _ in 0..5 {
        let start = Instant::now();
        let (status, body): (u16, Value) = herald.get("/notifications/channels").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            start.elapsed() < ANSWERED_WITHIN,
            "GET /notifications/channels took {:?} beside {HEAVY} worst-case log queries",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for walker in heavy {
        let pages = walker.await.expect("the walk ends");
        assert!(
            pages >= 2,
            "a year is read in bounded pages, not one: {pages}"
        );
    }
}
