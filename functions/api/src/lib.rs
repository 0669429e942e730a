//! Herald's REST API: one axum [`Router`] served by `lambda_http` on Lambda and by a TCP listener
//! in `herald serve`, over the [`Store`] and [`EventBus`] ports.
//!
//! One module per resource, each holding its request/response types and its `router()`:
//! [`orgs`] and [`api_keys`] (admin key), [`channels`] and [`rules`] (org API key).
//! [`openapi`] documents them all and serves the document at `GET /openapi.json`.

pub mod alerts;
pub mod api_keys;
pub mod auth;
pub mod body;
pub mod channel_test;
pub mod channels;
mod dates;
pub mod deliveries;
pub mod error;
pub mod event_detail;
pub mod events;
pub mod explain;
pub mod feeds;
pub mod idempotency;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod logs;
pub mod openapi;
pub mod orgs;
pub mod outbox;
pub mod pagination;
pub mod query;
pub mod recoveries;
pub mod replay;
pub mod rules;
pub mod secret_rotation;
pub mod silences;
pub mod stats;
pub mod suppressions;
pub mod tracking;
pub mod unsubscribe;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herald_core::delivery::tracking::TrackingKey;
use herald_core::delivery::unsubscribe::UnsubscribeKey;
use herald_core::feed::FeedTokenSecret;
use herald_shared::admission::Admission;
use herald_shared::bus::EventBus;
use herald_shared::delivery::Sender;
use herald_shared::feed::{FeedNotifier, NoopFeedNotifier};
use herald_shared::queue::Queue;
use herald_shared::routing::{NoRoutingCache, RoutingChanges};
use herald_shared::store::Store;
use tower_http::trace::TraceLayer;

pub use auth::AdminKey;
pub use error::{ApiError, ErrorCode};

/// What every handler shares: the storage and bus engines, and the deployment's settings.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Where `POST /events` publishes.
    pub bus: Arc<dyn EventBus>,
    /// What the channel test button sends through: the dispatcher's sender.
    pub sender: Arc<dyn Sender>,
    pub config: Arc<ApiConfig>,
    /// Pushes feed changes to the user's open connections: the local hub in `herald serve`
    /// (which also serves `GET .../feed/socket`), API Gateway on AWS.
    pub feeds: Arc<dyn FeedNotifier>,
    /// What `POST /events` checks before it accepts: the per-org ingest limit (in memory in
    /// `herald serve`, in the store on Lambda) and the backlog bound (`herald serve`).
    pub admission: Admission,
    /// The dispatch queue, where a resend queues its manual attempt (the normal dispatch path);
    /// without one, resend answers 503.
    pub dispatch: Option<Arc<dyn Queue>>,
    /// Told of every rule, channel and silence write: the matcher's rules cache in `herald
    /// serve`, so that a change applies to the next event at once; nothing on Lambda.
    pub routing: Arc<dyn RoutingChanges>,
}

impl AppState {
    /// A state without admission control (see [`AppState::with_admission`]): every
    /// deployment sets its limits; tests that are not about them need none.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        sender: Arc<dyn Sender>,
        config: ApiConfig,
    ) -> Self {
        Self {
            store,
            bus,
            sender,
            config: Arc::new(config),
            feeds: Arc::new(NoopFeedNotifier),
            admission: Admission::default(),
            dispatch: None,
            routing: Arc::new(NoRoutingCache),
        }
    }

    /// The same state, queueing resends on `queue` (the dispatch queue).
    pub fn with_dispatch_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.dispatch = Some(queue);
        self
    }

    /// The same state, with `POST /events` admitting events through `admission`.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// The same state, telling `routing` of every rule, channel and silence write (the
    /// matcher's rules cache, where it runs in the same process).
    pub fn with_routing_changes(mut self, routing: Arc<dyn RoutingChanges>) -> Self {
        self.routing = routing;
        self
    }

    /// The same state, pushing feed changes through `feeds` (a `LocalFeedHub` in `herald serve`,
    /// which also enables `GET .../feed/socket`; an `ApiGatewayNotifier` on AWS).
    pub fn with_feeds(mut self, feeds: Arc<dyn FeedNotifier>) -> Self {
        self.feeds = feeds;
        self
    }
}

/// The deployment's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The admin credential (`HERALD_ADMIN_KEY`); without one the admin paths answer 401.
    pub admin_key: Option<AdminKey>,
    /// Whether email, SMS and push channels may omit `config` and deliver to the local outbox
    /// (`herald serve`), or must name a provider (AWS).
    pub default_outbox: bool,
    /// Private ranges webhook and Slack URLs may target (`--allow-private-targets`); `http` is
    /// accepted for these only.
    pub allowed_private_targets: Vec<ipnet::IpNet>,
    /// The environment part of new API keys: `pk_<env>_...`.
    pub key_env: String,
    /// The key feed tokens are signed with (`HERALD_FEED_TOKEN_SECRET`); without one the feed
    /// paths answer 503 `feeds_disabled`.
    pub feed_token_secret: Option<FeedTokenSecret>,
    /// Browser origins allowed on the feed paths (CORS) and the feed socket (`Origin`),
    /// e.g. `https://app.example.com` (`HERALD_FEED_ALLOWED_ORIGINS`, comma-separated; parse
    /// with `herald_core::feed::parse_allowed_origins`).
    pub feed_allowed_origins: Vec<String>,
    /// Checks email open/click tracking links (a key derived from the token secret); without
    /// it tracking links answer 404.
    pub tracking_key: Option<TrackingKey>,
    /// Checks one-click unsubscribe links (`/u/{token}`; a key derived from the token secret
    /// with its own label); without it they answer 404.
    pub unsubscribe_key: Option<UnsubscribeKey>,
    /// How long event records are kept (ingest's retention): rule replay refuses a window
    /// starting before `now - event_retention`.
    pub event_retention: chrono::Duration,
}

impl Default for ApiConfig {
    /// AWS-like defaults: no admin key, no outbox, no private targets, `pk_live_` keys.
    fn default() -> Self {
        Self {
            admin_key: None,
            default_outbox: false,
            allowed_private_targets: Vec::new(),
            key_env: "live".to_owned(),
            feed_token_secret: None,
            feed_allowed_origins: Vec::new(),
            tracking_key: None,
            unsubscribe_key: None,
            event_retention: chrono::Duration::days(30),
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(openapi::router())
        .merge(orgs::router())
        .merge(api_keys::router())
        .merge(channels::router())
        .merge(secret_rotation::router())
        .merge(rules::router())
        .merge(alerts::router())
        .merge(silences::router())
        .merge(events::router())
        .merge(channel_test::router())
        .merge(logs::router())
        .merge(deliveries::router())
        .merge(recoveries::router())
        .merge(event_detail::router())
        .merge(explain::router())
        .merge(replay::router())
        .merge(feeds::router(&state))
        .merge(stats::router())
        .merge(users::router())
        .merge(suppressions::router())
        .merge(outbox::router())
        .merge(tracking::router())
        .merge(unsubscribe::router())
        .fallback(not_found)
        // After the merges: it applies to the routes registered so far.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body::BODY_LIMIT))
        // The span names the path only: query strings carry feed tokens (`?token=`).
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request: method and path, never the query string.
fn request_span(req: &http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
}

async fn not_found() -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such path",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
