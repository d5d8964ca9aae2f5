//! File metadata between the file system and tree nodes: capture on backup, apply on restore.
//! Apply order matters: owner, then mode (chown clears setuid/setgid and file capabilities),
//! then xattrs and ACLs, then times last (every other change touches ctime/mtime).

use crate::repo::tree::{Node, NodeKind};
use nix::fcntl::AtFlags;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

pub fn kind_of(meta: &std::fs::Metadata) -> NodeKind {
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// uid/gid → name lookups, cached: NSS calls are slow and trees repeat owners.
#[derive(Debug, Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl NameCache {
    fn user(&self, uid: u32) -> Option<String> {
        let mut map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    fn group(&self, gid: u32) -> Option<String> {
        let mut map = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A node with everything but content/subtree filled from `meta` (an lstat of `path`).
pub fn capture(
    path: &Path,
    name: Vec<u8>,
    meta: &std::fs::Metadata,
    names: &NameCache,
) -> io::Result<Node> {
    let kind = kind_of(meta);
    let mut node = Node::new(name, kind);
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.user = names.user(node.uid);
    node.group = names.group(node.gid);
    node.atime_ns = ns(meta.atime(), meta.atime_nsec());
    node.mtime_ns = ns(meta.mtime(), meta.mtime_nsec());
    node.ctime_ns = ns(meta.ctime(), meta.ctime_nsec());
    node.size = if kind == NodeKind::File {
        meta.len()
    } else {
        0
    };
    node.inode = meta.ino();
    node.dev = meta.dev();
    node.nlink = meta.nlink();
    node.rdev = meta.rdev();
    if kind == NodeKind::Symlink {
        node.target = std::fs::read_link(path)?
            .into_os_string()
            .into_encoded_bytes();
    }
    node.xattrs = read_xattrs(path)?;
    Ok(node)
}

fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        // File systems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn timespec(ns: i64) -> TimeSpec {
    TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// Applies owner (when root), mode, xattrs and times of `node` to `path`. Failures are returned
/// as warnings per attribute; the file itself is kept.
pub fn apply(path: &Path, node: &Node, as_root: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    let is_link = node.kind == NodeKind::Symlink;
    if as_root {
        if let Err(e) = nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(node.uid.into()),
            Some(node.gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            warnings.push(format!("owner {}:{}: {e}", node.uid, node.gid));
        }
    }
    if !is_link {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)) {
            warnings.push(format!("mode {:o}: {e}", node.mode));
        }
    }
    for (name, value) in &node.xattrs {
        if let Err(e) = xattr::set(path, OsStr::from_bytes(name), value) {
            warnings.push(format!("xattr {}: {e}", String::from_utf8_lossy(name)));
        }
    }
    if let Err(e) = utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &timespec(node.atime_ns),
        &timespec(node.mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    ) {
        warnings.push(format!("times: {e}"));
    }
    warnings
}
