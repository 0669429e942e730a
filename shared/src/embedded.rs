//! The embedded database of `herald serve`: one redb file holding the store's tables
//! ([`crate::store::embedded`]) and the queues' ([`crate::queue::embedded`]), written by one
//! writer thread with group commit.
//!
//! # One writer, one commit for everything waiting
//! Every write — a store `put`/`add`/`transact`, a queue send, receive, delete, defer — is an
//! operation handed to the writer thread. The writer takes the first waiting operation, drains
//! every other one already queued (up to [`MAX_OPS_PER_COMMIT`]), applies them in arrival order
//! in one write transaction and commits it once (`Durability::Immediate`: fsync) before any
//! caller hears back. So nothing is acknowledged before it is on disk, and the store writes and
//! queue operations of every pipeline worker that are waiting at the same moment share one
//! fsync — a stage's store writes, its sends to the next stage and its deletes are committed
//! together whenever they meet in the writer, instead of each engine paying its own commit.
//!
//! Each operation sees the state the operations before it left (as if they ran one by one, in
//! order). An operation answers its caller alone when it is refused *before it writes* (a failed
//! condition, an unknown receipt, a counter overflow): the others in the group are unaffected.
//! A database failure while writing dooms the group: the transaction is aborted and every caller
//! in it gets the error (none of them is acknowledged; each retries as after any failure).
//! A group that wrote nothing (polls of empty queues, refused writes) is aborted instead of
//! committed, so idle workers cost no fsync.
//!
//! Because the writer applies operations in the order they were handed to it and groups commit
//! in that order, an operation that is committed implies that every operation handed over before
//! it is committed too.
//!
//! # Sessions: a stage's whole batch in one commit
//! A caller that makes many writes one after the other — `herald serve` ingesting and matching
//! a request's events: the events' records, their deliveries, the dispatch messages, the events
//! marked matched, the counters — would wait for one commit per step. Run as a **session**
//! ([`EmbeddedDb::session`]), its operations are answered as soon as they are *applied*, and the
//! group they are in stays open for more until the session ends (for at most
//! [`SESSION_HOLD`]; sessions that begin in a group after another ended in it are not waited
//! for, so overlapping sessions cannot keep one group open); the session's end is answered once
//! the group holding it is committed. So
//! the whole batch costs one commit (shared with everything else waiting), and the caller
//! acknowledges nothing before it — a session must not tell anyone outside of it what it did
//! before [`EmbeddedDb::session`] returned. Reads in a session go through the writer too, so the
//! session sees its own writes.
//!
//! A session changes when operations are committed, never in what order: a crash still leaves a
//! prefix of them, and a group that stops waiting (the session outlasted [`SESSION_HOLD`], or
//! waits on something that waits for a commit) commits what it has; the session goes on in the
//! next group.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redb::backends::InMemoryBackend;
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

/// The most operations applied in one write transaction.
pub const MAX_OPS_PER_COMMIT: usize = 512;

/// How long a group waits, at most, for the sessions open in it to end before it commits what
/// it has (a session longer than that goes on in the next group).
pub const SESSION_HOLD: Duration = Duration::from_millis(20);

tokio::task_local! {
    /// The database whose session the current task runs in ([`EmbeddedDb::session`]).
    static SESSION: usize;
}

/// Page cache of the database. The hot set is small — queue backlogs, rules and channels,
/// recent deliveries — and redb's default (1 GiB) let `herald serve` grow with the history it
/// had read or written (RSS 493 MiB after 130k deliveries, docs/benchmarks.md); pages beyond
/// this are read from the OS page cache again when needed.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The database and its writer. Cheap to clone; the file closes (and the writer stops) when the
/// last clone, store and queue handle over it are dropped.
#[derive(Debug, Clone)]
pub struct EmbeddedDb {
    inner: Arc<Inner>,
}

/// A failure of the database itself, as opposed to a caller's mistake. It fails the whole group
/// of operations it happened in.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Redb(#[from] redb::Error),
    /// An operation failed halfway (storage, corrupt data, encoding).
    #[error("{0}")]
    Apply(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the embedded database's writer has stopped")]
    WriterStopped,
}

impl DbError {
    pub(crate) fn apply(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Apply(Box::new(e))
    }
}

/// `From` each of redb's error types for an error enum with a `Redb(redb::Error)` variant, so
/// `?` takes them straight in (redb's own types convert only into `redb::Error`).
macro_rules! from_redb {
    ($target:ty: $($t:ty),*) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> Self {
                Self::Redb(e.into())
            }
        }
    )*};
}
pub(crate) use from_redb;

from_redb!(
    DbError:
    redb::DatabaseError,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// How a group of operations ended, as a caller hears it: the group's failure, shared.
pub type GroupFailure = Arc<DbError>;

impl EmbeddedDb {
    /// Opens (or creates) the database file at `path`. Only one process may have it open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        Self::start(db)
    }

    /// A database that lives in memory only (tests, throwaway servers).
    pub fn in_memory() -> Result<Self, DbError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new())?;
        Self::start(db)
    }

    fn start(db: Database) -> Result<Self, DbError> {
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("herald-db-writer".into())
            .spawn(move || run_writer(&writer_db, &rx))
            .map_err(DbError::apply)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                tx: Some(tx),
                writer: Some(writer),
            }),
        })
    }

    /// The database, for reads (read transactions never wait for the writer).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Runs `f` in the next group transaction and returns its result once the group committed
    /// (or was aborted because nothing in it wrote). `f` answers `Err` only for a database
    /// failure, which fails the whole group; a refusal meant for its caller alone goes in `T`.
    pub(crate) async fn submit<T, F>(&self, f: F) -> Result<T, GroupFailure>
    where
        T: Send + 'static,
        F: FnOnce(&mut Group<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let (job, answer) = job(f);
        self.submit_job(job)?;
        answer.await.map_err(|_| Arc::new(DbError::WriterStopped))?
    }

    pub(crate) fn submit_job(&self, mut job: Box<dyn Job>) -> Result<(), GroupFailure> {
        if self.in_session() {
            job.answer_when_applied();
        }
        self.send(job)
    }

    fn send(&self, job: Box<dyn Job>) -> Result<(), GroupFailure> {
        let tx = self
            .inner
            .tx
            .as_ref()
            .ok_or_else(|| Arc::new(DbError::WriterStopped))?;
        tx.send(job).map_err(|_| Arc::new(DbError::WriterStopped))
    }

    /// Runs `work` as a session of this database (see the module's doc): every operation it
    /// makes on the database — store and queues, reads included — is answered once applied,
    /// and they are committed together (with whatever else is waiting) when it ends. Returns
    /// `work`'s output once that commit is done, or the failure of a group that held part of it
    /// (what went into earlier groups is committed: a prefix, as after a crash).
    ///
    /// Only operations made from `work`'s own task are in the session: a task it spawns is not,
    /// and `work` must not wait for such a task's writes (they would wait for the session's
    /// group, which gives up waiting only after [`SESSION_HOLD`]).
    pub async fn session<F: Future>(&self, work: F) -> Result<F::Output, GroupFailure> {
        if self.in_session() {
            // Already in one: the outer session commits it.
            return Ok(work.await);
        }
        static NEXT_SESSION: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let (begin, _) = job(move |group| {
            group.sessions.begin(id);
            Ok(())
        });
        self.send(begin)?;
        let open = OpenSession { db: self, id };
        let output = SESSION.scope(self.id(), work).await;
        std::mem::forget(open);
        let (end, committed) = end_session_job(id);
        self.send(end)?;
        committed
            .await
            .map_err(|_| Arc::new(DbError::WriterStopped))???;
        Ok(output)
    }

    /// Whether the current task runs in a session of this database.
    pub(crate) fn in_session(&self) -> bool {
        SESSION.try_with(|db| *db == self.id()).unwrap_or(false)
    }

    /// This database's identity, as long as it is open.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

/// `work` in the current task's session, if it runs in one: for a task it spawns and waits for
/// (a spawned task is not in the session of the task that spawned it otherwise).
pub fn in_this_session<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let session = SESSION.try_with(|db| *db).ok();
    async move {
        match session {
            Some(db) => SESSION.scope(db, work).await,
            None => work.await,
        }
    }
}

/// What ending a session answers once its group is committed: whether a group failed under it.
type SessionEnd = oneshot::Receiver<Result<Result<(), GroupFailure>, GroupFailure>>;

/// Ends session `id` in the group it lands in; answered once that group is committed.
fn end_session_job(id: u64) -> (Box<dyn Job>, SessionEnd) {
    job(move |group| Ok(group.sessions.end(id)))
}

/// A session begun and not yet ended: ends it if its work is dropped or panics, so the writer
/// stops holding groups open for it.
struct OpenSession<'a> {
    db: &'a EmbeddedDb,
    id: u64,
}

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        let (end, _) = end_session_job(self.id);
        let _ = self.db.send(end);
    }
}

/// Shared state behind [`EmbeddedDb`].
struct Inner {
    db: Arc<Database>,
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedDb").finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel stops the writer; joining it releases the file, so the same path
        // can be reopened as soon as the last handle is gone.
        self.tx = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the embedded database's writer thread panicked");
        }
    }
}

/// One write transaction of the writer, as the operations of a group see it: the store's and
/// the queues' tables, each opened on first use.
pub(crate) struct Group<'txn> {
    txn: &'txn WriteTransaction,
    store: Option<crate::store::embedded::Tables<'txn>>,
    queues: Option<crate::queue::embedded::Tables<'txn>>,
    /// Whether a store operation wrote (the queues' tables keep their own flag).
    store_dirty: bool,
    /// How to answer the operations applied inside others ([`Self::apply`]).
    nested: Vec<Finish>,
    /// The writer's open sessions, as the operations applied so far left them.
    sessions: Sessions,
}

/// The sessions the writer holds groups open for ([`EmbeddedDb::session`]).
///
/// A group waits for the sessions open when it starts and for those that begin in it before
/// one ends in it; a session that begins later goes on in the next group. So sessions that
/// keep overlapping (concurrent requests) cannot keep one group open: each group's wait ends
/// with the sessions it was waiting for.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// Begun and not ended.
    open: HashSet<u64>,
    /// Those the current group waits for.
    awaited: HashSet<u64>,
    /// Whether a session ended in the current group.
    ended_in_group: bool,
    /// Open sessions a group failed under (part of what they were told was applied is lost):
    /// their end answers with the failure.
    doomed: HashMap<u64, GroupFailure>,
}

impl Sessions {
    /// A group starts: it waits for the sessions open now.
    fn new_group(&mut self) {
        self.awaited.clone_from(&self.open);
        self.ended_in_group = false;
    }

    fn begin(&mut self, id: u64) {
        self.open.insert(id);
        if !self.ended_in_group {
            self.awaited.insert(id);
        }
    }

    /// Ends a session: `Err` if a group failed under it.
    fn end(&mut self, id: u64) -> Result<(), GroupFailure> {
        self.open.remove(&id);
        self.awaited.remove(&id);
        self.ended_in_group = true;
        self.doomed.remove(&id).map_or(Ok(()), Err)
    }

    /// A group failed: every open session hears of it when it ends, and no group waits for
    /// them any more (their end may have been in the failed group, never applied).
    fn doom(&mut self, failure: &GroupFailure) {
        for id in self.open.drain() {
            self.doomed.insert(id, Arc::clone(failure));
        }
        self.awaited.clear();
    }

    /// The next operation for a group that took `ops` so far and began at `started`, while it
    /// waits for a session: waits for one until [`SESSION_HOLD`] has passed.
    fn next_held(
        &self,
        rx: &mpsc::Receiver<Box<dyn Job>>,
        ops: usize,
        started: Instant,
    ) -> Option<Box<dyn Job>> {
        if self.awaited.is_empty() || ops >= MAX_OPS_PER_COMMIT {
            return None;
        }
        if let Ok(job) = rx.try_recv() {
            return Some(job);
        }
        let left = SESSION_HOLD.checked_sub(started.elapsed())?;
        rx.recv_timeout(left).ok()
    }
}

impl<'txn> Group<'txn> {
    /// The store's tables, and a note that the group writes (only call it to write, or to read
    /// before a write).
    pub(crate) fn store(&mut self) -> Result<&mut crate::store::embedded::Tables<'txn>, DbError> {
        let tables = match self.store.take() {
            Some(tables) => tables,
            None => crate::store::embedded::Tables::open(self.txn)?,
        };
        Ok(self.store.insert(tables))
    }

    /// Marks the group as holding a store write.
    pub(crate) fn store_wrote(&mut self) {
        self.store_dirty = true;
    }

    /// Applies another caller's operation inside the one being applied (a queue's parked
    /// receive, run by the send that gives it something): it commits with the group, and its
    /// caller hears back like every other caller in it.
    pub(crate) fn apply(&mut self, job: Box<dyn Job>) -> Result<(), DbError> {
        let finish = job.apply(self).map_err(DbError::apply)?;
        self.nested.push(finish);
        Ok(())
    }

    /// The queues' tables.
    pub(crate) fn queues(&mut self) -> Result<&mut crate::queue::embedded::Tables<'txn>, DbError> {
        let tables = match self.queues.take() {
            Some(tables) => tables,
            None => crate::queue::embedded::Tables::open(self.txn)?,
        };
        Ok(self.queues.insert(tables))
    }

    /// Closes the tables; whether anything was written.
    fn finish(self) -> Result<bool, DbError> {
        let mut dirty = self.store_dirty;
        if let Some(queues) = self.queues {
            dirty |= queues.finish()?;
        }
        Ok(dirty)
    }
}

/// Tells one caller how its group ended: `Ok` once committed, or the group's failure.
type Finish = Box<dyn FnOnce(Result<(), GroupFailure>) + Send>;

/// One caller's operation, waiting for the writer.
pub(crate) trait Job: Send {
    /// Applies the operation inside the group transaction. Returns how to answer the caller
    /// once the group ends, or the database failure that dooms the whole group.
    fn apply(self: Box<Self>, group: &mut Group<'_>) -> Result<Finish, GroupFailure>;
    /// Answers the caller with the group's failure, without applying the operation.
    fn fail(self: Box<Self>, error: GroupFailure);
    /// Answers the caller as soon as the operation is applied, not once its group is committed
    /// (an operation of a session: the session's end is what waits for the commit).
    fn answer_when_applied(&mut self) {}
}

/// An operation and where its answer goes.
pub(crate) fn job<T, F>(f: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, GroupFailure>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Group<'_>) -> Result<T, DbError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let op = Op {
        apply: f,
        reply,
        when_applied: false,
    };
    (Box::new(op), answer)
}

struct Op<F, T> {
    apply: F,
    reply: oneshot::Sender<Result<T, GroupFailure>>,
    /// Answered once applied ([`Job::answer_when_applied`]).
    when_applied: bool,
}

impl<F, T> Job for Op<F, T>
where
    T: Send + 'static,
    F: FnOnce(&mut Group<'_>) -> Result<T, DbError> + Send + 'static,
{
    fn apply(self: Box<Self>, group: &mut Group<'_>) -> Result<Finish, GroupFailure> {
        let Op {
            apply,
            reply,
            when_applied,
        } = *self;
        match apply(group) {
            Ok(result) if when_applied => {
                let _ = reply.send(Ok(result));
                Ok(Box::new(|_| {}))
            }
            Ok(result) => Ok(Box::new(move |committed: Result<(), GroupFailure>| {
                // The caller may have given up (dropped its future); nothing to tell then.
                let _ = reply.send(committed.map(|()| result));
            })),
            Err(e) => {
                let e = Arc::new(e);
                let _ = reply.send(Err(Arc::clone(&e)));
                Err(e)
            }
        }
    }

    fn fail(self: Box<Self>, error: GroupFailure) {
        let _ = self.reply.send(Err(error));
    }

    fn answer_when_applied(&mut self) {
        self.when_applied = true;
    }
}

fn run_writer(db: &Database, rx: &mpsc::Receiver<Box<dyn Job>>) {
    let mut tally = WriterTally::default();
    let mut sessions = Sessions::default();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (ops, ended) = run_group(db, jobs, Some(rx), &mut sessions);
        tally.count(ops, ended);
    }
}

/// How often the writer logs what it did.
const WRITER_SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// What the writer did since its last summary, logged every [`WRITER_SUMMARY_EVERY`] while it
/// works: the groups it committed and how many operations shared each commit — what decides the
/// pipeline's cost per delivery (docs/benchmarks.md). A period that committed nothing (an idle
/// server's workers polling empty queues) is not logged.
#[derive(Debug, Default)]
struct WriterTally {
    ops: usize,
    commits: usize,
    /// Groups that wrote nothing (polls of empty queues, refused writes): aborted, no fsync.
    read_only: usize,
    failed: usize,
    since: Option<std::time::Instant>,
}

impl WriterTally {
    fn count(&mut self, ops: usize, ended: GroupEnd) {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        self.ops += ops;
        match ended {
            GroupEnd::Committed => self.commits += 1,
            GroupEnd::ReadOnly => self.read_only += 1,
            GroupEnd::Failed => self.failed += 1,
        }
        if since.elapsed() < WRITER_SUMMARY_EVERY {
            return;
        }
        if self.commits > 0 || self.failed > 0 {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let ops_per_commit = self.ops as f64 / self.commits.max(1) as f64;
            tracing::info!(
                ops = self.ops,
                commits = self.commits,
                read_only = self.read_only,
                failed = self.failed,
                ops_per_commit = format_args!("{ops_per_commit:.1}"),
                seconds = since.elapsed().as_secs(),
                "database writer"
            );
        }
        *self = Self::default();
    }
}

/// How a group transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupEnd {
    Committed,
    /// Nothing in it wrote: aborted, no fsync.
    ReadOnly,
    Failed,
}

/// Applies `jobs` in order in one write transaction — and after them, while a session is open,
/// whatever comes from `more`, until the sessions end, [`SESSION_HOLD`] has passed or the group
/// is full — commits it if anything was written, then answers every caller. Returns how many
/// operations the group took and how it ended.
pub(crate) fn run_group(
    db: &Database,
    jobs: Vec<Box<dyn Job>>,
    more: Option<&mpsc::Receiver<Box<dyn Job>>>,
    sessions: &mut Sessions,
) -> (usize, GroupEnd) {
    let txn = match begin(db) {
        Ok(txn) => txn,
        Err(e) => {
            let ops = jobs.len();
            let e = Arc::new(e);
            sessions.doom(&e);
            fail_all(jobs, &e);
            return (ops, GroupEnd::Failed);
        }
    };
    let started = Instant::now();
    let mut group = Group {
        txn: &txn,
        store: None,
        queues: None,
        store_dirty: false,
        nested: Vec::new(),
        sessions: std::mem::take(sessions),
    };
    group.sessions.new_group();
    let mut finishes = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    let mut ops = 0;
    let mut failure = None;
    loop {
        let job = match jobs.next() {
            Some(job) => job,
            None => match more.and_then(|rx| group.sessions.next_held(rx, ops, started)) {
                Some(job) => job,
                None => break,
            },
        };
        ops += 1;
        match job.apply(&mut group) {
            Ok(finish) => finishes.push(finish),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    finishes.append(&mut group.nested);
    *sessions = std::mem::take(&mut group.sessions);
    let failure = match failure {
        None => match group.finish() {
            Ok(dirty) => Ok(dirty),
            Err(e) => Err(Arc::new(e)),
        },
        Some(e) => {
            drop(group);
            Err(e)
        }
    };
    let wrote = matches!(failure, Ok(true));
    let outcome = match failure {
        Err(e) => {
            // The transaction may hold part of the failed operation: none of the group commits.
            if let Err(abort) = txn.abort() {
                tracing::error!(error = %abort, "aborting a failed database transaction");
            }
            Err(e)
        }
        Ok(false) => txn.abort().map_err(|e| Arc::new(DbError::from(e))),
        Ok(true) => txn.commit().map_err(|e| Arc::new(DbError::from(e))),
    };
    match outcome {
        Ok(()) => {
            finishes.into_iter().for_each(|finish| finish(Ok(())));
            let ended = if wrote {
                GroupEnd::Committed
            } else {
                GroupEnd::ReadOnly
            };
            (ops, ended)
        }
        Err(e) => {
            tracing::error!(error = %e, "database transaction failed");
            // A session open in the group was told its operations were applied: it hears of
            // the failure when it ends.
            sessions.doom(&e);
            finishes
                .into_iter()
                .for_each(|finish| finish(Err(Arc::clone(&e))));
            let rest: Vec<_> = jobs.collect();
            ops += rest.len();
            rest.into_iter().for_each(|job| job.fail(Arc::clone(&e)));
            (ops, GroupEnd::Failed)
        }
    }
}

fn begin(db: &Database) -> Result<WriteTransaction, DbError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    Ok(txn)
}

fn fail_all(jobs: Vec<Box<dyn Job>>, e: &GroupFailure) {
    tracing::error!(error = %e, "cannot start a database transaction");
    jobs.into_iter().for_each(|job| job.fail(Arc::clone(e)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::Embedded;
    use crate::store::{Condition, Index, Item, Key, Query, SortKeyRange, Store, StoreError};

    fn item(sk: &str) -> Item {
        Item::new(Key::new("S", sk), "T", serde_json::json!({"sk": sk}))
    }

    /// Whether `sk` is committed: read outside of any session, as another task reads.
    async fn committed(store: &Embedded, sk: &str) -> bool {
        let store = store.clone();
        let key = Key::new("S", sk);
        tokio::spawn(async move { store.get(&key).await.expect("get").is_some() })
            .await
            .expect("read task")
    }

    #[tokio::test]
    async fn a_session_sees_its_writes_at_once_and_commits_them_when_it_ends() {
        let store = Embedded::in_memory().expect("store");
        let db = store.db().clone();
        let outside = store.clone();
        db.session(async {
            store
                .put(item("a"), Condition::NotExists)
                .await
                .expect("put");
            // Its own write, read in the session: there. The same read outside: not yet.
            assert!(store.get(&Key::new("S", "a")).await.expect("get").is_some());
            assert!(!committed(&outside, "a").await);
            // Conditions see it too.
            assert!(matches!(
                store.put(item("a"), Condition::NotExists).await,
                Err(StoreError::Conflict)
            ));
            store.put(item("b"), Condition::None).await.expect("put");
            let page = store
                .query(Query {
                    index: Index::Primary,
                    partition: "S".into(),
                    range: SortKeyRange::All,
                    limit: 10,
                    ..Query::default()
                })
                .await
                .expect("query");
            assert_eq!(page.items.len(), 2, "the query in the session sees both");
        })
        .await
        .expect("the session committed");
        assert!(committed(&outside, "a").await && committed(&outside, "b").await);
    }

    #[tokio::test]
    async fn a_task_spawned_in_this_session_stays_in_it() {
        let store = Embedded::in_memory().expect("store");
        let db = store.db().clone();
        db.session(async {
            store.put(item("a"), Condition::None).await.expect("put");
            let inner = store.clone();
            let seen = tokio::spawn(in_this_session(async move {
                inner.get(&Key::new("S", "a")).await.expect("get").is_some()
            }))
            .await
            .expect("task");
            assert!(seen, "the spawned task reads in the session");
        })
        .await
        .expect("the session committed");
    }

    #[tokio::test]
    async fn a_session_that_waits_for_a_commit_is_not_stuck_and_keeps_its_order() {
        let store = Embedded::in_memory().expect("store");
        let db = store.db().clone();
        let outside = store.clone();
        db.session(async {
            store
                .put(item("first"), Condition::None)
                .await
                .expect("put");
            // A write from another task waits for the session's group, which commits once
            // `SESSION_HOLD` has passed: it does not wait for the session's end.
            let other = outside.clone();
            tokio::spawn(async move { other.put(item("other"), Condition::None).await })
                .await
                .expect("task")
                .expect("the other write committed while the session is open");
            // Committed with it: the session's write handed over before it.
            assert!(committed(&outside, "first").await);
            store
                .put(item("second"), Condition::None)
                .await
                .expect("put");
        })
        .await
        .expect("the session committed");
        assert!(committed(&outside, "second").await);
    }

    #[tokio::test]
    async fn a_session_that_panics_is_ended_and_what_it_applied_is_committed() {
        let store = Embedded::in_memory().expect("store");
        let db = store.db().clone();
        let (in_session, session_db) = (store.clone(), db.clone());
        let panicked = tokio::spawn(async move {
            session_db
                .session(async {
                    in_session
                        .put(item("before"), Condition::None)
                        .await
                        .expect("put");
                    panic!("the session's work fails");
                })
                .await
        })
        .await;
        assert!(panicked.is_err());
        no_group_waits(&store).await;
        assert!(committed(&store, "before").await);
    }

    /// Checks that no session is left open: plain writes are committed without waiting for
    /// one. (Held, each would take `SESSION_HOLD`; 50 of them one after the other, a second.)
    async fn no_group_waits(store: &Embedded) {
        let started = Instant::now();
        for n in 0..50 {
            store
                .put(item(&format!("after-{n}")), Condition::None)
                .await
                .expect("put");
        }
        assert!(
            started.elapsed() < SESSION_HOLD * 25,
            "writes were held for a session: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_session_inside_a_session_is_part_of_it() {
        let store = Embedded::in_memory().expect("store");
        let db = store.db().clone();
        let outside = store.clone();
        db.session(async {
            db.session(async {
                store
                    .put(item("inner"), Condition::None)
                    .await
                    .expect("put");
            })
            .await
            .expect("the inner session returns");
            assert!(
                !committed(&outside, "inner").await,
                "the outer session commits it"
            );
        })
        .await
        .expect("the session committed");
        assert!(committed(&outside, "inner").await);
    }

    #[tokio::test]
    async fn a_group_that_fails_under_a_session_fails_its_end() {
        let store = Embedded::in_memory().expect("store");
        let db = store.db().clone();
        let (job_db, ended) = (db.clone(), db.clone());
        let result = ended
            .session(async {
                // A write, and right behind it (the same group) an operation that fails as the
                // database would: it dooms its group.
                let (failing, answer) = job(|_group| -> Result<(), DbError> {
                    Err(DbError::apply(std::io::Error::other("disk gone")))
                });
                let (put, ()) = tokio::join!(store.put(item("lost"), Condition::None), async {
                    job_db.send(failing).expect("sent");
                });
                put.expect("answered once applied");
                assert!(answer.await.expect("answered").is_err());
            })
            .await;
        assert!(result.is_err(), "the session hears of the failed group");
        assert!(!committed(&store, "lost").await);
        no_group_waits(&store).await;
    }
}
