//! Bench helper (bench/history.sh): fills a stopped daemon's job history with N finished jobs,
//! offline, through the same state code the daemon uses. Not part of the product: the daemon
//! has no way to bulk-insert history.
//!
//! `cargo run --example fill_history -- STATE_DIR N`

use backupd::state::history::History;
use backupd::state::records::history::HistoryRecord;
use backupd::state::records::job::JobRecord;
use backupd::state::State;
use backupd_common::protocol::{
    Attempt, AttemptOutcome, BackupRequest, BackupResult, JobInfo, JobKind, JobState, NoopRequest,
    Priority, Response, SnapshotStatsView,
};
use std::path::PathBuf;

fn job(id: u64, finished_ns: i64) -> JobInfo {
    let backup = !id.is_multiple_of(4);
    let (kind, result) = if backup {
        (
            JobKind::Backup(BackupRequest {
                repo: Some(format!("repo{}", id % 3)),
                paths: vec![format!("/srv/data{}", id % 10).into_bytes()],
                source: Some(format!("source{}", id % 10)),
                ..Default::default()
            }),
            Response::Backup(BackupResult {
                snapshot: format!("{id:064x}"),
                parent: None,
                stats: SnapshotStatsView {
                    files: 1000 + id % 100,
                    bytes_read: 4096 * (id % 50),
                    bytes_added: 2048 * (id % 50),
                    bytes_stored: 1024 * (id % 50),
                    ..Default::default()
                },
                dirs_scanned: 0,
                incremental: true,
                skipped: Vec::new(),
                unchanged: false,
            }),
        )
    } else {
        (
            JobKind::Noop(NoopRequest::default()),
            Response::Noop { slept_ms: 0 },
        )
    };
    JobInfo {
        id,
        kind,
        priority: Priority::Normal,
        state: JobState::Succeeded,
        submitter_uid: 0,
        timeout_ms: 1_800_000,
        retries: 3,
        backoff_ms: 30_000,
        submitted_ns: finished_ns - 2_000_000,
        started_ns: Some(finished_ns - 1_000_000),
        finished_ns: Some(finished_ns),
        not_before_ns: None,
        attempts: vec![Attempt {
            number: 1,
            started_ns: finished_ns - 1_000_000,
            finished_ns: Some(finished_ns),
            outcome: AttemptOutcome::Succeeded,
            error: None,
            retry_in_ms: None,
            retryable: false,
        }],
        retry_base: 0,
        coalesced: 0,
        cancel_requested: false,
        progress: None,
        result: Some(result),
        error: None,
        log: Vec::new(),
        acts_as: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: fill_history STATE_DIR N".into());
    };
    let n: u64 = n.parse()?;
    let state = State::open(&PathBuf::from(dir))?;
    let history = History::open(&state)?;
    let now = backupd::repo::now_ns();
    // One job a minute, ending now: 100,000 jobs span about 70 days.
    let step = 60 * 1_000_000_000i64;
    let started = std::time::Instant::now();
    for id in 1..=n {
        let finished = now - (n - id) as i64 * step;
        let record = JobRecord::from(&job(id, finished));
        if let Some(entry) = HistoryRecord::of(&record) {
            history.append(entry)?;
        }
    }
    state.flush_blocking()?;
    eprintln!(
        "history: {} entries written in {:.1}s",
        history.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
