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
//!
//! Issue 11 states the rule for every button ("Midjourney marks a pressed button as used on
//! the message that carries it"): the buttons of a video grid and of one image or clip are
//! followed the same way, each [`Family`] on its own evidence, so where Midjourney does not
//! mark them (nothing in the samples shows it does) they never narrow anything.

use crate::kinds::Shape;
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

    /// Whether a message with this log may have produced the result `child` of `action` (a
    /// button of `family`; `tile`: the U's or the video U's, a variation does not say which
    /// V), when the family's marks are trusted to arrive before their results: the button's
    /// mark must have been seen before the child, or at an unknown time.
    pub fn allows(&self, family: Family, action: Action, tile: Option<u8>, child: Snowflake) -> bool {
        self.evidence(family, action, tile, child) != Some(Evidence::NotBefore)
    }

    /// What a result of `action` (a button of `family`) exactly linked to a message with this
    /// log, posted as `child`, shows about the channel's marks of that family: `None` when
    /// nothing (the mark's time is unknown). For a variation, any V seen marked before it
    /// counts (the result does not say which V was pressed, and a V may be pressed again); for
    /// a U result without its tile (a bare `Upscaled by`), any U; for a zoom, any zoom button.
    pub fn evidence(
        &self,
        family: Family,
        action: Action,
        tile: Option<u8>,
        child: Snowflake,
    ) -> Option<Evidence> {
        let mut unknown_time = false;
        for (key, position) in &self.marks {
            if !family.pressed(action, tile, key) {
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

/// The buttons whose marks narrow the fallback, each family trusted on its own evidence: a
/// channel where Midjourney marks some buttons and not others, or marks them late, loses the
/// trust of that family alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// U1..U4 of a grid: `Image #N` (and the older `Upscaled by`).
    Upscale,
    /// V1..V4 of a grid: `Variations by`, `Variations (Strong|Subtle) by` and the remixes.
    Variation,
    /// The video U1..U4 of a video grid (`MJ::JOB::video_virtual_upscale::{n}`): a clip.
    VideoCell,
    /// The buttons of one image or one clip (section 4's `::SOLO` buttons: Vary, Zoom, Pan,
    /// the upscalers, Animate; a clip's Extend). Issue 11 item 9 reports that Midjourney
    /// marks "a pressed button as used on the message that carries it"; the wire notes and
    /// the samples show it only for a grid's U, so these are trusted only where the channel's
    /// own exact links showed them.
    Solo,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Upscale,
        Family::Variation,
        Family::VideoCell,
        Family::Solo,
    ];

    /// The family of the button of a message of `shape` that makes a result of `action`;
    /// `None` when no button of such a message does. (`Variations (Strong) by` is V on a grid
    /// and Vary (Strong) on an upscale, wire notes section 3: the parent's shape decides.)
    pub fn of(action: Action, shape: Shape) -> Option<Family> {
        use Action::*;
        match shape {
            Shape::RootGrid | Shape::Grid => match action {
                Upscale => Some(Family::Upscale),
                Variation | VariationStrong | VariationSubtle | Remix | RemixStrong | RemixSubtle => {
                    Some(Family::Variation)
                }
                _ => None,
            },
            Shape::RootVideo | Shape::VideoGrid => (action == VideoClip).then_some(Family::VideoCell),
            Shape::SingleImage => match action {
                // A bare `Upscaled by` replying to an image is the V7 upscaler (section 9).
                Upscale | Variation | VariationStrong | VariationSubtle | VariationRegion | Remix
                | RemixStrong | RemixSubtle | RemixRegion | Zoom | PanLeft | PanRight | PanUp | PanDown
                | Upscale2x | Upscale4x | UpscaleSubtle | UpscaleCreative | UpscaleV7 | Animate => {
                    Some(Family::Solo)
                }
                _ => None,
            },
            // A clip without its reference looks the same as an Extend of a clip.
            Shape::VideoClip => matches!(action, VideoClip | VideoExtend).then_some(Family::Solo),
            Shape::NotAResult => None,
        }
    }

    /// The name the store keeps the family's trust under.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Upscale => "upscale",
            Family::Variation => "variation",
            Family::VideoCell => "video_cell",
            Family::Solo => "solo",
        }
    }

    /// Whether the button `key` (see [`crate::wire::button_key`]; section 4's ids without the
    /// job UUID) is one that makes a result of `action` (of `tile`, for a U or a video U).
    fn pressed(self, action: Action, tile: Option<u8>, key: &str) -> bool {
        // A result without its tile: any of the numbered buttons.
        let numbered = |prefix: &str| {
            key.strip_prefix(prefix)
                .and_then(|n| n.parse::<u8>().ok())
                .is_some_and(|n| tile.is_none_or(|tile| tile == n))
        };
        match self {
            Family::Upscale => numbered("upsample::"),
            Family::Variation => key.starts_with("variation::"),
            Family::VideoCell => numbered("video_virtual_upscale::"),
            Family::Solo => {
                let (button, _) = key.split_once("::").unwrap_or((key, ""));
                use Action::*;
                match action {
                    VariationStrong | RemixStrong => button == "high_variation",
                    VariationSubtle | RemixSubtle => button == "low_variation",
                    Variation | Remix => matches!(button, "high_variation" | "low_variation"),
                    VariationRegion | RemixRegion => button == "Inpaint",
                    Zoom => matches!(button, "Outpaint" | "CustomZoom"),
                    PanLeft => button == "pan_left",
                    PanRight => button == "pan_right",
                    PanUp => button == "pan_up",
                    PanDown => button == "pan_down",
                    Upscale | Upscale2x | Upscale4x | UpscaleSubtle | UpscaleCreative | UpscaleV7 => {
                        button.starts_with("upsample_")
                    }
                    Animate => matches!(button, "animate_high" | "animate_low"),
                    VideoClip | VideoExtend => matches!(button, "animate_high_extend" | "animate_low_extend"),
                    _ => false,
                }
            }
        }
    }

    /// The shapes whose buttons' marks are followed: every result's.
    const SHAPES: [Shape; 6] = [
        Shape::RootGrid,
        Shape::Grid,
        Shape::RootVideo,
        Shape::VideoGrid,
        Shape::SingleImage,
        Shape::VideoClip,
    ];

    /// The actions whose links the family's marks may narrow.
    pub fn actions(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |action| {
            Family::SHAPES
                .iter()
                .any(|shape| Family::of(*action, *shape) == Some(self))
        })
    }

    /// Whether a result of `action` comes from a button whose marks are followed (of a parent
    /// of some shape): what the pipeline asks before it reads the parent's marks.
    pub fn follows(action: Action) -> bool {
        Family::SHAPES
            .iter()
            .any(|shape| Family::of(action, *shape).is_some())
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
        let allows = |tile, child| log.allows(Family::Upscale, Action::Upscale, Some(tile), Snowflake(child));
        assert!(allows(2, 21));
        assert!(!allows(2, 20));
        assert!(!allows(2, 19));
        assert!(allows(4, 1));
        assert!(!allows(1, 100));
        let evidence =
            |tile, child| log.evidence(Family::Upscale, Action::Upscale, Some(tile), Snowflake(child));
        assert_eq!(evidence(2, 21), Some(Evidence::Before));
        assert_eq!(evidence(2, 20), Some(Evidence::NotBefore));
        assert_eq!(evidence(1, 21), Some(Evidence::NotBefore));
        assert_eq!(evidence(4, 21), None);
        // U marks say nothing about variations.
        assert_eq!(
            log.evidence(Family::Variation, Action::Variation, None, Snowflake(21)),
            Some(Evidence::NotBefore)
        );
    }

    #[test]
    fn a_variation_needs_any_v_mark_seen_before_it() {
        // Issue 11: "a grid whose U2/V1 turns `style: 1`". A `Variations by` result does not
        // say which V was pressed, so any V seen marked before it will do.
        let log = MarkLog::parse("upsample::1@5 variation::3@20 variation::1@40");
        let variation = |child| log.evidence(Family::Variation, Action::Variation, None, Snowflake(child));
        assert_eq!(variation(21), Some(Evidence::Before));
        assert_eq!(variation(41), Some(Evidence::Before));
        assert_eq!(variation(20), Some(Evidence::NotBefore));
        assert!(!log.allows(Family::Variation, Action::Variation, None, Snowflake(20)));
        assert!(log.allows(Family::Variation, Action::Variation, None, Snowflake(21)));
        // A V marked at an unknown time (history) excludes nothing and shows nothing.
        let history = MarkLog::parse("variation::2@0");
        assert_eq!(
            history.evidence(Family::Variation, Action::Variation, None, Snowflake(3)),
            None
        );
        assert!(history.allows(Family::Variation, Action::Variation, None, Snowflake(3)));
        // No V marked: not this grid, where V marks are trusted.
        assert!(!MarkLog::parse("upsample::2@1").allows(
            Family::Variation,
            Action::Variation,
            None,
            Snowflake(30)
        ));
        // A bare `Upscaled by` (no tile) on a grid needs any of its U seen marked before it.
        assert!(!log.allows(Family::Upscale, Action::Upscale, None, Snowflake(5)));
        assert!(log.allows(Family::Upscale, Action::Upscale, None, Snowflake(6)));
    }

    #[test]
    fn families_come_from_the_button_of_the_parent_that_makes_the_action() {
        use Shape::*;
        assert_eq!(Family::of(Action::Upscale, RootGrid), Some(Family::Upscale));
        assert_eq!(Family::of(Action::Upscale, Grid), Some(Family::Upscale));
        for action in [
            Action::Variation,
            Action::VariationStrong,
            Action::Remix,
            Action::RemixSubtle,
        ] {
            assert_eq!(Family::of(action, Grid), Some(Family::Variation));
            assert!(Family::Variation.actions().any(|known| known == action));
        }
        // Section 3: V on a grid and Vary (Strong) on an upscale share the marker; the parent
        // tells them apart, and so the button whose mark counts.
        assert_eq!(
            Family::of(Action::VariationStrong, SingleImage),
            Some(Family::Solo)
        );
        // Section 4's buttons of an upscaled image ("SOLO") and section 9's Animate, video U
        // and Extend.
        for action in [
            Action::VariationRegion,
            Action::RemixRegion,
            Action::Zoom,
            Action::PanLeft,
            Action::UpscaleV7,
            Action::Upscale2x,
            Action::Animate,
        ] {
            assert_eq!(Family::of(action, SingleImage), Some(Family::Solo), "{action:?}");
            assert_eq!(Family::of(action, Grid), None, "{action:?}");
        }
        assert_eq!(Family::of(Action::VideoClip, VideoGrid), Some(Family::VideoCell));
        assert_eq!(Family::of(Action::VideoClip, RootVideo), Some(Family::VideoCell));
        assert_eq!(Family::of(Action::VideoExtend, VideoClip), Some(Family::Solo));
        // No button makes these.
        assert_eq!(Family::of(Action::Reroll, Grid), None);
        assert_eq!(Family::of(Action::Upscale, SingleImage), Some(Family::Solo));
        assert_eq!(Family::of(Action::VideoClip, VideoClip), Some(Family::Solo));
        assert_eq!(Family::of(Action::VideoExtend, VideoGrid), None);
        assert_eq!(Family::of(Action::Zoom, NotAResult), None);
        assert!(Family::Solo.actions().any(|known| known == Action::VideoExtend));
        assert!(!Family::Solo.actions().any(|known| known == Action::Reroll));
        assert!(Family::follows(Action::Zoom) && !Family::follows(Action::Reroll));
    }

    #[test]
    fn a_solo_result_needs_its_own_button_of_the_image_marked_before_it() {
        // The keys of section 4's ids (`wire::button_key`): `MJ::JOB::high_variation::1::{uuid}::SOLO`,
        // `MJ::Outpaint::50::1::{uuid}::SOLO`, `MJ::CustomZoom::{uuid}`,
        // `MJ::JOB::upsample_v7_2x_subtle::1::{uuid}::SOLO`, `MJ::JOB::animate_low::1::{uuid}::SOLO`.
        let log = MarkLog::parse(
            "high_variation::1@20 CustomZoom@30 pan_left::1@40 upsample_v7_2x_subtle::1@50 animate_low::1@60 Inpaint::1@0",
        );
        let evidence = |action, child| log.evidence(Family::Solo, action, None, Snowflake(child));
        assert_eq!(evidence(Action::VariationStrong, 21), Some(Evidence::Before));
        assert_eq!(evidence(Action::RemixStrong, 21), Some(Evidence::Before));
        assert_eq!(evidence(Action::VariationStrong, 20), Some(Evidence::NotBefore));
        // Vary (Subtle) was not pressed.
        assert_eq!(evidence(Action::VariationSubtle, 100), Some(Evidence::NotBefore));
        // `Zoom Out by` is any zoom button; the pans are each their own.
        assert_eq!(evidence(Action::Zoom, 31), Some(Evidence::Before));
        assert_eq!(evidence(Action::PanLeft, 41), Some(Evidence::Before));
        assert_eq!(evidence(Action::PanRight, 41), Some(Evidence::NotBefore));
        // `Upscaled by` cannot tell Subtle from Creative (section 9): either upscaler.
        assert_eq!(evidence(Action::UpscaleV7, 51), Some(Evidence::Before));
        assert_eq!(evidence(Action::Animate, 61), Some(Evidence::Before));
        assert_eq!(evidence(Action::Animate, 59), Some(Evidence::NotBefore));
        // Vary (Region) marked at an unknown time: nothing shown, nothing excluded.
        assert_eq!(evidence(Action::VariationRegion, 5), None);
        assert!(log.allows(Family::Solo, Action::VariationRegion, None, Snowflake(5)));
        // A clip's Extend (`MJ::JOB::animate_high_extend::2::{uuid}`), a video grid's U3.
        let clip = MarkLog::parse("animate_high_extend::2@70");
        assert!(clip.allows(Family::Solo, Action::VideoExtend, None, Snowflake(71)));
        assert!(!clip.allows(Family::Solo, Action::VideoExtend, None, Snowflake(69)));
        let video_grid = MarkLog::parse("video_virtual_upscale::3@80");
        assert!(video_grid.allows(Family::VideoCell, Action::VideoClip, Some(3), Snowflake(81)));
        assert!(!video_grid.allows(Family::VideoCell, Action::VideoClip, Some(2), Snowflake(81)));
        // A clip whose cell is unknown: any video U; one without its reference may be an
        // Extend of a clip (section 9: a reply to the clip), whose Extend counts.
        assert_eq!(
            video_grid.evidence(Family::VideoCell, Action::VideoClip, None, Snowflake(81)),
            Some(Evidence::Before)
        );
        assert!(clip.allows(Family::Solo, Action::VideoClip, Some(2), Snowflake(71)));
        assert!(!clip.allows(Family::Solo, Action::VideoClip, Some(2), Snowflake(70)));
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
