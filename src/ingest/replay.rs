//! Replay: recorded gateway dispatches (one JSON object per line) and REST history dumps
//! (a JSON array of messages). Files are read and decoded on the caller's thread; the events
//! go to the [`Writer`], the same entry as the live gateway and backfill, which applies them
//! on its own thread (decoding and the database work in parallel). Replay works offline:
//! parents referenced but never seen are not fetched (`backfill` and `run` fetch them).
//!
//! **All or nothing per line, never per file.** The format is told from the first non-blank
//! line after a byte order mark ([`recording::detect`]: a `[` line may be a garbled dispatch
//! line); dispatch lines are decoded one by one, a JSON array element by element as the
//! bytes arrive ([`ArrayElements`]: memory holds one element, however long the array). A
//! line or element that does not decode is counted with its [`Place`] and the rest still
//! counts; a file that cannot be read is reported and the others are read whole. The binary
//! turns [`ReplaySummary::clean`] into its exit status.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use serde::Serialize;

use crate::ingest::pipeline::Pipeline;
use crate::ingest::writer::{CommitPolicy, Writer, WriterHandle, WriterStats};
use crate::store::Store;
use crate::store::StoreError;
pub use mjlink_core::event::Line;
use mjlink_core::event::{self, Event};
pub use mjlink_core::recording::Place;
use mjlink_core::recording::{self, ArrayElements, Format, Piece};

/// Lines longer than this are skipped as malformed without being held in memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How many malformed lines the summary describes (all are counted).
const MALFORMED_SHOWN: usize = 5;
/// How many distinct skipped event types the summary counts by name; the others are
/// counted together under [`OTHER_TYPES`] (the input decides the names).
const SKIPPED_NAMES: usize = 64;
/// The name the skipped event types beyond [`SKIPPED_NAMES`] are counted under.
pub const OTHER_TYPES: &str = "(other types)";
/// The longest reason kept for an example of malformed input.
const REASON_CHARS: usize = 300;
/// A JSON array's events are sent in snowflake order by runs of this many elements.
const ARRAY_RUN: usize = 4096;

/// Decodes one recorded line (the core's dispatch-line decoder).
pub fn decode_line(bytes: &[u8]) -> Line {
    event::from_dispatch_line(bytes)
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    /// Lines of dispatch lines and elements of JSON arrays read.
    pub lines: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// New events that changed nothing (an edit already known from a reply's copy).
    pub unchanged: u64,
    /// Messages not from Midjourney.
    pub ignored: u64,
    /// Other event types and opcodes, by name.
    pub skipped: BTreeMap<String, u64>,
    /// Lines and array elements that did not decode (skipped; the rest still counts).
    pub malformed: u64,
    /// The first few of them.
    pub malformed_examples: Vec<Malformed>,
    /// Files that could not be opened or read to their end (the others are read whole):
    /// one sentence each.
    pub unreadable: Vec<String>,
}

/// A piece of input that was skipped, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub file: String,
    pub place: Place,
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `file:N: reason` for a line, as compilers and editors write it.
        match self.place {
            Place::File => write!(f, "{}: {}", self.file, self.reason),
            Place::Line(line) => write!(f, "{}:{line}: {}", self.file, self.reason),
            place => write!(f, "{}: {place}: {}", self.file, self.reason),
        }
    }
}

impl ReplaySummary {
    /// The writer's counts of what it did with the events.
    fn add(&mut self, stats: &WriterStats) {
        self.applied += stats.applied;
        self.duplicates += stats.duplicates;
        self.unchanged += stats.unchanged;
        self.ignored += stats.ignored;
    }

    fn malformed(&mut self, file: &str, place: Place, reason: String) {
        self.malformed += 1;
        if self.malformed_examples.len() < MALFORMED_SHOWN {
            self.malformed_examples.push(Malformed {
                file: file.to_string(),
                place,
                reason: mjlink_core::text::cut(&reason, REASON_CHARS),
            });
        }
    }

    /// A file that could not be read from `place` on (its start: [`Place::File`]).
    pub fn unreadable(&mut self, file: &str, place: Place, error: &std::io::Error) {
        self.unreadable.push(match place {
            Place::File => format!("cannot read {file}: {error}"),
            place => format!("cannot read {file} past {place}: {error}"),
        });
    }

    /// One more dispatch of a type the pipeline does not use: counted by name, up to
    /// [`SKIPPED_NAMES`] names (memory stays bounded whatever the input).
    fn skipped(&mut self, name: String) {
        let known = self.skipped.contains_key(&name) || self.skipped.len() < SKIPPED_NAMES;
        let name = if known { name } else { OTHER_TYPES.to_string() };
        *self.skipped.entry(name).or_default() += 1;
    }

    /// Whether every file was read whole and every line and element decoded.
    pub fn clean(&self) -> bool {
        self.malformed == 0 && self.unreadable.is_empty()
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

    /// A file that could not be opened (one sentence): reported in the summary; the others
    /// are read.
    pub fn unopened(&mut self, reason: String) {
        self.summary.unreadable.push(reason);
    }

    /// A file that could not be read from `place` on: reported in the summary.
    pub fn unreadable(&mut self, file: &str, place: Place, error: &std::io::Error) {
        self.summary.unreadable(file, place, error);
    }

    /// One more piece of input read (a line, an element) by a source that decodes its own
    /// format through the core (`ingest::dce`).
    pub fn count_read(&mut self) {
        self.summary.lines += 1;
    }

    /// A piece of input that did not decode, at `place` of `source`: counted and reported as
    /// `replay` reports its own (a Midjourney message the decoder rejected is format drift).
    pub fn malformed(
        &mut self,
        source: &str,
        place: Place,
        reason: String,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.reading(source).malformed(place, reason, bytes)
    }

    /// Events decoded elsewhere, sent to the writer in snowflake order with the replay's clock
    /// (`run` is emptied).
    pub fn send_run(&mut self, run: &mut Vec<Event>) -> Result<(), StoreError> {
        self.reading("").send_run(run)
    }

    fn reading<'a>(&'a mut self, source: &'a str) -> Reading<'a> {
        Reading {
            source,
            writer: &self.handle,
            summary: &mut self.summary,
            clock: &mut self.clock,
        }
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
    on_bytes: impl FnMut(u64),
) -> Result<(), StoreError> {
    // The head: the first non-blank line (and, when it starts with '[', the next one), read
    // to tell the format and then read again in it.
    let (head, format) = match read_head(&mut reader) {
        Ok(head) => head,
        Err(error) => {
            summary.unreadable(source, Place::File, &error);
            return Ok(());
        }
    };
    let reader = std::io::Cursor::new(head).chain(reader);
    let mut reading = Reading {
        source,
        writer,
        summary,
        clock,
    };
    match format {
        Format::Lines => reading.lines(reader, on_bytes),
        Format::Array => reading.array(reader, on_bytes),
    }
}

/// The first non-blank line of a file (after a byte order mark, which is dropped) and, when
/// it starts with '[', the next non-blank line too; and the format they tell. Nothing past
/// them is read.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<(Vec<u8>, Format)> {
    let starts = loop {
        match reader.fill_buf() {
            Ok(buffer) => break buffer.starts_with(recording::BOM),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    };
    if starts {
        reader.consume(recording::BOM.len());
    }
    let mut head = Vec::new();
    let Some(whole) = read_non_blank_line(reader, &mut head)? else {
        return Ok((head, Format::Lines));
    };
    let first_len = head.len();
    let first_byte = head.iter().find(|b| !b.is_ascii_whitespace());
    if first_byte != Some(&b'[') {
        return Ok((head, Format::Lines));
    }
    let next = whole && read_non_blank_line(reader, &mut head)?.is_some();
    let format = recording::detect(&head[..first_len], whole, next.then(|| &head[first_len..]));
    Ok((head, format))
}

/// Appends blank lines and then one non-blank line to `head`, reading nothing past it (nor
/// past [`MAX_LINE_BYTES`]). Returns, when a non-blank line was found, whether it is whole
/// (ended by a line break or the end of the file).
fn read_non_blank_line(reader: &mut impl BufRead, head: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    let start = head.len();
    let mut line_start = start;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let non_blank = |line: &[u8]| line.iter().any(|b| !b.is_ascii_whitespace());
        if buffer.is_empty() {
            return Ok(non_blank(&head[line_start..]).then_some(true));
        }
        let room = MAX_LINE_BYTES.saturating_sub(head.len() - line_start);
        if room == 0 {
            return Ok(Some(false));
        }
        let (chunk, line_end) = match memchr::memchr(b'\n', buffer) {
            Some(end) if end < room => (&buffer[..=end], true),
            _ => (&buffer[..buffer.len().min(room)], false),
        };
        let used = chunk.len();
        head.extend_from_slice(chunk);
        reader.consume(used);
        if line_end {
            if non_blank(&head[line_start..]) {
                return Ok(Some(true));
            }
            line_start = head.len();
        }
    }
}

/// One file being read into the writer.
struct Reading<'a> {
    source: &'a str,
    writer: &'a WriterHandle,
    summary: &'a mut ReplaySummary,
    clock: &'a mut Clock,
}

impl Reading<'_> {
    fn send(&mut self, event: Event) -> Result<(), StoreError> {
        let now = self.clock.observe(&event);
        self.writer.send_blocking(event, now)
    }

    /// A piece that did not decode: counted with its place; a Midjourney message the
    /// decoder rejected is counted as format drift.
    fn malformed(&mut self, place: Place, reason: String, bytes: &[u8]) -> Result<(), StoreError> {
        tracing::debug!(file = self.source, %place, reason = %reason, "malformed input skipped");
        self.summary.malformed(self.source, place, reason);
        if let Some(found) = mjlink_core::drift::undecodable(bytes) {
            self.writer
                .send_undecodable_blocking(found, String::from_utf8_lossy(bytes).into_owned())?;
        }
        Ok(())
    }

    /// Dispatch lines, one by one.
    fn lines(&mut self, mut reader: impl BufRead, mut on_bytes: impl FnMut(u64)) -> Result<(), StoreError> {
        let mut line = Vec::new();
        let mut line_number = 0u64;
        loop {
            line.clear();
            let (consumed, too_long) = match read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES) {
                Ok(read) => read,
                Err(error) => {
                    let place = if line_number == 0 {
                        Place::File
                    } else {
                        Place::Line(line_number)
                    };
                    self.summary.unreadable(self.source, place, &error);
                    break;
                }
            };
            if consumed == 0 {
                break;
            }
            on_bytes(consumed as u64);
            line_number += 1;
            self.summary.lines += 1;
            let place = Place::Line(line_number);
            if too_long {
                self.malformed(place, format!("line longer than {MAX_LINE_BYTES} bytes"), &[])?;
                continue;
            }
            // A line that is a JSON array is a page of history (`jq -c` of several pages):
            // its elements are read one by one too.
            if line.trim_ascii_start().starts_with(b"[") {
                if let Ok(page) = event::from_history_page(&line) {
                    for (index, reason) in page.rejected {
                        self.malformed(place, format!("element {index}: {reason}"), &[])?;
                    }
                    for event in page.events {
                        self.send(event)?;
                    }
                    continue;
                }
            }
            match decode_line(&line) {
                Line::Event(event) => self.send(*event)?,
                Line::Blank => {}
                Line::Skipped(name) => self.summary.skipped(name),
                Line::Malformed(reason) => self.malformed(place, reason, &line)?,
            }
        }
        Ok(())
    }

    /// A JSON array of messages, element by element. Discord sends history newest first;
    /// the events are sent in snowflake order by runs of [`ARRAY_RUN`] elements, so memory
    /// stays bounded however long the array.
    fn array(&mut self, mut reader: impl BufRead, mut on_bytes: impl FnMut(u64)) -> Result<(), StoreError> {
        let mut elements = ArrayElements::new(MAX_LINE_BYTES);
        let mut run: Vec<Event> = Vec::new();
        loop {
            let buffer = match reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let place = match elements.elements() {
                        0 => Place::File,
                        read => Place::Element(read - 1),
                    };
                    self.summary.unreadable(self.source, place, &error);
                    break;
                }
            };
            let (used, piece) = if buffer.is_empty() {
                (0, elements.finish())
            } else {
                elements.feed(buffer)
            };
            reader.consume(used);
            on_bytes(used as u64);
            match piece {
                Some(Piece::Element { index, bytes }) => {
                    self.summary.lines += 1;
                    match event::from_message(&bytes) {
                        Ok(event) => run.push(event),
                        Err(reason) => self.malformed(Place::Element(index), reason.0, &bytes)?,
                    }
                }
                Some(Piece::Bad { index, reason }) => {
                    self.summary.lines += 1;
                    self.malformed(Place::Element(index), reason, &[])?;
                }
                None if used == 0 => break,
                None => {}
            }
            if run.len() >= ARRAY_RUN {
                self.send_run(&mut run)?;
            }
        }
        self.send_run(&mut run)
    }

    fn send_run(&mut self, run: &mut Vec<Event>) -> Result<(), StoreError> {
        run.sort_by_key(|event| event.message().map(|message| message.id));
        for event in run.drain(..) {
            self.send(event)?;
        }
        Ok(())
    }
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
        let (chunk, done) = match memchr::memchr(b'\n', buffer) {
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
