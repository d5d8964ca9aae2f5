//! Continuous backup: watched sources. Each source runs one task ([`source`]) that turns file
//! system events ([`watcher`]) into a coalesced set of changed paths ([`dirty`]) and queues an
//! incremental backup after a quiet period. Sources are persisted in sled (tree `sources`,
//! versioned [`SourceRecord`]s); `backupd --watch DIR` adds a transient one for the run. Sources declared in the
//! config file (`[[source]]`) are written over persisted ones of the same name and (re)started
//! at start and on reload; one no longer declared stays as an ordinary source, with a warning.
//!
//! [`Sources`] is built from explicit handles ([`Handles`]); each source's task runs on the task
//! tracker under a child of the service's token, so cancelling it (daemon shutdown) or the
//! source's own token (`source remove`) stops the task.

pub mod dirty;
pub mod machine;
pub mod source;
pub mod watcher;

use crate::context::SettingsHandle;
use crate::error::Error;
use crate::queue::Queue;
use crate::repo::registry::Registry;
use crate::state::declared::{Declared, Kind};
use crate::state::records::{self, source::SourceRecord};
use crate::state::{State, StateError};
pub use backupd_common::config::declared::name_for;
use backupd_common::config::declared::valid_name;
use backupd_common::config::SourceConfig;
use backupd_common::protocol::{SourceInfo, SourceSpec, WatchState};
use source::SourceHandle;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TREE: &str = crate::state::migrate::SOURCES_TREE;

pub const DEFAULT_DEBOUNCE: Duration = backupd_common::config::declared::SOURCE_DEBOUNCE;
pub const DEFAULT_MAX_DELAY: Duration = backupd_common::config::declared::SOURCE_MAX_DELAY;
pub const DEFAULT_RESCAN: Duration = backupd_common::config::declared::SOURCE_RESCAN;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source name {0:?} is invalid: use 1-64 letters, digits, `.`, `_` or `-`")]
    InvalidName(String),
    #[error("a source named {0:?} already exists; remove it first or pick another --name")]
    Exists(String),
    #[error("no source named {0:?}; `backupctl source list` shows them")]
    Unknown(String),
    #[error(
        "{path} is already backed up into repository {repo} by source {other:?}: change that \
         source (`backupctl source set {other} ...`) instead of adding a second one, whose \
         retention would forget the other's snapshots"
    )]
    SamePath {
        path: String,
        repo: String,
        other: String,
    },
    #[error("source path {path}: {reason}")]
    Path { path: PathBuf, reason: String },
    #[error("source {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// What every source's task works with.
#[derive(Clone)]
pub struct Handles {
    /// Where the source's repository is looked up.
    pub repos: Arc<Registry>,
    /// Where its backups are queued.
    pub queue: Arc<Queue>,
    pub settings: SettingsHandle,
    /// Never watched nor backed up.
    pub state_dir: PathBuf,
    /// Source backups are submitted as the daemon itself.
    pub daemon_uid: u32,
}

pub struct Sources {
    tree: sled::Tree,
    state: State,
    running: Mutex<BTreeMap<String, Arc<SourceHandle>>>,
    handles: Handles,
    tasks: TaskTracker,
    /// The service's token: every source's token is a child of it.
    cancel: CancellationToken,
}

/// The spec a `[[source]]` table describes.
pub fn spec_of(c: &SourceConfig) -> SourceSpec {
    SourceSpec {
        name: c.name(),
        path: c.path.as_os_str().as_bytes().to_vec(),
        repo: c.repo.clone(),
        excludes: c.excludes.clone(),
        watch: c.watch,
        debounce: c.debounce,
        max_delay: c.max_delay,
        rescan_every: c.rescan_every,
        policy: c.policy(),
    }
}

/// The sources persisted in `state`, read without starting the service (migrations, tests).
pub fn persisted_in(state: &State) -> Result<Vec<SourceSpec>, StateError> {
    Ok(read_persisted(&state.tree(TREE)?))
}

fn read_persisted(tree: &sled::Tree) -> Vec<SourceSpec> {
    tree
        .iter()
        .filter_map(|item| {
            let (key, value) = item.ok()?;
            match records::decode::<SourceRecord>(&value) {
                Ok(record) => Some(SourceSpec::from(record)),
                Err(e) => {
                    tracing::warn!(source = %String::from_utf8_lossy(&key), error = %e, "source record unreadable; skipped");
                    None
                }
            }
        })
        .collect()
}

impl Sources {
    /// Opens the persisted sources; none runs until [`Sources::apply_declared`] and
    /// [`Sources::start_all`]. Source tasks go on `tasks` and stop when `cancel` fires.
    pub fn open(
        state: &State,
        handles: Handles,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tree: state.tree(TREE)?,
            state: state.clone(),
            running: Mutex::new(BTreeMap::new()),
            handles,
            tasks,
            cancel,
        })
    }

    fn write_err(&self, source: sled::Error) -> StateError {
        StateError::Write {
            path: self.state.path().to_owned(),
            source,
        }
    }

    pub fn persisted(&self) -> Vec<SourceSpec> {
        read_persisted(&self.tree)
    }

    fn validate(&self, spec: &SourceSpec) -> Result<(), SourceError> {
        if !valid_name(&spec.name) {
            return Err(SourceError::InvalidName(spec.name.clone()));
        }
        let path = PathBuf::from(OsStr::from_bytes(&spec.path));
        let bad = |reason: &str| SourceError::Path {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        if !path.is_absolute() {
            return Err(bad("must be absolute"));
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(bad("is not a directory; watch the directory that holds it")),
            Err(e) => return Err(bad(&format!("{e}"))),
        }
        let invalid = |reason: String| SourceError::Invalid {
            name: spec.name.clone(),
            reason,
        };
        if spec.debounce < Duration::from_millis(100) {
            return Err(invalid("--debounce must be at least 100ms".into()));
        }
        if spec.max_delay < spec.debounce {
            return Err(invalid(
                "--max-delay must not be shorter than --debounce".into(),
            ));
        }
        if spec.rescan_every < Duration::from_secs(60) {
            return Err(invalid("--rescan-every must be at least 1m".into()));
        }
        crate::engine::excludes::Excludes::new(&spec.excludes, &[])
            .map_err(|e| invalid(e.to_string()))?;
        if let Some((field, message)) = backupd_common::schedule::policy_problem(&spec.policy) {
            let flag = match field {
                "keep" => "--keep-*".to_owned(),
                other => format!("--{}", other.replace('_', "-")),
            };
            return Err(invalid(format!("{flag} {message}")));
        }
        Ok(())
    }

    /// `validate`, and the source must not be inside the state directory.
    fn validate_in(&self, spec: &SourceSpec) -> Result<(), SourceError> {
        self.validate(spec)?;
        let path = Path::new(OsStr::from_bytes(&spec.path));
        let state_dir = &self.handles.state_dir;
        if path.starts_with(state_dir) {
            return Err(SourceError::Path {
                path: path.to_owned(),
                reason: format!(
                    "is inside the daemon's state directory {}, which is never backed up",
                    state_dir.display()
                ),
            });
        }
        Ok(())
    }

    async fn persist(&self, spec: &SourceSpec) -> Result<(), Error> {
        let bytes = records::encode(&mut SourceRecord::from(spec));
        self.tree
            .insert(spec.name.as_bytes(), bytes)
            .map_err(|e| SourceError::State(self.write_err(e)))?;
        self.tree
            .flush_async()
            .await
            .map_err(|e| SourceError::State(self.write_err(e)))?;
        Ok(())
    }

    /// Persists and (re)starts the sources declared in the config; a declared source replaces
    /// a persisted or running one of the same name. Returns the names that changed. Problems
    /// are logged per source (a declared directory that does not exist yet is tried again at
    /// the next reload).
    pub async fn apply_declared(&self, declared: &[SourceConfig]) -> Vec<String> {
        let mut changed = Vec::new();
        let marks = match Declared::open(&self.state) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot read which sources were declared");
                return changed;
            }
        };
        let persisted = self.persisted();
        for c in declared {
            let spec = spec_of(c);
            if let Err(e) = self.validate_in(&spec) {
                tracing::error!(source = %spec.name, error = %e, "declared source not started");
                continue;
            }
            if let Err(e) = marks.mark(Kind::Source, &spec.name) {
                tracing::error!(source = %spec.name, error = %e, "cannot record the declared source");
            }
            if !persisted.contains(&spec) {
                if let Err(e) = self.persist(&spec).await {
                    tracing::error!(source = %spec.name, error = %e, "declared source not saved");
                    continue;
                }
            }
            let running = self.lock().get(&spec.name).map(|h| h.info());
            match running {
                Some(info) if info.spec == spec && !info.transient => continue,
                Some(_) => {
                    if let Some(old) = self.lock().remove(&spec.name) {
                        old.stop.cancel();
                    }
                    tracing::info!(source = %spec.name, "restarting the source with its declaration from the config file");
                }
                None => {}
            }
            self.start(spec.clone(), false);
            changed.push(spec.name);
        }
        for name in marks.names(Kind::Source) {
            if declared.iter().any(|c| c.name() == name) {
                continue;
            }
            tracing::warn!(
                source = %name,
                "source is no longer declared in the config file; it keeps running as an \
                 ordinary source (`backupctl source remove {name}` stops it)"
            );
            if let Err(e) = marks.unmark(Kind::Source, &name) {
                tracing::error!(source = %name, error = %e, "cannot update the declared marks");
            }
        }
        changed
    }

    /// Adds (and, unless transient, persists) a source and starts its task.
    pub async fn add(&self, spec: SourceSpec, transient: bool) -> Result<SourceInfo, Error> {
        self.validate_in(&spec)?;
        let repo_of = |s: &SourceSpec| s.repo.clone().unwrap_or_else(|| "default".into());
        {
            let running = self.lock();
            if running.contains_key(&spec.name) {
                return Err(SourceError::Exists(spec.name).into());
            }
            // A source's retention applies to every snapshot of its directory in its
            // repository, so two sources of one directory would forget each other's.
            let twin = running
                .values()
                .map(|h| h.info().spec)
                .find(|other| other.path == spec.path && repo_of(other) == repo_of(&spec));
            if let Some(other) = twin {
                return Err(SourceError::SamePath {
                    path: backupd_common::paths::escape_path(&spec.path),
                    repo: repo_of(&spec),
                    other: other.name,
                }
                .into());
            }
        }
        if !transient {
            self.persist(&spec).await?;
        }
        Ok(self.start(spec, transient))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<SourceHandle>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, spec: SourceSpec, transient: bool) -> SourceInfo {
        let info = SourceInfo {
            spec: spec.clone(),
            transient,
            state: WatchState::Starting,
            dirs_watched: 0,
            pending_paths: 0,
            job: None,
            last_snapshot: None,
            last_snapshot_ns: None,
            last_latency_ms: None,
            scans: 0,
            incremental_backups: 0,
            note: None,
            next_run_ns: None,
        };
        let handle = Arc::new(SourceHandle {
            status: Mutex::new(info.clone()),
            stop: self.cancel.child_token(),
            scan: tokio::sync::Notify::new(),
        });
        self.lock().insert(spec.name.clone(), handle.clone());
        let task = source::SourceTask {
            handles: self.handles.clone(),
            source: handle.clone(),
        };
        self.tasks.spawn(task.run(handle.stop.clone()));
        tracing::info!(source = %spec.name, path = %String::from_utf8_lossy(&spec.path), transient, "source added");
        info
    }

    pub async fn remove(&self, name: &str) -> Result<SourceInfo, Error> {
        let Some(handle) = self.lock().remove(name) else {
            return Err(SourceError::Unknown(name.to_owned()).into());
        };
        handle.stop.cancel();
        self.tree
            .remove(name.as_bytes())
            .map_err(|e| SourceError::State(self.write_err(e)))?;
        self.tree
            .flush_async()
            .await
            .map_err(|e| SourceError::State(self.write_err(e)))?;
        tracing::info!(source = %name, "source removed; its snapshots stay");
        Ok(handle.info())
    }

    pub fn list(&self) -> Vec<SourceInfo> {
        self.lock().values().map(|h| h.info()).collect()
    }

    pub fn get(&self, name: &str) -> Result<SourceInfo, SourceError> {
        self.lock()
            .get(name)
            .map(|h| h.info())
            .ok_or_else(|| SourceError::Unknown(name.to_owned()))
    }

    /// Replaces a source's spec (persisted unless it is transient) and restarts its task.
    /// A source declared in the config file gets its declaration back at the next reload.
    pub async fn set(&self, spec: SourceSpec) -> Result<SourceInfo, Error> {
        self.validate_in(&spec)?;
        let old = self.get(&spec.name)?;
        if !old.transient {
            self.persist(&spec).await?;
        }
        if let Some(handle) = self.lock().remove(&spec.name) {
            handle.stop.cancel();
        }
        let info = self.start(spec, old.transient);
        tracing::info!(source = %info.spec.name, "source changed");
        Ok(info)
    }

    /// Asks a source for a full scan now (its scheduled run); false if it is not running.
    pub fn scan_now(&self, name: &str) -> bool {
        match self.lock().get(name) {
            Some(h) => {
                h.scan.notify_one();
                true
            }
            None => false,
        }
    }

    /// Starts the persisted sources not yet running (declared ones are started first, by
    /// [`Sources::apply_declared`]) and the `--watch` directories of this run.
    pub fn start_all(&self, watch: &[PathBuf]) {
        for spec in self.persisted() {
            if self.lock().contains_key(&spec.name) {
                continue;
            }
            if let Err(e) = self.validate(&spec) {
                tracing::error!(source = %spec.name, error = %e, "source not started");
                continue;
            }
            self.start(spec, false);
        }
        for dir in watch {
            let mut name = name_for(dir);
            let mut n = 2;
            while self.lock().contains_key(&name) {
                name = format!("{}-{n}", name_for(dir));
                n += 1;
            }
            let spec = SourceSpec {
                name,
                path: dir.as_os_str().as_bytes().to_vec(),
                repo: None,
                excludes: Vec::new(),
                watch: true,
                debounce: DEFAULT_DEBOUNCE,
                max_delay: DEFAULT_MAX_DELAY,
                rescan_every: DEFAULT_RESCAN,
                policy: Default::default(),
            };
            match self.validate(&spec) {
                Ok(()) => {
                    self.start(spec, true);
                }
                Err(e) => tracing::error!(error = %e, "--watch {} not started", dir.display()),
            }
        }
    }
}
