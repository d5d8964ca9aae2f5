//! `noop`: waits, then succeeds (or fails its first attempts as told). For probing the queue
//! and for tests; claims no repository.

use super::{Claim, Operation, Run};
use crate::engine::EngineError;
use crate::error::Error;
use backupd_common::protocol::{NoopRequest, Permission, Response};
use std::time::{Duration, Instant};

pub struct Noop;

impl Operation for Noop {
    type Args = NoopRequest;
    const TIMEOUT_KEY: &'static str = "noop";
    const PERMISSION: Permission = Permission::QueueManage;

    fn claim(_: &NoopRequest) -> Option<Claim> {
        None
    }

    fn redact(_: &mut NoopRequest) {}

    fn run(r: NoopRequest, run: &Run<'_>) -> Result<Response, Error> {
        let started = Instant::now();
        while started.elapsed() < r.duration {
            if run.cancel.is_cancelled() {
                return Err(EngineError::Cancelled.into());
            }
            let left = r.duration.saturating_sub(started.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        if run.attempt <= r.fail_attempts {
            return Err(Error::PlannedFailure {
                attempt: run.attempt,
                retryable: !r.permanent,
            });
        }
        Ok(Response::Noop {
            slept_ms: started.elapsed().as_millis() as u64,
        })
    }
}
