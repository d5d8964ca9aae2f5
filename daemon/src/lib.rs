//! backupd as a library: `main.rs` resolves settings, binds (or adopts) the socket and calls
//! [`run`]; tests call the same `run` in-process.
//!
//! `run` builds each service from the handles it needs (no service takes a whole context) and
//! owns the root of the task tree: the server's accept loop, one task per connection, the queue's
//! scheduler and its job tasks, one task per watched source, the systemd watchdog and the
//! SIGHUP reloader, all on one `TaskTracker`, each service under a child of the root token. It
//! returns after the root `CancellationToken` fires (SIGTERM/SIGINT in `main`, or a `system
//! shutdown` request) and the tracked tasks drained within the configured grace period, with
//! state flushed and the socket file removed.

pub mod alerts;
pub mod analytics;
pub mod cli;
pub mod context;
pub mod engine;
pub mod error;
pub mod export;
pub mod hooks;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod perf;
pub mod queue;
pub mod recovery;
pub mod reload;
pub mod replication;
pub mod repo;
pub mod schedule;
pub mod security;
pub mod server;
pub mod settings;
pub mod state;
pub mod sync;
pub mod systemd;
pub mod throttle;
pub mod watch;

use context::{Process, SettingsHandle, Stores};
use error::Error;
use server::listener::Listener;
use server::{Server, Services};
use settings::Settings;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Hook through which a reload changes the log filter (owned by `main`'s tracing setup).
pub type LogReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Runs the daemon until `cancel` fires, then drains, flushes state and removes the socket.
pub async fn run(
    settings: Settings,
    listener: Listener,
    cancel: CancellationToken,
    log_reload: Option<LogReload>,
) -> Result<(), Error> {
    // Whatever happens from here on, the socket file we created goes away with us.
    let cleanup = listener.cleanup_guard();
    let state_dir = settings.state_dir.clone();
    crate::repo::backend::use_state_dir(&state_dir);
    let queue_config = settings.config.queue.clone();
    let history_config = settings.config.history.clone();
    let stores = tokio::task::spawn_blocking(move || {
        let stores = Stores::open(&state_dir, &queue_config)?;
        stores.queue.set_history_retention(&history_config)?;
        Ok::<_, Error>(stores)
    })
    .await
    .map_err(|source| Error::TaskFailed {
        task: "the state open task".into(),
        source,
    })??;
    let state = stores.state.clone();
    let tracker = TaskTracker::new();
    let process = Process::current(&settings);
    let settings = SettingsHandle::new(settings);
    let (services, scheduler, metrics) = build(
        stores,
        &process,
        settings.clone(),
        log_reload,
        &tracker,
        &cancel,
    )
    .await?;
    let (queue, sources, repos, audit) = (
        services.queue.clone(),
        services.sources.clone(),
        services.repos.clone(),
        services.security.audit.clone(),
    );

    tracker.spawn(systemd::watchdog(cancel.child_token()));
    tracker.spawn(services.reloader.clone().run(cancel.child_token()));
    tracker.spawn(scheduler.run(cancel.child_token()));
    tracker.spawn(
        security::key_rotation::KeyRotation {
            repos: repos.clone(),
            queue: queue.clone(),
            audit: audit.clone(),
            settings: settings.clone(),
            daemon_uid: process.daemon_uid,
        }
        .run(cancel.child_token()),
    );
    let now = settings.get();
    sources.apply_declared(&now.config.sources).await;
    sources.start_all(&now.overrides.watch);
    services.pairs.start_all();
    // After the sources: its first plan must see them, or a missed run waits a whole tick.
    tracker.spawn(services.timers.clone().run(cancel.child_token()));
    tracker.spawn(services.perf.clone().run(cancel.child_token()));
    // Bound before the daemon says it is ready, so that a scraper (or a test) that starts
    // after readiness finds the port open.
    metrics.start().await;
    tracker.spawn(metrics.run(cancel.child_token()));

    {
        let repos = repos.clone();
        let declared = now.config.repositories.clone();
        tracker.spawn_blocking(move || {
            if let Some(entry) = repos.start(&declared) {
                tracing::info!(
                    location = %entry.location,
                    key = %entry.key_file.display(),
                    "created repository `default` with a random key; keep a copy of the key \
                     somewhere safe (`backupctl repo key export default`): without it the \
                     backups cannot be read"
                );
            }
        });
    }
    let socket_display = listener.path().display().to_string();
    systemd::notify_ready(&format!("serving on {socket_display}"));
    tracing::info!(
        version = backupd_common::VERSION,
        socket = %socket_display,
        activated = listener.activated(),
        state_dir = %process.state_dir.display(),
        mode = ?process.mode,
        "backupd ready"
    );

    let server = Arc::new(Server::new(services, process, &listener));
    server::serve(server, listener, cancel.clone(), tracker.clone()).await;

    systemd::notify_stopping();
    tracing::info!("stopping: no new connections, draining running requests");
    tracker.close();
    let grace = settings.get().config.server.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            remaining = tracker.len(),
            grace = ?grace,
            "tasks still running after the shutdown grace period; dropping them"
        );
    }
    // Jobs that did not reach a safe point within the grace period: record the graceful stop,
    // or the next start would take them for jobs that crashed the daemon.
    queue.requeue_unfinished();
    match tokio::task::spawn_blocking(move || audit.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not sign the audit log's closing checkpoint")
        }
        Err(e) => tracing::warn!(error = %e, "the audit log's closing checkpoint task failed"),
    }
    state.flush().await?;
    drop(cleanup);
    tracing::info!("backupd stopped");
    Ok(())
}

/// Builds each service from the handles it needs: the queue's scheduler, the sources, the
/// reloader, the metrics endpoint, and the handles request handlers get. Nothing runs yet.
async fn build(
    stores: Stores,
    process: &Process,
    settings: SettingsHandle,
    log_reload: Option<LogReload>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<(Services, queue::worker::Scheduler, Arc<metrics::Metrics>), Error> {
    let Stores {
        state,
        queue,
        recovery,
    } = stores;

    let alerts = Arc::new(alerts::Alerts::default());
    if let Some(recovery) = recovery {
        let _ = alerts.raise("state", recovery.message());
    }
    let repos = Arc::new(repo::registry::Registry::new(
        state.clone(),
        &process.state_dir,
        alerts.clone(),
    ));
    let queue = Arc::new(queue);
    let analytics = {
        let (state, alerts, queue) = (state.clone(), alerts.clone(), queue.clone());
        let opened = tokio::task::spawn_blocking(move || {
            let analytics = analytics::Analytics::open(&state, alerts)?;
            let started = std::time::Instant::now();
            // Statistics are not worth refusing to start over: backups go on without them.
            match analytics.replay(&queue) {
                Ok(Some(n)) => tracing::info!(
                    backups = n,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "analytics: took in the backups already in the job history"
                ),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "analytics: cannot take in the job history; statistics start from the \
                     next backup, and the history is taken in again at the next start"
                ),
            }
            Ok::<_, analytics::AnalyticsError>(analytics)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the analytics open task".into(),
            source,
        })??;
        Arc::new(opened)
    };
    {
        let analytics = analytics.clone();
        queue.on_finished(Arc::new(move |entry, job| {
            let paths = match &job.kind {
                backupd_common::protocol::JobKind::Backup(b) => b.paths.as_slice(),
                _ => &[],
            };
            analytics.finished(entry, paths);
        }));
    }
    let replications = Arc::new(replication::Replications::open(&state, repos.clone())?);
    {
        let settings = settings.clone();
        tracker.spawn(replication::follow_backups(
            replications.clone(),
            queue.clone(),
            process.daemon_uid,
            move || settings.get().config.queue.clone(),
            cancel.child_token(),
        ));
    }
    let tuning = perf::Tuning::new(perf::configured(&settings.get().config));
    let sync_shared = sync::Shared::open(&state, settings.clone())?;
    let source_handles = watch::Handles {
        repos: repos.clone(),
        queue: queue.clone(),
        settings: settings.clone(),
        state_dir: process.state_dir.clone(),
        daemon_uid: process.daemon_uid,
    };
    let sources = {
        let (state, tasks, cancel) = (state.clone(), tracker.clone(), cancel.child_token());
        let opened = tokio::task::spawn_blocking(move || {
            watch::Sources::open(&state, source_handles, tasks, cancel)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the sources open task".into(),
            source,
        })??;
        Arc::new(opened)
    };
    let recovery = {
        let (state, repos, replications, queue, sources) = (
            state.clone(),
            repos.clone(),
            replications.clone(),
            queue.clone(),
            sources.clone(),
        );
        let opened = tokio::task::spawn_blocking(move || {
            crate::recovery::Recovery::open(&state, repos, replications, queue, sources)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the recovery plans open task".into(),
            source,
        })??;
        Arc::new(opened)
    };
    tracker.spawn(recovery.clone().run(cancel.child_token()));
    let drills = {
        let (state, alerts, dir) = (state.clone(), alerts.clone(), process.state_dir.clone());
        let opened = tokio::task::spawn_blocking(move || {
            // Scratch copies a crash left behind.
            crate::recovery::drill::remove_stale(&dir);
            crate::recovery::drills::Drills::open(&state, alerts)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the drill records open task".into(),
            source,
        })??;
        Arc::new(opened)
    };
    let scheduler = queue::worker::Scheduler {
        queue: queue.clone(),
        env: ops::Env {
            repos: repos.clone(),
            state_dir: process.state_dir.clone(),
            tuning: tuning.clone(),
            bandwidth: throttle::Bucket::new(settings.get().config.sync.bwlimit),
            sync: Some(sync_shared.clone()),
            replications: Some(replications.clone()),
            recovery: Some(recovery.clone()),
            drill: Some(ops::DrillHandles {
                drills: drills.clone(),
                sources: sources.clone(),
                settings: settings.clone(),
            }),
            analytics: Some(analytics.clone()),
        },
        settings: settings.clone(),
        tasks: tracker.clone(),
    };
    let audit = {
        let (state, dir, settings) = (state.clone(), process.state_dir.clone(), settings.clone());
        let opened = tokio::task::spawn_blocking(move || {
            security::audit::Audit::open(&state, &dir, settings)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the audit log open task".into(),
            source,
        })??;
        Arc::new(opened)
    };
    let detector = {
        let (state, process, settings) = (state.clone(), process.clone(), settings.clone());
        tokio::task::spawn_blocking(move || {
            security::detect::Detector::open(&state, &process, settings)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the security detector open task".into(),
            source,
        })??
    };
    let detector = Arc::new(detector.with_audit(audit.clone()));
    tracker.spawn(security::detect::jobs::watch(
        detector.clone(),
        queue.clone(),
        cancel.child_token(),
    ));
    let security = {
        let (process, settings, state) = (process.clone(), settings.clone(), state.clone());
        let opened = tokio::task::spawn_blocking(move || {
            security::Security::new(process, settings, &state, audit, detector)
        })
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the role bindings open task".into(),
            source,
        })??;
        Arc::new(opened)
    };
    let timers = {
        let handles = schedule::Handles {
            sources: sources.clone(),
            queue: queue.clone(),
            repos: repos.clone(),
            settings: settings.clone(),
            alerts: alerts.clone(),
            daemon_uid: process.daemon_uid,
            replications: replications.clone(),
            drills: drills.clone(),
        };
        Arc::new(schedule::Timers::open(&state, handles)?)
    };
    let perf = {
        let handles = perf::Handles {
            queue: queue.clone(),
            sources: sources.clone(),
            repos: repos.clone(),
            settings: settings.clone(),
            state_dir: process.state_dir.clone(),
        };
        let state = state.clone();
        let opened = tokio::task::spawn_blocking(move || perf::Perf::open(&state, handles, tuning))
            .await
            .map_err(|source| Error::TaskFailed {
                task: "the performance monitor open task".into(),
                source,
            })??;
        Arc::new(opened)
    };
    // Subscribes to the job events here, before the scheduler can run a job.
    let metrics = Arc::new(metrics::Metrics::new(metrics::Handles {
        queue: queue.clone(),
        sources: sources.clone(),
        perf: perf.clone(),
        timers: timers.clone(),
        settings: settings.clone(),
        tasks: tracker.clone(),
    }));
    let reloader = Arc::new(reload::Reloader::new(
        settings.clone(),
        queue.clone(),
        repos.clone(),
        sources.clone(),
        metrics.clone(),
        log_reload,
    ));
    let pairs = Arc::new(sync::Pairs::new(
        sync::Handles {
            queue: queue.clone(),
            settings: settings.clone(),
            repos: repos.clone(),
            state_dir: process.state_dir.clone(),
            daemon_uid: process.daemon_uid,
            shared: sync_shared,
        },
        tracker.clone(),
        cancel.child_token(),
    ));
    let services = Services {
        pairs,
        perf,
        security,
        queue,
        sources,
        repos,
        reloader,
        alerts,
        timers,
        settings,
        tasks: tracker.clone(),
        shutdown: cancel.clone(),
        replications,
        recovery,
        drills,
        analytics,
    };
    Ok((services, scheduler, metrics))
}
