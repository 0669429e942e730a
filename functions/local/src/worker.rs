//! Local queue workers for the ingest and match stages: what the SQS event source mapping does
//! for Lambda, in-process.
//!
//! A worker takes a batch from its queue — fairly across orgs: each org's messages travel in
//! the org's lane and [`EmbeddedQueue::receive_lanes`] serves orgs round robin, so one org's
//! flood does not hold up another's events — hands it to a handler function (the same library
//! function the Lambda runs), deletes the messages the handler did not report failed, and leaves
//! failed ones to reappear after the visibility timeout and to be dead-lettered after the
//! queue's max receives. A panicking handler fails its batch, not the process. Workers sleep
//! until a send wakes them.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use herald_shared::embedded;
use herald_shared::pipeline::{BatchOutcome, QueueMessage};
use herald_shared::queue::embedded::{EmbeddedQueue, LaneRequest};
use herald_shared::queue::{Queue, Receipt, Received};
use tokio::sync::{Mutex, watch};
use tracing::{error, warn};

/// The longest a worker sleeps without being woken.
const IDLE: Duration = Duration::from_secs(1);
/// Messages per batch, at most (the Lambda event source mapping's batch size is 10; locally a
/// batch is one handler call whose store writes share commits, so bigger is cheaper). An org
/// has one batch in flight at a time (below), so this bounds one org's rate through the stage:
/// 250 gave about 1.4× the deliveries per second of 100 in the pipeline bench, and 1,000 no
/// more than 250 (docs/benchmarks.md). A quiet org is not held up by a big batch of another's:
/// it is taken by another worker.
const BATCH: usize = 250;

/// Runs `concurrency` workers over `queue` until `shutdown` turns true.
pub fn spawn<H, F>(
    name: &'static str,
    queue: EmbeddedQueue,
    concurrency: usize,
    handler: H,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>>
where
    H: Fn(Vec<QueueMessage>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    // The lanes (orgs) a worker is handling: one batch per org at a time, so an org's events
    // leave the stage in the order they entered it.
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    (0..concurrency)
        .map(|_| {
            let queue = queue.clone();
            let handler = handler.clone();
            let busy = Arc::clone(&busy);
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let notifier = queue.notifier();
                loop {
                    if *shutdown.borrow() {
                        return;
                    }
                    // Registered before receiving, so a send landing in between still wakes us.
                    let notified = notifier.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    // Claimed under the lock, so two workers never take the same org's messages.
                    let batch = {
                        let mut busy = busy.lock().await;
                        let request = LaneRequest {
                            max: BATCH,
                            per_lane: BATCH,
                            allowance: busy.iter().map(|lane| (lane.clone(), 0)).collect(),
                            max_lanes: usize::MAX,
                        };
                        let batch = queue.receive_lanes(request).await;
                        if let Ok(batch) = &batch {
                            busy.extend(batch.messages.iter().map(lane));
                        }
                        batch
                    };
                    let wake_at = match batch {
                        Ok(batch) if batch.messages.is_empty() => batch.wake_at,
                        Ok(batch) => {
                            let lanes: HashSet<String> = batch.messages.iter().map(lane).collect();
                            handle(name, &queue, batch.messages, &handler).await;
                            busy.lock().await.retain(|l| !lanes.contains(l));
                            continue;
                        }
                        Err(e) => {
                            error!(queue = name, error = %e, "receive failed");
                            None
                        }
                    };
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(sleep_until(wake_at)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            })
        })
        .collect()
}

/// How long to sleep for a wake-up at `at` (at most [`IDLE`]).
pub fn sleep_until(at: Option<SystemTime>) -> Duration {
    at.map_or(IDLE, |at| {
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(IDLE)
    })
}

/// Hands a received batch to `handler` and settles it (see [`settle`]); a panicking handler
/// leaves the batch to be received again.
pub async fn handle<H, F>(
    name: &'static str,
    queue: &EmbeddedQueue,
    batch: Vec<Received>,
    handler: &H,
) where
    H: Fn(Vec<QueueMessage>) -> F,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    let messages = batch.iter().map(message).collect();
    // A task of its own catches a panic; it stays in the caller's session, if any.
    let outcome = match tokio::spawn(embedded::in_this_session(handler(messages))).await {
        Ok(outcome) => outcome,
        Err(e) => {
            error!(queue = name, error = %e, "handler panicked; the batch will be received again");
            return;
        }
    };
    settle(name, queue, batch, &outcome).await;
}

/// The lane a message came in (its org in the ingest and match queues, its channel in the
/// dispatch queue).
pub fn lane(received: &Received) -> String {
    received.group.clone().unwrap_or_default()
}

/// The handler's view of a received message.
pub fn message(received: &Received) -> QueueMessage {
    QueueMessage {
        id: received.message_id.clone(),
        body: received.body.clone(),
        receive_count: received.receive_count,
    }
}

/// Applies a handler's outcome to what it was given: deferred messages go back in their place
/// until their time, failed ones are left to reappear after the visibility timeout, the rest
/// are deleted (one delete per [`Queue::max_batch`]: one writer operation of the embedded queue
/// for the whole batch, not one per message or per ten).
pub async fn settle(
    name: &'static str,
    queue: &EmbeddedQueue,
    batch: Vec<Received>,
    outcome: &BatchOutcome,
) {
    let mut done: Vec<Receipt> = Vec::with_capacity(batch.len());
    for r in batch {
        if let Some(deferred) = outcome
            .deferred
            .iter()
            .find(|d| d.message_id == r.message_id)
        {
            let until = SystemTime::from(deferred.until);
            if let Err(e) = queue.defer(&r.receipt, until).await {
                warn!(queue = name, error = %e, "defer failed; the message reappears after its visibility timeout");
            }
        } else if !outcome.failed.contains(&r.message_id) {
            done.push(r.receipt);
        }
    }
    let deletes = done
        .chunks(queue.max_batch().max(1))
        .map(|chunk| queue.delete_batch(chunk));
    for result in futures::future::join_all(deletes).await {
        if let Err(e) = result {
            warn!(queue = name, error = %e, "delete failed; some messages may be handled twice");
        }
    }
}
