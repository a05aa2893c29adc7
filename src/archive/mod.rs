//! The image archive: how one file is downloaded and verified ([`download`]), and the queue
//! in the database (`attachments`) worked through while the bot runs, by `mjlink archive`,
//! after `replay --download` and `backfill`, and checked by `mjlink verify` ([`worker`]).
//! Files already on disk (a DiscordChatExporter export's media) are adopted the same way
//! ([`adopt`]). Where a file goes is pure and lives in the core ([`mjlink_core::layout`]).

pub mod adopt;
pub mod download;
pub mod root;
pub mod worker;

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
