//! Grouped rules (docs/alerts.md, "Grouping"): an alert of a rule with `alerting.groupBy` joins
//! the group of its `groupBy` values instead of notifying the rule's chat and webhook channels
//! itself; the group is notified by its ticks.
//!
//! - Joining or resolving a member writes the member item and the group item (conditionally on
//!   its version), scheduling a tick when none is pending early enough
//!   ([`herald_core::domain::group::reschedule`]).
//! - A tick is a delayed message on the match queue, like auto-resolve's check. Its id must be
//!   the group's pending `tickId`, else it is stale and dropped. A due tick lists the members,
//!   applies Alertmanager's `needsUpdate` ([`herald_core::domain::group::evaluate`]), creates one
//!   delivery per channel (`trigger: group`, id hashing (org, rule, channel, group, seq)) and
//!   records the message in the group, with its next tick.
//!
//! Everything lives in the store and in durable queue messages, so a restart neither loses nor
//! re-sends a group.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use herald_core::delivery::format::MessageContext;
use herald_core::delivery::format::template::Escape;
use herald_core::domain::DeliveryId;
use herald_core::domain::alert::{Alert, DedupKey};
use herald_core::domain::channel::Channel;
use herald_core::domain::delivery::Trigger;
use herald_core::domain::event::Event;
use herald_core::domain::group::{
    self as domain, GroupMessage, GroupStatus, Grouping, evaluate, group_values,
};
use herald_core::domain::rule::Rule;
use herald_shared::pipeline::{DispatchTask, GroupTick, MatchTask, group_delivery_id};
use herald_shared::queue::{self, Outgoing};
use herald_shared::repo::alerts as alert_repo;
use herald_shared::repo::groups::{self, Group, GroupRecord, Member};
use herald_shared::repo::{RepoError, deliveries};
use herald_shared::store::StoreError;

use crate::cache::OrgRules;
use crate::{Matcher, RouteError, Routed, new_delivery, pending};

/// How many times a group write that lost a race reads again.
const RETRIES: usize = 16;

/// Whether `channel` gets a grouped rule's group messages ([`domain::takes_groups`]).
pub fn takes_groups(channel: &Channel) -> bool {
    domain::takes_groups(&channel.config)
}

impl Matcher<'_> {
    /// `alert` (firing) joins its group of the grouped `rule`; returns the group's hash.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn join_group(
        &self,
        routed: &mut Routed,
        event: &Event,
        key: &DedupKey,
        alert: &Alert,
        rule: &Rule,
        grouping: &Grouping,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<String, RouteError> {
        let org = event.org_id;
        let values = group_values(&grouping.by, event);
        let hash = groups::group_hash(&values);
        let summary = MessageContext {
            event,
            rule_key: Some(&rule.key),
            template: rule.template.as_ref(),
            delivery_id: DeliveryId::new(),
            group: None,
            digest: None,
        }
        .summary(Escape::Plain);
        let mut matched = event.clone();
        matched.recipients.clear();
        let member = Member {
            dedup_key: key.as_str().to_owned(),
            instance_id: alert.instance_id,
            status: GroupStatus::Firing,
            starts_at: alert.first_event_at,
            ends_at: None,
            summary,
            event: Some(Box::new(matched)),
        };
        groups::put_member(self.store, org, &rule.key, &hash, &member, ttl).await?;
        alert_repo::add_group(self.store, org, key, alert.instance_id, &rule.key, &hash).await?;
        debug!(rule = %rule.key, group = %hash, dedup_key = %key, "alert joined its group");
        self.nudge(
            routed,
            event,
            &rule.key,
            values,
            grouping,
            redelivered,
            ttl,
            now,
        )
        .await?;
        Ok(hash)
    }

    /// `alert` resolved: its member of each group it joined is resolved, and the group nudged.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn leave_groups(
        &self,
        routed: &mut Routed,
        org: &OrgRules,
        event: &Event,
        alert: &Alert,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        for g in &alert.groups {
            let Some(rule) = org.by_key.get(&g.rule_key) else {
                continue;
            };
            let Some(grouping) = rule.alerting.as_ref().and_then(|a| a.grouping()) else {
                continue;
            };
            let at = alert.resolved_at.unwrap_or(now);
            let changed = groups::resolve_member(
                self.store,
                event.org_id,
                &rule.key,
                &g.group,
                alert.dedup_key.as_str(),
                alert.instance_id,
                at,
                ttl,
            )
            .await?;
            if !changed && !redelivered {
                continue;
            }
            let Some(current) = groups::get(self.store, event.org_id, &rule.key, &g.group).await?
            else {
                continue;
            };
            self.nudge(
                routed,
                event,
                &rule.key,
                current.group.values,
                &grouping,
                redelivered,
                ttl,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// A member of the group changed: bump the group's version and schedule a tick if none is
    /// pending early enough. Received again, a message re-sends the pending tick (a crash may
    /// have come between recording it and sending it; a duplicate tick is harmless).
    #[allow(clippy::too_many_arguments)]
    async fn nudge(
        &self,
        routed: &mut Routed,
        event: &Event,
        rule: &herald_core::domain::RuleKey,
        values: std::collections::BTreeMap<String, String>,
        grouping: &Grouping,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let org = event.org_id;
        let hash = groups::group_hash(&values);
        for _ in 0..RETRIES {
            let current = groups::get(self.store, org, rule, &hash).await?;
            let (mut group, read) = match current {
                Some(GroupRecord { group, version }) => (group, Some(version)),
                None => (Group::new(rule.clone(), values.clone()), None),
            };
            let current_first_at = group.first_at;
            if group.first_at.is_none() {
                group.first_at = Some(now);
            }
            let scheduled = domain::reschedule(&group.log(), &grouping.windows, now);
            if scheduled.is_none() && read.is_some() && current_first_at.is_some() {
                match groups::touch(self.store, org, rule, &hash).await {
                    Ok(()) => {
                        if redelivered && let Some(tick) = tick_message(event, &group, now)? {
                            routed.checks.push(tick);
                        }
                        return Ok(());
                    }
                    Err(RepoError::Store(StoreError::Conflict)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(at) = scheduled {
                group.previous_tick_id = group.tick_id.take();
                group.tick_id = Some(uuid::Uuid::now_v7().to_string());
                group.tick_at = Some(at);
            }
            match groups::put(self.store, org, &group, read, ttl).await {
                Ok(_) => {
                    if (scheduled.is_some() || redelivered)
                        && let Some(tick) = tick_message(event, &group, now)?
                    {
                        routed.checks.push(tick);
                    }
                    return Ok(());
                }
                Err(RepoError::Store(StoreError::Conflict)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Contended.into())
    }

    /// Handles a group tick: stale → dropped; not yet due → re-delayed; due → evaluated, the
    /// group message created and enqueued if one is needed, the group's log and next tick
    /// written.
    pub(crate) async fn group_tick(
        &self,
        task: &MatchTask,
        tick: &GroupTick,
        redelivered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let event = &task.event;
        let org_id = event.org_id;
        let Some(record) = groups::get(self.store, org_id, &tick.rule_key, &tick.group).await?
        else {
            return Ok(());
        };
        let group = &record.group;
        if group.tick_id.as_deref() != Some(tick.tick_id.as_str()) {
            // Received again after this tick was handled and its successor recorded: the
            // successor's message may never have been sent.
            if redelivered && group.previous_tick_id.as_deref() == Some(tick.tick_id.as_str()) {
                let next = tick_message(event, group, now)?;
                self.send_checks(next.into_iter().collect()).await?;
            }
            debug!(rule = %tick.rule_key, group = %tick.group, "stale group tick dropped");
            return Ok(());
        }
        let due = group.tick_at.unwrap_or(now);
        if due > now {
            // Longer than the queue's maximum delay: another hop.
            let next = tick_message(event, group, now)?;
            self.send_checks(next.into_iter().collect()).await?;
            return Ok(());
        }
        let org = self.rules.get(self.store, org_id).await?;
        let Some((rule, grouping)) = org
            .by_key
            .get(&tick.rule_key)
            .and_then(|r| Some((r, r.alerting.as_ref()?.grouping()?)))
        else {
            info!(rule = %tick.rule_key, group = %tick.group, "group tick of a rule no longer grouped dropped");
            return Ok(());
        };
        let all = groups::members(self.store, org_id, &rule.key, &group.group).await?;
        let ttl = (now + self.retention).timestamp();
        let held = Held::of(&org, rule, group, &all, now);
        let members: Vec<Member> = all
            .iter()
            .zip(&held.muted)
            .filter(|(_, muted)| !**muted)
            .map(|(m, _)| m.clone())
            .collect();
        if members.is_empty()
            && let Some((silence, until)) = held.firing
        {
            // Every alert of the group is silenced: nothing is sent, the log stays as it was,
            // each channel records the message it did not get, and the group looks again when
            // the silence ends.
            info!(rule = %rule.key, group = %group.group, silence = %silence, "group silenced");
            self.silenced_group(&org, event, rule, group, silence, due, ttl, now)
                .await?;
            let eval = domain::Evaluation {
                record: false,
                deliver: false,
                next_tick: Some(until),
                reset: false,
            };
            return self
                .record_tick(
                    event,
                    record,
                    &eval,
                    BTreeSet::new(),
                    BTreeSet::new(),
                    &grouping,
                    ttl,
                    now,
                )
                .await;
        }
        let ids = |status: GroupStatus| -> BTreeSet<String> {
            members
                .iter()
                .filter(|m| m.status == status)
                .map(Member::id)
                .collect()
        };
        let firing = ids(GroupStatus::Firing);
        let resolved = ids(GroupStatus::Resolved);
        let mut eval = evaluate(&group.log(), &firing, &resolved, &grouping, now);
        if let Some((_, until)) = held.firing {
            // Silenced alerts still fire: the group is not idle, and looks again when the
            // silence ends (they are notified then, as new).
            eval.reset = false;
            eval.next_tick = Some(eval.next_tick.map_or(until, |t| t.min(until)));
        }
        if eval.deliver {
            let listed = members
                .iter()
                .filter(|m| grouping.send_resolved || m.status == GroupStatus::Firing)
                .map(Member::to_alert)
                .collect();
            let message = GroupMessage::new(group.values.clone(), listed, grouping.max_alerts);
            info!(
                rule = %rule.key,
                group = %group.group,
                seq = group.seq,
                firing = message.counts.firing,
                resolved = message.counts.resolved,
                "group notified"
            );
            let dispatch = self
                .group_deliveries(
                    &org,
                    event,
                    rule,
                    group,
                    due,
                    &message,
                    redelivered,
                    ttl,
                    now,
                )
                .await?;
            queue::send_all(self.dispatch_queue, dispatch).await?;
        } else {
            debug!(rule = %rule.key, group = %group.group, "group tick: nothing to send");
        }
        self.record_tick(event, record, &eval, firing, resolved, &grouping, ttl, now)
            .await?;
        if eval.record || eval.reset {
            groups::drop_resolved(self.store, org_id, &rule.key, &tick.group, &all).await?;
        }
        Ok(())
    }

    /// Records, on each channel of `rule` that takes groups, the group message a silence held
    /// back: a `suppressed` group delivery naming the silence, one per (message number,
    /// silence) however many ticks find the group silenced.
    #[allow(clippy::too_many_arguments)]
    async fn silenced_group(
        &self,
        org: &OrgRules,
        event: &Event,
        rule: &Rule,
        group: &Group,
        silence: herald_core::domain::SilenceId,
        due: DateTime<Utc>,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        for channel in group_channels(org, rule) {
            let mut delivery = new_delivery(event, rule, channel, None, now);
            delivery.id = group_delivery_id(
                event.org_id,
                &rule.key,
                channel.id,
                &format!("{}#silenced:{silence}", group.group),
                group.seq,
                group.first_at.unwrap_or(due),
            );
            delivery.trigger = Trigger::Group;
            crate::silence_delivery(&mut delivery, silence);
            if deliveries::create(self.store, &delivery, ttl)
                .await?
                .is_none()
            {
                self.count(&delivery).await?;
            }
        }
        Ok(())
    }

    /// One delivery per channel of `rule` that takes groups, for message `seq` of `group`.
    #[allow(clippy::too_many_arguments)]
    async fn group_deliveries(
        &self,
        org: &OrgRules,
        event: &Event,
        rule: &Rule,
        group: &Group,
        at: DateTime<Utc>,
        message: &GroupMessage,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outgoing>, RouteError> {
        let mut out = Vec::new();
        for channel_id in &rule.channel_ids {
            let Some(channel) = org.channels.get(channel_id) else {
                continue;
            };
            if !takes_groups(channel) {
                continue;
            }
            let mut delivery = new_delivery(event, rule, channel, None, now);
            delivery.id = group_delivery_id(
                event.org_id,
                &rule.key,
                channel.id,
                &group.group,
                group.seq,
                at,
            );
            delivery.trigger = Trigger::Group;
            let recorded = deliveries::create(self.store, &delivery, ttl).await?;
            let enqueue = match recorded {
                None => {
                    self.count(&delivery).await?;
                    pending(delivery.status)
                }
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
                    recipient: None,
                    attempt: 1,
                    not_before: None,
                    event: event.clone(),
                    template: None,
                    critical: rule.critical,
                    manual: None,
                    group: Some(message.clone()),
                    recovered: None,
                    digest: None,
                };
                out.push(Outgoing::now(serde_json::to_string(&task)?).in_group(task.lane()));
            }
        }
        Ok(out)
    }

    /// Writes what a tick decided: the message in the log (`seq` + 1), the next tick. A member
    /// change since the group was read (its version moved) keeps the change and brings the
    /// next tick forward to a group interval from now, so nothing waits for the repeat.
    #[allow(clippy::too_many_arguments)]
    async fn record_tick(
        &self,
        event: &Event,
        record: GroupRecord,
        eval: &domain::Evaluation,
        firing: BTreeSet<String>,
        resolved: BTreeSet<String>,
        grouping: &Grouping,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let org = event.org_id;
        let ours = record.group.clone();
        let (mut group, mut read) = (record.group, record.version);
        let mut next_tick = eval.next_tick;
        let mut reset = eval.reset;
        for _ in 0..RETRIES {
            if eval.record {
                group.seq = ours.seq + 1;
                group.last_sent_at = Some(now);
                group.log_sent(&firing, &resolved);
            }
            if reset {
                group.first_at = None;
                group.last_sent_at = None;
                group.clear_sent();
            }
            group.previous_tick_id = group.tick_id.take();
            group.tick_at = next_tick;
            group.tick_id = next_tick.map(|_| uuid::Uuid::now_v7().to_string());
            match groups::put(self.store, org, &group, Some(read), ttl).await {
                Ok(_) => {
                    let next = tick_message(event, &group, now)?;
                    return self.send_checks(next.into_iter().collect()).await;
                }
                Err(RepoError::Store(StoreError::Conflict)) => {
                    let Some(current) =
                        groups::get(self.store, org, &ours.rule_key, &ours.group).await?
                    else {
                        return Ok(());
                    };
                    if current.group.tick_id != ours.tick_id || current.group.seq != ours.seq {
                        // A twin of this tick recorded it.
                        return Ok(());
                    }
                    (group, read) = (current.group, current.version);
                    if group.first_at.is_none() {
                        group.first_at = Some(now);
                    }
                    reset = false;
                    let soon = now + grouping.windows.interval;
                    next_tick = Some(next_tick.map_or(soon, |t| t.min(soon)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        warn!(group = %ours.group, "group tick contended; it will be retried");
        Err(RepoError::Contended.into())
    }
}

/// The channels of `rule` that get its group messages.
fn group_channels<'a>(org: &'a OrgRules, rule: &Rule) -> Vec<&'a Channel> {
    rule.channel_ids
        .iter()
        .filter_map(|id| org.channels.get(id))
        .filter(|c| takes_groups(c))
        .collect()
}

/// Which members of a group silences hold back at a tick (docs/alerts.md, "Silences and
/// groups"): a member whose opening event a silence holds back on every channel the group
/// message goes to — unless it resolved after it was notified (its resolve still goes out).
struct Held {
    /// Per member, in order: held back.
    muted: Vec<bool>,
    /// For held-back firing members: the first silence, and the earliest end among theirs.
    firing: Option<(herald_core::domain::SilenceId, DateTime<Utc>)>,
}

impl Held {
    fn of(
        org: &OrgRules,
        rule: &Rule,
        group: &Group,
        members: &[Member],
        now: DateTime<Utc>,
    ) -> Self {
        let channels: Vec<_> = group_channels(org, rule).iter().map(|c| c.id).collect();
        let mut firing: Option<(herald_core::domain::SilenceId, DateTime<Utc>)> = None;
        let muted = members
            .iter()
            .map(|m| {
                if m.status == GroupStatus::Resolved && group.sent_firing.contains(&m.id()) {
                    return false;
                }
                let Some(event) = &m.event else {
                    return false;
                };
                let Some((silence, until)) = org.silence_on_all(event, &rule.key, &channels, now)
                else {
                    return false;
                };
                if m.status == GroupStatus::Firing {
                    firing = Some(match firing {
                        Some((first, end)) => (first, end.min(until)),
                        None => (silence, until),
                    });
                }
                true
            })
            .collect();
        Self { muted, firing }
    }
}

/// The delayed message of `group`'s pending tick (hops of at most the queue's maximum delay);
/// `None` when no tick is pending.
fn tick_message(
    event: &Event,
    group: &Group,
    now: DateTime<Utc>,
) -> Result<Option<Outgoing>, RouteError> {
    let (Some(tick_id), Some(at)) = (&group.tick_id, group.tick_at) else {
        return Ok(None);
    };
    let task = MatchTask {
        event: event.clone(),
        auto_resolve: None,
        group_tick: Some(GroupTick {
            rule_key: group.rule_key.clone(),
            group: group.group.clone(),
            tick_id: tick_id.clone(),
        }),
        digest_flush: None,
        forwarded_again: false,
    };
    Ok(Some(task.due_at(at, now)?))
}
