//! Repository locks (`locks/<random>`): shared for backup, restore and check, exclusive for
//! prune. A lock is stale when its process is gone (same host) or, from another host, it has not
//! been refreshed for [`STALE_AFTER`]; stale locks are ignored and removed. Holders refresh their lock every
//! [`REFRESH_EVERY`] from a background thread that stops when the guard drops.

use super::backend::{FileKind, LocalBackend};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::Duration;

pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    pub purpose: String,
    /// Seconds since the epoch of the last refresh.
    pub refreshed: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "repository is locked {kind} by pid {pid} on {host} for {purpose}; wait for it to finish \
         (locks older than 30 minutes without refresh are ignored)"
    )]
    Busy {
        kind: &'static str,
        pid: u32,
        host: String,
        purpose: String,
    },
    #[error(transparent)]
    Backend(#[from] super::backend::BackendError),
}

impl LockInfo {
    /// On this host a lock is stale exactly when its process is gone (a suspended laptop or a
    /// clock jump must not expire a running backup's lock); from another host, when it has not
    /// been refreshed for [`STALE_AFTER`].
    fn is_stale(&self, now: i64) -> bool {
        if self.host == super::hostname() {
            return nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None)
                .is_err_and(|e| e == nix::errno::Errno::ESRCH);
        }
        now - self.refreshed > STALE_AFTER.as_secs() as i64
    }
}

/// A held lock; dropping it stops the refresher and removes the lock file.
#[derive(Debug)]
pub struct LockGuard {
    backend: LocalBackend,
    name: String,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = self.backend.remove(FileKind::Lock, &self.name);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Live locks other than `except`, removing stale ones on the way.
fn live_locks(backend: &LocalBackend, except: Option<&str>) -> Result<Vec<LockInfo>, LockError> {
    let mut live = Vec::new();
    let t = now();
    for name in backend.list(FileKind::Lock)? {
        if Some(name.as_str()) == except {
            continue;
        }
        let Ok(bytes) = backend.read(FileKind::Lock, &name) else {
            continue; // removed meanwhile
        };
        match serde_json::from_slice::<LockInfo>(&bytes) {
            Ok(info) if !info.is_stale(t) => live.push(info),
            Ok(info) => {
                tracing::info!(pid = info.pid, host = %info.host, purpose = %info.purpose, "removing stale repository lock");
                let _ = backend.remove(FileKind::Lock, &name);
            }
            Err(_) => {
                tracing::warn!(lock = %name, "ignoring an unreadable lock file");
            }
        }
    }
    Ok(live)
}

fn busy(info: &LockInfo) -> LockError {
    LockError::Busy {
        kind: if info.exclusive {
            "exclusively"
        } else {
            "shared"
        },
        pid: info.pid,
        host: info.host.clone(),
        purpose: info.purpose.clone(),
    }
}

/// Takes a lock: `exclusive` conflicts with every other lock, shared only with exclusive ones.
pub fn acquire(
    backend: &LocalBackend,
    exclusive: bool,
    purpose: &str,
) -> Result<LockGuard, LockError> {
    let conflicts = |others: &[LockInfo]| others.iter().find(|o| exclusive || o.exclusive).cloned();
    if let Some(c) = conflicts(&live_locks(backend, None)?) {
        return Err(busy(&c));
    }
    let name = hex::encode(rand::random::<[u8; 16]>());
    let mut info = LockInfo {
        exclusive,
        host: super::hostname(),
        pid: std::process::id(),
        purpose: purpose.to_owned(),
        refreshed: now(),
    };
    let json = |i: &LockInfo| serde_json::to_vec(i).unwrap_or_default();
    backend.write(FileKind::Lock, &name, &json(&info))?;
    // Two lockers may have passed the first check at once; whoever sees the other backs off.
    if let Some(c) = conflicts(&live_locks(backend, Some(&name))?) {
        let _ = backend.remove(FileKind::Lock, &name);
        return Err(busy(&c));
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
                    if let Err(e) = backend.write(FileKind::Lock, &name, &json(&info)) {
                        tracing::warn!(error = %e, "cannot refresh repository lock");
                    }
                }
            })
            .ok()
    };
    Ok(LockGuard {
        backend: backend.clone(),
        name,
        stop: Some(stop),
        refresher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_exclusive_conflicts_and_stale_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path());
        b.create_layout().expect("layout");
        let s1 = acquire(&b, false, "backup").expect("shared");
        let s2 = acquire(&b, false, "backup").expect("second shared");
        assert!(matches!(
            acquire(&b, true, "prune"),
            Err(LockError::Busy { .. })
        ));
        drop((s1, s2));
        let x = acquire(&b, true, "prune").expect("exclusive");
        assert!(matches!(
            acquire(&b, false, "backup"),
            Err(LockError::Busy { .. })
        ));
        drop(x);
        // A lock of a dead process on this host is stale.
        let dead = LockInfo {
            exclusive: true,
            host: crate::repo::hostname(),
            pid: 0x3FFF_FFF0,
            purpose: "prune".into(),
            refreshed: now(),
        };
        b.write(
            FileKind::Lock,
            "dead",
            &serde_json::to_vec(&dead).expect("json"),
        )
        .expect("write");
        acquire(&b, false, "backup").expect("stale lock ignored");
        assert!(!b.exists(FileKind::Lock, "dead"));
    }
}
