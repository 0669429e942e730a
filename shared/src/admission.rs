//! Admission control of `POST /events`, as ports the API holds: an org's ingest limit
//! ([`IngestLimiter`]) and its backlog ([`Backlog`]). Beyond either the API answers 429 with
//! `Retry-After` rather than accept events it would deliver hours late; a batch is admitted or
//! refused whole. The arithmetic is `herald_core::admission`.
//!
//! Two limiters, one rule: [`MemoryLimiter`] keeps the buckets in the process (`herald serve`,
//! one process: a store write per request would cost a durable commit for nothing), and
//! [`StoreLimiter`] keeps them in the store, where every API instance on Lambda sees them (one
//! conditional write per admitted request, [`crate::repo::IngestBuckets`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::admission::{IngestLimit, IngestRefusal};
use herald_core::domain::OrgId;

use crate::repo::{IngestBuckets, RepoError};
use crate::store::Store;

/// Why the admission state could not be read or written: not the producer's fault.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The ingest bucket in the store.
    #[error("ingest limit state: {0}")]
    Repo(#[from] RepoError),
    /// The queue engine counting an org's backlog.
    #[error("backlog depth: {0}")]
    Backlog(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An org's ingest limit: takes a request's events from the org's bucket, or says why not.
#[async_trait]
pub trait IngestLimiter: Send + Sync + std::fmt::Debug {
    /// The limit every org gets.
    fn limit(&self) -> IngestLimit;
    /// Takes `events` from `org`'s bucket at `now`: `Ok(Ok(()))` admitted, `Ok(Err(why))`
    /// refused, with nothing taken.
    async fn take(
        &self,
        org: OrgId,
        events: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<(), IngestRefusal>, AdmissionError>;
}

/// How many messages are queued for an org, all pipeline queues together.
#[async_trait]
pub trait Backlog: Send + Sync + std::fmt::Debug {
    async fn depth(&self, org: OrgId) -> Result<u64, AdmissionError>;
}

/// A bound on an org's backlog: beyond `max` queued messages, its new events are refused.
#[derive(Debug, Clone)]
pub struct BacklogBound {
    pub backlog: Arc<dyn Backlog>,
    pub max: u64,
}

/// What `POST /events` checks before it publishes: nothing unless the deployment sets it.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub ingest: Option<Arc<dyn IngestLimiter>>,
    pub backlog: Option<BacklogBound>,
}

/// Buckets held in memory, for one process (`herald serve`).
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: IngestLimit,
    /// Theoretical arrival time per org, Unix µs.
    buckets: Mutex<HashMap<OrgId, i64>>,
}

/// Orgs tracked before full buckets (a `tat` in the past) are forgotten.
const MEMORY_PRUNE_AT: usize = 10_000;

impl MemoryLimiter {
    pub fn new(limit: IngestLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }
}

#[async_trait]
impl IngestLimiter for MemoryLimiter {
    fn limit(&self) -> IngestLimit {
        self.limit
    }

    async fn take(
        &self,
        org: OrgId,
        events: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<(), IngestRefusal>, AdmissionError> {
        let now_us = now.timestamp_micros();
        // A poisoned lock only means a panic elsewhere while it was held; the map stays valid.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tat = buckets.get(&org).copied();
        Ok(match self.limit.admit(tat, now_us, events) {
            Ok(new_tat) => {
                if buckets.len() >= MEMORY_PRUNE_AT {
                    buckets.retain(|_, tat| *tat > now_us);
                }
                buckets.insert(org, new_tat);
                Ok(())
            }
            Err(refused) => Err(refused),
        })
    }
}

/// Buckets held in the store, shared by every API instance (Lambda).
#[derive(Debug, Clone)]
pub struct StoreLimiter {
    store: Arc<dyn Store>,
    limit: IngestLimit,
}

impl StoreLimiter {
    pub fn new(store: Arc<dyn Store>, limit: IngestLimit) -> Self {
        Self { store, limit }
    }
}

#[async_trait]
impl IngestLimiter for StoreLimiter {
    fn limit(&self) -> IngestLimit {
        self.limit
    }

    async fn take(
        &self,
        org: OrgId,
        events: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<(), IngestRefusal>, AdmissionError> {
        Ok(IngestBuckets::new(self.store.as_ref())
            .take(org, &self.limit, events, now)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("time")
    }

    #[tokio::test]
    async fn the_memory_limiter_keeps_one_bucket_per_org() {
        let limiter = MemoryLimiter::new(IngestLimit::new(10.0, 100).expect("limit"));
        let (a, b) = (OrgId::new(), OrgId::new());
        assert_eq!(limiter.take(a, 100, at(0)).await.expect("take"), Ok(()));
        assert!(limiter.take(a, 1, at(0)).await.expect("take").is_err());
        assert_eq!(limiter.take(b, 100, at(0)).await.expect("take"), Ok(()));
        assert_eq!(limiter.take(a, 10, at(1000)).await.expect("take"), Ok(()));
        assert_eq!(
            limiter.take(a, 101, at(3_600_000)).await.expect("take"),
            Err(IngestRefusal::OverBurst)
        );
    }
}
