//! One reading of the machine and the daemon: CPU and I/O wait from `/proc/stat`, memory and the
//! daemon's own CPU and RSS from `sysinfo`, pressure-stall averages from `/proc/pressure`, disk
//! usage of the file systems the daemon writes to or reads from (`statvfs`), and the throughput
//! of its jobs from [`super::counters`]. Blocking (reads /proc): call from a blocking thread.

use super::counters::{self, Totals};
use backupd_common::protocol::{DiskUsage, PerfSample, Pressure};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// A path whose file system is watched, and what it holds (`state`, `repository NAME`,
/// `source NAME`).
#[derive(Clone, Debug)]
pub struct Watched {
    pub path: PathBuf,
    pub holds: String,
}

/// What the sampler cannot see for itself.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub paths: Vec<Watched>,
    pub queued: u32,
    pub running: u32,
}

/// CPU time counters of `/proc/stat`'s first line, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CpuTicks {
    total: u64,
    idle: u64,
    iowait: u64,
}

/// Keeps what a reading needs from the previous one (CPU ticks and byte counters are deltas).
pub struct Sampler {
    system: System,
    pid: Pid,
    cpus: f32,
    last_ticks: Option<CpuTicks>,
    last_totals: Option<(Instant, Totals)>,
}

impl Sampler {
    pub fn new() -> Self {
        let mut system = System::new();
        system.refresh_memory();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f32;
        let mut sampler = Self {
            system,
            pid: Pid::from_u32(std::process::id()),
            cpus,
            last_ticks: None,
            last_totals: None,
        };
        // The first reading only sets the baselines of the deltas.
        sampler.refresh_process();
        sampler.last_ticks = read_cpu_ticks();
        sampler.last_totals = Some((Instant::now(), counters::totals()));
        sampler
    }

    fn refresh_process(&mut self) {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
    }

    /// Reads everything now; rates are over the time since the previous call.
    pub fn sample(&mut self, inputs: &Inputs, time_ns: i64, span_secs: u32) -> PerfSample {
        self.system.refresh_memory();
        self.refresh_process();
        let (cpu_percent, iowait_percent) = match (self.last_ticks, read_cpu_ticks()) {
            (Some(before), Some(now)) => {
                self.last_ticks = Some(now);
                cpu_shares(before, now)
            }
            (_, now) => {
                self.last_ticks = now;
                (0.0, 0.0)
            }
        };
        let (daemon_cpu_percent, daemon_rss_bytes) = self
            .system
            .process(self.pid)
            .map(|p| (p.cpu_usage() / self.cpus, p.memory()))
            .unwrap_or_default();
        let now = (Instant::now(), counters::totals());
        let (read_bps, stored_bps, restored_bps) = match self.last_totals {
            Some((at, before)) => {
                let secs = now.0.duration_since(at).as_secs_f64().max(0.001);
                let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs) as u64;
                (
                    rate(now.1.read, before.read),
                    rate(now.1.stored, before.stored),
                    rate(now.1.restored, before.restored),
                )
            }
            None => (0, 0, 0),
        };
        self.last_totals = Some(now);
        PerfSample {
            time_ns,
            span_secs,
            cpu_percent,
            daemon_cpu_percent,
            iowait_percent,
            memory_used_bytes: self.system.used_memory(),
            memory_total_bytes: self.system.total_memory(),
            daemon_rss_bytes,
            pressure: read_pressure(),
            disks: disks(&inputs.paths),
            read_bps,
            stored_bps,
            restored_bps,
            queued: inputs.queued,
            running: inputs.running,
        }
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

fn read_cpu_ticks() -> Option<CpuTicks> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_ticks(text.lines().next()?)
}

/// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`; guest time is
/// already counted in user and nice.
fn parse_cpu_ticks(line: &str) -> Option<CpuTicks> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    Some(CpuTicks {
        total: values.iter().sum(),
        idle: values[3],
        iowait: values[4],
    })
}

/// Busy and I/O-wait shares of the ticks between two readings, in percent.
fn cpu_shares(before: CpuTicks, now: CpuTicks) -> (f32, f32) {
    let total = now.total.saturating_sub(before.total);
    if total == 0 {
        return (0.0, 0.0);
    }
    let idle = now.idle.saturating_sub(before.idle);
    let iowait = now.iowait.saturating_sub(before.iowait);
    let busy = total.saturating_sub(idle + iowait);
    let pct = |n: u64| (n as f64 * 100.0 / total as f64) as f32;
    (pct(busy), pct(iowait))
}

fn read_pressure() -> Option<Pressure> {
    let read = |name: &str| std::fs::read_to_string(format!("/proc/pressure/{name}")).ok();
    let cpu = read("cpu")?;
    let memory = read("memory")?;
    let io = read("io")?;
    Some(Pressure {
        cpu_some: avg10(&cpu, "some").unwrap_or(0.0),
        memory_some: avg10(&memory, "some").unwrap_or(0.0),
        memory_full: avg10(&memory, "full").unwrap_or(0.0),
        io_some: avg10(&io, "some").unwrap_or(0.0),
        io_full: avg10(&io, "full").unwrap_or(0.0),
    })
}

/// The `avg10=` value of the `some` or `full` line of a pressure file.
fn avg10(text: &str, line: &str) -> Option<f32> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(line))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

/// One entry per file system (by device), in the order the paths are given.
fn disks(paths: &[Watched]) -> Vec<DiskUsage> {
    let mut out: Vec<(u64, DiskUsage)> = Vec::new();
    for w in paths {
        let Ok(meta) = std::fs::metadata(&w.path) else {
            continue;
        };
        if let Some((_, d)) = out.iter_mut().find(|(dev, _)| *dev == meta.dev()) {
            if !d.holds.contains(&w.holds) {
                d.holds.push(w.holds.clone());
            }
            continue;
        }
        let Ok(vfs) = nix::sys::statvfs::statvfs(&w.path) else {
            continue;
        };
        let unit = vfs.fragment_size();
        let total = vfs.blocks() * unit;
        let free = vfs.blocks_free() * unit;
        out.push((
            meta.dev(),
            DiskUsage {
                path: w.path.display().to_string(),
                holds: vec![w.holds.clone()],
                total_bytes: total,
                used_bytes: total.saturating_sub(free),
                available_bytes: vfs.blocks_available() * unit,
            },
        ));
    }
    out.into_iter().map(|(_, d)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_parses_and_shares_split_busy_from_iowait() {
        let a = parse_cpu_ticks("cpu  100 0 100 700 100 0 0 0 0 0").expect("parse");
        let b = parse_cpu_ticks("cpu  150 0 150 750 150 0 0 0 0 0").expect("parse");
        assert_eq!(a.total, 1000);
        let (busy, iowait) = cpu_shares(a, b);
        assert!((busy - 50.0).abs() < 0.01, "{busy}");
        assert!((iowait - 25.0).abs() < 0.01, "{iowait}");
        assert_eq!(cpu_shares(b, b), (0.0, 0.0));
        assert!(parse_cpu_ticks("cpu0 1 2 3 4 5").is_none());
    }

    #[test]
    fn pressure_lines_parse() {
        let text = "some avg10=12.50 avg60=3.00 avg300=1.00 total=5\n\
                    full avg10=2.25 avg60=1.00 avg300=0.50 total=2\n";
        assert_eq!(avg10(text, "some"), Some(12.5));
        assert_eq!(avg10(text, "full"), Some(2.25));
        assert_eq!(avg10("garbage", "some"), None);
    }

    #[test]
    fn a_real_sample_has_memory_and_the_disk_of_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inputs = Inputs {
            paths: vec![
                Watched {
                    path: dir.path().to_owned(),
                    holds: "state".into(),
                },
                Watched {
                    path: dir.path().join("."),
                    holds: "repository default".into(),
                },
                Watched {
                    path: dir.path().join("missing"),
                    holds: "source gone".into(),
                },
            ],
            queued: 2,
            running: 1,
        };
        let mut s = Sampler::new();
        let sample = s.sample(&inputs, 1, 30);
        assert!(sample.memory_total_bytes > 0);
        assert!(sample.daemon_rss_bytes > 0);
        assert_eq!(sample.disks.len(), 1, "{:?}", sample.disks);
        assert_eq!(sample.disks[0].holds, ["state", "repository default"]);
        assert!(sample.disks[0].total_bytes > 0);
        assert_eq!((sample.queued, sample.running), (2, 1));
    }
}
