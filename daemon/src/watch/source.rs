//! One source's task: watch, coalesce changed paths, and queue a backup after a quiet period
//! (`debounce`) or at the latest `max_delay` after the first change. At start, after an inotify
//! overflow, and every `rescan_every`, a full scan is queued instead (metadata only: unchanged
//! files are not read). At most one backup of a source is queued or running at a time; changes
//! that arrive meanwhile wait for the next one.

use super::dirty::DirtySet;
use super::watcher::{WatchError, Watcher};
use crate::context::Context;
use crate::engine::excludes::Excludes;
use crate::engine::incremental::Change;
use crate::repo::now_ns;
use backupd_common::protocol::{
    BackupRequest, JobId, JobInfo, JobKind, JobOptions, JobSpec, JobState, PathChange, Response,
    SourceInfo, WatchState,
};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Without inotify (limit reached, unavailable), scans run at least this often.
const FALLBACK_SCAN: Duration = Duration::from_secs(600);
/// After a backup of the source failed for good, the next try waits this long, doubling with
/// each further failure up to `MAX_AFTER_FAILURE`.
const AFTER_FAILURE: Duration = Duration::from_secs(60);
const MAX_AFTER_FAILURE: Duration = Duration::from_secs(3600);

pub struct SourceHandle {
    pub status: Mutex<SourceInfo>,
    pub stop: CancellationToken,
}

impl SourceHandle {
    pub fn info(&self) -> SourceInfo {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut SourceInfo)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// The backup in flight and the batch of changes it covers.
struct Outstanding {
    job: JobId,
    full: bool,
    /// Wall time (ns) of the first change the backup covers.
    first_change_ns: Option<i64>,
}

async fn recv_raw(
    rx: &mut Option<mpsc::Receiver<notify::Result<notify::Event>>>,
) -> Option<notify::Result<notify::Event>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub async fn run(ctx: Arc<Context>, handle: Arc<SourceHandle>) {
    let spec = handle.info().spec;
    let name = spec.name.clone();
    let root = PathBuf::from(std::ffi::OsStr::from_bytes(&spec.path));
    // The repository name (pinned, like every job's) and where it lives, once it exists.
    let repo = loop {
        let registry = ctx.repos.clone();
        let wanted = spec.repo.clone();
        let found = tokio::task::spawn_blocking(move || registry.entry(wanted.as_deref())).await;
        match found {
            Ok(Ok(entry)) => break entry,
            Ok(Err(e)) => {
                handle.update(|s| s.note = Some(format!("waiting for the repository: {e}")));
            }
            Err(e) => tracing::error!(source = %name, error = %e, "repository lookup failed"),
        }
        tokio::select! {
            _ = handle.stop.cancelled() => return,
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };
    handle.update(|s| s.note = None);
    let excludes = match Excludes::new(&spec.excludes, &[]) {
        Ok(e) => e,
        Err(e) => {
            handle.update(|s| s.note = Some(format!("bad exclude: {e}")));
            return;
        }
    };
    let mut skip = vec![ctx.state_dir.clone()];
    skip.extend(repo.location.local_path().map(ToOwned::to_owned));

    let mut raw_rx = None;
    let watcher = if spec.watch {
        match start_watching(&root, skip, excludes).await {
            Ok((w, rx, dirs)) => {
                tracing::info!(source = %name, path = %root.display(), dirs, "watching");
                handle.update(|s| {
                    s.state = WatchState::Watching;
                    s.dirs_watched = dirs as u64;
                });
                raw_rx = Some(rx);
                Some(w)
            }
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "not watching; periodic scans instead");
                handle.update(|s| {
                    s.state = WatchState::Periodic;
                    s.note = Some(e.to_string());
                });
                None
            }
        }
    } else {
        handle.update(|s| s.state = WatchState::NotWatched);
        None
    };
    let scan_every = |watching: bool| {
        if watching {
            spec.rescan_every
        } else {
            spec.rescan_every.min(FALLBACK_SCAN)
        }
    };

    let mut events = ctx.queue.subscribe();
    let mut dirty = DirtySet::default();
    let mut first_change: Option<(Instant, i64)> = None;
    let mut last_change: Option<Instant> = None;
    // The start-up scan catches what changed while the daemon was down.
    let mut rescan = true;
    let mut next_scan = Instant::now() + scan_every(watcher.is_some());
    let mut not_before: Option<Instant> = None;
    let mut outstanding: Option<Outstanding> = None;
    let mut parent: Option<String> = None;
    let mut failures = 0u32;

    loop {
        let now = Instant::now();
        let may_submit = outstanding.is_none() && not_before.is_none_or(|t| t <= now);
        let due = first_change.map(|(first, _)| {
            let quiet = last_change.unwrap_or(first) + spec.debounce;
            quiet.min(first + spec.max_delay)
        });
        if may_submit && (rescan || parent.is_none() && !dirty.is_empty()) {
            // A full scan covers every pending change.
            let batch = first_change.take().map(|(_, ns)| ns);
            dirty.clear();
            last_change = None;
            rescan = false;
            next_scan = now + scan_every(raw_rx.is_some());
            outstanding = submit(&ctx, &repo.name, &spec, None, None, batch).await;
            if outstanding.is_none() {
                rescan = true;
                not_before = Some(now + AFTER_FAILURE);
            }
        } else if may_submit && due.is_some_and(|d| d <= now) {
            let changes = dirty.take();
            let batch = first_change.take().map(|(_, ns)| ns);
            last_change = None;
            outstanding = submit(
                &ctx,
                &repo.name,
                &spec,
                Some(changes),
                parent.clone(),
                batch,
            )
            .await;
        }
        let pending = dirty.len() as u64;
        let job = outstanding.as_ref().map(|o| o.job);
        let dirs = watcher
            .as_ref()
            .map(|w| w.lock().unwrap_or_else(|p| p.into_inner()).dirs_watched());
        handle.update(|s| {
            s.pending_paths = pending;
            s.job = job;
            if let Some(d) = dirs {
                s.dirs_watched = d as u64;
            }
        });
        let wake = if outstanding.is_some() {
            None
        } else {
            match (due, not_before) {
                (Some(d), Some(n)) => Some(d.max(n)),
                (Some(d), None) => Some(d),
                (None, _) if rescan => not_before,
                (None, _) => None,
            }
        };
        tokio::select! {
            _ = handle.stop.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
            _ = sleep_until(wake) => {}
            _ = tokio::time::sleep_until(next_scan) => {
                tracing::info!(source = %name, "periodic rescan");
                rescan = true;
                // Re-armed here too: a backup still running must not make this fire again
                // and again until it ends.
                next_scan = Instant::now() + scan_every(raw_rx.is_some());
            }
            raw = recv_raw(&mut raw_rx) => {
                let Some(w) = &watcher else { continue };
                match raw {
                    None => {
                        tracing::warn!(source = %name, "watcher stopped; periodic scans instead");
                        raw_rx = None;
                        handle.update(|s| s.state = WatchState::Periodic);
                        rescan = true;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(source = %name, error = %e, "watch error; rescanning");
                        rescan = true;
                    }
                    Some(Ok(event)) => {
                        let (c, dropped) = {
                            let w = w.lock().unwrap_or_else(|p| p.into_inner());
                            (w.classify(&event), w.overflowed.swap(false, std::sync::atomic::Ordering::Relaxed))
                        };
                        if dropped {
                            tracing::warn!(source = %name, "event channel overflowed; rescanning");
                            rescan = true;
                        }
                        if c.rescan {
                            tracing::warn!(source = %name, "inotify queue overflowed; rescanning");
                            rescan = true;
                        }
                        if !c.gone_dirs.is_empty() || !c.new_dirs.is_empty() {
                            if let Err(e) = rewatch(w.clone(), c.gone_dirs, c.new_dirs).await {
                                tracing::warn!(source = %name, error = %e, "watching stopped; periodic scans instead");
                                w.lock().unwrap_or_else(|p| p.into_inner()).clear();
                                raw_rx = None;
                                handle.update(|s| {
                                    s.state = WatchState::Periodic;
                                    s.note = Some(e.to_string());
                                });
                                rescan = true;
                            }
                        }
                        if !c.changes.is_empty() {
                            let now = Instant::now();
                            first_change.get_or_insert((now, now_ns()));
                            last_change = Some(now);
                            for (path, change) in c.changes {
                                dirty.add(path, change);
                            }
                        }
                    }
                }
            }
            event = events.recv() => {
                let ended = match (&event, &outstanding) {
                    (Ok(e), Some(o)) => e.job == o.job && e.state.is_final(),
                    // Missed events: look the job up.
                    (Err(broadcast::error::RecvError::Lagged(_)), Some(o)) => {
                        ctx.queue.job(o.job).is_none_or(|j| j.state.is_final())
                    }
                    _ => false,
                };
                if ended {
                    if let Some(o) = outstanding.take() {
                        let job = ctx.queue.job(o.job);
                        match finished(&handle, job.as_ref(), &o) {
                            Some(snapshot) => {
                                parent = Some(snapshot);
                                failures = 0;
                                handle.update(|s| s.note = None);
                            }
                            None => {
                                // Whatever that backup covered must be looked at again.
                                rescan = true;
                                failures += 1;
                                let wait = AFTER_FAILURE
                                    .saturating_mul(1 << (failures - 1).min(6))
                                    .min(MAX_AFTER_FAILURE);
                                not_before = Some(Instant::now() + wait);
                                let why = job
                                    .and_then(|j| j.error)
                                    .map(|e| e.message)
                                    .unwrap_or_else(|| "the backup job is gone".into());
                                handle.update(|s| {
                                    s.note = Some(format!(
                                        "the last backup failed ({why}); next try in {}",
                                        humantime::format_duration(wait)
                                    ))
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(w) = watcher {
        w.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    tracing::info!(source = %name, "source stopped");
}

type Shared = Arc<Mutex<Watcher>>;

/// Creates the watcher and watches the whole tree (blocking work, off the async threads).
async fn start_watching(
    root: &std::path::Path,
    skip: Vec<PathBuf>,
    excludes: Excludes,
) -> Result<(Shared, mpsc::Receiver<notify::Result<notify::Event>>, usize), WatchError> {
    let (watcher, rx) = Watcher::new(root.to_owned(), skip, excludes)?;
    let w = Arc::new(Mutex::new(watcher));
    let (shared, root) = (w.clone(), root.to_owned());
    let added = tokio::task::spawn_blocking(move || {
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_tree(&root)
    })
    .await
    .map_err(|e| WatchError::Other {
        path: PathBuf::new(),
        message: e.to_string(),
    })??;
    Ok((w, rx, added))
}

async fn rewatch(w: Shared, gone: Vec<PathBuf>, new: Vec<PathBuf>) -> Result<(), WatchError> {
    tokio::task::spawn_blocking(move || {
        let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
        for d in &gone {
            w.remove_tree(d);
        }
        for d in &new {
            w.add_tree(d)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| WatchError::Other {
        path: PathBuf::new(),
        message: e.to_string(),
    })?
}

async fn submit(
    ctx: &Arc<Context>,
    repo: &str,
    spec: &backupd_common::protocol::SourceSpec,
    changes: Option<Vec<(PathBuf, Change)>>,
    parent: Option<String>,
    first_change_ns: Option<i64>,
) -> Option<Outstanding> {
    let full = changes.is_none();
    let request = BackupRequest {
        repo: Some(repo.to_owned()),
        paths: vec![spec.path.clone()],
        excludes: spec.excludes.clone(),
        changes: changes.map(|list| {
            list.into_iter()
                .map(|(path, change)| PathChange {
                    path: path.as_os_str().as_bytes().to_vec(),
                    tree: change == Change::Tree,
                })
                .collect()
        }),
        parent,
        source: Some(spec.name.clone()),
        ..Default::default()
    };
    let job = JobSpec {
        kind: JobKind::Backup(request),
        options: JobOptions::default(),
    };
    let q = ctx.settings().config.queue.clone();
    match ctx.queue.submit_internal(job, ctx.daemon_uid, &q).await {
        Ok(s) => {
            tracing::debug!(source = %spec.name, job = s.id, full, "source backup queued");
            Some(Outstanding {
                job: s.id,
                full,
                first_change_ns,
            })
        }
        Err(e) => {
            tracing::error!(source = %spec.name, error = %e, "cannot queue the source's backup");
            None
        }
    }
}

/// Records how a source backup ended; the new snapshot id when it succeeded.
fn finished(handle: &SourceHandle, job: Option<&JobInfo>, o: &Outstanding) -> Option<String> {
    let job = job?;
    let Some(Response::Backup(result)) = job
        .result
        .as_ref()
        .filter(|_| job.state == JobState::Succeeded)
    else {
        tracing::warn!(
            job = job.id,
            state = job.state.as_str(),
            "source backup did not succeed; the source will be rescanned"
        );
        return None;
    };
    let finished_ns = job.finished_ns.unwrap_or_else(now_ns);
    handle.update(|s| {
        s.last_snapshot = Some(result.snapshot.clone());
        s.last_snapshot_ns = Some(finished_ns);
        if let Some(first) = o.first_change_ns {
            s.last_latency_ms = Some((finished_ns.saturating_sub(first) / 1_000_000).max(0) as u64);
        }
        if o.full {
            s.scans += 1;
        } else {
            s.incremental_backups += 1;
        }
    });
    Some(result.snapshot.clone())
}
