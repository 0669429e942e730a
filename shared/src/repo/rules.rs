//! Rules: `ORG#<org>` / `RULE#<key>`, the whole [`Rule`] as the item's document, plus the org's
//! rules version (`ORG#<org>` / `RULESVERSION`, integer attribute `version`) that every rule write
//! bumps in the same transaction. The matcher caches an org's compiled rules and reloads them
//! when the version moves; channel deletes use it to detect concurrent rule writes (see
//! [`super::channels`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Item, MAX_TRANSACTION_WRITES, Store, StoreError, WriteOp};
use herald_core::domain::rule::Rule;
use herald_core::domain::{ChannelId, OrgId, RuleKey};

use super::{Page, RepoError, decode, encode, list_prefix};

use herald_core::domain::rule::MAX_CHANNELS_PER_RULE;

/// Every rule of the org, all pages: what the matcher compiles.
pub async fn list_all(store: &dyn Store, org: OrgId) -> Result<Vec<Rule>, StoreError> {
    Rules::new(store)
        .all(&org)
        .await
        .map_err(RepoError::into_store)
}

/// The rule repository.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    store: &'a dyn Store,
}

impl<'a> Rules<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    fn bump(org: &OrgId) -> WriteOp {
        WriteOp::Add {
            key: keys::rules_version(org),
            entity_type: entity::RULES_VERSION.to_owned(),
            deltas: BTreeMap::from([(keys::RULES_VERSION_ATTR.to_owned(), 1)]),
            condition: Condition::None,
        }
    }

    /// The rule put, a check that each of its channels exists, and the version bump.
    fn write_ops(rule: &Rule, condition: Condition) -> Result<Vec<WriteOp>, RepoError> {
        let item = Item::new(
            keys::rule(&rule.org_id, &rule.key),
            entity::RULE,
            encode(rule, entity::RULE)?,
        );
        let channels: BTreeSet<&ChannelId> = rule.channel_ids.iter().collect();
        let mut ops = Vec::with_capacity(channels.len() + 2);
        ops.push(WriteOp::Put { item, condition });
        ops.extend(channels.into_iter().map(|c| WriteOp::Check {
            key: keys::channel(&rule.org_id, c),
            condition: Condition::Exists,
        }));
        ops.push(Self::bump(&rule.org_id));
        Ok(ops)
    }

    /// After a failed rule write: the first of its channels that does not exist.
    async fn missing_channel(&self, rule: &Rule) -> Result<Option<ChannelId>, RepoError> {
        for c in &rule.channel_ids {
            if self
                .store
                .get(&keys::channel(&rule.org_id, c))
                .await?
                .is_none()
            {
                return Ok(Some(*c));
            }
        }
        Ok(None)
    }

    /// Stores a new rule: [`RepoError::AlreadyExists`] when its key is taken,
    /// [`RepoError::UnknownChannel`] when a channel it names does not exist.
    pub async fn create(&self, rule: &Rule) -> Result<(), RepoError> {
        debug_assert!(rule.channel_ids.len() <= MAX_CHANNELS_PER_RULE);
        match self
            .store
            .transact(Self::write_ops(rule, Condition::NotExists)?)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                if self
                    .store
                    .get(&keys::rule(&rule.org_id, &rule.key))
                    .await?
                    .is_some()
                {
                    return Err(RepoError::AlreadyExists);
                }
                match self.missing_channel(rule).await? {
                    Some(c) => Err(RepoError::UnknownChannel(c)),
                    None => Err(RepoError::Contended),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a stored rule: [`RepoError::NotFound`] when it does not exist,
    /// [`RepoError::UnknownChannel`] when a channel it names does not exist.
    pub async fn update(&self, rule: &Rule) -> Result<(), RepoError> {
        debug_assert!(rule.channel_ids.len() <= MAX_CHANNELS_PER_RULE);
        match self
            .store
            .transact(Self::write_ops(rule, Condition::Exists)?)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                if let Some(c) = self.missing_channel(rule).await? {
                    return Err(RepoError::UnknownChannel(c));
                }
                if self
                    .store
                    .get(&keys::rule(&rule.org_id, &rule.key))
                    .await?
                    .is_none()
                {
                    return Err(RepoError::NotFound);
                }
                Err(RepoError::Contended)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a rule; [`RepoError::NotFound`] when it does not exist.
    pub async fn delete(&self, org: &OrgId, key: &RuleKey) -> Result<(), RepoError> {
        let ops = vec![
            WriteOp::Delete {
                key: keys::rule(org, key),
                condition: Condition::Exists,
            },
            Self::bump(org),
        ];
        match self.store.transact(ops).await {
            Err(StoreError::Conflict) => Err(RepoError::NotFound),
            r => Ok(r?),
        }
    }

    pub async fn get(&self, org: &OrgId, key: &RuleKey) -> Result<Option<Rule>, RepoError> {
        match self.store.get(&keys::rule(org, key)).await? {
            Some(item) => Ok(Some(decode(item, entity::RULE)?)),
            None => Ok(None),
        }
    }

    /// The org's rules in key order.
    pub async fn list(
        &self,
        org: &OrgId,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Page<Rule>, RepoError> {
        list_prefix(
            self.store,
            keys::org_pk(org),
            keys::RULE_PREFIX,
            limit,
            cursor,
            entity::RULE,
        )
        .await
    }

    /// Every rule of the org: what the matcher compiles.
    pub async fn all(&self, org: &OrgId) -> Result<Vec<Rule>, RepoError> {
        super::list_all(
            self.store,
            keys::org_pk(org),
            keys::RULE_PREFIX,
            entity::RULE,
        )
        .await
    }

    /// The keys of the rules that send to `channel`.
    pub async fn referencing(
        &self,
        org: &OrgId,
        channel: &ChannelId,
    ) -> Result<Vec<RuleKey>, RepoError> {
        Ok(self
            .all(org)
            .await?
            .into_iter()
            .filter(|r| r.channel_ids.contains(channel))
            .map(|r| r.key)
            .collect())
    }

    /// The writes [`Rules::apply`] makes for `upserts` and `deletes`: a put per rule, a check
    /// per distinct channel they name, a delete per key, and the version bump.
    pub fn apply_writes(upserts: &[Rule], deletes: &[RuleKey]) -> usize {
        let channels: BTreeSet<&ChannelId> =
            upserts.iter().flat_map(|r| r.channel_ids.iter()).collect();
        upserts.len() + channels.len() + deletes.len() + 1
    }

    /// Puts `upserts` and deletes `deletes` — rules of `org`, no key in both — in one
    /// transaction with the version bump, if the org's rules version is still `expected`:
    /// [`RepoError::RulesChanged`] (nothing written) when it moved,
    /// [`RepoError::UnknownChannel`] when a channel an upsert names does not exist,
    /// [`RepoError::TooLarge`] beyond DynamoDB's 100 writes. Returns the new version.
    pub async fn apply(
        &self,
        org: &OrgId,
        upserts: &[Rule],
        deletes: &[RuleKey],
        expected: i64,
    ) -> Result<i64, RepoError> {
        let writes = Self::apply_writes(upserts, deletes);
        if writes > MAX_TRANSACTION_WRITES {
            return Err(RepoError::TooLarge {
                writes,
                max: MAX_TRANSACTION_WRITES,
            });
        }
        let mut ops = Vec::with_capacity(writes);
        let mut channels: BTreeSet<&ChannelId> = BTreeSet::new();
        for rule in upserts {
            debug_assert_eq!(&rule.org_id, org);
            ops.push(WriteOp::Put {
                item: Item::new(
                    keys::rule(org, &rule.key),
                    entity::RULE,
                    encode(rule, entity::RULE)?,
                ),
                condition: Condition::None,
            });
            channels.extend(rule.channel_ids.iter());
        }
        ops.extend(channels.into_iter().map(|c| WriteOp::Check {
            key: keys::channel(org, c),
            condition: Condition::Exists,
        }));
        ops.extend(deletes.iter().map(|key| WriteOp::Delete {
            key: keys::rule(org, key),
            condition: Condition::None,
        }));
        // The version is the guard: every rule write bumps it, so an unchanged version means
        // unchanged rules. Before the first rule write there is no version item (version 0).
        let guard = if expected == 0 {
            Condition::NotExists
        } else {
            Condition::NumEquals {
                attr: keys::RULES_VERSION_ATTR.to_owned(),
                value: expected,
            }
        };
        ops.push(WriteOp::Add {
            key: keys::rules_version(org),
            entity_type: entity::RULES_VERSION.to_owned(),
            deltas: BTreeMap::from([(keys::RULES_VERSION_ATTR.to_owned(), 1)]),
            condition: guard,
        });
        match self.store.transact(ops).await {
            Ok(()) => Ok(expected.saturating_add(1)),
            Err(StoreError::Conflict) => {
                let current = self.version(org).await?;
                if current != expected {
                    return Err(RepoError::RulesChanged { expected, current });
                }
                for rule in upserts {
                    if let Some(c) = self.missing_channel(rule).await? {
                        return Err(RepoError::UnknownChannel(c));
                    }
                }
                Err(RepoError::Contended)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The org's rules version: 0 before any rule write, then one more per create, update and
    /// delete. Reading it is one `GetItem`; a cache of compiled rules is fresh while it matches.
    pub async fn version(&self, org: &OrgId) -> Result<i64, RepoError> {
        Ok(self
            .store
            .get(&keys::rules_version(org))
            .await?
            .and_then(|i| i.nums.get(keys::RULES_VERSION_ATTR).copied())
            .unwrap_or(0))
    }
}
