//! One line per format of section 9 of the wire notes (`shared/docs/midjourney-on-discord.md`,
//! "What changed in 2024-2026"): the message as Midjourney sends it (its strings from the
//! notes) and what mjlink must make of it. `check` parses; `check_reply` also decides with
//! what is stored of the message it replies to, as the pipeline does.

use mjlink_core::lineage::{self, Absorbed, LinkWork, ReplyTarget, Save, Source};
use mjlink_core::parse::{parse, BotIds};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Message;

const BOT: &str = r#"{"id":"936929561302675456","username":"Midjourney Bot","bot":true}"#;
const UUID: &str = "5b3f9c1e-2a4d-4e8f-9b6a-7c1d2e3f4a5b";
const OTHER_UUID: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";

/// A message from Midjourney: `extra` are more JSON fields (with a leading comma).
fn mj(content: &str, extra: &str) -> Message {
    let json = format!(
        r#"{{"id":"1400000000000000100","channel_id":"7","author":{BOT},"timestamp":"2026-06-12T10:00:00.000000+00:00","content":{}{extra}}}"#,
        serde_json::to_string(content).unwrap()
    );
    serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}: {json}"))
}

fn image(name: &str, content_type: &str) -> String {
    format!(
        r#","attachments":[{{"id":"9","filename":"{name}","url":"https://cdn.discordapp.com/attachments/7/9/{name}","content_type":"{content_type}"}}]"#
    )
}

fn reply_to(id: u64) -> String {
    format!(r#","type":19,"message_reference":{{"channel_id":"7","message_id":"{id}"}}"#)
}

/// Parses and returns `(kind, action-or-tile detail)` as stored: the kind name, the tile.
fn check(message: &Message, kind: &str, tile: Option<u8>) {
    let parsed = parse(message, &BotIds::default());
    assert_eq!(parsed.kind.as_str(), kind, "{:?}", message.content);
    assert_eq!(parsed.tile, tile, "{:?}", message.content);
}

fn save_of(message: &Message) -> Save {
    match lineage::absorb(None, message, Source::Create, &BotIds::default()) {
        Absorbed::Save(save) => *save,
        other => panic!("expected a save, got {other:?}"),
    }
}

/// Absorbs, resolves against `target` (what is stored of the replied-to message), and
/// checks the kind stored and whether it still needs a link.
fn check_reply(message: &Message, target: Option<ReplyTarget<'_>>, kind: &str) -> Save {
    let mut save = save_of(message);
    if lineage::reply_question(&save).is_some() {
        lineage::resolve_reply(&mut save, target);
    }
    assert_eq!(save.parsed.kind.as_str(), kind, "{:?}", message.content);
    save
}

fn start<'a>(job_uuid: Option<&'a str>, prompt_norm: Option<&'a str>) -> ReplyTarget<'a> {
    ReplyTarget {
        kind: "progress",
        job_uuid,
        prompt_norm,
        user_id: Some(Snowflake(439110225975443468)),
    }
}

fn stored(kind: &str) -> ReplyTarget<'_> {
    ReplyTarget {
        kind,
        job_uuid: Some(OTHER_UUID),
        prompt_norm: None,
        user_id: Some(Snowflake(439110225975443468)),
    }
}

const GRID_LINE: &str = "**glass sphere on moss --v 7.0** - <@439110225975443468> (fast)\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)";

fn grid_buttons(uuid: &str) -> String {
    format!(
        r#","components":[{{"type":1,"components":[{{"type":2,"style":2,"custom_id":"MJ::JOB::upsample::1::{uuid}"}},{{"type":2,"style":2,"custom_id":"MJ::JOB::reroll::0::{uuid}::SOLO"}}]}}]"#
    )
}

#[test]
fn a_grid_replying_to_its_own_start_is_that_jobs_root_and_completes_it() {
    let grid = mj(
        GRID_LINE,
        &format!(
            "{}{}{}",
            reply_to(1400000000000000001),
            image(&format!("user_glass_sphere_{UUID}.png"), "image/png"),
            grid_buttons(UUID)
        ),
    );
    // Parsed alone it is a reply without a marker...
    check(&grid, "reroll", None);
    // ...but its target is its own start (the Cancel button named the same job UUID).
    let save = check_reply(&grid, Some(start(Some(UUID), None)), "imagine");
    assert_eq!(save.link, LinkWork::None);
    assert_eq!(save.completes, Some(Snowflake(1400000000000000001)));
    assert!(save.may_be_parent);
    // Without job UUIDs, the same prompt and user tell it is the same job.
    let save = check_reply(
        &grid,
        Some(start(None, Some("glass sphere on moss --v 7.0"))),
        "imagine",
    );
    assert!(save.completes.is_some() || save.parsed.job_uuid.is_some());
    // A start of another job: still a final (a result never replies to another job's start), but it completes nothing.
    let save = check_reply(&grid, Some(start(Some(OTHER_UUID), None)), "imagine");
    assert_eq!(save.completes, None);
}

#[test]
fn a_grid_replying_to_a_final_grid_is_still_a_reroll() {
    let grid = mj(
        GRID_LINE,
        &format!(
            "{}{}",
            reply_to(1400000000000000001),
            image(&format!("u_glass_{UUID}.png"), "image/png")
        ),
    );
    let save = check_reply(&grid, Some(stored("imagine")), "reroll");
    assert!(matches!(save.link, LinkWork::Relink { .. }));
    check_reply(&grid, Some(stored("variation")), "reroll");
}

#[test]
fn a_grid_replying_to_an_unknown_message_answering_a_command_is_a_root() {
    // The start was deleted before it was ever seen (history): interaction_metadata of an
    // application command names no pressed message.
    let command = mj(
        GRID_LINE,
        &format!(
            r#"{}{},"interaction_metadata":{{"id":"1","type":2,"name":"imagine","user":{{"id":"439110225975443468"}}}}"#,
            reply_to(1400000000000000001),
            image(&format!("u_glass_{UUID}.png"), "image/png")
        ),
    );
    check_reply(&command, None, "imagine");
    let pressed = mj(
        GRID_LINE,
        &format!(
            r#"{}{},"interaction_metadata":{{"id":"1","type":3,"interacted_message_id":"1400000000000000001"}}"#,
            reply_to(1400000000000000001),
            image(&format!("u_glass_{UUID}.png"), "image/png")
        ),
    );
    check_reply(&pressed, None, "reroll");
}

#[test]
fn native_video_job_final_replying_to_its_start_is_a_video_root() {
    let start_msg = mj(
        "Creating video with prompt **<https://s.mj.run/abc> a cat walking --motion low --video 1 --aspect 1:1** - <@439110225975443468> (Waiting to start)",
        "",
    );
    check(&start_msg, "progress", None);
    let final_msg = mj(
        &format!("**<https://s.mj.run/abc> a cat walking --raw --motion low --video 1 --aspect 1:1** - <@439110225975443468> [(Open on website for full quality)](<https://midjourney.com/jobs/{UUID}>) (fast)"),
        &format!("{}{}", reply_to(1400000000000000001), image(&format!("{UUID}.webp"), "image/webp")),
    );
    check_reply(&final_msg, Some(start(Some(UUID), None)), "video");
}

#[test]
fn animate_makes_a_video_grid_its_u_a_clip_and_extend_a_longer_clip() {
    // The plain-text start and its edit.
    check(
        &mj("Animating...", &reply_to(1400000000000000001)),
        "progress",
        None,
    );
    let parsed = parse(
        &mj("Creating video with prompt **a cat --motion high --video 1 --aspect 1:1** - <@439110225975443468> (Waiting to start)", &reply_to(1400000000000000001)),
        &BotIds::default(),
    );
    assert_eq!(parsed.kind.as_str(), "progress");
    assert!(matches!(
        parsed.kind,
        mjlink_core::parse::Kind::Progress {
            action: Some(mjlink_core::parse::Action::Animate),
            ..
        }
    ));
    // The video grid replying to the image it animates.
    let video_buttons = format!(
        r#","components":[{{"type":1,"components":[{{"type":2,"style":2,"custom_id":"MJ::JOB::video_virtual_upscale::1::{UUID}"}},{{"type":2,"style":2,"custom_id":"MJ::JOB::video_virtual_upscale::2::{UUID}"}}]}}]"#
    );
    let video_grid = mj(
        &format!("**a cat --raw --motion high --video 1 --aspect 1:1** - <@439110225975443468> [(Open on website for full quality)](<https://midjourney.com/jobs/{UUID}>) (fast)"),
        &format!("{}{}{video_buttons}", reply_to(1400000000000000001), image(&format!("u_a_cat_{UUID}.webp"), "image/webp")),
    );
    check_reply(&video_grid, Some(stored("upscale")), "animate");
    // Mutiny-SDK's marker form.
    check(
        &mj(
            "**a cat --motion high --video 1** - Animate (High motion) by <@439110225975443468> (fast)",
            &image("a.webp", "image/webp"),
        ),
        "animate",
        None,
    );
    // A video U: one mp4 replying to the video grid; its cell from the extend buttons.
    let clip = mj(
        "**a cat --raw --motion high --video 1 --aspect 1:1** - <@439110225975443468> (fast)",
        &format!(
            r#"{}{},"components":[{{"type":1,"components":[{{"type":2,"style":2,"custom_id":"MJ::JOB::animate_high_extend::3::{OTHER_UUID}"}}]}}]"#,
            reply_to(1400000000000000002),
            image(&format!("{OTHER_UUID}_3_720_N.mp4"), "video/mp4")
        ),
    );
    check(&clip, "video_clip", Some(3));
    check_reply(&clip, Some(stored("animate")), "video_clip");
    // The cell from the file name when there are no buttons.
    check(
        &mj(
            "**a cat --video 1** - <@439110225975443468> (fast)",
            &format!(
                "{}{}",
                reply_to(2),
                image(&format!("{OTHER_UUID}_2_720_N.mp4"), "video/mp4")
            ),
        ),
        "video_clip",
        Some(2),
    );
    // Extend: a longer clip replying to the clip.
    let extend = check_reply(&clip, Some(stored("video_clip")), "video_extend");
    assert_eq!(extend.parsed.tile, None);
    assert!(matches!(extend.link, LinkWork::Relink { tile: None, .. }));
}

#[test]
fn the_v7_upscaler_on_a_single_image_is_an_action_of_its_own_without_a_tile() {
    let progress = mj(
        "**glass sphere --v 7.0** - Upscaling by <@439110225975443468> (0%) (fast)",
        &reply_to(1400000000000000001),
    );
    check(&progress, "progress", None);
    let result = mj(
        "**glass sphere --v 7.0** - Upscaled by <@439110225975443468> (fast)",
        &format!(
            "{}{}",
            reply_to(1400000000000000001),
            image(&format!("u_glass_{UUID}.png"), "image/png")
        ),
    );
    check(&result, "upscale", None);
    let save = check_reply(&result, Some(stored("upscale")), "upscale_v7");
    match save.link {
        LinkWork::Relink { child, tile, .. } => {
            assert_eq!(child.action.as_str(), "upscale_v7");
            assert_eq!(tile, None);
        }
        other => panic!("expected a relink, got {other:?}"),
    }
    // An old `Upscaled by` replying to a grid stays a tile upscale.
    check_reply(&result, Some(stored("imagine")), "upscale");
    check(
        &mj("**glass sphere** - Upscaled (4x) by <@439110225975443468> (Open on website for full quality) (fast)", &image("a.png", "image/png")),
        "upscale_4x",
        None,
    );
}

#[test]
fn remix_region_and_variations_region() {
    check(
        &mj(
            "**a red door** - Remix (Region) by <@439110225975443468> (fast)",
            &image("a.png", "image/png"),
        ),
        "remix_region",
        None,
    );
    check(
        &mj(
            "**a red door** - Variations (Region) by <@439110225975443468> (fast)",
            &image("a.png", "image/png"),
        ),
        "variation_region",
        None,
    );
}

#[test]
fn zoom_and_pan_starts_without_a_marker_are_starts() {
    let start_msg = mj(
        "**a house --ar 3:2** - <@439110225975443468> (Waiting to start)",
        &reply_to(1400000000000000001),
    );
    let parsed = parse(&start_msg, &BotIds::default());
    assert_eq!(parsed.kind.as_str(), "progress");
    assert_eq!(parsed.reply_to, Some(Snowflake(1400000000000000001)));
    check(
        &mj(
            "**a house --ar 3:2** - Zoom Out by <@439110225975443468> (0%) (fast)",
            &reply_to(1400000000000000001),
        ),
        "progress",
        None,
    );
    check(
        &mj(
            "**a house --ar 3:2** - Pan Right by <@439110225975443468> (fast)",
            &format!("{}{}", reply_to(1), image("a.png", "image/png")),
        ),
        "pan_right",
        None,
    );
    // Legacy start wordings are still used in 2026.
    check(
        &mj(
            "Upscaling image #1 with **a house** - <@439110225975443468> (Waiting to start)",
            "",
        ),
        "progress",
        Some(1),
    );
    check(&mj("Making variations for image #2 with prompt **a house** - <@439110225975443468> (Waiting to start)", ""), "progress", Some(2));
}

#[test]
fn errors_that_are_not_red_embeds_keep_their_reason() {
    let decline = mj(
        "",
        r#","embeds":[{"title":"Sorry, something went wrong","description":"The job encountered an error.","footer":{"text":"decline-nudity-3"}}]"#,
    );
    let parsed = parse(&decline, &BotIds::default());
    assert_eq!(parsed.kind.as_str(), "error");
    assert_eq!(
        parsed.kind,
        mjlink_core::parse::Kind::Error("Sorry, something went wrong".into())
    );
    assert_eq!(parsed.detail.as_deref(), Some("decline-nudity-3"));

    let plain = parse(
        &mj("Invalid parameter\nUnrecognized parameter(s): `--vv`", ""),
        &BotIds::default(),
    );
    assert_eq!(
        plain.kind,
        mjlink_core::parse::Kind::Error("Invalid parameter".into())
    );
    assert_eq!(plain.detail.as_deref(), Some("Unrecognized parameter(s): `--vv`"));

    for title in [
        "Blocked",
        "Plan Cancelled",
        "Subscription required",
        "Subscription paused",
        "Tos not accepted",
        "Credits exhausted",
    ] {
        let notice = parse(
            &mj(
                "",
                &format!(r#","embeds":[{{"title":"{title}","description":"..."}}]"#),
            ),
            &BotIds::default(),
        );
        assert_eq!(
            notice.kind,
            mjlink_core::parse::Kind::Error(title.into()),
            "{title}"
        );
    }
}

#[test]
fn the_favourite_confirmation_rates_its_target_and_is_not_a_job() {
    let rating = parse(
        &mj("You have successfully rated [this job](https://discord.com/channels/662267976984297473/995431387333152778/1400000000000000042) with 😍", ""),
        &BotIds::default(),
    );
    assert_eq!(
        rating.kind,
        mjlink_core::parse::Kind::Rating {
            target: Some(Snowflake(1400000000000000042))
        }
    );
    assert_eq!(rating.kind.as_str(), "rating");
}

#[test]
fn a_blend_may_have_an_empty_or_parameter_only_prompt() {
    let empty = mj(
        "**** - <@439110225975443468> (fast)",
        &image(&format!("u_{UUID}.png"), "image/png"),
    );
    check(&empty, "imagine", None);
    let params = mj(
        "**--v 7.0 --ar 1:1** - <@439110225975443468> (relaxed)",
        &format!(
            r#"{},"interaction_metadata":{{"id":"1","type":2,"name":"blend"}}"#,
            image(&format!("u_{UUID}.png"), "image/png")
        ),
    );
    check(&params, "blend", None);
}

#[test]
fn results_keep_their_nonce_and_empty_ids_are_absent() {
    let result = mj(
        "**a cat** - Image #2 <@439110225975443468>",
        &format!(
            r#"{}{},"nonce":"1400000000000000777","webhook_id":"","guild_id":"""#,
            reply_to(1),
            image("a.png", "image/png")
        ),
    );
    assert_eq!(result.nonce.as_deref(), Some("1400000000000000777"));
    assert_eq!(result.webhook_id, None);
    assert_eq!(result.guild_id, None);
    check(&result, "upscale", Some(2));
}
