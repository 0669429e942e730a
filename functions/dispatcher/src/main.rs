//! Lambda bootstrap of the dispatcher function: dispatch queue → Slack, webhooks, ...

use std::time::Duration;

use anyhow::Context as _;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_core::delivery::format::email::EmailRenderer;
use herald_core::delivery::{tracking, unsubscribe};
use herald_dispatcher::Dispatcher;
use herald_shared::delivery::senders;
use std::sync::Arc;

use herald_core::delivery::retry::RetryPolicy;
use herald_shared::env;
use herald_shared::feed::apigateway::ApiGatewayNotifier;
use herald_shared::pipeline::{self, lambda};
use herald_shared::queue::sqs::SqsQueue;
use herald_shared::store::dynamodb::DynamoStore;
use herald_shared::telemetry::{self, LogFormat};
use lambda_runtime::{LambdaEvent, service_fn};

/// Configuration from the environment the SAM template sets.
struct Config {
    table: String,
    dispatch_queue_url: String,
    retention_days: i64,
    retry: RetryPolicy,
    /// The WebSocket API's management endpoint, where in-app feed items are pushed.
    websocket_endpoint: String,
    /// The API's public URL (`HERALD_PUBLIC_URL`) and the deployment's token secret: with both,
    /// emails carry open/click tracking links to the API.
    public_url: Option<String>,
    token_secret: Option<String>,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let defaults = RetryPolicy::default();
        Ok(Self {
            table: env::required("HERALD_TABLE")?,
            dispatch_queue_url: env::required("HERALD_DISPATCH_QUEUE_URL")?,
            websocket_endpoint: env::required("HERALD_WEBSOCKET_ENDPOINT")?,
            public_url: env::optional("HERALD_PUBLIC_URL"),
            token_secret: env::optional("HERALD_FEED_TOKEN_SECRET"),
            retention_days: env::parsed_or("HERALD_LOG_RETENTION_DAYS", 30, "a number of days")?,
            retry: RetryPolicy {
                max_attempts: env::parsed_or(
                    "HERALD_RETRY_MAX_ATTEMPTS",
                    defaults.max_attempts,
                    "a number of attempts",
                )?,
                max_age: Duration::from_secs(env::parsed_or(
                    "HERALD_RETRY_MAX_AGE_SECS",
                    defaults.max_age.as_secs(),
                    "a number of seconds",
                )?),
                ..defaults
            },
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init(LogFormat::Json);
    let config = Config::from_env()?;
    let sdk = herald_shared::aws::sdk_config(None).await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.table,
    ));
    let management = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(config.websocket_endpoint)
        .build();
    let feeds = ApiGatewayNotifier::new(
        aws_sdk_apigatewaymanagement::Client::from_conf(management),
        store.clone(),
    );
    let dispatch_queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), config.dispatch_queue_url);
    let tracker = tracking::configured(
        config.public_url.as_deref(),
        config.token_secret.as_deref().map(str::as_bytes),
    )
    .context("HERALD_PUBLIC_URL")?;
    let unsubscriber = unsubscribe::configured(
        config.public_url.as_deref(),
        config.token_secret.as_deref().map(str::as_bytes),
    )
    .context("HERALD_PUBLIC_URL")?;
    let sender = senders::for_lambda(EmailRenderer::new(tracker).with_unsubscribe(unsubscriber))?;
    let dispatcher = Dispatcher {
        store: store.as_ref(),
        dispatch_queue: &dispatch_queue,
        sender: &sender,
        feeds: &feeds,
        retry: config.retry,
        retention: chrono::Duration::days(config.retention_days),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let messages = lambda::messages(event.payload);
        let mut outcome = dispatcher
            .handle(messages.clone(), chrono::Utc::now())
            .await;
        // Messages whose lane is held go back on the queue with the hold as their delay, and
        // count as handled (SQS deletes them), so a paced backlog never nears maxReceiveCount.
        let deferred = std::mem::take(&mut outcome.deferred);
        tracing::info!(
            messages = messages.len(),
            failed = outcome.failed.len(),
            deferred = deferred.len(),
            "batch dispatched"
        );
        outcome.failed.extend(
            pipeline::resend_deferred(&dispatch_queue, &messages, &deferred, chrono::Utc::now())
                .await,
        );
        Ok::<SqsBatchResponse, lambda_runtime::Error>(lambda::response(outcome))
    }))
    .await
}
