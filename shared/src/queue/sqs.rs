//! The SQS queue engine, for Lambda: one [`SqsQueue`] per queue URL over the AWS SDK. The queue's
//! visibility timeout and dead-letter policy (`RedrivePolicy`) are queue attributes, set where the
//! queue is created (the SAM template; [`create_queue_with_dlq`] in tests).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::{MAX_BATCH, MAX_DELAY, Outgoing, Queue, QueueError, Receipt, Received};

/// SQS's longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// How often entries that failed on the server's side are resent before `send_batch` gives up.
const SEND_ATTEMPTS: usize = 3;

/// Failures SQS reported inside an otherwise successful response.
#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    /// Entries of a batch that SQS refused: `(entry index, code, message)`.
    #[error("SQS refused {} batch entries: {}", .0.len(), describe(.0))]
    BatchEntries(Vec<(usize, String, String)>),
    /// A field SQS always sends was missing.
    #[error("SQS response without {0}")]
    Missing(&'static str),
    #[error("SQS sent an unreadable ApproximateReceiveCount: {0:?}")]
    BadReceiveCount(String),
    #[error("SQS sent an unreadable message count: {0:?}")]
    BadCount(String),
}

fn describe(entries: &[(usize, String, String)]) -> String {
    entries
        .iter()
        .map(|(i, code, msg)| format!("#{i} {code}: {msg}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Whole seconds, rounded up (a sub-second wait or timeout is not rounded away), at most `max`.
fn whole_seconds(d: Duration, max: Duration) -> i32 {
    let d = d.min(max);
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn entry_failure(
    index_of: &HashMap<String, usize>,
    e: &BatchResultErrorEntry,
) -> (usize, String, String) {
    let index = index_of.get(e.id()).copied().unwrap_or(usize::MAX);
    (
        index,
        e.code().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        if messages.len() > MAX_BATCH {
            return Err(QueueError::Rejected(format!(
                "{} messages in one batch; at most {MAX_BATCH}",
                messages.len()
            )));
        }
        let mut pending = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            if m.delay > MAX_DELAY {
                return Err(QueueError::Rejected(format!(
                    "delay of {:?} exceeds the {MAX_DELAY:?} maximum",
                    m.delay
                )));
            }
            // The tenant as MessageGroupId makes a standard queue an SQS fair queue (2025): a
            // tenant holding a disproportionate share of in-flight messages is served after the
            // quiet ones. No queue setting is needed; on a standard queue it orders nothing.
            let tenant = m.tenant().map(str::to_owned);
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_message_group_id(tenant)
                .message_body(m.body)
                .delay_seconds(whole_seconds(m.delay, MAX_DELAY))
                .build()
                .map_err(QueueError::engine)?;
            pending.push(entry);
        }
        let index_of: HashMap<String, usize> = pending
            .iter()
            .map(|e| (e.id().to_owned(), e.id().parse().unwrap_or(usize::MAX)))
            .collect();

        // Entries that failed on SQS's side are resent (only those: the others are already
        // queued); entries SQS refused as the sender's fault are an error at once.
        for attempt in 1..=SEND_ATTEMPTS {
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(QueueError::engine)?;
            if out.failed().is_empty() {
                return Ok(());
            }
            let refused: Vec<_> = out
                .failed()
                .iter()
                .filter(|e| e.sender_fault())
                .map(|e| entry_failure(&index_of, e))
                .collect();
            if !refused.is_empty() {
                return Err(QueueError::Rejected(
                    SqsError::BatchEntries(refused).to_string(),
                ));
            }
            if attempt == SEND_ATTEMPTS {
                let failed = out
                    .failed()
                    .iter()
                    .map(|e| entry_failure(&index_of, e))
                    .collect();
                return Err(QueueError::engine(SqsError::BatchEntries(failed)));
            }
            pending.retain(|p| out.failed().iter().any(|e| e.id() == p.id()));
        }
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(QueueError::Rejected(format!(
                "cannot receive {max} messages at once; 1 to {MAX_BATCH}"
            )));
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .wait_time_seconds(whole_seconds(wait, MAX_WAIT))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(QueueError::engine)?;
        out.messages()
            .iter()
            .map(|m| {
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .ok_or(SqsError::Missing("ApproximateReceiveCount"))
                    .map_err(QueueError::engine)?;
                Ok(Received {
                    message_id: m
                        .message_id()
                        .ok_or(SqsError::Missing("MessageId"))
                        .map_err(QueueError::engine)?
                        .to_owned(),
                    receipt: Receipt(
                        m.receipt_handle()
                            .ok_or(SqsError::Missing("ReceiptHandle"))
                            .map_err(QueueError::engine)?
                            .to_owned(),
                    ),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: count.parse().map_err(|_| {
                        QueueError::engine(SqsError::BadReceiveCount(count.clone()))
                    })?,
                    group: None,
                })
            })
            .collect()
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error() {
                Some(DeleteMessageError::ReceiptHandleIsInvalid(_)) => QueueError::UnknownReceipt,
                _ => QueueError::engine(e),
            })
    }

    async fn delete_batch(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        if receipts.is_empty() {
            return Ok(());
        }
        if receipts.len() > MAX_BATCH {
            return Err(QueueError::Rejected(format!(
                "{} receipts in one batch; at most {MAX_BATCH}",
                receipts.len()
            )));
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.0)
                    .build()
                    .map_err(QueueError::engine)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(QueueError::engine)?;
        if out.failed().is_empty() {
            return Ok(());
        }
        if out
            .failed()
            .iter()
            .all(|e| e.code() == "ReceiptHandleIsInvalid")
        {
            return Err(QueueError::UnknownReceipt);
        }
        let index_of: HashMap<String, usize> =
            (0..receipts.len()).map(|i| (i.to_string(), i)).collect();
        let failed = out
            .failed()
            .iter()
            .map(|e| entry_failure(&index_of, e))
            .collect();
        Err(QueueError::engine(SqsError::BatchEntries(failed)))
    }

    async fn change_visibility(
        &self,
        receipt: &Receipt,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(whole_seconds(timeout, MAX_VISIBILITY))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error() {
                Some(
                    ChangeMessageVisibilityError::ReceiptHandleIsInvalid(_)
                    | ChangeMessageVisibilityError::MessageNotInflight(_),
                ) => QueueError::UnknownReceipt,
                _ => QueueError::engine(e),
            })
    }
}

/// The ARN of the queue at `url` (for redrive policies and EventBridge targets).
pub async fn queue_arn(client: &Client, url: &str) -> Result<String, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(QueueError::engine)?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::engine(SqsError::Missing("QueueArn")))
}

/// How many messages the queue at `url` holds: visible, in flight and delayed (SQS's
/// approximate counts, which lag by up to a minute on AWS).
pub async fn approximate_count(client: &Client, url: &str) -> Result<usize, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(QueueError::engine)?;
    let attributes = out
        .attributes()
        .ok_or_else(|| QueueError::engine(SqsError::Missing("queue attributes")))?;
    let mut total = 0;
    for name in [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ] {
        let value = attributes
            .get(&name)
            .ok_or_else(|| QueueError::engine(SqsError::Missing("ApproximateNumberOfMessages")))?;
        total += value
            .parse::<usize>()
            .map_err(|_| QueueError::engine(SqsError::BadCount(value.clone())))?;
    }
    Ok(total)
}

/// URLs of a queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub main: String,
    pub dead_letter: String,
}

/// Creates `name` and its dead-letter queue `name-dlq`: messages received `max_receives` times
/// move to the dead-letter queue on their next receive. For tests and local set-up; deployed
/// queues come from the SAM template.
pub async fn create_queue_with_dlq(
    client: &Client,
    name: &str,
    visibility_timeout: Duration,
    max_receives: u32,
) -> Result<QueueUrls, QueueError> {
    let dead_letter = create_queue(client, &format!("{name}-dlq"), HashMap::new()).await?;
    let dlq_arn = queue_arn(client, &dead_letter).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receives.to_string(),
    });
    let attributes = HashMap::from([
        (
            QueueAttributeName::VisibilityTimeout,
            whole_seconds(visibility_timeout, MAX_VISIBILITY).to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
    ]);
    let main = create_queue(client, name, attributes).await?;
    Ok(QueueUrls { main, dead_letter })
}

async fn create_queue(
    client: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, QueueError> {
    let out = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(QueueError::engine)?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or_else(|| QueueError::engine(SqsError::Missing("QueueUrl")))
}

/// Moves up to `max` messages from the queue at `from_url` (a dead-letter queue) to `to_url`:
/// receive, send, then delete what was sent. Returns how many moved. Done by hand rather than
/// with `StartMessageMoveTask`, which the emulator does not run. A failure part-way leaves the
/// unmoved messages in `from_url` (visible again after their visibility timeout); a message can
/// be in both queues if the delete after a successful send fails.
pub async fn redrive(
    client: &Client,
    from_url: &str,
    to_url: &str,
    max: usize,
) -> Result<usize, QueueError> {
    let from = SqsQueue::new(client.clone(), from_url);
    let to = SqsQueue::new(client.clone(), to_url);
    let mut moved = 0;
    while moved < max {
        // A one-second long poll: a short poll samples only some SQS servers and can come back
        // empty while messages remain.
        let batch = from
            .receive((max - moved).min(MAX_BATCH), Duration::from_secs(1))
            .await?;
        if batch.is_empty() {
            break;
        }
        to.send_batch(
            batch
                .iter()
                .map(|m| Outgoing::now(m.body.clone()))
                .collect(),
        )
        .await?;
        let receipts: Vec<Receipt> = batch.iter().map(|m| m.receipt.clone()).collect();
        from.delete_batch(&receipts).await?;
        moved += batch.len();
    }
    Ok(moved)
}
