//! The control socket: accepts connections, identifies peers, checks permissions and hands each
//! request to its handler. Services never see a socket; this module never does their work.
//!
//! Tasks: the accept loop runs inside [`serve`]; each connection gets one task on the tracker,
//! after [`slots`] admitted its uid (a refused one gets a short task that says `Busy`).
//! Everything stops when the cancellation token fires: the accept loop returns at once, each
//! connection finishes the request it is answering and closes.

pub mod connection;
pub mod dispatch;
pub mod frames;
pub mod handlers;
pub mod listener;
pub mod passing;
pub mod redact;
pub mod slots;

use crate::alerts::Alerts;
use crate::context::{Process, SettingsHandle};
use crate::queue::Queue;
use crate::reload::Reloader;
use crate::repo::registry::Registry;
use crate::security::{self, Security};
use crate::watch::Sources;
use listener::Listener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The service handles request handlers work through. Handlers get this, never the services'
/// insides; services never get it.
#[derive(Clone)]
pub struct Services {
    pub queue: Arc<Queue>,
    pub sources: Arc<Sources>,
    /// Named repositories (blocking API: call from blocking threads).
    pub repos: Arc<Registry>,
    pub reloader: Arc<Reloader>,
    /// What `system health` reports as needing an administrator.
    pub alerts: Arc<Alerts>,
    pub settings: SettingsHandle,
    /// Where streamed replies run, so shutdown drains them.
    pub tasks: TaskTracker,
    /// Cancelling it stops the daemon (`system shutdown`); streamed replies end with it.
    pub shutdown: CancellationToken,
    /// Who may do what, and what is recorded about it.
    pub security: Arc<Security>,
    /// Schedules, retention and maintenance.
    pub timers: Arc<crate::schedule::Timers>,
    /// Samples, bottlenecks, the tuner.
    pub perf: Arc<crate::perf::Perf>,
    /// Directory sync pairs.
    pub pairs: Arc<crate::sync::Pairs>,
    /// Repository replications and their lag.
    pub replications: Arc<crate::replication::Replications>,
    /// Snapshot fitness and recovery plans.
    pub recovery: Arc<crate::recovery::Recovery>,
    /// The last recovery drill of each source.
    pub drills: Arc<crate::recovery::drills::Drills>,
    /// Job statistics, anomalies and retention holds.
    pub analytics: Arc<crate::analytics::Analytics>,
}

/// The server's own state next to the services it serves: who the daemon is, its socket, and
/// what bounds connections.
pub struct Server {
    pub services: Services,
    pub process: Process,
    pub socket: PathBuf,
    pub socket_activated: bool,
    /// Connections being served, per uid and in total, under the caps of `[server]`.
    pub slots: Arc<slots::Slots>,
    /// Bytes all connections together may hold in partly received large frames.
    pub frame_budget: Arc<frames::FrameBudget>,
}

impl Server {
    pub fn new(services: Services, process: Process, listener: &Listener) -> Self {
        let budget = services.settings.get().config.server.frame_budget_bytes;
        Self {
            services,
            process,
            socket: listener.path().to_owned(),
            socket_activated: listener.activated(),
            slots: Arc::default(),
            frame_budget: Arc::new(frames::FrameBudget::new(budget)),
        }
    }
}

/// Accepts connections until `cancel` fires.
pub async fn serve(
    server: Arc<Server>,
    listener: Listener,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let listener = match listener.into_tokio() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the socket with the runtime; stopping");
            cancel.cancel();
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let Some(identity) = server.services.security.identify(&stream) else {
                    tracing::warn!("peer credentials unavailable; closing the connection");
                    continue;
                };
                let admin = security::administers(identity.role);
                let limits = &server.services.settings.get().config.server;
                match server.slots.try_acquire(identity.uid, admin, limits) {
                    Ok(slot) => {
                        tracker.spawn(connection::serve(
                            server.clone(),
                            stream,
                            identity,
                            cancel.child_token(),
                            slot,
                        ));
                    }
                    Err(refusal) => {
                        tracing::debug!(uid = identity.uid, %refusal, "connection refused");
                        tracker.spawn(connection::refuse(stream, refusal));
                    }
                }
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
