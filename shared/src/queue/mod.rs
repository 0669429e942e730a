//! The queue port: SQS semantics (delay, visibility timeout, receive count, dead-letter after N
//! receives) with two engines — [`sqs`] for AWS and [`embedded`] for `herald serve`. Both pass
//! the same contract suite.

#[cfg(feature = "contract-tests")]
pub mod contract;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "sqs")]
pub mod sqs;

use std::time::Duration;

use async_trait::async_trait;

/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's batch limit for send, delete and receive.
pub const MAX_BATCH: usize = 10;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub body: String,
    /// Invisible until this much time has passed (at most [`MAX_DELAY`]).
    pub delay: Duration,
    /// The message's lane, `<tenant>/<lane>` (for dispatch messages `<org>/<channel>`), or none.
    /// SQS sends the tenant part as the `MessageGroupId` of a standard queue, which makes it a
    /// fair queue (one tenant's backlog does not hold up another's). The embedded engine keeps
    /// one FIFO per lane and serves tenants, then their lanes, round robin
    /// ([`embedded::EmbeddedQueue::receive_lanes`]).
    pub group: Option<String>,
}

impl Outgoing {
    pub fn now(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: Duration::ZERO,
            group: None,
        }
    }

    /// The same message, invisible for `delay` (at most [`MAX_DELAY`]).
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay.min(MAX_DELAY);
        self
    }

    /// The same message, in lane `group` (see [`Outgoing::group`]).
    #[must_use]
    pub fn in_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The tenant part of the group: what SQS fair queues share capacity between.
    pub fn tenant(&self) -> Option<&str> {
        self.group
            .as_deref()
            .map(|g| g.split_once('/').map_or(g, |(tenant, _)| tenant))
    }
}

/// A received message. Invisible to other receivers until its visibility timeout passes;
/// [`Queue::delete`] it once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt: Receipt,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// The lane it was sent in, where the engine keeps it (the embedded engine does; SQS hands
    /// back only the tenant, so it reports none).
    pub group: Option<String>,
}

/// The handle a received message is deleted or re-timed with (SQS receipt handle).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("message rejected: {0}")]
    Rejected(String),
    #[error("unknown or expired receipt")]
    UnknownReceipt,
    #[error("queue engine error: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl QueueError {
    pub fn engine(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Engine(Box::new(e))
    }
}

/// One queue. A message received more than the queue's max receive count moves to its
/// dead-letter queue instead of being delivered again.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Sends up to [`max_batch`](Self::max_batch) messages (callers chunk larger sets with
    /// [`send_all`]).
    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<(), QueueError>;
    /// The most messages one [`send_batch`](Self::send_batch) or
    /// [`delete_batch`](Self::delete_batch) takes: SQS's 10 unless the engine takes more (the
    /// embedded one does: a batch is one commit there). Chunk sends and deletes by it.
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }
    /// Up to `max` (≤ [`MAX_BATCH`]) visible messages, waiting up to `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError>;
    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError>;
    /// Deletes up to [`max_batch`](Self::max_batch) received messages in one call (SQS
    /// `DeleteMessageBatch`; one commit in the embedded engine — prefer it to a loop of
    /// [`delete`](Self::delete)). Every receipt that can be deleted is; an error means at least
    /// one was not, and that message will be received again.
    async fn delete_batch(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        let mut first_error = None;
        for receipt in receipts {
            if let Err(e) = self.delete(receipt).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
    /// Makes a received message visible again after `timeout` (zero: now).
    async fn change_visibility(
        &self,
        receipt: &Receipt,
        timeout: Duration,
    ) -> Result<(), QueueError>;
}

/// Sends any number of messages in batches of the queue's [`Queue::max_batch`], all batches at
/// once. The embedded engine applies them in this order (one group commit); SQS standard queues
/// keep no order.
pub async fn send_all(queue: &dyn Queue, messages: Vec<Outgoing>) -> Result<(), QueueError> {
    let mut batches = Vec::new();
    let mut messages = messages.into_iter().peekable();
    let max = queue.max_batch().max(1);
    while messages.peek().is_some() {
        batches.push(messages.by_ref().take(max).collect::<Vec<_>>());
    }
    let sends = batches.into_iter().map(|batch| queue.send_batch(batch));
    futures::future::join_all(sends)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
}
