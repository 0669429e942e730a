//! Channels as tests need them.

use chrono::Utc;
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelHealth, ChannelName};
use herald_core::domain::{ChannelId, OrgId};

/// A fresh, enabled channel of `org` delivering with `config`, named after its kind, with no
/// frequency cap and no rate limit of its own, created now. Not stored: tests that need it in a
/// store create it there (`repo::Channels::create`).
///
/// # Panics
/// Never: every kind's name is a valid channel name.
pub fn channel(org: OrgId, config: ChannelConfig) -> Channel {
    let now = Utc::now();
    Channel {
        id: ChannelId::new(),
        org_id: org,
        name: ChannelName::parse(config.kind().as_str()).expect("a kind is a valid name"),
        config,
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: now,
        updated_at: now,
    }
}

/// A Slack channel of `org` (an incoming webhook on `hooks.slack.test`, which nothing answers):
/// [`channel`] with that config.
///
/// # Panics
/// Never: the config is valid.
pub fn slack(org: OrgId) -> Channel {
    let config = serde_json::from_value(serde_json::json!({
        "kind": "slack", "webhookUrl": "https://hooks.slack.test/services/T/B/x"
    }))
    .expect("a valid Slack config");
    channel(org, config)
}
