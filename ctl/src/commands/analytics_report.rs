//! `analytics report`: the daemon's report as text (every section per source), JSON or the
//! HTML page of `analytics_html`, on stdout or into `--output`.

use super::analytics::{
    anomalies_table, estimate_row, holds_table, indent, predictions_text, recommendations_table,
    source_risk_text, trends_table, ESTIMATE_HEADER,
};
use super::recovery_drill::human_ms;
use super::Failure;
use crate::cli::analytics::{ReportArgs, ReportFormat};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::analytics::ReportView;
use crate::json::time;
use crate::output::{table, Output};
use crate::progress::bytes;
use backupd_common::protocol::{AnalyticsReport, SourceReport};

/// `--json` asks for the JSON form, so another --format with it is a contradiction.
pub fn check(a: &ReportArgs, out: &Output) -> Result<(), Failure> {
    match a.format {
        Some(ReportFormat::Text | ReportFormat::Html) if out.is_json() => Err(Failure::Usage(
            "--json prints the report as JSON: drop --json for --format text or html".into(),
        )),
        _ => Ok(()),
    }
}

pub async fn run(client: &mut Client, a: &ReportArgs, out: &Output) -> Result<ExitCode, Failure> {
    let format = if out.is_json() {
        ReportFormat::Json
    } else {
        a.format.unwrap_or(ReportFormat::Text)
    };
    let report = client.analytics_report(a.days).await?;
    let view = ReportView::from(&report);
    let Some(file) = &a.output else {
        let out = Output::new(format == ReportFormat::Json);
        match format {
            ReportFormat::Html => out.value(&view, || super::analytics_html::render(&report)),
            _ => out.value(&view, || text(&report)),
        }
        return Ok(ExitCode::Ok);
    };
    let (body, name) = match format {
        ReportFormat::Json => (
            serde_json::to_string(&view).map_err(|e| {
                Failure::Local(format!(
                    "cannot write the report as JSON ({e}); try --format text"
                ))
            })?,
            "JSON",
        ),
        ReportFormat::Text => (text(&report), "text"),
        ReportFormat::Html => (super::analytics_html::render(&report), "HTML"),
    };
    std::fs::write(file, body + "\n").map_err(|e| {
        Failure::Local(format!(
            "cannot write the report to {} ({e}); check that its directory exists and is \
             writable, or leave out --output for stdout",
            file.display()
        ))
    })?;
    // The report is the file; stdout stays empty so `--json --output F` is not printed twice.
    eprintln!("wrote the {name} report to {}", file.display());
    Ok(ExitCode::Ok)
}

/// The whole report as text: the overview, then every section of each source.
pub fn text(r: &AnalyticsReport) -> String {
    let mut parts = vec![format!(
        "analytics report: the last {} days, generated {}; overall risk {:.0}/100",
        r.days,
        time(r.generated_ns),
        r.overall_risk
    )];
    let predictions: Vec<_> = r.sources.iter().map(|s| s.prediction.clone()).collect();
    parts.push(predictions_text(&predictions, r.days));
    parts.extend(r.sources.iter().map(source_text));
    parts.push(format!(
        "recommendations\n{}",
        indent(&recommendations_table(&r.recommendations))
    ));
    parts.join("\n\n")
}

fn source_text(s: &SourceReport) -> String {
    let mut lines = vec![format!("== {} ==", s.source)];
    lines.push(source_risk_text(&s.risk));
    lines.push("next backup".into());
    lines.push(indent(&match &s.estimate {
        Some(e) => {
            let mut t = table(&ESTIMATE_HEADER);
            t.add_row(estimate_row(e));
            t.to_string()
        }
        None => "no estimate yet".into(),
    }));
    lines.push("trends".into());
    lines.push(indent(&trends_table(&s.trends)));
    lines.push("anomalies".into());
    lines.push(indent(&anomalies_table(&s.anomalies)));
    lines.push("retention hold".into());
    lines.push(indent(&holds_table(s.hold.as_slice())));
    lines.push("per day".into());
    lines.push(indent(&daily_table(s)));
    lines.join("\n")
}

fn daily_table(s: &SourceReport) -> String {
    if s.days.is_empty() {
        return "no backups in the window".into();
    }
    let mut t = table(&["day", "backups", "failed", "mean duration", "read", "added"]);
    for d in &s.days {
        t.add_row(vec![
            time(d.day_ns).get(..10).unwrap_or_default().to_owned(),
            d.jobs.to_string(),
            d.failed.to_string(),
            if d.jobs == 0 {
                "-".into()
            } else {
                human_ms(d.mean_duration_ms)
            },
            bytes(d.bytes_read),
            bytes(d.bytes_added),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::analytics_html::tests::sample_report;

    #[test]
    fn the_text_report_has_every_section_of_every_source() {
        let text = text(&sample_report("web"));
        for section in [
            "== web ==",
            "risk 42/100",
            "next backup",
            "trends",
            "anomalies",
            "mass_encryption (CRITICAL)",
            "retention hold",
            "per day",
            "recommendations",
            "release-hold",
        ] {
            assert!(text.contains(section), "no {section:?} in\n{text}");
        }
    }
}
