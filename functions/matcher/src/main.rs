//! Lambda bootstrap of the matcher function: match queue → deliveries → dispatch queue.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_matcher::{Matcher, RulesCache};
use herald_shared::env;
use herald_shared::pipeline::lambda;
use herald_shared::queue::sqs::SqsQueue;
use herald_shared::store::dynamodb::DynamoStore;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{LambdaEvent, service_fn};

/// Configuration from the environment the SAM template sets.
struct Config {
    table: String,
    dispatch_queue_url: String,
    match_queue_url: String,
    retention_days: i64,
    rules_max_age: Duration,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            table: env::required("HERALD_TABLE")?,
            dispatch_queue_url: env::required("HERALD_DISPATCH_QUEUE_URL")?,
            match_queue_url: env::required("HERALD_MATCH_QUEUE_URL")?,
            retention_days: env::parsed_or("HERALD_LOG_RETENTION_DAYS", 30, "a number of days")?,
            rules_max_age: Duration::from_secs(env::parsed_or(
                "HERALD_RULES_CACHE_SECONDS",
                5,
                "a number of seconds",
            )?),
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
    let dispatch_queue = SqsQueue::new(sqs.clone(), config.dispatch_queue_url);
    // The matcher's own delayed auto-resolve checks.
    let match_queue = SqsQueue::new(sqs, config.match_queue_url);
    // Lives as long as the execution environment: warm invocations reuse compiled rules.
    let rules = RulesCache::new(config.rules_max_age);
    let matcher = Matcher {
        store: &store,
        dispatch_queue: &dispatch_queue,
        match_queue: Some(&match_queue),
        rules: &rules,
        retention: chrono::Duration::days(config.retention_days),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let outcome = matcher
            .handle(lambda::messages(event.payload), chrono::Utc::now())
            .await;
        Ok::<SqsBatchResponse, lambda_runtime::Error>(lambda::response(outcome))
    }))
    .await
}
