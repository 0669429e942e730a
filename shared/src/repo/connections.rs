//! Open feed sockets held by API Gateway: who is connected where, so a change can be pushed to
//! every connection of a user with `PostToConnection`.
//!
//! Two items per connection, written and deleted together: `ORG#<org>#USER#<user>#CONN` /
//! `CONN#<connectionId>` lists a user's connections; `CONN#<connectionId>` / `CONN` finds the
//! user from the id alone (`$disconnect` knows nothing else). Both carry a TTL: API Gateway
//! closes a connection after two hours at most, and a missed `$disconnect` must not leave a
//! record behind for ever. Reads skip expired records.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::repo::{RepoError, list_all};
use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Store, WriteOp};
use herald_core::domain::{OrgId, UserId};

/// API Gateway's longest WebSocket connection: records expire after it.
pub const CONNECTION_TTL: Duration = Duration::hours(2);

/// One open socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: String,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub connected_at: DateTime<Utc>,
}

/// The connection repository.
#[derive(Debug, Clone, Copy)]
pub struct Connections<'a> {
    store: &'a dyn Store,
}

impl<'a> Connections<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Records an open connection until `now + CONNECTION_TTL`.
    pub async fn add(&self, connection: &Connection, now: DateTime<Utc>) -> Result<(), RepoError> {
        let doc = crate::repo::encode(connection, entity::FEED_CONNECTION)?;
        let ttl = (now + CONNECTION_TTL).timestamp();
        let (org, user, id) = (
            &connection.org_id,
            &connection.user_id,
            connection.connection_id.as_str(),
        );
        let ops = vec![
            WriteOp::Put {
                item: Item::new(
                    keys::feed_connection(org, user, id),
                    entity::FEED_CONNECTION,
                    doc.clone(),
                )
                .with_ttl(ttl),
                condition: Condition::None,
            },
            WriteOp::Put {
                item: Item::new(
                    keys::feed_connection_by_id(id),
                    entity::FEED_CONNECTION_BY_ID,
                    doc,
                )
                .with_ttl(ttl),
                condition: Condition::None,
            },
        ];
        Ok(self.store.transact(ops).await?)
    }

    /// The connection with this id, if it is open.
    pub async fn get(&self, connection_id: &str) -> Result<Option<Connection>, RepoError> {
        match self
            .store
            .get(&keys::feed_connection_by_id(connection_id))
            .await?
        {
            Some(item) => Ok(Some(crate::repo::decode(item, entity::FEED_CONNECTION)?)),
            None => Ok(None),
        }
    }

    /// Forgets a connection (`$disconnect`, or 410 Gone on a push). Returns it if it was known.
    pub async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, RepoError> {
        let Some(connection) = self.get(connection_id).await? else {
            return Ok(None);
        };
        let ops = vec![
            WriteOp::Delete {
                key: keys::feed_connection(&connection.org_id, &connection.user_id, connection_id),
                condition: Condition::None,
            },
            WriteOp::Delete {
                key: keys::feed_connection_by_id(connection_id),
                condition: Condition::None,
            },
        ];
        self.store.transact(ops).await?;
        Ok(Some(connection))
    }

    /// Every open connection of `user`.
    pub async fn of_user(&self, org: &OrgId, user: &UserId) -> Result<Vec<Connection>, RepoError> {
        list_all(
            self.store,
            keys::feed_connections(org, user),
            keys::FEED_CONNECTION_PREFIX,
            entity::FEED_CONNECTION,
        )
        .await
    }
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::embedded::Embedded;

    #[tokio::test]
    async fn connections_are_listed_per_user_and_found_by_id_until_removed() {
        let store = Embedded::in_memory().unwrap();
        let conns = Connections::new(&store);
        let org = OrgId::new();
        let alice = UserId::parse("alice").unwrap();
        for id in ["c1", "c2"] {
            let c = Connection {
                connection_id: id.into(),
                org_id: org,
                user_id: alice.clone(),
                connected_at: Utc::now(),
            };
            conns.add(&c, Utc::now()).await.unwrap();
        }
        assert_eq!(conns.of_user(&org, &alice).await.unwrap().len(), 2);
        assert_eq!(conns.get("c1").await.unwrap().unwrap().user_id, alice);
        assert!(conns.remove("c1").await.unwrap().is_some());
        assert!(conns.remove("c1").await.unwrap().is_none());
        let left: Vec<String> = conns
            .of_user(&org, &alice)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.connection_id)
            .collect();
        assert_eq!(left, ["c2"]);
    }

    #[tokio::test]
    async fn expired_connection_records_are_not_listed() {
        let store = Embedded::in_memory().unwrap();
        let conns = Connections::new(&store);
        let org = OrgId::new();
        let alice = UserId::parse("alice").unwrap();
        let c = Connection {
            connection_id: "old".into(),
            org_id: org,
            user_id: alice.clone(),
            connected_at: Utc::now(),
        };
        conns
            .add(&c, Utc::now() - Duration::hours(3))
            .await
            .unwrap();
        assert!(conns.of_user(&org, &alice).await.unwrap().is_empty());
        assert!(conns.get("old").await.unwrap().is_none());
    }
}
