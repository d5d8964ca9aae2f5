//! The monitor's history in sled: samples (tree `perf_samples`, key: time in ns, big-endian),
//! bottlenecks (`perf_bottlenecks`, key: id), tuning changes (`perf_tuning`, key: time and a
//! sequence number) and the tuned values (`perf_state`). Blocking.
//!
//! The records are versioned JSON (`state::records::perf`). They are telemetry: one that does
//! not decode is skipped (and counted in the log), never a reason to refuse to start.
//! Samples older than `keep_full` are averaged into one per [`DOWNSAMPLE_SECS`]; older than
//! `keep` they are deleted. Bottlenecks and changes are capped at [`MAX_EVENTS`] each.

use crate::state::records::perf::{BottleneckRecord, ChangeRecord, SampleRecord, TunedRecord};
use crate::state::records::{decode, encode, Record};
use crate::state::{State, StateError};
use backupd_common::protocol::{Bottleneck, PerfSample, Pressure, TuningChange};

pub const DOWNSAMPLE_SECS: u32 = 300;
pub const MAX_EVENTS: usize = 1000;
const TUNED_KEY: &[u8] = b"tuned";

pub struct Store {
    samples: sled::Tree,
    bottlenecks: sled::Tree,
    tuning: sled::Tree,
    state: sled::Tree,
}

fn time_key(ns: i64) -> [u8; 8] {
    // Times before 1970 do not occur; clamping keeps the order of the rest.
    (ns.max(0) as u64).to_be_bytes()
}

fn decoded<R: Record>(tree: &str, bytes: &[u8]) -> Option<R> {
    match decode::<R>(bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(tree, error = %e, "skipping an unreadable perf record");
            None
        }
    }
}

impl Store {
    pub fn open(state: &State) -> Result<Self, StateError> {
        Ok(Self {
            samples: state.tree("perf_samples")?,
            bottlenecks: state.tree("perf_bottlenecks")?,
            tuning: state.tree("perf_tuning")?,
            state: state.tree("perf_state")?,
        })
    }

    pub fn add_sample(&self, sample: &PerfSample) -> Result<(), sled::Error> {
        let mut r = SampleRecord::from(sample.clone());
        self.samples
            .insert(time_key(sample.time_ns), encode(&mut r))?;
        Ok(())
    }

    /// Samples from `since_ns` on, oldest first.
    pub fn samples(&self, since_ns: i64) -> Vec<PerfSample> {
        self.samples
            .range(time_key(since_ns)..)
            .filter_map(Result::ok)
            .filter_map(|(_, v)| decoded::<SampleRecord>("perf_samples", &v))
            .map(|r| r.sample)
            .collect()
    }

    /// The newest sample.
    pub fn last_sample(&self) -> Option<PerfSample> {
        let (_, v) = self.samples.last().ok()??;
        decoded::<SampleRecord>("perf_samples", &v).map(|r| r.sample)
    }

    /// Deletes samples older than `now - keep` and averages full-resolution samples older than
    /// `now - keep_full` into one per 5 minutes. Returns how many records it removed.
    pub fn compact(
        &self,
        now_ns: i64,
        keep_ns: i64,
        keep_full_ns: i64,
    ) -> Result<usize, sled::Error> {
        let mut removed = 0;
        let expired: Vec<sled::IVec> = self
            .samples
            .range(..time_key(now_ns - keep_ns))
            .keys()
            .filter_map(Result::ok)
            .collect();
        for k in expired {
            self.samples.remove(k)?;
            removed += 1;
        }
        let bucket_ns = i64::from(DOWNSAMPLE_SECS) * 1_000_000_000;
        let mut bucket: Vec<(sled::IVec, PerfSample)> = Vec::new();
        let old = self.samples.range(..time_key(now_ns - keep_full_ns));
        let flush = |bucket: &mut Vec<(sled::IVec, PerfSample)>, removed: &mut usize| {
            if bucket.len() > 1 {
                let merged = average(bucket.iter().map(|(_, s)| s));
                for (k, _) in bucket.iter() {
                    self.samples.remove(k)?;
                    *removed += 1;
                }
                let mut r = SampleRecord::from(merged.clone());
                self.samples
                    .insert(time_key(merged.time_ns), encode(&mut r))?;
                *removed -= 1;
            }
            bucket.clear();
            Ok::<(), sled::Error>(())
        };
        for (k, v) in old.filter_map(Result::ok) {
            let Some(r) = decoded::<SampleRecord>("perf_samples", &v) else {
                self.samples.remove(&k)?;
                removed += 1;
                continue;
            };
            if r.sample.span_secs >= DOWNSAMPLE_SECS {
                continue;
            }
            let slot = r.sample.time_ns.div_euclid(bucket_ns);
            if bucket
                .first()
                .is_some_and(|(_, s)| s.time_ns.div_euclid(bucket_ns) != slot)
            {
                flush(&mut bucket, &mut removed)?;
            }
            bucket.push((k, r.sample));
        }
        flush(&mut bucket, &mut removed)?;
        Ok(removed)
    }

    pub fn put_bottleneck(&self, b: &Bottleneck) -> Result<(), sled::Error> {
        let mut r = BottleneckRecord::from(b.clone());
        self.bottlenecks
            .insert(b.id.to_be_bytes(), encode(&mut r))?;
        cap(&self.bottlenecks)
    }

    pub fn next_bottleneck_id(&self) -> u64 {
        self.bottlenecks
            .last()
            .ok()
            .flatten()
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0)
            + 1
    }

    /// Bottlenecks still open, or ended at or after `since_ns`, newest first.
    pub fn bottlenecks(&self, since_ns: i64) -> Vec<Bottleneck> {
        self.bottlenecks
            .iter()
            .rev()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| decoded::<BottleneckRecord>("perf_bottlenecks", &v))
            .map(|r| r.bottleneck)
            .filter(|b| b.ended_ns.is_none_or(|e| e >= since_ns))
            .collect()
    }

    pub fn add_changes(&self, changes: &[TuningChange]) -> Result<(), sled::Error> {
        for (seq, ch) in changes.iter().enumerate() {
            let mut key = time_key(ch.time_ns).to_vec();
            key.extend_from_slice(&(seq as u32).to_be_bytes());
            let mut r = ChangeRecord::from(ch.clone());
            self.tuning.insert(key, encode(&mut r))?;
        }
        cap(&self.tuning)
    }

    /// Changes at or after `since_ns`, newest first.
    pub fn changes(&self, since_ns: i64) -> Vec<TuningChange> {
        self.tuning
            .range(time_key(since_ns).to_vec()..)
            .rev()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| decoded::<ChangeRecord>("perf_tuning", &v))
            .map(|r| r.change)
            .collect()
    }

    pub fn tuned(&self) -> Option<TunedRecord> {
        let v = self.state.get(TUNED_KEY).ok()??;
        decoded::<TunedRecord>("perf_state", &v)
    }

    pub fn save_tuned(&self, tuned: &TunedRecord) -> Result<(), sled::Error> {
        let mut r = tuned.clone();
        self.state.insert(TUNED_KEY, encode(&mut r))?;
        Ok(())
    }
}

/// Drops the oldest entries past [`MAX_EVENTS`].
fn cap(tree: &sled::Tree) -> Result<(), sled::Error> {
    let over = tree.len().saturating_sub(MAX_EVENTS);
    let oldest: Vec<sled::IVec> = tree
        .iter()
        .keys()
        .take(over)
        .filter_map(Result::ok)
        .collect();
    for k in oldest {
        tree.remove(k)?;
    }
    Ok(())
}

/// One sample standing for several: means of the rates and shares, the newest disks, and the
/// span of a downsampled bucket.
fn average<'a>(samples: impl Iterator<Item = &'a PerfSample> + Clone) -> PerfSample {
    let n = samples.clone().count().max(1);
    let mean_f = |f: &dyn Fn(&PerfSample) -> f64| samples.clone().map(f).sum::<f64>() / n as f64;
    let mean_u = |f: &dyn Fn(&PerfSample) -> u64| {
        (samples.clone().map(f).map(u128::from).sum::<u128>() / n as u128) as u64
    };
    let last = samples.clone().last().cloned().unwrap_or_default();
    let with_pressure: Vec<Pressure> = samples.clone().filter_map(|s| s.pressure).collect();
    let pressure = (!with_pressure.is_empty()).then(|| {
        let k = with_pressure.len() as f32;
        let m = |f: fn(&Pressure) -> f32| with_pressure.iter().map(f).sum::<f32>() / k;
        Pressure {
            cpu_some: m(|p| p.cpu_some),
            memory_some: m(|p| p.memory_some),
            memory_full: m(|p| p.memory_full),
            io_some: m(|p| p.io_some),
            io_full: m(|p| p.io_full),
        }
    });
    PerfSample {
        time_ns: samples.clone().next().map_or(0, |s| s.time_ns),
        span_secs: DOWNSAMPLE_SECS,
        cpu_percent: mean_f(&|s| f64::from(s.cpu_percent)) as f32,
        daemon_cpu_percent: mean_f(&|s| f64::from(s.daemon_cpu_percent)) as f32,
        iowait_percent: mean_f(&|s| f64::from(s.iowait_percent)) as f32,
        memory_used_bytes: mean_u(&|s| s.memory_used_bytes),
        memory_total_bytes: last.memory_total_bytes,
        daemon_rss_bytes: mean_u(&|s| s.daemon_rss_bytes),
        pressure,
        disks: last.disks,
        read_bps: mean_u(&|s| s.read_bps),
        stored_bps: mean_u(&|s| s.stored_bps),
        restored_bps: mean_u(&|s| s.restored_bps),
        queued: mean_u(&|s| u64::from(s.queued)) as u32,
        running: mean_u(&|s| u64::from(s.running)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn sample(t: i64, cpu: f32) -> PerfSample {
        PerfSample {
            time_ns: t,
            span_secs: 30,
            cpu_percent: cpu,
            memory_total_bytes: 100,
            ..Default::default()
        }
    }

    #[test]
    fn old_samples_are_averaged_per_five_minutes_and_expired_ones_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let store = Store::open(&state).expect("store");
        // 20 minutes of 30 s samples starting at t = 1 h; cpu alternates 10 / 30.
        let start = 3600 * SEC;
        for i in 0..40 {
            let cpu = if i % 2 == 0 { 10.0 } else { 30.0 };
            store
                .add_sample(&sample(start + i * 30 * SEC, cpu))
                .expect("add");
        }
        let now = start + 40 * 30 * SEC;
        // Keep everything, full resolution only for the last 5 minutes.
        store.compact(now, 3600 * SEC, 300 * SEC).expect("compact");
        let all = store.samples(0);
        let coarse: Vec<&PerfSample> = all
            .iter()
            .filter(|s| s.span_secs == DOWNSAMPLE_SECS)
            .collect();
        assert_eq!(coarse.len(), 3, "15 minutes became three buckets: {all:?}");
        assert!(coarse.iter().all(|s| (s.cpu_percent - 20.0).abs() < 0.01));
        assert_eq!(all.len(), 3 + 10);
        // Compacting again changes nothing.
        assert_eq!(store.compact(now, 3600 * SEC, 300 * SEC).expect("again"), 0);
        // Everything older than 2 minutes expires.
        store.compact(now, 120 * SEC, 60 * SEC).expect("expire");
        assert!(store
            .samples(0)
            .iter()
            .all(|s| s.time_ns >= now - 120 * SEC));
        assert_eq!(
            store.last_sample().map(|s| s.time_ns),
            Some(start + 39 * 30 * SEC)
        );
    }

    #[test]
    fn bottlenecks_and_changes_keep_their_order_and_their_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let store = Store::open(&state).expect("store");
        for i in 0..(MAX_EVENTS as i64 + 5) {
            let ch = TuningChange {
                time_ns: i,
                tunable: "nice".into(),
                old: "10".into(),
                new: "15".into(),
                metric: "cpu".into(),
                reason: "test".into(),
                trigger: "auto".into(),
            };
            store.add_changes(&[ch]).expect("add");
        }
        let all = store.changes(0);
        assert_eq!(all.len(), MAX_EVENTS);
        assert_eq!(all[0].time_ns, MAX_EVENTS as i64 + 4, "newest first");
        assert_eq!(store.changes(MAX_EVENTS as i64 + 3).len(), 2);
        assert_eq!(store.next_bottleneck_id(), 1);
    }
}
