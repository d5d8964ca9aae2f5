//! `analytics ...`: predictions and their backtest, estimates, anomalies, trends, risk,
//! recommendations and holds, as tables or `--json` (`json::analytics`). The report is
//! `analytics_report` (text and files) and `analytics_html`; the path scan of `estimate
//! --path` is `analytics_scan`, run by [`prepare`] before the daemon is asked.

use super::analytics_scan::{self, Scan};
use super::recovery_drill::human_ms;
use super::results::short;
use super::{Failure, Paths};
use crate::cli::analytics::{AnalyticsCommand, HoldCommand};
use crate::cli::Command;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::analytics::{
    AnomalyEventView, AnomalyView, BacktestView, EstimateView, EstimatesView, HoldView,
    PredictionView, RecommendationView, RiskView, ScanView, TrendView,
};
use crate::json::time;
use crate::output::{count, table, Output};
use crate::progress::bytes;
use backupd_common::protocol::{
    AnomalyInfo, BacktestReport, Estimate, HoldInfo, Prediction, Recommendation, RiskReport,
    SourceRisk, TrendInfo,
};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// What `analytics estimate --path` found, with the path as `--json` writes it.
#[derive(Debug)]
pub struct PathScan {
    pub shown: String,
    pub scan: Scan,
}

/// The work done before connecting: the report's flags checked, and the path of `estimate
/// --path` walked (a big tree takes longer than the daemon keeps an idle connection open).
pub async fn prepare(
    command: &Command,
    out: &Output,
    paths: Paths,
) -> Result<Option<PathScan>, Failure> {
    match command {
        Command::Analytics(AnalyticsCommand::Report(a)) => {
            super::analytics_report::check(a, out)?;
            Ok(None)
        }
        Command::Analytics(AnalyticsCommand::Estimate(a)) => match &a.path {
            Some(p) => scan_path(PathBuf::from(OsString::from_vec(paths.raw(p)?)))
                .await
                .map(Some),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

async fn scan_path(path: PathBuf) -> Result<PathScan, Failure> {
    let shown = crate::json::path(path.as_os_str().as_bytes());
    let walked = tokio::task::spawn_blocking(move || analytics_scan::scan(&path))
        .await
        .map_err(|e| Failure::Local(format!("the scan of {shown} stopped: {e}")))?;
    match walked {
        Ok(scan) => Ok(PathScan { shown, scan }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::Usage(format!(
            "{shown} does not exist; give --path an existing file or directory"
        ))),
        Err(e) => Err(Failure::Local(format!(
            "cannot read {shown} ({e}); run as a user who can read it, or pick a path below it"
        ))),
    }
}

pub async fn run(
    client: &mut Client,
    cmd: &AnalyticsCommand,
    scanned: Option<PathScan>,
    out: &Output,
) -> Result<ExitCode, Failure> {
    match cmd {
        AnalyticsCommand::Predict(a) if a.backtest => {
            let b = client.backtest(a.source.source.clone(), a.days).await?;
            out.value(&BacktestView::from(&b), || backtest_text(&b));
        }
        AnalyticsCommand::Predict(a) => {
            let list = client.predict(a.source.source.clone(), a.days).await?;
            out.value(
                &list.iter().map(PredictionView::from).collect::<Vec<_>>(),
                || predictions_text(&list, a.days),
            );
        }
        AnalyticsCommand::Estimate(a) => {
            let scan = scanned.as_ref().map(|s| s.scan);
            let list = client
                .estimate(
                    a.source.source.clone(),
                    scan.map(|s| s.bytes),
                    scan.map(|s| s.files),
                )
                .await?;
            let view = EstimatesView {
                scan: scanned.as_ref().map(|s| ScanView {
                    path: s.shown.clone(),
                    files: s.scan.files,
                    bytes: s.scan.bytes,
                    unreadable: s.scan.unreadable,
                }),
                estimates: list.iter().map(EstimateView::from).collect(),
            };
            out.value(&view, || estimates_text(scanned.as_ref(), &list));
        }
        AnalyticsCommand::Anomalies(a) => {
            let list = client.anomalies(a.since, a.source.source.clone()).await?;
            out.value(
                &list.iter().map(AnomalyView::from).collect::<Vec<_>>(),
                || anomalies_table(&list),
            );
        }
        AnalyticsCommand::Trends(a) => {
            let list = client.trends(a.source.source.clone(), a.days).await?;
            out.value(
                &list.iter().map(TrendView::from).collect::<Vec<_>>(),
                || trends_table(&list),
            );
        }
        AnalyticsCommand::Risk(a) => {
            let r = client.risk(a.source.clone()).await?;
            out.value(&RiskView::from(&r), || risk_text(&r));
        }
        AnalyticsCommand::Recommendations => {
            let list = client.recommendations().await?;
            out.value(
                &list
                    .iter()
                    .map(RecommendationView::from)
                    .collect::<Vec<_>>(),
                || recommendations_table(&list),
            );
        }
        AnalyticsCommand::Report(a) => return super::analytics_report::run(client, a, out).await,
        AnalyticsCommand::Hold(HoldCommand::List) => {
            let list = client.holds().await?;
            out.value(&list.iter().map(HoldView::from).collect::<Vec<_>>(), || {
                holds_table(&list)
            });
        }
        AnalyticsCommand::Hold(HoldCommand::Release { source }) => {
            let h = client.release_hold(source.clone()).await?;
            out.value(&HoldView::from(&h), || {
                format!(
                    "released the hold on {}: its snapshots up to {} follow its retention \
                     again (the hold was placed {} after job {}: {})",
                    h.source,
                    time(h.before_ns),
                    time(h.placed_ns),
                    h.job,
                    h.reason
                )
            });
        }
    }
    Ok(ExitCode::Ok)
}

/// An anomaly on `backupctl events`.
pub fn print_anomaly_event(out: &Output, a: &AnomalyInfo) {
    let view = AnomalyEventView {
        anomaly: AnomalyView::from(a),
    };
    out.value(&view, || {
        format!("{} ANOMALY {}", time(a.time_ns), anomaly_line(a))
    });
}

fn anomaly_line(a: &AnomalyInfo) -> String {
    format!(
        "{} {}{} {} {} = {} (expected {}, {} .. {}; {:+.1} sd) job {}: {}",
        a.id,
        if a.critical { "CRITICAL " } else { "" },
        a.source,
        a.repo.as_deref().unwrap_or("-"),
        a.metric,
        metric_value(&a.metric, a.value),
        metric_value(&a.metric, a.expected),
        metric_value(&a.metric, a.low),
        metric_value(&a.metric, a.high),
        a.sigmas,
        a.job,
        a.detail
    )
}

/// A fraction (0–1) as a percentage.
pub fn share(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// A metric's value in its unit, by the metric names of docs/ANALYTICS.md.
pub fn metric_value(metric: &str, v: f64) -> String {
    let whole = |v: f64| v.max(0.0).round() as u64;
    match metric {
        "duration_s" => human_ms(whole(v * 1000.0)),
        "bytes_added" | "size_bytes" => bytes(whole(v)),
        "throughput_bps" => format!("{}/s", bytes(whole(v))),
        "success_rate" => share(v),
        "files_changed" => whole(v).to_string(),
        _ => format!("{v:.2}"),
    }
}

/// A trend's slope per day in the metric's unit, signed.
pub fn slope(metric: &str, v: f64) -> String {
    let sign = if v < 0.0 { "-" } else { "+" };
    match metric {
        "success_rate" => format!("{sign}{:.2} pp", v.abs() * 100.0),
        // Whole seconds would show most duration trends as +0s or +1s.
        "duration_s" => format!("{sign}{:.1} s", v.abs()),
        _ => format!("{sign}{}", metric_value(metric, v.abs())),
    }
}

fn dash(v: Option<&str>) -> String {
    v.unwrap_or("-").to_owned()
}

pub fn predictions_text(list: &[Prediction], days: u32) -> String {
    if list.is_empty() {
        return "no sources with backups to predict from".into();
    }
    let mut t = table(&[
        "source",
        "success",
        "90 % interval",
        "failures expected",
        "backups/day",
        "evidence",
        "half-life",
        "jobs",
    ]);
    for p in list {
        t.add_row(vec![
            p.source.clone(),
            share(p.success_rate),
            format!("{} .. {}", share(p.low), share(p.high)),
            format!("{:.1}", p.expected_failures),
            format!("{:.1}", p.jobs_per_day),
            format!("{:.1}", p.evidence),
            format!("{:.1} d", p.half_life_days),
            p.jobs.to_string(),
        ]);
    }
    format!("success of backups over the next {days} days\n{t}")
}

fn backtest_text(b: &BacktestReport) -> String {
    let mut parts = Vec::new();
    for s in &b.scores {
        let verdict = if s.brier < s.naive_brier {
            "better than"
        } else if s.brier > s.naive_brier {
            "worse than"
        } else {
            "as good as"
        };
        let mut t = table(&["predicted", "jobs", "mean predicted", "observed"]);
        for c in &s.calibration {
            t.add_row(vec![
                format!("{} .. {}", share(c.from), share(c.to)),
                c.jobs.to_string(),
                share(c.predicted),
                share(c.observed),
            ]);
        }
        parts.push(format!(
            "{}: {} days ahead, half-life {:.1} d, {}; Brier {:.4}, {verdict} the all-time \
             rate's {:.4}\n{}",
            s.history,
            s.horizon_days,
            s.half_life_days,
            count(s.forecasts, "forecast"),
            s.brier,
            s.naive_brier,
            indent(&t.to_string())
        ));
    }
    if b.scores.is_empty() {
        parts.push("no history to backtest the success model on".into());
    }
    if b.estimates.is_empty() {
        parts.push("no held-out backups to backtest the duration estimate on".into());
    } else {
        let mut t = table(&["source", "jobs", "median error", "within interval"]);
        for e in &b.estimates {
            t.add_row(vec![
                e.source.clone(),
                e.jobs.to_string(),
                share(e.median_error),
                share(e.within_interval),
            ]);
        }
        parts.push(format!("duration estimates on held-out backups\n{t}"));
    }
    parts.join("\n\n")
}

pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn estimate_row(e: &Estimate) -> Vec<String> {
    vec![
        dash(e.source.as_deref()),
        format!("{} in {}", bytes(e.bytes), count(e.files, "file")),
        human_ms(e.expected_ms),
        format!("{} .. {}", human_ms(e.low_ms), human_ms(e.high_ms)),
        format!("{}/s", bytes(e.throughput_bps.max(0.0).round() as u64)),
        count(e.jobs, "backup"),
    ]
}

pub const ESTIMATE_HEADER: [&str; 6] = [
    "source",
    "reads",
    "expected",
    "90 % interval",
    "throughput",
    "fitted on",
];

fn estimates_text(scanned: Option<&PathScan>, list: &[Estimate]) -> String {
    let mut lines = Vec::new();
    if let Some(s) = scanned {
        let mut line = format!(
            "{}: {} in {}",
            s.shown,
            bytes(s.scan.bytes),
            count(s.scan.files, "file")
        );
        if s.scan.unreadable > 0 {
            line.push_str(&format!(
                " ({} unreadable, not counted)",
                count(s.scan.unreadable, "entry")
            ));
        }
        lines.push(line);
    }
    if list.is_empty() {
        lines.push("no finished backups to estimate from".into());
    } else {
        let mut t = table(&ESTIMATE_HEADER);
        for e in list {
            t.add_row(estimate_row(e));
        }
        lines.push(t.to_string());
    }
    lines.join("\n")
}

pub fn anomalies_table(list: &[AnomalyInfo]) -> String {
    if list.is_empty() {
        return "no anomalies".into();
    }
    let mut t = table(&[
        "id", "time", "source", "metric", "value", "expected", "band", "sd", "job", "detail",
    ]);
    for a in list {
        t.add_row(vec![
            a.id.to_string(),
            time(a.time_ns),
            a.source.clone(),
            if a.critical {
                format!("{} (CRITICAL)", a.metric)
            } else {
                a.metric.clone()
            },
            metric_value(&a.metric, a.value),
            metric_value(&a.metric, a.expected),
            format!(
                "{} .. {}",
                metric_value(&a.metric, a.low),
                metric_value(&a.metric, a.high)
            ),
            format!("{:+.1}", a.sigmas),
            a.job.to_string(),
            a.detail.clone(),
        ]);
    }
    t.to_string()
}

pub fn trends_table(list: &[TrendInfo]) -> String {
    if list.is_empty() {
        return "no trends (too little history)".into();
    }
    let mut t = table(&[
        "source",
        "metric",
        "direction",
        "per day",
        "30-day change",
        "p-value",
        "days",
    ]);
    for tr in list {
        t.add_row(vec![
            tr.source.clone(),
            tr.metric.clone(),
            tr.direction.as_str().into(),
            slope(&tr.metric, tr.slope_per_day),
            format!("{:+.1} %", tr.change_30d * 100.0),
            tr.p_value.map_or_else(|| "-".into(), |p| format!("{p:.3}")),
            tr.days.to_string(),
        ]);
    }
    t.to_string()
}

/// A source's score and the table of its factors.
pub fn source_risk_text(r: &SourceRisk) -> String {
    let mut t = table(&["factor", "weight", "level", "points", "evidence"]);
    for f in &r.factors {
        t.add_row(vec![
            f.name.clone(),
            format!("{:.0}", f.weight),
            format!("{:.2}", f.level),
            format!("{:.1}", f.weight * f.level),
            f.evidence.clone(),
        ]);
    }
    format!(
        "{} (repository {}): risk {:.0}/100\n{}",
        r.source,
        r.repo,
        r.score,
        indent(&t.to_string())
    )
}

fn risk_text(r: &RiskReport) -> String {
    let mut parts = vec![format!("overall risk: {:.0}/100", r.overall)];
    if r.sources.is_empty() {
        parts.push("no watched sources".into());
    }
    parts.extend(r.sources.iter().map(source_risk_text));
    parts.join("\n\n")
}

pub fn recommendations_table(list: &[Recommendation]) -> String {
    if list.is_empty() {
        return "nothing to recommend".into();
    }
    let mut t = table(&["severity", "kind", "subject", "evidence", "action"]);
    for r in list {
        t.add_row(vec![
            r.severity.as_str().into(),
            r.kind.clone(),
            r.subject.clone(),
            r.evidence.clone(),
            r.action.clone(),
        ]);
    }
    t.to_string()
}

pub fn holds_table(list: &[HoldInfo]) -> String {
    if list.is_empty() {
        return "no retention holds".into();
    }
    let mut t = table(&[
        "source",
        "repo",
        "placed",
        "holds up to",
        "job",
        "snapshot",
        "reason",
    ]);
    for h in list {
        t.add_row(vec![
            h.source.clone(),
            dash(h.repo.as_deref()),
            time(h.placed_ns),
            time(h.before_ns),
            h.job.to_string(),
            dash(h.snapshot.as_deref().map(short)),
            h.reason.clone(),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read_in_their_units() {
        assert_eq!(metric_value("duration_s", 90.4), "1m 30s");
        assert_eq!(metric_value("bytes_added", 1536.0), "1.5 KiB");
        assert_eq!(metric_value("throughput_bps", 2048.0), "2.0 KiB/s");
        assert_eq!(metric_value("success_rate", 0.975), "97.5 %");
        assert_eq!(metric_value("files_changed", 12.6), "13");
        assert_eq!(metric_value("dedup_ratio", 1.234), "1.23");
        assert_eq!(slope("success_rate", -0.0012), "-0.12 pp");
        assert_eq!(slope("duration_s", 1.54), "+1.5 s");
        assert_eq!(slope("size_bytes", -1024.0), "-1.0 KiB");
    }
}
