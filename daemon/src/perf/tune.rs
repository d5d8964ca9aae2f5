//! The tuner's rules, pure: one round looks at the samples since the previous round and moves
//! each tunable at most one step, towards less load under pressure and back towards the
//! configured value when the pressure is gone.
//!
//! Hysteresis: pressure is the window's average above the bottleneck threshold; relief needs
//! the average [`RELIEF_MARGIN`] points below it for [`CALM_ROUNDS`] rounds in a row. A load
//! that hovers at the threshold therefore moves a tunable down once and not back and forth.

use backupd_common::config::perf::PerfConfig;
use backupd_common::protocol::{IoClass, PerfSample, Tunables, TuningChange};

/// Points below a threshold that count as calm.
pub const RELIEF_MARGIN: f64 = 15.0;
/// Calm rounds in a row before a tunable moves back one step.
pub const CALM_ROUNDS: u32 = 2;
/// Below this share of all CPUs the daemon's own use is not what loads the machine: at nice 19
/// its threads already yield, so fewer threads or jobs would give the other work nothing
/// (bench/perf.sh next to a CPU hog: with one thread fewer the backup took 180 s and the hog
/// kept 78 %; without that step 183 s and 82 %), and the tuner stops at the nice level.
pub const DAEMON_CPU_SIGNIFICANT: f64 = 20.0;
/// Bounds.
pub const MIN_PACK_BYTES: u64 = 4 << 20;
pub const MAX_ZSTD_LEVEL: i32 = 9;
pub const MAX_NICE: i32 = 19;
const NICE_STEP: i32 = 5;

/// What one round runs on.
#[derive(Debug)]
pub struct Window<'a> {
    pub samples: &'a [PerfSample],
    /// Paths of the disks that hold repositories, and whether each will be full within
    /// `disk_full_warning`.
    pub repo_disks: &'a [(String, bool)],
}

/// The tuner's memory between rounds: calm rounds per rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calm {
    pub cpu: u32,
    pub memory: u32,
    pub disk: u32,
    pub io: u32,
}

/// What a round did.
#[derive(Debug, Default)]
pub struct Round {
    pub tunables: Option<Tunables>,
    pub changes: Vec<TuningChange>,
    pub notes: Vec<String>,
}

fn avg(samples: &[PerfSample], f: impl Fn(&PerfSample) -> f64) -> Option<f64> {
    (!samples.is_empty()).then(|| samples.iter().map(&f).sum::<f64>() / samples.len() as f64)
}

struct Step<'a> {
    now_ns: i64,
    trigger: &'a str,
    changes: Vec<TuningChange>,
}

impl Step<'_> {
    fn record(&mut self, tunable: &str, old: String, new: String, metric: String, reason: &str) {
        self.changes.push(TuningChange {
            time_ns: self.now_ns,
            tunable: tunable.into(),
            old,
            new,
            metric,
            reason: reason.into(),
            trigger: self.trigger.into(),
        });
    }
}

/// One round. `configured` is what the configuration asks for (the ceiling the tuner returns
/// to); `current` what is in force.
pub fn round(
    current: &Tunables,
    configured: &Tunables,
    calm: &mut Calm,
    window: &Window<'_>,
    c: &PerfConfig,
    now_ns: i64,
    trigger: &str,
) -> Round {
    let mut t = current.clone();
    let mut s = Step {
        now_ns,
        trigger,
        changes: Vec::new(),
    };
    let mut notes = Vec::new();
    let samples = window.samples;
    let Some(cpu) = avg(samples, |x| f64::from(x.cpu_percent)) else {
        notes.push("no samples since the last round; nothing to decide on".into());
        return Round {
            tunables: None,
            changes: Vec::new(),
            notes,
        };
    };
    let daemon_cpu = avg(samples, |x| f64::from(x.daemon_cpu_percent)).unwrap_or(0.0);
    let memory = avg(samples, PerfSample::memory_percent).unwrap_or(0.0);
    let iowait = avg(samples, |x| f64::from(x.iowait_percent)).unwrap_or(0.0);
    let io_pressure = avg(samples, |x| {
        x.pressure.map_or(0.0, |p| f64::from(p.io_some))
    });

    // CPU: fewer jobs, fewer threads, nicer threads; back one step at a time.
    let metric = format!("cpu {cpu:.1} %");
    if cpu > c.cpu_percent {
        calm.cpu = 0;
        if t.nice < MAX_NICE {
            let new = (t.nice + NICE_STEP).min(MAX_NICE);
            s.record(
                "nice",
                t.nice.to_string(),
                new.to_string(),
                metric.clone(),
                "CPU pressure: backups yield the CPU to other work",
            );
            t.nice = new;
        } else if daemon_cpu < DAEMON_CPU_SIGNIFICANT {
            notes.push(format!(
                "{metric}: backups already run at nice {MAX_NICE} and the daemon uses {daemon_cpu:.1} % \
                 (below {DAEMON_CPU_SIGNIFICANT} %): fewer threads would only slow them down"
            ));
        } else if t.threads > 1 {
            s.record(
                "threads",
                t.threads.to_string(),
                (t.threads - 1).to_string(),
                metric.clone(),
                "CPU pressure: one thread fewer per backup",
            );
            t.threads -= 1;
        } else if t.workers > 1 {
            s.record(
                "workers",
                t.workers.to_string(),
                (t.workers - 1).to_string(),
                metric.clone(),
                "CPU pressure: one job fewer at a time",
            );
            t.workers -= 1;
        } else {
            notes.push(format!("{metric}: already at the least CPU the daemon can use (nice {MAX_NICE}, 1 thread, 1 worker)"));
        }
    } else if cpu < c.cpu_percent - RELIEF_MARGIN {
        calm.cpu += 1;
        if calm.cpu >= CALM_ROUNDS {
            if t.workers < configured.workers {
                s.record(
                    "workers",
                    t.workers.to_string(),
                    (t.workers + 1).to_string(),
                    metric.clone(),
                    "CPU pressure gone: one job more at a time",
                );
                t.workers += 1;
                calm.cpu = 0;
            } else if t.threads < configured.threads {
                s.record(
                    "threads",
                    t.threads.to_string(),
                    (t.threads + 1).to_string(),
                    metric.clone(),
                    "CPU pressure gone: one thread more per backup",
                );
                t.threads += 1;
                calm.cpu = 0;
            } else if t.nice > configured.nice {
                let new = (t.nice - NICE_STEP).max(configured.nice);
                s.record(
                    "nice",
                    t.nice.to_string(),
                    new.to_string(),
                    metric.clone(),
                    "CPU pressure gone: back towards the configured priority",
                );
                t.nice = new;
                calm.cpu = 0;
            }
        } else if *current != *configured {
            notes.push(format!(
                "{metric}: calm for {} of {CALM_ROUNDS} rounds before stepping back",
                calm.cpu
            ));
        }
    } else {
        calm.cpu = 0;
        notes.push(format!("{metric}: between the relief level ({:.0} %) and the threshold ({:.0} %); CPU tunables stay", c.cpu_percent - RELIEF_MARGIN, c.cpu_percent));
    }

    // Memory: smaller packs (what each backup holds), then fewer threads.
    let metric = format!("memory {memory:.1} %");
    if memory > c.memory_percent {
        calm.memory = 0;
        if t.pack_bytes > MIN_PACK_BYTES {
            let new = (t.pack_bytes / 2).max(MIN_PACK_BYTES);
            s.record(
                "pack_bytes",
                t.pack_bytes.to_string(),
                new.to_string(),
                metric.clone(),
                "memory pressure: backups hold smaller packs",
            );
            t.pack_bytes = new;
        } else if t.threads > 1 && !s.changes.iter().any(|ch| ch.tunable == "threads") {
            s.record(
                "threads",
                t.threads.to_string(),
                (t.threads - 1).to_string(),
                metric.clone(),
                "memory pressure: one thread (and its buffers) fewer per backup",
            );
            t.threads -= 1;
        } else {
            notes.push(format!("{metric}: packs and threads are at their least"));
        }
    } else if memory < c.memory_percent - RELIEF_MARGIN {
        calm.memory += 1;
        if calm.memory >= CALM_ROUNDS && t.pack_bytes < configured.pack_bytes {
            let new = (t.pack_bytes * 2).min(configured.pack_bytes);
            s.record(
                "pack_bytes",
                t.pack_bytes.to_string(),
                new.to_string(),
                metric.clone(),
                "memory pressure gone: back towards the configured pack size",
            );
            t.pack_bytes = new;
            calm.memory = 0;
        }
    } else {
        calm.memory = 0;
    }

    // A repository's disk filling up: compress harder; back when there is room again.
    let filling: Vec<&str> = window
        .repo_disks
        .iter()
        .filter_map(|(path, soon_full)| {
            let used = samples
                .last()?
                .disks
                .iter()
                .find(|d| &d.path == path)?
                .used_percent();
            (used > c.disk_percent || *soon_full).then_some(path.as_str())
        })
        .collect();
    let roomy = window.repo_disks.iter().all(|(path, soon_full)| {
        !soon_full
            && samples
                .last()
                .and_then(|x| x.disks.iter().find(|d| &d.path == path))
                .is_none_or(|d| d.used_percent() < c.disk_percent - RELIEF_MARGIN / 3.0)
    });
    if !filling.is_empty() {
        calm.disk = 0;
        let metric = format!("repository disk {}", filling.join(", "));
        if t.zstd_level < MAX_ZSTD_LEVEL {
            let new = (t.zstd_level + 2).min(MAX_ZSTD_LEVEL);
            s.record(
                "zstd_level",
                t.zstd_level.to_string(),
                new.to_string(),
                metric,
                "a repository's disk is filling: new data is compressed harder",
            );
            t.zstd_level = new;
        } else {
            notes.push(format!("{metric}: compression is at its most (level {MAX_ZSTD_LEVEL}); forget and prune old snapshots or add space"));
        }
    } else if roomy {
        calm.disk += 1;
        if calm.disk >= CALM_ROUNDS && t.zstd_level > configured.zstd_level {
            let new = (t.zstd_level - 2).max(configured.zstd_level);
            s.record(
                "zstd_level",
                t.zstd_level.to_string(),
                new.to_string(),
                "repository disks have room".into(),
                "back towards the configured compression level",
            );
            t.zstd_level = new;
            calm.disk = 0;
        }
    } else {
        calm.disk = 0;
    }

    // I/O: the idle class first, then a thread fewer.
    let io_short =
        iowait > c.iowait_percent || io_pressure.is_some_and(|p| p > c.io_pressure_percent);
    let metric = match io_pressure {
        Some(p) if p > 0.0 => format!("iowait {iowait:.1} %, io pressure {p:.1} %"),
        _ => format!("iowait {iowait:.1} %"),
    };
    let io_calm = iowait < c.iowait_percent - RELIEF_MARGIN
        && io_pressure.is_none_or(|p| p < c.io_pressure_percent - RELIEF_MARGIN);
    if io_short {
        calm.io = 0;
        if t.io_class != IoClass::Idle {
            s.record(
                "io_class",
                t.io_class.to_string(),
                IoClass::Idle.to_string(),
                metric,
                "I/O pressure: backups read and write only when the disk is otherwise idle",
            );
            t.io_class = IoClass::Idle;
        } else if t.threads > 1 && !s.changes.iter().any(|ch| ch.tunable == "threads") {
            s.record(
                "threads",
                t.threads.to_string(),
                (t.threads - 1).to_string(),
                metric,
                "I/O pressure: one thread fewer per backup",
            );
            t.threads -= 1;
        } else {
            notes.push(format!("{metric}: backups already use the idle I/O class"));
        }
    } else if io_calm {
        calm.io += 1;
        if calm.io >= CALM_ROUNDS && t.io_class != configured.io_class {
            s.record(
                "io_class",
                t.io_class.to_string(),
                configured.io_class.to_string(),
                metric,
                "I/O pressure gone: back to the configured class",
            );
            t.io_class = configured.io_class;
            calm.io = 0;
        }
    } else {
        calm.io = 0;
    }

    if s.changes.is_empty() && notes.is_empty() {
        notes.push("no pressure and every tunable at its configured value".into());
    }
    Round {
        tunables: (!s.changes.is_empty()).then_some(t),
        changes: s.changes,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::DiskUsage;

    fn configured() -> Tunables {
        Tunables {
            workers: 2,
            threads: 2,
            zstd_level: 1,
            pack_bytes: 16 << 20,
            nice: 10,
            io_class: IoClass::BestEffort(7),
        }
    }

    fn samples(cpu: f32, mem_pct: u64, iowait: f32, disk_used: u64) -> Vec<PerfSample> {
        (0..10)
            .map(|i| PerfSample {
                time_ns: i,
                cpu_percent: cpu,
                daemon_cpu_percent: cpu / 2.0,
                iowait_percent: iowait,
                memory_used_bytes: mem_pct,
                memory_total_bytes: 100,
                disks: vec![DiskUsage {
                    path: "/repo".into(),
                    holds: vec!["repository default".into()],
                    total_bytes: 100,
                    used_bytes: disk_used,
                    available_bytes: 100 - disk_used,
                }],
                ..Default::default()
            })
            .collect()
    }

    fn go(t: &Tunables, calm: &mut Calm, s: &[PerfSample], soon_full: bool) -> Round {
        let disks = [("/repo".to_owned(), soon_full)];
        round(
            t,
            &configured(),
            calm,
            &Window {
                samples: s,
                repo_disks: &disks,
            },
            &PerfConfig::default(),
            1,
            "auto",
        )
    }

    #[test]
    fn cpu_pressure_steps_down_one_tunable_a_round_to_a_floor_and_says_so() {
        let mut t = configured();
        let mut calm = Calm::default();
        let busy = samples(95.0, 10, 0.0, 10);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let r = go(&t, &mut calm, &busy, false);
            assert!(r.changes.len() <= 1, "{:?}", r.changes);
            if let Some(n) = r.tunables {
                seen.push(r.changes[0].tunable.clone());
                t = n;
            } else {
                assert!(r.notes[0].contains("already at the least"), "{:?}", r.notes);
            }
        }
        assert_eq!(seen, ["nice", "nice", "threads", "workers"]);
        assert_eq!((t.nice, t.threads, t.workers), (19, 1, 1));
    }

    #[test]
    fn when_others_load_the_cpu_the_tuner_stops_at_the_nice_level() {
        let mut t = configured();
        let mut calm = Calm::default();
        let mut busy = samples(98.0, 10, 0.0, 10);
        for s in &mut busy {
            s.daemon_cpu_percent = 3.0;
        }
        for _ in 0..5 {
            if let Some(n) = go(&t, &mut calm, &busy, false).tunables {
                t = n;
            }
        }
        assert_eq!((t.nice, t.threads, t.workers), (19, 2, 2));
        let r = go(&t, &mut calm, &busy, false);
        assert!(
            r.notes[0].contains("would only slow them down"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn relief_needs_calm_rounds_and_a_load_at_the_threshold_does_not_flap() {
        let mut t = Tunables {
            nice: 19,
            workers: 1,
            ..configured()
        };
        let mut calm = Calm::default();
        // 75 % is below the 80 % threshold but above the relief level: nothing moves.
        for _ in 0..5 {
            assert!(go(&t, &mut calm, &samples(75.0, 10, 0.0, 10), false)
                .tunables
                .is_none());
        }
        let quiet = samples(20.0, 10, 0.0, 10);
        assert!(
            go(&t, &mut calm, &quiet, false).tunables.is_none(),
            "one calm round is not enough"
        );
        let r = go(&t, &mut calm, &quiet, false);
        t = r.tunables.expect("second calm round steps back");
        assert_eq!(t.workers, 2);
        assert!(go(&t, &mut calm, &quiet, false).tunables.is_none());
        t = go(&t, &mut calm, &quiet, false)
            .tunables
            .expect("next step");
        assert_eq!(t.nice, 14);
        for _ in 0..4 {
            if let Some(n) = go(&t, &mut calm, &quiet, false).tunables {
                t = n;
            }
        }
        assert_eq!(
            t,
            configured(),
            "back at the configured values, never past them"
        );
    }

    #[test]
    fn memory_halves_packs_disk_raises_compression_io_goes_idle() {
        let mut calm = Calm::default();
        let r = go(&configured(), &mut calm, &samples(10.0, 90, 0.0, 10), false);
        assert_eq!(r.tunables.expect("changed").pack_bytes, 8 << 20);
        let r = go(&configured(), &mut calm, &samples(10.0, 10, 0.0, 95), false);
        assert_eq!(r.tunables.expect("changed").zstd_level, 3);
        let r = go(&configured(), &mut calm, &samples(10.0, 10, 0.0, 40), true);
        assert_eq!(r.changes[0].tunable, "zstd_level", "a forecast counts too");
        let r = go(
            &configured(),
            &mut calm,
            &samples(10.0, 10, 45.0, 10),
            false,
        );
        let t = r.tunables.expect("changed");
        assert_eq!(t.io_class, IoClass::Idle);
        assert!(
            r.changes[0].metric.contains("iowait 45.0"),
            "{:?}",
            r.changes
        );
    }

    #[test]
    fn no_samples_means_no_decision() {
        let r = go(&configured(), &mut Calm::default(), &[], false);
        assert!(r.tunables.is_none());
        assert!(r.notes[0].contains("no samples"));
    }
}
