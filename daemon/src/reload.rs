//! Configuration reload, triggered by SIGHUP or `system reload`. The new file is parsed and
//! validated first; if anything is wrong the old configuration stays in force and the error is
//! logged (and returned to a `system reload` caller).
//!
//! [`Reloader`] holds the handles a reload touches; [`Reloader::run`] is the SIGHUP task.

use crate::context::SettingsHandle;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::repo::registry::Registry;
use crate::watch::Sources;
use crate::LogReload;
use backupd_common::protocol::ReloadReport;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Applies a new configuration to the services that read it.
pub struct Reloader {
    pub settings: SettingsHandle,
    pub queue: Arc<Queue>,
    pub repos: Arc<Registry>,
    pub sources: Arc<Sources>,
    /// Rebinds the Prometheus endpoint when `metrics.listen` changes.
    pub metrics: Arc<Metrics>,
    /// Changes the log filter (owned by `main`'s tracing setup); none in tests.
    pub log_reload: Option<LogReload>,
    /// Serialises reloads (SIGHUP and `system reload` may race).
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(
        settings: SettingsHandle,
        queue: Arc<Queue>,
        repos: Arc<Registry>,
        sources: Arc<Sources>,
        metrics: Arc<Metrics>,
        log_reload: Option<LogReload>,
    ) -> Self {
        Self {
            settings,
            queue,
            repos,
            sources,
            metrics,
            log_reload,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn set_log_level(&self, level: &str) -> Result<(), String> {
        match &self.log_reload {
            Some(hook) => hook(level),
            None => Ok(()),
        }
    }

    /// Re-reads the config file and applies what can change at runtime, including the
    /// declared repositories and sources (reported as `repository.NAME` / `source.NAME` when
    /// they changed).
    pub async fn reload(&self) -> Result<ReloadReport, Error> {
        let _one_at_a_time = self.lock.lock().await;
        self.apply().await
    }

    async fn apply(&self) -> Result<ReloadReport, Error> {
        let old = self.settings.get();
        let new = match old.reloaded() {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; the previous configuration stays in force");
                return Err(e.into());
            }
        };

        let mut applied = Vec::new();
        let mut restart_required = Vec::new();
        let (o, n) = (&old.config.server, &new.config.server);
        for (key, changed) in [
            (
                "server.max_connections",
                o.max_connections != n.max_connections,
            ),
            (
                "server.max_connections_per_uid",
                o.max_connections_per_uid != n.max_connections_per_uid,
            ),
            (
                "server.admin_reserved_connections",
                o.admin_reserved_connections != n.admin_reserved_connections,
            ),
            ("server.idle_timeout", o.idle_timeout != n.idle_timeout),
            (
                "server.handshake_timeout",
                o.handshake_timeout != n.handshake_timeout,
            ),
            (
                "server.shutdown_grace",
                o.shutdown_grace != n.shutdown_grace,
            ),
        ] {
            if changed {
                applied.push(key.to_owned());
            }
        }
        // Queue settings are read when used, so they apply to the next submission, retry or
        // scheduling round; the worker count is pushed to the scheduler.
        let (oq, nq) = (&old.config.queue, &new.config.queue);
        for (key, changed) in [
            ("queue.workers", oq.workers != nq.workers),
            ("queue.aging", oq.aging != nq.aging),
            ("queue.retries", oq.retries != nq.retries),
            ("queue.backoff", oq.backoff != nq.backoff),
            ("queue.backoff_max", oq.backoff_max != nq.backoff_max),
            ("queue.timeout", oq.timeout != nq.timeout),
            ("queue.timeouts", oq.timeouts != nq.timeouts),
            (
                "queue.history_max_jobs",
                oq.history_max_jobs != nq.history_max_jobs,
            ),
            (
                "queue.history_max_age",
                oq.history_max_age != nq.history_max_age,
            ),
            ("queue.submit_rate", oq.submit_rate != nq.submit_rate),
            ("queue.submit_burst", oq.submit_burst != nq.submit_burst),
        ] {
            if changed {
                applied.push(key.to_owned());
            }
        }
        for (key, changed) in [
            ("daemon.socket", old.socket != new.socket),
            ("daemon.state_dir", old.state_dir != new.state_dir),
            ("server.socket_mode", o.socket_mode != n.socket_mode),
            ("server.socket_group", o.socket_group != n.socket_group),
            (
                "server.max_frame_bytes",
                o.max_frame_bytes != n.max_frame_bytes,
            ),
            (
                "server.frame_budget_bytes",
                o.frame_budget_bytes != n.frame_budget_bytes,
            ),
        ] {
            if changed {
                restart_required.push(key.to_owned());
            }
        }
        // The new address is bound before anything changes: one that cannot be bound rejects
        // the reload and the endpoint stays where it was. With the key unchanged, an endpoint
        // that could not be bound before is tried again, and a failure only logged.
        let (om, nm) = (&old.config.metrics, &new.config.metrics);
        let rebind = match self.metrics.prepare(nm.listen).await {
            Ok(rebind) => Some(rebind),
            Err(e) if om.listen != nm.listen => {
                tracing::error!(error = %e, "reload rejected");
                return Err(e.into());
            }
            Err(e) => {
                tracing::error!(error = %e, "the metrics endpoint is still off");
                None
            }
        };
        if om.allow_public != nm.allow_public {
            // Only validation reads it, and the new file passed.
            applied.push("metrics.allow_public".to_owned());
        }
        if old.log_level != new.log_level {
            if let Err(message) = self.set_log_level(&new.log_level) {
                let e = Error::Internal(format!(
                    "log level {:?} is not a valid filter: {message}; the previous configuration \
                 stays in force",
                    new.log_level
                ));
                tracing::error!(error = %e, "reload rejected");
                return Err(e);
            }
            applied.push("daemon.log_level".to_owned());
        }

        if rebind.is_some_and(|r| self.metrics.commit(r)) {
            applied.push("metrics.listen".to_owned());
        }
        if oq.workers != nq.workers {
            self.queue.set_workers(nq.workers)?;
        }
        if old.config.history != new.config.history {
            self.queue.set_history_retention(&new.config.history)?;
            applied.push("history".to_owned());
        }
        if old.config.maintenance != new.config.maintenance {
            // The scheduler reads it at its next wake-up.
            applied.push("maintenance".to_owned());
        }
        let repos = self.repos.clone();
        let declared = new.config.repositories.clone();
        let changed = tokio::task::spawn_blocking(move || {
            let changed = repos.apply_declared(&declared);
            repos.alert_all_missing();
            changed
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the reload task".into(),
            source,
        })?;
        applied.extend(changed.into_iter().map(|n| format!("repository.{n}")));
        let sources = new.config.sources.clone();
        self.settings.replace(new);
        let changed = self.sources.apply_declared(&sources).await;
        applied.extend(changed.into_iter().map(|n| format!("source.{n}")));
        let report = ReloadReport {
            config_file: self
                .settings
                .get()
                .config_file
                .as_ref()
                .map(|p| p.display().to_string()),
            applied,
            restart_required,
        };
        tracing::info!(
            config = report.config_file.as_deref().unwrap_or("(embedded defaults)"),
            applied = ?report.applied,
            restart_required = ?report.restart_required,
            "configuration reloaded"
        );
        Ok(report)
    }

    /// Reloads on every SIGHUP until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; reload with `backupctl system reload`");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading configuration");
                    // Errors are logged inside `reload`; the daemon goes on with the old config.
                    let _ = self.reload().await;
                }
            }
        }
    }
}
