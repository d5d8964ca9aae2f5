//! Directory sync: pairs of directories kept equal (`mirror`: DST follows SRC; `two-way`:
//! both follow each other, conflicts decided by a strategy). Each run is a job of kind `sync`
//! (`ops::sync` calls [`run::run`]); [`Pairs`] keeps the pairs (sled, [`store`]) and runs one
//! task per pair ([`task`]) that watches it with the sources' watcher and debounce machine
//! (`watch::watcher`, `watch::machine`) and on its schedule, and queues its runs.
//!
//! The rules of a run are a pure function ([`plan`]); the file work is in [`scan`] and
//! [`transfer`]. A pair never follows a symlink out of either side, never writes outside its
//! two directories, and is refused when its sides overlap each other, the daemon's state
//! directory or a local repository. Each pair's task stops when its token fires (`sync
//! remove`, `sync pause`, or the daemon stopping).

pub mod plan;
pub mod run;
pub mod scan;
pub mod store;
pub mod task;
pub mod transfer;

use crate::context::SettingsHandle;
use crate::queue::Queue;
use crate::repo::registry::Registry;
use crate::state::records::sync::{ConflictRecord, SyncPairRecord};
use crate::state::{State, StateError};
use backupd_common::protocol::{
    SyncConflict, SyncCurrent, SyncInfo, SyncRun, SyncSpec, Take, WatchState,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync pair name {0:?} is invalid: use 1-64 letters, digits, `.`, `_` or `-`")]
    InvalidName(String),
    #[error("a sync pair named {0:?} already exists; remove it first or pick another --name")]
    Exists(String),
    #[error("no sync pair named {0:?}; `backupctl sync list` shows them")]
    Unknown(String),
    #[error("sync pair {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("{path}: {reason}")]
    Path { path: PathBuf, reason: String },
    #[error("{path} is not reachable ({reason}); the run is retried")]
    SideGone { path: PathBuf, reason: String },
    #[error("{path}: cannot {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: changed while it was copied, every time; left for the next run")]
    ChangedWhileCopied { path: String },
    #[error("{path}: the copy read back differs from what was read; not put in place")]
    VerifyFailed { path: String },
    #[error("{path}: {reason}")]
    Skipped { path: String, reason: String },
    #[error("{path} has no conflict in pair {pair}; `backupctl sync conflicts {pair}` lists them")]
    NoConflict { pair: String, path: String },
    #[error("{what} is unreadable: {reason}")]
    Record { what: String, reason: String },
    #[error("the sync run was cancelled")]
    Cancelled,
    #[error("the sync service is not running in this process")]
    NotRunning,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("sync state database: {0}")]
    Db(#[from] sled::Error),
}

impl crate::error::Classify for SyncError {
    fn class(&self) -> crate::error::Class {
        use backupd_common::error::ErrorCode::*;
        let c = |code, retryable| crate::error::Class { code, retryable };
        match self {
            Self::InvalidName(_) | Self::Invalid { .. } | Self::Path { .. } => {
                c(InvalidArgument, false)
            }
            Self::Exists(_) => c(Conflict, false),
            Self::Unknown(_) | Self::NoConflict { .. } => c(NotFound, false),
            Self::SideGone { .. } | Self::Io { .. } | Self::ChangedWhileCopied { .. } => {
                c(Unavailable, true)
            }
            Self::VerifyFailed { .. } | Self::Db(_) | Self::Record { .. } | Self::NotRunning => {
                c(Internal, true)
            }
            Self::Skipped { .. } => c(InvalidArgument, false),
            Self::Cancelled => c(Unavailable, true),
            Self::State(e) => e.class(),
        }
    }
}

/// The file in flight of each pair, for `sync show`.
#[derive(Clone, Default)]
pub struct Current {
    inner: Arc<Mutex<Option<SyncCurrent>>>,
}

impl Current {
    pub fn set(&self, path: &[u8], done: u64, total: u64) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(SyncCurrent {
            path: path.to_vec(),
            bytes_done: done,
            bytes_total: total,
        });
    }

    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn get(&self) -> Option<SyncCurrent> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What the sync jobs and the service share: the store and each pair's file in flight.
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    current: Arc<Mutex<HashMap<String, Current>>>,
    /// `[sync] trash_days` is read from here when a run starts.
    pub settings: SettingsHandle,
}

impl Shared {
    pub fn open(state: &State, settings: SettingsHandle) -> Result<Self, SyncError> {
        Ok(Self {
            store: Store::open(state)?,
            current: Arc::default(),
            settings,
        })
    }

    pub fn current(&self, pair: &str) -> Current {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pair.to_owned())
            .or_default()
            .clone()
    }
}

/// What every pair's task works with.
#[derive(Clone)]
pub struct Handles {
    pub queue: Arc<Queue>,
    pub settings: SettingsHandle,
    pub repos: Arc<Registry>,
    pub state_dir: PathBuf,
    pub daemon_uid: u32,
    pub shared: Shared,
}

pub struct Pairs {
    handles: Handles,
    running: Mutex<BTreeMap<String, Arc<task::PairHandle>>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Whether `a` and `b` overlap (one is inside the other, or they are the same).
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl Pairs {
    pub fn new(handles: Handles, tasks: TaskTracker, cancel: CancellationToken) -> Self {
        Self {
            handles,
            running: Mutex::new(BTreeMap::new()),
            tasks,
            cancel,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<task::PairHandle>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> &Store {
        &self.handles.shared.store
    }

    /// Checks a new pair: a valid name, absolute existing directories that do not overlap
    /// each other, the state directory or a local repository, and a valid schedule and excludes.
    fn validate(&self, spec: &SyncSpec) -> Result<(PathBuf, PathBuf), SyncError> {
        if !backupd_common::config::declared::valid_name(&spec.name) {
            return Err(SyncError::InvalidName(spec.name.clone()));
        }
        let invalid = |reason: String| SyncError::Invalid {
            name: spec.name.clone(),
            reason,
        };
        let mut sides = Vec::new();
        for (what, raw) in [("SRC", &spec.src), ("DST", &spec.dst)] {
            let p = path_of(raw);
            let bad = |reason: String| SyncError::Path {
                path: p.to_owned(),
                reason: format!("{what} {reason}"),
            };
            if !p.is_absolute() {
                return Err(bad("must be an absolute path".into()));
            }
            // Resolved once, so that a symlinked spelling cannot hide an overlap.
            let real = std::fs::canonicalize(p).map_err(|e| bad(e.to_string()))?;
            if !real.is_dir() {
                return Err(bad("is not a directory".into()));
            }
            sides.push(real);
        }
        let (src, dst) = (sides[0].clone(), sides[1].clone());
        if overlaps(&src, &dst) {
            return Err(invalid(format!(
                "{} and {} overlap (one is inside the other); a pair needs two separate trees",
                src.display(),
                dst.display()
            )));
        }
        let forbidden = self.handles.repos.protected_paths();
        for side in [&src, &dst] {
            for (what, p) in &forbidden {
                if overlaps(side, p) {
                    return Err(invalid(format!(
                        "{} overlaps {what} ({}); sync never touches it",
                        side.display(),
                        p.display()
                    )));
                }
            }
        }
        if spec.debounce < Duration::from_millis(100) {
            return Err(invalid("--debounce must be at least 100ms".into()));
        }
        crate::engine::excludes::Excludes::new(&spec.excludes, &[])
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(s) = &spec.schedule {
            backupd_common::schedule::When::parse(s).map_err(|e| invalid(e.to_string()))?;
        }
        if spec.every.is_some_and(|e| e < Duration::from_secs(1)) {
            return Err(invalid("--every must be at least 1s".into()));
        }
        Ok((src, dst))
    }

    /// Adds and persists a pair and starts its task (which queues the first run).
    pub fn add(&self, mut spec: SyncSpec) -> Result<SyncInfo, SyncError> {
        let (src, dst) = self.validate(&spec)?;
        spec.src = src.as_os_str().as_bytes().to_vec();
        spec.dst = dst.as_os_str().as_bytes().to_vec();
        if self.lock().contains_key(&spec.name) || self.store().pair(&spec.name).is_ok() {
            return Err(SyncError::Exists(spec.name));
        }
        self.store().put_pair(SyncPairRecord::new(&spec, false))?;
        self.start(spec.clone());
        tracing::info!(pair = %spec.name, "sync pair added");
        self.get(&spec.name)
    }

    fn start(&self, spec: SyncSpec) {
        let handle = Arc::new(task::PairHandle::new(
            spec.clone(),
            self.cancel.child_token(),
        ));
        if let Some(old) = self.lock().insert(spec.name.clone(), handle.clone()) {
            old.stop.cancel();
        }
        let t = task::PairTask {
            handles: self.handles.clone(),
            pair: handle.clone(),
        };
        self.tasks.spawn(t.run(handle.stop.clone()));
    }

    /// Starts every persisted pair that is not paused.
    pub fn start_all(&self) {
        for record in self.store().pairs() {
            if !record.paused {
                self.start(record.spec());
            }
        }
    }

    pub fn get(&self, name: &str) -> Result<SyncInfo, SyncError> {
        let record = self.store().pair(name)?;
        let spec = record.spec();
        let handle = self.lock().get(name).cloned();
        let mut info = match &handle {
            Some(h) if !record.paused => h.info(),
            _ => SyncInfo {
                spec: spec.clone(),
                paused: record.paused,
                state: WatchState::NotWatched,
                job: None,
                last_run_ns: None,
                last_outcome: None,
                last_error: None,
                files: 0,
                conflicts: 0,
                current: None,
                next_run_ns: None,
                note: None,
            },
        };
        info.spec = spec;
        info.paused = record.paused;
        if let Some(last) = self.store().runs(name, 1)?.first() {
            info.last_run_ns = Some(last.finished_ns);
            info.last_outcome = Some(last.outcome.clone());
            info.last_error = last.error.clone();
        }
        info.files = self.store().files_count(name);
        info.conflicts = self.store().conflicts(name)?.len() as u64;
        info.current = self.handles.shared.current(name).get();
        Ok(info)
    }

    pub fn list(&self) -> Vec<SyncInfo> {
        self.store()
            .pairs()
            .iter()
            .filter_map(|r| self.get(&r.name).ok())
            .collect()
    }

    /// Stops and forgets a pair; both trees stay as they are.
    pub fn remove(&self, name: &str) -> Result<SyncInfo, SyncError> {
        let info = self.get(name)?;
        if let Some(h) = self.lock().remove(name) {
            h.stop.cancel();
        }
        self.store().remove_pair(name)?;
        tracing::info!(pair = %name, "sync pair removed; both trees stay");
        Ok(info)
    }

    pub fn set_paused(&self, name: &str, paused: bool) -> Result<SyncInfo, SyncError> {
        let mut record = self.store().pair(name)?;
        record.paused = paused;
        let spec = record.spec();
        self.store().put_pair(record)?;
        if paused {
            if let Some(h) = self.lock().remove(name) {
                h.stop.cancel();
            }
        } else if !self.lock().contains_key(name) {
            self.start(spec);
        }
        self.get(name)
    }

    pub fn history(&self, name: &str, limit: u32) -> Result<Vec<SyncRun>, SyncError> {
        self.store().pair(name)?;
        let limit = if limit == 0 { 50 } else { limit as usize };
        Ok(self
            .store()
            .runs(name, limit)?
            .iter()
            .map(|r| r.info(name))
            .collect())
    }

    pub fn conflicts(&self, name: &str) -> Result<Vec<SyncConflict>, SyncError> {
        self.store().pair(name)?;
        Ok(self
            .store()
            .conflicts(name)?
            .into_iter()
            .filter(|(_, c)| c.take.is_none())
            .map(|(p, c)| c.info(p))
            .collect())
    }

    /// Records how a conflict ends; the next run (asked for now) carries it out.
    pub fn resolve(
        &self,
        name: &str,
        path: &[u8],
        take: Take,
    ) -> Result<Vec<SyncConflict>, SyncError> {
        self.store().pair(name)?;
        let path = path.strip_prefix(b"/").unwrap_or(path);
        let found: Option<ConflictRecord> = self
            .store()
            .conflicts(name)?
            .into_iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c);
        let Some(mut record) = found else {
            return Err(SyncError::NoConflict {
                pair: name.to_owned(),
                path: String::from_utf8_lossy(path).into_owned(),
            });
        };
        record.take = Some(
            match take {
                Take::Local => "local",
                Take::Remote => "remote",
                Take::Both => "both",
            }
            .to_owned(),
        );
        self.store().put_conflict(name, path, record)?;
        self.run_now(name);
        self.conflicts(name)
    }

    /// Asks the pair's task for a run now (false when it is not running: paused).
    pub fn run_now(&self, name: &str) -> bool {
        match self.lock().get(name) {
            Some(h) => {
                h.scan.notify_one();
                true
            }
            None => false,
        }
    }
}
