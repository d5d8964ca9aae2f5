//! Compares a restored copy with the snapshot it came from: the same plan a restore with the
//! same options would carry out, each entry looked up under the target through directory
//! descriptors (never following a symlink), regular files read back and checked blob by blob
//! against the snapshot's ids, symlink targets and kinds compared. Nothing is written.
//!
//! Recovery plans verify their staging copy with it before the swap and the target after.

use super::plan::Entry;
use super::target::{open_target, Dirs};
use super::{plan_for, verify_file, RestoreOptions};
use crate::engine::progress::Progress;
use crate::engine::EngineError;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct Comparison {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Entries (relative to the target) that differ or are missing, with how.
    pub mismatches: Vec<(String, String)>,
}

/// What else [`compare`] looks for besides the plan's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extras {
    /// Entries the plan does not restore are someone else's business (a target with other
    /// files in it).
    Allowed,
    /// The directory must hold exactly what the plan restores (a staging copy): anything else
    /// (e.g. a temporary file an interrupted restore left) is a mismatch.
    Refused,
}

/// Compares `opts.target` with what restoring `opts` would put there.
pub fn compare(
    repo: &Repository,
    opts: &RestoreOptions,
    extras: Extras,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Comparison, EngineError> {
    let (_, plan, _) = plan_for(repo, opts)?;
    let root = open_target(&opts.target).map_err(|e| EngineError::Target {
        path: opts.target.display().to_string(),
        reason: match e {
            super::target::OpenError::ReadOnly => "read-only".into(),
            super::target::OpenError::Other(r) => r,
        },
    })?;
    let dirs = Dirs::new(&plan.dirs, root);
    progress.set_totals(plan.items.len() as u64, plan.bytes());
    let out = Mutex::new(Comparison {
        dirs: plan.dirs.iter().skip(1).filter(|d| d.keep).count() as u64,
        ..Default::default()
    });
    let record = |dir: usize, name: &[u8], why: String| {
        out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .mismatches
            .push((plan.rel_path(dir, name), why));
    };
    plan.items.par_iter().for_each(|item| {
        if cancel.is_cancelled() {
            return;
        }
        let (node, is_file) = match &item.entry {
            Entry::File(n) => (n, true),
            Entry::Other(n) => (n, false),
        };
        if node.kind == NodeKind::Socket {
            return;
        }
        match dirs
            .get(item.dir)
            .map_err(|e| format!("directory missing or not a directory: {e}"))
            .and_then(|d| check_entry(repo, &d, node))
        {
            Ok(()) => {
                let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                if is_file {
                    o.files += 1;
                    o.bytes += node.size;
                } else {
                    o.other += 1;
                }
            }
            Err(why) => record(item.dir, &node.name, why),
        }
        progress.add(1, node.size);
    });
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    for (i, d) in plan.dirs.iter().enumerate().skip(1) {
        if d.keep && dirs.get(i).is_err() {
            record(
                d.parent,
                &d.name,
                "directory missing or not a directory".into(),
            );
        }
    }
    if extras == Extras::Refused {
        // What each kept directory should hold: its kept subdirectories and its items.
        let mut expected: Vec<HashSet<&[u8]>> = vec![HashSet::new(); plan.dirs.len()];
        for d in plan.dirs.iter().skip(1).filter(|d| d.keep) {
            expected[d.parent].insert(&d.name);
        }
        for item in &plan.items {
            let node = match &item.entry {
                Entry::File(n) | Entry::Other(n) => n,
            };
            if node.kind != NodeKind::Socket {
                expected[item.dir].insert(&node.name);
            }
        }
        for (i, d) in plan.dirs.iter().enumerate() {
            if !d.keep {
                continue;
            }
            let Ok(fd) = dirs.get(i) else { continue };
            for name in fd.list().unwrap_or_default() {
                if !expected[i].contains(name.as_slice()) {
                    record(i, &name, "not in the snapshot".into());
                }
            }
        }
    }
    let mut out = out.into_inner().unwrap_or_else(|p| p.into_inner());
    out.mismatches.sort();
    Ok(out)
}

/// Whether the entry named `node.name` in `dir` holds what `node` records.
fn check_entry(
    repo: &Repository,
    dir: &crate::engine::dirfd::DirFd,
    node: &Node,
) -> Result<(), String> {
    let st = dir
        .stat_at(&node.name)
        .map_err(|e| format!("missing: {e}"))?;
    let kind = st.st_mode & libc::S_IFMT;
    let want = match node.kind {
        NodeKind::File => libc::S_IFREG,
        NodeKind::Dir => libc::S_IFDIR,
        NodeKind::Symlink => libc::S_IFLNK,
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDevice => libc::S_IFCHR,
        NodeKind::BlockDevice => libc::S_IFBLK,
        NodeKind::Socket => libc::S_IFSOCK,
    };
    if kind != want {
        return Err("a different kind of file".into());
    }
    match node.kind {
        NodeKind::File => {
            if u64::try_from(st.st_size).ok() != Some(node.size) {
                return Err(format!("size {} instead of {}", st.st_size, node.size));
            }
            let file = dir
                .open_read(&node.name)
                .map_err(|e| format!("open: {e}"))?;
            verify_file(repo, &file, &node.content)
        }
        NodeKind::Symlink => match dir.read_link(&node.name) {
            Ok(t) if t == node.target => Ok(()),
            Ok(_) => Err("symlink points elsewhere".into()),
            Err(e) => Err(format!("readlink: {e}")),
        },
        _ => Ok(()),
    }
}
