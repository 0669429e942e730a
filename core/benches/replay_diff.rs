//! Rule replay's evaluation half (design §3b): 10,000 stored events routed through 1,000 live
//! rules and a 1,000-rule draft, and diffed — what `POST /notifications/rules/replay` does after
//! reading the events (the read is I/O and not measured here). The draft narrows every tenth rule
//! with a property condition and replaces ten rules by others; rules send to one of two channels.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_core::domain::channel::{Channel, ChannelConfig, ChannelHealth, ChannelName};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::rule::Rule;
use herald_core::domain::{ChannelId, EventId, OrgId, RuleKey};
use herald_core::rules::RuleSet;
use herald_core::rules::replay::{Diff, route};
use serde_json::json;

const RULES: usize = 1_000;
const EVENTS: usize = 10_000;
const MODULES: usize = 20;
const TYPES: usize = 50;

/// xorshift64*: the same events every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn channel() -> Channel {
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("date");
    Channel {
        id: ChannelId::new(),
        org_id: OrgId::new(),
        name: ChannelName::parse("c").expect("name"),
        config: serde_json::from_value::<ChannelConfig>(
            json!({"kind": "slack", "webhookUrl": "https://hooks.slack.com/services/T/B/x"}),
        )
        .expect("config"),
        frequency_cap: None,
        rate_limit: None,
        enabled: true,
        health: ChannelHealth::default(),
        created_at: at,
        updated_at: at,
    }
}

fn rule(key: String, matcher: serde_json::Value, channel: ChannelId) -> Rule {
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("date");
    Rule {
        key: RuleKey::parse(key).expect("key"),
        org_id: OrgId::new(),
        matcher: Rule::parse_matcher(Some(matcher)).expect("matcher"),
        channel_ids: vec![channel],
        frequency_cap: None,
        quiet_hours: None,
        recipients: vec![],
        template: None,
        alerting: None,
        critical: false,
        digest: None,
        enabled: true,
        created_at: at,
        updated_at: at,
    }
}

fn type_of(i: usize) -> (String, String) {
    let m = i % MODULES;
    (format!("mod{m}.t{}", i % TYPES), format!("mod{m}"))
}

fn bench(c: &mut Criterion) {
    let channels = [channel(), channel()];
    let find = |id: &ChannelId| channels.iter().find(|c| c.id == *id);
    let live: Vec<Rule> = (0..RULES)
        .map(|i| {
            let (t, m) = type_of(i);
            rule(
                format!("rule-{i}"),
                json!({"all": [{"field": "type", "op": "eq", "value": t},
                               {"field": "module", "op": "eq", "value": m}]}),
                channels[i % 2].id,
            )
        })
        .collect();
    let draft: Vec<Rule> = (0..RULES)
        .map(|i| {
            let (t, m) = type_of(i);
            if i % 100 == 0 {
                return rule(
                    format!("new-{i}"),
                    json!({"field": "type", "op": "eq", "value": t}),
                    channels[(i + 1) % 2].id,
                );
            }
            let mut all = vec![
                json!({"field": "type", "op": "eq", "value": t}),
                json!({"field": "module", "op": "eq", "value": m}),
            ];
            if i % 10 == 0 {
                all.push(
                    json!({"field": "properties.severity", "op": "in", "value": ["critical"]}),
                );
            }
            rule(
                format!("rule-{i}"),
                json!({ "all": all }),
                channels[i % 2].id,
            )
        })
        .collect();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("date");
    let events: Vec<Event> = (0..EVENTS)
        .map(|i| {
            let (t, m) = type_of(rng.below(MODULES * TYPES));
            let severity = ["low", "high", "critical"][rng.below(3)];
            let serde_json::Value::Object(properties) =
                json!({"severity": severity, "host": format!("web-{i}")})
            else {
                unreachable!("an object literal")
            };
            Event {
                id: EventId::parse(format!("evt-{i}")).expect("id"),
                org_id: OrgId::new(),
                event_type: EventType::parse(&t).expect("type"),
                module: Module::parse(&m).expect("module"),
                properties,
                recipients: vec![],
                occurred_at: at,
                received_at: at,
                alert: None,
            }
        })
        .collect();

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.bench_function("compile_1000_live_and_1000_draft", |b| {
        b.iter(|| {
            (
                RuleSet::compile(black_box(&live)),
                RuleSet::compile(black_box(&draft)),
            )
        });
    });
    let (l, d) = (RuleSet::compile(&live), RuleSet::compile(&draft));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("route_and_diff_10000_events", |b| {
        b.iter(|| {
            let mut diff = Diff::new(
                live.iter().map(|r| &r.key),
                draft.iter().map(|r| &r.key),
                10,
            );
            for e in &events {
                diff.add(e, &route(&l, e, find), &route(&d, e, find));
            }
            black_box(diff.totals.clone())
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
