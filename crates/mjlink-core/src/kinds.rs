//! The kind names stored in the database (`messages.kind`) and what each one is: the one
//! table the rest of mjlink asks, from Rust and for SQL lists alike.
//!
//! Words, used in one sense each:
//! - a **root** is a job's first result from a prompt: a root grid (`/imagine`, `/blend`) or a
//!   root video (`/imagine ... --video 1`, a video grid of its own);
//! - a **grid** is any four-image message, root or produced by a button (variation, reroll,
//!   zoom, pan, remix): it has U buttons, so tiles can be upscaled from it;
//! - a **single image** is an upscale (or an upscale of one): a parent for Vary, Zoom, Pan,
//!   Animate and the upscalers;
//! - a **video grid** has four video cells (Animate's result, or a root video): a parent for
//!   the video U buttons;
//! - a **video clip** is one mp4 (a video U, or an Extend of a clip): a parent for Extend.

use crate::parse::{Action, Kind, Origin};

/// What a stored message is, as far as lineage is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `imagine`, `blend`: a root grid.
    RootGrid,
    /// `video`: a native video job's video grid.
    RootVideo,
    /// A four-image result of a button.
    Grid,
    /// A single image.
    SingleImage,
    /// Animate's four-cell video grid.
    VideoGrid,
    /// One mp4 clip.
    VideoClip,
    /// Not a result: progress, errors, ratings, describe output, other, not Midjourney's, unseen.
    NotAResult,
}

impl Shape {
    /// Any four-image message: can be the parent of an upscale or a reroll.
    pub fn is_grid(self) -> bool {
        matches!(self, Shape::RootGrid | Shape::Grid)
    }

    /// A job's first result from a prompt.
    pub fn is_root(self) -> bool {
        matches!(self, Shape::RootGrid | Shape::RootVideo)
    }

    /// Four video cells: the parent of a video U.
    pub fn is_video_grid(self) -> bool {
        matches!(self, Shape::RootVideo | Shape::VideoGrid)
    }

    /// A result of any kind: has an image or a video the archive keeps (not progress
    /// previews), and can be the parent of a later button press.
    pub fn is_result(self) -> bool {
        !matches!(self, Shape::NotAResult)
    }

    /// Has an image or a video that the archive keeps.
    pub fn is_archived(self) -> bool {
        self.is_result()
    }
}

/// The shape of a parsed kind.
pub fn shape(kind: &Kind) -> Shape {
    match kind {
        Kind::Grid(Origin::Video) => Shape::RootVideo,
        Kind::Grid(_) => Shape::RootGrid,
        Kind::Result(action) => action_shape(*action),
        _ => Shape::NotAResult,
    }
}

/// The shape of what an action produces.
pub fn action_shape(action: Action) -> Shape {
    match action {
        Action::Upscale
        | Action::Upscale2x
        | Action::Upscale4x
        | Action::UpscaleSubtle
        | Action::UpscaleCreative
        | Action::UpscaleV7 => Shape::SingleImage,
        Action::Animate => Shape::VideoGrid,
        Action::VideoClip | Action::VideoExtend => Shape::VideoClip,
        Action::Variation
        | Action::VariationStrong
        | Action::VariationSubtle
        | Action::VariationRegion
        | Action::Remix
        | Action::RemixStrong
        | Action::RemixSubtle
        | Action::RemixRegion
        | Action::Reroll
        | Action::Zoom
        | Action::PanLeft
        | Action::PanRight
        | Action::PanUp
        | Action::PanDown => Shape::Grid,
    }
}

/// Whether a message of shape `parent` can be the parent of a result of `action` (with
/// `tile`, its index when known): the buttons each shape carries (wire notes, section 4 and 9).
pub fn parent_fits(action: Action, tile: Option<u8>, parent: Shape) -> bool {
    match action {
        // `Image #N` is a tile of a grid; a bare `Upscaled by` is either an old tile upscale
        // of a grid or the V7 upscaler on a single image.
        Action::Upscale if tile.is_some() => parent.is_grid(),
        Action::Upscale => parent.is_grid() || parent == Shape::SingleImage,
        Action::Reroll => parent.is_grid(),
        // V1..V4 on a grid and Vary on an upscale share the marker; so do the remixes.
        Action::Variation
        | Action::VariationStrong
        | Action::VariationSubtle
        | Action::VariationRegion
        | Action::Remix
        | Action::RemixStrong
        | Action::RemixSubtle
        | Action::RemixRegion => parent.is_grid() || parent == Shape::SingleImage,
        Action::Upscale2x
        | Action::Upscale4x
        | Action::UpscaleSubtle
        | Action::UpscaleCreative
        | Action::UpscaleV7
        | Action::Zoom
        | Action::PanLeft
        | Action::PanRight
        | Action::PanUp
        | Action::PanDown
        | Action::Animate => parent == Shape::SingleImage,
        Action::VideoClip => parent.is_video_grid(),
        Action::VideoExtend => parent == Shape::VideoClip,
    }
}

/// Every kind name that can be stored with a shape other than `NotAResult`, roots first.
pub fn result_names() -> impl Iterator<Item = &'static str> {
    [Origin::Imagine, Origin::Blend, Origin::Video]
        .into_iter()
        .map(|origin| Kind::Grid(origin).as_str())
        .chain(Action::ALL.into_iter().map(Action::as_str))
}

/// The shape of a stored kind name (`NotAResult` for names that are not results).
pub fn shape_of_name(name: &str) -> Shape {
    match name {
        "imagine" | "blend" => Shape::RootGrid,
        "video" => Shape::RootVideo,
        other => Action::from_name(other).map_or(Shape::NotAResult, action_shape),
    }
}

/// Whether a stored kind name is a root (`imagine`, `blend`, `video`).
pub fn is_root_name(name: &str) -> bool {
    shape_of_name(name).is_root()
}

/// Whether a stored kind name is a grid rendered from the prompt alone, not from a parent
/// image: a root, or a reroll (the results a queued prompt can end in).
pub fn is_prompt_grid_name(name: &str) -> bool {
    is_root_name(name) || Action::from_name(name) == Some(Action::Reroll)
}

/// Whether a stored kind name has a prompt of its own: a root, or a remix (whose prompt the
/// user edited). Other results echo their parent's prompt.
pub fn has_own_prompt_name(name: &str) -> bool {
    is_root_name(name) || Action::from_name(name).is_some_and(Action::is_remix)
}

/// `('a', 'b', ...)`: the names whose shape passes `keep`, for an SQL `IN` list. The names
/// are this module's own constants, never input.
pub fn sql_list(keep: impl Fn(Shape) -> bool) -> String {
    sql_list_names(|name| keep(shape_of_name(name)))
}

/// [`sql_list`] for a predicate on the names themselves (for the sets a shape does not
/// tell apart, such as [`is_prompt_grid_name`]), in [`result_names`] order.
pub fn sql_list_names(keep: impl Fn(&str) -> bool) -> String {
    let names: Vec<String> = result_names()
        .filter(|name| keep(name))
        .map(|name| format!("'{name}'"))
        .collect();
    format!("({})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_grids_single_images_and_videos() {
        assert_eq!(shape_of_name("imagine"), Shape::RootGrid);
        assert_eq!(shape_of_name("blend"), Shape::RootGrid);
        assert_eq!(shape_of_name("video"), Shape::RootVideo);
        for grid in [
            "variation",
            "variation_strong",
            "reroll",
            "zoom",
            "pan_left",
            "remix",
            "remix_region",
        ] {
            assert_eq!(shape_of_name(grid), Shape::Grid, "{grid}");
        }
        for single in [
            "upscale",
            "upscale_2x",
            "upscale_4x",
            "upscale_subtle",
            "upscale_creative",
            "upscale_v7",
        ] {
            assert_eq!(shape_of_name(single), Shape::SingleImage, "{single}");
        }
        // Section 9: Animate makes a video grid of four cells; a video U one mp4 clip; Extend
        // a longer clip.
        assert_eq!(shape_of_name("animate"), Shape::VideoGrid);
        assert_eq!(shape_of_name("video_clip"), Shape::VideoClip);
        assert_eq!(shape_of_name("video_extend"), Shape::VideoClip);
        for not_a_result in [
            "progress",
            "pending",
            "error",
            "rating",
            "describe",
            "other",
            "not_midjourney",
            "",
        ] {
            assert_eq!(shape_of_name(not_a_result), Shape::NotAResult, "{not_a_result}");
        }
    }

    #[test]
    fn names_and_parsed_kinds_agree() {
        for name in result_names() {
            let kind = match name {
                "imagine" => Kind::Grid(Origin::Imagine),
                "blend" => Kind::Grid(Origin::Blend),
                "video" => Kind::Grid(Origin::Video),
                other => Kind::Result(Action::from_name(other).unwrap()),
            };
            assert_eq!(kind.as_str(), name);
            assert_eq!(shape(&kind), shape_of_name(name), "{name}");
        }
    }

    #[test]
    fn which_parent_each_button_lives_on() {
        // U1..U4 live on grids; a bare `Upscaled by` is a grid's (old) or a single image's (V7).
        assert!(parent_fits(Action::Upscale, Some(2), Shape::Grid));
        assert!(!parent_fits(Action::Upscale, Some(2), Shape::SingleImage));
        assert!(parent_fits(Action::Upscale, None, Shape::SingleImage));
        assert!(parent_fits(Action::UpscaleV7, None, Shape::SingleImage));
        assert!(!parent_fits(Action::UpscaleV7, None, Shape::RootGrid));
        // Reroll only on grids; V and Vary on either.
        assert!(parent_fits(Action::Reroll, None, Shape::RootGrid));
        assert!(!parent_fits(Action::Reroll, None, Shape::SingleImage));
        assert!(parent_fits(Action::Variation, None, Shape::SingleImage));
        assert!(parent_fits(Action::Variation, None, Shape::Grid));
        // Animate, Zoom, Pan on an upscaled image.
        for action in [Action::Animate, Action::Zoom, Action::PanLeft] {
            assert!(parent_fits(action, None, Shape::SingleImage), "{action:?}");
            assert!(!parent_fits(action, None, Shape::RootGrid), "{action:?}");
        }
        // Video U on a video grid (Animate's or a native video's), Extend on a clip.
        assert!(parent_fits(Action::VideoClip, Some(3), Shape::VideoGrid));
        assert!(parent_fits(Action::VideoClip, Some(3), Shape::RootVideo));
        assert!(!parent_fits(Action::VideoClip, Some(3), Shape::RootGrid));
        assert!(parent_fits(Action::VideoExtend, None, Shape::VideoClip));
        assert!(!parent_fits(Action::VideoExtend, None, Shape::VideoGrid));
        for action in Action::ALL {
            assert!(!parent_fits(action, None, Shape::NotAResult), "{action:?}");
        }
    }

    #[test]
    fn sql_lists_come_from_the_table() {
        assert_eq!(sql_list(|shape| shape == Shape::RootGrid), "('imagine', 'blend')");
        let archived = sql_list(Shape::is_archived);
        assert!(archived.starts_with("('imagine', 'blend', 'video', 'upscale', "));
        assert!(archived.contains("'animate'") && archived.contains("'video_clip'"));
        assert!(!archived.contains("'progress'") && !archived.contains("'rating'"));
        assert_eq!(archived.matches('\'').count(), 2 * 26);
    }

    #[test]
    fn lists_by_name() {
        assert_eq!(
            sql_list_names(is_prompt_grid_name),
            "('imagine', 'blend', 'video', 'reroll')"
        );
        // The same text as the partial index `messages_fts_pending` (migration 0006): the
        // store's query uses that index only while the two lists are the same.
        assert_eq!(
            sql_list_names(has_own_prompt_name),
            "('imagine', 'blend', 'video', 'remix', 'remix_strong', 'remix_subtle', 'remix_region')"
        );
        for name in [
            "progress",
            "describe",
            "variation",
            "upscale",
            "zoom",
            "rating",
            "",
        ] {
            assert!(!is_prompt_grid_name(name) && !has_own_prompt_name(name), "{name}");
        }
        assert_eq!(sql_list_names(is_root_name), sql_list(Shape::is_root));
    }
}
