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

use std::path::Path;
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

/// The most operations applied in one write transaction.
pub const MAX_OPS_PER_COMMIT: usize = 512;

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
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("herald-db-writer".into())
            .spawn(move || run_writer(&writer_db, rx))
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

    pub(crate) fn submit_job(&self, job: Box<dyn Job>) -> Result<(), GroupFailure> {
        let tx = self
            .inner
            .tx
            .as_ref()
            .ok_or_else(|| Arc::new(DbError::WriterStopped))?;
        tx.send(job).map_err(|_| Arc::new(DbError::WriterStopped))
    }
}

/// Shared state behind [`EmbeddedDb`].
struct Inner {
    db: Arc<Database>,
    /// `None` only while dropping.
    tx: Option<mpsc::UnboundedSender<Box<dyn Job>>>,
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
}

/// An operation and where its answer goes.
pub(crate) fn job<T, F>(f: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, GroupFailure>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Group<'_>) -> Result<T, DbError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    (Box::new(Op { apply: f, reply }), answer)
}

struct Op<F, T> {
    apply: F,
    reply: oneshot::Sender<Result<T, GroupFailure>>,
}

impl<F, T> Job for Op<F, T>
where
    T: Send + 'static,
    F: FnOnce(&mut Group<'_>) -> Result<T, DbError> + Send + 'static,
{
    fn apply(self: Box<Self>, group: &mut Group<'_>) -> Result<Finish, GroupFailure> {
        let Op { apply, reply } = *self;
        match apply(group) {
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
}

fn run_writer(db: &Database, mut rx: mpsc::UnboundedReceiver<Box<dyn Job>>) {
    let mut tally = WriterTally::default();
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let ops = jobs.len();
        let ended = run_group(db, jobs);
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

/// Applies `jobs` in order in one write transaction, commits it if anything was written, then
/// answers every caller.
pub(crate) fn run_group(db: &Database, jobs: Vec<Box<dyn Job>>) -> GroupEnd {
    let txn = match begin(db) {
        Ok(txn) => txn,
        Err(e) => {
            fail_all(jobs, &Arc::new(e));
            return GroupEnd::Failed;
        }
    };
    let mut group = Group {
        txn: &txn,
        store: None,
        queues: None,
        store_dirty: false,
        nested: Vec::new(),
    };
    let mut finishes = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    let mut failure = None;
    for job in jobs.by_ref() {
        match job.apply(&mut group) {
            Ok(finish) => finishes.push(finish),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    finishes.append(&mut group.nested);
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
            if wrote {
                GroupEnd::Committed
            } else {
                GroupEnd::ReadOnly
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "database transaction failed");
            finishes
                .into_iter()
                .for_each(|finish| finish(Err(Arc::clone(&e))));
            jobs.for_each(|job| job.fail(Arc::clone(&e)));
            GroupEnd::Failed
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
