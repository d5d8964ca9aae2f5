//! One side of a pair as a map from relative path to [`Stamp`]: an iterative walk through held
//! directory descriptors ([`DirFd`]), `lstat` only, nothing read and no symlink followed. The
//! pair's own files (the trash at the root, transfer temporaries) are left out, as is whatever
//! the excludes name.

use super::plan::{Kind, Stamp};
use crate::engine::dirfd::DirFd;
use crate::engine::excludes::Excludes;
use nix::sys::stat::FileStat;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The trash directory at the root of each side.
pub const TRASH: &[u8] = b".backupd-trash";
/// Transfer temporaries start with this.
pub const TEMP_PREFIX: &[u8] = b".backupd-sync.";

/// An entry of a side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub stamp: Stamp,
    pub mode: u32,
}

pub type Tree = BTreeMap<Vec<u8>, Entry>;

pub fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// The stamp of an `lstat` (`None`: a FIFO, socket or device, which sync leaves alone).
pub fn stamp_of(st: &FileStat) -> Option<Stamp> {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => return None,
    };
    Some(Stamp {
        kind,
        size: if kind == Kind::Dir {
            0
        } else {
            u64::try_from(st.st_size).unwrap_or(0)
        },
        mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
        ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
        ino: st.st_ino,
    })
}

/// `a/b` + `c` = `a/b/c`.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Walks `root`. Entries that vanish while it walks are left out; an unreadable subdirectory
/// is reported in `warnings` and left out; the root itself must open.
pub fn scan(root: &Path, excludes: &Excludes, warnings: &mut Vec<String>) -> io::Result<Tree> {
    let top = DirFd::open_path(root)?;
    let mut out = Tree::new();
    let mut stack: Vec<(DirFd, Vec<u8>)> = vec![(top, Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let names = match dir.list() {
            Ok(n) => n,
            Err(e) if rel.is_empty() => return Err(e),
            Err(e) => {
                warnings.push(format!("{}: {e}", String::from_utf8_lossy(&rel)));
                continue;
            }
        };
        for name in names {
            if (rel.is_empty() && name == TRASH) || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let path = join(&rel, &name);
            if !excludes.is_empty() {
                let abs: PathBuf = root.join(OsStr::from_bytes(&path));
                if excludes.excludes(&abs, &name) {
                    continue;
                }
            }
            let st = match dir.stat_at(&name) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    warnings.push(format!("{}: {e}", String::from_utf8_lossy(&path)));
                    continue;
                }
            };
            let Some(stamp) = stamp_of(&st) else {
                continue;
            };
            if stamp.kind == Kind::Dir {
                match dir.open_dir(&name) {
                    Ok(sub) => stack.push((sub, path.clone())),
                    Err(e) => {
                        warnings.push(format!("{}: {e}", String::from_utf8_lossy(&path)));
                        continue;
                    }
                }
            }
            out.insert(
                path,
                Entry {
                    stamp,
                    mode: st.st_mode & 0o7777,
                },
            );
        }
    }
    Ok(out)
}

/// Opens the directory holding `rel` under `root`, one component at a time without following
/// symlinks; returns it and the last component.
pub fn open_parent<'a>(root: &DirFd, rel: &'a [u8]) -> io::Result<(DirFd, &'a [u8])> {
    let mut parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
    let name = parts.pop().unwrap_or_default();
    let mut dir = root.open_dir(b".")?;
    for part in parts {
        dir = dir.open_dir(part)?;
    }
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_without_following_links_and_skips_its_own_files() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("a/b/f"), b"x").expect("write");
        std::fs::create_dir(root.join(".backupd-trash")).expect("trash");
        std::fs::write(root.join("a/.backupd-sync.f.tmp"), b"x").expect("tmp");
        std::os::unix::fs::symlink("/etc", root.join("link")).expect("link");
        let excludes = Excludes::new(&[], &[]).expect("excludes");
        let tree = scan(root, &excludes, &mut Vec::new()).expect("scan");
        let names: Vec<_> = tree
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(names, ["a", "a/b", "a/b/f", "link"]);
        assert_eq!(tree[&b"link".to_vec()].stamp.kind, Kind::Symlink);
    }
}
