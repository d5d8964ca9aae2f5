//! The search behind `find`: which of many snapshots hold entries matching a glob, and which
//! versions of them, over the [`Trees`] trait (tested in memory, `search/tests.rs`).
//!
//! Snapshots of a slowly changing tree share nearly all their tree blobs, so the search works
//! per tree id, never per snapshot:
//!
//! 1. (Name patterns.) Bottom up over every distinct tree id reachable from the snapshots'
//!    roots, from an explicit stack: each tree is decoded once, and its [`Summary`] (the
//!    entries whose name matches, and the subdirectories with a match somewhere below) is
//!    memoized by id. A tree with no match below it is remembered as barren and never entered
//!    again, whichever snapshot or path it turns up under.
//! 2. Top down over (path, tree id) pairs in path order, each carrying the set of snapshots
//!    (a bit set) that hold that tree at that path. An unchanged subtree is one pair for all
//!    the snapshots, so 1,000 snapshots cost about as much as one plus what changed.
//!
//! Path patterns (holding `/`) depend on where a tree sits, so step 1 is skipped: step 2
//! decodes each distinct (path, tree id) pair once and tests the full paths.
//!
//! Memory is bounded: results past the limit (or the reply's byte budget) are dropped, largest
//! path first, and the memo refuses patterns that match more than [`MAX_CANDIDATES`] entries.

use super::{child_path, entry_kind, safe_nodes, Trees, MAX_DEPTH, REPLY_BYTES};
use crate::engine::EngineError;
use crate::repo::tree::{Node, NodeKind};
use backupd_common::ids::BlobId;
use backupd_common::protocol::{EntryKind, FoundPath, FoundVersion};
use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Matching entries the memo holds at most (about 100 bytes each).
pub const MAX_CANDIDATES: usize = 2_000_000;

/// A compiled `find` pattern.
pub struct Pattern {
    matcher: GlobMatcher,
    /// Matches whole paths (the pattern holds `/`), else names.
    paths: bool,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Self, EngineError> {
        if text.is_empty() {
            return Err(EngineError::InvalidArgument(
                "an empty pattern matches nothing; give a glob such as '*.conf'".into(),
            ));
        }
        let paths = text.contains('/');
        let glob = if paths && !text.starts_with('/') && !text.starts_with("**") {
            format!("**/{text}")
        } else {
            text.to_owned()
        };
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| EngineError::InvalidArgument(format!("pattern {text:?}: {e}")))?
            .compile_matcher();
        Ok(Self { matcher, paths })
    }

    fn is_match(&self, bytes: &[u8]) -> bool {
        self.matcher.is_match(Path::new(OsStr::from_bytes(bytes)))
    }
}

/// Snapshots as a bit set of their indices.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Set(Vec<u64>);

impl Set {
    fn one(n: usize, i: usize) -> Self {
        let mut words = vec![0; n.div_ceil(64).max(1)];
        words[i / 64] |= 1 << (i % 64);
        Self(words)
    }

    fn or(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    fn first(&self) -> usize {
        self.0
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map_or(usize::MAX, |(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    /// Inclusive runs of members.
    fn ranges(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (wi, w) in self.0.iter().enumerate() {
            let mut w = *w;
            while w != 0 {
                let i = (wi * 64 + w.trailing_zeros() as usize) as u32;
                w &= w - 1;
                match out.last_mut() {
                    Some((_, end)) if *end + 1 == i => *end = i,
                    _ => out.push((i, i)),
                }
            }
        }
        out
    }
}

/// What makes two entries at one path the same version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    File { digest: [u8; 32], size: u64 },
    Symlink(Vec<u8>),
    Other(EntryKind),
}

#[derive(Clone, Debug)]
struct Version {
    key: Key,
    kind: EntryKind,
    size: u64,
    mtime_ns: i64,
}

fn version(node: &Node) -> Version {
    let key = match node.kind {
        NodeKind::File => {
            let mut h = Sha256::new();
            for id in &node.content {
                h.update(id.0);
            }
            Key::File {
                digest: h.finalize().into(),
                size: node.size,
            }
        }
        NodeKind::Symlink => Key::Symlink(node.target.clone()),
        other => Key::Other(entry_kind(other)),
    };
    Version {
        key,
        kind: entry_kind(node.kind),
        size: node.size,
        mtime_ns: node.mtime_ns,
    }
}

/// About what a version adds to the reply: its fields, a symlink's target, its ranges.
fn version_cost(v: &Version) -> usize {
    64 + match &v.key {
        Key::Symlink(target) => target.len(),
        _ => 0,
    }
}

/// One tree's part of the answer: its matching entries and the subdirectories to go into.
#[derive(Debug, Default)]
struct Summary {
    leaves: Vec<(Vec<u8>, Version)>,
    dirs: Vec<(Vec<u8>, BlobId)>,
}

/// Where a snapshot's search starts: a directory's tree, or a single entry (`--path` naming
/// a file).
pub enum StartAt {
    Tree(BlobId),
    Node(Box<Node>),
}

pub struct Start {
    pub path: Vec<u8>,
    pub at: StartAt,
    pub snapshot: usize,
}

#[derive(Debug, Default)]
pub struct Search {
    pub matches: Vec<FoundPath>,
    pub truncated: bool,
    pub unsafe_names: u64,
}

/// Accumulated versions per matching path, bounded by count and bytes.
struct Results {
    paths: BTreeMap<Vec<u8>, Vec<(Version, Set)>>,
    bytes: usize,
    limit: usize,
    truncated: bool,
}

impl Results {
    fn add(&mut self, path: Vec<u8>, v: &Version, set: &Set) {
        let cost = path.len() + 64;
        let versions = self.paths.entry(path).or_insert_with(|| {
            self.bytes += cost;
            Vec::new()
        });
        match versions.iter_mut().find(|(have, _)| have.key == v.key) {
            Some((have, members)) => {
                if set.first() < members.first() {
                    have.mtime_ns = v.mtime_ns;
                }
                members.or(set);
            }
            None => {
                self.bytes += version_cost(v);
                versions.push((v.clone(), set.clone()));
            }
        }
        while self.paths.len() > self.limit || self.bytes > REPLY_BYTES {
            let Some((p, vs)) = self.paths.pop_last() else {
                break;
            };
            let freed: usize = vs.iter().map(|(v, _)| version_cost(v)).sum();
            self.bytes = self.bytes.saturating_sub(p.len() + 64 + freed);
            self.truncated = true;
        }
    }

    /// Whether nothing at or below `dir` can still make it into the results.
    fn full_before(&self, dir: &[u8]) -> bool {
        self.paths.len() >= self.limit
            && self
                .paths
                .keys()
                .next_back()
                .is_some_and(|last| dir >= last.as_slice())
    }
}

/// Searches `starts` (one per snapshot, `snapshots` in all) for `pattern`.
pub fn search(
    trees: &mut dyn Trees,
    pattern: &Pattern,
    starts: Vec<Start>,
    snapshots: usize,
    limit: usize,
) -> Result<Search, EngineError> {
    let mut unsafe_names = 0;
    let mut memo: HashMap<BlobId, Option<Arc<Summary>>> = HashMap::new();
    let mut truncated = false;
    if !pattern.paths {
        let roots = starts.iter().filter_map(|s| match s.at {
            StartAt::Tree(id) => Some(id),
            StartAt::Node(_) => None,
        });
        let (skipped, deep) = summarize_all(trees, pattern, roots, &mut memo)?;
        unsafe_names += skipped;
        truncated |= deep;
    }
    let mut results = Results {
        paths: BTreeMap::new(),
        bytes: 0,
        limit,
        truncated: false,
    };
    let mut frontier: BTreeMap<Vec<u8>, Vec<(BlobId, Set)>> = BTreeMap::new();
    for start in starts {
        let set = Set::one(snapshots, start.snapshot);
        match start.at {
            StartAt::Tree(id) => merge(&mut frontier, start.path, id, &set),
            StartAt::Node(node) => {
                let subject = if pattern.paths {
                    &start.path
                } else {
                    &node.name
                };
                if pattern.is_match(subject) {
                    results.add(start.path, &version(&node), &set);
                }
            }
        }
    }
    while let Some((dir, pairs)) = frontier.pop_first() {
        if results.full_before(&dir) {
            results.truncated = true;
            continue;
        }
        if dir.iter().filter(|b| **b == b'/').count() > MAX_DEPTH {
            truncated = true;
            continue;
        }
        for (id, set) in pairs {
            let summary = if pattern.paths {
                let (s, skipped) = summarize_here(trees, &id)?;
                unsafe_names += skipped;
                Arc::new(s)
            } else {
                match memo.get(&id) {
                    Some(Some(s)) => s.clone(),
                    _ => continue,
                }
            };
            for (name, v) in &summary.leaves {
                let full = child_path(&dir, name);
                if !pattern.paths || pattern.is_match(&full) {
                    results.add(full, v, &set);
                }
            }
            for (name, sub) in &summary.dirs {
                merge(&mut frontier, child_path(&dir, name), *sub, &set);
            }
        }
    }
    // The ranges are only known now: a path whose versions come and go in many runs costs
    // more, so the byte budget is checked once more while the answer is assembled.
    truncated |= results.truncated;
    let mut matches = Vec::new();
    let mut bytes = 0usize;
    for (path, mut versions) in results.paths {
        versions.sort_by_key(|(_, set)| set.first());
        let versions: Vec<FoundVersion> = versions
            .into_iter()
            .map(|(v, set)| FoundVersion {
                kind: v.kind,
                size: v.size,
                mtime_ns: v.mtime_ns,
                content: match &v.key {
                    Key::File { digest, .. } => Some(hex::encode(&digest[..8])),
                    _ => None,
                },
                target: match v.key {
                    Key::Symlink(t) => Some(t),
                    _ => None,
                },
                snapshots: set.ranges(),
            })
            .collect();
        bytes += path.len()
            + versions
                .iter()
                .map(|v| 64 + v.target.as_ref().map_or(0, Vec::len) + 8 * v.snapshots.len())
                .sum::<usize>();
        if bytes > REPLY_BYTES {
            truncated = true;
            break;
        }
        matches.push(FoundPath { path, versions });
    }
    Ok(Search {
        matches,
        truncated,
        unsafe_names,
    })
}

fn merge(
    frontier: &mut BTreeMap<Vec<u8>, Vec<(BlobId, Set)>>,
    path: Vec<u8>,
    id: BlobId,
    set: &Set,
) {
    let pairs = frontier.entry(path).or_default();
    match pairs.iter_mut().find(|(have, _)| *have == id) {
        Some((_, members)) => members.or(set),
        None => pairs.push((id, set.clone())),
    }
}

/// A tree's entries, all of them candidates (path patterns are tested where they sit).
fn summarize_here(trees: &mut dyn Trees, id: &BlobId) -> Result<(Summary, u64), EngineError> {
    let (nodes, skipped) = safe_nodes(trees.load(id)?);
    let mut s = Summary::default();
    for n in nodes {
        let v = version(&n);
        if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
            s.dirs.push((n.name.clone(), sub));
        }
        s.leaves.push((n.name, v));
    }
    Ok((s, skipped))
}

enum Step {
    Enter(BlobId, usize),
    Exit(BlobId, Vec<Node>),
}

/// Step 1: the summary of every distinct tree reachable from `roots`, bottom up, each tree
/// decoded once. Returns the unsafe names met and whether the depth limit cut the walk.
fn summarize_all(
    trees: &mut dyn Trees,
    pattern: &Pattern,
    roots: impl Iterator<Item = BlobId>,
    memo: &mut HashMap<BlobId, Option<Arc<Summary>>>,
) -> Result<(u64, bool), EngineError> {
    let (mut unsafe_names, mut deep, mut candidates) = (0, false, 0usize);
    let mut stack: Vec<Step> = roots.map(|r| Step::Enter(r, 0)).collect();
    // Entered and not yet summarized: content addressing makes a cycle impossible, but a
    // damaged repository must not loop.
    let mut open: HashSet<BlobId> = HashSet::new();
    while let Some(step) = stack.pop() {
        match step {
            Step::Enter(id, depth) => {
                if memo.contains_key(&id) || open.contains(&id) {
                    continue;
                }
                if depth >= MAX_DEPTH {
                    memo.insert(id, None);
                    deep = true;
                    continue;
                }
                let (nodes, skipped) = safe_nodes(trees.load(&id)?);
                unsafe_names += skipped;
                open.insert(id);
                let children: Vec<BlobId> = nodes
                    .iter()
                    .filter(|n| n.kind == NodeKind::Dir)
                    .filter_map(|n| n.subtree)
                    .filter(|s| !memo.contains_key(s))
                    .collect();
                stack.push(Step::Exit(id, nodes));
                stack.extend(children.into_iter().map(|c| Step::Enter(c, depth + 1)));
            }
            Step::Exit(id, nodes) => {
                open.remove(&id);
                let mut s = Summary::default();
                for n in nodes {
                    if pattern.is_match(&n.name) {
                        s.leaves.push((n.name.clone(), version(&n)));
                        candidates += 1;
                    }
                    if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                        if let Some(Some(_)) = memo.get(&sub) {
                            s.dirs.push((n.name, sub));
                        }
                    }
                }
                if candidates > MAX_CANDIDATES {
                    return Err(EngineError::InvalidArgument(format!(
                        "the pattern matches more than {MAX_CANDIDATES} entries in these \
                         snapshots; narrow it (a more specific pattern, --path, or fewer \
                         snapshots)"
                    )));
                }
                let empty = s.leaves.is_empty() && s.dirs.is_empty();
                memo.insert(id, (!empty).then(|| Arc::new(s)));
            }
        }
    }
    Ok((unsafe_names, deep))
}

#[cfg(test)]
mod tests;
