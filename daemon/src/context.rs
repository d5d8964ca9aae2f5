//! The daemon's process-wide handles, each small and cloned into the services that need it:
//! who the daemon is ([`Process`]), its live configuration ([`SettingsHandle`]) and the state
//! database opened at start ([`Stores`]). No service takes a whole context: `lib.rs` builds
//! each one from the handles it needs.

use crate::settings::Settings;
use crate::state::State;
use backupd_common::protocol::RunMode;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// What is opened from the state database before anything runs.
pub struct Stores {
    pub state: State,
    pub queue: crate::queue::Queue,
    /// Set when a damaged database was moved aside and replaced by an empty one.
    pub recovery: Option<crate::state::recover::Recovery>,
}

impl Stores {
    /// Opens the state database (replacing it if it is damaged) and the job queue. Blocking.
    pub fn open(
        state_dir: &std::path::Path,
        q: &backupd_common::config::QueueConfig,
    ) -> Result<Self, crate::state::StateError> {
        let (state, recovery) = crate::state::recover::open_or_recover(state_dir)?;
        Ok(Self {
            queue: crate::queue::Queue::open(&state, q)?,
            state,
            recovery,
        })
    }
}

/// Who the daemon is; fixed for the life of the process.
#[derive(Clone, Debug)]
pub struct Process {
    pub started: Instant,
    pub pid: u32,
    /// The uid the daemon runs as; that uid and root are admins.
    pub daemon_uid: u32,
    pub mode: RunMode,
    pub state_dir: PathBuf,
}

impl Process {
    pub fn current(settings: &Settings) -> Self {
        Self {
            started: Instant::now(),
            pid: std::process::id(),
            daemon_uid: nix::unistd::geteuid().as_raw(),
            mode: settings.mode,
            state_dir: settings.state_dir.clone(),
        }
    }
}

/// The settings in force, shared by every service that reads configuration when it acts; a
/// reload swaps them in one step.
#[derive(Clone)]
pub struct SettingsHandle(Arc<RwLock<Arc<Settings>>>);

impl SettingsHandle {
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(settings))))
    }

    /// The settings in force now (a cheap `Arc` clone).
    pub fn get(&self) -> Arc<Settings> {
        // A poisoned lock only means a reload panicked mid-swap of an Arc; the value is intact.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, new: Settings) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(new);
    }
}
