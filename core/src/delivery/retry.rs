//! The retry schedule: exponential backoff with jitter, bounded in attempts and in age. Pure: the
//! caller passes the clock and the randomness.
//!
//! After failed attempt `n` (1-based), the envelope is `min(max_wait, base × multiplier^(n-1))`
//! and the wait is drawn uniformly from `[base, envelope]` — "full jitter" (AWS Architecture Blog,
//! *Exponential Backoff and Jitter*) with a floor of `base` so a retry never hot-loops. A
//! provider's `Retry-After` raises the wait to at least that hint, even past `max_wait`.
//! The delivery gives up (→ `failed`) when `n` reaches `max_attempts`, or when the next attempt
//! would fall after `first_attempt_at + max_age`.
//!
//! Defaults: base 1 s, multiplier 4, `max_wait` 15 min, 8 attempts, 24 h. Envelopes run 1 s, 4 s,
//! 16 s, 64 s, 256 s, 15 min, 15 min: at most about 36 minutes of waiting before the 8th and
//! last attempt, enough to ride out a provider incident without paging hours late. 15 minutes
//! is also SQS's largest `DelaySeconds`, so each wait fits one delayed re-send.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// When to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first envelope and the least wait.
    pub base: Duration,
    /// How much the envelope grows per attempt.
    pub multiplier: u32,
    /// The largest envelope (a `Retry-After` may ask for more).
    pub max_wait: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No attempt later than this after the first.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            multiplier: 4,
            max_wait: Duration::from_secs(15 * 60),
            max_attempts: 8,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait after failed attempt `attempt_n` (before any `Retry-After`).
    /// Never below `base`, never above `max(base, max_wait)`, non-decreasing in `attempt_n`.
    pub fn envelope(&self, attempt_n: u32) -> Duration {
        let cap = self.max_wait.max(self.base);
        let mut env = self.base;
        for _ in 1..attempt_n.max(1) {
            env = env.saturating_mul(self.multiplier.max(1));
            if env >= cap {
                return cap;
            }
        }
        env.min(cap)
    }

    /// The wait before the next attempt after failed attempt `attempt_n` (1-based), or `None` to
    /// give up. `rng` is a uniform draw in `[0, 1)` (values outside are clamped);
    /// `retry_after` is the provider's least wait, if it gave one.
    pub fn next_attempt(
        &self,
        attempt_n: u32,
        first_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        rng: f64,
    ) -> Option<Duration> {
        if attempt_n >= self.max_attempts {
            return None;
        }
        let envelope = self.envelope(attempt_n);
        let rng = if rng.is_finite() {
            rng.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = self.base + (envelope.saturating_sub(self.base)).mul_f64(rng);
        let wait = jittered
            .min(envelope)
            .max(retry_after.unwrap_or(Duration::ZERO));
        let elapsed = (now - first_attempt_at).to_std().unwrap_or(Duration::ZERO);
        let next_at = elapsed.checked_add(wait)?;
        (next_at <= self.max_age).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .expect("date")
    }

    #[test]
    fn the_default_envelopes_grow_by_four_up_to_fifteen_minutes() {
        let p = RetryPolicy::default();
        let envs: Vec<u64> = (1..=8).map(|n| p.envelope(n).as_secs()).collect();
        assert_eq!(envs, vec![1, 4, 16, 64, 256, 900, 900, 900]);
    }

    #[test]
    fn the_eighth_attempt_is_the_last() {
        let p = RetryPolicy::default();
        assert!(p.next_attempt(7, t0(), t0(), None, 0.5).is_some());
        assert_eq!(p.next_attempt(8, t0(), t0(), None, 0.5), None);
    }

    #[test]
    fn a_retry_after_past_the_age_limit_gives_up() {
        let p = RetryPolicy::default();
        let now = t0() + chrono::Duration::hours(23);
        assert_eq!(
            p.next_attempt(2, t0(), now, Some(Duration::from_secs(2 * 3600)), 0.0),
            None
        );
        assert_eq!(
            p.next_attempt(2, t0(), now, Some(Duration::from_secs(1800)), 0.0),
            Some(Duration::from_secs(1800))
        );
    }

    #[test]
    fn the_draw_spans_base_to_envelope() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_attempt(3, t0(), t0(), None, 0.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            p.next_attempt(3, t0(), t0(), None, 1.0),
            Some(Duration::from_secs(16))
        );
    }

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (
            1u64..5_000,
            1u32..8,
            0u64..3_600_000,
            1u32..20,
            1u64..200_000,
        )
            .prop_map(|(base, mult, max_wait, attempts, age)| RetryPolicy {
                base: Duration::from_millis(base),
                multiplier: mult,
                max_wait: Duration::from_millis(max_wait),
                max_attempts: attempts,
                max_age: Duration::from_secs(age),
            })
    }

    proptest! {
        #[test]
        fn waits_stay_within_the_envelope_and_respect_retry_after(
            p in policy(),
            n in 1u32..30,
            elapsed in 0u64..300_000,
            hint in proptest::option::of(0u64..100_000_000),
            rng in 0.0f64..1.0,
        ) {
            let now = t0() + chrono::Duration::milliseconds(elapsed as i64);
            let hint = hint.map(Duration::from_millis);
            if let Some(wait) = p.next_attempt(n, t0(), now, hint, rng) {
                prop_assert!(n < p.max_attempts);
                prop_assert!(wait >= p.base);
                if let Some(h) = hint {
                    prop_assert!(wait >= h);
                    prop_assert!(wait <= p.envelope(n).max(h));
                } else {
                    prop_assert!(wait <= p.envelope(n));
                }
                prop_assert!(Duration::from_millis(elapsed) + wait <= p.max_age);
            } else {
                let longest = p.envelope(n).max(hint.unwrap_or(Duration::ZERO));
                prop_assert!(n >= p.max_attempts || Duration::from_millis(elapsed) + longest > p.max_age);
            }
        }

        #[test]
        fn the_envelope_never_shrinks(p in policy(), n in 1u32..60) {
            prop_assert!(p.envelope(n + 1) >= p.envelope(n));
            prop_assert!(p.envelope(n) >= p.base);
            prop_assert!(p.envelope(n) <= p.max_wait.max(p.base));
        }

        #[test]
        fn a_larger_draw_never_waits_less(p in policy(), n in 1u32..30, a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let wl = p.next_attempt(n, t0(), t0(), None, lo);
            let wh = p.next_attempt(n, t0(), t0(), None, hi);
            if let (Some(wl), Some(wh)) = (wl, wh) {
                prop_assert!(wl <= wh);
            }
        }
    }
}
