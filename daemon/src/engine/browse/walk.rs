//! `ls` (a directory, or everything below it, depth first with names sorted, from an explicit
//! stack) and `cat` (a file's blobs in order, handed out in pieces of at most
//! [`CAT_CHUNK`] bytes: one blob in memory at a time).

use super::{
    child_path, components, entry_info, join_path, limit, locate, not_in, safe_nodes, Budget,
    Located, Trees, View, LS_DEFAULT, MAX_DEPTH,
};
use crate::engine::EngineError;
use crate::repo::tree::{Node, NodeKind};
use backupd_common::ids::BlobId;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{CatRequest, CatResult, EntryInfo, Listing, LsRequest, CAT_CHUNK};

pub fn ls(view: &mut View<'_>, r: &LsRequest) -> Result<Listing, EngineError> {
    let asked = r.path.clone().unwrap_or_else(|| b"/".to_vec());
    let comps = components(&asked)?;
    let path = join_path(&comps);
    let (id, snapshot) = view.snapshot(&r.snapshot, &r.filter, Some(&path))?;
    let located = locate(view, snapshot.tree, &comps)?.ok_or_else(|| not_in(&path, &id))?;
    let mut budget = Budget::new(limit(r.limit, LS_DEFAULT));
    let (entries, unsafe_names) = match located {
        Located::Other(node) => (vec![entry_info(path.clone(), &node)], 0),
        Located::Dir { tree, .. } => list(view, &path, tree, r.recursive, &mut budget)?,
    };
    Ok(Listing {
        snapshot: id.to_hex(),
        time_ns: snapshot.time_ns,
        path,
        entries,
        truncated: budget.truncated,
        unsafe_names,
    })
}

/// The entries of the directory `tree` at `path` (with `recursive`, everything below it,
/// each directory's entries right after it), as far as `budget` goes.
pub fn list(
    trees: &mut dyn Trees,
    path: &[u8],
    tree: BlobId,
    recursive: bool,
    budget: &mut Budget,
) -> Result<(Vec<EntryInfo>, u64), EngineError> {
    let mut out = Vec::new();
    let (nodes, mut unsafe_names) = safe_nodes(trees.load(&tree)?);
    // Each frame: a directory's path and its nodes not yet listed, reversed (next at the end).
    let mut stack: Vec<(Vec<u8>, Vec<Node>)> = vec![(path.to_vec(), reversed(nodes))];
    while let Some((dir, pending)) = stack.last_mut() {
        let Some(node) = pending.pop() else {
            stack.pop();
            continue;
        };
        let full = child_path(dir, &node.name);
        let names =
            node.user.as_ref().map_or(0, String::len) + node.group.as_ref().map_or(0, String::len);
        let cost = full.len() + node.target.len() + names + 64;
        if !budget.take(cost) {
            break;
        }
        out.push(entry_info(full.clone(), &node));
        if let (true, NodeKind::Dir, Some(sub)) = (recursive, node.kind, node.subtree) {
            if stack.len() >= MAX_DEPTH {
                budget.truncated = true;
                continue;
            }
            let (nodes, skipped) = safe_nodes(trees.load(&sub)?);
            unsafe_names += skipped;
            stack.push((full, reversed(nodes)));
        }
    }
    Ok((out, unsafe_names))
}

fn reversed(mut nodes: Vec<Node>) -> Vec<Node> {
    nodes.reverse();
    nodes
}

/// Streams a file's content to `send` in order, in pieces of at most [`CAT_CHUNK`] bytes;
/// `send` answers `false` when the receiver is gone (the walk stops then).
pub fn cat(
    view: &mut View<'_>,
    r: &CatRequest,
    send: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<CatResult, EngineError> {
    let comps = components(&r.path)?;
    let path = join_path(&comps);
    let (id, snapshot) = view.snapshot(&r.snapshot, &r.filter, Some(&path))?;
    let node = match locate(view, snapshot.tree, &comps)? {
        None => return Err(not_in(&path, &id)),
        Some(Located::Dir { .. }) => {
            return Err(EngineError::InvalidArgument(format!(
                "{} is a directory in snapshot {}; list it with `backupctl ls {}:{}`",
                escape_path(&path),
                id.short(),
                id.short(),
                escape_path(&path)
            )))
        }
        Some(Located::Other(node)) if node.kind != NodeKind::File => {
            return Err(EngineError::InvalidArgument(format!(
                "{} is a {} in snapshot {}, not a regular file",
                escape_path(&path),
                super::entry_kind(node.kind).as_str(),
                id.short()
            )))
        }
        Some(Located::Other(node)) => node,
    };
    let mut bytes = 0u64;
    for blob in &node.content {
        view.check_cancel()?;
        let data = view.repo().read_blob(blob)?;
        for piece in data.chunks(CAT_CHUNK) {
            if !send(piece.to_vec()) {
                return Err(EngineError::Cancelled);
            }
            bytes += piece.len() as u64;
        }
    }
    Ok(CatResult {
        snapshot: id.to_hex(),
        path,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dir, file, MemTrees};
    use super::*;

    #[test]
    fn a_recursive_listing_goes_depth_first_and_stops_at_its_budget() {
        let mut t = MemTrees::default();
        let inner = t.put(vec![file("z", 3, 0)]);
        let root = t.put(vec![file("a", 1, 0), dir("d", inner), file("e", 2, 0)]);
        let mut budget = super::super::Budget::new(100);
        let (entries, _) = list(&mut t, b"/", root, true, &mut budget).expect("lists");
        let paths: Vec<_> = entries.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                b"/a".to_vec(),
                b"/d".to_vec(),
                b"/d/z".to_vec(),
                b"/e".to_vec()
            ]
        );
        assert!(!budget.truncated);
        let mut budget = super::super::Budget::new(2);
        let (entries, _) = list(&mut t, b"/", root, true, &mut budget).expect("lists");
        assert_eq!(entries.len(), 2);
        assert!(budget.truncated);
    }

    #[test]
    fn a_listing_deeper_than_a_backup_goes_is_cut_not_recursed() {
        let mut t = MemTrees::default();
        let root = super::super::testing::chain(&mut t, MAX_DEPTH + 50, 1);
        let mut budget = super::super::Budget::new(super::super::MAX_LIMIT);
        let (entries, _) = list(&mut t, b"/", root, true, &mut budget).expect("lists");
        assert!(budget.truncated);
        assert!(entries.len() >= 2 * MAX_DEPTH - 2);
    }

    #[test]
    fn hostile_names_are_left_out_and_counted() {
        let mut t = MemTrees::default();
        let root = t.put(vec![file("..", 1, 0), file("a/b", 1, 0), file("ok", 1, 0)]);
        let mut budget = super::super::Budget::new(100);
        let (entries, unsafe_names) = list(&mut t, b"/", root, true, &mut budget).expect("ok");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path, b"/ok");
        assert_eq!(unsafe_names, 2);
    }
}
