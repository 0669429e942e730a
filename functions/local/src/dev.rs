//! The development org: created on first start, printed, and stable across restarts.
//!
//! `HERALD_DEV_ORG_ID`, `HERALD_DEV_API_KEY` (any `pk_`-prefixed string) and `HERALD_ADMIN_KEY`
//! fix the credentials for scripts. Otherwise they are generated once and kept in
//! `<data-dir>/dev-credentials.json` (owner-only), so every restart prints the same ones — except
//! the admin key, printed only when it is generated; later starts say where it is kept.
//! Bootstrapping only creates what is missing: a restart with the same values changes nothing.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use herald_core::domain::api_key::{ApiKey, ApiKeySecret};
use herald_core::domain::org::{Org, OrgName};
use herald_core::domain::{ApiKeyId, OrgId};
use herald_shared::repo::{ApiKeys, Orgs};
use herald_shared::store::Store;
use serde::{Deserialize, Serialize};

/// The local server's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub org_id: OrgId,
    pub api_key: String,
    pub admin_key: String,
    /// Where the admin key came from this start.
    #[serde(skip)]
    pub admin_key_origin: AdminKeyOrigin,
    /// The file the credentials are kept in.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Where the admin key came from, which decides whether the banner shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminKeyOrigin {
    /// Generated on this start: shown once.
    Generated,
    /// Kept from an earlier start: not shown again.
    #[default]
    Stored,
    /// `HERALD_ADMIN_KEY`: the caller knows it.
    Environment,
}

impl Credentials {
    pub fn print(&self, url: &str) {
        println!("Herald is running at {url}");
        println!("  development org:  {}", self.org_id);
        println!("  API key:          {}", self.api_key);
        let path = self.path.display();
        match self.admin_key_origin {
            AdminKeyOrigin::Generated => {
                println!("  admin key:        {}", self.admin_key);
                println!("                    (generated now and shown this once; kept in {path})");
            }
            AdminKeyOrigin::Stored => {
                println!("  admin key:        kept in {path} (`adminKey`)");
            }
            AdminKeyOrigin::Environment => {
                println!("  admin key:        from HERALD_ADMIN_KEY (also kept in {path})");
            }
        }
        println!(
            "  try:  curl {url}/api/v1/orgs/{}/notifications/channels -H \"x-api-key: {}\"",
            self.org_id, self.api_key
        );
    }
}

const FILE: &str = "dev-credentials.json";

/// The admin key kept in `data_dir` by an earlier start.
pub fn stored_admin_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(FILE);
    let saved: Credentials = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("reading {}", path.display()))?;
    Ok(saved.admin_key)
}

/// Loads or creates the development credentials and makes sure the org and key exist.
pub async fn bootstrap(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Credentials> {
    let path = data_dir.join(FILE);
    let saved: Option<Credentials> = match std::fs::read(&path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let org_id = match env("HERALD_DEV_ORG_ID") {
        Some(id) => id
            .parse()
            .with_context(|| format!("HERALD_DEV_ORG_ID `{id}` is not a UUID"))?,
        None => saved.as_ref().map_or_else(OrgId::new, |s| s.org_id),
    };
    let api_key = match env("HERALD_DEV_API_KEY") {
        Some(k) => ApiKeySecret::parse(&k)
            .map_err(|e| anyhow::anyhow!("HERALD_DEV_API_KEY: {}", e.message))?,
        None => match &saved {
            Some(s) => ApiKeySecret::parse(&s.api_key)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?,
            None => ApiKeySecret::generate("test"),
        },
    };
    let (admin_key, admin_key_origin) = match (env("HERALD_ADMIN_KEY"), &saved) {
        (Some(key), _) => (key, AdminKeyOrigin::Environment),
        (None, Some(s)) => (s.admin_key.clone(), AdminKeyOrigin::Stored),
        (None, None) => (
            ApiKeySecret::generate("admin")
                .expose()
                .replacen("pk_", "ak_", 1),
            AdminKeyOrigin::Generated,
        ),
    };

    let orgs = Orgs::new(store);
    if orgs.get(&org_id).await?.is_none() {
        let name = OrgName::parse("Development").map_err(|e| anyhow::anyhow!(e.message))?;
        orgs.upsert(&Org {
            id: org_id,
            name,
            created_at: Utc::now(),
        })
        .await?;
    }
    let keys = ApiKeys::new(store);
    match keys.find_by_hash(&api_key.hash()).await? {
        Some(existing) if existing.org_id == org_id => {}
        Some(existing) => {
            anyhow::bail!("the dev API key already belongs to org {}", existing.org_id)
        }
        None => {
            keys.create(&ApiKey {
                id: ApiKeyId::new(),
                org_id,
                name: Some("development".to_owned()),
                prefix: api_key.prefix(),
                hash: api_key.hash(),
                created_at: Utc::now(),
            })
            .await?;
        }
    }

    let credentials = Credentials {
        org_id,
        api_key: api_key.expose().to_owned(),
        admin_key,
        admin_key_origin,
        path: path.clone(),
    };
    write_private(&path, &serde_json::to_vec_pretty(&credentials)?)?;
    Ok(credentials)
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // A file made before (or by hand) keeps its mode on open: set it.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    Ok(())
}
