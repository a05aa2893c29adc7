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
    assert!(csv.starts_with(
        "child_id,parent_id,action,index,signal,status,candidates,channel_id,created_at,prompt\n"
    ));
    assert!(csv.contains("1128641343909007401,1128599623762714675,upscale,4,reference,linked,,"));
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
    assert!(output.status.success());
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
