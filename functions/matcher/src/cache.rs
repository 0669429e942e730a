//! The rules cache: each org's compiled rule set, channels and silences, reloaded when older than a bound.
//!
//! A rule, channel or silence change takes effect within `max_age` (default 5 s) on every matcher
//! instance: the staleness bound documented in `docs/pipeline.md`. Loading happens outside the
//! lock; two concurrent misses for one org both load, and the later one wins — harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::domain::channel::Channel;
use herald_core::domain::event::Event;
use herald_core::domain::rule::Rule;
use herald_core::domain::silence::Silence;
use herald_core::domain::{ChannelId, OrgId, RuleKey, SilenceId};
use herald_core::rules::{CompiledMatcher, RuleSet};
use herald_shared::repo;
use herald_shared::store::{Store, StoreError};

/// One org's routing configuration, compiled.
#[derive(Debug)]
pub struct OrgRules {
    pub rules: RuleSet,
    /// The same rules by key: where a resolved follow-up finds the rule that notified.
    pub by_key: HashMap<RuleKey, Rule>,
    pub channels: HashMap<ChannelId, Channel>,
    /// Silences that had not ended when loaded, matchers compiled. Their start and end are
    /// checked at each use, so one that begins or ends between reloads does so on time.
    pub silences: Vec<(Silence, Option<CompiledMatcher>)>,
}

impl OrgRules {
    /// The first silence that silences `event`'s delivery by `rule` to `channel` at `now`.
    pub fn silence_for(
        &self,
        event: &Event,
        rule: &RuleKey,
        channel: ChannelId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<SilenceId> {
        self.silences
            .iter()
            .find(|(s, m)| s.silences(m.as_ref(), event, rule, channel, now))
            .map(|(s, _)| s.id)
    }

    /// Whether silences hold back `event`'s alert by `rule` on every one of `channels` at
    /// `now` (what keeps it out of a group message): the first such silence and when the
    /// earliest of them ends. `None` when one channel is not silenced (or there is none).
    pub fn silence_on_all(
        &self,
        event: &Event,
        rule: &RuleKey,
        channels: &[ChannelId],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(SilenceId, chrono::DateTime<chrono::Utc>)> {
        let mut found: Option<(SilenceId, chrono::DateTime<chrono::Utc>)> = None;
        for channel in channels {
            let (silence, _) = self
                .silences
                .iter()
                .find(|(s, m)| s.silences(m.as_ref(), event, rule, *channel, now))?;
            found = Some(match found {
                Some((id, end)) => (id, end.min(silence.ends_at)),
                None => (silence.id, silence.ends_at),
            });
        }
        found
    }
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
        let silences = repo::silences::live(store, org, chrono::Utc::now())
            .await
            .map_err(repo::RepoError::into_store)?
            .into_iter()
            .filter_map(|s| match s.compile() {
                Ok(m) => Some((s, m)),
                // Checked when written: a stored matcher that no longer compiles is a bug.
                Err(e) => {
                    tracing::warn!(silence_id = %s.id, error = %e, "silence matcher does not compile; ignored");
                    None
                }
            })
            .collect();
        let loaded = Arc::new(OrgRules {
            rules: RuleSet::compile(&rules),
            by_key: rules.into_iter().map(|r| (r.key.clone(), r)).collect(),
            channels: channels.into_iter().map(|c| (c.id, c)).collect(),
            silences,
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
