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
//! | `regex` | string (a [`regex_lite`] pattern, linear time, not anchored: use `^…$`) | the field is a string the pattern finds a match in |
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
//! # Regex syntax
//!
//! [`regex_lite`]'s: the `regex` crate's syntax (no look-around, no backreferences) except that
//! `\d`, `\w`, `\s`, `\b` and `(?i)` are ASCII-only and Unicode classes (`\p{L}`, `\pN`, ...) are
//! refused; a literal non-ASCII character (`é`, `[^β]`) matches as itself. Matching is linear in
//! the text, as with `regex`, without its faster engines: fields are short.
//!
//! # Using it
//!
//! [`Matcher::parse`] validates the JSON of a request strictly (unknown keys, wrong kinds, bad
//! patterns), naming the bad node as in `match.all[2].op`. [`RuleSet::compile`] builds an index of
//! an org's enabled rules once; [`RuleSet::matching`] then returns the rules an event fires, in
//! the order the rules were given.

mod compile;
pub mod explain;
mod parse;
pub mod replay;
mod set;

#[cfg(test)]
mod testgen;

pub use compile::CompiledMatcher;
pub use set::RuleSet;

use crate::domain::matcher::{
    Leaf, MAX_DEPTH, MAX_IN_ITEMS, MAX_NODES, MAX_REGEX_BYTES, MAX_STRING_CHARS, Matcher, Op,
};
