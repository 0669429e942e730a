//! Test fixtures and proptest strategies for the rule engine: valid matchers and events drawn from
//! one small vocabulary so that random rules often match random events.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Leaf, Matcher, Op};
use crate::domain::event::{Event, EventType, Module};
use crate::domain::rule::Rule;
use crate::domain::{EventId, OrgId, RuleKey};

pub(crate) const TYPES: [&str; 5] = [
    "email.bounced",
    "email.delivered",
    "auth.login",
    "auth.failed",
    "ops.alert",
];
pub(crate) const MODULES: [&str; 3] = ["email", "auth", "ops"];
const WORDS: [&str; 6] = ["prod", "test", "vip", "eu", "email.", "a"];

/// An event with the given type, module and properties (an object).
pub(crate) fn event(event_type: &str, module: &str, properties: Value) -> Event {
    let Value::Object(properties) = properties else {
        panic!("properties must be an object")
    };
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
    Event {
        id: EventId::parse("e-1").unwrap(),
        org_id: OrgId::from(uuid::Uuid::nil()),
        event_type: EventType::parse(event_type).unwrap(),
        module: Module::parse(module).unwrap(),
        properties,
        recipients: vec![],
        occurred_at: at,
        received_at: at,
        alert: None,
    }
}

/// An enabled rule with the given key and matcher, and nothing else of note.
pub(crate) fn rule(key: &str, matcher: Option<Matcher>) -> Rule {
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
    Rule {
        key: RuleKey::parse(key).unwrap(),
        org_id: OrgId::from(uuid::Uuid::nil()),
        matcher,
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
    }
}

pub(crate) fn leaf(field: &str, op: Op, value: Option<Value>) -> Matcher {
    Matcher::Leaf(Leaf {
        field: field.into(),
        op,
        value,
    })
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&WORDS[..]).prop_map(str::to_owned),
        proptest::sample::select(&TYPES[..]).prop_map(str::to_owned),
        proptest::sample::select(&MODULES[..]).prop_map(str::to_owned),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..4).prop_map(|n| json!(n)),
        (-6i64..7).prop_map(|n| json!(n as f64 / 2.0))
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(Value::String),
        number(),
        any::<bool>().prop_map(Value::Bool)
    ]
}

fn string_leaf(field: &'static str) -> impl Strategy<Value = Matcher> {
    let strings = || proptest::collection::vec(word().prop_map(Value::String), 1..4);
    prop_oneof![
        word().prop_map(move |w| leaf(field, Op::Eq, Some(json!(w)))),
        word().prop_map(move |w| leaf(field, Op::Ne, Some(json!(w)))),
        strings().prop_map(move |ws| leaf(field, Op::In, Some(Value::Array(ws)))),
        strings().prop_map(move |ws| leaf(field, Op::Nin, Some(Value::Array(ws)))),
        word().prop_map(move |w| leaf(field, Op::Prefix, Some(json!(w)))),
        Just(leaf(field, Op::Prefix, Some(json!("email")))),
        word().prop_map(move |w| leaf(field, Op::Suffix, Some(json!(w)))),
        word().prop_map(move |w| leaf(field, Op::Contains, Some(json!(w)))),
        proptest::sample::select(&["^auth", "ed$", "[ae]l", "^(ops|email)$"][..])
            .prop_map(move |r| leaf(field, Op::Regex, Some(json!(r)))),
    ]
}

fn property_leaf() -> impl Strategy<Value = Matcher> {
    let field = proptest::sample::select(
        &[
            "properties.n",
            "properties.s",
            "properties.tags",
            "properties.o.x",
            "properties.missing",
        ][..],
    );
    let ops = proptest::sample::select(&Op::ALL[..]);
    (
        field,
        ops,
        scalar(),
        proptest::collection::vec(scalar(), 1..4),
        number(),
        word(),
        any::<Option<bool>>(),
    )
        .prop_map(|(field, op, s, list, n, w, flag)| {
            let value = match op {
                Op::Eq | Op::Ne => Some(s),
                Op::In | Op::Nin => Some(Value::Array(list)),
                Op::Gt | Op::Gte | Op::Lt | Op::Lte => Some(n),
                Op::Prefix | Op::Suffix | Op::Contains => Some(Value::String(w)),
                Op::Exists => flag.map(Value::Bool),
                Op::Regex => Some(json!("^[a-p]")),
            };
            leaf(field, op, value)
        })
}

/// A valid leaf.
pub(crate) fn any_leaf() -> impl Strategy<Value = Matcher> {
    prop_oneof![string_leaf("type"), string_leaf("module"), property_leaf()]
}

fn count_nodes(m: &Matcher) -> usize {
    match m {
        Matcher::All { all: c } | Matcher::Any { any: c } => {
            1 + c.iter().map(count_nodes).sum::<usize>()
        }
        Matcher::Not { not } => 1 + count_nodes(not),
        Matcher::Leaf(_) => 1,
    }
}

/// A valid matcher at most 4 levels deep with at most 30 nodes, so that two of them combined
/// under two more levels stay within the bounds.
pub(crate) fn any_matcher() -> impl Strategy<Value = Matcher> {
    any_leaf()
        .prop_recursive(3, 24, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|all| Matcher::All { all }),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|any| Matcher::Any { any }),
                inner.prop_map(|m| Matcher::Not { not: Box::new(m) }),
            ]
        })
        .prop_filter("at most 30 nodes", |m| count_nodes(m) <= 30)
}

/// A matcher shaped like real rules: often an `all` led by a `type`/`module` constraint, which
/// the rule set indexes.
pub(crate) fn rule_matcher() -> impl Strategy<Value = Matcher> {
    let types = proptest::sample::select(&TYPES[..]);
    let modules = proptest::sample::select(&MODULES[..]);
    let type_constraint = prop_oneof![
        types.prop_map(|t| leaf("type", Op::Eq, Some(json!(t)))),
        proptest::sample::subsequence(&TYPES[..], 1..3).prop_map(|ts| leaf(
            "type",
            Op::In,
            Some(json!(ts))
        )),
        proptest::sample::select(&["email", "email.", "auth.f", "", "ops.alert"][..])
            .prop_map(|p| leaf("type", Op::Prefix, Some(json!(p)))),
    ];
    let module_constraint = prop_oneof![
        modules.prop_map(|m| leaf("module", Op::Eq, Some(json!(m)))),
        proptest::sample::subsequence(&MODULES[..], 1..3).prop_map(|ms| leaf(
            "module",
            Op::In,
            Some(json!(ms))
        )),
    ];
    prop_oneof![
        2 => (proptest::option::of(type_constraint.clone()), proptest::option::of(module_constraint.clone()), any_matcher())
            .prop_map(|(t, m, rest)| Matcher::All { all: t.into_iter().chain(m).chain([rest]).collect() }),
        1 => proptest::collection::vec(type_constraint, 0..3).prop_map(|any| Matcher::Any { any }),
        1 => (module_constraint, any_leaf()).prop_map(|(m, l)| Matcher::Any { any: vec![Matcher::All { all: vec![m, l] }] }),
        1 => (proptest::sample::subsequence(&WORDS[..], 1..3), any_matcher()).prop_map(|(ws, rest)| {
            Matcher::All { all: vec![leaf("properties.s", Op::In, Some(json!(ws))), rest] }
        }),
        1 => any_matcher(),
    ]
}

/// An event from the shared vocabulary, with properties of mixed kinds, sometimes missing.
pub(crate) fn any_event() -> impl Strategy<Value = Event> {
    let value = prop_oneof![scalar(), Just(Value::Null)];
    (
        proptest::sample::select(&TYPES[..]),
        proptest::sample::select(&MODULES[..]),
        proptest::option::of(prop_oneof![number(), scalar()]),
        proptest::option::of(word()),
        proptest::option::of(proptest::collection::vec(word(), 0..3)),
        proptest::option::of(value),
    )
        .prop_map(|(t, m, n, s, tags, x)| {
            let mut props = serde_json::Map::new();
            if let Some(n) = n {
                props.insert("n".into(), n);
            }
            if let Some(s) = s {
                props.insert("s".into(), json!(s));
            }
            if let Some(tags) = tags {
                props.insert("tags".into(), json!(tags));
            }
            if let Some(x) = x {
                props.insert("o".into(), json!({ "x": x }));
            }
            event(t, m, Value::Object(props))
        })
}
