//! The rules cache: each org's compiled rule set, channels and silences, reloaded when older than a bound.
//!
//! A rule, channel or silence change takes effect within `max_age` (default 5 s) on every matcher
//! instance: the staleness bound documented in `docs/pipeline.md`. Where the API runs in the same
//! process (`herald serve`) it also tells the cache of each change ([`RoutingChanges`]), which
//! drops the org's entry at once: the change applies to every event accepted after the API
//! answered. Concurrent misses for one org share one load (a batch's events of one org would
//! otherwise each run the org's three queries at once, every `max_age`); loads of different orgs
//! run side by side.

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
use herald_shared::routing::RoutingChanges;
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
    orgs: Mutex<Orgs>,
}

/// The cache's entries, and a count of the routing changes it was told of.
#[derive(Debug, Default)]
struct Orgs {
    slots: HashMap<OrgId, Slot>,
    /// Routing changes told so far ([`RoutingChanges::changed`]): a load keeps its result only
    /// when its org had no change since the load began.
    changes: u64,
}

/// One org's place in the cache.
#[derive(Debug)]
struct Slot {
    /// The last load and when it finished.
    loaded: Option<(Instant, Arc<OrgRules>)>,
    /// Held while the org loads: a miss that finds it taken waits, then takes that load.
    loading: Arc<tokio::sync::Mutex<()>>,
    /// [`Orgs::changes`] at the org's last change, or when the slot was made (what it knew
    /// of changes before then is gone).
    changed: u64,
}

impl RulesCache {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            orgs: Mutex::new(Orgs::default()),
        }
    }

    /// The org's rules, from the cache when fresh enough, else from a load that finished after
    /// this call began (its own, or one it waited for) and that no change of the org overtook.
    pub async fn get(&self, store: &dyn Store, org: OrgId) -> Result<Arc<OrgRules>, StoreError> {
        let asked = Instant::now();
        let loading = {
            let mut orgs = self.orgs();
            if let Some(hit) = self.usable(orgs.slots.get(&org), asked) {
                return Ok(hit);
            }
            Arc::clone(&orgs.slot(org).loading)
        };
        let _loading = loading.lock().await;
        let began = {
            let orgs = self.orgs();
            if let Some(hit) = self.usable(orgs.slots.get(&org), asked) {
                return Ok(hit);
            }
            orgs.changes
        };
        let loaded = Arc::new(load(store, org).await?);
        let mut orgs = self.orgs();
        let slot = orgs.slot(org);
        // A change told while this load ran may not be in what it read: answer this call (it
        // began before the change) but keep nothing for the calls after it.
        if slot.changed <= began {
            slot.loaded = Some((Instant::now(), Arc::clone(&loaded)));
        }
        Ok(loaded)
    }

    /// The slot's rules if fresh enough, or loaded since `asked`.
    fn usable(&self, slot: Option<&Slot>, asked: Instant) -> Option<Arc<OrgRules>> {
        let (at, rules) = slot?.loaded.as_ref()?;
        (at.elapsed() < self.max_age || *at >= asked).then(|| Arc::clone(rules))
    }

    fn orgs(&self) -> std::sync::MutexGuard<'_, Orgs> {
        self.orgs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RoutingChanges for RulesCache {
    /// Drops the org's entry, and keeps out any load of it that began before now.
    fn changed(&self, org: OrgId) {
        let mut orgs = self.orgs();
        orgs.changes += 1;
        let changes = orgs.changes;
        let slot = orgs.slot(org);
        slot.loaded = None;
        slot.changed = changes;
    }
}

impl Orgs {
    /// The org's slot, made if absent (the cache starting over first when it holds
    /// [`MAX_ORGS`]).
    fn slot(&mut self, org: OrgId) -> &mut Slot {
        if self.slots.len() >= MAX_ORGS && !self.slots.contains_key(&org) {
            self.slots.clear();
        }
        let changes = self.changes;
        self.slots.entry(org).or_insert_with(|| Slot {
            loaded: None,
            loading: Arc::default(),
            changed: changes,
        })
    }
}

/// Reads and compiles the org's rules, channels and live silences.
async fn load(store: &dyn Store, org: OrgId) -> Result<OrgRules, StoreError> {
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
    Ok(OrgRules {
        rules: RuleSet::compile(&rules),
        by_key: rules.into_iter().map(|r| (r.key.clone(), r)).collect(),
        channels: channels.into_iter().map(|c| (c.id, c)).collect(),
        silences,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use herald_core::domain::rule::NewRule;
    use herald_shared::repo::{Channels, Rules};
    use herald_shared::store::embedded::Embedded;
    use herald_testing::store::{Call, Watch, Watched};

    use super::*;

    /// Counts queries and makes each take a moment, so that concurrent loads overlap.
    #[derive(Debug, Default)]
    struct SlowQueries {
        queries: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    #[async_trait]
    impl Watch for SlowQueries {
        async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
            if let Call::Query(_) = call {
                self.queries.fetch_add(1, Ordering::SeqCst);
                let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_in_flight.fetch_max(in_flight, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(())
        }
    }

    /// The embedded store, its queries slowed down and counted (`store.watch`).
    fn slow_store() -> Arc<Watched<SlowQueries>> {
        Watched::new(
            Arc::new(Embedded::in_memory().expect("store")),
            SlowQueries::default(),
        )
    }

    /// Queries of one load: rules, channels, silences.
    const LOAD: usize = 3;

    #[tokio::test]
    async fn concurrent_misses_for_one_org_share_one_load() {
        let store = slow_store();
        // Nothing is ever fresh: only sharing a load in flight saves one.
        let cache = RulesCache::new(Duration::ZERO);
        let org = OrgId::new();
        let loads =
            futures::future::join_all((0..10).map(|_| cache.get(store.as_ref(), org))).await;
        assert!(loads.iter().all(Result::is_ok));
        assert_eq!(store.watch.queries.load(Ordering::SeqCst), LOAD);
        assert_eq!(store.watch.most_in_flight.load(Ordering::SeqCst), 1);
        // A call after that load finished does not take it: max_age 0 means always reload.
        cache.get(store.as_ref(), org).await.expect("get");
        assert_eq!(store.watch.queries.load(Ordering::SeqCst), 2 * LOAD);
    }

    #[tokio::test]
    async fn different_orgs_load_side_by_side_and_a_fresh_load_is_reused() {
        let store = slow_store();
        let cache = RulesCache::new(Duration::from_secs(60));
        let orgs = [OrgId::new(), OrgId::new(), OrgId::new()];
        let loads =
            futures::future::join_all(orgs.iter().map(|org| cache.get(store.as_ref(), *org))).await;
        assert!(loads.iter().all(Result::is_ok));
        assert_eq!(
            store.watch.queries.load(Ordering::SeqCst),
            orgs.len() * LOAD
        );
        // One org's load does not wait for another's.
        assert_eq!(
            store.watch.most_in_flight.load(Ordering::SeqCst),
            orgs.len()
        );
        for org in orgs {
            cache.get(store.as_ref(), org).await.expect("get");
        }
        assert_eq!(
            store.watch.queries.load(Ordering::SeqCst),
            orgs.len() * LOAD
        );
    }

    /// A rule of `org` keyed `key`, to a new Slack channel stored in `store`.
    async fn rule(store: &dyn Store, org: OrgId, key: &str) -> Rule {
        let channel = herald_testing::channels::slack(org);
        Channels::new(store)
            .create(&channel)
            .await
            .expect("channel");
        let input = NewRule {
            key: key.to_owned(),
            channel_ids: vec![channel.id.to_string()],
            enabled: true,
            ..NewRule::default()
        };
        Rule::new(org, input, chrono::Utc::now()).expect("rule")
    }

    #[tokio::test]
    async fn a_change_drops_that_org_at_once_and_no_other() {
        let store = slow_store();
        let cache = RulesCache::new(Duration::from_secs(60));
        let (org, other) = (OrgId::new(), OrgId::new());
        for org in [org, other] {
            assert!(
                cache
                    .get(store.as_ref(), org)
                    .await
                    .expect("get")
                    .by_key
                    .is_empty()
            );
        }
        let rule = rule(store.as_ref(), org, "disk.full").await;
        Rules::new(store.as_ref())
            .create(&rule)
            .await
            .expect("create");
        cache.changed(org);
        let rules = cache.get(store.as_ref(), org).await.expect("get");
        assert!(rules.by_key.contains_key(&rule.key));
        cache.get(store.as_ref(), other).await.expect("get");
        assert_eq!(store.watch.queries.load(Ordering::SeqCst), 3 * LOAD);
    }

    #[tokio::test]
    async fn a_load_a_change_overtook_is_not_kept() {
        let store = slow_store();
        let cache = RulesCache::new(Duration::from_secs(60));
        let org = OrgId::new();
        let rule = rule(store.as_ref(), org, "disk.full").await;
        let change = async {
            // The load has read the rules once its second query (channels) began.
            while store.watch.queries.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            Rules::new(store.as_ref())
                .create(&rule)
                .await
                .expect("create");
            cache.changed(org);
        };
        let (loaded, ()) = tokio::join!(cache.get(store.as_ref(), org), change);
        assert!(loaded.expect("get").by_key.is_empty());
        // Kept, the load would answer for a minute without the rule.
        let rules = cache.get(store.as_ref(), org).await.expect("get");
        assert!(rules.by_key.contains_key(&rule.key));
    }
}
