//! Bench helper (bench/compaction.sh): makes a repository with N one-file incremental backups,
//! each a real backup through the engine (one file of SOURCE_DIR rewritten before each, the
//! previous snapshot as parent), so the repository holds N snapshots, N small packs and N index
//! files, as N watched one-file changes leave it. Not part of the product.
//!
//! `cargo run --example fill_incremental -- REPO_DIR PASSWORD_FILE SOURCE_DIR N`

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::progress::Progress;
use backupd::repo::Repository;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo_dir, password_file, source, n] = args.as_slice() else {
        return Err("usage: fill_incremental REPO_DIR PASSWORD_FILE SOURCE_DIR N".into());
    };
    let n: u64 = n.parse()?;
    let password = std::fs::read(password_file)?;
    let password = password.strip_suffix(b"\n").unwrap_or(&password);
    let repo = Repository::init(&PathBuf::from(repo_dir), password)?;
    let source = PathBuf::from(source);
    let changing = source.join("changing");
    let started = std::time::Instant::now();
    let mut parent = None;
    for i in 0..n {
        // Different content each time, so each backup stores one new blob.
        std::fs::write(
            &changing,
            format!("change {i} {:?}\n", std::time::SystemTime::now()),
        )?;
        let out = backup(
            &repo,
            &BackupOptions {
                paths: vec![source.clone()],
                parent,
                zstd_level: 1,
                ..Default::default()
            },
            &Progress::default(),
            &CancellationToken::new(),
        )?;
        parent = Some(out.id);
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "  {} backups in {:.1}s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "repository {repo_dir}: {n} incremental backups in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
