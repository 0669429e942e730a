//! Typed repositories over the [`Store`](crate::store::Store) port: domain values in, single-table
//! items out. Written once; every engine serves them.
//!
//! Each repository borrows a `&dyn Store` and is cheap to build per request. Keys come from
//! [`crate::store::keys`]; the layout is documented in `docs/dynamodb.md`.

pub mod admission;
pub mod alerts;
pub mod api_keys;
pub mod channels;
pub mod connections;
pub mod deliveries;
pub mod digests;
pub mod events;
pub mod feeds;
pub mod groups;
pub mod idempotency;
pub mod lanes;
pub mod orgs;
pub mod outbox;
pub mod recoveries;
pub mod resend;
pub mod rules;
pub mod silences;
pub mod stats;
pub mod suppressions;
pub mod unsubscribes;
pub mod users;

pub use admission::IngestBuckets;
pub use api_keys::ApiKeys;
pub use channels::Channels;
pub use feeds::Feeds;
pub use orgs::Orgs;
pub use rules::Rules;

use serde::de::DeserializeOwned;

use crate::store::{Cursor, Doc, Item, Query, SortKeyRange, Store, StoreError};
use herald_core::domain::{ChannelId, RuleKey};

/// The largest page a list returns.
pub const MAX_PAGE: usize = 100;
/// The page size when the caller names none.
pub const DEFAULT_PAGE: usize = 50;

/// What a repository operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("not found")]
    NotFound,
    /// A create whose key is taken (a rule key, an API key hash).
    #[error("already exists")]
    AlreadyExists,
    /// A channel cannot be deleted while these rules reference it.
    #[error("channel is referenced by rules: {}", join(.0))]
    ChannelInUse(Vec<RuleKey>),
    /// A rule names a channel the org does not have.
    #[error("unknown channel {0}")]
    UnknownChannel(ChannelId),
    #[error("invalid pagination cursor")]
    BadCursor,
    /// The org's rules version is no longer the one the caller expected: its rules changed
    /// (rule set apply). Nothing was written.
    #[error("the rules changed: version {current}, expected {expected}")]
    RulesChanged { expected: i64, current: i64 },
    /// More writes than one transaction holds.
    #[error("{writes} writes, at most {max} in one transaction")]
    TooLarge { writes: usize, max: usize },
    /// Concurrent writes kept a multi-item change from committing; the caller may retry.
    #[error("concurrent change, retry")]
    Contended,
    /// A stored item that does not decode: a bug or a manual edit, never the caller's fault.
    #[error("stored {entity} item does not decode")]
    Corrupt {
        entity: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RepoError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => Self::BadCursor,
            e => Self::Store(e),
        }
    }
}

impl RepoError {
    /// For callers that speak [`StoreError`] (the pipeline): storage errors as they were, the
    /// rest as engine errors keeping this one as the source.
    pub fn into_store(self) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::BadCursor => StoreError::BadCursor,
            e => StoreError::engine(e),
        }
    }
}

fn join(keys: &[RuleKey]) -> String {
    keys.iter()
        .map(RuleKey::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One page of a list, in key order, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

pub(crate) fn decode<T: DeserializeOwned>(
    item: Item,
    entity: &'static str,
) -> Result<T, RepoError> {
    item.doc
        .decode()
        .map_err(|source| RepoError::Corrupt { entity, source })
}

pub(crate) fn encode<T: serde::Serialize>(
    value: &T,
    entity: &'static str,
) -> Result<Doc, RepoError> {
    Doc::encode(value).map_err(|source| RepoError::Corrupt { entity, source })
}

/// Lists the items of `partition` whose sort key starts with `prefix`.
///
/// A cursor is checked against the partition and prefix: a cursor from another list (or another
/// org) is a [`RepoError::BadCursor`], never a read outside the list.
pub(crate) async fn list_prefix<T: DeserializeOwned>(
    store: &dyn Store,
    partition: String,
    prefix: &str,
    limit: usize,
    cursor: Option<Cursor>,
    entity: &'static str,
) -> Result<Page<T>, RepoError> {
    if let Some(c) = &cursor {
        let (key, _) = c.decode()?;
        if key.pk != partition || !key.sk.starts_with(prefix) {
            return Err(RepoError::BadCursor);
        }
    }
    let page = store
        .query(Query {
            partition,
            range: SortKeyRange::BeginsWith(prefix.to_owned()),
            limit: limit.clamp(1, MAX_PAGE),
            cursor,
            ..Query::default()
        })
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|i| decode(i, entity))
        .collect::<Result<Vec<T>, _>>()?;
    Ok(Page {
        items,
        next: page.next,
    })
}

/// Every item of `partition` whose sort key starts with `prefix`, all pages.
pub(crate) async fn list_all<T: DeserializeOwned>(
    store: &dyn Store,
    partition: String,
    prefix: &str,
    entity: &'static str,
) -> Result<Vec<T>, RepoError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = list_prefix(store, partition.clone(), prefix, MAX_PAGE, cursor, entity).await?;
        all.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}
