//! The archive end to end: replay messages whose attachments point at a local CDN, then
//! `mjlink archive`, `images`, `verify [--repair]`, and a crash in the middle of a batch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::fake_cdn::Cdn;
use common::mj::{self, png};
use serde_json::{json, Value};

/// A Midjourney message with one attachment, replying to the message `reply_to`.
fn message(id: u64, content: &str, url: &str, filename: &str, reply_to: Option<&Value>) -> Value {
    let parent = reply_to.map(|parent| parent["id"].as_str().unwrap().parse().unwrap());
    mj::message(id, content, url, filename, parent)
}

fn dispatch(message: &Value) -> String {
    mj::dispatch(message).to_string()
}

fn mjlink(dir: &Path, base: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("MJLINK_ARCHIVE_DIR", dir.join("archive"))
        .env("MJLINK_ARCHIVE_HOSTS", "127.0.0.1")
        .env("MJLINK_DATABASE_PATH", dir.join("a.db"));
    let _ = base;
    command
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn images(dir: &Path, base: &str) -> Vec<Value> {
    let output = run(mjlink(dir, base).args(["images", "--format", "jsonl"]));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const UUID: &str = "5eed0000-0000-4000-8000-000000000001";

/// A grid, U1, U2, U3 with U2's exact bytes (the N-copies bug), a variation, a hostile file
/// name, and a progress preview that is not archived.
fn family(base: &str, cdn: &Cdn) -> Vec<String> {
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    let id = |n: u64| ((start + n * 1000) << 22) + n;
    let mut lines = Vec::new();
    let grid_url = format!("{base}/g.png");
    cdn.serve("/g.png", png(1, 50_000));
    let grid = message(
        id(1),
        "**a cat** - <@5> (fast)",
        &grid_url,
        &format!("u_a_cat_{UUID}.png"),
        None,
    );
    lines.push(dispatch(&grid));
    for (n, tile, body) in [
        (2u64, 1u8, png(2, 20_000)),
        (3, 2, png(3, 20_000)),
        (4, 3, png(3, 20_000)),
    ] {
        let path = format!("/u{tile}.png");
        cdn.serve(&path, body);
        let upscale = message(
            id(n),
            &format!("**a cat** - Image #{tile} <@5>"),
            &format!("{base}{path}"),
            "../../../etc/passwd",
            Some(&grid),
        );
        lines.push(dispatch(&upscale));
    }
    cdn.serve("/v.png", png(9, 40_000));
    let variation = message(
        id(6),
        "**a cat** - Variations (Strong) by <@5> (fast)",
        &format!("{base}/v.png"),
        "v.png",
        Some(&grid),
    );
    lines.push(dispatch(&variation));
    cdn.serve("/p.webp", png(7, 100));
    let progress = message(
        id(7),
        "**a dog** - <@5> (31%) (fast)",
        &format!("{base}/p.webp"),
        "x_grid_0.webp",
        None,
    );
    lines.push(dispatch(&progress));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_images_verify_and_repair() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = family(&base, &cdn);
    let trace = dir.path().join("t.jsonl");
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let base_clone = base.clone();
    let (archived, listed) = tokio::task::spawn_blocking(move || {
        // `replay --download` archives right after replaying.
        let output = run(mjlink(&dir_path, &base_clone)
            .args(["replay", "--download"])
            .arg(&trace));
        assert!(output.status.success());
        (
            String::from_utf8(output.stdout).unwrap(),
            images(&dir_path, &base_clone),
        )
    })
    .await
    .unwrap();
    assert!(
        archived.contains("archived 4, deduplicated 1, failed 0, to retry later 0, identical tiles 1"),
        "{archived}"
    );
    assert_eq!(
        listed.len(),
        5,
        "the progress preview is not archived: {listed:?}"
    );
    assert!(listed.iter().all(|image| image["state"] == "archived"));
    let root = dir.path().join("archive");
    let family = root.join("2024/05").join(UUID);
    for name in ["grid.png", "u1.png"] {
        assert!(family.join(name).is_file(), "{name}");
    }
    // Each image is recorded as it finishes: whichever of U2 and U3 (identical bytes) finished
    // first holds the one file, and the other points at it, flagged.
    let kept = ["u2.png", "u3.png"].map(|name| family.join(name).is_file());
    assert!(kept[0] ^ kept[1], "identical bytes are stored once");
    let kept = if kept[0] { "u2.png" } else { "u3.png" };
    let copy = listed.iter().find(|image| {
        image["path"].as_str() == Some(&format!("2024/05/{UUID}/{kept}")) && !image["same_bytes_as"].is_null()
    });
    assert!(
        copy.is_some(),
        "the other tile points at {kept} and is flagged: {listed:?}"
    );
    let variation: Vec<_> = std::fs::read_dir(&family)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        // `Variations (Strong) by` replying to a grid is a V button: only the parent tells it
        // from Vary (Strong) on an upscale (wire notes, section 3).
        .filter(|n| n.starts_with("variation_") && !n.starts_with("variation_strong_"))
        .collect();
    assert_eq!(variation.len(), 1);
    assert!(!root.join("etc").exists() && !dir.path().join("etc").exists());
    assert_eq!(
        std::fs::read_to_string(family.join("prompt.txt")).unwrap(),
        "a cat\n"
    );
    let metadata: Value =
        serde_json::from_str(&std::fs::read_to_string(family.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["grid"]["job_uuid"], UUID);
    assert_eq!(
        metadata["grid"]["files"][0]["path"],
        format!("2024/05/{UUID}/grid.png")
    );
    let results = metadata["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "U1, U2, U3 and the variation");
    assert!(results.iter().all(|result| result["signal"] == "reference"));
    let u1 = results.iter().find(|result| result["tile"] == 1).unwrap();
    assert_eq!(u1["files"][0]["path"], format!("2024/05/{UUID}/u1.png"));
    assert_eq!(u1["files"][0]["bytes"], png(2, 20_000).len());
    assert_eq!(u1["files"][0]["sha256"].as_str().unwrap().len(), 64);

    // Corrupt one file, delete another: verify says so; verify --repair fetches them again.
    std::fs::write(family.join("u1.png"), b"garbage").unwrap();
    std::fs::remove_file(family.join("grid.png")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let (verify, repair, after) = tokio::task::spawn_blocking(move || {
        (
            run(mjlink(&dir_path, &base).arg("verify")),
            run(mjlink(&dir_path, &base).args(["verify", "--repair"])),
            run(mjlink(&dir_path, &base).arg("verify")),
        )
    })
    .await
    .unwrap();
    let text = String::from_utf8(verify.stdout).unwrap();
    assert!(!verify.status.success());
    assert!(text.contains("missing or corrupt 2"), "{text}");
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stdout)
    );
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    assert!(
        std::fs::read(family.join("u1.png")).unwrap() == png(2, 20_000),
        "u1.png restored in place"
    );
    assert!(family.join("grid.png").is_file(), "grid.png restored in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_archive_run_resumes_and_archives_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::with_delay(Duration::from_millis(150));
    let base = format!("http://{}", cdn.clone().start().await);
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    let mut lines = Vec::new();
    for n in 0..24u64 {
        let id = ((start + n * 1000) << 22) + n;
        let path = format!("/g{n}.png");
        cdn.serve(&path, png(n as u8, 30_000));
        let uuid = format!("5eed0000-0000-4000-8000-{n:012}");
        lines.push(dispatch(&message(
            id,
            &format!("**prompt {n}** - <@5> (fast)"),
            &format!("{base}{path}"),
            &format!("u_p_{uuid}.png"),
            None,
        )));
    }
    let trace = dir.path().join("t.jsonl");
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let dir_path: PathBuf = dir.path().to_path_buf();
    let report = tokio::task::spawn_blocking(move || {
        assert!(run(mjlink(&dir_path, &base).arg("replay").arg(&trace))
            .status
            .success());
        // 24 images, 4 at a time, 150 ms each: about 0.9 s. Kill it twice along the way.
        for wait in [300u64, 250] {
            let mut child = mjlink(&dir_path, &base)
                .arg("archive")
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(wait));
            let _ = child.kill();
            child.wait().unwrap();
        }
        let after_kills = images(&dir_path, &base)
            .iter()
            .filter(|image| image["state"] == "archived")
            .count();
        assert!(after_kills < 24, "the kills landed in the middle of the batch");
        assert!(run(mjlink(&dir_path, &base).arg("archive")).status.success());
        let verify = run(mjlink(&dir_path, &base).arg("verify"));
        (
            String::from_utf8(verify.stdout).unwrap(),
            images(&dir_path, &base),
        )
    })
    .await
    .unwrap();
    assert!(
        report.0.contains("checked 24, ok 24, missing or corrupt 0"),
        "{}",
        report.0
    );
    assert!(report.1.iter().all(|image| image["state"] == "archived"));
    let mut images = Vec::new();
    let mut metadata = 0;
    for entry in common::files_under(&dir.path().join("archive")) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        // The staging folder, and the archive's marker and lock.
        if entry.starts_with(dir.path().join("archive/.staging")) || name.starts_with(".mjlink-") {
            continue;
        } else if name == "metadata.json" {
            metadata += 1;
        } else if name != "prompt.txt" {
            images.push(entry);
        }
    }
    assert_eq!(images.len(), 24, "each image exactly once: {images:?}");
    assert_eq!(metadata, 24, "every family has its metadata.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_links_are_refreshed_then_downloaded() {
    use common::fake_discord::FakeDiscord;
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let discord = FakeDiscord::start("archive-token").await.unwrap();
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    let id = |n: u64| ((start + n * 1000) << 22) + n;
    // e1 answers 403 (expired on the CDN); e2's signature says it expired (no request is
    // wasted on it); e3 is not refreshed by refresh-urls and comes from its message instead.
    cdn.script("/old/e1.png", vec![common::fake_cdn::status(403, vec![])]);
    cdn.serve("/fresh/e1.png", png(11, 10_000));
    cdn.serve("/fresh/e2.png", png(12, 10_000));
    cdn.serve("/fresh/e3.png", png(13, 10_000));
    let urls = [
        format!("{base}/old/e1.png?ex=7fffffff&is=0&hm=00&"),
        format!("{base}/old/e2.png?ex=1&is=0&hm=00&"),
        format!("{base}/old/norefresh/e3.png?ex=1&is=0&hm=00&"),
    ];
    let mut lines = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        let n = n as u64 + 1;
        let uuid = format!("5eed0000-0000-4000-8000-{n:012}");
        let grid = message(
            id(n),
            &format!("**old {n}** - <@5> (fast)"),
            url,
            &format!("u_{uuid}.png"),
            None,
        );
        lines.push(dispatch(&grid));
        if n == 3 {
            // What Discord answers for the message now: the same attachment, a fresh link.
            let mut current = grid.clone();
            current["attachments"][0]["url"] = format!("{base}/fresh/e3.png").into();
            discord.store(&current);
        }
    }
    let trace = dir.path().join("t.jsonl");
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let api = discord.api_base();
    let output = tokio::task::spawn_blocking(move || {
        assert!(run(mjlink(&dir_path, "").arg("replay").arg(&trace))
            .status
            .success());
        run(mjlink(&dir_path, "")
            .env("MJLINK_DISCORD_TOKEN", "archive-token")
            .env("MJLINK_DISCORD_API_BASE", api)
            .arg("archive"))
    })
    .await
    .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("archived 3, deduplicated 0, failed 0"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        cdn.hits("/old/e2.png").is_empty(),
        "an expired signature is refreshed before any download"
    );
    assert_eq!(cdn.hits("/old/e1.png").len(), 1);
    let requests = discord.requests();
    assert!(requests
        .iter()
        .any(|r| r.method == "POST" && r.path == "/api/v10/attachments/refresh-urls"));
    assert!(requests
        .iter()
        .any(|r| r.path == format!("/api/v10/channels/10/messages/{}", id(3))));
    let listed = images(dir.path(), "");
    assert!(
        listed.iter().all(|image| image["state"] == "archived"),
        "{listed:?}"
    );
}

/// A message with one attachment of `content_type`, buttons `custom_ids`, maybe a reply.
fn media_message(
    id: u64,
    content: &str,
    (url, filename, content_type): (&str, &str, &str),
    custom_ids: &[String],
    reply_to: Option<&Value>,
) -> Value {
    let mut message = message(id, content, url, filename, reply_to);
    message["attachments"][0]["content_type"] = content_type.into();
    let buttons: Vec<Value> = custom_ids
        .iter()
        .map(|custom_id| json!({"type": 2, "style": 2, "custom_id": custom_id}))
        .collect();
    message["components"] = json!([{"type": 1, "components": buttons}]);
    message
}

/// Video (doc section 9): Animate on an upscale gives a video grid (one animated WebP, four
/// cells, buttons `MJ::JOB::video_virtual_upscale::{n}::{uuid}`) replying to the upscale;
/// a video U gives a clip (an mp4 named `{uuid}_{n}_720_N.mp4`, buttons
/// `MJ::JOB::animate_high_extend::{n}::{uuid}`) replying to the video grid. Each is archived
/// in its parent's family folder, named by its kind (and cell), with the extension of its
/// bytes, and listed in that folder's metadata.json; a "video" that is an HTML page is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_grid_and_its_clip_are_archived_in_their_families() {
    use common::fake_cdn::{animated_webp, mp4, ok};
    const GRID: &str = "5eed0000-0000-4000-8000-0000000000a1";
    const UPSCALE: &str = "5eed0000-0000-4000-8000-0000000000a2";
    const VIDEO: &str = "5eed0000-0000-4000-8000-0000000000a3";
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    // 2025-06-15T00:00:00Z.
    let start = (1_749_945_600_000i64 - 1_420_070_400_000) as u64;
    let id = |n: u64| ((start + n * 60_000) << 22) + n;
    cdn.serve("/grid.png", png(21, 30_000));
    cdn.serve("/u1.png", png(22, 20_000));
    cdn.script("/video.webp", vec![ok(animated_webp(40_000), "image/webp")]);
    cdn.script("/clip2", vec![ok(mp4(60_000), "video/mp4")]);
    cdn.script(
        "/clip3",
        vec![ok(b"<html><body>sign in</body></html>".to_vec(), "video/mp4")],
    );
    let prompt = "a cat --motion high --video 1 --aspect 1:1";
    let grid = message(
        id(1),
        "**a cat** - <@5> (fast)",
        &format!("{base}/grid.png"),
        &format!("u_a_cat_{GRID}.png"),
        None,
    );
    let upscale = media_message(
        id(2),
        "**a cat** - Image #1 <@5>",
        (
            &format!("{base}/u1.png"),
            &format!("u_a_cat_{UPSCALE}.png"),
            "image/png",
        ),
        &[format!("MJ::JOB::animate_high::1::{UPSCALE}::SOLO")],
        Some(&grid),
    );
    let video = media_message(
        id(3),
        &format!("**{prompt}** - <@5> (fast)"),
        (
            &format!("{base}/video.webp"),
            &format!("u_a_cat_{VIDEO}.webp"),
            "image/webp",
        ),
        &(1..=4)
            .map(|n| format!("MJ::JOB::video_virtual_upscale::{n}::{VIDEO}"))
            .collect::<Vec<_>>(),
        Some(&upscale),
    );
    let clip = |n: u64, path: &str| {
        media_message(
            id(3 + n),
            &format!("**{prompt}** - <@5> (fast)"),
            // A hostile name changes nothing: names come from the kind and the job.
            (
                &format!("{base}{path}"),
                &format!("../../{VIDEO}_{n}_720_N.mp4"),
                "video/mp4",
            ),
            &[format!("MJ::JOB::animate_high_extend::{n}::{VIDEO}")],
            Some(&video),
        )
    };
    let lines = [&grid, &upscale, &video, &clip(2, "/clip2"), &clip(3, "/clip3")].map(dispatch);
    let trace = dir.path().join("t.jsonl");
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let (output, listed, messages) = tokio::task::spawn_blocking(move || {
        let output = run(mjlink(&dir_path, "").args(["replay", "--download"]).arg(&trace));
        let messages = run(mjlink(&dir_path, "").args(["messages", "--format", "jsonl"]));
        (output, images(&dir_path, ""), messages)
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    // The HTML "clip" is refused for good (not an image or video); the rest is archived.
    assert!(text.contains("archived 4, deduplicated 0, failed 1"), "{text}");
    let messages: Vec<Value> = String::from_utf8(messages.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let row = |message_id: u64| {
        let message = messages
            .iter()
            .find(|row| row["id"].as_str() == Some(&message_id.to_string()))
            .unwrap();
        let image = listed
            .iter()
            .find(|row| row["message_id"].as_str() == Some(&message_id.to_string()))
            .unwrap();
        (message.clone(), image.clone())
    };
    let root = dir.path().join("archive");
    let name = |message: &Value, uuid: &str, extension: &str| match message["index"].as_u64() {
        Some(cell) => format!("{}_{cell}_{uuid}.{extension}", message["kind"].as_str().unwrap()),
        None => format!("{}_{uuid}.{extension}", message["kind"].as_str().unwrap()),
    };

    // The video grid: in the upscale's folder (its parent's family), an animated WebP.
    let (video_message, video_image) = row(id(3));
    assert_eq!(video_message["parent_id"], id(2).to_string());
    let video_path = format!("2025/06/{UPSCALE}/{}", name(&video_message, VIDEO, "webp"));
    assert_eq!(video_image["path"], video_path.as_str(), "{video_image}");
    assert_eq!(video_image["media"], "webp_animated");
    assert_eq!(
        std::fs::read(root.join(&video_path)).unwrap(),
        animated_webp(40_000)
    );

    // The clip: in the video grid's folder, an mp4 by its bytes.
    let (clip_message, clip_image) = row(id(5));
    assert_eq!(clip_message["parent_id"], id(3).to_string());
    // The UUID a clip carries is its video grid's (a video U is a "virtual upscale"), not a
    // job of its own: the clip is named by its message id.
    assert!(clip_message["job_uuid"].is_null(), "{clip_message}");
    let clip_path = format!(
        "2025/06/{VIDEO}/{}",
        name(&clip_message, &id(5).to_string(), "mp4")
    );
    assert_eq!(clip_image["path"], clip_path.as_str(), "{clip_image}");
    assert_eq!(clip_image["media"], "mp4");
    assert_eq!(std::fs::read(root.join(&clip_path)).unwrap(), mp4(60_000));
    let (_, refused) = row(id(6));
    assert_eq!(refused["state"], "failed");
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("not an image or video"),
        "{refused}"
    );

    // Each family's metadata.json lists its video files.
    let metadata = |folder: &str| -> Value {
        let text = std::fs::read_to_string(root.join("2025/06").join(folder).join("metadata.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let upscale_family = metadata(UPSCALE);
    assert_eq!(upscale_family["grid"]["job_uuid"], UPSCALE);
    let results = upscale_family["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{upscale_family}");
    assert_eq!(results[0]["files"][0]["path"], video_path.as_str());
    assert_eq!(results[0]["files"][0]["media"], "webp_animated");
    let video_family = metadata(VIDEO);
    assert_eq!(video_family["grid"]["message_id"], id(3).to_string());
    let clips: Vec<&Value> = video_family["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|result| !result["files"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(clips.len(), 1, "{video_family}");
    assert_eq!(clips[0]["files"][0]["path"], clip_path.as_str());
    assert_eq!(clips[0]["files"][0]["media"], "mp4");
    // Nothing was written outside the archive.
    assert!(common::files_under(dir.path())
        .iter()
        .all(|path| path.starts_with(&root) || path.extension().is_none_or(|ext| ext != "mp4")));
}

/// `count` grids of distinct jobs, posted on 2024-05-01, each with one image served by `cdn`
/// at `/g<n>.png`; returns the dispatch lines.
fn grids(base: &str, cdn: &Cdn, count: u64) -> Vec<String> {
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    (0..count)
        .map(|n| {
            let id = ((start + n * 1000) << 22) + n;
            let path = format!("/g{n}.png");
            cdn.serve(&path, png(n as u8, 3_000));
            let uuid = format!("5eed0000-0000-4000-8000-{n:012}");
            dispatch(&message(
                id,
                &format!("**prompt {n}** - <@5> (fast)"),
                &format!("{base}{path}"),
                &format!("u_p_{uuid}.png"),
                None,
            ))
        })
        .collect()
}

/// Replays `lines` into the test's database (nothing downloaded).
fn replay(dir: &Path, base: &str, lines: &[String]) {
    let trace = dir.join("t.jsonl");
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let output = run(mjlink(dir, base).arg("replay").arg(&trace));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn states(dir: &Path, base: &str) -> Vec<String> {
    images(dir, base)
        .iter()
        .map(|image| image["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// D7: attachment ids 0 and at or above 2^63 (stored as negative integers) are archived like
/// any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_with_id_zero_or_above_2_63_are_archived() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    let mut lines = Vec::new();
    for (n, attachment) in [(0u64, 0u64), (1, (1u64 << 63) + 5), (2, u64::MAX), (3, 77)] {
        let id = ((start + n * 1000) << 22) + n;
        let path = format!("/a{n}.png");
        cdn.serve(&path, png(n as u8 + 40, 2_000));
        let mut grid = message(
            id,
            &format!("**odd id {n}** - <@5> (fast)"),
            &format!("{base}{path}"),
            &format!("u_p_5eed0000-0000-4000-8000-{n:012}.png"),
            None,
        );
        grid["attachments"][0]["id"] = json!(attachment.to_string());
        lines.push(dispatch(&grid));
    }
    let dir_path = dir.path().to_path_buf();
    let (listed, output) = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        let output = run(mjlink(&dir_path, &base).arg("archive"));
        (images(&dir_path, &base), output)
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut ids: Vec<String> = listed
        .iter()
        .map(|image| image["attachment_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["0", "18446744073709551615", "77", "9223372036854775813"],
        "{listed:?}"
    );
    assert!(
        listed.iter().all(|image| image["state"] == "archived"),
        "{listed:?}"
    );
}

/// D3: a local write error (`archive.dir` is a file) marks nothing failed: the pass stops
/// with one line, every image stays pending, and once the cause is fixed they are archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_error_keeps_every_image_pending_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 6);
    let dir_path = dir.path().to_path_buf();
    let (blocked, pending, fixed, archived) = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        std::fs::write(dir_path.join("archive"), b"a file where the archive folder goes").unwrap();
        let blocked = run(mjlink(&dir_path, &base).arg("archive"));
        let pending = states(&dir_path, &base);
        std::fs::remove_file(dir_path.join("archive")).unwrap();
        let fixed = run(mjlink(&dir_path, &base).arg("archive"));
        (blocked, pending, fixed, states(&dir_path, &base))
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(!blocked.status.success(), "{stderr}");
    assert!(
        stderr.contains("archive") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(pending, vec!["pending"; 6]);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(archived, vec!["archived"; 6]);
}

/// D3: a temporary failure to the end (5xx) stays pending with its reason and a next try,
/// however many passes; a permanent answer (not an image) is failed, and
/// `archive --retry-failed` tries it again on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_stay_pending_and_failed_ones_retry_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 2);
    cdn.script("/g0.png", vec![common::fake_cdn::status(503, vec![])]);
    cdn.script(
        "/g1.png",
        vec![common::fake_cdn::ok(
            b"<html>not an image</html>".to_vec(),
            "text/html",
        )],
    );
    let dir_path = dir.path().to_path_buf();
    let cdn_clone = cdn.clone();
    let (listed, retried) = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        // As after four failed passes: the fifth used to be the last.
        let db = rusqlite::Connection::open(dir_path.join("a.db")).unwrap();
        db.execute("UPDATE attachments SET attempts = 4", []).unwrap();
        drop(db);
        assert!(run(mjlink(&dir_path, &base).arg("archive")).status.success());
        let listed = images(&dir_path, &base);
        cdn_clone.serve("/g1.png", png(1, 3_000));
        let retried = run(mjlink(&dir_path, &base).args(["archive", "--retry-failed"]));
        (listed, (retried, images(&dir_path, &base)))
    })
    .await
    .unwrap();
    assert_eq!(listed[0]["state"], "pending", "{listed:?}");
    assert_eq!(listed[0]["attempts"], 5, "{listed:?}");
    assert!(
        listed[0]["last_error"].as_str().unwrap().contains("503"),
        "{listed:?}"
    );
    assert!(listed[0]["next_try_at"].is_string(), "{listed:?}");
    assert_eq!(listed[1]["state"], "failed", "{listed:?}");
    assert!(retried.0.status.success());
    assert_eq!(retried.1[1]["state"], "archived", "{:?}", retried.1);
}

/// D2: `verify` pointed at a folder that is not the database's archive stops with one line;
/// `verify --repair` marks nothing and the real archive stays verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_pointed_at_another_folder_stops_instead_of_repairing() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 4);
    let dir_path = dir.path().to_path_buf();
    let (wrong, repair, after, right) = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        assert!(run(mjlink(&dir_path, &base).arg("archive")).status.success());
        let elsewhere = dir_path.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let wrong = run(mjlink(&dir_path, &base)
            .env("MJLINK_ARCHIVE_DIR", &elsewhere)
            .arg("verify"));
        let repair = run(mjlink(&dir_path, &base)
            .env("MJLINK_ARCHIVE_DIR", &elsewhere)
            .args(["verify", "--repair"]));
        let after = states(&dir_path, &base);
        let right = run(mjlink(&dir_path, &base).arg("verify"));
        (wrong, repair, after, right)
    })
    .await
    .unwrap();
    for output in [&wrong, &repair] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("is not this database's archive"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert_eq!(after, vec!["archived"; 4]);
    let text = String::from_utf8_lossy(&right.stdout);
    assert!(
        right.status.success() && text.contains("checked 4, ok 4"),
        "{text}"
    );
}

/// D4: a symbolic link at `<archive>/.staging` is refused with one line; the files where it
/// points are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_staging_folder_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 2);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.txt"), b"keep me").unwrap();
    std::fs::create_dir_all(dir.path().join("archive")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("archive/.staging")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let (output, listed) = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        let output = run(mjlink(&dir_path, &base).arg("archive"));
        (output, states(&dir_path, &base))
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(outside.join("precious.txt")).unwrap(), b"keep me");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(listed, vec!["pending"; 2]);
}

/// D4: a family's year folder that is a symbolic link to somewhere else is never written
/// through; its images stay pending with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_family_folder_is_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 2);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(dir.path().join("archive")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("archive/2024")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let listed = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        let _ = run(mjlink(&dir_path, &base).arg("archive"));
        images(&dir_path, &base)
    })
    .await
    .unwrap();
    assert_eq!(common::files_under(&outside), Vec::<PathBuf>::new());
    for image in &listed {
        assert_eq!(image["state"], "pending", "{listed:?}");
        assert!(
            image["last_error"].as_str().unwrap().contains("symbolic link"),
            "{listed:?}"
        );
    }
}

/// D5: temporary files a killed run left (in the staging folder, and the `.tmpXXXXXX` of a
/// family's metadata) are removed by the next pass; nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_files_of_a_killed_run_are_removed_by_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 1);
    let family = dir
        .path()
        .join("archive/2024/05/5eed0000-0000-4000-8000-000000000000");
    std::fs::create_dir_all(&family).unwrap();
    std::fs::create_dir_all(dir.path().join("archive/.staging")).unwrap();
    // What a run killed while writing metadata.json left (tempfile's default name).
    std::fs::write(family.join(".tmpAb3dE9"), b"{\"grid\": {\"half").unwrap();
    std::fs::write(family.join("notes.txt"), b"the user's").unwrap();
    let dir_path = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        run(mjlink(&dir_path, &base).arg("archive"))
    })
    .await
    .unwrap();
    assert!(output.status.success());
    let mut names: Vec<String> = std::fs::read_dir(&family)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["grid.png", "metadata.json", "notes.txt", "prompt.txt"]);
}

/// D5: a second archive pass while one is running stops with one line (it would fetch the
/// same images again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_archive_pass_at_once_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::with_delay(Duration::from_millis(400));
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 12);
    let dir_path = dir.path().to_path_buf();
    let (first, second, listed) = tokio::task::spawn_blocking(move || {
        replay(&dir_path, &base, &lines);
        let first = mjlink(&dir_path, &base)
            .arg("archive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let second = run(mjlink(&dir_path, &base).arg("archive"));
        let first = first.wait_with_output().unwrap();
        (first, second, images(&dir_path, &base))
    })
    .await
    .unwrap();
    assert!(first.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(stderr.contains("another archive pass"), "{stderr}");
    assert!(listed.iter().all(|image| image["state"] == "archived"));
    for n in 0..12 {
        assert_eq!(cdn.hits(&format!("/g{n}.png")).len(), 1, "g{n} fetched once");
    }
}

/// S1: one image answering 429 with `Retry-After: 3600`, one that stalls and one that trickles
/// among many hold up nobody: the others are recorded within a bounded time while those are
/// still in flight, the 429 is deferred (pending, next try in an hour) and the slow ones stay
/// pending with their reason; the pass ends within the deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_image_never_holds_up_the_others() {
    use mjlink::archive::download::{FetchPolicy, Fetcher};
    use mjlink::archive::worker::{archive_pending, WorkerOptions};
    use mjlink::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let lines = grids(&base, &cdn, 40);
    cdn.script(
        "/g0.png",
        vec![common::fake_cdn::status(429, vec![("Retry-After", "3600")])],
    );
    cdn.script(
        "/g1.png",
        vec![common::fake_cdn::Reply::Stall {
            body: png(1, 500),
            stall: Duration::from_secs(60),
        }],
    );
    cdn.script(
        "/g2.png",
        vec![common::fake_cdn::Reply::Trickle {
            body: png(2, 3_000),
            chunk: 20,
            every: Duration::from_millis(200),
        }],
    );
    let dir_path = dir.path().to_path_buf();
    let base_clone = base.clone();
    tokio::task::spawn_blocking(move || replay(&dir_path, &base_clone, &lines))
        .await
        .unwrap();

    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let fetcher = Fetcher::new(FetchPolicy {
        allowed_hosts: vec!["127.0.0.1".to_string()],
        attempts: 2,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        read_timeout: Duration::from_secs(4),
        first_byte_timeout: Duration::from_secs(4),
        min_bytes_per_sec: 2_000,
        rate_grace: Duration::from_secs(1),
        ..FetchPolicy::default()
    })
    .unwrap();
    let options = WorkerOptions {
        concurrency: 4,
        ..WorkerOptions::in_folder(dir.path().join("archive"))
    };
    let started = std::time::Instant::now();
    let pass =
        tokio::spawn(async move { archive_pending(&mut store, &fetcher, None, &options, |_, _| {}).await });
    // The 37 others are recorded while the three slow ones are still in flight.
    let reader = Store::open(&dir.path().join("a.db")).unwrap();
    let archived = loop {
        let archived = reader
            .images()
            .unwrap()
            .iter()
            .filter(|image| image.state == "archived")
            .count();
        if archived >= 37 || started.elapsed() > Duration::from_secs(3) {
            break archived;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(archived, 37, "recorded within 3 s");
    assert!(!pass.is_finished(), "the slow ones are still in flight");
    let summary = tokio::time::timeout(Duration::from_secs(30), pass)
        .await
        .expect("the pass ends within its deadlines")
        .unwrap()
        .unwrap();
    assert_eq!(
        (summary.archived, summary.failed, summary.retry_later),
        (37, 0, 3),
        "{summary:?}"
    );
    let rows = reader.images().unwrap();
    let now = chrono::Utc::now();
    for (n, reason) in [(0usize, "429"), (1, ""), (2, "too slow")] {
        let row = &rows[n];
        assert_eq!(row.state, "pending", "{row:?}");
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(error.contains(reason), "{row:?}");
        let next = chrono::DateTime::parse_from_rfc3339(row.next_try_at.as_deref().unwrap()).unwrap();
        assert!(next > now, "{row:?}");
    }
    let limited = chrono::DateTime::parse_from_rfc3339(rows[0].next_try_at.as_deref().unwrap()).unwrap();
    assert!(
        limited.signed_duration_since(now).num_seconds() > 3500,
        "{:?}",
        rows[0]
    );
    assert_eq!(
        cdn.hits("/g0.png").len(),
        1,
        "a long Retry-After is not waited for in the pass"
    );
}

/// S1: links that answered 403 are refreshed and fetched again side by side, not one at a
/// time: with every answer taking 400 ms, requests for fresh links arrive together (one at a
/// time, each would come at least 400 ms after the one before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_links_are_fetched_side_by_side() {
    use common::fake_discord::FakeDiscord;
    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::with_delay(Duration::from_millis(400));
    let base = format!("http://{}", cdn.clone().start().await);
    let discord = FakeDiscord::start("archive-token").await.unwrap();
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    let mut lines = Vec::new();
    for n in 0..8u64 {
        let id = ((start + n * 1000) << 22) + n;
        cdn.script(
            &format!("/old/r{n}.png"),
            vec![common::fake_cdn::status(403, vec![])],
        );
        cdn.serve(&format!("/fresh/r{n}.png"), png(n as u8 + 60, 2_000));
        lines.push(dispatch(&message(
            id,
            &format!("**refreshed {n}** - <@5> (fast)"),
            &format!("{base}/old/r{n}.png?ex=7fffffff&is=0&hm=00&"),
            &format!("u_5eed0000-0000-4000-8000-{n:012}.png"),
            None,
        )));
    }
    let dir_path = dir.path().to_path_buf();
    let api = discord.api_base();
    let output = tokio::task::spawn_blocking(move || {
        replay(&dir_path, "", &lines);
        run(mjlink(&dir_path, "")
            .env("MJLINK_DISCORD_TOKEN", "archive-token")
            .env("MJLINK_DISCORD_API_BASE", api)
            .arg("archive"))
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("archived 8, deduplicated 0, failed 0"), "{text}");
    let mut fresh: Vec<std::time::Instant> = (0..8)
        .flat_map(|n| cdn.hits(&format!("/fresh/r{n}.png")))
        .collect();
    fresh.sort();
    let closest = fresh.windows(2).map(|pair| pair[1] - pair[0]).min().unwrap();
    assert!(
        closest < Duration::from_millis(200),
        "fresh links one at a time: {fresh:?}"
    );
}

/// Archived files are for a web server or a second user to read: every file (images,
/// `metadata.json`, `prompt.txt`) is written 0644 and every folder 0755, whatever the mode
/// the temporary file was made with (issue 13).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_files_are_readable_by_the_group_and_others() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let trace = dir.path().join("t.jsonl");
    std::fs::write(&trace, family(&base, &cdn).join("\n")).unwrap();
    let dir_path = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = mjlink(&dir_path, &base);
        command.args(["replay", "--download"]).arg(&trace);
        // The usual umask, whatever the one of the test run.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        run(&mut command)
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let root = dir.path().join("archive");
    let family = root.join("2024/05").join(UUID);
    let mut files = 0;
    for entry in std::fs::read_dir(&family).unwrap().flatten() {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{:?} is {mode:o}", entry.file_name());
        files += 1;
    }
    assert!(files >= 6, "the images, metadata.json and prompt.txt: {files}");
    for folder in [root.join("2024"), root.join("2024/05"), family] {
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{} is {mode:o}", folder.display());
    }
}
