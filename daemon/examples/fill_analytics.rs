//! Bench helper (bench/analytics.sh): fills a stopped daemon's state with N finished backups
//! over S sources, offline, through the same code the daemon runs when a job finishes: each
//! job is appended to the history and handed to [`Analytics::finished`], whose time is
//! measured per call and printed (p50, p99, max). Not part of the product.
//!
//! `cargo run --release --example fill_analytics -- STATE_DIR [N] [SOURCES]`
//!
//! The histories are deterministic: each source backs up every 90·S/N days, reads a size
//! that wanders around its own mean, takes 150 ms plus 10 ms per MB and 0.2 ms per file
//! (with noise), fails 2 % of the time, and one source in ten has a degraded week (25 %).

use backupd::alerts::Alerts;
use backupd::analytics::Analytics;
use backupd::state::history::History;
use backupd::state::records::history::HistoryRecord;
use backupd::state::records::job::StateRecord;
use backupd::state::State;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_NS: i64 = 86_400_000_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: fill_analytics STATE_DIR [N] [SOURCES]"),
    );
    let n: u64 = args.next().map_or(100_000, |a| a.parse().expect("N"));
    let sources: u64 = args.next().map_or(50, |a| a.parse().expect("SOURCES"));
    let state = State::open(&dir).expect("state");
    let history = History::open(&state).expect("history");
    let analytics = Analytics::open(&state, Arc::new(Alerts::default())).expect("analytics");
    let mut rng = StdRng::seed_from_u64(19);
    let now = backupd::repo::now_ns();
    let span = 90 * DAY_NS;
    let start = now - span;
    let mut times = Vec::with_capacity(n as usize);
    for id in 1..=n {
        let source = id % sources;
        let finished_ns = start + (span as f64 * id as f64 / n as f64) as i64;
        let day = (finished_ns - start) / DAY_NS;
        let degraded = source % 10 == 3 && (40..47).contains(&day);
        let failure = if degraded { 0.25 } else { 0.02 };
        let ok = rng.random::<f64>() >= failure;
        let mean_mb = 5.0 + source as f64;
        let mb = (mean_mb * rng.random_range(0.5..1.5)).max(0.01);
        let files = (mb * 40.0 * rng.random_range(0.7..1.3)) as u64;
        let ms = (150.0 + 10.0 * mb + 0.2 * files as f64) * rng.random_range(0.9..1.1);
        let bytes_read = (mb * 1e6) as u64;
        let bytes_added = bytes_read / 3;
        let entry = HistoryRecord {
            v: 1,
            id,
            kind: "backup".into(),
            repo: Some(format!("repo{}", source % 3)),
            source: Some(format!("source{source:02}")),
            outcome: if ok {
                StateRecord::Succeeded
            } else {
                StateRecord::DeadLetter
            },
            error_class: (!ok).then(|| "io".into()),
            error: (!ok).then(|| "disk read error".into()),
            attempts: 1,
            submitted_ns: finished_ns - (ms * 1e6) as i64,
            finished_ns,
            duration_ms: ms as u64,
            files: 10_000 + source * 100,
            bytes_read,
            bytes_added,
            bytes_stored: if ok { bytes_added / 2 } else { 0 },
            compression_ratio: ok.then_some(2.0 * rng.random_range(0.95..1.05)),
            snapshot: ok.then(|| format!("{id:064x}")),
            files_read: files,
            bytes_total: 1_000_000_000 + source * 10_000_000 + id * 100,
        };
        history.append(entry.clone()).expect("append");
        let paths = [format!("/srv/source{source:02}").into_bytes()];
        let t = Instant::now();
        analytics.finished(&entry, &paths);
        times.push(t.elapsed());
    }
    state.flush_blocking().expect("flush");
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "recorded {n} finished backups over {sources} sources: per job p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    );
}
