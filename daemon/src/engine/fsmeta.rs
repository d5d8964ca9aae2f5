//! File metadata between the file system and tree nodes: capture on backup, apply on restore.
//! Apply order matters: owner, then mode (chown clears setuid/setgid and file capabilities),
//! then xattrs and ACLs, then times last (every other change touches ctime/mtime).

use super::dirfd::{self, DirFd};
use crate::repo::tree::{Node, NodeKind};
use nix::fcntl::AtFlags;
use nix::sys::stat::{utimensat, FileStat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use xattr::FileExt;

/// The node kind of an `st_mode`.
pub fn kind_of(mode: u32) -> NodeKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => NodeKind::Dir,
        libc::S_IFLNK => NodeKind::Symlink,
        libc::S_IFIFO => NodeKind::Fifo,
        libc::S_IFCHR => NodeKind::CharDevice,
        libc::S_IFBLK => NodeKind::BlockDevice,
        libc::S_IFSOCK => NodeKind::Socket,
        _ => NodeKind::File,
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

/// A node with everything but content, subtree, symlink target and xattrs filled from `st`.
pub fn capture(st: &FileStat, name: Vec<u8>, names: &NameCache) -> Node {
    let kind = kind_of(st.st_mode);
    let mut node = Node::new(name, kind);
    node.mode = st.st_mode & 0o7777;
    node.uid = st.st_uid;
    node.gid = st.st_gid;
    node.user = names.user(node.uid);
    node.group = names.group(node.gid);
    node.atime_ns = ns(st.st_atime, st.st_atime_nsec);
    node.mtime_ns = ns(st.st_mtime, st.st_mtime_nsec);
    node.ctime_ns = ns(st.st_ctime, st.st_ctime_nsec);
    node.size = if kind == NodeKind::File {
        u64::try_from(st.st_size).unwrap_or(0)
    } else {
        0
    };
    node.inode = st.st_ino;
    node.dev = st.st_dev;
    node.nlink = st.st_nlink;
    node.rdev = st.st_rdev;
    node
}

/// The xattrs of an open file or directory.
pub fn xattrs_fd(file: &File) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    collect_xattrs(file.list_xattr(), |name| file.get_xattr(name))
}

/// The xattrs of `name` in `dir`, itself (a symlink is not followed).
pub fn xattrs_at(dir: &DirFd, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if !dirfd::proc_fd_available() {
        return Ok(Vec::new());
    }
    let path = dir.proc_path(name);
    collect_xattrs(xattr::list(&path), |n| xattr::get(&path, n))
}

fn collect_xattrs(
    names: io::Result<xattr::XAttrs>,
    get: impl Fn(&OsStr) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match names {
        Ok(names) => names,
        // File systems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = get(&name)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn timespec(ns: i64) -> TimeSpec {
    TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// Applies owner (when root), mode, xattrs and times of `node` to an open file or directory
/// (through its descriptor, so nothing is resolved by name). Failures are returned as warnings
/// per attribute; the file itself is kept.
pub fn apply_fd(file: &File, node: &Node, as_root: bool, strip_setid: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if as_root {
        if let Err(e) = nix::unistd::fchown(file, Some(node.uid.into()), Some(node.gid.into())) {
            warnings.push(format!("owner {}:{}: {e}", node.uid, node.gid));
        }
    }
    // A setgid directory only steers group inheritance: stripping is for what executes.
    let mode = restored_mode(node.mode, strip_setid && node.kind != NodeKind::Dir);
    if let Err(e) = nix::sys::stat::fchmod(file, Mode::from_bits_truncate(mode)) {
        warnings.push(format!("mode {mode:o}: {e}"));
    }
    for (name, value) in &node.xattrs {
        if let Err(e) = file.set_xattr(OsStr::from_bytes(name), value) {
            warnings.push(format!("xattr {}: {e}", dirfd::display_bytes(name)));
        }
    }
    if let Err(e) =
        nix::sys::stat::futimens(file, &timespec(node.atime_ns), &timespec(node.mtime_ns))
    {
        warnings.push(format!("times: {e}"));
    }
    warnings
}

/// The mode to restore: without setuid/setgid when asked to strip them.
pub fn restored_mode(mode: u32, strip_setid: bool) -> u32 {
    if strip_setid {
        mode & !(libc::S_ISUID | libc::S_ISGID)
    } else {
        mode
    }
}

/// Applies `node`'s metadata to `name` in `dir`, an entry this restore just created that is
/// not a regular file or directory (a symlink, FIFO or device). The entry is opened with
/// `O_PATH` and checked to still be what was created (type, owned by us, one link) before
/// anything changes: a user who can write the directory may have swapped it for a hard link to
/// a file of someone else's.
pub fn apply_special(
    dir: &DirFd,
    name: &[u8],
    node: &Node,
    as_root: bool,
    strip_setid: bool,
) -> Result<Vec<String>, String> {
    let fd = dir
        .open_path_fd(name)
        .map_err(|e| format!("reopen to set metadata: {e}"))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("fstat: {e}"))?;
    let ours = kind_of(st.st_mode) == node.kind
        && st.st_uid == crate::security::fsid::fs_uid()
        && st.st_nlink == 1;
    if !ours {
        return Err("replaced by something else while it was restored; not touched".into());
    }
    let mut warnings = Vec::new();
    if as_root {
        if let Err(e) = nix::unistd::fchownat(
            &fd,
            "",
            Some(node.uid.into()),
            Some(node.gid.into()),
            AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            warnings.push(format!("owner {}:{}: {e}", node.uid, node.gid));
        }
    }
    // `/proc/self/fd/N` of an O_PATH descriptor names exactly the object it holds; for
    // anything but a symlink, following it reaches that object and nothing else.
    let held = dirfd::held_path(&fd);
    let is_link = node.kind == NodeKind::Symlink;
    if !is_link && dirfd::proc_fd_available() {
        let mode = restored_mode(node.mode, strip_setid);
        if let Err(e) = std::fs::set_permissions(&held, std::fs::Permissions::from_mode(mode)) {
            warnings.push(format!("mode {mode:o}: {e}"));
        }
        for (xname, value) in &node.xattrs {
            if let Err(e) = xattr::set(&held, OsStr::from_bytes(xname), value) {
                warnings.push(format!("xattr {}: {e}", dirfd::display_bytes(xname)));
            }
        }
    } else if is_link && !node.xattrs.is_empty() {
        warnings.push("xattrs of a symlink are not restored".into());
    }
    // Times last; the name is one component in a held directory and is not followed, so at
    // worst the times of whatever was swapped in change.
    if let Err(e) = utimensat(
        dir,
        Path::new(OsStr::from_bytes(name)),
        &timespec(node.atime_ns),
        &timespec(node.mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    ) {
        warnings.push(format!("times: {e}"));
    }
    Ok(warnings)
}
