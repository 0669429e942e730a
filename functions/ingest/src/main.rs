//! Lambda bootstrap of the ingest function: ingest queue (EventBridge rule target) → match queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_ingest::Ingest;
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
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            table: env::required("HERALD_TABLE")?,
            match_queue_url: env::required("HERALD_MATCH_QUEUE_URL")?,
            retention_days: env::parsed_or("HERALD_LOG_RETENTION_DAYS", 30, "a number of days")?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json);
    let config = Config::from_env()?;
    let sdk = herald_shared::aws::sdk_config(None).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let match_queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), config.match_queue_url);
    let ingest = Ingest {
        store: &store,
        match_queue: &match_queue,
        retention: chrono::Duration::days(config.retention_days),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let outcome = ingest
            .handle(lambda::messages(event.payload), chrono::Utc::now())
            .await;
        Ok::<SqsBatchResponse, lambda_runtime::Error>(lambda::response(outcome))
    }))
    .await
}
