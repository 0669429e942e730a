//! The rules cache: each org's compiled rule set and channels, reloaded when older than a bound.
//!
//! A rule or channel change takes effect within `max_age` (default 5 s) on every matcher
//! instance: the staleness bound documented in `docs/pipeline.md`. Loading happens outside the
//! lock; two concurrent misses for one org both load, and the later one wins — harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::domain::channel::Channel;
use herald_core::domain::{ChannelId, OrgId};
use herald_core::rules::RuleSet;
use herald_shared::repo;
use herald_shared::store::{Store, StoreError};

/// One org's routing configuration, compiled.
#[derive(Debug)]
pub struct OrgRules {
    pub rules: RuleSet,
    pub channels: HashMap<ChannelId, Channel>,
}

/// Orgs kept at most; past it the cache starts over (a bound, not an LRU: orgs reload in ms).
const MAX_ORGS: usize = 10_000;

#[derive(Debug)]
pub struct RulesCache {
    max_age: Duration,
    orgs: Mutex<HashMap<OrgId, (Instant, Arc<OrgRules>)>>,
}

impl RulesCache {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            orgs: Mutex::new(HashMap::new()),
        }
    }

    /// The org's rules, from the cache when fresh enough.
    pub async fn get(&self, store: &dyn Store, org: OrgId) -> Result<Arc<OrgRules>, StoreError> {
        if let Some(hit) = self.fresh(org) {
            return Ok(hit);
        }
        let rules = repo::rules::list_all(store, org).await?;
        let channels = repo::channels::list_all(store, org).await?;
        let loaded = Arc::new(OrgRules {
            rules: RuleSet::compile(&rules),
            channels: channels.into_iter().map(|c| (c.id, c)).collect(),
        });
        let mut orgs = self
            .orgs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if orgs.len() >= MAX_ORGS {
            orgs.clear();
        }
        orgs.insert(org, (Instant::now(), Arc::clone(&loaded)));
        Ok(loaded)
    }

    fn fresh(&self, org: OrgId) -> Option<Arc<OrgRules>> {
        let orgs = self
            .orgs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        orgs.get(&org)
            .filter(|(at, _)| at.elapsed() < self.max_age)
            .map(|(_, rules)| Arc::clone(rules))
    }
}
