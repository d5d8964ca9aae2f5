//! `backupctl recovery ...`: the command line of snapshot fitness, selection, recovery plans,
//! drills and objectives.

use crate::cli::JobArgs;
use crate::completion;
use clap::{Args, Subcommand};
use clap_complete::ArgValueCompleter;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RecoveryCommand {
    /// Score snapshots for recovery (0–100): integrity, completeness, recency, accessibility,
    /// each with its evidence. Best first.
    Fitness(FitnessArgs),
    /// The best snapshot for a path (and point in time), and why the runner-up lost.
    Select(FitnessArgs),
    /// Work out a recovery plan and store it; nothing on disk changes until `recovery run`.
    Plan(PlanArgs),
    /// Run a plan's steps (all that are not done, or one) as a queued job.
    Run(RecoveryRunArgs),
    /// A plan's steps, their state and what each did.
    Status {
        /// The plan id.
        #[arg(add = ArgValueCompleter::new(completion::recovery_plans))]
        plan: String,
    },
    /// Every plan, newest first.
    List,
    /// Put the target back as it was before the plan ran (until it is committed).
    Rollback(PlanJobArgs),
    /// Delete a finished plan's rollback copy: the recovery becomes final.
    Commit(PlanJobArgs),
    /// Restore a random sample of the newest snapshot of a source (or repository) into
    /// scratch space, verify it against the snapshot and the unchanged live files, measure the
    /// restore throughput, and delete the scratch copy. Exits 1 when something did not match.
    Drill(DrillArgs),
    /// Per source: RPO achieved (age of the newest snapshot, worst gap over 30 days) and RTO
    /// estimated (newest snapshot at the measured restore throughput) against their targets,
    /// and the last drill. Exits 1 when a source misses an objective.
    Objectives,
}

#[derive(Debug, Args)]
pub struct FitnessArgs {
    /// Repository (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only this watched source's snapshots.
    #[arg(long, add = ArgValueCompleter::new(completion::sources))]
    pub source: Option<String>,
    /// Only snapshots that hold this absolute path.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// The point in time wanted (UTC: `2026-11-29 17:00`, RFC 3339, or Unix seconds); later
    /// snapshots do not qualify. Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// These snapshots (ids or prefixes); default: all that qualify.
    #[arg(add = ArgValueCompleter::new(completion::snapshot_ids))]
    pub snapshots: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The absolute path to recover, as it was backed up.
    #[arg(long)]
    pub path: PathBuf,
    /// Where it goes (default: back where it was).
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Point in time (UTC: `2026-11-29 17:00`, RFC 3339, or Unix seconds): the newest fit
    /// snapshot at or before it. Default: the newest fit snapshot.
    #[arg(long, value_name = "TIME", conflicts_with = "snapshot")]
    pub at: Option<String>,
    /// Recover from this snapshot instead of choosing one.
    #[arg(long, add = ArgValueCompleter::new(completion::snapshot_ids))]
    pub snapshot: Option<String>,
    /// Repository (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only this watched source's snapshots.
    #[arg(long, add = ArgValueCompleter::new(completion::sources))]
    pub source: Option<String>,
    /// Only entries matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out entries matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Only this path, relative to --path (repeatable).
    #[arg(long = "only-path", value_name = "REL")]
    pub only_path: Vec<PathBuf>,
    /// Only files that changed between the newest snapshot at or before this time and the
    /// plan's snapshot.
    #[arg(long, value_name = "TIME")]
    pub changed_since: Option<String>,
    /// Only what the target lacks (`missing`: nothing that exists is touched) or lacks or
    /// holds with other content (`different`).
    #[arg(long, value_enum)]
    pub only: Option<OnlyArg>,
    /// Read from a replica even when the repository itself is fine.
    #[arg(long)]
    pub from_replica: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnlyArg {
    Missing,
    Different,
}

#[derive(Debug, Args)]
pub struct RecoveryRunArgs {
    /// The plan id.
    #[arg(add = ArgValueCompleter::new(completion::recovery_plans))]
    pub plan: String,
    /// Only step N (1-based; the steps before it must be done).
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub step: Option<u32>,
    /// Every step not done yet (the default).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct PlanJobArgs {
    /// The plan id.
    #[arg(add = ArgValueCompleter::new(completion::recovery_plans))]
    pub plan: String,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The watched source whose newest snapshot is drilled (its repository is used).
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(completion::sources))]
    pub source: Option<String>,
    /// Repository (default: the source's, else the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Share of the snapshot's files restored: `1%`, `0.5%`, `100%` (default: the daemon's
    /// maintenance.drill_sample, 1%).
    #[arg(long, value_name = "PCT", value_parser = backupd_common::protocol::parse_sample)]
    pub sample: Option<f64>,
    #[command(flatten)]
    pub job: JobArgs,
}
