//! The snapshot catalog: per repository, a sled tree `catalog.<repository id>` mapping each
//! snapshot id to its header ([`SnapshotHeader`]: time, host, paths, tags, parent, stats and
//! the watched source it belongs to). It is a cache: filled when the daemon writes a snapshot,
//! checked against the repository on every listing, rebuilt from it when missing. The
//! repository stays the source of truth.
//!
//! The staleness rule is cheap: list the snapshot files' names (no decryption), decrypt only
//! the names the catalog does not hold (another writer's snapshots, or all of them when the
//! catalog was deleted), and drop entries whose file is gone (forgotten elsewhere). Names are
//! the SHA-256 of the files' bytes, so a name still present is still the same snapshot.
//!
//! Values are one version byte then bincode; an entry of another version reads as missing and
//! is rebuilt from its file. Keyed by the repository's id (not its registered name), so a
//! name that comes to mean another repository never sees the old one's entries.
//!
//! Blocking: sled and repository I/O.

use super::migrate::SOURCES_TREE;
use super::records::{self, source::SourceRecord};
use super::{State, StateError};
use crate::repo::snapshot::{Snapshot, SnapshotHeader};
use crate::repo::{RepoError, Repository, SnapshotCache};
use backupd_common::ids::SnapshotId;
use std::collections::HashSet;

const VERSION: u8 = 1;
/// Upper bound for decoding one entry (headers are small; paths and tags bound them).
const ENTRY_LIMIT: usize = 16 * 1024 * 1024;

pub fn tree_name(repo_id: &str) -> String {
    format!("catalog.{repo_id}")
}

/// Why a catalog listing failed: the repository (reported), or the cache (the listing falls
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
    tree: sled::Tree,
    state: State,
}

impl Catalog {
    pub fn open(state: &State, repo_id: &str) -> Result<Self, StateError> {
        Ok(Self {
            tree: state.tree(&tree_name(repo_id))?,
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
        self.tree
            .insert(id.0, Self::encode(header))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every readable snapshot's header, oldest first, after bringing the catalog up to date
    /// with the repository's snapshot files (see the module doc).
    pub fn sync(&self, repo: &Repository) -> Result<Vec<(SnapshotId, SnapshotHeader)>, SyncError> {
        let names: HashSet<SnapshotId> = repo.snapshot_ids()?.into_iter().collect();
        let mut out = Vec::with_capacity(names.len());
        let mut seen = HashSet::with_capacity(names.len());
        for item in self.tree.iter() {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let Some(id) = <[u8; 32]>::try_from(key.as_ref()).ok().map(SnapshotId) else {
                self.tree.remove(&key).map_err(|e| self.err(e))?;
                continue;
            };
            if !names.contains(&id) {
                // Forgotten by another writer (or by hand): the file is the truth.
                self.tree.remove(&key).map_err(|e| self.err(e))?;
                continue;
            }
            if let Some(header) = Self::decode(&value) {
                seen.insert(id);
                out.push((id, header));
            }
        }
        let missing: Vec<SnapshotId> = names.difference(&seen).copied().collect();
        if !missing.is_empty() {
            let sources = self.sources();
            let mut added = 0usize;
            for id in &missing {
                match repo.read_snapshot(id) {
                    Ok(s) => {
                        let header = SnapshotHeader::of(&s, Self::source_of(&sources, &s));
                        self.insert(id, &header)?;
                        out.push((*id, header));
                        added += 1;
                    }
                    // Removed between the listing and the read.
                    Err(RepoError::Backend(e)) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(snapshot = %id.to_hex(), error = %e, "skipping unreadable snapshot");
                    }
                }
            }
            tracing::debug!(
                repo = %repo.path().display(),
                added,
                "snapshot catalog caught up with the repository"
            );
        }
        out.sort_by_key(|(id, h)| (h.time_ns, *id));
        Ok(out)
    }
}

impl SnapshotCache for Catalog {
    fn headers(&self, repo: &Repository) -> crate::repo::Result<Vec<(SnapshotId, SnapshotHeader)>> {
        match self.sync(repo) {
            Ok(list) => Ok(list),
            Err(SyncError::Repo(e)) => Err(e),
            // The cache failing never fails a listing: read the repository itself.
            Err(SyncError::Cache(e)) => {
                tracing::warn!(error = %e, "snapshot catalog unusable; reading every snapshot file");
                Ok(repo
                    .snapshots()?
                    .iter()
                    .map(|(id, s)| {
                        (
                            *id,
                            SnapshotHeader::of(s, Self::source_of(&self.sources(), s)),
                        )
                    })
                    .collect())
            }
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
        if let Err(e) = self.tree.remove(id.0) {
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
            tracing::warn!(repo = %repo.path().display(), error = %e, "no snapshot catalog for this repository; listings read every snapshot file")
        }
    }
}
