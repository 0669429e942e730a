//! Lambda bootstrap of the api function: the REST API router served by `lambda_http`, over
//! DynamoDB and EventBridge. Configuration comes from the environment the SAM template sets.

use std::sync::Arc;

use anyhow::Context as _;
use herald_api::{AdminKey, ApiConfig, AppState};
use herald_core::admission::{DEFAULT_EVENTS_BURST, DEFAULT_EVENTS_PER_SECOND, IngestLimit};
use herald_core::delivery::format::email::EmailRenderer;
use herald_core::delivery::tracking::{self, TrackingKey};
use herald_core::delivery::unsubscribe::{self, UnsubscribeKey};
use herald_core::feed::{FeedTokenSecret, parse_allowed_origins};
use herald_shared::admission::{Admission, StoreLimiter};
use herald_shared::bus::eventbridge::EventBridgeBus;
use herald_shared::delivery::senders;
use herald_shared::env;
use herald_shared::feed::apigateway::ApiGatewayNotifier;
use herald_shared::feed::{FeedNotifier, NoopFeedNotifier};
use herald_shared::queue::sqs::SqsQueue;
use herald_shared::routing::NoRoutingCache;
use herald_shared::store::dynamodb::DynamoStore;
use herald_shared::telemetry::{self, LogFormat};

/// Configuration from the environment.
struct Config {
    table: String,
    bus_name: String,
    /// `HERALD_DISPATCH_QUEUE_URL`: where a resend queues its manual attempt.
    dispatch_queue_url: String,
    /// `HERALD_ADMIN_KEY` itself (tests, scripts), or the SSM SecureString parameter naming it
    /// (`HERALD_ADMIN_KEY_PARAM`, what the SAM template sets).
    admin_key: Option<String>,
    admin_key_param: Option<String>,
    allowed_private_targets: Vec<ipnet::IpNet>,
    key_env: String,
    /// How long event records are kept (`HERALD_LOG_RETENTION_DAYS`, as ingest): rule replay
    /// refuses a window starting earlier.
    retention_days: i64,
    /// `HERALD_FEED_TOKEN_SECRET`: without it the feed paths answer 503.
    feed_token_secret: Option<String>,
    /// `HERALD_FEED_ALLOWED_ORIGINS`, comma-separated.
    feed_allowed_origins: String,
    /// `HERALD_WEBSOCKET_ENDPOINT`: where feed changes are pushed (the WebSocket API stage).
    websocket_endpoint: Option<String>,
    /// `HERALD_PUBLIC_URL`: where tracking links in test-button emails point (optional).
    public_url: Option<String>,
    /// `HERALD_ORG_EVENTS_PER_SECOND` and `HERALD_ORG_EVENTS_BURST`: each org's ingest limit.
    ingest_limit: IngestLimit,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let allowed_private_targets = env::list("HERALD_ALLOW_PRIVATE_TARGETS")
            .iter()
            .map(|c| {
                c.parse()
                    .with_context(|| format!("HERALD_ALLOW_PRIVATE_TARGETS: `{c}` is not a CIDR"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            table: env::required("HERALD_TABLE")?,
            bus_name: env::required("HERALD_BUS_NAME")?,
            dispatch_queue_url: env::required("HERALD_DISPATCH_QUEUE_URL")?,
            admin_key: env::optional("HERALD_ADMIN_KEY"),
            admin_key_param: env::optional("HERALD_ADMIN_KEY_PARAM"),
            allowed_private_targets,
            key_env: env::optional("HERALD_KEY_ENV").unwrap_or_else(|| "live".to_owned()),
            retention_days: env::parsed_or("HERALD_LOG_RETENTION_DAYS", 30, "a number of days")?,
            feed_token_secret: env::optional("HERALD_FEED_TOKEN_SECRET"),
            feed_allowed_origins: env::optional("HERALD_FEED_ALLOWED_ORIGINS").unwrap_or_default(),
            websocket_endpoint: env::optional("HERALD_WEBSOCKET_ENDPOINT"),
            public_url: env::optional("HERALD_PUBLIC_URL"),
            ingest_limit: ingest_limit()?,
        })
    }
}

/// The per-org ingest limit from `HERALD_ORG_EVENTS_PER_SECOND` / `HERALD_ORG_EVENTS_BURST`,
/// each defaulting to `herald_core::admission`'s.
fn ingest_limit() -> anyhow::Result<IngestLimit> {
    let per_second = match env::optional("HERALD_ORG_EVENTS_PER_SECOND") {
        Some(v) => v
            .trim()
            .parse::<f64>()
            .with_context(|| format!("HERALD_ORG_EVENTS_PER_SECOND: `{v}` is not a number"))?,
        None => DEFAULT_EVENTS_PER_SECOND,
    };
    let burst = match env::optional("HERALD_ORG_EVENTS_BURST") {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .with_context(|| format!("HERALD_ORG_EVENTS_BURST: `{v}` is not a whole number"))?,
        None => DEFAULT_EVENTS_BURST,
    };
    IngestLimit::new(per_second, burst).context("the per-org ingest limit")
}

/// The admin key: from the environment, else read once from SSM at start-up.
async fn admin_key(
    config: &Config,
    sdk: &aws_config::SdkConfig,
) -> anyhow::Result<Option<AdminKey>> {
    if let Some(key) = &config.admin_key {
        return Ok(Some(AdminKey::new(key)));
    }
    let Some(param) = &config.admin_key_param else {
        tracing::warn!(
            "neither HERALD_ADMIN_KEY nor HERALD_ADMIN_KEY_PARAM is set: the admin API answers 401"
        );
        return Ok(None);
    };
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(param)
        .with_decryption(true)
        .send()
        .await
        .with_context(|| format!("reading the admin key parameter {param}"))?;
    let value = out
        .parameter()
        .and_then(|p| p.value())
        .filter(|v| !v.trim().is_empty());
    let value = value.with_context(|| format!("the admin key parameter {param} is empty"))?;
    Ok(Some(AdminKey::new(value.trim())))
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init(LogFormat::Json);
    let config = Config::from_env()?;
    let sdk = herald_shared::aws::sdk_config(None).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone());
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        config.bus_name.clone(),
    );
    let store: Arc<dyn herald_shared::store::Store> = Arc::new(store);
    let store_for_limits = Arc::clone(&store);
    let feed_token_secret = config
        .feed_token_secret
        .as_deref()
        .map(|s| FeedTokenSecret::new(s.as_bytes().to_vec()))
        .transpose()
        .context("HERALD_FEED_TOKEN_SECRET")?;
    // The tracking endpoints only verify; links are made where emails are sent.
    let tracking_key = config
        .feed_token_secret
        .as_deref()
        .map(|s| TrackingKey::derive(s.as_bytes()));
    let unsubscribe_key = config
        .feed_token_secret
        .as_deref()
        .map(|s| UnsubscribeKey::derive(s.as_bytes()));
    // Marks made through the API reach the user's other devices over the WebSocket API.
    let feeds: Arc<dyn FeedNotifier> = match &config.websocket_endpoint {
        Some(endpoint) => {
            let management = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
                .endpoint_url(endpoint)
                .build();
            Arc::new(ApiGatewayNotifier::new(
                aws_sdk_apigatewaymanagement::Client::from_conf(management),
                Arc::clone(&store),
            ))
        }
        None => Arc::new(NoopFeedNotifier),
    };
    let state = AppState {
        store,
        bus: Arc::new(bus),
        // The channel test button sends through what the dispatcher sends through.
        sender: Arc::new(senders::for_lambda(
            EmailRenderer::new(tracking::configured(
                config.public_url.as_deref(),
                config.feed_token_secret.as_deref().map(str::as_bytes),
            )?)
            .with_unsubscribe(unsubscribe::configured(
                config.public_url.as_deref(),
                config.feed_token_secret.as_deref().map(str::as_bytes),
            )?),
        )?),
        config: Arc::new(ApiConfig {
            admin_key: admin_key(&config, &sdk).await?,
            // In AWS, email/SMS/push channels name their provider: there is no outbox.
            default_outbox: false,
            allowed_private_targets: config.allowed_private_targets,
            key_env: config.key_env,
            feed_token_secret,
            feed_allowed_origins: parse_allowed_origins(&config.feed_allowed_origins),
            tracking_key,
            unsubscribe_key,
            event_retention: chrono::Duration::days(config.retention_days),
        }),
        feeds,
        // Many API instances run at once: the org's bucket is in the table. The backlog is
        // bounded by this limit and SQS fair queues (docs/pipeline.md, "Admission control").
        admission: Admission {
            ingest: Some(Arc::new(StoreLimiter::new(
                store_for_limits,
                config.ingest_limit,
            ))),
            backlog: None,
        },
        dispatch: Some(Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            config.dispatch_queue_url.clone(),
        ))),
        // The matchers are other Lambdas: a change reaches them within their cache's bound.
        routing: Arc::new(NoRoutingCache),
    };
    let api = tower::ServiceExt::<lambda_http::Request>::and_then(
        herald_api::router(state),
        herald_api::lambda::buffer,
    );
    lambda_http::run(api).await
}
