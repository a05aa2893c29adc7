//! Times and text as people read them: RFC 3339 times, dates typed by users, cutting long
//! text to a limit.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number of Unix milliseconds `ms` (days since 1970-01-01, rounding down, also
/// before 1970): the day bucket of the lookup indexes and of daily limits.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The start (UTC midnight) of the day of `ms`.
pub fn day_start(ms: i64) -> i64 {
    day_of(ms) * DAY_MS
}

/// `2024-05-01` (UTC midnight) or an RFC 3339 time, to Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Some(time.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    Some(date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis())
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2023-07-12T10:57:45.530Z`).
pub fn format_time(unix_ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// `text` cut to `max` characters, ending with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_dates_are_utc_midnight() {
        assert_eq!(
            format_time(1_689_159_465_530).as_deref(),
            Some("2023-07-12T10:57:45.530Z")
        );
        assert_eq!(parse_time("2023-07-12T10:57:45.530Z"), Some(1_689_159_465_530));
        assert_eq!(parse_time("2023-07-12"), Some(1_689_120_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn days_round_down_on_both_sides_of_1970() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_start(1_689_159_465_530), 1_689_120_000_000);
        assert_eq!(day_start(-1), -DAY_MS);
    }

    #[test]
    fn cut_counts_characters() {
        assert_eq!(cut("猫と桜", 3), "猫と桜");
        assert_eq!(cut("猫と桜の", 3), "猫と…");
        assert_eq!(cut("", 0), "");
    }
}
