//! The image archive (issue 4, in progress): where images go (`layout`, pure), how one is
//! downloaded and verified (`download`), and the queue in the database worked through by
//! `mjlink archive` (and after `replay --download` and `backfill`) and checked by
//! `mjlink verify` (`worker`). Not yet: downloads while `run` is running.

pub mod download;
pub mod layout;
pub mod worker;
