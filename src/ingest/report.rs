//! The summary a replay prints: what was read, and what the database now holds. Text from
//! the input (event types, reasons, file names) is shown through
//! [`for_terminal`], never obeyed by the terminal.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::ingest::replay::ReplaySummary;
use crate::store::{DriftDay, Store, StoreError};
use mjlink_core::text::for_terminal;

/// Days of format drift the summary lists, newest first.
const DRIFT_DAYS_SHOWN: usize = 7;

#[derive(Debug, Serialize)]
pub struct Report {
    pub replay: ReplaySummary,
    /// Seen messages by kind, over the whole database.
    pub jobs_by_kind: Vec<(String, i64)>,
    /// Links by signal (`none` for ambiguous and unresolved).
    pub links_by_signal: Vec<(String, i64)>,
    pub links_by_status: Vec<(String, i64)>,
    /// Start/progress messages by outcome (failed = deleted with no final grid).
    pub progress_outcomes: Vec<(String, i64)>,
    /// Format drift: Midjourney messages of no known kind, or that did not decode, over the
    /// whole database (`day` 0), and the newest days that had any.
    pub unknown_formats: DriftDay,
    pub unknown_formats_by_day: Vec<DriftDay>,
    /// Samples of them kept (`mjlink messages --kind unknown --raw`).
    pub unknown_samples: u64,
}

impl Report {
    pub fn gather(summary: &ReplaySummary, store: &Store) -> Result<Report, StoreError> {
        let (unknown_formats, unknown_samples) = store.drift_totals()?;
        Ok(Report {
            replay: summary.clone(),
            jobs_by_kind: store.count_by_kind()?,
            links_by_signal: store.count_links_by_signal()?,
            links_by_status: store.count_links_by_status()?,
            progress_outcomes: store.count_outcomes()?,
            unknown_formats,
            unknown_formats_by_day: store.drift_days(DRIFT_DAYS_SHOWN)?,
            unknown_samples,
        })
    }

    fn status(&self, name: &str) -> i64 {
        self.links_by_status
            .iter()
            .find(|(status, _)| status == name)
            .map_or(0, |(_, count)| *count)
    }

    pub fn write_text(&self, out: &mut impl Write, database: &Path) -> std::io::Result<()> {
        let replay = &self.replay;
        writeln!(out, "lines read          {}", replay.lines)?;
        writeln!(out, "events applied      {}", replay.applied)?;
        writeln!(out, "duplicates skipped  {}", replay.duplicates)?;
        writeln!(out, "already known       {}", replay.unchanged)?;
        writeln!(out, "not Midjourney      {}", replay.ignored)?;
        let skipped: u64 = replay.skipped.values().sum();
        let names: Vec<String> = replay
            .skipped
            .iter()
            .map(|(name, count)| format!("{} {count}", for_terminal(name)))
            .collect();
        if skipped > 0 {
            writeln!(out, "other events        {skipped} ({})", names.join(", "))?;
        } else {
            writeln!(out, "other events        0")?;
        }
        writeln!(out, "malformed lines     {}", replay.malformed)?;
        for example in &replay.malformed_examples {
            writeln!(out, "  {}", for_terminal(&example.to_string()))?;
        }
        if !replay.unreadable.is_empty() {
            writeln!(out, "unreadable files    {}", replay.unreadable.len())?;
            for reason in &replay.unreadable {
                writeln!(out, "  {}", for_terminal(reason))?;
            }
        }
        writeln!(
            out,
            "database            {}",
            for_terminal(&database.display().to_string())
        )?;
        let kinds: Vec<String> = self
            .jobs_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        writeln!(out, "jobs by kind        {}", kinds.join(", "))?;
        let signals: Vec<String> = self
            .links_by_signal
            .iter()
            .filter(|(signal, _)| signal != "none")
            .map(|(signal, count)| format!("{signal} {count}"))
            .collect();
        writeln!(out, "links by signal     {}", signals.join(", "))?;
        writeln!(out, "ambiguous           {}", self.status("ambiguous"))?;
        writeln!(out, "unresolved          {}", self.status("unresolved"))?;
        let outcomes: Vec<String> = self
            .progress_outcomes
            .iter()
            .map(|(outcome, count)| format!("{outcome} {count}"))
            .collect();
        writeln!(out, "started jobs        {}", outcomes.join(", "))?;
        writeln!(
            out,
            "unknown formats     {}",
            crate::ingest::drift::line(&self.unknown_formats, &self.unknown_formats_by_day)
        )?;
        if self.unknown_formats.total() > 0 {
            writeln!(
                out,
                "  {} kept as samples: mjlink messages --kind unknown --raw",
                self.unknown_samples
            )?;
        }
        Ok(())
    }
}
