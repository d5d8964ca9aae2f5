//! `backupctl sync ...` (but `sync run`, which submits a job: `jobs`).

use super::{Failure, Paths};
use crate::cli::{StrategyArg, SyncAddArgs, SyncCommand, SyncModeArg, TakeArg};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::sync::{ConflictView, PairView, RunView};
use crate::output::{count, Output};
use crate::progress::bytes;
use backupd_common::client::ClientError;
use backupd_common::protocol::{
    Response, SyncConflict, SyncInfo, SyncMode, SyncRequest, SyncResult, SyncSpec, SyncStrategy,
    Take,
};

fn unexpected(r: Response) -> Failure {
    Failure::Client(ClientError::Unexpected(format!("{r:?}")))
}

fn spec(a: &SyncAddArgs, paths: Paths) -> Result<SyncSpec, Failure> {
    let mode = match a.mode {
        SyncModeArg::Mirror => SyncMode::Mirror,
        SyncModeArg::TwoWay => SyncMode::TwoWay,
    };
    Ok(SyncSpec {
        name: a.name.clone(),
        src: paths.abs(&a.src)?,
        dst: paths.abs(&a.dst)?,
        mode,
        strategy: match a.strategy {
            StrategyArg::Newer => SyncStrategy::Newer,
            StrategyArg::Larger => SyncStrategy::Larger,
            StrategyArg::Local => SyncStrategy::Local,
            StrategyArg::Remote => SyncStrategy::Remote,
            StrategyArg::KeepBoth => SyncStrategy::KeepBoth,
            StrategyArg::Manual => SyncStrategy::Manual,
        },
        // Mirror deletes by default; two-way does not.
        delete: a.delete || (!a.no_delete && mode == SyncMode::Mirror),
        excludes: a.exclude.clone(),
        watch: !a.no_watch,
        debounce: a.debounce,
        schedule: a.schedule.clone(),
        every: a.every,
        bwlimit: a.bwlimit.filter(|b| *b > 0),
    })
}

fn pair_text(i: &SyncInfo) -> String {
    let s = &i.spec;
    let mut t = format!(
        "{}  {} -> {}  {}{}{}  {}",
        s.name,
        super::queue::lossy(&s.src),
        super::queue::lossy(&s.dst),
        s.mode.as_str(),
        if s.mode == SyncMode::TwoWay {
            format!(" ({})", s.strategy.as_str())
        } else {
            String::new()
        },
        if s.delete { ", deletes" } else { "" },
        if i.paused {
            "paused".to_owned()
        } else {
            crate::json::source::watch_state(i.state).to_owned()
        },
    );
    t.push_str(&format!(
        "\n  {}, {} pending",
        count(i.files, "file"),
        count(i.conflicts, "conflict")
    ));
    match (&i.last_outcome, i.last_run_ns) {
        (Some(o), Some(ns)) => t.push_str(&format!(", last run {o} at {}", super::queue::time(ns))),
        _ => t.push_str(", no run yet"),
    }
    if let Some(j) = i.job {
        t.push_str(&format!(", job {j}"));
    }
    if let Some(c) = &i.current {
        t.push_str(&format!(
            "\n  copying {} ({} of {})",
            super::queue::lossy(&c.path),
            bytes(c.bytes_done),
            bytes(c.bytes_total)
        ));
    }
    if let Some(e) = &i.last_error {
        t.push_str(&format!("\n  last error: {e}"));
    }
    if let Some(n) = &i.note {
        t.push_str(&format!("\n  note: {n}"));
    }
    t
}

/// A finished run as text.
pub fn result_text(job: u64, r: &SyncResult) -> String {
    let mut t = format!(
        "sync {} (job {job}): {} copied ({}{}), {} deleted to trash, {} ({} pending), {} in {} ms ({}/s)",
        r.pair,
        count(r.files_copied, "file"),
        bytes(r.bytes_copied),
        if r.bytes_resumed > 0 {
            format!(", {} resumed", bytes(r.bytes_resumed))
        } else {
            String::new()
        },
        count(r.files_deleted, "file"),
        count(r.conflicts, "conflict"),
        r.conflicts_pending,
        count(r.files_scanned, "entry"),
        r.duration_ms,
        bytes(r.bytes_per_sec),
    );
    for w in &r.warnings {
        t.push_str(&format!("\n  warning: {w}"));
    }
    t
}

fn conflicts_out(list: &[SyncConflict], out: &Output) {
    let views: Vec<ConflictView> = list.iter().map(ConflictView::from).collect();
    out.value(&views, || {
        if list.is_empty() {
            return "no conflicts".into();
        }
        list.iter()
            .map(|c| {
                let side = |s: &Option<backupd_common::protocol::SideVersion>| match s {
                    Some(s) => format!("{} at {}", bytes(s.size), super::queue::time(s.mtime_ns)),
                    None => "deleted".into(),
                };
                format!(
                    "{}  local: {}  remote: {}",
                    super::queue::lossy(&c.path),
                    side(&c.local),
                    side(&c.remote)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
}

pub async fn run(
    client: &mut Client,
    cmd: &SyncCommand,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let one = |r: Response, out: &Output| match r {
        Response::SyncPair(i) => {
            out.value(&PairView::from(i.as_ref()), || pair_text(&i));
            Ok(ExitCode::Ok)
        }
        other => Err(unexpected(other)),
    };
    match cmd {
        SyncCommand::Add(a) => {
            let request = SyncRequest::Add(Box::new(spec(a, paths)?));
            one(client.sync(request).await?, out)
        }
        SyncCommand::List => match client.sync(SyncRequest::List).await? {
            Response::SyncPairs(list) => {
                let views: Vec<PairView> = list.iter().map(PairView::from).collect();
                out.value(&views, || {
                    if list.is_empty() {
                        "no sync pairs; add one with `backupctl sync add --name N SRC DST`".into()
                    } else {
                        list.iter().map(pair_text).collect::<Vec<_>>().join("\n")
                    }
                });
                Ok(ExitCode::Ok)
            }
            other => Err(unexpected(other)),
        },
        SyncCommand::Show(n) => one(
            client
                .sync(SyncRequest::Show {
                    name: n.name.clone(),
                })
                .await?,
            out,
        ),
        SyncCommand::Remove(n) => one(
            client
                .sync(SyncRequest::Remove {
                    name: n.name.clone(),
                })
                .await?,
            out,
        ),
        SyncCommand::Pause(n) => one(
            client
                .sync(SyncRequest::Pause {
                    name: n.name.clone(),
                })
                .await?,
            out,
        ),
        SyncCommand::Resume(n) => one(
            client
                .sync(SyncRequest::Resume {
                    name: n.name.clone(),
                })
                .await?,
            out,
        ),
        SyncCommand::History(a) => {
            let request = SyncRequest::History {
                name: a.name.clone(),
                limit: a.limit,
            };
            match client.sync(request).await? {
                Response::SyncHistory(runs) => {
                    let views: Vec<RunView> = runs.iter().map(RunView::from).collect();
                    out.value(&views, || {
                        if runs.is_empty() {
                            return "no runs yet".into();
                        }
                        runs.iter()
                            .map(|r| {
                                format!(
                                    "{}  {}  {} copied ({}), {} deleted, {}, {} ms, {}/s{}",
                                    super::queue::time(r.started_ns),
                                    r.outcome,
                                    count(r.result.files_copied, "file"),
                                    bytes(r.result.bytes_copied),
                                    r.result.files_deleted,
                                    count(r.result.conflicts, "conflict"),
                                    r.result.duration_ms,
                                    bytes(r.result.bytes_per_sec),
                                    r.error
                                        .as_ref()
                                        .map(|e| format!(": {e}"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                    Ok(ExitCode::Ok)
                }
                other => Err(unexpected(other)),
            }
        }
        SyncCommand::Conflicts(n) => {
            match client
                .sync(SyncRequest::Conflicts {
                    name: n.name.clone(),
                })
                .await?
            {
                Response::SyncConflicts(list) => {
                    conflicts_out(&list, out);
                    Ok(ExitCode::Ok)
                }
                other => Err(unexpected(other)),
            }
        }
        SyncCommand::Resolve(a) => {
            let request = SyncRequest::Resolve {
                name: a.name.clone(),
                path: paths.raw(&a.path)?,
                take: match a.take {
                    TakeArg::Local => Take::Local,
                    TakeArg::Remote => Take::Remote,
                    TakeArg::Both => Take::Both,
                },
            };
            match client.sync(request).await? {
                Response::SyncConflicts(list) => {
                    conflicts_out(&list, out);
                    Ok(ExitCode::Ok)
                }
                other => Err(unexpected(other)),
            }
        }
        // Submitted as a job before connecting (`jobs::prepare`).
        SyncCommand::Run(_) => Ok(ExitCode::Ok),
    }
}
