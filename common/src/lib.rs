//! Everything backupd and backupctl must agree on: the wire protocol (message types and the frame
//! codec), structured errors, the configuration schema and the default paths of both run modes.
//!
//! This crate does no I/O of its own beyond the client connection helper; it spawns no tasks.

pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod ids;
pub mod paths;
pub mod plural;
pub mod protocol;
pub mod rate;
pub mod schedule;

/// Version of this build, shared by backupd and backupctl.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
