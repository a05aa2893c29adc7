//! The image archive: how one file is downloaded and verified ([`download`]), and the queue
//! in the database (`attachments`) worked through while the bot runs, by `mjlink archive`,
//! after `replay --download` and `backfill`, and checked by `mjlink verify` ([`worker`]).
//! Files already on disk (a DiscordChatExporter export's media) are adopted the same way
//! ([`adopt`]). Where a file goes is pure and lives in the core ([`mjlink_core::layout`]).

pub mod adopt;
pub mod download;
pub mod root;
pub mod worker;
