//! Lanes: one item per channel, `ORG#<org>` / `LANE#<channel>`, holding its
//! [`LaneState`] (GCRA arrival time, 429 pause, circuit breaker) as the document and a `version`
//! number every write is conditioned on.
//!
//! Every dispatcher, on any engine, goes through [`admit`] before attempts and [`record`]
//! after each. Both read the item, apply the pure [`LaneState`] step and write it back only if
//! nobody wrote in between (`version` unchanged, or the item still absent); a conflict re-reads
//! and tries again. So concurrent dispatchers on DynamoDB never send more than the limit: the
//! sends a dispatcher admits (one, or several of a batch at once) are one committed move of the
//! arrival time.
//!
//! Costs, per lane per [`admit`] (a dispatcher batch's deliveries to one channel together): a
//! lane with no limit and no hold is one read, no write; a paced lane one read and one
//! conditional write when any delivery goes; a hold is one read. [`record`] reads and writes
//! only when the outcome changes the lane as its admission left it (a 429, a failure, the first
//! success after failures): a success on a clean lane costs nothing.

use chrono::{DateTime, Utc};
use herald_core::delivery::pacing::{Admission, BatchAdmission, Hold, LaneState, RateLimit};
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

/// What [`admit`] decided, and the lane as it stands after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneAdmission {
    pub admission: BatchAdmission,
    /// The lane as read, with the sends that go taken (as stored when they are accounted for):
    /// what [`record`] starts from for these deliveries' outcomes.
    pub lane: LaneState,
}

/// May `wanted` deliveries to the channel go at `now` under `limit` (the channel's limit in
/// force)? The first [`BatchAdmission::go`] of them may, and are accounted for in the stored
/// lane by one conditional write; the rest are held. One read of the lane, plus that write for
/// a paced lane, whatever `wanted` is.
pub async fn admit(
    store: &dyn Store,
    org: &OrgId,
    channel: &ChannelId,
    limit: Option<RateLimit>,
    wanted: usize,
    now: DateTime<Utc>,
) -> Result<LaneAdmission, RepoError> {
    let mut last_seen = LaneState::default();
    for _ in 0..WRITE_ATTEMPTS {
        let StoredLane { mut state, version } = get(store, org, channel).await?;
        last_seen.clone_from(&state);
        let admission = state.admit_many(limit, now, wanted);
        // None goes, or unpaced: nothing to account for, so no write.
        if admission.go == 0 || limit.is_none() {
            return Ok(LaneAdmission {
                admission,
                lane: state,
            });
        }
        if write(store, org, channel, &state, version, now).await? {
            return Ok(LaneAdmission {
                admission,
                lane: state,
            });
        }
    }
    // Lost every race: other dispatchers are sending to this lane right now. Holding briefly
    // keeps the limit; sending without a committed write would not. The lane handed back is the
    // last one read, none of these sends taken.
    Ok(LaneAdmission {
        admission: BatchAdmission {
            go: 0,
            rest: Admission::Hold {
                until: now + CONTENDED_HOLD,
                why: Hold::Paced,
            },
        },
        lane: last_seen,
    })
}

/// Takes in an attempt's outcome (`error`: its class, `None` when accepted). Writes only when
/// the lane's state changed; returns the lane as it now stands.
///
/// `seen`: the lane as this attempt's admission left it. When the outcome would not change it
/// (a success on a clean lane, the usual case) nothing is read or written — as if the outcome
/// had been taken in at admission; an outcome that changes it reads the lane afresh and writes
/// it with the version condition.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    store: &dyn Store,
    org: &OrgId,
    channel: &ChannelId,
    seen: Option<&LaneState>,
    error: Option<ErrorClass>,
    retry_after: Option<std::time::Duration>,
    message: &str,
    now: DateTime<Utc>,
) -> Result<LaneState, RepoError> {
    if let Some(seen) = seen {
        let mut state = seen.clone();
        if !state.record(error, retry_after, message, now) {
            return Ok(state);
        }
    }
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

    /// What the lane says to one delivery.
    async fn admit_one(
        store: &dyn Store,
        org: &OrgId,
        channel: &ChannelId,
        limit: Option<RateLimit>,
        now: DateTime<Utc>,
    ) -> Result<Admission, RepoError> {
        let admitted = admit(store, org, channel, limit, 1, now).await?;
        Ok(match admitted.admission.go {
            1 => Admission::Go,
            _ => admitted.admission.rest,
        })
    }

    #[tokio::test]
    async fn an_unpaced_lane_costs_no_write() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        for _ in 0..5 {
            let go = admit_one(&store, &org, &channel, None, at(0))
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
        record(&store, &org, &channel, None, None, None, "", at(0))
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
            let go = admit_one(&store, &org, &channel, limit, at(0))
                .await
                .expect("admit");
            assert_eq!(go, Admission::Go);
        }
        assert_eq!(
            admit_one(&store, &org, &channel, limit, at(0))
                .await
                .expect("admit"),
            Admission::Hold {
                until: at(1000),
                why: Hold::Paced
            }
        );
        assert_eq!(
            admit_one(&store, &org, &channel, limit, at(1000))
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
            None,
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
                admit_one(&store, &org, &channel, None, at(1500))
                    .await
                    .expect("admit"),
                Admission::Hold {
                    until: at(2000),
                    why: Hold::Paused
                }
            );
        }
        assert_eq!(
            admit_one(&store, &org, &channel, None, at(2000))
                .await
                .expect("admit"),
            Admission::Go
        );
        // Another channel of the org is not held.
        assert_eq!(
            admit_one(&store, &org, &ChannelId::new(), None, at(1500))
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
            let go = admit_one(&store, &org, &channel, None, at(0))
                .await
                .expect("admit");
            assert_eq!(go, Admission::Go);
            record(
                &store,
                &org,
                &channel,
                None,
                Some(ErrorClass::ServerError),
                None,
                "503: down",
                at(0),
            )
            .await
            .expect("record");
        }
        assert!(matches!(
            admit_one(&store, &org, &channel, None, at(1)).await.expect("admit"),
            Admission::Hold { why: Hold::CircuitOpen, until } if until == at(5000)
        ));
        let lane = get(&store, &org, &channel).await.expect("get");
        assert_eq!(lane.state.failures, 5);
        assert_eq!(lane.state.last_error.as_deref(), Some("503: down"));
    }

    #[tokio::test]
    async fn a_batch_is_admitted_with_one_write_and_its_rest_held_until_the_next_slot() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        let limit = RateLimit::new(1.0, 3).ok();
        let admitted = admit(&store, &org, &channel, limit, 10, at(0))
            .await
            .expect("admit");
        assert_eq!(
            admitted.admission,
            BatchAdmission {
                go: 3,
                rest: Admission::Hold {
                    until: at(1000),
                    why: Hold::Paced
                }
            }
        );
        let stored = get(&store, &org, &channel).await.expect("get");
        assert_eq!(stored.version, Some(1), "one write for the three sends");
        assert_eq!(stored.state, admitted.lane);
        assert_eq!(stored.state.tat_ms, Some(at(3000).timestamp_millis()));
        // A batch of which none goes writes nothing.
        let none = admit(&store, &org, &channel, limit, 4, at(500))
            .await
            .expect("admit");
        assert_eq!(none.admission.go, 0);
        assert_eq!(
            get(&store, &org, &channel).await.expect("get").version,
            Some(1)
        );
    }

    #[tokio::test]
    async fn an_outcome_that_changes_the_lane_is_taken_in_on_the_stored_lane_not_the_seen_one() {
        let store = Embedded::in_memory().expect("store");
        let (org, channel) = (OrgId::new(), ChannelId::new());
        let seen = admit(&store, &org, &channel, None, 1, at(0))
            .await
            .expect("admit")
            .lane;
        // Meanwhile other dispatchers record four failures.
        for _ in 0..4 {
            record(
                &store,
                &org,
                &channel,
                None,
                Some(ErrorClass::ServerError),
                None,
                "503",
                at(0),
            )
            .await
            .expect("record");
        }
        // This attempt's failure is the fifth in a row, though its admission saw a clean lane.
        let lane = record(
            &store,
            &org,
            &channel,
            Some(&seen),
            Some(ErrorClass::ServerError),
            None,
            "503",
            at(1),
        )
        .await
        .expect("record");
        assert_eq!(lane.failures, 5);
        assert_eq!(lane.open_until, Some(at(5001)));
        assert_eq!(get(&store, &org, &channel).await.expect("get").state, lane);
        // A success on the lane its admission saw clean changes nothing there: no read, no write.
        let untouched = record(&store, &org, &channel, Some(&seen), None, None, "", at(2))
            .await
            .expect("record");
        assert_eq!(untouched, seen);
        assert_eq!(get(&store, &org, &channel).await.expect("get").state, lane);
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
        // Half the dispatchers admit one delivery at a time, the others batches of 2 to 4.
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let wanted = 1 + task % 4;
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    let deadline = start + chrono::Duration::milliseconds(600);
                    loop {
                        let now = Utc::now();
                        if now >= deadline {
                            return sent;
                        }
                        match admit(store.as_ref(), &org, &channel, Some(limit), wanted, now).await
                        {
                            Ok(admitted) => {
                                let go = admitted.admission.go;
                                sent.extend(std::iter::repeat_n(now, go));
                                if go < wanted {
                                    tokio::time::sleep(Duration::from_millis(2)).await;
                                }
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
