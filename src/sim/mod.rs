//! Simulations for tests and `mjlink demo`: a fake Discord on 127.0.0.1 ([`discord`]) and a
//! simulated Midjourney that answers interactions on it ([`midjourney`]), with the real PNG
//! files it serves as generated images ([`png`]). Test doubles: nothing here talks to the
//! real Discord or Midjourney.

pub mod discord;
pub mod midjourney;
pub mod png;
