//! Digest rules (docs/digests.md): an event of a rule with `digest` joins its recipient's open
//! batch on each of the rule's email, push and in-app channels instead of making a delivery of
//! its own; the batch is sent as one delivery when its window closes (or at `maxEvents`).
//!
//! - Joining: the first event of a batch opens it (a conditional write of the digest's head,
//!   with `closesAt`) and schedules its flush; every event then joins it in one transaction
//!   ([`herald_shared::repo::digests::join`]).
//! - The flush is a delayed message on the match queue, like a group tick
//!   ([`MatchTask::due_at`]); not yet due, it goes round again. A due flush closes the batch,
//!   reads its items and creates one delivery (`trigger: digest`) whose id hashes (org, rule,
//!   channel, digest, seq).
//!
//! Everything lives in the store and in durable queue messages, so a restart neither loses nor
//! repeats a digest.

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::{debug, info};

use herald_core::delivery::plan::recipients;
use herald_core::domain::channel::Channel;
use herald_core::domain::delivery::{DeliveryStatus, MAX_EVENT_IDS, Trigger};
use herald_core::domain::digest::{BATCHED_INTO, DEFAULT_ITEMS, Digest, DigestItem, DigestMessage};
use herald_core::domain::event::{Event, Recipient};
use herald_core::domain::rule::Rule;
use herald_shared::pipeline::{DigestFlush, DispatchTask, MatchTask, digest_delivery_id};
use herald_shared::queue::{self, Outgoing};
use herald_shared::repo::digests::{self, DigestRef, Head, Joined, digest_hash};
use herald_shared::repo::events::RoutedDelivery;
use herald_shared::repo::{RepoError, users};
use herald_shared::store::StoreError;

use crate::{Matcher, Phase, RouteError, Routed, defer_for_quiet_hours, new_delivery, pending};

/// How many times a digest write that lost a race reads again.
const RETRIES: usize = 16;

impl Matcher<'_> {
    /// `event` joins the digest of each of its recipients on `channel` (an email, push or
    /// in-app channel of a digest rule). An event naming no recipient gets the failed delivery
    /// any user-facing channel gives it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn join_digests(
        &self,
        routed: &mut Routed,
        event: &Event,
        rule: &Rule,
        digest: &Digest,
        channel: &Channel,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let people: Vec<Recipient> = recipients(event, rule, channel)
            .into_iter()
            .flatten()
            .collect();
        if people.is_empty() || !channel.enabled {
            let phase = Phase::Event { silence: None };
            self.fan_out(routed, event, rule, channel, &phase, redelivered, ttl, now)
                .await?;
            return Ok(());
        }
        let item = DigestItem::of(event, &rule.key, rule.template.as_ref());
        for recipient in people {
            self.join_digest(
                routed,
                event,
                rule,
                digest,
                channel,
                &recipient,
                &item,
                redelivered,
                ttl,
                now,
            )
            .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn join_digest(
        &self,
        routed: &mut Routed,
        event: &Event,
        rule: &Rule,
        digest: &Digest,
        channel: &Channel,
        recipient: &Recipient,
        item: &DigestItem,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let org = event.org_id;
        let key = digest.key_for(event, &rule.key);
        let hash = digest_hash(&recipient.user_id, &key);
        let at = DigestRef {
            org,
            rule: &rule.key,
            channel: channel.id,
            digest: &hash,
        };
        for _ in 0..RETRIES {
            let current = digests::get(self.store, &at).await?;
            let (head, opened) = match current {
                Some(record) if record.head.open => (record.head, false),
                closed => {
                    let read = closed.as_ref().map(|r| r.head.turn());
                    let seq = closed.as_ref().map_or(0, |r| r.head.seq + 1);
                    let zone = match digest.at {
                        Some(_) => self.zone_of(event, &recipient.user_id).await?,
                        None => None,
                    };
                    let zone = zone.as_deref();
                    let head = Head {
                        rule_key: rule.key.clone(),
                        channel_id: channel.id,
                        digest: hash.clone(),
                        key: key.clone(),
                        recipient: recipient.clone(),
                        seq,
                        open: true,
                        opened_at: now,
                        closes_at: digest.closes_at(now, zone),
                        first_event_id: event.id.clone(),
                    };
                    match digests::put(self.store, &at, &head, read, ttl).await {
                        Ok(()) => (head, true),
                        Err(RepoError::Store(StoreError::Conflict)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            let joined = digests::join(self.store, &at, head.seq, item, ttl).await?;
            if joined == Joined::Closed {
                continue;
            }
            debug!(rule = %rule.key, digest = %hash, seq = head.seq, ?joined, "event joined its digest");
            routed.route_of(&rule.key).deliveries.push(RoutedDelivery {
                delivery_id: digest_delivery_id(
                    org,
                    &rule.key,
                    channel.id,
                    &hash,
                    head.seq,
                    head.opened_at,
                ),
                channel_id: channel.id,
                recipient: Some(recipient.user_id.clone()),
                status: DeliveryStatus::Queued,
                reason: Some(format!(
                    "{BATCHED_INTO}{}",
                    head.closes_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                )),
            });
            // The opener schedules the flush; received again, a message schedules it again (a
            // crash may have come between opening and scheduling; a twin flush is harmless).
            if opened || redelivered {
                routed.checks.push(flush_message(event, &head, false, now)?);
            }
            if joined == Joined::Joined
                && let Some(max) = digest.max_events
                && self.reached(&at, &head, max).await?
            {
                info!(rule = %rule.key, digest = %hash, seq = head.seq, max, "digest reached maxEvents; flushed early");
                routed.checks.push(flush_message(event, &head, true, now)?);
            }
            return Ok(());
        }
        Err(RepoError::Contended.into())
    }

    /// Whether batch `head.seq` is still open and holds `max` events or more.
    async fn reached(&self, at: &DigestRef<'_>, head: &Head, max: u32) -> Result<bool, RouteError> {
        let now = digests::get(self.store, at).await?;
        Ok(
            now.is_some_and(|r| {
                r.head.open && r.head.seq == head.seq && r.joined >= i64::from(max)
            }),
        )
    }

    /// The recipient's time zone (their profile's), for a daily digest; `None`: UTC.
    async fn zone_of(
        &self,
        event: &Event,
        user: &herald_core::domain::UserId,
    ) -> Result<Option<String>, RouteError> {
        let profile = users::get(self.store, &event.org_id, user).await?;
        Ok(profile.and_then(|p| p.timezone))
    }

    /// Handles a digest flush: stale → dropped; not yet due → sent round again; due → the
    /// batch closed, its delivery created and enqueued.
    pub(crate) async fn digest_flush(
        &self,
        task: &MatchTask,
        flush: &DigestFlush,
        redelivered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let org_id = task.event.org_id;
        let at = DigestRef {
            org: org_id,
            rule: &flush.rule_key,
            channel: flush.channel_id,
            digest: &flush.digest,
        };
        let ttl = (now + self.retention).timestamp();
        for _ in 0..RETRIES {
            let Some(record) = digests::get(self.store, &at).await? else {
                return Ok(());
            };
            let head = record.head;
            if head.seq < flush.seq {
                return Ok(());
            }
            if head.seq == flush.seq && head.open {
                if !flush.early && head.closes_at > now {
                    // Longer than the queue's maximum delay: another hop.
                    let next = flush_message(&task.event, &head, false, now)?;
                    return self.send_checks(vec![next]).await;
                }
                let closed = Head {
                    open: false,
                    ..head.clone()
                };
                match digests::put(self.store, &at, &closed, Some(head.turn()), ttl).await {
                    Ok(()) => {}
                    Err(RepoError::Store(StoreError::Conflict)) => continue,
                    Err(e) => return Err(e.into()),
                }
                return self
                    .deliver_digest(task, flush, &at, redelivered, ttl, now)
                    .await;
            }
            // Closed already: by a twin of this flush (the early one and the window's), or
            // before a crash that kept its delivery from being recorded or enqueued.
            return self
                .deliver_digest(task, flush, &at, redelivered, ttl, now)
                .await;
        }
        Err(RepoError::Contended.into())
    }

    /// Creates (if absent) and enqueues the delivery of a closed batch.
    async fn deliver_digest(
        &self,
        task: &MatchTask,
        flush: &DigestFlush,
        at: &DigestRef<'_>,
        redelivered: bool,
        ttl: i64,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let org = self.rules.get(self.store, task.event.org_id).await?;
        let Some(rule) = org.by_key.get(&flush.rule_key) else {
            info!(rule = %flush.rule_key, "digest of a deleted rule dropped");
            return Ok(());
        };
        let Some(channel) = org.channels.get(&flush.channel_id) else {
            info!(rule = %flush.rule_key, channel_id = %flush.channel_id, "digest of a deleted channel dropped");
            return Ok(());
        };
        let listed = rule
            .digest
            .as_ref()
            .map_or(DEFAULT_ITEMS as usize, Digest::items);
        let batch = digests::batch(self.store, at, flush.seq, listed).await?;
        let Some(first) = batch.items.first() else {
            return Ok(());
        };
        let mut delivery = new_delivery(&task.event, rule, channel, Some(&flush.recipient), now);
        delivery.id = digest_delivery_id(
            task.event.org_id,
            &rule.key,
            channel.id,
            at.digest,
            flush.seq,
            flush.opened_at,
        );
        delivery.trigger = Trigger::Digest;
        delivery.event_id = first.event_id.clone();
        delivery.event_ids = batch
            .items
            .iter()
            .take(MAX_EVENT_IDS)
            .map(|i| i.event_id.clone())
            .collect();
        delivery.event_count = Some(batch.count);
        let not_before = defer_for_quiet_hours(&mut delivery, rule, now);
        let recorded = self
            .record(
                &mut delivery,
                rule,
                channel,
                Some(&flush.recipient),
                ttl,
                now,
            )
            .await?;
        let enqueue = match &recorded {
            None => {
                info!(rule = %rule.key, delivery_id = %delivery.id, events = batch.count, "digest flushed");
                self.count(&delivery).await?;
                pending(delivery.status)
            }
            Some(existing) => {
                redelivered
                    && pending(existing.delivery.status)
                    && existing.delivery.attempts.is_empty()
            }
        };
        if !enqueue {
            return Ok(());
        }
        let dispatch = DispatchTask {
            delivery_id: delivery.id,
            org_id: task.event.org_id,
            rule_key: rule.key.clone(),
            channel_id: channel.id,
            recipient: Some(flush.recipient.clone()),
            attempt: 1,
            not_before,
            event: task.event.clone(),
            template: None,
            critical: rule.critical,
            manual: None,
            group: None,
            digest: Some(DigestMessage {
                count: batch.count,
                items: batch.items,
            }),
            recovered: None,
        };
        let message = Outgoing::now(serde_json::to_string(&dispatch)?).in_group(dispatch.lane());
        let message = match not_before {
            Some(t) => message.delayed((t - now).to_std().unwrap_or_default()),
            None => message,
        };
        queue::send_all(self.dispatch_queue, vec![message]).await?;
        Ok(())
    }
}

/// The flush message of `head`'s batch: due at its `closesAt`, or at once when `early`.
fn flush_message(
    event: &Event,
    head: &Head,
    early: bool,
    now: DateTime<Utc>,
) -> Result<Outgoing, RouteError> {
    let task = MatchTask {
        event: event.clone(),
        auto_resolve: None,
        group_tick: None,
        digest_flush: Some(DigestFlush {
            rule_key: head.rule_key.clone(),
            channel_id: head.channel_id,
            digest: head.digest.clone(),
            seq: head.seq,
            opened_at: head.opened_at,
            recipient: head.recipient.clone(),
            early,
        }),
        forwarded_again: false,
    };
    Ok(task.due_at(if early { now } else { head.closes_at }, now)?)
}
