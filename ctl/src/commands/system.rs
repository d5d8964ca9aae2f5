//! `backupctl system ...`

use super::Failure;
use crate::cli::SystemCommand;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::system::{HealthView, IdentityView, ImportView, ReloadView};
use crate::output::{self, Output};
use backupd_common::protocol::ImportReport;
use std::io::{Read, Write};
use std::path::Path;

pub async fn run(
    client: &mut Client,
    cmd: &SystemCommand,
    out: &Output,
) -> Result<ExitCode, Failure> {
    match cmd {
        SystemCommand::Health(args) if args.watch => {
            client
                .watch_health(args.interval, args.count, |h| {
                    out.value(&HealthView::from(&h), || output::health_line(&h))
                })
                .await?;
        }
        SystemCommand::Health(_) => {
            let h = client.health().await?;
            out.value(&HealthView::from(&h), || output::health_table(&h));
        }
        SystemCommand::Whoami => {
            let who = client.whoami().await?;
            out.value(&IdentityView::from(&who), || {
                format!(
                    "uid {} gid {} role {}",
                    who.uid,
                    who.gid,
                    who.role.map_or("none", |r| r.as_str())
                )
            });
        }
        SystemCommand::Reload => {
            let report = client.reload().await?;
            out.value(&ReloadView::from(&report), || output::reload_text(&report));
        }
        SystemCommand::ExportState { output } => {
            let doc = client.export_state().await?;
            match output {
                // The document is JSON already: printed as it is in both modes.
                None => {
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{doc}");
                }
                Some(path) => {
                    write_private(path, doc.as_bytes())?;
                    let counts = counts(&doc);
                    let summary = serde_json::json!({
                        "output": path.display().to_string(),
                        "repositories": counts.0,
                        "sources": counts.1,
                    });
                    out.value(&summary, || {
                        format!(
                            "exported {} and {} to {}",
                            crate::output::count(counts.0 as u64, "repository"),
                            crate::output::count(counts.1 as u64, "source"),
                            path.display()
                        )
                    });
                }
            }
        }
        SystemCommand::ImportState { file } => {
            let document = read_document(file)?;
            let report = client.import_state(document).await?;
            out.value(&ImportView::from(&report), || import_text(&report));
        }
        SystemCommand::Shutdown => {
            client.shutdown().await?;
            out.value(&serde_json::json!({"shutting_down": true}), || {
                "backupd is shutting down".to_owned()
            });
        }
    }
    Ok(ExitCode::Ok)
}

/// Entries in an export document, for the summary line.
fn counts(doc: &str) -> (usize, usize) {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
    let len = |key: &str| v[key].as_array().map_or(0, Vec::len);
    (len("repositories"), len("sources"))
}

/// Writes `bytes` to `path` with mode 0600 via a temp file and a rename, so a reader never sees
/// half a file and an existing file is replaced only by a complete one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| Failure::Local(format!("cannot write {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| Failure::Local(format!("{} is not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

fn read_document(file: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| Failure::Local(format!("cannot read {}: {e}", file.display())))?;
    Ok(text)
}

fn import_text(r: &ImportReport) -> String {
    let mut lines = Vec::new();
    for i in &r.added {
        lines.push(match &i.reason {
            Some(caveat) => format!("added {} {} (note: {caveat})", i.kind, i.name),
            None => format!("added {} {}", i.kind, i.name),
        });
    }
    for i in &r.skipped {
        lines.push(format!(
            "skipped {} {}: {}",
            i.kind,
            i.name,
            i.reason.as_deref().unwrap_or("")
        ));
    }
    lines.push(format!(
        "{} added, {} skipped",
        r.added.len(),
        r.skipped.len()
    ));
    lines.join("\n")
}
