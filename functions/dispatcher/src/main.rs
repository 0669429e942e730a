//! Lambda bootstrap of the dispatcher function: dispatch queue → Slack, webhooks, ...

use std::time::Duration;

use anyhow::Context as _;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald_dispatcher::Dispatcher;
use herald_shared::delivery::Senders;
use herald_shared::delivery::format::email::EmailRenderer;
use herald_shared::delivery::http::{OutboundClient, OutboundConfig};
use herald_shared::delivery::providers::fcm::FcmSender;
use std::sync::Arc;

use herald_shared::delivery::retry::RetryPolicy;
use herald_shared::delivery::sender::HttpSender;
use herald_shared::feed::apigateway::ApiGatewayNotifier;
use herald_shared::pipeline::lambda;
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
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let defaults = RetryPolicy::default();
        Ok(Self {
            table: std::env::var("HERALD_TABLE").context("HERALD_TABLE is not set")?,
            dispatch_queue_url: std::env::var("HERALD_DISPATCH_QUEUE_URL")
                .context("HERALD_DISPATCH_QUEUE_URL is not set")?,
            websocket_endpoint: std::env::var("HERALD_WEBSOCKET_ENDPOINT")
                .context("HERALD_WEBSOCKET_ENDPOINT is not set")?,
            retention_days: env_num("HERALD_LOG_RETENTION_DAYS").unwrap_or(30),
            retry: RetryPolicy {
                max_attempts: env_num("HERALD_RETRY_MAX_ATTEMPTS").unwrap_or(defaults.max_attempts),
                max_age: env_num("HERALD_RETRY_MAX_AGE_SECS")
                    .map(Duration::from_secs)
                    .unwrap_or(defaults.max_age),
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
    // No private targets on Lambda: the outbound client refuses every reserved range. Webhooks
    // and FCM push share it (and its connection pool); FCM access tokens are cached for the life
    // of the execution environment. Email through SES and SMS through SNS with the function's
    // role. Providers not attached here fail their deliveries with a configuration error naming
    // the provider. No outbox in AWS.
    let outbound = OutboundClient::new(OutboundConfig::default())?;
    let sender = Senders::new(Arc::new(HttpSender::from_client(outbound.clone())), None)
        .with_fcm(Arc::new(FcmSender::new(outbound)))
        .with_aws_notify(None, EmailRenderer::default());
    let dispatcher = Dispatcher {
        store: store.as_ref(),
        dispatch_queue: &dispatch_queue,
        sender: &sender,
        feeds: &feeds,
        retry: config.retry,
        retention: chrono::Duration::days(config.retention_days),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let outcome = dispatcher
            .handle(lambda::messages(event.payload), chrono::Utc::now())
            .await;
        Ok::<SqsBatchResponse, lambda_runtime::Error>(lambda::response(outcome))
    }))
    .await
}
