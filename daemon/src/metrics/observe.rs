//! What the endpoint learns from the queue's job events rather than reads at scrape time:
//! jobs finished by kind and outcome, failed attempts that will be retried, the time jobs
//! spent running, and the figures of each repository's latest backup. Counts start at zero
//! when the daemon starts, as Prometheus expects of counters (`rate()` and `increase()` handle
//! the reset).
//!
//! [`Observed::on_event`] is the whole rule, fed by the service's event task; the label sets
//! are bounded by construction: kinds are the queue's kinds, outcomes its final states, and
//! repositories the ones backups ran on.

use backupd_common::protocol::{JobEvent, JobInfo, JobKind, JobState, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The final states a job ends in, as `outcome` label values.
pub const OUTCOMES: [JobState; 4] = [
    JobState::Succeeded,
    JobState::DeadLetter,
    JobState::Cancelled,
    JobState::TimedOut,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Job durations from a tenth of a second to about seven hours, each bucket four times the
/// last: a no-op and a first full backup of a large tree both land in a bucket of their own.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 4.0, 10))
}

/// What the latest backup of a repository that wrote a snapshot read, added and stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupFigures {
    /// File contents read from the sources.
    pub read: u64,
    /// Plaintext bytes new to the repository (data and trees).
    pub added: u64,
    /// Those bytes compressed and encrypted, as written to packs.
    pub stored: u64,
}

impl BackupFigures {
    /// Bytes read per new byte: how much deduplication spared the repository (1: nothing was
    /// already there). Undefined when nothing was read or nothing was new.
    pub fn dedup_ratio(&self) -> Option<f64> {
        (self.read > 0 && self.added > 0).then(|| self.read as f64 / self.added as f64)
    }

    /// New plaintext bytes per stored byte, as `queue history` computes it; undefined when
    /// nothing was stored.
    pub fn compression_ratio(&self) -> Option<f64> {
        (self.stored > 0).then(|| self.added as f64 / self.stored as f64)
    }
}

pub struct Observed {
    finished: Family<JobLabels, Counter>,
    retried: Family<KindLabels, Counter>,
    durations: Family<KindLabels, Histogram, fn() -> Histogram>,
    last_backups: Mutex<BTreeMap<String, BackupFigures>>,
    /// Events the task did not see because it fell behind the queue's broadcast.
    missed: Counter,
}

impl Default for Observed {
    fn default() -> Self {
        Self::new()
    }
}

impl Observed {
    /// Every kind and outcome starts at zero, so a first failure is an increase from 0 and
    /// not a series that appears from nowhere (which `increase()` cannot see).
    pub fn new() -> Self {
        let o = Self {
            finished: Family::default(),
            retried: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            last_backups: Mutex::new(BTreeMap::new()),
            missed: Counter::default(),
        };
        // Creating the series is the point; the handles returned are not needed.
        for kind in JobKind::NAMES {
            for outcome in OUTCOMES {
                o.finished.get_or_create_owned(&JobLabels {
                    kind: (*kind).to_owned(),
                    outcome: outcome.as_str().to_owned(),
                });
            }
            let kind = KindLabels {
                kind: (*kind).to_owned(),
            };
            o.retried.get_or_create_owned(&kind);
            o.durations.get_or_create_owned(&kind);
        }
        o
    }

    /// Takes in one queue event; `job` is the job as the queue holds it now (for its run time
    /// and result), `None` when it is no longer in the queue's memory.
    pub fn on_event(&self, event: &JobEvent, job: Option<&JobInfo>) {
        if event.progress.is_some() {
            return;
        }
        // Only the queue's own kinds: a label value outside them would be a new series.
        let Some(kind) = JobKind::NAMES.iter().find(|k| **k == event.kind) else {
            return;
        };
        let kind = (*kind).to_owned();
        match event.state {
            JobState::RetryWait => {
                self.retried.get_or_create(&KindLabels { kind }).inc();
            }
            state if state.is_final() => {
                self.finished
                    .get_or_create(&JobLabels {
                        kind: kind.clone(),
                        outcome: state.as_str().to_owned(),
                    })
                    .inc();
                let Some(job) = job.filter(|j| j.id == event.job && j.state == state) else {
                    return;
                };
                if let Some(seconds) = run_seconds(job) {
                    self.durations
                        .get_or_create(&KindLabels { kind })
                        .observe(seconds);
                }
                if let (JobState::Succeeded, Some(Response::Backup(b))) = (state, &job.result) {
                    // An unchanged backup wrote nothing: the figures of the last one that did
                    // still describe the repository's latest snapshot.
                    if !b.unchanged {
                        let repo = job
                            .kind
                            .repo()
                            .flatten()
                            .unwrap_or(crate::repo::registry::DEFAULT_NAME);
                        self.last_backups
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(
                                repo.to_owned(),
                                BackupFigures {
                                    read: b.stats.bytes_read,
                                    added: b.stats.bytes_added,
                                    stored: b.stats.bytes_stored,
                                },
                            );
                    }
                }
            }
            _ => {}
        }
    }

    /// The event task fell `n` events behind the broadcast; they are lost to the counters.
    pub fn missed(&self, n: u64) {
        self.missed.inc_by(n);
    }

    pub fn finished(&self) -> Family<JobLabels, Counter> {
        self.finished.clone()
    }

    pub fn retried(&self) -> Family<KindLabels, Counter> {
        self.retried.clone()
    }

    pub fn durations(&self) -> Family<KindLabels, Histogram, fn() -> Histogram> {
        self.durations.clone()
    }

    pub fn missed_events(&self) -> Counter {
        self.missed.clone()
    }

    /// The latest backup's figures per repository.
    pub fn last_backups(&self) -> BTreeMap<String, BackupFigures> {
        self.last_backups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Time spent running over all attempts, as `queue history` reports it; `None` for a job that
/// never ran (cancelled while queued).
fn run_seconds(job: &JobInfo) -> Option<f64> {
    let mut ran = false;
    let ns: i64 = job
        .attempts
        .iter()
        .filter_map(|a| {
            let end = a.finished_ns?;
            ran = true;
            Some(end.saturating_sub(a.started_ns).max(0))
        })
        .sum();
    ran.then(|| ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::job::{self, Ending, Limits};
    use backupd_common::error::{ErrorCode, ErrorReply};
    use backupd_common::protocol::{
        BackupRequest, BackupResult, JobSpec, NoopRequest, SnapshotStatsView,
    };
    use std::time::Duration;

    const SEC: i64 = 1_000_000_000;

    fn new_job(id: u64, kind: JobKind) -> JobInfo {
        job::new_job(
            id,
            JobSpec {
                kind,
                options: Default::default(),
            },
            0,
            0,
            Limits {
                timeout: Duration::from_secs(60),
                retries: 3,
                backoff: Duration::from_secs(1),
            },
        )
    }

    fn event(j: &JobInfo, from: JobState) -> JobEvent {
        JobEvent {
            seq: 1,
            time_ns: 0,
            job: j.id,
            kind: j.kind.name().to_owned(),
            priority: j.priority,
            from: Some(from),
            state: j.state,
            attempt: j.attempts.len() as u32,
            progress: None,
            error: None,
            snapshot: None,
            submitter_uid: 0,
        }
    }

    fn backup(repo: &str, read: u64, added: u64, stored: u64, unchanged: bool) -> JobInfo {
        let mut j = new_job(
            1,
            JobKind::Backup(BackupRequest {
                repo: Some(repo.into()),
                ..Default::default()
            }),
        );
        job::start(&mut j, 10 * SEC);
        let result = BackupResult {
            snapshot: "s".into(),
            parent: None,
            stats: SnapshotStatsView {
                bytes_read: read,
                bytes_added: added,
                bytes_stored: stored,
                ..Default::default()
            },
            dirs_scanned: 0,
            incremental: false,
            skipped: Vec::new(),
            unchanged,
        };
        job::finish(
            &mut j,
            Ending::Succeeded(Response::Backup(result)),
            13 * SEC,
            0.0,
            Duration::from_secs(60),
        );
        j
    }

    fn count(o: &Observed, kind: &str, outcome: &str) -> u64 {
        o.finished
            .get_or_create(&JobLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .get()
    }

    fn histogram(o: &Observed, kind: &str) -> (f64, u64) {
        let h = o.durations.get_or_create(&KindLabels { kind: kind.into() });
        (h.sum(), h.count())
    }

    #[test]
    fn every_kind_and_outcome_starts_at_zero() {
        let o = Observed::new();
        assert_eq!(o.finished.len(), JobKind::NAMES.len() * OUTCOMES.len());
        assert_eq!(o.durations.len(), JobKind::NAMES.len());
        assert_eq!(count(&o, "backup", "succeeded"), 0);
    }

    #[test]
    fn a_finished_backup_counts_its_run_time_and_its_repository_figures() {
        let o = Observed::new();
        let j = backup("offsite", 4000, 1000, 250, false);
        o.on_event(&event(&j, JobState::Running), Some(&j));
        assert_eq!(count(&o, "backup", "succeeded"), 1);
        assert_eq!(histogram(&o, "backup"), (3.0, 1));
        let figures = o.last_backups()["offsite"];
        assert_eq!(figures.dedup_ratio(), Some(4.0));
        assert_eq!(figures.compression_ratio(), Some(4.0));

        // An unchanged backup counts as a job but leaves the figures of the one before.
        let again = backup("offsite", 0, 0, 0, true);
        o.on_event(&event(&again, JobState::Running), Some(&again));
        assert_eq!(count(&o, "backup", "succeeded"), 2);
        assert_eq!(o.last_backups()["offsite"], figures);
    }

    #[test]
    fn retries_failures_and_cancellations_count_where_they_belong() {
        let o = Observed::new();
        let mut j = new_job(2, JobKind::Noop(NoopRequest::default()));
        job::start(&mut j, 0);
        let error = ErrorReply::new(ErrorCode::Unavailable, "boom".to_owned());
        job::finish(
            &mut j,
            Ending::Failed {
                error: error.clone(),
                retryable: true,
            },
            2 * SEC,
            0.0,
            Duration::from_secs(60),
        );
        assert_eq!(j.state, JobState::RetryWait);
        o.on_event(&event(&j, JobState::Running), Some(&j));
        let retried = o
            .retried
            .get_or_create(&KindLabels {
                kind: "noop".into(),
            })
            .get();
        assert_eq!(retried, 1);
        assert_eq!(histogram(&o, "noop").1, 0, "a retry is not a finished job");

        job::start(&mut j, 5 * SEC);
        job::finish(
            &mut j,
            Ending::Failed {
                error,
                retryable: false,
            },
            6 * SEC,
            0.0,
            Duration::from_secs(60),
        );
        assert_eq!(j.state, JobState::DeadLetter);
        o.on_event(&event(&j, JobState::Running), Some(&j));
        assert_eq!(count(&o, "noop", "dead-letter"), 1);
        // Both attempts' running time, not the wait between them.
        assert_eq!(histogram(&o, "noop"), (3.0, 1));

        // Cancelled before it ran: counted, but there is no run time to observe.
        let mut queued = new_job(3, JobKind::Noop(NoopRequest::default()));
        assert!(job::cancel_waiting(&mut queued, 0));
        o.on_event(&event(&queued, JobState::Queued), Some(&queued));
        assert_eq!(count(&o, "noop", "cancelled"), 1);
        assert_eq!(histogram(&o, "noop").1, 1);
    }

    #[test]
    fn progress_unknown_kinds_and_a_job_gone_from_memory_are_handled() {
        let o = Observed::new();
        let j = backup("default", 10, 10, 10, false);
        let mut progress = event(&j, JobState::Running);
        progress.progress = Some(Default::default());
        o.on_event(&progress, Some(&j));
        assert_eq!(
            count(&o, "backup", "succeeded"),
            0,
            "progress is not an end"
        );

        let mut strange = event(&j, JobState::Running);
        strange.kind = "not-a-kind".into();
        o.on_event(&strange, Some(&j));
        assert_eq!(o.finished.len(), JobKind::NAMES.len() * OUTCOMES.len());

        // The job was pruned from memory before the task read it: counted, nothing else.
        o.on_event(&event(&j, JobState::Running), None);
        assert_eq!(count(&o, "backup", "succeeded"), 1);
        assert_eq!(histogram(&o, "backup").1, 0);
        assert!(o.last_backups().is_empty());
    }

    #[test]
    fn ratios_are_undefined_rather_than_infinite_or_zero() {
        let none = BackupFigures::default();
        assert_eq!((none.dedup_ratio(), none.compression_ratio()), (None, None));
        let all_known = BackupFigures {
            read: 100,
            added: 0,
            stored: 0,
        };
        assert_eq!(all_known.dedup_ratio(), None);
    }
}
