//! The snapshot catalog: per repository, the headers of its snapshots ([`SnapshotHeader`]:
//! time, host, paths, tags, parent, stats and the watched source it belongs to) in sled. It is
//! a cache: filled when the daemon writes a snapshot, checked against the repository before
//! every use, rebuilt from it when missing. The repository stays the source of truth.
//!
//! Two trees per repository (by its id, not its registered name, so a name that comes to mean
//! another repository never sees the old one's entries): `catalog.<id>` maps each snapshot id
//! to its time, `catalog.<id>.time` maps (time, id) to the header. Both are written in one
//! transaction. The first answers "which snapshots does the catalog hold" without decoding a
//! header; the second lists in time order and lets the parent lookup read newest first and
//! stop at the first match.
//!
//! The staleness rule is cheap: list the snapshot files' names (no decryption), merge them with
//! the id tree (both in id order), decrypt only the names the catalog lacks (another writer's
//! snapshots, or all of them when the catalog was deleted), and drop entries whose file is
//! gone (forgotten elsewhere). Names are a SHA-256 of the snapshot (format 1: of the file's
//! sealed bytes; format 2: of its plaintext, so that re-sealing under a new key keeps the
//! name), and every read checks it, so a name still present is still the same snapshot.
//!
//! Values start with a version byte; an entry of another version reads as missing and is
//! rebuilt from its file.
//!
//! Blocking: sled and repository I/O.

use super::migrate::SOURCES_TREE;
use super::records::{self, source::SourceRecord};
use super::{State, StateError};
use crate::repo::snapshot::{Snapshot, SnapshotHeader};
use crate::repo::{RepoError, Repository, SnapshotCache};
use backupd_common::ids::SnapshotId;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

/// 2: headers carry the snapshot's owner.
const VERSION: u8 = 2;
/// Upper bound for decoding one header (headers are small; paths and tags bound them).
const ENTRY_LIMIT: usize = 16 * 1024 * 1024;

pub fn tree_name(repo_id: &str) -> String {
    format!("catalog.{repo_id}")
}

fn time_tree_name(repo_id: &str) -> String {
    format!("catalog.{repo_id}.time")
}

/// (time, id), big-endian: byte order is time order.
fn time_key(time_ns: i64, id: &SnapshotId) -> [u8; 40] {
    let mut k = [0u8; 40];
    // Shifted so that times before 1970 sort before later ones.
    k[..8].copy_from_slice(&((time_ns as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&id.0);
    k
}

/// Why a catalog operation failed: the repository (reported), or the cache (the caller falls
/// back to reading the repository).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Cache(StateError),
}

/// One repository's catalog.
#[derive(Debug)]
pub struct Catalog {
    ids: sled::Tree,
    times: sled::Tree,
    state: State,
}

impl Catalog {
    pub fn open(state: &State, repo_id: &str) -> Result<Self, StateError> {
        Ok(Self {
            ids: state.tree(&tree_name(repo_id))?,
            times: state.tree(&time_tree_name(repo_id))?,
            state: state.clone(),
        })
    }

    fn err(&self, source: sled::Error) -> SyncError {
        SyncError::Cache(StateError::Write {
            path: self.state.path().to_owned(),
            source,
        })
    }

    fn encode(header: &SnapshotHeader) -> Vec<u8> {
        let mut out = vec![VERSION];
        // Plain data: always encodes.
        out.extend(
            bincode::serde::encode_to_vec(header, bincode::config::standard())
                .unwrap_or_else(|_| unreachable!("headers always encode")),
        );
        out
    }

    fn decode(bytes: &[u8]) -> Option<SnapshotHeader> {
        match bytes.split_first() {
            Some((&VERSION, rest)) => crate::repo::decode::bounded(rest, ENTRY_LIMIT).ok(),
            _ => None,
        }
    }

    /// The time an id tree entry records, if it is of this version.
    fn time_of(value: &[u8]) -> Option<i64> {
        match value.split_first() {
            Some((&VERSION, rest)) => Some(i64::from_be_bytes(rest.try_into().ok()?)),
            _ => None,
        }
    }

    /// The watched source a snapshot belongs to: the one whose directory is its only path.
    fn source_of(sources: &[SourceRecord], snapshot: &Snapshot) -> Option<String> {
        match snapshot.paths.as_slice() {
            [path] => sources
                .iter()
                .find(|s| &s.path == path)
                .map(|s| s.name.clone()),
            _ => None,
        }
    }

    fn sources(&self) -> Vec<SourceRecord> {
        let Ok(tree) = self.state.tree(SOURCES_TREE) else {
            return Vec::new();
        };
        tree.iter()
            .filter_map(|item| records::decode::<SourceRecord>(&item.ok()?.1).ok())
            .collect()
    }

    fn insert(&self, id: &SnapshotId, header: &SnapshotHeader) -> Result<(), SyncError> {
        let mut time = vec![VERSION];
        time.extend_from_slice(&header.time_ns.to_be_bytes());
        let value = Self::encode(header);
        let tk = time_key(header.time_ns, id);
        let result: Result<(), TransactionError<()>> =
            (&self.ids, &self.times).transaction(|(ids, times)| {
                if let Some(old) = ids.insert(&id.0, time.as_slice())? {
                    // The same snapshot under another time (an entry of another version).
                    if let Some(t) = Self::time_of(&old) {
                        times.remove(&time_key(t, id)[..])?;
                    }
                }
                times.insert(&tk[..], value.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => self.err(e),
            TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
        })
    }

    fn remove(&self, id: &SnapshotId, id_value: &[u8]) -> Result<(), SyncError> {
        if let Some(t) = Self::time_of(id_value) {
            self.times
                .remove(time_key(t, id))
                .map_err(|e| self.err(e))?;
        }
        self.ids.remove(id.0).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Brings the catalog up to date with the repository's snapshot files (see the module
    /// doc); decodes no header it already holds.
    pub fn reconcile(&self, repo: &Repository) -> Result<(), SyncError> {
        if self.times.is_empty() && !self.ids.is_empty() {
            // Half a catalog (one tree deleted by hand): start again from the repository.
            self.ids.clear().map_err(|e| self.err(e))?;
        }
        // Both sides in id order (sled keys sort bytewise), so one merge pass compares them.
        let mut names = repo.snapshot_ids()?;
        names.sort_unstable();
        let mut missing = Vec::new();
        let mut next = names.iter().peekable();
        for item in self.ids.iter() {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let Some(id) = <[u8; 32]>::try_from(key.as_ref()).ok().map(SnapshotId) else {
                self.ids.remove(&key).map_err(|e| self.err(e))?;
                continue;
            };
            while let Some(name) = next.next_if(|n| **n < id) {
                missing.push(*name);
            }
            if next.next_if(|n| **n == id).is_none() {
                // Forgotten by another writer (or by hand): the file is the truth.
                self.remove(&id, &value)?;
            } else if Self::time_of(&value).is_none() {
                missing.push(id);
            }
        }
        missing.extend(next.copied());
        if missing.is_empty() {
            return Ok(());
        }
        let sources = self.sources();
        let mut added = 0usize;
        for id in &missing {
            match repo.read_snapshot(id) {
                Ok(s) => {
                    self.insert(id, &SnapshotHeader::of(&s, Self::source_of(&sources, &s)))?;
                    added += 1;
                }
                // Removed between the listing and the read.
                Err(RepoError::Backend(e))
                    if e.kind == crate::repo::backend::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(snapshot = %id.to_hex(), error = %e, "skipping unreadable snapshot");
                }
            }
        }
        tracing::debug!(repo = %repo.location(), added, "snapshot catalog caught up with the repository");
        Ok(())
    }

    /// Headers in time order (newest first with `rev`), after [`Catalog::reconcile`], passed
    /// to `visit` until it returns false.
    fn walk(
        &self,
        repo: &Repository,
        rev: bool,
        mut visit: impl FnMut(SnapshotId, SnapshotHeader) -> bool,
    ) -> Result<(), SyncError> {
        self.reconcile(repo)?;
        let iter = self.times.iter();
        let iter: Box<dyn Iterator<Item = _>> = if rev {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        for item in iter {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let id = key.get(8..).and_then(|b| <[u8; 32]>::try_from(b).ok());
            let (Some(id), Some(header)) = (id, Self::decode(&value)) else {
                // Only a torn or foreign entry gets here; the next write of it replaces it.
                continue;
            };
            if !visit(SnapshotId(id), header) {
                break;
            }
        }
        Ok(())
    }

    /// Every readable snapshot's header, oldest first.
    pub fn list(&self, repo: &Repository) -> Result<Vec<(SnapshotId, SnapshotHeader)>, SyncError> {
        let mut out = Vec::with_capacity(self.ids.len());
        self.walk(repo, false, |id, h| {
            out.push((id, h));
            true
        })?;
        Ok(out)
    }

    /// The newest snapshot whose header `wanted` accepts.
    pub fn newest(
        &self,
        repo: &Repository,
        wanted: &dyn Fn(&SnapshotHeader) -> bool,
    ) -> Result<Option<(SnapshotId, SnapshotHeader)>, SyncError> {
        let mut found = None;
        self.walk(repo, true, |id, h| {
            if wanted(&h) {
                found = Some((id, h));
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// Every header read from the repository itself, for when the cache fails.
    fn uncached(
        &self,
        repo: &Repository,
        e: StateError,
    ) -> crate::repo::Result<Vec<(SnapshotId, SnapshotHeader)>> {
        tracing::warn!(error = %e, "snapshot catalog unusable; reading every snapshot file");
        let sources = self.sources();
        Ok(repo
            .snapshots()?
            .iter()
            .map(|(id, s)| (*id, SnapshotHeader::of(s, Self::source_of(&sources, s))))
            .collect())
    }
}

impl SnapshotCache for Catalog {
    fn headers(&self, repo: &Repository) -> crate::repo::Result<Vec<(SnapshotId, SnapshotHeader)>> {
        match self.list(repo) {
            Ok(list) => Ok(list),
            Err(SyncError::Repo(e)) => Err(e),
            // The cache failing never fails a listing: read the repository itself.
            Err(SyncError::Cache(e)) => self.uncached(repo, e),
        }
    }

    fn newest(
        &self,
        repo: &Repository,
        wanted: &dyn Fn(&SnapshotHeader) -> bool,
    ) -> crate::repo::Result<Option<(SnapshotId, SnapshotHeader)>> {
        match Catalog::newest(self, repo, wanted) {
            Ok(found) => Ok(found),
            Err(SyncError::Repo(e)) => Err(e),
            Err(SyncError::Cache(e)) => Ok(self
                .uncached(repo, e)?
                .into_iter()
                .rev()
                .find(|(_, h)| wanted(h))),
        }
    }

    fn written(&self, id: &SnapshotId, snapshot: &Snapshot) {
        let header = SnapshotHeader::of(snapshot, Self::source_of(&self.sources(), snapshot));
        // A failed write only costs a decryption at the next listing.
        if let Err(e) = self.insert(id, &header) {
            tracing::warn!(snapshot = %id.to_hex(), error = %e, "cannot add the snapshot to the catalog");
        }
    }

    fn removed(&self, id: &SnapshotId) {
        let value = match self.ids.get(id.0) {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(snapshot = %id.to_hex(), error = %e, "cannot drop the snapshot from the catalog");
                return;
            }
        };
        if let Err(e) = self.remove(id, &value) {
            tracing::warn!(snapshot = %id.to_hex(), error = %e, "cannot drop the snapshot from the catalog");
        }
    }
}

/// Attaches the catalog of `repo` (by its id) to the open handle; without one (sled failing)
/// the handle lists snapshots by reading every file, as it did before catalogs existed.
pub fn attach(state: &State, repo: &Repository) {
    match Catalog::open(state, &repo.config().id) {
        Ok(catalog) => repo.attach_snapshot_cache(std::sync::Arc::new(catalog)),
        Err(e) => {
            tracing::warn!(repo = %repo.location(), error = %e, "no snapshot catalog for this repository; listings read every snapshot file")
        }
    }
}

/// Drops the catalog of the repository with id `repo_id` (it was unregistered). Only cached
/// headers go; the repository rebuilds them if it is registered again.
pub fn forget(state: &State, repo_id: &str) -> Result<(), StateError> {
    for name in [tree_name(repo_id), time_tree_name(repo_id)] {
        state
            .tree(&name)?
            .clear()
            .map_err(|source| StateError::Write {
                path: state.path().to_owned(),
                source,
            })?;
    }
    Ok(())
}
