//! `herald serve` matches events in the ingest handler, right after recording them — in the API's
//! request (see `inline_ingest`) or in an ingest worker — instead of sending them through the
//! match queue to a match worker.
//!
//! On AWS, ingest and matching are separate Lambdas joined by the match queue. In one process
//! that hop is only cost: a durable send, a receive and a delete per event, each a write of the
//! embedded database. So the local ingest handler's match-queue port is an [`InlineMatch`]: its
//! `send_batch` runs the matcher (`herald_matcher::Matcher::handle`, the Lambda's function) over
//! the forwarded events at once and answers only once the matcher has recorded their deliveries,
//! enqueued them on the dispatch queue and marked the events matched.
//!
//! What holds it together is what holds the queue hop: the ingest message is deleted only after
//! `send_batch` returned `Ok`, i.e. after the matching is on disk. When the matcher fails any of
//! the events, `send_batch` fails, ingest reports the chunk failed, and the ingest queue hands
//! its messages out again: ingest drops those now matched as duplicates and forwards the others
//! again, flagged `forwardedAgain` (the matcher then re-enqueues deliveries already on record
//! but not attempted, as for a match message received again). `kill -9` between the two leaves
//! the ingest message to come back the same way.
//!
//! The match queue stays, for what the matcher schedules itself (auto-resolve checks, group
//! ticks, digest flushes: delayed messages) and is drained by the match workers as before; a
//! delayed message sent here goes there too.

use std::sync::Arc;

use async_trait::async_trait;
use herald_matcher::{Matcher, RulesCache};
use herald_shared::pipeline::QueueMessage;
use herald_shared::queue::{Outgoing, Queue, QueueError, Receipt, Received, send_all};
use herald_shared::store::Store;

/// The ingest handler's match-queue port in `herald serve`: matching done in place.
#[derive(Debug)]
pub struct InlineMatch {
    pub store: Arc<dyn Store>,
    pub dispatch_queue: Arc<dyn Queue>,
    /// The real match queue: delayed messages, and the matcher's own scheduling.
    pub match_queue: Arc<dyn Queue>,
    pub rules: Arc<RulesCache>,
    pub retention: chrono::Duration,
}

/// Matching of part of a forwarded batch failed; the whole batch is forwarded again.
#[derive(Debug, thiserror::Error)]
#[error("matching failed for {failed} of {total} forwarded events; they will be forwarded again")]
struct MatchFailed {
    failed: usize,
    total: usize,
}

/// The inline stage has nothing to receive: its messages never wait.
#[derive(Debug, thiserror::Error)]
#[error("the inline match stage only takes sends")]
struct SendOnly;

#[async_trait]
impl Queue for InlineMatch {
    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        let (later, now): (Vec<Outgoing>, Vec<Outgoing>) =
            messages.into_iter().partition(|m| !m.delay.is_zero());
        if !later.is_empty() {
            send_all(self.match_queue.as_ref(), later).await?;
        }
        if now.is_empty() {
            return Ok(());
        }
        let total = now.len();
        // Ids only tell the matcher's outcome apart within this batch.
        let batch = now
            .into_iter()
            .enumerate()
            .map(|(i, m)| QueueMessage {
                id: i.to_string(),
                body: m.body,
                receive_count: 1,
            })
            .collect();
        let outcome = Matcher {
            store: self.store.as_ref(),
            dispatch_queue: self.dispatch_queue.as_ref(),
            match_queue: Some(self.match_queue.as_ref()),
            rules: &self.rules,
            retention: self.retention,
        }
        .handle(batch, chrono::Utc::now())
        .await;
        let failed = outcome.failed.len() + outcome.deferred.len();
        if failed == 0 {
            Ok(())
        } else {
            Err(QueueError::engine(MatchFailed { failed, total }))
        }
    }

    /// A whole ingest batch at once: the matcher's batch is what its writes are shared by.
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    async fn receive(
        &self,
        _max: usize,
        _wait: std::time::Duration,
    ) -> Result<Vec<Received>, QueueError> {
        Err(QueueError::engine(SendOnly))
    }

    async fn delete(&self, _receipt: &Receipt) -> Result<(), QueueError> {
        Err(QueueError::engine(SendOnly))
    }

    async fn change_visibility(
        &self,
        _receipt: &Receipt,
        _timeout: std::time::Duration,
    ) -> Result<(), QueueError> {
        Err(QueueError::engine(SendOnly))
    }
}
