//! Replications: which repository is copied into which replica, when, and how far each replica
//! is behind. Owns sled tree `replications` (one versioned record per replica, key: its name).
//! The copying itself is the `replicate` job (`ops::replicate`, `engine::replicate`).
//!
//! Spawns one task ([`follow_backups`]) that queues a replication after every successful
//! backup into its source when it is `--after-each-snapshot`; it stops with its token.
//! Scheduled and interval replications are timers of the scheduler (`schedule`). Blocking API:
//! callers run it off the async workers.

use crate::error::Error;
use crate::queue::Queue;
use crate::repo::now_ns;
use crate::repo::registry::Registry;
use crate::state::records::replication::{ReplicationRecord, TriggerRecord};
use crate::state::records::{self};
use crate::state::{State, StateError};
use backupd_common::protocol::{
    JobKind, JobOptions, JobSpec, JobState, Priority, ReplicaTrigger, ReplicateRequest,
    ReplicationInfo, ReplicationSpec,
};
use backupd_common::schedule::{Schedule, When};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

const TREE: &str = "replications";
/// The allowed lag when neither `--max-lag` nor an interval says otherwise.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(24 * 3600);

/// Why a replication request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("no replication into {to} (see `backupctl repo replicate list`)")]
    NotFound { to: String },
    #[error("invalid replication: {0}")]
    Invalid(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot store the replication: {0}")]
    Sled(#[from] sled::Error),
}

pub struct Replications {
    tree: sled::Tree,
    repos: Arc<Registry>,
}

impl Replications {
    pub fn open(state: &State, repos: Arc<Registry>) -> Result<Self, StateError> {
        Ok(Self {
            tree: state.tree(TREE)?,
            repos,
        })
    }

    /// Stores `spec`, replacing the replication into the same replica. Both repositories must
    /// open and the target must be a replica of the source.
    pub fn add(&self, spec: ReplicationSpec) -> Result<ReplicationInfo, Error> {
        if spec.from == spec.to {
            return Err(ReplicationError::Invalid(format!(
                "{} cannot replicate into itself",
                spec.from
            ))
            .into());
        }
        if let ReplicaTrigger::Schedule(text) = &spec.trigger {
            text.parse::<Schedule>()
                .map_err(|e| ReplicationError::Invalid(e.to_string()))?;
        }
        let (from, source) = self.repos.open(Some(&spec.from))?;
        let (to, replica) = self.repos.open(Some(&spec.to))?;
        if !crate::engine::replicate::is_replica_of(&replica, &source) {
            return Err(ReplicationError::Invalid(format!(
                "{} is not a replica of {}: its blob-id key or chunker differs; create it with \
                 `backupctl repo init --name {} --location DIR --replica-of {}`",
                to.name, from.name, to.name, from.name
            ))
            .into());
        }
        let spec = ReplicationSpec {
            from: from.name,
            to: to.name,
            ..spec
        };
        let mut record = ReplicationRecord::new(spec, now_ns());
        if let Some(old) = self.get(&record.to)? {
            record.created_ns = old.created_ns;
            record.last_run_ns = old.last_run_ns;
            record.last_success_ns = old.last_success_ns;
        }
        self.put(&mut record)?;
        Ok(self.info(&record))
    }

    /// Removes the replication into `to`; the replica and its data stay.
    pub fn remove(&self, to: &str) -> Result<ReplicationInfo, Error> {
        let record = self
            .get(to)?
            .ok_or_else(|| ReplicationError::NotFound { to: to.to_owned() })?;
        let info = self.info(&record);
        self.tree
            .remove(to.as_bytes())
            .map_err(ReplicationError::from)?;
        self.tree.flush().map_err(ReplicationError::from)?;
        Ok(info)
    }

    pub fn get(&self, to: &str) -> Result<Option<ReplicationRecord>, ReplicationError> {
        match self.tree.get(to.as_bytes())? {
            Some(bytes) => Ok(records::decode(&bytes)
                .map_err(|e| {
                    tracing::warn!(replica = to, error = %e, "replication record unreadable");
                })
                .ok()),
            None => Ok(None),
        }
    }

    pub fn records(&self) -> Vec<ReplicationRecord> {
        self.tree
            .iter()
            .filter_map(|kv| kv.ok())
            .filter_map(|(_, v)| records::decode(&v).ok())
            .collect()
    }

    fn put(&self, record: &mut ReplicationRecord) -> Result<(), ReplicationError> {
        let bytes = records::encode(record);
        self.tree.insert(record.to.as_bytes(), bytes)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Every replication with its lag.
    pub fn list(&self) -> Vec<ReplicationInfo> {
        self.records().iter().map(|r| self.info(r)).collect()
    }

    /// The job that runs the replication into `to` now.
    pub fn job(&self, to: &str) -> Result<JobKind, Error> {
        let r = self
            .get(to)?
            .ok_or_else(|| ReplicationError::NotFound { to: to.to_owned() })?;
        Ok(job_of(&r))
    }

    /// The jobs a successful backup into `repo` sets off.
    pub fn after_backup(&self, repo: &str) -> Vec<JobKind> {
        self.records()
            .iter()
            .filter(|r| r.from == repo && r.trigger == TriggerRecord::AfterEachSnapshot)
            .map(job_of)
            .collect()
    }

    /// Notes that a job into `to` was queued.
    pub fn queued(&self, to: &str, job: u64) {
        self.update(to, |r| {
            r.last_run_ns = Some(now_ns());
            r.last_job = Some(job);
        });
    }

    /// Notes how a run into `to` ended (called by the job itself).
    pub fn finished(&self, to: &str, error: Option<String>) {
        self.update(to, |r| {
            if error.is_none() {
                r.last_success_ns = Some(now_ns());
            }
            r.last_error = error.clone();
        });
    }

    fn update(&self, to: &str, f: impl FnOnce(&mut ReplicationRecord)) {
        match self.get(to) {
            Ok(Some(mut r)) => {
                f(&mut r);
                if let Err(e) = self.put(&mut r) {
                    tracing::warn!(replica = to, error = %e, "cannot save a replication's state");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(replica = to, error = %e, "cannot read a replication"),
        }
    }

    /// The timers the scheduler keeps for scheduled and interval replications.
    pub fn timers(&self) -> Vec<(String, When)> {
        self.records()
            .into_iter()
            .filter_map(|r| {
                let when = match &r.trigger {
                    TriggerRecord::Schedule { text } => {
                        When::Calendar(Box::new(text.parse::<Schedule>().ok()?))
                    }
                    TriggerRecord::Every { ms } => When::Every(Duration::from_millis(*ms)),
                    _ => return None,
                };
                Some((r.to, when))
            })
            .collect()
    }

    /// The replication as `repo replicate list` shows it, with its lag read now (blocking:
    /// both repositories' snapshot catalogs).
    pub fn info(&self, r: &ReplicationRecord) -> ReplicationInfo {
        let max_lag = max_lag(r);
        let now = now_ns();
        let lag = self.lag(r, now);
        let over_lag = lag.is_some_and(|(_, age)| age > max_lag);
        ReplicationInfo {
            spec: r.spec(),
            max_lag,
            created_ns: r.created_ns,
            last_run_ns: r.last_run_ns,
            last_success_ns: r.last_success_ns,
            last_job: r.last_job,
            last_error: r.last_error.clone(),
            snapshots_behind: lag.map(|(n, _)| n),
            lag: lag.map(|(_, age)| age),
            over_lag,
        }
    }

    /// Snapshots of the source the replica lacks, and the age of the oldest of them.
    fn lag(&self, r: &ReplicationRecord, now: i64) -> Option<(u64, Duration)> {
        let (_, source) = self.repos.open(Some(&r.from)).ok()?;
        let (_, replica) = self.repos.open(Some(&r.to)).ok()?;
        let held: HashSet<_> = replica.snapshot_ids().ok()?.into_iter().collect();
        let missing: Vec<i64> = source
            .snapshot_headers()
            .ok()?
            .into_iter()
            .filter(|(id, _)| !held.contains(id))
            .map(|(_, h)| h.time_ns)
            .collect();
        let oldest = missing.iter().min().copied();
        let age = oldest.map_or(Duration::ZERO, |t| {
            Duration::from_nanos(now.saturating_sub(t).max(0) as u64)
        });
        Some((missing.len() as u64, age))
    }

    /// Why `system health` is degraded: replicas over their allowed lag.
    pub fn health_notes(&self) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|i| i.over_lag)
            .map(|i| {
                format!(
                    "replica {} is {} snapshot{} behind {} ({} old, its allowed lag is {}){}",
                    i.spec.to,
                    i.snapshots_behind.unwrap_or(0),
                    if i.snapshots_behind == Some(1) {
                        ""
                    } else {
                        "s"
                    },
                    i.spec.from,
                    humantime::format_duration(Duration::from_secs(
                        i.lag.unwrap_or_default().as_secs()
                    )),
                    humantime::format_duration(i.max_lag),
                    i.last_error
                        .map(|e| format!("; the last run failed: {e}"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }
}

/// The allowed lag: `--max-lag`, else twice the interval or the schedule's period, else 24 h.
pub fn max_lag(r: &ReplicationRecord) -> Duration {
    if let Some(ms) = r.max_lag_ms {
        return Duration::from_millis(ms);
    }
    match &r.trigger {
        TriggerRecord::Every { ms } => Duration::from_millis(ms.saturating_mul(2)),
        TriggerRecord::Schedule { text } => text
            .parse::<Schedule>()
            .ok()
            .and_then(|s| {
                let a = s.next_after(now_ns())?;
                let b = s.next_after(a)?;
                Some(Duration::from_nanos((b - a).max(0) as u64 * 2))
            })
            .unwrap_or(DEFAULT_MAX_LAG),
        _ => DEFAULT_MAX_LAG,
    }
}

fn job_of(r: &ReplicationRecord) -> JobKind {
    JobKind::Replicate(ReplicateRequest {
        repo: Some(r.to.clone()),
        from: r.from.clone(),
        verify: r.verify,
        mirror_forget: r.mirror_forget,
        bwlimit: r.bwlimit,
    })
}

/// Queues the replications set off by each successful backup (coalescing: one queued job per
/// replica however many backups finish meanwhile). Runs until `cancel` fires.
pub async fn follow_backups(
    replications: Arc<Replications>,
    queue: Arc<Queue>,
    daemon_uid: u32,
    queue_config: impl Fn() -> backupd_common::config::QueueConfig,
    cancel: CancellationToken,
) {
    let mut events = queue.subscribe();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "replication fell behind the job events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if event.state != JobState::Succeeded || event.progress.is_some() {
            continue;
        }
        let Some(job) = queue.job(event.job) else {
            continue;
        };
        let JobKind::Backup(b) = &job.kind else {
            continue;
        };
        let Some(repo) = b.repo.clone() else {
            continue;
        };
        let r = replications.clone();
        let jobs = match tokio::task::spawn_blocking(move || r.after_backup(&repo)).await {
            Ok(jobs) => jobs,
            Err(_) => continue,
        };
        for kind in jobs {
            let to = kind.repo().flatten().unwrap_or_default().to_owned();
            let spec = JobSpec {
                kind,
                options: JobOptions {
                    priority: Priority::Low,
                    ..Default::default()
                },
            };
            match queue
                .submit_internal(spec, daemon_uid, &queue_config())
                .await
            {
                Ok(s) => {
                    tracing::info!(job = s.id, replica = %to, "replication queued after a backup");
                    let r = replications.clone();
                    let _ = tokio::task::spawn_blocking(move || r.queued(&to, s.id)).await;
                }
                Err(e) => tracing::error!(replica = %to, error = %e, "cannot queue a replication"),
            }
        }
    }
}
