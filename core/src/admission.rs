//! Admission control of `POST /events`: how many events an org may post, and when it must come
//! back. The arithmetic is the lanes' GCRA ([`crate::delivery::pacing::gcra`]) with a cost of
//! one cell per event, in microseconds, so a whole batch is admitted or refused at once and
//! rates above 1,000 events per second keep their precision.
//!
//! The limit is the deployment's, not a channel's: its bounds are its own
//! ([`IngestLimit::new`]), far above a channel's [`RateLimit`](crate::delivery::pacing::RateLimit).

use std::time::Duration;

use crate::delivery::pacing::{RateLimitError, Refused, gcra};

/// Events per second an org may post, sustained, when the deployment sets nothing: well above
/// what one org's producers send in normal operation, below what makes a backlog of hours.
pub const DEFAULT_EVENTS_PER_SECOND: f64 = 1_000.0;
/// Events an org may post at once when the deployment sets nothing: 100 full batches.
pub const DEFAULT_EVENTS_BURST: u32 = 10_000;
/// Messages queued for one org beyond which `herald serve` refuses its new events.
pub const DEFAULT_MAX_BACKLOG: u64 = 100_000;

/// The `Retry-After` of a refusal for a full backlog: the backlog drains at the speed of its
/// receivers, which the API does not know; a few seconds lets a producer back off without
/// polling.
pub const BACKLOG_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The bounds of [`IngestLimit`].
pub const MAX_EVENTS_PER_SECOND: f64 = 1_000_000.0;
pub const MAX_EVENTS_BURST: u32 = 10_000_000;

const MICROS_PER_SECOND: f64 = 1_000_000.0;

/// At most `per_second` events per second per org on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestLimit {
    per_second: f64,
    burst: u32,
}

/// Why an org's events cannot be admitted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestRefusal {
    /// Over the limit: come back after `retry_after`.
    Later { retry_after: Duration },
    /// The batch holds more events than the burst: it never fits, it must be split.
    OverBurst,
}

impl IngestLimit {
    /// A checked limit: `per_second` more than 0 and at most 1,000,000; `burst` 1 to 10,000,000.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, RateLimitError> {
        if !(per_second > 0.0 && per_second <= MAX_EVENTS_PER_SECOND) {
            return Err(RateLimitError {
                field: "perSecond",
                message: format!(
                    "must be more than 0 and at most {MAX_EVENTS_PER_SECOND} (got {per_second})"
                ),
            });
        }
        if !(1..=MAX_EVENTS_BURST).contains(&burst) {
            return Err(RateLimitError {
                field: "burst",
                message: format!("must be from 1 to {MAX_EVENTS_BURST} (got {burst})"),
            });
        }
        Ok(Self { per_second, burst })
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one event uses up, in microseconds (at least 1).
    pub fn interval_us(&self) -> i64 {
        ((MICROS_PER_SECOND / self.per_second).ceil() as i64).max(1)
    }

    /// May `events` events go at `now_us` (Unix microseconds), given the org's theoretical
    /// arrival time `tat_us` (`None`: nothing posted lately)? `Ok(new_tat)` to store.
    pub fn admit(
        &self,
        tat_us: Option<i64>,
        now_us: i64,
        events: u32,
    ) -> Result<i64, IngestRefusal> {
        gcra(self.interval_us(), self.burst, events, tat_us, now_us).map_err(|r| match r {
            Refused::OverBurst => IngestRefusal::OverBurst,
            Refused::Until(at) => IngestRefusal::Later {
                retry_after: Duration::from_micros(u64::try_from(at - now_us).unwrap_or(0)),
            },
        })
    }

    /// How long an idle org's state stays meaningful: after this long without a post, its
    /// bucket is full again and the state can be forgotten.
    pub fn refill_time(&self) -> Duration {
        Duration::from_micros(
            u64::try_from(self.interval_us().saturating_mul(i64::from(self.burst))).unwrap_or(0),
        )
    }

    /// `1000 events per second, bursts of 10000`.
    pub fn describe(&self) -> String {
        format!(
            "{} events per second, bursts of {}",
            self.per_second, self.burst
        )
    }
}

impl Default for IngestLimit {
    fn default() -> Self {
        Self {
            per_second: DEFAULT_EVENTS_PER_SECOND,
            burst: DEFAULT_EVENTS_BURST,
        }
    }
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn a_burst_of_batches_goes_then_the_rate_applies() {
        let limit = IngestLimit::new(100.0, 300).expect("limit");
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(limit.admit(tat, 0, 100).expect("within the burst"));
        }
        assert_eq!(
            limit.admit(tat, 0, 100),
            Err(IngestRefusal::Later {
                retry_after: Duration::from_secs(1)
            })
        );
        // Half a second refills 50 events: a batch of 50 goes, one more event does not.
        assert_eq!(
            limit.admit(tat, S / 2, 51),
            Err(IngestRefusal::Later {
                retry_after: Duration::from_millis(10)
            })
        );
        assert!(limit.admit(tat, S / 2, 50).is_ok());
    }

    #[test]
    fn a_batch_larger_than_the_burst_is_refused_not_delayed() {
        let limit = IngestLimit::new(10.0, 50).expect("limit");
        assert_eq!(limit.admit(None, 0, 51), Err(IngestRefusal::OverBurst));
        assert_eq!(
            limit.admit(None, 3600 * S, 51),
            Err(IngestRefusal::OverBurst)
        );
    }

    #[test]
    fn rates_above_a_thousand_per_second_keep_their_precision() {
        let limit = IngestLimit::new(50_000.0, 100).expect("limit");
        assert_eq!(limit.interval_us(), 20);
        let mut tat = Some(limit.admit(None, 0, 100).expect("burst"));
        // One second later, 50,000 more events fit and not 50,001.
        let mut admitted = 0;
        for step in 1..=500 {
            if let Ok(t) = limit.admit(tat, step * S / 500, 100) {
                tat = Some(t);
                admitted += 100;
            }
        }
        assert_eq!(admitted, 50_000);
    }

    #[test]
    fn the_default_is_a_thousand_per_second_with_bursts_of_ten_thousand() {
        let limit = IngestLimit::default();
        assert_eq!(IngestLimit::new(1000.0, 10_000), Ok(limit));
        assert_eq!(limit.describe(), "1000 events per second, bursts of 10000");
        assert_eq!(limit.refill_time(), Duration::from_secs(10));
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            IngestLimit::new(0.0, 1).expect_err("refused").field,
            "perSecond"
        );
        assert_eq!(
            IngestLimit::new(f64::NAN, 1).expect_err("refused").field,
            "perSecond"
        );
        assert_eq!(
            IngestLimit::new(2e6, 1).expect_err("refused").field,
            "perSecond"
        );
        assert_eq!(
            IngestLimit::new(1.0, 0).expect_err("refused").field,
            "burst"
        );
        assert!(IngestLimit::new(0.001, MAX_EVENTS_BURST).is_ok());
        // Far above a channel's bounds.
        assert!(IngestLimit::new(5_000.0, 50_000).is_ok());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }
}
