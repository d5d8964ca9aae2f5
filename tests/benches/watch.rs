//! Continuous-backup benchmark (issue 5), side by side with restic in one run. On a tree given
//! by `BENCH_TREE` (the 200,000-file `many-small` set, copied by `bench/watch.sh`):
//!
//! - backupd watches the tree (`--watch`, default 2 s debounce); per round one file is changed
//!   and the time from the write to the committed snapshot is measured, with the backup job's
//!   own duration and counters;
//! - restic backs up the same tree after the same kind of change (its incremental run);
//! - the idle daemon's RSS and CPU while watching the tree.
//!
//! Targets: change-to-snapshot <= debounce + 0.5 s; the backup job >= 50x faster than restic's
//! incremental run (<= 0.2 s); idle RSS <= 64 MB; idle CPU < 0.5 %.

use backupd_common::client::Connection;
use backupd_common::protocol::{
    HistoryQuery, QueueRequest, Request, Response, SourceInfo, SourceRequest,
};
use backupd_tests::{rss_kib, DaemonOptions, TestDaemon};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

async fn source(conn: &mut Connection) -> SourceInfo {
    match conn
        .call(Request::Source(SourceRequest::List))
        .await
        .expect("source list")
    {
        Response::Sources(mut s) => s.remove(0),
        other => panic!("{other:?}"),
    }
}

/// The newest backup job's (duration ms, files read, dirs scanned, incremental).
async fn last_backup(conn: &mut Connection) -> (u64, u64, u64, bool) {
    let query = HistoryQuery {
        limit: 1,
        kind: Some("backup".into()),
        ..HistoryQuery::default()
    };
    let id = match conn
        .call(Request::Queue(QueueRequest::History(query)))
        .await
        .expect("history")
    {
        Response::History(entries) => entries.first().expect("a backup job").id,
        other => panic!("{other:?}"),
    };
    match conn
        .call(Request::Queue(QueueRequest::Job { id }))
        .await
        .expect("job")
    {
        Response::Job(j) => match &j.result {
            Some(Response::Backup(b)) => (
                b.stats.duration_ms,
                b.stats.files_read,
                b.dirs_scanned,
                b.incremental,
            ),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// Some files of the tree, to change one per round.
fn pick_files(root: &Path, n: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .expect("read_dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if out.len() < n {
                out.push(p);
            }
        }
        if out.len() >= n {
            break;
        }
    }
    out
}

fn touch(path: &Path, round: usize) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    writeln!(f, "change {round}").expect("append");
}

fn main() {
    let tree = PathBuf::from(std::env::var("BENCH_TREE").expect("BENCH_TREE: run bench/watch.sh"));
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let files = pick_files(&tree, rounds * 2);
    let work = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // backupd
    let d = TestDaemon::start_with(DaemonOptions {
        extra_args: vec![
            "--log-level".into(),
            "warn".into(),
            "--watch".into(),
            tree.display().to_string(),
        ],
        state_dir: Some(work.path().join("state")),
        ..Default::default()
    });
    let t = Instant::now();
    let (latencies, jobs, idle) = runtime.block_on(async {
        let mut conn = Connection::connect(&d.socket, "watch-bench")
            .await
            .expect("connect");
        loop {
            let s = source(&mut conn).await;
            if s.last_snapshot.is_some() && s.job.is_none() {
                println!(
                    "initial scan and backup: {:.1} s, {} directories watched",
                    t.elapsed().as_secs_f64(),
                    s.dirs_watched
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Idle: 30 s of watching an unchanged tree.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (c0, t0) = (cpu_ticks(d.pid()), Instant::now());
        tokio::time::sleep(Duration::from_secs(30)).await;
        let ticks = cpu_ticks(d.pid()) - c0;
        let hz = 100.0; // USER_HZ on Linux
        let idle_cpu = ticks as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
        let idle_rss = rss_kib(d.pid());

        let mut latencies = Vec::new();
        let mut jobs = Vec::new();
        for (round, file) in files.iter().take(rounds).enumerate() {
            let before = source(&mut conn).await.last_snapshot;
            let t = Instant::now();
            touch(file, round);
            loop {
                let s = source(&mut conn).await;
                if s.last_snapshot != before && s.job.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies.push(t.elapsed().as_secs_f64());
            let job = last_backup(&mut conn).await;
            assert!(job.3, "an incremental backup");
            jobs.push(job);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (latencies, jobs, (idle_cpu, idle_rss))
    });
    drop(d);

    // restic, same tree, same kind of change.
    let repo = work.path().join("restic");
    let restic = |args: &[&str]| {
        let t = Instant::now();
        let st = Command::new("restic")
            .arg("-r")
            .arg(&repo)
            .args(args)
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", work.path().join("restic-cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run restic");
        assert!(st.success(), "restic {args:?}");
        t.elapsed().as_secs_f64()
    };
    restic(&["init"]);
    let tree_arg = tree.to_str().expect("utf8");
    let initial = restic(&["backup", tree_arg]);
    println!("restic initial backup: {initial:.1} s");
    let mut restic_runs = Vec::new();
    for (round, file) in files.iter().skip(rounds).enumerate() {
        touch(file, round);
        restic_runs.push(restic(&["backup", tree_arg]));
    }

    let latency = median(latencies.clone());
    let job_s = median(jobs.iter().map(|j| j.0 as f64 / 1000.0).collect());
    let restic_s = median(restic_runs.clone());
    println!("rounds: {rounds} (medians)");
    println!("backupd change -> committed snapshot: {latency:.3} s  {latencies:.3?}");
    println!(
        "backupd backup job: {job_s:.3} s (files read {:?}, dirs scanned {:?})",
        jobs.iter().map(|j| j.1).collect::<Vec<_>>(),
        jobs.iter().map(|j| j.2).collect::<Vec<_>>()
    );
    println!("restic incremental backup: {restic_s:.3} s  {restic_runs:.3?}");
    println!(
        "ratio restic incremental / backupd job: {:.0}x; restic incremental / backupd change-to-snapshot: {:.1}x",
        restic_s / job_s.max(0.001),
        restic_s / latency
    );
    println!(
        "idle while watching: RSS {} MB, CPU {:.2} %",
        idle.1 / 1024,
        idle.0
    );
    let ok = |b: bool| if b { "met" } else { "NOT met" };
    println!(
        "targets: change-to-snapshot <= 2.5 s: {}; job >= 50x faster than restic: {}; idle RSS <= 64 MB: {}; idle CPU < 0.5 %: {}",
        ok(latency <= 2.5),
        ok(restic_s / job_s.max(0.001) >= 50.0),
        ok(idle.1 <= 64 * 1024),
        ok(idle.0 < 0.5)
    );
}
