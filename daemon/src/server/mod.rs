//! The control socket: accepts connections, identifies peers, checks permissions and hands each
//! request to its handler. Services never see a socket; this module never does their work.
//!
//! Tasks: the accept loop runs inside [`serve`]; each connection gets one task on the tracker.
//! Everything stops when the cancellation token fires: the accept loop returns at once, each
//! connection finishes the request it is answering and closes.

pub mod auth;
pub mod connection;
pub mod dispatch;
pub mod handlers;
pub mod listener;

use crate::context::Context;
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
            Ok((stream, _)) => match ctx.connection_slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    tracker.spawn(connection::serve(
                        ctx.clone(),
                        stream,
                        cancel.child_token(),
                        slot,
                    ));
                }
                Err(_) => {
                    tracker.spawn(connection::refuse_busy(
                        stream,
                        ctx.settings().config.server.max_connections,
                    ));
                }
            },
            Err(e) => {
                // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
