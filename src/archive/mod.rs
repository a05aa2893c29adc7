//! The image archive: how one file is downloaded and verified ([`download`]), and the queue
//! in the database (`attachments`) worked through while the bot runs, by `mjlink archive`,
//! after `replay --download` and `backfill`, and checked by `mjlink verify` ([`worker`]).
//! Where a file goes is pure and lives in the core ([`mjlink_core::layout`]).

pub mod download;
pub mod root;
pub mod worker;
