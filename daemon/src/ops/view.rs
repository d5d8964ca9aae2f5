//! Engine results as protocol views, and protocol paths (raw bytes) as file system paths.

use crate::repo::snapshot::SnapshotStats;
use backupd_common::protocol::SnapshotStatsView;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

pub fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

pub fn stats_view(s: &SnapshotStats) -> SnapshotStatsView {
    SnapshotStatsView {
        files: s.files,
        dirs: s.dirs,
        other: s.other,
        files_read: s.files_read,
        bytes_total: s.bytes_total,
        bytes_read: s.bytes_read,
        bytes_added: s.bytes_added,
        bytes_stored: s.bytes_stored,
        skipped: s.skipped,
        changed_during_read: s.changed_during_read,
        duration_ms: s.duration_ms,
    }
}
