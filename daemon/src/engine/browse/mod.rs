//! Browsing snapshots without restoring them: `ls` and `cat` ([`walk`]), `find` ([`find`]: the
//! request; [`search`]: the memoized search over many snapshots) and `diff` ([`diff`]).
//!
//! A [`View`] is a repository opened for reading under a shared lock (as a restore takes it, so
//! a prune cannot remove packs under the walk), seeing only the snapshots its [`Scope`] admits.
//! The walks themselves run over the [`Trees`] trait, so their logic is tested with trees in
//! memory. Everything iterates (an explicit stack or an ordered frontier), never recurses over
//! the repository's depth; every answer is bounded by a [`Budget`] and says when it was cut.
//! Tree names are data: a name that cannot be a file name (`..`, `/`-holding, empty) is left
//! out and counted, never joined into a path.
//!
//! Blocking: callers run it on a blocking thread. Spawns nothing; stops at the next tree read
//! once `cancel` fires. Never writes to the repository (other than its lock file).

mod diff;
mod find;
mod search;
mod walk;

pub use diff::diff;
pub use find::find;
pub use walk::{cat, ls};

use super::EngineError;
use crate::repo::lock::{LockGuard, LockMode};
use crate::repo::snapshot::Snapshot;
use crate::repo::snapshots::matches;
use crate::repo::tree::{is_safe_name, Node, NodeKind, Tree};
use crate::repo::{RepoError, Repository, Scope};
use backupd_common::ids::{BlobId, SnapshotId};
use backupd_common::paths::escape_path;
use backupd_common::protocol::{EntryInfo, EntryKind, SnapshotFilter};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default and largest numbers of entries in a reply.
pub const LS_DEFAULT: usize = 10_000;
pub const FIND_DEFAULT: usize = 1_000;
pub const DIFF_DEFAULT: usize = 10_000;
pub const MAX_LIMIT: usize = 100_000;
/// Bytes of paths and names one reply may carry: well under a frame (16 MiB), whatever the
/// names' lengths.
pub const REPLY_BYTES: usize = 8 << 20;
/// Deepest directory level walked, as deep as a backup goes.
pub const MAX_DEPTH: usize = super::backup::MAX_DEPTH;
/// How long a request waits for a conflicting (exclusive) lock: someone is waiting for the
/// answer, so not the half hour a job waits.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The limit a request asked for (0: `default`), at most [`MAX_LIMIT`].
pub fn limit(asked: u32, default: usize) -> usize {
    match asked {
        0 => default,
        n => (n as usize).min(MAX_LIMIT),
    }
}

/// How much a reply may still carry: entries and bytes.
#[derive(Debug)]
pub struct Budget {
    entries: usize,
    bytes: usize,
    pub truncated: bool,
}

impl Budget {
    pub fn new(entries: usize) -> Self {
        Self {
            entries,
            bytes: REPLY_BYTES,
            truncated: false,
        }
    }

    /// Takes room for one entry of about `bytes`; `false` (and `truncated`) when there is none.
    pub fn take(&mut self, bytes: usize) -> bool {
        if self.entries == 0 || bytes > self.bytes {
            self.truncated = true;
            return false;
        }
        self.entries -= 1;
        self.bytes -= bytes;
        true
    }
}

/// Where the walks read trees from: the repository, or memory in tests.
pub trait Trees {
    /// The tree blob `id`, its nodes sorted by name.
    fn load(&mut self, id: &BlobId) -> Result<Tree, EngineError>;
}

/// A repository opened for browsing: shared lock held, index fresh, snapshots limited to
/// `scope`.
pub struct View<'a> {
    repo: &'a Repository,
    scope: Scope,
    cancel: &'a CancellationToken,
    /// Tree blobs decoded so far.
    pub trees_read: u64,
    _lock: LockGuard,
}

impl<'a> View<'a> {
    pub fn open(
        repo: &'a Repository,
        scope: Scope,
        purpose: &str,
        cancel: &'a CancellationToken,
    ) -> Result<Self, EngineError> {
        let lock = repo.lock_waiting(LockMode::ReadOnly, purpose, LOCK_WAIT, cancel)?;
        repo.refresh_index()?;
        Ok(Self {
            repo,
            scope,
            cancel,
            trees_read: 0,
            _lock: lock,
        })
    }

    pub fn repo(&self) -> &Repository {
        self.repo
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn check_cancel(&self) -> Result<(), EngineError> {
        if self.cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        Ok(())
    }

    /// The snapshot `spec` names (`latest`: the newest `filter` accepts that holds `path`, a
    /// normalized absolute path: one of its backed-up paths is it or above it).
    /// A caller limited to their own snapshots learns nothing of others': any failure other
    /// than "none of yours matches" reads as not found.
    pub fn snapshot(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
        path: Option<&[u8]>,
    ) -> Result<(SnapshotId, Snapshot), EngineError> {
        // Every snapshot holds the root.
        let filter = SnapshotFilter {
            path: path.filter(|p| *p != b"/").map(<[u8]>::to_vec),
            ..filter.clone()
        };
        let found = self.repo.find_snapshot_in(spec, &filter, self.scope);
        if let (Err(RepoError::NoMatchingSnapshot { .. }), "latest", Some(p)) =
            (&found, spec, &filter.path)
        {
            if let Some(below) = self.newest_below(p, &filter)? {
                return Ok(below);
            }
        }
        match found {
            Ok(found) => Ok(found),
            Err(e) if self.scope == Scope::All => Err(e.into()),
            Err(
                e @ (RepoError::NoMatchingSnapshot { .. }
                | RepoError::AmbiguousSnapshot { .. }
                | RepoError::SnapshotNotFound { .. }),
            ) => Err(e.into()),
            Err(_) => Err(RepoError::SnapshotNotFound {
                prefix: spec.to_owned(),
            }
            .into()),
        }
    }
}

impl View<'_> {
    /// `latest` for a directory above what was backed up (`ls latest:/home` when `/home/ann`
    /// was): the newest snapshot the filter and scope accept with a backed-up path below it.
    fn newest_below(
        &self,
        path: &[u8],
        filter: &SnapshotFilter,
    ) -> Result<Option<(SnapshotId, Snapshot)>, EngineError> {
        let mut prefix = path.to_vec();
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        let others = SnapshotFilter {
            path: None,
            ..filter.clone()
        };
        let newest = self
            .repo
            .snapshot_headers()?
            .into_iter()
            .filter(|(_, h)| {
                self.scope.admits(h.owner_uid)
                    && matches(&others, h)
                    && h.paths.iter().any(|p| p.starts_with(&prefix))
            })
            .max_by_key(|(id, h)| (h.time_ns, *id));
        match newest {
            Some((id, _)) => Ok(Some((id, self.repo.read_snapshot(&id)?))),
            None => Ok(None),
        }
    }
}

/// A repository read as it is, for callers that hold its lock themselves (recovery plans).
impl Trees for &Repository {
    fn load(&mut self, id: &BlobId) -> Result<Tree, EngineError> {
        let mut tree = self.load_tree(id)?;
        tree.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tree)
    }
}

impl Trees for View<'_> {
    fn load(&mut self, id: &BlobId) -> Result<Tree, EngineError> {
        self.check_cancel()?;
        let mut tree = self.repo.load_tree(id)?;
        self.trees_read += 1;
        // Written sorted; sorted again so that a damaged tree cannot break the lookups.
        tree.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tree)
    }
}

/// The components of an absolute path inside a snapshot (`.` and empty ones dropped).
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>, EngineError> {
    if !path.starts_with(b"/") {
        return Err(EngineError::InvalidArgument(format!(
            "{}: a path inside a snapshot must be absolute",
            escape_path(path)
        )));
    }
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(EngineError::InvalidArgument(format!(
                    "{}: `..` is not allowed in a path inside a snapshot",
                    escape_path(path)
                )))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `/a/b` from components.
pub fn join_path(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

/// `dir/name` (`dir` absolute, `/` for the root).
pub fn child_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// What a path inside a snapshot names.
#[derive(Debug)]
pub enum Located {
    /// A directory: its tree (the root, or a directory node's subtree).
    Dir { tree: BlobId, node: Option<Node> },
    /// Anything else.
    Other(Node),
}

/// Follows `path` from the root tree `root`. `None` when the path is not in the snapshot.
pub fn locate(
    trees: &mut dyn Trees,
    root: BlobId,
    comps: &[&[u8]],
) -> Result<Option<Located>, EngineError> {
    let mut here = Located::Dir {
        tree: root,
        node: None,
    };
    for name in comps {
        let Located::Dir { tree, .. } = here else {
            return Ok(None);
        };
        let tree = trees.load(&tree)?;
        let Some(node) = tree.find(name).cloned() else {
            return Ok(None);
        };
        here = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => Located::Dir {
                tree: sub,
                node: Some(node),
            },
            _ => Located::Other(node),
        };
    }
    Ok(Some(here))
}

/// The "not in snapshot" error for `path`.
pub fn not_in(path: &[u8], snapshot: &SnapshotId) -> EngineError {
    EngineError::NotInSnapshot {
        path: escape_path(path),
        snapshot: snapshot.short(),
    }
}

pub fn entry_kind(kind: NodeKind) -> EntryKind {
    match kind {
        NodeKind::File => EntryKind::File,
        NodeKind::Dir => EntryKind::Dir,
        NodeKind::Symlink => EntryKind::Symlink,
        NodeKind::Fifo => EntryKind::Fifo,
        NodeKind::CharDevice => EntryKind::CharDevice,
        NodeKind::BlockDevice => EntryKind::BlockDevice,
        NodeKind::Socket => EntryKind::Socket,
    }
}

/// A node at `path` as the protocol shows it.
pub fn entry_info(path: Vec<u8>, node: &Node) -> EntryInfo {
    EntryInfo {
        path,
        kind: entry_kind(node.kind),
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        user: node.user.clone(),
        group: node.group.clone(),
        size: node.size,
        mtime_ns: node.mtime_ns,
        target: (node.kind == NodeKind::Symlink).then(|| node.target.clone()),
        rdev: node.rdev,
    }
}

/// The nodes of `tree` whose names can be file names, and how many could not.
pub fn safe_nodes(tree: Tree) -> (Vec<Node>, u64) {
    let total = tree.nodes.len();
    let nodes: Vec<Node> = tree
        .nodes
        .into_iter()
        .filter(|n| is_safe_name(&n.name))
        .collect();
    let unsafe_names = (total - nodes.len()) as u64;
    (nodes, unsafe_names)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Trees in memory for the walks' tests.
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct MemTrees {
        pub trees: HashMap<BlobId, Tree>,
        pub loads: u64,
        next: u32,
    }

    impl MemTrees {
        /// Stores a tree of `nodes` (sorted here) and returns its id.
        pub fn put(&mut self, mut nodes: Vec<Node>) -> BlobId {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            let tree = Tree { version: 1, nodes };
            if let Some((id, _)) = self.trees.iter().find(|(_, t)| **t == tree) {
                return *id;
            }
            self.next += 1;
            // Tree ids start with 0xee, unlike the content ids of `file` (a repeated byte).
            let mut id = BlobId([0xee; 32]);
            id.0[1..5].copy_from_slice(&self.next.to_le_bytes());
            self.trees.insert(id, tree);
            id
        }
    }

    impl Trees for MemTrees {
        fn load(&mut self, id: &BlobId) -> Result<Tree, EngineError> {
            self.loads += 1;
            self.trees
                .get(id)
                .cloned()
                .ok_or(EngineError::Repo(RepoError::MissingBlob { id: *id }))
        }
    }

    pub fn file(name: &str, content: u8, mtime_ns: i64) -> Node {
        let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::File);
        n.content = vec![BlobId([content; 32])];
        n.size = u64::from(content);
        n.mtime_ns = mtime_ns;
        n.mode = 0o644;
        n
    }

    /// A chain of `depth` directories `d/d/d/...`, each holding a file `x`; its root tree.
    pub fn chain(t: &mut MemTrees, depth: usize, content: u8) -> BlobId {
        let mut below = t.put(vec![file("x", content, 0)]);
        for _ in 0..depth {
            below = t.put(vec![dir("d", below), file("x", content, 0)]);
        }
        below
    }

    pub fn dir(name: &str, tree: BlobId) -> Node {
        let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
        n.subtree = Some(tree);
        n.mode = 0o755;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_a_snapshot_are_absolute_and_never_climb() {
        assert_eq!(
            components(b"/a//b/./c/").expect("ok"),
            [b"a" as &[u8], b"b", b"c"]
        );
        assert!(components(b"/").expect("ok").is_empty());
        assert!(components(b"a/b").is_err());
        assert!(components(b"/a/../etc").is_err());
        assert_eq!(join_path(&[b"a", b"b"]), b"/a/b");
        assert_eq!(child_path(b"/", b"x"), b"/x");
        assert_eq!(child_path(b"/a", b"x"), b"/a/x");
    }

    #[test]
    fn a_budget_stops_at_its_entries_or_bytes() {
        let mut b = Budget::new(2);
        assert!(b.take(10) && b.take(10));
        assert!(!b.take(1) && b.truncated);
        let mut b = Budget::new(10);
        assert!(!b.take(REPLY_BYTES + 1) && b.truncated);
    }
}
