//! Domain types. Constructors refuse bad values; fields are private where an invariant holds.

pub mod alert;
pub mod api_key;
pub mod channel;
pub mod delivery;
pub mod digest;
pub mod email;
pub mod event;
pub mod group;
pub mod ids;
pub mod matcher;
pub mod org;
pub mod recovery;
pub mod rule;
pub mod shape;
pub mod silence;
pub mod suppression;
pub mod user;

pub use ids::*;

/// A value refused by a domain constructor: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Path of the offending field in the request body, e.g. `config.webhookUrl` or `match.all[2].op`.
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, nested under `parent` (`config` + `url` → `config.url`).
    pub fn under(self, parent: &str) -> Self {
        let field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        Self { field, ..self }
    }
}
