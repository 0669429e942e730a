//! Lambda bootstrap of the feed socket function: `$connect`, `$disconnect` and `$default` of the
//! WebSocket API.

use std::sync::Arc;

use anyhow::Context as _;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use herald_core::feed::{FeedTokenSecret, parse_allowed_origins};
use herald_feed_socket::{ApiGatewayNotifier, FeedSocket};
use herald_shared::env;
use herald_shared::store::dynamodb::DynamoStore;
use lambda_runtime::{LambdaEvent, service_fn};

/// Configuration from the environment the SAM template sets.
struct Config {
    table: String,
    /// `https://{api}.execute-api.{region}.amazonaws.com/{stage}`.
    websocket_endpoint: String,
    allowed_origins: String,
    token_secret: String,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            table: env::required("HERALD_TABLE")?,
            websocket_endpoint: env::required("HERALD_WEBSOCKET_ENDPOINT")?,
            allowed_origins: env::optional("HERALD_FEED_ALLOWED_ORIGINS").unwrap_or_default(),
            token_secret: env::required("HERALD_FEED_TOKEN_SECRET")?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .init();
    let config = Config::from_env()?;
    let sdk = herald_shared::aws::sdk_config(None).await;
    let store: Arc<dyn herald_shared::store::Store> = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.table,
    ));
    let management = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(config.websocket_endpoint)
        .build();
    let socket = FeedSocket {
        notifier: ApiGatewayNotifier::new(
            aws_sdk_apigatewaymanagement::Client::from_conf(management),
            store.clone(),
        ),
        store,
        secret: FeedTokenSecret::new(config.token_secret.into_bytes())
            .context("HERALD_FEED_TOKEN_SECRET")?,
        allowed_origins: parse_allowed_origins(&config.allowed_origins),
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async {
            Ok::<ApiGatewayProxyResponse, lambda_runtime::Error>(
                socket.handle(event.payload, chrono::Utc::now()).await,
            )
        },
    ))
    .await
}
