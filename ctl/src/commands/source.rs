//! `backupctl source ...`

use super::{Failure, Paths};
use crate::cli::SourceCommand;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::source::{watch_state, SourceView};
use crate::output::Output;
use backupd_common::protocol::{SourceInfo, SourceRequest, SourceSpec};

fn line(s: &SourceInfo) -> String {
    let last = match (&s.last_snapshot, s.last_snapshot_ns) {
        (Some(id), Some(ns)) => format!(
            "last snapshot {} at {}{}",
            id.get(..8).unwrap_or(id),
            super::queue::time(ns),
            s.last_latency_ms
                .map(|ms| format!(" ({ms} ms after the change)"))
                .unwrap_or_default()
        ),
        _ => "no snapshot yet".into(),
    };
    let mut text = format!(
        "{}{}  {}  -> {}  {} ({} watched), {} pending{}; {}",
        super::queue::lossy(s.spec.name.as_bytes()),
        if s.transient { " (this run)" } else { "" },
        super::queue::lossy(&s.spec.path),
        s.spec.repo.as_deref().unwrap_or("default"),
        watch_state(s.state),
        crate::output::count(s.dirs_watched, "dir"),
        crate::output::count(s.pending_paths, "path"),
        s.job.map(|j| format!(", job {j}")).unwrap_or_default(),
        last
    );
    if let Some(note) = &s.note {
        text.push_str(&format!("\n  note: {note}"));
    }
    text
}

pub async fn run(
    client: &mut Client,
    cmd: &SourceCommand,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    match cmd {
        SourceCommand::Add(a) => {
            let path = paths.abs(&a.path)?;
            let name = match &a.name {
                Some(n) => n.clone(),
                None => {
                    let p = std::path::Path::new(std::ffi::OsStr::new(
                        std::str::from_utf8(&path).unwrap_or("source"),
                    ));
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "root".into())
                }
            };
            let spec = SourceSpec {
                name,
                path,
                repo: a.repo.clone(),
                excludes: a.exclude.clone(),
                watch: !a.no_watch,
                debounce: a.debounce,
                max_delay: a.max_delay,
                rescan_every: a.rescan_every,
            };
            let s = client.source(SourceRequest::Add(spec)).await?;
            out.value(&SourceView::from(&s), || format!("added {}", line(&s)));
        }
        SourceCommand::List => {
            let list = client.sources().await?;
            let view: Vec<SourceView> = list.iter().map(SourceView::from).collect();
            out.value(&view, || {
                if list.is_empty() {
                    "no sources".into()
                } else {
                    list.iter().map(line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        SourceCommand::Remove { name } => {
            let s = client
                .source(SourceRequest::Remove { name: name.clone() })
                .await?;
            out.value(&SourceView::from(&s), || {
                format!("removed {} (its snapshots stay)", s.spec.name)
            });
        }
    }
    Ok(ExitCode::Ok)
}
