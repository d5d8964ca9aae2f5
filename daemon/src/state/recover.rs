//! Opening the state database when it may be damaged. A corrupt database used to make the daemon
//! exit at every start, and systemd restarted it every 5 s for ever. Instead, damage found at
//! open (sled's own corruption error, an unreadable record, a panic inside sled) moves the
//! database aside to `state.sled.corrupt-<time>` and starts with an empty one: the repositories
//! and sources declared in the config come back at once, the job history is lost, and the
//! [`Recovery`] returned here becomes an alert in `system health`.
//!
//! Blocking (disk I/O). Errors that a restart cannot fix (see `StateError::needs_admin`) are
//! still errors.

use super::{create_dir, State, StateError, DB_DIR};
use std::path::{Path, PathBuf};

/// What happened when a damaged database was replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged database is now.
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

impl Recovery {
    /// The alert shown in logs and health.
    pub fn message(&self) -> String {
        format!(
            "the state database was corrupt ({}); it was moved to {} and an empty one created: \
             repositories and sources declared in the config file were registered again, the job \
             history and anything added only with backupctl are gone (see docs/OPERATIONS.md, \
             \"Recovering the state\")",
            self.reason,
            self.moved_to.display()
        )
    }
}

/// Whether an open error means the files are damaged (as opposed to locked, newer, or not
/// accessible), so that moving them aside is the right answer.
fn is_corruption(e: &StateError) -> Option<String> {
    match e {
        StateError::CorruptSchema { .. } => Some("unreadable schema version record".to_owned()),
        StateError::Damaged { reason, .. } => Some(reason.clone()),
        StateError::Open { source, .. } | StateError::Write { source, .. } => match source {
            // The environment, not the files: permissions, a read-only or full file system.
            // Moving the database aside would not help and might lose a healthy one.
            sled::Error::Io(io)
                if !matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                None
            }
            // Everything else sled says about its own files (`Corruption`, `Unsupported` for an
            // unrecognisable header, `ReportableBug`, a missing tree) is damage: this backupd
            // only ever wrote sled 0.34 databases.
            _ => Some(source.to_string()),
        },
        _ => None,
    }
}

/// Opens the database and reads all of it; sled panics on some kinds of damage, which counts
/// as corruption too.
fn open_checked(path: &Path) -> Result<State, StateError> {
    let path_for_error = path.to_owned();
    let path = path.to_owned();
    let opened = std::panic::catch_unwind(move || {
        let state = State::open_db(&path)?;
        state.read_everything()?;
        Ok(state)
    });
    match opened {
        Ok(result) => result,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown".to_owned());
            Err(StateError::Damaged {
                path: path_for_error,
                reason: format!("sled panicked while reading it: {reason}"),
            })
        }
    }
}

/// Opens `<state_dir>/state.sled`, replacing it with an empty database if it is damaged.
pub fn open_or_recover(state_dir: &Path) -> Result<(State, Option<Recovery>), StateError> {
    create_dir(state_dir)?;
    let path = state_dir.join(DB_DIR);
    let first = match open_checked(&path) {
        Ok(state) => return Ok((state, None)),
        Err(e) => e,
    };
    let Some(reason) = is_corruption(&first) else {
        return Err(first);
    };
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let aside = state_dir.join(format!("{DB_DIR}.corrupt-{stamp}"));
    std::fs::rename(&path, &aside).map_err(|source| StateError::MoveAside {
        path: path.clone(),
        aside: aside.clone(),
        reason: reason.clone(),
        source,
    })?;
    let recovery = Recovery {
        moved_to: aside,
        reason,
    };
    tracing::error!(
        database = %path.display(),
        moved_to = %recovery.moved_to.display(),
        "{}",
        recovery.message()
    );
    let state = State::open_db(&path)?;
    Ok((state, Some(recovery)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// Overwrites bytes across the database's files whose name passes `which`, as a failing
    /// disk would.
    fn damage(db: &Path, which: impl Fn(&str) -> bool) {
        for entry in walk(db) {
            if !entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(&which)
            {
                continue;
            }
            let len = std::fs::metadata(&entry).expect("stat").len();
            if len == 0 {
                continue;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&entry)
                .expect("open db file");
            let mut at = 0;
            while at < len {
                f.seek(SeekFrom::Start(at)).expect("seek");
                f.write_all(&[0xA5; 16]).expect("write");
                at += 64;
            }
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    /// `open_or_recover` once the database a test just dropped is free: sled's flusher thread
    /// holds the file lock until it next wakes, so an immediate reopen in the same process can
    /// see `Locked` (a daemon restart is a new process and never does).
    fn reopen(dir: &Path) -> Result<(State, Option<Recovery>), StateError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match open_or_recover(dir) {
                Err(StateError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn filled(dir: &Path) {
        let state = State::open(dir).expect("open");
        let tree = state.tree("jobs").expect("tree");
        for i in 0u32..2000 {
            tree.insert(i.to_be_bytes(), vec![7u8; 200])
                .expect("insert");
        }
        state.flush_blocking().expect("flush");
    }

    #[test]
    fn corrupt_database_is_moved_aside_and_replaced() {
        corrupt_files_are_detected(|_| true);
    }

    #[test]
    fn corrupt_data_file_with_an_intact_header_is_detected() {
        corrupt_files_are_detected(|name| name != "conf");
    }

    fn corrupt_files_are_detected(which: impl Fn(&str) -> bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path());
        damage(&dir.path().join(DB_DIR), which);
        let (state, recovery) = reopen(dir.path()).expect("recovers");
        let recovery = recovery.expect("corruption detected");
        assert!(recovery.moved_to.exists(), "{recovery:?}");
        assert!(
            recovery
                .moved_to
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state.sled.corrupt-")),
            "{recovery:?}"
        );
        assert!(recovery.message().contains("corrupt"));
        assert_eq!(state.tree("jobs").expect("tree").len(), 0);
        drop(state);
        let (_, again) = reopen(dir.path()).expect("reopens");
        assert_eq!(again, None, "the new database is healthy");
    }

    #[test]
    fn healthy_database_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path());
        let (state, recovery) = reopen(dir.path()).expect("opens");
        assert_eq!(recovery, None);
        assert_eq!(state.tree("jobs").expect("tree").len(), 2000);
    }

    #[test]
    fn a_locked_database_is_not_taken_for_a_corrupt_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = State::open(dir.path()).expect("open");
        match open_or_recover(dir.path()) {
            Err(StateError::Locked { .. }) => {}
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(dir.path().join(DB_DIR).exists());
    }
}
