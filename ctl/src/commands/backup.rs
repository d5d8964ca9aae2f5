//! `backupctl backup`, `restore`, `snapshots`, `forget`.

use super::{abs_bytes, Failure};
use crate::cli::Command;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use crate::progress::{bytes, Bar};
use backupd_common::protocol::{
    BackupRequest, ForgetRequest, ForgetResult, RestoreRequest, SnapshotsRequest,
};
use std::time::UNIX_EPOCH;

/// The first 8 characters of an id, as tables show it (the whole id if shorter).
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Requests built from the command line before connecting.
#[derive(Debug)]
pub enum Prepared {
    None,
    Backup(BackupRequest),
    Restore(RestoreRequest),
    Snapshots(SnapshotsRequest),
    Forget(ForgetRequest),
}

fn parse_time(text: &str) -> Result<i64, Failure> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1_000_000_000));
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        Failure::Usage(format!(
            "--time {text:?}: {e}; use RFC 3339 (2024-05-01T12:00:00Z) or Unix seconds"
        ))
    })?;
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Failure::Usage(format!("--time {text:?} is before 1970")))?;
    Ok(d.as_nanos() as i64)
}

pub fn prepare(command: &Command) -> Result<Prepared, Failure> {
    Ok(match command {
        Command::Backup(a) => Prepared::Backup(BackupRequest {
            repo: a.repo.clone(),
            paths: a
                .paths
                .iter()
                .map(|p| abs_bytes(p))
                .collect::<Result<_, _>>()?,
            excludes: a.exclude.clone(),
            exclude_files: a
                .exclude_file
                .iter()
                .map(|p| abs_bytes(p))
                .collect::<Result<_, _>>()?,
            exclude_caches: a.exclude_caches,
            one_file_system: a.one_file_system,
            tags: a.tag.clone(),
            host: a.host.clone(),
            time_ns: a.time.as_deref().map(parse_time).transpose()?,
            force: a.force,
        }),
        Command::Restore(a) => {
            let (snapshot, subpath) = match a.snapshot.split_once(':') {
                Some((s, p)) if !p.is_empty() => (s.to_owned(), Some(p.as_bytes().to_vec())),
                Some((s, _)) => (s.to_owned(), None),
                None => (a.snapshot.clone(), None),
            };
            if let Some(p) = &subpath {
                if !p.starts_with(b"/") {
                    return Err(Failure::Usage(format!(
                        "{:?}: the path inside the snapshot must be absolute",
                        String::from_utf8_lossy(p)
                    )));
                }
            }
            Prepared::Restore(RestoreRequest {
                repo: a.repo.clone(),
                snapshot,
                subpath,
                target: abs_bytes(&a.target)?,
                includes: a.include.clone(),
                excludes: a.exclude.clone(),
                verify: a.verify,
            })
        }
        Command::Snapshots(a) => Prepared::Snapshots(SnapshotsRequest {
            repo: a.repo.clone(),
            path: a.path.as_ref().map(|p| abs_bytes(p)).transpose()?,
            tag: a.tag.clone(),
        }),
        Command::Forget(a) => {
            let r = ForgetRequest {
                repo: a.repo.clone(),
                keep_last: a.keep_last,
                keep_hourly: a.keep_hourly,
                keep_daily: a.keep_daily,
                keep_weekly: a.keep_weekly,
                keep_monthly: a.keep_monthly,
                keep_yearly: a.keep_yearly,
                keep_within: a.keep_within,
                prune: a.prune,
                dry_run: a.dry_run,
            };
            let any_count = [
                r.keep_last,
                r.keep_hourly,
                r.keep_daily,
                r.keep_weekly,
                r.keep_monthly,
                r.keep_yearly,
            ]
            .iter()
            .any(|n| *n > 0);
            if !any_count && r.keep_within.is_none() {
                return Err(Failure::Usage(
                    "forget needs at least one --keep-* rule (it never removes every snapshot)"
                        .into(),
                ));
            }
            Prepared::Forget(r)
        }
        Command::System(_) | Command::Repo(_) => Prepared::None,
    })
}

fn wait_flag(command: &Command) -> bool {
    match command {
        Command::Backup(a) => a.wait,
        Command::Restore(a) => a.wait,
        Command::Forget(a) => a.wait,
        _ => false,
    }
}

pub async fn run(
    client: &mut Client,
    command: &Command,
    prepared: Prepared,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let mut bar = Bar::new(wait_flag(command));
    match prepared {
        Prepared::Backup(request) => {
            let result = client.backup(request, |p| bar.update(&p)).await;
            bar.finish();
            let r = result?;
            out.value(&r, || {
                let s = &r.stats;
                let mut text = format!(
                    "snapshot {} saved\n{} files ({} read), {} dirs, {} total, {} new ({} stored) in {:.1}s",
                    short(&r.snapshot),
                    s.files,
                    s.files_read,
                    s.dirs,
                    bytes(s.bytes_total),
                    bytes(s.bytes_added),
                    bytes(s.bytes_stored),
                    s.duration_ms as f64 / 1000.0
                );
                for (path, why) in &r.skipped {
                    text.push_str(&format!("\nskipped {path}: {why}"));
                }
                text
            });
            if !r.skipped.is_empty() {
                eprintln!(
                    "backupctl: backup is partial: {} paths could not be read",
                    r.skipped.len()
                );
                return Ok(ExitCode::Warning);
            }
        }
        Prepared::Restore(request) => {
            let result = client.restore(request, |p| bar.update(&p)).await;
            bar.finish();
            let r = result?;
            out.value(&r, || {
                let mut text = format!(
                    "restored {} files, {} dirs, {} other ({}) from {}",
                    r.files,
                    r.dirs,
                    r.other,
                    bytes(r.bytes),
                    short(&r.snapshot)
                );
                for (path, why) in &r.failed {
                    text.push_str(&format!("\nFAILED {path}: {why}"));
                }
                for (path, why) in r.warnings.iter().take(20) {
                    text.push_str(&format!("\nwarning {path}: {why}"));
                }
                text
            });
            if !r.failed.is_empty() {
                eprintln!(
                    "backupctl: restore is partial: {} files could not be restored",
                    r.failed.len()
                );
                return Ok(ExitCode::Warning);
            }
        }
        Prepared::Snapshots(request) => {
            let list = client.snapshots(request).await?;
            out.value(&list, || {
                let mut text = format!(
                    "{:<10} {:<21} {:<16} {:>9} paths",
                    "id", "time", "host", "files"
                );
                for s in &list {
                    text.push_str(&format!(
                        "\n{:<10} {:<21} {:<16} {:>9} {}{}",
                        short(&s.id),
                        s.time,
                        s.host,
                        s.stats.files,
                        s.paths.join(" "),
                        if s.tags.is_empty() {
                            String::new()
                        } else {
                            format!(" [{}]", s.tags.join(","))
                        }
                    ));
                }
                text
            });
        }
        Prepared::Forget(request) => {
            let result = client.forget(request, |p| bar.update(&p)).await;
            bar.finish();
            let r = result?;
            out.value(&r, || forget_text(&r));
        }
        Prepared::None => {}
    }
    Ok(ExitCode::Ok)
}

fn forget_text(r: &ForgetResult) -> String {
    let mut text = String::new();
    for d in &r.decisions {
        text.push_str(&format!(
            "{} {} {} {}\n",
            if d.keep { "keep  " } else { "remove" },
            short(&d.snapshot),
            d.time,
            if d.keep {
                d.reasons.join(", ")
            } else {
                String::new()
            }
        ));
    }
    text.push_str(&format!(
        "{} snapshots {}",
        r.removed,
        if r.dry_run {
            "would be removed (dry run)"
        } else {
            "removed"
        }
    ));
    if let Some(p) = &r.prune {
        text.push_str(&format!(
            "\npruned: {} packs deleted, {} repacked into {}, {} blobs removed; {} -> {}",
            p.packs_deleted,
            p.packs_repacked,
            p.packs_written,
            p.blobs_removed,
            bytes(p.bytes_before),
            bytes(p.bytes_after)
        ));
    }
    text
}
