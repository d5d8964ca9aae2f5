//! What a caller who does not administer the daemon sees of other people's work. A job's
//! arguments, results, log and error texts name files (backup paths, restore targets, skipped
//! files, errors quoting paths): a `user` or `viewer` reads them for the jobs it submitted
//! itself, and sees everyone else's jobs, events and history without them, so nobody learns
//! the name of a file in another user's private directory from the queue. Snapshot listings
//! and `stats` are scoped to the caller's own snapshots where they are computed
//! (`repo::Scope`); repository listings lose where the repository and its key file live.
//!
//! What describes the queue itself stays for everyone: id, kind, state, priority, repository,
//! submitter, timestamps, attempts and their outcomes, counts and progress numbers. Every reply
//! passes through [`response`] or [`progress`] in the connection, so a handler cannot forget
//! it; the matches are exhaustive so a new response type needs a decision here.

use backupd_common::error::ErrorReply;
use backupd_common::protocol::{
    AnomalyInfo, HealthReport, HistoryEntry, HoldInfo, Identity, JobEvent, JobInfo, Progress,
    Recommendation, RepoInfo, Response, SourceInfo, SourceRisk,
};

/// A source's name as a caller who does not administer the daemon sees it.
const HIDDEN_NAME: &str = "(hidden)";

/// Whom a reply is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub uid: u32,
    /// Administers the daemon: sees everything.
    pub admin: bool,
}

impl Reader {
    pub fn of(identity: &Identity) -> Self {
        Self {
            uid: identity.uid,
            admin: crate::security::administers(identity.role),
        }
    }

    /// Whether the reader sees what a job submitted by `submitter` names.
    pub fn owns(&self, submitter: u32) -> bool {
        self.admin || submitter == self.uid
    }
}

/// Replaces an error text a reader may not read; the error's code stays.
pub const HIDDEN: &str =
    "(hidden: only its submitter and admins see a job's arguments, results and error texts)";

fn hidden_error(e: &mut ErrorReply) {
    e.message = HIDDEN.to_owned();
}

pub fn job(j: &mut JobInfo, reader: Reader) {
    if reader.owns(j.submitter_uid) {
        return;
    }
    // Each kind's operation says what of its arguments an observer may see.
    crate::ops::redact(&mut j.kind);
    j.result = None;
    // Log lines name files.
    j.log.clear();
    if let Some(e) = &mut j.error {
        hidden_error(e);
    }
    for a in &mut j.attempts {
        if let Some(e) = &mut a.error {
            hidden_error(e);
        }
    }
}

pub fn event(e: &mut JobEvent, reader: Reader) {
    if reader.owns(e.submitter_uid) {
        return;
    }
    if let Some(text) = &mut e.error {
        *text = HIDDEN.to_owned();
    }
    // Another user's snapshot does not exist for this reader.
    e.snapshot = None;
}

/// A source without its path, excludes and name (the name defaults to the directory's name).
fn source(s: &mut SourceInfo) {
    s.spec.name.clear();
    s.spec.path.clear();
    s.spec.excludes.clear();
    if let Some(note) = &mut s.note {
        *note = HIDDEN.to_owned();
    }
}

/// A history entry keeps its shape and figures; the source's name (often a directory's name)
/// and the error text (paths) go.
fn history(h: &mut HistoryEntry) {
    if h.source.is_some() {
        h.source = Some(HIDDEN.to_owned());
    }
    if h.error.is_some() {
        h.error = Some(HIDDEN.to_owned());
    }
}

/// Where a repository and its key file live is the administrators' business.
fn repo(r: &mut RepoInfo) {
    r.path = HIDDEN_LOCATION.to_owned();
    r.key_file = HIDDEN_LOCATION.to_owned();
}

/// Replaces a repository's path and key file for readers who do not administer the daemon.
pub const HIDDEN_LOCATION: &str = "(hidden: admins only)";

/// Alerts name repository paths and key files: observers learn that something needs an
/// administrator (the status says `degraded`), not where.
fn health(h: &mut HealthReport) {
    for note in &mut h.notes {
        *note = "an alert needs an administrator (details in `backupctl system health` as root)"
            .to_owned();
    }
    // Source names are often directory names; error texts name paths.
    for s in &mut h.sources {
        s.name = HIDDEN.to_owned();
        hide_error(&mut s.last_error);
        hide_error(&mut s.retention.last_error);
    }
    for r in &mut h.repositories {
        for t in [&mut r.prune, &mut r.check, &mut r.read_data] {
            hide_error(&mut t.last_error);
        }
    }
    // Factor details name sources, paths and error texts.
    for f in &mut h.score.factors {
        f.detail = HIDDEN_LOCATION.to_owned();
    }
}

/// Disk paths name sources' directories: a non-admin sees what a disk holds by kind only.
fn disk(path: &mut String, holds: &mut Vec<String>) {
    *path = HIDDEN_LOCATION.to_owned();
    for h in holds.iter_mut() {
        if let Some((kind, _)) = h.split_once(' ') {
            *h = kind.to_owned();
        }
    }
    holds.dedup();
}

fn perf_sample(s: &mut backupd_common::protocol::PerfSample) {
    for d in &mut s.disks {
        disk(&mut d.path, &mut d.holds);
    }
}

fn bottleneck(b: &mut backupd_common::protocol::Bottleneck) {
    if b.kind == backupd_common::protocol::BottleneckKind::Disk {
        b.subject = HIDDEN_LOCATION.to_owned();
        b.reason = format!("a disk {:.1} % full or filling", b.peak);
        b.actions.clear();
    }
}

fn hide_error(e: &mut Option<String>) {
    if e.is_some() {
        *e = Some(HIDDEN.to_owned());
    }
}

/// Redacts a final reply for `reader`.
pub fn response(r: &mut Response, reader: Reader) {
    if reader.admin {
        return;
    }
    let job = |j: &mut JobInfo| job(j, reader);
    match r {
        Response::Job(j) => job(j),
        Response::Jobs(jobs) => jobs.iter_mut().for_each(job),
        Response::QueueStatus(s) => {
            s.running.iter_mut().for_each(job);
            s.next.iter_mut().for_each(job);
        }
        Response::History(entries) => entries.iter_mut().for_each(history),
        Response::Source(s) => source(s),
        Response::SourceDetail(d) => {
            source(&mut d.info);
            // The plan lists snapshots by host and time, which is the snapshot listing's
            // business (scoped per owner there).
            d.retention_plan = None;
            hide_error(&mut d.retention_error);
        }
        Response::Sources(list) => list.iter_mut().for_each(source),
        Response::Repo(r) => repo(r),
        Response::Repos(list) => list.iter_mut().for_each(repo),
        Response::RepoDetails(d) => repo(&mut d.repo),
        // Scoped to the reader's own snapshots by the handler.
        Response::Snapshots(_) | Response::Stats(_) => {}
        // Results naming files: observers never get them today (their requests need admin
        // permissions), but a future permission change must not leak them.
        Response::Backup(_)
        | Response::BackupDryRun(_)
        | Response::Restore(_)
        | Response::Check(_)
        | Response::Forget(_)
        | Response::RebuildIndex(_)
        | Response::KeyExport(_)
        | Response::StateExport(_)
        | Response::StateImported(_)
        | Response::RepoRemoved(_)
        | Response::KeyChanged(_)
        | Response::KeyRotated(_)
        | Response::KeyList(_)
        | Response::KeyRemoved(_)
        | Response::Reencrypt(_)
        | Response::Migrate(_)
        | Response::Prune(_)
        | Response::Compact(_)
        | Response::Sync(_)
        | Response::SyncPair(_)
        | Response::SyncPairs(_)
        | Response::SyncHistory(_)
        | Response::SyncConflicts(_)
        | Response::Replicate(_)
        | Response::Replication(_)
        | Response::Replications(_)
        // Plans name targets on the machine.
        | Response::RecoveryPlan(_)
        | Response::RecoveryPlans(_)
        | Response::Drill(_) => *r = Response::Done,
        // Scoped to the reader's own snapshots by the handler.
        Response::Fitness(_) | Response::Selection(_) => {}
        // Source names and drill errors name directories and files.
        Response::Objectives(o) => {
            for s in &mut o.sources {
                s.name = HIDDEN_NAME.to_owned();
                s.note = None;
                if let Some(d) = &mut s.last_drill {
                    d.error = None;
                }
            }
        }
        Response::Health(h) => health(h),
        Response::PerfCurrent(c) => {
            c.sample.iter_mut().for_each(perf_sample);
            c.open_bottlenecks.iter_mut().for_each(bottleneck);
        }
        Response::PerfSamples(list) => list.iter_mut().for_each(perf_sample),
        Response::Bottlenecks(list) => list.iter_mut().for_each(bottleneck),
        Response::PerfReport(r) => {
            for d in &mut r.disks {
                disk(&mut d.path, &mut d.holds);
            }
            r.recommendations.clear();
        }
        // Tunables and the metrics that moved them: no paths (disk metrics name paths).
        Response::TuningHistory(list) => {
            for ch in list.iter_mut().filter(|ch| ch.metric.contains('/')) {
                ch.metric = "repository disk".to_owned();
            }
        }
        Response::Optimized(_) => {}
        Response::Identity(_)
        | Response::Reloaded(_)
        | Response::ShuttingDown
        | Response::Done
        | Response::Submitted(_)
        | Response::Workers(_)
        | Response::Purged(_)
        // Bindings name uids, groups and repositories, never paths.
        | Response::Security(_)
        | Response::Noop { .. } => {}
        // Reading the audit log is what `audit.read` grants: whoever holds it sees it whole.
        Response::AuditEntries(_) | Response::AuditVerify(_) => {}
        // Only callers holding `security.read` get these, and they name uids, not files.
        Response::SecurityAlerts(_)
        | Response::SecurityAlert(_)
        | Response::Unlocked(_)
        | Response::Compliance(_)
        | Response::SecurityReport(_) => {}
        // Counts, a repository name and a key version: no file names.
        Response::Encrypted(_) | Response::Decrypted(_) => {}
        // Only the caller's own snapshots were browsed (the handler's scope).
        Response::Listing(_) | Response::Found(_) | Response::Diff(_) | Response::Cat(_) => {}
        // Source names are often directory names; evidence and actions name them too. The
        // figures stay: they are what an observer monitors.
        Response::Predictions(list) => list.iter_mut().for_each(|p| p.source = hidden()),
        Response::Backtest(b) => {
            for s in b.scores.iter_mut().filter(|s| !s.history.starts_with("synthetic:")) {
                s.history = hidden();
            }
            b.estimates.iter_mut().for_each(|e| e.source = hidden());
        }
        Response::Estimates(list) => list.iter_mut().for_each(|e| {
            e.source = e.source.as_ref().map(|_| hidden());
        }),
        Response::Anomalies(list) => list.iter_mut().for_each(anomaly),
        Response::Trends(list) => list.iter_mut().for_each(|t| t.source = hidden()),
        Response::Risk(r) => r.sources.iter_mut().for_each(risk),
        Response::Recommendations(list) => list.iter_mut().for_each(recommendation),
        Response::AnalyticsReport(r) => {
            for s in &mut r.sources {
                s.source = hidden();
                s.prediction.source = hidden();
                if let Some(e) = &mut s.estimate {
                    e.source = Some(hidden());
                }
                s.trends.iter_mut().for_each(|t| t.source = hidden());
                risk(&mut s.risk);
                s.anomalies.iter_mut().for_each(anomaly);
                s.hold.iter_mut().for_each(hold);
            }
            r.recommendations.iter_mut().for_each(recommendation);
        }
        Response::Holds(list) => list.iter_mut().for_each(hold),
        Response::HoldReleased(h) => hold(h),
    }
}

fn hidden() -> String {
    HIDDEN_NAME.to_owned()
}

fn anomaly(a: &mut AnomalyInfo) {
    a.source = hidden();
    a.detail = HIDDEN.to_owned();
}

fn risk(r: &mut SourceRisk) {
    r.source = hidden();
    for f in &mut r.factors {
        f.evidence = HIDDEN.to_owned();
    }
}

fn recommendation(r: &mut Recommendation) {
    r.subject = hidden();
    r.evidence = HIDDEN.to_owned();
    r.action = HIDDEN.to_owned();
}

fn hold(h: &mut HoldInfo) {
    h.source = hidden();
    h.reason = HIDDEN.to_owned();
}

/// Redacts a streamed frame for `reader`.
pub fn progress(p: &mut Progress, reader: Reader) {
    if reader.admin {
        return;
    }
    match p {
        Progress::Event(e) => event(e, reader),
        Progress::Health(h) => health(h),
        Progress::Operation(_) | Progress::Audit(_) => {}
        // A file of the caller's own snapshot (the handler's scope decided which).
        Progress::Content(_) => {}
        // Sent only to followers holding `security.read`.
        Progress::Alert(_) => {}
        Progress::Anomaly(a) => anomaly(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{
        Attempt, AttemptOutcome, BackupRequest, JobKind, JobState, Priority,
    };

    #[test]
    fn another_users_job_loses_paths_results_and_error_texts_but_keeps_its_shape() {
        let mut j = JobInfo {
            id: 7,
            kind: JobKind::Backup(BackupRequest {
                repo: Some("default".into()),
                paths: vec![b"/home/alice/secret-plans".to_vec()],
                excludes: vec!["/home/alice/x".into()],
                ..BackupRequest::default()
            }),
            priority: Priority::High,
            state: JobState::DeadLetter,
            submitter_uid: 1000,
            timeout_ms: 1,
            retries: 0,
            backoff_ms: 1,
            submitted_ns: 1,
            started_ns: Some(2),
            finished_ns: Some(3),
            not_before_ns: None,
            attempts: vec![Attempt {
                number: 1,
                started_ns: 2,
                finished_ns: Some(3),
                outcome: AttemptOutcome::Failed,
                error: Some(ErrorReply::new(
                    backupd_common::error::ErrorCode::NotFound,
                    "/home/alice/secret-plans: no such file",
                )),
                retry_in_ms: None,
                retryable: false,
            }],
            retry_base: 0,
            coalesced: 0,
            cancel_requested: false,
            progress: None,
            result: Some(Response::Noop { slept_ms: 1 }),
            error: Some(ErrorReply::new(
                backupd_common::error::ErrorCode::NotFound,
                "/home/alice/secret-plans: no such file",
            )),
            log: vec!["INFO reading /home/alice/secret-plans".into()],
            acts_as: None,
        };
        let owner = j.clone();
        let mut mine = j.clone();
        job(
            &mut mine,
            Reader {
                uid: 1000,
                admin: false,
            },
        );
        assert_eq!(mine, owner, "the submitter reads its own job whole");
        job(
            &mut j,
            Reader {
                uid: 1001,
                admin: false,
            },
        );
        let text = format!("{j:?}");
        assert!(!text.contains("alice"), "{text}");
        assert_eq!(j.id, 7);
        assert_eq!(j.state, JobState::DeadLetter);
        assert_eq!(j.kind.repo(), Some(Some("default")));
        assert_eq!(
            j.error.as_ref().map(|e| e.code),
            Some(backupd_common::error::ErrorCode::NotFound)
        );
        assert!(j.result.is_none());
    }
}
