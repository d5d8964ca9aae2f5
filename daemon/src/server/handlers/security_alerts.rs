//! `security alerts`, `security alerts ack`, `security unlock`, `security compliance` and
//! `security report`: suspicious activity and the evidence of the controls in force.

use super::{blocking, Outcome};
use crate::error::Error;
use crate::repo::now_ns;
use crate::security::compliance::{self, Evidence};
use crate::security::detect::store::day_of;
use crate::security::detect::DetectError;
use crate::security::report;
use crate::server::Server;
use backupd_common::protocol::{
    ComplianceReport, Framework, Identity, Response, SecurityReport, SecurityRequest,
};
use std::sync::Arc;

/// Longest span `security report --days` covers.
pub const MAX_REPORT_DAYS: u32 = 366;

pub async fn handle(
    server: &Arc<Server>,
    identity: &Identity,
    request: SecurityRequest,
) -> Outcome {
    let detector = server.services.security.detector().clone();
    let by = identity.uid;
    Outcome::result(match request {
        SecurityRequest::Alerts { all } => {
            blocking(move || Ok(Response::SecurityAlerts(detector.alerts(all)?))).await
        }
        SecurityRequest::AckAlert { id } => {
            blocking(move || Ok(Response::SecurityAlert(Box::new(detector.ack(id, by)?)))).await
        }
        SecurityRequest::Unlock { uid } => {
            let unlocked = blocking(move || Ok(detector.unlock(uid)?)).await;
            if let Ok(u) = &unlocked {
                tracing::warn!(uid, by, was_until = ?u.was_locked_until_ns, "lockout lifted");
            }
            unlocked.map(Response::Unlocked)
        }
        SecurityRequest::Compliance { frameworks } => {
            let server = server.clone();
            blocking(move || {
                let (_, report) = compliance_now(&server, &frameworks);
                Ok(Response::Compliance(Box::new(report)))
            })
            .await
        }
        SecurityRequest::Report { days } => {
            let server = server.clone();
            blocking(move || {
                security_report(&server, days).map(|r| Response::SecurityReport(Box::new(r)))
            })
            .await
        }
        other => Err(Error::Internal(format!(
            "`{}` reached the alerts handler",
            other.name()
        ))),
    })
}

/// What the audit log and the role bindings say of themselves: the chain verified now (a walk
/// of the whole log), its retention, and the bindings in force. The audit parts are `None`
/// (the controls read "not measured") when auditing is switched off.
fn evidence(server: &Server) -> Evidence {
    let security = &server.services.security;
    let audit = &security.audit;
    let (audit_chain, audit_retention_days) = if audit.enabled() {
        let report = audit.verify();
        let chain = compliance::ChainSummary {
            ok: report.intact(),
            entries: report.entries,
            first_bad: report
                .problem
                .as_ref()
                .map(|p| format!("entry {} {} in {}: {}", p.seq, p.kind, p.location, p.detail)),
            verified_ns: now_ns(),
        };
        let days = u32::try_from(audit.retention_days()).unwrap_or(u32::MAX);
        (Some(chain), Some(days))
    } else {
        (None, None)
    };
    let bindings = security
        .bindings()
        .into_iter()
        .filter(|b| !b.expired)
        .map(|b| compliance::BindingFact {
            subject: format!("{} ({})", b.subject, b.id),
            role: b.role,
            expires_ns: b.expires_ns,
        })
        .collect();
    Evidence {
        audit_chain,
        audit_retention_days,
        bindings: Some(bindings),
    }
}

/// Measures the system and evaluates the controls. Blocking.
fn compliance_now(
    server: &Server,
    frameworks: &[Framework],
) -> (compliance::Facts, ComplianceReport) {
    let s = &server.services;
    let security = s.settings.get().config.security.clone();
    let mut cfg = security.compliance.clone();
    // The current data key's age is measured against the rotation policy when one is set.
    cfg.key_max_age = security.key_age_policy();
    let sources = compliance::Sources {
        repos: &s.repos,
        queue: &s.queue,
        detector: s.security.detector(),
        sources: s.sources.list(),
        socket: &server.socket,
        restore_within: cfg.restore_drill_within,
        replications: s.replications.list(),
        drills: &s.drills,
        drill_within: crate::recovery::drills::allowed_age(
            &s.settings.get().config.maintenance,
            crate::repo::now_ns(),
        ),
    };
    let facts = compliance::facts(&sources);
    let report = compliance::evaluate(&facts, &evidence(server), &cfg, frameworks);
    (facts, report)
}

fn security_report(server: &Server, days: u32) -> Result<SecurityReport, Error> {
    if !(1..=MAX_REPORT_DAYS).contains(&days) {
        let max = MAX_REPORT_DAYS;
        return Err(DetectError::ReportDays { days, max }.into());
    }
    let detector = server.services.security.detector();
    let now = now_ns();
    let since = now - i64::from(days) * 86_400 * 1_000_000_000;
    let (facts, compliance) = compliance_now(server, &[]);
    let alerts = detector.alerts_since(since)?;
    // Whole days: today and the `days - 1` before it.
    let denials = detector.denials(day_of(now).saturating_sub(days - 1))?;
    let key_policy = server
        .services
        .settings
        .get()
        .config
        .security
        .key_age_policy();
    Ok(report::build(&report::Inputs {
        days,
        now_ns: now,
        facts: &facts,
        evidence: &evidence(server),
        compliance: &compliance,
        alerts: &alerts,
        denials: &denials,
        key_max_age_days: key_policy.as_secs() / 86_400,
    }))
}
