//! One source's task: the async shell around its [`Machine`]. It looks up the repository,
//! watches the tree, turns inotify events ([`watcher`](super::watcher)) and the queue's job events
//! into machine events, carries out the machine's actions (queue a backup, record how it ended)
//! and sleeps until the machine's next deadline. It stops when its token fires (`source
//! remove`, or the sources service stopping with the daemon).

use super::machine::{Action, Event, Machine, Timing};
use super::watcher::{WatchError, Watcher};
use super::Handles;
use crate::engine::excludes::Excludes;
use crate::engine::incremental::Change;
use crate::repo::now_ns;
use backupd_common::protocol::{
    BackupRequest, JobId, JobKind, JobOptions, JobSpec, JobState, PathChange, Response, SourceInfo,
    SourceSpec, WatchState,
};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct SourceHandle {
    pub status: Mutex<SourceInfo>,
    pub stop: CancellationToken,
    /// The scheduler asks for a full scan (a scheduled run).
    pub scan: tokio::sync::Notify,
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

async fn recv_raw(
    rx: &mut Option<mpsc::Receiver<notify::Result<notify::Event>>>,
) -> Option<notify::Result<notify::Event>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One source's task, built from the shared handles and the source's own status.
pub struct SourceTask {
    pub handles: Handles,
    pub source: Arc<SourceHandle>,
}

/// What the shell keeps besides the machine: the watcher and where the backups go.
struct Shell {
    handles: Handles,
    source: Arc<SourceHandle>,
    spec: SourceSpec,
    repo: String,
    watcher: Option<Shared>,
    raw_rx: Option<mpsc::Receiver<notify::Result<notify::Event>>>,
}

impl SourceTask {
    pub async fn run(self, cancel: CancellationToken) {
        let name = self.source.info().spec.name;
        let span = tracing::info_span!("source", source = %name);
        async move {
            if let Some(mut shell) = self.prepare(&cancel).await {
                shell.run(&cancel).await;
                if let Some(w) = shell.watcher {
                    w.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
            }
            tracing::info!("source stopped");
        }
        .instrument(span)
        .await
    }

    /// Waits for the repository, then starts watching. `None` when cancelled first or the
    /// source cannot run (a bad exclude).
    async fn prepare(self, cancel: &CancellationToken) -> Option<Shell> {
        let Self { handles, source } = self;
        let spec = source.info().spec;
        let root = PathBuf::from(std::ffi::OsStr::from_bytes(&spec.path));
        // The repository name (pinned, like every job's) and where it lives, once it exists.
        let repo = loop {
            let registry = handles.repos.clone();
            let wanted = spec.repo.clone();
            let found =
                tokio::task::spawn_blocking(move || registry.entry(wanted.as_deref())).await;
            match found {
                Ok(Ok(entry)) => break entry,
                Ok(Err(e)) => {
                    source.update(|s| s.note = Some(format!("waiting for the repository: {e}")));
                }
                Err(e) => tracing::error!(error = %e, "repository lookup failed"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        };
        source.update(|s| s.note = None);
        let excludes = match Excludes::new(&spec.excludes, &[]) {
            Ok(e) => e.without_own_output(),
            Err(e) => {
                source.update(|s| s.note = Some(format!("bad exclude: {e}")));
                return None;
            }
        };
        for own in crate::engine::excludes::own_output_files() {
            if let Some(path) = own.path.filter(|p| p.starts_with(&root)) {
                tracing::info!(
                    path = %path.display(),
                    "leaving out the daemon's own log ({} is this file): it is neither watched \
                     nor backed up, or every log line would make another backup",
                    own.stream
                );
            }
        }
        let mut skip = vec![handles.state_dir.clone()];
        skip.extend(repo.location.local_path().map(ToOwned::to_owned));
        let (watcher, raw_rx) = if spec.watch {
            match start_watching(&root, skip, excludes).await {
                Ok((w, rx, dirs)) => {
                    tracing::info!(path = %root.display(), dirs, "watching");
                    source.update(|s| {
                        s.state = WatchState::Watching;
                        s.dirs_watched = dirs as u64;
                    });
                    (Some(w), Some(rx))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "not watching; periodic scans instead");
                    source.update(|s| {
                        s.state = WatchState::Periodic;
                        s.note = Some(e.to_string());
                    });
                    (None, None)
                }
            }
        } else {
            source.update(|s| s.state = WatchState::NotWatched);
            (None, None)
        };
        Some(Shell {
            handles,
            source,
            spec,
            repo: repo.name,
            watcher,
            raw_rx,
        })
    }
}

impl Shell {
    async fn run(&mut self, cancel: &CancellationToken) {
        let timing = Timing {
            debounce: self.spec.debounce,
            max_delay: self.spec.max_delay,
            rescan_every: self.spec.rescan_every,
            periodic: self.spec.watch || !self.spec.policy.is_scheduled(),
        };
        let mut machine = Machine::new(timing, self.raw_rx.is_some(), Instant::now());
        let mut events = self.handles.queue.subscribe();
        let mut event = Event::Tick;
        loop {
            let actions = machine.on(event, Instant::now());
            self.act(&mut machine, actions).await;
            self.show(&machine);
            event = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(machine.deadline()) => Event::Tick,
                raw = recv_raw(&mut self.raw_rx) => self.on_raw(raw).await,
                queued = events.recv() => self.on_job_event(machine.job(), queued),
                _ = self.source.scan.notified() => {
                    tracing::info!("scheduled backup");
                    Event::Rescan
                }
            };
        }
    }

    /// Carries out the machine's actions; a submission's outcome goes straight back to it.
    async fn act(&self, machine: &mut Machine, actions: Vec<Action>) {
        let mut todo = std::collections::VecDeque::from(actions);
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Submit { changes, parent } => {
                    let job = self.submit(changes, parent).await;
                    todo.extend(machine.on(Event::Queued(job), Instant::now()));
                }
                Action::Succeeded {
                    snapshot,
                    full,
                    first_change_ns,
                    finished_ns,
                } => {
                    self.source.update(|s| {
                        s.last_snapshot = Some(snapshot);
                        s.last_snapshot_ns = Some(finished_ns);
                        if let Some(first) = first_change_ns {
                            s.last_latency_ms =
                                Some((finished_ns.saturating_sub(first) / 1_000_000).max(0) as u64);
                        }
                        if full {
                            s.scans += 1;
                        } else {
                            s.incremental_backups += 1;
                        }
                        s.note = None;
                    });
                }
                Action::Failed { why, retry_in } => {
                    tracing::warn!(%why, retry_in = ?retry_in, "source backup did not succeed; the source will be rescanned");
                    self.source.update(|s| {
                        s.note = Some(format!(
                            "the last backup failed ({why}); next try in {}",
                            humantime::format_duration(retry_in)
                        ))
                    });
                }
            }
        }
    }
    /// Publishes what `source list` shows.
    fn show(&self, machine: &Machine) {
        let pending = machine.pending() as u64;
        let job = machine.job();
        let dirs = self
            .watcher
            .as_ref()
            .map(|w| w.lock().unwrap_or_else(|p| p.into_inner()).dirs_watched());
        self.source.update(|s| {
            s.pending_paths = pending;
            s.job = job;
            if let Some(d) = dirs {
                s.dirs_watched = d as u64;
            }
        });
    }

    /// Leaves the watcher behind: periodic scans from now on.
    fn lose_watcher(&mut self, note: Option<String>) -> Event {
        if let Some(w) = &self.watcher {
            w.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.raw_rx = None;
        self.source.update(|s| {
            s.state = WatchState::Periodic;
            if note.is_some() {
                s.note = note;
            }
        });
        Event::WatchLost
    }

    /// One inotify event as the machine sees it; new directories are watched first.
    async fn on_raw(&mut self, raw: Option<notify::Result<notify::Event>>) -> Event {
        let Some(w) = self.watcher.clone() else {
            return Event::Tick;
        };
        let event = match raw {
            None => {
                tracing::warn!("watcher stopped; periodic scans instead");
                return self.lose_watcher(None);
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "watch error; rescanning");
                return Event::Rescan;
            }
            Some(Ok(event)) => event,
        };
        let (c, dropped) = {
            let w = w.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = w
                .overflowed
                .swap(false, std::sync::atomic::Ordering::Relaxed);
            (w.classify(&event), dropped)
        };
        let mut rescan = false;
        if dropped {
            tracing::warn!("event channel overflowed; rescanning");
            rescan = true;
        }
        if c.rescan {
            tracing::warn!("inotify queue overflowed; rescanning");
            rescan = true;
        }
        if !c.gone_dirs.is_empty() || !c.new_dirs.is_empty() {
            if let Err(e) = rewatch(w, c.gone_dirs, c.new_dirs).await {
                tracing::warn!(error = %e, "watching stopped; periodic scans instead");
                return self.lose_watcher(Some(e.to_string()));
            }
        }
        if rescan {
            // A scan covers these changes too.
            return Event::Rescan;
        }
        Event::Changed {
            changes: c.changes,
            wall_ns: now_ns(),
        }
    }

    /// The end of the source's backup in flight, if `event` tells it.
    fn on_job_event(
        &self,
        in_flight: Option<JobId>,
        event: Result<backupd_common::protocol::JobEvent, broadcast::error::RecvError>,
    ) -> Event {
        job_ended(
            &self.handles.queue,
            in_flight,
            event,
            "backup",
            |j| match &j.result {
                Some(Response::Backup(r)) => Some(r.snapshot.clone()),
                _ => None,
            },
        )
    }

    /// Queues the source's backup: a full scan, or the changes against `parent`.
    async fn submit(
        &self,
        changes: Option<Vec<(PathBuf, Change)>>,
        parent: Option<String>,
    ) -> Option<JobId> {
        let full = changes.is_none();
        let spec = &self.spec;
        let request = BackupRequest {
            repo: Some(self.repo.clone()),
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
        let q = self.handles.settings.get().config.queue.clone();
        let uid = self.handles.daemon_uid;
        match self.handles.queue.submit_internal(job, uid, &q).await {
            Ok(s) => {
                tracing::debug!(job = s.id, full, "source backup queued");
                Some(s.id)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot queue the source's backup");
                None
            }
        }
    }
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

/// What `event` says of the job in flight (its id): [`Event::Ended`] once it reached a final
/// state (a missed event: the job is looked up), with `ok`'s answer for a succeeded job whose
/// result is the expected one; otherwise [`Event::Tick`]. `what` names the kind in errors.
/// Shared by sources (backups) and sync pairs (sync runs), which run on the same machine.
pub(crate) fn job_ended(
    queue: &crate::queue::Queue,
    in_flight: Option<JobId>,
    event: Result<backupd_common::protocol::JobEvent, broadcast::error::RecvError>,
    what: &str,
    ok: impl FnOnce(&backupd_common::protocol::JobInfo) -> Option<String>,
) -> Event {
    let Some(id) = in_flight else {
        return Event::Tick;
    };
    let ended = match event {
        Ok(e) => e.job == id && e.state.is_final(),
        // Missed events: look the job up.
        Err(broadcast::error::RecvError::Lagged(_)) => {
            queue.job(id).is_none_or(|j| j.state.is_final())
        }
        Err(broadcast::error::RecvError::Closed) => false,
    };
    if !ended {
        return Event::Tick;
    }
    let job = queue.job(id);
    let finished_ns = job
        .as_ref()
        .and_then(|j| j.finished_ns)
        .unwrap_or_else(now_ns);
    let outcome = match job {
        None => Err(format!("the {what} job is gone")),
        Some(j) => match (j.state, ok(&j)) {
            (JobState::Succeeded, Some(done)) => Ok(done),
            _ => Err(j
                .error
                .map(|e| e.message)
                .unwrap_or_else(|| format!("the {what} job {} ended {}", j.id, j.state.as_str()))),
        },
    };
    Event::Ended {
        outcome,
        finished_ns,
    }
}
