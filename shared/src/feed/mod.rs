//! In-app feeds, the pushing side: the [`FeedNotifier`] port that pushes messages to a user's
//! open connections, with its engines ([`local`] for `herald serve`, [`apigateway`] for API
//! Gateway WebSockets). The item types and the socket protocol are `herald_core::feed`; storage is
//! [`crate::repo::feeds`], connections [`crate::repo::connections`].

#[cfg(feature = "apigateway")]
pub mod apigateway;
pub mod local;

use std::fmt;

use async_trait::async_trait;
use herald_core::domain::{OrgId, UserId};
use herald_core::feed::FeedMessage;

pub use local::{FeedSubscription, LocalFeedHub};

/// Pushing a message to a user's connections failed as a whole (per-connection failures, such
/// as a client gone, are handled inside the engine).
#[derive(Debug, thiserror::Error)]
#[error("feed push failed: {0}")]
pub struct NotifyError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The capability to push feed messages to a user's open connections (tabs, devices).
///
/// Best effort by design: a client that misses a message sees a gap in `seq` and catches up
/// from the store. Callers log an error and carry on.
#[async_trait]
pub trait FeedNotifier: Send + Sync + fmt::Debug {
    /// Sends `message` to every open connection of `user` in `org`.
    async fn notify(
        &self,
        org: &OrgId,
        user: &UserId,
        message: &FeedMessage,
    ) -> Result<(), NotifyError>;

    /// A subscription to `user`'s messages, where this engine holds connections in process
    /// (the local hub of `herald serve`); `None` elsewhere (API Gateway holds the sockets).
    fn subscribe(&self, _org: &OrgId, _user: &UserId) -> Option<FeedSubscription> {
        None
    }
}

/// A notifier that pushes nothing: for deployments and tests without live connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopFeedNotifier;

#[async_trait]
impl FeedNotifier for NoopFeedNotifier {
    async fn notify(&self, _: &OrgId, _: &UserId, _: &FeedMessage) -> Result<(), NotifyError> {
        Ok(())
    }
}
