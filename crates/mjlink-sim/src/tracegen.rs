//! Deterministic generator of synthetic Discord gateway traffic from the Midjourney bot, for tests
//! and benchmarks of mjlink. It writes one gateway dispatch per line (`{"op":0,"t":..,"s":..,"d":..}`)
//! shaped like the real recorded payloads: `/imagine` start messages with progress edits and
//! deletions, final grids, upscales, variations, zooms, pans, rerolls and animations replying to
//! their parents, error embeds, human chatter, an impostor bot, unknown dispatch types, gateway
//! redeliveries and out-of-order edits. For every result message it reports the ground truth
//! (child, parent, action) through a callback. The output depends only on the options (same
//! options, same bytes), is produced as a stream, and uses memory bounded by the number of jobs
//! in flight plus a fixed-size window of recent messages, never by the length of the trace.
//!
//! # The 2026 shapes
//! With [`TraceOptions::shapes_2026_per_mille`], a share of the job families takes the shapes of
//! section 9 of `shared/docs/midjourney-on-discord.md` (the doc, never mjlink's parser, is the
//! model): the final of an `/imagine` (and of a `/blend`, an assumption: the doc names only
//! `/imagine`) replies to its own start; native `--video 1` jobs end in a video grid replying to
//! their `Creating video with prompt` start; Zoom and Pan starts carry no marker until their
//! first percentage; the V7 upscaler (`Upscaling by` / `Upscaled by`) on a single image;
//! Animate (`Animating...`, then a video grid), its clips (mp4) and their extensions; `Remix
//! (Region) by`; jobs submitted through a modal, whose parent is only in
//! `interaction_metadata.triggering_interaction_metadata`; a `nonce` on results; the
//! `(Open on website)` link; the favourite confirmation; errors that are not red embeds.
//! [`generate_records`] reports, besides each result, every root and the start it finalizes,
//! every start and the final that settles it, every Midjourney message that is not a job, and
//! which signal each result carries ([`TruthRecord`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::io;

/// User id (= application id) of the Midjourney bot.
pub const MIDJOURNEY_BOT_ID: u64 = 936929561302675456;

/// Bot id of the impostor that copies Midjourney's texts (noise).
const IMPOSTOR_BOT_ID: u64 = 1104482731295686716;
/// Discord epoch (2015-01-01T00:00:00Z) in unix milliseconds.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;
/// Largest time offset a snowflake can hold (42 bits of milliseconds).
const MAX_SNOWFLAKE_OFFSET_MS: i64 = (1 << 42) - 1;
/// 2024-05-01T00:00:00Z in unix milliseconds.
const DEFAULT_START_MS: i64 = 1_714_521_600_000;
/// Latest accepted start time: leaves more than 60 years of snowflake range for the trace itself.
const MAX_START_MS: i64 = DISCORD_EPOCH_MS + (1 << 41);
/// Number of recent grids/upscales whose buttons can still be pressed.
const LIVE_WINDOW: usize = 1024;
/// Recent prompts remembered per user (for prompt reuse).
const RECENT_PROMPTS: usize = 4;
const MAX_CHANNELS: usize = 256;
const MAX_USERS: usize = 4096;

/// Options of [`generate`]. Every combination is valid: out-of-range values are saturated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOptions {
    /// Seed of the internal PRNG; the same options always give byte-identical output.
    pub seed: u64,
    /// Stop after about this many lines (the last step may overshoot by a few lines).
    pub events: usize,
    /// Number of channels (default 3, saturated to 1..=256).
    pub channels: usize,
    /// Number of users submitting jobs (default 6, saturated to 1..=4096).
    pub users: usize,
    /// Unix milliseconds of the first message (default 2024-05-01T00:00:00Z, saturated to
    /// 2015-01-01..~2084 so every timestamp fits a snowflake).
    pub start_ms: i64,
    /// Per mille of results emitted without `message_reference`/`referenced_message`
    /// (default 100 = 10%, saturated to 1000).
    pub strip_reference_per_mille: u32,
    /// Human chat, an impostor bot, `TYPING_START`/`MESSAGE_REACTION_ADD` dispatches and
    /// describe results (default true). Malformed lines are never written; see [`MALFORMED_LINES`].
    pub noise: bool,
    /// About 2% of lines are written again a few lines later, unchanged except `s` (default true).
    pub duplicates: bool,
    /// Some progress edits/deletes are written just before the create of their message (default true).
    pub out_of_order: bool,
    /// Per mille of job families in the 2026 shapes (see the module's documentation; default 0,
    /// saturated to 1000). A root job (`/imagine`) draws its shape, and every job pressed from
    /// its messages, and from theirs, inherits it; a share of the public errors take the 2026
    /// forms too. At 0 no draw is made, so traces made before this option stay byte-identical.
    pub shapes_2026_per_mille: u32,
    /// When a pressed U button of a grid (and of a video grid) is marked used: the grid's
    /// MESSAGE_UPDATE turning it `style: 1`. `true`: for every press, at the press, before the
    /// result, as issue 11 reports from real logs ("a grid whose U2/V1 turns `style: 1`") and
    /// as the real upscale sample shows (its `referenced_message` already has the pressed U at
    /// `style: 1`); a grid's pressed V (a variation or a remix) is marked the same way.
    /// `false` (default, the traces made before this option, byte for byte): for half of the
    /// U presses, a few seconds after the result (wire notes section 2 only says the update
    /// follows the final grid, and documents no V mark); V presses mark nothing. The same
    /// random draws are made either way. Where every press marks first, the buttons of an
    /// upscaled image and of a clip are marked at the press too (issue 11: "Midjourney marks a
    /// pressed button as used on the message that carries it"; the wire notes and the samples
    /// show no such mark, so the default world has none).
    pub marks_before_results: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            seed: 0,
            events: 10_000,
            channels: 3,
            users: 6,
            start_ms: DEFAULT_START_MS,
            strip_reference_per_mille: 100,
            noise: true,
            duplicates: true,
            out_of_order: true,
            shapes_2026_per_mille: 0,
            marks_before_results: false,
        }
    }
}

/// Ground truth for one result message: `child_id` was produced from `parent_id` by `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruthLink {
    /// Id of the result message.
    pub child_id: u64,
    /// Id of the message whose button was pressed (a grid, or an upscale).
    pub parent_id: u64,
    /// One of `upscale`, `upscale_2x`, `upscale_4x`, `upscale_subtle`, `upscale_creative`,
    /// `variation`, `variation_strong`, `variation_subtle`, `variation_region`, `remix`, `reroll`,
    /// `zoom`, `pan_left`, `pan_right`, `pan_up`, `pan_down`, `animate` (an animated image in
    /// the older shape; a video grid from a single image in the 2026 shapes), and in the 2026
    /// shapes only: `upscale_v7` (the V7 upscaler on a single image), `remix_region`,
    /// `video_clip` (an mp4 from a cell of a video grid), `video_extend` (a longer clip from a
    /// clip).
    pub action: &'static str,
    /// Tile number (1..=4) for `upscale`; the cell (1..=4) for `video_clip`; else `None`.
    pub index: Option<u8>,
    /// Whether the result carries `message_reference` and `referenced_message`.
    pub has_reference: bool,
}

/// The exact signal a result carries to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// `message_reference.message_id` (with `referenced_message`).
    Reference,
    /// Only `interaction_metadata.triggering_interaction_metadata.interacted_message_id` (a job
    /// submitted through a modal; no `message_reference`).
    Interaction,
    /// Neither: stripped (see [`TraceOptions::strip_reference_per_mille`]).
    Nothing,
}

/// Ground truth reported by [`generate_records`], one record per fact, in the order the
/// messages that establish it are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthRecord {
    /// A result message: the same link [`generate`] reports, and the signal it carries.
    Result {
        link: TruthLink,
        carried: Carried,
        /// Whether the job has the 2026 shapes.
        shapes_2026: bool,
    },
    /// The final of a root job: not a result, linked to nothing.
    Root {
        id: u64,
        /// `imagine`, `blend` (2026 shapes only) or `video` (a native `--video 1` job, 2026
        /// shapes only).
        kind: &'static str,
        /// The job's start message, which this final settles.
        start_id: u64,
        /// Whether the final replies to its start (the 2026 shapes); else it carries no reference.
        replies_to_start: bool,
    },
    /// A start/progress message, written once its job has ended.
    Start {
        id: u64,
        /// The final that settles it; `None` when it was deleted without one (silent moderation).
        final_id: Option<u64>,
        /// The message whose button was pressed; `None` for a root job.
        parent_id: Option<u64>,
        /// Whether one of its edits named the final's job UUID (the `{uuid}_grid_0.webp`
        /// preview or the Cancel button): a start that only ever said `(Waiting to start)`
        /// names nothing.
        names_job: bool,
        /// Whether the job has the 2026 shapes.
        shapes_2026: bool,
    },
    /// A Midjourney message that is not a job and links to nothing: `error` (public errors,
    /// red or not), `slow_down`, `describe`, `favourite` (the rating confirmation).
    NotAJob { id: u64, what: &'static str },
}

/// Counts of what [`generate`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Lines written (including duplicate redeliveries).
    pub lines: usize,
    /// `MESSAGE_CREATE` lines (including duplicates and noise).
    pub creates: usize,
    /// `MESSAGE_UPDATE` lines (including duplicates).
    pub updates: usize,
    /// `MESSAGE_DELETE` lines (including duplicates).
    pub deletes: usize,
    /// Result messages written (= number of `truth` calls).
    pub results: usize,
    /// Finals of root jobs written: `/imagine` grids (and, in the 2026 shapes, `/blend` grids
    /// and native video grids).
    pub grids: usize,
    /// Root jobs whose start message was deleted without a final (silent moderation).
    pub failed_jobs: usize,
    /// Jobs planned in the 2026 shapes.
    pub jobs_2026: usize,
}

/// A few malformed gateway lines, kept apart from the generated trace (which never contains
/// them), for parser robustness tests.
pub const MALFORMED_LINES: &[&str] = &[
    "",
    "not json at all",
    "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":1,\"d\":{\"id\":\"12",
    "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":2}",
    "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":3,\"d\":null}",
    "{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":4,\"d\":{\"id\":12345,\"content\":7}}",
    "[1,2,3]",
    "{\"op\":11}",
];

/// Snowflake with the given unix-millisecond time and sequence:
/// `((ms - 1420070400000) << 22) | (seq & 0x3fffff)`. The time is saturated to the 42-bit range.
pub fn snowflake_at(ms: i64, seq: u64) -> u64 {
    let rel = ms
        .saturating_sub(DISCORD_EPOCH_MS)
        .clamp(0, MAX_SNOWFLAKE_OFFSET_MS) as u64;
    (rel << 22) | (seq & 0x3f_ffff)
}

/// Writes one dispatch per line (each line ends with '\n') to `out`, calls `truth` once per result message.
///
/// Runs a small discrete-event simulation (jobs in flight, a window of recent messages whose
/// buttons get pressed) until about `opts.events` lines are written. Only I/O errors of `out`
/// are returned.
pub fn generate(
    opts: &TraceOptions,
    out: &mut dyn io::Write,
    truth: &mut dyn FnMut(TruthLink),
) -> io::Result<TraceStats> {
    generate_records(opts, out, &mut |record| {
        if let TruthRecord::Result { link, .. } = record {
            truth(link);
        }
    })
}

/// [`generate`] with the whole ground truth: the same bytes, and every [`TruthRecord`] (each
/// result, root, start and non-job message) instead of the results alone.
pub fn generate_records(
    opts: &TraceOptions,
    out: &mut dyn io::Write,
    truth: &mut dyn FnMut(TruthRecord),
) -> io::Result<TraceStats> {
    let mut sim = Sim::new(opts, out, truth);
    sim.run()?;
    Ok(sim.em.stats)
}

// ---------------------------------------------------------------------------------------------
// Static material

struct Suffix {
    text: &'static str,
    weight: u32,
    /// Grid size for this aspect ratio.
    dims: (u32, u32),
    /// Version 5.x: its upscales carry the 2x/4x upscalers instead of subtle/creative.
    v5: bool,
}

const SQUARE: (u32, u32) = (2048, 2048);

const SUFFIXES: &[Suffix] = &[
    Suffix {
        text: "",
        weight: 30,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --ar 16:9 --v 7.0",
        weight: 8,
        dims: (2912, 1632),
        v5: false,
    },
    Suffix {
        text: " --niji 6",
        weight: 6,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --s 750 --v 5.2",
        weight: 6,
        dims: SQUARE,
        v5: true,
    },
    Suffix {
        text: " --no text, watermark",
        weight: 5,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --style raw",
        weight: 6,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --chaos 20 --seed 1234",
        weight: 5,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --tile",
        weight: 3,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --sref https://s.mj.run/xyz",
        weight: 4,
        dims: SQUARE,
        v5: false,
    },
    Suffix {
        text: " --ar 9:16 --v 6.1",
        weight: 5,
        dims: (1632, 2912),
        v5: false,
    },
    Suffix {
        text: " --ar 2:3 --v 5.2",
        weight: 4,
        dims: (1664, 2496),
        v5: true,
    },
    Suffix {
        text: " --v 6.1",
        weight: 8,
        dims: SQUARE,
        v5: false,
    },
];
/// Index in [`SUFFIXES`] of the settings suffix one user has on every prompt.
const SETTINGS_SUFFIX: u8 = 3;

/// Prompt bodies (parameters come from [`SUFFIXES`]).
const BODIES: &[&str] = &[
    "glass",
    "梵高，向日葵",
    "Vincent van Gogh, Sunflowers",
    "a cat astronaut floating above the Earth, cinematic lighting 🚀🐱",
    "a neon sign that says **OPEN** in a rainy alley, cyberpunk",
    "portrait of an old fisherman\nmuted colors, film grain",
    "<https://s.mj.run/abcDEF> a watercolor version of this photo",
    "天空出现ufo",
    "粉色的猪",
    "東京の夜景、雨、ネオン",
    "서울의 봄, 벚꽃",
    "🌸🌸🌸 spring festival 🎏",
    "cute robot 🤖 watering plants on a balcony",
    "The little white rabbit is eating carrots.",
    "apple, forest,big bad wolf, wood,unreal engine, cinematic lighting, UHD, super detail",
    "isometric cozy bedroom, pastel palette, 3d render",
    "Editorial fashion photography, a chic woman in a cobalt blue trench coat on a sunlit street",
    "minimalist logo of a fox, flat vector",
    "samurai standing in the rain, ukiyo-e style",
    "a bowl of ramen, food photography, 85mm",
    "Puppy",
    "tiger",
    "The sky is blue.",
    "Coca-Cola.",
    "a castle made of glass on a floating island, fantasy concept art",
    "seamless pattern of lemons and leaves",
    "product shot of a perfume bottle on black marble",
    "a dragon made of smoke, dark background",
    "Newton stood on the shoulders of giants and became a giant himself.",
    "retro 80s poster of a sports car, synthwave",
    "a lighthouse during a storm, oil painting",
    "children's book illustration of a bear reading, soft colors",
    "cross-section of a submarine, technical drawing",
    "an astronaut riding a horse, photorealistic",
    "Beauty and the Beast",
    "low poly mountain landscape at sunset",
    "a cup of coffee with latte art shaped like a heart ☕",
    "Big head, big head, not worried about rain.",
    "wolf howling at the moon, line art",
    "[8262694398550213] The wolf is coming.",
    "a street market in Marrakech, golden hour, \"busy\" crowd",
];
/// Index in [`BODIES`] of the prompt used for most bursts (as in the real channel).
const BURST_BODY: u8 = 1;

/// Text a remix inserts after the prompt body (index 0 = no remix).
const REMIX_MODS: &[&str] = &[
    "",
    ", at night",
    ", in winter",
    ", watercolor style",
    ", wide angle, golden hour",
];
const VIDEO_SUFFIX: &str = " --motion high --video 1";
/// The image a native video job starts from (the doc: image links are echoed `<https://s.mj.run/...>`).
const VIDEO_IMAGE: &str = "<https://s.mj.run/vId30clip>";
/// The prompt of a parameter-only blend (section 9); the other blends have an empty prompt.
const BLEND_PARAMS: &str = " --v 7.0 --ar 1:1";
/// Width and height of a 1:1 video grid (an animated `.webp` of four cells, section 9).
const VIDEO_GRID_PIXELS: u32 = 624;
/// Width and height of one frame of a video job's progress (section 9).
const VIDEO_FRAME_PIXELS: u32 = 256;
/// The shorter side of a clip (`~720p`, section 9).
const CLIP_PIXELS: u32 = 720;
/// How many times a clip can be extended (+4 s each, up to 21 s: 5 s + 4 x 4 s).
const MAX_EXTENDS: u8 = 4;
const SUBTEXT: &str =
    "\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)";
const MODES: &[&str] = &["fast", "relaxed", "turbo", "fast, stealth"];

struct FixedUser {
    id: u64,
    name: &'static str,
}

const FIXED_USERS: &[FixedUser] = &[
    FixedUser {
        id: 1012268717368946001,
        name: "oliverdaniel",
    },
    FixedUser {
        id: 1122599062454157002,
        name: "camcooke",
    },
    FixedUser {
        id: 839907989619212003,
        name: "forrynie.1981",
    },
    FixedUser {
        id: 1013250593877397004,
        name: "april39",
    },
    FixedUser {
        id: 1187002231450001005,
        name: "pixel.witch_",
    },
    FixedUser {
        id: 1201337420690000006,
        name: "neo__tokyo",
    },
    FixedUser {
        id: 1099887766554433007,
        name: "m.j_fan",
    },
    FixedUser {
        id: 1176543210987654008,
        name: "sunflower.lover",
    },
];

const GUILD_A: u64 = 1120568025381355652;
const GUILD_B: u64 = 662267976984297473;
const FIXED_CHANNELS: &[(u64, u64)] = &[
    (1120568025993715764, GUILD_A),
    (1008571020480876554, GUILD_B),
    (1130000000000000101, GUILD_A),
    (1143311122233344455, GUILD_B),
    (1150000000000000777, GUILD_A),
    (1160000000000000888, GUILD_B),
];

const HUMAN_TEXTS: &[&str] = &[
    "lol that third one is cursed",
    "can someone upscale #2 for me?",
    "**wow** these came out great",
    "how do I get --ar 16:9 to work with niji?",
    "哇，太好看了",
    "brb",
    "<@936929561302675456> why is my job stuck at 0%",
    "Image #1 is the best one imo",
    "try adding --style raw\nit helps with faces",
    "😂😂😂",
    "/imagine a cat in a hat",
    "**a cat in a hat** - <@1012268717368946001> (fast)",
    "anyone know when the next version drops?",
    "check this out",
    "nice 👍",
];

const DESCRIBES: &[&str] = &[
    "1️⃣ a watercolor painting of a fox in a misty forest, soft pastel colors --ar 3:2\n\n2️⃣ fox in the fog, dreamy storybook illustration --ar 3:2\n\n3️⃣ a red fox standing among birch trees, muted tones --ar 3:2\n\n4️⃣ ethereal woodland scene with a fox, japanese ink style --ar 3:2",
    "1️⃣ a neon-lit street at night with rain reflections, cyberpunk --ar 16:9\n\n2️⃣ rainy tokyo alley, cinematic still --ar 16:9\n\n3️⃣ wet asphalt and neon signs, blade runner mood --ar 16:9\n\n4️⃣ night city street photography, moody lights --ar 16:9",
];

/// Moderation decline codes, the footer `decline-<words>` of `Sorry, something went wrong`
/// (section 9; the words are made up).
const DECLINES: &[&str] = &[
    "decline-amber-lantern-drift",
    "decline-quiet-harbor-stone",
    "decline-velvet-orbit-pine",
];

/// Errors in plain content, not an embed (section 9).
const PLAIN_ERRORS: &[&str] = &[
    "Invalid parameter\nUnrecognized parameter(s): `--vv`",
    "Invalid parameter\nUnrecognized parameter(s): `--motion fast`",
];

/// Public error embeds: title, description, color.
const ERRORS: &[(&str, &str, u32)] = &[
    (
        "Invalid parameter",
        "Invalid value provided for `--ar`: `16:0`",
        16711680,
    ),
    (
        "Banned prompt detected",
        "Sorry! Our AI moderator thinks this prompt is probably against our community standards.",
        16711680,
    ),
    (
        "Queue full",
        "You have reached the maximum allowed number of concurrent jobs. Please wait for one of them to finish.",
        15548997,
    ),
    (
        "Job queued",
        "You have reached the maximum allowed number of concurrent jobs. Don't worry, this job will start as soon as another one finishes!",
        15548997,
    ),
];

// ---------------------------------------------------------------------------------------------
// PRNG (splitmix64) and small helpers

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a slice of length `len` (0 when empty).
    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`); meant for small constant ranges.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.saturating_add(self.below(span) as i64)
    }

    fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000) < u64::from(p)
    }

    /// Index chosen with the given weights (0 when all weights are zero).
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        0
    }
}

/// splitmix64 finalizer: a stateless hash used for derived values (sizes, signatures).
fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn body_text(i: u8) -> &'static str {
    BODIES.get(usize::from(i)).copied().unwrap_or("")
}

fn remix_text(i: u8) -> &'static str {
    REMIX_MODS.get(usize::from(i)).copied().unwrap_or("")
}

fn suffix(i: u8) -> &'static Suffix {
    SUFFIXES.get(usize::from(i)).unwrap_or(&SUFFIXES[0])
}

fn mode_text(i: u8) -> &'static str {
    MODES.get(usize::from(i)).copied().unwrap_or("fast")
}

// ---------------------------------------------------------------------------------------------
// Model

/// A prompt as echoed by Midjourney: body, optional remix text, parameters, optional video flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Prompt {
    body: u8,
    suffix: u8,
    remix: u8,
    video: Video,
    /// 0: not a blend; 1: a blend with an empty prompt; 2: with [`BLEND_PARAMS`] only.
    blend: u8,
}

/// How a prompt carries video parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Video {
    No,
    /// The older animation: [`VIDEO_SUFFIX`] appended.
    Legacy,
    /// Animate in the 2026 shapes: `--ar` and `--no` dropped, then `[--raw] --motion high|low
    /// --video 1 --aspect W:H` (`--raw` in the final's echo, not in the start's).
    Animate {
        high: bool,
        raw: bool,
    },
    /// A native video job: [`VIDEO_IMAGE`] first, then as the start of an animation.
    Native {
        high: bool,
    },
}

impl Prompt {
    fn grid_dims(self) -> (u32, u32) {
        suffix(self.suffix).dims
    }

    fn v5(self) -> bool {
        suffix(self.suffix).v5
    }

    /// The prompt as a video job's start echoes it.
    fn at_start(self) -> Prompt {
        match self.video {
            Video::Animate { high, .. } => Prompt {
                video: Video::Animate { high, raw: false },
                ..self
            },
            _ => self,
        }
    }

    /// Width and height of a video grid (624x624 for 1:1, the grid's aspect otherwise).
    fn video_grid_dims(self) -> (u32, u32) {
        let (w, h) = self.grid_dims();
        let long = w.max(h).max(1);
        (w * VIDEO_GRID_PIXELS / long, h * VIDEO_GRID_PIXELS / long)
    }

    /// Width and height of a clip: the shorter side 720 pixels.
    fn clip_dims(self) -> (u32, u32) {
        let (w, h) = self.grid_dims();
        let short = w.min(h).max(1);
        (w * CLIP_PIXELS / short, h * CLIP_PIXELS / short)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Author {
    Mj,
    Impostor,
    Human,
}

/// The text between the prompt and the user mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Plain,
    Image(u8),
    Text(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Four-image grid with U1..U4, reroll and V1..V4 buttons.
    Grid,
    /// Single image with the SOLO buttons; `upscalers` adds the upscale-of-upscale buttons.
    Upscale { upscalers: bool },
    /// Animated result (`.webp`), no buttons.
    Video,
    /// Start/progress message: `None` = "Waiting to start", else the percentage.
    Progress(Option<u8>),
    /// 2026: a video grid, one animated `.webp` of four cells with the video U buttons.
    VideoGrid,
    /// 2026: one clip (`.mp4`) of cell `cell`, extended `extends` times, with Extend buttons.
    Clip { cell: u8, extends: u8 },
    /// 2026: the plain-text start of an animation, `Animating...`.
    Animating,
    /// 2026: `Creating video with prompt **...** - <@id> (Waiting to start)` (`pct` = `None`),
    /// or its progress with four frames of step `step`.
    VideoProgress { pct: Option<u8>, step: u8 },
    /// 2026: the favourite confirmation, a reply to the rated message (not a job).
    Favourite,
    /// 2026: the embed `Sorry, something went wrong` with a decline footer (index into [`DECLINES`]).
    Decline(u8),
    /// 2026: an error in plain content (index into [`PLAIN_ERRORS`]).
    PlainError(u8),
    /// Human chat line (index into [`HUMAN_TEXTS`]) with an optional png.
    Human { text: u8, attachment: bool },
    /// Describe result embed (index into [`DESCRIBES`]).
    Describe(u8),
    /// Public error embed (index into [`ERRORS`]).
    Error(u8),
    /// "Slow Down!" embed.
    SlowDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interaction {
    id: u64,
    nonce: u64,
    name: &'static str,
}

/// `interaction_metadata` of a job submitted through a modal: the modal's interaction, the
/// button press that opened it and the message that button was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Modal {
    id: u64,
    trigger_id: u64,
    target: u64,
}

/// The link to the job on the website, between the user and the mode (section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    No,
    /// `[(Open on website)](<https://midjourney.com/jobs/{uuid}>)` (2026).
    OpenOnWebsite,
    /// `[(Open on website for full quality)](<https://midjourney.com/jobs/{uuid}>)` (video grids).
    FullQuality,
}

/// Everything needed to render one message; small and `Copy`, so snapshots are cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Msg {
    id: u64,
    mtype: u8,
    author: Author,
    channel: u32,
    user: u32,
    ts: i64,
    edited: Option<i64>,
    prompt: Prompt,
    mode: u8,
    marker: Marker,
    form: Form,
    uuid: u128,
    att_id: u64,
    w: u32,
    h: u32,
    subtext: bool,
    /// Bit n-1 set = the Un button was used (rendered with style 1).
    used_u: u8,
    /// Bit n-1 set = the Vn button was used (rendered with style 1; only where every press
    /// marks its message first, see [`TraceOptions::marks_before_results`]).
    used_v: u8,
    /// Bit i set = the i-th button of an upscaled image or a clip (see [`solo_button`]) was
    /// used (rendered with style 1; only where every press marks its message first).
    used_solo: u16,
    ref_id: Option<u64>,
    interaction: Option<Interaction>,
    /// A `nonce` on a message without `interaction` (2026: results and button jobs' starts).
    nonce: Option<u64>,
    modal: Option<Modal>,
    extra: Extra,
    /// The message has the 2026 shapes (its buttons, and the jobs pressed from it).
    shapes_2026: bool,
}

/// A message whose buttons can still be pressed, with its own parent (for `referenced_message`).
#[derive(Debug, Clone, Copy)]
struct Live {
    msg: Msg,
    parent: Option<Msg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Upscale(u8),
    Upscale2x,
    Upscale4x,
    UpscaleSubtle,
    UpscaleCreative,
    /// V button of a grid; carries the marker Midjourney printed.
    Variation(&'static str),
    VariationStrong,
    VariationSubtle,
    VariationRegion,
    Remix,
    Reroll,
    Zoom,
    PanLeft,
    PanRight,
    PanUp,
    PanDown,
    /// `high`: Animate (High motion); the older shape only knows high motion.
    Animate {
        high: bool,
    },
    /// 2026: the V7 upscaler (Subtle or Creative) on a single image.
    UpscaleV7 {
        creative: bool,
    },
    /// 2026: `Remix (Region) by`, from a single image.
    RemixRegion,
    /// 2026: a video U (cell 1..=4) of a video grid.
    VideoClip(u8),
    /// 2026: Extend (High|Low motion) of a clip.
    VideoExtend {
        high: bool,
    },
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Upscale(_) => "upscale",
            Action::Upscale2x => "upscale_2x",
            Action::Upscale4x => "upscale_4x",
            Action::UpscaleSubtle => "upscale_subtle",
            Action::UpscaleCreative => "upscale_creative",
            Action::Variation(_) => "variation",
            Action::VariationStrong => "variation_strong",
            Action::VariationSubtle => "variation_subtle",
            Action::VariationRegion => "variation_region",
            Action::Remix => "remix",
            Action::Reroll => "reroll",
            Action::Zoom => "zoom",
            Action::PanLeft => "pan_left",
            Action::PanRight => "pan_right",
            Action::PanUp => "pan_up",
            Action::PanDown => "pan_down",
            Action::Animate { .. } => "animate",
            Action::UpscaleV7 { .. } => "upscale_v7",
            Action::RemixRegion => "remix_region",
            Action::VideoClip(_) => "video_clip",
            Action::VideoExtend { .. } => "video_extend",
        }
    }

    /// The tile (`upscale`) or cell (`video_clip`) the result is of.
    fn index(self) -> Option<u8> {
        match self {
            Action::Upscale(n) | Action::VideoClip(n) => Some(n),
            _ => None,
        }
    }

    fn marker(self) -> Marker {
        match self {
            Action::Upscale(n) => Marker::Image(n),
            Action::Upscale2x => Marker::Text("Upscaled (2x) by"),
            Action::Upscale4x => Marker::Text("Upscaled (4x) by"),
            Action::UpscaleSubtle => Marker::Text("Upscaled (Subtle) by"),
            Action::UpscaleCreative => Marker::Text("Upscaled (Creative) by"),
            Action::Variation(m) => Marker::Text(m),
            Action::VariationStrong => Marker::Text("Variations (Strong) by"),
            Action::VariationSubtle => Marker::Text("Variations (Subtle) by"),
            Action::VariationRegion => Marker::Text("Variations (Region) by"),
            Action::Remix => Marker::Text("Remix by"),
            Action::Zoom => Marker::Text("Zoom Out by"),
            Action::PanLeft => Marker::Text("Pan Left by"),
            Action::PanRight => Marker::Text("Pan Right by"),
            Action::PanUp => Marker::Text("Pan Up by"),
            Action::PanDown => Marker::Text("Pan Down by"),
            Action::UpscaleV7 { .. } => Marker::Text("Upscaled by"),
            Action::RemixRegion => Marker::Text("Remix (Region) by"),
            // The content of clips is not documented: the plainest form, no marker (assumption).
            Action::Reroll | Action::Animate { .. } | Action::VideoClip(_) | Action::VideoExtend { .. } => {
                Marker::Plain
            }
        }
    }

    /// The marker of the job's progress edits.
    fn progress_marker(self) -> Marker {
        match self {
            Action::UpscaleV7 { .. } => Marker::Text("Upscaling by"),
            other => other.marker(),
        }
    }

    /// Zoom and Pan: in the 2026 shapes their start has no marker.
    fn is_zoom_or_pan(self) -> bool {
        matches!(
            self,
            Action::Zoom | Action::PanLeft | Action::PanRight | Action::PanUp | Action::PanDown
        )
    }

    /// Submitted through a pop-up form in the 2026 shapes (section 9), so the parent may be
    /// named only in `interaction_metadata.triggering_interaction_metadata`.
    fn may_use_modal(self) -> bool {
        matches!(
            self,
            Action::Remix | Action::VariationRegion | Action::RemixRegion
        )
    }

    /// Upscalers produce their result directly, without a progress message.
    fn is_upscale(self) -> bool {
        matches!(
            self,
            Action::Upscale(_)
                | Action::Upscale2x
                | Action::Upscale4x
                | Action::UpscaleSubtle
                | Action::UpscaleCreative
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Update(u8),
    Final,
    Delete,
    GridEdit,
    Done,
}

impl Stage {
    /// Index of this stage's time in [`Job::t`].
    fn time_index(self) -> usize {
        match self {
            Stage::Start => 0,
            Stage::Update(k) => 1 + usize::from(k.min(2)),
            Stage::Final => 4,
            Stage::Delete => 5,
            Stage::GridEdit | Stage::Done => 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hoist {
    No,
    Update,
    Delete,
}

/// What a root job (no button pressed) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Imagine,
    /// 2026 shapes only.
    Blend,
    /// A native `/imagine <image> ... --video 1` job (2026 shapes only).
    Video,
}

impl Root {
    fn name(self) -> &'static str {
        match self {
            Root::Imagine => "imagine",
            Root::Blend => "blend",
            Root::Video => "video",
        }
    }
}

/// One job in flight (an `/imagine` or a button press).
struct Job {
    /// `None` = a root job (`/imagine`, `/blend`).
    action: Option<Action>,
    root: Root,
    /// The job has the 2026 shapes.
    shapes_2026: bool,
    /// Submitted through a modal: the parent only in `interaction_metadata` (2026).
    modal: bool,
    /// The `nonce` of the interaction that made the job (2026; drawn when first needed).
    nonce: Option<u64>,
    /// The modal's interaction id and the id of the press that opened it (drawn when first needed).
    modal_ids: Option<(u64, u64)>,
    extra: Extra,
    /// One of the start's edits named the job's UUID.
    names_job: bool,
    /// Snapshot of the pressed message (refreshed from the live window when the result is written).
    parent: Option<Msg>,
    channel: u32,
    user: u32,
    prompt: Prompt,
    mode: u8,
    uuid: u128,
    subtext: bool,
    strip: bool,
    moderated: bool,
    /// The pressed U of the parent grid is marked used: at the press (before the job's first
    /// message) or after the result (see [`TraceOptions::marks_before_results`]).
    grid_edit: Option<MarkAt>,
    /// The stage after the mark when it comes first.
    first_stage: Stage,
    hoist: Hoist,
    n_updates: u8,
    pcts: [u8; 3],
    /// Planned times: start, updates 1..3, final, delete, grid edit.
    t: [i64; 7],
    stage: Stage,
    progress: Option<Msg>,
}

impl Job {
    fn next_stage(&self) -> Stage {
        let after_updates = if self.moderated {
            Stage::Delete
        } else {
            Stage::Final
        };
        let after_final = if self.grid_edit == Some(MarkAt::AfterResult) {
            Stage::GridEdit
        } else {
            Stage::Done
        };
        match self.stage {
            Stage::Start if self.n_updates > 0 => Stage::Update(0),
            Stage::Start => after_updates,
            Stage::Update(k) if k + 1 < self.n_updates => Stage::Update(k + 1),
            Stage::Update(_) => after_updates,
            Stage::Final if self.progress.is_some() => Stage::Delete,
            Stage::Final => after_final,
            Stage::Delete if self.moderated => Stage::Done,
            Stage::Delete => after_final,
            Stage::GridEdit if self.grid_edit == Some(MarkAt::Press) => self.first_stage,
            Stage::GridEdit | Stage::Done => Stage::Done,
        }
    }
}

/// When a press's mark is written (see [`TraceOptions::marks_before_results`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkAt {
    Press,
    AfterResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Burst {
        user: u32,
        channel: u32,
        prompt: Prompt,
        left: u8,
    },
    Job(usize),
}

struct User {
    id: u64,
    name: String,
    home: u32,
    mode: u8,
    settings_suffix: Option<u8>,
}

struct World {
    channels: Vec<(u64, u64)>,
    users: Vec<User>,
}

impl World {
    fn new(channels: usize, users: usize) -> World {
        let channels: Vec<(u64, u64)> = (0..channels)
            .map(|i| match FIXED_CHANNELS.get(i) {
                Some(&c) => c,
                None => (
                    1_170_000_000_000_000_000 + (i as u64) * 1_000_003,
                    if i % 2 == 0 { GUILD_A } else { GUILD_B },
                ),
            })
            .collect();
        let n_channels = channels.len().max(1) as u32;
        let users = (0..users)
            .map(|i| {
                let (id, name) = match FIXED_USERS.get(i) {
                    Some(u) => (u.id, u.name.to_string()),
                    None if i % 2 == 0 => (
                        1_190_000_000_000_000_000 + (i as u64) * 7_919,
                        format!("artist_{i}"),
                    ),
                    None => (
                        1_190_000_000_000_000_000 + (i as u64) * 7_919,
                        format!("user.{i}"),
                    ),
                };
                User {
                    id,
                    name,
                    home: (i as u32) % n_channels,
                    mode: [1, 0, 0, 2, 1, 3][i % 6],
                    settings_suffix: if i == 0 { Some(SETTINGS_SUFFIX) } else { None },
                }
            })
            .collect();
        World { channels, users }
    }

    fn user(&self, i: u32) -> &User {
        // `users` is never empty (the option is saturated to at least 1).
        &self.users[(i as usize) % self.users.len()]
    }

    fn channel(&self, i: u32) -> (u64, u64) {
        self.channels
            .get(i as usize)
            .copied()
            .unwrap_or(FIXED_CHANNELS[0])
    }
}

// ---------------------------------------------------------------------------------------------
// Output: line framing, statistics, duplicate redelivery

struct PendingDup {
    due: usize,
    t: &'static str,
    d: String,
}

struct Emitter<'a> {
    out: &'a mut dyn io::Write,
    line: String,
    seq: u64,
    stats: TraceStats,
    rng: Rng,
    duplicates: bool,
    pending: Vec<PendingDup>,
}

impl Emitter<'_> {
    fn emit(&mut self, t: &'static str, d: &str) -> io::Result<()> {
        self.write_line(t, d)?;
        if self.duplicates && self.rng.per_mille(20) {
            let delay = self.rng.range(2, 40) as usize;
            self.pending.push(PendingDup {
                due: self.stats.lines.saturating_add(delay),
                t,
                d: d.to_owned(),
            });
        }
        while let Some(i) = self.pending.iter().position(|p| p.due <= self.stats.lines) {
            let p = self.pending.remove(i);
            self.write_line(p.t, &p.d)?;
        }
        Ok(())
    }

    fn write_line(&mut self, t: &'static str, d: &str) -> io::Result<()> {
        self.seq = self.seq.saturating_add(1);
        self.line.clear();
        self.line.push_str("{\"op\":0,\"t\":\"");
        self.line.push_str(t);
        self.line.push_str("\",\"s\":");
        let _ = write!(self.line, "{}", self.seq);
        self.line.push_str(",\"d\":");
        self.line.push_str(d);
        self.line.push_str("}\n");
        self.out.write_all(self.line.as_bytes())?;
        let s = &mut self.stats;
        s.lines = s.lines.saturating_add(1);
        match t {
            "MESSAGE_CREATE" => s.creates = s.creates.saturating_add(1),
            "MESSAGE_UPDATE" => s.updates = s.updates.saturating_add(1),
            "MESSAGE_DELETE" => s.deletes = s.deletes.saturating_add(1),
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The simulation

struct Sim<'a> {
    world: World,
    rng: Rng,
    now: i64,
    ctr: u64,
    last_msg_id: u64,
    tie: u64,
    heap: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    jobs: Vec<Option<Job>>,
    free: Vec<usize>,
    live: VecDeque<Live>,
    recent: Vec<VecDeque<(u32, Prompt)>>,
    impostor_last: Option<Msg>,
    buf: String,
    em: Emitter<'a>,
    truth: &'a mut dyn FnMut(TruthRecord),
    target: usize,
    strip_per_mille: u32,
    shapes_2026_per_mille: u32,
    noise: bool,
    out_of_order: bool,
    marks_before_results: bool,
    peak_heap: usize,
    peak_jobs: usize,
}

impl<'a> Sim<'a> {
    fn new(
        opts: &TraceOptions,
        out: &'a mut dyn io::Write,
        truth: &'a mut dyn FnMut(TruthRecord),
    ) -> Sim<'a> {
        let users = opts.users.clamp(1, MAX_USERS);
        let channels = opts.channels.clamp(1, MAX_CHANNELS);
        Sim {
            world: World::new(channels, users),
            rng: Rng(opts.seed),
            now: opts.start_ms.clamp(DISCORD_EPOCH_MS, MAX_START_MS),
            ctr: 0,
            last_msg_id: 0,
            tie: 0,
            heap: BinaryHeap::new(),
            jobs: Vec::new(),
            free: Vec::new(),
            live: VecDeque::with_capacity(LIVE_WINDOW),
            recent: (0..users).map(|_| VecDeque::new()).collect(),
            impostor_last: None,
            buf: String::with_capacity(16 * 1024),
            em: Emitter {
                out,
                line: String::with_capacity(16 * 1024),
                seq: 0,
                stats: TraceStats::default(),
                rng: Rng(mix(opts.seed ^ 0x5eed_d00d_cafe_f00d)),
                duplicates: opts.duplicates,
                pending: Vec::new(),
            },
            truth,
            target: opts.events,
            strip_per_mille: opts.strip_reference_per_mille.min(1000),
            shapes_2026_per_mille: opts.shapes_2026_per_mille.min(1000),
            noise: opts.noise,
            out_of_order: opts.out_of_order,
            marks_before_results: opts.marks_before_results,
            peak_heap: 0,
            peak_jobs: 0,
        }
    }

    fn run(&mut self) -> io::Result<()> {
        self.schedule(self.now, Ev::Arrival);
        while self.em.stats.lines < self.target {
            let Some(Reverse((t, _, ev))) = self.heap.pop() else {
                break;
            };
            self.now = self.now.max(t);
            match ev {
                Ev::Arrival => {
                    self.arrival()?;
                    let mut gap = self.rng.range(1_000, 16_000);
                    if self.rng.per_mille(30) {
                        gap += self.rng.range(120_000, 2_400_000);
                    }
                    self.schedule(self.now.saturating_add(gap), Ev::Arrival);
                }
                Ev::Burst {
                    user,
                    channel,
                    prompt,
                    left,
                } => {
                    self.plan_job(None, None, user, channel, prompt, self.now);
                    if left > 1 {
                        let next = Ev::Burst {
                            user,
                            channel,
                            prompt,
                            left: left - 1,
                        };
                        let at = self.now.saturating_add(self.rng.range(12_000, 40_000));
                        self.schedule(at, next);
                    }
                }
                Ev::Job(slot) => self.step_job(slot)?,
            }
        }
        Ok(())
    }

    fn schedule(&mut self, at: i64, ev: Ev) {
        self.tie += 1;
        self.heap.push(Reverse((at, self.tie, ev)));
        self.peak_heap = self.peak_heap.max(self.heap.len());
    }

    /// A new message id at `ms`: unique and strictly increasing in emission order.
    fn msg_id(&mut self, ms: i64) -> u64 {
        self.ctr = self.ctr.wrapping_add(1);
        let id = snowflake_at(ms, self.ctr).max(self.last_msg_id.saturating_add(1));
        self.last_msg_id = id;
        id
    }

    /// An auxiliary snowflake (attachment, nonce, interaction) dated `ms`.
    fn aux_id(&mut self, ms: i64) -> u64 {
        self.ctr = self.ctr.wrapping_add(1);
        snowflake_at(ms, self.ctr)
    }

    /// An attachment id: uploaded a little before the message that carries it.
    fn att_id(&mut self, ms: i64) -> u64 {
        let lag = self.rng.range(20, 400);
        self.aux_id(ms.saturating_sub(lag))
    }

    fn new_uuid(&mut self) -> u128 {
        let raw = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
        let v4 = (raw & !(0xf_u128 << 76)) | (0x4_u128 << 76);
        (v4 & !(0x3_u128 << 62)) | (0x2_u128 << 62)
    }

    fn pick_mode(&mut self, user: u32) -> u8 {
        if self.rng.per_mille(800) {
            self.world.user(user).mode
        } else {
            self.rng.index(MODES.len()) as u8
        }
    }

    fn pick_channel(&mut self, user: u32) -> u32 {
        if self.rng.per_mille(750) {
            self.world.user(user).home
        } else {
            self.rng.index(self.world.channels.len()) as u32
        }
    }

    fn fresh_prompt(&mut self, user: u32, body: Option<u8>) -> Prompt {
        let body = body.unwrap_or_else(|| self.rng.index(BODIES.len()) as u8);
        let suffix = match self.world.user(user).settings_suffix {
            Some(s) => s,
            None => {
                let weights: Vec<u32> = SUFFIXES.iter().map(|s| s.weight).collect();
                self.rng.weighted(&weights) as u8
            }
        };
        Prompt {
            body,
            suffix,
            remix: 0,
            video: Video::No,
            blend: 0,
        }
    }

    /// Whether something drawn now takes the 2026 shapes. Draws nothing when the option is 0.
    fn draw_2026(&mut self) -> bool {
        self.shapes_2026_per_mille > 0 && self.rng.per_mille(self.shapes_2026_per_mille)
    }

    /// The nonce of a 2026 job's interaction, drawn the first time it is needed.
    fn job_nonce(&mut self, job: &mut Job, at: i64) -> u64 {
        match job.nonce {
            Some(n) => n,
            None => {
                let n = self.aux_id(at.saturating_sub(1_300));
                job.nonce = Some(n);
                n
            }
        }
    }

    /// The `interaction_metadata` of a modal job still carrying its signal, else `None`.
    fn job_modal(&mut self, job: &mut Job, at: i64) -> Option<Modal> {
        if !job.modal || job.strip {
            return None;
        }
        let target = job.parent?.id;
        let (id, trigger_id) = match job.modal_ids {
            Some(ids) => ids,
            None => {
                let trigger_id = self.aux_id(at.saturating_sub(9_000));
                let ids = (self.aux_id(at.saturating_sub(700)), trigger_id);
                job.modal_ids = Some(ids);
                ids
            }
        };
        Some(Modal {
            id,
            trigger_id,
            target,
        })
    }

    fn record(&mut self, record: TruthRecord) {
        (self.truth)(record);
    }

    fn remember(&mut self, user: u32, channel: u32, prompt: Prompt) {
        if let Some(r) = self.recent.get_mut(user as usize) {
            if r.len() >= RECENT_PROMPTS {
                r.pop_front();
            }
            r.push_back((channel, prompt));
        }
    }

    fn add_live(&mut self, msg: Msg, parent: Option<Msg>) {
        if self.live.len() >= LIVE_WINDOW {
            self.live.pop_front();
        }
        self.live.push_back(Live { msg, parent });
    }

    /// Position of a live message (ids in the window are increasing).
    fn find_live(&self, id: u64) -> Option<usize> {
        self.live.binary_search_by_key(&id, |l| l.msg.id).ok()
    }

    /// A recent live message index, biased towards the newest ones: most presses come minutes
    /// after the image, some an hour or more later.
    fn pick_live(&mut self) -> Option<usize> {
        let len = self.live.len();
        if len == 0 {
            return None;
        }
        let span = match self.rng.below(100) {
            0..=69 => 24,
            70..=94 => 160,
            _ => 400,
        };
        let back = self.rng.index(len.min(span));
        Some(len - 1 - back.min(len - 1))
    }

    // ----- arrivals ---------------------------------------------------------------------------

    fn arrival(&mut self) -> io::Result<()> {
        let n = if self.noise { 1 } else { 0 };
        // imagine, press, error, human, typing, reaction, impostor, describe
        let weights = [380, 400, 15, 90 * n, 30 * n, 40 * n, 15 * n, 10 * n];
        match self.rng.weighted(&weights) {
            0 => {
                self.new_imagine();
                Ok(())
            }
            1 => self.press(),
            2 => self.public_error(),
            3 => self.human(),
            4 => self.typing(None),
            5 => self.reaction(),
            6 => self.impostor(),
            _ => self.describe(),
        }
    }

    fn new_imagine(&mut self) {
        let user = self.rng.index(self.world.users.len()) as u32;
        let channel = self.pick_channel(user);
        // About a third of the jobs reuse a recent prompt of the same user in the same channel.
        let same: Vec<Prompt> = match self.recent.get(user as usize) {
            Some(r) if self.rng.below(3) == 0 => {
                r.iter().filter(|(c, _)| *c == channel).map(|&(_, p)| p).collect()
            }
            _ => Vec::new(),
        };
        let prompt = if same.is_empty() {
            None
        } else {
            Some(same[self.rng.index(same.len())])
        };
        let prompt = match prompt {
            Some(p) => p,
            None => self.fresh_prompt(user, None),
        };
        if self.rng.per_mille(12) {
            let prompt = if self.rng.per_mille(500) {
                self.fresh_prompt(user, Some(BURST_BODY))
            } else {
                prompt
            };
            let at = self.now.saturating_add(self.rng.range(1_000, 5_000));
            let ev = Ev::Burst {
                user,
                channel,
                prompt,
                left: 10,
            };
            self.schedule(at, ev);
            return;
        }
        self.plan_job(None, None, user, channel, prompt, self.now);
    }

    fn press(&mut self) -> io::Result<()> {
        let Some(idx) = self.pick_live() else {
            self.new_imagine();
            return Ok(());
        };
        let m = self.live[idx].msg;
        let action = match m.form {
            Form::Grid => {
                let r = self.rng.below(100);
                if r < 62 {
                    let n = self.rng.below(4) as u8;
                    if m.used_u & (1 << n) == 0 {
                        Action::Upscale(n + 1)
                    } else if self.rng.per_mille(350) {
                        return self.slow_down(idx);
                    } else {
                        match (0..4u8).find(|i| m.used_u & (1 << i) == 0) {
                            Some(i) => Action::Upscale(i + 1),
                            None => Action::Reroll,
                        }
                    }
                } else if r < 82 {
                    let markers = [
                        "Variations by",
                        "Variations (Strong) by",
                        "Variations (Subtle) by",
                    ];
                    Action::Variation(markers[self.rng.weighted(&[50, 40, 10])])
                } else if r < 88 {
                    Action::Remix
                } else {
                    Action::Reroll
                }
            }
            Form::Upscale { upscalers } if m.shapes_2026 => {
                if self.rng.per_mille(40) {
                    return self.favourite(idx);
                }
                let up = if upscalers { 7 } else { 0 };
                let (a, b) = if m.prompt.v5() {
                    (Action::Upscale2x, Action::Upscale4x)
                } else {
                    (
                        Action::UpscaleV7 { creative: false },
                        Action::UpscaleV7 { creative: true },
                    )
                };
                let choices = [
                    (Action::VariationStrong, 14),
                    (Action::VariationSubtle, 14),
                    (Action::VariationRegion, 4),
                    (Action::RemixRegion, 5),
                    (Action::Zoom, 12),
                    (Action::PanLeft, 4),
                    (Action::PanRight, 4),
                    (Action::PanUp, 4),
                    (Action::PanDown, 4),
                    (a, up),
                    (b, up),
                    (Action::Animate { high: true }, 6),
                    (Action::Animate { high: false }, 5),
                ];
                let weights: Vec<u32> = choices.iter().map(|c| c.1).collect();
                choices[self.rng.weighted(&weights)].0
            }
            Form::VideoGrid => {
                let n = self.rng.below(4) as u8;
                let free = if m.used_u & (1 << n) == 0 {
                    Some(n)
                } else {
                    (0..4u8).find(|i| m.used_u & (1 << i) == 0)
                };
                match free {
                    Some(i) => Action::VideoClip(i + 1),
                    None => {
                        self.new_imagine();
                        return Ok(());
                    }
                }
            }
            Form::Clip { extends, .. } if extends < MAX_EXTENDS && self.rng.per_mille(400) => {
                Action::VideoExtend {
                    high: self.rng.per_mille(500),
                }
            }
            Form::Upscale { upscalers } => {
                let up = if upscalers { 7 } else { 0 };
                let (a, b) = if m.prompt.v5() {
                    (Action::Upscale2x, Action::Upscale4x)
                } else {
                    (Action::UpscaleSubtle, Action::UpscaleCreative)
                };
                let choices = [
                    (Action::VariationStrong, 14),
                    (Action::VariationSubtle, 14),
                    (Action::VariationRegion, 6),
                    (Action::Zoom, 12),
                    (Action::PanLeft, 4),
                    (Action::PanRight, 4),
                    (Action::PanUp, 4),
                    (Action::PanDown, 4),
                    (a, up),
                    (b, up),
                    (Action::Animate { high: true }, 8),
                ];
                let weights: Vec<u32> = choices.iter().map(|c| c.1).collect();
                choices[self.rng.weighted(&weights)].0
            }
            _ => {
                self.new_imagine();
                return Ok(());
            }
        };
        if let Action::Upscale(n) | Action::VideoClip(n) = action {
            self.live[idx].msg.used_u |= 1 << (n - 1);
        }
        if self.marks_before_results {
            if let Some(i) = solo_button(m.form, action, self.now) {
                self.live[idx].msg.used_solo |= 1 << i;
            }
        }
        if self.marks_before_results && matches!(action, Action::Variation(_) | Action::Remix) {
            // Which V was pressed the result does not say; taken from the time, so that both
            // worlds make the same random draws.
            self.live[idx].msg.used_v |= 1 << (self.now.rem_euclid(4000) / 1000);
        }
        let parent = self.live[idx].msg;
        let mut prompt = parent.prompt;
        match action {
            Action::Remix | Action::RemixRegion => {
                prompt.remix = 1 + self.rng.index(REMIX_MODS.len() - 1) as u8;
            }
            Action::Animate { high } if parent.shapes_2026 => {
                prompt.video = Video::Animate { high, raw: true };
            }
            Action::Animate { .. } => prompt.video = Video::Legacy,
            _ => {}
        }
        // Nobody presses a button within seconds of seeing the image.
        let reaction = self.rng.range(25_000, 60_000);
        let base = self.now.max(parent.ts.saturating_add(reaction));
        self.plan_job(
            Some(action),
            Some(parent),
            parent.user,
            parent.channel,
            prompt,
            base,
        );
        Ok(())
    }

    /// Plans all the steps of a job starting at `base` and schedules its first one.
    fn plan_job(
        &mut self,
        action: Option<Action>,
        parent: Option<Msg>,
        user: u32,
        channel: u32,
        prompt: Prompt,
        base: i64,
    ) {
        if action.is_none() {
            self.remember(user, channel, prompt);
        }
        // A root draws its shape (nothing is drawn when the option is 0); a press inherits it.
        let shapes_2026 = match parent {
            Some(p) => p.shapes_2026,
            None => self.draw_2026(),
        };
        let mut prompt = prompt;
        let mut root = Root::Imagine;
        if shapes_2026 && action.is_none() {
            match self.rng.below(100) {
                0..=5 => {
                    root = Root::Blend;
                    prompt = Prompt {
                        body: 0,
                        suffix: 0,
                        remix: 0,
                        video: Video::No,
                        blend: 1 + self.rng.below(2) as u8,
                    };
                }
                6..=17 => {
                    root = Root::Video;
                    prompt.video = Video::Native {
                        high: self.rng.per_mille(500),
                    };
                }
                _ => {}
            }
        }
        let mode = self.pick_mode(user);
        let uuid = self.new_uuid();
        let subtext = self.rng.below(3) == 0;
        let strip = action.is_some() && self.rng.per_mille(self.strip_per_mille);
        let moderated = action.is_none() && self.rng.per_mille(50);
        let with_progress = match action {
            None => true,
            Some(Action::UpscaleV7 { .. } | Action::Animate { .. }) if shapes_2026 => true,
            Some(Action::VideoClip(_) | Action::VideoExtend { .. }) => false,
            Some(a) if a.is_upscale() => false,
            Some(_) => self.rng.per_mille(500),
        };
        // The V7 upscaler's start is already at 0%; an animation's first edit is its
        // `Creating video with prompt ... (Waiting to start)`.
        let zero_start = shapes_2026 && matches!(action, Some(Action::UpscaleV7 { .. }));
        let animating = shapes_2026 && matches!(action, Some(Action::Animate { .. }));
        let modal = shapes_2026 && action.is_some_and(Action::may_use_modal) && self.rng.per_mille(500);
        let extra = match action {
            _ if !shapes_2026 => Extra::No,
            Some(Action::UpscaleV7 { .. } | Action::VideoClip(_) | Action::VideoExtend { .. }) => Extra::No,
            Some(Action::Animate { .. }) => Extra::FullQuality,
            None if root == Root::Video => Extra::FullQuality,
            _ if self.rng.per_mille(500) => Extra::OpenOnWebsite,
            _ => Extra::No,
        };
        let (wait, gap_lo, gap_hi) = match mode_text(mode) {
            "relaxed" => (self.rng.range(2_000, 180_000), 8_000, 25_000),
            "turbo" => (self.rng.range(300, 2_000), 1_500, 4_000),
            _ => (self.rng.range(800, 6_000), 3_000, 10_000),
        };
        let now = base;
        let mut t = [now; 7];
        let mut n_updates = 0u8;
        let mut pcts = [0u8; 3];
        if with_progress {
            t[0] = now.saturating_add(self.rng.range(300, 3_000));
            n_updates = if animating {
                1 + self.rng.below(3) as u8
            } else {
                self.rng.below(4) as u8
            };
            // A sorted random subset of the usual percentages (selection sampling).
            let all: &[u8] = if zero_start {
                &[15, 31, 46, 62, 78, 93]
            } else {
                &[0, 15, 31, 46, 62, 78, 93]
            };
            let mut needed = usize::from(n_updates);
            let mut k = 0;
            for (i, &pct) in all.iter().enumerate() {
                if needed > 0 && self.rng.index(all.len() - i) < needed {
                    pcts[k] = pct;
                    k += 1;
                    needed -= 1;
                }
            }
            let mut cur = t[0].saturating_add(wait);
            for k in 0..usize::from(n_updates) {
                t[1 + k] = cur;
                cur = cur.saturating_add(self.rng.range(gap_lo, gap_hi));
            }
            t[4] = cur.saturating_add(self.rng.range(2_000, 12_000));
            t[5] = if moderated {
                cur.saturating_add(self.rng.range(1_000, 20_000))
            } else {
                t[4].saturating_add(self.rng.range(150, 1_500))
            };
        } else {
            let delay = match action {
                Some(a) if a.is_upscale() => self.rng.range(4_000, 25_000),
                _ => self.rng.range(20_000, 75_000),
            };
            t[4] = now.saturating_add(delay);
            t[5] = t[4];
        }
        // The same draws in both worlds: they differ only in when the marks are written.
        t[6] = t[5].max(t[4]).saturating_add(self.rng.range(300, 4_000));
        let pressed_u = matches!(action, Some(Action::Upscale(_) | Action::VideoClip(_)));
        let pressed_v = matches!(action, Some(Action::Variation(_) | Action::Remix));
        let edit_after = pressed_u && self.rng.per_mille(500);
        let pressed_solo = parent.is_some_and(|p| matches!(p.form, Form::Upscale { .. } | Form::Clip { .. }));
        let grid_edit = if (pressed_u || pressed_v || pressed_solo) && self.marks_before_results {
            t[6] = now;
            Some(MarkAt::Press)
        } else if edit_after {
            Some(MarkAt::AfterResult)
        } else {
            None
        };
        let hoist = if with_progress && self.out_of_order && self.rng.per_mille(50) {
            if n_updates > 0 {
                Hoist::Update
            } else {
                Hoist::Delete
            }
        } else {
            Hoist::No
        };
        let first_stage = if with_progress { Stage::Start } else { Stage::Final };
        let stage = if grid_edit == Some(MarkAt::Press) {
            Stage::GridEdit
        } else {
            first_stage
        };
        if shapes_2026 {
            self.em.stats.jobs_2026 = self.em.stats.jobs_2026.saturating_add(1);
        }
        let job = Job {
            action,
            root,
            shapes_2026,
            modal,
            nonce: None,
            modal_ids: None,
            extra,
            names_job: false,
            parent,
            channel,
            user,
            prompt,
            mode,
            uuid,
            subtext,
            strip,
            moderated,
            grid_edit,
            first_stage,
            hoist,
            n_updates,
            pcts,
            t,
            stage,
            progress: None,
        };
        let at = job.t[stage.time_index()];
        let slot = match self.free.pop() {
            Some(s) => {
                self.jobs[s] = Some(job);
                s
            }
            None => {
                self.jobs.push(Some(job));
                self.jobs.len() - 1
            }
        };
        self.peak_jobs = self.peak_jobs.max(self.jobs.len() - self.free.len());
        self.schedule(at, Ev::Job(slot));
    }

    fn step_job(&mut self, slot: usize) -> io::Result<()> {
        let Some(mut job) = self.jobs.get_mut(slot).and_then(Option::take) else {
            return Ok(());
        };
        match job.stage {
            Stage::Start => self.job_start(&mut job)?,
            Stage::Update(k) => {
                if !(k == 0 && job.hoist == Hoist::Update) {
                    self.job_update(&mut job, k)?;
                }
            }
            Stage::Final => self.job_final(&mut job)?,
            Stage::Delete => {
                if job.hoist != Hoist::Delete {
                    self.job_delete(&job)?;
                }
                if job.moderated {
                    self.em.stats.failed_jobs = self.em.stats.failed_jobs.saturating_add(1);
                    if let Some(start) = job.progress {
                        self.record(TruthRecord::Start {
                            id: start.id,
                            final_id: None,
                            parent_id: job.parent.map(|p| p.id),
                            names_job: job.names_job,
                            shapes_2026: job.shapes_2026,
                        });
                    }
                }
            }
            Stage::GridEdit => self.grid_edit(&job)?,
            Stage::Done => {}
        }
        job.stage = job.next_stage();
        if job.stage == Stage::Done {
            self.free.push(slot);
        } else {
            let at = job.t[job.stage.time_index()];
            if let Some(s) = self.jobs.get_mut(slot) {
                *s = Some(job);
            }
            self.schedule(at, Ev::Job(slot));
        }
        Ok(())
    }

    /// The parent as it is now (from the live window), else the snapshot taken at press time.
    fn current_parent(&self, job: &Job) -> Option<Msg> {
        let p = job.parent?;
        Some(match self.find_live(p.id) {
            Some(i) => self.live[i].msg,
            None => p,
        })
    }

    fn job_start(&mut self, job: &mut Job) -> io::Result<()> {
        let now = self.now;
        let (gw, gh) = job.prompt.grid_dims();
        let interaction = if job.action.is_none() {
            Some(Interaction {
                nonce: self.aux_id(now.saturating_sub(1_300)),
                id: self.aux_id(now.saturating_sub(700)),
                name: if job.root == Root::Blend {
                    "blend"
                } else {
                    "imagine"
                },
            })
        } else {
            None
        };
        if let Some(i) = interaction.filter(|_| job.shapes_2026) {
            // The final carries the nonce of the same interaction.
            job.nonce = Some(i.nonce);
        }
        let parent = self.current_parent(job);
        let modal = self.job_modal(job, now);
        let ref_id = if job.strip || job.modal {
            None
        } else {
            parent.map(|p| p.id)
        };
        let mtype = match (job.action, ref_id) {
            (None, _) => 20,
            _ if modal.is_some() => 20,
            (Some(_), Some(_)) => 19,
            (Some(_), None) => 0,
        };
        let nonce = match job.action {
            Some(_) if job.shapes_2026 => Some(self.job_nonce(job, now)),
            _ => None,
        };
        let (form, marker, att_id) = match job.action {
            Some(Action::Animate { .. }) if job.shapes_2026 => (Form::Animating, Marker::Plain, 0),
            Some(a @ Action::UpscaleV7 { .. }) => {
                job.names_job = true;
                (Form::Progress(Some(0)), a.progress_marker(), self.att_id(now))
            }
            Some(a) if job.shapes_2026 && a.is_zoom_or_pan() => (Form::Progress(None), Marker::Plain, 0),
            Some(a) => (Form::Progress(None), a.marker(), 0),
            None if job.root == Root::Video => (Form::VideoProgress { pct: None, step: 0 }, Marker::Plain, 0),
            None => (Form::Progress(None), Marker::Plain, 0),
        };
        let prompt = job.prompt.at_start();
        let msg = Msg {
            id: self.msg_id(now),
            mtype,
            author: Author::Mj,
            channel: job.channel,
            user: job.user,
            ts: now,
            edited: None,
            prompt,
            mode: job.mode,
            marker,
            form,
            uuid: job.uuid,
            att_id,
            w: gw / 2,
            h: gh / 2,
            subtext: false,
            used_u: 0,
            used_v: 0,
            used_solo: 0,
            ref_id,
            interaction,
            nonce,
            modal,
            extra: Extra::No,
            shapes_2026: job.shapes_2026,
        };
        job.progress = Some(msg);
        let referenced = if ref_id.is_some() { parent } else { None };
        match job.hoist {
            Hoist::Update => self.job_update(job, 0)?,
            Hoist::Delete => self.job_delete(job)?,
            Hoist::No => {}
        }
        self.buf.clear();
        render(&self.world, &mut self.buf, &msg, true, referenced.as_ref());
        self.em.emit("MESSAGE_CREATE", &self.buf)
    }

    fn job_update(&mut self, job: &mut Job, k: u8) -> io::Result<()> {
        let Some(mut msg) = job.progress else {
            return Ok(());
        };
        let at = job.t[Stage::Update(k).time_index()];
        let pct = job.pcts[usize::from(k.min(2))];
        msg.edited = Some(at);
        msg.form = match job.action {
            Some(Action::Animate { .. }) if job.shapes_2026 => Form::VideoProgress {
                pct: if k == 0 { None } else { Some(pct) },
                step: k,
            },
            None if job.root == Root::Video => Form::VideoProgress {
                pct: Some(pct),
                step: k + 1,
            },
            _ => Form::Progress(Some(pct)),
        };
        if let Some(a) = job.action {
            // The same marker as the start's, except 2026 Zoom/Pan (marker from the first
            // percentage) and the V7 upscaler (`Upscaling by`).
            msg.marker = a.progress_marker();
        }
        msg.att_id = self.att_id(at);
        if let Form::VideoProgress { pct: Some(_), .. } = msg.form {
            // Four frames: the ids after `att_id` are kept for them.
            self.ctr = self.ctr.wrapping_add(3);
        }
        if matches!(
            msg.form,
            Form::Progress(Some(_)) | Form::VideoProgress { pct: Some(_), .. }
        ) {
            job.names_job = true;
        }
        job.progress = Some(msg);
        let referenced = if msg.ref_id.is_some() {
            self.current_parent(job)
        } else {
            None
        };
        self.buf.clear();
        render(&self.world, &mut self.buf, &msg, true, referenced.as_ref());
        self.em.emit("MESSAGE_UPDATE", &self.buf)
    }

    fn job_delete(&mut self, job: &Job) -> io::Result<()> {
        let Some(msg) = job.progress else {
            return Ok(());
        };
        self.buf.clear();
        push_delete(&self.world, &mut self.buf, msg.id, msg.channel);
        self.em.emit("MESSAGE_DELETE", &self.buf)
    }

    fn job_final(&mut self, job: &mut Job) -> io::Result<()> {
        let now = self.now;
        let parent = self.current_parent(job);
        let (gw, gh) = job.prompt.grid_dims();
        let (form, w, h) = match job.action {
            None if job.root == Root::Video => {
                let (w, h) = job.prompt.video_grid_dims();
                (Form::VideoGrid, w, h)
            }
            None | Some(Action::Reroll) => (Form::Grid, gw, gh),
            Some(Action::Upscale(_)) => (Form::Upscale { upscalers: true }, gw / 2, gh / 2),
            Some(a) if a.is_upscale() || matches!(a, Action::UpscaleV7 { .. }) => {
                let k = if a == Action::Upscale4x { 4 } else { 2 };
                let (pw, ph) = parent.map_or((gw / 2, gh / 2), |p| (p.w, p.h));
                (
                    Form::Upscale { upscalers: false },
                    pw.saturating_mul(k),
                    ph.saturating_mul(k),
                )
            }
            Some(Action::Animate { .. }) if job.shapes_2026 => {
                let (w, h) = job.prompt.video_grid_dims();
                (Form::VideoGrid, w, h)
            }
            Some(Action::Animate { .. }) => (Form::Video, gw * 5 / 16, gh * 5 / 16),
            Some(Action::VideoClip(cell)) => {
                let (w, h) = job.prompt.clip_dims();
                (Form::Clip { cell, extends: 0 }, w, h)
            }
            Some(Action::VideoExtend { .. }) => {
                let extends = match parent.map(|p| p.form) {
                    Some(Form::Clip { extends, .. }) => extends.saturating_add(1),
                    _ => 1,
                };
                let (w, h) = job.prompt.clip_dims();
                (Form::Clip { cell: 1, extends }, w, h)
            }
            Some(_) => (Form::Grid, gw, gh),
        };
        let start = job.progress;
        // In the 2026 shapes a root's final replies to its own start; a result replies to the
        // pressed message unless stripped or submitted through a modal.
        let (ref_id, referenced) = match job.action {
            None if job.shapes_2026 => (start.map(|s| s.id), start),
            None => (None, None),
            Some(_) if job.strip || job.modal => (None, None),
            Some(_) => (parent.map(|p| p.id), parent),
        };
        let modal = self.job_modal(job, now);
        let mtype = match (job.action, ref_id) {
            (None, None) | (Some(_), None) => 0,
            (None, Some(_)) | (Some(_), Some(_)) => 19,
        };
        let nonce = if job.shapes_2026 {
            Some(self.job_nonce(job, now))
        } else {
            None
        };
        let uuid = match (job.action, parent) {
            // A video U is a "virtual upscale": the clip is a cell of the video grid's job,
            // whose UUID its file name and its Extend buttons name with the cell (assumption
            // read from the doc's `{uuid}_{n}_720_N.mp4` and `animate_high_extend::{n}::{uuid}`).
            (Some(Action::VideoClip(_)), Some(p)) => p.uuid,
            _ => job.uuid,
        };
        let subtext = match form {
            _ if !job.shapes_2026 => job.subtext,
            Form::VideoGrid | Form::Clip { .. } => false,
            _ if job.action.is_none() => true,
            _ if matches!(job.action, Some(Action::UpscaleV7 { .. })) => false,
            _ => job.subtext,
        };
        let att_id = self.att_id(now);
        let msg = Msg {
            id: self.msg_id(now),
            mtype,
            author: Author::Mj,
            channel: job.channel,
            user: job.user,
            ts: now,
            edited: None,
            prompt: job.prompt,
            mode: job.mode,
            marker: job.action.map_or(Marker::Plain, Action::marker),
            form,
            uuid,
            att_id,
            w,
            h,
            subtext,
            used_u: 0,
            used_v: 0,
            used_solo: 0,
            ref_id,
            interaction: None,
            nonce,
            modal,
            extra: job.extra,
            shapes_2026: job.shapes_2026,
        };
        self.buf.clear();
        render(&self.world, &mut self.buf, &msg, true, referenced.as_ref());
        self.em.emit("MESSAGE_CREATE", &self.buf)?;
        match (job.action, parent) {
            (Some(action), Some(p)) => {
                let s = &mut self.em.stats;
                s.results = s.results.saturating_add(1);
                let link = TruthLink {
                    child_id: msg.id,
                    parent_id: p.id,
                    action: action.name(),
                    index: action.index(),
                    has_reference: ref_id.is_some(),
                };
                let carried = if ref_id.is_some() {
                    Carried::Reference
                } else if modal.is_some() {
                    Carried::Interaction
                } else {
                    Carried::Nothing
                };
                self.record(TruthRecord::Result {
                    link,
                    carried,
                    shapes_2026: job.shapes_2026,
                });
            }
            _ => {
                let s = &mut self.em.stats;
                s.grids = s.grids.saturating_add(1);
                if let Some(start) = start {
                    self.record(TruthRecord::Root {
                        id: msg.id,
                        kind: job.root.name(),
                        start_id: start.id,
                        replies_to_start: ref_id.is_some(),
                    });
                }
            }
        }
        if let Some(start) = start {
            self.record(TruthRecord::Start {
                id: start.id,
                final_id: Some(msg.id),
                parent_id: job.parent.map(|p| p.id),
                names_job: job.names_job,
                shapes_2026: job.shapes_2026,
            });
        }
        if matches!(
            form,
            Form::Grid | Form::Upscale { .. } | Form::VideoGrid | Form::Clip { .. }
        ) {
            // Its `referenced_message` when it is edited later: the parent, still there; a
            // root's start is deleted by then (`null`).
            let own_parent = match job.action {
                Some(_) if ref_id.is_some() => parent,
                _ => None,
            };
            self.add_live(msg, own_parent);
        }
        Ok(())
    }

    /// The grid is edited when its U is pressed (or after the result; see
    /// [`TraceOptions::marks_before_results`]): its used U buttons now have style 1.
    fn grid_edit(&mut self, job: &Job) -> io::Result<()> {
        let Some(p) = job.parent else {
            return Ok(());
        };
        let Some(i) = self.find_live(p.id) else {
            return Ok(());
        };
        let live = self.live[i];
        self.buf.clear();
        render(&self.world, &mut self.buf, &live.msg, true, live.parent.as_ref());
        self.em.emit("MESSAGE_UPDATE", &self.buf)
    }

    // ----- one-off messages ------------------------------------------------------------------

    fn simple_msg(&mut self, author: Author, user: u32, channel: u32, form: Form) -> Msg {
        let now = self.now;
        let interaction = match form {
            Form::Describe(_) | Form::Error(_) | Form::Decline(_) | Form::PlainError(_) => {
                Some(Interaction {
                    nonce: self.aux_id(now.saturating_sub(900)),
                    id: self.aux_id(now.saturating_sub(500)),
                    name: if matches!(form, Form::Describe(_)) {
                        "describe"
                    } else {
                        "imagine"
                    },
                })
            }
            _ => None,
        };
        let att_id = self.att_id(now);
        Msg {
            id: self.msg_id(now),
            mtype: if interaction.is_some() { 20 } else { 0 },
            author,
            channel,
            user,
            ts: now,
            edited: None,
            prompt: Prompt {
                body: 0,
                suffix: 0,
                remix: 0,
                video: Video::No,
                blend: 0,
            },
            mode: 0,
            marker: Marker::Plain,
            form,
            uuid: 0,
            att_id,
            w: 1170,
            h: 2532,
            subtext: false,
            used_u: 0,
            used_v: 0,
            used_solo: 0,
            ref_id: None,
            interaction,
            nonce: None,
            modal: None,
            extra: Extra::No,
            shapes_2026: false,
        }
    }

    fn emit_create(&mut self, msg: &Msg, referenced: Option<&Msg>) -> io::Result<()> {
        self.buf.clear();
        render(&self.world, &mut self.buf, msg, true, referenced);
        self.em.emit("MESSAGE_CREATE", &self.buf)
    }

    /// "Slow Down!": a used U button pressed again. Replies to the grid; not a result.
    fn slow_down(&mut self, idx: usize) -> io::Result<()> {
        let grid = self.live[idx].msg;
        let mut msg = self.simple_msg(Author::Mj, grid.user, grid.channel, Form::SlowDown);
        msg.mtype = 19;
        msg.ref_id = Some(grid.id);
        self.emit_create(&msg, Some(&grid))?;
        self.record(TruthRecord::NotAJob {
            id: msg.id,
            what: "slow_down",
        });
        Ok(())
    }

    /// The favourite (❤️) button of a 2026 single image: a reply confirming the rating, with
    /// the nonce of the press. Not a job.
    fn favourite(&mut self, idx: usize) -> io::Result<()> {
        let rated = self.live[idx].msg;
        let nonce = self.aux_id(self.now.saturating_sub(1_100));
        let mut msg = self.simple_msg(Author::Mj, rated.user, rated.channel, Form::Favourite);
        msg.mtype = 19;
        msg.ref_id = Some(rated.id);
        msg.nonce = Some(nonce);
        msg.shapes_2026 = true;
        self.emit_create(&msg, Some(&rated))?;
        self.record(TruthRecord::NotAJob {
            id: msg.id,
            what: "favourite",
        });
        Ok(())
    }

    fn public_error(&mut self) -> io::Result<()> {
        let user = self.rng.index(self.world.users.len()) as u32;
        let channel = self.pick_channel(user);
        let form = if self.draw_2026() {
            if self.rng.per_mille(500) {
                Form::Decline(self.rng.index(DECLINES.len()) as u8)
            } else {
                Form::PlainError(self.rng.index(PLAIN_ERRORS.len()) as u8)
            }
        } else {
            Form::Error(self.rng.index(ERRORS.len()) as u8)
        };
        let msg = self.simple_msg(Author::Mj, user, channel, form);
        self.emit_create(&msg, None)?;
        self.record(TruthRecord::NotAJob {
            id: msg.id,
            what: "error",
        });
        Ok(())
    }

    fn describe(&mut self) -> io::Result<()> {
        let user = self.rng.index(self.world.users.len()) as u32;
        let channel = self.pick_channel(user);
        let d = self.rng.index(DESCRIBES.len()) as u8;
        let msg = self.simple_msg(Author::Mj, user, channel, Form::Describe(d));
        self.emit_create(&msg, None)?;
        self.record(TruthRecord::NotAJob {
            id: msg.id,
            what: "describe",
        });
        Ok(())
    }

    fn human(&mut self) -> io::Result<()> {
        let user = self.rng.index(self.world.users.len()) as u32;
        let mut channel = self.pick_channel(user);
        let reply_to = if self.rng.per_mille(150) {
            self.pick_live().map(|i| self.live[i].msg)
        } else {
            None
        };
        if let Some(t) = reply_to {
            channel = t.channel;
        }
        if self.rng.per_mille(300) {
            self.typing(Some((user, channel)))?;
        }
        let form = Form::Human {
            text: self.rng.index(HUMAN_TEXTS.len()) as u8,
            attachment: self.rng.per_mille(150),
        };
        let mut msg = self.simple_msg(Author::Human, user, channel, form);
        if let Some(t) = reply_to {
            msg.mtype = 19;
            msg.ref_id = Some(t.id);
        }
        self.emit_create(&msg, reply_to.as_ref())
    }

    fn typing(&mut self, who: Option<(u32, u32)>) -> io::Result<()> {
        let (user, channel) = match who {
            Some(w) => w,
            None => {
                let u = self.rng.index(self.world.users.len()) as u32;
                (u, self.pick_channel(u))
            }
        };
        let b = &mut self.buf;
        b.clear();
        b.push_str("{\"channel_id\":\"");
        push_num(b, self.world.channel(channel).0);
        b.push_str("\",\"user_id\":\"");
        push_num(b, self.world.user(user).id);
        b.push_str("\",\"timestamp\":");
        push_num(b, (self.now.max(0) / 1000) as u64);
        b.push('}');
        self.em.emit("TYPING_START", &self.buf)
    }

    fn reaction(&mut self) -> io::Result<()> {
        let Some(i) = self.pick_live() else {
            return self.typing(None);
        };
        let target = self.live[i].msg;
        let user = self.rng.index(self.world.users.len()) as u32;
        let emoji = ["👍", "❤️", "🔥", "😍"][self.rng.index(4)];
        let b = &mut self.buf;
        b.clear();
        b.push_str("{\"user_id\":\"");
        push_num(b, self.world.user(user).id);
        b.push_str("\",\"channel_id\":\"");
        push_num(b, self.world.channel(target.channel).0);
        b.push_str("\",\"message_id\":\"");
        push_num(b, target.id);
        b.push_str("\",\"emoji\":{\"id\":null,\"name\":\"");
        b.push_str(emoji);
        b.push_str("\"}}");
        self.em.emit("MESSAGE_REACTION_ADD", &self.buf)
    }

    /// A different bot copying Midjourney: a grid with the same text as a real one, or an
    /// `Image #1` replying to a real grid (or to its own copy). Never a result.
    fn impostor(&mut self) -> io::Result<()> {
        let Some(i) = self.pick_live() else {
            return self.typing(None);
        };
        let real = self.live[i].msg;
        if real.form != Form::Grid {
            return self.typing(None);
        }
        let now = self.now;
        let att_id = self.att_id(now);
        let mut msg = real;
        msg.id = self.msg_id(now);
        msg.author = Author::Impostor;
        msg.ts = now;
        msg.edited = None;
        msg.uuid = self.new_uuid();
        msg.att_id = att_id;
        msg.used_u = 0;
        msg.used_v = 0;
        msg.used_solo = 0;
        msg.ref_id = None;
        msg.nonce = None;
        msg.modal = None;
        if self.rng.per_mille(500) {
            msg.mtype = 0;
            self.impostor_last = Some(msg);
            return self.emit_create(&msg, None);
        }
        let target = match self.impostor_last {
            Some(own) if self.rng.per_mille(500) => own,
            _ => real,
        };
        msg.mtype = 19;
        msg.prompt = target.prompt;
        msg.user = target.user;
        msg.channel = target.channel;
        msg.marker = Marker::Image(1);
        msg.form = Form::Upscale { upscalers: true };
        msg.w = target.w / 2;
        msg.h = target.h / 2;
        msg.ref_id = Some(target.id);
        self.emit_create(&msg, Some(&target))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON rendering (hand-written for speed; every string goes through `push_esc`)

fn push_num(b: &mut String, n: u64) {
    let _ = write!(b, "{n}");
}

fn push_esc(b: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => b.push_str("\\\""),
            '\\' => b.push_str("\\\\"),
            '\n' => b.push_str("\\n"),
            '\r' => b.push_str("\\r"),
            '\t' => b.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(b, "\\u{:04x}", u32::from(c));
            }
            c => b.push(c),
        }
    }
}

/// Unix milliseconds as `2024-05-01T00:00:03.120000+00:00`.
fn push_ts(b: &mut String, ms: i64) {
    let ms = ms.clamp(0, 253_402_300_799_999);
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    let _ = write!(
        b,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    );
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A job UUID in its 8-4-4-4-12 form.
struct UuidStr([u8; 36]);

impl UuidStr {
    fn new(u: u128) -> UuidStr {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = [b'-'; 36];
        let mut pos = 0;
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                pos += 1;
            }
            s[pos] = HEX[((u >> (124 - 4 * i)) & 0xf) as usize];
            pos += 1;
        }
        UuidStr(s)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// ASCII file-name slug of a prompt (as Midjourney builds it): parameters and links dropped,
/// words joined by `_`, only ASCII letters, digits, `.`, `-` and `_` kept, at most 40 bytes.
fn push_slug(b: &mut String, p: Prompt) {
    let start = b.len();
    if p.blend != 0 {
        return;
    }
    let mut text = String::with_capacity(128);
    text.push_str(body_text(p.body));
    text.push_str(remix_text(p.remix));
    for word in text.split_whitespace() {
        if word.starts_with("<http") || word.starts_with("http") {
            continue;
        }
        let mut first = true;
        for c in word.chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                if first {
                    if b.len() > start {
                        b.push('_');
                    }
                    first = false;
                }
                b.push(c);
            }
        }
    }
    if b.len() > start + 40 {
        b.truncate(start + 40);
    }
}

fn push_prompt(b: &mut String, p: Prompt) {
    match (p.video, p.blend) {
        (Video::No | Video::Legacy, 0) => {
            push_esc(b, body_text(p.body));
            push_esc(b, remix_text(p.remix));
            push_esc(b, suffix(p.suffix).text);
            if p.video == Video::Legacy {
                b.push_str(VIDEO_SUFFIX);
            }
        }
        _ => push_esc(b, &prompt_2026(p)),
    }
}

/// The echo of a blend or of a 2026 video prompt (section 9): a video drops `--ar` and `--no`
/// and gains `[--raw] --motion high|low --video 1 --aspect W:H`.
fn prompt_2026(p: Prompt) -> String {
    let mut text = String::with_capacity(160);
    if let Video::Native { .. } = p.video {
        text.push_str(VIDEO_IMAGE);
        text.push(' ');
    }
    let params = match p.blend {
        0 => {
            text.push_str(body_text(p.body));
            suffix(p.suffix).text
        }
        1 => "",
        _ => BLEND_PARAMS,
    };
    text.push_str(remix_text(p.remix));
    let (high, raw) = match p.video {
        Video::No => {
            text.push_str(params);
            return text.trim_start().to_string();
        }
        Video::Legacy => {
            text.push_str(params);
            text.push_str(VIDEO_SUFFIX);
            return text.trim_start().to_string();
        }
        Video::Animate { high, raw } => (high, raw),
        Video::Native { high } => (high, false),
    };
    let mut aspect = "1:1";
    for part in params.split(" --").skip(1) {
        if let Some(ratio) = part.strip_prefix("ar ") {
            aspect = ratio;
        } else if !part.starts_with("no ") {
            text.push_str(" --");
            text.push_str(part);
        }
    }
    if raw {
        text.push_str(" --raw");
    }
    text.push_str(if high { " --motion high" } else { " --motion low" });
    text.push_str(" --video 1 --aspect ");
    text.push_str(aspect);
    text.trim_start().to_string()
}

fn push_user_obj(w: &World, b: &mut String, user: u32) {
    let u = w.user(user);
    b.push_str("{\"id\":\"");
    push_num(b, u.id);
    b.push_str("\",\"username\":\"");
    push_esc(b, &u.name);
    b.push_str("\",\"discriminator\":\"0\",\"avatar\":null,\"public_flags\":0}");
}

fn push_author(w: &World, b: &mut String, m: &Msg) {
    match m.author {
        Author::Mj | Author::Impostor => {
            let id = if m.author == Author::Mj {
                MIDJOURNEY_BOT_ID
            } else {
                IMPOSTOR_BOT_ID
            };
            b.push_str("{\"id\":\"");
            push_num(b, id);
            b.push_str(
                "\",\"username\":\"Midjourney Bot\",\"discriminator\":\"9282\",\"avatar\":null,\"public_flags\":0,\"bot\":true}",
            );
        }
        Author::Human => push_user_obj(w, b, m.user),
    }
}

fn push_content(w: &World, b: &mut String, m: &Msg) {
    b.push('"');
    match m.form {
        Form::Grid
        | Form::Upscale { .. }
        | Form::Video
        | Form::Progress(_)
        | Form::VideoGrid
        | Form::Clip { .. }
        | Form::VideoProgress { .. } => {
            if let Form::VideoProgress { .. } = m.form {
                b.push_str("Creating video with prompt ");
            }
            b.push_str("**");
            push_prompt(b, m.prompt);
            b.push_str("** - ");
            match m.marker {
                Marker::Plain => {}
                Marker::Image(n) => {
                    b.push_str("Image #");
                    push_num(b, u64::from(n));
                    b.push(' ');
                }
                Marker::Text(t) => {
                    b.push_str(t);
                    b.push(' ');
                }
            }
            b.push_str("<@");
            push_num(b, w.user(m.user).id);
            b.push('>');
            match (m.form, m.marker) {
                (Form::Progress(None) | Form::VideoProgress { pct: None, .. }, _) => {
                    b.push_str(" (Waiting to start)");
                }
                (Form::Progress(Some(p)) | Form::VideoProgress { pct: Some(p), .. }, _) => {
                    b.push_str(" (");
                    push_num(b, u64::from(p));
                    b.push_str("%) (");
                    b.push_str(mode_text(m.mode));
                    b.push(')');
                }
                (_, Marker::Image(_)) => {}
                _ => {
                    match m.extra {
                        Extra::No => {}
                        Extra::OpenOnWebsite => {
                            b.push_str(" [(Open on website)](<https://midjourney.com/jobs/");
                            b.push_str(UuidStr::new(m.uuid).as_str());
                            b.push_str(">)");
                        }
                        Extra::FullQuality => {
                            b.push_str(" [(Open on website for full quality)](<https://midjourney.com/jobs/");
                            b.push_str(UuidStr::new(m.uuid).as_str());
                            b.push_str(">)");
                        }
                    }
                    b.push_str(" (");
                    b.push_str(mode_text(m.mode));
                    b.push(')');
                    if m.subtext {
                        push_esc(b, SUBTEXT);
                    }
                }
            }
        }
        Form::Human { text, .. } => {
            push_esc(b, HUMAN_TEXTS.get(usize::from(text)).copied().unwrap_or(""));
        }
        Form::Animating => b.push_str("Animating..."),
        Form::Favourite => {
            let (channel_id, guild_id) = w.channel(m.channel);
            let _ = write!(
                b,
                "You have successfully rated [this job](https://discord.com/channels/{guild_id}/{channel_id}/{}) with 😍",
                m.ref_id.unwrap_or(0)
            );
        }
        Form::PlainError(i) => {
            push_esc(b, PLAIN_ERRORS.get(usize::from(i)).copied().unwrap_or(""));
        }
        Form::Describe(_) | Form::Error(_) | Form::SlowDown | Form::Decline(_) => {}
    }
    b.push('"');
}

/// An array of one attachment object.
fn push_attachment(b: &mut String, m: &Msg, channel_id: u64, filename: &str, content_type: &str) {
    b.push('[');
    let file = File {
        att_id: m.att_id,
        name: filename,
        content_type,
        width: m.w,
        height: m.h,
    };
    push_attachment_object(b, m, channel_id, &file);
    b.push(']');
}

/// One attached file of a message.
struct File<'a> {
    att_id: u64,
    name: &'a str,
    content_type: &'a str,
    width: u32,
    height: u32,
}

/// One attachment object with a signed CDN URL.
fn push_attachment_object(b: &mut String, m: &Msg, channel_id: u64, file: &File<'_>) {
    let issued = (m.edited.unwrap_or(m.ts).max(0) / 1000) as u64;
    let h = mix(file.att_id);
    let pixels = u64::from(file.width) * u64::from(file.height);
    let size = match m.form {
        Form::Progress(_) => pixels / 8 + h % 40_000,
        Form::VideoProgress { .. } => pixels / 4 + h % 8_000,
        Form::Video | Form::VideoGrid => 2_000_000 + h % 3_000_000,
        Form::Clip { extends, .. } => (3_000_000 + h % 2_000_000) * (1 + u64::from(extends)),
        _ => pixels * (1_200 + h % 800) / 1_000,
    };
    let mut url = String::with_capacity(256);
    url.push_str("/attachments/");
    push_num(&mut url, channel_id);
    url.push('/');
    push_num(&mut url, file.att_id);
    url.push('/');
    url.push_str(file.name);
    let _ = write!(
        url,
        "?ex={:08x}&is={:08x}&hm={:016x}{:016x}{:016x}{:016x}&",
        issued + 86_400,
        issued,
        mix(h ^ 1),
        mix(h ^ 2),
        mix(h ^ 3),
        mix(h ^ 4)
    );
    b.push_str("{\"id\":\"");
    push_num(b, file.att_id);
    b.push_str("\",\"filename\":\"");
    push_esc(b, file.name);
    b.push_str("\",\"size\":");
    push_num(b, size);
    b.push_str(",\"url\":\"https://cdn.discordapp.com");
    push_esc(b, &url);
    b.push_str("\",\"proxy_url\":\"https://media.discordapp.net");
    push_esc(b, &url);
    b.push_str("\",\"width\":");
    push_num(b, u64::from(file.width));
    b.push_str(",\"height\":");
    push_num(b, u64::from(file.height));
    b.push_str(",\"content_type\":\"");
    b.push_str(file.content_type);
    b.push_str("\"}");
}

fn push_attachments(w: &World, b: &mut String, m: &Msg) {
    let channel_id = w.channel(m.channel).0;
    let uuid = UuidStr::new(m.uuid);
    match m.form {
        Form::Grid | Form::Upscale { .. } | Form::Video | Form::VideoGrid => {
            let mut name = String::with_capacity(128);
            name.push_str(&w.user(m.user).name);
            name.push('_');
            push_slug(&mut name, m.prompt);
            name.push('_');
            name.push_str(uuid.as_str());
            if matches!(m.form, Form::Video | Form::VideoGrid) {
                name.push_str(".webp");
                push_attachment(b, m, channel_id, &name, "image/webp");
            } else {
                name.push_str(".png");
                push_attachment(b, m, channel_id, &name, "image/png");
            }
        }
        Form::Progress(Some(_)) => {
            let name = format!("{}_grid_0.webp", uuid.as_str());
            push_attachment(b, m, channel_id, &name, "image/webp");
        }
        Form::Clip { cell, .. } => {
            // `_N` is literal in the doc's `{uuid}_{n}_720_N.mp4`; `n` is the cell, as in the
            // video U button that made the clip (1..=4).
            let name = format!("{}_{cell}_720_N.mp4", uuid.as_str());
            push_attachment(b, m, channel_id, &name, "video/mp4");
        }
        Form::VideoProgress { pct: Some(_), step } => {
            // Four frames, one per cell (numbered from 0, as the CDN's `0_{i}` tiles).
            b.push('[');
            for cell in 0..4u64 {
                if cell > 0 {
                    b.push(',');
                }
                let name = format!("{}_{cell}_step_{step}.jpeg", uuid.as_str());
                let file = File {
                    att_id: m.att_id.wrapping_add(cell),
                    name: &name,
                    content_type: "image/jpeg",
                    width: VIDEO_FRAME_PIXELS,
                    height: VIDEO_FRAME_PIXELS,
                };
                push_attachment_object(b, m, channel_id, &file);
            }
            b.push(']');
        }
        Form::Human { attachment: true, .. } => push_attachment(b, m, channel_id, "image.png", "image/png"),
        _ => b.push_str("[]"),
    }
}

fn push_embeds(b: &mut String, m: &Msg) {
    let (title, description, color) = match m.form {
        Form::Describe(i) => {
            b.push_str("[{\"type\":\"rich\",\"description\":\"");
            push_esc(b, DESCRIBES.get(usize::from(i)).copied().unwrap_or(""));
            b.push_str("\",\"color\":3447003}]");
            return;
        }
        Form::Error(i) => ERRORS.get(usize::from(i)).copied().unwrap_or(ERRORS[0]),
        Form::Decline(i) => {
            // Not a red embed: no colour; the decline code in the footer (section 9).
            b.push_str(
                "[{\"type\":\"rich\",\"title\":\"Sorry, something went wrong\",\"footer\":{\"text\":\"",
            );
            push_esc(b, DECLINES.get(usize::from(i)).copied().unwrap_or(DECLINES[0]));
            b.push_str("\"}}]");
            return;
        }
        Form::SlowDown => (
            "Slow Down!",
            "You've already upscaled this image. Please wait a moment and try a different button.",
            15548997,
        ),
        _ => {
            b.push_str("[]");
            return;
        }
    };
    b.push_str("[{\"type\":\"rich\",\"title\":\"");
    push_esc(b, title);
    b.push_str("\",\"description\":\"");
    push_esc(b, description);
    b.push_str("\",\"color\":");
    push_num(b, u64::from(color));
    b.push_str("}]");
}

/// One button: `{"type":2,"custom_id":..,"style":..[,"label":..][,"emoji":{"name":..}]}`.
fn push_button(b: &mut String, id: &[&str], style: u8, label: &str, emoji: &str) {
    b.push_str("{\"type\":2,\"custom_id\":\"");
    for part in id {
        b.push_str(part);
    }
    b.push_str("\",\"style\":");
    push_num(b, u64::from(style));
    if !label.is_empty() {
        b.push_str(",\"label\":\"");
        b.push_str(label);
        b.push('"');
    }
    if !emoji.is_empty() {
        b.push_str(",\"emoji\":{\"name\":\"");
        b.push_str(emoji);
        b.push_str("\"}");
    }
    b.push('}');
}

/// Which button of an upscaled image or a clip of `form` makes `action` (its place among the
/// buttons [`push_components`] renders: Vary (Strong), Vary (Subtle), Vary (Region), the two
/// upscalers, Zoom Out 2x, Zoom Out 1.5x, Custom Zoom, the four pans, Animate (High), Animate
/// (Low); a clip's Extend (High), Extend (Low)). A zoom does not say which zoom button: taken
/// from the time, so that both worlds make the same random draws.
fn solo_button(form: Form, action: Action, now: i64) -> Option<u8> {
    match (form, action) {
        (Form::Upscale { .. }, action) => Some(match action {
            Action::VariationStrong => 0,
            Action::VariationSubtle => 1,
            Action::VariationRegion | Action::RemixRegion => 2,
            Action::Upscale2x | Action::UpscaleSubtle | Action::UpscaleV7 { creative: false } => 3,
            Action::Upscale4x | Action::UpscaleCreative | Action::UpscaleV7 { creative: true } => 4,
            Action::Zoom => 5 + (now.rem_euclid(3000) / 1000) as u8,
            Action::PanLeft => 8,
            Action::PanRight => 9,
            Action::PanUp => 10,
            Action::PanDown => 11,
            Action::Animate { high: true } => 12,
            Action::Animate { high: false } => 13,
            _ => return None,
        }),
        (Form::Clip { .. }, Action::VideoExtend { high }) => Some(if high { 0 } else { 1 }),
        _ => None,
    }
}

fn push_components(b: &mut String, m: &Msg) {
    let uuid = UuidStr::new(m.uuid);
    let u = uuid.as_str();
    const DIGITS: [&str; 5] = ["0", "1", "2", "3", "4"];
    const U_LABELS: [&str; 5] = ["", "U1", "U2", "U3", "U4"];
    const V_LABELS: [&str; 5] = ["", "V1", "V2", "V3", "V4"];
    match m.form {
        Form::Grid => {
            b.push_str("[{\"type\":1,\"components\":[");
            for n in 1..=4 {
                let style = if m.used_u & (1 << (n - 1)) != 0 { 1 } else { 2 };
                push_button(
                    b,
                    &["MJ::JOB::upsample::", DIGITS[n], "::", u],
                    style,
                    U_LABELS[n],
                    "",
                );
                b.push(',');
            }
            push_button(b, &["MJ::JOB::reroll::0::", u, "::SOLO"], 2, "", "🔄");
            b.push_str("]},{\"type\":1,\"components\":[");
            for n in 1..=4 {
                if n > 1 {
                    b.push(',');
                }
                let style = if m.used_v & (1 << (n - 1)) != 0 { 1 } else { 2 };
                push_button(
                    b,
                    &["MJ::JOB::variation::", DIGITS[n], "::", u],
                    style,
                    V_LABELS[n],
                    "",
                );
            }
            b.push_str("]}]");
        }
        Form::Upscale { upscalers } => {
            let solo_style = |i: u8| if m.used_solo & (1 << i) != 0 { 1 } else { 2 };
            b.push_str("[{\"type\":1,\"components\":[");
            push_button(
                b,
                &["MJ::JOB::high_variation::1::", u, "::SOLO"],
                solo_style(0),
                "Vary (Strong)",
                "🪄",
            );
            b.push(',');
            push_button(
                b,
                &["MJ::JOB::low_variation::1::", u, "::SOLO"],
                solo_style(1),
                "Vary (Subtle)",
                "🪄",
            );
            b.push(',');
            push_button(
                b,
                &["MJ::Inpaint::1::", u, "::SOLO"],
                solo_style(2),
                "Vary (Region)",
                "🖌️",
            );
            b.push_str("]},");
            if upscalers {
                b.push_str("{\"type\":1,\"components\":[");
                if m.prompt.v5() {
                    push_button(
                        b,
                        &["MJ::JOB::upsample_v5_2x::1::", u, "::SOLO"],
                        solo_style(3),
                        "Upscale (2x)",
                        "",
                    );
                    b.push(',');
                    push_button(
                        b,
                        &["MJ::JOB::upsample_v5_4x::1::", u, "::SOLO"],
                        solo_style(4),
                        "Upscale (4x)",
                        "",
                    );
                } else {
                    let (subtle, creative) = if m.shapes_2026 {
                        (
                            "MJ::JOB::upsample_v7_2x_subtle::1::",
                            "MJ::JOB::upsample_v7_2x_creative::1::",
                        )
                    } else {
                        (
                            "MJ::JOB::upsample_v6_2x_subtle::1::",
                            "MJ::JOB::upsample_v6_2x_creative::1::",
                        )
                    };
                    push_button(b, &[subtle, u, "::SOLO"], solo_style(3), "Upscale (Subtle)", "");
                    b.push(',');
                    push_button(
                        b,
                        &[creative, u, "::SOLO"],
                        solo_style(4),
                        "Upscale (Creative)",
                        "",
                    );
                }
                b.push_str("]},");
            }
            b.push_str("{\"type\":1,\"components\":[");
            push_button(
                b,
                &["MJ::Outpaint::50::1::", u, "::SOLO"],
                solo_style(5),
                "Zoom Out 2x",
                "🔍",
            );
            b.push(',');
            push_button(
                b,
                &["MJ::Outpaint::75::1::", u, "::SOLO"],
                solo_style(6),
                "Zoom Out 1.5x",
                "🔍",
            );
            b.push(',');
            push_button(b, &["MJ::CustomZoom::", u], solo_style(7), "Custom Zoom", "🔍");
            b.push_str("]},{\"type\":1,\"components\":[");
            let pans = [("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️")];
            for (i, (dir, emoji)) in pans.iter().enumerate() {
                if i > 0 {
                    b.push(',');
                }
                push_button(
                    b,
                    &["MJ::JOB::pan_", dir, "::1::", u, "::SOLO"],
                    solo_style(8 + i as u8),
                    "",
                    emoji,
                );
            }
            b.push_str("]},{\"type\":1,\"components\":[");
            push_button(
                b,
                &["MJ::JOB::animate_high::1::", u, "::SOLO"],
                solo_style(12),
                "Animate (High motion)",
                "🎞️",
            );
            b.push(',');
            if m.shapes_2026 {
                push_button(
                    b,
                    &["MJ::JOB::animate_low::1::", u, "::SOLO"],
                    solo_style(13),
                    "Animate (Low motion)",
                    "🎞️",
                );
                b.push(',');
            }
            push_button(b, &["MJ::BOOKMARK::", u], 2, "", "❤️");
            b.push_str(
                ",{\"type\":2,\"style\":5,\"label\":\"Web\",\"url\":\"https://www.midjourney.com/jobs/",
            );
            b.push_str(u);
            b.push_str("\"}]}]");
        }
        Form::Progress(Some(_)) | Form::VideoProgress { pct: Some(_), .. } => {
            b.push_str("[{\"type\":1,\"components\":[");
            push_button(b, &["MJ::CancelJob::ByJobid::", u], 2, "Cancel Job", "");
            b.push_str("]}]");
        }
        Form::VideoGrid => {
            b.push_str("[{\"type\":1,\"components\":[");
            for n in 1..=4 {
                if n > 1 {
                    b.push(',');
                }
                let style = if m.used_u & (1 << (n - 1)) != 0 { 1 } else { 2 };
                push_button(
                    b,
                    &["MJ::JOB::video_virtual_upscale::", DIGITS[n], "::", u],
                    style,
                    U_LABELS[n],
                    "",
                );
            }
            b.push_str("]}]");
        }
        Form::Clip { cell, .. } => {
            let solo_style = |i: u8| if m.used_solo & (1 << i) != 0 { 1 } else { 2 };
            let cell = DIGITS.get(usize::from(cell)).copied().unwrap_or("1");
            b.push_str("[{\"type\":1,\"components\":[");
            push_button(
                b,
                &["MJ::JOB::animate_high_extend::", cell, "::", u],
                solo_style(0),
                "Extend (High motion)",
                "",
            );
            b.push(',');
            push_button(
                b,
                &["MJ::JOB::animate_low_extend::", cell, "::", u],
                solo_style(1),
                "Extend (Low motion)",
                "",
            );
            b.push_str("]}]");
        }
        Form::Describe(_) => {
            b.push_str("[{\"type\":1,\"components\":[");
            for digit in &DIGITS[1..] {
                push_button(b, &["MJ::Job::PicReader::", digit], 2, digit, "");
                b.push(',');
            }
            push_button(b, &["MJ::Picread::Retry"], 2, "", "🔄");
            b.push_str("]}]");
        }
        _ => b.push_str("[]"),
    }
}

/// A message object. `top`: a dispatch payload (adds `guild_id` and `referenced_message`);
/// otherwise the nested `referenced_message` object (no `guild_id`, no nesting).
fn render(w: &World, b: &mut String, m: &Msg, top: bool, referenced: Option<&Msg>) {
    let (channel_id, guild_id) = w.channel(m.channel);
    b.push_str("{\"id\":\"");
    push_num(b, m.id);
    b.push_str("\",\"type\":");
    push_num(b, u64::from(m.mtype));
    b.push_str(",\"content\":");
    push_content(w, b, m);
    b.push_str(",\"channel_id\":\"");
    push_num(b, channel_id);
    b.push_str("\",\"author\":");
    push_author(w, b, m);
    b.push_str(",\"attachments\":");
    push_attachments(w, b, m);
    b.push_str(",\"embeds\":");
    push_embeds(b, m);
    b.push_str(",\"mentions\":");
    if m.author == Author::Human || matches!(m.form, Form::Animating | Form::Favourite | Form::PlainError(_))
    {
        b.push_str("[]");
    } else {
        b.push('[');
        push_user_obj(w, b, m.user);
        b.push(']');
    }
    b.push_str(
        ",\"mention_roles\":[],\"pinned\":false,\"mention_everyone\":false,\"tts\":false,\"timestamp\":\"",
    );
    push_ts(b, m.ts);
    b.push_str("\",\"edited_timestamp\":");
    match m.edited {
        Some(e) => {
            b.push('"');
            push_ts(b, e);
            b.push('"');
        }
        None => b.push_str("null"),
    }
    b.push_str(",\"flags\":0,\"components\":");
    push_components(b, m);
    if let Some(i) = m.interaction {
        let app = if m.author == Author::Impostor {
            IMPOSTOR_BOT_ID
        } else {
            MIDJOURNEY_BOT_ID
        };
        b.push_str(",\"nonce\":\"");
        push_num(b, i.nonce);
        b.push_str("\",\"webhook_id\":\"");
        push_num(b, app);
        b.push_str("\",\"application_id\":\"");
        push_num(b, app);
        b.push_str("\",\"interaction\":{\"id\":\"");
        push_num(b, i.id);
        b.push_str("\",\"type\":2,\"name\":\"");
        b.push_str(i.name);
        b.push_str("\",\"user\":");
        push_user_obj(w, b, m.user);
        b.push('}');
    } else if m.author == Author::Human {
        b.push_str(",\"nonce\":\"");
        push_num(b, m.id.saturating_sub(211 << 22));
        b.push('"');
    } else if let Some(nonce) = m.nonce {
        b.push_str(",\"nonce\":\"");
        push_num(b, nonce);
        b.push('"');
    }
    if let Some(modal) = m.modal {
        // A job submitted through a modal: the parent only in the press that opened it.
        b.push_str(",\"webhook_id\":\"");
        push_num(b, MIDJOURNEY_BOT_ID);
        b.push_str("\",\"application_id\":\"");
        push_num(b, MIDJOURNEY_BOT_ID);
        b.push_str("\",\"interaction_metadata\":{\"id\":\"");
        push_num(b, modal.id);
        b.push_str("\",\"type\":5,\"user\":");
        push_user_obj(w, b, m.user);
        b.push_str(",\"authorizing_integration_owners\":{\"0\":\"");
        push_num(b, guild_id);
        b.push_str("\"},\"triggering_interaction_metadata\":{\"id\":\"");
        push_num(b, modal.trigger_id);
        b.push_str("\",\"type\":3,\"user\":");
        push_user_obj(w, b, m.user);
        b.push_str(",\"authorizing_integration_owners\":{\"0\":\"");
        push_num(b, guild_id);
        b.push_str("\"},\"interacted_message_id\":\"");
        push_num(b, modal.target);
        b.push_str("\"}}");
    }
    if let Some(r) = m.ref_id {
        b.push_str(",\"message_reference\":{\"channel_id\":\"");
        push_num(b, channel_id);
        b.push_str("\",\"message_id\":\"");
        push_num(b, r);
        b.push_str("\",\"guild_id\":\"");
        push_num(b, guild_id);
        b.push_str("\"}");
        if top {
            b.push_str(",\"referenced_message\":");
            match referenced {
                Some(p) => render(w, b, p, false, None),
                None => b.push_str("null"),
            }
        }
    }
    if top {
        b.push_str(",\"guild_id\":\"");
        push_num(b, guild_id);
        b.push('"');
    }
    b.push('}');
}

fn push_delete(w: &World, b: &mut String, id: u64, channel: u32) {
    let (channel_id, guild_id) = w.channel(channel);
    b.push_str("{\"id\":\"");
    push_num(b, id);
    b.push_str("\",\"channel_id\":\"");
    push_num(b, channel_id);
    b.push_str("\",\"guild_id\":\"");
    push_num(b, guild_id);
    b.push_str("\"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    /// The second line of 2025+ finals, as the doc writes it.
    const SUBTEXT_TEXT: &str =
        "\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)";

    fn run(opts: &TraceOptions) -> (Vec<u8>, Vec<TruthLink>, TraceStats) {
        let mut out = Vec::new();
        let mut truth = Vec::new();
        let stats = generate(opts, &mut out, &mut |t| truth.push(t)).unwrap();
        (out, truth, stats)
    }

    fn opts(seed: u64, events: usize) -> TraceOptions {
        TraceOptions {
            seed,
            events,
            ..TraceOptions::default()
        }
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn id_of(v: &Value) -> u64 {
        v.as_str().unwrap().parse().unwrap()
    }

    fn ms_of(ts: &Value) -> i64 {
        chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn same_options_give_identical_bytes() {
        let a = run(&opts(42, 3_000));
        let b = run(&opts(42, 3_000));
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_eq!(a.2, b.2);
        let c = run(&opts(43, 3_000));
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn every_line_is_a_dispatch() {
        let (out, _, stats) = run(&opts(1, 20_000));
        let all = lines(&out);
        assert_eq!(all.len(), stats.lines);
        assert!(stats.lines >= 20_000 && stats.lines < 20_050);
        let mut last_s = 0;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for l in &all {
            assert_eq!(l["op"], 0);
            let s = l["s"].as_u64().unwrap();
            assert!(s > last_s);
            last_s = s;
            assert!(l["d"].is_object());
            *counts.entry(l["t"].as_str().unwrap().to_string()).or_default() += 1;
        }
        assert_eq!(counts["MESSAGE_CREATE"], stats.creates);
        assert_eq!(counts["MESSAGE_UPDATE"], stats.updates);
        assert_eq!(counts["MESSAGE_DELETE"], stats.deletes);
        assert!(counts["TYPING_START"] > 0);
        assert!(counts["MESSAGE_REACTION_ADD"] > 0);
        for l in all.iter().filter(|l| l["t"] == "MESSAGE_DELETE") {
            let d = l["d"].as_object().unwrap();
            assert_eq!(d.len(), 3);
            for k in ["id", "channel_id", "guild_id"] {
                id_of(&d[k]);
            }
        }
    }

    #[test]
    fn creates_have_the_required_fields() {
        let (out, _, _) = run(&opts(2, 20_000));
        let mut kinds = HashSet::new();
        for l in lines(&out).iter().filter(|l| l["t"] == "MESSAGE_CREATE") {
            let d = &l["d"];
            let id = id_of(&d["id"]);
            id_of(&d["channel_id"]);
            id_of(&d["guild_id"]);
            let a = &d["author"];
            id_of(&a["id"]);
            assert!(a["username"].is_string());
            assert!(a["avatar"].is_null());
            assert_eq!(a["public_flags"], 0);
            if a["bot"] == true {
                assert_eq!(a["discriminator"], "9282");
            } else {
                assert!(a.get("bot").is_none());
            }
            assert!(d["content"].is_string());
            let ms = ms_of(&d["timestamp"]);
            assert_eq!((id >> 22) as i64 + DISCORD_EPOCH_MS, ms, "snowflake time");
            assert!(d["edited_timestamp"].is_null());
            assert_eq!(d["tts"], false);
            assert_eq!(d["mention_everyone"], false);
            assert_eq!(d["pinned"], false);
            assert_eq!(d["flags"], 0);
            assert_eq!(d["mention_roles"], Value::Array(vec![]));
            for k in ["mentions", "attachments", "embeds", "components"] {
                assert!(d[k].is_array(), "{k}");
            }
            for m in d["mentions"].as_array().unwrap() {
                id_of(&m["id"]);
                assert_eq!(m["discriminator"], "0");
            }
            for att in d["attachments"].as_array().unwrap() {
                let url = att["url"].as_str().unwrap();
                assert!(url.starts_with("https://cdn.discordapp.com/attachments/"));
                assert!(url.contains(att["filename"].as_str().unwrap()));
                assert!(url.contains("?ex=") && url.contains("&is=") && url.ends_with('&'));
            }
            let typ = d["type"].as_u64().unwrap();
            if typ == 20 {
                id_of(&d["nonce"]);
                assert_eq!(id_of(&d["webhook_id"]), MIDJOURNEY_BOT_ID);
                assert_eq!(id_of(&d["application_id"]), MIDJOURNEY_BOT_ID);
                assert_eq!(d["interaction"]["type"], 2);
                kinds.insert(d["interaction"]["name"].as_str().unwrap().to_string());
            }
            if let Some(r) = d.get("message_reference") {
                assert_eq!(r["channel_id"], d["channel_id"]);
                assert_eq!(r["guild_id"], d["guild_id"]);
                let rm = &d["referenced_message"];
                assert_eq!(rm["id"], r["message_id"]);
                assert!(rm.get("referenced_message").is_none());
                assert!(rm.get("guild_id").is_none());
            }
        }
        assert!(kinds.contains("imagine") && kinds.contains("describe"));
    }

    #[test]
    fn truth_matches_results_and_upscale_parents_are_earlier_grids() {
        let (out, truth, stats) = run(&opts(3, 20_000));
        assert_eq!(truth.len(), stats.results);
        assert!(stats.results > 500 && stats.grids > 500 && stats.failed_jobs > 0);
        let mut first: HashMap<u64, (usize, Value)> = HashMap::new();
        for (i, l) in lines(&out).into_iter().enumerate() {
            if l["t"] == "MESSAGE_CREATE" && l["d"]["author"]["id"] == "936929561302675456" {
                let id = id_of(&l["d"]["id"]);
                first.entry(id).or_insert((i, l["d"].clone()));
            }
        }
        let mut actions = HashSet::new();
        let mut stripped = 0;
        for t in &truth {
            actions.insert(t.action);
            let (ci, child) = &first[&t.child_id];
            let (pi, parent) = &first[&t.parent_id];
            assert!(pi < ci);
            assert_eq!(child.get("message_reference").is_some(), t.has_reference);
            assert_eq!(child.get("referenced_message").is_some(), t.has_reference);
            if t.has_reference {
                assert_eq!(id_of(&child["message_reference"]["message_id"]), t.parent_id);
                assert_eq!(child["type"], 19);
            } else {
                stripped += 1;
            }
            let content = child["content"].as_str().unwrap();
            let user = &child["mentions"][0]["id"].as_str().unwrap();
            let parent_custom_ids = parent["components"].to_string();
            match t.action {
                "upscale" => {
                    let n = t.index.unwrap();
                    assert!((1..=4).contains(&n));
                    assert!(content.ends_with(&format!("** - Image #{n} <@{user}>")));
                    assert!(parent_custom_ids.contains("MJ::JOB::upsample::1::"));
                    assert!(!parent["content"].as_str().unwrap().contains("- Image #"));
                    assert_eq!(
                        child["attachments"][0]["width"].as_u64().unwrap() * 2,
                        parent["attachments"][0]["width"].as_u64().unwrap()
                    );
                }
                "animate" => {
                    assert!(t.index.is_none());
                    assert!(content.contains(" --motion high --video 1** - <@"));
                    assert!(parent_custom_ids.contains("high_variation"));
                }
                a => {
                    assert!(t.index.is_none());
                    let marker = match a {
                        "upscale_2x" => "Upscaled (2x) by",
                        "upscale_4x" => "Upscaled (4x) by",
                        "upscale_subtle" => "Upscaled (Subtle) by",
                        "upscale_creative" => "Upscaled (Creative) by",
                        "variation" => "Variations",
                        "variation_strong" => "Variations (Strong) by",
                        "variation_subtle" => "Variations (Subtle) by",
                        "variation_region" => "Variations (Region) by",
                        "remix" => "Remix by",
                        "reroll" => "",
                        "zoom" => "Zoom Out by",
                        "pan_left" => "Pan Left by",
                        "pan_right" => "Pan Right by",
                        "pan_up" => "Pan Up by",
                        "pan_down" => "Pan Down by",
                        other => panic!("unknown action {other}"),
                    };
                    assert!(content.contains(&format!("** - {marker}")), "{content}");
                    let from_grid = matches!(a, "variation" | "remix" | "reroll");
                    assert_eq!(parent_custom_ids.contains("MJ::JOB::upsample::1::"), from_grid);
                }
            }
        }
        assert!(actions.len() >= 15, "{actions:?}");
        let share = stripped * 1000 / truth.len();
        assert!((50..150).contains(&share), "{share}");
    }

    #[test]
    fn upscaled_tiles_are_unique_per_grid() {
        let (_, truth, _) = run(&opts(4, 20_000));
        let mut seen = HashSet::new();
        for t in truth.iter().filter(|t| t.action == "upscale") {
            assert!(seen.insert((t.parent_id, t.index)));
        }
    }

    #[test]
    fn create_timestamps_never_go_back() {
        let (out, _, _) = run(&opts(5, 20_000));
        let mut seen = HashSet::new();
        let mut last = i64::MIN;
        let mut early_updates = 0;
        let mut dups = 0;
        for l in lines(&out) {
            let id = l["d"]["id"].as_str().map(|s| s.parse::<u64>().unwrap());
            match l["t"].as_str().unwrap() {
                "MESSAGE_CREATE" => {
                    if seen.insert(id.unwrap()) {
                        let ms = ms_of(&l["d"]["timestamp"]);
                        assert!(ms >= last);
                        last = ms;
                    } else {
                        dups += 1;
                    }
                }
                "MESSAGE_UPDATE" | "MESSAGE_DELETE" if !seen.contains(&id.unwrap()) => {
                    early_updates += 1;
                }
                _ => {}
            }
        }
        assert!(dups > 0 && early_updates > 0);
    }

    #[test]
    fn switches_turn_features_off() {
        let o = TraceOptions {
            seed: 6,
            events: 10_000,
            noise: false,
            duplicates: false,
            out_of_order: false,
            strip_reference_per_mille: 0,
            ..TraceOptions::default()
        };
        let (out, truth, _) = run(&o);
        assert!(truth.iter().all(|t| t.has_reference));
        let mut seen = HashSet::new();
        for l in lines(&out) {
            let t = l["t"].as_str().unwrap();
            assert!(t.starts_with("MESSAGE_"), "{t}");
            assert_ne!(t, "MESSAGE_REACTION_ADD");
            if t != "MESSAGE_DELETE" {
                assert_eq!(l["d"]["author"]["id"], "936929561302675456");
            }
            let id = id_of(&l["d"]["id"]);
            if t == "MESSAGE_CREATE" {
                assert!(seen.insert(id), "duplicate");
            } else {
                assert!(seen.contains(&id), "out of order");
            }
        }
    }

    #[test]
    fn extreme_options_saturate() {
        for (users, channels, start_ms, strip) in [
            (0, 0, i64::MIN, u32::MAX),
            (usize::MAX, usize::MAX, i64::MAX, 1000),
            (1, 1, 0, 0),
        ] {
            let o = TraceOptions {
                seed: u64::MAX,
                events: 2_000,
                users,
                channels,
                start_ms,
                strip_reference_per_mille: strip,
                ..TraceOptions::default()
            };
            let (out, truth, stats) = run(&o);
            assert_eq!(lines(&out).len(), stats.lines);
            if strip >= 1000 {
                assert!(truth.iter().all(|t| !t.has_reference));
            }
        }
        let (out, truth, stats) = run(&opts(0, 0));
        assert!(out.is_empty() && truth.is_empty());
        assert_eq!(stats, TraceStats::default());
    }

    #[test]
    fn memory_stays_bounded() {
        for (events, shapes_2026_per_mille) in [(200_000, 0), (100_000, 500)] {
            let o = TraceOptions {
                shapes_2026_per_mille,
                ..opts(7, events)
            };
            let mut sink = io::sink();
            let mut results = 0usize;
            let mut truth = |_t: TruthRecord| results += 1;
            let mut sim = Sim::new(&o, &mut sink, &mut truth);
            sim.run().unwrap();
            assert!(sim.em.stats.lines >= events);
            assert!(sim.peak_jobs < 200, "{}", sim.peak_jobs);
            assert!(sim.peak_heap < 300, "{}", sim.peak_heap);
            assert!(sim.live.len() <= LIVE_WINDOW);
            assert!(sim.em.pending.len() < 20);
        }
    }

    /// `fixtures/generated/channel_mix_1500.jsonl` and its truth file are what
    /// `mjlink gen-trace --events 1500 --seed 2024` wrote before the 2026 shapes existed: with
    /// the options at their defaults the generator still writes them byte for byte.
    #[test]
    fn bundled_generated_fixture_is_regenerated_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/generated");
        let (out, truth, _) = run(&opts(2024, 1_500));
        let want = std::fs::read(dir.join("channel_mix_1500.jsonl")).unwrap();
        assert!(out == want, "the bundled trace changed");
        let rows: Vec<Value> = std::fs::read_to_string(dir.join("channel_mix_1500.truth.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let ours: Vec<Value> = truth
            .iter()
            .map(|t| {
                serde_json::json!({
                    "child_id": t.child_id.to_string(),
                    "parent_id": t.parent_id.to_string(),
                    "action": t.action,
                    "index": t.index,
                    "has_reference": t.has_reference,
                })
            })
            .collect();
        assert_eq!(ours, rows);
    }

    #[test]
    fn records_report_what_generate_reports() {
        let o = TraceOptions {
            shapes_2026_per_mille: 500,
            ..opts(8, 5_000)
        };
        let (out, truth, stats) = run(&o);
        let mut records = Vec::new();
        let mut again = Vec::new();
        let stats_again = generate_records(&o, &mut again, &mut |r| records.push(r)).unwrap();
        assert!(out == again);
        assert_eq!(stats, stats_again);
        let links: Vec<TruthLink> = records
            .iter()
            .filter_map(|r| match r {
                TruthRecord::Result { link, .. } => Some(*link),
                _ => None,
            })
            .collect();
        assert_eq!(links, truth);
        let roots = records
            .iter()
            .filter(|r| matches!(r, TruthRecord::Root { .. }))
            .count();
        assert_eq!(roots, stats.grids);
        assert!(stats.jobs_2026 > 0);
        // Same options, same bytes, with the 2026 shapes too.
        assert_eq!(run(&o).0, out);
    }

    /// Everything of a trace, indexed: the first create of each message, its updates in
    /// order, whether it was deleted.
    struct Seen {
        creates: HashMap<u64, Value>,
        updates: HashMap<u64, Vec<Value>>,
        deleted: HashSet<u64>,
        /// How many lines follow each message's first create (the trace stops mid-flight:
        /// what is due after its last line is never written).
        lines_after: HashMap<u64, usize>,
    }

    impl Seen {
        fn of(out: &[u8]) -> Seen {
            let mut seen = Seen {
                creates: HashMap::new(),
                updates: HashMap::new(),
                deleted: HashSet::new(),
                lines_after: HashMap::new(),
            };
            let all = lines(out);
            let total = all.len();
            for (at, l) in all.into_iter().enumerate() {
                let d = l["d"].clone();
                let Some(id) = d["id"].as_str().map(|s| s.parse::<u64>().unwrap()) else {
                    continue;
                };
                match l["t"].as_str().unwrap() {
                    "MESSAGE_CREATE" => {
                        seen.creates.entry(id).or_insert(d);
                        seen.lines_after.entry(id).or_insert(total - at - 1);
                    }
                    "MESSAGE_UPDATE" => seen.updates.entry(id).or_default().push(d),
                    "MESSAGE_DELETE" => {
                        seen.deleted.insert(id);
                    }
                    _ => {}
                }
            }
            seen
        }

        fn create(&self, id: u64) -> &Value {
            &self.creates[&id]
        }

        fn updates(&self, id: u64) -> &[Value] {
            self.updates.get(&id).map_or(&[], Vec::as_slice)
        }
    }

    fn content(m: &Value) -> &str {
        m["content"].as_str().unwrap()
    }

    fn custom_ids(m: &Value) -> Vec<String> {
        m["components"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row["components"].as_array().unwrap().iter())
            .filter_map(|b| b["custom_id"].as_str().map(str::to_string))
            .collect()
    }

    fn files(m: &Value) -> Vec<(String, String, u64, u64)> {
        m["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["filename"].as_str().unwrap().to_string(),
                    a["content_type"].as_str().unwrap().to_string(),
                    a["width"].as_u64().unwrap(),
                    a["height"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// The job UUID at the end of an image's file name stem.
    fn uuid_of_file(name: &str) -> &str {
        let stem = name.rsplit_once('.').unwrap().0;
        &stem[stem.len() - 36..]
    }

    fn user_of(m: &Value) -> String {
        m["mentions"][0]["id"].as_str().unwrap().to_string()
    }

    /// A trace of the 2026 shapes in either world of [`TraceOptions::marks_before_results`],
    /// with its truth, where each message was first created and where each of its buttons
    /// was first seen at `style: 1` in an update (by message id and `custom_id`).
    #[allow(clippy::type_complexity)]
    fn marks_world(
        marks_before_results: bool,
    ) -> (
        Vec<TruthRecord>,
        HashMap<u64, usize>,
        HashMap<(u64, String), usize>,
    ) {
        let o = TraceOptions {
            shapes_2026_per_mille: 500,
            marks_before_results,
            ..opts(5, 8_000)
        };
        let mut out = Vec::new();
        let mut records = Vec::new();
        generate_records(&o, &mut out, &mut |r| records.push(r)).unwrap();
        let (mut created_at, mut marked_at) = (HashMap::new(), HashMap::new());
        for (at, l) in lines(&out).iter().enumerate() {
            let d = &l["d"];
            let Some(id) = d["id"].as_str().map(|s| s.parse::<u64>().unwrap()) else {
                continue;
            };
            match l["t"].as_str().unwrap() {
                "MESSAGE_CREATE" => {
                    created_at.entry(id).or_insert(at);
                }
                "MESSAGE_UPDATE" => {
                    for b in d["components"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|row| row["components"].as_array().unwrap().iter())
                    {
                        if b["style"] == 1 {
                            let custom_id = b["custom_id"].as_str().unwrap_or_default();
                            marked_at.entry((id, custom_id.to_string())).or_insert(at);
                        }
                    }
                }
                _ => {}
            }
        }
        (records, created_at, marked_at)
    }

    /// Whether a button of `parent` whose `custom_id` starts with one of `prefixes` was seen
    /// marked before `child` was created.
    fn marked_before(
        created_at: &HashMap<u64, usize>,
        marked_at: &HashMap<(u64, String), usize>,
        parent: u64,
        prefixes: &[&str],
        child: u64,
    ) -> bool {
        marked_at.iter().any(|((id, custom_id), at)| {
            *id == parent
                && prefixes.iter().any(|prefix| custom_id.starts_with(prefix))
                && *at < created_at[&child]
        })
    }

    /// Where every press marks its message first, a grid's pressed V turns `style: 1` in a
    /// MESSAGE_UPDATE of the grid before the variation or remix arrives (issue 11: "a grid
    /// whose U2/V1 turns `style: 1`, seen in real logs before the result arrives"); by
    /// default no V is ever marked (the wire notes document only the U marks).
    #[test]
    fn a_pressed_v_marks_its_grid_before_the_result_only_where_every_press_marks_first() {
        const V: &[&str] = &["MJ::JOB::variation::"];
        for marks_before_results in [false, true] {
            let (records, created_at, marked_at) = marks_world(marks_before_results);
            let mut variations = 0;
            for record in &records {
                let TruthRecord::Result { link, .. } = record else {
                    continue;
                };
                if !matches!(link.action, "variation" | "remix") {
                    continue;
                }
                variations += 1;
                if marks_before_results {
                    assert!(
                        marked_before(&created_at, &marked_at, link.parent_id, V, link.child_id),
                        "the V of grid {} marked before its {} {}",
                        link.parent_id,
                        link.action,
                        link.child_id
                    );
                }
            }
            assert!(variations > 50, "{variations} variations of grids");
            if !marks_before_results {
                assert!(
                    !marked_at.keys().any(|(_, custom_id)| custom_id.starts_with(V[0])),
                    "no V marked by default"
                );
            }
        }
    }

    /// Where every press marks its message first, the pressed button of an upscaled image or
    /// a clip (section 4's ids: `MJ::JOB::high_variation::1::{uuid}::SOLO`, `MJ::Outpaint::..`,
    /// `MJ::CustomZoom::{uuid}`, `MJ::JOB::pan_left::..`, `MJ::JOB::upsample_v7_2x_subtle::..`,
    /// `MJ::JOB::animate_high::..`; section 9's `MJ::JOB::animate_high_extend::{n}::{uuid}`)
    /// turns `style: 1` before the result arrives (issue 11: "Midjourney marks a pressed
    /// button as used on the message that carries it"); by default none is ever marked.
    #[test]
    fn a_pressed_button_of_an_image_or_clip_is_marked_before_the_result_only_where_every_press_marks_first() {
        let buttons_of = |action: &str| -> &'static [&'static str] {
            match action {
                "variation_strong" => &["MJ::JOB::high_variation::"],
                "variation_subtle" => &["MJ::JOB::low_variation::"],
                "variation_region" | "remix_region" => &["MJ::Inpaint::"],
                "zoom" => &["MJ::Outpaint::", "MJ::CustomZoom::"],
                "pan_left" => &["MJ::JOB::pan_left::"],
                "pan_right" => &["MJ::JOB::pan_right::"],
                "pan_up" => &["MJ::JOB::pan_up::"],
                "pan_down" => &["MJ::JOB::pan_down::"],
                "upscale_2x" | "upscale_4x" | "upscale_subtle" | "upscale_creative" | "upscale_v7" => {
                    &["MJ::JOB::upsample_v"]
                }
                "animate" => &["MJ::JOB::animate_high::", "MJ::JOB::animate_low::"],
                "video_extend" => &["MJ::JOB::animate_high_extend::", "MJ::JOB::animate_low_extend::"],
                _ => &[],
            }
        };
        for marks_before_results in [false, true] {
            let (records, created_at, marked_at) = marks_world(marks_before_results);
            if !marks_before_results {
                for (_, custom_id) in marked_at.keys() {
                    let of_a_grid = [
                        "MJ::JOB::upsample::",
                        "MJ::JOB::variation::",
                        "MJ::JOB::video_virtual_upscale::",
                    ]
                    .iter()
                    .any(|prefix| custom_id.starts_with(prefix));
                    assert!(of_a_grid, "{custom_id} marked by default");
                }
                continue;
            }
            let mut pressed = 0;
            for record in &records {
                let TruthRecord::Result { link, .. } = record else {
                    continue;
                };
                let buttons = buttons_of(link.action);
                if buttons.is_empty() {
                    continue;
                }
                pressed += 1;
                assert!(
                    marked_before(&created_at, &marked_at, link.parent_id, buttons, link.child_id),
                    "the button of {} marked before its {} {}",
                    link.parent_id,
                    link.action,
                    link.child_id
                );
            }
            assert!(pressed > 100, "{pressed} results of images' and clips' buttons");
        }
    }

    /// The 2026 shapes against the strings of section 9 of `midjourney-on-discord.md`.
    #[test]
    fn shapes_2026_follow_the_doc() {
        let o = TraceOptions {
            shapes_2026_per_mille: 500,
            strip_reference_per_mille: 300,
            ..opts(9, 30_000)
        };
        let mut out = Vec::new();
        let mut records = Vec::new();
        generate_records(&o, &mut out, &mut |r| records.push(r)).unwrap();
        let seen = Seen::of(&out);
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut count = |what: &str| *counts.entry(what.to_string()).or_default() += 1;
        let starts: HashMap<u64, TruthRecord> = records
            .iter()
            .filter_map(|r| match r {
                TruthRecord::Start {
                    final_id: Some(f), ..
                } => Some((*f, *r)),
                _ => None,
            })
            .collect();
        let (mut roots, mut roots_2026) = (0, 0);
        for record in &records {
            match *record {
                TruthRecord::Root {
                    id,
                    kind,
                    start_id,
                    replies_to_start,
                } => {
                    roots += 1;
                    let fin = seen.create(id);
                    let start = seen.create(start_id);
                    let text = content(fin);
                    let uuid = uuid_of_file(&files(fin)[0].0).to_string();
                    // Its start is deleted after it (wire notes section 2), unless the trace
                    // ended first.
                    assert!(
                        seen.deleted.contains(&start_id) || seen.lines_after[&id] < 10,
                        "the start is deleted"
                    );
                    assert_eq!(start["type"], 20);
                    let name = start["interaction"]["name"].as_str().unwrap();
                    assert_eq!(name, if kind == "blend" { "blend" } else { "imagine" });
                    if !replies_to_start {
                        assert_eq!(kind, "imagine");
                        assert!(fin.get("message_reference").is_none());
                        continue;
                    }
                    roots_2026 += 1;
                    count(kind);
                    assert_eq!(fin["type"], 19);
                    assert_eq!(id_of(&fin["message_reference"]["message_id"]), start_id);
                    assert_eq!(id_of(&fin["referenced_message"]["id"]), start_id);
                    assert_eq!(fin["nonce"], start["nonce"], "the final carries its job's nonce");
                    // The start as it was when the final came: its last edit, if any.
                    let last = seen
                        .updates(start_id)
                        .iter()
                        .max_by_key(|u| ms_of(&u["edited_timestamp"]))
                        .unwrap_or(start);
                    assert_eq!(fin["referenced_message"]["content"], last["content"]);
                    let named = seen
                        .updates(start_id)
                        .iter()
                        .any(|u| custom_ids(u).contains(&format!("MJ::CancelJob::ByJobid::{uuid}")));
                    let TruthRecord::Start { names_job, .. } = starts[&id] else {
                        unreachable!()
                    };
                    assert_eq!(named, names_job);
                    if kind == "video" {
                        let s = content(start);
                        assert!(
                            s.starts_with("Creating video with prompt **<https://s.mj.run/"),
                            "{s}"
                        );
                        assert!(
                            s.ends_with(&format!("** - <@{}> (Waiting to start)", user_of(start))),
                            "{s}"
                        );
                        assert!(s.contains(" --video 1 --aspect "), "{s}");
                        let prompt = &s["Creating video with prompt ".len()..s.find("** - <@").unwrap() + 2];
                        assert!(text.starts_with(prompt), "{text}");
                        assert!(
                            text.contains(&format!(
                                "> [(Open on website for full quality)](<https://midjourney.com/jobs/{uuid}>) ("
                            )),
                            "{text}"
                        );
                        let f = &files(fin)[0];
                        assert_eq!(f.1, "image/webp");
                        assert!(f.0.ends_with(".webp"));
                        let ids = custom_ids(fin);
                        for n in 1..=4 {
                            assert!(ids.contains(&format!("MJ::JOB::video_virtual_upscale::{n}::{uuid}")));
                        }
                        for u in seen.updates(start_id) {
                            let frames = files(u);
                            if !frames.is_empty() {
                                assert_eq!(frames.len(), 4);
                                assert!(frames.iter().all(|f| f.0.starts_with(&uuid)
                                    && f.0.contains("_step_")
                                    && f.0.ends_with(".jpeg")
                                    && (f.2, f.3) == (256, 256)));
                            }
                        }
                    } else {
                        assert!(text.ends_with(SUBTEXT_TEXT), "{text}");
                        assert!(text.contains("\n-# Create, explore, and organize on"));
                        for u in seen.updates(start_id) {
                            assert_eq!(files(u)[0].0, format!("{uuid}_grid_0.webp"));
                        }
                        if kind == "blend" {
                            assert!(
                                text.starts_with("**** - <@")
                                    || text.starts_with("**--v 7.0 --ar 1:1** - <@"),
                                "{text}"
                            );
                        }
                    }
                }
                TruthRecord::Result {
                    link,
                    carried,
                    shapes_2026,
                } => {
                    let child = seen.create(link.child_id);
                    let parent = seen.create(link.parent_id);
                    let text = content(child);
                    let user = user_of(child);
                    match carried {
                        Carried::Reference => {
                            assert_eq!(id_of(&child["message_reference"]["message_id"]), link.parent_id);
                            assert_eq!(child["type"], 19);
                        }
                        Carried::Interaction => {
                            assert!(child.get("message_reference").is_none());
                            let trigger = &child["interaction_metadata"]["triggering_interaction_metadata"];
                            assert_eq!(id_of(&trigger["interacted_message_id"]), link.parent_id);
                            assert_eq!(trigger["type"], 3);
                            assert_eq!(child["interaction_metadata"]["type"], 5);
                            count("interaction");
                        }
                        Carried::Nothing => {
                            assert!(child.get("message_reference").is_none());
                            assert!(child.get("interaction_metadata").is_none());
                        }
                    }
                    assert_eq!(link.has_reference, carried == Carried::Reference);
                    if !shapes_2026 {
                        assert!(child.get("nonce").is_none());
                        continue;
                    }
                    id_of(&child["nonce"]);
                    count(link.action);
                    let start = starts.get(&link.child_id).map(|r| match r {
                        TruthRecord::Start { id, .. } => *id,
                        _ => unreachable!(),
                    });
                    match link.action {
                        "upscale_v7" => {
                            assert!(link.index.is_none());
                            assert!(text.contains(&format!("** - Upscaled by <@{user}> (")), "{text}");
                            assert!(!text.contains("\n-# ") && text.ends_with(')'), "{text}");
                            assert_eq!(files(child)[0].1, "image/png");
                            assert_eq!(files(child)[0].2, 2 * files(parent)[0].2);
                            assert!(custom_ids(parent)
                                .iter()
                                .any(|c| c.starts_with("MJ::JOB::upsample_v7_2x_subtle::1::")
                                    && c.ends_with("::SOLO")));
                            let s = content(seen.create(start.unwrap()));
                            assert!(s.contains(&format!("** - Upscaling by <@{user}> (0%) (")), "{s}");
                        }
                        "animate" => {
                            assert!(link.index.is_none());
                            let uuid = uuid_of_file(&files(child)[0].0).to_string();
                            assert!(text.contains("--raw --motion "), "{text}");
                            assert!(text.contains(" --video 1 --aspect "), "{text}");
                            assert!(!text.contains(" --ar ") && !text.contains(" --no "), "{text}");
                            assert!(
                                text.contains(&format!(
                                    "** - <@{user}> [(Open on website for full quality)](<https://midjourney.com/jobs/{uuid}>) ("
                                )),
                                "{text}"
                            );
                            assert_eq!(files(child)[0].1, "image/webp");
                            assert!(custom_ids(child)
                                .contains(&format!("MJ::JOB::video_virtual_upscale::1::{uuid}")));
                            assert!(custom_ids(parent)
                                .iter()
                                .any(|c| c.starts_with("MJ::JOB::animate_high::1::")));
                            let start = start.unwrap();
                            assert_eq!(content(seen.create(start)), "Animating...");
                            let first = content(&seen.updates(start)[0]);
                            assert!(first.starts_with("Creating video with prompt **"), "{first}");
                            assert!(
                                first.ends_with(&format!("** - <@{user}> (Waiting to start)")),
                                "{first}"
                            );
                            assert!(
                                first.contains(" --video 1 --aspect ") && !first.contains("--raw"),
                                "{first}"
                            );
                        }
                        "video_clip" => {
                            let n = link.index.unwrap();
                            assert!((1..=4).contains(&n));
                            let grid_uuid = uuid_of_file(&files(parent)[0].0).to_string();
                            let f = &files(child)[0];
                            assert_eq!(f.1, "video/mp4");
                            assert_eq!(f.0, format!("{grid_uuid}_{n}_720_N.mp4"));
                            assert!(custom_ids(parent)
                                .contains(&format!("MJ::JOB::video_virtual_upscale::{n}::{grid_uuid}")));
                            assert!(custom_ids(child)
                                .contains(&format!("MJ::JOB::animate_high_extend::{n}::{grid_uuid}")));
                            assert!(
                                text.ends_with(')') && text.contains(&format!("** - <@{user}> (")),
                                "{text}"
                            );
                            assert!(start.is_none());
                        }
                        "video_extend" => {
                            assert!(link.index.is_none());
                            assert_eq!(files(parent)[0].1, "video/mp4");
                            assert_eq!(files(child)[0].1, "video/mp4");
                            assert!(custom_ids(parent)
                                .iter()
                                .any(|c| c.starts_with("MJ::JOB::animate_") && c.contains("_extend::")));
                        }
                        "remix_region" => {
                            assert!(
                                text.contains(&format!("** - Remix (Region) by <@{user}> ")),
                                "{text}"
                            );
                            assert!(custom_ids(parent)
                                .iter()
                                .any(|c| c.starts_with("MJ::Inpaint::1::")));
                        }
                        "zoom" | "pan_left" | "pan_right" | "pan_up" | "pan_down" => {
                            if let Some(start) = start {
                                let s = content(seen.create(start));
                                assert!(s.ends_with(&format!("** - <@{user}> (Waiting to start)")), "{s}");
                                for u in seen.updates(start) {
                                    assert!(content(u).contains(" by <@"), "{}", content(u));
                                }
                                count("zoom or pan start");
                            }
                        }
                        _ => {}
                    }
                }
                TruthRecord::NotAJob { id, what } => {
                    let m = seen.create(id);
                    match what {
                        "favourite" => {
                            count(what);
                            let target = id_of(&m["message_reference"]["message_id"]);
                            assert_eq!(
                                content(m),
                                format!(
                                    "You have successfully rated [this job](https://discord.com/channels/{}/{}/{target}) with 😍",
                                    id_of(&m["guild_id"]),
                                    id_of(&m["channel_id"])
                                )
                            );
                            id_of(&m["nonce"]);
                        }
                        "error" if m["embeds"][0]["title"] == "Sorry, something went wrong" => {
                            count("decline");
                            assert!(m["embeds"][0]["footer"]["text"]
                                .as_str()
                                .unwrap()
                                .starts_with("decline-"));
                            assert!(m["embeds"][0].get("color").is_none());
                        }
                        "error" if m["embeds"].as_array().unwrap().is_empty() => {
                            count("plain error");
                            assert!(content(m).starts_with("Invalid parameter\nUnrecognized parameter(s): "));
                        }
                        _ => {}
                    }
                }
                TruthRecord::Start { .. } => {}
            }
        }
        let share = roots_2026 * 1000 / roots;
        assert!((400..600).contains(&share), "{share}");
        for what in [
            "imagine",
            "blend",
            "video",
            "upscale_v7",
            "animate",
            "video_clip",
            "video_extend",
            "remix_region",
            "interaction",
            "zoom or pan start",
            "favourite",
            "decline",
            "plain error",
        ] {
            assert!(
                counts.get(what).copied().unwrap_or(0) > 0,
                "no {what}: {counts:?}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_not_dispatches() {
        for l in MALFORMED_LINES {
            let ok = serde_json::from_str::<Value>(l).ok().is_some_and(|v| {
                v["op"] == 0
                    && v["t"].is_string()
                    && v["s"].is_u64()
                    && v["d"]["id"].is_string()
                    && v["d"]["content"].is_string()
            });
            assert!(!ok, "{l}");
        }
    }

    #[test]
    fn formats_2026() {
        let p = |body: u8, suffix: u8, video: Video, blend: u8| {
            prompt_2026(Prompt {
                body,
                suffix,
                remix: 0,
                video,
                blend,
            })
        };
        // `--ar` and `--no` dropped, `--aspect` added (section 9).
        assert_eq!(
            p(
                0,
                1,
                Video::Animate {
                    high: true,
                    raw: true
                },
                0
            ),
            "glass --v 7.0 --raw --motion high --video 1 --aspect 16:9"
        );
        assert_eq!(
            p(
                0,
                4,
                Video::Animate {
                    high: false,
                    raw: false
                },
                0
            ),
            "glass --motion low --video 1 --aspect 1:1"
        );
        assert_eq!(
            p(21, 0, Video::Native { high: true }, 0),
            "<https://s.mj.run/vId30clip> tiger --motion high --video 1 --aspect 1:1"
        );
        assert_eq!(p(5, 3, Video::No, 1), "");
        assert_eq!(p(5, 3, Video::No, 2), "--v 7.0 --ar 1:1");
        assert_eq!(
            p(
                0,
                0,
                Video::Animate {
                    high: true,
                    raw: true
                },
                2
            ),
            "--v 7.0 --raw --motion high --video 1 --aspect 1:1"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(snowflake_at(1_420_070_400_000, 5), 5);
        assert_eq!(snowflake_at(0, 0x40_0001), 1);
        assert_eq!(snowflake_at(i64::MAX, 0) >> 22, MAX_SNOWFLAKE_OFFSET_MS as u64);
        // 1128641343909007401 is a real message of 2023-07-12T10:57:45.530Z.
        assert_eq!(
            (1128641343909007401u64 >> 22) as i64 + DISCORD_EPOCH_MS,
            1689159465530
        );
        let mut b = String::new();
        push_ts(&mut b, DEFAULT_START_MS + 3_120);
        assert_eq!(b, "2024-05-01T00:00:03.120000+00:00");
        for ms in [0i64, 951_782_400_000, 1_709_164_800_999, 4_102_444_799_999] {
            b.clear();
            push_ts(&mut b, ms);
            assert_eq!(
                chrono::DateTime::parse_from_rfc3339(&b)
                    .unwrap()
                    .timestamp_millis(),
                ms
            );
        }
        let slug = |body: u8, remix: u8| {
            let mut s = String::new();
            push_slug(
                &mut s,
                Prompt {
                    body,
                    suffix: 3,
                    remix,
                    video: Video::No,
                    blend: 0,
                },
            );
            s
        };
        assert_eq!(slug(1, 0), "");
        assert_eq!(slug(7, 0), "ufo");
        assert_eq!(slug(6, 0), "a_watercolor_version_of_this_photo");
        assert_eq!(slug(14, 0), "apple_forestbig_bad_wolf_woodunreal_engi");
        assert_eq!(slug(39, 0), "8262694398550213_The_wolf_is_coming.");
        assert_eq!(slug(0, 1), "glass_at_night");
        assert_eq!(
            UuidStr::new(0x0123_4567_89ab_4def_8123_4567_89ab_cdef).as_str(),
            "01234567-89ab-4def-8123-456789abcdef"
        );
    }
}
