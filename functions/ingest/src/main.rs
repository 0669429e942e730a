//! Lambda bootstrap of the ingest function: ingest queue (EventBridge rule target) → match queue;
//! and the feedback queue (SES bounces and complaints from the default bus) → suppression list.
//! A batch comes from one event source mapping, so its records' source queue says which.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_ingest::Ingest;
use herald_ingest::feedback::Feedback;
use herald_shared::env;
use herald_shared::pipeline::lambda;
use herald_shared::queue::sqs::SqsQueue;
use herald_shared::store::dynamodb::DynamoStore;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{LambdaEvent, service_fn};

/// Configuration from the environment the SAM template sets.
struct Config {
    table: String,
    match_queue_url: String,
    retention_days: i64,
    /// The feedback queue (`None`: feedback not wired, every batch is ingest's).
    feedback_queue_arn: Option<String>,
    feedback_dlq_url: Option<String>,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            table: env::required("HERALD_TABLE")?,
            match_queue_url: env::required("HERALD_MATCH_QUEUE_URL")?,
            retention_days: env::parsed_or("HERALD_LOG_RETENTION_DAYS", 30, "a number of days")?,
            feedback_queue_arn: std::env::var("HERALD_FEEDBACK_QUEUE_ARN")
                .ok()
                .filter(|s| !s.is_empty()),
            feedback_dlq_url: std::env::var("HERALD_FEEDBACK_DLQ_URL")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json);
    let config = Config::from_env()?;
    let sdk = herald_shared::aws::sdk_config(None).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let match_queue = SqsQueue::new(sqs.clone(), config.match_queue_url);
    let feedback_dlq = config
        .feedback_dlq_url
        .map(|url| SqsQueue::new(sqs.clone(), url));
    let ingest = Ingest {
        store: &store,
        match_queue: &match_queue,
        retention: chrono::Duration::days(config.retention_days),
    };
    let feedback_arn = config.feedback_queue_arn.as_deref();
    let feedback = feedback_dlq.as_ref().map(|dlq| Feedback {
        store: &store,
        dead_letter: dlq,
    });
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let is_feedback = feedback_arn.is_some()
            && event
                .payload
                .records
                .first()
                .is_some_and(|r| r.event_source_arn.as_deref() == feedback_arn);
        let messages = lambda::messages(event.payload);
        let now = chrono::Utc::now();
        let outcome = match (&feedback, is_feedback) {
            (Some(feedback), true) => feedback.handle(messages, now).await,
            _ => ingest.handle(messages, now).await,
        };
        Ok::<SqsBatchResponse, lambda_runtime::Error>(lambda::response(outcome))
    }))
    .await
}
