//! The embedded storage engine for `herald serve`: one redb file, crash-safe.
//!
//! # Layout
//! Two redb tables of byte strings:
//! - `store_items`: `enc(PK) ++ enc(SK)` → the item as JSON;
//! - `store_gsi1`: `enc(GSI1PK) ++ enc(GSI1SK) ++ enc(PK) ++ enc(SK)` → `enc(PK) ++ enc(SK)`.
//!
//! `enc` escapes each `0x00` byte as `0x00 0xFF` and ends the component with `0x00 0x01`, so
//! comparing encoded keys bytewise compares their components in order, each bytewise — DynamoDB's
//! order for string keys — and a sort-key range or prefix becomes one contiguous byte range.
//!
//! # Durability and concurrency
//! Writes are committed with redb's default durability (`Immediate`: fsync before `commit`
//! returns), and a write returns only once committed, so an acknowledged write survives `kill -9`
//! and power loss. Conditions are checked inside the write transaction, and redb allows one
//! write transaction at a time, so condition + write is atomic and `transact` is all or nothing.
//!
//! redb is synchronous, and durable throughput is bounded by fsyncs. So every write goes to one
//! writer thread per store (group commit): it takes all writes waiting (up to 256), applies them
//! in arrival order in one write transaction — each checked against the state the previous ones
//! left, so the result is as if they ran one by one — commits once, then answers each caller. A
//! write whose condition fails writes nothing and gets `Conflict` without affecting the others;
//! an engine error rolls the group back and the writer retries each write alone. Concurrent
//! callers thus share fsyncs; a lone caller still pays one per write. The async side only waits
//! on a channel, never blocks a runtime worker.
//!
//! Reads (`get`, `get_many`, `query`) run inline on the caller's task: a read transaction never
//! waits for the writer (MVCC) and is bounded (at most 1000 items of one page), so it is cheaper
//! than a hop to the blocking pool.
//!
//! Expired items (`ttl <= now`) are not removed by a background sweep: reads skip them,
//! conditions see them as absent, and a later write replaces them.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{
    Condition, Cursor, Index, Item, Key, Page, Query, SortKeyRange, Store, StoreError, WriteOp,
    now_epoch, validate_item, validate_query, validate_transaction, validate_write,
};

const ITEMS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("store_items");
const GSI1: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("store_gsi1");

/// The two tables, opened once per write transaction.
struct Tables<'txn> {
    items: Table<'txn, &'static [u8], &'static [u8]>,
    gsi1: Table<'txn, &'static [u8], &'static [u8]>,
}

/// The embedded engine. Cheap to clone; clones share one database and one writer.
#[derive(Debug, Clone)]
pub struct Embedded {
    db: Arc<Database>,
    writer: mpsc::UnboundedSender<Job>,
}

/// Writes the writer thread commits together, at most.
const MAX_GROUP: usize = 256;

/// What a write returns: for an `Add`, the item's integers after it.
type Outcome = Result<Option<BTreeMap<String, i64>>, StoreError>;

/// One caller's write, waiting for the writer thread.
#[derive(Debug)]
struct Job {
    write: Write,
    reply: oneshot::Sender<Outcome>,
}

// A job moves once, through the channel: its size does not matter, a box would be one more
// allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Write {
    One(WriteOp),
    Transaction(Vec<WriteOp>),
}

impl Embedded {
    /// Opens the database file at `path`, creating it if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(engine)?;
        Self::from_database(Arc::new(db))
    }

    /// A database in memory, for tests of code that uses a store.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(engine)?;
        Self::from_database(Arc::new(db))
    }

    /// Uses an open database (shared with other embedded engines, e.g. the queue), creating the
    /// store's tables if absent, and starts the store's writer thread.
    pub fn from_database(db: Arc<Database>) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(engine)?;
        txn.open_table(ITEMS).map_err(engine)?;
        txn.open_table(GSI1).map_err(engine)?;
        txn.commit().map_err(engine)?;
        let (writer, jobs) = mpsc::unbounded_channel();
        // The writer holds the database weakly, so dropping the last `Embedded` closes it
        // (and the file can be opened again) without waiting for the thread.
        let weak = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("herald-store-writer".to_owned())
            .spawn(move || run_writer(&weak, jobs))
            .map_err(engine)?;
        Ok(Self { db, writer })
    }

    /// The underlying database, to share it with other embedded engines.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Hands a write to the writer thread and waits until it is committed (or refused).
    async fn write(&self, write: Write) -> Outcome {
        let (reply, done) = oneshot::channel();
        self.writer
            .send(Job { write, reply })
            .map_err(|_| StoreError::engine(WriterGone))?;
        done.await.map_err(|_| StoreError::engine(WriterGone))?
    }
}

/// The writer thread stopped (it panicked, or the database is closing).
#[derive(Debug, thiserror::Error)]
#[error("the embedded store's writer thread is gone")]
struct WriterGone;

/// The writer thread: takes every write waiting, applies them in order in one write transaction
/// and commits them with one fsync (group commit), then answers each caller.
fn run_writer(db: &Weak<Database>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(job) = jobs.blocking_recv() {
        group.push(job);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let outcomes = match db.upgrade() {
            None => group
                .iter()
                .map(|_| Err(StoreError::engine(WriterGone)))
                .collect(),
            Some(db) => commit_group(&db, &group).unwrap_or_else(|_| {
                // One write failed in the engine (not a condition): the group was rolled back.
                // Commit each write alone so that only the failing one fails.
                group
                    .iter()
                    .map(|job| {
                        commit_group(&db, std::slice::from_ref(job)).and_then(|mut r| {
                            r.pop().unwrap_or(Err(StoreError::engine(WriterGone)))
                        })
                    })
                    .collect()
            }),
            // The database handle is released before anyone hears back, so a caller that drops
            // its last `Embedded` after a write closes the file at once.
        };
        for (job, outcome) in group.drain(..).zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
    }
}

/// Applies `group` in order in one write transaction and commits it. A write whose condition
/// fails writes nothing and gets `Conflict`; any engine error rolls the whole group back.
fn commit_group(db: &Database, group: &[Job]) -> Result<Vec<Outcome>, StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut tables = Tables {
            items: txn.open_table(ITEMS).map_err(engine)?,
            gsi1: txn.open_table(GSI1).map_err(engine)?,
        };
        let now = now_epoch();
        for job in group {
            let result = match &job.write {
                Write::One(op) => apply(&mut tables, now, op, true),
                Write::Transaction(ops) => transact(&mut tables, now, ops).map(|()| None),
            };
            match result {
                Err(StoreError::Conflict) => results.push(Err(StoreError::Conflict)),
                Err(e) => return Err(e),
                Ok(v) => results.push(Ok(v)),
            }
        }
    }
    txn.commit().map_err(engine)?;
    Ok(results)
}

#[async_trait]
impl Store for Embedded {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let txn = self.db.begin_read().map_err(engine)?;
        let table = txn.open_table(ITEMS).map_err(engine)?;
        let raw = table.get(primary_key(key).as_slice()).map_err(engine)?;
        match raw {
            Some(v) => Ok(decode_item(v.value())?.filter(|i| !i.is_expired(now_epoch()))),
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let now = now_epoch();
        let txn = self.db.begin_read().map_err(engine)?;
        let table = txn.open_table(ITEMS).map_err(engine)?;
        keys.iter()
            .map(
                |key| match table.get(primary_key(key).as_slice()).map_err(engine)? {
                    Some(v) => Ok(decode_item(v.value())?.filter(|i| !i.is_expired(now))),
                    None => Ok(None),
                },
            )
            .collect()
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        validate_item(&item)?;
        self.write(Write::One(WriteOp::Put { item, condition }))
            .await
            .map(drop)
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let op = WriteOp::Delete {
            key: key.clone(),
            condition,
        };
        validate_write(&op)?;
        self.write(Write::One(op)).await.map(drop)
    }

    async fn add(
        &self,
        key: &Key,
        entity_type: &str,
        deltas: &BTreeMap<String, i64>,
        condition: Condition,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let op = WriteOp::Add {
            key: key.clone(),
            entity_type: entity_type.to_owned(),
            deltas: deltas.clone(),
            condition,
        };
        validate_write(&op)?;
        self.write(Write::One(op))
            .await
            .map(Option::unwrap_or_default)
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        let after = validate_query(&query)?;
        let now = now_epoch();
        let (lo, hi) = key_range(&query, after.as_ref());
        let mut page = Page {
            items: Vec::with_capacity(query.limit.min(64)),
            next: None,
        };
        if lo_is_past_hi(&lo, &hi) {
            return Ok(page);
        }
        let txn = self.db.begin_read().map_err(engine)?;
        let items = txn.open_table(ITEMS).map_err(engine)?;
        let bounds = (as_slice_bound(&lo), as_slice_bound(&hi));
        match query.index {
            Index::Primary => {
                let range = items.range::<&[u8]>(bounds).map_err(engine)?;
                let values = range.map(|r| r.map(|(_, v)| decode_item(v.value())));
                collect_page(&mut page, &query, now, values, |v| v.map_err(engine)?)?;
            }
            Index::Gsi1 => {
                let gsi = txn.open_table(GSI1).map_err(engine)?;
                let range = gsi.range::<&[u8]>(bounds).map_err(engine)?;
                let lookup = |pk: &[u8]| -> Result<Option<Item>, StoreError> {
                    match items.get(pk).map_err(engine)? {
                        Some(v) => decode_item(v.value()),
                        None => Ok(None),
                    }
                };
                let values = range.map(|r| r.map(|(_, pk)| lookup(pk.value())));
                collect_page(&mut page, &query, now, values, |v| v.map_err(engine)?)?;
            }
        }
        Ok(page)
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.write(Write::Transaction(ops)).await.map(drop)
    }
}

/// Applies a transaction inside `txn`: every condition is checked against the state before it,
/// as in DynamoDB (keys are distinct, so checking all then writing all is the same), then every
/// write is applied.
fn transact(txn: &mut Tables<'_>, now: i64, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        let condition = match op {
            WriteOp::Put { condition, .. }
            | WriteOp::Delete { condition, .. }
            | WriteOp::Add { condition, .. }
            | WriteOp::Check { condition, .. } => condition,
        };
        if !condition.holds(live_item(txn, now, op.key())?.as_ref()) {
            return Err(StoreError::Conflict);
        }
    }
    for op in ops {
        apply(txn, now, op, false)?;
    }
    Ok(())
}

/// Applies one write inside `txn` if its condition holds (or unchecked: a transaction checked it
/// already); an `Add` returns the item's integers after the add.
fn apply(
    txn: &mut Tables<'_>,
    now: i64,
    op: &WriteOp,
    check: bool,
) -> Result<Option<BTreeMap<String, i64>>, StoreError> {
    let live = live_item(txn, now, op.key())?;
    let condition = match op {
        WriteOp::Put { condition, .. }
        | WriteOp::Delete { condition, .. }
        | WriteOp::Add { condition, .. }
        | WriteOp::Check { condition, .. } => condition,
    };
    if check && !condition.holds(live.as_ref()) {
        return Err(StoreError::Conflict);
    }
    match op {
        WriteOp::Check { .. } => Ok(None),
        WriteOp::Put { item, .. } => {
            store_item(txn, item)?;
            Ok(None)
        }
        WriteOp::Delete { key, .. } => {
            remove_item(txn, key)?;
            Ok(None)
        }
        WriteOp::Add {
            key,
            entity_type,
            deltas,
            ..
        } => {
            let mut item = live.unwrap_or_else(|| {
                Item::new(key.clone(), entity_type.clone(), serde_json::Value::Null)
            });
            for (name, delta) in deltas {
                let n = item.nums.entry(name.clone()).or_insert(0);
                *n = n
                    .checked_add(*delta)
                    .ok_or_else(|| StoreError::invalid("integer attribute overflow"))?;
            }
            store_item(txn, &item)?;
            Ok(Some(item.nums))
        }
    }
}

/// The item at `key` unless absent or expired — what conditions see.
fn live_item(txn: &Tables<'_>, now: i64, key: &Key) -> Result<Option<Item>, StoreError> {
    let raw = txn.items.get(primary_key(key).as_slice()).map_err(engine)?;
    match raw {
        Some(v) => Ok(decode_item(v.value())?.filter(|i| !i.is_expired(now))),
        None => Ok(None),
    }
}

/// Writes `item`, replacing any item at its key and its index entry.
fn store_item(txn: &mut Tables<'_>, item: &Item) -> Result<(), StoreError> {
    remove_item(txn, &item.key)?;
    let pk = primary_key(&item.key);
    let value = serde_json::to_vec(item).map_err(engine)?;
    txn.items
        .insert(pk.as_slice(), value.as_slice())
        .map_err(engine)?;
    if let Some(g) = &item.gsi1 {
        let gk = gsi_key(g, &item.key);
        txn.gsi1
            .insert(gk.as_slice(), pk.as_slice())
            .map_err(engine)?;
    }
    Ok(())
}

/// Removes the item at `key` (expired or not) and its index entry.
fn remove_item(txn: &mut Tables<'_>, key: &Key) -> Result<(), StoreError> {
    let old = match txn
        .items
        .remove(primary_key(key).as_slice())
        .map_err(engine)?
    {
        Some(v) => decode_item(v.value())?,
        None => None,
    };
    if let Some(g) = old.and_then(|o| o.gsi1) {
        txn.gsi1
            .remove(gsi_key(&g, key).as_slice())
            .map_err(engine)?;
    }
    Ok(())
}

/// Fills `page` from `values` (in ascending key order), skipping expired and dangling
/// entries, in the query's direction, and sets the cursor when a live item follows the page.
fn collect_page<V>(
    page: &mut Page,
    query: &Query,
    now: i64,
    values: impl DoubleEndedIterator<Item = V>,
    unwrap: impl Fn(V) -> Result<Option<Item>, StoreError>,
) -> Result<(), StoreError> {
    if query.descending {
        fill_page(page, query, now, values.rev(), unwrap)
    } else {
        fill_page(page, query, now, values, unwrap)
    }
}

fn fill_page<V>(
    page: &mut Page,
    query: &Query,
    now: i64,
    values: impl Iterator<Item = V>,
    unwrap: impl Fn(V) -> Result<Option<Item>, StoreError>,
) -> Result<(), StoreError> {
    for v in values {
        let Some(item) = unwrap(v)?.filter(|i| !i.is_expired(now)) else {
            continue;
        };
        if page.items.len() == query.limit {
            page.next = page
                .items
                .last()
                .map(|last| Cursor::after(last, query.index));
            break;
        }
        page.items.push(item);
    }
    Ok(())
}

/// The byte range of the table a query reads: its partition, narrowed to its sort-key range,
/// narrowed past the cursor in the query's direction.
fn key_range(
    query: &Query,
    after: Option<&(Key, Option<Key>)>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut partition = Vec::with_capacity(query.partition.len() + 2);
    push_component(&mut partition, &query.partition);
    let with = |sk: &str| {
        let mut k = partition.clone();
        push_escaped(&mut k, sk);
        k
    };
    let (mut lo, mut hi) = match &query.range {
        SortKeyRange::All => (
            Bound::Included(partition.clone()),
            Bound::Excluded(prefix_end(partition.clone())),
        ),
        SortKeyRange::BeginsWith(prefix) => {
            let k = with(prefix);
            (Bound::Included(k.clone()), Bound::Excluded(prefix_end(k)))
        }
        SortKeyRange::Between(a, b) => {
            let mut lo = with(a);
            lo.extend_from_slice(&[0, 1]);
            let mut hi = with(b);
            hi.extend_from_slice(&[0, 2]);
            (Bound::Included(lo), Bound::Excluded(hi))
        }
    };
    if let Some((key, gsi)) = after {
        let last = match gsi {
            Some(g) => gsi_key(g, key),
            None => primary_key(key),
        };
        if query.descending {
            if bound_value(&hi).is_none_or(|h| last.as_slice() <= h) {
                hi = Bound::Excluded(last);
            }
        } else if bound_value(&lo).is_none_or(|l| last.as_slice() >= l) {
            lo = Bound::Excluded(last);
        }
    }
    (lo, hi)
}

fn bound_value(b: &Bound<Vec<u8>>) -> Option<&[u8]> {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v),
        Bound::Unbounded => None,
    }
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether the range is empty in a way redb would refuse (start after end).
fn lo_is_past_hi(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (bound_value(lo), bound_value(hi)) {
        (Some(l), Some(h)) => l >= h,
        _ => false,
    }
}

/// The smallest byte string greater than every string starting with `prefix`. Never empty here:
/// every prefix ends with an encoded component or a sort-key prefix after one.
fn prefix_end(mut prefix: Vec<u8>) -> Vec<u8> {
    while let Some(last) = prefix.pop() {
        if last < 0xFF {
            prefix.push(last + 1);
            return prefix;
        }
    }
    prefix
}

fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

fn push_component(out: &mut Vec<u8>, s: &str) {
    push_escaped(out, s);
    out.extend_from_slice(&[0, 1]);
}

fn primary_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.pk.len() + key.sk.len() + 4);
    push_component(&mut out, &key.pk);
    push_component(&mut out, &key.sk);
    out
}

fn gsi_key(gsi: &Key, key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(gsi.pk.len() + gsi.sk.len() + key.pk.len() + key.sk.len() + 8);
    push_component(&mut out, &gsi.pk);
    push_component(&mut out, &gsi.sk);
    push_component(&mut out, &key.pk);
    push_component(&mut out, &key.sk);
    out
}

fn decode_item(bytes: &[u8]) -> Result<Option<Item>, StoreError> {
    serde_json::from_slice(bytes).map(Some).map_err(engine)
}

fn engine(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::engine(e)
}

#[cfg(test)]
mod tests {
    use std::ops::RangeBounds;

    use proptest::prelude::*;

    use super::*;

    #[tokio::test]
    async fn one_group_commits_every_write_but_those_that_fail() {
        let store = Embedded::in_memory().expect("store");
        let full = Key::new("N", "FULL");
        let max = BTreeMap::from([("n".to_owned(), i64::MAX)]);
        store
            .add(&full, "T", &max, Condition::None)
            .await
            .expect("seed");

        // Queue a group by hand and run a writer over it: all of it is waiting, so it is
        // applied in one transaction.
        let (tx, rx) = mpsc::unbounded_channel();
        let mut replies = Vec::new();
        let mut send = |op: WriteOp| {
            let (reply, done) = oneshot::channel();
            tx.send(Job {
                write: Write::One(op),
                reply,
            })
            .expect("queue");
            replies.push(done);
        };
        let put = |sk: &str| WriteOp::Put {
            item: Item::new(Key::new("N", sk), "T", serde_json::json!(sk)),
            condition: Condition::NotExists,
        };
        send(put("A"));
        send(put("A")); // sees the first: conflict
        send(WriteOp::Add {
            key: full.clone(),
            entity_type: "T".to_owned(),
            deltas: BTreeMap::from([("n".to_owned(), 1)]),
            condition: Condition::None,
        }); // overflows: an engine error
        send(put("B"));
        drop(tx);
        let db = Arc::downgrade(store.database());
        std::thread::spawn(move || run_writer(&db, rx))
            .join()
            .expect("writer ran");

        let mut outcomes = Vec::new();
        for done in replies {
            outcomes.push(done.await.expect("answered"));
        }
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        assert!(
            matches!(outcomes[1], Err(StoreError::Conflict)),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[2], Err(StoreError::Engine(_))),
            "{outcomes:?}"
        );
        assert!(outcomes[3].is_ok(), "{outcomes:?}");
        let got = store.get(&full).await.expect("get").expect("present");
        assert_eq!(got.nums["n"], i64::MAX, "the failed add wrote nothing");
        let keys = store
            .get_many(&[Key::new("N", "A"), Key::new("N", "B")])
            .await
            .expect("get");
        assert!(
            keys.iter().all(Option::is_some),
            "the other writes are committed"
        );
    }

    #[tokio::test]
    async fn a_dropped_store_releases_its_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db.redb");
        let store = Embedded::open(&path).expect("open");
        let item = Item::new(Key::new("A", "B"), "T", serde_json::json!({}));
        store.put(item.clone(), Condition::None).await.expect("put");
        drop(store);
        let reopened = Embedded::open(&path).expect("reopen in the same process");
        assert_eq!(reopened.get(&item.key).await.expect("get"), Some(item));
    }

    fn inside(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>, key: &[u8]) -> bool {
        RangeBounds::<[u8]>::contains(&(as_slice_bound(lo), as_slice_bound(hi)), key)
    }

    /// Strings biased towards the bytes the encoding treats specially.
    fn component() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('\u{1}'),
                Just('\u{ff}'),
                Just('#'),
                any::<char>()
            ],
            0..6,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #[test]
        fn encoded_keys_sort_as_their_components(
            a in (component(), component()),
            b in (component(), component()),
        ) {
            let (ka, kb) = (Key::new(&a.0, &a.1), Key::new(&b.0, &b.1));
            let expected = (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes()));
            prop_assert_eq!(primary_key(&ka).cmp(&primary_key(&kb)), expected);
        }

        #[test]
        fn a_sort_key_prefix_range_holds_exactly_the_keys_with_that_prefix(
            pk in component(), sk in component(), prefix in component(),
        ) {
            let query = Query {
                partition: pk.clone(),
                range: SortKeyRange::BeginsWith(prefix.clone()),
                limit: 1,
                ..Query::default()
            };
            let (lo, hi) = key_range(&query, None);
            let k = primary_key(&Key::new(&pk, &sk));
            let inside = inside(&lo, &hi, &k);
            prop_assert_eq!(inside, sk.starts_with(&prefix));
        }

        #[test]
        fn a_between_range_holds_exactly_the_keys_between(
            pk in component(), sk in component(), a in component(), b in component(),
        ) {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            let query = Query {
                partition: pk.clone(),
                range: SortKeyRange::Between(a.clone(), b.clone()),
                limit: 1,
                ..Query::default()
            };
            let (lo, hi) = key_range(&query, None);
            let k = primary_key(&Key::new(&pk, &sk));
            let inside = inside(&lo, &hi, &k);
            prop_assert_eq!(inside, a.as_bytes() <= sk.as_bytes() && sk.as_bytes() <= b.as_bytes());
        }

        #[test]
        fn a_partition_range_holds_no_key_of_another_partition(
            pk in component(), other in component(), sk in component(),
        ) {
            let query = Query { partition: pk.clone(), limit: 1, ..Query::default() };
            let (lo, hi) = key_range(&query, None);
            let k = primary_key(&Key::new(&other, &sk));
            let inside = inside(&lo, &hi, &k);
            prop_assert_eq!(inside, pk == other);
        }
    }
}
