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
//! Writes are committed with `Durability::Immediate` (fsync before `commit` returns), and a write
//! returns only once committed, so an acknowledged write survives `kill -9` and power loss.
//! Conditions are checked inside the write transaction, and redb allows one write transaction at
//! a time, so condition + write is atomic and `transact` is all or nothing.
//!
//! Every write goes to the writer thread of the [`EmbeddedDb`] the store lives in (group
//! commit, [`crate::embedded`]): all writes waiting — and, in `herald serve`, the queue
//! operations waiting, whose tables are in the same database — are applied in arrival order in
//! one write transaction, each checked against the state the previous ones left (as if they ran
//! one by one), and committed once. A write whose condition fails (or that is refused before it
//! writes: a counter overflow, an unreadable item) writes nothing and answers only its caller;
//! a storage failure while writing fails the group, and every caller in it gets the error.
//! Concurrent callers thus share fsyncs; a lone caller still pays one per write. The async side
//! only waits on a channel, never blocks a runtime worker.
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

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{
    Condition, Cursor, Index, Item, Key, Page, Query, SortKeyRange, Store, StoreError, WriteOp,
    now_epoch, validate_condition, validate_item, validate_query, validate_transaction,
    validate_write,
};
use crate::embedded::{DbError, EmbeddedDb, GroupFailure, Job};

const ITEMS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("store_items");
const GSI1: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("store_gsi1");

/// The store's two tables in one group transaction ([`crate::embedded::Group::store`]).
pub(crate) struct Tables<'txn> {
    items: Table<'txn, &'static [u8], &'static [u8]>,
    gsi1: Table<'txn, &'static [u8], &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, DbError> {
        Ok(Self {
            items: txn.open_table(ITEMS)?,
            gsi1: txn.open_table(GSI1)?,
        })
    }
}

/// The embedded engine. Cheap to clone; clones share one database and its writer.
#[derive(Debug, Clone)]
pub struct Embedded {
    db: EmbeddedDb,
}

/// What a write returns: for an `Add`, the item's integers after it.
type Outcome = Result<Option<BTreeMap<String, i64>>, StoreError>;

// A write moves once, through the channel: its size does not matter, a box would be one more
// allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Write {
    /// Puts, in order, stopping at the first refused ([`Store::put_all`]; `put` is one).
    Puts(Vec<EncodedPut>),
    /// A delete or an add.
    One(WriteOp),
    Transaction(Vec<WriteOp>),
}

/// A put whose item the caller's task has encoded already: the writer thread — the serial path
/// every commit goes through — only checks the condition and stores the bytes.
#[derive(Debug)]
struct EncodedPut {
    key: Key,
    gsi1: Option<Key>,
    value: Vec<u8>,
    condition: Condition,
}

impl EncodedPut {
    /// A put from the API: the item and the condition checked, then encoded.
    fn new(item: &Item, condition: Condition) -> Result<Self, StoreError> {
        validate_item(item)?;
        validate_condition(&condition)?;
        Self::encode(item, condition).map_err(engine)
    }

    /// A put already checked (a transaction's, validated as a whole).
    fn encode(item: &Item, condition: Condition) -> Result<Self, serde_json::Error> {
        Ok(Self {
            key: item.key.clone(),
            gsi1: item.gsi1.clone(),
            value: serde_json::to_vec(item)?,
            condition,
        })
    }
}

impl Embedded {
    /// Opens the database file at `path` (a database of its own), creating it if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::on(&EmbeddedDb::open(path).map_err(engine)?)
    }

    /// A database in memory, for tests of code that uses a store.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::on(&EmbeddedDb::in_memory().map_err(engine)?)
    }

    /// The store in `db` (shared with other embedded engines, e.g. the queues, whose operations
    /// are committed together with the store's writes), creating its tables if absent.
    pub fn on(db: &EmbeddedDb) -> Result<Self, StoreError> {
        let txn = db.database().begin_write().map_err(engine)?;
        txn.open_table(ITEMS).map_err(engine)?;
        txn.open_table(GSI1).map_err(engine)?;
        txn.commit().map_err(engine)?;
        Ok(Self { db: db.clone() })
    }

    /// The database the store lives in.
    pub fn db(&self) -> &EmbeddedDb {
        &self.db
    }

    /// Hands a write to the writer thread and waits until it is committed (or refused).
    async fn write(&self, write: Write) -> Outcome {
        let (job, answer) = write_job(write);
        self.db.submit_job(job).map_err(engine)?;
        answer
            .await
            .map_err(|_| engine(DbError::WriterStopped))?
            .map_err(engine)?
    }
}

/// A write as an operation of the database's writer: applied to the store's tables of the group
/// it lands in; refused alone (its caller's `Err`) when refused before writing.
fn write_job(
    write: Write,
) -> (
    Box<dyn Job>,
    oneshot::Receiver<Result<Outcome, GroupFailure>>,
) {
    crate::embedded::job(move |group| {
        let now = now_epoch();
        let tables = group.store()?;
        let (outcome, wrote) = match &write {
            Write::Puts(puts) => {
                let mut wrote = false;
                let mut outcome = Ok(None);
                for put in puts {
                    if let Err(e) = put_encoded(tables, now, put, true)? {
                        outcome = Err(e);
                        break;
                    }
                    wrote = true;
                }
                (outcome, wrote)
            }
            Write::One(op) => {
                let outcome = apply(tables, now, op, true)?;
                let wrote = outcome.is_ok();
                (outcome, wrote)
            }
            Write::Transaction(ops) => {
                let outcome = transact(tables, now, ops)?.map(|()| None);
                let wrote = outcome.is_ok();
                (outcome, wrote)
            }
        };
        if wrote {
            group.store_wrote();
        }
        Ok(outcome)
    })
}

#[async_trait]
impl Store for Embedded {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        Ok(self
            .get_many(std::slice::from_ref(key))
            .await?
            .pop()
            .flatten())
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(primary_key).collect();
        if self.db.in_session() {
            return self
                .read_in_session(move |tables| items_at(&tables.items, &keys))
                .await;
        }
        let txn = self.db.database().begin_read().map_err(engine)?;
        let table = txn.open_table(ITEMS).map_err(engine)?;
        items_at(&table, &keys)
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let put = EncodedPut::new(&item, condition)?;
        self.write(Write::Puts(vec![put])).await.map(drop)
    }

    async fn put_all(&self, puts: Vec<(Item, Condition)>) -> Result<(), StoreError> {
        let puts = puts
            .into_iter()
            .map(|(item, condition)| EncodedPut::new(&item, condition))
            .collect::<Result<Vec<_>, _>>()?;
        if puts.is_empty() {
            return Ok(());
        }
        self.write(Write::Puts(puts)).await.map(drop)
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
        if self.db.in_session() {
            return self
                .read_in_session(move |tables| {
                    fill_query(
                        &mut page,
                        &query,
                        now,
                        (&lo, &hi),
                        &tables.items,
                        &tables.gsi1,
                    )?;
                    Ok(page)
                })
                .await;
        }
        let txn = self.db.database().begin_read().map_err(engine)?;
        let items = txn.open_table(ITEMS).map_err(engine)?;
        let gsi = txn.open_table(GSI1).map_err(engine)?;
        fill_query(&mut page, &query, now, (&lo, &hi), &items, &gsi)?;
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

impl Embedded {
    /// A read in the current session's group ([`EmbeddedDb::session`]): it sees what the
    /// session (and every operation before it) wrote, committed or not.
    async fn read_in_session<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.db
            .submit(move |group| Ok(read(group.store()?)))
            .await
            .map_err(engine)?
    }
}

/// The live items at `keys` (encoded primary keys) in `table`.
fn items_at<T>(table: &T, keys: &[Vec<u8>]) -> Result<Vec<Option<Item>>, StoreError>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
{
    let now = now_epoch();
    keys.iter()
        .map(|key| match table.get(key.as_slice()).map_err(engine)? {
            Some(v) => Ok(decode_item(v.value())?.filter(|i| !i.is_expired(now))),
            None => Ok(None),
        })
        .collect()
}

/// Fills `page` with `query`'s items between `bounds` (encoded keys of its index).
fn fill_query<I, G>(
    page: &mut Page,
    query: &Query,
    now: i64,
    (lo, hi): (&Bound<Vec<u8>>, &Bound<Vec<u8>>),
    items: &I,
    gsi: &G,
) -> Result<(), StoreError>
where
    I: ReadableTable<&'static [u8], &'static [u8]>,
    G: ReadableTable<&'static [u8], &'static [u8]>,
{
    let bounds = (as_slice_bound(lo), as_slice_bound(hi));
    match query.index {
        Index::Primary => {
            let range = items.range::<&[u8]>(bounds).map_err(engine)?;
            let values = range.map(|r| r.map(|(_, v)| decode_item(v.value())));
            collect_page(page, query, now, values, |v| v.map_err(engine)?)
        }
        Index::Gsi1 => {
            let range = gsi.range::<&[u8]>(bounds).map_err(engine)?;
            let lookup = |pk: &[u8]| -> Result<Option<Item>, StoreError> {
                match items.get(pk).map_err(engine)? {
                    Some(v) => decode_item(v.value()),
                    None => Ok(None),
                }
            };
            let values = range.map(|r| r.map(|(_, pk)| lookup(pk.value())));
            collect_page(page, query, now, values, |v| v.map_err(engine)?)
        }
    }
}

/// Applies a transaction inside `txn`: every condition is checked against the state before it,
/// as in DynamoDB (keys are distinct, so checking all then writing all is the same), and every
/// add checked for overflow, then every write is applied. A refusal (`Ok(Err)`) writes nothing;
/// `Err` is a failure halfway, which dooms the group.
fn transact(
    txn: &mut Tables<'_>,
    now: i64,
    ops: &[WriteOp],
) -> Result<Result<(), StoreError>, DbError> {
    for op in ops {
        if let WriteOp::Add {
            key,
            entity_type,
            deltas,
            condition,
        } = op
        {
            let live = match stored_item(txn, &primary_key(key)) {
                Ok(stored) => stored.filter(|item| !item.is_expired(now)),
                Err(e) => return Ok(Err(e)),
            };
            if !condition.holds(live.as_ref()) {
                return Ok(Err(StoreError::Conflict));
            }
            if let Err(e) = added(live, key, entity_type, deltas) {
                return Ok(Err(e));
            }
        } else {
            let live = match stored_head(txn, &primary_key(op.key())) {
                Ok(stored) => stored.filter(|head| head.is_live(now)),
                Err(e) => return Ok(Err(e)),
            };
            if !condition_of(op).holds_for(live.as_ref().map(|head| &head.nums)) {
                return Ok(Err(StoreError::Conflict));
            }
        }
    }
    for op in ops {
        apply(txn, now, op, false)?.map_err(DbError::apply)?;
    }
    Ok(Ok(()))
}

fn condition_of(op: &WriteOp) -> &Condition {
    match op {
        WriteOp::Put { condition, .. }
        | WriteOp::Delete { condition, .. }
        | WriteOp::Add { condition, .. }
        | WriteOp::Check { condition, .. } => condition,
    }
}

/// `live` (or a new item) with `deltas` added; refused on overflow.
fn added(
    live: Option<Item>,
    key: &Key,
    entity_type: &str,
    deltas: &BTreeMap<String, i64>,
) -> Result<Item, StoreError> {
    let mut item =
        live.unwrap_or_else(|| Item::new(key.clone(), entity_type, serde_json::Value::Null));
    for (name, delta) in deltas {
        let n = item.nums.entry(name.clone()).or_insert(0);
        *n = n
            .checked_add(*delta)
            .ok_or_else(|| StoreError::invalid("integer attribute overflow"))?;
    }
    Ok(item)
}

/// Applies one write inside `txn` if its condition holds (or unchecked: a transaction checked it
/// already); an `Add` returns the item's integers after the add. A refusal (`Ok(Err)`: failed
/// condition, overflow, unreadable item) writes nothing; `Err` is a failure while writing.
fn apply(txn: &mut Tables<'_>, now: i64, op: &WriteOp, check: bool) -> Result<Outcome, DbError> {
    match op {
        WriteOp::Put { item, condition } => {
            let put = EncodedPut::encode(item, condition.clone()).map_err(DbError::apply)?;
            Ok(put_encoded(txn, now, &put, check)?.map(|()| None))
        }
        WriteOp::Delete { key, condition } | WriteOp::Check { key, condition } => {
            let pk = primary_key(key);
            let stored = match stored_head(txn, &pk) {
                Ok(stored) => stored,
                Err(e) => return Ok(Err(e)),
            };
            let live = stored.as_ref().filter(|head| head.is_live(now));
            if check && !condition.holds_for(live.map(|head| &head.nums)) {
                return Ok(Err(StoreError::Conflict));
            }
            if matches!(op, WriteOp::Delete { .. })
                && let Some(stored) = stored
            {
                txn.items.remove(pk.as_slice()).map_err(DbError::apply)?;
                if let Some(g) = stored.gsi1 {
                    txn.gsi1
                        .remove(gsi_key(&g, key).as_slice())
                        .map_err(DbError::apply)?;
                }
            }
            Ok(Ok(None))
        }
        WriteOp::Add {
            key,
            entity_type,
            deltas,
            condition,
        } => {
            let pk = primary_key(key);
            let stored = match stored_item(txn, &pk) {
                Ok(stored) => stored,
                Err(e) => return Ok(Err(e)),
            };
            let old_gsi1 = stored.as_ref().and_then(|item| item.gsi1.clone());
            let live = stored.filter(|item| !item.is_expired(now));
            if check && !condition.holds(live.as_ref()) {
                return Ok(Err(StoreError::Conflict));
            }
            let item = match added(live, key, entity_type, deltas) {
                Ok(item) => item,
                Err(e) => return Ok(Err(e)),
            };
            let value = serde_json::to_vec(&item).map_err(DbError::apply)?;
            write_item(txn, &pk, key, item.gsi1.as_ref(), &value, old_gsi1)
                .map_err(DbError::apply)?;
            Ok(Ok(Some(item.nums)))
        }
    }
}

/// Applies an encoded put if its condition holds (or unchecked): the stored item is read only as
/// far as the condition and the index need (its document is skipped, not decoded).
fn put_encoded(
    txn: &mut Tables<'_>,
    now: i64,
    put: &EncodedPut,
    check: bool,
) -> Result<Result<(), StoreError>, DbError> {
    let pk = primary_key(&put.key);
    let stored = match stored_head(txn, &pk) {
        Ok(stored) => stored,
        Err(e) => return Ok(Err(e)),
    };
    if check {
        let live = stored.as_ref().filter(|head| head.is_live(now));
        if !put.condition.holds_for(live.map(|head| &head.nums)) {
            return Ok(Err(StoreError::Conflict));
        }
    }
    let old_gsi1 = stored.and_then(|head| head.gsi1);
    write_item(txn, &pk, &put.key, put.gsi1.as_ref(), &put.value, old_gsi1)
        .map_err(DbError::apply)?;
    Ok(Ok(()))
}

/// Stores an encoded item at `pk`, replacing what was there, and moves its index entry from
/// `old_gsi1` (the replaced item's, expired or not) to `gsi1` — untouched when they are equal:
/// the entry (index key → primary key) would be written back unchanged.
fn write_item(
    txn: &mut Tables<'_>,
    pk: &[u8],
    key: &Key,
    gsi1: Option<&Key>,
    value: &[u8],
    old_gsi1: Option<Key>,
) -> Result<(), StoreError> {
    txn.items.insert(pk, value).map_err(engine)?;
    if old_gsi1.as_ref() != gsi1 {
        if let Some(old) = &old_gsi1 {
            txn.gsi1
                .remove(gsi_key(old, key).as_slice())
                .map_err(engine)?;
        }
        if let Some(g) = gsi1 {
            txn.gsi1
                .insert(gsi_key(g, key).as_slice(), pk)
                .map_err(engine)?;
        }
    }
    Ok(())
}

/// The whole item stored at `pk`, expired or not.
fn stored_item(txn: &Tables<'_>, pk: &[u8]) -> Result<Option<Item>, StoreError> {
    match txn.items.get(pk).map_err(engine)? {
        Some(v) => decode_item(v.value()),
        None => Ok(None),
    }
}

/// What a write needs of the item stored at `pk` (expired or not), read without building its
/// document.
fn stored_head(txn: &Tables<'_>, pk: &[u8]) -> Result<Option<StoredHead>, StoreError> {
    match txn.items.get(pk).map_err(engine)? {
        Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(engine),
        None => Ok(None),
    }
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

/// What a write needs of the item it replaces or checks — its index key, expiry and integer
/// attributes — read without building the rest of it (its document is skipped, not decoded).
#[derive(Deserialize)]
struct StoredHead {
    gsi1: Option<Key>,
    ttl: Option<i64>,
    #[serde(default)]
    nums: BTreeMap<String, i64>,
}

impl StoredHead {
    fn is_live(&self, now_epoch: i64) -> bool {
        self.ttl.is_none_or(|t| t > now_epoch)
    }
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

        // Run a group by hand: all of it is applied in one transaction.
        let mut jobs = Vec::new();
        let mut replies = Vec::new();
        let mut send = |op: WriteOp| {
            let (job, answer) = write_job(Write::One(op));
            jobs.push(job);
            replies.push(answer);
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
        }); // overflows: refused, as an engine error of its own
        send(put("B"));
        crate::embedded::run_group(
            store.db().database(),
            jobs,
            None,
            &mut crate::embedded::Sessions::default(),
        );

        let mut outcomes = Vec::new();
        for done in replies {
            outcomes.push(done.await.expect("answered").expect("the group committed"));
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
