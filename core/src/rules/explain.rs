//! Explain: why a rule matches an event or not, node by node — the slow, thorough twin of
//! [`super::RuleSet::matching`] for `POST /notifications/rules/explain`. Pure: the event and the
//! rule in, a trace out.
//!
//! The trace of a rule that does not match names, under `all`, its first failing child; under
//! `any`, every child (all failed); under `not`, that the inner matcher matched; at a leaf, the
//! field, the op, the expected value and the event's value — telling a missing field
//! (`missing: true`) from a value of the wrong kind (`note`). A rule without a matcher fails at
//! `key` (`type eq <key>`). It evaluates the compiled matcher the matcher uses, so it can never
//! disagree with routing (property test below).

use serde::Serialize;
use serde_json::Value;

use super::compile::{Node, Val};
use super::{Leaf, Matcher, Op};
use crate::domain::event::Event;
use crate::domain::rule::Rule;

/// Why a rule did not match: one failing node.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The node's path in the rule: `match.all[1]`, `match.any[0].not`, `key` (a rule without a
    /// matcher), `enabled` (a disabled rule).
    pub path: String,
    /// The leaf's field (`type`, `module`, `properties.a.b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The leaf's op (`eq`, `in`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub op: Option<Op>,
    /// The leaf's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub expected: Option<Value>,
    /// The event's value of the field (absent when the field is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub actual: Option<Value>,
    /// The event has no such field.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
    /// A sentence: `` `properties.severity` is "warning", expected `in ["critical"]` ``.
    pub message: String,
}

/// What explain found for one rule.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleTrace {
    pub matched: bool,
    /// Why not, when not matched: at least one failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<Failure>,
}

/// Whether `rule` fires on `event`, and if not, why. A disabled rule never fires (`enabled`); a
/// stored matcher that no longer compiles never fires either (its error's path).
pub fn explain(rule: &Rule, event: &Event) -> RuleTrace {
    if !rule.enabled {
        return RuleTrace {
            matched: false,
            because: vec![Failure::note("enabled", "the rule is disabled")],
        };
    }
    let (matcher, root) = match &rule.matcher {
        Some(m) => (m.clone(), "match"),
        None => (
            Matcher::Leaf(Leaf {
                field: "type".into(),
                op: Op::Eq,
                value: Some(Value::String(rule.key.as_str().to_owned())),
            }),
            "key",
        ),
    };
    let node = match matcher.compile() {
        Ok(c) => c.into_node(),
        Err(e) => {
            return RuleTrace {
                matched: false,
                because: vec![Failure::note(
                    &e.field,
                    &format!("the stored matcher does not compile: {}", e.message),
                )],
            };
        }
    };
    let mut because = Vec::new();
    let matched = trace(&matcher, &node, root, event, &mut because);
    RuleTrace { matched, because }
}

/// Evaluates `node` (compiled from `m`) at `path`, adding why it fails to `out`.
fn trace(m: &Matcher, node: &Node, path: &str, event: &Event, out: &mut Vec<Failure>) -> bool {
    match (m, node) {
        (Matcher::All { all }, Node::All(children)) => {
            for (i, (cm, cn)) in all.iter().zip(children.iter()).enumerate() {
                if !cn.eval(event) {
                    trace(cm, cn, &format!("{path}.all[{i}]"), event, out);
                    return false;
                }
            }
            true
        }
        (Matcher::Any { any }, Node::Any(children)) => {
            if node.eval(event) {
                return true;
            }
            if any.is_empty() {
                out.push(Failure::note(
                    &format!("{path}.any"),
                    "an empty `any` never matches",
                ));
            }
            for (i, (cm, cn)) in any.iter().zip(children.iter()).enumerate() {
                trace(cm, cn, &format!("{path}.any[{i}]"), event, out);
            }
            false
        }
        (Matcher::Not { .. }, Node::Not(inner)) => {
            if inner.eval(event) {
                out.push(Failure::note(
                    &format!("{path}.not"),
                    "the inner matcher matched",
                ));
                return false;
            }
            true
        }
        (Matcher::Leaf(leaf), Node::Leaf(compiled)) => {
            let value = compiled.field.resolve(event);
            if compiled.test.eval(value) {
                return true;
            }
            out.push(leaf_failure(path, leaf, value));
            false
        }
        // `compile` keeps the tree's shape; a mismatch cannot happen, but evaluate anyway.
        _ => {
            let matched = node.eval(event);
            if !matched {
                out.push(Failure::note(path, "did not match"));
            }
            matched
        }
    }
}

fn leaf_failure(path: &str, leaf: &Leaf, value: Val<'_>) -> Failure {
    let actual = match value {
        Val::Str(s) => Some(Value::String(s.to_owned())),
        Val::Json(v) => Some(v.clone()),
        Val::Missing => None,
    };
    let expected_text = match &leaf.value {
        Some(v) => format!("`{} {v}`", leaf.op),
        None => format!("`{}`", leaf.op),
    };
    let mut message = match &actual {
        Some(v) => format!("`{}` is {v}, expected {expected_text}", leaf.field),
        None => format!("`{}` is missing, expected {expected_text}", leaf.field),
    };
    if let Some(note) = actual.as_ref().and_then(|a| kind_note(leaf, a)) {
        message.push_str(&format!(" ({note})"));
    }
    Failure {
        path: path.to_owned(),
        field: Some(leaf.field.clone()),
        op: Some(leaf.op),
        expected: leaf.value.clone(),
        missing: actual.is_none(),
        actual,
        message,
    }
}

/// A note when the event's value is of a kind the op never matches.
fn kind_note(leaf: &Leaf, actual: &Value) -> Option<String> {
    let kind = kind_of(actual);
    match leaf.op {
        Op::Gt | Op::Gte | Op::Lt | Op::Lte if !actual.is_number() => {
            Some(format!("`{}` compares numbers; got {kind}", leaf.op))
        }
        Op::Prefix | Op::Suffix | Op::Regex if !actual.is_string() => {
            Some(format!("`{}` compares strings; got {kind}", leaf.op))
        }
        Op::Eq | Op::Ne => {
            let expected = leaf.value.as_ref()?;
            (kind_of(expected) != kind).then(|| {
                format!(
                    "no conversion between kinds: got {kind}, expected {}",
                    kind_of(expected)
                )
            })
        }
        _ => None,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Failure {
    fn note(path: &str, message: &str) -> Self {
        Self {
            path: path.to_owned(),
            field: None,
            op: None,
            expected: None,
            actual: None,
            missing: false,
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::rules::RuleSet;
    use crate::rules::testgen::{TYPES, any_event, event, leaf, rule, rule_matcher};

    fn matcher(v: Value) -> Matcher {
        Matcher::parse(&v).expect("valid matcher")
    }

    #[test]
    fn the_first_failing_child_of_all_is_named_with_its_path_values_and_a_sentence() {
        let r = rule(
            "critical",
            Some(matcher(json!({"all": [
                {"field": "type", "op": "prefix", "value": "ops."},
                {"field": "properties.severity", "op": "in", "value": ["critical"]},
                {"field": "properties.missing", "op": "exists"}
            ]}))),
        );
        let t = explain(
            &r,
            &event("ops.alert", "ops", json!({"severity": "warning"})),
        );
        assert!(!t.matched);
        assert_eq!(t.because.len(), 1);
        let f = &t.because[0];
        assert_eq!(f.path, "match.all[1]");
        assert_eq!(f.field.as_deref(), Some("properties.severity"));
        assert_eq!(f.op, Some(Op::In));
        assert_eq!(f.expected, Some(json!(["critical"])));
        assert_eq!(f.actual, Some(json!("warning")));
        assert!(!f.missing);
        assert_eq!(
            f.message,
            r#"`properties.severity` is "warning", expected `in ["critical"]`"#
        );
    }

    #[test]
    fn a_missing_field_is_told_from_a_value_of_the_wrong_kind() {
        let r = rule(
            "big",
            Some(leaf("properties.amount", Op::Gte, Some(json!(1000)))),
        );
        let missing = explain(&r, &event("pay", "billing", json!({})));
        assert!(missing.because[0].missing);
        assert_eq!(missing.because[0].path, "match");
        assert!(missing.because[0].message.contains("is missing"));

        let string = explain(&r, &event("pay", "billing", json!({"amount": "2000"})));
        assert!(!string.because[0].missing);
        assert!(
            string.because[0]
                .message
                .contains("`gte` compares numbers; got a string"),
            "{}",
            string.because[0].message
        );
    }

    #[test]
    fn any_lists_every_failing_child_and_not_says_the_inner_matched() {
        let r = rule(
            "either",
            Some(matcher(json!({"any": [
                {"field": "module", "op": "eq", "value": "auth"},
                {"not": {"field": "properties.env", "op": "eq", "value": "prod"}}
            ]}))),
        );
        let t = explain(&r, &event("x.y", "email", json!({"env": "prod"})));
        assert!(!t.matched);
        let paths: Vec<&str> = t.because.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["match.any[0]", "match.any[1].not"]);
        assert_eq!(t.because[1].message, "the inner matcher matched");
    }

    #[test]
    fn a_rule_without_matcher_fails_at_its_key_and_a_disabled_rule_at_enabled() {
        let r = rule("payment.failed", None);
        let t = explain(&r, &event("payment.ok", "billing", json!({})));
        assert_eq!(t.because[0].path, "key");
        assert_eq!(t.because[0].expected, Some(json!("payment.failed")));
        assert!(explain(&r, &event("payment.failed", "billing", json!({}))).matched);

        let off = Rule {
            critical: false,
            enabled: false,
            ..rule("payment.failed", None)
        };
        let t = explain(&off, &event("payment.failed", "billing", json!({})));
        assert!(!t.matched);
        assert_eq!(t.because[0].path, "enabled");
    }

    #[test]
    fn a_match_has_no_failures() {
        let r = rule(
            "eu",
            Some(matcher(
                json!({"all": [{"field": "properties.region", "op": "eq", "value": "eu"}]}),
            )),
        );
        let t = explain(&r, &event("a", "b", json!({"region": "eu"})));
        assert_eq!(
            t,
            RuleTrace {
                matched: true,
                because: vec![]
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Explain and routing agree on every generated rule set and event, and a failed rule
        /// always says why.
        #[test]
        fn explain_matches_exactly_when_the_rule_set_routes_the_event(
            specs in proptest::collection::vec(
                (proptest::option::of(rule_matcher()), any::<bool>(), proptest::sample::select(&TYPES[..])),
                0..20,
            ),
            events in proptest::collection::vec(any_event(), 1..6),
        ) {
            let rules: Vec<Rule> = specs
                .into_iter()
                .enumerate()
                .map(|(i, (m, enabled, t))| {
                    let key = if m.is_some() { format!("r{i}") } else { t.to_owned() };
                    Rule { enabled: enabled || i % 3 != 0, ..rule(&key, m) }
                })
                .collect();
            let set = RuleSet::compile(&rules);
            for e in &events {
                let routed: Vec<&str> = set.matching(e).iter().map(|r| r.key.as_str()).collect();
                let explained: Vec<&str> = rules
                    .iter()
                    .filter(|r| {
                        let t = explain(r, e);
                        assert_eq!(t.matched, t.because.is_empty());
                        t.matched
                    })
                    .map(|r| r.key.as_str())
                    .collect();
                prop_assert_eq!(routed, explained);
            }
        }
    }
}
