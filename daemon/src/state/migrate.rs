//! Migrations of the state database, run by [`super::State`] on open when the recorded schema
//! version is older than [`super::SCHEMA_VERSION`]. Each step rewrites what changed and then
//! records its version, so a step interrupted by a crash runs again whole on the next start
//! (every step is idempotent).
//!
//! 1 → 2: jobs and sources become versioned records ([`super::records`]) instead of the JSON
//! of protocol types (the records read the old JSON as version 1), and every finished job in
//! the queue is appended to the new job history.

use super::history::History;
use super::records::history::HistoryRecord;
use super::records::job::JobRecord;
use super::records::source::SourceRecord;
use super::records::{self, Record};
use super::{State, StateError};

pub const JOBS_TREE: &str = "jobs";
pub const SOURCES_TREE: &str = "sources";

/// Brings the database from schema `from` to the current one. The caller records the new
/// version and flushes.
pub fn run(state: &State, from: u32) -> Result<(), StateError> {
    if from < 2 {
        to_v2(state)?;
    }
    Ok(())
}

fn to_v2(state: &State) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: state.path().to_owned(),
        source,
    };
    let history = History::open(state)?;
    let jobs = state.tree(JOBS_TREE)?;
    let (mut migrated, mut appended) = (0u64, 0u64);
    for item in jobs.iter() {
        let (key, value) = item.map_err(err)?;
        let Some(mut record) = readable::<JobRecord>(&key, &value, "job") else {
            continue;
        };
        if let Some(entry) = HistoryRecord::of(&record) {
            history.append(entry)?;
            appended += 1;
        }
        jobs.insert(key, records::encode(&mut record))
            .map_err(err)?;
        migrated += 1;
    }
    let sources = state.tree(SOURCES_TREE)?;
    for item in sources.iter() {
        let (key, value) = item.map_err(err)?;
        let Some(mut record) = readable::<SourceRecord>(&key, &value, "source") else {
            continue;
        };
        sources
            .insert(key, records::encode(&mut record))
            .map_err(err)?;
        migrated += 1;
    }
    tracing::info!(
        records = migrated,
        history = appended,
        "state database migrated to schema 2 (versioned records, job history)"
    );
    Ok(())
}

/// A record this build can read; anything else is left as it is, with a warning.
fn readable<R: Record>(key: &[u8], value: &[u8], what: &str) -> Option<R> {
    match records::decode::<R>(value) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(
                what,
                key = %String::from_utf8_lossy(key),
                error = %e,
                "record not migrated (unreadable); it stays in the state database as it is"
            );
            None
        }
    }
}
