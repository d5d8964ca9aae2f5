//! The exposition: a registry built afresh for each scrape from a [`Scrape`] and the
//! [`Observed`] event metrics, encoded in the Prometheus text format 0.0.4. Pure, so the names,
//! labels and values are tested without a daemon. Building the registry per scrape (a few
//! dozen small allocations) means a source or repository that is gone is gone from the next
//! scrape, with nothing to unregister.
//!
//! docs/OPERATIONS.md ("Prometheus metrics") lists every name; keep the two in step.

use super::gather::Scrape;
use super::observe::Observed;
use backupd_common::protocol::{BottleneckKind, HealthLevel, Severity};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of what [`encode`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepositoryLabel {
    repository: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: &'static str,
}

/// A bottleneck's severity as a number that orders: 0 none open, 1 info, 2 warning,
/// 3 critical.
pub fn severity_value(s: Severity) -> i64 {
    match s {
        Severity::Critical => 3,
        Severity::Warning => 2,
        Severity::Debug | Severity::Info | Severity::Notice => 1,
    }
}

const LEVELS: [HealthLevel; 3] = [HealthLevel::Ok, HealthLevel::Degraded, HealthLevel::Failing];

/// The whole exposition of one scrape.
pub fn encode(s: &Scrape, o: &Observed) -> Result<String, std::fmt::Error> {
    let mut root = Registry::default();
    if let Some(p) = &s.process {
        root.register_with_unit(
            "process_cpu",
            "Total user and system CPU time spent",
            Unit::Seconds,
            ConstCounter::new(p.cpu_seconds),
        );
        root.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            ConstGauge::new(p.resident_bytes as f64),
        );
        root.register_with_unit(
            "process_virtual_memory",
            "Virtual memory size",
            Unit::Bytes,
            ConstGauge::new(p.virtual_bytes as f64),
        );
        root.register(
            "process_open_fds",
            "Number of open file descriptors",
            ConstGauge::new(p.open_fds as f64),
        );
        if let Some(max) = p.max_fds {
            root.register(
                "process_max_fds",
                "Maximum number of open file descriptors",
                ConstGauge::new(max as f64),
            );
        }
        root.register_with_unit(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Unit::Seconds,
            ConstGauge::new(p.start_time_seconds),
        );
    }

    let r = root.sub_registry_with_prefix("backupd");
    let build = Family::<VersionLabel, Gauge>::default();
    build
        .get_or_create(&VersionLabel {
            version: backupd_common::VERSION,
        })
        .set(1);
    r.register(
        "build_info",
        "The running daemon's version, always 1",
        build,
    );

    jobs(r, s, o);
    repositories(r, o);
    sources(r, s);
    health(r, s);

    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &root)?;
    Ok(out)
}

fn jobs(r: &mut Registry, s: &Scrape, o: &Observed) {
    r.register(
        "jobs_finished",
        "Jobs that reached a final state since the daemon started, by kind and outcome \
         (succeeded, dead-letter, cancelled, timed-out)",
        o.finished(),
    );
    r.register(
        "job_retries",
        "Job attempts that failed and will be retried since the daemon started, by kind",
        o.retried(),
    );
    r.register_with_unit(
        "job_duration",
        "Time jobs spent running over all their attempts, observed when they reach a final \
         state, by kind",
        Unit::Seconds,
        o.durations(),
    );
    r.register(
        "job_events_missed",
        "Queue events the metrics missed because they fell behind (the job counters are low \
         by as many)",
        o.missed_events(),
    );
    let depth = Family::<StateLabel, Gauge>::default();
    depth
        .get_or_create(&StateLabel { state: "waiting" })
        .set(i64::from(s.waiting));
    depth
        .get_or_create(&StateLabel { state: "running" })
        .set(i64::from(s.running));
    r.register(
        "queue_jobs",
        "Jobs in the queue: waiting (queued or waiting to retry) and running",
        depth,
    );
    r.register(
        "dead_letter_jobs",
        "Jobs in the dead-letter queue",
        ConstGauge::new(i64::try_from(s.dead_letters).unwrap_or(i64::MAX)),
    );
    r.register_with_unit(
        "read",
        "File contents read from sources by backups since the daemon started",
        Unit::Bytes,
        ConstCounter::new(s.totals.read),
    );
    r.register_with_unit(
        "stored",
        "Bytes written into repositories (packs, indexes, snapshots) since the daemon started",
        Unit::Bytes,
        ConstCounter::new(s.totals.stored),
    );
    r.register_with_unit(
        "restored",
        "File contents written by restores since the daemon started",
        Unit::Bytes,
        ConstCounter::new(s.totals.restored),
    );
    r.register(
        "object_store_requests",
        "Requests sent to object stores (S3) since the daemon started, not counting the \
         client's retries",
        ConstCounter::new(s.totals.store_requests),
    );
}

fn repositories(r: &mut Registry, o: &Observed) {
    let dedup = Family::<RepositoryLabel, FloatGauge>::default();
    let compression = Family::<RepositoryLabel, FloatGauge>::default();
    let read = Family::<RepositoryLabel, FloatGauge>::default();
    let added = Family::<RepositoryLabel, FloatGauge>::default();
    let stored = Family::<RepositoryLabel, FloatGauge>::default();
    for (repository, f) in o.last_backups() {
        let label = RepositoryLabel { repository };
        read.get_or_create(&label).set(f.read as f64);
        added.get_or_create(&label).set(f.added as f64);
        stored.get_or_create(&label).set(f.stored as f64);
        if let Some(ratio) = f.dedup_ratio() {
            dedup.get_or_create(&label).set(ratio);
        }
        if let Some(ratio) = f.compression_ratio() {
            compression.get_or_create(&label).set(ratio);
        }
    }
    r.register(
        "last_backup_dedup_ratio",
        "Bytes read per new byte added to the repository by its latest backup that wrote a \
         snapshot (1: nothing deduplicated); absent when it read or added nothing",
        dedup,
    );
    r.register(
        "last_backup_compression_ratio",
        "New plaintext bytes per byte stored by the repository's latest backup that wrote a \
         snapshot; absent when it stored nothing",
        compression,
    );
    r.register_with_unit(
        "last_backup_read",
        "File contents read by the repository's latest backup that wrote a snapshot",
        Unit::Bytes,
        read,
    );
    r.register_with_unit(
        "last_backup_added",
        "Plaintext bytes new to the repository in its latest backup that wrote a snapshot",
        Unit::Bytes,
        added,
    );
    r.register_with_unit(
        "last_backup_stored",
        "Bytes the repository's latest backup that wrote a snapshot stored, compressed and \
         encrypted",
        Unit::Bytes,
        stored,
    );
}

fn sources(r: &mut Registry, s: &Scrape) {
    let lag = Family::<SourceLabel, FloatGauge>::default();
    let rpo = Family::<SourceLabel, FloatGauge>::default();
    for f in &s.sources {
        let label = SourceLabel {
            source: f.name.clone(),
        };
        if let Some(at) = f.last_snapshot_ns {
            let seconds = s.now_ns.saturating_sub(at).max(0) as f64 / 1e9;
            lag.get_or_create(&label).set(seconds);
        }
        if let Some(ms) = f.rpo_ms {
            rpo.get_or_create(&label).set(ms as f64 / 1e3);
        }
    }
    r.register_with_unit(
        "source_lag",
        "Time since the source's newest snapshot; absent before its first",
        Unit::Seconds,
        lag,
    );
    r.register_with_unit(
        "source_rpo",
        "The recovery point objective of the source: the longest its lag should grow",
        Unit::Seconds,
        rpo,
    );
}

fn health(r: &mut Registry, s: &Scrape) {
    let open = Family::<KindLabel, Gauge>::default();
    let severity = Family::<KindLabel, Gauge>::default();
    for kind in BottleneckKind::ALL {
        let label = KindLabel {
            kind: kind.as_str(),
        };
        let worst = s
            .bottlenecks
            .iter()
            .filter(|b| b.kind == kind && b.ended_ns.is_none())
            .map(|b| severity_value(b.severity))
            .max();
        open.get_or_create(&label).set(i64::from(worst.is_some()));
        severity.get_or_create(&label).set(worst.unwrap_or(0));
    }
    r.register(
        "bottleneck_open",
        "1 while a bottleneck of this kind (cpu, memory, disk, io) is open",
        open,
    );
    r.register(
        "bottleneck_severity",
        "The worst open bottleneck of this kind: 0 none, 1 info, 2 warning, 3 critical",
        severity,
    );
    r.register(
        "health_score",
        "The health score of `backupctl system health`, 0 to 100",
        ConstGauge::new(i64::from(s.health.score)),
    );
    let level = Family::<LevelLabel, Gauge>::default();
    for l in LEVELS {
        level
            .get_or_create(&LevelLabel { level: l.as_str() })
            .set(i64::from(l == s.health.level));
    }
    r.register(
        "health_level",
        "1 for the health level in force (ok, degraded, failing), 0 for the others",
        level,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::gather::SourceFigures;
    use crate::metrics::process::ProcessStats;
    use crate::perf::counters::Totals;
    use backupd_common::protocol::{Bottleneck, HealthScore};
    use std::collections::BTreeMap;

    const SEC: i64 = 1_000_000_000;

    fn bottleneck(kind: BottleneckKind, severity: Severity, ended: bool) -> Bottleneck {
        Bottleneck {
            id: 1,
            kind,
            subject: kind.as_str().into(),
            severity,
            started_ns: 0,
            ended_ns: ended.then_some(1),
            reason: "over".into(),
            peak: 99.0,
            actions: Vec::new(),
        }
    }

    fn scrape() -> Scrape {
        Scrape {
            now_ns: 1000 * SEC,
            totals: Totals {
                read: 1234,
                stored: 567,
                restored: 89,
                store_requests: 12,
            },
            waiting: 2,
            running: 1,
            dead_letters: 3,
            sources: vec![
                SourceFigures {
                    name: "www".into(),
                    last_snapshot_ns: Some(910 * SEC),
                    rpo_ms: Some(3_600_000),
                },
                SourceFigures {
                    name: "new".into(),
                    last_snapshot_ns: None,
                    rpo_ms: Some(86_400_000),
                },
            ],
            bottlenecks: vec![
                bottleneck(BottleneckKind::Disk, Severity::Warning, false),
                bottleneck(BottleneckKind::Disk, Severity::Critical, false),
                bottleneck(BottleneckKind::Cpu, Severity::Critical, true),
            ],
            health: HealthScore {
                score: 65,
                level: HealthLevel::Degraded,
                factors: Vec::new(),
            },
            process: Some(ProcessStats {
                cpu_seconds: 1.5,
                resident_bytes: 4096,
                virtual_bytes: 8192,
                open_fds: 7,
                max_fds: Some(1024),
                start_time_seconds: 1_700_000_000.25,
            }),
        }
    }

    /// The samples of an exposition by series (name and labels as written), after checking
    /// what the text format 0.0.4 asks of it: every sample belongs to a family announced once
    /// with `# HELP` and `# TYPE`, counters end in `_total`, other types do not.
    fn samples(text: &str) -> BTreeMap<String, f64> {
        let mut types: BTreeMap<&str, &str> = BTreeMap::new();
        let mut helps: BTreeMap<&str, usize> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("name");
                *helps.entry(name).or_default() += 1;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("name and type");
                assert!(types.insert(name, kind).is_none(), "{name} typed twice");
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "{name} is a {kind}"
                );
            } else {
                assert!(!line.starts_with('#'), "{line}");
                let (series, value) = line.rsplit_once(' ').expect("series and value");
                let name = series.split('{').next().expect("name");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix)
                            .filter(|f| types.get(f) == Some(&"histogram"))
                    })
                    .unwrap_or(name);
                assert!(types.contains_key(family), "{line}: no # TYPE {family}");
                assert_eq!(helps.get(family), Some(&1), "{line}: no single # HELP");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or_else(|_| panic!("{line}: value")),
                };
                assert!(
                    out.insert(series.to_owned(), value).is_none(),
                    "{line} twice"
                );
            }
        }
        out
    }

    #[test]
    fn the_exposition_is_well_formed_and_says_what_the_scrape_read() {
        let text = encode(&scrape(), &Observed::new()).expect("encodes");
        let s = samples(&text);
        let get = |series: &str| {
            *s.get(series)
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        };
        assert_eq!(get("backupd_read_bytes_total"), 1234.0);
        assert_eq!(get("backupd_stored_bytes_total"), 567.0);
        assert_eq!(get("backupd_restored_bytes_total"), 89.0);
        assert_eq!(get("backupd_object_store_requests_total"), 12.0);
        assert_eq!(get("backupd_queue_jobs{state=\"waiting\"}"), 2.0);
        assert_eq!(get("backupd_queue_jobs{state=\"running\"}"), 1.0);
        assert_eq!(get("backupd_dead_letter_jobs"), 3.0);
        assert_eq!(get("backupd_source_lag_seconds{source=\"www\"}"), 90.0);
        assert_eq!(get("backupd_source_rpo_seconds{source=\"new\"}"), 86_400.0);
        assert!(
            !s.contains_key("backupd_source_lag_seconds{source=\"new\"}"),
            "a source without a snapshot has no lag"
        );
        // The worst open one counts; an ended one does not.
        assert_eq!(get("backupd_bottleneck_open{kind=\"disk\"}"), 1.0);
        assert_eq!(get("backupd_bottleneck_severity{kind=\"disk\"}"), 3.0);
        assert_eq!(get("backupd_bottleneck_open{kind=\"cpu\"}"), 0.0);
        assert_eq!(get("backupd_bottleneck_severity{kind=\"io\"}"), 0.0);
        assert_eq!(get("backupd_health_score"), 65.0);
        assert_eq!(get("backupd_health_level{level=\"degraded\"}"), 1.0);
        assert_eq!(get("backupd_health_level{level=\"ok\"}"), 0.0);
        assert_eq!(get("process_cpu_seconds_total"), 1.5);
        assert_eq!(get("process_resident_memory_bytes"), 4096.0);
        assert_eq!(get("process_open_fds"), 7.0);
        assert_eq!(get("process_max_fds"), 1024.0);
        assert_eq!(get("process_start_time_seconds"), 1_700_000_000.25);
        let version = format!(
            "backupd_build_info{{version=\"{}\"}}",
            backupd_common::VERSION
        );
        assert_eq!(get(&version), 1.0);
        // Every job kind is there from the start, at zero.
        assert_eq!(
            get("backupd_jobs_finished_total{kind=\"backup\",outcome=\"succeeded\"}"),
            0.0
        );
        assert_eq!(
            get("backupd_job_duration_seconds_count{kind=\"restore\"}"),
            0.0
        );
        assert_eq!(
            get("backupd_job_duration_seconds_bucket{kind=\"restore\",le=\"+Inf\"}"),
            0.0
        );
        assert!(text.contains("# TYPE backupd_job_duration_seconds histogram\n"));
    }

    #[test]
    fn label_values_are_escaped_and_missing_proc_leaves_the_process_metrics_out() {
        let mut s = scrape();
        s.sources = vec![SourceFigures {
            name: "a\"b\\c\nd".into(),
            last_snapshot_ns: Some(999 * SEC),
            rpo_ms: None,
        }];
        s.process = None;
        let text = encode(&s, &Observed::new()).expect("encodes");
        let samples = samples(&text);
        assert_eq!(
            samples.get(r#"backupd_source_lag_seconds{source="a\"b\\c\nd"}"#),
            Some(&1.0),
            "{text}"
        );
        assert!(!text.contains("process_"), "{text}");
    }

    #[test]
    fn severities_order_from_info_to_critical() {
        assert!(severity_value(Severity::Info) < severity_value(Severity::Warning));
        assert!(severity_value(Severity::Warning) < severity_value(Severity::Critical));
        assert!(severity_value(Severity::Info) > 0, "0 means none open");
    }
}
