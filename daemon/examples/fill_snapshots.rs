//! Bench helper (bench/catalog.sh): makes a repository with N snapshots quickly. One real
//! backup of SOURCE_DIR, then N-1 snapshots of the same tree written through the repository
//! API (each a valid, restorable snapshot, one second apart, each the parent of the next), as
//! many tiny backups of an unchanged directory would leave. Not part of the product.
//!
//! `cargo run --example fill_snapshots -- REPO_DIR PASSWORD_FILE SOURCE_DIR N`

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::progress::Progress;
use backupd::repo::Repository;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo_dir, password_file, source, n] = args.as_slice() else {
        return Err("usage: fill_snapshots REPO_DIR PASSWORD_FILE SOURCE_DIR N".into());
    };
    let n: i64 = n.parse()?;
    let password = std::fs::read(password_file)?;
    let password = password.strip_suffix(b"\n").unwrap_or(&password);
    let repo = Repository::init(&PathBuf::from(repo_dir), password)?;
    let started = std::time::Instant::now();
    let now = backupd::repo::now_ns();
    let first = backup(
        &repo,
        &BackupOptions {
            paths: vec![PathBuf::from(source)],
            time_ns: Some(now - n * 1_000_000_000),
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )?;
    let mut snapshot = first.snapshot;
    let mut parent = first.id;
    for i in 1..n {
        snapshot.time_ns = now - (n - i) * 1_000_000_000;
        snapshot.parent = Some(parent);
        snapshot.stats.files_read = 0;
        snapshot.stats.bytes_read = 0;
        snapshot.stats.bytes_added = 0;
        snapshot.stats.bytes_stored = 0;
        parent = repo.write_snapshot(&snapshot)?;
    }
    eprintln!(
        "repository {repo_dir}: {n} snapshots written in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
