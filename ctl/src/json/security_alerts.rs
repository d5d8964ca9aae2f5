//! `--json` views of `security alerts`, `security unlock`, `security compliance`,
//! `security report`, and the alert lines of `events`.

use super::time;
use backupd_common::protocol::{
    AlertInfo, ComplianceReport, ControlResult, SecurityReport, Tally, Unlocked,
};
use serde::Serialize;

#[derive(Serialize)]
pub struct AlertView {
    pub id: u64,
    pub time: String,
    pub time_ns: i64,
    pub uid: u32,
    pub pattern: &'static str,
    pub count: u64,
    pub threshold: u64,
    pub window_ms: u64,
    pub detail: String,
    pub locked_until: Option<String>,
    pub acknowledged_by: Option<u32>,
    pub acknowledged: Option<String>,
}

impl From<&AlertInfo> for AlertView {
    fn from(a: &AlertInfo) -> Self {
        Self {
            id: a.id,
            time: time(a.time_ns),
            time_ns: a.time_ns,
            uid: a.uid,
            pattern: a.pattern.as_str(),
            count: a.count,
            threshold: a.threshold,
            window_ms: a.window_secs.saturating_mul(1000),
            detail: a.detail.clone(),
            locked_until: a.locked_until_ns.map(time),
            acknowledged_by: a.acked_by,
            acknowledged: a.acked_ns.map(time),
        }
    }
}

/// An alert on `events`: `{"alert": {...}}`, apart from job events by its one key.
#[derive(Serialize)]
pub struct AlertEventView {
    pub alert: AlertView,
}

#[derive(Serialize)]
pub struct UnlockedView {
    pub uid: u32,
    pub was_locked: bool,
    pub was_locked_until: Option<String>,
}

impl From<&Unlocked> for UnlockedView {
    fn from(u: &Unlocked) -> Self {
        Self {
            uid: u.uid,
            was_locked: u.was_locked_until_ns.is_some(),
            was_locked_until: u.was_locked_until_ns.map(time),
        }
    }
}

#[derive(Serialize)]
pub struct ControlView {
    pub id: String,
    pub title: String,
    pub status: &'static str,
    pub evidence: String,
    pub clauses: Vec<String>,
}

impl From<&ControlResult> for ControlView {
    fn from(c: &ControlResult) -> Self {
        Self {
            id: c.id.clone(),
            title: c.title.clone(),
            status: c.status.as_str(),
            evidence: c.evidence.clone(),
            clauses: c.clauses.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct ComplianceView {
    pub frameworks: Vec<&'static str>,
    pub time: String,
    pub passed: usize,
    pub warned: usize,
    pub failed: usize,
    pub controls: Vec<ControlView>,
}

impl From<&ComplianceReport> for ComplianceView {
    fn from(r: &ComplianceReport) -> Self {
        use backupd_common::protocol::ControlStatus::{Fail, Pass, Warn};
        let n = |s| r.controls.iter().filter(|c| c.status == s).count();
        Self {
            frameworks: r.frameworks.iter().map(|f| f.as_str()).collect(),
            time: time(r.time_ns),
            passed: n(Pass),
            warned: n(Warn),
            failed: n(Fail),
            controls: r.controls.iter().map(ControlView::from).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct TallyView {
    pub key: String,
    pub count: u64,
}

fn tallies(t: &[Tally]) -> Vec<TallyView> {
    t.iter()
        .map(|t| TallyView {
            key: t.key.clone(),
            count: t.count,
        })
        .collect()
}

#[derive(Serialize)]
pub struct FactorView {
    pub reason: String,
    pub points: u32,
}

#[derive(Serialize)]
pub struct KeyAgeView {
    pub repo: String,
    pub age_days: Option<u64>,
    pub max_age_days: u64,
}

#[derive(Serialize)]
pub struct ExpiringView {
    pub subject: String,
    pub role: String,
    pub expires: String,
}

#[derive(Serialize)]
pub struct ReportView {
    pub days: u32,
    pub time: String,
    pub score: u32,
    pub factors: Vec<FactorView>,
    pub denials_by_uid: Vec<TallyView>,
    pub denials_by_permission: Vec<TallyView>,
    pub alerts_by_uid: Vec<TallyView>,
    pub alerts_by_pattern: Vec<TallyView>,
    pub unacknowledged_alerts: u64,
    pub key_ages: Vec<KeyAgeView>,
    pub expiring_bindings: Option<Vec<ExpiringView>>,
    pub audit_last_verify: Option<String>,
    pub compliance_failed: Vec<String>,
}

impl From<&SecurityReport> for ReportView {
    fn from(r: &SecurityReport) -> Self {
        Self {
            days: r.days,
            time: time(r.time_ns),
            score: r.score,
            factors: r
                .factors
                .iter()
                .map(|f| FactorView {
                    reason: f.reason.clone(),
                    points: f.points,
                })
                .collect(),
            denials_by_uid: tallies(&r.denials_by_uid),
            denials_by_permission: tallies(&r.denials_by_permission),
            alerts_by_uid: tallies(&r.alerts_by_uid),
            alerts_by_pattern: tallies(&r.alerts_by_pattern),
            unacknowledged_alerts: r.unacknowledged_alerts,
            key_ages: r
                .key_ages
                .iter()
                .map(|k| KeyAgeView {
                    repo: k.repo.clone(),
                    age_days: k.age_days,
                    max_age_days: k.max_age_days,
                })
                .collect(),
            expiring_bindings: r.expiring_bindings.as_ref().map(|b| {
                b.iter()
                    .map(|b| ExpiringView {
                        subject: b.subject.clone(),
                        role: b.role.clone(),
                        expires: time(b.expires_ns),
                    })
                    .collect()
            }),
            audit_last_verify: r.audit_last_verify.clone(),
            compliance_failed: r.compliance_failed.clone(),
        }
    }
}
