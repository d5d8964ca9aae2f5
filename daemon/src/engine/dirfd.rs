//! Open directories, and every operation on the entries in them, relative to the directory's
//! file descriptor. Backup and restore walk trees that less-privileged users can write while
//! the daemon runs as root; resolving a path string twice would let such a user swap a
//! component for a symlink in between. Here a name is always one component, looked up in a
//! directory that is already open, and never followed when it is a symlink.
//!
//! Only [`DirFd::open_path`] resolves a whole path (following symlinks): it is for paths an
//! administrator gave (a source, the prefix directories above it), resolved once and then held.

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An open directory. Held as a `File` so xattrs and `fstat` work on it directly.
#[derive(Debug)]
pub struct DirFd(File);

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

/// A single path component as a `Path` for nix's `*at` calls.
fn component(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

impl DirFd {
    /// Opens a directory by a path an administrator gave, following symlinks in it.
    pub fn open_path(path: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Self(File::from(fd)))
    }

    /// Opens the subdirectory `name`; fails with `ELOOP`/`ENOTDIR` when it is a symlink or not
    /// a directory.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Self> {
        let fd = nix::fcntl::openat(&self.0, component(name), DIR_FLAGS, Mode::empty())
            .map_err(errno)?;
        Ok(Self(File::from(fd)))
    }

    /// Opens the file `name` for reading without following a symlink and without blocking on a
    /// FIFO or a device; the caller checks the type with `fstat` on the result.
    pub fn open_read(&self, name: &[u8]) -> io::Result<File> {
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd =
            nix::fcntl::openat(&self.0, component(name), flags, Mode::empty()).map_err(errno)?;
        Ok(File::from(fd))
    }

    /// Creates `name`, which must not exist (nor be a symlink), for writing (and reading back).
    pub fn create_new(&self, name: &[u8], mode: u32) -> io::Result<File> {
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(
            &self.0,
            component(name),
            flags,
            Mode::from_bits_truncate(mode),
        )
        .map_err(errno)?;
        Ok(File::from(fd))
    }

    /// An `O_PATH` descriptor of `name` itself (a symlink is not followed): enough to `fstat`
    /// it and to change its owner, nothing that could read, write or block.
    pub fn open_path_fd(&self, name: &[u8]) -> io::Result<OwnedFd> {
        nix::fcntl::openat(
            &self.0,
            component(name),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)
    }

    /// `lstat` of `name`.
    pub fn stat_at(&self, name: &[u8]) -> io::Result<FileStat> {
        nix::sys::stat::fstatat(&self.0, component(name), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(errno)
    }

    pub fn stat(&self) -> io::Result<FileStat> {
        nix::sys::stat::fstat(&self.0).map_err(errno)
    }

    pub fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        nix::fcntl::readlinkat(&self.0, component(name))
            .map(|t| t.into_encoded_bytes())
            .map_err(errno)
    }

    /// The names in this directory (without `.` and `..`), unsorted.
    pub fn list(&self) -> io::Result<Vec<Vec<u8>>> {
        // `Dir` takes ownership and moves the shared offset, so it gets a duplicate; reading
        // from offset 0 again is what `rewinddir` on a fresh `fdopendir` does anyway.
        let dup = self.0.try_clone()?;
        let mut dir = nix::dir::Dir::from_fd(OwnedFd::from(dup)).map_err(errno)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(errno)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }

    pub fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        nix::sys::stat::mkdirat(&self.0, component(name), Mode::from_bits_truncate(mode))
            .map_err(errno)
    }

    /// Renames `from` in this directory to `to` in `to_dir`, replacing what is there (a
    /// directory is only replaced by a directory, an empty one).
    pub fn rename(&self, from: &[u8], to_dir: &DirFd, to: &[u8]) -> io::Result<()> {
        nix::fcntl::renameat(&self.0, component(from), &to_dir.0, component(to)).map_err(errno)
    }

    /// Renames like [`DirFd::rename`] but fails with `EEXIST` instead of replacing anything.
    pub fn rename_noreplace(&self, from: &[u8], to_dir: &DirFd, to: &[u8]) -> io::Result<()> {
        nix::fcntl::renameat2(
            &self.0,
            component(from),
            &to_dir.0,
            component(to),
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(errno)
    }

    /// Another descriptor of the same open directory.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self(self.0.try_clone()?))
    }

    /// A hard link `to` (in `to_dir`) to `from` in this directory; `from` is not followed.
    pub fn link(&self, from: &[u8], to_dir: &DirFd, to: &[u8]) -> io::Result<()> {
        nix::unistd::linkat(
            &self.0,
            component(from),
            &to_dir.0,
            component(to),
            AtFlags::empty(),
        )
        .map_err(errno)
    }

    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        nix::unistd::symlinkat(component(target), &self.0, component(name)).map_err(errno)
    }

    pub fn mknod(&self, name: &[u8], kind: SFlag, mode: u32, rdev: u64) -> io::Result<()> {
        nix::sys::stat::mknodat(
            &self.0,
            component(name),
            kind,
            Mode::from_bits_truncate(mode),
            rdev,
        )
        .map_err(errno)
    }

    /// Removes the non-directory `name`.
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        nix::unistd::unlinkat(
            &self.0,
            component(name),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(errno)
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &[u8]) -> io::Result<()> {
        nix::unistd::unlinkat(
            &self.0,
            component(name),
            nix::unistd::UnlinkatFlags::RemoveDir,
        )
        .map_err(errno)
    }

    /// A path that names `name` in this very directory (through `/proc/self/fd`, which refers
    /// to the open directory, not to whatever its path names now), for the few calls that have
    /// no `*at` form (`lgetxattr` and friends). Its last component is still the entry itself:
    /// callers use the non-following (`l*`) calls.
    pub fn proc_path(&self, name: &[u8]) -> PathBuf {
        held_path(&self.0).join(component(name))
    }

    /// The directory as a file, for `fstat`, `fchown`, `fchmod`, xattrs and `futimens`.
    pub fn file(&self) -> &File {
        &self.0
    }
}

impl AsFd for DirFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// `/proc/self/fd/N`: names exactly the object descriptor N holds, not whatever its path
/// names now.
pub fn held_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Whether `/proc/self/fd` can stand in for the `*at` calls Linux lacks.
pub fn proc_fd_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Same file system object: the identity a listing saw and the one an open returned.
pub fn same_object(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev
        && a.st_ino == b.st_ino
        && (a.st_mode & libc::S_IFMT) == (b.st_mode & libc::S_IFMT)
}

/// A lossless, printable form of a raw file name or path, by the one rule of
/// [`backupd_common::paths::escape_path`] (so backupctl's `--escaped-paths` reads it back).
pub fn display_bytes(bytes: &[u8]) -> String {
    backupd_common::paths::escape_path(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_bytes_is_lossless_and_printable() {
        assert_eq!(display_bytes("日本語.txt".as_bytes()), "日本語.txt");
        assert_eq!(display_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(display_bytes(b"line\nbreak"), "line\\x0abreak");
        assert_eq!(display_bytes(b"back\\slash"), "back\\\\slash");
    }

    #[test]
    fn open_dir_refuses_a_symlink_and_open_read_does_not_block_on_a_fifo() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("real")).expect("mkdir");
        std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("link"))
            .expect("symlink");
        nix::unistd::mkfifo(&tmp.path().join("fifo"), Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let dir = DirFd::open_path(tmp.path()).expect("open");
        assert!(dir.open_dir(b"real").is_ok());
        let err = dir.open_dir(b"link").expect_err("symlink followed");
        // O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR (ELOOP on some kernels).
        assert!(
            matches!(err.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)),
            "{err}"
        );
        assert!(dir.open_read(b"link").is_err());
        let fifo = dir.open_read(b"fifo").expect("fifo opens at once");
        let st = nix::sys::stat::fstat(&fifo).expect("fstat");
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFIFO);
        let mut names = dir.list().expect("list");
        names.sort();
        assert_eq!(
            names,
            [b"fifo".to_vec(), b"link".to_vec(), b"real".to_vec()]
        );
    }
}
