//! `perf ...`: the monitor's samples, bottlenecks and report, and the tuner.

use super::Failure;
use crate::cli::{OnOff, PerfCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::perf::{
    BottleneckView, ChangeView, CurrentView, OptimizedView, ReportView, SampleView,
};
use crate::output::{table, Output};
use crate::progress::bytes;
use backupd_common::protocol::{
    Bottleneck, Optimized, PerfCurrent, PerfReport, PerfRequest, PerfSample, Response, Stat,
    Tunables, TuningChange,
};
use std::time::Duration;

fn ms(d: &Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unexpected(r: Response) -> Failure {
    Failure::Client(backupd_common::client::ClientError::Unexpected(format!(
        "{r:?}"
    )))
}

pub async fn run(
    client: &mut Client,
    cmd: &PerfCommand,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let request = match cmd {
        PerfCommand::Current => PerfRequest::Current,
        PerfCommand::Report(w) => PerfRequest::Report {
            since_ms: ms(&w.since),
        },
        PerfCommand::Metrics(a) => PerfRequest::Metrics {
            since_ms: ms(&a.since),
            max_points: a.max_points,
        },
        PerfCommand::Bottlenecks(w) => PerfRequest::Bottlenecks {
            since_ms: ms(&w.since),
        },
        PerfCommand::History(w) => PerfRequest::History {
            since_ms: ms(&w.since),
        },
        PerfCommand::Optimize => PerfRequest::Optimize,
        PerfCommand::Auto { state } => PerfRequest::Auto {
            on: matches!(state, OnOff::On),
        },
    };
    match client.perf(request).await? {
        Response::PerfCurrent(c) => out.value(&CurrentView::from(&*c), || current_text(&c)),
        Response::PerfReport(r) => out.value(&ReportView::from(&*r), || report_text(&r)),
        Response::PerfSamples(list) => out.value(
            &list.iter().map(SampleView::from).collect::<Vec<_>>(),
            || samples_table(&list),
        ),
        Response::Bottlenecks(list) => out.value(
            &list.iter().map(BottleneckView::from).collect::<Vec<_>>(),
            || bottlenecks_table(&list),
        ),
        Response::TuningHistory(list) => out.value(
            &list.iter().map(ChangeView::from).collect::<Vec<_>>(),
            || changes_table(&list),
        ),
        Response::Optimized(o) => out.value(&OptimizedView::from(&*o), || optimized_text(&o)),
        other => return Err(unexpected(other)),
    }
    Ok(ExitCode::Ok)
}

fn pct(v: f64) -> String {
    format!("{v:.1} %")
}

fn when(ns: i64) -> String {
    crate::commands::queue::time(ns)
}

fn tunables_text(t: &Tunables) -> String {
    format!(
        "workers {}, threads {}, zstd level {}, packs {}, nice {}, io {}",
        t.workers,
        t.threads,
        t.zstd_level,
        bytes(t.pack_bytes),
        t.nice,
        t.io_class
    )
}

fn current_text(c: &PerfCurrent) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    match &c.sample {
        None => rows.push((
            "sample".into(),
            format!(
                "none yet (the first is taken {} s after start)",
                c.sample_interval_ms / 1000
            ),
        )),
        Some(s) => {
            rows.push(("sampled".into(), when(s.time_ns)));
            rows.push((
                "cpu".into(),
                format!(
                    "{} (daemon {})",
                    pct(f64::from(s.cpu_percent)),
                    pct(f64::from(s.daemon_cpu_percent))
                ),
            ));
            rows.push((
                "memory".into(),
                format!(
                    "{} of {} ({}), daemon RSS {}",
                    bytes(s.memory_used_bytes),
                    bytes(s.memory_total_bytes),
                    pct(s.memory_percent()),
                    bytes(s.daemon_rss_bytes)
                ),
            ));
            rows.push(("iowait".into(), pct(f64::from(s.iowait_percent))));
            if let Some(p) = s.pressure {
                rows.push((
                    "pressure".into(),
                    format!(
                        "cpu {:.1} %, memory {:.1} %, io {:.1} % (some, avg10)",
                        p.cpu_some, p.memory_some, p.io_some
                    ),
                ));
            }
            for d in &s.disks {
                rows.push((
                    "disk".into(),
                    format!(
                        "{} {} of {} used ({}) [{}]",
                        d.path,
                        bytes(d.used_bytes),
                        bytes(d.total_bytes),
                        pct(d.used_percent()),
                        d.holds.join(", ")
                    ),
                ));
            }
            rows.push((
                "throughput".into(),
                format!(
                    "read {}/s, stored {}/s, restored {}/s",
                    bytes(s.read_bps),
                    bytes(s.stored_bps),
                    bytes(s.restored_bps)
                ),
            ));
            rows.push((
                "queue".into(),
                format!("{} waiting, {} running", s.queued, s.running),
            ));
        }
    }
    if let Some(b) = &c.baseline {
        rows.push((
            "baseline".into(),
            format!(
                "{:02}:00 median of {} samples: cpu {:.1} %, memory {:.1} %, iowait {:.1} %",
                b.hour, b.samples, b.cpu_percent, b.memory_percent, b.iowait_percent
            ),
        ));
    }
    if c.open_bottlenecks.is_empty() {
        rows.push(("bottlenecks".into(), "none".into()));
    }
    for b in &c.open_bottlenecks {
        rows.push((
            "bottleneck".into(),
            format!(
                "{} since {}: {}",
                b.severity.as_str(),
                when(b.started_ns),
                b.reason
            ),
        ));
    }
    rows.push((
        "tuner".into(),
        if c.auto {
            format!("auto, every {} s", c.optimize_interval_ms / 1000)
        } else {
            "off (configured values in force)".into()
        },
    ));
    rows.push(("in force".into(), tunables_text(&c.tunables)));
    rows.push(("configured".into(), tunables_text(&c.configured)));
    rows.iter()
        .map(|(k, v)| format!("{:<12} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn stat(s: &Stat, unit: impl Fn(f64) -> String) -> String {
    format!("avg {}, peak {}", unit(s.avg), unit(s.peak))
}

fn report_text(r: &PerfReport) -> String {
    let b = |v: f64| bytes(v.max(0.0) as u64);
    let bs = |v: f64| format!("{}/s", bytes(v.max(0.0) as u64));
    let mut lines = vec![
        format!(
            "window:      {} .. {} ({} samples)",
            when(r.since_ns),
            when(r.until_ns),
            r.samples
        ),
        format!("cpu:         {}", stat(&r.cpu_percent, pct)),
        format!("daemon cpu:  {}", stat(&r.daemon_cpu_percent, pct)),
        format!("memory:      {}", stat(&r.memory_percent, pct)),
        format!("daemon RSS:  {}", stat(&r.daemon_rss_bytes, b)),
        format!("iowait:      {}", stat(&r.iowait_percent, pct)),
    ];
    if let Some(p) = &r.io_pressure {
        lines.push(format!("io pressure: {}", stat(p, pct)));
    }
    lines.push(format!("read:        {}", stat(&r.read_bps, bs)));
    lines.push(format!("stored:      {}", stat(&r.stored_bps, bs)));
    lines.push(format!("restored:    {}", stat(&r.restored_bps, bs)));
    lines.push(format!(
        "queued:      {}",
        stat(&r.queued, |v| format!("{v:.1}"))
    ));
    for d in &r.disks {
        let full = d
            .full_at_ns
            .map(|t| format!(", full at {}", when(t)))
            .unwrap_or_default();
        lines.push(format!(
            "disk:        {} {:.1} % used, {}/h{full} [{}]",
            d.path,
            d.used_percent,
            if d.growth_bytes_per_hour < 0.0 {
                format!("-{}", bytes((-d.growth_bytes_per_hour) as u64))
            } else {
                format!("+{}", bytes(d.growth_bytes_per_hour as u64))
            },
            d.holds.join(", ")
        ));
    }
    if r.bottleneck_ms.is_empty() {
        lines.push("bottlenecks: none".into());
    }
    for (kind, ms) in &r.bottleneck_ms {
        lines.push(format!(
            "bottleneck:  {kind} for {}",
            humantime::format_duration(Duration::from_secs(ms / 1000))
        ));
    }
    lines.push(format!("tuning:      {} change(s)", r.tuning_changes));
    for rec in &r.recommendations {
        lines.push(format!("recommend:   {rec}"));
    }
    lines.join("\n")
}

fn samples_table(list: &[PerfSample]) -> String {
    if list.is_empty() {
        return "no samples in this window".into();
    }
    let mut t = table(&[
        "time", "cpu", "daemon", "memory", "iowait", "rss", "read/s", "stored/s", "queued",
    ]);
    for s in list {
        t.add_row(vec![
            when(s.time_ns),
            pct(f64::from(s.cpu_percent)),
            pct(f64::from(s.daemon_cpu_percent)),
            pct(s.memory_percent()),
            pct(f64::from(s.iowait_percent)),
            bytes(s.daemon_rss_bytes),
            bytes(s.read_bps),
            bytes(s.stored_bps),
            s.queued.to_string(),
        ]);
    }
    t.to_string()
}

fn bottlenecks_table(list: &[Bottleneck]) -> String {
    if list.is_empty() {
        return "no bottlenecks in this window".into();
    }
    let mut t = table(&[
        "id", "kind", "severity", "started", "ended", "peak", "reason", "actions",
    ]);
    for b in list {
        t.add_row(vec![
            b.id.to_string(),
            b.kind.as_str().into(),
            b.severity.as_str().into(),
            when(b.started_ns),
            b.ended_ns.map_or_else(|| "open".into(), when),
            format!("{:.1}", b.peak),
            b.reason.clone(),
            if b.actions.is_empty() {
                "-".into()
            } else {
                b.actions.join("; ")
            },
        ]);
    }
    t.to_string()
}

fn changes_table(list: &[TuningChange]) -> String {
    if list.is_empty() {
        return "no tuning changes in this window".into();
    }
    let mut t = table(&["time", "tunable", "change", "metric", "trigger", "reason"]);
    for c in list {
        t.add_row(vec![
            when(c.time_ns),
            c.tunable.clone(),
            format!("{} -> {}", c.old, c.new),
            c.metric.clone(),
            c.trigger.clone(),
            c.reason.clone(),
        ]);
    }
    t.to_string()
}

fn optimized_text(o: &Optimized) -> String {
    let mut lines: Vec<String> = o
        .changes
        .iter()
        .map(|c| {
            format!(
                "changed {}: {} -> {} ({}; {})",
                c.tunable, c.old, c.new, c.metric, c.reason
            )
        })
        .collect();
    if o.changes.is_empty() {
        lines.push("nothing changed".into());
    }
    lines.extend(o.notes.iter().map(|n| format!("note: {n}")));
    lines.push(format!(
        "tuner {}; in force: {}",
        if o.auto { "auto" } else { "off" },
        tunables_text(&o.tunables)
    ));
    lines.join("\n")
}
