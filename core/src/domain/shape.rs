//! Deserialising client-supplied JSON into domain input types, with errors that name the
//! offending field the way the API reports them (`config.headers`, `channelIds[1]`).

use serde::de::DeserializeOwned;

use super::Invalid;

/// Deserialises a JSON value nested at `prefix` (e.g. a channel's `config`) into `T`; a value of
/// the wrong shape (a type, a missing or unknown field) is an [`Invalid`] naming the field under
/// `prefix`.
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| describe(&e, Some(prefix)))
}

/// The field and message of a shape error: serde's message without its position, at the path
/// serde reports — or at the missing field itself, which serde reports at its parent — under
/// `prefix` when there is one.
pub fn describe(
    e: &serde_path_to_error::Error<serde_json::Error>,
    prefix: Option<&str>,
) -> Invalid {
    let message = strip_position(&e.inner().to_string());
    let mut field = e.path().to_string();
    if field == "." {
        field.clear();
    }
    if message.starts_with("missing field `")
        && let Some(name) = message.split('`').nth(1)
        && !(field == name || field.ends_with(&format!(".{name}")))
    {
        field = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
    }
    let field = match (prefix, field.is_empty()) {
        (Some(p), true) => p.to_owned(),
        (Some(p), false) if p.is_empty() || field.starts_with('[') => format!("{p}{field}"),
        (Some(p), false) => format!("{p}.{field}"),
        (None, _) => field,
    };
    Invalid::new(field, message)
}

/// serde_json appends ` at line L column C` to its messages; positions are reported separately.
pub fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
