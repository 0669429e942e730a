//! Every single-table key Herald writes is built here, and documented in `docs/dynamodb.md`.
//! Entity × PK × SK × GSI1.

use chrono::{DateTime, Utc};

use super::Key;
use herald_core::delivery::caps;
use herald_core::domain::api_key::KeyHash;
use herald_core::domain::channel::FrequencyCap;
use herald_core::domain::{ApiKeyId, ChannelId, DeliveryId, EventId, OrgId, RuleKey};

// ---- Orgs, API keys, channels, rules (repositories in `crate::repo`) -------------------------

/// Entity types of the items below, as stored in `entityType`.
pub mod entity {
    pub const ORG: &str = "org";
    pub const API_KEY: &str = "apiKey";
    pub const API_KEY_BY_HASH: &str = "apiKeyByHash";
    pub const CHANNEL: &str = "channel";
    pub const RULE: &str = "rule";
    pub const RULES_VERSION: &str = "rulesVersion";
}

/// Sort-key prefix of an org's API keys.
pub const API_KEY_PREFIX: &str = "APIKEY#";
/// Sort-key prefix of an org's channels.
pub const CHANNEL_PREFIX: &str = "CHANNEL#";
/// Sort-key prefix of an org's rules.
pub const RULE_PREFIX: &str = "RULE#";
/// The integer attribute of the rules-version item.
pub const RULES_VERSION_ATTR: &str = "version";

/// `ORG#<org>`: the partition holding an org and everything it owns that is listed per org.
pub fn org_pk(org: &OrgId) -> String {
    format!("ORG#{org}")
}

/// The org itself: `ORG#<org>` / `ORG`.
pub fn org(org: &OrgId) -> Key {
    Key::new(org_pk(org), "ORG")
}

/// An API key as listed under its org: `ORG#<org>` / `APIKEY#<id>`.
pub fn api_key(org: &OrgId, id: &ApiKeyId) -> Key {
    Key::new(org_pk(org), format!("{API_KEY_PREFIX}{id}"))
}

/// An API key found by the SHA-256 of its secret: `APIKEY#<hash>` / `APIKEY`.
pub fn api_key_by_hash(hash: &KeyHash) -> Key {
    Key::new(format!("{API_KEY_PREFIX}{}", hash.as_str()), "APIKEY")
}

/// A channel: `ORG#<org>` / `CHANNEL#<id>`.
pub fn channel(org: &OrgId, id: &ChannelId) -> Key {
    Key::new(org_pk(org), format!("{CHANNEL_PREFIX}{id}"))
}

/// A rule: `ORG#<org>` / `RULE#<key>`.
pub fn rule(org: &OrgId, key: &RuleKey) -> Key {
    Key::new(org_pk(org), format!("{RULE_PREFIX}{key}"))
}

/// The org's rules version, bumped by every rule write: `ORG#<org>` / `RULESVERSION`.
pub fn rules_version(org: &OrgId) -> Key {
    Key::new(org_pk(org), "RULESVERSION")
}

// ---- Pipeline: events and deliveries -------------------------------------------------------

/// Event record (ingest idempotency, "did this event arrive?"): one item per event.
pub fn event(org: OrgId, event: &EventId) -> Key {
    Key::new(format!("ORG#{org}#EVT#{event}"), "EVT")
}

/// The UTC day a delivery belongs to: the timestamp of its UUIDv7.
pub fn delivery_day(id: DeliveryId) -> String {
    let millis = id
        .as_uuid()
        .get_timestamp()
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            i64::try_from(secs).unwrap_or(0) * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or(0);
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Partition of one org's deliveries on one UTC day (`yyyy-mm-dd`): logs are read by time
/// range, a day partition at a time, newest first, and no partition grows without bound.
pub fn deliveries_of_day(org: OrgId, day: &str) -> String {
    format!("ORG#{org}#DLV#{day}")
}

/// A delivery, with its attempts.
pub fn delivery(org: OrgId, id: DeliveryId) -> Key {
    Key::new(
        deliveries_of_day(org, &delivery_day(id)),
        format!("DLV#{id}"),
    )
}

/// GSI1 partition of one channel's deliveries: the per-channel dispatch log.
pub fn channel_deliveries(org: OrgId, channel: ChannelId) -> String {
    format!("ORG#{org}#CH#{channel}#DLV")
}

/// GSI1 key of a delivery in its channel's log.
pub fn delivery_in_channel(org: OrgId, channel: ChannelId, id: DeliveryId) -> Key {
    Key::new(channel_deliveries(org, channel), format!("DLV#{id}"))
}

// ---- Feeds: items, per-user state, live connections (`crate::repo::feeds`) -----------------

/// Entity types of the feed items below.
pub mod feed_entity {
    pub const FEED_ITEM: &str = "feedItem";
    pub const FEED_STATE: &str = "feedState";
    pub const FEED_CONNECTION: &str = "feedConnection";
    pub const FEED_CONNECTION_BY_ID: &str = "feedConnectionById";
}

/// Sort-key prefix of a user's feed items.
pub const FEED_ITEM_PREFIX: &str = "ITEM#";
/// Sort-key prefix of a user's live connections.
pub const FEED_CONNECTION_PREFIX: &str = "CONN#";
/// GSI1 sort-key prefix of a feed item in its user's change log.
pub const FEED_SEQ_PREFIX: &str = "SEQ#";

/// `ORG#<org>#USER#<user>#FEED`: one user's feed items and feed state.
pub fn feed_pk(org: &herald_core::domain::OrgId, user: &herald_core::domain::UserId) -> String {
    format!("ORG#{org}#USER#{user}#FEED")
}

/// A feed item: `ORG#<org>#USER#<user>#FEED` / `ITEM#<uuidv7>` (newest first when read descending).
pub fn feed_item(
    org: &herald_core::domain::OrgId,
    user: &herald_core::domain::UserId,
    id: &herald_core::domain::FeedItemId,
) -> Key {
    Key::new(feed_pk(org, user), format!("{FEED_ITEM_PREFIX}{id}"))
}

/// The user's feed counters (`unread`, `unseen`, `seq`): `ORG#<org>#USER#<user>#FEED` / `STATE`.
pub fn feed_state(org: &herald_core::domain::OrgId, user: &herald_core::domain::UserId) -> Key {
    Key::new(feed_pk(org, user), "STATE")
}

/// GSI1 partition of a user's feed items ordered by the seq of their last change.
pub fn feed_changes(
    org: &herald_core::domain::OrgId,
    user: &herald_core::domain::UserId,
) -> String {
    format!("ORG#{org}#USER#{user}#FEEDSEQ")
}

/// GSI1 key of a feed item changed at `seq`: `SEQ#<seq, 20 digits>#<item>`.
pub fn feed_item_change(
    org: &herald_core::domain::OrgId,
    user: &herald_core::domain::UserId,
    seq: u64,
    id: &herald_core::domain::FeedItemId,
) -> Key {
    Key::new(
        feed_changes(org, user),
        format!("{FEED_SEQ_PREFIX}{seq:020}#{id}"),
    )
}

/// `ORG#<org>#USER#<user>#CONN`: a user's open feed sockets (API Gateway), with a TTL.
pub fn feed_connections(
    org: &herald_core::domain::OrgId,
    user: &herald_core::domain::UserId,
) -> String {
    format!("ORG#{org}#USER#{user}#CONN")
}

/// One open feed socket: `ORG#<org>#USER#<user>#CONN` / `CONN#<connectionId>`.
pub fn feed_connection(
    org: &herald_core::domain::OrgId,
    user: &herald_core::domain::UserId,
    connection_id: &str,
) -> Key {
    Key::new(
        feed_connections(org, user),
        format!("{FEED_CONNECTION_PREFIX}{connection_id}"),
    )
}

/// The same socket found by its id alone (`$disconnect` knows nothing else):
/// `CONN#<connectionId>` / `CONN`.
pub fn feed_connection_by_id(connection_id: &str) -> Key {
    Key::new(format!("{FEED_CONNECTION_PREFIX}{connection_id}"), "CONN")
}

// ---- Frequency caps (the window arithmetic is `herald_core::delivery::caps`) ------------------

/// The entity type of a cap counter.
pub const CAP_COUNTER: &str = "capCounter";
/// The counter attribute of a cap counter.
pub const CAP_COUNT_ATTR: &str = "n";

/// The counter of (org, channel, user) in a window of `window_hours`:
/// `ORG#<org>#CAP#<channel>` / `W<hours>#<index>#U#<user>`. The window length is in the key
/// so a changed cap never reuses a counter of another window size; the user id (any printable
/// text) comes last so no two (window, user) pairs share a key.
pub fn cap_counter(
    org: OrgId,
    channel: ChannelId,
    user: &str,
    cap: FrequencyCap,
    window: &caps::Window,
) -> Key {
    Key::new(
        format!("ORG#{org}#CAP#{channel}"),
        format!("W{}#{}#U#{user}", cap.window_hours, window.index),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::delivery::caps::window;

    const DAY: FrequencyCap = FrequencyCap {
        per_user: 5,
        window_hours: 24,
    };

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    #[test]
    fn counters_differ_by_window_size_user_and_window() {
        let org = OrgId::new();
        let ch = ChannelId::new();
        let now = at("2026-05-01T12:00:00Z");
        let hour = FrequencyCap {
            per_user: 5,
            window_hours: 1,
        };
        let a = cap_counter(org, ch, "alice", DAY, &window(DAY, now));
        assert_ne!(a, cap_counter(org, ch, "bob", DAY, &window(DAY, now)));
        assert_ne!(a, cap_counter(org, ch, "alice", hour, &window(hour, now)));
        let tomorrow = now + chrono::Duration::days(1);
        assert_ne!(
            a,
            cap_counter(org, ch, "alice", DAY, &window(DAY, tomorrow))
        );
    }
}
