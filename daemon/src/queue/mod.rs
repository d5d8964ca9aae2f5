//! The job queue: every long piece of work (backup, restore, check, forget, rebuild-index) runs
//! as a job; what each kind is and does lives in [`crate::ops`]. Jobs are persisted in sled at every transition ([`store`]), picked by priority with
//! aging and repository conflicts ([`pick`]), run by a bounded number of workers ([`worker`]),
//! retried with backoff or sent to the dead-letter queue ([`job`]), and every transition is
//! broadcast as an event.
//!
//! Locking: one `std::sync::Mutex` over the in-memory jobs, never held across an `.await`.
//! Events are sent while it is held, so their order is the order of the transitions. A change is
//! flushed to disk before any reply acknowledges it.

pub mod clock;
pub mod job;
pub mod joblog;
pub mod limit;
pub mod pick;
pub mod store;
pub mod worker;

use crate::engine::progress::Progress;
use crate::error::Error;
use crate::repo::now_ns;
use crate::state::{State, StateError};
use backupd_common::config::{HistoryConfig, QueueConfig};
use backupd_common::protocol::{
    ActingUser, HistoryEntry, HistoryQuery, JobEvent, JobId, JobInfo, JobSpec, JobState,
    OperationProgress, QueueStatus, StateCount, Submitted,
};
pub use clock::Clock;
use job::{Limits, StopReason};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use store::Store;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

/// Events kept for `events` without `--follow` and for followers that start late.
const RECENT_EVENTS: usize = 1000;
/// Waiting jobs listed by `queue status`.
const STATUS_NEXT: usize = 20;
/// How long `queue cancel` waits for a running job to reach its safe point.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

pub struct Queue {
    inner: Mutex<Inner>,
    clock: Clock,
    store: Store,
    /// Wakes the scheduler: a job was queued or finished, workers changed.
    wake: Notify,
    events: broadcast::Sender<JobEvent>,
}

struct Inner {
    jobs: BTreeMap<JobId, JobInfo>,
    running: HashMap<JobId, Running>,
    next_id: JobId,
    workers: u32,
    /// The tuner's limit on `workers` under CPU pressure (`None`: no limit).
    worker_cap: Option<u32>,
    /// False once the daemon stops: nothing new starts.
    accepting: bool,
    seq: u64,
    recent: VecDeque<JobEvent>,
    limiter: limit::RateLimiter,
}

impl Inner {
    fn effective_workers(&self) -> u32 {
        self.worker_cap
            .map_or(self.workers, |cap| self.workers.min(cap))
    }
}

/// A job being run by a worker.
struct Running {
    cancel: CancellationToken,
    progress: Arc<Progress>,
    /// Why it was stopped from outside; the first reason wins.
    stop: Arc<OnceLock<StopReason>>,
    claim: Option<crate::ops::Claim>,
    started: Instant,
}

impl Running {
    fn sample(&self) -> OperationProgress {
        sample(&self.progress, self.started)
    }
}

pub fn sample(progress: &Progress, started: Instant) -> OperationProgress {
    let s = progress.sample();
    OperationProgress {
        files_done: s.files_done,
        bytes_done: s.bytes_done,
        files_total: s.files_total,
        bytes_total: s.bytes_total,
        errors: s.errors,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// The limits of a job whose kind's timeout key is `timeout_key`.
pub fn limits(q: &QueueConfig, timeout_key: &str) -> Limits {
    Limits {
        timeout: q.timeouts.get(timeout_key).unwrap_or(q.timeout),
        retries: q.retries,
        backoff: q.backoff,
    }
}

impl Queue {
    /// Loads the persisted jobs. Jobs that were running when the daemon died are queued again
    /// with their attempts kept, or sent to the dead-letter queue when they were running at
    /// `queue.max_crashes` deaths in a row; queued jobs keep their order. Blocking.
    pub fn open(state: &State, q: &QueueConfig) -> Result<Self, StateError> {
        let store = Store::open(state)?;
        let (loaded, next_id) = store.load()?;
        let now = now_ns();
        let mut jobs = BTreeMap::new();
        let mut recovered = 0;
        for mut j in loaded {
            if job::recover(&mut j, now, q.max_crashes) {
                store.put(&j)?;
                recovered += 1;
            }
            jobs.insert(j.id, j);
        }
        let (events, _) = broadcast::channel(4096);
        let queue = Self {
            inner: Mutex::new(Inner {
                jobs,
                running: HashMap::new(),
                next_id,
                workers: q.workers,
                worker_cap: None,
                accepting: true,
                seq: 0,
                recent: VecDeque::new(),
                limiter: limit::RateLimiter::default(),
            }),
            store,
            clock: Clock::wall(),
            wake: Notify::new(),
            events,
        };
        let removed = queue.prune_history(&mut queue.lock(), q, now);
        state.flush_blocking()?;
        let inner = queue.lock();
        tracing::info!(
            jobs = inner.jobs.len(),
            queued = inner.jobs.values().filter(|j| !j.state.is_final()).count(),
            requeued_after_interruption = recovered,
            history_pruned = removed,
            "job queue loaded"
        );
        drop(inner);
        Ok(queue)
    }

    /// Calls `hook` with every job that reaches a final state, inside the transition (so it
    /// must be quick and must not call back into the queue).
    pub fn on_finished(&self, hook: store::FinishedHook) {
        self.store.on_finished(hook);
    }

    /// Calls `f` with every backup in the job history, oldest first. Blocking.
    pub fn each_backup(
        &self,
        f: impl FnMut(&crate::state::records::history::HistoryRecord),
    ) -> Result<u64, StateError> {
        self.store.each_backup(f)
    }

    /// The same queue reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every change so far durable.
    pub async fn flush(&self) -> Result<(), Error> {
        Ok(self.store.flush().await?)
    }

    /// Records a transition (or progress) of `job` and broadcasts it. Called with the lock held,
    /// so events are in transition order.
    fn emit(
        &self,
        inner: &mut Inner,
        job: &JobInfo,
        from: Option<JobState>,
        progress: Option<OperationProgress>,
    ) {
        inner.seq += 1;
        let snapshot = match (&progress, job.state, &job.result) {
            (None, JobState::Succeeded, Some(backupd_common::protocol::Response::Backup(r))) => {
                Some(r.snapshot.clone())
            }
            _ => None,
        };
        let event = JobEvent {
            seq: inner.seq,
            time_ns: self.clock.now(),
            job: job.id,
            kind: job.kind.name().to_owned(),
            priority: job.priority,
            from,
            state: job.state,
            attempt: job.attempts.len() as u32,
            progress,
            // The error that caused this transition, not a stale one from an earlier attempt.
            error: match (progress, job.state) {
                (None, JobState::RetryWait | JobState::DeadLetter | JobState::TimedOut) => {
                    job.error.as_ref().map(|e| e.message.clone())
                }
                _ => None,
            },
            snapshot,
            submitter_uid: job.submitter_uid,
        };
        if inner.recent.len() == RECENT_EVENTS {
            inner.recent.pop_front();
        }
        inner.recent.push_back(event.clone());
        // No receivers is fine: nobody is following.
        let _ = self.events.send(event);
    }

    /// Queues a job (or merges it into an equal queued backup) and makes it durable. Callers
    /// over `uid`'s submission rate get `RateLimited`.
    /// `acts_as`: whose file-system rights the job runs with (the server decides it from the
    /// submitter's permissions; see [`JobInfo::acts_as`]).
    pub async fn submit(
        &self,
        spec: JobSpec,
        uid: u32,
        acts_as: Option<ActingUser>,
        q: &QueueConfig,
    ) -> Result<Submitted, Error> {
        self.submit_as(spec, uid, acts_as, q, true).await
    }

    /// Queues a job the daemon itself decided on (a watched source's backup): not rate limited.
    pub async fn submit_internal(
        &self,
        spec: JobSpec,
        uid: u32,
        q: &QueueConfig,
    ) -> Result<Submitted, Error> {
        self.submit_as(spec, uid, None, q, false).await
    }

    async fn submit_as(
        &self,
        spec: JobSpec,
        uid: u32,
        acts_as: Option<ActingUser>,
        q: &QueueConfig,
        limited: bool,
    ) -> Result<Submitted, Error> {
        let submitted = {
            let mut inner = self.lock();
            let taken = if limited {
                inner
                    .limiter
                    .take(uid, Instant::now(), q.submit_rate, q.submit_burst)
            } else {
                Ok(())
            };
            if let Err(wait) = taken {
                return Err(Error::RateLimited {
                    uid,
                    retry_after: wait,
                });
            }
            // Only kinds that coalesce need to look through every job.
            let existing = if crate::ops::coalesces(&spec.kind) {
                inner
                    .jobs
                    .values()
                    .find(|j| job::coalesces(j, &spec.kind, acts_as))
                    .map(|j| j.id)
            } else {
                None
            };
            if let Some(id) = existing {
                let Some(j) = inner.jobs.get_mut(&id) else {
                    return Err(Error::JobNotFound { id });
                };
                j.coalesced += 1;
                j.priority = j.priority.min(spec.options.priority);
                self.store.put(j)?;
                tracing::info!(job = id, "submission merged into an equal queued backup");
                Submitted {
                    id,
                    coalesced: true,
                    state: j.state,
                }
            } else {
                let id = inner.next_id;
                let limits = limits(q, crate::ops::timeout_key(&spec.kind));
                let mut j = job::new_job(id, spec, uid, self.clock.now(), limits);
                j.acts_as = acts_as;
                self.store.put(&j)?;
                self.store.set_next_id(id + 1)?;
                inner.next_id = id + 1;
                self.emit(&mut inner, &j, None, None);
                tracing::info!(
                    job = id,
                    kind = j.kind.name(),
                    priority = j.priority.as_str(),
                    uid,
                    "job queued"
                );
                inner.jobs.insert(id, j);
                Submitted {
                    id,
                    coalesced: false,
                    state: JobState::Queued,
                }
            }
        };
        self.flush().await?;
        self.wake.notify_one();
        Ok(submitted)
    }

    /// A job with its live progress if it is running.
    pub fn job(&self, id: JobId) -> Option<JobInfo> {
        let inner = self.lock();
        let mut j = inner.jobs.get(&id)?.clone();
        if let Some(r) = inner.running.get(&id) {
            j.progress = Some(r.sample());
            joblog::append(&mut j.log, joblog::peek(id));
        }
        Some(j)
    }

    /// Progress of a running job.
    pub fn progress(&self, id: JobId) -> Option<OperationProgress> {
        self.lock().running.get(&id).map(Running::sample)
    }

    pub fn status(&self, q: &QueueConfig) -> QueueStatus {
        let inner = self.lock();
        let mut counts: BTreeMap<(usize, u32), u64> = BTreeMap::new();
        for j in inner.jobs.values() {
            let state = JobState::ALL
                .iter()
                .position(|s| *s == j.state)
                .unwrap_or(0);
            *counts.entry((state, j.priority.rank())).or_default() += 1;
        }
        let counts = counts
            .into_iter()
            .map(|((s, p), count)| StateCount {
                state: JobState::ALL[s],
                priority: backupd_common::protocol::Priority::ALL[p as usize],
                count,
            })
            .collect();
        let mut running: Vec<JobInfo> = inner
            .running
            .iter()
            .filter_map(|(id, r)| {
                let mut j = inner.jobs.get(id)?.clone();
                j.progress = Some(r.sample());
                Some(j)
            })
            .collect();
        running.sort_by_key(|j| j.id);
        let next = pick::order(inner.jobs.values(), self.clock.now(), q.aging)
            .into_iter()
            .take(STATUS_NEXT)
            .cloned()
            .collect();
        QueueStatus {
            workers: inner.workers,
            counts,
            running,
            next,
        }
    }

    /// Finished jobs from the job history, newest first (blocking: a sled range scan).
    pub fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, Error> {
        Ok(self.store.history(query, now_ns())?)
    }

    /// Applies the `[history]` retention, at start and after a reload.
    pub fn set_history_retention(&self, config: &HistoryConfig) -> Result<u64, Error> {
        Ok(self.store.set_history_retention(config, now_ns())?)
    }

    /// Jobs not in a final state (queued, running, waiting to retry).
    pub fn unfinished(&self) -> Vec<JobInfo> {
        self.lock()
            .jobs
            .values()
            .filter(|j| !j.state.is_final())
            .cloned()
            .collect()
    }

    pub fn dead_letters(&self) -> Vec<JobInfo> {
        self.lock()
            .jobs
            .values()
            .filter(|j| j.state == JobState::DeadLetter)
            .cloned()
            .collect()
    }

    /// How many jobs are in the dead-letter queue, without copying them.
    pub fn dead_letter_count(&self) -> u64 {
        self.lock()
            .jobs
            .values()
            .filter(|j| j.state == JobState::DeadLetter)
            .count() as u64
    }

    pub async fn retry_dead_letter(&self, id: JobId) -> Result<JobInfo, Error> {
        let job = {
            let mut inner = self.lock();
            let Some(mut j) = inner.jobs.get(&id).cloned() else {
                return Err(Error::JobNotFound { id });
            };
            if !job::requeue_dead(&mut j) {
                return Err(Error::JobState {
                    id,
                    state: j.state,
                    wanted: "dead-letter",
                });
            }
            self.store.put(&j)?;
            self.emit(&mut inner, &j, Some(JobState::DeadLetter), None);
            inner.jobs.insert(id, j.clone());
            j
        };
        self.flush().await?;
        self.wake.notify_one();
        tracing::info!(job = id, "dead-letter job queued again");
        Ok(job)
    }

    pub async fn purge_dead_letters(&self) -> Result<u64, Error> {
        let removed = {
            let mut inner = self.lock();
            let ids: Vec<JobId> = inner
                .jobs
                .values()
                .filter(|j| j.state == JobState::DeadLetter)
                .map(|j| j.id)
                .collect();
            for id in &ids {
                self.store.remove(*id)?;
                inner.jobs.remove(id);
            }
            ids.len() as u64
        };
        self.flush().await?;
        tracing::info!(removed, "dead-letter queue purged");
        Ok(removed)
    }

    pub fn workers(&self) -> u32 {
        self.lock().workers
    }

    /// Jobs that may run at once now: the configured workers, or fewer while the tuner caps
    /// them.
    pub fn effective_workers(&self) -> u32 {
        self.lock().effective_workers()
    }

    /// The tuner's cap (`None` lifts it). The configured count is untouched, so a reload or
    /// `queue workers N` keeps the cap in force.
    pub fn set_worker_cap(&self, cap: Option<u32>) {
        let old = std::mem::replace(&mut self.lock().worker_cap, cap.map(|c| c.max(1)));
        if old != cap {
            tracing::info!(?old, new = ?cap, "queue worker cap changed by the tuner");
        }
        self.wake.notify_one();
    }

    /// Jobs waiting to run and running now.
    pub fn depth(&self) -> (u32, u32) {
        let inner = self.lock();
        let waiting = inner
            .jobs
            .values()
            .filter(|j| matches!(j.state, JobState::Queued | JobState::RetryWait))
            .count();
        (
            u32::try_from(waiting).unwrap_or(u32::MAX),
            u32::try_from(inner.running.len()).unwrap_or(u32::MAX),
        )
    }

    /// Changes the number of workers; running jobs beyond a lower count finish undisturbed.
    pub fn set_workers(&self, n: u32) -> Result<u32, Error> {
        if !(1..=8).contains(&n) {
            return Err(Error::InvalidWorkers(n));
        }
        let old = std::mem::replace(&mut self.lock().workers, n);
        if old != n {
            tracing::info!(from = old, to = n, "queue workers changed");
        }
        self.wake.notify_one();
        Ok(n)
    }

    /// Cancels a job. A waiting job is cancelled at once; a running one is told to stop and this
    /// waits (up to 10 s) for it to reach its next safe point.
    pub async fn cancel(&self, id: JobId) -> Result<JobInfo, Error> {
        let mut events = self.events.subscribe();
        {
            let mut inner = self.lock();
            let Some(mut j) = inner.jobs.get(&id).cloned() else {
                return Err(Error::JobNotFound { id });
            };
            if let Some(r) = inner.running.get(&id) {
                let _ = r.stop.set(StopReason::Cancelled);
                r.cancel.cancel();
                if let Some(j) = inner.jobs.get_mut(&id) {
                    j.cancel_requested = true;
                }
                tracing::info!(job = id, "cancelling running job");
            } else {
                let from = j.state;
                if !job::cancel_waiting(&mut j, self.clock.now()) {
                    return Err(Error::JobState {
                        id,
                        state: j.state,
                        wanted: "queued, retry-wait or running",
                    });
                }
                self.store.put(&j)?;
                self.emit(&mut inner, &j, Some(from), None);
                inner.jobs.insert(id, j);
                tracing::info!(job = id, "job cancelled before it ran");
            }
        }
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let Some(j) = self.job(id) else {
                return Err(Error::JobNotFound { id });
            };
            if j.state != JobState::Running {
                self.flush().await?;
                return Ok(j);
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Ok(j),
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(j),
                Ok(_) => {}
            }
        }
    }

    /// At a graceful exit: jobs still recorded as running (they did not reach a safe point in
    /// time) are queued again as interrupted, not left to look like a crash on the next start.
    /// The caller flushes the state afterwards.
    pub fn requeue_unfinished(&self) {
        let mut inner = self.lock();
        let ids: Vec<JobId> = inner.running.keys().copied().collect();
        for id in ids {
            let Some(j) = inner.jobs.get_mut(&id) else {
                continue;
            };
            if j.state != JobState::Running {
                continue;
            }
            job::finish(
                j,
                job::Ending::Stopped(StopReason::Shutdown),
                self.clock.now(),
                0.0,
                Duration::ZERO,
            );
            if let Err(e) = self.store.put(j) {
                tracing::warn!(job = id, error = %e, "cannot record the interrupted job");
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// The last `backlog` events and a receiver for every later one, with no gap between.
    pub fn follow(&self, backlog: usize) -> (Vec<JobEvent>, broadcast::Receiver<JobEvent>) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let skip = inner.recent.len().saturating_sub(backlog);
        (inner.recent.iter().skip(skip).cloned().collect(), rx)
    }

    /// Removes finished jobs beyond the configured age and count (dead letters stay until
    /// purged). Returns how many went.
    fn prune_history(&self, inner: &mut Inner, q: &QueueConfig, now: i64) -> usize {
        let oldest_kept =
            now.saturating_sub(q.history_max_age.as_nanos().min(i64::MAX as u128) as i64);
        let mut done: Vec<(i64, JobId)> = inner
            .jobs
            .values()
            .filter(|j| j.state.is_final() && j.state != JobState::DeadLetter)
            .map(|j| (j.finished_ns.unwrap_or(0), j.id))
            .collect();
        done.sort_unstable();
        let over = done.len().saturating_sub(q.history_max_jobs);
        let mut removed = 0;
        for (i, (finished, id)) in done.into_iter().enumerate() {
            if i >= over && finished >= oldest_kept {
                break;
            }
            if let Err(e) = self.store.remove(id) {
                tracing::warn!(job = id, error = %e, "cannot remove an old job from the history");
                continue;
            }
            inner.jobs.remove(&id);
            removed += 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests;
