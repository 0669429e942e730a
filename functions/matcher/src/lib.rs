//! The matcher function: events from the match queue → deliveries on record and on the
//! dispatch queue.
//!
//! For each event it evaluates the org's compiled rules, and for each matching rule and each of
//! its channels creates one delivery — one per recipient for user-facing kinds. Delivery ids
//! are deterministic ([`delivery_id`]), and a delivery is created only if absent, so a match
//! message handled twice, or a duplicate event, never makes a second delivery.

pub mod cache;

use chrono::{DateTime, Utc};
use herald_shared::domain::channel::Channel;
use herald_shared::domain::delivery::{Delivery, DeliveryStatus, Trigger};
use herald_shared::domain::event::{Event, Recipient};
use herald_shared::domain::rule::Rule;
use herald_shared::pipeline::{BatchOutcome, DispatchTask, MatchTask, QueueMessage, delivery_id};
use herald_shared::queue::{self, Outgoing, Queue, QueueError};
use herald_shared::repo::{deliveries, events};
use herald_shared::store::{Store, StoreError};
use tracing::{info, instrument, warn};

pub use cache::RulesCache;

/// What the matcher needs.
#[derive(Debug, Clone, Copy)]
pub struct Matcher<'a> {
    pub store: &'a dyn Store,
    pub dispatch_queue: &'a dyn Queue,
    pub rules: &'a RulesCache,
    /// How long delivery records are kept.
    pub retention: chrono::Duration,
}

#[derive(Debug, thiserror::Error)]
enum RouteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("serialising a dispatch task: {0}")]
    Serialise(#[from] serde_json::Error),
}

impl Matcher<'_> {
    /// Handles one batch from the match queue.
    pub async fn handle(&self, messages: Vec<QueueMessage>, now: DateTime<Utc>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for message in messages {
            let task: MatchTask = match serde_json::from_str(&message.body) {
                Ok(task) => task,
                Err(e) => {
                    // Only ingest writes this queue: a body it cannot have written is dropped, loudly.
                    warn!(message_id = %message.id, error = %e, "unreadable match task dropped");
                    continue;
                }
            };
            // Only a message received again can follow a crash between recording a delivery
            // and enqueueing it; a first receive that finds deliveries already on record is a
            // duplicate event, whose deliveries the first copy enqueued.
            let redelivered = message.receive_count > 1;
            if let Err(e) = self.route(&task.event, redelivered, now).await {
                warn!(message_id = %message.id, event_id = %task.event.id, error = %e, "matching failed; the event will be retried");
                outcome.failed.push(message.id);
            }
        }
        outcome
    }

    #[instrument(skip_all, fields(event_id = %event.id, org_id = %event.org_id, event_type = %event.event_type))]
    async fn route(
        &self,
        event: &Event,
        redelivered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let org = self.rules.get(self.store, event.org_id).await?;
        let ttl = (now + self.retention).timestamp();
        let mut tasks = Vec::new();
        let mut matched_rules = Vec::new();
        let mut created = 0u32;
        for rule in org.rules.matching(event) {
            matched_rules.push(rule.key.to_string());
            for channel_id in &rule.channel_ids {
                let Some(channel) = org.channels.get(channel_id) else {
                    // Deleting a referenced channel is refused; this is a race with a delete.
                    warn!(rule = %rule.key, channel_id = %channel_id, "rule names a channel that no longer exists");
                    continue;
                };
                for recipient in recipients(event, rule, channel) {
                    let delivery = new_delivery(event, rule, channel, recipient.as_ref(), now);
                    let queued = match deliveries::create(self.store, &delivery, ttl).await? {
                        None => {
                            created += 1;
                            delivery.status == DeliveryStatus::Queued
                        }
                        // Already on record: re-enqueue only after a crash between record
                        // and enqueue (this message is received again and no attempt was ever
                        // made); otherwise its dispatch message exists, and a second one could
                        // send the same attempt twice concurrently.
                        Some(existing) => {
                            redelivered
                                && existing.delivery.status == DeliveryStatus::Queued
                                && existing.delivery.attempts.is_empty()
                        }
                    };
                    if queued {
                        let task = DispatchTask {
                            delivery_id: delivery.id,
                            org_id: event.org_id,
                            rule_key: rule.key.clone(),
                            channel_id: channel.id,
                            recipient,
                            attempt: 1,
                            not_before: None,
                            event: event.clone(),
                            template: rule.template.clone(),
                        };
                        tasks.push(Outgoing::now(serde_json::to_string(&task)?));
                    }
                }
            }
        }
        queue::send_all(self.dispatch_queue, tasks).await?;
        info!(
            rules = matched_rules.len(),
            deliveries = created,
            "event matched"
        );
        events::mark_matched(self.store, event, matched_rules, created, ttl, now).await?;
        Ok(())
    }
}

/// Who a channel delivers to: nobody in particular for Slack and webhooks; each recipient the
/// event or the rule names for user-facing kinds. A user-facing channel with no recipient still
/// gets one (recipient-less) delivery, which fails with that reason — nothing vanishes unlogged.
fn recipients(event: &Event, rule: &Rule, channel: &Channel) -> Vec<Option<Recipient>> {
    if !channel.kind().is_user_facing() {
        return vec![None];
    }
    let mut out: Vec<Option<Recipient>> = event.recipients.iter().cloned().map(Some).collect();
    for user in &rule.recipients {
        if !event.recipients.iter().any(|r| &r.user_id == user) {
            out.push(Some(Recipient {
                user_id: user.clone(),
                email: None,
                phone: None,
                push_tokens: Vec::new(),
            }));
        }
    }
    if out.is_empty() {
        out.push(None);
    }
    out
}

fn new_delivery(
    event: &Event,
    rule: &Rule,
    channel: &Channel,
    recipient: Option<&Recipient>,
    now: DateTime<Utc>,
) -> Delivery {
    let user = recipient.map(|r| &r.user_id);
    let (status, reason) = if !channel.enabled {
        (
            DeliveryStatus::Suppressed,
            Some("channel is disabled".to_owned()),
        )
    } else if channel.kind().is_user_facing() && recipient.is_none() {
        (
            DeliveryStatus::Failed,
            Some(
                "the event names no recipient (userId or recipients) and the rule has none"
                    .to_owned(),
            ),
        )
    } else {
        (DeliveryStatus::Queued, None)
    };
    Delivery {
        id: delivery_id(event, &rule.key, channel.id, user),
        org_id: event.org_id,
        event_id: event.id.clone(),
        event_type: event.event_type.to_string(),
        rule_key: Some(rule.key.clone()),
        channel_id: channel.id,
        channel_kind: channel.kind(),
        recipient: user.cloned(),
        trigger: Trigger::Event,
        status,
        reason,
        attempts: Vec::new(),
        created_at: now,
        updated_at: now,
    }
}
