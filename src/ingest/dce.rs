//! DiscordChatExporter JSON exports (`mjlink import dce`), one more source of events. An export
//! is read as its bytes arrive: the head up to the `messages` array
//! ([`dce::HeadScan`]), the array element by element ([`ArrayElements`]: memory holds one
//! message, however long the export), then `messageCount`. Each message is decoded by the
//! core ([`dce::from_message`], the one way from bytes to an event) and sent through a
//! [`Replay`]: the same writer, clock, pipeline and summary as `mjlink replay`, so links, kinds
//! and families are those the bot makes of the same messages, as far as the export carries
//! them (see [`mjlink_core::event::dce`] for what it does not).
//!
//! **All or nothing per message, never per file:** a message that does not decode, or an
//! export cut short inside one, costs that message only, reported with its place; a file
//! that is not an export at all is said once and the other files are read.
//!
//! Each attachment's downloaded file is located here ([`locate`]) and handed to
//! [`crate::archive::adopt`] after the import: a path never leaves the export's folder (or
//! the `--media-dir` given), whatever the export says.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ingest::replay::{Replay, MAX_LINE_BYTES};
use crate::store::StoreError;
use mjlink_core::event::dce::{self, Media};
use mjlink_core::event::Event;
use mjlink_core::recording::{ArrayElements, Piece, Place};
use mjlink_core::snowflake::Snowflake;

/// Messages are sent in snowflake order by runs of this many (DCE writes them oldest first,
/// or newest first when asked).
const RUN: usize = 4096;
/// How many unknown field names are counted by name (the input decides the names).
const FIELD_NAMES: usize = 32;
/// The most bytes read after the `messages` array (`"messageCount": N }`).
const MAX_TAIL_BYTES: usize = 64 * 1024;
/// How many examples of media not adopted the report shows (all are counted).
const EXAMPLES: usize = 5;

/// What the exports said beyond their messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DceSummary {
    /// Files read as exports (to their end or where they stopped).
    pub exports: u64,
    /// `@Name` mentions put back as `<@id>`.
    pub mentions_restored: u64,
    /// Mentioned users whose `@Name` was not in the text: their user is lost.
    pub mentions_unmatched: u64,
    /// Fields DCE's writer does not write, by name (skipped; the message still counts).
    pub unknown_fields: BTreeMap<String, u64>,
    /// One sentence each: an export whose `messageCount` differs from what was read, or that
    /// ends without it.
    pub notes: Vec<String>,
    pub media: MediaFound,
}

/// The attachments' files, as the exports name them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MediaFound {
    /// Found, by attachment id (each once): to adopt.
    #[serde(skip)]
    pub files: BTreeMap<Snowflake, PathBuf>,
    /// Attachments the export holds a link for only (not downloaded, or the download failed).
    pub links_only: u64,
    /// Named, but no file there.
    pub missing: u64,
    /// Named outside the export's folder (an absolute path, `..`), or a link out of it:
    /// never read (give `--media-dir` for media kept elsewhere).
    pub outside: u64,
    /// Named by a path no file can have.
    pub unusable: u64,
    pub examples: Vec<String>,
}

impl MediaFound {
    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(mjlink_core::text::cut(&text, 300));
        }
    }
}

/// Where one attachment's file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    Found(PathBuf),
    /// Only a link: nothing to look for.
    Remote,
    Missing(PathBuf),
    Outside(String),
    Unusable(String),
}

/// The file `media` names: under `media_dir` by its file name when one is given, else at its
/// relative path under `export_dir`. Absolute paths, `..` and symbolic links that lead out of
/// that folder are refused: the file found is always inside it.
pub fn locate(media: &Media, export_dir: &Path, media_dir: Option<&Path>) -> Located {
    let (base, candidate) = match (media, media_dir) {
        (Media::Remote { url }, Some(dir)) => {
            // An export made without `--media` beside a media folder a run with it filled:
            // the file is under DCE's name for the link, whichever version named it.
            match dce_file_names(url)
                .into_iter()
                .map(|name| dir.join(name))
                .find(|path| path.is_file())
            {
                Some(path) => (dir.to_path_buf(), path),
                None => return Located::Remote,
            }
        }
        (Media::Remote { .. }, None) => return Located::Remote,
        (Media::Unusable(reason), _) => return Located::Unusable(reason.clone()),
        (Media::Local { file_name, .. }, Some(dir)) => (dir.to_path_buf(), dir.join(file_name)),
        (
            Media::Local {
                relative: Some(parts),
                ..
            },
            None,
        ) => (
            export_dir.to_path_buf(),
            parts
                .iter()
                .fold(export_dir.to_path_buf(), |path, part| path.join(part)),
        ),
        (
            Media::Local {
                relative: None,
                file_name,
            },
            None,
        ) => {
            return Located::Outside(format!(
                "{file_name}: the export names it outside its folder (give --media-dir)"
            ))
        }
    };
    if std::fs::symlink_metadata(&candidate).is_err() {
        return Located::Missing(candidate);
    }
    let (Ok(real_base), Ok(real)) = (base.canonicalize(), candidate.canonicalize()) else {
        return Located::Missing(candidate);
    };
    if !real.starts_with(&real_base) {
        return Located::Outside(format!(
            "{}: a link out of {}",
            candidate.display(),
            base.display()
        ));
    }
    if !real.is_file() {
        return Located::Unusable(format!("{} is not a file", candidate.display()));
    }
    Located::Found(real)
}

/// The names DiscordChatExporter gives the file it downloads from `url`
/// (`ExportAssetDownloader.GetFileNameFromUrl`): the link's last path segment, its stem cut to
/// 42 characters, `-`, a hash of the link, its extension. The hash changed: 5 upper-case hex
/// digits of the link's SHA-256 up to 2.41, of the link without its signature (`ex`, `is`,
/// `hm` of cdn.discordapp.com) from 2.42 to 2.46, and 16 lower-case digits of that from 2.47.
pub fn dce_file_names(url: &str) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let hex = |text: &str, digits: usize, upper: bool| -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|byte| {
                if upper {
                    format!("{byte:02X}")
                } else {
                    format!("{byte:02x}")
                }
            })
            .collect::<String>()
            .chars()
            .take(digits)
            .collect()
    };
    let unsigned = unsigned_link(url);
    let mut hashes = vec![
        hex(url, 5, true),
        hex(&unsigned, 5, true),
        hex(&unsigned, 16, false),
    ];
    hashes.dedup();
    // `.+/([^?]*)`: after the last `/` (the match is greedy), up to a `?`.
    let name = url
        .rsplit_once('/')
        .map(|(_, last)| last.split('?').next().unwrap_or_default())
        .unwrap_or_default();
    if name.trim().is_empty() {
        return hashes;
    }
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 41 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    let stem: String = stem.chars().take(42).collect();
    hashes
        .iter()
        .map(|hash| format!("{stem}-{hash}{extension}"))
        .collect()
}

/// `url` without Discord's signature parameters, as DCE 2.42+ hashes it
/// (`GetLeftPart(UriPartial.Path)` followed by what is left of the query, with no `?`).
fn unsigned_link(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let host = path.split('/').nth(2).unwrap_or_default();
    if !host.eq_ignore_ascii_case("cdn.discordapp.com") {
        return url.to_string();
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !matches!(pair.split('=').next(), Some("ex" | "is" | "hm")))
        .collect();
    format!("{path}{}", kept.join("&"))
}

/// One export into `replay`. `source` names it in reports; its media is looked for beside it
/// (`export_dir`) or in `media_dir`. An error means the database failed.
#[allow(clippy::too_many_arguments)]
pub fn read_export(
    replay: &mut Replay,
    source: &str,
    mut reader: impl BufRead,
    export_dir: &Path,
    media_dir: Option<&Path>,
    summary: &mut DceSummary,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), StoreError> {
    summary.exports += 1;
    let mut head_scan = dce::HeadScan::new();
    let mut head: Option<dce::Head> = None;
    let mut elements = ArrayElements::new(MAX_LINE_BYTES);
    let mut tail: Vec<u8> = Vec::new();
    let mut run: Vec<Event> = Vec::new();
    // A byte order mark (DCE writes none, an editor may) is skipped.
    let mut at_start = true;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let place = match elements.elements() {
                    0 => Place::File,
                    read => Place::Element(read - 1),
                };
                replay.unreadable(source, place, &error);
                break;
            }
        };
        if at_start && buffer.starts_with(mjlink_core::recording::BOM) {
            let skip = mjlink_core::recording::BOM.len();
            reader.consume(skip);
            on_bytes(skip as u64);
            at_start = false;
            continue;
        }
        at_start = false;
        let ended = buffer.is_empty();
        let Some(export) = &head else {
            // The head, up to the `[` of `messages`.
            if ended {
                if let Some(reason) = head_scan.finish() {
                    replay.unopened(format!("{source}: {reason}"));
                }
                break;
            }
            let (used, found) = head_scan.feed(buffer);
            reader.consume(used);
            on_bytes(used as u64);
            match found {
                Some(Ok(found)) => head = Some(found),
                Some(Err(reason)) => {
                    replay.unopened(format!("{source}: {reason}"));
                    break;
                }
                None => {}
            }
            continue;
        };
        if elements.closed() {
            // After the array: `"messageCount": N }`.
            if ended {
                match dce::message_count(&tail) {
                    Some(count) if count != elements.elements() => summary.notes.push(format!(
                        "{source}: the export says {count} messages; {} were read",
                        elements.elements()
                    )),
                    Some(_) => {}
                    None => summary.notes.push(format!(
                        "{source}: the export ends without its messageCount (cut short after its messages?)"
                    )),
                }
                break;
            }
            let room = MAX_TAIL_BYTES.saturating_sub(tail.len());
            let used = buffer.len();
            tail.extend_from_slice(&buffer[..used.min(room)]);
            reader.consume(used);
            on_bytes(used as u64);
            continue;
        }
        let (used, piece) = if ended {
            // The file ends inside the array: the element cut short is reported.
            (0, elements.finish())
        } else {
            elements.feed(buffer)
        };
        reader.consume(used);
        on_bytes(used as u64);
        match piece {
            Some(Piece::Element { index, bytes }) => {
                replay.count_read();
                match dce::from_message(&bytes, export) {
                    Ok(decoded) => {
                        note_decoded(&decoded, export_dir, media_dir, summary);
                        run.push(decoded.event);
                    }
                    Err(reason) => replay.malformed(source, Place::Element(index), reason.0, &bytes)?,
                }
            }
            Some(Piece::Bad { index, reason }) => {
                replay.count_read();
                replay.malformed(source, Place::Element(index), reason, &[])?;
            }
            None => {}
        }
        if ended {
            break;
        }
        if run.len() >= RUN {
            replay.send_run(&mut run)?;
        }
    }
    replay.send_run(&mut run)
}

/// Counts what a decoded message said beyond its event, and locates its media.
fn note_decoded(
    decoded: &dce::Decoded,
    export_dir: &Path,
    media_dir: Option<&Path>,
    summary: &mut DceSummary,
) {
    summary.mentions_restored += decoded.mentions_restored as u64;
    summary.mentions_unmatched += decoded.mentions_unmatched as u64;
    for name in &decoded.unknown_fields {
        let known = summary.unknown_fields.contains_key(name) || summary.unknown_fields.len() < FIELD_NAMES;
        let name = if known {
            name.clone()
        } else {
            crate::ingest::replay::OTHER_TYPES.to_string()
        };
        *summary.unknown_fields.entry(name).or_default() += 1;
    }
    let media = &mut summary.media;
    for (attachment_id, place) in &decoded.media {
        match locate(place, export_dir, media_dir) {
            Located::Found(path) => {
                media.files.insert(*attachment_id, path);
            }
            Located::Remote => media.links_only += 1,
            Located::Missing(path) => {
                media.missing += 1;
                media.example(format!(
                    "attachment {attachment_id}: no file at {}",
                    path.display()
                ));
            }
            Located::Outside(why) => {
                media.outside += 1;
                media.example(format!("attachment {attachment_id}: {why}"));
            }
            Located::Unusable(why) => {
                media.unusable += 1;
                media.example(format!("attachment {attachment_id}: {why}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_out_of_the_export_folder_is_outside() {
        let dir = tempfile::tempdir().unwrap();
        let export_dir = dir.path().join("export");
        std::fs::create_dir_all(export_dir.join("x_Files")).unwrap();
        let secret = dir.path().join("secret.png");
        std::fs::write(&secret, b"\x89PNG\r\n\x1a\n").unwrap();
        std::os::unix::fs::symlink(&secret, export_dir.join("x_Files/a.png")).unwrap();
        std::fs::write(export_dir.join("x_Files/b.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        let media = |path: &str| dce::media_of(path);
        assert!(matches!(
            locate(&media("x_Files/a.png"), &export_dir, None),
            Located::Outside(_)
        ));
        assert!(matches!(
            locate(&media("x_Files/b.png"), &export_dir, None),
            Located::Found(_)
        ));
        assert!(matches!(
            locate(&media("x_Files/c.png"), &export_dir, None),
            Located::Missing(_)
        ));
        assert!(matches!(
            locate(&media("../secret.png"), &export_dir, None),
            Located::Outside(_)
        ));
        assert!(matches!(
            locate(&media(secret.to_str().unwrap()), &export_dir, None),
            Located::Outside(_)
        ));
        // A media folder is searched by file name only.
        let found = locate(
            &media("/anywhere/../b.png"),
            &export_dir,
            Some(&export_dir.join("x_Files")),
        );
        assert!(matches!(found, Located::Found(_)), "{found:?}");
    }
}
