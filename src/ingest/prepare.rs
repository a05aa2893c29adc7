//! The prepare stage: the part of applying an event that needs nothing from the database,
//! done on the sender's thread (replay's reader, serenity's handler tasks, backfill) before
//! the event reaches the single [`crate::ingest::writer`], so that the work is shared between
//! cores instead of all waiting for the writer's.
//!
//! For a created message, the stage works out what the pipeline does with it when nothing is
//! stored of it yet, the common case: the core's own decision for that case
//! (`lineage::absorb` with nothing known: the doc, the parse, the link work) and the doc's
//! encoding and its row. It decides nothing itself, and nothing is taken on trust: the
//! pipeline reads the store as always and uses the prepared decision only when the store
//! holds nothing of the message (else it decides with what is stored), and the store uses the
//! prepared encoding only for a doc equal to the one prepared. What the writer is done with
//! of it goes back to the sender's thread to be freed there ([`Spent`]).

use mjlink_core::event::Event;
use mjlink_core::lineage::{self, Absorbed, Source};
use mjlink_core::merge::Doc;
use mjlink_core::parse::{BotIds, Kind, Parsed};
use mjlink_core::snowflake::Snowflake;

use crate::store::{MessageRow, PreparedDoc};

/// What the sender prepared of an event.
pub struct Prepared {
    /// The created message.
    pub(crate) id: Snowflake,
    /// `lineage::absorb` of it with nothing stored of it.
    pub(crate) absorbed: Absorbed,
    /// The doc it saves then, encoded.
    pub(crate) doc: Option<PreparedDoc>,
    /// The row it saves then, for a save (`None` otherwise): good while the save is what
    /// was prepared (a reply that asks its target is decided again on the writer).
    pub(crate) row: Option<MessageRow>,
}

/// What the writer is done with of a prepared save: the sender's allocations, handed back
/// with the applied events to be freed on the sender's thread (see `writer::Returned`).
#[expect(dead_code, reason = "held only to be freed on the sender's thread")]
pub struct Spent {
    pub(crate) doc: Doc,
    pub(crate) parsed: Parsed,
    pub(crate) row: MessageRow,
}

/// Prepares a created message (other events need what is stored).
pub fn prepare(event: &Event, bots: &BotIds) -> Option<Prepared> {
    let Event::Create { message, .. } = event else {
        return None;
    };
    let absorbed = lineage::absorb(None, message, Source::Create, bots);
    let doc = match &absorbed {
        // A start is edited as its job runs: the writer encodes its last state before the
        // commit, so encoding its first here would be work thrown away.
        Absorbed::Save(save) if !matches!(save.parsed.kind, Kind::Progress { .. }) => {
            Some(PreparedDoc::new(save.doc.clone()))
        }
        _ => None,
    };
    let row = match &absorbed {
        Absorbed::Save(save) => Some(crate::ingest::row::row_for(&save.doc, Some(&save.parsed), true)),
        _ => None,
    };
    Some(Prepared {
        id: message.id,
        absorbed,
        doc,
        row,
    })
}
