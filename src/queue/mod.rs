//! Unattended prompt queues, the shell: items kept in SQLite, submitted to Midjourney a few
//! at a time, followed through the lineage until every requested upscale is in.
//!
//! - the items and the state machine are pure and live in the core
//!   ([`mjlink_core::queue`], re-exported here);
//! - [`submit`]: the [`submit::Submitter`] trait and its Discord implementation (a user
//!   token's `POST /api/v9/interactions`);
//! - [`runner`]: reads the items and what was seen, applies the machine's decisions, paces
//!   submissions, and records every transition;
//! - [`view`]: the text of `queue list`, `queue show` and the demo's lineage.

pub mod runner;
pub mod submit;
pub mod view;

pub use mjlink_core::queue::*;
