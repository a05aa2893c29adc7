//! The linker's decisions, pure: which parent a result belongs to and how sure that is.
//! The shell ([`crate::pipeline`]) gathers the facts (the child, the candidate parents found
//! through an index) and stores what is decided here.

use serde::Serialize;

use crate::parse::{Action, ParentShape};
use crate::snowflake::Snowflake;
use crate::wire::Message;

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Fallback: same channel, user and normalized prompt within the window, one candidate.
    Heuristic,
    /// `interaction_metadata.interacted_message_id`.
    Interaction,
    /// `message_reference.message_id`.
    Reference,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Reference => "reference",
            Signal::Interaction => "interaction",
            Signal::Heuristic => "heuristic",
        }
    }

    pub fn from_name(text: &str) -> Option<Signal> {
        match text {
            "reference" => Some(Signal::Reference),
            "interaction" => Some(Signal::Interaction),
            "heuristic" => Some(Signal::Heuristic),
            _ => None,
        }
    }

    pub fn is_exact(self) -> bool {
        self != Signal::Heuristic
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Linked,
    Ambiguous,
    Unresolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Linked => "linked",
            Status::Ambiguous => "ambiguous",
            Status::Unresolved => "unresolved",
        }
    }

    pub fn from_name(text: &str) -> Option<Status> {
        match text {
            "linked" => Some(Status::Linked),
            "ambiguous" => Some(Status::Ambiguous),
            "unresolved" => Some(Status::Unresolved),
            _ => None,
        }
    }
}

/// The one link row a result message has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub parent: Option<Snowflake>,
    pub signal: Option<Signal>,
    pub status: Status,
    /// The parents that fit equally well, when ambiguous (ascending ids).
    pub candidates: Vec<Snowflake>,
}

impl Decision {
    pub fn exact(parent: Snowflake, signal: Signal) -> Decision {
        Decision {
            parent: Some(parent),
            signal: Some(signal),
            status: Status::Linked,
            candidates: Vec::new(),
        }
    }

    pub fn is_exact(&self) -> bool {
        self.signal.is_some_and(Signal::is_exact)
    }
}

/// The exact signals, in order: the reply reference, then the interaction metadata.
pub fn exact_parent(message: &Message) -> Option<Decision> {
    if let Some(parent) = message
        .message_reference
        .as_ref()
        .and_then(|reference| reference.message_id)
    {
        return Some(Decision::exact(parent, Signal::Reference));
    }
    message
        .interaction_metadata
        .as_ref()
        .and_then(|meta| meta.interacted_message_id)
        .map(|parent| Decision::exact(parent, Signal::Interaction))
}

/// A possible parent found by the store's index (same channel, user and normalized prompt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Snowflake,
    pub posted_ms: i64,
    pub is_grid: bool,
    pub is_single_image: bool,
    /// Another result is already linked to this candidate for the child's tile.
    pub tile_taken: bool,
}

/// What the fallback needs to know about the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub id: Snowflake,
    pub posted_ms: i64,
    pub action: Action,
}

/// The fallback heuristic. `candidates` already share the child's channel, requesting user
/// and normalized prompt; this keeps those posted before the child within `window_ms`, of
/// the right shape, whose tile is free. One left: linked. More: ambiguous. None: unresolved.
pub fn heuristic(child: Child, candidates: &[Candidate], window_ms: i64) -> Decision {
    if !child.action.prompt_identifies_parent() {
        return Decision {
            parent: None,
            signal: None,
            status: Status::Unresolved,
            candidates: Vec::new(),
        };
    }
    let shape = child.action.parent_shape();
    let mut fitting: Vec<Snowflake> = candidates
        .iter()
        .filter(|candidate| candidate.id != child.id)
        .filter(|candidate| candidate.posted_ms <= child.posted_ms && candidate.id < child.id)
        .filter(|candidate| child.posted_ms - candidate.posted_ms <= window_ms)
        .filter(|candidate| match shape {
            ParentShape::Grid => candidate.is_grid,
            ParentShape::Single => candidate.is_single_image,
            ParentShape::Either => candidate.is_grid || candidate.is_single_image,
        })
        .filter(|candidate| !candidate.tile_taken)
        .map(|candidate| candidate.id)
        .collect();
    fitting.sort_unstable();
    fitting.dedup();
    match fitting.len() {
        0 => Decision {
            parent: None,
            signal: None,
            status: Status::Unresolved,
            candidates: Vec::new(),
        },
        1 => Decision {
            parent: Some(fitting[0]),
            signal: Some(Signal::Heuristic),
            status: Status::Linked,
            candidates: Vec::new(),
        },
        _ => Decision {
            parent: None,
            signal: None,
            status: Status::Ambiguous,
            candidates: fitting,
        },
    }
}

/// Whether `new` may replace the stored decision `old`: exact signals always win over the
/// fallback, the fallback never overrides an exact link, and among exact signals the
/// reference wins over the interaction metadata.
pub fn supersedes(new: &Decision, old: &Decision) -> bool {
    if new == old {
        return false;
    }
    match (old.is_exact(), new.is_exact()) {
        (true, false) => false,
        (false, _) => true,
        (true, true) => new.signal >= old.signal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: u64, posted_ms: i64) -> Candidate {
        Candidate {
            id: Snowflake(id),
            posted_ms,
            is_grid: true,
            is_single_image: false,
            tile_taken: false,
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn one_candidate_links_two_are_ambiguous_none_unresolved() {
        let child = Child {
            id: Snowflake(100),
            posted_ms: 10 * HOUR,
            action: Action::Upscale,
        };
        let one = heuristic(child, &[candidate(10, 9 * HOUR)], 6 * HOUR);
        assert_eq!(one.parent, Some(Snowflake(10)));
        assert_eq!(one.signal, Some(Signal::Heuristic));

        let two = heuristic(
            child,
            &[candidate(10, 9 * HOUR), candidate(11, 9 * HOUR + 5)],
            6 * HOUR,
        );
        assert_eq!(two.status, Status::Ambiguous);
        assert_eq!(two.parent, None);
        assert_eq!(two.candidates, vec![Snowflake(10), Snowflake(11)]);

        let remix = Child {
            action: Action::Remix,
            ..child
        };
        assert_eq!(
            heuristic(remix, &[candidate(10, 9 * HOUR)], 6 * HOUR).status,
            Status::Unresolved
        );

        let too_old = heuristic(child, &[candidate(10, 3 * HOUR)], 6 * HOUR);
        assert_eq!(too_old.status, Status::Unresolved);
        let later = heuristic(child, &[candidate(200, 11 * HOUR)], 6 * HOUR);
        assert_eq!(later.status, Status::Unresolved);
        let mut taken = candidate(10, 9 * HOUR);
        taken.tile_taken = true;
        let taken = heuristic(child, &[taken, candidate(11, 9 * HOUR)], 6 * HOUR);
        assert_eq!(taken.parent, Some(Snowflake(11)));
    }

    #[test]
    fn heuristic_never_overrides_exact() {
        let exact = Decision::exact(Snowflake(1), Signal::Reference);
        let guess = Decision {
            parent: Some(Snowflake(2)),
            signal: Some(Signal::Heuristic),
            status: Status::Linked,
            candidates: vec![],
        };
        assert!(!supersedes(&guess, &exact));
        assert!(supersedes(&exact, &guess));
        assert!(supersedes(
            &exact,
            &Decision::exact(Snowflake(1), Signal::Interaction)
        ));
        assert!(!supersedes(
            &Decision::exact(Snowflake(1), Signal::Interaction),
            &exact
        ));
    }
}
