//! `Idempotency-Key`: the stored answer of a request that started work, so a client retrying it
//! (a lost response, a timeout) gets the same answer instead of a second resend.
//!
//! One item per (org, method, path, key) — `keys::idempotency` — holding the hash of the request
//! and, once the request is answered, its status and JSON body. Claiming it is a conditional
//! create, so of two concurrent requests with one key exactly one runs; the other sees it in
//! progress. A claim expires after [`IN_PROGRESS_SECONDS`] (a crashed request frees its key), a
//! stored answer after [`STORED_SECONDS`] (24 h, Svix's and Stripe's convention).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::{from_doc, to_doc};
use crate::store::{Condition, Item, Store, StoreError, keys};
use herald_core::domain::OrgId;

/// How long a stored answer is replayed.
pub const STORED_SECONDS: i64 = 24 * 3600;
/// How long a claim holds without an answer: past it, the request is taken as lost.
pub const IN_PROGRESS_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    request_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer: Option<Answer>,
    created_at: DateTime<Utc>,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First use: this request runs, then [`complete`] or [`release`].
    Claimed,
    /// The same request is still running.
    InProgress,
    /// The same request was answered: this is its answer.
    Done(Answer),
    /// The key was used with another request.
    Reused,
}

/// Claims `scope` (the hash of method, path and key) for a request whose content hashes to
/// `request_hash`.
pub async fn claim(
    store: &dyn Store,
    org: OrgId,
    scope: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let key = keys::idempotency(org, scope);
    let record = Record {
        request_hash: request_hash.to_owned(),
        answer: None,
        created_at: now,
    };
    let item = Item::new(key.clone(), keys::entity::IDEMPOTENCY, to_doc(&record)?)
        .with_ttl(now.timestamp() + IN_PROGRESS_SECONDS);
    match store.put(item, Condition::NotExists).await {
        Ok(()) => return Ok(Claim::Claimed),
        Err(StoreError::Conflict) => {}
        Err(e) => return Err(e),
    }
    let Some(stored) = store.get(&key).await? else {
        // Expired between the write and the read: the next attempt claims it.
        return Ok(Claim::InProgress);
    };
    let stored: Record = from_doc(stored.doc)?;
    Ok(if stored.request_hash != request_hash {
        Claim::Reused
    } else {
        match stored.answer {
            Some(answer) => Claim::Done(answer),
            None => Claim::InProgress,
        }
    })
}

/// Stores the answer of a claimed request, replayed for [`STORED_SECONDS`] from `now`.
pub async fn complete(
    store: &dyn Store,
    org: OrgId,
    scope: &str,
    request_hash: &str,
    answer: Answer,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let record = Record {
        request_hash: request_hash.to_owned(),
        answer: Some(answer),
        created_at: now,
    };
    let item = Item::new(
        keys::idempotency(org, scope),
        keys::entity::IDEMPOTENCY,
        to_doc(&record)?,
    )
    .with_ttl(now.timestamp() + STORED_SECONDS);
    store.put(item, Condition::None).await
}

/// Frees a claimed key without an answer (the request failed): a retry with it runs again.
pub async fn release(store: &dyn Store, org: OrgId, scope: &str) -> Result<(), StoreError> {
    store
        .delete(&keys::idempotency(org, scope), Condition::None)
        .await
}
