//! The rule engine: matcher trees over events, validated at write time and compiled once per
//! rule set. Pure: no I/O, no clock.
//!
//! # Writing a matcher
//!
//! A rule's `match` is a tree of nodes:
//! - `{"all":[...]}`: every child matches (`all: []` is always true);
//! - `{"any":[...]}`: at least one child matches (`any: []` is never true);
//! - `{"not":{...}}`: the child does not match;
//! - a leaf `{"field":..., "op":..., "value":...}`.
//!
//! A leaf's `field` is `type`, `module`, or `properties.<path>` where `<path>` is one or more
//! non-empty names separated by dots, walking nested objects (`properties.order.total`). Arrays are
//! not indexed by a path; a path through a non-object is a missing field. A property whose value is
//! `null` is present (for `exists`) but equals nothing.
//!
//! # Ops
//!
//! | op | value | true when |
//! |---|---|---|
//! | `eq` | string, number or boolean | the field holds an equal scalar; numbers compare numerically (`1` equals `1.0`), no coercion between kinds (`"1"` is not `1`) |
//! | `ne` | same as `eq` | `eq` is false — **including when the field is missing** |
//! | `in` | non-empty array (≤ 256) of scalars | the field equals one of them |
//! | `nin` | same as `in` | `in` is false — **including when the field is missing** |
//! | `prefix`, `suffix` | string | the field is a string starting / ending with it |
//! | `contains` | string | the field is a string containing it as a substring, or an array with an element equal to it |
//! | `exists` | boolean, or no value (= `true`) | the field is present (`true`) or missing (`false`) |
//! | `gt`, `gte`, `lt`, `lte` | number | the field is a number ordered that way against the value; false for any other kind |
//! | `regex` | string (a [`regex`] pattern, linear time, not anchored: use `^…$`) | the field is a string the pattern finds a match in |
//!
//! So `ne` ≡ `not eq` and `nin` ≡ `not in` exactly. `type` and `module` are strings: ops on them
//! take string values, and the ordered ops are refused for them.
//!
//! # Bounds
//!
//! At most [`MAX_DEPTH`] levels of nesting, [`MAX_NODES`] nodes per matcher, [`MAX_IN_ITEMS`]
//! values in an `in`/`nin` list, and [`MAX_STRING_CHARS`] characters in any string (field names,
//! values, patterns). Regex programs are also limited in compiled size.
//!
//! # Using it
//!
//! [`Matcher::parse`] validates the JSON of a request strictly (unknown keys, wrong kinds, bad
//! patterns), naming the bad node as in `match.all[2].op`. [`RuleSet::compile`] builds an index of
//! an org's enabled rules once; [`RuleSet::matching`] then returns the rules an event fires, in
//! the order the rules were given.

mod compile;
mod parse;
mod set;

#[cfg(test)]
mod testgen;

use serde::{Deserialize, Serialize};

pub use compile::CompiledMatcher;
pub use set::RuleSet;

/// Deepest nesting of a matcher: the root is level 1.
pub const MAX_DEPTH: usize = 8;
/// Most nodes (combinators and leaves) in one matcher.
pub const MAX_NODES: usize = 64;
/// Most values in one `in`/`nin` list.
pub const MAX_IN_ITEMS: usize = 256;
/// Longest string (in characters) in a matcher: field names, values, regex patterns.
pub const MAX_STRING_CHARS: usize = 1024;
/// Largest compiled regex program, in bytes.
pub const MAX_REGEX_BYTES: usize = 256 * 1024;

/// A matcher tree as stored and as written in a rule's `match`.
///
/// `{"all":[...]}`, `{"any":[...]}`, `{"not":...}`, or a leaf
/// `{"field":"type"|"module"|"properties.a.b", "op":..., "value":...}`.
///
/// Deserializing is lenient (it is how stored rules are read back); requests go through the
/// strict [`Matcher::parse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Matcher {
    /// Every child matches.
    All { all: Vec<Matcher> },
    /// At least one child matches.
    Any { any: Vec<Matcher> },
    /// The child does not match.
    Not { not: Box<Matcher> },
    /// One comparison.
    Leaf(Leaf),
}

/// One comparison of an event field with a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// `type`, `module` or `properties.<path>`.
    pub field: String,
    pub op: Op,
    /// Absent only for `exists` (meaning `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// A leaf's comparison; see the module documentation for each one's meaning.
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

impl Op {
    /// Every op, in the order the documentation lists them.
    pub const ALL: [Op; 13] = [
        Op::Eq,
        Op::Ne,
        Op::In,
        Op::Nin,
        Op::Prefix,
        Op::Suffix,
        Op::Contains,
        Op::Exists,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Regex,
    ];

    /// The op's name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::Nin => "nin",
            Op::Prefix => "prefix",
            Op::Suffix => "suffix",
            Op::Contains => "contains",
            Op::Exists => "exists",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Regex => "regex",
        }
    }

    /// The op named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
