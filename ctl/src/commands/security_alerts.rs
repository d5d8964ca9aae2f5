//! `backupctl security alerts | unlock | compliance | report`.

use super::Failure;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::security_alerts::{
    AlertEventView, AlertView, ComplianceView, ReportView, UnlockedView,
};
use crate::json::time;
use crate::output::Output;
use backupd_common::protocol::{AlertInfo, Framework};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlertsArgs {
    /// List acknowledged alerts too (newest first, at most 1000).
    #[arg(long)]
    pub all: bool,
    #[command(subcommand)]
    pub action: Option<AlertsAction>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Record that you have looked at an alert (needs `security.manage`).
    Ack {
        /// The alert's id, as `security alerts` shows it.
        id: u64,
    },
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The uid whose lockout to lift.
    #[arg(long, value_name = "UID")]
    pub uid: u32,
}

/// A framework, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FrameworkArg {
    Gdpr,
    Hipaa,
    Iso27001,
    Soc2,
    All,
}

#[derive(Debug, Args)]
pub struct ComplianceArgs {
    /// Which framework's clauses to show beside each control.
    #[arg(long, value_enum, default_value = "all")]
    pub framework: FrameworkArg,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How many days back the denials and alerts are counted (1–366).
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub days: u32,
}

/// `security alerts [--all]` and `security alerts ack ID`.
pub async fn alerts(
    client: &mut Client,
    a: &AlertsArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    match a.action {
        Some(AlertsAction::Ack { id }) => {
            let alert = client.ack_alert(id).await?;
            out.value(&AlertView::from(&alert), || {
                format!(
                    "alert {} acknowledged by uid {}",
                    alert.id,
                    alert.acked_by.map_or("?".to_owned(), |u| u.to_string())
                )
            });
        }
        None => {
            let alerts = client.security_alerts(a.all).await?;
            let views: Vec<_> = alerts.iter().map(AlertView::from).collect();
            out.value(&views, || alerts_text(&alerts, a.all));
        }
    }
    Ok(ExitCode::Ok)
}

pub async fn unlock(
    client: &mut Client,
    a: &UnlockArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let u = client.unlock(a.uid).await?;
    out.value(&UnlockedView::from(&u), || match u.was_locked_until_ns {
        Some(until) => format!("uid {} unlocked (was locked until {})", u.uid, time(until)),
        None => format!("uid {} was not locked out", u.uid),
    });
    Ok(ExitCode::Ok)
}

/// Exit 1 (warning) when a control fails.
pub async fn compliance(
    client: &mut Client,
    a: &ComplianceArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let frameworks = match a.framework {
        FrameworkArg::Gdpr => vec![Framework::Gdpr],
        FrameworkArg::Hipaa => vec![Framework::Hipaa],
        FrameworkArg::Iso27001 => vec![Framework::Iso27001],
        FrameworkArg::Soc2 => vec![Framework::Soc2],
        FrameworkArg::All => Vec::new(),
    };
    let report = client.compliance(frameworks).await?;
    let view = ComplianceView::from(&report);
    out.value(&view, || compliance_text(&view));
    Ok(if view.failed > 0 {
        ExitCode::Warning
    } else {
        ExitCode::Ok
    })
}

pub async fn report(
    client: &mut Client,
    a: &ReportArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let report = client.security_report(a.days).await?;
    let view = ReportView::from(&report);
    out.value(&view, || report_text(&view));
    Ok(ExitCode::Ok)
}

/// An alert on `backupctl events`.
pub fn print_alert_event(out: &Output, a: &AlertInfo) {
    let view = AlertEventView {
        alert: AlertView::from(a),
    };
    out.value(&view, || {
        format!("{} ALERT {}", time(a.time_ns), alert_line(a))
    });
}

fn alert_line(a: &AlertInfo) -> String {
    let mut line = format!("{} uid {} {}: {}", a.id, a.uid, a.pattern, a.detail);
    if let Some(until) = a.locked_until_ns {
        line.push_str(&format!("; locked out until {}", time(until)));
    }
    if let (Some(by), Some(at)) = (a.acked_by, a.acked_ns) {
        line.push_str(&format!("; acknowledged by uid {by} at {}", time(at)));
    }
    line
}

fn alerts_text(alerts: &[AlertInfo], all: bool) -> String {
    if alerts.is_empty() {
        return if all {
            "no alerts".to_owned()
        } else {
            "no unacknowledged alerts".to_owned()
        };
    }
    alerts
        .iter()
        .map(|a| format!("{} {}", time(a.time_ns), alert_line(a)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn compliance_text(v: &ComplianceView) -> String {
    let mut lines: Vec<String> = v
        .controls
        .iter()
        .map(|c| {
            format!(
                "{:<4} {:<17} {}\n     {}\n     supports: {}",
                c.status.to_uppercase(),
                c.id,
                c.title,
                c.evidence,
                c.clauses.join(", ")
            )
        })
        .collect();
    lines.push(format!(
        "{} passed, {} warned, {} failed (passing is evidence for an assessor, not a certification)",
        v.passed, v.warned, v.failed
    ));
    lines.join("\n")
}

fn report_text(v: &ReportView) -> String {
    let mut lines = vec![format!(
        "security score {}/100 (last {} days)",
        v.score, v.days
    )];
    for f in &v.factors {
        lines.push(format!("  -{:<3} {}", f.points, f.reason));
    }
    let tally = |name: &str, t: &[crate::json::security_alerts::TallyView]| {
        let parts: Vec<_> = t.iter().map(|t| format!("{} {}", t.key, t.count)).collect();
        format!(
            "{name}: {}",
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        )
    };
    lines.push(tally("denials by uid", &v.denials_by_uid));
    lines.push(tally("denials by permission", &v.denials_by_permission));
    lines.push(tally("alerts by uid", &v.alerts_by_uid));
    lines.push(tally("alerts by pattern", &v.alerts_by_pattern));
    for k in &v.key_ages {
        lines.push(format!(
            "key of {}: {} (policy {} days)",
            k.repo,
            k.age_days
                .map_or_else(|| "age unknown".to_owned(), |d| format!("{d} days old")),
            k.max_age_days
        ));
    }
    lines.push(match &v.expiring_bindings {
        None => "bindings about to expire: not measured".to_owned(),
        Some(b) if b.is_empty() => "bindings about to expire: none".to_owned(),
        Some(b) => format!(
            "bindings about to expire: {}",
            b.iter()
                .map(|b| format!("{} ({}) on {}", b.subject, b.role, b.expires))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    lines.push(format!(
        "audit chain: {}",
        v.audit_last_verify.as_deref().unwrap_or("not measured")
    ));
    lines.join("\n")
}
