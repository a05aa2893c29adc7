//! Times and text as people read them: RFC 3339 times, dates typed by users, cutting long
//! text to a limit.

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
    fn cut_counts_characters() {
        assert_eq!(cut("猫と桜", 3), "猫と桜");
        assert_eq!(cut("猫と桜の", 3), "猫と…");
        assert_eq!(cut("", 0), "");
    }
}
