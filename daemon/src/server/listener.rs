//! The listening socket: bound by us (refusing to start when a live daemon answers, replacing a
//! stale socket file, setting mode and group) or adopted from systemd socket activation.
//!
//! Binding happens in `main` before the async runtime starts, while the process is still single
//! threaded, so the umask can be tightened around `bind` without racing other threads.

use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Gid, Group};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdListener;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "another backupd is already running on {path}; stop it first (`backupctl --socket {path} \
         system shutdown`) or choose another --socket"
    )]
    AlreadyRunning { path: PathBuf },
    #[error("{path} exists and is not a socket; remove it or choose another --socket")]
    NotASocket { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "socket group {group:?} (server.socket_group) does not exist; create it (e.g. \
         `groupadd --system {group}`) or change the config"
    )]
    NoSuchGroup { group: String },
    #[error("socket activation: {0}")]
    Activation(String),
    #[error(
        "socket directory {path} is {owner} with mode {mode:04o}, {why}: another user could \
         replace the socket or pose as this daemon. Remove it (`rm -r {path}`, as its owner or \
         root) so that backupd creates it afresh, or use a directory you own that only you can \
         write: set XDG_RUNTIME_DIR (e.g. /run/user/$(id -u)) or pass --socket",
        path = path.display()
    )]
    UnsafeDirectory {
        path: PathBuf,
        /// `owned by uid 65534 (nobody)`.
        owner: String,
        mode: u32,
        /// What is wrong: "not owned by you or root", "writable by other users".
        why: &'static str,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ListenError + 'a {
    move |source| ListenError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A listening Unix socket plus what we need to clean up after it.
#[derive(Debug)]
pub struct Listener {
    inner: StdListener,
    path: PathBuf,
    activated: bool,
    /// (dev, ino) of the socket file we created; used to remove only our own file at exit.
    created: Option<(u64, u64)>,
}

/// How the socket file should look after binding.
#[derive(Clone, Debug)]
pub struct SocketPermissions {
    pub mode: u32,
    /// Group name to own the socket; `None` keeps the daemon's group.
    pub group: Option<String>,
    /// Whether a missing group is an error (configured explicitly) or silently skipped (default).
    pub group_required: bool,
}

impl Listener {
    /// Binds `path`, replacing a stale socket file but never a live daemon's socket.
    pub fn bind(path: &Path, perms: &SocketPermissions) -> Result<Self, ListenError> {
        let gid = resolve_group(perms)?;
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                // The parent holds only our socket: searchable by all when the socket is meant to
                // be shared, private otherwise. Existing directories are left as they are.
                let dir_mode = if perms.mode & 0o077 != 0 {
                    0o755
                } else {
                    0o700
                };
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(dir_mode)
                    .create(parent)
                    .map_err(io_err("create socket directory", parent))?;
            }
            // Checked after creating too: another user may have made it first.
            check_socket_dir(parent)?;
        }
        remove_stale(path)?;

        let old_umask = umask(Mode::from_bits_truncate(0o177));
        let bound = StdListener::bind(path);
        umask(old_umask);
        let inner = match bound {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(ListenError::AlreadyRunning {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(io_err("bind socket", path)(e)),
        };
        let meta = std::fs::symlink_metadata(path).map_err(io_err("stat socket", path))?;
        let listener = Self {
            inner,
            path: path.to_owned(),
            activated: false,
            created: Some((meta.dev(), meta.ino())),
        };
        if let Some(gid) = gid {
            chown(path, None, Some(gid))
                .map_err(|e| io_err("set group of", path)(io::Error::from(e)))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(perms.mode))
            .map_err(io_err("set mode of", path))?;
        Ok(listener)
    }

    /// Adopts the first socket systemd passed in (LISTEN_FDS), if any.
    pub fn from_activation() -> Result<Option<Self>, ListenError> {
        let mut fds = sd_notify::listen_fds()
            .map_err(|e| ListenError::Activation(format!("invalid LISTEN_FDS/LISTEN_PID: {e}")))?;
        let Some(fd) = fds.next() else {
            return Ok(None);
        };
        if fds.next().is_some() {
            tracing::warn!("systemd passed more than one socket; using the first (fd {fd})");
        }
        let inner = adopt_fd(fd)?;
        let path = inner
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
            .ok_or_else(|| {
                ListenError::Activation(format!(
                    "fd {fd} is not a Unix socket bound to a path; check ListenStream= in \
                     backupd.socket"
                ))
            })?;
        Ok(Some(Self {
            inner,
            path,
            activated: true,
            created: None,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn activated(&self) -> bool {
        self.activated
    }

    /// Converts into a tokio listener; must be called inside the runtime.
    pub fn into_tokio(self) -> io::Result<tokio::net::UnixListener> {
        self.inner.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(self.inner)
    }

    /// A guard that removes the socket file we created when dropped (not an activated one, and
    /// not a file another daemon has since put in its place).
    pub fn cleanup_guard(&self) -> SocketCleanup {
        SocketCleanup {
            path: self.path.clone(),
            created: self.created,
        }
    }
}

#[derive(Debug)]
pub struct SocketCleanup {
    path: PathBuf,
    created: Option<(u64, u64)>,
}

impl Drop for SocketCleanup {
    fn drop(&mut self) {
        let Some((dev, ino)) = self.created else {
            return;
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == dev && m.ino() == ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove socket file");
                }
            }
            _ => {}
        }
    }
}

/// Refuses a socket directory that another user controls. Whoever owns the directory, or may
/// write to it, can remove our socket and listen in its place, receiving every client's Hello
/// and passphrases; a predictable fallback such as `/tmp/backupd-UID` can be made by anyone
/// before the daemon's first start. Root-owned sticky directories (`/tmp` itself) are fine: the
/// sticky bit keeps others from removing or renaming our socket.
fn check_socket_dir(dir: &Path) -> Result<(), ListenError> {
    let me = nix::unistd::geteuid().as_raw();
    let trusted = |uid: u32| uid == me || uid == 0;
    let link = std::fs::symlink_metadata(dir).map_err(io_err("inspect socket directory", dir))?;
    let meta = std::fs::metadata(dir).map_err(io_err("inspect socket directory", dir))?;
    let mode = meta.mode() & 0o7777;
    let why = if !trusted(link.uid()) {
        // A symlink another user owns can be pointed anywhere at any time.
        Some(("not owned by you or root", link.uid(), link.mode() & 0o7777))
    } else if !trusted(meta.uid()) {
        Some(("not owned by you or root", meta.uid(), mode))
    } else if mode & 0o022 != 0 && !(mode & 0o1000 != 0 && meta.uid() == 0) {
        Some(("writable by other users", meta.uid(), mode))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some((why, uid, mode)) => Err(ListenError::UnsafeDirectory {
            path: dir.to_owned(),
            owner: owned_by(uid),
            mode,
            why,
        }),
    }
}

fn owned_by(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("owned by uid {uid} ({})", user.name),
        _ => format!("owned by uid {uid}"),
    }
}

/// Removes `path` if it is a socket nobody answers on; refuses if a daemon answers.
fn remove_stale(path: &Path) -> Result<(), ListenError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket {
            path: path.to_owned(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ListenError::AlreadyRunning {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale socket file");
            std::fs::remove_file(path).map_err(io_err("remove stale socket", path))
        }
        Err(e) => Err(io_err("probe existing socket", path)(e)),
    }
}

fn resolve_group(perms: &SocketPermissions) -> Result<Option<Gid>, ListenError> {
    let Some(name) = &perms.group else {
        return Ok(None);
    };
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid)),
        Ok(None) | Err(_) if !perms.group_required => {
            tracing::debug!(group = %name, "default socket group does not exist; keeping the daemon's group");
            Ok(None)
        }
        _ => Err(ListenError::NoSuchGroup {
            group: name.clone(),
        }),
    }
}

/// Takes ownership of a socket-activated fd.
#[allow(unsafe_code)]
fn adopt_fd(fd: std::os::fd::RawFd) -> Result<StdListener, ListenError> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    use std::os::fd::{BorrowedFd, FromRawFd};
    // SAFETY: `fd` comes from sd_notify::listen_fds(), which checked LISTEN_PID against our pid
    // and cleared LISTEN_FDS, so this is the only place that takes ownership of it, exactly once.
    // The borrow below only lives for the type check.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(other) => {
            return Err(ListenError::Activation(format!(
                "fd {fd} is a {other:?} socket; backupd.socket must use ListenStream="
            )))
        }
        Err(e) => {
            return Err(ListenError::Activation(format!(
                "fd {fd} is not a socket: {e}"
            )))
        }
    }
    // SAFETY: as above; ownership moves into the listener, which closes it on drop.
    Ok(unsafe { StdListener::from_raw_fd(fd) })
}
