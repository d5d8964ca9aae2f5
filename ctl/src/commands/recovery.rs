//! `backupctl recovery fitness|select|plan|status|list` (`run`, `rollback` and `commit` submit
//! `recovery` jobs: `commands::jobs`).

use super::{Failure, Paths};
use crate::cli::recovery::{FitnessArgs, OnlyArg, PlanArgs, RecoveryCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::recovery_plan::{FitnessView, PlanView, SelectionView};
use crate::json::{path, time};
use crate::output::Output;
use crate::progress::bytes;
use backupd_common::protocol::{
    FitnessReport, FitnessRequest, OnlyMode, PlanInfo, PlanRequest, StepState,
};
use std::time::{Duration, UNIX_EPOCH};

/// A point in time as users type it: Unix seconds, RFC 3339, or `YYYY-MM-DD HH:MM[:SS]`
/// (UTC when no offset is given).
pub fn parse_at(flag: &str, text: &str) -> Result<i64, Failure> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1_000_000_000));
    }
    let parsed = humantime::parse_rfc3339_weak(text)
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{text}:00")));
    let t = parsed.map_err(|e| {
        Failure::Usage(format!(
            "{flag} {text:?}: {e}; use `2026-11-29 17:00` (UTC), RFC 3339 or Unix seconds"
        ))
    })?;
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Failure::Usage(format!("{flag} {text:?} is before 1970")))?;
    Ok(d.as_nanos() as i64)
}

fn fitness_request(a: &FitnessArgs, paths: Paths) -> Result<FitnessRequest, Failure> {
    Ok(FitnessRequest {
        repo: a.repo.clone(),
        source: a.source.clone(),
        snapshots: a.snapshots.clone(),
        path: a.path.as_deref().map(|p| paths.abs(p)).transpose()?,
        at_ns: a.at.as_deref().map(|t| parse_at("--at", t)).transpose()?,
    })
}

fn plan_request(a: &PlanArgs, paths: Paths) -> Result<PlanRequest, Failure> {
    Ok(PlanRequest {
        repo: a.repo.clone(),
        source: a.source.clone(),
        path: paths.abs(&a.path)?,
        target: a.target.as_deref().map(|p| paths.abs(p)).transpose()?,
        at_ns: a.at.as_deref().map(|t| parse_at("--at", t)).transpose()?,
        snapshot: a.snapshot.clone(),
        includes: a.include.clone(),
        excludes: a.exclude.clone(),
        paths: a
            .only_path
            .iter()
            .map(|p| paths.raw(p))
            .collect::<Result<_, _>>()?,
        changed_since_ns: a
            .changed_since
            .as_deref()
            .map(|t| parse_at("--changed-since", t))
            .transpose()?,
        only: match a.only {
            None => OnlyMode::All,
            Some(OnlyArg::Missing) => OnlyMode::Missing,
            Some(OnlyArg::Different) => OnlyMode::Different,
        },
        from_replica: a.from_replica,
    })
}

fn dur(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms.div_ceil(1000))).to_string()
}

fn fitness_text(r: &FitnessReport) -> String {
    let mut out = format!(
        "{}  {}  score {:>3}{}",
        super::results::short(&r.snapshot),
        time(r.time_ns),
        r.score,
        r.source
            .as_ref()
            .map(|s| format!("  source {s}"))
            .unwrap_or_default()
    );
    for f in &r.factors {
        out.push_str(&format!(
            "\n  {:<13} {:>3} (weight {:>2}%)  {}",
            f.name,
            f.score,
            f.weight,
            f.evidence.join("; ")
        ));
    }
    out
}

pub fn plan_text(p: &PlanInfo) -> String {
    let mut out = format!(
        "plan {}  {}\n  {} from snapshot {} ({}) in {}",
        p.id,
        p.state.as_str(),
        path(&p.path),
        super::results::short(&p.snapshot),
        time(p.snapshot_time_ns),
        p.reading_from
    );
    if let (Some(at), Some(rpo)) = (p.at_ns, p.effective_rpo_ms) {
        out.push_str(&format!(
            "\n  requested {}: the snapshot is {} before it (effective RPO)",
            time(at),
            dur(rpo)
        ));
    }
    out.push_str(&format!(
        "\n  into {}: {}\n  {} file(s), {}; estimated time to recover {} at {}/s ({})",
        path(&p.target),
        p.selection.join(", "),
        p.files,
        bytes(p.bytes),
        dur(p.rto_estimate_ms),
        bytes(p.throughput),
        if p.throughput_measured {
            "measured on this machine"
        } else {
            "assumed: no restore measured here yet"
        }
    ));
    if let Some(f) = &p.fitness {
        out.push_str(&format!("\n  fitness {}", f.score));
    }
    if let Some(why) = &p.failover {
        out.push_str(&format!("\n  FAILOVER: {why}"));
    }
    for s in &p.steps {
        let mark = match s.state {
            StepState::Done => "done",
            StepState::Failed => "FAILED",
            StepState::Running => "running",
            StepState::Interrupted => "INTERRUPTED",
            StepState::Pending => "pending",
        };
        out.push_str(&format!(
            "\n  {}. {:<10} {:<11} est. {:<8} {}",
            s.number,
            s.kind.as_str(),
            mark,
            dur(s.estimate_ms),
            s.detail.clone().unwrap_or_default()
        ));
    }
    if let Some(dir) = &p.rollback_dir {
        out.push_str(&format!(
            "\n  previous state kept in {} until `backupctl recovery commit {}`",
            path(dir),
            p.id
        ));
    }
    for n in &p.notes {
        out.push_str(&format!("\n  note: {n}"));
    }
    out
}

pub async fn run(
    client: &mut Client,
    cmd: &RecoveryCommand,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    match cmd {
        RecoveryCommand::Fitness(a) => {
            let list = client.recovery_fitness(fitness_request(a, paths)?).await?;
            let view: Vec<FitnessView> = list.iter().map(FitnessView::from).collect();
            out.value(&view, || {
                if list.is_empty() {
                    "no snapshot qualifies".to_owned()
                } else {
                    list.iter().map(fitness_text).collect::<Vec<_>>().join("\n")
                }
            });
        }
        RecoveryCommand::Select(a) => {
            let s = client.recovery_select(fitness_request(a, paths)?).await?;
            out.value(&SelectionView::from(&s), || {
                format!(
                    "chosen: {}\nwhy: {} ({} candidate(s))",
                    fitness_text(&s.chosen),
                    s.reason,
                    s.candidates
                )
            });
        }
        RecoveryCommand::Plan(a) => {
            let p = client.recovery_plan(plan_request(a, paths)?).await?;
            out.value(&PlanView::from(&p), || {
                format!(
                    "{}\nrun it with `backupctl recovery run {}`",
                    plan_text(&p),
                    p.id
                )
            });
        }
        RecoveryCommand::Status { plan } => {
            let p = client.recovery_status(plan.clone()).await?;
            out.value(&PlanView::from(&p), || plan_text(&p));
        }
        RecoveryCommand::List => {
            let list = client.recovery_list().await?;
            let view: Vec<PlanView> = list.iter().map(PlanView::from).collect();
            out.value(&view, || {
                if list.is_empty() {
                    return "no recovery plans".to_owned();
                }
                list.iter()
                    .map(|p| {
                        format!(
                            "{:>4}  {:<11}  {}  {} -> {}  snapshot {}",
                            p.id,
                            p.state.as_str(),
                            time(p.created_ns),
                            path(&p.path),
                            path(&p.target),
                            super::results::short(&p.snapshot)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        // Submitted as jobs by `commands::jobs`, or shown by `recovery_objectives`.
        RecoveryCommand::Run(_)
        | RecoveryCommand::Rollback(_)
        | RecoveryCommand::Commit(_)
        | RecoveryCommand::Drill(_)
        | RecoveryCommand::Objectives => {}
    }
    Ok(ExitCode::Ok)
}
