//! `repo replicate run`: copy into a replica what it lacks of its source
//! (`engine::replicate`). Claims the replica alone (it writes index files and snapshots there
//! and may forget some); the source is read under a shared repository lock, so backups into it
//! go on meanwhile and its prune waits. Every byte written is paced by `[sync] bwlimit` and the
//! replication's own `--bwlimit`. Resumable: a re-run continues where an interrupted one
//! stopped.

use super::{Claim, Operation, Run};
use crate::engine::replicate::{replicate, ReplicateOptions, ReplicateReport};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::registry::Registry;
use crate::throttle::{pace, Bucket};
use backupd_common::protocol::{Permission, ReplicateRequest, ReplicateResult, Response};
use backupd_common::rate::Rate;

pub struct Replicate;

impl Operation for Replicate {
    type Args = ReplicateRequest;
    const TIMEOUT_KEY: &'static str = "replicate";
    const PERMISSION: Permission = Permission::RepoManage;
    const COALESCES: bool = true;

    fn claim(args: &ReplicateRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, true))
    }

    fn redact(_: &mut ReplicateRequest) {}

    fn validate(args: &ReplicateRequest, repos: &Registry) -> Result<(), Error> {
        if args.from.is_empty() {
            // The stored replication's settings, read when the job runs.
            return Ok(());
        }
        let (_, source) = repos.open(Some(&args.from))?;
        let (entry, replica) = repos.open(args.repo.as_deref())?;
        if !crate::engine::replicate::is_replica_of(&replica, &source) {
            return Err(EngineError::InvalidArgument(format!(
                "{} is not a replica of {}",
                entry.name, args.from
            ))
            .into());
        }
        Ok(())
    }

    fn run(r: ReplicateRequest, run: &Run<'_>) -> Result<Response, Error> {
        let started = std::time::Instant::now();
        let r = stored(r, run)?;
        let (_, source) = run.env.repos.open(Some(&r.from))?;
        let (entry, replica) = run.env.repos.open(r.repo.as_deref())?;
        let own = Bucket::new(r.bwlimit.and_then(Rate::from_bytes_per_sec));
        let global = &run.env.bandwidth;
        let paced = |bytes: u64| pace(&[global, &own], bytes, run.cancel);
        let options = ReplicateOptions {
            verify: r.verify,
            mirror_forget: r.mirror_forget,
        };
        let outcome = replicate(&source, &replica, options, &paced, run.progress, run.cancel);
        if let Some(store) = &run.env.replications {
            store.finished(&entry.name, outcome.as_ref().err().map(|e| e.to_string()));
        }
        let report = outcome?;
        tracing::info!(
            from = %r.from,
            to = %entry.name,
            snapshots = report.snapshots_copied,
            blobs = report.blobs_copied,
            bytes = report.bytes_written,
            "replication finished"
        );
        Ok(Response::Replicate(Box::new(result(
            &r.from,
            &entry.name,
            &report,
            started.elapsed(),
        ))))
    }
}

/// `from` empty (`repo replicate run R2`): the replication stored for the replica, as it is
/// when the job runs.
fn stored(r: ReplicateRequest, run: &Run<'_>) -> Result<ReplicateRequest, Error> {
    if !r.from.is_empty() {
        return Ok(r);
    }
    let to = run.env.repos.entry(r.repo.as_deref())?.name;
    let Some(store) = &run.env.replications else {
        return Err(crate::replication::ReplicationError::NotFound { to }.into());
    };
    match store.job(&to)? {
        backupd_common::protocol::JobKind::Replicate(stored) => Ok(stored),
        _ => Err(crate::replication::ReplicationError::NotFound { to }.into()),
    }
}

fn result(
    from: &str,
    to: &str,
    r: &ReplicateReport,
    duration: std::time::Duration,
) -> ReplicateResult {
    ReplicateResult {
        from: from.to_owned(),
        to: to.to_owned(),
        snapshots_copied: r.snapshots_copied,
        snapshots_present: r.snapshots_present,
        snapshots_forgotten: r.snapshots_forgotten,
        blobs_copied: r.blobs_copied,
        blobs_present: r.blobs_present,
        blobs_resealed: r.blobs_resealed,
        packs_copied: r.packs_copied,
        packs_written: r.packs_written,
        packs_adopted: r.packs_adopted,
        packs_verified: r.packs_verified,
        index_files_written: r.index_files_written,
        bytes_written: r.bytes_written,
        duration,
    }
}
