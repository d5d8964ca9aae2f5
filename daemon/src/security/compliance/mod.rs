//! Compliance controls evaluated on the live system: what is measured here ([`Facts`]: the
//! repositories, their keys, the socket, the recovery drills, the sources) and what other
//! parts of the security service supply ([`Evidence`]: the audit chain and its retention, the
//! role bindings). A control whose evidence is missing reads "not measured" with status
//! `warn`. Blocking: opens repositories and reads sled; handlers call it off the async workers.

pub mod controls;

use crate::queue::Queue;
use crate::repo::now_ns;
use crate::repo::registry::Registry;
use crate::security::detect::{jobs, Detector};
use backupd_common::config::detect::ComplianceConfig;
use backupd_common::protocol::{
    ComplianceReport, DrillSummary, Framework, HistoryQuery, JobState, Role, SourceInfo,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// What the audit log reports of its chain.
#[derive(Clone, Debug, Default)]
pub struct ChainSummary {
    pub ok: bool,
    pub entries: u64,
    /// The first entry changed, removed or reordered, in words.
    pub first_bad: Option<String>,
    pub verified_ns: i64,
}

/// A role binding as the controls see it.
#[derive(Clone, Debug)]
pub struct BindingFact {
    /// `uid 1000`, `group staff`.
    pub subject: String,
    pub role: Role,
    pub expires_ns: Option<i64>,
}

/// What other parts of the security service supply; `None` = not measured.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub audit_chain: Option<ChainSummary>,
    pub audit_retention_days: Option<u32>,
    pub bindings: Option<Vec<BindingFact>>,
}

#[derive(Clone, Debug)]
pub struct RepoFact {
    pub name: String,
    /// When the current data-key version was created, or why the repository did not open.
    pub opened: Result<i64, String>,
    /// Permission bits of the key file; none when the passphrase comes from a command.
    pub key_mode: Option<u32>,
    pub last_read_data: Option<i64>,
}

/// What is measured on the system.
#[derive(Clone, Debug)]
pub struct Facts {
    pub now_ns: i64,
    pub repos: Vec<RepoFact>,
    pub socket: String,
    pub socket_mode: Result<u32, String>,
    pub last_restore: Option<i64>,
    pub sources: Vec<String>,
    /// Sources whose snapshots are never forgotten automatically (`--keep-all`).
    pub keep_all: Vec<String>,
    /// Repository replications: source, replica, and whether the replica is within its
    /// allowed lag.
    pub replicas: Vec<ReplicaFact>,
    /// Each source's last recovery drill.
    pub drills: Vec<DrillFact>,
    /// How old a source's last successful drill may be; `None`: drills are off.
    pub drill_within: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct DrillFact {
    pub source: String,
    pub last: Option<DrillSummary>,
}

#[derive(Clone, Debug)]
pub struct ReplicaFact {
    pub from: String,
    pub to: String,
    pub within_lag: bool,
}

/// The handles facts are read from.
pub struct Sources<'a> {
    pub repos: &'a Registry,
    pub queue: &'a Queue,
    pub detector: &'a Detector,
    pub sources: Vec<SourceInfo>,
    pub socket: &'a Path,
    pub restore_within: Duration,
    pub replications: Vec<backupd_common::protocol::ReplicationInfo>,
    pub drills: &'a crate::recovery::drills::Drills,
    pub drill_within: Option<Duration>,
}

fn parse_time(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i64)
}

/// When the current data-key version of `repo` was created (a version from a version 1 key file
/// is dated with the repository's creation).
pub(crate) fn current_key_created(repo: &crate::repo::Repository) -> Result<i64, String> {
    let loaded = repo.key_ring().map_err(|e| e.to_string())?;
    if let Some(k) = loaded.ring.current_key() {
        return Ok(k.created_ns);
    }
    parse_time(&repo.config().created)
        .ok_or_else(|| format!("creation time {:?} unreadable", repo.config().created))
}

/// Measures the system. Blocking.
pub fn facts(s: &Sources<'_>) -> Facts {
    let now = now_ns();
    let drills = s.detector.drills();
    let repos = s
        .repos
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|entry| {
            let opened = s
                .repos
                .open(Some(&entry.name))
                .map_err(|e| e.to_string())
                .and_then(|(_, r)| current_key_created(&r));
            let key_mode = (entry.password_command.is_none())
                .then(|| std::fs::metadata(&entry.key_file).ok())
                .flatten()
                .map(|m| m.permissions().mode() & 0o7777);
            let last_read_data = drills
                .drill(&jobs::read_data_key(&entry.name))
                .ok()
                .flatten();
            RepoFact {
                name: entry.name,
                opened,
                key_mode,
                last_read_data,
            }
        })
        .collect();
    let socket_mode = std::fs::metadata(s.socket)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| format!("cannot stat {}: {e}", s.socket.display()));
    Facts {
        now_ns: now,
        repos,
        socket: s.socket.display().to_string(),
        socket_mode,
        last_restore: last_restore(s),
        replicas: s
            .replications
            .iter()
            .map(|r| ReplicaFact {
                from: r.spec.from.clone(),
                to: r.spec.to.clone(),
                // A replication that never completed holds no copy yet, lag or not.
                within_lag: r.last_success_ns.is_some()
                    && !r.over_lag
                    && r.snapshots_behind.is_some(),
            })
            .collect(),
        sources: s.sources.iter().map(|x| x.spec.name.clone()).collect(),
        drills: s
            .sources
            .iter()
            .map(|x| DrillFact {
                source: x.spec.name.clone(),
                last: s.drills.last(&x.spec.name),
            })
            .collect(),
        drill_within: s.drill_within,
        keep_all: s
            .sources
            .iter()
            .filter(|x| x.spec.policy.retention.rules().is_none())
            .map(|x| x.spec.name.clone())
            .collect(),
    }
}

/// The latest successful restore: recorded as it finished, or else found in the job history.
fn last_restore(s: &Sources<'_>) -> Option<i64> {
    let recorded = s.detector.drills().drill(jobs::RESTORE_KEY).ok().flatten();
    let query = HistoryQuery {
        limit: 100,
        since: Some(s.restore_within),
        kind: Some("restore".into()),
        ..HistoryQuery::default()
    };
    let history = s.queue.history(&query).ok().and_then(|entries| {
        entries
            .into_iter()
            .filter(|e| e.outcome == JobState::Succeeded)
            .map(|e| e.finished_ns)
            .max()
    });
    recorded.max(history)
}

/// Evaluates the controls for `frameworks` (all when empty).
pub fn evaluate(
    facts: &Facts,
    evidence: &Evidence,
    cfg: &ComplianceConfig,
    frameworks: &[Framework],
) -> ComplianceReport {
    let frameworks = if frameworks.is_empty() {
        Framework::ALL.to_vec()
    } else {
        frameworks.to_vec()
    };
    ComplianceReport {
        controls: controls::evaluate(facts, evidence, cfg, &frameworks),
        frameworks,
        time_ns: facts.now_ns,
    }
}
