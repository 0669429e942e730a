//! Recovery pages (`recoverPage` messages on the dispatch queue): a recovery
//! (`POST /notifications/channels/{id}/recover`) re-queues its channel's `failed` deliveries of a
//! window, oldest first, 100 rows of the channel log (GSI1) per page.
//!
//! A page: reads the recovery (a copy of a page already handled — its number is behind — is
//! dropped), reads the next rows after the saved cursor and their events (one batch read),
//! moves each `failed` delivery to `queued` with its versioned conditional write (concurrently) (so nothing is re-queued twice, and a resend
//! racing it wins or loses cleanly), sends their dispatch messages (the normal retry path, the
//! budget counted from the recovery), saves the cursor and the counts on the recovery, then
//! sends the next page's message. A crash anywhere re-runs the page: deliveries it already
//! re-queued are recognised by their `recovered` mark, counted, and — while their attempt is
//! not made — their messages sent again (the dispatcher drops an attempt already on record); a crash after the save re-sends the next page's message when
//! the page message comes back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use herald_core::domain::delivery::{DeliveryStatus, RecoveredBy, Trigger};
use herald_core::domain::event::{Event, Recipient};
use herald_core::domain::recovery::{PAGE_ROWS, Recovery, RecoveryState};
use herald_core::domain::rule::Template;
use herald_core::domain::{DeliveryId, EventId, RuleKey};
use herald_shared::pipeline::{DispatchTask, RecoverPage, Recovered};
use herald_shared::queue::{Outgoing, send_all};
use herald_shared::repo::deliveries::{self, Versioned};
use herald_shared::repo::recoveries;
use herald_shared::repo::{Channels, Rules, events};
use herald_shared::store::{Cursor, Index, Query, SortKeyRange, StoreError, keys};
use tracing::{debug, info, instrument, warn};

use crate::{DispatchError, Dispatcher};

/// The reason a recovered delivery carries until its attempt is made (its `recovered` mark
/// stays after).
fn requeued_reason(recovery: &Recovery, attempt: usize) -> String {
    format!(
        "recovered (recovery {}): attempt {attempt} is queued",
        recovery.id
    )
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The instant a delivery id (a UUIDv7) was made at.
fn id_time(sk: &str) -> Option<DateTime<Utc>> {
    let id: DeliveryId = sk.strip_prefix(keys::DELIVERY_PREFIX)?.parse().ok()?;
    let (secs, nanos) = id.as_uuid().get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
}

impl Dispatcher<'_> {
    #[instrument(skip_all, fields(recovery_id = %page.recovery_id, org_id = %page.org_id, channel_id = %page.channel_id, page = page.page))]
    pub(crate) async fn recover_page(
        &self,
        page: RecoverPage,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Result<(), DispatchError> {
        let store = self.store;
        let Some(mut v) = recoveries::get(store, page.org_id, page.recovery_id).await? else {
            warn!("recovery not on record (expired?); page dropped");
            return Ok(());
        };
        if v.recovery.state != RecoveryState::Running {
            debug!("recovery has ended; page dropped");
            return Ok(());
        }
        if page.page != v.pages {
            // A copy of the page just handled, received again: if this is its redelivery after
            // a failure, the next page's message may never have been sent.
            if page.page + 1 == v.pages && receive_count > 1 {
                info!("page already handled; its next page is sent again");
                self.next_page(&v).await?;
            } else {
                debug!(pages = v.pages, "page already handled; dropped");
            }
            return Ok(());
        }

        let channel = Channels::new(store)
            .get(&page.org_id, &page.channel_id)
            .await?;
        let refused = match &channel {
            None => Some("the channel was deleted"),
            Some(c) if !c.enabled => Some("the channel was disabled"),
            Some(_) => None,
        };
        if let Some(why) = refused {
            warn!(why, "recovery stopped");
            v.recovery.error = Some(format!("{why}: recovery stopped"));
            v.recovery.finish(RecoveryState::Failed, now);
            self.save_recovery(&v).await?;
            return Ok(());
        }

        let cursor = v.cursor.as_deref().map(Cursor::parse).transpose()?;
        let end = v.recovery.window_end() - chrono::Duration::milliseconds(1);
        let query = |cursor, limit| Query {
            index: Index::Gsi1,
            partition: keys::channel_deliveries(page.org_id, page.channel_id),
            range: SortKeyRange::Between(
                keys::delivery_sk(deliveries::id_floor(v.recovery.since)),
                keys::delivery_sk(deliveries::id_ceiling(end)),
            ),
            descending: false,
            limit,
            cursor,
        };
        let rows = if end < v.recovery.since {
            Default::default()
        } else {
            store.query(query(cursor, PAGE_ROWS)).await?
        };

        // The rows to re-queue, in log order: classified first, their events and templates read
        // in bulk, then their conditional writes made concurrently.
        struct Candidate {
            versioned: Versioned,
            ttl: Option<i64>,
            rule_key: RuleKey,
            /// Re-queued by this recovery in an earlier run of this page (it crashed before its
            /// save): counted, and its message sent again while its attempt is not made yet.
            ours: Option<RecoveredBy>,
        }
        let mut candidates = Vec::new();
        // The first row not handled, when the limit stopped the page.
        let mut stopped_at = None;
        for item in &rows.items {
            if v.recovery.requeued + count(candidates.len()) >= v.limit {
                stopped_at = Some(item.key.sk.clone());
                break;
            }
            v.recovery.scanned += 1;
            let ttl = item.ttl;
            let versioned = deliveries::from_item(item.clone())?;
            let delivery = &versioned.delivery;
            let ours = delivery
                .recovered
                .filter(|r| r.recovery_id == v.recovery.id);
            if delivery.status != DeliveryStatus::Failed && ours.is_none() {
                v.recovery.skipped.not_failed += 1;
                continue;
            }
            let (Trigger::Event, Some(rule_key)) = (delivery.trigger, delivery.rule_key.clone())
            else {
                v.recovery.skipped.not_recoverable += 1;
                continue;
            };
            candidates.push(Candidate {
                versioned,
                ttl,
                rule_key,
                ours,
            });
        }

        let mut event_ids: Vec<EventId> = candidates
            .iter()
            .map(|c| c.versioned.delivery.event_id.clone())
            .collect();
        event_ids.sort();
        event_ids.dedup();
        let records = events::get_many(store, page.org_id, &event_ids).await?;
        let events: HashMap<EventId, Event> = event_ids
            .into_iter()
            .zip(records)
            .filter_map(|(id, record)| record.map(|r| (id, r.event)))
            .collect();
        // Each rule's template and whether it is critical.
        let mut templates: HashMap<RuleKey, (Option<Template>, bool)> = HashMap::new();
        for c in &candidates {
            if !templates.contains_key(&c.rule_key) {
                let rule = Rules::new(store).get(&page.org_id, &c.rule_key).await?;
                let critical = rule.as_ref().is_some_and(|r| r.critical);
                templates.insert(
                    c.rule_key.clone(),
                    (rule.and_then(|r| r.template), critical),
                );
            }
        }

        let saves = candidates.iter().map(|c| async {
            let Versioned { delivery, version } = &c.versioned;
            if c.ours.is_some() || !events.contains_key(&delivery.event_id) {
                return Ok(());
            }
            let mut reopened = delivery.clone();
            reopened.status = DeliveryStatus::Queued;
            reopened.reason = Some(requeued_reason(&v.recovery, delivery.attempts.len() + 1));
            reopened.recovered = Some(RecoveredBy {
                recovery_id: v.recovery.id,
                at: now,
                after_attempts: count(delivery.attempts.len()),
            });
            reopened.next_attempt_at = None;
            reopened.updated_at = now;
            // Every delivery is written with an expiry; one without keeps a month from its
            // creation rather than never expiring.
            let ttl = c
                .ttl
                .unwrap_or_else(|| (delivery.created_at + chrono::Duration::days(30)).timestamp());
            deliveries::save(store, &reopened, *version, ttl)
                .await
                .map(|_| ())
        });
        let saved = futures::future::join_all(saves).await;

        let mut tasks = Vec::new();
        for (c, saved) in candidates.into_iter().zip(saved) {
            let delivery = c.versioned.delivery;
            if let Some(ours) = c.ours {
                v.recovery.requeued += 1;
                // Its attempt made (or under way with a retry scheduled): nothing to send.
                let waiting = delivery.status == DeliveryStatus::Queued
                    && delivery.attempts.len() == ours.after_attempts as usize;
                if !waiting {
                    continue;
                }
            }
            let Some(event) = events.get(&delivery.event_id).cloned() else {
                v.recovery.skipped.event_expired += 1;
                continue;
            };
            match saved {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    v.recovery.skipped.changed += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if c.ours.is_none() {
                v.recovery.requeued += 1;
            }
            let attempts = delivery.attempts.len();
            let recipient = delivery.recipient.as_ref().map(|user| {
                event
                    .recipients
                    .iter()
                    .find(|r| &r.user_id == user)
                    .cloned()
                    .unwrap_or_else(|| Recipient {
                        user_id: user.clone(),
                        email: None,
                        phone: None,
                        push_tokens: Vec::new(),
                    })
            });
            tasks.push(DispatchTask {
                delivery_id: delivery.id,
                org_id: page.org_id,
                template: templates.get(&c.rule_key).and_then(|t| t.0.clone()),
                critical: templates.get(&c.rule_key).is_some_and(|t| t.1),
                rule_key: c.rule_key,
                channel_id: page.channel_id,
                recipient,
                attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
                not_before: None,
                event,
                manual: None,
                // Only event deliveries are recovered: never a group message.
                group: None,
                digest: None,
                recovered: Some(Recovered {
                    recovery_id: v.recovery.id,
                    after_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                }),
            });
        }

        let messages = tasks
            .iter()
            .map(|t| Ok(Outgoing::now(serde_json::to_string(t)?).in_group(t.lane())))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let sent = messages.len();
        send_all(self.dispatch_queue, messages).await?;

        // Where the next page starts, or why there is none.
        let next_row = match (&stopped_at, &rows.next) {
            (Some(sk), _) => Some(sk.clone()),
            (None, Some(next)) if v.recovery.requeued >= v.limit => store
                .query(query(Some(next.clone()), 1))
                .await?
                .items
                .first()
                .map(|i| i.key.sk.clone()),
            _ => None,
        };
        if let Some(sk) = next_row {
            v.recovery.truncated = true;
            v.recovery.resume_since = id_time(&sk);
            v.recovery.finish(RecoveryState::Done, now);
        } else if let Some(next) = &rows.next {
            v.cursor = Some(next.as_str().to_owned());
            v.recovery.updated_at = now;
        } else {
            v.recovery.finish(RecoveryState::Done, now);
        }
        v.pages += 1;
        info!(
            rows = rows.items.len(),
            requeued = sent,
            total = v.recovery.requeued,
            state = ?v.recovery.state,
            "recovery page handled"
        );
        if self.save_recovery(&v).await? && v.recovery.state == RecoveryState::Running {
            self.next_page(&v).await?;
        }
        Ok(())
    }

    /// Saves the recovery; `false` when another copy of the page saved first (the next page is
    /// then that copy's to send).
    async fn save_recovery(&self, v: &recoveries::Versioned) -> Result<bool, DispatchError> {
        match recoveries::save(self.store, v).await {
            Ok(version) => {
                debug!(version, "recovery saved");
                Ok(true)
            }
            Err(StoreError::Conflict) => {
                warn!("recovery changed concurrently (a copy of this page); this copy stops");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn next_page(&self, v: &recoveries::Versioned) -> Result<(), DispatchError> {
        let next = RecoverPage {
            org_id: v.recovery.org_id,
            channel_id: v.recovery.channel_id,
            recovery_id: v.recovery.id,
            page: v.pages,
        };
        self.dispatch_queue
            .send_batch(vec![next.message()?])
            .await?;
        Ok(())
    }
}
