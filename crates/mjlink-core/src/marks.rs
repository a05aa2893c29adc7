//! When each used-button mark was first seen, and whether a channel's marks can be trusted
//! to narrow the fallback. Pure: the shell stores the log and the counts.
//!
//! Midjourney marks a pressed U button of a grid as used (`style: 1`, wire notes section 2)
//! with a MESSAGE_UPDATE of the grid. Issue 11 reports it seen in real logs before the result
//! arrives, for a U and for a V ("a grid whose U2/V1 turns `style: 1`"), and the real upscale
//! sample's `referenced_message` (its grid as of the result) already shows the pressed U as
//! `style: 1`. Those updates carry no time of their own (the real grids whose U is marked have
//! `edited_timestamp: null`), so the only time a mark has is where in the stream it was first
//! seen: [`MarkLog`] keeps, per button, the position (a message id) by which it was seen.
//!
//! A result of U`n` posted after that position may come from the grid; one posted before it
//! may not, *if* marks always arrive before their results. The wire notes do not promise that
//! (section 2 only says the update comes after the final grid; no real sample shows a V
//! marked), so a channel trusts its marks only once its own exact links showed it, for each
//! [`Family`] of buttons apart ([`Trust`]): several results whose grid's mark had been seen
//! before them, and none whose mark had not. One contradiction ends the family's trust for
//! good, and the shell re-decides what its marks narrowed. A channel where V marks never come
//! (or come late) loses its V trust at its first exact variation, before it narrowed anything.

use crate::parse::Action;
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

    /// Whether a grid with this log may have produced the result `child` of a button of
    /// `family` (`tile`: the U's; a variation does not say which V), when the family's marks
    /// are trusted to arrive before their results: the button's mark must have been seen
    /// before the child, or at an unknown time.
    pub fn allows(&self, family: Family, tile: Option<u8>, child: Snowflake) -> bool {
        self.evidence(family, tile, child) != Some(Evidence::NotBefore)
    }

    /// What a result of a button of `family` exactly linked to a grid with this log, posted as
    /// `child`, shows about the channel's marks of that family: `None` when nothing (the mark's
    /// time is unknown, or an upscale without its tile). For a variation, any V seen marked
    /// before it counts (the result does not say which V was pressed, and a V may be pressed
    /// again).
    pub fn evidence(&self, family: Family, tile: Option<u8>, child: Snowflake) -> Option<Evidence> {
        if family == Family::Upscale && tile.is_none() {
            return None;
        }
        let mut unknown_time = false;
        for (key, position) in &self.marks {
            if !family.pressed(tile, key) {
                continue;
            }
            match *position {
                0 => unknown_time = true,
                position if position < child.0 => return Some(Evidence::Before),
                _ => {}
            }
        }
        (!unknown_time).then_some(Evidence::NotBefore)
    }
}

/// The buttons of a grid whose marks narrow the fallback, each trusted on its own evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// U1..U4: `Image #N` (and the older `Upscaled by`) on a grid.
    Upscale,
    /// V1..V4: `Variations by`, `Variations (Strong|Subtle) by` and the remixes on a grid.
    Variation,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Upscale, Family::Variation];

    /// The family of the grid button that makes a result of `action`; `None` when no grid
    /// button does, or none whose mark is followed. (`Vary (Strong)` on an upscale shares the
    /// marker of V on a grid: the family applies to grid candidates only.)
    pub fn of(action: Action) -> Option<Family> {
        match action {
            Action::Upscale => Some(Family::Upscale),
            Action::Variation
            | Action::VariationStrong
            | Action::VariationSubtle
            | Action::Remix
            | Action::RemixStrong
            | Action::RemixSubtle => Some(Family::Variation),
            _ => None,
        }
    }

    /// Whether the button `key` (see [`crate::wire::button_key`]) is one that makes a result
    /// of this family (of `tile`, for a U).
    fn pressed(self, tile: Option<u8>, key: &str) -> bool {
        match self {
            Family::Upscale => key.strip_prefix("upsample::").and_then(|n| n.parse::<u8>().ok()) == tile,
            Family::Variation => key.starts_with("variation::"),
        }
    }

    /// The actions whose links the family's marks may narrow.
    pub fn actions(self) -> impl Iterator<Item = Action> {
        Action::ALL
            .into_iter()
            .filter(move |action| Family::of(*action) == Some(self))
    }
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
        let allows = |tile, child| log.allows(Family::Upscale, Some(tile), Snowflake(child));
        assert!(allows(2, 21));
        assert!(!allows(2, 20));
        assert!(!allows(2, 19));
        assert!(allows(4, 1));
        assert!(!allows(1, 100));
        let evidence = |tile, child| log.evidence(Family::Upscale, Some(tile), Snowflake(child));
        assert_eq!(evidence(2, 21), Some(Evidence::Before));
        assert_eq!(evidence(2, 20), Some(Evidence::NotBefore));
        assert_eq!(evidence(1, 21), Some(Evidence::NotBefore));
        assert_eq!(evidence(4, 21), None);
        // U marks say nothing about variations.
        assert_eq!(
            log.evidence(Family::Variation, None, Snowflake(21)),
            Some(Evidence::NotBefore)
        );
    }

    #[test]
    fn a_variation_needs_any_v_mark_seen_before_it() {
        // Issue 11: "a grid whose U2/V1 turns `style: 1`". A `Variations by` result does not
        // say which V was pressed, so any V seen marked before it will do.
        let log = MarkLog::parse("upsample::1@5 variation::3@20 variation::1@40");
        let variation = |child| log.evidence(Family::Variation, None, Snowflake(child));
        assert_eq!(variation(21), Some(Evidence::Before));
        assert_eq!(variation(41), Some(Evidence::Before));
        assert_eq!(variation(20), Some(Evidence::NotBefore));
        assert!(!log.allows(Family::Variation, None, Snowflake(20)));
        assert!(log.allows(Family::Variation, None, Snowflake(21)));
        // A V marked at an unknown time (history) excludes nothing and shows nothing.
        let history = MarkLog::parse("variation::2@0");
        assert_eq!(history.evidence(Family::Variation, None, Snowflake(3)), None);
        assert!(history.allows(Family::Variation, None, Snowflake(3)));
        // No V marked: not this grid, where V marks are trusted.
        assert!(!MarkLog::parse("upsample::2@1").allows(Family::Variation, None, Snowflake(30)));
        // An upscale without its tile is not narrowed.
        assert!(log.allows(Family::Upscale, None, Snowflake(1)));
    }

    #[test]
    fn families_come_from_the_grid_button_that_makes_the_action() {
        assert_eq!(Family::of(Action::Upscale), Some(Family::Upscale));
        for action in [
            Action::Variation,
            Action::VariationStrong,
            Action::Remix,
            Action::RemixSubtle,
        ] {
            assert_eq!(Family::of(action), Some(Family::Variation));
            assert!(Family::Variation.actions().any(|known| known == action));
        }
        // Buttons of an upscale, whose marks nothing documents.
        for action in [
            Action::VariationRegion,
            Action::Zoom,
            Action::PanLeft,
            Action::UpscaleV7,
            Action::Reroll,
        ] {
            assert_eq!(Family::of(action), None);
        }
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
