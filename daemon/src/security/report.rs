//! The security report: a score from 0 to 100 and the factors that lowered it, with denials
//! and alerts by uid and by kind over the last days, key ages, bindings about to expire and
//! the last verification of the audit chain. Denials are the per-day counters detection keeps
//! (`security.denials`), so the report needs no audit log. Pure once its inputs are gathered.

use super::compliance::{Evidence, Facts};
use backupd_common::protocol::{
    AlertInfo, ComplianceReport, ControlStatus, ExpiringBinding, KeyAge, ScoreFactor,
    SecurityReport, Tally,
};
use std::collections::BTreeMap;

/// Points off per item and the most each factor may take.
const FAILED_CONTROL: (u32, u32) = (8, 40);
const UNACKED_ALERT: (u32, u32) = (5, 25);
const OLD_KEY: (u32, u32) = (5, 15);
const EXPIRING_BINDING: (u32, u32) = (2, 10);
/// One point per this many denials, at most 10.
const DENIALS_PER_POINT: u64 = 10;
const DENIALS_MAX: u32 = 10;

pub struct Inputs<'a> {
    pub days: u32,
    pub now_ns: i64,
    pub facts: &'a Facts,
    pub evidence: &'a Evidence,
    pub compliance: &'a ComplianceReport,
    /// Alerts raised within the days.
    pub alerts: &'a [AlertInfo],
    /// (uid, missing permission, count) within the days.
    pub denials: &'a [(u32, String, u64)],
    pub key_max_age_days: u64,
}

fn tallies(counts: BTreeMap<String, u64>) -> Vec<Tally> {
    let mut out: Vec<_> = counts
        .into_iter()
        .map(|(key, count)| Tally { key, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    out
}

fn uid_key(uid: u32) -> String {
    if uid == super::detect::store::OTHER_UID {
        "other".to_owned()
    } else {
        uid.to_string()
    }
}

fn take(factors: &mut Vec<ScoreFactor>, items: u64, (each, max): (u32, u32), reason: String) {
    if items > 0 {
        let points = (items.min(u64::from(max)) as u32 * each).min(max);
        factors.push(ScoreFactor { reason, points });
    }
}

pub fn build(i: &Inputs<'_>) -> SecurityReport {
    let day_ns = 86_400 * 1_000_000_000i64;
    let mut denials_uid = BTreeMap::new();
    let mut denials_perm = BTreeMap::new();
    for (uid, perm, n) in i.denials {
        *denials_uid.entry(uid_key(*uid)).or_default() += n;
        *denials_perm.entry(perm.clone()).or_default() += n;
    }
    let mut alerts_uid = BTreeMap::new();
    let mut alerts_pattern = BTreeMap::new();
    for a in i.alerts {
        *alerts_uid.entry(a.uid.to_string()).or_default() += 1;
        *alerts_pattern.entry(a.pattern.to_string()).or_default() += 1;
    }
    let unacked = i.alerts.iter().filter(|a| a.acked_by.is_none()).count() as u64;
    let key_ages: Vec<KeyAge> = i
        .facts
        .repos
        .iter()
        .map(|r| KeyAge {
            repo: r.name.clone(),
            age_days: r
                .opened
                .as_ref()
                .ok()
                .map(|c| (i.now_ns - c).max(0).div_euclid(day_ns) as u64),
            max_age_days: i.key_max_age_days,
        })
        .collect();
    let horizon = i.now_ns + i64::from(i.days) * day_ns;
    let expiring = i.evidence.bindings.as_ref().map(|b| {
        b.iter()
            .filter(|b| b.expires_ns.is_some_and(|e| e <= horizon))
            .map(|b| ExpiringBinding {
                subject: b.subject.clone(),
                role: b.role.to_string(),
                expires_ns: b.expires_ns.unwrap_or_default(),
            })
            .collect::<Vec<_>>()
    });

    let failed: Vec<String> = i
        .compliance
        .controls
        .iter()
        .filter(|c| c.status == ControlStatus::Fail)
        .map(|c| c.id.clone())
        .collect();
    let mut factors = Vec::new();
    // Old keys are their own factor: not counted again as a failed control.
    let others: Vec<_> = failed.iter().filter(|c| *c != "key-age").cloned().collect();
    take(
        &mut factors,
        others.len() as u64,
        FAILED_CONTROL,
        format!("failed compliance controls: {}", others.join(", ")),
    );
    take(
        &mut factors,
        unacked,
        UNACKED_ALERT,
        format!("{unacked} unacknowledged alert(s)"),
    );
    let denied: u64 = denials_uid.values().sum();
    if denied >= DENIALS_PER_POINT {
        let points = ((denied / DENIALS_PER_POINT).min(u64::from(DENIALS_MAX))) as u32;
        factors.push(ScoreFactor {
            reason: format!("{denied} denied requests in {} days", i.days),
            points,
        });
    }
    let old: Vec<_> = key_ages
        .iter()
        .filter(|k| k.age_days.is_some_and(|a| a > k.max_age_days))
        .map(|k| k.repo.clone())
        .collect();
    take(
        &mut factors,
        old.len() as u64,
        OLD_KEY,
        format!("data keys older than the policy: {}", old.join(", ")),
    );
    let expiring_n = expiring.as_ref().map_or(0, |e| e.len() as u64);
    take(
        &mut factors,
        expiring_n,
        EXPIRING_BINDING,
        format!("{expiring_n} binding(s) expire within {} days", i.days),
    );
    let lost: u32 = factors.iter().map(|f| f.points).sum();
    SecurityReport {
        days: i.days,
        time_ns: i.now_ns,
        score: 100u32.saturating_sub(lost),
        factors,
        denials_by_uid: tallies(denials_uid),
        denials_by_permission: tallies(denials_perm),
        alerts_by_uid: tallies(alerts_uid),
        alerts_by_pattern: tallies(alerts_pattern),
        unacknowledged_alerts: unacked,
        key_ages,
        expiring_bindings: expiring,
        audit_last_verify: i.evidence.audit_chain.as_ref().map(|c| {
            format!(
                "{} at {}: {} entries",
                if c.ok { "verified" } else { "broken" },
                crate::repo::format_rfc3339(c.verified_ns),
                c.entries
            )
        }),
        compliance_failed: failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::compliance::RepoFact;
    use backupd_common::protocol::{ControlResult, Pattern};

    #[test]
    fn the_score_is_100_minus_the_factors_and_each_factor_is_capped() {
        let facts = Facts {
            now_ns: 1_000 * 86_400 * 1_000_000_000,
            repos: vec![RepoFact {
                name: "old".into(),
                opened: Ok(0),
                key_mode: Some(0o600),
                last_read_data: None,
            }],
            socket: String::new(),
            socket_mode: Ok(0o600),
            last_restore: None,
            sources: Vec::new(),
            keep_all: Vec::new(),
            replicas: Vec::new(),
            drills: Vec::new(),
            drill_within: None,
        };
        let control = |id: &str| ControlResult {
            id: id.into(),
            title: String::new(),
            status: ControlStatus::Fail,
            evidence: String::new(),
            clauses: Vec::new(),
        };
        let compliance = ComplianceReport {
            frameworks: Vec::new(),
            time_ns: 0,
            controls: vec![control("replica"), control("key-age")],
        };
        let alert = |uid| AlertInfo {
            id: 1,
            time_ns: 0,
            uid,
            pattern: Pattern::BruteForce,
            count: 5,
            threshold: 5,
            window_secs: 600,
            detail: String::new(),
            locked_until_ns: None,
            acked_by: None,
            acked_ns: None,
        };
        let alerts: Vec<_> = (0..9).map(alert).collect();
        let denials = vec![
            (7, "system.manage".to_owned(), 1000),
            (8, "repo.key".to_owned(), 5),
        ];
        let r = build(&Inputs {
            days: 30,
            now_ns: facts.now_ns,
            facts: &facts,
            evidence: &Evidence::default(),
            compliance: &compliance,
            alerts: &alerts,
            denials: &denials,
            key_max_age_days: 365,
        });
        let points: Vec<_> = r.factors.iter().map(|f| f.points).collect();
        // replica (8), 9 alerts capped at 25, 1005 denials capped at 10, one old key (5).
        assert_eq!(points, vec![8, 25, 10, 5], "{:?}", r.factors);
        assert_eq!(r.score, 100 - 48);
        assert_eq!(r.denials_by_uid[0].key, "7");
        assert_eq!(r.key_ages[0].age_days, Some(1000));
        assert_eq!(r.expiring_bindings, None);
    }
}
