//! The standard `process_*` metrics of the daemon's own process, read from `/proc/self` at
//! scrape time: the same names and meanings as every other Prometheus client's process
//! collector, so existing dashboards and alerts work on them unchanged.

use std::path::Path;

/// What `/proc/self` says about the process at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on open files; `None` when unlimited or unreadable.
    pub max_fds: Option<u64>,
    /// Since the Unix epoch.
    pub start_time_seconds: f64,
}

/// The fields of `/proc/PID/stat` the metrics need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// In clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Since boot, in clock ticks.
    pub starttime: u64,
    pub vsize: u64,
    /// In pages.
    pub rss: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and may itself
/// contain spaces and parentheses, so the numbered fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; field N is at index N - 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// The system's boot time (seconds since the epoch), from `/proc/stat`'s `btime` line.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft "Max open files" limit from `/proc/PID/limits` (`None` when unlimited).
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the process's figures; `None` when `/proc` is not mounted (the metrics are then left
/// out rather than reported as zero). Blocking: a handful of small reads and a directory
/// listing.
pub fn read() -> Option<ProcessStats> {
    let proc = Path::new("/proc/self");
    let stat = parse_stat(&std::fs::read_to_string(proc.join("stat")).ok()?)?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as u64;
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_btime(&t))
        .unwrap_or(0);
    // The listing's own descriptor is counted too, as the other clients count it.
    let open_fds = std::fs::read_dir(proc.join("fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let max_fds = std::fs::read_to_string(proc.join("limits"))
        .ok()
        .and_then(|t| parse_max_fds(&t));
    Some(ProcessStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss.saturating_mul(page),
        virtual_bytes: stat.vsize,
        open_fds,
        max_fds,
        start_time_seconds: btime as f64 + stat.starttime as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis_of_the_name() {
        // A command name with spaces and a `)` of its own must not shift the fields.
        let text = "4242 (evil) name (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(text).expect("parses");
        assert_eq!(
            s,
            Stat {
                utime: 250,
                stime: 75,
                starttime: 123456,
                vsize: 987654321,
                rss: 2048,
            }
        );
        assert_eq!(parse_stat("12 (truncated) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
    }

    #[test]
    fn boot_time_and_the_open_files_limit_are_found() {
        let stat = "cpu  1 2 3 4\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(parse_btime(stat), Some(1_700_000_000));
        assert_eq!(parse_btime("cpu 1 2\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             127431               127431               processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
    }

    #[test]
    fn this_process_reads_as_running_now_with_memory_and_descriptors() {
        let p = read().expect("/proc is mounted where the tests run");
        assert!(p.resident_bytes > 0, "{p:?}");
        assert!(p.virtual_bytes >= p.resident_bytes, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.cpu_seconds >= 0.0, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs_f64();
        // Started in the past, and recently: the test binary is not a day old.
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0,
            "{p:?} now {now}"
        );
    }
}
