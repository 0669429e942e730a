//! Compiled matchers: field paths split once, values checked and typed once, regexes built once,
//! `in` lists sorted for binary search. Compiling a [`Matcher`] is also how its leaves are
//! validated, so the parser and stored rules share one definition of a valid leaf.

use std::cmp::Ordering;
use std::collections::HashMap;

use regex_lite::{Regex, RegexBuilder};
use serde_json::{Number, Value};

use super::{
    Leaf, MAX_DEPTH, MAX_IN_ITEMS, MAX_NODES, MAX_REGEX_BYTES, MAX_STRING_CHARS, Matcher, Op,
};
use crate::domain::Invalid;
use crate::domain::event::Event;

/// A matcher ready to evaluate against events.
#[derive(Debug, Clone)]
pub struct CompiledMatcher {
    root: Node,
}

impl CompiledMatcher {
    /// Whether `event` matches.
    pub fn matches(&self, event: &Event) -> bool {
        self.root.eval(event)
    }

    pub(super) fn into_node(self) -> Node {
        self.root
    }
}

/// Regexes built so far while compiling a rule set, by pattern: rules often share patterns, and
/// building a regex costs far more than cloning one.
pub(super) type Regexes = HashMap<String, Regex>;

impl Matcher {
    /// Checks the tree (bounds, fields, values, patterns) and compiles it. Errors name the bad
    /// node under `match`, as [`Matcher::parse`] does.
    pub fn compile(&self) -> Result<CompiledMatcher, Invalid> {
        self.compile_sharing(&mut Regexes::new())
    }

    /// [`Matcher::compile`], reusing and adding to `regexes`.
    pub(super) fn compile_sharing(
        &self,
        regexes: &mut Regexes,
    ) -> Result<CompiledMatcher, Invalid> {
        let mut nodes = 0;
        let root = compile_node(self, 1, &mut nodes, regexes).map_err(|e| e.under("match"))?;
        Ok(CompiledMatcher { root })
    }
}

/// Compiles `m`, found at `depth`. Error fields are relative to `m`, so that no path is built
/// unless there is an error.
fn compile_node(
    m: &Matcher,
    depth: usize,
    nodes: &mut usize,
    regexes: &mut Regexes,
) -> Result<Node, Invalid> {
    check_bounds("", depth, nodes)?;
    Ok(match m {
        Matcher::All { all } => {
            Node::All(compile_children(all, depth, nodes, regexes).map_err(|e| e.under("all"))?)
        }
        Matcher::Any { any } => {
            Node::Any(compile_children(any, depth, nodes, regexes).map_err(|e| e.under("any"))?)
        }
        Matcher::Not { not } => Node::Not(Box::new(
            compile_node(not, depth + 1, nodes, regexes).map_err(|e| e.under("not"))?,
        )),
        Matcher::Leaf(leaf) => Node::Leaf(CompiledLeaf::new(leaf, regexes)?),
    })
}

fn compile_children(
    children: &[Matcher],
    depth: usize,
    nodes: &mut usize,
    regexes: &mut Regexes,
) -> Result<Box<[Node]>, Invalid> {
    children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            compile_node(c, depth + 1, nodes, regexes).map_err(|e| e.under(&format!("[{i}]")))
        })
        .collect()
}

/// Counts one more node at `depth`, refusing trees past the bounds.
pub(super) fn check_bounds(path: &str, depth: usize, nodes: &mut usize) -> Result<(), Invalid> {
    if depth > MAX_DEPTH {
        return Err(Invalid::new(
            path,
            format!("matchers may nest at most {MAX_DEPTH} levels deep"),
        ));
    }
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(Invalid::new(
            path,
            format!("a matcher may have at most {MAX_NODES} nodes"),
        ));
    }
    Ok(())
}

/// A compiled matcher node.
#[derive(Debug, Clone)]
pub(super) enum Node {
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Leaf(CompiledLeaf),
}

impl Node {
    pub(super) fn eval(&self, event: &Event) -> bool {
        match self {
            Node::All(children) => children.iter().all(|c| c.eval(event)),
            Node::Any(children) => children.iter().any(|c| c.eval(event)),
            Node::Not(child) => !child.eval(event),
            Node::Leaf(leaf) => leaf.test.eval(leaf.field.resolve(event)),
        }
    }
}

/// The event field a leaf reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FieldRef {
    Type,
    Module,
    /// Names below `properties`, at least one.
    Property(Box<[String]>),
}

impl FieldRef {
    fn parse(s: &str) -> Result<Self, Invalid> {
        check_len("field", s)?;
        match s {
            "type" => Ok(FieldRef::Type),
            "module" => Ok(FieldRef::Module),
            _ => match s.strip_prefix("properties.") {
                Some(rest) if !rest.split('.').any(str::is_empty) => Ok(FieldRef::Property(
                    rest.split('.').map(str::to_owned).collect(),
                )),
                _ => Err(Invalid::new(
                    "field",
                    format!(
                        "`{s}` is not a field: use `type`, `module` or `properties.<name>[.<name>...]`"
                    ),
                )),
            },
        }
    }

    pub(super) fn resolve<'e>(&self, event: &'e Event) -> Val<'e> {
        match self {
            FieldRef::Type => Val::Str(event.event_type.as_str()),
            FieldRef::Module => Val::Str(event.module.as_str()),
            FieldRef::Property(path) => {
                let mut names = path.iter();
                let first = names.next().and_then(|n| event.properties.get(n));
                match names.try_fold(first, |v, n| v.and_then(Value::as_object).map(|o| o.get(n))) {
                    Some(Some(v)) => Val::Json(v),
                    _ => Val::Missing,
                }
            }
        }
    }

    fn is_string_field(&self) -> bool {
        matches!(self, FieldRef::Type | FieldRef::Module)
    }
}

/// A field's value in one event.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'e> {
    Str(&'e str),
    Json(&'e Value),
    Missing,
}

impl<'e> Val<'e> {
    pub(super) fn as_str(self) -> Option<&'e str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    fn as_number(self) -> Option<&'e Number> {
        match self {
            Val::Json(Value::Number(n)) => Some(n),
            _ => None,
        }
    }
}

/// A compiled leaf.
#[derive(Debug, Clone)]
pub(super) struct CompiledLeaf {
    pub(super) field: FieldRef,
    pub(super) test: Test,
}

/// A scalar a leaf compares with.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Str(String),
    Num(Number),
    Bool(bool),
}

impl Scalar {
    fn equals(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Scalar::Str(s), v) => v.as_str() == Some(s.as_str()),
            (Scalar::Num(n), Val::Json(Value::Number(m))) => {
                cmp_numbers(m, n) == Some(Ordering::Equal)
            }
            (Scalar::Bool(b), Val::Json(Value::Bool(c))) => b == c,
            _ => false,
        }
    }
}

/// The values of an `in`/`nin` list: strings sorted for binary search, the rest scanned.
#[derive(Debug, Clone)]
pub(super) struct ScalarSet {
    strings: Vec<String>,
    others: Vec<Scalar>,
}

impl ScalarSet {
    /// The listed values, if they are all strings.
    pub(super) fn only_strings(&self) -> Option<&[String]> {
        self.others.is_empty().then_some(self.strings.as_slice())
    }

    fn contains(&self, v: Val<'_>) -> bool {
        match v.as_str() {
            Some(s) => self.strings.binary_search_by(|x| x.as_str().cmp(s)).is_ok(),
            None => self.others.iter().any(|x| x.equals(v)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A compiled comparison.
#[derive(Debug, Clone)]
pub(super) enum Test {
    Eq(Scalar),
    Ne(Scalar),
    In(ScalarSet),
    Nin(ScalarSet),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Exists(bool),
    Cmp(CmpOp, Number),
    Regex(Regex),
}

impl Test {
    pub(super) fn eval(&self, v: Val<'_>) -> bool {
        match self {
            Test::Eq(s) => s.equals(v),
            Test::Ne(s) => !s.equals(v),
            Test::In(set) => set.contains(v),
            Test::Nin(set) => !set.contains(v),
            Test::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Test::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Test::Contains(p) => match v {
                Val::Json(Value::Array(items)) => {
                    items.iter().any(|x| x.as_str() == Some(p.as_str()))
                }
                v => v.as_str().is_some_and(|s| s.contains(p.as_str())),
            },
            Test::Exists(want) => !matches!(v, Val::Missing) == *want,
            Test::Cmp(op, n) => v
                .as_number()
                .and_then(|m| cmp_numbers(m, n))
                .is_some_and(|o| match op {
                    CmpOp::Gt => o.is_gt(),
                    CmpOp::Gte => o.is_ge(),
                    CmpOp::Lt => o.is_lt(),
                    CmpOp::Lte => o.is_le(),
                }),
            Test::Regex(r) => v.as_str().is_some_and(|s| r.is_match(s)),
        }
    }
}

/// Compares two JSON numbers by value: exactly when both are integers of one kind, else as `f64`.
fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

impl CompiledLeaf {
    /// Validates and compiles one leaf. Error fields are relative to the leaf (`op`, `value[3]`).
    pub(super) fn new(leaf: &Leaf, regexes: &mut Regexes) -> Result<Self, Invalid> {
        let field = FieldRef::parse(&leaf.field)?;
        let op = leaf.op;
        let value = match (&leaf.value, op) {
            (None, Op::Exists) => {
                return Ok(CompiledLeaf {
                    field,
                    test: Test::Exists(true),
                });
            }
            (None, _) => return Err(Invalid::new("value", format!("`{op}` needs a value"))),
            (Some(v), _) => v,
        };
        let string_field = field.is_string_field();
        let test = match op {
            Op::Eq | Op::Ne => {
                let s = scalar(value, "value", string_field)?;
                if op == Op::Eq {
                    Test::Eq(s)
                } else {
                    Test::Ne(s)
                }
            }
            Op::In | Op::Nin => {
                let set = scalar_set(value, string_field)?;
                if op == Op::In {
                    Test::In(set)
                } else {
                    Test::Nin(set)
                }
            }
            Op::Prefix => Test::Prefix(string(value, op)?.to_owned()),
            Op::Suffix => Test::Suffix(string(value, op)?.to_owned()),
            Op::Contains => Test::Contains(string(value, op)?.to_owned()),
            Op::Exists => match value {
                Value::Bool(b) => Test::Exists(*b),
                _ => {
                    return Err(Invalid::new(
                        "value",
                        "`exists` takes true, false, or no value",
                    ));
                }
            },
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                if string_field {
                    return Err(Invalid::new(
                        "op",
                        format!("`{op}` compares numbers; `{}` is a string", leaf.field),
                    ));
                }
                let Value::Number(n) = value else {
                    return Err(Invalid::new("value", format!("`{op}` needs a number")));
                };
                let cmp = match op {
                    Op::Gt => CmpOp::Gt,
                    Op::Gte => CmpOp::Gte,
                    Op::Lt => CmpOp::Lt,
                    _ => CmpOp::Lte,
                };
                Test::Cmp(cmp, n.clone())
            }
            Op::Regex => {
                let pattern = string(value, op)?;
                if let Some(regex) = regexes.get(pattern) {
                    Test::Regex(regex.clone())
                } else {
                    let regex = RegexBuilder::new(pattern)
                        .size_limit(MAX_REGEX_BYTES)
                        .build()
                        .map_err(|e| Invalid::new("value", format!("not a valid pattern: {e}")))?;
                    regexes.insert(pattern.to_owned(), regex.clone());
                    Test::Regex(regex)
                }
            }
        };
        Ok(CompiledLeaf { field, test })
    }
}

fn check_len(field: &str, s: &str) -> Result<(), Invalid> {
    if s.chars().count() > MAX_STRING_CHARS {
        return Err(Invalid::new(
            field,
            format!("at most {MAX_STRING_CHARS} characters"),
        ));
    }
    Ok(())
}

fn string(value: &Value, op: Op) -> Result<&str, Invalid> {
    let Value::String(s) = value else {
        return Err(Invalid::new("value", format!("`{op}` needs a string")));
    };
    check_len("value", s)?;
    Ok(s)
}

fn scalar(value: &Value, at: &str, string_only: bool) -> Result<Scalar, Invalid> {
    match value {
        Value::String(s) => {
            check_len(at, s)?;
            Ok(Scalar::Str(s.clone()))
        }
        Value::Number(_) | Value::Bool(_) if string_only => Err(Invalid::new(
            at,
            "must be a string: `type` and `module` are strings",
        )),
        Value::Number(n) => Ok(Scalar::Num(n.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        _ => Err(Invalid::new(at, "must be a string, a number or a boolean")),
    }
}

fn scalar_set(value: &Value, string_only: bool) -> Result<ScalarSet, Invalid> {
    let Value::Array(items) = value else {
        return Err(Invalid::new(
            "value",
            "must be an array of strings, numbers or booleans",
        ));
    };
    if items.is_empty() {
        return Err(Invalid::new("value", "must list at least one value"));
    }
    if items.len() > MAX_IN_ITEMS {
        return Err(Invalid::new(
            "value",
            format!("at most {MAX_IN_ITEMS} values"),
        ));
    }
    let mut set = ScalarSet {
        strings: Vec::new(),
        others: Vec::new(),
    };
    for (i, item) in items.iter().enumerate() {
        match scalar(item, &format!("value[{i}]"), string_only)? {
            Scalar::Str(s) => set.strings.push(s),
            other => set.others.push(other),
        }
    }
    set.strings.sort_unstable();
    set.strings.dedup();
    Ok(set)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::rules::testgen::event;

    fn leaf(field: &str, op: Op, value: Option<Value>) -> Matcher {
        Matcher::Leaf(Leaf {
            field: field.into(),
            op,
            value,
        })
    }

    fn check(m: &Matcher, e: &Event) -> bool {
        m.compile().expect("valid matcher").matches(e)
    }

    fn ev() -> Event {
        event(
            "email.bounced",
            "email",
            json!({
                "amount": 12.5, "count": 3, "big": 18446744073709551615u64, "neg": -4,
                "env": "prod", "flag": true, "nothing": null,
                "tags": ["vip", "eu"], "nums": [1, 2],
                "order": {"total": 100, "currency": "EUR", "lines": {"n": 2}},
            }),
        )
    }

    #[test]
    fn eq_compares_scalars_and_numbers_by_value() {
        let e = ev();
        assert!(check(
            &leaf("type", Op::Eq, Some(json!("email.bounced"))),
            &e
        ));
        assert!(!check(&leaf("type", Op::Eq, Some(json!("email"))), &e));
        assert!(check(&leaf("module", Op::Eq, Some(json!("email"))), &e));
        assert!(check(
            &leaf("properties.count", Op::Eq, Some(json!(3.0))),
            &e
        ));
        assert!(check(
            &leaf("properties.amount", Op::Eq, Some(json!(12.5))),
            &e
        ));
        assert!(check(
            &leaf(
                "properties.big",
                Op::Eq,
                Some(json!(18446744073709551615u64))
            ),
            &e
        ));
        assert!(!check(
            &leaf(
                "properties.big",
                Op::Eq,
                Some(json!(18446744073709551614u64))
            ),
            &e
        ));
        assert!(check(
            &leaf("properties.flag", Op::Eq, Some(json!(true))),
            &e
        ));
        assert!(
            !check(&leaf("properties.count", Op::Eq, Some(json!("3"))), &e),
            "no coercion"
        );
        assert!(!check(
            &leaf("properties.nothing", Op::Eq, Some(json!("null"))),
            &e
        ));
        assert!(
            !check(&leaf("properties.tags", Op::Eq, Some(json!("vip"))), &e),
            "arrays are not scalars"
        );
        assert!(check(
            &leaf("properties.order.currency", Op::Eq, Some(json!("EUR"))),
            &e
        ));
        assert!(check(
            &leaf("properties.order.lines.n", Op::Eq, Some(json!(2))),
            &e
        ));
        assert!(
            !check(&leaf("properties.env.x", Op::Eq, Some(json!("prod"))), &e),
            "no path through a string"
        );
    }

    #[test]
    fn ne_and_nin_are_true_on_a_missing_field() {
        let e = ev();
        assert!(check(
            &leaf("properties.absent", Op::Ne, Some(json!("x"))),
            &e
        ));
        assert!(check(
            &leaf("properties.absent", Op::Nin, Some(json!(["x"]))),
            &e
        ));
        assert!(!check(
            &leaf("properties.env", Op::Ne, Some(json!("prod"))),
            &e
        ));
        assert!(check(
            &leaf("properties.env", Op::Ne, Some(json!("test"))),
            &e
        ));
        assert!(!check(
            &leaf("properties.env", Op::Nin, Some(json!(["test", "prod"]))),
            &e
        ));
    }

    #[test]
    fn in_matches_any_listed_scalar() {
        let e = ev();
        assert!(check(
            &leaf("type", Op::In, Some(json!(["a", "email.bounced"]))),
            &e
        ));
        assert!(!check(&leaf("type", Op::In, Some(json!(["a", "b"]))), &e));
        assert!(check(
            &leaf("properties.count", Op::In, Some(json!(["3", 3.0]))),
            &e
        ));
        assert!(!check(
            &leaf("properties.count", Op::In, Some(json!(["3", true]))),
            &e
        ));
        assert!(check(
            &leaf("properties.flag", Op::In, Some(json!([false, true]))),
            &e
        ));
    }

    #[test]
    fn prefix_suffix_apply_to_strings_only() {
        let e = ev();
        assert!(check(&leaf("type", Op::Prefix, Some(json!("email."))), &e));
        assert!(!check(&leaf("type", Op::Prefix, Some(json!("auth."))), &e));
        assert!(check(
            &leaf("type", Op::Suffix, Some(json!(".bounced"))),
            &e
        ));
        assert!(check(
            &leaf("properties.env", Op::Prefix, Some(json!("pr"))),
            &e
        ));
        assert!(!check(
            &leaf("properties.count", Op::Prefix, Some(json!("3"))),
            &e
        ));
        assert!(!check(
            &leaf("properties.absent", Op::Suffix, Some(json!(""))),
            &e
        ));
    }

    #[test]
    fn contains_is_substring_on_strings_and_membership_on_arrays() {
        let e = ev();
        assert!(check(&leaf("type", Op::Contains, Some(json!("l.bo"))), &e));
        assert!(check(
            &leaf("properties.tags", Op::Contains, Some(json!("vip"))),
            &e
        ));
        assert!(
            !check(
                &leaf("properties.tags", Op::Contains, Some(json!("vi"))),
                &e
            ),
            "element equality, not substring"
        );
        assert!(!check(
            &leaf("properties.nums", Op::Contains, Some(json!("1"))),
            &e
        ));
        assert!(!check(
            &leaf("properties.count", Op::Contains, Some(json!("3"))),
            &e
        ));
    }

    #[test]
    fn exists_sees_present_fields_including_null() {
        let e = ev();
        assert!(check(&leaf("properties.env", Op::Exists, None), &e));
        assert!(check(
            &leaf("properties.nothing", Op::Exists, Some(json!(true))),
            &e
        ));
        assert!(check(
            &leaf("properties.absent", Op::Exists, Some(json!(false))),
            &e
        ));
        assert!(!check(&leaf("properties.absent", Op::Exists, None), &e));
        assert!(!check(
            &leaf("properties.env", Op::Exists, Some(json!(false))),
            &e
        ));
        assert!(check(&leaf("module", Op::Exists, None), &e));
    }

    #[test]
    fn ordered_ops_compare_numbers_only() {
        let e = ev();
        assert!(check(
            &leaf("properties.amount", Op::Gt, Some(json!(12))),
            &e
        ));
        assert!(!check(
            &leaf("properties.amount", Op::Gt, Some(json!(12.5))),
            &e
        ));
        assert!(check(
            &leaf("properties.amount", Op::Gte, Some(json!(12.5))),
            &e
        ));
        assert!(check(
            &leaf("properties.count", Op::Lt, Some(json!(3.5))),
            &e
        ));
        assert!(check(
            &leaf("properties.count", Op::Lte, Some(json!(3))),
            &e
        ));
        assert!(check(&leaf("properties.neg", Op::Lt, Some(json!(0))), &e));
        assert!(check(&leaf("properties.big", Op::Gt, Some(json!(-1))), &e));
        assert!(check(
            &leaf("properties.order.total", Op::Gte, Some(json!(100))),
            &e
        ));
        assert!(
            !check(&leaf("properties.env", Op::Gt, Some(json!(0))), &e),
            "strings are not ordered"
        );
        assert!(!check(
            &leaf("properties.absent", Op::Lt, Some(json!(0))),
            &e
        ));
    }

    #[test]
    fn regex_finds_a_match_anywhere_unless_anchored() {
        let e = ev();
        assert!(check(&leaf("type", Op::Regex, Some(json!("bounce"))), &e));
        assert!(!check(&leaf("type", Op::Regex, Some(json!("^bounce"))), &e));
        assert!(check(
            &leaf(
                "type",
                Op::Regex,
                Some(json!(r"^email\.(bounced|complained)$"))
            ),
            &e
        ));
        assert!(!check(
            &leaf("properties.count", Op::Regex, Some(json!("3"))),
            &e
        ));
    }

    #[test]
    fn regex_classes_and_case_folding_are_ascii_only() {
        let e = event(
            "user.renamed",
            "users",
            json!({"name": "Élodie", "city": "Zürich"}),
        );
        let matches =
            |field: &str, pattern: &str| check(&leaf(field, Op::Regex, Some(json!(pattern))), &e);
        // regex-lite: `\w` is `[0-9A-Za-z_]`, `(?i)` folds ASCII letters only.
        assert!(!matches("properties.name", r"^\w+$"));
        assert!(matches("properties.name", r"^É\w+$"));
        assert!(matches("properties.city", "ü"));
        assert!(!matches("properties.city", "(?i)^zÜRICH$"));
        assert!(matches("properties.city", "(?i)^züRICH$"));
        assert!(matches("type", "(?i)^USER\\."));
    }

    #[test]
    fn combinators_follow_boolean_logic() {
        let e = ev();
        let t = leaf("module", Op::Eq, Some(json!("email")));
        let f = leaf("module", Op::Eq, Some(json!("auth")));
        assert!(check(&Matcher::All { all: vec![] }, &e));
        assert!(!check(&Matcher::Any { any: vec![] }, &e));
        assert!(check(
            &Matcher::All {
                all: vec![t.clone(), t.clone()]
            },
            &e
        ));
        assert!(!check(
            &Matcher::All {
                all: vec![t.clone(), f.clone()]
            },
            &e
        ));
        assert!(check(
            &Matcher::Any {
                any: vec![f.clone(), t.clone()]
            },
            &e
        ));
        assert!(check(&Matcher::Not { not: Box::new(f) }, &e));
        assert!(!check(&Matcher::Not { not: Box::new(t) }, &e));
    }

    #[test]
    fn compiling_a_stored_tree_checks_it_too() {
        let bad = Matcher::All {
            all: vec![leaf("type", Op::Gt, Some(json!(1)))],
        };
        assert_eq!(bad.compile().unwrap_err().field, "match.all[0].op");
        let mut deep = leaf("type", Op::Exists, None);
        for _ in 0..MAX_DEPTH {
            deep = Matcher::Not {
                not: Box::new(deep),
            };
        }
        assert_eq!(
            deep.compile().unwrap_err().field,
            format!("match{}", ".not".repeat(MAX_DEPTH)),
        );
    }

    mod algebra {
        use proptest::prelude::*;

        use super::*;
        use crate::rules::testgen::{any_event, any_leaf, any_matcher};

        fn not(m: Matcher) -> Matcher {
            Matcher::Not { not: Box::new(m) }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn double_negation_is_identity(m in any_matcher(), e in any_event()) {
                prop_assert_eq!(check(&not(not(m.clone())), &e), check(&m, &e));
            }

            #[test]
            fn empty_all_is_true_and_empty_any_is_false(e in any_event()) {
                let (all, any) = (Matcher::All { all: vec![] }, Matcher::Any { any: vec![] });
                prop_assert!(check(&all, &e));
                prop_assert!(!check(&any, &e));
            }

            #[test]
            fn a_single_child_combinator_is_its_child(m in any_matcher(), e in any_event()) {
                prop_assert_eq!(check(&Matcher::All { all: vec![m.clone()] }, &e), check(&m, &e));
                prop_assert_eq!(check(&Matcher::Any { any: vec![m.clone()] }, &e), check(&m, &e));
            }

            #[test]
            fn de_morgan_holds(a in any_matcher(), b in any_matcher(), e in any_event()) {
                let not_all = not(Matcher::All { all: vec![a.clone(), b.clone()] });
                let any_not = Matcher::Any { any: vec![not(a.clone()), not(b.clone())] };
                prop_assert_eq!(check(&not_all, &e), check(&any_not, &e));
                let not_any = not(Matcher::Any { any: vec![a.clone(), b.clone()] });
                let all_not = Matcher::All { all: vec![not(a), not(b)] };
                prop_assert_eq!(check(&not_any, &e), check(&all_not, &e));
            }

            #[test]
            fn ne_and_nin_are_the_negations_of_eq_and_in(l in any_leaf(), e in any_event()) {
                let Matcher::Leaf(leaf) = &l else { unreachable!("any_leaf yields leaves") };
                let flipped = match leaf.op {
                    Op::Eq => Op::Ne,
                    Op::Ne => Op::Eq,
                    Op::In => Op::Nin,
                    Op::Nin => Op::In,
                    _ => return Ok(()),
                };
                let other = Matcher::Leaf(Leaf { op: flipped, ..leaf.clone() });
                prop_assert_eq!(check(&other, &e), !check(&l, &e));
            }

            #[test]
            fn valid_matchers_survive_storage_and_strict_parsing(m in any_matcher()) {
                let stored = serde_json::to_value(&m).expect("serializable");
                prop_assert_eq!(Matcher::parse(&stored), Ok(m.clone()));
                prop_assert_eq!(serde_json::from_value::<Matcher>(stored).ok(), Some(m));
            }
        }
    }
}
