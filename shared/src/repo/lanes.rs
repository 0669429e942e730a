//! Lanes: one item per channel, `ORG#<org>` / `LANE#<channel>`, holding its
//! [`LaneState`] (GCRA arrival time, 429 pause, circuit breaker) as the document and a `version`
//! number every write is conditioned on.
//!
//! Every dispatcher, on any engine, goes through [`admit`] before an attempt and [`record`]
//! after it. Both read the item, apply the pure [`LaneState`] step and write it back only if
//! nobody wrote in between (`version` unchanged, or the item still absent); a conflict re-reads
//! and tries again. So concurrent dispatchers on DynamoDB never send more than the limit: each
//! admitted send is one committed move of the arrival time.
//!
//! Costs: a lane with no limit and no hold is one read per attempt, no write; a paced lane one
//! read and one conditional write per admitted attempt; a hold is one read. [`record`] writes
//! only when the state changed (a 429, a failure, the first success after failures).

use chrono::{DateTime, Utc};
use herald_core::delivery::pacing::{Admission, Hold, LaneState, RateLimit};
use herald_core::domain::delivery::ErrorClass;
use herald_core::domain::{ChannelId, OrgId};

use super::{RepoError, decode, encode};
use crate::store::keys::{self, entity};
use crate::store::{Condition, Item, Store, StoreError};

/// How many times a lane write is tried against concurrent writers before giving up.
pub const WRITE_ATTEMPTS: usize = 8;
/// A lane item lives this long after its last write: an idle lane forgets its arrival time (its
/// burst is back long before) and stale failure counts.
const LANE_TTL: chrono::Duration = chrono::Duration::days(7);
/// When admission keeps losing to concurrent writers, the delivery is held this long rather
/// than sent unaccounted for.
const CONTENDED_HOLD: chrono::Duration = chrono::Duration::milliseconds(100);

/// A lane as stored, with the version its next write must match (`None`: no item yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredLane {
    pub state: LaneState,
    pub version: Option<i64>,
}

/// The lane of a channel as it stands (a default lane when none is stored).
pub async fn get(
    store: &dyn Store,
    org: &OrgId,
    channel: &ChannelId,
) -> Result<StoredLane, RepoError> {
    from_item(store.get(&keys::lane(org, channel)).await?)
}

/// The lanes of `channels`, in their order: one batched read (channel lists).
pub async fn get_many(
    store: &dyn Store,
    org: &OrgId,
    channels: &[ChannelId],
) -> Result<Vec<StoredLane>, RepoError> {
    let keys: Vec<_> = channels.iter().map(|c| keys::lane(org, c)).collect();
    store
        .get_many(&keys)
        .await?
        .into_iter()
        .map(from_item)
        .collect()
}

fn from_item(item: Option<Item>) -> Result<StoredLane, RepoError> {
    Ok(match item {
        Some(item) => {
            let version = item.nums.get(keys::LANE_VERSION_ATTR).copied().unwrap_or(0);
            StoredLane {
                state: decode(item, entity::LANE)?,
                version: Some(version),
            }
        }
        None => StoredLane::default(),
    })
}

/// Writes `state` if the lane is still at `version`: `Ok(false)` when someone wrote first.
async fn write(
    store: &dyn Store,
    org: &OrgId,
    channel: &ChannelId,
    state: &LaneState,
    version: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool, RepoError> {
    let mut item = Item::new(
        keys::lane(org, channel),
        entity::LANE,
        encode(state, entity::LANE)?,
    )
    .with_ttl((now + LANE_TTL).timestamp());
    item.nums
        .insert(keys::LANE_VERSION_ATTR.to_owned(), version.unwrap_or(0) + 1);
    let condition = match version {
        Some(value) => Condition::NumEquals {
            attr: keys::LANE_VERSION_ATTR.to_owned(),
            value,
        },
        None => Condition::NotExists,
    };
    match store.put(item, condition).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// May a delivery to the channel go at `now` under `limit` (the channel's limit in force)? On
/// [`Admission::Go`] the send is accounted for in the stored lane.
pub async fn admit(
    store: &dyn Store,
    org: &OrgId,
    channel: &ChannelId,
    limit: Option<RateLimit>,
    now: DateTime<Utc>,
) -> Result<Admission, RepoError> {
    for _ in 0..WRITE_ATTEMPTS {
        let StoredLane { mut state, version } = get(store, org, channel).await?;
        let admission = state.admit(limit, now);
        // Unpaced and not held: nothing to account for, so no write.
        if admission != Admission::Go || limit.is_none() {
            return Ok(admission);
        }
        if write(store, org, channel, &state, version, now).await? {
            return Ok(Admission::Go);
        }
    }
    // Lost every race: other dispatchers are sending to this lane right now. Holding briefly
    // keeps the limit; sending without a committed write would not.
    Ok(Admission::Hold {
        until: now + CONTENDED_HOLD,
        why: Hold::Paced,
    })
}

/// Takes in an attempt's outcome (`error`: its class, `None` when accepted). Writes only when
/// the lane's state changed; returns the lane as it now stands.
pub async fn record(
    store: &dyn Store,
    org: &OrgId,
    channel: &ChannelId,
    error: Option<ErrorClass>,
    retry_after: Option<std::time::Duration>,
    message: &str,
    now: DateTime<Utc>,
) -> Result<LaneState, RepoError> {
    for _ in 0..WRITE_ATTEMPTS {
        let StoredLane { mut state, version } = get(store, org, channel).await?;
        if !state.record(error, retry_after, message, now) {
            return Ok(state);
        }
        if write(store, org, channel, &state, version, now).await? {
            return Ok(state);
        }
    }
    Err(RepoError::Contended)
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::embedded::Embedded;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("time")
    }

    #[tokio::test]
    async fn an_unpaced_lane_costs_no_write() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        for _ in 0..5 {
            let go = admit(&store, &org, &channel, None, at(0))
                .await
                .expect("admit");
            assert_eq!(go, Admission::Go);
        }
        assert!(
            store
                .get(&keys::lane(&org, &channel))
                .await
                .expect("get")
                .is_none()
        );
        // A success on a clean lane changes nothing either.
        record(&store, &org, &channel, None, None, "", at(0))
            .await
            .expect("record");
        assert!(
            store
                .get(&keys::lane(&org, &channel))
                .await
                .expect("get")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_paced_lane_holds_past_its_burst_until_the_next_slot() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        let limit = RateLimit::new(1.0, 3).ok();
        for _ in 0..3 {
            let go = admit(&store, &org, &channel, limit, at(0))
                .await
                .expect("admit");
            assert_eq!(go, Admission::Go);
        }
        assert_eq!(
            admit(&store, &org, &channel, limit, at(0))
                .await
                .expect("admit"),
            Admission::Hold {
                until: at(1000),
                why: Hold::Paced
            }
        );
        assert_eq!(
            admit(&store, &org, &channel, limit, at(1000))
                .await
                .expect("admit"),
            Admission::Go
        );
    }

    #[tokio::test]
    async fn a_recorded_429_holds_every_delivery_of_the_lane_until_its_end() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        let lane = record(
            &store,
            &org,
            &channel,
            Some(ErrorClass::RateLimited),
            Some(Duration::from_secs(2)),
            "429: slow down",
            at(0),
        )
        .await
        .expect("record");
        assert_eq!(lane.paused_until, Some(at(2000)));
        for _ in 0..3 {
            assert_eq!(
                admit(&store, &org, &channel, None, at(1500))
                    .await
                    .expect("admit"),
                Admission::Hold {
                    until: at(2000),
                    why: Hold::Paused
                }
            );
        }
        assert_eq!(
            admit(&store, &org, &channel, None, at(2000))
                .await
                .expect("admit"),
            Admission::Go
        );
        // Another channel of the org is not held.
        assert_eq!(
            admit(&store, &org, &ChannelId::new(), None, at(1500))
                .await
                .expect("admit"),
            Admission::Go
        );
    }

    #[tokio::test]
    async fn five_failures_in_a_row_open_the_circuit_and_get_shows_why() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        for _ in 0..5 {
            let go = admit(&store, &org, &channel, None, at(0))
                .await
                .expect("admit");
            assert_eq!(go, Admission::Go);
            record(
                &store,
                &org,
                &channel,
                Some(ErrorClass::ServerError),
                None,
                "503: down",
                at(0),
            )
            .await
            .expect("record");
        }
        assert!(matches!(
            admit(&store, &org, &channel, None, at(1)).await.expect("admit"),
            Admission::Hold { why: Hold::CircuitOpen, until } if until == at(5000)
        ));
        let lane = get(&store, &org, &channel).await.expect("get");
        assert_eq!(lane.state.failures, 5);
        assert_eq!(lane.state.last_error.as_deref(), Some("503: down"));
    }

    /// Many dispatchers admitting at once never let more through than the limit allows: over
    /// any run, at most `burst + elapsed · rate` sends — give or take the few milliseconds
    /// between a dispatcher reading the clock and its write committing (the tolerance a
    /// receiver enforcing the limit must have anyway). Without the conditional write, 16
    /// dispatchers would each see the same burst and send it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_admits_never_exceed_the_limit() {
        let store: Arc<dyn Store> = Arc::new(Embedded::in_memory().expect("store"));
        let (org, channel) = (OrgId::new(), ChannelId::new());
        let limit = RateLimit::new(20.0, 3).expect("limit");
        let start = Utc::now();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut admitted = Vec::new();
                    let deadline = start + chrono::Duration::milliseconds(600);
                    loop {
                        let now = Utc::now();
                        if now >= deadline {
                            return admitted;
                        }
                        match admit(store.as_ref(), &org, &channel, Some(limit), now).await {
                            Ok(Admission::Go) => admitted.push(now),
                            Ok(Admission::Hold { .. }) => {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            Err(e) => panic!("admit: {e}"),
                        }
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all.sort();
        assert!(all.len() >= 3, "the burst goes through: {}", all.len());
        let interval = limit.interval_ms();
        const TOLERANCE_MS: i64 = 10;
        for (i, first) in all.iter().enumerate() {
            for (j, last) in all.iter().enumerate().skip(i) {
                let span = (*last - *first).num_milliseconds() + TOLERANCE_MS;
                let allowed = i64::from(limit.burst) + span / interval;
                assert!(
                    (j - i + 1) as i64 <= allowed,
                    "{} sends in {} ms",
                    j - i + 1,
                    (*last - *first).num_milliseconds()
                );
            }
        }
    }
}
