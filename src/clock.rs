//! UTC days: the unit of limits, budgets and stats.

use chrono::{Duration, NaiveDate, Utc};

/// Today in UTC as `YYYY-MM-DD`.
pub fn utc_today() -> NaiveDate {
    Utc::now().date_naive()
}

pub fn day_string(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Seconds until the next 00:00 UTC, at least 1: what `retry-after` says when a daily limit is hit.
pub fn secs_to_utc_midnight() -> u64 {
    let now = Utc::now();
    let midnight = (now.date_naive() + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    midnight
        .map(|m| (m - now).num_seconds().max(1) as u64)
        .unwrap_or(86_400)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_is_within_a_day() {
        let secs = secs_to_utc_midnight();
        assert!((1..=86_400).contains(&secs));
    }

    #[test]
    fn days_parse_strictly() {
        assert!(parse_day("2026-12-03").is_some());
        assert!(parse_day("2026-13-03").is_none());
        assert!(parse_day("yesterday").is_none());
    }
}
