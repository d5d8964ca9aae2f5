//! The scheduler and its workers: promotes retries that are due, starts jobs while workers are
//! free, runs each on a blocking thread with its timeout, and records how it ended.
//!
//! [`Scheduler::run`] is the one loop; each started job is one task on the tracker, which runs
//! the kind's operation ([`crate::ops`]) on a blocking thread. When the scheduler's token fires
//! nothing new starts and running jobs are told to stop: they are queued again.

use super::job::{self, Ending, StopReason};
use super::{joblog, pick, Queue, Running};
use crate::context::SettingsHandle;
use crate::engine::progress::Progress;
use crate::ops;
use backupd_common::protocol::{JobId, JobKind, JobState};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often a running job's progress is broadcast as an event.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Longest sleep of the scheduler when nothing wakes it (it re-evaluates aging then).
pub(crate) const IDLE: Duration = Duration::from_secs(30);

/// The queue's scheduling service, built from the handles it needs.
#[derive(Clone)]
pub struct Scheduler {
    pub queue: Arc<Queue>,
    /// What operations run with.
    pub env: ops::Env,
    pub settings: SettingsHandle,
    /// Where each job's task runs.
    pub tasks: TaskTracker,
}

impl Scheduler {
    /// Runs until `cancel` fires, then tells running jobs to stop; they are queued again.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let next = self.dispatch();
            tokio::select! {
                _ = self.queue.wake.notified() => {}
                _ = tokio::time::sleep(next.unwrap_or(IDLE).min(IDLE)) => {}
                _ = cancel.cancelled() => break,
            }
        }
        let mut inner = self.queue.lock();
        inner.accepting = false;
        for (id, r) in &inner.running {
            let _ = r.stop.set(StopReason::Shutdown);
            r.cancel.cancel();
            tracing::info!(
                job = id,
                "daemon stopping: job interrupted, it runs again after the restart"
            );
        }
    }

    /// One scheduling round. Returns the time until the next retry is due.
    fn dispatch(&self) -> Option<Duration> {
        let settings = self.settings.get();
        let q = &settings.config.queue;
        let queue = &self.queue;
        let now = queue.clock.now();
        let mut inner = queue.lock();
        if !inner.accepting {
            return None;
        }
        let due: Vec<JobId> = inner
            .jobs
            .values()
            .filter(|j| j.state == JobState::RetryWait && j.not_before_ns.is_none_or(|t| t <= now))
            .map(|j| j.id)
            .collect();
        for id in due {
            let Some(mut j) = inner.jobs.get(&id).cloned() else {
                continue;
            };
            if job::promote(&mut j, now) {
                persist(queue, &j);
                queue.emit(&mut inner, &j, Some(JobState::RetryWait), None);
                inner.jobs.insert(id, j);
            }
        }
        let free = (inner.effective_workers() as usize).saturating_sub(inner.running.len());
        if free > 0 {
            let claims: Vec<ops::Claim> = inner
                .running
                .values()
                .filter_map(|r| r.claim.clone())
                .collect();
            let chosen = {
                let ordered = pick::order(inner.jobs.values(), now, q.aging);
                let running_sync = inner
                    .running
                    .keys()
                    .filter(|id| {
                        inner.jobs.get(id).is_some_and(|j| {
                            matches!(j.kind, backupd_common::protocol::JobKind::Sync(_))
                        })
                    })
                    .count();
                let max_sync = settings.config.sync.max_transfers as usize;
                let ordered = pick::cap_sync(ordered, running_sync, max_sync);
                pick::pick(&ordered, &claims, free)
            };
            for id in chosen {
                self.start(&mut inner, id, now);
            }
        }
        inner
            .jobs
            .values()
            .filter_map(|j| (j.state == JobState::RetryWait).then_some(j.not_before_ns?))
            .min()
            .map(|t| Duration::from_nanos(t.saturating_sub(now).max(0) as u64))
    }

    fn start(&self, inner: &mut super::Inner, id: JobId, now: i64) {
        let queue = &self.queue;
        let Some(mut j) = inner.jobs.get(&id).cloned() else {
            return;
        };
        job::start(&mut j, now);
        persist(queue, &j);
        // The start is durable before anyone can see the job running, and so before any work
        // happens: the crash counter (`queue.max_crashes`) relies on a job that was running when
        // the daemon died being recorded as running, however soon after its start that was.
        if let Err(e) = queue.store.flush_blocking() {
            tracing::error!(job = id, error = %e, "cannot persist job start");
        }
        queue.emit(inner, &j, Some(JobState::Queued), None);
        let running = Running {
            cancel: CancellationToken::new(),
            progress: Arc::new(Progress::default()),
            stop: Arc::new(OnceLock::new()),
            claim: ops::claim(&j.kind),
            started: Instant::now(),
        };
        let attempt = j.attempts.len() as u32;
        tracing::info!(job = id, kind = j.kind.name(), attempt, "job started");
        let task = RunTask {
            id,
            kind: j.kind.clone(),
            acts_as: j.acts_as,
            attempt,
            timeout: Duration::from_millis(j.timeout_ms),
            cancel: running.cancel.clone(),
            progress: running.progress.clone(),
            stop: running.stop.clone(),
            started: running.started,
        };
        inner.running.insert(id, running);
        inner.jobs.insert(id, j);
        self.tasks.spawn(task.run(self.clone()));
    }
}

/// Writes a job; a failing write is logged (the in-memory queue goes on, and the next flush
/// reports the problem to whoever waits for it).
fn persist(queue: &Queue, j: &backupd_common::protocol::JobInfo) {
    if let Err(e) = queue.store.put(j) {
        tracing::error!(job = j.id, error = %e, "cannot persist job transition");
    }
}

struct RunTask {
    id: JobId,
    kind: JobKind,
    acts_as: Option<backupd_common::protocol::ActingUser>,
    attempt: u32,
    timeout: Duration,
    cancel: CancellationToken,
    progress: Arc<Progress>,
    stop: Arc<OnceLock<StopReason>>,
    started: Instant,
}

impl RunTask {
    async fn run(self, s: Scheduler) {
        let id = self.id;
        let queue = &s.queue;
        joblog::open(id);
        let hooks = self.hooks(&s).await;
        // `[sync] bwlimit` as it is now: a reload applies to the next job that starts.
        s.env.bandwidth.set(s.settings.get().config.sync.bwlimit);
        let work = {
            let (env, kind, attempt) = (s.env.clone(), self.kind, self.attempt);
            let acts_as = self.acts_as;
            let (progress, cancel) = (self.progress.clone(), self.cancel.clone());
            let hooks = hooks.clone();
            async move {
                if let Some(hooks) = &hooks {
                    if let Err(e) = hooks.before(&cancel).await {
                        return Ok(Err(e.into()));
                    }
                }
                tokio::task::spawn_blocking(move || {
                    // Events of the run (engine warnings, skipped files) go to the job's log.
                    let _span = tracing::info_span!(joblog::SPAN, id).entered();
                    let run = ops::Run {
                        env: &env,
                        job: id,
                        attempt,
                        acts_as,
                        progress: &progress,
                        cancel: &cancel,
                    };
                    ops::run(kind, &run)
                })
                .await
            }
        };
        tokio::pin!(work);
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut timed_out = false;
        let joined = loop {
            tokio::select! {
                joined = &mut work => break joined,
                _ = &mut deadline, if !timed_out => {
                    timed_out = true;
                    if self.stop.set(StopReason::TimedOut).is_ok() {
                        tracing::warn!(job = id, timeout = ?self.timeout, "job timed out; stopping it at its next safe point");
                    }
                    self.cancel.cancel();
                }
                _ = tick.tick() => queue.progress_event(id, super::sample(&self.progress, self.started)),
            }
        };
        let ending = match (joined, self.stop.get()) {
            (Ok(Ok(response)), _) => Ending::Succeeded(response),
            (_, Some(reason)) => Ending::Stopped(*reason),
            (Ok(Err(e)), None) => Ending::failed(&e),
            (Err(source), None) => Ending::failed(&crate::error::Error::TaskFailed {
                task: format!("job {id}"),
                source,
            }),
        };
        let settings = s.settings.get();
        if let Some(hooks) = &hooks {
            // The job's end is settled before its hooks hear of it, and recorded after they
            // ran, so their output is in its log; nothing they do changes it.
            if let Some(ended) = queue.preview(id, &ending, &settings.config.queue) {
                hooks.after(&crate::hooks::Ended::of(&ended)).await;
            }
        }
        queue.finish(id, ending, &settings.config.queue);
        if let Err(e) = queue.flush().await {
            tracing::error!(job = id, error = %e, "cannot persist job end");
        }
        queue.wake.notify_one();
        // What the job allocated is free now; an idle daemon should not keep it.
        let _ = tokio::task::spawn_blocking(crate::memory::trim).await;
    }
}

impl RunTask {
    /// The hooks of this attempt, from the config in force as it starts (a reload during the
    /// job changes nothing for it); `None` when no hook applies.
    async fn hooks(&self, s: &Scheduler) -> Option<Arc<crate::hooks::Hooks>> {
        let sets = crate::hooks::plan(&s.settings.get().config, &self.kind, self.acts_as);
        if sets.is_empty() {
            return None;
        }
        let mut repository = ops::claim(&self.kind).map(|c| c.repo).unwrap_or_default();
        if repository.is_empty() {
            // The default repository, by its name: hooks may pass it to `backupctl --repo`.
            let repos = s.env.repos.clone();
            repository = tokio::task::spawn_blocking(move || repos.entry(None).map(|e| e.name))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
        }
        let facts = crate::hooks::JobFacts::new(self.id, &self.kind, repository, self.attempt);
        Some(Arc::new(crate::hooks::Hooks::new(sets, facts)))
    }
}

impl Queue {
    /// The job as it will be once the attempt's `ending` is recorded; nothing changes yet.
    fn preview(
        &self,
        id: JobId,
        ending: &Ending,
        q: &backupd_common::config::QueueConfig,
    ) -> Option<backupd_common::protocol::JobInfo> {
        let mut j = self.lock().jobs.get(&id)?.clone();
        job::finish(&mut j, ending.clone(), self.clock.now(), 0.0, q.backoff_max);
        Some(j)
    }

    fn progress_event(&self, id: JobId, sample: backupd_common::protocol::OperationProgress) {
        let mut inner = self.lock();
        let Some(mut j) = inner.jobs.get(&id).cloned() else {
            return;
        };
        j.progress = Some(sample);
        self.emit(&mut inner, &j, None, Some(sample));
        inner.jobs.insert(id, j);
    }

    /// Records how an attempt ended: the one place every job's end passes (a final state, a
    /// retry wait or a requeue), so whatever keeps finished jobs hooks in here.
    fn finish(&self, id: JobId, ending: Ending, q: &backupd_common::config::QueueConfig) {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.running.remove(&id);
        let Some(mut j) = inner.jobs.get(&id).cloned() else {
            return;
        };
        let jitter = rand::random::<f64>() * 0.25;
        job::finish(&mut j, ending, now, jitter, q.backoff_max);
        // Logged before the job's log is taken, so the end is in it too.
        match j.state {
            JobState::Succeeded => tracing::info!(job = id, kind = j.kind.name(), "job succeeded"),
            JobState::RetryWait => tracing::warn!(
                job = id,
                kind = j.kind.name(),
                attempt = j.attempts.len(),
                retry_in_ms = j.attempts.last().and_then(|a| a.retry_in_ms),
                error = j.error.as_ref().map(|e| e.message.as_str()).unwrap_or(""),
                "job failed; it will be retried"
            ),
            JobState::DeadLetter => tracing::error!(
                job = id,
                kind = j.kind.name(),
                attempts = j.attempts.len(),
                error = j.error.as_ref().map(|e| e.message.as_str()).unwrap_or(""),
                "job failed; moved to the dead-letter queue (`backupctl queue dlq list`)"
            ),
            state => tracing::info!(
                job = id,
                kind = j.kind.name(),
                state = state.as_str(),
                "job ended"
            ),
        }
        joblog::append(&mut j.log, joblog::take(id));
        persist(self, &j);
        self.emit(&mut inner, &j, Some(JobState::Running), None);
        inner.jobs.insert(id, j);
        self.prune_history(&mut inner, q, now);
    }
}
