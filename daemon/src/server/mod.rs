//! The control socket: accepts connections, identifies peers, checks permissions and hands each
//! request to its handler. Services never see a socket; this module never does their work.
//!
//! Tasks: the accept loop runs inside [`serve`]; each connection gets one task on the tracker,
//! after [`slots`] admitted its uid (a refused one gets a short task that says `Busy`).
//! Everything stops when the cancellation token fires: the accept loop returns at once, each
//! connection finishes the request it is answering and closes.

pub mod auth;
pub mod connection;
pub mod dispatch;
pub mod frames;
pub mod handlers;
pub mod listener;
pub mod redact;
pub mod slots;

use crate::context::Context;
use backupd_common::protocol::Role;
use listener::Listener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Accepts connections until `cancel` fires.
pub async fn serve(
    ctx: Arc<Context>,
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
                let Some(identity) = auth::identify(&ctx, &stream) else {
                    tracing::warn!("peer credentials unavailable; closing the connection");
                    continue;
                };
                let admin = identity.role == Role::Admin;
                let limits = &ctx.settings().config.server;
                match ctx.slots.try_acquire(identity.uid, admin, limits) {
                    Ok(slot) => {
                        tracker.spawn(connection::serve(
                            ctx.clone(),
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
