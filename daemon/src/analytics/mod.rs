//! The analytics service: per-source running statistics updated as each backup finishes
//! ([`aggregates`]), the anomalies they reveal and the retention holds the mass-encryption
//! signal places ([`store`]), and what the requests ask of them ([`query`], [`risk`],
//! [`recommend`]). docs/ANALYTICS.md explains the models and their measured accuracy.
//!
//! - `baseline`: a metric's recent values per source, and whether a new one lies beyond three
//!   robust standard deviations of them.
//! - `predict` and `backtest`: the success rate over a horizon from a Beta-Binomial posterior
//!   whose evidence decays with age, and how well it did on held-out history.
//! - `estimate`: the expected duration of a backup from what it reads.
//! - `synthetic`: deterministic job histories with documented regimes, for the backtest.
//! - `ransomware`: incompressible changed data together with a jump in files changed.
//! - `trends`: improving, stable or declining, from the least-squares slope and its t-test.
//!
//! [`Analytics::finished`] runs inside the queue's transition to a final state, before the
//! job's event goes out: a hold is in place before anything (a retention run) can act on the
//! snapshot that triggered it.

pub mod aggregates;
pub mod backtest;
pub mod baseline;
pub mod estimate;
pub mod facts;
pub mod predict;
pub mod query;
pub mod ransomware;
pub mod recommend;
pub mod risk;
pub mod store;
pub mod synthetic;
pub mod trends;

use crate::alerts::Alerts;
use crate::repo::{format_rfc3339, now_ns};
use crate::state::records::analytics::{AnomalyRecord, HoldRecord};
use crate::state::records::history::HistoryRecord;
use crate::state::{State, StateError};
use aggregates::{AggregateError, Aggregates, Observation};
use backupd_common::protocol::{AnomalyInfo, HoldInfo};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    #[error("cannot read or write the analytics in {}: {source}", path.display())]
    Storage {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("an analytics record is unreadable: {0}; a newer backupd may have written it")]
    Record(String),
    #[error(
        "source {source_name:?} has no retention hold; `backupctl analytics hold list` shows \
         the holds in force"
    )]
    NoHold { source_name: String },
    #[error("no source {source_name:?} has finished a backup; `backupctl source list` names the sources")]
    UnknownSource { source_name: String },
}

/// The alert key of a source's hold, so that releasing it clears the health note.
fn alert_key(source: &str) -> String {
    format!("analytics-hold:{source}")
}

fn hold_note(h: &HoldRecord) -> String {
    format!(
        "source {}: retention hold since {} after suspected mass encryption ({}); \
         snapshots before {} are kept until `backupctl analytics hold release {}`",
        h.source,
        format_rfc3339(h.placed_ns),
        h.reason,
        format_rfc3339(h.before_ns),
        h.source
    )
}

/// The service's handle; cheap to share.
pub struct Analytics {
    aggregates: Aggregates,
    store: store::Store,
    events: broadcast::Sender<AnomalyInfo>,
    alerts: Arc<Alerts>,
}

impl Analytics {
    /// Opens the trees and raises a health note for every hold in force. Blocking.
    pub fn open(state: &State, alerts: Arc<Alerts>) -> Result<Self, AnalyticsError> {
        let analytics = Self {
            aggregates: Aggregates::open(state)?,
            store: store::Store::open(state)?,
            events: broadcast::channel(256).0,
            alerts,
        };
        for hold in analytics.store.holds()? {
            analytics
                .alerts
                .raise(&alert_key(&hold.source), hold_note(&hold));
        }
        Ok(analytics)
    }

    /// Takes in the backups already in the job history, once per state database and only
    /// into empty statistics (an upgrade from a daemon without analytics): the
    /// statistics start from everything known, not from the next backup. Anomalies of the past
    /// are not raised and no hold is placed. Returns how many backups were taken in, `None`
    /// when it was done before. Blocking; runs before the queue's hook is set.
    pub fn replay(&self, queue: &crate::queue::Queue) -> Result<Option<u64>, AnalyticsError> {
        if self.store.replayed()? {
            return Ok(None);
        }
        // Statistics already there were recorded live: taking the history in as well would
        // count those backups twice.
        if !self.aggregates.sources()?.is_empty() {
            self.store.set_replayed()?;
            return Ok(None);
        }
        let mut failed = None;
        let n = queue.each_backup(|entry| {
            if failed.is_none() {
                failed = self.aggregates.record(entry).err();
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.store.set_replayed()?;
        Ok(Some(n))
    }

    pub fn aggregates(&self) -> &Aggregates {
        &self.aggregates
    }

    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// Anomalies as they are raised.
    pub fn subscribe(&self) -> broadcast::Receiver<AnomalyInfo> {
        self.events.subscribe()
    }

    /// Takes in a job that reached a final state (`paths`: what a backup backed up). Never
    /// fails the caller: analytics that cannot be written are logged, and the job stands.
    pub fn finished(&self, job: &HistoryRecord, paths: &[Vec<u8>]) {
        match self.aggregates.record(job) {
            Ok(observation) => {
                if let Err(e) = self.act(job, paths, observation) {
                    tracing::error!(job = job.id, error = %e, "analytics: cannot store what a backup showed");
                }
            }
            Err(e) => {
                tracing::error!(job = job.id, error = %e, "analytics: cannot record a finished job")
            }
        }
    }

    /// Stores and announces the anomalies; places the hold on the mass-encryption signal.
    fn act(
        &self,
        job: &HistoryRecord,
        paths: &[Vec<u8>],
        observation: Observation,
    ) -> Result<(), AnalyticsError> {
        let source = job.source.clone().unwrap_or_default();
        let record =
            |metric: &str, j: &baseline::Judgement, critical: bool, detail: String| AnomalyRecord {
                v: 1,
                id: 0,
                time_ns: job.finished_ns,
                source: source.clone(),
                repo: job.repo.clone(),
                job: job.id,
                snapshot: job.snapshot.clone(),
                metric: metric.to_owned(),
                value: j.value,
                expected: j.expected,
                low: j.low,
                high: j.high,
                sigmas: j.sigmas,
                critical,
                detail,
            };
        let mut raised = Vec::new();
        if let Some(signal) = observation.ransomware {
            let reason = format!(
                "added data compressed {:.2}:1 (usual {:.2}, {:.1} σ) while {} files changed \
                 (usual {:.0}, {:.1} σ)",
                signal.compression.value,
                signal.compression.expected,
                signal.compression.sigmas,
                signal.files.value,
                signal.files.expected,
                signal.files.sigmas
            );
            let hold = HoldRecord {
                v: 1,
                source: source.clone(),
                repo: job.repo.clone(),
                paths: paths.to_vec(),
                placed_ns: now_ns(),
                before_ns: job.submitted_ns,
                job: job.id,
                snapshot: job.snapshot.clone(),
                reason: reason.clone(),
            };
            let placed = self.store.hold(hold.clone())?;
            if placed {
                self.alerts.raise(&alert_key(&source), hold_note(&hold));
            }
            tracing::error!(
                source = %source,
                job = job.id,
                snapshot = job.snapshot.as_deref().unwrap_or("-"),
                hold_placed = placed,
                "suspected mass encryption: {reason}; the source's earlier snapshots are held \
                 from retention until `backupctl analytics hold release {source}`"
            );
            raised.push(record(
                "mass_encryption",
                &signal.compression,
                true,
                format!("suspected mass encryption: {reason}"),
            ));
        }
        for (metric, j) in &observation.anomalies {
            tracing::warn!(
                source = %source,
                job = job.id,
                metric,
                value = j.value,
                expected = j.expected,
                sigmas = j.sigmas,
                "backup anomaly: {metric} {:.3} outside {:.3}..{:.3}",
                j.value,
                j.low,
                j.high
            );
            raised.push(record(
                metric,
                j,
                false,
                format!(
                    "{metric} {:.3} is {:.1} σ from the recent median {:.3}",
                    j.value, j.sigmas, j.expected
                ),
            ));
        }
        for r in raised {
            let id = self.store.add_anomaly(r.clone())?;
            let _ = self.events.send(store::info(AnomalyRecord { id, ..r }));
        }
        Ok(())
    }

    pub fn holds(&self) -> Result<Vec<HoldInfo>, AnalyticsError> {
        Ok(self.store.holds()?.iter().map(store::hold_info).collect())
    }

    /// The holds forget must respect; an unreadable one fails the forget rather than let it
    /// delete what it may hold.
    pub fn forget_holds(&self) -> Result<Vec<crate::engine::forget::Hold>, AnalyticsError> {
        Ok(self
            .store
            .holds()?
            .into_iter()
            .map(|h| crate::engine::forget::Hold {
                paths: h.paths,
                before_ns: h.before_ns,
                source: h.source,
            })
            .collect())
    }

    /// Releases a source's hold (durably) and clears its health note.
    pub async fn release(&self, source: &str) -> Result<HoldInfo, AnalyticsError> {
        let hold = self.store.release(source)?;
        self.store.flush().await?;
        self.alerts.clear(&alert_key(source));
        tracing::warn!(source, "retention hold released");
        Ok(store::hold_info(&hold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::history::History;
    use crate::state::records::job::StateRecord;

    fn backup(id: u64, source: &str, ok: bool) -> HistoryRecord {
        HistoryRecord {
            v: 1,
            id,
            kind: "backup".into(),
            repo: Some("default".into()),
            source: Some(source.into()),
            outcome: if ok {
                StateRecord::Succeeded
            } else {
                StateRecord::DeadLetter
            },
            error_class: None,
            error: None,
            attempts: 1,
            submitted_ns: id as i64 * 60_000_000_000,
            finished_ns: id as i64 * 60_000_000_000 + 1,
            duration_ms: 1000,
            files: 10,
            bytes_read: 1000,
            bytes_added: 100,
            bytes_stored: 50,
            compression_ratio: Some(2.0),
            snapshot: None,
            files_read: 2,
            bytes_total: 10_000,
        }
    }

    /// A daemon upgraded from one without analytics starts from its whole history, once.
    #[test]
    fn the_history_is_taken_in_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let history = History::open(&state).expect("history");
        for id in 1..=30 {
            history
                .append(backup(id, if id % 2 == 0 { "a" } else { "b" }, id % 5 != 0))
                .expect("append");
        }
        let mut noop = backup(31, "a", true);
        noop.kind = "noop".into();
        history.append(noop).expect("append");
        let queue = crate::queue::Queue::open(&state, &Default::default()).expect("queue");
        let analytics = Analytics::open(&state, Arc::default()).expect("analytics");
        assert_eq!(analytics.replay(&queue).expect("replay"), Some(30));
        assert_eq!(analytics.replay(&queue).expect("again"), None);
        let a = analytics.aggregates().load("a").expect("a");
        assert_eq!(a.jobs(), 15);
        assert_eq!(a.runs.len(), 12, "three of a's fifteen failed");
        assert_eq!(
            analytics.aggregates().sources().expect("sources"),
            ["a", "b"]
        );
    }

    /// Statistics recorded live are never doubled by a replay of the same history.
    #[test]
    fn live_statistics_are_not_replayed_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let history = History::open(&state).expect("history");
        let analytics = Analytics::open(&state, Arc::default()).expect("analytics");
        for id in 1..=10 {
            let entry = backup(id, "a", true);
            history.append(entry.clone()).expect("append");
            analytics.finished(&entry, &[]);
        }
        let queue = crate::queue::Queue::open(&state, &Default::default()).expect("queue");
        assert_eq!(analytics.replay(&queue).expect("replay"), None);
        assert_eq!(analytics.aggregates().load("a").expect("a").jobs(), 10);
    }
}
