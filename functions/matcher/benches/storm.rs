//! The alert storm benchmark (issue 13; design §1c): `BENCH_STORM_EVENTS` (100,000) trigger
//! events over `BENCH_STORM_KEYS` (1,000) dedup keys in `BENCH_STORM_GROUPS` (10) groups, through
//! the real matcher handler over the embedded store (a redb file) and embedded queues, in
//! batches of `BENCH_STORM_BATCH` (10, the Lambda event source's batch). Two rules in turn:
//!
//! - **dedup**: `alerting.dedupKey` only — one Slack message per key;
//! - **grouped**: the same plus `groupBy: ["properties.cluster"]` — one message per group after
//!   the group wait (the ticks are handled at the wait's end, on the injected clock).
//!
//! Prints, per scenario: deliveries created, store writes per event (write requests: put,
//! delete, add, each transaction item), reads per event, and the matcher's time per batch
//! (p50/p99/max) and per event (batch time / batch size). The figures and the machine's load go
//! in docs/benchmarks.md.
//!
//! ```sh
//! cargo bench -p herald-matcher --bench storm
//! BENCH_STORM_EVENTS=10000 cargo bench -p herald-matcher --bench storm
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::domain::alert::{AlertAction, AlertSignal, Alerting};
use herald_core::domain::channel::{
    Channel, ChannelConfig, ChannelHealth, ChannelName, SlackConfig,
};
use herald_core::domain::delivery::Trigger;
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::rule::Rule;
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey};
use herald_matcher::{Matcher, RulesCache};
use herald_shared::pipeline::{MatchTask, QueueMessage};
use herald_shared::queue::Queue;
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::repo::deliveries::{self, LogFilter};
use herald_shared::repo::{Channels, Rules};
use herald_shared::store::StoreError;
use herald_shared::store::embedded::Embedded;
use herald_testing::store::{Call, Watch, Watched};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts the items read and written through the store it watches.
#[derive(Debug, Default)]
struct Counting {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counting {
    fn reset(&self) -> (u64, u64) {
        (
            self.reads.swap(0, Ordering::Relaxed),
            self.writes.swap(0, Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl Watch for Counting {
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        self.reads.fetch_add(call.reads() as u64, Ordering::Relaxed);
        self.writes
            .fetch_add(call.writes() as u64, Ordering::Relaxed);
        Ok(())
    }
}

struct Scenario {
    name: &'static str,
    grouped: bool,
}

struct Figures {
    events: usize,
    deliveries: usize,
    group_messages: usize,
    reads: u64,
    writes: u64,
    batch_ms: Vec<f64>,
    batch_size: usize,
    elapsed: Duration,
    first_message_after: Option<chrono::Duration>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn run(
    scenario: &Scenario,
    events: usize,
    keys: usize,
    groups: usize,
    batch: usize,
) -> Figures {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Watched::new(
        Arc::new(Embedded::open(dir.path().join("herald.redb")).expect("the store")),
        Counting::default(),
    );
    let queues = EmbeddedQueues::open(dir.path().join("queues.redb")).expect("the queues");
    let dispatch: Arc<dyn Queue> = Arc::new(queues.queue("dispatch", QueueSettings::default()));
    let matches: Arc<dyn Queue> = Arc::new(queues.queue("match", QueueSettings::default()));
    let org = OrgId::new();
    let t0 = Utc::now();
    let slack: SlackConfig = serde_json::from_value(
        serde_json::json!({"webhookUrl": "https://hooks.slack.com/services/T/B/x"}),
    )
    .expect("a config");
    let channel = Channel {
        id: ChannelId::new(),
        org_id: org,
        name: ChannelName::parse("ops").expect("a name"),
        config: ChannelConfig::Slack(slack),
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: t0,
        updated_at: t0,
    };
    Channels::new(store.as_ref())
        .create(&channel)
        .await
        .expect("the channel");
    let mut alerting = serde_json::json!({"dedupKey": "{{type}}:{{properties.host}}"});
    if scenario.grouped {
        alerting["groupBy"] = serde_json::json!(["properties.cluster"]);
        alerting["groupWaitSeconds"] = serde_json::json!(30);
    }
    let alerting: Alerting = serde_json::from_value(alerting).expect("alerting");
    let rule = Rule {
        key: RuleKey::parse("disk.full").expect("a key"),
        org_id: org,
        matcher: None,
        channel_ids: vec![channel.id],
        frequency_cap: None,
        quiet_hours: None,
        alerting: Some(alerting.check().expect("valid alerting")),
        recipients: vec![],
        template: None,
        critical: false,
        digest: None,
        enabled: true,
        created_at: t0,
        updated_at: t0,
    };
    Rules::new(store.as_ref())
        .create(&rule)
        .await
        .expect("the rule");
    let rules = RulesCache::new(Duration::from_secs(5));
    let matcher = Matcher {
        store: store.as_ref(),
        dispatch_queue: dispatch.as_ref(),
        match_queue: Some(matches.as_ref()),
        rules: &rules,
        retention: chrono::Duration::days(30),
    };
    store.watch.reset();

    let event = |i: usize, now: DateTime<Utc>| -> QueueMessage {
        let k = i % keys;
        let mut properties = serde_json::Map::new();
        properties.insert("host".into(), format!("host-{k:04}").into());
        properties.insert("cluster".into(), format!("cluster-{}", k % groups).into());
        properties.insert("pct".into(), 97.into());
        let e = Event {
            id: EventId::generate(),
            org_id: org,
            event_type: EventType::parse("disk.full").expect("a type"),
            module: Module::parse("ops").expect("a module"),
            properties,
            recipients: vec![],
            occurred_at: now,
            received_at: now,
            alert: Some(AlertSignal {
                dedup_key: None,
                action: AlertAction::Trigger,
                firing_since: None,
            }),
        };
        QueueMessage {
            id: e.id.to_string(),
            body: serde_json::to_string(&MatchTask {
                event: e,
                auto_resolve: None,
                group_tick: None,
                digest_flush: None,
                forwarded_again: false,
            })
            .expect("a task"),
            receive_count: 1,
        }
    };

    let started = Instant::now();
    let mut batch_ms = Vec::with_capacity(events / batch + 1);
    let mut i = 0;
    while i < events {
        let now = Utc::now();
        let messages: Vec<_> = (i..(i + batch).min(events))
            .map(|n| event(n, now))
            .collect();
        i += messages.len();
        let t = Instant::now();
        let outcome = matcher.handle(messages, now).await;
        batch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(outcome.failed.is_empty(), "a batch failed");
    }
    // The group ticks come due at the end of the wait: handled on the injected clock.
    let mut first_message_after = None;
    if scenario.grouped {
        let due = Utc::now() + chrono::Duration::seconds(31);
        let ticks: Vec<QueueMessage> = queues
            .peek("match", 100_000)
            .await
            .expect("peek")
            .into_iter()
            .filter(|p| p.body.contains("groupTick"))
            .map(|p| QueueMessage {
                id: p.message_id,
                body: p.body,
                receive_count: 1,
            })
            .collect();
        for chunk in ticks.chunks(batch) {
            let t = Instant::now();
            let outcome = matcher.handle(chunk.to_vec(), due).await;
            batch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(outcome.failed.is_empty(), "a tick failed");
        }
        first_message_after = Some(chrono::Duration::seconds(30));
    }
    let elapsed = started.elapsed();
    let (reads, writes) = store.watch.reset();
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = deliveries::list(
            store.as_ref(),
            org,
            &LogFilter::default(),
            200,
            cursor,
            Utc::now() + chrono::Duration::days(1),
        )
        .await
        .expect("the log");
        all.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    batch_ms.sort_by(f64::total_cmp);
    Figures {
        events,
        deliveries: all.len(),
        group_messages: all.iter().filter(|d| d.trigger == Trigger::Group).count(),
        reads,
        writes,
        batch_ms,
        batch_size: batch,
        elapsed,
        first_message_after,
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let events = env("BENCH_STORM_EVENTS", 100_000);
    let keys = env("BENCH_STORM_KEYS", 1_000);
    let groups = env("BENCH_STORM_GROUPS", 10);
    let batch = env("BENCH_STORM_BATCH", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "alert storm: {events} events, {keys} dedup keys, {groups} groups, batches of {batch}; \
         embedded store (redb file); load average before: {}",
        load()
    );
    println!(
        "| scenario | deliveries | group messages | store writes / event | reads / event | batch p50 / p99 / max (ms) | per event p99 (ms) | events/s | first message |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for scenario in [
        Scenario {
            name: "dedup",
            grouped: false,
        },
        Scenario {
            name: "grouped",
            grouped: true,
        },
    ] {
        let f = runtime.block_on(run(&scenario, events, keys, groups, batch));
        let per_event = |ms: f64| ms / f.batch_size as f64;
        let p99 = percentile(&f.batch_ms, 0.99);
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.3} | {:.0} | {} |",
            scenario.name,
            f.deliveries,
            f.group_messages,
            f.writes as f64 / f.events as f64,
            f.reads as f64 / f.events as f64,
            percentile(&f.batch_ms, 0.50),
            p99,
            f.batch_ms.last().copied().unwrap_or_default(),
            per_event(p99),
            f.events as f64 / f.elapsed.as_secs_f64(),
            f.first_message_after
                .map_or("at once".to_owned(), |d| format!(
                    "after the {} s wait",
                    d.num_seconds()
                )),
        );
    }
    println!("load average after: {}", load());
}
