//! Listing snapshots through a cache. Reading every snapshot file means decrypting it; a
//! watched source makes one every few seconds, so the daemon keeps a catalog of their headers
//! (`state::catalog`) and attaches it here. The repository stays the source of truth: a
//! listing names the snapshot files (cheap, no decryption) and the cache decrypts only the
//! names it does not hold, and drops what is gone. Without a cache (tools, tests) every file
//! is read, as before.

use super::snapshot::SnapshotHeader;
use super::{FileKind, Repository, Result, Snapshot};
use backupd_common::ids::SnapshotId;
use std::sync::Arc;

/// A cache of a repository's snapshot headers, told about every snapshot written or removed
/// through this handle.
pub trait SnapshotCache: Send + Sync + std::fmt::Debug {
    /// Every readable snapshot's header, oldest first, checked against the repository's
    /// snapshot files.
    fn headers(&self, repo: &Repository) -> Result<Vec<(SnapshotId, SnapshotHeader)>>;
    /// The newest snapshot whose header `wanted` accepts, checked against the repository.
    fn newest(
        &self,
        repo: &Repository,
        wanted: &dyn Fn(&SnapshotHeader) -> bool,
    ) -> Result<Option<(SnapshotId, SnapshotHeader)>>;
    fn written(&self, id: &SnapshotId, snapshot: &Snapshot);
    fn removed(&self, id: &SnapshotId);
}

impl Repository {
    /// Attaches the daemon's catalog; a second call is ignored (one catalog per handle).
    pub fn attach_snapshot_cache(&self, cache: Arc<dyn SnapshotCache>) {
        let _ = self.catalog.set(cache);
    }

    /// The snapshot files' names as ids, without reading them.
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list(FileKind::Snapshot)?
            .iter()
            .filter_map(|n| SnapshotId::from_hex(n))
            .collect())
    }

    /// Every readable snapshot's header, oldest first: from the catalog when one is attached,
    /// else by reading every snapshot file (an unreadable one is skipped with a warning, as in
    /// [`Repository::snapshots`]).
    pub fn snapshot_headers(&self) -> Result<Vec<(SnapshotId, SnapshotHeader)>> {
        match self.catalog.get() {
            Some(cache) => cache.headers(self),
            None => Ok(self
                .snapshots()?
                .iter()
                .map(|(id, s)| (*id, SnapshotHeader::of(s, None)))
                .collect()),
        }
    }

    /// The newest snapshot whose header `wanted` accepts (a backup's parent): from the
    /// catalog, newest first, when one is attached.
    pub fn newest_snapshot_header(
        &self,
        wanted: &dyn Fn(&SnapshotHeader) -> bool,
    ) -> Result<Option<(SnapshotId, SnapshotHeader)>> {
        match self.catalog.get() {
            Some(cache) => cache.newest(self, wanted),
            None => Ok(self
                .snapshot_headers()?
                .into_iter()
                .rev()
                .find(|(_, h)| wanted(h))),
        }
    }
}
