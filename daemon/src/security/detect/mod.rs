//! Suspicious-activity detection and lockout. The security service feeds every answered or
//! denied request and every failed handshake to [`Detector::observe`]; a task
//! ([`jobs::watch`]) feeds restores and read-data checks as their jobs succeed. Counting is
//! done per uid in bounded sliding windows ([`window`]); a threshold reached becomes an alert
//! through [`Detector::raise`], the one place alerts are made: stored in sled, logged,
//! broadcast on `events`, and (with `security.lockout`) a lockout of the uid that
//! [`Detector::check_lock`] enforces before any other check. Alerts are not `system health`
//! notes: health reports whether the daemon works, and a flood that sets off an alert does not
//! change that.
//!
//! Root and the daemon's own uid raise alerts like anyone but are never locked out: a lockout
//! of the administrators would lock the administrators out of lifting it.

pub mod jobs;
pub mod store;
pub mod window;

use crate::context::{Process, SettingsHandle};
use crate::repo::{format_rfc3339, now_ns};
use crate::state::State;
use backupd_common::error::{ErrorCode, ErrorReply};
use backupd_common::protocol::{AlertInfo, Pattern, Permission, RepoRequest, Request, Unlocked};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
pub use store::{Lock, StoreError};
use tokio::sync::broadcast;
use window::{Detection, Signal, Windows};

/// `security alerts --all` lists at most this many.
pub const LIST_LIMIT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "uid {uid} is locked out until {until} after suspicious activity (alert {alert}: \
         {pattern}); every request from it is refused until then. An administrator with \
         `security.manage` can lift it: backupctl security unlock --uid {uid}"
    )]
    LockedOut {
        uid: u32,
        until: String,
        alert: u64,
        pattern: String,
    },
    #[error("no alert with id {id}; `backupctl security alerts --all` lists them")]
    AlertNotFound { id: u64 },
    #[error("uid {uid} cannot be locked out or unlocked: root and the daemon's own uid are never locked out")]
    Exempt { uid: u32 },
    #[error("`security report --days {days}`: expected 1 to {max} days")]
    ReportDays { days: u32, max: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DetectError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::LockedOut { .. } => ErrorCode::PermissionDenied,
            Self::AlertNotFound { .. } => ErrorCode::NotFound,
            Self::Exempt { .. } | Self::ReportDays { .. } => ErrorCode::InvalidArgument,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// How a request ended, as detection counts it.
pub enum Seen<'a> {
    Denied(&'a ErrorReply),
    Answered(Result<(), &'a ErrorReply>),
    Cut,
}

pub struct Detector {
    store: store::Store,
    windows: Mutex<Windows>,
    locks: Mutex<HashMap<u32, Lock>>,
    events: broadcast::Sender<AlertInfo>,
    settings: SettingsHandle,
    daemon_uid: u32,
    /// Denial counters created today (see `store::DENIALS_PER_DAY`), and the day they count.
    today_keys: AtomicU64,
    today: AtomicU64,
    /// Where each alert is also recorded, as a critical `alert` entry.
    audit: Option<Arc<crate::security::audit::Audit>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps are replaced entry by entry; a panic elsewhere cannot leave one half-changed.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Detector {
    /// Opens the stored alerts and lockouts (blocking); expired lockouts are dropped.
    pub fn open(
        state: &State,
        process: &Process,
        settings: SettingsHandle,
    ) -> Result<Self, DetectError> {
        let now = now_ns();
        let store = store::Store::open(state, now)?;
        let mut locks = HashMap::new();
        for (uid, l) in store.locks()? {
            if l.until_ns > now {
                locks.insert(uid, l);
            } else {
                store.remove_lock(uid)?;
            }
        }
        Ok(Self {
            store,
            windows: Mutex::new(Windows::default()),
            locks: Mutex::new(locks),
            events: broadcast::channel(64).0,
            settings,
            daemon_uid: process.daemon_uid,
            today_keys: AtomicU64::new(0),
            today: AtomicU64::new(u64::from(store::day_of(now))),
            audit: None,
        })
    }

    /// Records every alert in `audit` too.
    pub fn with_audit(mut self, audit: Arc<crate::security::audit::Audit>) -> Self {
        self.audit = Some(audit);
        self
    }

    fn exempt(&self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_uid
    }

    /// Refuses every request of a locked-out uid; the first check a request passes.
    pub fn check_lock(&self, uid: u32) -> Result<(), DetectError> {
        let Some(l) = self.lock_of(uid) else {
            return Ok(());
        };
        let pattern = self.store.alert(l.alert).ok().flatten().map_or_else(
            || "suspicious activity".to_owned(),
            |a| a.pattern.to_string(),
        );
        Err(DetectError::LockedOut {
            uid,
            until: format_rfc3339(l.until_ns),
            alert: l.alert,
            pattern,
        })
    }

    /// The lockout of `uid` in force now, if any.
    pub fn lock_of(&self, uid: u32) -> Option<Lock> {
        let mut locks = lock(&self.locks);
        let l = *locks.get(&uid)?;
        if l.until_ns > now_ns() {
            return Some(l);
        }
        locks.remove(&uid);
        drop(locks);
        if let Err(e) = self.store.remove_lock(uid) {
            tracing::warn!(uid, error = %e, "cannot remove an expired lockout");
        }
        None
    }

    /// Counts what a request from `uid` (whose role administers the daemon when `admin`)
    /// did. A locked-out uid's refused requests are not counted again.
    pub fn observe(
        &self,
        uid: u32,
        admin: bool,
        request: &Request,
        needed: Permission,
        seen: Seen<'_>,
    ) {
        if self.lock_of(uid).is_some() {
            return;
        }
        let cfg = self.settings.get().config.security.detect.clone();
        let now = now_ns();
        let name = request.name();
        let mut found = Vec::new();
        {
            let mut w = lock(&self.windows);
            if !admin {
                found.extend(w.observe(&cfg, uid, Signal::Request, now, name));
            }
            let failed = match seen {
                Seen::Denied(_) => true,
                Seen::Answered(Err(e)) => {
                    matches!(e.code, ErrorCode::PermissionDenied | ErrorCode::Malformed)
                }
                Seen::Answered(Ok(())) | Seen::Cut => false,
            };
            if failed {
                found.extend(w.observe(&cfg, uid, Signal::Failure, now, name));
            }
            let exported = matches!(request, Request::Repo(RepoRequest::KeyExport { .. }))
                && matches!(seen, Seen::Answered(Ok(())));
            if exported {
                found.extend(w.observe(&cfg, uid, Signal::KeyExport, now, name));
            }
        }
        if matches!(seen, Seen::Denied(_)) {
            self.count_denial(uid, needed.as_str(), now);
        }
        for d in found {
            self.raise(d);
        }
    }

    /// Counts a failed handshake of `uid` as a failure.
    pub fn handshake_failed(&self, uid: u32) {
        let cfg = self.settings.get().config.security.detect.clone();
        let d = lock(&self.windows).observe(&cfg, uid, Signal::Failure, now_ns(), "handshake");
        if let Some(d) = d {
            self.raise(d);
        }
    }

    /// Counts a restore by `uid` that wrote `files` files.
    pub fn restore_finished(&self, uid: u32, files: u64) {
        let cfg = self.settings.get().config.security.detect.clone();
        if files <= cfg.mass_export_files {
            return;
        }
        let what = format!("restore of {files} files");
        let d = lock(&self.windows).observe(&cfg, uid, Signal::LargeRestore, now_ns(), &what);
        if let Some(d) = d {
            self.raise(d);
        }
    }

    fn count_denial(&self, uid: u32, permission: &str, now: i64) {
        let day = u64::from(store::day_of(now));
        if self.today.swap(day, std::sync::atomic::Ordering::Relaxed) != day {
            self.today_keys
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        self.store
            .count_denial(uid, permission, now, &self.today_keys);
    }

    /// Makes `detection` an alert: stored, logged, broadcast on `events`, and a lockout when
    /// `security.lockout` is set and the uid is not exempt.
    /// The one place alerts are raised.
    pub fn raise(&self, detection: Detection) -> AlertInfo {
        let now = now_ns();
        let lockout = self.settings.get().config.security.lockout;
        let id = self.store.next_id();
        let locked_until_ns = (!lockout.is_zero() && !self.exempt(detection.uid))
            .then(|| now.saturating_add(lockout.as_nanos().min(i64::MAX as u128) as i64));
        let alert = AlertInfo {
            id,
            time_ns: now,
            uid: detection.uid,
            pattern: detection.pattern,
            count: detection.count,
            threshold: detection.threshold,
            window_secs: detection.window.as_secs(),
            detail: detail(&detection),
            locked_until_ns,
            acked_by: None,
            acked_ns: None,
        };
        if let Err(e) = self.store.put_alert(&alert) {
            tracing::error!(id, error = %e, "cannot store a security alert");
        }
        if let Some(until_ns) = locked_until_ns {
            let l = Lock {
                until_ns,
                alert: id,
            };
            lock(&self.locks).insert(alert.uid, l);
            if let Err(e) = self.store.put_lock(alert.uid, l) {
                tracing::error!(uid = alert.uid, error = %e, "cannot store a lockout");
            }
        }
        tracing::error!(
            id,
            uid = alert.uid,
            pattern = %alert.pattern,
            count = alert.count,
            locked_until = ?locked_until_ns.map(format_rfc3339),
            "security alert: {}",
            alert.detail
        );
        if let Some(audit) = &self.audit {
            let entry = crate::security::audit::NewEntry::alert(
                alert.uid,
                format!("alert {} ({})", alert.id, alert.pattern),
                alert.detail.clone(),
            );
            if let Err(e) = audit.append(entry) {
                tracing::error!(id, error = %e, "could not write a security alert to the audit log");
            }
        }
        let _ = self.events.send(alert.clone());
        alert
    }

    /// Alerts newest first: the unacknowledged ones, or with `all` every stored one (at most
    /// [`LIST_LIMIT`]).
    pub fn alerts(&self, all: bool) -> Result<Vec<AlertInfo>, DetectError> {
        Ok(self
            .store
            .alerts(LIST_LIMIT, |a| all || a.acked_by.is_none())?)
    }

    /// Alerts raised since `since_ns`, newest first (at most [`store::MAX_ALERTS`]).
    pub fn alerts_since(&self, since_ns: i64) -> Result<Vec<AlertInfo>, DetectError> {
        Ok(self
            .store
            .alerts(store::MAX_ALERTS, |a| a.time_ns >= since_ns)?)
    }

    /// Records that `by` acknowledged alert `id` (the first acknowledgement stays).
    pub fn ack(&self, id: u64, by: u32) -> Result<AlertInfo, DetectError> {
        let mut alert = self
            .store
            .alert(id)?
            .ok_or(DetectError::AlertNotFound { id })?;
        if alert.acked_by.is_none() {
            alert.acked_by = Some(by);
            alert.acked_ns = Some(now_ns());
            self.store.put_alert(&alert)?;
        }
        Ok(alert)
    }

    /// Lifts the lockout of `uid`.
    pub fn unlock(&self, uid: u32) -> Result<Unlocked, DetectError> {
        if self.exempt(uid) {
            return Err(DetectError::Exempt { uid });
        }
        let was = self.lock_of(uid).map(|l| l.until_ns);
        lock(&self.locks).remove(&uid);
        self.store.remove_lock(uid)?;
        Ok(Unlocked {
            uid,
            was_locked_until_ns: was,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertInfo> {
        self.events.subscribe()
    }

    /// Denials from day `since_day` (days since the epoch) on: (uid, permission, count).
    pub fn denials(&self, since_day: u32) -> Result<Vec<(u32, String, u64)>, DetectError> {
        Ok(self.store.denials(since_day)?)
    }

    pub fn drills(&self) -> &store::Store {
        &self.store
    }
}

fn detail(d: &Detection) -> String {
    let what = match d.pattern {
        Pattern::BruteForce => "denied or failed requests",
        Pattern::MassExport if d.recent.last().is_some_and(|r| r.starts_with("repo key")) => {
            "key exports"
        }
        Pattern::MassExport => "restores of many files",
        Pattern::UnusualAccess => "requests from a uid that is not an admin",
    };
    let window = humantime::format_duration(d.window);
    let mut text = format!(
        "{} {what} within {window} (threshold {})",
        d.count, d.threshold
    );
    if !d.recent.is_empty() {
        text.push_str(&format!("; latest: {}", d.recent.join(", ")));
    }
    text
}
