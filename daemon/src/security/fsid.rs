//! Acting on behalf of a user: the file-system identity (fsuid, fsgid, supplementary groups) a
//! thread of the daemon takes on while it works on that user's files, so the kernel, not the
//! daemon, decides what the job may read or write.
//!
//! `setfsuid`, `setfsgid` and the raw `setgroups` system call change only the calling thread
//! (glibc's `setgroups()` would change every thread of the process, so it is never used). A
//! switched thread goes back to the daemon's identity only inside [`as_daemon`] (the
//! repository's storage), and comes back to the user's when that guard drops. Every switch is
//! read back; a switch that did not take fails the job, it never leaves the thread as root. The
//! one case that cannot be reported (switching back to the user in a guard's `drop`) aborts the
//! process: a worker left with root's rights while it walks a user's tree is the confused
//! deputy this module exists to prevent.
//!
//! Moving fsuid away from 0 clears the file-system capabilities (`CAP_DAC_OVERRIDE`,
//! `CAP_CHOWN`, `CAP_FOWNER`, `CAP_FSETID`, ...) from the thread's effective set; moving it
//! back restores them. Other capabilities stay (`CAP_MKNOD`, `CAP_SYS_ADMIN`), so the callers
//! still refuse device nodes and do not chown on a user's behalf.

use backupd_common::protocol::ActingUser;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

/// Why a thread could not take on (or give up) an identity.
#[derive(Debug, thiserror::Error)]
pub enum FsIdError {
    #[error(
        "cannot act as uid {uid}: switching the file-system {what} to {wanted} left it at \
         {got}; the job is not run with the daemon's rights instead (is backupd running as \
         root? only root can act on behalf of another user)"
    )]
    Switch {
        uid: u32,
        what: &'static str,
        wanted: u32,
        got: u32,
    },
    #[error(
        "cannot act as uid {uid}: setting its {count} supplementary groups failed: {source}; \
         the job is not run with the daemon's rights instead"
    )]
    Groups {
        uid: u32,
        count: usize,
        source: std::io::Error,
    },
    #[error("cannot act as uid {uid}: looking it up in the user database failed: {source}")]
    Lookup { uid: u32, source: nix::Error },
}

/// A complete file-system identity: what a thread acting for a user carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsIdentity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as the user database lists them.
    pub groups: Vec<u32>,
}

impl FsIdentity {
    /// The identity of `user` now: its primary group and supplementary groups from the user
    /// database (so a group change applies to the next job). A uid the database does not know
    /// keeps the gid it connected with and no supplementary group.
    pub fn resolve(user: ActingUser) -> Result<Self, FsIdError> {
        use nix::unistd::{Gid, Uid, User};
        let lookup = |source| FsIdError::Lookup {
            uid: user.uid,
            source,
        };
        let Some(entry) = User::from_uid(Uid::from_raw(user.uid)).map_err(lookup)? else {
            return Ok(Self {
                uid: user.uid,
                gid: user.gid,
                groups: Vec::new(),
            });
        };
        let name = std::ffi::CString::new(entry.name.into_bytes())
            .map_err(|_| lookup(nix::Error::EINVAL))?;
        let groups = nix::unistd::getgrouplist(&name, entry.gid)
            .map_err(lookup)?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Ok(Self {
            uid: user.uid,
            gid: entry.gid.as_raw(),
            groups,
        })
    }

    /// The daemon's own identity: its effective ids and the groups it started with.
    pub fn daemon() -> &'static FsIdentity {
        static DAEMON: OnceLock<FsIdentity> = OnceLock::new();
        // Every switch reads this first, so it is taken before any thread has switched.
        DAEMON.get_or_init(|| FsIdentity {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: current_groups().unwrap_or_default(),
        })
    }
}

thread_local! {
    /// Whom this thread acts for; `None`: the daemon itself.
    static ACTING: RefCell<Option<Arc<FsIdentity>>> = const { RefCell::new(None) };
    /// This thread, acting for nobody, was checked to have the daemon's file-system identity.
    /// Only this module switches identities, and every switch away from the daemon's notes
    /// whom the thread acts for, so the check (a system call) is made once per thread, not
    /// once per repository read.
    static DAEMON_CONFIRMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The user this thread acts for, if any.
pub fn acting() -> Option<Arc<FsIdentity>> {
    ACTING.with(|a| a.borrow().clone())
}

/// The uid this thread creates files as: the user it acts for, else the daemon's.
pub fn fs_uid() -> u32 {
    acting().map_or(FsIdentity::daemon().uid, |a| a.uid)
}

/// Switches this thread to `id` for good (a dedicated worker that ends with its job).
pub fn become_user(id: &Arc<FsIdentity>) -> Result<(), FsIdError> {
    FsIdentity::daemon();
    // Even a switch that fails half-way leaves the thread no longer surely the daemon's.
    DAEMON_CONFIRMED.set(false);
    apply(id, id.uid)?;
    ACTING.with(|a| *a.borrow_mut() = Some(id.clone()));
    Ok(())
}

/// Acts as `id` until the guard drops, then as whatever the thread was before.
pub fn enter(id: &Arc<FsIdentity>) -> Result<Guard, FsIdError> {
    let previous = acting();
    become_user(id)?;
    Ok(Guard {
        previous: Some(previous),
    })
}

/// Has the daemon's own rights until the guard drops (the repository's storage is the
/// daemon's, whoever the job acts for). A no-op on a thread that acts for nobody.
pub fn as_daemon() -> Result<Guard, FsIdError> {
    let Some(user) = acting() else {
        // A thread started by one acting for a user inherits its credentials but not this
        // module's note of them (a repository lock's refresher): it is the daemon's for good.
        if !DAEMON_CONFIRMED.get() {
            let daemon = FsIdentity::daemon();
            if libc_setfsuid(u32::MAX) as u32 != daemon.uid {
                apply(daemon, daemon.uid)?;
            }
            DAEMON_CONFIRMED.set(true);
        }
        return Ok(Guard { previous: None });
    };
    apply(FsIdentity::daemon(), user.uid)?;
    ACTING.with(|a| *a.borrow_mut() = None);
    Ok(Guard {
        previous: Some(Some(user)),
    })
}

/// Puts the thread back into the identity it had before the guard was taken.
pub struct Guard {
    /// `None`: nothing was switched.
    previous: Option<Option<Arc<FsIdentity>>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(previous) = self.previous.take() else {
            return;
        };
        let target = previous.as_deref().unwrap_or(FsIdentity::daemon());
        if let Err(e) = apply(target, target.uid) {
            // Leaving a thread with the wrong rights, root's in particular, is not an option,
            // and a destructor cannot report: stop here (systemd restarts the daemon and the
            // queue retries the job).
            tracing::error!(error = %e, "cannot restore a worker thread's file-system identity; aborting");
            std::process::abort();
        }
        ACTING.with(|a| *a.borrow_mut() = previous);
    }
}

/// Sets this thread's groups, fsgid and fsuid to `id` and reads each back. `for_uid` names the
/// user the job acts for, in errors.
fn apply(id: &FsIdentity, for_uid: u32) -> Result<(), FsIdError> {
    let to_user = id.uid != FsIdentity::daemon().uid;
    // Towards a user the uid goes last (its groups are set while the thread still may); back
    // to the daemon it goes first, which gives back the file-system capabilities.
    if to_user {
        set_groups(&id.groups, for_uid)?;
        set_fs(Fs::Gid, id.gid, for_uid)?;
        set_fs(Fs::Uid, id.uid, for_uid)
    } else {
        set_fs(Fs::Uid, id.uid, for_uid)?;
        set_fs(Fs::Gid, id.gid, for_uid)?;
        set_groups(&id.groups, for_uid)
    }
}

#[derive(Clone, Copy)]
enum Fs {
    Uid,
    Gid,
}

fn set_fs(which: Fs, wanted: u32, for_uid: u32) -> Result<(), FsIdError> {
    // Both calls return the previous value and never fail outright; `-1` (never a valid id)
    // changes nothing and returns the current one, which is how a switch is checked.
    let call = |v: u32| -> u32 {
        (match which {
            Fs::Uid => libc_setfsuid(v),
            Fs::Gid => libc_setfsgid(v),
        }) as u32
    };
    call(wanted);
    let got = call(u32::MAX);
    if got == wanted {
        Ok(())
    } else {
        Err(FsIdError::Switch {
            uid: for_uid,
            what: match which {
                Fs::Uid => "uid",
                Fs::Gid => "gid",
            },
            wanted,
            got,
        })
    }
}

fn set_groups(groups: &[u32], for_uid: u32) -> Result<(), FsIdError> {
    let failed = |source| FsIdError::Groups {
        uid: for_uid,
        count: groups.len(),
        source,
    };
    raw_setgroups(groups).map_err(failed)?;
    let mut now = current_groups().map_err(failed)?;
    let mut wanted = groups.to_vec();
    now.sort_unstable();
    wanted.sort_unstable();
    now.dedup();
    wanted.dedup();
    if now == wanted {
        Ok(())
    } else {
        Err(failed(std::io::Error::other(format!(
            "the thread's groups are {now:?} afterwards"
        ))))
    }
}

// The few system calls without a safe wrapper that changes one thread only. The workspace
// denies unsafe code; this is its second reviewed exception (the first adopts a
// socket-activated fd): each call takes integers or a slice it only reads.
#[allow(unsafe_code)]
fn libc_setfsuid(uid: u32) -> i32 {
    // SAFETY: integer argument, no memory passed.
    unsafe { libc::setfsuid(uid) }
}

#[allow(unsafe_code)]
fn libc_setfsgid(gid: u32) -> i32 {
    // SAFETY: integer argument, no memory passed.
    unsafe { libc::setfsgid(gid) }
}

/// `setgroups(2)` on this thread alone (the raw system call, not glibc's process-wide one).
#[allow(unsafe_code)]
fn raw_setgroups(groups: &[u32]) -> std::io::Result<()> {
    // SAFETY: the kernel reads `len` gid_t values from the slice's buffer, which outlives the
    // call; gid_t is u32 on Linux.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            groups.len() as libc::size_t,
            groups.as_ptr(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// This thread's supplementary groups (the system call reads the calling thread's credentials).
fn current_groups() -> std::io::Result<Vec<u32>> {
    Ok(nix::unistd::getgroups()
        .map_err(std::io::Error::from)?
        .into_iter()
        .map(|g| g.as_raw())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> Arc<FsIdentity> {
        Arc::new(FsIdentity {
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        })
    }

    /// Needs root (as CI runs): only root may switch.
    #[test]
    fn a_thread_acts_as_the_user_until_the_guard_drops_and_others_never_do() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, b"root only").expect("write");
        let (switched, on_switch) = std::sync::mpsc::channel();
        let (read, checked) = std::sync::mpsc::channel();
        let path = secret.clone();
        let worker = std::thread::spawn(move || {
            let user = nobody();
            {
                let _g = enter(&user).expect("switch");
                assert_eq!(acting().as_deref(), Some(&*user));
                let err = std::fs::read(&secret).expect_err("nobody read a 0700 dir");
                assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
                // Another thread of the process keeps root's rights meanwhile.
                switched.send(()).expect("tell the test thread");
                checked.recv().expect("the test thread read the file");
                {
                    let _d = as_daemon().expect("back to the daemon");
                    assert!(acting().is_none());
                    std::fs::read(&secret).expect("daemon reads inside as_daemon");
                }
                assert!(
                    std::fs::read(&secret).is_err(),
                    "user again after as_daemon"
                );
            }
            assert!(acting().is_none());
            std::fs::read(&secret).expect("root again after the guard");
            assert_eq!(
                current_groups().ok(),
                Some(FsIdentity::daemon().groups.clone())
            );
        });
        on_switch.recv().expect("the worker switched");
        std::fs::read(&path).expect("root reads while the worker acts as nobody");
        read.send(()).expect("let the worker go on");
        worker.join().expect("worker");
    }
}
