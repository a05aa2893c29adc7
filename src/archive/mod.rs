//! The image archive: how one file is downloaded and verified ([`download`]), and the queue
//! in the database (`attachments`) worked through while the bot runs, by `mjlink archive`,
//! after `replay --download` and `backfill`, and checked by `mjlink verify` ([`worker`]).
//! Files already on disk (a DiscordChatExporter export's media) are adopted the same way
//! ([`adopt`]). Where a file goes is pure and lives in the core ([`mjlink_core::layout`]).

pub mod adopt;
pub mod backend;
pub mod download;
pub mod root;
pub mod worker;

use std::path::{Path, PathBuf};

/// The archive's marker (a file in the folder, an object in the bucket): the archive's id,
/// also recorded in the database ([`root::check`]).
pub const MARKER: &str = ".mjlink-archive";

/// Makes a file of the archive readable by its group and others (0644), so that a web server
/// or a second user can serve it. The temporary files every write goes through are made 0600;
/// this is set on them before they are renamed into place, whatever the umask.
pub fn share(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// The content type of an archived file, from what its bytes were found to be.
pub fn content_type(media: Option<&str>) -> &'static str {
    match media {
        Some("png") => "image/png",
        Some("webp") | Some("webp_animated") => "image/webp",
        Some("jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// `root`/`stored`, when it is a file that resolves inside `root` (symbolic links
/// followed); `None` otherwise.
pub fn resolve_inside(root: &Path, stored: &str) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let full = std::fs::canonicalize(root.join(stored)).ok()?;
    (full.starts_with(&root) && full.is_file()).then_some(full)
}
