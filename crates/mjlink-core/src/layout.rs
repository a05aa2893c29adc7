//! Where an archived image or video goes, what its bytes are (by their signature, never by
//! the name or content type a server claims), and what a file name derived from Discord data
//! may contain. Pure: no I/O.

use std::path::PathBuf;

use crate::kinds;
use crate::snowflake::Snowflake;

/// The formats Midjourney produces (images, animated WebP video grids, mp4 clips); anything
/// else is refused before it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Png,
    /// A still WebP.
    Webp,
    /// An animated WebP (a video grid).
    AnimatedWebp,
    Jpeg,
    Gif,
    /// An ISO base media file (MPEG-4 video).
    Mp4,
}

impl MediaKind {
    /// The file extension the archive gives it.
    pub fn extension(self) -> &'static str {
        match self {
            MediaKind::Png => "png",
            MediaKind::Webp | MediaKind::AnimatedWebp => "webp",
            MediaKind::Jpeg => "jpg",
            MediaKind::Gif => "gif",
            MediaKind::Mp4 => "mp4",
        }
    }

    /// The name stored (`attachments.media`) and written in `metadata.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Png => "png",
            MediaKind::Webp => "webp",
            MediaKind::AnimatedWebp => "webp_animated",
            MediaKind::Jpeg => "jpeg",
            MediaKind::Gif => "gif",
            MediaKind::Mp4 => "mp4",
        }
    }

    /// Whether it moves (an animated WebP or an mp4).
    pub fn is_video(self) -> bool {
        matches!(self, MediaKind::AnimatedWebp | MediaKind::Mp4)
    }
}

/// The format announced by the first bytes of a file (its signature), if it is one the
/// archive keeps. Give it the first [`SIGNATURE_BYTES`] bytes (or the whole file when shorter).
pub fn sniff(head: &[u8]) -> Option<MediaKind> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(MediaKind::Png)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some(if webp_is_animated(head) {
            MediaKind::AnimatedWebp
        } else {
            MediaKind::Webp
        })
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(MediaKind::Jpeg)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(MediaKind::Gif)
    } else if is_mp4(head) {
        Some(MediaKind::Mp4)
    } else {
        None
    }
}

/// An ISO base media file (ISO/IEC 14496-12, 4.3): it opens with a FileTypeBox, a 32-bit
/// big-endian box size, the type `ftyp` (bytes 4..8), the major brand (8..12) and the minor
/// version (12..16), so its size is at least 16. The HEIF brands (AVIF, HEIC: still images
/// in the same container) are not video.
fn is_mp4(head: &[u8]) -> bool {
    const STILL_IMAGE_BRANDS: [&[u8; 4]; 8] = [
        b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1",
    ];
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    size >= 16 && !STILL_IMAGE_BRANDS.iter().any(|brand| &head[8..12] == *brand)
}

/// Whether a WebP file (RIFF header, 12 bytes) is animated: its `VP8X` chunk has the
/// animation flag set, or an `ANIM`/`ANMF` chunk is among the chunks in `head`. A chunk is a
/// FourCC, a 32-bit little-endian payload size, the payload, and a pad byte when the size is
/// odd. The VP8X payload opens with its flags byte, `Rsv(2) I L E X A R` from the high bit:
/// A (animation) is `0x02`.
fn webp_is_animated(head: &[u8]) -> bool {
    let mut at = 12usize;
    while let Some(header) = at.checked_add(8).and_then(|end| head.get(at..end)) {
        let fourcc = &header[..4];
        if fourcc == b"ANIM" || fourcc == b"ANMF" {
            return true;
        }
        if fourcc == b"VP8X" && head.get(at + 8).is_some_and(|flags| flags & 0x02 != 0) {
            return true;
        }
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        at = match at
            .checked_add(8)
            .and_then(|at| at.checked_add(size))
            .and_then(|at| at.checked_add(size & 1))
        {
            Some(next) => next,
            None => return false,
        };
    }
    false
}

/// Bytes a signature check reads: enough for the RIFF header, a `VP8X` chunk and the chunk
/// after it (an animated WebP without an ICC profile puts `ANIM` there).
pub const SIGNATURE_BYTES: usize = 64;

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
    /// Any other result (a variation, a video grid, a clip...): named by its kind, its tile or
    /// cell when it has one, and its own job UUID (or message id), so that a kind added to the
    /// core is named sensibly with no change here.
    Other {
        action: String,
        tile: Option<u8>,
        id: String,
    },
}

/// `archive/<YYYY>/<MM>/<grid job uuid>/<name>.<ext>` (the extension is the sniffed
/// content's, never the name Discord gave the file), relative to the archive root. The month
/// is the grid's (so a family stays together); `family` is the grid's job UUID, or its message
/// id when it has none.
pub fn place(family: &str, grid_posted_ms: i64, role: &Role, kind: MediaKind) -> PathBuf {
    let time = chrono::DateTime::from_timestamp_millis(grid_posted_ms).unwrap_or_default();
    let stem = match role {
        Role::Grid => "grid".to_string(),
        Role::Upscale(tile) => format!("u{tile}"),
        Role::Other {
            action,
            tile: Some(tile),
            id,
        } => sanitize(&format!("{action}_{tile}_{id}")),
        Role::Other {
            action,
            tile: None,
            id,
        } => sanitize(&format!("{action}_{id}")),
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
                tile: image.tile,
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
            tile: image.tile,
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
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(MediaKind::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(MediaKind::Webp));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(MediaKind::Jpeg));
        assert_eq!(sniff(b"GIF89a"), Some(MediaKind::Gif));
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }

    /// The head of an mp4 as encoders write it (ISO/IEC 14496-12, 4.3 FileTypeBox): box size
    /// 32 (big-endian), `ftyp`, major brand `isom`, minor version 0x200, compatible brands
    /// `isom iso2 avc1 mp41`; then the next box (`free`, size 8).
    fn mp4_head(major_brand: &[u8; 4]) -> Vec<u8> {
        let mut head = vec![0, 0, 0, 32];
        head.extend_from_slice(b"ftyp");
        head.extend_from_slice(major_brand);
        head.extend_from_slice(&[0, 0, 2, 0]);
        head.extend_from_slice(b"isomiso2avc1mp41");
        head.extend_from_slice(&[0, 0, 0, 8]);
        head.extend_from_slice(b"free");
        head
    }

    #[test]
    fn an_mp4_is_known_by_its_ftyp_box() {
        assert_eq!(sniff(&mp4_head(b"isom")), Some(MediaKind::Mp4));
        assert_eq!(sniff(&mp4_head(b"mp42")), Some(MediaKind::Mp4));
        assert_eq!(sniff(&mp4_head(b"isom")[..12]), Some(MediaKind::Mp4));
        assert_eq!(MediaKind::Mp4.extension(), "mp4");
        // The same container holding a still image (AVIF, HEIC) is not a video.
        assert_eq!(sniff(&mp4_head(b"avif")), None);
        assert_eq!(sniff(&mp4_head(b"heic")), None);
        // `ftyp` anywhere else, a box too small to hold a brand, or a cut head: not an mp4.
        assert_eq!(sniff(b"ftypisom\0\0\x02\0"), None);
        let mut tiny = mp4_head(b"isom");
        tiny[3] = 8;
        assert_eq!(sniff(&tiny), None);
        assert_eq!(sniff(&mp4_head(b"isom")[..10]), None);
        // A file named .mp4 with HTML in it is still HTML.
        assert_eq!(sniff(b"<!DOCTYPE html><title>x.mp4</title>"), None);
    }

    /// A WebP file (the WebP Container Specification): `RIFF`, the file size - 8 (32-bit
    /// little-endian), `WEBP`; then chunks, each a FourCC, a 32-bit little-endian payload size
    /// and the payload. The extended format starts with `VP8X` (payload 10 bytes: a flags byte
    /// `Rsv(2) I L E X A R` from the high bit, 3 reserved bytes, canvas width - 1 and height - 1
    /// in 24 bits each); an animation then has an `ANIM` chunk (background colour, loop count)
    /// and one `ANMF` chunk per frame.
    fn webp_head(flags: u8, chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        body.extend_from_slice(b"VP8X");
        body.extend_from_slice(&10u32.to_le_bytes());
        body.push(flags);
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&[0x6f, 0x02, 0x00, 0x6f, 0x02, 0x00]); // 624 x 624
        for (fourcc, payload) in chunks {
            body.extend_from_slice(*fourcc);
            body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            body.extend_from_slice(payload);
            if payload.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend_from_slice(&body);
        file
    }

    const ANIM: (&[u8; 4], &[u8]) = (b"ANIM", &[0, 0, 0, 0, 0, 0]);

    #[test]
    fn an_animated_webp_is_known_by_its_flag_or_its_chunks() {
        // Animation flag (0x02), with alpha (0x10): what encoders write for a video grid.
        let animated = webp_head(0x12, &[ANIM, (b"ANMF", &[0; 16])]);
        assert_eq!(sniff(&animated), Some(MediaKind::AnimatedWebp));
        assert_eq!(
            sniff(&animated[..SIGNATURE_BYTES.min(animated.len())]),
            Some(MediaKind::AnimatedWebp)
        );
        // A lax encoder that forgot the flag but wrote the ANIM chunk.
        assert_eq!(sniff(&webp_head(0x00, &[ANIM])), Some(MediaKind::AnimatedWebp));
        // Alpha only, one VP8L image: a still WebP.
        assert_eq!(
            sniff(&webp_head(0x10, &[(b"VP8L", &[0x2f; 5])])),
            Some(MediaKind::Webp)
        );
        // A simple (lossy) WebP has no VP8X at all.
        let mut simple = b"RIFF\x16\0\0\0WEBPVP8 ".to_vec();
        simple.extend_from_slice(&[10, 0, 0, 0, 0x30, 1, 0, 0x9d, 1, 0x2a, 1, 0, 1, 0]);
        assert_eq!(sniff(&simple), Some(MediaKind::Webp));
        assert!(MediaKind::AnimatedWebp.is_video() && !MediaKind::Webp.is_video());
        assert_eq!(MediaKind::AnimatedWebp.extension(), "webp");
    }

    #[test]
    fn hostile_webp_chunk_sizes_end_the_walk() {
        let mut head = b"RIFF\0\0\0\0WEBP".to_vec();
        head.extend_from_slice(b"ICCP");
        head.extend_from_slice(&u32::MAX.to_le_bytes());
        head.extend_from_slice(b"ANIM");
        assert_eq!(sniff(&head), Some(MediaKind::Webp));
        let cut = webp_head(0x02, &[]);
        assert_eq!(
            sniff(&cut[..20]),
            Some(MediaKind::Webp),
            "no flags byte: not known to move"
        );
    }

    #[test]
    fn layout_keeps_a_family_together() {
        let posted = 1_689_159_465_530; // 2023-07-12
        let family = "c09a2935-432a-464c-bb31-6250a418a3c1";
        assert_eq!(
            place(family, posted, &Role::Grid, MediaKind::Png),
            PathBuf::from("2023/07/c09a2935-432a-464c-bb31-6250a418a3c1/grid.png")
        );
        assert_eq!(
            place(family, posted, &Role::Upscale(4), MediaKind::Webp),
            PathBuf::from("2023/07/c09a2935-432a-464c-bb31-6250a418a3c1/u4.webp")
        );
        let other = Role::Other {
            action: "variation_strong".into(),
            tile: None,
            id: "f58fa448-1620-4aca-9621-005ef9f3b383".into(),
        };
        assert_eq!(
            place("../../x", posted, &other, MediaKind::Png),
            PathBuf::from("2023/07/_x/variation_strong_f58fa448-1620-4aca-9621-005ef9f3b383.png")
        );
    }

    #[test]
    fn a_video_grid_and_its_clips_are_named_by_kind_cell_and_content() {
        let posted = 1_750_000_000_000; // 2025-06-15
        let upscale = "11111111-1111-4111-8111-111111111111";
        let video = "22222222-2222-4222-8222-222222222222";
        let facts = |kind, tile, job_uuid, parent_uuid| ImageFacts {
            message_id: Snowflake(9),
            kind,
            tile,
            job_uuid: Some(job_uuid),
            posted_ms: posted + 60_000,
            parent_id: Some(Snowflake(8)),
            parent_uuid: Some(parent_uuid),
            parent_posted_ms: Some(posted),
        };
        // The video grid (an animated WebP) in the folder of the image it animates.
        let (family, month, role) = family_of(&facts("animate", None, video, upscale));
        assert_eq!(
            place(&family, month, &role, MediaKind::AnimatedWebp),
            PathBuf::from(format!("2025/06/{upscale}/animate_{video}.webp"))
        );
        // A clip of cell 3 (Midjourney names its file `{uuid}_3_720_N.mp4` and gives it the
        // video grid's job): in the video grid's folder, named by its kind (whatever the core
        // calls it, with no change here) and its cell; the extension is the content's.
        for kind in ["video_clip", "video_extend"] {
            let (family, month, role) = family_of(&facts(kind, Some(3), video, video));
            assert_eq!(
                place(&family, month, &role, MediaKind::Mp4),
                PathBuf::from(format!("2025/06/{video}/{kind}_3_{video}.mp4"))
            );
        }
        // A hostile kind or id cannot leave the family folder.
        let role = Role::Other {
            action: "../../x".into(),
            tile: Some(1),
            id: "/etc/passwd".into(),
        };
        let path = place(video, posted, &role, MediaKind::Mp4);
        assert_eq!(
            path,
            PathBuf::from(format!("2025/06/{video}/_x_1_etc_passwd.mp4"))
        );
    }
}
