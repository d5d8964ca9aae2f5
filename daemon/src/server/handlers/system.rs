//! `system` group: health, whoami, reload, shutdown.

use super::{After, Outcome, Reply, StreamItem};
use crate::context::Context;
use backupd_common::protocol::{
    HealthReport, HealthStatus, Identity, Progress, Response, SystemRequest, PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub async fn handle(ctx: &Arc<Context>, identity: &Identity, request: SystemRequest) -> Outcome {
    match request {
        SystemRequest::Health => Outcome::ok(Response::Health(health(ctx))),
        SystemRequest::WatchHealth { interval, count } => watch_health(ctx, interval, count),
        SystemRequest::Whoami => Outcome::ok(Response::Identity(identity.clone())),
        SystemRequest::Reload => {
            Outcome::result(crate::reload::reload(ctx).await.map(Response::Reloaded))
        }
        SystemRequest::ExportState => {
            Outcome::result(crate::export::export(ctx).await.map(Response::StateExport))
        }
        SystemRequest::ImportState { document } => Outcome::result(
            crate::export::import(ctx, &document)
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

pub fn health(ctx: &Context) -> HealthReport {
    let settings = ctx.settings();
    let notes = ctx.alerts.notes();
    let status = if ctx.shutdown.is_cancelled() {
        HealthStatus::Stopping
    } else if notes.is_empty() {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    HealthReport {
        status,
        version: backupd_common::VERSION.to_owned(),
        protocol_version: PROTOCOL_VERSION,
        uptime_secs: ctx.started.elapsed().as_secs(),
        pid: ctx.pid,
        mode: ctx.mode,
        socket: ctx.socket.display().to_string(),
        state_dir: ctx.state_dir.display().to_string(),
        config_file: settings
            .config_file
            .as_ref()
            .map(|p| p.display().to_string()),
        socket_activated: ctx.socket_activated,
        connections: u32::try_from(ctx.live_connections()).unwrap_or(u32::MAX),
        notes,
    }
}

/// Bounds of a `WatchHealth` interval: faster would be a busy loop, slower than a day is a
/// mistake (and a huge client-chosen duration must not overflow the timer's clock).
const WATCH_INTERVAL_MIN: Duration = Duration::from_millis(100);
const WATCH_INTERVAL_MAX: Duration = Duration::from_secs(86_400);

/// Streams a health report every `interval`, `count` times (0 = until the client leaves or the
/// daemon stops). The task ends as soon as the connection drops the receiver.
fn watch_health(ctx: &Arc<Context>, interval: Duration, count: u32) -> Outcome {
    let interval = interval.clamp(WATCH_INTERVAL_MIN, WATCH_INTERVAL_MAX);
    let (tx, rx) = mpsc::channel(4);
    let ctx = ctx.clone();
    let tasks = ctx.tasks.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0u32;
        while count == 0 || sent < count {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                _ = tx.closed() => return, // the connection is gone
                _ = tick.tick() => {}
            }
            if tx
                .send(StreamItem::Progress(Progress::Health(health(&ctx))))
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
