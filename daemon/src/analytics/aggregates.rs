//! Per-source running statistics, updated as each backup of the source finishes (one read and
//! one write of a small record), and what the new values say: metrics beyond three sigmas and
//! the mass-encryption signal.

use super::baseline::{Baseline, Judgement};
use super::ransomware::{self, Signal};
use crate::state::records::analytics::{DayRecord, RunSample, SourceStatsRecord};
use crate::state::records::history::HistoryRecord;
use crate::state::records::job::StateRecord;
use crate::state::records::{self, RecordError};
use crate::state::{State, StateError};
use std::collections::BTreeMap;

pub const TREE: &str = "analytics.sources";
const DAYS_TREE: &str = "analytics.days";
const RUNS_TREE: &str = "analytics.runs";
/// Successful runs kept per source for the duration estimate.
pub const RUNS: usize = 200;
/// Job ids remembered per source against counting one twice.
pub const RECENT_JOBS: usize = 64;
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
    sources: sled::Tree,
    days: sled::Tree,
    runs: sled::Tree,
}

/// Everything kept about one source, as the queries read it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceStats {
    pub summary: SourceStatsRecord,
    /// Days since the epoch (UTC) → that day's backups, oldest first.
    pub days: BTreeMap<i64, DayRecord>,
    /// Recent successful backups, oldest first.
    pub runs: Vec<RunSample>,
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

/// `source 0x00 suffix`: a source's keys sort together (names never hold a 0 byte).
fn key(source: &str, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(source.len() + 1 + suffix.len());
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k.extend_from_slice(suffix);
    k
}

fn prefix(source: &str) -> Vec<u8> {
    key(source, &[])
}

fn day_key(source: &str, day: i64) -> Vec<u8> {
    key(source, &(day.max(0) as u64).to_be_bytes())
}

fn run_key(source: &str, finished_ns: i64, id: u64) -> Vec<u8> {
    let mut suffix = [0u8; 16];
    suffix[..8].copy_from_slice(&(finished_ns.max(0) as u64).to_be_bytes());
    suffix[8..].copy_from_slice(&id.to_be_bytes());
    key(source, &suffix)
}

impl Aggregates {
    pub fn open(state: &State) -> Result<Self, AggregateError> {
        Ok(Self {
            sources: state.tree(TREE)?,
            days: state.tree(DAYS_TREE)?,
            runs: state.tree(RUNS_TREE)?,
        })
    }

    fn storage(source: &str) -> impl FnOnce(sled::Error) -> AggregateError + '_ {
        move |error| AggregateError::Storage {
            source_name: source.to_owned(),
            error,
        }
    }

    fn unreadable(source: &str) -> impl FnOnce(RecordError) -> AggregateError + '_ {
        move |error| AggregateError::Record {
            source_name: source.to_owned(),
            error,
        }
    }

    fn summary(&self, source: &str) -> Result<SourceStatsRecord, AggregateError> {
        match self.sources.get(source).map_err(Self::storage(source))? {
            None => Ok(SourceStatsRecord::default()),
            Some(bytes) => records::decode(&bytes).map_err(Self::unreadable(source)),
        }
    }

    /// Everything kept about the source (empty for one with no finished backup).
    pub fn load(&self, source: &str) -> Result<SourceStats, AggregateError> {
        let mut stats = SourceStats {
            summary: self.summary(source)?,
            ..SourceStats::default()
        };
        let p = prefix(source);
        for item in self.days.scan_prefix(&p) {
            let (k, v) = item.map_err(Self::storage(source))?;
            let day = k[p.len()..].try_into().map(u64::from_be_bytes).unwrap_or(0) as i64;
            stats
                .days
                .insert(day, records::decode(&v).map_err(Self::unreadable(source))?);
        }
        for item in self.runs.scan_prefix(&p) {
            let (_, v) = item.map_err(Self::storage(source))?;
            stats
                .runs
                .push(records::decode(&v).map_err(Self::unreadable(source))?);
        }
        Ok(stats)
    }

    /// Every source with statistics, by name.
    pub fn sources(&self) -> Result<Vec<String>, AggregateError> {
        self.sources
            .iter()
            .keys()
            .map(|k| {
                k.map(|k| String::from_utf8_lossy(&k).into_owned())
                    .map_err(Self::storage(""))
            })
            .collect()
    }

    /// Takes in a finished job; only backups of a source count, each once. Judges the new
    /// values against the baselines before adding them. Writes the day's record, a run sample
    /// and the summary: a few hundred bytes, whatever the source's history.
    pub fn record(&self, job: &HistoryRecord) -> Result<Observation, AggregateError> {
        let (Some(source), "backup") = (job.source.as_deref(), job.kind.as_str()) else {
            return Ok(Observation::default());
        };
        let mut summary = self.summary(source)?;
        // Ids are not in finish order (a retried job finishes after later ones), so the last
        // few are remembered rather than the highest.
        if summary.recent_jobs.contains(&job.id) {
            return Ok(Observation::default());
        }
        summary.recent_jobs.push(job.id);
        let excess = summary.recent_jobs.len().saturating_sub(RECENT_JOBS);
        summary.recent_jobs.drain(..excess);
        summary.repo.clone_from(&job.repo);
        let succeeded = job.outcome == StateRecord::Succeeded;

        let day = job.finished_ns.div_euclid(DAY_NS);
        let dk = day_key(source, day);
        let mut record: DayRecord = match self.days.get(&dk).map_err(Self::storage(source))? {
            Some(v) => records::decode(&v).map_err(Self::unreadable(source))?,
            None => DayRecord::default(),
        };
        record.jobs += 1;
        if succeeded {
            record.duration_ms += job.duration_ms;
            record.bytes_read += job.bytes_read;
            record.bytes_added += job.bytes_added;
            record.size_bytes = job.bytes_total;
        } else {
            record.failed += 1;
        }
        self.days
            .insert(&dk, records::encode(&mut record))
            .map_err(Self::storage(source))?;
        // Days beyond the window go, oldest first (one check per job: at most one is new).
        let p = prefix(source);
        if let Some(first) = self.days.scan_prefix(&p).keys().next() {
            let first = first.map_err(Self::storage(source))?;
            let first_day = first[p.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if (first_day as i64) <= day - DAYS as i64 {
                self.days.remove(first).map_err(Self::storage(source))?;
            }
        }

        let mut observation = Observation::default();
        if succeeded {
            summary.last_success_ns = Some(job.finished_ns);
            let mut sample = RunSample {
                v: 1,
                finished_ns: job.finished_ns,
                duration_ms: job.duration_ms,
                files_read: job.files_read,
                bytes_read: job.bytes_read,
            };
            let replaced = self
                .runs
                .insert(
                    run_key(source, job.finished_ns, job.id),
                    records::encode(&mut sample),
                )
                .map_err(Self::storage(source))?;
            // The count must follow the tree: a sample written again is not one more.
            if replaced.is_none() {
                summary.runs += 1;
            }
            while summary.runs as usize > RUNS {
                match self.runs.scan_prefix(&p).keys().next() {
                    Some(oldest) => {
                        self.runs
                            .remove(oldest.map_err(Self::storage(source))?)
                            .map_err(Self::storage(source))?;
                        summary.runs -= 1;
                    }
                    None => summary.runs = 0,
                }
            }
            if summary.seen_first {
                observation = Self::judge(&mut summary, job);
            } else {
                summary.seen_first = true;
            }
        }
        self.sources
            .insert(source, records::encode(&mut summary))
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

impl SourceStats {
    /// The source's backups per day as the success model takes them: (age in days at the
    /// day's middle, successes, failures).
    pub fn outcomes_at(&self, now_ns: i64) -> Vec<(f64, u32, u32)> {
        self.days
            .iter()
            .map(|(day, d)| {
                let middle = day * DAY_NS + DAY_NS / 2;
                let age = (now_ns - middle).max(0) as f64 / DAY_NS as f64;
                (age, d.jobs - d.failed, d.failed)
            })
            .collect()
    }

    /// Backups finished over the `days` before `now_ns`.
    pub fn jobs_within(&self, now_ns: i64, days: i64) -> (u32, u32) {
        let today = now_ns.div_euclid(DAY_NS);
        self.days
            .range(today - days + 1..=today)
            .fold((0, 0), |(j, f), (_, d)| (j + d.jobs, f + d.failed))
    }

    pub fn jobs(&self) -> u64 {
        self.days.values().map(|d| u64::from(d.jobs)).sum()
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
    fn days_and_runs_are_kept_bounded_and_counted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let aggregates = Aggregates::open(&state).expect("open");
        // One backup an hour for 500 days, every tenth failing.
        let n = 500 * 24u64;
        for i in 1..=n {
            aggregates
                .record(&backup(i, i % 10 != 0, 30, 10, 2.9))
                .expect("record");
        }
        // Written again (a rewritten history entry): not counted twice.
        aggregates
            .record(&backup(n, true, 30, 10, 2.9))
            .expect("record");
        let stats = aggregates.load("home").expect("load");
        assert_eq!(stats.days.len(), DAYS);
        assert_eq!(stats.runs.len(), RUNS);
        assert_eq!(stats.summary.runs as usize, RUNS);
        // Job n failed (every tenth does), and its rewrite as a success was not taken in.
        let last_success = (n as i64 - 1) * 3_600_000_000_000;
        assert_eq!(stats.runs.last().map(|r| r.finished_ns), Some(last_success));
        let kept: Vec<u64> = (1..=n).filter(|i| i / 24 > n / 24 - DAYS as u64).collect();
        assert_eq!(stats.jobs(), kept.len() as u64);
        let now = n as i64 * 3_600_000_000_000;
        let outcomes = stats.outcomes_at(now);
        let failed: u32 = outcomes.iter().map(|o| o.2).sum();
        assert_eq!(
            u64::from(failed),
            kept.iter().filter(|i| *i % 10 == 0).count() as u64
        );
        assert!(outcomes.last().expect("today").0 < 1.0);
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
        assert_eq!(aggregates.load("home").expect("load").jobs(), 0);
    }
}
