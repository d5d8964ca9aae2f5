//! What a finished job produced, by kind: inside a job (`"result"`) and, with the job's id added
//! as `"job"`, what a waiting command prints.

use backupd_common::protocol::{
    BackupDryRunResult, BackupResult, CheckResult, ForgetResult, PruneSummary, RebuildResult,
    ReencryptResult, Response, RestoreResult, SnapshotStatsView,
};
use serde::Serialize;

/// A path (as the daemon displays it) and why something happened to it.
#[derive(Debug, Serialize)]
pub struct PathReason {
    pub path: String,
    pub reason: String,
}

fn reasons(list: &[(String, String)]) -> Vec<PathReason> {
    list.iter()
        .map(|(path, reason)| PathReason {
            path: path.clone(),
            reason: reason.clone(),
        })
        .collect()
}

/// A snapshot's statistics; the same in backup results and `snapshots`.
#[derive(Debug, Serialize)]
pub struct StatsView {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub files_read: u64,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    pub skipped: u64,
    pub changed_during_read: u64,
    pub duration_ms: u64,
}

impl From<&SnapshotStatsView> for StatsView {
    fn from(s: &SnapshotStatsView) -> Self {
        Self {
            files: s.files,
            dirs: s.dirs,
            other: s.other,
            files_read: s.files_read,
            bytes_total: s.bytes_total,
            bytes_read: s.bytes_read,
            bytes_added: s.bytes_added,
            bytes_stored: s.bytes_stored,
            skipped: s.skipped,
            changed_during_read: s.changed_during_read,
            duration_ms: s.duration_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DecisionView {
    pub snapshot: String,
    pub time: String,
    pub host: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PruneView {
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub blobs_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Packs no index names, kept: younger than the safety window.
    pub unindexed_kept: u64,
    /// When prune removes them (RFC 3339).
    pub unindexed_kept_until: Option<String>,
    /// What prune kept and why.
    pub notes: Vec<String>,
    /// Prune rewrites the whole index into few files.
    pub index_files_before: u64,
    pub index_files_after: u64,
}

#[derive(Debug, Serialize)]
pub struct CompactView {
    pub index_files_before: u64,
    pub index_files_after: u64,
    pub packs: u64,
    pub blobs: u64,
    /// Nothing was rewritten: the index was already in few files.
    pub skipped: bool,
}

impl From<&PruneSummary> for PruneView {
    fn from(p: &PruneSummary) -> Self {
        Self {
            packs_deleted: p.packs_deleted,
            packs_repacked: p.packs_repacked,
            packs_written: p.packs_written,
            blobs_removed: p.blobs_removed,
            bytes_before: p.bytes_before,
            bytes_after: p.bytes_after,
            unindexed_kept: p.unindexed_kept,
            unindexed_kept_until: p.unindexed_kept_until.clone(),
            notes: p.notes.clone(),
            index_files_before: p.index_files_before,
            index_files_after: p.index_files_after,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProblemView {
    pub message: String,
    pub pack: Option<String>,
    pub blob: Option<String>,
    pub snapshots: Vec<String>,
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UnreadablePack {
    pub pack: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ResultView {
    Backup {
        snapshot: String,
        parent: Option<String>,
        stats: StatsView,
        dirs_scanned: u64,
        incremental: bool,
        /// Unreadable paths; non-empty means the snapshot is partial.
        skipped: Vec<PathReason>,
        /// Nothing differed from the parent: no snapshot was written, `snapshot` is the parent.
        unchanged: bool,
    },
    /// `backup --dry-run`: what a backup would read and store; nothing was written.
    BackupDryRun {
        parent: Option<String>,
        files: u64,
        dirs: u64,
        other: u64,
        bytes_total: u64,
        files_read: u64,
        bytes_read: u64,
        bytes_new: u64,
        bytes_new_stored: u64,
        blobs_new: u64,
        skipped: Vec<PathReason>,
        duration_ms: u64,
    },
    Restore {
        snapshot: String,
        /// Where it restored (the daemon's default when no --target was given).
        target: String,
        files: u64,
        dirs: u64,
        other: u64,
        bytes: u64,
        /// Existing entries replaced, left because equal, left because of `--overwrite never`.
        replaced: u64,
        unchanged: u64,
        kept: u64,
        failed: Vec<PathReason>,
        warnings: Vec<PathReason>,
    },
    Check {
        snapshots: u64,
        trees: u64,
        blobs: u64,
        packs: u64,
        packs_read: u64,
        damaged_packs: Vec<String>,
        problems: Vec<ProblemView>,
        notes: Vec<String>,
        /// The part of the packs read (`3/20`), when a part was asked for.
        subset: Option<String>,
    },
    Forget {
        dry_run: bool,
        decisions: Vec<DecisionView>,
        removed: u64,
        prune: Option<PruneView>,
    },
    RebuildIndex {
        packs: u64,
        blobs: u64,
        unreadable: Vec<UnreadablePack>,
        old_index_files: u64,
    },
    Noop {
        slept_ms: u64,
    },
    Reencrypt(ReencryptView),
    Migrate(ReencryptView),
    /// `repo prune`.
    Prune(PruneView),
    /// `repo compact`.
    Compact(CompactView),
    /// `sync run`.
    Sync(super::sync::SyncResultView),
    /// `repo replicate run`.
    Replicate(super::replicate::ReplicateView),
    /// `recovery run|rollback|commit`: the plan afterwards.
    Recovery(Box<super::recovery_plan::PlanView>),
    /// `recovery drill`.
    Drill(super::recovery::DrillView),
}

#[derive(Debug, Serialize)]
pub struct ReencryptView {
    pub current: u32,
    pub below: u32,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    pub blobs: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub index_files_rewritten: u64,
    pub snapshots_rewritten: u64,
    pub snapshots_renamed: Vec<RenamedSnapshot>,
    pub leftovers_removed: u64,
    pub retired: Vec<u32>,
}

#[derive(Debug, Serialize)]
pub struct RenamedSnapshot {
    pub old: String,
    pub new: String,
}

impl ResultView {
    /// The view of a job's result; `None` for a response no job produces.
    pub fn new(response: &Response) -> Option<Self> {
        Some(match response {
            Response::Backup(r) => backup(r),
            Response::BackupDryRun(r) => dry_run(r),
            Response::Restore(r) => restore(r),
            Response::Check(r) => check(r),
            Response::Forget(r) => forget(r),
            Response::RebuildIndex(r) => rebuild(r),
            Response::Noop { slept_ms } => Self::Noop {
                slept_ms: *slept_ms,
            },
            Response::Reencrypt(r) => Self::Reencrypt(ReencryptView::from(r.as_ref())),
            Response::Migrate(r) => Self::Migrate(ReencryptView::from(r.as_ref())),
            Response::Prune(p) => Self::Prune(PruneView::from(p)),
            Response::Sync(r) => Self::Sync(super::sync::SyncResultView::from(r.as_ref())),
            Response::Replicate(r) => {
                Self::Replicate(super::replicate::ReplicateView::from(r.as_ref()))
            }
            Response::RecoveryPlan(p) => {
                Self::Recovery(Box::new(super::recovery_plan::PlanView::from(p.as_ref())))
            }
            Response::Drill(d) => Self::Drill(super::recovery::DrillView::from(d.as_ref())),
            Response::Compact(c) => Self::Compact(CompactView {
                index_files_before: c.index_files_before,
                index_files_after: c.index_files_after,
                packs: c.packs,
                blobs: c.blobs,
                skipped: c.skipped,
            }),
            _ => return None,
        })
    }
}

fn backup(r: &BackupResult) -> ResultView {
    ResultView::Backup {
        snapshot: r.snapshot.clone(),
        parent: r.parent.clone(),
        stats: StatsView::from(&r.stats),
        dirs_scanned: r.dirs_scanned,
        incremental: r.incremental,
        skipped: reasons(&r.skipped),
        unchanged: r.unchanged,
    }
}

fn dry_run(r: &BackupDryRunResult) -> ResultView {
    ResultView::BackupDryRun {
        parent: r.parent.clone(),
        files: r.files,
        dirs: r.dirs,
        other: r.other,
        bytes_total: r.bytes_total,
        files_read: r.files_read,
        bytes_read: r.bytes_read,
        bytes_new: r.bytes_new,
        bytes_new_stored: r.bytes_new_stored,
        blobs_new: r.blobs_new,
        skipped: reasons(&r.skipped),
        duration_ms: r.duration_ms,
    }
}

fn restore(r: &RestoreResult) -> ResultView {
    ResultView::Restore {
        snapshot: r.snapshot.clone(),
        target: r.target.clone(),
        files: r.files,
        dirs: r.dirs,
        other: r.other,
        bytes: r.bytes,
        replaced: r.replaced,
        unchanged: r.unchanged,
        kept: r.kept,
        failed: reasons(&r.failed),
        warnings: reasons(&r.warnings),
    }
}

fn check(r: &CheckResult) -> ResultView {
    ResultView::Check {
        snapshots: r.snapshots,
        trees: r.trees,
        blobs: r.blobs,
        packs: r.packs,
        packs_read: r.packs_read,
        damaged_packs: r.damaged_packs.clone(),
        problems: r
            .problems
            .iter()
            .map(|p| ProblemView {
                message: p.message.clone(),
                pack: p.pack.clone(),
                blob: p.blob.clone(),
                snapshots: p.snapshots.clone(),
                paths: p.paths.clone(),
            })
            .collect(),
        notes: r.notes.clone(),
        subset: r.subset.clone(),
    }
}

impl ResultView {
    /// A forget result's view (`source show` embeds a retention dry run).
    pub fn of_forget(r: &ForgetResult) -> Self {
        forget(r)
    }
}

fn forget(r: &ForgetResult) -> ResultView {
    ResultView::Forget {
        dry_run: r.dry_run,
        decisions: r
            .decisions
            .iter()
            .map(|d| DecisionView {
                snapshot: d.snapshot.clone(),
                time: d.time.clone(),
                host: d.host.clone(),
                keep: d.keep,
                reasons: d.reasons.clone(),
            })
            .collect(),
        removed: r.removed,
        prune: r.prune.as_ref().map(PruneView::from),
    }
}

fn rebuild(r: &RebuildResult) -> ResultView {
    ResultView::RebuildIndex {
        packs: r.packs,
        blobs: r.blobs,
        unreadable: r
            .unreadable
            .iter()
            .map(|(pack, reason)| UnreadablePack {
                pack: pack.clone(),
                reason: reason.clone(),
            })
            .collect(),
        old_index_files: r.old_index_files,
    }
}

/// What a command that waited for its job prints: the job's id and its result.
#[derive(Debug, Serialize)]
pub struct FinishedView<'a> {
    pub job: u64,
    #[serde(flatten)]
    pub result: &'a ResultView,
}

impl From<&ReencryptResult> for ReencryptView {
    fn from(r: &ReencryptResult) -> Self {
        Self {
            current: r.current,
            below: r.below,
            packs_rewritten: r.packs_rewritten,
            packs_written: r.packs_written,
            blobs: r.blobs,
            bytes_read: r.bytes_read,
            bytes_written: r.bytes_written,
            index_files_rewritten: r.index_files_rewritten,
            snapshots_rewritten: r.snapshots_rewritten,
            snapshots_renamed: r
                .snapshots_renamed
                .iter()
                .map(|(old, new)| RenamedSnapshot {
                    old: old.clone(),
                    new: new.clone(),
                })
                .collect(),
            leftovers_removed: r.leftovers_removed,
            retired: r.retired.clone(),
        }
    }
}
