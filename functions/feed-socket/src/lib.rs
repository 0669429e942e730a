//! The feed socket function: API Gateway's WebSocket API for the live feed on AWS.
//!
//! - `$connect` (`wss://.../live?token=<feed token>`): checks the token and the `Origin`
//!   (browsers must come from a configured origin; native apps send none), then records the
//!   connection with a TTL. A refused connect answers 401/403 and API Gateway closes it.
//! - `$disconnect`: forgets the connection.
//! - `$default`: a [`ClientMessage`], parsed and answered as on `herald serve`:
//!   `{"type":"ping"}` → `{"type":"pong"}` (clients ping to stay under API Gateway's 10-minute
//!   idle timeout); `{"type":"hello"}` → the current badge and seq; anything else is ignored.
//!
//! Pushes go through [`ApiGatewayNotifier`], used by the api and dispatcher functions too.
//! Messages follow the same protocol as `herald serve`'s socket (`docs/feeds.md`).

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use herald_core::feed::{self, Badge, ClientMessage, FeedToken, FeedTokenSecret};
use herald_shared::repo::Feeds;
use herald_shared::repo::connections::{Connection, Connections};
use herald_shared::store::Store;

pub use herald_shared::feed::apigateway::{ApiGatewayNotifier, PostOutcome};

/// The function's settings and clients, built once per instance.
#[derive(Debug, Clone)]
pub struct FeedSocket {
    pub store: Arc<dyn Store>,
    pub notifier: ApiGatewayNotifier,
    pub secret: FeedTokenSecret,
    /// Browser origins allowed to connect (`HERALD_FEED_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
}

fn response(status: i64, body: &str) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = Some(Body::Text(body.to_owned()));
    r
}

impl FeedSocket {
    /// Handles one WebSocket event. Never fails: every outcome is a status for API Gateway
    /// (on `$connect`, anything but 2xx refuses the connection).
    #[tracing::instrument(skip_all, fields(route = tracing::field::Empty, connection_id = tracing::field::Empty))]
    pub async fn handle(
        &self,
        request: ApiGatewayWebsocketProxyRequest,
        now: DateTime<Utc>,
    ) -> ApiGatewayProxyResponse {
        let route = request
            .request_context
            .route_key
            .clone()
            .unwrap_or_default();
        let Some(connection_id) = request.request_context.connection_id.clone() else {
            return response(400, "no connection id");
        };
        let span = tracing::Span::current();
        span.record("route", route.as_str());
        span.record("connection_id", connection_id.as_str());
        match route.as_str() {
            "$connect" => self.connect(&request, connection_id, now).await,
            "$disconnect" => match Connections::new(self.store.as_ref())
                .remove(&connection_id)
                .await
            {
                Ok(_) => response(200, ""),
                Err(e) => {
                    tracing::error!(error = %e, "could not delete a feed connection (its TTL will)");
                    response(500, "")
                }
            },
            _ => {
                self.message(request.body.as_deref().unwrap_or_default(), &connection_id)
                    .await
            }
        }
    }

    async fn connect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        connection_id: String,
        now: DateTime<Utc>,
    ) -> ApiGatewayProxyResponse {
        if let Some(origin) = request.headers.get(http::header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| feed::origin_allowed(o, &self.allowed_origins));
            if !allowed {
                tracing::info!("feed socket refused: origin not allowed");
                return response(403, "origin not allowed");
            }
        }
        let Some(token) = request
            .query_string_parameters
            .first("token")
            .filter(|t| !t.is_empty())
        else {
            return response(401, "missing token");
        };
        let token = match FeedToken::verify(token, &self.secret, now) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(reason = %e, "feed socket refused: bad token");
                return response(401, "invalid token");
            }
        };
        let connection = Connection {
            connection_id,
            org_id: token.org_id,
            user_id: token.user_id,
            connected_at: now,
        };
        match Connections::new(self.store.as_ref())
            .add(&connection, now)
            .await
        {
            Ok(()) => {
                tracing::info!(org_id = %connection.org_id, "feed socket connected");
                response(200, "")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record a feed connection");
                response(500, "")
            }
        }
    }

    async fn message(&self, body: &str, connection_id: &str) -> ApiGatewayProxyResponse {
        let Some(message) = ClientMessage::parse(body) else {
            return response(200, "");
        };
        let current = match message {
            ClientMessage::Hello => self.badge(connection_id).await,
            ClientMessage::Ping => None,
        };
        let Some(reply) = message.answer(current) else {
            return response(200, "");
        };
        if let Err(e) = self.notifier.post(connection_id, &reply).await {
            tracing::warn!(error = %e, "feed socket reply failed");
        }
        response(200, "")
    }

    /// The connection's user's badge and seq, for the answer to `hello`.
    async fn badge(&self, connection_id: &str) -> Option<(Badge, u64)> {
        let c = Connections::new(self.store.as_ref())
            .get(connection_id)
            .await
            .ok()??;
        Feeds::new(self.store.as_ref())
            .badge(&c.org_id, &c.user_id)
            .await
            .ok()
    }
}
