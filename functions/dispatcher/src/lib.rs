//! The dispatcher function: one attempt per dispatch message, every attempt on record.
//!
//! For each message it loads the delivery, drops the message if its attempt is already on record
//! (a duplicate), sends once through the [`Sender`], records the attempt and the delivery's new
//! status, and — for a retryable failure within the retry policy's bounds — sends the next
//! attempt's message with the backoff as its delay (see `docs/pipeline.md`). A permanent
//! 401/403/404/410 marks the channel broken.
//!
//! Order matters for at-least-once without runaway duplicates: the next attempt's message is
//! sent *before* the attempt is recorded, so a crash in between re-runs the attempt (the
//! receiver de-duplicates on the delivery id) and yields at most one extra message, which the
//! "attempt already on record" check drops. The flip side: a short backoff can bring the next
//! attempt's message before this attempt is on record; it is then re-queued for a moment rather
//! than sent (sending would race the record and lose one of the two outcomes).
//!
//! The dispatch queue also carries the pages of a recovery (`recoverPage`, see `recover.rs`):
//! a channel's failed deliveries re-queued 100 at a time, each then dispatched like any attempt.

mod recover;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;
use herald_core::delivery::format::MessageContext;
use herald_core::delivery::pacing::{Admission, Hold, LaneState, RateLimit};
use herald_core::delivery::retry::RetryPolicy;
use herald_core::delivery::unsubscribe::{ListUnsubscribe, Unsubscribe};
use herald_core::domain::channel::{Channel, ChannelKind};
use herald_core::domain::delivery::{
    AttemptTrigger, Delivery, DeliveryStatus, Destination, ErrorClass, NoDestination, on_success,
};
use herald_core::domain::suppression::{
    SuppressedAddress, Suppression, SuppressionDetails, SuppressionKind, SuppressionReason,
    SuppressionSource,
};
use herald_core::domain::user;
use herald_core::domain::{ChannelId, OrgId};
use herald_shared::delivery;
use herald_shared::delivery::sender::{AttemptOutcome, Sender, token_tail};
use herald_shared::feed::FeedNotifier;
use herald_shared::pipeline::{
    BatchOutcome, Deferred, DispatchTask, QueueMessage, RecoverPageTask,
};
use herald_shared::queue::{MAX_DELAY, Outgoing, Queue, QueueError};
use herald_shared::repo::deliveries::{self, Versioned};
use herald_shared::repo::{Channels, RepoError, lanes, stats, suppressions, unsubscribes, users};
use herald_shared::store::Store;
use herald_shared::store::StoreError;
use herald_shared::store::keys;
use tokio::sync::{OnceCell, oneshot};
use tracing::{debug, info, instrument, warn};

/// How long a message for attempt `n` waits, re-queued, for attempt `n - 1` to be on record.
const PREVIOUS_ATTEMPT_WAIT: Duration = Duration::from_secs(1);
/// After this long without a change to the delivery, a missing previous attempt is taken as lost
/// (its dispatcher died and its message was dead-lettered) and the next attempt goes ahead.
const PREVIOUS_ATTEMPT_GRACE: chrono::Duration = chrono::Duration::minutes(15);
/// Up to this much is added to a paced delivery's wait, so a lane's backlog does not wake as one;
/// never more than a quarter of the lane's send interval, since with burst 1 every send is late
/// by its jitter and the lane's rate drops by as much (250 ms on a 50 ms interval: to a quarter).
const PACED_JITTER_MS: i64 = 250;

/// What the dispatcher needs.
#[derive(Clone, Copy)]
pub struct Dispatcher<'a> {
    pub store: &'a dyn Store,
    pub dispatch_queue: &'a dyn Queue,
    pub sender: &'a dyn Sender,
    /// Pushes new in-app feed items to open connections.
    pub feeds: &'a dyn FeedNotifier,
    pub retry: RetryPolicy,
    /// How long delivery records are kept.
    pub retention: chrono::Duration,
}

impl std::fmt::Debug for Dispatcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What became of one dispatch message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dispatched {
    /// Handled: attempted, finished, dropped as a duplicate, or re-sent by the dispatcher itself.
    Done,
    /// Not handled; the queue should hand it out again (a store or queue error).
    Failed,
    /// Not attempted: the channel's lane is held until then. The caller hands it out again.
    /// `paced`: the lane's send interval, when its rate limit is what holds it.
    Held {
        until: DateTime<Utc>,
        paced: Option<chrono::Duration>,
    },
}

/// A dispatch message whose delivery and channel are loaded and which waits for its lane's
/// admission (a batch's deliveries to one channel are admitted together).
#[derive(Debug)]
struct Ready {
    task: DispatchTask,
    delivery: Delivery,
    version: i64,
    ttl: i64,
    channel: Channel,
    limit: Option<RateLimit>,
    /// Told once the attempt's outcome is taken in by its lane, before the delivery's record is
    /// written (`handle_in_order` starts the lane's next attempt then); dropped untold when the
    /// delivery is not attempted.
    lane_settled: Option<oneshot::Sender<()>>,
}

/// How far [`Dispatcher::prepare`] took a message.
#[derive(Debug)]
enum Step {
    /// Nothing more to do for it.
    Done(Dispatched),
    /// It goes to its lane for admission, then is attempted or held.
    Ready(Box<Ready>),
}

/// The channels a batch has read, by org and id: a batch's deliveries mostly go to a few
/// channels (`herald serve` hands the dispatcher runs of one lane), so each is read once per
/// batch instead of once per delivery; deliveries prepared concurrently share the one read.
/// A read is used for [`CHANNEL_READ_FRESH`] at most — a run to a slow receiver can last a
/// minute — so a channel disabled or deleted meanwhile stops its deliveries within that time.
#[derive(Debug, Default)]
struct BatchChannels(std::sync::Mutex<Vec<ChannelRead>>);

/// How long a batch keeps using a channel it read.
const CHANNEL_READ_FRESH: Duration = Duration::from_secs(1);

/// One read of a channel within a batch: done once, by whichever delivery needs it first.
#[derive(Debug)]
struct ChannelRead {
    org: OrgId,
    id: ChannelId,
    at: std::time::Instant,
    channel: Arc<OnceCell<Option<Channel>>>,
}

impl BatchChannels {
    async fn get(
        &self,
        store: &dyn Store,
        org: &OrgId,
        id: &ChannelId,
    ) -> Result<Option<Channel>, RepoError> {
        let cell = {
            let mut reads = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reads.retain(|r| r.at.elapsed() < CHANNEL_READ_FRESH);
            match reads.iter().find(|r| r.org == *org && r.id == *id) {
                Some(read) => Arc::clone(&read.channel),
                None => {
                    let channel = Arc::new(OnceCell::new());
                    reads.push(ChannelRead {
                        org: *org,
                        id: *id,
                        at: std::time::Instant::now(),
                        channel: Arc::clone(&channel),
                    });
                    channel
                }
            }
        };
        let channels = Channels::new(store);
        cell.get_or_try_init(|| channels.get(org, id))
            .await
            .cloned()
    }
}

#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("serialising a dispatch task: {0}")]
    Serialise(#[from] serde_json::Error),
}

impl Dispatcher<'_> {
    /// Handles one batch from the dispatch queue; deliveries in a batch go out concurrently.
    /// Each lane (channel) of the batch is asked once for all its deliveries (`lanes::admit`):
    /// one read of the lane, and for a paced lane one write, per batch rather than per delivery.
    pub async fn handle(&self, messages: Vec<QueueMessage>, now: DateTime<Utc>) -> BatchOutcome {
        // Counters of the deliveries this batch finishes, written once per item after it.
        let tally = &stats::Tally::default();
        let channels = &BatchChannels::default();
        let prepared = futures::future::join_all(
            messages
                .into_iter()
                .map(|message| self.prepare_message(message, now, tally, channels)),
        )
        .await;
        let mut results = Vec::with_capacity(prepared.len());
        let mut ready = Vec::new();
        for (index, (message_id, lane, step)) in prepared.into_iter().enumerate() {
            match step {
                Step::Done(done) => results.push((message_id, lane, done)),
                Step::Ready(r) => {
                    // A placeholder until its lane has answered.
                    results.push((message_id, lane, Dispatched::Failed));
                    ready.push((index, r));
                }
            }
        }
        for (index, done) in self.admit_and_attempt(ready, now, tally).await {
            results[index].2 = done;
        }
        self.flush(tally).await;
        let mut outcome = BatchOutcome::default();
        // Paced deliveries of one lane in this batch all got the lane's next slot; give them
        // consecutive slots instead, so they do not come back as a herd only one of which goes.
        let mut next_slot: std::collections::HashMap<_, DateTime<Utc>> =
            std::collections::HashMap::new();
        for (message_id, lane, result) in results {
            match result {
                Dispatched::Done => {}
                Dispatched::Failed => outcome.failed.push(message_id),
                Dispatched::Held { until, paced } => {
                    let until = match (paced, lane) {
                        (Some(interval), Some(lane)) => {
                            let slot = next_slot.entry(lane).or_insert(until);
                            let at = until.max(*slot);
                            *slot = at + interval;
                            at
                        }
                        _ => until,
                    };
                    outcome.deferred.push(Deferred { message_id, until });
                }
            }
        }
        outcome
    }

    /// Handles a run of one lane's messages (one channel's, in send order) one after the other,
    /// each at its own moment: `herald serve`'s scheduler keeps a channel's deliveries in event
    /// order this way. Once one is held (its lane is paced, paused or its circuit open) it and
    /// every message after it are deferred to the same instant, unattempted, so they go back in
    /// order. The run's counters are written once, after it.
    ///
    /// "One after the other" is about the attempts: the next one starts once the previous
    /// attempt's outcome is taken in by the lane (a 429 has paused it, a failure counted toward
    /// its circuit), while the previous delivery's record is still being written. So a lane
    /// goes at its receiver's pace, not at one durable commit per delivery; the run ends (and
    /// its messages are deleted) only once every record is written.
    pub async fn handle_in_order(&self, messages: Vec<QueueMessage>) -> BatchOutcome {
        let tally = &stats::Tally::default();
        let channels = &BatchChannels::default();
        let mut outcome = BatchOutcome::default();
        let mut held_until = None;
        // This run's deliveries still in hand: the one being attempted, and those whose
        // records are being written.
        let mut in_hand = futures::stream::FuturesUnordered::new();
        for message in messages {
            if let Some(until) = held_until {
                outcome.deferred.push(Deferred {
                    message_id: message.id,
                    until,
                });
                continue;
            }
            let current = message.id.clone();
            let (settled, lane_settled) = oneshot::channel();
            in_hand.push(self.dispatch_in_order(message, settled, tally, channels));
            // Until the lane has taken in this attempt (or the delivery ended without one).
            let mut lane_settled = Some(lane_settled);
            loop {
                let finished = match lane_settled.as_mut() {
                    Some(waiting) => tokio::select! {
                        told = waiting => {
                            lane_settled = None;
                            if told.is_ok() {
                                break;
                            }
                            // Not attempted: its own outcome says whether the lane holds.
                            continue;
                        }
                        Some(finished) = in_hand.next() => finished,
                    },
                    None => match in_hand.next().await {
                        Some(finished) => finished,
                        None => break,
                    },
                };
                let is_current = finished.0 == current;
                Self::note(&mut outcome, &mut held_until, finished);
                if is_current {
                    break;
                }
            }
        }
        while let Some(finished) = in_hand.next().await {
            Self::note(&mut outcome, &mut held_until, finished);
        }
        self.flush(tally).await;
        outcome
    }

    /// One message of an in-order run; tells `settled` once the lane took in its attempt.
    async fn dispatch_in_order(
        &self,
        message: QueueMessage,
        settled: oneshot::Sender<()>,
        tally: &stats::Tally,
        channels: &BatchChannels,
    ) -> (String, Dispatched) {
        let now = Utc::now();
        let (message_id, _, step) = self.prepare_message(message, now, tally, channels).await;
        let result = match step {
            Step::Done(done) => done,
            Step::Ready(mut ready) => {
                ready.lane_settled = Some(settled);
                self.admit_and_attempt(vec![(0, ready)], now, tally)
                    .await
                    .pop()
                    .map_or(Dispatched::Failed, |(_, done)| done)
            }
        };
        (message_id, result)
    }

    /// Takes an in-order run's finished delivery into its outcome; a held one holds the rest.
    fn note(
        outcome: &mut BatchOutcome,
        held_until: &mut Option<DateTime<Utc>>,
        (message_id, result): (String, Dispatched),
    ) {
        match result {
            Dispatched::Done => {}
            Dispatched::Failed => outcome.failed.push(message_id),
            Dispatched::Held { until, .. } => {
                *held_until = Some(until);
                outcome.deferred.push(Deferred { message_id, until });
            }
        }
    }

    /// Reads one message of a batch and loads what its attempt needs: its id, its lane (the
    /// channel) and how far it got.
    async fn prepare_message(
        &self,
        message: QueueMessage,
        now: DateTime<Utc>,
        tally: &stats::Tally,
        channels: &BatchChannels,
    ) -> (String, Option<ChannelId>, Step) {
        if let Some(page) = RecoverPageTask::parse(&message.body) {
            let result = match self.recover_page(page, message.receive_count, now).await {
                Ok(()) => Dispatched::Done,
                Err(e) => {
                    warn!(message_id = %message.id, recovery_id = %page.recovery_id, error = %e, "recovery page failed; the message will be retried");
                    Dispatched::Failed
                }
            };
            return (message.id, None, Step::Done(result));
        }
        let task = match serde_json::from_str::<DispatchTask>(&message.body) {
            Ok(task) => task,
            Err(e) => {
                // Only the matcher and the dispatcher write this queue.
                warn!(message_id = %message.id, error = %e, "unreadable dispatch task dropped");
                return (message.id, None, Step::Done(Dispatched::Done));
            }
        };
        let lane = Some(task.channel_id);
        let step = match self.prepare(task, now, tally, channels).await {
            Ok(step) => step,
            Err(e) => {
                warn!(message_id = %message.id, error = %e, "dispatch failed; the message will be retried");
                Step::Done(Dispatched::Failed)
            }
        };
        (message.id, lane, step)
    }

    /// Asks each lane once for its deliveries among `ready` (in their order: the first ones go
    /// when not all may), then attempts or holds each, all concurrently. Returns what became of
    /// each, by the index it came with.
    async fn admit_and_attempt(
        &self,
        ready: Vec<(usize, Box<Ready>)>,
        now: DateTime<Utc>,
        tally: &stats::Tally,
    ) -> Vec<(usize, Dispatched)> {
        let mut by_lane: Vec<Vec<(usize, Box<Ready>)>> = Vec::new();
        for (index, r) in ready {
            let lane = (r.task.org_id, r.task.channel_id);
            match by_lane.iter_mut().find(|group| {
                group
                    .first()
                    .is_some_and(|(_, g)| (g.task.org_id, g.task.channel_id) == lane)
            }) {
                Some(group) => group.push((index, r)),
                None => by_lane.push(vec![(index, r)]),
            }
        }
        let lanes = by_lane
            .into_iter()
            .map(|group| self.admit_lane(group, now, tally));
        futures::future::join_all(lanes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// One lane's deliveries of a batch: one admission for all of them, then each attempted
    /// (the first [`BatchAdmission::go`](herald_core::delivery::pacing::BatchAdmission)) or held.
    async fn admit_lane(
        &self,
        group: Vec<(usize, Box<Ready>)>,
        now: DateTime<Utc>,
        tally: &stats::Tally,
    ) -> Vec<(usize, Dispatched)> {
        let Some((_, first)) = group.first() else {
            return Vec::new();
        };
        let (org, channel, limit) = (first.task.org_id, first.task.channel_id, first.limit);
        // The lane reads the clock itself: `now` is the batch's, and a stale instant would let
        // a paced lane send early by as much.
        let lane_now = now.max(Utc::now());
        let admitted = match lanes::admit(self.store, &org, &channel, limit, group.len(), lane_now)
            .await
        {
            Ok(admitted) => admitted,
            Err(e) => {
                warn!(org_id = %org, channel_id = %channel, error = %e, "lane admission failed; the messages will be retried");
                return group
                    .into_iter()
                    .map(|(index, _)| (index, Dispatched::Failed))
                    .collect();
            }
        };
        let lane = &admitted.lane;
        let attempts = group.into_iter().enumerate().map(|(n, (index, ready))| {
            let admission = if n < admitted.admission.go {
                Admission::Go
            } else {
                admitted.admission.rest.clone()
            };
            async move {
                let message = ready.task.delivery_id;
                let done = match self.attempt(*ready, admission, lane, now, tally).await {
                    Ok(done) => done,
                    Err(e) => {
                        warn!(delivery_id = %message, error = %e, "dispatch failed; the message will be retried");
                        Dispatched::Failed
                    }
                };
                (index, done)
            }
        });
        futures::future::join_all(attempts).await
    }

    /// Writes a batch's counters.
    async fn flush(&self, tally: &stats::Tally) {
        if let Err(e) = tally.flush(self.store).await {
            // The deliveries are on record; a re-run would drop them as duplicates, uncounted.
            tracing::error!(error = %e, "stats counters of this batch not written");
        }
    }

    /// Everything before the lane's admission: the delivery (dropping duplicates), the channel
    /// (a deleted or disabled one ends the delivery).
    #[instrument(skip_all, fields(delivery_id = %task.delivery_id, org_id = %task.org_id, channel_id = %task.channel_id, attempt = task.attempt))]
    async fn prepare(
        &self,
        task: DispatchTask,
        now: DateTime<Utc>,
        tally: &stats::Tally,
        channels: &BatchChannels,
    ) -> Result<Step, DispatchError> {
        if let Some(not_before) = task.not_before.filter(|t| *t > now) {
            // A wait longer than the queue's maximum delay: another hop.
            let remaining = (not_before - now).to_std().unwrap_or(Duration::ZERO);
            self.dispatch_queue
                .send_batch(vec![
                    Outgoing::now(serde_json::to_string(&task)?)
                        .in_group(task.lane())
                        .delayed(remaining),
                ])
                .await?;
            return Ok(Step::Done(Dispatched::Done));
        }
        let Some(Versioned {
            mut delivery,
            version,
        }) = deliveries::get(self.store, task.org_id, task.delivery_id).await?
        else {
            warn!("delivery not on record (expired?); message dropped");
            return Ok(Step::Done(Dispatched::Done));
        };
        if delivery.status.is_final() || delivery.attempts.len() >= task.attempt as usize {
            debug!(
                status = delivery.status.as_str(),
                "attempt already on record; duplicate message dropped"
            );
            return Ok(Step::Done(Dispatched::Done));
        }
        if delivery.attempts.len() + 1 < task.attempt as usize
            && now - delivery.updated_at < PREVIOUS_ATTEMPT_GRACE
        {
            // The previous attempt's dispatcher sends this message before recording its own
            // attempt: it is still about to. Sending now would race that record (the loser's
            // save conflicts and its outcome is lost, leaving the delivery `queued` for good),
            // so come back shortly. Past the grace period the previous attempt is taken as lost.
            info!(
                recorded = delivery.attempts.len(),
                "previous attempt not on record yet; message re-queued"
            );
            self.dispatch_queue
                .send_batch(vec![
                    Outgoing::now(serde_json::to_string(&task)?)
                        .in_group(task.lane())
                        .delayed(PREVIOUS_ATTEMPT_WAIT),
                ])
                .await?;
            return Ok(Step::Done(Dispatched::Done));
        }
        let ttl = (now + self.retention).timestamp();
        let Some(channel) = channels
            .get(self.store, &task.org_id, &task.channel_id)
            .await?
        else {
            finish(
                &mut delivery,
                DeliveryStatus::Failed,
                "the channel was deleted",
                now,
            );
            return Ok(Step::Done(
                self.save(&delivery, version, ttl, tally, &task).await?,
            ));
        };
        if !channel.enabled {
            finish(
                &mut delivery,
                DeliveryStatus::Suppressed,
                "channel is disabled",
                now,
            );
            return Ok(Step::Done(
                self.save(&delivery, version, ttl, tally, &task).await?,
            ));
        }
        let limit = channel.rate_limit_in_force();
        Ok(Step::Ready(Box::new(Ready {
            task,
            delivery,
            version,
            ttl,
            channel,
            limit,
            lane_settled: None,
        })))
    }

    /// Attempts a delivery its lane admitted (`admission`), or holds it. `lane`: the lane as
    /// its admission left it.
    #[instrument(skip_all, fields(delivery_id = %ready.task.delivery_id, org_id = %ready.task.org_id, channel_id = %ready.task.channel_id, attempt = ready.task.attempt))]
    async fn attempt(
        &self,
        ready: Ready,
        admission: Admission,
        lane: &LaneState,
        now: DateTime<Utc>,
        tally: &stats::Tally,
    ) -> Result<Dispatched, DispatchError> {
        let Ready {
            task,
            mut delivery,
            version,
            ttl,
            channel,
            limit,
            lane_settled,
        } = ready;
        if let Admission::Hold { until, why } = admission {
            return self
                .hold(delivery, version, ttl, until, why, limit, lane, now)
                .await;
        }
        let channels = Channels::new(self.store);
        let (destination, profile_tokens) = match self.destination(&channel, &task).await? {
            Ok(routed) => routed,
            Err((status, reason)) => {
                info!(status = status.as_str(), reason = %reason, "delivery not attempted");
                finish(&mut delivery, status, &reason, now);
                return self.save(&delivery, version, ttl, tally, &task).await;
            }
        };

        let ctx = MessageContext {
            event: &task.event,
            rule_key: Some(&task.rule_key),
            template: task.template.as_ref(),
            delivery_id: task.delivery_id,
            group: task.group.as_ref(),
            digest: task.digest.as_ref(),
        };
        let ports = delivery::Ports {
            sender: self.sender,
            store: self.store,
            feeds: self.feeds,
        };
        // Every email of a non-critical rule to a known user offers one-click unsubscribe (the
        // sender adds the headers when the deployment has a public URL and a token secret).
        let unsubscribe = task
            .recipient
            .as_ref()
            .filter(|_| !task.critical && channel.kind() == ChannelKind::Email)
            .map(|r| ListUnsubscribe {
                target: Unsubscribe {
                    org: task.org_id,
                    user: r.user_id.clone(),
                    channel: channel.id,
                    rule: Some(task.rule_key.clone()),
                },
                at: now,
            });
        let (outcome, contacts) =
            delivery::deliver_with_feedback(ports, &channel, destination, &ctx, now, unsubscribe)
                .await;
        if !contacts.opted_out.is_empty() {
            self.suppress_opted_out(&task.org_id, &contacts.opted_out, now)
                .await?;
            if outcome.error_class.is_some() {
                // Nothing was published: neither a failure of the channel nor of its lane.
                let reason = format!(
                    "{} opted out of SMS (STOP); added to the suppression list",
                    contacts.opted_out.join(", ")
                );
                info!("SMS recipient opted out; delivery suppressed");
                finish(&mut delivery, DeliveryStatus::Suppressed, &reason, now);
                return self.save(&delivery, version, ttl, tally, &task).await;
            }
        }
        let error = outcome
            .error_class
            .map(|c| describe(c, &outcome))
            .unwrap_or_default();
        let lane = match lanes::record(
            self.store,
            &task.org_id,
            &task.channel_id,
            Some(lane),
            outcome.error_class,
            outcome.retry_after,
            &error,
            // A pause runs from the answer, not from the batch's start.
            now.max(Utc::now()),
        )
        .await
        {
            Ok(lane) => lane,
            Err(e) => {
                // The attempt is made; its record must not be lost for the lane's sake.
                warn!(error = %e, "the lane could not take in this attempt's outcome");
                LaneState::default()
            }
        };
        let mut attempt = outcome.to_attempt(task.attempt, now);
        if task.manual.is_some() {
            attempt.trigger = AttemptTrigger::Manual;
        }
        if !contacts.dead_tokens.is_empty() {
            attempt.pruned_tokens = self
                .prune(&task, profile_tokens, &contacts.dead_tokens, now)
                .await;
        }
        delivery.attempts.push(attempt);
        delivery.updated_at = now;
        delivery.next_attempt_at = None;
        match outcome.error_class {
            None => {
                (delivery.status, delivery.reason) =
                    on_success(channel.kind(), outcome.message.clone());
                if delivery.status == DeliveryStatus::Sent {
                    debug!(latency_ms = outcome.latency.as_millis() as u64, "sent");
                } else {
                    debug!(status_code = ?outcome.status_code, latency_ms = outcome.latency.as_millis() as u64, "delivered");
                }
            }
            // A resend is one attempt, never retried (like the test button).
            Some(class) if task.manual.is_some() => {
                delivery.status = DeliveryStatus::Failed;
                delivery.reason = Some(format!(
                    "resend (attempt {}) failed: {}",
                    task.attempt,
                    describe(class, &outcome)
                ));
                warn!(error_class = ?class, status_code = ?outcome.status_code, "manual attempt failed");
            }
            Some(class) if class.is_retryable() => {
                // A recovered delivery's budget counts from its recovery.
                let budget = &delivery.attempts[recovered_from(&task, &delivery)..];
                let first = budget.first().map_or(now, |a| a.at);
                // 429s count toward the age limit, not the attempt limit: a paced backlog must
                // never fail for being rate limited.
                let counted = budget
                    .iter()
                    .filter(|a| a.error_class != Some(ErrorClass::RateLimited))
                    .count();
                let counted = u32::try_from(counted).unwrap_or(u32::MAX);
                // Not before the lane's pause ends: the next attempt would only be held.
                let paused = lane
                    .paused_until
                    .and_then(|until| (until - now).to_std().ok());
                let retry_after = outcome.retry_after.max(paused);
                match self.retry.next_attempt(
                    counted,
                    first,
                    now,
                    retry_after,
                    rand::random::<f64>(),
                ) {
                    Some(wait) => {
                        self.schedule(&task, wait, now).await?;
                        delivery.status = DeliveryStatus::Queued;
                        delivery.next_attempt_at = chrono::Duration::from_std(wait)
                            .ok()
                            .and_then(|w| now.checked_add_signed(w));
                        delivery.reason = Some(format!(
                            "attempt {} failed ({}); retrying in {}s",
                            task.attempt,
                            describe(class, &outcome),
                            wait.as_secs()
                        ));
                        info!(error_class = ?class, wait_s = wait.as_secs(), "attempt failed; retry scheduled");
                    }
                    None => {
                        delivery.status = DeliveryStatus::Failed;
                        delivery.reason = Some(if counted >= self.retry.max_attempts {
                            format!(
                                "gave up after {} attempts: {}",
                                task.attempt,
                                describe(class, &outcome)
                            )
                        } else {
                            format!(
                                "gave up after {} attempts over {}s (the retry age limit): {}",
                                task.attempt,
                                (now - first).num_seconds(),
                                describe(class, &outcome)
                            )
                        });
                        warn!(error_class = ?class, "attempts exhausted; delivery failed");
                    }
                }
            }
            Some(class) => {
                delivery.status = DeliveryStatus::Failed;
                delivery.reason = Some(describe(class, &outcome));
                warn!(error_class = ?class, status_code = ?outcome.status_code, "permanent failure; delivery failed");
            }
        }
        channels
            .record_health(&channel, outcome.error_class, &error, now)
            .await?;
        // What the lane's next attempt depends on is settled; the record need not hold it up.
        if let Some(settled) = lane_settled {
            let _ = settled.send(());
        }
        self.save(&delivery, version, ttl, tally, &task).await
    }

    /// Saves the delivery if nobody else changed it, and counts it in the batch's stats once it
    /// reached a final status — only the copy whose save won counts, so a duplicate message
    /// never counts twice.
    ///
    /// A resent delivery (`manual`) was counted when it first ended: its count moves to the new
    /// status instead (written at once: resends are rare), and its frequency-cap slot is left
    /// alone (given back when it first failed, or used by the message that reached the user).
    ///
    /// A recovered delivery was counted `failed` when it first ended: likewise its count moves
    /// to the new status, with the attempts made since the recovery — in the batch's counts
    /// (recoveries come by the thousand), its cap slot also left alone.
    async fn save(
        &self,
        delivery: &Delivery,
        version: i64,
        ttl: i64,
        tally: &stats::Tally,
        task: &DispatchTask,
    ) -> Result<Dispatched, DispatchError> {
        match deliveries::save(self.store, delivery, version, ttl).await {
            // Another dispatcher recorded this attempt first (a duplicate message in flight).
            Err(StoreError::Conflict) => {
                warn!("delivery changed concurrently; this copy's attempt is not recorded");
                return Ok(Dispatched::Done);
            }
            other => other?,
        };
        if let (true, Some(manual)) = (delivery.status.is_final(), task.manual) {
            stats::record_resent(self.store, delivery, manual.previous).await?;
        } else if let (true, Some(_)) = (delivery.status.is_final(), task.recovered) {
            let since = delivery.attempts.len() - recovered_from(task, delivery);
            let attempts = i64::try_from(since).unwrap_or(i64::MAX);
            tally.record_reopened(delivery, DeliveryStatus::Failed, attempts);
        } else if delivery.status.is_final() {
            tally.record(delivery);
            if deliveries::release_cap_slot(self.store, delivery, delivery.updated_at).await? {
                info!("failed before reaching the user; frequency-cap slot given back");
            }
        }
        Ok(Dispatched::Done)
    }

    /// A delivery its lane holds: not attempted, nothing logged as an attempt. The first time
    /// it is held for a given reason the delivery says so (`reason`, `nextAttemptAt`; still
    /// `queued`) — one write when the reason changes, none per hop.
    #[allow(clippy::too_many_arguments)]
    async fn hold(
        &self,
        mut delivery: Delivery,
        version: i64,
        ttl: i64,
        until: DateTime<Utc>,
        why: Hold,
        limit: Option<RateLimit>,
        lane: &LaneState,
        now: DateTime<Utc>,
    ) -> Result<Dispatched, DispatchError> {
        let reason = match why {
            Hold::Paced => format!(
                "paced: channel limit {}",
                limit.map_or_else(|| "reached".to_owned(), |l| l.describe())
            ),
            Hold::Paused => format!(
                "paused until {}: the provider answered 429",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            Hold::CircuitOpen
                if delivery.reason.as_deref().is_some_and(|r| {
                    r.starts_with(&format!(
                        "circuit open until {} ",
                        until.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ))
                }) =>
            {
                // Held before for this very opening: the reason stands, no need to read why.
                delivery.reason.clone().unwrap_or_default()
            }
            // The lane as read at admission says why its circuit is open.
            Hold::CircuitOpen => format!(
                "circuit open until {} after {} failures in a row: {}",
                until.to_rfc3339_opts(SecondsFormat::Secs, true),
                lane.failures,
                lane.last_error.as_deref().unwrap_or("unknown error")
            ),
        };
        // Paced deliveries of one lane all wake at the lane's next slot; a little jitter keeps
        // them from arriving as one herd.
        let until = if why == Hold::Paced {
            let jitter_max = limit.map_or(PACED_JITTER_MS, |l| {
                (l.interval_ms() / 4).min(PACED_JITTER_MS)
            });
            until + chrono::Duration::milliseconds(rand::random_range(0..=jitter_max))
        } else {
            until
        };
        debug!(hold = why.as_str(), until = %until, "lane held; delivery not attempted");
        if delivery.reason.as_deref() != Some(reason.as_str()) {
            delivery.reason = Some(reason);
            delivery.next_attempt_at = Some(until);
            delivery.updated_at = now;
            match deliveries::save(self.store, &delivery, version, ttl).await {
                // Someone else moved it meanwhile; the reason is cosmetic, the hold is not.
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let paced = (why == Hold::Paced)
            .then(|| limit.map(|l| chrono::Duration::milliseconds(l.interval_ms())))
            .flatten();
        Ok(Dispatched::Held { until, paced })
    }

    /// Removes the dead push tokens that came from the stored profile (those from the event are
    /// the customer's to drop), conditioned on the profile version read before the send: a
    /// profile replaced meanwhile wins. Returns what was pruned, by the last 8 characters. A
    /// failed prune is logged, never fails the attempt.
    async fn prune(
        &self,
        task: &DispatchTask,
        profile_tokens: Option<ProfileTokens>,
        dead: &[String],
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let shown: Vec<String> = dead.iter().map(|t| token_tail(t)).collect();
        let Some(profile) = profile_tokens else {
            info!(tokens = ?shown, "dead push tokens from the event; nothing to prune");
            return Vec::new();
        };
        match users::prune_push_tokens(
            self.store,
            &task.org_id,
            &profile.user,
            profile.version,
            dead,
            now,
        )
        .await
        {
            Ok(users::Pruned::Removed(tokens)) => {
                let pruned: Vec<String> = tokens.iter().map(|t| token_tail(t)).collect();
                info!(tokens = ?pruned, "dead push tokens removed from the profile");
                pruned
            }
            Ok(other) => {
                info!(tokens = ?shown, outcome = ?other, "dead push tokens not pruned");
                Vec::new()
            }
            Err(e) => {
                warn!(tokens = ?shown, error = %e, "dead push tokens not pruned");
                Vec::new()
            }
        }
    }

    /// Where the delivery goes: for user-facing kinds, the event's contact points over the stored
    /// profile's. Opted out → `suppressed`; no recipient or no usable contact point → `failed`,
    /// both with the reason. Also says when the push tokens are the stored profile's (and the
    /// profile's version), which is when dead ones are pruned.
    async fn destination(
        &self,
        channel: &herald_core::domain::channel::Channel,
        task: &DispatchTask,
    ) -> Result<Result<(Destination, Option<ProfileTokens>), (DeliveryStatus, String)>, DispatchError>
    {
        let kind = channel.kind();
        let mut profile_tokens = None;
        let merged = match &task.recipient {
            Some(recipient) if kind.is_user_facing() => {
                let user = &recipient.user_id;
                let org = &task.org_id;
                // The profile, the user's one-click unsubscribe from this channel and the
                // suppression entry of the event's own contact point in one read (one
                // BatchGetItem on DynamoDB).
                let from_event = suppressible(kind, recipient);
                let mut wanted = vec![
                    keys::user(org, user),
                    keys::unsubscribe(org, user, channel.id),
                ];
                wanted.extend(from_event.iter().map(|a| keys::suppression(org, a)));
                let mut items = self.store.get_many(&wanted).await?.into_iter();
                let profile_item = items.next().flatten();
                let unsubscribed = items
                    .next()
                    .flatten()
                    .map(unsubscribes::from_item)
                    .transpose()?;
                let version = profile_item.as_ref().and_then(users::version_of);
                let profile = profile_item.map(users::from_item).transpose()?;
                if kind == herald_core::domain::channel::ChannelKind::Push
                    && recipient.push_tokens.is_empty()
                    && profile.as_ref().is_some_and(|p| !p.push_tokens.is_empty())
                {
                    profile_tokens = Some(ProfileTokens {
                        user: user.clone(),
                        version,
                    });
                }
                let event_entry = items.next().flatten();
                if let (false, Some(u)) = (task.critical, &unsubscribed) {
                    return Ok(Err((
                        DeliveryStatus::Suppressed,
                        format!(
                            "user {user} unsubscribed from channel {} with one click ({})",
                            channel.id,
                            u.at.format("%Y-%m-%d")
                        ),
                    )));
                }
                // A critical rule (password reset, security alert) ignores opt-outs; the
                // suppression list below still applies.
                if !task.critical && profile.as_ref().is_some_and(|p| p.opted_out_of(channel)) {
                    return Ok(Err((
                        DeliveryStatus::Suppressed,
                        format!(
                            "user {user} opted out of {} (channel {})",
                            kind.as_str(),
                            channel.id
                        ),
                    )));
                }
                let merged = user::contact(recipient, profile.as_ref());
                let entry = match suppressible(kind, &merged) {
                    Some(address) if Some(&address) == from_event.as_ref() => {
                        event_entry.map(suppressions::from_item).transpose()?
                    }
                    // The contact point came from the profile: its entry is one more read.
                    Some(address) => suppressions::get(self.store, org, &address).await?,
                    None => None,
                };
                if let Some(entry) = entry {
                    return Ok(Err((DeliveryStatus::Suppressed, entry.describe())));
                }
                Some(merged)
            }
            _ => None,
        };
        Ok(Destination::resolve(kind, merged.as_ref())
            .map(|d| (d, profile_tokens))
            .map_err(|missing| {
                let reason = match (missing, &task.recipient) {
                    (NoDestination::NoContactPoint { what }, Some(r)) => {
                        format!("no {what} for user {}", r.user_id)
                    }
                    _ => {
                        "the event names no recipient (userId or recipients) and the rule has none"
                            .to_owned()
                    }
                };
                (DeliveryStatus::Failed, reason)
            }))
    }

    /// Adds numbers SNS says opted out to the org's suppression list (`sms_opt_out`, `sns`):
    /// the next delivery to them is suppressed without asking SNS.
    async fn suppress_opted_out(
        &self,
        org: &OrgId,
        numbers: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DispatchError> {
        for number in numbers {
            let Ok(address) = SuppressedAddress::parse(SuppressionKind::Sms, number) else {
                continue;
            };
            let entry = Suppression::new(
                &address,
                SuppressionReason::SmsOptOut,
                SuppressionSource::Sns,
                SuppressionDetails::default(),
                now,
            );
            suppressions::add(self.store, org, &entry).await?;
        }
        Ok(())
    }

    async fn schedule(
        &self,
        task: &DispatchTask,
        wait: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), DispatchError> {
        let next = DispatchTask {
            attempt: task.attempt + 1,
            not_before: (wait > MAX_DELAY)
                .then(|| now + chrono::Duration::from_std(wait).unwrap_or_default()),
            ..task.clone()
        };
        let message = Outgoing::now(serde_json::to_string(&next)?)
            .in_group(next.lane())
            .delayed(wait);
        self.dispatch_queue.send_batch(vec![message]).await?;
        Ok(())
    }
}

/// Where a recovered delivery's attempts since its recovery start in `delivery.attempts`
/// (0 for any other delivery).
fn recovered_from(task: &DispatchTask, delivery: &Delivery) -> usize {
    task.recovered
        .map_or(0, |r| r.after_attempts as usize)
        .min(delivery.attempts.len())
}

/// The stored profile's push tokens are the ones a delivery uses: whose profile, at which
/// version.
#[derive(Debug, Clone)]
struct ProfileTokens {
    user: herald_core::domain::UserId,
    version: Option<i64>,
}

/// The suppression-list address a delivery of `kind` to `recipient` goes to: the email of an
/// email channel, the phone number of an SMS channel (none for other kinds, or when malformed:
/// the provider refuses those).
fn suppressible(
    kind: herald_core::domain::channel::ChannelKind,
    recipient: &herald_core::domain::event::Recipient,
) -> Option<SuppressedAddress> {
    use herald_core::domain::channel::ChannelKind;
    let (kind, raw) = match kind {
        ChannelKind::Email => (SuppressionKind::Email, recipient.email.as_deref()?),
        ChannelKind::Sms => (SuppressionKind::Sms, recipient.phone.as_deref()?),
        _ => return None,
    };
    SuppressedAddress::parse(kind, raw).ok()
}

fn finish(delivery: &mut Delivery, status: DeliveryStatus, reason: &str, now: DateTime<Utc>) {
    delivery.status = status;
    delivery.reason = Some(reason.to_owned());
    delivery.updated_at = now;
    delivery.next_attempt_at = None;
}

/// `503: upstream timeout`, `network: connection refused`, ...
fn describe(class: ErrorClass, outcome: &AttemptOutcome) -> String {
    let what = outcome
        .status_code
        .map_or_else(|| format!("{class:?}").to_lowercase(), |s| s.to_string());
    match &outcome.message {
        Some(m) if !m.is_empty() => format!(
            "{what}: {}",
            herald_shared::delivery::sender::truncate_bytes(m, 200)
        ),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use herald_shared::store::embedded::Embedded;

    #[tokio::test]
    async fn a_batch_uses_its_read_of_a_channel_for_a_second_at_most() {
        let store = Embedded::in_memory().unwrap();
        let channel = herald_testing::channels::slack(OrgId::new());
        let repo = Channels::new(&store);
        repo.create(&channel).await.unwrap();
        let (org, id) = (channel.org_id, channel.id);

        let batch = BatchChannels::default();
        assert_eq!(
            batch.get(&store, &org, &id).await.unwrap(),
            Some(channel.clone())
        );
        repo.delete(&org, &id).await.unwrap();
        // Within the batch's read: the channel as read; a new batch reads it afresh.
        assert_eq!(batch.get(&store, &org, &id).await.unwrap(), Some(channel));
        assert_eq!(
            BatchChannels::default()
                .get(&store, &org, &id)
                .await
                .unwrap(),
            None
        );
        // Past the read's freshness: read again, and gone.
        tokio::time::sleep(CHANNEL_READ_FRESH + Duration::from_millis(100)).await;
        assert_eq!(batch.get(&store, &org, &id).await.unwrap(), None);
    }
}
