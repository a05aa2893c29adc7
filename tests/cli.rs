//! The `mjlink` binary as a user runs it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn mjlink() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command.current_dir(common::root()).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("MJLINK_") {
            command.env_remove(key);
        }
    }
    command
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
