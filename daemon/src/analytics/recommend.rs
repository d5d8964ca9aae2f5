//! Recommendations: rules over the facts the handler gathers, each naming the evidence that
//! triggered it and the exact command or setting that acts on it. Pure, so each rule is tested
//! with the facts that trigger it and the ones that do not.

use backupd_common::protocol::{Recommendation, Severity};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceFacts {
    pub name: String,
    pub repo: String,
    /// Under a retention hold.
    pub held: bool,
    pub recent_failure_rate: f64,
    pub recent_jobs: u64,
    pub last_error_class: Option<String>,
    pub has_retention: bool,
    /// Its snapshots in the repository (`None`: not known).
    pub snapshots: Option<u64>,
    pub watched: bool,
    pub debounce_secs: f64,
    /// Backups a day over the last week, and the median bytes each added.
    pub jobs_per_day: f64,
    pub median_bytes_added: f64,
    /// Why the watcher is not fully watching (a watch limit reached, …).
    pub watch_note: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepoFacts {
    pub name: String,
    pub has_replica: bool,
    /// Days since the last successful check (`None`: never).
    pub days_since_check: Option<f64>,
    /// `[maintenance] check` is scheduled.
    pub check_scheduled: bool,
    pub key_age_days: Option<f64>,
    pub key_max_age_days: f64,
    pub days_to_full: Option<f64>,
}

/// Inotify watches in use by the daemon and the limit (`None`: unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Watches {
    pub used: u64,
    pub max: Option<u64>,
}

/// Backups a day beyond which a source's changes are worth batching.
const BUSY_PER_DAY: f64 = 288.0;
/// Bytes a backup adds below which it is "small".
const SMALL_BYTES: f64 = 1024.0 * 1024.0;
/// Snapshots beyond which a source without retention is told to get one.
const MANY_SNAPSHOTS: u64 = 100;
/// A check older than this (days) is overdue.
const CHECK_DAYS: f64 = 30.0;
/// Share of the inotify limit in use beyond which raising it is due.
const WATCHES_SHARE: f64 = 0.8;

fn item(
    kind: &str,
    subject: &str,
    severity: Severity,
    evidence: String,
    action: String,
) -> Recommendation {
    Recommendation {
        kind: kind.to_owned(),
        subject: subject.to_owned(),
        severity,
        evidence,
        action,
    }
}

pub fn recommend(
    sources: &[SourceFacts],
    repos: &[RepoFacts],
    watches: Watches,
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for s in sources {
        if s.held {
            out.push(item(
                "release-hold",
                &s.name,
                Severity::Critical,
                "a backup looked like mass encryption; older snapshots are held from retention"
                    .into(),
                format!(
                    "inspect the source's files (`backupctl diff` between the last two \
                     snapshots), then `backupctl analytics hold release {}`",
                    s.name
                ),
            ));
        }
        if s.recent_jobs >= 3 && s.recent_failure_rate >= 0.2 {
            out.push(item(
                "investigate-failures",
                &s.name,
                Severity::Warning,
                format!(
                    "{:.0} % of its {} backups in 7 days failed{}",
                    s.recent_failure_rate * 100.0,
                    s.recent_jobs,
                    s.last_error_class
                        .as_deref()
                        .map(|c| format!(", last with {c}"))
                        .unwrap_or_default()
                ),
                format!(
                    "`backupctl queue history --source {} --limit 20` shows the errors",
                    s.name
                ),
            ));
        }
        if !s.has_retention && s.snapshots.is_some_and(|n| n > MANY_SNAPSHOTS) {
            out.push(item(
                "add-retention",
                &s.name,
                Severity::Notice,
                format!(
                    "{} snapshots and no retention policy: every one is kept",
                    s.snapshots.unwrap_or_default()
                ),
                format!(
                    "in the source's [[source]] table: keep_hourly = 24, keep_daily = 7, \
                     keep_weekly = 4, keep_monthly = 12 (then `backupctl system reload`); \
                     `backupctl source show {}` previews what it would keep",
                    s.name
                ),
            ));
        }
        if s.watched && s.jobs_per_day > BUSY_PER_DAY && s.median_bytes_added < SMALL_BYTES {
            out.push(item(
                "raise-debounce",
                &s.name,
                Severity::Notice,
                format!(
                    "{:.0} backups a day adding a median of {:.0} KiB each: changes arrive \
                     in a steady trickle (debounce {:.0} s)",
                    s.jobs_per_day,
                    s.median_bytes_added / 1024.0,
                    s.debounce_secs
                ),
                format!(
                    "in the source's [[source]] table: debounce = \"{}s\" batches them (or \
                     exclude the churning path with excludes = [...])",
                    (s.debounce_secs * 10.0).max(60.0).round()
                ),
            ));
        }
    }
    for r in repos {
        if !r.has_replica {
            out.push(item(
                "add-replica",
                &r.name,
                Severity::Warning,
                "no replica: one disk or host failure loses every snapshot".into(),
                format!(
                    "`backupctl repo init --name {0}-replica --location PATH --replica-of {0}` \
                     then `backupctl repo replicate add --from {0} --to {0}-replica \
                     --after-each-snapshot`",
                    r.name
                ),
            ));
        }
        let overdue = r.days_since_check.is_none_or(|d| d > CHECK_DAYS);
        if overdue {
            out.push(item(
                "schedule-verification",
                &r.name,
                Severity::Warning,
                match r.days_since_check {
                    None => "never checked successfully".to_owned(),
                    Some(d) => format!("last successful check {d:.0} days ago"),
                },
                if r.check_scheduled {
                    format!("`backupctl check --repo {}` now", r.name)
                } else {
                    format!(
                        "[maintenance] check = \"weekly\" and read_data = \"weekly\" in the \
                         config, or `backupctl check --repo {}` now",
                        r.name
                    )
                },
            ));
        }
        if let Some(age) = r.key_age_days.filter(|a| *a > r.key_max_age_days) {
            out.push(item(
                "rotate-key",
                &r.name,
                Severity::Warning,
                format!(
                    "data key {age:.0} days old, policy {:.0}",
                    r.key_max_age_days
                ),
                format!("`backupctl repo key rotate --repo {}`", r.name),
            ));
        }
        if let Some(days) = r.days_to_full.filter(|d| *d < 30.0) {
            out.push(item(
                "free-space",
                &r.name,
                Severity::Warning,
                format!("its disk fills in {days:.0} days at the current growth"),
                format!(
                    "add retention to its sources and `backupctl repo prune --repo {}`, or \
                     move it to a larger disk",
                    r.name
                ),
            ));
        }
    }
    let note = sources.iter().find_map(|s| {
        s.watch_note
            .as_deref()
            .filter(|n| n.contains("max_user_watches"))
    });
    let share = watches
        .max
        .map(|max| watches.used as f64 / max.max(1) as f64);
    if note.is_some() || share.is_some_and(|s| s > WATCHES_SHARE) {
        let max = watches.max.unwrap_or(8192);
        out.push(item(
            "raise-inotify-watches",
            "fs.inotify.max_user_watches",
            Severity::Warning,
            match note {
                Some(n) => n.to_owned(),
                None => format!("{} of {max} inotify watches in use", watches.used),
            },
            format!(
                "`sysctl fs.inotify.max_user_watches={}` and the same in /etc/sysctl.d/",
                (max * 4).max(524_288)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(r: &[Recommendation]) -> Vec<&str> {
        r.iter().map(|r| r.kind.as_str()).collect()
    }

    fn healthy_repo() -> RepoFacts {
        RepoFacts {
            name: "r".into(),
            has_replica: true,
            days_since_check: Some(2.0),
            check_scheduled: true,
            key_age_days: Some(10.0),
            key_max_age_days: 365.0,
            days_to_full: None,
        }
    }

    #[test]
    fn a_healthy_system_gets_no_recommendation() {
        let source = SourceFacts {
            name: "home".into(),
            repo: "r".into(),
            has_retention: true,
            snapshots: Some(500),
            watched: true,
            debounce_secs: 2.0,
            jobs_per_day: 20.0,
            median_bytes_added: 10e6,
            recent_jobs: 140,
            ..Default::default()
        };
        let watches = Watches {
            used: 100,
            max: Some(8192),
        };
        assert!(recommend(&[source], &[healthy_repo()], watches).is_empty());
    }

    #[test]
    fn each_rule_fires_on_its_evidence() {
        let source = SourceFacts {
            name: "logs".into(),
            repo: "r".into(),
            held: true,
            recent_failure_rate: 0.5,
            recent_jobs: 10,
            last_error_class: Some("io".into()),
            has_retention: false,
            snapshots: Some(2000),
            watched: true,
            debounce_secs: 2.0,
            jobs_per_day: 1000.0,
            median_bytes_added: 4096.0,
            watch_note: None,
        };
        let repo = RepoFacts {
            has_replica: false,
            days_since_check: None,
            check_scheduled: false,
            key_age_days: Some(400.0),
            days_to_full: Some(5.0),
            ..healthy_repo()
        };
        let watches = Watches {
            used: 8000,
            max: Some(8192),
        };
        let got = recommend(&[source], &[repo], watches);
        assert_eq!(
            kinds(&got),
            [
                "release-hold",
                "investigate-failures",
                "add-retention",
                "raise-debounce",
                "add-replica",
                "schedule-verification",
                "rotate-key",
                "free-space",
                "raise-inotify-watches"
            ]
        );
        assert!(got[0].action.contains("analytics hold release logs"));
        assert!(
            got[3].action.contains("debounce = \"60s\""),
            "{}",
            got[3].action
        );
        assert!(got[8].action.contains("max_user_watches=524288"));
        assert!(got
            .iter()
            .all(|r| !r.evidence.is_empty() && !r.action.is_empty()));
    }
}
