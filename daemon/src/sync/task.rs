//! One pair's task: the async shell around the sources' debounce [`Machine`]. It watches SRC
//! (and DST for a two-way pair) with the sources' [`Watcher`], asks for a run on the pair's
//! schedule (`backupd_common::schedule::When`) and on `sync run`/`sync resolve`, queues `sync`
//! jobs as the machine says (one at a time) and follows them to their end through the queue's
//! events. Stops when its token fires.

use super::Handles;
use crate::engine::excludes::Excludes;
use crate::repo::now_ns;
use crate::watch::machine::{Action, Event, Machine, Timing};
use crate::watch::source::job_ended;
use crate::watch::watcher::Watcher;
use backupd_common::protocol::{
    JobId, JobKind, JobOptions, JobSpec, Priority, Response, SyncInfo, SyncMode, SyncRunRequest,
    SyncSpec, WatchState,
};
use backupd_common::schedule::When;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type Raw = notify::Result<notify::Event>;

pub struct PairHandle {
    pub status: Mutex<SyncInfo>,
    pub stop: CancellationToken,
    /// `sync run`, `sync resolve`: a run now.
    pub scan: tokio::sync::Notify,
}

impl PairHandle {
    pub fn new(spec: SyncSpec, stop: CancellationToken) -> Self {
        Self {
            status: Mutex::new(SyncInfo {
                spec,
                paused: false,
                state: WatchState::Starting,
                job: None,
                last_run_ns: None,
                last_outcome: None,
                last_error: None,
                files: 0,
                conflicts: 0,
                current: None,
                next_run_ns: None,
                note: None,
            }),
            stop,
            scan: tokio::sync::Notify::new(),
        }
    }

    pub fn info(&self) -> SyncInfo {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut SyncInfo)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

pub struct PairTask {
    pub handles: Handles,
    pub pair: Arc<PairHandle>,
}

async fn recv(rx: &mut Option<mpsc::Receiver<Raw>>) -> Option<Raw> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A watcher on `root` (blocking work off the async threads).
async fn watch(
    root: PathBuf,
    excludes: Excludes,
) -> Result<(Arc<Mutex<Watcher>>, mpsc::Receiver<Raw>), String> {
    let skip = vec![root.join(OsStr::from_bytes(super::scan::TRASH))];
    let (w, rx) = Watcher::new(root.clone(), skip, excludes).map_err(|e| e.to_string())?;
    let w = Arc::new(Mutex::new(w));
    let shared = w.clone();
    tokio::task::spawn_blocking(move || {
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_tree(&root)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok((w, rx))
}

impl PairTask {
    pub async fn run(self, cancel: CancellationToken) {
        let spec = self.pair.info().spec;
        let name = spec.name.clone();
        // Indexed by side (0: SRC, 1: DST), so a side whose watch failed leaves a hole instead
        // of shifting the other side's watcher onto its events.
        let mut watchers: [Option<Arc<Mutex<Watcher>>>; 2] = [None, None];
        let mut rxs: Vec<Option<mpsc::Receiver<Raw>>> = vec![None, None];
        if spec.watch {
            let mut roots = vec![spec.src.clone()];
            if spec.mode == SyncMode::TwoWay {
                roots.push(spec.dst.clone());
            }
            for (i, root) in roots.into_iter().enumerate() {
                let Ok(excludes) = Excludes::new(&spec.excludes, &[]) else {
                    break;
                };
                match watch(PathBuf::from(OsStr::from_bytes(&root)), excludes).await {
                    Ok((w, rx)) => {
                        watchers[i] = Some(w);
                        rxs[i] = Some(rx);
                    }
                    Err(e) => {
                        tracing::warn!(pair = %name, error = %e, "not watching; scheduled runs only");
                        self.pair.update(|s| s.note = Some(e));
                    }
                }
            }
        }
        let watching = rxs.iter().any(Option::is_some);
        self.pair.update(|s| {
            s.state = if watching {
                WatchState::Watching
            } else if spec.watch {
                WatchState::Periodic
            } else {
                WatchState::NotWatched
            }
        });
        let timing = Timing {
            debounce: spec.debounce,
            max_delay: spec.debounce.max(Duration::from_secs(60)),
            // A full run once a day as a backstop; watching covers the rest.
            rescan_every: Duration::from_secs(86_400),
            periodic: true,
        };
        let whens: Vec<When> = spec
            .schedule
            .iter()
            .filter_map(|s| When::parse(s).ok())
            .chain(spec.every.map(When::Every))
            .collect();
        let mut last_scheduled = now_ns();
        let mut machine = Machine::new(timing, watching, Instant::now());
        let mut events = self.handles.queue.subscribe();
        let mut event = Event::Tick;
        let [mut rx_src, mut rx_dst] = [rxs.remove(0), rxs.remove(0)];
        loop {
            let actions = machine.on(event, Instant::now());
            self.act(&mut machine, actions).await;
            let next_scheduled = whens
                .iter()
                .filter_map(|w| w.next_after(last_scheduled))
                .min();
            self.pair.update(|s| {
                s.job = machine.job();
                s.next_run_ns = next_scheduled;
            });
            let until_scheduled = next_scheduled.map(|t| {
                Instant::now() + Duration::from_nanos(t.saturating_sub(now_ns()).max(0) as u64)
            });
            let wake = until_scheduled.map_or(machine.deadline(), |t| t.min(machine.deadline()));
            event = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {
                    if next_scheduled.is_some_and(|t| t <= now_ns()) {
                        last_scheduled = now_ns();
                        Event::Rescan
                    } else {
                        Event::Tick
                    }
                }
                raw = recv(&mut rx_src) => on_raw(&watchers, 0, raw).await,
                raw = recv(&mut rx_dst) => on_raw(&watchers, 1, raw).await,
                queued = events.recv() => self.on_job_event(machine.job(), queued),
                _ = self.pair.scan.notified() => Event::Rescan,
            };
        }
        for w in watchers.into_iter().flatten() {
            w.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        tracing::info!(pair = %name, "sync pair stopped");
    }

    async fn act(&self, machine: &mut Machine, actions: Vec<Action>) {
        let mut todo = std::collections::VecDeque::from(actions);
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Submit { .. } => {
                    let job = self.submit().await;
                    todo.extend(machine.on(Event::Queued(job), Instant::now()));
                }
                Action::Succeeded { .. } => self.pair.update(|s| s.note = None),
                Action::Failed { why, retry_in } => {
                    tracing::warn!(pair = %self.pair.info().spec.name, %why, "sync run did not succeed");
                    self.pair.update(|s| {
                        s.note = Some(format!(
                            "the last run failed ({why}); next try in {}",
                            humantime::format_duration(retry_in)
                        ))
                    });
                }
            }
        }
    }

    async fn submit(&self) -> Option<JobId> {
        let name = self.pair.info().spec.name;
        let job = JobSpec {
            kind: JobKind::Sync(SyncRunRequest { pair: name.clone() }),
            options: JobOptions {
                priority: Priority::Normal,
                ..Default::default()
            },
        };
        let q = self.handles.settings.get().config.queue.clone();
        match self
            .handles
            .queue
            .submit_internal(job, self.handles.daemon_uid, &q)
            .await
        {
            Ok(s) => Some(s.id),
            Err(e) => {
                tracing::error!(pair = %name, error = %e, "cannot queue the sync run");
                None
            }
        }
    }

    fn on_job_event(
        &self,
        in_flight: Option<JobId>,
        event: Result<backupd_common::protocol::JobEvent, broadcast::error::RecvError>,
    ) -> Event {
        job_ended(&self.handles.queue, in_flight, event, "sync", |j| {
            matches!(j.result, Some(Response::Sync(_))).then(|| format!("job {}", j.id))
        })
    }
}

/// One inotify event as the machine sees it; new directories are watched first.
async fn on_raw(watchers: &[Option<Arc<Mutex<Watcher>>>], i: usize, raw: Option<Raw>) -> Event {
    let Some(w) = watchers.get(i).cloned().flatten() else {
        return Event::Tick;
    };
    let event = match raw {
        None => return Event::WatchLost,
        Some(Err(_)) => return Event::Rescan,
        Some(Ok(e)) => e,
    };
    let c = w.lock().unwrap_or_else(|p| p.into_inner()).classify(&event);
    if !c.gone_dirs.is_empty() || !c.new_dirs.is_empty() {
        let (gone, new) = (c.gone_dirs.clone(), c.new_dirs.clone());
        let w2 = w.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut w = w2.lock().unwrap_or_else(|p| p.into_inner());
            for d in &gone {
                w.remove_tree(d);
            }
            for d in &new {
                let _ = w.add_tree(d);
            }
        })
        .await;
    }
    if c.rescan {
        return Event::Rescan;
    }
    Event::Changed {
        changes: c.changes,
        wall_ns: now_ns(),
    }
}
