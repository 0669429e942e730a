//! TEMPORARY: stands in for `herald_shared::rules::Matcher::parse` until the rule engine lands on
//! main; delete this module (and its `use`) when merging it. The inherent `Matcher::parse` then
//! takes precedence over this trait method at every call site.

use herald_shared::domain::Invalid;
use herald_shared::rules::Matcher;

pub(crate) trait ParseMatcher: Sized {
    fn parse(value: &serde_json::Value) -> Result<Self, Invalid>;
}

impl ParseMatcher for Matcher {
    fn parse(value: &serde_json::Value) -> Result<Self, Invalid> {
        serde_path_to_error::deserialize(value).map_err(
            |e: serde_path_to_error::Error<serde_json::Error>| {
                let path = e.path().to_string();
                Invalid::new(
                    if path == "." { String::new() } else { path },
                    e.inner().to_string(),
                )
            },
        )
    }
}
