//! The Lambda side of the batch contract: an SQS event in, a partial batch response out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::{BatchOutcome, QueueMessage};

/// The messages of an SQS event, as handlers take them.
pub fn messages(event: SqsEvent) -> Vec<QueueMessage> {
    event
        .records
        .into_iter()
        .map(|record| QueueMessage {
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            id: record.message_id.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
        })
        .collect()
}

/// The partial batch response naming the failed messages (the event source mapping must have
/// `FunctionResponseTypes: [ReportBatchItemFailures]`).
pub fn response(outcome: BatchOutcome) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in outcome.failed {
        response.add_failure(id);
    }
    response
}
