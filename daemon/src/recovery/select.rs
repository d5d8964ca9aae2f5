//! Finding the snapshot to recover from and working out a plan: the candidates (snapshots at
//! or before the requested time that hold the path), their fitness, the paths a selective
//! recovery restores, and the estimates. Reads only; the plan is stored by the caller.

use super::fitness::{self, Facts, FIT};
use super::{Recovery, RecoveryError, DEFAULT_RPO, DEFAULT_RTO};
use crate::engine::restore::{measure, RestoreOptions};
use crate::engine::EngineError;
use crate::error::Error;
use crate::ops::view::path_of;
use crate::repo::snapshot::SnapshotHeader;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::{Repository, Scope};
use crate::state::records::recovery::{only_name, PlanRecord, StepRecord};
use backupd_common::ids::SnapshotId;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    FitnessReport, FitnessRequest, HistoryQuery, OnlyMode, PlanRequest, Selection, StepKind,
};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// At most this many snapshots are scored per request (newest first).
const MAX_CANDIDATES: usize = 200;

/// A plan worked out but not stored yet.
pub struct Draft {
    pub record: PlanRecord,
    pub only: Option<Arc<HashSet<Vec<u8>>>>,
}

/// The check jobs of `repo`, newest first.
fn checks(rec: &Recovery, repo: &str) -> Vec<backupd_common::protocol::HistoryEntry> {
    let q = HistoryQuery {
        limit: 20,
        kind: Some("check".into()),
        repo: Some(repo.into()),
        ..Default::default()
    };
    rec.queue.history(&q).unwrap_or_default()
}

/// The replicas of `repo` that hold snapshot `id`, opened.
pub fn replicas_holding(
    rec: &Recovery,
    repo: &str,
    id: &SnapshotId,
) -> Vec<(String, Arc<Repository>)> {
    rec.replications
        .records()
        .into_iter()
        .filter(|r| r.from == repo)
        .filter_map(|r| {
            let (_, replica) = rec.repos.open(Some(&r.to)).ok()?;
            replica
                .find_snapshot(&id.to_hex(), &Default::default())
                .ok()
                .map(|_| (r.to, replica))
        })
        .collect()
}

/// The node at absolute `path` in the tree `root` (`None`: not there; the root itself is a
/// directory node without a name).
pub fn lookup(
    repo: &Repository,
    root: &backupd_common::ids::BlobId,
    path: &[u8],
) -> Result<Option<Node>, Error> {
    use crate::engine::browse::{components, locate, Located};
    Ok(match locate(&mut &*repo, *root, &components(path)?)? {
        None => None,
        Some(
            Located::Other(node)
            | Located::Dir {
                node: Some(node), ..
            },
        ) => Some(node),
        Some(Located::Dir { tree, node: None }) => {
            let mut root = Node::new(Vec::new(), NodeKind::Dir);
            root.subtree = Some(tree);
            Some(root)
        }
    })
}

/// The snapshots a request asks about, newest first, and the repository they are in.
struct Candidates {
    name: String,
    repo: Arc<Repository>,
    list: Vec<(SnapshotId, SnapshotHeader)>,
}

/// The snapshots `r` asks about.
fn candidates(rec: &Recovery, r: &FitnessRequest, scope: Scope) -> Result<Candidates, Error> {
    let (entry, repo) = rec.repos.open(r.repo.as_deref())?;
    let at = r.at_ns.unwrap_or_else(crate::repo::now_ns);
    let mut list: Vec<_> = repo
        .snapshot_headers()
        .map_err(EngineError::from)?
        .into_iter()
        .filter(|(_, h)| scope.admits(h.owner_uid) && h.time_ns <= at)
        .filter(|(_, h)| r.source.is_none() || h.source == r.source)
        .filter(|(id, _)| {
            r.snapshots.is_empty() || r.snapshots.iter().any(|p| id.to_hex().starts_with(p))
        })
        .filter(|(_, h)| {
            r.path
                .as_ref()
                .is_none_or(|p| h.paths.iter().any(|b| p.starts_with(b)))
        })
        .collect();
    list.sort_by_key(|(_, h)| std::cmp::Reverse(h.time_ns));
    let mut out = Vec::new();
    for (id, h) in list {
        if out.len() >= MAX_CANDIDATES {
            break;
        }
        if let Some(p) = &r.path {
            if lookup(&repo, &h.tree, p)?.is_none() {
                continue;
            }
        }
        out.push((id, h));
    }
    Ok(Candidates {
        name: entry.name,
        repo,
        list: out,
    })
}

pub fn fitness(
    rec: &Recovery,
    r: &FitnessRequest,
    scope: Scope,
) -> Result<Vec<FitnessReport>, Error> {
    let c = candidates(rec, r, scope)?;
    let mut out = score_all(rec, &c.name, &c.list, r.at_ns);
    out.sort_by(|a, b| b.score.cmp(&a.score).then(b.time_ns.cmp(&a.time_ns)));
    Ok(out)
}

fn score_all(
    rec: &Recovery,
    name: &str,
    list: &[(SnapshotId, SnapshotHeader)],
    at_ns: Option<i64>,
) -> Vec<FitnessReport> {
    let checks = checks(rec, name);
    let throughput = super::throughput::measured(&rec.queue);
    let throughput = (throughput.bytes_per_sec as u64, throughput.measured);
    let reachable = Ok(());
    let at = at_ns.unwrap_or_else(crate::repo::now_ns);
    let sources = source_paths(rec);
    // Each replica's snapshots listed once (one directory listing), not once per candidate.
    let replica_sets: Vec<(String, HashSet<SnapshotId>)> = rec
        .replications
        .records()
        .into_iter()
        .filter(|r| r.from == name)
        .filter_map(|r| {
            let (_, replica) = rec.repos.open(Some(&r.to)).ok()?;
            let ids = replica.snapshot_ids().ok()?;
            Some((r.to, ids.into_iter().collect()))
        })
        .collect();
    list.iter()
        .map(|(id, h)| {
            let replicas: Vec<String> = replica_sets
                .iter()
                .filter(|(_, ids)| ids.contains(id))
                .map(|(n, _)| n.clone())
                .collect();
            let source = h.source.as_ref().and_then(|s| sources.get(s));
            let source_path = source.map(|(p, _, _)| p.as_slice());
            let (rpo, rto) =
                source.map_or((DEFAULT_RPO, DEFAULT_RTO), |(_, rpo, rto)| (*rpo, *rto));
            fitness::score(&Facts {
                repo: name,
                snapshot: id.to_hex(),
                time_ns: h.time_ns,
                source: h.source.clone(),
                source_path,
                paths: &h.paths,
                skipped: h.stats.skipped,
                changed_during_read: h.stats.changed_during_read,
                bytes: h.stats.bytes_total,
                reachable: &reachable,
                checks: &checks,
                replicas: &replicas,
                throughput,
                at_ns: at,
                rpo,
                rto,
            })
        })
        .collect()
}

/// Each watched source's directory and its recovery targets (RPO, RTO), by name.
fn source_paths(rec: &Recovery) -> HashMap<String, (Vec<u8>, Duration, Duration)> {
    rec.sources
        .persisted()
        .into_iter()
        .map(|s| {
            let targets = (s.policy.rpo_for(s.watch), s.policy.rto_or_default());
            (s.name, (s.path, targets.0, targets.1))
        })
        .collect()
}

pub fn select(rec: &Recovery, r: &FitnessRequest, scope: Scope) -> Result<Selection, Error> {
    let all = fitness(rec, r, scope)?;
    let candidates = all.len() as u32;
    let mut it = all.into_iter();
    let chosen = it.next().ok_or_else(|| no_snapshot(r))?;
    let runner_up = it.next();
    let reason = match &runner_up {
        Some(b) => fitness::why_better(&chosen, b),
        None => format!(
            "{} is the only snapshot that qualifies (score {})",
            fitness::short(&chosen.snapshot),
            chosen.score
        ),
    };
    Ok(Selection {
        chosen,
        runner_up,
        reason,
        candidates,
    })
}

fn no_snapshot(r: &FitnessRequest) -> Error {
    let mut what = Vec::new();
    if let Some(p) = &r.path {
        what.push(format!("holds {}", escape_path(p)));
    }
    if let Some(at) = r.at_ns {
        what.push(format!(
            "was taken at or before {}",
            crate::repo::format_rfc3339(at)
        ));
    }
    if let Some(s) = &r.source {
        what.push(format!("belongs to source {s}"));
    }
    RecoveryError::NoSnapshot {
        what: if what.is_empty() {
            "in the repository".into()
        } else {
            format!("that {}", what.join(" and "))
        },
    }
    .into()
}

fn invalid(msg: impl Into<String>) -> Error {
    RecoveryError::Invalid(msg.into()).into()
}

/// Works out the plan for `r`.
pub fn plan(rec: &Recovery, r: PlanRequest, uid: u32) -> Result<Draft, Error> {
    let path = normalise(&r.path, "--path")?;
    let target = match &r.target {
        Some(t) => normalise(t, "--target")?,
        None => path.clone(),
    };
    refuse_dangerous_target(rec, &target)?;
    let fr = FitnessRequest {
        repo: r.repo.clone(),
        source: r.source.clone(),
        snapshots: r.snapshot.iter().cloned().collect(),
        path: Some(path.clone()),
        at_ns: r.at_ns,
    };
    let Candidates {
        name,
        repo: primary,
        list,
    } = candidates(rec, &fr, Scope::All)?;
    let mut scored: Vec<(FitnessReport, SnapshotHeader)> = score_all(rec, &name, &list, r.at_ns)
        .into_iter()
        .zip(list.iter().map(|(_, h)| h.clone()))
        .collect();
    let mut notes = Vec::new();
    // Point in time: the newest fit snapshot (candidates are newest first).
    let pick = scored
        .iter()
        .position(|(f, _)| f.score >= FIT)
        .or_else(|| {
            let best = scored
                .iter()
                .enumerate()
                .max_by_key(|(_, (f, h))| (f.score, h.time_ns))
                .map(|(i, _)| i)?;
            notes.push(format!(
                "no snapshot scores {FIT} or more; the best one ({}) is used",
                scored[best].0.score
            ));
            Some(best)
        })
        .ok_or_else(|| no_snapshot(&fr))?;
    let (report, header) = scored.swap_remove(pick);
    let id = SnapshotId::from_hex(&report.snapshot)
        .ok_or_else(|| invalid("snapshot id from the repository is not hex"))?;
    if pick > 0 {
        notes.push(format!(
            "{} newer snapshot(s) at or before the requested time scored below {FIT} and were passed over",
            pick
        ));
    }

    let (reading_from, source_repo, failover) = if r.from_replica {
        let (replica, repo) = replicas_holding(rec, &name, &id)
            .into_iter()
            .next()
            .ok_or_else(|| {
                invalid(format!(
                    "--from-replica: no replica of {name} holds snapshot {} (see `backupctl repo replicate list`)",
                    id.short()
                ))
            })?;
        let why = format!("reading from replica {replica}: asked for with --from-replica");
        (replica, repo, Some(why))
    } else {
        (name.clone(), primary.clone(), None)
    };

    let only = super::selection::paths(&source_repo, &r, &header, &path, &target, &mut notes)?;
    let opts = RestoreOptions {
        snapshot: id.to_hex(),
        subpath: Some(path_of(path.clone())),
        target: path_of(target.clone()),
        includes: r.includes.clone(),
        excludes: r.excludes.clone(),
        only: only.clone(),
        ..Default::default()
    };
    let (files, bytes) = measure(&source_repo, &opts)?;
    let measured_rate = super::throughput::measured(&rec.queue);
    let (rate, measured) = (measured_rate.bytes_per_sec as u64, measured_rate.measured);
    // The restore at the measured throughput; reading and verifying are assumed to go at
    // twice that (no file is created).
    let restore_ms = (measured_rate.estimate(bytes, files).as_millis() as u64).max(1);
    let estimates = [
        (StepKind::Preflight, 1000, 0),
        (StepKind::Fetch, restore_ms / 2, bytes),
        (StepKind::Restore, restore_ms, bytes),
        (StepKind::Verify, restore_ms / 2, bytes),
        (StepKind::Swap, 1000 + files / 100, 0),
        (StepKind::PostCheck, restore_ms / 2, bytes),
        (StepKind::Cleanup, 1000, 0),
    ];
    let rto = estimates.iter().map(|(_, ms, _)| ms).sum();
    let mut selection_words = vec![match r.only {
        OnlyMode::All if only.is_none() && r.includes.is_empty() && r.excludes.is_empty() => {
            "everything: the target becomes the snapshot's tree".to_owned()
        }
        OnlyMode::All => "the selected entries; the rest of the target is left alone".to_owned(),
        OnlyMode::Missing => "only entries the target lacks".to_owned(),
        OnlyMode::Different => {
            "only entries the target lacks or holds with other content".to_owned()
        }
    }];
    selection_words.extend(r.includes.iter().map(|g| format!("include {g}")));
    selection_words.extend(r.excludes.iter().map(|g| format!("exclude {g}")));
    selection_words.extend(r.paths.iter().map(|p| format!("path {}", escape_path(p))));
    if let Some(t) = r.changed_since_ns {
        selection_words.push(format!("changed since {}", crate::repo::format_rfc3339(t)));
    }
    let now = crate::repo::now_ns();
    Ok(Draft {
        record: PlanRecord {
            v: 1,
            id: String::new(),
            state: "planned".into(),
            created_ns: now,
            created_by: uid,
            repo: name,
            reading_from,
            failover,
            snapshot: id.to_hex(),
            snapshot_time_ns: header.time_ns,
            at_ns: r.at_ns,
            path,
            target,
            includes: r.includes,
            excludes: r.excludes,
            only: only_name(r.only).into(),
            limited: only.is_some(),
            selection: selection_words,
            files,
            bytes,
            rto_estimate_ms: rto,
            throughput: rate,
            throughput_measured: measured,
            fitness: serde_json::to_value(&report).ok(),
            steps: estimates
                .iter()
                .map(|(k, ms, b)| StepRecord {
                    kind: k.as_str().into(),
                    state: "pending".into(),
                    estimate_ms: *ms,
                    bytes: *b,
                    files: if matches!(
                        k,
                        StepKind::Restore | StepKind::Verify | StepKind::PostCheck
                    ) {
                        files
                    } else {
                        0
                    },
                    started_ns: None,
                    finished_ns: None,
                    job: None,
                    detail: None,
                })
                .collect(),
            created_target: false,
            notes,
            swapped_ns: None,
        },
        only,
    })
}

/// An absolute path without `.`/`..`, trailing slashes removed.
fn normalise(p: &[u8], flag: &str) -> Result<Vec<u8>, Error> {
    if !p.starts_with(b"/") {
        return Err(invalid(format!(
            "{flag} {} must be an absolute path",
            escape_path(p)
        )));
    }
    let parts: Vec<&[u8]> = p.split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == b"." || *c == b"..") {
        return Err(invalid(format!(
            "{flag} {} must not contain `.` or `..`",
            escape_path(p)
        )));
    }
    let mut out = Vec::new();
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// A recovery moves the target's entries aside: never where that would move the daemon's own
/// state or a repository.
fn refuse_dangerous_target(rec: &Recovery, target: &[u8]) -> Result<(), Error> {
    let t = Path::new(OsStr::from_bytes(target));
    if t == Path::new("/") {
        return Err(invalid(
            "--target /: a recovery never swaps the root directory; recover into a directory \
             below it (or each top-level directory by itself)",
        ));
    }
    // The target as it resolves (its nearest existing ancestor), as the guarded paths are.
    let resolved = t
        .ancestors()
        .find_map(|a| {
            let real = std::fs::canonicalize(a).ok()?;
            Some(real.join(t.strip_prefix(a).ok()?))
        })
        .unwrap_or_else(|| t.to_path_buf());
    for (what, p) in rec.repos.protected_paths() {
        if p.starts_with(&resolved) {
            return Err(invalid(format!(
                "--target {}: it holds {what} ({}); recovering over it would move that aside. \
                 Recover into another directory, or narrow --path",
                t.display(),
                p.display()
            )));
        }
    }
    Ok(())
}
