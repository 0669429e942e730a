//! The rule engine: matcher trees over events, validated at write time and compiled once per
//! rule set. Pure: no I/O, no clock.

use serde::{Deserialize, Serialize};

/// A matcher tree as stored and as written in a rule's `match`.
///
/// `{"all":[...]}`, `{"any":[...]}`, `{"not":...}`, or a leaf
/// `{"field":"type"|"module"|"properties.a.b", "op":..., "value":...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Matcher {
    All { all: Vec<Matcher> },
    Any { any: Vec<Matcher> },
    Not { not: Box<Matcher> },
    Leaf(Leaf),
}

/// One comparison of an event field with a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    pub field: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    In,
    Nin,
    Prefix,
    Suffix,
    Contains,
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
    Regex,
}
