//! API keys. A key is shown once, at creation, as `pk_<env>_<random>`; only its SHA-256 is
//! stored, and a request's key is found by that hash.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiKeyId, Invalid, OrgId};

/// A stored API key: its id, org, label and hash, never the secret itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: Option<String>,
    /// The first characters of the key (`pk_live_ab12`), enough to tell keys apart in a list.
    pub prefix: String,
    pub hash: KeyHash,
    pub created_at: DateTime<Utc>,
}

/// The hex SHA-256 of a key's full text: what is stored and looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key's secret text. Its `Debug` hides it, so it never reaches a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(…)")
    }
}

impl ApiKeySecret {
    /// A new random key for environment `env` (`live`, `test`, `dev`, `prod`, ...).
    pub fn generate(env: &str) -> Self {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("pk_{env}_{}", hex::encode(bytes)))
    }

    /// A key given from outside (`HERALD_DEV_API_KEY`): any `pk_`-prefixed printable string.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if !s.starts_with("pk_")
            || s.len() < 8
            || s.len() > 256
            || s.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Invalid::new(
                "key",
                "an API key is `pk_` followed by at least 5 printable characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    pub fn prefix(&self) -> String {
        self.0.chars().take(12).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_and_hash_stably() {
        let k = ApiKeySecret::generate("live");
        assert!(k.expose().starts_with("pk_live_"));
        assert_eq!(k.hash(), KeyHash::of(k.expose()));
        assert!(!format!("{k:?}").contains(k.expose()));
    }

    #[test]
    fn given_keys_must_be_pk_prefixed() {
        assert!(ApiKeySecret::parse("pk_dev_local").is_ok());
        assert!(ApiKeySecret::parse("sk_dev_local").is_err());
    }
}
