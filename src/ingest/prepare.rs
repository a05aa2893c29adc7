//! The prepare stage: the part of applying an event that needs nothing from the database,
//! done on the sender's thread (replay's reader, serenity's handler tasks, backfill) before
//! the event reaches the single [`crate::ingest::writer`], so that the work is shared between
//! cores instead of all waiting for the writer's.
//!
//! What is prepared: the doc of a created message as it is stored when the message is new
//! (`Doc::new` of it, its JSON and its zstd frame). It decides nothing: the writer's pipeline
//! reads, decides and writes as always, and the store uses a prepared encoding only for a doc
//! equal to the one prepared (a message stored for the first time); any other doc (a merge
//! with what was stored, a reply's copy of its parent) it encodes itself.

use mjlink_core::event::Event;
use mjlink_core::merge::Doc;

use crate::store::PreparedDoc;

/// What the writer is given with an event besides the event.
pub fn prepare(event: &Event) -> Option<PreparedDoc> {
    match event {
        Event::Create { message, .. } => Some(PreparedDoc::new(Doc::new(message.clone()))),
        Event::Update { .. } | Event::Delete { .. } => None,
    }
}
