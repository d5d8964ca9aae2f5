//! backupd as a library: `main.rs` resolves settings, binds (or adopts) the socket and calls
//! [`run`]; tests call the same `run` in-process.
//!
//! `run` owns the root of the task tree: the server's accept loop, one task per connection, the
//! systemd watchdog and the SIGHUP reloader, all on one `TaskTracker`. It returns after the root
//! `CancellationToken` fires (SIGTERM/SIGINT in `main`, or a `system shutdown` request) and the
//! tracked tasks drained within the configured grace period, with state flushed and the socket
//! file removed.

pub mod alerts;
pub mod context;
pub mod engine;
pub mod error;
pub mod export;
pub mod memory;
pub mod queue;
pub mod reload;
pub mod repo;
pub mod server;
pub mod settings;
pub mod state;
pub mod systemd;
pub mod watch;

use context::{Context, Stores};
use error::Error;
use server::listener::Listener;
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
    let queue_config = settings.config.queue.clone();
    let stores = tokio::task::spawn_blocking(move || Stores::open(&state_dir, &queue_config))
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the state open task".into(),
            source,
        })??;

    let tracker = TaskTracker::new();
    let ctx = Arc::new(Context::new(
        settings,
        stores,
        &listener,
        cancel.clone(),
        tracker.clone(),
        log_reload,
    ));
    tracker.spawn(systemd::watchdog(cancel.child_token()));
    tracker.spawn(reload::on_sighup(ctx.clone(), cancel.child_token()));
    tracker.spawn(queue::worker::schedule(ctx.clone()));
    let watch_dirs = ctx.settings().overrides.watch.clone();
    let declared_sources = ctx.settings().config.sources.clone();
    ctx.sources.apply_declared(&ctx, &declared_sources).await;
    ctx.sources.start_all(&ctx, &watch_dirs);

    {
        let repos = ctx.repos.clone();
        let declared = ctx.settings().config.repositories.clone();
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
        state_dir = %ctx.state_dir.display(),
        mode = ?ctx.mode,
        "backupd ready"
    );

    server::serve(ctx.clone(), listener, cancel.clone(), tracker.clone()).await;

    systemd::notify_stopping();
    tracing::info!("stopping: no new connections, draining running requests");
    tracker.close();
    let grace = ctx.settings().config.server.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            remaining = tracker.len(),
            grace = ?grace,
            "tasks still running after the shutdown grace period; dropping them"
        );
    }
    // Jobs that did not reach a safe point within the grace period: record the graceful stop,
    // or the next start would take them for jobs that crashed the daemon.
    ctx.queue.requeue_unfinished();
    ctx.state.flush().await?;
    drop(cleanup);
    tracing::info!("backupd stopped");
    Ok(())
}
