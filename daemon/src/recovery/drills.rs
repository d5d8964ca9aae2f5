//! The last drill of each source (and of each repository drilled without a source), kept in
//! sled (tree `drills`, [`DrillRecord`]), and the alert a failed drill raises: `system health`
//! stays degraded until a drill of the same source (or repository) passes. Alerts live in
//! memory, so the ones of stored failed drills are raised again when the daemon starts.
//! Blocking: sled.

use crate::alerts::Alerts;
use crate::state::records::{self, drill::DrillRecord};
use crate::state::{State, StateError};
use backupd_common::config::maintenance::{self, MaintenanceConfig};
use backupd_common::protocol::{DrillResult, DrillSummary};
use std::sync::Arc;
use std::time::Duration;

const TREE: &str = "drills";

/// What a drill is of: the key of its record and alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Source(String),
    Repo(String),
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Self::Source(name) => format!("source/{name}"),
            Self::Repo(name) => format!("repo/{name}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Source(name) => format!("source {name}"),
            Self::Repo(name) => format!("repository {name}"),
        }
    }
}

pub struct Drills {
    tree: sled::Tree,
    alerts: Arc<Alerts>,
}

impl Drills {
    /// Opens the tree and raises the alerts of the failed drills it holds.
    pub fn open(state: &State, alerts: Arc<Alerts>) -> Result<Self, StateError> {
        let drills = Self {
            tree: state.tree(TREE)?,
            alerts,
        };
        for (key, record) in drills.all() {
            if !record.ok && record.mismatches > 0 {
                drills
                    .alerts
                    .raise(&alert_key(&key), message(&key, &record));
            }
        }
        Ok(drills)
    }

    fn all(&self) -> Vec<(String, DrillRecord)> {
        self.tree
            .iter()
            .filter_map(|item| {
                let (k, v) = item.ok()?;
                let key = String::from_utf8(k.to_vec()).ok()?;
                match records::decode::<DrillRecord>(&v) {
                    Ok(r) => Some((key, r)),
                    Err(e) => {
                        tracing::warn!(key, error = %e, "drill record unreadable; ignored");
                        None
                    }
                }
            })
            .collect()
    }

    /// The last drill of `source`.
    pub fn last(&self, source: &str) -> Option<DrillSummary> {
        let key = Subject::Source(source.to_owned()).key();
        let bytes = self.tree.get(key.as_bytes()).ok()??;
        records::decode::<DrillRecord>(&bytes)
            .ok()
            .map(DrillSummary::from)
    }

    /// Records a drill that ran to its verdict; a failed one raises the subject's alert, a
    /// passed one clears it.
    pub fn finished(&self, subject: &Subject, job: u64, time_ns: i64, result: &DrillResult) {
        let mut record = DrillRecord {
            v: 0,
            job,
            time_ns,
            ok: result.ok,
            repo: Some(result.repo.clone()),
            snapshot: Some(result.snapshot.clone()),
            sampled_files: result.sampled_files,
            bytes_restored: result.bytes_restored,
            mismatches: result.mismatches.len() as u64,
            rto_per_gb_ms: result.rto_per_gb_ms,
            error: result
                .mismatches
                .first()
                .map(|m| format!("{}: {}", m.path, m.reason)),
        };
        self.put(subject, &mut record);
        let key = subject.key();
        if result.ok {
            self.alerts.clear(&alert_key(&key));
        } else if self.alerts.raise(&alert_key(&key), message(&key, &record)) {
            tracing::error!(drill = %key, job, "{}", message(&key, &record));
        }
    }

    /// Records a drill that could not reach a verdict (no snapshot, an unreachable
    /// repository): the drill failed, but nothing was found damaged, so no alert.
    pub fn failed(&self, subject: &Subject, job: u64, time_ns: i64, repo: &str, error: String) {
        let mut record = DrillRecord {
            v: 0,
            job,
            time_ns,
            ok: false,
            repo: Some(repo.to_owned()),
            error: Some(error),
            ..Default::default()
        };
        self.put(subject, &mut record);
    }

    fn put(&self, subject: &Subject, record: &mut DrillRecord) {
        let key = subject.key();
        let bytes = records::encode(record);
        if let Err(e) = self
            .tree
            .insert(key.as_bytes(), bytes)
            .and_then(|_| self.tree.flush())
        {
            tracing::error!(drill = %key, error = %e, "cannot save the drill's outcome");
        }
    }
}

/// Grace beyond the drill schedule's interval (and its jitter) for the queue and the run.
const GRACE: Duration = Duration::from_secs(3600);

/// How old a source's last successful drill may be: the interval between two runs of
/// `[maintenance] drill` (the next two slots after `now`), plus its jitter and [`GRACE`].
/// `None` when drills are off.
pub fn allowed_age(m: &MaintenanceConfig, now: i64) -> Option<Duration> {
    let when = maintenance::when(&m.drill).ok()??;
    let first = when.next_after(now)?;
    let second = when.next_after(first)?;
    let interval = Duration::from_nanos(second.saturating_sub(first).max(0) as u64);
    Some(interval + m.jitter + GRACE)
}

fn alert_key(key: &str) -> String {
    format!("drill:{key}")
}

fn message(key: &str, r: &DrillRecord) -> String {
    let subject = match key.split_once('/') {
        Some(("source", name)) => Subject::Source(name.to_owned()),
        Some((_, name)) => Subject::Repo(name.to_owned()),
        None => Subject::Repo(key.to_owned()),
    };
    format!(
        "recovery drill of {} (job {}) found {} mismatch(es) in snapshot {}: {}; `backupctl \
         queue job {}` lists them, `backupctl repo check --read-data` looks for the damage",
        subject.describe(),
        r.job,
        r.mismatches,
        r.snapshot
            .as_deref()
            .map_or("?", |s| s.get(..8).unwrap_or(s)),
        r.error.as_deref().unwrap_or("no detail"),
        r.job
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::DrillMismatch;

    fn result(ok: bool) -> DrillResult {
        DrillResult {
            repo: "default".into(),
            snapshot: "ab".repeat(32),
            sampled_files: 3,
            mismatches: if ok {
                Vec::new()
            } else {
                vec![DrillMismatch {
                    path: "/srv/a".into(),
                    reason: "damaged data".into(),
                }]
            },
            ok,
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_drill_alerts_until_one_passes_and_its_alert_comes_back_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let alerts = Arc::new(Alerts::default());
        let drills = Drills::open(&state, alerts.clone()).expect("open");
        let docs = Subject::Source("docs".into());
        assert_eq!(drills.last("docs"), None);
        drills.finished(&docs, 7, 100, &result(false));
        let last = drills.last("docs").expect("recorded");
        assert_eq!((last.job, last.ok, last.mismatches), (7, false, 1));
        assert_eq!(last.error.as_deref(), Some("/srv/a: damaged data"));
        assert_eq!(alerts.notes().len(), 1);
        assert!(alerts.notes()[0].contains("recovery drill of source docs (job 7)"));
        // A restart: the alert is raised again from the stored record.
        let again = Arc::new(Alerts::default());
        let reopened = Drills::open(&state, again.clone()).expect("reopen");
        assert_eq!(again.notes(), alerts.notes());
        reopened.finished(&docs, 8, 200, &result(true));
        assert!(again.notes().is_empty(), "a passing drill clears it");
        // A drill that could not run is recorded as failed, without an alert.
        reopened.failed(&docs, 9, 300, "default", "no snapshot".into());
        let last = reopened.last("docs").expect("recorded");
        assert_eq!(
            (last.job, last.ok, last.error.as_deref()),
            (9, false, Some("no snapshot"))
        );
        assert!(again.notes().is_empty());
    }

    #[test]
    fn a_drill_may_be_as_old_as_the_schedules_interval_plus_jitter_and_grace() {
        let mut m = MaintenanceConfig {
            drill: "every 1d".into(),
            jitter: Duration::from_secs(600),
            ..Default::default()
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            allowed_age(&m, 0),
            Some(day + Duration::from_secs(600) + GRACE)
        );
        m.drill = "weekly Sun 05:00".into();
        assert_eq!(
            allowed_age(&m, 1_800_000_000 * 1_000_000_000),
            Some(7 * day + Duration::from_secs(600) + GRACE)
        );
        m.drill = "off".into();
        assert_eq!(allowed_age(&m, 0), None);
    }
}
