//! Rule matching, one already-parsed event against one org's compiled rules (SPEC §5: p50 under
//! 5 µs at 1,000 rules, under 20 µs at 10,000).
//!
//! The rule mix: 65% exact type + module (a third with a property `eq` too), 10% type prefix +
//! module, 10% exact type + numeric threshold, 10% exact type(s) + a negation (`ne`, `nin` or
//! `not contains`), 4% module + `type nin` or a regex on type, 1% with no type or module
//! constraint (org-wide catch-alls). Types are `<module>.<verb><n>`: 20 modules × 25 types each.
//!
//! Before criterion runs, a table of per-event percentiles is printed (`--bench` only).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use herald_core::domain::event::{Event, EventType, Module};
use herald_core::domain::matcher::{Leaf, Matcher, Op};
use herald_core::domain::rule::Rule;
use herald_core::domain::{EventId, OrgId, RuleKey};
use herald_core::rules::RuleSet;
use serde_json::{Value, json};

const MODULES: usize = 20;
const TYPES_PER_MODULE: usize = 25;
const SIZES: [usize; 2] = [1_000, 10_000];

/// xorshift64*: a fixed, dependency-free sequence so every run measures the same rules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn module(m: usize) -> String {
    format!("mod{m}")
}

fn event_type(m: usize, t: usize) -> String {
    const VERBS: [&str; 5] = ["created", "updated", "failed", "bounced", "paid"];
    format!("mod{m}.{}{t}", VERBS[t % VERBS.len()])
}

fn leaf(field: &str, op: Op, value: Value) -> Matcher {
    Matcher::Leaf(Leaf {
        field: field.into(),
        op,
        value: Some(value),
    })
}

fn all(all: Vec<Matcher>) -> Matcher {
    Matcher::All { all }
}

fn matcher(rng: &mut Rng) -> Matcher {
    let m = rng.below(MODULES);
    let t = rng.below(TYPES_PER_MODULE);
    let type_eq = leaf("type", Op::Eq, json!(event_type(m, t)));
    let module_eq = leaf("module", Op::Eq, json!(module(m)));
    match rng.below(100) {
        0..=64 => {
            let mut parts = vec![type_eq, module_eq];
            if rng.below(3) == 0 {
                parts.push(leaf(
                    "properties.plan",
                    Op::Eq,
                    json!(["free", "pro", "enterprise"][rng.below(3)]),
                ));
            }
            all(parts)
        }
        65..=74 => {
            let prefix = if rng.below(2) == 0 {
                format!("mod{m}.")
            } else {
                format!("mod{m}.fail")
            };
            all(vec![leaf("type", Op::Prefix, json!(prefix)), module_eq])
        }
        75..=84 => all(vec![
            type_eq,
            leaf("properties.amount", Op::Gt, json!(rng.below(1000))),
        ]),
        85..=94 => {
            let first = match rng.below(2) {
                0 => type_eq,
                _ => leaf(
                    "type",
                    Op::In,
                    json!([event_type(m, t), event_type(m, rng.below(TYPES_PER_MODULE))]),
                ),
            };
            let negation = match rng.below(3) {
                0 => leaf("properties.env", Op::Ne, json!("test")),
                1 => leaf("properties.env", Op::Nin, json!(["test", "staging"])),
                _ => Matcher::Not {
                    not: Box::new(leaf("properties.tags", Op::Contains, json!("internal"))),
                },
            };
            all(vec![first, negation])
        }
        95..=98 => match rng.below(2) {
            0 => all(vec![
                module_eq,
                leaf("type", Op::Nin, json!([event_type(m, 0), event_type(m, 1)])),
            ]),
            _ => all(vec![
                module_eq,
                leaf("type", Op::Regex, json!(format!(r"\.(failed|bounced){t}$"))),
            ]),
        },
        _ => match rng.below(2) {
            0 => Matcher::Any {
                any: vec![
                    leaf("properties.severity", Op::Eq, json!("critical")),
                    leaf("properties.amount", Op::Gte, json!(990)),
                ],
            },
            _ => all(vec![
                Matcher::Not {
                    not: Box::new(leaf("properties.env", Op::Eq, json!("test"))),
                },
                leaf("properties.severity", Op::In, json!(["critical", "high"])),
            ]),
        },
    }
}

fn rules(n: usize) -> Vec<Rule> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let org = OrgId::new();
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    (0..n)
        .map(|i| Rule {
            key: RuleKey::parse(format!("rule-{i}")).expect("valid key"),
            org_id: org,
            matcher: Some(matcher(&mut rng)),
            channel_ids: vec![],
            frequency_cap: None,
            quiet_hours: None,
            alerting: None,
            recipients: vec![],
            template: None,
            critical: false,
            digest: None,
            enabled: true,
            created_at: at,
            updated_at: at,
        })
        .collect()
}

fn events(count: usize) -> Vec<Event> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    (0..count)
        .map(|i| {
            let m = rng.below(MODULES);
            let t = rng.below(TYPES_PER_MODULE);
            let plan = ["free", "pro", "enterprise"][rng.below(3)];
            let env = ["prod", "staging", "test"][rng.below(3)];
            let severity = ["low", "high", "critical"][rng.below(3)];
            let tags = if rng.below(4) == 0 {
                json!(["internal", "eu"])
            } else {
                json!(["eu"])
            };
            let properties = json!({
                "amount": rng.below(1000),
                "plan": plan,
                "env": env,
                "severity": severity,
                "tags": tags,
                "customer": {"id": format!("c{i}"), "country": "FR"},
            });
            let Value::Object(properties) = properties else {
                unreachable!("an object literal")
            };
            Event {
                id: EventId::parse(format!("evt-{i}")).expect("valid id"),
                org_id: OrgId::new(),
                event_type: EventType::parse(&event_type(m, t)).expect("valid type"),
                module: Module::parse(&module(m)).expect("valid module"),
                properties,
                recipients: vec![],
                occurred_at: at,
                received_at: at,
                alert: None,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Times single `matching` calls and prints p50/p99 against the targets.
fn print_percentiles() {
    let events = events(512);
    println!("\nrule matching, one event against one org's rules (SPEC §5)");
    println!(
        "| rules | compile | unindexed | matches/event | p50 | p99 | mean | target p50 | met |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|:---:|");
    for (n, target) in SIZES
        .into_iter()
        .zip([Duration::from_micros(5), Duration::from_micros(20)])
    {
        let rules = rules(n);
        let start = Instant::now();
        let set = RuleSet::compile(&rules);
        let compile = start.elapsed();
        let mut samples = Vec::with_capacity(200_000);
        let mut matched = 0usize;
        for e in events.iter().cycle().take(20_000) {
            black_box(set.matching(black_box(e)));
        }
        for e in events.iter().cycle().take(200_000) {
            let start = Instant::now();
            let hits = set.matching(black_box(e));
            samples.push(start.elapsed());
            matched += hits.len();
        }
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        samples.sort_unstable();
        let p50 = percentile(&samples, 0.50);
        println!(
            "| {n} | {:.1} ms | {} | {:.1} | {:.2} µs | {:.2} µs | {:.2} µs | {} µs | {} |",
            compile.as_secs_f64() * 1e3,
            set.unindexed(),
            matched as f64 / samples.len() as f64,
            p50.as_secs_f64() * 1e6,
            percentile(&samples, 0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            target.as_micros(),
            if p50 < target { "yes" } else { "NO" },
        );
    }
    println!();
}

fn bench_matching(c: &mut Criterion) {
    let events = events(512);
    let mut group = c.benchmark_group("rule_matching");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let set = RuleSet::compile(&rules(n));
        group.bench_with_input(BenchmarkId::new("one_event", n), &set, |b, set| {
            let mut next = events.iter().cycle();
            b.iter(|| {
                set.matching(black_box(next.next().expect("cycle never ends")))
                    .len()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matching);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        print_percentiles();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
