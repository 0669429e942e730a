//! A rule created a moment ago routes the very next event under `herald serve`: with a rules
//! cache of 0 s (`--rules-cache-seconds`, `HERALD_RULES_CACHE_SECONDS`) because nothing is
//! cached, and with an hour's because the API tells the cache of each change.

use std::time::Duration;

use herald_testing::{Kind, Receiver};
use serde_json::json;

use super::Herald;

#[tokio::test]
async fn a_rules_cache_of_zero_seconds_routes_with_a_rule_created_a_moment_ago() {
    routes_with_each_rule_created_a_moment_ago("0").await;
}

#[tokio::test]
async fn a_rules_cache_of_an_hour_routes_with_a_rule_created_a_moment_ago() {
    routes_with_each_rule_created_a_moment_ago("3600").await;
}

async fn routes_with_each_rule_created_a_moment_ago(cache_seconds: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_RULES_CACHE_SECONDS", cache_seconds)],
        &["--allow-private-targets", "127.0.0.0/8"],
    );
    let slack = Receiver::start(Kind::Slack).await;
    let (status, channel) = herald
        .post(
            "/notifications/channels",
            json!({"kind": "slack", "name": "ops", "config": {"webhookUrl": format!("{}/services/T/B/x", slack.url)}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().expect("an id").to_owned();
    for (n, key) in ["deploy.started", "deploy.finished"]
        .into_iter()
        .enumerate()
    {
        // The first event loads the org's rules into the cache; the second rule is created
        // right after it, and its event must not be matched against the cached set.
        let (status, rule) = herald
            .post(
                "/notifications/rules",
                json!({"key": key, "channelIds": [channel_id]}),
            )
            .await;
        assert_eq!(status, 201, "{rule}");
        let (status, accepted) = herald
            .post(
                "/events",
                json!({"type": key, "module": "ops", "properties": {"service": "api"}}),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        slack.wait_for(n + 1, Duration::from_secs(20)).await;
    }
}
