//! `backupctl queue ...` (except `queue add`, which `jobs` handles) and `backupctl events`.

use super::{jobs, Failure};
use crate::cli::{DlqCommand, EventsArgs, QueueCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::{self, job::JobView};
use crate::output::Output;
use crate::progress::bytes;
use backupd_common::protocol::{
    AttemptOutcome, JobEvent, JobInfo, JobKind, JobState, OperationProgress, QueueStatus,
    RecoveryAction, Response,
};
use std::time::Duration;

pub use crate::json::time;

/// A path for display. The daemon empties the paths it hides from non-admin callers (a real
/// backup path or restore target is never empty), so empty reads as hidden.
pub fn lossy(b: &[u8]) -> String {
    if b.is_empty() {
        return "(hidden)".into();
    }
    String::from_utf8_lossy(b).into_owned()
}

/// What the job works on, in a few words.
pub(crate) fn target(kind: &JobKind) -> String {
    let repo = |r: &Option<String>| r.clone().unwrap_or_else(|| "default".into());
    match kind {
        JobKind::Backup(r) if r.paths.is_empty() => format!("(hidden) -> {}", repo(&r.repo)),
        JobKind::Backup(r) => format!(
            "{} -> {}",
            r.paths
                .iter()
                .map(|p| lossy(p))
                .collect::<Vec<_>>()
                .join(" "),
            repo(&r.repo)
        ),
        JobKind::Restore(r) => format!(
            "{}:{} -> {}",
            repo(&r.repo),
            r.snapshot,
            r.target
                .as_deref()
                .map_or("(the daemon's restore directory)".into(), lossy)
        ),
        JobKind::Check(r) => match r.read_data_subset {
            Some(part) => format!("{} (read data part {part})", repo(&r.repo)),
            None => format!("{} (read data {}%)", repo(&r.repo), r.read_data_percent),
        },
        JobKind::Forget(r) => format!(
            "{}{}{}",
            repo(&r.repo),
            if r.prune { " --prune" } else { "" },
            if r.dry_run { " --dry-run" } else { "" }
        ),
        JobKind::RebuildIndex(r) => repo(&r.repo),
        JobKind::Noop(r) => format!("{}", humantime::format_duration(r.duration)),
        JobKind::Sync(r) => format!("pair {}", r.pair),
        JobKind::Reencrypt(r) => format!(
            "{}{}{}",
            repo(&r.repo),
            r.retire_below
                .map(|v| format!(" (versions below {v})"))
                .unwrap_or_default(),
            if r.keep_keys { " --keep-keys" } else { "" }
        ),
        JobKind::Migrate(r) => format!("{} to format {}", repo(&r.repo), r.to),
        JobKind::Prune(r) if r.compact_only => format!("{} (compact only)", repo(&r.repo)),
        JobKind::Prune(r) => repo(&r.repo),
        JobKind::Replicate(r) if r.from.is_empty() => format!("into {}", repo(&r.repo)),
        JobKind::Replicate(r) => format!("{} into {}", r.from, repo(&r.repo)),
        JobKind::Recovery(r) => match r.action {
            RecoveryAction::Run { step: Some(n) } => format!("plan {} step {n}", r.plan),
            RecoveryAction::Run { step: None } => format!("plan {}", r.plan),
            RecoveryAction::Rollback => format!("plan {} rollback", r.plan),
            RecoveryAction::Commit => format!("plan {} commit", r.plan),
        },
        JobKind::Drill(d) => format!(
            "{}{}",
            d.source
                .as_ref()
                .map(|s| format!("source {s} in "))
                .unwrap_or_default(),
            repo(&d.repo)
        ),
    }
}

/// What to do about a dead-letter job. Running it again only helps when it failed with a
/// retryable error and ran out of attempts; a permanent failure (a wrong argument, damaged
/// data) fails the same way again, so it says to fix the cause instead.
pub fn dead_letter_advice(job: &JobInfo) -> String {
    let last_failed = job
        .attempts
        .iter()
        .rev()
        .find(|a| a.outcome == AttemptOutcome::Failed);
    match last_failed {
        Some(a) if a.retryable => format!(
            "it ran out of retries and is in the dead-letter queue; once the cause is fixed, \
             `backupctl queue dlq retry {}` runs it again",
            job.id
        ),
        Some(_) => "it is in the dead-letter queue without retries: the error is permanent, so \
                    running it again would fail the same way; fix the cause and submit a new job"
            .to_owned(),
        // Not ended by a failed attempt (e.g. crashes): its own error says what to do.
        None => "it is in the dead-letter queue".to_owned(),
    }
}

/// What a finished job produced, in a few lines: `queue job` shows it under the job.
fn result_text(result: &Response) -> String {
    use crate::output::count;
    match result {
        Response::Backup(r) => {
            let s = &r.stats;
            let kept = if r.unchanged {
                "unchanged, kept snapshot "
            } else {
                "snapshot "
            };
            let mut text = format!(
                "{kept}{}{}\n    {} ({} read), {}; {} in the snapshot, {} read, {} new to \
                 the repository, {} stored",
                r.snapshot,
                r.parent
                    .as_deref()
                    .map(|p| format!(" (parent {})", super::results::short(p)))
                    .unwrap_or_default(),
                count(s.files, "file"),
                s.files_read,
                count(s.dirs, "dir"),
                bytes(s.bytes_total),
                bytes(s.bytes_read),
                bytes(s.bytes_added),
                bytes(s.bytes_stored)
            );
            if !r.skipped.is_empty() {
                text.push_str(&format!(
                    "\n    {} could not be read",
                    count(r.skipped.len() as u64, "path")
                ));
            }
            text
        }
        Response::Restore(r) => format!(
            "from snapshot {}: {}, {}, {} ({}){}",
            super::results::short(&r.snapshot),
            count(r.files, "file"),
            count(r.dirs, "dir"),
            crate::output::count_as(r.other, "other", "others"),
            bytes(r.bytes),
            match r.failed.len() {
                0 => String::new(),
                n => format!("; {} failed", count(n as u64, "file")),
            }
        ),
        Response::Check(r) => {
            let mut text = format!(
                "{} checked, {} read; {}",
                count(r.snapshots, "snapshot"),
                count(r.packs_read, "pack"),
                match r.problems.len() {
                    0 => "no problems found".to_owned(),
                    n => format!(
                        "{} in {}",
                        count(n as u64, "problem"),
                        count(r.damaged_packs.len() as u64, "damaged pack")
                    ),
                }
            );
            for p in &r.problems {
                text.push_str(&format!("\n    {}", p.message));
            }
            for note in &r.notes {
                text.push_str(&format!("\n    note: {note}"));
            }
            text
        }
        Response::Forget(r) => {
            let kept = r.decisions.iter().filter(|d| d.keep).count() as u64;
            format!(
                "{} {}, {} kept{}",
                count(r.removed, "snapshot"),
                if r.dry_run {
                    "would be removed"
                } else {
                    "removed"
                },
                kept,
                r.prune
                    .as_ref()
                    .map(|p| format!(
                        "; pruned {}, {} -> {}",
                        count(p.packs_deleted, "pack"),
                        bytes(p.bytes_before),
                        bytes(p.bytes_after)
                    ))
                    .unwrap_or_default()
            )
        }
        Response::RebuildIndex(r) => format!(
            "index of {}, {}; {} left out",
            count(r.packs, "pack"),
            count(r.blobs, "blob"),
            count(r.unreadable.len() as u64, "unreadable pack")
        ),
        Response::Noop { slept_ms } => format!("slept {slept_ms} ms"),
        Response::Reencrypt(r) | Response::Migrate(r) => super::results::reencrypt_summary(r),
        Response::Prune(p) => super::results::prune_text(p),
        Response::Compact(c) => super::results::compact_text(c),
        Response::Replicate(r) => super::results::replicate_text(r),
        Response::Drill(d) => super::recovery_drill::summary(d),
        other => format!("{other:?}"),
    }
}

fn progress_text(p: &OperationProgress) -> String {
    match (p.files_total, p.bytes_total) {
        (Some(f), Some(b)) => format!(
            "{}/{}, {}/{}",
            p.files_done,
            crate::output::count(f, "file"),
            bytes(p.bytes_done),
            bytes(b)
        ),
        _ => format!(
            "{}, {}",
            crate::output::count(p.files_done, "file"),
            bytes(p.bytes_done)
        ),
    }
}

fn line(j: &JobInfo) -> String {
    format!(
        "{:>6} {:<11} {:<6} {:<13} {:>3} {} {}{}",
        j.id,
        j.state.as_str(),
        j.priority.as_str(),
        j.kind.name(),
        j.attempts.len(),
        time(j.submitted_ns),
        target(&j.kind),
        j.progress
            .as_ref()
            .map(|p| format!("  [{}]", progress_text(p)))
            .unwrap_or_default()
    )
}

const HEADER: &str =
    "    id state       prio   kind          try submitted                    target";

fn table(jobs: &[JobInfo]) -> String {
    if jobs.is_empty() {
        return "no jobs".into();
    }
    let mut text = HEADER.to_owned();
    for j in jobs {
        text.push('\n');
        text.push_str(&line(j));
    }
    text
}

fn status_text(s: &QueueStatus) -> String {
    let mut text = format!("workers: {}\n", s.workers);
    if s.counts.is_empty() {
        text.push_str("no jobs\n");
    }
    for c in &s.counts {
        text.push_str(&format!(
            "{:<11} {:<6} {}\n",
            c.state.as_str(),
            c.priority.as_str(),
            c.count
        ));
    }
    if !s.running.is_empty() {
        text.push_str("\nrunning:\n");
        text.push_str(&table(&s.running));
        text.push('\n');
    }
    if !s.next.is_empty() {
        text.push_str("\nnext:\n");
        text.push_str(&table(&s.next));
    }
    text.trim_end().to_owned()
}

fn job_text(j: &JobInfo) -> String {
    let mut text = format!(
        "job {} ({}, {} priority): {}\n  target: {}\n  submitted {} by uid {}",
        j.id,
        j.kind.name(),
        j.priority.as_str(),
        j.state.as_str(),
        target(&j.kind),
        time(j.submitted_ns),
        j.submitter_uid
    );
    if j.coalesced > 0 {
        text.push_str(&format!(
            " (and {} merged)",
            crate::output::count(j.coalesced, "equal submission")
        ));
    }
    text.push_str(&format!(
        "\n  limits: timeout {}, {}, first backoff {}",
        humantime::format_duration(Duration::from_millis(j.timeout_ms)),
        crate::output::count(j.retries, "retry"),
        humantime::format_duration(Duration::from_millis(j.backoff_ms))
    ));
    for a in &j.attempts {
        text.push_str(&format!(
            "\n  attempt {}: started {}, {}",
            a.number,
            time(a.started_ns),
            json::job::outcome(a.outcome)
        ));
        if let Some(f) = a.finished_ns {
            text.push_str(&format!(" after {:.1}s", (f - a.started_ns) as f64 / 1e9));
        }
        if let Some(e) = &a.error {
            text.push_str(&format!("\n    error: {}", e.message));
        }
        if let Some(ms) = a.retry_in_ms {
            text.push_str(&format!("\n    retried after {:.1}s", ms as f64 / 1000.0));
        }
    }
    if let Some(t) = j.not_before_ns {
        text.push_str(&format!("\n  next attempt at {}", time(t)));
    }
    if let Some(p) = &j.progress {
        text.push_str(&format!("\n  progress: {}", progress_text(p)));
    }
    if let Some(t) = j.finished_ns {
        text.push_str(&format!("\n  finished {}", time(t)));
    }
    if let Some(e) = &j.error {
        text.push_str(&format!("\n  error: {}", e.message));
    }
    if j.state == JobState::DeadLetter {
        text.push_str(&format!("\n  {}", dead_letter_advice(j)));
    }
    if let Some(r) = &j.result {
        text.push_str(&format!("\n  result: {}", result_text(r)));
    }
    text
}

fn event_text(e: &JobEvent) -> String {
    match (&e.progress, e.from) {
        (Some(p), _) => format!(
            "{} job {} {} progress: {}",
            time(e.time_ns),
            e.job,
            e.kind,
            progress_text(p)
        ),
        (None, from) => format!(
            "{} job {} {} {}{} (attempt {}){}",
            time(e.time_ns),
            e.job,
            e.kind,
            from.map(|f| format!("{} -> ", f.as_str()))
                .unwrap_or_default(),
            e.state.as_str(),
            e.attempt,
            e.error
                .as_ref()
                .map(|m| format!(": {m}"))
                .or_else(|| e.snapshot.as_ref().map(|s| format!(": snapshot {s}")))
                .unwrap_or_default()
        ),
    }
}

pub async fn run(
    client: &mut Client,
    cmd: &QueueCommand,
    out: &Output,
) -> Result<ExitCode, Failure> {
    match cmd {
        QueueCommand::Add(_) => {} // submitted by `commands::jobs`
        QueueCommand::Status => {
            let s = client.queue_status().await?;
            out.value(&json::job::QueueStatusView::from(&s), || status_text(&s));
        }
        QueueCommand::Job { id, follow: true } | QueueCommand::Wait { id } => {
            let interrupt = jobs::interrupts()?;
            return jobs::follow(client, *id, out, interrupt).await;
        }
        QueueCommand::Job { id, follow: false } => {
            let j = client.job(*id).await?;
            out.value(&JobView::from(&j), || job_text(&j));
        }
        QueueCommand::Log { id } => {
            let j = client.job(*id).await?;
            let view = json::job::LogView {
                id: j.id,
                state: j.state.as_str(),
                lines: &j.log,
            };
            out.value(&view, || match j.log.is_empty() {
                true => format!("job {} ({}) has no log lines", j.id, j.state.as_str()),
                false => j.log.join("\n"),
            });
        }
        QueueCommand::Cancel { id } => {
            let j = client.cancel(*id).await?;
            out.value(&JobView::from(&j), || match j.state.is_final() {
                true => format!("job {} {}", j.id, j.state.as_str()),
                false => format!(
                    "job {} is stopping at its next safe point ({})",
                    j.id,
                    j.state.as_str()
                ),
            });
        }
        QueueCommand::Dlq(DlqCommand::List) => {
            let jobs = client.dead_letters().await?;
            out.value(&json::job::jobs(&jobs), || {
                let mut text = table(&jobs);
                for j in &jobs {
                    if let Some(e) = &j.error {
                        text.push_str(&format!("\n{:>6} {}", j.id, e.message));
                    }
                }
                text
            });
        }
        QueueCommand::Dlq(DlqCommand::Retry { id }) => {
            let j = client.retry_dead_letter(*id).await?;
            out.value(&JobView::from(&j), || format!("job {} queued again", j.id));
        }
        QueueCommand::Dlq(DlqCommand::Purge) => {
            let n = client.purge_dead_letters().await?;
            out.value(&serde_json::json!({"purged": n}), || {
                format!("{} deleted", crate::output::count(n, "dead-letter job"))
            });
        }
        QueueCommand::History(a) => super::history::history(client, a, out).await?,
        QueueCommand::Workers { count } => {
            let n = client.workers(*count).await?;
            out.value(&serde_json::json!({"workers": n}), || {
                format!("workers: {n}")
            });
        }
    }
    Ok(ExitCode::Ok)
}

pub async fn events(
    client: &mut Client,
    a: &EventsArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    client
        .events(
            a.follow,
            a.backlog,
            |e| out.value(&json::job::EventView::from(&e), || event_text(&e)),
            |alert| super::security_alerts::print_alert_event(out, &alert),
            |anomaly| super::analytics::print_anomaly_event(out, &anomaly),
        )
        .await?;
    Ok(ExitCode::Ok)
}
