//! A store that lets a test watch, slow down or refuse the calls made of another: one
//! pass-through [`Store`] for every test that needs one, instead of one wrapper per test.
//!
//! A test writes a [`Watch`] (usually a few counters and a `match` on the [`Call`]s it cares
//! about) and wraps the real store in [`Watched`]. Every call reaches the watch first, then the
//! inner store unchanged — all eight of the trait's methods, so `get_many` and `put_all` keep the
//! engine's own behaviour rather than the trait's one-by-one defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use herald_shared::store::{Condition, Item, Key, Page, Query, Store, StoreError, WriteOp};

/// One call made of the store, as the watch sees it before the store does.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    Get(&'a Key),
    GetMany(&'a [Key]),
    Put(&'a Item, &'a Condition),
    PutAll(&'a [(Item, Condition)]),
    Delete(&'a Key, &'a Condition),
    Add {
        key: &'a Key,
        entity_type: &'a str,
        deltas: &'a BTreeMap<String, i64>,
    },
    Query(&'a Query),
    Transact(&'a [WriteOp]),
}

impl Call<'_> {
    /// How many items the call reads: one per key of a `get`/`get_many`, one per query.
    pub fn reads(&self) -> usize {
        match self {
            Self::Get(_) | Self::Query(_) => 1,
            Self::GetMany(keys) => keys.len(),
            _ => 0,
        }
    }

    /// How many items the call writes: one per put, delete, add and transaction operation.
    pub fn writes(&self) -> usize {
        match self {
            Self::Put(..) | Self::Delete(..) | Self::Add { .. } => 1,
            Self::PutAll(puts) => puts.len(),
            Self::Transact(ops) => ops.len(),
            Self::Get(_) | Self::GetMany(_) | Self::Query(_) => 0,
        }
    }

    /// The keys the call reads by key (`get`, `get_many`).
    pub fn keys_read(&self) -> &[Key] {
        match self {
            Self::Get(key) => std::slice::from_ref(*key),
            Self::GetMany(keys) => keys,
            _ => &[],
        }
    }

    /// The items the call puts (`put`, `put_all`, and the puts of a transaction).
    pub fn items_put(&self) -> Vec<&Item> {
        match self {
            Self::Put(item, _) => vec![*item],
            Self::PutAll(puts) => puts.iter().map(|(item, _)| item).collect(),
            Self::Transact(ops) => ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Put { item, .. } => Some(item),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What a test does with each call before the store sees it.
#[async_trait]
pub trait Watch: Send + Sync + fmt::Debug {
    /// Sees `call` first. An `Err` answers the caller instead of the store (nothing is written);
    /// a watch may also wait here (a slow store).
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError>;
}

/// `inner`, with every call shown to `watch` first.
#[derive(Debug)]
pub struct Watched<W> {
    inner: Arc<dyn Store>,
    /// The test's watch, to read what it saw.
    pub watch: W,
}

impl<W: Watch> Watched<W> {
    pub fn new(inner: Arc<dyn Store>, watch: W) -> Arc<Self> {
        Arc::new(Self { inner, watch })
    }
}

#[async_trait]
impl<W: Watch> Store for Watched<W> {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.watch.before(Call::Get(key)).await?;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.watch.before(Call::GetMany(keys)).await?;
        self.inner.get_many(keys).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.watch.before(Call::Put(&item, &condition)).await?;
        self.inner.put(item, condition).await
    }
    async fn put_all(&self, puts: Vec<(Item, Condition)>) -> Result<(), StoreError> {
        self.watch.before(Call::PutAll(&puts)).await?;
        self.inner.put_all(puts).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.watch.before(Call::Delete(key, &condition)).await?;
        self.inner.delete(key, condition).await
    }
    async fn add(
        &self,
        key: &Key,
        entity_type: &str,
        deltas: &BTreeMap<String, i64>,
        condition: Condition,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let call = Call::Add {
            key,
            entity_type,
            deltas,
        };
        self.watch.before(call).await?;
        self.inner.add(key, entity_type, deltas, condition).await
    }
    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.watch.before(Call::Query(&query)).await?;
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.watch.before(Call::Transact(&ops)).await?;
        self.inner.transact(ops).await
    }
}
