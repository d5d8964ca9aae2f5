//! sd_notify integration: READY, STATUS, STOPPING and the watchdog keep-alive. Every call is a
//! no-op when `NOTIFY_SOCKET` is unset (not started by systemd).

use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

pub fn notify_ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

pub fn notify_status(status: &str) {
    notify(&[sd_notify::NotifyState::Status(status)]);
}

pub fn notify_stopping() {
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
}

/// Sends WATCHDOG=1 at half the interval systemd asked for, until cancelled. Runs on the async
/// runtime, so a wedged runtime stops the pings and systemd restarts the daemon.
pub async fn watchdog(cancel: CancellationToken) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    tracing::debug!(?period, "systemd watchdog enabled");
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => notify(&[sd_notify::NotifyState::Watchdog]),
        }
    }
}
