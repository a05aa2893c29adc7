//! What applying one message changes, decided without I/O. The pipeline (the shell) reads the
//! context each step needs from the store, calls one function here, and writes the effects it
//! returns:
//!
//! 1. [`absorb`]: a snapshot of a message meets what is stored -> [`Absorbed`] (nothing new,
//!    keep it unseen, strip someone else's message, or save it parsed, with the link work and
//!    the settling it calls for);
//! 2. [`relink`]: a result's exact signal, its old link and (only when needed, see
//!    [`needs_fallback`]) the fallback's candidates -> [`Relinked`] (keep, or put a link and
//!    re-decide the siblings that the fallback had given the same tile);
//! 3. [`refallback`]: a stored result without an exact link, given fresh candidates;
//! 4. [`settle`]: a start/progress message and the finals that exist -> its [`Outcome`].
//!
//! Every rule here has a named unit test below; the store holds no rule of its own.

use crate::kinds::{self, Shape};
use crate::link::{self, Candidate, Child, Decision};
use crate::merge::Doc;
use crate::parse::{self, Action, BotIds, Kind, Parsed};
use crate::snowflake::Snowflake;
use crate::wire::Message;

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored or changed something.
    Applied,
    /// Exactly this event was processed before (RESUME redelivery, a repeated line).
    Duplicate,
    /// A new event that told nothing new (an edit already known from a reply's copy).
    Unchanged,
    /// Nothing to keep (not from Midjourney).
    Ignored,
}

/// How a snapshot of a message reached the pipeline; only updates leave a message unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A create, or a message from history.
    Create,
    /// A (often partial) update.
    Update,
    /// The copy of a parent that a reply carries.
    Reference,
}

/// What the store holds of a message, as [`absorb`] needs it.
#[derive(Debug, Clone)]
pub struct Known {
    pub doc: Doc,
    pub seen: bool,
    /// The kind it is stored as (`pending` while unseen).
    pub kind: String,
    /// A deletion of it was seen.
    pub deleted: bool,
}

/// The link of one result message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub child_id: Snowflake,
    pub action: Action,
    pub tile: Option<u8>,
    pub decision: Decision,
}

/// What to do with a result's link after the message was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkWork {
    /// Nothing: not a result, and never was one.
    None,
    /// It was stored as something else before and is not a result now: drop its link.
    Drop,
    /// Decide (or re-decide) its link.
    Relink {
        child: Child,
        tile: Option<u8>,
        exact: Option<Decision>,
    },
}

/// A message to save, parsed, and what saving it calls for.
#[derive(Debug, Clone)]
pub struct Save {
    pub doc: Doc,
    pub parsed: Parsed,
    /// Nothing was stored for this message before (not even an unseen row).
    pub is_new: bool,
    pub link: LinkWork,
    /// It can be a parent (a grid or a single image): later results with its prompt may
    /// link to it now, and it may be the final of a start waiting for one.
    pub may_be_parent: bool,
    /// A start/progress message whose deletion was seen before: settle it now.
    pub settle: bool,
    /// The start/progress message this final completes, known exactly: the final replies
    /// to it (2026, see [`resolve_reply`]).
    pub completes: Option<Snowflake>,
    /// It was not seen before (nothing stored, or only early updates): the messages stored
    /// earlier that reply to it may be something else now that it is known (see
    /// [`reconsider`]).
    pub first_seen: bool,
    /// Its attachments are not yet stored as they are: it is seen for the first time, or the
    /// snapshot changed them. (An edit of a seen message that leaves them as they were, such
    /// as a progress message's text or a grid's used buttons, writes none.)
    pub attachments_changed: bool,
}

/// What a snapshot of a message changes.
#[derive(Debug, Clone)]
pub enum Absorbed {
    /// Nothing new (an edit already known, a duplicate copy).
    Unchanged,
    /// Only updates so far: keep them (not lost) as an unseen row with no job.
    KeepUnseen(Doc),
    /// Not from Midjourney and never stored: nothing to keep.
    Ignore,
    /// Not from Midjourney, but an early update was stored: keep only its id and drop any
    /// link it had.
    Strip(Doc),
    /// Save it parsed.
    Save(Box<Save>),
}

/// Merges `incoming` into what is stored (`known`) and decides what that changes.
pub fn absorb(known: Option<Known>, incoming: &Message, source: Source, bots: &BotIds) -> Absorbed {
    let (doc, was_seen, changed, stored_as, was_deleted, attachments_changed) = match known {
        Some(known) => {
            let mut doc = known.doc;
            let attachments_before = doc.message.attachments.clone();
            let changed = doc.merge(incoming);
            let attachments_changed = doc.message.attachments != attachments_before;
            (
                doc,
                known.seen,
                changed,
                Some(known.kind),
                known.deleted,
                attachments_changed,
            )
        }
        None => (Doc::new(incoming.clone()), false, true, None, false, true),
    };
    let seen = was_seen || source != Source::Update;
    if !changed && seen == was_seen {
        return Absorbed::Unchanged;
    }
    if !seen {
        return Absorbed::KeepUnseen(doc);
    }
    let mut absorbed = saved(doc, stored_as, was_deleted, !was_seen, bots);
    if let Absorbed::Save(save) = &mut absorbed {
        save.attachments_changed |= attachments_changed;
    }
    absorbed
}

/// A stored reply decided while the message it replies to was not known (`known`, as
/// stored): decided again, now that it is. `None` when nothing about it depends on that
/// message (see [`reply_question`]); else its save, to go through [`resolve_reply`] and be
/// stored like a new snapshot. Replies and their targets arrive in any order (a backfill
/// reads history newest first): the same messages give the same rows either way.
pub fn reconsider(known: Known, bots: &BotIds) -> Option<Save> {
    if !known.seen {
        return None;
    }
    match saved(known.doc, Some(known.kind), known.deleted, false, bots) {
        Absorbed::Save(save) if reply_question(&save).is_some() => Some(*save),
        _ => None,
    }
}

/// Parses a seen message's merged snapshot and decides what saving it calls for.
fn saved(
    doc: Doc,
    stored_as: Option<String>,
    was_deleted: bool,
    first_seen: bool,
    bots: &BotIds,
) -> Absorbed {
    let was_stored = stored_as.is_some();
    let parsed = parse::parse(&doc.message, bots);
    if parsed.kind == Kind::NotMidjourney {
        if !was_stored {
            return Absorbed::Ignore;
        }
        return Absorbed::Strip(Doc::new(Message {
            id: doc.message.id,
            channel_id: doc.message.channel_id,
            ..Default::default()
        }));
    }
    let is_new = !was_stored;
    let link = match parsed.kind {
        Kind::Result(action) => LinkWork::Relink {
            child: Child {
                id: doc.message.id,
                posted_ms: doc.message.posted_ms(),
                action,
            },
            tile: parsed.tile,
            exact: link::exact_parent(&doc.message),
        },
        // Only a message stored as a result can have a link to drop.
        _ if stored_as
            .as_deref()
            .is_some_and(|kind| Action::from_name(kind).is_some()) =>
        {
            LinkWork::Drop
        }
        _ => LinkWork::None,
    };
    let shape = kinds::shape(&parsed.kind);
    // Whether the archive keeps its images is stored with each attachment: a kind that
    // changes it rewrites them.
    let archived_changed = stored_as
        .as_deref()
        .is_some_and(|kind| kinds::shape_of_name(kind).is_archived() != shape.is_archived());
    Absorbed::Save(Box::new(Save {
        may_be_parent: shape.is_result(),
        completes: None,
        first_seen,
        // Only a message seen before has its attachments stored; [`absorb`] adds a change.
        attachments_changed: first_seen || archived_changed,
        settle: was_deleted && matches!(parsed.kind, Kind::Progress { .. }),
        doc,
        parsed,
        is_new,
        link,
    }))
}

/// What the store knows of the message a new one replies to.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTarget<'a> {
    /// Its stored kind (`progress`, `imagine`, `upscale`, ...).
    pub kind: &'a str,
    pub job_uuid: Option<&'a str>,
    pub prompt_norm: Option<&'a str>,
    pub user_id: Option<Snowflake>,
}

/// The message whose kind decides what `save` is, when it matters: a marker-less grid or
/// video replying to a message is a child of that message (a reroll, an animate) or, since
/// 2026, the final of its own start; a bare `Upscaled by` is a tile upscale of a grid or the
/// V7 upscaler on a single image; an mp4 is a clip of a video grid or an Extend of a clip.
pub fn reply_question(save: &Save) -> Option<Snowflake> {
    let target = save.parsed.reply_to?;
    let asks = match save.parsed.kind {
        Kind::Result(Action::Reroll | Action::Animate) => true,
        Kind::Result(action)
        | Kind::Progress {
            action: Some(action), ..
        } => action_depends_on_parent(action, save.parsed.tile),
        _ => false,
    };
    asks.then_some(target)
}

/// Whether the parent's shape can change what `action` (with `tile`) is (see [`refine`]).
fn action_depends_on_parent(action: Action, tile: Option<u8>) -> bool {
    match action {
        Action::Upscale => tile.is_none(),
        Action::VideoClip | Action::VariationStrong | Action::VariationSubtle => true,
        _ => false,
    }
}

/// What an action really is once its parent's shape is known (`None`: unknown or no change):
/// `Upscaled by` on a single image is the V7 upscaler; an mp4 replying to a clip is an
/// Extend; `Variations (Strong|Subtle) by` on a grid is a V button (wire notes, section 3:
/// only the parent tells them apart).
pub fn refine(action: Action, tile: Option<u8>, parent: Option<Shape>) -> Option<Action> {
    let parent = parent?;
    match action {
        Action::Upscale if tile.is_none() && parent == Shape::SingleImage => Some(Action::UpscaleV7),
        Action::VideoClip if parent == Shape::VideoClip => Some(Action::VideoExtend),
        Action::VariationStrong | Action::VariationSubtle if parent.is_grid() => Some(Action::Variation),
        _ => None,
    }
}

/// Decides what a reply is from what is known of the message it replies to (`None`: nothing
/// is stored of it). Section 9 of the wire notes:
/// - a grid or video replying to a start/progress message is that job's final: a root
///   (`imagine`, `blend`, or `video` for a video job), and the start is completed by it when
///   both are the same job (same job UUID; else same prompt and user);
/// - replying to a result it stays that result's child (reroll, animate);
/// - replying to nothing known, a message that answers an application command (its
///   `interaction_metadata` names no pressed message) is a root; anything else stays a child;
/// - otherwise the action is [`refine`]d by the parent's shape, for a result and for the
///   start of one alike.
pub fn resolve_reply(save: &mut Save, target: Option<ReplyTarget<'_>>) {
    let target_shape = target.map(|target| kinds::shape_of_name(target.kind));
    let target_is_start = target.is_some_and(|target| target.kind == "progress");
    match save.parsed.kind {
        Kind::Result(action @ (Action::Reroll | Action::Animate)) => {
            let own_final = match target {
                Some(_) => target_is_start,
                None => answers_a_command(&save.doc.message),
            };
            if !own_final {
                return;
            }
            let origin = if action == Action::Animate {
                parse::Origin::Video
            } else {
                save.parsed
                    .prompt
                    .as_ref()
                    .map_or(parse::Origin::Imagine, |prompt| {
                        parse::origin_of(&save.doc.message, prompt)
                    })
            };
            save.parsed.kind = Kind::Grid(origin);
            save.link = if save.is_new {
                LinkWork::None
            } else {
                LinkWork::Drop
            };
            save.may_be_parent = true;
            save.completes = target
                .filter(|target| same_job(&save.parsed, target))
                .and(save.parsed.reply_to);
        }
        Kind::Result(action) => {
            if let Some(refined) = refine(action, save.parsed.tile, target_shape) {
                set_action(save, refined);
                if refined == Action::VideoExtend {
                    // A longer clip of a clip: the cell belongs to the clip it extends.
                    save.parsed.tile = None;
                    if let LinkWork::Relink { tile, .. } = &mut save.link {
                        *tile = None;
                    }
                }
            }
        }
        Kind::Progress {
            stage,
            action: Some(action),
        } => {
            if let Some(refined) = refine(action, save.parsed.tile, target_shape) {
                save.parsed.kind = Kind::Progress {
                    stage,
                    action: Some(refined),
                };
            }
        }
        _ => {}
    }
}

fn set_action(save: &mut Save, action: Action) {
    save.parsed.kind = Kind::Result(action);
    if let LinkWork::Relink { child, .. } = &mut save.link {
        child.action = action;
    }
}

/// Whether a final and the start it replies to are the same job.
fn same_job(parsed: &Parsed, start: &ReplyTarget<'_>) -> bool {
    match (parsed.job_uuid.as_deref(), start.job_uuid) {
        (Some(own), Some(theirs)) => own == theirs,
        _ => {
            let prompt = parsed.normalized_prompt();
            prompt.is_some()
                && prompt.as_deref() == start.prompt_norm
                && parsed.user_id.is_some()
                && parsed.user_id == start.user_id
        }
    }
}

/// Discord's `interaction_metadata` of a message that answers an application command
/// (`/imagine`) names no pressed message; one that answers a button does.
fn answers_a_command(message: &Message) -> bool {
    message.interaction_metadata.as_ref().is_some_and(|meta| {
        meta.interacted_message_id.is_none() && meta.triggering_interaction_metadata.is_none()
    })
}

/// Whether [`relink`] needs the fallback's candidates: only when there is no exact signal
/// and the old link (if any) is neither exact nor manual. (A message stored for the first
/// time has no old link: the pipeline does not look for one.)
pub fn needs_fallback(exact: Option<&Decision>, old: Option<&Link>) -> bool {
    exact.is_none() && !old.is_some_and(|old| old.decision.is_settled())
}

/// What deciding a result's link changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relinked {
    /// The stored link stands.
    Keep,
    /// Store `link`; the results whose candidates include a parent and tile that `link` takes
    /// or gives back must be re-decided (`redecide`, see [`tiles_to_redecide`]).
    Put {
        link: Link,
        redecide: Vec<(Snowflake, u8)>,
    },
}

/// The parent and tile a link holds, and how (see [`link::TileTakers`]): only a linked result
/// with a tile holds one. A manual link holds its tile as an exact one does: a person said
/// which button made this result, a fact the fallback must not guess against.
fn holding(link: &Link) -> Option<(Snowflake, u8, bool)> {
    match (link.decision.status, link.decision.parent, link.tile) {
        (link::Status::Linked, Some(parent), Some(tile)) => Some((parent, tile, link.decision.is_settled())),
        _ => None,
    }
}

/// When a result's link goes from `old` to `new`, the parents and tiles whose holder changed:
/// the fallback of the other results with that parent among their candidates may change
/// (a tile taken or given back). Empty when the link holds the same tile the same way.
pub fn tiles_to_redecide(old: Option<&Link>, new: &Link) -> Vec<(Snowflake, u8)> {
    let (before, after) = (old.and_then(holding), holding(new));
    if before == after {
        return Vec::new();
    }
    let mut tiles: Vec<(Snowflake, u8)> = before
        .into_iter()
        .chain(after)
        .map(|(parent, tile, _)| (parent, tile))
        .collect();
    tiles.dedup();
    tiles
}

/// Decides a result's link. An exact signal wins; the fallback never replaces an exact or a
/// manual link;
/// a new action or tile is always stored. `candidates` are read only when
/// [`needs_fallback`] says so (`None` otherwise).
pub fn relink(
    child: Child,
    tile: Option<u8>,
    exact: Option<Decision>,
    old: Option<&Link>,
    candidates: Option<&[Candidate]>,
    window_ms: i64,
) -> Relinked {
    let decision = match exact {
        Some(decision) => decision,
        None => match old {
            Some(old) if old.decision.is_settled() => return Relinked::Keep,
            _ => link::heuristic(child, tile, candidates.unwrap_or_default(), window_ms),
        },
    };
    let new = Link {
        child_id: child.id,
        action: child.action,
        tile,
        decision,
    };
    let store_it = match old {
        None => true,
        Some(old) => {
            old.action != new.action || old.tile != new.tile || link::supersedes(&new.decision, &old.decision)
        }
    };
    if !store_it {
        return Relinked::Keep;
    }
    let redecide = tiles_to_redecide(old, &new);
    Relinked::Put { link: new, redecide }
}

/// Re-runs the fallback for a stored result without an exact link; `Some` when its link
/// changes. An exact or a manual link is never touched.
pub fn refallback(old: &Link, posted_ms: i64, candidates: &[Candidate], window_ms: i64) -> Option<Link> {
    if old.decision.is_settled() {
        return None;
    }
    let child = Child {
        id: old.child_id,
        posted_ms,
        action: old.action,
    };
    let decision = link::heuristic(child, old.tile, candidates, window_ms);
    (decision != old.decision).then(|| Link {
        decision,
        ..old.clone()
    })
}

/// `mjlink link set CHILD PARENT`: a person settles a result's parent. Refused (one sentence)
/// when the child is not a stored result, when it is linked by an exact signal (a fact a
/// person does not override), or when the parent's shape (`None`: not stored) cannot carry
/// the child's action. `Ok` is what to store, as [`relink`] says it.
pub fn set_manual(
    old: Option<&Link>,
    parent: Snowflake,
    parent_shape: Option<Shape>,
) -> Result<Relinked, String> {
    let Some(old) = old else {
        return Err("it is not a result mjlink has linked (a grid has no parent)".to_string());
    };
    let child = old.child_id;
    if old.decision.is_exact() {
        let signal = old.decision.signal.map_or("", |signal| signal.as_str());
        let parent_now = old.decision.parent.map_or_else(String::new, |p| p.to_string());
        return Err(format!(
            "message {child} is linked to {parent_now} by its {signal} signal from Discord, which a manual link never overrides"
        ));
    }
    if parent == child {
        return Err(format!("message {child} cannot be its own parent"));
    }
    let Some(shape) = parent_shape else {
        return Err(format!(
            "message {parent} is not a stored message that can be a parent"
        ));
    };
    if !kinds::parent_fits(old.action, old.tile, shape) {
        return Err(format!(
            "message {parent} has no button that makes a `{}` result",
            old.action.as_str()
        ));
    }
    let new = Link {
        decision: Decision {
            parent: Some(parent),
            signal: Some(link::Signal::Manual),
            status: link::Status::Linked,
            candidates: Vec::new(),
        },
        ..old.clone()
    };
    if new == *old {
        return Ok(Relinked::Keep);
    }
    let redecide = tiles_to_redecide(Some(old), &new);
    Ok(Relinked::Put { link: new, redecide })
}

/// `mjlink link clear CHILD`: removes a manual link (only a manual one), leaving the result
/// unresolved for the fallback to decide again ([`refallback`]).
pub fn clear_manual(old: Option<&Link>) -> Result<Link, String> {
    match old {
        Some(old) if old.decision.is_manual() => Ok(Link {
            decision: Decision {
                parent: None,
                signal: None,
                status: link::Status::Unresolved,
                candidates: Vec::new(),
            },
            ..old.clone()
        }),
        Some(old) => Err(format!("message {} has no manual link to clear", old.child_id)),
        None => Err("it is not a result mjlink has linked".to_string()),
    }
}

/// The outcome of a start/progress message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No final yet, and not deleted.
    Running,
    /// Its final is known for certain.
    Completed(Snowflake),
    /// Deleted with no possible final: silent moderation.
    Failed,
    /// Deleted, and the finals that could be its own cannot be told apart.
    Unknown,
}

impl Outcome {
    /// The name stored in `messages.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Completed(_) => "completed",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }

    pub fn final_id(self) -> Option<Snowflake> {
        match self {
            Outcome::Completed(id) => Some(id),
            _ => None,
        }
    }

    /// Every stored name, for SQL lists and reports.
    pub const NAMES: [&'static str; 4] = ["running", "completed", "failed", "unknown"];
}

/// The outcome a message is stored with when first saved: `Running` for a start/progress
/// message (until [`settle`] says otherwise), none for any other kind.
pub fn initial_outcome(kind: &Kind) -> Option<Outcome> {
    matches!(kind, Kind::Progress { .. }).then_some(Outcome::Running)
}

/// What settling needs to know about the start/progress message itself.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub id: Snowflake,
    /// The action under way (`None` for /imagine and /blend, whose final is a root grid).
    pub action: Option<&'a str>,
    /// Its job UUID is known (from its buttons or preview): finals found by it are certain.
    pub has_job_uuid: bool,
    pub deleted: bool,
    /// It has no action and replies to another message: the start of a button's result
    /// whose marker has not appeared yet.
    pub child_start: bool,
    /// A video job's start (Animate, or a prompt with `--video`/`--motion`): its final's
    /// prompt is rewritten (`--raw`, `--aspect` added), so a final found by prompt is never
    /// all there is.
    pub video: bool,
    /// A result of another kind than its finals was posted in its scope after it: a start
    /// without a marker may have been that button's (section 9), so none of its own finals
    /// existing does not prove moderation.
    pub results_after: bool,
}

/// Whether a stored message of kind `kind` can be the final of `start`: by job UUID any
/// result or grid; by prompt, a result of the start's action, or a root grid for /imagine.
pub fn is_final_kind(start: &Start<'_>, kind: &str, found_by_job: bool) -> bool {
    if found_by_job {
        return kinds::shape_of_name(kind) != Shape::NotAResult;
    }
    match start.action {
        Some(action) => kind == action,
        // A start without a marker that replies to a result (a Zoom or Pan before its first
        // percentage edit, section 9) ends in a result; one stripped of its reference looks
        // like a root, so any result counts (the rivals keep it honest).
        None if start.child_start => kinds::shape_of_name(kind).is_result(),
        None => kinds::is_root_name(kind),
    }
}

/// Another start waiting in the same scope when a final found by prompt was posted.
#[derive(Debug, Clone, Copy)]
pub struct Rival<'a> {
    pub id: Snowflake,
    pub action: Option<&'a str>,
}

/// Whether [`settle`] needs the rivals: only for a single final found by prompt.
pub fn needs_rivals(start: &Start<'_>, finals: &[Snowflake]) -> bool {
    finals.len() == 1 && !start.has_job_uuid
}

/// Decides the outcome of a start/progress message from the finals that exist. With a job
/// UUID the final is certain. Without one, a single final found by prompt counts only when
/// no other start of the same action was waiting in its scope (`rivals`, read when
/// [`needs_rivals`]). A deleted start with no possible final failed (silent moderation);
/// with finals that cannot be told apart it is `Unknown`: never a guess.
pub fn settle(start: &Start<'_>, finals: &[Snowflake], rivals: &[Rival<'_>]) -> Outcome {
    let certain = !needs_rivals(start, finals)
        || rivals
            .iter()
            .all(|rival| rival.id == start.id || rival.action != start.action);
    match (finals, start.deleted) {
        ([only], _) if certain => Outcome::Completed(*only),
        // Its final cannot be found by prompt (rewritten): not a proof of moderation.
        ([], true) if start.video && !start.has_job_uuid => Outcome::Unknown,
        ([], true) if start.action.is_none() && !start.has_job_uuid && start.results_after => {
            Outcome::Unknown
        }
        ([], true) => Outcome::Failed,
        (_, true) => Outcome::Unknown,
        (_, false) => Outcome::Running,
    }
}

/// Whether a start is a video job's: an Animate, or a prompt with `--video` or `--motion`
/// among its parameters (section 9: a native video job's start; its final may not echo the
/// prompt, see [`settle`]). `action` and `prompt_norm` as stored.
pub fn is_video_start(action: Option<&str>, prompt_norm: Option<&str>) -> bool {
    // A parameter's name is matched without regard to ASCII case: a prompt without either
    // word anywhere has neither parameter (and most prompts need no split then).
    let mentions = |word: &[u8]| {
        prompt_norm.is_some_and(|prompt| {
            prompt
                .as_bytes()
                .windows(word.len())
                .any(|window| window.eq_ignore_ascii_case(word))
        })
    };
    action == Some(Action::Animate.as_str())
        || ((mentions(b"video") || mentions(b"motion"))
            && prompt_norm.is_some_and(|prompt| {
                let params = crate::prompt::split(prompt).params;
                params.contains_key("video") || params.contains_key("motion")
            }))
}

/// Whether another start appearing near `start` can change its outcome: only a start without
/// a job UUID has its final found by prompt, where rivals count (see [`settle`]).
pub fn rivals_matter(start: &Start<'_>) -> bool {
    !start.has_job_uuid
}

/// Whether a new parent should settle a start waiting for it now: one that was deleted (its
/// outcome may have been `failed` or `unknown` for want of this final) or whose job UUID is
/// known (the final is certain).
pub fn settles_on_new_final(start: &Start<'_>) -> bool {
    start.deleted || start.has_job_uuid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Signal, Status};

    const WINDOW: i64 = 6 * 3_600_000;

    fn grid(id: u64, posted_ms: i64) -> Candidate {
        Candidate {
            id: Snowflake(id),
            posted_ms,
            shape: Shape::RootGrid,
            tile_takers: Default::default(),
            used_buttons: None,
            marks_as_of_ms: None,
            marks: None,
        }
    }

    fn child(id: u64, posted_ms: i64, action: Action) -> Child {
        Child {
            id: Snowflake(id),
            posted_ms,
            action,
        }
    }

    fn heuristic_link(child_id: u64, parent: u64, tile: Option<u8>) -> Link {
        Link {
            child_id: Snowflake(child_id),
            action: Action::Upscale,
            tile,
            decision: Decision {
                parent: Some(Snowflake(parent)),
                signal: Some(Signal::Heuristic),
                status: Status::Linked,
                candidates: Vec::new(),
            },
        }
    }

    fn exact_link(child_id: u64, parent: u64, tile: Option<u8>) -> Link {
        Link {
            decision: Decision::exact(Snowflake(parent), Signal::Reference),
            ..heuristic_link(child_id, parent, tile)
        }
    }

    #[test]
    fn relink_exact_signal_wins_and_redecides_the_tile_siblings() {
        let old = heuristic_link(10, 1, Some(2));
        let exact = Decision::exact(Snowflake(2), Signal::Reference);
        assert!(!needs_fallback(Some(&exact), Some(&old)));
        let relinked = relink(
            child(10, 5_000, Action::Upscale),
            Some(2),
            Some(exact.clone()),
            Some(&old),
            None,
            WINDOW,
        );
        assert_eq!(
            relinked,
            Relinked::Put {
                link: Link {
                    decision: exact,
                    ..old
                },
                // The heuristic had tile 2 of grid 1; the exact link takes tile 2 of grid 2.
                redecide: vec![(Snowflake(1), 2), (Snowflake(2), 2)],
            }
        );
    }

    #[test]
    fn a_start_is_a_video_jobs_by_its_action_or_its_parameters_not_its_words() {
        assert!(is_video_start(Some("animate"), None));
        assert!(is_video_start(None, Some("a cat --video 1")));
        assert!(is_video_start(None, Some("a cat --motion low --raw")));
        assert!(!is_video_start(None, Some("a cat --v 7")));
        // Words of the prompt, not parameters.
        assert!(!is_video_start(None, Some("a music--video poster")));
        assert!(!is_video_start(Some("upscale"), Some("slow--motion replay")));
        // Names in any case, as the parameter parser reads them.
        assert!(is_video_start(None, Some("a cat --VIDEO 1")));
        assert!(is_video_start(None, Some("a cat —Motion high")));
        assert!(!is_video_start(None, Some("a cat --v 7 --ar 16:9")));
    }

    #[test]
    fn tiles_are_redecided_only_when_their_holder_changes() {
        let linked = heuristic_link(10, 7, Some(2));
        // Same tile, held the same way: nothing to re-decide.
        assert!(tiles_to_redecide(Some(&linked), &linked.clone()).is_empty());
        // Held by the fallback, then exactly: a fact now, for results before it too.
        let exact = exact_link(10, 7, Some(2));
        assert_eq!(tiles_to_redecide(Some(&linked), &exact), vec![(Snowflake(7), 2)]);
        // Linked, then ambiguous: the tile is given back.
        let ambiguous = Link {
            decision: Decision {
                parent: None,
                signal: None,
                status: link::Status::Ambiguous,
                candidates: vec![Snowflake(7), Snowflake(8)],
            },
            ..linked.clone()
        };
        assert_eq!(
            tiles_to_redecide(Some(&linked), &ambiguous),
            vec![(Snowflake(7), 2)]
        );
        // Ambiguous with another list: no tile held before or after.
        let other = Link {
            decision: Decision {
                candidates: vec![Snowflake(7)],
                ..ambiguous.decision.clone()
            },
            ..ambiguous.clone()
        };
        assert!(tiles_to_redecide(Some(&ambiguous), &other).is_empty());
        // A new result linked: its tile.
        assert_eq!(tiles_to_redecide(None, &linked), vec![(Snowflake(7), 2)]);
    }

    #[test]
    fn relink_heuristic_never_replaces_an_exact_link() {
        let old = exact_link(10, 1, Some(2));
        assert!(!needs_fallback(None, Some(&old)));
        let candidates = [grid(7, 1_000)];
        let relinked = relink(
            child(10, 5_000, Action::Upscale),
            Some(2),
            None,
            Some(&old),
            Some(&candidates),
            WINDOW,
        );
        assert_eq!(relinked, Relinked::Keep);
    }

    #[test]
    fn relink_same_exact_link_again_is_kept() {
        let old = exact_link(10, 1, Some(2));
        let exact = Decision::exact(Snowflake(1), Signal::Reference);
        let relinked = relink(
            child(10, 5_000, Action::Upscale),
            Some(2),
            Some(exact),
            Some(&old),
            None,
            WINDOW,
        );
        assert_eq!(relinked, Relinked::Keep);
    }

    #[test]
    fn relink_a_new_tile_is_stored_even_with_the_same_decision() {
        let old = heuristic_link(10, 7, Some(1));
        assert!(needs_fallback(None, Some(&old)));
        let candidates = [grid(7, 1_000)];
        let relinked = relink(
            child(10, 5_000, Action::Upscale),
            Some(3),
            None,
            Some(&old),
            Some(&candidates),
            WINDOW,
        );
        match relinked {
            Relinked::Put { link, redecide } => {
                assert_eq!(link.tile, Some(3));
                assert_eq!(link.decision.parent, Some(Snowflake(7)));
                // The fallback gave tile 1 back and took tile 3: results with grid 7 among
                // their candidates for either tile are re-decided.
                assert_eq!(redecide, vec![(Snowflake(7), 1), (Snowflake(7), 3)]);
            }
            Relinked::Keep => panic!("a new tile must be stored"),
        }
    }

    #[test]
    fn relink_without_candidates_is_unresolved_and_with_two_is_ambiguous() {
        let none = relink(
            child(10, 5_000, Action::Upscale),
            Some(1),
            None,
            None,
            Some(&[]),
            WINDOW,
        );
        let Relinked::Put { link, .. } = none else {
            panic!("first link is stored")
        };
        assert_eq!(link.decision.status, Status::Unresolved);
        assert_eq!(link.decision.parent, None);

        let two = [grid(7, 1_000), grid(8, 2_000)];
        let Relinked::Put { link, .. } = relink(
            child(10, 5_000, Action::Upscale),
            Some(1),
            None,
            None,
            Some(&two),
            WINDOW,
        ) else {
            panic!("first link is stored")
        };
        assert_eq!(link.decision.status, Status::Ambiguous);
        assert_eq!(link.decision.candidates, vec![Snowflake(7), Snowflake(8)]);
        assert_eq!(link.decision.parent, None);
    }

    #[test]
    fn refallback_leaves_exact_links_alone_and_reports_only_changes() {
        let exact = exact_link(10, 1, Some(2));
        assert_eq!(refallback(&exact, 5_000, &[grid(7, 1_000)], WINDOW), None);

        let heuristic = heuristic_link(10, 7, Some(2));
        // Same single candidate: nothing changes.
        assert_eq!(refallback(&heuristic, 5_000, &[grid(7, 1_000)], WINDOW), None);
        // A second grid with the same prompt appears: now ambiguous, never a guess.
        let changed = refallback(&heuristic, 5_000, &[grid(7, 1_000), grid(8, 2_000)], WINDOW).unwrap();
        assert_eq!(changed.decision.status, Status::Ambiguous);
        assert_eq!(changed.tile, Some(2));
    }

    fn manual_link(child_id: u64, parent: u64, tile: Option<u8>) -> Link {
        Link {
            decision: Decision {
                signal: Some(Signal::Manual),
                ..heuristic_link(child_id, parent, tile).decision
            },
            ..heuristic_link(child_id, parent, tile)
        }
    }

    #[test]
    fn a_manual_link_settles_a_guess_and_never_an_exact_link() {
        let ambiguous = Link {
            decision: Decision {
                parent: None,
                signal: None,
                status: Status::Ambiguous,
                candidates: vec![Snowflake(7), Snowflake(8)],
            },
            ..heuristic_link(10, 7, Some(2))
        };
        let Ok(Relinked::Put { link, redecide }) =
            set_manual(Some(&ambiguous), Snowflake(8), Some(Shape::RootGrid))
        else {
            panic!("a manual link settles an ambiguous one")
        };
        assert_eq!(link, manual_link(10, 8, Some(2)));
        // It takes tile 2 of grid 8: the fallback of that tile's other results runs again.
        assert_eq!(redecide, vec![(Snowflake(8), 2)]);
        // Over a heuristic link, too; the same manual link again changes nothing.
        assert!(matches!(
            set_manual(
                Some(&heuristic_link(10, 7, Some(2))),
                Snowflake(8),
                Some(Shape::RootGrid)
            ),
            Ok(Relinked::Put { .. })
        ));
        assert_eq!(
            set_manual(Some(&link), Snowflake(8), Some(Shape::RootGrid)),
            Ok(Relinked::Keep)
        );
        // Refused: an exact link, an unknown parent, a parent without the tile's button, a
        // message with no link.
        let refused = set_manual(
            Some(&exact_link(10, 1, Some(2))),
            Snowflake(8),
            Some(Shape::RootGrid),
        )
        .unwrap_err();
        assert!(refused.contains("never overrides"), "{refused}");
        assert!(set_manual(Some(&ambiguous), Snowflake(8), None).is_err());
        assert!(set_manual(Some(&ambiguous), Snowflake(8), Some(Shape::SingleImage)).is_err());
        assert!(set_manual(None, Snowflake(8), Some(Shape::RootGrid)).is_err());
    }

    #[test]
    fn the_fallback_never_replaces_a_manual_link_but_an_exact_signal_does() {
        let manual = manual_link(10, 8, Some(2));
        assert!(!needs_fallback(None, Some(&manual)));
        assert_eq!(
            relink(
                child(10, 5_000, Action::Upscale),
                Some(2),
                None,
                Some(&manual),
                Some(&[grid(7, 4_000)]),
                WINDOW
            ),
            Relinked::Keep
        );
        assert_eq!(refallback(&manual, 5_000, &[grid(7, 4_000)], WINDOW), None);
        let exact = Decision::exact(Snowflake(7), Signal::Interaction);
        let Relinked::Put { link, .. } = relink(
            child(10, 5_000, Action::Upscale),
            Some(2),
            Some(exact.clone()),
            Some(&manual),
            None,
            WINDOW,
        ) else {
            panic!("an exact signal replaces a manual link")
        };
        assert_eq!(link.decision, exact);
        // A manual link holds its tile as an exact one does.
        assert_eq!(
            tiles_to_redecide(Some(&heuristic_link(10, 8, Some(2))), &manual),
            vec![(Snowflake(8), 2)]
        );
    }

    #[test]
    fn clearing_removes_only_a_manual_link() {
        let cleared = clear_manual(Some(&manual_link(10, 8, Some(2)))).unwrap();
        assert_eq!(cleared.decision.status, Status::Unresolved);
        assert_eq!(cleared.decision.parent, None);
        assert_eq!(cleared.tile, Some(2));
        // Now the fallback decides again.
        assert!(refallback(&cleared, 5_000, &[grid(8, 4_000)], WINDOW).is_some());
        assert!(clear_manual(Some(&heuristic_link(10, 8, Some(2)))).is_err());
        assert!(clear_manual(Some(&exact_link(10, 8, Some(2)))).is_err());
        assert!(clear_manual(None).is_err());
    }

    fn start(deleted: bool, has_job_uuid: bool, action: Option<&str>) -> Start<'_> {
        Start {
            id: Snowflake(1),
            action,
            has_job_uuid,
            deleted,
            child_start: false,
            video: false,
            results_after: false,
        }
    }

    #[test]
    fn settle_one_final_by_job_uuid_is_completed() {
        let by_job = start(false, true, None);
        assert!(!needs_rivals(&by_job, &[Snowflake(5)]));
        assert_eq!(
            settle(&by_job, &[Snowflake(5)], &[]),
            Outcome::Completed(Snowflake(5))
        );
        // Deleted after its grid arrived (Midjourney deletes the start): still completed.
        assert_eq!(
            settle(&start(true, true, None), &[Snowflake(5)], &[]),
            Outcome::Completed(Snowflake(5))
        );
    }

    #[test]
    fn settle_deleted_without_final_failed_silent_moderation() {
        assert_eq!(settle(&start(true, false, None), &[], &[]), Outcome::Failed);
        assert_eq!(settle(&start(true, true, None), &[], &[]), Outcome::Failed);
        assert_eq!(Outcome::Failed.as_str(), "failed");
    }

    #[test]
    fn settle_a_video_start_without_its_job_is_never_called_moderated() {
        // Section 9: the video grid's prompt is rewritten, so finding no final by prompt
        // does not mean there is none.
        let video = Start {
            video: true,
            action: Some("animate"),
            ..start(true, false, None)
        };
        assert_eq!(settle(&video, &[], &[]), Outcome::Unknown);
        let with_job = Start {
            has_job_uuid: true,
            ..video
        };
        assert_eq!(settle(&with_job, &[], &[]), Outcome::Failed);
        // A marker-less start that lost its reference looks like /imagine's; a Pan with its
        // prompt after it may have been its final.
        let maybe_a_button = Start {
            results_after: true,
            ..start(true, false, None)
        };
        assert_eq!(settle(&maybe_a_button, &[], &[]), Outcome::Unknown);
    }

    #[test]
    fn settle_finals_that_cannot_be_told_apart_are_never_a_guess() {
        let finals = [Snowflake(5), Snowflake(6)];
        assert_eq!(settle(&start(true, false, None), &finals, &[]), Outcome::Unknown);
        assert_eq!(settle(&start(false, false, None), &finals, &[]), Outcome::Running);
    }

    #[test]
    fn settle_one_final_by_prompt_needs_no_rival_of_the_same_action() {
        let imagine = start(true, false, None);
        assert!(needs_rivals(&imagine, &[Snowflake(5)]));
        let me = Rival {
            id: Snowflake(1),
            action: None,
        };
        let other_imagine = Rival {
            id: Snowflake(2),
            action: None,
        };
        let an_upscale = Rival {
            id: Snowflake(3),
            action: Some("upscale"),
        };
        assert_eq!(
            settle(&imagine, &[Snowflake(5)], &[me, an_upscale]),
            Outcome::Completed(Snowflake(5))
        );
        assert_eq!(
            settle(&imagine, &[Snowflake(5)], &[me, other_imagine]),
            Outcome::Unknown
        );
        let running = start(false, false, None);
        assert_eq!(
            settle(&running, &[Snowflake(5)], &[me, other_imagine]),
            Outcome::Running
        );
    }

    #[test]
    fn final_kinds_by_job_and_by_prompt() {
        let imagine = start(false, false, None);
        assert!(is_final_kind(&imagine, "imagine", false));
        assert!(is_final_kind(&imagine, "blend", false));
        assert!(!is_final_kind(&imagine, "reroll", false));
        assert!(!is_final_kind(&imagine, "progress", false));
        let upscale = start(false, false, Some("upscale"));
        assert!(is_final_kind(&upscale, "upscale", false));
        assert!(!is_final_kind(&upscale, "imagine", false));
        // By job UUID, any result or grid is the final; never a progress, error or other.
        assert!(is_final_kind(&imagine, "reroll", true));
        assert!(is_final_kind(&imagine, "animate", true));
        for not_final in [
            "progress",
            "pending",
            "error",
            "other",
            "not_midjourney",
            "describe",
        ] {
            assert!(!is_final_kind(&imagine, not_final, true), "{not_final}");
        }
    }

    #[test]
    fn starts_are_born_running_and_nothing_else_has_an_outcome() {
        let progress = Kind::Progress {
            stage: parse::Stage::Waiting,
            action: None,
        };
        assert_eq!(initial_outcome(&progress), Some(Outcome::Running));
        assert_eq!(initial_outcome(&Kind::Grid(parse::Origin::Imagine)), None);
        assert_eq!(initial_outcome(&Kind::Result(Action::Upscale)), None);
        assert_eq!(initial_outcome(&Kind::Error("Invalid parameter".into())), None);
    }

    #[test]
    fn new_finals_settle_deleted_starts_and_starts_with_a_job() {
        assert!(settles_on_new_final(&start(true, false, None)));
        assert!(settles_on_new_final(&start(false, true, None)));
        assert!(!settles_on_new_final(&start(false, false, None)));
    }

    fn message(json: &str) -> Message {
        serde_json::from_str(json).unwrap()
    }

    const BOT: &str = r#"{"id":"936929561302675456","username":"Midjourney Bot","bot":true}"#;

    #[test]
    fn absorb_updates_alone_keep_the_message_unseen() {
        let update = message(r#"{"id":"100","channel_id":"7","content":"**cat** - <@1> (fast)"}"#);
        assert!(matches!(
            absorb(None, &update, Source::Update, &BotIds::default()),
            Absorbed::KeepUnseen(_)
        ));
    }

    #[test]
    fn absorb_someone_elses_message_is_ignored_or_stripped() {
        let human = message(
            r#"{"id":"100","channel_id":"7","author":{"id":"5"},"content":"hi","timestamp":"2023-07-12T10:57:45.530000+00:00"}"#,
        );
        assert!(matches!(
            absorb(None, &human, Source::Create, &BotIds::default()),
            Absorbed::Ignore
        ));
        let early = Known {
            doc: Doc::new(message(r#"{"id":"100","channel_id":"7","content":"x"}"#)),
            seen: false,
            kind: "pending".to_string(),
            deleted: false,
        };
        match absorb(Some(early), &human, Source::Create, &BotIds::default()) {
            Absorbed::Strip(doc) => {
                assert_eq!(doc.message.id, Snowflake(100));
                assert_eq!(doc.message.content, None);
            }
            other => panic!("expected a strip, got {other:?}"),
        }
    }

    #[test]
    fn absorb_drops_a_link_only_where_one_can_be() {
        let other = message(&format!(
            r#"{{"id":"300","channel_id":"7","author":{BOT},"timestamp":"2023-07-12T11:00:00.000000+00:00","content":"Some announcement"}}"#
        ));
        let was = |kind: &str| Known {
            doc: Doc::new(message(r#"{"id":"300","channel_id":"7"}"#)),
            seen: true,
            kind: kind.to_string(),
            deleted: false,
        };
        let link_of = |known| match absorb(Some(known), &other, Source::Create, &BotIds::default()) {
            Absorbed::Save(save) => save.link,
            other => panic!("expected a save, got {other:?}"),
        };
        assert_eq!(link_of(was("upscale")), LinkWork::Drop);
        assert_eq!(link_of(was("imagine")), LinkWork::None);
        assert_eq!(link_of(was("pending")), LinkWork::None);
    }

    #[test]
    fn absorb_settles_a_start_only_when_its_deletion_was_seen() {
        let start = message(&format!(
            r#"{{"id":"400","channel_id":"7","author":{BOT},"timestamp":"2023-07-12T11:00:00.000000+00:00","content":"**a cat** - <@1> (Waiting to start)"}}"#
        ));
        let known = |deleted| Known {
            doc: Doc::new(message(r#"{"id":"400","channel_id":"7"}"#)),
            seen: false,
            kind: "pending".to_string(),
            deleted,
        };
        for (deleted, settle) in [(true, true), (false, false)] {
            match absorb(Some(known(deleted)), &start, Source::Create, &BotIds::default()) {
                Absorbed::Save(save) => assert_eq!(save.settle, settle),
                other => panic!("expected a save, got {other:?}"),
            }
        }
    }

    #[test]
    fn absorb_asks_to_store_attachments_only_when_they_are_not_stored_as_they_are() {
        // A progress message (doc section 4: the percent in the content, a preview image
        // that changes as the job renders).
        let progress = |percent: u8, preview: &str| {
            message(&format!(
                r#"{{"id":"400","channel_id":"7","author":{BOT},"timestamp":"2023-07-12T11:00:00.000000+00:00",
                "content":"**a cat** - <@1> ({percent}%) (fast)","attachments":[{{"id":"{preview}","filename":"c09a2935-432a-464c-bb31-6250a418a3c1_grid_0.webp","url":"https://cdn.discordapp.com/{preview}.webp"}}]}}"#
            ))
        };
        let attachments_changed = |known: Option<Known>, incoming: &Message, source| match absorb(
            known,
            incoming,
            source,
            &BotIds::default(),
        ) {
            Absorbed::Save(save) => (save.attachments_changed, save.doc),
            other => panic!("expected a save, got {other:?}"),
        };
        let known = |doc: &Doc, seen| Known {
            doc: doc.clone(),
            seen,
            kind: "progress".to_string(),
            deleted: false,
        };
        // New: stored.
        let (changed, doc) = attachments_changed(None, &progress(15, "900"), Source::Create);
        assert!(changed);
        // A new percent with the same preview: the text changes, the attachments do not.
        let (changed, _) = attachments_changed(Some(known(&doc, true)), &progress(31, "900"), Source::Update);
        assert!(!changed);
        // A new preview: they change.
        let (changed, _) = attachments_changed(Some(known(&doc, true)), &progress(31, "901"), Source::Update);
        assert!(changed);
        // Only updates were stored (an unseen row keeps no attachments): the message itself,
        // with the same attachments as those updates, still has them to store.
        let (changed, _) =
            attachments_changed(Some(known(&doc, false)), &progress(15, "900"), Source::Create);
        assert!(changed);
        // Decided again (a reply's target arrived): nothing about its attachments changed.
        let reconsidered = saved(
            doc,
            Some("progress".to_string()),
            false,
            false,
            &BotIds::default(),
        );
        assert!(matches!(reconsidered, Absorbed::Save(save) if !save.attachments_changed));
        // Decided again as another kind whose images the archive keeps (a message stored as
        // a progress preview that is a finished grid by its content, doc section 2): its
        // attachments are written again, with what the archive makes of them.
        let finished = message(&format!(
            r#"{{"id":"400","channel_id":"7","author":{BOT},"timestamp":"2023-07-12T11:00:00.000000+00:00",
            "content":"**a cat** - <@1> (fast)","attachments":[{{"id":"902","filename":"u_a_cat_c09a2935-432a-464c-bb31-6250a418a3c1.png","url":"https://cdn.discordapp.com/902.png"}}]}}"#
        ));
        let regrid = saved(
            Doc::new(finished),
            Some("progress".to_string()),
            false,
            false,
            &BotIds::default(),
        );
        assert!(
            matches!(&regrid, Absorbed::Save(save) if save.attachments_changed && kinds::shape(&save.parsed.kind).is_archived()),
            "{regrid:?}"
        );
    }

    #[test]
    fn absorb_a_grid_may_be_a_parent_and_a_result_is_relinked_by_its_reference() {
        let grid = message(&format!(
            r#"{{"id":"100","channel_id":"7","author":{BOT},"timestamp":"2023-07-12T10:57:45.530000+00:00",
            "content":"**a cat** - <@1> (fast)","attachments":[{{"id":"9","filename":"a_cat_c09a2935-432a-464c-bb31-6250a418a3c1.png","url":"https://cdn.discordapp.com/a.png"}}],
            "components":[{{"type":1,"components":[{{"type":2,"custom_id":"MJ::JOB::upsample::1::c09a2935-432a-464c-bb31-6250a418a3c1"}}]}}]}}"#
        ));
        let Absorbed::Save(save) = absorb(None, &grid, Source::Create, &BotIds::default()) else {
            panic!("a grid is saved")
        };
        assert!(save.is_new && save.may_be_parent && !save.settle);
        assert_eq!(save.link, LinkWork::None);
        // The same snapshot again changes nothing.
        let known = Known {
            doc: save.doc.clone(),
            seen: true,
            kind: "imagine".to_string(),
            deleted: false,
        };
        assert!(matches!(
            absorb(Some(known), &grid, Source::Create, &BotIds::default()),
            Absorbed::Unchanged
        ));

        let upscale = message(&format!(
            r#"{{"id":"200","channel_id":"7","author":{BOT},"timestamp":"2023-07-12T11:00:00.000000+00:00",
            "content":"**a cat** - Image #2 <@1>","message_reference":{{"message_id":"100"}},
            "attachments":[{{"id":"19","filename":"a_cat.png","url":"https://cdn.discordapp.com/b.png"}}]}}"#
        ));
        let Absorbed::Save(save) = absorb(None, &upscale, Source::Create, &BotIds::default()) else {
            panic!("an upscale is saved")
        };
        match &save.link {
            LinkWork::Relink { child, tile, exact } => {
                assert_eq!(child.action, Action::Upscale);
                assert_eq!(*tile, Some(2));
                assert_eq!(exact.as_ref().and_then(|d| d.parent), Some(Snowflake(100)));
            }
            other => panic!("expected a relink, got {other:?}"),
        }
        assert!(
            save.may_be_parent,
            "an upscale is a single image, a parent for Vary/Zoom/Pan"
        );
    }
}
