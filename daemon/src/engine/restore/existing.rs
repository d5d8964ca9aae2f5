//! What a restore does with an entry that is already where it restores one (`--overwrite`).
//! The entry is looked at through its directory's descriptor without following a symlink, and
//! a regular file is only read through a descriptor checked to be the entry `stat` saw, so a
//! user who can write the target cannot make the comparison read another file.

use super::super::dirfd::{self, DirFd};
use super::verify_file;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::Repository;
use backupd_common::protocol::Overwrite;
use nix::sys::stat::FileStat;

/// The verdict on one destination name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing there: restore.
    Absent,
    /// Something there that the snapshot's entry replaces.
    Replace,
    /// Already equal to the snapshot's entry (`if-changed`): left alone.
    Unchanged,
    /// Left alone whatever it holds (`never`).
    Keep,
}

/// Decides what happens to whatever sits at `node.name` in `dir`.
pub fn decide(repo: &Repository, dir: &DirFd, node: &Node, policy: Overwrite) -> Existing {
    let st = match dir.stat_at(&node.name) {
        Ok(st) => st,
        // Missing, or not even stat-able: the restore's own create or rename says what fails.
        Err(_) => return Existing::Absent,
    };
    match policy {
        Overwrite::Never => Existing::Keep,
        Overwrite::Always => Existing::Replace,
        Overwrite::IfChanged if equals(repo, dir, node, &st) => Existing::Unchanged,
        Overwrite::IfChanged => Existing::Replace,
    }
}

/// Whether the entry `st` describes holds what `node` does: a regular file of the same size
/// and mtime whose content matches the snapshot's blobs, or a symlink to the same target.
fn equals(repo: &Repository, dir: &DirFd, node: &Node, st: &FileStat) -> bool {
    let kind = st.st_mode & libc::S_IFMT;
    match node.kind {
        NodeKind::File if kind == libc::S_IFREG => {
            let mtime_ns = st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec;
            if u64::try_from(st.st_size).ok() != Some(node.size) || mtime_ns != node.mtime_ns {
                return false;
            }
            // Size and mtime can be set by anyone who can write the file: the content decides.
            let Ok(file) = dir.open_read(&node.name) else {
                return false;
            };
            let same = nix::sys::stat::fstat(&file).is_ok_and(|now| dirfd::same_object(st, &now));
            same && verify_file(repo, &file, &node.content).is_ok()
        }
        NodeKind::Symlink if kind == libc::S_IFLNK => dir
            .read_link(&node.name)
            .is_ok_and(|target| target == node.target),
        _ => false,
    }
}
