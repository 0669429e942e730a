//! The per-org ingest bucket in the store: the state of [`IngestLimit`] shared by every API
//! instance (on AWS many run at once). One item per org holding the GCRA theoretical arrival
//! time; a request reads it and makes one conditional write (`tat` unchanged since the read),
//! whatever the number of events it posts. A refused request writes nothing.

use chrono::{DateTime, Utc};
use herald_core::admission::{IngestLimit, IngestRefusal};
use herald_core::domain::OrgId;

use super::RepoError;
use crate::store::keys::{self, INGEST_TAT_ATTR, entity};
use crate::store::{Condition, Item, Store, StoreError};

/// Reads and conditional writes one request may make before it gives up: only requests of the
/// same org racing each other conflict, and each conflict means another request was admitted.
const MAX_TRIES: usize = 16;

/// An org's ingest buckets.
#[derive(Debug, Clone, Copy)]
pub struct IngestBuckets<'a> {
    store: &'a dyn Store,
}

impl<'a> IngestBuckets<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Takes `events` from `org`'s bucket at `now` under `limit`: `Ok(Ok(()))` when admitted
    /// (and recorded), `Ok(Err(why))` when refused (nothing recorded). [`RepoError::Contended`]
    /// when concurrent requests of the org kept winning the race.
    pub async fn take(
        &self,
        org: OrgId,
        limit: &IngestLimit,
        events: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<(), IngestRefusal>, RepoError> {
        let key = keys::ingest_bucket(org);
        let now_us = now.timestamp_micros();
        for _ in 0..MAX_TRIES {
            let tat = self
                .store
                .get(&key)
                .await?
                .and_then(|item| item.nums.get(INGEST_TAT_ATTR).copied());
            let new_tat = match limit.admit(tat, now_us, events) {
                Ok(t) => t,
                Err(refused) => return Ok(Err(refused)),
            };
            let condition = match tat {
                Some(value) => Condition::NumEquals {
                    attr: INGEST_TAT_ATTR.to_owned(),
                    value,
                },
                None => Condition::NotExists,
            };
            // Once `tat` has passed, the bucket is full again: the item may go (TTL), and an
            // absent item means a full bucket.
            let expires = new_tat.div_euclid(1_000_000) + 60;
            let mut item = Item::new(key.clone(), entity::INGEST_BUCKET, serde_json::json!({}))
                .with_ttl(expires);
            item.nums.insert(INGEST_TAT_ATTR.to_owned(), new_tat);
            match self.store.put(item, condition).await {
                Ok(()) => return Ok(Ok(())),
                // `tat` only grows, so an unchanged value means no admission came between.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Contended)
    }
}
