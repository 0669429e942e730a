//! The delivery scheduler of `herald serve`: the dispatch stage, in lanes.
//!
//! Every dispatch message travels in its channel's lane (`<org>/<channel>`, see
//! `DispatchTask::lane`). The scheduler keeps up to `concurrency` runs (see below) in flight in
//! all and at most `per_lane` in each lane, and fills free slots with
//! [`EmbeddedQueue::receive_lanes`]: orgs round robin, each org's lanes in turn, each lane in
//! send order. So
//!
//! - one hung or slow receiver holds at most `per_lane` slots — its own lane — and every other
//!   lane keeps going;
//! - an org with a backlog of millions gets one turn per round like any other org, so a quiet
//!   org's delivery waits for at most one round, not for the backlog;
//! - with `per_lane` = 1 (the default) a channel's deliveries are attempted one after the other
//!   in the order their messages were sent, i.e. event order, unless a retry intervenes (a retry
//!   is a new message at the lane's end; it does not hold up later deliveries);
//! - a delivery its lane cannot take yet (paced, paused by a 429, circuit open: the dispatcher
//!   reports it deferred) goes back to its place and the lane is held until then, so nothing
//!   behind it overtakes it and no worker spins on it.
//!
//! When a receive finds nothing to take, the scheduler leaves that receive **parked** in the
//! queue ([`EmbeddedQueue::park`]) while it waits: the next send to the dispatch queue (the
//! matcher enqueueing an event's deliveries) runs it in its own operation, right after storing
//! its messages, so they are received in the transaction that stores them and reach the scheduler
//! at that commit — not one wake-up and one receive commit later. It is the same receive (same
//! lanes, allowances and round robin) at an earlier moment. Whatever else wakes the scheduler
//! takes the parked receive back first (or, if a send ran it meanwhile, uses what it received).
//!
//! A slot holds a **run**: up to 32 consecutive messages of one lane, received together and
//! handed to the dispatcher as one in-order batch (`Dispatcher::handle_in_order`: one delivery
//! after the other). So a busy lane pays one queue commit per run for its receive, one for its
//! deletes and one stats write per counter item, not one per delivery, and the deliveries of a
//! run still go out in order. When one is deferred the rest of the run goes back behind it
//! unattempted. The messages of finished runs are
//! deleted together, in the background, while the scheduler goes on receiving. Nothing is
//! deleted before the dispatcher has recorded the attempt, so a crash re-delivers rather than
//! loses (at most a run's worth of deliveries, each of which the dispatcher drops as a duplicate
//! when its attempt is already on record).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_shared::pipeline::{BatchOutcome, QueueMessage};
use herald_shared::queue::Received;
use herald_shared::queue::embedded::{EmbeddedQueue, LaneRequest, Parked};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info};

use crate::worker;

/// Messages taken from the queue in one receive, at most.
const RECEIVE_MAX: usize = 1024;
/// Messages of one lane handed to one run, at most: a run is received, and its messages
/// deleted, together, so a busy lane pays one queue commit per run, not per delivery.
const RUN_MAX: usize = 32;
/// A delivery held for at most this long (its lane's next paced slot is that close) waits for it
/// in its run, keeping the slot, rather than going back to the queue: the round trip through
/// the queue costs more than such a wait, and a lane paced at 20/s with burst 1 would lose most
/// of its rate to it. Longer holds (a 429's pause, an open circuit, slow pacing) go back.
const WAIT_IN_PLACE: Duration = Duration::from_millis(250);
/// Waits in place per delivery, at most (a hold that keeps coming back short is sent back).
const WAITS_IN_PLACE_MAX: usize = 8;
/// How often the scheduler logs what it dispatched (per-delivery detail is at `debug`).
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// How many deliveries may be in flight.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// In all lanes together.
    pub concurrency: usize,
    /// In one lane (one channel).
    pub per_lane: usize,
}

/// A run of one lane's deliveries that finished (or was put off).
struct Done {
    lane: String,
    received: Vec<Received>,
    outcome: BatchOutcome,
}

/// What the scheduler settled since its last summary.
#[derive(Debug, Default)]
struct Tally {
    handled: usize,
    failed: usize,
    deferred: usize,
    since: Option<Instant>,
}

impl Tally {
    fn count(&mut self, finished: &[Done]) {
        self.since.get_or_insert_with(Instant::now);
        for done in finished {
            self.handled += done.received.len();
            self.failed += done.outcome.failed.len();
            self.deferred += done.outcome.deferred.len();
        }
    }

    /// Logs the tally and starts a new one, once it is `SUMMARY_EVERY` old.
    fn log_if_due(&mut self) {
        let Some(since) = self.since.filter(|t| t.elapsed() >= SUMMARY_EVERY) else {
            return;
        };
        info!(
            messages = self.handled,
            failed = self.failed,
            deferred = self.deferred,
            seconds = since.elapsed().as_secs(),
            "dispatched"
        );
        *self = Self::default();
    }
}

/// Runs the scheduler over `queue` until `shutdown` turns true.
pub fn spawn<H, F>(
    queue: EmbeddedQueue,
    limits: Limits,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    H: Fn(Vec<QueueMessage>) -> F + Send + Sync + 'static,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    let concurrency = limits.concurrency.max(1);
    let per_lane = limits.per_lane.max(1);
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        let notifier = queue.notifier();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        // Lanes whose deferred deliveries are back in place, once settled.
        let (settled_tx, mut settled_rx) = mpsc::unbounded_channel::<Vec<String>>();
        // Runs in flight per lane; a lane is absent when it has none.
        let mut in_flight: HashMap<String, usize> = HashMap::new();
        let mut total = 0usize;
        let mut tally = Tally::default();
        // The receive left in the queue while the scheduler waits (see below).
        let mut parked: Option<Parked> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            tally.log_if_due();
            let notified = notifier.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            // What the parked receive got, if a send ran it: this round's receive. (Taken back
            // first in any case: the scheduler's state may have changed since it was parked.)
            let taken = match parked.take() {
                Some(p) => p.cancel().await,
                None => None,
            };
            let mut wake_at = None;
            if total < concurrency || taken.is_some() {
                let free = concurrency.saturating_sub(total);
                let request = LaneRequest {
                    max: free.saturating_mul(RUN_MAX).min(RECEIVE_MAX),
                    per_lane: RUN_MAX,
                    allowance: in_flight
                        .iter()
                        .map(|(lane, n)| (lane.clone(), if *n < per_lane { RUN_MAX } else { 0 }))
                        .collect(),
                    max_lanes: free,
                };
                let received = match taken {
                    Some(received) => received,
                    None => queue.receive_lanes(request.clone()).await,
                };
                match received {
                    Ok(batch) if batch.messages.is_empty() => {
                        wake_at = batch.wake_at;
                        // Until something wakes the scheduler, the next send to the queue runs
                        // this receive in its own transaction: its messages reach the scheduler
                        // at that commit, without a receive (and a commit) of their own.
                        parked = Some(queue.park(request));
                    }
                    Ok(batch) => {
                        debug!(deliveries = batch.messages.len(), "scheduled");
                        for (lane, run) in runs(batch.messages) {
                            *in_flight.entry(lane.clone()).or_default() += 1;
                            total += 1;
                            tokio::spawn(dispatch_run(
                                lane,
                                run,
                                Arc::clone(&handler),
                                done_tx.clone(),
                            ));
                        }
                        continue;
                    }
                    Err(e) => error!(error = %e, "dispatch receive failed"),
                }
            }
            tokio::select! {
                () = &mut notified => {}
                () = taken_by_a_send(parked.as_mut()) => {}
                Some(first) = done_rx.recv() => {
                    // Everything that finished meanwhile, settled together, in the background:
                    // the loop goes on receiving while the deletes commit.
                    let mut finished = vec![first];
                    while let Ok(more) = done_rx.try_recv() {
                        finished.push(more);
                    }
                    tally.count(&finished);
                    // A finished run frees its slot now (its messages are invisible until
                    // deleted, so nothing receives them twice); a deferred one only once its
                    // messages are back in their place and its lane held, so that nothing behind
                    // them overtakes them.
                    let mut held = Vec::new();
                    for done in &finished {
                        if done.outcome.deferred.is_empty() {
                            release(&mut in_flight, &mut total, &done.lane);
                        } else {
                            held.push(done.lane.clone());
                        }
                    }
                    let (queue, settled_tx) = (queue.clone(), settled_tx.clone());
                    tokio::spawn(async move {
                        settle(&queue, finished).await;
                        let _ = settled_tx.send(held);
                    });
                }
                Some(lanes) = settled_rx.recv() => {
                    for lane in lanes {
                        release(&mut in_flight, &mut total, &lane);
                    }
                }
                () = tokio::time::sleep(worker::sleep_until(wake_at)) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// Waits until a send ran the parked receive (forever when none is parked).
async fn taken_by_a_send(parked: Option<&mut Parked>) {
    match parked {
        Some(parked) => parked.taken().await,
        None => std::future::pending().await,
    }
}

/// The received messages grouped by lane, each lane's in the order they came (send order).
fn runs(messages: Vec<Received>) -> Vec<(String, Vec<Received>)> {
    let mut runs: Vec<(String, Vec<Received>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for received in messages {
        let lane = worker::lane(&received);
        match index.get(&lane) {
            Some(&i) => runs[i].1.push(received),
            None => {
                index.insert(lane.clone(), runs.len());
                runs.push((lane, vec![received]));
            }
        }
    }
    runs
}

/// Dispatches a lane's run: the handler attempts its deliveries one after the other, in order,
/// and once one is held defers it and the rest to the same instant, unattempted, so they go back
/// behind it in order. A hold that ends within [`WAIT_IN_PLACE`] is waited out instead (at most
/// [`WAITS_IN_PLACE_MAX`] times per delivery), and the run goes on from the held delivery.
async fn dispatch_run<H, F>(
    lane: String,
    run: Vec<Received>,
    handler: Arc<H>,
    done_tx: mpsc::UnboundedSender<Done>,
) where
    H: Fn(Vec<QueueMessage>) -> F + Send + Sync + 'static,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    let mut outcome = BatchOutcome::default();
    let mut start = 0;
    let mut waits = 0;
    loop {
        let part = dispatch_part(handler.as_ref(), &run[start..]).await;
        let held = part.deferred.first().and_then(|first| {
            let wait = (first.until - chrono::Utc::now()).to_std().ok()?;
            let at = run.iter().position(|r| r.message_id == first.message_id)?;
            (wait <= WAIT_IN_PLACE).then_some((at, wait))
        });
        match held {
            Some((at, wait)) if waits < WAITS_IN_PLACE_MAX || at > start => {
                waits = if at == start { waits + 1 } else { 1 };
                outcome.failed.extend(part.failed);
                tokio::time::sleep(wait).await;
                start = at;
            }
            _ => {
                outcome.failed.extend(part.failed);
                outcome.deferred.extend(part.deferred);
                break;
            }
        }
    }
    let _ = done_tx.send(Done {
        lane,
        received: run,
        outcome,
    });
}

/// Dispatches consecutive deliveries of a run as one in-order batch; a panic fails them all
/// (their messages come back).
async fn dispatch_part<H, F>(handler: &H, part: &[Received]) -> BatchOutcome
where
    H: Fn(Vec<QueueMessage>) -> F + Send + Sync + 'static,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    match tokio::spawn(handler(part.iter().map(worker::message).collect())).await {
        Ok(outcome) => outcome,
        Err(e) => {
            error!(error = %e, "dispatch panicked; the run's deliveries will be received again");
            BatchOutcome {
                failed: part.iter().map(|r| r.message_id.clone()).collect(),
                ..BatchOutcome::default()
            }
        }
    }
}

/// Gives back a slot of `lane` and of the total.
fn release(in_flight: &mut HashMap<String, usize>, total: &mut usize, lane: &str) {
    if let Some(n) = in_flight.get_mut(lane) {
        *n -= 1;
        if *n == 0 {
            in_flight.remove(lane);
        }
    }
    *total -= 1;
}

/// Deletes, defers or leaves the finished deliveries' messages, as their outcomes say.
async fn settle(queue: &EmbeddedQueue, finished: Vec<Done>) {
    let mut outcome = BatchOutcome::default();
    let mut batch = Vec::with_capacity(finished.len());
    for done in finished {
        outcome.failed.extend(done.outcome.failed);
        outcome.deferred.extend(done.outcome.deferred);
        batch.extend(done.received);
    }
    worker::settle("dispatch", queue, batch, &outcome).await;
}
