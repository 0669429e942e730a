//! Every single-table key Herald writes is built here, and every `entityType` it stores is named
//! here, documented in `docs/dynamodb.md` (entity × PK × SK × GSI1). The golden test at the end
//! pins each format: a change to a stored key shows up there first.

use chrono::{DateTime, NaiveDate, Utc};

use super::Key;
use herald_core::delivery::caps;
use herald_core::domain::api_key::KeyHash;
use herald_core::domain::channel::FrequencyCap;
use herald_core::domain::delivery::CapSlot;
use herald_core::domain::suppression::SuppressedAddress;
#[cfg(test)]
use herald_core::domain::suppression::SuppressionKind;
use herald_core::domain::{
    ApiKeyId, ChannelId, DeliveryId, EventId, FeedItemId, OrgId, RecoveryId, RuleKey, UserId,
};

// ---- Orgs, API keys, channels, rules (repositories in `crate::repo`) -------------------------

/// Every entity type, as stored in `entityType` (camelCase). Nothing reads `entityType` back to
/// decide anything: it labels items for people and for exports, so renaming one needs no
/// migration (items written before keep the old label; see `docs/dynamodb.md`).
pub mod entity {
    pub const ORG: &str = "org";
    pub const API_KEY: &str = "apiKey";
    pub const API_KEY_BY_HASH: &str = "apiKeyByHash";
    pub const CHANNEL: &str = "channel";
    pub const RULE: &str = "rule";
    pub const RULES_VERSION: &str = "rulesVersion";
    pub const USER: &str = "user";
    /// Written as `Event` before December 2026.
    pub const EVENT: &str = "event";
    /// An event in its org's by-time index (rule replay).
    pub const EVENT_INDEX: &str = "eventIndex";
    /// Written as `Delivery` before December 2026.
    pub const DELIVERY: &str = "delivery";
    pub const STATS: &str = "stats";
    pub const CAP_COUNTER: &str = "capCounter";
    pub const LANE: &str = "lane";
    pub const OUTBOX_MESSAGE: &str = "outboxMessage";
    pub const FEED_ITEM: &str = "feedItem";
    pub const FEED_STATE: &str = "feedState";
    pub const FEED_CONNECTION: &str = "feedConnection";
    pub const FEED_CONNECTION_BY_ID: &str = "feedConnectionById";
    pub const INGEST_BUCKET: &str = "ingestBucket";
    pub const ALERT: &str = "alert";
    pub const ALERT_COUNT: &str = "alertCount";
    pub const SILENCE: &str = "silence";
    pub const IDEMPOTENCY: &str = "idempotency";
    pub const RECOVERY: &str = "recovery";
    pub const RECOVERY_LOCK: &str = "recoveryLock";
    pub const ALERT_GROUP: &str = "alertGroup";
    pub const ALERT_GROUP_MEMBER: &str = "alertGroupMember";
    pub const SUPPRESSION: &str = "suppression";
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    pub const DIGEST: &str = "digest";
    pub const DIGEST_ITEM: &str = "digestItem";
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

/// The integer attribute channel writes are conditioned on (optimistic concurrency).
pub const CHANNEL_VERSION_ATTR: &str = "version";

/// A channel: `ORG#<org>` / `CHANNEL#<id>`.
pub fn channel(org: &OrgId, id: &ChannelId) -> Key {
    Key::new(org_pk(org), format!("{CHANNEL_PREFIX}{id}"))
}

/// Sort-key prefix of an org's lanes (one per channel that has been paced, paused or failing).
/// Not under `CHANNEL#`: listing channels must not meet them.
pub const LANE_PREFIX: &str = "LANE#";
/// The integer attribute lane writes are conditioned on (optimistic concurrency).
pub const LANE_VERSION_ATTR: &str = "version";

/// A channel's lane state (pacing, 429 pause, circuit breaker): `ORG#<org>` / `LANE#<channel>`.
pub fn lane(org: &OrgId, channel: &ChannelId) -> Key {
    Key::new(org_pk(org), format!("{LANE_PREFIX}{channel}"))
}

/// A rule: `ORG#<org>` / `RULE#<key>`.
pub fn rule(org: &OrgId, key: &RuleKey) -> Key {
    Key::new(org_pk(org), format!("{RULE_PREFIX}{key}"))
}

/// The org's rules version, bumped by every rule write: `ORG#<org>` / `RULESVERSION`.
pub fn rules_version(org: &OrgId) -> Key {
    Key::new(org_pk(org), "RULESVERSION")
}

/// A user's profile: `ORG#<org>` / `USER#<user>`.
pub fn user(org: &OrgId, user: &UserId) -> Key {
    Key::new(org_pk(org), format!("USER#{user}"))
}

/// Sort-key prefix of one user's one-click unsubscribes: `UNSUB#<user>#`.
pub fn unsubscribe_prefix(user: &UserId) -> String {
    format!("UNSUB#{user}#")
}

/// A user's one-click unsubscribe from one channel, apart from their profile (so a
/// whole-profile `PUT /users` does not undo it): `ORG#<org>` / `UNSUB#<user>#<channel>`.
pub fn unsubscribe(org: &OrgId, user: &UserId, channel: ChannelId) -> Key {
    Key::new(
        org_pk(org),
        format!("{}{channel}", unsubscribe_prefix(user)),
    )
}

// ---- Pipeline: events and deliveries -------------------------------------------------------

/// Event record (ingest idempotency, "did this event arrive?"): one item per event.
pub fn event(org: OrgId, event: &EventId) -> Key {
    Key::new(format!("ORG#{org}#EVT#{event}"), "EVT")
}

/// How many partitions one org's day of events is spread over in the by-time index: a busy org
/// stays off a single hot partition; replay queries them all and merges.
pub const EVENT_INDEX_SHARDS: u8 = 8;

/// The index shard of an event: FNV-1a (32 bits) of its id, modulo [`EVENT_INDEX_SHARDS`] —
/// stable across builds and platforms (`std`'s hasher is not).
pub fn event_index_shard(event: &EventId) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in event.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    u8::try_from(hash % u32::from(EVENT_INDEX_SHARDS)).unwrap_or(0)
}

/// Partition of one shard of one org's events received on one UTC day (`yyyy-mm-dd`):
/// `ORG#<org>#EVTIDX#<day>#<shard>`.
pub fn events_of_day(org: OrgId, day: NaiveDate, shard: u8) -> String {
    format!("ORG#{org}#EVTIDX#{}#{shard}", day.format("%Y-%m-%d"))
}

/// The by-time sort key of an instant: its epoch milliseconds, 13 digits (fixed width, so the
/// string order is the time order until the year 2286). A bare time sorts before every event
/// of its millisecond (`<ms>#<id>`): the bounds of a time-range read.
pub fn event_time_sk(at: DateTime<Utc>) -> String {
    format!("{:013}", at.timestamp_millis().max(0))
}

/// An event in the by-time index (rule replay): `ORG#<org>#EVTIDX#<day>#<shard>` /
/// `<receivedAt ms, 13 digits>#<eventId>`, the day and the time its `receivedAt`.
pub fn event_in_index(org: OrgId, received_at: DateTime<Utc>, event: &EventId) -> Key {
    Key::new(
        events_of_day(org, received_at.date_naive(), event_index_shard(event)),
        format!("{}#{event}", event_time_sk(received_at)),
    )
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

/// Sort-key prefix of a delivery, in its day partition and in its channel's log.
pub const DELIVERY_PREFIX: &str = "DLV#";

/// A delivery's sort key, `DLV#<uuidv7>`; also the bound of a time-range read, with the
/// smallest or largest UUIDv7 of a millisecond.
pub fn delivery_sk(id: impl std::fmt::Display) -> String {
    format!("{DELIVERY_PREFIX}{id}")
}

/// A sort key above every delivery of a day partition: a cursor positioned "after" it starts
/// reading that day from its newest delivery.
pub const DELIVERIES_TOP: &str = "DLV#~";

/// A delivery, with its attempts.
pub fn delivery(org: OrgId, id: DeliveryId) -> Key {
    Key::new(deliveries_of_day(org, &delivery_day(id)), delivery_sk(id))
}

/// GSI1 partition of one channel's deliveries: the per-channel dispatch log.
pub fn channel_deliveries(org: OrgId, channel: ChannelId) -> String {
    format!("ORG#{org}#CH#{channel}#DLV")
}

/// GSI1 key of a delivery in its channel's log.
pub fn delivery_in_channel(org: OrgId, channel: ChannelId, id: DeliveryId) -> Key {
    Key::new(channel_deliveries(org, channel), delivery_sk(id))
}

// ---- Delivery counters (`crate::repo::stats`) -------------------------------------------------

/// Partition of one org's counters on one UTC day: `ORG#<org>#STATS#<yyyy-mm-dd>`.
pub fn stats_of_day(org: OrgId, day: NaiveDate) -> String {
    format!("ORG#{org}#STATS#{}", day.format("%Y-%m-%d"))
}

/// Sort key of the org's counters of a day, every channel and rule together.
pub const STATS_ALL: &str = "ALL";
/// Sort-key prefix of a channel's counters.
pub const STATS_CHANNEL_PREFIX: &str = "CH#";
/// Sort-key prefix of a rule's counters.
pub const STATS_RULE_PREFIX: &str = "RULE#";

/// Sort key of a channel's counters: `CH#<channel>`.
pub fn stats_channel(channel: ChannelId) -> String {
    format!("{STATS_CHANNEL_PREFIX}{channel}")
}

/// Sort key of a rule's counters: `RULE#<key>`.
pub fn stats_rule(rule: &RuleKey) -> String {
    format!("{STATS_RULE_PREFIX}{rule}")
}

// ---- The local outbox (`crate::repo::outbox`) --------------------------------------------------

/// Sort-key prefix of an outbox message.
pub const OUTBOX_MESSAGE_PREFIX: &str = "MSG#";

/// `ORG#<org>#OUTBOX`: the org's outbox messages.
pub fn outbox(org: OrgId) -> String {
    format!("ORG#{org}#OUTBOX")
}

/// An outbox message: `ORG#<org>#OUTBOX` / `MSG#<uuidv7>`.
pub fn outbox_message(org: OrgId, id: uuid::Uuid) -> Key {
    Key::new(outbox(org), format!("{OUTBOX_MESSAGE_PREFIX}{id}"))
}

// ---- Feeds: items, per-user state, live connections (`crate::repo::feeds`) -----------------

/// Sort-key prefix of a user's feed items.
pub const FEED_ITEM_PREFIX: &str = "ITEM#";
/// Sort-key prefix of a user's live connections.
pub const FEED_CONNECTION_PREFIX: &str = "CONN#";
/// GSI1 sort-key prefix of a feed item in its user's change log.
pub const FEED_SEQ_PREFIX: &str = "SEQ#";

/// `ORG#<org>#USER#<user>#FEED`: one user's feed items and feed state.
pub fn feed_pk(org: &OrgId, user: &UserId) -> String {
    format!("ORG#{org}#USER#{user}#FEED")
}

/// A feed item: `ORG#<org>#USER#<user>#FEED` / `ITEM#<uuidv7>` (newest first when read descending).
pub fn feed_item(org: &OrgId, user: &UserId, id: &FeedItemId) -> Key {
    Key::new(feed_pk(org, user), format!("{FEED_ITEM_PREFIX}{id}"))
}

/// The user's feed counters (`unread`, `unseen`, `seq`): `ORG#<org>#USER#<user>#FEED` / `STATE`.
pub fn feed_state(org: &OrgId, user: &UserId) -> Key {
    Key::new(feed_pk(org, user), "STATE")
}

/// GSI1 partition of a user's feed items ordered by the seq of their last change.
pub fn feed_changes(org: &OrgId, user: &UserId) -> String {
    format!("ORG#{org}#USER#{user}#FEEDSEQ")
}

/// GSI1 key of a feed item changed at `seq`: `SEQ#<seq, 20 digits>#<item>`.
pub fn feed_item_change(org: &OrgId, user: &UserId, seq: u64, id: &FeedItemId) -> Key {
    Key::new(
        feed_changes(org, user),
        format!("{FEED_SEQ_PREFIX}{seq:020}#{id}"),
    )
}

/// `ORG#<org>#USER#<user>#CONN`: a user's open feed sockets (API Gateway), with a TTL.
pub fn feed_connections(org: &OrgId, user: &UserId) -> String {
    format!("ORG#{org}#USER#{user}#CONN")
}

/// One open feed socket: `ORG#<org>#USER#<user>#CONN` / `CONN#<connectionId>`.
pub fn feed_connection(org: &OrgId, user: &UserId, connection_id: &str) -> Key {
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
    cap_slot_counter(org, channel, user, &window.slot(cap))
}

/// The counter a delivery's recorded [`CapSlot`] was counted in (same key as [`cap_counter`]).
pub fn cap_slot_counter(org: OrgId, channel: ChannelId, user: &str, slot: &CapSlot) -> Key {
    Key::new(
        format!("ORG#{org}#CAP#{channel}"),
        format!("W{}#{}#U#{user}", slot.window_hours, slot.index),
    )
}

// ---- Admission control of `POST /events` (the arithmetic is `herald_core::admission`) ---------

/// The integer attribute of an ingest bucket: the GCRA theoretical arrival time, Unix µs.
pub const INGEST_TAT_ATTR: &str = "tat";

/// An org's ingest bucket: `ORG#<org>#INGEST` / `BUCKET`. Its own partition, so the write every
/// `POST /events` makes does not share the org partition's throughput with channels and rules.
pub fn ingest_bucket(org: OrgId) -> Key {
    Key::new(format!("{}#INGEST", org_pk(&org)), "BUCKET")
}

// ---- Alerts and silences (docs/alerts.md) --------------------------------------------------

/// The integer attribute alert writes are conditioned on (optimistic concurrency).
pub const ALERT_VERSION_ATTR: &str = "version";
/// Integer attributes of an alert instance's occurrence counter.
pub const ALERT_EVENT_COUNT_ATTR: &str = "eventCount";
pub const ALERT_LAST_EVENT_ATTR: &str = "lastEventMs";

/// The partition of one alert (its dedup key, hashed: keys are up to 255 characters of anything).
pub fn alert_pk(org: OrgId, dedup_key: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "ORG#{org}#ALERT#{}",
        hex::encode(Sha256::digest(dedup_key.as_bytes()))
    )
}

/// An alert's current (or last) instance: `ORG#<org>#ALERT#<sha256(key)>` / `ALERT`.
pub fn alert(org: OrgId, dedup_key: &str) -> Key {
    Key::new(alert_pk(org, dedup_key), "ALERT")
}

/// An instance's occurrence counter, beside it: `…#ALERT#<sha256(key)>` / `COUNT#<instance>`.
/// Not in any index: duplicate triggers write only this item.
pub fn alert_count(org: OrgId, dedup_key: &str, instance: &impl std::fmt::Display) -> Key {
    Key::new(alert_pk(org, dedup_key), format!("COUNT#{instance}"))
}

/// GSI1 partition of an org's alerts in one state.
pub fn alerts_in_state(org: OrgId, state: &str) -> String {
    format!("ORG#{org}#ALERTS#{state}")
}

/// GSI1 key of an alert in its state's list, newest first by `firstEventAt`:
/// `ORG#<org>#ALERTS#<state>` / `<firstEventAt, RFC 3339 ms>#<sha256(key)>`.
pub fn alert_in_state(
    org: OrgId,
    state: &str,
    first_event_at: DateTime<Utc>,
    dedup_key: &str,
) -> Key {
    let pk = alert_pk(org, dedup_key);
    let hash = pk.rsplit('#').next().unwrap_or_default();
    Key::new(
        alerts_in_state(org, state),
        format!(
            "{}#{hash}",
            first_event_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    )
}

/// The integer attribute group writes are conditioned on (optimistic concurrency).
pub const GROUP_VERSION_ATTR: &str = "version";
/// Sort-key prefix of a group's members.
pub const GROUP_MEMBER_PREFIX: &str = "A#";

/// The partition of one group of a grouped rule: `ORG#<org>#GRP#<rule>#<sha256(groupBy values)>`.
pub fn group_pk(org: OrgId, rule: &RuleKey, group: &str) -> String {
    format!("ORG#{org}#GRP#{rule}#{group}")
}

/// A group's state (its notification log and pending tick): `…#GRP#<rule>#<hash>` / `GRP`.
pub fn group(org: OrgId, rule: &RuleKey, group: &str) -> Key {
    Key::new(group_pk(org, rule, group), "GRP")
}

/// A member of a group, beside it: `…#GRP#<rule>#<hash>` / `A#<sha256(dedupKey), 32 hex>`.
pub fn group_member(org: OrgId, rule: &RuleKey, group: &str, member: &str) -> Key {
    Key::new(
        group_pk(org, rule, group),
        format!("{GROUP_MEMBER_PREFIX}{member}"),
    )
}

/// The integer attribute a digest head's writes are conditioned on: `2·seq + 1` while batch
/// `seq` is open, `2·seq + 2` once it is closed (`herald_shared::repo::digests`).
pub const DIGEST_TURN_ATTR: &str = "turn";
/// The integer attribute counting the events that joined a digest's open batch.
pub const DIGEST_COUNT_ATTR: &str = "n";
/// Sort-key prefix of a digest's items.
pub const DIGEST_ITEM_PREFIX: &str = "I#";

/// The partition of one digest of a rule — (rule, channel, user, digest key) —
/// `ORG#<org>#DIGEST#<rule>#<channel>#<digest>`, `digest` naming the (user, key) pair
/// (`herald_shared::repo::digests::digest_hash`).
pub fn digest_pk(org: OrgId, rule: &RuleKey, channel: ChannelId, digest: &str) -> String {
    format!("ORG#{org}#DIGEST#{rule}#{channel}#{digest}")
}

/// A digest's head (the batch open now, or the last one closed): `…#DIGEST#…` / `HEAD`.
pub fn digest_head(org: OrgId, rule: &RuleKey, channel: ChannelId, digest: &str) -> Key {
    Key::new(digest_pk(org, rule, channel, digest), "HEAD")
}

/// The sort-key prefix of batch `seq`'s items: `I#<seq, 10 digits>#`.
pub fn digest_items_prefix(seq: u64) -> String {
    format!("{DIGEST_ITEM_PREFIX}{seq:010}#")
}

/// One event of batch `seq`, beside the head, in arrival order:
/// `I#<seq>#<receivedAt, epoch ms, 13 digits>#<eventId>`.
pub fn digest_item(
    org: OrgId,
    rule: &RuleKey,
    channel: ChannelId,
    digest: &str,
    seq: u64,
    received_at: chrono::DateTime<chrono::Utc>,
    event: &str,
) -> Key {
    Key::new(
        digest_pk(org, rule, channel, digest),
        format!(
            "{}{:013}#{event}",
            digest_items_prefix(seq),
            received_at.timestamp_millis().max(0)
        ),
    )
}

/// Sort-key prefix of an org's silences.
pub const SILENCE_PREFIX: &str = "SILENCE#";

/// A silence: `ORG#<org>` / `SILENCE#<id>` (ids are UUIDv7: listed oldest first).
pub fn silence(org: &OrgId, id: &impl std::fmt::Display) -> Key {
    Key::new(org_pk(org), format!("{SILENCE_PREFIX}{id}"))
}

/// The stored answer of a request made with an `Idempotency-Key`:
/// `ORG#<org>#IDEM#<sha256(method, path, key) in hex>` / `IDEM`, one partition per key.
pub fn idempotency(org: OrgId, scope_hash: &str) -> Key {
    Key::new(format!("{}#IDEM#{scope_hash}", org_pk(&org)), "IDEM")
}

/// Sort-key prefix of an org's recoveries.
pub const RECOVERY_PREFIX: &str = "RECOVERY#";
/// The integer attribute recovery writes are conditioned on (optimistic concurrency).
pub const RECOVERY_VERSION_ATTR: &str = "version";

/// A recovery (a bulk re-queue of a channel's failed deliveries): `ORG#<org>` / `RECOVERY#<id>`.
pub fn recovery(org: OrgId, id: RecoveryId) -> Key {
    Key::new(org_pk(&org), format!("{RECOVERY_PREFIX}{id}"))
}

/// The running recovery of a channel, at most one: `ORG#<org>` / `RECOVERING#<channel>`,
/// created with the recovery and deleted when it ends. Not under `CHANNEL#`: listing channels
/// must not meet it.
pub fn channel_recovery(org: OrgId, channel: ChannelId) -> Key {
    Key::new(org_pk(&org), format!("RECOVERING#{channel}"))
}

// ---- Recipient hygiene -----------------------------------------------------------------------

/// The partition of an org's suppression list: `ORG#<org>#SUPP`.
pub fn suppressions(org: &OrgId) -> String {
    format!("{}#SUPP", org_pk(org))
}

/// One suppression entry: `ORG#<org>#SUPP` / `<kind>#<normalised address>` (email lower-cased,
/// phone E.164), so the dispatcher reads it by key next to the profile.
pub fn suppression(org: &OrgId, address: &SuppressedAddress) -> Key {
    Key::new(
        suppressions(org),
        format!("{}#{}", address.kind().as_str(), address.address()),
    )
}

/// The integer attribute profile writes are conditioned on (a push-token prune must not
/// overwrite a profile replaced meanwhile).
pub const USER_VERSION_ATTR: &str = "version";

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

    /// Every stored key format, pinned. A failure here means stored data would no longer be
    /// found: change a format only with a migration, and update `docs/dynamodb.md` with it.
    #[test]
    fn every_key_format_is_pinned() {
        let org: OrgId = "01a24b39-aa00-7000-8000-0000000000aa".parse().expect("org");
        let channel: ChannelId = "01a24b39-aa00-7000-8000-0000000000cc"
            .parse()
            .expect("channel");
        let api_key: ApiKeyId = "01a24b39-aa00-7000-8000-00000000000b".parse().expect("key");
        // 2026-12-06T12:00:00Z as a UUIDv7.
        let delivery: DeliveryId = "01a24b39-aa00-7000-8000-000000000001".parse().expect("dlv");
        let item = FeedItemId::from(delivery);
        let rule = RuleKey::parse("disk.full").expect("rule");
        let user = UserId::parse("alice").expect("user");
        let event = EventId::parse("evt-1").expect("event");
        let hash = KeyHash::of("pk_test_secret");
        let day = NaiveDate::from_ymd_opt(2026, 12, 6).expect("day");
        let o = "ORG#01a24b39-aa00-7000-8000-0000000000aa";
        let d = "01a24b39-aa00-7000-8000-000000000001";
        let c = "01a24b39-aa00-7000-8000-0000000000cc";

        let k = |pk: &str, sk: &str| Key::new(pk, sk);
        assert_eq!(org_pk(&org), o);
        assert_eq!(self::org(&org), k(o, "ORG"));
        assert_eq!(
            self::api_key(&org, &api_key),
            k(o, "APIKEY#01a24b39-aa00-7000-8000-00000000000b")
        );
        assert_eq!(
            api_key_by_hash(&hash),
            k(&format!("APIKEY#{}", hash.as_str()), "APIKEY")
        );
        assert_eq!(self::channel(&org, &channel), k(o, &format!("CHANNEL#{c}")));
        assert_eq!(self::lane(&org, &channel), k(o, &format!("LANE#{c}")));
        assert_eq!(self::rule(&org, &rule), k(o, "RULE#disk.full"));
        assert_eq!(rules_version(&org), k(o, "RULESVERSION"));
        assert_eq!(self::user(&org, &user), k(o, "USER#alice"));
        assert_eq!(
            self::event(org, &event),
            k(&format!("{o}#EVT#evt-1"), "EVT")
        );
        assert_eq!(event_index_shard(&event), 4);
        assert_eq!(
            event_in_index(org, at("2026-12-06T12:00:00.123Z"), &event),
            k(&format!("{o}#EVTIDX#2026-12-06#4"), "1796558400123#evt-1")
        );
        assert_eq!(event_time_sk(at("1970-01-01T00:00:01Z")), "0000000001000");
        assert_eq!(delivery_day(delivery), "2026-12-06");
        assert_eq!(
            self::delivery(org, delivery),
            k(&format!("{o}#DLV#2026-12-06"), &format!("DLV#{d}"))
        );
        assert_eq!(
            delivery_in_channel(org, channel, delivery),
            k(&format!("{o}#CH#{c}#DLV"), &format!("DLV#{d}"))
        );
        assert_eq!(DELIVERIES_TOP, "DLV#~");
        assert!(delivery_sk(d).as_str() < DELIVERIES_TOP);
        assert_eq!(stats_of_day(org, day), format!("{o}#STATS#2026-12-06"));
        assert_eq!(
            (STATS_ALL, stats_channel(channel), stats_rule(&rule)),
            ("ALL", format!("CH#{c}"), "RULE#disk.full".to_owned())
        );
        assert_eq!(
            outbox_message(org, *delivery.as_uuid()),
            k(&format!("{o}#OUTBOX"), &format!("MSG#{d}"))
        );
        let feed = format!("{o}#USER#alice#FEED");
        assert_eq!(
            feed_item(&org, &user, &item),
            k(&feed, &format!("ITEM#{d}"))
        );
        assert_eq!(feed_state(&org, &user), k(&feed, "STATE"));
        assert_eq!(
            feed_item_change(&org, &user, 42, &item),
            k(
                &format!("{o}#USER#alice#FEEDSEQ"),
                &format!("SEQ#00000000000000000042#{d}")
            )
        );
        assert_eq!(
            feed_connection(&org, &user, "abc="),
            k(&format!("{o}#USER#alice#CONN"), "CONN#abc=")
        );
        assert_eq!(feed_connection_by_id("abc="), k("CONN#abc=", "CONN"));
        let now = at("2026-12-06T12:00:00Z");
        assert_eq!(
            cap_counter(org, channel, "alice", DAY, &window(DAY, now)),
            k(&format!("{o}#CAP#{c}"), "W24#20793#U#alice")
        );
        assert_eq!(ingest_bucket(org), k(&format!("{o}#INGEST"), "BUCKET"));
        let recovery_id: RecoveryId = "01a24b39-aa00-7000-8000-0000000000ee".parse().expect("id");
        assert_eq!(
            recovery(org, recovery_id),
            k(o, "RECOVERY#01a24b39-aa00-7000-8000-0000000000ee")
        );
        assert_eq!(
            channel_recovery(org, channel),
            k(o, &format!("RECOVERING#{c}"))
        );
        let email =
            SuppressedAddress::parse(SuppressionKind::Email, "Bob@Example.com").expect("address");
        let phone =
            SuppressedAddress::parse(SuppressionKind::Sms, "+14155550123").expect("address");
        assert_eq!(
            suppression(&org, &email),
            k(&format!("{o}#SUPP"), "email#bob@example.com")
        );
        assert_eq!(
            suppression(&org, &phone),
            k(&format!("{o}#SUPP"), "sms#+14155550123")
        );
    }

    #[test]
    fn entity_types_are_camel_case() {
        for name in [
            entity::ORG,
            entity::API_KEY,
            entity::API_KEY_BY_HASH,
            entity::CHANNEL,
            entity::RULE,
            entity::RULES_VERSION,
            entity::USER,
            entity::EVENT,
            entity::EVENT_INDEX,
            entity::DELIVERY,
            entity::STATS,
            entity::CAP_COUNTER,
            entity::LANE,
            entity::OUTBOX_MESSAGE,
            entity::FEED_ITEM,
            entity::FEED_STATE,
            entity::FEED_CONNECTION,
            entity::FEED_CONNECTION_BY_ID,
            entity::INGEST_BUCKET,
            entity::ALERT_GROUP,
            entity::ALERT_GROUP_MEMBER,
            entity::SUPPRESSION,
        ] {
            let first = name.chars().next().expect("not empty");
            assert!(
                first.is_ascii_lowercase() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name} is not camelCase"
            );
        }
    }
}

#[cfg(test)]
mod alert_key_tests {
    use super::*;

    /// The alert and silence key formats, pinned like the others.
    #[test]
    fn alert_and_silence_key_formats_are_pinned() {
        let org: OrgId = "01a24b39-aa00-7000-8000-0000000000aa".parse().expect("org");
        let o = "ORG#01a24b39-aa00-7000-8000-0000000000aa";
        let h = "e086558cb8fd43a9c9440bd141d3aad79bbb12ffb132197345f5ee29899a317a";
        let at: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().expect("time");
        assert_eq!(
            alert(org, "disk.full:web-1"),
            Key::new(format!("{o}#ALERT#{h}"), "ALERT")
        );
        assert_eq!(
            alert_count(org, "disk.full:web-1", &"i-1"),
            Key::new(format!("{o}#ALERT#{h}"), "COUNT#i-1")
        );
        assert_eq!(
            alert_in_state(org, "firing", at, "disk.full:web-1"),
            Key::new(
                format!("{o}#ALERTS#firing"),
                format!("2026-12-06T12:00:00.000Z#{h}")
            )
        );
        assert_eq!(silence(&org, &"s-1"), Key::new(o, "SILENCE#s-1"));
        let rule = RuleKey::parse("disk.full").expect("rule");
        assert_eq!(
            group(org, &rule, "g1"),
            Key::new(format!("{o}#GRP#disk.full#g1"), "GRP")
        );
        assert_eq!(
            group_member(org, &rule, "g1", "m1"),
            Key::new(format!("{o}#GRP#disk.full#g1"), "A#m1")
        );
        let channel = ChannelId::new();
        assert_eq!(
            digest_head(org, &rule, channel, "d1"),
            Key::new(format!("{o}#DIGEST#disk.full#{channel}#d1"), "HEAD")
        );
        let at: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().expect("time");
        assert_eq!(
            digest_item(org, &rule, channel, "d1", 3, at, "evt-1"),
            Key::new(
                format!("{o}#DIGEST#disk.full#{channel}#d1"),
                "I#0000000003#1796558400000#evt-1"
            )
        );
        let ada = UserId::parse("ada").expect("user");
        assert_eq!(
            unsubscribe(&org, &ada, channel),
            Key::new(o, format!("UNSUB#ada#{channel}"))
        );
    }
}
