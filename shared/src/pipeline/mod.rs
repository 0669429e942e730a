//! What flows between the functions: the messages each queue carries and the batch contract
//! every handler follows.
//!
//! ```text
//! ingest queue   BusEnvelope (EventBridge's SQS target shape)     → ingest
//! match queue    MatchTask   (one validated, de-duplicated event)  → matcher
//! dispatch queue DispatchTask (one delivery's next attempt)        → dispatcher
//!                RecoverPageTask (one page of a recovery)          → dispatcher
//! ```
//!
//! A handler takes a batch of [`QueueMessage`]s and answers which of them failed
//! ([`BatchOutcome`]), the shape of SQS partial batch responses: the Lambda runtime and the
//! local workers of `herald serve` both drive the same handler functions.

#[cfg(feature = "lambda")]
pub mod lambda;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use herald_core::domain::event::{Event, Recipient};
use herald_core::domain::rule::Template;
use herald_core::domain::{ChannelId, DeliveryId, OrgId, RecoveryId, RuleKey, UserId};

use crate::queue::{MAX_DELAY, Outgoing, Queue};

/// A message as a handler receives it, whatever queue engine carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
    /// How many times the queue has handed this message out, this time included.
    pub receive_count: u32,
}

/// What became of a batch: which messages failed and should be received again (SQS
/// `batchItemFailures`), and which were put off without being handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: Vec<String>,
    /// Messages the handler did not handle because their lane is held (paced, paused by a 429,
    /// or its circuit open) until a known instant. They are not failures: the caller hands each
    /// out again at `until` without counting a receive — the local scheduler in its place in
    /// the lane (and holds the lane until then), on AWS as a new message with that delay.
    pub deferred: Vec<Deferred>,
}

/// A message put off until its lane may go again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub message_id: String,
    pub until: DateTime<Utc>,
}

/// Hands each deferred message of a batch out again at its `until`: a new message with the same
/// body, in the same lane, delayed by `until − now` (at most the queue's maximum delay; a longer
/// wait sets the dispatch task's `notBefore`, so the dispatcher's hops carry it the rest of the
/// way). The caller then deletes the originals like handled messages, so a deferral never counts
/// as a receive. Returns the ids of the messages that could not be re-sent: report those failed,
/// and the queue hands them out again after the visibility timeout.
///
/// The Lambda dispatcher's way of applying [`BatchOutcome::deferred`] (and, for now, the local
/// worker's).
pub async fn resend_deferred(
    queue: &dyn Queue,
    messages: &[QueueMessage],
    deferred: &[Deferred],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut batch: Vec<(String, Outgoing)> = Vec::new();
    for d in deferred {
        let Some(message) = messages.iter().find(|m| m.id == d.message_id) else {
            continue;
        };
        let wait = (d.until - now).to_std().unwrap_or_default();
        let outgoing = match serde_json::from_str::<DispatchTask>(&message.body) {
            Ok(mut task) => {
                if wait > MAX_DELAY {
                    task.not_before = Some(task.not_before.map_or(d.until, |t| t.max(d.until)));
                }
                match serde_json::to_string(&task) {
                    Ok(body) => Outgoing::now(body).in_group(task.lane()),
                    Err(_) => Outgoing::now(message.body.clone()),
                }
            }
            // Only dispatch tasks are deferred today; anything else goes back as it came.
            Err(_) => Outgoing::now(message.body.clone()),
        };
        batch.push((message.id.clone(), outgoing.delayed(wait)));
    }
    for chunk in batch.chunks(queue.max_batch().max(1)) {
        let (ids, outgoing): (Vec<String>, Vec<Outgoing>) = chunk.iter().cloned().unzip();
        if let Err(e) = queue.send_batch(outgoing).await {
            tracing::warn!(error = %e, messages = ids.len(), "deferred messages not re-sent; they will be received again");
            failed.extend(ids);
        }
    }
    failed
}

/// Match-queue message: one accepted event, to be matched against its org's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchTask {
    pub event: Event,
    /// Set on the matcher's own delayed check of an alert's `autoResolveSeconds`: `event` is
    /// then the resolve it posts if the instance stopped firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve: Option<AutoResolveCheck>,
    /// Set on a grouped rule's tick: `event` is the one that scheduled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_tick: Option<GroupTick>,
    /// Set on a digest's flush: `event` is the one that opened the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_flush: Option<DigestFlush>,
    /// Set by ingest when it forwards an event it had recorded before but that is not on record
    /// as matched (ingest's message came again after a failure): the matcher treats it like a
    /// message received again — its deliveries may be on record and not yet enqueued.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded_again: bool,
}

impl MatchTask {
    /// Whether the matcher's own scheduling sent this (a group tick, a digest flush), rather
    /// than an event to match.
    pub fn is_scheduled(&self) -> bool {
        self.group_tick.is_some() || self.digest_flush.is_some()
    }

    /// This task as a match-queue message due at `at`: delayed by `at − now`, at most the
    /// queue's maximum delay (the handler of a task not yet due sends it again: the next hop),
    /// in the lane of the event's org. Group ticks and digest flushes go this way.
    pub fn due_at(
        &self,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Outgoing, serde_json::Error> {
        let delay = (at - now).to_std().unwrap_or_default().min(MAX_DELAY);
        Ok(Outgoing::now(serde_json::to_string(self)?)
            .in_group(self.event.org_id.to_string())
            .delayed(delay))
    }
}

/// A flush of one batch of a digest (docs/digests.md): stale unless the digest's batch `seq`
/// is still open, or was closed without its delivery on record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFlush {
    pub rule_key: RuleKey,
    pub channel_id: ChannelId,
    /// `herald_shared::repo::digests::digest_hash` of the user and key.
    pub digest: String,
    pub seq: u64,
    /// When batch `seq` opened: its delivery's id is time-ordered by it.
    pub opened_at: DateTime<Utc>,
    /// The recipient as the batch's first event named them.
    pub recipient: Recipient,
    /// Sent when the batch reached `maxEvents`: due at once, not at the window's end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub early: bool,
}

/// A delayed tick of one alert group (docs/alerts.md, "Grouping"): stale unless the group's
/// pending tick is still `tickId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupTick {
    pub rule_key: RuleKey,
    pub group: String,
    pub tick_id: String,
}

/// A delayed check of one alert instance: resolve it if no trigger arrived for `afterSeconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoResolveCheck {
    pub instance_id: herald_core::domain::AlertInstanceId,
    pub after_seconds: u32,
}

/// Dispatch-queue message: the next attempt of one delivery. It carries the event, so the
/// dispatcher formats without reading it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchTask {
    pub delivery_id: DeliveryId,
    pub org_id: OrgId,
    pub rule_key: RuleKey,
    pub channel_id: ChannelId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
    /// The attempt this message is for (1-based). A message whose attempt is already on record
    /// is a duplicate.
    pub attempt: u32,
    /// Not before this instant: waits longer than a queue's maximum delay are served in hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    pub event: Event,
    /// The rule's template, carried so the dispatcher formats without reading the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// The rule is critical: the user's opt-outs are ignored and its emails carry no
    /// unsubscribe link (the suppression list still applies).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// Set on an operator's resend (`POST /notifications/logs/{deliveryId}/resend`): this is
    /// one manual attempt, logged `trigger: manual` and never retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualResend>,
    /// Set on a grouped rule's group message: rendered instead of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<herald_core::domain::group::GroupMessage>,
    /// Set on a digest: rendered instead of the event (email, push, in-app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<herald_core::domain::digest::DigestMessage>,
    /// Set on the attempts of a delivery a recovery re-queued
    /// (`POST /notifications/channels/{id}/recover`): the normal retry path, with the attempt
    /// budget and age limit counted from the recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Recovered>,
}

/// What the dispatch messages of a recovered delivery carry about its recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    pub recovery_id: RecoveryId,
    /// Attempts on record before the recovery: the retry budget counts only those after.
    pub after_attempts: u32,
}

/// Dispatch-queue message: one page of a recovery, handled by the dispatcher (see
/// `docs/operator-tools.md`, "Recover").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoverPageTask {
    pub recover_page: RecoverPage,
}

/// Which page of which recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoverPage {
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub recovery_id: RecoveryId,
    /// The page's number (0-based); the recovery item counts the pages done, so a page whose
    /// number is behind is a copy already handled.
    pub page: u32,
}

impl RecoverPageTask {
    /// The message body starts so (`serde_json` writes the one field first): the dispatcher
    /// tells a page from an attempt without parsing every attempt twice.
    const PREFIX: &'static str = "{\"recoverPage\"";

    /// A page message, or `None` for any other body.
    pub fn parse(body: &str) -> Option<RecoverPage> {
        if !body.starts_with(Self::PREFIX) {
            return None;
        }
        serde_json::from_str::<Self>(body)
            .ok()
            .map(|t| t.recover_page)
    }
}

impl RecoverPage {
    /// The message for this page, in the recovery's own lane (`<org>/recover-<channel>`): not
    /// the channel's, so a paced or paused channel holds its deliveries, not the re-queueing.
    pub fn message(&self) -> Result<Outgoing, serde_json::Error> {
        let body = serde_json::to_string(&RecoverPageTask {
            recover_page: *self,
        })?;
        Ok(Outgoing::now(body).in_group(format!("{}/recover-{}", self.org_id, self.channel_id)))
    }
}

/// What a resend's dispatch message carries about the delivery it re-opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualResend {
    /// The final status the delivery had before the resend, whose stats count moves to the
    /// status the manual attempt ends in.
    pub previous: herald_core::domain::delivery::DeliveryStatus,
}

impl DispatchTask {
    /// The queue lane of this task: `<org>/<channel>` ([`crate::queue::Outgoing::group`]).
    /// Every delivery to one channel travels in one lane, so the channel's pacing, pause and
    /// in-flight bound apply to the lane as a whole, and orgs are served fairly.
    pub fn lane(&self) -> String {
        format!("{}/{}", self.org_id, self.channel_id)
    }
}

/// The id of the delivery of `event` by `rule` to `channel` (and `recipient`).
///
/// A UUIDv7 whose timestamp is the event's receipt time and whose random bits are a hash of
/// (org, event, rule, channel, recipient): time-ordered like every id, and deterministic, so a
/// duplicate event, or a match message handled twice, lands on the same delivery instead of
/// making a second one.
pub fn delivery_id(
    event: &Event,
    rule: &RuleKey,
    channel: ChannelId,
    recipient: Option<&UserId>,
) -> DeliveryId {
    hashed_id(
        &[
            event.org_id.to_string().as_str(),
            event.id.as_str(),
            rule.as_str(),
            channel.to_string().as_str(),
            recipient.map_or("", UserId::as_str),
        ],
        event.received_at,
    )
}

/// The id of an alert delivery: like [`delivery_id`], with the alert instance in place of the
/// event — (org, dedup key, instance, rule, channel, stage, recipient) — at `at` (the
/// instance's opening for a trigger, its resolution for a follow-up). Every duplicate trigger
/// of an open instance lands on the same delivery (docs/alerts.md).
#[allow(clippy::too_many_arguments)]
pub fn alert_delivery_id(
    org: OrgId,
    dedup_key: &str,
    instance: herald_core::domain::AlertInstanceId,
    rule: &RuleKey,
    channel: ChannelId,
    stage: &str,
    recipient: Option<&UserId>,
    at: DateTime<Utc>,
) -> DeliveryId {
    hashed_id(
        &[
            org.to_string().as_str(),
            "alert",
            dedup_key,
            instance.to_string().as_str(),
            rule.as_str(),
            channel.to_string().as_str(),
            stage,
            recipient.map_or("", UserId::as_str),
        ],
        at,
    )
}

/// The id of a group message's delivery: (org, rule, channel, group, seq) at `at` (the tick's
/// time), so a tick handled twice lands on one delivery per channel.
pub fn group_delivery_id(
    org: OrgId,
    rule: &RuleKey,
    channel: ChannelId,
    group: &str,
    seq: u64,
    at: DateTime<Utc>,
) -> DeliveryId {
    hashed_id(
        &[
            org.to_string().as_str(),
            "group",
            rule.as_str(),
            channel.to_string().as_str(),
            group,
            seq.to_string().as_str(),
        ],
        at,
    )
}

/// The id of a digest's delivery: (org, rule, channel, digest, seq) at `at` (the batch's
/// opening), so a flush handled twice — or after a restart — lands on one delivery.
pub fn digest_delivery_id(
    org: OrgId,
    rule: &RuleKey,
    channel: ChannelId,
    digest: &str,
    seq: u64,
    at: DateTime<Utc>,
) -> DeliveryId {
    hashed_id(
        &[
            org.to_string().as_str(),
            "digest",
            rule.as_str(),
            channel.to_string().as_str(),
            digest,
            seq.to_string().as_str(),
        ],
        at,
    )
}

/// A UUIDv7 at `at` whose random bits hash `parts` (each length-prefixed).
fn hashed_id(parts: &[&str], at: DateTime<Utc>) -> DeliveryId {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f); // version 7
    bytes[8] = 0x80 | (bytes[8] & 0x3f); // RFC 4122 variant
    DeliveryId::from(Uuid::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::domain::EventId;
    use herald_core::domain::event::{EventType, Module};

    fn event() -> Event {
        let now = DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        Event {
            id: EventId::parse("evt-1").expect("id"),
            org_id: OrgId::new(),
            event_type: EventType::parse("email.bounced").expect("type"),
            module: Module::parse("email").expect("module"),
            properties: serde_json::Map::new(),
            recipients: Vec::new(),
            occurred_at: now,
            received_at: now,
            alert: None,
        }
    }

    #[test]
    fn delivery_ids_are_deterministic_v7_uuids() {
        let e = event();
        let rule = RuleKey::parse("bounces").expect("key");
        let channel = ChannelId::new();
        let a = delivery_id(&e, &rule, channel, None);
        assert_eq!(a, delivery_id(&e, &rule, channel, None));
        assert_eq!(a.as_uuid().get_version_num(), 7);
        let ts = a.as_uuid().get_timestamp().expect("v7 timestamp").to_unix();
        assert_eq!(
            ts.0,
            u64::try_from(e.received_at.timestamp()).expect("positive")
        );
    }

    #[test]
    fn delivery_ids_differ_per_rule_channel_and_recipient() {
        let e = event();
        let rule = RuleKey::parse("bounces").expect("key");
        let other_rule = RuleKey::parse("bounces2").expect("key");
        let channel = ChannelId::new();
        let alice = UserId::parse("alice").expect("user");
        let ids = [
            delivery_id(&e, &rule, channel, None),
            delivery_id(&e, &other_rule, channel, None),
            delivery_id(&e, &rule, ChannelId::new(), None),
            delivery_id(&e, &rule, channel, Some(&alice)),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
