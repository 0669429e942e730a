//! The embedded queue engine for `herald serve`: SQS semantics (delay, visibility timeout,
//! receive count, dead-letter after `max_receives`, long polling) over tables of an
//! [`EmbeddedDb`] — in `herald serve` the same redb database as the store's, so that queue
//! operations and store writes share one writer and one commit.
//!
//! # Layout
//! - `messages`: `(queue, seq)` → record (visible-at, receive count, message id, body).
//! - `visibility`: `(queue, visible_at_ms, seq)` → `()`, the index receivers scan: everything due
//!   in a queue is the key range `(queue, 0, 0) ..= (queue, now, MAX)`, in send order within the
//!   same instant. In-flight and delayed messages sit in the same index with a future time, so a
//!   message received before a crash reappears after its visibility timeout, with no recovery step.
//! - `meta`: the next sequence number.
//!
//! Times are wall-clock milliseconds since the Unix epoch, so they mean the same after a restart.
//!
//! # Durability and group commit
//! Every mutation (send, receive, delete, change visibility, defer, dead-letter, redrive) is an
//! operation of the database's writer ([`crate::embedded`]): applied in arrival order with every
//! other operation waiting — the store's writes included — in one write transaction, committed
//! once (`Durability::Immediate`: fsync) before any caller hears back. So a send returns only
//! once its messages are on disk (they survive `kill -9`), and concurrent callers share one fsync.
//! A batch call (`send_batch`, `delete_batch`: up to [`BATCH_LIMIT`] messages, where SQS takes
//! 10) is one operation, so it is always one transaction. A group that changed nothing (a poll
//! of an empty queue) is aborted instead of committed, so idle receivers cost no fsync. Receives
//! are committed durably too: a receive count lost in a crash would let a message that crashes
//! its consumer come back forever instead of being dead-lettered.
//!
//! # Lanes
//! A message sent with a group ([`Outgoing::group`]) is kept in that lane: `lanes` indexes every
//! message by `(queue, lane, seq)` (messages without a group in the unnamed lane `""`), so a
//! lane is a FIFO in send order. [`EmbeddedQueue::receive_lanes`] serves tenants (the part of a
//! lane before '/') round robin and each tenant's lanes in turn, at most a given number per
//! lane; [`EmbeddedQueue::defer`] puts a received message back in its place and holds its lane
//! (`holds`) until a given instant; `tenant_counts` counts each tenant's messages per queue for
//! admission control ([`EmbeddedQueues::tenant_backlog`]).
//!
//! # Long polling
//! Each queue has a [`Notify`]. Sends, redrives, dead-letter moves and visibility changes wake the
//! queue's waiting receivers; a receiver that finds nothing due also learns when the next message
//! becomes visible and sleeps until then (or its deadline), so there is no busy polling. A lane
//! receiver can do better than wake up and receive: it parks its receive in the queue
//! ([`EmbeddedQueue::park`]) and the next send runs it in the same operation as itself, so the
//! messages are received in the very commit that stores them.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use super::{MAX_BATCH, MAX_DELAY, Outgoing, Queue, QueueError, Receipt, Received};
use crate::embedded::{DbError, EmbeddedDb, GroupFailure, Job, job};

/// Messages a redrive moves per transaction.
const REDRIVE_CHUNK: usize = 500;

/// The most messages one [`Queue::send_batch`] or [`Queue::delete_batch`] of this engine takes
/// ([`Queue::max_batch`]): a batch is one operation of the database's writer, so a stage's whole
/// batch of sends or deletes costs one operation rather than one per ten messages (SQS's limit,
/// [`MAX_BATCH`], which receives keep). Bounded so that one operation holds the writer briefly.
pub const BATCH_LIMIT: usize = 1000;

const MESSAGES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("messages");
const VISIBILITY: TableDefinition<'_, (&str, u64, u64), ()> = TableDefinition::new("visibility");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// `(queue, seq)` → the lane of a message sent in one.
const GROUPS: TableDefinition<'_, (&str, u64), &str> = TableDefinition::new("groups");
/// `(queue, lane, seq)` → visible-at: each lane's messages in send order.
const LANES: TableDefinition<'_, (&str, &str, u64), u64> = TableDefinition::new("lanes");
/// `(queue, lane)` → held until (ms): a lane whose head was put off ([`EmbeddedQueue::defer`]).
const HOLDS: TableDefinition<'_, (&str, &str), u64> = TableDefinition::new("holds");
/// `(tenant, queue)` → messages the queue holds for the tenant (the part of the lane before '/').
const TENANT_COUNTS: TableDefinition<'_, (&str, &str), u64> = TableDefinition::new("tenant_counts");
const NEXT_SEQ: &str = "next_seq";

/// How one named queue behaves. Settings belong to the handle, not the file: open a queue with
/// the same settings every time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a received message stays invisible unless deleted or re-timed.
    pub visibility_timeout: Duration,
    /// With a [`dead_letter`](Self::dead_letter) queue: how many receives a message gets; the
    /// next receive moves it to the dead-letter queue instead (SQS `maxReceiveCount`). At least
    /// 1; 0 is taken as 1.
    pub max_receives: u32,
    /// The queue that takes messages received `max_receives` times; `None`: retried forever.
    pub dead_letter: Option<String>,
}

impl Default for QueueSettings {
    /// SQS's defaults: 30 s visibility, no dead-letter queue.
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receives: 0,
            dead_letter: None,
        }
    }
}

/// A message looked at without receiving it (for listing a dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
}

/// The embedded queue database: one redb file holding any number of named queues.
/// Cheap to clone; the database closes when the last clone and queue handle are dropped.
#[derive(Debug, Clone)]
pub struct EmbeddedQueues {
    inner: Arc<Inner>,
}

impl EmbeddedQueues {
    /// Opens (or creates) a queue database of its own at `path`. Only one process may have it
    /// open. `herald serve` keeps its queues in the store's database instead ([`Self::on`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, QueueError> {
        Self::on(&EmbeddedDb::open(path).map_err(QueueError::engine)?)
    }

    /// A queue database that lives in memory only (tests, throwaway servers).
    pub fn in_memory() -> Result<Self, QueueError> {
        Self::on(&EmbeddedDb::in_memory().map_err(QueueError::engine)?)
    }

    /// The queues of `db`, whose writer they share with every other user of the database (the
    /// store): their operations and the store's writes are committed together.
    pub fn on(db: &EmbeddedDb) -> Result<Self, QueueError> {
        create_tables(db.database()).map_err(QueueError::engine)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                notifiers: Mutex::new(HashMap::new()),
                parked: Mutex::new(HashMap::new()),
                next_park: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// A handle on the queue `name` (created on first send).
    pub fn queue(&self, name: &str, mut settings: QueueSettings) -> EmbeddedQueue {
        settings.max_receives = settings.max_receives.max(1);
        EmbeddedQueue {
            name: Arc::from(name),
            notify: self.inner.notifier(name),
            settings: Arc::new(settings),
            inner: Arc::clone(&self.inner),
            last_tenant: Arc::default(),
        }
    }

    /// How many messages `name` holds: visible, in flight and delayed. Counts by scanning the
    /// queue: for operators (`herald dlq`), not for hot paths.
    pub async fn approximate_count(&self, name: &str) -> Result<usize, QueueError> {
        let name = name.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let messages = txn.open_table(MESSAGES)?;
            let mut count = 0;
            for entry in messages.range((name.as_str(), 0)..=(name.as_str(), u64::MAX))? {
                entry?;
                count += 1;
            }
            Ok(count)
        })
        .await
    }

    /// How many messages the queues `queues` hold for `tenant` (sent in a lane whose tenant part
    /// is `tenant`): visible, in flight and delayed. Kept as counters, so cheap enough to ask
    /// on every request.
    pub async fn tenant_backlog(&self, tenant: &str, queues: &[&str]) -> Result<u64, QueueError> {
        let tenant = tenant.to_owned();
        let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let counts = txn.open_table(TENANT_COUNTS)?;
            let mut total = 0u64;
            for queue in &queues {
                if let Some(n) = counts.get((tenant.as_str(), queue.as_str()))? {
                    total = total.saturating_add(n.value());
                }
            }
            Ok(total)
        })
        .await
    }

    /// Up to `max` messages of `name` in delivery order, without receiving them.
    pub async fn peek(&self, name: &str, max: usize) -> Result<Vec<Peeked>, QueueError> {
        let name = name.to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let index = txn.open_table(VISIBILITY)?;
            let messages = txn.open_table(MESSAGES)?;
            let mut out = Vec::new();
            for entry in index.range((name.as_str(), 0, 0)..=(name.as_str(), u64::MAX, u64::MAX))? {
                if out.len() >= max {
                    break;
                }
                let (_, _, seq) = entry?.0.value();
                if let Some(raw) = messages.get((name.as_str(), seq))? {
                    let record = Record::decode(raw.value())?;
                    out.push(Peeked {
                        message_id: record.message_id.to_string(),
                        body: record.body,
                        receive_count: record.receive_count,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    /// Moves up to `max` visible messages from `from` (a dead-letter queue) to `to`, as new
    /// messages with their receive count reset. Returns how many moved.
    pub async fn redrive(&self, from: &str, to: &str, max: usize) -> Result<usize, QueueError> {
        let mut moved = 0;
        while moved < max {
            let (from_name, to_name) = (from.to_owned(), to.to_owned());
            let chunk = (max - moved).min(REDRIVE_CHUNK);
            let n = self
                .inner
                .submit(move |t, now| Ok(Ok(t.redrive(&from_name, &to_name, chunk, now)?)))
                .await?;
            moved += n;
            if n > 0 {
                self.inner.wake(to);
            }
            if n < chunk {
                break;
            }
        }
        Ok(moved)
    }

    /// Moves every message of the queue database file at `path` (one an earlier `herald serve`
    /// kept apart from its store) into this one — each in its queue and lane, in its order, with
    /// its visibility and receive count — and the lanes' holds, in one commit. Returns how many
    /// messages moved. The caller removes the old file afterwards; a crash in between moves them
    /// again on the next start (duplicates, which the pipeline's handlers recognise).
    pub async fn import(&self, path: &Path) -> Result<usize, QueueError> {
        let path = path.to_owned();
        let (records, holds) = tokio::task::spawn_blocking(move || read_all(&path))
            .await
            .map_err(QueueError::engine)?
            .map_err(QueueError::engine)?;
        let moved = records.len();
        let woken: std::collections::BTreeSet<String> =
            records.iter().map(|(q, _)| q.clone()).collect();
        self.inner
            .submit(move |t, _| {
                for (queue, record) in records {
                    t.add(&queue, &record)?;
                }
                for ((queue, lane), until) in holds {
                    t.holds.insert((queue.as_str(), lane.as_str()), until)?;
                    t.dirty = true;
                }
                Ok(Ok(()))
            })
            .await?;
        for queue in woken {
            self.inner.wake(&queue);
        }
        Ok(moved)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || f(db.database()))
            .await
            .map_err(QueueError::engine)?
            .map_err(QueueError::engine)
    }
}

/// One named queue of an [`EmbeddedQueues`] database.
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    name: Arc<str>,
    settings: Arc<QueueSettings>,
    notify: Arc<Notify>,
    inner: Arc<Inner>,
    /// The tenant [`receive_lanes`](Self::receive_lanes) served last.
    last_tenant: Arc<Mutex<Option<String>>>,
}

impl EmbeddedQueue {
    /// The queue's name in its database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database the queue lives in (to run its operations in a session of it:
    /// [`EmbeddedDb::session`]).
    pub fn db(&self) -> &EmbeddedDb {
        &self.inner.db
    }

    /// What sends (and visibility changes) to this queue notify: wait on it to be woken when
    /// there may be new work.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// A fair receive across lanes ([`Outgoing::group`]), without waiting. Messages come in send
    /// order within a lane, at most `per_lane` (or the lane's `allowance`) from each; tenants
    /// (the part of a lane before '/') are served round robin, one message per tenant per round,
    /// starting after the tenant this handle served last, and each tenant's lanes in turn. Held
    /// lanes ([`defer`](Self::defer)) are passed over. Only messages sent in a lane are seen;
    /// `max` may exceed SQS's 10.
    pub async fn receive_lanes(&self, request: LaneRequest) -> Result<LaneBatch, QueueError> {
        let receive = self.lane_receive(request);
        let polled = self
            .inner
            .submit(move |t, now| Ok(Ok(receive(t, now)?)))
            .await?;
        Ok(self.lane_batch(polled))
    }

    /// Leaves the lane receive `request` waiting in the queue for the next
    /// [`send_batch`](Queue::send_batch) to it — from any handle. That send runs the receive in
    /// its own operation, right after storing its messages, so they are received in the very
    /// transaction that stores them: no commit and no wake-up of their own between a send and
    /// its receive. The receiver learns of it through [`Parked::taken`] once that transaction
    /// committed, and must [`Parked::cancel`] the receive before it receives in any other way
    /// (or parks again): the receive may have been taken meanwhile. One receive is parked per
    /// queue; parking another takes the place of the first, which is then never taken.
    pub fn park(&self, request: LaneRequest) -> Parked {
        let receive = self.lane_receive(request);
        let (job, answer) =
            job(move |group| receive(group.queues()?, now_ms()).map_err(DbError::apply));
        let id = self
            .inner
            .next_park
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.name.to_string(), (id, job));
        Parked {
            queue: self.clone(),
            id,
            answer,
            ended: None,
        }
    }

    /// The lane receive `request` as an operation on the queues' tables, starting after the
    /// tenant this handle served last.
    fn lane_receive(
        &self,
        request: LaneRequest,
    ) -> impl FnOnce(&mut Tables<'_>, u64) -> Result<LanePoll, EngineError> + Send + 'static {
        let (name, settings) = (Arc::clone(&self.name), Arc::clone(&self.settings));
        let after = self
            .last_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        move |t, now| t.receive_lanes(&name, &settings, &request, after.as_deref(), now)
    }

    /// What a lane receive found, as its caller sees it (and the handle's round-robin place).
    fn lane_batch(&self, polled: LanePoll) -> LaneBatch {
        if polled.dead_lettered
            && let Some(dlq) = &self.settings.dead_letter
        {
            self.inner.wake(dlq);
        }
        if let Some(tenant) = polled.last_tenant {
            *self
                .last_tenant
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(tenant);
        }
        LaneBatch {
            messages: polled.messages,
            wake_at: polled
                .wake_at
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// Puts a received message off until `until`: back in its place in its lane, its receive
    /// not counted (it was not handled), and the lane held until then — so the lane's later
    /// messages do not overtake it. A message without a lane is just hidden until `until`.
    pub async fn defer(&self, receipt: &Receipt, until: SystemTime) -> Result<(), QueueError> {
        let (seq, count) = parse_receipt(receipt)?;
        let name = Arc::clone(&self.name);
        let until_ms = until
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.inner
            .submit(move |t, _| t.defer(&name, seq, count, until_ms))
            .await
    }

    /// Sends `messages` and receives them at once, in one operation: each is stored in flight
    /// (received once, hidden for the visibility timeout) and handed back with its receipt. For
    /// a sender that handles its own messages right away (`herald serve`'s API ingests the
    /// events it accepts): a delete settles each like any received message, and one the sender
    /// does not settle — it failed, or the process died — becomes visible to the queue's
    /// receivers after the visibility timeout, like any message whose consumer failed. So the
    /// messages are as safe as after [`Queue::send_batch`], without a receive of their own.
    /// Delays are refused: a message handed back is not delayed.
    pub async fn send_received(
        &self,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<Received>, QueueError> {
        check_sendable(&messages)?;
        if let Some(m) = messages.iter().find(|m| !m.delay.is_zero()) {
            return Err(QueueError::Rejected(format!(
                "a message received as it is sent cannot be delayed ({:?})",
                m.delay
            )));
        }
        let (name, settings) = (Arc::clone(&self.name), Arc::clone(&self.settings));
        self.inner
            .submit(move |t, now| Ok(Ok(t.send_received(&name, &settings, messages, now)?)))
            .await
    }

    /// One receive attempt, without waiting.
    async fn receive_now(&self, max: usize) -> Result<Polled, QueueError> {
        let (name, settings) = (Arc::clone(&self.name), Arc::clone(&self.settings));
        let polled = self
            .inner
            .submit(move |t, now| Ok(Ok(t.receive(&name, &settings, max, now)?)))
            .await?;
        if polled.dead_lettered
            && let Some(dlq) = &self.settings.dead_letter
        {
            self.inner.wake(dlq);
        }
        Ok(polled)
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        check_sendable(&messages)?;
        let name = Arc::clone(&self.name);
        // Taken now (by a send with something due at once), run right after the send in the same
        // operation (see `park`). Dropped unrun if the operation never runs: its receiver then
        // hears that nothing was received.
        let parked = if messages.iter().any(|m| m.delay.is_zero()) {
            self.inner.unpark(&self.name, None)
        } else {
            None
        };
        self.inner
            .db
            .submit(move |group| {
                let now = now_ms();
                group
                    .queues()?
                    .send(&name, messages, now)
                    .map_err(DbError::apply)?;
                if let Some(receive) = parked {
                    group.apply(receive)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| QueueError::engine(EngineError::Group(e)))?;
        self.notify.notify_waiters();
        Ok(())
    }

    fn max_batch(&self) -> usize {
        BATCH_LIMIT
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(QueueError::Rejected(format!(
                "cannot receive {max} messages at once; 1 to {MAX_BATCH}"
            )));
        }
        let deadline = Instant::now() + wait;
        loop {
            // Registered before polling, so a send that lands between the poll and the sleep
            // still wakes this receiver.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let polled = self.receive_now(max).await?;
            let now = Instant::now();
            if !polled.messages.is_empty() || now >= deadline {
                return Ok(polled.messages);
            }
            let wake = match polled.next_visible_at {
                Some(at) => deadline.min(now + until(at)),
                None => deadline,
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        let (seq, count) = parse_receipt(receipt)?;
        let name = Arc::clone(&self.name);
        self.inner
            .submit(move |t, _| t.delete(&name, seq, count))
            .await
    }

    async fn delete_batch(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        if receipts.len() > BATCH_LIMIT {
            return Err(QueueError::Rejected(format!(
                "{} receipts in one batch; at most {BATCH_LIMIT}",
                receipts.len()
            )));
        }
        let parsed: Vec<_> = receipts.iter().map(parse_receipt).collect();
        let unparsable = parsed.iter().any(Result::is_err);
        let owned: Vec<(u64, u32)> = parsed.into_iter().flatten().collect();
        if !owned.is_empty() {
            let name = Arc::clone(&self.name);
            self.inner
                .submit(move |t, _| {
                    let mut result = Ok(());
                    for (seq, count) in owned {
                        if let Err(e) = t.delete(&name, seq, count)? {
                            result = Err(e);
                        }
                    }
                    Ok(result)
                })
                .await?;
        }
        if unparsable {
            Err(QueueError::UnknownReceipt)
        } else {
            Ok(())
        }
    }

    async fn change_visibility(
        &self,
        receipt: &Receipt,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        let (seq, count) = parse_receipt(receipt)?;
        let name = Arc::clone(&self.name);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .submit(move |t, now| {
                t.change_visibility(&name, seq, count, now.saturating_add(timeout_ms))
            })
            .await?;
        self.notify.notify_waiters();
        Ok(())
    }
}

/// Refuses a batch this engine does not take in one send: too many messages, or a delay beyond
/// SQS's maximum.
fn check_sendable(messages: &[Outgoing]) -> Result<(), QueueError> {
    if messages.len() > BATCH_LIMIT {
        return Err(QueueError::Rejected(format!(
            "{} messages in one batch; at most {BATCH_LIMIT}",
            messages.len()
        )));
    }
    if let Some(m) = messages.iter().find(|m| m.delay > MAX_DELAY) {
        return Err(QueueError::Rejected(format!(
            "delay of {:?} exceeds the {MAX_DELAY:?} maximum",
            m.delay
        )));
    }
    Ok(())
}

/// What [`EmbeddedQueue::receive_lanes`] may take.
#[derive(Debug, Clone, Default)]
pub struct LaneRequest {
    /// Messages in all, at most.
    pub max: usize,
    /// Messages per lane, at most, unless `allowance` says otherwise.
    pub per_lane: usize,
    /// Lanes with another bound (0: skip the lane) — e.g. lanes with messages in flight.
    pub allowance: HashMap<String, usize>,
    /// Lanes served, at most (`usize::MAX`: no bound) — e.g. a caller's free worker slots.
    pub max_lanes: usize,
}

/// A lane receive parked in its queue ([`EmbeddedQueue::park`]).
#[derive(Debug)]
pub struct Parked {
    queue: EmbeddedQueue,
    id: u64,
    answer: oneshot::Receiver<Result<LanePoll, GroupFailure>>,
    /// How it ended, once [`Self::taken`] saw it (`None` inside: never run).
    ended: Option<Option<Result<LanePoll, GroupFailure>>>,
}

impl Parked {
    /// Waits until a send ran the receive and its transaction ended (or the receive was dropped
    /// unrun). Cancel-safe: what it saw is kept for [`Self::cancel`].
    pub async fn taken(&mut self) {
        if self.ended.is_none() {
            self.ended = Some((&mut self.answer).await.ok());
        }
    }

    /// Takes the receive back: `None` if no send ran it (nothing was received); otherwise what
    /// it received, once its transaction ended — messages the caller now holds like any it
    /// received.
    pub async fn cancel(mut self) -> Option<Result<LaneBatch, QueueError>> {
        if self.ended.is_none()
            && self
                .queue
                .inner
                .unpark(&self.queue.name, Some(self.id))
                .is_some()
        {
            return None;
        }
        self.taken().await;
        let ended = self.ended.take().flatten()?;
        Some(
            ended
                .map(|polled| self.queue.lane_batch(polled))
                .map_err(|e| QueueError::engine(EngineError::Group(e))),
        )
    }
}

/// What one lane receive found.
#[derive(Debug, Default)]
pub struct LaneBatch {
    pub messages: Vec<Received>,
    /// When a message now hidden or held becomes due (wall clock), if any: the caller's next
    /// wake-up besides sends.
    pub wake_at: Option<SystemTime>,
}

#[derive(Debug)]
struct LanePoll {
    messages: Vec<Received>,
    wake_at: Option<u64>,
    dead_lettered: bool,
    last_tenant: Option<String>,
}

/// Entries looked at per lane and receive, at least (at most as many as the receive may take
/// from the lane, when that is more): a lane whose first entries are all hidden (in flight or
/// waiting to be retried) is passed over until the next receive.
const LANE_SCAN: usize = 64;

/// The tenant of a lane: the part before the first '/'.
fn tenant_of(group: &str) -> &str {
    group.split_once('/').map_or(group, |(tenant, _)| tenant)
}

/// What one receive attempt found.
#[derive(Debug)]
struct Polled {
    messages: Vec<Received>,
    /// When the queue's next message becomes visible (ms since the epoch), if it has any.
    next_visible_at: Option<u64>,
    /// Whether some messages moved to the dead-letter queue.
    dead_lettered: bool,
}

/// Time from now until the wall-clock instant `at_ms`, plus a millisecond so the message is due
/// when the receiver wakes.
fn until(at_ms: u64) -> Duration {
    Duration::from_millis(at_ms.saturating_sub(now_ms()).saturating_add(1))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn receipt(seq: u64, receive_count: u32) -> Receipt {
    Receipt(format!("{seq}.{receive_count}"))
}

fn parse_receipt(receipt: &Receipt) -> Result<(u64, u32), QueueError> {
    let (seq, count) = receipt
        .0
        .split_once('.')
        .ok_or(QueueError::UnknownReceipt)?;
    Ok((
        seq.parse().map_err(|_| QueueError::UnknownReceipt)?,
        count.parse().map_err(|_| QueueError::UnknownReceipt)?,
    ))
}

/// Failures of the database itself (as opposed to a caller's mistake).
#[derive(Debug, thiserror::Error)]
enum EngineError {
    #[error(transparent)]
    Redb(#[from] redb::Error),
    #[error("corrupt queue record: {0}")]
    Corrupt(&'static str),
    #[error("queue transaction failed: {0}")]
    Group(#[source] GroupFailure),
}

crate::embedded::from_redb!(
    EngineError:
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A stored message. Its lane, if it has one, is kept in the `groups` table.
#[derive(Debug)]
struct Record {
    visible_at: u64,
    receive_count: u32,
    message_id: Uuid,
    body: String,
    group: Option<String>,
}

impl Record {
    const HEADER: usize = 8 + 4 + 16;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::HEADER + self.body.len());
        out.extend_from_slice(&self.visible_at.to_le_bytes());
        out.extend_from_slice(&self.receive_count.to_le_bytes());
        out.extend_from_slice(self.message_id.as_bytes());
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    fn decode(raw: &[u8]) -> Result<Self, EngineError> {
        if raw.len() < Self::HEADER {
            return Err(EngineError::Corrupt("record shorter than its header"));
        }
        let (header, body) = raw.split_at(Self::HEADER);
        let mut visible_at = [0; 8];
        let mut receive_count = [0; 4];
        let mut message_id = [0; 16];
        visible_at.copy_from_slice(&header[0..8]);
        receive_count.copy_from_slice(&header[8..12]);
        message_id.copy_from_slice(&header[12..]);
        let body =
            std::str::from_utf8(body).map_err(|_| EngineError::Corrupt("body is not UTF-8"))?;
        Ok(Self {
            visible_at: u64::from_le_bytes(visible_at),
            receive_count: u32::from_le_bytes(receive_count),
            message_id: Uuid::from_bytes(message_id),
            body: body.to_owned(),
            group: None,
        })
    }
}

/// Every message (with its lane) and every hold of the queue database at `path`, messages in
/// `(queue, seq)` order.
#[allow(clippy::type_complexity)]
fn read_all(
    path: &Path,
) -> Result<(Vec<(String, Record)>, Vec<((String, String), u64)>), EngineError> {
    let db = Database::open(path).map_err(redb::Error::from)?;
    let txn = db.begin_read()?;
    let mut records = Vec::new();
    let mut holds = Vec::new();
    let messages = match txn.open_table(MESSAGES) {
        Ok(table) => table,
        // Never written: nothing to move.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((records, holds)),
        Err(e) => return Err(e.into()),
    };
    let groups = txn.open_table(GROUPS)?;
    for entry in messages.iter()? {
        let (key, raw) = entry?;
        let (queue, seq) = key.value();
        let mut record = Record::decode(raw.value())?;
        record.group = groups.get((queue, seq))?.map(|g| g.value().to_owned());
        records.push((queue.to_owned(), record));
    }
    for entry in txn.open_table(HOLDS)?.iter()? {
        let (key, until) = entry?;
        let (queue, lane) = key.value();
        holds.push(((queue.to_owned(), lane.to_owned()), until.value()));
    }
    Ok((records, holds))
}

fn create_tables(db: &Database) -> Result<(), EngineError> {
    let txn = db.begin_write()?;
    txn.open_table(MESSAGES)?;
    txn.open_table(VISIBILITY)?;
    txn.open_table(META)?;
    txn.open_table(GROUPS)?;
    txn.open_table(LANES)?;
    txn.open_table(HOLDS)?;
    txn.open_table(TENANT_COUNTS)?;
    txn.commit()?;
    Ok(())
}

/// A receive waiting in its queue for a send to run it, and its id (so that only its own
/// receiver takes it back).
type ParkedJob = (u64, Box<dyn Job>);

/// Shared state behind [`EmbeddedQueues`] and its queue handles.
struct Inner {
    db: EmbeddedDb,
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Each queue's parked receive ([`EmbeddedQueue::park`]).
    parked: Mutex<HashMap<String, ParkedJob>>,
    next_park: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueues").finish_non_exhaustive()
    }
}

impl Inner {
    fn notifier(&self, name: &str) -> Arc<Notify> {
        let mut map = self
            .notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(name.to_owned()).or_default())
    }

    /// Takes the receive parked on `name`, if any (`id`: only that one).
    fn unpark(&self, name: &str, id: Option<u64>) -> Option<Box<dyn Job>> {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        match parked.get(name) {
            Some((parked_id, _)) if id.is_none_or(|id| id == *parked_id) => {
                parked.remove(name).map(|(_, job)| job)
            }
            _ => None,
        }
    }

    fn wake(&self, name: &str) {
        self.notifier(name).notify_waiters();
    }

    /// Runs `f` in the next group transaction of the database's writer and returns its result
    /// once the group committed.
    async fn submit<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, u64) -> Result<Result<T, QueueError>, EngineError>
            + Send
            + 'static,
    {
        self.db
            .submit(move |group| {
                let now = now_ms();
                f(group.queues()?, now).map_err(DbError::apply)
            })
            .await
            .map_err(|e| QueueError::engine(EngineError::Group(e)))?
    }
}

/// The queues' tables in one group transaction ([`crate::embedded::Group::queues`]).
pub(crate) struct Tables<'txn> {
    messages: Table<'txn, (&'static str, u64), &'static [u8]>,
    visibility: Table<'txn, (&'static str, u64, u64), ()>,
    meta: Table<'txn, &'static str, u64>,
    groups: Table<'txn, (&'static str, u64), &'static str>,
    lanes: Table<'txn, (&'static str, &'static str, u64), u64>,
    holds: Table<'txn, (&'static str, &'static str), u64>,
    tenant_counts: Table<'txn, (&'static str, &'static str), u64>,
    /// The next sequence number, kept here for the group and stored once by [`Self::finish`].
    next_seq: u64,
    /// How the group moved each queue's per-tenant counts (queue → tenant → delta), stored once
    /// by [`Self::finish`]: nothing inside a group reads them.
    tenant_deltas: HashMap<String, HashMap<String, i64>>,
    seq_taken: bool,
    /// Whether anything was written (an untouched group is aborted, not committed).
    dirty: bool,
}

impl<'txn> Tables<'txn> {
    pub(crate) fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, DbError> {
        let meta = txn.open_table(META)?;
        let next_seq = meta.get(NEXT_SEQ)?.map_or(0, |v| v.value());
        Ok(Self {
            messages: txn.open_table(MESSAGES)?,
            visibility: txn.open_table(VISIBILITY)?,
            meta,
            groups: txn.open_table(GROUPS)?,
            lanes: txn.open_table(LANES)?,
            holds: txn.open_table(HOLDS)?,
            tenant_counts: txn.open_table(TENANT_COUNTS)?,
            next_seq,
            tenant_deltas: HashMap::new(),
            seq_taken: false,
            dirty: false,
        })
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seq_taken = true;
        seq
    }

    /// Stores what the group kept in memory; whether anything was written.
    pub(crate) fn finish(mut self) -> Result<bool, DbError> {
        self.store_tenant_counts().map_err(DbError::apply)?;
        if self.seq_taken {
            self.meta.insert(NEXT_SEQ, self.next_seq)?;
        }
        Ok(self.dirty)
    }

    /// Stores a message that is already in `queue` (a new visibility, a new receive count).
    fn put(&mut self, queue: &str, seq: u64, record: &Record) -> Result<(), EngineError> {
        self.messages
            .insert((queue, seq), record.encode().as_slice())?;
        self.visibility
            .insert((queue, record.visible_at, seq), ())?;
        if let Some(group) = &record.group {
            self.lanes
                .insert((queue, group.as_str(), seq), record.visible_at)?;
        }
        self.dirty = true;
        Ok(())
    }

    /// Adds a message to `queue` under a new sequence number, which it returns.
    fn add(&mut self, queue: &str, record: &Record) -> Result<u64, EngineError> {
        let seq = self.next_seq();
        if let Some(group) = &record.group {
            self.groups.insert((queue, seq), group.as_str())?;
            self.count(queue, group, 1);
        }
        self.put(queue, seq, record)?;
        Ok(seq)
    }

    fn get(&self, queue: &str, seq: u64) -> Result<Option<Record>, EngineError> {
        let Some(raw) = self.messages.get((queue, seq))? else {
            return Ok(None);
        };
        let mut record = Record::decode(raw.value())?;
        record.group = self.groups.get((queue, seq))?.map(|g| g.value().to_owned());
        Ok(Some(record))
    }

    /// Removes a message and its index entries.
    fn take(&mut self, queue: &str, seq: u64, record: &Record) -> Result<(), EngineError> {
        self.messages.remove((queue, seq))?;
        self.visibility.remove((queue, record.visible_at, seq))?;
        if let Some(group) = &record.group {
            self.groups.remove((queue, seq))?;
            self.lanes.remove((queue, group.as_str(), seq))?;
            self.count(queue, group, -1);
        }
        self.dirty = true;
        Ok(())
    }

    /// Moves the per-tenant count of `queue` by `delta`.
    fn count(&mut self, queue: &str, group: &str, delta: i64) {
        let tenant = tenant_of(group);
        if let Some(tenants) = self.tenant_deltas.get_mut(queue) {
            if let Some(pending) = tenants.get_mut(tenant) {
                *pending += delta;
            } else {
                tenants.insert(tenant.to_owned(), delta);
            }
        } else {
            self.tenant_deltas.insert(
                queue.to_owned(),
                HashMap::from([(tenant.to_owned(), delta)]),
            );
        }
    }

    /// Applies the per-tenant counts the group moved: one read and one write per tenant and
    /// queue for the whole group, instead of per message.
    fn store_tenant_counts(&mut self) -> Result<(), EngineError> {
        for (queue, tenants) in std::mem::take(&mut self.tenant_deltas) {
            for (tenant, delta) in tenants {
                if delta == 0 {
                    continue;
                }
                let key = (tenant.as_str(), queue.as_str());
                let current = self.tenant_counts.get(key)?.map_or(0, |v| v.value());
                let next = current.saturating_add_signed(delta);
                if next == 0 {
                    self.tenant_counts.remove(key)?;
                } else {
                    self.tenant_counts.insert(key, next)?;
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, queue: &str, messages: Vec<Outgoing>, now: u64) -> Result<(), EngineError> {
        for m in messages {
            let delay = u64::try_from(m.delay.as_millis()).unwrap_or(u64::MAX);
            let record = Record {
                visible_at: now.saturating_add(delay),
                receive_count: 0,
                message_id: Uuid::new_v4(),
                body: m.body,
                group: m.group,
            };
            self.add(queue, &record)?;
        }
        Ok(())
    }

    /// Stores `messages` in `queue` as received once, hidden for the visibility timeout, and
    /// hands them out (see [`EmbeddedQueue::send_received`]).
    fn send_received(
        &mut self,
        queue: &str,
        settings: &QueueSettings,
        messages: Vec<Outgoing>,
        now: u64,
    ) -> Result<Vec<Received>, EngineError> {
        let visibility = u64::try_from(settings.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut received = Vec::with_capacity(messages.len());
        for m in messages {
            let record = Record {
                visible_at: now.saturating_add(visibility),
                receive_count: 1,
                message_id: Uuid::new_v4(),
                body: m.body,
                group: m.group,
            };
            let seq = self.add(queue, &record)?;
            received.push(Received {
                message_id: record.message_id.to_string(),
                receipt: receipt(seq, record.receive_count),
                body: record.body,
                receive_count: record.receive_count,
                group: record.group,
            });
        }
        Ok(received)
    }

    /// Up to `max` index entries of `queue` due at `now`, earliest first.
    fn due(&self, queue: &str, now: u64, max: usize) -> Result<Vec<u64>, EngineError> {
        let mut seqs = Vec::with_capacity(max);
        for entry in self
            .visibility
            .range((queue, 0, 0)..=(queue, now, u64::MAX))?
            .take(max)
        {
            seqs.push(entry?.0.value().2);
        }
        Ok(seqs)
    }

    fn receive(
        &mut self,
        queue: &str,
        settings: &QueueSettings,
        max: usize,
        now: u64,
    ) -> Result<Polled, EngineError> {
        let visibility = u64::try_from(settings.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut messages = Vec::new();
        let mut taken = Vec::new();
        let mut dead_lettered = false;
        // Dead-lettered messages free room for more; received ones may already be due again (a
        // zero visibility timeout), hence `taken`.
        loop {
            let wanted = max - messages.len();
            let due = self.due(queue, now, wanted + taken.len())?;
            let fresh: Vec<u64> = due
                .into_iter()
                .filter(|seq| !taken.contains(seq))
                .take(wanted)
                .collect();
            if fresh.is_empty() {
                break;
            }
            let mut moved = false;
            for seq in fresh {
                let Some(mut record) = self.get(queue, seq)? else {
                    return Err(EngineError::Corrupt("index entry without a message"));
                };
                if let Some(dlq) = &settings.dead_letter
                    && record.receive_count >= settings.max_receives
                {
                    self.dead_letter(queue, dlq, seq, record, now)?;
                    dead_lettered = true;
                    moved = true;
                    continue;
                }
                messages.push(self.hand_out(queue, seq, &mut record, visibility, now)?);
                taken.push(seq);
            }
            if messages.len() >= max || !moved {
                break;
            }
        }
        let next_visible_at = match self
            .visibility
            .range((queue, 0, 0)..=(queue, u64::MAX, u64::MAX))?
            .next()
        {
            Some(entry) => Some(entry?.0.value().1),
            None => None,
        };
        Ok(Polled {
            messages,
            next_visible_at,
            dead_lettered,
        })
    }

    /// Moves a message that used up its receives to the dead-letter queue, whole (lane kept).
    fn dead_letter(
        &mut self,
        queue: &str,
        dlq: &str,
        seq: u64,
        mut record: Record,
        now: u64,
    ) -> Result<(), EngineError> {
        self.take(queue, seq, &record)?;
        record.visible_at = now;
        self.add(dlq, &record)?;
        Ok(())
    }

    /// Receives a message: counts the receive and hides it for the visibility timeout.
    fn hand_out(
        &mut self,
        queue: &str,
        seq: u64,
        record: &mut Record,
        visibility: u64,
        now: u64,
    ) -> Result<Received, EngineError> {
        self.visibility.remove((queue, record.visible_at, seq))?;
        record.receive_count = record.receive_count.saturating_add(1);
        record.visible_at = now.saturating_add(visibility);
        self.put(queue, seq, record)?;
        Ok(Received {
            message_id: record.message_id.to_string(),
            receipt: receipt(seq, record.receive_count),
            body: record.body.clone(),
            receive_count: record.receive_count,
            group: record.group.clone(),
        })
    }

    /// The message `seq` if `count` is its latest receive; [`QueueError::UnknownReceipt`] if a
    /// later receive superseded the receipt.
    fn owned(
        &self,
        queue: &str,
        seq: u64,
        count: u32,
    ) -> Result<Result<Option<Record>, QueueError>, EngineError> {
        Ok(match self.get(queue, seq)? {
            Some(record) if record.receive_count == count && count > 0 => Ok(Some(record)),
            Some(_) => Err(QueueError::UnknownReceipt),
            None => Ok(None),
        })
    }

    fn delete(
        &mut self,
        queue: &str,
        seq: u64,
        count: u32,
    ) -> Result<Result<(), QueueError>, EngineError> {
        Ok(match self.owned(queue, seq, count)? {
            Ok(Some(record)) => {
                self.take(queue, seq, &record)?;
                Ok(())
            }
            // Already deleted: deleting is idempotent, as in SQS.
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        })
    }

    fn change_visibility(
        &mut self,
        queue: &str,
        seq: u64,
        count: u32,
        visible_at: u64,
    ) -> Result<Result<(), QueueError>, EngineError> {
        Ok(match self.owned(queue, seq, count)? {
            Ok(Some(mut record)) => {
                self.visibility.remove((queue, record.visible_at, seq))?;
                record.visible_at = visible_at;
                self.put(queue, seq, &record)?;
                Ok(())
            }
            Ok(None) | Err(_) => Err(QueueError::UnknownReceipt),
        })
    }

    /// The distinct lanes of `queue` that hold messages, in key order (so a tenant's lanes are
    /// next to each other). One seek per lane.
    fn lanes_of(&self, queue: &str) -> Result<Vec<String>, EngineError> {
        let mut lanes: Vec<String> = Vec::new();
        loop {
            let start = match lanes.last() {
                Some(last) => Bound::Excluded((queue, last.as_str(), u64::MAX)),
                None => Bound::Included((queue, "", 0)),
            };
            let Some(entry) = self
                .lanes
                .range::<(&str, &str, u64)>((start, Bound::Unbounded))?
                .next()
            else {
                break;
            };
            let entry = entry?;
            let (q, lane, _) = entry.0.value();
            if q != queue {
                break;
            }
            lanes.push(lane.to_owned());
        }
        Ok(lanes)
    }

    /// A fair receive over lanes: see [`EmbeddedQueue::receive_lanes`].
    fn receive_lanes(
        &mut self,
        queue: &str,
        settings: &QueueSettings,
        request: &LaneRequest,
        after_tenant: Option<&str>,
        now: u64,
    ) -> Result<LanePoll, EngineError> {
        let visibility = u64::try_from(settings.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut wake_at: Option<u64> = None;
        let mut wake = |at: u64| wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
        // Each tenant's lanes, each lane's due messages (at most its allowance), in lane order.
        let mut tenants: Vec<(String, Vec<VecDeque<u64>>)> = Vec::new();
        for lane in self.lanes_of(queue)? {
            let allowance = request
                .allowance
                .get(&lane)
                .copied()
                .unwrap_or(request.per_lane);
            if allowance == 0 {
                continue;
            }
            let held = self.holds.get((queue, lane.as_str()))?.map(|v| v.value());
            if let Some(until) = held {
                if until > now {
                    wake(until);
                    continue;
                }
                self.holds.remove((queue, lane.as_str()))?;
                self.dirty = true;
            }
            let mut due = VecDeque::new();
            for entry in self
                .lanes
                .range((queue, lane.as_str(), 0)..=(queue, lane.as_str(), u64::MAX))?
                .take(LANE_SCAN.max(allowance))
            {
                let entry = entry?;
                let (_, _, seq) = entry.0.value();
                let visible_at = entry.1.value();
                if visible_at <= now {
                    due.push_back(seq);
                    if due.len() >= allowance {
                        break;
                    }
                } else {
                    wake(visible_at);
                }
            }
            if due.is_empty() {
                continue;
            }
            let tenant = tenant_of(&lane);
            match tenants.last_mut() {
                Some((t, lanes)) if t == tenant => lanes.push(due),
                _ => tenants.push((tenant.to_owned(), vec![due])),
            }
        }
        // Round robin: start with the tenant after the one served last, one message per tenant
        // per round, each tenant's lanes in turn.
        if let Some(after) = after_tenant {
            let first = tenants.partition_point(|(t, _)| t.as_str() <= after);
            tenants.rotate_left(first);
        }
        let mut messages = Vec::new();
        let mut dead_lettered = false;
        let mut last_tenant = None;
        let mut next_lane = vec![0usize; tenants.len()];
        let mut started: Vec<Vec<bool>> = tenants
            .iter()
            .map(|(_, lanes)| vec![false; lanes.len()])
            .collect();
        let mut lanes_started = 0usize;
        while messages.len() < request.max {
            let mut progressed = false;
            for (i, (tenant, lanes)) in tenants.iter_mut().enumerate() {
                if messages.len() >= request.max {
                    break;
                }
                let n = lanes.len();
                for step in 0..n {
                    let l = (next_lane[i] + step) % n;
                    if !started[i][l] && lanes_started >= request.max_lanes {
                        continue;
                    }
                    let Some(seq) = lanes[l].pop_front() else {
                        continue;
                    };
                    if !started[i][l] {
                        started[i][l] = true;
                        lanes_started += 1;
                    }
                    next_lane[i] = (l + 1) % n;
                    let Some(mut record) = self.get(queue, seq)? else {
                        return Err(EngineError::Corrupt("lane entry without a message"));
                    };
                    progressed = true;
                    if let Some(dlq) = &settings.dead_letter
                        && record.receive_count >= settings.max_receives
                    {
                        self.dead_letter(queue, dlq, seq, record, now)?;
                        dead_lettered = true;
                    } else {
                        messages.push(self.hand_out(queue, seq, &mut record, visibility, now)?);
                        last_tenant = Some(tenant.clone());
                    }
                    break;
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(LanePoll {
            messages,
            wake_at,
            dead_lettered,
            last_tenant,
        })
    }

    /// Puts a received message back in its place without counting the receive, hidden until
    /// `until`, and holds its lane until then.
    fn defer(
        &mut self,
        queue: &str,
        seq: u64,
        count: u32,
        until: u64,
    ) -> Result<Result<(), QueueError>, EngineError> {
        Ok(match self.owned(queue, seq, count)? {
            Ok(Some(mut record)) => {
                self.visibility.remove((queue, record.visible_at, seq))?;
                record.visible_at = until;
                record.receive_count = record.receive_count.saturating_sub(1);
                self.put(queue, seq, &record)?;
                if let Some(group) = &record.group {
                    let held = self
                        .holds
                        .get((queue, group.as_str()))?
                        .map_or(0, |v| v.value());
                    self.holds
                        .insert((queue, group.as_str()), held.max(until))?;
                }
                Ok(())
            }
            Ok(None) | Err(_) => Err(QueueError::UnknownReceipt),
        })
    }

    fn redrive(
        &mut self,
        from: &str,
        to: &str,
        max: usize,
        now: u64,
    ) -> Result<usize, EngineError> {
        let due = self.due(from, now, max)?;
        for &seq in &due {
            let Some(mut record) = self.get(from, seq)? else {
                return Err(EngineError::Corrupt("index entry without a message"));
            };
            self.take(from, seq, &record)?;
            record.visible_at = now;
            record.receive_count = 0;
            self.add(to, &record)?;
        }
        Ok(due.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let record = Record {
            visible_at: 1_700_000_000_123,
            receive_count: 7,
            message_id: Uuid::new_v4(),
            body: "{\"ünïcode\": true}".into(),
            group: None,
        };

        let back = Record::decode(&record.encode()).expect("decode");

        assert_eq!(back.visible_at, record.visible_at);
        assert_eq!(back.receive_count, 7);
        assert_eq!(back.message_id, record.message_id);
        assert_eq!(back.body, record.body);
    }

    #[test]
    fn a_truncated_or_non_utf8_record_is_refused() {
        assert!(matches!(
            Record::decode(&[0; 10]),
            Err(EngineError::Corrupt(_))
        ));
        let mut raw = vec![0; Record::HEADER];
        raw.extend_from_slice(&[0xff, 0xfe]);
        assert!(matches!(Record::decode(&raw), Err(EngineError::Corrupt(_))));
    }

    #[test]
    fn receipts_read_back_and_garbage_is_unknown() {
        assert_eq!(parse_receipt(&receipt(42, 3)).expect("parse"), (42, 3));
        for bad in ["", "42", "a.b", "1.2.3", "-1.2"] {
            let result = parse_receipt(&Receipt(bad.into()));
            assert!(matches!(result, Err(QueueError::UnknownReceipt)), "{bad:?}");
        }
    }
}
