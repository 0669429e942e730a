//! Every single-table key Herald writes is built here, and documented in `docs/dynamodb.md`.
//! Entity × PK × SK × GSI1.

use super::Key;
use crate::domain::api_key::KeyHash;
use crate::domain::{ApiKeyId, ChannelId, OrgId, RuleKey};

// ---- Orgs, API keys, channels, rules (repositories in `crate::repo`) -------------------------

/// Entity types of the items below, as stored in `entityType`.
pub mod entity {
    pub const ORG: &str = "org";
    pub const API_KEY: &str = "apiKey";
    pub const API_KEY_BY_HASH: &str = "apiKeyByHash";
    pub const CHANNEL: &str = "channel";
    pub const RULE: &str = "rule";
    pub const RULES_VERSION: &str = "rulesVersion";
}

/// Sort-key prefix of an org's API keys.
pub const API_KEY_PREFIX: &str = "APIKEY#";
/// Sort-key prefix of an org's channels.
pub const CHANNEL_PREFIX: &str = "CHANNEL#";
/// Sort-key prefix of an org's rules.
pub const RULE_PREFIX: &str = "RULE#";
/// The integer attribute of the rules-version item.
pub const RULES_VERSION_ATTR: &str = "version";

/// `ORG#<org>`: the partition holding an org and everything it owns that is listed per org.
pub fn org_pk(org: &OrgId) -> String {
    format!("ORG#{org}")
}

/// The org itself: `ORG#<org>` / `ORG`.
pub fn org(org: &OrgId) -> Key {
    Key::new(org_pk(org), "ORG")
}

/// An API key as listed under its org: `ORG#<org>` / `APIKEY#<id>`.
pub fn api_key(org: &OrgId, id: &ApiKeyId) -> Key {
    Key::new(org_pk(org), format!("{API_KEY_PREFIX}{id}"))
}

/// An API key found by the SHA-256 of its secret: `APIKEY#<hash>` / `APIKEY`.
pub fn api_key_by_hash(hash: &KeyHash) -> Key {
    Key::new(format!("{API_KEY_PREFIX}{}", hash.as_str()), "APIKEY")
}

/// A channel: `ORG#<org>` / `CHANNEL#<id>`.
pub fn channel(org: &OrgId, id: &ChannelId) -> Key {
    Key::new(org_pk(org), format!("{CHANNEL_PREFIX}{id}"))
}

/// A rule: `ORG#<org>` / `RULE#<key>`.
pub fn rule(org: &OrgId, key: &RuleKey) -> Key {
    Key::new(org_pk(org), format!("{RULE_PREFIX}{key}"))
}

/// The org's rules version, bumped by every rule write: `ORG#<org>` / `RULESVERSION`.
pub fn rules_version(org: &OrgId) -> Key {
    Key::new(org_pk(org), "RULESVERSION")
}
