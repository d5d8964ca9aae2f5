//! Control-plane benchmark: `system health` over the real socket of a release `backupd`, with
//! 1, 10 and 100 concurrent clients (one persistent connection each, one request in flight per
//! client). Prints requests/s and latency percentiles, and compares with the targets of issue 2
//! (>= 50,000 req/s with 100 clients, p99 < 5 ms).
//!
//! Then the audit log's cost (issue 13): the same 100-client read load against a second daemon
//! with `audit.enabled = false` (reads are not audited: the two must be within 10 %), and an
//! audited write (`queue workers N`) from one client with auditing on and off, whose latency
//! difference is what the audit append adds to a write request (target: p99 < 1 ms).
//!
//! Run: `bench/control-plane.sh` (builds the release binaries first), or
//! `cargo build --release --bins && cargo bench -p backupd-tests --bench control_plane`.
//! `BENCH_SECONDS` sets the measured time per level (default 5).

use backupd_common::client::Connection;
use backupd_common::protocol::{QueueRequest, Request, SystemRequest};
use backupd_tests::{rss_kib, TestDaemon};
use std::time::{Duration, Instant};

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let daemon = TestDaemon::start_with(backupd_tests::DaemonOptions {
        extra_args: vec!["--log-level".into(), "warn".into()],
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "control plane: `system health` over {} ({} s per level, 2 cores shared by client and daemon)",
        daemon.socket.display(),
        seconds
    );
    println!(
        "{:>7} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "clients", "requests", "req/s", "p50 µs", "p99 µs", "max µs"
    );
    let mut at_100 = None;
    for clients in [1usize, 10, 100] {
        let result = runtime.block_on(level(
            &daemon,
            clients,
            Duration::from_secs(seconds),
            health(),
        ));
        println!(
            "{:>7} {:>10} {:>10.0} {:>9} {:>9} {:>9}",
            clients, result.requests, result.rate, result.p50, result.p99, result.max
        );
        if clients == 100 {
            at_100 = Some(result);
        }
    }
    println!("daemon RSS after the run: {} KiB", rss_kib(daemon.pid()));
    if let Some(r) = at_100 {
        let rate_ok = r.rate >= 50_000.0;
        let p99_ok = r.p99 < 5_000;
        println!(
            "targets at 100 clients: >= 50000 req/s: {} ({:.0}); p99 < 5 ms: {} ({} µs)",
            if rate_ok { "met" } else { "NOT met" },
            r.rate,
            if p99_ok { "met" } else { "NOT met" },
            r.p99
        );
        audit_cost(&runtime, &daemon, &r, Duration::from_secs(seconds));
    }
}

fn health() -> Request {
    Request::System(SystemRequest::Health)
}

/// A write the audit log records (config event), cheap in itself.
fn audited_write() -> Request {
    Request::Queue(QueueRequest::Workers { count: Some(2) })
}

fn audit_cost(
    runtime: &tokio::runtime::Runtime,
    on: &TestDaemon,
    reads_on: &LevelResult,
    measure: Duration,
) {
    let off = TestDaemon::start_with(backupd_tests::DaemonOptions {
        extra_args: vec!["--log-level".into(), "warn".into()],
        config: Some("[audit]\nenabled = false\n".into()),
        ..Default::default()
    });
    let reads_off = runtime.block_on(level(&off, 100, measure, health()));
    let change = (reads_on.rate - reads_off.rate) / reads_off.rate * 100.0;
    println!(
        "reads (not audited), 100 clients: audit on {:.0} req/s, off {:.0} req/s ({change:+.1} %); \
         within 10 %: {}",
        reads_on.rate,
        reads_off.rate,
        if change >= -10.0 { "met" } else { "NOT met" }
    );
    let writes_on = runtime.block_on(level(on, 1, measure, audited_write()));
    let writes_off = runtime.block_on(level(&off, 1, measure, audited_write()));
    let p50 = writes_on.p50.saturating_sub(writes_off.p50);
    let p99 = writes_on.p99.saturating_sub(writes_off.p99);
    println!(
        "audited write `queue workers 2`, 1 client: on p50 {} µs p99 {} µs, off p50 {} µs p99 {} µs; \
         audit append adds p50 {p50} µs, p99 {p99} µs; p99 < 1 ms: {} (bench/audit.sh times the \
         append alone)",
        writes_on.p50,
        writes_on.p99,
        writes_off.p50,
        writes_off.p99,
        if p99 < 1000 { "met" } else { "NOT met" }
    );
}

struct LevelResult {
    requests: usize,
    rate: f64,
    p50: u64,
    p99: u64,
    max: u64,
}

async fn level(
    daemon: &TestDaemon,
    clients: usize,
    measure: Duration,
    request: Request,
) -> LevelResult {
    let warmup = Duration::from_millis(500);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let socket = daemon.socket.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::connect(&socket, "control-plane-bench")
                .await
                .expect("connect");
            let start = Instant::now();
            let mut latencies = Vec::with_capacity(1 << 16);
            while start.elapsed() < warmup + measure {
                let t = Instant::now();
                conn.call(request.clone())
                    .await
                    .expect("the request succeeds");
                if start.elapsed() > warmup {
                    latencies.push(t.elapsed().as_micros() as u64);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    LevelResult {
        requests: all.len(),
        rate: all.len() as f64 / measure.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: *all.last().expect("at least one request"),
    }
}
