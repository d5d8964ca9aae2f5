//! Which queued job runs next: higher priority first, FIFO within a priority, a priority level
//! gained per `aging` of waiting, and no two jobs on one repository at once when either holds
//! it exclusively (each kind's claim is its operation's, [`crate::ops`]).

use crate::ops::{self, Claim};
use backupd_common::protocol::{JobId, JobInfo, JobState};
use std::collections::HashSet;
use std::time::Duration;

/// The rank a waiting job has now: its priority's rank minus the levels it gained by waiting.
/// Lower runs first; ties go to the older job.
pub fn effective_rank(job: &JobInfo, now: i64, aging: Duration) -> u32 {
    let waited = now.saturating_sub(job.submitted_ns).max(0) as u128;
    let step = aging.as_nanos().max(1);
    let gained = (waited / step).min(u32::MAX as u128) as u32;
    job.priority.rank().saturating_sub(gained)
}

/// Queued jobs in the order they would start, ignoring conflicts.
pub fn order<'a>(
    jobs: impl Iterator<Item = &'a JobInfo>,
    now: i64,
    aging: Duration,
) -> Vec<&'a JobInfo> {
    let mut queued: Vec<&JobInfo> = jobs.filter(|j| j.state == JobState::Queued).collect();
    queued.sort_by_key(|j| (effective_rank(j, now, aging), j.id));
    queued
}

/// Jobs to start now, at most `free` of them, given the claims of the running jobs. A job held
/// back by a conflict reserves its repository, so later jobs on it cannot overtake it (an
/// exclusive job is not starved by a stream of shared ones).
pub fn pick(ordered: &[&JobInfo], running: &[Claim], free: usize) -> Vec<JobId> {
    let mut held: Vec<Claim> = running.to_vec();
    let mut reserved: HashSet<String> = HashSet::new();
    let mut chosen = Vec::new();
    for job in ordered {
        if chosen.len() >= free {
            break;
        }
        match ops::claim(&job.kind) {
            None => chosen.push(job.id),
            Some(c) => {
                if reserved.contains(&c.repo) || held.iter().any(|h| h.conflicts(&c)) {
                    reserved.insert(c.repo);
                    continue;
                }
                held.push(c);
                chosen.push(job.id);
            }
        }
    }
    chosen
}

/// `ordered` without the sync jobs beyond `[sync] max_transfers` (`max`), given `running`
/// sync jobs already running: the rest wait their turn in order.
pub fn cap_sync(ordered: Vec<&JobInfo>, running: usize, max: usize) -> Vec<&JobInfo> {
    let mut left = max.saturating_sub(running);
    ordered
        .into_iter()
        .filter(|j| {
            if !matches!(j.kind, backupd_common::protocol::JobKind::Sync(_)) {
                return true;
            }
            if left == 0 {
                return false;
            }
            left -= 1;
            true
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::job::{new_job, Limits};
    use backupd_common::protocol::{
        BackupRequest, ForgetRequest, JobKind, JobOptions, JobSpec, NoopRequest, Priority,
    };

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn at_most_max_transfers_sync_jobs_start() {
        let sync = |id| {
            job(
                id,
                JobKind::Sync(backupd_common::protocol::SyncRunRequest {
                    pair: format!("p{id}"),
                }),
                Priority::Normal,
                id as i64,
            )
        };
        let jobs = [
            sync(1),
            sync(2),
            job(
                3,
                JobKind::Noop(NoopRequest::default()),
                Priority::Normal,
                3,
            ),
            sync(4),
        ];
        let ordered: Vec<&JobInfo> = jobs.iter().collect();
        let ids = |v: Vec<&JobInfo>| v.iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(cap_sync(ordered.clone(), 0, 3)), vec![1, 2, 3, 4]);
        assert_eq!(ids(cap_sync(ordered.clone(), 2, 3)), vec![1, 3]);
        assert_eq!(ids(cap_sync(ordered, 3, 3)), vec![3]);
    }

    fn job(id: JobId, kind: JobKind, priority: Priority, submitted: i64) -> JobInfo {
        let spec = JobSpec {
            kind,
            options: JobOptions {
                priority,
                ..Default::default()
            },
        };
        let limits = Limits {
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::from_secs(1),
        };
        new_job(id, spec, 0, submitted, limits)
    }

    fn noop() -> JobKind {
        JobKind::Noop(NoopRequest::default())
    }

    fn backup(repo: &str) -> JobKind {
        JobKind::Backup(BackupRequest {
            repo: Some(repo.into()),
            ..Default::default()
        })
    }

    fn prune(repo: &str) -> JobKind {
        JobKind::Forget(ForgetRequest {
            repo: Some(repo.into()),
            prune: true,
            ..Default::default()
        })
    }

    fn ids(v: &[&JobInfo]) -> Vec<JobId> {
        v.iter().map(|j| j.id).collect()
    }

    #[test]
    fn priority_first_then_fifo() {
        let jobs = [
            job(1, noop(), Priority::Low, 0),
            job(2, noop(), Priority::Normal, 0),
            job(3, noop(), Priority::High, 0),
            job(4, noop(), Priority::Normal, 0),
        ];
        let o = order(jobs.iter(), SEC, Duration::from_secs(600));
        assert_eq!(ids(&o), vec![3, 2, 4, 1]);
    }

    #[test]
    fn waiting_raises_priority_so_low_work_cannot_starve() {
        let jobs = [
            job(1, noop(), Priority::Low, 0),
            job(2, noop(), Priority::High, 1200 * SEC),
        ];
        let aging = Duration::from_secs(600);
        // After 20 minutes the low job has gained two levels: equal to high, and older.
        let o = order(jobs.iter(), 1200 * SEC, aging);
        assert_eq!(ids(&o), vec![1, 2]);
        let o = order(jobs.iter(), 1199 * SEC, aging);
        assert_eq!(ids(&o), vec![2, 1]);
    }

    #[test]
    fn exclusive_jobs_never_overlap_on_one_repository() {
        let jobs = [
            job(1, prune("a"), Priority::Normal, 0),
            job(2, backup("a"), Priority::Normal, 0),
            job(3, backup("b"), Priority::Normal, 0),
            job(4, noop(), Priority::Normal, 0),
        ];
        let o = order(jobs.iter(), 0, Duration::from_secs(600));
        // Nothing running: the prune starts; the backup of `a` waits behind it.
        assert_eq!(pick(&o, &[], 8), vec![1, 3, 4]);
        // A backup of `a` running: the prune waits, and reserves `a` against the later backup.
        let running = [Claim {
            repo: "a".into(),
            exclusive: false,
        }];
        assert_eq!(pick(&o, &running, 8), vec![3, 4]);
        // Worker count bounds the picks.
        assert_eq!(pick(&o, &running, 1), vec![3]);
    }

    #[test]
    fn shared_jobs_run_together() {
        let jobs = [
            job(1, backup("a"), Priority::Normal, 0),
            job(2, backup("a"), Priority::Normal, 0),
        ];
        let o = order(jobs.iter(), 0, Duration::from_secs(600));
        assert_eq!(pick(&o, &[], 2), vec![1, 2]);
    }
}
