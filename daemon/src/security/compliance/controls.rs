//! The controls as pure functions of measured [`Facts`] and [`Evidence`], each with the
//! framework clauses it supports. `docs/SECURITY.md` prints the same map; a control passing is
//! evidence for an assessor, not a certification.

use super::{Evidence, Facts};
use backupd_common::config::detect::ComplianceConfig;
use backupd_common::protocol::{ControlResult, ControlStatus, Framework, Role};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// The audit retention each framework asks for, in days (HIPAA: six years, §164.316(b)(2)(i);
/// the others name no number, so one year, which SOC 2 and ISO 27001 audits commonly expect,
/// and six months for GDPR).
pub fn min_audit_retention_days(f: Framework) -> u32 {
    match f {
        Framework::Gdpr => 180,
        Framework::Hipaa => 2190,
        Framework::Iso27001 | Framework::Soc2 => 365,
    }
}

/// Control id, title, and its clauses per framework.
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
    pub clauses: &'static [(Framework, &'static str)],
}

use Framework::{Gdpr, Hipaa, Iso27001, Soc2};

pub const CONTROLS: &[Control] = &[
    Control {
        id: "repo-encrypted",
        title: "every repository is encrypted and its key file private",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(a)"),
            (Hipaa, "HIPAA §164.312(a)(2)(iv)"),
            (Iso27001, "ISO 27001 A.8.24"),
            (Soc2, "SOC 2 CC6.1"),
        ],
    },
    Control {
        id: "key-age",
        title: "data keys are within the rotation policy",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(a)"),
            (Hipaa, "HIPAA §164.312(a)(2)(iv)"),
            (Iso27001, "ISO 27001 A.8.24"),
            (Soc2, "SOC 2 CC6.1"),
        ],
    },
    Control {
        id: "audit-chain",
        title: "the audit log's hash chain verifies",
        clauses: &[
            (Gdpr, "GDPR Art. 5(2)"),
            (Hipaa, "HIPAA §164.312(b)"),
            (Iso27001, "ISO 27001 A.8.15"),
            (Soc2, "SOC 2 CC7.2"),
        ],
    },
    Control {
        id: "audit-retention",
        title: "audit entries are kept at least as long as the framework asks",
        clauses: &[
            (Gdpr, "GDPR Art. 5(2)"),
            (Hipaa, "HIPAA §164.316(b)(2)(i)"),
            (Iso27001, "ISO 27001 A.8.15"),
            (Soc2, "SOC 2 CC7.2"),
        ],
    },
    Control {
        id: "source-retention",
        title: "every source has a retention policy",
        clauses: &[
            (Gdpr, "GDPR Art. 5(1)(e)"),
            (Hipaa, "HIPAA §164.310(d)(2)(i)"),
            (Iso27001, "ISO 27001 A.8.10"),
            (Soc2, "SOC 2 C1.2"),
        ],
    },
    Control {
        id: "read-data-check",
        title: "every repository had a full `check --read-data` recently",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(d)"),
            (Hipaa, "HIPAA §164.308(a)(7)(ii)(D)"),
            (Iso27001, "ISO 27001 A.8.13"),
            (Soc2, "SOC 2 A1.2"),
        ],
    },
    Control {
        id: "restore-drill",
        title: "a test restore (recovery drill) succeeded recently",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(c)"),
            (Hipaa, "HIPAA §164.308(a)(7)(ii)(B)"),
            (Iso27001, "ISO 27001 A.5.30"),
            (Soc2, "SOC 2 A1.3"),
        ],
    },
    Control {
        id: "drill",
        title: "every source passed a recovery drill within the drill schedule's interval",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(d)"),
            (Hipaa, "HIPAA §164.308(a)(7)(ii)(D)"),
            (Iso27001, "ISO 27001 A.5.30"),
            (Soc2, "SOC 2 A1.3"),
        ],
    },
    Control {
        id: "socket-private",
        title: "the control socket is not world-writable",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(b)"),
            (Hipaa, "HIPAA §164.312(a)(1)"),
            (Iso27001, "ISO 27001 A.8.3"),
            (Soc2, "SOC 2 CC6.1"),
        ],
    },
    Control {
        id: "binding-expiry",
        title: "no role binding without expiry except super-admin",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(b)"),
            (Hipaa, "HIPAA §164.308(a)(4)(ii)(C)"),
            (Iso27001, "ISO 27001 A.5.18"),
            (Soc2, "SOC 2 CC6.2"),
        ],
    },
    Control {
        id: "replica",
        title: "a second copy (replica) exists for each repository",
        clauses: &[
            (Gdpr, "GDPR Art. 32(1)(c)"),
            (Hipaa, "HIPAA §164.308(a)(7)(ii)(A)"),
            (Iso27001, "ISO 27001 A.8.14"),
            (Soc2, "SOC 2 A1.2"),
        ],
    },
];

fn days(ns: i64) -> i64 {
    ns.div_euclid(DAY_NS)
}

fn since(now: i64, then: Option<i64>) -> String {
    then.map_or_else(
        || "never".to_owned(),
        |t| format!("{} days ago", days(now - t)),
    )
}

/// Evaluates every control for `frameworks` (their clauses only).
pub fn evaluate(
    facts: &Facts,
    evidence: &Evidence,
    cfg: &ComplianceConfig,
    frameworks: &[Framework],
) -> Vec<ControlResult> {
    CONTROLS
        .iter()
        .map(|c| {
            let (status, evidence) = measure(c.id, facts, evidence, cfg, frameworks);
            ControlResult {
                id: c.id.to_owned(),
                title: c.title.to_owned(),
                status,
                evidence,
                clauses: c
                    .clauses
                    .iter()
                    .filter(|(f, _)| frameworks.contains(f))
                    .map(|(_, clause)| (*clause).to_owned())
                    .collect(),
            }
        })
        .collect()
}

fn measure(
    id: &str,
    facts: &Facts,
    evidence: &Evidence,
    cfg: &ComplianceConfig,
    frameworks: &[Framework],
) -> (ControlStatus, String) {
    use ControlStatus::{Fail, Pass, Warn};
    let now = facts.now_ns;
    let none_repos = (Warn, "no repository is registered".to_owned());
    match id {
        "repo-encrypted" => {
            if facts.repos.is_empty() {
                return none_repos;
            }
            let mut notes = Vec::new();
            let mut status = Pass;
            for r in &facts.repos {
                match (&r.opened, r.key_mode) {
                    (Err(e), _) => {
                        status = status.max(Warn);
                        notes.push(format!("{}: not measured, it did not open ({e})", r.name));
                    }
                    (Ok(_), Some(mode)) if mode & 0o077 != 0 => {
                        status = Fail;
                        notes.push(format!(
                            "{}: AES-256-GCM, but key file mode {mode:04o} lets others read it",
                            r.name
                        ));
                    }
                    (Ok(_), mode) => notes.push(format!(
                        "{}: AES-256-GCM, opened only with its key{}",
                        r.name,
                        mode.map_or_else(
                            || " (passphrase from a command)".to_owned(),
                            |m| format!(", key file mode {m:04o}")
                        )
                    )),
                }
            }
            (status, notes.join("; "))
        }
        "key-age" => {
            if facts.repos.is_empty() {
                return none_repos;
            }
            let max = cfg.key_max_age.as_secs() / 86_400;
            let mut status = Pass;
            let mut notes = Vec::new();
            for r in &facts.repos {
                match r.opened {
                    Ok(created) => {
                        let age = days(now - created).max(0) as u64;
                        if age > max {
                            status = Fail;
                        }
                        notes.push(format!(
                            "{}: current data key {age} days old (policy {max})",
                            r.name
                        ));
                    }
                    Err(_) => {
                        status = status.max(Warn);
                        notes.push(format!("{}: not measured (did not open)", r.name));
                    }
                }
            }
            (status, notes.join("; "))
        }
        "audit-chain" => match &evidence.audit_chain {
            None => (
                Warn,
                "not measured: the audit log is not available".to_owned(),
            ),
            Some(c) if c.ok => (Pass, format!("{} entries verify", c.entries)),
            Some(c) => (
                Fail,
                format!(
                    "the chain breaks at {}",
                    c.first_bad.as_deref().unwrap_or("an entry")
                ),
            ),
        },
        "audit-retention" => match evidence.audit_retention_days {
            None => (
                Warn,
                "not measured: the audit log is not available".to_owned(),
            ),
            Some(kept) => {
                let need = frameworks
                    .iter()
                    .map(|f| min_audit_retention_days(*f))
                    .max()
                    .unwrap_or(0);
                let status = if kept >= need { Pass } else { Fail };
                (
                    status,
                    format!("kept {kept} days; the frameworks ask for {need}"),
                )
            }
        },
        "source-retention" if facts.sources.is_empty() => (Warn, "no watched sources".to_owned()),
        "source-retention" if facts.keep_all.is_empty() => (
            Pass,
            format!(
                "every source ({}) has a retention policy the daemon applies",
                facts.sources.join(", ")
            ),
        ),
        "source-retention" => (
            Fail,
            format!(
                "{} of {} source(s) keep every snapshot forever (--keep-all): {}; give them \
                 keep rules (`backupctl source set NAME --keep-daily 30 ...`)",
                facts.keep_all.len(),
                facts.sources.len(),
                facts.keep_all.join(", ")
            ),
        ),
        "read-data-check" => {
            if facts.repos.is_empty() {
                return none_repos;
            }
            let within = cfg.read_data_check_within.as_secs() as i64 * 1_000_000_000;
            let mut status = Pass;
            let notes: Vec<_> = facts
                .repos
                .iter()
                .map(|r| {
                    if r.last_read_data.is_none_or(|t| now - t > within) {
                        status = Fail;
                    }
                    format!(
                        "{}: last full read-data check {}",
                        r.name,
                        since(now, r.last_read_data)
                    )
                })
                .collect();
            let policy = cfg.read_data_check_within.as_secs() / 86_400;
            (
                status,
                format!("{} (policy {policy} days)", notes.join("; ")),
            )
        }
        "restore-drill" => {
            let within = cfg.restore_drill_within.as_secs() as i64 * 1_000_000_000;
            let ok = facts.last_restore.is_some_and(|t| now - t <= within);
            let policy = cfg.restore_drill_within.as_secs() / 86_400;
            (
                if ok { Pass } else { Fail },
                format!(
                    "last successful restore {} (policy {policy} days)",
                    since(now, facts.last_restore)
                ),
            )
        }
        "drill" => drill(facts),
        "socket-private" => match facts.socket_mode {
            Err(ref e) => (Warn, format!("not measured: {e}")),
            Ok(mode) if mode & 0o002 != 0 => (
                Fail,
                format!("{} has mode {mode:04o}: anyone may connect", facts.socket),
            ),
            Ok(mode) => (Pass, format!("{} has mode {mode:04o}", facts.socket)),
        },
        "binding-expiry" => match &evidence.bindings {
            None => (
                Warn,
                "not measured: role bindings are not available".to_owned(),
            ),
            Some(b) => {
                let open: Vec<_> = b
                    .iter()
                    .filter(|b| b.expires_ns.is_none() && b.role != Role::SuperAdmin)
                    .map(|b| format!("{} ({})", b.subject, b.role))
                    .collect();
                if open.is_empty() {
                    (
                        Pass,
                        format!("{} binding(s), each expires or is super-admin", b.len()),
                    )
                } else {
                    (Fail, format!("without expiry: {}", open.join(", ")))
                }
            }
        },
        "replica" => {
            if facts.repos.is_empty() {
                return none_repos;
            }
            // Every repository that is not itself a replica needs one within its lag.
            let replica_names: Vec<&str> = facts.replicas.iter().map(|r| r.to.as_str()).collect();
            let mut missing = Vec::new();
            let mut behind = Vec::new();
            let mut good = Vec::new();
            for repo in facts.repos.iter().map(|r| r.name.as_str()) {
                if replica_names.contains(&repo) {
                    continue;
                }
                let of: Vec<_> = facts.replicas.iter().filter(|r| r.from == repo).collect();
                match of.iter().find(|r| r.within_lag) {
                    Some(r) => good.push(format!("{repo} → {}", r.to)),
                    None if of.is_empty() => missing.push(repo),
                    None => behind.push(format!(
                        "{repo} (replica {} is over its allowed lag)",
                        of.iter()
                            .map(|r| r.to.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            if missing.is_empty() && behind.is_empty() {
                (
                    Pass,
                    format!("replicated within their lag: {}", good.join(", ")),
                )
            } else {
                let mut why = Vec::new();
                if !missing.is_empty() {
                    why.push(format!(
                        "no replica of {} (`backupctl repo replicate add --from REPO --to REPLICA`)",
                        missing.join(", ")
                    ));
                }
                if !behind.is_empty() {
                    why.push(format!("behind: {}", behind.join(", ")));
                }
                (Fail, why.join("; "))
            }
        }
        _ => (Warn, "unknown control".to_owned()),
    }
}

/// Every source's last drill passed, recently enough; what is missing or failed, by source.
fn drill(facts: &Facts) -> (ControlStatus, String) {
    use ControlStatus::{Fail, Pass, Warn};
    let now = facts.now_ns;
    if facts.drills.is_empty() {
        return (Warn, "no watched sources".to_owned());
    }
    let Some(within) = facts.drill_within else {
        return (
            Fail,
            "recovery drills are off ([maintenance] drill = \"off\"); run `backupctl recovery \
             drill --source NAME` or schedule them"
                .to_owned(),
        );
    };
    let within_ns = i64::try_from(within.as_nanos()).unwrap_or(i64::MAX);
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for d in &facts.drills {
        match &d.last {
            None => bad.push(format!("{}: never drilled", d.source)),
            Some(l) if !l.ok => bad.push(format!(
                "{}: last drill (job {}, {}) failed: {}",
                d.source,
                l.job,
                since(now, Some(l.time_ns)),
                l.error.as_deref().unwrap_or("no detail")
            )),
            Some(l) if now - l.time_ns > within_ns => bad.push(format!(
                "{}: last drill passed {}, longer ago than allowed",
                d.source,
                since(now, Some(l.time_ns))
            )),
            Some(l) => good.push(format!("{} ({})", d.source, since(now, Some(l.time_ns)))),
        }
    }
    let policy = format!("allowed age {}", humantime::format_duration(within));
    if bad.is_empty() {
        (Pass, format!("drilled: {} ({policy})", good.join(", ")))
    } else {
        (
            Fail,
            format!(
                "{} ({policy}; `backupctl recovery drill --source NAME`)",
                bad.join("; ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BindingFact, ChainSummary, RepoFact};
    use super::*;

    fn facts() -> Facts {
        let now = 400 * DAY_NS;
        Facts {
            now_ns: now,
            repos: vec![RepoFact {
                name: "default".into(),
                opened: Ok(now - 10 * DAY_NS),
                key_mode: Some(0o600),
                last_read_data: Some(now - 2 * DAY_NS),
            }],
            socket: "/run/backupd/backupd.sock".into(),
            socket_mode: Ok(0o660),
            last_restore: Some(now - 5 * DAY_NS),
            sources: Vec::new(),
            keep_all: Vec::new(),
            replicas: Vec::new(),
            drills: Vec::new(),
            drill_within: Some(std::time::Duration::from_secs(8 * 86_400)),
        }
    }

    fn status(results: &[ControlResult], id: &str) -> ControlStatus {
        results.iter().find(|c| c.id == id).expect(id).status
    }

    #[test]
    fn missing_evidence_is_a_warning_never_a_pass() {
        let r = evaluate(
            &facts(),
            &Evidence::default(),
            &ComplianceConfig::default(),
            Framework::ALL,
        );
        for id in ["audit-chain", "audit-retention", "binding-expiry"] {
            assert_eq!(status(&r, id), ControlStatus::Warn, "{id}");
        }
        assert_eq!(status(&r, "repo-encrypted"), ControlStatus::Pass);
        assert_eq!(status(&r, "restore-drill"), ControlStatus::Pass);
        assert_eq!(status(&r, "replica"), ControlStatus::Fail);
        assert_eq!(r.len(), CONTROLS.len());
    }

    #[test]
    fn the_drill_control_passes_only_when_every_source_passed_a_recent_drill() {
        use super::super::DrillFact;
        use backupd_common::protocol::DrillSummary;
        let mut f = facts();
        let run = |f: &Facts| {
            let r = evaluate(
                f,
                &Evidence::default(),
                &ComplianceConfig::default(),
                Framework::ALL,
            );
            let c = r.iter().find(|c| c.id == "drill").expect("drill").clone();
            (c.status, c.evidence)
        };
        assert_eq!(run(&f).0, ControlStatus::Warn, "no sources");
        let drilled = |days: i64, ok: bool| DrillSummary {
            job: 3,
            time_ns: f.now_ns - days * DAY_NS,
            ok,
            error: (!ok).then(|| "/srv/a: differs".to_owned()),
            ..Default::default()
        };
        f.drills = vec![
            DrillFact {
                source: "home".into(),
                last: Some(drilled(2, true)),
            },
            DrillFact {
                source: "www".into(),
                last: None,
            },
        ];
        let (st, why) = run(&f);
        assert_eq!(st, ControlStatus::Fail);
        assert!(
            why.contains("www: never drilled") && !why.contains("home:"),
            "{why}"
        );
        f.drills[1].last = Some(drilled(1, false));
        let (st, why) = run(&f);
        assert_eq!(st, ControlStatus::Fail);
        assert!(
            why.contains("www: last drill (job 3, 1 days ago) failed: /srv/a"),
            "{why}"
        );
        f.drills[1].last = Some(drilled(9, true));
        assert!(run(&f).1.contains("longer ago than allowed"));
        f.drills[1].last = Some(drilled(7, true));
        let (st, why) = run(&f);
        assert_eq!(st, ControlStatus::Pass, "{why}");
        f.drill_within = None;
        assert_eq!(run(&f).0, ControlStatus::Fail, "drills off");
    }

    #[test]
    fn the_replica_control_passes_only_with_a_replica_within_its_lag() {
        use super::super::ReplicaFact;
        let replica = |within_lag| ReplicaFact {
            from: "default".into(),
            to: "offsite".into(),
            within_lag,
        };
        let mut f = facts();
        let replica_status = |f: &Facts| {
            let r = evaluate(
                f,
                &Evidence::default(),
                &ComplianceConfig::default(),
                Framework::ALL,
            );
            let c = r
                .iter()
                .find(|c| c.id == "replica")
                .expect("replica")
                .clone();
            (c.status, c.evidence)
        };
        let (st, why) = replica_status(&f);
        assert_eq!(st, ControlStatus::Fail);
        assert!(why.contains("no replica of default"), "{why}");
        f.replicas = vec![replica(false)];
        let (st, why) = replica_status(&f);
        assert_eq!(st, ControlStatus::Fail);
        assert!(why.contains("over its allowed lag"), "{why}");
        f.replicas = vec![replica(true)];
        // The replica is a repository too; it needs no replica of its own.
        let mut offsite = f.repos[0].clone();
        offsite.name = "offsite".into();
        f.repos.push(offsite);
        let (st, why) = replica_status(&f);
        assert_eq!(st, ControlStatus::Pass, "{why}");
        assert!(why.contains("default → offsite"), "{why}");
    }

    #[test]
    fn each_control_fails_on_what_it_measures() {
        let mut f = facts();
        f.repos[0].key_mode = Some(0o644);
        f.repos[0].opened = Ok(f.now_ns - 400 * DAY_NS);
        f.repos[0].last_read_data = None;
        f.last_restore = Some(f.now_ns - 91 * DAY_NS);
        f.socket_mode = Ok(0o666);
        f.sources = vec!["home".into()];
        f.keep_all = vec!["home".into()];
        f.drills = vec![super::super::DrillFact {
            source: "home".into(),
            last: None,
        }];
        let evidence = Evidence {
            audit_chain: Some(ChainSummary {
                ok: false,
                entries: 9,
                first_bad: Some("entry 4 (changed)".into()),
                verified_ns: 0,
            }),
            audit_retention_days: Some(365),
            bindings: Some(vec![
                BindingFact {
                    subject: "uid 0".into(),
                    role: Role::SuperAdmin,
                    expires_ns: None,
                },
                BindingFact {
                    subject: "uid 1000".into(),
                    role: Role::Admin,
                    expires_ns: None,
                },
            ]),
        };
        let r = evaluate(
            &f,
            &evidence,
            &ComplianceConfig::default(),
            &[Framework::Hipaa],
        );
        for c in &r {
            assert_eq!(c.status, ControlStatus::Fail, "{}: {}", c.id, c.evidence);
            assert!(
                c.clauses.iter().all(|x| x.starts_with("HIPAA")),
                "{:?}",
                c.clauses
            );
        }
        let bindings = r
            .iter()
            .find(|c| c.id == "binding-expiry")
            .expect("control");
        assert!(bindings.evidence.contains("uid 1000") && !bindings.evidence.contains("uid 0 "));
        // One year of audit retention is enough for SOC 2, not for HIPAA's six.
        let soc2 = evaluate(
            &f,
            &evidence,
            &ComplianceConfig::default(),
            &[Framework::Soc2],
        );
        assert_eq!(status(&soc2, "audit-retention"), ControlStatus::Pass);
    }
}
