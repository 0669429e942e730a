//! Silences: `ORG#<org>` / `SILENCE#<id>`, the whole [`Silence`] as the document, with a
//! `version` for conditional updates. An ended silence stays listed (as `expired`) until
//! [`KEPT_AFTER_END_DAYS`] after its end, then expires from the table.

use chrono::{DateTime, Utc};

use crate::store::keys::{self, entity};
use crate::store::{Condition, Cursor, Item, Store, StoreError};
use herald_core::domain::silence::{MAX_LIVE_SILENCES, Silence, SilenceState};
use herald_core::domain::{OrgId, SilenceId};

use super::{Page, RepoError, decode, encode, list_all, list_prefix};

/// How long an ended silence is kept for audit.
pub const KEPT_AFTER_END_DAYS: i64 = 30;

const VERSION: &str = "version";

/// A silence with the version its next write is conditioned on.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub silence: Silence,
    pub version: i64,
}

fn item(silence: &Silence, version: i64) -> Result<Item, RepoError> {
    let mut item = Item::new(
        keys::silence(&silence.org_id, &silence.id),
        entity::SILENCE,
        encode(silence, entity::SILENCE)?,
    )
    .with_ttl((silence.ends_at + chrono::Duration::days(KEPT_AFTER_END_DAYS)).timestamp());
    item.nums.insert(VERSION.to_owned(), version);
    Ok(item)
}

/// Why a silence write was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// The org has [`MAX_LIVE_SILENCES`] silences that have not ended.
    #[error("this org has {MAX_LIVE_SILENCES} silences that have not ended; expire some first")]
    TooMany,
    /// An ended silence cannot change.
    #[error("this silence has ended; create a new one")]
    Expired,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl From<StoreError> for SilenceError {
    fn from(e: StoreError) -> Self {
        Self::Repo(e.into())
    }
}

/// Every silence of the org that has not ended at `now` (pending or active): what the matcher
/// evaluates.
pub async fn live(
    store: &dyn Store,
    org: OrgId,
    now: DateTime<Utc>,
) -> Result<Vec<Silence>, RepoError> {
    let all: Vec<Silence> = list_all(
        store,
        keys::org_pk(&org),
        keys::SILENCE_PREFIX,
        entity::SILENCE,
    )
    .await?;
    Ok(all
        .into_iter()
        .filter(|s| s.state(now) != SilenceState::Expired)
        .collect())
}

/// Stores a new silence, unless the org already has [`MAX_LIVE_SILENCES`] that have not ended.
pub async fn create(
    store: &dyn Store,
    silence: &Silence,
    now: DateTime<Utc>,
) -> Result<(), SilenceError> {
    if live(store, silence.org_id, now).await?.len() >= MAX_LIVE_SILENCES {
        return Err(SilenceError::TooMany);
    }
    store.put(item(silence, 1)?, Condition::NotExists).await?;
    Ok(())
}

/// One silence.
pub async fn get(
    store: &dyn Store,
    org: OrgId,
    id: SilenceId,
) -> Result<Option<Versioned>, RepoError> {
    let Some(item) = store.get(&keys::silence(&org, &id)).await? else {
        return Ok(None);
    };
    let version = item.nums.get(VERSION).copied().unwrap_or(0);
    Ok(Some(Versioned {
        silence: decode(item, entity::SILENCE)?,
        version,
    }))
}

/// Writes a changed silence, on condition that nobody changed it since it was read
/// ([`RepoError::Contended`] otherwise).
pub async fn save(store: &dyn Store, changed: &Versioned) -> Result<(), RepoError> {
    match store
        .put(
            item(&changed.silence, changed.version + 1)?,
            Condition::NumEquals {
                attr: VERSION.to_owned(),
                value: changed.version,
            },
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(RepoError::Contended),
        Err(e) => Err(e.into()),
    }
}

/// Changes a silence with `change`, reading it again when a concurrent write won. `None` when
/// there is no such silence; [`SilenceError::Expired`] when it has ended.
pub async fn update(
    store: &dyn Store,
    org: OrgId,
    id: SilenceId,
    now: DateTime<Utc>,
    mut change: impl FnMut(&mut Silence) -> Result<(), SilenceError>,
) -> Result<Option<Silence>, SilenceError> {
    for _ in 0..8 {
        let Some(mut current) = get(store, org, id).await? else {
            return Ok(None);
        };
        if current.silence.state(now) == SilenceState::Expired {
            return Err(SilenceError::Expired);
        }
        change(&mut current.silence)?;
        match save(store, &current).await {
            Ok(()) => return Ok(Some(current.silence)),
            Err(RepoError::Contended) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepoError::Contended.into())
}

/// One page of the org's silences, oldest first; with `state`, only those in that state at
/// `now` (a page may then hold fewer than `limit`, and still have a next one).
pub async fn list(
    store: &dyn Store,
    org: OrgId,
    state: Option<SilenceState>,
    limit: usize,
    cursor: Option<Cursor>,
    now: DateTime<Utc>,
) -> Result<Page<Silence>, RepoError> {
    let page: Page<Silence> = list_prefix(
        store,
        keys::org_pk(&org),
        keys::SILENCE_PREFIX,
        limit,
        cursor,
        entity::SILENCE,
    )
    .await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .filter(|s| state.is_none_or(|st| s.state(now) == st))
            .collect(),
        next: page.next,
    })
}
