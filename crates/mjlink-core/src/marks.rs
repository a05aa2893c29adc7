//! When each used-button mark was first seen, and whether a channel's marks can be trusted
//! to narrow the fallback. Pure: the shell stores the log and the counts.
//!
//! Midjourney marks a pressed U button of a grid as used (`style: 1`, wire notes section 2)
//! with a MESSAGE_UPDATE of the grid. Issue 11 reports it seen in real logs before the result
//! arrives, and the real upscale sample's `referenced_message` (its grid as of the result)
//! already shows the pressed U as `style: 1`. Those updates carry no time of their own (the
//! real grids whose U is marked have `edited_timestamp: null`), so the only time a mark has is
//! where in the stream it was first seen: [`MarkLog`] keeps, per button, the position (a
//! message id) by which it was seen.
//!
//! A result of U`n` posted after that position may come from the grid; one posted before it
//! may not, *if* marks always arrive before their results. The wire notes do not promise that
//! (section 2 only says the update comes after the final grid), so a channel trusts its marks
//! only once its own exact links showed it ([`Trust`]): several upscales whose grid's mark
//! had been seen before them, and none whose mark had not. One contradiction ends the trust for
//! good, and the shell re-decides what the marks narrowed.

use crate::snowflake::Snowflake;

/// How many exact links must show a mark seen before its result before a channel trusts its
/// marks.
pub const TRUST_AFTER: u32 = 3;

/// When each used button of a message was first seen. Stored as text: `key@position` pairs
/// separated by spaces (`upsample::2@1128599623762714675 upsample::4@0`); the position is the
/// message id by which the mark was seen, 0 when the time is unknown (a snapshot from history
/// or a create: the mark may be older than anything seen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkLog {
    marks: Vec<(String, u64)>,
}

impl MarkLog {
    /// Reads the stored text; pairs that do not parse are skipped (never a panic on a
    /// hand-edited database).
    pub fn parse(text: &str) -> MarkLog {
        let marks = text
            .split(' ')
            .filter_map(|pair| {
                let (key, position) = pair.rsplit_once('@')?;
                Some((key.to_string(), position.parse().ok()?))
            })
            .filter(|(key, _)| !key.is_empty())
            .collect();
        MarkLog { marks }
    }

    /// The stored text.
    pub fn to_text(&self) -> String {
        let pairs: Vec<String> = self
            .marks
            .iter()
            .map(|(key, position)| format!("{key}@{position}"))
            .collect();
        pairs.join(" ")
    }

    /// Where `key` was first seen: `Some(0)` when at an unknown time, `None` when never.
    pub fn seen_at(&self, key: &str) -> Option<u64> {
        self.marks
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, position)| *position)
    }

    /// The log after a snapshot whose used buttons are `used` (see
    /// [`crate::wire::used_buttons`]) was seen at `position` (`None` for a snapshot of
    /// unknown time). Keys already logged keep their first position; a mark never goes away.
    /// Returns whether the log changed.
    pub fn advance(&mut self, used: &str, position: Option<Snowflake>) -> bool {
        let mut changed = false;
        for key in used.split(' ').filter(|key| !key.is_empty()) {
            if self.seen_at(key).is_none() {
                self.marks
                    .push((key.to_string(), position.map_or(0, |position| position.0)));
                changed = true;
            }
        }
        changed
    }

    /// Whether a grid with this log may have produced the upscale of `tile` posted as
    /// `child`, when marks are trusted to arrive before their results: its U`tile` mark must
    /// have been seen before the child, or at an unknown time.
    pub fn allows_upscale(&self, tile: u8, child: Snowflake) -> bool {
        match self.seen_at(&upsample_key(tile)) {
            Some(0) => true,
            Some(position) => position < child.0,
            None => false,
        }
    }

    /// What an upscale of `tile` exactly linked to a grid with this log, posted as `child`,
    /// shows about the channel's marks: `None` when nothing (the mark's time is unknown).
    pub fn evidence(&self, tile: u8, child: Snowflake) -> Option<Evidence> {
        match self.seen_at(&upsample_key(tile)) {
            Some(0) => None,
            Some(position) if position < child.0 => Some(Evidence::Before),
            _ => Some(Evidence::NotBefore),
        }
    }
}

/// The key of the U button of `tile` (see [`crate::wire::button_key`]).
pub fn upsample_key(tile: u8) -> String {
    format!("upsample::{tile}")
}

/// What one exact link shows about a channel's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The grid's mark was seen before its result.
    Before,
    /// It was not: seen with or after the result, or not at all.
    NotBefore,
}

/// What a channel's exact links showed about its marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trust {
    pub before: u32,
    pub not_before: u32,
}

impl Trust {
    /// Marks narrow the fallback only where they were seen before their results
    /// [`TRUST_AFTER`] times and never not.
    pub fn trusted(self) -> bool {
        self.not_before == 0 && self.before >= TRUST_AFTER
    }

    /// The counts after one more exact link.
    pub fn with(self, evidence: Evidence) -> Trust {
        match evidence {
            Evidence::Before => Trust {
                before: self.before.saturating_add(1),
                ..self
            },
            Evidence::NotBefore => Trust {
                not_before: self.not_before.saturating_add(1),
                ..self
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_keeps_where_it_was_first_seen() {
        let mut log = MarkLog::default();
        assert!(!log.advance("", Some(Snowflake(10))));
        assert_eq!(log, MarkLog::default());
        assert!(log.advance("upsample::2", Some(Snowflake(20))));
        assert!(!log.advance("upsample::2", Some(Snowflake(30))));
        assert!(log.advance("upsample::2 upsample::4", None));
        assert_eq!(log.to_text(), "upsample::2@20 upsample::4@0");
        assert_eq!(MarkLog::parse(&log.to_text()), log);
        assert_eq!(MarkLog::parse("").to_text(), "");
        // Text that does not parse is skipped, not a panic.
        assert_eq!(MarkLog::parse("x@y @5 upsample::1@7").to_text(), "upsample::1@7");
    }

    #[test]
    fn an_upscale_needs_its_u_mark_seen_before_it_or_at_an_unknown_time() {
        let log = MarkLog::parse("upsample::2@20 upsample::4@0");
        assert!(log.allows_upscale(2, Snowflake(21)));
        assert!(!log.allows_upscale(2, Snowflake(20)));
        assert!(!log.allows_upscale(2, Snowflake(19)));
        assert!(log.allows_upscale(4, Snowflake(1)));
        assert!(!log.allows_upscale(1, Snowflake(100)));
        assert_eq!(log.evidence(2, Snowflake(21)), Some(Evidence::Before));
        assert_eq!(log.evidence(2, Snowflake(20)), Some(Evidence::NotBefore));
        assert_eq!(log.evidence(1, Snowflake(21)), Some(Evidence::NotBefore));
        assert_eq!(log.evidence(4, Snowflake(21)), None);
    }

    #[test]
    fn trust_needs_three_marks_before_their_results_and_no_contradiction() {
        let mut trust = Trust::default();
        for _ in 0..TRUST_AFTER - 1 {
            trust = trust.with(Evidence::Before);
            assert!(!trust.trusted());
        }
        trust = trust.with(Evidence::Before);
        assert!(trust.trusted());
        trust = trust.with(Evidence::NotBefore);
        assert!(!trust.trusted());
        for _ in 0..10 {
            trust = trust.with(Evidence::Before);
        }
        assert!(!trust.trusted(), "one contradiction ends the trust for good");
    }
}
