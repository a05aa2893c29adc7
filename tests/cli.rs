//! The `mjlink` binary as a user runs it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn mjlink() -> Command {
    common::mjlink_command()
}

#[test]
fn replay_then_links_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args([
            "replay",
            "fixtures/real/wxapi_upscale_image4.jsonl",
            "fixtures/real/wxapi_channel_50.json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(summary.contains("links by signal     reference 1"), "{summary}");
    assert!(summary.contains("already known       2"), "{summary}");

    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["links", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["child_id"], "1128641343909007401");
    assert_eq!(row["parent_id"], "1128599623762714675");
    assert_eq!(row["action"], "upscale");
    assert_eq!(row["index"], 4);
    assert_eq!(row["signal"], "reference");
    assert_eq!(row["status"], "linked");
    assert_eq!(row["candidates"], serde_json::json!([]));
    assert_eq!(row["channel_id"], "1120568025993715764");
    assert_eq!(row["created_at"], "2023-07-12T10:57:45.530Z");
    assert!(row["prompt"]
        .as_str()
        .unwrap()
        .contains("The spaceship and the airplane collided."));

    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["links", "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(output.stdout).unwrap();
    // The JSON lines' columns, in their order; ids quoted (text), numbers bare.
    assert!(csv.starts_with(
        "\u{feff}child_id,parent_id,action,index,signal,status,candidates,prompt,channel_id,created_at\n"
    ));
    assert!(csv.contains(
        "\"1128641343909007401\",\"1128599623762714675\",\"upscale\",4,\"reference\",\"linked\",,\"[6144234458317582] The spaceship"
    ));
    assert!(
        csv.contains(",\"1120568025993715764\",\"2023-07-12T10:57:45.530Z\"\n"),
        "{csv}"
    );
}

#[test]
fn replay_reads_stdin_and_prints_json_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stdin.db");
    let mut child = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["replay", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(common::root().join("fixtures/scenarios/disorder.jsonl")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    // Malformed lines were skipped: the documented exit status 3.
    assert_eq!(output.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["replay"]["malformed"], 6);
    assert_eq!(report["replay"]["duplicates"], 4);
}

#[test]
fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = mjlink()
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .args(["replay", "no/such/file.jsonl"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mjlink: cannot open no/such/file.jsonl"),
        "{stderr}"
    );

    let output = mjlink()
        .arg("--db")
        .arg(dir.path().join("missing.db"))
        .args(["links"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no database at"), "{stderr}");

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[linking]\nwindow_hours = \"six\"\n").unwrap();
    let output = mjlink()
        .arg("--config")
        .arg(&config)
        .args(["links"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");

    let output = mjlink()
        .env("MJLINK_MIDJOURNEY_BOT_IDS", "not-an-id")
        .args(["links"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("MJLINK_MIDJOURNEY_BOT_IDS"), "{stderr}");
}

#[test]
fn database_path_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let output = mjlink()
        .env("MJLINK_DATABASE_PATH", &db)
        .args(["replay", "fixtures/real/wxapi_grid_v52.jsonl"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(db.exists());
}

#[test]
fn queue_add_list_show_cancel_as_a_user_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    let run = |args: &[&str]| {
        let output = mjlink().arg("--db").arg(&db).args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, out, err) = run(&[
        "queue",
        "add",
        "a cat in the rain --ar 16:9 --v 7",
        "--upscale",
        "3,1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("added 1 item(s), upscales: 1,3"), "{out}");
    let file = dir.path().join("prompts.txt");
    std::fs::write(&file, "# my prompts\n\nglass whale --chaos 20\n  \nneon koi\n").unwrap();
    let (code, out, _) = run(&[
        "queue",
        "add",
        "--file",
        file.to_str().unwrap(),
        "--priority",
        "2",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("added 2 item(s), upscales: all"), "{out}");

    // Queue order: priority first, then the order added.
    let (_, out, _) = run(&["queue", "list"]);
    let prompts: Vec<&str> = out
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l.split("  ").last().unwrap().trim())
        .collect();
    assert_eq!(
        prompts,
        [
            "glass whale --chaos 20",
            "neon koi",
            "a cat in the rain --ar 16:9 --v 7"
        ]
    );
    assert!(out.ends_with("3 items: 3 queued\n"), "{out}");
    let (_, out, _) = run(&["queue", "list", "--format", "jsonl"]);
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[2]["prompt"], "a cat in the rain --ar 16:9 --v 7");
    assert_eq!(rows[2]["upscales"], serde_json::json!([1, 3]));
    let id = rows[2]["id"].as_str().unwrap().to_string();

    let (code, out, _) = run(&["queue", "show", &id[..8]]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("prompt:    a cat in the rain --ar 16:9 --v 7\n"),
        "{out}"
    );
    assert!(out.contains("params:    --ar 16:9 --v 7"), "{out}");
    let (code, out, _) = run(&["queue", "cancel", &id]);
    assert_eq!(code, Some(0));
    assert!(out.contains("cancelled"), "{out}");
    let (_, out, _) = run(&["queue", "list", "--status", "cancelled"]);
    assert!(out.ends_with("1 items: 1 cancelled\n"), "{out}");
    let (code, out, _) = run(&["queue", "cancel", &id]);
    assert_eq!(code, Some(1));
    assert!(out.contains("had already finished: cancelled"), "{out}");

    // Mistakes get one clear line.
    for (args, expected) in [
        (vec!["queue", "add", "x", "--upscale", "5"], "is not a tile"),
        (vec!["queue", "show", "nope"], "no queue item has the id"),
        (vec!["queue", "list", "--status", "busy"], "not a status"),
        (
            vec!["queue", "add", "--file", "/no/such/file"],
            "cannot read /no/such/file",
        ),
        (vec!["queue", "run"], "discord.token"),
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(1), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// D1: `demo --dir` on a folder that holds anything (here a bot's real archive) is refused
/// with one line, and nothing in it is touched; `--db` does not apply to the demo.
#[test]
fn demo_refuses_a_folder_that_holds_anything_and_the_db_flag() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("archive/2024/05/family/grid.png");
    std::fs::create_dir_all(precious.parent().unwrap()).unwrap();
    std::fs::write(&precious, b"the user's image").unwrap();
    let output = mjlink()
        .arg("demo")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"the user's image");

    let empty = dir.path().join("new");
    let output = mjlink()
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .arg("demo")
        .arg("--dir")
        .arg(&empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--db") && stderr.contains("does not apply"),
        "{stderr}"
    );
    assert!(!dir.path().join("x.db").exists());
}

/// E3: an archive folder that cannot be created (a file stands where a folder must be) is a
/// failed check.
#[test]
fn doctor_fails_an_archive_folder_it_cannot_create() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), b"not a folder").unwrap();
    let output = mjlink()
        .env("MJLINK_ARCHIVE_DIR", dir.path().join("afile/archive"))
        .env("MJLINK_DATABASE_PATH", dir.path().join("d.db"))
        .arg("doctor")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.contains("archive"))
        .unwrap_or_default()
        .to_string();
    assert!(line.starts_with("FAIL"), "{stdout}");
    assert!(line.contains("afile"), "{line}");
    assert!(!output.status.success());
}

/// D2: relative paths in bot.toml are read from bot.toml's folder, not the working directory.
#[test]
fn relative_paths_in_the_config_file_resolve_against_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("bot");
    std::fs::create_dir_all(&bot).unwrap();
    std::fs::write(
        bot.join("bot.toml"),
        "[database]\npath = \"data/m.db\"\n[archive]\ndir = \"pictures\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(bot.join("data")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let output = mjlink()
        .current_dir(&elsewhere)
        .arg("--config")
        .arg(bot.join("bot.toml"))
        .args([
            "replay",
            &format!(
                "{}/fixtures/real/wxapi_upscale_image4.jsonl",
                env!("CARGO_MANIFEST_DIR")
            ),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(bot.join("data/m.db").exists());
    assert!(!elsewhere.join("data").exists());
    let output = mjlink()
        .current_dir(&elsewhere)
        .arg("--config")
        .arg(bot.join("bot.toml"))
        .arg("doctor")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&bot.join("pictures").display().to_string()),
        "{stdout}"
    );
}

/// `mjlink replay --json FILES` into a fresh database: (exit code, report, stderr).
fn replay_json(files: &[&std::path::Path]) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = mjlink()
        .arg("--db")
        .arg(dir.path().join("replay.db"))
        .args(["replay", "--json"])
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        output.status.code(),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn applied(report: &serde_json::Value) -> u64 {
    report["replay"]["applied"].as_u64().unwrap_or(u64::MAX)
}

/// Every event the writer took, whatever it did with it.
fn events(report: &serde_json::Value) -> u64 {
    ["applied", "duplicates", "unchanged", "ignored"]
        .iter()
        .map(|count| report["replay"][count].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn replay_input_is_all_or_nothing_per_line_never_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::root().join("fixtures/real/mjwrapper_10_grids.jsonl");
    let good_bytes = std::fs::read(&good).unwrap();
    let (code, clean, _) = replay_json(&[&good]);
    assert_eq!(code, Some(0));
    let all = applied(&clean);
    assert!(all >= 10, "{clean}");

    // Dispatch lines whose first line starts with '[' (a garbled or log line).
    let bracket = dir.path().join("bracket.jsonl");
    std::fs::write(
        &bracket,
        [b"[12:00] recording started\n".as_slice(), &good_bytes].concat(),
    )
    .unwrap();
    let (code, report, _) = replay_json(&[&bracket]);
    assert_eq!(applied(&report), all, "{report}");
    assert_eq!(report["replay"]["malformed"], 1, "{report}");
    assert_eq!(
        report["replay"]["malformed_examples"][0]["place"]["line"], 1,
        "{report}"
    );
    assert_eq!(code, Some(3), "malformed input has its own exit status");

    // A UTF-8 byte order mark does not cost the first event.
    let bom = dir.path().join("bom.jsonl");
    std::fs::write(&bom, [b"\xEF\xBB\xBF".as_slice(), &good_bytes].concat()).unwrap();
    let (code, report, _) = replay_json(&[&bom]);
    assert_eq!((code, applied(&report)), (Some(0), all), "{report}");

    // A good file and a missing one: the good one is read whole, the missing one named.
    let missing = dir.path().join("missing.jsonl");
    let (code, report, stderr) = replay_json(&[&good, &missing]);
    assert_eq!(applied(&report), all, "{report}");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("mjlink: cannot open {}", missing.display())),
        "{stderr}"
    );

    // Every line malformed; a directory: not a success.
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "not json\n{\"op\":0,\"t\":\"MESSAGE_CREATE\"\n").unwrap();
    let (code, report, _) = replay_json(&[&garbage]);
    assert_eq!((code, report["replay"]["malformed"].as_u64()), (Some(3), Some(2)));
    let (code, _, stderr) = replay_json(&[dir.path()]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn a_damaged_history_array_loses_only_its_damaged_elements() {
    let dir = tempfile::tempdir().unwrap();
    let dump = common::root().join("fixtures/real/wxapi_channel_50.json");
    let bytes = std::fs::read(&dump).unwrap();
    let (code, clean, _) = replay_json(&[&dump]);
    assert_eq!(code, Some(0));
    assert_eq!(clean["replay"]["lines"], 50, "{clean}");

    // One bad byte in the middle of an element's text.
    let at = bytes.len() / 2
        + bytes[bytes.len() / 2..]
            .windows(11)
            .position(|w| w == b"\"content\": ")
            .unwrap()
        + 13;
    let mut damaged = bytes.clone();
    damaged[at] = 0xFF;
    let file = dir.path().join("damaged.json");
    std::fs::write(&file, &damaged).unwrap();
    let (code, report, _) = replay_json(&[&file]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["replay"]["malformed"], 1, "{report}");
    let place = report["replay"]["malformed_examples"][0]["place"]["element"].as_u64();
    assert!(place.is_some_and(|index| (20..50).contains(&index)), "{report}");
    assert_eq!(events(&report), events(&clean) - 1, "{report}");

    // Pages of history one per line (`jq -c`): every element of every line counts.
    let messages: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    let (first, second) = messages.split_at(20);
    let pages = format!(
        "{}\n{}\n",
        serde_json::to_string(first).unwrap(),
        serde_json::to_string(second).unwrap()
    );
    let file = dir.path().join("pages.jsonl");
    std::fs::write(&file, pages).unwrap();
    let (code, report, _) = replay_json(&[&file]);
    assert_eq!((code, events(&report)), (Some(0), events(&clean)), "{report}");

    // Cut short: every element before the cut is kept.
    let file = dir.path().join("cut.json");
    std::fs::write(&file, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let (code, report, _) = replay_json(&[&file]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["replay"]["malformed"], 1, "{report}");
    assert!(events(&report) >= events(&clean) * 2 / 3, "{report}");
}

#[test]
fn commands_that_read_a_database_refuse_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    for args in [
        vec!["images"],
        vec!["verify"],
        vec!["archive"],
        vec!["queue", "list"],
        vec!["queue", "show", "abc"],
        vec!["queue", "cancel", "abc"],
        vec!["links"],
        vec!["messages"],
    ] {
        let output = mjlink().arg("--db").arg(&db).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("no database at"), "{args:?}: {stderr}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

/// A database in a read-only folder, as a user who may not write it (when the tests run as
/// root, who may write anything, the commands run as `nobody`).
#[cfg(unix)]
#[test]
fn a_read_only_database_can_be_read_and_exported() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ro");
    std::fs::create_dir(&folder).unwrap();
    let db = folder.join("ro.db");
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["replay", "fixtures/real/wxapi_upscale_image4.jsonl"])
        .output()
        .unwrap();
    assert!(output.status.success());
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_reader = |args: &[&str]| {
        let mut command = mjlink();
        command.arg("--db").arg(&db).args(args);
        // Whether the tests run as root (its effective uid, from /proc).
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|status| {
                status
                    .lines()
                    .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        if root {
            command.uid(65534).gid(65534);
        }
        command.output().unwrap()
    };
    for args in [
        vec!["links", "--format", "jsonl"],
        vec!["messages", "--format", "csv"],
        vec!["images"],
        vec!["verify"],
        vec!["queue", "list"],
    ] {
        let output = as_reader(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
    let output = as_reader(&["links", "--format", "jsonl"]);
    let rows = String::from_utf8_lossy(&output.stdout);
    assert!(rows.contains("\"child_id\":\"1128641343909007401\""), "{rows}");
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `mjlink ARGS` whose reader goes away before it writes (`mjlink images | head -0`):
/// (exit code, stderr).
fn with_closed_stdout(db: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = mjlink()
        .arg("--db")
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_every_listing_quietly_with_success() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pipe.db");
    let fixture = "fixtures/real/mjwrapper_10_grids.jsonl";
    let (code, stderr) = with_closed_stdout(&db, &["replay", "--links", "jsonl", fixture]);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    for args in [
        vec!["images"],
        vec!["images", "--format", "jsonl"],
        vec!["links", "--format", "csv"],
        vec!["messages"],
        vec!["queue", "list"],
    ] {
        let (code, stderr) = with_closed_stdout(&db, &args);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "{args:?}");
    }
}

#[test]
fn event_type_names_are_bounded_and_escape_sequences_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("hostile.jsonl");
    let mut lines = String::new();
    for n in 0..2000 {
        let name = format!("\\u001b]0;pwned\\u0007\\u001b[2J{n}{}", "T".repeat(2000));
        lines.push_str(&format!("{{\"op\":0,\"t\":\"{name}\",\"d\":{{}}}}\n"));
    }
    // A malformed line whose reason quotes its text.
    lines.push_str("{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"\\u001b[31m\"}}\n");
    std::fs::write(&trace, lines).unwrap();
    let output = mjlink()
        .arg("--db")
        .arg(dir.path().join("h.db"))
        .args(["replay"])
        .arg(&trace)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        !summary.contains('\u{1b}') && !summary.contains('\u{7}'),
        "{summary}"
    );
    assert!(summary.contains("\\u{1b}]0;pwned"), "{summary}");
    let longest = summary.lines().map(str::len).max().unwrap();
    assert!(longest < 16 * 1024, "a summary line of {longest} bytes");

    let output = mjlink()
        .arg("--db")
        .arg(dir.path().join("j.db"))
        .args(["replay", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped = report["replay"]["skipped"].as_object().unwrap();
    assert!(skipped.len() <= 65, "{} names kept", skipped.len());
    assert_eq!(
        skipped.values().map(|count| count.as_u64().unwrap()).sum::<u64>(),
        2000
    );
    assert!(
        skipped.keys().all(|name| name.chars().count() <= 64),
        "{skipped:?}"
    );
}

#[test]
fn errors_say_each_cause_once_keep_network_causes_and_refuse_unknown_settings() {
    let dir = tempfile::tempdir().unwrap();
    let run = |command: &mut Command| {
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    // A cause is said once.
    let (code, stderr, _) = run(mjlink().args(["--config", "/no/such/bot.toml", "links"]));
    assert_eq!(code, Some(1));
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");

    // A network failure keeps its cause.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, _, stdout) = run(mjlink()
        .env("MJLINK_DISCORD_API_BASE", format!("http://{closed}"))
        .arg("--db")
        .arg(dir.path().join("d.db"))
        .arg("doctor"));
    let api = stdout
        .lines()
        .find(|line| line.contains("api"))
        .unwrap_or_default();
    assert!(api.to_lowercase().contains("connection refused"), "{stdout}");

    // A misspelled variable and a log filter that is none are refused at start.
    let (code, stderr, _) = run(mjlink().env("MJLINK_DATABSE_PATH", "x.db").args(["links"]));
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("MJLINK_DATABSE_PATH") && stderr.contains("did you mean MJLINK_DATABASE_PATH?"),
        "{stderr}"
    );
    let (code, stderr, _) = run(mjlink().env("MJLINK_LOG_FILTER", "mjlink=loud").args(["links"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("log.filter") && stderr.contains("mjlink=loud"),
        "{stderr}"
    );

    // A config error names the key and says where, in lines and columns.
    let config = dir.path().join("bot.toml");
    std::fs::write(&config, "[archive]\nenabled = true\ndir = 5\n").unwrap();
    let (code, stderr, _) = run(mjlink().arg("--config").arg(&config).args(["links"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("`archive.dir`") && stderr.contains("line 3, column 7"),
        "{stderr}"
    );
}

/// Ids match literally: `%` and `_` are characters, not wildcards, and an empty id is refused
/// with one clear line, even when a single item exists (which any wildcard would match).
#[test]
fn queue_show_and_cancel_match_ids_literally() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    let run = |args: &[&str]| {
        let output = mjlink().arg("--db").arg(&db).args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, _, err) = run(&["queue", "add", "only one item"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run(&["queue", "list", "--format", "jsonl"]);
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let id = row["id"].as_str().unwrap().to_string();
    // A wildcard in the place of one character of the real id.
    let underscored = format!("{}_", &id[..3]);
    for pattern in ["%", "_", "%%", underscored.as_str()] {
        for command in ["show", "cancel"] {
            let (code, out, err) = run(&["queue", command, pattern]);
            assert_eq!(code, Some(1), "{command} {pattern:?}: {out}");
            assert_eq!(err.lines().count(), 1, "{command} {pattern:?}: {err}");
            assert!(
                err.contains("no queue item has the id"),
                "{command} {pattern:?}: {err}"
            );
        }
    }
    for empty in ["", "  "] {
        for command in ["show", "cancel"] {
            let (code, out, err) = run(&["queue", command, empty]);
            assert_eq!(code, Some(1), "{command} {empty:?}: {out}");
            assert_eq!(err.lines().count(), 1, "{command} {empty:?}: {err}");
            assert!(err.contains("empty"), "{command} {empty:?}: {err}");
        }
    }
    // Nothing was cancelled by any of it; the real prefix still works.
    let (_, out, _) = run(&["queue", "list"]);
    assert!(out.ends_with("1 items: 1 queued\n"), "{out}");
    let (code, out, _) = run(&["queue", "show", &id[..4]]);
    assert_eq!(code, Some(0));
    assert!(out.contains("only one item"), "{out}");
}

/// A database made by replaying the heuristics scenario (one ambiguous upscale, one
/// heuristic link, unresolved ones).
fn heuristics_db(dir: &std::path::Path) -> std::path::PathBuf {
    let db = dir.join("answers.db");
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["replay", "fixtures/scenarios/heuristics.jsonl"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    db
}

fn run_ok(db: &std::path::Path, args: &[&str]) -> String {
    let output = mjlink().arg("--db").arg(db).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn lineage_search_and_stats_answer_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = heuristics_db(dir.path());

    // A heuristic link, asked by Discord message link: the grid and its upscale.
    let text = run_ok(
        &db,
        &[
            "lineage",
            "https://discord.com/channels/662267976984297473/1008571020480876554/1235021369180160030",
        ],
    );
    assert!(text.contains("a lone tree in fog --ar 3:2"), "{text}");
    assert!(text.contains("grid 1235020865863680028"), "{text}");
    assert!(text.contains("  U4 1235021369180160030 [heuristic]"), "{text}");
    let family: serde_json::Value =
        serde_json::from_str(&run_ok(&db, &["lineage", "1235021369180160030", "--json"])).unwrap();
    assert_eq!(family["asked"], "1235021369180160030");
    assert_eq!(family["nodes"][0]["message_id"], "1235020865863680028");
    assert_eq!(family["nodes"][1]["link"]["signal"], "heuristic");
    assert_eq!(family["nodes"][1]["link"]["parent"], "1235020865863680028");
    // The ambiguous upscale says so, with its candidates and how to settle it.
    let text = run_ok(&db, &["lineage", "1235020614205440026"]);
    assert!(
        text.contains("ambiguous: 1235020614205440026 fits several parents"),
        "{text}"
    );
    assert!(
        text.contains("mjlink link set 1235020614205440026 PARENT"),
        "{text}"
    );

    let text = run_ok(&db, &["search", "kite", "dunes"]);
    assert!(text.starts_with("2 prompts match \"kite dunes\""), "{text}");
    assert!(text.contains("1235023382446080044 imagine"), "{text}");
    let found: serde_json::Value = serde_json::from_str(&run_ok(
        &db,
        &["search", "fog", "--user", "439110225975443468", "--json"],
    ))
    .unwrap();
    assert_eq!(found["total"], 2, "{found}");
    assert!(found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|hit| hit["user_id"] == "439110225975443468" && hit["message_id"].is_string()));
    let found: serde_json::Value = serde_json::from_str(&run_ok(
        &db,
        &["search", "fog", "--since", "2024-05-02", "--json"],
    ))
    .unwrap();
    assert_eq!(found["total"], 0, "{found}");

    let text = run_ok(&db, &["stats"]);
    assert!(text.contains("grids               16"), "{text}");
    assert!(
        text.contains("links by signal     heuristic 2, interaction 1, reference 5"),
        "{text}"
    );
    assert!(text.contains("ambiguous           1"), "{text}");
    let stats: serde_json::Value = serde_json::from_str(&run_ok(&db, &["stats", "--json"])).unwrap();
    assert_eq!(stats["grids"], 16);
    assert_eq!(stats["unresolved"], 2);

    // Reading commands never create a database, and bad input is one line.
    let missing = dir.path().join("missing.db");
    for args in [&["stats"][..], &["search", "fog"], &["lineage", "1"]] {
        let output = mjlink().arg("--db").arg(&missing).args(args).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with("mjlink: no database at"), "{stderr}");
        assert!(!missing.exists());
    }
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["lineage", "not-a-link"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "mjlink: Give a message link (Copy Message Link) or a message id.\n"
    );
}

#[test]
fn answers_escape_untrusted_text_for_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = heuristics_db(dir.path());
    // A search for words with an escape sequence prints them escaped.
    let text = run_ok(&db, &["search", "kite\u{1b}[2J"]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

/// The link of `child` as `mjlink links --format jsonl` prints it.
fn link_of(db: &std::path::Path, child: &str) -> serde_json::Value {
    run_ok(db, &["links", "--format", "jsonl"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|row| row["child_id"] == child)
        .unwrap()
}

const AMBIGUOUS_U3: &str = "1235020614205440026";

#[test]
fn link_set_settles_an_ambiguous_result_and_clear_gives_it_back_to_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let db = heuristics_db(dir.path());
    assert_eq!(link_of(&db, AMBIGUOUS_U3)["status"], "ambiguous");

    let text = run_ok(
        &db,
        &["link", "set", AMBIGUOUS_U3, "1235018449944576008", "--by", "ana"],
    );
    assert_eq!(
        text,
        format!("{AMBIGUOUS_U3} linked to 1235018449944576008 (manual, by ana)\n")
    );
    let row = link_of(&db, AMBIGUOUS_U3);
    assert_eq!(row["parent_id"], "1235018449944576008");
    assert_eq!(row["signal"], "manual");
    assert_eq!(row["status"], "linked");
    let family: serde_json::Value =
        serde_json::from_str(&run_ok(&db, &["lineage", AMBIGUOUS_U3, "--json"])).unwrap();
    assert_eq!(family["nodes"][0]["message_id"], "1235018449944576008");
    let manual = &family["asked_link"]["manual"];
    assert_eq!(manual["set_by"], "ana", "{family}");
    assert_eq!(manual["parent_id"], "1235018449944576008");
    let set_at = manual["set_at_ms"].as_i64().unwrap();
    assert!(set_at > 1_700_000_000_000, "the clock's time: {set_at}");
    let text = run_ok(&db, &["lineage", AMBIGUOUS_U3]);
    assert!(
        text.contains("U3 1235020614205440026 [manual by ana at 20"),
        "{text}"
    );
    // Without --by: $USER, else `cli`.
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .env_remove("USER")
        .args(["link", "set", AMBIGUOUS_U3, "1235018449944576008"])
        .output()
        .unwrap();
    assert!(output.stdout.ends_with(b"(manual, by cli)\n"), "{output:?}");
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .env("USER", "bo\u{1b}[2Jb")
        .args(["link", "set", AMBIGUOUS_U3, "1235018449944576008"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("(manual, by bo") && !stdout.contains('\u{1b}'),
        "{stdout:?}"
    );
    let text = run_ok(&db, &["lineage", AMBIGUOUS_U3]);
    assert!(
        text.contains("[manual by bo") && !text.contains('\u{1b}'),
        "{text:?}"
    );
    let text = run_ok(&db, &["stats"]);
    assert!(text.contains("manual 1"), "{text}");
    assert!(text.contains("ambiguous           0"), "{text}");

    // Refused, one line each, nothing changed: an exactly linked child, a parent that is
    // not stored, a parent whose shape has no tile button, a message without a link.
    let refused = |args: &[&str]| {
        let output = mjlink().arg("--db").arg(&db).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    };
    let stderr = refused(&["link", "set", "1235020110888960022", "1235018047291392004"]);
    assert!(
        stderr.contains("by its reference signal from Discord, which a manual link never overrides"),
        "{stderr}"
    );
    assert_eq!(link_of(&db, "1235020110888960022")["signal"], "reference");
    let stderr = refused(&["link", "set", "1235021620838400036", "999"]);
    assert!(stderr.contains("999 is not a stored message"), "{stderr}");
    let stderr = refused(&["link", "set", "1235021620838400036", "1235023130787840042"]);
    assert!(
        stderr.contains("has no button that makes a `upscale` result"),
        "{stderr}"
    );
    assert_eq!(link_of(&db, "1235021620838400036")["status"], "unresolved");
    let stderr = refused(&["link", "clear", "1235021369180160030"]);
    assert!(stderr.contains("has no manual link to clear"), "{stderr}");
    assert_eq!(link_of(&db, "1235021369180160030")["signal"], "heuristic");

    let text = run_ok(&db, &["link", "clear", AMBIGUOUS_U3]);
    assert_eq!(
        text,
        format!("manual link of {AMBIGUOUS_U3} cleared; now ambiguous\n")
    );
    let row = link_of(&db, AMBIGUOUS_U3);
    assert_eq!(row["status"], "ambiguous");
    assert_eq!(row["candidates"].as_array().unwrap().len(), 10);

    // Writing commands never create a database.
    let missing = dir.path().join("missing.db");
    let output = mjlink()
        .arg("--db")
        .arg(&missing)
        .args(["link", "clear", AMBIGUOUS_U3])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!missing.exists());
}

fn replay_values(db: &std::path::Path, events: &[serde_json::Value]) {
    let path = db.with_extension("more.jsonl");
    let lines: Vec<String> = events.iter().map(|event| event.to_string()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    run_ok(db, &["replay", path.to_str().unwrap()]);
}

#[test]
fn a_manual_link_survives_the_fallback_of_new_events_and_yields_to_a_later_exact_signal() {
    let dir = tempfile::tempdir().unwrap();
    let db = heuristics_db(dir.path());
    run_ok(&db, &["link", "set", AMBIGUOUS_U3, "1235018449944576008"]);
    let fixture = std::fs::read_to_string("fixtures/scenarios/heuristics.jsonl").unwrap();
    let event = |id: &str| -> serde_json::Value {
        fixture
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|event| event["d"]["id"] == id)
            .unwrap()
    };

    // A late grid with the same prompt, posted before the upscale: the fallback of the
    // upscale's tile runs again, and leaves the manual link alone.
    let mut grid = event("1235019053924352014");
    grid["s"] = serde_json::json!(100);
    grid["d"]["id"] = serde_json::json!("1235019053924352099");
    grid["d"]["attachments"][0]["id"] = serde_json::json!("1235019053924352098");
    let text = grid.to_string().replace("000006516fbe", "000006516fff");
    replay_values(&db, &[serde_json::from_str(&text).unwrap()]);
    let row = link_of(&db, AMBIGUOUS_U3);
    assert_eq!(row["signal"], "manual", "{row}");
    assert_eq!(row["parent_id"], "1235018449944576008", "{row}");

    // Discord then says which grid it came from: the exact signal replaces the manual link.
    let mut update = event(AMBIGUOUS_U3);
    update["t"] = serde_json::json!("MESSAGE_UPDATE");
    update["s"] = serde_json::json!(101);
    update["d"]["message_reference"] = serde_json::json!({
        "message_id": "1235019053924352014",
        "channel_id": "1008571020480876554",
        "guild_id": "662267976984297473"
    });
    replay_values(&db, &[update]);
    let row = link_of(&db, AMBIGUOUS_U3);
    assert_eq!(row["signal"], "reference", "{row}");
    assert_eq!(row["parent_id"], "1235019053924352014", "{row}");
    // And now a manual link is refused for it.
    let output = mjlink()
        .arg("--db")
        .arg(&db)
        .args(["link", "set", AMBIGUOUS_U3, "1235018449944576008"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}
