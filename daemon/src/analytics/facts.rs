//! What the risk score and the recommendations need from the rest of the daemon, gathered once
//! per request: the sources' settings and health, each repository's last check, replica, key
//! age and disk forecast, the anomalies of the last week and the inotify watches in use.
//! Blocking (state reads, a key-ring read per repository).

use super::recommend::{RepoFacts, SourceFacts, Watches};
use super::risk::{self, Inputs};
use super::Analytics;
use crate::context::SettingsHandle;
use crate::queue::Queue;
use crate::replication::Replications;
use crate::repo::registry::Registry;
use crate::schedule::Timers;
use crate::watch::Sources;
use backupd_common::protocol::{
    HistoryQuery, JobState, RiskFactor, SourceInfo, SourceRisk, WatchState,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const DAY_NS: i64 = 86_400_000_000_000;
const WEEK_NS: i64 = 7 * DAY_NS;

/// The handles facts are read from.
#[derive(Clone)]
pub struct Handles {
    pub analytics: Arc<Analytics>,
    pub sources: Arc<Sources>,
    pub repos: Arc<Registry>,
    pub queue: Arc<Queue>,
    pub replications: Arc<Replications>,
    pub timers: Arc<Timers>,
    pub perf: Arc<crate::perf::Perf>,
    pub settings: SettingsHandle,
}

pub struct Facts {
    pub sources: Vec<SourceFacts>,
    pub repos: Vec<RepoFacts>,
    pub watches: Watches,
    /// Per source, the risk inputs.
    pub inputs: BTreeMap<String, Inputs>,
}

impl Facts {
    pub fn risk(&self, source: &str) -> SourceRisk {
        let inputs = self.inputs.get(source).cloned().unwrap_or_default();
        let r = risk::score(&inputs);
        SourceRisk {
            source: source.to_owned(),
            repo: self
                .sources
                .iter()
                .find(|s| s.name == source)
                .map(|s| s.repo.clone())
                .unwrap_or_default(),
            score: r.score,
            factors: r
                .factors
                .into_iter()
                .map(|f| RiskFactor {
                    name: f.name.to_owned(),
                    weight: f.weight,
                    level: f.level,
                    evidence: f.evidence,
                })
                .collect(),
        }
    }
}

/// The last successful check of each repository, from the job history: one scan of the
/// checks' index (a filter on the repository would walk every job of the repository).
fn last_checks(queue: &Queue) -> BTreeMap<String, i64> {
    let query = HistoryQuery {
        limit: 10_000,
        kind: Some("check".into()),
        ..Default::default()
    };
    let mut out = BTreeMap::new();
    for e in queue.history(&query).unwrap_or_default() {
        if let (JobState::Succeeded, Some(repo)) = (e.outcome, e.repo) {
            out.entry(repo).or_insert(e.finished_ns);
        }
    }
    out
}

/// The inotify watch limit, and the watches the sources hold.
fn watches(sources: &[SourceInfo]) -> Watches {
    let max = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Watches {
        used: sources.iter().map(|s| s.dirs_watched).sum(),
        max,
    }
}

pub fn gather(h: &Handles, names: &[String], now: i64) -> Facts {
    let infos = h.sources.list();
    let health = h.timers.health();
    let config = h.settings.get().config.clone();
    let key_policy_days = config.security.key_age_policy().as_secs_f64() / 86_400.0;
    let anomalies = h
        .analytics
        .store()
        .anomalies(now - WEEK_NS, None)
        .unwrap_or_default();
    let replications = h.replications.list();
    let checks = last_checks(&h.queue);
    let forecasts = h.perf.forecasts();
    let held: Vec<String> = h
        .analytics
        .holds()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.source)
        .collect();

    let mut sources = Vec::new();
    let mut inputs = BTreeMap::new();
    let mut repo_names = Vec::new();
    for name in names {
        let stats = h.analytics.aggregates().load(name).unwrap_or_default();
        let info = infos.iter().find(|i| &i.spec.name == name);
        let repo = info
            .and_then(|i| h.repos.entry(i.spec.repo.as_deref()).ok())
            .map(|e| e.name)
            .or_else(|| stats.summary.repo.clone())
            .unwrap_or_default();
        if !repo_names.contains(&repo) && !repo.is_empty() {
            repo_names.push(repo.clone());
        }
        let (week_jobs, week_failed) = stats.jobs_within(now, 7);
        let failure_rate = f64::from(week_failed) / f64::from(week_jobs.max(1));
        let source_health = health.sources.iter().find(|s| &s.name == name);
        let mut recent_runs: Vec<f64> = stats
            .days
            .range((now / DAY_NS) - 6..)
            .filter(|(_, d)| d.jobs > d.failed)
            .map(|(_, d)| d.bytes_added as f64 / f64::from(d.jobs - d.failed))
            .collect();
        sources.push(SourceFacts {
            name: name.clone(),
            repo: repo.clone(),
            held: held.contains(name),
            recent_failure_rate: failure_rate,
            recent_jobs: u64::from(week_jobs),
            last_error_class: None,
            has_retention: info.is_none_or(|i| i.spec.policy.retention.rules().is_some()),
            snapshots: health.snapshot_counts.get(name).copied(),
            watched: info.is_some_and(|i| i.spec.watch && i.state == WatchState::Watching),
            debounce_secs: info.map_or(0.0, |i| i.spec.debounce.as_secs_f64()),
            jobs_per_day: f64::from(week_jobs) / 7.0,
            median_bytes_added: super::baseline::median(&mut recent_runs),
            watch_note: info.and_then(|i| i.note.clone()),
        });
        let anomalies_here = anomalies
            .iter()
            .filter(|a| &a.source == name)
            .map(|a| if a.critical { 3 } else { 1 })
            .sum();
        inputs.insert(
            name.clone(),
            Inputs {
                recent_failure_rate: failure_rate,
                since_success_secs: stats
                    .summary
                    .last_success_ns
                    .or(source_health.and_then(|s| s.last_success_ns))
                    .map(|t| ((now - t).max(0) / 1_000_000_000) as u64),
                rpo_secs: source_health.map_or(86_400, |s| s.rpo_ms / 1000),
                recent_anomalies: anomalies_here,
                ..Inputs::default()
            },
        );
    }
    let repos: Vec<RepoFacts> = repo_names
        .iter()
        .map(|name| {
            let key_age_days = h
                .repos
                .open(Some(name))
                .ok()
                .and_then(|(_, r)| crate::security::compliance::current_key_created(&r).ok())
                .map(|created| (now - created).max(0) as f64 / DAY_NS as f64);
            let check_scheduled = health
                .repositories
                .iter()
                .find(|r| &r.name == name)
                .is_some_and(|r| r.check.schedule.is_some());
            let holder = format!("repository {name}");
            RepoFacts {
                name: name.clone(),
                has_replica: replications.iter().any(|r| &r.spec.from == name),
                days_since_check: checks
                    .get(name)
                    .map(|t| (now - t).max(0) as f64 / DAY_NS as f64),
                check_scheduled,
                key_age_days,
                key_max_age_days: key_policy_days,
                days_to_full: forecasts
                    .iter()
                    .filter(|f| f.holds.contains(&holder))
                    .filter_map(|f| f.full_at_ns)
                    .map(|t| (t - now).max(0) as f64 / DAY_NS as f64)
                    .reduce(f64::min),
            }
        })
        .collect();
    for s in &sources {
        let (Some(input), Some(repo)) = (
            inputs.get_mut(&s.name),
            repos.iter().find(|r| r.name == s.repo),
        ) else {
            continue;
        };
        input.days_since_check = repo.days_since_check;
        input.has_replica = repo.has_replica;
        input.key_age_days = repo.key_age_days.unwrap_or(0.0);
        input.key_rotation_days = key_policy_days;
        input.days_to_full = repo.days_to_full;
    }
    Facts {
        sources,
        repos,
        watches: watches(&infos),
        inputs,
    }
}
