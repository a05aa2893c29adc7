//! The numbered migrations (`migrations/*.sql`: history, never edited once shipped, which
//! `tests.rs` pins) and the work a migration leaves to the store.

use super::{animations, archive};

/// Numbered migrations; `PRAGMA user_version` records how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_lineage.sql"),
    include_str!("migrations/0002_channels.sql"),
    include_str!("migrations/0003_archive.sql"),
    include_str!("migrations/0004_queue.sql"),
    include_str!("migrations/0005_search.sql"),
    include_str!("migrations/0006_formats_2026.sql"),
    include_str!("migrations/0007_drift_and_media.sql"),
    include_str!("migrations/0008_start_replies.sql"),
    include_str!("migrations/0009_archive_trust.sql"),
    include_str!("migrations/0010_fts_pending_condition.sql"),
    include_str!("migrations/0011_manual_links.sql"),
    include_str!("migrations/0012_waiting_starts.sql"),
    include_str!("migrations/0013_notify_outbox.sql"),
    include_str!("migrations/0014_uploads.sql"),
    include_str!("migrations/0015_attachments_due.sql"),
    include_str!("migrations/0016_waiting_starts_covering.sql"),
    include_str!("migrations/0017_button_marks.sql"),
    include_str!("migrations/0018_variation_marks.sql"),
    include_str!("migrations/0019_animated_forms.sql"),
    include_str!("migrations/0020_button_mark_families.sql"),
];

/// Work a migration leaves to the store, in its transaction: what needs the core's tables
/// (SQL lists of kinds are never written in a migration).
pub(super) fn after_migration(tx: &rusqlite::Transaction<'_>, number: usize) -> rusqlite::Result<()> {
    if number == 15 {
        // The attachments stored before `archivable` existed: those of kinds never archived
        // (progress previews...) leave the archive's index of what is due.
        tx.execute(
            &format!(
                "UPDATE attachments SET archivable = 0 WHERE state = 'pending'
                   AND message_id IN (SELECT id FROM messages WHERE kind NOT IN {})",
                archive::archived_kinds()
            ),
            [],
        )?;
    } else if number == 19 {
        animations::backfill(tx)?;
    }
    Ok(())
}
