//! [`ApiGatewayNotifier`]: the [`FeedNotifier`] of AWS deployments. API Gateway holds the
//! sockets; this posts a message to each of a user's recorded connections through the
//! management API (`POST @connections/{id}`), and forgets connections that answer 410 Gone.

use std::sync::Arc;

use super::{FeedNotifier, NotifyError};
use crate::repo::connections::Connections;
use crate::store::Store;
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::FeedMessage;

/// What happened to one post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    Sent,
    /// The client is gone (410); its records were deleted.
    Gone,
}

/// Pushes feed messages through API Gateway's management API.
#[derive(Debug, Clone)]
pub struct ApiGatewayNotifier {
    client: Client,
    store: Arc<dyn Store>,
}

impl ApiGatewayNotifier {
    /// `client` must be configured with the WebSocket stage's management endpoint
    /// (`HERALD_WEBSOCKET_ENDPOINT`, `https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(client: Client, store: Arc<dyn Store>) -> Self {
        Self { client, store }
    }

    /// Sends `text` to one connection; on 410 Gone, deletes its records.
    pub async fn post(&self, connection_id: &str, text: &str) -> Result<PostOutcome, NotifyError> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(text.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(PostOutcome::Sent),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                Connections::new(self.store.as_ref())
                    .remove(connection_id)
                    .await
                    .map_err(|e| NotifyError(Box::new(e)))?;
                tracing::info!(connection_id, "feed connection gone; record deleted");
                Ok(PostOutcome::Gone)
            }
            Err(e) => Err(NotifyError(Box::new(e))),
        }
    }
}

#[async_trait]
impl FeedNotifier for ApiGatewayNotifier {
    /// Posts to every connection of the user. One failing connection does not stop the others;
    /// the first failure is returned after all were tried.
    async fn notify(
        &self,
        org: &OrgId,
        user: &UserId,
        message: &FeedMessage,
    ) -> Result<(), NotifyError> {
        let connections = Connections::new(self.store.as_ref())
            .of_user(org, user)
            .await
            .map_err(|e| NotifyError(Box::new(e)))?;
        let text = message.to_json();
        let mut first_error = None;
        for c in connections {
            if let Err(e) = self.post(&c.connection_id, &text).await {
                tracing::warn!(connection_id = %c.connection_id, error = %e, "feed push to a connection failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
