//! The performance monitor's records (trees `perf_samples`, `perf_bottlenecks`, `perf_tuning`,
//! `perf_state`). Samples, bottlenecks and changes are telemetry that is only ever shown, so
//! their records carry the protocol's shapes; a record that no longer decodes is skipped, not
//! migrated. The tuned values are state the daemon acts on and have a shape of their own.

use super::{legacy_version, versioned};
use backupd_common::protocol::{Bottleneck, IoClass, PerfSample, Tunables, TuningChange};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub sample: PerfSample,
}
versioned!(SampleRecord, 1);

impl From<PerfSample> for SampleRecord {
    fn from(sample: PerfSample) -> Self {
        Self { v: 1, sample }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BottleneckRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub bottleneck: Bottleneck,
}
versioned!(BottleneckRecord, 1);

impl From<Bottleneck> for BottleneckRecord {
    fn from(bottleneck: Bottleneck) -> Self {
        Self { v: 1, bottleneck }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub change: TuningChange,
}
versioned!(ChangeRecord, 1);

impl From<TuningChange> for ChangeRecord {
    fn from(change: TuningChange) -> Self {
        Self { v: 1, change }
    }
}

/// The tuner's values in force and `perf auto` as last set: they survive reloads and restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunedRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub workers: u32,
    pub threads: u32,
    pub zstd_level: i32,
    pub pack_bytes: u64,
    pub nice: i32,
    /// `None`: idle; otherwise the best-effort level.
    pub io_best_effort: Option<u8>,
    /// `perf auto on|off`; `None`: as configured.
    pub auto: Option<bool>,
}
versioned!(TunedRecord, 1);

impl TunedRecord {
    pub fn new(t: &Tunables, auto: Option<bool>) -> Self {
        Self {
            v: 1,
            workers: t.workers,
            threads: t.threads,
            zstd_level: t.zstd_level,
            pack_bytes: t.pack_bytes,
            nice: t.nice,
            io_best_effort: match t.io_class {
                IoClass::BestEffort(level) => Some(level),
                IoClass::Idle => None,
            },
            auto,
        }
    }

    pub fn tunables(&self) -> Tunables {
        Tunables {
            workers: self.workers,
            threads: self.threads,
            zstd_level: self.zstd_level,
            pack_bytes: self.pack_bytes,
            nice: self.nice,
            io_class: self
                .io_best_effort
                .map_or(IoClass::Idle, IoClass::BestEffort),
        }
    }
}
