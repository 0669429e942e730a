//! Strict parsing of a rule's `match` as written in a request: every node is checked, and an error
//! names the bad node by its path under `match` (`match.all[2].op`, `match.any[0].not.value`).

use serde_json::{Map, Value};

use super::compile::{CompiledLeaf, Regexes, check_bounds};
use super::{Leaf, Matcher, Op};
use crate::domain::Invalid;

const NODE_SHAPES: &str = "must be {\"all\":[...]}, {\"any\":[...]}, {\"not\":{...}} or a leaf {\"field\",\"op\",\"value\"}";

impl Matcher {
    /// Parses and validates the JSON of a rule's `match`.
    ///
    /// Refuses unknown keys, nodes mixing `all`/`any`/`not`, unknown ops and fields, values of
    /// the wrong kind for their op, patterns that do not compile, and trees past the bounds
    /// (see the [module documentation](crate::rules)). The error's `field` is the path of the
    /// first bad node found, rooted at `match`.
    pub fn parse(value: &Value) -> Result<Matcher, Invalid> {
        let mut nodes = 0;
        parse_node(value, "match", 1, &mut nodes)
    }
}

fn parse_node(
    value: &Value,
    path: &str,
    depth: usize,
    nodes: &mut usize,
) -> Result<Matcher, Invalid> {
    check_bounds(path, depth, nodes)?;
    let Value::Object(obj) = value else {
        return Err(Invalid::new(path, NODE_SHAPES));
    };
    if obj.is_empty() {
        return Err(Invalid::new(path, NODE_SHAPES));
    }
    let combinators: Vec<&str> = ["all", "any", "not"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    match combinators.as_slice() {
        [] => parse_leaf(obj, path).map(Matcher::Leaf),
        [one] => {
            if let Some(other) = obj.keys().find(|k| k.as_str() != *one) {
                return Err(Invalid::new(
                    format!("{path}.{other}"),
                    format!("unknown key: a node with `{one}` has no other keys"),
                ));
            }
            let child_path = format!("{path}.{one}");
            let child = &obj[*one];
            match *one {
                "not" => Ok(Matcher::Not {
                    not: Box::new(parse_node(child, &child_path, depth + 1, nodes)?),
                }),
                kind => {
                    let Value::Array(items) = child else {
                        return Err(Invalid::new(child_path, "must be an array of matchers"));
                    };
                    let children = items
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            parse_node(c, &format!("{child_path}[{i}]"), depth + 1, nodes)
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(if kind == "all" {
                        Matcher::All { all: children }
                    } else {
                        Matcher::Any { any: children }
                    })
                }
            }
        }
        many => Err(Invalid::new(
            path,
            format!(
                "has {}: use one per node and nest them",
                many.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

fn parse_leaf(obj: &Map<String, Value>, path: &str) -> Result<Leaf, Invalid> {
    if let Some(unknown) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "field" | "op" | "value"))
    {
        return Err(Invalid::new(
            format!("{path}.{unknown}"),
            "unknown key: a leaf has `field`, `op` and `value`; other nodes `all`, `any` or `not`",
        ));
    }
    let field = match obj.get("field") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Invalid::new(format!("{path}.field"), "must be a string")),
        None => return Err(Invalid::new(format!("{path}.field"), "required")),
    };
    let op = match obj.get("op") {
        Some(Value::String(s)) => Op::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Op::ALL.iter().map(|o| o.as_str()).collect();
            Invalid::new(
                format!("{path}.op"),
                format!("unknown op `{s}`: one of {}", names.join(", ")),
            )
        })?,
        Some(_) => return Err(Invalid::new(format!("{path}.op"), "must be a string")),
        None => return Err(Invalid::new(format!("{path}.op"), "required")),
    };
    let leaf = Leaf {
        field,
        op,
        value: obj.get("value").cloned(),
    };
    CompiledLeaf::new(&leaf, &mut Regexes::new()).map_err(|e| e.under(path))?;
    Ok(leaf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::rules::{MAX_DEPTH, MAX_IN_ITEMS, MAX_NODES, MAX_STRING_CHARS};

    /// The path of the error parsing `v`.
    fn err_at(v: Value) -> String {
        match Matcher::parse(&v) {
            Ok(m) => panic!("expected an error, parsed {m:?}"),
            Err(e) => e.field,
        }
    }

    fn ok(v: Value) -> Matcher {
        Matcher::parse(&v).unwrap_or_else(|e| panic!("expected {v} to parse: {e}"))
    }

    #[test]
    fn accepts_every_op_with_its_value_kind() {
        for m in [
            json!({"field": "type", "op": "eq", "value": "email.bounced"}),
            json!({"field": "properties.n", "op": "ne", "value": 1.5}),
            json!({"field": "properties.b", "op": "eq", "value": true}),
            json!({"field": "module", "op": "in", "value": ["email", "auth"]}),
            json!({"field": "properties.n", "op": "nin", "value": [1, "a", false]}),
            json!({"field": "type", "op": "prefix", "value": "email."}),
            json!({"field": "type", "op": "suffix", "value": ".failed"}),
            json!({"field": "properties.tags", "op": "contains", "value": "vip"}),
            json!({"field": "properties.x", "op": "exists"}),
            json!({"field": "properties.x", "op": "exists", "value": false}),
            json!({"field": "properties.a.b.c", "op": "gt", "value": 1}),
            json!({"field": "properties.a", "op": "gte", "value": -1.5}),
            json!({"field": "properties.a", "op": "lt", "value": 0}),
            json!({"field": "properties.a", "op": "lte", "value": 1e9}),
            json!({"field": "type", "op": "regex", "value": "^email\\.(bounced|complained)$"}),
            json!({"all": []}),
            json!({"any": []}),
            json!({"not": {"field": "type", "op": "eq", "value": "x"}}),
        ] {
            ok(m);
        }
    }

    #[test]
    fn parses_into_the_stored_shape() {
        let v = json!({"all": [
            {"field": "type", "op": "eq", "value": "email.bounced"},
            {"any": [{"not": {"field": "properties.env", "op": "exists"}}]},
        ]});
        let m = ok(v.clone());
        assert_eq!(serde_json::to_value(&m).unwrap(), v);
        assert_eq!(serde_json::from_value::<Matcher>(v).unwrap(), m);
    }

    #[test]
    fn names_the_node_that_is_not_an_object() {
        assert_eq!(err_at(json!("type")), "match");
        assert_eq!(err_at(json!({})), "match");
        assert_eq!(err_at(json!({"all": [1]})), "match.all[0]");
        assert_eq!(err_at(json!({"not": null})), "match.not");
        assert_eq!(err_at(json!({"all": {"field": "type"}})), "match.all");
        assert_eq!(err_at(json!({"any": "x"})), "match.any");
    }

    #[test]
    fn refuses_nodes_mixing_combinators() {
        assert_eq!(err_at(json!({"all": [], "any": []})), "match");
        assert_eq!(
            err_at(json!({"all": [{"not": {}, "any": []}]})),
            "match.all[0]"
        );
        let e = Matcher::parse(&json!({"all": [], "any": []})).unwrap_err();
        assert!(e.message.contains("`all` and `any`"), "{}", e.message);
    }

    #[test]
    fn refuses_unknown_keys_where_they_are() {
        assert_eq!(err_at(json!({"all": [], "extra": 1})), "match.extra");
        assert_eq!(
            err_at(json!({"field": "type", "op": "eq", "value": "x", "negate": true})),
            "match.negate"
        );
        assert_eq!(err_at(json!({"alll": []})), "match.alll");
        assert_eq!(
            err_at(
                json!({"any": [{"not": {"field": "type", "op": "eq", "value": "x", "Value": 1}}]})
            ),
            "match.any[0].not.Value"
        );
        assert_eq!(
            err_at(
                json!({"all": [{"field": "type", "op": "eq", "value": "x"}, {"field": "type", "op": "eq", "value": "x", "field2": 1}]})
            ),
            "match.all[1].field2"
        );
        assert_eq!(
            err_at(json!({"not": {"field": "type", "op": "eq", "value": "x"}, "field": "type"})),
            "match.field"
        );
    }

    #[test]
    fn refuses_unknown_or_missing_ops() {
        let all = |leaf: Value| json!({"all": [{"field": "type", "op": "eq", "value": "a"}, {"all": []}, leaf]});
        assert_eq!(
            err_at(all(json!({"field": "type", "op": "equals", "value": "a"}))),
            "match.all[2].op"
        );
        assert_eq!(
            err_at(all(json!({"field": "type", "op": "EQ", "value": "a"}))),
            "match.all[2].op"
        );
        assert_eq!(
            err_at(all(json!({"field": "type", "op": 1, "value": "a"}))),
            "match.all[2].op"
        );
        assert_eq!(
            err_at(all(json!({"field": "type", "value": "a"}))),
            "match.all[2].op"
        );
        let e =
            Matcher::parse(&all(json!({"field": "type", "op": "like", "value": "a"}))).unwrap_err();
        assert!(
            e.message.contains("unknown op `like`") && e.message.contains("regex"),
            "{}",
            e.message
        );
    }

    #[test]
    fn refuses_unknown_fields() {
        for field in [
            json!("types"),
            json!("properties"),
            json!("properties."),
            json!("properties..a"),
            json!("properties.a."),
            json!("props.a"),
            json!("Type"),
            json!(""),
            json!(7),
        ] {
            assert_eq!(
                err_at(json!({"any": [{"field": field, "op": "exists"}]})),
                "match.any[0].field",
                "{field}"
            );
        }
        assert_eq!(err_at(json!({"op": "exists"})), "match.field");
    }

    #[test]
    fn refuses_values_of_the_wrong_kind_for_the_op() {
        let cases = [
            (json!({"field": "properties.a", "op": "eq"}), "value"),
            (
                json!({"field": "properties.a", "op": "eq", "value": null}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "eq", "value": [1]}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "ne", "value": {"x": 1}}),
                "value",
            ),
            (json!({"field": "type", "op": "eq", "value": 1}), "value"),
            (
                json!({"field": "module", "op": "ne", "value": true}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "in", "value": "a"}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "in", "value": []}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "nin", "value": ["a", ["b"]]}),
                "value[1]",
            ),
            (
                json!({"field": "properties.a", "op": "in", "value": [1, null]}),
                "value[1]",
            ),
            (
                json!({"field": "type", "op": "in", "value": ["a", "b", 3]}),
                "value[2]",
            ),
            (
                json!({"field": "properties.a", "op": "gt", "value": "1"}),
                "value",
            ),
            (json!({"field": "properties.a", "op": "lte"}), "value"),
            (json!({"field": "type", "op": "gt", "value": 1}), "op"),
            (json!({"field": "module", "op": "lt", "value": 1}), "op"),
            (
                json!({"field": "type", "op": "prefix", "value": 1}),
                "value",
            ),
            (
                json!({"field": "type", "op": "suffix", "value": ["a"]}),
                "value",
            ),
            (
                json!({"field": "properties.tags", "op": "contains", "value": 1}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "exists", "value": "yes"}),
                "value",
            ),
            (
                json!({"field": "properties.a", "op": "exists", "value": null}),
                "value",
            ),
            (json!({"field": "type", "op": "regex", "value": 1}), "value"),
            (
                json!({"field": "type", "op": "regex", "value": "(unclosed"}),
                "value",
            ),
            (
                json!({"field": "type", "op": "regex", "value": "(a)\\1"}),
                "value",
            ),
            (
                json!({"field": "type", "op": "regex", "value": "(?=look)ahead"}),
                "value",
            ),
            // Unicode classes: regex-lite has no Unicode tables (core/src/rules/mod.rs).
            (
                json!({"field": "type", "op": "regex", "value": "\\p{L}+"}),
                "value",
            ),
        ];
        for (leaf, at) in cases {
            let v = json!({"any": [{"not": leaf.clone()}]});
            assert_eq!(err_at(v), format!("match.any[0].not.{at}"), "{leaf}");
        }
    }

    #[test]
    fn refuses_regexes_that_compile_too_large() {
        let huge = json!({"field": "type", "op": "regex", "value": "\\w{10000}"});
        assert_eq!(err_at(huge), "match.value");
    }

    #[test]
    fn refuses_strings_past_the_limit() {
        let long = "a".repeat(MAX_STRING_CHARS + 1);
        let fits = "é".repeat(MAX_STRING_CHARS);
        ok(json!({"field": "properties.a", "op": "eq", "value": fits}));
        assert_eq!(
            err_at(json!({"field": "properties.a", "op": "eq", "value": long})),
            "match.value"
        );
        assert_eq!(
            err_at(json!({"field": "type", "op": "prefix", "value": long})),
            "match.value"
        );
        assert_eq!(
            err_at(json!({"field": "properties.a", "op": "in", "value": ["a", long]})),
            "match.value[1]"
        );
        assert_eq!(
            err_at(json!({"field": format!("properties.{long}"), "op": "exists"})),
            "match.field"
        );
    }

    #[test]
    fn refuses_in_lists_past_the_limit() {
        let fits: Vec<Value> = (0..MAX_IN_ITEMS).map(|i| json!(i)).collect();
        ok(json!({"field": "properties.a", "op": "in", "value": fits}));
        let over: Vec<Value> = (0..=MAX_IN_ITEMS).map(|i| json!(i)).collect();
        assert_eq!(
            err_at(json!({"field": "properties.a", "op": "in", "value": over})),
            "match.value"
        );
    }

    #[test]
    fn refuses_trees_deeper_than_the_limit() {
        let leaf = json!({"field": "type", "op": "exists"});
        let mut v = leaf.clone();
        for _ in 1..MAX_DEPTH {
            v = json!({"all": [v]});
        }
        ok(v.clone());
        let too_deep = json!({"not": v});
        assert_eq!(
            err_at(too_deep),
            format!("match.not{}", ".all[0]".repeat(MAX_DEPTH - 1))
        );
    }

    #[test]
    fn refuses_trees_with_too_many_nodes() {
        let leaf = json!({"field": "type", "op": "exists"});
        ok(json!({"any": vec![leaf.clone(); MAX_NODES - 1]}));
        let over = json!({"any": vec![leaf.clone(); MAX_NODES]});
        assert_eq!(err_at(over), format!("match.any[{}]", MAX_NODES - 1));
    }

    #[test]
    fn a_very_deep_document_fails_without_recursing_through_it() {
        let mut v = json!({"field": "type", "op": "exists"});
        for _ in 0..100_000 {
            v = Value::Object(Map::from_iter([("not".to_owned(), v)]));
        }
        let e = Matcher::parse(&v).unwrap_err();
        assert_eq!(e.field, format!("match{}", ".not".repeat(MAX_DEPTH)));
        // serde_json drops deep values recursively; keep the stack from overflowing in the test.
        std::mem::forget(v);
    }
}
