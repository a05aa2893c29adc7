//! Which grid is a queue item's. The queue binds an item to its job by exact signals only
//! whenever one exists: a root grid carrying the submission's nonce, the final the pipeline
//! settled for the item's start message, a grid carrying the job's UUID. The prompt is a
//! last resort, taken only when no exact signal can come, only within the item's own
//! submission window, and only when exactly one grid fits that no other item can claim.
//!
//! When can no exact signal come? The start message is the one that carries the nonce, and
//! only the gateway's MESSAGE_CREATE shows a nonce (history does not); its progress edits
//! show the job UUID, and its deletion settles its final. A submission made while the runner
//! watched the gateway has all of these seen, so it always waits for the exact signal (a
//! known job UUID always does: the grid carries it, in history too). One made before the
//! runner started (a restart) may have had its start, edits and deletion come and go while
//! nobody watched: only then is the prompt allowed. The other case: its start was deleted before it showed a job UUID
//! and the pipeline could not tell its final from another's (`unknown`, say a same-prompt
//! start of an earlier attempt still running): nothing exact is left to come.
//!
//! The shell reads the facts ([`Exact`], then [`Candidate`]s and [`Rival`]s when
//! [`bind`] says [`Binding::ByPrompt`]) and carries out the answer.

use super::machine::NonceMessage;
use super::Item;
use crate::kinds;
use crate::snowflake::Snowflake;

/// The exact signals read for an item's current submission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exact {
    /// The final the pipeline settled for a start message carrying the item's nonce.
    pub start_final: Option<Snowflake>,
    /// Grids carrying the item's job UUID (read when the UUID is known: see [`job_uuid`]).
    pub by_job: Vec<Snowflake>,
}

/// Which signal bound the item to its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Nonce,
    StartFinal,
    JobUuid,
    Prompt,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// This is the item's grid.
    Grid(Snowflake, Signal),
    /// Not yet: an exact signal is expected, or the prompt does not single one grid out.
    Wait(&'static str),
    /// No exact signal can come: read the candidates by prompt and call [`by_prompt`].
    ByPrompt,
}

/// The job UUID of the item's current submission, when known (from its start/progress
/// message or stored on the item).
pub fn job_uuid(item: &Item, by_nonce: &[NonceMessage]) -> Option<String> {
    item.job_uuid
        .clone()
        .or_else(|| by_nonce.iter().find_map(|message| message.job_uuid.clone()))
}

/// The exact signals, strongest first: a root with the nonce, the start's final, the one grid
/// with the job UUID. `watched_since_ms`: since when the runner has watched the gateway (a
/// submission made since then has its start seen with its nonce).
pub fn bind(item: &Item, by_nonce: &[NonceMessage], exact: &Exact, watched_since_ms: i64) -> Binding {
    if let Some(root) = by_nonce.iter().find(|message| kinds::is_root_name(&message.kind)) {
        return Binding::Grid(root.id, Signal::Nonce);
    }
    if let Some(grid) = exact.start_final {
        return Binding::Grid(grid, Signal::StartFinal);
    }
    if job_uuid(item, by_nonce).is_some() {
        return match exact.by_job.as_slice() {
            [grid] => Binding::Grid(*grid, Signal::JobUuid),
            [] => Binding::Wait("waiting for the grid with its job UUID"),
            _ => Binding::Wait("several grids carry its job UUID"),
        };
    }
    // Its start deleted without a job UUID, and its final not told apart from another's
    // (`unknown`): the exact signal will never come.
    let start_unsettled = by_nonce.iter().any(|message| {
        message.kind == "progress" && message.deleted && message.outcome.as_deref() == Some("unknown")
    });
    if start_unsettled {
        return Binding::ByPrompt;
    }
    // Submitted before the runner watched: its start, progress and deletion may have come
    // and gone unseen (history shows no nonce and no deleted message).
    match item.submitted_ms {
        Some(submitted) if submitted < watched_since_ms => Binding::ByPrompt,
        _ => Binding::Wait("waiting for an exact signal (its start's final or job UUID)"),
    }
}

/// A grid of the item's user, channel and exact prompt, posted since its submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Snowflake,
    pub posted_ms: i64,
    /// It carries a nonce: another interaction's (the item's own was looked for first).
    pub has_nonce: bool,
    /// It is the settled final of a start message: that start's job's.
    pub is_final_of_a_start: bool,
    /// Another queue item has taken it.
    pub taken: bool,
    pub job_uuid: Option<String>,
}

/// Another unfinished item with the same prompt and no grid yet: it may own a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rival {
    pub submitted_ms: i64,
    pub job_uuid: Option<String>,
}

/// The last resort: the one grid in the item's own window (from its submission to now) that
/// carries no sign of belonging to another job, and that no rival could own.
pub fn by_prompt(item: &Item, candidates: &[Candidate], rivals: &[Rival], now_ms: i64) -> Binding {
    let Some(submitted) = item.submitted_ms else {
        return Binding::Wait("not submitted");
    };
    let fitting: Vec<&Candidate> = candidates
        .iter()
        .filter(|grid| (submitted..=now_ms).contains(&grid.posted_ms))
        .filter(|grid| !grid.taken && !grid.has_nonce && !grid.is_final_of_a_start)
        .collect();
    let [grid] = fitting.as_slice() else {
        return Binding::Wait(if fitting.is_empty() {
            "no grid with its prompt since its submission"
        } else {
            "several grids fit its prompt; waiting for an exact signal"
        });
    };
    let claimed = rivals.iter().any(|rival| {
        rival.submitted_ms <= grid.posted_ms && (rival.job_uuid.is_none() || rival.job_uuid == grid.job_uuid)
    });
    if claimed {
        return Binding::Wait("another item with the same prompt may own the one grid that fits");
    }
    Binding::Grid(grid.id, Signal::Prompt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Status, Upscales};

    const SUBMITTED: i64 = 1_000_000;

    fn item() -> Item {
        let mut item = Item::new("a".into(), "p".into(), Upscales::parse("1").unwrap(), 0, 0);
        item.status = Status::Submitted;
        item.nonce = Some("n".into());
        item.submitted_ms = Some(SUBMITTED);
        item
    }

    fn message(id: u64, kind: &str, uuid: Option<&str>) -> NonceMessage {
        NonceMessage {
            id: Snowflake(id),
            kind: kind.into(),
            error_title: None,
            job_uuid: uuid.map(str::to_string),
            deleted: false,
            outcome: None,
            changed_ms: SUBMITTED + 1,
        }
    }

    fn candidate(id: u64, posted_ms: i64) -> Candidate {
        Candidate {
            id: Snowflake(id),
            posted_ms,
            has_nonce: false,
            is_final_of_a_start: false,
            taken: false,
            job_uuid: None,
        }
    }

    #[test]
    fn the_nonce_beats_the_start_final_which_beats_the_job_uuid() {
        let exact = Exact {
            start_final: Some(Snowflake(20)),
            by_job: vec![Snowflake(30)],
        };
        let by_nonce = [message(1, "progress", Some("u")), message(10, "imagine", None)];
        assert_eq!(
            bind(&item(), &by_nonce, &exact, 0),
            Binding::Grid(Snowflake(10), Signal::Nonce)
        );
        assert_eq!(
            bind(&item(), &by_nonce[..1], &exact, 0),
            Binding::Grid(Snowflake(20), Signal::StartFinal)
        );
        let exact = Exact {
            start_final: None,
            ..exact
        };
        assert_eq!(
            bind(&item(), &by_nonce[..1], &exact, 0),
            Binding::Grid(Snowflake(30), Signal::JobUuid)
        );
    }

    #[test]
    fn a_known_job_uuid_waits_for_its_grid_and_never_falls_back() {
        // Known from the progress edit, or stored on the item after a restart.
        let by_nonce = [message(1, "progress", Some("u"))];
        for watched_since in [0, SUBMITTED + 1] {
            assert!(matches!(
                bind(&item(), &by_nonce, &Exact::default(), watched_since),
                Binding::Wait(_)
            ));
            let mut stored = item();
            stored.job_uuid = Some("u".into());
            assert!(matches!(
                bind(&stored, &[], &Exact::default(), watched_since),
                Binding::Wait(_)
            ));
        }
        let two = Exact {
            start_final: None,
            by_job: vec![Snowflake(3), Snowflake(4)],
        };
        assert!(matches!(bind(&item(), &by_nonce, &two, 0), Binding::Wait(_)));
    }

    #[test]
    fn a_watched_submission_never_falls_back_whatever_was_seen() {
        let mut queued = message(1, "error", None);
        queued.error_title = Some("Job queued".into());
        for by_nonce in [vec![], vec![message(1, "progress", None)], vec![queued]] {
            assert!(matches!(
                bind(&item(), &by_nonce, &Exact::default(), SUBMITTED),
                Binding::Wait(_)
            ));
        }
        // Unwatched: its start's progress and deletion may have been missed.
        assert_eq!(
            bind(
                &item(),
                &[message(1, "progress", None)],
                &Exact::default(),
                SUBMITTED + 1
            ),
            Binding::ByPrompt
        );
    }

    #[test]
    fn the_prompt_is_allowed_only_for_a_submission_nobody_watched() {
        // Submitted while the runner watched: its start will come with the nonce.
        assert!(matches!(
            bind(&item(), &[], &Exact::default(), SUBMITTED),
            Binding::Wait(_)
        ));
        assert!(matches!(
            bind(&item(), &[], &Exact::default(), 0),
            Binding::Wait(_)
        ));
        // Submitted before this runner started, nothing with its nonce seen.
        assert_eq!(
            bind(&item(), &[], &Exact::default(), SUBMITTED + 1),
            Binding::ByPrompt
        );
    }

    #[test]
    fn a_start_deleted_without_uuid_and_unsettled_allows_the_prompt() {
        let mut start = message(1, "progress", None);
        start.deleted = true;
        start.outcome = Some("unknown".into());
        assert_eq!(
            bind(&item(), &[start.clone()], &Exact::default(), 0),
            Binding::ByPrompt
        );
        // Still running, or failed (moderated: the machine decides): no.
        for outcome in ["running", "failed"] {
            start.outcome = Some(outcome.into());
            assert!(matches!(
                bind(&item(), &[start.clone()], &Exact::default(), 0),
                Binding::Wait(_)
            ));
        }
    }

    #[test]
    fn the_prompt_takes_only_the_one_untaken_grid_in_the_items_own_window() {
        let now = SUBMITTED + 60_000;
        let mine = candidate(5, SUBMITTED + 30_000);
        assert_eq!(
            by_prompt(&item(), std::slice::from_ref(&mine), &[], now),
            Binding::Grid(Snowflake(5), Signal::Prompt)
        );
        // Before the submission (even a moment before), or after now: not in the window.
        let before = candidate(4, SUBMITTED - 1);
        assert_eq!(
            by_prompt(&item(), &[before.clone(), mine.clone()], &[], now),
            Binding::Grid(Snowflake(5), Signal::Prompt)
        );
        assert!(matches!(
            by_prompt(&item(), &[before], &[], now),
            Binding::Wait(_)
        ));
        // Two fit: neither.
        let other = candidate(6, SUBMITTED + 40_000);
        assert!(matches!(
            by_prompt(&item(), &[mine.clone(), other.clone()], &[], now),
            Binding::Wait(_)
        ));
        // A grid with signs of another job does not fit.
        for sign in 0..3 {
            let mut foreign = other.clone();
            match sign {
                0 => foreign.taken = true,
                1 => foreign.has_nonce = true,
                _ => foreign.is_final_of_a_start = true,
            }
            assert_eq!(
                by_prompt(&item(), &[mine.clone(), foreign], &[], now),
                Binding::Grid(Snowflake(5), Signal::Prompt)
            );
        }
    }

    #[test]
    fn a_rival_item_that_may_own_the_grid_blocks_the_prompt() {
        let now = SUBMITTED + 60_000;
        let mut grid = candidate(5, SUBMITTED + 30_000);
        grid.job_uuid = Some("g".into());
        let rival = |at: i64, uuid: Option<&str>| Rival {
            submitted_ms: at,
            job_uuid: uuid.map(str::to_string),
        };
        for claiming in [rival(SUBMITTED + 10, None), rival(SUBMITTED - 10, Some("g"))] {
            assert!(matches!(
                by_prompt(&item(), &[grid.clone()], &[claiming], now),
                Binding::Wait(_)
            ));
        }
        // Submitted after the grid was posted, or known to have another job: not its owner.
        for harmless in [rival(SUBMITTED + 40_000, None), rival(SUBMITTED, Some("other"))] {
            assert_eq!(
                by_prompt(&item(), &[grid.clone()], &[harmless], now),
                Binding::Grid(Snowflake(5), Signal::Prompt)
            );
        }
    }
}
