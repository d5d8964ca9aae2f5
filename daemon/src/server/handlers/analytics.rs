//! `analytics` group: predictions, backtests, estimates, anomalies, trends, risk,
//! recommendations, the report, and the retention holds. Every answer reads the per-source
//! statistics (one small record per source), never the job history.

use super::{blocking, Outcome};
use crate::analytics::facts::{self, Facts, Handles};
use crate::analytics::{query, AnalyticsError};
use crate::error::Error;
use crate::repo::now_ns;
use crate::server::Services;
use backupd_common::protocol::{
    AnalyticsReport, AnalyticsRequest, BacktestReport, Response, RiskReport, SourceReport,
};
use std::time::Duration;

/// Horizons and windows are bounded: the statistics hold at most 400 days.
const MAX_DAYS: u32 = 400;

pub async fn handle(services: &Services, request: AnalyticsRequest) -> Outcome {
    if let AnalyticsRequest::Release { source } = &request {
        let released = services.analytics.release(source).await;
        return Outcome::result(
            released
                .map(|h| Response::HoldReleased(Box::new(h)))
                .map_err(Error::from),
        );
    }
    let handles = Handles {
        analytics: services.analytics.clone(),
        sources: services.sources.clone(),
        repos: services.repos.clone(),
        queue: services.queue.clone(),
        replications: services.replications.clone(),
        timers: services.timers.clone(),
        perf: services.perf.clone(),
        settings: services.settings.clone(),
    };
    Outcome::result(blocking(move || answer(&handles, request)).await)
}

/// The sources asked about: every source with statistics or configured, or the one named.
fn names(h: &Handles, only: Option<&str>) -> Result<Vec<String>, Error> {
    let mut all = h
        .analytics
        .aggregates()
        .sources()
        .map_err(AnalyticsError::from)?;
    for info in h.sources.list() {
        if !all.contains(&info.spec.name) {
            all.push(info.spec.name);
        }
    }
    all.sort();
    match only {
        None => Ok(all),
        Some(name) if all.iter().any(|n| n == name) => Ok(vec![name.to_owned()]),
        Some(name) => Err(AnalyticsError::UnknownSource {
            source_name: name.to_owned(),
        }
        .into()),
    }
}

fn answer(h: &Handles, request: AnalyticsRequest) -> Result<Response, Error> {
    let now = now_ns();
    let aggregates = h.analytics.aggregates();
    let load = |name: &str| aggregates.load(name).map_err(AnalyticsError::from);
    let days = |d: u32| d.clamp(1, MAX_DAYS);
    Ok(match request {
        AnalyticsRequest::Predict { source, days: d } => {
            let mut out = Vec::new();
            for name in names(h, source.as_deref())? {
                out.push(query::prediction(&name, &load(&name)?, days(d), now));
            }
            Response::Predictions(out)
        }
        AnalyticsRequest::Backtest { source, days: d } => {
            let mut report = BacktestReport::default();
            for name in names(h, source.as_deref())? {
                let stats = load(&name)?;
                report
                    .scores
                    .push(query::backtest_source(&name, &stats, days(d)));
                report
                    .estimates
                    .extend(query::backtest_estimate(&name, &stats));
            }
            report.scores.extend(query::backtest_synthetic(days(d)));
            Response::Backtest(Box::new(report))
        }
        AnalyticsRequest::Estimate {
            source,
            bytes,
            files,
        } => {
            let size = bytes.map(|b| (b, files.unwrap_or(0)));
            let mut out = Vec::new();
            match (source, size) {
                // A path's scan: from every source's runs, the daemon's throughput as a whole.
                (None, Some(size)) => {
                    let mut pooled = crate::analytics::aggregates::SourceStats::default();
                    for name in names(h, None)? {
                        pooled.runs.extend(load(&name)?.runs);
                    }
                    out.extend(query::estimate(None, &pooled, Some(size)));
                }
                (source, size) => {
                    for name in names(h, source.as_deref())? {
                        out.extend(query::estimate(Some(&name), &load(&name)?, size));
                    }
                }
            }
            Response::Estimates(out)
        }
        AnalyticsRequest::Anomalies { since, source } => {
            if let Some(name) = &source {
                names(h, Some(name))?;
            }
            let since_ns = since.map_or(0, |d| {
                now - d.min(Duration::from_secs(3650 * 86_400)).as_nanos() as i64
            });
            Response::Anomalies(h.analytics.store().anomalies(since_ns, source.as_deref())?)
        }
        AnalyticsRequest::Trends { source, days: d } => {
            let mut out = Vec::new();
            for name in names(h, source.as_deref())? {
                out.extend(query::trends(&name, &load(&name)?, days(d), now));
            }
            Response::Trends(out)
        }
        AnalyticsRequest::Risk { source } => {
            let names = names(h, source.as_deref())?;
            let facts = facts::gather(h, &names, now);
            Response::Risk(Box::new(risk_report(&facts, &names)))
        }
        AnalyticsRequest::Recommendations => {
            let names = names(h, None)?;
            let facts = facts::gather(h, &names, now);
            Response::Recommendations(crate::analytics::recommend::recommend(
                &facts.sources,
                &facts.repos,
                facts.watches,
            ))
        }
        AnalyticsRequest::Report { days: d } => {
            let d = days(d);
            let names = names(h, None)?;
            let facts = facts::gather(h, &names, now);
            let since_ns = now - i64::from(d) * 86_400_000_000_000;
            let anomalies = h.analytics.store().anomalies(since_ns, None)?;
            let holds = h.analytics.holds()?;
            let mut sources = Vec::new();
            for name in &names {
                let stats = load(name)?;
                sources.push(SourceReport {
                    source: name.clone(),
                    prediction: query::prediction(name, &stats, d.min(90), now),
                    estimate: query::estimate(Some(name), &stats, None),
                    trends: query::trends(name, &stats, d, now),
                    risk: facts.risk(name),
                    anomalies: anomalies
                        .iter()
                        .filter(|a| &a.source == name)
                        .cloned()
                        .collect(),
                    hold: holds.iter().find(|x| &x.source == name).cloned(),
                    days: query::day_points(&stats, d, now),
                });
            }
            let risk = risk_report(&facts, &names);
            Response::AnalyticsReport(Box::new(AnalyticsReport {
                generated_ns: now,
                days: d,
                overall_risk: risk.overall,
                sources,
                recommendations: crate::analytics::recommend::recommend(
                    &facts.sources,
                    &facts.repos,
                    facts.watches,
                ),
            }))
        }
        AnalyticsRequest::Holds => Response::Holds(h.analytics.holds()?),
        AnalyticsRequest::Release { .. } => unreachable!("answered before the blocking call"),
    })
}

fn risk_report(facts: &Facts, names: &[String]) -> RiskReport {
    let sources: Vec<_> = names.iter().map(|n| facts.risk(n)).collect();
    RiskReport {
        overall: sources.iter().map(|s| s.score).fold(0.0, f64::max),
        sources,
    }
}
