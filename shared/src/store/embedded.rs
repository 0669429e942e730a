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
//! Every write is one redb write transaction committed with redb's default durability
//! (`Immediate`: fsync before `commit` returns), so a committed write survives `kill -9` and power
//! loss. Conditions are checked inside the write transaction, and redb allows one write
//! transaction at a time, so condition + write is atomic and `transact` is all or nothing.
//!
//! redb is synchronous. Writes run on `tokio::task::spawn_blocking`: a commit waits for the
//! single writer and for fsync, which must not stall the async workers. Reads (`get`, `query`)
//! run inline: a read transaction never waits for writers (MVCC) and is bounded (one item, or at
//! most 1000 items of one page), so it is cheaper than a hop to the blocking pool.
//!
//! Throughput of durable writes is bounded by fsyncs, one per commit. Group commit — batching
//! concurrent writes into one write transaction and one fsync — is the next step when delivery
//! volume needs it; the port does not change for it.
//!
//! Expired items (`ttl <= now`) are not removed by a background sweep: reads skip them,
//! conditions see them as absent, and a later write replaces them.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

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

/// The embedded engine. Cheap to clone; clones share one database.
#[derive(Debug, Clone)]
pub struct Embedded {
    db: Arc<Database>,
}

impl Embedded {
    /// Opens the database file at `path`, creating it if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(engine)?;
        Self::from_database(Arc::new(db))
    }

    /// A database in memory, for tests of code that uses a store.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder().create_with_backend(InMemoryBackend::new()).map_err(engine)?;
        Self::from_database(Arc::new(db))
    }

    /// Uses an open database (shared with other embedded engines, e.g. the queue), creating the
    /// store's tables if absent.
    pub fn from_database(db: Arc<Database>) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(engine)?;
        txn.open_table(ITEMS).map_err(engine)?;
        txn.open_table(GSI1).map_err(engine)?;
        txn.commit().map_err(engine)?;
        Ok(Self { db })
    }

    /// The underlying database, to share it with other embedded engines.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Runs `f` in one write transaction on the blocking pool; commits if it returns `Ok`,
    /// drops (rolls back) the transaction otherwise.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(engine)?;
            let out = {
                let mut tables = Tables {
                    items: txn.open_table(ITEMS).map_err(engine)?,
                    gsi1: txn.open_table(GSI1).map_err(engine)?,
                };
                f(&mut tables, now_epoch())?
            };
            txn.commit().map_err(engine)?;
            Ok(out)
        })
        .await
        .map_err(engine)?
    }
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

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        validate_item(&item)?;
        self.write(move |txn, now| apply(txn, now, WriteOp::Put { item, condition }).map(drop)).await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let op = WriteOp::Delete { key: key.clone(), condition };
        validate_write(&op)?;
        self.write(move |txn, now| apply(txn, now, op).map(drop)).await
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
        self.write(move |txn, now| apply(txn, now, op)).await.map(Option::unwrap_or_default)
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        let after = validate_query(&query)?;
        let now = now_epoch();
        let (lo, hi) = key_range(&query, after.as_ref());
        let mut page = Page { items: Vec::with_capacity(query.limit.min(64)), next: None };
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
        self.write(move |txn, now| {
            // Every condition is checked against the state before the transaction, as in
            // DynamoDB; keys are distinct, so checking all first then writing all is the same.
            for op in &ops {
                let (key, condition) = match op {
                    WriteOp::Put { item, condition } => (&item.key, condition),
                    WriteOp::Delete { key, condition }
                    | WriteOp::Add { key, condition, .. }
                    | WriteOp::Check { key, condition } => (key, condition),
                };
                let live = live_item(txn, now, key)?;
                if !condition.holds(live.as_ref()) {
                    return Err(StoreError::Conflict);
                }
            }
            for op in ops {
                let op = match op {
                    WriteOp::Put { item, .. } => WriteOp::Put { item, condition: Condition::None },
                    WriteOp::Delete { key, .. } => WriteOp::Delete { key, condition: Condition::None },
                    WriteOp::Add { key, entity_type, deltas, .. } => {
                        WriteOp::Add { key, entity_type, deltas, condition: Condition::None }
                    }
                    WriteOp::Check { .. } => continue,
                };
                apply(txn, now, op)?;
            }
            Ok(())
        })
        .await
    }
}

/// Applies one write inside `txn` if its condition holds; an `Add` returns the item's integers
/// after the add.
fn apply(txn: &mut Tables<'_>, now: i64, op: WriteOp) -> Result<Option<BTreeMap<String, i64>>, StoreError> {
    let live = live_item(txn, now, op.key())?;
    match op {
        WriteOp::Check { condition, .. } => {
            if !condition.holds(live.as_ref()) {
                return Err(StoreError::Conflict);
            }
            Ok(None)
        }
        WriteOp::Put { item, condition } => {
            if !condition.holds(live.as_ref()) {
                return Err(StoreError::Conflict);
            }
            store_item(txn, &item)?;
            Ok(None)
        }
        WriteOp::Delete { key, condition } => {
            if !condition.holds(live.as_ref()) {
                return Err(StoreError::Conflict);
            }
            remove_item(txn, &key)?;
            Ok(None)
        }
        WriteOp::Add { key, entity_type, deltas, condition } => {
            if !condition.holds(live.as_ref()) {
                return Err(StoreError::Conflict);
            }
            let mut item = live.unwrap_or_else(|| Item::new(key, entity_type, serde_json::Value::Null));
            for (name, delta) in deltas {
                let n = item.nums.entry(name).or_insert(0);
                *n = n
                    .checked_add(delta)
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
    txn.items.insert(pk.as_slice(), value.as_slice()).map_err(engine)?;
    if let Some(g) = &item.gsi1 {
        let gk = gsi_key(g, &item.key);
        txn.gsi1.insert(gk.as_slice(), pk.as_slice()).map_err(engine)?;
    }
    Ok(())
}

/// Removes the item at `key` (expired or not) and its index entry.
fn remove_item(txn: &mut Tables<'_>, key: &Key) -> Result<(), StoreError> {
    let old = match txn.items.remove(primary_key(key).as_slice()).map_err(engine)? {
        Some(v) => decode_item(v.value())?,
        None => None,
    };
    if let Some(g) = old.and_then(|o| o.gsi1) {
        txn.gsi1.remove(gsi_key(&g, key).as_slice()).map_err(engine)?;
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
        let Some(item) = unwrap(v)?.filter(|i| !i.is_expired(now)) else { continue };
        if page.items.len() == query.limit {
            page.next = page.items.last().map(|last| Cursor::after(last, query.index));
            break;
        }
        page.items.push(item);
    }
    Ok(())
}

/// The byte range of the table a query reads: its partition, narrowed to its sort-key range,
/// narrowed past the cursor in the query's direction.
fn key_range(query: &Query, after: Option<&(Key, Option<Key>)>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut partition = Vec::with_capacity(query.partition.len() + 2);
    push_component(&mut partition, &query.partition);
    let with = |sk: &str| {
        let mut k = partition.clone();
        push_escaped(&mut k, sk);
        k
    };
    let (mut lo, mut hi) = match &query.range {
        SortKeyRange::All => (Bound::Included(partition.clone()), Bound::Excluded(prefix_end(partition.clone()))),
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
