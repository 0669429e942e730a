//! The matcher function: events from the match queue → deliveries on record and on the
//! dispatch queue.
//!
//! For each event it evaluates the org's compiled rules, and for each matching rule and each of
//! its channels creates one delivery — one per recipient for user-facing kinds. Delivery ids
//! are deterministic ([`delivery_id`]), and a delivery is created only if absent, so a match
//! message handled twice, or a duplicate event, never makes a second delivery.

pub mod cache;

use chrono::{DateTime, Utc};
use herald_core::delivery::plan::recipients;
use herald_core::delivery::{caps, quiet};
use herald_core::domain::channel::Channel;
use herald_core::domain::delivery::{Delivery, DeliveryStatus, Trigger};
use herald_core::domain::event::{Event, Recipient};
use herald_core::domain::rule::Rule;
use herald_shared::pipeline::{BatchOutcome, DispatchTask, MatchTask, QueueMessage, delivery_id};
use herald_shared::queue::{self, Outgoing, Queue, QueueError};
use herald_shared::repo::deliveries::{CappedCreate, Versioned};
use herald_shared::repo::events::{RoutedDelivery, RuleRoute};
use herald_shared::repo::{deliveries, events, stats};
use herald_shared::store::{Store, StoreError, keys};
use tracing::{debug, info, instrument, warn};

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
    /// Handles one batch from the match queue: records every event's deliveries concurrently
    /// (their store writes share commits), then sends all their dispatch messages in the
    /// batch's order — so each channel's lane receives them in event order — and only then
    /// marks the events matched.
    pub async fn handle(&self, messages: Vec<QueueMessage>, now: DateTime<Utc>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let mut tasks = Vec::with_capacity(messages.len());
        for message in messages {
            match serde_json::from_str::<MatchTask>(&message.body) {
                Ok(task) => tasks.push((message, task)),
                // Only ingest writes this queue: a body it cannot have written is dropped, loudly.
                Err(e) => {
                    warn!(message_id = %message.id, error = %e, "unreadable match task dropped")
                }
            }
        }
        // Only a message received again can follow a crash between recording a delivery and
        // enqueueing it; a first receive that finds deliveries already on record is a
        // duplicate event, whose deliveries the first copy enqueued.
        let routed = futures::future::join_all(
            tasks
                .iter()
                .map(|(message, task)| self.route(&task.event, message.receive_count > 1, now)),
        )
        .await;
        let mut matched = Vec::with_capacity(tasks.len());
        let mut dispatch = Vec::new();
        for ((message, task), result) in tasks.into_iter().zip(routed) {
            match result {
                Ok(routed) => {
                    dispatch.extend(routed.messages);
                    matched.push((message, task.event, routed.routes, routed.created));
                }
                Err(e) => {
                    warn!(message_id = %message.id, event_id = %task.event.id, error = %e, "matching failed; the event will be retried");
                    outcome.failed.push(message.id);
                }
            }
        }
        if let Err(e) = queue::send_all(self.dispatch_queue, dispatch).await {
            // Received again, each event re-enqueues its deliveries not yet attempted.
            warn!(error = %e, "dispatch queue refused the batch's deliveries; its events will be retried");
            outcome
                .failed
                .extend(matched.into_iter().map(|(message, ..)| message.id));
            return outcome;
        }
        let ttl = (now + self.retention).timestamp();
        let marks = matched.iter().map(|(_, event, rules, created)| {
            events::mark_matched(self.store, event, rules.clone(), *created, ttl, now)
        });
        let marked = futures::future::join_all(marks).await;
        info!(
            events = marked.len(),
            deliveries = matched.iter().map(|(.., created)| created).sum::<u32>(),
            "batch matched"
        );
        for ((message, event, ..), result) in matched.into_iter().zip(marked) {
            if let Err(e) = result {
                warn!(message_id = %message.id, event_id = %event.id, error = %e, "marking the event matched failed; it will be retried");
                outcome.failed.push(message.id);
            }
        }
        outcome
    }

    /// Records `event`'s deliveries and returns their dispatch messages, not yet sent.
    #[instrument(skip_all, fields(event_id = %event.id, org_id = %event.org_id, event_type = %event.event_type))]
    async fn route(
        &self,
        event: &Event,
        redelivered: bool,
        now: DateTime<Utc>,
    ) -> Result<Routed, RouteError> {
        let org = self.rules.get(self.store, event.org_id).await?;
        let ttl = (now + self.retention).timestamp();
        let mut tasks = Vec::new();
        let mut routes = Vec::new();
        let mut created = 0u32;
        for rule in org.rules.matching(event) {
            let mut route = RuleRoute {
                rule_key: rule.key.to_string(),
                deliveries: Vec::new(),
            };
            for channel_id in &rule.channel_ids {
                let Some(channel) = org.channels.get(channel_id) else {
                    // Deleting a referenced channel is refused; this is a race with a delete.
                    warn!(rule = %rule.key, channel_id = %channel_id, "rule names a channel that no longer exists");
                    continue;
                };
                for recipient in recipients(event, rule, channel) {
                    let mut delivery = new_delivery(event, rule, channel, recipient.as_ref(), now);
                    let not_before = defer_for_quiet_hours(&mut delivery, rule, now);
                    let recorded = self
                        .record(&mut delivery, rule, channel, recipient.as_ref(), ttl, now)
                        .await?;
                    let stands = recorded.as_ref().map_or(&delivery, |e| &e.delivery);
                    route.deliveries.push(RoutedDelivery {
                        delivery_id: stands.id,
                        channel_id: stands.channel_id,
                        recipient: stands.recipient.clone(),
                        status: stands.status,
                        reason: stands.reason.clone(),
                    });
                    let enqueue = match recorded {
                        None => {
                            created += 1;
                            self.count(&delivery).await?;
                            pending(delivery.status)
                        }
                        // Already on record: re-enqueue only after a crash between record
                        // and enqueue (this message is received again and no attempt was ever
                        // made); otherwise its dispatch message exists, and a second one could
                        // send the same attempt twice concurrently.
                        Some(existing) => {
                            redelivered
                                && pending(existing.delivery.status)
                                && existing.delivery.attempts.is_empty()
                        }
                    };
                    if enqueue {
                        let task = DispatchTask {
                            delivery_id: delivery.id,
                            org_id: event.org_id,
                            rule_key: rule.key.clone(),
                            channel_id: channel.id,
                            recipient,
                            attempt: 1,
                            not_before,
                            event: event.clone(),
                            template: rule.template.clone(),
                            manual: None,
                        };
                        let message =
                            Outgoing::now(serde_json::to_string(&task)?).in_group(task.lane());
                        tasks.push(match not_before {
                            // Longer than the queue's maximum delay: the dispatcher re-delays
                            // it in hops until `not_before` (docs/pipeline.md).
                            Some(t) => message.delayed((t - now).to_std().unwrap_or_default()),
                            None => message,
                        });
                    }
                }
            }
            routes.push(route);
        }
        debug!(rules = routes.len(), deliveries = created, "event matched");
        Ok(Routed {
            messages: tasks,
            routes,
            created,
        })
    }
}

/// What matching one event produced.
struct Routed {
    /// Its dispatch messages, in order.
    messages: Vec<Outgoing>,
    /// The rules it matched, each with the deliveries it made.
    routes: Vec<RuleRoute>,
    /// Deliveries this call created.
    created: u32,
}

impl Matcher<'_> {
    /// Records a new delivery, counting it against the frequency cap in force when it would be
    /// sent: a capped one is recorded `suppressed` instead. `None` when this call created it;
    /// the existing record otherwise.
    async fn record(
        &self,
        delivery: &mut Delivery,
        rule: &Rule,
        channel: &Channel,
        recipient: Option<&Recipient>,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, RouteError> {
        let cap = caps::effective(rule, channel.frequency_cap);
        let (Some(cap), Some(user), true) = (cap, recipient, pending(delivery.status)) else {
            return Ok(deliveries::create(self.store, delivery, ttl).await?);
        };
        let window = caps::window(cap, now);
        let counter = keys::cap_counter(
            delivery.org_id,
            channel.id,
            user.user_id.as_str(),
            cap,
            &window,
        );
        delivery.cap_slot = Some(window.slot(cap));
        let created = deliveries::create_within_cap(
            self.store,
            delivery,
            ttl,
            &counter,
            cap.per_user,
            window.end.timestamp(),
        )
        .await?;
        match created {
            CappedCreate::Created => Ok(None),
            CappedCreate::Exists(existing) => Ok(Some(*existing)),
            CappedCreate::Capped => {
                delivery.cap_slot = None;
                delivery.status = DeliveryStatus::Suppressed;
                delivery.reason = Some(caps::reason(cap, user.user_id.as_str()));
                info!(rule = %rule.key, channel_id = %channel.id, "frequency cap reached; delivery suppressed");
                Ok(deliveries::create(self.store, delivery, ttl).await?)
            }
        }
    }

    /// Counts a delivery this matcher created in the stats when it is already decided
    /// (suppressed, failed) or held (deferred); queued ones are counted by the dispatcher.
    async fn count(&self, delivery: &Delivery) -> Result<(), RouteError> {
        if delivery.status != DeliveryStatus::Queued {
            stats::record(self.store, delivery).await?;
        }
        Ok(())
    }
}

/// Statuses the dispatcher still has to act on.
fn pending(status: DeliveryStatus) -> bool {
    matches!(status, DeliveryStatus::Queued | DeliveryStatus::Deferred)
}

/// Quiet hours hold email, SMS and push deliveries of a rule that sets them: such a delivery is
/// recorded `deferred` and its dispatch waits until the window's end, which is returned.
fn defer_for_quiet_hours(
    delivery: &mut Delivery,
    rule: &Rule,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if delivery.status != DeliveryStatus::Queued || !delivery.channel_kind.honours_quiet_hours() {
        return None;
    }
    let until = quiet::next_allowed(now, rule.quiet_hours.as_ref()?)?;
    delivery.status = DeliveryStatus::Deferred;
    delivery.reason = Some(format!(
        "quiet hours until {}",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    Some(until)
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
        engagement: Vec::new(),
        next_attempt_at: None,
        cap_slot: None,
        created_at: now,
        updated_at: now,
    }
}
