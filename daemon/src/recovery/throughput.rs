//! This machine's restore throughput, measured from its job history: the finished `restore`
//! and `drill` jobs (files and bytes they restored, the time they ran). An RTO estimate is the
//! time restoring a snapshot takes at that throughput ([`Throughput::estimate`]).
//!
//! The measure is the median over the [`RECENT`] newest successful jobs of the last
//! [`WINDOW`], per job bytes per second and files per second: one restore slowed by a busy
//! disk or a lock wait does not move it, as it would move an average. With no such job the
//! throughput is assumed ([`ASSUMED_BYTES_PER_SEC`], [`ASSUMED_FILES_PER_SEC`]) and says so.
//! A job's time is all of its run (a drill's includes its verification), so the estimate errs
//! on the slow side.

use crate::queue::Queue;
use backupd_common::protocol::{HistoryEntry, HistoryQuery, JobState, ThroughputInfo};
use std::time::Duration;

/// How many of the newest restores and drills are measured.
pub const RECENT: usize = 20;
/// How far back the history is searched.
pub const WINDOW: Duration = Duration::from_secs(90 * 86_400);
/// Assumed without a measurement: a local disk restoring compressed, encrypted data.
pub const ASSUMED_BYTES_PER_SEC: f64 = 50_000_000.0;
pub const ASSUMED_FILES_PER_SEC: f64 = 500.0;

/// Restore throughput: measured, or assumed when nothing was measured (`measured` false).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    pub bytes_per_sec: f64,
    pub files_per_sec: f64,
    /// Jobs it was measured from.
    pub samples: u32,
    pub measured: bool,
}

/// One finished restore or drill: what it restored and how long it ran.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub bytes: u64,
    pub files: u64,
    pub duration: Duration,
}

impl Throughput {
    pub const ASSUMED: Throughput = Throughput {
        bytes_per_sec: ASSUMED_BYTES_PER_SEC,
        files_per_sec: ASSUMED_FILES_PER_SEC,
        samples: 0,
        measured: false,
    };

    /// The median rates of `samples`; a sample that restored no file or took no time is not
    /// one, and one that restored no bytes (empty files) counts for files per second only.
    pub fn from_samples(samples: &[Sample]) -> Self {
        let usable: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.files > 0 && !s.duration.is_zero())
            .collect();
        if usable.is_empty() {
            return Self::ASSUMED;
        }
        let files = median(
            usable
                .iter()
                .map(|s| s.files as f64 / s.duration.as_secs_f64())
                .collect(),
        );
        let bytes = median(
            usable
                .iter()
                .filter(|s| s.bytes > 0)
                .map(|s| s.bytes as f64 / s.duration.as_secs_f64())
                .collect(),
        );
        Self {
            bytes_per_sec: bytes.unwrap_or(ASSUMED_BYTES_PER_SEC),
            files_per_sec: files.unwrap_or(ASSUMED_FILES_PER_SEC),
            samples: usable.len() as u32,
            measured: true,
        }
    }

    /// How long restoring `bytes` in `files` files takes: whichever of the bytes and the
    /// files takes longer at this throughput (both were measured on the same jobs, so adding
    /// them would count each job's time twice).
    pub fn estimate(&self, bytes: u64, files: u64) -> Duration {
        let secs = |n: u64, rate: f64| if rate > 0.0 { n as f64 / rate } else { 0.0 };
        let s = secs(bytes, self.bytes_per_sec).max(secs(files, self.files_per_sec));
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    }

    /// In words, for tables and notes: where the figures come from.
    pub fn describe(&self) -> String {
        let rate = format!(
            "{:.1} MB/s, {:.0} files/s",
            self.bytes_per_sec / 1e6,
            self.files_per_sec
        );
        if self.measured {
            format!(
                "{rate}: median of the last {} restore(s) and drill(s)",
                self.samples
            )
        } else {
            format!("no measurement; assumed {rate} (run `backupctl recovery drill`)")
        }
    }

    /// As the protocol reports it.
    pub fn info(&self) -> ThroughputInfo {
        ThroughputInfo {
            bytes_per_sec: self.bytes_per_sec.round() as u64,
            files_per_sec: (self.files_per_sec * 10.0).round() / 10.0,
            samples: self.samples,
            measured: self.measured,
            note: self.describe(),
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The samples among history entries: successful restores and drills, newest first, at most
/// [`RECENT`].
pub fn samples(entries: &[HistoryEntry]) -> Vec<Sample> {
    let mut wanted: Vec<&HistoryEntry> = entries
        .iter()
        .filter(|e| {
            e.outcome == JobState::Succeeded && matches!(e.kind.as_str(), "restore" | "drill")
        })
        .collect();
    wanted.sort_by_key(|e| std::cmp::Reverse(e.finished_ns));
    wanted
        .into_iter()
        .take(RECENT)
        .map(|e| Sample {
            bytes: e.bytes_read,
            files: e.files,
            duration: Duration::from_millis(e.duration_ms),
        })
        .collect()
}

/// This machine's restore throughput from `queue`'s history (blocking: sled). A history that
/// cannot be read counts as no measurement.
pub fn measured(queue: &Queue) -> Throughput {
    let mut entries = Vec::new();
    for kind in ["restore", "drill"] {
        let query = HistoryQuery {
            limit: RECENT as u32 * 2,
            since: Some(WINDOW),
            kind: Some(kind.into()),
            ..Default::default()
        };
        match queue.history(&query) {
            Ok(found) => entries.extend(found),
            Err(e) => tracing::warn!(error = %e, "cannot read the job history to measure restores"),
        }
    }
    Throughput::from_samples(&samples(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(bytes: u64, files: u64, ms: u64) -> Sample {
        Sample {
            bytes,
            files,
            duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn the_median_ignores_one_slow_restore_and_an_even_count_takes_the_middle_two() {
        // 100, 100, 1 MB/s: the slow one does not move it.
        let t = Throughput::from_samples(&[
            s(100_000_000, 10, 1000),
            s(1_000_000, 10, 1000),
            s(200_000_000, 20, 2000),
        ]);
        assert!(t.measured);
        assert_eq!(t.samples, 3);
        assert_eq!(t.bytes_per_sec, 100_000_000.0);
        assert_eq!(t.files_per_sec, 10.0);
        let even = Throughput::from_samples(&[s(2_000, 1, 1000), s(4_000, 3, 1000)]);
        assert_eq!(even.bytes_per_sec, 3_000.0);
        assert_eq!(even.files_per_sec, 2.0);
    }

    #[test]
    fn without_a_usable_sample_the_throughput_is_assumed_and_says_so() {
        let t = Throughput::from_samples(&[s(0, 0, 10), s(5, 1, 0)]);
        assert_eq!(t, Throughput::ASSUMED);
        assert!(t
            .describe()
            .starts_with("no measurement; assumed 50.0 MB/s"));
        // Only empty files restored: files per second measured, bytes per second assumed.
        let empty = Throughput::from_samples(&[s(0, 100, 1000)]);
        assert!(empty.measured);
        assert_eq!(empty.files_per_sec, 100.0);
        assert_eq!(empty.bytes_per_sec, ASSUMED_BYTES_PER_SEC);
    }

    #[test]
    fn an_estimate_is_the_slower_of_the_bytes_and_the_files() {
        let t = Throughput {
            bytes_per_sec: 1_000_000.0,
            files_per_sec: 100.0,
            samples: 1,
            measured: true,
        };
        assert_eq!(t.estimate(10_000_000, 10), Duration::from_secs(10));
        assert_eq!(t.estimate(1_000, 1_000), Duration::from_secs(10));
        assert_eq!(t.estimate(0, 0), Duration::ZERO);
    }

    #[test]
    fn samples_are_the_newest_successful_restores_and_drills() {
        let entry = |id: u64, kind: &str, outcome, finished_ns| HistoryEntry {
            id,
            kind: kind.into(),
            repo: None,
            source: None,
            outcome,
            error_class: None,
            error: None,
            attempts: 1,
            submitted_ns: 0,
            finished_ns,
            duration_ms: 1000,
            files: id,
            bytes_read: 10 * id,
            bytes_added: 0,
            bytes_stored: 0,
            compression_ratio: None,
            snapshot: None,
        };
        let mut entries = vec![
            entry(1, "restore", JobState::Succeeded, 1),
            entry(2, "backup", JobState::Succeeded, 2),
            entry(3, "drill", JobState::DeadLetter, 3),
            entry(4, "drill", JobState::Succeeded, 4),
        ];
        for i in 0..30 {
            entries.push(entry(100 + i, "restore", JobState::Succeeded, -(i as i64)));
        }
        let got = samples(&entries);
        assert_eq!(got.len(), RECENT);
        assert_eq!((got[0].files, got[1].files), (4, 1));
    }
}
