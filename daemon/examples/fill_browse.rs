//! Bench helper (bench/find.sh): a repository with N snapshots of one large tree, each after a
//! few files changed, as a watched source leaves it. One full backup of SOURCE_DIR, then N-1
//! incremental backups through the engine, each with the previous snapshot as parent and only
//! the changed paths re-examined (what the daemon runs for a watched source's changes). Before
//! each, CHANGES files picked by a fixed rule are replaced (a new file renamed over the old
//! one, so a tree hard-linked from shared data is never written through); halfway, one file
//! named `needle.cfg` is added deep in the tree, for a search for a rare name. Not part of the
//! product.
//!
//! `cargo run --release --example fill_browse -- REPO_DIR PASSWORD_FILE SOURCE_DIR N [CHANGES]`

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::incremental::Change;
use backupd::engine::progress::Progress;
use backupd::repo::Repository;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Every regular file below `root`, sorted (no recursion: a stack of directories).
fn files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (mut out, mut dirs) = (Vec::new(), vec![root.to_path_buf()]);
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn replace(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("fill-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (repo_dir, password_file, source, n, changes) = match args.as_slice() {
        [r, p, s, n] => (r, p, s, n.parse::<u64>()?, 3usize),
        [r, p, s, n, c] => (r, p, s, n.parse::<u64>()?, c.parse()?),
        _ => return Err("usage: fill_browse REPO_DIR PASSWORD_FILE SOURCE_DIR N [CHANGES]".into()),
    };
    let password = std::fs::read(password_file)?;
    let password = password.strip_suffix(b"\n").unwrap_or(&password);
    let repo = Repository::init(&PathBuf::from(repo_dir), password)?;
    let source = std::fs::canonicalize(source)?;
    let all = files(&source)?;
    if all.is_empty() {
        return Err("SOURCE_DIR holds no files".into());
    }
    let started = std::time::Instant::now();
    let mut opts = BackupOptions {
        paths: vec![source.clone()],
        zstd_level: 1,
        ..Default::default()
    };
    let run =
        |opts: &BackupOptions| backup(&repo, opts, &Progress::default(), &CancellationToken::new());
    let first = run(&opts)?;
    eprintln!(
        "full backup of {} files in {:.1}s",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    let mut parent = first.id;
    let needle = all[all.len() / 3]
        .parent()
        .unwrap_or(&source)
        .join("needle.cfg");
    for i in 1..n {
        let mut changed = Vec::new();
        for k in 0..changes {
            let pick = (i as usize * 7919 + k * 104_729) % all.len();
            let path = &all[pick];
            replace(path, format!("snapshot {i}, change {k}\n").as_bytes())?;
            changed.push((path.clone(), Change::Entry));
        }
        if i == n / 2 {
            std::fs::write(&needle, b"the needle\n")?;
            changed.push((needle.clone(), Change::Entry));
        }
        opts.parent = Some(parent);
        opts.changes = Some(changed);
        parent = run(&opts)?.id;
        if i % 100 == 0 {
            eprintln!(
                "  {} snapshots in {:.1}s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "repository {repo_dir}: {n} snapshots in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
