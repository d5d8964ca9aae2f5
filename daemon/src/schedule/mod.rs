//! Operations that run themselves: scheduled backups of sources, each source's retention,
//! and every repository's prune and verification, all through the job queue at low priority.
//!
//! [`Timers`] holds one timer per task ([`plan::Task`]), derived afresh from the sources, the
//! repositories and `[maintenance]` at every wake-up (so `source set`, `repo add` and a reload
//! take effect without a restart), with its state in sled (tree `schedule`: when it last
//! fired, the job it submitted and how that ended, the read-data rotation). It wakes when the
//! next timer is due, and at least every [`TICK`] to settle the jobs it submitted and refresh
//! what `system health` reports ([`report`]).
//!
//! A scheduled backup asks the source's own task for a full scan, so that the source's rules
//! (one backup in flight, parents, back-off after failures) hold for it too.

pub mod plan;
pub mod report;

use crate::alerts::Alerts;
use crate::context::SettingsHandle;
use crate::queue::Queue;
use crate::repo::now_ns;
use crate::repo::registry::Registry;
use crate::state::records::{self, timer::TimerRecord};
use crate::state::{State, StateError};
use crate::watch::Sources;
use backupd_common::config::maintenance;
use backupd_common::protocol::{
    CheckRequest, DrillRequest, ForgetRequest, JobKind, JobOptions, JobSpec, JobState, Priority,
    PruneRequest, Response, SourceInfo, Subset,
};
use backupd_common::schedule::{Schedule, When};
use plan::{Task, Timer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TREE: &str = "schedule";
/// The longest the scheduler sleeps: how stale `system health`'s schedule figures may be.
pub const TICK: Duration = Duration::from_secs(15);

/// What the scheduler works with.
pub struct Handles {
    pub sources: Arc<Sources>,
    pub queue: Arc<Queue>,
    pub repos: Arc<Registry>,
    pub settings: SettingsHandle,
    pub alerts: Arc<Alerts>,
    /// Jobs are submitted as the daemon itself.
    pub daemon_uid: u32,
    /// Scheduled replications are timers too; replicas over their lag degrade health.
    pub replications: Arc<crate::replication::Replications>,
    /// Drills record their own outcome (and alert); the scheduler only fires them.
    pub drills: Arc<crate::recovery::drills::Drills>,
}

pub struct Timers {
    tree: sled::Tree,
    state: State,
    h: Handles,
    host: String,
    /// When this daemon started (ns): a watched source's scan at start covers the scheduled
    /// runs missed while it was down.
    started_ns: i64,
    wake: tokio::sync::Notify,
    /// What `system health` shows, refreshed at every wake-up.
    report: Mutex<report::Report>,
}

impl Timers {
    pub fn open(state: &State, handles: Handles) -> Result<Self, StateError> {
        Ok(Self {
            tree: state.tree(TREE)?,
            state: state.clone(),
            h: handles,
            host: crate::repo::hostname(),
            started_ns: now_ns(),
            wake: tokio::sync::Notify::new(),
            report: Mutex::new(report::Report::default()),
        })
    }

    /// Re-plans now (a source was added or changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `cancel` fires.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let me = self.clone();
            let sleep = match tokio::task::spawn_blocking(move || me.tick_blocking()).await {
                Ok(fired) => {
                    let mut sleep = TICK;
                    for (task, spec) in fired {
                        self.submit(&task, spec).await;
                        // Another may be due already (the next read-data subset is not).
                        sleep = Duration::from_millis(100);
                    }
                    sleep
                }
                Err(e) => {
                    tracing::error!(error = %e, "the scheduler's planning task failed");
                    TICK
                }
            };
            let next = self.report().next_due_ns;
            let until_next = next
                .map(|n| Duration::from_nanos(n.saturating_sub(now_ns()).max(0) as u64))
                .unwrap_or(TICK);
            let sleep = sleep.min(until_next).max(Duration::from_millis(100));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    fn report(&self) -> std::sync::MutexGuard<'_, report::Report> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The timers the configuration and the sources call for now.
    fn timers(&self, sources: &[SourceInfo]) -> Vec<Timer> {
        let settings = self.h.settings.get();
        let m = &settings.config.maintenance;
        let mut timers = Vec::new();
        for s in sources {
            let p = &s.spec.policy;
            let name = s.spec.name.clone();
            let when = match (&p.schedule, p.every) {
                (Some(text), _) => text
                    .parse::<Schedule>()
                    .ok()
                    .map(|s| When::Calendar(Box::new(s))),
                (None, Some(every)) => Some(When::Every(every)),
                (None, None) => None,
            };
            if let Some(when) = when {
                timers.push(Timer {
                    task: Task::Backup {
                        source: name.clone(),
                    },
                    when,
                    jitter: p.jitter,
                });
            }
            if let Ok(Some(when)) = maintenance::when(&m.drill) {
                timers.push(Timer {
                    task: Task::Drill {
                        source: name.clone(),
                    },
                    when,
                    jitter: m.jitter,
                });
            }
            if p.retention.rules().is_some() {
                timers.push(Timer {
                    task: Task::Retention { source: name },
                    when: When::Every(p.retention_every.unwrap_or(m.retention_every)),
                    jitter: Duration::ZERO,
                });
            }
        }
        let repos = self.h.repos.list().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the repositories to maintain");
            Vec::new()
        });
        for r in repos {
            for (text, task) in [
                (
                    &m.prune,
                    Task::Prune {
                        repo: r.name.clone(),
                    },
                ),
                (
                    &m.check,
                    Task::Check {
                        repo: r.name.clone(),
                    },
                ),
                (
                    &m.read_data,
                    Task::ReadData {
                        repo: r.name.clone(),
                    },
                ),
            ] {
                // Validated with the configuration; `off` is None.
                if let Ok(Some(when)) = maintenance::when(text) {
                    timers.push(Timer {
                        task,
                        when,
                        jitter: m.jitter,
                    });
                }
            }
        }
        for (to, when) in self.h.replications.timers() {
            timers.push(Timer {
                task: Task::Replicate { to },
                when,
                jitter: Duration::ZERO,
            });
        }
        timers
    }

    fn record(&self, key: &str, now: i64) -> TimerRecord {
        match self.tree.get(key.as_bytes()) {
            Ok(Some(bytes)) => match records::decode::<TimerRecord>(&bytes) {
                Ok(r) => return r,
                Err(e) => {
                    tracing::warn!(timer = key, error = %e, "timer record unreadable; starting it afresh")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(timer = key, error = %e, "cannot read a timer record"),
        }
        let mut fresh = TimerRecord {
            created_ns: now,
            ..Default::default()
        };
        self.put(key, &mut fresh);
        fresh
    }

    fn put(&self, key: &str, record: &mut TimerRecord) {
        let bytes = records::encode(record);
        if let Err(e) = self
            .tree
            .insert(key.as_bytes(), bytes)
            .and_then(|_| self.tree.flush())
        {
            tracing::error!(timer = key, error = %e, path = %self.state.path().display(), "cannot save a timer's state");
        }
    }

    /// Settles finished jobs, decides what fires now and refreshes the report. Blocking
    /// (sled, history, snapshot listings). Returns the jobs to submit.
    fn tick_blocking(&self) -> Vec<(Task, JobKind)> {
        let now = now_ns();
        let sources = self.h.sources.list();
        let timers = self.timers(&sources);
        let mut fire = Vec::new();
        let mut states = Vec::new();
        for t in timers {
            let key = t.task.key();
            let mut rec = self.record(&key, now);
            self.settle(&t.task, &key, &mut rec);
            let busy = rec.last_job.is_some() && rec.last_outcome.is_none();
            let due = plan::due_ns(&t, &self.host, rec.last_run_ns, rec.created_ns);
            if due.is_some_and(|d| d <= now) && !busy {
                if let Some(kind) = self.fire(&t.task, &key, &mut rec, &sources, now) {
                    fire.push((t.task.clone(), kind));
                }
            }
            let due = plan::due_ns(&t, &self.host, rec.last_run_ns, rec.created_ns);
            states.push(report::TimerView {
                timer: t,
                record: rec,
                due_ns: due,
            });
        }
        let seen: BTreeMap<String, i64> = sources
            .iter()
            .map(|s| {
                let key = format!("source/{}", s.spec.name);
                (s.spec.name.clone(), self.record(&key, now).created_ns)
            })
            .collect();
        let previous = self.report().clone();
        // Also at once after a new snapshot: the RTO estimate is of the newest one.
        let count = previous.counted_ns.is_none_or(|t| {
            now - t > COUNT_EVERY_NS || sources.iter().any(|s| s.last_snapshot_ns > Some(t))
        });
        let report = report::build(&self.h, &sources, &states, &seen, now, count, &previous);
        *self.report() = report;
        fire
    }

    /// Records how the job a timer submitted ended, once it has; a failed maintenance job
    /// raises an alert (`system health` is degraded until the next run succeeds).
    fn settle(&self, task: &Task, key: &str, rec: &mut TimerRecord) {
        let Some(id) = rec.last_job.filter(|_| rec.last_outcome.is_none()) else {
            return;
        };
        let Some(job) = self.h.queue.job(id) else {
            rec.last_outcome = Some("gone".into());
            self.put(key, rec);
            return;
        };
        if !job.state.is_final() {
            return;
        }
        let failure = match (&job.state, &job.result) {
            // The drill raised its own alert (a manual drill does too); the timer says so.
            (JobState::Succeeded, Some(Response::Drill(d))) if !d.ok => {
                rec.last_outcome = Some("problems".into());
                rec.last_error = Some(format!(
                    "{} found {} mismatch(es)",
                    task.describe(),
                    d.mismatches.len()
                ));
                self.put(key, rec);
                return;
            }
            (JobState::Succeeded, Some(Response::Check(c))) if !c.problems.is_empty() => {
                Some(format!(
                    "{} found {} problem{}: {}",
                    task.describe(),
                    c.problems.len(),
                    if c.problems.len() == 1 { "" } else { "s" },
                    c.problems[0].message
                ))
            }
            (JobState::Succeeded, _) => None,
            (state, _) => Some(format!(
                "{} (job {id}) ended {}: {}",
                task.describe(),
                state.as_str(),
                job.error
                    .as_ref()
                    .map_or("no error recorded", |e| e.message.as_str())
            )),
        };
        rec.last_outcome = Some(match &failure {
            Some(_) if job.state == JobState::Succeeded => "problems".to_owned(),
            _ => job.state.as_str().to_owned(),
        });
        rec.last_error = failure.clone();
        self.put(key, rec);
        let alert_key = format!("schedule:{key}");
        match failure {
            Some(message) => {
                if self.h.alerts.raise(&alert_key, message.clone()) {
                    tracing::error!(timer = key, job = id, "{message}");
                }
            }
            None => self.h.alerts.clear(&alert_key),
        }
    }

    /// What firing `task` does now: the job to submit, or `None` when there is nothing to do
    /// (a scan asked of the source, no new snapshot to apply retention to) or it must wait
    /// (prune while a backup of the repository is queued or running).
    fn fire(
        &self,
        task: &Task,
        key: &str,
        rec: &mut TimerRecord,
        sources: &[SourceInfo],
        now: i64,
    ) -> Option<JobKind> {
        let settings = self.h.settings.get();
        let kind = match task {
            Task::Backup { source } => {
                let watched = sources
                    .iter()
                    .any(|s| &s.spec.name == source && s.spec.watch);
                let missed_while_down = rec.last_run_ns.is_some_and(|t| t < self.started_ns);
                // A watched source scans when it starts: that scan is the catch-up run.
                let asked = !(watched && missed_while_down) && self.h.sources.scan_now(source);
                tracing::info!(source = %source, asked, "scheduled backup due");
                rec.last_run_ns = Some(now);
                rec.last_job = None;
                rec.last_outcome = Some(
                    if asked {
                        "requested"
                    } else {
                        "source not running"
                    }
                    .into(),
                );
                rec.last_error = None;
                self.put(key, rec);
                return None;
            }
            Task::Retention { source } => {
                let spec = &sources.iter().find(|s| &s.spec.name == source)?.spec;
                let rules = spec.policy.retention.rules()?;
                let newest = report::last_backup(&self.h.queue, source, true).map(|b| b.0);
                let fresh = newest.is_some_and(|t| rec.last_run_ns.is_none_or(|last| t > last));
                rec.last_run_ns = Some(now);
                if !fresh {
                    rec.last_job = None;
                    rec.last_outcome = Some("nothing new".into());
                    rec.last_error = None;
                    self.put(key, rec);
                    return None;
                }
                let repo = self.h.repos.entry(spec.repo.as_deref()).ok()?.name;
                JobKind::Forget(ForgetRequest {
                    repo: Some(repo),
                    keep_last: rules.last,
                    keep_hourly: rules.hourly,
                    keep_daily: rules.daily,
                    keep_weekly: rules.weekly,
                    keep_monthly: rules.monthly,
                    keep_yearly: rules.yearly,
                    keep_within: rules.within,
                    paths: vec![spec.path.clone()],
                    source: Some(source.clone()),
                    ..Default::default()
                })
            }
            Task::Prune { repo } => {
                let busy = self.h.queue.unfinished().iter().any(|j| {
                    matches!(&j.kind, JobKind::Backup(_))
                        && j.kind.repo() == Some(Some(repo.as_str()))
                });
                if busy {
                    tracing::debug!(repo = %repo, "scheduled prune waits for the repository's backups");
                    return None;
                }
                rec.last_run_ns = Some(now);
                prune_job(repo)
            }
            Task::Check { repo } => {
                rec.last_run_ns = Some(now);
                JobKind::Check(CheckRequest {
                    repo: Some(repo.clone()),
                    ..Default::default()
                })
            }
            Task::Replicate { to } => {
                rec.last_run_ns = Some(now);
                match self.h.replications.job(to) {
                    Ok(kind) => kind,
                    Err(e) => {
                        tracing::warn!(replica = %to, error = %e, "scheduled replication skipped");
                        return None;
                    }
                }
            }
            Task::Drill { source } => {
                let spec = &sources.iter().find(|s| &s.spec.name == source)?.spec;
                let repo = self.h.repos.entry(spec.repo.as_deref()).ok()?.name;
                rec.last_run_ns = Some(now);
                JobKind::Drill(DrillRequest {
                    repo: Some(repo),
                    source: Some(source.clone()),
                    sample_percent: Some(settings.config.maintenance.drill_sample_percent()),
                })
            }
            Task::ReadData { repo } => {
                let subset =
                    plan::subset(rec.position, settings.config.maintenance.read_data_subsets);
                rec.position += 1;
                rec.last_run_ns = Some(now);
                read_data_job(repo, subset)
            }
        };
        rec.last_job = None;
        rec.last_outcome = Some("submitting".into());
        rec.last_error = None;
        self.put(key, rec);
        Some(kind)
    }

    /// Queues a timer's job at low priority and records it.
    async fn submit(&self, task: &Task, kind: JobKind) {
        let key = task.key();
        let spec = JobSpec {
            kind,
            options: JobOptions {
                priority: Priority::Low,
                ..Default::default()
            },
        };
        let q = self.h.settings.get().config.queue.clone();
        let result = self
            .h
            .queue
            .submit_internal(spec, self.h.daemon_uid, &q)
            .await;
        let mut rec = self.record(&key, now_ns());
        match result {
            Ok(s) => {
                tracing::info!(job = s.id, "{} queued", task.describe());
                if let Task::Replicate { to } = task {
                    self.h.replications.queued(to, s.id);
                }
                rec.last_job = Some(s.id);
                rec.last_outcome = None;
            }
            Err(e) => {
                let message = format!("{} could not be queued: {e}", task.describe());
                tracing::error!("{message}");
                rec.last_outcome = Some("not-queued".into());
                rec.last_error = Some(message.clone());
                self.h.alerts.raise(&format!("schedule:{key}"), message);
            }
        }
        self.put(&key, &mut rec);
    }

    /// When a source's next scheduled backup is due, for `source list`.
    pub fn next_backup_ns(&self, source: &str) -> Option<i64> {
        self.report().next_backup.get(source).copied()
    }

    /// When a source's retention runs next, for `source show`.
    pub fn health_next_retention(&self, source: &str) -> Option<i64> {
        self.report().next_retention.get(source).copied()
    }

    /// The per-source and per-repository sections of `system health`, and the notes that
    /// make it degraded.
    pub fn health(&self) -> report::Report {
        self.report().clone()
    }
}

/// Snapshot counts per source are refreshed this often (they list the repository).
const COUNT_EVERY_NS: i64 = 60 * 1_000_000_000;

/// The scheduled prune job of a repository: deletes what no snapshot needs and compacts
/// the index.
fn prune_job(repo: &str) -> JobKind {
    JobKind::Prune(PruneRequest {
        repo: Some(repo.to_owned()),
        compact_only: false,
    })
}

/// The scheduled read-data check of one subset of a repository's packs.
fn read_data_job(repo: &str, subset: (u32, u32)) -> JobKind {
    JobKind::Check(CheckRequest {
        repo: Some(repo.to_owned()),
        read_data_percent: 0,
        read_data_subset: Some(Subset {
            index: subset.0,
            count: subset.1,
        }),
    })
}
