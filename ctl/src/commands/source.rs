//! `backupctl source ...`

use super::{Failure, Paths};
use crate::cli::{PolicyArgs, SourceCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::source::{watch_state, SourceView};
use crate::output::Output;
use backupd_common::protocol::{
    KeepRules, Retention, SourceInfo, SourcePolicy, SourceRequest, SourceSpec,
};

/// Applies the flags given to `policy`; what is not given stays.
fn apply(args: &PolicyArgs, policy: &mut SourcePolicy) {
    if let Some(s) = &args.schedule {
        policy.schedule = Some(s.clone());
    }
    if let Some(e) = args.every {
        policy.every = Some(e);
    }
    if let Some(j) = args.jitter {
        policy.jitter = j;
    }
    if args.keep_all {
        policy.retention = Retention::KeepAll;
    }
    let given = [
        args.keep_last,
        args.keep_hourly,
        args.keep_daily,
        args.keep_weekly,
        args.keep_monthly,
        args.keep_yearly,
    ];
    if given.iter().any(Option::is_some) || args.keep_within.is_some() {
        // New rules replace the old ones as a whole: a policy is read as one.
        policy.retention = Retention::Keep(KeepRules {
            last: args.keep_last.unwrap_or(0),
            hourly: args.keep_hourly.unwrap_or(0),
            daily: args.keep_daily.unwrap_or(0),
            weekly: args.keep_weekly.unwrap_or(0),
            monthly: args.keep_monthly.unwrap_or(0),
            yearly: args.keep_yearly.unwrap_or(0),
            within: args.keep_within,
        });
    }
    if let Some(r) = args.retention_every {
        policy.retention_every = Some(r);
    }
    if let Some(r) = args.rpo {
        policy.rpo = Some(r);
    }
    if let Some(r) = args.rto {
        policy.rto = Some(r);
    }
}

/// `default (within 1h, hourly 48, ...)`, `keep everything`, or the rules.
pub fn retention_text(r: &Retention) -> String {
    match r {
        Retention::Default => format!("default ({})", KeepRules::SOURCE_DEFAULT.describe()),
        Retention::KeepAll => "keep everything".into(),
        Retention::Keep(k) => k.describe(),
    }
}

fn schedule_text(p: &SourcePolicy) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(s) = &p.schedule {
        parts.push(s.clone());
    }
    if let Some(e) = p.every {
        parts.push(format!("every {}", humantime::format_duration(e)));
    }
    if parts.is_empty() {
        return None;
    }
    let mut text = parts.join(" and ");
    if !p.jitter.is_zero() {
        text.push_str(&format!(
            " (+ up to {})",
            humantime::format_duration(p.jitter)
        ));
    }
    Some(text)
}

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
    if let Some(schedule) = schedule_text(&s.spec.policy) {
        text.push_str(&format!(
            "\n  schedule: {schedule}; next {}",
            s.next_run_ns
                .map(super::queue::time)
                .unwrap_or_else(|| "not planned yet".into())
        ));
    }
    text.push_str(&format!(
        "\n  retention: {}",
        retention_text(&s.spec.policy.retention)
    ));
    if let Some(note) = &s.note {
        text.push_str(&format!("\n  note: {note}"));
    }
    text
}

fn show_text(d: &backupd_common::protocol::SourceDetail) -> String {
    let mut text = line(&d.info);
    if let Some(rpo) = d.info.spec.policy.rpo {
        text.push_str(&format!("\n  rpo: {}", humantime::format_duration(rpo)));
    }
    if let Some(rto) = d.info.spec.policy.rto {
        text.push_str(&format!("\n  rto: {}", humantime::format_duration(rto)));
    }
    if let Some(n) = d.next_retention_ns {
        text.push_str(&format!(
            "\n  next retention run: {}",
            super::queue::time(n)
        ));
    }
    if let Some(e) = &d.retention_error {
        text.push_str(&format!("\n  retention plan unavailable: {e}"));
    }
    if let Some(plan) = &d.retention_plan {
        let keep = plan.decisions.iter().filter(|x| x.keep).count();
        text.push_str(&format!(
            "\n  retention now would keep {} and forget {}:",
            crate::output::count(keep as u64, "snapshot"),
            crate::output::count(plan.removed, "snapshot"),
        ));
        for x in plan.decisions.iter().rev() {
            text.push_str(&format!(
                "\n    {} {}  {}  {}",
                if x.keep { "keep  " } else { "forget" },
                x.snapshot.get(..8).unwrap_or(&x.snapshot),
                x.time,
                x.reasons.join(", ")
            ));
        }
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
                policy: {
                    let mut p = SourcePolicy::default();
                    apply(&a.policy, &mut p);
                    p
                },
            };
            let s = client.source(SourceRequest::Add(Box::new(spec))).await?;
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
        SourceCommand::Set(a) => {
            let list = client.sources().await?;
            let Some(current) = list.into_iter().find(|s| s.spec.name == a.name) else {
                return Err(Failure::Usage(format!(
                    "no source named {:?}; `backupctl source list` shows them",
                    a.name
                )));
            };
            let mut spec = current.spec;
            if a.watch {
                spec.watch = true;
            }
            if a.no_watch {
                spec.watch = false;
            }
            if a.no_schedule {
                spec.policy.schedule = None;
                spec.policy.every = None;
                spec.policy.jitter = Default::default();
            }
            if a.default_retention {
                spec.policy.retention = Retention::Default;
            }
            apply(&a.policy, &mut spec.policy);
            let s = client.source(SourceRequest::Set(Box::new(spec))).await?;
            out.value(&SourceView::from(&s), || format!("changed {}", line(&s)));
        }
        SourceCommand::Show { name } => {
            let d = client.source_detail(name).await?;
            out.value(&crate::json::source::SourceDetailView::from(&d), || {
                show_text(&d)
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
