//! `backupctl repo replicate add|list|remove` (`run` submits a job: `commands::jobs`).

use super::Failure;
use crate::cli::{ReplicateAddArgs, ReplicateCommand};
use crate::client::Client;
use crate::json::replicate::ReplicationView;
use crate::output::{count, Output};
use backupd_common::protocol::{ReplicaTrigger, ReplicationInfo, ReplicationSpec};
use backupd_common::rate::Rate;
use std::time::Duration;

fn age(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn line(i: &ReplicationInfo) -> String {
    let trigger = match &i.spec.trigger {
        ReplicaTrigger::Manual => "manual".to_owned(),
        ReplicaTrigger::AfterEachSnapshot => "after each snapshot".to_owned(),
        ReplicaTrigger::Schedule(s) => format!("schedule {s}"),
        ReplicaTrigger::Every(d) => format!("every {}", age(*d)),
    };
    let lag = match (i.snapshots_behind, i.lag) {
        (Some(0), _) => "up to date".to_owned(),
        (Some(n), Some(l)) => format!("{} behind, {} old", count(n, "snapshot"), age(l)),
        _ => "lag unknown (a repository does not open)".to_owned(),
    };
    let mut flags = Vec::new();
    if i.spec.verify {
        flags.push("verify".to_owned());
    }
    if i.spec.mirror_forget {
        flags.push("mirror-forget".to_owned());
    }
    if let Some(b) = i.spec.bwlimit {
        flags.push(format!("bwlimit {}/s", crate::progress::bytes(b)));
    }
    format!(
        "{} -> {}  {}{}  {}{}  (allowed lag {}){}",
        i.spec.from,
        i.spec.to,
        trigger,
        if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        },
        lag,
        if i.over_lag { " OVER ALLOWED LAG" } else { "" },
        age(i.max_lag),
        i.last_error
            .as_ref()
            .map(|e| format!("\n  last run failed: {e}"))
            .unwrap_or_default()
    )
}

fn spec(a: &ReplicateAddArgs) -> Result<ReplicationSpec, Failure> {
    let trigger = if a.after_each_snapshot {
        ReplicaTrigger::AfterEachSnapshot
    } else if let Some(s) = &a.schedule {
        s.parse::<backupd_common::schedule::Schedule>()
            .map_err(|e| Failure::Usage(format!("--schedule: {e}")))?;
        ReplicaTrigger::Schedule(s.clone())
    } else if let Some(d) = a.every {
        ReplicaTrigger::Every(d)
    } else {
        ReplicaTrigger::Manual
    };
    let bwlimit = match &a.bwlimit {
        Some(text) => Rate::parse_limit(text)
            .map_err(|e| Failure::Usage(format!("--bwlimit: {e}")))?
            .map(Rate::bytes_per_sec),
        None => None,
    };
    Ok(ReplicationSpec {
        from: a.from.clone(),
        to: a.to.clone(),
        trigger,
        verify: a.verify,
        mirror_forget: a.mirror_forget,
        bwlimit,
        max_lag: a.max_lag,
    })
}

pub async fn run(client: &mut Client, cmd: &ReplicateCommand, out: &Output) -> Result<(), Failure> {
    match cmd {
        ReplicateCommand::Add(a) => {
            let info = client.replicate_add(spec(a)?).await?;
            out.value(&ReplicationView::from(&info), || {
                format!("replication stored: {}", line(&info))
            });
        }
        ReplicateCommand::List => {
            let list = client.replicate_list().await?;
            let view: Vec<ReplicationView> = list.iter().map(ReplicationView::from).collect();
            out.value(&view, || {
                if list.is_empty() {
                    "no replications".to_owned()
                } else {
                    list.iter().map(line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        ReplicateCommand::Remove { to } => {
            let info = client.replicate_remove(to.clone()).await?;
            out.value(&ReplicationView::from(&info), || {
                format!(
                    "replication into {} removed; the replica and its snapshots stay",
                    info.spec.to
                )
            });
        }
        // Submitted as a job by `commands::jobs`.
        ReplicateCommand::Run(_) => {}
    }
    Ok(())
}
