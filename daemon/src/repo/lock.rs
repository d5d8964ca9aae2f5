//! Repository locks (`locks/<random>`): shared for backup, restore and check, exclusive for
//! prune. Holders refresh their lock every [`REFRESH_EVERY`] from a background thread that stops
//! when the guard drops.
//!
//! Staleness (docs/FORMAT.md, "Locks"): a lock of this host is stale when its process is gone,
//! when its pid now belongs to another process (the start time recorded with the pid differs),
//! or when it carries this daemon's pid without having been written by this process (a previous
//! incarnation's lock, e.g. pid 1 in a container). A lock of another host is stale only once it
//! has not been refreshed for [`STALE_AFTER`]: this host cannot see that host's processes.
//!
//! Read-only operations take [`LockMode::ReadOnly`]: when the lock file cannot be written
//! because the file system is full or read-only, they go on after checking that no exclusive
//! lock is held, and log that they did.

use super::backend::{Backend, BackendError, ErrorKind, FileKind, Key};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    /// Start time of `pid` (field 22 of `/proc/PID/stat`, clock ticks since boot), so that a pid
    /// reused by another process is not mistaken for the holder. Absent in older lock files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    pub purpose: String,
    /// Seconds since the epoch of the last refresh.
    pub refreshed: i64,
    /// A random value of the holder's, so that it can tell its own exclusive lock from one
    /// that replaced it. Absent in older lock files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The name of the exclusive lock: one well-known object, created with a conditional write
/// (put-if-absent), so that two exclusive lockers on different hosts cannot both take it
/// even where listings lag behind writes.
pub const EXCLUSIVE_NAME: &str = "exclusive";

/// What a lock is taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Conflicts with every other lock (prune, rebuild-index).
    Exclusive,
    /// Conflicts with exclusive locks (backup).
    Shared,
    /// Shared, for an operation that writes nothing to the repository (restore, check without
    /// repair): if the lock file cannot be written (full or read-only file system), it goes on
    /// without one once no exclusive lock is seen.
    ReadOnly,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("repository is locked {kind} by pid {pid} on {host} for {purpose} (lock file {object}); {hint}")]
    Busy {
        kind: &'static str,
        pid: u32,
        host: String,
        purpose: String,
        object: String,
        /// What to do: wait, or how to remove a lock whose holder is gone.
        hint: String,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a lock is not (or no longer) honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stale {
    /// The process is gone.
    Gone,
    /// The pid is alive but was started at another time: it is another process now.
    PidReused { now: u64 },
    /// Our own pid, but not a lock this process wrote: left by an earlier incarnation.
    EarlierSelf,
    /// Another host's lock, unrefreshed for longer than [`STALE_AFTER`].
    Expired,
}

impl Stale {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gone => "its process is gone",
            Self::PidReused { .. } => "its pid now belongs to another process (start time differs)",
            Self::EarlierSelf => {
                "it carries this daemon's pid but was not written by this process (left by an \
                 earlier run)"
            }
            Self::Expired => "it was not refreshed for 30 minutes",
        }
    }
}

/// Names of the lock files this process wrote and still holds.
static OURS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn ours(f: impl FnOnce(&mut HashSet<String>)) {
    f(OURS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new))
}

fn is_ours(name: &str) -> bool {
    let mut found = false;
    ours(|s| found = s.contains(name));
    found
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`), `None`
/// when the process or `/proc` is not there.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // `rest` starts with field 3, so field 22 is the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl LockInfo {
    /// Whether the lock named `name` is no longer honoured, and why.
    fn staleness(&self, name: &str, now: i64) -> Option<Stale> {
        if self.host != super::hostname() {
            return (now - self.refreshed > STALE_AFTER.as_secs() as i64).then_some(Stale::Expired);
        }
        // On this host only the process decides: a suspended laptop or a clock jump must not
        // expire a running backup's lock, however old its `refreshed`.
        if self.pid == std::process::id() {
            return (!is_ours(name)).then_some(Stale::EarlierSelf);
        }
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None)
            .is_err_and(|e| e == nix::errno::Errno::ESRCH);
        if gone {
            return Some(Stale::Gone);
        }
        match (self.pid_start, process_start(self.pid)) {
            (Some(recorded), Some(now)) if recorded != now => Some(Stale::PidReused { now }),
            _ => None,
        }
    }
}

/// A held lock; dropping it stops the refresher and removes the lock file.
#[derive(Debug)]
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    /// `None`: a read-only operation that could not write its lock file.
    name: Option<String>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl LockGuard {
    /// Whether any other live lock is held on the repository now (stale ones are removed).
    pub fn others_live(&self) -> Result<bool, LockError> {
        Ok(!live_locks(self.backend.as_ref(), self.name.as_deref())?.is_empty())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        if let Some(name) = self.name.take() {
            let _ = self.backend.delete(Key::lock(&name));
            ours(|s| {
                s.remove(&name);
            });
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A lock file's content, `None` if it is gone or unreadable.
fn read_lock(backend: &dyn Backend, name: &str) -> Option<LockInfo> {
    serde_json::from_slice(&backend.get(Key::lock(name)).ok()?).ok()
}

/// Live locks other than `except`, with their file names, removing stale ones on the way.
fn live_locks(
    backend: &dyn Backend,
    except: Option<&str>,
) -> Result<Vec<(String, LockInfo)>, LockError> {
    let mut live = Vec::new();
    let t = now();
    for name in backend.list(FileKind::Lock)? {
        if Some(name.as_str()) == except {
            continue;
        }
        let Ok(bytes) = backend.get(Key::lock(&name)) else {
            continue; // removed meanwhile
        };
        let info = match serde_json::from_slice::<LockInfo>(&bytes) {
            Ok(info) => info,
            Err(_) => {
                tracing::warn!(lock = %backend.describe(Key::lock(&name)), "ignoring an unreadable lock file");
                continue;
            }
        };
        match info.staleness(&name, t) {
            None => live.push((name, info)),
            Some(why) => {
                let object = backend.describe(Key::lock(&name));
                // Another host may have taken over this stale lock meanwhile (the exclusive
                // lock's name is fixed): only the stale content is deleted.
                let current = read_lock(backend, &name);
                let still = current
                    .as_ref()
                    .is_some_and(|c| c.token == info.token && c.refreshed == info.refreshed);
                if let (false, Some(replacement)) = (still, current) {
                    // Taken over: the new holder's lock is live (it was just written).
                    live.push((name, replacement));
                    continue;
                }
                // On a read-only or full file system the removal fails; the lock is ignored
                // all the same.
                let removed = if still {
                    backend.delete(Key::lock(&name))
                } else {
                    Ok(())
                };
                tracing::warn!(
                    lock = %object,
                    pid = info.pid,
                    pid_start = ?info.pid_start,
                    host = %info.host,
                    purpose = %info.purpose,
                    removed = removed.is_ok(),
                    "ignoring stale repository lock: {}",
                    why.as_str()
                );
            }
        }
    }
    Ok(live)
}

fn busy(backend: &dyn Backend, name: &str, info: &LockInfo) -> LockError {
    let object = backend.describe(Key::lock(name));
    let hint = if info.host == super::hostname() {
        format!(
            "wait for it to finish; if pid {} is not a backupd using this repository, delete \
             {object} (`rm {object}`)",
            info.pid,
        )
    } else {
        format!(
            "wait for it to finish. Locks of another host are removed automatically only when \
             they have not been refreshed for 30 minutes; if no backupd on {} uses this \
             repository any more (crashed, powered off), delete {object} (`rm {object}`)",
            info.host,
        )
    };
    LockError::Busy {
        kind: if info.exclusive {
            "exclusively"
        } else {
            "shared"
        },
        pid: info.pid,
        host: info.host.clone(),
        purpose: info.purpose.clone(),
        object,
        hint,
    }
}

/// Whether a failed lock write means the file system takes no writes (full, quota, read-only,
/// not writable for us) rather than a broken repository.
fn cannot_write_here(e: &BackendError) -> bool {
    matches!(e.kind, ErrorKind::NoSpace | ErrorKind::Denied)
}

/// Takes a lock: `Exclusive` conflicts with every other lock, the shared modes only with
/// exclusive ones.
pub fn acquire(
    backend: &Arc<dyn Backend>,
    mode: LockMode,
    purpose: &str,
) -> Result<LockGuard, LockError> {
    let exclusive = mode == LockMode::Exclusive;
    let conflicts = |others: Vec<(String, LockInfo)>| {
        others.into_iter().find(|(_, o)| exclusive || o.exclusive)
    };
    if let Some((n, c)) = conflicts(live_locks(backend.as_ref(), None)?) {
        return Err(busy(backend.as_ref(), &n, &c));
    }
    let name = if exclusive {
        EXCLUSIVE_NAME.to_owned()
    } else {
        hex::encode(rand::random::<[u8; 16]>())
    };
    let token = hex::encode(rand::random::<[u8; 16]>());
    let pid = std::process::id();
    let mut info = LockInfo {
        exclusive,
        host: super::hostname(),
        pid,
        pid_start: process_start(pid),
        purpose: purpose.to_owned(),
        refreshed: now(),
        token: Some(token.clone()),
    };
    let json = |i: &LockInfo| serde_json::to_vec(i).unwrap_or_default();
    // Registered before it exists, so that no other thread of ours takes it for an earlier
    // incarnation's lock.
    ours(|s| {
        s.insert(name.clone());
    });
    let written = if exclusive {
        backend.put_new(Key::lock(&name), &json(&info))
    } else {
        backend.put(Key::lock(&name), &json(&info)).map(|()| true)
    };
    if let Ok(false) = written {
        // Another exclusive holder created it since the check above.
        ours(|s| {
            s.remove(&name);
        });
        return Err(match read_lock(backend.as_ref(), &name) {
            Some(other) => busy(backend.as_ref(), &name, &other),
            None => busy(backend.as_ref(), &name, &info),
        });
    }
    if let Err(e) = written {
        ours(|s| {
            s.remove(&name);
        });
        if mode == LockMode::ReadOnly && cannot_write_here(&e) {
            tracing::warn!(
                repo = %backend.location(),
                purpose,
                error = %e,
                "cannot write a lock file; going on without one (this {purpose} writes nothing to \
                 the repository, and no exclusive lock is held; a prune started meanwhile is not \
                 kept out)"
            );
            return Ok(LockGuard {
                backend: backend.clone(),
                name: None,
                stop: None,
                refresher: None,
            });
        }
        return Err(e.into());
    }
    let mut guard = LockGuard {
        backend: backend.clone(),
        name: Some(name.clone()),
        stop: None,
        refresher: None,
    };
    // Two lockers may have passed the first check at once; whoever sees the other backs off.
    if let Some((n, c)) = conflicts(live_locks(backend.as_ref(), Some(&name))?) {
        return Err(busy(backend.as_ref(), &n, &c)); // the guard removes our lock
    }
    // Two hosts taking over one stale exclusive lock at once: both deleted it and both
    // created one; only the last creation stands, and the other sees that it is not its own.
    if exclusive {
        match read_lock(backend.as_ref(), &name) {
            Some(held) if held.token.as_deref() == Some(token.as_str()) => {}
            other => {
                guard.name = None; // not ours to delete
                ours(|s| {
                    s.remove(&name);
                });
                return Err(busy(backend.as_ref(), &name, &other.unwrap_or(info)));
            }
        }
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let refresher = {
        let backend = backend.clone();
        let name = name.clone();
        std::thread::Builder::new()
            .name("repo-lock".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY)
                {
                    info.refreshed = now();
                    if let Err(e) = backend.put(Key::lock(&name), &json(&info)) {
                        tracing::warn!(error = %e, "cannot refresh repository lock");
                    }
                }
            })
            .ok()
    };
    guard.stop = Some(stop);
    guard.refresher = refresher;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plant(b: &Arc<dyn Backend>, name: &str, info: &LockInfo) {
        b.put(Key::lock(name), &serde_json::to_vec(info).expect("json"))
            .expect("write");
    }

    fn exists(b: &Arc<dyn Backend>, name: &str) -> bool {
        b.exists(Key::lock(name)).expect("stat")
    }

    fn lock_of(host: &str, pid: u32, pid_start: Option<u64>) -> LockInfo {
        LockInfo {
            exclusive: true,
            host: host.to_owned(),
            pid,
            pid_start,
            purpose: "prune".into(),
            refreshed: now(),
            token: None,
        }
    }

    fn repo() -> (tempfile::TempDir, Arc<dyn Backend>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let b: Arc<dyn Backend> = Arc::new(crate::repo::backend::LocalBackend::new(dir.path()));
        b.create().expect("layout");
        (dir, b)
    }

    #[test]
    fn shared_locks_coexist_exclusive_conflicts_and_stale_is_ignored() {
        let (_dir, b) = repo();
        let s1 = acquire(&b, LockMode::Shared, "backup").expect("shared");
        let s2 = acquire(&b, LockMode::ReadOnly, "restore").expect("second shared");
        assert!(matches!(
            acquire(&b, LockMode::Exclusive, "prune"),
            Err(LockError::Busy { .. })
        ));
        drop((s1, s2));
        let x = acquire(&b, LockMode::Exclusive, "prune").expect("exclusive");
        assert!(matches!(
            acquire(&b, LockMode::Shared, "backup"),
            Err(LockError::Busy { .. })
        ));
        drop(x);
        // A lock of a dead process on this host is stale.
        plant(
            &b,
            "dead",
            &lock_of(&crate::repo::hostname(), 0x3FFF_FFF0, None),
        );
        acquire(&b, LockMode::Shared, "backup").expect("stale lock ignored");
        assert!(!exists(&b, "dead"));
    }

    #[test]
    fn our_lock_records_our_start_time_and_old_lock_files_still_parse() {
        let (_dir, b) = repo();
        let g = acquire(&b, LockMode::Shared, "backup").expect("lock");
        let name = b.list(FileKind::Lock).expect("list").remove(0);
        let info: LockInfo =
            serde_json::from_slice(&b.get(Key::lock(&name)).expect("read")).expect("json");
        assert_eq!(info.pid, std::process::id());
        assert_eq!(info.pid_start, process_start(std::process::id()));
        assert!(info.pid_start.is_some());
        drop(g);
        let old = br#"{"exclusive":true,"host":"nas","pid":42,"purpose":"prune","refreshed":1}"#;
        let info: LockInfo = serde_json::from_slice(old).expect("old lock file");
        assert_eq!(info.pid_start, None);
    }

    #[test]
    fn a_live_pid_with_another_start_time_is_a_stale_lock() {
        let (_dir, b) = repo();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let start = process_start(pid).expect("start time");
        plant(
            &b,
            "reused",
            &lock_of(&crate::repo::hostname(), pid, Some(start + 1)),
        );
        let g = acquire(&b, LockMode::Shared, "backup").expect("pid reused: stale");
        assert!(!exists(&b, "reused"));
        drop(g);
        // The same pid with its real start time is the holder: honoured.
        plant(
            &b,
            "held",
            &lock_of(&crate::repo::hostname(), pid, Some(start)),
        );
        assert!(matches!(
            acquire(&b, LockMode::Shared, "backup"),
            Err(LockError::Busy { .. })
        ));
        let _ = child.kill();
        let _ = child.wait();
        acquire(&b, LockMode::Shared, "backup").expect("holder gone");
    }

    #[test]
    fn our_own_pid_on_a_lock_we_did_not_write_is_stale() {
        let (_dir, b) = repo();
        let me = std::process::id();
        plant(&b, "earlier", &lock_of(&crate::repo::hostname(), me, None));
        plant(
            &b,
            "earlier2",
            &lock_of(&crate::repo::hostname(), me, process_start(me)),
        );
        acquire(&b, LockMode::Exclusive, "prune").expect("earlier incarnation's locks");
        assert!(!exists(&b, "earlier"));
        assert!(!exists(&b, "earlier2"));
    }

    #[test]
    fn another_hosts_lock_is_kept_until_it_expires_and_the_error_says_how_to_remove_it() {
        let (_dir, b) = repo();
        plant(&b, "remote", &lock_of("other-host.example", 1, Some(1)));
        let e = acquire(&b, LockMode::Shared, "backup").expect_err("remote lock honoured");
        let msg = e.to_string();
        let path = b.describe(Key::lock("remote"));
        assert!(msg.contains("other-host.example"), "{msg}");
        assert!(msg.contains(&format!("rm {path}")), "{msg}");
        assert!(exists(&b, "remote"));
        let mut old = lock_of("other-host.example", 1, Some(1));
        old.refreshed = now() - STALE_AFTER.as_secs() as i64 - 1;
        plant(&b, "remote", &old);
        acquire(&b, LockMode::Shared, "backup").expect("expired");
        assert!(!exists(&b, "remote"));
    }

    #[test]
    fn the_exclusive_lock_is_one_create_only_object_and_a_dead_hosts_lease_expires() {
        let (_dir, b) = repo();
        let x = acquire(&b, LockMode::Exclusive, "prune").expect("exclusive");
        assert!(exists(&b, EXCLUSIVE_NAME));
        // Whoever comes second finds the object taken, however the listing looks.
        let e = acquire(&b, LockMode::Exclusive, "compact").expect_err("taken");
        assert!(e.to_string().contains("exclusively"), "{e}");
        drop(x);
        assert!(!exists(&b, EXCLUSIVE_NAME), "released on drop");

        // Another host's exclusive lock past its lease is taken over ...
        let mut dead = lock_of("dead-host.example", 7, Some(7));
        dead.refreshed = now() - STALE_AFTER.as_secs() as i64 - 1;
        dead.token = Some("theirs".into());
        plant(&b, EXCLUSIVE_NAME, &dead);
        let x = acquire(&b, LockMode::Exclusive, "prune").expect("lease expired");
        let held: LockInfo =
            serde_json::from_slice(&b.get(Key::lock(EXCLUSIVE_NAME)).expect("read")).expect("json");
        assert_eq!(held.host, crate::repo::hostname());
        assert_ne!(held.token.as_deref(), Some("theirs"));
        drop(x);
        // ... while one inside its lease is honoured.
        plant(
            &b,
            EXCLUSIVE_NAME,
            &lock_of("live-host.example", 7, Some(7)),
        );
        let e = acquire(&b, LockMode::Shared, "backup").expect_err("live lease");
        assert!(e.to_string().contains("live-host.example"), "{e}");
    }
}
