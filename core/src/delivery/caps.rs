//! Frequency caps: at most `perUser` deliveries to one user through one channel per window.
//!
//! Windows are **fixed and aligned to the Unix epoch**: window `i` of a cap with `windowHours = h`
//! covers `[i·h, (i+1)·h)` hours since 1970-01-01T00:00Z (`i = floor(epoch_hours / h)`). A
//! 24-hour cap therefore resets at 00:00 UTC. One counter item per (org, channel, user, window)
//! is incremented with a conditional `ADD` (`n < perUser`), so concurrent matchers can never let
//! more than `perUser` through; the item expires at its window's end.
//!
//! This module is the pure arithmetic; the matcher does the store writes (the counter item's key
//! is `herald_shared::store::keys::cap_counter`).

use chrono::{DateTime, Utc};

use crate::domain::channel::FrequencyCap;
use crate::domain::delivery::CapSlot;
use crate::domain::rule::Rule;

/// The cap in force: the rule's override, else the channel's default.
pub fn effective(rule: &Rule, channel_cap: Option<FrequencyCap>) -> Option<FrequencyCap> {
    rule.frequency_cap.or(channel_cap)
}

/// The fixed window `now` falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `floor(epoch_hours / windowHours)`.
    pub index: i64,
    pub start: DateTime<Utc>,
    /// Exclusive; the counter item's TTL.
    pub end: DateTime<Utc>,
}

impl Window {
    /// What a delivery counted in this window of `cap` keeps, to give its slot back later.
    pub fn slot(&self, cap: FrequencyCap) -> CapSlot {
        CapSlot {
            window_hours: cap.window_hours,
            index: self.index,
            ends_at: self.end,
        }
    }
}

/// The window of `cap` containing `now`.
pub fn window(cap: FrequencyCap, now: DateTime<Utc>) -> Window {
    let len_s = i64::from(cap.window_hours.max(1)) * 3600;
    let index = now.timestamp().div_euclid(len_s);
    let start = DateTime::<Utc>::from_timestamp(index * len_s, 0).unwrap_or(now);
    let end = DateTime::<Utc>::from_timestamp((index + 1) * len_s, 0).unwrap_or(now);
    Window { index, start, end }
}

/// `frequency cap: 5 per 24h reached for user alice`.
pub fn reason(cap: FrequencyCap, user: &str) -> String {
    format!(
        "frequency cap: {} per {}h reached for user {user}",
        cap.per_user, cap.window_hours
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    const DAY: FrequencyCap = FrequencyCap {
        per_user: 5,
        window_hours: 24,
    };

    #[test]
    fn day_windows_are_utc_days() {
        let w = window(DAY, at("2026-05-01T13:45:00Z"));
        assert_eq!(w.start, at("2026-05-01T00:00:00Z"));
        assert_eq!(w.end, at("2026-05-02T00:00:00Z"));
        assert_eq!(w.index, w.start.timestamp() / 86_400);
    }

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let cap = FrequencyCap {
            per_user: 1,
            window_hours: 3,
        };
        let w = window(cap, at("2026-05-01T03:00:00Z"));
        assert_eq!(w.start, at("2026-05-01T03:00:00Z"));
        assert_eq!(w.end, at("2026-05-01T06:00:00Z"));
        assert_eq!(window(cap, at("2026-05-01T05:59:59Z")).index, w.index);
        assert_eq!(window(cap, at("2026-05-01T06:00:00Z")).index, w.index + 1);
    }

    #[test]
    fn windows_not_dividing_a_day_align_to_the_epoch() {
        let cap = FrequencyCap {
            per_user: 1,
            window_hours: 7,
        };
        let w = window(cap, at("2026-05-01T12:00:00Z"));
        assert_eq!(w.start.timestamp() % (7 * 3600), 0);
        assert!(w.start <= at("2026-05-01T12:00:00Z") && at("2026-05-01T12:00:00Z") < w.end);
        assert_eq!((w.end - w.start).num_hours(), 7);
    }

    #[test]
    fn the_reason_names_the_cap_and_user() {
        assert_eq!(
            reason(DAY, "alice"),
            "frequency cap: 5 per 24h reached for user alice"
        );
    }
}
