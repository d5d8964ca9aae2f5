//! `sync`: one run of a directory sync pair (`crate::sync::run`). It works on no repository;
//! its claim is on the name `sync:PAIR` (no repository can be named so: `:` is not allowed in
//! names), exclusive, so that two runs of one pair never overlap (a run requeued after a crash
//! and the one the pair's task queues at start). At most `[sync] max_transfers` sync jobs run
//! at once (`queue::pick::cap_sync`).

use super::{Claim, Operation, Run};
use crate::error::Error;
use crate::repo::now_ns;
use crate::state::records::sync::RunRecord;
use crate::sync::run::{run, RunEnv};
use crate::sync::SyncError;
use backupd_common::protocol::{Permission, Response, SyncRunRequest};

pub struct Sync;

impl Operation for Sync {
    type Args = SyncRunRequest;
    const TIMEOUT_KEY: &'static str = "sync";
    const PERMISSION: Permission = Permission::SyncManage;

    fn claim(r: &SyncRunRequest) -> Option<Claim> {
        Some(Claim {
            repo: format!("sync:{}", r.pair),
            exclusive: true,
        })
    }

    fn redact(_: &mut SyncRunRequest) {}

    fn run(r: SyncRunRequest, job: &Run<'_>) -> Result<Response, Error> {
        let shared = job.env.sync.as_ref().ok_or(SyncError::NotRunning)?;
        let started = now_ns();
        let current = shared.current(&r.pair);
        let env = RunEnv {
            store: &shared.store,
            global: &job.env.bandwidth,
            cancel: job.cancel,
            progress: job.progress,
            current: &current,
            trash_days: shared.settings.get().config.sync.trash_days,
        };
        let outcome = run(&env, &r.pair);
        current.clear();
        let finished = now_ns();
        let recorded = outcome
            .as_ref()
            .map(Clone::clone)
            .map_err(ToString::to_string);
        // A removed pair has nothing to record into.
        if !matches!(outcome, Err(SyncError::Unknown(_))) {
            if let Err(e) = shared.store.push_run(
                &r.pair,
                RunRecord::new(Some(job.job), started, finished, &recorded),
            ) {
                tracing::warn!(pair = %r.pair, error = %e, "cannot record the sync run");
            }
        }
        match outcome {
            Ok(r) => Ok(Response::Sync(Box::new(r))),
            Err(SyncError::Cancelled) => Err(crate::engine::EngineError::Cancelled.into()),
            // Removed while its run waited: nothing is left to sync, which is not a failure
            // worth a dead letter.
            Err(SyncError::Unknown(pair)) => {
                tracing::info!(%pair, "the sync pair was removed before its run; nothing done");
                Ok(Response::Sync(Box::default()))
            }
            Err(e) => Err(e.into()),
        }
    }
}
