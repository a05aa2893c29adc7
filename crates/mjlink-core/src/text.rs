//! Times and text as people read them: RFC 3339 times, dates typed by users, cutting long
//! text to a limit.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number of Unix milliseconds `ms` (days since 1970-01-01, rounding down, also
/// before 1970): the day bucket of the lookup indexes and of daily limits.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// `2024-05-01`: the UTC date of day number `day` (see [`day_of`]); `day N` for a day
/// beyond what a date can show.
pub fn date_of_day(day: i64) -> String {
    chrono::DateTime::from_timestamp_millis(day.saturating_mul(DAY_MS)).map_or_else(
        || format!("day {day}"),
        |time| time.format("%Y-%m-%d").to_string(),
    )
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

/// The end (exclusive) of what `until` names, to Unix milliseconds: a date takes in its whole
/// day (`2024-05-01` ends at 2024-05-02 00:00 UTC); an RFC 3339 time is that time.
pub fn parse_until(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Some(time.timestamp_millis());
    }
    parse_time(text).map(|start| start.saturating_add(DAY_MS))
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

/// Untrusted text (from Discord, a recording, a file name) made safe to print on a
/// terminal: control characters (C0, DEL, C1: escape sequences start with them) and the
/// bidirectional overrides that reorder what is shown are written as escapes (`\u{1b}`,
/// `\n`), so the text is shown, never obeyed. Everything else is kept. Every printer for
/// people goes through this (the replay summary, tables, error lines); JSON lines and CSV,
/// for scripts, keep the data as it is (JSON escapes control characters itself).
pub fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if unsafe_char(c) => shown.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => shown.push(c),
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// An error and its causes (outermost first) as one sentence: each cause once, joined with
/// `: `. A cause whose text the sentence already holds (an error that prints its source, a
/// wrapper that repeats it) is left out, so nothing is said twice.
pub fn one_line<S: AsRef<str>>(causes: impl IntoIterator<Item = S>) -> String {
    let mut line = String::new();
    for cause in causes {
        let cause = cause.as_ref().trim();
        if cause.is_empty() || line.contains(cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(cause);
    }
    line
}

/// The candidate closest to `name` (edit distance, case ignored) when it is close enough to
/// be a misspelling: at most a third of its length, and at least 1.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (distance(&name, &candidate.to_ascii_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The line and column (from 1; the column in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_number_is_its_utc_date() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(day_of(1_714_521_600_000)), "2024-05-01");
        assert_eq!(date_of_day(-1), "1969-12-31");
        assert_eq!(date_of_day(i64::MAX), format!("day {}", i64::MAX));
    }

    #[test]
    fn until_a_date_takes_in_the_whole_day_and_a_time_is_itself() {
        let may_first = parse_time("2024-05-01").unwrap();
        assert_eq!(parse_until("2024-05-01"), Some(may_first + DAY_MS));
        assert_eq!(
            parse_until(" 2024-05-01T10:00:00Z "),
            Some(may_first + 10 * 3_600_000)
        );
        assert_eq!(parse_until("May 1st"), None);
        assert_eq!(parse_until(""), None);
    }

    #[test]
    fn one_line_says_each_cause_once() {
        assert_eq!(
            one_line([
                "cannot read the config file x.toml: No such file or directory (os error 2)",
                "No such file or directory (os error 2)",
            ]),
            "cannot read the config file x.toml: No such file or directory (os error 2)"
        );
        assert_eq!(
            one_line([
                "cannot reach Discord",
                "error sending request for url (http://127.0.0.1:9/api)",
                "client error (Connect)",
                "tcp connect error: Connection refused (os error 111)",
                "Connection refused (os error 111)",
            ]),
            "cannot reach Discord: error sending request for url (http://127.0.0.1:9/api): client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(one_line(["a", "", "b"]), "a: b");
    }

    #[test]
    fn nearest_suggests_a_misspelled_name() {
        let known = ["MJLINK_DATABASE_PATH", "MJLINK_LOG_FILTER", "MJLINK_ARCHIVE_DIR"];
        assert_eq!(
            nearest("MJLINK_DATABSE_PATH", known),
            Some("MJLINK_DATABASE_PATH")
        );
        assert_eq!(nearest("mjlink_log_filtr", known), Some("MJLINK_LOG_FILTER"));
        assert_eq!(nearest("MJLINK_SOMETHING_ELSE", known), None);
    }

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let text = "[a]\nkéy = 5\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (2, 5));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn for_terminal_shows_control_sequences_instead_of_obeying_them() {
        assert_eq!(for_terminal("a cat, 猫 --ar 16:9"), "a cat, 猫 --ar 16:9");
        assert_eq!(for_terminal("\u{1b}]0;pwned\u{7}x"), "\\u{1b}]0;pwned\\u{7}x");
        assert_eq!(for_terminal("red \u{1b}[31m"), "red \\u{1b}[31m");
        assert_eq!(for_terminal("two\nlines\r\t"), "two\\nlines\\r\\t");
        assert_eq!(for_terminal("\u{9b}2J \u{7f}"), "\\u{9b}2J \\u{7f}");
        assert_eq!(for_terminal("abc\u{202e}gpj.exe"), "abc\\u{202e}gpj.exe");
    }

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
