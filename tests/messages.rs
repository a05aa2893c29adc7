//! `mjlink messages` as a user runs it, and the format-drift samples it prints.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn mjlink(db: &Path) -> Command {
    let mut command = common::mjlink_command();
    command.arg("--db").arg(db);
    command
}

fn run(db: &Path, args: &[&str]) -> Output {
    let output = mjlink(db).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "mjlink {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn jsonl(db: &Path, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.extend(["--format", "jsonl"]);
    text(&run(db, &args))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn stored_messages(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
        .unwrap()
}

/// The columns the issue asks for, in every JSON line.
const FIELDS: [&str; 14] = [
    "id",
    "channel_id",
    "kind",
    "action",
    "index",
    "prompt",
    "parameters",
    "user_id",
    "job_uuid",
    "parent_id",
    "signal",
    "status",
    "outcome",
    "final_id",
];

#[test]
fn every_message_with_its_link_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    run(
        &db,
        &[
            "replay",
            "fixtures/real/wxapi_upscale_image4.jsonl",
            "fixtures/scenarios/every_format.jsonl",
        ],
    );
    let rows = jsonl(&db, &["messages"]);
    assert_eq!(
        rows.len() as i64,
        stored_messages(&db),
        "one row per stored message"
    );
    for row in &rows {
        for field in FIELDS {
            assert!(row.get(field).is_some(), "{field} missing in {row}");
        }
    }
    let ids: Vec<u64> = rows
        .iter()
        .map(|row| row["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "in id order");

    // The sample's upscale: tile 4 of its grid, by the reply reference (wxapi, July 2023).
    let upscale = rows
        .iter()
        .find(|row| row["id"] == "1128641343909007401")
        .unwrap();
    assert_eq!(upscale["kind"], "upscale");
    assert_eq!(upscale["action"], "upscale");
    assert_eq!(upscale["index"], 4);
    assert_eq!(upscale["parent_id"], "1128599623762714675");
    assert_eq!(upscale["signal"], "reference");
    assert_eq!(upscale["status"], "linked");
    assert_eq!(upscale["channel_id"], "1120568025993715764");
    assert_eq!(upscale["user_id"], "1012268717368946718");
    assert_eq!(upscale["job_uuid"], "c0817eea-4c46-4284-a64a-e36158d72cfe");
    assert_eq!(upscale["parameters"], json!({"stylize": "750", "v": "5.2"}));
    assert!(upscale["prompt"]
        .as_str()
        .unwrap()
        .contains("The spaceship and the airplane collided."));
    assert_eq!(upscale["outcome"], Value::Null);
    let grid = rows
        .iter()
        .find(|row| row["id"] == "1128599623762714675")
        .unwrap();
    assert_eq!(grid["kind"], "imagine");
    assert_eq!(
        (&grid["parent_id"], &grid["status"]),
        (&Value::Null, &Value::Null)
    );

    // A start whose progress message was deleted once its grid came: completed by that grid.
    let start = rows
        .iter()
        .find(|row| row["id"] == "1235017845964800002")
        .unwrap();
    assert_eq!(start["kind"], "progress");
    assert_eq!(start["outcome"], "completed");
    assert_eq!(start["final_id"], "1235018013736960007");
    assert!(start["deleted_at"].is_string());

    // Filters.
    let upscales = jsonl(&db, &["messages", "--kind", "upscale"]);
    assert!(!upscales.is_empty() && upscales.iter().all(|row| row["kind"] == "upscale"));
    assert!(upscales.iter().any(|row| row["id"] == "1128641343909007401"));
    let channel = jsonl(&db, &["messages", "--channel", "1120568025993715764"]);
    assert_eq!(channel.len(), 2, "the wxapi grid and its upscale");
    assert!(jsonl(
        &db,
        &["messages", "--kind", "blend", "--channel", "1120568025993715764"]
    )
    .is_empty());

    // For people: a header, one line per message, the start with its outcome.
    let table = text(&run(&db, &["messages"]));
    assert!(table.starts_with("id "), "{table}");
    assert_eq!(table.lines().count(), rows.len() + 1);
    let line = table
        .lines()
        .find(|line| line.starts_with("1235017845964800002"))
        .unwrap();
    assert!(
        line.contains("1235018013736960007") && line.contains("completed"),
        "{line}"
    );

    // A kind no message has (a typo, or a kind this database does not hold): nothing on
    // stdout, one line on stderr naming the kinds there are.
    let output = mjlink(&db)
        .args(["messages", "--kind", "imagnie"])
        .output()
        .unwrap();
    assert!(output.status.success() && output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("`imagnie`") && stderr.contains("imagine, ") && stderr.contains("upscale"),
        "{stderr}"
    );
    let output = mjlink(&db)
        .args(["messages", "--channel", "general"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a channel id"));
}

/// RFC 4180: fields separated by commas, a field with a comma, quote or line break quoted,
/// quotes doubled. Returns the records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "ends with a record"
    );
    records
}

const MJ: &str = "936929561302675456";

fn dispatch(id: u64, author: &str, content: &str, extra: Value) -> String {
    let ms = (id >> 22) as i64 + 1_420_070_400_000;
    let mut message = json!({
        "id": id.to_string(), "channel_id": "10", "guild_id": "20",
        "author": {"id": author}, "content": content,
        "timestamp": chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339(),
        "attachments": [{"id": (id + 1).to_string(), "filename": "x.png", "url": "https://cdn.discordapp.com/x.png", "content_type": "image/png"}],
    });
    if let (Some(message), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
        message.extend(extra.clone());
    }
    json!({"op": 0, "t": "MESSAGE_CREATE", "s": 1, "d": message}).to_string()
}

/// 2024-05-01T00:00:00Z in Discord's epoch, and an id `n` minutes later.
fn id(n: u64) -> u64 {
    ((1_714_521_600_000 - 1_420_070_400_000 + n * 60_000) << 22) + n
}

#[test]
fn csv_is_what_spreadsheets_read_safely() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let lines = [
        dispatch(
            id(1),
            MJ,
            r#"**=HYPERLINK("http://x"), a "cat" --ar 16:9** - <@5> (fast)"#,
            json!({}),
        ),
        dispatch(id(2), MJ, "**two\nlines** - <@5> (fast)", json!({})),
    ];
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let db = dir.path().join("c.db");
    run(&db, &["replay", trace.to_str().unwrap()]);
    let csv = text(&run(&db, &["messages", "--format", "csv"]));
    // A UTF-8 byte order mark first, for spreadsheets.
    let csv = csv.strip_prefix('\u{feff}').expect("a byte order mark");
    let records = parse_csv(csv);
    assert_eq!(
        records[0].join(","),
        "id,channel_id,kind,action,index,prompt,parameters,user_id,job_uuid,parent_id,signal,status,outcome,final_id,posted_at,deleted_at"
    );
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|record| record.len() == records[0].len()),
        "{records:?}"
    );
    let column = |name: &str| records[0].iter().position(|column| column == name).unwrap();
    let first = &records[1];
    assert_eq!(first[column("id")], id(1).to_string());
    assert_eq!(first[column("kind")], "imagine");
    // A prompt a spreadsheet would run as a formula starts with a quote mark instead.
    assert!(
        first[column("prompt")].starts_with("'=HYPERLINK(\"http://x\"), a \"cat\""),
        "{first:?}"
    );
    assert_eq!(first[column("parameters")], r#"{"ar":"16:9"}"#);
    assert_eq!(first[column("user_id")], "5");
    assert_eq!(records[2][column("prompt")], "two\nlines");
}

/// `--raw` prints dispatch lines that replay into the same messages (fixtures).
#[test]
fn raw_lines_replay_into_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    run(&db, &["replay", "fixtures/scenarios/every_format.jsonl"]);
    let raw = text(&run(&db, &["messages", "--raw"]));
    assert!(
        raw.lines()
            .all(|line| line.starts_with(r#"{"op":0,"t":"MESSAGE_"#)),
        "{raw}"
    );
    let copy = dir.path().join("copy.jsonl");
    std::fs::write(&copy, &raw).unwrap();
    let again = dir.path().join("b.db");
    run(&again, &["replay", copy.to_str().unwrap()]);
    let without_times = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut row| {
                // A deletion is stamped with replay's clock, which the order of lines moves.
                let deleted = row["deleted_at"].is_string();
                row["deleted_at"] = deleted.into();
                row
            })
            .collect()
    };
    let before = without_times(jsonl(&db, &["messages"]));
    let after = without_times(jsonl(&again, &["messages"]));
    assert_eq!(before.len(), after.len());
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(before, after);
    }
}

/// Format drift: a Midjourney message of no known shape, one whose payload does not decode
/// (`attachments` is not a list), a human's message. The summary counts two, by day; the
/// samples print as lines that replay as they came.
#[test]
fn unknown_formats_are_counted_and_kept_as_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let undecodable = dispatch(
        id(2),
        MJ,
        "**a cat** - <@5> (fast)",
        json!({"attachments": {"0": "not a list"}}),
    );
    let lines = [
        dispatch(
            id(1),
            MJ,
            "Tomorrow: a brand new kind of message",
            json!({"attachments": []}),
        ),
        undecodable.clone(),
        dispatch(id(3), "5", "Tomorrow: a brand new kind of message", json!({})),
        dispatch(id(4), MJ, "**a dog** - <@5> (fast)", json!({})),
    ];
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let db = dir.path().join("d.db");
    let output = mjlink(&db).arg("replay").arg(&trace).output().unwrap();
    // The line that did not decode was skipped: the exit status says so.
    assert_eq!(output.status.code(), Some(3));
    let summary = text(&output);
    assert!(
        summary.contains("unknown formats     2 (1 did not decode) by day: 2024-05-01 2\n"),
        "{summary}"
    );
    assert!(summary.contains("malformed lines     1"), "{summary}");

    let samples = jsonl(&db, &["messages", "--kind", "unknown"]);
    let kinds: Vec<(&str, &str)> = samples
        .iter()
        .map(|row| (row["id"].as_str().unwrap(), row["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            (id(1).to_string().as_str(), "other"),
            (id(2).to_string().as_str(), "undecodable")
        ]
    );
    let raw = text(&run(&db, &["messages", "--kind", "unknown", "--raw"]));
    let raw_lines: Vec<&str> = raw.lines().collect();
    assert_eq!(raw_lines.len(), 2, "{raw}");
    assert!(raw_lines[0].contains("Tomorrow: a brand new kind of message"));
    assert_eq!(raw_lines[1], undecodable, "kept exactly as received");
    let in_channel = text(&run(
        &db,
        &["messages", "--kind", "unknown", "--raw", "--channel", "10"],
    ));
    assert_eq!(
        in_channel.lines().collect::<Vec<_>>(),
        [raw_lines[0]],
        "a channel's samples"
    );

    // Replayed, the samples are the same unknown formats again.
    let copy = dir.path().join("samples.jsonl");
    std::fs::write(&copy, &raw).unwrap();
    let again = dir.path().join("e.db");
    let output = mjlink(&again).arg("replay").arg(&copy).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "the sample that does not decode is skipped"
    );
    let summary = text(&output);
    assert!(
        summary.contains("unknown formats     2 (1 did not decode) by day: 2024-05-01 2\n"),
        "{summary}"
    );
}

#[test]
fn drift_samples_keep_to_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let lines: Vec<String> = (1..=5)
        .map(|n| dispatch(id(n), MJ, &format!("Notice {n}"), json!({"attachments": []})))
        .collect();
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let db = dir.path().join("k.db");
    let output = mjlink(&db)
        .env("MJLINK_DRIFT_KEEP_SAMPLES", "3")
        .args(["replay", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let summary = text(&output);
    assert!(
        summary.contains("unknown formats     5 by day: 2024-05-01 5\n"),
        "{summary}"
    );
    assert!(summary.contains("  3 kept as samples"), "{summary}");
    let raw = text(&run(&db, &["messages", "--kind", "unknown", "--raw"]));
    assert_eq!(raw.lines().count(), 3);
    assert_eq!(
        jsonl(&db, &["messages", "--kind", "other"]).len(),
        5,
        "all are listed by kind"
    );
}
