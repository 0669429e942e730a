//! The matcher tree of a rule's `match`, as written and stored: the data of the matcher
//! language. Parsing (strict, with the path of a bad node) and evaluation are the rule engine's,
//! [`crate::rules`].

use serde::{Deserialize, Serialize};

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
