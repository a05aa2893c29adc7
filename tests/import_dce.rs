//! `mjlink import dce`: DiscordChatExporter JSON exports built here, in DCE's own format, from
//! the repository's fixtures (never editing them), then imported by the binary; the kinds
//! and links are compared with the fixtures' expected files (`fixtures/expected/*.txt`,
//! checked against the wire notes), not with what the parser makes of the same data.
//!
//! The shapes follow DCE's writer as read at its tags (Tyrrrz/DiscordChatExporter):
//! `DiscordChatExporter.Core/Exporting/Writers/JsonMessageWriter.cs` at 2.37 (no
//! `interaction`, no `exportedAt`, UTC times `+00:00`, `@username` for a mention) and
//! `DiscordChatExporter.Core/Exporting/JsonMessageWriter.cs` at 2.47 (`exportedAt`, times at
//! the exporter's local offset, `@DisplayName`, `roles`, `reference.type`, `interaction`,
//! `inlineEmojis`); media files named by `ExportAssetDownloader.cs` (`{stem cut to
//! 42}-{hash}{ext}` in `{export}_Files/`, the hash 5 hex digits of the URL's SHA-256 up to
//! 2.46, 16 of the unsigned URL's in 2.47).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use common::{links_jsonl, messages_table, mjlink_command, root};
use mjlink::store::Store;

/// Which DCE wrote the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V2_37,
    V2_47,
}

#[derive(Debug, Clone, Copy)]
struct Style {
    version: Version,
    /// The exporter's local offset in minutes (2.41+ writes times in it; 2.37 in UTC).
    offset_minutes: i32,
    /// DCE's default: `<@id>` written `@Name` (`--markdown false` keeps `<@id>`).
    rewrite_mentions: bool,
    /// `--media`: attachments downloaded next to the export, `url` their relative path.
    media: bool,
}

const USERNAMES: [(&str, &str, &str); 3] = [
    // (id, username, display name): a display name with a space and one with an emoji.
    ("1012268717368946718", "spacepilot", "Space Pilot"),
    ("1122599062454157382", "camcooke", "Cam ✨ Cooke"),
    ("439110225975443468", "glassmaker", "glass maker"),
];

fn names_of(id: &str) -> (String, String) {
    USERNAMES
        .iter()
        .find(|(known, _, _)| *known == id)
        .map(|(_, name, display)| (name.to_string(), display.to_string()))
        .unwrap_or_else(|| (format!("user{id}"), format!("User {id}")))
}

/// The messages a channel export would hold after the fixture's traffic: creates with their
/// updates applied, deleted ones gone, and each reply's `referenced_message` as the channel's
/// own message (the export covers the channel). In id order, as DCE writes them.
fn channel_messages(fixture: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture).unwrap();
    let mut messages: BTreeMap<u64, Value> = BTreeMap::new();
    let keep = |message: &Value, messages: &mut BTreeMap<u64, Value>| {
        let id: u64 = message["id"].as_str().unwrap().parse().unwrap();
        let entry = messages.entry(id).or_insert_with(|| json!({}));
        for (key, value) in message.as_object().unwrap() {
            entry[key] = value.clone();
        }
    };
    let mut creates = Vec::new();
    if text.trim_start().starts_with('[') {
        for message in serde_json::from_str::<Vec<Value>>(&text).unwrap() {
            creates.push(("MESSAGE_CREATE".to_string(), message));
        }
    } else {
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let dispatch: Value = serde_json::from_str(line).unwrap();
            creates.push((dispatch["t"].as_str().unwrap().to_string(), dispatch["d"].clone()));
        }
    }
    for (event, message) in creates {
        match event.as_str() {
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" => {
                if let Some(parent) = message.get("referenced_message").filter(|p| p.is_object()) {
                    keep(parent, &mut messages);
                }
                keep(&message, &mut messages);
            }
            "MESSAGE_DELETE" => {
                messages.remove(&message["id"].as_str().unwrap().parse::<u64>().unwrap());
            }
            _ => {}
        }
    }
    messages.into_values().collect()
}

/// A .NET `DateTimeOffset` as `Utf8JsonWriter` writes it: fraction without trailing zeros.
fn dotnet_time(discord_time: &str, offset_minutes: i32) -> String {
    let time = chrono::DateTime::parse_from_rfc3339(discord_time).unwrap();
    let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
    let local = time.with_timezone(&offset);
    let mut text = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = local.timestamp_subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{:07}", nanos / 100);
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(&local.format("%:z").to_string());
    text
}

/// `<@id>` and `<@!id>` as DCE's `PlainTextMarkdownVisitor` writes them.
fn rewrite_mentions(text: &str, version: Version) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("<@") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let after = after.strip_prefix('!').unwrap_or(after);
        let end = after.find('>').unwrap();
        let (name, display) = names_of(&after[..end]);
        out.push('@');
        out.push_str(if version == Version::V2_37 {
            &name
        } else {
            &display
        });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn dce_user(id: &str, is_bot: bool, version: Version) -> Value {
    let (name, display) = if is_bot {
        ("Midjourney Bot".to_string(), "Midjourney Bot".to_string())
    } else {
        names_of(id)
    };
    let mut user = json!({
        "id": id, "name": name, "discriminator": "0000", "nickname": display,
        "color": null, "isBot": is_bot,
    });
    if version == Version::V2_47 {
        user["roles"] = json!([]);
    }
    user["avatarUrl"] = json!("https://cdn.discordapp.com/embed/avatars/0.png");
    user
}

/// DCE's media file name for `url` (`ExportAssetDownloader.GetFileNameFromUrl`).
fn dce_file_name(url: &str, version: Version) -> String {
    let (hashed, digits) = match version {
        Version::V2_37 => (url.to_string(), 5),
        // 2.47 hashes the link without its signature (`ex`, `is`, `hm`).
        Version::V2_47 => (url.split('?').next().unwrap().to_string(), 16),
    };
    // `ToHex()` wrote upper-case digits up to 2.46; 2.47 `Convert.ToHexStringLower`.
    let hash: String = Sha256::digest(hashed.as_bytes())
        .iter()
        .map(|b| match version {
            Version::V2_37 => format!("{b:02X}"),
            Version::V2_47 => format!("{b:02x}"),
        })
        .collect::<String>()[..digits]
        .to_string();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let (stem, ext) = name
        .rsplit_once('.')
        .map_or((name, String::new()), |(s, e)| (s, format!(".{e}")));
    let stem: String = stem.chars().take(42).collect();
    format!("{stem}-{hash}{ext}")
}

/// Where the test puts each attachment's bytes (by attachment id): real PNGs by default.
type MediaBytes = BTreeMap<String, Vec<u8>>;

/// One fixture message as DCE's writer writes it.
fn dce_message(message: &Value, style: Style, export_name: &str, dir: &Path, bytes: &MediaBytes) -> Value {
    let version = style.version;
    let kind = match message["type"].as_u64().unwrap_or(0) {
        0 => "Default".to_string(),
        19 => "Reply".to_string(),
        other => other.to_string(),
    };
    let offset = match version {
        Version::V2_37 => 0,
        Version::V2_47 => style.offset_minutes,
    };
    let text = |value: &Value| {
        let text = value.as_str().unwrap_or("");
        if style.rewrite_mentions {
            rewrite_mentions(text, version)
        } else {
            text.to_string()
        }
    };
    let author = &message["author"];
    let mut mentions: Vec<Value> = message["mentions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|user| dce_user(user["id"].as_str().unwrap(), false, version))
        .collect();
    if mentions.is_empty() {
        // Discord lists every user the content mentions; some fixtures trimmed the list.
        let content = message["content"].as_str().unwrap_or("");
        if let Some(start) = content.find("<@") {
            let rest = &content[start + 2..];
            let end = rest.find('>').unwrap();
            mentions.push(dce_user(rest[..end].trim_start_matches('!'), false, version));
        }
    }
    let attachments: Vec<Value> = message["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|attachment| {
            let id = attachment["id"].as_str().unwrap();
            let url = attachment["url"].as_str().unwrap_or("").to_string();
            let written_url = if style.media {
                let folder = format!("{export_name}_Files");
                let file = dce_file_name(&url, version);
                std::fs::create_dir_all(dir.join(&folder)).unwrap();
                let content = bytes
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| mjlink_sim::png::png(64, 64, id.parse::<u64>().unwrap()));
                std::fs::write(dir.join(&folder).join(&file), content).unwrap();
                format!("{folder}/{file}")
            } else {
                url
            };
            json!({
                "id": id,
                "url": written_url,
                "fileName": attachment["filename"],
                "fileSizeBytes": attachment["size"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    let embeds: Vec<Value> = message["embeds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|embed| {
            let mut out = json!({
                "title": text(&embed["title"]),
                "url": embed["url"],
                "timestamp": null,
                "description": text(&embed["description"]),
            });
            if let Some(color) = embed["color"].as_u64() {
                out["color"] = json!(format!("#{color:06X}"));
            }
            if let Some(footer) = embed.get("footer") {
                out["footer"] = json!({"text": footer["text"]});
            }
            out["images"] = json!([]);
            out["fields"] = json!([]);
            if version == Version::V2_47 {
                out["inlineEmojis"] = json!([]);
            }
            out
        })
        .collect();
    let mut out = Map::new();
    out.insert("id".into(), message["id"].clone());
    out.insert("type".into(), json!(kind));
    out.insert(
        "timestamp".into(),
        json!(dotnet_time(message["timestamp"].as_str().unwrap(), offset)),
    );
    out.insert(
        "timestampEdited".into(),
        message["edited_timestamp"]
            .as_str()
            .map_or(Value::Null, |time| json!(dotnet_time(time, offset))),
    );
    out.insert("callEndedTimestamp".into(), Value::Null);
    out.insert("isPinned".into(), json!(false));
    out.insert("content".into(), json!(text(&message["content"])));
    out.insert(
        "author".into(),
        dce_user(
            author["id"].as_str().unwrap(),
            author["bot"].as_bool().unwrap_or(false),
            version,
        ),
    );
    out.insert("attachments".into(), json!(attachments));
    out.insert("embeds".into(), json!(embeds));
    out.insert("stickers".into(), json!([]));
    out.insert("reactions".into(), json!([]));
    out.insert("mentions".into(), json!(mentions));
    if let Some(reference) = message.get("message_reference").filter(|r| r.is_object()) {
        let mut written = Map::new();
        if version == Version::V2_47 {
            let kind = if reference["type"].as_u64() == Some(1) {
                "Forward"
            } else {
                "Default"
            };
            written.insert("type".into(), json!(kind));
        }
        written.insert("messageId".into(), reference["message_id"].clone());
        written.insert("channelId".into(), reference["channel_id"].clone());
        written.insert("guildId".into(), reference["guild_id"].clone());
        out.insert("reference".into(), Value::Object(written));
    }
    if version == Version::V2_47 {
        if let Some(interaction) = message.get("interaction").filter(|i| i.is_object()) {
            out.insert(
                "interaction".into(),
                json!({
                    "id": interaction["id"],
                    "name": interaction["name"],
                    "user": dce_user(interaction["user"]["id"].as_str().unwrap(), false, version),
                }),
            );
        }
        out.insert("inlineEmojis".into(), json!([]));
    }
    Value::Object(out)
}

/// Writes `messages` as a DCE export `name` in `dir` (with its media when the style says).
fn write_export(messages: &[Value], style: Style, dir: &Path, name: &str, bytes: &MediaBytes) -> PathBuf {
    let channel_id = messages
        .iter()
        .find_map(|m| m["channel_id"].as_str())
        .unwrap_or("1")
        .to_string();
    let guild_id = messages
        .iter()
        .find_map(|m| m["guild_id"].as_str())
        .or_else(|| {
            messages
                .iter()
                .find_map(|m| m["message_reference"]["guild_id"].as_str())
        })
        .unwrap_or("662267976984297473")
        .to_string();
    let written: Vec<Value> = messages
        .iter()
        .map(|message| dce_message(message, style, name, dir, bytes))
        .collect();
    let mut root = Map::new();
    root.insert(
        "guild".into(),
        json!({"id": guild_id, "name": "Midjourney", "iconUrl": "https://cdn.discordapp.com/icons/1/a.png"}),
    );
    root.insert(
        "channel".into(),
        json!({"id": channel_id, "type": "GuildTextChat", "categoryId": "2", "category": "IMAGINE",
               "name": "general-1", "topic": null}),
    );
    root.insert("dateRange".into(), json!({"after": null, "before": null}));
    if style.version == Version::V2_47 {
        root.insert("exportedAt".into(), json!("2026-11-30T23:12:01.1234567+02:00"));
    }
    root.insert("messageCount".into(), json!(written.len()));
    // `messages` then `messageCount`, in the writer's order.
    let count = root.remove("messageCount").unwrap();
    root.insert("messages".into(), json!(written));
    root.insert("messageCount".into(), count);
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(root)).unwrap()).unwrap();
    path
}

/// The expected file's message rows (by id) and link lines.
fn expected(name: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("fixtures/expected").join(format!("{name}.txt"))).unwrap();
    let rows = text
        .split("# messages:")
        .nth(1)
        .unwrap()
        .split("# links")
        .next()
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| (line.split(" | ").next().unwrap().to_string(), line.to_string()))
        .collect();
    let links = text
        .split("# links\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect();
    (rows, links)
}

struct Imported {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn import(db: &Path, archive: &Path, args: &[&str]) -> Imported {
    let output = mjlink_command()
        .env("MJLINK_ARCHIVE_DIR", archive)
        .arg("--db")
        .arg(db)
        .args(["import", "dce"])
        .args(args)
        .output()
        .unwrap();
    Imported {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

/// Imports the fixture written in `style` and checks every message row and link against the
/// fixture's expected file; returns the database and the archive folder.
fn import_and_compare(
    fixture: &str,
    expected_name: &str,
    style: Style,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let messages = channel_messages(&root().join(fixture));
    let export = write_export(&messages, style, dir.path(), "export.json", &MediaBytes::new());
    let db = dir.path().join("import.db");
    let archive = dir.path().join("archive");
    let done = import(&db, &archive, &[export.to_str().unwrap()]);
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);

    let (rows, links) = expected(expected_name);
    let actual_rows: BTreeMap<String, String> = messages_table(&db)
        .lines()
        .map(|line| (line.split(" | ").next().unwrap().to_string(), line.to_string()))
        .collect();
    for message in &messages {
        let id = message["id"].as_str().unwrap();
        assert_eq!(
            actual_rows.get(id),
            rows.get(id),
            "{fixture} in DCE {style:?}: message {id}\n{}",
            done.stdout
        );
    }
    let store = Store::open(&db).unwrap();
    let actual_links: Vec<String> = links_jsonl(&store).lines().map(str::to_string).collect();
    assert_eq!(actual_links, links, "{fixture} in DCE {style:?}: links");
    drop(store);

    // The same export again: nothing new.
    let again = import(&db, &archive, &[export.to_str().unwrap()]);
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("events applied      0"),
        "a second import applied events:\n{}",
        again.stdout
    );
    (dir, db, archive)
}

const OLD: Style = Style {
    version: Version::V2_37,
    offset_minutes: 0,
    rewrite_mentions: true,
    media: false,
};

const NEW: Style = Style {
    version: Version::V2_47,
    offset_minutes: 120,
    rewrite_mentions: true,
    media: false,
};

#[test]
fn an_upscale_reply_in_an_old_export_links_to_its_grid_as_the_bot_does() {
    import_and_compare(
        "fixtures/real/wxapi_upscale_image4.jsonl",
        "wxapi_upscale_image4",
        OLD,
    );
}

#[test]
fn an_upscale_of_a_variation_in_a_new_export_with_display_names_and_a_local_offset() {
    import_and_compare(
        "fixtures/real/codercurious_upscale_of_variation.jsonl",
        "codercurious_upscale_of_variation",
        NEW,
    );
}

#[test]
fn fifty_messages_with_markdown_kept_and_with_mentions_rewritten_give_the_same_lineage() {
    for rewrite_mentions in [false, true] {
        let style = Style {
            rewrite_mentions,
            offset_minutes: -300,
            ..NEW
        };
        import_and_compare("fixtures/real/wxapi_channel_50.json", "wxapi_channel_50", style);
    }
}

#[test]
fn a_start_and_its_grid_in_both_shapes() {
    for style in [OLD, NEW] {
        import_and_compare(
            "fixtures/real/gateway_start_then_grid.jsonl",
            "gateway_start_then_grid",
            style,
        );
    }
}

fn archived(db: &Path) -> Vec<(String, String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(id AS TEXT), state, COALESCE(sha256, ''), path FROM attachments ORDER BY id")
        .unwrap();
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn downloaded_media_is_adopted_once_and_an_error_body_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut messages = channel_messages(&root().join("fixtures/real/wxapi_channel_50.json"));
    messages.truncate(6);
    let ids: Vec<String> = messages
        .iter()
        .map(|m| m["attachments"][0]["id"].as_str().unwrap().to_string())
        .collect();
    let mut bytes = MediaBytes::new();
    // What Discord's CDN answers for an expired link, saved by DCE under the image's name.
    bytes.insert(ids[0].clone(), b"This content is no longer available.".to_vec());
    // Two attachments with the same bytes: stored once.
    let same = mjlink_sim::png::png(80, 80, 42);
    bytes.insert(ids[1].clone(), same.clone());
    bytes.insert(ids[2].clone(), same.clone());
    let style = Style { media: true, ..NEW };
    let export = write_export(&messages, style, dir.path(), "mj.json", &bytes);
    let db = dir.path().join("import.db");
    let archive = dir.path().join("archive");
    let done = import(&db, &archive, &[export.to_str().unwrap()]);
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);
    assert!(
        done.stdout.contains("not an image or video 1"),
        "the error body is counted:\n{}",
        done.stdout
    );

    let rows = archived(&db);
    assert_eq!(rows.len(), 6);
    for (id, state, sha256, path) in &rows {
        if *id == ids[0] {
            assert_eq!(state, "pending", "an error body is never adopted");
            continue;
        }
        assert_eq!(state, "archived", "{id}: {rows:?}");
        let path = archive.join(path.as_ref().unwrap());
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&format!("{:x}", Sha256::digest(&on_disk)), sha256);
        let source = bytes
            .get(id)
            .cloned()
            .unwrap_or_else(|| mjlink_sim::png::png(64, 64, id.parse::<u64>().unwrap()));
        assert_eq!(on_disk, source, "{id}: the archived file is the exported one");
    }
    let copies: Vec<_> = rows
        .iter()
        .filter(|row| row.2 == format!("{:x}", Sha256::digest(&same)))
        .collect();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].3, copies[1].3, "identical bytes are stored once");
    let files = common::files_under(&archive)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .count();
    assert_eq!(files, 4, "4 distinct images, one file each");

    // Again: nothing new, nothing archived twice.
    let again = import(&db, &archive, &[export.to_str().unwrap()]);
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("events applied      0"), "{}", again.stdout);
    assert!(again.stdout.contains("already archived 5"), "{}", again.stdout);
    assert_eq!(archived(&db), rows);
}

#[test]
fn hostile_media_paths_never_escape_and_a_media_dir_is_searched_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let mut messages = channel_messages(&root().join("fixtures/real/wxapi_channel_50.json"));
    messages.truncate(3);
    let style = Style { media: true, ..OLD };
    let export = write_export(&messages, style, &exports, "mj.json", &MediaBytes::new());
    // Point the three attachments at: a file above the export's folder, an absolute path,
    // and a path into a folder given with --media-dir.
    let outside = dir.path().join("outside.png");
    std::fs::write(&outside, mjlink_sim::png::png(32, 32, 1)).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut text: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    text["messages"][0]["attachments"][0]["url"] = json!("../outside.png");
    text["messages"][1]["attachments"][0]["url"] = json!(outside.to_str().unwrap());
    let moved = text["messages"][2]["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let moved_name = moved.rsplit('/').next().unwrap().to_string();
    std::fs::rename(exports.join(&moved), elsewhere.join(&moved_name)).unwrap();
    std::fs::write(&export, serde_json::to_string_pretty(&text).unwrap()).unwrap();

    let db = dir.path().join("import.db");
    let archive = dir.path().join("archive");
    let done = import(&db, &archive, &[export.to_str().unwrap()]);
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);
    assert!(
        done.stdout.contains("outside the export's folder 2"),
        "{}",
        done.stdout
    );
    assert!(done.stdout.contains("missing 1"), "{}", done.stdout);
    assert!(archived(&db).iter().all(|row| row.1 == "pending"));

    // With --media-dir, only the file name is looked for, inside that folder.
    let done = import(
        &db,
        &archive,
        &[
            export.to_str().unwrap(),
            "--media-dir",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);
    let states: Vec<String> = archived(&db).into_iter().map(|row| row.1).collect();
    assert_eq!(states, vec!["pending", "pending", "archived"], "{}", done.stdout);
    assert!(outside.exists(), "nothing outside is touched");
}

#[test]
fn a_cut_short_export_keeps_what_came_before_and_says_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let messages = channel_messages(&root().join("fixtures/real/wxapi_channel_50.json"));
    let export = write_export(&messages, NEW, dir.path(), "mj.json", &MediaBytes::new());
    let text = std::fs::read_to_string(&export).unwrap();
    // Cut inside the 11th message (index 10).
    let tenth_end = text.match_indices("\n    },\n").nth(9).unwrap().0 + 7;
    std::fs::write(&export, &text[..tenth_end + 40]).unwrap();
    let db = dir.path().join("import.db");
    let archive = dir.path().join("archive");
    let done = import(&db, &archive, &[export.to_str().unwrap()]);
    assert_eq!(done.code, Some(3), "{}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("malformed lines     1"), "{}", done.stdout);
    assert!(done.stdout.contains("element 10: cut short"), "{}", done.stdout);
    let rows = messages_table(&db);
    assert_eq!(
        rows.lines().count(),
        10,
        "the ten whole messages are kept:\n{rows}"
    );

    // Not an export at all, and a file that is not there: each said, the others read.
    let other = dir.path().join("not-dce.json");
    std::fs::write(&other, "[{\"id\":\"1\"}]").unwrap();
    let whole = write_export(&messages[..3], NEW, dir.path(), "ok.json", &MediaBytes::new());
    let done = import(
        &db,
        &archive,
        &[
            other.to_str().unwrap(),
            "/no/such/export.json",
            whole.to_str().unwrap(),
        ],
    );
    assert_eq!(done.code, Some(1), "{}\n{}", done.stdout, done.stderr);
    assert!(
        done.stderr.contains("not a DiscordChatExporter JSON export"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("/no/such/export.json"), "{}", done.stderr);
    assert!(done.stdout.contains("lines read          3"), "{}", done.stdout);
}
