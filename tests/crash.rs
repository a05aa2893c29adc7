//! Killing `mjlink replay` at arbitrary moments and running the same replay again gives the
//! same database as one clean run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mjlink(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .env_remove("MJLINK_DATABASE_PATH")
        .arg("--db")
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn dump(db: &Path) -> String {
    mjlink::store::Store::open(db).unwrap().dump().unwrap()
}

#[test]
fn killed_replays_converge_to_the_clean_database() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_mjlink"))
        .args(["gen-trace", "--events", "15000", "--seed", "5", "--out"])
        .arg(&trace)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let clean = dir.path().join("clean.db");
    let started = Instant::now();
    assert!(mjlink(&clean)
        .arg("replay")
        .arg(&trace)
        .status()
        .unwrap()
        .success());
    let clean_run = started.elapsed();

    // Kill a replay of the same trace several times, at different points of the run, each
    // time starting again from the state the previous kill left.
    let crashed = dir.path().join("crashed.db");
    let mut killed_mid_run = 0;
    for fraction in [0.15, 0.35, 0.55, 0.8] {
        let mut child = mjlink(&crashed).arg("replay").arg(&trace).spawn().unwrap();
        std::thread::sleep(clean_run.mul_f64(fraction).max(Duration::from_millis(20)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL: no chance to flush or close anything
        child.wait().unwrap();
    }
    assert!(
        killed_mid_run >= 2,
        "only {killed_mid_run} kills landed before the replay finished"
    );
    assert!(mjlink(&crashed)
        .arg("replay")
        .arg(&trace)
        .status()
        .unwrap()
        .success());

    let expected = dump(&clean);
    assert!(expected.lines().count() > 10_000);
    assert!(
        dump(&crashed) == expected,
        "the database after kills differs from one clean run"
    );
}
