//! Local queue workers: what the SQS event source mapping does for Lambda, in-process.
//!
//! A worker long-polls its queue, hands each batch to a handler function (the same library
//! function the Lambda runs), deletes the messages the handler did not report failed, and leaves
//! failed ones to reappear after the visibility timeout — and to be dead-lettered after the
//! queue's max receives. A panicking handler fails its batch, not the process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use herald_shared::pipeline::{self, BatchOutcome, QueueMessage};
use herald_shared::queue::{MAX_BATCH, Queue, Receipt, Received};
use tokio::sync::watch;
use tracing::{error, warn};

/// How long one receive waits for a first message.
const POLL: Duration = Duration::from_secs(1);

/// Runs `concurrency` workers over `queue` until `shutdown` turns true.
pub fn spawn<H, F>(
    name: &'static str,
    queue: Arc<dyn Queue>,
    concurrency: usize,
    handler: H,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>>
where
    H: Fn(Vec<QueueMessage>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    (0..concurrency)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let handler = handler.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    if *shutdown.borrow() {
                        return;
                    }
                    let received = tokio::select! {
                        r = queue.receive(MAX_BATCH, POLL) => r,
                        _ = shutdown.changed() => return,
                    };
                    match received {
                        Ok(batch) if batch.is_empty() => {}
                        Ok(batch) => handle(name, queue.as_ref(), batch, &handler).await,
                        Err(e) => {
                            error!(queue = name, error = %e, "receive failed");
                            tokio::time::sleep(POLL).await;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn handle<H, F>(name: &'static str, queue: &dyn Queue, batch: Vec<Received>, handler: &H)
where
    H: Fn(Vec<QueueMessage>) -> F,
    F: Future<Output = BatchOutcome> + Send + 'static,
{
    let messages: Vec<QueueMessage> = batch
        .iter()
        .map(|r| QueueMessage {
            id: r.message_id.clone(),
            body: r.body.clone(),
            receive_count: r.receive_count,
        })
        .collect();
    let mut outcome = match tokio::spawn(handler(messages.clone())).await {
        Ok(outcome) => outcome,
        Err(e) => {
            error!(queue = name, error = %e, "handler panicked; the batch will be received again");
            return;
        }
    };
    // Held messages go back in their lane with their delay and are deleted like handled ones.
    // (The lane scheduler will requeue them in place instead.)
    let deferred = std::mem::take(&mut outcome.deferred);
    let now = chrono::Utc::now();
    outcome
        .failed
        .extend(pipeline::resend_deferred(queue, &messages, &deferred, now).await);
    // One delete for the batch: one commit of the embedded queue instead of one per message.
    let receipts: Vec<Receipt> = batch
        .into_iter()
        .filter(|r| !outcome.failed.contains(&r.message_id))
        .map(|r| r.receipt)
        .collect();
    if receipts.is_empty() {
        return;
    }
    if let Err(e) = queue.delete_batch(&receipts).await {
        warn!(queue = name, error = %e, "delete failed; some messages of the batch may be handled twice");
    }
}
