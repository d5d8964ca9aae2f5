//! Runs a long engine operation on a blocking thread and streams its progress: a sample of the
//! counters every 250 ms, then the final reply. The operation is cancelled when the daemon stops
//! or the client goes away (a progress frame can no longer be delivered).

use super::{Outcome, Reply, StreamItem};
use crate::context::Context;
use crate::engine::progress::Progress;
use crate::error::Error;
use backupd_common::protocol::{OperationProgress, Progress as ProgressFrame, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_millis(250);

pub fn sample(progress: &Progress, started: Instant) -> OperationProgress {
    let s = progress.sample();
    OperationProgress {
        files_done: s.files_done,
        bytes_done: s.bytes_done,
        files_total: s.files_total,
        bytes_total: s.bytes_total,
        errors: s.errors,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// Streams `op`'s progress and its result. `op` runs on a blocking thread.
pub fn stream<F>(ctx: &Arc<Context>, op: F) -> Outcome
where
    F: FnOnce(&Progress, &CancellationToken) -> Result<Response, Error> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    let progress = Arc::new(Progress::default());
    let cancel = ctx.shutdown.child_token();
    let started = Instant::now();
    let job = {
        let (progress, cancel) = (progress.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || op(&progress, &cancel))
    };
    ctx.tasks.spawn(async move {
        let mut job = job;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let result = loop {
            tokio::select! {
                joined = &mut job => break joined,
                _ = tick.tick() => {
                    let frame = StreamItem::Progress(ProgressFrame::Operation(sample(&progress, started)));
                    if tx.send(frame).await.is_err() && !cancel.is_cancelled() {
                        tracing::info!("client went away; cancelling its operation");
                        cancel.cancel();
                    }
                }
            }
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("operation task failed: {e}"))),
        };
        let final_item = StreamItem::Final(result.map_err(|e| {
            tracing::warn!(error = %e, "operation failed");
            e.to_reply()
        }));
        let _ = tx.send(final_item).await;
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}

/// Runs a short blocking call (registry lookups, listing) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("blocking task failed: {e}"))))
}
