//! Listing snapshots through a cache. Reading every snapshot file means decrypting it; a
//! watched source makes one every few seconds, so the daemon keeps a catalog of their headers
//! (`state::catalog`) and attaches it here. The repository stays the source of truth: a
//! listing names the snapshot files (cheap, no decryption) and the cache decrypts only the
//! names it does not hold, and drops what is gone. Without a cache (tools, tests) every file
//! is read, as before.

use super::backend::{ErrorKind, Key};
use super::snapshot::SnapshotHeader;
use super::{format_rfc3339, FileKind, RepoError, Repository, Result, Snapshot};
use backupd_common::ids::SnapshotId;
use backupd_common::paths::escape_path;
use backupd_common::protocol::SnapshotFilter;
use std::collections::HashSet;
use std::sync::Arc;

/// Whether a snapshot of `paths` holds `path`: one of them is `path` or a directory above it
/// (compared by whole components, so `/home/an` does not hold `/home/ann`).
pub fn holds_path(paths: &[Vec<u8>], path: &[u8]) -> bool {
    let trim = |p: &[u8]| -> Vec<u8> {
        let mut p = p.to_vec();
        while p.len() > 1 && p.ends_with(b"/") {
            p.pop();
        }
        p
    };
    let path = trim(path);
    paths.iter().any(|sp| {
        let sp = trim(sp);
        sp == b"/" || path == sp || (path.starts_with(&sp) && path.get(sp.len()) == Some(&b'/'))
    })
}

/// The filters other than the path: host, every tag, source.
fn narrows(filter: &SnapshotFilter, h: &SnapshotHeader) -> bool {
    filter.host.as_ref().is_none_or(|host| &h.host == host)
        && filter.tags.iter().all(|t| h.tags.contains(t))
        && filter
            .source
            .as_ref()
            .is_none_or(|s| h.source.as_ref() == Some(s))
}

/// Whether a snapshot passes every filter given.
pub fn matches(filter: &SnapshotFilter, h: &SnapshotHeader) -> bool {
    narrows(filter, h) && filter.path.as_ref().is_none_or(|p| holds_path(&h.paths, p))
}

/// Whose snapshots a lookup sees. A user's requests see only the snapshots made for them:
/// another's answers exactly as one that does not exist would, and never shows up in a
/// listing, a `latest` or an error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    OwnedBy(u32),
}

impl Scope {
    pub fn admits(self, owner_uid: Option<u32>) -> bool {
        match self {
            Self::All => true,
            Self::OwnedBy(uid) => owner_uid == Some(uid),
        }
    }
}

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

    /// Resolves a snapshot spec: `latest` is the newest snapshot `filter` accepts (its path
    /// included); a full id or unique prefix names that snapshot whatever the filter says.
    ///
    /// `latest` fails while any snapshot file is unreadable, or when the one it picks is: that
    /// file may be the newest snapshot, and silently restoring an older one in its place is
    /// what a rollback attack wants. A prefix is matched against file names, so an explicit id
    /// works regardless of other files' damage.
    pub fn find_snapshot(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
    ) -> Result<(SnapshotId, Snapshot)> {
        self.find_snapshot_in(spec, filter, Scope::All)
    }

    /// [`Repository::find_snapshot`] among the snapshots `scope` admits.
    pub fn find_snapshot_in(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
        scope: Scope,
    ) -> Result<(SnapshotId, Snapshot)> {
        if spec != "latest" {
            let id = match scope {
                Scope::All => self.resolve_snapshot_name(spec)?,
                // Matched among the caller's own, so a prefix is never ambiguous because of
                // someone else's snapshot.
                Scope::OwnedBy(_) => self.resolve_own_snapshot_name(spec, scope)?,
            };
            let snapshot = self.read_snapshot(&id)?;
            if !scope.admits(snapshot.owner_uid) {
                return Err(RepoError::SnapshotNotFound {
                    prefix: spec.to_owned(),
                });
            }
            return Ok((id, snapshot));
        }
        // Names first: a snapshot written after this listing is in the headers anyway.
        let names = self.snapshot_ids()?;
        let mut headers = self.snapshot_headers()?;
        let known: HashSet<SnapshotId> = headers.iter().map(|(id, _)| *id).collect();
        for id in names.iter().filter(|id| !known.contains(id)) {
            match self.read_snapshot(id) {
                Ok(s) => headers.push((*id, SnapshotHeader::of(&s, None))),
                // Forgotten meanwhile.
                Err(RepoError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(self.latest_unknown(id, &e)),
            }
        }
        headers.retain(|(_, h)| scope.admits(h.owner_uid));
        headers.sort_by_key(|(id, h)| (h.time_ns, *id));
        let Some((id, _)) = headers.iter().rev().find(|(_, h)| matches(filter, h)) else {
            let newest = match scope {
                Scope::OwnedBy(uid) if headers.is_empty() => {
                    format!("the repository has no snapshots made for uid {uid}")
                }
                _ => Self::considered(&headers, filter),
            };
            return Err(RepoError::NoMatchingSnapshot {
                filters: filter.describe(),
                newest,
            });
        };
        match self.read_snapshot(id) {
            Ok(s) => Ok((*id, s)),
            Err(e) => Err(self.latest_unknown(id, &e)),
        }
    }

    fn resolve_own_snapshot_name(&self, spec: &str, scope: Scope) -> Result<SnapshotId> {
        let mut matches = self
            .snapshot_headers()?
            .into_iter()
            .filter(|(id, h)| {
                !spec.is_empty() && scope.admits(h.owner_uid) && id.to_hex().starts_with(spec)
            })
            .map(|(id, _)| id);
        match (matches.next(), matches.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(RepoError::AmbiguousSnapshot {
                prefix: spec.to_owned(),
            }),
            _ => Err(RepoError::SnapshotNotFound {
                prefix: spec.to_owned(),
            }),
        }
    }

    fn latest_unknown(&self, id: &SnapshotId, e: &RepoError) -> RepoError {
        let name = id.to_hex();
        RepoError::LatestUnknown {
            object: self.backend.describe(Key::snapshot(&name)),
            short: id.short(),
            reason: e.reason(),
        }
    }

    /// The newest snapshot passing every filter but the path, for a message saying why none
    /// is `latest`.
    fn considered(headers: &[(SnapshotId, SnapshotHeader)], filter: &SnapshotFilter) -> String {
        if headers.is_empty() {
            return "the repository has no snapshots".to_owned();
        }
        match headers.iter().rev().find(|(_, h)| narrows(filter, h)) {
            Some((id, h)) if filter.path.is_some() => format!(
                "the newest snapshot considered, {} of {} (host {}{}) at {}, does not hold that \
                 path",
                id.short(),
                h.paths
                    .iter()
                    .map(|p| escape_path(p))
                    .collect::<Vec<_>>()
                    .join(" "),
                h.host,
                h.source
                    .as_ref()
                    .map(|s| format!(", source {s}"))
                    .unwrap_or_default(),
                format_rfc3339(h.time_ns)
            ),
            _ => format!(
                "none of the repository's {} matches the host, tag and source filters",
                backupd_common::plural::count(headers.len() as u64, "snapshot")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::holds_path;

    #[test]
    fn a_path_is_held_by_itself_and_the_directories_above_it_by_whole_components() {
        let paths = |ps: &[&str]| ps.iter().map(|p| p.as_bytes().to_vec()).collect::<Vec<_>>();
        let file = b"/home/u/Documents/f.txt";
        assert!(holds_path(&paths(&["/home/u/Documents"]), file));
        assert!(holds_path(&paths(&["/home/u/"]), file));
        assert!(holds_path(&paths(&["/"]), file));
        assert!(holds_path(
            &paths(&["/srv", "/home/u/Documents/f.txt"]),
            file
        ));
        assert!(!holds_path(&paths(&["/home/u/Doc"]), file));
        assert!(!holds_path(&paths(&["/home/u/Documents/f.txt/x"]), file));
        assert!(!holds_path(&paths(&["/srv/other"]), file));
        assert!(!holds_path(&[], file));
    }
}
