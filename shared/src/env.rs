//! Configuration from the environment, as the Lambda functions read it (the SAM template sets the
//! variables). One reading for every function: a variable set to blanks counts as unset, and a
//! variable that is set but does not parse is an error naming it — never a silent default.

use std::str::FromStr;

/// A variable that is missing or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{0} is not set")]
    Missing(String),
    #[error("{name}: `{value}` is not {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: &'static str,
    },
}

/// The variable's value, trimmed; `None` when unset or blank.
pub fn optional(name: &str) -> Option<String> {
    Env::process().optional(name)
}

/// The variable's value; an error when unset or blank.
pub fn required(name: &str) -> Result<String, EnvError> {
    Env::process().required(name)
}

/// The variable parsed as a `T` (`expected` says what it should be, for the error), or `default`
/// when unset.
pub fn parsed_or<T: FromStr>(
    name: &str,
    default: T,
    expected: &'static str,
) -> Result<T, EnvError> {
    Env::process().parsed_or(name, default, expected)
}

/// A comma-separated list, items trimmed, blanks dropped; empty when unset.
pub fn list(name: &str) -> Vec<String> {
    Env::process().list(name)
}

/// Where variables are read from: the process environment, or a fixed set (tests).
struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'static> {
    fn process() -> Self {
        Self {
            get: &|name| std::env::var(name).ok(),
        }
    }
}

impl Env<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<String, EnvError> {
        self.optional(name)
            .ok_or_else(|| EnvError::Missing(name.to_owned()))
    }

    fn parsed_or<T: FromStr>(
        &self,
        name: &str,
        default: T,
        expected: &'static str,
    ) -> Result<T, EnvError> {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| EnvError::Invalid {
                name: name.to_owned(),
                value,
                expected,
            }),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_bad_values_are_named() {
        let get = |name: &str| {
            match name {
                "BLANK" => Some("  "),
                "NUM" => Some("x12"),
                "LIST" => Some(" a, ,b "),
                "URL" => Some(" https://q.example/1 "),
                _ => None,
            }
            .map(str::to_owned)
        };
        let env = Env { get: &get };
        assert_eq!(env.optional("BLANK"), None);
        assert_eq!(env.optional("URL").as_deref(), Some("https://q.example/1"));
        assert_eq!(
            env.required("BLANK"),
            Err(EnvError::Missing("BLANK".into()))
        );
        assert_eq!(env.parsed_or("UNSET", 30_i64, "a number of days"), Ok(30));
        assert_eq!(
            env.parsed_or("NUM", 30_i64, "a number of days")
                .map_err(|e| e.to_string()),
            Err("NUM: `x12` is not a number of days".to_owned())
        );
        assert_eq!(env.list("LIST"), ["a", "b"]);
        assert!(env.list("UNSET").is_empty());
    }
}
