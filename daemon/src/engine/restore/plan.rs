//! What a restore creates, worked out from the snapshot before anything is written: every
//! directory (parents before children, each naming its parent by index) and every file, link
//! and special file (naming its directory by index). Built with an explicit stack, so a
//! snapshot of any depth (a hostile one included) cannot overflow the stack.

use super::super::dirfd::display_bytes;
use super::super::EngineError;
use crate::repo::tree::{is_safe_name, Node, NodeKind, Tree};
use crate::repo::Repository;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Index of the restore target itself in [`Plan::dirs`].
pub const TARGET: usize = 0;

#[derive(Debug)]
pub struct PlanDir {
    pub parent: usize,
    pub name: Vec<u8>,
    /// `None` for the target itself, whose metadata is left alone.
    pub node: Option<Node>,
    /// Created at all (with includes, a directory holding nothing wanted is not).
    pub keep: bool,
}

#[derive(Debug)]
pub enum Entry {
    File(Node),
    /// Symlinks, FIFOs, devices, sockets.
    Other(Node),
}

#[derive(Debug)]
pub struct Item {
    pub dir: usize,
    pub entry: Entry,
}

#[derive(Debug)]
pub struct Plan {
    pub dirs: Vec<PlanDir>,
    pub items: Vec<Item>,
    /// Entries of the snapshot that cannot be restored (unsafe names), with the reason.
    pub refused: Vec<(String, String)>,
}

pub struct Filter {
    includes: Option<GlobSet>,
    excludes: Option<GlobSet>,
    /// Only these paths (relative to the restored base, `/`-separated) and what is below them.
    only: Option<Arc<HashSet<Vec<u8>>>>,
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, EngineError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(
            Glob::new(p)
                .map_err(|e| EngineError::InvalidArgument(format!("pattern {p:?}: {e}")))?,
        );
    }
    b.build()
        .map(Some)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

impl Filter {
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Self, EngineError> {
        Ok(Self {
            includes: globset(includes)?,
            excludes: globset(excludes)?,
            only: None,
        })
    }

    /// Restricts the filter to `paths` (relative to the restored base) and what is below them.
    pub fn only(mut self, paths: Option<Arc<HashSet<Vec<u8>>>>) -> Self {
        self.only = paths;
        self
    }

    /// Whether a whole subtree is wanted only in part (so directories are created only where
    /// something under them is wanted).
    fn selective(&self) -> bool {
        self.includes.is_some() || self.only.is_some()
    }

    /// Whether `rel` is named by the `only` set (`true` without one).
    fn named(&self, rel: &[u8]) -> bool {
        self.only.as_ref().is_none_or(|set| set.contains(rel))
    }

    fn excluded(&self, snap_path: &Path, name: &[u8]) -> bool {
        self.excludes
            .as_ref()
            .is_some_and(|set| matches(set, snap_path, name))
    }

    /// `snap_path` is the absolute path in the snapshot; patterns without `/` match the name.
    fn wants(&self, snap_path: &Path, name: &[u8]) -> bool {
        !self.excluded(snap_path, name)
            && self
                .includes
                .as_ref()
                .is_none_or(|set| matches(set, snap_path, name))
    }
}

fn matches(set: &GlobSet, snap_path: &Path, name: &[u8]) -> bool {
    set.is_match(snap_path) || set.is_match(Path::new(OsStr::from_bytes(name)))
}

impl Plan {
    /// A plan for a single node (a file or special file restored into the target).
    pub fn single(node: Node) -> Self {
        let entry = match node.kind {
            NodeKind::File => Entry::File(node),
            _ => Entry::Other(node),
        };
        Self {
            dirs: vec![target_dir()],
            items: vec![Item { dir: TARGET, entry }],
            refused: Vec::new(),
        }
    }

    /// Everything under `tree` (found at `snap_base` in the snapshot) that `filter` wants.
    pub fn build(
        repo: &Repository,
        tree: Tree,
        snap_base: &Path,
        filter: &Filter,
    ) -> Result<Self, EngineError> {
        let mut plan = Self {
            dirs: vec![target_dir()],
            items: Vec::new(),
            refused: Vec::new(),
        };
        // Pending directories: their tree, their index in `dirs`, their snapshot path, their
        // path relative to the base and whether the `only` set names them or a parent.
        let mut stack = vec![(tree, TARGET, snap_base.to_path_buf(), Vec::new(), false)];
        while let Some((tree, dir, snap, rel, named)) = stack.pop() {
            // Children are pushed in reverse so they are planned in name order.
            let mut subdirs = Vec::new();
            for node in tree.nodes {
                let child_snap = snap.join(OsStr::from_bytes(&node.name));
                let child_rel = join_rel(&rel, &node.name);
                let child_named = named || filter.named(&child_rel);
                if !is_safe_name(&node.name) {
                    plan.refused.push((
                        display_bytes(child_snap.as_os_str().as_bytes()),
                        "unsafe name in the snapshot (empty, `.`, `..`, or containing `/` or \
                         NUL); not restored"
                            .into(),
                    ));
                    continue;
                }
                match (node.kind, node.subtree) {
                    (NodeKind::Dir, Some(sub)) => {
                        if filter.excluded(&child_snap, &node.name) {
                            continue;
                        }
                        let subtree = repo.load_tree(&sub)?;
                        plan.dirs.push(PlanDir {
                            parent: dir,
                            name: node.name.clone(),
                            keep: !filter.selective()
                                || (child_named && filter.wants(&child_snap, &node.name)),
                            node: Some(node),
                        });
                        subdirs.push((
                            subtree,
                            plan.dirs.len() - 1,
                            child_snap,
                            child_rel,
                            child_named,
                        ));
                    }
                    (NodeKind::Dir, None) => {}
                    _ if !child_named => {}
                    (NodeKind::File, _) if filter.wants(&child_snap, &node.name) => {
                        plan.items.push(Item {
                            dir,
                            entry: Entry::File(node),
                        })
                    }
                    (NodeKind::File, _) => {}
                    _ if filter.wants(&child_snap, &node.name) => plan.items.push(Item {
                        dir,
                        entry: Entry::Other(node),
                    }),
                    _ => {}
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        plan.propagate_keep();
        Ok(plan)
    }

    /// A directory is kept when anything under it is; parents come before children in `dirs`.
    fn propagate_keep(&mut self) {
        for item in &self.items {
            self.dirs[item.dir].keep = true;
        }
        for i in (1..self.dirs.len()).rev() {
            if self.dirs[i].keep {
                let p = self.dirs[i].parent;
                self.dirs[p].keep = true;
            }
        }
    }

    /// The bytes of the regular files the plan restores.
    pub fn bytes(&self) -> u64 {
        self.items
            .iter()
            .map(|i| match &i.entry {
                Entry::File(n) => n.size,
                Entry::Other(_) => 0,
            })
            .sum()
    }

    /// The path of `name` in directory `dir`, relative to the target, for messages.
    pub fn rel_path(&self, dir: usize, name: &[u8]) -> String {
        let mut parts = vec![name];
        let mut d = dir;
        while d != TARGET {
            parts.push(&self.dirs[d].name);
            d = self.dirs[d].parent;
        }
        let joined: Vec<u8> = parts
            .iter()
            .rev()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(&b'/');
        display_bytes(&joined)
    }
}

/// `rel/name`, or `name` at the base.
fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        out.extend_from_slice(rel);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

fn target_dir() -> PlanDir {
    PlanDir {
        parent: TARGET,
        name: Vec::new(),
        node: None,
        keep: true,
    }
}
