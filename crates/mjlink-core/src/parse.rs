//! The parser: one Discord message (a create, or a create merged with its updates) becomes
//! one Midjourney [`Kind`] with the facts mjlink keeps. Pure: no clock, no I/O.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use crate::prompt::{self, Prompt};
use crate::snowflake::Snowflake;
use crate::wire::{Attachment, Message};

/// The Midjourney Bot and the Niji bot.
pub const DEFAULT_BOT_IDS: [u64; 2] = [936_929_561_302_675_456, 1_022_952_195_194_359_889];

/// Which authors count as Midjourney.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIds(pub BTreeSet<Snowflake>);

impl Default for BotIds {
    fn default() -> Self {
        BotIds(DEFAULT_BOT_IDS.iter().copied().map(Snowflake).collect())
    }
}

/// What a button press produced. `as_str` is the name used in the database and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `Image #N`, `Upscaled by`, `Upscaled (Beta|Light|Max) by`: one tile of a grid.
    Upscale,
    Upscale2x,
    Upscale4x,
    UpscaleSubtle,
    UpscaleCreative,
    /// `Upscaled by` replying to a single image: the V7/V8 upscaler (Subtle or Creative, the
    /// content cannot tell which). Not a tile of a grid: no index.
    UpscaleV7,
    Variation,
    VariationStrong,
    VariationSubtle,
    VariationRegion,
    Remix,
    RemixStrong,
    RemixSubtle,
    RemixRegion,
    Reroll,
    Zoom,
    PanLeft,
    PanRight,
    PanUp,
    PanDown,
    /// Animate (High|Low motion) on a single image: a video grid of four cells.
    Animate,
    /// A video U pressed on a video grid: one mp4 clip (its index is the cell).
    VideoClip,
    /// Extend pressed on a clip: a longer clip.
    VideoExtend,
}

impl Action {
    pub const ALL: [Action; 23] = [
        Action::Upscale,
        Action::Upscale2x,
        Action::Upscale4x,
        Action::UpscaleSubtle,
        Action::UpscaleCreative,
        Action::UpscaleV7,
        Action::Variation,
        Action::VariationStrong,
        Action::VariationSubtle,
        Action::VariationRegion,
        Action::Remix,
        Action::RemixStrong,
        Action::RemixSubtle,
        Action::RemixRegion,
        Action::Reroll,
        Action::Zoom,
        Action::PanLeft,
        Action::PanRight,
        Action::PanUp,
        Action::PanDown,
        Action::Animate,
        Action::VideoClip,
        Action::VideoExtend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upscale => "upscale",
            Action::Upscale2x => "upscale_2x",
            Action::Upscale4x => "upscale_4x",
            Action::UpscaleSubtle => "upscale_subtle",
            Action::UpscaleCreative => "upscale_creative",
            Action::UpscaleV7 => "upscale_v7",
            Action::Variation => "variation",
            Action::VariationStrong => "variation_strong",
            Action::VariationSubtle => "variation_subtle",
            Action::VariationRegion => "variation_region",
            Action::Remix => "remix",
            Action::RemixStrong => "remix_strong",
            Action::RemixSubtle => "remix_subtle",
            Action::RemixRegion => "remix_region",
            Action::Reroll => "reroll",
            Action::Zoom => "zoom",
            Action::PanLeft => "pan_left",
            Action::PanRight => "pan_right",
            Action::PanUp => "pan_up",
            Action::PanDown => "pan_down",
            Action::Animate => "animate",
            Action::VideoClip => "video_clip",
            Action::VideoExtend => "video_extend",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.as_str() == name)
    }

    /// Whether the fallback may look for this result's parent by prompt. Remix lets the user
    /// edit the prompt, so an equal prompt says nothing about a remix's parent.
    pub fn prompt_identifies_parent(self) -> bool {
        !self.is_remix()
    }

    /// Remix: the user edited the prompt in a pop-up form.
    pub fn is_remix(self) -> bool {
        matches!(
            self,
            Action::Remix | Action::RemixStrong | Action::RemixSubtle | Action::RemixRegion
        )
    }
}

/// Where a job is before its result exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Waiting,
    Percent(u8),
    Paused,
    Stopped,
}

/// How a root grid came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Imagine,
    Blend,
    /// A native video job (`/imagine <image> ... --video 1`): a video grid of its own.
    Video,
}

/// The one thing a message is, for mjlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Not from a configured Midjourney bot (humans, other bots, impostors).
    NotMidjourney,
    /// A start or progress message; `action` is set for the legacy "Upscaling image #1 with"
    /// and "Upscaling by" forms.
    Progress { stage: Stage, action: Option<Action> },
    /// A root grid (`/imagine`, `/blend`).
    Grid(Origin),
    /// Anything a button produced.
    Result(Action),
    /// `/describe` or `/shorten` output (embeds, no image).
    Describe,
    /// An error or notice (`Invalid parameter`, `Slow Down!`, `Job queued`, a `decline-` code
    /// in [`Parsed::detail`], ...): its title.
    Error(String),
    /// The favourite button's confirmation: not a job; it marks `target` as rated.
    Rating { target: Option<Snowflake> },
    /// From Midjourney but none of the above (announcements, a result without an image...).
    Other,
}

impl Kind {
    /// The name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::NotMidjourney => "not_midjourney",
            Kind::Progress { .. } => "progress",
            Kind::Grid(Origin::Imagine) => "imagine",
            Kind::Grid(Origin::Blend) => "blend",
            Kind::Grid(Origin::Video) => "video",
            Kind::Result(action) => action.as_str(),
            Kind::Describe => "describe",
            Kind::Error(_) => "error",
            Kind::Rating { .. } => "rating",
            Kind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fast,
    Relaxed,
    Turbo,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fast => "fast",
            Mode::Relaxed => "relaxed",
            Mode::Turbo => "turbo",
        }
    }
}

/// Everything the parser extracts from one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub kind: Kind,
    pub prompt: Option<Prompt>,
    /// The requesting user (the `<@id>` in the content, else the interaction's user).
    pub user_id: Option<Snowflake>,
    pub mode: Option<Mode>,
    pub stealth: bool,
    /// `Image #N` (or the legacy "Upscaling image #N with").
    pub tile: Option<u8>,
    /// This message's own job UUID.
    pub job_uuid: Option<String>,
    /// Extra words Midjourney put before the mode, e.g. `Beta` in `Upscaled (Beta) by`; for
    /// an error, its code or second line (`decline-...`, `Unrecognized parameter(s): ...`).
    pub detail: Option<String>,
    pub attachments: Vec<Attachment>,
    /// The message this one replies to (`message_reference`, never a forward).
    pub reply_to: Option<Snowflake>,
    /// The buttons marked used (see [`crate::wire::used_buttons`]); `None` when unknown.
    pub used_buttons: Option<String>,
}

impl Parsed {
    fn empty(kind: Kind) -> Self {
        Parsed {
            kind,
            prompt: None,
            user_id: None,
            mode: None,
            stealth: false,
            tile: None,
            job_uuid: None,
            detail: None,
            attachments: Vec::new(),
            reply_to: None,
            used_buttons: None,
        }
    }

    pub fn normalized_prompt(&self) -> Option<String> {
        self.prompt.as_ref().map(Prompt::normalized)
    }
}

/// Embed titles Midjourney uses for errors and notices (sections 3 and 9 of the wire notes).
const ERROR_TITLES: [&str; 17] = [
    "Invalid parameter",
    "Invalid prompt",
    "Banned prompt detected",
    "Invalid link",
    "Queue full",
    "Job queued",
    "Action needed to continue",
    "Pending mod message",
    "Request cancelled due to output filters",
    "Credits exhausted",
    "Slow Down!",
    "Sorry, something went wrong",
    "Blocked",
    "Plan Cancelled",
    "Subscription required",
    "Subscription paused",
    "Tos not accepted",
];

fn uuid_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
            .expect("static regex")
    })
}

/// Parses one message. `bots` decides who counts as Midjourney.
pub fn parse(message: &Message, bots: &BotIds) -> Parsed {
    let from_midjourney = message
        .author
        .as_ref()
        .is_some_and(|author| bots.0.contains(&author.id));
    if !from_midjourney {
        return Parsed::empty(Kind::NotMidjourney);
    }

    let attachments = message.attachments.clone().unwrap_or_default();
    let has_image = attachments.iter().any(is_image);
    let content = message.content.as_deref().unwrap_or("");
    let job_uuid = job_uuid(message, content, &attachments);
    let interaction_user = message
        .interaction_metadata
        .as_ref()
        .and_then(|meta| meta.user.as_ref())
        .or_else(|| message.interaction.as_ref().and_then(|i| i.user.as_ref()))
        .map(|user| user.id);

    let mut parsed = Parsed::empty(Kind::Other);
    parsed.job_uuid = job_uuid;
    parsed.attachments = attachments;
    parsed.user_id = interaction_user;
    parsed.reply_to = message
        .message_reference
        .as_ref()
        .and_then(|reference| reference.reply_to());
    parsed.used_buttons = crate::wire::used_buttons(message.components.as_ref());

    if let Some((embed_kind, detail)) = classify_embeds(message) {
        parsed.kind = embed_kind;
        parsed.detail = detail;
        parsed.user_id = parsed.user_id.or_else(|| first_mention(content));
        return parsed;
    }
    if let Some(kind) = classify_plain(content, &mut parsed) {
        parsed.kind = kind;
        parsed.user_id = parsed.user_id.or_else(|| first_mention(content));
        return parsed;
    }

    let Some(shape) = split_content(content) else {
        parsed.user_id = parsed.user_id.or_else(|| first_mention(content));
        return parsed;
    };
    let tail = parse_tail(shape.tail);
    parsed.user_id = tail.user_id.or(parsed.user_id);
    parsed.mode = tail.mode;
    parsed.stealth = tail.stealth;
    parsed.job_uuid = parsed.job_uuid.or(tail.link_uuid);
    let prompt = prompt::split(shape.prompt);

    let is_reply = parsed.reply_to.is_some()
        || message
            .interaction_metadata
            .as_ref()
            .is_some_and(|meta| meta.interacted_message_id.is_some());
    let legacy = parse_legacy_prefix(shape.prefix, is_reply);
    let marker = parse_marker(tail.marker);
    parsed.tile = legacy.and_then(|(_, tile)| tile).or(marker.tile);
    parsed.detail = marker.detail;
    let is_video = parsed.attachments.iter().any(is_video_file);

    parsed.kind = if let Some(stage) = tail.stage {
        Kind::Progress {
            stage,
            action: legacy.and_then(|(action, _)| action).or(marker.action),
        }
    } else if marker.progress || legacy.is_some() {
        // "Upscaling by", or a legacy/video start wording without a percentage yet.
        Kind::Progress {
            stage: Stage::Waiting,
            action: legacy.and_then(|(action, _)| action).or(marker.action),
        }
    } else if !has_image {
        // A result or grid without an image is never a job of its own (for example when
        // the MESSAGE_CONTENT intent is missing, attachments arrive empty).
        Kind::Other
    } else if let Some(action) = marker.action {
        Kind::Result(action)
    } else if tail.unknown_marker {
        Kind::Other
    } else if is_video {
        // An mp4 is a clip of a video grid (an extension when it replies to a clip: the
        // pipeline tells, see `lineage::resolve_reply`). Its cell: the extend buttons or
        // the file name `{uuid}_{cell}_720_N.mp4`.
        parsed.tile = parsed.tile.or_else(|| video_cell(message, &parsed.attachments));
        Kind::Result(Action::VideoClip)
    } else if prompt.params.contains_key("motion") || (is_reply && prompt.params.contains_key("video")) {
        // `--motion` belongs to the video model, reached only through Animate; a bare
        // `--video` on /imagine is the old "video of the render" option. A native video
        // job's final replies to its own start: the pipeline makes it a root.
        Kind::Result(Action::Animate)
    } else if is_reply {
        // A reroll, or (since 2026) the final of the start it replies to: the pipeline
        // tells which from what it knows of that message (`lineage::resolve_reply`).
        Kind::Result(Action::Reroll)
    } else if is_blend(message, &prompt) {
        Kind::Grid(Origin::Blend)
    } else {
        Kind::Grid(Origin::Imagine)
    };
    parsed.prompt = Some(prompt);
    parsed
}

/// Plain-content messages that have no `**prompt** - ` shape: the 2026 `Animating...` start,
/// the favourite confirmation, and the plain-content `Invalid parameter` error.
fn classify_plain(content: &str, parsed: &mut Parsed) -> Option<Kind> {
    let trimmed = content.trim();
    if trimmed == "Animating..." || trimmed == "Animating\u{2026}" {
        return Some(Kind::Progress {
            stage: Stage::Waiting,
            action: Some(Action::Animate),
        });
    }
    if trimmed.starts_with("You have successfully rated") {
        return Some(Kind::Rating {
            target: rated_target(trimmed),
        });
    }
    if trimmed.contains("**") {
        return None;
    }
    let (first, rest) = trimmed.split_once('\n').unwrap_or((trimmed, ""));
    let first = first.trim();
    let title = ERROR_TITLES.iter().find(|known| {
        first.eq_ignore_ascii_case(known) || first.eq_ignore_ascii_case(&format!("{known}:"))
    })?;
    let rest = rest.trim();
    parsed.detail = (!rest.is_empty()).then(|| crate::text::cut(rest, 500).to_string());
    Some(Kind::Error((*title).to_string()))
}

/// The message id at the end of `[this job](https://discord.com/channels/{g}/{c}/{m})`.
fn rated_target(text: &str) -> Option<Snowflake> {
    let start = text.find("discord.com/channels/")? + "discord.com/channels/".len();
    let path = &text[start..];
    let end = path
        .find(|c: char| !(c.is_ascii_digit() || c == '/' || c == '@'))
        .unwrap_or(path.len());
    path[..end].rsplit('/').next().and_then(Snowflake::parse)
}

/// An mp4 (or any `video/*` that is not an animated image): a clip.
fn is_video_file(attachment: &Attachment) -> bool {
    match attachment.content_type.as_deref() {
        Some(content_type) => content_type.starts_with("video/"),
        None => attachment.filename.to_ascii_lowercase().ends_with(".mp4"),
    }
}

/// A clip's cell: from its Extend buttons (`MJ::JOB::animate_high_extend::{n}::{uuid}`), else
/// from its file name (`{uuid}_{n}_720_N.mp4`).
fn video_cell(message: &Message, attachments: &[Attachment]) -> Option<u8> {
    let from_buttons = message.components.as_ref().and_then(|components| {
        components.ids().find_map(|id| {
            let rest = id.strip_prefix("MJ::JOB::animate_")?;
            let (_, after) = rest.split_once("_extend::")?;
            after.split("::").next()?.parse::<u8>().ok()
        })
    });
    let cell = from_buttons.or_else(|| {
        attachments.iter().find_map(|attachment| {
            let stem = attachment.filename.get(37..)?;
            stem.split('_').next()?.parse::<u8>().ok()
        })
    });
    cell.filter(|n| (1..=4).contains(n))
}

/// Midjourney attaches only images and videos. An attachment counts unless its type says
/// otherwise (some clients record attachments by id only, without name or type).
fn is_image(attachment: &Attachment) -> bool {
    match attachment.content_type.as_deref() {
        Some(content_type) => content_type.starts_with("image/") || content_type.starts_with("video/"),
        None => {
            let lower = attachment.filename.to_ascii_lowercase();
            let extension = lower.rsplit_once('.').map(|(_, ext)| ext);
            extension.is_none_or(|ext| matches!(ext, "png" | "webp" | "jpg" | "jpeg" | "gif" | "mp4"))
        }
    }
}

/// The origin of a root that replies to its own start (section 9): a video job when its
/// prompt has the video model's parameters, else a blend or an /imagine.
pub fn origin_of(message: &Message, prompt: &Prompt) -> Origin {
    if prompt.params.contains_key("motion") || prompt.params.contains_key("video") {
        Origin::Video
    } else if is_blend(message, prompt) {
        Origin::Blend
    } else {
        Origin::Imagine
    }
}

fn is_blend(message: &Message, prompt: &Prompt) -> bool {
    if message
        .interaction
        .as_ref()
        .and_then(|i| i.name.as_deref())
        .or_else(|| {
            message
                .interaction_metadata
                .as_ref()
                .and_then(|m| m.name.as_deref())
        })
        == Some("blend")
    {
        return true;
    }
    let words: Vec<&str> = prompt.text.split_whitespace().collect();
    words.len() >= 2
        && words
            .iter()
            .all(|word| word.starts_with("<http") || word.starts_with("http"))
}

/// Errors and describe output carried by embeds; the detail is a `decline-` code from the
/// footer (a moderation decline, 2026) when there is one.
fn classify_embeds(message: &Message) -> Option<(Kind, Option<String>)> {
    let embeds = message.embeds.as_ref()?;
    let decline = embeds.iter().find_map(|embed| {
        let footer = embed.footer.as_ref()?.text.as_deref()?.trim();
        footer
            .starts_with("decline-")
            .then(|| crate::text::cut(footer, 200).to_string())
    });
    for embed in embeds {
        if let Some(title) = embed.title.as_deref() {
            let title = title.trim();
            if let Some(known) = ERROR_TITLES
                .iter()
                .find(|known| title.eq_ignore_ascii_case(known))
            {
                return Some((Kind::Error((*known).to_string()), decline));
            }
        }
        if embed
            .description
            .as_deref()
            .is_some_and(|text| text.contains("1\u{fe0f}\u{20e3}"))
        {
            return Some((Kind::Describe, None));
        }
    }
    let colored_error = embeds
        .iter()
        .any(|embed| matches!(embed.color, Some(16_711_680) | Some(15_548_997)) && embed.title.is_some());
    if (colored_error || decline.is_some()) && message.attachments.as_ref().is_none_or(Vec::is_empty) {
        let title = embeds
            .iter()
            .find_map(|embed| embed.title.clone())
            .unwrap_or_default();
        return Some((Kind::Error(title), decline));
    }
    None
}

/// The three parts of `prefix **prompt** - tail`.
struct ContentShape<'a> {
    prefix: &'a str,
    prompt: &'a str,
    tail: &'a str,
}

fn split_content(content: &str) -> Option<ContentShape<'_>> {
    // Drop the 2025+ subtext lines ("-# Create, explore, ...") after the first line.
    let mut body = content;
    while let Some(cut) = body.rfind("\n-# ") {
        body = &body[..cut];
    }
    let open = body.find("**")?;
    let close = body.rfind("** - ")?;
    if close < open + 2 {
        return None;
    }
    Some(ContentShape {
        prefix: &body[..open],
        prompt: &body[open + 2..close],
        tail: &body[close + 5..],
    })
}

#[derive(Default)]
struct Tail<'a> {
    marker: &'a str,
    user_id: Option<Snowflake>,
    stage: Option<Stage>,
    mode: Option<Mode>,
    stealth: bool,
    link_uuid: Option<String>,
    unknown_marker: bool,
}

fn parse_tail(tail: &str) -> Tail<'_> {
    let mut out = Tail::default();
    let Some(mention) = tail.find("<@") else {
        out.marker = tail.trim();
        out.unknown_marker = !out.marker.is_empty();
        return out;
    };
    out.marker = tail[..mention].trim();
    let after = &tail[mention + 2..];
    let after = after.strip_prefix('!').unwrap_or(after);
    let digits_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
    out.user_id = Snowflake::parse(&after[..digits_end]);
    let rest = after[digits_end..]
        .strip_prefix('>')
        .unwrap_or(&after[digits_end..]);

    for group in paren_groups(rest) {
        let lower = group.to_ascii_lowercase();
        let lower = lower.trim();
        if let Some(percent) = lower.strip_suffix('%') {
            if let Ok(value) = percent.trim().parse::<u8>() {
                out.stage = Some(Stage::Percent(value.min(100)));
            }
            continue;
        }
        match lower {
            "waiting to start" => out.stage = Some(Stage::Waiting),
            "paused" => out.stage = Some(Stage::Paused),
            "stopped" => out.stage = Some(Stage::Stopped),
            _ => {
                for word in lower.split(',').map(str::trim) {
                    match word {
                        "fast" => out.mode = Some(Mode::Fast),
                        "relaxed" | "relax" => out.mode = Some(Mode::Relaxed),
                        "turbo" => out.mode = Some(Mode::Turbo),
                        "stealth" => out.stealth = true,
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(found) = rest.find("midjourney.com/") {
        out.link_uuid = uuid_regex()
            .find(&rest[found..])
            .map(|m| m.as_str().to_ascii_lowercase());
    }
    out
}

/// The contents of each top-level `( ... )` group.
fn paren_groups(text: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '(' => {
                if depth == 0 {
                    start = index + 1;
                }
                depth += 1;
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    groups.push(&text[start..index]);
                }
            }
            _ => {}
        }
    }
    groups
}

#[derive(Default)]
struct Marker {
    action: Option<Action>,
    tile: Option<u8>,
    detail: Option<String>,
    /// "Upscaling by": the progress form of an upscale of an upscale.
    progress: bool,
}

fn parse_marker(marker: &str) -> Marker {
    let mut out = Marker::default();
    if marker.is_empty() {
        return out;
    }
    for (prefix, action) in [("Image #", Action::Upscale), ("Video #", Action::VideoClip)] {
        if let Some(number) = marker.strip_prefix(prefix) {
            out.action = Some(action);
            out.tile = number.trim().parse::<u8>().ok().filter(|n| (1..=4).contains(n));
            return out;
        }
    }
    let Some(words) = marker.strip_suffix(" by").or_else(|| marker.strip_suffix("by")) else {
        return out;
    };
    let words = words.trim();
    let (head, detail) = match (words.find('('), words.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            (words[..open].trim(), Some(words[open + 1..close].trim()))
        }
        _ => (words, None),
    };
    let detail_lower = detail.map(str::to_ascii_lowercase);
    out.detail = detail.map(str::to_string);
    out.action = match (head.to_ascii_lowercase().as_str(), detail_lower.as_deref()) {
        ("upscaled", Some("2x")) => Some(Action::Upscale2x),
        ("upscaled", Some("4x")) => Some(Action::Upscale4x),
        ("upscaled", Some("subtle")) => Some(Action::UpscaleSubtle),
        ("upscaled", Some("creative")) => Some(Action::UpscaleCreative),
        ("upscaled", _) => Some(Action::Upscale),
        ("upscaling", _) => {
            // The progress of an upscaler on a single image (v5-v7): which one shows only in
            // the final, and the pipeline tells a V7 upscale from its parent.
            out.progress = true;
            Some(Action::Upscale)
        }
        ("variations", Some("strong")) => Some(Action::VariationStrong),
        ("variations", Some("subtle")) => Some(Action::VariationSubtle),
        ("variations", Some("region")) => Some(Action::VariationRegion),
        ("variations", _) => Some(Action::Variation),
        ("remix", Some("strong")) => Some(Action::RemixStrong),
        ("remix", Some("subtle")) => Some(Action::RemixSubtle),
        ("remix", Some("region")) => Some(Action::RemixRegion),
        ("remix", _) => Some(Action::Remix),
        ("zoom out", _) | ("zoom", _) | ("custom zoom", _) => Some(Action::Zoom),
        ("pan left", _) => Some(Action::PanLeft),
        ("pan right", _) => Some(Action::PanRight),
        ("pan up", _) => Some(Action::PanUp),
        ("pan down", _) => Some(Action::PanDown),
        ("animate", _) => Some(Action::Animate),
        (head, _) if head.starts_with("zoom out") => Some(Action::Zoom),
        _ => None,
    };
    out
}

/// Start wordings before the prompt: the legacy `Upscaling image #1 with **cat** - ...` and
/// `Making variations for image #1 with prompt **cat** - ...` (still used in 2026), and the
/// video start `Creating video with prompt **...** - ...` (an Animate when it replies to the
/// image it animates, else a native `--video` job, whose final is a root).
fn parse_legacy_prefix(prefix: &str, is_reply: bool) -> Option<(Option<Action>, Option<u8>)> {
    let prefix = prefix.trim();
    if prefix.is_empty() {
        return None;
    }
    let tile = prefix
        .find('#')
        .and_then(|hash| prefix[hash + 1..].split_whitespace().next())
        .and_then(|n| n.parse::<u8>().ok());
    if prefix.starts_with("Upscaling image") {
        Some((Some(Action::Upscale), tile))
    } else if prefix.starts_with("Making variations") {
        Some((Some(Action::Variation), tile))
    } else if prefix.starts_with("Creating video") {
        Some((is_reply.then_some(Action::Animate), None))
    } else {
        None
    }
}

fn first_mention(content: &str) -> Option<Snowflake> {
    let start = content.find("<@")? + 2;
    let rest = content[start..].strip_prefix('!').unwrap_or(&content[start..]);
    let end = rest.find('>')?;
    Snowflake::parse(&rest[..end])
}

/// The message's own job UUID: from its buttons (`MJ::JOB::...::{uuid}`,
/// `MJ::CancelJob::ByJobid::{uuid}`, the jobs link), else from the end of an attachment's
/// file stem (`..._{uuid}.png`) or a progress preview (`{uuid}_grid_0.webp`).
fn job_uuid(message: &Message, _content: &str, attachments: &[Attachment]) -> Option<String> {
    if let Some(components) = &message.components {
        for id in components.ids() {
            if id.starts_with("MJ::") || id.contains("midjourney.com/") {
                if let Some(found) = uuid_regex().find(id) {
                    return Some(found.as_str().to_ascii_lowercase());
                }
            }
        }
    }
    for attachment in attachments {
        let stem = attachment
            .filename
            .rsplit_once('.')
            .map_or(attachment.filename.as_str(), |(stem, _)| stem);
        let stem = stem.strip_suffix("_grid_0").unwrap_or(stem);
        if stem.len() >= 36 && stem.is_char_boundary(stem.len() - 36) {
            let tail = &stem[stem.len() - 36..];
            if uuid_regex().is_match(tail) {
                return Some(tail.to_ascii_lowercase());
            }
        }
        if stem.len() >= 36 && stem.is_char_boundary(36) && uuid_regex().is_match(&stem[..36]) {
            return Some(stem[..36].to_ascii_lowercase());
        }
    }
    None
}
