//! Replay: recorded gateway dispatches (one JSON object per line) and REST history dumps
//! (a JSON array of messages). Files are read and decoded on the caller's thread; the events
//! go to the [`Writer`], the same entry as the live gateway and backfill, which applies them
//! on its own thread (decoding and the database work in parallel). Bad input is counted and
//! reported, never fatal. Replay works offline: parents referenced but never seen are not
//! fetched (`backfill` and `run` fetch them).

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

use crate::ingest::pipeline::Pipeline;
use crate::ingest::writer::{CommitPolicy, Writer, WriterHandle, WriterStats};
use crate::store::Store;
use crate::store::StoreError;
pub use mjlink_core::event::Line;
use mjlink_core::event::{self, Event};

/// Lines longer than this are skipped as malformed without being held in memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How many malformed lines the summary describes (all are counted).
const MALFORMED_SHOWN: usize = 5;

/// Decodes one recorded line (the core's dispatch-line decoder).
pub fn decode_line(bytes: &[u8]) -> Line {
    event::from_dispatch_line(bytes)
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub lines: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// New events that changed nothing (an edit already known from a reply's copy).
    pub unchanged: u64,
    /// Messages not from Midjourney.
    pub ignored: u64,
    /// Other event types and opcodes, by name.
    pub skipped: BTreeMap<String, u64>,
    pub malformed: u64,
    /// The first few malformed lines: (file, line number, reason).
    pub malformed_examples: Vec<(String, u64, String)>,
}

impl ReplaySummary {
    /// The writer's counts of what it did with the events.
    fn add(&mut self, stats: &WriterStats) {
        self.applied += stats.applied;
        self.duplicates += stats.duplicates;
        self.unchanged += stats.unchanged;
        self.ignored += stats.ignored;
    }

    fn malformed(&mut self, source: &str, line: u64, reason: String) {
        self.malformed += 1;
        if self.malformed_examples.len() < MALFORMED_SHOWN {
            self.malformed_examples.push((source.to_string(), line, reason));
        }
    }
}

/// The replay's clock: the newest message time read so far. Deletions carry no time, so
/// they are stamped with it; it depends only on the input, never on the wall clock. It
/// also counts the events it stamped (every event sent to the writer).
#[derive(Debug, Default)]
struct Clock {
    newest_ms: i64,
    events: u64,
}

impl Clock {
    fn observe(&mut self, event: &Event) -> i64 {
        if let Some(seen) = event.time_ms() {
            self.newest_ms = self.newest_ms.max(seen);
        }
        self.events += 1;
        self.newest_ms
    }
}

/// A replay under way: its writer, its clock and what it has read so far.
pub struct Replay {
    writer: Writer,
    handle: WriterHandle,
    clock: Clock,
    summary: ReplaySummary,
}

impl Replay {
    /// Starts the writer on `pipeline`.
    pub fn start(pipeline: Pipeline) -> Replay {
        let writer = Writer::spawn_with(pipeline, Default::default(), CommitPolicy::Batches);
        let handle = writer.handle();
        Replay {
            writer,
            handle,
            clock: Clock::default(),
            summary: ReplaySummary::default(),
        }
    }

    /// Feeds a recording (dispatch lines, or a JSON array of messages). `source` names it in
    /// reports; `on_bytes` is told how many bytes were consumed, for progress bars. An error
    /// means the database failed: [`Replay::finish`] says why.
    pub fn read(
        &mut self,
        source: &str,
        reader: impl BufRead,
        on_bytes: impl FnMut(u64),
    ) -> Result<(), StoreError> {
        read_into(
            source,
            reader,
            &self.handle,
            &mut self.summary,
            &mut self.clock,
            on_bytes,
        )
    }

    /// Whether the writer has applied every event sent so far (or stopped on an error,
    /// which [`Replay::finish`] reports).
    pub fn caught_up(&self) -> bool {
        self.handle.events_done() >= self.clock.events || !self.handle.is_running()
    }

    /// The writer's count of events applied, readable while [`Replay::read`] runs.
    pub fn applied_counter(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.handle.events_done_counter()
    }

    /// Applies everything read, commits, and returns the summary and the store.
    pub fn finish(self) -> Result<(ReplaySummary, Store), StoreError> {
        let Replay {
            writer,
            handle,
            mut summary,
            ..
        } = self;
        drop(handle);
        let (stats, pipeline) = writer.finish_blocking()?;
        summary.add(&stats);
        Ok((summary, pipeline.into_store()?))
    }
}

/// Replays `readers` (name, reader) into `pipeline` in one go; for tests and tools.
pub fn replay_all<R: BufRead>(
    pipeline: Pipeline,
    readers: impl IntoIterator<Item = (String, R)>,
) -> Result<(ReplaySummary, Store), StoreError> {
    let mut replay = Replay::start(pipeline);
    for (name, reader) in readers {
        if replay.read(&name, reader, |_| {}).is_err() {
            break; // the writer stopped: finish() returns its error
        }
    }
    replay.finish()
}

fn read_into(
    source: &str,
    mut reader: impl BufRead,
    writer: &WriterHandle,
    summary: &mut ReplaySummary,
    clock: &mut Clock,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), StoreError> {
    // Peek at the first non-blank byte: '[' means a REST history array.
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) => {
                summary.malformed(source, 0, format!("cannot read: {error}"));
                return Ok(());
            }
        };
        if buffer.is_empty() {
            return Ok(());
        }
        let blanks = buffer.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if blanks == buffer.len() {
            let consumed = buffer.len();
            reader.consume(consumed);
            continue;
        }
        if buffer[blanks] == b'[' {
            return replay_array(source, reader, writer, summary, clock, on_bytes);
        }
        break;
    }

    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        let (consumed, too_long) = match read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES) {
            Ok(read) => read,
            Err(error) => {
                summary.malformed(source, line_number + 1, format!("cannot read: {error}"));
                break;
            }
        };
        if consumed == 0 {
            break;
        }
        on_bytes(consumed as u64);
        line_number += 1;
        summary.lines += 1;
        if too_long {
            summary.malformed(
                source,
                line_number,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            );
            continue;
        }
        match decode_line(&line) {
            Line::Event(event) => {
                let now = clock.observe(&event);
                writer.send_blocking(*event, now)?;
            }
            Line::Blank => {}
            Line::Skipped(name) => *summary.skipped.entry(name).or_default() += 1,
            Line::Malformed(reason) => {
                tracing::debug!(file = source, line = line_number, reason = %reason, "malformed line skipped");
                summary.malformed(source, line_number, reason);
                // A message that does not decode may be Midjourney's new format: counted.
                if let Some(found) = mjlink_core::drift::undecodable(&line) {
                    writer.send_undecodable_blocking(found, String::from_utf8_lossy(&line).into_owned())?;
                }
            }
        }
    }
    Ok(())
}

/// Reads up to and including the next b'\n'. Returns (bytes consumed, whether the line was
/// longer than `cap`, in which case only its first `cap` bytes are kept in `line`).
fn read_capped_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            return Ok((consumed, too_long));
        }
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..=end], true),
            None => (buffer, false),
        };
        let room = cap.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        consumed += used;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

fn replay_array(
    source: &str,
    mut reader: impl BufRead,
    writer: &WriterHandle,
    summary: &mut ReplaySummary,
    clock: &mut Clock,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), StoreError> {
    let mut text = String::new();
    let read = reader.read_to_string(&mut text);
    on_bytes(text.len() as u64);
    summary.lines += 1;
    if let Err(error) = read {
        summary.malformed(source, 1, format!("cannot read the JSON array: {error}"));
        return Ok(());
    }
    let page = match event::from_history_page(text.as_bytes()) {
        Ok(page) => page,
        Err(not_a_page) => {
            summary.malformed(source, not_a_page.line as u64, not_a_page.reason.0);
            return Ok(());
        }
    };
    for (index, reason) in page.rejected {
        summary.malformed(source, 1, format!("element {index} is {reason}"));
    }
    // History pages come newest first; the page is in snowflake order.
    for event in page.events {
        let now = clock.observe(&event);
        writer.send_blocking(event, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_long_lines_without_losing_the_next() {
        let input = format!("{}\nnext\n", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(8, input.as_bytes());
        let mut line = Vec::new();
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), (101, true));
        assert_eq!(line.len(), 10);
        line.clear();
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), (5, false));
        assert_eq!(line, b"next\n");
    }
}
