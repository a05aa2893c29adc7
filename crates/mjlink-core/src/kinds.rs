//! The kind names stored in the database (`messages.kind`) and what each one is: the one
//! table the rest of mjlink asks, from Rust and for SQL lists alike.
//!
//! Three words, used in one sense each:
//! - a **root grid** is a job's first four-image result (`/imagine`, `/blend`);
//! - a **grid** is any four-image message, root or produced by a button (variation, reroll,
//!   zoom, pan, remix): it has U buttons, so tiles can be upscaled from it;
//! - a **single image** is an upscale (or an upscale of one): a parent for Vary, Zoom, Pan,
//!   Animate and the upscalers.

use crate::parse::{Action, Kind, Origin};

/// What a stored message is, as far as lineage is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `imagine`, `blend`: a root grid.
    RootGrid,
    /// A four-image result of a button.
    Grid,
    /// A single image.
    SingleImage,
    /// A result that is neither (an animation).
    OtherResult,
    /// Not a result: progress, errors, describe output, other, not Midjourney's, unseen.
    NotAResult,
}

impl Shape {
    /// Any four-image message: can be the parent of an upscale or a reroll.
    pub fn is_grid(self) -> bool {
        matches!(self, Shape::RootGrid | Shape::Grid)
    }

    /// Has an image that the archive keeps (grids and every result, not progress previews).
    pub fn is_archived(self) -> bool {
        !matches!(self, Shape::NotAResult)
    }
}

/// The shape of a parsed kind.
pub fn shape(kind: &Kind) -> Shape {
    match kind {
        Kind::Grid(_) => Shape::RootGrid,
        Kind::Result(action) => action_shape(*action),
        _ => Shape::NotAResult,
    }
}

fn action_shape(action: Action) -> Shape {
    if action.produces_grid() {
        Shape::Grid
    } else if action == Action::Animate {
        Shape::OtherResult
    } else {
        Shape::SingleImage
    }
}

/// Every kind name that can be stored with a shape other than `NotAResult`, root grids first.
pub fn result_names() -> impl Iterator<Item = &'static str> {
    [Origin::Imagine, Origin::Blend]
        .into_iter()
        .map(|origin| Kind::Grid(origin).as_str())
        .chain(Action::ALL.into_iter().map(Action::as_str))
}

/// The shape of a stored kind name (`NotAResult` for names that are not results).
pub fn shape_of_name(name: &str) -> Shape {
    match name {
        "imagine" | "blend" => Shape::RootGrid,
        other => Action::from_name(other).map_or(Shape::NotAResult, action_shape),
    }
}

/// Whether a stored kind name is a root grid (`imagine`, `blend`).
pub fn is_root_grid_name(name: &str) -> bool {
    shape_of_name(name) == Shape::RootGrid
}

/// Whether a stored kind name is a grid rendered from the prompt alone, not from a parent
/// image: a root grid, or a reroll (the grids a queued prompt can end in).
pub fn is_prompt_grid_name(name: &str) -> bool {
    is_root_grid_name(name) || Action::from_name(name) == Some(Action::Reroll)
}

/// Whether a stored kind name has a prompt of its own: a root grid, or a remix (whose
/// prompt the user edited). Other results echo their parent's prompt.
pub fn has_own_prompt_name(name: &str) -> bool {
    is_root_grid_name(name)
        || matches!(
            Action::from_name(name),
            Some(Action::Remix | Action::RemixStrong | Action::RemixSubtle)
        )
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
    fn root_grids_grids_and_single_images() {
        assert_eq!(shape_of_name("imagine"), Shape::RootGrid);
        assert_eq!(shape_of_name("blend"), Shape::RootGrid);
        for grid in [
            "variation",
            "variation_strong",
            "reroll",
            "zoom",
            "pan_left",
            "remix",
        ] {
            assert_eq!(shape_of_name(grid), Shape::Grid, "{grid}");
        }
        for single in [
            "upscale",
            "upscale_2x",
            "upscale_4x",
            "upscale_subtle",
            "upscale_creative",
        ] {
            assert_eq!(shape_of_name(single), Shape::SingleImage, "{single}");
        }
        assert_eq!(shape_of_name("animate"), Shape::OtherResult);
        for not_a_result in [
            "progress",
            "pending",
            "error",
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
                other => Kind::Result(Action::from_name(other).unwrap()),
            };
            assert_eq!(shape(&kind), shape_of_name(name), "{name}");
            assert_eq!(kind.is_grid(), shape(&kind).is_grid(), "{name}");
            assert_eq!(
                kind.is_single_image(),
                shape(&kind) == Shape::SingleImage,
                "{name}"
            );
        }
    }

    #[test]
    fn sql_lists_come_from_the_table() {
        assert_eq!(sql_list(|shape| shape == Shape::RootGrid), "('imagine', 'blend')");
        let archived = sql_list(Shape::is_archived);
        assert!(archived.starts_with("('imagine', 'blend', 'upscale', "));
        assert!(archived.contains("'animate'") && !archived.contains("'progress'"));
        assert_eq!(archived.matches('\'').count(), 2 * 21);
    }

    #[test]
    fn lists_by_name() {
        assert_eq!(
            sql_list_names(is_prompt_grid_name),
            "('imagine', 'blend', 'reroll')"
        );
        // The same text as the partial index `messages_fts_pending` (migration 0005): the
        // store's query uses that index only while the two lists are the same.
        assert_eq!(
            sql_list_names(has_own_prompt_name),
            "('imagine', 'blend', 'remix', 'remix_strong', 'remix_subtle')"
        );
        for name in ["progress", "describe", "variation", "upscale", "zoom", ""] {
            assert!(!is_prompt_grid_name(name) && !has_own_prompt_name(name), "{name}");
        }
        assert_eq!(
            sql_list_names(|name| shape_of_name(name) == Shape::RootGrid),
            sql_list(|shape| shape == Shape::RootGrid)
        );
    }
}
