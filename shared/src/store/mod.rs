//! The storage port: one single-table contract (DynamoDB's shape) with two engines —
//! [`dynamodb`] for AWS and [`embedded`] for `herald serve`. Both pass the same contract suite.
//!
//! Items have a primary key (`PK`, `SK`), an optional secondary index key (`GSI1PK`, `GSI1SK`),
//! an `entityType`, an optional `ttl` (epoch seconds; reads filter out expired items themselves,
//! since neither the emulator nor the embedded engine expires them on time), a JSON document, and
//! named integer attributes that atomic counters add to.

pub mod keys;

#[cfg(feature = "contract-tests")]
pub mod contract;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// An item's document: the entity as JSON text, as it was encoded.
///
/// A repository encodes its entity straight to text and decodes it straight from text; nothing
/// on the way builds a [`serde_json::Value`] tree (that round trip was 8 % of `herald serve`'s
/// CPU samples; without it CPU per delivery fell by 14 %, docs/benchmarks.md). Both engines
/// store the text as it is.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Doc(Box<RawValue>);

impl Doc {
    /// `value` as a document.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The document as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// A document from stored text; refuses text that is not JSON.
    pub fn from_json(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// The document as a JSON tree, for callers that inspect it field by field.
    pub fn to_value(&self) -> serde_json::Value {
        self.decode().unwrap_or(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for Doc {
    fn from(value: serde_json::Value) -> Self {
        // A `Value` always serializes (its map keys are strings); `null` is unreachable.
        Self(serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }
}

/// Documents are equal when they hold the same JSON, whatever its spacing or key order.
impl PartialEq for Doc {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json() || self.to_value() == other.to_value()
    }
}

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_json())
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
    pub doc: Doc,
    /// Integer attributes: counters (atomic `ADD`) and numbers conditions compare.
    pub nums: BTreeMap<String, i64>,
}

impl Item {
    pub fn new(key: Key, entity_type: impl Into<String>, doc: impl Into<Doc>) -> Self {
        Self {
            key,
            gsi1: None,
            entity_type: entity_type.into(),
            ttl: None,
            doc: doc.into(),
            nums: BTreeMap::new(),
        }
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
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| StoreError::BadCursor)?;
        let parts: Vec<String> =
            serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
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
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Adds to integer attributes, creating the item (with `entity_type`) if absent.
    Add {
        key: Key,
        entity_type: String,
        deltas: BTreeMap<String, i64>,
        condition: Condition,
    },
    /// Checks a condition on an item without writing it.
    Check {
        key: Key,
        condition: Condition,
    },
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

    fn invalid(reason: impl Into<String>) -> Self {
        Self::engine(InvalidRequest(reason.into()))
    }
}

/// A request both engines refuse before touching storage, because DynamoDB would: an empty key
/// attribute, a reserved attribute name in `nums`, a query limit outside 1..=1000, a transaction
/// of more than 100 writes or with two writes to one key. Reported as [`StoreError::Engine`]: it
/// is a bug in the caller, not something a user can fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid store request: {0}")]
pub struct InvalidRequest(pub String);

/// Attribute names the single-table layout uses itself; `Item::nums` may not use them.
pub const RESERVED_ATTRIBUTES: [&str; 7] =
    ["PK", "SK", "GSI1PK", "GSI1SK", "entityType", "ttl", "doc"];

/// DynamoDB's limit on the writes of one transaction.
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// DynamoDB's limit on the items of one page, and so the port's.
pub const MAX_QUERY_LIMIT: usize = 1000;

/// Now, epoch seconds: what `ttl` is compared with.
pub(crate) fn now_epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

fn validate_key(key: &Key) -> Result<(), StoreError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(StoreError::invalid("key attributes must not be empty"));
    }
    Ok(())
}

fn validate_nums<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<(), StoreError> {
    for name in names {
        if name.is_empty() || RESERVED_ATTRIBUTES.contains(&name.as_str()) {
            return Err(StoreError::invalid(format!(
                "`{name}` cannot name an integer attribute"
            )));
        }
    }
    Ok(())
}

pub(crate) fn validate_condition(condition: &Condition) -> Result<(), StoreError> {
    match condition {
        Condition::NumLessThan { attr, .. } | Condition::NumEquals { attr, .. } => {
            validate_nums(std::iter::once(attr))
        }
        Condition::None | Condition::NotExists | Condition::Exists => Ok(()),
    }
}

pub(crate) fn validate_item(item: &Item) -> Result<(), StoreError> {
    validate_key(&item.key)?;
    if let Some(g) = &item.gsi1 {
        validate_key(g)?;
    }
    validate_nums(item.nums.keys())
}

pub(crate) fn validate_write(op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::Put { item, condition } => {
            validate_item(item)?;
            validate_condition(condition)
        }
        WriteOp::Delete { key, condition } | WriteOp::Check { key, condition } => {
            validate_key(key)?;
            validate_condition(condition)
        }
        WriteOp::Add {
            key,
            deltas,
            condition,
            ..
        } => {
            validate_key(key)?;
            validate_nums(deltas.keys())?;
            validate_condition(condition)
        }
    }
}

pub(crate) fn validate_transaction(ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::invalid(
            "a transaction holds at most 100 writes",
        ));
    }
    let mut keys = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        validate_write(op)?;
        if !keys.insert(op.key()) {
            return Err(StoreError::invalid(
                "a transaction writes each key at most once",
            ));
        }
    }
    Ok(())
}

/// The query's partition and, for a cursor, its last key — refused unless they belong to this
/// query (same index, same partition).
pub(crate) fn validate_query(query: &Query) -> Result<Option<(Key, Option<Key>)>, StoreError> {
    if query.limit == 0 || query.limit > MAX_QUERY_LIMIT {
        return Err(StoreError::invalid("a query limit is 1..=1000"));
    }
    if query.partition.is_empty() {
        return Err(StoreError::invalid("a query partition must not be empty"));
    }
    if let SortKeyRange::Between(a, b) = &query.range
        && a > b
    {
        return Err(StoreError::invalid("BETWEEN bounds must be in order"));
    }
    let Some(cursor) = &query.cursor else {
        return Ok(None);
    };
    let (key, gsi) = cursor.decode()?;
    let fits = match (query.index, &gsi) {
        (Index::Primary, None) => key.pk == query.partition,
        (Index::Gsi1, Some(g)) => g.pk == query.partition,
        _ => false,
    };
    if !fits {
        return Err(StoreError::BadCursor);
    }
    Ok(Some((key, gsi)))
}

impl WriteOp {
    /// The key this write touches.
    pub fn key(&self) -> &Key {
        match self {
            WriteOp::Put { item, .. } => &item.key,
            WriteOp::Delete { key, .. } | WriteOp::Add { key, .. } | WriteOp::Check { key, .. } => {
                key
            }
        }
    }
}

impl Condition {
    /// Whether the condition holds for `live`, the item as it stands (`None` when absent or
    /// expired). The embedded engine's evaluation; the DynamoDB engine states the same in a
    /// `ConditionExpression`.
    pub fn holds(&self, live: Option<&Item>) -> bool {
        self.holds_for(live.map(|item| &item.nums))
    }

    /// [`holds`](Self::holds), given only the live item's integer attributes (`None`: absent or
    /// expired) — all a condition looks at.
    pub fn holds_for(&self, live_nums: Option<&BTreeMap<String, i64>>) -> bool {
        match self {
            Condition::None => true,
            Condition::NotExists => live_nums.is_none(),
            Condition::Exists => live_nums.is_some(),
            Condition::NumLessThan { attr, bound } => {
                live_nums.and_then(|n| n.get(attr)).copied().unwrap_or(0) < *bound
            }
            Condition::NumEquals { attr, value } => {
                live_nums.and_then(|n| n.get(attr)) == Some(value)
            }
        }
    }
}

/// The storage capability every function and the local server use.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    /// The items at `keys`, in the order of `keys`: `None` where absent or expired. Strongly
    /// consistent, like `get`; any number of keys (DynamoDB reads them 100 at a time).
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            items.push(self.get(key).await?);
        }
        Ok(items)
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError>;
    /// Puts each item if its condition holds, one after the other in this order, stopping at
    /// the first that fails: the puts before it stay written, it and those after it are not
    /// (not atomic — that is [`transact`](Self::transact)). For writes that belong together but
    /// need no transaction (an event record and its index item): the embedded engine applies
    /// them as one operation of its writer, DynamoDB as separate `PutItem`s (this default).
    async fn put_all(&self, puts: Vec<(Item, Condition)>) -> Result<(), StoreError> {
        for (item, condition) in puts {
            self.put(item, condition).await?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entity {
        name: String,
        attempt_count: u32,
    }

    #[test]
    fn a_doc_decodes_to_what_was_encoded_and_holds_its_text() {
        let entity = Entity {
            name: "disk \"full\"".into(),
            attempt_count: 3,
        };
        let doc = Doc::encode(&entity).expect("encodes");
        assert_eq!(
            doc.as_json(),
            r#"{"name":"disk \"full\"","attemptCount":3}"#
        );
        assert_eq!(doc.decode::<Entity>().expect("decodes"), entity);
    }

    #[test]
    fn an_item_stores_its_doc_as_json_within_its_own_json() {
        let item = Item::new(Key::new("P", "S"), "T", json!({"a": [1, 2]}));
        let bytes = serde_json::to_vec(&item).expect("encodes");
        let stored: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(
            stored["doc"],
            json!({"a": [1, 2]}),
            "an object, not a string"
        );
        let back: Item = serde_json::from_slice(&bytes).expect("decodes");
        assert_eq!(back, item);
    }

    #[test]
    fn docs_are_equal_when_their_json_is_whatever_the_spacing_or_key_order() {
        let spaced = Doc::from_json(r#"{ "b": 1, "a": [true] }"#.into()).expect("JSON");
        assert_eq!(spaced, Doc::from(json!({"a": [true], "b": 1})));
        assert_ne!(spaced, Doc::from(json!({"a": [false], "b": 1})));
    }

    #[test]
    fn stored_text_that_is_not_json_is_refused() {
        assert!(Doc::from_json("{\"a\":".into()).is_err());
        assert!(Doc::from_json("not json".into()).is_err());
    }
}
