//! Queue benchmark (issue 4): 10,000 trivial jobs submitted over the real socket of a release
//! `backupd`, one request in flight at a time. Reports submit latency, `queue status` latency
//! with 10,000 jobs present, and the time a restarted daemon needs to answer with 10,000 jobs
//! persisted (after a clean stop and after kill -9). Targets: submit p50 < 0.5 ms, p99 < 5 ms;
//! restart < 1 s.
//!
//! Run: `bench/queue.sh` (builds the release binaries first). `BENCH_JOBS` sets the job count.

use backupd_common::client::Connection;
use backupd_common::protocol::{
    JobKind, JobOptions, JobSpec, NoopRequest, QueueRequest, Request, Response, SystemRequest,
};
use backupd_tests::{rss_kib, DaemonOptions, TestDaemon};
use std::path::Path;
use std::time::{Duration, Instant};

const CONFIG: &str = "[queue]\nworkers = 1\nsubmit_rate = 1000000.0\nsubmit_burst = 1000000\n\
                      history_max_jobs = 100000\n";

fn noop(duration: Duration) -> Request {
    Request::Queue(QueueRequest::Submit(Box::new(JobSpec {
        kind: JobKind::Noop(NoopRequest {
            duration,
            ..Default::default()
        }),
        options: JobOptions::default(),
    })))
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64, u64) {
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (pct(0.5), pct(0.99), *v.last().expect("samples"))
}

fn main() {
    let jobs: usize = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("state");
    let options = || DaemonOptions {
        config: Some(CONFIG.into()),
        extra_args: vec!["--log-level".into(), "warn".into()],
        state_dir: Some(state.clone()),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut daemon = TestDaemon::start_with(options());
    println!(
        "queue: {jobs} noop jobs over {}, one request in flight",
        daemon.socket.display()
    );

    let (submit, status) = runtime.block_on(async {
        let mut conn = Connection::connect(&daemon.socket, "queue-bench")
            .await
            .expect("connect");
        // One hour-long job holds the only worker, so every other job stays queued: the
        // heaviest case for status (ordering) and restart (all jobs live).
        conn.call(noop(Duration::from_secs(3600)))
            .await
            .expect("blocker");
        let mut submit = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            let t = Instant::now();
            let reply = conn.call(noop(Duration::ZERO)).await.expect("submit");
            submit.push(t.elapsed().as_micros() as u64);
            assert!(matches!(reply, Response::Submitted(_)), "{reply:?}");
        }
        let mut status = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let t = Instant::now();
            let reply = conn
                .call(Request::Queue(QueueRequest::Status))
                .await
                .expect("status");
            status.push(t.elapsed().as_micros() as u64);
            assert!(matches!(reply, Response::QueueStatus(_)));
        }
        (submit, status)
    });
    let (p50, p99, max) = percentiles(submit);
    println!("submit:  p50 {p50} µs, p99 {p99} µs, max {max} µs");
    let submit_ok = p50 < 500 && p99 < 5000;
    let (s50, s99, smax) = percentiles(status);
    println!(
        "status with {} jobs: p50 {s50} µs, p99 {s99} µs, max {smax} µs",
        jobs + 1
    );
    println!(
        "daemon RSS with {} jobs: {} KiB",
        jobs + 1,
        rss_kib(daemon.pid())
    );

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon
        .wait_exit(Duration::from_secs(30))
        .expect("clean stop");
    let clean = restart(&runtime, &mut daemon, &options, jobs);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.wait_exit(Duration::from_secs(5)).expect("killed");
    let crashed = restart(&runtime, &mut daemon, &options, jobs);
    println!(
        "restart to first answer with {} jobs: after a clean stop {:.0} ms, after kill -9 {:.0} ms",
        jobs + 1,
        clean.as_secs_f64() * 1000.0,
        crashed.as_secs_f64() * 1000.0
    );
    let restart_ok = clean.max(crashed) < Duration::from_secs(1);
    println!(
        "targets: submit p50 < 0.5 ms and p99 < 5 ms: {}; restart < 1 s: {}",
        if submit_ok { "met" } else { "NOT met" },
        if restart_ok { "met" } else { "NOT met" }
    );
}

/// Starts a daemon on the same state and returns the time until `queue status` answers with
/// every job present.
fn restart(
    runtime: &tokio::runtime::Runtime,
    daemon: &mut TestDaemon,
    options: &dyn Fn() -> DaemonOptions,
    jobs: usize,
) -> Duration {
    let t = Instant::now();
    *daemon = TestDaemon::spawn(options());
    let socket = daemon.socket.clone();
    let took = runtime.block_on(async {
        loop {
            if let Some(n) = answer(&socket).await {
                assert!(n > jobs as u64, "all jobs came back: {n}");
                return t.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    took
}

async fn answer(socket: &Path) -> Option<u64> {
    let mut conn = Connection::connect(socket, "queue-bench").await.ok()?;
    conn.call(Request::System(SystemRequest::Health))
        .await
        .ok()?;
    match conn.call(Request::Queue(QueueRequest::Status)).await.ok()? {
        Response::QueueStatus(s) => Some(s.counts.iter().map(|c| c.count).sum()),
        _ => None,
    }
}
