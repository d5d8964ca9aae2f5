//! `system` group: health, whoami, reload, shutdown.

use super::{After, Outcome, Reply, StreamItem};
use crate::server::Server;
use backupd_common::protocol::{
    HealthReport, HealthStatus, Identity, Progress, Response, SystemRequest, PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub async fn handle(server: &Arc<Server>, identity: &Identity, request: SystemRequest) -> Outcome {
    let services = &server.services;
    match request {
        SystemRequest::Health => Outcome::ok(Response::Health(health(server))),
        SystemRequest::WatchHealth { interval, count } => watch_health(server, interval, count),
        // The role as it is now, not as it was when the connection was made.
        SystemRequest::Whoami => Outcome::ok(Response::Identity(Identity {
            role: services.security.role_of(identity.uid),
            ..identity.clone()
        })),
        SystemRequest::Reload => {
            Outcome::result(services.reloader.reload().await.map(Response::Reloaded))
        }
        SystemRequest::ExportState => Outcome::result(
            crate::export::export(&services.repos, &services.sources)
                .await
                .map(Response::StateExport),
        ),
        SystemRequest::ImportState { document } => Outcome::result(
            crate::export::import(&services.repos, &services.sources, &document)
                .await
                .map(Response::StateImported),
        ),
        SystemRequest::Shutdown => {
            tracing::info!(uid = identity.uid, pid = ?identity.pid, "shutdown requested");
            Outcome {
                reply: Reply::Now(Ok(Response::ShuttingDown)),
                after: Some(After::Shutdown),
            }
        }
    }
}

pub fn health(server: &Server) -> HealthReport {
    let services = &server.services;
    let process = &server.process;
    let settings = services.settings.get();
    let own = crate::perf::health::assess(
        &services.perf,
        &services.timers,
        &services.queue,
        &settings.config,
    );
    let mut notes = services.alerts.notes();
    notes.extend(own.schedule.notes);
    let status = if services.shutdown.is_cancelled() {
        HealthStatus::Stopping
    } else if notes.is_empty() {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    HealthReport {
        score: own.score,
        status,
        version: backupd_common::VERSION.to_owned(),
        protocol_version: PROTOCOL_VERSION,
        uptime_secs: process.started.elapsed().as_secs(),
        pid: process.pid,
        mode: process.mode,
        socket: server.socket.display().to_string(),
        state_dir: process.state_dir.display().to_string(),
        config_file: settings
            .config_file
            .as_ref()
            .map(|p| p.display().to_string()),
        socket_activated: server.socket_activated,
        connections: u32::try_from(server.slots.live()).unwrap_or(u32::MAX),
        notes,
        sources: own.schedule.sources,
        repositories: own.schedule.repositories,
    }
}

/// Bounds of a `WatchHealth` interval: faster would be a busy loop, slower than a day is a
/// mistake (and a huge client-chosen duration must not overflow the timer's clock).
const WATCH_INTERVAL_MIN: Duration = Duration::from_millis(100);
const WATCH_INTERVAL_MAX: Duration = Duration::from_secs(86_400);

/// Streams a health report every `interval`, `count` times (0 = until the client leaves or the
/// daemon stops). The task ends as soon as the connection drops the receiver.
fn watch_health(server: &Arc<Server>, interval: Duration, count: u32) -> Outcome {
    let interval = interval.clamp(WATCH_INTERVAL_MIN, WATCH_INTERVAL_MAX);
    let (tx, rx) = mpsc::channel(4);
    let server = server.clone();
    let tasks = server.services.tasks.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0u32;
        while count == 0 || sent < count {
            tokio::select! {
                _ = server.services.shutdown.cancelled() => break,
                _ = tx.closed() => return, // the connection is gone
                _ = tick.tick() => {}
            }
            if tx
                .send(StreamItem::Progress(Progress::Health(health(&server))))
                .await
                .is_err()
            {
                return; // the connection is gone
            }
            sent += 1;
        }
        let _ = tx.send(StreamItem::Final(Ok(Response::Done))).await;
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}
