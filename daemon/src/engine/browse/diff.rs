//! `diff`: what changed between two snapshots. Both trees are walked side by side from an
//! explicit stack of (path, older tree, newer tree); a subtree whose id is the same on both
//! sides is equal all the way down and is skipped without being read. Entries are matched by
//! name (both lists sorted); an entry on one side only is added or removed (with everything
//! below it), one on both sides is compared: content (file blobs, symlink target, device
//! number, type) makes it `modified`, metadata alone (mode, owner, mtime, xattrs) `metadata`.
//! Access and change times and inode numbers differ between any two backups and are ignored.
//!
//! Every change is counted; the list keeps the first `limit` in path order.

use super::{
    child_path, components, entry_kind, join_path, limit, locate, not_in, safe_nodes, Located,
    Trees, View, DIFF_DEFAULT, MAX_DEPTH, REPLY_BYTES,
};
use crate::engine::EngineError;
use crate::repo::tree::{Node, NodeKind};
use backupd_common::ids::BlobId;
use backupd_common::protocol::{Change, ChangeKind, DiffField, DiffRequest, DiffResult};
use std::collections::BTreeMap;

/// One side of the walk's start: a directory's tree, an entry, or nothing there.
pub enum Side {
    Tree(BlobId),
    Node(Box<Node>),
    Missing,
}

#[derive(Debug, Default)]
pub struct Changes {
    pub changes: BTreeMap<Vec<u8>, Change>,
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata: u64,
    pub truncated: bool,
    pub unsafe_names: u64,
    bytes: usize,
    limit: usize,
}

impl Changes {
    fn record(&mut self, path: Vec<u8>, change: ChangeKind, a: Option<&Node>, b: Option<&Node>) {
        self.record_fields(path, change, a, b, Vec::new());
    }

    fn record_fields(
        &mut self,
        path: Vec<u8>,
        change: ChangeKind,
        a: Option<&Node>,
        b: Option<&Node>,
        fields: Vec<DiffField>,
    ) {
        match change {
            ChangeKind::Added => self.added += 1,
            ChangeKind::Removed => self.removed += 1,
            ChangeKind::Modified => self.modified += 1,
            ChangeKind::Metadata => self.metadata += 1,
        }
        if self.changes.len() >= self.limit
            && self
                .changes
                .keys()
                .next_back()
                .is_some_and(|last| path >= *last)
        {
            self.truncated = true;
            return;
        }
        let Some(kind) = b.or(a).map(|n| entry_kind(n.kind)) else {
            return;
        };
        let size = |n: Option<&Node>| n.filter(|n| n.kind == NodeKind::File).map(|n| n.size);
        self.bytes += path.len() + 64;
        self.changes.insert(
            path.clone(),
            Change {
                path,
                change,
                kind,
                fields,
                size_before: size(a),
                size_after: size(b),
            },
        );
        while self.changes.len() > self.limit || self.bytes > REPLY_BYTES {
            let Some((p, _)) = self.changes.pop_last() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(p.len() + 64);
            self.truncated = true;
        }
    }
}

/// What differs between two entries at the same path; `None` when nothing that matters does.
pub fn compare(a: &Node, b: &Node) -> Option<(ChangeKind, Vec<DiffField>)> {
    if a.kind != b.kind {
        return Some((ChangeKind::Modified, vec![DiffField::Type]));
    }
    let mut fields = Vec::new();
    match a.kind {
        NodeKind::File if a.content != b.content || a.size != b.size => {
            fields.push(DiffField::Content)
        }
        NodeKind::Symlink if a.target != b.target => fields.push(DiffField::Target),
        NodeKind::CharDevice | NodeKind::BlockDevice if a.rdev != b.rdev => {
            fields.push(DiffField::Device)
        }
        _ => {}
    }
    let content = !fields.is_empty();
    if a.mode != b.mode {
        fields.push(DiffField::Mode);
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        fields.push(DiffField::Owner);
    }
    if a.mtime_ns != b.mtime_ns {
        fields.push(DiffField::Mtime);
    }
    let sorted = |x: &[(Vec<u8>, Vec<u8>)]| {
        let mut x = x.to_vec();
        x.sort();
        x
    };
    if a.xattrs != b.xattrs && sorted(&a.xattrs) != sorted(&b.xattrs) {
        fields.push(DiffField::Xattrs);
    }
    match (content, fields.is_empty()) {
        (true, _) => Some((ChangeKind::Modified, fields)),
        (false, false) => Some((ChangeKind::Metadata, fields)),
        (false, true) => None,
    }
}

fn subtree(n: &Node) -> Option<BlobId> {
    match n.kind {
        NodeKind::Dir => n.subtree,
        _ => None,
    }
}

/// Walks two sides from `path`: everything that differs below (and at) it.
pub fn walk(
    trees: &mut dyn Trees,
    path: Vec<u8>,
    a: Side,
    b: Side,
    limit: usize,
) -> Result<Changes, EngineError> {
    let mut out = Changes {
        limit,
        ..Changes::default()
    };
    let mut stack: Vec<(Vec<u8>, Option<BlobId>, Option<BlobId>)> = Vec::new();
    match (a, b) {
        (Side::Tree(x), Side::Tree(y)) => stack.push((path, Some(x), Some(y))),
        (Side::Tree(x), Side::Missing) => stack.push((path, Some(x), None)),
        (Side::Missing, Side::Tree(y)) => stack.push((path, None, Some(y))),
        (Side::Missing, Side::Missing) => {}
        (a, b) => {
            // An entry (not a directory tree) on at least one side: compare it as one.
            let node = |s: &Side| match s {
                Side::Node(n) => Some((**n).clone()),
                _ => None,
            };
            let (na, nb) = (node(&a), node(&b));
            match (&na, &nb) {
                (Some(x), Some(y)) => {
                    if let Some((change, fields)) = compare(x, y) {
                        out.record_fields(path.clone(), change, na.as_ref(), nb.as_ref(), fields);
                    }
                }
                (Some(_), None) => out.record(path.clone(), ChangeKind::Removed, na.as_ref(), None),
                (None, Some(_)) => out.record(path.clone(), ChangeKind::Added, None, nb.as_ref()),
                (None, None) => {}
            }
            if let Side::Tree(x) = a {
                stack.push((path.clone(), Some(x), None));
            }
            if let Side::Tree(y) = b {
                stack.push((path, None, Some(y)));
            }
        }
    }
    while let Some((dir, x, y)) = stack.pop() {
        if x == y {
            continue;
        }
        if dir.iter().filter(|c| **c == b'/').count() >= MAX_DEPTH {
            out.truncated = true;
            continue;
        }
        let mut load = |id: Option<BlobId>| -> Result<Vec<Node>, EngineError> {
            match id {
                None => Ok(Vec::new()),
                Some(id) => {
                    let (nodes, skipped) = safe_nodes(trees.load(&id)?);
                    out.unsafe_names += skipped;
                    Ok(nodes)
                }
            }
        };
        let (left, right) = (load(x)?, load(y)?);
        let (mut i, mut j) = (0, 0);
        while i < left.len() || j < right.len() {
            let order = match (left.get(i), right.get(j)) {
                (Some(l), Some(r)) => l.name.cmp(&r.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let l = &left[i];
                    let p = child_path(&dir, &l.name);
                    out.record(p.clone(), ChangeKind::Removed, Some(l), None);
                    if let Some(s) = subtree(l) {
                        stack.push((p, Some(s), None));
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let r = &right[j];
                    let p = child_path(&dir, &r.name);
                    out.record(p.clone(), ChangeKind::Added, None, Some(r));
                    if let Some(s) = subtree(r) {
                        stack.push((p, None, Some(s)));
                    }
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (l, r) = (&left[i], &right[j]);
                    let p = child_path(&dir, &l.name);
                    if let Some((change, fields)) = compare(l, r) {
                        out.record_fields(p.clone(), change, Some(l), Some(r), fields);
                    }
                    let (sl, sr) = (subtree(l), subtree(r));
                    if sl.is_some() || sr.is_some() {
                        stack.push((p, sl, sr));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    Ok(out)
}

pub fn diff(view: &mut View<'_>, r: &DiffRequest) -> Result<DiffResult, EngineError> {
    let comps = match &r.path {
        Some(p) => components(p)?,
        None => Vec::new(),
    };
    let path = join_path(&comps);
    let held = r.path.as_ref().map(|_| path.as_slice());
    let (from, a) = view.snapshot(&r.from, &r.filter, held)?;
    let (to, b) = view.snapshot(&r.to, &r.filter, held)?;
    let mut side = |root: BlobId| -> Result<Side, EngineError> {
        Ok(match locate(view, root, &comps)? {
            None => Side::Missing,
            Some(Located::Dir { tree, .. }) => Side::Tree(tree),
            Some(Located::Other(n)) => Side::Node(Box::new(n)),
        })
    };
    let (sa, sb) = (side(a.tree)?, side(b.tree)?);
    if matches!((&sa, &sb), (Side::Missing, Side::Missing)) {
        return Err(not_in(&path, &to));
    }
    let c = walk(view, path, sa, sb, limit(r.limit, DIFF_DEFAULT))?;
    Ok(DiffResult {
        from: from.to_hex(),
        to: to.to_hex(),
        changes: c.changes.into_values().collect(),
        added: c.added,
        removed: c.removed,
        modified: c.modified,
        metadata: c.metadata,
        truncated: c.truncated,
        trees_read: view.trees_read,
        unsafe_names: c.unsafe_names,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dir, file, MemTrees};
    use super::*;

    #[test]
    fn each_kind_of_change_is_found_and_equal_subtrees_are_not_read() {
        let mut t = MemTrees::default();
        let same = t.put(vec![file("big", 9, 1)]);
        let mut chmod = file("chmod", 3, 1);
        let old = t.put(vec![
            dir("same", same),
            file("edit", 1, 1),
            chmod.clone(),
            file("gone", 2, 1),
            file("touch", 4, 1),
        ]);
        chmod.mode = 0o600;
        let sub = t.put(vec![file("inner", 7, 2)]);
        let new = t.put(vec![
            dir("same", same),
            file("edit", 5, 2),
            chmod,
            file("touch", 4, 2),
            dir("new", sub),
        ]);
        t.loads = 0;
        let c = walk(&mut t, b"/".to_vec(), Side::Tree(old), Side::Tree(new), 100).expect("ok");
        assert_eq!(
            t.loads, 3,
            "the two roots and the added directory; `same` is skipped"
        );
        let got: Vec<_> = c
            .changes
            .values()
            .map(|c| (String::from_utf8_lossy(&c.path).into_owned(), c.change))
            .collect();
        use ChangeKind::*;
        assert_eq!(
            got,
            [
                ("/chmod".to_owned(), Metadata),
                ("/edit".to_owned(), Modified),
                ("/gone".to_owned(), Removed),
                ("/new".to_owned(), Added),
                ("/new/inner".to_owned(), Added),
                ("/touch".to_owned(), Metadata),
            ]
        );
        assert_eq!((c.added, c.removed, c.modified, c.metadata), (2, 1, 1, 2));
        assert_eq!(c.changes[&b"/chmod".to_vec()].fields, [DiffField::Mode]);
        assert_eq!(
            c.changes[&b"/edit".to_vec()].fields,
            [DiffField::Content, DiffField::Mtime]
        );
    }

    #[test]
    fn identical_snapshots_read_nothing_and_counts_survive_the_limit() {
        let mut t = MemTrees::default();
        let a = t.put((0..10).map(|i| file(&format!("f{i}"), 1, 1)).collect());
        let b = t.put((0..10).map(|i| file(&format!("f{i}"), 2, 1)).collect());
        t.loads = 0;
        let c = walk(&mut t, b"/".to_vec(), Side::Tree(a), Side::Tree(a), 3).expect("ok");
        assert_eq!((t.loads, c.changes.len()), (0, 0));
        let c = walk(&mut t, b"/".to_vec(), Side::Tree(a), Side::Tree(b), 3).expect("ok");
        assert_eq!(c.modified, 10);
        assert_eq!(c.changes.len(), 3);
        assert!(c.truncated);
        assert_eq!(c.changes.keys().next_back().expect("three"), b"/f2");
    }

    #[test]
    fn trees_deeper_than_a_backup_goes_are_cut_not_recursed() {
        use super::super::testing::chain;
        let mut t = MemTrees::default();
        let (a, b) = (
            chain(&mut t, MAX_DEPTH + 50, 1),
            chain(&mut t, MAX_DEPTH + 50, 2),
        );
        let c = walk(&mut t, b"/".to_vec(), Side::Tree(a), Side::Tree(b), 100).expect("ok");
        assert!(c.truncated);
        assert!(c.modified as usize >= MAX_DEPTH);
    }

    #[test]
    fn a_type_change_is_a_modification_and_its_old_contents_are_removed() {
        let mut t = MemTrees::default();
        let sub = t.put(vec![file("x", 1, 1)]);
        let a = t.put(vec![dir("p", sub)]);
        let b = t.put(vec![file("p", 1, 1)]);
        let c = walk(&mut t, b"/".to_vec(), Side::Tree(a), Side::Tree(b), 10).expect("ok");
        assert_eq!(c.changes[&b"/p".to_vec()].fields, [DiffField::Type]);
        assert_eq!(c.changes[&b"/p/x".to_vec()].change, ChangeKind::Removed);
    }
}
