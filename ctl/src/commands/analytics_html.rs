//! `analytics report --format html`: one self-contained page (inline CSS and SVG; no script,
//! no font or image fetched, no URL at all) that can be mailed or archived as it is.
//!
//! Every string from the daemon is escaped on its way in: source names, evidence and details
//! are written by whoever configured a source, so they are data, never markup.

use super::analytics::{metric_value, share, slope};
use super::analytics_svg::{bars, escape, gauge, line, Series};
use super::recovery_drill::human_ms;
use super::results::short;
use crate::json::time;
use crate::output::count;
use crate::progress::bytes;
use backupd_common::protocol::{AnalyticsReport, HoldInfo, SourceReport};

const STYLE: &str = "\
body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}\
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}\
h3{font-size:1.05em}\
table{border-collapse:collapse;margin:.5em 0 1em}\
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right}\
.critical{color:#b00;font-weight:bold}.muted{color:#777}\
svg{display:block;margin:.5em 0}\
svg .caption{font-size:13px;font-weight:bold;fill:#222}\
svg .tick{font-size:10px;fill:#555}svg .axis{stroke:#999;stroke-width:1}\
svg .ok{fill:#4a7fc1}svg .failed{fill:#d0453b}svg .added{fill:#4e9a55}\
svg .line{fill:none;stroke:#4a7fc1;stroke-width:2}svg .dot{fill:#4a7fc1}\
svg .zone.low{fill:#cfe8cf}svg .zone.medium{fill:#f6e3b4}svg .zone.high{fill:#f3c1bd}\
svg .score{fill:#333}svg .marker{stroke:#000;stroke-width:2}";

/// The whole page.
pub fn render(r: &AnalyticsReport) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>backupd analytics report</title><style>{STYLE}</style></head><body>\n\
         <h1>backupd analytics report</h1>\n<p>The last {} days, generated {}.</p>\n",
        r.days,
        escape(&time(r.generated_ns))
    );
    page.push_str("<h2>Overall risk</h2>\n");
    page.push_str(&gauge(
        &format!("overall risk {:.0} of 100", r.overall_risk),
        r.overall_risk,
    ));
    page.push_str("\n<h2>Predictions</h2>\n");
    page.push_str(&predictions(&r.sources, r.days));
    page.push_str("\n<h2>Retention holds</h2>\n");
    let holds: Vec<&HoldInfo> = r.sources.iter().filter_map(|s| s.hold.as_ref()).collect();
    page.push_str(&holds_table(&holds));
    page.push_str("\n<h2>Recommendations</h2>\n");
    page.push_str(&recommendations(r));
    for s in &r.sources {
        page.push_str(&source(s));
    }
    page.push_str("\n</body></html>\n");
    page
}

/// A table from already-escaped header names and cells; `num` marks right-aligned columns.
fn table(header: &[&str], num: &[usize], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "<p class=\"muted\">none</p>".into();
    }
    let mut t = String::from("<table><thead><tr>");
    for h in header {
        t.push_str(&format!("<th>{}</th>", escape(h)));
    }
    t.push_str("</tr></thead><tbody>");
    for row in rows {
        t.push_str("<tr>");
        for (i, cell) in row.into_iter().enumerate() {
            let class = if num.contains(&i) {
                " class=\"num\""
            } else {
                ""
            };
            t.push_str(&format!("<td{class}>{cell}</td>"));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

fn predictions(sources: &[SourceReport], days: u32) -> String {
    let rows = sources
        .iter()
        .map(|s| {
            let p = &s.prediction;
            vec![
                escape(&p.source),
                escape(&share(p.success_rate)),
                escape(&format!("{} .. {}", share(p.low), share(p.high))),
                format!("{:.1}", p.expected_failures),
                format!("{:.1}", p.jobs_per_day),
                p.jobs.to_string(),
            ]
        })
        .collect();
    format!(
        "<p>Success of backups over the next {days} days (90 % interval).</p>{}",
        table(
            &[
                "source",
                "success",
                "interval",
                "failures expected",
                "backups/day",
                "jobs",
            ],
            &[1, 3, 4, 5],
            rows,
        )
    )
}

fn holds_table(holds: &[&HoldInfo]) -> String {
    let rows = holds
        .iter()
        .map(|h| {
            vec![
                escape(&h.source),
                escape(&time(h.placed_ns)),
                escape(&time(h.before_ns)),
                h.job.to_string(),
                escape(h.snapshot.as_deref().map(short).unwrap_or("-")),
                escape(&h.reason),
            ]
        })
        .collect();
    table(
        &[
            "source",
            "placed",
            "holds up to",
            "job",
            "snapshot",
            "reason",
        ],
        &[3],
        rows,
    )
}

fn recommendations(r: &AnalyticsReport) -> String {
    let rows = r
        .recommendations
        .iter()
        .map(|rec| {
            let severity = rec.severity.as_str();
            let class = if severity == "critical" {
                " class=\"critical\""
            } else {
                ""
            };
            vec![
                format!("<span{class}>{}</span>", escape(severity)),
                escape(&rec.kind),
                escape(&rec.subject),
                escape(&rec.evidence),
                escape(&rec.action),
            ]
        })
        .collect();
    table(
        &["severity", "kind", "subject", "evidence", "action"],
        &[],
        rows,
    )
}

/// A source's section: risk, the three daily charts, estimate, trends, anomalies.
fn source(s: &SourceReport) -> String {
    let name = escape(&s.source);
    let mut html = format!("\n<section>\n<h2>Source {name}</h2>\n");
    html.push_str(&gauge(
        &format!("risk of {} {:.0} of 100", s.source, s.risk.score),
        s.risk.score,
    ));
    let factors = s
        .risk
        .factors
        .iter()
        .map(|f| {
            vec![
                escape(&f.name),
                format!("{:.0}", f.weight),
                format!("{:.2}", f.level),
                format!("{:.1}", f.weight * f.level),
                escape(&f.evidence),
            ]
        })
        .collect();
    html.push_str(&table(
        &["factor", "weight", "level", "points", "evidence"],
        &[1, 2, 3],
        factors,
    ));
    html.push_str(&charts(s));
    html.push_str("<h3>Next backup</h3>\n");
    html.push_str(&match &s.estimate {
        Some(e) => format!(
            "<p>Expected {} (90 % interval {} .. {}) for {} in {}, at {}/s; fitted on {}.</p>",
            escape(&human_ms(e.expected_ms)),
            escape(&human_ms(e.low_ms)),
            escape(&human_ms(e.high_ms)),
            escape(&bytes(e.bytes)),
            escape(&count(e.files, "file")),
            escape(&bytes(e.throughput_bps.max(0.0).round() as u64)),
            escape(&count(e.jobs, "backup")),
        ),
        None => "<p class=\"muted\">no estimate yet</p>".into(),
    });
    html.push_str("<h3>Trends</h3>\n");
    let trends = s
        .trends
        .iter()
        .map(|t| {
            vec![
                escape(&t.metric),
                escape(t.direction.as_str()),
                escape(&slope(&t.metric, t.slope_per_day)),
                format!("{:+.1} %", t.change_30d * 100.0),
                t.p_value.map_or_else(|| "-".into(), |p| format!("{p:.3}")),
            ]
        })
        .collect();
    html.push_str(&table(
        &["metric", "direction", "per day", "30-day change", "p-value"],
        &[2, 3, 4],
        trends,
    ));
    html.push_str("<h3>Anomalies</h3>\n");
    let anomalies = s
        .anomalies
        .iter()
        .map(|a| {
            let metric = if a.critical {
                format!(
                    "<span class=\"critical\">{} (critical)</span>",
                    escape(&a.metric)
                )
            } else {
                escape(&a.metric)
            };
            vec![
                escape(&time(a.time_ns)),
                metric,
                escape(&metric_value(&a.metric, a.value)),
                escape(&format!(
                    "{} .. {}",
                    metric_value(&a.metric, a.low),
                    metric_value(&a.metric, a.high)
                )),
                format!("{:+.1}", a.sigmas),
                a.job.to_string(),
                escape(&a.detail),
            ]
        })
        .collect();
    html.push_str(&table(
        &[
            "time",
            "metric",
            "value",
            "expected band",
            "sd",
            "job",
            "detail",
        ],
        &[2, 4, 5],
        anomalies,
    ));
    html.push_str("</section>\n");
    html
}

fn charts(s: &SourceReport) -> String {
    let labels: Vec<String> = s
        .days
        .iter()
        .map(|d| time(d.day_ns).get(..10).unwrap_or_default().to_owned())
        .collect();
    let jobs = [
        Series {
            class: "ok",
            name: "succeeded",
            values: s
                .days
                .iter()
                .map(|d| f64::from(d.jobs.saturating_sub(d.failed)))
                .collect(),
        },
        Series {
            class: "failed",
            name: "failed",
            values: s.days.iter().map(|d| f64::from(d.failed)).collect(),
        },
    ];
    let durations: Vec<Option<f64>> = s
        .days
        .iter()
        .map(|d| (d.jobs > 0).then_some(d.mean_duration_ms as f64))
        .collect();
    let added = [Series {
        class: "added",
        name: "added",
        values: s.days.iter().map(|d| d.bytes_added as f64).collect(),
    }];
    format!(
        "{}\n{}\n{}\n",
        bars(
            &format!("{}: backups per day", s.source),
            &labels,
            &jobs,
            &|v| format!("{v:.0}"),
        ),
        line(
            &format!("{}: mean duration per day", s.source),
            &labels,
            &durations,
            &|v| human_ms(v.round() as u64),
        ),
        bars(
            &format!("{}: bytes added per day", s.source),
            &labels,
            &added,
            &|v| bytes(v.round() as u64),
        ),
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use backupd_common::protocol::{
        AnomalyInfo, DayPoint, Estimate, Prediction, Recommendation, RiskFactor, Severity,
        SourceRisk, TrendDirection, TrendInfo,
    };

    const DAY_NS: i64 = 86_400_000_000_000;

    /// A report with a hostile source name and a daily series with an empty day.
    pub fn sample_report(name: &str) -> AnalyticsReport {
        let days = (0..5)
            .map(|i| DayPoint {
                day_ns: 1_796_000_000_000_000_000 / DAY_NS * DAY_NS + i * DAY_NS,
                jobs: if i == 2 { 0 } else { 4 },
                failed: u32::from(i == 3),
                mean_duration_ms: if i == 2 { 0 } else { 60_000 + i as u64 * 1000 },
                bytes_read: 1 << 30,
                bytes_added: (i as u64 + 1) << 20,
            })
            .collect();
        let source = SourceReport {
            source: name.into(),
            prediction: Prediction {
                source: name.into(),
                days: 30,
                success_rate: 0.95,
                low: 0.9,
                high: 0.98,
                evidence: 40.5,
                half_life_days: 14.0,
                jobs_per_day: 4.0,
                expected_failures: 6.0,
                jobs: 120,
            },
            estimate: Some(Estimate {
                source: Some(name.into()),
                bytes: 1 << 30,
                files: 1000,
                expected_ms: 61_000,
                low_ms: 50_000,
                high_ms: 75_000,
                throughput_bps: 17_600_000.0,
                jobs: 30,
            }),
            trends: vec![TrendInfo {
                source: name.into(),
                metric: "duration_s".into(),
                direction: TrendDirection::Declining,
                slope_per_day: 1.5,
                change_30d: 0.12,
                p_value: Some(0.01),
                days: 30,
            }],
            risk: SourceRisk {
                source: name.into(),
                repo: "default".into(),
                score: 42.0,
                factors: vec![RiskFactor {
                    name: "failures".into(),
                    weight: 25.0,
                    level: 0.4,
                    evidence: "1 of 16 backups failed & <b>".into(),
                }],
            },
            anomalies: vec![AnomalyInfo {
                id: 7,
                time_ns: 1_796_000_000_000_000_000,
                source: name.into(),
                repo: Some("default".into()),
                job: 99,
                snapshot: None,
                metric: "mass_encryption".into(),
                value: 0.9,
                expected: 0.01,
                low: 0.0,
                high: 0.05,
                sigmas: 12.0,
                critical: true,
                detail: "92 % of changed files look encrypted".into(),
            }],
            hold: Some(HoldInfo {
                source: name.into(),
                repo: Some("default".into()),
                placed_ns: 1_796_000_000_000_000_000,
                before_ns: 1_795_990_000_000_000_000,
                job: 99,
                snapshot: Some("ab".repeat(32)),
                reason: "mass encryption in job 99".into(),
            }),
            days,
        };
        AnalyticsReport {
            generated_ns: 1_796_000_000_000_000_000,
            days: 30,
            overall_risk: 42.0,
            sources: vec![source],
            recommendations: vec![Recommendation {
                kind: "release-hold".into(),
                subject: name.into(),
                severity: Severity::Critical,
                evidence: "hold placed after job 99".into(),
                action: "backupctl analytics hold release <name>".into(),
            }],
        }
    }

    #[test]
    fn the_page_is_self_contained_with_one_svg_per_chart_and_escaped_strings() {
        let html = render(&sample_report("<script>alert(1)</script>"));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        // The overall gauge, then per source its gauge and three daily charts.
        assert_eq!(html.matches("<svg").count(), 1 + 4, "{html}");
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(!html.contains("<script"), "a source name became markup");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<b>"), "evidence became markup");
        assert!(html.contains("&amp; &lt;b&gt;"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("url("), "CSS must not fetch anything");
        assert!(!html.contains("NaN") && !html.contains("inf\""));
        for tag in ["table", "section", "tr", "td", "th"] {
            assert_eq!(
                html.matches(&format!("<{tag}>")).count()
                    + html.matches(&format!("<{tag} ")).count(),
                html.matches(&format!("</{tag}>")).count(),
                "<{tag}> open and close"
            );
        }
    }

    #[test]
    fn an_empty_report_still_renders() {
        let html = render(&AnalyticsReport {
            generated_ns: 0,
            days: 30,
            overall_risk: 0.0,
            sources: vec![],
            recommendations: vec![],
        });
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("none"));
    }
}
