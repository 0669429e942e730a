use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn following_next_cursor_lists_every_channel_exactly_once_in_order() {
    let app = TestApp::local().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.in_app_channel(&format!("feed-{i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/notifications/channels?limit=3&cursor={c}"),
            None => "/notifications/channels?limit=3".to_owned(),
        };
        let page = app.get(&q).await.expect(StatusCode::OK);
        pages += 1;
        let items = page.json["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_owned()),
        );
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, created, "each channel once, oldest first");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 7);
}

#[tokio::test]
async fn following_next_cursor_lists_every_rule_exactly_once() {
    let app = TestApp::local().await;
    let channel = app.in_app_channel("feed").await;
    let mut keys = BTreeSet::new();
    for i in 0..5 {
        let key = format!("rule.{i}");
        app.post(
            "/notifications/rules",
            &json!({"key": key, "channelIds": [channel]}).to_string(),
        )
        .await
        .expect(StatusCode::CREATED);
        keys.insert(key);
    }
    let first = app
        .get("/notifications/rules?limit=2")
        .await
        .expect(StatusCode::OK);
    let mut seen: Vec<String> = first.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["key"].as_str().expect("key").to_owned())
        .collect();
    let mut next = first.json["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = next {
        let page = app
            .get(&format!("/notifications/rules?limit=2&cursor={c}"))
            .await
            .expect(StatusCode::OK);
        seen.extend(
            page.json["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| r["key"].as_str().expect("key").to_owned()),
        );
        next = page.json["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), keys);
}

#[tokio::test]
async fn a_bad_cursor_is_a_400_naming_cursor() {
    let app = TestApp::local().await;
    let a = app
        .get("/notifications/channels?cursor=not-a-cursor")
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("cursor"));
}

#[tokio::test]
async fn a_cursor_from_another_list_is_a_400() {
    let app = TestApp::local().await;
    for i in 0..3 {
        app.in_app_channel(&format!("c{i}")).await;
    }
    let page = app
        .get("/notifications/channels?limit=1")
        .await
        .expect(StatusCode::OK);
    let cursor = page.json["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let a = app
        .get(&format!("/notifications/rules?cursor={cursor}"))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("cursor"));
    let (other_org, other_key) = app.new_org("Other").await;
    let other = TestApp {
        org_id: other_org,
        api_key: other_key,
        ..app.clone()
    };
    let a = other
        .get(&format!("/notifications/channels?cursor={cursor}"))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert_eq!(a.field(), Some("cursor"));
}

#[tokio::test]
async fn a_bad_limit_is_a_400_naming_limit() {
    let app = TestApp::local().await;
    for q in ["limit=0", "limit=101", "limit=ten"] {
        let a = app
            .get(&format!("/notifications/channels?{q}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST);
        assert_eq!(a.field(), Some("limit"), "{q}");
    }
}
