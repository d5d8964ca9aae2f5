//! `analytics estimate --path`: what a backup of a path would read, found from metadata alone.
//!
//! The walk is iterative (a stack of directories, never recursion over a depth the user's
//! tree chooses), follows no symlinks, and only counts: it opens no file. An entry it cannot
//! list or stat is counted as unreadable and skipped, because an estimate with a hole in it is
//! still worth more than none; only an unreadable starting point is an error.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// Regular files, and the sum of their sizes.
    pub files: u64,
    pub bytes: u64,
    /// Directories that could not be listed and entries that could not be stat'ed.
    pub unreadable: u64,
}

/// Walks `root` without following symlinks (`root` itself included: a symlink is counted as
/// nothing, as the backup stores it as a link).
pub fn scan(root: &Path) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let meta = fs::symlink_metadata(root)?;
    if meta.is_file() {
        scan.add_file(&meta);
        return Ok(scan);
    }
    if !meta.is_dir() {
        return Ok(scan);
    }
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            scan.unreadable += 1;
            continue;
        };
        for entry in entries {
            let Ok(entry) = entry else {
                scan.unreadable += 1;
                continue;
            };
            // `DirEntry::metadata` is lstat: a symlink stays a symlink.
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) if m.is_file() => scan.add_file(&m),
                Ok(_) => {}
                Err(_) => scan.unreadable += 1,
            }
        }
    }
    Ok(scan)
}

impl Scan {
    fn add_file(&mut self, meta: &fs::Metadata) {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(meta.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn counts_regular_files_below_and_never_follows_symlinks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        fs::write(root.join("a"), vec![0u8; 100]).expect("a");
        fs::create_dir_all(root.join("sub/deeper")).expect("sub");
        fs::write(root.join("sub/b"), vec![0u8; 20]).expect("b");
        fs::write(root.join("sub/deeper/c"), b"").expect("c");
        // A link to a big tree outside: following it would count 5000 more bytes.
        let outside = tempfile::tempdir().expect("outside");
        fs::write(outside.path().join("big"), vec![0u8; 5000]).expect("big");
        symlink(outside.path(), root.join("link-to-dir")).expect("dir link");
        symlink(root.join("a"), root.join("link-to-file")).expect("file link");

        let found = scan(root).expect("scan");
        assert_eq!(
            found,
            Scan {
                files: 3,
                bytes: 120,
                unreadable: 0
            }
        );
        assert_eq!(scan(&root.join("a")).expect("one file").bytes, 100);
        assert_eq!(
            scan(&root.join("link-to-dir")).expect("link"),
            Scan::default()
        );
    }

    #[test]
    fn an_unreadable_directory_is_counted_not_fatal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let locked = dir.path().join("locked");
        fs::create_dir(&locked).expect("locked");
        fs::write(locked.join("secret"), b"xyz").expect("secret");
        fs::write(dir.path().join("open"), b"12345").expect("open");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
        let found = scan(dir.path());
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("chmod back");
        let found = found.expect("scan");
        // root reads a mode-000 directory anyway; everyone else cannot.
        let want = if reads_past_modes() {
            Scan {
                files: 2,
                bytes: 8,
                unreadable: 0,
            }
        } else {
            Scan {
                files: 1,
                bytes: 5,
                unreadable: 1,
            }
        };
        assert_eq!(found, want);
    }

    #[test]
    fn a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(scan(&dir.path().join("absent")).is_err());
    }

    /// Whether this process can read what its mode forbids (root, or CAP_DAC_OVERRIDE).
    fn reads_past_modes() -> bool {
        let dir = tempfile::tempdir().expect("temp dir");
        let probe = dir.path().join("probe");
        fs::create_dir(&probe).expect("probe");
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).expect("chmod");
        let readable = fs::read_dir(&probe).is_ok();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o700)).expect("chmod back");
        readable
    }
}
