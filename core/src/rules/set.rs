//! An org's enabled rules, compiled once and indexed so that an event is checked only against the
//! rules that could fire on it.
//!
//! From each matcher the index takes a constraint every matching event must meet:
//! - an exact set of types (`type eq X`, `type in [...]`, an `all` holding one, an `any` whose
//!   children all have one), further split by an exact set of modules when the rule has that too;
//! - otherwise a type prefix (`type prefix P`, or one inside an `all`), also split by module;
//! - otherwise an exact set of modules;
//! - otherwise an exact set of strings one property must equal (`properties.severity in [...]`);
//! - otherwise nothing: the rule is checked for every event.
//!
//! A rule lands in the buckets for its constraint; an event looks up its type, its type's prefixes,
//! its module and the indexed properties, and evaluates each candidate's matcher less the leaves
//! the bucket already guarantees (for the common `all[type eq, module eq]`, nothing is left). An
//! event has one type, one module and one value per property, so it reaches each rule through at
//! most one bucket.

use std::collections::HashMap;

use super::compile::{CompiledLeaf, FieldRef, Node, Regexes, Scalar, Test};
use super::{Leaf, Matcher, Op};
use crate::domain::event::Event;
use crate::domain::rule::Rule;
use crate::domain::{Invalid, RuleKey};

/// Types × modules past which a rule is indexed by type alone.
const MAX_PRODUCT: usize = 64;

/// Compiled, indexed rules of one org.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_type: HashMap<String, Bucket>,
    by_prefix: HashMap<String, Bucket>,
    /// Distinct lengths (in bytes) of the prefixes in `by_prefix`, ascending.
    prefix_lengths: Vec<usize>,
    by_module: HashMap<String, Vec<Entry>>,
    /// Rules with an exact string constraint on a property, by property and value.
    by_property: Vec<(FieldRef, HashMap<String, Vec<Entry>>)>,
    always: Vec<Entry>,
    rejected: Vec<(RuleKey, Invalid)>,
}

/// Rules sharing a type (or type prefix): those with a module constraint by module, the rest
/// together.
#[derive(Debug, Clone, Default)]
struct Bucket {
    any_module: Vec<Entry>,
    by_module: HashMap<String, Vec<Entry>>,
}

/// A rule in a bucket, with what is left to check once the event has reached that bucket: the
/// `type`/`module` leaves the bucket's key already guarantees are dropped, so most rules need
/// no evaluation at all.
#[derive(Debug, Clone)]
struct Entry {
    id: usize,
    rest: Node,
}

/// Which leaves reaching a bucket has made true.
#[derive(Debug, Clone, Copy)]
enum Known<'k> {
    /// The type is one of the rule's exact type keys (and so every `type eq/in` leaf directly
    /// under the rule's `all` holds, the keys being the intersection of theirs).
    ExactType,
    /// The type starts with this prefix.
    TypePrefix(&'k str),
}

impl RuleSet {
    /// Compiles and indexes the enabled rules. A rule without a matcher fires on events whose
    /// type equals its key. A stored matcher that no longer compiles (it was validated on
    /// write, so this means data written by something else) makes its rule never fire; it is
    /// logged and listed by [`RuleSet::rejected`].
    pub fn compile(rules: &[Rule]) -> RuleSet {
        let mut set = RuleSet::default();
        let mut regexes = Regexes::new();
        for rule in rules.iter().filter(|r| r.enabled) {
            let compiled = match &rule.matcher {
                Some(m) => match m.compile_sharing(&mut regexes) {
                    Ok(c) => c.into_node(),
                    Err(e) => {
                        tracing::warn!(rule = %rule.key, error = %e, "stored rule matcher does not compile; rule skipped");
                        set.rejected.push((rule.key.clone(), e));
                        continue;
                    }
                },
                None => key_matcher(&rule.key),
            };
            let id = set.rules.len();
            set.index(&compiled, id);
            set.rules.push(rule.clone());
        }
        set.prefix_lengths = set.by_prefix.keys().map(String::len).collect();
        set.prefix_lengths.sort_unstable();
        set.prefix_lengths.dedup();
        set
    }

    fn index(&mut self, node: &Node, id: usize) {
        let types = exact_keys(node, &FieldRef::Type);
        let modules = exact_keys(node, &FieldRef::Module);
        let modules_for = |n: usize| {
            modules
                .as_deref()
                .filter(|ms| n.saturating_mul(ms.len()) <= MAX_PRODUCT)
        };
        if let Some(types) = &types {
            let modules = modules_for(types.len());
            let entry = Entry {
                id,
                rest: rest(node, Some(Known::ExactType), modules.is_some()),
            };
            for t in types {
                self.by_type
                    .entry((*t).to_owned())
                    .or_default()
                    .insert(modules, &entry);
            }
        } else if let Some(prefix) = type_prefix(node) {
            let modules = modules_for(1);
            let entry = Entry {
                id,
                rest: rest(node, Some(Known::TypePrefix(prefix)), modules.is_some()),
            };
            self.by_prefix
                .entry(prefix.to_owned())
                .or_default()
                .insert(modules, &entry);
        } else if let Some(modules) = &modules {
            let entry = Entry {
                id,
                rest: rest(node, None, true),
            };
            for m in modules {
                self.by_module
                    .entry((*m).to_owned())
                    .or_default()
                    .push(entry.clone());
            }
        } else if let Some((field, values)) = property_keys(node) {
            let entry = Entry {
                id,
                rest: node.clone(),
            };
            let at = match self.by_property.iter().position(|(f, _)| *f == field) {
                Some(at) => at,
                None => {
                    self.by_property.push((field, HashMap::new()));
                    self.by_property.len() - 1
                }
            };
            for v in values {
                self.by_property[at]
                    .1
                    .entry(v)
                    .or_default()
                    .push(entry.clone());
            }
        } else {
            self.always.push(Entry {
                id,
                rest: node.clone(),
            });
        }
    }

    /// The rules `event` fires, each once, in the order they were given to [`RuleSet::compile`].
    pub fn matching(&self, event: &Event) -> Vec<&Rule> {
        let t = event.event_type.as_str();
        let m = event.module.as_str();
        let mut hits = Vec::new();
        if let Some(bucket) = self.by_type.get(t) {
            bucket.check(m, event, &mut hits);
        }
        for &len in &self.prefix_lengths {
            if len > t.len() {
                break;
            }
            if let Some(bucket) = t.get(..len).and_then(|p| self.by_prefix.get(p)) {
                bucket.check(m, event, &mut hits);
            }
        }
        if let Some(entries) = self.by_module.get(m) {
            check(entries, event, &mut hits);
        }
        for (field, by_value) in &self.by_property {
            if let Some(entries) = field.resolve(event).as_str().and_then(|v| by_value.get(v)) {
                check(entries, event, &mut hits);
            }
        }
        check(&self.always, event, &mut hits);
        hits.sort_unstable();
        hits.into_iter().map(|i| &self.rules[i]).collect()
    }

    /// How many rules were compiled (enabled and valid).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule can fire.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Enabled rules left out because their stored matcher does not compile, with the reason.
    pub fn rejected(&self) -> &[(RuleKey, Invalid)] {
        &self.rejected
    }

    /// How many rules are checked against every event because no type, module or property
    /// constraint could be taken from their matcher.
    pub fn unindexed(&self) -> usize {
        self.always.len()
    }
}

impl Bucket {
    fn insert(&mut self, modules: Option<&[&str]>, entry: &Entry) {
        match modules {
            Some(ms) => {
                for m in ms {
                    self.by_module
                        .entry((*m).to_owned())
                        .or_default()
                        .push(entry.clone());
                }
            }
            None => self.any_module.push(entry.clone()),
        }
    }

    fn check(&self, module: &str, event: &Event, hits: &mut Vec<usize>) {
        check(&self.any_module, event, hits);
        if let Some(entries) = self.by_module.get(module) {
            check(entries, event, hits);
        }
    }
}

fn check(entries: &[Entry], event: &Event, hits: &mut Vec<usize>) {
    hits.extend(entries.iter().filter(|e| e.rest.eval(event)).map(|e| e.id));
}

/// What is left of `node` to check for an event that reached the bucket: the leaves directly
/// under its `all` (or the node itself, if a leaf) that the bucket's key guarantees are dropped.
fn rest(node: &Node, known: Option<Known<'_>>, module_known: bool) -> Node {
    let implied = |leaf: &CompiledLeaf| match (&leaf.field, &leaf.test, known) {
        (FieldRef::Type, Test::Eq(Scalar::Str(_)) | Test::In(_), Some(Known::ExactType)) => true,
        (FieldRef::Type, Test::Prefix(p), Some(Known::TypePrefix(q))) => p == q,
        (FieldRef::Module, Test::Eq(Scalar::Str(_)) | Test::In(_), _) => module_known,
        _ => false,
    };
    match node {
        Node::Leaf(leaf) if implied(leaf) => Node::All(Box::new([])),
        Node::All(children) => {
            let mut left: Vec<Node> = children
                .iter()
                .filter(|c| !matches!(c, Node::Leaf(l) if implied(l)))
                .cloned()
                .collect();
            if left.len() == 1 {
                left.pop().unwrap_or(Node::All(Box::new([])))
            } else {
                Node::All(left.into())
            }
        }
        other => other.clone(),
    }
}

/// The matcher of a rule without one: `type eq <key>`.
fn key_matcher(key: &RuleKey) -> Node {
    let leaf = Leaf {
        field: "type".into(),
        op: Op::Eq,
        value: Some(key.as_str().into()),
    };
    match Matcher::Leaf(leaf).compile() {
        Ok(c) => c.into_node(),
        // A rule key is 1–128 printable characters, which is always a valid `type eq` value.
        Err(_) => Node::Any(Box::new([])),
    }
}

/// A set of values `field` must equal for `node` to match, if one can be read off the tree:
/// sorted, without duplicates. `Some(empty)` means the node never matches.
fn exact_keys<'n>(node: &'n Node, field: &FieldRef) -> Option<Vec<&'n str>> {
    match node {
        Node::Leaf(leaf) if &leaf.field == field => match &leaf.test {
            Test::Eq(Scalar::Str(s)) => Some(vec![s.as_str()]),
            Test::In(set) => Some(set.only_strings()?.iter().map(String::as_str).collect()),
            _ => None,
        },
        Node::All(children) => {
            let mut sets: Vec<Vec<&str>> = children
                .iter()
                .filter_map(|c| exact_keys(c, field))
                .collect();
            sets.sort_by_key(Vec::len);
            let (smallest, others) = sets.split_first()?;
            let mut keys = smallest.clone();
            keys.retain(|k| others.iter().all(|o| o.binary_search(k).is_ok()));
            Some(keys)
        }
        Node::Any(children) => {
            let mut keys = Vec::new();
            for c in children.iter() {
                keys.extend(exact_keys(c, field)?);
            }
            keys.sort_unstable();
            keys.dedup();
            Some(keys)
        }
        _ => None,
    }
}

/// The property with the fewest values it must equal (as a string) for `node` to match, if
/// there is one.
fn property_keys(node: &Node) -> Option<(FieldRef, Vec<String>)> {
    let mut fields = Vec::new();
    property_fields(node, &mut fields);
    fields
        .into_iter()
        .filter_map(|f| exact_keys(node, f).map(|keys| (f, keys)))
        .min_by_key(|(_, keys)| keys.len())
        .map(|(f, keys)| (f.clone(), keys.into_iter().map(str::to_owned).collect()))
}

/// The property fields read by leaves outside any `not`.
fn property_fields<'n>(node: &'n Node, out: &mut Vec<&'n FieldRef>) {
    match node {
        Node::Leaf(leaf)
            if matches!(leaf.field, FieldRef::Property(_)) && !out.contains(&&leaf.field) =>
        {
            out.push(&leaf.field);
        }
        Node::All(children) | Node::Any(children) => {
            children.iter().for_each(|c| property_fields(c, out))
        }
        _ => {}
    }
}

/// A prefix the event type must start with for `node` to match, if one can be read off the tree.
fn type_prefix(node: &Node) -> Option<&str> {
    match node {
        Node::Leaf(leaf) if leaf.field == FieldRef::Type => match &leaf.test {
            Test::Prefix(p) => Some(p.as_str()),
            _ => None,
        },
        Node::All(children) => children
            .iter()
            .filter_map(type_prefix)
            .max_by_key(|p| p.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::rules::testgen::{TYPES, any_event, event, leaf, rule, rule_matcher};

    fn keys<'r>(rules: &[&'r Rule]) -> Vec<&'r str> {
        rules.iter().map(|r| r.key.as_str()).collect()
    }

    fn naive<'r>(rules: &'r [Rule], e: &Event) -> Vec<&'r str> {
        rules
            .iter()
            .filter(|r| r.enabled)
            .filter(|r| match &r.matcher {
                Some(m) => m
                    .compile()
                    .expect("generated matchers are valid")
                    .matches(e),
                None => r.key.as_str() == e.event_type.as_str(),
            })
            .map(|r| r.key.as_str())
            .collect()
    }

    #[test]
    fn a_rule_without_matcher_fires_on_its_key_as_type() {
        let set = RuleSet::compile(&[rule("email.bounced", None), rule("auth.login", None)]);
        let e = event("email.bounced", "email", json!({}));
        assert_eq!(keys(&set.matching(&e)), ["email.bounced"]);
        assert!(
            set.matching(&event("email.delivered", "email", json!({})))
                .is_empty()
        );
    }

    #[test]
    fn disabled_rules_never_fire() {
        let mut off = rule("email.bounced", None);
        off.enabled = false;
        let set = RuleSet::compile(&[off]);
        assert!(set.is_empty());
        assert!(
            set.matching(&event("email.bounced", "email", json!({})))
                .is_empty()
        );
    }

    #[test]
    fn rules_come_back_in_the_order_given_whatever_index_holds_them() {
        let rules = [
            rule("catch-all", Some(Matcher::All { all: vec![] })),
            rule(
                "by-type",
                Some(leaf("type", Op::Eq, Some(json!("email.bounced")))),
            ),
            rule(
                "by-prefix",
                Some(leaf("type", Op::Prefix, Some(json!("email.")))),
            ),
            rule(
                "by-module",
                Some(leaf("module", Op::Eq, Some(json!("email")))),
            ),
            rule(
                "by-type-and-module",
                Some(Matcher::All {
                    all: vec![
                        leaf("module", Op::In, Some(json!(["email", "ops"]))),
                        leaf("type", Op::In, Some(json!(["email.bounced", "ops.alert"]))),
                    ],
                }),
            ),
            rule("email.bounced", None),
            rule(
                "by-property",
                Some(Matcher::Any {
                    any: vec![
                        leaf("properties.severity", Op::Eq, Some(json!("critical"))),
                        leaf(
                            "properties.severity",
                            Op::In,
                            Some(json!(["high", "critical"])),
                        ),
                    ],
                }),
            ),
            rule(
                "negated",
                Some(Matcher::Not {
                    not: Box::new(leaf("type", Op::Eq, Some(json!("x")))),
                }),
            ),
        ];
        let set = RuleSet::compile(&rules);
        assert_eq!(set.unindexed(), 2);
        let e = event("email.bounced", "email", json!({"severity": "critical"}));
        assert_eq!(
            keys(&set.matching(&e)),
            [
                "catch-all",
                "by-type",
                "by-prefix",
                "by-module",
                "by-type-and-module",
                "email.bounced",
                "by-property",
                "negated"
            ]
        );
        let e = event("email.bounced", "auth", json!({"severity": "low"}));
        assert_eq!(
            keys(&set.matching(&e)),
            [
                "catch-all",
                "by-type",
                "by-prefix",
                "email.bounced",
                "negated"
            ]
        );
    }

    #[test]
    fn a_stored_matcher_that_does_not_compile_is_skipped_and_reported() {
        let bad = rule("bad", Some(leaf("type", Op::Regex, Some(json!("(")))));
        let set = RuleSet::compile(&[bad, rule("email.bounced", None)]);
        assert_eq!(set.len(), 1);
        assert_eq!(set.rejected()[0].0.as_str(), "bad");
        assert_eq!(set.rejected()[0].1.field, "match.value");
    }

    #[test]
    fn rules_that_can_never_match_are_not_indexed_anywhere() {
        let never = rule(
            "never",
            Some(Matcher::All {
                all: vec![Matcher::Any { any: vec![] }],
            }),
        );
        let set = RuleSet::compile(&[never]);
        assert_eq!(set.unindexed(), 0);
        assert!(
            set.matching(&event("email.bounced", "email", json!({})))
                .is_empty()
        );
    }

    #[test]
    fn a_rule_with_too_many_type_module_pairs_still_checks_its_module() {
        let types: Vec<String> = (0..=MAX_PRODUCT).map(|i| format!("t{i}")).collect();
        let wide = Matcher::All {
            all: vec![
                leaf("type", Op::In, Some(json!(types))),
                leaf("module", Op::Eq, Some(json!("email"))),
            ],
        };
        let set = RuleSet::compile(&[rule("wide", Some(wide))]);
        assert_eq!(
            keys(&set.matching(&event("t3", "email", json!({})))),
            ["wide"]
        );
        assert!(set.matching(&event("t3", "auth", json!({}))).is_empty());
    }

    #[test]
    fn only_the_prefix_the_bucket_is_keyed_by_is_taken_as_known() {
        let two = Matcher::All {
            all: vec![
                leaf("type", Op::Prefix, Some(json!("email."))),
                leaf("type", Op::Prefix, Some(json!("email.b"))),
            ],
        };
        let set = RuleSet::compile(&[rule("two", Some(two))]);
        assert_eq!(
            keys(&set.matching(&event("email.bounced", "email", json!({})))),
            ["two"]
        );
        assert!(
            set.matching(&event("email.delivered", "email", json!({})))
                .is_empty()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_index_returns_exactly_what_evaluating_every_rule_returns(
            specs in proptest::collection::vec(
                (proptest::option::of(rule_matcher()), any::<bool>(), proptest::sample::select(&TYPES[..])),
                0..40,
            ),
            events in proptest::collection::vec(any_event(), 1..8),
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
            prop_assert!(set.rejected().is_empty());
            for e in &events {
                prop_assert_eq!(keys(&set.matching(e)), naive(&rules, e));
            }
        }
    }
}
