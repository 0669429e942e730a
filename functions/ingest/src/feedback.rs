//! The feedback handler: SES bounce and complaint notifications from the feedback queue (on AWS
//! an EventBridge rule on the default bus, `source: aws.ses`, targets it; in `herald serve`,
//! `POST /admin/feedback/ses` queues them) → the org's suppression list.
//!
//! - A permanent bounce or a complaint suppresses each recipient named, written once per
//!   address however often SES or the queue repeats the notification.
//! - Transient and undetermined bounces, and `not-spam` complaints, are logged and counted
//!   (`softBounced` on the org's stats day), nothing more.
//! - A notification without Herald's tags, or for an org this deployment does not have, is
//!   logged (`feedback_unmatched`) and dropped: another sender in the account.
//! - A notification that cannot be read is not dropped: it is sent to the dead-letter queue as
//!   `{"reason", "body", "messageId", "deadLetteredAt"}` and removed from the queue, so an
//!   operator sees why (`herald dlq show feedback`, the DLQ alarm). A dead letter redriven to
//!   the feedback queue is read as the notification it holds (and dead-lettered again, not
//!   wrapped twice, if it still cannot be read).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use herald_core::hygiene::ses::{self, SesFeedback};
use herald_shared::pipeline::{BatchOutcome, QueueMessage};
use herald_shared::queue::{Outgoing, Queue, QueueError};
use herald_shared::repo::suppressions::{self, Added};
use herald_shared::repo::{RepoError, stats};
use herald_shared::store::{Condition, Store, StoreError, keys};
use serde::{Deserialize, Serialize};
use tracing::{error, info, instrument, warn};

/// What the feedback handler needs.
#[derive(Debug, Clone, Copy)]
pub struct Feedback<'a> {
    pub store: &'a dyn Store,
    /// Where unreadable notifications go, with the reason.
    pub dead_letter: &'a dyn Queue,
}

/// A dead-lettered notification, as the DLQ holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetter {
    pub reason: String,
    /// The notification as it came.
    pub body: String,
    pub message_id: String,
    pub dead_lettered_at: DateTime<Utc>,
}

/// What one notification did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Addresses newly suppressed.
    pub suppressed: usize,
    /// Addresses already suppressed.
    pub already: usize,
    pub soft_bounces: usize,
    pub ignored: usize,
    /// Not Herald's (no tags, or an unknown org).
    pub unmatched: bool,
}

#[derive(Debug, thiserror::Error)]
enum FeedbackError {
    #[error(transparent)]
    Malformed(#[from] ses::Malformed),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl Feedback<'_> {
    /// Handles one batch from the feedback queue.
    pub async fn handle(&self, messages: Vec<QueueMessage>, now: DateTime<Utc>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for message in messages {
            let body = unwrap_dead_letter(&message.body);
            match self.apply(&body, now).await {
                Ok(_) => {}
                Err(FeedbackError::Malformed(why)) => {
                    if let Err(e) = self
                        .dead_letter(&message, &body, &why.to_string(), now)
                        .await
                    {
                        warn!(message_id = %message.id, error = %e, "dead-lettering failed; retried");
                        outcome.failed.push(message.id);
                    }
                }
                Err(e) => {
                    warn!(message_id = %message.id, error = %e, "feedback not applied; retried");
                    outcome.failed.push(message.id);
                }
            }
        }
        outcome
    }

    #[instrument(skip_all)]
    async fn apply(&self, body: &str, now: DateTime<Utc>) -> Result<Applied, FeedbackError> {
        let feedback = ses::parse(body)?;
        let Some(org) = self.known_org(&feedback).await? else {
            warn!(
                feedback_unmatched = 1,
                ses_message_id = feedback.message_id.as_deref().unwrap_or(""),
                "SES notification without a herald_org tag of this deployment; dropped"
            );
            return Ok(Applied {
                unmatched: true,
                ..Applied::default()
            });
        };
        let verdict = feedback.verdict(now);
        let mut applied = Applied {
            soft_bounces: verdict.soft_bounces,
            ignored: verdict.ignored,
            ..Applied::default()
        };
        for address in &verdict.unreadable {
            warn!(org_id = %org, len = address.len(), "SES named a recipient that is not an address; skipped");
        }
        for entry in &verdict.suppress {
            match suppressions::add(self.store, &org, entry).await? {
                Added::Created(_) => applied.suppressed += 1,
                Added::Existing(_) => applied.already += 1,
            }
        }
        let mut counters = BTreeMap::new();
        for (name, n) in [
            (stats::SOFT_BOUNCED, applied.soft_bounces),
            (stats::SUPPRESSED_BY_FEEDBACK, applied.suppressed),
        ] {
            if n > 0 {
                counters.insert(name.to_owned(), i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        if !counters.is_empty() {
            let key = herald_shared::store::Key::new(
                keys::stats_of_day(org, now.date_naive()),
                keys::STATS_ALL,
            );
            self.store
                .add(&key, keys::entity::STATS, &counters, Condition::None)
                .await?;
        }
        info!(
            org_id = %org,
            delivery_id = feedback.delivery_id.as_deref().unwrap_or(""),
            suppressed = applied.suppressed,
            already = applied.already,
            soft_bounces = applied.soft_bounces,
            ignored = applied.ignored,
            "SES feedback applied"
        );
        Ok(applied)
    }

    /// The notification's org, when this deployment has it.
    async fn known_org(
        &self,
        feedback: &SesFeedback,
    ) -> Result<Option<herald_core::domain::OrgId>, FeedbackError> {
        let Some(org) = feedback.org else {
            return Ok(None);
        };
        Ok(self.store.get(&keys::org(&org)).await?.map(|_| org))
    }

    async fn dead_letter(
        &self,
        message: &QueueMessage,
        notification: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        error!(message_id = %message.id, reason, "SES notification dead-lettered");
        let letter = DeadLetter {
            reason: reason.to_owned(),
            body: notification.to_owned(),
            message_id: message.id.clone(),
            dead_lettered_at: now,
        };
        let body = serde_json::to_string(&letter).unwrap_or_else(|_| message.body.clone());
        // In a lane, as herald serve's workers receive (a redrive keeps it); SQS ignores it.
        self.dead_letter
            .send_batch(vec![Outgoing::now(body).in_group(FEEDBACK_LANE)])
            .await
    }
}

/// The lane feedback messages travel in on `herald serve` (they name no org until read).
pub const FEEDBACK_LANE: &str = "ses";

/// The notification a redriven dead letter holds, or the body itself.
fn unwrap_dead_letter(body: &str) -> String {
    match serde_json::from_str::<DeadLetter>(body) {
        Ok(letter) => letter.body,
        Err(_) => body.to_owned(),
    }
}
