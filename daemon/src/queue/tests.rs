//! The scheduling loop under tokio's paused clock: a retry starts when its back-off has passed
//! (the scheduler sleeps until then, nothing wakes it), and a waiting job's priority ages.

use super::worker::Scheduler;
use super::{Clock, Queue};
use crate::context::SettingsHandle;
use crate::settings::{Overrides, Settings};
use backupd_common::config::{Config, QueueConfig};
use backupd_common::protocol::{
    JobId, JobKind, JobOptions, JobSpec, JobState, NoopRequest, Priority, RunMode,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SEC: Duration = Duration::from_secs(1);

struct Harness {
    _dir: tempfile::TempDir,
    queue: Arc<Queue>,
    scheduler: Scheduler,
    q: QueueConfig,
}

fn harness(q: QueueConfig) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = crate::state::State::open(dir.path()).expect("state");
    let queue = Arc::new(
        Queue::open(&state, &q)
            .expect("queue")
            .with_clock(Clock::tokio()),
    );
    let settings = Settings {
        mode: RunMode::User,
        config_file: None,
        config: Config {
            queue: q.clone(),
            ..Config::default()
        },
        socket: dir.path().join("sock"),
        state_dir: dir.path().to_owned(),
        log_level: "info".into(),
        overrides: Overrides::default(),
    };
    let alerts = Arc::new(crate::alerts::Alerts::default());
    let repos = Arc::new(crate::repo::registry::Registry::new(
        state,
        dir.path(),
        alerts,
    ));
    let scheduler = Scheduler {
        queue: queue.clone(),
        env: crate::ops::Env {
            repos,
            state_dir: dir.path().to_owned(),
            tuning: crate::perf::Tuning::new(crate::perf::configured(&settings.config)),
            bandwidth: crate::throttle::Bucket::default(),
            sync: None,
            replications: None,
            recovery: None,
            drill: None,
            analytics: None,
        },
        settings: SettingsHandle::new(settings),
        tasks: TaskTracker::new(),
    };
    Harness {
        _dir: dir,
        queue,
        scheduler,
        q,
    }
}

fn noop(fail_attempts: u32, priority: Priority, backoff: Duration) -> JobSpec {
    JobSpec {
        kind: JobKind::Noop(NoopRequest {
            duration: Duration::ZERO,
            fail_attempts,
            permanent: false,
        }),
        options: JobOptions {
            priority,
            timeout: Some(Duration::from_secs(24 * 3600)),
            retries: Some(3),
            backoff: Some(backoff),
        },
    }
}

/// Waits for `id`'s transitions (no polling: a polling timer would let the paused clock run
/// ahead while the store writes) until it is in `state`. The guard is real time: while sled
/// writes, the paused clock may run ahead through any number of idle scheduler rounds.
async fn until_state(
    events: &mut tokio::sync::broadcast::Receiver<backupd_common::protocol::JobEvent>,
    id: JobId,
    state: JobState,
) {
    let real = std::time::Instant::now();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.job == id && e.state == state && e.progress.is_none() => return,
                Ok(_) => {}
                Err(e) => panic!("events: {e}"),
            },
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {
                assert!(
                    real.elapsed() < Duration::from_secs(120),
                    "job {id} never {}",
                    state.as_str()
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_runs_again_once_its_back_off_has_passed() {
    let h = harness(QueueConfig::default());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(h.scheduler.clone().run(cancel.clone()));
    let mut events = h.queue.subscribe();
    let backoff = 100 * SEC;
    let s = h
        .queue
        .submit(noop(2, Priority::Normal, backoff), 0, None, &h.q)
        .await;
    let id = s.expect("submitted").id;
    until_state(&mut events, id, JobState::Succeeded).await;
    let job = h.queue.job(id).expect("job");
    assert_eq!(job.attempts.len(), 3, "{job:?}");
    let delays: Vec<u64> = job.attempts.iter().filter_map(|a| a.retry_in_ms).collect();
    assert!(
        (100_000..=125_000).contains(&delays[0]),
        "backoff plus jitter: {delays:?}"
    );
    assert!(
        delays[1] >= 2 * 100_000,
        "the second delay doubles: {delays:?}"
    );
    // Nothing but the scheduler's own timer wakes it: each retry starts when its delay has
    // passed, never before, and not an idle period (30 s) late.
    for (failed, next) in job.attempts.iter().zip(&job.attempts[1..]) {
        let due = failed.finished_ns.expect("finished")
            + failed.retry_in_ms.expect("delay") as i64 * 1_000_000;
        let late = Duration::from_nanos(next.started_ns.saturating_sub(due).max(0) as u64);
        assert!(
            next.started_ns >= due,
            "attempt {} started early",
            next.number
        );
        assert!(late < SEC, "attempt {} started {late:?} late", next.number);
    }
    cancel.cancel();
    run.await.expect("scheduler");
}

#[tokio::test(start_paused = true)]
async fn waiting_lifts_a_low_job_above_newer_high_ones() {
    let q = QueueConfig {
        aging: Duration::from_secs(600),
        ..QueueConfig::default()
    };
    let h = harness(q);
    // No scheduler: the jobs stay queued and `status` shows the order they would start in.
    let low = h
        .queue
        .submit(noop(0, Priority::Low, SEC), 0, None, &h.q)
        .await;
    let low = low.expect("low").id;
    tokio::time::sleep(1199 * SEC).await;
    let high = h
        .queue
        .submit(noop(0, Priority::High, SEC), 0, None, &h.q)
        .await;
    let high = high.expect("high").id;
    let order =
        |h: &Harness| -> Vec<JobId> { h.queue.status(&h.q).next.iter().map(|j| j.id).collect() };
    assert_eq!(order(&h), vec![high, low], "one level gained after 19m59s");
    tokio::time::sleep(SEC).await;
    assert_eq!(
        order(&h),
        vec![low, high],
        "two levels after 20m: equal, and older"
    );
}
