//! What `system health` says about the daemon's own operations: per source its last backups,
//! next scheduled run, snapshots and RPO; per repository its prune and verification timers.
//! Built by the scheduler at every wake-up (blocking: history scans, snapshot listings), read
//! by health requests from memory.

use super::plan::{self, Task, Timer};
use super::Handles;
use crate::queue::Queue;
use crate::recovery::drill::of_source;
use crate::recovery::throughput::{self, Throughput};
use crate::state::records::timer::TimerRecord;
use backupd_common::protocol::{
    HistoryQuery, JobState, RepoMaintenance, SourceHealth, SourceInfo, TimerState,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// A timer that has not fired this long after it was due is reported overdue.
const OVERDUE_AFTER_NS: i64 = 3600 * 1_000_000_000;

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub sources: Vec<SourceHealth>,
    pub repositories: Vec<RepoMaintenance>,
    /// Why `system health` is degraded (a source past its RPO).
    pub notes: Vec<String>,
    pub next_due_ns: Option<i64>,
    pub next_backup: BTreeMap<String, i64>,
    pub next_retention: BTreeMap<String, i64>,
    /// Snapshots per source, counted at `counted_ns`.
    pub snapshot_counts: BTreeMap<String, u64>,
    pub counted_ns: Option<i64>,
    /// Bytes and files of each source's newest snapshot (what restoring it means), and the
    /// restore throughput, measured at `counted_ns`: the RTO estimate.
    pub newest_size: BTreeMap<String, (u64, u64)>,
    pub throughput: Option<Throughput>,
}

/// One timer as the scheduler left it.
pub struct TimerView {
    pub timer: Timer,
    pub record: TimerRecord,
    pub due_ns: Option<i64>,
}

/// The finish time of the newest backup of `source` in the history that succeeded (or, with
/// `success` false, failed), and its error.
pub fn last_backup(queue: &Queue, source: &str, success: bool) -> Option<(i64, Option<String>)> {
    let query = HistoryQuery {
        limit: 200,
        source: Some(source.to_owned()),
        kind: Some("backup".into()),
        ..Default::default()
    };
    let entries = queue.history(&query).ok()?;
    entries
        .into_iter()
        .find(|e| (e.outcome == JobState::Succeeded) == success)
        .map(|e| (e.finished_ns, e.error))
}

fn state(view: Option<&TimerView>, now: i64) -> TimerState {
    let Some(v) = view else {
        return TimerState::default();
    };
    let r = &v.record;
    TimerState {
        schedule: Some(v.timer.when.to_string()),
        last_run_ns: r.last_run_ns,
        next_run_ns: v.due_ns,
        last_job: r.last_job,
        last_outcome: r.last_outcome.clone(),
        last_error: r.last_error.clone(),
        overdue: v.due_ns.is_some_and(|d| now - d > OVERDUE_AFTER_NS),
    }
}

/// Builds the report. `seen_ns` is when the scheduler first saw each source: a new source
/// is not past its RPO before it has existed that long.
pub fn build(
    h: &Handles,
    sources: &[SourceInfo],
    views: &[TimerView],
    seen_ns: &BTreeMap<String, i64>,
    now: i64,
    count: bool,
    previous: &Report,
) -> Report {
    let by_key: BTreeMap<String, &TimerView> =
        views.iter().map(|v| (v.timer.task.key(), v)).collect();
    let mut report = Report {
        snapshot_counts: previous.snapshot_counts.clone(),
        counted_ns: previous.counted_ns,
        newest_size: previous.newest_size.clone(),
        throughput: previous.throughput,
        ..Default::default()
    };
    if count {
        (report.snapshot_counts, report.newest_size) = count_snapshots(h, sources);
        report.throughput = Some(throughput::measured(&h.queue));
        report.counted_ns = Some(now);
    }
    for v in views {
        if let Some(d) = v.due_ns.filter(|d| *d > now) {
            report.next_due_ns = Some(report.next_due_ns.map_or(d, |n| n.min(d)));
        }
    }
    for info in sources {
        let name = &info.spec.name;
        let backup = by_key.get(
            &Task::Backup {
                source: name.clone(),
            }
            .key(),
        );
        let retention = by_key.get(
            &Task::Retention {
                source: name.clone(),
            }
            .key(),
        );
        let success = last_backup(&h.queue, name, true);
        let failure = last_backup(&h.queue, name, false);
        let last_success_ns = success
            .map(|s| s.0)
            .into_iter()
            .chain(info.last_snapshot_ns)
            .max();
        let rpo = info.spec.policy.rpo_for(info.spec.watch);
        let rpo_ns = i64::try_from(rpo.as_nanos()).unwrap_or(i64::MAX);
        let since = last_success_ns
            .or_else(|| seen_ns.get(name).copied())
            .unwrap_or(now);
        let within_rpo = now.saturating_sub(since) <= rpo_ns;
        if !within_rpo {
            report.notes.push(format!(
                "source {name} has had no successful backup for {} (its RPO is {}){}",
                humantime::format_duration(Duration::from_secs(
                    (now.saturating_sub(since) / 1_000_000_000).max(0) as u64
                )),
                humantime::format_duration(rpo),
                failure
                    .as_ref()
                    .and_then(|f| f.1.as_ref())
                    .map(|e| format!("; the last failure: {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(note) = rto_note(info, &report) {
            report.notes.push(note);
        }
        let next_run_ns = backup.and_then(|v| v.due_ns);
        if let Some(n) = next_run_ns {
            report.next_backup.insert(name.clone(), n);
        }
        if let Some(n) = retention.and_then(|v| v.due_ns) {
            report.next_retention.insert(name.clone(), n);
        }
        report.sources.push(SourceHealth {
            name: name.clone(),
            last_success_ns,
            last_failure_ns: failure.as_ref().map(|f| f.0),
            last_error: failure.and_then(|f| f.1),
            next_run_ns,
            snapshots: report.snapshot_counts.get(name).copied(),
            rpo_ms: rpo.as_millis() as u64,
            within_rpo,
            retention: state(retention.copied(), now),
        });
    }
    let mut repos: BTreeMap<String, RepoMaintenance> = BTreeMap::new();
    let subsets = h.settings.get().config.maintenance.read_data_subsets;
    for v in views {
        let (repo, slot) = match &v.timer.task {
            Task::Prune { repo } => (repo, 0),
            Task::Check { repo } => (repo, 1),
            Task::ReadData { repo } => (repo, 2),
            Task::Backup { .. }
            | Task::Retention { .. }
            | Task::Replicate { .. }
            | Task::Drill { .. } => continue,
        };
        let entry = repos
            .entry(repo.clone())
            .or_insert_with(|| RepoMaintenance {
                name: repo.clone(),
                prune: TimerState::default(),
                check: TimerState::default(),
                read_data: TimerState::default(),
                read_data_next: plan::subset(0, subsets),
            });
        let s = state(Some(v), now);
        match slot {
            0 => entry.prune = s,
            1 => entry.check = s,
            _ => {
                entry.read_data = s;
                entry.read_data_next = plan::subset(v.record.position, subsets);
            }
        }
    }
    report.repositories = repos.into_values().collect();
    report.notes.extend(h.replications.health_notes());
    report
}

/// Why `source` misses its RTO: restoring its newest snapshot at the measured throughput takes
/// longer than the target. `None` while either is not known.
fn rto_note(info: &SourceInfo, report: &Report) -> Option<String> {
    let name = &info.spec.name;
    let (bytes, files) = *report.newest_size.get(name)?;
    let throughput = report.throughput?;
    let estimate = throughput.estimate(bytes, files);
    let target = info.spec.policy.rto_or_default();
    (estimate > target).then(|| {
        format!(
            "source {name} misses its RTO: restoring its newest snapshot ({} files, {} bytes)              is estimated at {} (its RTO is {}; restore throughput {})",
            files,
            bytes,
            humantime::format_duration(Duration::from_millis(estimate.as_millis() as u64)),
            humantime::format_duration(target),
            throughput.describe()
        )
    })
}

type Sizes = BTreeMap<String, (u64, u64)>;

/// Snapshots per source, and the bytes and files of its newest, from each repository's
/// snapshot headers (the catalog).
fn count_snapshots(h: &Handles, sources: &[SourceInfo]) -> (BTreeMap<String, u64>, Sizes) {
    let mut counts = BTreeMap::new();
    let mut newest = BTreeMap::new();
    let mut by_repo: BTreeMap<Option<String>, Vec<&SourceInfo>> = BTreeMap::new();
    for s in sources {
        by_repo.entry(s.spec.repo.clone()).or_default().push(s);
    }
    for (repo, list) in by_repo {
        let Ok((_, opened)) = h.repos.open(repo.as_deref()) else {
            continue;
        };
        let Ok(headers) = opened.snapshot_headers() else {
            continue;
        };
        for s in list {
            let own: Vec<_> = headers
                .iter()
                .filter(|(_, hd)| of_source(hd, &s.spec.path))
                .collect();
            counts.insert(s.spec.name.clone(), own.len() as u64);
            if let Some((_, hd)) = own.iter().max_by_key(|(_, hd)| hd.time_ns) {
                newest.insert(s.spec.name.clone(), (hd.stats.bytes_total, hd.stats.files));
            }
        }
    }
    (counts, newest)
}
