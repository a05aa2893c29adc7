//! What `mjlink queue list` and `mjlink queue show` print: pure functions of the items.

use std::fmt::Write as _;

use super::{Item, Status, Transition};

/// A time as the queue shows it (UTC, to the second).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// One line, cut to `chars` characters.
fn shorten(text: &str, chars: usize) -> String {
    mjlink_core::text::cut(&text.replace(['\n', '\r', '\t'], " "), chars)
}

/// The upscales column: `none`, or how many of those asked for are in (`1/4`).
pub fn upscales_text(item: &Item) -> String {
    let wanted = item.upscales.tiles().len();
    if wanted == 0 {
        "none".to_string()
    } else {
        format!("{}/{}", item.results.len(), wanted)
    }
}

/// What Midjourney shows of a submission while it renders: the stage of its progress message
/// (`62%`, `waiting`, `paused`, `stopped`), the percentage when it is one, the preview.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rendering {
    pub stage: String,
    pub percent: Option<u8>,
    pub preview: Option<crate::store::PreviewFile>,
}

/// One item as the web page, its API and its live updates show it: the item, its upscales
/// column, its history, and its rendering while it renders.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemState {
    pub item: Item,
    pub upscales: String,
    pub history: Vec<Transition>,
    pub rendering: Option<Rendering>,
}

/// The state of `item`: the progress message's stage counts only while the job is submitted
/// or rendering (after the grid, Midjourney deletes the message; a stale stage is not shown).
pub fn item_state(
    item: Item,
    history: Vec<Transition>,
    progress: Option<crate::store::SubmissionProgress>,
) -> ItemState {
    let rendering = progress
        .filter(|_| matches!(item.status, Status::Submitted | Status::Rendering))
        .map(|progress| {
            let stage = progress.stage.unwrap_or_else(|| "waiting".to_string());
            let percent = stage
                .strip_suffix('%')
                .and_then(|number| number.parse::<u8>().ok())
                .map(|percent| percent.min(100));
            Rendering {
                stage,
                percent,
                preview: progress.preview,
            }
        });
    ItemState {
        upscales: upscales_text(&item),
        item,
        history,
        rendering,
    }
}

/// One row per item, then the count of each status.
pub fn list_table(items: &[Item]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8}  {:<10}  {:>3}  {:<9}  prompt",
        "id", "status", "try", "upscales"
    );
    for item in items {
        let upscales = upscales_text(item);
        let _ = writeln!(
            out,
            "{:<8}  {:<10}  {:>3}  {:<9}  {}",
            item.id.chars().take(8).collect::<String>(),
            item.status.as_str(),
            item.attempts,
            upscales,
            shorten(&item.prompt, 70)
        );
    }
    let counts: Vec<String> = Status::ALL
        .iter()
        .filter_map(|status| {
            let n = items.iter().filter(|item| item.status == *status).count();
            (n > 0).then(|| format!("{n} {status}"))
        })
        .collect();
    let _ = writeln!(
        out,
        "{} items{}{}",
        items.len(),
        if counts.is_empty() { "" } else { ": " },
        counts.join(", ")
    );
    out
}

/// Everything about one item: the request exactly as asked (with its parameters), where it
/// stands, its grid and results, and every transition.
pub fn show_text(item: &Item, history: &[Transition]) -> String {
    let mut out = String::new();
    let prompt = mjlink_core::prompt::split(&item.prompt);
    let _ = writeln!(out, "id:        {}", item.id);
    let _ = writeln!(out, "prompt:    {}", item.prompt);
    if !prompt.params.is_empty() {
        let params: Vec<String> = prompt
            .params
            .iter()
            .map(|(name, value)| {
                if value.is_empty() {
                    format!("--{name}")
                } else {
                    format!("--{name} {value}")
                }
            })
            .collect();
        let _ = writeln!(out, "params:    {}", params.join(" "));
    }
    let _ = writeln!(out, "upscales:  {}", item.upscales);
    let _ = writeln!(out, "priority:  {}", item.priority);
    let _ = writeln!(out, "status:    {}", item.status);
    let _ = writeln!(out, "attempts:  {}", item.attempts);
    if let Some(uuid) = &item.job_uuid {
        let _ = writeln!(out, "job uuid:  {uuid}");
    }
    if let Some(grid) = item.grid_message_id {
        let _ = writeln!(out, "grid:      message {grid}");
    }
    for (tile, id) in &item.results {
        let _ = writeln!(out, "U{tile}:        message {id}");
    }
    let missing: Vec<String> = item
        .upscales
        .tiles()
        .iter()
        .filter(|tile| !item.results.contains_key(tile))
        .map(|tile| format!("U{tile}"))
        .collect();
    if item.status.is_final() && !missing.is_empty() && item.grid_message_id.is_some() {
        let _ = writeln!(out, "missing:   {}", missing.join(", "));
    }
    if let Some(error) = &item.last_error {
        let _ = writeln!(out, "last error: {error}");
    }
    let _ = writeln!(out, "history:");
    for transition in history {
        let from = transition.from.map(Status::as_str).unwrap_or("-");
        let _ = writeln!(
            out,
            "  {}  {:<10} -> {:<10} {}",
            time(transition.at_ms),
            from,
            transition.to.as_str(),
            transition.note
        );
    }
    out
}

/// An item's lineage: its grid and every result the lineage core linked to it, with how each
/// link was made and where each image is in the archive.
pub fn lineage_text(item: &Item, family: Option<&crate::store::FamilyRecord>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {}  {}",
        item.id.chars().take(8).collect::<String>(),
        item.status,
        shorten(&item.prompt, 80)
    );
    if let Some(error) = &item.last_error {
        let _ = writeln!(out, "    reason: {error}");
    }
    let Some(family) = family else {
        return out;
    };
    let file_text = |files: &[crate::store::FamilyFile]| -> String {
        match files.first() {
            Some(file) => match (&file.path, file.bytes, &file.sha256) {
                (Some(path), Some(bytes), Some(sha256)) => {
                    format!(
                        "{path} ({} KiB, sha256 {}…)",
                        bytes / 1024,
                        &sha256[..sha256.len().min(12)]
                    )
                }
                _ => format!("{} (not archived yet)", file.discord_filename),
            },
            None => "(no image)".to_string(),
        }
    };
    let _ = writeln!(
        out,
        "    grid  message {}  job {}  {}",
        family.grid.message_id,
        family.grid.job_uuid.as_deref().unwrap_or("?"),
        file_text(&family.grid.files)
    );
    let mut results: Vec<&crate::store::FamilyMessage> = family.results.iter().collect();
    results.sort_by_key(|result| (result.kind != "upscale", result.tile, result.message_id));
    for result in results {
        let name = match result.tile {
            Some(tile) if result.kind == "upscale" => format!("U{tile}"),
            _ => result.kind.clone(),
        };
        let _ = writeln!(
            out,
            "    {name:<4}  message {}  linked by {}  {}",
            result.message_id,
            result.signal.as_deref().unwrap_or("?"),
            file_text(&result.files)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Upscales;
    use mjlink_core::snowflake::Snowflake;

    #[test]
    fn show_gives_the_request_back_exactly() {
        let mut item = Item::new(
            "0f6e1c2a-0000-4000-8000-000000000001".into(),
            "a cat in the rain --ar 16:9 --v 7 --chaos 20".into(),
            Upscales::parse("1,3").unwrap(),
            2,
            1_700_000_000_000,
        );
        item.status = Status::Partial;
        item.grid_message_id = Some(Snowflake(10));
        item.results.insert(1, Snowflake(11));
        item.last_error = Some("missing upscales: U3".into());
        let history = vec![Transition {
            at_ms: 1_700_000_000_000,
            from: None,
            to: Status::Queued,
            note: "added".into(),
        }];
        let text = show_text(&item, &history);
        assert!(
            text.contains("prompt:    a cat in the rain --ar 16:9 --v 7 --chaos 20\n"),
            "{text}"
        );
        assert!(text.contains("--ar 16:9"), "{text}");
        assert!(text.contains("--v 7"), "{text}");
        assert!(text.contains("upscales:  1,3"), "{text}");
        assert!(text.contains("U1:        message 11"), "{text}");
        assert!(text.contains("missing:   U3"), "{text}");
        assert!(text.contains("-          -> queued     added"), "{text}");

        let table = list_table(&[item]);
        assert!(table.contains("0f6e1c2a  partial"), "{table}");
        assert!(table.contains("1/2"), "{table}");
        assert!(table.ends_with("1 items: 1 partial\n"), "{table}");
    }
}
