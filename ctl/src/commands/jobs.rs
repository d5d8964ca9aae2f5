//! Commands that submit a job (`backup`, `restore`, `forget`, `repo check`,
//! `repo rebuild-index`, `repo key reencrypt`, `repo migrate`, `repo prune`, `repo compact`,
//! `recovery drill`, `queue add KIND`): the request is built and checked locally, submitted, and followed to its
//! end unless `--no-wait`. Ctrl-C while following detaches: the job goes on.

use super::{results, Failure, Paths};
use crate::cli::recovery::RecoveryCommand;
use crate::cli::{
    AddCommand, BackupArgs, CheckArgs, Command, ForgetArgs, JobArgs, KeyCommand, MigrateArgs,
    NoopArgs, OverwriteArg, PriorityArg, QueueCommand, RebuildArgs, ReencryptArgs,
    ReplicateCommand, RepoCommand, RestoreArgs,
};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json;
use crate::output::Output;
use crate::progress::Bar;
use backupd_common::client::ClientError;
use backupd_common::error::{ErrorCode, ErrorReply};
use backupd_common::protocol::{
    BackupRequest, CheckRequest, ForgetRequest, JobId, JobInfo, JobKind, JobOptions, JobSpec,
    JobState, MigrateRequest, NoopRequest, Overwrite, Priority, PruneRequest, RebuildIndexRequest,
    RecoveryAction, RecoveryJobRequest, ReencryptRequest, ReplicateRequest, RestoreRequest,
};
use std::time::UNIX_EPOCH;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A job built from the command line, before connecting.
#[derive(Debug)]
pub struct Prepared {
    pub spec: JobSpec,
    pub wait: bool,
}

/// The job a command line submits, if it submits one.
pub fn prepare(command: &Command, paths: Paths) -> Result<Option<Prepared>, Failure> {
    let (kind, args) = match command {
        Command::Backup(a) => (backup(a, paths)?, &a.job),
        Command::Restore(a) => (restore(a, paths)?, &a.job),
        Command::Forget(a) => (forget(a)?, &a.job),
        Command::Repo(RepoCommand::Check(a)) => (check(a), &a.job),
        Command::Recovery(RecoveryCommand::Drill(a)) => (super::recovery_drill::kind(a), &a.job),
        Command::Repo(RepoCommand::RebuildIndex(a)) => (rebuild(a), &a.job),
        Command::Repo(RepoCommand::Key(KeyCommand::Reencrypt(a))) => (reencrypt(a), &a.job),
        Command::Repo(RepoCommand::Migrate(a)) => (migrate(a), &a.job),
        Command::Repo(RepoCommand::Prune(a)) => (prune(&a.repo, a.compact_only), &a.job),
        Command::Repo(RepoCommand::Compact(a)) => (prune(&a.repo, true), &a.job),
        Command::Sync(crate::cli::SyncCommand::Run(a)) => (
            JobKind::Sync(backupd_common::protocol::SyncRunRequest {
                pair: a.name.clone(),
            }),
            &a.job,
        ),
        Command::Repo(RepoCommand::Replicate(ReplicateCommand::Run(a))) => (
            // The stored replication's settings, read by the daemon when the job runs.
            JobKind::Replicate(ReplicateRequest {
                repo: Some(a.to.clone()),
                ..Default::default()
            }),
            &a.job,
        ),
        Command::Recovery(RecoveryCommand::Run(a)) => (
            recovery_job(&a.plan, RecoveryAction::Run { step: a.step }),
            &a.job,
        ),
        Command::Recovery(RecoveryCommand::Rollback(a)) => {
            (recovery_job(&a.plan, RecoveryAction::Rollback), &a.job)
        }
        Command::Recovery(RecoveryCommand::Commit(a)) => {
            (recovery_job(&a.plan, RecoveryAction::Commit), &a.job)
        }
        Command::Queue(QueueCommand::Add(add)) => match add {
            AddCommand::Backup(a) => (backup(a, paths)?, &a.job),
            AddCommand::Restore(a) => (restore(a, paths)?, &a.job),
            AddCommand::Check(a) => (check(a), &a.job),
            AddCommand::Drill(a) => (super::recovery_drill::kind(a), &a.job),
            AddCommand::Forget(a) => (forget(a)?, &a.job),
            AddCommand::RebuildIndex(a) => (rebuild(a), &a.job),
            AddCommand::Noop(a) => (noop(a), &a.job),
            AddCommand::Reencrypt(a) => (reencrypt(a), &a.job),
            AddCommand::Migrate(a) => (migrate(a), &a.job),
            AddCommand::Prune(a) => (prune(&a.repo, a.compact_only), &a.job),
        },
        _ => return Ok(None),
    };
    // A dry run's output is the point of it (clap refuses --no-wait with it).
    let dry_run = match &kind {
        JobKind::Forget(f) => f.dry_run,
        JobKind::Backup(b) => b.dry_run,
        _ => false,
    };
    let wait = !args.no_wait || dry_run;
    Ok(Some(Prepared {
        spec: JobSpec {
            kind,
            options: options(args),
        },
        wait,
    }))
}

fn recovery_job(plan: &str, action: RecoveryAction) -> JobKind {
    JobKind::Recovery(RecoveryJobRequest {
        plan: plan.to_owned(),
        action,
    })
}

fn options(a: &JobArgs) -> JobOptions {
    JobOptions {
        priority: match a.priority {
            PriorityArg::High => Priority::High,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::Low => Priority::Low,
        },
        timeout: a.timeout,
        retries: a.retries,
        backoff: a.backoff,
    }
}

fn parse_time(text: &str) -> Result<i64, Failure> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1_000_000_000));
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        Failure::Usage(format!(
            "--time {text:?}: {e}; use RFC 3339 (2024-05-01T12:00:00Z) or Unix seconds"
        ))
    })?;
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Failure::Usage(format!("--time {text:?} is before 1970")))?;
    Ok(d.as_nanos() as i64)
}

fn backup(a: &BackupArgs, paths: Paths) -> Result<JobKind, Failure> {
    Ok(JobKind::Backup(BackupRequest {
        repo: a.repo.clone(),
        paths: a
            .paths
            .iter()
            .map(|p| paths.abs(p))
            .collect::<Result<_, _>>()?,
        excludes: a.exclude.clone(),
        exclude_files: a
            .exclude_file
            .iter()
            .map(|p| paths.abs(p))
            .collect::<Result<_, _>>()?,
        exclude_caches: a.exclude_caches,
        one_file_system: a.one_file_system,
        tags: a.tag.clone(),
        host: a.host.clone(),
        time_ns: a.time.as_deref().map(parse_time).transpose()?,
        force: a.force,
        dry_run: a.dry_run,
        ..Default::default()
    }))
}

fn restore(a: &RestoreArgs, paths: Paths) -> Result<JobKind, Failure> {
    let (snapshot, subpath) = paths.snapshot_path(&a.snapshot)?;
    Ok(JobKind::Restore(RestoreRequest {
        repo: a.repo.clone(),
        snapshot,
        subpath,
        target: a.target.as_deref().map(|t| paths.abs(t)).transpose()?,
        includes: a.include.clone(),
        excludes: a.exclude.clone(),
        verify: a.verify,
        no_owner: a.no_owner,
        strip_setid: match (a.strip_setid, a.keep_setid) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        filter: a.filter.to_filter(None),
    }))
}

fn forget(a: &ForgetArgs) -> Result<JobKind, Failure> {
    let r = ForgetRequest {
        repo: a.repo.clone(),
        keep_last: a.keep_last,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within: a.keep_within,
        prune: a.prune,
        dry_run: a.dry_run,
        snapshots: a.snapshots.clone(),
        paths: Vec::new(),
        source: None,
    };
    let any_count = [
        r.keep_last,
        r.keep_hourly,
        r.keep_daily,
        r.keep_weekly,
        r.keep_monthly,
        r.keep_yearly,
    ]
    .iter()
    .any(|n| *n > 0);
    if !any_count && r.keep_within.is_none() && r.snapshots.is_empty() {
        return Err(Failure::Usage(
            "forget needs snapshot ids or at least one --keep-* rule (it never removes every \
             snapshot)"
                .into(),
        ));
    }
    Ok(JobKind::Forget(r))
}

fn check(a: &CheckArgs) -> JobKind {
    use crate::cli::ReadDataSubset;
    let (read_data_percent, read_data_subset) = match (a.read_data, a.read_data_subset) {
        (true, _) => (100, None),
        (false, Some(ReadDataSubset::Percent(p))) => (p, None),
        (false, Some(ReadDataSubset::Part(part))) => (0, Some(part)),
        (false, None) => (0, None),
    };
    JobKind::Check(CheckRequest {
        repo: a.repo.clone(),
        read_data_percent,
        read_data_subset,
    })
}

fn rebuild(a: &RebuildArgs) -> JobKind {
    JobKind::RebuildIndex(RebuildIndexRequest {
        repo: a.repo.clone(),
    })
}

fn reencrypt(a: &ReencryptArgs) -> JobKind {
    JobKind::Reencrypt(ReencryptRequest {
        repo: a.repo.clone(),
        retire_below: a.retire_below,
        keep_keys: a.keep_keys,
    })
}

fn migrate(a: &MigrateArgs) -> JobKind {
    JobKind::Migrate(MigrateRequest {
        repo: a.repo.clone(),
        to: a.to,
    })
}

fn prune(repo: &Option<String>, compact_only: bool) -> JobKind {
    JobKind::Prune(PruneRequest {
        repo: repo.clone(),
        compact_only,
    })
}

fn noop(a: &NoopArgs) -> JobKind {
    JobKind::Noop(NoopRequest {
        duration: a.duration,
        fail_attempts: a.fail_attempts,
        permanent: a.permanent,
    })
}

/// Submits the job; unless `--no-wait`, follows it and exits as the job ended.
pub async fn run(client: &mut Client, p: Prepared, out: &Output) -> Result<ExitCode, Failure> {
    let kind = p.spec.kind.name();
    // Listening before the job exists: a Ctrl-C from then on detaches instead of killing us
    // half-way, and a test can interrupt as soon as it sees the job.
    let interrupt = interrupts()?;
    let submitted = client.submit(p.spec).await.map_err(Failure::submit)?;
    if !p.wait {
        // The daemon flushed the job to disk before it answered: it survives a restart.
        let view = json::job::SubmittedView::new(&submitted, kind);
        out.value(&view, || {
            if submitted.coalesced {
                format!(
                    "job {} (an equal {kind} already queued) will cover this request",
                    submitted.id
                )
            } else {
                format!(
                    "job {} queued ({kind}); follow it with `backupctl queue wait {}`",
                    submitted.id, submitted.id
                )
            }
        });
        return Ok(ExitCode::Ok);
    }
    follow(client, submitted.id, out, interrupt).await
}

/// SIGINT (Ctrl-C) as a stream, replacing the default of dying.
pub fn interrupts() -> Result<Signal, Failure> {
    signal(SignalKind::interrupt())
        .map_err(|e| Failure::Local(format!("cannot listen for Ctrl-C (SIGINT): {e}")))
}

/// Follows job `id` to its end and exits as it ended; Ctrl-C stops following, not the job.
pub async fn follow(
    client: &mut Client,
    id: JobId,
    out: &Output,
    mut interrupt: Signal,
) -> Result<ExitCode, Failure> {
    let bar = std::cell::RefCell::new(Bar::new(true));
    let waiting = client.wait(
        id,
        |progress| bar.borrow_mut().update(&progress),
        |event| {
            // Retries are worth knowing about while waiting; the rest shows in the bar.
            if event.state == JobState::RetryWait {
                bar.borrow_mut().finish();
                eprintln!(
                    "backupctl: job {id}: attempt {} failed{}; it will be retried",
                    event.attempt,
                    event.error.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
        },
    );
    let job = tokio::select! {
        job = waiting => job,
        _ = interrupt.recv() => {
            bar.borrow_mut().finish();
            return Ok(detached(id, out));
        }
    };
    bar.into_inner().finish();
    ended(&job?, out)
}

/// Says that the job goes on without us, and how to follow or cancel it.
fn detached(id: JobId, out: &Output) -> ExitCode {
    eprintln!(
        "backupctl: stopped waiting; job {id} goes on in the daemon. Follow it with `backupctl \
         queue wait {id}` (or look with `backupctl queue show {id}`), cancel it with `backupctl \
         queue cancel {id}`"
    );
    out.json_only(&json::job::DetachedView { id, detached: true });
    ExitCode::Interrupted
}

/// Reports how a job ended and returns the exit code it means.
pub fn ended(job: &JobInfo, out: &Output) -> Result<ExitCode, Failure> {
    let failed = |code: ErrorCode, message: String| {
        Err(Failure::Client(ClientError::Remote(ErrorReply::new(
            code, message,
        ))))
    };
    let tries = |j: &JobInfo| match j.attempts.len() {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    match job.state {
        JobState::Succeeded => match &job.result {
            Some(result) => Ok(results::print(job.id, result, out)),
            None => failed(
                ErrorCode::Internal,
                format!("job {} succeeded without a result", job.id),
            ),
        },
        JobState::DeadLetter => {
            let e = job
                .error
                .clone()
                .unwrap_or_else(|| ErrorReply::new(ErrorCode::Internal, "no error recorded"));
            failed(
                e.code,
                format!(
                    "job {} ({}) failed after {}: {}; {}",
                    job.id,
                    job.kind.name(),
                    tries(job),
                    e.message,
                    super::queue::dead_letter_advice(job)
                ),
            )
        }
        JobState::Cancelled => failed(
            ErrorCode::Conflict,
            format!("job {} ({}) was cancelled", job.id, job.kind.name()),
        ),
        JobState::TimedOut => {
            let message = job
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            failed(ErrorCode::Timeout, message)
        }
        state => failed(
            ErrorCode::Internal,
            format!("job {} is still {}", job.id, state.as_str()),
        ),
    }
}
