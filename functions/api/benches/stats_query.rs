//! The stats query's latency at 10,000 and 1,000,000 logged deliveries (SPEC §5).
//!
//! Stats are read from counters maintained as deliveries happen, so the query's cost depends on
//! the days asked for and the number of channels and rules, not on the rows logged. To show it,
//! each case writes N delivery log rows (the records the log API lists, in batches of 100 per
//! transaction) and the counters those N deliveries would have produced — the same `ADD`s on the
//! same items, aggregated per (day, channel, rule) so that generating a million is fast — into
//! one embedded store on disk, then times `GET .../logs/stats` (the default 7 days, grouped by
//! channel, rule and day) through the aggregation the handler runs.
//!
//! `cargo bench -p herald-api --bench stats_query`

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use herald_api::stats::{GroupBy, read};
use herald_core::domain::channel::ChannelKind;
use herald_core::domain::delivery::{Delivery, DeliveryStatus, Trigger};
use herald_core::domain::{ChannelId, DeliveryId, EventId, OrgId, RuleKey};
use herald_shared::repo::{deliveries, stats};
use herald_shared::store::Store;
use herald_shared::store::embedded::Embedded;

const DAYS: i64 = 7;
const CHANNELS: usize = 20;
const RULES: usize = 10;

/// Writes the counters of `rows` deliveries spread over the last 7 days, 20 channels and 10
/// rules, with a realistic mix of outcomes and latencies.
fn populate(rt: &tokio::runtime::Runtime, store: &Embedded, org: OrgId, rows: u64) {
    let channels: Vec<ChannelId> = (0..CHANNELS).map(|_| ChannelId::new()).collect();
    let rules: Vec<RuleKey> = (0..RULES)
        .map(|i| RuleKey::parse(format!("rule.{i}")).expect("key"))
        .collect();
    let today = Utc::now().date_naive();
    let now = Utc::now();
    let ttl = (now + Duration::days(30)).timestamp();
    let mut batch = Vec::with_capacity(100);
    // Aggregate first: (day, channel, rule) → summed deltas.
    let mut cells: BTreeMap<(i64, usize, usize), BTreeMap<String, i64>> = BTreeMap::new();
    for i in 0..rows {
        let day = (i % DAYS as u64) as i64;
        let ch = (i / 7 % CHANNELS as u64) as usize;
        let rule = (i / 3 % RULES as u64) as usize;
        let (status, attempts, latency) = match i % 100 {
            0..=89 => (DeliveryStatus::Delivered, 1, Some(40 + i % 400)),
            90..=93 => (DeliveryStatus::Sent, 1, Some(200 + i % 2000)),
            94..=96 => (DeliveryStatus::Failed, 5, Some(60_000 + i % 100_000)),
            97..=98 => (DeliveryStatus::Suppressed, 0, None),
            _ => (DeliveryStatus::Deferred, 0, None),
        };
        stats::merge(
            cells.entry((day, ch, rule)).or_default(),
            &stats::deltas(status, attempts, latency),
        );
        let created_at = now - Duration::days(day);
        batch.push(
            deliveries::create_op(
                &Delivery {
                    id: DeliveryId::new(),
                    org_id: org,
                    event_id: EventId::parse(format!("evt-{i}")).expect("id"),
                    event_type: "invoice.overdue".into(),
                    rule_key: Some(rules[rule].clone()),
                    channel_id: channels[ch],
                    channel_kind: ChannelKind::Webhook,
                    recipient: None,
                    trigger: Trigger::Event,
                    status,
                    reason: None,
                    attempts: Vec::new(),
                    engagement: Vec::new(),
                    next_attempt_at: None,
                    cap_slot: None,
                    recovered: None,
                    event_ids: Vec::new(),
                    event_count: None,
                    created_at,
                    updated_at: created_at,
                },
                ttl,
            )
            .expect("op"),
        );
        if batch.len() == 100 {
            rt.block_on(store.transact(std::mem::take(&mut batch)))
                .expect("log rows");
        }
    }
    if !batch.is_empty() {
        rt.block_on(store.transact(batch)).expect("log rows");
    }
    rt.block_on(async {
        for ((day, ch, rule), deltas) in &cells {
            stats::add(
                store,
                org,
                today - Duration::days(*day),
                channels[*ch],
                Some(&rules[*rule]),
                deltas,
            )
            .await
            .expect("add");
        }
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile_dir();
    let mut group = c.benchmark_group("stats_query");
    for rows in [10_000u64, 1_000_000] {
        let store = Embedded::open(dir.join(format!("stats-{rows}.redb"))).expect("store");
        let org = OrgId::new();
        let started = std::time::Instant::now();
        populate(&rt, &store, org, rows);
        eprintln!(
            "{rows} delivery log rows and their counters written in {:?}",
            started.elapsed()
        );
        let today = Utc::now().date_naive();
        let from = today - Duration::days(DAYS - 1);
        // Sanity: the totals are the rows.
        let answer = rt
            .block_on(read(&store, org, from, today, GroupBy::Channel))
            .expect("read");
        let counted: i64 = ["sent", "delivered", "failed", "suppressed", "deferred"]
            .iter()
            .map(|s| answer.totals.counts[*s])
            .sum();
        assert_eq!(counted, rows as i64);
        for (name, by) in [
            ("channel", GroupBy::Channel),
            ("rule", GroupBy::Rule),
            ("day", GroupBy::Day),
        ] {
            group.bench_with_input(BenchmarkId::new(name, rows), &rows, |b, _| {
                b.iter(|| {
                    rt.block_on(read(&store, org, from, today, by))
                        .expect("read")
                });
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-stats-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

criterion_group!(benches, bench);
criterion_main!(benches);
