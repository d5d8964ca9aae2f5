//! One recovery drill: the newest snapshot of a source (or of a repository) is sampled
//! ([`super::sample`]), the sample restored by the restore engine into a scratch directory
//! under the state directory (with `verify`: every file re-read against its blob ids), each
//! restored file checked against the snapshot (size, permission bits) and against the live
//! file where that is unchanged since the snapshot (same size and mtime: compared byte for
//! byte), the restore's throughput measured, and the scratch directory deleted, whatever
//! happened. Scratch directories a crash left behind are deleted at the next start and before
//! every drill ([`remove_stale`]).
//!
//! Live files are only read (opened without following a final symlink); setuid and setgid
//! bits are dropped in the scratch copy, so they are not compared.

use super::sample::{self, Candidate};
use crate::engine::progress::Progress;
use crate::engine::restore::{restore, RestoreOptions};
use crate::engine::EngineError;
use crate::repo::lock::LockMode;
use crate::repo::snapshot::SnapshotHeader;
use crate::repo::{RepoError, Repository, LOCK_WAIT};
use backupd_common::paths::escape_path;
use backupd_common::protocol::{DrillMismatch, DrillResult};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The directory under the state directory that holds drills' scratch directories.
pub const SCRATCH: &str = "drill";

/// What to drill.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// The source's name and directory; `None`: the repository's newest snapshot.
    pub source: Option<(String, Vec<u8>)>,
    pub repo: String,
    /// Share of the files restored, in percent.
    pub sample_percent: f64,
    /// Picks the sample (the job id: a retry restores the same files).
    pub seed: u64,
    /// The state directory; the scratch copy goes below `<state_dir>/drill`.
    pub state_dir: PathBuf,
}

/// Whether a snapshot is one of the source at `path`: made of that directory alone, with the
/// daemon's rights (as the source's backups are).
pub fn of_source(h: &SnapshotHeader, path: &[u8]) -> bool {
    h.paths.len() == 1 && h.paths[0] == path && h.owner_uid.is_none()
}

/// Scratch directories of drills running in this process: [`remove_stale`] leaves them.
static ACTIVE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn active() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Deletes the scratch directories under `<state_dir>/drill` that no running drill owns
/// (left by a crash). Returns how many it removed.
pub fn remove_stale(state_dir: &Path) -> usize {
    let root = state_dir.join(SCRATCH);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return 0;
    };
    let running = active().clone();
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if running.contains(&path) {
            continue;
        }
        match remove_tree(&path) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a drill's stale scratch directory")
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %root.display(), "removed scratch directories of drills that did not finish");
    }
    removed
}

/// Removes a restored tree, making its directories writable first if a plain removal is
/// refused (a restored directory may be read-only).
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    std::fs::remove_dir_all(path)
}

/// The scratch directory of one drill: registered while it lives, deleted when dropped
/// (after success, failure, cancellation or a panic).
struct Scratch(PathBuf);

impl Scratch {
    fn create(state_dir: &Path, seed: u64) -> Result<Self, EngineError> {
        let root = state_dir.join(SCRATCH);
        let path = root.join(format!("{seed}-{:08x}", rand::random::<u32>()));
        // Registered before it exists: another drill's `remove_stale` must never take it.
        active().insert(path.clone());
        let scratch = Self(path);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .and_then(|()| std::fs::DirBuilder::new().mode(0o700).create(&scratch.0))
            .map_err(|e| EngineError::Target {
                path: scratch.0.display().to_string(),
                reason: format!("cannot create the drill's scratch directory: {e}"),
            })?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.0) {
            tracing::error!(path = %self.0.display(), error = %e, "cannot delete a drill's scratch directory; it is removed at the next drill or start");
        }
        active().remove(&self.0);
    }
}

/// Runs one drill (blocking). Errors are what kept it from a verdict (no snapshot, an
/// unreachable repository, cancellation); what it finds wrong is in the result (`ok` false).
pub fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<DrillResult, EngineError> {
    let started = Instant::now();
    remove_stale(&opts.state_dir);
    let _lock = repo.lock_waiting(LockMode::ReadOnly, "drill", LOCK_WAIT, cancel)?;
    repo.refresh_index()?;
    let found = match &opts.source {
        Some((_, path)) => repo.newest_snapshot_header(&|h| of_source(h, path))?,
        None => repo.newest_snapshot_header(&|h| h.owner_uid.is_none())?,
    };
    let (id, header) = found.ok_or_else(|| RepoError::NoMatchingSnapshot {
        filters: match &opts.source {
            Some((name, _)) => format!("source {name}"),
            None => format!("repository {}", opts.repo),
        },
        newest: "there is no snapshot to drill yet".into(),
    })?;
    let (all, unnamed) = sample::candidates(repo, &header.tree, cancel)?;
    let total = all.len();
    let chosen = sample::select(all, opts.sample_percent, opts.seed, &id);
    let mut result = DrillResult {
        repo: opts.repo.clone(),
        source: opts.source.as_ref().map(|s| s.0.clone()),
        snapshot: id.to_hex(),
        snapshot_time_ns: header.time_ns,
        sample_percent: opts.sample_percent,
        snapshot_files: header.stats.files,
        snapshot_bytes: header.stats.bytes_total,
        sampled_files: chosen.len() as u64,
        ..Default::default()
    };
    if unnamed > 0 {
        result.notes.push(format!(
            "{unnamed} file(s) with names that are not UTF-8 or hold a backslash were not \
             candidates for the sample"
        ));
    }
    if chosen.is_empty() {
        result
            .notes
            .push("the snapshot holds no file to restore".into());
    } else {
        let scratch = Scratch::create(&opts.state_dir, opts.seed)?;
        let includes = if chosen.len() < total || unnamed > 0 {
            chosen.iter().map(|c| sample::pattern(&c.path)).collect()
        } else {
            Vec::new() // the whole snapshot
        };
        let restore_opts = RestoreOptions {
            snapshot: id.to_hex(),
            target: scratch.0.clone(),
            includes,
            verify: true,
            no_owner: true,
            strip_setid: Some(true),
            ..Default::default()
        };
        let restore_started = Instant::now();
        let outcome = restore(repo, &restore_opts, progress, cancel)?;
        let restore_time = restore_started.elapsed();
        result.files_restored = outcome.files;
        result.bytes_restored = outcome.bytes;
        measure(&mut result, restore_time);
        let failed: HashMap<String, String> = outcome
            .failed
            .into_iter()
            .map(|(rel, why)| (format!("/{}", rel.trim_start_matches('/')), why))
            .collect();
        for c in &chosen {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let shown = escape_path(&c.path);
            let verdict = match failed.get(&shown) {
                Some(why) => Err(why.clone()),
                None => verify(&scratch.0, c, &mut result),
            };
            match verdict {
                Ok(()) => result.verified += 1,
                Err(reason) => result.mismatches.push(DrillMismatch {
                    path: shown,
                    reason,
                }),
            }
        }
        drop(scratch);
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result.ok = result.mismatches.is_empty();
    Ok(result)
}

/// Throughput of the restore: per second of its own time, and per GB.
fn measure(result: &mut DrillResult, took: Duration) {
    let secs = took.as_secs_f64().max(0.001);
    result.restore_ms = took.as_millis() as u64;
    result.bytes_per_sec = (result.bytes_restored as f64 / secs).round() as u64;
    result.files_per_sec = ((result.files_restored as f64 / secs) * 10.0).round() / 10.0;
    result.rto_per_gb_ms = (result.bytes_restored > 0)
        .then(|| (secs * 1000.0 * 1e9 / result.bytes_restored as f64).round() as u64);
}

/// Checks one restored file against the snapshot and, when unchanged since, the live file.
fn verify(scratch: &Path, c: &Candidate, result: &mut DrillResult) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let rel = std::ffi::OsStr::from_bytes(c.path.strip_prefix(b"/").unwrap_or(&c.path));
    let restored = scratch.join(rel);
    let meta = std::fs::symlink_metadata(&restored).map_err(|e| format!("not restored: {e}"))?;
    if !meta.is_file() {
        return Err("not restored as a regular file".into());
    }
    if meta.len() != c.size {
        return Err(format!(
            "restored with {} bytes; the snapshot has {}",
            meta.len(),
            c.size
        ));
    }
    // Setuid and setgid are dropped in the scratch copy on purpose.
    const COMPARED: u32 = 0o1777;
    if meta.mode() & COMPARED != c.mode & COMPARED {
        return Err(format!(
            "restored with mode {:04o}; the snapshot has {:04o}",
            meta.mode() & COMPARED,
            c.mode & COMPARED
        ));
    }
    let live = Path::new(std::ffi::OsStr::from_bytes(&c.path));
    let unchanged = std::fs::symlink_metadata(live).is_ok_and(|m| {
        m.is_file() && m.len() == c.size && m.mtime() * 1_000_000_000 + m.mtime_nsec() == c.mtime_ns
    });
    if !unchanged {
        result.live_changed += 1;
        return Ok(());
    }
    match same_bytes(&restored, live) {
        Ok(true) => {
            result.live_compared += 1;
            Ok(())
        }
        Ok(false) => Err(
            "differs from the live file, which has the snapshot's size and mtime (the backup \
             or the live file is damaged)"
                .into(),
        ),
        // Unreadable now (permissions, a race with a writer): not compared.
        Err(_) => {
            result.live_changed += 1;
            Ok(())
        }
    }
}

fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_scratch_directories_go_and_running_ones_stay() {
        let state = tempfile::tempdir().expect("tempdir");
        let running = Scratch::create(state.path(), 1).expect("scratch");
        let stale = state.path().join(SCRATCH).join("7-dead");
        std::fs::create_dir_all(stale.join("srv/ro")).expect("mkdir");
        std::fs::write(stale.join("srv/ro/f"), b"x").expect("write");
        // A read-only directory, as a restore may leave one.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(stale.join("srv/ro"), std::fs::Permissions::from_mode(0o500))
            .expect("chmod");
        assert_eq!(remove_stale(state.path()), 1);
        assert!(!stale.exists());
        assert!(running.0.exists());
        let path = running.0.clone();
        drop(running);
        assert!(!path.exists(), "a drill's scratch directory goes with it");
    }

    #[test]
    fn throughput_is_per_second_of_the_restore_and_per_gb() {
        let mut r = DrillResult {
            files_restored: 10,
            bytes_restored: 500_000_000,
            ..Default::default()
        };
        measure(&mut r, Duration::from_secs(2));
        assert_eq!(r.bytes_per_sec, 250_000_000);
        assert_eq!(r.files_per_sec, 5.0);
        assert_eq!(r.rto_per_gb_ms, Some(4000));
        let mut none = DrillResult::default();
        measure(&mut none, Duration::from_millis(5));
        assert_eq!(none.rto_per_gb_ms, None);
    }
}
