//! Lane pacing: how fast one channel may be sent to, and when it must not be sent to at all.
//!
//! Every channel is a *lane*. Before an attempt the dispatcher asks the lane's [`LaneState`]
//! whether it may go ([`LaneState::admit`]); after it, it tells the lane what happened
//! ([`LaneState::record`]). Three things can hold a lane:
//!
//! - **its rate limit** ([`RateLimit`], `{perSecond, burst}`): a token bucket kept as one number,
//!   the *theoretical arrival time* of the generic cell rate algorithm (GCRA, as in ATM networks
//!   and `redis-cell`): a send is allowed at `now` when `tat − (burst − 1)·interval ≤ now`, and
//!   moves `tat` to `max(tat, now) + interval`. One value per channel means one conditional write
//!   per admitted send on DynamoDB, and — unlike fixed windows — never `2·burst` sends across a
//!   window boundary, which a receiver enforcing "1 per second with short bursts" would refuse;
//! - **a pause**: a 429 holds the whole lane until the provider's `Retry-After` (or Discord's
//!   `retry_after`), not just the delivery that got it;
//! - **its circuit breaker**: [`BREAKER_THRESHOLD`] retryable failures in a row (5xx, timeouts,
//!   connection errors — not 429s, which pause) open the circuit for a backoff that doubles with
//!   each further failure, from [`BREAKER_FIRST_OPEN`] to [`BREAKER_MAX_OPEN`]. When it has
//!   passed, the next delivery is the probe: a success closes the circuit, a failure opens it for
//!   twice as long. A lane whose circuit is open costs no attempts, so a broken receiver does not
//!   burn every delivery's retry budget.
//!
//! A held delivery is not attempted and nothing is logged as an attempt; it waits for the
//! instant [`Admission::Hold`] names.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::channel::{ChannelConfig, WebhookFormat};
use crate::domain::delivery::ErrorClass;

/// Failures in a row that open a lane's circuit.
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long a circuit first stays open.
pub const BREAKER_FIRST_OPEN: Duration = Duration::from_secs(5);
/// The longest a circuit stays open before the next probe.
pub const BREAKER_MAX_OPEN: Duration = Duration::from_secs(5 * 60);
/// How long a 429 without any wait hint pauses the lane.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause a provider's hint is taken for (a bogus `Retry-After: 999999` must not
/// silence a channel for days; the delivery's own retry bound still applies).
pub const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

/// The bounds of [`RateLimit`] (`shared/design/next-features.md` §1a).
pub const MAX_PER_SECOND: f64 = 100.0;
pub const MAX_BURST: u32 = 1000;

/// At most `per_second` sends per second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Sends per second, sustained: more than 0, at most 100 (0.5 = one every two seconds).
    #[schema(example = 1.0)]
    pub per_second: f64,
    /// Sends allowed back to back before the rate applies: 1 to 1000.
    #[schema(example = 3)]
    pub burst: u32,
}

/// Why a [`RateLimit`] was refused, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RateLimitError {
    pub field: &'static str,
    pub message: String,
}

impl RateLimit {
    /// A checked limit.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, RateLimitError> {
        if !(per_second > 0.0 && per_second <= MAX_PER_SECOND) {
            return Err(RateLimitError {
                field: "perSecond",
                message: format!(
                    "must be more than 0 and at most {MAX_PER_SECOND} (got {per_second})"
                ),
            });
        }
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(RateLimitError {
                field: "burst",
                message: format!("must be from 1 to {MAX_BURST} (got {burst})"),
            });
        }
        Ok(Self { per_second, burst })
    }

    /// The limit a channel gets when it sets none: the providers' published per-webhook limits
    /// for chat (Slack 1/s with short bursts, Discord 5 per 2–10 s, Teams 4/s) and PagerDuty (120 a
    /// minute per routing key), none for generic
    /// webhooks (the receiver's own limit is unknown: set one) and for email, SMS and push
    /// (provider account limits are not per channel).
    pub fn default_for(config: &ChannelConfig) -> Option<Self> {
        let (per_second, burst) = match config {
            ChannelConfig::Slack(_) => (1.0, 3),
            ChannelConfig::Webhook(w) => match w.format {
                WebhookFormat::Discord => (0.5, 5),
                WebhookFormat::Teams => (4.0, 4),
                // Events API v2: 120 events a minute per routing key.
                WebhookFormat::PagerDuty => (2.0, 4),
                WebhookFormat::Generic => return None,
            },
            _ => return None,
        };
        Some(Self { per_second, burst })
    }

    /// The time one send uses up, in milliseconds (at least 1).
    pub fn interval_ms(&self) -> i64 {
        ((1000.0 / self.per_second).ceil() as i64).max(1)
    }

    /// GCRA: given the lane's theoretical arrival time (`None`: never sent), may a send go at
    /// `now_ms`? `Ok(new_tat)` to store, or `Err(at)`: not before `at`.
    pub fn admit(&self, tat_ms: Option<i64>, now_ms: i64) -> Result<i64, i64> {
        // A burst of 0 behaves as 1, as it always has; a cost of 1 then never exceeds it.
        gcra(self.interval_ms(), self.burst.max(1), 1, tat_ms, now_ms).map_err(|r| match r {
            Refused::Until(at) => at,
            Refused::OverBurst => i64::MAX,
        })
    }

    /// `1 per second, bursts of 3`.
    pub fn describe(&self) -> String {
        format!("{} per second, bursts of {}", self.per_second, self.burst)
    }
}

/// Why [`gcra`] refused `cost` cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not before this instant (in the unit of `now`).
    Until(i64),
    /// More cells at once than the burst: no wait makes room for them.
    OverBurst,
}

/// One GCRA step for `cost` cells at once (a batch of 100 events takes 100), in any unit of time
/// (`interval`, `tat` and `now` share it: milliseconds for lanes, microseconds for ingest).
/// The cells go at `now` when `tat + cost·interval − burst·interval ≤ now`, and move `tat` there;
/// for one cell that is [`RateLimit::admit`]'s rule. `Ok(new_tat)` to store, or why not.
pub fn gcra(
    interval: i64,
    burst: u32,
    cost: u32,
    tat: Option<i64>,
    now: i64,
) -> Result<i64, Refused> {
    if cost > burst {
        return Err(Refused::OverBurst);
    }
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(interval.saturating_mul(i64::from(cost)));
    let allowed_at = new_tat.saturating_sub(interval.saturating_mul(i64::from(burst)));
    if allowed_at <= now {
        Ok(new_tat)
    } else {
        Err(Refused::Until(allowed_at))
    }
}

/// What a lane says to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Not now; not before `until`.
    Hold {
        until: DateTime<Utc>,
        why: Hold,
    },
}

/// What a lane says to several deliveries at once (a dispatcher batch's, in their order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAdmission {
    /// How many go now: the first `go` of them.
    pub go: usize,
    /// What the others are told: a hold ([`Admission::Go`] when all go).
    pub rest: Admission,
}

/// Why a lane holds its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Over the channel's rate limit.
    Paced,
    /// The provider answered 429.
    Paused,
    /// The circuit breaker is open after failures in a row.
    CircuitOpen,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paced => "paced",
            Self::Paused => "paused",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// One lane's state: what the dispatcher keeps per channel (on DynamoDB one item, written with a
/// version condition; in `herald serve` the same item in the embedded store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneState {
    /// GCRA theoretical arrival time, Unix milliseconds (paced lanes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tat_ms: Option<i64>,
    /// Held by a 429 until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
    /// Retryable failures in a row (429s excluded).
    #[serde(default)]
    pub failures: u32,
    /// The circuit is open until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_until: Option<DateTime<Utc>>,
    /// The last failure, for channel health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl LaneState {
    /// May a delivery go at `now` under `limit`? On [`Admission::Go`] the state has taken the
    /// send (the caller stores it); on a hold it is unchanged.
    pub fn admit(&mut self, limit: Option<RateLimit>, now: DateTime<Utc>) -> Admission {
        if let Some(until) = self.paused_until.filter(|u| *u > now) {
            return Admission::Hold {
                until,
                why: Hold::Paused,
            };
        }
        if let Some(until) = self.open_until.filter(|u| *u > now) {
            return Admission::Hold {
                until,
                why: Hold::CircuitOpen,
            };
        }
        if let Some(limit) = limit {
            match limit.admit(self.tat_ms, now.timestamp_millis()) {
                Ok(tat) => self.tat_ms = Some(tat),
                Err(at) => {
                    return Admission::Hold {
                        until: DateTime::from_timestamp_millis(at).unwrap_or(now),
                        why: Hold::Paced,
                    };
                }
            }
        }
        Admission::Go
    }

    /// May `wanted` deliveries go at `now` under `limit`? As many as the lane allows go — the
    /// same as `wanted` admissions one after the other at `now`, so a paced lane's arrival time
    /// moves by one interval per delivery that goes, within its burst — and the rest are held
    /// until the slot after them. The state has taken the sends that go (the caller stores it).
    pub fn admit_many(
        &mut self,
        limit: Option<RateLimit>,
        now: DateTime<Utc>,
        wanted: usize,
    ) -> BatchAdmission {
        for go in 0..wanted {
            if let hold @ Admission::Hold { .. } = self.admit(limit, now) {
                return BatchAdmission { go, rest: hold };
            }
        }
        BatchAdmission {
            go: wanted,
            rest: Admission::Go,
        }
    }

    /// Takes in an attempt's outcome (`None`: accepted). Returns whether the state changed, so
    /// an unchanged lane costs no write.
    pub fn record(
        &mut self,
        error: Option<ErrorClass>,
        retry_after: Option<Duration>,
        message: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let before = self.clone();
        match error {
            None => {
                self.failures = 0;
                self.open_until = None;
                self.last_error = None;
            }
            Some(ErrorClass::RateLimited) => {
                let wait = retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
                self.paused_until = Some(now + chrono_duration(wait));
                self.last_error = Some(message.to_owned());
            }
            Some(class) if class.is_retryable() => {
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(message.to_owned());
                if self.failures >= BREAKER_THRESHOLD {
                    let doublings = (self.failures - BREAKER_THRESHOLD).min(16);
                    let open = BREAKER_FIRST_OPEN
                        .saturating_mul(1 << doublings)
                        .min(BREAKER_MAX_OPEN);
                    self.open_until = Some(now + chrono_duration(open));
                }
            }
            // Permanent refusals end the delivery and, for 401/403/404/410, mark the channel
            // broken (channel health); they say nothing about the lane's capacity.
            Some(_) => {}
        }
        *self != before
    }

    /// The hold in force at `now`, if any (rate pacing aside): for channel health.
    pub fn hold_at(&self, now: DateTime<Utc>) -> Option<(Hold, DateTime<Utc>)> {
        if let Some(u) = self.paused_until.filter(|u| *u > now) {
            return Some((Hold::Paused, u));
        }
        self.open_until
            .filter(|u| *u > now)
            .map(|u| (Hold::CircuitOpen, u))
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("time")
    }

    #[test]
    fn a_burst_goes_at_once_then_the_rate_applies() {
        let limit = RateLimit::new(1.0, 3).expect("limit");
        let mut lane = LaneState::default();
        for _ in 0..3 {
            assert_eq!(lane.admit(Some(limit), at(0)), Admission::Go);
        }
        assert_eq!(
            lane.admit(Some(limit), at(0)),
            Admission::Hold {
                until: at(1000),
                why: Hold::Paced
            }
        );
        assert_eq!(lane.admit(Some(limit), at(1000)), Admission::Go);
        assert!(matches!(
            lane.admit(Some(limit), at(1500)),
            Admission::Hold { until, .. } if until == at(2000)
        ));
    }

    #[test]
    fn no_window_boundary_lets_two_bursts_through() {
        // However sends are timed, any span of t ms holds at most burst + t / interval sends.
        let limit = RateLimit::new(2.0, 4).expect("limit");
        let mut lane = LaneState::default();
        let mut sent = Vec::new();
        for ms in (0..20_000).step_by(37) {
            if lane.admit(Some(limit), at(ms)) == Admission::Go {
                sent.push(ms);
            }
        }
        for (i, start) in sent.iter().enumerate() {
            for (j, end) in sent.iter().enumerate().skip(i) {
                let allowed = 4 + (end - start) / limit.interval_ms();
                assert!((j - i + 1) as i64 <= allowed, "{start}..{end}");
            }
        }
        // And the long-run rate is the limit's.
        assert!((38..=44).contains(&sent.len()), "{}", sent.len());
    }

    #[test]
    fn an_idle_lane_gets_its_burst_back_but_no_more() {
        let limit = RateLimit::new(1.0, 3).expect("limit");
        let mut lane = LaneState::default();
        assert_eq!(lane.admit(Some(limit), at(0)), Admission::Go);
        let gone = (0..10)
            .filter(|_| lane.admit(Some(limit), at(60_000)) == Admission::Go)
            .count();
        assert_eq!(gone, 3);
    }

    #[test]
    fn a_429_pauses_the_lane_for_the_hint_and_a_success_does_not_lift_it() {
        let mut lane = LaneState::default();
        assert!(lane.record(
            Some(ErrorClass::RateLimited),
            Some(Duration::from_secs(2)),
            "429",
            at(0)
        ));
        assert_eq!(
            lane.admit(None, at(1999)),
            Admission::Hold {
                until: at(2000),
                why: Hold::Paused
            }
        );
        assert_eq!(lane.admit(None, at(2000)), Admission::Go);
        assert_eq!(lane.failures, 0, "a 429 is not a failure of the receiver");
    }

    #[test]
    fn an_absurd_retry_after_is_bounded() {
        let mut lane = LaneState::default();
        lane.record(
            Some(ErrorClass::RateLimited),
            Some(Duration::from_secs(10_000_000)),
            "429",
            at(0),
        );
        assert_eq!(lane.paused_until, Some(at(15 * 60 * 1000)));
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_with_doubling_backoff_and_a_success_closes_it() {
        let mut lane = LaneState::default();
        for _ in 0..BREAKER_THRESHOLD - 1 {
            lane.record(Some(ErrorClass::ServerError), None, "503", at(0));
            assert_eq!(lane.admit(None, at(0)), Admission::Go);
        }
        lane.record(Some(ErrorClass::ServerError), None, "503", at(0));
        assert_eq!(
            lane.admit(None, at(0)),
            Admission::Hold {
                until: at(5_000),
                why: Hold::CircuitOpen
            }
        );
        // The probe after the open period fails: twice as long.
        assert_eq!(lane.admit(None, at(5_000)), Admission::Go);
        lane.record(Some(ErrorClass::ServerError), None, "503", at(5_000));
        assert_eq!(lane.open_until, Some(at(15_000)));
        // Many more failures: bounded.
        for _ in 0..40 {
            lane.record(Some(ErrorClass::Network), None, "refused", at(0));
        }
        assert_eq!(lane.open_until, Some(at(300_000)));
        assert!(lane.record(None, None, "", at(1)));
        assert_eq!(lane, LaneState::default());
    }

    #[test]
    fn an_unchanged_lane_reports_no_change() {
        let mut lane = LaneState::default();
        assert!(!lane.record(None, None, "", at(0)));
        assert!(!lane.record(Some(ErrorClass::BadPayload), None, "400", at(0)));
    }

    #[test]
    fn a_batch_takes_as_many_cells_as_it_holds() {
        // 10 per ms-interval unit, burst 100: 60 + 40 go at once, then 1 waits 1 interval.
        assert_eq!(gcra(10, 100, 60, None, 0), Ok(600));
        assert_eq!(gcra(10, 100, 40, Some(600), 0), Ok(1000));
        assert_eq!(gcra(10, 100, 1, Some(1000), 0), Err(Refused::Until(10)));
        // Refilled at the rate: after 250 units, 25 cells, not 26.
        assert_eq!(gcra(10, 100, 26, Some(1000), 250), Err(Refused::Until(260)));
        assert_eq!(gcra(10, 100, 25, Some(1000), 250), Ok(1250));
        // An idle bucket is full, never fuller.
        assert_eq!(gcra(10, 100, 100, Some(1000), 1_000_000), Ok(1_001_000));
        assert_eq!(gcra(10, 100, 101, None, 0), Err(Refused::OverBurst));
    }

    #[test]
    fn a_batch_larger_than_the_burst_is_refused_however_long_it_waits() {
        for now in [0, 1_000, 1_000_000_000] {
            assert_eq!(gcra(1, 5, 6, None, now), Err(Refused::OverBurst));
        }
        assert_eq!(gcra(1, 5, 5, None, 0), Ok(5));
    }

    #[test]
    fn one_cell_of_the_batch_step_is_the_lane_step() {
        let limit = RateLimit::new(3.0, 4).expect("limit");
        let (mut a, mut b) = (None, None);
        for now in (0..5_000).step_by(41) {
            let lane = limit.admit(a, now);
            let batch = gcra(limit.interval_ms(), limit.burst, 1, b, now);
            assert_eq!(
                lane,
                batch.map_err(|r| match r {
                    Refused::Until(at) => at,
                    Refused::OverBurst => unreachable!("one cell"),
                })
            );
            if let Ok(t) = lane {
                (a, b) = (Some(t), Some(t));
            }
        }
    }

    #[test]
    fn a_batch_admission_lets_the_burst_go_and_holds_the_rest_until_the_next_slot() {
        let limit = RateLimit::new(1.0, 3).expect("limit");
        let mut lane = LaneState::default();
        assert_eq!(
            lane.admit_many(Some(limit), at(0), 10),
            BatchAdmission {
                go: 3,
                rest: Admission::Hold {
                    until: at(1000),
                    why: Hold::Paced
                }
            }
        );
        assert_eq!(lane.tat_ms, Some(at(3000).timestamp_millis()));
        // An unpaced lane lets them all go; a paused one none.
        let mut clean = LaneState::default();
        assert_eq!(
            clean.admit_many(None, at(0), 10),
            BatchAdmission {
                go: 10,
                rest: Admission::Go
            }
        );
        assert_eq!(clean, LaneState::default());
        let mut paused = LaneState {
            paused_until: Some(at(500)),
            ..LaneState::default()
        };
        assert_eq!(
            paused.admit_many(Some(limit), at(0), 2),
            BatchAdmission {
                go: 0,
                rest: Admission::Hold {
                    until: at(500),
                    why: Hold::Paused
                }
            }
        );
        assert_eq!(paused.tat_ms, None, "a held batch takes no send");
        assert_eq!(
            lane.admit_many(Some(limit), at(0), 0),
            BatchAdmission {
                go: 0,
                rest: Admission::Go
            }
        );
    }

    proptest::proptest! {
        /// Admitting k at once is admitting them one after the other at the same instant: the
        /// same number go, the lane ends in the same state, the rest wait for the same slot.
        #[test]
        fn admitting_a_batch_is_admitting_its_deliveries_one_by_one(
            per_second in 0.05f64..100.0,
            burst in 1u32..20,
            history in proptest::collection::vec((0i64..3_000, 1usize..12), 0..12),
        ) {
            let limit = RateLimit::new(per_second, burst).expect("limit");
            let (mut batched, mut single) = (LaneState::default(), LaneState::default());
            let mut now = 0;
            for (step, wanted) in history {
                now += step;
                let batch = batched.admit_many(Some(limit), at(now), wanted);
                let one_by_one: Vec<_> =
                    (0..wanted).map(|_| single.admit(Some(limit), at(now))).collect();
                let go = one_by_one.iter().take_while(|a| **a == Admission::Go).count();
                proptest::prop_assert_eq!(batch.go, go);
                proptest::prop_assert!(one_by_one[go..].iter().all(|a| *a == batch.rest));
                proptest::prop_assert_eq!(&batched, &single);
                // Never more than the burst at once.
                proptest::prop_assert!(batch.go <= burst as usize);
            }
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            RateLimit::new(0.0, 1).expect_err("refused").field,
            "perSecond"
        );
        assert_eq!(
            RateLimit::new(100.5, 1).expect_err("refused").field,
            "perSecond"
        );
        assert_eq!(
            RateLimit::new(f64::NAN, 1).expect_err("refused").field,
            "perSecond"
        );
        assert_eq!(RateLimit::new(1.0, 0).expect_err("refused").field, "burst");
        assert_eq!(
            RateLimit::new(1.0, 1001).expect_err("refused").field,
            "burst"
        );
        assert!(RateLimit::new(0.01, 1000).is_ok());
    }
}
