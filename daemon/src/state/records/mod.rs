//! What the daemon stores in sled, as its own versioned types: a wire change (the protocol's
//! `JobInfo`, `SourceSpec`) is no longer a storage migration, and a storage change is not a
//! protocol change. Each record is JSON with a `v` field; version 1 is what backupd 0.1 wrote
//! (the JSON of the protocol types then, with no `v`), and the record types read it as such.
//! Conversions to and from the protocol types are explicit and exhaustive, so a field added on
//! either side fails to compile until someone decides where it goes.
//!
//! A record with a `v` newer than this build knows is left in place and reported, never
//! rewritten: a newer backupd may have written it.

pub mod analytics;
pub mod binding;
pub mod drill;
pub mod history;
pub mod job;
pub mod perf;
pub mod recovery;
pub mod replication;
pub mod source;
pub mod sync;
pub mod timer;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("undecodable record: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("record version {found} is newer than this backupd reads (up to {supported})")]
    Newer { found: u32, supported: u32 },
}

/// The version stamp of records that have none: what backupd 0.1 wrote.
pub(crate) fn legacy_version() -> u32 {
    1
}

/// A stored record type and the newest version of it this build writes.
pub trait Record: Serialize + DeserializeOwned {
    const VERSION: u32;
    fn version(&self) -> u32;
    fn set_version(&mut self, v: u32);
}

/// Decodes a record of any version up to `R::VERSION`.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, RecordError> {
    let record: R = serde_json::from_slice(bytes)?;
    if record.version() > R::VERSION {
        return Err(RecordError::Newer {
            found: record.version(),
            supported: R::VERSION,
        });
    }
    Ok(record)
}

/// Encodes a record stamped with the current version.
pub fn encode<R: Record>(record: &mut R) -> Vec<u8> {
    record.set_version(R::VERSION);
    // Plain data (strings, numbers, maps with string keys, JSON values): always encodes.
    serde_json::to_vec(record).unwrap_or_else(|_| unreachable!("records always encode"))
}

macro_rules! versioned {
    ($ty:ty, $version:expr) => {
        impl $crate::state::records::Record for $ty {
            const VERSION: u32 = $version;
            fn version(&self) -> u32 {
                self.v
            }
            fn set_version(&mut self, v: u32) {
                self.v = v;
            }
        }
    };
}
pub(crate) use versioned;
