//! The prompt queue's items and its state machine: an item is submitted to Midjourney, its
//! job followed through the lineage until every requested upscale is in, retried when
//! Midjourney stays silent, and failed with the reason when it says no.
//!
//! - this module: [`Item`], [`Status`], [`Upscales`], [`Transition`];
//! - [`bind`]: which grid is an item's (exact signals only, the prompt as a guarded last
//!   resort);
//! - [`machine`]: what one item does next, given what the database has seen of its job and
//!   the time (passed in).
//!
//! The shell (`mjlink::queue`) keeps the items in SQLite, submits and presses buttons.

pub mod bind;
pub mod machine;

use serde::Serialize;

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting to be submitted (or to be submitted again after a retry's wait).
    Queued,
    /// Sent; Midjourney has not started it yet (its start message is not seen, or it said
    /// `Job queued`).
    Submitted,
    /// Midjourney's start/progress message is seen.
    Rendering,
    /// The grid is in; upscales not requested yet.
    GridDone,
    /// Upscale buttons pressed; waiting for the results.
    Upscaling,
    Done,
    /// Finished with fewer upscales than requested (the missing tiles are in the last error).
    Partial,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Queued,
        Status::Submitted,
        Status::Rendering,
        Status::GridDone,
        Status::Upscaling,
        Status::Done,
        Status::Partial,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Submitted => "submitted",
            Status::Rendering => "rendering",
            Status::GridDone => "grid_done",
            Status::Upscaling => "upscaling",
            Status::Done => "done",
            Status::Partial => "partial",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Done | Status::Partial | Status::Failed | Status::Cancelled
        )
    }

    /// `('done', 'partial', 'failed', 'cancelled')`: the final statuses as an SQL list, in
    /// the order of [`Status::ALL`] (the text of the store's partial index on active items).
    pub fn final_sql_list() -> String {
        let names: Vec<String> = Status::ALL
            .into_iter()
            .filter(|status| status.is_final())
            .map(|status| format!("'{}'", status.as_str()))
            .collect();
        format!("({})", names.join(", "))
    }

    /// A job of this item is at Midjourney (it counts against the in-flight limit).
    pub fn at_midjourney(self) -> bool {
        matches!(
            self,
            Status::Submitted | Status::Rendering | Status::GridDone | Status::Upscaling
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which upscales an item asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upscales(pub Vec<u8>);

impl Upscales {
    pub fn none() -> Upscales {
        Upscales(Vec::new())
    }

    pub fn all() -> Upscales {
        Upscales(vec![1, 2, 3, 4])
    }

    /// `none`, `all`, or tiles like `1,3`.
    pub fn parse(text: &str) -> Result<Upscales, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Upscales::none()),
            "all" => Ok(Upscales::all()),
            list => {
                let mut tiles = Vec::new();
                for part in list.split(',') {
                    let tile = part
                        .trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|tile| (1..=4).contains(tile))
                        .ok_or_else(|| {
                            format!("{part:?} is not a tile: use none, all, or tiles 1 to 4 like 1,3")
                        })?;
                    if !tiles.contains(&tile) {
                        tiles.push(tile);
                    }
                }
                tiles.sort_unstable();
                Ok(Upscales(tiles))
            }
        }
    }

    pub fn tiles(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for Upscales {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("none"),
            [1, 2, 3, 4] => f.write_str("all"),
            tiles => {
                let text: Vec<String> = tiles.iter().map(u8::to_string).collect();
                f.write_str(&text.join(","))
            }
        }
    }
}

/// One queue item as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// A UUID (v4), as text.
    pub id: String,
    /// Exactly as asked (parameters included); sent and shown back unchanged.
    pub prompt: String,
    pub upscales: Upscales,
    /// Higher first; equal priorities in the order added.
    pub priority: i64,
    pub status: Status,
    /// Submissions made (the first included).
    pub attempts: i64,
    /// The nonce of the current submission: ties Midjourney's start message to it.
    pub nonce: Option<String>,
    /// The job UUID Midjourney gave the grid.
    pub job_uuid: Option<String>,
    pub start_message_id: Option<crate::snowflake::Snowflake>,
    pub grid_message_id: Option<crate::snowflake::Snowflake>,
    /// Tile -> the upscale's message id.
    pub results: std::collections::BTreeMap<u8, crate::snowflake::Snowflake>,
    /// Tiles whose buttons were pressed (in this grid), with the time of the press.
    pub pressed: std::collections::BTreeMap<u8, i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When the current submission was sent.
    pub submitted_ms: Option<i64>,
    /// The last sign of progress (start, progress edit, grid, an upscale).
    pub progress_ms: Option<i64>,
    /// Not to be submitted before this time (a retry's backoff).
    pub not_before_ms: Option<i64>,
    /// Midjourney said `Job queued`: the job waits at Midjourney (counts as waiting, not in
    /// flight).
    pub waiting_at_midjourney: bool,
}

impl Item {
    pub fn new(id: String, prompt: String, upscales: Upscales, priority: i64, now_ms: i64) -> Item {
        Item {
            id,
            prompt,
            upscales,
            priority,
            status: Status::Queued,
            attempts: 0,
            nonce: None,
            job_uuid: None,
            start_message_id: None,
            grid_message_id: None,
            results: Default::default(),
            pressed: Default::default(),
            last_error: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            submitted_ms: None,
            progress_ms: None,
            not_before_ms: None,
            waiting_at_midjourney: false,
        }
    }
}

/// One recorded change of status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub at_ms: i64,
    pub from: Option<Status>,
    pub to: Status,
    pub note: String,
}

/// Prompts from a file: one per line; blank lines and `#` comments skipped.
pub fn prompts_from_text(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscales_round_trip() {
        assert_eq!(Upscales::parse("all").unwrap(), Upscales::all());
        assert_eq!(Upscales::parse("none").unwrap(), Upscales::none());
        assert_eq!(Upscales::parse("3, 1,3").unwrap().0, vec![1, 3]);
        assert_eq!(Upscales::parse("3,1").unwrap().to_string(), "1,3");
        assert_eq!(Upscales::parse("1,2,3,4").unwrap().to_string(), "all");
        assert!(Upscales::parse("5").unwrap_err().contains("not a tile"));
        assert!(Upscales::parse("two").is_err());
    }

    #[test]
    fn prompt_files_skip_blanks_and_comments() {
        let prompts = prompts_from_text("# my prompts\n\na cat --ar 16:9\n   \n  # skipped\nglass --v 7\n");
        assert_eq!(prompts, ["a cat --ar 16:9", "glass --v 7"]);
    }

    #[test]
    fn status_names_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::from_name(status.as_str()), Some(status));
        }
    }
}
