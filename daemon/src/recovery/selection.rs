//! What a selective recovery restores: the paths under the recovered directory that a list of
//! paths, "changed since", or "only missing / different in the target" select. Worked out once,
//! when the plan is made (the target's state then is what "missing" means), and stored with it.
//! Walks are iterative; the target is looked at through directory descriptors.

use super::select::lookup;
use super::RecoveryError;
use crate::engine::dirfd::DirFd;
use crate::engine::restore::unchanged;
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::snapshot::SnapshotHeader;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::Repository;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{OnlyMode, PlanRequest};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

fn invalid(msg: impl Into<String>) -> Error {
    RecoveryError::Invalid(msg.into()).into()
}

/// The paths (relative to `path`) a selective plan restores; `None` when it is not limited.
pub fn paths(
    repo: &Repository,
    r: &PlanRequest,
    header: &SnapshotHeader,
    path: &[u8],
    target: &[u8],
    notes: &mut Vec<String>,
) -> Result<Option<Arc<HashSet<Vec<u8>>>>, Error> {
    if r.paths.is_empty() && r.changed_since_ns.is_none() && r.only == OnlyMode::All {
        return Ok(None);
    }
    let root = lookup(repo, &header.tree, path)?
        .ok_or_else(|| invalid(format!("{} is not in the snapshot", escape_path(path))))?;
    let prefixes: Vec<Vec<u8>> = r
        .paths
        .iter()
        .map(|p| {
            p.split(|b| *b == b'/')
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(&b'/')
        })
        .collect();
    let mut files = walk(repo, &root, &prefixes)?;
    if let Some(t1) = r.changed_since_ns {
        let older = repo
            .snapshot_headers()
            .map_err(EngineError::from)?
            .into_iter()
            .filter(|(_, h)| h.time_ns <= t1 && h.source == header.source)
            .filter(|(_, h)| h.paths.iter().any(|b| path.starts_with(b)))
            .max_by_key(|(_, h)| h.time_ns);
        match older {
            Some((oid, oh)) => {
                let before: HashMap<Vec<u8>, Node> = match lookup(repo, &oh.tree, path)? {
                    Some(n) => walk(repo, &n, &[])?.into_iter().collect(),
                    None => HashMap::new(),
                };
                files.retain(|(rel, n)| before.get(rel).is_none_or(|b| differs(b, n)));
                notes.push(format!(
                    "changed since: compared with snapshot {} ({})",
                    oid.short(),
                    crate::repo::format_rfc3339(oh.time_ns)
                ));
            }
            None => notes.push(
                "changed since: no snapshot that old holds the path; every file counts as changed"
                    .into(),
            ),
        }
    }
    if r.only != OnlyMode::All {
        let mut dirs: HashMap<Vec<u8>, Option<DirFd>> = HashMap::new();
        let base = DirFd::open_path(Path::new(OsStr::from_bytes(target))).ok();
        files.retain(|(rel, node)| {
            let (parent, name) = match rel.iter().rposition(|b| *b == b'/') {
                Some(i) => (rel[..i].to_vec(), rel[i + 1..].to_vec()),
                None => (Vec::new(), rel.clone()),
            };
            let dir = dirs
                .entry(parent.clone())
                .or_insert_with(|| open_under(base.as_ref(), &parent));
            let Some(dir) = dir else {
                return true;
            };
            if dir.stat_at(&name).is_err() {
                return true;
            }
            r.only == OnlyMode::Different && !unchanged(repo, dir, node)
        });
    }
    Ok(Some(Arc::new(
        files.into_iter().map(|(rel, _)| rel).collect(),
    )))
}

fn open_under(base: Option<&DirFd>, rel: &[u8]) -> Option<DirFd> {
    let mut d = base?.try_clone().ok()?;
    for c in rel.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        d = d.open_dir(c).ok()?;
    }
    Some(d)
}

/// Whether two versions of an entry differ in what a restore writes.
fn differs(a: &Node, b: &Node) -> bool {
    a.kind != b.kind
        || a.content != b.content
        || a.target != b.target
        || a.mode != b.mode
        || a.size != b.size
}

/// Every entry that is not a directory under `root` (relative paths), limited to `prefixes`
/// (and what is below them) when there are any. Iterative.
fn walk(
    repo: &Repository,
    root: &Node,
    prefixes: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, Node)>, Error> {
    let wanted = |rel: &[u8]| {
        prefixes.is_empty()
            || prefixes.iter().any(|p| {
                rel == p.as_slice()
                    || (rel.starts_with(p) && rel.get(p.len()) == Some(&b'/'))
                    || (p.starts_with(rel) && p.get(rel.len()) == Some(&b'/'))
            })
    };
    let mut out = Vec::new();
    if root.kind != NodeKind::Dir {
        out.push((root.name.clone(), root.clone()));
        return Ok(out);
    }
    let mut stack = vec![(root.subtree, Vec::new())];
    while let Some((sub, rel)) = stack.pop() {
        let Some(sub) = sub else { continue };
        let tree = repo.load_tree(&sub).map_err(EngineError::from)?;
        for n in tree.nodes {
            let child = if rel.is_empty() {
                n.name.clone()
            } else {
                [rel.as_slice(), b"/", &n.name].concat()
            };
            if !wanted(&child) {
                continue;
            }
            if n.kind == NodeKind::Dir {
                stack.push((n.subtree, child));
            } else {
                out.push((child, n));
            }
        }
    }
    Ok(out)
}
