//! `herald serve` honours `--rules-cache-seconds` (`HERALD_RULES_CACHE_SECONDS`): with 0, a rule
//! created a moment ago routes the very next event.

use std::time::Duration;

use herald_testing::{Kind, Receiver};
use serde_json::json;

use super::Herald;

#[tokio::test]
async fn a_rules_cache_of_zero_seconds_routes_with_a_rule_created_a_moment_ago() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[("HERALD_RULES_CACHE_SECONDS", "0")],
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
