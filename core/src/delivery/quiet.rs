//! Quiet hours: when a user-facing delivery may go out.
//!
//! A window `[start, end)` is local wall-clock time in the rule's IANA zone, wrapping midnight
//! when `start > end` (22:00–08:00). Whether an instant is inside is decided on the wall clock it
//! shows in that zone — always well defined. The window's end is the first instant the wall
//! clock reaches `end`:
//! - an `end` that does not exist that day (skipped by a spring-forward jump, e.g. 02:30 in New
//!   York on 8 March 2026) ends the window at the jump (03:00 EDT);
//! - an `end` that occurs twice (repeated by a fall-back, e.g. 01:30 on 1 November 2026) ends it
//!   at the first occurrence still ahead: the first, or the second for an instant inside the
//!   repeated hour after the first has passed.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};

use crate::domain::rule::QuietHours;

/// Whether `now` falls in the quiet window, and if so when it ends: `None` when a delivery may
/// go out now, else the instant it may.
pub fn next_allowed(now: DateTime<Utc>, q: &QuietHours) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&q.tz).naive_local();
    let t = local.time();
    let wraps = q.start > q.end;
    let inside = if wraps {
        t >= q.start || t < q.end
    } else {
        q.start <= t && t < q.end
    };
    if !inside {
        return None;
    }
    let mut end_date = local.date();
    if wraps && t >= q.start {
        end_date = end_date.succ_opt()?;
    }
    Some(first_instant_at(q.tz, end_date.and_time(q.end), now))
}

/// The first instant whose wall clock in `tz` shows `wall` or later, the first occurrence
/// after `now` when `wall` occurs twice. Digests' daily time (`digest.at`) uses it too.
pub fn first_instant_at(
    tz: chrono_tz::Tz,
    wall: NaiveDateTime,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut probe = wall;
    // A gap is at most a few hours (24 for the rare zone that skipped a whole day); walking
    // minute by minute finds the jump exactly, since transitions fall on whole minutes.
    for _ in 0..(26 * 60) {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, second) => {
                let first = first.with_timezone(&Utc);
                return if first > now {
                    first
                } else {
                    second.with_timezone(&Utc)
                };
            }
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    wall.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    fn ny(start: &str, end: &str) -> QuietHours {
        QuietHours::parse("America/New_York", Some((start, end))).expect("valid")
    }

    #[test]
    fn outside_the_window_nothing_waits() {
        let q = ny("22:00", "08:00");
        // 12:00 EDT.
        assert_eq!(next_allowed(at("2026-06-01T16:00:00Z"), &q), None);
        // 08:00 EDT exactly: the end is exclusive.
        assert_eq!(next_allowed(at("2026-06-01T12:00:00Z"), &q), None);
    }

    #[test]
    fn a_window_wrapping_midnight_ends_the_next_morning() {
        let q = ny("22:00", "08:00");
        // 22:00 EDT on 1 June → 08:00 EDT on 2 June.
        assert_eq!(
            next_allowed(at("2026-06-02T02:00:00Z"), &q),
            Some(at("2026-06-02T12:00:00Z"))
        );
        // 03:00 EDT on 2 June → 08:00 EDT the same day.
        assert_eq!(
            next_allowed(at("2026-06-02T07:00:00Z"), &q),
            Some(at("2026-06-02T12:00:00Z"))
        );
    }

    #[test]
    fn a_daytime_window_ends_the_same_day() {
        let q = ny("09:00", "17:00");
        assert_eq!(
            next_allowed(at("2026-06-01T14:00:00Z"), &q),
            Some(at("2026-06-01T21:00:00Z"))
        );
        assert_eq!(next_allowed(at("2026-06-01T22:00:00Z"), &q), None);
    }

    #[test]
    fn spring_forward_night_is_an_hour_shorter() {
        let q = ny("22:00", "08:00");
        // 22:30 EST on 7 March 2026 (UTC-5); clocks jump 02:00 → 03:00 on 8 March; 08:00 EDT is
        // 12:00 UTC, not 13:00.
        assert_eq!(
            next_allowed(at("2026-03-08T03:30:00Z"), &q),
            Some(at("2026-03-08T12:00:00Z"))
        );
        // 01:59 EST, just before the jump: still the same end.
        assert_eq!(
            next_allowed(at("2026-03-08T06:59:00Z"), &q),
            Some(at("2026-03-08T12:00:00Z"))
        );
        // 03:00 EDT, just after it.
        assert_eq!(
            next_allowed(at("2026-03-08T07:00:00Z"), &q),
            Some(at("2026-03-08T12:00:00Z"))
        );
    }

    #[test]
    fn an_end_skipped_by_spring_forward_ends_at_the_jump() {
        let q = ny("01:00", "02:30");
        // 01:30 EST; 02:30 does not exist on 8 March: the window ends at 03:00 EDT = 07:00 UTC.
        assert_eq!(
            next_allowed(at("2026-03-08T06:30:00Z"), &q),
            Some(at("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn fall_back_night_is_an_hour_longer() {
        let q = ny("22:00", "08:00");
        // 23:00 EDT on 31 October (UTC-4); clocks fall back 02:00 → 01:00 on 1 November; 08:00
        // EST is 13:00 UTC.
        assert_eq!(
            next_allowed(at("2026-11-01T03:00:00Z"), &q),
            Some(at("2026-11-01T13:00:00Z"))
        );
        // 01:30 EST, the second 01:30: still inside, same end.
        assert_eq!(
            next_allowed(at("2026-11-01T06:30:00Z"), &q),
            Some(at("2026-11-01T13:00:00Z"))
        );
    }

    #[test]
    fn an_end_repeated_by_fall_back_ends_at_its_first_occurrence() {
        let q = ny("00:00", "01:30");
        // 00:30 EDT on 1 November → the first 01:30 (EDT) = 05:30 UTC.
        assert_eq!(
            next_allowed(at("2026-11-01T04:30:00Z"), &q),
            Some(at("2026-11-01T05:30:00Z"))
        );
        // 01:15 EST, the second 01:15 (06:15 UTC): the first 01:30 has passed, so the window
        // ends at the second, 06:30 UTC.
        assert_eq!(
            next_allowed(at("2026-11-01T06:15:00Z"), &q),
            Some(at("2026-11-01T06:30:00Z"))
        );
    }
}
