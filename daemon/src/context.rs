//! What every request handler may read: who the daemon is, where it runs, its live configuration
//! and its state. Shared as `Arc<Context>`; mutable parts sit behind their own locks.

use crate::server::listener::Listener;
use crate::settings::Settings;
use crate::state::State;
use crate::LogReload;
use backupd_common::protocol::RunMode;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What lives in the state database, opened together at start.
pub struct Stores {
    pub state: State,
    pub queue: crate::queue::Queue,
    pub sources: crate::watch::Sources,
    /// Set when a damaged database was moved aside and replaced by an empty one.
    pub recovery: Option<crate::state::recover::Recovery>,
}

impl Stores {
    /// Opens the state database (replacing it if it is damaged) and what it holds. Blocking.
    pub fn open(
        state_dir: &std::path::Path,
        q: &backupd_common::config::QueueConfig,
    ) -> Result<Self, crate::state::StateError> {
        let (state, recovery) = crate::state::recover::open_or_recover(state_dir)?;
        Ok(Self {
            queue: crate::queue::Queue::open(&state, q)?,
            sources: crate::watch::Sources::open(&state)?,
            state,
            recovery,
        })
    }
}

pub struct Context {
    pub started: Instant,
    pub pid: u32,
    /// The uid the daemon runs as; that uid and root are admins.
    pub daemon_uid: u32,
    pub mode: RunMode,
    pub socket: PathBuf,
    pub socket_activated: bool,
    pub state_dir: PathBuf,
    pub state: State,
    /// Named repositories (blocking API: call from blocking threads).
    pub repos: Arc<crate::repo::registry::Registry>,
    /// The job queue every long operation runs through.
    pub queue: crate::queue::Queue,
    /// Continuously backed-up directories.
    pub sources: crate::watch::Sources,
    /// Cancelling it stops the daemon (SIGTERM, `system shutdown`).
    pub shutdown: CancellationToken,
    /// Every task the daemon spawns is tracked here so shutdown can drain them.
    pub tasks: TaskTracker,
    settings: RwLock<Arc<Settings>>,
    /// Connections being served, per uid and in total, under the caps of `[server]`.
    pub slots: Arc<crate::server::slots::Slots>,
    /// Bytes all connections together may hold in partly received large frames.
    pub frame_budget: Arc<crate::server::frames::FrameBudget>,
    log_reload: Option<LogReload>,
    /// Serialises reloads (SIGHUP and `system reload` may race).
    pub reload_lock: tokio::sync::Mutex<()>,
    /// What `system health` reports as needing an administrator.
    pub alerts: Arc<crate::alerts::Alerts>,
}

impl Context {
    pub fn new(
        settings: Settings,
        stores: Stores,
        listener: &Listener,
        shutdown: CancellationToken,
        tasks: TaskTracker,
        log_reload: Option<LogReload>,
    ) -> Self {
        let budget = settings.config.server.frame_budget_bytes;
        let Stores {
            state,
            queue,
            sources,
            recovery,
        } = stores;
        let alerts = Arc::new(crate::alerts::Alerts::default());
        if let Some(recovery) = recovery {
            let _ = alerts.raise("state", recovery.message());
        }
        Self {
            started: Instant::now(),
            pid: std::process::id(),
            daemon_uid: nix::unistd::geteuid().as_raw(),
            mode: settings.mode,
            socket: listener.path().to_owned(),
            socket_activated: listener.activated(),
            state_dir: settings.state_dir.clone(),
            repos: Arc::new(crate::repo::registry::Registry::new(
                state.clone(),
                &settings.state_dir,
                alerts.clone(),
            )),
            state,
            queue,
            sources,
            shutdown,
            tasks,
            settings: RwLock::new(Arc::new(settings)),
            slots: Arc::default(),
            frame_budget: Arc::new(crate::server::frames::FrameBudget::new(budget)),
            log_reload,
            reload_lock: tokio::sync::Mutex::new(()),
            alerts,
        }
    }

    /// The settings in force now (a cheap `Arc` clone).
    pub fn settings(&self) -> Arc<Settings> {
        // A poisoned lock only means a reload panicked mid-swap of an Arc; the value is intact.
        self.settings
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace_settings(&self, new: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(new);
    }

    /// Connections being served right now.
    pub fn live_connections(&self) -> usize {
        self.slots.live()
    }

    pub fn set_log_level(&self, level: &str) -> Result<(), String> {
        match &self.log_reload {
            Some(hook) => hook(level),
            None => Ok(()),
        }
    }
}
