//! The image archive (issue 4, in progress): where images go (`layout`, pure) and how one is
//! downloaded and verified (`download`). Not yet wired into `run`, `backfill` or `replay`.

pub mod download;
pub mod layout;
