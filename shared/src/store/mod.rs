//! The storage port: one single-table contract (DynamoDB's shape) with two engines —
//! [`dynamodb`] for AWS and [`embedded`] for `herald serve`. Both pass the same contract suite.
//!
//! Items have a primary key (`PK`, `SK`), an optional secondary index key (`GSI1PK`, `GSI1SK`),
//! an `entityType`, an optional `ttl` (epoch seconds; reads filter out expired items themselves,
//! since neither the emulator nor the embedded engine expires them on time), a JSON document, and
//! named integer attributes that atomic counters add to.

pub mod keys;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "contract-tests")]
pub mod contract;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: Key,
    /// `GSI1PK`/`GSI1SK`, when the item is in the secondary index.
    pub gsi1: Option<Key>,
    pub entity_type: String,
    /// Expiry, epoch seconds. Expired items are invisible to every read.
    pub ttl: Option<i64>,
    /// The entity itself.
    pub doc: serde_json::Value,
    /// Integer attributes: counters (atomic `ADD`) and numbers conditions compare.
    pub nums: BTreeMap<String, i64>,
}

impl Item {
    pub fn new(key: Key, entity_type: impl Into<String>, doc: serde_json::Value) -> Self {
        Self { key, gsi1: None, entity_type: entity_type.into(), ttl: None, doc, nums: BTreeMap::new() }
    }

    pub fn with_gsi1(mut self, gsi1: Key) -> Self {
        self.gsi1 = Some(gsi1);
        self
    }

    pub fn with_ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub fn is_expired(&self, now_epoch: i64) -> bool {
        self.ttl.is_some_and(|t| t <= now_epoch)
    }
}

/// A condition a write must meet, checked atomically with it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Condition {
    #[default]
    None,
    /// The item must not exist (or be expired): conditional create.
    NotExists,
    /// The item must exist (and not be expired).
    Exists,
    /// The item's integer attribute, absent counting as 0, must be below the bound.
    /// What a frequency cap needs: `ADD n 1` only while `n < perUser`.
    NumLessThan { attr: String, bound: i64 },
    /// The item's integer attribute must equal the value (optimistic concurrency on a `version`).
    NumEquals { attr: String, value: i64 },
}

/// Which index a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Index {
    #[default]
    Primary,
    Gsi1,
}

/// Which sort keys of the partition a query returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortKeyRange {
    #[default]
    All,
    BeginsWith(String),
    /// Inclusive on both ends, as DynamoDB's `BETWEEN`.
    Between(String, String),
}

/// A query of one partition, in sort-key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    pub range: SortKeyRange,
    /// Descending sort-key order (newest first, for time-ordered keys).
    pub descending: bool,
    /// At most this many items (1..=1000).
    pub limit: usize,
    /// Where a previous page stopped.
    pub cursor: Option<Cursor>,
}

/// One page of a query: items and, when more may follow, where to go on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Cursor>,
}

/// An opaque pagination cursor: the last key returned, encoded URL-safe. The same encoding on
/// both engines, so a cursor survives a change of engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor after `item` on `index`.
    pub fn after(item: &Item, index: Index) -> Self {
        use base64::Engine as _;
        let mut parts = vec![item.key.pk.as_str(), item.key.sk.as_str()];
        if let (Index::Gsi1, Some(g)) = (index, &item.gsi1) {
            parts.push(g.pk.as_str());
            parts.push(g.sk.as_str());
        }
        let json = serde_json::to_vec(&parts).unwrap_or_default();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    /// A cursor from a client. Refuses anything this module did not produce.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let _ = Self::decode_str(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The last key returned: primary key, and the index key for GSI1 queries.
    pub fn decode(&self) -> Result<(Key, Option<Key>), StoreError> {
        Self::decode_str(&self.0)
    }

    fn decode_str(s: &str) -> Result<(Key, Option<Key>), StoreError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| StoreError::BadCursor)?;
        let parts: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
        match parts.as_slice() {
            [pk, sk] => Ok((Key::new(pk, sk), None)),
            [pk, sk, gpk, gsk] => Ok((Key::new(pk, sk), Some(Key::new(gpk, gsk)))),
            _ => Err(StoreError::BadCursor),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put { item: Item, condition: Condition },
    Delete { key: Key, condition: Condition },
    /// Adds to integer attributes, creating the item (with `entity_type`) if absent.
    Add { key: Key, entity_type: String, deltas: BTreeMap<String, i64>, condition: Condition },
    /// Checks a condition on an item without writing it.
    Check { key: Key, condition: Condition },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write's condition did not hold (DynamoDB `ConditionalCheckFailed`, or a transaction
    /// cancelled for that reason).
    #[error("condition failed")]
    Conflict,
    #[error("invalid pagination cursor")]
    BadCursor,
    /// The engine failed: I/O, network, throttling, corruption. Not the caller's fault.
    #[error("storage engine error: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn engine(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Engine(Box::new(e))
    }
}

/// The storage capability every function and the local server use.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError>;
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError>;
    /// Atomically adds `deltas` to integer attributes (creating the item, typed `entity_type`,
    /// when absent) if `condition` holds; returns the item's integer attributes after the add.
    async fn add(
        &self,
        key: &Key,
        entity_type: &str,
        deltas: &BTreeMap<String, i64>,
        condition: Condition,
    ) -> Result<BTreeMap<String, i64>, StoreError>;
    async fn query(&self, query: Query) -> Result<Page, StoreError>;
    /// All writes or none (at most 100, DynamoDB's limit; one write per key).
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
}
