//! `source` group: watched and scheduled directories.

use super::Outcome;
use crate::engine::forget::{forget, ForgetOptions, Policy};
use crate::error::Error;
use crate::server::Services;
use backupd_common::protocol::{
    ForgetDecision, ForgetResult, KeepRules, Response, SourceDetail, SourceInfo, SourceRequest,
};

pub async fn handle(services: &Services, request: SourceRequest) -> Outcome {
    let with_next = |mut s: SourceInfo| {
        s.next_run_ns = services.timers.next_backup_ns(&s.spec.name);
        s
    };
    match request {
        SourceRequest::Add(spec) => {
            let added = services.sources.add(*spec, false).await;
            services.timers.wake();
            Outcome::result(added.map(|s| Response::Source(Box::new(s))))
        }
        SourceRequest::Set(spec) => {
            let set = services.sources.set(*spec).await;
            services.timers.wake();
            Outcome::result(set.map(|s| Response::Source(Box::new(s))))
        }
        SourceRequest::List => Outcome::ok(Response::Sources(
            services.sources.list().into_iter().map(with_next).collect(),
        )),
        SourceRequest::Show { name } => Outcome::result(show(services, &name).await),
        SourceRequest::Remove { name } => Outcome::result(
            services
                .sources
                .remove(&name)
                .await
                .map(|s| Response::Source(Box::new(s))),
        ),
    }
}

/// The source, its schedule, and what its retention would keep and forget now.
async fn show(services: &Services, name: &str) -> Result<Response, Error> {
    let mut info = services.sources.get(name)?;
    info.next_run_ns = services.timers.next_backup_ns(name);
    let rules = info.spec.policy.retention.rules();
    let next_retention_ns = services.timers.health_next_retention(name);
    let (plan, error) = match &rules {
        None => (None, None),
        Some(rules) => {
            let (repos, rules, spec) = (services.repos.clone(), rules.clone(), info.spec.clone());
            let analytics = services.analytics.clone();
            let planned = tokio::task::spawn_blocking(move || {
                let (_, repo) = repos.open(spec.repo.as_deref())?;
                let opts = ForgetOptions {
                    policy: policy_of(&rules),
                    dry_run: true,
                    paths: vec![spec.path.clone()],
                    holds: analytics.forget_holds()?,
                    ..Default::default()
                };
                let progress = crate::engine::progress::Progress::default();
                let cancel = tokio_util::sync::CancellationToken::new();
                Ok::<_, Error>(forget(&repo, &opts, &progress, &cancel)?)
            })
            .await
            .map_err(|source| Error::TaskFailed {
                task: "the retention dry run".into(),
                source,
            })?;
            match planned {
                Ok(report) => (
                    Some(ForgetResult {
                        dry_run: true,
                        removed: report.removed as u64,
                        decisions: report
                            .decisions
                            .into_iter()
                            .map(|d| ForgetDecision {
                                time: crate::repo::format_rfc3339(d.time_ns),
                                snapshot: d.snapshot,
                                host: d.host,
                                keep: d.keep,
                                reasons: d.reasons,
                            })
                            .collect(),
                        prune: None,
                    }),
                    None,
                ),
                Err(e) => (None, Some(e.to_string())),
            }
        }
    };
    Ok(Response::SourceDetail(Box::new(SourceDetail {
        info,
        retention: rules,
        next_retention_ns,
        retention_plan: plan,
        retention_error: error,
    })))
}

pub fn policy_of(rules: &KeepRules) -> Policy {
    Policy {
        last: rules.last,
        hourly: rules.hourly,
        daily: rules.daily,
        weekly: rules.weekly,
        monthly: rules.monthly,
        yearly: rules.yearly,
        within: rules.within,
    }
}
