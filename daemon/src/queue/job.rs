//! A job's state machine: every transition is one function here, pure over [`JobInfo`], so the
//! rules (retry budget, backoff, what a restart does to a running job) are tested without a
//! daemon. The caller persists the record after each transition.

use backupd_common::error::ErrorReply;
use backupd_common::protocol::{
    ActingUser, Attempt, AttemptOutcome, JobId, JobInfo, JobKind, JobSpec, JobState, Response,
};
use std::time::Duration;

/// Defaults a job takes when its options leave a limit open.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

/// Why a running job was stopped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    TimedOut,
    /// The daemon is stopping; the job runs again after the restart.
    Shutdown,
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum Ending {
    Succeeded(Response),
    Failed { error: ErrorReply, retryable: bool },
    Stopped(StopReason),
}

impl Ending {
    /// A failed attempt: whether it is retried is the error's own classification
    /// ([`crate::error::Classify`]); the queue never decides it.
    pub fn failed(error: &crate::error::Error) -> Self {
        Self::Failed {
            error: error.to_reply(),
            retryable: error.is_retryable(),
        }
    }
}

pub fn new_job(id: JobId, spec: JobSpec, submitter_uid: u32, now: i64, limits: Limits) -> JobInfo {
    let o = spec.options;
    JobInfo {
        id,
        kind: spec.kind,
        priority: o.priority,
        state: JobState::Queued,
        submitter_uid,
        timeout_ms: millis(o.timeout.unwrap_or(limits.timeout)),
        retries: o.retries.unwrap_or(limits.retries),
        backoff_ms: millis(o.backoff.unwrap_or(limits.backoff)),
        submitted_ns: now,
        started_ns: None,
        finished_ns: None,
        not_before_ns: None,
        attempts: Vec::new(),
        retry_base: 0,
        coalesced: 0,
        cancel_requested: false,
        progress: None,
        result: None,
        error: None,
        log: Vec::new(),
        acts_as: None,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// Whether `kind` may be merged into the queued job `existing` instead of queuing a second one:
/// an equal job of a kind that coalesces (two backups of the same sources with the same options
/// make the same snapshot) acting for the same user (a backup with root's rights and one with
/// a user's read different files).
pub fn coalesces(existing: &JobInfo, kind: &JobKind, acts_as: Option<ActingUser>) -> bool {
    existing.state == JobState::Queued
        && crate::ops::coalesces(kind)
        && existing.kind == *kind
        && existing.acts_as == acts_as
}

pub fn start(job: &mut JobInfo, now: i64) {
    job.state = JobState::Running;
    job.started_ns = Some(now);
    job.not_before_ns = None;
    job.progress = None;
    job.attempts.push(Attempt {
        number: job.attempts.len() as u32 + 1,
        started_ns: now,
        finished_ns: None,
        outcome: AttemptOutcome::Running,
        error: None,
        retry_in_ms: None,
        retryable: false,
    });
}

/// The delay before retry number `failures` (1 = the first retry): `backoff · 2^(failures-1)`,
/// plus `jitter` (0 to 0.25) of it, at most `max`. The jitter spreads retries of many jobs that
/// failed together; it never makes a later delay shorter than an earlier one.
pub fn retry_delay(backoff: Duration, failures: u32, jitter: f64, max: Duration) -> Duration {
    let doubled = backoff.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let with_jitter = doubled.mul_f64(1.0 + jitter.clamp(0.0, 0.25));
    with_jitter.min(max)
}

/// Ends the running attempt. `jitter` is a random number in `[0, 0.25)`.
pub fn finish(job: &mut JobInfo, ending: Ending, now: i64, jitter: f64, backoff_max: Duration) {
    job.progress = None;
    let (outcome, error) = match &ending {
        Ending::Succeeded(_) => (AttemptOutcome::Succeeded, None),
        Ending::Failed { error, .. } => (AttemptOutcome::Failed, Some(error.clone())),
        Ending::Stopped(StopReason::Cancelled) => (AttemptOutcome::Cancelled, None),
        Ending::Stopped(StopReason::TimedOut) => (AttemptOutcome::TimedOut, None),
        Ending::Stopped(StopReason::Shutdown) => (AttemptOutcome::Interrupted, None),
    };
    if let Some(a) = job.attempts.last_mut() {
        a.finished_ns = Some(now);
        a.outcome = outcome;
        a.error = error.clone();
        a.retryable = matches!(
            ending,
            Ending::Failed {
                retryable: true,
                ..
            }
        );
    }
    match ending {
        Ending::Succeeded(response) => {
            job.state = JobState::Succeeded;
            job.result = Some(response);
            job.error = None;
            job.finished_ns = Some(now);
        }
        Ending::Failed { error, retryable } => {
            let failures = job.failures();
            if retryable && failures <= job.retries {
                let delay = retry_delay(
                    Duration::from_millis(job.backoff_ms),
                    failures,
                    jitter,
                    backoff_max,
                );
                let delay_ms = millis(delay);
                if let Some(a) = job.attempts.last_mut() {
                    a.retry_in_ms = Some(delay_ms);
                }
                job.state = JobState::RetryWait;
                job.not_before_ns = Some(now.saturating_add(delay_ms as i64 * 1_000_000));
            } else {
                job.state = JobState::DeadLetter;
                job.finished_ns = Some(now);
            }
            job.error = Some(error);
        }
        Ending::Stopped(StopReason::Cancelled) => {
            job.state = JobState::Cancelled;
            job.finished_ns = Some(now);
        }
        Ending::Stopped(StopReason::TimedOut) => {
            job.state = JobState::TimedOut;
            job.error = Some(ErrorReply::new(
                backupd_common::error::ErrorCode::Timeout,
                format!(
                    "job {} ({}) ran longer than its timeout of {} and was stopped; raise it \
                     with --timeout or queue.timeouts.{} in the config",
                    job.id,
                    job.kind.name(),
                    humantime::format_duration(Duration::from_millis(job.timeout_ms)),
                    job.kind.name()
                ),
            ));
            job.finished_ns = Some(now);
        }
        Ending::Stopped(StopReason::Shutdown) => {
            job.state = JobState::Queued;
        }
    }
    job.cancel_requested = false;
}

/// After the daemon died: a job recorded as running was cut off. Its attempt is recorded as
/// crashed and it runs again, unless it was running at each of the last `max_crashes` deaths:
/// then it is likely what kills the daemon, and retrying it forever would keep the daemon
/// (and every other job) in a crash loop, so it goes to the dead-letter queue.
pub fn recover(job: &mut JobInfo, now: i64, max_crashes: u32) -> bool {
    if job.state != JobState::Running {
        return false;
    }
    if let Some(a) = job.attempts.last_mut() {
        if a.outcome == AttemptOutcome::Running {
            a.outcome = AttemptOutcome::Crashed;
            a.finished_ns = Some(now);
        }
    }
    job.cancel_requested = false;
    let crashes = job.consecutive_crashes();
    if crashes >= max_crashes {
        job.state = JobState::DeadLetter;
        job.finished_ns = Some(now);
        job.error = Some(ErrorReply::new(
            backupd_common::error::ErrorCode::Internal,
            format!(
                "job {} ({}) crashed the daemon {} (it was running each time the daemon died) \
                 and is not run again; see the daemon's log, then `backupctl queue dlq retry {}` \
                 (queue.max_crashes sets the limit)",
                job.id,
                job.kind.name(),
                backupd_common::plural::count(crashes, "time"),
                job.id
            ),
        ));
    } else {
        job.state = JobState::Queued;
    }
    true
}

/// Cancels a job that is not running. Returns false if it is running or already final.
pub fn cancel_waiting(job: &mut JobInfo, now: i64) -> bool {
    if !matches!(job.state, JobState::Queued | JobState::RetryWait) {
        return false;
    }
    job.state = JobState::Cancelled;
    job.not_before_ns = None;
    job.finished_ns = Some(now);
    true
}

/// `dlq retry`: the job is queued again with a fresh retry budget; its history stays.
pub fn requeue_dead(job: &mut JobInfo) -> bool {
    if job.state != JobState::DeadLetter {
        return false;
    }
    job.state = JobState::Queued;
    job.retry_base = job.attempts.len() as u32;
    job.finished_ns = None;
    job.not_before_ns = None;
    true
}

/// A job whose retry delay has passed becomes runnable.
pub fn promote(job: &mut JobInfo, now: i64) -> bool {
    if job.state == JobState::RetryWait && job.not_before_ns.is_none_or(|t| t <= now) {
        job.state = JobState::Queued;
        job.not_before_ns = None;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::error::ErrorCode;
    use backupd_common::protocol::{JobOptions, NoopRequest};

    fn job() -> JobInfo {
        let spec = JobSpec {
            kind: JobKind::Noop(NoopRequest::default()),
            options: JobOptions {
                retries: Some(3),
                backoff: Some(Duration::from_secs(1)),
                ..Default::default()
            },
        };
        new_job(
            7,
            spec,
            0,
            0,
            Limits {
                timeout: Duration::from_secs(60),
                retries: 9,
                backoff: Duration::from_secs(30),
            },
        )
    }

    fn fail(job: &mut JobInfo, retryable: bool, now: i64) {
        start(job, now);
        let error = ErrorReply::new(ErrorCode::Unavailable, format!("boom at {now}"));
        finish(
            job,
            Ending::Failed { error, retryable },
            now + 1,
            0.1,
            Duration::from_secs(3600),
        );
    }

    #[test]
    fn options_override_the_defaults() {
        let j = job();
        assert_eq!((j.retries, j.backoff_ms, j.timeout_ms), (3, 1000, 60_000));
    }

    #[test]
    fn retryable_failures_back_off_with_growing_delays_then_dead_letter() {
        let mut j = job();
        let mut delays = Vec::new();
        for round in 0..3 {
            fail(&mut j, true, round * 1_000_000_000_000);
            assert_eq!(j.state, JobState::RetryWait);
            delays.push(
                j.attempts
                    .last()
                    .and_then(|a| a.retry_in_ms)
                    .expect("delay"),
            );
            assert!(!promote(&mut j, round * 1_000_000_000_000 + 2));
            assert!(promote(&mut j, i64::MAX));
        }
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        assert_eq!(delays[0], 1100);
        fail(&mut j, true, 9_000_000_000_000);
        assert_eq!(j.state, JobState::DeadLetter);
        assert_eq!(j.attempts.len(), 4);
        assert!(j.attempts.iter().all(|a| a.error.is_some()));

        // A dead-letter retry gets a fresh budget but keeps the history.
        assert!(requeue_dead(&mut j));
        assert_eq!(j.failures(), 0);
        fail(&mut j, true, 10_000_000_000_000);
        assert_eq!(j.state, JobState::RetryWait);
        assert_eq!(j.attempts.len(), 5);
    }

    #[test]
    fn permanent_failure_goes_to_the_dead_letter_queue_at_once() {
        let mut j = job();
        fail(&mut j, false, 0);
        assert_eq!(j.state, JobState::DeadLetter);
        assert_eq!(j.attempts.len(), 1);
    }

    #[test]
    fn delays_are_capped_and_jitter_bounded() {
        let d = retry_delay(Duration::from_secs(1), 30, 0.9, Duration::from_secs(60));
        assert_eq!(d, Duration::from_secs(60));
        let d = retry_delay(Duration::from_secs(1), 2, 1.0, Duration::from_secs(60));
        assert_eq!(d, Duration::from_millis(2500));
    }

    #[test]
    fn a_crash_requeues_running_jobs_and_keeps_their_attempts() {
        let mut j = job();
        start(&mut j, 5);
        assert!(recover(&mut j, 6, 3));
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.attempts[0].outcome, AttemptOutcome::Crashed);
        // An interruption does not use up a retry.
        assert_eq!(j.failures(), 0);
        start(&mut j, 7);
        assert_eq!(j.attempts.len(), 2);
        assert_eq!(j.attempts[1].number, 2);
    }

    fn shutdown(j: &mut JobInfo, now: i64) {
        finish(
            j,
            Ending::Stopped(StopReason::Shutdown),
            now,
            0.0,
            Duration::MAX,
        );
    }

    #[test]
    fn a_job_running_at_max_crashes_daemon_deaths_in_a_row_goes_to_the_dead_letter_queue() {
        let mut j = job();
        for n in 1..=2 {
            start(&mut j, n * 10);
            assert!(recover(&mut j, n * 10 + 1, 3));
            assert_eq!(j.state, JobState::Queued, "crash {n}");
            assert_eq!(j.consecutive_crashes(), n as u32);
        }
        start(&mut j, 30);
        assert!(recover(&mut j, 31, 3));
        assert_eq!(j.state, JobState::DeadLetter);
        assert!(j.state.is_final());
        assert_eq!(j.finished_ns, Some(31));
        let error = j.error.as_ref().expect("error").message.clone();
        assert!(error.contains("crashed the daemon 3 times"), "{error}");
        // Crashes never used up the retries; `dlq retry` gives a fresh crash budget too.
        assert_eq!(j.failures(), 0);
        assert!(requeue_dead(&mut j));
        assert_eq!(j.consecutive_crashes(), 0);
        start(&mut j, 40);
        assert!(recover(&mut j, 41, 3));
        assert_eq!(j.state, JobState::Queued);
    }

    #[test]
    fn only_crashes_in_a_row_count() {
        let mut j = job();
        // crash, graceful stop, crash, failure, crash, crash: never three in a row.
        start(&mut j, 1);
        recover(&mut j, 2, 3);
        start(&mut j, 3);
        shutdown(&mut j, 4);
        assert_eq!(j.attempts[1].outcome, AttemptOutcome::Interrupted);
        assert_eq!(j.consecutive_crashes(), 0);
        start(&mut j, 5);
        recover(&mut j, 6, 3);
        fail(&mut j, true, 7);
        assert!(promote(&mut j, i64::MAX));
        for t in [100, 200] {
            start(&mut j, t);
            assert!(recover(&mut j, t + 1, 3));
        }
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.consecutive_crashes(), 2);
        // A job that is not running is left alone.
        let mut queued = job();
        assert!(!recover(&mut queued, 1, 1));
        assert_eq!(queued.state, JobState::Queued);
    }

    #[test]
    fn shutdown_requeues_and_stops_are_final() {
        let mut j = job();
        start(&mut j, 1);
        finish(
            &mut j,
            Ending::Stopped(StopReason::Shutdown),
            2,
            0.0,
            Duration::MAX,
        );
        assert_eq!(j.state, JobState::Queued);
        start(&mut j, 3);
        finish(
            &mut j,
            Ending::Stopped(StopReason::TimedOut),
            4,
            0.0,
            Duration::MAX,
        );
        assert_eq!(j.state, JobState::TimedOut);
        assert!(j.state.is_final());
        assert!(!cancel_waiting(&mut j, 5));
        let mut k = job();
        assert!(cancel_waiting(&mut k, 5));
        assert_eq!(k.state, JobState::Cancelled);
    }
}
