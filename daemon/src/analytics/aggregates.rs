//! Per-source running statistics, updated as each backup of the source finishes (one read and
//! one write of a small record), and what the new values say: metrics beyond three sigmas and
//! the mass-encryption signal.

use super::baseline::{Baseline, Judgement};
use super::predict::Outcome;
use super::ransomware::{self, Signal};
use crate::state::records::analytics::SourceStatsRecord;
use crate::state::records::history::HistoryRecord;
use crate::state::records::job::StateRecord;
use crate::state::records::{self, RecordError};
use crate::state::{State, StateError};

pub const TREE: &str = "analytics.sources";
/// Outcomes kept per source for the success prediction.
pub const OUTCOMES: usize = 2000;

/// The metrics judged for every successful backup.
pub const DURATION: &str = "duration_s";
pub const BYTES_ADDED: &str = "bytes_added";
pub const FILES: &str = "files";
pub const COMPRESSION: &str = "compression_ratio";

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
    #[error("cannot write the analytics of source {source_name:?}: {error}")]
    Write {
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

#[derive(Debug)]
pub struct Aggregates {
    tree: sled::Tree,
}

impl Aggregates {
    pub fn open(state: &State) -> Result<Self, AggregateError> {
        Ok(Self {
            tree: state.tree(TREE)?,
        })
    }

    fn load(&self, source: &str) -> Result<SourceStatsRecord, AggregateError> {
        let bytes = self
            .tree
            .get(source)
            .map_err(|error| AggregateError::Write {
                source_name: source.to_owned(),
                error,
            })?;
        match bytes {
            None => Ok(SourceStatsRecord::default()),
            Some(bytes) => records::decode(&bytes).map_err(|error| AggregateError::Record {
                source_name: source.to_owned(),
                error,
            }),
        }
    }

    /// Takes in a finished job; only backups of a source count. Judges the new values against
    /// the baselines before adding them.
    pub fn record(&self, job: &HistoryRecord) -> Result<Observation, AggregateError> {
        let (Some(source), "backup") = (job.source.as_deref(), job.kind.as_str()) else {
            return Ok(Observation::default());
        };
        let mut stats = self.load(source)?;
        let succeeded = job.outcome == StateRecord::Succeeded;
        stats.outcomes.push((job.finished_ns, succeeded));
        let excess = stats.outcomes.len().saturating_sub(OUTCOMES);
        stats.outcomes.drain(..excess);
        let mut observation = Observation::default();
        if succeeded && !stats.seen_first {
            stats.seen_first = true;
        } else if succeeded {
            let values = [
                (DURATION, Some(job.duration_ms as f64 / 1000.0)),
                (BYTES_ADDED, Some(job.bytes_added as f64)),
                (FILES, Some(job.files as f64)),
                (COMPRESSION, job.compression_ratio),
            ];
            let baseline = |stats: &SourceStatsRecord, name: &str| {
                Baseline::from_values(stats.metrics.get(name).into_iter().flatten().copied())
            };
            if let (Some(ratio), ratios, files) = (
                job.compression_ratio,
                baseline(&stats, COMPRESSION),
                baseline(&stats, FILES),
            ) {
                observation.ransomware =
                    ransomware::judge(&ratios, &files, ratio, job.files as f64);
            }
            for (name, value) in values {
                let Some(value) = value else { continue };
                let mut base = baseline(&stats, name);
                if let Some(judgement) = base.judge(value).filter(Judgement::is_anomaly) {
                    observation.anomalies.push((name, judgement));
                }
                base.push(value);
                stats.metrics.insert(name.to_owned(), base.values());
            }
        }
        self.tree
            .insert(source, records::encode(&mut stats))
            .map_err(|error| AggregateError::Write {
                source_name: source.to_owned(),
                error,
            })?;
        Ok(observation)
    }

    /// The source's recent outcomes as the success model takes them, aged from `now_ns`.
    pub fn outcomes(&self, source: &str, now_ns: i64) -> Result<Vec<Outcome>, AggregateError> {
        Ok(self
            .load(source)?
            .outcomes
            .iter()
            .map(|(finished, success)| Outcome {
                age_days: (now_ns - finished).max(0) as f64 / 86_400e9,
                success: *success,
            })
            .collect())
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
        let outcomes = aggregates.outcomes("home", now).expect("outcomes");
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
        assert!(aggregates.outcomes("home", 0).expect("outcomes").is_empty());
    }
}
