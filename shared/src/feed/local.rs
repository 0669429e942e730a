//! The in-process [`FeedNotifier`] of `herald serve`: one bounded `tokio::sync::broadcast`
//! channel per connected user. WebSocket handlers subscribe; marks and the dispatcher notify.
//!
//! A user's channel exists only while someone listens: the last [`FeedSubscription`] to drop
//! removes it, so memory follows open connections, not users. A receiver that falls more than
//! [`CHANNEL_CAPACITY`] messages behind loses the oldest ones (`Lagged`), and its client catches
//! up from the store by `seq`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{FeedMessage, FeedNotifier, NotifyError};
use herald_core::domain::{OrgId, UserId};

/// Messages buffered per user for its slowest connection.
pub const CHANNEL_CAPACITY: usize = 64;

type Channels = Mutex<HashMap<(OrgId, UserId), broadcast::Sender<Arc<FeedMessage>>>>;

/// The hub. Cheap to clone; clones share the channels.
#[derive(Debug, Clone, Default)]
pub struct LocalFeedHub {
    channels: Arc<Channels>,
}

impl LocalFeedHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many users have at least one open subscription.
    pub fn users(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many subscriptions are open, over all users.
    pub fn connections(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }

    /// Subscribes to `user`'s messages.
    pub fn subscribe_user(&self, org: &OrgId, user: &UserId) -> FeedSubscription {
        let key = (*org, user.clone());
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = channels
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        FeedSubscription {
            receiver,
            hub: Arc::downgrade(&self.channels),
            key,
        }
    }
}

#[async_trait]
impl FeedNotifier for LocalFeedHub {
    async fn notify(
        &self,
        org: &OrgId,
        user: &UserId,
        message: &FeedMessage,
    ) -> Result<(), NotifyError> {
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = channels.get(&(*org, user.clone())) {
            // No receiver left is not an error: the user closed every tab in between.
            let _ = sender.send(Arc::new(message.clone()));
        }
        Ok(())
    }

    fn subscribe(&self, org: &OrgId, user: &UserId) -> Option<FeedSubscription> {
        Some(self.subscribe_user(org, user))
    }
}

/// One connection's stream of a user's messages. Dropping it unsubscribes.
#[derive(Debug)]
pub struct FeedSubscription {
    receiver: broadcast::Receiver<Arc<FeedMessage>>,
    hub: Weak<Channels>,
    key: (OrgId, UserId),
}

impl FeedSubscription {
    /// The next message. `Err(Lagged(n))` when `n` messages were dropped for this slow
    /// subscriber (it should resynchronise); `Err(Closed)` never happens while the hub lives.
    pub async fn recv(&mut self) -> Result<Arc<FeedMessage>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for FeedSubscription {
    fn drop(&mut self) {
        let Some(channels) = self.hub.upgrade() else {
            return;
        };
        let mut channels = channels.lock().unwrap_or_else(PoisonError::into_inner);
        // This receiver still counts until the fields drop, after this function.
        if channels
            .get(&self.key)
            .is_some_and(|s| s.receiver_count() <= 1)
        {
            channels.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use herald_core::feed::Badge;

    #[tokio::test]
    async fn every_tab_of_a_user_gets_the_message_and_other_users_get_nothing() {
        let hub = LocalFeedHub::new();
        let org = OrgId::new();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let mut tab1 = hub.subscribe_user(&org, &alice);
        let mut tab2 = hub.subscribe_user(&org, &alice);
        let mut other = hub.subscribe_user(&org, &bob);
        assert_eq!(hub.connections(), 3);
        hub.notify(
            &org,
            &alice,
            &FeedMessage::badge(
                Badge {
                    unread: 1,
                    unseen: 1,
                },
                1,
            ),
        )
        .await
        .unwrap();
        assert_eq!(tab1.recv().await.unwrap().seq, 1);
        assert_eq!(tab2.recv().await.unwrap().seq, 1);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), other.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_last_subscription_to_close_frees_the_users_channel() {
        let hub = LocalFeedHub::new();
        let org = OrgId::new();
        let alice = UserId::parse("alice").unwrap();
        let a = hub.subscribe_user(&org, &alice);
        let b = hub.subscribe_user(&org, &alice);
        drop(a);
        assert_eq!(hub.users(), 1);
        drop(b);
        assert_eq!(hub.users(), 0);
        // Notifying nobody is fine.
        hub.notify(&org, &alice, &FeedMessage::badge(Badge::default(), 2))
            .await
            .unwrap();
    }
}
