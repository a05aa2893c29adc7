//! The linker's decisions, pure: which parent a result belongs to and how sure that is.
//! The shell ([`crate::pipeline`]) gathers the facts (the child, the candidate parents found
//! through an index) and stores what is decided here.

use serde::Serialize;

use crate::kinds::{self, Shape};
use crate::marks::{Family, MarkLog};
use crate::parse::Action;
use crate::snowflake::Snowflake;
use crate::wire::Message;
#[cfg(test)]
use crate::wire::{button_key, used_buttons};

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Fallback: same channel, user and normalized prompt within the window, one candidate.
    Heuristic,
    /// Set by a person (`mjlink link set`): beats the fallback, never an exact signal.
    Manual,
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
            Signal::Manual => "manual",
        }
    }

    pub fn from_name(text: &str) -> Option<Signal> {
        match text {
            "reference" => Some(Signal::Reference),
            "interaction" => Some(Signal::Interaction),
            "heuristic" => Some(Signal::Heuristic),
            "manual" => Some(Signal::Manual),
            _ => None,
        }
    }

    /// A signal from Discord itself (`reference`, `interaction`).
    pub fn is_exact(self) -> bool {
        matches!(self, Signal::Interaction | Signal::Reference)
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

    pub fn is_manual(&self) -> bool {
        self.signal == Some(Signal::Manual)
    }

    /// A link the fallback never re-decides: an exact one or one set by a person.
    pub fn is_settled(&self) -> bool {
        self.is_exact() || self.is_manual()
    }
}

/// The exact signals, in order: the reply reference (never a forward), then the interaction
/// metadata: the pressed message, or for a job submitted through a pop-up form (Remix, Vary
/// (Region), Custom Zoom), the message whose button opened the form.
pub fn exact_parent(message: &Message) -> Option<Decision> {
    if let Some(parent) = message
        .message_reference
        .as_ref()
        .and_then(|reference| reference.reply_to())
    {
        return Some(Decision::exact(parent, Signal::Reference));
    }
    let meta = message.interaction_metadata.as_ref()?;
    meta.interacted_message_id
        .or_else(|| {
            meta.triggering_interaction_metadata
                .as_ref()
                .and_then(|trigger| trigger.interacted_message_id)
        })
        .map(|parent| Decision::exact(parent, Signal::Interaction))
}

/// Whether a candidate can have produced a result of `action` with `tile`, posted at
/// `child_posted_ms`, given its used buttons (see [`crate::wire::used_buttons`]; `None` when
/// unknown) as of `marks_as_of_ms`. Only the mark the wire notes document counts: a pressed U
/// turns `style: 1` (section 2; seen in the real history samples, where the grid's used U is
/// `style: 1`). A button is pressed before its result is posted, so marks from a snapshot
/// made after the result was posted must show the press; marks from before it say nothing
/// (the edit may not have come yet, or been missed): only those exclude. For every other
/// button nothing is documented, so nothing is excluded.
///
/// Marks carry no time of their own (the real grids whose U is marked have
/// `edited_timestamp: null`): where the channel trusts the marks of the child's [`Family`],
/// `marks` says where in the stream each was first seen, and a result needs the button of the
/// candidate that makes it seen marked before it: an upscale its grid's U, a variation any of
/// its grid's V, a zoom of an image one of its zoom buttons (see [`crate::marks`]).
pub fn buttons_allow(
    action: Action,
    tile: Option<u8>,
    shape: Shape,
    used: Option<&str>,
    marks_as_of_ms: Option<i64>,
    child: Child,
    marks: Option<&MarkLog>,
) -> bool {
    if let (Some(marks), Some(family)) = (marks, Family::of(action, shape)) {
        if !marks.allows(family, action, tile, child.id) {
            return false;
        }
    }
    let child_posted_ms = child.posted_ms;
    let Some(used) = used else {
        return true;
    };
    if marks_as_of_ms.is_none_or(|as_of| as_of < child_posted_ms) {
        return true;
    }
    let mut keys = used.split(' ');
    match (action, tile) {
        (Action::Upscale, Some(tile)) if shape.is_grid() => {
            let wanted = format!("upsample::{tile}");
            keys.any(|key| key == wanted)
        }
        _ => true,
    }
}

/// A possible parent found by the store's index (same channel, user and normalized prompt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Snowflake,
    pub posted_ms: i64,
    pub shape: Shape,
    /// Who already holds this candidate's button for the child's tile (see [`TileTakers`]).
    pub tile_takers: TileTakers,
    /// Its used buttons (see [`crate::wire::used_buttons`]); `None` when unknown.
    pub used_buttons: Option<String>,
    /// When the snapshot those marks come from was made (its edit time): marks say nothing
    /// about presses after it.
    pub marks_as_of_ms: Option<i64>,
    /// Where each of its marks was first seen; `None` unless the channel trusts the marks of
    /// the child's family ([`crate::marks::Trust`]) and the candidate's marks were followed.
    pub marks: Option<MarkLog>,
}

/// The results already linked to a candidate for the child's tile, as far as the fallback
/// needs them: whether one is linked exactly, and the first (lowest id) linked by the
/// fallback. A U button makes one upscale (the generator and the wire notes' grids show a
/// used U as `style: 1`, pressed once), so a candidate whose tile another result holds is not
/// this child's parent. An exact link is a fact and always counts; a fallback link counts only
/// when its child came first: a result's decision then depends on the exact links and on the
/// results before it, never on the order the events arrived in (issue 12, E5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TileTakers {
    pub exact: bool,
    pub first_by_fallback: Option<Snowflake>,
}

impl TileTakers {
    /// Whether the tile is taken for `child`.
    pub fn taken_for(self, child: Snowflake) -> bool {
        self.exact || self.first_by_fallback.is_some_and(|first| first < child)
    }
}

/// What the fallback needs to know about the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub id: Snowflake,
    pub posted_ms: i64,
    pub action: Action,
}

/// How far back the fallback looks for rivals: four windows. A parent is searched for within
/// the window; but a window bounds the search, it does not decide it (real gaps between a
/// grid and its upscale reach hours): a lone candidate in the window is linked only when no
/// other candidate that fits is found further back, within the horizon.
pub fn horizon_ms(window_ms: i64) -> i64 {
    window_ms.saturating_mul(4)
}

/// The fallback heuristic. `candidates` already share the child's channel, requesting user
/// and normalized prompt; this keeps those posted before the child within the horizon
/// ([`horizon_ms`]), of a shape that carries the button (see [`kinds::parent_fits`]),
/// whose tile is free (see [`TileTakers`]) and whose button, when the wire says which were
/// used, was used. Within `window_ms`: one left and no rival further back: linked. More, or
/// one with a rival further back: ambiguous, listing every candidate that fits within the
/// horizon. None in the window: unresolved.
pub fn heuristic(child: Child, tile: Option<u8>, candidates: &[Candidate], window_ms: i64) -> Decision {
    if !child.action.prompt_identifies_parent() {
        return Decision {
            parent: None,
            signal: None,
            status: Status::Unresolved,
            candidates: Vec::new(),
        };
    }
    let horizon = horizon_ms(window_ms);
    let mut fitting: Vec<(Snowflake, bool)> = candidates
        .iter()
        .filter(|candidate| candidate.id != child.id)
        .filter(|candidate| candidate.posted_ms <= child.posted_ms && candidate.id < child.id)
        .filter(|candidate| child.posted_ms - candidate.posted_ms <= horizon)
        .filter(|candidate| kinds::parent_fits(child.action, tile, candidate.shape))
        .filter(|candidate| !candidate.tile_takers.taken_for(child.id))
        .filter(|candidate| {
            buttons_allow(
                child.action,
                tile,
                candidate.shape,
                candidate.used_buttons.as_deref(),
                candidate.marks_as_of_ms,
                child,
                candidate.marks.as_ref(),
            )
        })
        .map(|candidate| (candidate.id, child.posted_ms - candidate.posted_ms <= window_ms))
        .collect();
    fitting.sort_unstable();
    fitting.dedup();
    let in_window: Vec<Snowflake> = fitting
        .iter()
        .filter(|(_, inside)| *inside)
        .map(|(id, _)| *id)
        .collect();
    match (in_window.as_slice(), fitting.len()) {
        ([], _) => Decision {
            parent: None,
            signal: None,
            status: Status::Unresolved,
            candidates: Vec::new(),
        },
        ([only], 1) => Decision {
            parent: Some(*only),
            signal: Some(Signal::Heuristic),
            status: Status::Linked,
            candidates: Vec::new(),
        },
        ([_], _) => Decision {
            parent: None,
            signal: None,
            status: Status::Ambiguous,
            candidates: fitting.iter().map(|(id, _)| *id).collect(),
        },
        // Several in the window: every candidate that fits is listed, those further back
        // within the horizon too (the true parent may be one of them).
        _ => Decision {
            parent: None,
            signal: None,
            status: Status::Ambiguous,
            candidates: fitting.iter().map(|(id, _)| *id).collect(),
        },
    }
}

/// Whether `new` may replace the stored decision `old`: exact signals always win over the
/// fallback and over a manual link, the fallback never overrides an exact or a manual link,
/// a manual link never overrides an exact one, and among exact signals the reference wins
/// over the interaction metadata.
pub fn supersedes(new: &Decision, old: &Decision) -> bool {
    if new == old {
        return false;
    }
    match (old.is_exact(), new.is_exact()) {
        (true, false) => false,
        (true, true) => new.signal >= old.signal,
        (false, true) => true,
        (false, false) => !old.is_manual() || new.is_manual(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_link_beats_the_fallback_and_yields_to_an_exact_signal() {
        let manual = Decision {
            parent: Some(Snowflake(7)),
            signal: Some(Signal::Manual),
            status: Status::Linked,
            candidates: Vec::new(),
        };
        let heuristic = Decision {
            signal: Some(Signal::Heuristic),
            ..manual.clone()
        };
        let ambiguous = Decision {
            parent: None,
            signal: None,
            status: Status::Ambiguous,
            candidates: vec![Snowflake(7), Snowflake(8)],
        };
        let unresolved = Decision {
            parent: None,
            signal: None,
            status: Status::Unresolved,
            candidates: Vec::new(),
        };
        for guess in [&heuristic, &ambiguous, &unresolved] {
            assert!(supersedes(&manual, guess), "{guess:?}");
            assert!(!supersedes(guess, &manual), "{guess:?}");
        }
        for signal in [Signal::Reference, Signal::Interaction] {
            let exact = Decision::exact(Snowflake(9), signal);
            assert!(supersedes(&exact, &manual));
            assert!(!supersedes(&manual, &exact));
        }
        let elsewhere = Decision {
            parent: Some(Snowflake(8)),
            ..manual.clone()
        };
        assert!(supersedes(&elsewhere, &manual));
        assert!(!supersedes(&manual, &manual));
        assert!(!Signal::Manual.is_exact());
        assert!(manual.is_settled() && !heuristic.is_settled());
        assert_eq!(Signal::from_name("manual"), Some(Signal::Manual));
    }

    fn candidate(id: u64, posted_ms: i64) -> Candidate {
        Candidate {
            id: Snowflake(id),
            posted_ms,
            shape: Shape::RootGrid,
            tile_takers: TileTakers::default(),
            used_buttons: None,
            marks_as_of_ms: None,
            marks: None,
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
        let one = heuristic(child, Some(2), &[candidate(10, 9 * HOUR)], 6 * HOUR);
        assert_eq!(one.parent, Some(Snowflake(10)));
        assert_eq!(one.signal, Some(Signal::Heuristic));

        let two = heuristic(
            child,
            Some(2),
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
            heuristic(remix, None, &[candidate(10, 9 * HOUR)], 6 * HOUR).status,
            Status::Unresolved
        );

        // A lone candidate in the window with a rival further back (within four windows) is
        // not certain: the true parent may be the older one.
        let rival = heuristic(
            child,
            Some(2),
            &[candidate(10, 9 * HOUR), candidate(5, 10 * HOUR - 20 * HOUR)],
            6 * HOUR,
        );
        assert_eq!(rival.status, Status::Ambiguous);
        assert_eq!(rival.candidates, vec![Snowflake(5), Snowflake(10)]);
        let far = heuristic(
            child,
            Some(2),
            &[candidate(10, 9 * HOUR), candidate(5, 10 * HOUR - 25 * HOUR)],
            6 * HOUR,
        );
        assert_eq!(far.parent, Some(Snowflake(10)));
        let too_old = heuristic(child, Some(2), &[candidate(10, 3 * HOUR)], 6 * HOUR);
        assert_eq!(too_old.status, Status::Unresolved);
        let later = heuristic(child, Some(2), &[candidate(200, 11 * HOUR)], 6 * HOUR);
        assert_eq!(later.status, Status::Unresolved);
        let mut taken = candidate(10, 9 * HOUR);
        taken.tile_takers.exact = true;
        let taken = heuristic(child, Some(2), &[taken, candidate(11, 9 * HOUR)], 6 * HOUR);
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

    fn message(json: &str) -> Message {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_forward_is_never_a_parent_and_a_form_names_its_parent() {
        // Section 9: message_reference.type 1 = FORWARD: never a parent link.
        let forward =
            message(r#"{"id":"5","message_reference":{"type":1,"message_id":"4","channel_id":"7"}}"#);
        assert_eq!(exact_parent(&forward), None);
        let reply = message(r#"{"id":"5","message_reference":{"type":0,"message_id":"4"}}"#);
        assert_eq!(
            exact_parent(&reply),
            Some(Decision::exact(Snowflake(4), Signal::Reference))
        );
        // Section 9: jobs submitted through a modal name their parent only in
        // interaction_metadata.triggering_interaction_metadata.interacted_message_id.
        let modal = message(
            r#"{"id":"5","interaction_metadata":{"id":"9","type":5,"name":"Remix","triggering_interaction_metadata":{"id":"8","type":3,"interacted_message_id":"3"}}}"#,
        );
        assert_eq!(
            exact_parent(&modal),
            Some(Decision::exact(Snowflake(3), Signal::Interaction))
        );
        // discordgo writes empty strings for absent ids: read as absent, not a rejection.
        let empty = message(r#"{"id":"5","webhook_id":"","message_reference":{"message_id":""}}"#);
        assert_eq!(exact_parent(&empty), None);
        assert_eq!(empty.webhook_id, None);
    }

    #[test]
    fn used_buttons_come_from_style_1() {
        // Section 2: a used U button turns `style: 1`; the others stay 2; link buttons are 5.
        let grid = message(
            r#"{"id":"5","components":[{"type":1,"components":[
                {"type":2,"style":2,"custom_id":"MJ::JOB::upsample::1::c09a2935-432a-464c-bb31-6250a418a3c1"},
                {"type":2,"style":1,"custom_id":"MJ::JOB::upsample::2::c09a2935-432a-464c-bb31-6250a418a3c1"},
                {"type":2,"style":2,"custom_id":"MJ::JOB::reroll::0::c09a2935-432a-464c-bb31-6250a418a3c1::SOLO"}]},
                {"type":1,"components":[{"custom_id":"MJ::JOB::variation::1::c09a2935-432a-464c-bb31-6250a418a3c1","style":1,"type":2},
                {"type":2,"style":5,"url":"https://www.midjourney.com/jobs/c09a2935-432a-464c-bb31-6250a418a3c1"}]}]}"#,
        );
        let used = used_buttons(grid.components.as_ref());
        assert_eq!(used.as_deref(), Some("upsample::2 variation::1"));
        // The stored (flattened) form keeps the marks.
        let stored = serde_json::to_string(&grid).unwrap();
        let again: Message = serde_json::from_str(&stored).unwrap();
        assert_eq!(used_buttons(again.components.as_ref()), used);
        assert_eq!(used_buttons(None), None);
        assert_eq!(
            button_key("MJ::Outpaint::50::1::c09a2935-432a-464c-bb31-6250a418a3c1::SOLO"),
            Some("Outpaint::50::1")
        );
        assert_eq!(button_key("https://www.midjourney.com/jobs/x"), None);
    }

    #[test]
    fn a_result_of_button_n_needs_a_candidate_whose_button_n_is_used() {
        let child = Child {
            id: Snowflake(100),
            posted_ms: 10 * HOUR,
            action: Action::Upscale,
        };
        // Marks from an edit made after the result was posted.
        let used = |id, keys: Option<&str>| Candidate {
            used_buttons: keys.map(str::to_string),
            marks_as_of_ms: Some(11 * HOUR),
            ..candidate(id, 9 * HOUR)
        };
        // Two grids with the same prompt: only one has U2 used.
        let decided = heuristic(
            child,
            Some(2),
            &[used(10, Some("upsample::1")), used(11, Some("upsample::2"))],
            6 * HOUR,
        );
        assert_eq!(decided.parent, Some(Snowflake(11)));
        // Buttons unknown: not excluded, so still ambiguous, never a guess.
        let unknown = heuristic(
            child,
            Some(2),
            &[used(10, None), used(11, Some("upsample::2"))],
            6 * HOUR,
        );
        assert_eq!(unknown.status, Status::Ambiguous);
        // Both used: ambiguous.
        let both = heuristic(
            child,
            Some(2),
            &[
                used(10, Some("upsample::2")),
                used(11, Some("upsample::2 upsample::3")),
            ],
            6 * HOUR,
        );
        assert_eq!(both.candidates, vec![Snowflake(10), Snowflake(11)]);
        // Marks of other buttons are not documented: they exclude nothing.
        let variation = Child {
            action: Action::Variation,
            ..child
        };
        let both = heuristic(
            variation,
            None,
            &[used(10, Some("upsample::1")), used(11, Some("variation::3"))],
            6 * HOUR,
        );
        assert_eq!(both.status, Status::Ambiguous);
        assert!(buttons_allow(
            Action::Zoom,
            None,
            Shape::SingleImage,
            Some(""),
            Some(11 * HOUR),
            child,
            None
        ));
        // Marks from before the result was posted say nothing: the edit may come later or be
        // missed, and excluding the true parent could make another candidate look certain.
        let early = Candidate {
            marks_as_of_ms: Some(9 * HOUR),
            ..used(10, Some(""))
        };
        let decided = heuristic(child, Some(2), &[early, used(11, Some("upsample::2"))], 6 * HOUR);
        assert_eq!(decided.status, Status::Ambiguous);
    }

    #[test]
    fn where_marks_are_trusted_an_upscale_needs_its_u_mark_seen_before_it() {
        // Issue 11 item 9: the U press marks the grid (a MESSAGE_UPDATE, `style: 1`) before
        // the result arrives; a grid whose U2 was not seen marked before the result did not
        // make it. Positions are message ids (where in the stream the mark was seen).
        let child = Child {
            id: Snowflake(100),
            posted_ms: 10 * HOUR,
            action: Action::Upscale,
        };
        let grid = |id, log: Option<&str>| Candidate {
            used_buttons: log.map(|_| "upsample::2".to_string()),
            marks: log.map(MarkLog::parse),
            ..candidate(id, 9 * HOUR)
        };
        // Three grids with the same prompt: U2 seen on 10 before the result, on 11 only
        // after it (another press), on 12 never.
        let decided = heuristic(
            child,
            Some(2),
            &[
                grid(10, Some("upsample::2@90")),
                grid(11, Some("upsample::2@101")),
                grid(12, Some("")),
            ],
            6 * HOUR,
        );
        assert_eq!(
            (decided.parent, decided.status),
            (Some(Snowflake(10)), Status::Linked)
        );
        // Two open marks: still ambiguous, never a guess.
        let two = heuristic(
            child,
            Some(2),
            &[grid(10, Some("upsample::2@90")), grid(11, Some("upsample::2@95"))],
            6 * HOUR,
        );
        assert_eq!(two.candidates, vec![Snowflake(10), Snowflake(11)]);
        // A mark of unknown time (history) excludes nothing; nor does an untrusted channel
        // (no log given).
        let unknown = heuristic(
            child,
            Some(2),
            &[grid(10, Some("upsample::2@90")), grid(11, Some("upsample::2@0"))],
            6 * HOUR,
        );
        assert_eq!(unknown.status, Status::Ambiguous);
        let untrusted = heuristic(
            child,
            Some(2),
            &[grid(10, Some("upsample::2@90")), grid(12, None)],
            6 * HOUR,
        );
        assert_eq!(untrusted.status, Status::Ambiguous);
        // A zoom of an image needs one of that image's zoom buttons (`MJ::Outpaint::50::1::{uuid}::SOLO`,
        // `MJ::CustomZoom::{uuid}`, section 4) seen marked before it, where the channel trusts
        // the marks of images' buttons; a U mark is not one.
        let zoom = Child {
            action: Action::Zoom,
            ..child
        };
        let single = |id, log: &str| Candidate {
            shape: Shape::SingleImage,
            marks: Some(MarkLog::parse(log)),
            ..candidate(id, 9 * HOUR)
        };
        let decided = heuristic(
            zoom,
            None,
            &[
                single(10, "Outpaint::50::1@90"),
                single(11, "upsample::2@90 pan_left::1@95"),
            ],
            6 * HOUR,
        );
        assert_eq!(
            (decided.parent, decided.status),
            (Some(Snowflake(10)), Status::Linked)
        );
        assert_eq!(
            heuristic(
                zoom,
                None,
                &[single(10, "Outpaint::75::1@90"), single(11, "CustomZoom@99")],
                6 * HOUR
            )
            .status,
            Status::Ambiguous
        );
    }

    #[test]
    fn where_v_marks_are_trusted_a_grid_variation_needs_a_v_seen_before_it() {
        // Issue 11 item 9: "a grid whose U2/V1 turns `style: 1`". `Variations (Strong) by` is
        // V on a grid or Vary (Strong) on an upscale (section 3): a grid needs a V seen marked,
        // an upscale its Vary (Strong).
        let child = Child {
            id: Snowflake(100),
            posted_ms: 10 * HOUR,
            action: Action::VariationStrong,
        };
        let grid = |id, log: &str| Candidate {
            marks: Some(MarkLog::parse(log)),
            ..candidate(id, 9 * HOUR)
        };
        let decided = heuristic(
            child,
            None,
            &[
                grid(10, "upsample::1@50 variation::4@90"),
                grid(11, "upsample::2@60 variation::1@101"),
                grid(12, "upsample::3@70"),
            ],
            6 * HOUR,
        );
        assert_eq!(
            (decided.parent, decided.status),
            (Some(Snowflake(10)), Status::Linked)
        );
        // An upscale with the same prompt whose Vary (Strong) was seen marked before it stays a
        // candidate (section 3: the same marker): ambiguous; one whose Vary (Strong) was not
        // marked is not.
        let upscale = |log: &str| Candidate {
            shape: Shape::SingleImage,
            marks: Some(MarkLog::parse(log)),
            ..candidate(13, 9 * HOUR)
        };
        let with_upscale = heuristic(
            child,
            None,
            &[
                grid(10, "variation::4@90"),
                grid(12, ""),
                upscale("high_variation::1@95"),
            ],
            6 * HOUR,
        );
        assert_eq!(with_upscale.candidates, vec![Snowflake(10), Snowflake(13)]);
        let unmarked_upscale = heuristic(
            child,
            None,
            &[grid(10, "variation::4@90"), upscale("low_variation::1@95")],
            6 * HOUR,
        );
        assert_eq!(unmarked_upscale.parent, Some(Snowflake(10)));
        // A reroll (its button's mark is not followed) is not narrowed.
        let reroll = Child {
            action: Action::Reroll,
            ..child
        };
        assert_eq!(
            heuristic(
                reroll,
                None,
                &[grid(10, "variation::4@90"), grid(12, "")],
                6 * HOUR
            )
            .status,
            Status::Ambiguous
        );
    }

    #[test]
    fn an_exact_link_takes_a_tile_whatever_came_first_a_fallback_link_only_for_later_results() {
        let child = Child {
            id: Snowflake(100),
            posted_ms: 10 * HOUR,
            action: Action::Upscale,
        };
        let held = |id: u64, takers: TileTakers| Candidate {
            tile_takers: takers,
            ..candidate(id, 9 * HOUR)
        };
        let free = candidate(11, 9 * HOUR + 5);
        // Another result linked exactly to grid 10's tile 2 (before or after this one): grid
        // 10 is out, grid 11 is the one left.
        let taken = held(
            10,
            TileTakers {
                exact: true,
                first_by_fallback: None,
            },
        );
        let decided = heuristic(child, Some(2), &[taken, free.clone()], 6 * HOUR);
        assert_eq!(decided.parent, Some(Snowflake(11)));
        // Held by the fallback for an earlier result: out. For a later one: still a candidate
        // (the later result's decision gives way to this one's, not the other way round).
        let earlier = held(
            10,
            TileTakers {
                exact: false,
                first_by_fallback: Some(Snowflake(90)),
            },
        );
        assert_eq!(
            heuristic(child, Some(2), &[earlier, free.clone()], 6 * HOUR).parent,
            Some(Snowflake(11))
        );
        let later = held(
            10,
            TileTakers {
                exact: false,
                first_by_fallback: Some(Snowflake(110)),
            },
        );
        let decided = heuristic(child, Some(2), &[later, free], 6 * HOUR);
        assert_eq!(decided.status, Status::Ambiguous);
        assert_eq!(decided.candidates, vec![Snowflake(10), Snowflake(11)]);
    }

    #[test]
    fn an_ambiguous_list_names_every_candidate_that_fits_within_the_horizon() {
        // Two grids in the window and the true parent 6 h 3 min back, past the window but
        // within the horizon (seen in a generated trace: the list left out the true parent).
        let child = Child {
            id: Snowflake(100),
            posted_ms: 30 * HOUR,
            action: Action::Upscale,
        };
        let decided = heuristic(
            child,
            Some(3),
            &[
                candidate(5, 30 * HOUR - 6 * HOUR - 180_000),
                candidate(10, 29 * HOUR),
                candidate(11, 29 * HOUR + 5),
                candidate(1, 30 * HOUR - 25 * HOUR),
            ],
            6 * HOUR,
        );
        assert_eq!(decided.status, Status::Ambiguous);
        assert_eq!(
            decided.candidates,
            vec![Snowflake(5), Snowflake(10), Snowflake(11)]
        );
    }
}
