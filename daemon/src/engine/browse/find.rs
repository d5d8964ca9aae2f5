//! `find` as a request: which snapshots to search (named, or all the caller may see in a time
//! window), where each one's search starts (`--path`), then [`search`] over them all at once.

use super::search::{search, Pattern, Start, StartAt};
use super::{components, join_path, limit, Trees, View, FIND_DEFAULT};
use crate::engine::EngineError;
use crate::repo::snapshots::matches;
use crate::repo::tree::{Node, NodeKind};
use backupd_common::ids::{BlobId, SnapshotId};
use backupd_common::protocol::{FindRequest, Found, FoundSnapshot, SnapshotFilter};
use std::collections::HashMap;

/// `find` over the snapshots the request selects (those the view's scope admits).
pub fn find(view: &mut View<'_>, r: &FindRequest) -> Result<Found, EngineError> {
    let pattern = Pattern::new(&r.pattern)?;
    let comps = match &r.path {
        Some(p) => components(p)?,
        None => Vec::new(),
    };
    let base = join_path(&comps);
    let held = r.path.as_ref().map(|_| base.clone());
    let chosen = choose(view, r, held)?;
    // Where each snapshot's search starts; the trees along `--path` are mostly shared, so
    // each (tree, level) is looked up once.
    let mut steps: HashMap<(BlobId, usize), Option<Node>> = HashMap::new();
    let mut starts = Vec::new();
    'snapshots: for (i, (_, _, root)) in chosen.iter().enumerate() {
        let mut at = StartAt::Tree(*root);
        for (level, name) in comps.iter().enumerate() {
            let StartAt::Tree(tree) = at else {
                continue 'snapshots;
            };
            let node = match steps.get(&(tree, level)) {
                Some(n) => n.clone(),
                None => {
                    let n = view.load(&tree)?.find(name).cloned();
                    steps.insert((tree, level), n.clone());
                    n
                }
            };
            at = match node {
                Some(n) => match (n.kind, n.subtree) {
                    (NodeKind::Dir, Some(sub)) => StartAt::Tree(sub),
                    _ => StartAt::Node(Box::new(n)),
                },
                None => continue 'snapshots,
            };
        }
        starts.push(Start {
            path: base.clone(),
            at,
            snapshot: i,
        });
    }
    let search = search(
        view,
        &pattern,
        starts,
        chosen.len(),
        limit(r.limit, FIND_DEFAULT),
    )?;
    Ok(Found {
        snapshots: chosen
            .into_iter()
            .map(|(id, time_ns, _)| FoundSnapshot {
                id: id.to_hex(),
                time_ns,
            })
            .collect(),
        matches: search.matches,
        truncated: search.truncated,
        trees_read: view.trees_read,
        unsafe_names: search.unsafe_names,
    })
}

/// The snapshots to search, oldest first: those named, or every one the scope, the filter
/// (and `--path`) and the time window accept.
fn choose(
    view: &View<'_>,
    r: &FindRequest,
    held: Option<Vec<u8>>,
) -> Result<Vec<(SnapshotId, i64, BlobId)>, EngineError> {
    let mut chosen = Vec::new();
    if r.snapshots.is_empty() {
        let filter = SnapshotFilter {
            path: held,
            ..r.filter.clone()
        };
        let scope = view.scope();
        for (id, h) in view.repo().snapshot_headers()? {
            let in_window = r.since_ns.is_none_or(|t| h.time_ns >= t)
                && r.until_ns.is_none_or(|t| h.time_ns <= t);
            if in_window && scope.admits(h.owner_uid) && matches(&filter, &h) {
                chosen.push((id, h.time_ns, h.tree));
            }
        }
    } else {
        for spec in &r.snapshots {
            let (id, s) = view.snapshot(spec, &r.filter, held.as_deref())?;
            if !chosen.iter().any(|(have, _, _)| *have == id) {
                chosen.push((id, s.time_ns, s.tree));
            }
        }
    }
    chosen.sort_by_key(|(id, t, _)| (*t, *id));
    Ok(chosen)
}
