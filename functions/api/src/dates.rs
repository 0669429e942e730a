//! Date and time query parameters (`from`, `to`): RFC 3339 or a date, within the years Herald
//! can hold (1970–9999). Anything else is a 400 naming the parameter, never arithmetic on a date
//! at the edge of chrono's range.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{ApiError, ApiResult};

/// The earliest date a parameter may name: delivery ids (UUIDv7) count milliseconds from it.
pub const EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
/// The latest date a parameter may name.
pub const LATEST: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

/// RFC 3339, or a date (`2026-05-01`) meaning its start in UTC.
pub fn instant(value: &str, field: &str) -> ApiResult<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
        .ok_or_else(|| {
            ApiError::invalid_query(
                field,
                format!("`{value}` is neither an RFC 3339 timestamp nor a date (YYYY-MM-DD)"),
            )
        })?;
    in_range(parsed.date_naive(), value, field)?;
    Ok(parsed)
}

/// RFC 3339 or a date, as the day it falls on (UTC).
pub fn day(value: &str, field: &str) -> ApiResult<NaiveDate> {
    instant(value, field).map(|t| t.date_naive())
}

fn in_range(day: NaiveDate, value: &str, field: &str) -> ApiResult<()> {
    if (EARLIEST..=LATEST).contains(&day) {
        Ok(())
    } else {
        Err(ApiError::invalid_query(
            field,
            format!("`{value}` is outside the supported dates ({EARLIEST} to {LATEST})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_edges_of_the_range_are_accepted_and_beyond_them_refused() {
        assert!(instant("1970-01-01", "to").is_ok());
        assert!(instant("9999-12-31T23:59:59Z", "to").is_ok());
        for value in [
            "-262143-01-01",
            "+262142-12-31",
            "1969-12-31",
            "0001-01-01",
            "1969-12-31T23:59:59Z",
        ] {
            let e = instant(value, "to").unwrap_err();
            assert_eq!(e.status(), 400, "{value}");
            assert_eq!(e.field_name(), Some("to"), "{value}");
        }
    }

    proptest! {
        /// Any string, and any date chrono can represent: a value or a 400 naming the field,
        /// never a panic.
        #[test]
        fn any_value_is_parsed_or_refused_with_its_field(value in ".{0,40}") {
            if let Err(e) = instant(&value, "from") {
                prop_assert_eq!(e.status(), 400);
                prop_assert_eq!(e.field_name(), Some("from"));
            }
        }

        #[test]
        fn any_representable_date_is_in_range_or_refused(days in i32::MIN..i32::MAX) {
            let Some(d) = NaiveDate::from_num_days_from_ce_opt(days) else { return Ok(()) };
            for value in [d.format("%Y-%m-%d").to_string(), format!("{d}T00:00:00Z")] {
                match instant(&value, "to") {
                    Ok(t) => prop_assert!((EARLIEST..=LATEST).contains(&t.date_naive())),
                    Err(e) => prop_assert_eq!(e.field_name(), Some("to")),
                }
            }
        }
    }
}
