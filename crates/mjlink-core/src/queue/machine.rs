//! What a queue item does next: a pure function of the item, of what the database has seen of
//! its job, and of the time. No clock, no database, no network: the runner gathers [`Seen`],
//! calls [`advance`], and carries out the [`Step`].

use std::collections::BTreeMap;

use super::{Item, Status};
use crate::snowflake::Snowflake;

/// Timeouts, retries and limits.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Submitted but not started (no start message, or `Job queued`): give up on this
    /// submission after this long without a sign of progress.
    pub wait_timeout_ms: i64,
    /// Rendering with no progress edit, no grid, for this long: give up on this submission.
    pub render_timeout_ms: i64,
    /// Upscale buttons pressed and results missing after this long since the last press or
    /// result: the item ends `partial`.
    pub upscale_timeout_ms: i64,
    /// Submissions (the first included) before an item that keeps timing out is `failed`.
    pub max_attempts: i64,
    /// The wait before a retry: this, doubled for each earlier attempt.
    pub retry_backoff_ms: i64,
    /// The wait after `Queue full` before the item is sent again.
    pub queue_full_backoff_ms: i64,
    /// How long a deleted start message must stay without a grid before the job counts as
    /// moderated: gateway events are handled concurrently, so the deletion that follows a
    /// grid can be stored a moment before the grid itself.
    pub settle_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            wait_timeout_ms: 15 * 60_000,
            render_timeout_ms: 10 * 60_000,
            upscale_timeout_ms: 10 * 60_000,
            max_attempts: 3,
            retry_backoff_ms: 30_000,
            queue_full_backoff_ms: 60_000,
            settle_ms: 3_000,
        }
    }
}

/// How many jobs may be at Midjourney, and how fast to send them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Jobs submitted and not finished, Midjourney's queue excluded (its default: 3).
    pub max_in_flight: usize,
    /// Jobs Midjourney said it queued (`Job queued`) and has not started (its default: 10).
    pub max_waiting: usize,
    /// Submissions per UTC day; `None`: no cap.
    pub daily_cap: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: 3,
            max_waiting: 10,
            daily_cap: None,
        }
    }
}

/// A message that carries the nonce of the item's current submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceMessage {
    pub id: Snowflake,
    /// The parsed kind (`progress` for a start/progress message, `error` for an embed).
    pub kind: String,
    pub error_title: Option<String>,
    pub job_uuid: Option<String>,
    pub deleted: bool,
    /// Of a start/progress message: `running`, `completed`, `failed` or `unknown`.
    pub outcome: Option<String>,
    /// The newest of its posting and editing times.
    pub changed_ms: i64,
}

/// The grid found for the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridSeen {
    pub id: Snowflake,
    pub job_uuid: Option<String>,
    pub posted_ms: i64,
}

/// What the database shows of an item's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub by_nonce: Vec<NonceMessage>,
    pub grid: Option<GridSeen>,
    /// Upscales linked to the grid by the lineage core: tile -> (message id, posted time).
    pub upscales: BTreeMap<u8, (Snowflake, i64)>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The item as it is to be stored.
    pub item: Item,
    /// Why its status changed (for the history), when it did.
    pub note: Option<String>,
    /// Upscale buttons to press now (tiles of the item's grid).
    pub press: Vec<u8>,
}

/// Errors that end an item: Midjourney will not do this prompt.
fn is_refusal(title: &str) -> bool {
    !matches!(title, "Job queued" | "Queue full" | "Slow Down!")
}

/// Back to the queue for another submission, or `failed` when attempts are used up.
fn retry_or_fail(item: &mut Item, reason: String, now_ms: i64, policy: &Policy) -> String {
    if item.attempts >= policy.max_attempts {
        item.status = Status::Failed;
        item.last_error = Some(format!("{reason}; gave up after {} attempts", item.attempts));
        return item.last_error.clone().unwrap_or_default();
    }
    let doublings = (item.attempts - 1).clamp(0, 10) as u32;
    item.not_before_ms = Some(now_ms + policy.retry_backoff_ms.saturating_mul(1 << doublings));
    forget_submission(item);
    item.status = Status::Queued;
    item.last_error = Some(reason.clone());
    format!("{reason}; retrying")
}

fn forget_submission(item: &mut Item) {
    item.nonce = None;
    item.start_message_id = None;
    item.job_uuid = None;
    item.submitted_ms = None;
    item.progress_ms = None;
    item.waiting_at_midjourney = false;
}

/// The next step of one item.
pub fn advance(item: &Item, seen: &Seen, now_ms: i64, policy: &Policy) -> Step {
    let mut next = item.clone();
    let mut note = None;
    let mut press = Vec::new();
    match item.status {
        Status::Queued | Status::Done | Status::Partial | Status::Failed | Status::Cancelled => {}
        Status::Submitted | Status::Rendering => {
            note = follow_job(&mut next, seen, now_ms, policy);
        }
        Status::GridDone | Status::Upscaling => {}
    }
    if next.status == Status::Upscaling && item.status == Status::Upscaling {
        note = collect_upscales(&mut next, seen, now_ms, policy);
    }
    // Upscale buttons not pressed yet (a new grid, or a press that could not be sent).
    if matches!(next.status, Status::GridDone | Status::Upscaling) {
        if next.upscales.tiles().is_empty() {
            next.status = Status::Done;
            note = Some("grid done; no upscales requested".to_string());
        } else {
            press = next
                .upscales
                .tiles()
                .iter()
                .copied()
                .filter(|tile| !next.pressed.contains_key(tile) && !next.results.contains_key(tile))
                .collect();
            for tile in &press {
                next.pressed.insert(*tile, now_ms);
            }
            if next.status == Status::GridDone {
                next.status = Status::Upscaling;
                note = Some(format!("grid done; pressing {}", tiles_text(&press)));
            }
        }
    }
    if next != *item {
        next.updated_ms = now_ms;
    }
    Step {
        item: next,
        note,
        press,
    }
}

/// Submitted or rendering: the start message, error embeds, the grid, timeouts.
fn follow_job(item: &mut Item, seen: &Seen, now_ms: i64, policy: &Policy) -> Option<String> {
    let mut note = None;
    for message in &seen.by_nonce {
        if message.kind == "error" {
            let title = message
                .error_title
                .clone()
                .unwrap_or_else(|| "an error".to_string());
            match title.as_str() {
                "Job queued" if !item.waiting_at_midjourney => {
                    item.waiting_at_midjourney = true;
                    bump_progress(item, message.changed_ms);
                }
                "Queue full" => {
                    item.not_before_ms = Some(now_ms + policy.queue_full_backoff_ms);
                    forget_submission(item);
                    item.status = Status::Queued;
                    // Not a failure of the prompt: this submission does not count.
                    item.attempts = (item.attempts - 1).max(0);
                    item.last_error = Some("Midjourney's queue is full".to_string());
                    return Some("Midjourney's queue is full; backing off".to_string());
                }
                other if is_refusal(other) => {
                    item.status = Status::Failed;
                    item.last_error = Some(format!("Midjourney refused the prompt: {other}"));
                    return item.last_error.clone();
                }
                _ => {}
            }
        } else if message.kind == "progress" {
            item.start_message_id = Some(message.id);
            if item.job_uuid.is_none() {
                item.job_uuid = message.job_uuid.clone();
            }
            bump_progress(item, message.changed_ms);
            if item.status == Status::Submitted {
                item.status = Status::Rendering;
                item.waiting_at_midjourney = false;
                note = Some("Midjourney started the job".to_string());
            }
        }
    }
    if let Some(grid) = &seen.grid {
        item.grid_message_id = Some(grid.id);
        if grid.job_uuid.is_some() {
            item.job_uuid = grid.job_uuid.clone();
        }
        bump_progress(item, grid.posted_ms);
        item.status = Status::GridDone;
        item.waiting_at_midjourney = false;
        return note;
    }
    // The start message deleted with no grid (for a moment, so that a grid handled a little
    // after the deletion is not missed): Midjourney's silent moderation.
    let moderated = seen.by_nonce.iter().any(|message| {
        message.kind == "progress"
            && message.deleted
            && message.outcome.as_deref() == Some("failed")
            && now_ms - message.changed_ms >= policy.settle_ms
    });
    if moderated {
        item.status = Status::Failed;
        item.last_error =
            Some("moderated: Midjourney deleted the job's progress message and posted no grid".to_string());
        return item.last_error.clone();
    }
    let settling = seen.by_nonce.iter().any(|message| {
        message.kind == "progress" && message.deleted && now_ms - message.changed_ms < policy.settle_ms
    });
    if settling {
        // Just deleted: its grid, or the verdict of moderation, is a moment away.
        return note;
    }
    let since = item.progress_ms.or(item.submitted_ms).unwrap_or(item.updated_ms);
    let (limit, what) = if item.status == Status::Submitted {
        (policy.wait_timeout_ms, "no start from Midjourney")
    } else {
        (policy.render_timeout_ms, "no progress from Midjourney")
    };
    if now_ms - since > limit {
        let reason = format!("{what} for {} s", (now_ms - since) / 1000);
        return Some(retry_or_fail(item, reason, now_ms, policy));
    }
    note
}

fn bump_progress(item: &mut Item, at_ms: i64) {
    item.progress_ms = Some(item.progress_ms.map_or(at_ms, |known| known.max(at_ms)));
}

/// Upscaling: take the results the lineage core linked to the grid; done when all are in,
/// partial when the rest does not come.
/// The upscale of each tile of a grid, from every upscale linked to it with its tile
/// (`(tile, message id, posted ms)`, in any order): the first of a tile (lowest id) is the
/// one the press asked for; a later one is someone pressing the same button again.
pub fn upscales_by_tile(
    linked: impl IntoIterator<Item = (u8, Snowflake, i64)>,
) -> BTreeMap<u8, (Snowflake, i64)> {
    let mut by_tile: BTreeMap<u8, (Snowflake, i64)> = BTreeMap::new();
    for (tile, id, posted_ms) in linked {
        let entry = by_tile.entry(tile).or_insert((id, posted_ms));
        if id < entry.0 {
            *entry = (id, posted_ms);
        }
    }
    by_tile
}

fn collect_upscales(item: &mut Item, seen: &Seen, now_ms: i64, policy: &Policy) -> Option<String> {
    for tile in item.upscales.tiles().to_vec() {
        if let Some((id, posted_ms)) = seen.upscales.get(&tile) {
            if item.results.insert(tile, *id).is_none() {
                bump_progress(item, *posted_ms);
            }
        }
    }
    let missing: Vec<u8> = item
        .upscales
        .tiles()
        .iter()
        .copied()
        .filter(|tile| !item.results.contains_key(tile))
        .collect();
    if missing.is_empty() {
        item.status = Status::Done;
        item.last_error = None;
        return Some(format!("all upscales in ({})", tiles_text(item.upscales.tiles())));
    }
    let last_press = item.pressed.values().copied().max().unwrap_or(item.updated_ms);
    let since = item.progress_ms.unwrap_or(last_press).max(last_press);
    if now_ms - since > policy.upscale_timeout_ms {
        item.status = Status::Partial;
        item.last_error = Some(format!(
            "missing upscales: {} (nothing from Midjourney for {} s)",
            tiles_text(&missing),
            (now_ms - since) / 1000
        ));
        return item.last_error.clone();
    }
    None
}

fn tiles_text(tiles: &[u8]) -> String {
    let names: Vec<String> = tiles.iter().map(|tile| format!("U{tile}")).collect();
    names.join(", ")
}

/// The next item to submit now, if any: highest priority first, then the oldest (then the
/// order of `items`); only while
/// fewer than `max_in_flight` jobs are running and fewer than `max_waiting` are queued at
/// Midjourney, under the daily cap, and once the item's backoff has passed.
pub fn next_to_submit<'a>(
    items: &'a [Item],
    now_ms: i64,
    limits: &Limits,
    submitted_today: u32,
) -> Option<&'a Item> {
    let in_flight = items
        .iter()
        .filter(|item| item.status.at_midjourney() && !item.waiting_at_midjourney)
        .count();
    let waiting = items
        .iter()
        .filter(|item| item.status.at_midjourney() && item.waiting_at_midjourney)
        .count();
    if in_flight >= limits.max_in_flight || waiting >= limits.max_waiting {
        return None;
    }
    if limits.daily_cap.is_some_and(|cap| submitted_today >= cap) {
        return None;
    }
    // Ties keep the order of `items` (the order they were added).
    items
        .iter()
        .filter(|item| item.status == Status::Queued)
        .filter(|item| item.not_before_ms.is_none_or(|at| at <= now_ms))
        .fold(None, |best: Option<&Item>, item| match best {
            Some(best) if (best.priority, -best.created_ms) >= (item.priority, -item.created_ms) => {
                Some(best)
            }
            _ => Some(item),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Upscales;

    const T0: i64 = 1_700_000_000_000;

    fn submitted(upscales: Upscales) -> Item {
        let mut item = Item::new("i1".into(), "a cat --ar 16:9".into(), upscales, 0, T0);
        item.status = Status::Submitted;
        item.attempts = 1;
        item.nonce = Some("n1".into());
        item.submitted_ms = Some(T0);
        item
    }

    fn start(id: u64, at: i64) -> NonceMessage {
        NonceMessage {
            id: Snowflake(id),
            kind: "progress".into(),
            error_title: None,
            job_uuid: Some("u-1".into()),
            deleted: false,
            outcome: Some("running".into()),
            changed_ms: at,
        }
    }

    fn error(title: &str) -> NonceMessage {
        NonceMessage {
            id: Snowflake(9),
            kind: "error".into(),
            error_title: Some(title.into()),
            job_uuid: None,
            deleted: false,
            outcome: None,
            changed_ms: T0 + 1000,
        }
    }

    #[test]
    fn happy_path_presses_then_collects() {
        let policy = Policy::default();
        let item = submitted(Upscales::parse("1,3").unwrap());
        let seen = Seen {
            by_nonce: vec![start(100, T0 + 2000)],
            ..Seen::default()
        };
        let step = advance(&item, &seen, T0 + 3000, &policy);
        assert_eq!(step.item.status, Status::Rendering);
        assert_eq!(step.item.start_message_id, Some(Snowflake(100)));

        let seen = Seen {
            by_nonce: vec![start(100, T0 + 2000)],
            grid: Some(GridSeen {
                id: Snowflake(200),
                job_uuid: Some("u-1".into()),
                posted_ms: T0 + 60_000,
            }),
            ..Seen::default()
        };
        let step = advance(&step.item, &seen, T0 + 61_000, &policy);
        assert_eq!(step.item.status, Status::Upscaling);
        assert_eq!(step.press, vec![1, 3]);
        assert_eq!(step.item.grid_message_id, Some(Snowflake(200)));

        // One result in: still upscaling; a second look presses nothing again.
        let mut seen = seen;
        seen.upscales.insert(1, (Snowflake(301), T0 + 70_000));
        let step = advance(&step.item, &seen, T0 + 71_000, &policy);
        assert_eq!(step.item.status, Status::Upscaling);
        assert!(step.press.is_empty());
        seen.upscales.insert(3, (Snowflake(303), T0 + 80_000));
        // An upscale of a tile nobody asked for is not taken.
        seen.upscales.insert(2, (Snowflake(302), T0 + 80_000));
        let step = advance(&step.item, &seen, T0 + 81_000, &policy);
        assert_eq!(step.item.status, Status::Done);
        assert_eq!(
            step.item.results.into_iter().collect::<Vec<_>>(),
            [(1, Snowflake(301)), (3, Snowflake(303))]
        );
    }

    #[test]
    fn no_upscales_means_done_at_the_grid() {
        let item = submitted(Upscales::none());
        let seen = Seen {
            grid: Some(GridSeen {
                id: Snowflake(200),
                job_uuid: None,
                posted_ms: T0 + 5000,
            }),
            ..Seen::default()
        };
        let step = advance(&item, &seen, T0 + 6000, &Policy::default());
        assert_eq!(step.item.status, Status::Done);
        assert!(step.press.is_empty());
    }

    #[test]
    fn refusals_fail_and_queue_full_backs_off() {
        let policy = Policy::default();
        for title in ["Banned prompt detected", "Invalid parameter", "Invalid link"] {
            let seen = Seen {
                by_nonce: vec![error(title)],
                ..Seen::default()
            };
            let step = advance(&submitted(Upscales::all()), &seen, T0 + 2000, &policy);
            assert_eq!(step.item.status, Status::Failed, "{title}");
            assert!(step.item.last_error.unwrap().contains(title));
        }
        let seen = Seen {
            by_nonce: vec![error("Queue full")],
            ..Seen::default()
        };
        let step = advance(&submitted(Upscales::all()), &seen, T0 + 2000, &policy);
        assert_eq!(step.item.status, Status::Queued);
        assert_eq!(step.item.attempts, 0, "a full queue does not use up an attempt");
        assert_eq!(step.item.nonce, None);
        assert!(step.item.not_before_ms.unwrap() > T0 + 2000);

        let seen = Seen {
            by_nonce: vec![error("Job queued")],
            ..Seen::default()
        };
        let step = advance(&submitted(Upscales::all()), &seen, T0 + 2000, &policy);
        assert_eq!(step.item.status, Status::Submitted);
        assert!(step.item.waiting_at_midjourney);
    }

    #[test]
    fn a_deleted_start_with_no_grid_is_moderation() {
        let mut message = start(100, T0 + 2000);
        message.deleted = true;
        message.outcome = Some("failed".into());
        let seen = Seen {
            by_nonce: vec![message],
            ..Seen::default()
        };
        // Not at once: the grid may be stored a moment after the deletion.
        let step = advance(&submitted(Upscales::all()), &seen, T0 + 3000, &Policy::default());
        assert_eq!(step.item.status, Status::Rendering);
        let step = advance(&step.item, &seen, T0 + 5000, &Policy::default());
        assert_eq!(step.item.status, Status::Failed);
        assert!(step.item.last_error.unwrap().starts_with("moderated"));
    }

    #[test]
    fn timeouts_count_from_the_last_progress_then_retry_then_fail() {
        let policy = Policy::default();
        let item = submitted(Upscales::all());
        let seen = Seen {
            by_nonce: vec![start(100, T0 + 5 * 60_000)],
            ..Seen::default()
        };
        // 12 minutes after submission but 7 after the last progress: still rendering.
        let step = advance(&item, &seen, T0 + 12 * 60_000, &policy);
        assert_eq!(step.item.status, Status::Rendering);
        // 11 minutes after the last progress: retried later.
        let step = advance(&step.item, &seen, T0 + 16 * 60_000, &policy);
        assert_eq!(step.item.status, Status::Queued);
        assert_eq!(
            step.item.not_before_ms,
            Some(T0 + 16 * 60_000 + policy.retry_backoff_ms)
        );
        assert!(step.note.unwrap().contains("retrying"));
        // The last attempt timing out fails the item.
        let mut last = submitted(Upscales::all());
        last.attempts = policy.max_attempts;
        let step = advance(&last, &Seen::default(), T0 + policy.wait_timeout_ms + 1, &policy);
        assert_eq!(step.item.status, Status::Failed);
        assert!(step.item.last_error.unwrap().contains("gave up after 3 attempts"));
    }

    #[test]
    fn missing_upscales_end_partial_naming_the_tiles() {
        let policy = Policy::default();
        let mut item = submitted(Upscales::all());
        item.status = Status::Upscaling;
        item.grid_message_id = Some(Snowflake(200));
        for tile in 1..=4 {
            item.pressed.insert(tile, T0);
        }
        let mut seen = Seen::default();
        seen.upscales.insert(2, (Snowflake(302), T0 + 1000));
        seen.upscales.insert(4, (Snowflake(304), T0 + 2000));
        let step = advance(&item, &seen, T0 + 2000 + policy.upscale_timeout_ms + 1, &policy);
        assert_eq!(step.item.status, Status::Partial);
        assert!(step.item.last_error.unwrap().contains("missing upscales: U1, U3"));
    }

    #[test]
    fn submission_respects_limits_priority_and_backoff() {
        let limits = Limits::default();
        let mut items: Vec<Item> = (0..5)
            .map(|n| Item::new(format!("i{n}"), format!("p{n}"), Upscales::none(), 0, T0 + n))
            .collect();
        items[3].priority = 5;
        assert_eq!(next_to_submit(&items, T0, &limits, 0).unwrap().id, "i3");
        items[3].not_before_ms = Some(T0 + 10);
        assert_eq!(next_to_submit(&items, T0, &limits, 0).unwrap().id, "i0");
        for item in &mut items[..3] {
            item.status = Status::Rendering;
        }
        assert!(
            next_to_submit(&items, T0 + 20, &limits, 0).is_none(),
            "3 in flight"
        );
        items[0].waiting_at_midjourney = true;
        assert_eq!(next_to_submit(&items, T0 + 20, &limits, 0).unwrap().id, "i3");
        let capped = Limits {
            daily_cap: Some(7),
            ..Limits::default()
        };
        assert!(next_to_submit(&items, T0 + 20, &capped, 7).is_none());
    }

    #[test]
    fn the_first_upscale_of_a_tile_is_the_one_pressed() {
        let by_tile = upscales_by_tile([
            (2, Snowflake(30), 3_000),
            (1, Snowflake(20), 2_000),
            (2, Snowflake(25), 2_500),
        ]);
        assert_eq!(by_tile.len(), 2);
        assert_eq!(by_tile[&1], (Snowflake(20), 2_000));
        assert_eq!(by_tile[&2], (Snowflake(25), 2_500));
    }
}
