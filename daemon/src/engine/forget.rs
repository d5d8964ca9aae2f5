//! Forget (apply a retention policy to snapshots) and prune (delete data no snapshot needs,
//! repacking partly used packs) under the exclusive lock.
//!
//! Policy semantics follow restic's: snapshots are grouped by host and paths; within a group,
//! newest first, `keep-last N` keeps the N newest, `keep-hourly/daily/weekly/monthly/yearly N`
//! keep the newest snapshot of each of the last N such periods (UTC) that have one,
//! `keep-within D` keeps everything younger than D relative to the newest snapshot. A snapshot
//! is kept if any rule keeps it; the reasons are reported.

use super::compact;
use super::progress::Progress;
use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::index::IndexedPack;
use crate::repo::pack::{PackBuilder, PackEntry};
use crate::repo::Repository;
use backupd_common::ids::{BlobId, PackId, SnapshotId};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Duration>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|n| *n == 0)
            && self.within.is_none()
    }
}

#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    pub policy: Policy,
    pub prune: bool,
    pub dry_run: bool,
    /// Snapshots to remove whatever the policy says (ids or unique prefixes of file names).
    pub snapshots: Vec<String>,
    /// A source's retention: the policy applies only to snapshots of exactly these paths made
    /// with the daemon's own rights, and the newest of each host is always kept. Empty: every
    /// snapshot.
    pub paths: Vec<Vec<u8>>,
    pub zstd_level: i32,
    /// Retention holds: snapshots they cover are kept whatever the policy says, and naming one
    /// is refused.
    pub holds: Vec<Hold>,
}

/// Snapshots of exactly `paths` made before `before_ns` are held (analytics' mass-encryption
/// hold, docs/ANALYTICS.md).
#[derive(Clone, Debug)]
pub struct Hold {
    pub paths: Vec<Vec<u8>>,
    pub before_ns: i64,
    /// The source it protects, for the decision's reason and the refusal.
    pub source: String,
}

impl Hold {
    fn covers(&self, paths: &[Vec<u8>], time_ns: i64) -> bool {
        self.paths == paths && time_ns < self.before_ns
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub snapshot: String,
    pub time_ns: i64,
    pub host: String,
    pub keep: bool,
    /// The rules that kept it (empty when removed).
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReport {
    pub decisions: Vec<Decision>,
    pub removed: usize,
    pub dry_run: bool,
    pub prune: Option<PruneReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    pub blobs_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Unindexed packs kept because they are younger than the safety window.
    pub unindexed_kept: usize,
    /// When the last of them leaves the window (ns since the epoch).
    pub unindexed_kept_until_ns: Option<i64>,
    /// Index files before and after: prune rewrites the whole index, so it compacts it too.
    pub index_files_before: u64,
    pub index_files_after: u64,
}

/// Snapshots are grouped by host and backed-up paths.
type GroupKey = (String, Vec<Vec<u8>>);

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Period bucket of a time for each rule (UTC).
fn bucket(rule: &str, time_ns: i64) -> i64 {
    let secs = time_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(DAY);
    match rule {
        "hourly" => secs.div_euclid(HOUR),
        "daily" => days,
        // 1970-01-01 was a Thursday; shift so weeks start on Monday.
        "weekly" => (days + 3).div_euclid(7),
        "monthly" | "yearly" => {
            let (y, m) = year_month(days);
            if rule == "monthly" {
                y * 12 + m
            } else {
                y
            }
        }
        _ => 0,
    }
}

fn year_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// Decides, for snapshots of one group sorted newest first, which to keep and why.
pub fn decide(policy: &Policy, times: &[i64]) -> Vec<Vec<String>> {
    let mut reasons = vec![Vec::new(); times.len()];
    for r in reasons.iter_mut().take(policy.last as usize) {
        r.push("last".to_owned());
    }
    for (rule, n) in [
        ("hourly", policy.hourly),
        ("daily", policy.daily),
        ("weekly", policy.weekly),
        ("monthly", policy.monthly),
        ("yearly", policy.yearly),
    ] {
        let mut seen = HashSet::new();
        for (i, t) in times.iter().enumerate() {
            if seen.len() >= n as usize {
                break;
            }
            if seen.insert(bucket(rule, *t)) {
                reasons[i].push(rule.to_owned());
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, times.first()) {
        let span = i64::try_from(within.as_nanos()).unwrap_or(i64::MAX);
        let limit = newest.saturating_sub(span);
        for (i, t) in times.iter().enumerate() {
            if *t >= limit {
                reasons[i].push(format!("within {}", humanize(within)));
            }
        }
    }
    reasons
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(DAY as u64) {
        format!("{}d", s / DAY as u64)
    } else if s.is_multiple_of(HOUR as u64) {
        format!("{}h", s / HOUR as u64)
    } else {
        format!("{s}s")
    }
}

pub fn forget(
    repo: &Repository,
    opts: &ForgetOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ForgetReport, EngineError> {
    if opts.policy.is_empty() && opts.snapshots.is_empty() {
        return Err(EngineError::InvalidArgument(
            "no retention rule and no snapshot given; refusing to forget every snapshot (use \
             --keep-* options or name snapshots)"
                .into(),
        ));
    }
    use crate::repo::lock::LockMode;
    let (mode, purpose) = match (opts.dry_run, opts.prune) {
        // A dry run writes nothing: it works on a full or read-only repository too.
        (true, _) => (LockMode::ReadOnly, "forget --dry-run"),
        (false, true) => (LockMode::Exclusive, "forget --prune"),
        (false, false) => (LockMode::Exclusive, "forget"),
    };
    let _lock = repo.lock_waiting(mode, purpose, crate::repo::LOCK_WAIT, cancel)?;
    // Named snapshots are resolved by file name: a damaged file (which `check` names and which
    // makes `latest` fail) can be removed this way without being read.
    let mut named = Vec::new();
    for spec in &opts.snapshots {
        named.push(repo.resolve_snapshot_name(spec)?);
    }
    let mut report = ForgetReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    for id in &named {
        let (time_ns, host) = match repo.read_snapshot(id) {
            Ok(s) => {
                if let Some(hold) = opts.holds.iter().find(|h| h.covers(&s.paths, s.time_ns)) {
                    return Err(EngineError::InvalidArgument(format!(
                        "snapshot {} is under the retention hold of source {:?} (suspected mass \
                         encryption); check the source's data, then release the hold with \
                         `backupctl analytics hold release {}` and run forget again",
                        id.to_hex(),
                        hold.source,
                        hold.source
                    )));
                }
                (s.time_ns, s.host)
            }
            Err(_) => (0, String::new()),
        };
        report.decisions.push(Decision {
            snapshot: id.to_hex(),
            time_ns,
            host,
            keep: false,
            reasons: Vec::new(),
        });
    }
    let mut groups: BTreeMap<GroupKey, Vec<(SnapshotId, i64, String)>> = BTreeMap::new();
    let policy_snapshots = if opts.policy.is_empty() {
        Vec::new()
    } else {
        repo.snapshots()?
    };
    let scoped = !opts.paths.is_empty();
    for (id, s) in policy_snapshots {
        if named.contains(&id) || scoped && (s.paths != opts.paths || s.owner_uid.is_some()) {
            continue;
        }
        groups
            .entry((s.host.clone(), s.paths.clone()))
            .or_default()
            .push((id, s.time_ns, s.host));
    }
    for ((_, paths), mut snaps) in groups {
        snaps.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let times: Vec<i64> = snaps.iter().map(|s| s.1).collect();
        let mut decided = decide(&opts.policy, &times);
        if let Some(newest) = decided.first_mut().filter(|_| scoped) {
            // A source always keeps its newest snapshot: the next incremental backup's
            // parent, and the only copy of its latest state.
            if newest.is_empty() {
                newest.push("newest".to_owned());
            }
        }
        for ((id, time_ns, host), mut reasons) in snaps.into_iter().zip(decided) {
            if let Some(hold) = opts.holds.iter().find(|h| h.covers(&paths, time_ns)) {
                reasons.push(format!("held (source {})", hold.source));
            }
            report.decisions.push(Decision {
                snapshot: id.to_hex(),
                time_ns,
                host,
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    report.decisions.sort_by_key(|d| d.time_ns);
    if opts.dry_run {
        report.removed = report.decisions.iter().filter(|d| !d.keep).count();
        return Ok(report);
    }
    for d in report.decisions.iter().filter(|d| !d.keep) {
        if let Some(id) = SnapshotId::from_hex(&d.snapshot) {
            repo.remove_snapshot(&id)?;
            report.removed += 1;
        }
    }
    if opts.prune {
        report.prune = Some(prune_locked(repo, opts.zstd_level, progress, cancel)?);
    }
    Ok(report)
}

/// Blobs reachable from the snapshots.
fn used_blobs(repo: &Repository) -> Result<HashSet<BlobId>, EngineError> {
    let mut used = HashSet::new();
    // Strict: an unreadable snapshot aborts, or prune would delete the data it needs.
    for (_, snap) in repo.snapshots_strict()? {
        let mut stack = vec![snap.tree];
        while let Some(tid) = stack.pop() {
            if !used.insert(tid) {
                continue;
            }
            let tree = repo.load_tree(&tid)?;
            for node in tree.nodes {
                used.extend(node.content);
                if let Some(sub) = node.subtree {
                    stack.push(sub);
                }
            }
        }
    }
    Ok(used)
}

/// Deletes data no snapshot needs and compacts the index, without forgetting a snapshot
/// (`backupctl repo prune`, and the scheduler's weekly prune).
pub fn prune(
    repo: &Repository,
    zstd_level: i32,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<PruneReport, EngineError> {
    use crate::repo::lock::LockMode;
    let _lock = repo.lock_waiting(LockMode::Exclusive, "prune", crate::repo::LOCK_WAIT, cancel)?;
    prune_locked(repo, zstd_level, progress, cancel)
}

/// Deletes unused data. The caller holds the exclusive lock.
fn prune_locked(
    repo: &Repository,
    zstd_level: i32,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<PruneReport, EngineError> {
    repo.reload_index()?;
    compact::refuse_unreadable(repo, "prune")?;
    let used = used_blobs(repo)?;
    if let Some(missing) = used.iter().find(|b| !repo.has_blob(b)) {
        return Err(EngineError::InvalidArgument(format!(
            "refusing to prune: blob {missing} is needed by a snapshot but not in the index; run \
             `backupctl repo rebuild-index`, then `repo check`"
        )));
    }
    let mut report = PruneReport::default();
    let packs: Vec<(PackId, Vec<PackEntry>)> =
        repo.with_index(|i| i.packs().map(|(p, e)| (*p, e.clone())).collect());
    let on_disk: Vec<String> = repo.backend().list(FileKind::Pack)?;
    for name in &on_disk {
        report.bytes_before += repo.backend().size(Key::pack(name)).unwrap_or(0);
    }

    let mut keep: Vec<IndexedPack> = Vec::new();
    let mut delete: Vec<PackId> = Vec::new();
    let mut repack: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
    // Blobs kept so far; a duplicate elsewhere is not kept twice.
    let mut kept_blobs: HashSet<BlobId> = HashSet::new();
    for (pid, entries) in packs {
        let needed = entries.iter().filter(|e| used.contains(&e.id)).count();
        if needed == 0 {
            report.blobs_removed += entries.len();
            delete.push(pid);
        } else if needed == entries.len() && entries.iter().all(|e| !kept_blobs.contains(&e.id)) {
            kept_blobs.extend(entries.iter().map(|e| e.id));
            keep.push(IndexedPack {
                id: pid,
                blobs: entries,
            });
        } else {
            repack.push((pid, entries));
        }
    }
    progress.set_totals(repack.len() as u64, 0);

    // Repack the still-needed blobs of partly used packs.
    let mut builder = PackBuilder::new();
    let mut written: Vec<IndexedPack> = Vec::new();
    let flush = |b: PackBuilder, written: &mut Vec<IndexedPack>| -> Result<(), EngineError> {
        if b.is_empty() {
            return Ok(());
        }
        let (id, entries, _) = repo.write_built_pack(b)?;
        written.push(IndexedPack { id, blobs: entries });
        Ok(())
    };
    for (_, entries) in &repack {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        for e in entries {
            if !used.contains(&e.id) || !kept_blobs.insert(e.id) {
                report.blobs_removed += 1;
                continue;
            }
            let data = repo.read_blob(&e.id)?;
            let sealed = repo.encode_blob(&data, zstd_level);
            if builder.would_overflow(sealed.len()) {
                flush(std::mem::take(&mut builder), &mut written)?;
            }
            builder.add_plain(e.id, e.kind, &sealed, &data);
        }
        progress.add(1, 0);
    }
    flush(builder, &mut written)?;
    report.packs_written = written.len();
    report.packs_repacked = repack.len();
    report.packs_deleted = delete.len();

    // New index first, then drop the old index files, then the packs no index names. The new
    // index supersedes every index file on disk, not only the ones loaded: a file a crashed
    // prune already superseded (but did not delete yet) must not outlive its successor, or it
    // would come back to life naming packs this run deletes.
    let old_indexes = compact::index_files(repo)?;
    let packs_indexed: HashSet<String> = delete
        .iter()
        .chain(repack.iter().map(|(p, _)| p))
        .map(|p| p.to_hex())
        .collect();
    let mut all = keep;
    all.extend(written);
    let live: HashSet<String> = all.iter().map(|p| p.id.to_hex()).collect();
    all.sort_by_key(|p| p.id);
    report.index_files_before = old_indexes.len() as u64;
    report.index_files_after = compact::replace_index(repo, all, &old_indexes)?;
    // A pack no index names may belong to a backup still running (its index comes last);
    // only packs older than the safety window are taken to be leftovers of interrupted
    // backups, and the others are reported as kept.
    let unnamed: Vec<String> = on_disk
        .iter()
        .filter(|n| !live.contains(*n) && !packs_indexed.contains(*n))
        .cloned()
        .collect();
    let leftovers = super::leftovers::classify(repo, &unnamed, |_| false);
    let superseded = on_disk
        .iter()
        .filter(|n| !live.contains(*n) && packs_indexed.contains(*n));
    for name in superseded.chain(&leftovers.old) {
        repo.backend().delete(Key::pack(name))?;
    }
    report.unindexed_kept = leftovers.young.len();
    report.unindexed_kept_until_ns = leftovers.young_until_ns;
    if !leftovers.young.is_empty() {
        tracing::info!(
            packs = leftovers.young.len(),
            "prune kept unindexed packs younger than the safety window"
        );
    }
    for temp in repo.backend().list_incomplete()? {
        if let Err(e) = repo.backend().delete_incomplete(&temp) {
            tracing::warn!(error = %e, "cannot remove a temp file left by an interrupted write");
        }
    }
    repo.reload_index()?;
    for name in repo.backend().list(FileKind::Pack)? {
        report.bytes_after += repo.backend().size(Key::pack(&name)).unwrap_or(0);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1_000_000_000;

    #[test]
    fn keep_last_and_daily() {
        // Newest first: three on day 10, one each on days 9, 8, 7.
        let t = |day: i64, hour: i64| (day * DAY + hour * HOUR) * NS;
        let times = vec![t(10, 20), t(10, 10), t(10, 1), t(9, 5), t(8, 5), t(7, 5)];
        let policy = Policy {
            last: 2,
            daily: 3,
            ..Default::default()
        };
        let r = decide(&policy, &times);
        assert_eq!(r[0], vec!["last", "daily"]);
        assert_eq!(r[1], vec!["last"]);
        assert!(r[2].is_empty());
        assert_eq!(r[3], vec!["daily"]);
        assert_eq!(r[4], vec!["daily"]);
        assert!(r[5].is_empty());
    }

    #[test]
    fn keep_within_is_relative_to_the_newest() {
        let times = vec![100 * DAY * NS, 99 * DAY * NS, 90 * DAY * NS];
        let policy = Policy {
            within: Some(Duration::from_secs(2 * DAY as u64)),
            ..Default::default()
        };
        let r = decide(&policy, &times);
        assert!(!r[0].is_empty() && !r[1].is_empty() && r[2].is_empty());
    }

    #[test]
    fn monthly_and_yearly_buckets() {
        // 2024-01-31 and 2024-02-01 are different months of one year.
        let jan31 = 19_753 * DAY * NS;
        let feb1 = 19_754 * DAY * NS;
        assert_ne!(bucket("monthly", jan31), bucket("monthly", feb1));
        assert_eq!(bucket("yearly", jan31), bucket("yearly", feb1));
        assert_eq!(year_month(19_754), (2024, 2));
    }
}
