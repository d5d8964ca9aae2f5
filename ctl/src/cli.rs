//! The command line, as clap derive types.

pub mod analytics;
pub mod recovery;

use crate::completion;
use clap::{Args, Parser, Subcommand, ValueHint};
use clap_complete::ArgValueCompleter;
use std::path::PathBuf;
use std::time::Duration;

const EXIT_CODES: &str = "\
Commands that run a job wait for it and exit with its result (--no-wait: exit once queued).
Exit codes: 0 ok, 1 warning or partial result (also: check found problems), 2 error,
3 daemon unreachable, 4 permission denied, 64 usage error, 130 interrupted while waiting
(Ctrl-C: the job goes on).";

/// Command-line client of the backupd daemon.
#[derive(Debug, Parser)]
#[command(name = "backupctl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Daemon socket. Default: /run/backupd/backupd.sock for root; for other users their own
    /// daemon's socket ($XDG_RUNTIME_DIR/backupd/backupd.sock, or /tmp/backupd-UID/backupd.sock
    /// without XDG_RUNTIME_DIR) if present, else the system socket.
    #[arg(long, global = true, env = "BACKUPD_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also trust a daemon run by this user (name or uid) on the --socket given; without it
    /// only root's daemon and your own are talked to.
    #[arg(long, global = true, requires = "socket", value_name = "USER|UID",
          value_parser = backupd_common::client::parse_user)]
    pub socket_owner: Option<u32>,
    /// Print machine-readable JSON instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Path arguments are written as `--json` writes paths: `\\` is a backslash, `\xHH` a
    /// byte (for names that are not UTF-8). Without it paths are taken as typed.
    #[arg(long, global = true)]
    pub escaped_paths: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `backupctl security …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon itself: health, identity, reload, shutdown.
    #[command(subcommand)]
    System(SystemCommand),
    /// Repositories: init, add, list, info, remove, check, keys.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Back up paths into a repository.
    Backup(BackupArgs),
    /// Restore a snapshot (or part of it) into a directory.
    Restore(RestoreArgs),
    /// List snapshots; the size column is the bytes of the files in each snapshot, by their
    /// sizes as read.
    Snapshots(SnapshotsArgs),
    /// Sizes of snapshots (what a restore writes) or of the stored data.
    Stats(StatsArgs),
    /// Remove snapshots by a retention policy, optionally pruning unused data.
    Forget(ForgetArgs),
    /// List a directory of a snapshot (or one entry), like `ls`.
    Ls(LsArgs),
    /// Which snapshots hold files matching a glob, and which versions of them.
    Find(FindArgs),
    /// What changed between two snapshots: added, removed, modified, metadata only.
    Diff(DiffArgs),
    /// Write a file of a snapshot to stdout, byte for byte (no --json: the output is the
    /// file).
    Cat(CatArgs),
    /// The job queue: submit, watch, cancel, retry.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Job transitions and progress as they happen.
    Events(EventsArgs),
    /// Watched sources: directories backed up continuously.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Directory sync pairs: keep a directory mirrored to another (or both in step).
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Recover: score and pick snapshots, plan a recovery, run it step by step, roll it back;
    /// drills that prove snapshots restore, and the recovery objectives (RPO, RTO).
    #[command(subcommand)]
    Recovery(recovery::RecoveryCommand),
    /// Access control and its evidence: roles, the audit log, alerts, lockouts, compliance, the
    /// security report.
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Performance: samples of the machine and the daemon, bottlenecks, the tuner.
    #[command(subcommand)]
    Perf(PerfCommand),
    /// Analytics over the job history: success predictions and their backtest, duration
    /// estimates, anomalies, trends, the risk score, recommendations, the report, retention
    /// holds.
    #[command(subcommand)]
    Analytics(analytics::AnalyticsCommand),
    /// A live full-screen view of the daemon: health score, sources, running jobs with
    /// progress, resource sparklines and alerts (q, Esc or Ctrl-C quits; needs a terminal, no
    /// --json).
    Dashboard(DashboardArgs),
}

#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// The newest sample, open bottlenecks, and the tunables in force and configured.
    Current,
    /// Averages, peaks, time in each bottleneck, disk forecasts and recommendations.
    Report(PerfWindow),
    /// The stored samples of a window, oldest first.
    Metrics(PerfMetricsArgs),
    /// Bottlenecks open now or ended within the window, newest first.
    Bottlenecks(PerfWindow),
    /// The tuner's changes within the window, newest first.
    History(PerfWindow),
    /// Run one tuning round now; prints what changed or why nothing did.
    Optimize,
    /// Turn automatic tuning on or off (off puts the configured values back in force).
    Auto {
        /// `on`: a tuning round every perf.optimize_every; `off`: the configured values.
        #[arg(value_enum)]
        state: OnOff,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct PerfWindow {
    /// How far back to look.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h", value_name = "DURATION")]
    pub since: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct PerfMetricsArgs {
    /// How far back to look.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h", value_name = "DURATION")]
    pub since: std::time::Duration,
    /// At most this many samples, evenly spread over the window (0: all).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_points: u32,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// How often the screen is refreshed from the daemon, e.g. `2s`, `500ms` (at least 100ms).
    #[arg(long, value_parser = parse_interval, default_value = "2s", value_name = "DURATION")]
    pub interval: Duration,
}

/// A refresh interval: below 100 ms the dashboard would keep the daemon busy answering it.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err(format!("{text} is shorter than 100ms"));
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// Bind a role to a user or group, optionally limited to repositories; it expires.
    Grant(crate::commands::security_roles::GrantArgs),
    /// Remove a granted binding by id, or every binding of a user or group.
    Revoke(crate::commands::security_roles::RevokeArgs),
    /// Every binding with its scope and expiry, declared ones included.
    Bindings,
    /// Whether a user would be granted a permission, and by what (exit 0 yes, 4 no).
    Check(crate::commands::security_roles::CheckArgs),
    /// The audit log: list entries (newest N matching the filters), follow new ones, or
    /// `verify` the chain.
    Audit(crate::commands::security_audit::AuditArgs),
    /// Suspicious-activity alerts (unacknowledged ones unless --all); `ack ID` acknowledges one.
    Alerts(crate::commands::security_alerts::AlertsArgs),
    /// Lift the lockout of a uid that set off an alert.
    Unlock(crate::commands::security_alerts::UnlockArgs),
    /// Evaluate compliance controls on the live system (exit 1 when one fails).
    Compliance(crate::commands::security_alerts::ComplianceArgs),
    /// A security score with what lowered it, denials and alerts, key ages.
    Report(crate::commands::security_alerts::ReportArgs),
    /// Seal a file with a repository's current data key (streamed, chunked AES-256-GCM); the
    /// key never leaves the daemon.
    Encrypt(crate::commands::security_files::CryptArgs),
    /// Open a file sealed by `security encrypt` with whichever key version sealed it; every
    /// chunk is verified before its plaintext is written.
    Decrypt(crate::commands::security_files::CryptArgs),
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Back up a directory continuously: every change is in a snapshot seconds later.
    Add(SourceAddArgs),
    /// Sources with their watching state, schedule, pending changes and last snapshot.
    List,
    /// Change a source's schedule, retention or watching; what is not given stays.
    Set(SourceSetArgs),
    /// A source in full: its schedule, and what its retention would keep and forget now.
    Show {
        /// The source's name, as `source list` shows it.
        #[arg(add = ArgValueCompleter::new(completion::sources))]
        name: String,
    },
    /// Stop backing up a source (its snapshots stay).
    Remove {
        /// The source's name, as `source list` shows it.
        #[arg(add = ArgValueCompleter::new(completion::sources))]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Keep DST in step with SRC (mirror) or both with each other (two-way); the first run is
    /// queued at once.
    Add(SyncAddArgs),
    /// Pairs with their state, last run and pending conflicts.
    List,
    /// A pair in full, with the file being copied now.
    Show(SyncName),
    /// Forget a pair (both directories stay as they are).
    Remove(SyncName),
    /// Run a pair now (a `sync` job; waits for it unless --no-wait).
    Run(SyncRunArgs),
    /// Stop watching and scheduled runs of a pair.
    Pause(SyncName),
    /// Watch and schedule a paused pair again.
    Resume(SyncName),
    /// A pair's runs, newest first: files and bytes copied, deleted, conflicts, throughput.
    History(SyncHistoryArgs),
    /// Conflicts of a pair with --strategy manual, waiting for `sync resolve`.
    Conflicts(SyncName),
    /// Settle a conflict: take SRC's version (local), DST's (remote) or both (DST's kept as
    /// NAME.conflict-HOST-TIME); the pair runs at once.
    Resolve(SyncResolveArgs),
}

#[derive(Debug, Args)]
pub struct SyncName {
    /// The pair's name, as `sync list` shows it.
    #[arg(add = ArgValueCompleter::new(completion::sync_pairs))]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SyncRunArgs {
    /// The pair's name, as `sync list` shows it.
    #[arg(add = ArgValueCompleter::new(completion::sync_pairs))]
    pub name: String,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct SyncHistoryArgs {
    /// The pair's name, as `sync list` shows it.
    #[arg(add = ArgValueCompleter::new(completion::sync_pairs))]
    pub name: String,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct SyncResolveArgs {
    /// The pair's name, as `sync list` shows it.
    #[arg(add = ArgValueCompleter::new(completion::sync_pairs))]
    pub name: String,
    /// The conflicting file, relative to the pair's directories (as `sync conflicts` shows it).
    pub path: PathBuf,
    /// Which version wins.
    #[arg(long, value_enum)]
    pub take: TakeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TakeArg {
    Local,
    Remote,
    Both,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncModeArg {
    /// DST follows SRC; changes made in DST are overwritten.
    #[default]
    Mirror,
    /// Changes flow both ways; a file changed on both sides is a conflict.
    TwoWay,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// The later mtime wins.
    #[default]
    Newer,
    /// The larger file wins.
    Larger,
    /// SRC wins.
    Local,
    /// DST wins.
    Remote,
    /// SRC wins; DST's version is kept as NAME.conflict-HOST-TIME.
    KeepBoth,
    /// Nothing is decided: `sync conflicts`, `sync resolve`.
    Manual,
}

#[derive(Debug, Args)]
pub struct SyncAddArgs {
    /// Name of the pair.
    #[arg(long)]
    pub name: String,
    /// The directory synced from (SRC, "local").
    #[arg(value_hint = ValueHint::DirPath)]
    pub src: PathBuf,
    /// The directory synced to (DST, "remote"): any mounted directory.
    #[arg(value_hint = ValueHint::DirPath)]
    pub dst: PathBuf,
    /// Mirror (SRC to DST) or two-way.
    #[arg(long, value_enum, default_value_t = SyncModeArg::Mirror)]
    pub mode: SyncModeArg,
    /// How a two-way conflict is decided.
    #[arg(long, value_enum, default_value_t = StrategyArg::Newer)]
    pub strategy: StrategyArg,
    /// Propagate deletions (into the other side's .backupd-trash/); the default for mirror.
    #[arg(long, conflicts_with = "no_delete")]
    pub delete: bool,
    /// Do not propagate deletions; the default for two-way.
    #[arg(long)]
    pub no_delete: bool,
    /// Glob to leave out, as for `backup`. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Watch with inotify and sync each change after --debounce (the default).
    #[arg(long, conflicts_with = "no_watch")]
    pub watch: bool,
    /// Do not watch: run on the schedule, on `sync run`, and once a day.
    #[arg(long)]
    pub no_watch: bool,
    /// Quiet time after the last change before a run is queued.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", value_name = "DURATION")]
    pub debounce: Duration,
    /// Run on a calendar schedule (as `source add --schedule`).
    #[arg(long, value_name = "WHEN", value_parser = parse_schedule)]
    pub schedule: Option<String>,
    /// Run every DURATION.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub every: Option<Duration>,
    /// The pair's bandwidth limit, e.g. 20MiB/s (`[sync] bwlimit` applies as well).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub bwlimit: Option<u64>,
}

fn parse_rate(text: &str) -> Result<u64, String> {
    backupd_common::rate::Rate::parse_limit(text)
        .map(|r| r.map_or(0, backupd_common::rate::Rate::bytes_per_sec))
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct SourceAddArgs {
    /// The directory to back up.
    #[arg(value_hint = ValueHint::DirPath)]
    pub path: PathBuf,
    /// Name of the source (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Repository to back up into (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Glob to leave out, as for `backup`. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Do not watch with inotify; only scan every --rescan-every.
    #[arg(long)]
    pub no_watch: bool,
    /// Quiet time after the last change before a backup is queued.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", value_name = "DURATION")]
    pub debounce: Duration,
    /// Longest a change waits for its backup under continuous churn.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s", value_name = "DURATION")]
    pub max_delay: Duration,
    /// Full (metadata-only) scan this often, as a backstop.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1day", value_name = "DURATION")]
    pub rescan_every: Duration,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct SourceSetArgs {
    /// The source's name, as `source list` shows it.
    #[arg(add = ArgValueCompleter::new(completion::sources))]
    pub name: String,
    /// Watch with inotify (again).
    #[arg(long, conflicts_with = "no_watch")]
    pub watch: bool,
    /// Stop watching: back up only on the schedule (or, without one, scan every 10 minutes).
    #[arg(long)]
    pub no_watch: bool,
    /// Drop the schedule and the interval (and the jitter).
    #[arg(long, conflicts_with_all = ["schedule", "every"])]
    pub no_schedule: bool,
    /// Go back to the default retention.
    #[arg(long, conflicts_with_all = ["keep_all", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    pub default_retention: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

// When a source is backed up besides watching, what retention keeps, its RPO (`source add`
// and `source set`). A plain comment: see `JobArgs`.
#[derive(Debug, Args, Default, Clone)]
pub struct PolicyArgs {
    /// Back up on a calendar schedule: `hourly`, `daily 02:00`, `weekly Sun 03:00`,
    /// `monthly 1 04:00`, a systemd calendar event (`*-*-* 04:00:00`, `Mon..Fri 22:30`,
    /// `*:0/15`) or a cron pattern (`0 2 * * *`), in the machine's time zone. A run missed
    /// while the daemon was down happens once at its next start.
    #[arg(long, value_name = "WHEN", value_parser = parse_schedule)]
    pub schedule: Option<String>,
    /// Back up every DURATION (e.g. `10m`) instead of, or besides, a calendar schedule.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub every: Option<Duration>,
    /// Start each scheduled run up to DURATION later (fixed per host, source and slot), so that
    /// a fleet does not start together.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub jitter: Option<Duration>,
    /// Retention: keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Retention: keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Retention: ... of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Retention: ... of each of the last N weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Retention: ... of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Retention: ... of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Retention: keep every snapshot younger than DURATION (counted from the newest).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keep_within: Option<Duration>,
    /// Never forget this source's snapshots automatically. Without any --keep-* or this, the
    /// default applies: everything for 1 h, hourly for 48 h, daily for 30 days, weekly for 8
    /// weeks, monthly for 12 months.
    #[arg(long, conflicts_with_all = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    pub keep_all: bool,
    /// Apply retention at most this often (default: the daemon's maintenance.retention_every,
    /// 1 h).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retention_every: Option<Duration>,
    /// `system health` is degraded when the source has had no successful snapshot for this
    /// long (default: 1 h watched, 24 h not watched).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub rpo: Option<Duration>,
    /// `system health` is degraded when restoring the source's newest snapshot is estimated to
    /// take longer than this at the measured restore throughput (default: 4 h).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub rto: Option<Duration>,
}

fn parse_schedule(text: &str) -> Result<String, String> {
    text.parse::<backupd_common::schedule::Schedule>()
        .map(|s| s.as_str().to_owned())
        .map_err(|e| e.reason)
}

// How a job runs; every command that submits a job takes these. A plain comment, not a doc
// comment: clap would show a flattened struct's doc as the `about` of every command lacking one.
#[derive(Debug, Args, Default, Clone)]
pub struct JobArgs {
    /// Queue priority: high jobs start before normal ones, normal before low.
    #[arg(long, value_enum, default_value_t = PriorityArg::Normal)]
    pub priority: PriorityArg,
    /// Time one attempt may take, e.g. `2h` (default: the daemon's queue.timeout).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Retries after a retryable failure (default: the daemon's queue.retries).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Delay before the first retry, doubling for each further one (default: queue.backoff).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub backoff: Option<Duration>,
    /// Return as soon as the job is durably queued and print its id, instead of waiting for
    /// its end.
    #[arg(long)]
    pub no_wait: bool,
    /// Wait for the job's end and exit with its result: the default, accepted for old scripts.
    #[arg(long, conflicts_with = "no_wait")]
    pub wait: bool,
}

/// `restore --overwrite`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OverwriteArg {
    /// Replace every existing file.
    Always,
    /// Leave files equal to the snapshot's; replace the others.
    #[default]
    IfChanged,
    /// Leave every existing file as it is.
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PriorityArg {
    High,
    #[default]
    Normal,
    Low,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum QueueCommand {
    /// Submit a job of any kind.
    #[command(subcommand)]
    Add(AddCommand),
    /// Jobs by state and priority, running jobs with progress, what runs next.
    Status,
    /// One job: arguments, state, attempts with their errors, result.
    #[command(visible_alias = "show")]
    Job {
        /// Job id, as printed when it was submitted.
        id: u64,
        /// Follow a queued or running job with the progress bar and exit with its result
        /// (like `queue wait`); a finished job's result is printed at once.
        #[arg(long)]
        follow: bool,
    },
    /// A job's own log lines (its last 200 lines, at most 64 KiB, over all attempts; admins
    /// only, as they name files).
    Log {
        /// Job id, as printed when it was submitted.
        id: u64,
    },
    /// Follow a queued or running job to its end and exit with its result.
    Wait {
        /// Job id, as printed when it was submitted.
        id: u64,
    },
    /// Cancel a queued or running job (a running one stops at its next safe point).
    Cancel {
        /// Job id, as printed when it was submitted.
        id: u64,
    },
    /// The dead-letter queue: jobs that failed for good.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Finished jobs from the job history (kept apart from the live queue), newest first.
    History(HistoryArgs),
    /// Show or set the number of jobs run at once (1-8, until the daemon restarts).
    Workers {
        /// New number of workers (1-8); without it, show the current number.
        #[arg(value_parser = clap::value_parser!(u32).range(1..=8))]
        count: Option<u32>,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show at most this many jobs.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: u32,
    /// Only jobs that finished within this long, e.g. `7d`, `12h`.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub since: Option<std::time::Duration>,
    /// Only backups of this watched source.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(completion::sources))]
    pub source: Option<String>,
    /// Only jobs on this repository.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only jobs of this kind (backup, restore, check, forget, rebuild-index, noop, reencrypt,
    /// migrate, prune, sync, replicate, drill).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AddCommand {
    /// Back up paths into a repository (as `backupctl backup`).
    Backup(BackupArgs),
    /// Restore a snapshot into a directory (as `backupctl restore`).
    Restore(RestoreArgs),
    /// Check a repository (as `backupctl repo check`).
    Check(CheckArgs),
    /// A recovery drill (as `backupctl recovery drill`).
    Drill(recovery::DrillArgs),
    /// Remove snapshots by policy or id (as `backupctl forget`).
    Forget(ForgetArgs),
    /// Rebuild a repository's index from its packs (as `backupctl repo rebuild-index`).
    RebuildIndex(RebuildArgs),
    /// Wait, then succeed (or fail as asked): for probing the queue.
    Noop(NoopArgs),
    /// Seal old data-key versions' objects again and retire them (as `backupctl repo key
    /// reencrypt`).
    Reencrypt(ReencryptArgs),
    /// Convert a repository to a newer format (as `backupctl repo migrate`).
    Migrate(MigrateArgs),
    /// Delete data no snapshot needs and compact the index (as `backupctl repo prune`; with
    /// --compact-only as `backupctl repo compact`).
    Prune(PruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead-letter jobs, oldest first, with the error that ended each.
    List,
    /// Queue a dead-letter job again, with a fresh retry budget.
    Retry {
        /// Id of the dead-letter job.
        id: u64,
    },
    /// Delete every dead-letter job.
    Purge,
}

#[derive(Debug, Args)]
pub struct NoopArgs {
    /// How long the job runs before it succeeds, e.g. `5s`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s", value_name = "DURATION")]
    pub duration: Duration,
    /// Fail the first N attempts (retryably, unless --permanent).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub fail_attempts: u32,
    /// Make the --fail-attempts failures permanent (straight to the dead-letter queue).
    #[arg(long)]
    pub permanent: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep streaming new events until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// How many past events to show first.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub backlog: u32,
}

/// Where a repository passphrase comes from (never from the command line itself).
#[derive(Debug, Args, Default)]
pub struct PasswordArgs {
    /// Read the passphrase from this file (first line).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,
    /// Read the passphrase from this open file descriptor.
    #[arg(long, value_name = "FD")]
    pub password_fd: Option<u32>,
    /// Read the passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Run this command (with `sh -c`) and use the first line of its output.
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
}

/// How to reach an object store (with an `s3://` location).
#[derive(Debug, Default, Args)]
pub struct StoreArgs {
    /// The S3 endpoint URL, for S3-compatible stores (MinIO, Ceph, Garage...). Default: AWS,
    /// or the daemon's AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The bucket's region (default: the daemon's AWS_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Allow plain HTTP to an endpoint that is not this machine (loopback is always allowed).
    #[arg(long)]
    pub allow_http: bool,
    /// Address the bucket as BUCKET.HOST instead of HOST/BUCKET.
    #[arg(long)]
    pub virtual_hosted: bool,
    /// An AWS credentials file ([default] with aws_access_key_id, aws_secret_access_key) for
    /// this repository; the daemon stores a copy 0600. Default: the daemon's AWS environment
    /// variables or its ~/.aws/credentials.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository. Without a password source a random key is generated and kept by
    /// the daemon (export it with `repo key export`).
    Init {
        /// Name to refer to the repository by (`--repo NAME`).
        #[arg(long)]
        name: String,
        /// Where the repository is: a directory, or s3://BUCKET/PREFIX (an S3 or
        /// S3-compatible bucket; see --endpoint).
        #[arg(long, visible_alias = "location", value_name = "DIR|URL", value_hint = ValueHint::DirPath)]
        path: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Create a replica of this registered repository: the same blob ids and chunker, so
        /// `repo replicate` copies its data without chunking it again.
        #[arg(long, value_name = "REPO", add = ArgValueCompleter::new(completion::repositories))]
        replica_of: Option<String>,
        /// With --replica-of: a data key of its own instead of the source's (replication then
        /// seals every blob again).
        #[arg(long, requires = "replica_of")]
        own_data_key: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Register an existing repository (e.g. after losing the daemon's state).
    Add {
        /// Name to refer to the repository by (`--repo NAME`).
        #[arg(long)]
        name: String,
        /// Where the repository is: a directory, or s3://BUCKET/PREFIX.
        #[arg(long, visible_alias = "location", value_name = "DIR|URL", value_hint = ValueHint::DirPath)]
        path: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List repositories.
    List,
    /// Check a repository's structure, and with --read-data its data.
    Check(CheckArgs),
    /// Rebuild the index from the packs alone (after losing or damaging index files).
    RebuildIndex(RebuildArgs),
    /// Convert a repository in place to a newer format (a queued, resumable job; the
    /// repository stays readable throughout).
    Migrate(MigrateArgs),
    /// Delete the data no snapshot needs (repacking partly used packs) and compact the index,
    /// forgetting no snapshot (exclusive: backups of the repository wait).
    Prune(PruneArgs),
    /// Merge many small index files (one per incremental backup) into few, reading no
    /// snapshot and touching no pack; does nothing while there are few.
    Compact(CompactArgs),
    /// Key management.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Unregister a repository; its files and the daemon's key file are left untouched
    /// (`repo add` registers it again).
    Remove {
        /// Repository name.
        #[arg(add = ArgValueCompleter::new(completion::repositories))]
        name: String,
    },
    /// Format, chunker, compression, counts, sizes and deduplication of a repository.
    Info {
        /// Repository name (default: the default repository).
        #[arg(add = ArgValueCompleter::new(completion::repositories))]
        name: Option<String>,
    },
    /// Copy a repository's snapshots into a replica (`repo init --replica-of`).
    #[command(subcommand)]
    Replicate(ReplicateCommand),
}

#[derive(Debug, Subcommand)]
pub enum ReplicateCommand {
    /// Store a replication from a repository into its replica (replacing the one into the
    /// same replica). Without a trigger it runs only on `repo replicate run`.
    Add(ReplicateAddArgs),
    /// Every replication, with how far each replica is behind.
    List,
    /// Copy now what the replica lacks (a queued, resumable job).
    Run(ReplicateRunArgs),
    /// Remove a replication; the replica and its data stay.
    Remove {
        /// The replica.
        #[arg(add = ArgValueCompleter::new(completion::repositories))]
        to: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("trigger").args(["after_each_snapshot", "schedule", "every"])))]
pub struct ReplicateAddArgs {
    /// The repository to copy.
    #[arg(long, value_name = "REPO", add = ArgValueCompleter::new(completion::repositories))]
    pub from: String,
    /// The replica (created with `repo init --replica-of`).
    #[arg(long, value_name = "REPO", add = ArgValueCompleter::new(completion::repositories))]
    pub to: String,
    /// Replicate after every successful backup into the source.
    #[arg(long)]
    pub after_each_snapshot: bool,
    /// A calendar schedule, as `source add --schedule` takes it (`daily 02:00`).
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// An interval after the last run (`6h`).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub every: Option<Duration>,
    /// Read back and check every pack written.
    #[arg(long)]
    pub verify: bool,
    /// Forget in the replica the snapshots the source no longer has (the replica's prune
    /// then reclaims their space). Without it the replica keeps them.
    #[arg(long)]
    pub mirror_forget: bool,
    /// Most bytes per second this replication writes (`20MiB/s`), besides `[sync] bwlimit`.
    #[arg(long, value_name = "RATE")]
    pub bwlimit: Option<String>,
    /// How far behind the replica may fall before `system health` is degraded (default:
    /// twice the schedule's interval, else 24h).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_lag: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ReplicateRunArgs {
    /// The replica.
    #[arg(add = ArgValueCompleter::new(completion::repositories))]
    pub to: String,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Repository to check (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Decrypt and verify every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Decrypt and verify part N of M of the packs (`3/20`: reading parts 1 to 20 in turn
    /// reads every pack once), or a fixed percentage of them (`10` or `10%`). Not together
    /// with --read-data.
    #[arg(long, value_name = "N/M|PCT", value_parser = parse_read_data_subset)]
    pub read_data_subset: Option<ReadDataSubset>,
    #[command(flatten)]
    pub job: JobArgs,
}

/// What `--read-data-subset` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadDataSubset {
    Percent(u8),
    Part(backupd_common::protocol::Subset),
}

fn parse_read_data_subset(text: &str) -> Result<ReadDataSubset, String> {
    if text.contains('/') {
        return text.parse().map(ReadDataSubset::Part);
    }
    let digits = text.trim().strip_suffix('%').unwrap_or(text.trim());
    match digits.parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(ReadDataSubset::Percent(p)),
        _ => Err(format!(
            "{text:?} is neither a part such as 3/20 nor a percentage from 1 to 100"
        )),
    }
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Repository whose index to rebuild (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the passphrase that opens a repository, to keep it safe elsewhere.
    Export {
        /// Repository name.
        #[arg(default_value = "default", add = ArgValueCompleter::new(completion::repositories))]
        name: String,
    },
    /// Add a key file so that another passphrase opens the repository too (the daemon keeps
    /// using its own).
    Add {
        /// Repository name (default: the default repository).
        #[arg(add = ArgValueCompleter::new(completion::repositories))]
        name: Option<String>,
        /// Where the new passphrase comes from.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Change the passphrase the daemon uses: the new one opens the repository, the old one
    /// no longer does.
    Passwd {
        /// Repository name (default: the default repository).
        #[arg(add = ArgValueCompleter::new(completion::repositories))]
        name: Option<String>,
        /// Where the new passphrase comes from.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Add a data-key version and make it current: new objects are sealed with it, older
    /// versions still open what they sealed.
    Rotate {
        /// Repository name (default: the default repository).
        #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
        repo: Option<String>,
    },
    /// Data-key versions (created, packs each still seals, current, retired) and key files.
    List {
        /// Repository name (default: the default repository).
        #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
        repo: Option<String>,
    },
    /// Remove one passphrase's key file (never the last one, nor the only one the daemon's
    /// passphrase opens).
    Remove {
        /// The key file's name or a unique prefix of it (`repo key list` shows them).
        id: String,
        /// Repository name (default: the default repository).
        #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
        repo: Option<String>,
    },
    /// Seal everything an old data-key version sealed again under the current one (a queued,
    /// resumable job), then retire the old versions: their key material is destroyed from
    /// the key files.
    Reencrypt(ReencryptArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Repository name (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only merge the index files (what `repo compact` submits).
    #[arg(long)]
    pub compact_only: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Repository name (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Repository name (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// The format to convert to (2 is the newest).
    #[arg(long, value_name = "VERSION")]
    pub to: u32,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct ReencryptArgs {
    /// Repository name (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only versions below V (default: every version but the current one).
    #[arg(long, value_name = "V", value_parser = clap::value_parser!(u32).range(2..))]
    pub retire_below: Option<u32>,
    /// Seal again, but keep the old versions' key material.
    #[arg(long)]
    pub keep_keys: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Paths to back up.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Repository to back up into (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Glob to leave out; without `/` it matches names, with `/` absolute paths. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// File with one exclude pattern per line. Repeatable.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub exclude_file: Vec<PathBuf>,
    /// Skip directories holding a valid CACHEDIR.TAG.
    #[arg(long)]
    pub exclude_caches: bool,
    /// Stay on the file system of each path.
    #[arg(long)]
    pub one_file_system: bool,
    /// Tag the snapshot. Repeatable.
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot time: RFC 3339 (`2024-05-01T12:00:00Z`) or Unix seconds.
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Read every file even if unchanged since the last snapshot, and make a new snapshot
    /// even if nothing changed (otherwise the unchanged parent is kept).
    #[arg(long)]
    pub force: bool,
    /// Walk and chunk as a backup would and report what would be read and roughly how much is
    /// new; write nothing to the repository.
    #[arg(long, conflicts_with = "no_wait")]
    pub dry_run: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// SNAPSHOT[:SUBPATH]; SNAPSHOT is `latest`, an id or a unique id prefix.
    #[arg(add = ArgValueCompleter::new(completion::snapshots))]
    pub snapshot: String,
    /// Directory to restore into, created if missing (default: the daemon's
    /// `<state_dir>/restore/<snapshot id>`, which it can write even under the systemd unit).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub target: Option<PathBuf>,
    /// What to do with a file that already exists at the target: replace it always, only if
    /// it differs from the snapshot's (size, mtime, content), or never.
    #[arg(long, value_enum, default_value_t = OverwriteArg::IfChanged, value_name = "WHEN")]
    pub overwrite: OverwriteArg,
    /// Repository to restore from (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only restore what matches. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out what matches. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Re-read restored files and compare them with the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// Do not restore file owners (a root restore otherwise sets them as in the snapshot).
    #[arg(long)]
    pub no_owner: bool,
    /// Drop setuid/setgid bits. The default when the target is not the original location.
    #[arg(long, conflicts_with = "keep_setid")]
    pub strip_setid: bool,
    /// Keep setuid/setgid bits even when restoring somewhere else.
    #[arg(long)]
    pub keep_setid: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// SNAPSHOT[:PATH]; SNAPSHOT is `latest`, an id or a unique id prefix, PATH absolute
    /// (default: the snapshot's root).
    #[arg(add = ArgValueCompleter::new(completion::snapshots))]
    pub snapshot: String,
    /// Mode, owner, size and modification time, like `ls -l` (and symlink targets).
    #[arg(long, short = 'l')]
    pub long: bool,
    /// Everything below the directory, depth first.
    #[arg(long, short = 'R')]
    pub recursive: bool,
    /// At most N entries (default 10,000; at most 100,000).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub limit: u32,
    /// Repository (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// A glob: without `/` it matches names (`*.conf`), with `/` whole paths (`/etc/**/*.conf`;
    /// `*` stays within a directory, `**` crosses them; a pattern not starting with `/`
    /// matches at any depth).
    pub pattern: String,
    /// Search only this snapshot (`latest`, an id or prefix). Repeatable.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["since", "until"], add = ArgValueCompleter::new(completion::snapshots))]
    pub snapshot: Vec<String>,
    /// Only snapshots taken at or after this time: RFC 3339, Unix seconds, or a duration
    /// meaning that long ago (`7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only snapshots taken at or before this time (as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only below this absolute path inside the snapshots.
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// At most N paths (default 1,000; at most 100,000).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub limit: u32,
    /// Repository (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot (`latest`, an id or a unique id prefix).
    #[arg(add = ArgValueCompleter::new(completion::snapshots))]
    pub from: String,
    /// The newer snapshot.
    #[arg(add = ArgValueCompleter::new(completion::snapshots))]
    pub to: String,
    /// Only below this absolute path inside the snapshots.
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// List at most N changes (default 10,000; at most 100,000); the counts cover all.
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub limit: u32,
    /// Repository (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// SNAPSHOT:PATH; SNAPSHOT is `latest`, an id or a unique id prefix, PATH absolute.
    #[arg(add = ArgValueCompleter::new(completion::snapshot_paths))]
    pub snapshot: String,
    /// Repository (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// What narrows `latest` (and a listing): every filter given must match.
#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Only snapshots taken on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only snapshots with this tag. Repeatable: all must be there.
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only snapshots of this watched source.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(completion::sources))]
    pub source: Option<String>,
}

impl FilterArgs {
    /// The protocol's filter, with `path` (raw bytes, absolute) if one applies.
    pub fn to_filter(&self, path: Option<Vec<u8>>) -> backupd_common::protocol::SnapshotFilter {
        backupd_common::protocol::SnapshotFilter {
            host: self.host.clone(),
            tags: self.tag.clone(),
            source: self.source.clone(),
            path,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Host,
    Paths,
    Source,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsModeArg {
    /// Files and bytes a restore of the snapshots would write.
    #[default]
    RestoreSize,
    /// Stored packs and blobs, their bytes, and the dedup and compression ratios.
    Raw,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Snapshots to count (`latest`, ids or prefixes; default: every snapshot the filters
    /// accept).
    #[arg(value_name = "SNAPSHOT", add = ArgValueCompleter::new(completion::snapshots))]
    pub snapshots: Vec<String>,
    /// Repository name (default: the default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// What to count.
    #[arg(long, value_enum, default_value_t = StatsModeArg::RestoreSize)]
    pub mode: StatsModeArg,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Repository to list (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Only snapshots that include this path (it, or a directory above it, was backed up).
    #[arg(long)]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the N newest snapshots (of each group with --group-by).
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// List the snapshots in groups of the same host, backed-up paths or source.
    #[arg(long, value_enum, value_name = "KEY")]
    pub group_by: Option<GroupBy>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to remove by id or unique prefix (also unreadable ones, which `repo check`
    /// names); the --keep-* rules are then optional.
    #[arg(value_name = "SNAPSHOT", add = ArgValueCompleter::new(completion::snapshot_ids))]
    pub snapshots: Vec<String>,
    /// Repository to remove snapshots from (default: the daemon's default repository).
    #[arg(long, add = ArgValueCompleter::new(completion::repositories))]
    pub repo: Option<String>,
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_yearly: u32,
    /// Keep everything younger than this (relative to the newest snapshot), e.g. `7d`.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keep_within: Option<Duration>,
    /// Delete data no remaining snapshot needs.
    #[arg(long)]
    pub prune: bool,
    /// Only show what would be removed and which rule keeps what (always waits).
    #[arg(long, conflicts_with = "no_wait")]
    pub dry_run: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show whether the daemon is up and how it runs.
    Health(HealthArgs),
    /// Show who the daemon thinks you are and your role.
    Whoami,
    /// Re-read the daemon's config file (like SIGHUP), reporting what changed.
    Reload,
    /// Stop the daemon gracefully.
    Shutdown,
    /// Write the repository registry and the sources as a portable JSON file (no secrets:
    /// key file paths, not passphrases). Admin only.
    ExportState {
        /// Write here (mode 0600, replaced atomically) instead of to stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Merge a file written by export-state: entries whose name exists are skipped, never
    /// overwritten. Admin only.
    ImportState {
        /// The export file (`-` for stdin).
        #[arg(value_hint = ValueHint::FilePath)]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Keep printing the health report every --interval.
    #[arg(long)]
    pub watch: bool,
    /// Interval for --watch, e.g. `2s`, `500ms`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", requires = "watch")]
    pub interval: Duration,
    /// With --watch, stop after this many reports (0 = until interrupted).
    #[arg(long, default_value_t = 0, requires = "watch", value_name = "COUNT")]
    pub count: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// Every subcommand, flag and argument of `cmd` and below without a help line, as
    /// `path -> what`. clap's own `--help`/`--version` always have one.
    fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} -> {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                out.push(format!("{sub_path} (subcommand)"));
            }
            missing_help(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_subcommand_flag_and_argument_has_help() {
        use clap::CommandFactory;
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        missing_help(&cmd, "backupctl", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn job_kinds_under_queue_add_describe_themselves() {
        use clap::CommandFactory;
        let cmd = super::Cli::command();
        let add = cmd
            .find_subcommand("queue")
            .and_then(|q| q.find_subcommand("add"))
            .expect("queue add");
        let abouts: Vec<String> = add
            .get_subcommands()
            .map(|k| k.get_about().map(|a| a.to_string()).unwrap_or_default())
            .collect();
        let unique: std::collections::BTreeSet<_> = abouts.iter().collect();
        assert_eq!(unique.len(), abouts.len(), "{abouts:#?}");
        assert!(
            abouts.iter().all(|a| !a.contains("How a job runs")),
            "{abouts:#?}"
        );
    }
}
