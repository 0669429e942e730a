//! The matcher function: events from the match queue → deliveries on record and on the
//! dispatch queue.
//!
//! For each event it evaluates the org's compiled rules, and for each matching rule and each of
//! its channels creates one delivery — one per recipient for user-facing kinds. Delivery ids
//! are deterministic ([`delivery_id`]), and a delivery is created only if absent, so a match
//! message handled twice, or a duplicate event, never makes a second delivery.

pub mod alerts;
pub mod cache;
pub mod digests;
pub mod groups;

use chrono::{DateTime, Utc};
use herald_core::delivery::plan::recipients;
use herald_core::delivery::{caps, quiet};
use std::collections::BTreeMap;

use herald_core::domain::RuleKey;
use herald_core::domain::SilenceId;
use herald_core::domain::alert::{AlertAction, DedupKey};
use herald_core::domain::channel::Channel;
use herald_core::domain::delivery::{Delivery, DeliveryStatus, Trigger};
use herald_core::domain::digest;
use herald_core::domain::event::{Event, Recipient};
use herald_core::domain::rule::Rule;
use herald_shared::pipeline::{BatchOutcome, DispatchTask, MatchTask, QueueMessage, delivery_id};
use herald_shared::queue::{self, Outgoing, Queue, QueueError};
use herald_shared::repo::deliveries::{CappedCreate, Versioned};
use herald_shared::repo::events::{AlertOutcome, AlertOutcomeKind, RoutedDelivery, RuleRoute};
use herald_shared::repo::{RepoError, deliveries, events, stats};
use herald_shared::store::{Store, StoreError, keys};
use tracing::{debug, info, instrument, warn};

pub use cache::RulesCache;

/// What the matcher needs.
#[derive(Debug, Clone, Copy)]
pub struct Matcher<'a> {
    pub store: &'a dyn Store,
    pub dispatch_queue: &'a dyn Queue,
    /// Where the matcher schedules its own delayed auto-resolve checks (the match queue);
    /// `None` turns `autoResolveSeconds` off.
    pub match_queue: Option<&'a dyn Queue>,
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

impl From<RepoError> for RouteError {
    fn from(e: RepoError) -> Self {
        Self::Store(e.into_store())
    }
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
        // Auto-resolve checks that are not due (or whose instance is gone) end here; a due
        // one goes on as the resolve it carries.
        let mut due = Vec::with_capacity(tasks.len());
        let (scheduled, tasks): (Vec<_>, Vec<_>) =
            tasks.into_iter().partition(|(_, t)| t.is_scheduled());
        for (message, task) in scheduled {
            let redelivered = again(&message, &task);
            let result = match (&task.group_tick, &task.digest_flush) {
                (Some(tick), _) => self.group_tick(&task, tick, redelivered, now).await,
                (None, Some(flush)) => self.digest_flush(&task, flush, redelivered, now).await,
                (None, None) => Ok(()),
            };
            if let Err(e) = result {
                warn!(message_id = %message.id, error = %e, "group tick or digest flush failed; it will be retried");
                outcome.failed.push(message.id);
            }
        }
        for (message, mut task) in tasks {
            let Some(check) = task.auto_resolve.clone() else {
                due.push((message, task));
                continue;
            };
            match self.auto_resolve(&task, &check, now).await {
                Ok(Some(event)) => {
                    task.event = event;
                    due.push((message, task));
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(message_id = %message.id, error = %e, "auto-resolve check failed; it will be retried");
                    outcome.failed.push(message.id);
                }
            }
        }
        let tasks = due;
        let routed = futures::future::join_all(
            tasks
                .iter()
                .map(|(message, task)| self.route(&task.event, again(message, task), now)),
        )
        .await;
        let mut matched: Vec<Matched> = Vec::with_capacity(tasks.len());
        let mut dispatch = Vec::new();
        let mut checks = Vec::new();
        let mut deduplicated = 0u32;
        for ((message, task), result) in tasks.into_iter().zip(routed) {
            match result {
                Ok(routed) => {
                    dispatch.extend(routed.messages);
                    checks.extend(routed.checks);
                    deduplicated += routed.deduplicated;
                    matched.push((
                        message,
                        task.event,
                        routed.routes,
                        routed.created,
                        routed.counted,
                    ));
                }
                Err(e) => {
                    warn!(message_id = %message.id, event_id = %task.event.id, error = %e, "matching failed; the event will be retried");
                    outcome.failed.push(message.id);
                }
            }
        }
        if let Err(e) = self.send_checks(checks).await {
            // Before the dispatch messages: received again, an event of an open alert schedules its
            // check again, and nothing was enqueued twice.
            warn!(error = %e, "auto-resolve checks not scheduled; the batch's events will be retried");
            outcome
                .failed
                .extend(matched.into_iter().map(|(message, ..)| message.id));
            return outcome;
        }
        if let Err(e) = queue::send_all(self.dispatch_queue, dispatch).await {
            // Received again, each event re-enqueues its deliveries not yet attempted.
            warn!(error = %e, "dispatch queue refused the batch's deliveries; its events will be retried");
            outcome
                .failed
                .extend(matched.into_iter().map(|(message, ..)| message.id));
            return outcome;
        }
        let counted_before = self.counted_before(&matched).await;
        let ttl = (now + self.retention).timestamp();
        let marks = matched.iter().map(|(_, event, rules, created, _)| {
            events::mark_matched(self.store, event, rules.clone(), *created, ttl, now)
        });
        let marked = futures::future::join_all(marks).await;
        info!(
            events = marked.len(),
            deliveries = matched
                .iter()
                .map(|(_, _, _, created, _)| created)
                .sum::<u32>(),
            deduplicated,
            "batch matched"
        );
        // The batch's outcome counters, one `ADD` per counter item: only for events marked
        // matched now, and not again for an event received again after it was marked.
        let tally = stats::Tally::default();
        for (((message, event, _, _, counted), result), before) in
            matched.into_iter().zip(marked).zip(counted_before)
        {
            if let Err(e) = result {
                warn!(message_id = %message.id, event_id = %event.id, error = %e, "marking the event matched failed; it will be retried");
                outcome.failed.push(message.id);
                continue;
            }
            if before {
                continue;
            }
            for (channel, rule, counter) in counted {
                tally.count(event.org_id, now.date_naive(), channel, &rule, counter, 1);
            }
        }
        if let Err(e) = tally.flush(self.store).await {
            // Like the dispatcher's: the outcomes are on the event records; only counts are lost.
            warn!(error = %e, "outcome counters not written");
        }
        outcome
    }

    /// For each matched event: whether it was marked matched before this receive (a message
    /// received again after its event was marked), so its outcomes are already counted. Reads
    /// the records of redelivered messages only.
    async fn counted_before(&self, matched: &[Matched]) -> Vec<bool> {
        futures::future::join_all(matched.iter().map(|(message, event, ..)| async move {
            if message.receive_count <= 1 {
                return false;
            }
            matches!(
                events::get(self.store, event.org_id, &event.id).await,
                Ok(Some(r)) if r.stage == events::Stage::Matched
            )
        }))
        .await
    }

    /// Records `event`'s deliveries and returns their dispatch messages, not yet sent.
    ///
    /// Rules that give the event a dedup key (its own, or their `alerting.dedupKey` template)
    /// route it through its alert ([`alerts`]); the others make one delivery per channel as
    /// they always did. Either way an active silence turns a delivery into a `suppressed` one.
    #[instrument(skip_all, fields(event_id = %event.id, org_id = %event.org_id, event_type = %event.event_type))]
    async fn route(
        &self,
        event: &Event,
        redelivered: bool,
        now: DateTime<Utc>,
    ) -> Result<Routed, RouteError> {
        let org = self.rules.get(self.store, event.org_id).await?;
        let ttl = (now + self.retention).timestamp();
        let mut routed = Routed::default();
        let mut keyed: BTreeMap<DedupKey, Vec<&Rule>> = BTreeMap::new();
        for rule in org.rules.matching(event) {
            routed.route_of(&rule.key);
            // A digest rule collects events: an event's own dedup key does not make it an alert.
            let key = match (&rule.alerting, &rule.digest) {
                (Some(alerting), _) => alerting.key_for(event, &rule.key),
                (None, Some(_)) => None,
                (None, None) => event.dedup_key().cloned(),
            };
            match key {
                Some(key) => keyed.entry(key).or_default().push(rule),
                None if event.action() != AlertAction::Trigger => {
                    info!(rule = %rule.key, action = event.action().as_str(), "no dedup key for this rule: the action is ignored");
                }
                None => {
                    for channel_id in &rule.channel_ids {
                        let Some(channel) = org.channels.get(channel_id) else {
                            // Deleting a referenced channel is refused; this is a race with a delete.
                            warn!(rule = %rule.key, channel_id = %channel_id, "rule names a channel that no longer exists");
                            continue;
                        };
                        let silence = org.silence_for(event, &rule.key, channel.id, now);
                        if let Some(digest) = &rule.digest
                            && silence.is_none()
                            && digest::takes_digests(channel.kind())
                        {
                            self.join_digests(
                                &mut routed,
                                event,
                                rule,
                                digest,
                                channel,
                                redelivered,
                                ttl,
                                now,
                            )
                            .await?;
                            continue;
                        }
                        let phase = Phase::Event { silence };
                        self.fan_out(
                            &mut routed,
                            event,
                            rule,
                            channel,
                            &phase,
                            redelivered,
                            ttl,
                            now,
                        )
                        .await?;
                    }
                }
            }
        }
        // An acknowledge or resolve naming its key acts on that alert whatever rules match:
        // the follow-ups go where the trigger went, not where this event would.
        if event.action() != AlertAction::Trigger
            && let Some(key) = event.dedup_key()
        {
            keyed.entry(key.clone()).or_default();
        }
        for (key, rules) in keyed {
            self.route_alert(
                &mut routed,
                &org,
                event,
                &key,
                &rules,
                redelivered,
                ttl,
                now,
            )
            .await?;
        }
        debug!(
            rules = routed.routes.len(),
            deliveries = routed.created,
            "event matched"
        );
        Ok(routed)
    }

    /// Records the deliveries of `event` by `rule` to `channel` — one per recipient for
    /// user-facing kinds — in `phase`, and adds their dispatch messages to `routed`. Returns
    /// whether a delivery that will reach the channel (not silenced) exists now, and whether
    /// this call created one.
    #[allow(clippy::too_many_arguments)]
    async fn fan_out(
        &self,
        routed: &mut Routed,
        event: &Event,
        rule: &Rule,
        channel: &Channel,
        phase: &Phase<'_>,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<FanOut, RouteError> {
        let mut out = FanOut::default();
        for recipient in recipients(event, rule, channel) {
            let user = recipient.as_ref().map(|r| &r.user_id);
            let mut delivery = new_delivery(event, rule, channel, recipient.as_ref(), now);
            match phase {
                Phase::Event { silence } => {
                    if let Some(id) = silence {
                        silence_delivery(&mut delivery, *id);
                    }
                }
                Phase::Alert(a) => {
                    if let Some(silenced) = a.silence {
                        silence_delivery(&mut delivery, silenced);
                    }
                    delivery.id = alerts::delivery_id(event.org_id, a, &rule.key, channel.id, user);
                    if let Some(trigger) = a.stage.follow_up_trigger() {
                        delivery.trigger = trigger;
                        // A follow-up only where the trigger reached (or is on its way to) the
                        // channel: never a "resolved" for an alert nobody was told about.
                        let trigger = alerts::Instance {
                            stage: alerts::Stage::Trigger,
                            silence: None,
                            ..**a
                        };
                        let trigger_id = alerts::delivery_id(
                            event.org_id,
                            &trigger,
                            &rule.key,
                            channel.id,
                            user,
                        );
                        let notified = deliveries::get(self.store, event.org_id, trigger_id)
                            .await?
                            .is_some_and(|t| alerts::notified(t.delivery.status));
                        if !notified {
                            continue;
                        }
                    }
                }
            }
            let silenced = delivery.status == DeliveryStatus::Suppressed;
            let not_before = defer_for_quiet_hours(&mut delivery, rule, now);
            let recorded = self
                .record(&mut delivery, rule, channel, recipient.as_ref(), ttl, now)
                .await?;
            let status = recorded
                .as_ref()
                .map_or(delivery.status, |e| e.delivery.status);
            let stands = recorded.as_ref().map_or(&delivery, |e| &e.delivery);
            match phase {
                // Another event's delivery of the instance: this event was counted into it.
                Phase::Alert(a) if stands.event_id != event.id => {
                    let mut outcome = AlertOutcome::new(
                        match a.silence {
                            Some(_) => AlertOutcomeKind::Silenced,
                            None => AlertOutcomeKind::Deduplicated,
                        },
                        a.key.as_str(),
                    );
                    outcome.channel_id = Some(channel.id);
                    outcome.instance_id = Some(a.instance);
                    outcome.delivery_id = Some(stands.id);
                    outcome.silence_id = a.silence;
                    routed.outcome(&rule.key, outcome);
                }
                _ => {
                    if recorded.is_none() && silenced_by(&delivery).is_some() {
                        routed.count(channel.id, &rule.key, AlertOutcomeKind::Silenced);
                    }
                    routed.route_of(&rule.key).deliveries.push(RoutedDelivery {
                        delivery_id: stands.id,
                        channel_id: stands.channel_id,
                        recipient: stands.recipient.clone(),
                        status: stands.status,
                        reason: stands.reason.clone(),
                    });
                }
            }
            out.notified |= alerts::notified(status);
            let enqueue = match recorded {
                None => {
                    routed.created += 1;
                    out.created |= !silenced;
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
                    critical: rule.critical,
                    manual: None,
                    recovered: None,
                    digest: None,
                    group: None,
                };
                let message = Outgoing::now(serde_json::to_string(&task)?).in_group(task.lane());
                routed.messages.push(match not_before {
                    // Longer than the queue's maximum delay: the dispatcher re-delays
                    // it in hops until `not_before` (docs/pipeline.md).
                    Some(t) => message.delayed((t - now).to_std().unwrap_or_default()),
                    None => message,
                });
            }
        }
        Ok(out)
    }
}

/// A matched event of a batch: its message, the event, its routes, the deliveries it created
/// and its outcome counters.
type Matched = (
    QueueMessage,
    Event,
    Vec<RuleRoute>,
    u32,
    Vec<(herald_core::domain::ChannelId, RuleKey, &'static str)>,
);

/// What one fan-out did.
#[derive(Debug, Default, Clone, Copy)]
struct FanOut {
    /// A delivery that reaches the channel exists (created now or before).
    notified: bool,
    /// This call created such a delivery.
    created: bool,
}

/// What a delivery stands for.
enum Phase<'a> {
    /// An event without an alert: one delivery per (event, rule, channel, recipient).
    Event { silence: Option<SilenceId> },
    /// A trigger or resolved follow-up of an alert instance.
    Alert(&'a alerts::Instance<'a>),
}

/// The start of the reason of a delivery a silence suppressed: `silenced by <id>`.
pub const SILENCED_BY: &str = "silenced by ";

/// The silence a delivery was suppressed by, from its reason.
pub fn silenced_by(delivery: &Delivery) -> Option<&str> {
    delivery.reason.as_deref()?.strip_prefix(SILENCED_BY)
}

pub(crate) fn silence_delivery(delivery: &mut Delivery, silence: SilenceId) {
    if delivery.status == DeliveryStatus::Queued {
        delivery.status = DeliveryStatus::Suppressed;
        delivery.reason = Some(format!("{SILENCED_BY}{silence}"));
    }
}

/// What matching one event produced.
#[derive(Default)]
struct Routed {
    /// Its dispatch messages, in order.
    messages: Vec<Outgoing>,
    /// Delayed auto-resolve checks for the match queue.
    checks: Vec<Outgoing>,
    /// Alerts this event was a duplicate trigger of (counted, not sent).
    deduplicated: u32,
    /// The rules it matched (and those an acknowledge or resolve acted through), each with
    /// the deliveries it made.
    routes: Vec<RuleRoute>,
    /// Deliveries this call created.
    created: u32,
    /// Outcome counters to add to the stats: (channel, rule, counter).
    counted: Vec<(herald_core::domain::ChannelId, RuleKey, &'static str)>,
}

impl Routed {
    /// The route of `rule`, added (with no deliveries yet) on first use.
    fn route_of(&mut self, rule: &RuleKey) -> &mut RuleRoute {
        let i = match self.routes.iter().position(|r| r.rule_key == rule.as_str()) {
            Some(i) => i,
            None => {
                self.routes.push(RuleRoute::new(rule.as_str()));
                self.routes.len() - 1
            }
        };
        &mut self.routes[i]
    }

    /// Records what `rule` did with the event's alert, and counts it when it is per channel.
    fn outcome(&mut self, rule: &RuleKey, outcome: AlertOutcome) {
        if let Some(channel) = outcome.channel_id {
            self.count(channel, rule, outcome.outcome);
        }
        self.route_of(rule).outcomes.push(outcome);
    }

    fn count(
        &mut self,
        channel: herald_core::domain::ChannelId,
        rule: &RuleKey,
        kind: AlertOutcomeKind,
    ) {
        if let Some(counter) = kind.counter() {
            self.counted.push((channel, rule.clone(), counter));
        }
    }
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
        recovered: None,
        event_ids: Vec::new(),
        event_count: None,
        created_at: now,
        updated_at: now,
    }
}

/// Whether `task` may have been handled before: its message was received again, or ingest
/// forwarded its event again.
fn again(message: &QueueMessage, task: &MatchTask) -> bool {
    message.receive_count > 1 || task.forwarded_again
}
