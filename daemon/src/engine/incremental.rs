//! Incremental backup: the new snapshot is the parent snapshot's tree with only the changed
//! paths re-examined. Nothing else is listed or read: the directories on the way from `/` to a
//! changed path are re-stat'ed and their trees rebuilt from the parent's trees, every other
//! subtree is reused by id. The snapshot is complete (it restores the whole source).
//!
//! Totals (files, dirs, bytes) are the parent's plus what was visited minus what the visited
//! entries replaced, so an incremental snapshot reports the same totals as a full walk would.

use super::backup::Session;
use super::dirfd::DirFd;
use super::fsmeta;
use super::sources::PrefixTree;
use super::EngineError;
use crate::repo::tree::{Node, NodeKind, Tree};
use crate::repo::Repository;
use backupd_common::ids::BlobId;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What to do with one changed path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// Re-examine the entry: a file is re-stat'ed (and read if it changed), a vanished entry is
    /// removed, a directory gets its own metadata refreshed and keeps its children from the
    /// parent unless they are listed too.
    Entry,
    /// Walk the entry completely (a directory created or moved in).
    Tree,
}

/// Changed paths as a trie of names from `/`.
#[derive(Debug, Default)]
pub struct Dirty {
    pub children: BTreeMap<Vec<u8>, Dirty>,
    pub mark: Option<Change>,
}

impl Dirty {
    /// Builds the trie; paths outside `sources` are left out (nothing else is in the snapshot).
    pub fn build(changes: &[(PathBuf, Change)], sources: &[PathBuf]) -> Self {
        let mut root = Dirty::default();
        'paths: for (path, change) in changes {
            if !sources.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            let mut node = &mut root;
            for component in path.components() {
                match component {
                    Component::RootDir => {}
                    Component::Normal(name) => {
                        node = node.children.entry(name.as_bytes().to_vec()).or_default();
                    }
                    // Changes come from the watcher as absolute, normal paths.
                    _ => continue 'paths,
                }
            }
            node.mark = node.mark.max(Some(*change));
        }
        root
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty() && self.mark.is_none()
    }
}

/// Counts of a part of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
}

/// What `node` (and, for a directory, everything under it) counts in a snapshot's totals.
/// Iterative: a snapshot tree may be of any depth.
pub fn node_totals(repo: &Repository, node: &Node) -> Totals {
    let mut t = Totals::default();
    let mut pending: Vec<BlobId> = Vec::new();
    let mut count = |n: &Node, pending: &mut Vec<BlobId>| match n.kind {
        NodeKind::File => {
            t.files += 1;
            t.bytes += n.size;
        }
        NodeKind::Dir => {
            t.dirs += 1;
            pending.extend(n.subtree);
        }
        _ => t.other += 1,
    };
    count(node, &mut pending);
    while let Some(id) = pending.pop() {
        match repo.load_tree(&id) {
            Ok(tree) => {
                for child in &tree.nodes {
                    count(child, &mut pending);
                }
            }
            // Only the totals suffer; the snapshot itself is written from the file system.
            Err(e) => {
                tracing::warn!(tree = %id.short(), error = %e, "cannot count a replaced subtree")
            }
        }
    }
    t
}

/// Replaces (or removes, or inserts) the node called `name` in a name-sorted list.
fn replace(nodes: &mut Vec<Node>, name: &[u8], new: Option<Node>) {
    match (nodes.binary_search_by(|n| n.name.as_slice().cmp(name)), new) {
        (Ok(i), Some(n)) => nodes[i] = n,
        (Ok(i), None) => {
            nodes.remove(i);
        }
        (Err(i), Some(n)) => nodes.insert(i, n),
        (Err(_), None) => {}
    }
}

impl Session<'_> {
    /// Patches the tree of `path`, a directory on the way from `/` to the sources.
    pub(super) fn patch_prefix(
        &self,
        prefix: &PrefixTree,
        path: &Path,
        parent: &Tree,
        dirty: &Dirty,
    ) -> Result<BlobId, EngineError> {
        let mut nodes = parent.nodes.clone();
        let mut dir: Option<DirFd> = None;
        for (name, child) in &prefix.children {
            let Some(d) = dirty.children.get(name) else {
                continue;
            };
            let child_path = path.join(OsStr::from_bytes(name));
            let old = parent.find(name);
            let new = if child.is_source {
                if dir.is_none() {
                    dir = Some(self.open_prefix(path)?);
                }
                let Some(dir) = &dir else { continue };
                let new = self.patch_entry(dir, &child_path, name.clone(), old, d, None, 0)?;
                // A source that vanished is an error, as in a full backup: never a snapshot
                // that silently lacks it.
                if new.is_none() && std::fs::symlink_metadata(&child_path).is_err() {
                    return Err(EngineError::Source {
                        path: child_path.display().to_string(),
                        reason: "it no longer exists".into(),
                    });
                }
                new
            } else {
                match old
                    .and_then(|n| n.subtree)
                    .map(|id| self.repo.load_tree(&id))
                {
                    Some(Ok(tree)) => {
                        let mut node = self.prefix_node(&child_path, name.clone(), old)?;
                        node.subtree = Some(self.patch_prefix(child, &child_path, &tree, d)?);
                        Some(node)
                    }
                    // The parent has no usable tree here: build this part in full.
                    _ => {
                        let mut node = self.prefix_node(&child_path, name.clone(), old)?;
                        node.subtree = Some(self.backup_prefix(child, &child_path, None)?);
                        Some(node)
                    }
                }
            };
            replace(&mut nodes, name, new);
        }
        self.store_tree(nodes)
    }

    /// Patches the tree of `/` when `/` itself is the source.
    pub(super) fn patch_root(&self, parent: &Tree, dirty: &Dirty) -> Result<BlobId, EngineError> {
        let (root, st) = self.open_root()?;
        if dirty.mark == Some(Change::Tree) {
            return self.backup_dir(&root, Path::new("/"), st.st_dev, None, 0);
        }
        self.patch_dir(&root, Path::new("/"), parent, dirty, st.st_dev, 0)
    }

    /// Re-examines `name` in the open directory `dir` (see [`Change`]).
    #[allow(clippy::too_many_arguments)]
    fn patch_entry(
        &self,
        dir: &DirFd,
        path: &Path,
        name: Vec<u8>,
        old: Option<&Node>,
        d: &Dirty,
        parent_dev: Option<u64>,
        depth: usize,
    ) -> Result<Option<Node>, EngineError> {
        let patchable_dir = old.filter(|o| o.kind == NodeKind::Dir && o.subtree.is_some());
        let Some(old_dir) = patchable_dir.filter(|_| d.mark != Some(Change::Tree)) else {
            // A file, something new, or a directory to walk in full: the ordinary path, which
            // still reuses unchanged files from `old`.
            if let Some(o) = old {
                self.replaced(node_totals(self.repo, o));
            }
            return self.backup_entry(dir, path, name, old, parent_dev, depth);
        };
        self.check_cancel()?;
        let gone = |s: &Self| {
            s.replaced(node_totals(s.repo, old_dir));
            Ok(None)
        };
        if self.excludes.excludes(path, &name) {
            return gone(self);
        }
        let st = match dir.stat_at(&name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return gone(self),
            Err(e) => {
                self.skip(path, e.to_string());
                return gone(self);
            }
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let one_fs_out =
            self.excludes.one_file_system && parent_dev.is_some_and(|dev| dev != st.st_dev);
        if !is_dir || one_fs_out {
            // No longer a directory (or now another file system's): examine it in full.
            self.replaced(node_totals(self.repo, old_dir));
            return self.backup_entry(dir, path, name, old, parent_dev, depth);
        }
        let Some(sub) = self.open_subdir(dir, path, &name, &st, depth) else {
            return gone(self);
        };
        let old_tree = old_dir.subtree.map(|id| (id, self.repo.load_tree(&id)));
        let (old_id, old_tree) = match old_tree {
            Some((id, Ok(tree))) if !self.excludes.is_tagged_cache(&sub) => (id, tree),
            // It became a cache directory, or its old tree is unreadable: examine it in full.
            _ => {
                self.replaced(node_totals(self.repo, old_dir));
                return self.backup_entry(dir, path, name, old, parent_dev, depth);
            }
        };
        let mut node = fsmeta::capture(&st, name, self.names());
        super::backup::keep_parent_atime(&mut node, Some(old_dir));
        match fsmeta::xattrs_fd(sub.file()) {
            Ok(x) => node.xattrs = x,
            Err(e) => {
                self.skip(path, format!("cannot read xattrs: {e}"));
                return gone(self);
            }
        }
        // The directory itself is counted once, as it was.
        self.count_dir();
        self.replaced(Totals {
            dirs: 1,
            ..Default::default()
        });
        node.subtree = Some(if d.children.is_empty() {
            old_id
        } else {
            self.patch_dir(&sub, path, &old_tree, d, st.st_dev, depth + 1)?
        });
        Ok(Some(node))
    }

    fn patch_dir(
        &self,
        dir: &DirFd,
        path: &Path,
        parent: &Tree,
        d: &Dirty,
        dev: u64,
        depth: usize,
    ) -> Result<BlobId, EngineError> {
        let changed = d
            .children
            .par_iter()
            .map(|(name, cd)| {
                let child = path.join(OsStr::from_bytes(name));
                let old = parent.find(name);
                let new = self.patch_entry(dir, &child, name.clone(), old, cd, Some(dev), depth)?;
                Ok((name, new))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let mut nodes = parent.nodes.clone();
        for (name, new) in changed {
            replace(&mut nodes, name, new);
        }
        self.store_tree(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_trie_keeps_the_strongest_mark_and_drops_paths_outside_the_sources() {
        let d = Dirty::build(
            &[
                (PathBuf::from("/src/a/f"), Change::Entry),
                (PathBuf::from("/src/a"), Change::Entry),
                (PathBuf::from("/src/a"), Change::Tree),
                (PathBuf::from("/elsewhere/x"), Change::Tree),
                (PathBuf::from("/src/../etc"), Change::Tree),
            ],
            &[PathBuf::from("/src")],
        );
        assert_eq!(d.children.len(), 1);
        let a = &d.children[b"src".as_slice()].children[b"a".as_slice()];
        assert_eq!(a.mark, Some(Change::Tree));
        assert_eq!(a.children[b"f".as_slice()].mark, Some(Change::Entry));
    }

    #[test]
    fn replace_inserts_updates_and_removes_in_order() {
        let mut nodes = vec![
            Node::new(b"a".to_vec(), NodeKind::File),
            Node::new(b"c".to_vec(), NodeKind::File),
        ];
        replace(
            &mut nodes,
            b"b",
            Some(Node::new(b"b".to_vec(), NodeKind::Dir)),
        );
        replace(&mut nodes, b"a", None);
        replace(&mut nodes, b"z", None);
        let names: Vec<&[u8]> = nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(names, [b"b".as_slice(), b"c".as_slice()]);
        assert_eq!(nodes[0].kind, NodeKind::Dir);
    }
}
