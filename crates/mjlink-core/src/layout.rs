//! Where an archived image goes, and what a file name derived from Discord data may contain.
//! Pure: no I/O.

use std::path::PathBuf;

use crate::kinds;
use crate::snowflake::Snowflake;

/// The image formats Midjourney produces; anything else is refused before it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Webp,
    Jpeg,
    Gif,
}

impl ImageKind {
    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Webp => "webp",
            ImageKind::Jpeg => "jpg",
            ImageKind::Gif => "gif",
        }
    }
}

/// The format announced by the first bytes of a file (its signature), if it is an image.
pub fn sniff(head: &[u8]) -> Option<ImageKind> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some(ImageKind::Webp)
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(ImageKind::Jpeg)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(ImageKind::Gif)
    } else {
        None
    }
}

/// Bytes a signature check needs.
pub const SIGNATURE_BYTES: usize = 12;

/// The longest file or folder name written (most file systems allow 255 bytes).
pub const MAX_NAME_BYTES: usize = 120;

/// A file or folder name from untrusted text: ASCII letters, digits, `.`, `-` and `_` only
/// (everything else becomes `_`), a dot only after a letter, digit or dash (so never `.`,
/// `..` or a hidden name), no separators, no NUL,
/// at most `MAX_NAME_BYTES`, never empty.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_NAME_BYTES));
    for c in name.chars() {
        if out.len() >= MAX_NAME_BYTES {
            break;
        }
        // A dot is kept only after a letter, digit or dash: no leading dot, no `..`.
        let after_word = out
            .chars()
            .last()
            .is_some_and(|last| last.is_ascii_alphanumeric() || last == '-');
        let keep = c.is_ascii_alphanumeric() || c == '-' || c == '_' || (c == '.' && after_word);
        let c = if keep { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.chars().all(|c| c == '_') {
        "file".to_string()
    } else {
        out
    }
}

/// What an attachment is to its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The grid itself (or a root image with no grid).
    Grid,
    /// The upscale of tile 1..=4.
    Upscale(u8),
    /// Any other result: named by its action and its own job UUID (or message id).
    Other { action: String, id: String },
}

/// `archive/<YYYY>/<MM>/<grid job uuid>/<name>.<ext>`, relative to the archive root. The month
/// is the grid's (so a family stays together); `family` is the grid's job UUID, or its message
/// id when it has none.
pub fn place(family: &str, grid_posted_ms: i64, role: &Role, kind: ImageKind) -> PathBuf {
    let time = chrono::DateTime::from_timestamp_millis(grid_posted_ms).unwrap_or_default();
    let stem = match role {
        Role::Grid => "grid".to_string(),
        Role::Upscale(tile) => format!("u{tile}"),
        Role::Other { action, id } => sanitize(&format!("{action}_{id}")),
    };
    PathBuf::from(time.format("%Y").to_string())
        .join(time.format("%m").to_string())
        .join(sanitize(family))
        .join(format!("{stem}.{}", kind.extension()))
}

/// What the archive layout needs to know about an image's message and its parent.
#[derive(Debug, Clone, Copy)]
pub struct ImageFacts<'a> {
    pub message_id: Snowflake,
    /// The message's kind as stored (`imagine`, `upscale`, `variation_strong`, ...).
    pub kind: &'a str,
    pub tile: Option<u8>,
    pub job_uuid: Option<&'a str>,
    pub posted_ms: i64,
    /// The message it was made from (its link), when known.
    pub parent_id: Option<Snowflake>,
    pub parent_uuid: Option<&'a str>,
    pub parent_posted_ms: Option<i64>,
}

/// Where an image belongs: its family (the parent grid's job UUID, else its own), the
/// family's month, and its role in the family.
pub fn family_of(image: &ImageFacts<'_>) -> (String, i64, Role) {
    let own_id = image
        .job_uuid
        .map_or_else(|| image.message_id.to_string(), str::to_string);
    let is_grid = kinds::is_root_name(image.kind);
    if is_grid || image.parent_id.is_none() {
        let role = if is_grid {
            Role::Grid
        } else {
            Role::Other {
                action: image.kind.to_string(),
                id: own_id.clone(),
            }
        };
        return (own_id, image.posted_ms, role);
    }
    let family = image
        .parent_uuid
        .map(str::to_string)
        .or_else(|| image.parent_id.map(|id| id.to_string()))
        .unwrap_or_else(|| own_id.clone());
    let posted = image.parent_posted_ms.unwrap_or(image.posted_ms);
    let role = match (image.kind, image.tile) {
        ("upscale", Some(tile)) if (1..=4).contains(&tile) => Role::Upscale(tile),
        _ => Role::Other {
            action: image.kind.to_string(),
            id: own_id,
        },
    };
    (family, posted, role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_defused() {
        assert_eq!(sanitize("../../etc/passwd"), "_etc_passwd");
        assert_eq!(sanitize("/abs/path.png"), "_abs_path.png");
        assert_eq!(sanitize(".."), "file");
        assert_eq!(sanitize(".hidden"), "_hidden");
        assert_eq!(sanitize("a..b.png"), "a._b.png");
        assert_eq!(sanitize("a\0b"), "a_b");
        assert_eq!(sanitize("C:\\win\\x.png"), "C_win_x.png");
        assert_eq!(sanitize("猫と桜"), "file");
        assert_eq!(sanitize(""), "file");
        assert!(sanitize(&"x".repeat(10_000)).len() <= MAX_NAME_BYTES);
        for name in ["../a", "a/../../b", "\u{202e}gnp.exe", "con", "a b"] {
            let safe = sanitize(name);
            assert!(!safe.contains('/') && !safe.contains('\\') && safe != "." && safe != "..");
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageKind::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageKind::Webp));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(ImageKind::Jpeg));
        assert_eq!(sniff(b"GIF89a"), Some(ImageKind::Gif));
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn layout_keeps_a_family_together() {
        let posted = 1_689_159_465_530; // 2023-07-12
        let family = "c09a2935-432a-464c-bb31-6250a418a3c1";
        assert_eq!(
            place(family, posted, &Role::Grid, ImageKind::Png),
            PathBuf::from("2023/07/c09a2935-432a-464c-bb31-6250a418a3c1/grid.png")
        );
        assert_eq!(
            place(family, posted, &Role::Upscale(4), ImageKind::Webp),
            PathBuf::from("2023/07/c09a2935-432a-464c-bb31-6250a418a3c1/u4.webp")
        );
        let other = Role::Other {
            action: "variation_strong".into(),
            id: "f58fa448-1620-4aca-9621-005ef9f3b383".into(),
        };
        assert_eq!(
            place("../../x", posted, &other, ImageKind::Png),
            PathBuf::from("2023/07/_x/variation_strong_f58fa448-1620-4aca-9621-005ef9f3b383.png")
        );
    }
}
