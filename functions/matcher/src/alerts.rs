//! Routing an event through its alert (docs/alerts.md).
//!
//! For each dedup key the event has under its matching rules, the action is applied to the
//! alert of that key ([`herald_shared::repo::alerts::apply`], conditional writes), then:
//! - a trigger that opened an instance, or finds it still firing, creates the trigger
//!   deliveries of the instance — ids hash (org, key, instance, rule, channel, stage), so a
//!   duplicate trigger lands on the delivery already on record and stops there, and a rule or
//!   channel added later still gets its first message;
//! - a resolve sends a resolved follow-up to every (rule, channel) whose trigger delivery was
//!   delivered, sent or is still on its way; silences never hold those back;
//! - an acknowledge only changes the state.
//!
//! `autoResolveSeconds` is served by a delayed message on the match queue: it checks the
//! instance when it would expire, re-delays itself while triggers keep arriving, and posts the
//! resolve otherwise — the same on Lambda (SQS delay) and in `herald serve` (embedded queue).

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use herald_core::domain::alert::{
    AlertAction, AlertSignal, AlertState, DedupKey, acknowledgement_event_id, resolution_event_id,
};
use herald_core::domain::delivery::{DeliveryStatus, Trigger};
use herald_core::domain::event::Event;
use herald_core::domain::rule::Rule;
use herald_core::domain::{
    AlertInstanceId, ChannelId, DeliveryId, EventId, OrgId, RuleKey, SilenceId, UserId,
};
use herald_shared::pipeline::{AutoResolveCheck, MatchTask, alert_delivery_id};
use herald_shared::queue::{MAX_DELAY, Outgoing};
use herald_shared::repo::alerts::{self as repo, Action, Applied};

use herald_shared::repo::events::{AlertOutcome, AlertOutcomeKind};

use crate::cache::OrgRules;
use crate::{Matcher, Phase, RouteError, Routed};

/// Which message of an instance a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Trigger,
    /// Passed on to PagerDuty channels only: chat channels are not told of an acknowledge.
    Acknowledge,
    Resolve,
}

impl Stage {
    /// What starts a follow-up of this stage; `None` for the trigger itself.
    pub fn follow_up_trigger(self) -> Option<Trigger> {
        match self {
            Self::Trigger => None,
            Self::Acknowledge => Some(Trigger::Acknowledge),
            Self::Resolve => Some(Trigger::Resolve),
        }
    }

    fn of(action: AlertAction) -> Self {
        match action {
            AlertAction::Trigger => Self::Trigger,
            AlertAction::Acknowledge => Self::Acknowledge,
            AlertAction::Resolve => Self::Resolve,
        }
    }
}

/// One instance of an alert, as its deliveries need it.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    pub key: &'a DedupKey,
    pub instance: AlertInstanceId,
    pub stage: Stage,
    /// When the instance opened: the timestamp of its trigger deliveries' ids.
    pub opened_at: DateTime<Utc>,
    /// When it was acknowledged or resolved: the timestamp of its follow-ups' ids.
    pub followed_up_at: Option<DateTime<Utc>>,
    /// The silence that suppresses this trigger: its delivery gets an id of its own, so that
    /// once the silence ends the next trigger still notifies.
    pub silence: Option<SilenceId>,
}

/// The id of an alert delivery ([`herald_shared::pipeline::alert_delivery_id`]). A silenced
/// trigger has a stage of its own (`silenced:<silence>`).
pub fn delivery_id(
    org: OrgId,
    instance: &Instance<'_>,
    rule: &RuleKey,
    channel: ChannelId,
    recipient: Option<&UserId>,
) -> DeliveryId {
    let stage = match (instance.stage, instance.silence) {
        (Stage::Trigger, None) => "trigger".to_owned(),
        (Stage::Trigger, Some(s)) => format!("silenced:{s}"),
        (Stage::Acknowledge, _) => "acknowledge".to_owned(),
        (Stage::Resolve, _) => "resolve".to_owned(),
    };
    alert_delivery_id(
        org,
        instance.key.as_str(),
        instance.instance,
        rule,
        channel,
        &stage,
        recipient,
        match instance.stage {
            Stage::Trigger => instance.opened_at,
            Stage::Acknowledge | Stage::Resolve => {
                instance.followed_up_at.unwrap_or(instance.opened_at)
            }
        },
    )
}

/// Whether a trigger delivery in `status` reached, or is on its way to, its channel: what
/// earns a resolved follow-up. Queued and deferred triggers go first in their lane.
pub fn notified(status: DeliveryStatus) -> bool {
    matches!(
        status,
        DeliveryStatus::Queued
            | DeliveryStatus::Deferred
            | DeliveryStatus::Sent
            | DeliveryStatus::Delivered
    )
}

impl Matcher<'_> {
    /// Applies `event`'s action to the alert of `key`, for the matching `rules` that give
    /// it that key, and records the deliveries that follow.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn route_alert(
        &self,
        routed: &mut Routed,
        org: &OrgRules,
        event: &Event,
        key: &DedupKey,
        rules: &[&Rule],
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let auto_resolve_seconds = rules
            .iter()
            .filter_map(|r| r.alerting.as_ref()?.auto_resolve_seconds)
            .min();
        let action = Action {
            action: event.action(),
            event,
            by: None,
            auto_resolve_seconds,
        };
        let applied = repo::apply(self.store, event.org_id, key, action, ttl, now).await?;
        let opened = matches!(applied, Applied::Opened(_));
        let record = match applied {
            Applied::Opened(record) => {
                info!(dedup_key = %key, instance_id = %record.alert.instance_id, "alert opened");
                repo::count(self.store, event.org_id, &record.alert, 1, now).await?;
                if let Some(after) = record.alert.auto_resolve_seconds {
                    routed.checks.push(auto_resolve_check(
                        event,
                        key,
                        record.alert.instance_id,
                        after,
                        after,
                    )?);
                }
                record
            }
            Applied::Counted(record) => {
                // A retried message may be the one whose check was never scheduled; a second
                // check of one instance is harmless (each re-delays or resolves once).
                if redelivered && let Some(after) = record.alert.auto_resolve_seconds {
                    routed.checks.push(auto_resolve_check(
                        event,
                        key,
                        record.alert.instance_id,
                        after,
                        after,
                    )?);
                }
                if record.alert.state != herald_core::domain::alert::AlertState::Firing {
                    // Acknowledged: counted, no notification.
                    routed.deduplicated += 1;
                    for rule in rules {
                        for channel_id in &rule.channel_ids {
                            let mut outcome =
                                AlertOutcome::new(AlertOutcomeKind::Deduplicated, key.as_str());
                            outcome.channel_id = Some(*channel_id);
                            outcome.instance_id = Some(record.alert.instance_id);
                            outcome.reason = Some("acknowledged: no repeat".to_owned());
                            routed.outcome(&rule.key, outcome);
                        }
                    }
                    return Ok(());
                }
                record
            }
            Applied::Acknowledged(record) => {
                info!(dedup_key = %key, instance_id = %record.alert.instance_id, "alert acknowledged");
                return self
                    .follow_up(
                        routed,
                        org,
                        event,
                        key,
                        &record.alert,
                        redelivered,
                        ttl,
                        now,
                    )
                    .await;
            }
            Applied::Resolved(record) => {
                info!(dedup_key = %key, instance_id = %record.alert.instance_id, "alert resolved");
                return self
                    .follow_up(
                        routed,
                        org,
                        event,
                        key,
                        &record.alert,
                        redelivered,
                        ttl,
                        now,
                    )
                    .await;
            }
            // A resolve received again after it resolved the instance: its follow-ups may not
            // all be on record (a crash in between); creating them again is idempotent.
            // The resolution event of an instance the API resolved carries its follow-ups.
            // Likewise an acknowledge, and the acknowledgement event of an instance the API
            // acknowledged.
            Applied::Ignored(_, Some(record))
                if (redelivered
                    || event.id.as_str()
                        == follow_up_event_id(event.action(), record.alert.instance_id))
                    && follow_up_due(event.action(), record.alert.state) =>
            {
                return self
                    .follow_up(
                        routed,
                        org,
                        event,
                        key,
                        &record.alert,
                        redelivered,
                        ttl,
                        now,
                    )
                    .await;
            }
            Applied::Ignored(reason, record) => {
                info!(dedup_key = %key, action = event.action().as_str(), reason, "alert action ignored");
                for rule in rules {
                    let mut outcome = AlertOutcome::new(AlertOutcomeKind::Ignored, key.as_str());
                    outcome.instance_id = record.as_ref().map(|r| r.alert.instance_id);
                    outcome.reason = Some(reason.to_owned());
                    routed.outcome(&rule.key, outcome);
                }
                return Ok(());
            }
        };
        // Firing: each (rule, channel) gets the instance's trigger delivery once.
        let mut event = event.clone();
        event.alert = Some(AlertSignal {
            dedup_key: Some(key.clone()),
            action: AlertAction::Trigger,
            firing_since: None,
        });
        let mut created_any = false;
        for rule in rules {
            let grouping = rule.alerting.as_ref().and_then(|a| a.grouping());
            let joined = match &grouping {
                Some(grouping) if opened || redelivered => {
                    created_any = true;
                    Some(
                        self.join_group(
                            routed,
                            &event,
                            key,
                            &record.alert,
                            rule,
                            grouping,
                            redelivered,
                            ttl,
                            now,
                        )
                        .await?,
                    )
                }
                _ => None,
            };
            for channel_id in &rule.channel_ids {
                let Some(channel) = org.channels.get(channel_id) else {
                    warn!(rule = %rule.key, channel_id = %channel_id, "rule names a channel that no longer exists");
                    continue;
                };
                if let Some(grouping) = &grouping
                    && crate::groups::takes_groups(channel)
                {
                    // The group's message stands for this alert here: joined now, or a
                    // duplicate of a member already in it.
                    let (kind, silence) = match &joined {
                        Some(_) => match org.silence_for(&event, &rule.key, channel.id, now) {
                            Some(s) => (AlertOutcomeKind::Silenced, Some(s)),
                            None => (AlertOutcomeKind::Grouped, None),
                        },
                        None => (AlertOutcomeKind::Deduplicated, None),
                    };
                    let mut outcome = AlertOutcome::new(kind, key.as_str());
                    outcome.channel_id = Some(channel.id);
                    outcome.instance_id = Some(record.alert.instance_id);
                    outcome.group = Some(joined.clone().unwrap_or_else(|| {
                        herald_shared::repo::groups::group_hash(
                            &herald_core::domain::group::group_values(&grouping.by, &event),
                        )
                    }));
                    outcome.silence_id = silence;
                    routed.outcome(&rule.key, outcome);
                    continue;
                }
                let instance = Instance {
                    key,
                    instance: record.alert.instance_id,
                    stage: Stage::Trigger,
                    opened_at: record.alert.first_event_at,
                    followed_up_at: None,
                    silence: org.silence_for(&event, &rule.key, channel.id, now),
                };
                let out = self
                    .fan_out(
                        routed,
                        &event,
                        rule,
                        channel,
                        &Phase::Alert(&instance),
                        redelivered,
                        ttl,
                        now,
                    )
                    .await?;
                created_any |= out.created;
                if out.notified && (out.created || redelivered) {
                    repo::add_target(
                        self.store,
                        event.org_id,
                        key,
                        record.alert.instance_id,
                        &rule.key,
                        channel.id,
                    )
                    .await?;
                }
            }
        }
        if !created_any {
            routed.deduplicated += 1;
        }
        Ok(())
    }

    /// The follow-ups of `event`'s action on `alert`, one per (rule, channel) its trigger
    /// reached: resolved messages for rules that send them; acknowledgements to PagerDuty
    /// channels only.
    #[allow(clippy::too_many_arguments)]
    async fn follow_up(
        &self,
        routed: &mut Routed,
        org: &OrgRules,
        event: &Event,
        key: &DedupKey,
        alert: &herald_core::domain::alert::Alert,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let action = event.action();
        let stage = Stage::of(action);
        if stage == Stage::Resolve {
            self.leave_groups(routed, org, event, alert, redelivered, ttl, now)
                .await?;
        }
        let mut event = event.clone();
        event.alert = Some(AlertSignal {
            dedup_key: Some(key.clone()),
            action,
            firing_since: Some(alert.first_event_at),
        });
        let followed_up_at = match stage {
            Stage::Acknowledge => alert.acknowledged_at,
            _ => alert.resolved_at,
        };
        let instance = Instance {
            key,
            instance: alert.instance_id,
            stage,
            opened_at: alert.first_event_at,
            followed_up_at: Some(followed_up_at.unwrap_or(now)),
            silence: None,
        };
        for target in &alert.targets {
            // The rule as it is now; one deleted since still gets its follow-up, sent as the
            // trigger was (no template).
            let rule = org
                .by_key
                .get(&target.rule_key)
                .cloned()
                .unwrap_or_else(|| stand_in_rule(event.org_id, &target.rule_key, now));
            if stage == Stage::Resolve && !rule.alerting.as_ref().is_none_or(|a| a.send_resolved) {
                continue;
            }
            let Some(channel) = org.channels.get(&target.channel_id) else {
                continue;
            };
            if stage == Stage::Acknowledge && !takes_acknowledgements(channel) {
                continue;
            }
            self.fan_out(
                routed,
                &event,
                &rule,
                channel,
                &Phase::Alert(&instance),
                redelivered,
                ttl,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Handles a due auto-resolve check: `Some(event)` to route (the resolve), `None` when the
    /// check is over — the instance is gone, or it fired again and the check was re-delayed.
    pub(crate) async fn auto_resolve(
        &self,
        task: &MatchTask,
        check: &AutoResolveCheck,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, RouteError> {
        let Some(key) = task.event.dedup_key() else {
            return Ok(None);
        };
        let current = repo::get(self.store, task.event.org_id, key).await?;
        let Some(record) =
            current.filter(|r| r.alert.instance_id == check.instance_id && r.alert.state.is_open())
        else {
            return Ok(None);
        };
        let last = record.last_event_at.unwrap_or(record.alert.first_event_at);
        let due = last + chrono::Duration::seconds(i64::from(check.after_seconds));
        if due > now {
            let wait = u32::try_from((due - now).num_seconds().max(1)).unwrap_or(u32::MAX);
            let message = auto_resolve_check(
                &task.event,
                key,
                check.instance_id,
                check.after_seconds,
                wait,
            )?;
            self.send_checks(vec![message]).await?;
            return Ok(None);
        }
        info!(dedup_key = %key, instance_id = %check.instance_id, after_seconds = check.after_seconds, "alert stopped firing: auto-resolved");
        Ok(Some(task.event.clone()))
    }

    /// Sends delayed checks to the match queue; without one (a matcher built without it),
    /// auto-resolve is off and says so.
    pub(crate) async fn send_checks(&self, checks: Vec<Outgoing>) -> Result<(), RouteError> {
        if checks.is_empty() {
            return Ok(());
        }
        match self.match_queue {
            Some(queue) => Ok(herald_shared::queue::send_all(queue, checks).await?),
            None => {
                warn!(
                    checks = checks.len(),
                    "no match queue to schedule auto-resolve checks on"
                );
                Ok(())
            }
        }
    }
}

/// The delayed check of `instance`, `wait_seconds` from now (hops of at most the queue's
/// maximum delay). Its event is the resolve it will post: `event`'s type, module and
/// properties, with the key and `action: resolve`.
fn auto_resolve_check(
    event: &Event,
    key: &DedupKey,
    instance: AlertInstanceId,
    after_seconds: u32,
    wait_seconds: u32,
) -> Result<Outgoing, RouteError> {
    let mut resolve = event.clone();
    if let Ok(id) = EventId::parse(format!("auto-resolve:{instance}")) {
        resolve.id = id;
    }
    resolve.alert = Some(AlertSignal {
        dedup_key: Some(key.clone()),
        action: AlertAction::Resolve,
        firing_since: None,
    });
    let task = MatchTask {
        event: resolve,
        auto_resolve: Some(AutoResolveCheck {
            instance_id: instance,
            after_seconds,
        }),
        group_tick: None,
        digest_flush: None,
        forwarded_again: false,
    };
    let delay = std::time::Duration::from_secs(u64::from(wait_seconds)).min(MAX_DELAY);
    Ok(Outgoing::now(serde_json::to_string(&task)?)
        .in_group(event.org_id.to_string())
        .delayed(delay))
}

/// Whether `channel` is told of an acknowledge: PagerDuty's incidents are acknowledged
/// there; a chat message saying "acknowledged" would be noise.
fn takes_acknowledgements(channel: &herald_core::domain::channel::Channel) -> bool {
    matches!(
        &channel.config,
        herald_core::domain::channel::ChannelConfig::Webhook(w)
            if w.format == herald_core::domain::channel::WebhookFormat::PagerDuty
    )
}

/// The id of the event that carries an instance's follow-ups when the API acted on it.
fn follow_up_event_id(action: AlertAction, instance: AlertInstanceId) -> String {
    match action {
        AlertAction::Acknowledge => acknowledgement_event_id(instance),
        _ => resolution_event_id(instance),
    }
}

/// Whether an `action` that changed nothing (the instance was already in its state) still has
/// follow-ups to make: a redelivered message, or the API's event for an instance it acted on.
fn follow_up_due(action: AlertAction, state: AlertState) -> bool {
    matches!(
        (action, state),
        (AlertAction::Resolve, AlertState::Resolved)
            | (AlertAction::Acknowledge, AlertState::Acknowledged)
    )
}

/// A rule deleted since it notified an instance: its follow-up still goes to the channel.
fn stand_in_rule(org: OrgId, key: &RuleKey, now: DateTime<Utc>) -> Rule {
    Rule {
        key: key.clone(),
        org_id: org,
        matcher: None,
        channel_ids: Vec::new(),
        frequency_cap: None,
        quiet_hours: None,
        recipients: Vec::new(),
        template: None,
        alerting: None,
        critical: false,
        digest: None,
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}
