//! Per-source running statistics, updated as each backup of the source finishes (one read and
//! one write of a small record), and what the new values say: metrics beyond three sigmas and
//! the mass-encryption signal.

use super::baseline::{Baseline, Judgement};
use super::predict::Outcome;
use super::ransomware::{self, Signal};
use crate::state::records::analytics::{DayRecord, RunSample, SourceStatsRecord};
use crate::state::records::history::HistoryRecord;
use crate::state::records::job::StateRecord;
use crate::state::records::{self, RecordError};
use crate::state::{State, StateError};

pub const TREE: &str = "analytics.sources";
/// Outcomes kept per source for the success prediction.
pub const OUTCOMES: usize = 2000;
/// Successful runs kept per source for the duration estimate.
pub const RUNS: usize = 200;
/// Days of per-day figures kept per source for trends and charts.
pub const DAYS: usize = 400;
const DAY_NS: i64 = 86_400_000_000_000;

/// The metrics judged for every successful backup after the first, each with the least
/// standard deviation it is judged with (so that noise around tiny values is not news).
pub const DURATION: &str = "duration_s";
pub const BYTES_ADDED: &str = "bytes_added";
pub const FILES: &str = "files_changed";
pub const COMPRESSION: &str = "compression_ratio";
pub const DEDUP: &str = "dedup_ratio";
const FLOORS: [(&str, f64); 5] = [
    (DURATION, 1.0),
    (BYTES_ADDED, 1024.0 * 1024.0),
    (FILES, 10.0),
    (COMPRESSION, 0.05),
    (DEDUP, 0.05),
];

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("analytics record of source {source_name:?} is unreadable: {error}")]
    Record {
        source_name: String,
        #[source]
        error: RecordError,
    },
    #[error("cannot read or write the analytics of source {source_name:?}: {error}")]
    Storage {
        source_name: String,
        #[source]
        error: sled::Error,
    },
}

/// What one finished backup showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Metrics beyond three sigmas, with their judgement.
    pub anomalies: Vec<(&'static str, Judgement)>,
    pub ransomware: Option<Signal>,
}

#[derive(Clone, Debug)]
pub struct Aggregates {
    tree: sled::Tree,
}

/// A backup's value of each judged metric (`None`: not measured by this backup).
fn metric_values(job: &HistoryRecord) -> [(&'static str, Option<f64>); 5] {
    [
        (DURATION, Some(job.duration_ms as f64 / 1000.0)),
        (BYTES_ADDED, Some(job.bytes_added as f64)),
        (FILES, Some(job.files_read as f64)),
        (COMPRESSION, job.compression_ratio),
        // The share of what was read that the repository already had.
        (
            DEDUP,
            (job.bytes_read > 0)
                .then(|| 1.0 - (job.bytes_added as f64 / job.bytes_read as f64).min(1.0)),
        ),
    ]
}

impl Aggregates {
    pub fn open(state: &State) -> Result<Self, AggregateError> {
        Ok(Self {
            tree: state.tree(TREE)?,
        })
    }

    fn storage(source: &str) -> impl FnOnce(sled::Error) -> AggregateError + '_ {
        move |error| AggregateError::Storage {
            source_name: source.to_owned(),
            error,
        }
    }

    /// The source's statistics (empty for a source with no finished backup).
    pub fn load(&self, source: &str) -> Result<SourceStatsRecord, AggregateError> {
        match self.tree.get(source).map_err(Self::storage(source))? {
            None => Ok(SourceStatsRecord::default()),
            Some(bytes) => records::decode(&bytes).map_err(|error| AggregateError::Record {
                source_name: source.to_owned(),
                error,
            }),
        }
    }

    /// Every source with statistics, by name.
    pub fn sources(&self) -> Result<Vec<String>, AggregateError> {
        self.tree
            .iter()
            .keys()
            .map(|k| {
                k.map(|k| String::from_utf8_lossy(&k).into_owned())
                    .map_err(Self::storage(""))
            })
            .collect()
    }

    pub fn remove(&self, source: &str) -> Result<(), AggregateError> {
        self.tree.remove(source).map_err(Self::storage(source))?;
        Ok(())
    }

    /// Takes in a finished job; only backups of a source count, each once. Judges the new
    /// values against the baselines before adding them.
    pub fn record(&self, job: &HistoryRecord) -> Result<Observation, AggregateError> {
        let (Some(source), "backup") = (job.source.as_deref(), job.kind.as_str()) else {
            return Ok(Observation::default());
        };
        let mut stats = self.load(source)?;
        if job.id <= stats.last_job {
            return Ok(Observation::default());
        }
        stats.last_job = job.id;
        stats.repo.clone_from(&job.repo);
        let succeeded = job.outcome == StateRecord::Succeeded;
        stats.outcomes.push((job.finished_ns, succeeded));
        let excess = stats.outcomes.len().saturating_sub(OUTCOMES);
        stats.outcomes.drain(..excess);
        let day = stats
            .days
            .entry(job.finished_ns.div_euclid(DAY_NS))
            .or_insert_with(DayRecord::default);
        day.jobs += 1;
        if !succeeded {
            day.failed += 1;
        } else {
            day.duration_ms += job.duration_ms;
            day.bytes_read += job.bytes_read;
            day.bytes_added += job.bytes_added;
            day.size_bytes = job.bytes_total;
        }
        while stats.days.len() > DAYS {
            stats.days.pop_first();
        }
        let mut observation = Observation::default();
        if succeeded {
            stats.last_success_ns = Some(job.finished_ns);
            stats.runs.push(RunSample {
                finished_ns: job.finished_ns,
                duration_ms: job.duration_ms,
                files_read: job.files_read,
                bytes_read: job.bytes_read,
            });
            let excess = stats.runs.len().saturating_sub(RUNS);
            stats.runs.drain(..excess);
        }
        if succeeded && !stats.seen_first {
            stats.seen_first = true;
        } else if succeeded {
            observation = Self::judge(&mut stats, job);
        }
        self.tree
            .insert(source, records::encode(&mut stats))
            .map_err(Self::storage(source))?;
        Ok(observation)
    }

    /// Judges a successful backup's metrics against the source's baselines, then adds them.
    fn judge(stats: &mut SourceStatsRecord, job: &HistoryRecord) -> Observation {
        let baseline = |stats: &SourceStatsRecord, name: &str| {
            Baseline::from_values(stats.metrics.get(name).into_iter().flatten().copied())
        };
        let mut observation = Observation::default();
        if let Some(ratio) = job.compression_ratio {
            observation.ransomware = ransomware::judge(
                &baseline(stats, COMPRESSION),
                &baseline(stats, FILES),
                ratio,
                job.files_read as f64,
            );
        }
        for (name, value) in metric_values(job) {
            let Some(value) = value else { continue };
            let floor = FLOORS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, f)| *f);
            let mut base = baseline(stats, name);
            if let Some(judgement) = base
                .judge_at_least(value, floor)
                .filter(Judgement::is_anomaly)
            {
                observation.anomalies.push((name, judgement));
            }
            base.push(value);
            stats.metrics.insert(name.to_owned(), base.values());
        }
        observation
    }
}

impl SourceStatsRecord {
    /// The recent outcomes as the success model takes them, aged from `now_ns`.
    pub fn outcomes_at(&self, now_ns: i64) -> Vec<Outcome> {
        self.outcomes
            .iter()
            .map(|(finished, success)| Outcome {
                age_days: (now_ns - finished).max(0) as f64 / 86_400e9,
                success: *success,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: u64, ok: bool, seconds: u64, files: u64, ratio: f64) -> HistoryRecord {
        HistoryRecord {
            v: 1,
            id,
            kind: "backup".into(),
            repo: Some("default".into()),
            source: Some("home".into()),
            outcome: if ok {
                StateRecord::Succeeded
            } else {
                StateRecord::DeadLetter
            },
            error_class: None,
            error: None,
            attempts: 1,
            submitted_ns: id as i64 * 3_600_000_000_000,
            finished_ns: id as i64 * 3_600_000_000_000,
            duration_ms: seconds * 1000,
            files,
            bytes_read: files * 10_000,
            bytes_added: files * 10_000,
            bytes_stored: (files as f64 * 10_000.0 / ratio) as u64,
            compression_ratio: Some(ratio),
            snapshot: None,
            files_read: files,
            bytes_total: files * 100_000,
        }
    }

    #[test]
    fn ordinary_backups_raise_nothing_and_a_slow_one_is_an_anomaly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let aggregates = Aggregates::open(&state).expect("open");
        // The first (full) backup is left out of the baselines.
        aggregates
            .record(&backup(1, true, 3000, 50_000, 2.0))
            .expect("record");
        for i in 0..12u64 {
            let seen = aggregates
                .record(&backup(
                    2 + i,
                    true,
                    30 + i % 4,
                    10 + i % 5,
                    2.8 + (i % 3) as f64 * 0.1,
                ))
                .expect("record");
            assert_eq!(seen, Observation::default(), "run {i}");
        }
        let slow = aggregates
            .record(&backup(20, true, 600, 12, 2.9))
            .expect("record");
        let names: Vec<&str> = slow.anomalies.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [DURATION]);
        assert!(slow.ransomware.is_none());
    }

    #[test]
    fn mass_encryption_raises_the_signal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let aggregates = Aggregates::open(&state).expect("open");
        aggregates
            .record(&backup(1, true, 3000, 50_000, 2.0))
            .expect("record");
        for i in 0..12u64 {
            aggregates
                .record(&backup(
                    2 + i,
                    true,
                    30,
                    10 + i % 5,
                    2.8 + (i % 3) as f64 * 0.1,
                ))
                .expect("record");
        }
        let encrypted = aggregates
            .record(&backup(20, true, 40, 500, 1.0))
            .expect("record");
        assert!(encrypted.ransomware.is_some(), "{encrypted:?}");
    }

    #[test]
    fn outcomes_are_kept_bounded_and_aged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let aggregates = Aggregates::open(&state).expect("open");
        for i in 1..=(OUTCOMES as u64 + 10) {
            aggregates
                .record(&backup(i, i % 10 != 0, 30, 10, 2.9))
                .expect("record");
        }
        let now = (OUTCOMES as i64 + 10) * 3_600_000_000_000;
        let outcomes = aggregates.load("home").expect("load").outcomes_at(now);
        assert_eq!(outcomes.len(), OUTCOMES);
        assert_eq!(outcomes.last().map(|o| o.age_days), Some(0.0));
        assert_eq!(
            outcomes.iter().filter(|o| !o.success).count(),
            OUTCOMES / 10
        );
    }

    #[test]
    fn other_kinds_and_sourceless_jobs_are_not_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let aggregates = Aggregates::open(&state).expect("open");
        let mut restore = backup(1, true, 30, 10, 2.0);
        restore.kind = "restore".into();
        aggregates.record(&restore).expect("record");
        let mut manual = backup(2, true, 30, 10, 2.0);
        manual.source = None;
        aggregates.record(&manual).expect("record");
        assert!(aggregates.load("home").expect("load").outcomes.is_empty());
    }
}
